/* SPDX-License-Identifier: MIT */
/*
 * Loading plugins safely. Every refusal says what is wrong and how to fix
 * it, because the person reading it is an operator who installed a .so.
 * The registry of loaded plugins is under one lock: the main thread and the
 * thread that prepares a reload both load plugins.
 */
#include <dlfcn.h>
#include <elf.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <libgen.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin.h"

static spw_plugin *loaded;
static pthread_mutex_t loaded_lock = PTHREAD_MUTEX_INITIALIZER;

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

/* Refuse, before dlopen() runs any of its code, an object whose program
 * headers ask for an executable stack (PT_GNU_STACK with PF_X, or no
 * PT_GNU_STACK at all, which the loader treats the same): glibc would make
 * every thread's stack of the daemon executable to load it, silently, or
 * fail under systemd's MemoryDenyWriteExecute=yes with an obscure error. */
static int check_stack(const char *path, spw_error *err) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        ElfW(Ehdr) eh;
        bool has_stack = false, exec_stack = false;

        if (fd < 0) {
                int r = negative_errno();
                return spw_error_set(err, r, "plugin %s cannot be opened: %s", path, strerror(-r));
        }
        if (pread(fd, &eh, sizeof eh, 0) != (ssize_t) sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
                return spw_error_set(err, -ENOEXEC, "plugin %s cannot be loaded: it is not an ELF shared object", path);
        if (eh.e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) || eh.e_phentsize != sizeof(ElfW(Phdr)))
                return spw_error_set(err, -ENOEXEC,
                                     "plugin %s cannot be loaded: it was built for another architecture (ELF class %u)",
                                     path, (unsigned) eh.e_ident[EI_CLASS]);
        if (eh.e_phnum == 0 || eh.e_phnum > 4096)
                return spw_error_set(err, -ENOEXEC, "plugin %s cannot be loaded: it has %u program headers", path,
                                     (unsigned) eh.e_phnum);
        for (unsigned i = 0; i < eh.e_phnum; i++) {
                ElfW(Phdr) ph;
                if (pread(fd, &ph, sizeof ph, (off_t) (eh.e_phoff + (ElfW(Off)) i * sizeof ph)) != (ssize_t) sizeof ph)
                        return spw_error_set(err, -ENOEXEC, "plugin %s cannot be loaded: its program headers are truncated",
                                             path);
                if (ph.p_type == PT_GNU_STACK) {
                        has_stack = true;
                        exec_stack = ph.p_flags & PF_X;
                }
        }
        if (!has_stack || exec_stack)
                return spw_error_set(err, -EPERM,
                                     "plugin %s cannot be loaded: it asks for an executable stack (%s), which would make "
                                     "the daemon's stacks executable; rebuild it with -Wl,-z,noexecstack "
                                     "(and find the object or assembly file that lacks a .note.GNU-stack section)",
                                     path, has_stack ? "PT_GNU_STACK is executable" : "it has no PT_GNU_STACK header");
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

static int load_locked(const char *path, bool check_owner, spw_plugin **ret, spw_error *err) {
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
        r = check_stack(path, err);
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
                dlclose(dl);
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

int plugin_load(const char *path, bool check_owner, spw_plugin **ret, spw_error *err) {
        pthread_mutex_lock(&loaded_lock);
        int r = load_locked(path, check_owner, ret, err);
        pthread_mutex_unlock(&loaded_lock);
        return r;
}

void plugin_pin(spw_plugin *p) {
        pthread_mutex_lock(&loaded_lock);
        p->pinned = true;
        pthread_mutex_unlock(&loaded_lock);
}

void plugin_unload_all(void) {
        spw_plugin *keep = NULL;

        pthread_mutex_lock(&loaded_lock);
        while (loaded) {
                spw_plugin *n = loaded->next;
                if (loaded->pinned) {
                        /* a thread may still run its code: keep it mapped */
                        loaded->next = keep;
                        keep = loaded;
                } else {
                        dlclose(loaded->dl);
                        free(loaded->path);
                        free(loaded);
                }
                loaded = n;
        }
        loaded = keep;
        pthread_mutex_unlock(&loaded_lock);
}

const spw_config_key *plugin_find_key(const spw_plugin *p, const char *key) {
        if (!p->ops.config_keys)
                return NULL;
        for (const spw_config_key *k = p->ops.config_keys; k->name; k++)
                if (streq(k->name, key))
                        return k;
        return NULL;
}
