/* tool_calls.h - the tool-call syntax of a model family: recognised from its chat template
 * source, and parsed out of the generated text into content and calls. The families and their
 * shapes are those of llama.cpp's common/chat.cpp (Hermes 2 Pro / Qwen 2.5, Llama 3.x, Mistral
 * Nemo, Mistral Small 3.2, and the generic JSON form for templates with none of their own).
 * The server builds the grammar that makes a model write these shapes (src/server/tools.c). */
#ifndef QR_TOOL_CALLS_H
#define QR_TOOL_CALLS_H

#include "quarrel.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum qr_tool_format {
    /* {"tool_call": {"name": N, "arguments": {...}}}, {"tool_calls": [{...}, ...]} or
     * {"response": ...}: the whole output is one JSON object */
    QR_TOOL_FORMAT_GENERIC,
    /* content, then <tool_call>\n{"name": N, "arguments": {...}}\n</tool_call> (repeated) */
    QR_TOOL_FORMAT_HERMES,
    /* {"name": N, "parameters": {...}}, optionally after <|python_tag|>; the whole output */
    QR_TOOL_FORMAT_LLAMA3,
    /* content, then [TOOL_CALLS][{"name": N, "arguments": {...}, "id": "9 alnum"}, ...] */
    QR_TOOL_FORMAT_MISTRAL,
    /* content, then [TOOL_CALLS]N[CALL_ID]id[ARGS]{...} (repeated; [CALL_ID] optional) */
    QR_TOOL_FORMAT_MISTRAL_ARGS,
} qr_tool_format;

/* The format a template source asks for (NULL: chatml, which has none: GENERIC). */
qr_tool_format qr_tool_format_detect(const char *tmpl);
const char *qr_tool_format_name(qr_tool_format f);

typedef struct qr_tool_call {
    char *id;        /* as the model wrote it (Mistral), else NULL */
    char *name;
    char *arguments; /* compact JSON text of the arguments object */
} qr_tool_call;

typedef struct qr_tool_parse {
    char *content; /* the text outside the calls; "" when there is none */
    qr_tool_call *calls;
    int n_calls;
} qr_tool_parse;

/* Split generated text into content and calls. Text that does not follow the format (a
 * truncated call, a call that is not JSON, a call without a name) comes back whole as content
 * with no calls: never an error except QR_ERR_NOMEM. Free with qr_tool_parse_free. */
qr_status qr_tool_calls_parse(qr_tool_format f, const char *text, size_t n, qr_tool_parse *out);
void qr_tool_parse_free(qr_tool_parse *p);

/* While streaming: how many leading bytes of text are content whatever comes next (before
 * any call marker, less trailing whitespace and a possible partial marker). The content
 * qr_tool_calls_parse returns for any continuation starts with these bytes. */
size_t qr_tool_calls_content_prefix(qr_tool_format f, const char *text, size_t n);

#endif
