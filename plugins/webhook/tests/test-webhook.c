/* SPDX-License-Identifier: MIT */
/*
 * The webhook plugin driven directly through tests/lib/testhost, against a
 * real HTTP(S) receiver on loopback (tests/receiver.py, started per test).
 * The plugin is the built webhook.so, loaded with dlopen() as the daemon
 * does, so these tests also prove the exported descriptor.
 *
 * Usage: test-webhook PATH/webhook.so, with $PYTHON3, $WEBHOOK_RECEIVER,
 * $WEBHOOK_COMPAT_DIR, $WEBHOOK_EXAMPLES_DIR and $OPENSSL set (meson does).
 */
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "receiver-spawn.h"
#include "testhost.h"
#include "tests.h"
#include "yamltree.h"

static const struct spw_backend *B;
static char tmpdir[256];

#define KV(k, v) ((spw_kv) { (k), (v) })

/* ------------------------------------------------------------ fixtures */

/* A signal and the storage it points into. Even numbers: an IPv4 ssh
 * brute force with a ban, labels, an event and unknown producer fields; odd
 * numbers: a simulated IPv6 http probe. */
typedef struct test_signal {
        spw_signal s;
        char ip[64], bucket[64], msg[128];
        spw_kv labels[2];
        spw_ban ban;
        spw_event event;
        spw_source src;
} test_signal;

static void make_signal(test_signal *t, unsigned i) {
        memset(t, 0, sizeof *t);
        t->s.size = sizeof t->s;
        t->s.id = i + 1;
        snprintf(t->bucket, sizeof t->bucket, "bucket-%u", i);
        t->s.bucket_id = t->bucket;
        t->s.start_at = (spw_usec_t) 1590055200 * 1000000;  /* 2020-05-21T10:00:00Z */
        t->s.stop_at = t->s.start_at + 20 * 1000000 + 500000;
        t->s.source = &t->src;
        t->s.ban_size = sizeof t->ban;
        t->s.event_size = sizeof t->event;
        if (i % 2 == 0) {
                snprintf(t->ip, sizeof t->ip, "192.0.2.%u", i % 250 + 1);
                snprintf(t->msg, sizeof t->msg, "%s performed 'crowdsecurity/ssh-bf' (6 events over 20s)", t->ip);
                t->s.scenario = "crowdsecurity/ssh-bf";
                t->s.events_count = 6;
                t->src = (spw_source) { .size = sizeof t->src, .ip = t->ip, .range = "192.0.2.0/24", .as_number = "64500",
                                             .as_org = "Example \"Net\"", .country = "FR",
                                             .latitude = 48.8582, .longitude = 2.3387 };
                t->s.capacity = 5;
                t->s.leak_speed_ns = INT64_C(10000000000);
                t->labels[0] = KV("remediation", "true");
                t->labels[1] = KV("type", "ssh");
                t->s.labels = t->labels;
                t->s.n_labels = 2;
                t->ban = (spw_ban) { .measure_source = "local", .measure_type = "ban",
                                     .until = t->s.stop_at + (spw_usec_t) 4 * 3600 * 1000000,
                                     .target_cn = "FR", .target_as = 64500, .target_as_name = "Example Net",
                                     .ip_text = t->ip, .reason = "crowdsecurity/ssh-bf",
                                     .scenario = "crowdsecurity/ssh-bf" };
                t->s.bans = &t->ban;
                t->s.n_bans = 1;
                t->event = (spw_event) { .time = t->s.start_at, .source_ip = t->ip, .serialized = "{\"log\":\"x\"}" };
                t->s.events = &t->event;
                t->s.n_events = 1;
                t->s.extra_json = "{\"machine_id\":\"host-a\",\"scenario\":\"must-not-override\",\"nested\":{\"k\":[1,2]}}";
        } else {
                snprintf(t->ip, sizeof t->ip, "2001:db8::%x", i);
                snprintf(t->msg, sizeof t->msg, "%s probed http", t->ip);
                t->s.scenario = "crowdsecurity/http-probing";
                t->s.events_count = 11;
                t->src = (spw_source) { .size = sizeof t->src, .ip = t->ip, .country = "DE" };
                t->s.simulation = true;
        }
        t->s.alert_message = t->msg;
        t->s.source_ip = t->ip;
        t->s.source_country = t->src.country;
}

static void insert_signals(void *self, unsigned first, unsigned n) {
        for (unsigned i = first; i < first + n; i++) {
                test_signal t;
                make_signal(&t, i);
                CHECK_EQ(B->insert(self, &t.s), 0);
        }
}

static void *start_plugin(testhost **tp, const spw_kv *cfg, size_t n) {
        testhost *t = testhost_new("hook", cfg, n);
        void *self = NULL;
        int r = testhost_init(t, B, &self);

        if (r < 0) {
                fprintf(stderr, "init failed: %s\n", testhost_last_error(t));
                abort();
        }
        *tp = t;
        return self;
}

static void stop_plugin(testhost *t, void *self) {
        B->shutdown(self);
        testhost_free(t);
}

/* init must fail; returns the error text (static). */
static const char *init_error(const spw_kv *cfg, size_t n) {
        static char msg[1024];
        testhost *t = testhost_new("hook", cfg, n);
        void *self = NULL;
        int r = testhost_init(t, B, &self);

        if (r >= 0) {
                fprintf(stderr, "init unexpectedly succeeded\n");
                abort();
        }
        CHECK(self == NULL);
        snprintf(msg, sizeof msg, "%s", testhost_last_error(t));
        CHECK(msg[0] != 0);
        testhost_free(t);
        return msg;
}

static void start_receiver(receiver *r, const char *name, const receiver_opts *o) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s.jsonl", tmpdir, name);
        CHECK_OK(receiver_start(r, path, o));
}

static const char *url_of(const receiver *r, const char *path) {
        static char url[4][128];
        static int k;
        k = (k + 1) % 4;
        snprintf(url[k], sizeof url[k], "http://127.0.0.1:%d%s", r->port, path);
        return url[k];
}

/* The body of recorded request i, parsed as JSON. */
static json_t *request_json(json_t *reqs, size_t i) {
        json_error_t e;
        const char *body = json_string_value(json_object_get(json_array_get(reqs, i), "body"));
        json_t *v;

        CHECK(body);
        v = json_loads(body, 0, &e);
        if (!v)
                fprintf(stderr, "request %zu body is not JSON (%s): %s\n", i, e.text, body);
        CHECK(v);
        return v;
}

static const char *request_field(json_t *reqs, size_t i, const char *key) {
        return json_string_value(json_object_get(json_array_get(reqs, i), key));
}

static const char *request_header(json_t *reqs, size_t i, const char *name) {
        return json_string_value(json_object_get(json_object_get(json_array_get(reqs, i), "headers"), name));
}

static double now_seconds(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static char *read_file(const char *path) {
        FILE *f = fopen(path, "r");
        char *buf = NULL;
        size_t cap = 0;
        ssize_t n;

        CHECK(f);
        n = getdelim(&buf, &cap, 0, f);
        CHECK(n >= 0);
        fclose(f);
        return buf;
}

/* A backend file's `config:` as the daemon passes it: scalars as they are,
 * mappings flattened to "key.sub". n_ret entries in a static array; values
 * point into the returned document (free it with ydocs_free). */
static ydocs *load_backend_config(const char *path, bool top_level, spw_kv *kv, size_t max, size_t *n_ret) {
        ydocs *d = NULL;
        spw_error err;
        ynode *config;
        size_t n = 0;

        if (ydocs_load_file(path, &d, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                abort();
        }
        CHECK(d->n_docs >= 1 && d->docs[0]);
        config = top_level ? d->docs[0] : ynode_get(d->docs[0], "config");
        CHECK(config && config->type == YNODE_MAPPING);
        for (size_t i = 0; i < config->n_pairs; i++) {
                const char *key = config->pairs[i].key->value;
                ynode *v = config->pairs[i].value;

                if (top_level && strcmp(key, "name") == 0)
                        continue; /* the daemon takes name: for itself */
                if (v->type == YNODE_SCALAR) {
                        CHECK(n < max);
                        kv[n++] = KV(key, v->value);
                } else if (v->type == YNODE_MAPPING) {
                        for (size_t j = 0; j < v->n_pairs; j++) {
                                static char flat[64][128];
                                static size_t n_flat;
                                CHECK(n < max && n_flat < ELEMENTSOF(flat));
                                snprintf(flat[n_flat], sizeof flat[n_flat], "%s.%s", key, v->pairs[j].key->value);
                                kv[n++] = KV(flat[n_flat], v->pairs[j].value->value);
                                n_flat++;
                        }
                }
        }
        *n_ret = n;
        return d;
}

static void set_kv(spw_kv *kv, size_t n, const char *key, const char *value) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(kv[i].key, key) == 0) {
                        kv[i].value = value;
                        return;
                }
        fprintf(stderr, "no key %s\n", key);
        abort();
}

/* --------------------------------------------------------------- tests */

static void test_descriptor(void) {
        bool have_url = false, have_format = false;

        CHECK_EQ(B->magic, SPW_BACKEND_MAGIC);
        CHECK_EQ(B->abi_major, SPW_BACKEND_ABI_MAJOR);
        CHECK_EQ(B->size, sizeof(struct spw_backend));
        CHECK_STREQ(B->name, "webhook");
        CHECK(B->insert && B->flush && B->init && B->shutdown);
        CHECK(B->read_at == NULL);
        for (const spw_config_key *k = B->config_keys; k->name; k++) {
                CHECK(k->description && *k->description);
                have_url = have_url || strcmp(k->name, "url") == 0;
                have_format = have_format || strcmp(k->name, "format") == 0;
        }
        CHECK(have_url && have_format);
}

/* README.md's key table says what the descriptor's table says: every key,
 * its description and default (backticks and "\|" aside), enums' choices. */
static void test_readme_table(void) {
        char path[512], *readme, *p;
        size_t n_rows = 0;

        snprintf(path, sizeof path, "%s/README.md", getenv("WEBHOOK_SOURCE_DIR"));
        readme = read_file(path);
        for (const spw_config_key *k = B->config_keys; k->name; k++) {
                char head[64], *row, *cells[4], *end, line[1024];

                snprintf(head, sizeof head, "\n| `%s` |", k->name);
                row = strstr(readme, head);
                if (!row) {
                        fprintf(stderr, "README.md: no row for config key %s\n", k->name);
                        abort();
                }
                end = strchr(row + 1, '\n');
                CHECK(end && (size_t) (end - row) < sizeof line);
                /* work on a copy: the split below writes into it */
                memcpy(line, row + 3, (size_t) (end - row - 3));
                line[end - row - 3] = 0;
                row = line;
                /* split on unescaped '|', dropping backticks and the escapes */
                for (size_t c = 0; c < 4; c++)
                        cells[c] = NULL;
                {
                        size_t c = 0;
                        char *w = row, *r = row;
                        cells[0] = row;
                        for (; *r; r++) {
                                if (*r == '`')
                                        continue;
                                if (*r == '\\' && r[1] == '|') {
                                        *w++ = '|';
                                        r++;
                                        continue;
                                }
                                if (*r == '|') {
                                        *w++ = 0;
                                        if (++c < 4)
                                                cells[c] = w;
                                        continue;
                                }
                                *w++ = *r;
                        }
                        *w = 0;
                }
                for (size_t c = 0; c < 4; c++) {
                        CHECK(cells[c]);
                        while (*cells[c] == ' ')
                                cells[c]++;
                        for (size_t l = strlen(cells[c]); l > 0 && cells[c][l - 1] == ' '; l--)
                                cells[c][l - 1] = 0;
                }
                CHECK_STREQ(cells[0], k->name);
                if (k->type == SPW_CONFIG_ENUM)
                        CHECK_STREQ(cells[1], k->choices);
                if (k->default_value)
                        CHECK_STREQ(cells[2], k->default_value);
                CHECK_STREQ(cells[3], k->description);
                n_rows++;
        }
        /* and, in the section of the table, no row for a key the plugin does not have */
        p = strstr(readme, "## Configuration keys");
        CHECK(p);
        {
                char *section_end = strstr(p + 1, "\n## ");
                CHECK(section_end);
                *section_end = 0;
                for (p = strstr(p, "\n| `"); p; p = strstr(p + 1, "\n| `")) {
                        char name[64] = "";
                        bool known = false;
                        CHECK(sscanf(p, "\n| `%63[^`]`", name) == 1);
                        for (const spw_config_key *k = B->config_keys; k->name; k++)
                                known = known || strcmp(k->name, name) == 0;
                        if (!known) {
                                fprintf(stderr, "README.md documents a key the plugin does not have: %s\n", name);
                                abort();
                        }
                }
        }
        CHECK(n_rows > 20);
        free(readme);
}

static void test_config_errors(void) {
        const char *m;

        m = init_error(NULL, 0);
        CHECK_CONTAINS(m, "url is missing");
        CHECK_CONTAINS(m, "webhook not started");

        m = init_error((spw_kv[]) { KV("url", "ftp://example.com/x") }, 1);
        CHECK_CONTAINS(m, "url: \"ftp://example.com/x\"");
        CHECK_CONTAINS(m, "expected http:// or https://");

        m = init_error((spw_kv[]) { KV("url", "http://u:hunter2@[::1/x") }, 1);
        CHECK_CONTAINS(m, "is not a valid URL");
        CHECK(!strstr(m, "hunter2"));

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("timeout", "ten seconds") }, 2);
        CHECK_CONTAINS(m, "timeout: \"ten seconds\" is not a duration");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("timeout", "0") }, 2);
        CHECK_CONTAINS(m, "timeout: \"0\" is out of range: expected a duration from 1ms to 24h");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("connect_timeout", "48h") }, 2);
        CHECK_CONTAINS(m, "connect_timeout: \"48h\" is out of range");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("tiemout", "10s") }, 2);
        CHECK_CONTAINS(m, "\"tiemout\" is not a webhook setting");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("group_threshold", "0") }, 2);
        CHECK_CONTAINS(m, "group_threshold: \"0\" is out of range: expected 1");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("method", "DELETE") }, 2);
        CHECK_CONTAINS(m, "expected one of POST|PUT|PATCH|GET");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("type", "slack") }, 2);
        CHECK_CONTAINS(m, "type: \"slack\"");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("log_level", "verbose") }, 2);
        CHECK_CONTAINS(m, "trace|debug|info|warn|error|off");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("tls_verify", "true"),
                                    KV("skip_tls_verification", "true") }, 3);
        CHECK_CONTAINS(m, "contradict");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("headers.Bad Name", "x") }, 2);
        CHECK_CONTAINS(m, "\"Bad Name\" is not a valid header name");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("headers.X-Evil", "a\r\nHost: evil") }, 2);
        CHECK_CONTAINS(m, "headers.X-Evil: the value contains a line break");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("ca_cert_path", "/nonexistent/ca.pem") }, 2);
        CHECK_CONTAINS(m, "ca_cert_path: cannot read \"/nonexistent/ca.pem\"");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("format", "{\"text\": \"{{range .}}\n{{.Scenario | shout}}{{end}}\"}") }, 2);
        CHECK_CONTAINS(m, "format:2:15: function \"shout\" not defined");

        m = init_error((spw_kv[]) { KV("url", "http://127.0.0.1/"), KV("format", "{{range .}}{{.Scenario}}") }, 2);
        CHECK_CONTAINS(m, "format:1:25: missing {{end}} for {{range}} started at 1:1");

        m = init_error((spw_kv[]) { KV("url", "http://localhost/"),
                                    KV("unix_socket", "/tmp/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock") }, 2);
        CHECK_CONTAINS(m, "unix_socket:");
        CHECK_CONTAINS(m, "too long");
}

static void test_single_delivery(void) {
        receiver rc;
        testhost *t;
        void *self;
        json_t *reqs, *body, *sig, *ban;
        spw_kv cfg[4];

        start_receiver(&rc, "single", NULL);
        cfg[0] = KV("url", url_of(&rc, "/hook/single"));
        cfg[1] = KV("headers.Authorization", "Bearer s3cr3t-token");
        cfg[2] = KV("headers.X-Spillway-Test", "yes");
        cfg[3] = KV("group_wait", "0");
        self = start_plugin(&t, cfg, 4);
        CHECK_CONTAINS(testhost_log(t), "sending POST http://127.0.0.1:");

        /* nothing pending: no request */
        CHECK_OK(B->flush(self));
        CHECK_EQ(receiver_count(&rc), 0);

        insert_signals(self, 0, 1);
        CHECK_EQ(receiver_count(&rc), 0); /* insert only buffers */
        CHECK_OK(B->flush(self));

        reqs = receiver_requests(&rc);
        CHECK_EQ(json_array_size(reqs), 1);
        CHECK_STREQ(request_field(reqs, 0, "method"), "POST");
        CHECK_STREQ(request_field(reqs, 0, "path"), "/hook/single");
        CHECK_STREQ(request_header(reqs, 0, "Content-Type"), "application/json");
        CHECK_STREQ(request_header(reqs, 0, "Authorization"), "Bearer s3cr3t-token");
        CHECK_STREQ(request_header(reqs, 0, "X-Spillway-Test"), "yes");
        CHECK(request_header(reqs, 0, "Expect") == NULL);
        CHECK_CONTAINS(request_header(reqs, 0, "User-Agent"), "spillway-webhook/");

        /* the default payload: a JSON array of signals, CrowdSec wire names */
        body = request_json(reqs, 0);
        CHECK(json_is_array(body));
        CHECK_EQ(json_array_size(body), 1);
        sig = json_array_get(body, 0);
        CHECK_STREQ(json_string_value(json_object_get(sig, "scenario")), "crowdsecurity/ssh-bf");
        CHECK_STREQ(json_string_value(json_object_get(sig, "bucket_id")), "bucket-0");
        CHECK_STREQ(json_string_value(json_object_get(sig, "start_at")), "2020-05-21T10:00:00Z");
        CHECK_STREQ(json_string_value(json_object_get(sig, "stop_at")), "2020-05-21T10:00:20.5Z");
        CHECK_EQ(json_integer_value(json_object_get(sig, "events_count")), 6);
        CHECK_STREQ(json_string_value(json_object_get(json_object_get(sig, "source"), "Ip")), "192.0.2.1");
        CHECK_STREQ(json_string_value(json_object_get(json_object_get(sig, "source"), "AutonomousSystemOrganization")), "Example \"Net\"");
        CHECK(json_real_value(json_object_get(json_object_get(sig, "source"), "Latitude")) == 48.8582);
        CHECK_STREQ(json_string_value(json_object_get(sig, "Source_ip")), "192.0.2.1");
        CHECK_EQ(json_integer_value(json_object_get(sig, "leak_speed")), INT64_C(10000000000));
        CHECK(json_is_false(json_object_get(sig, "Simulation")));
        CHECK_STREQ(json_string_value(json_object_get(json_object_get(sig, "Labels"), "remediation")), "true");
        CHECK_STREQ(json_string_value(json_object_get(json_array_get(json_object_get(sig, "events_sequence"), 0), "time")),
                    "2020-05-21T10:00:00Z");
        ban = json_array_get(json_object_get(sig, "ban_applications"), 0);
        CHECK_STREQ(json_string_value(json_object_get(ban, "MeasureType")), "ban");
        CHECK_STREQ(json_string_value(json_object_get(ban, "IpText")), "192.0.2.1");
        CHECK_STREQ(json_string_value(json_object_get(ban, "Until")), "2020-05-21T14:00:20.5Z");
        CHECK_EQ(json_integer_value(json_object_get(ban, "TargetAS")), 64500);
        /* unknown producer fields forwarded, never overriding known ones */
        CHECK_STREQ(json_string_value(json_object_get(sig, "machine_id")), "host-a");
        CHECK_EQ(json_integer_value(json_array_get(json_object_get(json_object_get(sig, "nested"), "k"), 1)), 2);
        json_decref(body);
        json_decref(reqs);

        CHECK_STREQ(testhost_status(t, "delivered"), "1");
        CHECK_STREQ(testhost_status(t, "requests"), "1");
        CHECK_STREQ(testhost_status(t, "last_http_status"), "200");
        CHECK_STREQ(testhost_status(t, "last_success"), "2023-11-14T22:13:20Z"); /* the test clock */
        CHECK(testhost_status(t, "last_error") == NULL);

        stop_plugin(t, self);
        receiver_stop(&rc);
}

static void test_batching(void) {
        receiver rc;
        testhost *t;
        void *self;
        json_t *reqs;
        size_t sizes[] = { 3, 3, 1 };

        start_receiver(&rc, "batch", NULL);
        self = start_plugin(&t, (spw_kv[]) { KV("url", url_of(&rc, "/b")), KV("group_threshold", "3") }, 2);

        insert_signals(self, 0, 7);
        CHECK_OK(B->flush(self));
        reqs = receiver_requests(&rc);
        CHECK_EQ(json_array_size(reqs), 3); /* a batch never exceeds group_threshold */
        for (size_t i = 0, k = 0; i < 3; i++) {
                json_t *body = request_json(reqs, i);
                CHECK_EQ(json_array_size(body), sizes[i]);
                for (size_t j = 0; j < sizes[i]; j++, k++) {
                        char bucket[32];
                        snprintf(bucket, sizeof bucket, "bucket-%zu", k);
                        CHECK_STREQ(json_string_value(json_object_get(json_array_get(body, j), "bucket_id")), bucket);
                }
                json_decref(body);
        }
        /* one connection, kept alive across the requests */
        CHECK_STREQ(request_field(reqs, 1, "peer"), request_field(reqs, 0, "peer"));
        CHECK_STREQ(request_field(reqs, 2, "peer"), request_field(reqs, 0, "peer"));
        json_decref(reqs);

        /* the next flush reuses the connection too and starts a new batch */
        insert_signals(self, 7, 2);
        CHECK_OK(B->flush(self));
        reqs = receiver_requests(&rc);
        CHECK_EQ(json_array_size(reqs), 4);
        CHECK_STREQ(request_field(reqs, 3, "peer"), request_field(reqs, 0, "peer"));
        json_decref(reqs);
        CHECK_STREQ(testhost_status(t, "delivered"), "9");
        CHECK_STREQ(testhost_status(t, "requests"), "4");

        stop_plugin(t, self);
        receiver_stop(&rc);
}

static void test_methods(void) {
        receiver rc;
        testhost *t;
        void *self;
        json_t *reqs;

        start_receiver(&rc, "methods", NULL);
        self = start_plugin(&t, (spw_kv[]) { KV("url", url_of(&rc, "/put")), KV("method", "PUT"),
                                             KV("content_type", "application/x-ndjson") }, 3);
        insert_signals(self, 0, 1);
        CHECK_OK(B->flush(self));
        stop_plugin(t, self);

        self = start_plugin(&t, (spw_kv[]) { KV("url", url_of(&rc, "/get?ping=1")), KV("method", "GET") }, 2);
        insert_signals(self, 0, 2);
        CHECK_OK(B->flush(self));
        CHECK_STREQ(testhost_status(t, "delivered"), "2");
        stop_plugin(t, self);

        reqs = receiver_requests(&rc);
        CHECK_EQ(json_array_size(reqs), 2);
        CHECK_STREQ(request_field(reqs, 0, "method"), "PUT");
        CHECK_STREQ(request_header(reqs, 0, "Content-Type"), "application/x-ndjson");
        CHECK_CONTAINS(request_field(reqs, 0, "body"), "crowdsecurity/ssh-bf");
        CHECK_STREQ(request_field(reqs, 1, "method"), "GET");
        CHECK_STREQ(request_field(reqs, 1, "path"), "/get?ping=1");
        CHECK_STREQ(request_field(reqs, 1, "body"), "");
        CHECK(request_header(reqs, 1, "Content-Type") == NULL);
        json_decref(reqs);
        receiver_stop(&rc);
}

static void test_transient_failures(void) {
        static const struct {
                int status;
                spw_usec_t retry_after;
        } cases[] = { { 500, 0 }, { 503, 7 * 1000000 }, { 429, 3 * 1000000 }, { 408, 0 }, { 502, 0 },
                      { 503, 30 * 1000000 }, { 429, 3600 * INT64_C(1000000) } };
        receiver rc;
        testhost *t;
        void *self;
        char expect[64];

        start_receiver(&rc, "transient", &(receiver_opts) {
                .plan = "{\"responses\": ["
                        "{\"status\": 500, \"body\": \"upstream \\u0001exploded\\n\\tbadly\"},"
                        "{\"status\": 503, \"retry_after\": 7},"
                        "{\"status\": 429, \"retry_after\": \"3\"},"
                        "{\"status\": 408},"
                        "{\"status\": 502, \"retry_after\": 9},"
                        /* an HTTP date 30 s after the test clock (1700000000) */
                        "{\"status\": 503, \"retry_after\": \"Tue, 14 Nov 2023 22:13:50 GMT\"},"
                        /* a day: capped at an hour */
                        "{\"status\": 429, \"retry_after\": 86400}]}" });
        self = start_plugin(&t, (spw_kv[]) { KV("url", url_of(&rc, "/t")) }, 1);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                insert_signals(self, 0, 2);
                CHECK_EQ(B->flush(self), -EAGAIN);
                snprintf(expect, sizeof expect, ": HTTP %d", cases[i].status);
                CHECK_CONTAINS(testhost_last_error(t), expect);
                CHECK_CONTAINS(testhost_last_error(t), url_of(&rc, "/t"));
                CHECK_CONTAINS(testhost_last_error(t), "transient failure");
                /* Retry-After only for 429 and 503 */
                CHECK_EQ(testhost_retry_after(t), cases[i].retry_after);
                snprintf(expect, sizeof expect, "%d", cases[i].status);
                CHECK_STREQ(testhost_status(t, "last_http_status"), expect);
                CHECK_CONTAINS(testhost_status(t, "last_error"), "HTTP");
                /* the buffer was dropped: a flush without inserts sends nothing */
                CHECK_OK(B->flush(self));
                CHECK_EQ(receiver_count(&rc), i + 1);
                if (i == 0) {
                        CHECK_CONTAINS(testhost_last_error(t), "HTTP 500 Internal Server Error, response: upstream .exploded badly");
                        CHECK_CONTAINS(testhost_last_error(t), "(2 signals)");
                }
                if (i == 1)
                        CHECK_CONTAINS(testhost_last_error(t), "retried after 7s (Retry-After)");
        }
        CHECK_STREQ(testhost_status(t, "delivered"), "0");

        /* after the failures, the daemon re-inserts and the next attempt works */
        insert_signals(self, 0, 2);
        CHECK_OK(B->flush(self));
        CHECK_STREQ(testhost_status(t, "delivered"), "2");
        CHECK_EQ(receiver_count(&rc), ELEMENTSOF(cases) + 1);

        stop_plugin(t, self);
        receiver_stop(&rc);
}

static void test_permanent_failures(void) {
        receiver rc;
        testhost *t;
        void *self;

        start_receiver(&rc, "permanent", &(receiver_opts) {
                .plan = "[{\"status\": 400, \"body\": \"{\\\"error\\\": \\\"bad payload\\\"}\"}, {\"status\": 404}, "
                        "{\"status\": 302, \"headers\": {\"Location\": \"/elsewhere\"}}]" });
        self = start_plugin(&t, (spw_kv[]) { KV("url", url_of(&rc, "/p")) }, 1);

        insert_signals(self, 0, 1);
        CHECK_EQ(B->flush(self), -EBADMSG);
        CHECK_CONTAINS(testhost_last_error(t), "HTTP 400 Bad Request, response: {\"error\": \"bad payload\"}");
        CHECK_CONTAINS(testhost_last_error(t), "permanent failure: the batch is dropped");
        CHECK_EQ(testhost_retry_after(t), 0);

        insert_signals(self, 0, 1);
        CHECK_EQ(B->flush(self), -EBADMSG);
        CHECK_CONTAINS(testhost_last_error(t), "HTTP 404");

        /* redirects are not followed unless configured */
        insert_signals(self, 0, 1);
        CHECK_EQ(B->flush(self), -EBADMSG);
        CHECK_CONTAINS(testhost_last_error(t), "HTTP 302");
        CHECK_CONTAINS(testhost_last_error(t), "follow_redirects");
        CHECK_EQ(receiver_count(&rc), 3);
        CHECK_OK(B->flush(self)); /* dropped */
        CHECK_EQ(receiver_count(&rc), 3);
        stop_plugin(t, self);
        receiver_stop(&rc);
}

static void test_redirect_followed(void) {
        receiver rc;
        testhost *t;
        void *self;
        json_t *reqs;

        start_receiver(&rc, "redirect", &(receiver_opts) {
                .plan = "[{\"status\": 307, \"headers\": {\"Location\": \"/final\"}}]" });
        self = start_plugin(&t, (spw_kv[]) { KV("url", url_of(&rc, "/first")), KV("follow_redirects", "true") }, 2);
        insert_signals(self, 0, 1);
        CHECK_OK(B->flush(self));
        reqs = receiver_requests(&rc);
        CHECK_EQ(json_array_size(reqs), 2);
        CHECK_STREQ(request_field(reqs, 1, "path"), "/final");
        CHECK_STREQ(request_field(reqs, 1, "method"), "POST");
        CHECK_CONTAINS(request_field(reqs, 1, "body"), "crowdsecurity/ssh-bf");
        json_decref(reqs);
        stop_plugin(t, self);
        receiver_stop(&rc);
}

static void test_partial_batch_failure(void) {
        receiver rc;
        testhost *t;
        void *self;

        start_receiver(&rc, "partial", &(receiver_opts) { .plan = "[{\"status\": 200}, {\"status\": 500}]" });
        self = start_plugin(&t, (spw_kv[]) { KV("url", url_of(&rc, "/x")), KV("group_threshold", "2") }, 2);
        insert_signals(self, 0, 5);
        CHECK_EQ(B->flush(self), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(t), "(request 2 of 3, 2 signals)");
        CHECK_CONTAINS(testhost_last_error(t), "the 1 request before it succeeded and will be sent again (at-least-once)");
        CHECK_EQ(receiver_count(&rc), 2); /* request 3 never sent */
        CHECK_STREQ(testhost_status(t, "delivered"), "2");

        /* the retry sends all five again */
        insert_signals(self, 0, 5);
        CHECK_OK(B->flush(self));
        CHECK_EQ(receiver_count(&rc), 5);
        CHECK_STREQ(testhost_status(t, "delivered"), "7");
        stop_plugin(t, self);
        receiver_stop(&rc);
}

static void test_credentials_stripped(void) {
        receiver rc;
        testhost *t;
        void *self;
        char url[256];
        json_t *reqs;

        start_receiver(&rc, "creds", &(receiver_opts) { .plan = "[{\"status\": 500}]" });
        snprintf(url, sizeof url, "http://alice:s3cret@127.0.0.1:%d/hook?token=abcdef", rc.port);
        self = start_plugin(&t, (spw_kv[]) { KV("url", url) }, 1);
        CHECK(!strstr(testhost_log(t), "s3cret"));
        insert_signals(self, 0, 1);
        CHECK_EQ(B->flush(self), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(t), url_of(&rc, "/hook?redacted"));
        CHECK(!strstr(testhost_last_error(t), "s3cret"));
        CHECK(!strstr(testhost_last_error(t), "alice"));
        CHECK(!strstr(testhost_last_error(t), "abcdef"));
        CHECK(!strstr(testhost_status(t, "last_error"), "s3cret"));

        /* the credentials are still used, as basic auth */
        insert_signals(self, 0, 1);
        CHECK_OK(B->flush(self));
        reqs = receiver_requests(&rc);
        CHECK_STREQ(request_header(reqs, 1, "Authorization"), "Basic YWxpY2U6czNjcmV0");
        CHECK_STREQ(request_field(reqs, 1, "path"), "/hook?token=abcdef");
        json_decref(reqs);
        stop_plugin(t, self);
        receiver_stop(&rc);
}

static void test_timeout(void) {
        receiver rc;
        testhost *t;
        void *self;
        double start, elapsed;

        start_receiver(&rc, "hang", &(receiver_opts) { .plan = "{\"responses\": [{\"hang\": true}]}" });
        self = start_plugin(&t, (spw_kv[]) { KV("url", url_of(&rc, "/slow")), KV("timeout", "1s") }, 2);
        insert_signals(self, 0, 1);
        start = now_seconds();
        CHECK_EQ(B->flush(self), -EAGAIN);
        elapsed = now_seconds() - start;
        if (elapsed < 0.9 || elapsed > 4.0) {
                fprintf(stderr, "timeout of 1s fired after %.2fs\n", elapsed);
                abort();
        }
        CHECK_CONTAINS(testhost_last_error(t), "timed out");
        CHECK_CONTAINS(testhost_last_error(t), "transient failure");
        CHECK_EQ(receiver_count(&rc), 1);

        /* the handle recovers: the next request goes through */
        insert_signals(self, 0, 1);
        CHECK_OK(B->flush(self));
        stop_plugin(t, self);
        receiver_stop(&rc);
}

static void test_receiver_down_then_up(void) {
        receiver rc;
        testhost *t;
        void *self;
        int port;
        json_t *reqs, *body;

        /* learn a free port, then stop the receiver so nothing listens there */
        start_receiver(&rc, "down", NULL);
        port = rc.port;
        receiver_stop(&rc);

        self = start_plugin(&t, (spw_kv[]) { KV("url", url_of(&rc, "/late")), KV("connect_timeout", "2s") }, 2);
        insert_signals(self, 0, 2);
        CHECK_EQ(B->flush(self), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(t), "onnect"); /* "Couldn't connect" / "Failed to connect" */
        CHECK_CONTAINS(testhost_last_error(t), "transient failure");
        CHECK(testhost_status(t, "last_http_status") == NULL);

        /* the receiver comes back on the same port; the daemon re-inserts */
        start_receiver(&rc, "down", &(receiver_opts) { .port = port });
        CHECK_EQ(rc.port, port);
        insert_signals(self, 0, 2);
        CHECK_OK(B->flush(self));
        reqs = receiver_requests(&rc);
        CHECK_EQ(json_array_size(reqs), 1);
        body = request_json(reqs, 0);
        CHECK_EQ(json_array_size(body), 2); /* each signal once */
        json_decref(body);
        json_decref(reqs);
        CHECK_STREQ(testhost_status(t, "delivered"), "2");

        /* the receiver restarts between flushes: the kept-alive connection
         * is dead, the next request opens a new one by itself */
        receiver_stop(&rc);
        start_receiver(&rc, "down", &(receiver_opts) { .port = port, .plan = "[{\"status\": 200, \"close\": true}]" });
        insert_signals(self, 2, 1);
        CHECK_OK(B->flush(self));
        /* and the receiver closing after its answer is no failure either */
        insert_signals(self, 3, 1);
        CHECK_OK(B->flush(self));
        reqs = receiver_requests(&rc);
        CHECK_EQ(json_array_size(reqs), 2);
        CHECK(strcmp(request_field(reqs, 0, "peer"), request_field(reqs, 1, "peer")) != 0);
        json_decref(reqs);
        CHECK_STREQ(testhost_status(t, "delivered"), "4");
        stop_plugin(t, self);
        receiver_stop(&rc);
}

static void test_unix_socket(void) {
        receiver rc;
        testhost *t;
        void *self;
        char sock[300];
        json_t *reqs;

        snprintf(sock, sizeof sock, "%s/receiver.sock", tmpdir);
        start_receiver(&rc, "unix", &(receiver_opts) { .unix_path = sock });
        self = start_plugin(&t, (spw_kv[]) { KV("url", "http://localhost/over-unix"), KV("unix_socket", sock) }, 2);
        insert_signals(self, 0, 3);
        CHECK_OK(B->flush(self));
        insert_signals(self, 3, 1);
        CHECK_OK(B->flush(self));
        reqs = receiver_requests(&rc);
        CHECK_EQ(json_array_size(reqs), 2);
        CHECK_STREQ(request_field(reqs, 0, "path"), "/over-unix");
        CHECK_STREQ(request_header(reqs, 0, "Host"), "localhost");
        CHECK_STREQ(request_field(reqs, 0, "peer"), "unix");
        json_decref(reqs);
        CHECK_STREQ(testhost_status(t, "delivered"), "4");
        stop_plugin(t, self);
        receiver_stop(&rc);

        /* nobody listening on the socket: transient, with the socket named */
        self = start_plugin(&t, (spw_kv[]) { KV("url", "http://localhost/over-unix"), KV("unix_socket", sock) }, 2);
        insert_signals(self, 0, 1);
        CHECK_EQ(B->flush(self), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(t), "via unix socket ");
        stop_plugin(t, self);
}

static void test_proxy(void) {
        receiver rc;
        testhost *t;
        void *self;
        json_t *reqs;
        char proxy[64];

        /* the receiver plays a forward proxy: it sees the absolute URL */
        start_receiver(&rc, "proxy", NULL);
        snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", rc.port);
        self = start_plugin(&t, (spw_kv[]) { KV("url", "http://receiver.invalid/configured"), KV("proxy", proxy) }, 2);
        insert_signals(self, 0, 1);
        CHECK_OK(B->flush(self));
        stop_plugin(t, self);

        /* by default, the environment's proxy */
        CHECK(setenv("http_proxy", proxy, 1) == 0);
        self = start_plugin(&t, (spw_kv[]) { KV("url", "http://receiver.invalid/from-env") }, 1);
        insert_signals(self, 0, 1);
        CHECK_OK(B->flush(self));
        stop_plugin(t, self);

        /* proxy: none ignores it (and receiver.invalid does not resolve) */
        self = start_plugin(&t, (spw_kv[]) { KV("url", "http://receiver.invalid/none"), KV("proxy", "none"),
                                             KV("connect_timeout", "2s") }, 3);
        insert_signals(self, 0, 1);
        CHECK_EQ(B->flush(self), -EAGAIN);
        CHECK_CONTAINS(testhost_last_error(t), "receiver.invalid");
        stop_plugin(t, self);
        CHECK(unsetenv("http_proxy") == 0);

        reqs = receiver_requests(&rc);
        CHECK_EQ(json_array_size(reqs), 2);
        CHECK_STREQ(request_field(reqs, 0, "path"), "http://receiver.invalid/configured");
        CHECK_STREQ(request_field(reqs, 1, "path"), "http://receiver.invalid/from-env");
        json_decref(reqs);
        receiver_stop(&rc);
}

static void run(const char *cmd) {
        char full[4096];
        snprintf(full, sizeof full, "cd '%s' && ( %s ) >>openssl.log 2>&1", tmpdir, cmd);
        if (system(full) != 0) {
                char log[512];
                snprintf(log, sizeof log, "%s/openssl.log", tmpdir);
                fprintf(stderr, "failed: %s\n%s\n", cmd, read_file(log));
                abort();
        }
}

/* A test CA, a server certificate for 127.0.0.1 and a client certificate. */
static void make_certificates(const char *openssl) {
        char cmd[2048];
        static const char *const leaves[][3] = {
                { "server", "localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth" },
                { "client", "spillway-client", "extendedKeyUsage=clientAuth" },
        };

        snprintf(cmd, sizeof cmd,
                 "'%s' req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem "
                 "-days 2 -subj /CN=spillway-test-ca -addext basicConstraints=critical,CA:TRUE "
                 "-addext keyUsage=critical,keyCertSign,cRLSign", openssl);
        run(cmd);
        for (size_t i = 0; i < ELEMENTSOF(leaves); i++) {
                snprintf(cmd, sizeof cmd,
                         "'%1$s' req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %2$s.key -out %2$s.csr "
                         "-subj /CN=%3$s && printf 'basicConstraints=CA:FALSE\\n%4$s\\n' > %2$s.ext && "
                         "'%1$s' x509 -req -in %2$s.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out %2$s.pem -days 2 -extfile %2$s.ext",
                         openssl, leaves[i][0], leaves[i][1], leaves[i][2]);
                run(cmd);
        }
}

/* Set when a part could not run: main() then exits 77 (meson's "skipped"),
 * not 0, so a missing tool is never counted as a pass. */
static bool skipped_part;

static void test_tls(void) {
        const char *openssl = getenv("OPENSSL");
        char ca[300], cert[300], key[300], ccert[300], ckey[300], url[128];
        receiver rc;
        testhost *t;
        void *self;
        json_t *reqs;

        if (!openssl) {
                fprintf(stderr, "test_tls: SKIP: no openssl (OPENSSL unset); TLS not tested\n");
                skipped_part = true;
                return;
        }
        make_certificates(openssl);
        snprintf(ca, sizeof ca, "%s/ca.pem", tmpdir);
        snprintf(cert, sizeof cert, "%s/server.pem", tmpdir);
        snprintf(key, sizeof key, "%s/server.key", tmpdir);
        snprintf(ccert, sizeof ccert, "%s/client.pem", tmpdir);
        snprintf(ckey, sizeof ckey, "%s/client.key", tmpdir);

        start_receiver(&rc, "tls", &(receiver_opts) { .cert = cert, .key = key });
        snprintf(url, sizeof url, "https://127.0.0.1:%d/tls", rc.port);

        /* verification on, with the test CA: delivered */
        self = start_plugin(&t, (spw_kv[]) { KV("url", url), KV("ca_cert_path", ca) }, 2);
        insert_signals(self, 0, 1);
        CHECK_OK(B->flush(self));
        stop_plugin(t, self);

        /* verification on, system CAs only: refused, permanently */
        self = start_plugin(&t, (spw_kv[]) { KV("url", url) }, 1);
        insert_signals(self, 0, 1);
        CHECK_EQ(B->flush(self), -EPROTO);
        CHECK_CONTAINS(testhost_last_error(t), "certificate");
        CHECK_CONTAINS(testhost_last_error(t), "ca_cert_path");
        stop_plugin(t, self);

        /* verification off, by either name */
        self = start_plugin(&t, (spw_kv[]) { KV("url", url), KV("tls_verify", "false") }, 2);
        insert_signals(self, 0, 1);
        CHECK_OK(B->flush(self));
        stop_plugin(t, self);
        self = start_plugin(&t, (spw_kv[]) { KV("url", url), KV("skip_tls_verification", "true") }, 2);
        insert_signals(self, 0, 1);
        CHECK_OK(B->flush(self));
        stop_plugin(t, self);

        reqs = receiver_requests(&rc);
        CHECK_EQ(json_array_size(reqs), 3);
        CHECK(json_is_true(json_object_get(json_array_get(reqs, 0), "tls")));
        json_decref(reqs);
        receiver_stop(&rc);

        /* mutual TLS: the receiver requires a client certificate */
        start_receiver(&rc, "mtls", &(receiver_opts) { .cert = cert, .key = key, .client_ca = ca });
        snprintf(url, sizeof url, "https://127.0.0.1:%d/mtls", rc.port);
        self = start_plugin(&t, (spw_kv[]) { KV("url", url), KV("ca_cert_path", ca),
                                             KV("client_cert_path", ccert), KV("client_key_path", ckey) }, 4);
        insert_signals(self, 0, 1);
        CHECK_OK(B->flush(self));
        stop_plugin(t, self);
        self = start_plugin(&t, (spw_kv[]) { KV("url", url), KV("ca_cert_path", ca) }, 2);
        insert_signals(self, 0, 1);
        CHECK(B->flush(self) < 0);
        stop_plugin(t, self);
        reqs = receiver_requests(&rc);
        CHECK_EQ(json_array_size(reqs), 1);
        CHECK_STREQ(request_field(reqs, 0, "client_cert"), "spillway-client");
        json_decref(reqs);
        receiver_stop(&rc);
}

static void test_bounded_response(void) {
        receiver rc;
        testhost *t;
        void *self;
        char plan[256];
        const char *e;

        snprintf(plan, sizeof plan,
                 "[{\"status\": 200, \"body\": \"%s\"}, {\"status\": 500, \"body\": \"%s\"}]",
                 "0123456789abcdef0123456789abcdef0123456789abcdef", "EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE");
        start_receiver(&rc, "bounded", &(receiver_opts) { .plan = plan });
        self = start_plugin(&t, (spw_kv[]) { KV("url", url_of(&rc, "/b")), KV("max_response_bytes", "16") }, 2);
        /* a 2xx answer longer than the limit is still a success */
        insert_signals(self, 0, 1);
        CHECK_OK(B->flush(self));
        /* an error answer is cut at the limit in the message */
        insert_signals(self, 0, 1);
        CHECK_EQ(B->flush(self), -EAGAIN);
        e = testhost_last_error(t);
        CHECK_CONTAINS(e, "HTTP 500 Internal Server Error, response (cut short): EEEEEEEEEEEEEEEE;");
        CHECK(!strstr(e, "EEEEEEEEEEEEEEEEE"));
        stop_plugin(t, self);
        receiver_stop(&rc);
}

/* Configs of the shipped example files, delivering to the receiver. */
static json_t *deliver_example(const char *file, receiver *rc, unsigned n_signals) {
        char path[512];
        spw_kv cfg[32];
        size_t n;
        ydocs *d;
        testhost *t;
        void *self;
        json_t *reqs;

        snprintf(path, sizeof path, "%s/%s", getenv("WEBHOOK_EXAMPLES_DIR"), file);
        d = load_backend_config(path, false, cfg, ELEMENTSOF(cfg), &n);
        set_kv(cfg, n, "url", url_of(rc, "/example"));
        self = start_plugin(&t, cfg, n);
        insert_signals(self, 0, n_signals);
        CHECK_OK(B->flush(self));
        stop_plugin(t, self);
        ydocs_free(d);
        reqs = receiver_requests(rc);
        return reqs;
}

static void test_examples(void) {
        receiver rc;
        json_t *reqs, *body;
        size_t i = 0;

        start_receiver(&rc, "examples", NULL);

        /* Slack: exactly this body */
        reqs = deliver_example("slack.yaml", &rc, 2);
        CHECK_STREQ(request_field(reqs, i, "body"),
                    "{\"text\": \"Spillway: 2 signals\\n"
                    "• crowdsecurity/ssh-bf from 192.0.2.1 (FR), 6 events\\n"
                    "• crowdsecurity/http-probing from 2001:db8::1 (DE), 11 events (simulation)\\n\"}");
        CHECK_STREQ(request_header(reqs, i, "Content-Type"), "application/json");
        body = request_json(reqs, i);
        CHECK_CONTAINS(json_string_value(json_object_get(body, "text")), "\n• crowdsecurity/ssh-bf from 192.0.2.1");
        json_decref(body);
        json_decref(reqs);
        i++;

        /* ntfy: plain text, title and tags as headers */
        reqs = deliver_example("ntfy.yaml", &rc, 2);
        CHECK_STREQ(request_field(reqs, i, "body"),
                    "crowdsecurity/ssh-bf from 192.0.2.1 (FR): 6 events\n"
                    "crowdsecurity/http-probing from 2001:db8::1 (DE): 11 events, simulation\n");
        CHECK_STREQ(request_header(reqs, i, "Content-Type"), "text/plain; charset=utf-8");
        CHECK_STREQ(request_header(reqs, i, "Title"), "Spillway signals");
        CHECK_STREQ(request_header(reqs, i, "Priority"), "high");
        json_decref(reqs);
        i++;

        /* generic JSON: the default array, headers as configured */
        reqs = deliver_example("generic-json.yaml", &rc, 3);
        body = request_json(reqs, i);
        CHECK_EQ(json_array_size(body), 3);
        CHECK_STREQ(request_header(reqs, i, "X-Source"), "spillway");
        CHECK_STREQ(request_header(reqs, i, "Authorization"), "Bearer ${CREDENTIAL:siem-token}"); /* expanded by the daemon, not here */
        json_decref(body);
        json_decref(reqs);
        receiver_stop(&rc);
}

/* CrowdSec's http notification file, its top-level keys as the config. */
static void test_crowdsec_notification_file(void) {
        char path[512];
        spw_kv cfg[32];
        size_t n;
        ydocs *d;
        receiver rc;
        testhost *t;
        void *self;
        json_t *reqs, *body;
        const char *m, *text;

        snprintf(path, sizeof path, "%s/crowdsec-v1.4.6-http-notification.yaml", getenv("WEBHOOK_COMPAT_DIR"));
        d = load_backend_config(path, true, cfg, ELEMENTSOF(cfg), &n);

        /* as shipped: the url is a placeholder */
        m = init_error(cfg, n);
        CHECK_CONTAINS(m, "url: \"<HTTP_url>\" is not a valid URL");
        CHECK_CONTAINS(m, "expected an absolute http:// or https:// URL");
        CHECK_CONTAINS(m, "placeholder");

        /* with a real url, its `{{.|toJson}}` format sends the batch as an array */
        start_receiver(&rc, "crowdsec", NULL);
        set_kv(cfg, n, "url", url_of(&rc, "/crowdsec"));
        self = start_plugin(&t, cfg, n);
        insert_signals(self, 0, 2);
        CHECK_OK(B->flush(self));
        stop_plugin(t, self);

        reqs = receiver_requests(&rc);
        text = request_field(reqs, 0, "body");
        CHECK(text[strlen(text) - 1] == '\n');
        body = request_json(reqs, 0);
        CHECK(json_is_array(body));
        CHECK_EQ(json_array_size(body), 2);
        CHECK_STREQ(json_string_value(json_object_get(json_array_get(body, 1), "scenario")), "crowdsecurity/http-probing");
        json_decref(body);

        /* and it is byte for byte the default payload, plus the newline */
        self = start_plugin(&t, (spw_kv[]) { KV("url", url_of(&rc, "/default")) }, 1);
        insert_signals(self, 0, 2);
        CHECK_OK(B->flush(self));
        stop_plugin(t, self);
        json_decref(reqs);
        reqs = receiver_requests(&rc);
        {
                char *with_nl = NULL;
                CHECK(asprintf(&with_nl, "%s\n", request_field(reqs, 1, "body")) > 0);
                CHECK_STREQ(request_field(reqs, 0, "body"), with_nl);
                free(with_nl);
        }
        json_decref(reqs);
        receiver_stop(&rc);
        ydocs_free(d);
}

static void test_log_level(void) {
        testhost *t;
        void *self;

        self = start_plugin(&t, (spw_kv[]) { KV("url", "http://127.0.0.1:9/"), KV("log_level", "off") }, 2);
        CHECK(!strstr(testhost_log(t), "sending"));
        stop_plugin(t, self);
        self = start_plugin(&t, (spw_kv[]) { KV("url", "http://127.0.0.1:9/"), KV("log_level", "warn"), KV("type", "http"),
                                             KV("max_retry", "3"), KV("retry_backoff", "2s"), KV("flush", "true"),
                                             KV("max_records", "10000"), KV("debug", "false") }, 8);
        CHECK(!strstr(testhost_log(t), "sending"));
        stop_plugin(t, self);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path);
}

int main(int argc, char **argv) {
        const struct spw_backend *(*entry)(void);
        void *dl;

        if (argc < 2) {
                fprintf(stderr, "usage: %s PATH/webhook.so\n", argv[0]);
                return 2;
        }
        dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
                fprintf(stderr, "%s\n", dlerror());
                return 1;
        }
        entry = (const struct spw_backend *(*)(void)) dlsym(dl, SPW_BACKEND_ENTRY_SYMBOL);
        CHECK(entry);
        B = entry();
        /* the plugins' shared helpers (plugins/common) stay inside the plugin */
        CHECK(!dlsym(dl, "spwp_parse_bool"));
        CHECK(!dlsym(dl, "spwp_time_split"));
        /* and so does its static copy of src/util's libc-only part */
        CHECK(!dlsym(dl, "parse_duration"));
        CHECK(!dlsym(dl, "format_rfc3339"));
        CHECK(!dlsym(dl, "strbuf_append"));
        CHECK(!dlsym(dl, "utf8_valid"));

        /* a proxy from the caller's environment would take our loopback
         * requests elsewhere; test_proxy sets its own */
        static const char *const proxy_vars[] = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                                                  "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY" };
        for (size_t i = 0; i < ELEMENTSOF(proxy_vars); i++)
                unsetenv(proxy_vars[i]);

        snprintf(tmpdir, sizeof tmpdir, "/tmp/spw-webhook-test.XXXXXX");
        CHECK(mkdtemp(tmpdir));

#define RUN(test) do { double _t = now_seconds(); test(); fprintf(stderr, "%-36s %.2fs\n", #test, now_seconds() - _t); } while (0)
        RUN(test_descriptor);
        RUN(test_readme_table);
        RUN(test_config_errors);
        RUN(test_log_level);
        RUN(test_single_delivery);
        RUN(test_batching);
        RUN(test_methods);
        RUN(test_transient_failures);
        RUN(test_permanent_failures);
        RUN(test_redirect_followed);
        RUN(test_partial_batch_failure);
        RUN(test_credentials_stripped);
        RUN(test_timeout);
        RUN(test_receiver_down_then_up);
        RUN(test_unix_socket);
        RUN(test_proxy);
        RUN(test_tls);
        RUN(test_bounded_response);
        RUN(test_examples);
        RUN(test_crowdsec_notification_file);

        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        return skipped_part ? 77 : 0;
}
