/* error.c - the thread-local last-error message behind qr_last_error(). */
#include "util/util.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[1024];

qr_status qr_error(qr_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return code;
}

void qr_error_prefix(const char *fmt, ...) {
    char prefix[512];
    char old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t n = strlen(prefix);
    if (n + 2 >= sizeof last_error) n = sizeof last_error - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t m = strlen(old);
    if (n + 2 + m >= sizeof last_error) m = sizeof last_error - n - 3;
    memcpy(last_error + n + 2, old, m);
    last_error[n + 2 + m] = '\0';
}

void qr_error_clear(void) {
    last_error[0] = '\0';
}

const char *qr_last_error(void) {
    return last_error;
}

const char *qr_status_name(qr_status status) {
    switch (status) {
    case QR_OK:
        return "ok";
    case QR_ERR_INVALID_ARG:
        return "invalid argument";
    case QR_ERR_IO:
        return "i/o error";
    case QR_ERR_FORMAT:
        return "bad format";
    case QR_ERR_UNSUPPORTED:
        return "unsupported";
    case QR_ERR_NOMEM:
        return "out of memory";
    case QR_ERR_CONTEXT_FULL:
        return "context full";
    case QR_ERR_NUMERIC:
        return "numeric error";
    case QR_ERR_BUFFER_SMALL:
        return "buffer too small";
    case QR_ERR_CANCELLED:
        return "cancelled";
    case QR_ERR_TEMPLATE:
        return "template error";
    }
    return "unknown status";
}
