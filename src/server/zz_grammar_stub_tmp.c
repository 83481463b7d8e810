/* zz_grammar_stub_tmp.c - TEMPORARY weak stand-in for qr_json_schema_to_grammar (the JSON
 * schema converter, on another branch; the GBNF engine is merged) so this branch links before
 * it lands. DELETE when main has the real one: a weak definition in this archive would
 * otherwise shadow it. Until then every schema becomes the grammar of "{}". */
#include "quarrel.h"
#include "util/util.h"

#include <cjson/cJSON.h>
#include <stdlib.h>

__attribute__((weak)) qr_status qr_json_schema_to_grammar(const char *schema, size_t n, char **out) {
    cJSON *j = cJSON_ParseWithLength(schema, n);
    bool ok = cJSON_IsObject(j) || cJSON_IsBool(j);
    cJSON_Delete(j);
    if (!ok) return qr_error(QR_ERR_INVALID_ARG, "json schema: not a JSON object");
    *out = qr_strdup("root ::= \"{}\" space\nspace ::= | \" \"\n");
    return *out ? QR_OK : QR_ERR_NOMEM;
}

/* main's CLI calls it before its definition has landed: a no-op stand-in, same fate */
__attribute__((weak)) void qr_sampler_restart_grammar(qr_sampler *s) {
    (void)s;
}
