/* SPDX-License-Identifier: MIT */
/*
 * Administrative job objects and the ban-list row filter. Filtering happens
 * on the worker thread while rows stream out of read_at(), so a list of
 * 100,000 bans with --limit 50 copies 50 rows, not 100,000.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "timeutil.h"

static void job_free_item(hub_item *it, bool discard) {
        admin_job_free((admin_job *) ((char *) it - offsetof(admin_job, done)));
}

admin_job *admin_job_new(admin_job_type type) {
        admin_job *j = calloc(1, sizeof *j);
        if (!j)
                return NULL;
        j->type = type;
        j->done.fn = job_free_item;
        return j;
}

admin_job *admin_job_free(admin_job *j) {
        if (!j)
                return NULL;
        free(j->backend);
        free(j->target);
        free(j->filter.scope);
        free(j->filter.reason);
        free(j->filter.country);
        free(j->filter.as);
        msg_unref(j->msg);
        strbuf_deinit(&j->rows);
        free(j);
        return NULL;
}

static bool icontains(const char *haystack, const char *needle) {
        size_t n = strlen(needle);
        if (!haystack)
                return n == 0;
        for (const char *p = haystack; *p; p++)
                if (strncasecmp(p, needle, n) == 0)
                        return true;
        return n == 0;
}

/* A row's scope: the plugin's (ABI 2.2), else Ip or Range from iptext. */
static const char *row_scope(const spw_ban_row *row) {
        if (SPW_HAS_MEMBER(row, spw_ban_row, scope) && row->scope)
                return row->scope;
        return row->iptext && strchr(row->iptext, '/') ? "Range" : "Ip";
}

static const char *row_value(const spw_ban_row *row) {
        if (SPW_HAS_MEMBER(row, spw_ban_row, value) && row->value)
                return row->value;
        return row->iptext;
}

bool ban_filter_match(const ban_filter *f, const spw_ban_row *row) {
        if (f->scope && strcasecmp(row_scope(row), f->scope) != 0)
                return false;
        if (f->has_ip || f->has_range) {
                ip_range target;
                if (!row->iptext || ip_parse_cidr(row->iptext, false, &target) < 0)
                        return false;
                if (f->has_ip && !ip_range_contains(&target, &f->ip))
                        return false;
                if (f->has_range && !ip_range_contains(&f->range, &target))
                        return false;
        }
        if (f->reason && !icontains(row->reason, f->reason))
                return false;
        if (f->country && (!row->cn || strcasecmp(row->cn, f->country) != 0))
                return false;
        if (f->as) {
                char num[32];
                snprintf(num, sizeof num, "%lld", (long long) row->as_number);
                if (!icontains(row->as, f->as) && !(row->as_number && icontains(num, f->as)))
                        return false;
        }
        return true;
}

static void member(strbuf *b, const char *key, const char *value, bool first) {
        strbuf_printf(b, "%s\"%s\":", first ? "" : ",", key);
        strbuf_json_string(b, value ? value : "");
}

void ban_row_append_json(strbuf *b, const spw_ban_row *row) {
        char until[RFC3339_MAX];
        strbuf_putc(b, '{');
        member(b, "source", row->source, true);
        member(b, "iptext", row->iptext, false);
        member(b, "scope", row_scope(row), false);
        member(b, "value", row_value(row), false);
        member(b, "reason", row->reason, false);
        strbuf_printf(b, ",\"bancount\":%lld", (long long) row->bancount);
        member(b, "action", row->action, false);
        member(b, "cn", row->cn, false);
        member(b, "as", row->as, false);
        strbuf_printf(b, ",\"as_number\":%lld,\"events_count\":%lld", (long long) row->as_number, (long long) row->events_count);
        member(b, "until", format_rfc3339(until, sizeof until, row->until), false);
        strbuf_putc(b, '}');
}
