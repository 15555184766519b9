/* SPDX-License-Identifier: MIT */
/*
 * JSON -> struct spw_signal, with a precise error for the first bad field.
 *
 * The parse is a single walk over the object's members: each known name is
 * looked up in a table (case-insensitive), converted with its own checker and
 * stored in the arena; unknown names are gathered into one JSON object that
 * becomes sig->extra_json. Nothing is allocated outside the arena except the
 * temporary jansson tree, which the caller owns.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipaddr.h"
#include "sigmodel.h"
#include "timeutil.h"

#define MAX_JSON_DEPTH 32

static const char *json_type_name(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT: return "an object";
        case JSON_ARRAY: return "an array";
        case JSON_STRING: return "a string";
        case JSON_INTEGER: return "an integer";
        case JSON_REAL: return "a number";
        case JSON_TRUE:
        case JSON_FALSE: return "a boolean";
        case JSON_NULL: return "null";
        }
        return "?";
}

static int type_error(spw_error *err, const char *field, const char *expected, const json_t *v) {
        return spw_error_set(err, -EINVAL, "%s: expected %s, got %s", field, expected, json_type_name(v));
}

/* An error inside an array or object names where it sits: "Labels.x: ...",
 * "ban_applications[2].Until: ...". The converters name the key; the path
 * goes in front only when there is an error (formatting it for every key
 * was 3 % of the event loop's CPU per signal, issue 17). */
static int prefix_error(spw_error *err, int r, const char *fmt, ...) _printf_(3, 4);
static int prefix_error(spw_error *err, int r, const char *fmt, ...) {
        char prefix[160], rest[sizeof err->msg];
        va_list ap;

        if (r == -ENOMEM)
                return r; /* no message to place */
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(rest, err->msg, sizeof rest);
        rest[sizeof rest - 1] = 0;
        return spw_error_set(err, r, "%s%s", prefix, rest);
}

/* ------------------------------------------------------------ converters */

static int get_string_max(json_t *v, const char *field, size_t max, arena *a, const char **ret, spw_error *err) {
        if (json_is_null(v)) {
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return type_error(err, field, "a string", v);
        if (json_string_length(v) > max)
                return spw_error_set(err, -EINVAL, "%s: %zu bytes, longer than the limit of %zu: signal rejected", field,
                                     json_string_length(v), max);
        if (strlen(json_string_value(v)) != json_string_length(v))
                return spw_error_set(err, -EINVAL, "%s: NUL byte in string", field);
        *ret = arena_strndup(a, json_string_value(v), json_string_length(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_string(json_t *v, const char *field, arena *a, const char **ret, spw_error *err) {
        return get_string_max(v, field, SPW_SIGNAL_MAX_STRING, a, ret, err);
}

/* CrowdSec stores AS numbers as strings; accept a JSON number too. */
static int get_string_or_number(json_t *v, const char *field, arena *a, const char **ret, spw_error *err) {
        if (json_is_integer(v)) {
                *ret = arena_printf(a, "%lld", (long long) json_integer_value(v));
                return *ret ? 0 : -ENOMEM;
        }
        return get_string(v, field, a, ret, err);
}

static int get_int(json_t *v, const char *field, int64_t *ret, spw_error *err) {
        if (json_is_null(v)) {
                *ret = 0;
                return 0;
        }
        if (json_is_integer(v)) {
                *ret = json_integer_value(v);
                return 0;
        }
        if (json_is_real(v)) {
                double d = json_real_value(v);
                if (d != floor(d))
                        return spw_error_set(err, -EINVAL, "%s: expected an integer, got %g", field, d);
                /* 2^63 itself is a double: the bound is strict */
                if (!(fabs(d) < 9223372036854775808.0))
                        return spw_error_set(err, -EINVAL, "%s: %g is out of range (a 64-bit integer)", field, d);
                *ret = (int64_t) d;
                return 0;
        }
        return type_error(err, field, "an integer", v);
}

static int get_count(json_t *v, const char *field, int64_t *ret, spw_error *err) {
        int r = get_int(v, field, ret, err);
        if (r < 0)
                return r;
        if (*ret < 0)
                return spw_error_set(err, -EINVAL, "%s: must not be negative, got %lld", field, (long long) *ret);
        return 0;
}

static int get_double(json_t *v, const char *field, double *ret, spw_error *err) {
        if (json_is_null(v)) {
                *ret = 0;
                return 0;
        }
        if (!json_is_number(v))
                return type_error(err, field, "a number", v);
        *ret = json_number_value(v);
        return 0;
}

static int get_bool(json_t *v, const char *field, bool *ret, spw_error *err) {
        if (json_is_null(v)) {
                *ret = false;
                return 0;
        }
        if (!json_is_boolean(v))
                return type_error(err, field, "true or false", v);
        *ret = json_is_true(v);
        return 0;
}

static int get_time(json_t *v, const char *field, spw_usec_t *ret, spw_error *err) {
        spw_usec_t t;

        if (json_is_null(v)) {
                *ret = 0;
                return 0;
        }
        if (!json_is_string(v))
                return type_error(err, field, "an RFC 3339 time string", v);
        /* Go's zero time, as CrowdSec emits for unset times */
        if (startswith(json_string_value(v), "0001-01-01T00:00:00")) {
                *ret = 0;
                return 0;
        }
        if (parse_rfc3339(json_string_value(v), &t) < 0)
                return spw_error_set(err, -EINVAL, "%s: '%.64s' is not an RFC 3339 time (like 2020-05-21T10:00:00Z)",
                                     field, json_string_value(v));
        /* what the ban databases store and every later sum stays in range */
        if (t < TIME_YEAR1_USEC || t > TIME_YEAR9999_USEC)
                return spw_error_set(err, -EINVAL, "%s: '%.64s' is out of range (years 0001 to 9999 UTC)",
                                     field, json_string_value(v));
        *ret = t;
        return 0;
}

static int get_ip(json_t *v, const char *field, arena *a, const char **ret, spw_error *err) {
        ip_range r;
        int k = get_string(v, field, a, ret, err);
        if (k < 0 || !*ret)
                return k;
        if (!**ret) {
                *ret = NULL;
                return 0;
        }
        if (ip_parse_addr(*ret, &r) < 0)
                return spw_error_set(err, -EINVAL, "%s: '%.64s' is not an IPv4 or IPv6 address", field, *ret);
        return 0;
}

static int get_cidr(json_t *v, const char *field, arena *a, const char **ret, spw_error *err) {
        ip_range r;
        int k;

        /* Go's net.IPNet marshals as {"IP": "...", "Mask": "base64"}: an
         * empty one means no range. */
        if (json_is_object(v)) {
                json_t *ip = json_object_get(v, "IP");
                if (json_object_size(v) == 0 || !ip || json_is_null(ip)) {
                        *ret = NULL;
                        return 0;
                }
                return spw_error_set(err, -EINVAL, "%s: give the range as a CIDR string like \"192.0.2.0/24\"", field);
        }
        k = get_string(v, field, a, ret, err);
        if (k < 0 || !*ret)
                return k;
        if (!**ret || streq(*ret, "<nil>")) {
                *ret = NULL;
                return 0;
        }
        if (ip_parse_cidr(*ret, false, &r) < 0)
                return spw_error_set(err, -EINVAL, "%s: '%.64s' is not a CIDR range (like 192.0.2.0/24 or 2001:db8::/32)",
                                     field, *ret);
        return 0;
}

/* A Go time.Duration: nanoseconds as a number, or duration text. Either way
 * it must fit int64_t nanoseconds (parse_duration's range guarantees the
 * multiplication cannot overflow) and not be negative. */
static int get_leak_speed(json_t *v, const char *field, int64_t *ret, spw_error *err) {
        int64_t ns;
        int r;

        if (json_is_string(v)) {
                usec_t d;
                r = parse_duration(json_string_value(v), &d);
                if (r < 0)
                        return spw_error_set(err, -EINVAL, "%s: '%.64s' %s, or nanoseconds",
                                             field, json_string_value(v), duration_strerror(r));
                ns = d * 1000;
        } else {
                r = get_int(v, field, &ns, err);
                if (r < 0)
                        return r;
        }
        if (ns < 0)
                return spw_error_set(err, -EINVAL, "%s: must not be negative", field);
        *ret = ns;
        return 0;
}

/* ------------------------------------------------------------ member names */

/* Member names match case-insensitively (ASCII, whatever the locale), as
 * Go's encoding/json matches them. A table is scanned in order, lengths
 * first, so most candidates cost one comparison of two small integers.
 * This replaced a bsearch() over a lower-cased copy of each key and
 * strcasecmp() chains: 1k fewer of the event loop's ~139k instructions
 * per signal (issue 17). A key is taken up to its first NUL byte, as
 * strcasecmp() took it. */
typedef struct member {
        const char *name; /* lower case */
        unsigned char len;
        unsigned char id;
} member;

#define MEMBER(s, i) { (s), sizeof(s) - 1, (i) }

static bool member_eq(const char *key, const char *lower, size_t len) {
        for (size_t i = 0; i < len; i++) {
                char c = key[i];
                if (c >= 'A' && c <= 'Z')
                        c = (char) (c + ('a' - 'A'));
                if (c != lower[i])
                        return false;
        }
        return true;
}

/* The id of `key` in t[0..n), or -1 */
static int member_find(const char *key, const member *t, size_t n) {
        size_t len = strlen(key);
        for (size_t i = 0; i < n; i++)
                if (t[i].len == len && member_eq(key, t[i].name, len))
                        return t[i].id;
        return -1;
}

/* ------------------------------------------------------------ sub-objects */

static int parse_source(json_t *v, arena *a, spw_signal *sig, spw_error *err) {
        const char *key;
        json_t *val;
        int r = 0;

        if (json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return type_error(err, "source", "an object", v);
        spw_source *src = arena_alloc(a, sizeof *src);
        if (!src)
                return -ENOMEM;
        *src = (spw_source) { .size = sizeof(spw_source) };
        sig->source = src;
        enum { S_IP, S_RANGE, S_ASN, S_ASORG, S_COUNTRY, S_LAT, S_LON };
        static const member names[] = {
                MEMBER("ip", S_IP), MEMBER("range", S_RANGE), MEMBER("autonomoussystemnumber", S_ASN),
                MEMBER("autonomoussystemorganization", S_ASORG), MEMBER("country", S_COUNTRY),
                MEMBER("latitude", S_LAT), MEMBER("longitude", S_LON),
        };
        json_object_foreach(v, key, val) {
                switch (member_find(key, names, ELEMENTSOF(names))) {
                case S_IP: r = get_ip(val, "source.Ip", a, &src->ip, err); break;
                case S_RANGE: r = get_cidr(val, "source.Range", a, &src->range, err); break;
                case S_ASN: r = get_string_or_number(val, "source.AutonomousSystemNumber", a, &src->as_number, err); break;
                case S_ASORG: r = get_string(val, "source.AutonomousSystemOrganization", a, &src->as_org, err); break;
                case S_COUNTRY: r = get_string(val, "source.Country", a, &src->country, err); break;
                case S_LAT: r = get_double(val, "source.Latitude", &src->latitude, err); break;
                case S_LON: r = get_double(val, "source.Longitude", &src->longitude, err); break;
                }
                /* other members of a source (Go's extra fields) are ignored */
                if (r < 0)
                        return r;
        }
        return 0;
}

static int kv_cmp(const void *x, const void *y) {
        return strcmp(((const spw_kv *) x)->key, ((const spw_kv *) y)->key);
}

static int parse_labels(json_t *v, arena *a, spw_signal *sig, spw_error *err) {
        const char *key;
        json_t *val;
        spw_kv *labels;
        size_t n = 0;

        if (json_is_null(v))
                return 0;
        if (!json_is_object(v))
                return type_error(err, "Labels", "an object of strings", v);
        if (json_object_size(v) > SPW_SIGNAL_MAX_LABELS)
                return spw_error_set(err, -EINVAL, "Labels: %zu members, more than the limit of %u: signal rejected",
                                     json_object_size(v), SPW_SIGNAL_MAX_LABELS);
        labels = arena_alloc(a, sizeof *labels * (json_object_size(v) + 1));
        if (!labels)
                return -ENOMEM;
        json_object_foreach(v, key, val) {
                int r;
                labels[n].key = arena_strdup(a, key);
                /* CrowdSec labels are strings; YAML-born producers may send
                 * true/1: take scalars as their text */
                if (json_is_true(val) || json_is_false(val))
                        labels[n].value = json_is_true(val) ? "true" : "false";
                else if (json_is_integer(val))
                        labels[n].value = arena_printf(a, "%lld", (long long) json_integer_value(val));
                else {
                        r = get_string(val, "", a, &labels[n].value, err);
                        if (r < 0)
                                return prefix_error(err, r, "Labels.%.100s", key);
                        if (!labels[n].value)
                                labels[n].value = "";
                }
                if (!labels[n].key || !labels[n].value)
                        return -ENOMEM;
                n++;
        }
        qsort(labels, n, sizeof *labels, kv_cmp);
        sig->labels = labels;
        sig->n_labels = n;
        return 0;
}

static int parse_events(json_t *v, arena *a, spw_signal *sig, spw_error *err) {
        enum { E_TIME, E_SOURCE_IP, E_SERIALIZED };
        static const member names[] = {
                MEMBER("time", E_TIME), MEMBER("source_ip", E_SOURCE_IP), MEMBER("serialized", E_SERIALIZED),
        };
        spw_event *events;
        size_t i;
        json_t *e;

        if (json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return type_error(err, "events_sequence", "an array", v);
        if (json_array_size(v) > SPW_SIGNAL_MAX_EVENTS)
                return spw_error_set(err, -EINVAL, "events_sequence: %zu events, more than the limit of %u: signal rejected",
                                     json_array_size(v), SPW_SIGNAL_MAX_EVENTS);
        size_t total = 0;
        events = arena_alloc(a, sizeof *events * (json_array_size(v) + 1));
        if (!events)
                return -ENOMEM;
        json_array_foreach(v, i, e) {
                const char *key;
                json_t *val;
                char where[96];
                int r = 0;

                if (!json_is_object(e)) {
                        snprintf(where, sizeof where, "events_sequence[%zu]", i);
                        return type_error(err, where, "an object", e);
                }
                json_object_foreach(e, key, val) {
                        const char *field = key;
                        switch (member_find(key, names, ELEMENTSOF(names))) {
                        case E_TIME: r = get_time(val, field, &events[i].time, err); break;
                        case E_SOURCE_IP: r = get_string(val, field, a, &events[i].source_ip, err); break;
                        case E_SERIALIZED:
                                r = get_string_max(val, field, SPW_SIGNAL_MAX_EVENT, a, &events[i].serialized, err);
                                if (r == 0 && events[i].serialized &&
                                    (total += strlen(events[i].serialized)) > SPW_SIGNAL_MAX_EVENTS_BYTES)
                                        return spw_error_set(err, -EINVAL, "events_sequence: the serialized events add up to "
                                                             "more than the limit of %u bytes: signal rejected",
                                                             SPW_SIGNAL_MAX_EVENTS_BYTES);
                                break;
                        }
                        if (r < 0)
                                return prefix_error(err, r, "events_sequence[%zu].", i);
                }
        }
        sig->events = events;
        sig->n_events = json_array_size(v);
        return 0;
}

int ban_from_target(const char *target, bool range, spw_usec_t until, const char *measure_type,
                    const char *measure_source, const char *reason, arena *a, spw_ban *ban, spw_error *err) {
        ip_range r;

        if ((range ? ip_parse_cidr(target, true, &r) : ip_parse_addr(target, &r)) < 0)
                return spw_error_set(err, -EINVAL, range ? "'%.64s' is not a CIDR range with zero host bits (like 192.0.2.0/24)"
                                                         : "'%.64s' is not an IPv4 or IPv6 address", target);
        char text[IP_RANGE_TEXT_MAX];
        *ban = (spw_ban) {
                .measure_source = arena_strdup(a, measure_source),
                .measure_type = arena_strdup(a, measure_type),
                .until = until,
                .scope = range ? SPW_SCOPE_RANGE : SPW_SCOPE_IP,
                .ip_text = arena_strdup(a, ip_range_text(text, sizeof text, &r, range)),
                .reason = arena_strdup(a, reason),
                .scenario = arena_strdup(a, reason),
                .scope_name = range ? "Range" : "Ip",
        };
        ban->value = ban->ip_text;
        memcpy(ban->start_ip, r.start, 16);
        memcpy(ban->end_ip, r.end, 16);
        return ban->ip_text && ban->reason ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------ scopes */

char *ban_scope_key(arena *a, const char *scope, const char *value) {
        return arena_printf(a, "%s:%s", scope, value);
}

int ban_from_scope(const char *scope, const char *value, spw_usec_t until, const char *measure_type,
                   const char *measure_source, const char *reason, arena *a, spw_ban *ban, spw_error *err) {
        const char *canon = scope_canonical(scope);
        int r;

        if (!canon)
                return spw_error_set(err, -EINVAL, "scope '%.64s' is not a scope name (letters, digits, '_', '-' "
                                     "and '.', at most %u: Ip, Range, Country, AS, username...)", strempty(scope),
                                     SPW_BAN_MAX_SCOPE);
        if (streq(canon, "Ip") || streq(canon, "Range"))
                return ban_from_target(value, streq(canon, "Range"), until, measure_type, measure_source, reason, a,
                                       ban, err);
        r = scope_value_check(value, err);
        if (r < 0)
                return r;
        /* not an address: stored and forwarded, never enforced by address */
        *ban = (spw_ban) {
                .measure_source = arena_strdup(a, measure_source),
                .measure_type = arena_strdup(a, measure_type),
                .until = until,
                .scope = SPW_SCOPE_OTHER,
                .scope_name = arena_strdup(a, canon),
                .value = arena_strdup(a, value),
                .ip_text = ban_scope_key(a, canon, value),
                .reason = arena_strdup(a, reason),
                .scenario = arena_strdup(a, reason),
        };
        return ban->measure_source && ban->measure_type && ban->scope_name && ban->value && ban->ip_text &&
                               ban->reason ? 0 : -ENOMEM;
}

static int parse_bans(json_t *v, arena *a, spw_signal *sig, spw_error *err) {
        enum {
                B_MEASURE_SOURCE, B_MEASURE_TYPE, B_MEASURE_EXTRA, B_UNTIL, B_TARGET_CN, B_TARGET_AS,
                B_TARGET_AS_NAME, B_IP_TEXT, B_REASON, B_SCENARIO, B_SCOPE, B_VALUE,
        };
        static const member names[] = {
                MEMBER("measuresource", B_MEASURE_SOURCE), MEMBER("measuretype", B_MEASURE_TYPE),
                MEMBER("measureextra", B_MEASURE_EXTRA), MEMBER("until", B_UNTIL), MEMBER("targetcn", B_TARGET_CN),
                MEMBER("targetas", B_TARGET_AS), MEMBER("targetasname", B_TARGET_AS_NAME), MEMBER("iptext", B_IP_TEXT),
                MEMBER("reason", B_REASON), MEMBER("scenario", B_SCENARIO), MEMBER("scope", B_SCOPE),
                MEMBER("value", B_VALUE),
        };
        spw_ban *bans;
        size_t i;
        json_t *b;

        if (json_is_null(v))
                return 0;
        if (!json_is_array(v))
                return type_error(err, "ban_applications", "an array", v);
        if (json_array_size(v) > SPW_SIGNAL_MAX_BANS)
                return spw_error_set(err, -EINVAL, "ban_applications: %zu bans, more than the limit of %u: signal rejected",
                                     json_array_size(v), SPW_SIGNAL_MAX_BANS);
        bans = arena_alloc(a, sizeof *bans * (json_array_size(v) + 1));
        if (!bans)
                return -ENOMEM;
        json_array_foreach(v, i, b) {
                const char *key, *ip_text = NULL, *scope = NULL, *value = NULL;
                json_t *val;
                char where[96];
                spw_ban *ban = &bans[i];
                int r = 0;

                if (!json_is_object(b)) {
                        snprintf(where, sizeof where, "ban_applications[%zu]", i);
                        return type_error(err, where, "an object", b);
                }
                json_object_foreach(b, key, val) {
                        const char *field = key;
                        switch (member_find(key, names, ELEMENTSOF(names))) {
                        case B_MEASURE_SOURCE: r = get_string(val, field, a, &ban->measure_source, err); break;
                        case B_MEASURE_TYPE: r = get_string(val, field, a, &ban->measure_type, err); break;
                        case B_MEASURE_EXTRA: r = get_string(val, field, a, &ban->measure_extra, err); break;
                        case B_UNTIL: r = get_time(val, field, &ban->until, err); break;
                        case B_TARGET_CN: r = get_string(val, field, a, &ban->target_cn, err); break;
                        case B_TARGET_AS: r = get_int(val, field, &ban->target_as, err); break;
                        case B_TARGET_AS_NAME: r = get_string(val, field, a, &ban->target_as_name, err); break;
                        case B_IP_TEXT: r = get_string(val, field, a, &ip_text, err); break;
                        case B_REASON: r = get_string(val, field, a, &ban->reason, err); break;
                        case B_SCENARIO: r = get_string(val, field, a, &ban->scenario, err); break;
                        case B_SCOPE: r = get_string(val, field, a, &scope, err); break;
                        case B_VALUE: r = get_string(val, field, a, &value, err); break;
                        }
                        /* StartIp/EndIp are derived from IpText; CrowdSec's uint32
                         * values cannot express IPv6 and are ignored. */
                        if (r < 0)
                                return prefix_error(err, r, "ban_applications[%zu].", i);
                }
                if (!ban->measure_source)
                        ban->measure_source = "api";
                if (!ban->measure_type)
                        ban->measure_type = "ban";
                if (!ban->until)
                        return spw_error_set(err, -EINVAL, "ban_applications[%zu].Until: required (RFC 3339 end of the ban)", i);
                if (scope && *scope && !streq(strempty(scope_canonical(scope)), "Ip") &&
                    !streq(strempty(scope_canonical(scope)), "Range")) {
                        /* a decision on a country, an AS, a user name...: stored
                         * and forwarded under the key "Scope:value" */
                        const char *canon = scope_canonical(scope);
                        if (!canon)
                                return spw_error_set(err, -EINVAL, "ban_applications[%zu].Scope: '%.64s' is not a scope name "
                                                     "(letters, digits, '_', '-' and '.', at most %u)", i, scope, SPW_BAN_MAX_SCOPE);
                        if (!value || !*value)
                                value = ip_text;
                        if (scope_value_check(value, err) < 0)
                                return spw_error_set(err, -EINVAL, "ban_applications[%zu].Value: %s (give the %s banned)", i,
                                                     value ? err->msg : "required", canon);
                        ban->scope = SPW_SCOPE_OTHER;
                        ban->scope_name = canon == scope ? scope : canon;
                        ban->value = value;
                        ban->ip_text = ban_scope_key(a, canon, value);
                        if (!ban->ip_text)
                                return -ENOMEM;
                        memset(ban->start_ip, 0, 16);
                        memset(ban->end_ip, 0, 16);
                        continue;
                }
                if ((!ip_text || !*ip_text) && value && *value)
                        ip_text = value; /* CrowdSec's decision form: Scope Ip/Range with Value */
                if (!ip_text || !*ip_text)
                        return spw_error_set(err, -EINVAL, "ban_applications[%zu].IpText: required (the banned IP or CIDR)", i);
                ip_range range;
                bool is_range = strchr(ip_text, '/') != NULL;
                if ((is_range ? ip_parse_cidr(ip_text, false, &range) : ip_parse_addr(ip_text, &range)) < 0)
                        return spw_error_set(err, -EINVAL, "ban_applications[%zu].IpText: '%.64s' is not an IP address or CIDR range",
                                             i, ip_text);
                char canon[IP_RANGE_TEXT_MAX];
                ban->ip_text = arena_strdup(a, ip_range_text(canon, sizeof canon, &range, is_range));
                if (!ban->ip_text)
                        return -ENOMEM;
                if (scope && *scope && streq(scope_canonical(scope), "Range") != is_range)
                        return spw_error_set(err, -EINVAL, "ban_applications[%zu]: Scope is %s but '%.64s' is %s", i, scope,
                                             ban->ip_text, is_range ? "a range" : "an address");
                ban->scope = is_range ? SPW_SCOPE_RANGE : SPW_SCOPE_IP;
                ban->scope_name = is_range ? "Range" : "Ip";
                ban->value = ban->ip_text;
                memcpy(ban->start_ip, range.start, 16);
                memcpy(ban->end_ip, range.end, 16);
        }
        sig->bans = bans;
        sig->n_bans = json_array_size(v);
        return 0;
}

/* ------------------------------------------------------------ the walk */

enum field {
        F_SCENARIO, F_BUCKET_ID, F_ALERT_MESSAGE, F_EVENTS_COUNT, F_START_AT, F_STOP_AT, F_SOURCE,
        F_SOURCE_IP, F_SOURCE_RANGE, F_SOURCE_ASN, F_SOURCE_ASORG, F_SOURCE_COUNTRY, F_SOURCE_LAT,
        F_SOURCE_LON, F_DST_IP, F_CAPACITY, F_LEAK_SPEED, F_WHITELISTED, F_SIMULATION, F_REPROCESS,
        F_LABELS, F_MAPKEY, F_EVENTS, F_BANS, F_IGNORED,
};

/* The members of a signal, the common ones first */
static const member fields[] = {
        MEMBER("scenario", F_SCENARIO),
        MEMBER("bucket_id", F_BUCKET_ID),
        MEMBER("alert_message", F_ALERT_MESSAGE),
        MEMBER("events_count", F_EVENTS_COUNT),
        MEMBER("start_at", F_START_AT),
        MEMBER("stop_at", F_STOP_AT),
        MEMBER("source", F_SOURCE),
        MEMBER("source_ip", F_SOURCE_IP),
        MEMBER("source_range", F_SOURCE_RANGE),
        MEMBER("source_autonomoussystemnumber", F_SOURCE_ASN),
        MEMBER("source_autonomoussystemorganization", F_SOURCE_ASORG),
        MEMBER("source_country", F_SOURCE_COUNTRY),
        MEMBER("source_latitude", F_SOURCE_LAT),
        MEMBER("source_longitude", F_SOURCE_LON),
        MEMBER("capacity", F_CAPACITY),
        MEMBER("leak_speed", F_LEAK_SPEED),
        MEMBER("whitelisted", F_WHITELISTED),
        MEMBER("simulation", F_SIMULATION),
        MEMBER("reprocess", F_REPROCESS),
        MEMBER("labels", F_LABELS),
        MEMBER("mapkey", F_MAPKEY),
        MEMBER("events_sequence", F_EVENTS),
        MEMBER("ban_applications", F_BANS),
        MEMBER("dst_ip", F_DST_IP),
        MEMBER("dest_ip", F_DST_IP),
        /* Go-side bookkeeping that a producer may echo back: never trusted */
        MEMBER("id", F_IGNORED),
        MEMBER("sources", F_IGNORED),
};

int signal_from_json(json_t *obj, arena *a, spw_signal *sig, spw_error *err) {
        const char *key;
        json_t *val;
        json_t *extra = NULL;
        int r = 0;

        *sig = (spw_signal) { .size = sizeof(spw_signal), .ban_size = sizeof(spw_ban), .event_size = sizeof(spw_event) };
        if (!json_is_object(obj))
                return type_error(err, "signal", "a JSON object", obj);

        json_object_foreach(obj, key, val) {
                int id = member_find(key, fields, ELEMENTSOF(fields));

                if (id < 0) {
                        if (!extra && !(extra = json_object()))
                                return -ENOMEM;
                        json_object_set(extra, key, val);
                        continue;
                }
                enum field f = (enum field) id; /* -Wswitch names a member the switch forgets */
                switch (f) {
                case F_SCENARIO: r = get_string(val, "scenario", a, &sig->scenario, err); break;
                case F_BUCKET_ID: r = get_string(val, "bucket_id", a, &sig->bucket_id, err); break;
                case F_ALERT_MESSAGE:
                        r = get_string_max(val, "alert_message", SPW_SIGNAL_MAX_ALERT_MESSAGE, a, &sig->alert_message, err);
                        break;
                case F_EVENTS_COUNT: r = get_count(val, "events_count", &sig->events_count, err); break;
                case F_START_AT: r = get_time(val, "start_at", &sig->start_at, err); break;
                case F_STOP_AT: r = get_time(val, "stop_at", &sig->stop_at, err); break;
                case F_SOURCE: r = parse_source(val, a, sig, err); break;
                case F_SOURCE_IP: r = get_ip(val, "Source_ip", a, &sig->source_ip, err); break;
                case F_SOURCE_RANGE: r = get_cidr(val, "Source_range", a, &sig->source_range, err); break;
                case F_SOURCE_ASN: r = get_string_or_number(val, "Source_AutonomousSystemNumber", a, &sig->source_as_number, err); break;
                case F_SOURCE_ASORG: r = get_string(val, "Source_AutonomousSystemOrganization", a, &sig->source_as_org, err); break;
                case F_SOURCE_COUNTRY: r = get_string(val, "Source_Country", a, &sig->source_country, err); break;
                case F_SOURCE_LAT: r = get_double(val, "Source_Latitude", &sig->source_latitude, err); break;
                case F_SOURCE_LON: r = get_double(val, "Source_Longitude", &sig->source_longitude, err); break;
                case F_DST_IP: r = get_string(val, "dst_ip", a, &sig->dest_ip, err); break;
                case F_CAPACITY: r = get_int(val, "capacity", &sig->capacity, err); break;
                case F_LEAK_SPEED: r = get_leak_speed(val, "leak_speed", &sig->leak_speed_ns, err); break;
                case F_WHITELISTED: r = get_bool(val, "Whitelisted", &sig->whitelisted, err); break;
                case F_SIMULATION: r = get_bool(val, "Simulation", &sig->simulation, err); break;
                case F_REPROCESS: r = get_bool(val, "Reprocess", &sig->reprocess, err); break;
                case F_LABELS: r = parse_labels(val, a, sig, err); break;
                case F_MAPKEY: r = get_string(val, "MapKey", a, &sig->map_key, err); break;
                case F_EVENTS: r = parse_events(val, a, sig, err); break;
                case F_BANS: r = parse_bans(val, a, sig, err); break;
                case F_IGNORED: break;
                }
                if (r < 0) {
                        json_decref(extra);
                        return r;
                }
        }

        if (!sig->scenario || !*sig->scenario) {
                json_decref(extra);
                return spw_error_set(err, -EINVAL, "scenario: required (the name of the scenario that overflowed)");
        }
        if (sig->start_at && sig->stop_at && sig->stop_at < sig->start_at) {
                json_decref(extra);
                return spw_error_set(err, -EINVAL, "stop_at: earlier than start_at");
        }
        if (extra) {
                char *s = json_dumps(extra, JSON_COMPACT | JSON_ENSURE_ASCII);
                json_decref(extra);
                if (!s)
                        return -ENOMEM;
                sig->extra_json = arena_strdup(a, s);
                free(s);
                if (!sig->extra_json)
                        return -ENOMEM;
        }
        return 0;
}

int signal_parse(const char *buf, size_t len, arena *a, spw_signal *sig, spw_error *err) {
        json_error_t jerr;
        json_t *obj;
        int r;

        obj = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj)
                return spw_error_set(err, -EINVAL, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        r = signal_from_json(obj, a, sig, err);
        json_decref(obj);
        return r;
}

const char *signal_source_ip(const spw_signal *sig) {
        if (sig->source && sig->source->ip && *sig->source->ip)
                return sig->source->ip;
        return sig->source_ip && *sig->source_ip ? sig->source_ip : NULL;
}

const char *signal_source_range(const spw_signal *sig) {
        if (sig->source && sig->source->range && *sig->source->range)
                return sig->source->range;
        return sig->source_range && *sig->source_range ? sig->source_range : NULL;
}

/* ------------------------------------------------------------ to JSON */

static void set_str(json_t *o, const char *k, const char *v) {
        if (v)
                json_object_set_new(o, k, json_string(v));
}

static void set_time(json_t *o, const char *k, spw_usec_t t) {
        char buf[RFC3339_MAX];
        if (t)
                json_object_set_new(o, k, json_string(format_rfc3339(buf, sizeof buf, t)));
}

const char *ban_scope_name(const spw_ban *b) {
        if (b->scope_name)
                return b->scope_name;
        return b->scope == SPW_SCOPE_RANGE ? "Range" : b->scope == SPW_SCOPE_OTHER ? "Other" : "Ip";
}

json_t *ban_to_json(const spw_ban *b) {
        json_t *o = json_object();
        if (!o)
                return NULL;
        set_str(o, "MeasureSource", b->measure_source);
        set_str(o, "MeasureType", b->measure_type);
        set_str(o, "MeasureExtra", b->measure_extra);
        set_time(o, "Until", b->until);
        set_str(o, "TargetCN", b->target_cn);
        json_object_set_new(o, "TargetAS", json_integer(b->target_as));
        set_str(o, "TargetASName", b->target_as_name);
        set_str(o, "IpText", b->ip_text);
        set_str(o, "Reason", b->reason);
        set_str(o, "Scenario", b->scenario);
        set_str(o, "Scope", ban_scope_name(b));
        set_str(o, "Value", b->value ? b->value : b->ip_text);
        json_object_set_new(o, "Enforceable", json_boolean(b->scope != SPW_SCOPE_OTHER));
        return o;
}
