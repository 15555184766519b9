/* SPDX-License-Identifier: MIT */
/*
 * The filter language: the compile driver, the tables of fields and
 * helpers, error positions and the public accessors. The passes live in
 * expr-lex.c, expr-parse.c, expr-check.c, expr-compile.c and expr-eval.c
 * (expr-internal.h lists them).
 *
 * Pipeline: text -> tokens (expr_lex(), one at a time) -> syntax tree
 * (expr_parse(), nodes in a temporary arena) -> expr_check() resolves names
 * (sig.Labels.x, Alert.GetScope(), helpers) and gives every node its static
 * type -> expr_emit() writes instructions for a stack machine and tracks the
 * stack depth -> the tree is dropped. The compiled `expr` owns the code, the
 * constants, the compiled patterns (rx.h) and CIDR ranges, the value stack
 * and the scratch buffer; evaluation (expr-eval.c) touches only those and
 * the signal.
 *
 * Each pass keeps its invariants in its own file's comment; the one they
 * share: the syntax tree is at most EXPR_MAX_DEPTH deep and parser recursion
 * is bounded by the same limit, so the recursive passes cannot exhaust the
 * C stack on hostile input.
 */
#include <assert.h>
#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr-internal.h"

/* ------------------------------------------------------------ tables */

const char *const expr_obj_names[_OBJ_MAX] = {
        [OBJ_SIG] = "sig", [OBJ_SIG_SOURCE] = "sig.Source", [OBJ_LABELS] = "sig.Labels",
        [OBJ_ALERT] = "Alert", [OBJ_ALERT_SOURCE] = "Alert.Source",
};

const field_def expr_fields[] = {
        /* CrowdSec v0.3 SignalOccurence, by Go field name */
        { OBJ_SIG, "Scenario", EXPR_STRING, 0, F_SCENARIO, false },
        { OBJ_SIG, "Bucket_id", EXPR_STRING, 0, F_BUCKET_ID, false },
        { OBJ_SIG, "Alert_message", EXPR_STRING, 0, F_ALERT_MESSAGE, false },
        { OBJ_SIG, "Events_count", EXPR_INT, 0, F_EVENTS_COUNT, false },
        { OBJ_SIG, "Start_at", EXPR_INT, 0, F_START_AT, false },
        { OBJ_SIG, "Stop_at", EXPR_INT, 0, F_STOP_AT, false },
        { OBJ_SIG, "Source", EXPR_OBJECT, OBJ_SIG_SOURCE, F_SOURCE, false },
        { OBJ_SIG, "Source_ip", EXPR_STRING, 0, F_FLAT_IP, false },
        { OBJ_SIG, "Source_range", EXPR_STRING, 0, F_FLAT_RANGE, false },
        { OBJ_SIG, "Source_AutonomousSystemNumber", EXPR_STRING, 0, F_FLAT_ASN, false },
        { OBJ_SIG, "Source_AutonomousSystemOrganization", EXPR_STRING, 0, F_FLAT_ASORG, false },
        { OBJ_SIG, "Source_Country", EXPR_STRING, 0, F_FLAT_COUNTRY, false },
        { OBJ_SIG, "Source_Latitude", EXPR_FLOAT, 0, F_FLAT_LAT, false },
        { OBJ_SIG, "Source_Longitude", EXPR_FLOAT, 0, F_FLAT_LON, false },
        { OBJ_SIG, "Dest_ip", EXPR_STRING, 0, F_DEST_IP, false },
        { OBJ_SIG, "Capacity", EXPR_INT, 0, F_CAPACITY, false },
        { OBJ_SIG, "Leak_speed", EXPR_INT, 0, F_LEAK_SPEED, false },
        { OBJ_SIG, "Whitelisted", EXPR_BOOL, 0, F_WHITELISTED, false },
        { OBJ_SIG, "Simulation", EXPR_BOOL, 0, F_SIMULATION, false },
        { OBJ_SIG, "Reprocess", EXPR_BOOL, 0, F_REPROCESS, false },
        { OBJ_SIG, "MapKey", EXPR_STRING, 0, F_MAPKEY, false },
        { OBJ_SIG, "Labels", EXPR_MAP, OBJ_LABELS, F_LABELS, false },
        /* sig.Source (a pointer in Go: nil when the signal has no source) */
        { OBJ_SIG_SOURCE, "Ip", EXPR_STRING, 0, F_SRC_IP, false },
        { OBJ_SIG_SOURCE, "Range", EXPR_STRING, 0, F_SRC_RANGE, false },
        { OBJ_SIG_SOURCE, "AutonomousSystemNumber", EXPR_STRING, 0, F_SRC_ASN, false },
        { OBJ_SIG_SOURCE, "AutonomousSystemOrganization", EXPR_STRING, 0, F_SRC_ASORG, false },
        { OBJ_SIG_SOURCE, "Country", EXPR_STRING, 0, F_SRC_COUNTRY, false },
        { OBJ_SIG_SOURCE, "Latitude", EXPR_FLOAT, 0, F_SRC_LAT, false },
        { OBJ_SIG_SOURCE, "Longitude", EXPR_FLOAT, 0, F_SRC_LON, false },
        /* CrowdSec v1 Alert, mapped onto the signal */
        { OBJ_ALERT, "Remediation", EXPR_BOOL, 0, F_A_REMEDIATION, false },
        { OBJ_ALERT, "Scenario", EXPR_STRING, 0, F_SCENARIO, false },
        { OBJ_ALERT, "Message", EXPR_STRING, 0, F_ALERT_MESSAGE, false },
        { OBJ_ALERT, "EventsCount", EXPR_INT, 0, F_EVENTS_COUNT, false },
        { OBJ_ALERT, "Capacity", EXPR_INT, 0, F_CAPACITY, false },
        { OBJ_ALERT, "Simulated", EXPR_BOOL, 0, F_SIMULATION, false },
        { OBJ_ALERT, "Source", EXPR_OBJECT, OBJ_ALERT_SOURCE, F_A_SOURCE, false },
        { OBJ_ALERT, "GetScope", EXPR_STRING, 0, F_A_SCOPE, true },
        { OBJ_ALERT, "GetValue", EXPR_STRING, 0, F_A_VALUE, true },
        { OBJ_ALERT, "GetScenario", EXPR_STRING, 0, F_SCENARIO, true },
        { OBJ_ALERT_SOURCE, "IP", EXPR_STRING, 0, F_A_SRC_IP, false },
        { OBJ_ALERT_SOURCE, "Range", EXPR_STRING, 0, F_A_SRC_RANGE, false },
        { OBJ_ALERT_SOURCE, "Cn", EXPR_STRING, 0, F_A_SRC_CN, false },
        { OBJ_ALERT_SOURCE, "AsNumber", EXPR_STRING, 0, F_A_SRC_ASN, false },
        { OBJ_ALERT_SOURCE, "AsName", EXPR_STRING, 0, F_A_SRC_ASNAME, false },
        { OBJ_ALERT_SOURCE, "Latitude", EXPR_FLOAT, 0, F_A_SRC_LAT, false },
        { OBJ_ALERT_SOURCE, "Longitude", EXPR_FLOAT, 0, F_A_SRC_LON, false },
        { OBJ_ALERT_SOURCE, "Scope", EXPR_STRING, 0, F_A_SCOPE, false },
        { OBJ_ALERT_SOURCE, "Value", EXPR_STRING, 0, F_A_VALUE, false },
};
const size_t expr_n_fields = ELEMENTSOF(expr_fields);

const builtin_def expr_builtins[] = {
        [B_LEN] = { "len", 1, 1, 0 },
        [B_UPPER] = { "Upper", 1, 1, 0 },
        [B_LOWER] = { "Lower", 1, 1, 0 },
        [B_ATOF] = { "Atof", 1, 1, 0 },
        [B_IPINRANGE] = { "IpInRange", 2, 2, 0 },
        [B_SPRINTF] = { "Sprintf", 1, EXPR_VARIADIC, 0 },
        [B_DECISIONS_COUNT] = { "GetDecisionsCount", 1, 1, EXPR_ENV_HISTORY },
        [B_DECISIONS_SINCE] = { "GetDecisionsSinceCount", 2, 2, EXPR_ENV_HISTORY },
};
const size_t expr_n_builtins = ELEMENTSOF(expr_builtins);

static_assert(ELEMENTSOF(expr_fields) <= EXPR_MAX_FIELDS, "raise EXPR_MAX_FIELDS");
static_assert(ELEMENTSOF(expr_builtins) <= EXPR_MAX_BUILTINS, "raise EXPR_MAX_BUILTINS");

/* Line and column of byte `pos` of the text (columns count UTF-8 characters). */
void expr_position(const expr *e, size_t pos, unsigned *line, unsigned *column) {
        unsigned l = e->line, c = e->column;
        size_t line_start = 0;
        bool first = true;

        if (pos > e->len)
                pos = e->len;
        for (size_t i = 0; i < pos; i++)
                if (e->text[i] == '\n') {
                        l++;
                        line_start = i + 1;
                        first = false;
                }
        c = first ? e->column : e->continuation_column;
        for (size_t i = line_start; i < pos; i++)
                if (((unsigned char) e->text[i] & 0xc0) != 0x80)
                        c++;
        *line = l;
        *column = c;
}

int expr_compile_error(compiler *c, size_t pos, const char *fmt, ...) {
        char what[400];
        unsigned line, column;
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        expr_position(c->e, pos, &line, &column);
        return spw_error_set(c->err, -EINVAL, "%s:%u:%u: %s%s%s", c->e->filename, line, column,
                             c->context ? c->context : "", c->context ? ": " : "", what);
}

int expr_runtime_error(const expr *e, size_t pos, spw_error *err, const char *fmt, ...) {
        char what[400];
        unsigned line, column;
        va_list ap;

        if (!err)
                return -EINVAL;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        expr_position(e, pos, &line, &column);
        return spw_error_set(err, -EINVAL, "%s:%u:%u: %s", e->filename, line, column, what);
}

size_t expr_utf8_decode(const char *s, size_t n, uint32_t *cp) {
        const unsigned char *u = (const unsigned char *) s;
        uint32_t c, min;
        size_t len;

        if (n == 0)
                return 0;
        if (u[0] < 0x80) {
                *cp = u[0];
                return 1;
        }
        if (u[0] >= 0xc2 && u[0] <= 0xdf) {
                len = 2;
                c = u[0] & 0x1f;
                min = 0x80;
        } else if (u[0] >= 0xe0 && u[0] <= 0xef) {
                len = 3;
                c = u[0] & 0x0f;
                min = 0x800;
        } else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
                len = 4;
                c = u[0] & 0x07;
                min = 0x10000;
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((u[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (u[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                return 0;
        *cp = c;
        return len;
}

size_t expr_utf8_encode(char *out, uint32_t cp) {
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                cp = 0xfffd;
        if (cp < 0x80) {
                out[0] = (char) cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char) (0xc0 | (cp >> 6));
                out[1] = (char) (0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char) (0xe0 | (cp >> 12));
                out[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
                out[2] = (char) (0x80 | (cp & 0x3f));
                return 3;
        }
        out[0] = (char) (0xf0 | (cp >> 18));
        out[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char) (0x80 | (cp & 0x3f));
        return 4;
}

int expr_grow_array(void **p, size_t *cap, size_t n, size_t elem) {
        if (n < *cap)
                return 0;
        size_t ncap = *cap ? *cap * 2 : 16;
        if (ncap > SIZE_MAX / elem)
                return -ENOMEM;
        void *q = realloc(*p, ncap * elem);
        if (!q)
                return -ENOMEM;
        *p = q;
        *cap = ncap;
        return 0;
}

/* ------------------------------------------------------------ public: compile */

int expr_compile(const char *text, size_t len, unsigned env, const expr_origin *where, expr **ret, spw_error *err) {
        _cleanup_(expr_freep) expr *e = NULL;
        compiler c = { .env = env, .err = err };
        node *root = NULL;
        int r;

        e = calloc(1, sizeof *e);
        if (!e)
                return -ENOMEM;
        e->filename = arena_strdup(&e->arena, where && where->filename ? where->filename : "<expr>");
        e->line = where && where->line ? where->line : 1;
        e->column = where && where->column ? where->column : 1;
        e->continuation_column = where && where->continuation_column ? where->continuation_column : 1;
        c.e = e;
        c.context = where ? where->context : NULL;
        if (!e->filename)
                return -ENOMEM;

        /* a NUL-terminated copy, with positions still meaningful for errors */
        e->text = arena_strndup(&e->arena, text ? text : "", text ? MIN(len, (size_t) EXPR_MAX_LENGTH + 1) : 0);
        if (!e->text)
                return -ENOMEM;
        e->len = text ? MIN(len, (size_t) EXPR_MAX_LENGTH + 1) : 0;
        for (size_t i = 0; i < e->len; i++)
                if (e->text[i] == 0) {
                        e->len = i;
                        return expr_compile_error(&c, i, "NUL byte in the expression");
                }
        if (len > EXPR_MAX_LENGTH)
                return expr_compile_error(&c, 0, "expression longer than %d bytes", EXPR_MAX_LENGTH);

        c.c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
        if (c.c_locale == (locale_t) 0)
                return -ENOMEM;

        r = expr_parse(&c, &root);
        if (r >= 0)
                r = expr_check(&c, root);
        if (r >= 0)
                r = expr_emit(&c, root);
        if (r >= 0) {
                e->type = root->type;
                e->stack_size = MAX(c.max_sp, (size_t) 1);
                e->stack = calloc(e->stack_size, sizeof(expr_value));
                if (!e->stack)
                        r = -ENOMEM;
        }
        freelocale(c.c_locale);
        arena_deinit(&c.tmp);
        if (r == -ENOMEM)
                return spw_error_set(err, r, "%s: out of memory compiling an expression", e->filename);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(e);
        return 0;
}

expr *expr_free(expr *e) {
        if (!e)
                return NULL;
        for (size_t i = 0; i < e->n_regexes; i++)
                rx_free(e->regexes[i]);
        free(e->regexes);
        free(e->ranges);
        free(e->code);
        free(e->consts);
        free(e->stack);
        free(e->scratch);
        if (e->c_locale != (locale_t) 0)
                freelocale(e->c_locale);
        arena_deinit(&e->arena);
        free(e);
        return NULL;
}

expr_type expr_result_type(const expr *e) {
        return e->type;
}

const char *expr_text(const expr *e) {
        return e->text;
}

size_t expr_stack_size(const expr *e) {
        return e->stack_size;
}

const char *expr_type_name(expr_type t) {
        static const char *const names[_EXPR_TYPE_MAX] = {
                [EXPR_NIL] = "nil",     [EXPR_BOOL] = "bool", [EXPR_INT] = "int",   [EXPR_FLOAT] = "float",
                [EXPR_STRING] = "string", [EXPR_LIST] = "list", [EXPR_MAP] = "map", [EXPR_OBJECT] = "object",
        };
        return (unsigned) t < _EXPR_TYPE_MAX ? names[t] : "?";
}

int expr_field_path(size_t i, char *buf, size_t size) {
        static const char *const parents[_OBJ_MAX] = {
                [OBJ_SIG] = "sig", [OBJ_SIG_SOURCE] = "sig.Source", [OBJ_ALERT] = "Alert",
                [OBJ_ALERT_SOURCE] = "Alert.Source",
        };
        if (i >= expr_n_fields)
                return -ENOENT;
        snprintf(buf, size, "%s.%s%s", parents[expr_fields[i].obj], expr_fields[i].name, expr_fields[i].method ? "()" : "");
        return expr_fields[i].type;
}

const char *expr_builtin_name(size_t i) {
        return i < expr_n_builtins ? expr_builtins[i].name : NULL;
}
