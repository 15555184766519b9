/* SPDX-License-Identifier: MIT */
/*
 * The pure parts of the HTTP ingest: Go durations (CrowdSec decisions),
 * the constant-time token comparison, and the CrowdSec alert → signal
 * mapping, checked by parsing the result as a signal.
 */
#include <string.h>

#include "arena.h"
#include "http.h"
#include "sigmodel.h"
#include "tests.h"

static const char alert_json[] =
        "{\"capacity\":5,\"created_at\":\"2026-12-05T10:00:00Z\",\"decisions\":[{\"duration\":\"4h0m0s\",\"origin\":\"crowdsec\","
        "\"scenario\":\"crowdsecurity/ssh-bf\",\"scope\":\"Ip\",\"type\":\"ban\",\"value\":\"192.0.2.7\"},"
        "{\"duration\":\"1h\",\"origin\":\"crowdsec\",\"scenario\":\"x\",\"scope\":\"Country\",\"type\":\"ban\",\"value\":\"FR\"}],"
        "\"events\":[{\"meta\":[{\"key\":\"source_ip\",\"value\":\"192.0.2.7\"},{\"key\":\"user\",\"value\":\"root\"}],"
        "\"timestamp\":\"2026-12-05T09:59:58Z\"}],\"events_count\":6,\"leakspeed\":\"10s\",\"machine_id\":\"m1\","
        "\"message\":\"Ip 192.0.2.7 performed 'crowdsecurity/ssh-bf' (6 events over 2s)\",\"meta\":[{\"key\":\"service\",\"value\":\"ssh\"}],"
        "\"remediation\":true,\"scenario\":\"crowdsecurity/ssh-bf\",\"scenario_hash\":\"abc\",\"scenario_version\":\"0.1\","
        "\"simulated\":false,\"source\":{\"as_name\":\"TEST-AS\",\"as_number\":\"64500\",\"cn\":\"FR\",\"ip\":\"192.0.2.7\","
        "\"latitude\":48.8,\"longitude\":2.3,\"range\":\"192.0.2.0/24\",\"scope\":\"Ip\",\"value\":\"192.0.2.7\"},"
        "\"start_at\":\"2026-12-05T09:59:56Z\",\"stop_at\":\"2026-12-05T09:59:58Z\",\"uuid\":\"u-1\",\"unknown_field\":1}";

static void test_duration(void) {
        long long u;
        CHECK_EQ(http_parse_go_duration("4h0m0s", &u), 0);
        CHECK_EQ(u, 4LL * 3600 * 1000000);
        CHECK_EQ(http_parse_go_duration("1.5s", &u), 0);
        CHECK_EQ(u, 1500000);
        CHECK_EQ(http_parse_go_duration("300ms", &u), 0);
        CHECK_EQ(u, 300000);
        CHECK_EQ(http_parse_go_duration("3h59m59.5s", &u), 0);
        CHECK_EQ(u, (3LL * 3600 + 59 * 60 + 59) * 1000000 + 500000);
        CHECK_EQ(http_parse_go_duration("0", &u), 0);
        CHECK_EQ(u, 0);
        CHECK_EQ(http_parse_go_duration("-1m", &u), 0);
        CHECK_EQ(u, -60000000);
        CHECK(http_parse_go_duration("", &u) < 0);
        CHECK(http_parse_go_duration("4", &u) < 0);
        CHECK(http_parse_go_duration("4d", &u) < 0);
        CHECK(http_parse_go_duration("h", &u) < 0);
}

static void test_token(void) {
        CHECK(http_token_equal("s3cret", "s3cret"));
        CHECK(!http_token_equal("s3cre", "s3cret"));
        CHECK(!http_token_equal("s3cret!", "s3cret"));
        CHECK(!http_token_equal("S3cret", "s3cret"));
        CHECK(!http_token_equal("", "s3cret"));
}

static void test_alert(bool apply) {
        json_error_t jerr;
        json_t *a = json_loads(alert_json, 0, &jerr);
        spw_error err = { 0 };
        long long now = 1764928800LL * 1000000; /* 2025-12-05T10:00:00Z */
        CHECK(a);
        json_t *sig = http_alert_to_signal(a, 0, apply, now, &err);
        CHECK(sig);
        CHECK_STREQ(json_string_value(json_object_get(sig, "scenario")), "crowdsecurity/ssh-bf");
        CHECK_STREQ(json_string_value(json_object_get(json_object_get(sig, "labels"), "remediation")), "true");
        CHECK_STREQ(json_string_value(json_object_get(json_object_get(sig, "labels"), "service")), "ssh");
        CHECK_STREQ(json_string_value(json_object_get(json_object_get(sig, "labels"), "crowdsec_uuid")), "u-1");

        arena ar = ARENA_INIT;
        spw_signal s = { 0 };
        int k = signal_from_json(sig, &ar, &s, &err);
        if (k < 0)
                fprintf(stderr, "%s\n", err.msg);
        CHECK_EQ(k, 0);
        CHECK_STREQ(s.scenario, "crowdsecurity/ssh-bf");
        CHECK_STREQ(signal_source_ip(&s), "192.0.2.7");
        CHECK_EQ(s.events_count, 6);
        CHECK_EQ(s.capacity, 5);
        CHECK_EQ(s.n_events, 1);
        CHECK_STREQ(s.events[0].source_ip, "192.0.2.7");
        if (apply) {
                /* the Country decision is kept with its scope: stored and
                 * forwarded, not an address (SPW_SCOPE_OTHER) */
                CHECK_EQ(s.n_bans, 2);
                CHECK_STREQ(s.bans[0].ip_text, "192.0.2.7");
                CHECK_EQ(s.bans[0].scope, SPW_SCOPE_IP);
                CHECK_STREQ(s.bans[0].scope_name, "Ip");
                CHECK_STREQ(s.bans[0].measure_type, "ban");
                CHECK_STREQ(s.bans[0].measure_source, "crowdsec");
                CHECK_EQ(s.bans[0].until, (spw_usec_t) (now + 4LL * 3600 * 1000000));
                CHECK_EQ(s.bans[1].scope, SPW_SCOPE_OTHER);
                CHECK_STREQ(s.bans[1].scope_name, "Country");
                CHECK_STREQ(s.bans[1].ip_text, "Country:FR");
                CHECK_STREQ(s.bans[1].value, "FR");
        } else
                CHECK_EQ(s.n_bans, 0);
        arena_deinit(&ar);
        json_decref(sig);

        /* missing required fields are named */
        json_object_del(a, "scenario");
        json_object_del(json_object_get(a, "source"), "value");
        CHECK(!http_alert_to_signal(a, 3, apply, now, &err));
        CHECK(strstr(err.msg, "alert 3"));
        CHECK(strstr(err.msg, "scenario"));
        CHECK(strstr(err.msg, "source.value"));
        json_decref(a);
}

int main(void) {
        test_duration();
        test_token();
        test_alert(false);
        test_alert(true);
        return 0;
}
