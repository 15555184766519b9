/* SPDX-License-Identifier: MIT */
/*
 * Payload templates: a subset of Go's text/template over JSON values.
 *
 * Compilation is three steps over an immutable copy of the source: the
 * lexer cuts the whole text into tokens (text runs, "{{", "}}" and the
 * words of actions, with trim markers and comments already applied), a
 * recursive-descent parser builds the tree, and every check that does not
 * depend on data happens there: unknown functions, argument counts,
 * undefined variables, unbalanced {{if}}/{{range}}/{{with}}/{{else}}/{{end}}.
 * So a template that compiles always renders.
 *
 * Invariants:
 *   - Every tree allocation is tracked in tpl->allocs and every literal in
 *     tpl->literals, so tpl_free() (and a failed compile) frees everything
 *     without walking the tree.
 *   - Variables are resolved at compile time to slots: each declaration gets
 *     its own slot (there is no recursion, so one slot per declaration is
 *     enough), slot 0 is $ (the data). Scoping is lexical, as in Go: a
 *     variable lives until the {{end}} of the block it was declared in.
 *   - Evaluation works on borrowed or owned jansson references; every
 *     function returns a new reference or NULL meaning "no value". Nesting
 *     is bounded (TPL_MAX_DEPTH) at compile time, so evaluation recursion is
 *     too; loops are bounded by the step and output limits.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "template.h"

#define TPL_MAX_DEPTH 64

/* ------------------------------------------------------------------ tree */

typedef struct field field;
typedef struct arg arg;
typedef struct cmd cmd;
typedef struct pipeline pipeline;
typedef struct node node;
typedef struct renderer renderer;

typedef json_t *(*func_fn)(renderer *r, json_t **args, size_t n);

typedef struct func {
        const char *name;
        int min_args;
        int max_args;           /* -1: any number */
        func_fn fn;
} func;

struct field {
        char *name;
        field *next;
};

enum arg_type {
        ARG_FIELD,              /* dot, then the chain */
        ARG_VAR,                /* a variable, then the chain */
        ARG_LITERAL,
        ARG_NIL,
        ARG_FUNC,               /* only as the first word of a command */
        ARG_PIPE,               /* ( pipeline ), then the chain */
};

struct arg {
        enum arg_type type;
        size_t pos;
        size_t slot;
        json_t *literal;
        const func *fn;
        pipeline *pipe;
        field *chain;
        arg *next;
};

struct cmd {
        size_t pos;
        arg *args;
        size_t n_args;
        cmd *next;
};

struct pipeline {
        size_t pos;
        cmd *cmds;
        size_t n_decl;          /* variables declared or assigned: 0..2 */
        size_t decl[2];         /* their slots */
};

enum node_type {
        NODE_TEXT,
        NODE_ACTION,
        NODE_IF,
        NODE_RANGE,
        NODE_WITH,
};

struct node {
        enum node_type type;
        size_t pos;
        const char *text;       /* NODE_TEXT, points into tpl->src */
        size_t len;
        pipeline *pipe;
        node *list;
        node *else_list;
        node *next;
};

struct tpl {
        char *src;
        size_t src_len;
        node *root;
        size_t n_slots;
        void **allocs;
        size_t n_allocs, cap_allocs;
        json_t **literals;
        size_t n_literals, cap_literals;
};

static void *tpl_alloc(tpl *t, size_t size) {
        void *p;

        if (t->n_allocs == t->cap_allocs) {
                size_t cap = t->cap_allocs ? t->cap_allocs * 2 : 64;
                void **a = realloc(t->allocs, cap * sizeof *a);
                if (!a)
                        return NULL;
                t->allocs = a;
                t->cap_allocs = cap;
        }
        p = calloc(1, size);
        if (p)
                t->allocs[t->n_allocs++] = p;
        return p;
}

static int tpl_keep_literal(tpl *t, json_t *v) {
        if (!v)
                return -ENOMEM;
        if (t->n_literals == t->cap_literals) {
                size_t cap = t->cap_literals ? t->cap_literals * 2 : 16;
                json_t **a = realloc(t->literals, cap * sizeof *a);
                if (!a) {
                        json_decref(v);
                        return -ENOMEM;
                }
                t->literals = a;
                t->cap_literals = cap;
        }
        t->literals[t->n_literals++] = v;
        return 0;
}

tpl *tpl_free(tpl *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_allocs; i++)
                free(t->allocs[i]);
        for (size_t i = 0; i < t->n_literals; i++)
                json_decref(t->literals[i]);
        free(t->allocs);
        free(t->literals);
        free(t->src);
        free(t);
        return NULL;
}

/* ----------------------------------------------------------------- lexer */

enum tok_type {
        TOK_EOF,
        TOK_TEXT,
        TOK_LEFT,               /* {{ */
        TOK_RIGHT,              /* }} */
        TOK_DOT,
        TOK_FIELD,              /* .Name (s/len: the name) */
        TOK_VAR,                /* $ or $name */
        TOK_IDENT,
        TOK_STRING,             /* "..." with escapes (s/len include quotes) */
        TOK_RAW_STRING,         /* `...` */
        TOK_NUMBER,
        TOK_PIPE,
        TOK_LPAREN,
        TOK_RPAREN,
        TOK_DECLARE,            /* := */
        TOK_ASSIGN,             /* = */
        TOK_COMMA,
};

typedef struct token {
        enum tok_type type;
        bool space;             /* whitespace right before it */
        size_t pos;
        const char *s;
        size_t len;
} token;

typedef struct var {
        const char *name;       /* with the '$' */
        size_t len;
        size_t slot;
} var;

typedef struct parser {
        tpl *t;
        const char *src;
        size_t len;
        tpl_origin origin;
        token *toks;
        size_t n_toks, cap_toks, i;
        var *vars;
        size_t n_vars, cap_vars;
        unsigned depth;
        tpl_error *err;
        bool failed;
} parser;

static void pos_to_line_column(const parser *p, size_t pos, unsigned *line, unsigned *column) {
        unsigned l = p->origin.line, c = p->origin.column;

        if (pos > p->len)
                pos = p->len;
        for (size_t i = 0; i < pos; i++) {
                unsigned char ch = (unsigned char) p->src[i];
                if (ch == '\n') {
                        l++;
                        c = p->origin.indent + 1;
                } else if ((ch & 0xc0) != 0x80)
                        c++;    /* count characters, not UTF-8 continuation bytes */
        }
        *line = l;
        *column = c;
}

_printf_(3, 4)
static int parse_error(parser *p, size_t pos, const char *fmt, ...) {
        va_list ap;

        if (p->failed)
                return -EINVAL;
        p->failed = true;
        pos_to_line_column(p, pos, &p->err->line, &p->err->column);
        va_start(ap, fmt);
        vsnprintf(p->err->message, sizeof p->err->message, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int push_token(parser *p, enum tok_type type, bool space, size_t pos, const char *s, size_t len) {
        if (p->n_toks == p->cap_toks) {
                size_t cap = p->cap_toks ? p->cap_toks * 2 : 64;
                token *a = realloc(p->toks, cap * sizeof *a);
                if (!a)
                        return -ENOMEM;
                p->toks = a;
                p->cap_toks = cap;
        }
        p->toks[p->n_toks++] = (token) { type, space, pos, s, len };
        return 0;
}

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_word(char c) {
        return isalnum((unsigned char) c) || c == '_';
}

/* A short quotable excerpt of the source for messages. */
static const char *excerpt(const char *s, size_t len, char buf[static 24]) {
        size_t n = 0;
        for (size_t i = 0; i < len && n < 20; i++)
                buf[n++] = isprint((unsigned char) s[i]) ? s[i] : '?';
        buf[n] = 0;
        if (len > 20)
                memcpy(buf + 17, "...", 4);
        return buf;
}

/* Lex the inside of one action, from just after "{{" (and its trim marker)
 * up to and including "}}". *trim_next is set when it ended with " -}}". */
static int lex_action(parser *p, size_t *ip, size_t left_pos, bool *trim_next) {
        const char *s = p->src;
        size_t n = p->len, i = *ip;
        char buf[24];
        int r;

        for (;;) {
                bool space = false;
                size_t start;
                enum tok_type type;

                while (i < n && is_space(s[i])) {
                        i++;
                        space = true;
                }
                if (i >= n)
                        return parse_error(p, left_pos, "unclosed action: expected \"}}\" before the end of the template");
                start = i;
                if (space && s[i] == '-' && i + 2 < n && s[i + 1] == '}' && s[i + 2] == '}') {
                        r = push_token(p, TOK_RIGHT, space, i, s + i, 3);
                        if (r < 0)
                                return r;
                        *ip = i + 3;
                        *trim_next = true;
                        return 0;
                }
                if (s[i] == '}' && i + 1 < n && s[i + 1] == '}') {
                        r = push_token(p, TOK_RIGHT, space, i, s + i, 2);
                        if (r < 0)
                                return r;
                        *ip = i + 2;
                        *trim_next = false;
                        return 0;
                }

                switch (s[i]) {
                case '|': type = TOK_PIPE; i++; break;
                case '(': type = TOK_LPAREN; i++; break;
                case ')': type = TOK_RPAREN; i++; break;
                case ',': type = TOK_COMMA; i++; break;
                case '=': type = TOK_ASSIGN; i++; break;
                case ':':
                        if (i + 1 >= n || s[i + 1] != '=')
                                return parse_error(p, i, "unexpected \":\" in action: expected \":=\"");
                        type = TOK_DECLARE;
                        i += 2;
                        break;
                case '"':
                        type = TOK_STRING;
                        for (i++;; i++) {
                                if (i >= n || s[i] == '\n')
                                        return parse_error(p, start, "unterminated quoted string: expected a closing '\"' on the same line");
                                if (s[i] == '\\' && i + 1 < n && s[i + 1] != '\n')
                                        i++;
                                else if (s[i] == '"')
                                        break;
                        }
                        i++;
                        break;
                case '`':
                        type = TOK_RAW_STRING;
                        for (i++; i < n && s[i] != '`'; i++)
                                ;
                        if (i >= n)
                                return parse_error(p, start, "unterminated raw string: expected a closing '`'");
                        i++;
                        break;
                case '$':
                        type = TOK_VAR;
                        for (i++; i < n && is_word(s[i]); i++)
                                ;
                        break;
                case '.':
                        if (i + 1 < n && (isalpha((unsigned char) s[i + 1]) || s[i + 1] == '_')) {
                                type = TOK_FIELD;
                                for (i++; i < n && is_word(s[i]); i++)
                                        ;
                                r = push_token(p, type, space, start, s + start + 1, i - start - 1);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (i + 1 < n && isdigit((unsigned char) s[i + 1]))
                                goto number;
                        type = TOK_DOT;
                        i++;
                        break;
                default:
                        if (isdigit((unsigned char) s[i]) ||
                            ((s[i] == '-' || s[i] == '+') && i + 1 < n &&
                             (isdigit((unsigned char) s[i + 1]) || s[i + 1] == '.')))
                                goto number;
                        if (isalpha((unsigned char) s[i]) || s[i] == '_') {
                                type = TOK_IDENT;
                                for (; i < n && is_word(s[i]); i++)
                                        ;
                                break;
                        }
                        return parse_error(p, i, "unexpected \"%s\" in action: expected a field (.Name), a variable ($x), a function, a literal, \"|\" or \"}}\"",
                                           excerpt(s + i, 1, buf));
                }
                r = push_token(p, type, space, start, s + start, i - start);
                if (r < 0)
                        return r;
                continue;
number:
                type = TOK_NUMBER;
                if (s[i] == '-' || s[i] == '+')
                        i++;
                for (; i < n; i++) {
                        if (is_word(s[i]) || s[i] == '.')
                                continue;
                        if ((s[i] == '-' || s[i] == '+') && (s[i - 1] == 'e' || s[i - 1] == 'E'))
                                continue;
                        break;
                }
                r = push_token(p, type, space, start, s + start, i - start);
                if (r < 0)
                        return r;
        }
}

static int lex(parser *p) {
        const char *s = p->src;
        size_t n = p->len, i = 0;
        bool trim_left = false;
        int r;

        for (;;) {
                const char *open = i < n ? memmem(s + i, n - i, "{{", 2) : NULL;
                size_t end = open ? (size_t) (open - s) : n, ts = i, te = end, left_pos, j;
                bool trim_right = open && end + 3 < n && s[end + 2] == '-' && is_space(s[end + 3]);

                if (trim_left)
                        while (ts < te && is_space(s[ts]))
                                ts++;
                if (trim_right)
                        while (te > ts && is_space(s[te - 1]))
                                te--;
                if (te > ts) {
                        r = push_token(p, TOK_TEXT, false, ts, s + ts, te - ts);
                        if (r < 0)
                                return r;
                }
                if (!open)
                        return push_token(p, TOK_EOF, false, n, s + n, 0);

                left_pos = end;
                i = end + 2 + (trim_right ? 1 : 0);

                /* a comment, {{/ * ... * / followed by }}, only directly after the delimiter */
                j = i;
                if (trim_right)
                        while (j < n && is_space(s[j]))
                                j++;
                if (j + 1 < n && s[j] == '/' && s[j + 1] == '*') {
                        const char *close = memmem(s + j + 2, n - j - 2, "*/", 2);
                        size_t k;

                        if (!close)
                                return parse_error(p, left_pos, "unclosed comment: expected \"*/}}\"");
                        k = (size_t) (close - s) + 2;
                        if (k + 1 < n && s[k] == '}' && s[k + 1] == '}') {
                                i = k + 2;
                                trim_left = false;
                        } else if (k + 3 < n && is_space(s[k]) && s[k + 1] == '-' && s[k + 2] == '}' && s[k + 3] == '}') {
                                i = k + 4;
                                trim_left = true;
                        } else
                                return parse_error(p, k, "comment ends before closing delimiter: expected \"}}\" right after \"*/\"");
                        continue;
                }

                r = push_token(p, TOK_LEFT, false, left_pos, s + left_pos, 2);
                if (r < 0)
                        return r;
                r = lex_action(p, &i, left_pos, &trim_left);
                if (r < 0)
                        return r;
        }
}

/* ---------------------------------------------------------------- parser */

static const func *find_func(const char *name, size_t len);

static const token *peek(const parser *p) {
        return &p->toks[p->i];
}

static const token *peek_at(const parser *p, size_t ahead) {
        size_t k = p->i + ahead;
        return &p->toks[k < p->n_toks ? k : p->n_toks - 1];
}

static const token *next(parser *p) {
        const token *t = &p->toks[p->i];
        if (t->type != TOK_EOF)
                p->i++;
        return t;
}

static bool tok_is(const token *t, const char *word) {
        return t->type == TOK_IDENT && strlen(word) == t->len && memcmp(t->s, word, t->len) == 0;
}

static const char *tok_desc(const token *t, char buf[static 32]) {
        char e[24];
        switch (t->type) {
        case TOK_EOF:
                return "end of template";
        case TOK_TEXT:
                return "text";
        case TOK_LEFT:
                return "\"{{\"";
        case TOK_RIGHT:
                return "\"}}\"";
        case TOK_FIELD:
                snprintf(buf, 32, "\".%s\"", excerpt(t->s, t->len, e));
                return buf;
        default:
                snprintf(buf, 32, "\"%s\"", excerpt(t->s, t->len, e));
                return buf;
        }
}

static int expect_right(parser *p, const char *context) {
        const token *t = next(p);
        char b[32];

        if (t->type != TOK_RIGHT)
                return parse_error(p, t->pos, "unexpected %s in %s: expected \"}}\"", tok_desc(t, b), context);
        return 0;
}

static const var *find_var(const parser *p, const char *name, size_t len) {
        for (size_t k = p->n_vars; k > 0; k--)
                if (p->vars[k - 1].len == len && memcmp(p->vars[k - 1].name, name, len) == 0)
                        return &p->vars[k - 1];
        return NULL;
}

static int declare_var(parser *p, const token *t, size_t *slot) {
        if (p->n_vars == p->cap_vars) {
                size_t cap = p->cap_vars ? p->cap_vars * 2 : 16;
                var *a = realloc(p->vars, cap * sizeof *a);
                if (!a)
                        return -ENOMEM;
                p->vars = a;
                p->cap_vars = cap;
        }
        *slot = p->t->n_slots++;
        p->vars[p->n_vars++] = (var) { t->s, t->len, *slot };
        return 0;
}

/* Go string literal escapes; the result must be valid UTF-8 (JSON). */
static int parse_string(parser *p, const token *t, json_t **ret) {
        _cleanup_free_ char *out = malloc(t->len + 1);
        size_t o = 0;

        if (!out)
                return -ENOMEM;
        if (t->type == TOK_RAW_STRING) {
                memcpy(out, t->s + 1, t->len - 2);
                o = t->len - 2;
        } else
                for (size_t i = 1; i + 1 < t->len; i++) {
                        char c = t->s[i];
                        unsigned long v;
                        size_t digits;
                        char hex[9];
                        char *end;

                        if (c != '\\') {
                                out[o++] = c;
                                continue;
                        }
                        c = t->s[++i];
                        switch (c) {
                        case 'n': out[o++] = '\n'; continue;
                        case 't': out[o++] = '\t'; continue;
                        case 'r': out[o++] = '\r'; continue;
                        case 'a': out[o++] = '\a'; continue;
                        case 'b': out[o++] = '\b'; continue;
                        case 'f': out[o++] = '\f'; continue;
                        case 'v': out[o++] = '\v'; continue;
                        case '\\': case '"': case '\'': out[o++] = c; continue;
                        case 'x': digits = 2; break;
                        case 'u': digits = 4; break;
                        case 'U': digits = 8; break;
                        default:
                                if (c >= '0' && c <= '7' && i + 2 < t->len - 1 &&
                                    t->s[i + 1] >= '0' && t->s[i + 1] <= '7' && t->s[i + 2] >= '0' && t->s[i + 2] <= '7') {
                                        v = (unsigned long) ((c - '0') * 64 + (t->s[i + 1] - '0') * 8 + (t->s[i + 2] - '0'));
                                        if (v > 255)
                                                return parse_error(p, t->pos + i - 1, "octal escape value > 255 in string literal");
                                        out[o++] = (char) v;
                                        i += 2;
                                        continue;
                                }
                                return parse_error(p, t->pos + i - 1, "unknown escape sequence \"\\%c\" in string literal: expected one of \\n \\t \\\" \\\\ \\xHH \\uHHHH",
                                                   isprint((unsigned char) c) ? c : '?');
                        }
                        if (i + digits >= t->len)
                                return parse_error(p, t->pos + i - 1, "short escape sequence in string literal: expected %zu hex digits", digits);
                        memcpy(hex, t->s + i + 1, digits);
                        hex[digits] = 0;
                        for (size_t k = 0; k < digits; k++)
                                if (!isxdigit((unsigned char) hex[k]))
                                        return parse_error(p, t->pos + i - 1, "bad escape sequence in string literal: expected %zu hex digits", digits);
                        v = strtoul(hex, &end, 16);
                        i += digits;
                        if (c == 'x') {
                                out[o++] = (char) v;
                                continue;
                        }
                        if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
                                return parse_error(p, t->pos, "escape sequence is not a valid Unicode code point");
                        /* UTF-8 encode; 4 bytes never exceed the 6 of "\uHHHH" */
                        if (v < 0x80)
                                out[o++] = (char) v;
                        else if (v < 0x800) {
                                out[o++] = (char) (0xc0 | (v >> 6));
                                out[o++] = (char) (0x80 | (v & 0x3f));
                        } else if (v < 0x10000) {
                                out[o++] = (char) (0xe0 | (v >> 12));
                                out[o++] = (char) (0x80 | ((v >> 6) & 0x3f));
                                out[o++] = (char) (0x80 | (v & 0x3f));
                        } else {
                                out[o++] = (char) (0xf0 | (v >> 18));
                                out[o++] = (char) (0x80 | ((v >> 12) & 0x3f));
                                out[o++] = (char) (0x80 | ((v >> 6) & 0x3f));
                                out[o++] = (char) (0x80 | (v & 0x3f));
                        }
                }
        if (!utf8_valid(out, o))
                return parse_error(p, t->pos, "string literal is not valid UTF-8");
        *ret = json_stringn(out, o);
        return *ret ? 0 : -ENOMEM;
}

static int parse_number(parser *p, const token *t, json_t **ret) {
        char buf[64], *end;
        bool is_real = false;

        if (t->len >= sizeof buf)
                return parse_error(p, t->pos, "number literal too long");
        memcpy(buf, t->s, t->len);
        buf[t->len] = 0;
        if (!(strncmp(buf, "0x", 2) == 0 || strncmp(buf, "-0x", 3) == 0 || strncmp(buf, "+0x", 3) == 0 ||
              strncmp(buf, "0X", 2) == 0))
                is_real = strpbrk(buf, ".eE") != NULL;
        errno = 0;
        if (is_real) {
                double d = strtod(buf, &end);
                if (*end || end == buf)
                        return parse_error(p, t->pos, "bad number syntax \"%s\": expected a decimal like 42 or 1.5", buf);
                if (errno == ERANGE || !isfinite(d))
                        return parse_error(p, t->pos, "number \"%s\" out of range", buf);
                *ret = json_real(d);
        } else {
                long long v = strtoll(buf, &end, 0);
                if (*end || end == buf)
                        return parse_error(p, t->pos, "bad number syntax \"%s\": expected a decimal like 42 or 1.5", buf);
                if (errno == ERANGE)
                        return parse_error(p, t->pos, "number \"%s\" out of range", buf);
                *ret = json_integer(v);
        }
        return *ret ? 0 : -ENOMEM;
}

static int parse_pipeline(parser *p, const char *context, int decl_mode, pipeline **ret);

enum {
        DECL_NONE,              /* ( ... ) */
        DECL_ONE,               /* {{$x := ...}}, {{if $x := ...}} */
        DECL_RANGE,             /* {{range $i, $e := ...}} */
};

/* The field chain right after an operand (".A.B" with no space between). */
static int parse_chain(parser *p, field **ret) {
        field **tail = ret;

        while (peek(p)->type == TOK_FIELD && !peek(p)->space) {
                const token *t = next(p);
                field *f = tpl_alloc(p->t, sizeof *f);
                if (!f || !(f->name = tpl_alloc(p->t, t->len + 1)))
                        return -ENOMEM;
                memcpy(f->name, t->s, t->len);
                *tail = f;
                tail = &f->next;
        }
        return 0;
}

static int parse_operand(parser *p, bool first, arg **ret) {
        const token *t = peek(p);
        arg *a = tpl_alloc(p->t, sizeof *a);
        char b[32];
        int r;

        if (!a)
                return -ENOMEM;
        a->pos = t->pos;
        switch (t->type) {
        case TOK_DOT:
                next(p);
                a->type = ARG_FIELD;
                if (peek(p)->type == TOK_FIELD && !peek(p)->space)
                        return parse_error(p, peek(p)->pos, "unexpected \".\" before a field: write .%.*s, not ..%.*s",
                                           (int) peek(p)->len, peek(p)->s, (int) peek(p)->len, peek(p)->s);
                break;
        case TOK_FIELD:
                /* the first field may follow a space; the rest of the chain may not */
                a->type = ARG_FIELD;
                a->chain = tpl_alloc(p->t, sizeof *a->chain);
                if (!a->chain || !(a->chain->name = tpl_alloc(p->t, t->len + 1)))
                        return -ENOMEM;
                memcpy(a->chain->name, t->s, t->len);
                next(p);
                r = parse_chain(p, &a->chain->next);
                if (r < 0)
                        return r;
                break;
        case TOK_VAR: {
                const var *v = find_var(p, t->s, t->len);
                if (!v)
                        return parse_error(p, t->pos, "undefined variable \"%.*s\": declare it first with {{%.*s := ...}}",
                                           (int) MIN(t->len, 40u), t->s, (int) MIN(t->len, 40u), t->s);
                next(p);
                a->type = ARG_VAR;
                a->slot = v->slot;
                r = parse_chain(p, &a->chain);
                if (r < 0)
                        return r;
                break;
        }
        case TOK_STRING:
        case TOK_RAW_STRING:
                r = parse_string(p, t, &a->literal);
                if (r < 0)
                        return r;
                r = tpl_keep_literal(p->t, a->literal);
                if (r < 0)
                        return r;
                next(p);
                a->type = ARG_LITERAL;
                break;
        case TOK_NUMBER:
                r = parse_number(p, t, &a->literal);
                if (r < 0)
                        return r;
                r = tpl_keep_literal(p->t, a->literal);
                if (r < 0)
                        return r;
                next(p);
                a->type = ARG_LITERAL;
                break;
        case TOK_IDENT:
                if (tok_is(t, "true") || tok_is(t, "false")) {
                        a->type = ARG_LITERAL;
                        a->literal = json_boolean(tok_is(t, "true"));
                        next(p);
                        break;
                }
                if (tok_is(t, "nil")) {
                        a->type = ARG_NIL;
                        next(p);
                        break;
                }
                a->fn = find_func(t->s, t->len);
                if (!a->fn) {
                        static const char *const keywords[] = { "if", "else", "end", "range", "with" };
                        for (size_t k = 0; k < ELEMENTSOF(keywords); k++)
                                if (tok_is(t, keywords[k]))
                                        return parse_error(p, t->pos, "unexpected keyword \"%s\" inside an action: expected a value; {{%s}} must start its own action",
                                                           keywords[k], keywords[k]);
                        return parse_error(p, t->pos, "function \"%s\" not defined: expected one of json, jsonesc, toJson, urlquery, upper, lower, len, index, default, not, and, or, eq, ne, lt, le, gt, ge",
                                           excerpt(t->s, t->len, b));
                }
                if (!first)
                        return parse_error(p, t->pos, "function \"%s\" used as an argument: call it in parentheses, e.g. (%s .Field)",
                                           a->fn->name, a->fn->name);
                next(p);
                a->type = ARG_FUNC;
                break;
        case TOK_LPAREN:
                next(p);
                r = parse_pipeline(p, "parenthesized pipeline", DECL_NONE, &a->pipe);
                if (r < 0)
                        return r;
                t = next(p);
                if (t->type != TOK_RPAREN)
                        return parse_error(p, t->pos, "unexpected %s in parenthesized pipeline: expected \")\"", tok_desc(t, b));
                a->type = ARG_PIPE;
                r = parse_chain(p, &a->chain);
                if (r < 0)
                        return r;
                break;
        default:
                return parse_error(p, t->pos, "unexpected %s in command: expected a field (.Name), a variable ($x), a function or a literal",
                                   tok_desc(t, b));
        }
        *ret = a;
        return 0;
}

static bool ends_command(const token *t) {
        return t->type == TOK_RIGHT || t->type == TOK_PIPE || t->type == TOK_RPAREN || t->type == TOK_EOF;
}

static int parse_command(parser *p, bool piped, cmd **ret) {
        cmd *c = tpl_alloc(p->t, sizeof *c);
        arg **tail;
        int r;

        if (!c)
                return -ENOMEM;
        c->pos = peek(p)->pos;
        tail = &c->args;
        while (!ends_command(peek(p))) {
                arg *a = NULL;
                if (c->n_args > 0 && !peek(p)->space && peek(p)->type != TOK_LPAREN) {
                        char b[32];
                        return parse_error(p, peek(p)->pos, "unexpected %s: expected a space between arguments", tok_desc(peek(p), b));
                }
                r = parse_operand(p, c->n_args == 0, &a);
                if (r < 0)
                        return r;
                *tail = a;
                tail = &a->next;
                c->n_args++;
        }
        if (c->n_args == 0) {
                char b[32];
                return parse_error(p, peek(p)->pos, "missing value before %s: expected a field, variable, function or literal",
                                   tok_desc(peek(p), b));
        }
        if (c->args->type == ARG_FUNC) {
                const func *f = c->args->fn;
                int n = (int) c->n_args - 1 + (piped ? 1 : 0);
                if (n < f->min_args || (f->max_args >= 0 && n > f->max_args)) {
                        if (f->max_args < 0)
                                return parse_error(p, c->pos, "wrong number of arguments for %s: expected at least %d, got %d",
                                                   f->name, f->min_args, n);
                        if (f->min_args == f->max_args)
                                return parse_error(p, c->pos, "wrong number of arguments for %s: expected %d, got %d",
                                                   f->name, f->min_args, n);
                        return parse_error(p, c->pos, "wrong number of arguments for %s: expected %d to %d, got %d",
                                           f->name, f->min_args, f->max_args, n);
                }
        } else if (piped || c->n_args > 1)
                return parse_error(p, piped ? c->pos : c->args->next->pos,
                                   "can't give an argument to a non-function: only a function (json, upper, ...) can follow \"|\" or take arguments");
        *ret = c;
        return 0;
}

static int parse_pipeline(parser *p, const char *context, int decl_mode, pipeline **ret) {
        pipeline *pl = tpl_alloc(p->t, sizeof *pl);
        const token *decl_toks[2] = { NULL, NULL };
        bool assign = false;
        cmd **tail;
        int r;

        if (!pl)
                return -ENOMEM;
        if (++p->depth > TPL_MAX_DEPTH)
                return parse_error(p, peek(p)->pos, "template nested too deeply (more than %d levels)", TPL_MAX_DEPTH);
        pl->pos = peek(p)->pos;

        /* declarations: $x := / $x = / $i, $e := (range) */
        if (decl_mode != DECL_NONE && peek(p)->type == TOK_VAR) {
                const token *t1 = peek_at(p, 1);
                if (t1->type == TOK_DECLARE || t1->type == TOK_ASSIGN) {
                        decl_toks[0] = next(p);
                        assign = next(p)->type == TOK_ASSIGN;
                        pl->n_decl = 1;
                } else if (decl_mode == DECL_RANGE && t1->type == TOK_COMMA && peek_at(p, 2)->type == TOK_VAR &&
                           peek_at(p, 3)->type == TOK_DECLARE) {
                        decl_toks[0] = next(p);
                        next(p);
                        decl_toks[1] = next(p);
                        next(p);
                        pl->n_decl = 2;
                } else if (decl_mode == DECL_ONE && t1->type == TOK_COMMA)
                        return parse_error(p, t1->pos, "too many declarations in %s: only {{range}} declares two variables", context);
                for (size_t k = 0; k < pl->n_decl; k++)
                        if (decl_toks[k]->len == 1)
                                return parse_error(p, decl_toks[k]->pos, "cannot declare or assign \"$\": it always holds the whole batch");
        }

        tail = &pl->cmds;
        for (bool piped = false;; piped = true) {
                cmd *c = NULL;
                r = parse_command(p, piped, &c);
                if (r < 0)
                        return r;
                *tail = c;
                tail = &c->next;
                if (peek(p)->type != TOK_PIPE)
                        break;
                next(p);
        }

        /* declared after the pipeline: "$x := $x" refers to an outer $x */
        for (size_t k = 0; k < pl->n_decl; k++) {
                if (assign) {
                        const var *v = find_var(p, decl_toks[k]->s, decl_toks[k]->len);
                        if (!v)
                                return parse_error(p, decl_toks[k]->pos, "undefined variable \"%.*s\": use := to declare it",
                                                   (int) MIN(decl_toks[k]->len, 40u), decl_toks[k]->s);
                        pl->decl[k] = v->slot;
                } else {
                        r = declare_var(p, decl_toks[k], &pl->decl[k]);
                        if (r < 0)
                                return r;
                }
        }
        p->depth--;
        *ret = pl;
        return 0;
}

enum list_end {
        END_EOF,
        END_END,                /* {{end}} consumed */
        END_ELSE,               /* "{{else" consumed; next token follows "else" */
};

static int parse_list(parser *p, node **ret, enum list_end *how, size_t *end_pos);

static int parse_control(parser *p, enum node_type type, const char *name, size_t start_pos, node **ret) {
        node *nd = tpl_alloc(p->t, sizeof *nd);
        size_t mark = p->n_vars, end_pos;
        enum list_end how;
        unsigned line, column;
        int r;

        if (!nd)
                return -ENOMEM;
        if (++p->depth > TPL_MAX_DEPTH)
                return parse_error(p, start_pos, "template nested too deeply (more than %d levels)", TPL_MAX_DEPTH);
        nd->type = type;
        nd->pos = start_pos;
        if (ends_command(peek(p)))
                return parse_error(p, peek(p)->pos, "missing value for {{%s}}: expected a pipeline such as {{%s .Field}}", name, name);
        r = parse_pipeline(p, name, type == NODE_RANGE ? DECL_RANGE : DECL_ONE, &nd->pipe);
        if (r < 0)
                return r;
        r = expect_right(p, name);
        if (r < 0)
                return r;
        r = parse_list(p, &nd->list, &how, &end_pos);
        if (r < 0)
                return r;
        if (how == END_ELSE) {
                const token *t = peek(p);
                /* the else branch still sees the pipeline's variables */
                if ((type == NODE_IF && tok_is(t, "if")) || (type == NODE_WITH && tok_is(t, "with"))) {
                        /* {{else if ...}}: a nested control that shares our {{end}} */
                        next(p);
                        r = parse_control(p, type, name, t->pos, &nd->else_list);
                        if (r < 0)
                                return r;
                } else {
                        r = expect_right(p, "{{else}}");
                        if (r < 0)
                                return r;
                        r = parse_list(p, &nd->else_list, &how, &end_pos);
                        if (r < 0)
                                return r;
                        if (how == END_ELSE)
                                return parse_error(p, end_pos, "unexpected second {{else}} in {{%s}}: expected {{end}}", name);
                }
        }
        if (how == END_EOF) {
                pos_to_line_column(p, start_pos, &line, &column);
                return parse_error(p, p->len, "missing {{end}} for {{%s}} started at %u:%u", name, line, column);
        }
        p->n_vars = mark;
        p->depth--;
        *ret = nd;
        return 0;
}

static int parse_list(parser *p, node **ret, enum list_end *how, size_t *end_pos) {
        node **tail = ret;
        char b[32];
        int r;

        for (;;) {
                const token *t = next(p);
                node *nd = NULL;

                if (t->type == TOK_EOF) {
                        *how = END_EOF;
                        return 0;
                }
                if (t->type == TOK_TEXT) {
                        nd = tpl_alloc(p->t, sizeof *nd);
                        if (!nd)
                                return -ENOMEM;
                        nd->type = NODE_TEXT;
                        nd->pos = t->pos;
                        nd->text = t->s;
                        nd->len = t->len;
                } else if (t->type == TOK_LEFT) {
                        const token *w = peek(p);
                        if (tok_is(w, "end")) {
                                next(p);
                                *how = END_END;
                                *end_pos = t->pos;
                                return expect_right(p, "{{end}}");
                        }
                        if (tok_is(w, "else")) {
                                next(p);
                                *how = END_ELSE;
                                *end_pos = t->pos;
                                return 0;
                        }
                        if (tok_is(w, "if") || tok_is(w, "range") || tok_is(w, "with")) {
                                enum node_type type = tok_is(w, "if") ? NODE_IF : tok_is(w, "range") ? NODE_RANGE : NODE_WITH;
                                next(p);
                                r = parse_control(p, type, type == NODE_IF ? "if" : type == NODE_RANGE ? "range" : "with", t->pos, &nd);
                                if (r < 0)
                                        return r;
                        } else if (tok_is(w, "define") || tok_is(w, "template") || tok_is(w, "block") ||
                                   tok_is(w, "break") || tok_is(w, "continue")) {
                                return parse_error(p, w->pos, "{{%.*s}} is not supported by Spillway templates: use if, range, with and variables",
                                                   (int) w->len, w->s);
                        } else {
                                nd = tpl_alloc(p->t, sizeof *nd);
                                if (!nd)
                                        return -ENOMEM;
                                nd->type = NODE_ACTION;
                                nd->pos = t->pos;
                                r = parse_pipeline(p, "action", DECL_ONE, &nd->pipe);
                                if (r < 0)
                                        return r;
                                r = expect_right(p, "action");
                                if (r < 0)
                                        return r;
                        }
                } else
                        return parse_error(p, t->pos, "unexpected %s: expected text or \"{{\"", tok_desc(t, b));
                *tail = nd;
                tail = &nd->next;
        }
}

int tpl_compile(const char *text, size_t len, tpl_origin origin, tpl **ret, tpl_error *err) {
        _cleanup_(tpl_freep) tpl *t = NULL;
        parser p = { 0 };
        enum list_end how;
        size_t end_pos = 0;
        int r;

        *err = (tpl_error) { origin.line, origin.column, "" };
        if (len > TPL_MAX_SOURCE) {
                snprintf(err->message, sizeof err->message,
                         "template is %zu bytes long: expected at most %u", len, TPL_MAX_SOURCE);
                return -EINVAL;
        }
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->src = malloc(len + 1);
        if (!t->src)
                return -ENOMEM;
        memcpy(t->src, text, len);
        t->src[len] = 0;
        t->src_len = len;
        p = (parser) { .t = t, .src = t->src, .len = len, .origin = origin, .err = err };
        /* $ is always there: slot 0, the data */
        r = declare_var(&p, &(token) { .type = TOK_VAR, .s = "$", .len = 1 }, &(size_t) { 0 });
        if (r >= 0)
                r = lex(&p);
        if (r >= 0) {
                r = parse_list(&p, &t->root, &how, &end_pos);
                if (r >= 0 && how == END_END)
                        r = parse_error(&p, end_pos, "unexpected {{end}}: no {{if}}, {{range}} or {{with}} to close");
                else if (r >= 0 && how == END_ELSE)
                        r = parse_error(&p, end_pos, "unexpected {{else}} outside {{if}}, {{range}} or {{with}}");
        }
        free(p.toks);
        free(p.vars);
        if (r < 0) {
                if (r == -ENOMEM && !p.failed)
                        snprintf(err->message, sizeof err->message, "out of memory compiling the template");
                return r;
        }
        *ret = t;
        t = NULL;
        return 0;
}

/* ------------------------------------------------------------- evaluation */

struct renderer {
        const tpl *t;
        strbuf *out;
        size_t max_output;
        json_t **slots;
        uint64_t steps;
        int error;
};

static bool step(renderer *r) {
        if (r->error)
                return false;
        if (++r->steps > TPL_MAX_STEPS) {
                r->error = -E2BIG;
                return false;
        }
        return true;
}

static void check_output(renderer *r) {
        if (r->out->oom)
                r->error = -ENOMEM;
        else if (r->out->len > r->max_output)
                r->error = -E2BIG;
}

static bool truth(json_t *v) {
        if (!v)
                return false;
        switch (json_typeof(v)) {
        case JSON_OBJECT:  return json_object_size(v) > 0;
        case JSON_ARRAY:   return json_array_size(v) > 0;
        case JSON_STRING:  return json_string_length(v) > 0;
        case JSON_INTEGER: return json_integer_value(v) != 0;
        case JSON_REAL:    return json_real_value(v) != 0;
        case JSON_TRUE:    return true;
        default:           return false;
        }
}

static int dump_to_wbuf(const char *buffer, size_t size, void *data) {
        strbuf_append(data, buffer, size);
        return ((strbuf *) data)->oom ? -1 : 0;
}

void tpl_print_value(strbuf *out, json_t *v) {
        if (!v)
                return;
        switch (json_typeof(v)) {
        case JSON_STRING:
                strbuf_append(out, json_string_value(v), json_string_length(v));
                break;
        case JSON_INTEGER:
                strbuf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                break;
        case JSON_REAL: {
                /* the shortest text that reads back as the same double */
                double d = json_real_value(v);
                char buf[40];
                for (int prec = 15; prec <= 17; prec++) {
                        snprintf(buf, sizeof buf, "%.*g", prec, d);
                        if (strtod(buf, NULL) == d)
                                break;
                }
                strbuf_puts(out, buf);
                break;
        }
        case JSON_TRUE:
                strbuf_puts(out, "true");
                break;
        case JSON_FALSE:
                strbuf_puts(out, "false");
                break;
        case JSON_NULL:
                break;
        default:
                json_dump_callback(v, dump_to_wbuf, out, TPL_JSON_FLAGS);
                break;
        }
}

/* Field names the template accepts beside the JSON names: Go's struct field
 * names of CrowdSec v0.3's SignalOccurence / BanApplication where they differ
 * from the wire by more than case, and a few CrowdSec v1 models.Alert names
 * so that notification templates written for CrowdSec keep working. */
static const struct {
        const char *name;
        const char *target;
} field_aliases[] = {
        { "Dest_ip", "dst_ip" },
        { "BanApplications", "ban_applications" },
        { "Bans", "ban_applications" },
        { "Decisions", "ban_applications" },
        { "Events", "events_sequence" },
        { "Message", "alert_message" },
        { "EventsCount", "events_count" },
        { "StartAt", "start_at" },
        { "StopAt", "stop_at" },
        { "Simulated", "Simulation" },
        { "Cn", "Country" },
        { "AsNumber", "AutonomousSystemNumber" },
        { "AsName", "AutonomousSystemOrganization" },
        { "Value", "Ip" },
        { "Value", "IpText" },
        { "Type", "MeasureType" },
        { "Origin", "MeasureSource" },
};

static json_t *lookup_field(json_t *v, const char *name) {
        const char *key;
        json_t *x;

        if (!json_is_object(v))
                return NULL;
        x = json_object_get(v, name);
        if (x)
                return x;
        for (size_t i = 0; i < ELEMENTSOF(field_aliases); i++)
                if (strcmp(field_aliases[i].name, name) == 0 && (x = json_object_get(v, field_aliases[i].target)))
                        return x;
        json_object_foreach(v, key, x)
                if (strcasecmp(key, name) == 0)
                        return x;
        return NULL;
}

/* Follow the chain from v (borrowed); returns a new reference or NULL. */
static json_t *follow_chain(json_t *v, const field *chain) {
        for (const field *f = chain; f && v; f = f->next)
                v = lookup_field(v, f->name);
        return json_incref(v);
}

static json_t *eval_pipeline(renderer *r, const pipeline *pl, json_t *dot, bool assign);

static json_t *eval_arg(renderer *r, const arg *a, json_t *dot) {
        json_t *v, *res;

        switch (a->type) {
        case ARG_FIELD:
                return follow_chain(dot, a->chain);
        case ARG_VAR:
                return follow_chain(r->slots[a->slot], a->chain);
        case ARG_LITERAL:
                return json_incref(a->literal);
        case ARG_NIL:
                return json_null();
        case ARG_PIPE:
                v = eval_pipeline(r, a->pipe, dot, false);
                res = follow_chain(v, a->chain);
                json_decref(v);
                return res;
        case ARG_FUNC:
        default:
                return NULL; /* refused at compile time */
        }
}

static json_t *eval_command(renderer *r, const cmd *c, json_t *dot, json_t *piped, bool has_piped) {
        json_t *argv[16], **args = argv, *res;
        size_t n = 0, want = c->n_args - 1 + (has_piped ? 1 : 0);

        if (!step(r))
                return NULL;
        if (c->args->type != ARG_FUNC)
                return eval_arg(r, c->args, dot);

        if (want > ELEMENTSOF(argv)) {
                args = calloc(want, sizeof *args);
                if (!args) {
                        r->error = -ENOMEM;
                        return NULL;
                }
        }
        for (const arg *a = c->args->next; a; a = a->next)
                args[n++] = eval_arg(r, a, dot);
        if (has_piped)
                args[n++] = json_incref(piped);
        res = r->error ? NULL : c->args->fn->fn(r, args, n);
        for (size_t i = 0; i < n; i++)
                json_decref(args[i]);
        if (args != argv)
                free(args);
        return res;
}

static void set_slot(renderer *r, size_t slot, json_t *v) {
        json_decref(r->slots[slot]);
        r->slots[slot] = json_incref(v);
}

static json_t *eval_pipeline(renderer *r, const pipeline *pl, json_t *dot, bool assign) {
        json_t *v = NULL;
        bool has = false;

        for (const cmd *c = pl->cmds; c && !r->error; c = c->next) {
                json_t *nv = eval_command(r, c, dot, v, has);
                json_decref(v);
                v = nv;
                has = true;
        }
        if (r->error) {
                json_decref(v);
                return NULL;
        }
        if (assign && pl->n_decl == 1)
                set_slot(r, pl->decl[0], v);
        return v;
}

static void exec_list(renderer *r, const node *list, json_t *dot);

static int key_cmp(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static void exec_range(renderer *r, const node *nd, json_t *dot) {
        json_t *v = eval_pipeline(r, nd->pipe, dot, false);
        const pipeline *pl = nd->pipe;
        size_t n = 0;

        if (json_is_array(v) && json_array_size(v) > 0) {
                n = json_array_size(v);
                for (size_t i = 0; i < n && !r->error; i++) {
                        json_t *e = json_array_get(v, i);
                        if (pl->n_decl == 1)
                                set_slot(r, pl->decl[0], e);
                        else if (pl->n_decl == 2) {
                                json_t *idx = json_integer((json_int_t) i);
                                if (!idx) {
                                        r->error = -ENOMEM;
                                        break;
                                }
                                set_slot(r, pl->decl[0], idx);
                                json_decref(idx);
                                set_slot(r, pl->decl[1], e);
                        }
                        exec_list(r, nd->list, e);
                }
        } else if (json_is_object(v) && json_object_size(v) > 0) {
                /* Go ranges over a map in sorted key order */
                const char **keys = calloc(json_object_size(v), sizeof *keys);
                const char *key;
                json_t *e;

                if (!keys) {
                        r->error = -ENOMEM;
                        json_decref(v);
                        return;
                }
                json_object_foreach(v, key, e)
                        keys[n++] = key;
                qsort(keys, n, sizeof *keys, key_cmp);
                for (size_t i = 0; i < n && !r->error; i++) {
                        e = json_object_get(v, keys[i]);
                        if (pl->n_decl == 1)
                                set_slot(r, pl->decl[0], e);
                        else if (pl->n_decl == 2) {
                                json_t *k = json_string(keys[i]);
                                if (!k) {
                                        r->error = -ENOMEM;
                                        break;
                                }
                                set_slot(r, pl->decl[0], k);
                                json_decref(k);
                                set_slot(r, pl->decl[1], e);
                        }
                        exec_list(r, nd->list, e);
                }
                free(keys);
        } else if (!r->error)
                exec_list(r, nd->else_list, dot);
        json_decref(v);
}

static void exec_list(renderer *r, const node *list, json_t *dot) {
        for (const node *nd = list; nd && step(r); nd = nd->next) {
                json_t *v;

                switch (nd->type) {
                case NODE_TEXT:
                        strbuf_append(r->out, nd->text, nd->len);
                        check_output(r);
                        break;
                case NODE_ACTION:
                        v = eval_pipeline(r, nd->pipe, dot, true);
                        if (!r->error && nd->pipe->n_decl == 0) {
                                tpl_print_value(r->out, v);
                                check_output(r);
                        }
                        json_decref(v);
                        break;
                case NODE_IF:
                        v = eval_pipeline(r, nd->pipe, dot, true);
                        if (!r->error)
                                exec_list(r, truth(v) ? nd->list : nd->else_list, dot);
                        json_decref(v);
                        break;
                case NODE_WITH:
                        v = eval_pipeline(r, nd->pipe, dot, true);
                        if (!r->error) {
                                if (truth(v))
                                        exec_list(r, nd->list, v);
                                else
                                        exec_list(r, nd->else_list, dot);
                        }
                        json_decref(v);
                        break;
                case NODE_RANGE:
                        exec_range(r, nd, dot);
                        break;
                }
        }
}

int tpl_render(const tpl *t, json_t *data, strbuf *out, size_t max_output) {
        renderer r = { .t = t, .out = out, .max_output = max_output };

        r.slots = calloc(t->n_slots, sizeof *r.slots);
        if (!r.slots)
                return -ENOMEM;
        r.slots[0] = json_incref(data);
        exec_list(&r, t->root, data);
        for (size_t i = 0; i < t->n_slots; i++)
                json_decref(r.slots[i]);
        free(r.slots);
        if (!r.error && out->oom)
                r.error = -ENOMEM;
        return r.error;
}

/* -------------------------------------------------------------- functions */

static json_t *string_result(renderer *r, strbuf *b) {
        json_t *v = NULL;

        if (!b->oom)
                v = json_stringn_nocheck(b->data ? b->data : "", b->len);
        if (!v)
                r->error = -ENOMEM;
        strbuf_deinit(b);
        return v;
}

/* The printed text of v, made valid UTF-8 (a string value always is). */
static void text_of(strbuf *b, json_t *v) {
        tpl_print_value(b, v);
}

static json_t *fn_json(renderer *r, json_t **a, size_t n) {
        strbuf t = { 0 }, b = { 0 };
        text_of(&t, a[0]);
        strbuf_putc(&b, '"');
        strbuf_json_escape(&b, strbuf_str(&t), t.len);
        strbuf_putc(&b, '"');
        if (t.oom)
                b.oom = true;
        strbuf_deinit(&t);
        return string_result(r, &b);
}

static json_t *fn_jsonesc(renderer *r, json_t **a, size_t n) {
        strbuf t = { 0 }, b = { 0 };
        text_of(&t, a[0]);
        strbuf_json_escape(&b, strbuf_str(&t), t.len);
        if (t.oom)
                b.oom = true;
        strbuf_deinit(&t);
        return string_result(r, &b);
}

static json_t *fn_tojson(renderer *r, json_t **a, size_t n) {
        strbuf b = { 0 };
        if (!a[0])
                strbuf_puts(&b, "null");
        else if (json_dump_callback(a[0], dump_to_wbuf, &b, TPL_JSON_FLAGS) < 0)
                b.oom = true;
        return string_result(r, &b);
}

static json_t *fn_urlquery(renderer *r, json_t **a, size_t n) {
        strbuf t = { 0 }, b = { 0 };
        for (size_t i = 0; i < n; i++)
                text_of(&t, a[i]);
        wh_query_escape(&b, strbuf_str(&t), t.len);
        if (t.oom)
                b.oom = true;
        strbuf_deinit(&t);
        return string_result(r, &b);
}

static json_t *change_case(renderer *r, json_t *v, int (*conv)(int)) {
        strbuf b = { 0 };
        text_of(&b, v);
        for (size_t i = 0; i < b.len; i++)
                if (!((unsigned char) b.data[i] & 0x80))
                        b.data[i] = (char) conv((unsigned char) b.data[i]);
        return string_result(r, &b);
}

static json_t *fn_upper(renderer *r, json_t **a, size_t n) {
        return change_case(r, a[0], toupper);
}

static json_t *fn_lower(renderer *r, json_t **a, size_t n) {
        return change_case(r, a[0], tolower);
}

static json_t *fn_len(renderer *r, json_t **a, size_t n) {
        size_t l = 0;
        json_t *v;

        if (json_is_array(a[0]))
                l = json_array_size(a[0]);
        else if (json_is_object(a[0]))
                l = json_object_size(a[0]);
        else if (json_is_string(a[0]))
                l = json_string_length(a[0]);
        v = json_integer((json_int_t) l);
        if (!v)
                r->error = -ENOMEM;
        return v;
}

static json_t *fn_index(renderer *r, json_t **a, size_t n) {
        json_t *v = a[0];

        for (size_t i = 1; i < n && v; i++) {
                if (json_is_object(v) && json_is_string(a[i]))
                        v = json_object_get(v, json_string_value(a[i]));
                else if (json_is_array(v) && json_is_integer(a[i]) && json_integer_value(a[i]) >= 0)
                        v = json_array_get(v, (size_t) json_integer_value(a[i]));
                else
                        v = NULL;
        }
        return json_incref(v);
}

static json_t *fn_default(renderer *r, json_t **a, size_t n) {
        return json_incref(truth(a[1]) ? a[1] : a[0]);
}

static json_t *fn_not(renderer *r, json_t **a, size_t n) {
        return json_boolean(!truth(a[0]));
}

static json_t *fn_and(renderer *r, json_t **a, size_t n) {
        for (size_t i = 0; i + 1 < n; i++)
                if (!truth(a[i]))
                        return json_incref(a[i]);
        return json_incref(a[n - 1]);
}

static json_t *fn_or(renderer *r, json_t **a, size_t n) {
        for (size_t i = 0; i + 1 < n; i++)
                if (truth(a[i]))
                        return json_incref(a[i]);
        return json_incref(a[n - 1]);
}

/* -2: not comparable; else -1/0/1 */
static int compare(json_t *x, json_t *y) {
        if (json_is_number(x) && json_is_number(y)) {
                if (json_is_integer(x) && json_is_integer(y)) {
                        json_int_t a = json_integer_value(x), b = json_integer_value(y);
                        return a < b ? -1 : a > b;
                }
                double a = json_number_value(x), b = json_number_value(y);
                return a < b ? -1 : a > b;
        }
        if (json_is_string(x) && json_is_string(y)) {
                size_t la = json_string_length(x), lb = json_string_length(y);
                int c = memcmp(json_string_value(x), json_string_value(y), MIN(la, lb));
                if (c == 0)
                        c = la < lb ? -1 : la > lb;
                return c < 0 ? -1 : c > 0;
        }
        return -2;
}

static bool equal(json_t *x, json_t *y) {
        int c;
        if ((!x || json_is_null(x)) && (!y || json_is_null(y)))
                return true;
        if (!x || !y)
                return false;
        c = compare(x, y);
        if (c != -2)
                return c == 0;
        return json_equal(x, y);
}

static json_t *fn_eq(renderer *r, json_t **a, size_t n) {
        /* Go: eq arg1 arg2 arg3 is arg1==arg2 || arg1==arg3 */
        for (size_t i = 1; i < n; i++)
                if (equal(a[0], a[i]))
                        return json_true();
        return json_false();
}

static json_t *fn_ne(renderer *r, json_t **a, size_t n) {
        return json_boolean(!equal(a[0], a[1]));
}

static json_t *fn_lt(renderer *r, json_t **a, size_t n) {
        return json_boolean(compare(a[0], a[1]) == -1);
}

static json_t *fn_le(renderer *r, json_t **a, size_t n) {
        int c = compare(a[0], a[1]);
        return json_boolean(c == -1 || c == 0);
}

static json_t *fn_gt(renderer *r, json_t **a, size_t n) {
        return json_boolean(compare(a[0], a[1]) == 1);
}

static json_t *fn_ge(renderer *r, json_t **a, size_t n) {
        int c = compare(a[0], a[1]);
        return json_boolean(c == 1 || c == 0);
}

static const func funcs[] = {
        { "json",     1,  1, fn_json },
        { "jsonesc",  1,  1, fn_jsonesc },
        { "toJson",   1,  1, fn_tojson },
        { "urlquery", 1, -1, fn_urlquery },
        { "upper",    1,  1, fn_upper },
        { "lower",    1,  1, fn_lower },
        { "len",      1,  1, fn_len },
        { "index",    1, -1, fn_index },
        { "default",  2,  2, fn_default },
        { "not",      1,  1, fn_not },
        { "and",      1, -1, fn_and },
        { "or",       1, -1, fn_or },
        { "eq",       2, -1, fn_eq },
        { "ne",       2,  2, fn_ne },
        { "lt",       2,  2, fn_lt },
        { "le",       2,  2, fn_le },
        { "gt",       2,  2, fn_gt },
        { "ge",       2,  2, fn_ge },
};

static const func *find_func(const char *name, size_t len) {
        for (size_t i = 0; i < ELEMENTSOF(funcs); i++)
                if (strlen(funcs[i].name) == len && memcmp(funcs[i].name, name, len) == 0)
                        return &funcs[i];
        return NULL;
}
