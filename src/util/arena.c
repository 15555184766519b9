/* SPDX-License-Identifier: MIT */
/*
 * Chunks double in size; an allocation larger than half a chunk gets a
 * chunk of its own. Invariant: head is the chunk with free space.
 */
#include <stdarg.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "macro.h"

struct arena_chunk {
        arena_chunk *next;
        size_t size;
        size_t used;
        alignas(max_align_t) unsigned char data[];
};

void *arena_alloc(arena *a, size_t size) {
        const size_t align = alignof(max_align_t);
        size_t need = (size + align - 1) & ~(align - 1);
        arena_chunk *c = a->head;

        if (need < size)
                return NULL;
        if (!c || c->size - c->used < need) {
                size_t csize = c ? c->size * 2 : (a->first_size ? a->first_size : 1024);
                while (csize < need)
                        csize *= 2;
                if (csize > (size_t) 1 << 20 && need <= (size_t) 1 << 20)
                        csize = (size_t) 1 << 20;
                arena_chunk *n = malloc(sizeof *n + csize);
                if (!n)
                        return NULL;
                n->size = csize;
                n->used = 0;
                n->next = a->head;
                a->head = n;
                a->total += sizeof *n + csize;
                c = n;
        }
        void *p = c->data + c->used;
        c->used += need;
        memset(p, 0, size);
        return p;
}

char *arena_strndup(arena *a, const char *s, size_t n) {
        char *p = arena_alloc(a, n + 1);
        if (!p)
                return NULL;
        memcpy(p, s, n);
        p[n] = 0;
        return p;
}

char *arena_strdup(arena *a, const char *s) {
        return s ? arena_strndup(a, s, strlen(s)) : NULL;
}

char *arena_printf(arena *a, const char *fmt, ...) {
        va_list ap, aq;
        int n;
        char *p;

        va_start(ap, fmt);
        va_copy(aq, ap);
        n = vsnprintf(NULL, 0, fmt, aq);
        va_end(aq);
        if (n < 0 || !(p = arena_alloc(a, (size_t) n + 1))) {
                va_end(ap);
                return NULL;
        }
        vsnprintf(p, (size_t) n + 1, fmt, ap);
        va_end(ap);
        return p;
}

void arena_deinit(arena *a) {
        arena_chunk *c = a->head;
        while (c) {
                arena_chunk *n = c->next;
                free(c);
                c = n;
        }
        *a = (arena) { .first_size = a->first_size };
}

size_t arena_used(const arena *a) {
        size_t n = 0;
        for (const arena_chunk *c = a->head; c; c = c->next)
                n += c->used;
        return n;
}

void arena_reset(arena *a, size_t first_size) {
        arena_chunk *keep = NULL, *c = a->head;

        while (c) {
                arena_chunk *n = c->next;
                if (!n && c->size >= first_size && c->size <= first_size + first_size / 8)
                        keep = c;
                else
                        free(c);
                c = n;
        }
        *a = (arena) { .first_size = first_size };
        if (keep) {
                keep->next = NULL;
                keep->used = 0;
                a->head = keep;
                a->total = sizeof *keep + keep->size;
        }
}
