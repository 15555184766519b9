/* SPDX-License-Identifier: MIT */
/*
 * Administrative job objects and the ban-list row filter. Filtering happens
 * on the worker thread while rows stream out of read_at(), so a list of
 * 100,000 bans with --limit 50 copies 50 rows, not 100,000. A list
 * without a limit streams in chunks with back-pressure (admin.h).
 */
#include <errno.h>
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
        pthread_mutex_init(&j->flow_lock, NULL);
        pthread_cond_init(&j->flow_cond, NULL);
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
        pthread_mutex_destroy(&j->flow_lock);
        pthread_cond_destroy(&j->flow_cond);
        free(j);
        return NULL;
}

typedef struct list_chunk {
        hub_item it;
        admin_job *job;
        char *data;
        size_t len;
} list_chunk;

static void chunk_run(hub_item *it, bool discard) {
        list_chunk *c = (list_chunk *) it;
        if (discard) /* torn down: nobody takes it; let the worker go */
                admin_job_list_cancel(c->job);
        c->job->chunk_fn(c->job, c->data, c->len, discard);
        free(c);
}

void admin_job_list_taken(admin_job *j, size_t n) {
        pthread_mutex_lock(&j->flow_lock);
        j->in_flight -= MIN(n, j->in_flight);
        pthread_cond_signal(&j->flow_cond);
        pthread_mutex_unlock(&j->flow_lock);
}

void admin_job_list_cancel(admin_job *j) {
        pthread_mutex_lock(&j->flow_lock);
        j->cancel = true;
        pthread_cond_signal(&j->flow_cond);
        pthread_mutex_unlock(&j->flow_lock);
}

int admin_job_list_push(admin_job *j, hub *h) {
        list_chunk *c;
        int r = 0;

        if (j->rows.oom)
                return -ENOMEM;
        if (j->rows.len > 0) {
                c = calloc(1, sizeof *c);
                if (!c)
                        return -ENOMEM;
                c->job = j;
                c->it.fn = chunk_run;
                c->len = j->rows.len;
                c->data = strbuf_steal(&j->rows);
                if (!c->data) {
                        free(c);
                        return -ENOMEM;
                }
                j->streamed = true;
                pthread_mutex_lock(&j->flow_lock);
                j->in_flight += c->len;
                pthread_mutex_unlock(&j->flow_lock);
                hub_post(h, &c->it);
        }
        pthread_mutex_lock(&j->flow_lock);
        while (!j->cancel && j->in_flight > ADMIN_LIST_WINDOW && r == 0) {
                usec_t t0 = now_monotonic();
                struct timespec ts;
                usec_t until;
                if (j->max_wait <= 0) {
                        r = -ETIMEDOUT;
                        break;
                }
                until = now_realtime() + j->max_wait;
                ts.tv_sec = (time_t) (until / USEC_PER_SEC);
                ts.tv_nsec = (long) (until % USEC_PER_SEC) * 1000;
                (void) pthread_cond_timedwait(&j->flow_cond, &j->flow_lock, &ts);
                usec_t spent = now_monotonic() - t0;
                j->max_wait = spent >= j->max_wait ? 0 : j->max_wait - spent;
        }
        if (j->cancel)
                r = -ECANCELED;
        pthread_mutex_unlock(&j->flow_lock);
        return r;
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
