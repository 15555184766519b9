/* SPDX-License-Identifier: MIT */
/*
 * The filter language: literals, precedence, every operator and helper,
 * every field, missing labels, compile-time and run-time errors with their
 * positions, and "evaluation does not allocate" (counted with a malloc
 * interposer when the build has no AddressSanitizer or ThreadSanitizer,
 * which own malloc).
 */
#include <math.h>
#include <stdint.h>

#include "expr.h"
#include "tests.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HAVE_ASAN 1
#endif

#ifndef HAVE_ASAN
/* Count every allocation of the process (exported so libc's own calls,
 * e.g. inside regexec(), are counted too). */
static size_t n_allocs;
void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
#pragma GCC visibility push(default)
void *malloc(size_t size) {
        n_allocs++;
        return __libc_malloc(size);
}
void *calloc(size_t n, size_t size) {
        n_allocs++;
        return __libc_calloc(n, size);
}
void *realloc(void *p, size_t size) {
        n_allocs++;
        return __libc_realloc(p, size);
}
#pragma GCC visibility pop
#endif

static const spw_kv sample_labels[] = {
        { "remediation", "true" },
        { "scope", "ip" },
        { "service", "ssh" },
        { "x_number", "2.5" },
};

static const spw_source sample_source = {
        .size = sizeof(spw_source),
        .ip = "192.0.2.7",
        .range = "192.0.2.0/24",
        .as_number = "64500",
        .as_org = "Example AS",
        .country = "FR",
        .latitude = 48.85,
        .longitude = 2.35,
};

static spw_signal sample(void) {
        return (spw_signal) {
                .size = sizeof(spw_signal),
                .scenario = "crowdsecurity/ssh-bf",
                .bucket_id = "sunny-flower",
                .alert_message = "192.0.2.7 performed ssh-bf (6 events over 20s)",
                .map_key = "mk",
                .events_count = 6,
                .start_at = INT64_C(1600000000) * 1000000,
                .stop_at = INT64_C(1600000020) * 1000000 + 500000,
                .source = &sample_source,
                .source_ip = "192.0.2.8",
                .source_range = "192.0.0.0/16",
                .source_as_number = "64501",
                .source_as_org = "Flat AS",
                .source_country = "DE",
                .source_latitude = 52.5,
                .source_longitude = 13.4,
                .dest_ip = "203.0.113.1",
                .capacity = 5,
                .leak_speed_ns = INT64_C(10000000000),
                .whitelisted = false,
                .simulation = true,
                .reprocess = true,
                .labels = sample_labels,
                .n_labels = ELEMENTSOF(sample_labels),
        };
}

static expr *compile_ok(const char *src, unsigned env) {
        spw_error err = { 0 };
        expr *e = NULL;
        int r = expr_compile(src, strlen(src), env, NULL, &e, &err);
        if (r < 0) {
                fprintf(stderr, "compiling '%s' failed: %s\n", src, err.msg);
                abort();
        }
        return e;
}

static expr_value eval_ok(expr *e, const spw_signal *sig) {
        spw_error err = { 0 };
        expr_value v;
        int r = expr_eval(e, sig, &v, &err);
        if (r < 0) {
                fprintf(stderr, "evaluating '%s' failed: %s\n", expr_text(e), err.msg);
                abort();
        }
        return v;
}

static void expect_bool(const char *src, const spw_signal *sig, bool want) {
        _cleanup_(expr_freep) expr *e = compile_ok(src, EXPR_ENV_ALL);
        expr_value v = eval_ok(e, sig);
        if (v.type != EXPR_BOOL || v.b != want) {
                char buf[128];
                fprintf(stderr, "'%s': expected %s, got %s\n", src, want ? "true" : "false",
                        expr_value_format(&v, buf, sizeof buf));
                abort();
        }
        CHECK_EQ(expr_eval_bool(e, sig, NULL), want);
}

static void expect_int(const char *src, const spw_signal *sig, int64_t want) {
        _cleanup_(expr_freep) expr *e = compile_ok(src, EXPR_ENV_ALL);
        expr_value v = eval_ok(e, sig);
        CHECK_EQ(expr_result_type(e), EXPR_INT);
        if (v.type != EXPR_INT || v.i != want) {
                fprintf(stderr, "'%s': expected %" PRId64 ", got %" PRId64 "\n", src, want, v.i);
                abort();
        }
}

static void expect_float(const char *src, const spw_signal *sig, double want) {
        _cleanup_(expr_freep) expr *e = compile_ok(src, EXPR_ENV_ALL);
        expr_value v = eval_ok(e, sig);
        CHECK_EQ(expr_result_type(e), EXPR_FLOAT);
        if (v.type != EXPR_FLOAT || fabs(v.f - want) > 1e-9) {
                fprintf(stderr, "'%s': expected %g, got %g\n", src, want, v.f);
                abort();
        }
}

static void expect_str(const char *src, const spw_signal *sig, const char *want) {
        _cleanup_(expr_freep) expr *e = compile_ok(src, EXPR_ENV_ALL);
        expr_value v = eval_ok(e, sig);
        CHECK_EQ(v.type, EXPR_STRING);
        CHECK_STREQ(v.str.ptr, want);
        CHECK_EQ(v.str.len, strlen(want));
}

static void expect_compile_error(const char *src, unsigned env, const char *want) {
        spw_error err = { 0 };
        expr *e = NULL;
        expr_origin o = { .filename = "t.yaml" };
        int r = expr_compile(src, strlen(src), env, &o, &e, &err);
        if (r != -EINVAL) {
                fprintf(stderr, "'%s': expected a compile error \"%s\", got %d\n", src, want, r);
                abort();
        }
        CHECK(!e);
        CHECK_CONTAINS(err.msg, want);
}

static void expect_runtime_error(const char *src, const spw_signal *sig, const char *want) {
        spw_error err = { 0 };
        expr_origin o = { .filename = "t.yaml" };
        _cleanup_(expr_freep) expr *e = NULL;
        expr_value v;

        CHECK_OK(expr_compile(src, strlen(src), EXPR_ENV_ALL, &o, &e, &err));
        CHECK_EQ(expr_eval(e, sig, &v, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, want);
        if (expr_result_type(e) == EXPR_BOOL) {
                memset(&err, 0, sizeof err);
                CHECK_EQ(expr_eval_bool(e, sig, &err), -EINVAL);
                CHECK_CONTAINS(err.msg, want);
        }
}

static void test_literals(const spw_signal *s) {
        expect_int("42", s, 42);
        expect_int("0x1F", s, 31);
        expect_int("1_000_000", s, 1000000);
        expect_int("9223372036854775807", s, INT64_MAX);
        expect_float("1.5", s, 1.5);
        expect_float("2e3", s, 2000);
        expect_float("1.25E-2", s, 0.0125);
        expect_str("'single'", s, "single");
        expect_str("\"double\"", s, "double");
        expect_str("'it\\'s'", s, "it's");
        expect_str("\"a\\\"b\"", s, "a\"b");
        expect_str("'tab\\there\\n'", s, "tab\there\n");
        expect_str("'\\x41\\101\\u00e9\\U0001F600'", s, "AA\xc3\xa9\xf0\x9f\x98\x80");
        expect_str("''", s, "");
        expect_bool("true", s, true);
        expect_bool("false", s, false);
        {
                _cleanup_(expr_freep) expr *e = compile_ok("nil", EXPR_ENV_ALL);
                CHECK_EQ(expr_result_type(e), EXPR_NIL);
                CHECK_EQ(eval_ok(e, s).type, EXPR_NIL);
        }
        {
                _cleanup_(expr_freep) expr *e = compile_ok("[1, 'a', true, 2.5, nil,]", EXPR_ENV_ALL);
                expr_value v = eval_ok(e, s);
                char buf[128];
                CHECK_EQ(v.type, EXPR_LIST);
                CHECK_EQ(v.list.n, 5);
                CHECK_STREQ(expr_value_format(&v, buf, sizeof buf), "[1, \"a\", true, 2.5, nil]");
        }
}

static void test_precedence(const spw_signal *s) {
        expect_bool("1 + 2 * 3 == 7", s, true);
        expect_bool("(1 + 2) * 3 == 9", s, true);
        expect_int("10 - 4 - 3", s, 3);           /* left associative */
        expect_float("2 ** 3 ** 2", s, 512);      /* right associative */
        expect_float("100 / 10 / 5", s, 2);       /* left associative */
        expect_int("-2 * 3", s, -6);
        expect_float("-2 ** 2", s, -4);           /* ** (100) binds tighter than unary minus (90), as in expr 1.17 */
        expect_float("(-2) ** 2", s, 4);
        expect_float("2 ^ 3 ^ 2", s, 512);        /* ^ is ** */
        expect_float("-2 ^ 2", s, -4);
        expect_int("2 * -3 + 1", s, -5);
        expect_int("- - 4", s, 4);
        expect_int("+7", s, 7);
        expect_bool("true || false && false", s, true); /* && binds tighter than || */
        expect_bool("false && true || true", s, true);
        expect_bool("false and true or true", s, true);
        expect_bool("(true || false) && false", s, false);
        /* `not` binds tighter than == (expr's precedence 50 vs 20) */
        expect_bool("not true == false", s, true);
        expect_bool("not false && false", s, false);
        expect_bool("!(1 == 2)", s, true);
        expect_bool("not not true", s, true);
        expect_bool("1 < 2 == true", s, true);
        expect_bool("1 + 2 in [3, 4]", s, true);  /* + before in */
        expect_bool("1 + 1 == 2 && 'a' + 'b' == 'ab'", s, true);
        expect_bool("2 * 3 % 4 == 2", s, true);   /* * and % share a level, left to right */
        expect_bool("sig.Labels.remediation == 'true' && not sig.Whitelisted", s, true);
        expect_bool("((((((((true))))))))", s, true);
}

static void test_operators(const spw_signal *s) {
        /* comparisons */
        expect_bool("1 == 1", s, true);
        expect_bool("1 == 1.0", s, true);
        expect_bool("1 != 2", s, true);
        expect_bool("1.5 != 1.5", s, false);
        expect_bool("'a' == 'a'", s, true);
        expect_bool("'a' != 'b'", s, true);
        expect_bool("true == true", s, true);
        expect_bool("true != false", s, true);
        expect_bool("1 < 2", s, true);
        expect_bool("2 < 1", s, false);
        expect_bool("2 <= 2", s, true);
        expect_bool("3 > 2.5", s, true);
        expect_bool("2 >= 3", s, false);
        expect_bool("'abc' < 'abd'", s, true);
        expect_bool("'ab' < 'abc'", s, true);
        expect_bool("'b' >= 'abc'", s, true);
        expect_bool("'b' <= 'a'", s, false);
        /* logic */
        expect_bool("true && true", s, true);
        expect_bool("true && false", s, false);
        expect_bool("false || true", s, true);
        expect_bool("false || false", s, false);
        expect_bool("true and true", s, true);
        expect_bool("false or true", s, true);
        expect_bool("not false", s, true);
        expect_bool("!true", s, false);
        /* short circuit: the right side would fail (no source) but is never run */
        {
                spw_signal nosrc = *s;
                nosrc.source = NULL;
                expect_bool("false && sig.Source.Country == 'FR'", &nosrc, false);
                expect_bool("true || sig.Source.Country == 'FR'", &nosrc, true);
        }
        /* membership */
        expect_bool("'b' in ['a', 'b']", s, true);
        expect_bool("'c' in ['a', 'b']", s, false);
        expect_bool("'c' not in ['a', 'b']", s, true);
        expect_bool("2 in [1.0, 2.0]", s, true);
        expect_bool("nil in [1, nil]", s, true);
        expect_bool("1 in []", s, false);
        expect_bool("sig.Scenario in ['x', sig.Scenario]", s, true);
        expect_bool("'scope' in sig.Labels", s, true);
        expect_bool("'nope' in sig.Labels", s, false);
        expect_bool("'nope' not in sig.Labels", s, true);
        /* strings */
        expect_bool("sig.Scenario matches '^crowdsecurity/ssh-'", s, true);
        expect_bool("sig.Scenario matches 'http|ftp'", s, false);
        expect_bool("sig.Source_ip matches '^[0-9]+(\\\\.[0-9]+){3}$'", s, true);
        expect_bool("sig.Scenario contains 'ssh'", s, true);
        expect_bool("sig.Scenario contains ''", s, true);
        expect_bool("sig.Scenario contains 'http'", s, false);
        expect_bool("sig.Scenario startsWith 'crowdsecurity/'", s, true);
        expect_bool("sig.Scenario startsWith 'ssh'", s, false);
        expect_bool("sig.Scenario endsWith '-bf'", s, true);
        expect_bool("'a' endsWith 'abc'", s, false);
        /* arithmetic */
        expect_int("7 + 3", s, 10);
        expect_float("7 + 0.5", s, 7.5);
        expect_int("7 - 10", s, -3);
        expect_int("6 * 7", s, 42);
        expect_float("7 / 2", s, 3.5); /* / is always a float division, as in expr */
        expect_int("7 % 3", s, 1);
        expect_int("-7 % 3", s, -1);
        expect_int("7 % -1", s, 0);
        expect_float("2 ** 10", s, 1024);
        expect_float("-1.5", s, -1.5);
        expect_bool("9223372036854775807 + 1 < 0", s, true); /* wraps, as Go's int64 */
        expect_bool("1 / 0 > 1e308", s, true);                 /* float division: +Inf */
        expect_str("'ab' + 'cd' + ''", s, "abcd");
        expect_bool("0.0 / 0 == 0.0 / 0", s, false);          /* NaN */
        expect_bool("0.0 / 0 < 1", s, false);
}

static void test_fields(const spw_signal *s) {
        static const struct {
                const char *src;
                const char *str;
                int64_t i;
                double f;
                int type;
        } cases[] = {
                { "sig.Scenario", "crowdsecurity/ssh-bf", 0, 0, EXPR_STRING },
                { "sig.Bucket_id", "sunny-flower", 0, 0, EXPR_STRING },
                { "sig.Alert_message", "192.0.2.7 performed ssh-bf (6 events over 20s)", 0, 0, EXPR_STRING },
                { "sig.Events_count", NULL, 6, 0, EXPR_INT },
                { "sig.Start_at", NULL, 1600000000, 0, EXPR_INT },
                { "sig.Stop_at", NULL, 1600000020, 0, EXPR_INT },
                { "sig.Source_ip", "192.0.2.8", 0, 0, EXPR_STRING },
                { "sig.Source_range", "192.0.0.0/16", 0, 0, EXPR_STRING },
                { "sig.Source_AutonomousSystemNumber", "64501", 0, 0, EXPR_STRING },
                { "sig.Source_AutonomousSystemOrganization", "Flat AS", 0, 0, EXPR_STRING },
                { "sig.Source_Country", "DE", 0, 0, EXPR_STRING },
                { "sig.Source_Latitude", NULL, 0, 52.5, EXPR_FLOAT },
                { "sig.Source_Longitude", NULL, 0, 13.4, EXPR_FLOAT },
                { "sig.Dest_ip", "203.0.113.1", 0, 0, EXPR_STRING },
                { "sig.Capacity", NULL, 5, 0, EXPR_INT },
                { "sig.Leak_speed", NULL, INT64_C(10000000000), 0, EXPR_INT },
                { "sig.MapKey", "mk", 0, 0, EXPR_STRING },
                { "sig.Source.Ip", "192.0.2.7", 0, 0, EXPR_STRING },
                { "sig.Source.Range", "192.0.2.0/24", 0, 0, EXPR_STRING },
                { "sig.Source.AutonomousSystemNumber", "64500", 0, 0, EXPR_STRING },
                { "sig.Source.AutonomousSystemOrganization", "Example AS", 0, 0, EXPR_STRING },
                { "sig.Source.Country", "FR", 0, 0, EXPR_STRING },
                { "sig.Source.Latitude", NULL, 0, 48.85, EXPR_FLOAT },
                { "sig.Source.Longitude", NULL, 0, 2.35, EXPR_FLOAT },
                { "sig.Labels.remediation", "true", 0, 0, EXPR_STRING },
                { "sig.Labels['scope']", "ip", 0, 0, EXPR_STRING },
                { "sig.Labels[\"ser\" + \"vice\"]", "ssh", 0, 0, EXPR_STRING },
                { "sig[\"Scenario\"]", "crowdsecurity/ssh-bf", 0, 0, EXPR_STRING },
                { "Alert.Scenario", "crowdsecurity/ssh-bf", 0, 0, EXPR_STRING },
                { "Alert.GetScenario()", "crowdsecurity/ssh-bf", 0, 0, EXPR_STRING },
                { "Alert.Message", "192.0.2.7 performed ssh-bf (6 events over 20s)", 0, 0, EXPR_STRING },
                { "Alert.EventsCount", NULL, 6, 0, EXPR_INT },
                { "Alert.Capacity", NULL, 5, 0, EXPR_INT },
                { "Alert.GetScope()", "Ip", 0, 0, EXPR_STRING },
                { "Alert.GetValue()", "192.0.2.7", 0, 0, EXPR_STRING },
                { "Alert.Source.IP", "192.0.2.7", 0, 0, EXPR_STRING },
                { "Alert.Source.Range", "192.0.2.0/24", 0, 0, EXPR_STRING },
                { "Alert.Source.Cn", "FR", 0, 0, EXPR_STRING },
                { "Alert.Source.AsNumber", "64500", 0, 0, EXPR_STRING },
                { "Alert.Source.AsName", "Example AS", 0, 0, EXPR_STRING },
                { "Alert.Source.Latitude", NULL, 0, 48.85, EXPR_FLOAT },
                { "Alert.Source.Longitude", NULL, 0, 2.35, EXPR_FLOAT },
                { "Alert.Source.Scope", "Ip", 0, 0, EXPR_STRING },
                { "Alert.Source.Value", "192.0.2.7", 0, 0, EXPR_STRING },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                if (cases[i].type == EXPR_STRING)
                        expect_str(cases[i].src, s, cases[i].str);
                else if (cases[i].type == EXPR_INT)
                        expect_int(cases[i].src, s, cases[i].i);
                else
                        expect_float(cases[i].src, s, cases[i].f);
        }
        expect_bool("sig.Whitelisted", s, false);
        expect_bool("sig.Simulation", s, true);
        expect_bool("sig.Reprocess", s, true);
        expect_bool("Alert.Remediation", s, true);
        expect_bool("Alert.Simulated", s, true);
        expect_bool("sig.Source != nil", s, true);
        expect_bool("Alert.Source != nil", s, true);

        /* Alert.* reads the flat Source_* fields when there is no source object */
        spw_signal flat = *s;
        flat.source = NULL;
        expect_str("Alert.Source.IP", &flat, "192.0.2.8");
        expect_str("Alert.Source.Cn", &flat, "DE");
        expect_str("Alert.Source.AsNumber", &flat, "64501");
        expect_str("Alert.GetValue()", &flat, "192.0.2.8");
        expect_float("Alert.Source.Latitude", &flat, 52.5);
        expect_bool("sig.Source == nil", &flat, true);
        expect_bool("nil == sig.Source", &flat, true);
        expect_bool("Alert.Source == nil", &flat, false);

        /* scope: Labels.scope range -> "Range", and GetValue() is the range */
        static const spw_kv range_labels[] = { { "remediation", "false" }, { "scope", "range" } };
        spw_signal range = *s;
        range.labels = range_labels;
        range.n_labels = ELEMENTSOF(range_labels);
        expect_str("Alert.GetScope()", &range, "Range");
        expect_str("Alert.GetValue()", &range, "192.0.2.0/24");
        expect_bool("Alert.Remediation", &range, false);
        static const spw_kv other_scope[] = { { "scope", "Country" } };
        range.labels = other_scope;
        range.n_labels = 1;
        expect_str("Alert.GetScope()", &range, "Country");
}

static void test_missing(const spw_signal *s) {
        spw_signal empty = { .size = sizeof(spw_signal) };

        /* a missing label is "" (as in CrowdSec), absent strings are "" */
        expect_bool("sig.Labels.nope == ''", s, true);
        expect_bool("sig.Labels['nope'] == ''", s, true);
        expect_bool("len(sig.Labels.nope) == 0", s, true);
        expect_bool("sig.Labels.remediation != 'true'", &empty, true);
        expect_bool("sig.Labels == nil", &empty, true);
        expect_bool("sig.Labels == nil", s, false);
        expect_int("len(sig.Labels)", &empty, 0);
        expect_int("len(sig.Labels)", s, 4);
        expect_bool("sig.Scenario == ''", &empty, true);
        expect_bool("sig.Scenario == nil", &empty, false); /* a Go string is never nil */
        expect_bool("Alert.Remediation", &empty, false);
        expect_str("Alert.GetScope()", &empty, "Ip");
        expect_str("Alert.GetValue()", &empty, "");
        expect_str("Alert.Source.IP", &empty, "");

        /* more than 8 labels: looked up by binary search */
        static const spw_kv many[] = {
                { "a", "1" }, { "b", "2" }, { "c", "3" }, { "d", "4" }, { "e", "5" }, { "f", "6" },
                { "g", "7" }, { "h", "8" }, { "remediation", "true" }, { "scope", "range" }, { "z", "26" },
        };
        spw_signal lots = *s;
        lots.labels = many;
        lots.n_labels = ELEMENTSOF(many);
        expect_str("sig.Labels.a", &lots, "1");
        expect_str("sig.Labels.h", &lots, "8");
        expect_str("sig.Labels.z", &lots, "26");
        expect_str("sig.Labels.scope", &lots, "range");
        expect_bool("'remediation' in sig.Labels", &lots, true);
        expect_bool("'q' in sig.Labels", &lots, false);
        expect_str("sig.Labels.q", &lots, "");
}

static void test_helpers(const spw_signal *s) {
        expect_bool("IpInRange(sig.Source.Ip, '192.0.2.0/24')", s, true);
        expect_bool("IpInRange(sig.Source.Ip, '198.51.100.0/24')", s, false);
        expect_bool("IpInRange('192.0.2.7', '192.0.2.1/24')", s, true); /* host bits allowed, as Go's ParseCIDR */
        expect_bool("IpInRange('2001:db8::1', '2001:db8::/32')", s, true);
        expect_bool("IpInRange('2001:db9::1', '2001:db8::/32')", s, false);
        expect_bool("IpInRange('192.0.2.7', '::/0')", s, false);        /* IPv4 is not in an IPv6 network */
        expect_bool("IpInRange('not an ip', '0.0.0.0/0')", s, false);
        expect_bool("IpInRange(sig.Source.Ip, sig.Source.Range)", s, true);
        expect_bool("IpInRange(sig.Source.Ip, sig.Source.Ip)", s, false); /* not a CIDR: false, as CrowdSec */
        expect_bool("IpInRange(sig.Source.Ip, sig.Labels.nope)", s, false);
        expect_str("Upper(sig.Source.Country + 'r')", s, "FRR");
        expect_str("Lower('MiXeD 42 é')", s, "mixed 42 é");
        expect_str("Upper(Lower('abc')) + Lower('DEF')", s, "ABCdef");
        expect_float("Atof('1.5')", s, 1.5);
        expect_float("Atof('-2e3')", s, -2000);
        expect_float("Atof(sig.Labels.x_number) * 2", s, 5);
        expect_float("Atof(sig.Labels.nope)", s, 0); /* missing label: "" reads as 0 */
        expect_int("len('héllo')", s, 5);            /* characters, as expr 1.17 (utf8.RuneCountInString) */
        expect_int("len([1, 2, 3])", s, 3);
        expect_int("len(sig.Labels)", s, 4);
        expect_bool("len(sig.Scenario) > 10", s, true);
}

/* Literals as expr 1.17 (CrowdSec's) reads them; each case from expr's
 * documented grammar (Go's rules for numbers and escapes). */
static void test_expr_literals(const spw_signal *s) {
        expect_float(".5", s, 0.5);
        expect_float("-.5", s, -0.5);
        expect_float("1.", s, 1.0);
        expect_float(".5e1", s, 5);
        expect_float("1_000.5", s, 1000.5);
        expect_float("1e-2", s, 0.01);
        expect_bool(".5 + .25 == 0.75", s, true);
        expect_bool(".5 in [0.5, 1]", s, true);
        expect_int("0o17", s, 15);
        expect_int("0O17", s, 15);
        expect_int("0b101", s, 5);
        expect_int("0X1f", s, 31);
        expect_int("012", s, 12); /* a leading 0 is not octal, as Go's ParseInt(s, 10) */
        /* escapes are code points, written as UTF-8 */
        expect_str("'\\xC3'", s, "\xc3\x83");       /* U+00C3, not the byte 0xC3 */
        expect_str("'\\xc3\\xa9'", s, "\xc3\x83\xc2\xa9"); /* two code points, not "é" */
        expect_str("'\\303'", s, "\xc3\x83");       /* octal too */
        expect_str("'\\101\\x41\\u0041\\U00000041'", s, "AAAA");
        expect_str("'\\u00e9'", s, "é");
        expect_str("'\\u{1F600}' + '\\u{41}'", s, "\xf0\x9f\x98\x80" "A");
        expect_str("'\\U0001F600'", s, "\xf0\x9f\x98\x80");
        expect_str("'\\ud800'", s, "\xef\xbf\xbd"); /* a surrogate is U+FFFD, as Go's utf8.EncodeRune */
        expect_str("\"it's \\\"x\\\"\"", s, "it's \"x\"");
        expect_str("'a\\\\b'", s, "a\\b");
        expect_str("'\\a\\b\\f\\v'", s, "\a\b\f\v");
        expect_str("'a\rb'", s, "a\nb");            /* a raw CR reads as LF */
        expect_str("'\xff'", s, "\xef\xbf\xbd");    /* invalid UTF-8 reads as U+FFFD */
        expect_str("'é♥'", s, "é♥");
        /* `raw` strings: no escapes, newlines allowed, `` is a backquote */
        expect_str("`a\\nb`", s, "a\\nb");
        expect_str("`a``b`", s, "a`b");
        expect_str("`two\nlines`", s, "two\nlines");
        /* comments and white space */
        expect_int("1 + /* two */ 2 // and the rest\n", s, 3);
        expect_int("1 +\n// a comment line\n2", s, 3);
        expect_int("1\xc2\xa0+\xe3\x80\x80" "2", s, 3); /* NBSP and ideographic space */
        expect_bool("sig.Scenario contains 'ssh' && /* ok */ true", s, true);
        /* len() counts characters */
        expect_int("len('♥♥')", s, 2);
        expect_int("len('\\xC3')", s, 1);
        spw_kv bad_utf8[] = { { "v", "a\xff\xfe" "b\xc3\xa9" } };
        spw_signal b = *s;
        b.labels = bad_utf8;
        b.n_labels = 1;
        expect_int("len(sig.Labels.v)", &b, 5); /* an invalid byte counts as one, as utf8.RuneCountInString */
        /* negated operators of expr 1.17 */
        expect_bool("sig.Scenario not contains 'http'", s, true);
        expect_bool("sig.Scenario not matches '^crowdsec'", s, false);
        expect_bool("sig.Scenario not startsWith 'x'", s, true);
        expect_bool("sig.Scenario not endsWith '-bf'", s, false);
        expect_bool("not (sig.Scenario not contains 'ssh')", s, true);
        expect_bool("'a' not in ['b'] && 1 + 1 == 2", s, true);

        /* errors */
        expect_compile_error("'a\\\"b'", EXPR_ENV_ALL, "1:3: '\\\"' is not an escape in a '...' string");
        expect_compile_error("\"a\\'b\"", EXPR_ENV_ALL, "is not an escape in a \"...\" string");
        expect_compile_error("'a\r\nb'", EXPR_ENV_ALL, "unterminated string"); /* expr ends a string at LF, CR or not */
        expect_compile_error("'a\nb'", EXPR_ENV_ALL, "1:1: unterminated string (missing closing ' before the end of the line");
        expect_compile_error("'\\400'", EXPR_ENV_ALL, "octal escape \\400 is larger than \\377");
        expect_compile_error("'\\18'", EXPR_ENV_ALL, "octal escape needs three digits");
        expect_compile_error("'\\u{}'", EXPR_ENV_ALL, "escape \\u{...} needs 1 to 6 hexadecimal digits");
        expect_compile_error("'\\u{1234567}'", EXPR_ENV_ALL, "needs 1 to 6 hexadecimal digits");
        expect_compile_error("'\\U00110000'", EXPR_ENV_ALL, "U+110000 is beyond the last Unicode code point");
        expect_compile_error("'\\X41'", EXPR_ENV_ALL, "unknown escape sequence '\\X'");
        expect_compile_error("'\\?'", EXPR_ENV_ALL, "unknown escape sequence '\\?'");
        expect_compile_error("'\\u0000'", EXPR_ENV_ALL, "NUL character in a string");
        expect_compile_error("'\\000'", EXPR_ENV_ALL, "NUL character in a string");
        expect_compile_error("`abc", EXPR_ENV_ALL, "unterminated raw string");
        expect_compile_error("1 /* never closed", EXPR_ENV_ALL, "1:3: unclosed comment");
        expect_compile_error("1e", EXPR_ENV_ALL, "an exponent needs digits");
        expect_compile_error("0b", EXPR_ENV_ALL, "binary number without digits");
        expect_compile_error("0b102", EXPR_ENV_ALL, "unexpected '2' after a number");
        expect_compile_error("0o8", EXPR_ENV_ALL, "octal number without digits");
        expect_compile_error("1.x", EXPR_ENV_ALL, "1:3: unexpected 'x' after a number");
        expect_compile_error("0x8000000000000000", EXPR_ENV_ALL, "integer 0x8000000000000000 is out of range");
        expect_compile_error("10 % 0", EXPR_ENV_ALL, "1:6: integer divide by zero (% 0)");
}

/* What stays unsupported is refused with a message naming the construct. */
static void test_unsupported(void) {
        expect_compile_error("'abc'[1:3]", EXPR_ENV_ALL, "1:6: slicing (x[a:b]) is not supported");
        expect_compile_error("sig.Scenario[:3] == 'cro'", EXPR_ENV_ALL, "slicing (x[a:b]) is not supported");
        expect_compile_error("sig.Scenario[1:]", EXPR_ENV_ALL, "slicing (x[a:b]) is not supported");
        expect_compile_error("all([1, 2], {# > 0})", EXPR_ENV_ALL, "1:13: closures ({...} as the predicate of all()) are not supported");
        expect_compile_error("filter([1, 2], # > 0)", EXPR_ENV_ALL, "closure variables (#, #index, #acc) are not supported");
        expect_compile_error("any([1], .x > 0)", EXPR_ENV_ALL, "closures (the predicate of any()) are not supported");
        expect_compile_error("count([1])", EXPR_ENV_ALL, "count() takes a closure, and closures are not supported");
        expect_compile_error("{'a': 1}", EXPR_ENV_ALL, "1:1: map literals ({key: value}) are not supported");
        expect_compile_error("len({a: 1})", EXPR_ENV_ALL, "map literals ({key: value}) are not supported");
        expect_compile_error("true ? 1 : 2", EXPR_ENV_ALL, "1:6: the conditional operator (a ? b : c) is not supported");
        expect_compile_error("sig.Labels.x ?? 'y'", EXPR_ENV_ALL, "the nil-coalescing operator (a ?? b) is not supported");
        expect_compile_error("sig.Source?.Ip", EXPR_ENV_ALL, "optional chaining (a?.b) is not supported");
        expect_compile_error("let x = 1; x", EXPR_ENV_ALL, "variables (let x = ...; ...) are not supported");
        expect_compile_error("if true { 1 } else { 2 }", EXPR_ENV_ALL, "if/else expressions are not supported");
        expect_compile_error("1; 2", EXPR_ENV_ALL, "sequences (a; b) are not supported");
        expect_compile_error("1 < 2 < 3", EXPR_ENV_ALL, "cannot compare bool with int using <");
        expect_compile_error("♥", EXPR_ENV_ALL, "1:1: unexpected character U+2665 '♥'");
        expect_compile_error("sig.Scenario == 'x' ♥", EXPR_ENV_ALL, "1:21: unexpected character U+2665 '♥'");
        expect_compile_error("é", EXPR_ENV_ALL, "unexpected character U+00E9 'é' (names are ASCII; text goes in quotes)");
        expect_compile_error("1 \x01", EXPR_ENV_ALL, "unexpected character U+0001");
        expect_compile_error("1 \xff", EXPR_ENV_ALL, "unexpected byte 0xff (not UTF-8)");
        /* helpers */
        expect_compile_error("CrowdsecCTI(Alert.GetValue()).GetMaliciousnessScore() > 0.5", EXPR_ENV_ALERT,
                             "1:1: CrowdsecCTI() needs CrowdSec's online CTI service");
        expect_compile_error("GetDecisionsCount(Alert.GetValue()) > 2", EXPR_ENV_ALERT,
                             "GetDecisionsCount() needs the ban history: it counts the bans a target has had");
        expect_compile_error("GetDecisionsSinceCount(Alert.GetValue(), '24h') > 2", EXPR_ENV_ALERT,
                             "GetDecisionsSinceCount() needs the ban history");
        expect_compile_error("GetActiveDecisionsCount(Alert.GetValue()) > 2", EXPR_ENV_ALERT,
                             "GetActiveDecisionsCount() is not yet supported");
        expect_compile_error("ParseUri('x') == nil", EXPR_ENV_ALL,
                             "ParseUri() is one of CrowdSec's helpers that Spillway does not provide (available: len, "
                             "Upper, Lower, Atof, IpInRange, Sprintf)");
        expect_compile_error("upper('x') == 'X'", EXPR_ENV_ALL, "upper() is one of expr's builtins that Spillway does not provide");
        expect_compile_error("Frobnicate(1)", EXPR_ENV_ALL, "unknown function 'Frobnicate' (available: len, Upper, Lower, Atof, IpInRange, Sprintf)");
}

static void test_sprintf(const spw_signal *s) {
        expect_str("Sprintf('%dh', (2 + 1) * 4)", s, "12h");
        expect_str("Sprintf('%s-%d', sig.Source.Country, sig.Events_count)", s, "FR-6");
        expect_str("Sprintf('plain')", s, "plain");
        expect_str("Sprintf('100%%')", s, "100%");
        expect_str("Sprintf('%v %v %v %v %v', 1, 'a', true, nil, 2.5)", s, "1 a true <nil> 2.5");
        /* %v and %g of floats: the shortest digits, %e form from 1e6 and below 1e-4 */
        expect_str("Sprintf('%v %v %v %v %v', 0.1, 1000000.0, 123456.0, 0.00001, 1.0)", s, "0.1 1e+06 123456 1e-05 1");
        expect_str("Sprintf('%v %g %G', 1.23456789, 1e21, 1.5e-7)", s, "1.23456789 1e+21 1.5E-07");
        expect_str("Sprintf('%v %v %v', 1 / 0, -1 / 0, 0.0 / 0)", s, "+Inf -Inf NaN");
        expect_str("Sprintf('%f %.2f %e %.1E', 1.5, 3.14159, 1500.0, 0.25)", s, "1.500000 3.14 1.500000e+03 2.5E-01");
        expect_str("Sprintf('%5d|%-5d|%05d|%+d|% d', 42, 42, -42, 42, 42)", s, "   42|42   |-0042|+42| 42");
        expect_str("Sprintf('%x %X %#x %o %#o %b %x', 255, 255, 255, 8, 8, 5, -255)", s, "ff FF 0xff 10 010 101 -ff");
        expect_str("Sprintf('%.3d|%8.3f|%-8.2f|', 7, 2.5, 2.5)", s, "007|   2.500|2.50    |");
        expect_str("Sprintf('%q %x %.2s %5s|%-4s|', 'a\"b\\n', 'hi', '♥♥♥', 'ab', 'c')", s, "\"a\\\"b\\n\" 6869 ♥♥    ab|c   |");
        expect_str("Sprintf('%t %v %c %T %T', false, true, 9829, 1, 'x')", s, "false true ♥ int string");
        /* Go's way of reporting mistakes, not an error */
        expect_str("Sprintf('%d', 'abc')", s, "%!d(string=abc)");
        expect_str("Sprintf('%s', 5)", s, "%!s(int=5)");
        expect_str("Sprintf('%d', 1.5)", s, "%!d(float64=1.5)");
        expect_str("Sprintf('%d', nil)", s, "%!d(<nil>)");
        expect_str("Sprintf('%d %d', 1)", s, "1 %!d(MISSING)");
        expect_str("Sprintf('%d', 1, 'x', 2.5)", s, "1%!(EXTRA string=x, float64=2.5)");
        expect_str("Sprintf('50%')", s, "50%!(NOVERB)");
        expect_str("Sprintf('%z', 1)", s, "%!z(int=1)");
        expect_str("Upper(Sprintf('%s', 'ab')) + Sprintf('%d', 1)", s, "AB1");
        {
                /* long precisions are written in full, or do not fit: never cut */
                _cleanup_(expr_freep) expr *e = compile_ok("Sprintf('%.200b|%.320f', -1, 1e308)", EXPR_ENV_ALL);
                expr_value v = eval_ok(e, s);
                CHECK_EQ(v.str.len, 1 + 200 + 1 + 309 + 1 + 320);
                CHECK(v.str.ptr[0] == '-' && v.str.ptr[200] == '1' && v.str.ptr[201] == '|');
        }
        expect_runtime_error("Sprintf('%.5000d', 1) == ''", s, "Sprintf(): the result does not fit");
        expect_runtime_error("Sprintf('%5000d', 1) == ''", s, "Sprintf(): the result does not fit");
        expect_compile_error("Sprintf()", EXPR_ENV_ALL, "Sprintf() takes at least 1 argument, got 0");
        expect_compile_error("Sprintf(1)", EXPR_ENV_ALL, "1:9: Sprintf() needs a format string first, not int");
        expect_compile_error("Sprintf('%v', [1])", EXPR_ENV_ALL, "Sprintf() formats numbers, strings, booleans and nil, not list (argument 2)");
        expect_compile_error("Sprintf('%v', sig.Labels)", EXPR_ENV_ALL, "not map (argument 2)");
        {
                char *huge = malloc(3000);
                CHECK(huge);
                memset(huge, 'a', 2999);
                huge[2999] = 0;
                spw_kv hl[] = { { "big", huge } };
                spw_signal h = *s;
                h.labels = hl;
                h.n_labels = 1;
                expect_runtime_error("Sprintf('%s%s', sig.Labels.big, sig.Labels.big) == ''", &h,
                                     "Sprintf(): the result does not fit the 4096-byte scratch buffer");
                free(huge);
        }
}

/* The ban-history hook: the helpers compile only with EXPR_ENV_HISTORY and
 * ask the caller's callback (the daemon has none yet: see README.md). */
typedef struct fake_history {
        const char *value;
        int64_t since;
        int calls;
        int fail;
} fake_history;

static int fake_count(void *userdata, const char *value, int64_t since, uint64_t *count) {
        fake_history *h = userdata;
        h->calls++;
        h->value = value;
        h->since = since;
        if (h->fail)
                return -EIO;
        *count = since ? 1 : 2;
        return 0;
}

static void test_history(const spw_signal *s) {
        const char *src = "Sprintf('%dh', (GetDecisionsCount(Alert.GetValue()) + 1) * 4)";
        fake_history h = { 0 };
        expr_context ctx = { .now = INT64_C(1700000000) * 1000000, .history = fake_count, .history_userdata = &h };
        spw_error err = { 0 };
        expr_value v;
        expr *e = NULL;

        CHECK_OK(expr_compile(src, strlen(src), EXPR_ENV_ALERT | EXPR_ENV_HISTORY, NULL, &e, &err));
        CHECK_OK(expr_eval_in(e, s, &ctx, &v, &err));
        CHECK_STREQ(v.str.ptr, "12h");
        CHECK_EQ(h.calls, 1);
        CHECK_STREQ(h.value, "192.0.2.7");
        CHECK_EQ(h.since, 0);
        /* without a callback (expr_eval) it is a run-time error, never a made-up 0 */
        CHECK_EQ(expr_eval(e, s, &v, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "GetDecisionsCount(): no ban history is available here");
        h.fail = 1;
        CHECK_EQ(expr_eval_in(e, s, &ctx, &v, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "GetDecisionsCount(): the ban history could not be read");
        h.fail = 0;
        e = expr_free(e);

        src = "GetDecisionsSinceCount(Alert.GetValue(), '24h')";
        CHECK_OK(expr_compile(src, strlen(src), EXPR_ENV_ALERT | EXPR_ENV_HISTORY, NULL, &e, &err));
        CHECK_OK(expr_eval_in(e, s, &ctx, &v, &err));
        CHECK_EQ(v.i, 1);
        CHECK_EQ(h.since, ctx.now - INT64_C(24) * 3600 * 1000000);
        e = expr_free(e);
        src = "GetDecisionsSinceCount(Alert.GetValue(), Alert.Source.Cn)";
        CHECK_OK(expr_compile(src, strlen(src), EXPR_ENV_ALERT | EXPR_ENV_HISTORY, NULL, &e, &err));
        CHECK_EQ(expr_eval_in(e, s, &ctx, &v, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "GetDecisionsSinceCount(): \"FR\" is not a duration");
        e = expr_free(e);
        expect_compile_error("GetDecisionsSinceCount('1.2.3.4', 'soon')", EXPR_ENV_ALERT | EXPR_ENV_HISTORY,
                             "GetDecisionsSinceCount(): 'soon' is not a duration");
        expect_compile_error("GetDecisionsCount(1)", EXPR_ENV_ALERT | EXPR_ENV_HISTORY, "argument 1 is int");
}

static void test_compile_errors(void) {
        /* positions are line:column of the offending token */
        expect_compile_error("sig.Labels.remediation == 1", EXPR_ENV_ALL,
                             "t.yaml:1:24: cannot compare string with int using ==");
        expect_compile_error("sig.Scenari == 'x'", EXPR_ENV_ALL,
                             "t.yaml:1:5: unknown field 'Scenari' of sig; did you mean 'Scenario'?");
        expect_compile_error("sig.Source.Cuntry", EXPR_ENV_ALL, "1:12: unknown field 'Cuntry' of sig.Source; did you mean 'Country'?");
        expect_compile_error("sig.scenario", EXPR_ENV_ALL, "did you mean 'Scenario'?");
        expect_compile_error("sig.Zzzzzzzzzzz", EXPR_ENV_ALL, "unknown field 'Zzzzzzzzzzz' of sig (known: Scenario, ");
        expect_compile_error("Alert.Source.Ip", EXPR_ENV_ALL, "did you mean 'IP'?");
        expect_compile_error("si.Scenario", EXPR_ENV_ALL, "1:1: unknown name 'si'; did you mean 'sig'?");
        expect_compile_error("alert.GetScope()", EXPR_ENV_ALL, "unknown name 'alert'; did you mean 'Alert'?");
        expect_compile_error("foo", EXPR_ENV_ALL, "unknown name 'foo' (expressions start from sig or Alert)");
        expect_compile_error("Alert.GetScope() == 'Ip'", EXPR_ENV_SIG, "1:1: unknown name 'Alert' (v0.3 profile filters are written over sig");
        expect_compile_error("sig.Scenario == 'x'", EXPR_ENV_ALERT, "unknown name 'sig' (v1 profile filters are written over Alert");
        expect_compile_error("Alert.GetScope == 'Ip'", EXPR_ENV_ALL, "1:7: Alert.GetScope is a method: call it as Alert.GetScope()");
        expect_compile_error("Alert.GetScope(1)", EXPR_ENV_ALL, "GetScope() takes no arguments");
        expect_compile_error("sig.Scenario()", EXPR_ENV_ALL, "sig.Scenario is a field, not a method");
        expect_compile_error("sig.Labels.x()", EXPR_ENV_ALL, "is a label, not a method");
        expect_compile_error("Uper(sig.Scenario)", EXPR_ENV_ALL, "1:1: unknown function 'Uper'; did you mean 'Upper'?");
        expect_compile_error("Frobnicate(1)", EXPR_ENV_ALL, "unknown function 'Frobnicate' (available: len, Upper");
        expect_compile_error("len", EXPR_ENV_ALL, "len is a function: call it as len(...)");
        expect_compile_error("len(1, 2)", EXPR_ENV_ALL, "len() takes 1 argument, got 2");
        expect_compile_error("len(1)", EXPR_ENV_ALL, "1:5: len() needs a string, a list or sig.Labels, not int");
        expect_compile_error("Upper(1)", EXPR_ENV_ALL, "Upper() needs a string, not int");
        expect_compile_error("IpInRange(sig.Source_ip, '10.0.0.0')", EXPR_ENV_ALL,
                             "1:26: IpInRange(): '10.0.0.0' is not a CIDR range");
        expect_compile_error("IpInRange(sig.Source_ip, 'garbage/8')", EXPR_ENV_ALL, "is not a CIDR range");
        expect_compile_error("IpInRange(1, '10.0.0.0/8')", EXPR_ENV_ALL, "argument 1 is int");
        expect_compile_error("(1 + 2", EXPR_ENV_ALL, "1:7: expected ')' to close the one at 1:1, got end of expression");
        expect_compile_error("[1, 2", EXPR_ENV_ALL, "expected ',' or ']'");
        expect_compile_error("1 +", EXPR_ENV_ALL, "1:4: unexpected end of expression (expected a value)");
        expect_compile_error("1 2", EXPR_ENV_ALL, "1:3: unexpected '2' after the end of the expression");
        expect_compile_error("", EXPR_ENV_ALL, "1:1: empty expression");
        expect_compile_error("   ", EXPR_ENV_ALL, "empty expression");
        expect_compile_error("'abc", EXPR_ENV_ALL, "1:1: unterminated string (missing closing ')");
        expect_compile_error("'a\\qb'", EXPR_ENV_ALL, "1:3: unknown escape sequence '\\q'");
        expect_compile_error("'\\x4'", EXPR_ENV_ALL, "needs 2 hexadecimal digits");
        expect_compile_error("'\\x00'", EXPR_ENV_ALL, "NUL character in a string");
        expect_compile_error("1 = 1", EXPR_ENV_ALL, "1:3: unexpected '=' (use == to compare)");
        expect_compile_error("true & false", EXPR_ENV_ALL, "unexpected '&' (use && or and)");
        expect_compile_error("true | false", EXPR_ENV_ALL, "1:6: the pipe operator (a | f()) is not supported");
        expect_compile_error("true ? 1 : 2", EXPR_ENV_ALL, "conditional operator (a ? b : c) is not supported");
        expect_compile_error("1..3", EXPR_ENV_ALL, "1:2: ranges (a..b) are not supported");
        expect_compile_error("1 @ 2", EXPR_ENV_ALL, "1:3: unexpected character '@'");
        expect_compile_error("9223372036854775808", EXPR_ENV_ALL, "integer 9223372036854775808 is out of range");
        expect_compile_error("12abc", EXPR_ENV_ALL, "unexpected 'a' after a number");
        expect_compile_error("0x", EXPR_ENV_ALL, "hexadecimal number without digits");
        expect_compile_error("sig.", EXPR_ENV_ALL, "expected a field name after '.', got end of expression");
        expect_compile_error("1 not 2", EXPR_ENV_ALL, "1:7: expected in, matches, contains, startsWith or endsWith after 'not', got '2'");
        /* types */
        expect_compile_error("not 1", EXPR_ENV_ALL, "1:1: 'not' needs a boolean, not int");
        expect_compile_error("!'x'", EXPR_ENV_ALL, "'!' needs a boolean, not string");
        expect_compile_error("1 && true", EXPR_ENV_ALL, "1:3: '&&' needs booleans on both sides, got int and bool");
        expect_compile_error("true and 'x'", EXPR_ENV_ALL, "'and' needs booleans on both sides");
        expect_compile_error("'a' < 1", EXPR_ENV_ALL, "cannot compare string with int using <");
        expect_compile_error("true < false", EXPR_ENV_ALL, "cannot compare bool with bool using <");
        expect_compile_error("sig.Source == sig.Source", EXPR_ENV_ALL, "cannot compare object with object");
        expect_compile_error("[1] == [1]", EXPR_ENV_ALL, "cannot compare list with list");
        expect_compile_error("1 in sig.Labels", EXPR_ENV_ALL, "label names are strings: cannot look for int in sig.Labels");
        expect_compile_error("1 in ['a']", EXPR_ENV_ALL, "1:7: cannot compare int with string (item 1 of the list after in)");
        expect_compile_error("1 in 'abc'", EXPR_ENV_ALL, "'in' needs a list or sig.Labels on its right, not string");
        expect_compile_error("[[1]]", EXPR_ENV_ALL, "a list item must be a number, a string, a boolean or nil, not list");
        expect_compile_error("-'a'", EXPR_ENV_ALL, "unary - needs a number, not string");
        expect_compile_error("'a' - 'b'", EXPR_ENV_ALL, "cannot apply - to string and string");
        expect_compile_error("'a' + 1", EXPR_ENV_ALL, "(+ needs two numbers or two strings)");
        expect_compile_error("1.5 % 2", EXPR_ENV_ALL, "% needs two integers, got float and int");
        expect_compile_error("sig.Scenario contains 1", EXPR_ENV_ALL, "'contains' needs strings on both sides");
        expect_compile_error("sig", EXPR_ENV_ALL, "sig is the whole signal; use one of its fields, such as sig.Scenario");
        expect_compile_error("Alert", EXPR_ENV_ALL, "Alert is the whole alert");
        expect_compile_error("sig.Labels.a.b", EXPR_ENV_ALL, "cannot read field 'b' of a string");
        expect_compile_error("sig.Labels[1]", EXPR_ENV_ALL, "a label name must be a string, not int");
        expect_compile_error("sig[sig.Scenario]", EXPR_ENV_ALL, "sig can only be indexed with a quoted field name");
        expect_compile_error("[1, 2][0]", EXPR_ENV_ALL, "indexing lists is not supported");
        expect_compile_error("'abc'[0]", EXPR_ENV_ALL, "cannot index a string");
        expect_compile_error("(1)(2)", EXPR_ENV_ALL, "only functions and methods can be called");
        /* matches: quoted patterns only, compiled at load; errors point into the pattern */
        expect_compile_error("sig.Scenario matches sig.Bucket_id", EXPR_ENV_ALL,
                             "1:22: the pattern after 'matches' must be a quoted string");
        expect_compile_error("sig.Scenario matches '('", EXPR_ENV_ALL, "1:23: matches: missing ) to close the group");
        expect_compile_error("sig.Scenario matches 'ab[c'", EXPR_ENV_ALL, "1:25: matches: missing ] to close the bracket");
        expect_compile_error("sig.Scenario matches 'a\\\\.b)'", EXPR_ENV_ALL, "1:28: matches: unmatched )");
        expect_compile_error("sig.Scenario matches '(?i)ssh'", EXPR_ENV_ALL,
                             "1:23: matches: (?...) flags and named groups are not supported");
        expect_compile_error("sig.Scenario matches '^a/+++++++++++++++++++'", EXPR_ENV_ALL,
                             "1:27: matches: a repetition operator follows another one");
        expect_compile_error("sig.Scenario matches '(a)\\\\1'", EXPR_ENV_ALL, "back-references (\\1 ... \\9) are not supported");
        expect_compile_error("sig.Scenario matches '((a{100}){100}){100}'", EXPR_ENV_ALL,
                             "matches: the pattern is too complex (its repetitions expand to more than 10000 states)");
        expect_compile_error("sig.Scenario matches '((((((((((((((((((((((((((((((((((a))))))))))))))))))))))))))))))))))'",
                             EXPR_ENV_ALL, "groups nested too deeply (more than 32)");
        {
                char buf[5000] = "sig.Scenario matches '";
                size_t n = strlen(buf);
                memset(buf + n, 'a', 4100);
                strcpy(buf + n + 4100, "'");
                expect_compile_error(buf, EXPR_ENV_ALL, "the pattern is longer than 4096 bytes");
        }
        /* the RE2 escapes CrowdSec users write work, and lazy quantifiers are accepted */
        spw_signal none = { .size = sizeof(spw_signal) };
        expect_bool("'ssh 22' matches '\\\\w+\\\\s\\\\d{2}$' && 'x.y' matches 'x\\\\.y' && !('xzy' matches 'x\\\\.y')", &none, true);
        expect_bool("'192.0.2.7' matches '^[0-9]{1,3}([.][0-9]{1,3}){3}$'", &none, true);
        expect_bool("'a{b' matches 'a{b' && 'x]' matches '[]x]+' && 'ab' matches '(a|b)+'", &none, true);
        expect_bool("'a:b' matches '^[[:alpha:]]+:[[:alpha:]]$' && 'q' matches '(a+|q)?' && 'aab' matches 'a.*?b'", &none, true);
}

static void test_positions(void) {
        spw_error err = { 0 };
        expr *e = NULL;

        /* an expression inside a YAML scalar: errors point into the file */
        expr_origin o = { .filename = "profiles.yaml", .context = "filter", .line = 3, .column = 10 };
        const char *src = "sig.Scenario == 1";
        CHECK_EQ(expr_compile(src, strlen(src), EXPR_ENV_SIG, &o, &e, &err), -EINVAL);
        CHECK_STREQ(err.msg, "profiles.yaml:3:23: filter: cannot compare string with int using ==");

        /* lines after the first start at the continuation column (block scalars) */
        o = (expr_origin) { .filename = "p.yaml", .line = 5, .column = 3, .continuation_column = 3 };
        src = "sig.Scenario == 'a' &&\nsig.Whitelistd"; /* YAML removed the block's indentation */
        CHECK_EQ(expr_compile(src, strlen(src), EXPR_ENV_SIG, &o, &e, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "p.yaml:6:7: unknown field 'Whitelistd' of sig; did you mean 'Whitelisted'?");

        /* columns count characters, not bytes */
        src = "'é' == sig.Nope";
        CHECK_EQ(expr_compile(src, strlen(src), EXPR_ENV_SIG, NULL, &e, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "<expr>:1:12: unknown field 'Nope'");

        /* a NUL byte, an over-long text, too much nesting */
        CHECK_EQ(expr_compile("true\0 || false", 14, EXPR_ENV_ALL, NULL, &e, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "1:5: NUL byte in the expression");
        char *big = malloc(EXPR_MAX_LENGTH + 2);
        CHECK(big);
        memset(big, ' ', EXPR_MAX_LENGTH + 1);
        big[0] = '1';
        big[EXPR_MAX_LENGTH + 1] = 0;
        CHECK_EQ(expr_compile(big, EXPR_MAX_LENGTH + 1, EXPR_ENV_ALL, NULL, &e, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "expression longer than 65536 bytes");
        size_t n = 0;
        for (int i = 0; i < 600; i++)
                big[n++] = '(';
        big[n++] = '1';
        for (int i = 0; i < 600; i++)
                big[n++] = ')';
        CHECK_EQ(expr_compile(big, n, EXPR_ENV_ALL, NULL, &e, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "nested too deeply");
        n = 0;
        for (int i = 0; i < 2000; i++) {
                memcpy(big + n, "1+", 2);
                n += 2;
        }
        big[n++] = '1';
        CHECK_EQ(expr_compile(big, n, EXPR_ENV_ALL, NULL, &e, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "nested too deeply");
        /* a long flat list is fine: its depth is 2 */
        n = 0;
        big[n++] = '0';
        memcpy(big + n, " in [", 5);
        n += 5;
        for (int i = 0; i < 3000; i++)
                n += (size_t) sprintf(big + n, "%d,", i);
        big[n++] = ']';
        CHECK_OK(expr_compile(big, n, EXPR_ENV_ALL, NULL, &e, &err));
        CHECK_EQ(expr_stack_size(e), 3001);
        spw_signal s = sample();
        CHECK_EQ(expr_eval_bool(e, &s, NULL), 1);
        e = expr_free(e);
        free(big);
}

static void test_runtime_errors(const spw_signal *s) {
        spw_signal nosrc = *s;
        nosrc.source = NULL;

        /* sig.Source is a pointer in CrowdSec: nil without a source object */
        expect_runtime_error("sig.Labels.remediation == 'true' && sig.Source.Country == 'FR'", &nosrc,
                             "t.yaml:1:37: sig.Source is nil (this signal has no \"source\" object)");
        expect_runtime_error("sig.Source.Ip", &nosrc, "1:1: sig.Source is nil");

        static const spw_kv bad[] = { { "n", "abc" }, { "z", " 1" } };
        spw_signal b = *s;
        b.labels = bad;
        b.n_labels = ELEMENTSOF(bad);
        expect_runtime_error("Atof(sig.Labels.n) > 1", &b, "1:1: Atof(): \"abc\" is not a number");
        expect_runtime_error("Atof(sig.Labels.z) > 1", &b, "is not a number");

        spw_signal zero = *s;
        zero.events_count = 0;
        expect_runtime_error("10 % sig.Events_count == 0", &zero, "1:4: integer division by zero in %");

        /* computed strings must fit the per-expression scratch buffer */
        char *huge = malloc(EXPR_SCRATCH_SIZE + 10);
        CHECK(huge);
        memset(huge, 'a', EXPR_SCRATCH_SIZE + 9);
        huge[EXPR_SCRATCH_SIZE + 9] = 0;
        spw_kv hl[] = { { "big", huge } };
        spw_signal h = *s;
        h.labels = hl;
        h.n_labels = 1;
        expect_runtime_error("Upper(sig.Labels.big) == ''", &h, "Upper(): the string (4105 bytes) does not fit the 4096-byte scratch buffer");
        expect_runtime_error("sig.Labels.big + 'x' == ''", &h, "does not fit the 4096-byte scratch buffer");
        huge[3000] = 0; /* 3000 bytes fit once, not twice */
        char *upper = strdup(huge);
        CHECK(upper);
        for (char *p = upper; *p; p++)
                *p = 'A';
        expect_str("Upper(sig.Labels.big)", &h, upper);
        free(upper);
        expect_runtime_error("Upper(sig.Labels.big) + Upper(sig.Labels.big) == ''", &h, "does not fit");
        free(huge);

        /* a search that would take too long is a run-time error, not a stall */
        char *long_label = malloc(1 << 20);
        CHECK(long_label);
        memset(long_label, 'a', (1 << 20) - 1);
        long_label[(1 << 20) - 1] = 0;
        spw_kv ll[] = { { "big", long_label } };
        h.labels = ll;
        expect_runtime_error("sig.Labels.big matches '(.*){1,100}b'", &h,
                             "1:16: matches: the subject (1048575 bytes) needs more than 8388608 steps with this pattern");
        expect_bool("sig.Labels.big matches 'b'", &h, false); /* a simple pattern is fine */
        free(long_label);

        /* expr_eval_bool on a non-boolean expression */
        _cleanup_(expr_freep) expr *e = compile_ok("1 + 1", EXPR_ENV_ALL);
        spw_error err = { 0 };
        CHECK_EQ(expr_eval_bool(e, s, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "the expression is int, not a boolean");
}

static void test_scratch_reset(const spw_signal *s) {
        /* the scratch buffer is reset by each evaluation: many runs never exhaust it */
        _cleanup_(expr_freep) expr *e = compile_ok("Upper(sig.Scenario) == 'CROWDSECURITY/SSH-BF'", EXPR_ENV_ALL);
        for (int i = 0; i < 1000; i++)
                CHECK_EQ(expr_eval_bool(e, s, NULL), 1);
}

static void test_stack_size(void) {
        static const struct {
                const char *src;
                size_t depth;
        } cases[] = {
                { "true", 1 },
                { "1 + 2", 2 },
                { "1 + (2 + (3 + 4))", 4 },
                { "((1 + 2) + 3) + 4", 2 },
                { "1 in [1, 2, 3]", 4 },
                { "[1, 2]", 3 },
                { "true && (false || true)", 1 }, /* a jump pops or keeps: one slot */
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_(expr_freep) expr *e = compile_ok(cases[i].src, EXPR_ENV_ALL);
                CHECK_EQ(expr_stack_size(e), cases[i].depth);
        }
}

static void test_no_allocation(const spw_signal *s) {
#ifdef HAVE_ASAN
        (void) s;
        printf("# no-allocation check skipped: AddressSanitizer owns malloc\n");
#else
        /* every operator and helper, matches included (rx.c sizes its thread
         * lists at compile time) */
        static const char *const exprs[] = {
                "sig.Labels.remediation == 'true' && not sig.Whitelisted",
                "Alert.Remediation == true && Alert.GetScope() == \"Ip\" && Alert.GetValue() != ''",
                "Upper(sig.Source.Country) + Lower('X') in ['FRx', 'DEx'] || sig.Scenario contains 'ssh'",
                "IpInRange(sig.Source.Ip, '192.0.2.0/24') && IpInRange(sig.Source_ip, sig.Source_range)",
                "Atof(sig.Labels.x_number) * 2 > 4 && len(sig.Labels) == 4 && 'scope' in sig.Labels",
                "sig.Events_count % 4 + 2 ** 2 / 3 - 1 > 0 && sig.Labels[sig.Labels.scope + ''] == ''",
                "sig.Scenario startsWith 'crowdsecurity/' && sig.Scenario endsWith '-bf' && 'a' < 'b'",
                "sig.Source != nil && sig.Labels != nil && len(sig.Scenario) > 3 && -sig.Capacity <= 0",
                "sig.Scenario matches '^crowdsecurity/(ssh|http)-' && sig.Source_ip matches '^192\\\\.0\\\\.2\\\\.'",
                "not (sig.Scenario matches '(a+)+$x|\\\\bzz\\\\b|[[:digit:]]{3}')",
                "Sprintf('%dh-%v-%s-%q-%x', sig.Events_count * 4, 0.1, sig.Scenario, 'a', 255) != '' && "
                "Sprintf('%.320f %e %g %v %T', 1e308, 1.5, 1e21, 123456789.0, 1) != ''",
                "len('\\u{1F600}é') == 2 && .5 < 1. && sig.Scenario not contains 'http'",
        };
        expr *compiled[ELEMENTSOF(exprs)];

        for (size_t i = 0; i < ELEMENTSOF(exprs); i++)
                compiled[i] = compile_ok(exprs[i], EXPR_ENV_ALL);
        size_t before = n_allocs;
        for (int round = 0; round < 100; round++)
                for (size_t i = 0; i < ELEMENTSOF(exprs); i++)
                        CHECK_EQ(expr_eval_bool(compiled[i], s, NULL), 1);
        CHECK_EQ(n_allocs, before);
        for (size_t i = 0; i < ELEMENTSOF(exprs); i++)
                expr_free(compiled[i]);

        /* the counter works: compiling allocates */
        expr_free(compile_ok("sig.Scenario == 'x'", EXPR_ENV_ALL));
        CHECK(n_allocs > before);
#endif
}

/* README.md documents every field and helper (by name, in backquotes or a
 * dotted list such as `sig.Source.Ip`, `.Range`). */
static void test_readme(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        static char text[200000];
        char name[128];
        size_t n;

        CHECK(f);
        n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        for (size_t i = 0; expr_field_path(i, name, sizeof name) >= 0; i++) {
                /* the whole path, or ".Leaf" in a shorthand list */
                const char *leaf = strrchr(name, '.');
                char dotted[130], ticked[132];
                snprintf(dotted, sizeof dotted, "`%s", leaf);
                snprintf(ticked, sizeof ticked, "`%s`", name);
                if (!strstr(text, ticked) && !strstr(text, dotted) && !strstr(text, name)) {
                        fprintf(stderr, "%s does not document %s\n", path, name);
                        abort();
                }
        }
        for (size_t i = 0; expr_builtin_name(i); i++) {
                snprintf(name, sizeof name, "`%s(", expr_builtin_name(i));
                CHECK_CONTAINS(text, name);
        }
        /* and the table is what the language accepts */
        CHECK_EQ(expr_field_path(0, name, sizeof name), EXPR_STRING);
        CHECK_STREQ(name, "sig.Scenario");
        CHECK_EQ(expr_field_path(100000, name, sizeof name), -ENOENT);
        for (size_t i = 0; expr_field_path(i, name, sizeof name) >= 0; i++) {
                spw_error err = { 0 };
                expr *e = NULL;
                CHECK_OK(expr_compile(name, strlen(name), EXPR_ENV_ALL, NULL, &e, &err));
                expr_free(e);
        }
}

int main(int argc, char **argv) {
        spw_signal s = sample();

        test_literals(&s);
        test_precedence(&s);
        test_operators(&s);
        test_fields(&s);
        test_missing(&s);
        test_helpers(&s);
        test_compile_errors();
        test_expr_literals(&s);
        test_unsupported();
        test_sprintf(&s);
        test_history(&s);
        test_positions();
        test_runtime_errors(&s);
        test_scratch_reset(&s);
        test_stack_size();
        test_no_allocation(&s);
        if (argc > 1)
                test_readme(argv[1]);
        return 0;
}
