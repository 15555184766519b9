/* SPDX-License-Identifier: MIT */
/*
 * Test fixtures of the ban-database plugins (see test-fixtures.h): the same
 * signals and the same row copies for sqlite and mysql, so that both
 * backends' tests and benchmarks measure and check the same thing.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>

#include "ipaddr.h"
#include "test-fixtures.h"
#include "tests.h"

void advance(fixture *f, spw_usec_t d) {
        testhost_set_time(f->host, testhost_time(f->host) + d);
}

const spw_signal *mk_signal(sigbuf *s, const char *target, const char *reason, spw_usec_t until) {
        /* the mysql tests build signals from several "host" threads at once */
        static atomic_uint_fast64_t next_id = 1;
        ip_range r = { 0 };

        memset(s, 0, sizeof *s);
        s->ev = (spw_event) { .time = T0 - 10 * SEC, .source_ip = target, .serialized = "{\"log\":\"x\"}" };
        s->sig = (spw_signal) {
                .size = sizeof(spw_signal), .ban_size = sizeof(spw_ban), .event_size = sizeof(spw_event),
                .id = atomic_fetch_add(&next_id, 1),
                .scenario = reason,
                .bucket_id = "sunny-flower",
                .alert_message = "test alert",
                .map_key = "key",
                .events_count = 6,
                .start_at = T0 - 20 * SEC,
                .stop_at = T0 - 1 * SEC,
                .source_ip = target,
                .source_country = "FR",
                .source_as_number = "64500",
                .source_as_org = "Example AS",
                .source_latitude = 48.85,
                .source_longitude = 2.35,
                .capacity = 5,
                .leak_speed_ns = 10 * INT64_C(1000000000),
                .events = &s->ev,
                .n_events = 1,
        };
        if (target) {
                CHECK_OK(ip_parse_cidr(target, false, &r));
                s->ban = (spw_ban) {
                        .measure_source = "local",
                        .measure_type = "ban",
                        .until = until,
                        .scope = strchr(target, '/') ? SPW_SCOPE_RANGE : SPW_SCOPE_IP,
                        .target_cn = "FR",
                        .target_as = 64500,
                        .target_as_name = "Example AS",
                        .ip_text = target,
                        .reason = reason,
                        .scenario = reason,
                };
                memcpy(s->ban.start_ip, r.start, 16);
                memcpy(s->ban.end_ip, r.end, 16);
                s->sig.bans = &s->ban;
                s->sig.n_bans = 1;
        }
        return &s->sig;
}

int insert(fixture *f, const char *target, const char *reason, spw_usec_t until) {
        sigbuf s;
        return f->plugin->insert(f->self, mk_signal(&s, target, reason, until));
}

void copy(char *dst, size_t size, const char *s) {
        snprintf(dst, size, "%s", s ? s : "(null)");
}

int collect(const spw_ban_row *br, void *userdata) {
        rows *rs = userdata;
        read_row *r;

        CHECK(rs->n < 64);
        CHECK_EQ(br->size, sizeof(spw_ban_row));
        r = &rs->r[rs->n++];
        copy(r->source, sizeof r->source, br->source);
        copy(r->iptext, sizeof r->iptext, br->iptext);
        copy(r->reason, sizeof r->reason, br->reason);
        copy(r->action, sizeof r->action, br->action);
        copy(r->cn, sizeof r->cn, br->cn);
        copy(r->as, sizeof r->as, br->as);
        copy(r->scope, sizeof r->scope, SPW_HAS_MEMBER(br, spw_ban_row, value) ? br->scope : NULL);
        copy(r->value, sizeof r->value, SPW_HAS_MEMBER(br, spw_ban_row, value) ? br->value : NULL);
        r->bancount = br->bancount;
        r->as_number = br->as_number;
        r->events_count = br->events_count;
        r->until = br->until;
        return 0;
}

rows read_at(fixture *f, spw_usec_t at) {
        rows rs = { .n = 0 };
        CHECK_OK(f->plugin->read_at(f->self, at, collect, &rs));
        return rs;
}

/* ------------------------------------------------------------ benchmarks */

static const char serialized[] =
        "{\"Line\":{\"Raw\":\"Nov 14 22:13:20 host sshd[4242]: Failed password for invalid user admin "
        "from 10.0.0.1 port 52344 ssh2\",\"Src\":\"/var/log/auth.log\",\"Labels\":{\"type\":\"syslog\"}},"
        "\"Parsed\":{\"program\":\"sshd\",\"source_ip\":\"10.0.0.1\",\"user\":\"admin\"},"
        "\"Meta\":{\"log_type\":\"ssh_failed-auth\",\"service\":\"ssh\"}}";

void sample_fill(sample *s, uint64_t i, uint64_t targets, usec_t now) {
        uint32_t t = (uint32_t) (i % targets);

        snprintf(s->ip, sizeof s->ip, "10.%u.%u.%u", (t >> 16) & 0xff, (t >> 8) & 0xff, t & 0xff);
        s->ev = (spw_event) { .time = now - 5 * USEC_PER_SEC, .source_ip = s->ip, .serialized = serialized };
        s->ban = (spw_ban) {
                .measure_source = "local",
                .measure_type = "ban",
                .until = now + 4 * USEC_PER_HOUR,
                .start_ip = { [10] = 0xff, [11] = 0xff, 10, (uint8_t) (t >> 16), (uint8_t) (t >> 8), (uint8_t) t },
                .end_ip = { [10] = 0xff, [11] = 0xff, 10, (uint8_t) (t >> 16), (uint8_t) (t >> 8), (uint8_t) t },
                .scope = SPW_SCOPE_IP,
                .target_cn = "FR",
                .target_as = 64500,
                .target_as_name = "Example Networks SAS",
                .ip_text = s->ip,
                .reason = "crowdsecurity/ssh-bf",
                .scenario = "crowdsecurity/ssh-bf",
        };
        s->sig = (spw_signal) {
                .size = sizeof(spw_signal), .ban_size = sizeof(spw_ban), .event_size = sizeof(spw_event),
                .id = i + 1,
                .received_at = now,
                .scenario = "crowdsecurity/ssh-bf",
                .bucket_id = "sunny-flower",
                .alert_message = "10.0.0.1 performed 'crowdsecurity/ssh-bf' (6 events over 4s) at 2023-11-14",
                .map_key = "d4f8c2a1e0b93c7f",
                .events_count = 6,
                .start_at = now - 4 * USEC_PER_SEC,
                .stop_at = now,
                .source_ip = s->ip,
                .source_as_number = "64500",
                .source_as_org = "Example Networks SAS",
                .source_country = "FR",
                .source_latitude = 48.8582,
                .source_longitude = 2.3387,
                .capacity = 5,
                .leak_speed_ns = 10 * INT64_C(1000000000),
                .events = &s->ev,
                .n_events = 1,
                .bans = &s->ban,
                .n_bans = 1,
        };
}

double cpu_seconds(void) {
        struct rusage ru;

        if (getrusage(RUSAGE_SELF, &ru) < 0)
                return 0;
        return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int count_row(const spw_ban_row *br, void *userdata) {
        (*(uint64_t *) userdata)++;
        return 0;
}

double bench_through_plugin(const char *prog, const char *path, const spw_kv *config, size_t n_config,
                            uint64_t signals, uint64_t batch, uint64_t targets, double *cpu, uint64_t *read_rows,
                            double *read_ms) {
        const struct spw_backend *(*entry)(void);
        const struct spw_backend *b;
        testhost *host;
        void *h, *self = NULL;
        usec_t start, elapsed;
        double cpu_start;
        sample s;
        int r;

        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                fprintf(stderr, "%s: %s\n", prog, dlerror());
                exit(1);
        }
        entry = (const struct spw_backend *(*)(void)) dlsym(h, SPW_BACKEND_ENTRY_SYMBOL);
        CHECK(entry);
        b = entry();
        host = testhost_new("bench", config, n_config);
        testhost_set_time(host, now_realtime());
        r = testhost_init(host, b, &self);
        if (r < 0) {
                fprintf(stderr, "%s: plugin init: %s\n", prog, testhost_last_error(host));
                exit(1);
        }

        cpu_start = cpu_seconds();
        start = now_monotonic();
        for (uint64_t i = 0; i < signals; i++) {
                usec_t now = now_realtime();

                testhost_set_time(host, now);
                sample_fill(&s, i, targets, now);
                r = b->insert(self, &s.sig);
                if (r != 0) {
                        fprintf(stderr, "%s: insert: %s\n", prog, testhost_last_error(host));
                        exit(1);
                }
                if (((i + 1) % batch == 0 || i + 1 == signals) && b->flush(self) < 0) {
                        fprintf(stderr, "%s: flush: %s\n", prog, testhost_last_error(host));
                        exit(1);
                }
        }
        elapsed = now_monotonic() - start;
        if (cpu)
                *cpu = cpu_seconds() - cpu_start;

        *read_rows = 0;
        start = now_monotonic();
        CHECK_OK(b->read_at(self, now_realtime(), count_row, read_rows));
        *read_ms = (double) (now_monotonic() - start) / 1e3;

        b->shutdown(self);
        testhost_free(host);
        dlclose(h);
        return (double) elapsed / 1e6;
}

int parse_u64(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *end || v == 0 || s[0] == '-')
                return -EINVAL;
        *ret = v;
        return 0;
}
