/* jinja.h - the chat module's Jinja subset interpreter, as the rest of the module sees it. */
#ifndef QR_JINJA_H
#define QR_JINJA_H

#include "quarrel.h"

#include <stdbool.h>
#include <stddef.h>

/* What a chat template sees: messages, add_generation_prompt, bos_token, eos_token,
 * tools (None unless tools_json), documents = None. */
typedef struct qr_jinja_vars {
    const qr_chat_message *messages;
    size_t n_messages;
    /* Instead of messages: a cJSON array of message objects, every field passed through as
     * Jinja values (tool_calls, tool_call_id, name, ...), as transformers passes its dicts. */
    const void *messages_json;
    const void *tools_json; /* a cJSON array, or NULL: tools = None */
    bool add_generation_prompt;
    const char *bos_token; /* NULL = "" */
    const char *eos_token; /* NULL = "" */
    const char *date;      /* "YYYY-MM-DD" used by strftime_now(); NULL = today (local time) */
} qr_jinja_vars;

/* Render src (n bytes) with vars. *out is malloc'd (caller frees). On failure returns
 * QR_ERR_TEMPLATE (or QR_ERR_NOMEM) with a message naming the construct and the line. */
qr_status qr_jinja_render(const char *src, size_t n, const qr_jinja_vars *vars, char **out);

#endif
