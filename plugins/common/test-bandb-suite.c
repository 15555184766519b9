/* SPDX-License-Identifier: MIT */
/*
 * The ban-database test suite (see test-bandb-suite.h): the tests the
 * sqlite and mysql backends share, written once against the suite's hooks.
 * Each test makes its own database, opens the plugin on it through a
 * testhost whose clock starts at T0, and looks at the stored rows through
 * the test's own connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dlfcn.h>

#include "spwp-bandb.h"
#include "test-bandb-suite.h"
#include "testhost.h"
#include "tests.h"

static const bandb_suite *S;
static const struct spw_backend *plugin;

/* ------------------------------------------------------------ fixtures */

double bandb_now_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int bandb_fixture_openv(const bandb_suite *suite, fixture *f, const char *db, const spw_kv *kv, size_t n) {
        f->plugin = suite->plugin;
        f->self = NULL;
        f->host = NULL;
        return suite->open(f, db, kv, n);
}

int bandb_fixture_open(const bandb_suite *suite, fixture *f, const char *db, ...) {
        spw_kv kv[16];
        size_t n = 0;
        va_list ap;
        const char *k;

        va_start(ap, db);
        while ((k = va_arg(ap, const char *)) && n < 16) {
                kv[n].key = k;
                kv[n++].value = va_arg(ap, const char *);
        }
        va_end(ap);
        return bandb_fixture_openv(suite, f, db, kv, n);
}

void bandb_fixture_close(const bandb_suite *suite, fixture *f) {
        if (f->self)
                suite->plugin->shutdown(f->self);
        f->self = NULL;
        if (f->host && suite->closing)
                suite->closing(f);
        testhost_free(f->host);
        f->host = NULL;
}

void *bandb_suite_load(bandb_suite *suite, int argc, char **argv) {
        const struct spw_backend *(*entry)(void);
        void *h;

        if (argc < 3) {
                fprintf(stderr, "usage: %s PATH/TO/%s.so PATH/TO/README.md\n", argv[0], suite->name);
                exit(2);
        }
        h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                fprintf(stderr, "%s\n", dlerror());
                exit(1);
        }
        entry = (const struct spw_backend *(*)(void)) dlsym(h, SPW_BACKEND_ENTRY_SYMBOL);
        CHECK(entry);
        suite->plugin = entry();
        suite->plugin_path = argv[1];
        suite->readme = argv[2];
        return h;
}

void bandb_remove_tree(const char *dir) {
        char cmd[600];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK_EQ(system(cmd), 0);
}

#define fixture_open(f, db, ...) bandb_fixture_open(S, f, db, __VA_ARGS__)
#define fixture_close(f) bandb_fixture_close(S, f)

static void new_db(char *buf, size_t size) {
        S->new_db(buf, size);
}

static void db_exec(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void db_exec(const char *db, const char *fmt, ...) {
        char sql[4096];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof sql, fmt, ap);
        va_end(ap);
        S->exec(db, sql);
}

static int64_t q_int(const char *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t q_int(const char *db, const char *fmt, ...) {
        char sql[4096];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof sql, fmt, ap);
        va_end(ap);
        return S->q_int(db, sql);
}

static const char *q_text(char *buf, size_t size, const char *db, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static const char *q_text(char *buf, size_t size, const char *db, const char *fmt, ...) {
        char sql[4096];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(sql, sizeof sql, fmt, ap);
        va_end(ap);
        S->q_text(buf, size, db, sql);
        return buf;
}

static const char *fmt_time(char buf[static 64], spw_usec_t t) {
        return S->fmt_time(buf, t);
}

/* ------------------------------------------------------------ tests */

/* The plugin exports its descriptor and nothing of its insides. */
static void test_exports(void) {
        void *h = dlopen(S->plugin_path, RTLD_NOW | RTLD_LOCAL);

        CHECK(h);
        CHECK(dlsym(h, SPW_BACKEND_ENTRY_SYMBOL));
        for (const char *const *sym = S->hidden; *sym; sym++)
                CHECK(!dlsym(h, *sym));
        /* the plugins' shared helpers and the ban-database core stay inside the plugin */
        CHECK(!dlsym(h, "spwp_parse_duration"));
        CHECK(!dlsym(h, "spwp_bandb_keys_set"));
        CHECK(!dlsym(h, "spwp_time_split"));
        CHECK(!dlsym(h, "spwp_bandb_insert"));
        CHECK(!dlsym(h, "spwp_bandb_configure"));
        dlclose(h);
}

static void test_descriptor(void) {
        const spw_config_key *k;
        size_t n = 0;

        CHECK_EQ(plugin->magic, SPW_BACKEND_MAGIC);
        CHECK_EQ(plugin->abi_major, SPW_BACKEND_ABI_MAJOR);
        CHECK_EQ(plugin->size, sizeof(struct spw_backend));
        CHECK_STREQ(plugin->name, S->name);
        CHECK(plugin->init && plugin->insert && plugin->flush && plugin->start_autocommit && plugin->read_at &&
              plugin->delete_target && plugin->delete_all && plugin->shutdown);
        for (k = plugin->config_keys; k->name; k++, n++)
                CHECK(k->description && *k->description);
        CHECK_EQ(n, S->n_keys);
        for (size_t i = 0; i < n; i++) {
                bool found = false;
                for (k = plugin->config_keys; k->name; k++)
                        found = found || strcmp(k->name, S->keys[i]) == 0;
                CHECK(found);
        }
}

/* README.md's table documents every key of the descriptor's table, with
 * its type and default, and nothing else. */
static void test_readme(void) {
        const char *readme = S->readme;
        static const char *const types[] = {
                [SPW_CONFIG_STRING] = "string", [SPW_CONFIG_BOOL] = "bool", [SPW_CONFIG_INT] = "int",
                [SPW_CONFIG_DURATION] = "duration", [SPW_CONFIG_ENUM] = "enum", [SPW_CONFIG_MAP] = "map",
        };
        char text[65536], line[1024];
        size_t n, n_keys = 0;
        FILE *f;

        f = fopen(readme, "r");
        CHECK(f);
        n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
        for (const spw_config_key *k = plugin->config_keys; k->name; k++) {
                char head[160];
                const char *found, *end;

                snprintf(head, sizeof head, "\n| `%s` | %s", k->name, types[k->type]);
                found = strstr(text, head);
                if (!found)
                        fprintf(stderr, "README.md has no row \"%s\"\n", head + 1);
                CHECK(found);
                end = strchr(found + 1, '\n');
                CHECK(end);
                snprintf(line, sizeof line, "%.*s", (int) (end - found), found);
                if (k->default_value)
                        snprintf(head, sizeof head, "| `%s` |", k->default_value);
                else
                        snprintf(head, sizeof head, "| (none) |");
                CHECK_CONTAINS(line, head);
                if (k->choices) {
                        char choices[128], *save = NULL;
                        snprintf(choices, sizeof choices, "%s", k->choices);
                        for (char *c = strtok_r(choices, "|", &save); c; c = strtok_r(NULL, "|", &save)) {
                                snprintf(head, sizeof head, "`%s`", c);
                                CHECK_CONTAINS(line, head);
                        }
                }
                n_keys++;
        }
        {
                const char *t = strstr(text, "| key | type | default | description |");
                size_t table_rows = 0;

                CHECK(t);
                for (t = strchr(t, '\n') + 1; t && strncmp(t, "|", 1) == 0; t = strchr(t, '\n'), t = t ? t + 1 : NULL)
                        if (strncmp(t, "| `", 3) == 0)
                                table_rows++;
                CHECK_EQ(table_rows, n_keys);
        }
}

static void test_newer_schema_refused(void) {
        fixture f;
        char db[256];

        new_db(db, sizeof db);
        S->set_newer_version(db);
        CHECK_EQ(fixture_open(&f, db, NULL), -EPROTO);
        CHECK_CONTAINS(testhost_last_error(f.host), db);
        CHECK_CONTAINS(testhost_last_error(f.host), "schema version 99 is newer than this plugin's (3)");
        CHECK_CONTAINS(testhost_last_error(f.host), "upgrade the plugin");
        fixture_close(&f);
}

/* A table CrowdSec never had the columns of: refused, not half-used. */
static void test_foreign_tables_refused(void) {
        fixture f;
        char db[256];

        new_db(db, sizeof db);
        db_exec(db, "%s", S->foreign_table_sql);
        CHECK_EQ(fixture_open(&f, db, NULL), -EBADMSG);
        CHECK_CONTAINS(testhost_last_error(f.host), db);
        CHECK_CONTAINS(testhost_last_error(f.host), S->foreign_table_error);
        CHECK_CONTAINS(testhost_last_error(f.host), "do not have CrowdSec v0.3's layout");
        /* untouched, and no leftovers */
        CHECK_EQ(q_int(db, "%s", S->count_tables_sql), 1);
        fixture_close(&f);
}

static void test_insert_rows(void) {
        fixture f;
        char db[256], buf[512], t[64];
        sigbuf s;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.7", "crowdsecurity/ssh-bf", T0 + 3600 * SEC), 0);
        /* not visible to other connections before flush */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_OK(plugin->flush(f.self)); /* nothing pending: no-op */

        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 1);
        CHECK_STREQ(q_text(buf, sizeof buf, db,
                           "SELECT CONCAT_WS('|', scenario, bucket_id, alert_message, events_count, source_ip,"
                           " source_country, source_autonomous_system_number, capacity, leak_speed, reprocess,"
                           " map_key, source_latitude) FROM signal_occurences"),
                    "crowdsecurity/ssh-bf|sunny-flower|test alert|6|192.0.2.7|FR|64500|5|10000000000|0|key|48.85");
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT created_at FROM signal_occurences"), fmt_time(t, T0));
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT start_at FROM signal_occurences"), fmt_time(t, T0 - 20 * SEC));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences e JOIN signal_occurences s"
                           " ON e.signal_occurence_id = s.id WHERE e.serialized = '{\"log\":\"x\"}'"), 1);
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT time FROM event_sequences"), fmt_time(t, T0 - 10 * SEC));
        CHECK_STREQ(q_text(buf, sizeof buf, db,
                           "SELECT CONCAT_WS('|', measure_source, measure_type, ip_text, reason, target_cn,"
                           " target_as, target_as_name, HEX(start_ip))"
                           " FROM ban_applications b JOIN signal_occurences s ON s.id = b.signal_occurence_id"),
                    "local|ban|192.0.2.7|crowdsecurity/ssh-bf|FR|64500|Example AS|00000000000000000000FFFFC0000207");
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT until FROM ban_applications"), fmt_time(t, T0 + 3600 * SEC));

        /* a signal without bans is stored, signal and events */
        CHECK_EQ(plugin->insert(f.self, mk_signal(&s, NULL, "no-remediation", 0)), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario = 'no-remediation'"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences"), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 1);

        /* `spillwayctl ban add`: a synthetic signal, one ban, no events */
        memset(&s, 0, sizeof s);
        s.ban = (spw_ban) { .measure_source = "cscli", .measure_type = "ban", .until = T0 + 600 * SEC,
                            .start_ip = { [10] = 0xff, [11] = 0xff, 203, 0, 113, 9 },
                            .end_ip = { [10] = 0xff, [11] = 0xff, 203, 0, 113, 9 },
                            .ip_text = "203.0.113.9", .reason = "manual ban", .scenario = "manual ban" };
        s.sig = (spw_signal) { .size = sizeof(spw_signal), .ban_size = sizeof(spw_ban), .event_size = sizeof(spw_event), .id = 999, .scenario = "manual ban",
                               .bans = &s.ban, .n_bans = 1 };
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        CHECK_OK(plugin->flush(f.self));
        {
                rows rs = read_at(&f, T0);
                CHECK_EQ(rs.n, 2);
                CHECK_STREQ(rs.r[0].iptext, "203.0.113.9");
                CHECK_STREQ(rs.r[0].source, "cscli");
                CHECK_STREQ(rs.r[0].reason, "manual ban");
                CHECK_STREQ(rs.r[0].cn, "(null)");
                CHECK_EQ(rs.r[0].as_number, 0);
                CHECK_EQ(rs.r[0].events_count, 0);
                CHECK_EQ(rs.r[0].until, T0 + 600 * SEC);
        }

        /* a ban without a target is rejected, naming why */
        s.ban.ip_text = NULL;
        CHECK_EQ(plugin->insert(f.self, &s.sig), -EINVAL);
        CHECK_CONTAINS(testhost_last_error(f.host), "without ip_text");
        /* debug is off: no per-signal lines */
        CHECK(!strstr(testhost_log(f.host), "stored signal"));
        fixture_close(&f);
}

static void test_debug_log(void) {
        fixture f;
        char db[256];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "debug", "true", NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "scn", T0 + SEC), 0);
        CHECK_CONTAINS(testhost_log(f.host), "7 stored signal");
        CHECK_CONTAINS(testhost_log(f.host), "scenario scn, source 192.0.2.1, 1 ban(s), 1 event(s)");
        fixture_close(&f);
}

static void test_supersede(void) {
        fixture f;
        char db[256], buf[256], t[64];
        rows rs;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.7", "first", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.70", "other", T0 + 3600 * SEC), 0);
        advance(&f, 10 * SEC);
        CHECK_EQ(insert(&f, "192.0.2.7", "second", T0 + 7200 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));

        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE ip_text = '192.0.2.7'"), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE ip_text = '192.0.2.7' AND deleted_at IS NULL"), 1);
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT deleted_at FROM ban_applications WHERE reason = 'first'"),
                    fmt_time(t, T0 + 10 * SEC));
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT updated_at FROM ban_applications WHERE reason = 'first'"),
                    fmt_time(t, T0 + 10 * SEC));
        /* an exact match only */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'other' AND deleted_at IS NULL"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 3);

        rs = read_at(&f, testhost_time(f.host));
        CHECK_EQ(rs.n, 2);
        CHECK_STREQ(rs.r[0].iptext, "192.0.2.7");
        CHECK_STREQ(rs.r[0].reason, "second");
        CHECK_EQ(rs.r[0].bancount, 1);
        CHECK_STREQ(rs.r[1].iptext, "192.0.2.70");

        /* ip_text compares bytewise: another spelling is another target */
        CHECK_EQ(insert(&f, "2001:db8::1", "lower", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "2001:DB8::1", "upper", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason IN ('lower', 'upper')"
                           " AND deleted_at IS NULL"), 2);
        fixture_close(&f);
}

/* Issue 11: a new ban extends a target's ban, never shortens it, and an
 * automatic ban never replaces a running manual one; a manual ban replaces
 * whatever runs. The loser is stored already soft-deleted. */
/* "cscli": SPWP_BANDB_MANUAL_SOURCE, the measure_source of ban.add */
static int insert_src(fixture *f, const char *target, const char *reason, spw_usec_t until, const char *source) {
        sigbuf s;
        mk_signal(&s, target, reason, until);
        s.ban.measure_source = source;
        return f->plugin->insert(f->self, &s.sig);
}

static void test_supersede_extends_only(void) {
        fixture f;
        char db[256];
        rows rs;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.8", "long", T0 + 4 * 3600 * SEC), 0);
        advance(&f, SEC);
        CHECK_EQ(insert(&f, "192.0.2.8", "short", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'long' AND deleted_at IS NULL"), 1);
        advance(&f, SEC);
        CHECK_EQ(insert(&f, "192.0.2.8", "longer", T0 + 8 * 3600 * SEC), 0);
        /* the admin's ban, shorter: it wins (manual), and then holds */
        CHECK_EQ(insert_src(&f, "192.0.2.9", "auto", T0 + 3600 * SEC, "local"), 0);
        advance(&f, SEC);
        CHECK_EQ(insert_src(&f, "192.0.2.9", "manual", T0 + 1800 * SEC, "cscli"), 0);
        advance(&f, SEC);
        CHECK_EQ(insert_src(&f, "192.0.2.9", "auto-longer", T0 + 7200 * SEC, "local"), 0);
        CHECK_OK(plugin->flush(f.self));

        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE ip_text = '192.0.2.8' AND deleted_at IS NULL"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'longer' AND deleted_at IS NULL"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'short' AND deleted_at IS NOT NULL"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE ip_text = '192.0.2.9' AND deleted_at IS NULL"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'manual' AND deleted_at IS NULL"), 1);
        rs = read_at(&f, testhost_time(f.host));
        CHECK_EQ(rs.n, 2);
        fixture_close(&f);
}

static void test_read_at(void) {
        fixture f;
        char db[256];
        rows rs;
        sigbuf s;
        uint64_t n = 0;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        /* T0:       A until T0+1h, B until T0+3h
         * T0+10s:   A again (until T0+2h): supersedes the first A
         * T0+20s:   C until T0+30m, deleted at T0+40s */
        CHECK_EQ(insert(&f, "192.0.2.1", "a1", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "2001:db8::/64", "b", T0 + 3 * 3600 * SEC), 0);
        advance(&f, 10 * SEC);
        mk_signal(&s, "192.0.2.1", "a2", T0 + 2 * 3600 * SEC);
        s.sig.events_count = 42;
        s.ban.measure_type = "simulation:ban";
        s.ban.measure_source = "api";
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        advance(&f, 10 * SEC);
        CHECK_EQ(insert(&f, "198.51.100.4", "c", T0 + 1800 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        advance(&f, 20 * SEC);
        CHECK_OK(plugin->delete_target(f.self, "198.51.100.4", &n));
        CHECK_EQ(n, 1);
        CHECK_OK(plugin->flush(f.self));

        /* now (T0+40s): A (a2) and B; newest first */
        rs = read_at(&f, T0 + 40 * SEC);
        CHECK_EQ(rs.n, 2);
        CHECK_STREQ(rs.r[0].iptext, "192.0.2.1");
        CHECK_STREQ(rs.r[0].reason, "a2");
        CHECK_STREQ(rs.r[0].action, "simulation:ban");
        CHECK_STREQ(rs.r[0].source, "api");
        CHECK_STREQ(rs.r[0].cn, "FR");
        CHECK_STREQ(rs.r[0].as, "Example AS");
        CHECK_EQ(rs.r[0].as_number, 64500);
        CHECK_EQ(rs.r[0].events_count, 42);
        CHECK_EQ(rs.r[0].until, T0 + 2 * 3600 * SEC);
        CHECK_EQ(rs.r[0].bancount, 1);
        CHECK_STREQ(rs.r[1].iptext, "2001:db8::/64");
        CHECK_EQ(rs.r[1].events_count, 6);

        /* T0+30s: C was not deleted yet */
        rs = read_at(&f, T0 + 30 * SEC);
        CHECK_EQ(rs.n, 3);
        CHECK_STREQ(rs.r[0].iptext, "198.51.100.4");

        /* T0+5s: the first A was still active: two bans for A, one row,
         * the newest ban's fields */
        rs = read_at(&f, T0 + 5 * SEC);
        CHECK_EQ(rs.n, 3);
        CHECK_STREQ(rs.r[0].iptext, "198.51.100.4");
        CHECK_STREQ(rs.r[1].iptext, "192.0.2.1");
        CHECK_STREQ(rs.r[1].reason, "a2");
        CHECK_EQ(rs.r[1].bancount, 2);

        /* T0+1h30: C expired; A and B */
        CHECK_EQ(read_at(&f, T0 + 5400 * SEC).n, 2);
        /* exactly at until: still active (until >= at) */
        CHECK_EQ(read_at(&f, T0 + 2 * 3600 * SEC).n, 2);
        /* T0+2h30: only B */
        rs = read_at(&f, T0 + 9000 * SEC);
        CHECK_EQ(rs.n, 1);
        CHECK_STREQ(rs.r[0].iptext, "2001:db8::/64");
        /* T0+4h: none */
        CHECK_EQ(read_at(&f, T0 + 4 * 3600 * SEC).n, 0);
        fixture_close(&f);
}

static int stop_after_first(const spw_ban_row *br, void *userdata) {
        (*(int *) userdata)++;
        return 7;
}

static void test_read_at_stop(void) {
        fixture f;
        char db[256];
        int calls = 0;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        for (int i = 0; i < 50; i++) {
                char ip[32];
                snprintf(ip, sizeof ip, "192.0.2.%d", i);
                CHECK_EQ(insert(&f, ip, "a", T0 + 3600 * SEC), 0);
        }
        /* reads see the open batch (same connection) */
        CHECK_EQ(plugin->read_at(f.self, T0, stop_after_first, &calls), 7);
        CHECK_EQ(calls, 1);
        /* the rest of the rows were read off the wire: the connection works */
        CHECK_EQ(read_at(&f, T0).n, 50);
        CHECK_EQ(insert(&f, "192.0.2.200", "b", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 51);
        fixture_close(&f);
}

static void test_delete(void) {
        fixture f;
        char db[256];
        uint64_t n = 99;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.7", "a", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.70", "b", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "2001:db8::/64", "c", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "2001:db8::1", "d", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));

        /* no batch open: the delete is durable on return */
        advance(&f, SEC);
        CHECK_OK(plugin->delete_target(f.self, "192.0.2.7", &n));
        CHECK_EQ(n, 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NOT NULL"), 1);
        CHECK_OK(plugin->delete_target(f.self, "192.0.2.7", &n));
        CHECK_EQ(n, 0);
        CHECK_OK(plugin->delete_target(f.self, "2001:db8::/64", &n));
        CHECK_EQ(n, 1);
        CHECK_OK(plugin->delete_target(f.self, "10.0.0.1", &n));
        CHECK_EQ(n, 0);
        CHECK_EQ(plugin->delete_target(f.self, "", &n), -EINVAL);
        CHECK_EQ(read_at(&f, testhost_time(f.host)).n, 2);
        /* soft deletes: rows kept, and read_at before the deletion still sees them */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 4);
        CHECK_EQ(read_at(&f, T0).n, 4);

        /* inside an open batch, the delete joins it and flush commits it */
        CHECK_EQ(insert(&f, "203.0.113.1", "e", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->delete_all(f.self, &n));
        CHECK_EQ(n, 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 2);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 0);
        CHECK_EQ(read_at(&f, testhost_time(f.host)).n, 0);
        CHECK_OK(plugin->delete_all(f.self, &n));
        CHECK_EQ(n, 0);
        fixture_close(&f);
}

static void test_expiry(void) {
        fixture f;
        char db[256], buf[256], t[64];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "flush", "true", "max_records", "0", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(testhost_n_timers(f.host), 1); /* expiry only: GC disabled */
        CHECK_EQ(insert(&f, "192.0.2.1", "short", T0 + 10 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.2", "long", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));

        advance(&f, 5 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 2);

        advance(&f, 6 * SEC); /* T0 + 11s: "short" is past until */
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 1);
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT deleted_at FROM ban_applications WHERE reason = 'short'"),
                    fmt_time(t, T0 + 11 * SEC));
        CHECK_STREQ(testhost_status(f.host, "expired"), "1");

        /* with a batch open, expiry joins it */
        advance(&f, 3600 * SEC);
        CHECK_EQ(insert(&f, "192.0.2.3", "pending", T0 + 7200 * SEC), 0);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'pending' AND deleted_at IS NULL"), 1);

        /* another host holds the expiry lock: this one skips its turn */
        if (S->hold_lock) {
                advance(&f, 7200 * SEC);
                S->hold_lock(db, "expire", true);
                CHECK_EQ(testhost_run_timers(f.host), 1);
                CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 1);
                S->hold_lock(db, "expire", false);
                advance(&f, SEC);
                CHECK_EQ(testhost_run_timers(f.host), 1);
                CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 0);
        }
        fixture_close(&f);

        /* flush: false: no expiry timer */
        CHECK_OK(fixture_open(&f, db, "flush", "false", "max_records", "0", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(testhost_n_timers(f.host), 0);
        fixture_close(&f);

        /* defaults: expiry and GC */
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(testhost_n_timers(f.host), 2);
        fixture_close(&f);
}

/* n bans, then DeleteAll (which soft-deletes every active ban). */
static void fill_deleted(fixture *f, int n, const char *prefix) {
        uint64_t count;
        char ip[64];

        for (int i = 0; i < n; i++) {
                snprintf(ip, sizeof ip, "%s%d.%d", prefix, i / 250, i % 250);
                CHECK_EQ(insert(f, ip, "gc", testhost_time(f->host) + 3600 * SEC), 0);
        }
        CHECK_OK(plugin->delete_all(f->self, &count));
        CHECK(count >= (uint64_t) n);
        CHECK_OK(plugin->flush(f->self));
}

static void test_gc_by_count(void) {
        fixture f;
        char db[256];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "flush", "false", "max_records", "5", "max_records_age", "0", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(testhost_n_timers(f.host), 1);
        fill_deleted(&f, 8, "10.0.");          /* ids 1..8, soft-deleted */
        CHECK_EQ(insert(&f, "10.1.0.1", "active-old", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "10.1.0.2", "active-new", T0 + 3600 * SEC), 0);
        CHECK_EQ(plugin->insert(f.self, &(spw_signal) { .size = sizeof(spw_signal), .ban_size = sizeof(spw_ban), .event_size = sizeof(spw_event), .scenario = "bare" }),
                 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 10);

        /* the timer ticks every second; a run is due a minute after the start */
        advance(&f, 59 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 10);
        advance(&f, SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        /* the newest 5 bans are ids 6..10; soft-deleted ones older than that go */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 5);
        CHECK_EQ(q_int(db, "SELECT MIN(id) FROM ban_applications"), 6);
        /* with their signals and event sequences, and nothing else */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 6);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario = 'bare'"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences"), 5);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences e WHERE NOT EXISTS"
                           " (SELECT 1 FROM signal_occurences s WHERE s.id = e.signal_occurence_id)"), 0);
        CHECK_CONTAINS(testhost_log(f.host), "garbage collection removed 5 ended ban(s) (5 beyond max_records 5");
        CHECK_STREQ(testhost_status(f.host, "collected"), "5");

        /* active bans are never collected, however many */
        advance(&f, 60 * SEC);
        for (int i = 0; i < 6; i++) {
                char ip[32];
                snprintf(ip, sizeof ip, "10.2.0.%d", i);
                CHECK_EQ(insert(&f, ip, "active", T0 + 7200 * SEC), 0);
        }
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 8);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 8);

        /* another host collecting: this one skips its turn */
        if (S->hold_lock) {
                fill_deleted(&f, 3, "10.3.");
                S->hold_lock(db, "gc", true);
                advance(&f, 60 * SEC);
                CHECK_EQ(testhost_run_timers(f.host), 1);
                CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 11);
                CHECK_CONTAINS(testhost_log(f.host), "another host is collecting garbage; skipping this run");
                S->hold_lock(db, "gc", false);
                advance(&f, 60 * SEC);
                CHECK_EQ(testhost_run_timers(f.host), 1);
                CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 5);
        }
        fixture_close(&f);
}

static void test_gc_by_age(void) {
        fixture f;
        char db[256];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "flush", "false", "max_records", "0", "max_records_age", "1h", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        fill_deleted(&f, 3, "10.0.");                       /* deleted at T0 */
        CHECK_EQ(plugin->insert(f.self, &(spw_signal) { .size = sizeof(spw_signal), .ban_size = sizeof(spw_ban), .event_size = sizeof(spw_event), .scenario = "bare-old" }),
                 0);
        CHECK_EQ(insert(&f, "10.9.0.1", "active-old", T0 + 5 * 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        advance(&f, 1800 * SEC);
        fill_deleted(&f, 2, "10.1.");                       /* deleted at T0+30m, 10.9.0.1 too */
        CHECK_EQ(insert(&f, "10.9.0.2", "active", T0 + 5 * 3600 * SEC), 0);
        CHECK_EQ(plugin->insert(f.self, &(spw_signal) { .size = sizeof(spw_signal), .ban_size = sizeof(spw_ban), .event_size = sizeof(spw_event), .scenario = "bare-new" }),
                 0);
        CHECK_OK(plugin->flush(f.self));

        /* T0+1h10: the bans deleted at T0 are older than 1h, the others not */
        testhost_set_time(f.host, T0 + 4200 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 4);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE ip_text LIKE '10.0.%%'"), 0);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario = 'gc'"), 2);
        /* a signal that never had a ban, older than max_records_age, goes too */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario = 'bare-old'"), 0);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario = 'bare-new'"), 1);
        /* the signal of a ban that is kept is kept */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario = 'active-old'"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences e WHERE NOT EXISTS"
                           " (SELECT 1 FROM signal_occurences s WHERE s.id = e.signal_occurence_id)"), 0);
        CHECK_CONTAINS(testhost_log(f.host), "3 older than max_records_age");
        fixture_close(&f);
}

/* More than one chunk, with and without a batch open. */
static void test_gc_chunks(void) {
        fixture f;
        char db[256];

        new_db(db, sizeof db);
        /* a budget that fits the whole backlog in one run (test_gc_pacing
         * takes the small ones) */
        CHECK_OK(fixture_open(&f, db, "flush", "false", "max_records", "10", "max_records_age", "0",
                              "gc_max_pause", "40s", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        fill_deleted(&f, 2510, "10.5.");
        advance(&f, 60 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);     /* no batch: three transactions of its own */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 10);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 10);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences"), 10);

        fill_deleted(&f, 1500, "10.6.");
        CHECK_EQ(insert(&f, "12.0.0.1", "pending", T0 + 7200 * SEC), 0);
        advance(&f, 60 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);     /* joins the open batch */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 1510);
        CHECK_OK(plugin->flush(f.self));
        /* the newest 10: 9 soft-deleted and the pending one */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 10);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'pending'"), 1);
        fixture_close(&f);
}

/* Collection keeps up in turns: with a budget that fits one round, each
 * rule (count, age, ban-less signals) removes one chunk; the next run comes
 * a second later, not a minute, and finishes. */
static void test_gc_pacing(void) {
        fixture f;
        char db[256], ip[64];
        uint64_t n;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "flush", "false", "max_records", "10", "max_records_age", "1h",
                              "gc_max_pause", "1ms", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        /* A: the lowest ids, soft-deleted last; B: soft-deleted first; then
         * signals without bans */
        for (int i = 0; i < 1500; i++) {
                snprintf(ip, sizeof ip, "10.1.%d.%d", i / 250, i % 250);
                CHECK_EQ(insert(&f, ip, "A", T0 + 10 * 3600 * SEC), 0);
        }
        for (int i = 0; i < 1500; i++) {
                snprintf(ip, sizeof ip, "10.2.%d.%d", i / 250, i % 250);
                CHECK_EQ(insert(&f, ip, "B", T0 + 10 * 3600 * SEC), 0);
        }
        for (int i = 0; i < 1500; i++)
                CHECK_EQ(plugin->insert(f.self, &(spw_signal) { .size = sizeof(spw_signal), .scenario = "bare" }),
                         0);
        CHECK_OK(plugin->flush(f.self));
        for (int i = 0; i < 1500; i++) {
                snprintf(ip, sizeof ip, "10.2.%d.%d", i / 250, i % 250);
                CHECK_OK(plugin->delete_target(f.self, ip, &n));
                CHECK_EQ(n, 1);
        }
        advance(&f, 2 * 3600 * SEC);
        CHECK_OK(plugin->delete_all(f.self, &n));
        CHECK_EQ(n, 1500);
        CHECK_OK(plugin->flush(f.self));

        testhost_clear_log(f.host);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        /* one chunk of each rule: 1,000 rows, or fewer once a chunk was slow
         * (chunks halve after one over 50 ms: ASan on a loaded machine),
         * but every rule removed some */
        int64_t left_a = q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'A'");
        int64_t left_b = q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'B'");
        int64_t left_bare = q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario = 'bare'");
        CHECK(left_a >= 500 && left_a < 1500);
        CHECK(left_b >= 500 && left_b < 1500);
        CHECK(left_bare >= 500 && left_bare < 1500);
        CHECK_STREQ(testhost_status(f.host, "gc"), "behind");
        CHECK(!strstr(testhost_log(f.host), "garbage collection removed"));
        CHECK(testhost_status(f.host, "gc_longest_pause_ms"));

        /* a second later, not a minute */
        advance(&f, SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        /* on a loaded machine chunks halve (down to 125 rows) and a run
         * can stop on its budget before it is done: then the next runs, each
         * a second after the last, finish */
        for (int extra = 0; extra < 20; extra++) {
                const char *gc_state = testhost_status(f.host, "gc");
                if (gc_state && strcmp(gc_state, "caught up") == 0)
                        break;
                advance(&f, SEC);
                CHECK_EQ(testhost_run_timers(f.host), 1);
                CHECK_OK(plugin->flush(f.self));
        }
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 0);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 0);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences"), 0);
        CHECK_STREQ(testhost_status(f.host, "gc"), "caught up");
        CHECK_CONTAINS(testhost_log(f.host), "garbage collection removed");
        CHECK_STREQ(testhost_status(f.host, "collected"), "3000");

        /* caught up: the next run is a minute later */
        fill_deleted(&f, 20, "10.3.");
        advance(&f, SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 20);
        advance(&f, 59 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 10);
        fixture_close(&f);
}

/* flush: false (the main file's default) never soft-deletes a ban: one past
 * its until is history all the same, and the limits collect it (issue 19:
 * a host under a sustained scan filled its disk with them). */
static void test_gc_flush_false(void) {
        fixture f;
        char db[256], ip[64];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "flush", "false", "max_records", "5", "max_records_age", "1h", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        CHECK_EQ(testhost_n_timers(f.host), 1);        /* GC, no expiry */
        for (int i = 0; i < 10; i++) {                 /* ids 1..10: ended at T0 + 10 s */
                snprintf(ip, sizeof ip, "10.4.0.%d", i);
                CHECK_EQ(insert(&f, ip, "short", T0 + 10 * SEC), 0);
        }
        for (int i = 0; i < 3; i++) {                  /* ids 11..13: active for hours */
                snprintf(ip, sizeof ip, "10.4.1.%d", i);
                CHECK_EQ(insert(&f, ip, "long", T0 + 10 * 3600 * SEC), 0);
        }
        CHECK_OK(plugin->flush(f.self));

        /* a minute on: the newest 5 bans are kept (two ended, three
         * active); the 8 older ones ended without a soft-delete and go */
        advance(&f, 60 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NOT NULL"), 0);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 5);
        CHECK_EQ(q_int(db, "SELECT MIN(id) FROM ban_applications"), 9);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 5);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences"), 5);
        CHECK_STREQ(testhost_status(f.host, "collected"), "8");
        CHECK_CONTAINS(testhost_log(f.host), "garbage collection removed 8 ended ban(s) (8 beyond max_records 5");

        /* two hours on: the two that ended are older than
         * max_records_age and go too; the active ones stay */
        advance(&f, 2 * 3600 * SEC);
        CHECK_EQ(testhost_run_timers(f.host), 1);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'long'"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 3);
        CHECK_STREQ(testhost_status(f.host, "collected"), "10");
        CHECK_CONTAINS(testhost_log(f.host), "2 older than max_records_age, 2 of them never soft-deleted");
        /* flush keeps its meaning: nothing was soft-deleted, the ended
         * bans are simply not listed */
        CHECK_EQ(read_at(&f, testhost_time(f.host)).n, 3);
        fixture_close(&f);
}

/* Collection that falls behind wins against the inserts: 1,200 bans a
 * second arrive (each supersedes its target's previous one: 1,200
 * soft-deleted a second) against a timer run that removes one chunk of
 * 1,000 a second (gc_max_pause 1ms), after a backlog of 3,000. Without the
 * catch-up steps after each flush the soft-deleted bans grow by 200 a
 * second; with them they stay within max_records plus a second of
 * arrivals after every second. */
static void test_gc_catch_up(void) {
        const int64_t max_records = 1000, batch = 400, batches = 3;
        int64_t worst = 0;
        fixture f;
        char db[256], ip[64];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "flush", "false", "max_records", "1000", "max_records_age", "0",
                              "gc_max_pause", "1ms", "gc_interval", "1s", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        fill_deleted(&f, 3000, "10.7.");
        for (int sec = 0; sec < 12; sec++) {
                int64_t soft;

                for (int k = 0; k < batches; k++) {
                        for (int i = 0; i < batch; i++) {
                                int t = (int) ((k * batch + i) % 600);

                                snprintf(ip, sizeof ip, "10.6.%d.%d", t / 250, t % 250);
                                CHECK_EQ(insert(&f, ip, "scan", testhost_time(f.host) + 3600 * SEC), 0);
                        }
                        CHECK_OK(plugin->flush(f.self));
                }
                advance(&f, SEC);
                CHECK(testhost_run_timers(f.host) >= 1);
                CHECK_OK(plugin->flush(f.self));
                soft = q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NOT NULL");
                if (sec >= 3)
                        worst = soft > worst ? soft : worst;
        }
        fprintf(stderr, "catch-up: at most %lld soft-deleted after the first 3 s, longest step %s ms, %s\n",
                (long long) worst, testhost_status(f.host, "gc_longest_step_ms"), testhost_status(f.host, "gc"));
        CHECK(worst <= max_records + batch * batches);
        CHECK(testhost_status(f.host, "gc_longest_step_ms"));
        fixture_close(&f);
}

/* A short soak: a steady stream of signals for 30 minutes of the test's
 * clock (8 bans of 30 s a second over 2,000 targets, so targets are banned
 * again, and 2 signals without bans), expiry every second, small limits.
 * After every collection the soft-deleted bans are within max_records and
 * max_records_age, no signal without bans is older than max_records_age,
 * nothing is left orphaned; the database's size levels off. */
static void test_gc_soak(void) {
        const int64_t max_records = 300;
        const spw_usec_t age = 120 * SEC;
        const int seconds = 30 * 60;
        uint64_t size[64], n_sig = 0;
        int runs = 0;
        fixture f;
        char db[256], ip[64], t[64];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "flush", "true", "max_records", "300", "max_records_age", "2m",
                              "gc_max_pause", "10s", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        for (int sec = 0; sec < seconds; sec++) {
                spw_usec_t now = testhost_time(f.host);

                for (int i = 0; i < 10; i++, n_sig++) {
                        if (i < 8) {
                                uint64_t k = (n_sig * 7919) % 2000;
                                snprintf(ip, sizeof ip, "10.9.%d.%d", (int) (k / 250), (int) (k % 250));
                                CHECK_EQ(insert(&f, ip, "soak", now + 30 * SEC), 0);
                        } else
                                CHECK_EQ(plugin->insert(f.self, &(spw_signal) { .size = sizeof(spw_signal),
                                                                               .scenario = "soak-bare" }),
                                         0);
                }
                CHECK_OK(plugin->flush(f.self));
                advance(&f, SEC);
                testhost_clear_log(f.host);
                CHECK(testhost_run_timers(f.host) >= 1);
                CHECK_OK(plugin->flush(f.self));
                if (!strstr(testhost_log(f.host), "garbage collection removed"))
                        continue;

                /* a collection ran: every bound holds */
                now = testhost_time(f.host);
                fmt_time(t, now - age);
                CHECK(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NOT NULL") <= max_records);
                CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at < '%s'", t), 0);
                CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences AS s WHERE created_at < '%s' AND NOT EXISTS"
                                   " (SELECT 1 FROM ban_applications AS b WHERE b.signal_occurence_id = s.id)", t), 0);
                CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences e WHERE NOT EXISTS"
                                   " (SELECT 1 FROM signal_occurences s WHERE s.id = e.signal_occurence_id)"), 0);
                CHECK(runs < 64);
                size[runs] = S->db_bytes ? S->db_bytes(db) : 0;
                runs++;
        }
        /* a run a minute */
        CHECK(runs >= seconds / 60 - 1);
        /* ban-less signals were collected: at most those of the last
         * max_records_age and a minute remain */
        CHECK(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario = 'soak-bare'") <= 2 * (120 + 61));
        CHECK(strtoull(testhost_status(f.host, "collected"), NULL, 10) > 5000);
        if (S->db_bytes) {
                uint64_t mid = 0, late = 0;

                /* every retention window is full once the ban-change log's
                 * (SPWP_BANDB_CHANGES_KEEP, longer than max_records_age) is:
                 * from then on, the later runs take no more room than the
                 * earlier ones */
                int settle = (int) (SPWP_BANDB_CHANGES_KEEP / (60 * SEC)) + 2, half = settle + (runs - settle) / 2;
                CHECK(runs > settle + 4);
                for (int i = settle; i < half; i++)
                        mid = size[i] > mid ? size[i] : mid;
                for (int i = half; i < runs; i++)
                        late = size[i] > late ? size[i] : late;
                fprintf(stderr, "soak: %d collections, %" PRIu64 " signals, size %" PRIu64 " KiB at run 3, "
                        "max %" PRIu64 " KiB in runs %d-%d, max %" PRIu64 " KiB after\n",
                        runs, n_sig, size[3] >> 10, mid >> 10, settle, half - 1, late >> 10);
                CHECK(late <= mid + mid / 10);
        }
        fixture_close(&f);
}

/* Pacing by the arrival rate: 250 bans a second over 1,000 targets (each
 * ban supersedes the target's last one; 750 rows a second with signals and
 * events), gc_interval 20s. The first run comes once ~4,000 rows were
 * stored (at 5-6 s), not gc_interval after the start (before it, nothing
 * measures a rate); from then on runs come every ~5 s, so soft-deleted
 * bans never pile up 20 s worth (5,000) beyond max_records. */
static void test_gc_paced_by_rate(void) {
        const int64_t max_records = 300, per_sec = 250;
        int runs = 0, first = -1;
        int64_t worst = 0;
        fixture f;
        char db[256], ip[64], was[32] = "";

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, "flush", "false", "max_records", "300", "max_records_age", "0",
                              "gc_max_pause", "1m", "gc_interval", "20s", NULL));
        CHECK_OK(plugin->start_autocommit(f.self));
        for (int sec = 0; sec < 50; sec++) {
                const char *c;
                int64_t soft;

                for (int i = 0; i < per_sec; i++) {
                        int k = (sec * (int) per_sec + i) % 1000;

                        snprintf(ip, sizeof ip, "10.8.%d.%d", k / 250, k % 250);
                        CHECK_EQ(insert(&f, ip, "rate", testhost_time(f.host) + 3600 * SEC), 0);
                }
                CHECK_OK(plugin->flush(f.self));
                advance(&f, SEC);
                testhost_clear_log(f.host);
                CHECK(testhost_run_timers(f.host) >= 1);
                CHECK_OK(plugin->flush(f.self));
                c = testhost_status(f.host, "collected");
                /* a run that finished its work (a slow machine may need
                 * more than one for the first minute's backlog) */
                if (!c || strcmp(c, was) == 0 || !strstr(testhost_log(f.host), "garbage collection removed"))
                        continue;
                snprintf(was, sizeof was, "%s", c);
                if (first < 0)
                        first = sec;
                /* after every run: within max_records */
                soft = q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NOT NULL");
                if (soft > max_records)
                        fprintf(stderr, "run at %d s: %lld soft-deleted; log:\n%s\n", sec, (long long) soft,
                                testhost_log(f.host));
                CHECK(soft <= max_records);
                runs++;
                worst = soft > worst ? soft : worst;
        }
        if (runs < 4)
                fprintf(stderr, "paced: first run at %d s, %d runs; log:\n%s\n", first, runs,
                        testhost_log(f.host));
        /* the first run once ~4,000 rows were stored (250 signals of 3
         * rows a second: at 6 s), not gc_interval (20 s) after the start;
         * then every ~5 s */
        CHECK(first >= 4 && first <= 8);
        /* every ~6 s from then on (the timer ticks each second): 5 or 6
         * runs in 50 s; without the pacing 2 (at 19 and 39 s) */
        CHECK(runs >= 4);
        CHECK(testhost_status(f.host, "gc_interval_ms"));
        CHECK(strtoll(testhost_status(f.host, "gc_interval_ms"), NULL, 10) <= 7000);
        /* between runs at most a few seconds of arrivals */
        CHECK(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NOT NULL") <=
              max_records + 7 * per_sec);
        fprintf(stderr, "paced: first run at %d s, %d runs in 50 s, gc_interval_ms %s\n", first,
                runs, testhost_status(f.host, "gc_interval_ms"));
        fixture_close(&f);
}

static void test_ipv6(void) {
        fixture f;
        char db[256], buf[256];
        rows rs;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "2001:db8::/64", "v6 range", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "2001:db8:1::7", "v6 host", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.0/24", "v4 range", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "2001:db8::/64", "v6 range again", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));

        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT CONCAT(HEX(start_ip), '-', HEX(end_ip)) FROM ban_applications"
                                                " WHERE reason = 'v6 range'"),
                    "20010DB8000000000000000000000000-20010DB800000000FFFFFFFFFFFFFFFF");
        /* addresses compare bytewise: which bans contain an address */
        CHECK_STREQ(q_text(buf, sizeof buf, db,
                           "SELECT GROUP_CONCAT(reason) FROM ban_applications WHERE deleted_at IS NULL AND"
                           " X'20010db8000000000000abcdef000001' BETWEEN start_ip AND end_ip"),
                    "v6 range again");
        CHECK_STREQ(q_text(buf, sizeof buf, db,
                           "SELECT GROUP_CONCAT(reason) FROM ban_applications WHERE"
                           " X'00000000000000000000ffffc00002fe' BETWEEN start_ip AND end_ip"),
                    "v4 range");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE"
                           " X'20010db8000100000000000000000007' BETWEEN start_ip AND end_ip"), 1);
        /* the top of the address space: bytes above 0x7f compare unsigned */
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE"
                           " X'ff000000000000000000000000000000' BETWEEN start_ip AND end_ip"), 0);
        rs = read_at(&f, T0);
        CHECK_EQ(rs.n, 3);
        CHECK_STREQ(rs.r[0].iptext, "2001:db8::/64");
        CHECK_STREQ(rs.r[0].reason, "v6 range again");
        fixture_close(&f);
}

/* Triggers (created by the test's connection, fired in the plugin's) make an insert
 * fail after some of its rows are written: at the ban insert (after the
 * signal and its events), and at the soft-delete of the older ban (its last
 * step, after every insert). */
/* Rows written at flush (multi-row batches): a refusal only the server
 * can make (a trigger) fails the flush, and with it the whole batch, as the
 * ABI's flush contract says; the next batch is stored. */
static void insert_failure_at_flush(void) {
        fixture f;
        char db[256], expect[256];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        S->add_trigger(db, "fail_ban", false, "boom", "refused by test trigger");
        S->add_trigger(db, "fail_supersede", true, "protected", "soft-delete refused by test trigger");
        CHECK_EQ(insert(&f, "192.0.2.7", "kept", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.20", "protected", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));

        CHECK_EQ(insert(&f, "192.0.2.8", "lost with its batch", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.7", "boom", T0 + 3600 * SEC), 0);
        CHECK_EQ(plugin->flush(f.self), -EINVAL);
        CHECK_CONTAINS(testhost_last_error(f.host), db);
        snprintf(expect, sizeof expect, "refused by test trigger%s while inserting into ban_applications",
                 S->trigger_code);
        CHECK_CONTAINS(testhost_last_error(f.host), expect);
        CHECK_CONTAINS(testhost_last_error(f.host), "cannot write the batch of 2 signal(s)");
        CHECK_CONTAINS(testhost_last_error(f.host), "the batch is dropped");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 2);

        CHECK_EQ(insert(&f, "192.0.2.20", "replacement", T0 + 3600 * SEC), 0);
        CHECK_EQ(plugin->flush(f.self), -EINVAL);
        snprintf(expect, sizeof expect, "soft-delete refused by test trigger%s while soft-deleting the targets' "
                 "older active bans", S->trigger_code);
        CHECK_CONTAINS(testhost_last_error(f.host), expect);

        CHECK_EQ(insert(&f, "192.0.2.8", "after", T0 + 3600 * SEC), 0);
        CHECK_EQ(read_at(&f, T0).n, 3);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario IN ('boom', 'replacement',"
                           " 'lost with its batch')"), 0);
        fixture_close(&f);
}

static void test_insert_failure_keeps_batch(void) {
        fixture f;
        char db[256], expect[256];
        sigbuf s;

        if (S->rows_at_flush) {
                insert_failure_at_flush();
                return;
        }
        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        S->add_trigger(db, "fail_ban", false, "boom", "refused by test trigger");
        S->add_trigger(db, "fail_supersede", true, "protected", "soft-delete refused by test trigger");

        CHECK_EQ(insert(&f, "192.0.2.7", "kept", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.20", "protected", T0 + 3600 * SEC), 0);

        CHECK_EQ(insert(&f, "192.0.2.7", "boom", T0 + 3600 * SEC), -EINVAL);
        CHECK_CONTAINS(testhost_last_error(f.host), db);
        snprintf(expect, sizeof expect, "refused by test trigger%s while inserting into ban_applications",
                 S->trigger_code);
        CHECK_CONTAINS(testhost_last_error(f.host), expect);
        CHECK_CONTAINS(testhost_last_error(f.host), "signal rejected");

        CHECK_EQ(insert(&f, "192.0.2.20", "replacement", T0 + 3600 * SEC), -EINVAL);
        snprintf(expect, sizeof expect, "soft-delete refused by test trigger%s while soft-deleting the targets' "
                 "older active bans", S->trigger_code);
        CHECK_CONTAINS(testhost_last_error(f.host), expect);

        CHECK_EQ(insert(&f, "192.0.2.8", "after", T0 + 3600 * SEC), 0);
        /* the batch, seen from inside, holds exactly the good inserts */
        CHECK_EQ(read_at(&f, T0).n, 3);
        CHECK_OK(plugin->flush(f.self));

        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason IN ('kept', 'protected')"
                           " AND deleted_at IS NULL"), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences WHERE scenario IN ('boom', 'replacement')"), 0);

        /* the same with a signal that fails first in a batch */
        mk_signal(&s, "192.0.2.9", "boom", T0 + 3600 * SEC);
        CHECK_EQ(plugin->insert(f.self, &s.sig), -EINVAL);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 3);
        fixture_close(&f);
}

/* A signal with several bans supersedes each target's older ban; if the
 * second soft-delete fails, the first is undone with the rest. */
static void test_multi_ban_signal(void) {
        fixture f;
        char db[256], expect[256];
        spw_ban bans[2];
        sigbuf s;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.7", "old ip", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.0/24", "old range", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "198.51.100.1", "other", T0 + 3600 * SEC), 0);
        advance(&f, SEC);
        mk_signal(&s, "192.0.2.7", "new ip", T0 + 7200 * SEC);
        bans[0] = s.ban;
        mk_signal(&s, "192.0.2.0/24", "new range", T0 + 7200 * SEC);
        bans[1] = s.ban;
        s.sig.bans = bans;
        s.sig.n_bans = 2;
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE deleted_at IS NULL"), 3);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason LIKE 'new %%' AND deleted_at IS NULL"), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason LIKE 'old %%' AND deleted_at IS NOT NULL"), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(DISTINCT signal_occurence_id) FROM ban_applications WHERE reason LIKE 'new %%'"), 1);

        S->add_trigger(db, "fail_supersede", true, "new range", "refused by test trigger");
        advance(&f, SEC);
        CHECK_EQ(insert(&f, "203.0.113.5", "in the batch", T0 + 7200 * SEC), 0);
        mk_signal(&s, "192.0.2.7", "newer ip", T0 + 7200 * SEC);
        bans[0] = s.ban;
        mk_signal(&s, "192.0.2.0/24", "newer range", T0 + 7200 * SEC);
        bans[1] = s.ban;
        s.sig.bans = bans;
        s.sig.n_bans = 2;
        snprintf(expect, sizeof expect, "refused by test trigger%s while soft-deleting", S->trigger_code);
        if (S->rows_at_flush) {
                /* the batch is the unit: the first soft-delete goes with the rest */
                CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
                CHECK_EQ(plugin->flush(f.self), -EINVAL);
                CHECK_CONTAINS(testhost_last_error(f.host), expect);
                CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'in the batch'"), 0);
                CHECK_EQ(insert(&f, "203.0.113.5", "in the batch", T0 + 7200 * SEC), 0);
        } else {
                CHECK_EQ(plugin->insert(f.self, &s.sig), -EINVAL);
                CHECK_CONTAINS(testhost_last_error(f.host), expect);
        }
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason LIKE 'new %%' AND deleted_at IS NULL"), 2);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason LIKE 'newer %%'"), 0);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE reason = 'in the batch'"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 5);
        fixture_close(&f);
}

/* read_changes (ABI 2.1): what a reader of the ban-change cursor sees. */
typedef struct changes {
        int n, resync;
        char log[2048];
        uint64_t last_seq;
        spw_usec_t until;
} changes;

static int change_cb(const spw_ban_change *c, void *userdata) {
        changes *x = userdata;
        size_t l = strlen(x->log);

        CHECK(c->size >= sizeof *c);
        CHECK(c->row && c->row->iptext);
        CHECK(c->kind == SPW_CHANGE_ADD || c->kind == SPW_CHANGE_DELETE);
        CHECK(c->at > 0);
        snprintf(x->log + l, sizeof x->log - l, "%s%s:%s", l ? " " : "", c->kind == SPW_CHANGE_ADD ? "A" : "D",
                 c->row->iptext);
        x->n++;
        x->resync += (c->flags & SPW_CHANGE_RESYNC) != 0;
        x->last_seq = c->seq;
        x->until = c->row->until;
        return 0;
}

static changes read_changes(fixture *f, uint64_t cursor, uint64_t *next) {
        changes x = { 0 };
        CHECK_OK(plugin->read_changes(f->self, cursor, change_cb, &x, next));
        return x;
}

static void test_read_changes(void) {
        fixture f;
        char db[256];
        uint64_t cur = 0, cur2 = 0, old, n;
        changes c;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK(plugin->read_changes != NULL);

        /* an empty store: nothing, cursor stays 0 */
        c = read_changes(&f, 0, &cur);
        CHECK_EQ(c.n, 0);
        CHECK_EQ(cur, 0);

        CHECK_EQ(insert(&f, "192.0.2.1", "a", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.2", "b", T0 + 3600 * SEC), 0);
        /* a batch is open: its rows could still be rolled back */
        CHECK_EQ(plugin->read_changes(f.self, 0, change_cb, &c, &cur), -EBUSY);
        CHECK_OK(plugin->flush(f.self));

        /* cursor 0: every active ban as an ADD, flagged RESYNC */
        c = read_changes(&f, 0, &cur);
        CHECK_EQ(c.n, 2);
        CHECK_EQ(c.resync, 2);
        CHECK_CONTAINS(c.log, "A:192.0.2.1");
        CHECK_CONTAINS(c.log, "A:192.0.2.2");
        CHECK(cur > 0);
        /* nothing new since */
        c = read_changes(&f, cur, &cur2);
        CHECK_EQ(c.n, 0);
        CHECK_EQ(cur2, cur);

        /* an add */
        advance(&f, SEC);
        CHECK_EQ(insert(&f, "192.0.2.3", "c", T0 + 7200 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        c = read_changes(&f, cur, &cur2);
        CHECK_STREQ(c.log, "A:192.0.2.3");
        CHECK_EQ(c.resync, 0);
        CHECK_EQ(c.until, T0 + 7200 * SEC);
        CHECK(cur2 > cur);
        CHECK_EQ(cur2, c.last_seq);
        cur = cur2;

        /* a superseding ban is its ADD alone (the reader replaces by target) */
        CHECK_EQ(insert(&f, "192.0.2.1", "again", T0 + 9000 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        c = read_changes(&f, cur, &cur);
        CHECK_STREQ(c.log, "A:192.0.2.1");
        CHECK_EQ(c.until, T0 + 9000 * SEC);

        /* an admin delete: a DELETE per active ban of the target, durable with it */
        CHECK_OK(plugin->delete_target(f.self, "192.0.2.2", &n));
        CHECK_EQ(n, 1);
        c = read_changes(&f, cur, &cur);
        CHECK_STREQ(c.log, "D:192.0.2.2");
        CHECK_OK(plugin->delete_target(f.self, "192.0.2.2", &n)); /* nothing left: no change */
        c = read_changes(&f, cur, &cur);
        CHECK_EQ(c.n, 0);

        /* expiry writes nothing; a resync no longer lists the expired ban */
        CHECK_EQ(insert(&f, "198.51.100.9", "short", testhost_time(f.host) + 10 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        c = read_changes(&f, cur, &cur);
        CHECK_STREQ(c.log, "A:198.51.100.9");
        advance(&f, 20 * SEC);
        c = read_changes(&f, cur, &cur2);
        CHECK_EQ(c.n, 0);
        c = read_changes(&f, 0, &cur2);
        CHECK_EQ(c.n, 2); /* 192.0.2.1 and 192.0.2.3 */
        CHECK(strstr(c.log, "198.51.100.9") == NULL);
        CHECK_EQ(cur2, cur);

        /* delete_all: a DELETE for each active ban */
        CHECK_OK(plugin->delete_all(f.self, &n));
        CHECK_EQ(n, 3); /* 198.51.100.9 expired but was not yet soft-deleted (no expiry timer here) */
        c = read_changes(&f, cur, &cur);
        CHECK_EQ(c.n, 3);
        CHECK_CONTAINS(c.log, "D:192.0.2.1");
        CHECK_CONTAINS(c.log, "D:192.0.2.3");

        /* a restart keeps the sequence: the cursor goes on from where it was */
        fixture_close(&f);
        CHECK_OK(fixture_open(&f, db, NULL));
        c = read_changes(&f, cur, &cur2);
        CHECK_EQ(c.n, 0);
        CHECK_EQ(cur2, cur);
        CHECK_EQ(insert(&f, "203.0.113.4", "after restart", T0 + 7200 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        old = cur;
        c = read_changes(&f, cur, &cur);
        CHECK_STREQ(c.log, "A:203.0.113.4");
        CHECK(c.last_seq > old);

        /* the log is collected by the first flush after a minute: changes
         * older than the keep time go (never the newest); a reader whose
         * cursor fell behind gets a resync */
        CHECK(q_int(db, "SELECT COUNT(*) FROM ban_changes") > 5);
        advance(&f, 16 * 60 * SEC); /* SPWP_BANDB_CHANGES_KEEP (15 min) and more */
        CHECK_EQ(insert(&f, "203.0.113.5", "late", T0 + 9000 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_changes"), 1); /* the new ADD only */
        c = read_changes(&f, cur, &cur);
        CHECK_STREQ(c.log, "A:203.0.113.5");
        c = read_changes(&f, 1, &cur2);
        CHECK_EQ(c.resync, c.n);
        CHECK_EQ(cur2, cur);
        c = read_changes(&f, cur, &cur2); /* up to date: nothing */
        CHECK_EQ(c.n, 0);
        fixture_close(&f);
}

/* The spool redelivers the batch in flight at a crash: a signal id stored
 * before is a no-op success, counted, whether in an earlier batch, the
 * same batch, or by an earlier instance. Id 0 (none) is never deduplicated. */
static void test_duplicate_signal_ids(void) {
        fixture f;
        char db[256];
        sigbuf s;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        mk_signal(&s, "192.0.2.7", "dup", T0 + 3600 * SEC);
        s.sig.id = UINT64_C(1700000000123456);
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0); /* same batch */
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0); /* a later batch */
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM event_sequences"), 1);
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_changes"), 1);
        CHECK_EQ(q_int(db, "SELECT spillway_signal_id FROM signal_occurences"), 1700000000123456);
        CHECK_STREQ(testhost_status(f.host, "duplicates_skipped"), "2");
        fixture_close(&f);

        /* another instance (a restart replaying its spool): still once */
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 1);
        /* other ids are stored; no id at all is never a duplicate */
        s.sig.id++;
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        s.sig.id = 0;
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        CHECK_OK(plugin->flush(f.self));
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 4);
        CHECK_STREQ(testhost_status(f.host, "duplicates_skipped"), "1");
        fixture_close(&f);
}

/* A decision scope other than Ip and Range: stored with its scope and
 * value under the key "Scope:value", listed, superseded and deleted by
 * that key, and counted in status. */
static void test_other_scope(void) {
        fixture f;
        char db[256], buf[512];
        uint64_t n = 0;
        sigbuf s;

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.7", "ip", T0 + 3600 * SEC), 0);
        for (int i = 0; i < 2; i++) {
                mk_signal(&s, NULL, "geo", 0);
                s.ban = (spw_ban) { .measure_source = "local", .measure_type = "ban",
                                    .until = T0 + (i + 1) * 3600 * SEC, .scope = SPW_SCOPE_OTHER,
                                    .ip_text = "Country:FR", .reason = "geo", .scenario = "geo",
                                    .scope_name = "Country", .value = "FR" };
                s.sig.bans = &s.ban;
                s.sig.n_bans = 1;
                CHECK_EQ(plugin->insert(f.self, &s.sig), 0);
        }
        CHECK_OK(plugin->flush(f.self));
        CHECK_STREQ(q_text(buf, sizeof buf, db, "SELECT CONCAT_WS('|', scope, value, ip_text, HEX(start_ip))"
                           " FROM ban_applications WHERE deleted_at IS NULL AND scope = 'Country'"),
                    "Country|FR|Country:FR|00000000000000000000000000000000");
        {
                rows rs = read_at(&f, T0);
                CHECK_EQ(rs.n, 2);
                CHECK_STREQ(rs.r[0].scope, "Country");
                CHECK_STREQ(rs.r[0].value, "FR");
                CHECK_STREQ(rs.r[0].iptext, "Country:FR");
                CHECK_EQ(rs.r[0].until, T0 + 2 * 3600 * SEC); /* the longer one kept */
                CHECK_STREQ(rs.r[1].scope, "Ip");
                CHECK_STREQ(rs.r[1].value, "192.0.2.7");
        }
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM ban_applications WHERE ip_text = 'Country:FR' AND deleted_at IS NULL"), 1);
        CHECK_STREQ(testhost_status(f.host, "other_scope_bans"), "2");
        CHECK_CONTAINS(testhost_status(f.host, "other_scopes"), "not enforced by address-based backends");
        /* a row stored before schema 3 (no scope, no value) reads as Ip or Range */
        db_exec(db, "UPDATE ban_applications SET scope = NULL, value = NULL WHERE ip_text = '192.0.2.7'");
        {
                rows rs = read_at(&f, T0);
                CHECK_STREQ(rs.r[1].scope, "Ip");
                CHECK_STREQ(rs.r[1].value, "192.0.2.7");
        }
        /* deleted by its key, the address ban untouched */
        CHECK_OK(plugin->delete_target(f.self, "Country:FR", &n));
        CHECK_EQ(n, 1);
        CHECK_EQ(read_at(&f, testhost_time(f.host)).n, 1);
        fixture_close(&f);
}

static void test_shutdown_rolls_back(void) {
        fixture f;
        char db[256];

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK_EQ(insert(&f, "192.0.2.1", "unflushed", T0 + 3600 * SEC), 0);
        CHECK_EQ(insert(&f, "192.0.2.2", "unflushed", T0 + 3600 * SEC), 0);
        plugin->shutdown(f.self);
        f.self = NULL;
        CHECK_CONTAINS(testhost_log(f.host), "shutting down with 2 signal(s) not flushed; rolled back");
        CHECK_EQ(q_int(db, "SELECT COUNT(*) FROM signal_occurences"), 0);
        fixture_close(&f);
}

/* ------------------------------------------------------------ run */

void bandb_suite_run_static(const bandb_suite *suite) {
        S = suite;
        plugin = suite->plugin;
        test_exports();
        test_descriptor();
        test_readme();
}

/* read_history (ABI 2.2): every ban kept, superseded and deleted ones
 * too, with when it was made, filtered by `since`. A driver without it
 * answers -EOPNOTSUPP. */
static int history_cb(const spw_ban_change *c, void *userdata) {
        changes *x = userdata;
        size_t l = strlen(x->log);

        CHECK(c->kind == SPW_CHANGE_ADD);
        CHECK(c->row && c->row->iptext);
        snprintf(x->log + l, sizeof x->log - l, "%s%s@%lld", l ? " " : "", c->row->iptext,
                 (long long) ((c->at - T0) / SEC));
        x->n++;
        return 0;
}

static void test_read_history(void) {
        fixture f;
        char db[256];
        uint64_t n;
        changes c = { 0 };

        new_db(db, sizeof db);
        CHECK_OK(fixture_open(&f, db, NULL));
        CHECK(plugin->read_history != NULL);
        int r = plugin->read_history(f.self, 0, history_cb, &c);
        if (r == -EOPNOTSUPP) {
                fixture_close(&f);
                return;
        }
        CHECK_OK(r);
        CHECK_EQ(c.n, 0);
        CHECK_EQ(insert(&f, "192.0.2.1", "a", T0 + 3600 * SEC), 0);
        CHECK_OK(plugin->flush(f.self));
        advance(&f, 10 * SEC);
        CHECK_EQ(insert(&f, "192.0.2.1", "a", T0 + 7200 * SEC), 0); /* supersedes the first */
        CHECK_EQ(insert(&f, "192.0.2.2", "b", T0 + 7200 * SEC), 0);
        CHECK_EQ(plugin->read_history(f.self, 0, history_cb, &c), -EBUSY); /* a batch is open */
        CHECK_OK(plugin->flush(f.self));
        advance(&f, 10 * SEC);
        CHECK_OK(plugin->delete_target(f.self, "192.0.2.2", &n));
        memset(&c, 0, sizeof c);
        CHECK_OK(plugin->read_history(f.self, 0, history_cb, &c));
        CHECK_STREQ(c.log, "192.0.2.1@0 192.0.2.1@10 192.0.2.2@10");
        memset(&c, 0, sizeof c);
        CHECK_OK(plugin->read_history(f.self, T0 + 5 * SEC, history_cb, &c));
        CHECK_STREQ(c.log, "192.0.2.1@10 192.0.2.2@10");
        fixture_close(&f);
}

void bandb_suite_run(const bandb_suite *suite) {
        S = suite;
        plugin = suite->plugin;
        BANDB_RUN(test_newer_schema_refused);
        BANDB_RUN(test_foreign_tables_refused);
        BANDB_RUN(test_insert_rows);
        BANDB_RUN(test_debug_log);
        BANDB_RUN(test_supersede);
        BANDB_RUN(test_supersede_extends_only);
        BANDB_RUN(test_read_at);
        BANDB_RUN(test_read_at_stop);
        BANDB_RUN(test_delete);
        BANDB_RUN(test_expiry);
        BANDB_RUN(test_gc_by_count);
        BANDB_RUN(test_gc_by_age);
        BANDB_RUN(test_gc_chunks);
        BANDB_RUN(test_gc_pacing);
        BANDB_RUN(test_gc_soak);
        /* the pacing is the core's, the same for every driver: run where
         * 12,500 inserts take seconds, not the minute they take MariaDB on
         * a loaded machine (the mysql suite is near its timeout already) */
        BANDB_RUN(test_gc_flush_false);
        if (S->db_bytes) {
                BANDB_RUN(test_gc_paced_by_rate);
                BANDB_RUN(test_gc_catch_up);
        }
        BANDB_RUN(test_ipv6);
        BANDB_RUN(test_insert_failure_keeps_batch);
        BANDB_RUN(test_multi_ban_signal);
        BANDB_RUN(test_read_changes);
        BANDB_RUN(test_duplicate_signal_ids);
        BANDB_RUN(test_other_scope);
        BANDB_RUN(test_read_history);
        BANDB_RUN(test_shutdown_rolls_back);
}
