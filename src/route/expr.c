/* SPDX-License-Identifier: MIT */
/*
 * The filter language: lexer, precedence-climbing parser, type checker,
 * bytecode compiler and the stack machine that runs the code.
 *
 * Pipeline: text -> tokens (lex(), one at a time) -> syntax tree (parse_*(),
 * nodes in a temporary arena) -> check() resolves names (sig.Labels.x,
 * Alert.GetScope(), builtins) and gives every node its static type ->
 * emit() writes instructions for a stack machine and tracks the stack depth
 * -> the tree is dropped. The compiled `expr` owns the code, the constants,
 * the compiled patterns (rx.h) and CIDR ranges, the value stack and the scratch
 * buffer; evaluation touches only those and the signal.
 *
 * Precedence and associativity are those of CrowdSec's expr library
 * (github.com/antonmedv/expr 1.x): or || 10, and && 15, comparisons and
 * in / not in / matches / contains / startsWith / endsWith 20, + - 30,
 * * / % 60, ** 70 (right), unary not ! 50, unary - + 90. Note that `not`
 * binds tighter than `==`: `not a == b` is `(not a) == b`, as in expr.
 *
 * Invariants
 *   - After check() succeeds every instruction sees operands of the types it
 *     expects. The evaluator still switches on value tags where it must and
 *     reports an impossible combination as a run-time error instead of
 *     reading the wrong union member.
 *   - Every string value on the stack is NUL-terminated at ptr[len]
 *     (literals, signal strings, scratch strings), so inet_pton() and
 *     strtod() use it in place. Literals cannot contain NUL.
 *   - The stack never holds more than e->stack_size values: emit() computes
 *     the deepest point of the code it writes.
 *   - The syntax tree is at most EXPR_MAX_DEPTH deep and parser recursion is
 *     bounded by the same limit, so the recursive passes cannot exhaust the
 *     C stack on hostile input.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "expr.h"
#include "ipaddr.h"
#include "rx.h"
#include "strutil.h"

/* ------------------------------------------------------------ tokens */

typedef enum tok_kind {
        T_EOF,
        T_IDENT,
        T_INT,
        T_FLOAT,
        T_STRING,
        T_LPAREN,
        T_RPAREN,
        T_LBRACKET,
        T_RBRACKET,
        T_COMMA,
        T_DOT,
        T_NOT, /* ! not */
        T_AND, /* && and */
        T_OR,  /* || or */
        T_EQ,
        T_NE,
        T_LT,
        T_LE,
        T_GT,
        T_GE,
        T_IN,
        T_NOT_IN, /* made by the parser from `not in` */
        T_MATCHES,
        T_CONTAINS,
        T_STARTSWITH,
        T_ENDSWITH,
        T_PLUS,
        T_MINUS,
        T_STAR,
        T_SLASH,
        T_PERCENT,
        T_POW,
        T_TRUE,
        T_FALSE,
        T_NIL,
} tok_kind;

static const char *const tok_names[] = {
        [T_EOF] = "end of expression", [T_IDENT] = "name", [T_INT] = "number", [T_FLOAT] = "number",
        [T_STRING] = "string", [T_LPAREN] = "'('", [T_RPAREN] = "')'", [T_LBRACKET] = "'['",
        [T_RBRACKET] = "']'", [T_COMMA] = "','", [T_DOT] = "'.'", [T_NOT] = "not", [T_AND] = "and",
        [T_OR] = "or", [T_EQ] = "==", [T_NE] = "!=", [T_LT] = "<", [T_LE] = "<=", [T_GT] = ">",
        [T_GE] = ">=", [T_IN] = "in", [T_NOT_IN] = "not in", [T_MATCHES] = "matches",
        [T_CONTAINS] = "contains", [T_STARTSWITH] = "startsWith", [T_ENDSWITH] = "endsWith",
        [T_PLUS] = "+", [T_MINUS] = "-", [T_STAR] = "*", [T_SLASH] = "/", [T_PERCENT] = "%",
        [T_POW] = "**", [T_TRUE] = "true", [T_FALSE] = "false", [T_NIL] = "nil",
};

static const struct {
        const char *word;
        tok_kind kind;
} keywords[] = {
        { "and", T_AND },           { "or", T_OR },           { "not", T_NOT },
        { "in", T_IN },             { "matches", T_MATCHES }, { "contains", T_CONTAINS },
        { "startsWith", T_STARTSWITH }, { "endsWith", T_ENDSWITH }, { "true", T_TRUE },
        { "false", T_FALSE },       { "nil", T_NIL },
};

typedef struct token {
        tok_kind kind;
        uint32_t pos, len; /* bytes of the text */
        int64_t i;
        double f;
        char *s; /* T_STRING: unescaped (temporary arena); T_IDENT and keywords: the word */
        size_t slen;
        const char *op_text; /* the spelling of an operator, for messages */
} token;

/* ------------------------------------------------------------ syntax tree */

typedef enum node_kind {
        N_NIL,
        N_BOOL,
        N_INT,
        N_FLOAT,
        N_STRING,
        N_LIST,
        N_IDENT,
        N_MEMBER, /* lhs.name */
        N_INDEX,  /* lhs[rhs] */
        N_CALL,   /* lhs(items) */
        N_UNARY,  /* op lhs */
        N_BINARY, /* lhs op rhs */
} node_kind;

/* How emit() produces a value for a checked node. */
typedef enum how {
        H_NONE,
        H_CONST,     /* literal */
        H_LIST,      /* list literal */
        H_FIELD,     /* a field of the signal */
        H_LABEL,     /* sig.Labels.key with a constant key */
        H_LABEL_DYN, /* sig.Labels[expression] */
        H_BUILTIN,
        H_OP,
} how;

/* Objects of the environment. They are names, not values: only their
 * fields are read (sig.Source and sig.Labels are also values). */
enum {
        OBJ_NONE,
        OBJ_SIG,
        OBJ_SIG_SOURCE,
        OBJ_LABELS,
        OBJ_ALERT,
        OBJ_ALERT_SOURCE,
        _OBJ_MAX,
};

static const char *const obj_names[_OBJ_MAX] = {
        [OBJ_SIG] = "sig", [OBJ_SIG_SOURCE] = "sig.Source", [OBJ_LABELS] = "sig.Labels",
        [OBJ_ALERT] = "Alert", [OBJ_ALERT_SOURCE] = "Alert.Source",
};

typedef struct node node;
struct node {
        node_kind kind;
        tok_kind op;
        uint32_t pos;    /* first character of this expression */
        uint32_t op_pos; /* its operator, name or bracket */
        unsigned depth;
        bool bval;
        int64_t ival;
        double fval;
        const char *s; /* N_STRING value; N_IDENT, N_MEMBER name (NUL-terminated) */
        size_t slen;
        node *lhs, *rhs;
        node **items; /* list items, call arguments */
        size_t n_items;
        bool called; /* N_MEMBER that is the callee of a call */
        /* filled by check() */
        expr_type type;
        int obj;
        how how;
        int field;
        int builtin;
};

/* ------------------------------------------------------------ fields */

enum {
        F_SCENARIO,
        F_BUCKET_ID,
        F_ALERT_MESSAGE,
        F_EVENTS_COUNT,
        F_START_AT,
        F_STOP_AT,
        F_SOURCE,
        F_FLAT_IP,
        F_FLAT_RANGE,
        F_FLAT_ASN,
        F_FLAT_ASORG,
        F_FLAT_COUNTRY,
        F_FLAT_LAT,
        F_FLAT_LON,
        F_DEST_IP,
        F_CAPACITY,
        F_LEAK_SPEED,
        F_WHITELISTED,
        F_SIMULATION,
        F_REPROCESS,
        F_MAPKEY,
        F_LABELS,
        F_SRC_IP,
        F_SRC_RANGE,
        F_SRC_ASN,
        F_SRC_ASORG,
        F_SRC_COUNTRY,
        F_SRC_LAT,
        F_SRC_LON,
        F_A_REMEDIATION,
        F_A_SOURCE,
        F_A_SCOPE,
        F_A_VALUE,
        F_A_SRC_IP,
        F_A_SRC_RANGE,
        F_A_SRC_CN,
        F_A_SRC_ASN,
        F_A_SRC_ASNAME,
        F_A_SRC_LAT,
        F_A_SRC_LON,
};

typedef struct field_def {
        uint8_t obj; /* the object it belongs to */
        const char *name;
        uint8_t type;  /* expr_type */
        uint8_t child; /* object reached through it */
        uint8_t id;
        bool method;   /* Alert.GetScope(): called with () */
} field_def;

static const field_def fields[] = {
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

enum {
        B_LEN,
        B_UPPER,
        B_LOWER,
        B_ATOF,
        B_IPINRANGE,
};

static const struct {
        const char *name;
        unsigned arity;
} builtins[] = {
        [B_LEN] = { "len", 1 },
        [B_UPPER] = { "Upper", 1 },
        [B_LOWER] = { "Lower", 1 },
        [B_ATOF] = { "Atof", 1 },
        [B_IPINRANGE] = { "IpInRange", 2 },
};

/* ------------------------------------------------------------ bytecode */

typedef enum opcode {
        OP_CONST,       /* push consts[arg] */
        OP_FIELD,       /* push field arg of the signal */
        OP_LABEL,       /* push sig.Labels[consts[arg]] ("" when absent) */
        OP_LABEL_DYN,   /* pop key, push sig.Labels[key] */
        OP_HAS_LABEL,   /* pop key, push key in sig.Labels */
        OP_NOT,
        OP_NEG,
        OP_ADD,
        OP_SUB,
        OP_MUL,
        OP_DIV,
        OP_MOD,
        OP_POW,
        OP_CONCAT,
        OP_EQ,
        OP_NE,
        OP_LT,
        OP_LE,
        OP_GT,
        OP_GE,
        OP_IN,          /* stack: x e1 .. e_arg -> bool */
        OP_MATCH,       /* regexes[arg] */
        OP_CONTAINS,
        OP_STARTSWITH,
        OP_ENDSWITH,
        OP_LEN,
        OP_UPPER,
        OP_LOWER,
        OP_ATOF,
        OP_IPINRANGE,   /* ip cidr -> bool */
        OP_IPINRANGE_C, /* ip -> bool, against ranges[arg] */
        OP_LIST,        /* make a list of the arg values below */
        OP_JUMP_FALSE,  /* top false: jump to arg keeping it; else pop */
        OP_JUMP_TRUE,   /* top true: jump to arg keeping it; else pop */
} opcode;

typedef struct insn {
        uint8_t op;
        uint32_t arg;
        uint32_t pos; /* byte of the text, for run-time errors */
} insn;

struct expr {
        arena arena; /* text, filename, string constants */
        char *text;
        size_t len;
        const char *filename;
        unsigned line, column, continuation_column;
        expr_type type;

        insn *code;
        size_t n_code, cap_code;
        expr_value *consts;
        size_t n_consts, cap_consts;
        rx **regexes;
        size_t n_regexes, cap_regexes;
        ip_range *ranges;
        size_t n_ranges, cap_ranges;

        expr_value *stack;
        size_t stack_size;
        char *scratch; /* EXPR_SCRATCH_SIZE bytes, or NULL when unused */
        size_t scratch_used;
        locale_t c_locale; /* for Atof; (locale_t) 0 when unused */
};

/* ------------------------------------------------------------ compiler state */

typedef struct compiler {
        expr *e;
        const char *context;
        unsigned env;
        spw_error *err;
        arena tmp; /* the syntax tree and token strings */
        locale_t c_locale;
        /* lexer */
        size_t p;
        token tok;
        unsigned depth; /* parser recursion */
        /* emitter */
        size_t sp, max_sp;
} compiler;

static const char empty_string[1] = "";

/* Line and column of byte `pos` of the text (columns count UTF-8 characters). */
static void expr_position(const expr *e, size_t pos, unsigned *line, unsigned *column) {
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

static int compile_error(compiler *c, size_t pos, const char *fmt, ...) _printf_(3, 4);
static int compile_error(compiler *c, size_t pos, const char *fmt, ...) {
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

static int runtime_error(const expr *e, size_t pos, spw_error *err, const char *fmt, ...) _printf_(4, 5);
static int runtime_error(const expr *e, size_t pos, spw_error *err, const char *fmt, ...) {
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

static int grow_array(void **p, size_t *cap, size_t n, size_t elem) {
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

/* ------------------------------------------------------------ lexer */

static bool is_ident_start(char ch) {
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}

static bool is_ident_char(char ch) {
        return is_ident_start(ch) || (ch >= '0' && ch <= '9');
}

static int hex_value(char ch) {
        if (ch >= '0' && ch <= '9')
                return ch - '0';
        if (ch >= 'a' && ch <= 'f')
                return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F')
                return ch - 'A' + 10;
        return -1;
}

static size_t utf8_encode(char *out, uint32_t cp) {
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

static int lex_string(compiler *c, token *t) {
        const char *s = c->e->text;
        size_t n = c->e->len, start = c->p;
        char quote = s[c->p++];
        size_t end = c->p;
        char *out;
        size_t o = 0;

        /* find the closing quote first, so the buffer can be sized */
        while (end < n && s[end] != quote) {
                if (s[end] == '\\' && end + 1 < n)
                        end++;
                end++;
        }
        if (end >= n)
                return compile_error(c, start, "unterminated string (missing closing %c)", quote);
        out = arena_alloc(&c->tmp, end - c->p + 1);
        if (!out)
                return -ENOMEM;
        while (c->p < end) {
                char ch = s[c->p];
                size_t esc = c->p;
                uint32_t cp;
                unsigned digits;

                if (ch != '\\') {
                        out[o++] = ch;
                        c->p++;
                        continue;
                }
                ch = s[++c->p];
                c->p++;
                switch (ch) {
                case 'a': out[o++] = '\a'; continue;
                case 'b': out[o++] = '\b'; continue;
                case 'f': out[o++] = '\f'; continue;
                case 'n': out[o++] = '\n'; continue;
                case 'r': out[o++] = '\r'; continue;
                case 't': out[o++] = '\t'; continue;
                case 'v': out[o++] = '\v'; continue;
                case '\\': out[o++] = '\\'; continue;
                case '\'': out[o++] = '\''; continue;
                case '"': out[o++] = '"'; continue;
                case 'x': digits = 2; break;
                case 'u': digits = 4; break;
                case 'U': digits = 8; break;
                default:
                        if (ch >= '0' && ch <= '7') {
                                cp = 0;
                                c->p--;
                                for (unsigned k = 0; k < 3; k++, c->p++) {
                                        if (c->p >= end || s[c->p] < '0' || s[c->p] > '7')
                                                return compile_error(c, esc, "octal escape needs three digits (\\NNN)");
                                        cp = cp * 8 + (uint32_t) (s[c->p] - '0');
                                }
                                if (cp > 255)
                                        return compile_error(c, esc, "octal escape \\%.3s is larger than 255", s + esc + 1);
                                if (cp == 0)
                                        return compile_error(c, esc, "NUL character in a string");
                                out[o++] = (char) cp;
                                continue;
                        }
                        return compile_error(c, esc, "unknown escape sequence '\\%c' in a string", ch ? ch : '?');
                }
                cp = 0;
                for (unsigned k = 0; k < digits; k++, c->p++) {
                        int h = c->p < end ? hex_value(s[c->p]) : -1;
                        if (h < 0)
                                return compile_error(c, esc, "escape \\%c needs %u hexadecimal digits", ch, digits);
                        cp = cp * 16 + (uint32_t) h;
                }
                if (cp == 0)
                        return compile_error(c, esc, "NUL character in a string");
                if (ch == 'x')
                        out[o++] = (char) cp;
                else if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return compile_error(c, esc, "invalid Unicode code point in \\%c escape", ch);
                else
                        o += utf8_encode(out + o, cp);
        }
        out[o] = 0;
        c->p = end + 1;
        t->kind = T_STRING;
        t->s = out;
        t->slen = o;
        return 0;
}

static int lex_number(compiler *c, token *t) {
        const char *s = c->e->text;
        size_t n = c->e->len, start = c->p;
        char buf[80];
        size_t b = 0;
        bool is_float = false, hex = false;
        char *end;

        if (s[c->p] == '0' && c->p + 1 < n && (s[c->p + 1] == 'x' || s[c->p + 1] == 'X')) {
                hex = true;
                c->p += 2;
                while (c->p < n && (hex_value(s[c->p]) >= 0 || s[c->p] == '_')) {
                        if (s[c->p] != '_' && b < sizeof buf - 1)
                                buf[b++] = s[c->p];
                        c->p++;
                }
                if (b == 0)
                        return compile_error(c, start, "hexadecimal number without digits");
        } else {
                while (c->p < n && ((s[c->p] >= '0' && s[c->p] <= '9') || s[c->p] == '_')) {
                        if (s[c->p] != '_' && b < sizeof buf - 1)
                                buf[b++] = s[c->p];
                        c->p++;
                }
                if (c->p + 1 < n && s[c->p] == '.' && s[c->p + 1] >= '0' && s[c->p + 1] <= '9') {
                        is_float = true;
                        if (b < sizeof buf - 1)
                                buf[b++] = '.';
                        c->p++;
                        while (c->p < n && ((s[c->p] >= '0' && s[c->p] <= '9') || s[c->p] == '_')) {
                                if (s[c->p] != '_' && b < sizeof buf - 1)
                                        buf[b++] = s[c->p];
                                c->p++;
                        }
                }
                if (c->p < n && (s[c->p] == 'e' || s[c->p] == 'E')) {
                        size_t q = c->p + 1;
                        if (q < n && (s[q] == '+' || s[q] == '-'))
                                q++;
                        if (q < n && s[q] >= '0' && s[q] <= '9') {
                                is_float = true;
                                if (b < sizeof buf - 1)
                                        buf[b++] = 'e';
                                c->p++;
                                if (s[c->p] == '+' || s[c->p] == '-') {
                                        if (b < sizeof buf - 1)
                                                buf[b++] = s[c->p];
                                        c->p++;
                                }
                                while (c->p < n && s[c->p] >= '0' && s[c->p] <= '9') {
                                        if (b < sizeof buf - 1)
                                                buf[b++] = s[c->p];
                                        c->p++;
                                }
                        }
                }
        }
        if (b >= sizeof buf - 1)
                return compile_error(c, start, "number too long");
        if (c->p < n && is_ident_char(s[c->p]))
                return compile_error(c, c->p, "unexpected '%c' after a number", s[c->p]);
        buf[b] = 0;
        errno = 0;
        if (is_float) {
                t->kind = T_FLOAT;
                t->f = strtod_l(buf, &end, c->c_locale);
                if (*end || (errno == ERANGE && isinf(t->f)))
                        return compile_error(c, start, "invalid number '%s'", buf);
        } else {
                unsigned long long v = strtoull(buf, &end, hex ? 16 : 10);
                if (*end)
                        return compile_error(c, start, "invalid number '%s'", buf);
                if (errno == ERANGE || v > INT64_MAX)
                        return compile_error(c, start, "integer %s%s is out of range (at most %" PRId64 ")",
                                             hex ? "0x" : "", buf, INT64_MAX);
                t->kind = T_INT;
                t->i = (int64_t) v;
        }
        return 0;
}

/* Read the next token into c->tok. */
static int lex(compiler *c) {
        const char *s = c->e->text;
        size_t n = c->e->len;
        token *t = &c->tok;

        while (c->p < n && (s[c->p] == ' ' || s[c->p] == '\t' || s[c->p] == '\n' || s[c->p] == '\r'))
                c->p++;
        *t = (token) { .pos = (uint32_t) c->p };
        if (c->p >= n) {
                t->kind = T_EOF;
                return 0;
        }

        char ch = s[c->p], next = c->p + 1 < n ? s[c->p + 1] : 0;
        if (is_ident_start(ch)) {
                size_t start = c->p;
                while (c->p < n && is_ident_char(s[c->p]))
                        c->p++;
                t->slen = c->p - start;
                t->s = arena_strndup(&c->tmp, s + start, t->slen);
                if (!t->s)
                        return -ENOMEM;
                t->kind = T_IDENT;
                for (size_t i = 0; i < ELEMENTSOF(keywords); i++)
                        if (streq(t->s, keywords[i].word)) {
                                t->kind = keywords[i].kind;
                                break;
                        }
        } else if (ch >= '0' && ch <= '9') {
                int r = lex_number(c, t);
                if (r < 0)
                        return r;
        } else if (ch == '"' || ch == '\'') {
                int r = lex_string(c, t);
                if (r < 0)
                        return r;
        } else {
                tok_kind k;
                size_t l = 1;
                switch (ch) {
                case '(': k = T_LPAREN; break;
                case ')': k = T_RPAREN; break;
                case '[': k = T_LBRACKET; break;
                case ']': k = T_RBRACKET; break;
                case ',': k = T_COMMA; break;
                case '.':
                        if (next == '.')
                                return compile_error(c, c->p, "ranges (..) are not supported");
                        k = T_DOT;
                        break;
                case '+': k = T_PLUS; break;
                case '-': k = T_MINUS; break;
                case '/': k = T_SLASH; break;
                case '%': k = T_PERCENT; break;
                case '*':
                        k = next == '*' ? T_POW : T_STAR;
                        l = next == '*' ? 2 : 1;
                        break;
                case '!':
                        k = next == '=' ? T_NE : T_NOT;
                        l = next == '=' ? 2 : 1;
                        break;
                case '=':
                        if (next != '=')
                                return compile_error(c, c->p, "unexpected '=' (use == to compare)");
                        k = T_EQ;
                        l = 2;
                        break;
                case '<':
                        k = next == '=' ? T_LE : T_LT;
                        l = next == '=' ? 2 : 1;
                        break;
                case '>':
                        k = next == '=' ? T_GE : T_GT;
                        l = next == '=' ? 2 : 1;
                        break;
                case '&':
                        if (next != '&')
                                return compile_error(c, c->p, "unexpected '&' (use && or and)");
                        k = T_AND;
                        l = 2;
                        break;
                case '|':
                        if (next != '|')
                                return compile_error(c, c->p, "unexpected '|' (use || or or)");
                        k = T_OR;
                        l = 2;
                        break;
                case '?':
                case ':':
                        return compile_error(c, c->p, "the conditional operator (a ? b : c) is not supported");
                default:
                        if ((unsigned char) ch >= 0x20 && (unsigned char) ch < 0x7f)
                                return compile_error(c, c->p, "unexpected character '%c'", ch);
                        return compile_error(c, c->p, "unexpected byte 0x%02x", (unsigned char) ch);
                }
                t->kind = k;
                c->p += l;
        }
        t->len = (uint32_t) (c->p - t->pos);
        return 0;
}

/* The token as the user wrote it, for messages. */
static const char *tok_text(const compiler *c, const token *t, char *buf, size_t size) {
        if (t->kind == T_EOF)
                return "end of expression";
        snprintf(buf, size, "'%.*s'", (int) MIN(t->len, 40u), c->e->text + t->pos);
        return buf;
}

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
                return compile_error(c, n->op_pos, "expression nested too deeply (more than %d levels; for a long "
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
        case T_POW:
                *right_assoc = true;
                return 70;
        default:
                return -1;
        }
}

static int parse_expr(compiler *c, int min_prec, node **ret);

static int expect(compiler *c, tok_kind k, const char *what, uint32_t open_pos) {
        char buf[64];
        if (c->tok.kind != k) {
                if (open_pos != UINT32_MAX) {
                        unsigned line, column;
                        expr_position(c->e, open_pos, &line, &column);
                        return compile_error(c, c->tok.pos, "expected %s to close the one at %u:%u, got %s", what,
                                             line, column, tok_text(c, &c->tok, buf, sizeof buf));
                }
                return compile_error(c, c->tok.pos, "expected %s, got %s", what, tok_text(c, &c->tok, buf, sizeof buf));
        }
        return lex(c);
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

static int parse_postfix(compiler *c, node **inout) {
        char buf[64];
        int r;

        for (;;) {
                node *base = *inout, *n;
                token t = c->tok;

                if (t.kind == T_DOT) {
                        r = lex(c);
                        if (r < 0)
                                return r;
                        /* keywords are valid field names after '.', as in expr */
                        if (c->tok.kind != T_IDENT && !(c->tok.s && c->tok.kind >= T_NOT))
                                return compile_error(c, c->tok.pos, "expected a field name after '.', got %s",
                                                     tok_text(c, &c->tok, buf, sizeof buf));
                        n = new_node(c, N_MEMBER, base->pos);
                        if (!n)
                                return -ENOMEM;
                        n->op_pos = c->tok.pos;
                        n->s = c->tok.s;
                        n->slen = c->tok.slen;
                        n->lhs = base;
                        r = lex(c);
                } else if (t.kind == T_LBRACKET) {
                        r = lex(c);
                        if (r < 0)
                                return r;
                        n = new_node(c, N_INDEX, base->pos);
                        if (!n)
                                return -ENOMEM;
                        n->op_pos = t.pos;
                        n->lhs = base;
                        r = parse_expr(c, 0, &n->rhs);
                        if (r < 0)
                                return r;
                        r = expect(c, T_RBRACKET, "']'", t.pos);
                } else if (t.kind == T_LPAREN) {
                        r = lex(c);
                        if (r < 0)
                                return r;
                        n = new_node(c, N_CALL, base->pos);
                        if (!n)
                                return -ENOMEM;
                        n->op_pos = t.pos;
                        n->lhs = base;
                        r = parse_items(c, T_RPAREN, "')'", t.pos, &n->items, &n->n_items);
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

        switch (t.kind) {
        case T_NOT:
        case T_MINUS:
        case T_PLUS: {
                r = lex(c);
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
                r = lex(c);
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
                r = lex(c);
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
                r = lex(c);
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
                r = lex(c);
                break;
        case T_EOF:
                return compile_error(c, t.pos, "unexpected end of expression (expected a value)");
        default:
                return compile_error(c, t.pos, "unexpected %s (expected a value)", tok_text(c, &t, buf, sizeof buf));
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
                return compile_error(c, c->tok.pos, "expression nested too deeply (more than %d levels)", EXPR_MAX_DEPTH);
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
                r = lex(c);
                if (r < 0)
                        return r;
                if (op == T_NOT) {
                        char buf[64];
                        if (c->tok.kind != T_IN)
                                return compile_error(c, c->tok.pos, "expected 'in' after 'not', got %s",
                                                     tok_text(c, &c->tok, buf, sizeof buf));
                        op = T_NOT_IN;
                        r = lex(c);
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
                lhs = n;
        }
        c->depth--;
        *ret = lhs;
        return 0;
}

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
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (fields[i].obj == obj && streq(fields[i].name, name))
                        return &fields[i];
        return NULL;
}

static int unknown_field(compiler *c, const node *n, int obj) {
        const char *cand[ELEMENTSOF(fields)];
        size_t nc = 0;
        const char *best;

        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (fields[i].obj == obj)
                        cand[nc++] = fields[i].name;
        best = str_closest(n->s, cand, nc);
        if (best)
                return compile_error(c, n->op_pos, "unknown field '%s' of %s; did you mean '%s'?", n->s,
                                     obj_names[obj], best);
        char list[512];
        size_t l = 0;
        list[0] = 0;
        for (size_t i = 0; i < nc && l < sizeof list; i++)
                l += (size_t) snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", cand[i]);
        return compile_error(c, n->op_pos, "unknown field '%s' of %s (known: %s)", n->s, obj_names[obj], list);
}

static int check(compiler *c, node *n);

/* Check a node that must produce a value (not a bare environment object). */
static int check_value(compiler *c, node *n) {
        int r = check(c, n);
        if (r < 0)
                return r;
        if (n->obj == OBJ_SIG || n->obj == OBJ_ALERT)
                return compile_error(c, n->pos, "%s is the whole %s; use one of its fields, such as %s",
                                     obj_names[n->obj], n->obj == OBJ_SIG ? "signal" : "alert",
                                     n->obj == OBJ_SIG ? "sig.Scenario" : "Alert.GetScenario()");
        return 0;
}

static int check_ident(compiler *c, node *n) {
        static const char *const roots[] = { "sig", "Alert" };
        const char *cand[ELEMENTSOF(roots) + ELEMENTSOF(builtins)];
        size_t nc = 0;
        const char *best;

        if (streq(n->s, "sig") || streq(n->s, "Alert")) {
                bool is_sig = n->s[0] == 's';
                if (!(c->env & (is_sig ? EXPR_ENV_SIG : EXPR_ENV_ALERT)))
                        return compile_error(c, n->pos, "unknown name '%s' (%s)", n->s,
                                             is_sig ? "v1 profile filters are written over Alert, e.g. Alert.GetScenario()"
                                                    : "v0.3 profile filters are written over sig, e.g. sig.Scenario");
                n->obj = is_sig ? OBJ_SIG : OBJ_ALERT;
                n->type = EXPR_OBJECT;
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(builtins); i++)
                if (streq(n->s, builtins[i].name))
                        return compile_error(c, n->pos, "%s is a function: call it as %s(...)", n->s, n->s);
        if (c->env & EXPR_ENV_SIG)
                cand[nc++] = "sig";
        if (c->env & EXPR_ENV_ALERT)
                cand[nc++] = "Alert";
        best = str_closest(n->s, cand, nc);
        if (best)
                return compile_error(c, n->pos, "unknown name '%s'; did you mean '%s'?", n->s, best);
        return compile_error(c, n->pos, "unknown name '%s' (expressions start from %s)", n->s,
                             (c->env & EXPR_ENV_ALL) == EXPR_ENV_ALL ? "sig or Alert"
                             : c->env & EXPR_ENV_SIG ? "sig" : "Alert");
}

static int check_member(compiler *c, node *n) {
        int r = check(c, n->lhs);
        const field_def *f;

        if (r < 0)
                return r;
        if (n->lhs->obj == OBJ_NONE)
                return compile_error(c, n->op_pos, "cannot read field '%s' of %s %s", n->s,
                                     n->lhs->type == EXPR_INT ? "an" : "a", expr_type_name(n->lhs->type));
        if (n->lhs->obj == OBJ_LABELS) {
                /* sig.Labels.key: a missing label reads as "" */
                if (n->called)
                        return compile_error(c, n->op_pos, "sig.Labels.%s is a label, not a method: remove the ()", n->s);
                n->type = EXPR_STRING;
                n->how = H_LABEL;
                return 0;
        }
        f = find_field(n->lhs->obj, n->s);
        if (!f)
                return unknown_field(c, n, n->lhs->obj);
        if (f->method && !n->called)
                return compile_error(c, n->op_pos, "%s.%s is a method: call it as %s.%s()", obj_names[n->lhs->obj],
                                     n->s, obj_names[n->lhs->obj], n->s);
        if (!f->method && n->called)
                return compile_error(c, n->op_pos, "%s.%s is a field, not a method: remove the ()",
                                     obj_names[n->lhs->obj], n->s);
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
                r = check_value(c, n->rhs);
                if (r < 0)
                        return r;
                if (n->rhs->type != EXPR_STRING)
                        return compile_error(c, n->rhs->pos, "a label name must be a string, not %s",
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
                return compile_error(c, n->op_pos, "%s can only be indexed with a quoted field name",
                                     obj_names[n->lhs->obj]);
        return compile_error(c, n->op_pos, "cannot index %s %s%s", n->lhs->type == EXPR_INT ? "an" : "a",
                             expr_type_name(n->lhs->type),
                             n->lhs->type == EXPR_LIST ? " (indexing lists is not supported)" : "");
}

static int check_builtin(compiler *c, node *n, int b) {
        int r;

        if (n->n_items != builtins[b].arity)
                return compile_error(c, n->op_pos, "%s() takes %u argument%s, got %zu", builtins[b].name,
                                     builtins[b].arity, builtins[b].arity == 1 ? "" : "s", n->n_items);
        for (size_t i = 0; i < n->n_items; i++) {
                r = check_value(c, n->items[i]);
                if (r < 0)
                        return r;
        }
        n->how = H_BUILTIN;
        n->builtin = b;
        switch (b) {
        case B_LEN: {
                expr_type t = n->items[0]->type;
                if (t != EXPR_STRING && t != EXPR_LIST && t != EXPR_MAP)
                        return compile_error(c, n->items[0]->pos, "len() needs a string, a list or sig.Labels, not %s",
                                             expr_type_name(t));
                n->type = EXPR_INT;
                return 0;
        }
        case B_UPPER:
        case B_LOWER:
        case B_ATOF:
                if (n->items[0]->type != EXPR_STRING)
                        return compile_error(c, n->items[0]->pos, "%s() needs a string, not %s", builtins[b].name,
                                             expr_type_name(n->items[0]->type));
                n->type = b == B_ATOF ? EXPR_FLOAT : EXPR_STRING;
                return 0;
        case B_IPINRANGE:
                for (size_t i = 0; i < 2; i++)
                        if (n->items[i]->type != EXPR_STRING)
                                return compile_error(c, n->items[i]->pos, "IpInRange() needs two strings (an IP and a "
                                                     "CIDR range), argument %zu is %s", i + 1,
                                                     expr_type_name(n->items[i]->type));
                if (n->items[1]->kind == N_STRING) {
                        ip_range range;
                        if (!strchr(n->items[1]->s, '/') || ip_parse_cidr(n->items[1]->s, false, &range) < 0)
                                return compile_error(c, n->items[1]->pos,
                                                     "IpInRange(): '%s' is not a CIDR range (expected ADDRESS/PREFIX, "
                                                     "e.g. 192.0.2.0/24 or 2001:db8::/32)", n->items[1]->s);
                }
                n->type = EXPR_BOOL;
                return 0;
        }
        return -EINVAL;
}

static int check_call(compiler *c, node *n) {
        node *callee = n->lhs;
        int r;

        if (callee->kind == N_IDENT) {
                const char *cand[ELEMENTSOF(builtins)];
                for (size_t i = 0; i < ELEMENTSOF(builtins); i++) {
                        if (streq(callee->s, builtins[i].name))
                                return check_builtin(c, n, (int) i);
                        cand[i] = builtins[i].name;
                }
                const char *best = str_closest(callee->s, cand, ELEMENTSOF(builtins));
                if (best)
                        return compile_error(c, callee->pos, "unknown function '%s'; did you mean '%s'?", callee->s, best);
                return compile_error(c, callee->pos, "unknown function '%s' (available: len, Upper, Lower, Atof, "
                                     "IpInRange)", callee->s);
        }
        if (callee->kind == N_MEMBER) {
                callee->called = true;
                r = check(c, callee);
                if (r < 0)
                        return r;
                if (n->n_items != 0)
                        return compile_error(c, n->op_pos, "%s() takes no arguments", callee->s);
                n->type = callee->type;
                n->obj = callee->obj;
                n->how = H_FIELD;
                n->field = callee->field;
                return 0;
        }
        return compile_error(c, n->op_pos, "only functions and methods can be called");
}

static int check_unary(compiler *c, node *n) {
        int r = check_value(c, n->lhs);
        if (r < 0)
                return r;
        n->how = H_OP;
        if (n->op == T_NOT) {
                if (n->lhs->type != EXPR_BOOL)
                        return compile_error(c, n->op_pos, "'%.*s' needs a boolean, not %s",
                                             c->e->text[n->op_pos] == '!' ? 1 : 3, c->e->text + n->op_pos,
                                             expr_type_name(n->lhs->type));
                n->type = EXPR_BOOL;
                return 0;
        }
        if (!is_number(n->lhs->type))
                return compile_error(c, n->op_pos, "unary %s needs a number, not %s", tok_names[n->op],
                                     expr_type_name(n->lhs->type));
        n->type = n->lhs->type;
        return 0;
}

static int check_binary(compiler *c, node *n) {
        node *l = n->lhs, *rn = n->rhs;
        const char *opname = tok_names[n->op];
        int r;

        r = check_value(c, l);
        if (r < 0)
                return r;
        r = check_value(c, rn);
        if (r < 0)
                return r;
        n->how = H_OP;
        expr_type lt = l->type, rt = rn->type;

        switch (n->op) {
        case T_AND:
        case T_OR:
                if (lt != EXPR_BOOL || rt != EXPR_BOOL)
                        return compile_error(c, n->op_pos, "'%.*s' needs booleans on both sides, got %s and %s",
                                             (int) (n->op == T_AND ? (c->e->text[n->op_pos] == '&' ? 2 : 3)
                                                                   : 2), c->e->text + n->op_pos,
                                             expr_type_name(lt), expr_type_name(rt));
                n->type = EXPR_BOOL;
                return 0;
        case T_EQ:
        case T_NE:
                if (!comparable(lt, rt))
                        return compile_error(c, n->op_pos, "cannot compare %s with %s using %s", expr_type_name(lt),
                                             expr_type_name(rt), opname);
                n->type = EXPR_BOOL;
                return 0;
        case T_LT:
        case T_LE:
        case T_GT:
        case T_GE:
                if (!(is_number(lt) && is_number(rt)) && !(lt == EXPR_STRING && rt == EXPR_STRING))
                        return compile_error(c, n->op_pos, "cannot compare %s with %s using %s (needs two numbers "
                                             "or two strings)", expr_type_name(lt), expr_type_name(rt), opname);
                n->type = EXPR_BOOL;
                return 0;
        case T_IN:
        case T_NOT_IN:
                if (rt == EXPR_LIST) {
                        if (!is_scalar(lt))
                                return compile_error(c, n->op_pos, "cannot look for %s in a list", expr_type_name(lt));
                        for (size_t i = 0; i < rn->n_items; i++)
                                if (!comparable(lt, rn->items[i]->type))
                                        return compile_error(c, rn->items[i]->pos,
                                                             "cannot compare %s with %s (item %zu of the list after %s)",
                                                             expr_type_name(lt), expr_type_name(rn->items[i]->type),
                                                             i + 1, opname);
                } else if (rt == EXPR_MAP) {
                        if (lt != EXPR_STRING)
                                return compile_error(c, n->op_pos, "label names are strings: cannot look for %s in %s",
                                                     expr_type_name(lt), obj_names[OBJ_LABELS]);
                } else
                        return compile_error(c, n->op_pos, "'%s' needs a list or sig.Labels on its right, not %s",
                                             opname, expr_type_name(rt));
                n->type = EXPR_BOOL;
                return 0;
        case T_MATCHES:
                if (lt != EXPR_STRING || rt != EXPR_STRING)
                        return compile_error(c, n->op_pos, "'matches' needs strings on both sides, got %s and %s",
                                             expr_type_name(lt), expr_type_name(rt));
                if (rn->kind != N_STRING)
                        return compile_error(c, rn->pos, "the pattern after 'matches' must be a quoted string (patterns "
                                             "are compiled when the profiles are loaded)");
                n->type = EXPR_BOOL;
                return 0;
        case T_CONTAINS:
        case T_STARTSWITH:
        case T_ENDSWITH:
                if (lt != EXPR_STRING || rt != EXPR_STRING)
                        return compile_error(c, n->op_pos, "'%s' needs strings on both sides, got %s and %s", opname,
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
                        return compile_error(c, n->op_pos, "cannot apply %s to %s and %s%s", opname, expr_type_name(lt),
                                             expr_type_name(rt), n->op == T_PLUS ? " (+ needs two numbers or two strings)"
                                                                                 : " (needs numbers)");
                n->type = (lt == EXPR_INT && rt == EXPR_INT && n->op != T_SLASH && n->op != T_POW) ? EXPR_INT : EXPR_FLOAT;
                return 0;
        case T_PERCENT:
                if (lt != EXPR_INT || rt != EXPR_INT)
                        return compile_error(c, n->op_pos, "%% needs two integers, got %s and %s", expr_type_name(lt),
                                             expr_type_name(rt));
                n->type = EXPR_INT;
                return 0;
        default:
                return compile_error(c, n->op_pos, "unsupported operator %s", opname);
        }
}

static int check(compiler *c, node *n) {
        switch (n->kind) {
        case N_NIL:
                n->type = EXPR_NIL;
                n->how = H_CONST;
                return 0;
        case N_BOOL:
                n->type = EXPR_BOOL;
                n->how = H_CONST;
                return 0;
        case N_INT:
                n->type = EXPR_INT;
                n->how = H_CONST;
                return 0;
        case N_FLOAT:
                n->type = EXPR_FLOAT;
                n->how = H_CONST;
                return 0;
        case N_STRING:
                n->type = EXPR_STRING;
                n->how = H_CONST;
                return 0;
        case N_LIST:
                for (size_t i = 0; i < n->n_items; i++) {
                        int r = check_value(c, n->items[i]);
                        if (r < 0)
                                return r;
                        if (!is_scalar(n->items[i]->type))
                                return compile_error(c, n->items[i]->pos, "a list item must be a number, a string, a "
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

/* ------------------------------------------------------------ code generation */

static int emit_insn(compiler *c, opcode op, uint32_t arg, uint32_t pos, int stack_effect) {
        expr *e = c->e;
        int r = grow_array((void **) &e->code, &e->cap_code, e->n_code, sizeof(insn));
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
        int r = grow_array((void **) &e->consts, &e->cap_consts, e->n_consts, sizeof(expr_value));
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

static int emit(compiler *c, const node *n);

static int emit_builtin(compiler *c, const node *n) {
        int r;

        switch (n->builtin) {
        case B_LEN:
                if (n->items[0]->type == EXPR_LIST) {
                        /* the length of a list literal is known */
                        expr_value v = { .type = EXPR_INT, .i = (int64_t) n->items[0]->n_items };
                        return emit_const(c, &v, n->pos);
                }
                r = emit(c, n->items[0]);
                return r < 0 ? r : emit_insn(c, OP_LEN, 0, n->pos, 0);
        case B_UPPER:
        case B_LOWER:
                r = need_scratch(c);
                if (r < 0)
                        return r;
                r = emit(c, n->items[0]);
                return r < 0 ? r : emit_insn(c, n->builtin == B_UPPER ? OP_UPPER : OP_LOWER, 0, n->pos, 0);
        case B_ATOF:
                if (c->e->c_locale == (locale_t) 0) {
                        c->e->c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
                        if (c->e->c_locale == (locale_t) 0)
                                return -ENOMEM;
                }
                r = emit(c, n->items[0]);
                return r < 0 ? r : emit_insn(c, OP_ATOF, 0, n->pos, 0);
        case B_IPINRANGE:
                r = emit(c, n->items[0]);
                if (r < 0)
                        return r;
                if (n->items[1]->kind == N_STRING) {
                        expr *e = c->e;
                        r = grow_array((void **) &e->ranges, &e->cap_ranges, e->n_ranges, sizeof(ip_range));
                        if (r < 0)
                                return r;
                        if (ip_parse_cidr(n->items[1]->s, false, &e->ranges[e->n_ranges]) < 0)
                                return -EINVAL; /* check() validated it */
                        return emit_insn(c, OP_IPINRANGE_C, (uint32_t) e->n_ranges++, n->pos, 0);
                }
                r = emit(c, n->items[1]);
                return r < 0 ? r : emit_insn(c, OP_IPINRANGE, 0, n->pos, -1);
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
        int r = emit(c, n->lhs);
        if (r < 0)
                return r;
        r = grow_array((void **) &e->regexes, &e->cap_regexes, e->n_regexes, sizeof(rx *));
        if (r < 0)
                return r;
        r = rx_compile(n->rhs->s, n->rhs->slen, &e->regexes[e->n_regexes], msg, sizeof msg, &off);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return compile_error(c, literal_offset(e, n->rhs->pos, off), "matches: %s", msg);
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
                r = emit(c, n->lhs);
                if (r < 0)
                        return r;
                jump = c->e->n_code;
                r = emit_insn(c, n->op == T_AND ? OP_JUMP_FALSE : OP_JUMP_TRUE, 0, n->op_pos, -1);
                if (r < 0)
                        return r;
                r = emit(c, n->rhs);
                if (r < 0)
                        return r;
                c->e->code[jump].arg = (uint32_t) c->e->n_code;
                return 0;
        }
        if (n->op == T_MATCHES)
                return emit_matches(c, n);
        if (n->op == T_IN || n->op == T_NOT_IN) {
                r = emit(c, n->lhs);
                if (r < 0)
                        return r;
                if (n->rhs->type == EXPR_MAP)
                        r = emit_insn(c, OP_HAS_LABEL, 0, n->op_pos, 0);
                else {
                        for (size_t i = 0; i < n->rhs->n_items; i++) {
                                r = emit(c, n->rhs->items[i]);
                                if (r < 0)
                                        return r;
                        }
                        r = emit_insn(c, OP_IN, (uint32_t) n->rhs->n_items, n->op_pos, -(int) n->rhs->n_items);
                }
                if (r < 0)
                        return r;
                return n->op == T_NOT_IN ? emit_insn(c, OP_NOT, 0, n->op_pos, 0) : 0;
        }
        r = emit(c, n->lhs);
        if (r < 0)
                return r;
        r = emit(c, n->rhs);
        if (r < 0)
                return r;
        if (n->op == T_PLUS && n->type == EXPR_STRING) {
                r = need_scratch(c);
                return r < 0 ? r : emit_insn(c, OP_CONCAT, 0, n->op_pos, -1);
        }
        return emit_insn(c, ops[n->op], 0, n->op_pos, -1);
}

static int emit(compiler *c, const node *n) {
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
                        r = emit(c, n->items[i]);
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
                r = emit(c, n->rhs);
                return r < 0 ? r : emit_insn(c, OP_LABEL_DYN, 0, n->pos, 0);
        case H_BUILTIN:
                return emit_builtin(c, n);
        case H_OP:
                if (n->kind == N_UNARY) {
                        r = emit(c, n->lhs);
                        if (r < 0 || n->op == T_PLUS)
                                return r;
                        return emit_insn(c, n->op == T_NOT ? OP_NOT : OP_NEG, 0, n->op_pos, 0);
                }
                return emit_binary(c, n);
        case H_NONE:
                break;
        }
        return compile_error(c, n->pos, "internal error: cannot generate code for this expression");
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
                        return compile_error(&c, i, "NUL byte in the expression");
                }
        if (len > EXPR_MAX_LENGTH)
                return compile_error(&c, 0, "expression longer than %d bytes", EXPR_MAX_LENGTH);

        c.c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
        if (c.c_locale == (locale_t) 0)
                return -ENOMEM;

        r = lex(&c);
        if (r >= 0 && c.tok.kind == T_EOF)
                r = compile_error(&c, 0, "empty expression");
        if (r >= 0)
                r = parse_expr(&c, 0, &root);
        if (r >= 0 && c.tok.kind != T_EOF) {
                char buf[64];
                r = compile_error(&c, c.tok.pos, "unexpected %s after the end of the expression (missing operator?)",
                                  tok_text(&c, &c.tok, buf, sizeof buf));
        }
        if (r >= 0)
                r = check_value(&c, root);
        if (r >= 0)
                r = emit(&c, root);
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
        if (i >= ELEMENTSOF(fields))
                return -ENOENT;
        snprintf(buf, size, "%s.%s%s", parents[fields[i].obj], fields[i].name, fields[i].method ? "()" : "");
        return fields[i].type;
}

const char *expr_builtin_name(size_t i) {
        return i < ELEMENTSOF(builtins) ? builtins[i].name : NULL;
}

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
        const char *s = sig->has_source ? nonempty(sig->source.ip) : NULL;
        return s ? s : sig->source_ip;
}

const char *expr_signal_source_range(const spw_signal *sig) {
        const char *s = sig->has_source ? nonempty(sig->source.range) : NULL;
        return s ? s : sig->source_range;
}

const char *expr_signal_source_pick(const spw_signal *sig, const char *nested, const char *flat) {
        const char *s = sig->has_source ? nonempty(nested) : NULL;
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
                *v = (expr_value) { .type = EXPR_OBJECT, .ref = { sig->has_source ? &sig->source : NULL, 0 } };
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
                if (!sig->has_source)
                        return runtime_error(e, in->pos, err, "sig.Source is nil (this signal has no \"source\" "
                                             "object), so its fields cannot be read");
                switch (in->arg) {
                case F_SRC_IP: *v = make_str(sig->source.ip); return 0;
                case F_SRC_RANGE: *v = make_str(sig->source.range); return 0;
                case F_SRC_ASN: *v = make_str(sig->source.as_number); return 0;
                case F_SRC_ASORG: *v = make_str(sig->source.as_org); return 0;
                case F_SRC_COUNTRY: *v = make_str(sig->source.country); return 0;
                case F_SRC_LAT: *v = (expr_value) { .type = EXPR_FLOAT, .f = sig->source.latitude }; return 0;
                default: *v = (expr_value) { .type = EXPR_FLOAT, .f = sig->source.longitude }; return 0;
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
        case F_A_SRC_CN: *v = make_str(expr_signal_source_pick(sig, sig->source.country, sig->source_country)); return 0;
        case F_A_SRC_ASN: *v = make_str(expr_signal_source_pick(sig, sig->source.as_number, sig->source_as_number)); return 0;
        case F_A_SRC_ASNAME: *v = make_str(expr_signal_source_pick(sig, sig->source.as_org, sig->source_as_org)); return 0;
        case F_A_SRC_LAT:
                *v = (expr_value) { .type = EXPR_FLOAT,
                                    .f = sig->has_source ? sig->source.latitude : sig->source_latitude };
                return 0;
        case F_A_SRC_LON:
                *v = (expr_value) { .type = EXPR_FLOAT,
                                    .f = sig->has_source ? sig->source.longitude : sig->source_longitude };
                return 0;
        }
        return runtime_error(e, in->pos, err, "internal error: unknown field %" PRIu32, in->arg);
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

int expr_eval(expr *e, const spw_signal *sig, expr_value *ret, spw_error *err) {
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
                                return runtime_error(e, in->pos, err, "integer division by zero in %%");
                        a->i = b->i == -1 ? 0 : a->i % b->i;
                        sp--;
                        break;
                case OP_CONCAT: {
                        char *p = scratch_take(e, a->str.len + b->str.len);
                        if (!p)
                                return runtime_error(e, in->pos, err, "+: the joined string (%zu bytes) does not fit "
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
                                return runtime_error(e, in->pos, err, "cannot compare %s with %s",
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
                        if (m < 0)
                                return runtime_error(e, in->pos, err, "matches: the subject (%zu bytes) needs more "
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
                                *b = (expr_value) { .type = EXPR_INT, .i = (int64_t) b->str.len };
                        else if (b->type == EXPR_MAP)
                                *b = (expr_value) { .type = EXPR_INT, .i = (int64_t) b->ref.n };
                        else
                                return runtime_error(e, in->pos, err, "len() of %s", expr_type_name(b->type));
                        break;
                case OP_UPPER:
                case OP_LOWER: {
                        char *p = scratch_take(e, b->str.len);
                        if (!p)
                                return runtime_error(e, in->pos, err, "%s(): the string (%zu bytes) does not fit the "
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
                                        return runtime_error(e, in->pos, err, "Atof(): \"%.64s\" is not a number",
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
                        return runtime_error(e, in->pos, err, "internal error: bad instruction %u", in->op);
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
                return runtime_error(e, 0, err, "the expression is %s, not a boolean", expr_type_name(e->type));
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
