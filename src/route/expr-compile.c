/* SPDX-License-Identifier: MIT */
/*
 * The filter language's code generator: a checked syntax tree becomes
 * instructions for the stack machine of expr-eval.c, with constants,
 * compiled `matches` patterns (rx.h) and CIDR ranges owned by the expr.
 * It tracks the stack depth of the code it writes, so the value stack can
 * be sized once (c->max_sp) and evaluation never checks for room.
 */
#include <errno.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "expr-internal.h"

/* ------------------------------------------------------------ code generation */

static int emit_insn(compiler *c, opcode op, uint32_t arg, uint32_t pos, int stack_effect) {
        expr *e = c->e;
        int r = expr_grow_array((void **) &e->code, &e->cap_code, e->n_code, sizeof(insn));
        if (r < 0)
                return r;
        e->code[e->n_code++] = (insn) { .op = (uint8_t) op, .arg = arg, .pos = pos };
        c->sp = (size_t) ((ptrdiff_t) c->sp + stack_effect);
        if (c->sp > c->max_sp)
                c->max_sp = c->sp;
        return 0;
}

static int add_const(compiler *c, const expr_value *v, uint32_t *idx) {
        expr *e = c->e;
        int r = expr_grow_array((void **) &e->consts, &e->cap_consts, e->n_consts, sizeof(expr_value));
        if (r < 0)
                return r;
        e->consts[e->n_consts] = *v;
        if (v->type == EXPR_STRING) {
                char *s = arena_strndup(&e->arena, v->str.ptr, v->str.len);
                if (!s)
                        return -ENOMEM;
                e->consts[e->n_consts].str.ptr = s;
        }
        *idx = (uint32_t) e->n_consts++;
        return 0;
}

static int emit_const(compiler *c, const expr_value *v, uint32_t pos) {
        uint32_t idx;
        int r = add_const(c, v, &idx);
        if (r < 0)
                return r;
        return emit_insn(c, OP_CONST, idx, pos, +1);
}

static int need_scratch(compiler *c) {
        if (!c->e->scratch) {
                c->e->scratch = malloc(EXPR_SCRATCH_SIZE);
                if (!c->e->scratch)
                        return -ENOMEM;
        }
        return 0;
}


static int need_c_locale(compiler *c) {
        if (c->e->c_locale == (locale_t) 0) {
                c->e->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
                if (c->e->c_locale == (locale_t) 0)
                        return -ENOMEM;
        }
        return 0;
}

static int emit_builtin(compiler *c, const node *n) {
        int r;

        switch (n->builtin) {
        case B_LEN:
                if (n->items[0]->type == EXPR_LIST) {
                        /* the length of a list literal is known */
                        expr_value v = { .type = EXPR_INT, .i = (int64_t) n->items[0]->n_items };
                        return emit_const(c, &v, n->pos);
                }
                r = expr_emit(c, n->items[0]);
                return r < 0 ? r : emit_insn(c, OP_LEN, 0, n->pos, 0);
        case B_UPPER:
        case B_LOWER:
                r = need_scratch(c);
                if (r < 0)
                        return r;
                r = expr_emit(c, n->items[0]);
                return r < 0 ? r : emit_insn(c, n->builtin == B_UPPER ? OP_UPPER : OP_LOWER, 0, n->pos, 0);
        case B_ATOF:
                r = need_c_locale(c);
                if (r < 0)
                        return r;
                r = expr_emit(c, n->items[0]);
                return r < 0 ? r : emit_insn(c, OP_ATOF, 0, n->pos, 0);
        case B_IPINRANGE:
                r = expr_emit(c, n->items[0]);
                if (r < 0)
                        return r;
                if (n->items[1]->kind == N_STRING) {
                        expr *e = c->e;
                        r = expr_grow_array((void **) &e->ranges, &e->cap_ranges, e->n_ranges, sizeof(ip_range));
                        if (r < 0)
                                return r;
                        if (ip_parse_cidr(n->items[1]->s, false, &e->ranges[e->n_ranges]) < 0)
                                return -EINVAL; /* check() validated it */
                        return emit_insn(c, OP_IPINRANGE_C, (uint32_t) e->n_ranges++, n->pos, 0);
                }
                r = expr_emit(c, n->items[1]);
                return r < 0 ? r : emit_insn(c, OP_IPINRANGE, 0, n->pos, -1);
        case B_SPRINTF:
                r = need_scratch(c);
                if (r >= 0)
                        r = need_c_locale(c);
                for (size_t i = 0; r >= 0 && i < n->n_items; i++)
                        r = expr_emit(c, n->items[i]);
                return r < 0 ? r : emit_insn(c, OP_SPRINTF, (uint32_t) n->n_items, n->pos, 1 - (int) n->n_items);
        case B_DECISIONS_COUNT:
                r = expr_emit(c, n->items[0]);
                return r < 0 ? r : emit_insn(c, OP_DECISIONS, 0, n->pos, 0);
        case B_DECISIONS_SINCE:
                r = expr_emit(c, n->items[0]);
                if (r >= 0)
                        r = expr_emit(c, n->items[1]);
                return r < 0 ? r : emit_insn(c, OP_DECISIONS_SINCE, 0, n->pos, -1);
        }
        return -EINVAL;
}

/* Offset in the expression text of byte `k` of a string literal's value
 * (escapes make them differ), for error positions inside patterns. */
static size_t literal_offset(const expr *e, size_t literal_pos, size_t k) {
        const char *s = e->text;
        size_t i = literal_pos + 1, produced = 0;

        while (i < e->len && produced < k && s[i] != s[literal_pos]) {
                if (s[i] != '\\') {
                        i++;
                        produced++;
                        continue;
                }
                char esc = i + 1 < e->len ? s[i + 1] : 0;
                size_t skip = esc == 'x' ? 4 : esc == 'u' ? 6 : esc == 'U' ? 10 : esc >= '0' && esc <= '7' ? 4 : 2;
                produced += esc == 'u' || esc == 'U' ? 2 : 1; /* close enough for a position */
                i += skip;
        }
        return MIN(i, e->len);
}

static int emit_matches(compiler *c, const node *n) {
        expr *e = c->e;
        char msg[200];
        size_t off = 0;
        int r = expr_emit(c, n->lhs);
        if (r < 0)
                return r;
        r = expr_grow_array((void **) &e->regexes, &e->cap_regexes, e->n_regexes, sizeof(rx *));
        if (r < 0)
                return r;
        r = rx_compile(n->rhs->s, n->rhs->slen, &e->regexes[e->n_regexes], msg, sizeof msg, &off);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return expr_compile_error(c, literal_offset(e, n->rhs->pos, off), "matches: %s", msg);
        return emit_insn(c, OP_MATCH, (uint32_t) e->n_regexes++, n->op_pos, 0);
}

static int emit_binary(compiler *c, const node *n) {
        static const opcode ops[] = {
                [T_EQ] = OP_EQ, [T_NE] = OP_NE, [T_LT] = OP_LT, [T_LE] = OP_LE, [T_GT] = OP_GT, [T_GE] = OP_GE,
                [T_CONTAINS] = OP_CONTAINS, [T_STARTSWITH] = OP_STARTSWITH, [T_ENDSWITH] = OP_ENDSWITH,
                [T_PLUS] = OP_ADD, [T_MINUS] = OP_SUB, [T_STAR] = OP_MUL, [T_SLASH] = OP_DIV,
                [T_PERCENT] = OP_MOD, [T_POW] = OP_POW,
        };
        int r;

        if (n->op == T_AND || n->op == T_OR) {
                size_t jump;
                r = expr_emit(c, n->lhs);
                if (r < 0)
                        return r;
                jump = c->e->n_code;
                r = emit_insn(c, n->op == T_AND ? OP_JUMP_FALSE : OP_JUMP_TRUE, 0, n->op_pos, -1);
                if (r < 0)
                        return r;
                r = expr_emit(c, n->rhs);
                if (r < 0)
                        return r;
                c->e->code[jump].arg = (uint32_t) c->e->n_code;
                return 0;
        }
        if (n->op == T_MATCHES)
                return emit_matches(c, n);
        if (n->op == T_IN || n->op == T_NOT_IN) {
                r = expr_emit(c, n->lhs);
                if (r < 0)
                        return r;
                if (n->rhs->type == EXPR_MAP)
                        r = emit_insn(c, OP_HAS_LABEL, 0, n->op_pos, 0);
                else {
                        for (size_t i = 0; i < n->rhs->n_items; i++) {
                                r = expr_emit(c, n->rhs->items[i]);
                                if (r < 0)
                                        return r;
                        }
                        r = emit_insn(c, OP_IN, (uint32_t) n->rhs->n_items, n->op_pos, -(int) n->rhs->n_items);
                }
                if (r < 0)
                        return r;
                return n->op == T_NOT_IN ? emit_insn(c, OP_NOT, 0, n->op_pos, 0) : 0;
        }
        r = expr_emit(c, n->lhs);
        if (r < 0)
                return r;
        r = expr_emit(c, n->rhs);
        if (r < 0)
                return r;
        if (n->op == T_PLUS && n->type == EXPR_STRING) {
                r = need_scratch(c);
                return r < 0 ? r : emit_insn(c, OP_CONCAT, 0, n->op_pos, -1);
        }
        return emit_insn(c, ops[n->op], 0, n->op_pos, -1);
}

int expr_emit(compiler *c, const node *n) {
        expr_value v = { .type = n->type };
        int r;

        switch (n->how) {
        case H_CONST:
                switch (n->type) {
                case EXPR_BOOL: v.b = n->bval; break;
                case EXPR_INT: v.i = n->ival; break;
                case EXPR_FLOAT: v.f = n->fval; break;
                case EXPR_STRING:
                        v.str.ptr = n->s;
                        v.str.len = n->slen;
                        break;
                default: break;
                }
                return emit_const(c, &v, n->pos);
        case H_LIST:
                for (size_t i = 0; i < n->n_items; i++) {
                        r = expr_emit(c, n->items[i]);
                        if (r < 0)
                                return r;
                }
                return emit_insn(c, OP_LIST, (uint32_t) n->n_items, n->pos, +1);
        case H_FIELD:
                return emit_insn(c, OP_FIELD, (uint32_t) n->field, n->pos, +1);
        case H_LABEL: {
                uint32_t idx;
                v = (expr_value) { .type = EXPR_STRING, .str = { n->s, n->slen } };
                r = add_const(c, &v, &idx);
                return r < 0 ? r : emit_insn(c, OP_LABEL, idx, n->pos, +1);
        }
        case H_LABEL_DYN:
                r = expr_emit(c, n->rhs);
                return r < 0 ? r : emit_insn(c, OP_LABEL_DYN, 0, n->pos, 0);
        case H_BUILTIN:
                return emit_builtin(c, n);
        case H_OP:
                if (n->kind == N_UNARY) {
                        r = expr_emit(c, n->lhs);
                        if (r < 0 || n->op == T_PLUS)
                                return r;
                        return emit_insn(c, n->op == T_NOT ? OP_NOT : OP_NEG, 0, n->op_pos, 0);
                }
                return emit_binary(c, n);
        case H_NONE:
                break;
        }
        return expr_compile_error(c, n->pos, "internal error: cannot generate code for this expression");
}
