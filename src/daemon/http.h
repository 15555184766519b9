/* SPDX-License-Identifier: MIT */
#pragma once

/* The HTTP ingest (see http.c). Every function is a no-op when the daemon
 * was built without libmicrohttpd or HTTP is not configured. */

#include "error.h"
#include "strbuf.h"

#include <jansson.h>
#include <stdbool.h>

typedef struct daemon daemon_t;

/* Listen on the activated "http" sockets and on sockets.http. */
int http_start(daemon_t *d, spw_error *err);
/* Stopping: accept no new connections; requests in flight finish. */
void http_quiesce(daemon_t *d);
/* At exit: detach what still waits and close everything. */
void http_free_all(daemon_t *d);
/* After a reload: take renewed TLS files, tokens, limits. */
void http_reload(daemon_t *d);
/* Resume the requests completed since the last call and let MHD write them. */
void http_flush_dirty(daemon_t *d);
/* The HTTP counters, Prometheus text (for metrics_text). */
void http_metrics(daemon_t *d, strbuf *m);
unsigned http_connections(daemon_t *d);

/* Pure helpers, tested by test-http.c. */
/* Go's time.Duration text ("4h0m0s", "1.5s", "300ms") to microseconds. */
int http_parse_go_duration(const char *s, long long *ret_usec);
/* Constant-time comparison of a presented token with the expected one. */
bool http_token_equal(const char *presented, const char *expected);
/* One CrowdSec models.Alert → a Spillway signal object (new reference), or
 * NULL with err naming the missing or wrong field. apply: CrowdSec's
 * decisions become ban_applications. */
json_t *http_alert_to_signal(struct json_t *alert, size_t index, bool apply, long long now_usec, spw_error *err);
/* A POST /v1/signals body (ctype: its Content-Type; NDJSON types take one
 * signal per line, anything else one object or an array) → *ret, a new
 * array of the items (not yet checked as signals); or -EINVAL with why. */
int http_parse_signals(const char *body, size_t len, const char *ctype, json_t **ret, char *why, size_t whysize);
/* A POST /v1/crowdsec/alerts body (one alert or an array) → *ret, a new
 * array of signal objects; or -EINVAL with why naming the alert. */
int http_parse_alerts(const char *body, size_t len, bool apply, long long now_usec, json_t **ret, char *why, size_t whysize);
