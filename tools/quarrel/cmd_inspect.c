/* cmd_inspect.c - `quarrel inspect FILE [--json]`: a GGUF file's version, every metadata key
 * (long arrays summarised), every tensor, totals and bits per weight. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SHOWN 8 /* elements printed before "..." */

static void print_escaped(FILE *f, const char *s, size_t max) {
    size_t n = 0;
    for (; *s && n < max; s++, n++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\n')
            fputs("\\n", f);
        else if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    if (*s) fputs("...", f);
}

static void print_scalar(FILE *f, const qr_gguf_value *v) {
    switch (v->type) {
    case QR_GGUF_UINT8:
    case QR_GGUF_UINT16:
    case QR_GGUF_UINT32:
    case QR_GGUF_UINT64:
        fprintf(f, "%llu", (unsigned long long)v->u64);
        break;
    case QR_GGUF_INT8:
    case QR_GGUF_INT16:
    case QR_GGUF_INT32:
    case QR_GGUF_INT64:
        fprintf(f, "%lld", (long long)v->i64);
        break;
    case QR_GGUF_FLOAT32:
    case QR_GGUF_FLOAT64:
        fprintf(f, "%.9g", v->f64);
        break;
    case QR_GGUF_BOOL:
        fputs(v->b ? "true" : "false", f);
        break;
    case QR_GGUF_STRING:
        fputc('"', f);
        print_escaped(f, v->str.ptr, 200);
        fputc('"', f);
        break;
    case QR_GGUF_ARRAY:
        break;
    }
}

static void print_value(FILE *f, const qr_gguf_value *v) {
    if (v->type != QR_GGUF_ARRAY) {
        print_scalar(f, v);
        return;
    }
    fprintf(f, "[%s x %llu] [", qr_gguf_type_name(v->arr.type), (unsigned long long)v->arr.n);
    for (uint64_t j = 0; j < v->arr.n && j < ARRAY_SHOWN; j++) {
        if (j) fputs(", ", f);
        if (v->arr.items) {
            print_value(f, &v->arr.items[j]);
        } else if (v->arr.type == QR_GGUF_FLOAT32 || v->arr.type == QR_GGUF_FLOAT64) {
            fprintf(f, "%.6g", qr_gguf_arr_f64(v, j));
        } else {
            fprintf(f, "%lld", (long long)qr_gguf_arr_i64(v, j));
        }
    }
    if (v->arr.n > ARRAY_SHOWN) fputs(", ...", f);
    fputc(']', f);
}

static cJSON *json_value(const qr_gguf_value *v) {
    switch (v->type) {
    case QR_GGUF_UINT8:
    case QR_GGUF_UINT16:
    case QR_GGUF_UINT32:
    case QR_GGUF_UINT64:
        return cJSON_CreateNumber((double)v->u64);
    case QR_GGUF_INT8:
    case QR_GGUF_INT16:
    case QR_GGUF_INT32:
    case QR_GGUF_INT64:
        return cJSON_CreateNumber((double)v->i64);
    case QR_GGUF_FLOAT32:
    case QR_GGUF_FLOAT64:
        return cJSON_CreateNumber(v->f64);
    case QR_GGUF_BOOL:
        return cJSON_CreateBool(v->b);
    case QR_GGUF_STRING:
        return cJSON_CreateString(v->str.ptr);
    case QR_GGUF_ARRAY: {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", qr_gguf_type_name(v->arr.type));
        cJSON_AddNumberToObject(o, "n", (double)v->arr.n);
        cJSON *items = cJSON_AddArrayToObject(o, "head");
        for (uint64_t j = 0; j < v->arr.n && j < ARRAY_SHOWN; j++) {
            if (v->arr.items)
                cJSON_AddItemToArray(items, json_value(&v->arr.items[j]));
            else
                cJSON_AddItemToArray(items, cJSON_CreateNumber(qr_gguf_arr_f64(v, j)));
        }
        return o;
    }
    }
    return cJSON_CreateNull();
}

static int usage(FILE *f, int code) {
    fprintf(f, "usage: quarrel inspect FILE.gguf [--json]\n");
    return code;
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return usage(stdout, 0);
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "quarrel inspect: unknown option '%s'\n", argv[i]);
            return usage(stderr, 2);
        } else if (path) {
            fprintf(stderr, "quarrel inspect: more than one file given\n");
            return usage(stderr, 2);
        } else
            path = argv[i];
    }
    if (!path) return usage(stderr, 2);
    qr_gguf *g;
    if (qr_gguf_open(path, &g) != QR_OK) return cli_fail("inspect");

    uint64_t total_elems = 0, total_bytes = 0;
    for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
        const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
        total_elems += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        total_bytes += t->nbytes;
    }
    double bpw = total_elems ? 8.0 * (double)total_bytes / (double)total_elems : 0.0;

    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "file", path);
        cJSON_AddNumberToObject(root, "version", qr_gguf_version(g));
        cJSON_AddNumberToObject(root, "alignment", (double)qr_gguf_alignment(g));
        cJSON_AddNumberToObject(root, "data_offset", (double)qr_gguf_data_offset(g));
        cJSON *kv = cJSON_AddObjectToObject(root, "metadata");
        for (int64_t i = 0; i < qr_gguf_n_kv(g); i++)
            cJSON_AddItemToObject(kv, qr_gguf_key(g, i), json_value(qr_gguf_value_at(g, i)));
        cJSON *ts = cJSON_AddArrayToObject(root, "tensors");
        for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
            const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", t->name);
            cJSON_AddStringToObject(o, "type", qr_type_name(t->type));
            cJSON *shape = cJSON_AddArrayToObject(o, "shape");
            for (uint32_t d = 0; d < t->n_dims; d++)
                cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->ne[d]));
            cJSON_AddNumberToObject(o, "offset", (double)t->offset);
            cJSON_AddNumberToObject(o, "bytes", (double)t->nbytes);
            cJSON_AddItemToArray(ts, o);
        }
        cJSON_AddNumberToObject(root, "n_elements", (double)total_elems);
        cJSON_AddNumberToObject(root, "n_bytes", (double)total_bytes);
        cJSON_AddNumberToObject(root, "bits_per_weight", bpw);
        char *s = cJSON_Print(root);
        if (s) puts(s);
        free(s);
        cJSON_Delete(root);
    } else {
        printf("file: %s\nGGUF version %u, %lld metadata keys, %lld tensors, alignment %zu, data "
               "at %zu\n\n",
               path, qr_gguf_version(g), (long long)qr_gguf_n_kv(g),
               (long long)qr_gguf_n_tensors(g), qr_gguf_alignment(g), qr_gguf_data_offset(g));
        printf("metadata:\n");
        for (int64_t i = 0; i < qr_gguf_n_kv(g); i++) {
            const qr_gguf_value *v = qr_gguf_value_at(g, i);
            printf("  %-40s %-6s ", qr_gguf_key(g, i), qr_gguf_type_name(v->type));
            print_value(stdout, v);
            putchar('\n');
        }
        printf("\ntensors:\n  %-32s %-7s %-24s %12s %12s\n", "name", "type", "shape", "offset",
               "bytes");
        for (int64_t i = 0; i < qr_gguf_n_tensors(g); i++) {
            const qr_gguf_tensor *t = qr_gguf_tensor_at(g, i);
            char shape[96];
            int n = snprintf(shape, sizeof shape, "[");
            for (uint32_t d = 0; d < t->n_dims && n < (int)sizeof shape; d++)
                n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%lld", d ? ", " : "",
                              (long long)t->ne[d]);
            if (n < (int)sizeof shape) snprintf(shape + n, sizeof shape - (size_t)n, "]");
            printf("  %-32s %-7s %-24s %12llu %12zu\n", t->name, qr_type_name(t->type), shape,
                   (unsigned long long)t->offset, t->nbytes);
        }
        printf("\ntotal: %llu elements, %llu bytes (%.2f MiB), %.3f bits per weight\n",
               (unsigned long long)total_elems, (unsigned long long)total_bytes,
               (double)total_bytes / 1048576.0, bpw);
    }
    qr_gguf_free(g);
    return 0;
}
