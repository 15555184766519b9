/* SPDX-License-Identifier: MIT */
/*
 * The nftables plugin through dlopen(), as the daemon loads it: every
 * config key's validation (refused before anything reaches the kernel), the
 * README's table of keys, and init with a valid config: as root in a
 * network namespace of its own (the table is created there, never in the
 * machine's), otherwise the refusal that names the drop-in.
 *
 * Usage: test-nftables PATH/TO/nftables.so PATH/TO/README.md
 */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <spillway/backend.h>

#include "testhost.h"
#include "tests.h"

static const struct spw_backend *plugin;
static char state_dir[] = "/tmp/test-nftables-XXXXXX";

/* init with one key set; returns init's result, *err the error text. */
static int init_with(const char *key, const char *value, char *err, size_t size) {
        spw_kv kv[2] = { { key, value }, { "check_interval", "0" } };
        testhost *h = testhost_new("nft", kv, key && strcmp(key, "check_interval") ? 2 : 1);
        testhost_set_state_directory(h, state_dir);
        void *self = NULL;
        int r = testhost_init(h, plugin, &self);

        snprintf(err, size, "%s", testhost_last_error(h));
        if (r == 0)
                plugin->shutdown(self);
        testhost_free(h);
        return r;
}

static void refused(const char *key, const char *value, const char *message) {
        char err[512];
        CHECK_EQ(init_with(key, value, err, sizeof err), -EINVAL);
        CHECK_CONTAINS(err, message);
}

static void test_config_refused(void) {
        refused("table", "ip spillway", "table: expected `inet NAME`");
        refused("table", "inet", "table: expected `inet NAME`");
        refused("table", "inet two words", "table: expected `inet NAME`");
        refused("table", "inet 9lives", "not a table name nft accepts");
        refused("table", "inet a;flush ruleset", "table: expected `inet NAME`");
        refused("table", "inet a;flush", "not a table name nft accepts");
        refused("hooks", "output", "hooks: expected input, forward or both, got 'output'");
        refused("hooks", ",", "hooks: empty");
        refused("priority", "filter", "priority: expected an integer");
        refused("priority", "-1001", "priority: expected an integer");
        refused("verdict", "accept", "verdict: expected drop or reject");
        refused("keep_on_stop", "maybe", "keep_on_stop: expected true or false");
        refused("check_interval", "10ms", "check_interval: expected a duration of at least 100ms");
        refused("check_interval", "soon", "check_interval");
        refused("never_ban", "127.0.0.0/8, 10.0.0.1/8", "never_ban: '10.0.0.1/8' is not an IP address or CIDR");
}

static void test_valid_config(void) {
        char err[512];
        int r;

        if (geteuid() != 0) {
                r = init_with("hooks", "input,forward", err, sizeof err);
                CHECK_EQ(r, -EPERM);
                CHECK_CONTAINS(err, "CAP_NET_ADMIN");
                CHECK_CONTAINS(err, "drop-in");
                return;
        }
        CHECK_OK(init_with("hooks", "input,forward", err, sizeof err));
        CHECK_OK(init_with("priority", "5", err, sizeof err));
        CHECK_OK(init_with("never_ban", "", err, sizeof err));
        CHECK_OK(init_with("table", "inet other_table", err, sizeof err));
}

/* README.md's table documents every key of the descriptor, with its type
 * and default. */
static void test_readme(const char *readme) {
        static const char *const types[] = {
                [SPW_CONFIG_STRING] = "string", [SPW_CONFIG_BOOL] = "bool", [SPW_CONFIG_INT] = "int",
                [SPW_CONFIG_DURATION] = "duration", [SPW_CONFIG_ENUM] = "enum", [SPW_CONFIG_MAP] = "map",
        };
        static char text[65536];
        size_t n, keys = 0, rows = 0;
        FILE *f = fopen(readme, "r");
        const char *t;

        CHECK(f);
        n = fread(text, 1, sizeof text - 1, f);
        text[n] = 0;
        fclose(f);
        for (const spw_config_key *k = plugin->config_keys; k->name; k++, keys++) {
                char head[160], line[1024];
                const char *found, *end;
                snprintf(head, sizeof head, "\n| `%s` | %s | `%s` |", k->name, types[k->type], k->default_value);
                found = strstr(text, head);
                if (!found)
                        fprintf(stderr, "README.md has no row \"%s\"\n", head + 1);
                CHECK(found);
                end = strchr(found + 1, '\n');
                snprintf(line, sizeof line, "%.*s", (int) (end - found), found);
                if (k->choices) {
                        char choices[128], *save = NULL;
                        snprintf(choices, sizeof choices, "%s", k->choices);
                        for (char *c = strtok_r(choices, "|", &save); c; c = strtok_r(NULL, "|", &save)) {
                                snprintf(head, sizeof head, "`%s`", c);
                                CHECK_CONTAINS(line, head);
                        }
                }
        }
        t = strstr(text, "| key | type | default | description |");
        CHECK(t);
        for (t = strchr(t, '\n') + 1; t && *t == '|'; t = strchr(t, '\n'), t = t ? t + 1 : NULL)
                rows += strncmp(t, "| `", 3) == 0;
        CHECK_EQ(rows, keys);
}

int main(int argc, char **argv) {
        const struct spw_backend *(*entry)(void);
        void *h;

        if (argc != 3) {
                fprintf(stderr, "usage: %s PATH/TO/nftables.so PATH/TO/README.md\n", argv[0]);
                return 2;
        }
        h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                fprintf(stderr, "%s\n", dlerror());
                return 1;
        }
        entry = (const struct spw_backend *(*)(void)) dlsym(h, SPW_BACKEND_ENTRY_SYMBOL);
        CHECK(entry);
        plugin = entry();
        CHECK_STREQ(plugin->name, "nftables");
        /* as root, never the machine's own firewall: a namespace of our own
         * before any init (a config that passes would create the table) */
        if (geteuid() == 0)
                CHECK_OK(unshare(CLONE_NEWNET));
        CHECK(mkdtemp(state_dir));
        test_readme(argv[2]);
        test_config_refused();
        test_valid_config();
        {
                /* the saved copy of the last valid init (keep_on_stop) */
                char copy[128];
                snprintf(copy, sizeof copy, "%s/nftables-nft.elements", state_dir);
                unlink(copy);
                CHECK_OK(rmdir(state_dir));
        }
        printf("ok\n");
        return 0;
}
