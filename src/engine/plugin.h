/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The plugin loader. A plugin file is checked (owner, permissions), opened
 * with dlopen(RTLD_NOW | RTLD_LOCAL), and its descriptor validated (magic,
 * ABI major, size, required operations) before any of its code other than
 * the entry point runs. Plugins are never dlclose()d while the daemon runs:
 * a loaded plugin stays mapped, and loading the same path twice returns the
 * same object.
 *
 * Growing structs are normalised here: the plugin's config keys (whatever
 * its config_key_size) are copied into an array of our spw_config_key, so
 * the rest of the daemon indexes them directly. A plugin's global_init runs
 * once, on the loading thread, right after validation; global_fini runs in
 * plugin_unload_all (never for a pinned plugin).
 */

#include <stdbool.h>
#include <spillway/backend.h>

#include "error.h"

typedef struct spw_plugin {
        char *path;
        void *dl;
        /* The plugin's descriptor copied into our own layout: operations the
         * plugin's (older, smaller) descriptor does not have are NULL. */
        struct spw_backend ops;
        uint16_t abi_minor;
        spw_config_key *keys;         /* normalised copy; ops.config_keys points here */
        bool pinned;                  /* never unloaded (see plugin_pin) */
        struct spw_plugin *next;
} spw_plugin;

/* check_owner: refuse files not owned by root or writable by group/others
 * (switched off only by spillwayd --allow-unsafe-plugins). */
int plugin_load(const char *path, bool check_owner, spw_plugin **ret, spw_error *err);
/* The checks on a descriptor in memory (magic, ABI major, size, name,
 * required operations), as plugin_load() makes them after the entry point
 * returned it; path names the plugin in the message. A separate function
 * so the checks can be fuzzed without a .so (fuzz/fuzz-descriptor.c). */
int plugin_check_descriptor(const struct spw_backend *d, const char *path, spw_error *err);
/* Unload everything (only at exit, after every worker has stopped), except
 * pinned plugins. Any thread may load; the registry is locked. */
void plugin_unload_all(void);
/* Never unload this plugin: a thread that cannot be joined (an init that
 * never returned) may still be running its code. */
void plugin_pin(spw_plugin *p);

/* The descriptor's config key named `key`, or NULL. */
const spw_config_key *plugin_find_key(const spw_plugin *p, const char *key);
