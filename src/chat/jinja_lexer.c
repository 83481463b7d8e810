/* jinja_lexer.c - template source to tokens, with Jinja2's whitespace rules as Hugging Face
 * transformers configures them: trim_blocks (drop the newline after a block or comment tag),
 * lstrip_blocks (drop the indentation before one), `-` / `+` modifiers, comments removed,
 * newlines normalised to "\n" and one trailing newline dropped (keep_trailing_newline=False). */
#include "chat/jinja_internal.h"

#include <ctype.h>
#include <stdlib.h>

static void push_tok(jctx *c, jtoken t) {
    if (c->n_toks == c->cap_toks) {
        size_t cap = c->cap_toks ? c->cap_toks * 2 : 256;
        jtoken *v = ja_alloc(c, cap * sizeof *v);
        if (c->n_toks) memcpy(v, c->toks, c->n_toks * sizeof *v);
        c->toks = v;
        c->cap_toks = cap;
    }
    c->toks[c->n_toks++] = t;
}

static bool is_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Append one UTF-8 encoded code point. */
static void put_utf8(jctx *c, jbuf *b, uint32_t cp) {
    char t[4];
    if (cp < 0x80) {
        jb_putc(c, b, (char)cp);
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | (cp >> 6));
        t[1] = (char)(0x80 | (cp & 0x3F));
        jb_put(c, b, t, 2);
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | (cp >> 12));
        t[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        jb_put(c, b, t, 3);
    } else {
        t[0] = (char)(0xF0 | (cp >> 18));
        t[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        t[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        jb_put(c, b, t, 4);
    }
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* A quoted string literal starting at src[*pos] (the quote); Python escapes decoded. */
static void lex_string(jctx *c, const char *src, size_t n, size_t *pos, int line) {
    char q = src[*pos];
    size_t i = *pos + 1;
    jbuf b = {0};
    for (;;) {
        if (i >= n) jfail(c, line, "unterminated string literal");
        char ch = src[i];
        if (ch == q) break;
        if (ch == '\\' && i + 1 < n) {
            char e = src[i + 1];
            i += 2;
            switch (e) {
            case 'n':
                jb_putc(c, &b, '\n');
                break;
            case 't':
                jb_putc(c, &b, '\t');
                break;
            case 'r':
                jb_putc(c, &b, '\r');
                break;
            case '0':
                jb_putc(c, &b, '\0');
                break;
            case 'a':
                jb_putc(c, &b, '\a');
                break;
            case 'b':
                jb_putc(c, &b, '\b');
                break;
            case 'f':
                jb_putc(c, &b, '\f');
                break;
            case 'v':
                jb_putc(c, &b, '\v');
                break;
            case '\\':
                jb_putc(c, &b, '\\');
                break;
            case '\'':
                jb_putc(c, &b, '\'');
                break;
            case '"':
                jb_putc(c, &b, '"');
                break;
            case '\n':
                break; /* line continuation */
            case 'x':
            case 'u':
            case 'U': {
                int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                uint32_t cp = 0;
                for (int k = 0; k < nd; k++) {
                    int h = i + (size_t)k < n ? hexval(src[i + k]) : -1;
                    if (h < 0) jfail(c, line, "bad \\%c escape in string literal", e);
                    cp = cp * 16 + (uint32_t)h;
                }
                if (cp > 0x10FFFF) jfail(c, line, "bad \\%c escape in string literal", e);
                i += (size_t)nd;
                put_utf8(c, &b, cp);
                break;
            }
            default: /* Python keeps unknown escapes as written */
                jb_putc(c, &b, '\\');
                jb_putc(c, &b, e);
            }
            continue;
        }
        jb_putc(c, &b, ch);
        i++;
    }
    jtoken t = {.kind = T_STRING, .line = line, .s = b.p ? b.p : "", .n = b.n};
    push_tok(c, t);
    *pos = i + 1;
}

/* Tokens inside a tag, up to and including its end ("}}", "%}"; with '-' or '+').
 * Returns the position after the end marker; *strip_after is '-', '+' or 0. */
static size_t lex_tag(jctx *c, const char *src, size_t n, size_t i, bool is_var, int *line,
                      char *strip_after) {
    int depth = 0; /* (), [], {} nesting: a "}}" inside a dict literal does not close */
    int open_line = *line;
    for (;;) {
        while (i < n && is_space(src[i])) {
            if (src[i] == '\n') (*line)++;
            i++;
        }
        if (i >= n) jfail(c, open_line, "unterminated %s tag", is_var ? "'{{'" : "'{%'");
        /* end marker? */
        char endc = is_var ? '}' : '%';
        if (depth == 0) {
            size_t j = i;
            char mod = 0;
            if ((src[j] == '-' || src[j] == '+') && j + 2 < n + 0 && src[j + 1] == endc &&
                src[j + 2] == '}') {
                mod = src[j];
                j++;
            }
            if (j + 1 < n && src[j] == endc && src[j + 1] == '}') {
                jtoken t = {.kind = is_var ? T_VAR_END : T_BLOCK_END, .line = *line};
                push_tok(c, t);
                *strip_after = mod;
                return j + 2;
            }
        }
        char ch = src[i];
        jtoken t = {.line = *line};
        if (isalpha((unsigned char)ch) || ch == '_') {
            size_t s = i;
            while (i < n && (isalnum((unsigned char)src[i]) || src[i] == '_'))
                i++;
            t.kind = T_NAME;
            t.s = src + s;
            t.n = i - s;
            push_tok(c, t);
        } else if (isdigit((unsigned char)ch)) {
            size_t s = i;
            bool is_float = false;
            while (i < n && (isdigit((unsigned char)src[i]) || src[i] == '_'))
                i++;
            if (i + 1 < n && src[i] == '.' && isdigit((unsigned char)src[i + 1])) {
                is_float = true;
                i++;
                while (i < n && isdigit((unsigned char)src[i]))
                    i++;
            }
            if (i < n && (src[i] == 'e' || src[i] == 'E')) {
                size_t j = i + 1;
                if (j < n && (src[j] == '+' || src[j] == '-')) j++;
                if (j < n && isdigit((unsigned char)src[j])) {
                    is_float = true;
                    i = j;
                    while (i < n && isdigit((unsigned char)src[i]))
                        i++;
                }
            }
            char num[64];
            size_t k = 0;
            for (size_t j = s; j < i && k + 1 < sizeof num; j++)
                if (src[j] != '_') num[k++] = src[j];
            num[k] = '\0';
            if (is_float) {
                t.kind = T_FLOAT;
                t.f = strtod(num, NULL);
            } else {
                t.kind = T_INT;
                t.i = strtoll(num, NULL, 10);
            }
            push_tok(c, t);
        } else if (ch == '\'' || ch == '"') {
            lex_string(c, src, n, &i, *line);
        } else {
            static const char *ops2[] = {"//", "**", "==", "!=", "<=", ">="};
            size_t len = 0;
            for (size_t k = 0; k < sizeof ops2 / sizeof *ops2; k++)
                if (i + 1 < n && src[i] == ops2[k][0] && src[i + 1] == ops2[k][1]) len = 2;
            if (!len) {
                if (!strchr("+-*/%~<>=()[]{}.,:|!", ch))
                    jfail(c, *line, "unexpected character '%c' in tag", ch);
                if (ch == '!') jfail(c, *line, "unexpected character '!' in tag");
                len = 1;
                if (ch == '(' || ch == '[' || ch == '{') depth++;
                if ((ch == ')' || ch == ']' || ch == '}') && depth > 0) depth--;
            }
            t.kind = T_OP;
            t.s = src + i;
            t.n = len;
            push_tok(c, t);
            i += len;
        }
    }
}

void jinja_lex(jctx *c, const char *src0, size_t n0) {
    /* Normalise newlines ("\r\n" and "\r" to "\n") and drop one trailing newline. */
    char *src = ja_alloc(c, n0 + 1);
    size_t n = 0;
    for (size_t i = 0; i < n0; i++) {
        if (src0[i] == '\r') {
            src[n++] = '\n';
            if (i + 1 < n0 && src0[i + 1] == '\n') i++;
        } else {
            src[n++] = src0[i];
        }
    }
    if (n > 0 && src[n - 1] == '\n') n--;
    src[n] = '\0';

    size_t i = 0;
    int line = 1;
    bool line_starting = true;
    for (;;) {
        /* text up to the next tag opener */
        size_t s = i;
        size_t open = n;
        for (size_t j = i; j + 1 < n; j++) {
            if (src[j] == '{' && (src[j + 1] == '{' || src[j + 1] == '%' || src[j + 1] == '#')) {
                open = j;
                break;
            }
        }
        size_t text_end = open;
        char kind = open < n ? src[open + 1] : 0;
        char mod =
            open + 2 < n && (src[open + 2] == '-' || src[open + 2] == '+') ? src[open + 2] : 0;
        if (kind) {
            if (mod == '-') {
                while (text_end > s && is_space(src[text_end - 1]))
                    text_end--;
            } else if (mod != '+' && kind != '{') {
                /* lstrip_blocks: indentation before a block/comment tag on its own line */
                size_t l = text_end;
                while (l > s && src[l - 1] != '\n')
                    l--;
                bool has_nl = l > s;
                if (has_nl || line_starting) {
                    bool all_ws = true;
                    for (size_t k = l; k < text_end; k++)
                        if (!is_space(src[k])) all_ws = false;
                    if (all_ws) text_end = l;
                }
            }
        }
        if (text_end > s) {
            jtoken t = {.kind = T_TEXT, .line = line, .s = src + s, .n = text_end - s};
            push_tok(c, t);
        }
        for (size_t k = s; k < open; k++)
            if (src[k] == '\n') line++;
        if (!kind) break;

        int tag_line = line;
        i = open + 2 + (mod ? 1 : 0);
        char after = 0;
        if (kind == '#') {
            /* comment: find "#}" ("-#}" strips after) */
            size_t j = i;
            while (j + 1 < n && !(src[j] == '#' && src[j + 1] == '}'))
                j++;
            if (j + 1 >= n) jfail(c, tag_line, "unterminated comment '{#'");
            if (j > i && (src[j - 1] == '-' || src[j - 1] == '+')) after = src[j - 1];
            for (size_t k = i; k < j; k++)
                if (src[k] == '\n') line++;
            i = j + 2;
        } else {
            push_tok(c, (jtoken){.kind = kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN, .line = line});
            i = lex_tag(c, src, n, i, kind == '{', &line, &after);
        }
        line_starting = false;
        if (after == '-') {
            while (i < n && is_space(src[i])) {
                if (src[i] == '\n') {
                    line++;
                    line_starting = true;
                } else {
                    line_starting = false;
                }
                i++;
            }
        } else if (after != '+' && kind != '{' && i < n && src[i] == '\n') {
            /* trim_blocks */
            i++;
            line++;
            line_starting = true;
        }
    }
    push_tok(c, (jtoken){.kind = T_EOF, .line = line});
}
