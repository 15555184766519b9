/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the stored-time parser (bandb_time_parse), which
 * also reads what CrowdSec wrote into migrated databases: it must never
 * crash or read past its input, and a parsed time must survive a
 * format/parse round trip unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char buf[BANDB_TIME_MAX], *copy;
        spw_usec_t t, u;

        /* an exact-size heap copy: ASan catches any read past the end */
        copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        if (bandb_time_parse(copy, size, &t) == 0) {
                /* years 1..9999 only; others are clamped by the formatter */
                if (t >= INT64_C(-62135596800000000) && t < INT64_C(253402300800000000)) {
                        bandb_time_format(buf, t);
                        if (bandb_time_parse(buf, strlen(buf), &u) != 0 || u != t)
                                abort();
                }
        }
        free(copy);
        return 0;
}
