/* dump_schema_grammars.c - a development aid (not built by CMake): converts every case of
 * schema_refs.json with qr_json_schema_to_grammar and writes {name: grammar or null} for
 * `mk_schema_refs --check`, the check of Quarrel's grammars with llama.cpp's engine.
 *   cc -std=c11 -Iinclude -Isrc tests/grammar/dump_schema_grammars.c build/libqr_sample.a \
 *      build/libqr_util.a -lcjson -lpcre2-8 -lm -o /tmp/dump_schema_grammars
 *   /tmp/dump_schema_grammars tests/grammar/schema_refs.json > /tmp/ours.json
 *   /tmp/mk_schema_refs --check tests/grammar/schema_refs.json /tmp/ours.json */
#include "quarrel.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test_util.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    char *text = qr_test_read_file(argv[1], NULL);
    cJSON *refs = text ? cJSON_Parse(text) : NULL;
    if (!refs) return 1;
    cJSON *out = cJSON_CreateObject();
    const cJSON *c;
    cJSON_ArrayForEach(c, refs) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *schema = cJSON_GetObjectItem(c, "schema")->valuestring;
        char *g = NULL;
        if (qr_json_schema_to_grammar(schema, strlen(schema), &g) == QR_OK) {
            cJSON_AddStringToObject(out, name, g);
        } else {
            cJSON_AddNullToObject(out, name);
            fprintf(stderr, "%s: %s\n", name, qr_last_error());
        }
        free(g);
    }
    char *s = cJSON_Print(out);
    puts(s);
    free(s);
    cJSON_Delete(out);
    cJSON_Delete(refs);
    free(text);
    return 0;
}
