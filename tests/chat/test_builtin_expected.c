/* test_builtin_expected.c - llama.cpp's built-in (non-Jinja) chat formats: every row of
 * ../shared/templates/builtin-expected.json (llama_chat_apply_template's output per family
 * name and conversation) must come out byte for byte from qr_chat_apply_template(name, ...). */
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

static char *read_file(const char *path) {
    return qr_test_read_file(path, NULL);
}

static void test_builtin_json(void **state) {
    (void)state;
    char *json = read_file(QR_SHARED_DIR "/templates/builtin-expected.json");
    assert_non_null(json);
    cJSON *rows = cJSON_Parse(json);
    assert_non_null(rows);
    int total = 0, passed = 0;
    cJSON *row;
    cJSON_ArrayForEach(row, rows) {
        const char *name = cJSON_GetObjectItem(row, "template")->valuestring;
        cJSON *msgs = cJSON_GetObjectItem(row, "messages");
        int n = cJSON_GetArraySize(msgs);
        qr_chat_message *m = calloc((size_t)n + 1, sizeof *m);
        for (int i = 0; i < n; i++) {
            cJSON *it = cJSON_GetArrayItem(msgs, i);
            m[i].role = cJSON_GetObjectItem(it, "role")->valuestring;
            m[i].content = cJSON_GetObjectItem(it, "content")->valuestring;
        }
        bool add_gen = cJSON_IsTrue(cJSON_GetObjectItem(row, "add_generation_prompt"));
        const char *want = cJSON_GetObjectItem(row, "rendered")->valuestring;
        char *out = NULL;
        qr_status st = qr_chat_apply_template(name, m, (size_t)n, add_gen, NULL, NULL, &out);
        total++;
        if (st != QR_OK)
            fprintf(stderr, "FAIL %s: %s\n", name, qr_last_error());
        else if (strcmp(out, want) != 0)
            fprintf(stderr, "FAIL %s (%d messages, add_ass=%d):\n  want: %s\n  got:  %s\n", name, n,
                    add_gen, want, out);
        else
            passed++;
        /* a name is recognised as itself */
        const char *fam = qr_chat_detect_family(name);
        if (!fam || strcmp(fam, name) != 0) {
            fprintf(stderr, "FAIL detect(%s) = %s\n", name, fam ? fam : "NULL");
            passed--;
        }
        free(out);
        free(m);
    }
    fprintf(stderr, "builtin-expected.json: %d/%d renders pass\n", passed, total);
    cJSON_Delete(rows);
    free(json);
    assert_int_equal(total, 216);
    assert_int_equal(passed, total);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
