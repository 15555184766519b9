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

#include "backend.h"
#include "plugin.h"

static spw_plugin *loaded;
static pthread_mutex_t loaded_lock = PTHREAD_MUTEX_INITIALIZER;

/* The 2.0 descriptor ends with global_fini: anything smaller is not 2.x. */
#define DESCRIPTOR_V2_0_SIZE (offsetof(struct spw_backend, global_fini) + sizeof(void (*)(void)))
/* 2.0's spw_config_key ends with flags. */
#define CONFIG_KEY_V2_0_SIZE (offsetof(spw_config_key, flags) + sizeof(unsigned))

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
                for (int major = 1; major <= 9; major++) {
                        if (major == SPW_BACKEND_ABI_MAJOR)
                                continue;
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
        if (d->size < DESCRIPTOR_V2_0_SIZE)
                return spw_error_set(err, -EPROTO,
                                     "plugin %s: descriptor is %zu bytes, ABI %d needs at least %zu: "
                                     "set .size = sizeof(struct spw_backend) (SPW_BACKEND_HEADER does) and rebuild",
                                     path, d->size, SPW_BACKEND_ABI_MAJOR, (size_t) DESCRIPTOR_V2_0_SIZE);
        if (!d->name || !*d->name)
                return spw_error_set(err, -EPROTO, "plugin %s: descriptor has no name", path);
        if (d->config_keys && d->config_key_size < CONFIG_KEY_V2_0_SIZE)
                return spw_error_set(err, -EPROTO,
                                     "plugin %s (%s): config_key_size is %zu, ABI %d needs at least %zu: "
                                     "start the descriptor with SPW_BACKEND_HEADER and rebuild",
                                     path, d->name, d->config_key_size, SPW_BACKEND_ABI_MAJOR, (size_t) CONFIG_KEY_V2_0_SIZE);
        if (!d->init || !d->insert)
                return spw_error_set(err, -EPROTO, "plugin %s (%s): descriptor lacks the required %s operation",
                                     path, d->name, !d->init ? "init" : "insert");
        return 0;
}

/* Copy the plugin's keys, whatever their stride, into our own layout. */
static int copy_keys(const struct spw_backend *d, spw_config_key **ret) {
        size_t n = 0;
        const char *base = (const char *) d->config_keys;
        spw_config_key *keys;

        *ret = NULL;
        if (!d->config_keys)
                return 0;
        while (((const spw_config_key *) (const void *) (base + n * d->config_key_size))->name)
                n++;
        keys = calloc(n + 1, sizeof *keys);
        if (!keys)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                memcpy(&keys[i], base + i * d->config_key_size, MIN(d->config_key_size, sizeof *keys));
        *ret = keys;
        return 0;
}

static void plugin_free(spw_plugin *p) {
        if (!p)
                return;
        free(p->keys);
        free(p->path);
        free(p);
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
        if (!p || !(p->path = strdup(path)) || copy_keys(d, &p->keys) < 0) {
                plugin_free(p);
                dlclose(dl);
                return -ENOMEM;
        }
        memcpy(&p->ops, d, MIN(d->size, sizeof p->ops));
        p->ops.size = sizeof p->ops;
        p->ops.config_keys = p->keys;
        p->ops.config_key_size = sizeof(spw_config_key);
        /* operations of a later minor than the plugin's are absent, even if
         * its descriptor happens to be larger (padding, private members) */
        if (d->abi_minor < 1)
                p->ops.read_changes = NULL;
        if (d->abi_minor < 2)
                p->ops.read_history = NULL;
        if (p->ops.global_init) {
                r = p->ops.global_init(&backend_host);
                if (r < 0) {
                        spw_error_set(err, r, "plugin %s (%s): its process-wide set-up (global_init) failed: %s; "
                                      "no backend of this plugin starts",
                                      path, p->ops.name, strerror(-r > 0 ? -r : EINVAL));
                        plugin_free(p);
                        dlclose(dl);
                        return r;
                }
        }
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
                        if (loaded->ops.global_fini)
                                loaded->ops.global_fini();
                        dlclose(loaded->dl);
                        plugin_free(loaded);
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
