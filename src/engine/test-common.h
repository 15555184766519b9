/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * For the engine's unit tests that run real backends: a temporary
 * configuration folder whose backends use the mock plugin
 * (tests/plugins/mock.c, found through $SPW_TEST_PLUGIN_DIR), and a way to
 * wait for what workers post to the hub.
 */

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "hub.h"
#include "tests.h"

typedef struct testdir {
        char path[64];
} testdir;

static inline void testdir_init(testdir *t) {
        snprintf(t->path, sizeof t->path, "/tmp/spw-unit-XXXXXX");
        CHECK(mkdtemp(t->path) != NULL);
        char sub[128];
        snprintf(sub, sizeof sub, "%s/plugins", t->path);
        CHECK_EQ(mkdir(sub, 0755), 0);
        snprintf(sub, sizeof sub, "%s/plugins/backend", t->path);
        CHECK_EQ(mkdir(sub, 0755), 0);
}

static inline void testdir_write(const testdir *t, const char *name, const char *text) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", t->path, name);
        FILE *f = fopen(p, "w");
        CHECK(f != NULL);
        fputs(text, f);
        fclose(f);
}

static inline void testdir_remove(const char *path) {
        char p[256];
        snprintf(p, sizeof p, "rm -rf '%s'", path);
        CHECK_EQ(system(p), 0);
}

/* plugins/backend/NAME.yaml on the mock plugin, with `config` lines (each
 * "  key: value\n") and queue settings (each "key: value\n"). */
static inline void testdir_mock_backend(const testdir *t, const char *name, const char *queue, const char *config) {
        char file[128], text[2048];
        snprintf(file, sizeof file, "plugins/backend/%s.yaml", name);
        snprintf(text, sizeof text, "name: %s\npath: %s/mock.so\n%sconfig:\n  record: %s/%s.log\n%s", name,
                 getenv("SPW_TEST_PLUGIN_DIR"), queue ? queue : "", t->path, name, config ? config : "");
        testdir_write(t, file, text);
}

static inline spw_config *testdir_load(const testdir *t) {
        char main_file[128];
        spw_error err = { 0 };
        spw_config *c = NULL;
        config_overrides o = { .state_dir = t->path, .runtime_dir = t->path };
        snprintf(main_file, sizeof main_file, "%s/spillway.yaml", t->path);
        if (config_load(main_file, &o, &c, &err) < 0) {
                fprintf(stderr, "config_load: %s\n", err.msg);
                CHECK(false);
        }
        return c;
}

/* The mock's record file: how many lines contain `what`. */
static inline int testdir_count(const testdir *t, const char *name, const char *what) {
        char p[256], line[512];
        int n = 0;
        snprintf(p, sizeof p, "%s/%s.log", t->path, name);
        FILE *f = fopen(p, "r");
        if (!f)
                return 0;
        while (fgets(line, sizeof line, f))
                n += strstr(line, what) != NULL;
        fclose(f);
        return n;
}

/* Dispatch hub items until cond(userdata) holds; fail after 10 s. */
static inline void hub_wait(hub *h, bool (*cond)(void *), void *userdata) {
        for (int i = 0; i < 1000 && !cond(userdata); i++) {
                struct pollfd p = { .fd = hub_fd(h), .events = POLLIN };
                poll(&p, 1, 10);
                hub_dispatch(h);
        }
        CHECK(cond(userdata));
}
