/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Private to the filter language (expr-*.c): the types every pass shares.
 *
 *   expr-lex.c      text -> tokens (expr_lex(), one token at a time)
 *   expr-parse.c    tokens -> syntax tree (precedence climbing), expr_parse()
 *   expr-check.c    names and static types of every node, expr_check()
 *   expr-compile.c  checked tree -> bytecode and constants, expr_emit()
 *   expr-eval.c     the stack machine over one signal, expr_eval()
 *   expr.c          the compile driver, error positions, the tables of
 *                   fields and helpers, the public accessors
 *
 * A `compiler` lives for one expr_compile() call; the syntax tree and token
 * strings sit in its temporary arena and are dropped at the end. The
 * compiled `expr` owns everything evaluation touches. Functions here follow
 * the module's convention: 0 or a negative errno, and compile errors are
 * returned by expr_compile_error(), which fills the caller's spw_error.
 */

#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "expr.h"
#include "ipaddr.h"
#include "rx.h"

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
        /* read only to refuse what expr has and this language has not, with a message */
        T_QUESTION, /* ? ?? ?. */
        T_COLON,
        T_LBRACE,
        T_RBRACE,
        T_HASH,
        T_PIPE,
        _T_MAX,
} tok_kind;


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

enum {
        B_LEN,
        B_UPPER,
        B_LOWER,
        B_ATOF,
        B_IPINRANGE,
        B_SPRINTF,
        B_DECISIONS_COUNT,
        B_DECISIONS_SINCE,
};

#define EXPR_VARIADIC UINT32_MAX

typedef struct builtin_def {
        const char *name;
        unsigned min_args, max_args; /* max_args EXPR_VARIADIC: any number */
        unsigned env;                /* EXPR_ENV_* the compile must have for it, or 0 */
} builtin_def;

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
        OP_SPRINTF,     /* format and arg - 1 values -> string */
        OP_DECISIONS,   /* value -> int: all bans of value in the history */
        OP_DECISIONS_SINCE, /* value window -> int: bans made within the window */
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
        locale_t c_locale; /* for Atof and Sprintf; (locale_t) 0 when unused */
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
        const char *callee; /* the function whose arguments are being parsed, or NULL */
        /* emitter */
        size_t sp, max_sp;
} compiler;

/* ------------------------------------------------------------ shared tables (expr.c, expr-lex.c) */

/* Upper bounds of the two tables, for arrays of candidates (checked in expr.c). */
#define EXPR_MAX_FIELDS 64
#define EXPR_MAX_BUILTINS 32

extern const char *const expr_tok_names[_T_MAX];
extern const char *const expr_obj_names[_OBJ_MAX];
extern const field_def expr_fields[];
extern const size_t expr_n_fields;
extern const builtin_def expr_builtins[];
extern const size_t expr_n_builtins;

/* ------------------------------------------------------------ expr.c */

/* Line and column of byte `pos` of the text (columns count UTF-8 characters). */
void expr_position(const expr *e, size_t pos, unsigned *line, unsigned *column);
/* Fill c->err with "file:line:column: context: what" and return -EINVAL. */
int expr_compile_error(compiler *c, size_t pos, const char *fmt, ...) _printf_(3, 4);
/* Fill err (may be NULL) with "file:line:column: what" and return -EINVAL. */
int expr_runtime_error(const expr *e, size_t pos, spw_error *err, const char *fmt, ...) _printf_(4, 5);
/* The length of the valid UTF-8 sequence at s[0..n) and its code point,
 * or 0 when it is not one (Go's rules: no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
size_t expr_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Write cp as UTF-8 (1 to 4 bytes); surrogates and values above U+10FFFF
 * are written as U+FFFD, as Go's utf8.EncodeRune does. */
size_t expr_utf8_encode(char *out, uint32_t cp);

/* Make room for element n of a malloc'ed array of capacity *cap. */
int expr_grow_array(void **p, size_t *cap, size_t n, size_t elem);

/* ------------------------------------------------------------ expr-lex.c */

/* Read the next token into c->tok. */
int expr_lex(compiler *c);
/* The token as the user wrote it, quoted, for messages. */
const char *expr_tok_text(const compiler *c, const token *t, char *buf, size_t size);

/* ------------------------------------------------------------ expr-parse.c */

/* Parse the whole text into a syntax tree in c->tmp. */
int expr_parse(compiler *c, node **root);
/* all, any, filter, map...: expr's builtins that take a closure. */
bool expr_is_predicate_builtin(const char *name);

/* ------------------------------------------------------------ expr-sprintf.c */

/* Go's fmt.Sprintf over args[0] (the format, a string) and the n_args - 1
 * values after it, into buf (NUL-terminated; *len without the NUL).
 * -ENOSPC when it does not fit. `loc` is a C locale (decimal point). */
int expr_sprintf(const expr_value *args, size_t n_args, locale_t loc, char *buf, size_t size, size_t *len);

/* ------------------------------------------------------------ expr-check.c */

/* Resolve names and give every node of the tree its type; refuses a bare
 * environment object (sig, Alert) as a value. */
int expr_check(compiler *c, node *n);

/* ------------------------------------------------------------ expr-compile.c */

/* Append the code of a checked node to c->e, tracking the stack depth. */
int expr_emit(compiler *c, const node *n);
