/* SPDX-License-Identifier: MIT */
/* The main file and a backend file, from the same input split at a NUL. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        spw_config *c = NULL;
        spw_error err;
        const uint8_t *nul = memchr(data, 0, size);
        size_t first = nul ? (size_t) (nul - data) : size;

        if (config_parse_main_buffer("fuzz.yaml", (const char *) data, first, &c, &err) < 0)
                return 0;
        if (nul) {
                free(c->plugin_dir);
                c->plugin_dir = strdup("/nonexistent");
                config_parse_backend_buffer(c, "backend.yaml", (const char *) nul + 1, size - first - 1, &err);
                for (size_t i = 0; i < c->n_backends; i++)
                        free(backend_config_describe(&c->backends[i], NULL));
        }
        config_free(c);
        return 0;
}
