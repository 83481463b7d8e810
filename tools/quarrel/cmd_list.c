/* cmd_list.c - `quarrel list` and `quarrel rm NAME[:TAG]...`: the models of the ollama store
 * ($OLLAMA_MODELS or ~/.ollama/models) as `ollama list` shows them, and their removal. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ollama's format.HumanTime, roughly */
static void format_age(int64_t seconds, char *buf, size_t size) {
    const long long s = seconds < 0 ? 0 : (long long)seconds;
    if (s < 1)
        snprintf(buf, size, "Less than a second ago");
    else if (s < 60)
        snprintf(buf, size, "%lld second%s ago", s, s == 1 ? "" : "s");
    else if (s < 120)
        snprintf(buf, size, "About a minute ago");
    else if (s < 3600)
        snprintf(buf, size, "%lld minutes ago", s / 60);
    else if (s < 7200)
        snprintf(buf, size, "About an hour ago");
    else if (s < 2 * 86400)
        snprintf(buf, size, "%lld hours ago", s / 3600);
    else if (s < 14 * 86400)
        snprintf(buf, size, "%lld days ago", s / 86400);
    else if (s < 60 * 86400)
        snprintf(buf, size, "%lld weeks ago", s / (7 * 86400));
    else
        snprintf(buf, size, "%lld months ago", s / (30 * 86400));
}

int cmd_list(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: quarrel list\n  the models of $OLLAMA_MODELS (else ~/.ollama/models)\n");
            return 0;
        }
        fprintf(stderr, "quarrel list: unexpected argument '%s'\n", argv[i]);
        return 2;
    }
    qr_registry_model *models;
    int32_t n;
    if (qr_registry_list(NULL, &models, &n) != QR_OK) return cli_fail("list");
    int width = 4;
    for (int32_t i = 0; i < n; i++)
        if ((int)strlen(models[i].name) > width) width = (int)strlen(models[i].name);
    printf("%-*s    %-12s    %-8s    %s\n", width, "NAME", "ID", "SIZE", "MODIFIED");
    const int64_t t = (int64_t)time(NULL);
    for (int32_t i = 0; i < n; i++) {
        char size[32], age[64];
        cli_format_bytes(models[i].size, size, sizeof size);
        format_age(t - models[i].modified, age, sizeof age);
        printf("%-*s    %-12s    %-8s    %s\n", width, models[i].name, models[i].id, size, age);
    }
    free(models);
    return 0;
}

int cmd_rm(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: quarrel rm NAME[:TAG]...\n");
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        printf("usage: quarrel rm NAME[:TAG]...\n  removes each model's manifest and the blobs "
               "no other model uses\n");
        return 0;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        int32_t n_blobs = 0;
        if (qr_registry_remove(NULL, argv[i], &n_blobs) != QR_OK) {
            rc = cli_fail("rm");
            continue;
        }
        printf("deleted '%s' (%d blob%s removed)\n", argv[i], n_blobs, n_blobs == 1 ? "" : "s");
    }
    return rc;
}
