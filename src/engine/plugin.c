/* SPDX-License-Identifier: MIT */
/*
 * Loading plugins safely. Every refusal says what is wrong and how to fix
 * it, because the person reading it is an operator who installed a .so.
 * The registry of loaded plugins is only touched by the main thread.
 */
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin.h"

static spw_plugin *loaded;

/* The v1.0 descriptor ends with shutdown: anything smaller is not v1. */
#define DESCRIPTOR_V1_0_SIZE (offsetof(struct spw_backend, shutdown) + sizeof(void (*)(void *)))

static int check_file(const char *path, bool check_owner, spw_error *err) {
        struct stat st;
        char dir[4096];

        if (stat(path, &st) < 0) {
                int r = negative_errno();
                if (r == -ENOENT)
                        return spw_error_set(err, r, "plugin %s does not exist: install it or fix the backend's `path:`", path);
                return spw_error_set(err, r, "plugin %s: cannot stat: %s", path, strerror(-r));
        }
        if (!S_ISREG(st.st_mode))
                return spw_error_set(err, -EINVAL, "plugin %s is not a regular file", path);
        if (!check_owner)
                return 0;
        if (st.st_uid != 0)
                return spw_error_set(err, -EPERM,
                                     "plugin %s is owned by uid %u, not root: a plugin runs with the daemon's rights; "
                                     "chown root:root it (or start spillwayd with --allow-unsafe-plugins for a test setup)",
                                     path, (unsigned) st.st_uid);
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return spw_error_set(err, -EPERM,
                                     "plugin %s is writable by %s: anyone who can write it controls the daemon; "
                                     "chmod go-w it (or start spillwayd with --allow-unsafe-plugins for a test setup)",
                                     path, (st.st_mode & S_IWOTH) ? "everyone" : "its group");
        snprintf(dir, sizeof dir, "%s", path);
        const char *d = dirname(dir);
        if (stat(d, &st) == 0 && (st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
                return spw_error_set(err, -EPERM,
                                     "plugin %s is in %s, which everyone may write: move the plugin to a root-owned directory",
                                     path, d);
        return 0;
}

static int validate_descriptor(void *dl, const char *path, const struct spw_backend **ret, spw_error *err) {
        const struct spw_backend *(*entry)(void);
        const struct spw_backend *d;
        int r;

        *(void **) &entry = dlsym(dl, SPW_BACKEND_ENTRY_SYMBOL);
        if (!entry) {
                char sym[32];
                for (int major = 2; major <= 9; major++) {
                        snprintf(sym, sizeof sym, "spw_backend_v%d", major);
                        if (dlsym(dl, sym))
                                return spw_error_set(err, -EPROTO,
                                                     "plugin %s was built for backend ABI %d, this spillwayd speaks ABI %d: "
                                                     "rebuild the plugin against spillway-backend %d.x or install a matching spillwayd",
                                                     path, major, SPW_BACKEND_ABI_MAJOR, SPW_BACKEND_ABI_MAJOR);
                }
                return spw_error_set(err, -EPROTO,
                                     "%s is not a Spillway backend plugin: it does not export %s(); "
                                     "declare it with SPW_BACKEND_EXPORT() from <spillway/backend.h>",
                                     path, SPW_BACKEND_ENTRY_SYMBOL);
        }
        d = entry();
        if (!d)
                return spw_error_set(err, -EPROTO, "plugin %s: %s() returned NULL", path, SPW_BACKEND_ENTRY_SYMBOL);
        r = plugin_check_descriptor(d, path, err);
        if (r < 0)
                return r;
        *ret = d;
        return 0;
}

int plugin_check_descriptor(const struct spw_backend *d, const char *path, spw_error *err) {
        if (d->magic != SPW_BACKEND_MAGIC)
                return spw_error_set(err, -EPROTO,
                                     "plugin %s: descriptor has magic 0x%08x, expected 0x%08x: not a Spillway descriptor "
                                     "(start it with SPW_BACKEND_HEADER)", path, (unsigned) d->magic, (unsigned) SPW_BACKEND_MAGIC);
        if (d->abi_major != SPW_BACKEND_ABI_MAJOR)
                return spw_error_set(err, -EPROTO,
                                     "plugin %s: descriptor is for backend ABI %u.%u, this spillwayd speaks %d.%d: "
                                     "rebuild the plugin against spillway-backend %d.x",
                                     path, d->abi_major, d->abi_minor, SPW_BACKEND_ABI_MAJOR, SPW_BACKEND_ABI_MINOR,
                                     SPW_BACKEND_ABI_MAJOR);
        if (d->size < DESCRIPTOR_V1_0_SIZE)
                return spw_error_set(err, -EPROTO,
                                     "plugin %s: descriptor is %zu bytes, ABI %d needs at least %zu: "
                                     "set .size = sizeof(struct spw_backend) (SPW_BACKEND_HEADER does) and rebuild",
                                     path, d->size, SPW_BACKEND_ABI_MAJOR, (size_t) DESCRIPTOR_V1_0_SIZE);
        if (!d->name || !*d->name)
                return spw_error_set(err, -EPROTO, "plugin %s: descriptor has no name", path);
        if (!d->init || !d->insert)
                return spw_error_set(err, -EPROTO, "plugin %s (%s): descriptor lacks the required %s operation",
                                     path, d->name, !d->init ? "init" : "insert");
        return 0;
}

int plugin_load(const char *path, bool check_owner, spw_plugin **ret, spw_error *err) {
        const struct spw_backend *d = NULL;
        spw_plugin *p;
        void *dl;
        int r;

        for (p = loaded; p; p = p->next)
                if (streq(p->path, path)) {
                        *ret = p;
                        return 0;
                }

        r = check_file(path, check_owner, err);
        if (r < 0)
                return r;

        dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!dl)
                return spw_error_set(err, -ENOEXEC, "plugin %s cannot be loaded: %s", path, dlerror());

        r = validate_descriptor(dl, path, &d, err);
        if (r < 0) {
                dlclose(dl);
                return r;
        }

        p = calloc(1, sizeof *p);
        if (!p || !(p->path = strdup(path))) {
                free(p);
                return -ENOMEM;
        }
        memcpy(&p->ops, d, MIN(d->size, sizeof p->ops));
        p->ops.size = sizeof p->ops;
        p->abi_minor = d->abi_minor;
        p->dl = dl;
        p->next = loaded;
        loaded = p;
        *ret = p;
        return 0;
}

void plugin_unload_all(void) {
        while (loaded) {
                spw_plugin *n = loaded->next;
                dlclose(loaded->dl);
                free(loaded->path);
                free(loaded);
                loaded = n;
        }
}

const spw_config_key *plugin_find_key(const spw_plugin *p, const char *key) {
        if (!p->ops.config_keys)
                return NULL;
        for (const spw_config_key *k = p->ops.config_keys; k->name; k++)
                if (streq(k->name, key))
                        return k;
        return NULL;
}
