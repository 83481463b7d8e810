/* test_tool_calls.c - tool calls in chat: the format each template in ../shared/templates asks
 * for; parsing of hand-written model outputs of every format, malformed and truncated ones
 * included (they must come back whole as content); the streaming content prefix; and
 * templates rendered with tools, an assistant tool call and a tool result, against renders
 * worked out by hand from the templates' logic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chat/tool_calls.h"
#include "test_util.h"

static qr_tool_format detect_file(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/templates/%s", QR_SHARED_DIR, name);
    char *src = qr_test_read_file(path, NULL);
    assert_non_null(src);
    qr_tool_format f = qr_tool_format_detect(src);
    free(src);
    return f;
}

static void test_detect(void **state) {
    (void)state;
    assert_int_equal(detect_file("Qwen-Qwen2.5-7B-Instruct.jinja"), QR_TOOL_FORMAT_HERMES);
    assert_int_equal(detect_file("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja"),
                     QR_TOOL_FORMAT_HERMES);
    assert_int_equal(detect_file("Qwen-Qwen3-0.6B.jinja"), QR_TOOL_FORMAT_HERMES);
    assert_int_equal(detect_file("meta-llama-Llama-3.1-8B-Instruct.jinja"), QR_TOOL_FORMAT_LLAMA3);
    assert_int_equal(detect_file("meta-llama-Llama-3.2-3B-Instruct.jinja"), QR_TOOL_FORMAT_LLAMA3);
    assert_int_equal(detect_file("mistralai-Mistral-Nemo-Instruct-2407.jinja"),
                     QR_TOOL_FORMAT_MISTRAL);
    assert_int_equal(detect_file("Mistral-Small-3.2-24B-Instruct-2506.jinja"),
                     QR_TOOL_FORMAT_MISTRAL_ARGS);
    /* XML-argument formats are not ours: the generic JSON form */
    assert_int_equal(detect_file("Qwen3-Coder.jinja"), QR_TOOL_FORMAT_GENERIC);
    assert_int_equal(detect_file("meetkai-functionary-medium-v3.1.jinja"), QR_TOOL_FORMAT_GENERIC);
    assert_int_equal(detect_file("gguf-qwen2.jinja"), QR_TOOL_FORMAT_GENERIC);
    assert_int_equal(qr_tool_format_detect("chatml"), QR_TOOL_FORMAT_GENERIC);
    assert_int_equal(qr_tool_format_detect(NULL), QR_TOOL_FORMAT_GENERIC);
    assert_string_equal(qr_tool_format_name(QR_TOOL_FORMAT_MISTRAL_ARGS), "mistral-args");
}

/* Parse text in format f; expect content and the calls given as name, arguments, id triples. */
static void expect(qr_tool_format f, const char *text, const char *content, int n_calls, ...) {
    qr_tool_parse p;
    assert_int_equal(qr_tool_calls_parse(f, text, strlen(text), &p), QR_OK);
    assert_string_equal(p.content, content);
    assert_int_equal(p.n_calls, n_calls);
    va_list ap;
    va_start(ap, n_calls);
    for (int i = 0; i < n_calls; i++) {
        const char *name = va_arg(ap, const char *), *args = va_arg(ap, const char *);
        const char *id = va_arg(ap, const char *);
        assert_string_equal(p.calls[i].name, name);
        assert_string_equal(p.calls[i].arguments, args);
        if (id)
            assert_string_equal(p.calls[i].id, id);
        else
            assert_null(p.calls[i].id);
    }
    va_end(ap);
    qr_tool_parse_free(&p);
}

/* Malformed for the format: all of it is content, no call. */
static void expect_plain(qr_tool_format f, const char *text) {
    expect(f, text, text, 0);
}

static void test_hermes(void **state) {
    (void)state;
    qr_tool_format f = QR_TOOL_FORMAT_HERMES;
    expect(f, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
           "", 1, "get_weather", "{\"city\":\"Paris\"}", NULL);
    expect(f,
           "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": [1, 2]}}\n"
           "</tool_call>\n<tool_call>{\"arguments\": {}, \"name\": \"b\"}</tool_call>\n",
           "Let me check.", 2, "a", "{\"x\":[1,2]}", NULL, "b", "{}", NULL);
    /* arguments given as a string holding the object */
    expect(f, "<tool_call>{\"name\": \"a\", \"arguments\": \"{\\\"k\\\": 1}\"}</tool_call>", "", 1,
           "a", "{\"k\":1}", NULL);
    expect_plain(f, "Hello there");
    expect_plain(f, "");
    expect_plain(f, "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"city\": \"Par"); /* cut */
    expect_plain(f, "<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n");       /* no close */
    expect_plain(f, "<tool_call>{\"arguments\": {}}</tool_call>");                 /* no name */
    expect_plain(f, "<tool_call>{\"name\": 3, \"arguments\": {}}</tool_call>");    /* not a string */
    expect_plain(f, "<tool_call>{\"name\": \"a\", \"arguments\": [1]}</tool_call>"); /* not object */
    expect_plain(f, "<tool_call>not json</tool_call>");
    expect_plain(f, "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call> and more");
}

static void test_llama3(void **state) {
    (void)state;
    qr_tool_format f = QR_TOOL_FORMAT_LLAMA3;
    expect(f, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", "", 1,
           "get_weather", "{\"city\":\"Paris\"}", NULL);
    expect(f, "<|python_tag|>{\"name\": \"f\", \"parameters\": {}}", "", 1, "f", "{}", NULL);
    expect(f, "  {\"name\": \"f\", \"arguments\": {\"a\": true}}\n", "", 1, "f", "{\"a\":true}",
           NULL);
    expect_plain(f, "The weather is fine.");
    expect_plain(f, "{\"name\": \"f\"");
    expect_plain(f, "{\"name\": \"f\", \"parameters\": {}} trailing words");
    expect_plain(f, "{\"parameters\": {}}");
    expect_plain(f, "<|python_tag|>print(1)");
}

static void test_mistral(void **state) {
    (void)state;
    qr_tool_format f = QR_TOOL_FORMAT_MISTRAL;
    expect(f, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}, \"id\": \"abcdefghi\"}]", "",
           1, "f", "{\"a\":1}", "abcdefghi");
    expect(f,
           "Sure. [TOOL_CALLS] [{\"name\": \"f\", \"arguments\": {}}, {\"name\": \"g\", "
           "\"arguments\": {\"s\": \"x\"}}]",
           "Sure.", 2, "f", "{}", NULL, "g", "{\"s\":\"x\"}", NULL);
    expect_plain(f, "[TOOL_CALLS][]");
    expect_plain(f, "[TOOL_CALLS]not json");
    expect_plain(f, "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}");
    expect_plain(f, "[TOOL_CALLS]{\"name\": \"f\", \"arguments\": {}}"); /* not an array */

    f = QR_TOOL_FORMAT_MISTRAL_ARGS;
    expect(f, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}", "", 1, "get_weather",
           "{\"city\":\"Paris\"}", NULL);
    expect(f, "Calling.[TOOL_CALLS]f[CALL_ID]abc123xyz[ARGS]{}[TOOL_CALLS]g[ARGS]{\"x\": true}",
           "Calling.", 2, "f", "{}", "abc123xyz", "g", "{\"x\":true}", NULL);
    expect_plain(f, "[TOOL_CALLS]f[ARGS]{\"a\":");
    expect_plain(f, "[TOOL_CALLS]f{\"a\": 1}"); /* no [ARGS] */
    expect_plain(f, "[TOOL_CALLS][ARGS]{}");    /* no name */
    expect_plain(f, "[TOOL_CALLS]f[ARGS][1, 2]");
}

static void test_generic(void **state) {
    (void)state;
    qr_tool_format f = QR_TOOL_FORMAT_GENERIC;
    expect(f, "{\"tool_call\": {\"name\": \"f\", \"arguments\": {\"a\": \"b\"}}}", "", 1, "f",
           "{\"a\":\"b\"}", NULL);
    expect(f,
           "{\"tool_calls\": [{\"name\": \"f\", \"arguments\": {}, \"id\": \"call1\"}, "
           "{\"name\": \"g\", \"arguments\": {\"n\": 2}}]}",
           "", 2, "f", "{}", "call1", "g", "{\"n\":2}", NULL);
    expect(f, "{\"response\": \"Hi there\"}", "Hi there", 0);
    expect(f, "{\"response\": {\"k\": [1]}}", "{\"k\":[1]}", 0);
    expect_plain(f, "{\"response\": \"Hi");
    expect_plain(f, "{\"tool_calls\": []}");
    expect_plain(f, "{\"other\": 1}");
    expect_plain(f, "not json at all");
    expect_plain(f, "{\"tool_call\": {\"name\": \"f\", \"arguments\": {}}} extra");
}

static size_t prefix(qr_tool_format f, const char *s) {
    return qr_tool_calls_content_prefix(f, s, strlen(s));
}

static void test_content_prefix(void **state) {
    (void)state;
    qr_tool_format h = QR_TOOL_FORMAT_HERMES;
    assert_int_equal(prefix(h, "Hello wor"), 9);
    assert_int_equal(prefix(h, "Hello "), 5);            /* whitespace may precede a call */
    assert_int_equal(prefix(h, "Hello <tool_"), 5);      /* may become the marker */
    assert_int_equal(prefix(h, "Hello <tool_call>{"), 5); /* is the marker */
    assert_int_equal(prefix(h, "a <b> c"), 7);
    assert_int_equal(prefix(h, "<"), 0);
    assert_int_equal(prefix(QR_TOOL_FORMAT_MISTRAL, "abc [TOOL"), 3);
    assert_int_equal(prefix(QR_TOOL_FORMAT_MISTRAL_ARGS, "abc[TOOL_CALLS]f"), 3);
    assert_int_equal(prefix(QR_TOOL_FORMAT_LLAMA3, "  {"), 0);
    assert_int_equal(prefix(QR_TOOL_FORMAT_LLAMA3, "<|py"), 0);
    assert_int_equal(prefix(QR_TOOL_FORMAT_LLAMA3, ""), 0);
    assert_int_equal(prefix(QR_TOOL_FORMAT_LLAMA3, "Hi"), 2);
    assert_int_equal(prefix(QR_TOOL_FORMAT_GENERIC, "{\"response\": \"x"), 0);
}

#define TOOLS                                                                                      \
    "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get "  \
    "the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": " \
    "\"string\"}}, \"required\": [\"city\"]}}}]"
#define CONVERSATION                                                                               \
    "[{\"role\": \"user\", \"content\": \"Weather in Paris?\"}, {\"role\": \"assistant\", "        \
    "\"content\": null, \"tool_calls\": [{\"id\": \"call_1\", \"type\": \"function\", "           \
    "\"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}]}, " \
    "{\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"name\": \"get_weather\", \"content\": "  \
    "\"22C\"}]"

/* Qwen2.5's template, worked by hand: with tools, a system turn listing each tool as
 * `tool | tojson` (json.dumps spacing) inside <tools>; the assistant's call as
 * <tool_call>{"name": ..., "arguments": <arguments | tojson>}</tool_call> (the arguments string
 * parsed into an object first); the tool result inside a user turn's <tool_response>. */
static void test_render_qwen25(void **state) {
    (void)state;
    char *src = qr_test_read_file(QR_SHARED_DIR "/templates/Qwen-Qwen2.5-7B-Instruct.jinja", NULL);
    assert_non_null(src);
    char *out = NULL;
    assert_int_equal(qr_chat_apply_template_json(src, CONVERSATION, TOOLS, true, "", "", &out),
                     QR_OK);
    const char *want =
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.\n\n# Tools\n\nYou may call one or more functions to assist with the user "
        "query.\n\nYou are provided with function signatures within <tools></tools> XML "
        "tags:\n<tools>\n"
        "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": "
        "\"Get the weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": "
        "{\"type\": \"string\"}}, \"required\": [\"city\"]}}}\n</tools>\n\nFor each function "
        "call, return a json object with function name and arguments within "
        "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
        "\"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
        "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
        "{\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
        "<|im_start|>user\n<tool_response>\n22C\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n";
    assert_string_equal(out, want);
    free(out);
    /* without tools: the plain system prompt, the same turns */
    assert_int_equal(qr_chat_apply_template_json(
                         src, "[{\"role\": \"user\", \"content\": \"Hi\"}]", NULL, true, "", "", &out),
                     QR_OK);
    assert_string_equal(out, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a "
                             "helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                             "<|im_start|>assistant\n");
    free(out);
    free(src);
}

/* Hermes 2 Pro's template: the tool result goes in a "tool" turn's <tool_response>, and the
 * call's arguments (an object after our parsing) through `tojson`. Checked piecewise: the
 * whole render repeats the long tool preamble. */
static void test_render_hermes(void **state) {
    (void)state;
    char *src = qr_test_read_file(
        QR_SHARED_DIR "/templates/NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", NULL);
    assert_non_null(src);
    char *out = NULL;
    assert_int_equal(qr_chat_apply_template_json(src, CONVERSATION, TOOLS, true, "<|begin_of_text|>",
                                                 "", &out),
                     QR_OK);
    assert_non_null(strstr(out, "<|im_start|>user\nWeather in Paris?<|im_end|>\n"));
    assert_non_null(strstr(out, "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", "
                                "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"));
    /* the last message, a tool result: its turn ends with no newline before the prompt */
    const char *tail = "<|im_start|>tool\n<tool_response>\n22C\n</tool_response><|im_end|>"
                       "<|im_start|>assistant\n";
    size_t n = strlen(out), k = strlen(tail);
    assert_true(n > k);
    assert_string_equal(out + n - k, tail);
    free(out);
    free(src);
}

/* Built-in families see role and content: the call-only assistant turn has content "". */
static void test_render_builtin(void **state) {
    (void)state;
    char *out = NULL;
    assert_int_equal(qr_chat_apply_template_json("chatml", CONVERSATION, TOOLS, false, "", "", &out),
                     QR_OK);
    assert_string_equal(out, "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
                             "<|im_start|>assistant\n<|im_end|>\n"
                             "<|im_start|>tool\n22C<|im_end|>\n");
    free(out);
}

static void test_render_errors(void **state) {
    (void)state;
    char *out = NULL;
    assert_int_equal(qr_chat_apply_template_json("chatml", "{\"role\": \"user\"}", NULL, true, "",
                                                 "", &out),
                     QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "must be a JSON array"));
    assert_int_equal(qr_chat_apply_template_json("chatml", "[{\"content\": \"x\"}]", NULL, true, "",
                                                 "", &out),
                     QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "chat message 0"));
    assert_int_equal(qr_chat_apply_template_json(
                         "chatml",
                         "[{\"role\": \"assistant\", \"tool_calls\": [{\"function\": {\"name\": "
                         "\"f\", \"arguments\": \"{not json\"}}]}]",
                         NULL, true, "", "", &out),
                     QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "arguments are not JSON"));
    assert_int_equal(qr_chat_apply_template_json("{{ messages[0].content }}", "[]", "{}", true, "",
                                                 "", &out),
                     QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "tools must be a JSON array"));
    assert_null(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),         cmocka_unit_test(test_hermes),
        cmocka_unit_test(test_llama3),         cmocka_unit_test(test_mistral),
        cmocka_unit_test(test_generic),        cmocka_unit_test(test_content_prefix),
        cmocka_unit_test(test_render_qwen25),  cmocka_unit_test(test_render_hermes),
        cmocka_unit_test(test_render_builtin), cmocka_unit_test(test_render_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
