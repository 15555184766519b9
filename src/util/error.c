/* SPDX-License-Identifier: MIT */
/*
 * Filling struct spw_error. The setters return their `r` argument so that
 * `return spw_error_set(e, -EINVAL, "...")` reads as one statement.
 */
#include <stdio.h>
#include <string.h>

#include "error.h"

int spw_error_setv(spw_error *e, int r, const char *fmt, va_list ap) {
        if (e)
                vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        return r;
}

int spw_error_set(spw_error *e, int r, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        spw_error_setv(e, r, fmt, ap);
        va_end(ap);
        return r;
}

void spw_error_prefix(spw_error *e, const char *fmt, ...) {
        char prefix[256], old[sizeof e->msg], joined[sizeof prefix + sizeof old + 2];
        va_list ap;

        if (!e)
                return;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, e->msg, sizeof old);
        snprintf(joined, sizeof joined, "%s: %s", prefix, old);
        memcpy(e->msg, joined, sizeof e->msg - 1);
        e->msg[sizeof e->msg - 1] = 0;
}
