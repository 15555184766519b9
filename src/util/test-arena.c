/* SPDX-License-Identifier: MIT */
#include <stdint.h>

#include "arena.h"
#include "tests.h"

int main(void) {
        arena a = ARENA_INIT;
        char *s = arena_strdup(&a, "hello");
        CHECK_STREQ(s, "hello");
        for (int i = 0; i < 10000; i++) {
                uint64_t *p = arena_alloc(&a, sizeof *p * (size_t) (i % 7 + 1));
                CHECK(p);
                CHECK(((uintptr_t) p % _Alignof(max_align_t)) == 0);
                CHECK(p[0] == 0);
                p[0] = (uint64_t) i;
        }
        char *big = arena_alloc(&a, 3u << 20);
        CHECK(big);
        CHECK_STREQ(arena_printf(&a, "%d-%s", 42, "x"), "42-x");
        CHECK_STREQ(s, "hello"); /* earlier allocations survive growth */
        arena_deinit(&a);
        CHECK(a.head == NULL);
        return 0;
}
