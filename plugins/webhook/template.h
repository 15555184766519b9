/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The webhook payload template language: a small subset of Go's
 * text/template (the language of CrowdSec's notification `format:`),
 * evaluated over JSON values. See README.md for the reference.
 *
 * A template is compiled once (at init, where every syntax error is
 * reported with line:column) and rendered for every batch. Rendering never
 * fails on data: a missing field is "no value" (empty text, false in
 * conditions); only the output and step limits (-E2BIG) and memory (-ENOMEM)
 * stop it.
 */

#include <jansson.h>
#include <stddef.h>

#include "whutil.h"

typedef struct tpl tpl;

/* Where the template text sits in its file, so that errors can be reported
 * in file coordinates: the line and column of the first byte, and the
 * column (0-based count of characters) every following line starts at, i.e.
 * the indentation a YAML block scalar stripped. Plain text is {1, 1, 0}. */
typedef struct tpl_origin {
        unsigned line;
        unsigned column;
        unsigned indent;
} tpl_origin;

#define TPL_ORIGIN_TEXT ((tpl_origin) { 1, 1, 0 })

typedef struct tpl_error {
        unsigned line, column;  /* 1-based, in the origin's coordinates */
        char message[256];      /* what was found and what was expected */
} tpl_error;

/* Templates longer than this are refused (a payload template is a few
 * lines; this bounds compile time and memory for any input). */
#define TPL_MAX_SOURCE (256u * 1024u)

/* Compile text[0..len) (any bytes; need not be NUL-terminated). Returns 0
 * and the template in *ret, or -EINVAL with err filled, or -ENOMEM. */
int tpl_compile(const char *text, size_t len, tpl_origin origin, tpl **ret, tpl_error *err);
tpl *tpl_free(tpl *t);
static inline void tpl_freep(tpl **t) {
        tpl_free(*t);
}

/* Render with `data` as dot (and $). Appends to out. Returns 0, -E2BIG when
 * the output would exceed max_output bytes or the template runs more than
 * TPL_MAX_STEPS steps (nested ranges over big batches), or -ENOMEM. On
 * failure out holds a partial result. */
#define TPL_MAX_STEPS 5000000u
int tpl_render(const tpl *t, json_t *data, strbuf *out, size_t max_output);

/* A value as the template prints it: strings raw, numbers in decimal,
 * booleans as true/false, null or no value as nothing, arrays and objects
 * as compact JSON. */
void tpl_print_value(strbuf *out, json_t *v);

/* The jansson flags used for every JSON the plugin produces (default
 * payload and toJson): compact, insertion order, 15 significant digits for
 * reals (48.8582, not 48.858199999999997). */
#define TPL_JSON_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))
