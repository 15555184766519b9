/* SPDX-License-Identifier: MIT */
/*
 * The log sink. Decides once, at log_setup(), whether stderr is connected to
 * journald ($JOURNAL_STREAM names stderr's device:inode) and sends either
 * structured journal entries or plain lines. "%m" is expanded from the
 * explicit error argument, not from errno, so callers may log after other
 * calls clobbered errno. Messages are escaped (log_escape()) at this one
 * edge: they may carry producer-supplied text.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"

static const char *log_ident = "spillway";
static atomic_int log_max_level = LOG_INFO;
static bool log_journal;
static pthread_mutex_t stderr_lock = PTHREAD_MUTEX_INITIALIZER;

static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_setup(const char *ident, enum log_target target) {
        if (ident)
                log_ident = ident;
        log_journal = target == LOG_TARGET_JOURNAL || (target == LOG_TARGET_AUTO && stderr_is_journal());
}

int log_target_from_string(const char *s) {
        if (streq(s, "auto"))
                return LOG_TARGET_AUTO;
        if (streq(s, "console"))
                return LOG_TARGET_CONSOLE;
        if (streq(s, "journal"))
                return LOG_TARGET_JOURNAL;
        return -EINVAL;
}

void log_set_max_level(int level) {
        atomic_store(&log_max_level, level);
}

int log_get_max_level(void) {
        return atomic_load(&log_max_level);
}

/* Copy format into out with every "%m" replaced by strerror(err), escaped
 * for printf. */
static void expand_m(char *out, size_t size, const char *format, int err) {
        size_t o = 0;
        char ebuf[128];
        const char *etext = NULL;

        for (const char *p = format; *p && o + 1 < size; p++) {
                if (p[0] == '%' && p[1] == '%') {
                        if (o + 2 < size) {
                                out[o++] = '%';
                                out[o++] = '%';
                        }
                        p++;
                        continue;
                }
                if (p[0] == '%' && p[1] == 'm') {
                        if (!etext)
                                etext = strerror_r(err, ebuf, sizeof ebuf);
                        for (const char *q = etext; *q && o + 2 < size; q++) {
                                if (*q == '%')
                                        out[o++] = '%';
                                out[o++] = *q;
                        }
                        p++;
                        continue;
                }
                out[o++] = *p;
        }
        out[o] = 0;
}

/* Length of the valid UTF-8 sequence at p (1-4), or 0. */
static size_t utf8_len(const unsigned char *p) {
        size_t n;
        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                n = 2;
        else if (p[0] >= 0xe0 && p[0] <= 0xef)
                n = 3;
        else if (p[0] >= 0xf0 && p[0] <= 0xf4)
                n = 4;
        else
                return 0;
        for (size_t i = 1; i < n; i++)
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
        /* overlong three-byte forms, UTF-16 surrogates, above U+10FFFF */
        if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) || (p[0] == 0xf0 && p[1] < 0x90) ||
            (p[0] == 0xf4 && p[1] >= 0x90))
                return 0;
        return n;
}

size_t log_escape(char *out, size_t size, const char *in) {
        const unsigned char *p = (const unsigned char *) in;
        size_t o = 0;

        if (size == 0)
                return 0;
        while (*p) {
                char esc[8];
                size_t n = utf8_len(p), k;
                if (n == 1 && *p >= 0x20 && *p != 0x7f) {
                        esc[0] = (char) *p;
                        k = 1;
                } else if (n > 1) {
                        if (o + n >= size)
                                break;
                        memcpy(out + o, p, n);
                        o += n;
                        p += n;
                        continue;
                } else {
                        switch (*p) {
                        case '\n': k = (size_t) snprintf(esc, sizeof esc, "\\n"); break;
                        case '\r': k = (size_t) snprintf(esc, sizeof esc, "\\r"); break;
                        case '\t': k = (size_t) snprintf(esc, sizeof esc, "\\t"); break;
                        case 0x1b: k = (size_t) snprintf(esc, sizeof esc, "\\e"); break;
                        default: k = (size_t) snprintf(esc, sizeof esc, "\\x%02x", *p); break;
                        }
                }
                if (o + k >= size)
                        break;
                memcpy(out + o, esc, k);
                o += k;
                p++;
        }
        out[o] = 0;
        return o;
}

static const char *level_name(int level) {
        static const char *names[] = { "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug" };
        return level >= 0 && level <= 7 ? names[level] : "log";
}

int log_fieldsv_internal(int level, int err, const char *file, int line, const char *func,
                         const log_field *fields, size_t n_fields, const char *format, va_list ap) {
        char fmt[1024], raw[4096], msg[4096 * 2];
        int saved = errno;

        if (err < 0)
                err = -err;
        if ((level & LOG_PRIMASK) > atomic_load(&log_max_level))
                goto out;

        expand_m(fmt, sizeof fmt, format, err);
        /* fmt is the caller's checked format with %m replaced by text */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        vsnprintf(raw, sizeof raw, fmt, ap);
#pragma GCC diagnostic pop
        log_escape(msg, sizeof msg, raw);

        if (log_journal) {
                size_t n = 0, cap = 8 + n_fields;
                struct iovec iov[cap];
                char hdr[6][256];
                _cleanup_free_ char *m = NULL;
                char *fbuf[n_fields ? n_fields : 1];

                if (asprintf(&m, "MESSAGE=%s", msg) < 0)
                        m = NULL;
                if (!m)
                        goto out;
                iov[n++] = (struct iovec) { m, strlen(m) };
                snprintf(hdr[0], sizeof hdr[0], "PRIORITY=%d", level & LOG_PRIMASK);
                snprintf(hdr[1], sizeof hdr[1], "SYSLOG_IDENTIFIER=%s", log_ident);
                snprintf(hdr[2], sizeof hdr[2], "CODE_FILE=%s", file);
                snprintf(hdr[3], sizeof hdr[3], "CODE_LINE=%d", line);
                snprintf(hdr[4], sizeof hdr[4], "CODE_FUNC=%s", func);
                for (int i = 0; i < 5; i++)
                        iov[n++] = (struct iovec) { hdr[i], strlen(hdr[i]) };
                if (err) {
                        snprintf(hdr[5], sizeof hdr[5], "ERRNO=%d", err);
                        iov[n++] = (struct iovec) { hdr[5], strlen(hdr[5]) };
                }
                for (size_t i = 0; i < n_fields; i++) {
                        fbuf[i] = NULL;
                        if (!fields[i].key || !fields[i].value)
                                continue;
                        if (asprintf(&fbuf[i], "%s=%s", fields[i].key, fields[i].value) < 0) {
                                fbuf[i] = NULL;
                                continue;
                        }
                        iov[n++] = (struct iovec) { fbuf[i], strlen(fbuf[i]) };
                }
                sd_journal_sendv(iov, (int) n);
                for (size_t i = 0; i < n_fields; i++)
                        free(fbuf[i]);
        } else {
                pthread_mutex_lock(&stderr_lock);
                if ((level & LOG_PRIMASK) <= LOG_WARNING || (level & LOG_PRIMASK) == LOG_DEBUG)
                        fprintf(stderr, "%s: %s: %s\n", log_ident, level_name(level & LOG_PRIMASK), msg);
                else
                        fprintf(stderr, "%s: %s\n", log_ident, msg);
                fflush(stderr);
                pthread_mutex_unlock(&stderr_lock);
        }
out:
        errno = saved;
        return err ? -err : 0;
}

int log_fields_internal(int level, int err, const char *file, int line, const char *func,
                        const log_field *fields, size_t n_fields, const char *format, ...) {
        va_list ap;
        int r;
        va_start(ap, format);
        r = log_fieldsv_internal(level, err, file, line, func, fields, n_fields, format, ap);
        va_end(ap);
        return r;
}
