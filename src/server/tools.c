/* tools.c - the server side of tool calling: the GBNF grammar that makes a model write calls
 * in its family's syntax (chat/tool_calls.h), built from the tools' parameter schemas, lazy
 * with the family's trigger for tool_choice "auto" and from the first token for "required" or
 * a named function; and the generic format's system prompt (llama.cpp's common/chat.cpp).
 *
 * Each function's parameters were converted by qr_json_schema_to_grammar on their own (root
 * rule "root"); their rules are renamed apart here ("qr-t<i>-" before every rule name) so they
 * can share one grammar. When src/grammar gains its helper that emits several schemas into one
 * grammar, rename_rules can give way to it. */
#include "server/server_internal.h"
#include "util/util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

/* llama.cpp's generic format: the system prompt its common_chat_params_init_generic adds */
#define GENERIC_PROMPT                                                                             \
    "Respond in JSON format, either with `tool_call` (a request to call tools) or with "          \
    "`response` reply to the user's request"

static bool is_rule_char(char c) {
    return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* Copy GBNF text into b with `prefix` before every rule name (definitions and references);
 * literals, character classes, repetition counts and comments are copied as they are. */
static bool rename_rules(srv_buf *b, const char *g, const char *prefix) {
    size_t np = strlen(prefix);
    for (size_t i = 0; g[i];) {
        char c = g[i];
        size_t j = i + 1;
        if (c == '"' || c == '[') { /* up to the unescaped closing quote or bracket */
            char close = c == '"' ? '"' : ']';
            while (g[j] && g[j] != close)
                j += g[j] == '\\' && g[j + 1] ? 2 : 1;
            if (g[j]) j++;
        } else if (c == '#') {
            while (g[j] && g[j] != '\n')
                j++;
        } else if (c == '{') {
            while (g[j] && g[j] != '}')
                j++;
            if (g[j]) j++;
        } else if (is_rule_char(c)) {
            while (is_rule_char(g[j]))
                j++;
            if (!srv_buf_append(b, prefix, np)) return false;
        }
        if (!srv_buf_append(b, g + i, j - i)) return false;
        i = j;
    }
    return srv_buf_append(b, "\n", 1);
}

/* The call object of tool i: {"name": "NAME", "<args_key>": <its parameters>[, "id": ...]} */
static bool call_rule(srv_buf *b, int i, const char *name, const char *args_key, bool with_id) {
    bool ok = srv_buf_printf(b,
                             "qr-call-%d ::= \"{\" qr-ws \"\\\"name\\\"\" qr-ws \":\" qr-ws "
                             "\"\\\"%s\\\"\" qr-ws \",\" qr-ws \"\\\"%s\\\"\" qr-ws \":\" qr-ws "
                             "qr-t%d-root",
                             i, name, args_key, i);
    if (ok && with_id)
        ok = srv_buf_printf(b, " qr-ws \",\" qr-ws \"\\\"id\\\"\" qr-ws \":\" qr-ws \"\\\"\" "
                               "[a-zA-Z0-9]{9} \"\\\"\"");
    return ok && srv_buf_printf(b, " qr-ws \"}\"\n");
}

/* `name ::= item-0 | item-1 | ...` */
static bool alternatives(srv_buf *b, const char *name, const char *item, int n) {
    bool ok = srv_buf_printf(b, "%s ::=", name);
    for (int i = 0; ok && i < n; i++)
        ok = srv_buf_printf(b, "%s %s-%d", i ? " |" : "", item, i);
    return ok && srv_buf_append(b, "\n", 1);
}

qr_status srv_tools_grammar(qr_tool_format f, char *const *names, char *const *grammars, int n,
                            bool parallel, bool with_response, char **out) {
    *out = NULL;
    if (n <= 0) return qr_error(QR_ERR_INVALID_ARG, "no tools to build a grammar from");
    srv_buf b = {0};
    bool ok = true;
    const char *list = "qr-call (qr-ws \",\" qr-ws qr-call)*";
    switch (f) {
    case QR_TOOL_FORMAT_HERMES:
        ok = srv_buf_printf(&b, "root ::= qr-tagged%s\n", parallel ? " (\"\\n\"? qr-tagged)*" : "") &&
             srv_buf_printf(&b, "qr-tagged ::= \"<tool_call>\" \"\\n\"? qr-call \"\\n\"? "
                                "\"</tool_call>\"\n");
        break;
    case QR_TOOL_FORMAT_LLAMA3: /* one call: the whole output */
        ok = srv_buf_printf(&b, "root ::= (\"<|python_tag|>\")? qr-call\n");
        break;
    case QR_TOOL_FORMAT_MISTRAL:
        ok = srv_buf_printf(&b, "root ::= \"[TOOL_CALLS]\" \"[\" qr-ws %s qr-ws \"]\"\n",
                            parallel ? list : "qr-call");
        break;
    case QR_TOOL_FORMAT_MISTRAL_ARGS:
        ok = srv_buf_printf(&b, "root ::= qr-argcall%s\n", parallel ? "+" : "") &&
             alternatives(&b, "qr-argcall", "qr-argcall", n);
        for (int i = 0; ok && i < n; i++)
            ok = srv_buf_printf(&b,
                                "qr-argcall-%d ::= \"[TOOL_CALLS]\" \"%s\" (\"[CALL_ID]\" "
                                "[a-zA-Z0-9]{9})? \"[ARGS]\" qr-t%d-root\n",
                                i, names[i], i);
        break;
    case QR_TOOL_FORMAT_GENERIC:
        if (parallel)
            ok = srv_buf_printf(&b,
                                "qr-calls ::= \"{\" qr-ws \"\\\"tool_calls\\\"\" qr-ws \":\" qr-ws "
                                "\"[\" qr-ws %s qr-ws \"]\" qr-ws \"}\"\n",
                                list);
        else
            ok = srv_buf_printf(&b, "qr-calls ::= \"{\" qr-ws \"\\\"tool_call\\\"\" qr-ws \":\" "
                                    "qr-ws qr-call qr-ws \"}\"\n");
        ok = ok && srv_buf_printf(&b, "root ::= qr-calls%s\n", with_response ? " | qr-response" : "");
        if (ok && with_response)
            ok = srv_buf_printf(
                &b, "qr-response ::= \"{\" qr-ws \"\\\"response\\\"\" qr-ws \":\" qr-ws qr-string "
                    "qr-ws \"}\"\n"
                    "qr-string ::= \"\\\"\" ([^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" "
                    "([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}))* \"\\\"\"\n");
        break;
    }
    if (f != QR_TOOL_FORMAT_MISTRAL_ARGS) {
        const char *key = f == QR_TOOL_FORMAT_LLAMA3 ? "parameters" : "arguments";
        ok = ok && alternatives(&b, "qr-call", "qr-call", n);
        for (int i = 0; ok && i < n; i++)
            ok = call_rule(&b, i, names[i], key, f == QR_TOOL_FORMAT_MISTRAL);
    }
    /* one optional space between the format's own tokens: a small model left more room fills
     * it with whitespace until max_tokens */
    ok = ok && srv_buf_printf(&b, "qr-ws ::= \" \"?\n");
    for (int i = 0; ok && i < n; i++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "qr-t%d-", i);
        ok = rename_rules(&b, grammars[i], prefix);
    }
    if (!ok) {
        srv_buf_free(&b);
        return qr_error(QR_ERR_NOMEM, "out of memory building the tools' grammar");
    }
    *out = b.data;
    return QR_OK;
}

/* The generic format's instructions as the first system message (joined to one the client
 * gave); the tools too when the template does not show them itself. */
static qr_status add_generic_prompt(srv_request *r, bool template_shows_tools) {
    cJSON *msgs = cJSON_Parse(r->messages_json);
    if (!msgs) return qr_error(QR_ERR_NOMEM, "out of memory adding the tools' system prompt");
    srv_buf text = {0};
    bool ok = true;
    cJSON *first = cJSON_GetArrayItem(msgs, 0);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(first, "role");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(first, "content");
    bool has_system = cJSON_IsString(role) && !strcmp(role->valuestring, "system") &&
                      cJSON_IsString(content);
    if (has_system) ok = srv_buf_printf(&text, "%s\n\n", content->valuestring);
    if (ok && !template_shows_tools)
        ok = srv_buf_printf(&text,
                            "You can call any of the following tools to satisfy the user's "
                            "requests: %s\n\n",
                            r->tools_json);
    ok = ok && srv_buf_printf(&text, "%s", GENERIC_PROMPT);
    if (ok && has_system) {
        cJSON_ReplaceItemInObjectCaseSensitive(first, "content", cJSON_CreateString(text.data));
    } else if (ok) {
        cJSON *sys = cJSON_CreateObject();
        cJSON_AddStringToObject(sys, "role", "system");
        cJSON_AddStringToObject(sys, "content", text.data);
        ok = cJSON_InsertItemInArray(msgs, 0, sys);
    }
    char *json = ok ? cJSON_PrintUnformatted(msgs) : NULL;
    cJSON_Delete(msgs);
    srv_buf_free(&text);
    if (!json) return qr_error(QR_ERR_NOMEM, "out of memory adding the tools' system prompt");
    free(r->messages_json);
    r->messages_json = json;
    return QR_OK;
}

static qr_status set_triggers(srv_request *r, const char *word, const char *pattern) {
    int nw = 0, np = 0;
    if (word && !(r->trigger_words[nw++] = qr_strdup(word))) return QR_ERR_NOMEM;
    if (pattern && !(r->trigger_patterns[np++] = qr_strdup(pattern))) return QR_ERR_NOMEM;
    r->sp.grammar_lazy = true;
    r->sp.grammar_trigger_words = (const char *const *)r->trigger_words;
    r->sp.n_grammar_trigger_words = nw;
    r->sp.grammar_trigger_patterns = (const char *const *)r->trigger_patterns;
    r->sp.n_grammar_trigger_patterns = np;
    return QR_OK;
}

qr_status srv_tools_prepare(srv_request *r, const char *tmpl) {
    if (r->tool_choice == SRV_TOOLS_NONE || r->n_tools == 0) return QR_OK;
    qr_tool_format f = qr_tool_format_detect(tmpl);
    bool named = r->tool_choice == SRV_TOOLS_NAMED, lazy = r->tool_choice == SRV_TOOLS_AUTO;
    int first = named ? r->tool_named : 0, n = named ? 1 : r->n_tools;
    /* a named function is called once, as OpenAI does */
    bool parallel = r->parallel_tool_calls && !named;
    free(r->grammar);
    r->grammar = NULL;
    qr_status st = srv_tools_grammar(f, r->tool_names + first, r->tool_grammars + first, n,
                                     parallel, lazy && f == QR_TOOL_FORMAT_GENERIC, &r->grammar);
    if (st) return st;
    r->sp.grammar = r->grammar;
    r->parse_tools = true;
    r->tool_format = f;
    r->render_special = true;
    if (f == QR_TOOL_FORMAT_GENERIC)
        return add_generic_prompt(r, tmpl && strstr(tmpl, "tools") != NULL);
    if (!lazy) return QR_OK;
    switch (f) {
    case QR_TOOL_FORMAT_HERMES:
        return set_triggers(r, "<tool_call>", NULL);
    case QR_TOOL_FORMAT_MISTRAL:
    case QR_TOOL_FORMAT_MISTRAL_ARGS:
        return set_triggers(r, "[TOOL_CALLS]", NULL);
    case QR_TOOL_FORMAT_LLAMA3: /* a JSON object opening the output, or the python tag */
        return set_triggers(r, "<|python_tag|>", "^\\s*(\\{\\s*\"name\")[\\s\\S]*");
    case QR_TOOL_FORMAT_GENERIC:
        break;
    }
    return QR_OK;
}
