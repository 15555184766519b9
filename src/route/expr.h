/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The filter language of profiles.yaml: the subset of CrowdSec's `expr`
 * language that profiles use, over one signal (`sig.*` in the v0.3 grammar,
 * `Alert.*` in the v1 grammar). README.md in this folder is the reference.
 *
 * An expression is compiled once (tokens -> syntax tree -> type check ->
 * bytecode for a small stack machine) and evaluated many times. Every type
 * is known at compile time, so type errors are compile errors; what is left
 * for run time is data-dependent (a v0.3 signal without a `source` object,
 * Atof of a non-number, % by zero, a string too long for the scratch
 * buffer).
 *
 * Memory and threads: evaluation allocates nothing. The value stack is sized
 * at compile time, and strings made by Upper(), Lower(), Sprintf() and `+` live in a
 * scratch buffer of EXPR_SCRATCH_SIZE bytes owned by the compiled
 * expression and reset by each evaluation. So a compiled expression must be
 * evaluated by one thread at a time (the daemon evaluates profiles on its
 * main thread only), and a string value returned by expr_eval() stays valid
 * until the next expr_eval() of the same expression (or the signal is
 * freed, for strings taken from the signal). `matches` patterns are
 * compiled at load by rx.h, whose matcher is allocation-free and linear.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <spillway/backend.h>

#include "error.h"
#include "macro.h"

/* Bytes of scratch space per compiled expression for computed strings. */
#define EXPR_SCRATCH_SIZE 4096
/* Longest expression text accepted. */
#define EXPR_MAX_LENGTH 65536
/* Deepest nesting of the syntax tree (parentheses, operators, calls). */
#define EXPR_MAX_DEPTH 256

typedef struct expr expr;

typedef enum expr_type {
        EXPR_NIL,
        EXPR_BOOL,
        EXPR_INT,
        EXPR_FLOAT,
        EXPR_STRING,
        EXPR_LIST,   /* a list literal; only `in`, len() and a top-level result use it */
        EXPR_MAP,    /* sig.Labels: in, len(), == nil, indexing */
        EXPR_OBJECT, /* sig.Source, Alert.Source: only compared with nil */
        _EXPR_TYPE_MAX,
} expr_type;

typedef struct expr_value {
        expr_type type;
        union {
                bool b;
                int64_t i;
                double f;
                struct {
                        const char *ptr; /* always NUL-terminated at ptr[len] */
                        size_t len;
                } str;
                struct {
                        const struct expr_value *items;
                        size_t n;
                } list;
                struct {
                        const void *ptr; /* NULL: the map or object is nil */
                        size_t n;        /* MAP: number of entries */
                } ref;
        };
} expr_value;

/* Which root names an expression may use. */
enum {
        EXPR_ENV_SIG = 1 << 0,   /* sig.* (CrowdSec v0.3 SignalOccurence) */
        EXPR_ENV_ALERT = 1 << 1, /* Alert.* (CrowdSec v1 Alert, mapped onto the signal) */
        EXPR_ENV_ALL = EXPR_ENV_SIG | EXPR_ENV_ALERT,
        /* GetDecisionsCount() and GetDecisionsSinceCount() may be used: the
         * caller promises an expr_context with a history callback. Without
         * it they are refused at load as "not yet supported". */
        EXPR_ENV_HISTORY = 1 << 2,
};

/* Ban history, for GetDecisionsCount(value) and GetDecisionsSinceCount(value,
 * window): how many bans `value` (an IP or a range, as Alert.GetValue()
 * gives it) has had, all of them (since == 0), or those made at or after
 * `since` (realtime microseconds). It runs on the evaluating thread inside
 * routing, so it must answer from memory and never block (the daemon's
 * design: an index of ban history per target kept current from the ban
 * database). Returns 0 and *count, or a negative errno, which makes the
 * helper a run-time error. */
typedef int (*expr_history_fn)(void *userdata, const char *value, int64_t since, uint64_t *count);

typedef struct expr_context {
        int64_t now;             /* realtime microseconds: GetDecisionsSinceCount()'s window ends here */
        expr_history_fn history; /* NULL: the history helpers are run-time errors */
        void *history_userdata;
} expr_context;

/* Where the expression text comes from, for error messages. */
typedef struct expr_origin {
        const char *filename;         /* NULL: "<expr>" */
        const char *context;          /* prefixed to compile errors, e.g. "filter"; or NULL */
        unsigned line, column;        /* of text[0], 1-based (0 is read as 1) */
        unsigned continuation_column; /* column of the first character of lines after
                                       * the first (YAML block scalars); 0 is read as 1 */
} expr_origin;

/* Compile `len` bytes of text. `env` is a mask of EXPR_ENV_*. On error fills
 * err with "file:line:column: context: what was expected" and returns
 * -EINVAL (or -ENOMEM). `where` may be NULL. */
int expr_compile(const char *text, size_t len, unsigned env, const expr_origin *where, expr **ret,
                 spw_error *err);
expr *expr_free(expr *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(expr *, expr_free);

/* The static type of the result. */
expr_type expr_result_type(const expr *e);
const char *expr_type_name(expr_type t);
/* The source text (NUL-terminated copy). */
const char *expr_text(const expr *e);
/* Slots of the value stack (for tests and the fuzzer). */
size_t expr_stack_size(const expr *e);

/* Evaluate against one signal. Returns 0 and the value, or -EINVAL for a
 * run-time error with err filled as "file:line:column: what happened"
 * (err may be NULL). `sig` must not be NULL. See the memory note above. */
int expr_eval(expr *e, const spw_signal *sig, expr_value *ret, spw_error *err);
/* The same with a context (ctx may be NULL: no history, now unknown). */
int expr_eval_in(expr *e, const spw_signal *sig, const expr_context *ctx, expr_value *ret, spw_error *err);
/* For boolean expressions: 1 true, 0 false, or -EINVAL as above; a
 * non-boolean expression is -EINVAL too. */
int expr_eval_bool(expr *e, const spw_signal *sig, spw_error *err);

/* Signal accessors, shared with the router so that Alert.* and ban
 * targets read the signal the same way. */
/* The value of a label, or NULL when absent (labels are sorted by key). */
const char *expr_signal_label(const spw_signal *sig, const char *key);
/* source.Ip when there is a source object and it is non-empty, else Source_ip (may be NULL). */
const char *expr_signal_source_ip(const spw_signal *sig);
/* source.Range, else Source_range (may be NULL). */
const char *expr_signal_source_range(const spw_signal *sig);
/* The nested source field when present and non-empty, else the flat one. */
const char *expr_signal_source_pick(const spw_signal *sig, const char *nested, const char *flat);

/* The fields filters can read, for documentation checks and completion:
 * writes the i-th path ("sig.Source.Ip", "Alert.GetScope()") to buf and
 * returns its type, or -ENOENT past the end. */
int expr_field_path(size_t i, char *buf, size_t size);
/* The helper functions: "len", "Upper", ...; NULL past the end. */
const char *expr_builtin_name(size_t i);

/* Value helpers, for tests and `spillwayctl route test`. */
bool expr_value_equal(const expr_value *a, const expr_value *b);
/* Format a value for humans ("true", "3", "\"x\"", "[1, 2]") into buf. */
char *expr_value_format(const expr_value *v, char *buf, size_t size);
