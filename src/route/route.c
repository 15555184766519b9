/* SPDX-License-Identifier: MIT */
/*
 * profiles.yaml -> a list of compiled profiles; one signal -> the matching
 * profiles, the ban applications they create and the backends that receive
 * the signal.
 *
 * Loading walks the YAML tree (yamltree.h keeps file:line:column for every
 * node) one document at a time; a document is one profile. The profile's
 * keys decide its grammar (CrowdSec v0.3 or v1) and the first profile fixes
 * the grammar of the whole file. Both grammars are normalised into one
 * struct route_profile: filters (OR-ed; none means "every signal"),
 * decisions (measure type, duration, scope, simulated, optional fixed
 * target), a backend mask, and the walk controls (break on success or on
 * failure). A v0.3 `remediation` becomes one decision whose scope is read
 * from the signal's Labels.scope; its `outputs` become the mask. A v1
 * profile's decisions go to every backend flagged ROUTE_BACKEND_STORES_BANS
 * (CrowdSec v1 sends decisions to its local API, i.e. its ban database) and
 * its `notifications` name further backends.
 *
 * Routing walks the profiles in file order. Invariants:
 *   - res->bans is allocated once, at the first ban, with room for
 *     r->max_bans (the sum of decisions over all profiles), so it never moves
 *     and each match's bans are one contiguous slice of it. A profile that
 *     is skipped after creating bans gives its slots back.
 *   - Nothing is allocated unless a profile matches or a warning is made.
 *   - Bans never point into the router (measure types are copied into the
 *     arena), so a reload may free the router while routed signals wait in
 *     queues. Strings that point into the signal share its lifetime.
 *   - A run-time error in a filter, or a Labels.scope that cannot be banned,
 *     is a LOG_WARNING route_warning and skips that profile for that signal;
 *     a signal without a usable source is a LOG_DEBUG one and gets no ban.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "expr.h"
#include "ipaddr.h"
#include "route.h"
#include "rx.h"
#include "strutil.h"
#include "yamltree.h"

#define SCOPE_FROM_LABELS (-1)
/* CrowdSec's duration for a decision without one (csprofiles.defaultDuration) */
#define DEFAULT_DECISION_DURATION (4 * USEC_PER_HOUR)
/* at most one duration_expr fallback notice per profile in this time */
#define DURATION_EXPR_NOTICE_INTERVAL (60 * USEC_PER_SEC)
#define PROFILES_MAX_FILE (16u << 20)

typedef struct route_decision {
        char *type;     /* measure type: ban, slow, captcha, or a v1 decision type */
        char *sim_type; /* "simulation:" + type */
        usec_t duration;
        int scope;      /* SPW_SCOPE_IP, SPW_SCOPE_RANGE, SPW_SCOPE_OTHER or SCOPE_FROM_LABELS */
        char *scope_name; /* SPW_SCOPE_OTHER: "Country", "AS", "username"... */
        bool simulated; /* v1 `simulated: true` */
        bool has_value; /* v1 `value`: a fixed target */
        ip_range value;
        char *value_text;
} route_decision;

/* Mutable per-profile state of routing (the router is const while
 * routing; routing is one thread at a time per router, see route.h). */
typedef struct duration_expr_state {
        usec_t last_notice; /* when the last fallback notice was given */
        uint64_t suppressed; /* fallbacks since then that gave no notice */
} duration_expr_state;

typedef struct route_profile {
        char *name;
        unsigned line, column;
        expr **filters;
        const char **filter_texts;
        size_t n_filters;
        route_decision *decisions;
        size_t n_decisions;
        expr *duration_expr;  /* v1 duration_expr, or NULL */
        duration_expr_state *duration_state;
        uint64_t backends;
        bool api;
        bool debug;
        bool break_on_success;
        bool break_on_failure;
} route_profile;

struct spw_router {
        arena arena; /* names, texts, arrays */
        char *filename;
        route_grammar grammar;
        route_profile *profiles;
        size_t n_profiles, cap_profiles;
        size_t max_bans;
        size_t max_warnings;
};

/* ------------------------------------------------------------ grammar tables */

static const char *const v03_keys[] = { "profile", "filter", "remediation", "api", "outputs" };
static const char *const v1_keys[] = {
        "name", "filters", "decisions", "notifications", "on_success", "on_failure", "debug", "duration_expr",
};
static const char *const remediation_keys[] = { "ban", "slow", "captcha", "duration", "apply" };
static const char *const decision_keys[] = { "type", "duration", "scope", "value", "simulated" };
static const char *const walk_values[] = { "break", "continue" };

static const char *grammar_name(route_grammar g) {
        return g == ROUTE_GRAMMAR_V1 ? "v1" : "v0.3";
}

static bool in_table(const char *s, const char *const *table, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(s, table[i]))
                        return true;
        return false;
}

/* ------------------------------------------------------------ loader */

typedef struct loader {
        const char *filename;
        const char *buf;
        size_t len;
        size_t *line_starts; /* byte offset of each line, built on demand */
        size_t n_lines;
        const char *const *backends;
        const unsigned *flags;
        size_t n_backends;
        uint64_t stores_mask;
        unsigned history_env;      /* EXPR_ENV_HISTORY when a backend feeds the ban-history index */
        spw_error *err;
        spw_router *r;
        bool have_grammar;
        const ynode *grammar_key; /* the key that fixed the file's grammar */
} loader;

static int fail_at(loader *l, unsigned line, unsigned column, const char *fmt, ...) _printf_(4, 5);
static int fail_at(loader *l, unsigned line, unsigned column, const char *fmt, ...) {
        char what[440];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        return spw_error_set(l->err, -EINVAL, "%s:%u:%u: %s", l->filename, line, column, what);
}

#define fail(l, node, ...) fail_at((l), (node)->line, (node)->column, __VA_ARGS__)

static int oom(loader *l) {
        return spw_error_set(l->err, -ENOMEM, "%s: out of memory", l->filename);
}

/* "; did you mean 'x'?" or " (expected one of: a, b, c)" */
static void suggestion(const char *word, const char *const *cand, size_t n, char *buf, size_t size) {
        const char *best = str_closest(word, cand, n);
        size_t len;

        if (best) {
                snprintf(buf, size, "; did you mean '%s'?", best);
                return;
        }
        len = (size_t) snprintf(buf, size, " (expected one of: ");
        for (size_t i = 0; i < n && len < size; i++)
                len += (size_t) snprintf(buf + len, size - len, "%s%s", i ? ", " : "", cand[i]);
        if (len < size)
                snprintf(buf + len, size - len, ")");
}

/* Length of the YAML line break at buf[i] (libyaml's rules: \n, \r\n, a
 * lone \r, and U+0085, U+2028, U+2029), or 0. */
static size_t line_break(const char *buf, size_t len, size_t i) {
        const unsigned char *b = (const unsigned char *) buf;
        if (b[i] == '\n')
                return 1;
        if (b[i] == '\r')
                return i + 1 < len && b[i + 1] == '\n' ? 2 : 1;
        if (b[i] == 0xc2 && i + 1 < len && b[i + 1] == 0x85)
                return 2;
        if (b[i] == 0xe2 && i + 2 < len && b[i + 1] == 0x80 && (b[i + 2] == 0xa8 || b[i + 2] == 0xa9))
                return 3;
        return 0;
}

/* Byte offset of (line, column) in the buffer, as libyaml counts them
 * (columns in characters); false when it is not inside the buffer. */
static bool offset_of(loader *l, unsigned line, unsigned column, size_t *ret) {
        if (!l->line_starts) {
                size_t n = 1;
                for (size_t i = 0; i < l->len; i++) {
                        size_t b = line_break(l->buf, l->len, i);
                        if (b) {
                                n++;
                                i += b - 1;
                        }
                }
                l->line_starts = malloc(n * sizeof(size_t));
                if (!l->line_starts)
                        return false;
                l->n_lines = 0;
                l->line_starts[l->n_lines++] = 0;
                for (size_t i = 0; i < l->len; i++) {
                        size_t b = line_break(l->buf, l->len, i);
                        if (b) {
                                i += b - 1;
                                l->line_starts[l->n_lines++] = i + 1;
                        }
                }
        }
        if (line == 0 || line > l->n_lines)
                return false;
        size_t off = l->line_starts[line - 1];
        for (unsigned c = 1; c < column; c++) {
                if (off >= l->len || line_break(l->buf, l->len, off))
                        return false;
                off++; /* one character: its first byte and its continuation bytes */
                while (off < l->len && ((unsigned char) l->buf[off] & 0xc0) == 0x80)
                        off++;
        }
        if (off >= l->len)
                return false;
        *ret = off;
        return true;
}

/* Where the text of a scalar starts, so expression errors point into it:
 * after the quote of a quoted scalar, on the next line of a block scalar. */
static void scalar_origin(loader *l, const ynode *v, expr_origin *o) {
        size_t off;

        o->filename = l->filename;
        o->line = v->line;
        o->column = v->column;
        o->continuation_column = 1;
        if (v->plain || !offset_of(l, v->line, v->column, &off))
                return;
        if (l->buf[off] == '"' || l->buf[off] == '\'') {
                o->column++;
                return;
        }
        if (l->buf[off] == '|' || l->buf[off] == '>') {
                /* the content starts on the next line, at the indentation of
                 * its first non-empty line */
                unsigned indent = 0;
                for (unsigned line = v->line + 1; offset_of(l, line, 1, &off); line++) {
                        unsigned spaces = 0;
                        while (off + spaces < l->len && l->buf[off + spaces] == ' ')
                                spaces++;
                        if (off + spaces < l->len && !line_break(l->buf, l->len, off + spaces)) {
                                indent = spaces;
                                break;
                        }
                }
                o->line = v->line + 1;
                o->column = o->continuation_column = indent + 1;
        }
}

static int get_string(loader *l, const ynode *v, const char *key, bool allow_null, const char **ret) {
        if (v->type != YNODE_SCALAR)
                return fail(l, v, "%s: expected a string, got %s", key, ynode_type_name(v->type));
        if (ynode_is_null(v)) {
                if (!allow_null)
                        return fail(l, v, "%s: expected a string, got nothing", key);
                *ret = NULL;
                return 0;
        }
        *ret = v->value;
        return 0;
}

static int get_bool(loader *l, const ynode *v, const char *key, bool *ret) {
        if (v->type != YNODE_SCALAR)
                return fail(l, v, "%s: expected true or false, got %s", key, ynode_type_name(v->type));
        if (ynode_bool(v, ret) < 0)
                return fail(l, v, "%s: expected true or false, got '%s'", key, v->value);
        return 0;
}

/* v0.3 `store`: a YAML boolean or a string that Go's strconv.ParseBool takes. */
static int get_store(loader *l, const ynode *v, const char *key, bool *ret) {
        static const char *const yes[] = { "1", "t", "T" }, *const no[] = { "0", "f", "F" };
        if (v->type == YNODE_SCALAR && ynode_bool(v, ret) >= 0)
                return 0;
        if (v->type == YNODE_SCALAR) {
                if (in_table(v->value, yes, ELEMENTSOF(yes))) {
                        *ret = true;
                        return 0;
                }
                if (in_table(v->value, no, ELEMENTSOF(no))) {
                        *ret = false;
                        return 0;
                }
        }
        return fail(l, v, "%s: expected true or false, got %s%s%s", key, v->type == YNODE_SCALAR ? "'" : "",
                    v->type == YNODE_SCALAR ? v->value : ynode_type_name(v->type), v->type == YNODE_SCALAR ? "'" : "");
}

static int get_duration(loader *l, const ynode *v, const char *key, usec_t *ret) {
        const char *s = NULL;
        int r = get_string(l, v, key, false, &s);
        if (r < 0)
                return r;
        if (parse_duration(s, ret) < 0)
                return fail(l, v, "%s: invalid duration '%s' (expected Go syntax such as 4h, 90m, 1h30m, or 2d, at most 2562047h)", key, s);
        if (*ret <= 0)
                return fail(l, v, "%s: the duration must be positive, got '%s'", key, s);
        return 0;
}

static int find_backend(loader *l, const ynode *v, const char *key, uint64_t *bit) {
        const char *name = NULL;
        char loaded[300], hint[120] = "";
        size_t len = 0;
        int r = get_string(l, v, key, false, &name);

        if (r < 0)
                return r;
        for (size_t i = 0; i < l->n_backends; i++)
                if (l->backends[i] && streq(l->backends[i], name)) {
                        *bit = UINT64_C(1) << i;
                        return 0;
                }
        loaded[0] = 0;
        for (size_t i = 0; i < l->n_backends && len < sizeof loaded; i++)
                len += (size_t) snprintf(loaded + len, sizeof loaded - len, "%s%s", i ? ", " : "",
                                         strna(l->backends[i]));
        const char *best = str_closest(name, l->backends, l->n_backends);
        if (best)
                snprintf(hint, sizeof hint, "; did you mean '%s'?", best);
        return fail(l, v, "%s: unknown backend '%s' (%s%s)%s", key, name, l->n_backends ? "loaded: " : "no backend is loaded",
                    loaded, hint);
}

static int add_filter(loader *l, route_profile *p, const ynode *v, unsigned env, const char *context) {
        expr_origin o = { .context = context };
        expr *e = NULL;
        int r;

        scalar_origin(l, v, &o);
        r = expr_compile(v->value, v->len, env, &o, &e, l->err);
        if (r < 0)
                return r;
        if (expr_result_type(e) != EXPR_BOOL) {
                expr_type t = expr_result_type(e);
                expr_free(e);
                return fail_at(l, o.line, o.column, "%s: a filter must be a boolean expression (true or false), "
                               "this one is %s %s", context, t == EXPR_INT ? "an" : "a", expr_type_name(t));
        }
        p->filters[p->n_filters] = e;
        p->filter_texts[p->n_filters] = expr_text(e);
        p->n_filters++;
        return 0;
}

static int alloc_filters(loader *l, route_profile *p, size_t n) {
        p->filters = arena_alloc(&l->r->arena, MAX(n, (size_t) 1) * sizeof(expr *));
        p->filter_texts = arena_alloc(&l->r->arena, MAX(n, (size_t) 1) * sizeof(char *));
        return p->filters && p->filter_texts ? 0 : oom(l);
}

static int add_decision(loader *l, route_profile *p, const char *type, route_decision **ret) {
        route_decision *d = &p->decisions[p->n_decisions++];
        d->type = arena_strdup(&l->r->arena, type);
        d->sim_type = arena_printf(&l->r->arena, "simulation:%s", type);
        d->scope = SCOPE_FROM_LABELS;
        if (!d->type || !d->sim_type)
                return oom(l);
        *ret = d;
        return 0;
}

/* ------------------------------------------------------------ v0.3 profiles */

static int load_remediation(loader *l, route_profile *p, const ynode *v) {
        bool ban = false, slow = false, captcha = false, apply = false;
        const ynode *duration = NULL;
        const char *type;
        usec_t d = 0;
        int r;

        if (ynode_is_null(v))
                return 0;
        if (v->type != YNODE_MAPPING)
                return fail(l, v, "remediation: expected a mapping such as {ban: true, duration: 4h}, got %s",
                            ynode_type_name(v->type));
        for (size_t i = 0; i < v->n_pairs; i++) {
                const ynode *k = v->pairs[i].key, *val = v->pairs[i].value;
                char key[64];
                snprintf(key, sizeof key, "remediation.%s", k->value);
                if (streq(k->value, "ban"))
                        r = get_bool(l, val, key, &ban);
                else if (streq(k->value, "slow"))
                        r = get_bool(l, val, key, &slow);
                else if (streq(k->value, "captcha"))
                        r = get_bool(l, val, key, &captcha);
                else if (streq(k->value, "apply"))
                        r = get_bool(l, val, key, &apply); /* accepted, no effect (as in CrowdSec v0.3) */
                else if (streq(k->value, "duration")) {
                        duration = val;
                        r = 0;
                } else {
                        char hint[160];
                        suggestion(k->value, remediation_keys, ELEMENTSOF(remediation_keys), hint, sizeof hint);
                        return fail(l, k, "unknown key 'remediation.%s'%s", k->value, hint);
                }
                if (r < 0)
                        return r;
        }
        if (duration && !ynode_is_null(duration)) {
                r = get_duration(l, duration, "remediation.duration", &d);
                if (r < 0)
                        return r;
        }
        /* the measure type is the first true of ban, slow, captcha */
        type = ban ? "ban" : slow ? "slow" : captcha ? "captcha" : NULL;
        if (!type)
                return 0;
        if (d == 0)
                return fail(l, v, "remediation.duration is required when ban, slow or captcha is true "
                            "(Go syntax, e.g. duration: 4h)");
        route_decision *dec = NULL;
        p->decisions = arena_alloc(&l->r->arena, sizeof(route_decision));
        if (!p->decisions)
                return oom(l);
        r = add_decision(l, p, type, &dec);
        if (r < 0)
                return r;
        dec->duration = d;
        return 0;
}

static int load_outputs(loader *l, route_profile *p, const ynode *v) {
        int r;

        if (v->type != YNODE_SEQUENCE)
                return fail(l, v, "outputs: expected a list such as [{plugin: database}], got %s",
                            ynode_is_null(v) ? "nothing" : ynode_type_name(v->type));
        for (size_t i = 0; i < v->n_items; i++) {
                const ynode *item = v->items[i], *plugin, *store;
                char key[64];
                uint64_t bit;
                bool stored = true;

                if (item->type != YNODE_MAPPING)
                        return fail(l, item, "outputs[%zu]: expected a mapping such as {plugin: database}, got %s", i,
                                    ynode_type_name(item->type));
                plugin = ynode_get(item, "plugin");
                if (!plugin)
                        return fail(l, item, "outputs[%zu]: 'plugin' is required (the name of a backend)", i);
                snprintf(key, sizeof key, "outputs[%zu].plugin", i);
                r = find_backend(l, plugin, key, &bit);
                if (r < 0)
                        return r;
                store = ynode_get(item, "store");
                if (store) {
                        snprintf(key, sizeof key, "outputs[%zu].store", i);
                        r = get_store(l, store, key, &stored);
                        if (r < 0)
                                return r;
                }
                /* other keys of an output entry are ignored, as in CrowdSec */
                if (stored)
                        p->backends |= bit;
        }
        return 0;
}

static int load_v03(loader *l, route_profile *p, const ynode *root) {
        bool have_outputs = false;
        int r = 0;

        for (size_t i = 0; i < root->n_pairs; i++) {
                const ynode *k = root->pairs[i].key, *v = root->pairs[i].value;
                const char *s = NULL;

                if (streq(k->value, "profile")) {
                        r = get_string(l, v, "profile", false, &s);
                        if (r >= 0 && !(p->name = arena_strdup(&l->r->arena, s)))
                                r = oom(l);
                } else if (streq(k->value, "filter")) {
                        if (v->type != YNODE_SCALAR)
                                return fail(l, v, "filter: expected an expression (a string), got %s",
                                            ynode_type_name(v->type));
                        r = alloc_filters(l, p, 1);
                        /* an empty filter matches every signal */
                        if (r >= 0 && !ynode_is_null(v) && v->value[strspn(v->value, " \t\r\n")])
                                r = add_filter(l, p, v, EXPR_ENV_SIG, "filter");
                } else if (streq(k->value, "remediation"))
                        r = load_remediation(l, p, v);
                else if (streq(k->value, "api"))
                        r = ynode_is_null(v) ? 0 : get_bool(l, v, "api", &p->api);
                else if (streq(k->value, "outputs")) {
                        have_outputs = true;
                        r = load_outputs(l, p, v);
                }
                if (r < 0)
                        return r;
        }
        if (!have_outputs)
                return fail(l, root, "profile '%s': 'outputs' is required, e.g. outputs: [{plugin: database}] "
                            "(use store: false to match without storing)", p->name);
        return 0;
}

/* ------------------------------------------------------------ v1 profiles */

static int load_decision(loader *l, route_profile *p, const ynode *item, size_t i) {
        const ynode *type = NULL, *duration = NULL, *scope = NULL, *value = NULL;
        bool simulated = false;
        route_decision *d = NULL;
        char key[64];
        const char *s = NULL;
        int r;

        if (item->type != YNODE_MAPPING)
                return fail(l, item, "decisions[%zu]: expected a mapping such as {type: ban, duration: 4h}, got %s", i,
                            ynode_type_name(item->type));
        for (size_t j = 0; j < item->n_pairs; j++) {
                const ynode *k = item->pairs[j].key, *v = item->pairs[j].value;
                if (streq(k->value, "type"))
                        type = v;
                else if (streq(k->value, "duration"))
                        duration = v;
                else if (streq(k->value, "scope"))
                        scope = v;
                else if (streq(k->value, "value"))
                        value = v;
                else if (streq(k->value, "simulated")) {
                        snprintf(key, sizeof key, "decisions[%zu].simulated", i);
                        r = get_bool(l, v, key, &simulated);
                        if (r < 0)
                                return r;
                } else {
                        char hint[160];
                        suggestion(k->value, decision_keys, ELEMENTSOF(decision_keys), hint, sizeof hint);
                        return fail(l, k, "unknown key 'decisions[%zu].%s'%s", i, k->value, hint);
                }
        }
        if (!type)
                return fail(l, item, "decisions[%zu]: 'type' is required (ban, captcha, ...)", i);
        snprintf(key, sizeof key, "decisions[%zu].type", i);
        r = get_string(l, type, key, false, &s);
        if (r < 0)
                return r;
        if (!*s || strchr(s, ' '))
                return fail(l, type, "%s: expected a decision type such as ban or captcha, got '%s'", key, s);
        r = add_decision(l, p, s, &d);
        if (r < 0)
                return r;
        d->simulated = simulated;
        /* no duration: CrowdSec's default (it logs a warning at start) */
        d->duration = DEFAULT_DECISION_DURATION;
        if (duration && !ynode_is_null(duration)) {
                snprintf(key, sizeof key, "decisions[%zu].duration", i);
                r = get_duration(l, duration, key, &d->duration);
                if (r < 0)
                        return r;
        }
        if (scope) {
                snprintf(key, sizeof key, "decisions[%zu].scope", i);
                r = get_string(l, scope, key, true, &s);
                if (r < 0)
                        return r;
                if (s && strcasecmp(s, "ip") == 0)
                        d->scope = SPW_SCOPE_IP;
                else if (s && strcasecmp(s, "range") == 0)
                        d->scope = SPW_SCOPE_RANGE;
                else if (s && *s) {
                        const char *canon = scope_canonical(s);
                        if (!canon)
                                return fail(l, scope, "%s: '%s' is not a scope name (letters, digits, '_', '-' and "
                                            "'.', at most %u: Ip, Range, Country, AS, username...)", key, s,
                                            SCOPE_NAME_MAX);
                        d->scope = SPW_SCOPE_OTHER;
                        d->scope_name = arena_strdup(&l->r->arena, canon);
                        if (!d->scope_name)
                                return oom(l);
                }
        }
        if (value && d->scope == SPW_SCOPE_OTHER) {
                spw_error verr;
                snprintf(key, sizeof key, "decisions[%zu].value", i);
                r = get_string(l, value, key, false, &s);
                if (r < 0)
                        return r;
                if (scope_value_check(s, &verr) < 0)
                        return fail(l, value, "%s: %s", key, verr.msg);
                d->has_value = true;
                d->value_text = arena_strdup(&l->r->arena, s);
                if (!d->value_text)
                        return oom(l);
        } else if (value) {
                char text[IP_TEXT_MAX + 8];
                snprintf(key, sizeof key, "decisions[%zu].value", i);
                r = get_string(l, value, key, false, &s);
                if (r < 0)
                        return r;
                if (ip_parse_cidr(s, false, &d->value) < 0)
                        return fail(l, value, "%s: expected an IP address or a CIDR range, got '%s'", key, s);
                if (d->scope == SCOPE_FROM_LABELS)
                        d->scope = strchr(s, '/') ? SPW_SCOPE_RANGE : SPW_SCOPE_IP;
                if (d->scope == SPW_SCOPE_IP && strchr(s, '/'))
                        return fail(l, value, "%s: '%s' is a range but the scope is Ip", key, s);
                ip_format(text, sizeof text, d->value.start);
                if (d->scope == SPW_SCOPE_RANGE)
                        snprintf(text + strlen(text), sizeof text - strlen(text), "/%u", d->value.prefix);
                d->has_value = true;
                d->value_text = arena_strdup(&l->r->arena, text);
                if (!d->value_text)
                        return oom(l);
        }
        return 0;
}

static int load_walk(loader *l, const ynode *v, const char *key, bool *brk) {
        const char *s = NULL;
        int r = get_string(l, v, key, true, &s);
        if (r < 0)
                return r;
        if (!s || streq(s, "continue")) {
                *brk = false;
                return 0;
        }
        if (streq(s, "break")) {
                *brk = true;
                return 0;
        }
        char hint[120];
        suggestion(s, walk_values, ELEMENTSOF(walk_values), hint, sizeof hint);
        return fail(l, v, "%s: expected break or continue, got '%s'%s", key, s, hint);
}

/* duration_expr: an expression over Alert whose result, a duration text
 * such as "8h", replaces each decision's duration (CrowdSec runs it for
 * every decision of the profile; it is the same for all of them). */
static int load_duration_expr(loader *l, route_profile *p, const ynode *v) {
        expr_origin o = { .context = "duration_expr" };
        expr *e = NULL;
        int r;

        if (v->type != YNODE_SCALAR)
                return fail(l, v, "duration_expr: expected an expression (a string) such as "
                            "Sprintf('%%dh', 4), got %s", ynode_type_name(v->type));
        scalar_origin(l, v, &o);
        r = expr_compile(v->value, v->len, EXPR_ENV_ALERT | l->history_env, &o, &e, l->err);
        if (r < 0)
                return r;
        if (expr_result_type(e) != EXPR_STRING) {
                expr_type t = expr_result_type(e);
                expr_free(e);
                return fail_at(l, o.line, o.column, "duration_expr: the expression must give a duration text such "
                               "as \"8h\" (e.g. Sprintf('%%dh', ...)), this one is %s %s", t == EXPR_INT ? "an" : "a",
                               expr_type_name(t));
        }
        p->duration_expr = e;
        p->duration_state = arena_alloc(&l->r->arena, sizeof(duration_expr_state));
        if (!p->duration_state)
                return oom(l);
        *p->duration_state = (duration_expr_state) { 0 };
        return 0;
}

static int load_v1(loader *l, route_profile *p, const ynode *root) {
        const ynode *filters = NULL;
        uint64_t notify = 0;
        int r = 0;

        for (size_t i = 0; i < root->n_pairs; i++) {
                const ynode *k = root->pairs[i].key, *v = root->pairs[i].value;
                const char *s = NULL;

                if (streq(k->value, "name")) {
                        r = get_string(l, v, "name", false, &s);
                        if (r >= 0 && !(p->name = arena_strdup(&l->r->arena, s)))
                                r = oom(l);
                } else if (streq(k->value, "filters")) {
                        filters = v;
                        if (v->type != YNODE_SEQUENCE || v->n_items == 0)
                                return fail(l, v, "filters: expected a list of expressions such as "
                                            "[Alert.Remediation == true], got %s",
                                            ynode_is_null(v) || v->type == YNODE_SEQUENCE ? "nothing"
                                                                                           : ynode_type_name(v->type));
                        r = alloc_filters(l, p, v->n_items);
                        for (size_t j = 0; r >= 0 && j < v->n_items; j++) {
                                char ctx[32];
                                snprintf(ctx, sizeof ctx, "filters[%zu]", j);
                                if (v->items[j]->type != YNODE_SCALAR || ynode_is_null(v->items[j]))
                                        return fail(l, v->items[j], "%s: expected an expression (a string), got %s",
                                                    ctx, ynode_is_null(v->items[j]) ? "nothing"
                                                                                    : ynode_type_name(v->items[j]->type));
                                r = add_filter(l, p, v->items[j], EXPR_ENV_ALERT | l->history_env, ctx);
                        }
                } else if (streq(k->value, "decisions")) {
                        if (ynode_is_null(v))
                                continue;
                        if (v->type != YNODE_SEQUENCE)
                                return fail(l, v, "decisions: expected a list such as [{type: ban, duration: 4h}], "
                                            "got %s", ynode_type_name(v->type));
                        p->decisions = arena_alloc(&l->r->arena, MAX(v->n_items, (size_t) 1) * sizeof(route_decision));
                        if (!p->decisions)
                                return oom(l);
                        for (size_t j = 0; r >= 0 && j < v->n_items; j++)
                                r = load_decision(l, p, v->items[j], j);
                } else if (streq(k->value, "notifications")) {
                        if (ynode_is_null(v))
                                continue;
                        if (v->type != YNODE_SEQUENCE)
                                return fail(l, v, "notifications: expected a list of backend names, got %s",
                                            ynode_type_name(v->type));
                        for (size_t j = 0; r >= 0 && j < v->n_items; j++) {
                                char key[48];
                                uint64_t bit;
                                snprintf(key, sizeof key, "notifications[%zu]", j);
                                r = find_backend(l, v->items[j], key, &bit);
                                notify |= r >= 0 ? bit : 0;
                        }
                } else if (streq(k->value, "on_success"))
                        r = load_walk(l, v, "on_success", &p->break_on_success);
                else if (streq(k->value, "on_failure"))
                        r = load_walk(l, v, "on_failure", &p->break_on_failure);
                else if (streq(k->value, "debug"))
                        r = ynode_is_null(v) ? 0 : get_bool(l, v, "debug", &p->debug);
                else if (streq(k->value, "duration_expr"))
                        r = ynode_is_null(v) ? 0 : load_duration_expr(l, p, v);
                if (r < 0)
                        return r;
        }
        if (!filters)
                return fail(l, root, "profile '%s': 'filters' is required (a v1 profile without filters never "
                            "applies, in CrowdSec too)", p->name);
        /* decisions go to the ban databases, as CrowdSec v1 sends them to its local API */
        p->backends = notify | (p->n_decisions > 0 ? l->stores_mask : 0);
        return 0;
}

/* ------------------------------------------------------------ documents */

static int classify_keys(loader *l, const ynode *root, route_grammar *ret, const ynode **first_key) {
        const ynode *first = NULL;
        route_grammar g = ROUTE_GRAMMAR_V03;

        /* the first key of either grammar decides the profile's grammar */
        for (size_t i = 0; i < root->n_pairs && !first; i++) {
                const ynode *k = root->pairs[i].key;
                if (in_table(k->value, v03_keys, ELEMENTSOF(v03_keys))) {
                        first = k;
                        g = ROUTE_GRAMMAR_V03;
                } else if (in_table(k->value, v1_keys, ELEMENTSOF(v1_keys))) {
                        first = k;
                        g = ROUTE_GRAMMAR_V1;
                }
        }
        for (size_t i = 0; i < root->n_pairs; i++) {
                const ynode *k = root->pairs[i].key;
                bool is_v03 = in_table(k->value, v03_keys, ELEMENTSOF(v03_keys));
                bool is_v1 = in_table(k->value, v1_keys, ELEMENTSOF(v1_keys));
                char hint[200];

                if (first && ((g == ROUTE_GRAMMAR_V03 && is_v1) || (g == ROUTE_GRAMMAR_V1 && is_v03)))
                        return fail(l, k, "'%s' is a CrowdSec %s key, but this profile uses the %s grammar ('%s' at "
                                    "line %u, column %u); a profile, and a file, use one grammar", k->value,
                                    grammar_name(is_v1 ? ROUTE_GRAMMAR_V1 : ROUTE_GRAMMAR_V03), grammar_name(g),
                                    first->value, first->line, first->column);
                if (is_v03 || is_v1)
                        continue;
                if (first)
                        suggestion(k->value, g == ROUTE_GRAMMAR_V03 ? v03_keys : v1_keys,
                                   g == ROUTE_GRAMMAR_V03 ? ELEMENTSOF(v03_keys) : ELEMENTSOF(v1_keys), hint, sizeof hint);
                else if (str_closest(k->value, v03_keys, ELEMENTSOF(v03_keys)))
                        suggestion(k->value, v03_keys, ELEMENTSOF(v03_keys), hint, sizeof hint);
                else if (str_closest(k->value, v1_keys, ELEMENTSOF(v1_keys)))
                        suggestion(k->value, v1_keys, ELEMENTSOF(v1_keys), hint, sizeof hint);
                else
                        snprintf(hint, sizeof hint, " (a profile has the CrowdSec v0.3 keys profile, filter, "
                                 "remediation, api, outputs, or the v1 keys name, filters, decisions, notifications, "
                                 "on_success, on_failure, debug)");
                return fail(l, k, "unknown key '%s'%s%s%s%s", k->value, first ? " in a " : "",
                            first ? grammar_name(g) : "", first ? " profile" : "", hint);
        }
        *ret = g;
        *first_key = first;
        return 0;
}

static int load_document(loader *l, const ynode *root, size_t index) {
        spw_router *r = l->r;
        const ynode *first = NULL;
        route_grammar g = ROUTE_GRAMMAR_V03;
        route_profile *p;
        int k;

        if (!root || ynode_is_null(root))
                return 0; /* an empty document, e.g. between two --- or after a trailing one */
        if (root->type != YNODE_MAPPING)
                return fail(l, root, "expected a profile (a mapping with keys such as name and filters), got %s",
                            ynode_type_name(root->type));
        if (root->n_pairs == 0)
                return fail(l, root, "empty profile");
        k = classify_keys(l, root, &g, &first);
        if (k < 0)
                return k;
        if (!l->have_grammar) {
                l->have_grammar = true;
                l->grammar_key = first;
                r->grammar = g;
        } else if (g != r->grammar)
                return fail(l, first, "this profile uses the CrowdSec %s grammar ('%s'), but the file's first profile "
                            "uses the %s grammar ('%s' at line %u, column %u); a file uses one grammar",
                            grammar_name(g), first->value, grammar_name(r->grammar), l->grammar_key->value,
                            l->grammar_key->line, l->grammar_key->column);

        if (r->n_profiles == r->cap_profiles) {
                size_t ncap = r->cap_profiles ? r->cap_profiles * 2 : 8;
                route_profile *np = realloc(r->profiles, ncap * sizeof *np);
                if (!np)
                        return oom(l);
                r->profiles = np;
                r->cap_profiles = ncap;
        }
        p = &r->profiles[r->n_profiles++];
        *p = (route_profile) { .line = root->line, .column = root->column };
        p->name = arena_printf(&r->arena, "profile-%zu", index + 1); /* replaced by profile: or name: */
        if (!p->name)
                return oom(l);
        k = g == ROUTE_GRAMMAR_V03 ? load_v03(l, p, root) : load_v1(l, p, root);
        if (k < 0)
                return k;
        for (size_t i = 0; i + 1 < r->n_profiles; i++)
                if (streq(r->profiles[i].name, p->name))
                        return fail(l, root, "duplicate profile name '%s' (also at line %u)", p->name,
                                    r->profiles[i].line);
        r->max_bans += p->n_decisions;
        r->max_warnings += (p->debug ? p->n_filters : 0) + 1 + p->n_decisions + (p->duration_expr ? 2 : 0);
        return 0;
}

int router_load_buffer(const char *filename, const char *buf, size_t len, const char *const *backends,
                       const unsigned *backend_flags, size_t n_backends, spw_router **ret, spw_error *err) {
        _cleanup_(router_freep) spw_router *r = NULL;
        _cleanup_(ydocs_freep) ydocs *docs = NULL;
        loader l = {
                .filename = filename ? filename : "<profiles>",
                .buf = buf,
                .len = len,
                .backends = backends,
                .flags = backend_flags,
                .n_backends = n_backends,
                .err = err,
        };
        int k;

        if (n_backends > ROUTE_MAX_BACKENDS)
                return spw_error_set(err, -E2BIG, "%s: %zu backends are loaded, routing supports at most %d",
                                     l.filename, n_backends, ROUTE_MAX_BACKENDS);
        for (size_t i = 0; i < n_backends; i++) {
                if (backend_flags && (backend_flags[i] & ROUTE_BACKEND_STORES_BANS))
                        l.stores_mask |= UINT64_C(1) << i;
                if (backend_flags && (backend_flags[i] & ROUTE_BACKEND_HISTORY))
                        l.history_env = EXPR_ENV_HISTORY;
        }

        k = ydocs_parse(l.filename, buf, len, &docs, err);
        if (k < 0)
                return k;
        r = calloc(1, sizeof *r);
        if (!r)
                return oom(&l);
        r->filename = arena_strdup(&r->arena, l.filename);
        if (!r->filename)
                return oom(&l);
        l.r = r;
        for (size_t i = 0; i < docs->n_docs; i++) {
                k = load_document(&l, docs->docs[i], i);
                if (k < 0)
                        break;
        }
        free(l.line_starts);
        if (k < 0)
                return k;
        if (r->n_profiles == 0)
                return spw_error_set(err, -EINVAL, "%s:1:1: no profile in the file (expected at least one, "
                                     "e.g. name: ..., filters: [...], decisions: [...])", l.filename);
        *ret = TAKE_PTR(r);
        return 0;
}

int router_load_file(const char *path, const char *const *backends, const unsigned *backend_flags,
                     size_t n_backends, spw_router **ret, spw_error *err) {
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = read_full_file(path, PROFILES_MAX_FILE, &buf, &len, err);
        if (r < 0)
                return r;
        return router_load_buffer(path, buf, len, backends, backend_flags, n_backends, ret, err);
}

spw_router *router_free(spw_router *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_profiles; i++) {
                for (size_t j = 0; j < r->profiles[i].n_filters; j++)
                        expr_free(r->profiles[i].filters[j]);
                expr_free(r->profiles[i].duration_expr);
        }
        free(r->profiles);
        arena_deinit(&r->arena);
        free(r);
        return NULL;
}

size_t router_n_profiles(const spw_router *r) {
        return r->n_profiles;
}

route_grammar router_grammar(const spw_router *r) {
        return r->grammar;
}

int router_profile_info(const spw_router *r, size_t i, route_profile_info *ret) {
        const route_profile *p;

        if (i >= r->n_profiles)
                return -ENOENT;
        p = &r->profiles[i];
        *ret = (route_profile_info) {
                .name = p->name,
                .filename = r->filename,
                .line = p->line,
                .column = p->column,
                .grammar = r->grammar,
                .n_filters = p->n_filters,
                .filters = p->filter_texts,
                .n_decisions = p->n_decisions,
                .backends = p->backends,
                .api = p->api,
                .debug = p->debug,
                .break_on_success = p->break_on_success,
                .break_on_failure = p->break_on_failure,
                .duration_expr = p->duration_expr ? expr_text(p->duration_expr) : NULL,
        };
        return 0;
}

/* ------------------------------------------------------------ routing */

/* A ban target of the signal, resolved once per scope and signal. */
typedef struct target {
        bool resolved;
        bool usable;
        ip_range range;
        const char *text; /* normalised, in the arena */
        const char *why;  /* when not usable: why, in the arena */
} target;

typedef struct route_state {
        const spw_router *r;
        const spw_signal *sig;
        usec_t now;
        arena *a;
        route_result *res;
        expr_context ctx;  /* the ban-history callback for GetDecisions*() */
        target targets[2]; /* SPW_SCOPE_IP, SPW_SCOPE_RANGE */
} route_state;

static int add_warning(route_state *st, const route_profile *p, int level, const char *fmt, ...) _printf_(4, 5);
static int add_warning(route_state *st, const route_profile *p, int level, const char *fmt, ...) {
        route_result *res = st->res;
        va_list ap, aq;
        char *msg;
        int n;

        if (!res->warnings) {
                res->warnings = arena_alloc(st->a, MAX(st->r->max_warnings, (size_t) 1) * sizeof(route_warning));
                if (!res->warnings)
                        return -ENOMEM;
        }
        if (res->n_warnings >= st->r->max_warnings)
                return 0; /* cannot happen: max_warnings bounds what one walk can add */
        va_start(ap, fmt);
        va_copy(aq, ap);
        n = vsnprintf(NULL, 0, fmt, aq);
        va_end(aq);
        msg = n >= 0 ? arena_alloc(st->a, (size_t) n + 1) : NULL;
        if (!msg) {
                va_end(ap);
                return -ENOMEM;
        }
        vsnprintf(msg, (size_t) n + 1, fmt, ap);
        va_end(ap);
        res->warnings[res->n_warnings++] = (route_warning) { .profile = p->name, .level = level, .message = msg };
        return 0;
}

static const char *filter_label(const route_state *st, size_t i, char *buf, size_t size) {
        if (st->r->grammar == ROUTE_GRAMMAR_V03)
                return "filter";
        snprintf(buf, size, "filters[%zu]", i);
        return buf;
}

/* 1 matched, 0 not, -EINVAL: a filter failed (warning made), -ENOMEM */
static int profile_matches(route_state *st, const route_profile *p) {
        char label[32];
        int r;

        if (p->n_filters == 0)
                return 1;
        for (size_t i = 0; i < p->n_filters; i++) {
                spw_error err;
                expr_value v;
                int m = expr_eval_in(p->filters[i], st->sig, &st->ctx, &v, &err);
                if (m >= 0)
                        m = v.b ? 1 : 0; /* a filter's type is boolean (checked at load) */

                if (m < 0) {
                        r = add_warning(st, p, LOG_WARNING, "%s at %s", filter_label(st, i, label, sizeof label),
                                        err.msg);
                        return r < 0 ? r : -EINVAL;
                }
                if (p->debug) {
                        r = add_warning(st, p, LOG_DEBUG, "%s is %s: %s", filter_label(st, i, label, sizeof label),
                                        m ? "true" : "false", expr_text(p->filters[i]));
                        if (r < 0)
                                return r;
                }
                if (m)
                        return 1;
        }
        return 0;
}

/* Dotted quad of an IPv4-mapped address; inet_ntop() goes through sprintf()
 * and cost more than the rest of routing together. Returns the length. */
static size_t format_v4(char *buf, const uint8_t addr[16]) {
        size_t n = 0;
        for (int i = 12; i < 16; i++) {
                unsigned v = addr[i];
                if (i > 12)
                        buf[n++] = '.';
                if (v >= 100)
                        buf[n++] = (char) ('0' + v / 100);
                if (v >= 10)
                        buf[n++] = (char) ('0' + v / 10 % 10);
                buf[n++] = (char) ('0' + v % 10);
        }
        buf[n] = 0;
        return n;
}

static int resolve_target(route_state *st, int scope, target **ret) {
        target *t = &st->targets[scope];
        const char *s;
        char text[IP_TEXT_MAX + 8];
        size_t n;

        *ret = t;
        if (t->resolved)
                return 0;
        t->resolved = true;
        if (scope == SPW_SCOPE_IP) {
                s = expr_signal_source_ip(st->sig);
                if (!s || !*s) {
                        t->why = "the signal has no source IP (source.Ip and Source_ip are empty): no ban";
                        return 0;
                }
                if (ip_parse_addr(s, &t->range) < 0) {
                        t->why = arena_printf(st->a, "the source IP '%.64s' is not an IP address: no ban", s);
                        return t->why ? 0 : -ENOMEM;
                }
                t->usable = true;
                if (t->range.is_v4 && !strchr(s, ':')) {
                        /* inet_pton() takes only canonical dotted quads (no
                         * leading zeros): the text is already normalised */
                        t->text = s;
                        return 0;
                }
                if (t->range.is_v4)
                        format_v4(text, t->range.start);
                else
                        ip_format(text, sizeof text, t->range.start);
        } else {
                s = expr_signal_source_range(st->sig);
                if (!s || !*s) {
                        t->why = "the signal has no source range (source.Range and Source_range are empty): no ban";
                        return 0;
                }
                if (ip_parse_cidr(s, false, &t->range) < 0) {
                        t->why = arena_printf(st->a, "the source range '%.64s' is not a CIDR range: no ban", s);
                        return t->why ? 0 : -ENOMEM;
                }
                t->usable = true;
                if (t->range.is_v4)
                        n = format_v4(text, t->range.start);
                else {
                        ip_format(text, sizeof text, t->range.start);
                        n = strlen(text);
                }
                snprintf(text + n, sizeof text - n, "/%u", t->range.prefix);
        }
        t->text = arena_strdup(st->a, text);
        return t->text ? 0 : -ENOMEM;
}

/* "64500" or "AS64500" -> 64500; anything else (or an overflow) -> 0 */
static int64_t parse_as_number(const char *s) {
        int64_t v = 0;

        if (!s)
                return 0;
        if ((s[0] == 'A' || s[0] == 'a') && (s[1] == 'S' || s[1] == 's'))
                s += 2;
        if (!*s)
                return 0;
        for (; *s; s++) {
                int d = *s - '0';
                if (d < 0 || d > 9 || v > (INT64_MAX - d) / 10)
                        return 0;
                v = v * 10 + d;
        }
        return v;
}

static usec_t add_saturating(usec_t a, usec_t b) {
        usec_t r;
        if (__builtin_add_overflow(a, b, &r))
                return b > 0 ? INT64_MAX : INT64_MIN;
        return r;
}

/* The profile's duration_expr: 0 and *ret, or 1 when the decisions keep
 * their own duration (a notice is given, at most one per profile and
 * minute, as CrowdSec logs a warning), or -ENOMEM. */
static int eval_duration_expr(route_state *st, const route_profile *p, usec_t *ret) {
        duration_expr_state *ds = p->duration_state;
        spw_error err;
        expr_value v;
        char why[sizeof err.msg + 64];
        usec_t d;
        int r;

        r = expr_eval_in(p->duration_expr, st->sig, &st->ctx, &v, &err);
        if (r >= 0) {
                if (parse_duration(v.str.ptr, &d) < 0)
                        snprintf(why, sizeof why, "duration_expr gave \"%.64s\", not a duration (Go syntax such as "
                                 "8h)", v.str.ptr);
                else if (d <= 0)
                        snprintf(why, sizeof why, "duration_expr gave \"%.64s\", not a positive duration",
                                 v.str.ptr);
                else {
                        *ret = d;
                        return 0;
                }
        } else
                snprintf(why, sizeof why, "duration_expr at %s", err.msg);
        if (ds->last_notice && st->now >= ds->last_notice && st->now - ds->last_notice < DURATION_EXPR_NOTICE_INTERVAL) {
                ds->suppressed++;
                return 1;
        }
        if (ds->suppressed > 0)
                r = add_warning(st, p, LOG_NOTICE, "%s; the decisions keep their duration (and %" PRIu64 " more "
                                "times since the last notice)", why, ds->suppressed);
        else
                r = add_warning(st, p, LOG_NOTICE, "%s; the decisions keep their duration", why);
        ds->last_notice = st->now ? st->now : 1;
        ds->suppressed = 0;
        return r < 0 ? r : 1;
}

/* The target of a decision on another scope, from the signal: Country and
 * AS from its source, else the CrowdSec alert's source value when the
 * alert has that scope, else Labels.value. NULL when it has none. */
static const char *signal_scope_value(const spw_signal *sig, const char *scope_name) {
        const char *as, *v;

        if (streq(scope_name, "Country"))
                return expr_signal_source_pick(sig, sig->source ? sig->source->country : NULL, sig->source_country);
        if (streq(scope_name, "AS"))
                return expr_signal_source_pick(sig, sig->source ? sig->source->as_number : NULL, sig->source_as_number);
        as = expr_signal_label(sig, "crowdsec_scope");
        v = expr_signal_label(sig, "crowdsec_value");
        if (as && v && strcasecmp(as, scope_name) == 0)
                return v;
        return expr_signal_label(sig, "value");
}

/* 0 done (maybe without bans), 1 the profile must be skipped (warning made), -ENOMEM */
static int profile_bans(route_state *st, const route_profile *p) {
        const spw_signal *sig = st->sig;
        route_result *res = st->res;
        bool told[2] = { false, false };
        usec_t expr_duration = 0;
        bool have_expr_duration = false;
        int r;

        if (p->duration_expr && p->n_decisions > 0) {
                r = eval_duration_expr(st, p, &expr_duration);
                if (r < 0)
                        return r;
                have_expr_duration = r == 0;
        }

        for (size_t i = 0; i < p->n_decisions; i++) {
                const route_decision *d = &p->decisions[i];
                int scope = d->scope;
                static const ip_range no_address;
                const ip_range *range;
                const char *text, *scope_name = NULL, *value = NULL;
                spw_ban *b;

                if (scope == SCOPE_FROM_LABELS) {
                        /* v0.3's Labels.scope, or the CrowdSec alert's own scope */
                        const char *ls = expr_signal_label(sig, "scope");
                        if (!ls || !*ls)
                                ls = expr_signal_label(sig, "crowdsec_scope");
                        if (!ls || !*ls || strcasecmp(ls, "ip") == 0)
                                scope = SPW_SCOPE_IP;
                        else if (strcasecmp(ls, "range") == 0)
                                scope = SPW_SCOPE_RANGE;
                        else if ((scope_name = scope_canonical(ls)))
                                scope = SPW_SCOPE_OTHER;
                        else {
                                r = add_warning(st, p, LOG_WARNING, "Labels.scope '%.64s' is not a scope name", ls);
                                return r < 0 ? r : 1;
                        }
                } else if (scope == SPW_SCOPE_OTHER)
                        scope_name = d->scope_name;

                if (scope == SPW_SCOPE_OTHER) {
                        spw_error verr;
                        value = d->has_value ? d->value_text : signal_scope_value(sig, scope_name);
                        if (!value || scope_value_check(value, &verr) < 0) {
                                /* one note per decision: each may name its own scope */
                                r = add_warning(st, p, LOG_DEBUG, "no %s to ban in the signal%s%s", scope_name,
                                                value ? ": " : "", value ? verr.msg : "");
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        range = &no_address;
                        text = arena_printf(st->a, "%s:%s", scope_name, value);
                        if (!text)
                                return -ENOMEM;
                } else if (d->has_value) {
                        range = &d->value;
                        text = arena_strdup(st->a, d->value_text);
                        if (!text)
                                return -ENOMEM;
                } else {
                        target *t;
                        r = resolve_target(st, scope, &t);
                        if (r < 0)
                                return r;
                        if (!t->usable) {
                                if (!told[scope]) {
                                        told[scope] = true;
                                        r = add_warning(st, p, LOG_DEBUG, "%s", t->why);
                                        if (r < 0)
                                                return r;
                                }
                                continue;
                        }
                        range = &t->range;
                        text = t->text;
                }

                if (!res->bans) {
                        res->bans = arena_alloc(st->a, st->r->max_bans * sizeof(spw_ban));
                        if (!res->bans)
                                return -ENOMEM;
                }
                b = &res->bans[res->n_bans];
                *b = (spw_ban) {
                        .measure_source = "local",
                        .measure_type = arena_strdup(st->a, sig->simulation || d->simulated ? d->sim_type : d->type),
                        .until = add_saturating(sig->stop_at ? sig->stop_at : st->now,
                                                have_expr_duration ? expr_duration : d->duration),
                        .scope = scope,
                        .scope_name = scope_name ? scope_name : scope == SPW_SCOPE_RANGE ? "Range" : "Ip",
                        .value = value ? value : text,
                        .target_cn = expr_signal_source_pick(sig, sig->source ? sig->source->country : NULL, sig->source_country),
                        .target_as = parse_as_number(expr_signal_source_pick(sig, sig->source ? sig->source->as_number : NULL,
                                                                             sig->source_as_number)),
                        .target_as_name = expr_signal_source_pick(sig, sig->source ? sig->source->as_org : NULL, sig->source_as_org),
                        .ip_text = text,
                        .reason = strempty(sig->scenario),
                        .scenario = strempty(sig->scenario),
                };
                if (!b->measure_type)
                        return -ENOMEM;
                memcpy(b->start_ip, range->start, 16);
                memcpy(b->end_ip, range->end, 16);
                res->n_bans++;
        }
        return 0;
}

int router_route(const spw_router *r, const spw_signal *sig, usec_t now, arena *a, route_result *res) {
        return router_route_history(r, sig, now, NULL, NULL, a, res);
}

int router_route_history(const spw_router *r, const spw_signal *sig, usec_t now, expr_history_fn history,
                         void *history_userdata, arena *a, route_result *res) {
        route_state st = { .r = r, .sig = sig, .now = now, .a = a, .res = res,
                           .ctx = { .now = now, .history = history, .history_userdata = history_userdata } };
        int k;

        *res = (route_result) { 0 };
        /* one budget for all the profiles' regexes: 30 profiles with heavy
         * patterns must not cost a second per signal */
        rx_budget_begin(ROUTE_MAX_WORK);
        for (size_t i = 0; i < r->n_profiles; i++) {
                const route_profile *p = &r->profiles[i];
                size_t first_ban = res->n_bans;

                k = profile_matches(&st, p);
                if (k == -ENOMEM)
                        goto fail;
                if (k < 0)
                        continue; /* run-time error: warned, skipped */
                if (k == 0) {
                        if (p->break_on_failure) {
                                res->stopped_by = p->name;
                                break;
                        }
                        continue;
                }
                k = profile_bans(&st, p);
                if (k < 0)
                        goto fail;
                if (k > 0) {
                        res->n_bans = first_ban;
                        continue;
                }
                if (!res->matches) {
                        res->matches = arena_alloc(a, r->n_profiles * sizeof(route_match));
                        if (!res->matches)
                                goto fail;
                }
                res->matches[res->n_matches++] = (route_match) {
                        .profile = p->name,
                        .line = p->line,
                        .bans = res->n_bans > first_ban ? res->bans + first_ban : NULL,
                        .n_bans = res->n_bans - first_ban,
                        .backends = p->backends,
                        .index = i,
                };
                res->backends |= p->backends;
                if (p->break_on_success) {
                        res->stopped_by = p->name;
                        break;
                }
        }
        rx_budget_end();
        return 0;
fail:
        rx_budget_end();
        *res = (route_result) { 0 };
        return -ENOMEM;
}
