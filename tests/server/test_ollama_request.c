/* test_ollama_request.c - parsing of ollama's request bodies (/api/generate, /api/chat, the
 * {"model"} routes) and of the embedding routes' bodies: ollama's option defaults and names land
 * in the sampler parameters; every bad field gets QR_ERR_INVALID_ARG with a message naming it;
 * the base64 encoder on RFC 4648's test vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/server_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_VOCAB 512

static qr_status parse(const char *body, srv_kind kind, srv_ollama_request *o) {
    return srv_parse_ollama(body, strlen(body), kind, o);
}

/* ollama's api/types.go DefaultOptions, and the stream default */
static void test_defaults(void **state) {
    (void)state;
    srv_ollama_request o;
    assert_int_equal(parse("{\"model\":\"m\",\"prompt\":\"Once\"}", SRV_COMPLETION, &o), QR_OK);
    assert_string_equal(o.model, "m");
    assert_string_equal(o.req.prompt, "Once");
    assert_true(o.req.stream);
    assert_false(o.raw || o.load_only);
    assert_true(o.req.sp.temp == 0.8f);
    assert_int_equal(o.req.sp.top_k, 40);
    assert_true(o.req.sp.top_p == 0.9f);
    assert_true(o.req.sp.min_p == 0.0f);
    assert_true(o.req.sp.repeat_penalty == 1.0f);
    assert_int_equal(o.req.sp.repeat_last_n, 64);
    assert_true(o.req.sp.seed == QR_SEED_RANDOM);
    assert_int_equal(o.req.max_tokens, -1);
    assert_null(o.req.grammar);
    srv_ollama_request_free(&o);
}

static void test_options(void **state) {
    (void)state;
    srv_ollama_request o;
    const char *body =
        "{\"model\":\"m\",\"prompt\":\"x\",\"stream\":false,\"raw\":true,\"system\":\"s\","
        "\"keep_alive\":\"5m\",\"options\":{\"temperature\":0,\"seed\":42,\"num_predict\":7,"
        "\"top_k\":1,\"top_p\":0.5,\"min_p\":0.1,\"repeat_penalty\":1.2,\"repeat_last_n\":33,"
        "\"presence_penalty\":1.5,\"frequency_penalty\":-1,\"stop\":[\"\\n\",\"user:\"],"
        "\"num_ctx\":100,\"num_gpu\":1,\"use_mmap\":true,\"unknown\":[1]}}";
    assert_int_equal(parse(body, SRV_COMPLETION, &o), QR_OK);
    assert_false(o.req.stream);
    assert_true(o.raw);
    assert_string_equal(o.system, "s");
    assert_true(o.req.sp.temp == 0.0f);
    assert_int_equal(o.req.sp.seed, 42);
    assert_int_equal(o.req.max_tokens, 7);
    assert_int_equal(o.req.sp.top_k, 1);
    assert_true(o.req.sp.top_p == 0.5f);
    assert_true(o.req.sp.min_p == 0.1f);
    assert_true(o.req.sp.repeat_penalty == 1.2f);
    assert_int_equal(o.req.sp.repeat_last_n, 33);
    assert_true(o.req.sp.presence_penalty == 1.5f);
    assert_true(o.req.sp.frequency_penalty == -1.0f);
    assert_int_equal(o.req.n_stops, 2);
    assert_string_equal(o.req.stops[1], "user:");
    assert_int_equal(o.req.n_ctx_limit, 100);
    srv_ollama_request_free(&o);
    /* -1 seeds are random, num_predict -1 and -2 are no limit, top_k 0 is off */
    body = "{\"model\":\"m\",\"prompt\":\"x\",\"options\":{\"seed\":-1,\"num_predict\":-2,"
           "\"top_k\":0,\"stop\":\"end\"},\"template\":\"{{ .Prompt }}\"}";
    assert_int_equal(parse(body, SRV_COMPLETION, &o), QR_OK);
    assert_true(o.req.sp.seed == QR_SEED_RANDOM);
    assert_int_equal(o.req.max_tokens, -1);
    assert_int_equal(o.req.sp.top_k, 0);
    assert_int_equal(o.req.n_stops, 1);
    assert_true(o.raw); /* the identity template is raw */
    srv_ollama_request_free(&o);
}

static void test_format_and_load(void **state) {
    (void)state;
    srv_ollama_request o;
    assert_int_equal(
        parse("{\"model\":\"m\",\"prompt\":\"x\",\"format\":\"json\"}", SRV_COMPLETION, &o), QR_OK);
    assert_non_null(o.req.grammar);
    assert_ptr_equal(o.req.sp.grammar, o.req.grammar);
    srv_ollama_request_free(&o);
    const char *schema = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                         "\"format\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
                         "\"integer\"}}}}";
    assert_int_equal(parse(schema, SRV_CHAT, &o), QR_OK);
    assert_non_null(strstr(o.req.grammar, "root"));
    assert_int_equal(o.req.n_messages, 1);
    srv_ollama_request_free(&o);
    /* no prompt or no messages: load; with keep_alive 0: unload */
    assert_int_equal(parse("{\"model\":\"m\",\"keep_alive\":0}", SRV_COMPLETION, &o), QR_OK);
    assert_true(o.load_only && o.unload);
    srv_ollama_request_free(&o);
    assert_int_equal(parse("{\"model\":\"m\",\"messages\":[]}", SRV_CHAT, &o), QR_OK);
    assert_true(o.load_only && !o.unload);
    srv_ollama_request_free(&o);
}

static void test_tool_messages(void **state) {
    (void)state;
    srv_ollama_request o;
    const char *body =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"w\","
        "\"arguments\":{\"city\":\"Tokyo\"}}}]},{\"role\":\"tool\",\"content\":\"sunny\","
        "\"tool_name\":\"w\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"w\","
        "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]}";
    assert_int_equal(parse(body, SRV_CHAT, &o), QR_OK);
    assert_int_equal(o.req.n_messages, 3);
    assert_int_equal(o.req.n_tools, 1);
    assert_int_equal(o.req.tool_choice, SRV_TOOLS_AUTO);
    /* the template sees the arguments object and the tool's name */
    assert_non_null(strstr(o.req.messages_json, "\"arguments\":{\"city\":\"Tokyo\"}"));
    assert_non_null(strstr(o.req.messages_json, "\"tool_name\":\"w\""));
    srv_ollama_request_free(&o);
}

static void test_bad_requests(void **state) {
    (void)state;
    static const struct {
        srv_kind kind;
        const char *body, *msg;
    } bad[] = {
        {SRV_COMPLETION, "", "the request body is empty"},
        {SRV_COMPLETION, "{\"model\":", "not valid JSON"},
        {SRV_COMPLETION, "[]", "must be a JSON object"},
        {SRV_COMPLETION, "{\"prompt\":\"x\"}", "'model' is required"},
        {SRV_COMPLETION, "{\"model\":1}", "'model' must be a string"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"prompt\":[1]}", "'prompt' must be a string"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"system\":1}", "'system' must be a string"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"raw\":\"yes\"}", "'raw' must be a boolean"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"stream\":1}", "'stream' must be a boolean"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"keep_alive\":[]}", "'keep_alive' must be"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"context\":3}", "'context' must be an array"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"options\":[]}", "'options' must be an object"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"options\":{\"temperature\":\"hot\"}}",
         "'options.temperature' must be a number"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"options\":{\"temperature\":-1}}",
         "'options.temperature' must be between"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"options\":{\"top_p\":2}}", "'options.top_p'"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"options\":{\"seed\":1.5}}",
         "'options.seed' must be an integer"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"options\":{\"num_predict\":\"9\"}}",
         "'options.num_predict' must be an integer"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"options\":{\"num_ctx\":0}}",
         "'options.num_ctx' must be between 1"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"options\":{\"repeat_last_n\":-2}}",
         "'options.repeat_last_n'"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"options\":{\"stop\":3}}",
         "'options.stop' must be a string or an array"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"options\":{\"stop\":[3]}}", "'stop[0]' must be"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"format\":\"xml\"}", "invalid format"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"format\":[1]}", "invalid format"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"format\":{\"type\":\"nope\"}}",
         "'format' is not a usable JSON schema"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"images\":[\"aGk=\"]}", "does not support images"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"think\":true}", "does not support thinking"},
        {SRV_COMPLETION, "{\"model\":\"m\",\"suffix\":\"end\"}", "does not support insert"},
        {SRV_CHAT, "{\"model\":\"m\",\"messages\":{}}", "'messages' must be an array"},
        {SRV_CHAT, "{\"model\":\"m\",\"messages\":[1]}", "'messages[0]' must be an object"},
        {SRV_CHAT, "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}",
         "'messages[0].role' is missing"},
        {SRV_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}",
         "'messages[0].content' is missing"},
        {SRV_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"images\":[\"a\"]}]"
         "}",
         "'messages[0].images'"},
        {SRV_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":3}",
         "'tools' must be an array"},
        {SRV_CHAT,
         "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"format\":"
         "\"json\","
         "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}",
         "'tools' cannot be combined with 'format'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        srv_ollama_request o;
        qr_status st = parse(bad[i].body, bad[i].kind, &o);
        if (st != QR_ERR_INVALID_ARG || !strstr(qr_last_error(), bad[i].msg))
            fail_msg("%s: got %d '%s', wanted '%s'", bad[i].body, st, qr_last_error(), bad[i].msg);
    }
}

static void test_model_requests(void **state) {
    (void)state;
    srv_ollama_model_request m;
    const char *b = "{\"name\":\"llama3:8b\",\"insecure\":true,\"stream\":false}";
    assert_int_equal(srv_parse_ollama_model(b, strlen(b), &m), QR_OK);
    assert_string_equal(m.model, "llama3:8b");
    assert_true(m.insecure && !m.stream && !m.verbose);
    free(m.model);
    b = "{\"model\":\"a\",\"name\":\"b\",\"verbose\":true}";
    assert_int_equal(srv_parse_ollama_model(b, strlen(b), &m), QR_OK);
    assert_string_equal(m.model, "a"); /* "model" wins over the older "name" */
    assert_true(m.verbose && m.stream);
    free(m.model);
    const char *bad[][2] = {{"{}", "'model' is required"},
                            {"{\"model\":\"\"}", "'model' is required"},
                            {"{\"model\":3}", "'model' must be a string"},
                            {"{\"name\":[]}", "'name' must be a string"},
                            {"{\"model\":\"a\",\"stream\":\"no\"}", "'stream' must be a boolean"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(srv_parse_ollama_model(bad[i][0], strlen(bad[i][0]), &m),
                         QR_ERR_INVALID_ARG);
        assert_non_null(strstr(qr_last_error(), bad[i][1]));
    }
    assert_true(srv_ollama_name_matches("stories260K", "stories260K"));
    assert_true(srv_ollama_name_matches("stories260K", "stories260K:latest"));
    assert_true(srv_ollama_name_matches("qwen2:0.5b", "qwen2:0.5b"));
    assert_true(srv_ollama_name_matches("qwen2:latest", "qwen2"));
    assert_false(srv_ollama_name_matches("qwen2:0.5b", "qwen2"));
    assert_false(srv_ollama_name_matches("stories260K", "stories260K:7b"));
    assert_false(srv_ollama_name_matches("stories260K", "stories"));
}

static qr_status parse_embed(const char *body, srv_embed_api api, srv_embed_request *r) {
    return srv_parse_embed_request(body, strlen(body), api, N_VOCAB, r);
}

static void test_embed_requests(void **state) {
    (void)state;
    srv_embed_request r;
    assert_int_equal(
        parse_embed("{\"input\":[[1,2],[3]],\"encoding_format\":\"base64\"}", SRV_EMBED_OPENAI, &r),
        QR_OK);
    assert_int_equal(r.n_inputs, 2);
    assert_int_equal(r.inputs[0].n_tokens, 2);
    assert_int_equal(r.inputs[1].tokens[0], 3);
    assert_true(r.base64);
    assert_null(r.model);
    srv_embed_request_free(&r);
    assert_int_equal(parse_embed("{\"input\":[\"a\",\"b\"],\"model\":\"m\"}", SRV_EMBED_OPENAI, &r),
                     QR_OK);
    assert_int_equal(r.n_inputs, 2);
    assert_string_equal(r.inputs[1].text, "b");
    assert_false(r.base64);
    srv_embed_request_free(&r);
    /* ollama: an empty string embeds nothing; truncate defaults to true */
    assert_int_equal(parse_embed("{\"model\":\"m\",\"input\":\"\"}", SRV_EMBED_OLLAMA, &r), QR_OK);
    assert_int_equal(r.n_inputs, 0);
    assert_true(r.truncate);
    srv_embed_request_free(&r);
    assert_int_equal(parse_embed("{\"model\":\"m\",\"input\":[\"x\",\"\"],\"truncate\":false,"
                                 "\"dimensions\":8,\"options\":{},\"keep_alive\":\"1m\"}",
                                 SRV_EMBED_OLLAMA, &r),
                     QR_OK);
    assert_int_equal(r.n_inputs, 2);
    assert_false(r.truncate);
    assert_int_equal(r.dimensions, 8);
    srv_embed_request_free(&r);
    assert_int_equal(parse_embed("{\"model\":\"m\",\"prompt\":\"p\"}", SRV_EMBED_OLLAMA_LEGACY, &r),
                     QR_OK);
    assert_int_equal(r.n_inputs, 1);
    assert_string_equal(r.inputs[0].text, "p");
    srv_embed_request_free(&r);
    static const struct {
        srv_embed_api api;
        const char *body, *msg;
    } bad[] = {
        {SRV_EMBED_OPENAI, "{}", "'input' is required"},
        {SRV_EMBED_OPENAI, "{\"input\":\"\"}", "'input' must not be an empty string"},
        {SRV_EMBED_OPENAI, "{\"input\":[]}", "'input' must be a string"},
        {SRV_EMBED_OPENAI, "{\"input\":3}", "'input' must be a string"},
        {SRV_EMBED_OPENAI, "{\"input\":[1,512]}", "'input[1]' must be a token id"},
        {SRV_EMBED_OPENAI, "{\"input\":[1.5]}", "'input[0]' must be a token id"},
        {SRV_EMBED_OPENAI, "{\"input\":[\"a\",[]]}", "'input[1]' must not be empty"},
        {SRV_EMBED_OPENAI, "{\"input\":[\"a\",{}]}", "'input[1]' must be a non-empty string"},
        {SRV_EMBED_OPENAI, "{\"input\":\"a\",\"encoding_format\":\"hex\"}", "'encoding_format'"},
        {SRV_EMBED_OPENAI, "{\"input\":\"a\",\"dimensions\":0}", "'dimensions' must be between"},
        {SRV_EMBED_OPENAI, "{\"input\":\"a\",\"model\":[]}", "'model' must be a string"},
        {SRV_EMBED_OLLAMA, "{\"input\":\"a\"}", "'model' is required"},
        {SRV_EMBED_OLLAMA, "{\"model\":\"m\",\"input\":[1]}", "invalid input type"},
        {SRV_EMBED_OLLAMA, "{\"model\":\"m\",\"input\":{}}", "invalid input type"},
        {SRV_EMBED_OLLAMA, "{\"model\":\"m\",\"input\":\"a\",\"truncate\":1}", "'truncate'"},
        {SRV_EMBED_OLLAMA, "{\"model\":\"m\",\"input\":\"a\",\"options\":1}", "'options'"},
        {SRV_EMBED_OLLAMA, "{\"model\":\"m\",\"input\":\"a\",\"keep_alive\":[]}", "'keep_alive'"},
        {SRV_EMBED_OLLAMA_LEGACY, "{\"model\":\"m\",\"prompt\":[\"a\"]}",
         "'prompt' must be a string"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qr_status st = parse_embed(bad[i].body, bad[i].api, &r);
        if (st != QR_ERR_INVALID_ARG || !strstr(qr_last_error(), bad[i].msg))
            fail_msg("%s: got %d '%s', wanted '%s'", bad[i].body, st, qr_last_error(), bad[i].msg);
    }
}

/* RFC 4648 section 10's vectors */
static void test_base64(void **state) {
    (void)state;
    const char *cases[][2] = {{"", ""},
                              {"f", "Zg=="},
                              {"fo", "Zm8="},
                              {"foo", "Zm9v"},
                              {"foob", "Zm9vYg=="},
                              {"fooba", "Zm9vYmE="},
                              {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = srv_base64((const unsigned char *)cases[i][0], strlen(cases[i][0]));
        assert_string_equal(s, cases[i][1]);
        free(s);
    }
    /* 1.0f little-endian: 00 00 80 3f */
    const unsigned char one[] = {0x00, 0x00, 0x80, 0x3f};
    char *s = srv_base64(one, 4);
    assert_string_equal(s, "AACAPw==");
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_options),
        cmocka_unit_test(test_format_and_load), cmocka_unit_test(test_tool_messages),
        cmocka_unit_test(test_bad_requests),    cmocka_unit_test(test_model_requests),
        cmocka_unit_test(test_embed_requests),  cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
