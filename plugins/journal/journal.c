/* SPDX-License-Identifier: MIT */
/*
 * The journal backend: CrowdSec's dummy plugin made useful. Each signal
 * becomes one structured journal entry (sd_journal_sendv), so that
 *     journalctl SPILLWAY_BACKEND=journal SPILLWAY_SCENARIO=crowdsecurity/ssh-bf
 * finds it. Fields are built from the signal only; the unknown fields a
 * producer sent are not logged (they are untrusted and unbounded).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <spillway/backend.h>

#include "journal-fields.h"

typedef struct journal_backend {
        spw_ctx *ctx;
        const struct spw_host *host;
        int priority;
        char identifier[64];
        unsigned long long sent, failed;
} journal_backend;

static const spw_config_key journal_keys[] = {
        { "priority", SPW_CONFIG_ENUM, "notice", "info|notice|warning", "syslog priority of each entry" },
        { "identifier", SPW_CONFIG_STRING, "spillway-signal", NULL, "SYSLOG_IDENTIFIER of each entry" },
        { NULL },
};

static int journal_init(spw_ctx *ctx, const struct spw_host *host, const spw_kv *config, size_t n, void **selfp) {
        journal_backend *b = calloc(1, sizeof *b);
        const char *v;

        if (!b) {
                host->set_error(ctx, "out of memory");
                return -ENOMEM;
        }
        b->ctx = ctx;
        b->host = host;
        b->priority = LOG_NOTICE;
        v = host->config_get(ctx, "priority");
        if (v) {
                if (!strcmp(v, "info"))
                        b->priority = LOG_INFO;
                else if (!strcmp(v, "warning"))
                        b->priority = LOG_WARNING;
                else if (strcmp(v, "notice") != 0) {
                        host->set_error(ctx, "priority: expected info, notice or warning, got '%s'", v);
                        free(b);
                        return -EINVAL;
                }
        }
        v = host->config_get(ctx, "identifier");
        snprintf(b->identifier, sizeof b->identifier, "%s", v && *v ? v : "spillway-signal");
        *selfp = b;
        return 0;
}

static int journal_insert(void *self, const spw_signal *sig) {
        journal_backend *b = self;
        journal_entry e;
        struct iovec iov[JOURNAL_MAX_FIELDS];
        int n, r;

        n = journal_fields_build(&e, sig, b->host->instance_name(b->ctx), b->identifier, b->priority);
        for (int i = 0; i < n; i++)
                iov[i] = (struct iovec) { e.field[i], strlen(e.field[i]) };
        r = sd_journal_sendv(iov, n);
        if (r < 0) {
                b->failed++;
                b->host->set_error(b->ctx, "sending to the journal failed: %s", strerror(-r));
                /* journald restarting or gone: worth a retry */
                return -EAGAIN;
        }
        b->sent++;
        return 0;
}

static int journal_flush(void *self) {
        journal_backend *b = self;
        char v[32];
        snprintf(v, sizeof v, "%llu", b->sent);
        b->host->set_status(b->ctx, "entries", v);
        return 0;
}

static void journal_shutdown(void *self) {
        free(self);
}

static const struct spw_backend journal_backend_desc = {
        SPW_BACKEND_HEADER,
        .name = "journal",
        .version = "1.0",
        .description = "one structured journal entry per signal",
        .config_keys = journal_keys,
        .init = journal_init,
        .insert = journal_insert,
        .flush = journal_flush,
        .shutdown = journal_shutdown,
};

SPW_BACKEND_EXPORT(journal_backend_desc)
