/* test_response.c - the server's response shapes (OpenAI completion objects, stream chunks,
 * error objects, logprobs), SSE framing, UTF-8 sanitizing and the Prometheus exposition, with
 * hand-worked expected values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "server/server_internal.h"

#include <stdlib.h>
#include <string.h>

static cJSON *path(cJSON *root, const char *a, const char *b) {
    cJSON *x = cJSON_GetObjectItemCaseSensitive(root, a);
    return b ? cJSON_GetObjectItemCaseSensitive(x, b) : x;
}

static void test_chat_completion(void **state) {
    (void)state;
    srv_reply r = {.kind = SRV_CHAT,
                   .id = "chatcmpl-1",
                   .model = "stories",
                   .created = 1700000000,
                   .text = "Hello",
                   .n_text = 5,
                   .finish_reason = "length",
                   .prompt_tokens = 7,
                   .completion_tokens = 3};
    cJSON *j = srv_completion_json(&r);
    assert_string_equal(path(j, "object", NULL)->valuestring, "chat.completion");
    assert_string_equal(path(j, "id", NULL)->valuestring, "chatcmpl-1");
    assert_string_equal(path(j, "model", NULL)->valuestring, "stories");
    assert_true(path(j, "created", NULL)->valuedouble == 1700000000.0);
    cJSON *c = cJSON_GetArrayItem(path(j, "choices", NULL), 0);
    assert_int_equal(cJSON_GetArraySize(path(j, "choices", NULL)), 1);
    assert_string_equal(path(c, "message", "role")->valuestring, "assistant");
    assert_string_equal(path(c, "message", "content")->valuestring, "Hello");
    assert_string_equal(path(c, "finish_reason", NULL)->valuestring, "length");
    assert_true(cJSON_IsNull(path(c, "logprobs", NULL)));
    assert_int_equal(path(j, "usage", "prompt_tokens")->valueint, 7);
    assert_int_equal(path(j, "usage", "completion_tokens")->valueint, 3);
    assert_int_equal(path(j, "usage", "total_tokens")->valueint, 10);
    cJSON_Delete(j);
}

static void test_logprobs_shapes(void **state) {
    (void)state;
    srv_token_out t = {.id = 9, .piece = "ab", .n_piece = 2, .logprob = -0.5f, .n_top = 2};
    t.top_pieces[0] = "ab";
    t.top_n_piece[0] = 2;
    t.top_logprobs[0] = -0.5f;
    t.top_pieces[1] = "\xe2\x82"; /* half a character: bytes kept, string sanitized */
    t.top_n_piece[1] = 2;
    t.top_logprobs[1] = -1.25f;
    srv_reply r = {.kind = SRV_CHAT,
                   .id = "x",
                   .model = "m",
                   .text = "ab",
                   .n_text = 2,
                   .tokens = &t,
                   .n_tokens = 1,
                   .logprobs = true,
                   .finish_reason = "stop"};
    cJSON *j = srv_completion_json(&r);
    cJSON *c = cJSON_GetArrayItem(path(j, "choices", NULL), 0);
    cJSON *item = cJSON_GetArrayItem(path(c, "logprobs", "content"), 0);
    assert_string_equal(path(item, "token", NULL)->valuestring, "ab");
    assert_true(path(item, "logprob", NULL)->valuedouble == -0.5);
    assert_int_equal(cJSON_GetArrayItem(path(item, "bytes", NULL), 1)->valueint, 'b');
    cJSON *alt = cJSON_GetArrayItem(path(item, "top_logprobs", NULL), 1);
    assert_string_equal(path(alt, "token", NULL)->valuestring, "\xef\xbf\xbd");
    assert_int_equal(cJSON_GetArraySize(path(alt, "bytes", NULL)), 2);
    assert_int_equal(cJSON_GetArrayItem(path(alt, "bytes", NULL), 0)->valueint, 0xe2);
    assert_true(path(alt, "logprob", NULL)->valuedouble == -1.25);
    cJSON_Delete(j);

    /* legacy completions: parallel arrays and a {piece: logprob} map per token */
    r.kind = SRV_COMPLETION;
    j = srv_completion_json(&r);
    c = cJSON_GetArrayItem(path(j, "choices", NULL), 0);
    assert_string_equal(path(j, "object", NULL)->valuestring, "text_completion");
    assert_string_equal(path(c, "text", NULL)->valuestring, "ab");
    assert_string_equal(cJSON_GetArrayItem(path(c, "logprobs", "tokens"), 0)->valuestring, "ab");
    assert_true(cJSON_GetArrayItem(path(c, "logprobs", "token_logprobs"), 0)->valuedouble == -0.5);
    assert_int_equal(cJSON_GetArrayItem(path(c, "logprobs", "text_offset"), 0)->valueint, 0);
    cJSON *top = cJSON_GetArrayItem(path(c, "logprobs", "top_logprobs"), 0);
    assert_true(path(top, "ab", NULL)->valuedouble == -0.5);
    cJSON_Delete(j);
}

static void test_chunks_and_sse(void **state) {
    (void)state;
    srv_reply r = {.kind = SRV_CHAT,
                   .id = "c",
                   .model = "m",
                   .created = 5,
                   .text = "",
                   .n_text = 0,
                   .prompt_tokens = 2,
                   .completion_tokens = 4};
    cJSON *first = srv_chunk_json(&r, true, false);
    cJSON *c = cJSON_GetArrayItem(path(first, "choices", NULL), 0);
    assert_string_equal(path(first, "object", NULL)->valuestring, "chat.completion.chunk");
    assert_string_equal(path(c, "delta", "role")->valuestring, "assistant");
    assert_string_equal(path(c, "delta", "content")->valuestring, "");
    assert_true(cJSON_IsNull(path(c, "finish_reason", NULL)));
    srv_buf b = {0};
    assert_true(srv_sse_append(&b, first));
    cJSON_Delete(first);

    r.finish_reason = "stop";
    cJSON *last = srv_chunk_json(&r, false, false);
    c = cJSON_GetArrayItem(path(last, "choices", NULL), 0);
    assert_null(path(c, "delta", "content")); /* the final delta is empty */
    assert_string_equal(path(c, "finish_reason", NULL)->valuestring, "stop");
    cJSON_Delete(last);

    cJSON *usage = srv_chunk_json(&r, false, true);
    assert_int_equal(cJSON_GetArraySize(path(usage, "choices", NULL)), 0);
    assert_int_equal(path(usage, "usage", "total_tokens")->valueint, 6);
    cJSON_Delete(usage);

    assert_true(srv_sse_append(&b, NULL));
    const char *expect_prefix = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\"";
    assert_memory_equal(b.data, expect_prefix, strlen(expect_prefix));
    assert_true(b.len > 20);
    assert_string_equal(b.data + b.len - 17, "}\n\ndata: [DONE]\n\n");
    srv_buf_free(&b);
}

static void test_error_object(void **state) {
    (void)state;
    cJSON *e = srv_error_json(400, "'temperature' must be a number");
    assert_string_equal(path(e, "error", "message")->valuestring, "'temperature' must be a number");
    assert_string_equal(path(e, "error", "type")->valuestring, "invalid_request_error");
    assert_true(cJSON_IsNull(path(e, "error", "param")));
    assert_int_equal(path(e, "error", "code")->valueint, 400);
    cJSON_Delete(e);
    assert_string_equal(srv_error_type(401), "authentication_error");
    assert_string_equal(srv_error_type(429), "rate_limit_error");
    assert_string_equal(srv_error_type(503), "unavailable_error");
    assert_string_equal(srv_error_type(500), "server_error");
    assert_string_equal(srv_error_type(413), "invalid_request_error");
}

static void test_utf8_sanitize(void **state) {
    (void)state;
    char *s = srv_utf8_sanitize("a\xc3\xa9z", 4);
    assert_string_equal(s, "a\xc3\xa9z");
    free(s);
    s = srv_utf8_sanitize("a\xff", 2); /* an invalid byte becomes U+FFFD */
    assert_string_equal(s, "a\xef\xbf\xbd");
    free(s);
    s = srv_utf8_sanitize("", 0);
    assert_string_equal(s, "");
    free(s);
}

static void test_metrics_format(void **state) {
    (void)state;
    srv_metrics m;
    srv_metrics_init(&m);
    srv_metrics_count_status(&m, 200);
    srv_metrics_count_status(&m, 200);
    srv_metrics_count_status(&m, 400);
    m.generated_tokens = 30;
    m.gen_seconds = 1.5;
    m.kv_used = 64;
    m.kv_total = 256;
    m.queue_depth = 2;
    srv_histogram_observe(&m.ttft, 0.003); /* in le=0.005 */
    srv_histogram_observe(&m.ttft, 0.2);   /* in le=0.25 */
    srv_histogram_observe(&m.ttft, 500);   /* above every bound: only +Inf */
    srv_buf b = {0};
    assert_true(srv_metrics_format(&m, &b));
    const char *expect[] = {
        "# TYPE quarrel_requests_total counter\n",
        "quarrel_requests_total{status=\"200\"} 2\n",
        "quarrel_requests_total{status=\"400\"} 1\n",
        "quarrel_generated_tokens_total 30\n",
        "quarrel_generation_tokens_per_second 20\n",
        "quarrel_queue_depth 2\n",
        "quarrel_kv_cache_usage_ratio 0.25\n",
        "# TYPE quarrel_time_to_first_token_seconds histogram\n",
        "quarrel_time_to_first_token_seconds_bucket{le=\"0.005\"} 1\n",
        "quarrel_time_to_first_token_seconds_bucket{le=\"0.1\"} 1\n",
        "quarrel_time_to_first_token_seconds_bucket{le=\"0.25\"} 2\n",
        "quarrel_time_to_first_token_seconds_bucket{le=\"120\"} 2\n",
        "quarrel_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3\n",
        "quarrel_time_to_first_token_seconds_sum 500.203000\n",
        "quarrel_time_to_first_token_seconds_count 3\n",
        "# TYPE quarrel_inter_token_latency_seconds histogram\n",
        "quarrel_inter_token_latency_seconds_count 0\n",
        "# TYPE quarrel_request_duration_seconds histogram\n",
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        if (!strstr(b.data, expect[i])) {
            print_error("missing line: %s\nin:\n%s", expect[i], b.data);
            fail();
        }
    }
    srv_buf_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_completion), cmocka_unit_test(test_logprobs_shapes),
        cmocka_unit_test(test_chunks_and_sse),  cmocka_unit_test(test_error_object),
        cmocka_unit_test(test_utf8_sanitize),   cmocka_unit_test(test_metrics_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
