/* SPDX-License-Identifier: MIT */
/*
 * Field names are SPILLWAY_*, documented in the project README, the same
 * names the daemon uses in its own entries, so one journalctl query finds
 * both. Values are single-line: newlines in producer text become spaces.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "journal-fields.h"

static int add(journal_entry *e, int n, const char *name, const char *value) {
        if (!value || !*value || n >= JOURNAL_MAX_FIELDS)
                return n;
        if (snprintf(e->field[n], JOURNAL_FIELD_MAX, "%s=%s", name, value) >= JOURNAL_FIELD_MAX)
                /* a value longer than a field is cut, and says so */
                memcpy(e->field[n] + JOURNAL_FIELD_MAX - 4, "...", 4);
        for (char *p = e->field[n]; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        return n + 1;
}

static const char *src_ip(const spw_signal *s) {
        if (s->source && s->source->ip && *s->source->ip)
                return s->source->ip;
        return s->source_ip;
}

static void fmt_time(char *buf, size_t size, spw_usec_t t) {
        time_t secs = (time_t) (t / 1000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int journal_fields_build(journal_entry *e, const spw_signal *sig, const char *backend, const char *identifier, int priority) {
        char buf[JOURNAL_FIELD_MAX], num[64];
        const char *ip = src_ip(sig);
        int n = 0;

        if (sig->n_bans > 0)
                snprintf(buf, sizeof buf, "%s: %s %s (%lld events)%s", sig->scenario, spw_signal_ban(sig, 0)->measure_type,
                         spw_signal_ban(sig, 0)->ip_text, (long long) sig->events_count, sig->n_bans > 1 ? " and more bans" : "");
        else
                snprintf(buf, sizeof buf, "%s from %s (%lld events)", sig->scenario, ip ? ip : "unknown source",
                         (long long) sig->events_count);
        n = add(e, n, "MESSAGE", sig->alert_message && *sig->alert_message ? sig->alert_message : buf);
        snprintf(num, sizeof num, "%d", priority);
        n = add(e, n, "PRIORITY", num);
        n = add(e, n, "SYSLOG_IDENTIFIER", identifier);
        n = add(e, n, "SPILLWAY_BACKEND", backend);
        n = add(e, n, "SPILLWAY_SCENARIO", sig->scenario);
        n = add(e, n, "SPILLWAY_SOURCE_IP", ip);
        n = add(e, n, "SPILLWAY_SOURCE_RANGE", sig->source && sig->source->range ? sig->source->range : sig->source_range);
        n = add(e, n, "SPILLWAY_COUNTRY", sig->source && sig->source->country ? sig->source->country : sig->source_country);
        n = add(e, n, "SPILLWAY_AS", sig->source && sig->source->as_org ? sig->source->as_org : sig->source_as_org);
        snprintf(num, sizeof num, "%lld", (long long) sig->events_count);
        n = add(e, n, "SPILLWAY_EVENTS_COUNT", num);
        snprintf(num, sizeof num, "%llu", (unsigned long long) sig->id);
        n = add(e, n, "SPILLWAY_SIGNAL_ID", num);
        n = add(e, n, "SPILLWAY_BUCKET_ID", sig->bucket_id);
        if (sig->simulation)
                n = add(e, n, "SPILLWAY_SIMULATION", "1");
        if (sig->whitelisted)
                n = add(e, n, "SPILLWAY_WHITELISTED", "1");
        if (sig->n_bans > 0) {
                snprintf(num, sizeof num, "%zu", sig->n_bans);
                n = add(e, n, "SPILLWAY_BANS", num);
                n = add(e, n, "SPILLWAY_TARGET", spw_signal_ban(sig, 0)->ip_text);
                n = add(e, n, "SPILLWAY_ACTION", spw_signal_ban(sig, 0)->measure_type);
                fmt_time(num, sizeof num, spw_signal_ban(sig, 0)->until);
                n = add(e, n, "SPILLWAY_UNTIL", num);
        }
        for (size_t i = 0; i < sig->n_labels; i++)
                if (!strcmp(sig->labels[i].key, "remediation"))
                        n = add(e, n, "SPILLWAY_REMEDIATION", sig->labels[i].value);
        return n;
}
