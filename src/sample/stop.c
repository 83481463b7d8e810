/* stop.c - stop strings matched across token boundaries. Generated text is appended to a
 * pending buffer; the earliest complete stop string ends generation (the text before it is
 * emitted, the stop string and anything after it are not); otherwise the longest tail that
 * is a proper prefix of some stop string is held back and the rest is emitted. */
#include "sample/sample_internal.h"

#include <stdlib.h>

struct qr_stop_matcher {
    char **stops;
    size_t *lens;
    int n_stops;
    size_t max_len;
    bool stopped;
    char *pending; /* text not yet emitted */
    size_t n_pending, cap_pending;
    char *out; /* what the last call emitted */
    size_t cap_out;
};

qr_status qr_stop_matcher_create(const char *const *stops, int n_stops, qr_stop_matcher **out) {
    if (!out) return qr_error(QR_ERR_INVALID_ARG, "qr_stop_matcher_create: out is NULL");
    *out = NULL;
    if (n_stops < 0)
        return qr_error(QR_ERR_INVALID_ARG, "stop strings: n_stops must be >= 0 (got %d)", n_stops);
    if (n_stops > 0 && !stops)
        return qr_error(QR_ERR_INVALID_ARG, "stop strings: stops is NULL but n_stops is %d",
                        n_stops);
    for (int i = 0; i < n_stops; i++) {
        if (!stops[i])
            return qr_error(QR_ERR_INVALID_ARG, "stop strings: stop string %d is NULL", i);
        if (!stops[i][0])
            return qr_error(QR_ERR_INVALID_ARG,
                            "stop strings: stop string %d is empty (it would match at once)", i);
    }
    qr_stop_matcher *m = qr_calloc(1, sizeof *m);
    if (!m) return QR_ERR_NOMEM;
    m->stops = qr_calloc((size_t)n_stops, sizeof *m->stops);
    m->lens = qr_calloc((size_t)n_stops, sizeof *m->lens);
    if (!m->stops || !m->lens) {
        qr_stop_matcher_free(m);
        return QR_ERR_NOMEM;
    }
    m->n_stops = n_stops;
    for (int i = 0; i < n_stops; i++) {
        m->stops[i] = qr_strdup(stops[i]);
        if (!m->stops[i]) {
            qr_stop_matcher_free(m);
            return QR_ERR_NOMEM;
        }
        m->lens[i] = strlen(stops[i]);
        if (m->lens[i] > m->max_len) m->max_len = m->lens[i];
    }
    *out = m;
    return QR_OK;
}

void qr_stop_matcher_free(qr_stop_matcher *m) {
    if (!m) return;
    for (int i = 0; m->stops && i < m->n_stops; i++)
        free(m->stops[i]);
    free(m->stops);
    free(m->lens);
    free(m->pending);
    free(m->out);
    free(m);
}

static bool reserve(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    char *p = realloc(*buf, c);
    if (!p) return false;
    *buf = p;
    *cap = c;
    return true;
}

/* Move the first n pending bytes to the output buffer. */
static void emit_front(qr_stop_matcher *m, size_t n, const char **emit, size_t *n_emit) {
    if (n == 0) return; /* *emit stays the empty string (the buffers may not exist yet) */
    memcpy(m->out, m->pending, n);
    memmove(m->pending, m->pending + n, m->n_pending - n);
    m->n_pending -= n;
    *emit = m->out;
    *n_emit = n;
}

/* Length of the longest tail of s[0..n) that is a proper prefix of some stop string. */
static size_t held_tail(const qr_stop_matcher *m, const char *s, size_t n) {
    size_t best = 0;
    for (int k = 0; k < m->n_stops; k++) {
        size_t lim = m->lens[k] - 1 < n ? m->lens[k] - 1 : n;
        for (size_t len = lim; len > best; len--)
            if (memcmp(s + n - len, m->stops[k], len) == 0) {
                best = len;
                break;
            }
    }
    return best;
}

bool qr_stop_matcher_push(qr_stop_matcher *m, const char *text, size_t n, const char **emit,
                          size_t *n_emit) {
    static const char empty[1] = "";
    *emit = empty;
    *n_emit = 0;
    if (!m) return false;
    if (m->stopped) return true;
    if (n > 0 && text) {
        /* On allocation failure the text is passed through unchecked rather than lost. */
        if (!reserve(&m->pending, &m->cap_pending, m->n_pending + n) ||
            !reserve(&m->out, &m->cap_out, m->n_pending + n)) {
            *emit = text;
            *n_emit = n;
            return false;
        }
        memcpy(m->pending + m->n_pending, text, n);
        m->n_pending += n;
    }
    /* the earliest complete stop string (only the new text and the held-back tail can hold
     * one, but the pending buffer is short enough to scan whole) */
    size_t first = SIZE_MAX;
    for (int k = 0; k < m->n_stops; k++) {
        if (m->lens[k] > m->n_pending) continue;
        for (size_t at = 0; at + m->lens[k] <= m->n_pending && at < first; at++)
            if (memcmp(m->pending + at, m->stops[k], m->lens[k]) == 0) {
                first = at;
                break;
            }
    }
    if (first != SIZE_MAX) {
        emit_front(m, first, emit, n_emit);
        m->n_pending = 0; /* the stop string and what followed it are dropped */
        m->stopped = true;
        return true;
    }
    size_t hold = held_tail(m, m->pending, m->n_pending);
    emit_front(m, m->n_pending - hold, emit, n_emit);
    return false;
}

void qr_stop_matcher_flush(qr_stop_matcher *m, const char **emit, size_t *n_emit) {
    static const char empty[1] = "";
    *emit = empty;
    *n_emit = 0;
    if (!m || m->stopped) return;
    emit_front(m, m->n_pending, emit, n_emit);
}
