/* test_json_schema.c - the JSON schema converter against llama.cpp: for every case of
 * schema_refs.json (made by mk_schema_refs.cpp with llama.cpp's converter and grammar engine)
 * the grammar converts (or fails where llama.cpp fails, or where Quarrel fails on purpose:
 * quarrel_error), equals llama.cpp's grammar text, parses with qr_grammar_parse and accepts
 * exactly the instances llama.cpp's accepts. Then every error path by its message, the limits
 * (nesting, cycles, size) and the multi-schema rules API (a tool-call grammar). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cjson/cJSON.h>

#include "grammar/grammar.h"
#include "quarrel.h"
#include "test_util.h"
#include "util/util.h"

static const char *str_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_llama_cases(void **state) {
    (void)state;
    char *text = qr_test_read_file(QR_TEST_DIR "/grammar/schema_refs.json", NULL);
    assert_non_null(text);
    cJSON *refs = cJSON_Parse(text);
    assert_non_null(refs);
    int n_cases = 0, n_inst = 0, n_bad = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, refs) {
        const char *name = str_of(c, "name"), *schema = str_of(c, "schema");
        const char *want = str_of(c, "grammar"), *want_err = str_of(c, "quarrel_error");
        assert_non_null(name);
        assert_non_null(schema);
        n_cases++;
        char *g = NULL;
        qr_status st = qr_json_schema_to_grammar(schema, strlen(schema), &g);
        if (want_err || !want) { /* fails on purpose, or llama.cpp fails too */
            if (st == QR_OK) fail_msg("%s: converts, expected an error", name);
            if (want_err && !strstr(qr_last_error(), want_err))
                fail_msg("%s: error \"%s\", expected \"%s\"", name, qr_last_error(), want_err);
            assert_true(qr_last_error()[0] != '\0');
            assert_null(g);
            continue;
        }
        if (st != QR_OK) fail_msg("%s: %s", name, qr_last_error());
        if (strcmp(g, want)) fail_msg("%s: grammar differs from llama.cpp's:\n%s\nllama.cpp:\n%s", name, g, want);
        qr_grammar *gr = NULL;
        if (qr_grammar_parse(g, NULL, &gr) != QR_OK) fail_msg("%s: %s", name, qr_last_error());
        const cJSON *inst;
        cJSON_ArrayForEach(inst, cJSON_GetObjectItemCaseSensitive(c, "instances")) {
            const char *s = str_of(inst, "text");
            bool accepted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(inst, "accepted"));
            n_inst++;
            if (qr_grammar_accepts(gr, s, strlen(s)) != accepted) {
                print_error("%s: %s: llama.cpp %s it\n", name, s, accepted ? "accepts" : "rejects");
                n_bad++;
            }
        }
        qr_grammar_free(gr);
        free(g);
    }
    print_message("%d cases, %d instances, %d differ from llama.cpp\n", n_cases, n_inst, n_bad);
    assert_int_equal(n_bad, 0);
    assert_true(n_cases >= 40);
    cJSON_Delete(refs);
    free(text);
}

/* schema -> the error message must contain want */
typedef struct bad_case {
    const char *schema, *want;
} bad_case;

static const bad_case bad_cases[] = {
    {"{\"type\": ", "not valid JSON"},
    {"{} x", "text after the value"},
    {"{\"type\": \"string\"}\xff", "not valid UTF-8 at byte 18"},
    {"true", "schema at # must be an object"},
    {"{\"type\": \"strung\"}", "unrecognized type \"strung\" at #"},
    {"{\"type\": 3}", "type at # must be a string or an array of strings"},
    {"{\"type\": []}", "type at # must not be empty"},
    {"{\"type\": [\"string\", 1]}", "type at # must be a string or an array of strings"},
    {"{\"type\": \"string\", \"foo\": 1}", "unsupported keyword \"foo\" at #"},
    {"{\"properties\": {\"a\": {\"type\": \"object\", \"properties\": {\"b\": {\"not\": {}}}}}}",
     "unsupported keyword \"not\" at #/properties/a/properties/b"},
    {"{\"type\": \"number\", \"minimum\": 0}",
     "keyword \"minimum\" at # is not supported for type \"number\""},
    {"{\"type\": \"string\", \"minimum\": 0}", "keyword \"minimum\" at # is not supported for type \"string\""},
    {"{\"type\": \"array\", \"uniqueItems\": true}", "unsupported keyword \"uniqueItems\" at #"},
    {"{\"type\": \"object\", \"patternProperties\": {}}", "unsupported keyword \"patternProperties\""},
    {"{\"type\": \"string\", \"properties\": {}}", "keyword \"properties\" at # is not supported for type \"string\""},
    {"{\"$ref\": \"#/$defs/a\", \"type\": \"string\", \"$defs\": {\"a\": {}}}",
     "keyword \"type\" at # is not supported next to $ref"},
    {"{\"anyOf\": [{}], \"type\": \"string\"}", "keyword \"type\" at # is not supported next to anyOf"},
    {"{\"anyOf\": [{}], \"oneOf\": [{}]}", "keyword \"anyOf\" at # is not supported next to oneOf"},
    {"{\"anyOf\": []}", "anyOf at # must be a non-empty array of schemas"},
    {"{\"enum\": []}", "enum at # must be a non-empty array"},
    {"{\"enum\": [1], \"minLength\": 1}", "keyword \"minLength\" at # is not supported next to enum"},
    {"{\"type\": \"string\", \"enum\": [\"a\", 1]}", "enum value 1 at # does not have the schema's type"},
    {"{\"type\": \"integer\", \"const\": \"x\"}", "const at # does not have the schema's type"},
    {"{\"$ref\": \"#/$defs/missing\"}", "cannot resolve $ref #/$defs/missing at #, $defs not found"},
    {"{\"$ref\": \"#/$defs/a/x\", \"$defs\": {\"a\": {}}}", "cannot resolve $ref #/$defs/a/x at #, x not found"},
    {"{\"$ref\": \"#/$defs/a/5\", \"$defs\": {\"a\": [1]}}", "5 is out of range"},
    {"{\"$ref\": \"other.json#/a\"}", "unsupported $ref other.json#/a at #"},
    {"{\"$ref\": 5}", "$ref at # must be a string"},
    {"{\"$ref\": \"#/$defs/a\", \"$defs\": {\"a\": {\"$ref\": \"#/$defs/b\"}, \"b\": {\"$ref\": \"#/$defs/a\"}}}",
     "is a cycle of $refs"},
    {"{\"$ref\": \"#/$defs/a\", \"$defs\": {\"a\": {\"$ref\": \"#/$defs/a\"}}}", "is a cycle of $refs"},
    {"{\"type\": \"string\", \"pattern\": \"[a-z]+\"}", "unsupported pattern \"[a-z]+\" at # (not anchored"},
    {"{\"type\": \"string\", \"pattern\": \"^\\\\d+$\"}", "unsupported escape: \\d"},
    {"{\"type\": \"string\", \"pattern\": \"^[\\\\w]$\"}", "unsupported escape in character class: \\w"},
    {"{\"type\": \"string\", \"pattern\": \"^(?=a)$\"}", "unsupported group syntax"},
    {"{\"type\": \"string\", \"pattern\": \"^a^b$\"}", "anchor inside the pattern"},
    {"{\"type\": \"string\", \"pattern\": \"^(a$\"}", "invalid pattern \"^(a$\" at # (unbalanced parentheses)"},
    {"{\"type\": \"string\", \"pattern\": \"^a)$\"}", "unbalanced parentheses"},
    {"{\"type\": \"string\", \"pattern\": \"^[ab$\"}", "unterminated character class"},
    {"{\"type\": \"string\", \"pattern\": \"^*a$\"}", "nothing to repeat"},
    {"{\"type\": \"string\", \"pattern\": \"^a{2$\"}", "unterminated curly brackets"},
    {"{\"type\": \"string\", \"pattern\": \"^a{x}$\"}", "invalid number in curly brackets"},
    {"{\"type\": \"string\", \"pattern\": \"^a{1,2,3}$\"}", "wrong number of values"},
    {"{\"type\": \"string\", \"pattern\": \"^a{3,1}$\"}", "numbers out of order"},
    {"{\"type\": \"string\", \"pattern\": \"^a\\\\$\"}", "trailing backslash"},
    {"{\"type\": \"string\", \"pattern\": \"^a]$\"}", "unsupported character: ]"},
    {"{\"type\": \"string\", \"pattern\": 5}", "pattern at # must be a string"},
    {"{\"type\": \"string\", \"pattern\": \"^a$\", \"minLength\": 1}",
     "keyword \"minLength\" at # is not supported for type \"string\""},
    {"{\"type\": \"string\", \"pattern\": \"^a$\", \"format\": \"date\"}", "format next to pattern at #"},
    {"{\"type\": \"string\", \"format\": \"date\", \"maxLength\": 3}", "keyword \"maxLength\" at #"},
    {"{\"type\": \"string\", \"format\": 1}", "format at # must be a string"},
    {"{\"type\": \"string\", \"minLength\": -1}", "minLength at # must be a non-negative integer"},
    {"{\"type\": \"string\", \"maxLength\": 1.5}", "maxLength at # must be a non-negative integer"},
    {"{\"type\": \"string\", \"maxLength\": 1e12}", "below 2^31"},
    {"{\"type\": \"string\", \"minLength\": 3, \"maxLength\": 2}", "minLength above maxLength at #"},
    {"{\"type\": \"array\", \"minItems\": 3, \"maxItems\": 2}", "minItems above maxItems at #"},
    {"{\"type\": \"array\", \"minItems\": \"3\"}", "minItems at # must be a non-negative integer"},
    {"{\"type\": \"array\", \"items\": [{}], \"minItems\": 1}", "keyword \"minItems\" at # is not supported for type \"array\""},
    {"{\"type\": \"array\", \"items\": {}, \"prefixItems\": [{}]}", "prefixItems next to items at #"},
    {"{\"type\": \"array\", \"items\": true}", "schema at #/items must be an object"},
    {"{\"type\": \"array\", \"items\": {\"type\": \"integer\", \"maximum\": \"9\"}}", "maximum at #/items must be a number"},
    {"{\"type\": \"integer\", \"minimum\": 10, \"maximum\": 5}", "the integer range at # is empty (10 > 5)"},
    {"{\"type\": \"integer\", \"exclusiveMinimum\": 5, \"exclusiveMaximum\": 6}", "is empty (6 > 5)"},
    {"{\"type\": \"integer\", \"minimum\": 1, \"exclusiveMinimum\": 0}", "both minimum and exclusiveMinimum at #"},
    {"{\"type\": \"integer\", \"maximum\": 1, \"exclusiveMaximum\": 0}", "both maximum and exclusiveMaximum at #"},
    {"{\"type\": \"integer\", \"exclusiveMinimum\": true}", "exclusiveMinimum at # must be a number"},
    {"{\"type\": \"integer\", \"maximum\": 1e300}", "maximum at # is beyond +-2^53"},
    {"{\"type\": \"object\", \"properties\": []}", "properties at # must be an object"},
    {"{\"type\": \"object\", \"properties\": {\"a\": {}}, \"required\": \"a\"}", "required at # must be an array of strings"},
    {"{\"type\": \"object\", \"properties\": {\"a\": {}}, \"required\": [\"b\"]}",
     "required property \"b\" at # is not in properties"},
    {"{\"type\": \"object\", \"additionalProperties\": 1}", "additionalProperties at # must be a boolean or a schema"},
    {"{\"type\": \"object\", \"properties\": {\"a\": {}, \"a\": {}}}", "duplicate key \"a\" at #/properties"},
    {"{\"type\": \"object\", \"type\": \"string\"}", "duplicate key \"type\" at #"},
    {"{\"properties\": {\"a/b~\": {\"type\": \"foo\"}}}", "unrecognized type \"foo\" at #/properties/a~1b~0"},
    {"{\"allOf\": []}", "allOf at # must be a non-empty array of schemas"},
    {"{\"allOf\": [{\"type\": \"string\"}]}", "allOf component at #/allOf/0 is not an object or enum schema"},
    {"{\"allOf\": [{\"enum\": [1]}, {\"type\": \"object\"}]}", "allOf at # mixes enum and object schemas"},
    {"{\"allOf\": [{\"enum\": [1]}, {\"enum\": [2]}]}", "the enums of allOf at # have no value in common"},
    {"{\"allOf\": [{\"properties\": {\"a\": {}}}, {\"properties\": {\"a\": {}}}]}",
     "property \"a\" at #/allOf/1/properties is defined twice"},
    {"{\"allOf\": [{\"type\": \"object\", \"additionalProperties\": true}]}",
     "additionalProperties at #/allOf/0 is not supported in an allOf component"},
    {"{\"allOf\": [{\"type\": \"object\", \"minProperties\": 1}]}", "unsupported keyword \"minProperties\" at #/allOf/0"},
    {"{\"allOf\": [{\"$ref\": \"#/$defs/a\"}], \"$defs\": {\"a\": {\"$ref\": \"#/$defs/a\"}}}", "$refs nest too deep or cycle"},
    {"{\"allOf\": [{\"anyOf\": [{\"anyOf\": [{}]}]}]}", "anyOf inside anyOf at #/allOf/0/anyOf/0"},
};

static void test_errors(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        char *g = (char *)1;
        qr_status st = qr_json_schema_to_grammar(bad_cases[i].schema, strlen(bad_cases[i].schema), &g);
        if (st == QR_OK) fail_msg("%s: converts to\n%s", bad_cases[i].schema, g);
        assert_int_equal(st, QR_ERR_INVALID_ARG);
        assert_null(g);
        if (!strstr(qr_last_error(), bad_cases[i].want))
            fail_msg("%s: \"%s\", expected \"%s\"", bad_cases[i].schema, qr_last_error(), bad_cases[i].want);
        if (strncmp(qr_last_error(), "json schema: ", 13) != 0) fail_msg("%s", qr_last_error());
    }
    char *g;
    assert_int_equal(qr_json_schema_to_grammar(NULL, 3, &g), QR_ERR_INVALID_ARG);
    assert_int_equal(qr_json_schema_to_grammar("{}", 2, NULL), QR_ERR_INVALID_ARG);
}

/* annotations are accepted anywhere, and change nothing */
static void test_annotations(void **state) {
    (void)state;
    const char *plain = "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}}}";
    const char *annotated =
        "{\"$schema\": \"x\", \"$id\": \"y\", \"title\": \"t\", \"description\": \"d\", \"type\": "
        "\"object\", \"$comment\": \"c\", \"properties\": {\"a\": {\"type\": \"integer\", "
        "\"examples\": [1], \"default\": 0, \"readOnly\": true, \"writeOnly\": false, "
        "\"deprecated\": false, \"format\": \"int32\"}}, \"strict\": true, \"$defs\": {\"unused\": "
        "{\"not\": {}}}}";
    char *a, *b;
    assert_int_equal(qr_json_schema_to_grammar(plain, strlen(plain), &a), QR_OK);
    if (qr_json_schema_to_grammar(annotated, strlen(annotated), &b) != QR_OK) fail_msg("%s", qr_last_error());
    assert_string_equal(a, b);
    free(a);
    free(b);
}

/* deep nesting fails with a message, never a crash; a recursive $ref converts */
static void test_limits(void **state) {
    (void)state;
    char *g = NULL;
    /* 100 nested arrays: deeper than QR_SCHEMA_MAX_DEPTH */
    qr_strbuf b = {0};
    const char *level = "{\"type\": \"array\", \"items\": ";
    for (int i = 0; i < 100; i++)
        qr_strbuf_append(&b, level, strlen(level));
    qr_strbuf_append(&b, "{}", 2);
    for (int i = 0; i < 100; i++)
        qr_strbuf_append(&b, "}", 1);
    assert_false(b.oom);
    assert_int_equal(qr_json_schema_to_grammar(b.p, b.n, &g), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "schemas nest deeper than 64 at #/items/items"));
    free(b.p);
    /* 100000 nested JSON arrays: cJSON's own nesting limit */
    b = (qr_strbuf){0};
    for (int i = 0; i < 100000; i++)
        qr_strbuf_append(&b, "[", 1);
    assert_int_equal(qr_json_schema_to_grammar(b.p, b.n, &g), QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "not valid JSON"));
    free(b.p);
    /* type arrays doubling at each of 40 levels: stopped by the output or visit budget, not
     * after 2^40 visits */
    b = (qr_strbuf){0};
    level = "{\"type\": [\"object\", \"object\"], \"properties\": {\"a\": ";
    for (int i = 0; i < 40; i++)
        qr_strbuf_append(&b, level, strlen(level));
    qr_strbuf_append(&b, "{}", 2);
    for (int i = 0; i < 40; i++)
        qr_strbuf_append(&b, "}}", 2);
    assert_int_equal(qr_json_schema_to_grammar(b.p, b.n, &g), QR_ERR_INVALID_ARG);
    assert_true(strstr(qr_last_error(), "schema visits") ||
                strstr(qr_last_error(), "the grammar would exceed"));
    free(b.p);
    /* a schema referring to itself: the rule refers to itself */
    const char *rec = "{\"$defs\": {\"t\": {\"type\": \"array\", \"items\": {\"$ref\": \"#/$defs/t\"}}}, "
                      "\"$ref\": \"#/$defs/t\"}";
    if (qr_json_schema_to_grammar(rec, strlen(rec), &g) != QR_OK) fail_msg("%s", qr_last_error());
    assert_non_null(strstr(g, "ref-defs-t ::= \"[\" space (ref-defs-t-item"));
    qr_grammar *gr;
    assert_int_equal(qr_grammar_parse(g, NULL, &gr), QR_OK);
    assert_true(qr_grammar_accepts(gr, "[[],[[]]]", 9));
    assert_false(qr_grammar_accepts(gr, "[[],[[]]", 8));
    qr_grammar_free(gr);
    free(g);
}

/* a tool-call grammar from two schemas and hand-written rules (hand-worked instances) */
static void test_rules_api(void **state) {
    (void)state;
    cJSON *p1 = cJSON_Parse("{\"type\": \"object\", \"properties\": {\"city\": {\"type\": "
                            "\"string\"}}, \"required\": [\"city\"]}");
    cJSON *p2 = cJSON_Parse("{\"type\": \"object\", \"properties\": {\"city\": {\"type\": "
                            "\"integer\"}, \"$defs\": {\"$ref\": \"#/$defs/d\"}}, \"$defs\": {\"d\": "
                            "{\"enum\": [1, 2]}}}");
    assert_non_null(p1);
    assert_non_null(p2);
    qr_schema_rules *r = qr_schema_rules_create();
    assert_non_null(r);
    const char *args[2], *call[2];
    const cJSON *params[2] = {p1, p2};
    const char *names[2] = {"\"get_weather\"", "\"get_time\""};
    for (int i = 0; i < 2; i++) {
        if (qr_json_schema_rules(r, "tool-args", params[i], &args[i]) != QR_OK) fail_msg("%s", qr_last_error());
        char *lit = qr_gbnf_literal(names[i], strlen(names[i]));
        char body[512];
        snprintf(body, sizeof body,
                 "\"{\" space \"\\\"name\\\"\" space \":\" space %s \",\" space "
                 "\"\\\"arguments\\\"\" space \":\" space %s space \"}\"",
                 lit, args[i]);
        free(lit);
        assert_int_equal(qr_schema_rules_add(r, "tool-call", body, &call[i]), QR_OK);
    }
    assert_string_equal(args[0], "tool-args");
    assert_string_equal(args[1], "tool-args0"); /* taken with another body */
    assert_string_equal(call[1], "tool-call0");
    char root[128];
    snprintf(root, sizeof root, "%s | %s", call[0], call[1]);
    assert_int_equal(qr_schema_rules_add(r, "root", root, NULL), QR_OK);
    char *text;
    assert_int_equal(qr_schema_rules_text(r, &text), QR_OK);
    qr_schema_rules_free(r);
    qr_grammar *g;
    if (qr_grammar_parse(text, NULL, &g) != QR_OK) fail_msg("%s\n%s", qr_last_error(), text);
    const char *yes[] = {"{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}",
                         "{\"name\":\"get_time\",\"arguments\":{}}",
                         "{\"name\": \"get_time\", \"arguments\": {\"city\": 3, \"$defs\": 2}}"};
    const char *no[] = {"{\"name\": \"get_weather\", \"arguments\": {\"city\": 3}}",
                        "{\"name\": \"get_time\", \"arguments\": {\"city\": \"Paris\"}}",
                        "{\"name\": \"get_time\", \"arguments\": {\"$defs\": 3}}",
                        "{\"name\": \"other\", \"arguments\": {}}"};
    for (size_t i = 0; i < 3; i++)
        if (!qr_grammar_accepts(g, yes[i], strlen(yes[i]))) fail_msg("rejects %s\n%s", yes[i], text);
    for (size_t i = 0; i < 4; i++)
        if (qr_grammar_accepts(g, no[i], strlen(no[i]))) fail_msg("accepts %s\n%s", no[i], text);
    qr_grammar_free(g);
    free(text);
    /* the cJSON entry point gives what the text one gives */
    char *a, *b, *s = cJSON_PrintUnformatted(p2);
    assert_int_equal(qr_json_schema_to_grammar_cjson(p2, &a), QR_OK);
    assert_int_equal(qr_json_schema_to_grammar(s, strlen(s), &b), QR_OK);
    assert_string_equal(a, b);
    free(a);
    free(b);
    free(s);
    cJSON_Delete(p1);
    cJSON_Delete(p2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_cases), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_annotations), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_rules_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
