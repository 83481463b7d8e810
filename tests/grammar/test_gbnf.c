/* test_gbnf.c - the GBNF parser and matcher: every construct against hand-worked strings
 * (qr_grammar_accepts), llama.cpp's example grammars (tests/grammar/gbnf/, copied from
 * llama.cpp's grammars/) with hand-checked strings, and every error path by its message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "grammar/grammar.h"
#include "quarrel.h"
#include "test_util.h"

static qr_grammar *parse_ok(const char *text) {
    qr_grammar *g = NULL;
    qr_status rc = qr_grammar_parse(text, NULL, &g);
    if (rc != QR_OK) fail_msg("grammar refused: %s\n%s", qr_last_error(), text);
    return g;
}

/* Each string of yes[] accepted, each of no[] refused (NULL-terminated lists). */
static void check(const char *text, const char *const *yes, const char *const *no) {
    qr_grammar *g = parse_ok(text);
    for (; yes && *yes; yes++)
        if (!qr_grammar_accepts(g, *yes, strlen(*yes)))
            fail_msg("should accept \"%s\": grammar %.60s", *yes, text);
    for (; no && *no; no++)
        if (qr_grammar_accepts(g, *no, strlen(*no)))
            fail_msg("should refuse \"%s\": grammar %.60s", *no, text);
    qr_grammar_free(g);
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_literals_and_alternation(void **state) {
    (void)state;
    check("root ::= \"ab\" | \"c\"", L("ab", "c"), L("", "a", "abc", "cc", "b"));
    check("root ::= \"a\" b\nb ::= \"x\" | \"y\"", L("ax", "ay"), L("a", "axy", "x"));
    check("root ::= \"\"", L(""), L("a"));
    check("root ::= ( \"a\" ( \"b\" | \"c\" ) )+ \"!\"", L("ab!", "acab!"), L("!", "a!", "ab"));
    /* rule names with '-' and digits, comments, newlines inside groups */
    check("# a comment\nroot ::= my-rule2 # trailing\nmy-rule2 ::= (\n  \"x\" |\n  \"y\"\n)",
          L("x", "y"), L("xy", ""));
}

static void test_repetitions(void **state) {
    (void)state;
    check("root ::= \"a\"*", L("", "a", "aaaa"), L("b", "ab"));
    check("root ::= \"a\"+", L("a", "aaa"), L(""));
    check("root ::= \"a\"? \"b\"", L("b", "ab"), L("aab", ""));
    check("root ::= \"a\"{0} \"b\"", L("b"), L("ab"));
    check("root ::= \"a\"{2}", L("aa"), L("a", "aaa", ""));
    check("root ::= \"a\"{2,}", L("aa", "aaa", "aaaaaaa"), L("a", ""));
    check("root ::= \"a\"{1,3}", L("a", "aa", "aaa"), L("", "aaaa"));
    check("root ::= \"a\"{0,2}", L("", "a", "aa"), L("aaa"));
    check("root ::= (\"ab\" | \"c\"){2} \"d\"", L("ababd", "abcd", "ccd"), L("abd", "cccd"));
    check("root ::= ([0-9]{2}){1,2}", L("12", "1234"), L("1", "123", "12345"));
    /* spaces inside the braces, as llama.cpp allows */
    check("root ::= \"x\"{ 1 , 2 }", L("x", "xx"), L("xxx"));
}

static void test_classes(void **state) {
    (void)state;
    check("root ::= [a-cx]", L("a", "b", "c", "x"), L("d", "w", "", "ab"));
    check("root ::= [^a-c\\n]", L("d", "Z", "\xc3\xa9"), L("a", "c", "\n", ""));
    check("root ::= [\\-\\]\\[]", L("-", "]", "["), L("a"));
    check("root ::= [a-]", L("a", "-"), L("b")); /* '-' before ']' is a plain char */
    check("root ::= .", L("a", "\xe2\x82\xac", "\n"), L("", "ab"));
    check("root ::= . \"x\"", L("\xf0\x9f\x98\x80x"), L("x"));
}

static void test_escapes_and_unicode(void **state) {
    (void)state;
    check("root ::= \"\\x41\\u00e9\\U0001F600\"", L("A\xc3\xa9\xf0\x9f\x98\x80"), L("A"));
    check("root ::= \"\\t\\r\\n\\\\\\\"\"", L("\t\r\n\\\""), L("t"));
    /* a multi-byte character written literally, and a range over them */
    check("root ::= \"\xc3\xa9\" [\xe3\x81\x81-\xe3\x82\x9f]+", L("\xc3\xa9\xe3\x81\x82"),
          L("\xc3\xa9", "\xc3\xa9"
                        "a"));
    check("root ::= [\\u0100-\\uFFFF]", L("\xc4\x80", "\xef\xbf\xbf"), L("\xc3\xbf", "a"));
}

/* A string must not stop inside a character: a 3-byte char's first 2 bytes are refused. */
static void test_partial_utf8(void **state) {
    (void)state;
    qr_grammar *g = parse_ok("root ::= \"\xe2\x82\xac\" \"x\"");
    assert_false(qr_grammar_accepts(g, "\xe2\x82", 2));
    qr_grammar_matcher *m;
    assert_int_equal(qr_grammar_matcher_create(g, &m), QR_OK);
    assert_true(qr_grammar_matcher_accept(m, "\xe2\x82", 2)); /* cut inside the char */
    assert_false(qr_grammar_matcher_can_end(m));
    assert_false(qr_grammar_matcher_accept(m, "y", 1)); /* not a continuation byte */
    assert_true(qr_grammar_matcher_accept(m, "\xac", 1));
    assert_false(qr_grammar_matcher_can_end(m));
    qr_grammar_matcher *c = qr_grammar_matcher_clone(m);
    assert_non_null(c);
    assert_true(qr_grammar_matcher_accept(m, "x", 1));
    assert_true(qr_grammar_matcher_can_end(m));
    assert_true(qr_grammar_matcher_done(m));
    assert_false(qr_grammar_matcher_accept(m, "x", 1));
    assert_false(qr_grammar_matcher_done(c)); /* the clone kept its own state */
    qr_grammar_matcher_reset(m);
    assert_false(qr_grammar_matcher_can_end(m));
    assert_true(qr_grammar_matcher_accept(m, "\xe2\x82\xacx", 4));
    qr_grammar_matcher_free(c);
    qr_grammar_matcher_free(m);
    qr_grammar_free(g);
}

/* llama.cpp's example grammars parse, and accept / refuse hand-checked strings. */
static char *read_gbnf(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/grammar/gbnf/%s", QR_TEST_DIR, name);
    char *t = qr_test_read_file(path, NULL);
    if (!t) fail_msg("cannot read %s", path);
    return t;
}

static void check_file(const char *name, const char *const *yes, const char *const *no) {
    char *t = read_gbnf(name);
    check(t, yes, no);
    free(t);
}

static void test_llama_grammars(void **state) {
    (void)state;
    check_file("json.gbnf",
               L("{}", "{\"a\": [1, 2.5e3, \"x\\n\", true, null]}", "{\"k\":{\"n\":-0}}"),
               L("{", "[]", "{\"a\":01}", "{'a':1}", "{\"a\" 1}"));
    check_file("json_arr.gbnf", L("[\n]", "[\n{\"a\": 1},\n2]"), L("[]", "{}", "[\n1,]"));
    check_file("arithmetic.gbnf", L("1+2=3\n", "(a*b) = c\nx=1\n"), L("1+2=3", "=3\n", "+1=2\n"));
    check_file("list.gbnf", L("- a\n", "- one\n- two\n"), L("- \n", "-a\n", "- a"));
    check_file("chess.gbnf", L("1. e4 e5\n2. Nf3 Nc6\n", "1. O-O-O Qxd8+\n2. exd8=Q a1\n"),
               L("1. e4 e5\n", "1. e9 e5\n2. a1 a2\n", "1. Kz1 e5\n2. a1 a2\n"));
    check_file("english.gbnf", L("Hello, world!", "a b\tc"), L("", "a  b", "caf\xc3\xa9"));
    check_file("japanese.gbnf", L("\xe3\x81\x82\xe3\x82\xa2", "\xe4\xb8\x80 \xe3\x81\x82"),
               L("a", "\xe3\x81\x82  \xe3\x81\x82"));
    check_file("c.gbnf", L("int main(){return 0;}", "float f(int x){x = 1;}"),
               L("int main(){return 0}", "main(){}"));
}

/* The parser's error, checked by its message. */
static void expect_error(const char *text, const char *root, const char *want) {
    qr_grammar *g = (qr_grammar *)1;
    qr_status rc = qr_grammar_parse(text, root, &g);
    assert_int_equal(rc, QR_ERR_INVALID_ARG);
    assert_null(g);
    if (!strstr(qr_last_error(), want))
        fail_msg("grammar %s\nerror \"%s\"\ndoes not contain \"%s\"", text, qr_last_error(), want);
    assert_int_equal(qr_grammar_check(text, root), QR_ERR_INVALID_ARG);
}

static void test_errors(void **state) {
    (void)state;
    expect_error("root ::= \"abc", NULL, "line 1, column 10: unterminated string literal");
    expect_error("root ::= [a-", NULL, "line 1, column 10: unterminated character class");
    expect_error("root ::= [ab", NULL, "line 1, column 10: unterminated character class");
    expect_error("root ::= \"a\"\nx ::= y\n", NULL,
                 "line 2, column 7: undefined rule identifier 'y'");
    expect_error("root ::= \"a\"\n\nfoo ::= \"\\q\"", NULL,
                 "line 3, column 10: unknown escape '\\q'");
    expect_error("root ::= \"\\x4\"", NULL, "line 1, column 14: expecting 2 hex digits");
    expect_error("root ::= \"\\u12G4\"", NULL, "line 1, column 15: expecting 4 hex digits");
    expect_error("root ::= \"\\U0001F60\"", NULL, "expecting 8 hex digits");
    expect_error("root := \"a\"", NULL, "line 1, column 6: expecting '::='");
    expect_error("::= \"a\"", NULL, "line 1, column 1: expecting a rule name");
    expect_error("root ::= (\"a\"", NULL, "line 1, column 14: expecting ')'");
    expect_error("root ::= \"a\" )", NULL, "line 1, column 14: expecting a newline or the end");
    expect_error("root ::= * \"a\"", NULL, "line 1, column 10: expecting an item before */+/?/{");
    expect_error("root ::= \"a\"{x}", NULL, "line 1, column 14: expecting an integer after '{'");
    expect_error("root ::= \"a\"{2", NULL, "line 1, column 15: expecting ',' or '}'");
    expect_error("root ::= \"a\"{2,3", NULL, "line 1, column 17: expecting '}'");
    expect_error("root ::= \"a\"{3,2}", NULL, "line 1, column 13: repetition {3,2}");
    expect_error("root ::= \"a\"{2001}", NULL,
                 "line 1, column 13: repetition count 2001 is larger");
    expect_error("root ::= \"a\"{99999999999999999999999}", NULL, "is larger than 2000");
    expect_error("root ::= (\"a\"{0,50}){0,50}", NULL,
                 "line 1, column 21: the repetition makes more");
    expect_error("root ::= <[12]>", NULL, "line 1, column 10: token references");
    expect_error("root ::= !<x>", NULL, "line 1, column 10: token references");
    expect_error("a ::= \"x\"", NULL, "no rule named 'root'");
    expect_error("a ::= \"x\"", "start", "no rule named 'start'");
    expect_error("", NULL, "no rules");
    expect_error("# only a comment\n", NULL, "no rules");
    expect_error("root ::= root \"a\" | \"b\"", NULL, "left recursion in rule 'root'");
    expect_error("root ::= a\na ::= b? a \"x\"\nb ::= \"y\"", NULL, "left recursion");
    /* not left recursion: a non-empty item first */
    check("root ::= \"(\" root \")\" | \"x\"", L("x", "((x))"), L("(x", "()"));
}

/* 100000 nested groups: refused with a message, no stack overflow. */
static void test_deep_nesting(void **state) {
    (void)state;
    const size_t depth = 100000;
    char *t = malloc(2 * depth + 32);
    strcpy(t, "root ::= ");
    size_t n = strlen(t);
    memset(t + n, '(', depth);
    n += depth;
    t[n++] = '"';
    t[n++] = 'a';
    t[n++] = '"';
    memset(t + n, ')', depth);
    t[n + depth] = '\0';
    expect_error(t, NULL, "groups nested more than 1000 deep");
    free(t);
    /* a long chain of rules, each starting with the next: refused too, by depth */
    size_t rules = 5000, cap = rules * 32;
    char *c = malloc(cap);
    size_t k = (size_t)snprintf(c, cap, "root ::= r0\n");
    for (size_t i = 0; i + 1 < rules; i++)
        k += (size_t)snprintf(c + k, cap - k, "r%zu ::= r%zu\n", i, i + 1);
    snprintf(c + k, cap - k, "r%zu ::= \"z\"\n", rules - 1);
    expect_error(c, NULL, "rule references nested more than 1000 deep");
    free(c);
}

/* An ambiguous grammar whose stacks multiply is stopped by the bounds with a message. */
static void test_ambiguity_bound(void **state) {
    (void)state;
    qr_grammar *g = parse_ok("root ::= x\nx ::= \"a\" x \"b\" | \"a\" x \"c\" | \"a\" x \"d\" | ");
    qr_grammar_matcher *m;
    assert_int_equal(qr_grammar_matcher_create(g, &m), QR_OK);
    bool ok = true;
    int i = 0;
    for (; i < 64 && ok; i++)
        ok = qr_grammar_matcher_accept(m, "a", 1);
    assert_false(ok); /* 3^i distinct stacks: past 10000 after 9 characters */
    assert_true(qr_grammar_matcher_overflowed(m));
    assert_true(i < 12);
    qr_grammar_matcher_free(m);
    qr_grammar_free(g);
}

/* Left recursion through a rule that may be empty only through other rules (ws below), which
 * llama.cpp's check does not see: the grammar parses, but expanding it would grow a stack
 * forever; the matcher stops on its work bound with a message. */
static void test_hidden_left_recursion(void **state) {
    (void)state;
    qr_grammar *g = parse_ok("root ::= term\nterm ::= ws term \"x\" | \"y\"\nws ::= [ ]*");
    qr_grammar_matcher *m = (qr_grammar_matcher *)1;
    assert_int_equal(qr_grammar_matcher_create(g, &m), QR_ERR_INVALID_ARG);
    assert_null(m);
    assert_non_null(strstr(qr_last_error(), "too ambiguous"));
    assert_false(qr_grammar_accepts(g, "y", 1));
    qr_grammar_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals_and_alternation),
        cmocka_unit_test(test_repetitions),
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_escapes_and_unicode),
        cmocka_unit_test(test_partial_utf8),
        cmocka_unit_test(test_llama_grammars),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_ambiguity_bound),
        cmocka_unit_test(test_hidden_left_recursion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
