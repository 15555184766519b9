/* SPDX-License-Identifier: MIT */
/*
 * Signal -> JSON for the webhook payload. Field order follows CrowdSec's
 * SignalOccurence so that a payload reads like what the producer sent.
 * Absent strings (NULL) and unset times (0) are omitted rather than sent as
 * null; numbers and booleans are always present. The unknown members from
 * signal->extra_json are forwarded as they came, never interpreted, and
 * never override a known field. Every string goes through jstr(), which
 * replaces invalid UTF-8 instead of failing, so a signal always converts.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "payload.h"
#include "whutil.h"

/* A JSON string; invalid UTF-8 bytes become U+FFFD. NULL only on OOM. */
static json_t *jstr(const char *s) {
        json_t *v = json_string(s);
        strbuf b = { 0 };
        size_t n;

        if (v)
                return v;
        n = strlen(s);
        for (size_t i = 0; i < n;) {
                size_t l = utf8_char_len((const unsigned char *) s + i, n - i);
                if (l == 0) {
                        strbuf_puts(&b, "\xef\xbf\xbd");
                        i++;
                } else {
                        strbuf_append(&b, s + i, l);
                        i += l;
                }
        }
        v = b.oom ? NULL : json_stringn(strbuf_str(&b), b.len);
        strbuf_deinit(&b);
        return v;
}

/* Helpers that record the first failure in *ok and do nothing after it. */
static void set_new(json_t *o, const char *key, json_t *v, bool *ok) {
        if (!*ok || !v) {
                json_decref(v);
                *ok = false;
                return;
        }
        /* json_object_set_new() takes v even when it fails */
        if (json_object_set_new(o, key, v) < 0)
                *ok = false;
}

static void set_str(json_t *o, const char *key, const char *s, bool *ok) {
        if (s && *ok)
                set_new(o, key, jstr(s), ok);
}

static void set_time(json_t *o, const char *key, spw_usec_t t, bool *ok) {
        char buf[RFC3339_MAX];
        if (t != 0 && *ok)
                set_new(o, key, json_string(format_rfc3339(buf, sizeof buf, t)), ok);
}

static json_t *ban_to_json(const spw_ban *b, bool has_scope) {
        json_t *o = json_object();
        bool ok = o != NULL;

        set_str(o, "MeasureSource", b->measure_source, &ok);
        set_str(o, "MeasureType", b->measure_type, &ok);
        set_str(o, "MeasureExtra", b->measure_extra, &ok);
        set_time(o, "Until", b->until, &ok);
        set_str(o, "IpText", b->ip_text, &ok);
        /* ABI 2.2: the decision's scope ("Ip", "Range", "Country", ...) and value */
        set_str(o, "Scope", has_scope && b->scope_name ? b->scope_name : b->scope == SPW_SCOPE_RANGE ? "Range" : "Ip", &ok);
        set_str(o, "Value", has_scope && b->value ? b->value : b->ip_text, &ok);
        set_str(o, "Reason", b->reason, &ok);
        set_str(o, "Scenario", b->scenario, &ok);
        set_str(o, "TargetCN", b->target_cn, &ok);
        set_new(o, "TargetAS", json_integer(b->target_as), &ok);
        set_str(o, "TargetASName", b->target_as_name, &ok);
        if (!ok) {
                json_decref(o);
                return NULL;
        }
        return o;
}

json_t *payload_signal_to_json(const spw_signal *s) {
        json_t *o = json_object();
        bool ok = o != NULL;

        set_str(o, "scenario", s->scenario, &ok);
        set_str(o, "bucket_id", s->bucket_id, &ok);
        set_str(o, "alert_message", s->alert_message, &ok);
        set_new(o, "events_count", json_integer(s->events_count), &ok);
        set_time(o, "start_at", s->start_at, &ok);
        set_time(o, "stop_at", s->stop_at, &ok);
        if (s->source && ok) {
                json_t *src = json_object();
                bool sok = src != NULL;
                set_str(src, "Ip", s->source->ip, &sok);
                set_str(src, "Range", s->source->range, &sok);
                set_str(src, "AutonomousSystemNumber", s->source->as_number, &sok);
                set_str(src, "AutonomousSystemOrganization", s->source->as_org, &sok);
                set_str(src, "Country", s->source->country, &sok);
                set_new(src, "Latitude", json_real(s->source->latitude), &sok);
                set_new(src, "Longitude", json_real(s->source->longitude), &sok);
                if (!sok) {
                        json_decref(src);
                        src = NULL;
                }
                set_new(o, "source", src, &ok);
        }
        set_str(o, "Source_ip", s->source_ip, &ok);
        set_str(o, "Source_range", s->source_range, &ok);
        set_str(o, "Source_AutonomousSystemNumber", s->source_as_number, &ok);
        set_str(o, "Source_AutonomousSystemOrganization", s->source_as_org, &ok);
        set_str(o, "Source_Country", s->source_country, &ok);
        set_new(o, "Source_Latitude", json_real(s->source_latitude), &ok);
        set_new(o, "Source_Longitude", json_real(s->source_longitude), &ok);
        set_str(o, "dst_ip", s->dest_ip, &ok);
        set_new(o, "capacity", json_integer(s->capacity), &ok);
        /* Go's time.Duration marshals as nanoseconds */
        set_new(o, "leak_speed", json_integer(s->leak_speed_ns), &ok);
        set_new(o, "Whitelisted", json_boolean(s->whitelisted), &ok);
        set_new(o, "Simulation", json_boolean(s->simulation), &ok);
        set_new(o, "Reprocess", json_boolean(s->reprocess), &ok);

        if (ok) {
                json_t *labels = json_object();
                bool lok = labels != NULL;
                for (size_t i = 0; i < s->n_labels && lok; i++)
                        if (s->labels[i].key && s->labels[i].value)
                                set_str(labels, s->labels[i].key, s->labels[i].value, &lok);
                if (!lok) {
                        json_decref(labels);
                        labels = NULL;
                }
                set_new(o, "Labels", labels, &ok);
        }
        set_str(o, "MapKey", s->map_key, &ok);
        /* stable across restarts and redeliveries: receivers deduplicate on it */
        set_new(o, "spillway_signal_id", json_integer((json_int_t) s->id), &ok);

        if (s->n_events > 0 && ok) {
                json_t *events = json_array();
                bool eok = events != NULL;
                for (size_t i = 0; i < s->n_events && eok; i++) {
                        json_t *e = json_object();
                        bool ok2 = e != NULL;
                        set_time(e, "time", spw_signal_event(s, i)->time, &ok2);
                        set_str(e, "source_ip", spw_signal_event(s, i)->source_ip, &ok2);
                        set_str(e, "serialized", spw_signal_event(s, i)->serialized, &ok2);
                        if (!ok2) {
                                json_decref(e);
                                eok = false;
                        } else if (json_array_append_new(events, e) < 0)
                                eok = false; /* takes e even when it fails */
                }
                if (!eok) {
                        json_decref(events);
                        events = NULL;
                }
                set_new(o, "events_sequence", events, &ok);
        }

        if (s->n_bans > 0 && ok) {
                json_t *bans = json_array();
                bool bok = bans != NULL;
                for (size_t i = 0; i < s->n_bans && bok; i++) {
                        json_t *b = ban_to_json(spw_signal_ban(s, i), SPW_SIGNAL_BAN_HAS(s, value));
                        if (!b || json_array_append_new(bans, b) < 0)
                                bok = false;
                }
                if (!bok) {
                        json_decref(bans);
                        bans = NULL;
                }
                set_new(o, "ban_applications", bans, &ok);
        }

        /* extra_json appeared in ABI 1.0; guard anyway, as the ABI asks */
        if (ok && SPW_HAS_MEMBER(s, spw_signal, extra_json) && s->extra_json) {
                json_t *extra = json_loads(s->extra_json, JSON_DECODE_ANY, NULL);
                const char *key;
                json_t *v;

                /* not an object or not JSON: nothing to forward (the daemon
                 * only ever passes an object) */
                if (json_is_object(extra))
                        json_object_foreach(extra, key, v)
                                if (!json_object_get(o, key) && json_object_set(o, key, v) < 0)
                                        ok = false;
                json_decref(extra);
        }

        if (!ok) {
                json_decref(o);
                return NULL;
        }
        return o;
}
