/* test_jinja_expected.c - every row of ../shared/templates/expected.json (Jinja2's renderings
 * of real chat templates, strftime_now pinned to 2026-01-01) rendered by Quarrel's Jinja
 * interpreter and compared byte for byte; rows that expect an error must fail with it.
 * Set QR_CHAT_VERBOSE=1 to print the first difference of each failing row. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "quarrel.h"
#include "test_util.h"

static void show_diff(const char *name, const char *want, const char *got) {
    size_t i = 0;
    while (want[i] && want[i] == got[i])
        i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "  %s: differs at byte %zu\n    want: %.100s\n    got:  %.100s\n", name, i,
            want + from, got + from);
}

static void test_expected_json(void **state) {
    (void)state;
    setenv("QUARREL_CHAT_DATE", "2026-01-01", 1);
    bool verbose = getenv("QR_CHAT_VERBOSE") != NULL;
    char *json = qr_test_read_file(QR_SHARED_DIR "/templates/expected.json", NULL);
    assert_non_null(json);
    cJSON *rows = cJSON_Parse(json);
    assert_non_null(rows);
    int total = 0, passed = 0, errors_expected = 0, errors_matched = 0;
    cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        const char *tname = cJSON_GetObjectItem(row, "template")->valuestring;
        char path[1024];
        snprintf(path, sizeof path, "%s/templates/%s", QR_SHARED_DIR, tname);
        char *src = qr_test_read_file(path, NULL);
        assert_non_null(src);
        cJSON *msgs = cJSON_GetObjectItem(row, "messages");
        int n = cJSON_GetArraySize(msgs);
        qr_chat_message *m = calloc((size_t)n + 1, sizeof *m);
        for (int i = 0; i < n; i++) {
            cJSON *it = cJSON_GetArrayItem(msgs, i);
            m[i].role = cJSON_GetObjectItem(it, "role")->valuestring;
            m[i].content = cJSON_GetObjectItem(it, "content")->valuestring;
        }
        const char *bos = cJSON_GetObjectItem(row, "bos_token")->valuestring;
        const char *eos = cJSON_GetObjectItem(row, "eos_token")->valuestring;
        bool add_gen = cJSON_IsTrue(cJSON_GetObjectItem(row, "add_generation_prompt"));
        cJSON *want = cJSON_GetObjectItem(row, "rendered");
        cJSON *want_err = cJSON_GetObjectItem(row, "error");
        char *out = NULL;
        qr_status st = qr_chat_apply_template(src, m, (size_t)n, add_gen, bos, eos, &out);
        total++;
        char label[1200];
        snprintf(label, sizeof label, "%s [%d messages, add_generation_prompt=%d]", tname, n,
                 add_gen);
        if (cJSON_IsString(want_err)) {
            errors_expected++;
            if (st == QR_ERR_TEMPLATE && strstr(qr_last_error(), want_err->valuestring)) {
                errors_matched++;
                passed++;
            } else {
                fprintf(stderr, "FAIL %s: expected error '%s', got status %d (%s)\n", label,
                        want_err->valuestring, st, st ? qr_last_error() : "rendered");
            }
        } else if (st != QR_OK) {
            fprintf(stderr, "FAIL %s: %s\n", label, qr_last_error());
        } else if (strcmp(out, want->valuestring) != 0) {
            fprintf(stderr, "FAIL %s: rendering differs\n", label);
            if (verbose) show_diff(label, want->valuestring, out);
        } else {
            passed++;
        }
        free(out);
        free(m);
        free(src);
    }
    fprintf(stderr, "expected.json: %d/%d renders pass (%d/%d expected errors matched)\n", passed,
            total, errors_matched, errors_expected);
    cJSON_Delete(rows);
    free(json);
    assert_int_equal(total, 272);
    assert_int_equal(passed, total);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expected_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
