/* SPDX-License-Identifier: MIT */
/*
 * Profiles: CrowdSec's shipped files load unchanged, the v0.3.0 defaults
 * route as CrowdSec does (remediation -> a 4h ban in the database,
 * notification-only -> no backend, whitelisted -> no ban), v1 walk
 * controls, decisions and notifications, bans built from the signal, and
 * every load error names file:line:column, the key and what was expected.
 *
 * argv[1] is the folder with copies of the compat files.
 */
#include <syslog.h>

#include "ipaddr.h"
#include "route.h"
#include "tests.h"

static const char *testdata = "testdata";

static const char *const one_db[] = { "database" };
static const unsigned one_db_flags[] = { ROUTE_BACKEND_STORES_BANS };

static const char *const three[] = { "database", "webhook", "journal" };
static const unsigned three_flags[] = { ROUTE_BACKEND_STORES_BANS, 0, 0 };
#define DB (UINT64_C(1) << 0)
#define WEBHOOK (UINT64_C(1) << 1)
#define JOURNAL (UINT64_C(1) << 2)

#define T0 (INT64_C(1600000020) * USEC_PER_SEC)
#define NOW (INT64_C(1700000000) * USEC_PER_SEC)

static const spw_kv remediation_labels[] = { { "remediation", "true" } };
static const spw_kv range_labels[] = { { "remediation", "true" }, { "scope", "range" } };
static const spw_kv country_labels[] = { { "remediation", "true" }, { "scope", "country" } };
static const spw_kv bad_scope_labels[] = { { "remediation", "true" }, { "scope", "no scope!" } };
static const spw_kv notify_labels[] = { { "service", "ssh" } };

static const spw_source test_source_init = {
        .size = sizeof(spw_source),
        .ip = "192.0.2.7",
        .range = "198.51.100.0/24",
        .as_number = "64500",
        .as_org = "Example AS",
        .country = "FR",
};

static spw_source test_source;

static spw_signal remediation_signal(void) {
        test_source = test_source_init;
        return (spw_signal) {
                .size = sizeof(spw_signal),
                .scenario = "crowdsecurity/ssh-bf",
                .events_count = 6,
                .stop_at = T0,
                .source = &test_source,
                .labels = remediation_labels,
                .n_labels = ELEMENTSOF(remediation_labels),
        };
}

static spw_router *load_ok(const char *text, const char *const *backends, const unsigned *flags, size_t n) {
        spw_error err = { 0 };
        spw_router *r = NULL;
        int k = router_load_buffer("t.yaml", text, strlen(text), backends, flags, n, &r, &err);
        if (k < 0) {
                fprintf(stderr, "loading failed (%d): %s\n--\n%s\n--\n", k, err.msg, text);
                abort();
        }
        return r;
}

static void expect_load_error(const char *text, const char *want) {
        spw_error err = { 0 };
        spw_router *r = NULL;
        int k = router_load_buffer("t.yaml", text, strlen(text), three, three_flags, ELEMENTSOF(three), &r, &err);
        if (k >= 0) {
                fprintf(stderr, "expected the error \"%s\", but this loaded:\n%s\n", want, text);
                abort();
        }
        CHECK(!r);
        CHECK_CONTAINS(err.msg, want);
}

static spw_router *load_compat(const char *name, const char *const *backends, const unsigned *flags, size_t n) {
        char path[4096];
        spw_error err = { 0 };
        spw_router *r = NULL;

        snprintf(path, sizeof path, "%s/%s", testdata, name);
        if (router_load_file(path, backends, flags, n, &r, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                abort();
        }
        return r;
}

static void route_ok(const spw_router *r, const spw_signal *sig, arena *a, route_result *res) {
        CHECK_OK(router_route(r, sig, NOW, a, res));
        /* invariants of every result */
        uint64_t mask = 0;
        size_t bans = 0;
        for (size_t i = 0; i < res->n_matches; i++) {
                mask |= res->matches[i].backends;
                CHECK(res->matches[i].n_bans == 0 || res->matches[i].bans == res->bans + bans);
                bans += res->matches[i].n_bans;
        }
        CHECK_EQ(mask, res->backends);
        CHECK_EQ(bans, res->n_bans);
}

static void test_v03_defaults(void) {
        _cleanup_(router_freep) spw_router *r = load_compat("crowdsec-v0.3.0-profiles.yaml", one_db, one_db_flags, 1);
        route_profile_info info;
        route_result res;
        arena a = ARENA_INIT;
        char text[IP_TEXT_MAX];

        CHECK_EQ(router_n_profiles(r), 3);
        CHECK_EQ(router_grammar(r), ROUTE_GRAMMAR_V03);
        CHECK_OK(router_profile_info(r, 0, &info));
        CHECK_STREQ(info.name, "default_remediation");
        CHECK_EQ(info.line, 1);
        CHECK_EQ(info.n_filters, 1);
        CHECK_STREQ(info.filters[0], "sig.Labels.remediation == 'true' && not sig.Whitelisted");
        CHECK_EQ(info.n_decisions, 1);
        CHECK_EQ(info.backends, DB);
        CHECK(info.api);
        CHECK_OK(router_profile_info(r, 1, &info));
        CHECK_STREQ(info.name, "default_notification");
        CHECK_EQ(info.line, 12);
        CHECK_EQ(info.backends, 0); /* store: false */
        CHECK(!info.api);
        CHECK_OK(router_profile_info(r, 2, &info));
        CHECK_STREQ(info.name, "send_false_positif_to_API");
        CHECK_EQ(router_profile_info(r, 3, &info), -ENOENT);

        /* a remediation signal: a 4h ban, delivered to the database */
        spw_signal sig = remediation_signal();
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 1);
        CHECK_STREQ(res.matches[0].profile, "default_remediation");
        CHECK_EQ(res.matches[0].line, 1);
        CHECK_EQ(res.matches[0].index, 0);
        CHECK_EQ(res.backends, DB);
        CHECK_EQ(res.n_bans, 1);
        CHECK_EQ(res.n_warnings, 0);
        CHECK(!res.stopped_by);
        const spw_ban *b = &res.bans[0];
        CHECK_STREQ(b->measure_source, "local");
        CHECK_STREQ(b->measure_type, "ban"); /* ban, slow and captcha are true: the first wins */
        CHECK(!b->measure_extra);
        CHECK_EQ(b->until, T0 + 4 * USEC_PER_HOUR);
        CHECK_EQ(b->scope, SPW_SCOPE_IP);
        CHECK_STREQ(b->ip_text, "192.0.2.7");
        CHECK_STREQ(ip_format(text, sizeof text, b->start_ip), "192.0.2.7");
        CHECK(memcmp(b->start_ip, b->end_ip, 16) == 0);
        CHECK_STREQ(b->reason, "crowdsecurity/ssh-bf");
        CHECK_STREQ(b->scenario, "crowdsecurity/ssh-bf");
        CHECK_STREQ(b->target_cn, "FR");
        CHECK_EQ(b->target_as, 64500);
        CHECK_STREQ(b->target_as_name, "Example AS");
        arena_deinit(&a);

        /* a notification-only signal: matches default_notification, stored nowhere */
        sig.labels = notify_labels;
        sig.n_labels = ELEMENTSOF(notify_labels);
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 1);
        CHECK_STREQ(res.matches[0].profile, "default_notification");
        CHECK_EQ(res.backends, 0);
        CHECK_EQ(res.n_bans, 0);
        arena_deinit(&a);

        /* a whitelisted remediation signal: never banned */
        sig = remediation_signal();
        sig.whitelisted = true;
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 1);
        CHECK_STREQ(res.matches[0].profile, "send_false_positif_to_API");
        CHECK_EQ(res.n_bans, 0);
        CHECK_EQ(res.backends, 0);
        arena_deinit(&a);

        /* simulated: the measure type says so */
        sig = remediation_signal();
        sig.simulation = true;
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 1);
        CHECK_STREQ(res.bans[0].measure_type, "simulation:ban");
        arena_deinit(&a);

        /* Labels.scope range: the source range is banned (IPv4 and IPv6) */
        sig = remediation_signal();
        sig.labels = range_labels;
        sig.n_labels = ELEMENTSOF(range_labels);
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 1);
        b = &res.bans[0];
        CHECK_EQ(b->scope, SPW_SCOPE_RANGE);
        CHECK_STREQ(b->ip_text, "198.51.100.0/24");
        CHECK_STREQ(ip_format(text, sizeof text, b->start_ip), "198.51.100.0");
        CHECK_STREQ(ip_format(text, sizeof text, b->end_ip), "198.51.100.255");
        arena_deinit(&a);
        test_source.range = "2001:db8:1:2::/64";
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 1);
        CHECK_STREQ(res.bans[0].ip_text, "2001:db8:1:2::/64");
        CHECK_STREQ(ip_format(text, sizeof text, res.bans[0].end_ip), "2001:db8:1:2:ffff:ffff:ffff:ffff");
        arena_deinit(&a);
        /* host bits in the range are masked, and the text is normalised */
        test_source.range = "198.51.100.77/24";
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 1);
        CHECK_STREQ(res.bans[0].ip_text, "198.51.100.0/24");
        arena_deinit(&a);
        test_source.range = "10.0.0.9/8";
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 1);
        CHECK_STREQ(res.bans[0].ip_text, "10.0.0.0/8");
        CHECK_STREQ(ip_format(text, sizeof text, res.bans[0].end_ip), "10.255.255.255");
        arena_deinit(&a);
        test_source.range = "0.0.0.0/0";
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 1);
        CHECK_STREQ(res.bans[0].ip_text, "0.0.0.0/0");
        arena_deinit(&a);
        test_source.range = "::ffff:192.0.2.128/25"; /* IPv4-mapped (ipaddr.h: an IPv4 prefix): shown as IPv4 */
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 1);
        CHECK_STREQ(res.bans[0].ip_text, "192.0.2.128/25");
        arena_deinit(&a);
        test_source.range = "2001:DB8::/32"; /* IPv6 text is lower-cased and compressed */
        route_ok(r, &sig, &a, &res);
        CHECK_STREQ(res.bans[0].ip_text, "2001:db8::/32");
        arena_deinit(&a);

        /* another scope: its value from the signal (Country: the source's),
         * no address (stored and forwarded, not enforced by address) */
        sig = remediation_signal();
        sig.labels = country_labels;
        sig.n_labels = ELEMENTSOF(country_labels);
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 1);
        CHECK_EQ(res.n_bans, 1);
        CHECK_EQ(res.n_warnings, 0);
        CHECK_EQ(res.bans[0].scope, SPW_SCOPE_OTHER);
        CHECK_STREQ(res.bans[0].scope_name, "Country");
        CHECK_STREQ(res.bans[0].value, "FR");
        CHECK_STREQ(res.bans[0].ip_text, "Country:FR");
        CHECK_STREQ(ip_format(text, sizeof text, res.bans[0].end_ip), "::");
        arena_deinit(&a);

        /* a Labels.scope that is no scope name: a warning, the profile is skipped */
        sig = remediation_signal();
        sig.labels = bad_scope_labels;
        sig.n_labels = ELEMENTSOF(bad_scope_labels);
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 0);
        CHECK_EQ(res.backends, 0);
        CHECK_EQ(res.n_bans, 0);
        CHECK_EQ(res.n_warnings, 1);
        CHECK_EQ(res.warnings[0].level, LOG_WARNING);
        CHECK_STREQ(res.warnings[0].profile, "default_remediation");
        CHECK_STREQ(res.warnings[0].message, "Labels.scope 'no scope!' is not a scope name");
        arena_deinit(&a);

        /* no source at all: matched and delivered, no ban, a debug note */
        sig = remediation_signal();
        sig.source = NULL;
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 1);
        CHECK_EQ(res.backends, DB);
        CHECK_EQ(res.n_bans, 0);
        CHECK_EQ(res.matches[0].n_bans, 0);
        CHECK(!res.matches[0].bans);
        CHECK_EQ(res.n_warnings, 1);
        CHECK_EQ(res.warnings[0].level, LOG_DEBUG);
        CHECK_CONTAINS(res.warnings[0].message, "no source IP");
        arena_deinit(&a);

        /* no source object: the flat Source_* fields are used */
        sig.source_ip = "2001:db8::7";
        sig.source_country = "DE";
        sig.source_as_number = "AS64501";
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 1);
        CHECK_STREQ(res.bans[0].ip_text, "2001:db8::7");
        CHECK_STREQ(res.bans[0].target_cn, "DE");
        CHECK_EQ(res.bans[0].target_as, 64501);
        CHECK(!res.bans[0].target_as_name);
        arena_deinit(&a);

        /* AS numbers: digits, optionally after AS; anything else is 0 */
        static const struct {
                const char *in;
                int64_t out;
        } asns[] = {
                { "64500", 64500 }, { "as13335", 13335 }, { "AS", 0 }, { "", 0 }, { "12x", 0 },
                { "-5", 0 }, { "9223372036854775807", INT64_MAX }, { "9223372036854775808", 0 },
        };
        for (size_t i = 0; i < ELEMENTSOF(asns); i++) {
                sig.source_as_number = asns[i].in;
                route_ok(r, &sig, &a, &res);
                CHECK_EQ(res.n_bans, 1);
                CHECK_EQ(res.bans[0].target_as, asns[i].out);
                arena_deinit(&a);
        }

        /* a source that is not an address: no ban, a debug note naming it */
        sig.source_ip = "not-an-ip";
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 0);
        CHECK_EQ(res.n_matches, 1);
        CHECK_CONTAINS(res.warnings[0].message, "the source IP 'not-an-ip' is not an IP address: no ban");
        CHECK_EQ(res.warnings[0].level, LOG_DEBUG);
        arena_deinit(&a);

        /* IP texts: a dotted quad is kept as given (it is canonical), others are normalised */
        static const struct {
                const char *in, *out;
        } ips[] = {
                { "203.0.113.255", "203.0.113.255" },
                { "0.0.0.0", "0.0.0.0" },
                { "::ffff:198.51.100.1", "198.51.100.1" },
                { "2001:DB8:0:0::1", "2001:db8::1" },
        };
        for (size_t i = 0; i < ELEMENTSOF(ips); i++) {
                sig = remediation_signal();
                test_source.ip = ips[i].in;
                route_ok(r, &sig, &a, &res);
                CHECK_EQ(res.n_bans, 1);
                CHECK_STREQ(res.bans[0].ip_text, ips[i].out);
                CHECK_STREQ(ip_format(text, sizeof text, res.bans[0].start_ip), ips[i].out);
                arena_deinit(&a);
        }
        sig = remediation_signal();
        test_source.ip = "010.0.0.1"; /* leading zeros are not an address for inet_pton() */
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 0);
        arena_deinit(&a);

        /* stop_at unset: the ban runs from `now` */
        sig = remediation_signal();
        sig.stop_at = 0;
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.bans[0].until, NOW + 4 * USEC_PER_HOUR);
        arena_deinit(&a);
}

static void test_v1_compat(void) {
        _cleanup_(router_freep) spw_router *r =
                load_compat("crowdsec-v1.4.6-profiles.yaml", three, three_flags, ELEMENTSOF(three));
        route_profile_info info;
        route_result res;
        arena a = ARENA_INIT;

        CHECK_EQ(router_n_profiles(r), 1);
        CHECK_EQ(router_grammar(r), ROUTE_GRAMMAR_V1);
        CHECK_OK(router_profile_info(r, 0, &info));
        CHECK_STREQ(info.name, "default_ip_remediation");
        CHECK(info.break_on_success);
        CHECK(!info.break_on_failure);
        CHECK(!info.duration_expr);
        CHECK_EQ(info.backends, DB); /* decisions go to the ban database only */

        spw_signal sig = remediation_signal();
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 1);
        CHECK_EQ(res.backends, DB);
        CHECK_EQ(res.n_bans, 1);
        CHECK_STREQ(res.bans[0].measure_type, "ban");
        CHECK_EQ(res.bans[0].until, T0 + 4 * USEC_PER_HOUR);
        CHECK_STREQ(res.stopped_by, "default_ip_remediation");
        arena_deinit(&a);

        /* Alert.GetScope() == "Ip" is false for a range signal */
        sig.labels = range_labels;
        sig.n_labels = ELEMENTSOF(range_labels);
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 0);
        CHECK_EQ(res.backends, 0);
        arena_deinit(&a);

        /* the same file with only a webhook loaded: decisions reach no backend */
        spw_router *r2 = load_compat("crowdsec-v1.4.6-profiles.yaml", (const char *const[]) { "webhook" },
                                     (const unsigned[]) { 0 }, 1);
        CHECK_OK(router_profile_info(r2, 0, &info));
        CHECK_EQ(info.backends, 0);
        router_free(r2);
}

static void test_v1_walk(void) {
        static const char text[] =
                "name: first\n"
                "filters:\n"
                " - Alert.GetScenario() == 'nope'\n"
                " - Alert.Remediation\n"
                "decisions:\n"
                " - type: captcha\n"
                "   duration: 90m\n"
                " - type: ban\n"
                "   duration: 1d\n"
                "   scope: Range\n"
                "notifications: [webhook]\n"
                "on_success: break\n"
                "---\n"
                "name: second\n"
                "filters: [true]\n"
                "notifications: [journal]\n";
        _cleanup_(router_freep) spw_router *r = load_ok(text, three, three_flags, ELEMENTSOF(three));
        route_result res;
        arena a = ARENA_INIT;

        /* filters are OR-ed; the first profile matches and stops the walk */
        spw_signal sig = remediation_signal();
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 1);
        CHECK_STREQ(res.matches[0].profile, "first");
        CHECK_STREQ(res.stopped_by, "first");
        CHECK_EQ(res.backends, DB | WEBHOOK);
        CHECK_EQ(res.n_bans, 2);
        CHECK_STREQ(res.bans[0].measure_type, "captcha");
        CHECK_EQ(res.bans[0].scope, SPW_SCOPE_IP);
        CHECK_EQ(res.bans[0].until, T0 + 90 * USEC_PER_MIN);
        CHECK_STREQ(res.bans[1].measure_type, "ban");
        CHECK_EQ(res.bans[1].scope, SPW_SCOPE_RANGE); /* the decision's scope beats Labels.scope */
        CHECK_STREQ(res.bans[1].ip_text, "198.51.100.0/24");
        CHECK_EQ(res.bans[1].until, T0 + USEC_PER_DAY);
        arena_deinit(&a);

        /* no remediation: the first profile fails, the walk goes on */
        sig.labels = notify_labels;
        sig.n_labels = ELEMENTSOF(notify_labels);
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 1);
        CHECK_STREQ(res.matches[0].profile, "second");
        CHECK_EQ(res.backends, JOURNAL);
        CHECK_EQ(res.n_bans, 0);
        CHECK(!res.stopped_by);
        arena_deinit(&a);

        /* on_failure: break stops the walk at the first failing profile */
        static const char fail_text[] =
                "name: gate\n"
                "filters: [Alert.Remediation]\n"
                "notifications: [webhook]\n"
                "on_failure: break\n"
                "---\n"
                "name: after\n"
                "filters: [true]\n"
                "notifications: [journal]\n";
        spw_router *r2 = load_ok(fail_text, three, three_flags, ELEMENTSOF(three));
        route_ok(r2, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 0);
        CHECK_EQ(res.backends, 0);
        CHECK_STREQ(res.stopped_by, "gate");
        arena_deinit(&a);
        sig = remediation_signal();
        route_ok(r2, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 2);
        CHECK_EQ(res.backends, WEBHOOK | JOURNAL);
        arena_deinit(&a);
        router_free(r2);
}

static void test_v1_decisions(void) {
        static const char text[] =
                "name: fixed\n"
                "debug: true\n"
                "filters: [Alert.Source.Cn == 'FR', Alert.EventsCount > 3]\n"
                "decisions:\n"
                " - {type: ban, duration: 2h, value: 203.0.113.9}\n"
                " - {type: ban, duration: 2h, value: '2001:db8::/48'}\n"
                " - {type: throttle, duration: 10m, simulated: true}\n";
        _cleanup_(router_freep) spw_router *r = load_ok(text, three, three_flags, ELEMENTSOF(three));
        route_result res;
        arena a = ARENA_INIT;
        spw_signal sig = remediation_signal();

        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 3);
        CHECK_STREQ(res.bans[0].ip_text, "203.0.113.9");
        CHECK_EQ(res.bans[0].scope, SPW_SCOPE_IP);
        CHECK_STREQ(res.bans[1].ip_text, "2001:db8::/48");
        CHECK_EQ(res.bans[1].scope, SPW_SCOPE_RANGE);
        CHECK_STREQ(res.bans[2].measure_type, "simulation:throttle");
        CHECK_STREQ(res.bans[2].ip_text, "192.0.2.7");
        /* debug: true notes each filter's result */
        CHECK_EQ(res.n_warnings, 1);
        CHECK_EQ(res.warnings[0].level, LOG_DEBUG);
        CHECK_STREQ(res.warnings[0].message, "filters[0] is true: Alert.Source.Cn == 'FR'");
        arena_deinit(&a);
}

/* Decisions on scopes other than Ip and Range: a fixed value, the
 * signal's (AS from the source; a CrowdSec alert's own scope and value; a
 * Labels.value), and none to be had (a debug note, no ban). */
static void test_v1_other_scopes(void) {
        static const char text[] =
                "name: scopes\n"
                "filters: [true]\n"
                "decisions:\n"
                " - {type: ban, duration: 2h, scope: username, value: root}\n"
                " - {type: ban, duration: 2h, scope: as}\n"
                " - {type: captcha, duration: 1h, scope: username}\n";
        static const spw_kv alert_labels[] = { { "crowdsec_scope", "Username" }, { "crowdsec_value", "bob" } };
        _cleanup_(router_freep) spw_router *r = load_ok(text, three, three_flags, ELEMENTSOF(three));
        route_result res;
        arena a = ARENA_INIT;
        spw_signal sig = remediation_signal();

        test_source.as_number = "64496";
        sig.labels = alert_labels;
        sig.n_labels = ELEMENTSOF(alert_labels);
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 3);
        CHECK_STREQ(res.bans[0].ip_text, "username:root");
        CHECK_EQ(res.bans[0].scope, SPW_SCOPE_OTHER);
        CHECK_STREQ(res.bans[0].scope_name, "username");
        CHECK_STREQ(res.bans[0].value, "root");
        CHECK_STREQ(res.bans[1].ip_text, "AS:64496");
        CHECK_STREQ(res.bans[1].scope_name, "AS");
        CHECK_STREQ(res.bans[2].ip_text, "username:bob");
        CHECK_STREQ(res.bans[2].measure_type, "captcha");
        arena_deinit(&a);

        /* no AS in the source, no username in the signal */
        sig = remediation_signal();
        test_source.as_number = NULL;
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 1);
        CHECK_EQ(res.n_bans, 1);
        CHECK_STREQ(res.bans[0].ip_text, "username:root");
        CHECK_EQ(res.n_warnings, 2);
        CHECK_EQ(res.warnings[0].level, LOG_DEBUG);
        CHECK_STREQ(res.warnings[0].message, "no AS to ban in the signal");
        CHECK_STREQ(res.warnings[1].message, "no username to ban in the signal");
        arena_deinit(&a);
}

static void test_runtime_warnings(void) {
        static const char v03[] =
                "profile: by_country\n"
                "filter: \"sig.Labels.remediation == 'true' && sig.Source.Country == 'FR'\"\n"
                "outputs: [{plugin: database}]\n"
                "---\n"
                "profile: catch_all\n"
                "filter:\n"
                "outputs: [{plugin: journal, store: true, extra: ignored}]\n";
        _cleanup_(router_freep) spw_router *r = load_ok(v03, three, three_flags, ELEMENTSOF(three));
        route_result res;
        arena a = ARENA_INIT;
        spw_signal sig = remediation_signal();

        sig.source = NULL;
        route_ok(r, &sig, &a, &res);
        /* the failing profile is skipped with a warning; v0.3 walks on */
        CHECK_EQ(res.n_matches, 1);
        CHECK_STREQ(res.matches[0].profile, "catch_all");
        CHECK_EQ(res.backends, JOURNAL);
        CHECK_EQ(res.n_warnings, 1);
        CHECK_EQ(res.warnings[0].level, LOG_WARNING);
        CHECK_STREQ(res.warnings[0].profile, "by_country");
        CHECK_STREQ(res.warnings[0].message, "filter at t.yaml:2:46: sig.Source is nil (this signal has no \"source\" "
                                             "object), so its fields cannot be read");
        arena_deinit(&a);

        /* nothing matches and nothing goes wrong: nothing is allocated */
        static const char none[] = "name: never\nfilters: [Alert.Remediation]\ndecisions: [{type: ban, duration: 1h}]\n";
        spw_router *r2 = load_ok(none, three, three_flags, ELEMENTSOF(three));
        sig.labels = notify_labels;
        sig.n_labels = ELEMENTSOF(notify_labels);
        route_ok(r2, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 0);
        CHECK_EQ(a.total, 0);
        router_free(r2);
}

/* A v1 decision without a duration gets CrowdSec's default, 4h. */
static void test_default_duration(void) {
        static const char text[] =
                "name: no_duration\n"
                "filters: [Alert.Remediation == true]\n"
                "decisions:\n"
                " - type: ban\n"
                " - {type: captcha, duration: ~}\n"
                " - {type: slow, duration: 30m}\n";
        _cleanup_(router_freep) spw_router *r = load_ok(text, three, three_flags, ELEMENTSOF(three));
        route_result res;
        arena a = ARENA_INIT;
        spw_signal sig = remediation_signal();

        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 3);
        CHECK_EQ(res.bans[0].until, T0 + 4 * USEC_PER_HOUR);
        CHECK_EQ(res.bans[1].until, T0 + 4 * USEC_PER_HOUR);
        CHECK_EQ(res.bans[2].until, T0 + 30 * USEC_PER_MIN);
        arena_deinit(&a);
}

/* duration_expr, in CrowdSec's documented form (profile level, a Go
 * duration text, the decisions' own duration when it fails). */
static void test_duration_expr(void) {
        static const char text[] =
                "name: escalate\n"
                "filters:\n"
                " - Alert.Remediation == true && Alert.GetScope() == \"Ip\"\n"
                "decisions:\n"
                " - type: ban\n"
                "   duration: 4h\n"
                " - type: captcha\n"
                "duration_expr: Sprintf('%dh', (Alert.EventsCount + 1) * 4)\n"
                "on_success: break\n";
        _cleanup_(router_freep) spw_router *r = load_ok(text, three, three_flags, ELEMENTSOF(three));
        route_result res;
        arena a = ARENA_INIT;
        spw_signal sig = remediation_signal(); /* 6 events: 28h */

        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_bans, 2);
        CHECK_EQ(res.bans[0].until, T0 + 28 * USEC_PER_HOUR); /* replaces every decision's duration */
        CHECK_EQ(res.bans[1].until, T0 + 28 * USEC_PER_HOUR);
        CHECK_EQ(res.n_warnings, 0);
        route_profile_info info;
        CHECK_OK(router_profile_info(r, 0, &info));
        CHECK_STREQ(info.duration_expr, "Sprintf('%dh', (Alert.EventsCount + 1) * 4)");
        arena_deinit(&a);
        sig.events_count = 0;
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.bans[0].until, T0 + 4 * USEC_PER_HOUR);
        arena_deinit(&a);

        /* a result that is not a duration, or a run-time error: the
         * decisions keep their duration, with a notice at most once a
         * minute per profile (the profile still applies) */
        static const char bad[] =
                "name: fallback\n"
                "filters: [Alert.Remediation == true]\n"
                "decisions:\n"
                " - {type: ban, duration: 2h}\n"
                " - {type: captcha}\n"
                "duration_expr: Sprintf('%s', Alert.Source.Cn)\n"
                "---\n"
                "name: broken\n"
                "filters: [Alert.Remediation == true]\n"
                "decisions: [{type: ban, duration: 1h}]\n"
                "duration_expr: Sprintf('%vh', Atof(Alert.Source.AsName))\n";
        _cleanup_(router_freep) spw_router *r2 = load_ok(bad, three, three_flags, ELEMENTSOF(three));
        sig = remediation_signal();
        CHECK_OK(router_route(r2, &sig, NOW, &a, &res));
        CHECK_EQ(res.n_matches, 2);
        CHECK_EQ(res.n_bans, 3);
        CHECK_EQ(res.bans[0].until, T0 + 2 * USEC_PER_HOUR);
        CHECK_EQ(res.bans[1].until, T0 + 4 * USEC_PER_HOUR);
        CHECK_EQ(res.bans[2].until, T0 + 1 * USEC_PER_HOUR);
        CHECK_EQ(res.n_warnings, 2);
        CHECK_EQ(res.warnings[0].level, LOG_NOTICE);
        CHECK_STREQ(res.warnings[0].profile, "fallback");
        CHECK_STREQ(res.warnings[0].message, "duration_expr gave \"FR\", not a duration (Go syntax such as 8h); the "
                                             "decisions keep their duration");
        CHECK_STREQ(res.warnings[1].profile, "broken");
        CHECK_CONTAINS(res.warnings[1].message, "duration_expr at t.yaml:11:");
        CHECK_CONTAINS(res.warnings[1].message, "Atof(): \"Example AS\" is not a number; the decisions keep their duration");
        arena_deinit(&a);
        /* within the minute: no notice, same bans */
        CHECK_OK(router_route(r2, &sig, NOW + 30 * USEC_PER_SEC, &a, &res));
        CHECK_EQ(res.n_bans, 3);
        CHECK_EQ(res.n_warnings, 0);
        arena_deinit(&a);
        CHECK_OK(router_route(r2, &sig, NOW + 59 * USEC_PER_SEC, &a, &res));
        CHECK_EQ(res.n_warnings, 0);
        arena_deinit(&a);
        /* a minute later: one notice each, counting the ones left out */
        CHECK_OK(router_route(r2, &sig, NOW + 61 * USEC_PER_SEC, &a, &res));
        CHECK_EQ(res.n_warnings, 2);
        CHECK_CONTAINS(res.warnings[0].message, "keep their duration (and 2 more times since the last notice)");
        arena_deinit(&a);
        /* a negative or zero result is refused too */
        static const char neg[] =
                "name: neg\nfilters: [true]\ndecisions: [{type: ban, duration: 3h}]\nduration_expr: \"'-1h'\"\n";
        _cleanup_(router_freep) spw_router *r3 = load_ok(neg, three, three_flags, ELEMENTSOF(three));
        CHECK_OK(router_route(r3, &sig, NOW, &a, &res));
        CHECK_EQ(res.bans[0].until, T0 + 3 * USEC_PER_HOUR);
        CHECK_STREQ(res.warnings[0].message, "duration_expr gave \"-1h\", not a positive duration; the decisions keep "
                                             "their duration");
        arena_deinit(&a);
}

static void test_block_scalar_positions(void) {
        expect_load_error("profile: p\n"
                          "filter: |\n"
                          "    sig.Scenario == 'x' &&\n"
                          "    sig.Whitelistd\n"
                          "outputs: [{plugin: database}]\n",
                          "t.yaml:4:9: filter: unknown field 'Whitelistd' of sig; did you mean 'Whitelisted'?");
        expect_load_error("profile: p\n"
                          "filter: 'sig.Scenario == 1'\n"
                          "outputs: [{plugin: database}]\n",
                          "t.yaml:2:23: filter: cannot compare string with int using ==");
        expect_load_error("name: p\n"
                          "filters:\n"
                          " - Alert.GetScope() == 'Ip'\n"
                          " - Alert.Sauce.IP == '1.2.3.4'\n",
                          "t.yaml:4:10: filters[1]: unknown field 'Sauce' of Alert; did you mean 'Source'?");
}

static void test_line_breaks(void) {
        /* libyaml counts \r\n, a lone \r and \n as line breaks; positions follow it
         * (and a file need not end with a newline: found by fuzz-profiles) */
        expect_load_error("profile: a\r\nfilter: 'sig.Nope'\r\noutputs: []\r\n",
                          "t.yaml:2:14: filter: unknown field 'Nope' of sig");
        expect_load_error("profile: a\rfilter: 'sig.Nope'\routputs: []",
                          "t.yaml:2:14: filter: unknown field 'Nope' of sig");
        expect_load_error("\rprofile: deiationin\nfilter: \"(and((cdted\"\napi: ts",
                          "t.yaml:3:11: filter: unexpected 'and' (expected a value)");
        expect_load_error("profile: a\nfilter: |\r\n    sig.Scenario == 'x' &&\r\n    sig.Nope\r\noutputs: []",
                          "t.yaml:4:9: filter: unknown field 'Nope' of sig");
        expect_load_error("profile: é\nfilter: \"sig.Nope\"", "t.yaml:2:14: filter: unknown field 'Nope'");
}

static void test_load_errors(void) {
        /* grammar */
        expect_load_error("profile: a\nfilter: 'true'\nfilters: ['true']\noutputs: []\n",
                          "t.yaml:3:1: 'filters' is a CrowdSec v1 key, but this profile uses the v0.3 grammar "
                          "('profile' at line 1, column 1); a profile, and a file, use one grammar");
        expect_load_error("name: a\nfilters: [true]\noutputs: [{plugin: database}]\n",
                          "t.yaml:3:1: 'outputs' is a CrowdSec v0.3 key, but this profile uses the v1 grammar ('name'");
        expect_load_error("name: a\nfilters: [true]\n---\nprofile: b\noutputs: []\n",
                          "t.yaml:4:1: this profile uses the CrowdSec v0.3 grammar ('profile'), but the file's first "
                          "profile uses the v1 grammar ('name' at line 1, column 1); a file uses one grammar");
        /* unknown keys, with suggestions */
        expect_load_error("profile: a\nfiltr: 'true'\noutputs: []\n",
                          "t.yaml:2:1: unknown key 'filtr' in a v0.3 profile; did you mean 'filter'?");
        expect_load_error("name: a\nfilters: [true]\non_sucess: break\n",
                          "t.yaml:3:1: unknown key 'on_sucess' in a v1 profile; did you mean 'on_success'?");
        expect_load_error("nmae: a\nfilters: [true]\n", "unknown key 'nmae' in a v1 profile; did you mean 'name'?");
        expect_load_error("frobnicate: 1\n", "t.yaml:1:1: unknown key 'frobnicate' (a profile has the CrowdSec v0.3 keys");
        expect_load_error("profile: a\nremediation: {ban: true, durration: 4h}\noutputs: []\n",
                          "t.yaml:2:26: unknown key 'remediation.durration'; did you mean 'duration'?");
        expect_load_error("name: a\nfilters: [true]\ndecisions: [{tpye: ban, duration: 4h}]\n",
                          "t.yaml:3:14: unknown key 'decisions[0].tpye'; did you mean 'type'?");
        /* backends */
        expect_load_error("profile: a\noutputs:\n  - plugin: databse\n",
                          "t.yaml:3:13: outputs[0].plugin: unknown backend 'databse' (loaded: database, webhook, "
                          "journal); did you mean 'database'?");
        expect_load_error("name: a\nfilters: [true]\nnotifications: [slack_default]\n",
                          "t.yaml:3:17: notifications[0]: unknown backend 'slack_default' (loaded: database, webhook, journal)");
        expect_load_error("profile: a\noutputs: [{store: false}]\n", "t.yaml:2:11: outputs[0]: 'plugin' is required");
        expect_load_error("profile: a\nfilter: 'true'\n", "t.yaml:1:1: profile 'a': 'outputs' is required");
        expect_load_error("profile: a\noutputs: {plugin: database}\n", "t.yaml:2:10: outputs: expected a list");
        expect_load_error("profile: a\noutputs: [{plugin: database, store: maybe}]\n",
                          "t.yaml:2:37: outputs[0].store: expected true or false, got 'maybe'");
        /* values */
        expect_load_error("profile: a\nremediation: {ban: true}\noutputs: []\n",
                          "t.yaml:2:14: remediation.duration is required when ban, slow or captcha is true");
        expect_load_error("profile: a\nremediation: {ban: true, duration: 4 hours}\noutputs: []\n",
                          "t.yaml:2:36: remediation.duration: invalid duration '4 hours' (expected Go syntax such as 4h");
        expect_load_error("profile: a\nremediation: {ban: yes please, duration: 4h}\noutputs: []\n",
                          "remediation.ban: expected true or false, got 'yes please'");
        expect_load_error("profile: a\nremediation: [ban]\noutputs: []\n", "remediation: expected a mapping");
        expect_load_error("profile: a\napi: 3\noutputs: []\n", "t.yaml:2:6: api: expected true or false, got '3'");
        expect_load_error("profile: a\nfilter: sig.Scenario\noutputs: []\n",
                          "t.yaml:2:9: filter: a filter must be a boolean expression (true or false), this one is a string");
        expect_load_error("profile: a\nfilter: [x]\noutputs: []\n", "filter: expected an expression (a string), got a list");
        expect_load_error("name: a\nfilters: []\n", "t.yaml:2:10: filters: expected a list of expressions");
        expect_load_error("name: a\ndecisions: [{type: ban, duration: 4h}]\n",
                          "t.yaml:1:1: profile 'a': 'filters' is required");
        expect_load_error("name: a\nfilters: ['']\n", "t.yaml:2:12: filters[0]: empty expression");
        expect_load_error("name: a\nfilters: [~]\n", "t.yaml:2:11: filters[0]: expected an expression (a string), got nothing");
        expect_load_error("name: a\nfilters: [Alert.Remediation]\ndecisions: [{duration: 1h}]\n",
                          "decisions[0]: 'type' is required");
        expect_load_error("name: a\nfilters: [true]\ndecisions: [{type: ban, duration: 1h, scope: 'a b'}]\n",
                          "decisions[0].scope: 'a b' is not a scope name");
        expect_load_error("name: a\nfilters: [true]\ndecisions: [{type: ban, duration: 1h, scope: username, value: ''}]\n",
                          "decisions[0].value: the value is empty");
        expect_load_error("name: a\nfilters: [true]\ndecisions: [{type: ban, duration: -1h}]\n",
                          "decisions[0].duration: the duration must be positive");
        expect_load_error("name: a\nfilters: [true]\ndecisions: [{type: ban, duration: 1h, value: nope}]\n",
                          "decisions[0].value: expected an IP address or a CIDR range, got 'nope'");
        expect_load_error("name: a\nfilters: [true]\ndecisions: [{type: ban, duration: 1h, scope: Ip, value: 10.0.0.0/8}]\n",
                          "'10.0.0.0/8' is a range but the scope is Ip");
        expect_load_error("name: a\nfilters: [true]\non_success: brake\n",
                          "t.yaml:3:13: on_success: expected break or continue, got 'brake'; did you mean 'break'?");
        expect_load_error("name: a\nfilters: [true]\ndecisions:\n - type: ban\n   duration: 4h\n"
                          "duration_expr: Sprintf('%dh', (GetDecisionsCount(Alert.GetValue()) + 1) * 4)\n",
                          "t.yaml:6:32: duration_expr: GetDecisionsCount() needs the ban history: it counts the bans a "
                          "target has had");
        expect_load_error("name: a\nfilters: [true]\ndecisions: [{type: ban}]\n"
                          "duration_expr: \"Sprintf('%dh', GetDecisionsSinceCount(Alert.GetValue(), '24h') * 4)\"\n",
                          "t.yaml:4:32: duration_expr: GetDecisionsSinceCount() needs the ban history");
        expect_load_error("name: a\nfilters: [true]\ndecisions: [{type: ban}]\nduration_expr: Alert.EventsCount * 4\n",
                          "t.yaml:4:16: duration_expr: the expression must give a duration text such as \"8h\" (e.g. "
                          "Sprintf('%dh', ...)), this one is an int");
        expect_load_error("name: a\nfilters: [true]\ndecisions: [{type: ban}]\nduration_expr: sprintf('%dh', 4*4)\n",
                          "t.yaml:4:16: duration_expr: unknown function 'sprintf'; did you mean 'Sprintf'?");
        expect_load_error("name: a\nfilters: [true]\ndecisions: [{type: ban}]\nduration_expr: [1]\n",
                          "duration_expr: expected an expression (a string)");
        expect_load_error("name: a\nfilters: [true]\ndecisions: [{type: ban}]\nduration_expr: \"'abc'[1:2]\"\n",
                          "t.yaml:4:22: duration_expr: slicing (x[a:b]) is not supported");
        expect_load_error("name: a\nfilters: [true]\n---\nname: a\nfilters: [false]\n",
                          "t.yaml:4:1: duplicate profile name 'a' (also at line 1)");
        expect_load_error("- a\n- b\n", "t.yaml:1:1: expected a profile (a mapping");
        expect_load_error("{}\n", "t.yaml:1:1: empty profile");
        expect_load_error("# nothing\n", "t.yaml:1:1: no profile in the file");
        expect_load_error("", "no profile in the file");
        expect_load_error("profile: [\n", "t.yaml:");
        expect_load_error("profile: a\nprofile: b\noutputs: []\n", "duplicate key 'profile'");

        /* too many backends */
        const char *names[65];
        char buf[65][8];
        for (int i = 0; i < 65; i++) {
                snprintf(buf[i], sizeof buf[i], "b%d", i);
                names[i] = buf[i];
        }
        spw_error err = { 0 };
        spw_router *r = NULL;
        static const char ok[] = "name: a\nfilters: [true]\n";
        CHECK_EQ(router_load_buffer("t.yaml", ok, strlen(ok), names, NULL, 65, &r, &err), -E2BIG);
        CHECK_CONTAINS(err.msg, "65 backends are loaded, routing supports at most 64");
        /* 64 is fine, and the 64th backend is bit 63 */
        static const char last[] = "name: a\nfilters: [true]\nnotifications: [b63]\n";
        r = load_ok(last, names, NULL, 64);
        route_profile_info info;
        CHECK_OK(router_profile_info(r, 0, &info));
        CHECK_EQ(info.backends, UINT64_C(1) << 63);
        router_free(r);

        /* a missing file */
        r = NULL;
        CHECK_EQ(router_load_file("/nonexistent/profiles.yaml", three, three_flags, 3, &r, &err), -ENOENT);
        CHECK_CONTAINS(err.msg, "/nonexistent/profiles.yaml: cannot open");
}

static void test_v03_forms(void) {
        /* store as a YAML bool or as a string; extra keys in outputs ignored; api optional */
        static const char text[] =
                "profile: a\n"
                "filter: \"sig.Scenario startsWith 'crowdsecurity/'\"\n"
                "remediation:\n"
                "  captcha: true\n"
                "  apply: true\n"
                "  duration: 1h30m\n"
                "outputs:\n"
                "  - plugin: database\n"
                "    store: \"false\"\n"
                "  - plugin: webhook\n"
                "    store: t\n"
                "  - plugin: journal\n"
                "    store: no\n"
                "    comment: extra keys are ignored\n"
                "---\n"
                "---\n"
                "profile: b\n"
                "remediation: {slow: true, captcha: true, duration: 2d}\n"
                "outputs: [{plugin: database}]\n";
        _cleanup_(router_freep) spw_router *r = load_ok(text, three, three_flags, ELEMENTSOF(three));
        route_profile_info info;
        route_result res;
        arena a = ARENA_INIT;
        spw_signal sig = remediation_signal();

        CHECK_EQ(router_n_profiles(r), 2); /* the empty document is skipped */
        CHECK_OK(router_profile_info(r, 0, &info));
        CHECK_EQ(info.backends, WEBHOOK);
        CHECK(!info.api);
        CHECK_OK(router_profile_info(r, 1, &info));
        CHECK_EQ(info.n_filters, 0); /* no filter: every signal */
        route_ok(r, &sig, &a, &res);
        CHECK_EQ(res.n_matches, 2);
        CHECK_EQ(res.backends, WEBHOOK | DB);
        CHECK_EQ(res.n_bans, 2);
        CHECK_STREQ(res.bans[0].measure_type, "captcha");
        CHECK_EQ(res.bans[0].until, T0 + 90 * USEC_PER_MIN);
        CHECK_STREQ(res.bans[1].measure_type, "slow");
        CHECK_EQ(res.bans[1].until, T0 + 2 * USEC_PER_DAY);
        CHECK(res.matches[0].bans == res.bans);
        CHECK(res.matches[1].bans == res.bans + 1);
        arena_deinit(&a);
}

int main(int argc, char **argv) {
        if (argc > 1)
                testdata = argv[1];
        test_v03_defaults();
        test_v1_compat();
        test_v1_walk();
        test_v1_decisions();
        test_v1_other_scopes();
        test_runtime_warnings();
        test_default_duration();
        test_duration_expr();
        test_block_scalar_positions();
        test_line_breaks();
        test_load_errors();
        test_v03_forms();
        return 0;
}
