/* SPDX-License-Identifier: MIT */
/*
 * A backend that does what the test tells it: succeed, be slow, fail
 * transiently (N times or always), fail permanently, fail init, be slow to
 * init, fail flushes, or hang inside a call. It records every signal it
 * commits (at flush, not at insert) as "ID SCENARIO BANS" lines in a file, so a
 * test can check exactly what was delivered and when it became durable.
 * Bans are kept in memory so the admin operations can be exercised.
 * Built twice: against the current header (mock.so, with read_changes over
 * an in-memory change log) and against the frozen 2.0 header (mock20.so,
 * without it). Its init fails unless global_init ran first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <spillway/backend.h>

typedef struct pending {
        unsigned long long id;
        char scenario[128];
        char target[64];
        spw_usec_t until;
        char action[32];
} pending;

typedef struct mock {
        spw_ctx *ctx;
        const struct spw_host *host;
        char mode[32];
        long fail_count;          /* transient failures before success; <0: forever */
        long failures;
        spw_usec_t delay, hang, retry_after, commit_delay;
        char hang_on[128];
        char record[1024];
        pending *batch;
        size_t n_batch, cap_batch;
        pending *bans;
        size_t n_bans, cap_bans;
        /* change log: kind (1 add, 2 delete) and target; cursor = index + 1 */
        struct change { int kind; pending p; } *changes;
        size_t n_changes, cap_changes;
} mock;

static int global_inits; /* global_init calls (the daemon: once per file) */

static const spw_config_key mock_keys[] = {
        { "mode", SPW_CONFIG_ENUM, "ok", "ok|transient|permanent|init_fail|flush_transient|flush_permanent", "what to do" },
        { "fail_count", SPW_CONFIG_INT, "0", NULL, "transient failures before succeeding (0: always fail)" },
        { "delay", SPW_CONFIG_DURATION, "0", NULL, "sleep in every insert" },
        { "commit_delay", SPW_CONFIG_DURATION, "0", NULL, "sleep in every flush of a batch (a commit that costs time)" },
        { "hang_on", SPW_CONFIG_STRING, NULL, NULL, "scenario that makes insert sleep `hang`" },
        { "hang", SPW_CONFIG_DURATION, "0", NULL, "how long to hang" },
        { "retry_after", SPW_CONFIG_DURATION, "0", NULL, "retry_after() hint given with transient failures" },
        { "record", SPW_CONFIG_STRING, NULL, NULL, "file to append committed signals to" },
        { "secret", SPW_CONFIG_STRING, NULL, NULL, "recorded in the file at init (credential tests)", SPW_CONFIG_SECRET },
        { "password", SPW_CONFIG_STRING, NULL, NULL, "never used: a secret the daemon must never log", SPW_CONFIG_SECRET },
        { "group_wait", SPW_CONFIG_DURATION, NULL, NULL, "CrowdSec batching key (the daemon reads it as flush_interval and flush_delay)" },
        { "init_delay", SPW_CONFIG_DURATION, "0", NULL, "sleep this long inside init (slow start, hung init)" },
        { NULL },
};

static spw_usec_t parse_dur(const char *s) {
        char *end;
        double v;
        if (!s || !*s)
                return 0;
        v = strtod(s, &end);
        if (!strcmp(end, "ms"))
                return (spw_usec_t) (v * 1000);
        if (!strcmp(end, "s"))
                return (spw_usec_t) (v * 1000000);
        if (!strcmp(end, "m"))
                return (spw_usec_t) (v * 60000000);
        return (spw_usec_t) v;
}

static void sleep_usec(spw_usec_t u) {
        struct timespec ts = { (time_t) (u / 1000000), (long) (u % 1000000) * 1000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void append_line(mock *m, const char *line) {
        FILE *f;
        if (!m->record[0])
                return;
        f = fopen(m->record, "a");
        if (!f)
                return;
        fputs(line, f);
        fclose(f);
}

static int mock_init(spw_ctx *ctx, const struct spw_host *host, const spw_kv *config, size_t n, void **selfp) {
        mock *m = calloc(1, sizeof *m);
        const char *v;

        if (!m)
                return -ENOMEM;
        if (global_inits != 1) {
                host->set_error(ctx, "mock: global_init ran %d times before init, expected once", global_inits);
                free(m);
                return -EPROTO;
        }
        m->ctx = ctx;
        m->host = host;
        v = host->config_get(ctx, "mode");
        snprintf(m->mode, sizeof m->mode, "%s", v ? v : "ok");
        v = host->config_get(ctx, "fail_count");
        m->fail_count = v ? strtol(v, NULL, 10) : 0;
        if (m->fail_count == 0)
                m->fail_count = -1;
        m->delay = parse_dur(host->config_get(ctx, "delay"));
        m->commit_delay = parse_dur(host->config_get(ctx, "commit_delay"));
        m->hang = parse_dur(host->config_get(ctx, "hang"));
        m->retry_after = parse_dur(host->config_get(ctx, "retry_after"));
        v = host->config_get(ctx, "hang_on");
        snprintf(m->hang_on, sizeof m->hang_on, "%s", v ? v : "");
        v = host->config_get(ctx, "record");
        snprintf(m->record, sizeof m->record, "%s", v ? v : "");
        sleep_usec(parse_dur(host->config_get(ctx, "init_delay")));
        if (!strcmp(m->mode, "init_fail")) {
                host->set_error(ctx, "mock: told to fail init");
                free(m);
                return -EIO;
        }
        v = host->config_get(ctx, "secret");
        if (v) {
                char line[512];
                snprintf(line, sizeof line, "secret %s\n", v);
                append_line(m, line);
        }
        *selfp = m;
        return 0;
}

static bool fail_now(mock *m) {
        if (m->fail_count < 0)
                return true;
        return m->failures < m->fail_count;
}

static int mock_insert(void *self, const spw_signal *sig) {
        mock *m = self;
        pending *p;

        if (m->hang_on[0] && sig->scenario && !strcmp(sig->scenario, m->hang_on))
                sleep_usec(m->hang);
        if (m->delay)
                sleep_usec(m->delay);
        if (!strcmp(m->mode, "permanent")) {
                m->host->set_error(m->ctx, "mock: rejected signal %llu", (unsigned long long) sig->id);
                return -EINVAL;
        }
        if (!strcmp(m->mode, "transient") && fail_now(m)) {
                m->failures++;
                if (m->retry_after)
                        m->host->retry_after(m->ctx, m->retry_after);
                m->host->set_error(m->ctx, "mock: transient failure %ld", m->failures);
                return -EAGAIN;
        }
        if (m->n_batch == m->cap_batch) {
                size_t ncap = m->cap_batch ? m->cap_batch * 2 : 64;
                pending *np = realloc(m->batch, ncap * sizeof *np);
                if (!np)
                        return -EAGAIN;
                m->batch = np;
                m->cap_batch = ncap;
        }
        p = &m->batch[m->n_batch++];
        memset(p, 0, sizeof *p);
        p->id = (unsigned long long) sig->id;
        snprintf(p->scenario, sizeof p->scenario, "%s", sig->scenario ? sig->scenario : "");
        if (sig->n_bans) {
                snprintf(p->target, sizeof p->target, "%s", spw_signal_ban(sig, 0)->ip_text);
                snprintf(p->action, sizeof p->action, "%s", spw_signal_ban(sig, 0)->measure_type);
                p->until = spw_signal_ban(sig, 0)->until;
        }
        return 0;
}

static int log_change(mock *m, int kind, const pending *p) {
        if (m->n_changes == m->cap_changes) {
                size_t ncap = m->cap_changes ? m->cap_changes * 2 : 64;
                struct change *nc = realloc(m->changes, ncap * sizeof *nc);
                if (!nc)
                        return -ENOMEM;
                m->changes = nc;
                m->cap_changes = ncap;
        }
        m->changes[m->n_changes++] = (struct change) { kind, *p };
        return 0;
}

static int mock_flush(void *self) {
        mock *m = self;
        if (m->n_batch == 0)
                return 0;
        if (m->commit_delay)
                sleep_usec(m->commit_delay);
        if (!strcmp(m->mode, "flush_transient") && fail_now(m)) {
                m->failures++;
                m->n_batch = 0; /* all or nothing: the batch is undone */
                if (m->retry_after)
                        m->host->retry_after(m->ctx, m->retry_after);
                m->host->set_error(m->ctx, "mock: flush failed (transient %ld)", m->failures);
                return -EAGAIN;
        }
        if (!strcmp(m->mode, "flush_permanent")) {
                m->n_batch = 0;
                m->host->set_error(m->ctx, "mock: flush failed (permanent)");
                return -EBADMSG;
        }
        for (size_t i = 0; i < m->n_batch; i++) {
                char line[512];
                pending *p = &m->batch[i];
                snprintf(line, sizeof line, "%llu %s %s\n", p->id, p->scenario, p->target[0] ? p->target : "-");
                append_line(m, line);
                if (p->target[0]) {
                        if (m->n_bans == m->cap_bans) {
                                size_t ncap = m->cap_bans ? m->cap_bans * 2 : 64;
                                pending *nb = realloc(m->bans, ncap * sizeof *nb);
                                if (!nb)
                                        return -ENOMEM;
                                m->bans = nb;
                                m->cap_bans = ncap;
                        }
                        m->bans[m->n_bans++] = *p;
                        if (log_change(m, 1, p) < 0)
                                return -ENOMEM;
                }
        }
        m->n_batch = 0;
        return 0;
}

static int mock_read_at(void *self, spw_usec_t at, spw_row_fn fn, void *userdata) {
        mock *m = self;
        for (size_t i = m->n_bans; i-- > 0;) {
                pending *p = &m->bans[i];
                if (p->until < at)
                        continue;
                spw_ban_row row = { .size = sizeof row, .source = "local", .iptext = p->target, .reason = p->scenario,
                                    .bancount = 1, .action = p->action, .until = p->until };
                int r = fn(&row, userdata);
                if (r)
                        return r;
        }
        return 0;
}

static int mock_delete(void *self, const char *target, uint64_t *count) {
        mock *m = self;
        size_t k = 0;
        *count = 0;
        for (size_t i = 0; i < m->n_bans; i++)
                if (!strcmp(m->bans[i].target, target)) {
                        (*count)++;
                        if (log_change(m, 2, &m->bans[i]) < 0)
                                return -ENOMEM;
                } else
                        m->bans[k++] = m->bans[i];
        m->n_bans = k;
        return 0;
}

static int mock_delete_all(void *self, uint64_t *count) {
        mock *m = self;
        *count = m->n_bans;
        for (size_t i = 0; i < m->n_bans; i++)
                if (log_change(m, 2, &m->bans[i]) < 0)
                        return -ENOMEM;
        m->n_bans = 0;
        return 0;
}

static void mock_shutdown(void *self) {
        mock *m = self;
        append_line(m, "shutdown\n");
        free(m->batch);
        free(m->bans);
        free(m->changes);
        free(m);
}

#if SPW_BACKEND_ABI_MINOR >= 1
static int mock_read_changes(void *self, uint64_t cursor, spw_change_fn fn, void *userdata, uint64_t *next_cursor) {
        mock *m = self;
        int r;
        *next_cursor = cursor;
        if (cursor == 0 || cursor > m->n_changes) {
                /* from nothing: the active bans */
                for (size_t i = 0; i < m->n_bans; i++) {
                        pending *p = &m->bans[i];
                        spw_ban_row row = { .size = sizeof row, .source = "local", .iptext = p->target, .reason = p->scenario,
                                            .bancount = 1, .action = p->action, .until = p->until };
                        spw_ban_change c = { .size = sizeof c, .seq = m->n_changes, .kind = SPW_CHANGE_ADD,
                                             .flags = SPW_CHANGE_RESYNC, .row = &row };
                        if ((r = fn(&c, userdata)))
                                return r;
                }
        } else
                for (size_t i = cursor; i < m->n_changes; i++) {
                        pending *p = &m->changes[i].p;
                        spw_ban_row row = { .size = sizeof row, .source = "local", .iptext = p->target, .reason = p->scenario,
                                            .bancount = 1, .action = p->action, .until = p->until };
                        spw_ban_change c = { .size = sizeof c, .seq = i + 1, .kind = m->changes[i].kind, .row = &row };
                        if ((r = fn(&c, userdata))) {
                                *next_cursor = i; /* the last change fn took */
                                return r;
                        }
                }
        *next_cursor = m->n_changes ? m->n_changes : 0;
        return 0;
}
#endif

static int mock_global_init(const struct spw_host *host) {
        global_inits++;
        return 0;
}

static const struct spw_backend mock_desc = {
        SPW_BACKEND_HEADER,
        .name = "mock",
        .version = "test",
        .description = "test double",
        .config_keys = mock_keys,
        .init = mock_init,
        .insert = mock_insert,
        .flush = mock_flush,
        .read_at = mock_read_at,
        .delete_target = mock_delete,
        .delete_all = mock_delete_all,
        .shutdown = mock_shutdown,
        .global_init = mock_global_init,
#if SPW_BACKEND_ABI_MINOR >= 1
        .read_changes = mock_read_changes,
#endif
};

SPW_BACKEND_EXPORT(mock_desc)
