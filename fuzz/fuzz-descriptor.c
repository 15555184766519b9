/* SPDX-License-Identifier: MIT */
/*
 * The plugin descriptor checks and what the daemon does with a descriptor
 * that passed them: its config-key table against a backend file's config:
 * map (unknown keys with "did you mean", enum choices, types). The input:
 *
 *   bytes 0..15   magic (4), abi_major (2), abi_minor (2), size (8), little endian
 *   byte 16       bit 0: name, bit 1: init, bit 2: insert, bit 3: config_keys
 *   then NUL-separated fields: the name, then (key, type digit, choices)
 *   triples until an empty field, then the backend file (YAML)
 *
 * The descriptor is copied into a heap block of exactly its declared size
 * (clamped), so reading past what a plugin declares is an ASan report.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "plugin.h"

#define MAX_KEYS 32

static int fake_init(spw_ctx *ctx, const struct spw_host *host, const spw_kv *config, size_t n, void **selfp) {
        return 0;
}

static int fake_insert(void *self, const spw_signal *s) {
        return 0;
}

static uint64_t le(const uint8_t *p, int n) {
        uint64_t v = 0;
        for (int i = n - 1; i >= 0; i--)
                v = v << 8 | p[i];
        return v;
}

/* The next NUL-terminated field of [*p, end), or NULL at the end. */
static char *field(const uint8_t **p, const uint8_t *end) {
        const uint8_t *nul;
        char *f;

        if (*p >= end)
                return NULL;
        nul = memchr(*p, 0, (size_t) (end - *p));
        size_t n = nul ? (size_t) (nul - *p) : (size_t) (end - *p);
        /* not strndup(): the field may end at the buffer's end without a
         * NUL, and ASan's strndup checks one byte past n */
        f = malloc(n + 1);
        if (f) {
                memcpy(f, *p, n);
                f[n] = 0;
        }
        *p += n + (nul ? 1 : 0);
        return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct spw_backend desc = { 0 }, *copy;
        spw_config_key keys[MAX_KEYS + 1];
        char *strings[1 + 3 * MAX_KEYS] = { NULL };
        size_t n_strings = 0, n_keys = 0, alloc;
        const uint8_t *p = data + 17, *end = data + size;
        spw_error err;
        unsigned flags;

        if (size < 17)
                return 0;
        desc.magic = (uint32_t) le(data, 4);
        desc.abi_major = (uint16_t) le(data + 4, 2);
        desc.abi_minor = (uint16_t) le(data + 6, 2);
        desc.size = (size_t) le(data + 8, 8);
        flags = data[16];

        char *name = field(&p, end);
        strings[n_strings++] = name;
        desc.name = flags & 1 ? name : NULL;
        desc.init = flags & 2 ? fake_init : NULL;
        desc.insert = flags & 4 ? fake_insert : NULL;
        while (n_keys < MAX_KEYS) {
                char *k = field(&p, end), *t, *c;
                if (!k || !*k) {
                        free(k);
                        break;
                }
                t = field(&p, end);
                c = field(&p, end);
                strings[n_strings++] = k;
                strings[n_strings++] = t;
                strings[n_strings++] = c;
                keys[n_keys++] = (spw_config_key) { .name = k, .type = t && *t ? *t - '0' : 0,
                                                    .choices = c && *c ? c : NULL };
        }
        keys[n_keys] = (spw_config_key) { 0 };
        desc.config_keys = flags & 8 ? keys : NULL;

        /* a block of the size the plugin claims (at least the header the
         * checks read first, at most a little more than we know) */
        alloc = desc.size < offsetof(struct spw_backend, name) ? offsetof(struct spw_backend, name)
                : desc.size > sizeof desc + 64 ? sizeof desc + 64 : desc.size;
        copy = calloc(1, alloc);
        if (!copy)
                goto out;
        memcpy(copy, &desc, alloc < sizeof desc ? alloc : sizeof desc);

        if (plugin_check_descriptor(copy, "fuzz.so", &err) == 0) {
                spw_plugin plugin = { .path = (char *) "fuzz.so" };
                spw_config *c = NULL;

                /* what plugin_load() keeps of it */
                memcpy(&plugin.ops, copy, copy->size < sizeof plugin.ops ? copy->size : sizeof plugin.ops);
                plugin.ops.size = sizeof plugin.ops;
                (void) plugin_find_key(&plugin, "busy_timeout");
                if (config_parse_main_buffer("fuzz.yaml", "", 0, &c, &err) == 0) {
                        if (config_parse_backend_buffer(c, "backend.yaml", (const char *) p, (size_t) (end - p), &err) == 0)
                                for (size_t i = 0; i < c->n_backends; i++)
                                        (void) config_validate_backend(&c->backends[i], &plugin, &err);
                        config_free(c);
                }
        }
        free(copy);
out:
        for (size_t i = 0; i < n_strings; i++)
                free(strings[i]);
        return 0;
}
