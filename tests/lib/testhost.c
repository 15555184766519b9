/* SPDX-License-Identifier: MIT */
/*
 * Test double of the daemon's host services. Everything a plugin may call
 * is implemented for real (logging, errors, config lookup, timers); only
 * the clock is the test's to move.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testhost.h"

#define MAX_TIMERS 16
#define MAX_STATUS 32

struct spw_ctx {
        testhost *t;
};

typedef struct timer {
        spw_usec_t interval, next;
        spw_timer_fn fn;
        void *userdata;
} timer;

struct testhost {
        struct spw_host host;
        struct spw_ctx ctx;
        char *name;
        char *state_dir;
        spw_kv *config;
        size_t n_config;
        spw_usec_t now;
        timer timers[MAX_TIMERS];
        size_t n_timers;
        char last_error[1024];
        char *log;
        size_t log_len;
        spw_usec_t retry_after;
        spw_kv status[MAX_STATUS];
        size_t n_status;
};

static void append_log(testhost *t, int prio, const char *msg) {
        size_t l = strlen(msg) + 8;
        char *p = realloc(t->log, t->log_len + l + 1);
        if (!p)
                abort();
        t->log = p;
        t->log_len += (size_t) snprintf(t->log + t->log_len, l + 1, "%d %s\n", prio, msg);
}

static void h_log(spw_ctx *ctx, int priority, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void h_log(spw_ctx *ctx, int priority, const char *format, ...) {
        char msg[2048];
        va_list ap;
        va_start(ap, format);
        vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);
        if (!ctx) { /* global_init */
                fprintf(stderr, "[global_init] %d %s\n", priority, msg);
                return;
        }
        append_log(ctx->t, priority, msg);
        if (getenv("TESTHOST_VERBOSE"))
                fprintf(stderr, "[%s] %d %s\n", ctx->t->name, priority, msg);
}

static void h_log_fields(spw_ctx *ctx, int priority, const spw_kv *fields, size_t n, const char *format, ...) __attribute__((format(printf, 5, 6)));
static void h_log_fields(spw_ctx *ctx, int priority, const spw_kv *fields, size_t n, const char *format, ...) {
        char msg[2048];
        size_t o;
        va_list ap;
        va_start(ap, format);
        vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);
        o = strlen(msg);
        for (size_t i = 0; i < n && o < sizeof msg; i++)
                o += (size_t) snprintf(msg + o, sizeof msg - o, " %s=%s", fields[i].key, fields[i].value);
        append_log(ctx->t, priority, msg);
}

static void h_set_error(spw_ctx *ctx, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void h_set_error(spw_ctx *ctx, const char *format, ...) {
        va_list ap;
        va_start(ap, format);
        vsnprintf(ctx->t->last_error, sizeof ctx->t->last_error, format, ap);
        va_end(ap);
}

static spw_usec_t h_now(spw_ctx *ctx) {
        return ctx->t->now;
}

static const char *h_config_get(spw_ctx *ctx, const char *key) {
        for (size_t i = 0; i < ctx->t->n_config; i++)
                if (strcmp(ctx->t->config[i].key, key) == 0)
                        return ctx->t->config[i].value;
        return NULL;
}

static const char *h_instance_name(spw_ctx *ctx) {
        return ctx->t->name;
}

static const char *h_state_directory(spw_ctx *ctx) {
        return ctx->t->state_dir;
}

static int h_schedule(spw_ctx *ctx, spw_usec_t interval, spw_timer_fn fn, void *userdata) {
        testhost *t = ctx->t;
        if (t->n_timers >= MAX_TIMERS || interval <= 0 || !fn)
                return -22;
        t->timers[t->n_timers++] = (timer) { interval, t->now + interval, fn, userdata };
        return 0;
}

static void h_retry_after(spw_ctx *ctx, spw_usec_t delay) {
        ctx->t->retry_after = delay;
}

static void h_set_status(spw_ctx *ctx, const char *key, const char *value) {
        testhost *t = ctx->t;
        for (size_t i = 0; i < t->n_status; i++)
                if (strcmp(t->status[i].key, key) == 0) {
                        free((char *) t->status[i].value);
                        t->status[i].value = value ? strdup(value) : NULL;
                        return;
                }
        if (!value || t->n_status >= MAX_STATUS)
                return;
        t->status[t->n_status++] = (spw_kv) { strdup(key), strdup(value) };
}

static int kv_cmp(const void *a, const void *b) {
        return strcmp(((const spw_kv *) a)->key, ((const spw_kv *) b)->key);
}

testhost *testhost_new(const char *instance_name, const spw_kv *config, size_t n_config) {
        testhost *t = calloc(1, sizeof *t);
        if (!t)
                abort();
        t->host = (struct spw_host) {
                .size = sizeof(struct spw_host),
                .abi_major = SPW_BACKEND_ABI_MAJOR,
                .abi_minor = SPW_BACKEND_ABI_MINOR,
                .log = h_log,
                .log_fields = h_log_fields,
                .set_error = h_set_error,
                .now = h_now,
                .config_get = h_config_get,
                .instance_name = h_instance_name,
                .state_directory = h_state_directory,
                .schedule = h_schedule,
                .retry_after = h_retry_after,
                .set_status = h_set_status,
        };
        t->ctx.t = t;
        t->name = strdup(instance_name);
        t->state_dir = strdup("/tmp");
        t->now = (spw_usec_t) 1700000000 * 1000000;
        t->config = calloc(n_config ? n_config : 1, sizeof *t->config);
        for (size_t i = 0; i < n_config; i++)
                t->config[i] = (spw_kv) { strdup(config[i].key), strdup(config[i].value) };
        t->n_config = n_config;
        qsort(t->config, n_config, sizeof *t->config, kv_cmp);
        return t;
}

void testhost_free(testhost *t) {
        if (!t)
                return;
        for (size_t i = 0; i < t->n_config; i++) {
                free((char *) t->config[i].key);
                free((char *) t->config[i].value);
        }
        free(t->config);
        for (size_t i = 0; i < t->n_status; i++) {
                free((char *) t->status[i].key);
                free((char *) t->status[i].value);
        }
        free(t->name);
        free(t->state_dir);
        free(t->log);
        free(t);
}

const struct spw_host *testhost_host(testhost *t) { return &t->host; }
spw_ctx *testhost_ctx(testhost *t) { return &t->ctx; }
const spw_kv *testhost_config(testhost *t, size_t *n) { *n = t->n_config; return t->config; }
void testhost_set_time(testhost *t, spw_usec_t now) { t->now = now; }
spw_usec_t testhost_time(testhost *t) { return t->now; }
size_t testhost_n_timers(testhost *t) { return t->n_timers; }
const char *testhost_last_error(testhost *t) { return t->last_error; }
const char *testhost_log(testhost *t) { return t->log ? t->log : ""; }

void testhost_set_state_directory(testhost *t, const char *dir) {
        free(t->state_dir);
        t->state_dir = strdup(dir);
}

void testhost_clear_log(testhost *t) {
        free(t->log);
        t->log = NULL;
        t->log_len = 0;
}

int testhost_run_timers(testhost *t) {
        int ran = 0;
        for (size_t i = 0; i < t->n_timers; i++) {
                timer *tm = &t->timers[i];
                if (tm->next <= t->now) {
                        tm->fn(tm->userdata, t->now);
                        tm->next = t->now + tm->interval;
                        ran++;
                }
        }
        return ran;
}

int testhost_init(testhost *t, const struct spw_backend *b, void **selfp) {
        /* like the daemon: global_init once per plugin (descriptor), before
         * its first init; global_fini is left to process exit */
        static const struct spw_backend *done[16];
        static size_t n_done;
        bool seen = false;
        for (size_t i = 0; i < n_done; i++)
                seen = seen || done[i] == b;
        if (!seen && b->global_init) {
                int r = b->global_init(&t->host);
                if (r < 0)
                        return r;
        }
        if (!seen && n_done < 16)
                done[n_done++] = b;
        return b->init(&t->ctx, &t->host, t->config, t->n_config, selfp);
}

spw_usec_t testhost_retry_after(testhost *t) {
        spw_usec_t d = t->retry_after;
        t->retry_after = 0;
        return d;
}

const char *testhost_status(testhost *t, const char *key) {
        for (size_t i = 0; i < t->n_status; i++)
                if (strcmp(t->status[i].key, key) == 0)
                        return t->status[i].value;
        return NULL;
}
