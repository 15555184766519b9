/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "sigmodel.h"
#include "tests.h"

static const char full[] =
        "{\"scenario\":\"crowdsecurity/ssh-bf\",\"bucket_id\":\"b1\",\"alert_message\":\"1.2.3.4 performed ssh-bf\","
        "\"events_count\":6,\"start_at\":\"2020-05-21T10:00:00Z\",\"stop_at\":\"2020-05-21T10:00:20.5Z\","
        "\"source\":{\"Ip\":\"1.2.3.4\",\"Range\":\"1.2.3.0/24\",\"AutonomousSystemNumber\":\"64496\","
        "\"AutonomousSystemOrganization\":\"Example\",\"Country\":\"FR\",\"Latitude\":48.8,\"Longitude\":2.3},"
        "\"Source_ip\":\"1.2.3.4\",\"Source_range\":\"1.2.3.0/24\",\"Source_AutonomousSystemNumber\":\"64496\","
        "\"Source_Country\":\"FR\",\"dst_ip\":\"10.0.0.1\",\"capacity\":5,\"leak_speed\":10000000000,"
        "\"Whitelisted\":false,\"Simulation\":true,\"Reprocess\":false,\"Labels\":{\"remediation\":\"true\",\"type\":\"bf\"},"
        "\"MapKey\":\"k\",\"events_sequence\":[{\"time\":\"2020-05-21T10:00:01Z\",\"source_ip\":\"1.2.3.4\",\"serialized\":\"{}\"}],"
        "\"ban_applications\":[{\"MeasureType\":\"ban\",\"Until\":\"2020-05-21T14:00:20Z\",\"IpText\":\"1.2.3.4\"}],"
        "\"custom_field\":{\"x\":1}}";

static int parse(const char *json, spw_signal *sig, arena *a, spw_error *err) {
        return signal_parse(json, strlen(json), a, sig, err);
}

int main(void) {
        arena a = ARENA_INIT;
        spw_signal s;
        spw_error err = { 0 };

        CHECK_OK(parse(full, &s, &a, &err));
        CHECK_STREQ(s.scenario, "crowdsecurity/ssh-bf");
        CHECK_EQ(s.events_count, 6);
        CHECK_EQ(s.start_at, INT64_C(1590055200000000));
        CHECK_EQ(s.stop_at, INT64_C(1590055220500000));
        CHECK(s.source != NULL);
        CHECK_EQ(s.source->size, sizeof(spw_source));
        CHECK_EQ(s.ban_size, sizeof(spw_ban));
        CHECK_EQ(s.event_size, sizeof(spw_event));
        CHECK_STREQ(s.source->ip, "1.2.3.4");
        CHECK_STREQ(s.source->country, "FR");
        CHECK_STREQ(s.source->as_number, "64496");
        CHECK_STREQ(s.dest_ip, "10.0.0.1");
        CHECK_EQ(s.leak_speed_ns, INT64_C(10000000000));
        CHECK(s.simulation && !s.whitelisted);
        CHECK_EQ(s.n_labels, 2);
        CHECK_STREQ(s.labels[0].key, "remediation"); /* sorted */
        CHECK_EQ(s.n_events, 1);
        CHECK_STREQ(s.events[0].source_ip, "1.2.3.4");
        CHECK_EQ(s.n_bans, 1);
        CHECK_STREQ(s.bans[0].ip_text, "1.2.3.4");
        CHECK_STREQ(s.bans[0].measure_source, "api");
        CHECK_STREQ(s.extra_json, "{\"custom_field\":{\"x\":1}}");
        CHECK_STREQ(signal_source_ip(&s), "1.2.3.4");

        /* the ban in CrowdSec's form */
        json_t *j = ban_to_json(&s.bans[0]);
        CHECK_STREQ(json_string_value(json_object_get(j, "IpText")), "1.2.3.4");
        CHECK_STREQ(json_string_value(json_object_get(j, "Until")), "2020-05-21T14:00:20Z");
        json_decref(j);

        /* IPv6 */
        CHECK_OK(parse("{\"scenario\":\"s\",\"source\":{\"Ip\":\"2001:db8::7\",\"Range\":\"2001:db8::/64\"}}", &s, &a, &err));
        CHECK_STREQ(signal_source_range(&s), "2001:db8::/64");

        /* field names are matched case-insensitively, like Go */
        CHECK_OK(parse("{\"Scenario\":\"s\",\"source_ip\":\"192.0.2.1\"}", &s, &a, &err));
        CHECK_STREQ(s.source_ip, "192.0.2.1");
        CHECK_OK(parse("{\"SCENARIO\":\"s\",\"Bucket_ID\":\"b\",\"ALERT_message\":\"m\",\"Events_Count\":3,"
                       "\"Source\":{\"IP\":\"192.0.2.9\",\"rAnGe\":\"192.0.2.0/24\",\"autonomoussystemnumber\":\"64496\","
                       "\"AUTONOMOUSSYSTEMORGANIZATION\":\"Example\",\"country\":\"FR\",\"LATITUDE\":1.5,\"Longitude\":2.5},"
                       "\"Events_Sequence\":[{\"TIME\":\"2020-05-21T10:00:00Z\",\"Source_IP\":\"192.0.2.9\",\"SERIALIZED\":\"{}\"}],"
                       "\"BAN_APPLICATIONS\":[{\"measuresource\":\"crowdsec\",\"MEASURETYPE\":\"captcha\",\"MeasureExtra\":\"x\","
                       "\"UNTIL\":\"2020-05-21T14:00:20Z\",\"targetcn\":\"FR\",\"TARGETAS\":64496,\"TargetAsName\":\"Example\","
                       "\"IPTEXT\":\"192.0.2.9\",\"REASON\":\"r\",\"scenario\":\"t\"}],"
                       /* near misses: one letter more, less or different */
                       "\"scenari\":1,\"scenarioo\":2,\"scenarix\":3,\"Source_Ipv\":4}",
                       &s, &a, &err));
        CHECK_STREQ(s.scenario, "s");
        CHECK_STREQ(s.bucket_id, "b");
        CHECK_STREQ(s.alert_message, "m");
        CHECK_EQ(s.events_count, 3);
        CHECK(s.source != NULL);
        CHECK_STREQ(s.source->ip, "192.0.2.9");
        CHECK_STREQ(s.source->range, "192.0.2.0/24");
        CHECK_STREQ(s.source->as_number, "64496");
        CHECK_STREQ(s.source->as_org, "Example");
        CHECK_STREQ(s.source->country, "FR");
        CHECK(s.source->latitude == 1.5 && s.source->longitude == 2.5);
        CHECK_EQ(s.n_events, 1);
        CHECK_STREQ(s.events[0].source_ip, "192.0.2.9");
        CHECK_STREQ(s.events[0].serialized, "{}");
        CHECK(s.events[0].time > 0);
        CHECK_EQ(s.n_bans, 1);
        CHECK_STREQ(s.bans[0].measure_source, "crowdsec");
        CHECK_STREQ(s.bans[0].measure_type, "captcha");
        CHECK_STREQ(s.bans[0].measure_extra, "x");
        CHECK_STREQ(s.bans[0].target_cn, "FR");
        CHECK_EQ(s.bans[0].target_as, 64496);
        CHECK_STREQ(s.bans[0].target_as_name, "Example");
        CHECK_STREQ(s.bans[0].reason, "r");
        CHECK_STREQ(s.bans[0].scenario, "t");
        CHECK_STREQ(s.extra_json, "{\"scenari\":1,\"scenarioo\":2,\"scenarix\":3,\"Source_Ipv\":4}");
        /* the flat source members and every other member of a signal,
         * in Go's capitalisation or another; a ban by Scope and Value */
        CHECK_OK(parse("{\"Scenario\":\"s\",\"Source_Ip\":\"192.0.2.7\",\"SOURCE_RANGE\":\"192.0.2.0/24\","
                       "\"Source_AutonomousSystemNumber\":64497,\"source_autonomoussystemorganization\":\"Org\","
                       "\"Source_Country\":\"DE\",\"Source_Latitude\":3.5,\"SOURCE_LONGITUDE\":4.5,"
                       "\"Dest_Ip\":\"198.51.100.1\",\"Capacity\":5,\"Leak_Speed\":\"10s\",\"Whitelisted\":true,"
                       "\"Simulation\":true,\"Reprocess\":true,\"Labels\":{\"k\":\"v\"},\"MapKey\":\"mk\","
                       "\"Start_At\":\"2020-05-21T10:00:00Z\",\"STOP_AT\":\"2020-05-21T10:00:05Z\",\"ID\":7,\"Sources\":{},"
                       "\"Ban_Applications\":[{\"SCOPE\":\"country\",\"value\":\"DE\",\"Until\":\"2030-01-01T00:00:00Z\"}]}",
                       &s, &a, &err));
        CHECK_STREQ(s.source_ip, "192.0.2.7");
        CHECK_STREQ(s.source_range, "192.0.2.0/24");
        CHECK_STREQ(s.source_as_number, "64497");
        CHECK_STREQ(s.source_as_org, "Org");
        CHECK_STREQ(s.source_country, "DE");
        CHECK(s.source_latitude == 3.5 && s.source_longitude == 4.5);
        CHECK_STREQ(s.dest_ip, "198.51.100.1");
        CHECK_EQ(s.capacity, 5);
        CHECK_EQ(s.leak_speed_ns, INT64_C(10000000000));
        CHECK(s.whitelisted && s.simulation && s.reprocess);
        CHECK_EQ(s.n_labels, 1);
        CHECK_STREQ(s.labels[0].value, "v");
        CHECK_STREQ(s.map_key, "mk");
        CHECK_EQ(s.stop_at - s.start_at, 5000000);
        CHECK(s.extra_json == NULL); /* id and sources are known, and ignored */
        CHECK_EQ(s.n_bans, 1);
        CHECK_STREQ(s.bans[0].scope_name, "Country");
        CHECK_STREQ(s.bans[0].value, "DE");
        CHECK_OK(parse("{\"scenario\":\"s\",\"DST_IP\":\"198.51.100.2\"}", &s, &a, &err));
        CHECK_STREQ(s.dest_ip, "198.51.100.2");

        /* errors name the field and the problem */
        CHECK_EQ(parse("{\"scenario\":\"s\",\"events_count\":\"six\"}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "events_count: expected an integer, got a string");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"source\":{\"Ip\":\"1.2.3.999\"}}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "source.Ip: '1.2.3.999' is not an IPv4 or IPv6 address");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"start_at\":\"yesterday\"}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "start_at:");
        CHECK_EQ(parse("{\"bucket_id\":\"x\"}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "scenario: required");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"Labels\":{\"a\":[1]}}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "Labels.a: expected a string");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"events_count\":-1}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "must not be negative");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"Whitelisted\":\"yes\"}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "Whitelisted: expected true or false");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"ban_applications\":[{\"IpText\":\"1.2.3.4\"}]}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "ban_applications[0].Until: required");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"stop_at\":\"2020-01-01T00:00:00Z\",\"start_at\":\"2020-01-02T00:00:00Z\"}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "stop_at: earlier than start_at");
        CHECK_EQ(parse("{\"scenario\":\"s\",", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "invalid JSON at line 1");
        CHECK_EQ(parse("[1,2]", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "expected a JSON object");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"scenario\":\"t\"}", &s, &a, &err), -EINVAL); /* duplicate keys */

        /* every duration, count and time is range-checked, naming the field (issue 20) */
        static const struct {
                const char *json, *msg;
        } out_of_range[] = {
                /* was a signed overflow: 106752d in usec times 1000 */
                { "\"leak_speed\":\"106752d\"", "leak_speed: '106752d' is out of range" },
                { "\"leak_speed\":\"106751d\"", NULL },      /* within Go's range: 9223286400000000000ns */
                { "\"leak_speed\":\"2562047h47m16.854775807s\"", NULL },
                { "\"leak_speed\":\"2562047h47m16.854775808s\"", "leak_speed: '2562047h47m16.854775808s' is out of range" },
                { "\"leak_speed\":\"-5s\"", "leak_speed: must not be negative" },
                { "\"leak_speed\":-1", "leak_speed: must not be negative" },
                { "\"leak_speed\":\"1e3ms\"", "leak_speed: '1e3ms' is not a duration" },
                { "\"leak_speed\":1e300", "leak_speed: 1e+300 is out of range" },
                { "\"leak_speed\":9223372036854775807", NULL },
                { "\"events_count\":9.3e18", "events_count: 9.3e+18 is out of range" },
                { "\"events_count\":-9.3e18", "events_count: -9.3e+18 is out of range" },
                { "\"events_count\":9223372036854775808.0", "events_count: 9.22337e+18 is out of range" },
                { "\"capacity\":1e19", "capacity: 1e+19 is out of range" },
                { "\"capacity\":-1", NULL },                   /* CrowdSec's counters */
                { "\"start_at\":\"0000-01-01T00:00:00+23:59\"", "start_at: '0000-01-01T00:00:00+23:59' is out of range" },
                { "\"start_at\":\"0000-12-31T23:59:59Z\"", "start_at: '0000-12-31T23:59:59Z' is out of range" },
                { "\"stop_at\":\"9999-12-31T23:59:59-00:01\"", "stop_at: '9999-12-31T23:59:59-00:01' is out of range" },
                { "\"stop_at\":\"9999-12-31T23:59:59.999999Z\"", NULL },
                { "\"events_sequence\":[{\"time\":\"9999-12-31T23:59:60-01:00\"}]", "events_sequence[0].time: '9999-12-31T23:59:60-01:00' is out of range" },
                { "\"ban_applications\":[{\"IpText\":\"1.2.3.4\",\"Until\":\"9999-12-31T23:30:00-01:00\"}]", "ban_applications[0].Until: '9999-12-31T23:30:00-01:00' is out of range" },
                { "\"ban_applications\":[{\"IpText\":\"1.2.3.4\",\"Until\":\"0001-01-01T00:00:00.5Z\"}]", "ban_applications[0].Until: required" },
                { "\"ban_applications\":[{\"IpText\":\"1.2.3.4\",\"Until\":\"9999-12-31T23:59:59Z\",\"TargetAS\":1e19}]", "ban_applications[0].TargetAS: 1e+19 is out of range" },
        };
        for (size_t i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; i++) {
                char json[512];
                int r;
                snprintf(json, sizeof json, "{\"scenario\":\"s\",%s}", out_of_range[i].json);
                r = parse(json, &s, &a, &err);
                if (out_of_range[i].msg ? r != -EINVAL || !strstr(err.msg, out_of_range[i].msg) : r < 0) {
                        fprintf(stderr, "%s: got %d '%s', expected %s\n", json, r, r < 0 ? err.msg : "",
                                out_of_range[i].msg ? out_of_range[i].msg : "success");
                        abort();
                }
        }
        CHECK_OK(parse("{\"scenario\":\"s\",\"leak_speed\":\"106751d\"}", &s, &a, &err));
        CHECK_EQ(s.leak_speed_ns, INT64_C(106751) * 86400 * 1000000000);

        /* Go zero time means unset */
        CHECK_OK(parse("{\"scenario\":\"s\",\"start_at\":\"0001-01-01T00:00:00Z\"}", &s, &a, &err));
        CHECK_EQ(s.start_at, 0);

        /* ban for `ban add` */
        spw_ban ban;
        CHECK_OK(ban_from_target("2001:db8::/48", true, 1, "ban", "cscli", "manual", &a, &ban, &err));
        CHECK_EQ(ban.scope, SPW_SCOPE_RANGE);
        CHECK_EQ(ban_from_target("10.0.0.1/8", true, 1, "ban", "cscli", "manual", &a, &ban, &err), -EINVAL);

        /* decision scopes (issue 15): any scope CrowdSec accepts */
        CHECK_STREQ(scope_canonical("ip"), "Ip");
        CHECK_STREQ(scope_canonical("RANGE"), "Range");
        CHECK_STREQ(scope_canonical("country"), "Country");
        CHECK_STREQ(scope_canonical("as"), "AS");
        CHECK_STREQ(scope_canonical("username"), "username");
        CHECK(!scope_canonical(""));
        CHECK(!scope_canonical("no such"));
        CHECK(!scope_canonical("a/b"));
        CHECK_OK(ban_from_scope("country", "FR", 1, "ban", "cscli", "geo", &a, &ban, &err));
        CHECK_EQ(ban.scope, SPW_SCOPE_OTHER);
        CHECK_STREQ(ban.scope_name, "Country");
        CHECK_STREQ(ban.value, "FR");
        CHECK_STREQ(ban.ip_text, "Country:FR");
        CHECK(memcmp(ban.start_ip, (uint8_t[16]) { 0 }, 16) == 0 && memcmp(ban.end_ip, (uint8_t[16]) { 0 }, 16) == 0);
        CHECK_OK(ban_from_scope("Ip", "::ffff:192.0.2.1", 1, "ban", "cscli", "x", &a, &ban, &err));
        CHECK_EQ(ban.scope, SPW_SCOPE_IP);
        CHECK_STREQ(ban.ip_text, "192.0.2.1");
        CHECK_STREQ(ban.scope_name, "Ip");
        CHECK_STREQ(ban.value, "192.0.2.1");
        CHECK_EQ(ban_from_scope("username", "", 1, "ban", "cscli", "x", &a, &ban, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "empty");
        CHECK_EQ(ban_from_scope("username", "a\nb", 1, "ban", "cscli", "x", &a, &ban, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "control character");
        CHECK_EQ(ban_from_scope("bad scope", "x", 1, "ban", "cscli", "x", &a, &ban, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "not a scope name");

        /* a producer's decisions of any scope, in ban_applications */
        CHECK_OK(parse("{\"scenario\":\"s\",\"ban_applications\":["
                       "{\"Scope\":\"Country\",\"Value\":\"FR\",\"Until\":\"2030-01-01T00:00:00Z\"},"
                       "{\"Scope\":\"Ip\",\"Value\":\"192.0.2.9\",\"Until\":\"2030-01-01T00:00:00Z\"},"
                       "{\"IpText\":\"198.51.100.0/24\",\"Until\":\"2030-01-01T00:00:00Z\"}]}", &s, &a, &err));
        CHECK_EQ(s.n_bans, 3);
        CHECK_EQ(s.bans[0].scope, SPW_SCOPE_OTHER);
        CHECK_STREQ(s.bans[0].ip_text, "Country:FR");
        CHECK_STREQ(s.bans[0].value, "FR");
        CHECK_EQ(s.bans[1].scope, SPW_SCOPE_IP);
        CHECK_STREQ(s.bans[1].ip_text, "192.0.2.9");
        CHECK_EQ(s.bans[2].scope, SPW_SCOPE_RANGE);
        CHECK_STREQ(s.bans[2].scope_name, "Range");
        {
                json_t *bj = ban_to_json(&s.bans[0]);
                CHECK_STREQ(json_string_value(json_object_get(bj, "Scope")), "Country");
                CHECK_STREQ(json_string_value(json_object_get(bj, "Value")), "FR");
                CHECK(json_is_false(json_object_get(bj, "Enforceable")));
                json_decref(bj);
        }
        CHECK_EQ(parse("{\"scenario\":\"s\",\"ban_applications\":[{\"Scope\":\"Country\","
                       "\"Until\":\"2030-01-01T00:00:00Z\"}]}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "ban_applications[0].Value: required");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"ban_applications\":[{\"Scope\":\"Ip\",\"IpText\":\"10.0.0.0/8\","
                       "\"Until\":\"2030-01-01T00:00:00Z\"}]}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "Scope is Ip but '10.0.0.0/8' is a range");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"ban_applications\":[{\"Scope\":\"x y\",\"Value\":\"v\","
                       "\"Until\":\"2030-01-01T00:00:00Z\"}]}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "ban_applications[0].Scope: 'x y' is not a scope name");
        /* a converter's error inside an array names its element and key
         * (the path is put in front only on error) */
        CHECK_EQ(parse("{\"scenario\":\"s\",\"ban_applications\":[{\"IpText\":\"1.2.3.4\",\"Until\":\"2030-01-01T00:00:00Z\"},{\"until\":\"soon\"}]}", &s, &a, &err),
                 -EINVAL);
        CHECK_CONTAINS(err.msg, "ban_applications[1].until: ");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"events_sequence\":[{},{\"Source_IP\":5}]}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "events_sequence[1].Source_IP: expected a string, got an integer");
        CHECK_EQ(parse("{\"scenario\":\"s\",\"Labels\":{\"ok\":\"1\",\"k2\":[1]}}", &s, &a, &err), -EINVAL);
        CHECK_CONTAINS(err.msg, "Labels.k2: expected a string, got an array");
        arena_deinit(&a);
        return 0;
}
