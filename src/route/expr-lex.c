/* SPDX-License-Identifier: MIT */
/*
 * The filter language's lexer: one token at a time from the text, as
 * expr-lang/expr reads it (see README.md, "Values and literals"). String
 * literals are unescaped into the compiler's temporary arena; numbers are
 * converted here with the C locale.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr-internal.h"
#include "strutil.h"

const char *const expr_tok_names[_T_MAX] = {
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
                return expr_compile_error(c, start, "unterminated string (missing closing %c)", quote);
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
                                                return expr_compile_error(c, esc, "octal escape needs three digits (\\NNN)");
                                        cp = cp * 8 + (uint32_t) (s[c->p] - '0');
                                }
                                if (cp > 255)
                                        return expr_compile_error(c, esc, "octal escape \\%.3s is larger than 255", s + esc + 1);
                                if (cp == 0)
                                        return expr_compile_error(c, esc, "NUL character in a string");
                                out[o++] = (char) cp;
                                continue;
                        }
                        return expr_compile_error(c, esc, "unknown escape sequence '\\%c' in a string", ch ? ch : '?');
                }
                cp = 0;
                for (unsigned k = 0; k < digits; k++, c->p++) {
                        int h = c->p < end ? hex_value(s[c->p]) : -1;
                        if (h < 0)
                                return expr_compile_error(c, esc, "escape \\%c needs %u hexadecimal digits", ch, digits);
                        cp = cp * 16 + (uint32_t) h;
                }
                if (cp == 0)
                        return expr_compile_error(c, esc, "NUL character in a string");
                if (ch == 'x')
                        out[o++] = (char) cp;
                else if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return expr_compile_error(c, esc, "invalid Unicode code point in \\%c escape", ch);
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
                        return expr_compile_error(c, start, "hexadecimal number without digits");
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
                return expr_compile_error(c, start, "number too long");
        if (c->p < n && is_ident_char(s[c->p]))
                return expr_compile_error(c, c->p, "unexpected '%c' after a number", s[c->p]);
        buf[b] = 0;
        errno = 0;
        if (is_float) {
                t->kind = T_FLOAT;
                t->f = strtod_l(buf, &end, c->c_locale);
                if (*end || (errno == ERANGE && isinf(t->f)))
                        return expr_compile_error(c, start, "invalid number '%s'", buf);
        } else {
                unsigned long long v = strtoull(buf, &end, hex ? 16 : 10);
                if (*end)
                        return expr_compile_error(c, start, "invalid number '%s'", buf);
                if (errno == ERANGE || v > INT64_MAX)
                        return expr_compile_error(c, start, "integer %s%s is out of range (at most %" PRId64 ")",
                                                  hex ? "0x" : "", buf, INT64_MAX);
                t->kind = T_INT;
                t->i = (int64_t) v;
        }
        return 0;
}

/* Read the next token into c->tok. */
int expr_lex(compiler *c) {
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
                                return expr_compile_error(c, c->p, "ranges (..) are not supported");
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
                                return expr_compile_error(c, c->p, "unexpected '=' (use == to compare)");
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
                                return expr_compile_error(c, c->p, "unexpected '&' (use && or and)");
                        k = T_AND;
                        l = 2;
                        break;
                case '|':
                        if (next != '|')
                                return expr_compile_error(c, c->p, "unexpected '|' (use || or or)");
                        k = T_OR;
                        l = 2;
                        break;
                case '?':
                case ':':
                        return expr_compile_error(c, c->p, "the conditional operator (a ? b : c) is not supported");
                default:
                        if ((unsigned char) ch >= 0x20 && (unsigned char) ch < 0x7f)
                                return expr_compile_error(c, c->p, "unexpected character '%c'", ch);
                        return expr_compile_error(c, c->p, "unexpected byte 0x%02x", (unsigned char) ch);
                }
                t->kind = k;
                c->p += l;
        }
        t->len = (uint32_t) (c->p - t->pos);
        return 0;
}

/* The token as the user wrote it, for messages. */
const char *expr_tok_text(const compiler *c, const token *t, char *buf, size_t size) {
        if (t->kind == T_EOF)
                return "end of expression";
        snprintf(buf, size, "'%.*s'", (int) MIN(t->len, 40u), c->e->text + t->pos);
        return buf;
}
