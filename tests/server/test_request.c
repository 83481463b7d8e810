/* test_request.c - request parsing and validation of the server's routes: good requests land in
 * the right fields; every kind of bad field gets QR_ERR_INVALID_ARG with a message naming it. */
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

static qr_status parse(const char *body, srv_kind kind, srv_request *r) {
    return srv_parse_request(body, strlen(body), kind, N_VOCAB, r);
}

static void test_chat_fields(void **state) {
    (void)state;
    srv_request r;
    const char *body =
        "{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi \"},{\"type\":\"text\","
        "\"text\":\"there\"}]}],\"max_tokens\":12,\"temperature\":0,\"top_p\":0.5,\"top_k\":7,"
        "\"min_p\":0.1,\"presence_penalty\":1.5,\"frequency_penalty\":-0.5,\"seed\":42,"
        "\"stop\":[\"a\",\"\",\"bc\"],\"logit_bias\":{\"5\":-100,\"7\":2.5},\"logprobs\":true,"
        "\"top_logprobs\":3,\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"unknown_field\":{\"ignored\":[1,2]}}";
    assert_int_equal(parse(body, SRV_CHAT, &r), QR_OK);
    assert_int_equal(r.n_messages, 2);
    assert_string_equal(r.messages[0].role, "system");
    assert_string_equal(r.messages[0].content, "be brief");
    assert_string_equal(r.messages[1].content, "hi there");
    assert_int_equal(r.max_tokens, 12);
    assert_true(r.sp.temp == 0.0f);
    assert_true(r.sp.top_p == 0.5f);
    assert_int_equal(r.sp.top_k, 7);
    assert_true(r.sp.min_p == 0.1f);
    assert_true(r.sp.presence_penalty == 1.5f);
    assert_true(r.sp.frequency_penalty == -0.5f);
    assert_int_equal(r.sp.seed, 42);
    assert_int_equal(r.n_stops, 2); /* the empty stop string is dropped */
    assert_string_equal(r.stops[0], "a");
    assert_string_equal(r.stops[1], "bc");
    assert_int_equal(r.sp.n_logit_bias, 2);
    assert_int_equal(r.sp.logit_bias[0].token, 5);
    assert_true(isinf(r.sp.logit_bias[0].bias) && r.sp.logit_bias[0].bias < 0);
    assert_int_equal(r.sp.logit_bias[1].token, 7);
    assert_true(r.sp.logit_bias[1].bias == 2.5f);
    assert_true(r.logprobs);
    assert_int_equal(r.top_logprobs, 3);
    assert_int_equal(r.sp.n_probs, 3);
    assert_true(r.stream);
    assert_true(r.include_usage);
    srv_request_free(&r);
}

static void test_defaults(void **state) {
    (void)state;
    srv_request r;
    assert_int_equal(parse("{\"prompt\":\"Once\"}", SRV_COMPLETION, &r), QR_OK);
    assert_string_equal(r.prompt, "Once");
    assert_int_equal(r.max_tokens, -1);
    assert_false(r.stream);
    assert_false(r.logprobs);
    assert_int_equal(r.n_stops, 0);
    qr_sampler_params d = qr_sampler_default_params();
    assert_true(r.sp.temp == d.temp);
    assert_true(r.sp.seed == d.seed);
    srv_request_free(&r);
    /* null counts as absent, like OpenAI's clients send it */
    assert_int_equal(
        parse("{\"prompt\":\"x\",\"max_tokens\":null,\"stop\":null}", SRV_COMPLETION, &r), QR_OK);
    assert_int_equal(r.max_tokens, -1);
    srv_request_free(&r);
}

/* llama.cpp's server fields for XTC, mirostat and DRY */
static void test_llama_sampler_fields(void **state) {
    (void)state;
    srv_request r;
    const char *body = "{\"prompt\":\"x\",\"xtc_probability\":0.5,\"xtc_threshold\":0.2,"
                       "\"mirostat\":1,\"mirostat_tau\":3,\"mirostat_eta\":0.25}";
    assert_int_equal(parse(body, SRV_COMPLETION, &r), QR_OK);
    assert_true(r.sp.xtc_probability == 0.5f);
    assert_true(r.sp.xtc_threshold == 0.2f);
    assert_int_equal(r.sp.mirostat, 1);
    assert_true(r.sp.mirostat_tau == 3.0f);
    assert_true(r.sp.mirostat_eta == 0.25f);
    assert_true(r.sp.dry_multiplier == 0.0f && r.sp.dry_base == 1.75f); /* the defaults */
    assert_int_equal(r.sp.dry_allowed_length, 2);
    assert_int_equal(r.sp.dry_penalty_last_n, 64);
    assert_int_equal(r.sp.n_dry_sequence_breakers, 4);
    srv_request_free(&r);
    body = "{\"prompt\":\"x\",\"dry_multiplier\":0.8,\"dry_base\":2,\"dry_allowed_length\":3,"
           "\"dry_penalty_last_n\":-1,\"dry_sequence_breakers\":[\"\\n\",\"##\"]}";
    assert_int_equal(parse(body, SRV_COMPLETION, &r), QR_OK);
    assert_true(r.sp.dry_multiplier == 0.8f && r.sp.dry_base == 2.0f);
    assert_int_equal(r.sp.dry_allowed_length, 3);
    assert_int_equal(r.sp.dry_penalty_last_n, -1);
    assert_int_equal(r.sp.n_dry_sequence_breakers, 2);
    assert_string_equal(r.sp.dry_sequence_breakers[0], "\n");
    assert_string_equal(r.sp.dry_sequence_breakers[1], "##");
    srv_request_free(&r);
    /* a base below 1 means the default, as llama.cpp's server */
    assert_int_equal(parse("{\"prompt\":\"x\",\"dry_base\":0.5}", SRV_COMPLETION, &r), QR_OK);
    assert_true(r.sp.dry_base == 1.75f);
    srv_request_free(&r);
}

static void test_completion_prompt_forms(void **state) {
    (void)state;
    srv_request r;
    assert_int_equal(
        parse("{\"prompt\":[1,15,300],\"logprobs\":2,\"stop\":\"\\n\"}", SRV_COMPLETION, &r),
        QR_OK);
    assert_int_equal(r.n_prompt_tokens, 3);
    assert_int_equal(r.prompt_tokens[2], 300);
    assert_true(r.logprobs);
    assert_int_equal(r.top_logprobs, 2);
    assert_int_equal(r.n_stops, 1);
    assert_string_equal(r.stops[0], "\n");
    srv_request_free(&r);
    assert_int_equal(parse("{\"prompt\":[\"only one\"]}", SRV_COMPLETION, &r), QR_OK);
    assert_string_equal(r.prompt, "only one");
    srv_request_free(&r);
    /* logprobs: 0 still asks for the chosen tokens' logprobs */
    assert_int_equal(parse("{\"prompt\":\"a\",\"logprobs\":0}", SRV_COMPLETION, &r), QR_OK);
    assert_true(r.logprobs);
    srv_request_free(&r);
}

typedef struct bad_case {
    srv_kind kind;
    const char *body;
    const char *message; /* a substring the error must contain */
} bad_case;

static const bad_case bad_cases[] = {
    {SRV_CHAT, "", "empty"},
    {SRV_CHAT, "{\"messages\": [", "not valid JSON"},
    {SRV_CHAT, "[1,2]", "must be a JSON object"},
    {SRV_CHAT, "{}", "'messages' is required"},
    {SRV_CHAT, "{\"messages\":\"hi\"}", "'messages' must be an array"},
    {SRV_CHAT, "{\"messages\":[]}", "'messages' must not be empty"},
    {SRV_CHAT, "{\"messages\":[3]}", "'messages[0]' must be an object"},
    {SRV_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", "'messages[0].role' is missing"},
    {SRV_CHAT, "{\"messages\":[{\"role\":1,\"content\":\"x\"}]}",
     "'messages[0].role' must be a string"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\"}]}", "'messages[0].content' is missing"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}",
     "'messages[0].content' must be"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
     "'messages[0].content[0]' must be a part of type \"text\""},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":\"hot\"}",
     "'temperature' must be a number"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":3}",
     "'temperature' must be between 0 and 2"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":1.5}", "'top_p'"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_k\":2.5}",
     "'top_k' must be an integer"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"xtc_probability\":1.5}",
     "'xtc_probability' must be between 0 and 1"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"xtc_threshold\":\"high\"}",
     "'xtc_threshold' must be a number"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"mirostat\":3}", "'mirostat' must be"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"dry_multiplier\":-1}", "'dry_multiplier' must be"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"dry_allowed_length\":1.5}",
     "'dry_allowed_length' must be an integer"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"dry_penalty_last_n\":-2}",
     "'dry_penalty_last_n' must be between -1"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"dry_sequence_breakers\":[]}",
     "'dry_sequence_breakers' must be a non-empty array of strings"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"dry_sequence_breakers\":\"\\n\"}",
     "'dry_sequence_breakers' must be a non-empty array"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"dry_sequence_breakers\":[\"a\",3]}",
     "'dry_sequence_breakers[1]' must be a string"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"mirostat_tau\":-1}", "'mirostat_tau' must be"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}",
     "'max_tokens' must be between 1"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":\"10\"}",
     "'max_tokens' must be an integer"},
    {SRV_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_completion_tokens\":-3}",
     "'max_completion_tokens'"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"presence_penalty\":9}",
     "'presence_penalty'"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"frequency_penalty\":true}",
     "'frequency_penalty' must be a number"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":1.5}",
     "'seed' must be an integer"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":7}",
     "'stop' must be a string or an array"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",1]}",
     "'stop[1]' must be a string"},
    {SRV_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"1\",\"2\",\"3\",\"4\","
     "\"5\","
     "\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]}",
     "'stop' has more than 16"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":[1]}",
     "'logit_bias' must be an object"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":{\"abc\":1}}",
     "key 'abc' is not a token id"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":{\"512\":1}}",
     "key '512' is not a token id between 0 and 511"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logit_bias\":{\"3\":101}}",
     "'logit_bias[\"3\"]' must be a number between -100 and 100"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":1}",
     "'logprobs' must be a boolean"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}",
     "'top_logprobs' requires 'logprobs'"},
    {SRV_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,\"top_logprobs\":21}",
     "'top_logprobs' must be between 0 and 20"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}",
     "'stream' must be a boolean"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream_options\":1}",
     "'stream_options' must be an object"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", "'n' must be 1"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"model\":3}",
     "'model' must be a string"},
    /* structured output and tools */
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":\"json\"}", "'response_format' must be an object"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"xml\"}}",
     "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\", not \"xml\""},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\"}}",
     "'response_format.json_schema' must be an object"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\"}}}",
     "'response_format.json_schema.schema' is required"},
    {SRV_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\",\"schema\":5}}}",
     "'response_format.json_schema.schema' must be a JSON schema object"},
    {SRV_CHAT,
     "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{},\"strict\":1}}}",
     "'response_format.json_schema.strict' must be a boolean"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"json_schema\":\"object\"}", "'json_schema' must be a JSON schema object"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"grammar\":7}", "'grammar' must be a string"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"grammar\":\"bad\"}", "'grammar' does not parse: grammar: line 1"},
    {SRV_COMPLETION, "{\"prompt\":\"x\",\"grammar\":\"root ::= [a]\",\"json_schema\":{}}",
     "'json_schema' and 'grammar' cannot be combined"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"grammar\":\"root ::= [a]\",\"response_format\":{\"type\":\"json_object\"}}",
     "'response_format' and 'grammar' cannot be combined"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":{}}", "'tools' must be an array"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"code\"}]}", "'tools[0]' must be {\"type\": \"function\""},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]}",
     "'tools[0].function.name' must be a string of 1 to 64"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}",
     "'tools[1].function.name': 'f' is given twice"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":[]}}]}",
     "'tools[0].function.parameters' must be a JSON schema object"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":1}}]}",
     "'tools[0].function.description' must be a string"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}],\"tool_choice\":\"always\"}", "'tool_choice' must be \"none\", \"auto\", \"required\""},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}}",
     "'tool_choice' names the function 'nope', which is not in 'tools'"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}],\"tool_choice\":{\"type\":\"function\"}}", "'tool_choice' must be"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":\"required\"}", "'tool_choice' is \"required\" but 'tools' is empty"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}],\"parallel_tool_calls\":1}", "'parallel_tool_calls' must be a boolean"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}],\"grammar\":\"root ::= [a]\"}", "'tools' cannot be combined with"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}]}",
     "'messages[0].tool_calls' is only allowed in assistant messages"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{}}]}]}",
     "'messages[0].tool_calls[0]' must be"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
     "'messages[0].tool_calls[0].function.arguments' is not a JSON object"},
    {SRV_CHAT, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\",\"tool_call_id\":5}]}",
     "'messages[0].tool_call_id' must be a string"},
    {SRV_COMPLETION, "{}", "'prompt' is required"},
    {SRV_COMPLETION, "{\"prompt\":{}}", "'prompt' must be a string or an array"},
    {SRV_COMPLETION, "{\"prompt\":[]}", "'prompt' must not be empty"},
    {SRV_COMPLETION, "{\"prompt\":[1,600]}", "'prompt[1]' must be a token id between 0 and 511"},
    {SRV_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "only one prompt"},
    {SRV_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":true}", "'logprobs' must be an integer"},
    {SRV_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":30}", "'logprobs' must be between 0 and 20"},
};

static void test_bad_requests(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        srv_request r;
        qr_status st = parse(c->body, c->kind, &r);
        if (st != QR_ERR_INVALID_ARG || !strstr(qr_last_error(), c->message)) {
            print_error("case %zu (%s): status %d, message '%s', expected to contain '%s'\n", i,
                        c->body, st, qr_last_error(), c->message);
            fail();
        }
    }
}


static void test_tools_and_structured(void **state) {
    (void)state;
    srv_request r;
    const char *body =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"},{\"role\":\"assistant\","
        "\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{"
        "\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},{\"role\":"
        "\"tool\",\"tool_call_id\":\"c1\",\"content\":[{\"type\":\"text\",\"text\":\"22C\"}]}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"
        "{\"type\":\"object\"}}},{\"type\":\"function\",\"function\":{\"name\":\"noop\"}}],"
        "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"noop\"}},"
        "\"parallel_tool_calls\":false}";
    assert_int_equal(parse(body, SRV_CHAT, &r), QR_OK);
    assert_int_equal(r.n_tools, 2);
    assert_string_equal(r.tool_names[1], "noop");
    assert_non_null(r.tool_grammars[0]);
    assert_non_null(r.tool_grammars[1]);
    assert_int_equal(r.tool_choice, SRV_TOOLS_NAMED);
    assert_int_equal(r.tool_named, 1);
    assert_false(r.parallel_tool_calls);
    assert_null(r.grammar);
    assert_string_equal(r.messages[1].content, ""); /* null content of a call-only turn */
    assert_string_equal(
        r.messages_json,
        "[{\"role\":\"user\",\"content\":\"Weather?\"},{\"role\":\"assistant\",\"content\":null,"
        "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":"
        "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},{\"role\":\"tool\","
        "\"content\":\"22C\",\"tool_call_id\":\"c1\"}]");
    srv_request_free(&r);

    /* tools default to "auto"; "none" turns them off */
    assert_int_equal(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{"
                           "\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}",
                           SRV_CHAT, &r),
                     QR_OK);
    assert_int_equal(r.tool_choice, SRV_TOOLS_AUTO);
    assert_true(r.parallel_tool_calls);
    srv_request_free(&r);
    assert_int_equal(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{"
                           "\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":"
                           "\"none\",\"grammar\":\"root ::= [a]\"}",
                           SRV_CHAT, &r),
                     QR_OK);
    assert_int_equal(r.tool_choice, SRV_TOOLS_NONE);
    assert_string_equal(r.sp.grammar, "root ::= [a]");
    srv_request_free(&r);

    /* response_format: text is no constraint; json_object and json_schema are grammars */
    assert_int_equal(parse("{\"prompt\":\"x\",\"response_format\":{\"type\":\"text\"}}",
                           SRV_COMPLETION, &r),
                     QR_OK);
    assert_null(r.sp.grammar);
    srv_request_free(&r);
    assert_int_equal(parse("{\"prompt\":\"x\",\"response_format\":{\"type\":\"json_object\"}}",
                           SRV_COMPLETION, &r),
                     QR_OK);
    assert_non_null(r.sp.grammar);
    assert_ptr_equal(r.sp.grammar, r.grammar);
    srv_request_free(&r);
    assert_int_equal(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                           "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
                           "\"name\":\"n\",\"strict\":true,\"schema\":{\"type\":\"object\"}}}}",
                           SRV_CHAT, &r),
                     QR_OK);
    assert_non_null(r.sp.grammar);
    srv_request_free(&r);
}

/* The grammar of one Hermes call, written out by hand from the format: the tool's own rules
 * renamed apart (literals, classes, counts and comments untouched). */
static void test_tools_grammar(void **state) {
    (void)state;
    char *names[] = {"f"};
    char *grammars[] = {"root ::= \"{\" space \"}\" # c\nspace ::= [ ]{0,2}\n"};
    char *g = NULL;
    assert_int_equal(srv_tools_grammar(QR_TOOL_FORMAT_HERMES, names, grammars, 1, false, false, &g),
                     QR_OK);
    assert_string_equal(
        g, "root ::= qr-tagged\n"
           "qr-tagged ::= \"<tool_call>\" \"\\n\"? qr-call \"\\n\"? \"</tool_call>\"\n"
           "qr-call ::= qr-call-0\n"
           "qr-call-0 ::= \"{\" qr-ws \"\\\"name\\\"\" qr-ws \":\" qr-ws \"\\\"f\\\"\" qr-ws \",\" "
           "qr-ws \"\\\"arguments\\\"\" qr-ws \":\" qr-ws qr-t0-root qr-ws \"}\"\n"
           "qr-ws ::= \" \"?\n"
           "qr-t0-root ::= \"{\" qr-t0-space \"}\" # c\n"
           "qr-t0-space ::= [ ]{0,2}\n\n");
    free(g);
    /* Mistral Small 3.2, two tools, parallel */
    char *names2[] = {"a", "b"};
    char *grammars2[] = {"root ::= \"1\"\n", "root ::= \"2\"\n"};
    assert_int_equal(
        srv_tools_grammar(QR_TOOL_FORMAT_MISTRAL_ARGS, names2, grammars2, 2, true, false, &g),
        QR_OK);
    assert_string_equal(g, "root ::= qr-argcall+\n"
                           "qr-argcall ::= qr-argcall-0 | qr-argcall-1\n"
                           "qr-argcall-0 ::= \"[TOOL_CALLS]\" \"a\" (\"[CALL_ID]\" [a-zA-Z0-9]{9})? "
                           "\"[ARGS]\" qr-t0-root\n"
                           "qr-argcall-1 ::= \"[TOOL_CALLS]\" \"b\" (\"[CALL_ID]\" [a-zA-Z0-9]{9})? "
                           "\"[ARGS]\" qr-t1-root\n"
                           "qr-ws ::= \" \"?\n"
                           "qr-t0-root ::= \"1\"\n\n"
                           "qr-t1-root ::= \"2\"\n\n");
    free(g);
}

/* srv_tools_prepare: the trigger of each format for "auto"; the generic format's prompt */
static void test_tools_prepare(void **state) {
    (void)state;
    const char *body = "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":"
                       "\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
                       "\"function\":{\"name\":\"f\"}}]}";
    srv_request r;
    assert_int_equal(parse(body, SRV_CHAT, &r), QR_OK);
    assert_int_equal(srv_tools_prepare(&r, "{{ '<tool_call>' }}"), QR_OK);
    assert_true(r.parse_tools && r.render_special && r.sp.grammar_lazy);
    assert_int_equal(r.tool_format, QR_TOOL_FORMAT_HERMES);
    assert_int_equal(r.sp.n_grammar_trigger_words, 1);
    assert_string_equal(r.sp.grammar_trigger_words[0], "<tool_call>");
    assert_non_null(strstr(r.sp.grammar, "qr-tagged ::= \"<tool_call>\""));
    srv_request_free(&r);

    assert_int_equal(parse(body, SRV_CHAT, &r), QR_OK);
    assert_int_equal(srv_tools_prepare(&r, "chatml"), QR_OK);
    assert_int_equal(r.tool_format, QR_TOOL_FORMAT_GENERIC);
    assert_false(r.sp.grammar_lazy); /* the whole output is the JSON object */
    assert_non_null(strstr(r.sp.grammar, "root ::= qr-calls | qr-response"));
    assert_string_equal(
        r.messages_json,
        "[{\"role\":\"system\",\"content\":\"Be brief.\\n\\nYou can call any of the following "
        "tools to satisfy the user's requests: [{\\\"type\\\":\\\"function\\\",\\\"function\\\":{"
        "\\\"name\\\":\\\"f\\\"}}]\\n\\nRespond in JSON format, either with `tool_call` (a request "
        "to call tools) or with `response` reply to the user's request\"},{\"role\":\"user\","
        "\"content\":\"x\"}]");
    srv_request_free(&r);
}

static void test_tokenize_requests(void **state) {
    (void)state;
    srv_tokenize_request t;
    const char *ok = "{\"content\":\"hello\",\"add_special\":true,\"with_pieces\":true}";
    assert_int_equal(srv_parse_tokenize(ok, strlen(ok), &t), QR_OK);
    assert_string_equal(t.content, "hello");
    assert_true(t.add_special);
    assert_true(t.with_pieces);
    assert_true(t.parse_special);
    free(t.content);
    const char *bad[][2] = {
        {"{}", "'content' is required"},
        {"{\"content\":1}", "'content' must be a string"},
        {"{\"content\":\"a\",\"add_special\":1}", "'add_special' must be a boolean"},
        {"nope", "not valid JSON"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(srv_parse_tokenize(bad[i][0], strlen(bad[i][0]), &t), QR_ERR_INVALID_ARG);
        assert_non_null(strstr(qr_last_error(), bad[i][1]));
    }

    qr_token *tokens;
    int32_t n;
    const char *dk = "{\"tokens\":[1,2,511]}";
    assert_int_equal(srv_parse_detokenize(dk, strlen(dk), N_VOCAB, &tokens, &n), QR_OK);
    assert_int_equal(n, 3);
    assert_int_equal(tokens[2], 511);
    free(tokens);
    const char *dbad[][2] = {{"{}", "'tokens' is required"},
                             {"{\"tokens\":\"1 2\"}", "'tokens' must be an array"},
                             {"{\"tokens\":[1,512]}", "'tokens[1]' must be a token id"},
                             {"{\"tokens\":[-1]}", "'tokens[0]'"},
                             {"{\"tokens\":[1.5]}", "'tokens[0]'"}};
    for (size_t i = 0; i < sizeof dbad / sizeof dbad[0]; i++) {
        assert_int_equal(srv_parse_detokenize(dbad[i][0], strlen(dbad[i][0]), N_VOCAB, &tokens, &n),
                         QR_ERR_INVALID_ARG);
        assert_non_null(strstr(qr_last_error(), dbad[i][1]));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_fields),          cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_llama_sampler_fields), cmocka_unit_test(test_completion_prompt_forms),
        cmocka_unit_test(test_bad_requests),         cmocka_unit_test(test_tokenize_requests),
        cmocka_unit_test(test_tools_and_structured), cmocka_unit_test(test_tools_grammar),
        cmocka_unit_test(test_tools_prepare),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
