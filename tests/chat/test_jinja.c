/* test_jinja.c - the Jinja subset interpreter, construct by construct, on small hand-worked
 * templates (each expected string is what Jinja2 3.1 with trim_blocks and lstrip_blocks
 * prints), then every error path: bad input must give QR_ERR_TEMPLATE and a message naming
 * the problem (and the line), never a crash. Also family detection and argument checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quarrel.h"

static const qr_chat_message one_user[] = {{"user", "Hi"}};

/* render src with messages [user "Hi"], bos "<s>", eos "</s>", add_generation_prompt */
static qr_status render(const char *src, char **out) {
    return qr_chat_apply_template(src, one_user, 1, true, "<s>", "</s>", out);
}

static void expect(const char *src, const char *want) {
    char *out = NULL;
    qr_status st = render(src, &out);
    if (st != QR_OK) fail_msg("template %s\nfailed: %s", src, qr_last_error());
    if (strcmp(out, want) != 0) fail_msg("template %s\nwant [%s]\ngot  [%s]", src, want, out);
    free(out);
}

static void expect_error(const char *src, const char *msg_part) {
    char *out = NULL;
    qr_status st = render(src, &out);
    if (st != QR_ERR_TEMPLATE) fail_msg("template %s\nshould fail, got [%s]", src, out);
    assert_null(out);
    if (!strstr(qr_last_error(), msg_part))
        fail_msg("template %s\nerror [%s] lacks [%s]", src, qr_last_error(), msg_part);
}

static void test_output_and_literals(void **state) {
    (void)state;
    expect("plain text", "plain text");
    expect("{{ 'a' ~ 1 ~ none }}", "a1None");
    expect("{{ \"x\" 'y' }}", "xy"); /* adjacent literals */
    expect("{{ 'a\\nb\\u00e9\\'' }}", "a\nb\xc3\xa9'");
    expect("{{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 2.5e-7 }}",
           "1.0 0.30000000000000004 1e+20 2.5e-07");
    expect("{{ [true, none, \"it's\", 'it''s'] }}", "[True, None, \"it's\", 'its']");
    expect("{{ {'a': 'x', 'b': [1]} }}", "{'a': 'x', 'b': [1]}");
    expect("{{ (1, 2) | list }}", "[1, 2]");
    expect("{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m['content'] }}{% endfor %}"
           "{{ eos_token }}",
           "<s>user:Hi</s>");
    expect("{{ add_generation_prompt }} {{ tools }} {{ documents is none }}", "True None True");
}

static void test_whitespace_control(void **state) {
    (void)state;
    expect("{% if true %}\n  x\n{% endif %}\n", "  x\n");   /* trim_blocks; final \n dropped */
    expect("  {% if true %}\nx\n  {% endif %}\ny", "x\ny"); /* lstrip_blocks */
    expect("a  {{- 'b' -}}  c", "abc");
    expect("a {%- if true -%} b {%- endif %}", "ab");
    expect("  {%+ if true %}x{% endif %}", "  x"); /* '+' keeps the indentation */
    expect("{% if true +%}\nx{% endif %}", "\nx"); /* '+' keeps the newline */
    expect("a{# c #}b{#- x -#} c", "abc");
    expect("  {# comment #}\nx", "x");
    expect("{{ 'v' }}\n", "v");
    expect("{{ 'v' }}\nw", "v\nw"); /* no trim after '}}' */
    expect("a\r\nb", "a\nb");
    expect("abc\n\n", "abc\n");
}

static void test_control_flow(void **state) {
    (void)state;
    expect("{% for x in [1,2,3] %}{{ loop.index }}{{ '|' if not loop.last }}{% endfor %}", "1|2|3");
    expect("{% for x in 'ab' %}{{ loop.index0 }}{{ x }}{{ loop.length }}{{ loop.first }}"
           "{% endfor %}",
           "0a2True1b2False");
    expect("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}"
           "{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}",
           "0134");
    expect("{% for x in [] %}a{% else %}empty{% endfor %}", "empty");
    expect("{% for x in [1,2,3,4] if x is even %}{{ x }}/{{ loop.length }} {% endfor %}",
           "2/2 4/2 ");
    expect("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;");
    expect("{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}", "ab");
    expect("{% for x in undefined_thing %}x{% endfor %}.", ".");
    expect("{% if 0 %}a{% elif '' %}b{% elif [1] %}c{% else %}d{% endif %}", "c");
    expect("{% for x in [1, 2] %}{{ loop.previtem is defined }}{{ loop.nextitem }}{% endfor %}",
           "False2True");
}

static void test_set_and_scope(void **state) {
    (void)state;
    expect("{% set ns = namespace(n=0) %}{% for x in [1,2,3] %}{% set ns.n = ns.n + x %}"
           "{% endfor %}{{ ns.n }}",
           "6");
    expect("{% set y = 1 %}{% for x in [1] %}{% set y = 2 %}{% endfor %}{{ y }}", "1");
    expect("{% set y = 1 %}{% if true %}{% set y = 2 %}{% endif %}{{ y }}", "2");
    expect("{% set a, b = [1, 2] %}{{ b }}{{ a }}", "21");
    expect("{% set x %}a{{ 1 }}{% endset %}[{{ x }}]", "[a1]");
    expect("{% set x | upper %}ab{% endset %}{{ x }}", "AB");
    expect("{% macro greet(name, p='Hi') %}{{ p }} {{ name }}{% endmacro %}"
           "{{ greet('Bob') }}/{{ greet('Al', p='Yo') }}/{{ greet(p='Hey', name='Cy') }}",
           "Hi Bob/Yo Al/Hey Cy");
    expect("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(3) }}",
           "321");
    expect("{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}in{% endcall %}", "<in>");
    expect("{% filter upper %}abc{% endfilter %}", "ABC");
    expect("{% generation %}x{% endgeneration %}", "x");
}

static void test_expressions(void **state) {
    (void)state;
    expect("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 1 / 2 }} {{ 2 ** 10 }}",
           "3 -4 1 2 0.5 1024");
    expect("{{ 3 * 'ab' }} {{ [1] + [2] }} {{ 'a' + 'b' }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }}",
           "ababab [1, 2] ab 7 9");
    expect("{{ 'y' if 1 > 2 else 'n' }}{{ 0 or 'z' }}{{ 1 and 'w' }}{{ not 0 }}", "nzwTrue");
    expect("{{ 'ell' in 'hello' }}{{ 2 not in [1,2] }}{{ 'a' in {'a':1} }}", "TrueFalseTrue");
    expect("{{ 1 == 1.0 }}{{ 'a' != 'b' }}{{ 'a' < 'b' }}{{ [1, 2] == [1, 2] }}",
           "TrueTrueTrueTrue");
    expect("{{ [1,2,3][::-1] }}|{{ 'hello'[1:3] }}|{{ 'h\xc3\xa9llo'[::-1] }}|{{ [1,2,3][-1] }}",
           "[3, 2, 1]|el|oll\xc3\xa9h|3");
    expect("{{ [1,2,3,4,5][1:-1:2] }}{{ 'abc'[5:] }}{{ [1][5] is defined }}", "[2, 4]False");
    expect("{{ messages[0]['role'] }}{{ messages[-1].content }}{{ messages.0.role }}",
           "userHiuser");
    expect("{{ {'a': {'b': 'c'}}.a.b }}", "c");
    expect("{{ -(2) }}{{ - 1 + 3 }}", "-22");
}

static void test_tests_and_undefined(void **state) {
    (void)state;
    expect("{{ x is defined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} "
           "{{ 3 is odd }} {{ [1] is iterable }} {{ 1 is number }} {{ true is boolean }}",
           "False True True True True True True True");
    expect("{{ 'a' is not string }} {{ x is undefined }} {{ 6 is divisibleby 3 }} "
           "{{ 2 is equalto 2 }} {{ 1.5 is float }} {{ 1 is integer }} {{ 'ab' is lower }}",
           "False True True True True True True");
    expect("[{{ foo }}][{{ foo | length }}][{% if foo %}x{% endif %}]"
           "[{{ messages[0].nope is defined }}][{{ foo ~ 'a' }}][{{ foo == bar }}]",
           "[][0][][False][a][True]");
}

static void test_filters(void **state) {
    (void)state;
    expect("{{ '  hi  ' | trim }}|{{ 'Hello' | upper }}|{{ [1,2] | length }}|"
           "{{ ['a','b'] | join(', ') }}|{{ x | default('d') }}|{{ '' | default('e', true) }}",
           "hi|HELLO|2|a, b|d|e");
    expect("{{ [3,1,2] | sort | list }}|{{ 'a-b' | replace('-', '+') }}|"
           "{{ 'hello wORLD' | title }}|{{ 'hELLO' | capitalize }}|{{ 'AbC' | lower }}",
           "[1, 2, 3]|a+b|Hello World|Hello|abc");
    expect(
        "{{ [1,2,3] | first }}{{ [1,2,3] | last }}{{ 'abc' | first }}{{ [1,1,2] | unique | list }}",
        "13a[1, 2]");
    expect(
        "{{ '42' | int + 1 }} {{ 'x' | int }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 7 | string }}",
        "43 0 3 2.5 7");
    expect("{{ [1, 5, 3] | max }}{{ [4, 2] | min }}{{ [1, 2] | sum }}{{ -3 | abs }}{{ [1,2] | "
           "reverse | list }}",
           "5233[2, 1]");
    expect("{% for k, v in {'b': 1, 'a': 2} | dictsort %}{{ k }}{{ v }}{% endfor %}", "a2b1");
    expect("{% for k, v in {'b': 1, 'a': 2} | items %}{{ k }}{{ v }}{% endfor %}", "b1a2");
    expect(
        "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join }}",
        "Hi");
    expect("{{ [{'t': 1}, {'t': 0}] | rejectattr('t') | list }}", "[{'t': 0}]");
    expect("{{ ['a', 'b'] | map('upper') | list }}{{ [1, 2, 3] | select('odd') | list }}",
           "['A', 'B'][1, 3]");
    expect("{{ none | selectattr('x') | list }}", "[]");
    expect("{{ 'a\nb\n\nc' | indent(2) }}|{{ 'a\nb' | indent(2, first=true) }}",
           "a\n  b\n\n  c|  a\n  b");
    expect("{{ '<a&b>' | e }}{{ 'x' | safe }}{{ 'one two  three' | wordcount }}",
           "&lt;a&amp;b&gt;x3");
    expect("{{ [1,2,3,4,5] | batch(2) | list }}", "[[1, 2], [3, 4], [5]]");
}

static void test_tojson(void **state) {
    (void)state;
    expect("{{ {'a': [1, 'x', none, true], 'b': 1.5} | tojson }}",
           "{\"a\": [1, \"x\", null, true], \"b\": 1.5}");
    expect("{{ {'a': 1, 'b': [2]} | tojson(indent=2) }}",
           "{\n  \"a\": 1,\n  \"b\": [\n    2\n  ]\n}");
    expect("{{ '\xc3\xa9\"\\n' | tojson }}", "\"\xc3\xa9\\\"\\n\"");
    expect("{{ '\xc3\xa9' | tojson(ensure_ascii=true) }}", "\"\\u00e9\"");
    expect("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}", "{\"a\": 2, \"b\": 1}");
    expect("{{ {} | tojson }}{{ [] | tojson }}", "{}[]");
}

static void test_methods_and_globals(void **state) {
    (void)state;
    expect("{{ ' a b '.strip() }}|{{ 'a,b,c'.split(',') }}|{{ 'abc'.startswith('ab') }}|"
           "{{ 'x{}y{}'.format(1, 'z') }}|{{ 'aXbX'.rstrip('X') }}|{{ ' a  b '.split() }}",
           "a b|['a', 'b', 'c']|True|x1yz|aXb|['a', 'b']");
    expect(
        "{{ 'a.b.c'.split('.', 1) }}{{ 'a.b.c'.rsplit('.', 1) }}{{ 'abc'.endswith(('x', 'c')) }}",
        "['a', 'b.c']['a.b', 'c']True");
    expect("{{ 'aaa'.replace('a', 'b', 2) }}{{ 'hello'.find('l') }}{{ 'hello'.count('l') }}"
           "{{ 'Hi'.upper() }}{{ '12'.isdigit() }}",
           "bba22HITrue");
    expect("{{ {'a': 1}.get('a') }}{{ {'a': 1}.get('b') }}{{ {'a': 1}.get('b', 2) }}"
           "{{ {'a': 1}.keys() | list }}{{ {'a': 1}.values() | list }}",
           "1None2['a'][1]");
    expect("{{ range(3) | list }}{{ range(1, 7, 2) | list }}{{ range(3, 0, -1) | list }}",
           "[0, 1, 2][1, 3, 5][3, 2, 1]");
    expect("{{ dict(a=1)['a'] }}{% set ns = namespace(x='v') %}{{ ns.x }}", "1v");
    setenv("QUARREL_CHAT_DATE", "2026-01-01", 1);
    expect("{{ strftime_now('%d %b %Y') }} {{ strftime_now('%A %Y-%m-%d') }}",
           "01 Jan 2026 Thursday 2026-01-01");
}

static void test_syntax_errors(void **state) {
    (void)state;
    expect_error("{{ 'a' ", "unterminated '{{' tag");
    expect_error("{{ 'a }}", "unterminated string literal");
    expect_error("{% if x %}a", "unclosed 'if' block (expected 'endif')");
    expect_error("{% for x in y %}a", "unclosed 'for' block");
    expect_error("{% endif %}", "unexpected 'endif'");
    expect_error("{% if x %}{% endfor %}{% endif %}", "unexpected 'endfor' inside 'if' block");
    expect_error("{% else %}", "unexpected 'else'");
    expect_error("{% frob %}", "unknown or misplaced tag 'frob'");
    expect_error("{# abc", "unterminated comment");
    expect_error("{{ f(1 2) }}", "expected ','");
    expect_error("{{ (1 }}", "unterminated '{{' tag"); /* '}}' inside brackets does not close */
    expect_error("{{ }}", "unexpected '}}' in expression");
    expect_error("{{ 'a' @ 1 }}", "unexpected character '@'");
    expect_error("{{ '\\xZZ' }}", "bad \\x escape");
    expect_error("{% for x y %}{% endfor %}", "expected 'in' in for loop");
    expect_error("{% set %}", "expected a variable name after 'set'");
    expect_error("{% macro (a) %}{% endmacro %}", "expected a macro name");
    expect_error("{{ x | }}", "expected a filter name after '|'");
    expect_error("{% for x in y recursive %}{% endfor %}", "recursive for loops are not supported");
    expect_error("a\nb\n{% if %}", "line 3");
    char deep[1200];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 400; i++)
        deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 400; i++)
        deep[k++] = ')';
    memcpy(deep + k, " }}", 4);
    expect_error(deep, "nested too deeply");
}

static void test_runtime_errors(void **state) {
    (void)state;
    expect_error("{{ x | nosuchfilter }}", "unknown filter 'nosuchfilter'");
    expect_error("{{ x is nosuchtest }}", "unknown test 'nosuchtest'");
    expect_error("{{ raise_exception('boom') }}", "boom");
    expect_error("\n{{ raise_exception('System role not supported') }}",
                 "line 2: raise_exception: System role not supported");
    expect_error("{{ 1 + 'a' }}", "unsupported operand type(s) for +: 'int' and 'str'");
    expect_error("{{ foo() }}", "'foo' is undefined");
    expect_error("{{ foo.bar }}", "'foo' is undefined");
    expect_error("{{ foo + 1 }}", "'foo' is undefined");
    expect_error("{{ 'abc'() }}", "'str' object is not callable");
    expect_error("{{ [1].append(2) }}", "access to attribute 'append' of 'list' object is unsafe");
    expect_error("{{ {'a': 1}.update({}) }}", "unsafe");
    expect_error("{{ 1 / 0 }}", "division by zero");
    expect_error("{{ 1 // 0 }}", "division or modulo by zero");
    expect_error("{% for a, b in [1] %}{% endfor %}", "cannot unpack");
    expect_error("{% for x in none %}{% endfor %}", "'NoneType' object is not iterable");
    expect_error("{% for x in 5 %}{% endfor %}", "'int' object is not iterable");
    expect_error("{% set ns = 1 %}{% set ns.x = 1 %}", "non-namespace");
    expect_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "too deep");
    expect_error("{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}", "takes at most 1 argument");
    expect_error("{% macro f(a) %}{% endmacro %}{{ f(b=1) }}", "no parameter named 'b'");
    expect_error("{{ range(100000000) | length }}", "range() too long");
    expect_error("{{ 1 < 'a' }}", "cannot compare int with str");
    expect_error("{{ x | tojson }}", "tojson: Object of type Undefined is not JSON serializable");
    expect_error("{{ 'a'.nosuch() }}", "'nosuch' is undefined");
    expect_error("{{ '{}'.format() }}", "format: not enough arguments");
    expect_error("{{ 9223372036854775807 + 1 }}", "integer overflow");
    expect_error("{{ 'a' * 1000000000 }}", "MiB of memory");
    expect_error("{% for i in range(1000000) %}{% if 0 %}{% endif %}{% if 0 %}{% endif %}"
                 "{% if 0 %}{% endif %}{% if 0 %}{% endif %}{% if 0 %}{% endif %}"
                 "{% if 0 %}{% endif %}{% if 0 %}{% endif %}{% if 0 %}{% endif %}"
                 "{% if 0 %}{% endif %}{% if 0 %}{% endif %}{% endfor %}",
                 "step limit");
    /* allocation-heavy runaways stop at the memory cap instead */
    expect_error("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                 "MiB of memory");
}

static void test_bad_arguments(void **state) {
    (void)state;
    char *out = (char *)1;
    assert_int_equal(qr_chat_apply_template("chatml", one_user, 1, true, NULL, NULL, NULL),
                     QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "out is NULL"));
    qr_chat_message bad[] = {{"user", NULL}};
    assert_int_equal(qr_chat_apply_template("chatml", bad, 1, true, NULL, NULL, &out),
                     QR_ERR_INVALID_ARG);
    assert_null(out);
    assert_non_null(strstr(qr_last_error(), "chat message 0 has a NULL content"));
    qr_chat_message bad_role[] = {{NULL, "x"}};
    assert_int_equal(qr_chat_apply_template("{{ 1 }}", bad_role, 1, true, NULL, NULL, &out),
                     QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "NULL role"));
    assert_int_equal(qr_chat_apply_template("chatml", NULL, 2, true, NULL, NULL, &out),
                     QR_ERR_INVALID_ARG);
    assert_non_null(strstr(qr_last_error(), "messages is NULL"));
    /* NULL template = chatml; empty conversations are fine */
    assert_int_equal(qr_chat_apply_template(NULL, one_user, 1, true, NULL, NULL, &out), QR_OK);
    assert_string_equal(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    assert_int_equal(qr_chat_apply_template("llama3", NULL, 0, false, NULL, NULL, &out), QR_OK);
    assert_string_equal(out, "");
    free(out);
    /* NULL bos/eos render as empty strings */
    assert_int_equal(qr_chat_apply_template("[{{ bos_token }}{{ eos_token }}]", one_user, 1, true,
                                            NULL, NULL, &out),
                     QR_OK);
    assert_string_equal(out, "[]");
    free(out);
}

/* Every real template, cut at many points, must render or fail with a message: no crash
 * (run under ASan/UBSan to make this bite). */
static void test_truncated_templates(void **state) {
    (void)state;
    static const char *names[] = {"Qwen-Qwen3-0.6B.jinja", "meta-llama-Llama-3.1-8B-Instruct.jinja",
                                  "google-gemma-2-2b-it.jinja", "openai-gpt-oss-120b.jinja",
                                  "mistralai-Mistral-Nemo-Instruct-2407.jinja"};
    for (size_t t = 0; t < sizeof names / sizeof *names; t++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/templates/%s", QR_SHARED_DIR, names[t]);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *src = malloc((size_t)n + 1);
        assert_int_equal(fread(src, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        src[n] = '\0';
        long stepsz = n / 150 + 1;
        int n_ok = 0, n_err = 0;
        for (long cut = 0; cut <= n; cut += stepsz) {
            char saved = src[cut];
            src[cut] = '\0';
            char *out = NULL;
            qr_status st = render(src, &out);
            src[cut] = saved;
            if (st == QR_OK) {
                assert_non_null(out);
                n_ok++;
            } else {
                assert_int_equal(st, QR_ERR_TEMPLATE);
                assert_true(strncmp(qr_last_error(), "chat template", 13) == 0);
                n_err++;
            }
            free(out);
        }
        assert_true(n_err > 0); /* most cuts leave an unclosed block */
        free(src);
    }
}

static void test_detect_family(void **state) {
    (void)state;
    assert_null(qr_chat_detect_family(NULL));
    assert_null(qr_chat_detect_family("{{ messages }}"));
    assert_string_equal(qr_chat_detect_family("llama2"), "llama2");
    assert_string_equal(qr_chat_detect_family("{{ '[INST]' }}"), "llama2");
    assert_string_equal(qr_chat_detect_family("[INST] <<SYS>>"), "llama2-sys");
    assert_string_equal(qr_chat_detect_family("[INST] content.strip()"), "llama2-sys-strip");
    assert_string_equal(qr_chat_detect_family("bos_token + '[INST] ' <<SYS>>"), "llama2-sys-bos");
    assert_string_equal(qr_chat_detect_family("[INST][SYSTEM_PROMPT]"), "mistral-v7");
    assert_string_equal(qr_chat_detect_family("<|im_start|><|im_sep|>"), "phi4");
    assert_string_equal(qr_chat_detect_family("<|im_start|><end_of_utterance>"), "smolvlm");
    assert_string_equal(qr_chat_detect_family("<|user|>x<|endoftext|>"), "zephyr");
    assert_string_equal(qr_chat_detect_family("<|user|><|assistant|></s>"), "falcon3");
    assert_string_equal(qr_chat_detect_family("USER: ASSISTANT: SYSTEM: "), "vicuna-orca");
    static const struct {
        const char *file, *family;
    } real[] = {
        {"Qwen-Qwen2.5-7B-Instruct.jinja", "chatml"},
        {"gguf-qwen2.jinja", "chatml"},
        {"meta-llama-Llama-3.1-8B-Instruct.jinja", "llama3"},
        {"google-gemma-2-2b-it.jinja", "gemma"},
        {"microsoft-Phi-3.5-mini-instruct.jinja", "phi3"},
        {"gguf-phi-3.jinja", "phi3"},
        {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", "deepseek3"},
    };
    for (size_t i = 0; i < sizeof real / sizeof *real; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/templates/%s", QR_SHARED_DIR, real[i].file);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        char *src = calloc(1, 1 << 20);
        size_t n = fread(src, 1, (1 << 20) - 1, f);
        fclose(f);
        assert_true(n > 0);
        const char *fam = qr_chat_detect_family(src);
        if (!fam || strcmp(fam, real[i].family) != 0)
            fail_msg("%s: detected %s, want %s", real[i].file, fam ? fam : "NULL", real[i].family);
        free(src);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_and_literals),
        cmocka_unit_test(test_whitespace_control),
        cmocka_unit_test(test_control_flow),
        cmocka_unit_test(test_set_and_scope),
        cmocka_unit_test(test_expressions),
        cmocka_unit_test(test_tests_and_undefined),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_tojson),
        cmocka_unit_test(test_methods_and_globals),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_truncated_templates),
        cmocka_unit_test(test_detect_family),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
