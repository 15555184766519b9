/* SPDX-License-Identifier: MIT */
/*
 * The HTTP ingest: libmicrohttpd on the daemon's sd-event loop.
 *
 * Each listening socket (an activated fd named "http", or an entry of
 * sockets.http: "HOST:PORT" or a unix socket path) gets one MHD daemon in
 * external-polling mode with epoll (MHD_USE_EPOLL, no MHD thread): MHD's
 * epoll fd is one sd-event io source, and one timer follows
 * MHD_get_timeout(). Every MHD callback therefore runs on the main thread,
 * like the unix-socket transport (conn.c), and hands its signals to the same
 * framing-independent room (ingest_handle): the per-signal results in an
 * HTTP reply are exactly the socket protocol's reply lines.
 *
 * A request body is parsed completely before anything is pushed: a body
 * that is not valid JSON/NDJSON, or one item that is not a valid signal,
 * is a 400 naming the item and field, and nothing of it is accepted. Then
 * the items are handed to ingest one by one, in order. An item that waits
 * (ack=flushed, or parked on a full "block" queue) suspends the MHD
 * connection (MHD_suspend_connection); a parked item also stops the walk,
 * so items keep their order, as on a socket. Completions arrive through the
 * request callbacks (from the hub or the park): they only mark the HTTP
 * request; http_flush_dirty() (called by daemon_flush_replies) continues
 * the walk or resumes the connection and runs MHD so it writes the reply.
 * A parked item whose block_timeout passes makes the rest of the body
 * "not tried" and the reply a 503 with Retry-After.
 *
 * Security: a request needs a token (Authorization: Bearer, or X-Api-Key),
 * compared in constant time and never logged, unless it came over a unix
 * socket from a uid listed in http_unix_uids (root and our own uid by
 * default). Limits: body size (http_max_body, 413), header memory
 * (http_max_header: MHD answers 431), connections (http_max_connections:
 * refused in the accept policy), idle and slow clients (http_timeout).
 * Every refusal is counted in the metrics.
 *
 * Reload: each server is rebuilt on its listening socket (renewed TLS files,
 * new limits); the old MHD daemon is quiesced and keeps serving its open
 * connections until they are done.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"
#include "daemon.h"
#include "http.h"
#include "ingest.h"
#include "log.h"
#include "ratelimit.h"
#include "status.h"
#include "sigmodel.h"
#include "strutil.h"

/* ------------------------------------------------------------ pure helpers */

int http_parse_go_duration(const char *s, long long *ret_usec) {
        static const struct {
                const char *unit;
                double usec;
        } units[] = { { "ns", 1e-3 }, { "us", 1 }, { "µs", 1 }, { "ms", 1e3 }, { "s", 1e6 }, { "m", 60e6 }, { "h", 3600e6 } };
        double total = 0;
        bool neg = false;

        if (!s || !*s)
                return -EINVAL;
        if (*s == '-' || *s == '+')
                neg = *s++ == '-';
        if (streq(s, "0")) {
                *ret_usec = 0;
                return 0;
        }
        while (*s) {
                char *end;
                double v = strtod(s, &end);
                size_t best = 0, bi = 0;
                if (end == s || v < 0 || !isfinite(v))
                        return -EINVAL;
                s = end;
                for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                        size_t l = strlen(units[i].unit);
                        if (strncmp(s, units[i].unit, l) == 0 && l > best) {
                                best = l;
                                bi = i;
                        }
                }
                if (!best)
                        return -EINVAL;
                s += best;
                total += v * units[bi].usec;
        }
        if (total > 9e18)
                return -ERANGE;
        *ret_usec = (long long) (neg ? -total : total);
        return 0;
}

bool http_token_equal(const char *presented, const char *expected) {
        size_t lp = strlen(presented), le = strlen(expected);
        unsigned char diff = lp != le;
        /* walk the expected token whatever was presented: the time depends on
         * the length of the secret only */
        for (size_t i = 0; i < le; i++)
                diff |= (unsigned char) (expected[i] ^ (i < lp ? presented[i] : 0));
        return diff == 0;
}

static const char *jstr(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_string(v) ? json_string_value(v) : NULL;
}

static void set_copy(json_t *dst, const char *dkey, json_t *src, const char *skey) {
        json_t *v = json_object_get(src, skey);
        if (v && !json_is_null(v))
                json_object_set(dst, dkey, v);
}

static void rfc3339(long long usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / 1000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

json_t *http_alert_to_signal(json_t *alert, size_t index, bool apply, long long now_usec, spw_error *err) {
        json_t *src, *v;
        const char *scenario, *scope, *value;
        size_t i;

        if (!json_is_object(alert)) {
                spw_error_set(err, -EINVAL, "alert %zu: expected a JSON object (a CrowdSec models.Alert)", index);
                return NULL;
        }
        scenario = jstr(alert, "scenario");
        src = json_object_get(alert, "source");
        scope = json_is_object(src) ? jstr(src, "scope") : NULL;
        value = json_is_object(src) ? jstr(src, "value") : NULL;
        if (!scenario || !*scenario || !json_is_object(src) || !scope || !value) {
                spw_error_set(err, -EINVAL, "alert %zu: missing required field%s%s%s%s%s", index,
                              !scenario || !*scenario ? " scenario" : "", !json_is_object(src) ? " source" : "",
                              json_is_object(src) && !scope ? " source.scope" : "", json_is_object(src) && !value ? " source.value" : "",
                              "");
                return NULL;
        }

        json_t *sig = json_object(), *s = json_object(), *labels = json_object();
        if (!sig || !s || !labels) {
                json_decref(sig);
                json_decref(s);
                json_decref(labels);
                spw_error_set(err, -ENOMEM, "out of memory");
                return NULL;
        }
        json_object_set_new(sig, "scenario", json_string(scenario));
        set_copy(sig, "alert_message", alert, "message");
        set_copy(sig, "events_count", alert, "events_count");
        set_copy(sig, "capacity", alert, "capacity");
        set_copy(sig, "leak_speed", alert, "leakspeed");
        set_copy(sig, "simulation", alert, "simulated");
        set_copy(sig, "start_at", alert, "start_at");
        set_copy(sig, "stop_at", alert, "stop_at");

        /* source: the scope says what value is */
        if (strcasecmp(scope, "ip") == 0)
                json_object_set_new(s, "Ip", json_string(value));
        else if (strcasecmp(scope, "range") == 0)
                json_object_set_new(s, "Range", json_string(value));
        if (jstr(src, "ip") && *jstr(src, "ip"))
                set_copy(s, "Ip", src, "ip");
        if (jstr(src, "range") && *jstr(src, "range"))
                set_copy(s, "Range", src, "range");
        if (jstr(src, "as_number") && *jstr(src, "as_number"))
                set_copy(s, "AutonomousSystemNumber", src, "as_number");
        if (jstr(src, "as_name") && *jstr(src, "as_name"))
                set_copy(s, "AutonomousSystemOrganization", src, "as_name");
        if (jstr(src, "cn") && *jstr(src, "cn"))
                set_copy(s, "Country", src, "cn");
        if (json_is_number(json_object_get(src, "latitude")))
                set_copy(s, "Latitude", src, "latitude");
        if (json_is_number(json_object_get(src, "longitude")))
                set_copy(s, "Longitude", src, "longitude");
        json_object_set_new(sig, "source", s);

        /* labels: the alert's meta, plus what identifies it in CrowdSec */
        json_array_foreach(json_object_get(alert, "meta"), i, v) {
                const char *k = jstr(v, "key"), *val = jstr(v, "value");
                if (k && val)
                        json_object_set_new(labels, k, json_string(val));
        }
        if (json_is_true(json_object_get(alert, "remediation")))
                json_object_set_new(labels, "remediation", json_string("true"));
        if (jstr(alert, "uuid"))
                json_object_set_new(labels, "crowdsec_uuid", json_string(jstr(alert, "uuid")));
        if (jstr(alert, "machine_id"))
                json_object_set_new(labels, "crowdsec_machine_id", json_string(jstr(alert, "machine_id")));
        json_object_set_new(labels, "crowdsec_scope", json_string(scope));
        json_object_set_new(labels, "crowdsec_value", json_string(value));
        json_object_set_new(sig, "labels", labels);

        /* events: one per event, its meta serialized */
        json_t *events = json_array();
        json_array_foreach(json_object_get(alert, "events"), i, v) {
                json_t *e = json_object(), *m = json_object(), *mv;
                size_t j;
                set_copy(e, "time", v, "timestamp");
                json_array_foreach(json_object_get(v, "meta"), j, mv) {
                        const char *k = jstr(mv, "key"), *val = jstr(mv, "value");
                        if (k && val) {
                                json_object_set_new(m, k, json_string(val));
                                if (streq(k, "source_ip"))
                                        json_object_set_new(e, "source_ip", json_string(val));
                        }
                }
                char *ser = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
                if (ser)
                        json_object_set_new(e, "serialized", json_string(ser));
                free(ser);
                json_decref(m);
                json_array_append_new(events, e);
        }
        if (json_array_size(events))
                json_object_set_new(sig, "events_sequence", events);
        else
                json_decref(events);

        /* decisions: bans as CrowdSec decided them, or left to our profiles */
        if (apply) {
                json_t *bans = json_array();
                json_array_foreach(json_object_get(alert, "decisions"), i, v) {
                        const char *dscope = jstr(v, "scope"), *dval = jstr(v, "value"), *dur = jstr(v, "duration");
                        long long usec;
                        char until[64];
                        if (!json_is_object(v) || !dscope || !dval || !dur) {
                                spw_error_set(err, -EINVAL, "alert %zu: decisions[%zu]: missing required field%s%s%s", index, i,
                                              !dscope ? " scope" : "", !dval ? " value" : "", !dur ? " duration" : "");
                                json_decref(bans);
                                json_decref(sig);
                                return NULL;
                        }
                        if (json_is_true(json_object_get(v, "simulated")))
                                continue; /* CrowdSec's simulation mode: not enforced */
                        if (http_parse_go_duration(dur, &usec) < 0) {
                                spw_error_set(err, -EINVAL, "alert %zu: decisions[%zu].duration: '%.40s' is not a Go duration like \"4h0m0s\"",
                                              index, i, dur);
                                json_decref(bans);
                                json_decref(sig);
                                return NULL;
                        }
                        rfc3339(now_usec + usec, until, sizeof until);
                        /* a country, an AS, a user name...: stored and forwarded
                         * under its scope, never enforced by address */
                        json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:s}", "IpText", dval, "Scope", dscope, "Value", dval,
                                              "Until", until, "Reason", jstr(v, "scenario") ? jstr(v, "scenario") : scenario);
                        set_copy(b, "MeasureType", v, "type");
                        set_copy(b, "MeasureSource", v, "origin");
                        json_object_set_new(b, "Scenario", json_string(scenario));
                        json_array_append_new(bans, b);
                }
                json_object_set_new(sig, "ban_applications", bans);
        }
        return sig;
}

/* ------------------------------------------------------------ bodies */

/* application/x-ndjson (or jsonl): one signal per line. Anything else: one
 * signal object or an array of them. */
int http_parse_signals(const char *body, size_t len, const char *ctype, json_t **ret, char *why, size_t whysize) {
        const char *p = body ? body : "";
        json_error_t jerr;
        bool ndjson = ctype && (strncasecmp(ctype, "application/x-ndjson", 20) == 0 || strncasecmp(ctype, "application/ndjson", 18) == 0 ||
                                strncasecmp(ctype, "application/jsonl", 17) == 0 || strncasecmp(ctype, "application/json-lines", 22) == 0);
        json_t *items = json_array();

        *ret = NULL;
        if (!items)
                return -ENOMEM;
        if (ndjson) {
                size_t line = 0;
                while (len > 0) {
                        const char *nl = memchr(p, '\n', len);
                        size_t l = nl ? (size_t) (nl - p) : len;
                        line++;
                        size_t t = l;
                        while (t > 0 && (p[t - 1] == '\r' || p[t - 1] == ' ' || p[t - 1] == '\t'))
                                t--;
                        if (t > 0) {
                                json_t *o = json_loadb(p, t, JSON_REJECT_DUPLICATES, &jerr);
                                if (!o) {
                                        snprintf(why, whysize, "line %zu, column %d: %s", line, jerr.column, jerr.text);
                                        json_decref(items);
                                        return -EINVAL;
                                }
                                json_array_append_new(items, o);
                        }
                        p += nl ? l + 1 : l;
                        len -= nl ? l + 1 : l;
                }
        } else {
                json_t *o = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
                if (!o) {
                        snprintf(why, whysize, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
                        json_decref(items);
                        return -EINVAL;
                }
                if (json_is_array(o)) {
                        json_decref(items);
                        items = o;
                } else
                        json_array_append_new(items, o);
        }
        if (json_array_size(items) == 0) {
                snprintf(why, whysize, "no signal in the body");
                json_decref(items);
                return -EINVAL;
        }
        *ret = items;
        return 0;
}

int http_parse_alerts(const char *body, size_t len, bool apply, long long now_usec, json_t **ret, char *why, size_t whysize) {
        json_error_t jerr;
        json_t *o = json_loadb(body ? body : "", len, 0, &jerr), *a, *items;
        size_t i;

        *ret = NULL;
        if (!o) {
                snprintf(why, whysize, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
                return -EINVAL;
        }
        if (!json_is_array(o)) {
                json_t *arr = json_array();
                if (!arr) {
                        json_decref(o);
                        return -ENOMEM;
                }
                json_array_append_new(arr, o);
                o = arr;
        }
        items = json_array();
        if (!items) {
                json_decref(o);
                return -ENOMEM;
        }
        json_array_foreach(o, i, a) {
                spw_error err = { 0 };
                json_t *sig = http_alert_to_signal(a, i, apply, now_usec, &err);
                if (!sig) {
                        snprintf(why, whysize, "%s", err.msg);
                        json_decref(o);
                        json_decref(items);
                        return -EINVAL;
                }
                json_array_append_new(items, sig);
        }
        json_decref(o);
        *ret = items;
        return 0;
}

#if HAVE_MICROHTTPD
#include <microhttpd.h>
#include <dlfcn.h>

/* ------------------------------------------------------------ libmicrohttpd, loaded */

/* libmicrohttpd is loaded when an HTTP ingest is configured, not linked:
 * it brings GnuTLS, p11-kit, nettle, gmp and more, ~2 MiB of resident
 * memory (and p11-kit's start-up) in every daemon, most of which never
 * serve HTTP (issue 17: idle RSS). Its soname has been .so.12 since
 * 0.9.53; the Debian package depends on libmicrohttpd12. */
#define MHD_SONAME "libmicrohttpd.so.12"
#define MHD_FUNCTIONS(X)                                                                                                 \
        X(start_daemon) X(stop_daemon) X(run) X(get_timeout) X(get_daemon_info) X(quiesce_daemon)                        \
        X(lookup_connection_value) X(get_connection_info) X(suspend_connection) X(resume_connection) X(queue_response) \
        X(create_response_from_buffer) X(destroy_response) X(add_response_header)

static struct {
        void *dl;
#define MHD_MEMBER(n) __typeof__(&MHD_##n) n;
        MHD_FUNCTIONS(MHD_MEMBER)
#undef MHD_MEMBER
} mhd;

static int mhd_load(spw_error *err) {
        void *dl;

        if (mhd.dl)
                return 0;
        dl = dlopen(MHD_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                return spw_error_set(err, -ENOENT, "sockets.http is configured but %s cannot be loaded: %s "
                                     "(install libmicrohttpd12)", MHD_SONAME, dlerror());
#define MHD_LOOKUP(n)                                                                                                    \
        if (!(mhd.n = (__typeof__(mhd.n)) dlsym(dl, "MHD_" #n))) {                                                      \
                dlclose(dl);                                                                                           \
                return spw_error_set(err, -ENOENT, "%s has no MHD_%s: not the libmicrohttpd this was built for",      \
                                     MHD_SONAME, #n);                                                                  \
        }
        MHD_FUNCTIONS(MHD_LOOKUP)
#undef MHD_LOOKUP
        mhd.dl = dl;
        return 0;
}

/* ------------------------------------------------------------ state */

typedef struct http_server http_server;
typedef struct http_req http_req;

typedef enum endpoint {
        EP_NONE,
        EP_SIGNALS,
        EP_ALERTS,
        EP_METRICS,
        EP_HEALTHZ,
} endpoint;

typedef struct http_stats {
        uint64_t requests;
        uint64_t status[6];        /* by first digit */
        uint64_t unauthorized;
        uint64_t too_large;
        uint64_t malformed;
        uint64_t queue_full;
        uint64_t refused_connections;
        uint64_t timeouts;
        uint64_t aborted;          /* client went away, or MHD's own error replies */
} http_stats;

struct http_server {
        struct http_state *h;
        struct MHD_Daemon *mhd;
        int fd;                    /* listening socket (owned by the MHD daemon while it runs) */
        bool is_unix;
        char *name;                /* for logs */
        char *path;                /* a unix socket we created */
        sd_event_source *io, *timer;
        bool draining;             /* quiesced: serves open connections only */
        http_server *next;
};

typedef struct http_state {
        daemon_t *d;
        http_server *servers;
        http_req *dirty;
        http_req *suspended;       /* list, to resume them all at exit */
        bool need_run;
        unsigned in_run;
        unsigned n_open;           /* open connections, every server */
        uint64_t next_id;
        http_stats stats;
        /* the token, read again when the configuration changes */
        const spw_config *token_for;
        char *token;
        uid_t *uids;
        size_t n_uids;
} http_state;

struct http_req {
        http_server *srv;
        struct MHD_Connection *conn;
        uint64_t id;
        endpoint ep;
        bool authorized;
        bool started;              /* items handed to ingest */
        bool too_large;
        bool suspended;
        bool dirty;
        bool done;                 /* every item has its reply */
        bool queue_refused;
        bool flushed;
        struct ucred peer;
        strbuf body;
        json_t *items;             /* signals to ingest */
        size_t n_items, next;
        request **reqs;
        unsigned waiting;          /* flushed acks in flight */
        request *parked;
        http_req *dirty_next;
        http_req *prev, *next_susp;
};

/* ------------------------------------------------------------ replies */

static enum MHD_Result reply(http_req *q, struct MHD_Connection *c, unsigned status, const char *type, char *body) {
        http_state *h = q ? q->srv->h : NULL;
        struct MHD_Response *resp = mhd.create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        enum MHD_Result k;
        if (!resp) {
                free(body);
                return MHD_NO;
        }
        mhd.add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        if (status == 503)
                mhd.add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "5");
        if (status == 401)
                mhd.add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"spillway\"");
        if (h && status / 100 < 6)
                h->stats.status[status / 100]++;
        k = mhd.queue_response(c, status, resp);
        mhd.destroy_response(resp);
        return k;
}

static enum MHD_Result reply_error(http_req *q, struct MHD_Connection *c, unsigned status, const char *fmt, ...) _printf_(4, 5);
static enum MHD_Result reply_error(http_req *q, struct MHD_Connection *c, unsigned status, const char *fmt, ...) {
        char text[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        json_t *o = json_pack("{s:b, s:s}", "ok", 0, "error", text);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (s) {
                size_t l = strlen(s);
                char *t = realloc(s, l + 2);
                if (t) {
                        s = t;
                        s[l] = '\n';
                        s[l + 1] = 0;
                }
        }
        return reply(q, c, status, "application/json", s ? s : strdup("{\"ok\":false}\n"));
}

/* The reply to a body of signals: one result per item, in order, each the
 * socket protocol's reply line. */
static enum MHD_Result reply_results(http_req *q) {
        strbuf b = STRBUF_INIT;
        size_t ok = 0;
        bool failed = false;
        for (size_t i = 0; i < q->n_items; i++) {
                const char *rp = q->reqs[i] && q->reqs[i]->reply ? q->reqs[i]->reply : "{\"ok\":false,\"error\":\"no reply (out of memory)\"}";
                if (strncmp(rp, "{\"ok\":true", 10) == 0)
                        ok++;
                else
                        failed = true;
        }
        unsigned status = !failed ? 200 : q->queue_refused ? 503 : 502;
        if (q->queue_refused)
                q->srv->h->stats.queue_full++;
        strbuf_printf(&b, "{\"ok\":%s,\"accepted\":%zu,\"refused\":%zu,\"results\":[", failed ? "false" : "true", ok, q->n_items - ok);
        for (size_t i = 0; i < q->n_items; i++) {
                if (i)
                        strbuf_putc(&b, ',');
                strbuf_puts(&b, q->reqs[i] && q->reqs[i]->reply ? q->reqs[i]->reply : "{\"ok\":false,\"error\":\"no reply (out of memory)\"}");
        }
        strbuf_puts(&b, "]}\n");
        if (b.oom) {
                strbuf_deinit(&b);
                return reply_error(q, q->conn, 500, "out of memory");
        }
        return reply(q, q->conn, status, "application/json", strbuf_steal(&b));
}

/* ------------------------------------------------------------ requests and the ingest room */

static void mark_dirty(http_req *q) {
        http_state *h = q->srv->h;
        if (q->dirty)
                return;
        q->dirty = true;
        q->dirty_next = h->dirty;
        h->dirty = q;
}

static void item_done(request *r, void *userdata) {
        http_req *q = userdata;
        if (r == q->parked) {
                /* out of the park: answered, or now waiting for its flush */
                q->parked = NULL;
                if (r->state != REQ_DONE)
                        q->waiting++;
                else if (r->reply && strncmp(r->reply, "{\"ok\":false", 11) == 0)
                        q->queue_refused = true; /* block_timeout passed, or stopping */
        } else if (q->waiting > 0)
                q->waiting--;
        mark_dirty(q);
}

/* Hand the next items to ingest; stop at a parked one. */
static void walk_items(http_req *q) {
        daemon_t *d = q->srv->h->d;
        bool pushed = false;

        while (q->next < q->n_items && !q->parked) {
                size_t i = q->next++;
                json_t *item = json_array_get(q->items, i);
                request *r = request_new(item_done, q, &q->peer, q->id);
                q->reqs[i] = r;
                if (!r)
                        continue;
                if (q->queue_refused || d->stopping) {
                        request_error(r, "not tried: %s", d->stopping ? "spillwayd is stopping" :
                                      "an earlier signal of this request found a backend queue full; send this one again later");
                        continue;
                }
                ingest_handle(d, r, item, NULL, 512);
                pushed = true;
                if (r->state == REQ_PARKED)
                        q->parked = r;
                else if (r->state != REQ_DONE)
                        q->waiting++;
        }
        if (pushed)
                ingest_wake(d);
        q->done = q->next == q->n_items && !q->parked && q->waiting == 0;
}

static void susp_link(http_req *q) {
        http_state *h = q->srv->h;
        q->suspended = true;
        q->prev = NULL;
        q->next_susp = h->suspended;
        if (h->suspended)
                h->suspended->prev = q;
        h->suspended = q;
}

static void susp_unlink(http_req *q) {
        http_state *h = q->srv->h;
        if (!q->suspended)
                return;
        q->suspended = false;
        if (q->prev)
                q->prev->next_susp = q->next_susp;
        else
                h->suspended = q->next_susp;
        if (q->next_susp)
                q->next_susp->prev = q->prev;
}

static void run_servers(http_state *h);

void http_flush_dirty(daemon_t *d) {
        http_state *h = d->http;
        if (!h)
                return;
        while (h->dirty) {
                http_req *q = h->dirty;
                h->dirty = q->dirty_next;
                q->dirty = false;
                if (!q->done)
                        walk_items(q);
                if (q->done && q->suspended) {
                        susp_unlink(q);
                        mhd.resume_connection(q->conn);
                        h->need_run = true;
                }
        }
        if (h->need_run && !h->in_run)
                run_servers(h);
}

/* ------------------------------------------------------------ bodies */

/* The items are checked as signals in check_items (a scratch parse), so
 * that nothing of a bad body is accepted. */
static int parse_signals(http_req *q, const char *ctype, char *why, size_t whysize) {
        return http_parse_signals(q->body.data, q->body.len, ctype, &q->items, why, whysize);
}

/* Alerts → signals. */
static int parse_alerts(http_req *q, char *why, size_t whysize) {
        const spw_config *c = engine_config(q->srv->h->d->engine);
        bool apply = c->http.crowdsec_decisions && streq(c->http.crowdsec_decisions, "apply");
        return http_parse_alerts(q->body.data, q->body.len, apply, (long long) now_realtime(), &q->items, why, whysize);
}

static int check_items(http_req *q, bool flushed, char *why, size_t whysize) {
        json_t *item;
        size_t i;
        json_array_foreach(q->items, i, item) {
                arena a = ARENA_INIT;
                spw_signal sig = { 0 };
                spw_error err = { 0 };
                int k = signal_from_json(item, &a, &sig, &err);
                arena_deinit(&a);
                if (k < 0) {
                        snprintf(why, whysize, "signal %zu: %s", i, k == -ENOMEM ? "out of memory" : err.msg);
                        return k;
                }
                if (flushed) {
                        json_t *env = json_pack("{s:O, s:s}", "signal", item, "ack", "flushed");
                        if (!env)
                                return -ENOMEM;
                        json_array_set_new(q->items, i, env);
                }
        }
        q->n_items = json_array_size(q->items);
        q->reqs = calloc(q->n_items, sizeof *q->reqs);
        return q->reqs ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------ authorization */

static void load_credentials(http_state *h) {
        const spw_config *c = engine_config(h->d->engine);
        if (h->token_for == c)
                return;
        h->token_for = c;
        free(h->token);
        h->token = NULL;
        free(h->uids);
        h->uids = NULL;
        h->n_uids = 0;
        if (c->http.token)
                h->token = strdup(c->http.token);
        else if (c->http.token_file) {
                spw_error err = { 0 };
                char *t = NULL;
                size_t l = 0;
                if (read_full_file(c->http.token_file, 4096, &t, &l, &err) < 0)
                        log_error("%s; every HTTP request without a permitted unix peer is refused (401)", err.msg);
                else {
                        while (l > 0 && (t[l - 1] == '\n' || t[l - 1] == '\r' || t[l - 1] == ' '))
                                t[--l] = 0;
                        h->token = t;
                }
        }
        /* permitted unix peers: root, ourselves, and http_unix_uids */
        size_t cap = 2;
        const char *list = c->http.unix_uids ? c->http.unix_uids : "";
        for (const char *p = list; *p; p++)
                cap += *p == ',' || *p == ' ';
        h->uids = calloc(cap + 1, sizeof *h->uids);
        if (!h->uids)
                return;
        h->uids[h->n_uids++] = 0;
        h->uids[h->n_uids++] = getuid();
        _cleanup_free_ char *copy = strdup(list);
        char *save = NULL;
        for (char *w = copy ? strtok_r(copy, ", ", &save) : NULL; w; w = strtok_r(NULL, ", ", &save)) {
                char *end;
                unsigned long u = strtoul(w, &end, 10);
                if (*end) {
                        struct passwd *pw = getpwnam(w);
                        if (!pw) {
                                log_warning("%s: sockets.http_unix_uids: no user '%s'; ignoring it", c->file, w);
                                continue;
                        }
                        u = pw->pw_uid;
                }
                if (h->n_uids < cap + 1)
                        h->uids[h->n_uids++] = (uid_t) u;
        }
}

static bool authorized(http_req *q, struct MHD_Connection *c) {
        http_state *h = q->srv->h;
        const char *auth, *key;

        load_credentials(h);
        if (q->srv->is_unix && q->peer.uid != (uid_t) -1)
                for (size_t i = 0; i < h->n_uids; i++)
                        if (h->uids[i] == q->peer.uid)
                                return true;
        if (!h->token || !*h->token)
                return false;
        auth = mhd.lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
                auth += 7;
                while (*auth == ' ')
                        auth++;
                if (http_token_equal(auth, h->token))
                        return true;
        }
        key = mhd.lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
        return key && http_token_equal(key, h->token);
}

/* ------------------------------------------------------------ MHD callbacks */

static endpoint find_endpoint(const char *url, const char *method, bool *method_ok) {
        static const struct {
                const char *url, *method;
                endpoint ep;
        } table[] = {
                { "/v1/signals", "POST", EP_SIGNALS },
                { "/v1/crowdsec/alerts", "POST", EP_ALERTS },
                { "/metrics", "GET", EP_METRICS },
                { "/healthz", "GET", EP_HEALTHZ },
        };
        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(url, table[i].url)) {
                        *method_ok = streq(method, table[i].method) || (streq(table[i].method, "GET") && streq(method, "HEAD"));
                        return table[i].ep;
                }
        *method_ok = false;
        return EP_NONE;
}

static enum MHD_Result serve_get(http_req *q, struct MHD_Connection *c) {
        daemon_t *d = q->srv->h->d;
        if (q->ep == EP_METRICS) {
                char *m = metrics_text(d);
                if (!m)
                        return reply_error(q, c, 500, "out of memory");
                return reply(q, c, 200, "text/plain; version=0.0.4", m);
        }
        /* healthz */
        engine *e = d->engine;
        json_t *down = json_array(), *up = json_array();
        for (size_t i = 0; i < engine_n_backends(e); i++) {
                backend *b = engine_backend(e, i);
                bool ok = b && backend_get_state(b) == BACKEND_RUNNING;
                json_array_append_new(ok ? up : down, json_string(engine_backend_name(e, i)));
        }
        bool healthy = json_array_size(down) == 0 && !d->stopping;
        json_t *o = json_pack("{s:b, s:o, s:o, s:b}", "ok", healthy, "up", up, "down", down, "stopping", d->stopping);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!s)
                return reply_error(q, c, 500, "out of memory");
        return reply(q, c, healthy ? 200 : 503, "application/json", s);
}

static void touch(struct MHD_Connection *c);

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method, const char *version,
                                 const char *upload, size_t *upload_size, void **con_cls) {
        http_server *srv = cls;
        http_state *h = srv->h;
        daemon_t *d = h->d;
        const spw_config *cfg = engine_config(d->engine);
        http_req *q = *con_cls;
        char why[1024];

        touch(c);
        if (!q) {
                bool method_ok;
                q = calloc(1, sizeof *q);
                if (!q)
                        return MHD_NO;
                *con_cls = q;
                q->srv = srv;
                q->conn = c;
                q->id = ++h->next_id | (UINT64_C(1) << 62); /* distinct from conn.c's owners */
                q->peer = (struct ucred) { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
                if (srv->is_unix) {
                        const union MHD_ConnectionInfo *ci = mhd.get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
                        socklen_t l = sizeof q->peer;
                        if (ci && getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &q->peer, &l) < 0)
                                q->peer = (struct ucred) { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
                }
                h->stats.requests++;
                q->ep = find_endpoint(url, method, &method_ok);
                if (q->ep == EP_NONE)
                        return reply_error(q, c, 404, "no such endpoint %.100s: POST /v1/signals, POST /v1/crowdsec/alerts, GET /metrics, "
                                           "GET /healthz", url);
                if (!method_ok)
                        return reply_error(q, c, 405, "%.100s does not take %.20s", url, method);
                if (q->ep != EP_HEALTHZ && !authorized(q, c)) {
                        h->stats.unauthorized++;
                        return reply_error(q, c, 401, "a valid token is required (Authorization: Bearer TOKEN, or X-Api-Key: TOKEN)");
                }
                q->authorized = true;
                const char *cl = mhd.lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl && strtoull(cl, NULL, 10) > cfg->http.max_body) {
                        h->stats.too_large++;
                        return reply_error(q, c, 413, "the body is %s bytes, more than http_max_body (%zu)", cl, cfg->http.max_body);
                }
                return MHD_YES;
        }

        if (*upload_size > 0) {
                if (!q->too_large && q->body.len + *upload_size > cfg->http.max_body)
                        q->too_large = true;
                if (!q->too_large)
                        strbuf_append(&q->body, upload, *upload_size);
                *upload_size = 0;
                return MHD_YES;
        }

        if (q->ep == EP_METRICS || q->ep == EP_HEALTHZ)
                return serve_get(q, c);
        if (q->too_large) {
                h->stats.too_large++;
                return reply_error(q, c, 413, "the body is longer than http_max_body (%zu bytes)", cfg->http.max_body);
        }
        if (q->body.oom)
                return reply_error(q, c, 500, "out of memory");

        if (!q->started) {
                const char *ack = mhd.lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ack");
                int k;
                if (ack && !streq(ack, "queued") && !streq(ack, "flushed")) {
                        h->stats.malformed++;
                        return reply_error(q, c, 400, "ack: expected queued or flushed, not '%.40s'", ack);
                }
                q->flushed = ack && streq(ack, "flushed");
                why[0] = 0;
                if (q->ep == EP_ALERTS)
                        k = parse_alerts(q, why, sizeof why);
                else
                        k = parse_signals(q, mhd.lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE), why, sizeof why);
                if (k >= 0)
                        k = check_items(q, q->flushed, why, sizeof why);
                strbuf_deinit(&q->body);
                if (k == -ENOMEM)
                        return reply_error(q, c, 500, "out of memory");
                if (k < 0) {
                        h->stats.malformed++;
                        d->stats.rejected++;
                        return reply_error(q, c, 400, "%s; nothing of this body was accepted", why);
                }
                q->started = true;
                walk_items(q);
        }
        if (!q->done) {
                /* resumed later by http_flush_dirty() */
                if (!q->suspended) {
                        susp_link(q);
                        mhd.suspend_connection(c);
                }
                return MHD_YES;
        }
        return reply_results(q);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
        http_server *srv = cls;
        http_state *h = srv->h;
        http_req *q = *con_cls;

        /* timeouts are counted when the connection closes (on_connection) */
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && toe != MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN &&
            toe != MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
                h->stats.aborted++;
        if (!q)
                return;
        *con_cls = NULL;
        susp_unlink(q);
        if (q->dirty)
                for (http_req **p = &h->dirty; *p; p = &(*p)->dirty_next)
                        if (*p == q) {
                                *p = q->dirty_next;
                                break;
                        }
        for (size_t i = 0; i < q->n_items; i++)
                if (q->reqs[i]) {
                        if (q->reqs[i] == q->parked || (q->reqs[i]->state != REQ_DONE))
                                request_detach(q->reqs[i]); /* finishes without us */
                        else
                                request_free(q->reqs[i]);
                }
        free(q->reqs);
        json_decref(q->items);
        strbuf_deinit(&q->body);
        free(q);
}

/* MHD does not say why it closed a connection, and a client that never
 * finished its headers has no request to complete: a connection that
 * closes after http_timeout without any activity was closed for it. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode code) {
        http_server *srv = cls;
        usec_t *last = *socket_context;
        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                srv->h->n_open++;
                last = malloc(sizeof *last);
                if (last)
                        *last = now_monotonic();
                *socket_context = last;
                return;
        }
        if (srv->h->n_open > 0)
                srv->h->n_open--;
        if (last && now_monotonic() - *last + 100 * USEC_PER_MSEC >= engine_config(srv->h->d->engine)->http.timeout)
                srv->h->stats.timeouts++;
        free(last);
        *socket_context = NULL;
}

static void touch(struct MHD_Connection *c) {
        const union MHD_ConnectionInfo *ci = mhd.get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        if (ci && ci->socket_context)
                *(usec_t *) ci->socket_context = now_monotonic();
}

static enum MHD_Result on_accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen) {
        http_server *srv = cls;
        http_state *h = srv->h;
        const spw_config *c = engine_config(h->d->engine);
        if (h->d->stopping || http_connections(h->d) >= c->http.max_connections) {
                h->stats.refused_connections++;
                return MHD_NO;
        }
        return MHD_YES;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) _printf_(2, 0);
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        static ratelimit rl = RATELIMIT_INIT(10 * USEC_PER_SEC, 10);
        char text[512];
        vsnprintf(text, sizeof text, fmt, ap);
        size_t l = strlen(text);
        while (l > 0 && text[l - 1] == '\n')
                text[--l] = 0;
        if (ratelimit_below(&rl, NULL))
                log_debug("http: %s", text);
}

/* ------------------------------------------------------------ the loop */

static void arm_timer(http_server *s) {
        MHD_UNSIGNED_LONG_LONG ms;
        if (!s->mhd || !s->timer)
                return;
        if (mhd.get_timeout(s->mhd, &ms) == MHD_YES) {
                sd_event_source_set_time_relative(s->timer, (uint64_t) ms * USEC_PER_MSEC);
                sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
        } else
                sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
}

static void server_free(http_server *s);

static void run_one(http_server *s) {
        http_state *h = s->h;
        h->in_run++;
        mhd.run(s->mhd);
        h->in_run--;
        arm_timer(s);
}

static void run_servers(http_state *h) {
        h->need_run = false;
        for (http_server *s = h->servers, *n; s; s = n) {
                n = s->next;
                run_one(s);
                if (s->draining && mhd.get_daemon_info(s->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS)->num_connections == 0)
                        server_free(s);
        }
}

static int on_mhd_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        http_server *s = userdata;
        http_state *h = s->h;
        run_one(s);
        /* requests completed while MHD ran (e.g. refused at once) */
        http_flush_dirty(h->d);
        if (s->draining && mhd.get_daemon_info(s->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS)->num_connections == 0)
                server_free(s);
        return 0;
}

static int on_mhd_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        return on_mhd_io(NULL, -1, 0, userdata);
}

unsigned http_connections(daemon_t *d) {
        return d->http ? d->http->n_open : 0;
}

/* ------------------------------------------------------------ servers */

static void server_free(http_server *s) {
        http_state *h = s->h;
        for (http_server **p = &h->servers; *p; p = &(*p)->next)
                if (*p == s) {
                        *p = s->next;
                        break;
                }
        s->io = sd_event_source_disable_unref(s->io);
        s->timer = sd_event_source_disable_unref(s->timer);
        if (s->mhd)
                mhd.stop_daemon(s->mhd); /* closes the listening socket unless quiesced */
        if (s->path) {
                unlink(s->path);
                free(s->path);
        }
        free(s->name);
        free(s);
}

static int read_tls(const spw_config *c, char **cert, char **key, spw_error *err) {
        size_t l;
        int r;
        if (!c->http.tls_cert)
                return 0;
        r = read_full_file(c->http.tls_cert, 1 << 20, cert, &l, err);
        if (r < 0)
                return r;
        r = read_full_file(c->http.tls_key, 1 << 20, key, &l, err);
        if (r < 0) {
                free(*cert);
                *cert = NULL;
        }
        return r;
}

/* Start an MHD daemon on fd (taken on success). */
static int server_start(http_state *h, int fd, bool is_unix, const char *name, http_server **ret, spw_error *err) {
        daemon_t *d = h->d;
        const spw_config *c = engine_config(d->engine);
        _cleanup_free_ char *cert = NULL, *key = NULL;
        unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        http_server *s;
        int r;

        r = read_tls(c, &cert, &key, err);
        if (r < 0)
                return r;
        if (cert)
                flags |= MHD_USE_TLS;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->h = h;
        s->fd = fd;
        s->is_unix = is_unix;
        s->name = strdup(name);
        unsigned timeout = (unsigned) MAX((usec_t) 1, c->http.timeout / USEC_PER_SEC);
        struct MHD_OptionItem tls[] = {
                { cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, cert },
                { MHD_OPTION_HTTPS_MEM_KEY, 0, key },
                { MHD_OPTION_END, 0, NULL },
        };
        s->mhd = mhd.start_daemon(flags, 0, on_accept_policy, s, on_access, s,
                                  MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                                  MHD_OPTION_LISTEN_SOCKET, fd,
                                  MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                                  /* our accept policy refuses (and counts) first */
                                  MHD_OPTION_CONNECTION_LIMIT, (unsigned) c->http.max_connections + 16,
                                  MHD_OPTION_CONNECTION_MEMORY_LIMIT, c->http.max_header,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                  MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                                  MHD_OPTION_ARRAY, tls,
                                  MHD_OPTION_END);
        if (!s->mhd) {
                free(s->name);
                free(s);
                return spw_error_set(err, -EIO, "http %s: libmicrohttpd could not start%s", name,
                                     cert ? " (check http_tls_cert and http_tls_key: a PEM certificate and its key)" : "");
        }
        const union MHD_DaemonInfo *di = mhd.get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        r = di ? sd_event_add_io(d->event, &s->io, di->epoll_fd, EPOLLIN, on_mhd_io, s) : -EIO;
        if (r >= 0)
                r = sd_event_add_time_relative(d->event, &s->timer, CLOCK_MONOTONIC, USEC_PER_SEC, 1 /* sd-event: 0 would mean 250 ms */, on_mhd_timer, s);
        s->next = h->servers;
        h->servers = s;
        if (r < 0) {
                server_free(s);
                return spw_error_set(err, r, "http %s: event loop: %s", name, strerror(-r));
        }
        arm_timer(s);
        log_info("HTTP ingest on %s%s", name, cert ? " (TLS)" : "");
        *ret = s;
        return 0;
}

static int open_unix(const char *path, int *ret, spw_error *err) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;
        if (strlen(path) >= sizeof sa.sun_path)
                return spw_error_set(err, -ENAMETOOLONG, "sockets.http: %s is longer than %zu bytes", path, sizeof sa.sun_path - 1);
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return spw_error_set(err, -errno, "sockets.http: socket(): %s", strerror(errno));
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                unlink(path); /* stale, from an earlier run */
        mode_t old = umask(0117);
        int k = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old);
        if (k < 0 || listen(fd, SOMAXCONN) < 0) {
                int r = -errno;
                close(fd);
                return spw_error_set(err, r, "sockets.http: cannot listen on %s: %s", path, strerror(-r));
        }
        *ret = fd;
        return 0;
}

static int open_tcp(const char *spec, int *ret, spw_error *err) {
        _cleanup_free_ char *host = NULL;
        const char *port;
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *ai = NULL;
        int fd = -1, r;

        if (spec[0] == '[') {
                const char *e = strchr(spec, ']');
                if (!e || e[1] != ':')
                        return spw_error_set(err, -EINVAL, "sockets.http: '%s': expected [ADDRESS]:PORT", spec);
                host = strndup(spec + 1, (size_t) (e - spec - 1));
                port = e + 2;
        } else {
                const char *colon = strrchr(spec, ':');
                if (!colon)
                        return spw_error_set(err, -EINVAL, "sockets.http: '%s': expected HOST:PORT (like 127.0.0.1:7422) or a socket path",
                                             spec);
                host = strndup(spec, (size_t) (colon - spec));
                port = colon + 1;
        }
        if (!host)
                return -ENOMEM;
        r = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
        if (r != 0)
                return spw_error_set(err, -EINVAL, "sockets.http: '%s': %s", spec, gai_strerror(r));
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
                int one = 1;
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                if (ai->ai_family == AF_INET6)
                        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        }
        if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
                r = -errno;
                if (fd >= 0)
                        close(fd);
                freeaddrinfo(ai);
                return spw_error_set(err, r, "sockets.http: cannot listen on %s: %s", spec, strerror(-r));
        }
        freeaddrinfo(ai);
        *ret = fd;
        return 0;
}

static bool fd_is_unix(int fd) {
        struct sockaddr_storage ss;
        socklen_t l = sizeof ss;
        return getsockname(fd, (struct sockaddr *) &ss, &l) == 0 && ss.ss_family == AF_UNIX;
}

int http_start(daemon_t *d, spw_error *err) {
        const spw_config *c = engine_config(d->engine);
        http_state *h;
        int r;

        if (d->n_http_fds == 0 && !c->http.listen)
                return 0;
        r = mhd_load(err);
        if (r < 0)
                return r;
        h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->d = d;
        d->http = h;
        for (size_t i = 0; i < d->n_http_fds; i++) {
                http_server *s;
                int fd = d->http_fds[i];
                char name[32];
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                snprintf(name, sizeof name, "activated fd %d", fd);
                r = server_start(h, fd, fd_is_unix(fd), name, &s, err);
                if (r < 0)
                        return r;
                d->http_fds[i] = -1;
        }
        if (d->n_http_fds == 0 && c->http.listen) {
                _cleanup_free_ char *copy = strdup(c->http.listen);
                char *save = NULL;
                if (!copy)
                        return -ENOMEM;
                for (char *w = strtok_r(copy, ", ", &save); w; w = strtok_r(NULL, ", ", &save)) {
                        http_server *s;
                        bool is_unix = w[0] == '/';
                        int fd = -1;
                        r = is_unix ? open_unix(w, &fd, err) : open_tcp(w, &fd, err);
                        if (r < 0)
                                return r;
                        r = server_start(h, fd, is_unix, w, &s, err);
                        if (r < 0) {
                                close(fd);
                                if (is_unix)
                                        unlink(w);
                                return r;
                        }
                        if (is_unix)
                                s->path = strdup(w);
                }
        }
        load_credentials(h);
        if (!h->token)
                log_notice("HTTP ingest: no http_token or http_token_file: only root and uid %u over a unix socket are served",
                           (unsigned) getuid());
        return 0;
}

void http_quiesce(daemon_t *d) {
        if (!d->http)
                return;
        for (http_server *s = d->http->servers; s; s = s->next)
                if (!s->draining) {
                        int fd = mhd.quiesce_daemon(s->mhd);
                        if (fd >= 0)
                                close(fd);
                        if (s->path)
                                unlink(s->path);
                        s->draining = true;
                }
}

void http_reload(daemon_t *d) {
        http_state *h = d->http;
        http_server *old;
        if (!h)
                return;
        old = h->servers;
        h->servers = NULL;
        /* new servers on the same sockets (renewed TLS files, new limits);
         * the old ones serve their open connections and go */
        for (http_server *s = old, *n; s; s = n) {
                http_server *ns = NULL;
                spw_error err = { 0 };
                n = s->next;
                s->next = NULL;
                if (s->draining) {
                        s->next = h->servers;
                        h->servers = s;
                        continue;
                }
                int fd = mhd.quiesce_daemon(s->mhd);
                s->draining = true;
                if (fd >= 0 && server_start(h, fd, s->is_unix, s->name, &ns, &err) < 0) {
                        log_error("reload: %s; the HTTP socket %s is closed until the next successful reload or restart", err.msg, s->name);
                        close(fd);
                } else if (fd >= 0) {
                        ns->path = TAKE_PTR(s->path);
                }
                s->next = h->servers;
                h->servers = s;
        }
        h->token_for = NULL; /* read the token again */
        run_servers(h);
}

void http_free_all(daemon_t *d) {
        http_state *h = d->http;
        if (!h)
                return;
        /* the waiting requests finish without us; MHD wants every suspended
         * connection resumed before it stops */
        while (h->suspended) {
                http_req *q = h->suspended;
                susp_unlink(q);
                mhd.resume_connection(q->conn);
        }
        while (h->servers)
                server_free(h->servers);
        free(h->token);
        free(h->uids);
        free(h);
        d->http = NULL;
}

void http_metrics(daemon_t *d, strbuf *m) {
        http_state *h = d->http;
        if (!h)
                return;
        strbuf_printf(m, "# HELP spillway_http_requests_total HTTP requests.\n# TYPE spillway_http_requests_total counter\n"
                         "spillway_http_requests_total %llu\n", (unsigned long long) h->stats.requests);
        strbuf_puts(m, "# HELP spillway_http_responses_total HTTP responses by status class.\n# TYPE spillway_http_responses_total counter\n");
        for (int i = 2; i <= 5; i++)
                strbuf_printf(m, "spillway_http_responses_total{code=\"%dxx\"} %llu\n", i, (unsigned long long) h->stats.status[i]);
        strbuf_puts(m, "# HELP spillway_http_refused_total HTTP requests and connections refused, by reason.\n"
                       "# TYPE spillway_http_refused_total counter\n");
        static const struct {
                const char *why;
                size_t off;
        } r[] = {
                { "unauthorized", offsetof(http_stats, unauthorized) },
                { "too_large", offsetof(http_stats, too_large) },
                { "malformed", offsetof(http_stats, malformed) },
                { "queue_full", offsetof(http_stats, queue_full) },
                { "connection_limit", offsetof(http_stats, refused_connections) },
                { "timeout", offsetof(http_stats, timeouts) },
                { "aborted", offsetof(http_stats, aborted) },
        };
        for (size_t i = 0; i < ELEMENTSOF(r); i++)
                strbuf_printf(m, "spillway_http_refused_total{reason=\"%s\"} %llu\n", r[i].why,
                              (unsigned long long) *(const uint64_t *) ((const char *) &h->stats + r[i].off));
        strbuf_printf(m, "# HELP spillway_http_connections Open HTTP connections.\n# TYPE spillway_http_connections gauge\n"
                         "spillway_http_connections %u\n", http_connections(d));
}

#else /* !HAVE_MICROHTTPD */

int http_start(daemon_t *d, spw_error *err) {
        if (d->n_http_fds > 0 || engine_config(d->engine)->http.listen)
                return spw_error_set(err, -EOPNOTSUPP, "sockets.http (or an activated 'http' socket) is configured, but spillwayd was built "
                                     "without libmicrohttpd (meson -Dhttp=enabled)");
        return 0;
}
void http_quiesce(daemon_t *d) {}
void http_free_all(daemon_t *d) {}
void http_reload(daemon_t *d) {}
void http_flush_dirty(daemon_t *d) {}
void http_metrics(daemon_t *d, strbuf *m) {}
unsigned http_connections(daemon_t *d) {
        return 0;
}
#endif
