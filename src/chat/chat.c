/* chat.c - qr_chat_apply_template and qr_chat_detect_family: llama.cpp's built-in chat
 * formats rendered natively (llm_chat_apply_template, src/llama-chat.cpp, v0.5.0), their
 * detection from a Jinja source by substring heuristics (llm_chat_detect_template), and any
 * other template source run through the Jinja interpreter (jinja_*.c). */
#include "chat/jinja.h"
#include "util/util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- a small growable string (malloc'd, not the Jinja arena) ---- */

static void sb_puts(qr_strbuf *b, const char *s) {
    qr_strbuf_append(b, s, strlen(s));
}

/* several strings at once, NULL-terminated */
static void sb_cat(qr_strbuf *b, ...) {
    va_list ap;
    va_start(ap, b);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL)
        sb_puts(b, s);
    va_end(ap);
}

static bool is_space_c(char ch) {
    return isspace((unsigned char)ch) != 0;
}

/* content with leading and trailing whitespace removed, as llama.cpp's trim() */
static void sb_trimmed(qr_strbuf *b, const char *s) {
    size_t a = 0, e = strlen(s);
    while (a < e && is_space_c(s[a]))
        a++;
    while (e > a && is_space_c(s[e - 1]))
        e--;
    qr_strbuf_append(b, s + a, e - a);
}

/* ---- the built-in families ---- */

typedef enum family {
    F_UNKNOWN = -1,
    F_CHATML,
    F_LLAMA2,
    F_LLAMA2_SYS,
    F_LLAMA2_SYS_BOS,
    F_LLAMA2_SYS_STRIP,
    F_MISTRAL_V1,
    F_MISTRAL_V3,
    F_MISTRAL_V3_TEKKEN,
    F_MISTRAL_V7,
    F_MISTRAL_V7_TEKKEN,
    F_PHI3,
    F_PHI4,
    F_FALCON3,
    F_ZEPHYR,
    F_MONARCH,
    F_GEMMA,
    F_ORION,
    F_OPENCHAT,
    F_VICUNA,
    F_VICUNA_ORCA,
    F_DEEPSEEK,
    F_DEEPSEEK2,
    F_DEEPSEEK3,
    F_DEEPSEEK_OCR,
    F_COMMAND_R,
    F_LLAMA3,
    F_CHATGLM3,
    F_CHATGLM4,
    F_GLMEDGE,
    F_MINICPM,
    F_EXAONE3,
    F_EXAONE4,
    F_EXAONE_MOE,
    F_RWKV_WORLD,
    F_GRANITE,
    F_GRANITE_4_0,
    F_GRANITE_4_1,
    F_GIGACHAT,
    F_MEGREZ,
    F_YANDEX,
    F_BAILING,
    F_BAILING_THINK,
    F_BAILING2,
    F_LLAMA4,
    F_SMOLVLM,
    F_HUNYUAN_MOE,
    F_GPT_OSS,
    F_HUNYUAN_DENSE,
    F_HUNYUAN_VL,
    F_KIMI_K2,
    F_SEED_OSS,
    F_GROK2,
    F_PANGU_EMBEDDED,
    F_SOLAR_OPEN,
    F_DOTS1, /* detected by llama.cpp but missing from its name table; a name here */
    F_COUNT
} family;

static const char *const family_names[F_COUNT] = {
    [F_CHATML] = "chatml",
    [F_LLAMA2] = "llama2",
    [F_LLAMA2_SYS] = "llama2-sys",
    [F_LLAMA2_SYS_BOS] = "llama2-sys-bos",
    [F_LLAMA2_SYS_STRIP] = "llama2-sys-strip",
    [F_MISTRAL_V1] = "mistral-v1",
    [F_MISTRAL_V3] = "mistral-v3",
    [F_MISTRAL_V3_TEKKEN] = "mistral-v3-tekken",
    [F_MISTRAL_V7] = "mistral-v7",
    [F_MISTRAL_V7_TEKKEN] = "mistral-v7-tekken",
    [F_PHI3] = "phi3",
    [F_PHI4] = "phi4",
    [F_FALCON3] = "falcon3",
    [F_ZEPHYR] = "zephyr",
    [F_MONARCH] = "monarch",
    [F_GEMMA] = "gemma",
    [F_ORION] = "orion",
    [F_OPENCHAT] = "openchat",
    [F_VICUNA] = "vicuna",
    [F_VICUNA_ORCA] = "vicuna-orca",
    [F_DEEPSEEK] = "deepseek",
    [F_DEEPSEEK2] = "deepseek2",
    [F_DEEPSEEK3] = "deepseek3",
    [F_DEEPSEEK_OCR] = "deepseek-ocr",
    [F_COMMAND_R] = "command-r",
    [F_LLAMA3] = "llama3",
    [F_CHATGLM3] = "chatglm3",
    [F_CHATGLM4] = "chatglm4",
    [F_GLMEDGE] = "glmedge",
    [F_MINICPM] = "minicpm",
    [F_EXAONE3] = "exaone3",
    [F_EXAONE4] = "exaone4",
    [F_EXAONE_MOE] = "exaone-moe",
    [F_RWKV_WORLD] = "rwkv-world",
    [F_GRANITE] = "granite",
    [F_GRANITE_4_0] = "granite-4.0",
    [F_GRANITE_4_1] = "granite-4.1",
    [F_GIGACHAT] = "gigachat",
    [F_MEGREZ] = "megrez",
    [F_YANDEX] = "yandex",
    [F_BAILING] = "bailing",
    [F_BAILING_THINK] = "bailing-think",
    [F_BAILING2] = "bailing2",
    [F_LLAMA4] = "llama4",
    [F_SMOLVLM] = "smolvlm",
    [F_HUNYUAN_MOE] = "hunyuan-moe",
    [F_GPT_OSS] = "gpt-oss",
    [F_HUNYUAN_DENSE] = "hunyuan-dense",
    [F_HUNYUAN_VL] = "hunyuan-vl",
    [F_KIMI_K2] = "kimi-k2",
    [F_SEED_OSS] = "seed_oss",
    [F_GROK2] = "grok-2",
    [F_PANGU_EMBEDDED] = "pangu-embedded",
    [F_SOLAR_OPEN] = "solar-open",
    [F_DOTS1] = "dots1",
};

static family family_from_name(const char *name) {
    for (int i = 0; i < F_COUNT; i++)
        if (strcmp(family_names[i], name) == 0) return (family)i;
    return F_UNKNOWN;
}

/* llm_chat_detect_template: the first matching heuristic wins, in llama.cpp's order */
static family detect(const char *t) {
#define HAS(s) (strstr(t, (s)) != NULL)
    family named = family_from_name(t);
    if (named != F_UNKNOWN) return named;
    if (HAS("<|im_start|>"))
        return HAS("<|im_sep|>") ? F_PHI4 : HAS("<end_of_utterance>") ? F_SMOLVLM : F_CHATML;
    if (strncmp(t, "mistral", 7) == 0 || HAS("[INST]")) {
        if (HAS("[SYSTEM_PROMPT]")) return F_MISTRAL_V7;
        if (HAS("' [INST] ' + system_message") || HAS("[AVAILABLE_TOOLS]")) {
            if (HAS(" [INST]")) return F_MISTRAL_V1;
            if (HAS("\"[INST]\"")) return F_MISTRAL_V3_TEKKEN;
            return F_MISTRAL_V3;
        }
        if (HAS("content.strip()")) return F_LLAMA2_SYS_STRIP;
        if (HAS("bos_token + '[INST]")) return F_LLAMA2_SYS_BOS;
        if (HAS("<<SYS>>")) return F_LLAMA2_SYS;
        return F_LLAMA2;
    }
    if (HAS("<|assistant|>") && HAS("<|end|>")) return F_PHI3;
    if (HAS("[gMASK]<sop>")) return F_CHATGLM4;
    if (HAS("<|assistant|>") && HAS("<|user|>")) {
        if (HAS("<|tool_declare|>")) return F_EXAONE_MOE;
        return HAS("</s>") ? F_FALCON3 : F_GLMEDGE;
    }
    if (HAS("<|{{ item['role'] }}|>") && HAS("<|begin_of_image|>")) return F_GLMEDGE;
    if (HAS("<|user|>") && HAS("<|endoftext|>")) return F_ZEPHYR;
    if (HAS("bos_token + message['role']")) return F_MONARCH;
    if (HAS("<start_of_turn>")) return F_GEMMA;
    if (HAS("'\\n\\nAssistant: ' + eos_token")) return F_ORION;
    if (HAS("GPT4 Correct ")) return F_OPENCHAT;
    if (HAS("USER: ") && HAS("ASSISTANT: ")) return HAS("SYSTEM: ") ? F_VICUNA_ORCA : F_VICUNA;
    if (HAS("### Instruction:") && HAS("<|EOT|>")) return F_DEEPSEEK;
    if (HAS("<|START_OF_TURN_TOKEN|>") && HAS("<|USER_TOKEN|>")) return F_COMMAND_R;
    if (HAS("<|start_header_id|>") && HAS("<|end_header_id|>")) return F_LLAMA3;
    if (HAS("[gMASK]sop")) return F_CHATGLM3;
    if (HAS("<\xe7\x94\xa8\xe6\x88\xb7>")) return F_MINICPM; /* <用户> */
    if (HAS("'Assistant: ' + message['content'] + eos_token")) return F_DEEPSEEK2;
    if (HAS("<\xef\xbd\x9c"
            "Assistant\xef\xbd\x9c>") &&
        HAS("<\xef\xbd\x9c"
            "User\xef\xbd\x9c>") &&
        HAS("<\xef\xbd\x9c"
            "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"))
        return F_DEEPSEEK3;
    if (HAS("[|system|]") && HAS("[|assistant|]") && HAS("[|endofturn|]"))
        return HAS("[|tool|]") ? F_EXAONE4 : F_EXAONE3;
    if (HAS("rwkv-world") || HAS("{{- 'User: ' + message['content']|trim + '\\n\\n' -}}"))
        return F_RWKV_WORLD;
    if (HAS("<|start_of_role|>")) {
        if (HAS("<tool_call>") || HAS("<tools>"))
            return HAS("g4_default_system_message") ? F_GRANITE_4_0 : F_GRANITE_4_1;
        return F_GRANITE;
    }
    if (HAS("message['role'] + additional_special_tokens[0] + message['content'] + "
            "additional_special_tokens[1]"))
        return F_GIGACHAT;
    if (HAS("<|role_start|>")) return F_MEGREZ;
    if (HAS(" \xd0\x90\xd1\x81\xd1\x81\xd0\xb8\xd1\x81\xd1\x82\xd0\xb5\xd0\xbd\xd1\x82:"))
        return F_YANDEX; /* " Ассистент:" */
    if (HAS("<role>ASSISTANT</role>") && HAS("'HUMAN'")) return F_BAILING;
    if (HAS("<role>ASSISTANT</role>") && HAS("\"HUMAN\"") && HAS("<think>")) return F_BAILING_THINK;
    if (HAS("<role>ASSISTANT</role>") && HAS("<role>HUMAN</role>") && HAS("<|role_end|>"))
        return F_BAILING2;
    if (HAS("<|header_start|>") && HAS("<|header_end|>")) return F_LLAMA4;
    if (HAS("<|endofuserprompt|>")) return F_DOTS1;
    if (HAS("<|extra_0|>") && HAS("<|extra_4|>")) return F_HUNYUAN_MOE;
    if (HAS("<|start|>") && HAS("<|channel|>")) return F_GPT_OSS;
    if (HAS("<\xef\xbd\x9chy_Assistant\xef\xbd\x9c>") &&
        HAS("<\xef\xbd\x9chy_begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"))
        return F_HUNYUAN_VL;
    if (HAS("<\xef\xbd\x9chy_Assistant\xef\xbd\x9c>") &&
        HAS("<\xef\xbd\x9chy_place\xe2\x96\x81holder\xe2\x96\x81no\xe2\x96\x81"
            "3\xef\xbd\x9c>"))
        return F_HUNYUAN_DENSE;
    if (HAS("<|im_assistant|>assistant<|im_middle|>")) return F_KIMI_K2;
    if (HAS("<seed:bos>")) return F_SEED_OSS;
    if (HAS("'Assistant: '  + message['content'] + '<|separator|>")) return F_GROK2;
    if (HAS("[unused9]\xe7\xb3\xbb\xe7\xbb\x9f\xef\xbc\x9a[unused10]")) return F_PANGU_EMBEDDED;
    if (HAS("<|begin|>") && HAS("<|end|>") && HAS("<|content|>")) return F_SOLAR_OPEN;
    return F_UNKNOWN;
#undef HAS
}

const char *qr_chat_detect_family(const char *tmpl) {
    if (!tmpl) return NULL;
    family f = detect(tmpl);
    return f == F_UNKNOWN ? NULL : family_names[f];
}

/* role names as some formats spell them */
static bool role_is(const qr_chat_message *m, const char *role) {
    return strcmp(m->role, role) == 0;
}

static void upper_role(qr_strbuf *b, const char *role) {
    for (const char *p = role; *p; p++) {
        char ch = (char)toupper((unsigned char)*p);
        qr_strbuf_append(b, &ch, 1);
    }
}

#define U_BOS                                                                                      \
    "<\xef\xbd\x9c"                                                                                \
    "begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define U_EOS                                                                                      \
    "<\xef\xbd\x9c"                                                                                \
    "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"
#define U_USER                                                                                     \
    "<\xef\xbd\x9c"                                                                                \
    "User\xef\xbd\x9c>"
#define U_ASSISTANT                                                                                \
    "<\xef\xbd\x9c"                                                                                \
    "Assistant\xef\xbd\x9c>"
#define HY_ASSISTANT "<\xef\xbd\x9chy_Assistant\xef\xbd\x9c>"
#define HY_USER "<\xef\xbd\x9chy_User\xef\xbd\x9c>"
#define HY_PH2                                                                                     \
    "<\xef\xbd\x9chy_place\xe2\x96\x81holder\xe2\x96\x81no\xe2\x96\x81"                            \
    "2\xef\xbd\x9c>"
#define HY_PH3                                                                                     \
    "<\xef\xbd\x9chy_place\xe2\x96\x81holder\xe2\x96\x81no\xe2\x96\x81"                            \
    "3\xef\xbd\x9c>"
#define HY_BOS "<\xef\xbd\x9chy_begin\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"

/* llm_chat_apply_template for one family */
static void render_builtin(family f, const qr_chat_message *msgs, size_t n, bool add_ass,
                           qr_strbuf *b) {
    switch (f) {
    case F_CHATML:
        for (size_t i = 0; i < n; i++)
            sb_cat(b, "<|im_start|>", msgs[i].role, "\n", msgs[i].content, "<|im_end|>\n", NULL);
        if (add_ass) sb_puts(b, "<|im_start|>assistant\n");
        break;
    case F_MISTRAL_V7:
    case F_MISTRAL_V7_TEKKEN: {
        const char *sp = f == F_MISTRAL_V7 ? " " : "";
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system"))
                sb_cat(b, "[SYSTEM_PROMPT]", sp, msgs[i].content, "[/SYSTEM_PROMPT]", NULL);
            else if (role_is(&msgs[i], "user"))
                sb_cat(b, "[INST]", sp, msgs[i].content, "[/INST]", NULL);
            else
                sb_cat(b, sp, msgs[i].content, "</s>", NULL);
        }
        break;
    }
    case F_MISTRAL_V1:
    case F_MISTRAL_V3:
    case F_MISTRAL_V3_TEKKEN: {
        const char *lead = f == F_MISTRAL_V1 ? " " : "";
        const char *trail = f == F_MISTRAL_V3_TEKKEN ? "" : " ";
        bool inside = false;
        for (size_t i = 0; i < n; i++) {
            if (!inside) {
                sb_cat(b, lead, "[INST]", trail, NULL);
                inside = true;
            }
            if (role_is(&msgs[i], "system")) {
                sb_cat(b, msgs[i].content, "\n\n", NULL);
            } else if (role_is(&msgs[i], "user")) {
                sb_cat(b, msgs[i].content, lead, "[/INST]", NULL);
            } else {
                sb_puts(b, trail);
                if (f == F_MISTRAL_V3)
                    sb_trimmed(b, msgs[i].content);
                else
                    sb_puts(b, msgs[i].content);
                sb_puts(b, "</s>");
                inside = false;
            }
        }
        break;
    }
    case F_LLAMA2:
    case F_LLAMA2_SYS:
    case F_LLAMA2_SYS_BOS:
    case F_LLAMA2_SYS_STRIP: {
        bool sys = f != F_LLAMA2, bos = f == F_LLAMA2_SYS_BOS, strip = f == F_LLAMA2_SYS_STRIP;
        bool inside = true; /* the first [INST] without BOS */
        sb_puts(b, "[INST] ");
        for (size_t i = 0; i < n; i++) {
            if (!inside) {
                inside = true;
                sb_puts(b, bos ? "<s>[INST] " : "[INST] ");
            }
            qr_strbuf content = {0};
            if (strip)
                sb_trimmed(&content, msgs[i].content);
            else
                sb_puts(&content, msgs[i].content);
            const char *ct = content.p ? content.p : "";
            if (content.oom) b->oom = true;
            if (role_is(&msgs[i], "system")) {
                if (sys)
                    sb_cat(b, "<<SYS>>\n", ct, "\n<</SYS>>\n\n", NULL);
                else
                    sb_cat(b, ct, "\n", NULL);
            } else if (role_is(&msgs[i], "user")) {
                sb_cat(b, ct, " [/INST]", NULL);
            } else {
                sb_cat(b, ct, "</s>", NULL);
                inside = false;
            }
            free(content.p);
        }
        break;
    }
    case F_PHI3:
        for (size_t i = 0; i < n; i++)
            sb_cat(b, "<|", msgs[i].role, "|>\n", msgs[i].content, "<|end|>\n", NULL);
        if (add_ass) sb_puts(b, "<|assistant|>\n");
        break;
    case F_PHI4:
        for (size_t i = 0; i < n; i++)
            sb_cat(b, "<|im_start|>", msgs[i].role, "<|im_sep|>", msgs[i].content, "<|im_end|>",
                   NULL);
        if (add_ass) sb_puts(b, "<|im_start|>assistant<|im_sep|>");
        break;
    case F_FALCON3:
        for (size_t i = 0; i < n; i++)
            sb_cat(b, "<|", msgs[i].role, "|>\n", msgs[i].content, "\n", NULL);
        if (add_ass) sb_puts(b, "<|assistant|>\n");
        break;
    case F_ZEPHYR:
        for (size_t i = 0; i < n; i++)
            sb_cat(b, "<|", msgs[i].role, "|>\n", msgs[i].content, "<|endoftext|>\n", NULL);
        if (add_ass) sb_puts(b, "<|assistant|>\n");
        break;
    case F_MONARCH:
        for (size_t i = 0; i < n; i++)
            sb_cat(b, i == 0 ? "" : "<s>", msgs[i].role, "\n", msgs[i].content, "</s>\n", NULL);
        if (add_ass) sb_puts(b, "<s>assistant\n");
        break;
    case F_GEMMA: {
        qr_strbuf sys = {0};
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system")) {
                sb_trimmed(&sys, msgs[i].content);
                continue;
            }
            const char *role = role_is(&msgs[i], "assistant") ? "model" : msgs[i].role;
            sb_cat(b, "<start_of_turn>", role, "\n", NULL);
            if (sys.n && strcmp(role, "model") != 0) {
                sb_cat(b, sys.p, "\n\n", NULL);
                sys.n = 0;
            }
            sb_trimmed(b, msgs[i].content);
            sb_puts(b, "<end_of_turn>\n");
        }
        free(sys.p);
        if (add_ass) sb_puts(b, "<start_of_turn>model\n");
        break;
    }
    case F_ORION: {
        qr_strbuf sys = {0};
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system")) {
                sb_puts(&sys, msgs[i].content);
            } else if (role_is(&msgs[i], "user")) {
                sb_puts(b, "Human: ");
                if (sys.n) {
                    sb_cat(b, sys.p, "\n\n", NULL);
                    sys.n = 0;
                }
                sb_cat(b, msgs[i].content, "\n\nAssistant: </s>", NULL);
            } else {
                sb_cat(b, msgs[i].content, "</s>", NULL);
            }
        }
        free(sys.p);
        break;
    }
    case F_OPENCHAT:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system")) {
                sb_cat(b, msgs[i].content, "<|end_of_turn|>", NULL);
            } else {
                char first = (char)toupper((unsigned char)msgs[i].role[0]);
                sb_puts(b, "GPT4 Correct ");
                if (msgs[i].role[0]) {
                    qr_strbuf_append(b, &first, 1);
                    sb_puts(b, msgs[i].role + 1);
                }
                sb_cat(b, ": ", msgs[i].content, "<|end_of_turn|>", NULL);
            }
        }
        if (add_ass) sb_puts(b, "GPT4 Correct Assistant:");
        break;
    case F_VICUNA:
    case F_VICUNA_ORCA:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system")) {
                if (f == F_VICUNA_ORCA)
                    sb_cat(b, "SYSTEM: ", msgs[i].content, "\n", NULL);
                else
                    sb_cat(b, msgs[i].content, "\n\n", NULL);
            } else if (role_is(&msgs[i], "user")) {
                sb_cat(b, "USER: ", msgs[i].content, "\n", NULL);
            } else if (role_is(&msgs[i], "assistant")) {
                sb_cat(b, "ASSISTANT: ", msgs[i].content, "</s>\n", NULL);
            }
        }
        if (add_ass) sb_puts(b, "ASSISTANT:");
        break;
    case F_DEEPSEEK:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system"))
                sb_puts(b, msgs[i].content);
            else if (role_is(&msgs[i], "user"))
                sb_cat(b, "### Instruction:\n", msgs[i].content, "\n", NULL);
            else if (role_is(&msgs[i], "assistant"))
                sb_cat(b, "### Response:\n", msgs[i].content, "\n<|EOT|>\n", NULL);
        }
        if (add_ass) sb_puts(b, "### Response:\n");
        break;
    case F_COMMAND_R:
        for (size_t i = 0; i < n; i++) {
            const char *tok = role_is(&msgs[i], "system")      ? "<|SYSTEM_TOKEN|>"
                              : role_is(&msgs[i], "user")      ? "<|USER_TOKEN|>"
                              : role_is(&msgs[i], "assistant") ? "<|CHATBOT_TOKEN|>"
                                                               : NULL;
            if (!tok) continue;
            sb_cat(b, "<|START_OF_TURN_TOKEN|>", tok, NULL);
            sb_trimmed(b, msgs[i].content);
            sb_puts(b, "<|END_OF_TURN_TOKEN|>");
        }
        if (add_ass) sb_puts(b, "<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>");
        break;
    case F_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            sb_cat(b, "<|start_header_id|>", msgs[i].role, "<|end_header_id|>\n\n", NULL);
            sb_trimmed(b, msgs[i].content);
            sb_puts(b, "<|eot_id|>");
        }
        if (add_ass) sb_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case F_CHATGLM3:
        sb_puts(b, "[gMASK]sop");
        for (size_t i = 0; i < n; i++)
            sb_cat(b, "<|", msgs[i].role, "|>\n ", msgs[i].content, NULL);
        if (add_ass) sb_puts(b, "<|assistant|>");
        break;
    case F_CHATGLM4:
    case F_GLMEDGE:
        if (f == F_CHATGLM4) sb_puts(b, "[gMASK]<sop>");
        for (size_t i = 0; i < n; i++)
            sb_cat(b, "<|", msgs[i].role, "|>\n", msgs[i].content, NULL);
        if (add_ass) sb_puts(b, f == F_CHATGLM4 ? "<|assistant|>\n" : "<|assistant|>");
        break;
    case F_MINICPM:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "user")) {
                sb_puts(b, "<\xe7\x94\xa8\xe6\x88\xb7>");
                sb_trimmed(b, msgs[i].content);
                sb_puts(b, "<AI>");
            } else {
                sb_trimmed(b, msgs[i].content);
            }
        }
        break;
    case F_DEEPSEEK2:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system"))
                sb_cat(b, msgs[i].content, "\n\n", NULL);
            else if (role_is(&msgs[i], "user"))
                sb_cat(b, "User: ", msgs[i].content, "\n\n", NULL);
            else if (role_is(&msgs[i], "assistant"))
                sb_cat(b, "Assistant: ", msgs[i].content, U_EOS, NULL);
        }
        if (add_ass) sb_puts(b, "Assistant:");
        break;
    case F_DEEPSEEK3:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system"))
                sb_cat(b, msgs[i].content, "\n\n", NULL);
            else if (role_is(&msgs[i], "user"))
                sb_cat(b, U_USER, msgs[i].content, NULL);
            else if (role_is(&msgs[i], "assistant"))
                sb_cat(b, U_ASSISTANT, msgs[i].content, U_EOS, NULL);
        }
        if (add_ass) sb_puts(b, U_ASSISTANT);
        break;
    case F_DEEPSEEK_OCR:
        for (size_t i = 0; i < n; i++)
            sb_puts(b, msgs[i].content);
        break;
    case F_EXAONE3:
    case F_EXAONE4:
        for (size_t i = 0; i < n; i++) {
            const char *pre = role_is(&msgs[i], "system")                     ? "[|system|]"
                              : role_is(&msgs[i], "user")                     ? "[|user|]"
                              : role_is(&msgs[i], "assistant")                ? "[|assistant|]"
                              : (f == F_EXAONE4 && role_is(&msgs[i], "tool")) ? "[|tool|]"
                                                                              : NULL;
            if (!pre) continue;
            sb_puts(b, pre);
            sb_trimmed(b, msgs[i].content);
            sb_puts(b, role_is(&msgs[i], "user") ? "\n" : "[|endofturn|]\n");
        }
        if (add_ass) sb_puts(b, "[|assistant|]");
        break;
    case F_EXAONE_MOE:
        for (size_t i = 0; i < n; i++) {
            if (!role_is(&msgs[i], "system") && !role_is(&msgs[i], "user") &&
                !role_is(&msgs[i], "assistant") && !role_is(&msgs[i], "tool"))
                continue;
            sb_cat(b, "<|", msgs[i].role, "|>\n", NULL);
            sb_trimmed(b, msgs[i].content);
            sb_puts(b, "<|endofturn|>\n");
        }
        if (add_ass) sb_puts(b, "<|assistant|>\n");
        break;
    case F_RWKV_WORLD:
        for (size_t i = 0; i < n; i++) {
            const char *pre = role_is(&msgs[i], "system")      ? "System: "
                              : role_is(&msgs[i], "user")      ? "User: "
                              : role_is(&msgs[i], "assistant") ? "Assistant: "
                                                               : NULL;
            if (!pre) continue;
            sb_puts(b, pre);
            sb_trimmed(b, msgs[i].content);
            sb_puts(b, "\n\n");
            if (role_is(&msgs[i], "user") && i + 1 == n) sb_puts(b, "Assistant:");
        }
        break;
    case F_GRANITE:
    case F_GRANITE_4_0:
    case F_GRANITE_4_1:
        for (size_t i = 0; i < n; i++) {
            bool tool_call = role_is(&msgs[i], "assistant_tool_call");
            if (f != F_GRANITE && tool_call)
                sb_puts(b, "<|start_of_role|>assistant<|end_of_role|><|tool_call|>");
            else
                sb_cat(b, "<|start_of_role|>", msgs[i].role, "<|end_of_role|>",
                       tool_call ? "<|tool_call|>" : "", NULL);
            sb_cat(b, msgs[i].content, "<|end_of_text|>\n", NULL);
        }
        if (add_ass) sb_puts(b, "<|start_of_role|>assistant<|end_of_role|>");
        break;
    case F_GIGACHAT: {
        bool has_sys = n > 0 && role_is(&msgs[0], "system");
        if (has_sys)
            sb_cat(b, "<s>", msgs[0].content, "<|message_sep|>", NULL);
        else
            sb_puts(b, "<s>");
        for (size_t i = has_sys ? 1 : 0; i < n; i++) {
            if (role_is(&msgs[i], "user"))
                sb_cat(b, "user<|role_sep|>", msgs[i].content, "<|message_sep|>",
                       "available functions<|role_sep|>[]<|message_sep|>", NULL);
            else if (role_is(&msgs[i], "assistant"))
                sb_cat(b, "assistant<|role_sep|>", msgs[i].content, "<|message_sep|>", NULL);
        }
        if (add_ass) sb_puts(b, "assistant<|role_sep|>");
        break;
    }
    case F_MEGREZ:
        for (size_t i = 0; i < n; i++)
            sb_cat(b, "<|role_start|>", msgs[i].role, "<|role_end|>", msgs[i].content,
                   "<|turn_end|>", NULL);
        if (add_ass) sb_puts(b, "<|role_start|>assistant<|role_end|>");
        break;
    case F_YANDEX:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "user"))
                sb_cat(b,
                       " \xd0\x9f\xd0\xbe\xd0\xbb\xd1\x8c\xd0\xb7\xd0\xbe\xd0\xb2\xd0\xb0\xd1\x82"
                       "\xd0\xb5\xd0\xbb\xd1\x8c: ",
                       msgs[i].content, "\n\n", NULL); /* " Пользователь: " */
            else if (role_is(&msgs[i], "assistant"))
                sb_cat(
                    b,
                    " \xd0\x90\xd1\x81\xd1\x81\xd0\xb8\xd1\x81\xd1\x82\xd0\xb5\xd0\xbd\xd1\x82: ",
                    msgs[i].content, "\n\n", NULL); /* " Ассистент: " */
        }
        if (add_ass)
            sb_puts(b, " \xd0\x90\xd1\x81\xd1\x81\xd0\xb8\xd1\x81\xd1\x82\xd0\xb5\xd0\xbd\xd1\x82:"
                       "[SEP]");
        break;
    case F_BAILING:
    case F_BAILING_THINK:
    case F_BAILING2:
        if (f == F_BAILING2 && !(n > 0 && role_is(&msgs[0], "system")))
            sb_puts(b, "<role>SYSTEM</role>detailed thinking off<|role_end|>");
        for (size_t i = 0; i < n; i++) {
            sb_puts(b, "<role>");
            if (role_is(&msgs[i], "user"))
                sb_puts(b, "HUMAN");
            else
                upper_role(b, msgs[i].role);
            sb_cat(b, "</role>", msgs[i].content, f == F_BAILING2 ? "<|role_end|>" : "", NULL);
        }
        if (add_ass) {
            sb_puts(b, "<role>ASSISTANT</role>");
            if (f == F_BAILING_THINK) sb_puts(b, "<think>");
        }
        break;
    case F_LLAMA4:
        for (size_t i = 0; i < n; i++) {
            sb_cat(b, "<|header_start|>", msgs[i].role, "<|header_end|>\n\n", NULL);
            sb_trimmed(b, msgs[i].content);
            sb_puts(b, "<|eot|>");
        }
        if (add_ass) sb_puts(b, "<|header_start|>assistant<|header_end|>\n\n");
        break;
    case F_SMOLVLM:
        sb_puts(b, "<|im_start|>");
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system"))
                sb_cat(b, msgs[i].content, "\n\n", NULL);
            else if (role_is(&msgs[i], "user"))
                sb_cat(b, "User: ", msgs[i].content, "<end_of_utterance>\n", NULL);
            else
                sb_cat(b, "Assistant: ", msgs[i].content, "<end_of_utterance>\n", NULL);
        }
        if (add_ass) sb_puts(b, "Assistant:");
        break;
    case F_DOTS1:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system"))
                sb_cat(b, "<|system|>", msgs[i].content, "<|endofsystem|>", NULL);
            else if (role_is(&msgs[i], "user"))
                sb_cat(b, "<|userprompt|>", msgs[i].content, "<|endofuserprompt|>", NULL);
            else
                sb_cat(b, "<|response|>", msgs[i].content, "<|endofresponse|>", NULL);
        }
        if (add_ass) sb_puts(b, "<|response|>");
        break;
    case F_HUNYUAN_MOE:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system"))
                sb_cat(b, "<|startoftext|>", msgs[i].content, "<|extra_4|>", NULL);
            else if (role_is(&msgs[i], "assistant"))
                sb_cat(b, msgs[i].content, "<|eos|>", NULL);
            else
                sb_cat(b, "<|startoftext|>", msgs[i].content, "<|extra_0|>", NULL);
        }
        break;
    case F_GPT_OSS:
        for (size_t i = 0; i < n; i++)
            sb_cat(b, "<|start|>", msgs[i].role, "<|message|>", msgs[i].content,
                   role_is(&msgs[i], "assistant") ? "<|return|>" : "<|end|>", NULL);
        if (add_ass) sb_puts(b, "<|start|>assistant");
        break;
    case F_HUNYUAN_DENSE:
        for (size_t i = 0; i < n; i++) {
            if (i == 0 && role_is(&msgs[i], "system")) sb_cat(b, msgs[i].content, HY_PH3, NULL);
            if (role_is(&msgs[i], "assistant"))
                sb_cat(b, HY_ASSISTANT, msgs[i].content, HY_PH2, NULL);
            else if (role_is(&msgs[i], "user"))
                sb_cat(b, HY_USER, msgs[i].content, HY_ASSISTANT, NULL);
        }
        break;
    case F_HUNYUAN_VL:
        sb_puts(b, HY_BOS);
        for (size_t i = 0; i < n; i++) {
            if (i == 0 && role_is(&msgs[i], "system")) {
                sb_cat(b, msgs[i].content, HY_PH3, NULL);
                continue;
            }
            if (role_is(&msgs[i], "user"))
                sb_cat(b, msgs[i].content, HY_USER, NULL);
            else if (role_is(&msgs[i], "assistant"))
                sb_cat(b, msgs[i].content, HY_ASSISTANT, NULL);
        }
        break;
    case F_KIMI_K2:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system"))
                sb_puts(b, "<|im_system|>system<|im_middle|>");
            else if (role_is(&msgs[i], "user"))
                sb_puts(b, "<|im_user|>user<|im_middle|>");
            else if (role_is(&msgs[i], "assistant"))
                sb_puts(b, "<|im_assistant|>assistant<|im_middle|>");
            else if (role_is(&msgs[i], "tool"))
                sb_puts(b, "<|im_system|>tool<|im_middle|>");
            sb_cat(b, msgs[i].content, "<|im_end|>", NULL);
        }
        if (add_ass) sb_puts(b, "<|im_assistant|>assistant<|im_middle|>");
        break;
    case F_SEED_OSS:
        for (size_t i = 0; i < n; i++) {
            sb_cat(b, "<seed:bos>", msgs[i].role, "\n", NULL);
            if (role_is(&msgs[i], "assistant"))
                sb_trimmed(b, msgs[i].content);
            else
                sb_puts(b, msgs[i].content);
            sb_puts(b, "<seed:eos>");
        }
        if (add_ass) sb_puts(b, "<seed:bos>assistant\n");
        break;
    case F_GROK2:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&msgs[i], "system")) {
                sb_puts(b, "System: ");
                sb_trimmed(b, msgs[i].content);
            } else if (role_is(&msgs[i], "user")) {
                sb_puts(b, "Human: ");
                sb_trimmed(b, msgs[i].content);
            } else if (role_is(&msgs[i], "assistant")) {
                sb_cat(b, "Assistant: ", msgs[i].content, NULL);
            } else {
                continue;
            }
            sb_puts(b, "<|separator|>\n\n");
        }
        if (add_ass) sb_puts(b, "Assistant:");
        break;
    case F_PANGU_EMBEDDED: {
#define PG_OPEN "[unused9]"
#define PG_CLOSE "[unused10]"
        static const char *const roles[][2] = {
            {"system", "\xe7\xb3\xbb\xe7\xbb\x9f\xef\xbc\x9a"},    /* 系统： */
            {"user", "\xe7\x94\xa8\xe6\x88\xb7\xef\xbc\x9a"},      /* 用户： */
            {"assistant", "\xe5\x8a\xa9\xe6\x89\x8b\xef\xbc\x9a"}, /* 助手： */
            {"tool", "\xe5\xb7\xa5\xe5\x85\xb7\xef\xbc\x9a"},      /* 工具： */
            {"function", "\xe6\x96\xb9\xe6\xb3\x95\xef\xbc\x9a"},  /* 方法： */
        };
        for (size_t i = 0; i < n; i++) {
            if (i == 0 && !role_is(&msgs[i], "system"))
                sb_cat(b, PG_OPEN, roles[0][1], PG_CLOSE, NULL);
            for (size_t r = 0; r < 5; r++)
                if (role_is(&msgs[i], roles[r][0]))
                    sb_cat(b, PG_OPEN, roles[r][1], msgs[i].content, PG_CLOSE, NULL);
        }
        if (add_ass) sb_cat(b, PG_OPEN, roles[2][1], NULL);
        break;
#undef PG_OPEN
#undef PG_CLOSE
    }
    case F_SOLAR_OPEN:
        for (size_t i = 0; i < n; i++)
            sb_cat(b, "<|begin|>", msgs[i].role, "<|content|>", msgs[i].content, "<|end|>", NULL);
        if (add_ass) sb_puts(b, "<|begin|>assistant");
        break;
    case F_UNKNOWN:
    case F_COUNT:
        break;
    }
}

/* QUARREL_CHAT_DATE=YYYY-MM-DD pins strftime_now() (tests use 2026-01-01); else today. */
static const char *pinned_date(void) {
    const char *d = getenv("QUARREL_CHAT_DATE");
    return d && *d ? d : NULL;
}

qr_status qr_chat_apply_template(const char *tmpl, const qr_chat_message *messages,
                                 size_t n_messages, bool add_generation_prompt,
                                 const char *bos_token, const char *eos_token, char **out) {
    if (!out) return qr_error(QR_ERR_INVALID_ARG, "qr_chat_apply_template: out is NULL");
    *out = NULL;
    if (n_messages > 0 && !messages)
        return qr_error(QR_ERR_INVALID_ARG, "qr_chat_apply_template: messages is NULL");
    for (size_t i = 0; i < n_messages; i++)
        if (!messages[i].role || !messages[i].content)
            return qr_error(QR_ERR_INVALID_ARG, "chat message %zu has a NULL %s", i,
                            messages[i].role ? "content" : "role");
    if (!tmpl) tmpl = "chatml";

    family f = family_from_name(tmpl);
    if (f != F_UNKNOWN) {
        qr_strbuf b = {0};
        sb_puts(&b, "");
        render_builtin(f, messages, n_messages, add_generation_prompt, &b);
        if (b.oom) {
            free(b.p);
            return qr_error(QR_ERR_NOMEM, "out of memory rendering chat template '%s'", tmpl);
        }
        *out = b.p;
        return QR_OK;
    }
    qr_jinja_vars vars = {
        .messages = messages,
        .n_messages = n_messages,
        .add_generation_prompt = add_generation_prompt,
        .bos_token = bos_token,
        .eos_token = eos_token,
        .date = pinned_date(),
    };
    return qr_jinja_render(tmpl, strlen(tmpl), &vars, out);
}

/* ---- OpenAI-shaped messages (qr_chat_apply_template_json) ---- */

/* A message's content as one string: a string as is, text parts joined, anything else "". */
static char *content_text(const cJSON *content) {
    if (cJSON_IsString(content)) return qr_strdup(content->valuestring);
    qr_strbuf b = {0};
    sb_puts(&b, "");
    const cJSON *part;
    if (cJSON_IsArray(content)) cJSON_ArrayForEach(part, content) {
            const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
            if (cJSON_IsString(text)) sb_puts(&b, text->valuestring);
        }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* llama.cpp's func_args_not_string and requires_non_null_content, on our copy of the array. */
static qr_status adjust_messages(cJSON *msgs) {
    size_t i = 0;
    cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        if (!cJSON_IsObject(m) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "role")))
            return qr_error(QR_ERR_INVALID_ARG, "chat message %zu is not an object with a role", i);
        cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsArray(calls) && (!content || cJSON_IsNull(content))) {
            if (content) cJSON_DeleteItemFromObjectCaseSensitive(m, "content");
            cJSON_AddStringToObject(m, "content", "");
        }
        cJSON *call;
        if (cJSON_IsArray(calls)) cJSON_ArrayForEach(call, calls) {
                cJSON *fn = cJSON_GetObjectItemCaseSensitive(call, "function");
                cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
                if (!cJSON_IsString(args)) continue;
                cJSON *parsed = cJSON_Parse(args->valuestring);
                if (!parsed)
                    return qr_error(QR_ERR_INVALID_ARG,
                                    "chat message %zu: tool call arguments are not JSON: %s", i,
                                    args->valuestring);
                cJSON_ReplaceItemInObjectCaseSensitive(fn, "arguments", parsed);
            }
        i++;
    }
    return QR_OK;
}

/* Role and content of each message for the built-in families (strings owned by *out). */
static qr_status plain_messages(const cJSON *msgs, qr_chat_message **out, size_t *n_out) {
    size_t n = (size_t)cJSON_GetArraySize(msgs), i = 0;
    qr_chat_message *m = qr_calloc(n ? n : 1, sizeof *m);
    if (!m) return QR_ERR_NOMEM;
    const cJSON *e;
    cJSON_ArrayForEach(e, msgs) {
        m[i].role = cJSON_GetObjectItemCaseSensitive(e, "role")->valuestring;
        m[i].content = content_text(cJSON_GetObjectItemCaseSensitive(e, "content"));
        if (!m[i].content) {
            for (size_t k = 0; k < i; k++)
                free((char *)m[k].content);
            free(m);
            return QR_ERR_NOMEM;
        }
        i++;
    }
    *out = m;
    *n_out = n;
    return QR_OK;
}

qr_status qr_chat_apply_template_json(const char *tmpl, const char *messages_json,
                                      const char *tools_json, bool add_generation_prompt,
                                      const char *bos_token, const char *eos_token, char **out) {
    if (!out) return qr_error(QR_ERR_INVALID_ARG, "qr_chat_apply_template_json: out is NULL");
    *out = NULL;
    if (!messages_json)
        return qr_error(QR_ERR_INVALID_ARG, "qr_chat_apply_template_json: messages is NULL");
    cJSON *msgs = cJSON_Parse(messages_json);
    cJSON *tools = tools_json ? cJSON_Parse(tools_json) : NULL;
    qr_status st = QR_OK;
    if (!cJSON_IsArray(msgs))
        st = qr_error(QR_ERR_INVALID_ARG, "chat messages must be a JSON array");
    else if (tools_json && !cJSON_IsArray(tools))
        st = qr_error(QR_ERR_INVALID_ARG, "chat tools must be a JSON array");
    if (!st) st = adjust_messages(msgs);
    if (!tmpl) tmpl = "chatml";
    if (!st && family_from_name(tmpl) != F_UNKNOWN) {
        qr_chat_message *plain = NULL;
        size_t n = 0;
        st = plain_messages(msgs, &plain, &n);
        if (!st)
            st = qr_chat_apply_template(tmpl, plain, n, add_generation_prompt, bos_token,
                                        eos_token, out);
        for (size_t i = 0; i < n; i++)
            free((char *)plain[i].content);
        free(plain);
    } else if (!st) {
        qr_jinja_vars vars = {
            .messages_json = msgs,
            .tools_json = tools,
            .add_generation_prompt = add_generation_prompt,
            .bos_token = bos_token,
            .eos_token = eos_token,
            .date = pinned_date(),
        };
        st = qr_jinja_render(tmpl, strlen(tmpl), &vars, out);
    }
    cJSON_Delete(msgs);
    cJSON_Delete(tools);
    return st;
}
