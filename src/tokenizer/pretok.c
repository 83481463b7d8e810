/* pretok.c - BPE pre-tokenizers: the regex presets of llama.cpp's llm_tokenizer_bpe (chosen by
 * tokenizer.ggml.pre), run with PCRE2 (UTF + UCP, JIT), and the GPT-2 byte-to-unicode map.
 *
 * llama.cpp applies a preset's regexes one after the other: each regex splits every fragment
 * left by the previous ones into its matches and the gaps between them (unicode_regex_split),
 * and a regex only sees its fragment (look-aheads stop at the fragment's end). We do the same.
 * llama.cpp matches \p{..} classes through its own Unicode tables; PCRE2 uses its own, so
 * characters newer than PCRE2's Unicode version may be classified differently. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer/vocab_internal.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REGEX 8

typedef struct preset {
    const char *names; /* '|'-separated tokenizer.ggml.pre values */
    bool clean_spaces, ignore_merges, add_bos;
    const char *regex[MAX_REGEX];
} preset;

/* The regexes are llama.cpp's (llama-vocab.cpp, llm_tokenizer_bpe), with (?i:...) spelled out
 * as character classes the way llama.cpp does. */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"   \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"        \
                    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* gpt-4o (o200k: gpt-oss, llama4): letter runs split at case changes, in llama.cpp's
 * rewriting of the tokenizer.json regex: an "upper" letter is any letter but a-z, a "lower"
 * one any letter but A-Z (so caseless scripts are both), contractions after either run */
#define RE_GPT4O_UPPER "((?=[\\p{L}])([^a-z]))"
#define RE_GPT4O_LOWER "((?=[\\p{L}])([^A-Z]))"
#define RE_GPT4O                                                                                   \
    "[^\\r\\n\\p{L}\\p{N}]?" RE_GPT4O_UPPER "*" RE_GPT4O_LOWER "+" RE_CONTRACTIONS          \
    "?|[^\\r\\n\\p{L}\\p{N}]?" RE_GPT4O_UPPER "+" RE_GPT4O_LOWER "*" RE_CONTRACTIONS        \
    "?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

static const preset presets[] = {
    {"default",
     true,
     false,
     false,
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano",
     true,
     true,
     true,
     {RE_LLAMA3}},
    {"dbrx|smaug-bpe", true, false, false, {RE_LLAMA3}},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2", false, false, false, {RE_QWEN2}},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2", false, false, false, {RE_GPT4O}},
    {"megrez|stablelm2", true, false, false, {RE_QWEN2}},
    {"starcoder|refact|codeshell|exaone|minerva-7b|mellum2",
     true,
     false,
     false,
     {"\\p{N}", RE_GPT2}},
    {"smollm|command-r", false, false, false, {"\\p{N}", RE_GPT2}},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|"
     "jina-v1-en|jina-v2-code|roberta-bpe|exaone4|mpt|olmo|jais",
     true,
     false,
     false,
     {RE_GPT2}},
    {"trillion|granite-docling", false, false, false, {RE_GPT2}},
    {"deepseek-llm",
     false,
     false,
     false,
     {"[\r\n]",
      "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-"
      "Ჿᴀ-"
      "ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-"
      "ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-"
      "𐳲𑢠-"
      "𑣟𞤀-𞥃]+",
      "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"}},
};

struct qr_pretok {
    int n_regex;
    pcre2_code *re[MAX_REGEX];
};

static bool name_in_list(const char *name, const char *list) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return true;
        if (!bar) break;
        p = bar + 1;
    }
    return false;
}

void qr_pretok_free(qr_pretok *p) {
    if (!p) return;
    for (int i = 0; i < p->n_regex; i++)
        pcre2_code_free(p->re[i]);
    free(p);
}

qr_status qr_pretok_create(const char *pre_name, qr_pretok **out, qr_pretok_opts *opts,
                           bool *known) {
    *out = NULL;
    const preset *ps = &presets[0];
    *known = false;
    for (size_t i = 0; pre_name && i < sizeof(presets) / sizeof(presets[0]); i++) {
        if (name_in_list(pre_name, presets[i].names)) {
            ps = &presets[i];
            *known = true;
            break;
        }
    }
    opts->clean_spaces = ps->clean_spaces;
    opts->ignore_merges = ps->ignore_merges;
    opts->add_bos = ps->add_bos;
    qr_pretok *p = qr_calloc(1, sizeof(*p));
    if (!p) return QR_ERR_NOMEM;
    for (int i = 0; i < MAX_REGEX && ps->regex[i]; i++) {
        int err;
        PCRE2_SIZE err_off;
        /* DOLLAR_ENDONLY: ECMAScript's $ (std::regex in llama.cpp) never matches before a
         * final newline */
        pcre2_code *re =
            pcre2_compile((PCRE2_SPTR)ps->regex[i], PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, NULL);
        if (!re) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof(msg));
            qr_pretok_free(p);
            return qr_error(QR_ERR_UNSUPPORTED,
                            "pre-tokenizer '%s': regex %d does not compile at offset %zu: %s",
                            pre_name ? pre_name : "default", i, (size_t)err_off, (char *)msg);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if no JIT */
        p->re[p->n_regex++] = re;
    }
    *out = p;
    return QR_OK;
}

typedef struct offsets {
    size_t *data;
    size_t n, cap;
} offsets;

static qr_status offsets_push(offsets *o, size_t v) {
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        size_t *d = realloc(o->data, cap * sizeof(*d));
        if (!d) return qr_error(QR_ERR_NOMEM, "pre-tokenizer: out of memory");
        o->data = d;
        o->cap = cap;
    }
    o->data[o->n++] = v;
    return QR_OK;
}

/* Split every fragment [cur[i], cur[i+1]) by one regex into matches and gaps. */
static qr_status split_one(const pcre2_code *re, const char *text, const offsets *cur,
                           offsets *next, pcre2_match_data *md, pcre2_match_context *mc) {
    next->n = 0;
    qr_status st = offsets_push(next, 0);
    for (size_t f = 0; st == QR_OK && f + 1 < cur->n; f++) {
        size_t base = cur->data[f], flen = cur->data[f + 1] - base;
        const char *subj = text + base;
        size_t pos = 0, last = 0;
        while (pos < flen) {
            int rc = pcre2_match(re, (PCRE2_SPTR)subj, flen, pos, PCRE2_NO_UTF_CHECK, md, mc);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof(msg));
                return qr_error(QR_ERR_INVALID_ARG, "pre-tokenizer regex failed at byte %zu: %s",
                                base + pos, (char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) { /* an empty match splits nothing: step over one character */
                pos = ms + 1;
                while (pos < flen && ((unsigned char)subj[pos] & 0xc0) == 0x80)
                    pos++;
                continue;
            }
            if (ms > last && (st = offsets_push(next, base + ms)) != QR_OK) return st;
            if ((st = offsets_push(next, base + me)) != QR_OK) return st;
            last = pos = me;
        }
        if (last < flen) st = offsets_push(next, base + flen);
    }
    return st;
}

qr_status qr_pretok_split(const qr_pretok *p, const char *text, size_t len, size_t **bounds,
                          size_t *n_words) {
    *bounds = NULL;
    *n_words = 0;
    offsets a = {0}, b = {0};
    qr_status st = offsets_push(&a, 0);
    if (st == QR_OK && len > 0) st = offsets_push(&a, len);
    pcre2_match_data *md = NULL;
    pcre2_match_context *mc = NULL;
    pcre2_jit_stack *js = NULL;
    if (st == QR_OK && len > 0 && p->n_regex > 0) {
        md = pcre2_match_data_create(4, NULL);
        mc = pcre2_match_context_create(NULL);
        js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
        if (!md || !mc || !js) {
            st = qr_error(QR_ERR_NOMEM, "pre-tokenizer: out of memory");
        } else {
            pcre2_jit_stack_assign(mc, NULL, js);
        }
    }
    for (int i = 0; st == QR_OK && len > 0 && i < p->n_regex; i++) {
        st = split_one(p->re[i], text, &a, &b, md, mc);
        offsets t = a;
        a = b;
        b = t;
    }
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    pcre2_jit_stack_free(js);
    free(b.data);
    if (st != QR_OK) {
        free(a.data);
        return st;
    }
    *bounds = a.data;
    *n_words = a.n - 1;
    return QR_OK;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes
 * map in order to U+0100.. */
static bool byte_is_printable(int b) {
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

uint32_t qr_byte_to_cp(uint8_t byte) {
    if (byte_is_printable(byte)) return byte;
    uint32_t n = 0;
    for (int b = 0; b < byte; b++)
        n += !byte_is_printable(b);
    return 256 + n;
}

int qr_cp_to_byte(uint32_t cp) {
    if (cp < 256) return byte_is_printable((int)cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t n = cp - 256;
    for (int b = 0; b < 256; b++) {
        if (!byte_is_printable(b) && n-- == 0) return b;
    }
    return -1;
}
