/* SPDX-License-Identifier: MIT */
/*
 * Plugins the loader must refuse, one per -D variant:
 *   BAD_MAGIC, BAD_MAJOR (exports SPW_ENTRY: an ABI 1 plugin),
 *   TOO_SMALL, NO_SYMBOL, NO_INSERT, BAD_KEYSIZE (config keys without a
 *   stride); and two that load: OLD_MINOR (the smallest valid 2.0
 *   descriptor) and NEWER_MINOR (a larger descriptor from a future 2.x).
 */
#include <stddef.h>
#include <spillway/backend.h>

#define SPW_ENTRY spw_backend_v2

static int bad_init(spw_ctx *ctx, const struct spw_host *host, const spw_kv *c, size_t n, void **selfp) {
        *selfp = NULL;
        return 0;
}

static int bad_insert(void *self, const spw_signal *s) {
        return 0;
}

static const struct spw_backend desc __attribute__((unused)) = {
        .magic = SPW_BACKEND_MAGIC,
        .abi_major = SPW_BACKEND_ABI_MAJOR,
        .abi_minor = 0,
        .size = sizeof(struct spw_backend),
        .config_key_size = sizeof(spw_config_key),
        .name = "bad",
        .init = bad_init,
        .insert = bad_insert,
};

#if defined(BAD_MAGIC)
static struct spw_backend d2;
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void);
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void) {
        d2 = desc;
        d2.magic = 0x12345678;
        return &d2;
}
#elif defined(BAD_MAJOR)
/* as an ABI 1 plugin exports it */
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void);
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void) {
        return &desc;
}
#elif defined(BAD_KEYSIZE)
static const spw_config_key keys[] = { { "k", SPW_CONFIG_STRING, NULL, NULL, "k" }, { NULL } };
static struct spw_backend d2;
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void);
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void) {
        d2 = desc;
        d2.config_keys = keys;
        d2.config_key_size = 0;
        return &d2;
}
#elif defined(TOO_SMALL)
static struct spw_backend d2;
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void);
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void) {
        d2 = desc;
        d2.size = offsetof(struct spw_backend, insert);
        return &d2;
}
#elif defined(NO_SYMBOL)
__attribute__((visibility("default"))) int something_else(void);
__attribute__((visibility("default"))) int something_else(void) {
        return 0;
}
#elif defined(NO_INSERT)
static struct spw_backend d2;
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void);
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void) {
        d2 = desc;
        d2.insert = NULL;
        return &d2;
}
#elif defined(OLD_MINOR)
/* as if built against the 2.0 header that ended at global_fini: everything the
 * daemon reads beyond `size` must be treated as absent */
static struct spw_backend d2;
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void);
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void) {
        d2 = desc;
        d2.size = offsetof(struct spw_backend, global_fini) + sizeof(void (*)(void));
        return &d2;
}
#elif defined(NEWER_MINOR)
/* built against a future 2.x header with more operations appended */
static struct {
        struct spw_backend d;
        void *future_ops[8];
} big;
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void);
__attribute__((visibility("default"))) const struct spw_backend *SPW_ENTRY(void) {
        big.d = desc;
        big.d.abi_minor = 99;
        big.d.size = sizeof big;
        return &big.d;
}
#else
#error pick a variant
#endif
