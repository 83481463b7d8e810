/* test_manifest.c - the registry's manifest validation and model-name parsing: a good manifest
 * of each media type, and every refusal with its message (bad JSON, versions, media types,
 * digests with path tricks, sizes, trailing data); names with their defaults, ollama's display
 * form and the refusals that keep each part a safe path component. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "registry/registry.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define DOCKER "application/vnd.docker.distribution.manifest.v2+json"

/* a manifest with the given schemaVersion/mediaType members, config and layers text */
static char *manifest(const char *head, const char *config, const char *layers) {
    static char buf[8192];
    snprintf(buf, sizeof buf, "{%s, \"config\": %s, \"layers\": %s}", head, config, layers);
    return buf;
}
#define HEAD "\"schemaVersion\": 2, \"mediaType\": \"" DOCKER "\""
#define CONFIG                                                                                     \
    "{\"mediaType\": \"application/vnd.docker.container.image.v1+json\", "                         \
    "\"digest\": \"sha256:" HEX_A "\", \"size\": 429}"
#define LAYER(digest, size)                                                                        \
    "{\"mediaType\": \"application/vnd.ollama.image.model\", \"digest\": \"" digest                \
    "\", \"size\": " size "}"

static void expect_error(const char *text, const char *message) {
    qr_manifest m;
    qr_error_clear();
    assert_int_equal(qr_manifest_parse(text, strlen(text), &m), QR_ERR_FORMAT);
    if (!strstr(qr_last_error(), message))
        fail_msg("expected [%s] in [%s] for %s", message, qr_last_error(), text);
    assert_null(m.layers);
    qr_manifest_free(&m);
}

static void test_good(void **state) {
    (void)state;
    const char *text = manifest(
        HEAD, CONFIG, "[" LAYER("sha256:" HEX_B, "1185376") ", " LAYER("sha256:" HEX_A, "0") "]\n");
    qr_manifest m;
    assert_int_equal(qr_manifest_parse(text, strlen(text), &m), QR_OK);
    assert_string_equal(m.config.digest, "sha256:" HEX_A);
    assert_string_equal(m.config.media_type, "application/vnd.docker.container.image.v1+json");
    assert_int_equal(m.config.size, 429);
    assert_int_equal(m.n_layers, 2);
    assert_string_equal(m.layers[0].digest, "sha256:" HEX_B);
    assert_string_equal(m.layers[0].media_type, "application/vnd.ollama.image.model");
    assert_int_equal(m.layers[0].size, 1185376);
    assert_int_equal(m.layers[1].size, 0);
    assert_int_equal(m.total_size, 429 + 1185376);
    qr_manifest_free(&m);
    /* the OCI type, extra members (annotations) and the largest exact size are fine */
    text = manifest("\"schemaVersion\": 2, \"annotations\": {\"a\": 1}, \"mediaType\": "
                    "\"application/vnd.oci.image.manifest.v1+json\"",
                    CONFIG, "[" LAYER("sha256:" HEX_B, "9007199254740992") "]");
    assert_int_equal(qr_manifest_parse(text, strlen(text), &m), QR_OK);
    assert_int_equal(m.layers[0].size, 9007199254740992LL);
    qr_manifest_free(&m);
}

static void test_structure_errors(void **state) {
    (void)state;
    const char *layers = "[" LAYER("sha256:" HEX_B, "1") "]";
    expect_error("", "manifest: not valid JSON");
    expect_error("{\"schemaVersion\": 2", "manifest: not valid JSON");
    expect_error("[1, 2]", "manifest: not a JSON object");
    expect_error("{} {}", "manifest: data after the JSON object");
    char with_nul[] = "{\"schemaVersion\": 2}\0";
    qr_manifest m;
    assert_int_equal(qr_manifest_parse(with_nul, sizeof with_nul - 1, &m), QR_ERR_FORMAT);
    assert_non_null(strstr(qr_last_error(), "manifest: contains a NUL byte"));
    expect_error(manifest("\"schemaVersion\": 1, \"mediaType\": \"" DOCKER "\"", CONFIG, layers),
                 "manifest: schemaVersion is not 2");
    expect_error(
        manifest("\"schemaVersion\": \"2\", \"mediaType\": \"" DOCKER "\"", CONFIG, layers),
        "manifest: schemaVersion is not 2");
    expect_error(manifest("\"schemaVersion\": 2", CONFIG, layers),
                 "manifest: mediaType is missing");
    expect_error(manifest("\"schemaVersion\": 2, \"mediaType\": "
                          "\"application/vnd.docker.distribution.manifest.list.v2+json\"",
                          CONFIG, layers),
                 "manifest: mediaType 'application/vnd.docker.distribution.manifest.list.v2+json'"
                 " is not an image manifest");
    expect_error(manifest(HEAD, "[]", layers), "manifest: config is not an object");
    expect_error("{" HEAD ", \"layers\": []}", "manifest: config is not an object");
    expect_error(manifest(HEAD, CONFIG, "{}"), "manifest: layers is not an array");
    expect_error(manifest(HEAD, CONFIG, "[]"), "manifest: 0 layers (expected 1 to 1024)");
    expect_error(manifest(HEAD, CONFIG, "[7]"), "manifest: layers[0] is not an object");
    /* more layers than any model has */
    static char many[200000];
    size_t n =
        (size_t)snprintf(many, sizeof many, "{" HEAD ", \"config\": " CONFIG ", \"layers\": [");
    for (int i = 0; i <= QR_MANIFEST_MAX_LAYERS; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "%s" LAYER("sha256:" HEX_A, "1"),
                              i ? "," : "");
    snprintf(many + n, sizeof many - n, "]}");
    expect_error(many, "manifest: 1025 layers (expected 1 to 1024)");
}

static void test_blob_errors(void **state) {
    (void)state;
    const char *bad_digests[] = {
        "sha256:../../../../etc/passwd",
        ("sha256:" HEX_A "/x"),
        ("sha256:" HEX_A "a"), /* 65 digits */
        "sha256:aaaa",
        "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ("sha512:" HEX_A),
        HEX_A,
        "",
    };
    for (size_t i = 0; i < sizeof bad_digests / sizeof *bad_digests; i++) {
        char layer[512], msg[256];
        snprintf(layer, sizeof layer,
                 "[" LAYER("sha256:" HEX_B, "1") ", {\"mediaType\": \"x\", \"digest\": \"%s\", "
                                                 "\"size\": 1}]",
                 bad_digests[i]);
        snprintf(msg, sizeof msg,
                 "manifest: layers[1].digest '%.80s' is not sha256:<64 hex digits>",
                 bad_digests[i]);
        expect_error(manifest(HEAD, CONFIG, layer), msg);
    }
    expect_error(
        manifest(HEAD, "{\"mediaType\": \"x\", \"size\": 1}", "[" LAYER("sha256:" HEX_B, "1") "]"),
        "manifest: config.digest is missing or not a string");
    const char *bad_sizes[] = {"-1", "1.5", "1e300", "\"12\"", "null", "9007199254740994"};
    for (size_t i = 0; i < sizeof bad_sizes / sizeof *bad_sizes; i++) {
        char layer[512];
        snprintf(layer, sizeof layer,
                 "[{\"mediaType\": \"x\", \"digest\": \"sha256:" HEX_A "\", \"size\": %s}]",
                 bad_sizes[i]);
        expect_error(manifest(HEAD, CONFIG, layer),
                     "manifest: layers[0].size is missing or not a whole number of bytes");
    }
    expect_error(manifest(HEAD, CONFIG, "[{\"digest\": \"sha256:" HEX_A "\", \"size\": 1}]"),
                 "manifest: layers[0].mediaType is missing or not a string");
    expect_error(manifest(HEAD, CONFIG,
                          "[{\"mediaType\": \"a\\u0001b\", \"digest\": \"sha256:" HEX_A
                          "\", \"size\": 1}]"),
                 "manifest: layers[0].mediaType is too long or not printable");
}

static void expect_name(const char *text, const char *host, const char *ns, const char *model,
                        const char *tag, const char *display) {
    qr_model_name n;
    if (qr_model_name_parse(text, &n) != QR_OK) fail_msg("%s: %s", text, qr_last_error());
    assert_string_equal(n.host, host);
    assert_string_equal(n.namespace_, ns);
    assert_string_equal(n.model, model);
    assert_string_equal(n.tag, tag);
    char buf[700];
    qr_model_name_display(&n, buf, sizeof buf);
    assert_string_equal(buf, display);
}

static void expect_bad_name(const char *text, const char *message) {
    qr_model_name n;
    qr_error_clear();
    assert_int_equal(qr_model_name_parse(text, &n), QR_ERR_INVALID_ARG);
    if (!strstr(qr_last_error(), message))
        fail_msg("expected [%s] in [%s] for '%s'", message, qr_last_error(), text);
}

static void test_names(void **state) {
    (void)state;
    expect_name("smollm2", "registry.ollama.ai", "library", "smollm2", "latest", "smollm2:latest");
    expect_name("smollm2:135m", "registry.ollama.ai", "library", "smollm2", "135m", "smollm2:135m");
    expect_name("alice/m_1.5-x:v2", "registry.ollama.ai", "alice", "m_1.5-x", "v2",
                "alice/m_1.5-x:v2");
    expect_name("hf.co/bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M", "hf.co", "bartowski",
                "SmolLM2-135M-Instruct-GGUF", "Q4_K_M",
                "hf.co/bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M");
    expect_name("localhost:5000/library/tiny", "localhost:5000", "library", "tiny", "latest",
                "localhost:5000/library/tiny:latest");
    expect_name("registry.ollama.ai/library/tiny:q8", "registry.ollama.ai", "library", "tiny", "q8",
                "tiny:q8");

    expect_bad_name("", "empty model name");
    expect_bad_name("a/b/c/d",
                    "invalid model name 'a/b/c/d': expected [HOST/][NAMESPACE/]MODEL[:TAG]");
    expect_bad_name("../x", "bad namespace '..'");
    expect_bad_name("./x", "bad namespace '.'");
    expect_bad_name("a.b/x", "bad namespace 'a.b'");
    expect_bad_name("x:..", "bad tag '..'");
    expect_bad_name("x:", "bad tag ''");
    expect_bad_name("x:a/b", "bad namespace 'x:a'");
    expect_bad_name(".hidden", "bad model '.hidden'");
    expect_bad_name("/x", "bad namespace ''");
    expect_bad_name("a//x", "bad namespace ''");
    expect_bad_name("x y", "bad model 'x y'");
    expect_bad_name("..:5000/a/b", "bad host '..:5000'");
    expect_bad_name("a:b/c", "bad namespace 'a:b'");
    char long_tag[200];
    memset(long_tag, 'a', sizeof long_tag);
    memcpy(long_tag, "x:", 2);
    long_tag[83] = '\0'; /* an 81-byte tag */
    expect_bad_name(long_tag, "at most 80 bytes");
}

static void test_digest_valid(void **state) {
    (void)state;
    assert_true(qr_digest_valid("sha256:" HEX_B));
    assert_false(qr_digest_valid("sha256:" HEX_B "0"));
    assert_false(qr_digest_valid("sha256:"));
    assert_false(qr_digest_valid("sha256-" HEX_B));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),         cmocka_unit_test(test_structure_errors),
        cmocka_unit_test(test_blob_errors),  cmocka_unit_test(test_names),
        cmocka_unit_test(test_digest_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
