/* SPDX-License-Identifier: MIT */
#include <stddef.h>
#include <stdint.h>

#include "sigmodel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        arena a = ARENA_INIT;
        spw_signal s;
        spw_error err;
        if (signal_parse((const char *) data, size, &a, &s, &err) == 0)
                for (size_t i = 0; i < s.n_bans; i++)
                        json_decref(ban_to_json(&s.bans[i]));
        arena_deinit(&a);
        return 0;
}
