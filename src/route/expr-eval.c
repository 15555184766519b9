/* SPDX-License-Identifier: MIT */
/*
 * The filter language's evaluator: a stack machine over one signal, plus
 * the signal accessors shared with the router (Alert.* and ban targets read
 * the signal the same way).
 *
 * Invariants it relies on (set up by expr-check.c and expr-compile.c):
 *   - every instruction sees operands of the types it expects; the loop
 *     still switches on value tags where it must and reports an impossible
 *     combination as a run-time error instead of reading the wrong member;
 *   - every string on the stack is NUL-terminated at ptr[len] (literals,
 *     signal strings, scratch strings), so inet_pton() and strtod() read it
 *     in place; literals cannot contain NUL;
 *   - the stack never holds more than e->stack_size values.
 * Evaluation allocates nothing (see expr.h, "Memory and threads").
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "expr-internal.h"
#include "strutil.h"
#include "timeutil.h"

static const char empty_string[1] = "";

/* ------------------------------------------------------------ evaluation */

static inline expr_value make_str(const char *s) {
        if (!s)
                s = empty_string;
        return (expr_value) { .type = EXPR_STRING, .str = { s, strlen(s) } };
}

static inline const char *nonempty(const char *s) {
        return s && *s ? s : NULL;
}

/* The value of label `key`, or NULL. Labels are sorted by key (ABI). */
const char *expr_signal_label(const spw_signal *sig, const char *key) {
        const spw_kv *l = sig->labels;
        size_t lo = 0, hi = sig->n_labels;

        if (!l)
                return NULL;
        if (hi <= 8) {
                for (size_t i = 0; i < hi; i++)
                        if (l[i].key && streq(l[i].key, key))
                                return l[i].value;
                return NULL;
        }
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int cmp = strcmp(strempty(l[mid].key), key);
                if (cmp == 0)
                        return l[mid].value;
                if (cmp < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static bool label_is_range(const spw_signal *sig) {
        const char *scope = expr_signal_label(sig, "scope");
        return scope && strcasecmp(scope, "range") == 0;
}

/* CrowdSec v1's Alert.GetScope(): "Ip" or "Range" from Labels.scope
 * (ip when missing), any other label value as it is. */
static const char *alert_scope(const spw_signal *sig) {
        const char *scope = expr_signal_label(sig, "scope");
        if (!scope || !*scope || strcasecmp(scope, "ip") == 0)
                return "Ip";
        if (strcasecmp(scope, "range") == 0)
                return "Range";
        return scope;
}

const char *expr_signal_source_ip(const spw_signal *sig) {
        const char *s = sig->source ? nonempty(sig->source->ip) : NULL;
        return s ? s : sig->source_ip;
}

const char *expr_signal_source_range(const spw_signal *sig) {
        const char *s = sig->source ? nonempty(sig->source->range) : NULL;
        return s ? s : sig->source_range;
}

const char *expr_signal_source_pick(const spw_signal *sig, const char *nested, const char *flat) {
        const char *s = sig->source ? nonempty(nested) : NULL;
        return s ? s : flat;
}

static int load_field(const expr *e, const insn *in, const spw_signal *sig, expr_value *v, spw_error *err) {
        switch (in->arg) {
        case F_SCENARIO: *v = make_str(sig->scenario); return 0;
        case F_BUCKET_ID: *v = make_str(sig->bucket_id); return 0;
        case F_ALERT_MESSAGE: *v = make_str(sig->alert_message); return 0;
        case F_EVENTS_COUNT: *v = (expr_value) { .type = EXPR_INT, .i = sig->events_count }; return 0;
        case F_START_AT: *v = (expr_value) { .type = EXPR_INT, .i = sig->start_at / 1000000 }; return 0;
        case F_STOP_AT: *v = (expr_value) { .type = EXPR_INT, .i = sig->stop_at / 1000000 }; return 0;
        case F_SOURCE:
                *v = (expr_value) { .type = EXPR_OBJECT, .ref = { (const void *) sig->source, 0 } };
                return 0;
        case F_FLAT_IP: *v = make_str(sig->source_ip); return 0;
        case F_FLAT_RANGE: *v = make_str(sig->source_range); return 0;
        case F_FLAT_ASN: *v = make_str(sig->source_as_number); return 0;
        case F_FLAT_ASORG: *v = make_str(sig->source_as_org); return 0;
        case F_FLAT_COUNTRY: *v = make_str(sig->source_country); return 0;
        case F_FLAT_LAT: *v = (expr_value) { .type = EXPR_FLOAT, .f = sig->source_latitude }; return 0;
        case F_FLAT_LON: *v = (expr_value) { .type = EXPR_FLOAT, .f = sig->source_longitude }; return 0;
        case F_DEST_IP: *v = make_str(sig->dest_ip); return 0;
        case F_CAPACITY: *v = (expr_value) { .type = EXPR_INT, .i = sig->capacity }; return 0;
        case F_LEAK_SPEED: *v = (expr_value) { .type = EXPR_INT, .i = sig->leak_speed_ns }; return 0;
        case F_WHITELISTED: *v = (expr_value) { .type = EXPR_BOOL, .b = sig->whitelisted }; return 0;
        case F_SIMULATION: *v = (expr_value) { .type = EXPR_BOOL, .b = sig->simulation }; return 0;
        case F_REPROCESS: *v = (expr_value) { .type = EXPR_BOOL, .b = sig->reprocess }; return 0;
        case F_MAPKEY: *v = make_str(sig->map_key); return 0;
        case F_LABELS:
                *v = (expr_value) { .type = EXPR_MAP, .ref = { sig->labels, sig->labels ? sig->n_labels : 0 } };
                return 0;
        case F_SRC_IP:
        case F_SRC_RANGE:
        case F_SRC_ASN:
        case F_SRC_ASORG:
        case F_SRC_COUNTRY:
        case F_SRC_LAT:
        case F_SRC_LON:
                if (!sig->source)
                        return expr_runtime_error(e, in->pos, err, "sig.Source is nil (this signal has no \"source\" "
                                                  "object), so its fields cannot be read");
                switch (in->arg) {
                case F_SRC_IP: *v = make_str(sig->source->ip); return 0;
                case F_SRC_RANGE: *v = make_str(sig->source->range); return 0;
                case F_SRC_ASN: *v = make_str(sig->source->as_number); return 0;
                case F_SRC_ASORG: *v = make_str(sig->source->as_org); return 0;
                case F_SRC_COUNTRY: *v = make_str(sig->source->country); return 0;
                case F_SRC_LAT: *v = (expr_value) { .type = EXPR_FLOAT, .f = sig->source->latitude }; return 0;
                default: *v = (expr_value) { .type = EXPR_FLOAT, .f = sig->source->longitude }; return 0;
                }
        case F_A_REMEDIATION: {
                const char *rem = expr_signal_label(sig, "remediation");
                *v = (expr_value) { .type = EXPR_BOOL, .b = rem && streq(rem, "true") };
                return 0;
        }
        case F_A_SOURCE:
                *v = (expr_value) { .type = EXPR_OBJECT, .ref = { sig, 0 } };
                return 0;
        case F_A_SCOPE: *v = make_str(alert_scope(sig)); return 0;
        case F_A_VALUE: *v = make_str(label_is_range(sig) ? expr_signal_source_range(sig) : expr_signal_source_ip(sig)); return 0;
        case F_A_SRC_IP: *v = make_str(expr_signal_source_ip(sig)); return 0;
        case F_A_SRC_RANGE: *v = make_str(expr_signal_source_range(sig)); return 0;
        case F_A_SRC_CN: *v = make_str(expr_signal_source_pick(sig, sig->source ? sig->source->country : NULL, sig->source_country)); return 0;
        case F_A_SRC_ASN: *v = make_str(expr_signal_source_pick(sig, sig->source ? sig->source->as_number : NULL, sig->source_as_number)); return 0;
        case F_A_SRC_ASNAME: *v = make_str(expr_signal_source_pick(sig, sig->source ? sig->source->as_org : NULL, sig->source_as_org)); return 0;
        case F_A_SRC_LAT:
                *v = (expr_value) { .type = EXPR_FLOAT,
                                    .f = sig->source ? sig->source->latitude : sig->source_latitude };
                return 0;
        case F_A_SRC_LON:
                *v = (expr_value) { .type = EXPR_FLOAT,
                                    .f = sig->source ? sig->source->longitude : sig->source_longitude };
                return 0;
        }
        return expr_runtime_error(e, in->pos, err, "internal error: unknown field %" PRIu32, in->arg);
}

static inline double as_double(const expr_value *v) {
        return v->type == EXPR_INT ? (double) v->i : v->f;
}

static int str_compare(const expr_value *a, const expr_value *b) {
        int r = memcmp(a->str.ptr, b->str.ptr, MIN(a->str.len, b->str.len));
        if (r != 0)
                return r;
        return a->str.len < b->str.len ? -1 : a->str.len > b->str.len;
}

bool expr_value_equal(const expr_value *a, const expr_value *b) {
        if (a->type == EXPR_NIL || b->type == EXPR_NIL) {
                const expr_value *o = a->type == EXPR_NIL ? b : a;
                if (o->type == EXPR_NIL)
                        return true;
                return (o->type == EXPR_MAP || o->type == EXPR_OBJECT) && !o->ref.ptr;
        }
        if (a->type == EXPR_INT && b->type == EXPR_INT)
                return a->i == b->i;
        if ((a->type == EXPR_INT || a->type == EXPR_FLOAT) && (b->type == EXPR_INT || b->type == EXPR_FLOAT))
                return as_double(a) == as_double(b);
        if (a->type != b->type)
                return false;
        switch (a->type) {
        case EXPR_BOOL: return a->b == b->b;
        case EXPR_STRING: return a->str.len == b->str.len && memcmp(a->str.ptr, b->str.ptr, a->str.len) == 0;
        case EXPR_MAP:
        case EXPR_OBJECT: return a->ref.ptr == b->ref.ptr;
        default: return false;
        }
}

/* Characters of a string as Go's utf8.RuneCountInString counts them (expr
 * 1.17's len()): a byte that does not start a valid sequence counts as one. */
static size_t utf8_count(const char *s, size_t n) {
        size_t count = 0;
        uint32_t cp;

        for (size_t i = 0; i < n; count++) {
                if ((unsigned char) s[i] < 0x80) {
                        i++;
                        continue;
                }
                size_t l = expr_utf8_decode(s + i, n - i, &cp);
                i += l ? l : 1;
        }
        return count;
}

static char *scratch_take(expr *e, size_t len) {
        if (len >= EXPR_SCRATCH_SIZE - e->scratch_used)
                return NULL;
        char *p = e->scratch + e->scratch_used;
        e->scratch_used += len + 1;
        return p;
}

static bool ip_in_range(const char *ip, const ip_range *range) {
        ip_range addr;
        if (ip_parse_addr(ip, &addr) < 0)
                return false;
        /* as Go's net.IPNet.Contains: an IPv4 address is never inside an IPv6 network */
        if (addr.is_v4 != range->is_v4)
                return false;
        return ip_addr_in(addr.start, range->start, range->end);
}

/* GetDecisionsCount() and GetDecisionsSinceCount(): ask the caller's index. */
static int history_count(const expr *e, const insn *in, const expr_context *ctx, const expr_value *value,
                         const expr_value *window, int64_t *ret, spw_error *err) {
        const char *name = window ? "GetDecisionsSinceCount" : "GetDecisionsCount";
        int64_t since = 0;
        uint64_t count = 0;
        int r;

        if (!ctx || !ctx->history)
                return expr_runtime_error(e, in->pos, err, "%s(): no ban history is available here", name);
        if (window) {
                usec_t d;
                if (parse_duration(window->str.ptr, &d) < 0 || d < 0)
                        return expr_runtime_error(e, in->pos, err, "%s(): \"%.64s\" is not a duration (Go syntax "
                                                  "such as 24h)", name, window->str.ptr);
                since = ctx->now > INT64_MIN + d ? ctx->now - d : INT64_MIN;
                if (since <= 0)
                        since = 1; /* 0 means "all of them" to the callback */
        }
        r = ctx->history(ctx->history_userdata, value->str.ptr, since, &count);
        if (r < 0)
                return expr_runtime_error(e, in->pos, err, "%s(): the ban history could not be read: %s", name,
                                          strerror(-r));
        *ret = count > (uint64_t) INT64_MAX ? INT64_MAX : (int64_t) count;
        return 0;
}

int expr_eval(expr *e, const spw_signal *sig, expr_value *ret, spw_error *err) {
        return expr_eval_in(e, sig, NULL, ret, err);
}

int expr_eval_in(expr *e, const spw_signal *sig, const expr_context *ctx, expr_value *ret, spw_error *err) {
        expr_value *st = e->stack;
        size_t sp = 0;
        int r;

        assert_se(sig);
        e->scratch_used = 0;
        for (size_t pc = 0; pc < e->n_code; pc++) {
                const insn *in = &e->code[pc];
                /* the operands, for the instructions that have them (the
                 * compiler's stack accounting guarantees sp >= their number) */
                expr_value *b = st + sp - 1, *a = b - 1;

                switch ((opcode) in->op) {
                case OP_CONST:
                        st[sp++] = e->consts[in->arg];
                        break;
                case OP_FIELD:
                        r = load_field(e, in, sig, &st[sp], err);
                        if (r < 0)
                                return r;
                        sp++;
                        break;
                case OP_LABEL:
                        st[sp++] = make_str(expr_signal_label(sig, e->consts[in->arg].str.ptr));
                        break;
                case OP_LABEL_DYN:
                        *b = make_str(expr_signal_label(sig, b->str.ptr));
                        break;
                case OP_HAS_LABEL:
                        *b = (expr_value) { .type = EXPR_BOOL, .b = expr_signal_label(sig, b->str.ptr) != NULL };
                        break;
                case OP_NOT:
                        b->b = !b->b;
                        break;
                case OP_NEG:
                        if (b->type == EXPR_INT)
                                b->i = (int64_t) (0 - (uint64_t) b->i);
                        else
                                b->f = -b->f;
                        break;
                case OP_ADD:
                case OP_SUB:
                case OP_MUL:
                        if (a->type == EXPR_INT && b->type == EXPR_INT) {
                                uint64_t x = (uint64_t) a->i, y = (uint64_t) b->i; /* wraps, as Go */
                                a->i = (int64_t) (in->op == OP_ADD ? x + y : in->op == OP_SUB ? x - y : x * y);
                        } else {
                                double x = as_double(a), y = as_double(b);
                                *a = (expr_value) { .type = EXPR_FLOAT,
                                                    .f = in->op == OP_ADD ? x + y : in->op == OP_SUB ? x - y : x * y };
                        }
                        sp--;
                        break;
                case OP_DIV:
                        *a = (expr_value) { .type = EXPR_FLOAT, .f = as_double(a) / as_double(b) };
                        sp--;
                        break;
                case OP_POW:
                        *a = (expr_value) { .type = EXPR_FLOAT, .f = pow(as_double(a), as_double(b)) };
                        sp--;
                        break;
                case OP_MOD:
                        if (b->i == 0)
                                return expr_runtime_error(e, in->pos, err, "integer division by zero in %%");
                        a->i = b->i == -1 ? 0 : a->i % b->i;
                        sp--;
                        break;
                case OP_CONCAT: {
                        char *p = scratch_take(e, a->str.len + b->str.len);
                        if (!p)
                                return expr_runtime_error(e, in->pos, err, "+: the joined string (%zu bytes) does not fit "
                                                          "the %d-byte scratch buffer", a->str.len + b->str.len,
                                                          EXPR_SCRATCH_SIZE);
                        memcpy(p, a->str.ptr, a->str.len);
                        memcpy(p + a->str.len, b->str.ptr, b->str.len);
                        p[a->str.len + b->str.len] = 0;
                        a->str.len += b->str.len;
                        a->str.ptr = p;
                        sp--;
                        break;
                }
                case OP_EQ:
                case OP_NE: {
                        bool eq = expr_value_equal(a, b);
                        *a = (expr_value) { .type = EXPR_BOOL, .b = in->op == OP_EQ ? eq : !eq };
                        sp--;
                        break;
                }
                case OP_LT:
                case OP_LE:
                case OP_GT:
                case OP_GE: {
                        int cmp;
                        if (a->type == EXPR_STRING && b->type == EXPR_STRING)
                                cmp = str_compare(a, b);
                        else if (a->type == EXPR_INT && b->type == EXPR_INT)
                                cmp = a->i < b->i ? -1 : a->i > b->i;
                        else if ((a->type == EXPR_INT || a->type == EXPR_FLOAT) &&
                                 (b->type == EXPR_INT || b->type == EXPR_FLOAT)) {
                                double x = as_double(a), y = as_double(b);
                                if (isnan(x) || isnan(y)) { /* every comparison with NaN is false */
                                        *a = (expr_value) { .type = EXPR_BOOL, .b = false };
                                        sp--;
                                        break;
                                }
                                cmp = x < y ? -1 : x > y;
                        } else
                                return expr_runtime_error(e, in->pos, err, "cannot compare %s with %s",
                                                          expr_type_name(a->type), expr_type_name(b->type));
                        bool res = in->op == OP_LT ? cmp < 0 : in->op == OP_LE ? cmp <= 0 : in->op == OP_GT ? cmp > 0 : cmp >= 0;
                        *a = (expr_value) { .type = EXPR_BOOL, .b = res };
                        sp--;
                        break;
                }
                case OP_IN: {
                        size_t n = in->arg;
                        expr_value *x = &st[sp - n - 1];
                        bool found = false;
                        for (size_t i = 0; i < n && !found; i++)
                                found = expr_value_equal(x, &st[sp - n + i]);
                        *x = (expr_value) { .type = EXPR_BOOL, .b = found };
                        sp -= n;
                        break;
                }
                case OP_MATCH: {
                        int m = rx_search(e->regexes[in->arg], b->str.ptr, b->str.len);
                        if (m < 0 && rx_budget_exhausted())
                                return expr_runtime_error(e, in->pos, err, "matches: the signal's routing budget "
                                                          "(%" PRIu64 " regex steps over all profiles) is spent",
                                                          (uint64_t) ROUTE_MAX_WORK);
                        if (m < 0)
                                return expr_runtime_error(e, in->pos, err, "matches: the subject (%zu bytes) needs more "
                                                          "than %" PRIu64 " steps with this pattern", b->str.len,
                                                          (uint64_t) RX_MAX_WORK);
                        *b = (expr_value) { .type = EXPR_BOOL, .b = m > 0 };
                        break;
                }
                case OP_CONTAINS:
                        *a = (expr_value) { .type = EXPR_BOOL,
                                            .b = b->str.len == 0 || memmem(a->str.ptr, a->str.len, b->str.ptr, b->str.len) };
                        sp--;
                        break;
                case OP_STARTSWITH:
                        *a = (expr_value) { .type = EXPR_BOOL,
                                            .b = a->str.len >= b->str.len && memcmp(a->str.ptr, b->str.ptr, b->str.len) == 0 };
                        sp--;
                        break;
                case OP_ENDSWITH:
                        *a = (expr_value) { .type = EXPR_BOOL,
                                            .b = a->str.len >= b->str.len &&
                                                 memcmp(a->str.ptr + a->str.len - b->str.len, b->str.ptr, b->str.len) == 0 };
                        sp--;
                        break;
                case OP_LEN:
                        if (b->type == EXPR_STRING)
                                *b = (expr_value) { .type = EXPR_INT, .i = (int64_t) utf8_count(b->str.ptr, b->str.len) };
                        else if (b->type == EXPR_MAP)
                                *b = (expr_value) { .type = EXPR_INT, .i = (int64_t) b->ref.n };
                        else
                                return expr_runtime_error(e, in->pos, err, "len() of %s", expr_type_name(b->type));
                        break;
                case OP_UPPER:
                case OP_LOWER: {
                        char *p = scratch_take(e, b->str.len);
                        if (!p)
                                return expr_runtime_error(e, in->pos, err, "%s(): the string (%zu bytes) does not fit the "
                                                          "%d-byte scratch buffer", in->op == OP_UPPER ? "Upper" : "Lower",
                                                          b->str.len, EXPR_SCRATCH_SIZE);
                        for (size_t i = 0; i < b->str.len; i++) {
                                char ch = b->str.ptr[i];
                                if (in->op == OP_UPPER && ch >= 'a' && ch <= 'z')
                                        ch = (char) (ch - 'a' + 'A');
                                else if (in->op == OP_LOWER && ch >= 'A' && ch <= 'Z')
                                        ch = (char) (ch - 'A' + 'a');
                                p[i] = ch;
                        }
                        p[b->str.len] = 0;
                        b->str.ptr = p;
                        break;
                }
                case OP_ATOF: {
                        char *end;
                        double f = 0;
                        if (b->str.len > 0) {
                                if (isspace((unsigned char) b->str.ptr[0]))
                                        end = (char *) b->str.ptr;
                                else
                                        f = strtod_l(b->str.ptr, &end, e->c_locale);
                                if (end == b->str.ptr || end != b->str.ptr + b->str.len)
                                        return expr_runtime_error(e, in->pos, err, "Atof(): \"%.64s\" is not a number",
                                                                  b->str.ptr);
                        }
                        *b = (expr_value) { .type = EXPR_FLOAT, .f = f };
                        break;
                }
                case OP_IPINRANGE: {
                        ip_range range;
                        bool in_range = strchr(b->str.ptr, '/') && ip_parse_cidr(b->str.ptr, false, &range) >= 0 &&
                                        ip_in_range(a->str.ptr, &range);
                        *a = (expr_value) { .type = EXPR_BOOL, .b = in_range };
                        sp--;
                        break;
                }
                case OP_SPRINTF: {
                        expr_value *args = &st[sp - in->arg];
                        size_t len;
                        r = expr_sprintf(args, in->arg, e->c_locale, e->scratch + e->scratch_used,
                                         EXPR_SCRATCH_SIZE - e->scratch_used, &len);
                        if (r < 0)
                                return expr_runtime_error(e, in->pos, err, "Sprintf(): the result does not fit the "
                                                          "%d-byte scratch buffer", EXPR_SCRATCH_SIZE);
                        *args = (expr_value) { .type = EXPR_STRING, .str = { e->scratch + e->scratch_used, len } };
                        e->scratch_used += len + 1;
                        sp -= in->arg - 1;
                        break;
                }
                case OP_DECISIONS:
                case OP_DECISIONS_SINCE: {
                        expr_value *value = in->op == OP_DECISIONS ? b : a;
                        int64_t count = 0;
                        r = history_count(e, in, ctx, value, in->op == OP_DECISIONS ? NULL : b, &count, err);
                        if (r < 0)
                                return r;
                        *value = (expr_value) { .type = EXPR_INT, .i = count };
                        if (in->op == OP_DECISIONS_SINCE)
                                sp--;
                        break;
                }
                case OP_IPINRANGE_C:
                        *b = (expr_value) { .type = EXPR_BOOL, .b = ip_in_range(b->str.ptr, &e->ranges[in->arg]) };
                        break;
                case OP_LIST:
                        st[sp] = (expr_value) { .type = EXPR_LIST, .list = { &st[sp - in->arg], in->arg } };
                        sp++;
                        break;
                case OP_JUMP_FALSE:
                case OP_JUMP_TRUE:
                        if (b->b == (in->op == OP_JUMP_TRUE))
                                pc = in->arg - 1; /* keep the value: it is the result */
                        else
                                sp--;
                        break;
                default:
                        return expr_runtime_error(e, in->pos, err, "internal error: bad instruction %u", in->op);
                }
        }
        assert_se(sp >= 1 && sp <= e->stack_size);
        *ret = st[sp - 1];
        return 0;
}

int expr_eval_bool(expr *e, const spw_signal *sig, spw_error *err) {
        expr_value v;
        int r;

        if (e->type != EXPR_BOOL)
                return expr_runtime_error(e, 0, err, "the expression is %s, not a boolean", expr_type_name(e->type));
        r = expr_eval(e, sig, &v, err);
        if (r < 0)
                return r;
        return v.b ? 1 : 0;
}

char *expr_value_format(const expr_value *v, char *buf, size_t size) {
        size_t l = 0;

        if (size == 0)
                return buf;
        buf[0] = 0;
        switch (v->type) {
        case EXPR_NIL: snprintf(buf, size, "nil"); break;
        case EXPR_BOOL: snprintf(buf, size, "%s", v->b ? "true" : "false"); break;
        case EXPR_INT: snprintf(buf, size, "%" PRId64, v->i); break;
        case EXPR_FLOAT: snprintf(buf, size, "%g", v->f); break;
        case EXPR_STRING: snprintf(buf, size, "\"%s\"", v->str.ptr); break;
        case EXPR_MAP: snprintf(buf, size, v->ref.ptr ? "map[%zu labels]" : "map[nil]", v->ref.n); break;
        case EXPR_OBJECT: snprintf(buf, size, v->ref.ptr ? "object" : "nil"); break;
        case EXPR_LIST:
                buf[l++] = '[';
                for (size_t i = 0; i < v->list.n && l + 4 < size; i++) {
                        if (i) {
                                buf[l++] = ',';
                                buf[l++] = ' ';
                        }
                        expr_value_format(&v->list.items[i], buf + l, size - l - 1);
                        l += strlen(buf + l);
                }
                buf[MIN(l, size - 2)] = ']';
                buf[MIN(l + 1, size - 1)] = 0;
                break;
        default: snprintf(buf, size, "?"); break;
        }
        return buf;
}
