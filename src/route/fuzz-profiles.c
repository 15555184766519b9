/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for profiles loading: any bytes are loaded as a
 * profiles.yaml with three backends; what loads routes four signals, and
 * every result must keep the router's promises (the backend union equals
 * the matches' masks, each match's bans are its slice of the ban array,
 * every ban has a target text and a measure type).
 */
#include <stdint.h>
#include <syslog.h>

#include "route.h"

static const spw_source fuzz_source = {
        .size = sizeof(spw_source), .ip = "192.0.2.7", .range = "192.0.2.0/24", .as_number = "64500" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const backends[] = { "database", "webhook", "journal" };
static const unsigned flags[] = { ROUTE_BACKEND_STORES_BANS, 0, 0 };
static const spw_kv rem[] = { { "remediation", "true" } };
static const spw_kv range[] = { { "remediation", "true" }, { "scope", "range" } };
static const spw_kv odd[] = { { "remediation", "false" }, { "scope", "as" } };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        spw_signal sigs[4] = {
                {
                        .size = sizeof(spw_signal),
                        .scenario = "crowdsecurity/ssh-bf",
                        .stop_at = INT64_C(1600000000) * 1000000,
                        .source = &fuzz_source,
                        .labels = rem,
                        .n_labels = 1,
                },
                { .size = sizeof(spw_signal), .source_range = "2001:db8::/32", .labels = range, .n_labels = 2,
                  .simulation = true },
                { .size = sizeof(spw_signal), .whitelisted = true, .labels = odd, .n_labels = 2, .source_ip = "x" },
                { .size = sizeof(spw_signal) },
        };
        spw_error err = { 0 };
        spw_router *r = NULL;

        if (router_load_buffer("fuzz.yaml", (const char *) data, size, backends, flags, 3, &r, &err) < 0) {
                assert_se(!r);
                assert_se(strncmp(err.msg, "fuzz.yaml", 9) == 0);
                return 0;
        }
        assert_se(router_n_profiles(r) > 0);
        for (size_t i = 0; i < router_n_profiles(r); i++) {
                route_profile_info info;
                assert_se(router_profile_info(r, i, &info) == 0);
                assert_se(info.name && info.n_filters < 1000000);
                for (size_t j = 0; j < info.n_filters; j++)
                        assert_se(info.filters[j]);
        }
        for (size_t s = 0; s < 4; s++) {
                arena a = ARENA_INIT;
                route_result res;
                uint64_t mask = 0;
                size_t bans = 0;

                assert_se(router_route(r, &sigs[s], 1, &a, &res) == 0);
                for (size_t i = 0; i < res.n_matches; i++) {
                        mask |= res.matches[i].backends;
                        assert_se(res.matches[i].n_bans == 0 || res.matches[i].bans == res.bans + bans);
                        bans += res.matches[i].n_bans;
                        assert_se(res.matches[i].profile);
                }
                assert_se(mask == res.backends && bans == res.n_bans);
                for (size_t i = 0; i < res.n_bans; i++)
                        assert_se(res.bans[i].ip_text && res.bans[i].measure_type && res.bans[i].until != 0 &&
                                  memcmp(res.bans[i].start_ip, res.bans[i].end_ip, 16) <= 0);
                for (size_t i = 0; i < res.n_warnings; i++)
                        assert_se(res.warnings[i].message && (res.warnings[i].level == LOG_WARNING ||
                                                              res.warnings[i].level == LOG_DEBUG));
                arena_deinit(&a);
        }
        router_free(r);
        return 0;
}
