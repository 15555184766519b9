/* SPDX-License-Identifier: MIT */
/*
 * The filter language's parser: precedence climbing over the tokens of
 * expr-lex.c into a syntax tree in the compiler's temporary arena.
 *
 * Precedence and associativity are expr's (see the README's operator
 * table). Recursion is bounded by EXPR_MAX_DEPTH (c->depth counts the
 * parser's own recursion, node->depth the tree's), so hostile input cannot
 * exhaust the C stack here or in the recursive passes that follow.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "expr-internal.h"
#include "strutil.h"

/* ------------------------------------------------------------ parser */

static node *new_node(compiler *c, node_kind kind, uint32_t pos) {
        node *n = arena_alloc(&c->tmp, sizeof *n);
        if (n) {
                n->kind = kind;
                n->pos = n->op_pos = pos;
                n->depth = 1;
        }
        return n;
}

static int set_depth(compiler *c, node *n) {
        unsigned d = 0;
        if (n->lhs)
                d = MAX(d, n->lhs->depth);
        if (n->rhs)
                d = MAX(d, n->rhs->depth);
        for (size_t i = 0; i < n->n_items; i++)
                d = MAX(d, n->items[i]->depth);
        n->depth = d + 1;
        if (n->depth > EXPR_MAX_DEPTH)
                return expr_compile_error(c, n->op_pos, "expression nested too deeply (more than %d levels; for a long "
                                          "list of alternatives use x in [a, b, ...])", EXPR_MAX_DEPTH);
        return 0;
}

static int binary_precedence(tok_kind k, bool *right_assoc) {
        *right_assoc = false;
        switch (k) {
        case T_OR: return 10;
        case T_AND: return 15;
        case T_EQ: case T_NE: case T_LT: case T_LE: case T_GT: case T_GE:
        case T_IN: case T_NOT: /* `not in` */
        case T_MATCHES: case T_CONTAINS: case T_STARTSWITH: case T_ENDSWITH:
                return 20;
        case T_PLUS: case T_MINUS: return 30;
        case T_STAR: case T_SLASH: case T_PERCENT: return 60;
        case T_POW: /* ** and ^; 100 since expr 1.17 (70 before), so -2 ** 2 is -(2 ** 2) */
                *right_assoc = true;
                return 100;
        default:
                return -1;
        }
}

static int parse_expr(compiler *c, int min_prec, node **ret);

static int slice_error(compiler *c, uint32_t open_pos) {
        return expr_compile_error(c, open_pos, "slicing (x[a:b]) is not supported");
}

/* expr's builtins whose second argument is a closure ({# > 1}). */
bool expr_is_predicate_builtin(const char *name) {
        static const char *const names[] = {
                "all", "none", "any", "one", "filter", "map", "count", "sum", "find", "findIndex", "findLast",
                "findLastIndex", "groupBy", "sortBy", "reduce",
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(name, names[i]))
                        return true;
        return false;
}

/* What expr has that this language refuses, at the token that starts it. */
static int unsupported_construct(compiler *c, const token *t) {
        const char *s = c->e->text + t->pos;

        switch (t->kind) {
        case T_LBRACE:
                if (c->callee && expr_is_predicate_builtin(c->callee))
                        return expr_compile_error(c, t->pos, "closures ({...} as the predicate of %s()) are not "
                                                  "supported", c->callee);
                return expr_compile_error(c, t->pos, "map literals ({key: value}) are not supported");
        case T_HASH:
                return expr_compile_error(c, t->pos, "closure variables (#, #index, #acc) are not supported");
        case T_DOT:
                if (c->callee && expr_is_predicate_builtin(c->callee))
                        return expr_compile_error(c, t->pos, "closures (the predicate of %s()) are not supported",
                                                  c->callee);
                return 0;
        case T_QUESTION:
                if (t->len == 2 && s[1] == '?')
                        return expr_compile_error(c, t->pos, "the nil-coalescing operator (a ?? b) is not supported");
                if (t->len == 2 && s[1] == '.')
                        return expr_compile_error(c, t->pos, "optional chaining (a?.b) is not supported");
                return expr_compile_error(c, t->pos, "the conditional operator (a ? b : c) is not supported");
        case T_PIPE:
                return expr_compile_error(c, t->pos, "the pipe operator (a | f()) is not supported (a logical or is "
                                          "|| or 'or')");
        case T_IDENT:
                if (streq(t->s, "let"))
                        return expr_compile_error(c, t->pos, "variables (let x = ...; ...) are not supported");
                if (streq(t->s, "if") || streq(t->s, "else"))
                        return expr_compile_error(c, t->pos, "if/else expressions are not supported");
                return 0;
        default:
                return 0;
        }
}

static int expect(compiler *c, tok_kind k, const char *what, uint32_t open_pos) {
        char buf[64];
        if (c->tok.kind != k) {
                if (open_pos != UINT32_MAX) {
                        unsigned line, column;
                        expr_position(c->e, open_pos, &line, &column);
                        return expr_compile_error(c, c->tok.pos, "expected %s to close the one at %u:%u, got %s", what,
                                                  line, column, expr_tok_text(c, &c->tok, buf, sizeof buf));
                }
                return expr_compile_error(c, c->tok.pos, "expected %s, got %s", what, expr_tok_text(c, &c->tok, buf, sizeof buf));
        }
        return expr_lex(c);
}

/* Comma-separated expressions up to `close` (trailing comma allowed). */
static int parse_items(compiler *c, tok_kind close, const char *close_text, uint32_t open_pos, node ***items,
                       size_t *n_items) {
        size_t cap = 0;
        int r;

        *items = NULL;
        *n_items = 0;
        while (c->tok.kind != close) {
                node *item;
                if (*n_items > 0) {
                        r = expect(c, T_COMMA, close == T_RPAREN ? "',' or ')'" : "',' or ']'", UINT32_MAX);
                        if (r < 0)
                                return r;
                        if (c->tok.kind == close)
                                break;
                }
                r = parse_expr(c, 0, &item);
                if (r < 0)
                        return r;
                if (*n_items == cap) {
                        size_t ncap = cap ? cap * 2 : 4;
                        node **p = arena_alloc(&c->tmp, ncap * sizeof(node *));
                        if (!p)
                                return -ENOMEM;
                        if (*n_items)
                                memcpy(p, *items, *n_items * sizeof(node *));
                        *items = p;
                        cap = ncap;
                }
                (*items)[(*n_items)++] = item;
        }
        return expect(c, close, close_text, open_pos);
}

/* Consumes a postfix operator ('.', '[' or '(') and makes its node over
 * base, the operator's position as op_pos. */
static int open_postfix(compiler *c, node_kind kind, node *base, node **ret) {
        uint32_t op_pos = c->tok.pos;
        int r = expr_lex(c);
        if (r < 0)
                return r;
        node *n = new_node(c, kind, base->pos);
        if (!n)
                return -ENOMEM;
        n->op_pos = op_pos;
        n->lhs = base;
        *ret = n;
        return 0;
}

static int parse_postfix(compiler *c, node **inout) {
        char buf[64];
        int r;

        for (;;) {
                node *base = *inout, *n;
                token t = c->tok;

                if (t.kind == T_DOT) {
                        r = open_postfix(c, N_MEMBER, base, &n);
                        if (r < 0)
                                return r;
                        /* keywords are valid field names after '.', as in expr */
                        if (c->tok.kind != T_IDENT && !(c->tok.s && c->tok.kind >= T_NOT))
                                return expr_compile_error(c, c->tok.pos, "expected a field name after '.', got %s",
                                                          expr_tok_text(c, &c->tok, buf, sizeof buf));
                        n->op_pos = c->tok.pos;
                        n->s = c->tok.s;
                        n->slen = c->tok.slen;
                        r = expr_lex(c);
                } else if (t.kind == T_LBRACKET) {
                        r = open_postfix(c, N_INDEX, base, &n);
                        if (r < 0)
                                return r;
                        if (c->tok.kind == T_COLON)
                                return slice_error(c, t.pos);
                        r = parse_expr(c, 0, &n->rhs);
                        if (r < 0)
                                return r;
                        if (c->tok.kind == T_COLON)
                                return slice_error(c, t.pos);
                        r = expect(c, T_RBRACKET, "']'", t.pos);
                } else if (t.kind == T_LPAREN) {
                        r = open_postfix(c, N_CALL, base, &n);
                        if (r < 0)
                                return r;
                        const char *outer = c->callee;
                        c->callee = base->kind == N_IDENT ? base->s : NULL;
                        r = parse_items(c, T_RPAREN, "')'", t.pos, &n->items, &n->n_items);
                        c->callee = outer;
                } else
                        return 0;
                if (r < 0)
                        return r;
                r = set_depth(c, n);
                if (r < 0)
                        return r;
                *inout = n;
        }
}

static int parse_primary(compiler *c, node **ret) {
        token t = c->tok;
        char buf[64];
        node *n;
        int r;

        r = unsupported_construct(c, &t);
        if (r < 0)
                return r;

        switch (t.kind) {
        case T_NOT:
        case T_MINUS:
        case T_PLUS: {
                r = expr_lex(c);
                if (r < 0)
                        return r;
                n = new_node(c, N_UNARY, t.pos);
                if (!n)
                        return -ENOMEM;
                n->op = t.kind;
                r = parse_expr(c, t.kind == T_NOT ? 50 : 90, &n->lhs);
                if (r < 0)
                        return r;
                r = set_depth(c, n);
                if (r < 0)
                        return r;
                *ret = n;
                return parse_postfix(c, ret);
        }
        case T_LPAREN:
                r = expr_lex(c);
                if (r < 0)
                        return r;
                r = parse_expr(c, 0, &n);
                if (r < 0)
                        return r;
                r = expect(c, T_RPAREN, "')'", t.pos);
                if (r < 0)
                        return r;
                *ret = n;
                return parse_postfix(c, ret);
        case T_LBRACKET:
                r = expr_lex(c);
                if (r < 0)
                        return r;
                n = new_node(c, N_LIST, t.pos);
                if (!n)
                        return -ENOMEM;
                r = parse_items(c, T_RBRACKET, "']'", t.pos, &n->items, &n->n_items);
                break;
        case T_IDENT:
                n = new_node(c, N_IDENT, t.pos);
                if (!n)
                        return -ENOMEM;
                n->s = t.s;
                n->slen = t.slen;
                r = expr_lex(c);
                break;
        case T_INT:
        case T_FLOAT:
        case T_STRING:
        case T_TRUE:
        case T_FALSE:
        case T_NIL:
                n = new_node(c, t.kind == T_INT ? N_INT : t.kind == T_FLOAT ? N_FLOAT : t.kind == T_STRING ? N_STRING
                                : t.kind == T_NIL ? N_NIL : N_BOOL, t.pos);
                if (!n)
                        return -ENOMEM;
                n->ival = t.i;
                n->fval = t.f;
                n->bval = t.kind == T_TRUE;
                n->s = t.s;
                n->slen = t.slen;
                r = expr_lex(c);
                break;
        case T_EOF:
                return expr_compile_error(c, t.pos, "unexpected end of expression (expected a value)");
        default:
                return expr_compile_error(c, t.pos, "unexpected %s (expected a value)", expr_tok_text(c, &t, buf, sizeof buf));
        }
        if (r < 0)
                return r;
        r = set_depth(c, n);
        if (r < 0)
                return r;
        *ret = n;
        return parse_postfix(c, ret);
}

static int parse_expr(compiler *c, int min_prec, node **ret) {
        node *lhs;
        int r;

        if (++c->depth > EXPR_MAX_DEPTH)
                return expr_compile_error(c, c->tok.pos, "expression nested too deeply (more than %d levels)", EXPR_MAX_DEPTH);
        r = parse_primary(c, &lhs);
        if (r < 0)
                return r;
        for (;;) {
                token t = c->tok;
                bool right;
                int prec = binary_precedence(t.kind, &right);
                tok_kind op = t.kind;
                node *n;

                if (prec < 0 || prec < min_prec)
                        break;
                r = expr_lex(c);
                if (r < 0)
                        return r;
                bool negate = false;
                if (op == T_NOT) {
                        /* not in, not matches, not contains, not startsWith, not endsWith */
                        char buf[64];
                        tok_kind k = c->tok.kind;
                        if (k != T_IN && k != T_MATCHES && k != T_CONTAINS && k != T_STARTSWITH && k != T_ENDSWITH)
                                return expr_compile_error(c, c->tok.pos, "expected in, matches, contains, startsWith "
                                                          "or endsWith after 'not', got %s",
                                                          expr_tok_text(c, &c->tok, buf, sizeof buf));
                        if (k == T_IN)
                                op = T_NOT_IN;
                        else {
                                op = k;
                                negate = true;
                        }
                        r = expr_lex(c);
                        if (r < 0)
                                return r;
                }
                n = new_node(c, N_BINARY, lhs->pos);
                if (!n)
                        return -ENOMEM;
                n->op = op;
                n->op_pos = t.pos;
                n->lhs = lhs;
                r = parse_expr(c, right ? prec : prec + 1, &n->rhs);
                if (r < 0)
                        return r;
                r = set_depth(c, n);
                if (r < 0)
                        return r;
                if (negate) {
                        node *u = new_node(c, N_UNARY, n->pos);
                        if (!u)
                                return -ENOMEM;
                        u->op = T_NOT;
                        u->op_pos = t.pos;
                        u->lhs = n;
                        r = set_depth(c, u);
                        if (r < 0)
                                return r;
                        n = u;
                }
                lhs = n;
        }
        if (c->tok.kind == T_QUESTION || c->tok.kind == T_PIPE)
                return unsupported_construct(c, &c->tok);
        c->depth--;
        *ret = lhs;
        return 0;
}

int expr_parse(compiler *c, node **root) {
        int r = expr_lex(c);
        if (r < 0)
                return r;
        if (c->tok.kind == T_EOF)
                return expr_compile_error(c, 0, "empty expression");
        r = parse_expr(c, 0, root);
        if (r < 0)
                return r;
        if (c->tok.kind != T_EOF) {
                char buf[64];
                return expr_compile_error(c, c->tok.pos, "unexpected %s after the end of the expression (missing "
                                          "operator?)", expr_tok_text(c, &c->tok, buf, sizeof buf));
        }
        return 0;
}
