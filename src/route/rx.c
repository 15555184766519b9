/* SPDX-License-Identifier: MIT */
/*
 * A small regular-expression engine for `matches`: pattern -> syntax tree
 * (parse_*) -> program for a Pike VM (emit) -> Thompson NFA simulation
 * without captures (rx_search).
 *
 * Why not the C library: glibc's regexec() allocates on every call and its
 * running time on a failing unanchored search grows with the square of the
 * subject, or worse (measured idle on a 4 KiB subject: "(a+)+b" 24-60 ms,
 * "(((a{1,20}){1,20}){1,20})b" 5.3 s); subjects are signal fields, i.e.
 * producer input. CrowdSec's own `matches` is Go's RE2, which is linear.
 *
 * Invariants
 *   - The program has at most RX_MAX_PROGRAM instructions; its size is
 *     computed before anything is emitted.
 *   - rx_search() touches only arrays sized at compile time: two sparse sets
 *     of program counters (current and next position) and a stack for the
 *     epsilon closure. Each program counter enters a set at most once per
 *     position, so a step costs O(program) and a search O(subject x
 *     program), whatever the pattern; the closure stack never holds more
 *     than 2 x program + 1 entries.
 *   - Recursion (parser, size, emitter) is bounded by RX_MAX_NESTING groups:
 *     a repetition cannot directly repeat a repetition.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "rx.h"
#include "strutil.h"

typedef enum rnode_kind {
        R_EMPTY,
        R_BYTE,
        R_CLASS,
        R_ANY,
        R_ASSERT,
        R_CAT,
        R_ALT,
        R_REPEAT,
} rnode_kind;

enum {
        A_BEGIN, /* ^ \A */
        A_END,   /* $ \z */
        A_WORD,  /* \b */
        A_NWORD, /* \B */
};

typedef struct rnode rnode;
struct rnode {
        rnode_kind kind;
        size_t pos;
        uint8_t byte;   /* R_BYTE; R_ASSERT kind */
        uint32_t cls;   /* R_CLASS */
        rnode **kids;   /* R_CAT, R_ALT */
        size_t n_kids;
        rnode *sub;     /* R_REPEAT */
        int min, max;   /* max < 0: unbounded */
};

typedef struct rclass {
        uint64_t bits[4];
} rclass;

enum {
        I_BYTE,
        I_ANY, /* any byte but \n */
        I_CLASS,
        I_ASSERT,
        I_JMP,
        I_SPLIT,
        I_MATCH,
};

typedef struct rinst {
        uint8_t op;
        uint8_t byte;
        uint32_t x, y;
} rinst;

struct rx {
        rinst *prog;
        size_t n;
        rclass *classes;
        size_t n_classes;
        bool anchored; /* starts with ^: threads start at position 0 only */
        uint32_t *dense[2], *sparse[2];
        size_t count[2];
        uint32_t *stack;
};

typedef struct rparser {
        const uint8_t *p;
        size_t len, i;
        arena a;
        rclass *classes;
        size_t n_classes, cap_classes;
        unsigned depth;
        char *msg;
        size_t msg_size;
        size_t *offset;
        /* emitter */
        rinst *prog;
        size_t n;
} rparser;

static int rfail(rparser *p, size_t pos, const char *what) {
        snprintf(p->msg, p->msg_size, "%s", what);
        *p->offset = pos;
        return -EINVAL;
}

static rnode *rnew(rparser *p, rnode_kind kind, size_t pos) {
        rnode *n = arena_alloc(&p->a, sizeof *n);
        if (n) {
                n->kind = kind;
                n->pos = pos;
        }
        return n;
}

static int add_kid(rparser *p, rnode *n, rnode *kid, size_t *cap) {
        if (n->n_kids == *cap) {
                size_t ncap = *cap ? *cap * 2 : 4;
                rnode **k = arena_alloc(&p->a, ncap * sizeof *k);
                if (!k)
                        return -ENOMEM;
                if (n->n_kids)
                        memcpy(k, n->kids, n->n_kids * sizeof *k);
                n->kids = k;
                *cap = ncap;
        }
        n->kids[n->n_kids++] = kid;
        return 0;
}

/* ------------------------------------------------------------ classes */

static void set_add(rclass *c, uint8_t b) {
        c->bits[b >> 6] |= UINT64_C(1) << (b & 63);
}

static void set_range(rclass *c, unsigned lo, unsigned hi) {
        for (unsigned b = lo; b <= hi; b++)
                set_add(c, (uint8_t) b);
}

static inline bool class_has(const rclass *c, uint8_t b) {
        return (c->bits[b >> 6] >> (b & 63)) & 1;
}

static void set_invert(rclass *c) {
        for (int i = 0; i < 4; i++)
                c->bits[i] = ~c->bits[i];
}

static void set_union(rclass *c, const rclass *o) {
        for (int i = 0; i < 4; i++)
                c->bits[i] |= o->bits[i];
}

/* Named ASCII classes: POSIX [:name:] and the Perl/RE2 letters d w s. */
static bool named_class(const char *name, size_t len, rclass *c) {
#define IS(s) (len == sizeof(s) - 1 && memcmp(name, s, len) == 0)
        *c = (rclass) { { 0 } };
        if (IS("alpha")) {
                set_range(c, 'a', 'z');
                set_range(c, 'A', 'Z');
        } else if (IS("digit") || IS("d"))
                set_range(c, '0', '9');
        else if (IS("alnum")) {
                set_range(c, 'a', 'z');
                set_range(c, 'A', 'Z');
                set_range(c, '0', '9');
        } else if (IS("word") || IS("w")) {
                set_range(c, 'a', 'z');
                set_range(c, 'A', 'Z');
                set_range(c, '0', '9');
                set_add(c, '_');
        } else if (IS("upper"))
                set_range(c, 'A', 'Z');
        else if (IS("lower"))
                set_range(c, 'a', 'z');
        else if (IS("space")) {
                set_range(c, '\t', '\r'); /* \t \n \v \f \r */
                set_add(c, ' ');
        } else if (IS("s")) { /* RE2's \s: no \v */
                set_add(c, '\t');
                set_add(c, '\n');
                set_add(c, '\f');
                set_add(c, '\r');
                set_add(c, ' ');
        } else if (IS("blank")) {
                set_add(c, ' ');
                set_add(c, '\t');
        } else if (IS("punct")) {
                set_range(c, '!', '/');
                set_range(c, ':', '@');
                set_range(c, '[', '`');
                set_range(c, '{', '~');
        } else if (IS("print"))
                set_range(c, ' ', '~');
        else if (IS("graph"))
                set_range(c, '!', '~');
        else if (IS("cntrl")) {
                set_range(c, 0, 31);
                set_add(c, 127);
        } else if (IS("xdigit")) {
                set_range(c, '0', '9');
                set_range(c, 'a', 'f');
                set_range(c, 'A', 'F');
        } else
                return false;
        return true;
#undef IS
}

static int add_class(rparser *p, const rclass *c, uint32_t *idx) {
        if (p->n_classes == p->cap_classes) {
                size_t ncap = p->cap_classes ? p->cap_classes * 2 : 8;
                rclass *n = realloc(p->classes, ncap * sizeof *n);
                if (!n)
                        return -ENOMEM;
                p->classes = n;
                p->cap_classes = ncap;
        }
        p->classes[p->n_classes] = *c;
        *idx = (uint32_t) p->n_classes++;
        return 0;
}

static int class_node(rparser *p, const rclass *c, size_t pos, rnode **ret) {
        rnode *n = rnew(p, R_CLASS, pos);
        if (!n)
                return -ENOMEM;
        int r = add_class(p, c, &n->cls);
        if (r < 0)
                return r;
        *ret = n;
        return 0;
}

/* ------------------------------------------------------------ parser */

static bool is_alnum(uint8_t ch) {
        return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* An escape that stands for one byte: \n \t \r \f \v \a, \xHH, \<punctuation>.
 * Returns 1 with *b set, 0 when it is something else (a class or an
 * assertion, for the caller), or -EINVAL. p->i is at the backslash. */
static int escape_byte(rparser *p, uint8_t *b) {
        size_t at = p->i;
        uint8_t e;

        if (p->i + 1 >= p->len)
                return rfail(p, at, "trailing backslash");
        e = p->p[p->i + 1];
        switch (e) {
        case 'n': *b = '\n'; break;
        case 't': *b = '\t'; break;
        case 'r': *b = '\r'; break;
        case 'f': *b = '\f'; break;
        case 'v': *b = '\v'; break;
        case 'a': *b = '\a'; break;
        case 'x': {
                int h1 = p->i + 2 < p->len ? unhexchar((char) p->p[p->i + 2]) : -1;
                int h2 = p->i + 3 < p->len ? unhexchar((char) p->p[p->i + 3]) : -1;
                if (h1 < 0 || h2 < 0)
                        return rfail(p, at, "\\x needs two hexadecimal digits");
                *b = (uint8_t) (h1 * 16 + h2);
                p->i += 4;
                return 1;
        }
        case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
        case 'b': case 'B': case 'A': case 'z':
                return 0;
        default:
                if (e >= '1' && e <= '9')
                        return rfail(p, at, "back-references (\\1 ... \\9) are not supported");
                if (e == '0')
                        return rfail(p, at, "octal escapes are not supported (use \\xHH)");
                if (e == 'p' || e == 'P')
                        return rfail(p, at, "Unicode classes (\\p{...}) are not supported");
                if (e == 'Q' || e == 'E' || e == 'C' || e == 'K' || e == 'Z' || e == 'G')
                        return rfail(p, at, "this escape is not supported");
                if (is_alnum(e))
                        return rfail(p, at, "unknown escape sequence");
                *b = e; /* an escaped punctuation (or any non-alphanumeric) byte is itself */
                break;
        }
        p->i += 2;
        return 1;
}

/* \d \D \w \W \s \S as a class; p->i at the backslash. */
static bool escape_class(rparser *p, rclass *c) {
        uint8_t e = p->p[p->i + 1];
        char name[2] = { (char) (e | 0x20), 0 };
        if (!strchr("dDwWsS", e))
                return false;
        named_class(name, 1, c);
        if (e >= 'A' && e <= 'Z')
                set_invert(c);
        p->i += 2;
        return true;
}

static int parse_bracket(rparser *p, rnode **ret) {
        size_t open = p->i;
        bool neg = false, first = true;
        rclass set = { { 0 } };

        p->i++;
        if (p->i < p->len && p->p[p->i] == '^') {
                neg = true;
                p->i++;
        }
        for (;;) {
                uint8_t lo, hi;
                int r;

                if (p->i >= p->len)
                        return rfail(p, open, "missing ] to close the bracket expression");
                uint8_t ch = p->p[p->i];
                if (ch == ']' && !first) {
                        p->i++;
                        break;
                }
                first = false;
                if (ch == '[' && p->i + 1 < p->len && (p->p[p->i + 1] == ':' || p->p[p->i + 1] == '=' ||
                                                       p->p[p->i + 1] == '.')) {
                        uint8_t kind = p->p[p->i + 1];
                        size_t start = p->i + 2, end = start;
                        rclass c;
                        if (kind != ':')
                                return rfail(p, p->i, "[=x=] and [.x.] are not supported");
                        while (end + 1 < p->len && !(p->p[end] == ':' && p->p[end + 1] == ']'))
                                end++;
                        if (end + 1 >= p->len)
                                return rfail(p, p->i, "missing :] to close the character class name");
                        if (!named_class((const char *) p->p + start, end - start, &c))
                                return rfail(p, p->i, "unknown character class (expected [:alpha:], [:digit:], "
                                             "[:alnum:], [:space:], [:upper:], [:lower:], [:punct:], [:xdigit:] ...)");
                        set_union(&set, &c);
                        p->i = end + 2;
                        continue;
                }
                if (ch == '\\') {
                        rclass c;
                        if (p->i + 1 < p->len && escape_class(p, &c)) {
                                set_union(&set, &c);
                                continue;
                        }
                        r = escape_byte(p, &lo);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                return rfail(p, p->i, "this escape cannot be used inside [...]");
                } else {
                        if (ch >= 0x80)
                                return rfail(p, p->i, "non-ASCII characters inside [...] are not supported "
                                             "(matching is byte by byte)");
                        lo = ch;
                        p->i++;
                }
                hi = lo;
                if (p->i + 1 < p->len && p->p[p->i] == '-' && p->p[p->i + 1] != ']') {
                        size_t range_at = p->i;
                        p->i++;
                        ch = p->p[p->i];
                        if (ch == '\\') {
                                r = escape_byte(p, &hi);
                                if (r < 0)
                                        return r;
                                if (r == 0)
                                        return rfail(p, range_at, "invalid range");
                        } else if (ch == '[' && p->i + 1 < p->len && p->p[p->i + 1] == ':')
                                return rfail(p, range_at, "invalid range");
                        else {
                                if (ch >= 0x80)
                                        return rfail(p, p->i, "non-ASCII characters inside [...] are not supported "
                                                     "(matching is byte by byte)");
                                hi = ch;
                                p->i++;
                        }
                        if (hi < lo)
                                return rfail(p, range_at, "invalid range (its end comes before its start)");
                }
                set_range(&set, lo, hi);
        }
        if (neg)
                set_invert(&set);
        return class_node(p, &set, open, ret);
}

/* Is there a valid interval {m}, {m,} or {m,n} at p->i? Parses it if so. */
static int parse_interval(rparser *p, bool *found, int *min, int *max) {
        size_t i = p->i + 1;
        unsigned long lo = 0, hi;
        bool digits = false;

        *found = false;
        while (i < p->len && p->p[i] >= '0' && p->p[i] <= '9') {
                lo = MIN(lo * 10 + (p->p[i] - '0'), (unsigned long) RX_MAX_REPEAT + 1);
                digits = true;
                i++;
        }
        if (!digits)
                return 0;
        hi = lo;
        if (i < p->len && p->p[i] == ',') {
                i++;
                if (i < p->len && p->p[i] == '}')
                        hi = ULONG_MAX;
                else {
                        digits = false;
                        hi = 0;
                        while (i < p->len && p->p[i] >= '0' && p->p[i] <= '9') {
                                hi = MIN(hi * 10 + (p->p[i] - '0'), (unsigned long) RX_MAX_REPEAT + 1);
                                digits = true;
                                i++;
                        }
                        if (!digits)
                                return 0;
                }
        }
        if (i >= p->len || p->p[i] != '}')
                return 0; /* not an interval: a literal '{', as in Go */
        if (lo > RX_MAX_REPEAT || (hi != ULONG_MAX && hi > RX_MAX_REPEAT))
                return rfail(p, p->i, "repetition count larger than 1000");
        if (hi != ULONG_MAX && hi < lo)
                return rfail(p, p->i, "invalid repetition {m,n}: n is smaller than m");
        *found = true;
        *min = (int) lo;
        *max = hi == ULONG_MAX ? -1 : (int) hi;
        p->i = i + 1;
        return 0;
}

static int parse_alt(rparser *p, rnode **ret);

static int parse_atom(rparser *p, rnode **ret) {
        size_t at = p->i;
        uint8_t ch = p->p[p->i];
        rnode *n;
        int r;

        switch (ch) {
        case '(':
                if (p->depth >= RX_MAX_NESTING)
                        return rfail(p, at, "groups nested too deeply (more than 32)");
                p->i++;
                if (p->i + 1 < p->len && p->p[p->i] == '?' && p->p[p->i + 1] == ':')
                        p->i += 2; /* (?:...) groups without capture: the same here */
                else if (p->i < p->len && p->p[p->i] == '?')
                        return rfail(p, at, "(?...) flags and named groups are not supported");
                p->depth++;
                r = parse_alt(p, &n);
                if (r < 0)
                        return r;
                p->depth--;
                if (p->i >= p->len || p->p[p->i] != ')')
                        return rfail(p, at, "missing ) to close the group");
                p->i++;
                *ret = n;
                return 0;
        case '[':
                return parse_bracket(p, ret);
        case '*':
        case '+':
        case '?':
                return rfail(p, at, "missing argument to repetition operator (nothing before it to repeat)");
        case '{': {
                bool found;
                int mn, mx;
                r = parse_interval(p, &found, &mn, &mx);
                if (r < 0)
                        return r;
                if (found)
                        return rfail(p, at, "missing argument to repetition operator (nothing before it to repeat)");
                n = rnew(p, R_BYTE, at);
                if (!n)
                        return -ENOMEM;
                n->byte = '{';
                p->i++;
                *ret = n;
                return 0;
        }
        case '.':
                n = rnew(p, R_ANY, at);
                p->i++;
                break;
        case '^':
        case '$':
                n = rnew(p, R_ASSERT, at);
                if (n)
                        n->byte = ch == '^' ? A_BEGIN : A_END;
                p->i++;
                break;
        case '\\': {
                rclass c;
                uint8_t b;
                if (p->i + 1 < p->len && escape_class(p, &c))
                        return class_node(p, &c, at, ret);
                r = escape_byte(p, &b);
                if (r < 0)
                        return r;
                if (r == 0) { /* \b \B \A \z */
                        uint8_t e = p->p[p->i + 1];
                        n = rnew(p, R_ASSERT, at);
                        if (n)
                                n->byte = e == 'b' ? A_WORD : e == 'B' ? A_NWORD : e == 'A' ? A_BEGIN : A_END;
                        p->i += 2;
                } else {
                        n = rnew(p, R_BYTE, at);
                        if (n)
                                n->byte = b;
                }
                break;
        }
        default:
                n = rnew(p, R_BYTE, at);
                if (n)
                        n->byte = ch;
                p->i++;
                break;
        }
        if (!n)
                return -ENOMEM;
        *ret = n;
        return 0;
}

static int parse_repeat(rparser *p, rnode **ret) {
        rnode *atom;
        bool repeated = false, lazy = false;
        int r = parse_atom(p, &atom);

        if (r < 0)
                return r;
        while (p->i < p->len) {
                size_t at = p->i;
                uint8_t ch = p->p[p->i];
                int mn, mx;

                if (ch == '*' || ch == '+' || ch == '?') {
                        if (repeated && ch == '?' && !lazy) {
                                /* a lazy quantifier (RE2): the same for a yes/no match */
                                lazy = true;
                                p->i++;
                                continue;
                        }
                        mn = ch == '+';
                        mx = ch == '?' ? 1 : -1;
                        p->i++;
                } else if (ch == '{') {
                        bool found;
                        r = parse_interval(p, &found, &mn, &mx);
                        if (r < 0)
                                return r;
                        if (!found)
                                break;
                } else
                        break;
                if (repeated)
                        return rfail(p, at, "a repetition operator follows another one (e.g. a** or a+{2}); "
                                     "use a group");
                if (atom->kind == R_ASSERT)
                        return rfail(p, at, "an anchor (^, $, \\b ...) cannot be repeated");
                rnode *n = rnew(p, R_REPEAT, at);
                if (!n)
                        return -ENOMEM;
                n->sub = atom;
                n->min = mn;
                n->max = mx;
                atom = n;
                repeated = true;
        }
        *ret = atom;
        return 0;
}

static int parse_concat(rparser *p, rnode **ret) {
        rnode *cat = rnew(p, R_CAT, p->i);
        size_t cap = 0;

        if (!cat)
                return -ENOMEM;
        while (p->i < p->len && p->p[p->i] != '|' && p->p[p->i] != ')') {
                rnode *item;
                int r = parse_repeat(p, &item);
                if (r < 0)
                        return r;
                r = add_kid(p, cat, item, &cap);
                if (r < 0)
                        return r;
        }
        if (cat->n_kids == 0)
                cat->kind = R_EMPTY;
        else if (cat->n_kids == 1)
                cat = cat->kids[0];
        *ret = cat;
        return 0;
}

static int parse_alt(rparser *p, rnode **ret) {
        rnode *alt = rnew(p, R_ALT, p->i), *kid;
        size_t cap = 0;
        int r;

        if (!alt)
                return -ENOMEM;
        for (;;) {
                r = parse_concat(p, &kid);
                if (r < 0)
                        return r;
                r = add_kid(p, alt, kid, &cap);
                if (r < 0)
                        return r;
                if (p->i >= p->len || p->p[p->i] != '|')
                        break;
                p->i++;
        }
        *ret = alt->n_kids == 1 ? alt->kids[0] : alt;
        return 0;
}

/* ------------------------------------------------------------ program */

/* Instructions the node needs, saturated at RX_MAX_PROGRAM + 1. */
static size_t prog_size(const rnode *n) {
        const size_t cap = RX_MAX_PROGRAM + 1;
        size_t s = 0;

        switch (n->kind) {
        case R_EMPTY:
                return 0;
        case R_BYTE:
        case R_CLASS:
        case R_ANY:
        case R_ASSERT:
                return 1;
        case R_CAT:
                for (size_t i = 0; i < n->n_kids && s < cap; i++)
                        s += prog_size(n->kids[i]);
                return MIN(s, cap);
        case R_ALT:
                for (size_t i = 0; i < n->n_kids && s < cap; i++)
                        s += prog_size(n->kids[i]) + (i + 1 < n->n_kids ? 2 : 0);
                return MIN(s, cap);
        case R_REPEAT: {
                size_t sub = prog_size(n->sub);
                size_t copies = n->max < 0 ? (size_t) MAX(n->min, 1) : (size_t) n->max;
                if (sub >= cap || (sub > 0 && copies > cap / (sub + 2)))
                        return cap;
                if (n->max < 0)
                        s = n->min == 0 ? sub + 2 : (size_t) n->min * sub + 1;
                else
                        s = (size_t) n->min * sub + (size_t) (n->max - n->min) * (sub + 1);
                return MIN(s, cap);
        }
        }
        return cap;
}

static size_t emit_inst(rparser *p, uint8_t op, uint8_t byte, uint32_t x, uint32_t y) {
        p->prog[p->n] = (rinst) { .op = op, .byte = byte, .x = x, .y = y };
        return p->n++;
}

static void emit_node(rparser *p, const rnode *n) {
        switch (n->kind) {
        case R_EMPTY:
                return;
        case R_BYTE:
                emit_inst(p, I_BYTE, n->byte, 0, 0);
                return;
        case R_ANY:
                emit_inst(p, I_ANY, 0, 0, 0);
                return;
        case R_CLASS:
                emit_inst(p, I_CLASS, 0, n->cls, 0);
                return;
        case R_ASSERT:
                emit_inst(p, I_ASSERT, n->byte, 0, 0);
                return;
        case R_CAT:
                for (size_t i = 0; i < n->n_kids; i++)
                        emit_node(p, n->kids[i]);
                return;
        case R_ALT: {
                /* SPLIT next, other; kid; JMP end ... last kid; end: */
                size_t last_jump = SIZE_MAX; /* the JMPs are chained through .x until patched */
                for (size_t i = 0; i < n->n_kids; i++) {
                        if (i + 1 < n->n_kids) {
                                size_t split = emit_inst(p, I_SPLIT, 0, (uint32_t) p->n + 1, 0);
                                emit_node(p, n->kids[i]);
                                size_t jmp = emit_inst(p, I_JMP, 0, (uint32_t) last_jump, 0);
                                last_jump = jmp;
                                p->prog[split].y = (uint32_t) p->n;
                        } else
                                emit_node(p, n->kids[i]);
                }
                while (last_jump != SIZE_MAX) {
                        size_t prev = p->prog[last_jump].x == UINT32_MAX ? SIZE_MAX : p->prog[last_jump].x;
                        p->prog[last_jump].x = (uint32_t) p->n;
                        last_jump = prev;
                }
                return;
        }
        case R_REPEAT: {
                const rnode *s = n->sub;
                if (n->max < 0) {
                        if (n->min == 0) {
                                /* L: SPLIT body, end; body; JMP L; end: */
                                size_t split = emit_inst(p, I_SPLIT, 0, (uint32_t) p->n + 1, 0);
                                emit_node(p, s);
                                emit_inst(p, I_JMP, 0, (uint32_t) split, 0);
                                p->prog[split].y = (uint32_t) p->n;
                        } else {
                                for (int i = 0; i < n->min - 1; i++)
                                        emit_node(p, s);
                                /* L: body; SPLIT L, next */
                                size_t start = p->n;
                                emit_node(p, s);
                                emit_inst(p, I_SPLIT, 0, (uint32_t) start, (uint32_t) p->n + 1);
                        }
                        return;
                }
                for (int i = 0; i < n->min; i++)
                        emit_node(p, s);
                /* optional copies: SPLIT body, end; body; ... ; end: */
                size_t last = SIZE_MAX; /* the SPLITs are chained through .y until patched */
                for (int i = n->min; i < n->max; i++) {
                        size_t split = emit_inst(p, I_SPLIT, 0, (uint32_t) p->n + 1, (uint32_t) last);
                        last = split;
                        emit_node(p, s);
                }
                while (last != SIZE_MAX) {
                        size_t prev = p->prog[last].y == UINT32_MAX ? SIZE_MAX : p->prog[last].y;
                        p->prog[last].y = (uint32_t) p->n;
                        last = prev;
                }
                return;
        }
        }
}

int rx_compile(const char *pattern, size_t len, rx **ret, char *msg, size_t msg_size, size_t *offset) {
        size_t dummy;
        rparser p = {
                .p = (const uint8_t *) pattern,
                .len = len,
                .msg = msg,
                .msg_size = msg_size,
                .offset = offset ? offset : &dummy,
        };
        rnode *root;
        rx *re = NULL;
        size_t size;
        int r;

        if (len > RX_MAX_PATTERN) {
                r = rfail(&p, 0, "the pattern is longer than 4096 bytes");
                goto out;
        }
        r = parse_alt(&p, &root);
        if (r < 0)
                goto out;
        if (p.i < len) { /* only a ')' stops parse_alt early */
                r = rfail(&p, p.i, "unmatched )");
                goto out;
        }
        size = prog_size(root) + 1;
        if (size > RX_MAX_PROGRAM) {
                r = rfail(&p, 0, "the pattern is too complex (its repetitions expand to more than 10000 states)");
                goto out;
        }
        re = calloc(1, sizeof *re);
        if (!re) {
                r = -ENOMEM;
                goto out;
        }
        re->prog = p.prog = calloc(size, sizeof(rinst));
        for (int k = 0; k < 2; k++) {
                re->dense[k] = calloc(size, sizeof(uint32_t));
                re->sparse[k] = calloc(size, sizeof(uint32_t));
        }
        re->stack = calloc(2 * size + 2, sizeof(uint32_t));
        if (!re->prog || !re->dense[0] || !re->dense[1] || !re->sparse[0] || !re->sparse[1] || !re->stack) {
                r = -ENOMEM;
                goto out;
        }
        emit_node(&p, root);
        emit_inst(&p, I_MATCH, 0, 0, 0);
        assert_se(p.n == size);
        re->n = size;
        re->anchored = re->prog[0].op == I_ASSERT && re->prog[0].byte == A_BEGIN;
        re->classes = TAKE_PTR(p.classes);
        re->n_classes = p.n_classes;
        *ret = TAKE_PTR(re);
        r = 0;
out:
        if (r == -ENOMEM)
                snprintf(msg, msg_size, "out of memory");
        rx_free(re);
        free(p.classes);
        arena_deinit(&p.a);
        return r;
}

rx *rx_free(rx *re) {
        if (!re)
                return NULL;
        free(re->prog);
        free(re->classes);
        for (int k = 0; k < 2; k++) {
                free(re->dense[k]);
                free(re->sparse[k]);
        }
        free(re->stack);
        free(re);
        return NULL;
}

size_t rx_program_size(const rx *re) {
        return re->n;
}

/* ------------------------------------------------------------ matching */

static inline bool is_word(uint8_t c) {
        return is_alnum(c) || c == '_';
}

static bool assertion_holds(uint8_t kind, const uint8_t *s, size_t len, size_t pos) {
        switch (kind) {
        case A_BEGIN:
                return pos == 0;
        case A_END:
                return pos == len;
        default: {
                bool before = pos > 0 && is_word(s[pos - 1]);
                bool after = pos < len && is_word(s[pos]);
                return kind == A_WORD ? before != after : before == after;
        }
        }
}

/* Add pc and its epsilon closure at `pos` to list l; true when MATCH is reached. */
static bool add_thread(rx *re, int l, uint32_t pc0, const uint8_t *s, size_t len, size_t pos) {
        uint32_t *dense = re->dense[l], *sparse = re->sparse[l], *stack = re->stack;
        size_t sp = 0;

        stack[sp++] = pc0;
        while (sp > 0) {
                uint32_t pc = stack[--sp];
                uint32_t k = sparse[pc];
                if (k < re->count[l] && dense[k] == pc)
                        continue; /* already there at this position */
                sparse[pc] = (uint32_t) re->count[l];
                dense[re->count[l]++] = pc;
                const rinst *in = &re->prog[pc];
                switch (in->op) {
                case I_JMP:
                        stack[sp++] = in->x;
                        break;
                case I_SPLIT:
                        stack[sp++] = in->y;
                        stack[sp++] = in->x;
                        break;
                case I_ASSERT:
                        if (assertion_holds(in->byte, s, len, pos))
                                stack[sp++] = pc + 1;
                        break;
                case I_MATCH:
                        return true;
                default:
                        break; /* consumes a byte: waits in the list */
                }
        }
        return false;
}

/* The routing budget of the current signal (per thread: routing runs on
 * the main thread, tests and fuzzers anywhere). */
static _Thread_local bool budget_on;
static _Thread_local uint64_t budget_left;

void rx_budget_begin(uint64_t steps) {
        budget_on = true;
        budget_left = steps;
}

void rx_budget_end(void) {
        budget_on = false;
}

bool rx_budget_exhausted(void) {
        return budget_on && budget_left == 0;
}

static int search(rx *re, const char *subject, size_t len, uint64_t limit, uint64_t *workp) {
        const uint8_t *s = (const uint8_t *) subject;
        uint64_t work = 0;
        int cur = 0;

        re->count[0] = re->count[1] = 0;
        for (size_t pos = 0;; pos++) {
                /* unanchored: a new thread starts at every position */
                if ((pos == 0 || !re->anchored) && add_thread(re, cur, 0, s, len, pos))
                        return 1;
                if (pos == len || re->count[cur] == 0) {
                        if (re->anchored || pos == len)
                                return 0;
                        continue;
                }
                work += re->count[cur];
                *workp = work;
                if (work > limit)
                        return -E2BIG;
                int next = cur ^ 1;
                uint8_t c = s[pos];
                re->count[next] = 0;
                for (size_t k = 0; k < re->count[cur]; k++) {
                        uint32_t pc = re->dense[cur][k];
                        const rinst *in = &re->prog[pc];
                        bool ok = (in->op == I_BYTE && c == in->byte) || (in->op == I_ANY && c != '\n') ||
                                  (in->op == I_CLASS && class_has(&re->classes[in->x], c));
                        if (ok && add_thread(re, next, pc + 1, s, len, pos + 1))
                                return 1;
                }
                re->count[cur] = 0;
                cur = next;
        }
}

int rx_search(rx *re, const char *subject, size_t len) {
        uint64_t work = 0;
        uint64_t limit = RX_MAX_WORK;
        int r;

        if (budget_on) {
                if (budget_left == 0)
                        return -E2BIG;
                limit = MIN(limit, budget_left);
        }
        r = search(re, subject, len, limit, &work);
        if (budget_on)
                budget_left -= MIN(work, budget_left);
        return r;
}
