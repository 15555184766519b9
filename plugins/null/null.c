/* SPDX-License-Identifier: MIT */
/*
 * The null backend: accepts every signal and counts it. For tests,
 * benchmarks (the cost of the daemon without a real backend) and as the
 * smallest complete example of a plugin.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <spillway/backend.h>

typedef struct null_backend {
        spw_ctx *ctx;
        const struct spw_host *host;
        uint64_t inserted;
        uint64_t flushes;
} null_backend;

static const spw_config_key null_keys[] = {
        { NULL },
};

static int null_init(spw_ctx *ctx, const struct spw_host *host, const spw_kv *config, size_t n, void **selfp) {
        null_backend *b = calloc(1, sizeof *b);
        if (!b) {
                host->set_error(ctx, "out of memory");
                return -12;
        }
        b->ctx = ctx;
        b->host = host;
        *selfp = b;
        return 0;
}

static int null_insert(void *self, const spw_signal *sig) {
        null_backend *b = self;
        b->inserted++;
        return 0;
}

static int null_flush(void *self) {
        null_backend *b = self;
        char n[32];
        b->flushes++;
        snprintf(n, sizeof n, "%" PRIu64, b->inserted);
        b->host->set_status(b->ctx, "inserted", n);
        return 0;
}

static void null_shutdown(void *self) {
        null_backend *b = self;
        b->host->log(b->ctx, 6, "accepted %" PRIu64 " signals in %" PRIu64 " flushes", b->inserted, b->flushes);
        free(b);
}

static const struct spw_backend null_backend_desc = {
        SPW_BACKEND_HEADER,
        .name = "null",
        .version = "1.0",
        .description = "accepts and counts signals",
        .config_keys = null_keys,
        .init = null_init,
        .insert = null_insert,
        .flush = null_flush,
        .shutdown = null_shutdown,
};

SPW_BACKEND_EXPORT(null_backend_desc)
