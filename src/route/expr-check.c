/* SPDX-License-Identifier: MIT */
/*
 * The filter language's type checker: resolves every name (sig.Labels.x,
 * Alert.GetScope(), helpers) against the tables in expr.c, gives every node
 * its static type and decides how expr-compile.c will produce its value.
 * After it succeeds, every instruction will see operands of the types it
 * expects, so type errors are load errors, at the operator's position.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "expr-internal.h"
#include "strutil.h"
#include "timeutil.h"

/* ------------------------------------------------------------ type checker */

static bool is_number(expr_type t) {
        return t == EXPR_INT || t == EXPR_FLOAT;
}

static bool is_scalar(expr_type t) {
        return t == EXPR_NIL || t == EXPR_BOOL || t == EXPR_INT || t == EXPR_FLOAT || t == EXPR_STRING;
}

/* Can == compare these? nil with anything, numbers with numbers, else the same scalar type. */
static bool comparable(expr_type a, expr_type b) {
        if (a == EXPR_NIL || b == EXPR_NIL)
                return a != EXPR_LIST && b != EXPR_LIST;
        if (is_number(a) && is_number(b))
                return true;
        return a == b && (a == EXPR_BOOL || a == EXPR_STRING);
}

static const field_def *find_field(int obj, const char *name) {
        for (size_t i = 0; i < expr_n_fields; i++)
                if (expr_fields[i].obj == obj && streq(expr_fields[i].name, name))
                        return &expr_fields[i];
        return NULL;
}

static int unknown_field(compiler *c, const node *n, int obj) {
        const char *cand[EXPR_MAX_FIELDS] = { NULL };
        size_t nc = 0;
        const char *best;

        for (size_t i = 0; i < expr_n_fields; i++)
                if (expr_fields[i].obj == obj)
                        cand[nc++] = expr_fields[i].name;
        best = str_closest(n->s, cand, nc);
        if (best)
                return expr_compile_error(c, n->op_pos, "unknown field '%s' of %s; did you mean '%s'?", n->s,
                                          expr_obj_names[obj], best);
        char list[512];
        size_t l = 0;
        list[0] = 0;
        for (size_t i = 0; i < nc && l < sizeof list; i++)
                l += (size_t) snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", cand[i]);
        return expr_compile_error(c, n->op_pos, "unknown field '%s' of %s (known: %s)", n->s, expr_obj_names[obj], list);
}

static int check(compiler *c, node *n);

/* Check a node that must produce a value (not a bare environment object). */
int expr_check(compiler *c, node *n) {
        int r = check(c, n);
        if (r < 0)
                return r;
        if (n->obj == OBJ_SIG || n->obj == OBJ_ALERT)
                return expr_compile_error(c, n->pos, "%s is the whole %s; use one of its fields, such as %s",
                                          expr_obj_names[n->obj], n->obj == OBJ_SIG ? "signal" : "alert",
                                          n->obj == OBJ_SIG ? "sig.Scenario" : "Alert.GetScenario()");
        return 0;
}

static int check_ident(compiler *c, node *n) {
        static const char *const roots[] = { "sig", "Alert" };
        const char *cand[ELEMENTSOF(roots) + EXPR_MAX_BUILTINS] = { NULL };
        size_t nc = 0;
        const char *best;

        if (streq(n->s, "sig") || streq(n->s, "Alert")) {
                bool is_sig = n->s[0] == 's';
                if (!(c->env & (is_sig ? EXPR_ENV_SIG : EXPR_ENV_ALERT)))
                        return expr_compile_error(c, n->pos, "unknown name '%s' (%s)", n->s,
                                                  is_sig ? "v1 profile filters are written over Alert, e.g. Alert.GetScenario()"
                                                    : "v0.3 profile filters are written over sig, e.g. sig.Scenario");
                n->obj = is_sig ? OBJ_SIG : OBJ_ALERT;
                n->type = EXPR_OBJECT;
                return 0;
        }
        for (size_t i = 0; i < expr_n_builtins; i++)
                if (streq(n->s, expr_builtins[i].name))
                        return expr_compile_error(c, n->pos, "%s is a function: call it as %s(...)", n->s, n->s);
        if (c->env & EXPR_ENV_SIG)
                cand[nc++] = "sig";
        if (c->env & EXPR_ENV_ALERT)
                cand[nc++] = "Alert";
        best = str_closest(n->s, cand, nc);
        if (best)
                return expr_compile_error(c, n->pos, "unknown name '%s'; did you mean '%s'?", n->s, best);
        return expr_compile_error(c, n->pos, "unknown name '%s' (expressions start from %s)", n->s,
                                  (c->env & EXPR_ENV_ALL) == EXPR_ENV_ALL ? "sig or Alert"
                                  : c->env & EXPR_ENV_SIG ? "sig" : "Alert");
}

static int check_member(compiler *c, node *n) {
        int r = check(c, n->lhs);
        const field_def *f;

        if (r < 0)
                return r;
        if (n->lhs->obj == OBJ_NONE)
                return expr_compile_error(c, n->op_pos, "cannot read field '%s' of %s %s", n->s,
                                          n->lhs->type == EXPR_INT ? "an" : "a", expr_type_name(n->lhs->type));
        if (n->lhs->obj == OBJ_LABELS) {
                /* sig.Labels.key: a missing label reads as "" */
                if (n->called)
                        return expr_compile_error(c, n->op_pos, "sig.Labels.%s is a label, not a method: remove the ()", n->s);
                n->type = EXPR_STRING;
                n->how = H_LABEL;
                return 0;
        }
        f = find_field(n->lhs->obj, n->s);
        if (!f)
                return unknown_field(c, n, n->lhs->obj);
        if (f->method && !n->called)
                return expr_compile_error(c, n->op_pos, "%s.%s is a method: call it as %s.%s()", expr_obj_names[n->lhs->obj],
                                          n->s, expr_obj_names[n->lhs->obj], n->s);
        if (!f->method && n->called)
                return expr_compile_error(c, n->op_pos, "%s.%s is a field, not a method: remove the ()",
                                          expr_obj_names[n->lhs->obj], n->s);
        n->type = f->type;
        n->obj = f->child;
        n->field = f->id;
        n->how = H_FIELD;
        return 0;
}

static int check_index(compiler *c, node *n) {
        int r = check(c, n->lhs);
        if (r < 0)
                return r;
        if (n->lhs->obj == OBJ_LABELS) {
                r = expr_check(c, n->rhs);
                if (r < 0)
                        return r;
                if (n->rhs->type != EXPR_STRING)
                        return expr_compile_error(c, n->rhs->pos, "a label name must be a string, not %s",
                                                  expr_type_name(n->rhs->type));
                n->type = EXPR_STRING;
                if (n->rhs->kind == N_STRING) {
                        n->how = H_LABEL;
                        n->s = n->rhs->s;
                        n->slen = n->rhs->slen;
                } else
                        n->how = H_LABEL_DYN;
                return 0;
        }
        if (n->lhs->obj != OBJ_NONE && n->rhs->kind == N_STRING) {
                /* sig["Scenario"] is sig.Scenario */
                n->kind = N_MEMBER;
                n->s = n->rhs->s;
                n->slen = n->rhs->slen;
                n->rhs = NULL;
                n->op_pos = n->op_pos + 1;
                return check_member(c, n);
        }
        if (n->lhs->obj != OBJ_NONE)
                return expr_compile_error(c, n->op_pos, "%s can only be indexed with a quoted field name",
                                          expr_obj_names[n->lhs->obj]);
        return expr_compile_error(c, n->op_pos, "cannot index %s %s%s", n->lhs->type == EXPR_INT ? "an" : "a",
                                  expr_type_name(n->lhs->type),
                                  n->lhs->type == EXPR_LIST ? " (indexing lists is not supported)" : "");
}

static int check_builtin(compiler *c, node *n, int b) {
        int r;

        const builtin_def *def = &expr_builtins[b];

        if (def->env && !(c->env & def->env))
                return expr_compile_error(c, n->lhs->pos, "%s() needs the ban history: it counts the bans a target has "
                                          "had, which Spillway keeps for a ban_backend that has a change log "
                                          "(sqlite or mysql); configure one, or give the decisions a fixed "
                                          "duration", def->name);
        if (def->max_args == EXPR_VARIADIC && n->n_items < def->min_args)
                return expr_compile_error(c, n->op_pos, "%s() takes at least %u argument%s, got %zu", def->name,
                                          def->min_args, def->min_args == 1 ? "" : "s", n->n_items);
        if (def->max_args != EXPR_VARIADIC && n->n_items != def->min_args)
                return expr_compile_error(c, n->op_pos, "%s() takes %u argument%s, got %zu", def->name,
                                          def->min_args, def->min_args == 1 ? "" : "s", n->n_items);
        for (size_t i = 0; i < n->n_items; i++) {
                r = expr_check(c, n->items[i]);
                if (r < 0)
                        return r;
        }
        n->how = H_BUILTIN;
        n->builtin = b;
        switch (b) {
        case B_LEN: {
                expr_type t = n->items[0]->type;
                if (t != EXPR_STRING && t != EXPR_LIST && t != EXPR_MAP)
                        return expr_compile_error(c, n->items[0]->pos, "len() needs a string, a list or sig.Labels, not %s",
                                                  expr_type_name(t));
                n->type = EXPR_INT;
                return 0;
        }
        case B_UPPER:
        case B_LOWER:
        case B_ATOF:
                if (n->items[0]->type != EXPR_STRING)
                        return expr_compile_error(c, n->items[0]->pos, "%s() needs a string, not %s", expr_builtins[b].name,
                                                  expr_type_name(n->items[0]->type));
                n->type = b == B_ATOF ? EXPR_FLOAT : EXPR_STRING;
                return 0;
        case B_IPINRANGE:
                for (size_t i = 0; i < 2; i++)
                        if (n->items[i]->type != EXPR_STRING)
                                return expr_compile_error(c, n->items[i]->pos, "IpInRange() needs two strings (an IP and a "
                                                          "CIDR range), argument %zu is %s", i + 1,
                                                          expr_type_name(n->items[i]->type));
                if (n->items[1]->kind == N_STRING) {
                        ip_range range;
                        if (!strchr(n->items[1]->s, '/') || ip_parse_cidr(n->items[1]->s, false, &range) < 0)
                                return expr_compile_error(c, n->items[1]->pos,
                                                          "IpInRange(): '%s' is not a CIDR range (expected ADDRESS/PREFIX, "
                                                          "e.g. 192.0.2.0/24 or 2001:db8::/32)", n->items[1]->s);
                }
                n->type = EXPR_BOOL;
                return 0;
        case B_SPRINTF:
                if (n->items[0]->type != EXPR_STRING)
                        return expr_compile_error(c, n->items[0]->pos, "Sprintf() needs a format string first, not %s",
                                                  expr_type_name(n->items[0]->type));
                for (size_t i = 1; i < n->n_items; i++)
                        if (!is_scalar(n->items[i]->type))
                                return expr_compile_error(c, n->items[i]->pos, "Sprintf() formats numbers, strings, "
                                                          "booleans and nil, not %s (argument %zu)",
                                                          expr_type_name(n->items[i]->type), i + 1);
                n->type = EXPR_STRING;
                return 0;
        case B_DECISIONS_COUNT:
        case B_DECISIONS_SINCE:
                for (size_t i = 0; i < n->n_items; i++)
                        if (n->items[i]->type != EXPR_STRING)
                                return expr_compile_error(c, n->items[i]->pos, "%s() needs %s, argument %zu is %s",
                                                          def->name, b == B_DECISIONS_COUNT ? "a string (an IP or a range)"
                                                          : "two strings (an IP or a range, and a duration such as \"24h\")",
                                                          i + 1, expr_type_name(n->items[i]->type));
                if (b == B_DECISIONS_SINCE && n->items[1]->kind == N_STRING) {
                        usec_t d;
                        if (parse_duration(n->items[1]->s, &d) < 0 || d < 0)
                                return expr_compile_error(c, n->items[1]->pos, "GetDecisionsSinceCount(): '%s' is not "
                                                          "a duration (Go syntax such as 24h, 90m, or 2d)",
                                                          n->items[1]->s);
                }
                n->type = EXPR_INT;
                return 0;
        }
        return -EINVAL;
}

/* The builtins this expression's environment offers, comma-separated (cut
 * at size: it is for messages). */
static void available_builtins(const compiler *c, char *buf, size_t size) {
        size_t l = 0;

        buf[0] = 0;
        for (size_t i = 0; i < expr_n_builtins && l < size; i++)
                if (!expr_builtins[i].env || (c->env & expr_builtins[i].env))
                        l += (size_t) snprintf(buf + l, size - l, "%s%s", l ? ", " : "", expr_builtins[i].name);
}

/* Functions of expr and of CrowdSec's helpers that this language has not,
 * each refused with why (the rest get a "did you mean"). */
static int unsupported_function(compiler *c, const node *callee) {
        static const char *const expr_builtin_names[] = {
                "type", "abs", "ceil", "floor", "round", "int", "float", "string", "trim", "trimPrefix", "trimSuffix",
                "upper", "lower", "split", "splitAfter", "replace", "repeat", "join", "indexOf", "lastIndexOf",
                "hasPrefix", "hasSuffix", "max", "min", "mean", "median", "toJSON", "fromJSON", "toBase64",
                "fromBase64", "now", "duration", "date", "timezone", "first", "last", "get", "take", "keys", "values",
                "toPairs", "fromPairs", "reverse", "uniq", "concat", "flatten", "sort", "bitnot",
        };
        static const char *const crowdsec_helpers[] = {
                "Flatten", "Distinct", "FlattenDistinct", "Distance", "GetFromStash", "JsonExtract",
                "JsonExtractUnescape", "JsonExtractLib", "JsonExtractSlice", "JsonExtractObject", "ToJsonString",
                "File", "RegexpInFile", "FileMap", "LookupFile", "TimeNow", "ParseUri", "ParseQuery",
                "ExtractQueryParam", "PathUnescape", "QueryUnescape", "PathEscape", "QueryEscape",
                "XMLGetAttributeValue", "XMLGetNodeValue", "IpToRange", "IsIPV6", "IsIPV4", "IsIP", "LookupHost",
                "ParseUnix", "SetInStash", "Fields", "Index", "IndexAny", "Join", "Split", "SplitAfter",
                "SplitAfterN", "SplitN", "Replace", "ReplaceAll", "Trim", "TrimLeft", "TrimRight", "TrimSpace",
                "TrimPrefix", "TrimSuffix", "Get", "ToString", "Match", "KeyExists", "LogInfo", "B64Decode",
                "UnmarshalJSON", "ParseKV", "ParseKVLax", "Hostname", "FloatApproxEqual", "LibInjectionIsSQLI",
                "LibInjectionIsXSS", "GeoIPEnrich", "GeoIPASNEnrich", "GeoIPRangeEnrich", "JA4H", "AverageInterval",
                "MedianInterval",
        };
        const char *name = callee->s;
        char avail[256];

        available_builtins(c, avail, sizeof avail);

        if (streq(name, "CrowdsecCTI"))
                return expr_compile_error(c, callee->pos, "CrowdsecCTI() needs CrowdSec's online CTI service (an API "
                                          "key and a network query while routing); Spillway routes offline and does "
                                          "not provide it");
        if (streq(name, "GetActiveDecisionsCount") || streq(name, "GetActiveDecisionsTimeLeft"))
                return expr_compile_error(c, callee->pos, "%s() is not yet supported: it reads the active bans of "
                                          "the ban database while routing", name);
        if (expr_is_predicate_builtin(name))
                return expr_compile_error(c, callee->pos, "%s() takes a closure, and closures are not supported", name);
        for (size_t i = 0; i < ELEMENTSOF(expr_builtin_names); i++)
                if (streq(name, expr_builtin_names[i]))
                        return expr_compile_error(c, callee->pos, "%s() is one of expr's builtins that Spillway does not "
                                                  "provide (available: %s)", name, avail);
        for (size_t i = 0; i < ELEMENTSOF(crowdsec_helpers); i++)
                if (streq(name, crowdsec_helpers[i]))
                        return expr_compile_error(c, callee->pos, "%s() is one of CrowdSec's helpers that Spillway does "
                                                  "not provide (available: %s)", name, avail);
        return 0;
}

static int check_call(compiler *c, node *n) {
        node *callee = n->lhs;
        int r;

        if (callee->kind == N_IDENT) {
                const char *cand[EXPR_MAX_BUILTINS] = { NULL };
                for (size_t i = 0; i < expr_n_builtins; i++) {
                        if (streq(callee->s, expr_builtins[i].name))
                                return check_builtin(c, n, (int) i);
                        cand[i] = expr_builtins[i].name;
                }
                r = unsupported_function(c, callee);
                if (r < 0)
                        return r;
                const char *best = str_closest(callee->s, cand, expr_n_builtins);
                if (best)
                        return expr_compile_error(c, callee->pos, "unknown function '%s'; did you mean '%s'?", callee->s, best);
                char avail[256];
                available_builtins(c, avail, sizeof avail);
                return expr_compile_error(c, callee->pos, "unknown function '%s' (available: %s)", callee->s, avail);
        }
        if (callee->kind == N_MEMBER) {
                callee->called = true;
                r = check(c, callee);
                if (r < 0)
                        return r;
                if (n->n_items != 0)
                        return expr_compile_error(c, n->op_pos, "%s() takes no arguments", callee->s);
                n->type = callee->type;
                n->obj = callee->obj;
                n->how = H_FIELD;
                n->field = callee->field;
                return 0;
        }
        return expr_compile_error(c, n->op_pos, "only functions and methods can be called");
}

static int check_unary(compiler *c, node *n) {
        int r = expr_check(c, n->lhs);
        if (r < 0)
                return r;
        n->how = H_OP;
        if (n->op == T_NOT) {
                if (n->lhs->type != EXPR_BOOL)
                        return expr_compile_error(c, n->op_pos, "'%.*s' needs a boolean, not %s",
                                                  c->e->text[n->op_pos] == '!' ? 1 : 3, c->e->text + n->op_pos,
                                                  expr_type_name(n->lhs->type));
                n->type = EXPR_BOOL;
                return 0;
        }
        if (!is_number(n->lhs->type))
                return expr_compile_error(c, n->op_pos, "unary %s needs a number, not %s", expr_tok_names[n->op],
                                          expr_type_name(n->lhs->type));
        n->type = n->lhs->type;
        return 0;
}

static int check_binary(compiler *c, node *n) {
        node *l = n->lhs, *rn = n->rhs;
        const char *opname = expr_tok_names[n->op];
        int r;

        r = expr_check(c, l);
        if (r < 0)
                return r;
        r = expr_check(c, rn);
        if (r < 0)
                return r;
        n->how = H_OP;
        expr_type lt = l->type, rt = rn->type;

        switch (n->op) {
        case T_AND:
        case T_OR:
                if (lt != EXPR_BOOL || rt != EXPR_BOOL)
                        return expr_compile_error(c, n->op_pos, "'%.*s' needs booleans on both sides, got %s and %s",
                                                  (int) (n->op == T_AND ? (c->e->text[n->op_pos] == '&' ? 2 : 3)
                                                                   : 2), c->e->text + n->op_pos,
                                             expr_type_name(lt), expr_type_name(rt));
                n->type = EXPR_BOOL;
                return 0;
        case T_EQ:
        case T_NE:
                if (!comparable(lt, rt))
                        return expr_compile_error(c, n->op_pos, "cannot compare %s with %s using %s", expr_type_name(lt),
                                                  expr_type_name(rt), opname);
                n->type = EXPR_BOOL;
                return 0;
        case T_LT:
        case T_LE:
        case T_GT:
        case T_GE:
                if (!(is_number(lt) && is_number(rt)) && !(lt == EXPR_STRING && rt == EXPR_STRING))
                        return expr_compile_error(c, n->op_pos, "cannot compare %s with %s using %s (needs two numbers "
                                                  "or two strings)", expr_type_name(lt), expr_type_name(rt), opname);
                n->type = EXPR_BOOL;
                return 0;
        case T_IN:
        case T_NOT_IN:
                if (rt == EXPR_LIST) {
                        if (!is_scalar(lt))
                                return expr_compile_error(c, n->op_pos, "cannot look for %s in a list", expr_type_name(lt));
                        for (size_t i = 0; i < rn->n_items; i++)
                                if (!comparable(lt, rn->items[i]->type))
                                        return expr_compile_error(c, rn->items[i]->pos,
                                                                  "cannot compare %s with %s (item %zu of the list after %s)",
                                                                  expr_type_name(lt), expr_type_name(rn->items[i]->type),
                                                                  i + 1, opname);
                } else if (rt == EXPR_MAP) {
                        if (lt != EXPR_STRING)
                                return expr_compile_error(c, n->op_pos, "label names are strings: cannot look for %s in %s",
                                                          expr_type_name(lt), expr_obj_names[OBJ_LABELS]);
                } else
                        return expr_compile_error(c, n->op_pos, "'%s' needs a list or sig.Labels on its right, not %s",
                                                  opname, expr_type_name(rt));
                n->type = EXPR_BOOL;
                return 0;
        case T_MATCHES:
                if (lt != EXPR_STRING || rt != EXPR_STRING)
                        return expr_compile_error(c, n->op_pos, "'matches' needs strings on both sides, got %s and %s",
                                                  expr_type_name(lt), expr_type_name(rt));
                if (rn->kind != N_STRING)
                        return expr_compile_error(c, rn->pos, "the pattern after 'matches' must be a quoted string (patterns "
                                                  "are compiled when the profiles are loaded)");
                n->type = EXPR_BOOL;
                return 0;
        case T_CONTAINS:
        case T_STARTSWITH:
        case T_ENDSWITH:
                if (lt != EXPR_STRING || rt != EXPR_STRING)
                        return expr_compile_error(c, n->op_pos, "'%s' needs strings on both sides, got %s and %s", opname,
                                                  expr_type_name(lt), expr_type_name(rt));
                n->type = EXPR_BOOL;
                return 0;
        case T_PLUS:
                if (lt == EXPR_STRING && rt == EXPR_STRING) {
                        n->type = EXPR_STRING;
                        return 0;
                }
                __attribute__((fallthrough));
        case T_MINUS:
        case T_STAR:
        case T_SLASH:
        case T_POW:
                if (!is_number(lt) || !is_number(rt))
                        return expr_compile_error(c, n->op_pos, "cannot apply %s to %s and %s%s", opname, expr_type_name(lt),
                                                  expr_type_name(rt), n->op == T_PLUS ? " (+ needs two numbers or two strings)"
                                                                                 : " (needs numbers)");
                n->type = (lt == EXPR_INT && rt == EXPR_INT && n->op != T_SLASH && n->op != T_POW) ? EXPR_INT : EXPR_FLOAT;
                return 0;
        case T_PERCENT:
                if (lt != EXPR_INT || rt != EXPR_INT)
                        return expr_compile_error(c, n->op_pos, "%% needs two integers, got %s and %s", expr_type_name(lt),
                                                  expr_type_name(rt));
                if (rn->kind == N_INT && rn->ival == 0)
                        return expr_compile_error(c, rn->pos, "integer divide by zero (%% 0)");
                n->type = EXPR_INT;
                return 0;
        default:
                return expr_compile_error(c, n->op_pos, "unsupported operator %s", opname);
        }
}

/* The type of a literal node, known from its kind alone. */
static expr_type literal_type(node_kind kind) {
        switch (kind) {
        case N_BOOL:
                return EXPR_BOOL;
        case N_INT:
                return EXPR_INT;
        case N_FLOAT:
                return EXPR_FLOAT;
        case N_STRING:
                return EXPR_STRING;
        default:
                return EXPR_NIL;
        }
}

static int check(compiler *c, node *n) {
        switch (n->kind) {
        case N_NIL:
        case N_BOOL:
        case N_INT:
        case N_FLOAT:
        case N_STRING:
                n->type = literal_type(n->kind);
                n->how = H_CONST;
                return 0;
        case N_LIST:
                for (size_t i = 0; i < n->n_items; i++) {
                        int r = expr_check(c, n->items[i]);
                        if (r < 0)
                                return r;
                        if (!is_scalar(n->items[i]->type))
                                return expr_compile_error(c, n->items[i]->pos, "a list item must be a number, a string, a "
                                                          "boolean or nil, not %s", expr_type_name(n->items[i]->type));
                }
                n->type = EXPR_LIST;
                n->how = H_LIST;
                return 0;
        case N_IDENT:
                return check_ident(c, n);
        case N_MEMBER:
                return check_member(c, n);
        case N_INDEX:
                return check_index(c, n);
        case N_CALL:
                return check_call(c, n);
        case N_UNARY:
                return check_unary(c, n);
        case N_BINARY:
                return check_binary(c, n);
        }
        return -EINVAL;
}
