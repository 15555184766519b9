/* SPDX-License-Identifier: MIT */
/*
 * Cost of routing one signal with CrowdSec's shipped profiles (v0.3.0's
 * three defaults, and v1.4.6's default), printed as nanoseconds per signal:
 * best of several rounds, CLOCK_MONOTONIC. It asserts nothing about speed.
 *
 * Cases: a remediation signal (one 4h ban built), a notification-only
 * signal, a whitelisted one, and a 1:1:1 mix. "fresh arena" routes into a
 * new arena per signal and frees it (what the daemon pays when routing is
 * the first user of the signal's arena: one malloc and free of a 1 KiB
 * chunk when something matches); "warm arena" reuses one arena, freed
 * every 16 signals (an arena that already has room: no malloc per signal).
 * "filter only" evaluates default_remediation's filter.
 *
 * Then `matches`: rx.c against the C library's regexec() on the same
 * pattern and subject, ns per search (the ceiling it replaced).
 *
 * argv[1] is the folder with copies of the compat files.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "expr.h"
#include "route.h"
#include "rx.h"
#include "tests.h"

#define ROUNDS 5

static volatile uint64_t sink;

static uint64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static const spw_kv remediation_labels[] = { { "remediation", "true" }, { "service", "ssh" } };
static const spw_kv notify_labels[] = { { "service", "ssh" } };

static const spw_source bench_source = {
        .size = sizeof(spw_source), .ip = "192.0.2.7", .as_number = "64500", .as_org = "Example AS", .country = "FR" };

static spw_signal make_signal(int kind) {
        spw_signal s = {
                .size = sizeof(spw_signal),
                .scenario = "crowdsecurity/ssh-bf",
                .bucket_id = "sunny-flower",
                .events_count = 6,
                .stop_at = INT64_C(1600000020) * 1000000,
                .source = &bench_source,
                .labels = remediation_labels,
                .n_labels = ELEMENTSOF(remediation_labels),
        };
        if (kind == 1) {
                s.labels = notify_labels;
                s.n_labels = ELEMENTSOF(notify_labels);
        } else if (kind == 2)
                s.whitelisted = true;
        return s;
}

/* ns per signal over n signals cycling through sigs[0..n_sigs) */
static double run(const spw_router *r, const spw_signal *sigs, size_t n_sigs, size_t n, bool warm) {
        double best = 1e30;
        for (int round = 0; round < ROUNDS; round++) {
                arena a = ARENA_INIT;
                uint64_t t0 = now_ns();
                for (size_t i = 0; i < n; i++) {
                        route_result res;
                        if (router_route(r, &sigs[i % n_sigs], 0, &a, &res) < 0)
                                abort();
                        sink += res.n_bans + res.backends;
                        if (!warm || (i & 15) == 15)
                                arena_deinit(&a);
                }
                arena_deinit(&a);
                double ns = (double) (now_ns() - t0) / (double) n;
                if (ns < best)
                        best = ns;
        }
        return best;
}

/* best ns per search over `reps` searches */
static double time_search(rx *re, regex_t *libc, const char *subject, size_t len, int reps) {
        double best = 1e30;
        for (int round = 0; round < ROUNDS; round++) {
                uint64_t t0 = now_ns();
                for (int i = 0; i < reps; i++)
                        sink += re ? (uint64_t) rx_search(re, subject, len)
                                   : (uint64_t) regexec(libc, subject, 0, NULL, 0);
                double ns = (double) (now_ns() - t0) / reps;
                if (ns < best)
                        best = ns;
        }
        return best;
}

static void bench_matches(void) {
        static const struct {
                const char *name, *pattern;
                const char *subject; /* or NULL: subject_len bytes of 'a' */
                size_t subject_len;
                int reps;
        } cases[] = {
                { "scenario prefix (matches)", "^crowdsecurity/(ssh|http)-", "crowdsecurity/ssh-bf", 0, 100000 },
                { "scenario prefix (fails)", "^crowdsecurity/(ssh|http)-", "crowdsecurity/ftp-bf", 0, 100000 },
                { "IPv4 shape", "^([0-9]{1,3}[.]){3}[0-9]{1,3}$", "192.0.2.7", 0, 100000 },
                { "unanchored word", "\\bssh\\b", "crowdsecurity/ssh-bf", 0, 100000 },
                { "(a+)+b, 1 KiB of a", "(a+)+b", NULL, 1024, 20 },
                { "(a+)+b, 4 KiB of a", "(a+)+b", NULL, 4096, 3 },
                { "((a{1,10}){1,10}){1,10}b, 1 KiB of a", "((a{1,10}){1,10}){1,10}b", NULL, 1024, 3 },
                { "((a{1,10}){1,10}){1,10}b, 2 KiB of a", "((a{1,10}){1,10}){1,10}b", NULL, 2048, 3 },
        };
        char *subject = malloc(4097);
        CHECK(subject);

        printf("# matches: ns per search, rx.c vs the C library's regexec() (best of %d)\n", ROUNDS);
        printf("%-40s %12s %14s\n", "case", "rx", "libc regexec");
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char msg[100];
                regex_t libc;
                rx *re = NULL;
                size_t len = cases[i].subject_len;

                if (cases[i].subject) {
                        strcpy(subject, cases[i].subject);
                        len = strlen(subject);
                } else {
                        memset(subject, 'a', len);
                        subject[len] = 0;
                }
                CHECK_OK(rx_compile(cases[i].pattern, strlen(cases[i].pattern), &re, msg, sizeof msg, NULL));
                CHECK_EQ(regcomp(&libc, cases[i].pattern, REG_EXTENDED | REG_NOSUB), 0);
                CHECK_EQ(rx_search(re, subject, len), regexec(&libc, subject, 0, NULL, 0) == 0);
                printf("%-40s %12.0f %14.0f\n", cases[i].name, time_search(re, NULL, subject, len, cases[i].reps),
                       time_search(NULL, &libc, subject, len, cases[i].reps));
                regfree(&libc);
                rx_free(re);
        }
        free(subject);
}

static spw_router *load(const char *dir, const char *name) {
        static const char *const backends[] = { "database", "webhook" };
        static const unsigned flags[] = { ROUTE_BACKEND_STORES_BANS, 0 };
        char path[4096];
        spw_error err = { 0 };
        spw_router *r = NULL;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (router_load_file(path, backends, flags, ELEMENTSOF(backends), &r, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                exit(EXIT_FAILURE);
        }
        return r;
}

int main(int argc, char **argv) {
        const char *dir = argc > 1 ? argv[1] : "testdata";
        size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 300000;
        spw_signal sigs[3] = { make_signal(0), make_signal(1), make_signal(2) };
        _cleanup_(router_freep) spw_router *v03 = load(dir, "crowdsec-v0.3.0-profiles.yaml");
        _cleanup_(router_freep) spw_router *v1 = load(dir, "crowdsec-v1.4.6-profiles.yaml");
        static const char *const names[] = { "remediation (1 ban)", "notification only", "whitelisted" };

        printf("# routing cost, ns per signal (best of %d rounds of %zu signals)\n", ROUNDS, n);
        printf("%-40s %12s %12s\n", "case", "fresh arena", "warm arena");
        for (int k = 0; k < 3; k++)
                printf("v0.3.0 defaults: %-23s %12.1f %12.1f\n", names[k], run(v03, &sigs[k], 1, n, false),
                       run(v03, &sigs[k], 1, n, true));
        printf("v0.3.0 defaults: %-23s %12.1f %12.1f\n", "mix 1:1:1", run(v03, sigs, 3, n, false),
               run(v03, sigs, 3, n, true));
        printf("v1.4.6 default:  %-23s %12.1f %12.1f\n", names[0], run(v1, &sigs[0], 1, n, false),
               run(v1, &sigs[0], 1, n, true));

        /* the expression alone */
        static const char filter[] = "sig.Labels.remediation == 'true' && not sig.Whitelisted";
        spw_error err = { 0 };
        _cleanup_(expr_freep) expr *e = NULL;
        CHECK_OK(expr_compile(filter, sizeof filter - 1, EXPR_ENV_SIG, NULL, &e, &err));
        double best = 1e30;
        for (int round = 0; round < ROUNDS; round++) {
                uint64_t t0 = now_ns();
                for (size_t i = 0; i < n; i++)
                        sink += (uint64_t) expr_eval_bool(e, &sigs[i % 3], NULL);
                double ns = (double) (now_ns() - t0) / (double) n;
                if (ns < best)
                        best = ns;
        }
        printf("filter only: %-28s %12.1f\n", "default_remediation", best);

        bench_matches();
        return 0;
}
