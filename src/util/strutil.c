/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "strbuf.h"
#include "strutil.h"

unsigned str_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        unsigned row[64];

        if (la >= ELEMENTSOF(row) || lb >= ELEMENTSOF(row))
                return 255;
        for (size_t j = 0; j <= lb; j++)
                row[j] = (unsigned) j;
        for (size_t i = 1; i <= la; i++) {
                unsigned diag = row[0];
                row[0] = (unsigned) i;
                for (size_t j = 1; j <= lb; j++) {
                        unsigned up = row[j];
                        unsigned cost = tolower((unsigned char) a[i - 1]) == tolower((unsigned char) b[j - 1]) ? 0 : 1;
                        unsigned v = MIN(row[j] + 1, row[j - 1] + 1);
                        row[j] = MIN(v, diag + cost);
                        diag = up;
                }
        }
        return MIN(row[lb], 255u);
}

const char *str_closest(const char *word, const char *const *candidates, size_t n) {
        const char *best = NULL;
        unsigned best_d = UINT_MAX;
        size_t wl = strlen(word);
        unsigned limit = wl <= 3 ? 1 : wl <= 6 ? 2 : 3;

        for (size_t i = 0; i < n; i++) {
                if (!candidates[i])
                        continue;
                unsigned d = str_distance(word, candidates[i]);
                if (d < best_d) {
                        best_d = d;
                        best = candidates[i];
                }
        }
        return best_d <= limit ? best : NULL;
}

static int read_credential(const char *name, strbuf *out, spw_error *err) {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        char path[4096];
        _cleanup_fclose_ FILE *f = NULL;
        char buf[4096];
        size_t n, start = out->len;

        if (!dir)
                return spw_error_set(err, -ENOENT, "credential '%s' requested but $CREDENTIALS_DIRECTORY is not set "
                                     "(use LoadCredential= in the unit)", name);
        if (!*name || strchr(name, '/') || streq(name, ".") || streq(name, ".."))
                return spw_error_set(err, -EINVAL, "invalid credential name '%s'", name);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        f = fopen(path, "re");
        if (!f) {
                int r = negative_errno();
                return spw_error_set(err, r, "credential '%s': cannot open %s: %s", name, path, strerror(-r));
        }
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                strbuf_append(out, buf, n);
        while (out->len > start && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r'))
                out->data[--out->len] = 0;
        return 0;
}

int str_expand_vars(const char *s, char **ret, spw_error *err) {
        return str_expand_vars_full(s, 0, NULL, ret, err);
}

int str_expand_vars_full(const char *s, unsigned flags, unsigned *n_skipped, char **ret, spw_error *err) {
        strbuf b = STRBUF_INIT;
        int r;

        for (const char *p = s; *p;) {
                if (p[0] == '$' && p[1] == '$') {
                        strbuf_putc(&b, '$');
                        p += 2;
                        continue;
                }
                if (p[0] == '$' && p[1] == '{') {
                        const char *end = strchr(p + 2, '}');
                        char name[256];
                        if (!end || (size_t) (end - p - 2) >= sizeof name || end == p + 2) {
                                strbuf_deinit(&b);
                                return spw_error_set(err, -EINVAL, "unterminated or empty ${...} in '%s'", s);
                        }
                        memcpy(name, p + 2, (size_t) (end - p - 2));
                        name[end - p - 2] = 0;
                        const char *cred = startswith(name, "CREDENTIAL:");
                        if (cred && (flags & STR_EXPAND_CREDENTIAL_PLACEHOLDERS) && !getenv("CREDENTIALS_DIRECTORY")) {
                                strbuf_printf(&b, "<credential %s>", cred);
                                if (n_skipped)
                                        (*n_skipped)++;
                        } else if (cred) {
                                r = read_credential(cred, &b, err);
                                if (r < 0) {
                                        strbuf_deinit(&b);
                                        return r;
                                }
                        } else {
                                const char *v = getenv(name);
                                if (!v) {
                                        strbuf_deinit(&b);
                                        return spw_error_set(err, -ENOENT, "environment variable '%s' is not set", name);
                                }
                                strbuf_puts(&b, v);
                        }
                        p = end + 1;
                        continue;
                }
                strbuf_putc(&b, *p++);
        }
        if (b.oom) {
                strbuf_deinit(&b);
                return -ENOMEM;
        }
        *ret = strbuf_steal(&b);
        return *ret ? 0 : -ENOMEM;
}

int read_full_file(const char *path, size_t max, char **ret, size_t *ret_len, spw_error *err) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, cap = 0;

        struct stat st;

        f = fopen(path, "re");
        if (!f) {
                int r = negative_errno();
                return spw_error_set(err, r, "%s: cannot open: %s", path, strerror(-r));
        }
        /* refuse a large regular file before reading a byte of it; other
         * kinds (a pipe, /dev/stdin) are bounded by the loop below */
        if (fstat(fileno(f), &st) < 0) {
                int r = negative_errno();
                return spw_error_set(err, r, "%s: cannot stat: %s", path, strerror(-r));
        }
        if (S_ISDIR(st.st_mode))
                return spw_error_set(err, -EISDIR, "%s: is a directory, not a file", path);
        if (S_ISREG(st.st_mode) && (uintmax_t) st.st_size > max)
                return spw_error_set(err, -EFBIG, "%s: file is %jd bytes, larger than the limit of %zu bytes; not read",
                                     path, (intmax_t) st.st_size, max);
        for (;;) {
                if (len + 4096 + 1 > cap) {
                        cap = cap ? cap * 2 : 8192;
                        char *p = realloc(buf, cap);
                        if (!p)
                                return spw_error_set(err, -ENOMEM, "%s: out of memory", path);
                        buf = p;
                }
                size_t n = fread(buf + len, 1, cap - len - 1, f);
                len += n;
                if (len > max)
                        return spw_error_set(err, -EFBIG, "%s: file larger than %zu bytes", path, max);
                if (n == 0) {
                        if (ferror(f))
                                return spw_error_set(err, -EIO, "%s: read error", path);
                        break;
                }
        }
        buf[len] = 0;
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

bool str_is_identifier(const char *s) {
        if (!s || !*s)
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char) *p) && *p != '_' && *p != '-' && *p != '.')
                        return false;
        return true;
}

int str_to_u64(const char *s, unsigned long long min, unsigned long long max, unsigned long long *ret) {
        char *end;
        unsigned long long v;

        if (!s || !isdigit((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || *end)
                return -EINVAL;
        if (v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int str_to_bool(const char *s, bool *ret) {
        static const char *const yes[] = { "true", "True", "TRUE", "yes", "1", "on" };
        static const char *const no[] = { "false", "False", "FALSE", "no", "0", "off" };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (streq(s, yes[i])) {
                        *ret = true;
                        return 0;
                }
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (streq(s, no[i])) {
                        *ret = false;
                        return 0;
                }
        return -EINVAL;
}
