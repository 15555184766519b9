/* SPDX-License-Identifier: MIT */
/* Scratch memory for one ingest line's JSON tree (see jsonscratch.h). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "jsonscratch.h"

#if defined(__SANITIZE_ADDRESS__)
#define SCRATCH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SCRATCH_ASAN 1
#endif
#endif
#ifdef SCRATCH_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void) (p), (void) (n))
#define UNPOISON(p, n) ((void) (p), (void) (n))
#endif

#define ALIGN 16

static char *region;            /* JSON_SCRATCH_SIZE bytes: never moves, never freed */
static uintptr_t region_start, region_end;
static pthread_t owner;
static _Thread_local bool active; /* set on the owner only */

/* owner thread only */
static size_t used;
static bool live;               /* a tree is in the region */
static bool spilled;            /* ... and continued in malloc() */
static unsigned long overflows;

static void *scratch_malloc(size_t size) {
        if (active) {
                size_t n = (size + ALIGN - 1) & ~(size_t) (ALIGN - 1);
                if (n >= size && n <= JSON_SCRATCH_SIZE - used) {
                        void *p = region + used;
                        used += n;
                        UNPOISON(p, size);
                        return p;
                }
                spilled = true;
                overflows++;
        }
        return malloc(size);
}

static void scratch_free(void *p) {
        uintptr_t a = (uintptr_t) p;
        if (a >= region_start && a < region_end)
                return; /* emptied as a whole by json_scratch_drop() */
        free(p);
}

int json_scratch_install(void) {
        if (region)
                return 0;
        region = aligned_alloc(ALIGN, JSON_SCRATCH_SIZE);
        if (!region)
                return -ENOMEM;
        POISON(region, JSON_SCRATCH_SIZE);
        region_start = (uintptr_t) region;
        region_end = region_start + JSON_SCRATCH_SIZE;
        owner = pthread_self();
        json_set_alloc_funcs(scratch_malloc, scratch_free);
        return 0;
}

bool json_scratch_begin(void) {
        if (!region || !pthread_equal(pthread_self(), owner) || live)
                return false;
        live = true;
        spilled = false;
        active = true;
        return true;
}

void json_scratch_end(void) {
        active = false;
}

json_t *json_scratch_loadb(const char *buf, size_t len, size_t flags, json_error_t *err, bool *scratch) {
        *scratch = json_scratch_begin();
        json_t *tree = json_loadb(buf, len, flags, err);
        if (*scratch)
                json_scratch_end();
        return tree;
}

void json_scratch_drop(json_t *tree, bool scratch) {
        if (!scratch) {
                json_decref(tree);
                return;
        }
        active = false;
        if (spilled)
                json_decref(tree); /* frees the part in malloc(); the region's part is ignored */
        POISON(region, used);
        used = 0;
        live = false;
        spilled = false;
}

unsigned long json_scratch_overflows(void) {
        return overflows;
}
