/* SPDX-License-Identifier: MIT */
/*
 * The webhook backend: signals delivered over HTTP(S) with libcurl.
 *
 * insert() only buffers: it converts the borrowed signal into its JSON
 * object (payload.c) and appends it to `pending`. flush() sends everything
 * pending, at most group_threshold signals per request (several requests
 * when more are pending), each body rendered from the `format` template or,
 * by default, the JSON array of the batch. The daemon calls flush() every
 * group_wait and after group_threshold inserts, so that is what batching
 * means here; the plugin keeps no timer of its own.
 *
 * Failure handling follows the ABI's all-or-nothing flush contract. flush()
 * makes exactly one attempt per request; on the first failure it drops the
 * whole pending buffer and returns -EAGAIN (transient: 408, 429, 5xx,
 * connection and timeout errors; Retry-After is passed to
 * host->retry_after()) or a permanent error (-EBADMSG for other non-2xx
 * answers, -EPROTO for TLS and protocol problems). The daemon then inserts
 * the same signals again and flushes after its backoff, or counts them as
 * failed. When a flush needed several requests and request k fails, the
 * requests before it were delivered and will be delivered again with the
 * retry: delivery is at-least-once.
 *
 * Invariants:
 *   - One CURL easy handle per instance, configured once in init and reused
 *     (keep-alive); only the body changes per request. An instance is only
 *     ever called from its worker thread, so nothing here locks.
 *   - The response body kept is bounded by max_response_bytes; a longer
 *     answer stops the transfer (its status still counts).
 *   - Error messages never contain the URL's user:password or query string
 *     (url_redacted), and contain at most ~200 sanitized bytes of the body.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <spillway/backend.h>

#include "payload.h"
#include "spwp-config.h"
#include "template.h"
#include "whutil.h"

#define WEBHOOK_VERSION "0.1.0"
#define WEBHOOK_MAX_BODY (64u * 1024u * 1024u)     /* rendered request body */
#define WEBHOOK_MAX_THRESHOLD 100000u
#define WEBHOOK_RETRY_AFTER_MAX (INT64_C(3600) * 1000000) /* 1 h */
#define WEBHOOK_ERROR_BODY_BYTES 200

/* ------------------------------------------------------------- config */

static const spw_config_key webhook_config_keys[] = {
        { "url", SPW_CONFIG_STRING, NULL, NULL,
          "Where to send: an absolute http:// or https:// URL (required). user:password@ in it is sent as basic auth and never logged.",
          SPW_CONFIG_SECRET | SPW_CONFIG_REQUIRED },
        { "method", SPW_CONFIG_ENUM, "POST", "POST|PUT|PATCH|GET",
          "HTTP method. GET sends no body (the request only says that signals arrived)." },
        { "headers", SPW_CONFIG_MAP, NULL, NULL,
          "Extra request headers, a map of name: value. Values may use ${ENV} and ${CREDENTIAL:name}.",
          SPW_CONFIG_SECRET },
        { "timeout", SPW_CONFIG_DURATION, "10s", NULL,
          "Time limit for one request, from connecting to the end of the response (1ms to 24h)." },
        { "connect_timeout", SPW_CONFIG_DURATION, "5s", NULL,
          "Time limit for connecting, TCP and TLS handshake (1ms to 24h)." },
        { "group_wait", SPW_CONFIG_DURATION, "0", NULL,
          "Longest time a signal waits for others before a request is sent (the daemon's flush interval for this backend); 0 sends at every daemon flush." },
        { "group_threshold", SPW_CONFIG_INT, "100", NULL,
          "Most signals in one request; the daemon also flushes as soon as this many are pending. 1 disables batching; at most 100000." },
        { "max_retry", SPW_CONFIG_INT, "5", NULL,
          "Retries after a transient failure (408, 429, 5xx, connection errors, timeouts), made by the daemon with backoff." },
        { "retry_backoff", SPW_CONFIG_DURATION, "1s", NULL,
          "Delay before the first retry; the daemon doubles it each time, with jitter and a cap. Retry-After wins when longer." },
        { "format", SPW_CONFIG_STRING, NULL, NULL,
          "Body template (a subset of Go's text/template over the batch). Default: the JSON array of the batch's signals." },
        { "content_type", SPW_CONFIG_STRING, "application/json", NULL,
          "Content-Type of the body (a Content-Type in headers wins); not sent with GET." },
        { "tls_verify", SPW_CONFIG_BOOL, "true", NULL,
          "Verify the server's certificate and name." },
        { "skip_tls_verification", SPW_CONFIG_BOOL, "false", NULL,
          "CrowdSec's name for the inverse of tls_verify; setting both so that they disagree is an error." },
        { "ca_cert_path", SPW_CONFIG_STRING, NULL, NULL,
          "PEM file of the CA certificates to trust instead of the system's." },
        { "client_cert_path", SPW_CONFIG_STRING, NULL, NULL,
          "PEM client certificate for mutual TLS." },
        { "client_key_path", SPW_CONFIG_STRING, NULL, NULL,
          "PEM private key of client_cert_path (when not in the same file)." },
        { "unix_socket", SPW_CONFIG_STRING, NULL, NULL,
          "Connect to this unix stream socket instead of the URL's host and port; the URL still gives the path and Host header." },
        { "proxy", SPW_CONFIG_STRING, NULL, NULL,
          "Proxy URL. Default: the environment's (http_proxy, https_proxy, no_proxy); \"none\" disables proxies.",
          SPW_CONFIG_SECRET },
        { "follow_redirects", SPW_CONFIG_BOOL, "false", NULL,
          "Follow up to 5 redirects (http and https only, the method and body are kept). Otherwise a 3xx answer is a permanent failure." },
        { "max_response_bytes", SPW_CONFIG_INT, "65536", NULL,
          "Most bytes of a response body read; a longer body ends the transfer (the status still counts)." },
        { "log_level", SPW_CONFIG_ENUM, "info", "trace|debug|info|warn|error|off",
          "CrowdSec's key: how much this backend logs. trace adds libcurl's connection messages (debug lines need debug: true)." },
        { "type", SPW_CONFIG_ENUM, "http", "http",
          "Accepted so that CrowdSec notification files (type: http) load unchanged." },
        { "debug", SPW_CONFIG_BOOL, "false", NULL,
          "Let this backend's debug lines through to the journal." },
        { NULL, 0, NULL, NULL, NULL },
};

/* Global defaults the daemon merges into every backend's config. */
static const char *const global_keys[] = { "flush", "max_records", "max_records_age" };

enum method {
        METHOD_POST,
        METHOD_PUT,
        METHOD_PATCH,
        METHOD_GET,
};

static const char *const method_names[] = { "POST", "PUT", "PATCH", "GET" };

/* ------------------------------------------------------------ instance */

typedef struct webhook {
        spw_ctx *ctx;
        const struct spw_host *host;

        CURL *curl;
        struct curl_slist *headers;
        char *url;
        char *url_redacted;     /* for messages: no credentials, no query */
        char *unix_socket;
        enum method method;
        tpl *format;            /* NULL: the JSON array of the batch */
        size_t group_threshold;
        size_t max_response_bytes;
        int log_max;            /* highest syslog priority logged; -1: none */
        bool trace;             /* log_level: trace, libcurl's messages too */

        json_t *pending;        /* signal objects inserted since the last flush */
        strbuf body;
        strbuf ids;                   /* the signal ids of the request being sent */
        strbuf response;
        bool response_truncated;
        char retry_after[64];   /* Retry-After of the last response, or "" */
        char reason[64];        /* reason phrase of the last status line */
        char errbuf[CURL_ERROR_SIZE];

        uint64_t delivered;
        uint64_t requests;
} webhook;

static webhook *webhook_free(webhook *w) {
        if (!w)
                return NULL;
        if (w->curl)
                curl_easy_cleanup(w->curl);
        curl_slist_free_all(w->headers);
        free(w->url);
        free(w->url_redacted);
        free(w->unix_socket);
        tpl_free(w->format);
        json_decref(w->pending);
        strbuf_deinit(&w->body);
        strbuf_deinit(&w->ids);
        strbuf_deinit(&w->response);
        free(w);
        return NULL;
}

static void webhook_freep(webhook **w) {
        webhook_free(*w);
}

_printf_(3, 4)
static void wlog(webhook *w, int priority, const char *fmt, ...) {
        char msg[1024];
        va_list ap;

        if (priority > w->log_max)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        w->host->log(w->ctx, priority, "%s", msg);
}

static void publish(webhook *w, const char *key, const char *value) {
        if (SPW_HAS_MEMBER(w->host, struct spw_host, set_status) && w->host->set_status)
                w->host->set_status(w->ctx, key, value);
}

static void publish_u64(webhook *w, const char *key, uint64_t v) {
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRIu64, v);
        publish(w, key, buf);
}

/* Report an init failure: set_error with the reason, return r. */
_printf_(4, 5)
static int init_fail(const struct spw_host *host, spw_ctx *ctx, int r, const char *fmt, ...) {
        char msg[900];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        host->set_error(ctx, "%s; webhook not started", msg);
        return r;
}

/* ---------------------------------------------------------- libcurl */

/*
 * curl_global_init() is reference counted and, before libcurl 7.84, not
 * thread-safe: it must not run while any other thread uses libcurl. It runs
 * in the ABI's global_init hook, which the daemon calls once per loaded
 * plugin file, on the loading thread, before any instance's init: no
 * instance of this plugin can be using libcurl then. global_fini, called
 * at unload after every instance's shutdown, drops that reference.
 */
static CURLcode curl_global_result = CURLE_FAILED_INIT;

static int webhook_global_init(const struct spw_host *host) {
        curl_global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (curl_global_result != CURLE_OK) {
                if (host && host->log)
                        host->log(NULL, LOG_ERR, "webhook: libcurl could not be initialised: %s",
                                  curl_easy_strerror(curl_global_result));
                return -EIO;
        }
        return 0;
}

static void webhook_global_fini(void) {
        if (curl_global_result == CURLE_OK)
                curl_global_cleanup();
        curl_global_result = CURLE_FAILED_INIT;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
        webhook *w = userdata;
        size_t n = size * nmemb, room = w->max_response_bytes - w->response.len;

        if (n > room) {
                /* keep what fits, then stop reading: curl reports a write error
                 * and closes the connection, the status line still counts */
                strbuf_append(&w->response, data, room);
                w->response_truncated = true;
                return 0;
        }
        strbuf_append(&w->response, data, n);
        return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata) {
        webhook *w = userdata;
        size_t n = size * nmemb, l = n;
        const char *v;

        while (l > 0 && (data[l - 1] == '\r' || data[l - 1] == '\n'))
                l--;
        if (l >= 5 && strncmp(data, "HTTP/", 5) == 0) {
                /* a new response (redirect, 100 Continue): forget the last one */
                const char *sp = memchr(data, ' ', l);
                w->retry_after[0] = 0;
                w->reason[0] = 0;
                if (sp && (size_t) (sp - data) + 4 < l) {
                        const char *rp = sp + 4; /* after " NNN" */
                        size_t rl = l - (size_t) (rp - data);
                        while (rl > 0 && *rp == ' ')
                                rp++, rl--;
                        snprintf(w->reason, sizeof w->reason, "%.*s", (int) rl, rp);
                        for (char *c = w->reason; *c; c++)
                                if (!isprint((unsigned char) *c))
                                        *c = '.';
                }
                return n;
        }
        if (l > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
                v = data + 12;
                l -= 12;
                while (l > 0 && (*v == ' ' || *v == '\t'))
                        v++, l--;
                while (l > 0 && (v[l - 1] == ' ' || v[l - 1] == '\t'))
                        l--;
                if (l < sizeof w->retry_after) {
                        memcpy(w->retry_after, v, l);
                        w->retry_after[l] = 0;
                }
        }
        return n;
}

static int on_curl_debug(CURL *handle, curl_infotype type, char *data, size_t size, void *userdata) {
        webhook *w = userdata;

        /* only curl's own messages: headers and data may hold credentials */
        if (type == CURLINFO_TEXT) {
                while (size > 0 && (data[size - 1] == '\n' || data[size - 1] == '\r'))
                        size--;
                wlog(w, LOG_DEBUG, "curl: %.*s", (int) MIN(size, 300u), data);
        }
        return 0;
}

/* The URL without user:password@ and with the query replaced, for messages.
 * For a URL curl could not parse, a best effort on the text. */
static char *redact_url(const char *url) {
        CURLU *u = curl_url();
        char *out = NULL, *s = NULL, *query = NULL;

        if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK) {
                curl_url_set(u, CURLUPART_USER, NULL, 0);
                curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
                curl_url_set(u, CURLUPART_OPTIONS, NULL, 0);
                curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
                if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query) {
                        curl_url_set(u, CURLUPART_QUERY, "redacted", 0);
                        curl_free(query);
                }
                if (curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK && s) {
                        out = strdup(s);
                        curl_free(s);
                }
        }
        if (u)
                curl_url_cleanup(u);
        if (!out) {
                const char *scheme_end = strstr(url, "://"), *at;
                strbuf b = { 0 };
                if (scheme_end && (at = strchr(scheme_end + 3, '@')) && !memchr(scheme_end + 3, '/', (size_t) (at - scheme_end - 3))) {
                        strbuf_append(&b, url, (size_t) (scheme_end + 3 - url));
                        strbuf_puts(&b, "***@");
                        wh_sanitized(&b, at + 1, strlen(at + 1), 200);
                } else
                        wh_sanitized(&b, url, strlen(url), 200);
                out = b.oom ? NULL : strdup(strbuf_str(&b));
                strbuf_deinit(&b);
        }
        return out;
}

/* ---------------------------------------------------------------- init */

static const char *cfg(const spw_kv *config, size_t n, const char *key) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(config[i].key, key) == 0)
                        return config[i].value && *config[i].value ? config[i].value : NULL;
        return NULL;
}

static bool enum_contains(const char *choices, const char *v) {
        size_t l = strlen(v);
        for (const char *p = choices; p && *p;) {
                const char *bar = strchr(p, '|');
                size_t cl = bar ? (size_t) (bar - p) : strlen(p);
                if (cl == l && strncmp(p, v, l) == 0)
                        return true;
                p = bar ? bar + 1 : NULL;
        }
        return false;
}

/* Every key known and every value of the right type: the same checks the
 * daemon makes from the table, for a plugin driven directly. */
static int check_config(const struct spw_host *host, spw_ctx *ctx, const spw_kv *config, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const char *key = config[i].key, *v = config[i].value;
                const spw_config_key *k = NULL;
                int64_t d;
                uint64_t u;
                bool b;

                if (strncmp(key, "headers.", 8) == 0)
                        continue;
                for (const spw_config_key *t = webhook_config_keys; t->name; t++)
                        if (strcmp(t->name, key) == 0)
                                k = t;
                if (!k) {
                        bool global = false;
                        for (size_t g = 0; g < ELEMENTSOF(global_keys); g++)
                                global = global || strcmp(global_keys[g], key) == 0;
                        if (global)
                                continue;
                        return init_fail(host, ctx, -EINVAL,
                                         "config key \"%s\" is not a webhook setting: expected one of url, method, headers, timeout, connect_timeout, group_wait, group_threshold, max_retry, retry_backoff, format, content_type, tls_verify, skip_tls_verification, ca_cert_path, client_cert_path, client_key_path, unix_socket, proxy, follow_redirects, max_response_bytes, log_level, type, debug",
                                         key);
                }
                if (!v || !*v)
                        continue; /* empty means "the default" */
                switch (k->type) {
                case SPW_CONFIG_BOOL:
                        if (spwp_parse_bool(v, &b) < 0)
                                return init_fail(host, ctx, -EINVAL, "%s: \"%s\" is not a boolean: expected true or false", key, v);
                        break;
                case SPW_CONFIG_INT:
                        if (spwp_parse_uint(v, INT64_MAX, &u) < 0)
                                return init_fail(host, ctx, -EINVAL, "%s: \"%s\" is not a number: expected a non-negative integer such as %s",
                                                 key, v, k->default_value ? k->default_value : "10");
                        break;
                case SPW_CONFIG_DURATION: {
                        int r = parse_duration_nonneg(v, &d);
                        if (r < 0)
                                return init_fail(host, ctx, -EINVAL, "%s: \"%s\" %s", key, v, duration_strerror(r));
                        break;
                }
                case SPW_CONFIG_ENUM:
                        if (!enum_contains(k->choices, v))
                                return init_fail(host, ctx, -EINVAL, "%s: \"%s\" is not accepted: expected one of %s", key, v, k->choices);
                        break;
                case SPW_CONFIG_MAP:
                        return init_fail(host, ctx, -EINVAL, "%s: expected a mapping of header names to values (headers: {Authorization: \"Bearer ...\"}), not \"%s\"",
                                         key, v);
                default:
                        break;
                }
        }
        return 0;
}

static bool header_name_valid(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (!(isalnum((unsigned char) *s) || strchr("!#$%&'*+-.^_`|~", *s)))
                        return false;
        return true;
}

static int add_header(webhook *w, const char *name, const char *value) {
        struct curl_slist *l;
        strbuf b = { 0 };

        /* "Name:" would remove a header in curl; "Name;" sends it empty */
        if (*value)
                strbuf_printf(&b, "%s: %s", name, value);
        else
                strbuf_printf(&b, "%s;", name);
        l = b.oom ? NULL : curl_slist_append(w->headers, b.data);
        strbuf_deinit(&b);
        if (!l)
                return -ENOMEM;
        w->headers = l;
        return 0;
}

/* A timeout in milliseconds for curl, where 0 would mean "wait forever":
 * refused, a request must never be able to wedge the worker. */
static int timeout_ms(webhook *w, const spw_kv *config, size_t n, const char *key, long def_ms, long *ret) {
        const char *v = cfg(config, n, key);
        int64_t d;

        *ret = def_ms;
        if (!v)
                return 0;
        if (parse_duration_nonneg(v, &d) < 0 || d < 1000 || d > INT64_C(86400000000))
                return init_fail(w->host, w->ctx, -EINVAL,
                                 "%s: \"%s\" is out of range: expected a duration from 1ms to 24h such as %lds (there is no \"no limit\": a hung receiver would stall this backend)",
                                 key, v, def_ms / 1000);
        *ret = (long) (d / 1000);
        return 0;
}

static int readable_file(const struct spw_host *host, spw_ctx *ctx, const char *key, const char *path) {
        if (access(path, R_OK) < 0)
                return init_fail(host, ctx, -errno, "%s: cannot read \"%s\": %s; expected a readable PEM file", key, path, strerror(errno));
        return 0;
}

#define SETOPT(w, opt, val)                                                             \
        do {                                                                            \
                CURLcode _c = curl_easy_setopt((w)->curl, opt, val);                    \
                if (_c != CURLE_OK)                                                     \
                        return init_fail(w->host, w->ctx, -EINVAL, "libcurl refused %s: %s", \
                                         #opt, curl_easy_strerror(_c));                 \
        } while (0)

static int setup_curl(webhook *w, const spw_kv *config, size_t n) {
        const char *ca = cfg(config, n, "ca_cert_path"), *cert = cfg(config, n, "client_cert_path"),
                   *key = cfg(config, n, "client_key_path"), *proxy = cfg(config, n, "proxy"),
                   *v;
        bool verify = true, follow = false, b;
        long request_ms, connect_ms;
        int r;

        /* tls_verify and its CrowdSec inverse; both given must agree */
        if ((v = cfg(config, n, "tls_verify")))
                (void) spwp_parse_bool(v, &verify);
        if ((v = cfg(config, n, "skip_tls_verification"))) {
                (void) spwp_parse_bool(v, &b);
                if (cfg(config, n, "tls_verify") && b == verify)
                        return init_fail(w->host, w->ctx, -EINVAL,
                                         "tls_verify: %s and skip_tls_verification: %s contradict each other: expected only one of them (skip_tls_verification is CrowdSec's inverse of tls_verify)",
                                         verify ? "true" : "false", b ? "true" : "false");
                verify = !b;
        }
        if ((v = cfg(config, n, "follow_redirects")))
                (void) spwp_parse_bool(v, &follow);
        if ((r = timeout_ms(w, config, n, "timeout", 10000, &request_ms)) < 0 ||
            (r = timeout_ms(w, config, n, "connect_timeout", 5000, &connect_ms)) < 0)
                return r;
        if (ca && (r = readable_file(w->host, w->ctx, "ca_cert_path", ca)) < 0)
                return r;
        if (cert && (r = readable_file(w->host, w->ctx, "client_cert_path", cert)) < 0)
                return r;
        if (key && (r = readable_file(w->host, w->ctx, "client_key_path", key)) < 0)
                return r;
        if (key && !cert)
                return init_fail(w->host, w->ctx, -EINVAL,
                                 "client_key_path is set without client_cert_path: expected both for mutual TLS (or only client_cert_path when the key is in the same file)");

        w->curl = curl_easy_init();
        if (!w->curl)
                return init_fail(w->host, w->ctx, -ENOMEM, "cannot create a libcurl handle (out of memory?)");

        SETOPT(w, CURLOPT_URL, w->url);
        SETOPT(w, CURLOPT_NOSIGNAL, 1L);
        SETOPT(w, CURLOPT_ERRORBUFFER, w->errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
        SETOPT(w, CURLOPT_PROTOCOLS_STR, "http,https");
        SETOPT(w, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
        SETOPT(w, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
        SETOPT(w, CURLOPT_REDIR_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        SETOPT(w, CURLOPT_TIMEOUT_MS, request_ms);
        SETOPT(w, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
        SETOPT(w, CURLOPT_TCP_KEEPALIVE, 1L);
        SETOPT(w, CURLOPT_USERAGENT, "spillway-webhook/" WEBHOOK_VERSION);
        SETOPT(w, CURLOPT_WRITEFUNCTION, on_body);
        SETOPT(w, CURLOPT_WRITEDATA, (void *) w);
        SETOPT(w, CURLOPT_HEADERFUNCTION, on_header);
        SETOPT(w, CURLOPT_HEADERDATA, (void *) w);
        SETOPT(w, CURLOPT_HTTPHEADER, w->headers);
        SETOPT(w, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
        if (follow) {
                SETOPT(w, CURLOPT_MAXREDIRS, 5L);
                SETOPT(w, CURLOPT_POSTREDIR, (long) CURL_REDIR_POST_ALL);
        }
        SETOPT(w, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
        SETOPT(w, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
        if (ca)
                SETOPT(w, CURLOPT_CAINFO, ca);
        if (cert)
                SETOPT(w, CURLOPT_SSLCERT, cert);
        if (key)
                SETOPT(w, CURLOPT_SSLKEY, key);
        if (proxy)
                SETOPT(w, CURLOPT_PROXY, strcmp(proxy, "none") == 0 ? "" : proxy);
        if (w->unix_socket)
                SETOPT(w, CURLOPT_UNIX_SOCKET_PATH, w->unix_socket);
        switch (w->method) {
        case METHOD_POST:
                SETOPT(w, CURLOPT_POST, 1L);
                break;
        case METHOD_PUT:
        case METHOD_PATCH:
                SETOPT(w, CURLOPT_POST, 1L);
                SETOPT(w, CURLOPT_CUSTOMREQUEST, method_names[w->method]);
                break;
        case METHOD_GET:
                SETOPT(w, CURLOPT_HTTPGET, 1L);
                break;
        }
        if (w->trace) {
                SETOPT(w, CURLOPT_DEBUGFUNCTION, on_curl_debug);
                SETOPT(w, CURLOPT_DEBUGDATA, (void *) w);
                SETOPT(w, CURLOPT_VERBOSE, 1L);
        }
        return 0;
}

static int parse_url(webhook *w, const char *url) {
        CURLU *u;
        CURLUcode uc;
        char *scheme = NULL, *host = NULL;
        _cleanup_free_ char *shown = NULL;
        int r = 0;

        shown = redact_url(url);
        if (!shown)
                return -ENOMEM;
        if (strpbrk(url, "\r\n \t"))
                return init_fail(w->host, w->ctx, -EINVAL,
                                 "url: \"%s\" contains whitespace or a line break: expected a URL-encoded absolute http:// or https:// URL", shown);
        u = curl_url();
        if (!u)
                return -ENOMEM;
        uc = curl_url_set(u, CURLUPART_URL, url, 0);
        if (uc != CURLUE_OK) {
#if LIBCURL_VERSION_NUM >= 0x075000
                const char *why = curl_url_strerror(uc);
#else
                const char *why = "cannot parse";
#endif
                r = init_fail(w->host, w->ctx, -EINVAL,
                              "url: \"%s\" is not a valid URL (%s): expected an absolute http:// or https:// URL such as https://hooks.example.com/spillway%s",
                              shown, why,
                              strchr(url, '<') ? " (the value looks like a placeholder from an example file: replace it with the receiver's address)" : "");
        } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || !scheme ||
                   (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
                r = init_fail(w->host, w->ctx, -EINVAL,
                              "url: \"%s\" uses the scheme \"%s\": expected http:// or https://", shown, scheme ? scheme : "");
        } else if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
                r = init_fail(w->host, w->ctx, -EINVAL, "url: \"%s\" has no host: expected http://HOST[:PORT]/PATH", shown);
        }
        curl_free(scheme);
        curl_free(host);
        curl_url_cleanup(u);
        if (r < 0)
                return r;
        w->url = strdup(url);
        w->url_redacted = TAKE_PTR(shown);
        return w->url && w->url_redacted ? 0 : -ENOMEM;
}

static int setup_headers(webhook *w, const spw_kv *config, size_t n) {
        const char *content_type = cfg(config, n, "content_type");
        bool have_content_type = false;
        int r;

        for (size_t i = 0; i < n; i++) {
                const char *name = config[i].key, *value = config[i].value ? config[i].value : "";
                if (strncmp(name, "headers.", 8) != 0)
                        continue;
                name += 8;
                if (!header_name_valid(name))
                        return init_fail(w->host, w->ctx, -EINVAL,
                                         "headers: \"%s\" is not a valid header name: expected letters, digits and !#$%%&'*+-.^_`|~ only", name);
                if (strpbrk(value, "\r\n"))
                        return init_fail(w->host, w->ctx, -EINVAL,
                                         "headers.%s: the value contains a line break: expected a single line (line breaks would inject headers)", name);
                if (strcasecmp(name, "Content-Type") == 0)
                        have_content_type = true;
                r = add_header(w, name, value);
                if (r < 0)
                        return r;
        }
        if (content_type && strpbrk(content_type, "\r\n"))
                return init_fail(w->host, w->ctx, -EINVAL,
                                 "content_type: the value contains a line break: expected a media type such as application/json");
        if (w->method != METHOD_GET && !have_content_type) {
                r = add_header(w, "Content-Type", content_type ? content_type : "application/json");
                if (r < 0)
                        return r;
        }
        /* "Expect:" (no value) removes curl's "Expect: 100-continue", saving
         * a round trip (or a 1 s wait) before larger bodies */
        {
                struct curl_slist *l = curl_slist_append(w->headers, "Expect:");
                if (!l)
                        return -ENOMEM;
                w->headers = l;
        }
        return 0;
}

static int webhook_init(spw_ctx *ctx, const struct spw_host *host, const spw_kv *config, size_t n, void **selfp) {
        _cleanup_(webhook_freep) webhook *w = NULL;
        const char *v;
        uint64_t u;
        int r;

        r = check_config(host, ctx, config, n);
        if (r < 0)
                return r;

        if (curl_global_result != CURLE_OK)
                return init_fail(host, ctx, -EIO, "libcurl is not initialised: %s (the plugin's global_init did not succeed)",
                                 curl_easy_strerror(curl_global_result));

        w = calloc(1, sizeof *w);
        if (!w)
                return init_fail(host, ctx, -ENOMEM, "out of memory");
        w->ctx = ctx;
        w->host = host;
        w->pending = json_array();
        if (!w->pending)
                return init_fail(host, ctx, -ENOMEM, "out of memory");

        v = cfg(config, n, "log_level");
        w->log_max = LOG_INFO;
        if (v) {
                static const struct {
                        const char *name;
                        int max;
                } levels[] = {
                        { "trace", LOG_DEBUG }, { "debug", LOG_DEBUG }, { "info", LOG_INFO },
                        { "warn", LOG_WARNING }, { "error", LOG_ERR }, { "off", -1 },
                };
                for (size_t i = 0; i < ELEMENTSOF(levels); i++)
                        if (strcmp(v, levels[i].name) == 0)
                                w->log_max = levels[i].max;
                w->trace = strcmp(v, "trace") == 0;
        }

        w->method = METHOD_POST;
        if ((v = cfg(config, n, "method")))
                for (size_t i = 0; i < ELEMENTSOF(method_names); i++)
                        if (strcmp(v, method_names[i]) == 0)
                                w->method = (enum method) i;

        v = cfg(config, n, "url");
        if (!v)
                return init_fail(host, ctx, -EINVAL,
                                 "url is missing: expected the receiver's address, e.g. url: https://hooks.example.com/spillway");
        r = parse_url(w, v);
        if (r < 0)
                return r == -ENOMEM ? init_fail(host, ctx, r, "out of memory") : r;

        if ((v = cfg(config, n, "unix_socket"))) {
                if (strlen(v) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                        return init_fail(host, ctx, -ENAMETOOLONG, "unix_socket: \"%s\" is too long: expected a path of at most %zu bytes",
                                         v, sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1);
                w->unix_socket = strdup(v);
                if (!w->unix_socket)
                        return init_fail(host, ctx, -ENOMEM, "out of memory");
        }

        u = 100;
        if ((v = cfg(config, n, "group_threshold")) && (spwp_parse_uint(v, WEBHOOK_MAX_THRESHOLD, &u) < 0 || u == 0))
                return init_fail(host, ctx, -EINVAL, "group_threshold: \"%s\" is out of range: expected 1 (no batching) to %u signals per request",
                                 v, WEBHOOK_MAX_THRESHOLD);
        w->group_threshold = (size_t) u;

        u = 65536;
        if ((v = cfg(config, n, "max_response_bytes")) && spwp_parse_uint(v, WEBHOOK_MAX_BODY, &u) < 0)
                return init_fail(host, ctx, -EINVAL, "max_response_bytes: \"%s\" is out of range: expected 0 to %u bytes", v, WEBHOOK_MAX_BODY);
        w->max_response_bytes = (size_t) u;

        if ((v = cfg(config, n, "format"))) {
                tpl_error e;
                r = tpl_compile(v, strlen(v), TPL_ORIGIN_TEXT, &w->format, &e);
                if (r < 0)
                        return init_fail(host, ctx, r, "format:%u:%u: %s (line:column inside the template)",
                                         e.line, e.column, e.message);
        }

        r = setup_headers(w, config, n);
        if (r < 0)
                return r == -ENOMEM ? init_fail(host, ctx, r, "out of memory") : r;
        r = setup_curl(w, config, n);
        if (r < 0)
                return r;

        publish_u64(w, "delivered", 0);
        publish_u64(w, "requests", 0);
        wlog(w, LOG_INFO, "sending %s %s%s%s, at most %zu signals per request, %s body",
             method_names[w->method], w->url_redacted, w->unix_socket ? " via unix socket " : "",
             w->unix_socket ? w->unix_socket : "", w->group_threshold,
             w->method == METHOD_GET ? "no" : w->format ? "template" : "JSON array");
        *selfp = TAKE_PTR(w);
        return 0;
}

static int webhook_insert(void *self, const spw_signal *signal) {
        webhook *w = self;
        json_t *o = payload_signal_to_json(signal);

        /* json_array_append_new() takes o even when it fails */
        if (!o || json_array_append_new(w->pending, o) < 0) {
                w->host->set_error(w->ctx, "out of memory buffering a signal for %s (%zu pending); the daemon retries it",
                                   w->url_redacted, json_array_size(w->pending));
                return -EAGAIN;
        }
        return 0;
}

static int dump_to_wbuf(const char *buffer, size_t size, void *data) {
        strbuf *b = data;
        strbuf_append(b, buffer, size);
        return b->oom || b->len > WEBHOOK_MAX_BODY ? -1 : 0;
}

/* The request body for one batch into w->body: 0, -E2BIG or -ENOMEM. */
static int render(webhook *w, json_t *batch) {
        int r = 0;

        strbuf_reset(&w->body);
        if (w->method == METHOD_GET)
                return 0;
        if (w->format)
                r = tpl_render(w->format, batch, &w->body, WEBHOOK_MAX_BODY);
        else if (json_dump_callback(batch, dump_to_wbuf, &w->body, TPL_JSON_FLAGS) < 0)
                r = w->body.oom ? -ENOMEM : -E2BIG;
        if (r == 0 && !strbuf_reserve(&w->body, 0))
                r = -ENOMEM; /* the body must exist even when empty */
        return r;
}

/* Retry-After as a delay, capped; 0 when absent or in the past. */
static int64_t retry_after_usec(webhook *w) {
        int64_t d;
        uint64_t secs;

        if (!w->retry_after[0])
                return 0;
        if (spwp_parse_uint(w->retry_after, UINT64_C(1000000000), &secs) == 0)
                d = (int64_t) secs * 1000000;
        else {
                time_t t = curl_getdate(w->retry_after, NULL);
                if (t < 0)
                        return 0;
                if ((int64_t) t > INT64_MAX / 1000000 / 2)
                        return WEBHOOK_RETRY_AFTER_MAX; /* a date past year 146,000: no overflow */
                d = (int64_t) t * 1000000 - w->host->now(w->ctx);
        }
        if (d <= 0)
                return 0;
        return d < WEBHOOK_RETRY_AFTER_MAX ? d : WEBHOOK_RETRY_AFTER_MAX;
}

static bool curl_error_permanent(CURLcode rc) {
        switch (rc) {
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
        case CURLE_TOO_MANY_REDIRECTS:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_LOGIN_DENIED:
                return true;
        default:
                return false;
        }
}

/* One request with w->body; k of n_req requests of this flush, m signals. */
static int send_request(webhook *w, size_t k, size_t n_req, size_t m) {
        char when[RFC3339_MAX], delay_text[64];
        int64_t delay = 0;
        long status = 0;
        bool got_status, transient;
        CURLcode rc;
        strbuf msg = { 0 };
        int r;

        strbuf_reset(&w->response);
        w->response_truncated = false;
        w->retry_after[0] = 0;
        w->reason[0] = 0;
        w->errbuf[0] = 0;
        if (w->method != METHOD_GET) {
                curl_easy_setopt(w->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) w->body.len);
                curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, w->body.data);
        }
        /* the signal ids of this request (see batch_ids) */
        struct curl_slist *with_ids = NULL;
        if (w->ids.len > 0 && !w->ids.oom) {
                strbuf h = STRBUF_INIT;
                strbuf_printf(&h, "X-Spillway-Signal-Id: %s", w->ids.data);
                with_ids = h.oom ? NULL : curl_slist_append(NULL, h.data);
                strbuf_deinit(&h);
                for (struct curl_slist *it = w->headers; with_ids && it; it = it->next) {
                        struct curl_slist *l = curl_slist_append(with_ids, it->data);
                        if (!l) {
                                curl_slist_free_all(with_ids);
                                with_ids = NULL;
                        } else
                                with_ids = l;
                }
                if (with_ids)
                        curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, with_ids);
        }

        rc = curl_easy_perform(w->curl);
        if (with_ids) {
                curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, w->headers);
                curl_slist_free_all(with_ids);
        }
        w->requests++;
        publish_u64(w, "requests", w->requests);
        curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
        got_status = status > 0 && (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && w->response_truncated));
        if (status > 0)
                publish_u64(w, "last_http_status", (uint64_t) status);

        if (got_status && status >= 200 && status < 300) {
                curl_off_t usec = 0;
                curl_easy_getinfo(w->curl, CURLINFO_TOTAL_TIME_T, &usec);
                w->delivered += m;
                publish_u64(w, "delivered", w->delivered);
                publish(w, "last_success", format_rfc3339(when, sizeof when, w->host->now(w->ctx)));
                wlog(w, LOG_DEBUG, "delivered %zu signal%s in request %zu of %zu: HTTP %ld in %.1f ms",
                     m, m == 1 ? "" : "s", k, n_req, status, (double) usec / 1000.0);
                return 0;
        }

        /* what went wrong, for set_error, last_error and the daemon's log */
        strbuf_printf(&msg, "%s %s", method_names[w->method], w->url_redacted);
        if (w->unix_socket)
                strbuf_printf(&msg, " via unix socket %s", w->unix_socket);
        if (n_req > 1)
                strbuf_printf(&msg, " (request %zu of %zu, %zu signal%s)", k, n_req, m, m == 1 ? "" : "s");
        else
                strbuf_printf(&msg, " (%zu signal%s)", m, m == 1 ? "" : "s");
        if (got_status) {
                strbuf_printf(&msg, ": HTTP %ld%s%s", status, w->reason[0] ? " " : "", w->reason);
                if (w->response.len > 0) {
                        strbuf_puts(&msg, w->response_truncated ? ", response (cut short): " : ", response: ");
                        wh_sanitized(&msg, w->response.data, w->response.len, WEBHOOK_ERROR_BODY_BYTES);
                }
                transient = status == 408 || status == 429 || status >= 500;
                r = transient ? -EAGAIN : -EBADMSG;
        } else {
                strbuf_printf(&msg, ": %s", w->errbuf[0] ? w->errbuf : curl_easy_strerror(rc));
                transient = !curl_error_permanent(rc);
                r = transient ? -EAGAIN : -EPROTO;
        }

        if (transient) {
                if (got_status && (status == 429 || status == 503))
                        delay = retry_after_usec(w);
                if (delay > 0) {
                        format_duration(delay_text, sizeof delay_text, delay);
                        if (SPW_HAS_MEMBER(w->host, struct spw_host, retry_after) && w->host->retry_after)
                                w->host->retry_after(w->ctx, delay);
                        strbuf_printf(&msg, "; transient failure: the batch is retried after %s (Retry-After)", delay_text);
                } else
                        strbuf_puts(&msg, "; transient failure: the batch is retried with backoff");
        } else {
                strbuf_puts(&msg, "; permanent failure: the batch is dropped");
                if (got_status && status >= 300 && status < 400)
                        strbuf_puts(&msg, " (redirects are not followed: fix the url or set follow_redirects: true)");
                else if (rc == CURLE_PEER_FAILED_VERIFICATION)
                        strbuf_puts(&msg, " (set ca_cert_path to the CA that signed the server's certificate, or tls_verify: false)");
        }
        if (k > 1)
                strbuf_printf(&msg, "; the %zu request%s before it succeeded and will be sent again (at-least-once)",
                            k - 1, k - 1 == 1 ? "" : "s");

        if (msg.oom) {
                strbuf_deinit(&msg);
                strbuf_puts(&msg, "delivery failed (out of memory describing why)");
        }
        w->host->set_error(w->ctx, "%s", strbuf_str(&msg));
        {
                strbuf last = { 0 };
                strbuf_printf(&last, "%s: %s", format_rfc3339(when, sizeof when, w->host->now(w->ctx)), strbuf_str(&msg));
                publish(w, "last_error", last.oom ? strbuf_str(&msg) : strbuf_str(&last));
                strbuf_deinit(&last);
        }
        strbuf_deinit(&msg);
        return r;
}

/* "id,id,..." of a request's signals for the X-Spillway-Signal-Id header;
 * left empty when the list would pass 4 KiB (many servers refuse longer
 * header lines): the ids are in the default payload's spillway_signal_id. */
static void batch_ids(webhook *w, json_t *batch) {
        size_t i;
        json_t *o;

        strbuf_reset(&w->ids);
        json_array_foreach(batch, i, o) {
                json_t *id = json_object_get(o, "spillway_signal_id");
                if (!json_is_integer(id))
                        continue;
                strbuf_printf(&w->ids, "%s%lld", w->ids.len ? "," : "", (long long) json_integer_value(id));
                if (w->ids.len > 4096) {
                        strbuf_reset(&w->ids);
                        return;
                }
        }
}

static int webhook_flush(void *self) {
        webhook *w = self;
        size_t n = json_array_size(w->pending), thr = w->group_threshold, n_req, k = 0;
        int r = 0;

        if (n == 0)
                return 0;
        n_req = (n + thr - 1) / thr;
        for (size_t i = 0; i < n && r >= 0; i += thr) {
                size_t m = MIN(thr, n - i);
                json_t *batch = json_array();

                k++;
                for (size_t j = 0; batch && j < m; j++)
                        if (json_array_append(batch, json_array_get(w->pending, i + j)) < 0) {
                                json_decref(batch);
                                batch = NULL;
                        }
                r = batch ? render(w, batch) : -ENOMEM;
                if (r == 0)
                        batch_ids(w, batch);
                json_decref(batch);
                if (r == -E2BIG) {
                        w->host->set_error(w->ctx, "format: the body for %zu signals is larger than %u MiB (a template looping over the batch inside a loop?); permanent failure: the batch is dropped",
                                           m, WEBHOOK_MAX_BODY / (1024 * 1024));
                        r = -EBADMSG;
                } else if (r < 0) {
                        w->host->set_error(w->ctx, "out of memory rendering the body for %zu signals; transient failure: the batch is retried with backoff", m);
                        r = -EAGAIN;
                } else
                        r = send_request(w, k, n_req, m);
        }
        /* all or nothing: after a failure the daemon inserts everything again */
        json_array_clear(w->pending);
        return r;
}

static void webhook_shutdown(void *self) {
        webhook_free(self);
}

static const struct spw_backend webhook_backend = {
        SPW_BACKEND_HEADER,
        .name = "webhook",
        .version = WEBHOOK_VERSION,
        .description = "HTTP(S) delivery of signals with libcurl: batching, payload templates, TLS, unix sockets",
        .config_keys = webhook_config_keys,
        .init = webhook_init,
        .insert = webhook_insert,
        .flush = webhook_flush,
        .shutdown = webhook_shutdown,
        .global_init = webhook_global_init,
        .global_fini = webhook_global_fini,
};

SPW_BACKEND_EXPORT(webhook_backend)
