/* SPDX-License-Identifier: MIT */
/*
 * Plugins the loader must refuse, one per -D variant:
 *   BAD_MAGIC, BAD_MAJOR (exports spw_backend_v2), TOO_SMALL, NO_SYMBOL,
 *   NO_INSERT; and two that load: OLD_MINOR (the smallest valid v1
 *   descriptor) and NEWER_MINOR (a larger descriptor from a future 1.x).
 */
#include <stddef.h>
#include <spillway/backend.h>

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
        .name = "bad",
        .init = bad_init,
        .insert = bad_insert,
};

#if defined(BAD_MAGIC)
static struct spw_backend d2;
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void);
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void) {
        d2 = desc;
        d2.magic = 0x12345678;
        return &d2;
}
#elif defined(BAD_MAJOR)
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v2(void);
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v2(void) {
        return &desc;
}
#elif defined(TOO_SMALL)
static struct spw_backend d2;
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void);
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void) {
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
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void);
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void) {
        d2 = desc;
        d2.insert = NULL;
        return &d2;
}
#elif defined(OLD_MINOR)
/* as if built against a v1.0 header that ended at shutdown: everything the
 * daemon reads beyond `size` must be treated as absent */
static struct spw_backend d2;
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void);
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void) {
        d2 = desc;
        d2.size = offsetof(struct spw_backend, shutdown) + sizeof(void (*)(void *));
        return &d2;
}
#elif defined(NEWER_MINOR)
/* built against a future 1.x header with more operations appended */
static struct {
        struct spw_backend d;
        void *future_ops[8];
} big;
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void);
__attribute__((visibility("default"))) const struct spw_backend *spw_backend_v1(void) {
        big.d = desc;
        big.d.abi_minor = 99;
        big.d.size = sizeof big;
        return &big.d;
}
#else
#error pick a variant
#endif
