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
        [T_QUESTION] = "'?'", [T_COLON] = "':'", [T_LBRACE] = "'{'", [T_RBRACE] = "'}'", [T_HASH] = "'#'",
        [T_PIPE] = "'|'",
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

/* ------------------------------------------------------------ characters */

static bool is_ident_start(char ch) {
        /* expr also takes '$' and any Unicode letter; every name this
         * language knows is ASCII, so a non-ASCII letter is refused as a
         * character (see lex_unexpected()) instead of as an unknown name */
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || ch == '$';
}

static bool is_ident_char(char ch) {
        return is_ident_start(ch) || (ch >= '0' && ch <= '9');
}

static bool is_digit(char ch) {
        return ch >= '0' && ch <= '9';
}

/* Bytes of white space at s[0..n) (Go's unicode.IsSpace, which expr uses),
 * or 0. */
static size_t space_length(const char *s, size_t n) {
        uint32_t cp;
        size_t l;

        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f')
                return 1;
        if ((unsigned char) *s < 0x80)
                return 0;
        l = expr_utf8_decode(s, n, &cp);
        if (l && (cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
                  cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000))
                return l;
        return 0;
}

/* Skip white space and comments: // to the end of the line, and slash-star to star-slash. */
static int skip_space(compiler *c) {
        const char *s = c->e->text;
        size_t n = c->e->len;

        while (c->p < n) {
                size_t l = space_length(s + c->p, n - c->p);
                if (l) {
                        c->p += l;
                        continue;
                }
                if (s[c->p] == '/' && c->p + 1 < n && s[c->p + 1] == '/') {
                        while (c->p < n && s[c->p] != '\n')
                                c->p++;
                        continue;
                }
                if (s[c->p] == '/' && c->p + 1 < n && s[c->p + 1] == '*') {
                        const char *end = memmem(s + c->p + 2, n - c->p - 2, "*/", 2);
                        if (!end)
                                return expr_compile_error(c, c->p, "unclosed comment (missing */)");
                        c->p = (size_t) (end - s) + 2;
                        continue;
                }
                break;
        }
        return 0;
}

/* A character that starts no token: named as Go's %#U does ("U+2665 '♥'"). */
static int lex_unexpected(compiler *c) {
        const char *s = c->e->text + c->p;
        size_t n = c->e->len - c->p;
        unsigned char ch = (unsigned char) *s;
        uint32_t cp;
        size_t l;

        if (ch >= 0x20 && ch < 0x7f)
                return expr_compile_error(c, c->p, "unexpected character '%c'", ch);
        if (ch < 0x80)
                return expr_compile_error(c, c->p, "unexpected character U+%04X", ch);
        l = expr_utf8_decode(s, n, &cp);
        if (l == 0)
                return expr_compile_error(c, c->p, "unexpected byte 0x%02x (not UTF-8)", ch);
        return expr_compile_error(c, c->p, "unexpected character U+%04" PRIX32 " '%.*s'%s", cp, (int) l, s,
                                  cp >= 0xc0 && cp < 0x250 ? " (names are ASCII; text goes in quotes)" : "");
}

/* ------------------------------------------------------------ strings */

/* The value of the escape at s[p] (after the backslash at s[p - 1]) in a
 * string quoted with `quote`, and where it ends. As expr 1.17: \a \b \f
 * \n \r \t \v \\ and the string's own quote; \NNN (octal, at most \377),
 * \xHH, \uHHHH, \u{H...} (1 to 6 digits) and \UHHHHHHHH are code points,
 * so "\xC3" is U+00C3 (two bytes in UTF-8), not the byte 0xC3. */
static int lex_escape(compiler *c, size_t esc, size_t *p, size_t end, char quote, uint32_t *ret) {
        const char *s = c->e->text;
        char ch = s[*p];
        unsigned digits;
        uint32_t cp = 0;

        (*p)++;
        switch (ch) {
        case 'a': *ret = '\a'; return 0;
        case 'b': *ret = '\b'; return 0;
        case 'f': *ret = '\f'; return 0;
        case 'n': *ret = '\n'; return 0;
        case 'r': *ret = '\r'; return 0;
        case 't': *ret = '\t'; return 0;
        case 'v': *ret = '\v'; return 0;
        case '\\': *ret = '\\'; return 0;
        case '\'':
        case '"':
                if (ch != quote)
                        return expr_compile_error(c, esc, "'\\%c' is not an escape in a %c...%c string (expr escapes "
                                                  "only the string's own quote): write %c alone", ch, quote, quote, ch);
                *ret = (uint32_t) ch;
                return 0;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
                if (ch >= '0' && ch <= '7') {
                        cp = (uint32_t) (ch - '0');
                        for (unsigned k = 0; k < 2; k++, (*p)++) {
                                if (*p >= end || s[*p] < '0' || s[*p] > '7')
                                        return expr_compile_error(c, esc, "octal escape needs three digits (\\NNN)");
                                cp = cp * 8 + (uint32_t) (s[*p] - '0');
                        }
                        if (cp > 255)
                                return expr_compile_error(c, esc, "octal escape \\%.3s is larger than \\377",
                                                          s + esc + 1);
                        *ret = cp;
                        return 0;
                }
                return expr_compile_error(c, esc, "unknown escape sequence '\\%c' in a string", ch ? ch : '?');
        }
        if (ch == 'u' && *p < end && s[*p] == '{') {
                unsigned k = 0;
                for ((*p)++; *p < end && s[*p] != '}'; (*p)++, k++) {
                        int h = unhexchar(s[*p]);
                        if (h < 0 || k >= 6)
                                return expr_compile_error(c, esc, "escape \\u{...} needs 1 to 6 hexadecimal digits");
                        cp = cp * 16 + (uint32_t) h;
                }
                if (*p >= end || k == 0)
                        return expr_compile_error(c, esc, "escape \\u{...} needs 1 to 6 hexadecimal digits");
                (*p)++;
        } else
                for (unsigned k = 0; k < digits; k++, (*p)++) {
                        int h = *p < end ? unhexchar(s[*p]) : -1;
                        if (h < 0)
                                return expr_compile_error(c, esc, "escape \\%c needs %u hexadecimal digits", ch, digits);
                        cp = cp * 16 + (uint32_t) h;
                }
        if (cp > 0x10ffff)
                return expr_compile_error(c, esc, "escape \\%c: U+%" PRIX32 " is beyond the last Unicode code point "
                                          "(U+10FFFF)", ch, cp);
        *ret = cp; /* a surrogate becomes U+FFFD when encoded, as in Go */
        return 0;
}

/* '...' and "...": one line; escapes as above; a raw CR is read as LF and
 * bytes that are not UTF-8 as U+FFFD, as expr does. */
static int lex_quoted(compiler *c, token *t) {
        const char *s = c->e->text;
        size_t n = c->e->len, start = c->p;
        char quote = s[c->p++];
        size_t end = c->p;
        char *out;
        size_t o = 0;

        /* find the closing quote first, so the buffer can be sized */
        while (end < n && s[end] != quote && s[end] != '\n') {
                if (s[end] == '\\' && end + 1 < n && s[end + 1] != '\n')
                        end++;
                end++;
        }
        if (end >= n)
                return expr_compile_error(c, start, "unterminated string (missing closing %c)", quote);
        if (s[end] == '\n')
                return expr_compile_error(c, start, "unterminated string (missing closing %c before the end of the "
                                          "line; write \\n for a newline, or use a `raw string`)", quote);
        /* at most 3 bytes out per byte in (an invalid byte becomes U+FFFD) */
        out = arena_alloc(&c->tmp, 3 * (end - c->p) + 1);
        if (!out)
                return -ENOMEM;
        while (c->p < end) {
                size_t esc = c->p;
                uint32_t cp;
                size_t l;
                int r;

                if (s[c->p] == '\r') {
                        out[o++] = '\n';
                        c->p += c->p + 1 < end && s[c->p + 1] == '\n' ? 2 : 1;
                        continue;
                }
                if (s[c->p] != '\\') {
                        l = expr_utf8_decode(s + c->p, end - c->p, &cp);
                        if (l == 0) {
                                o += expr_utf8_encode(out + o, 0xfffd);
                                c->p++;
                        } else {
                                memcpy(out + o, s + c->p, l);
                                o += l;
                                c->p += l;
                        }
                        continue;
                }
                c->p++;
                r = lex_escape(c, esc, &c->p, end, quote, &cp);
                if (r < 0)
                        return r;
                if (cp == 0)
                        return expr_compile_error(c, esc, "NUL character in a string (strings are C strings here)");
                o += expr_utf8_encode(out + o, cp);
        }
        out[o] = 0;
        c->p = end + 1;
        t->kind = T_STRING;
        t->s = out;
        t->slen = o;
        return 0;
}

/* `raw`: any bytes, newlines included, no escapes; `` is one backquote. */
static int lex_raw(compiler *c, token *t) {
        const char *s = c->e->text;
        size_t n = c->e->len, start = c->p;
        char *out = arena_alloc(&c->tmp, n - start);
        size_t o = 0;

        if (!out)
                return -ENOMEM;
        for (c->p++;; c->p++) {
                if (c->p >= n)
                        return expr_compile_error(c, start, "unterminated raw string (missing closing `)");
                if (s[c->p] == '`') {
                        if (c->p + 1 < n && s[c->p + 1] == '`') {
                                out[o++] = '`';
                                c->p++;
                                continue;
                        }
                        break;
                }
                out[o++] = s[c->p];
        }
        c->p++;
        out[o] = 0;
        if (memchr(out, 0, o))
                return expr_compile_error(c, start, "NUL character in a string (strings are C strings here)");
        t->kind = T_STRING;
        t->s = out;
        t->slen = o;
        return 0;
}

/* ------------------------------------------------------------ numbers */

/* Digits (and '_') of `base` from c->p into buf; returns how many digits. */
static size_t scan_digits(compiler *c, int base, char *buf, size_t *b, size_t size) {
        const char *s = c->e->text;
        size_t n = c->e->len, digits = 0;

        while (c->p < n) {
                char ch = s[c->p];
                int v = unhexchar(ch);
                if (ch != '_' && (v < 0 || v >= base))
                        break;
                if (ch != '_') {
                        if (*b < size - 1)
                                buf[(*b)++] = ch;
                        digits++;
                }
                c->p++;
        }
        return digits;
}

/* Numbers as expr reads them: 42, 1_000, 0x1F, 0o17, 0b101 (ints);
 * 1.5, .5, 1., 2e3, 1.25E-2 (floats). */
static int lex_number(compiler *c, token *t) {
        const char *s = c->e->text;
        size_t n = c->e->len, start = c->p;
        char buf[80];
        size_t b = 0;
        bool is_float = false;
        int base = 10;
        char *end;

        if (s[c->p] == '0' && c->p + 1 < n && strchr("xXoObB", s[c->p + 1]) && s[c->p + 1]) {
                char k = (char) (s[c->p + 1] | 0x20);
                base = k == 'x' ? 16 : k == 'o' ? 8 : 2;
                c->p += 2;
                if (scan_digits(c, base, buf, &b, sizeof buf) == 0)
                        return expr_compile_error(c, start, "%s number without digits",
                                                  base == 16 ? "hexadecimal" : base == 8 ? "octal" : "binary");
        } else {
                scan_digits(c, 10, buf, &b, sizeof buf);
                /* a dot after digits belongs to the number unless a second one
                 * follows (1..3 is a range); ".5" arrives here at the dot */
                if (c->p < n && s[c->p] == '.' && !(c->p + 1 < n && s[c->p + 1] == '.')) {
                        is_float = true;
                        if (b < sizeof buf - 1)
                                buf[b++] = '.';
                        c->p++;
                        scan_digits(c, 10, buf, &b, sizeof buf);
                }
                if (c->p < n && (s[c->p] == 'e' || s[c->p] == 'E')) {
                        is_float = true;
                        if (b < sizeof buf - 1)
                                buf[b++] = 'e';
                        c->p++;
                        if (c->p < n && (s[c->p] == '+' || s[c->p] == '-')) {
                                if (b < sizeof buf - 1)
                                        buf[b++] = s[c->p];
                                c->p++;
                        }
                        if (scan_digits(c, 10, buf, &b, sizeof buf) == 0)
                                return expr_compile_error(c, start, "invalid number '%.*s' (an exponent needs digits)",
                                                          (int) MIN(c->p - start, (size_t) 40), s + start);
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
                unsigned long long v = strtoull(buf, &end, base);
                if (*end)
                        return expr_compile_error(c, start, "invalid number '%s'", buf);
                if (errno == ERANGE || v > INT64_MAX)
                        return expr_compile_error(c, start, "integer %.*s is out of range (at most %" PRId64 ")",
                                                  (int) MIN(c->p - start, (size_t) 40), s + start, INT64_MAX);
                t->kind = T_INT;
                t->i = (int64_t) v;
        }
        return 0;
}

/* ------------------------------------------------------------ tokens */

int expr_lex(compiler *c) {
        const char *s = c->e->text;
        size_t n = c->e->len;
        token *t = &c->tok;
        int r;

        r = skip_space(c);
        if (r < 0)
                return r;
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
        } else if (is_digit(ch) || (ch == '.' && is_digit(next))) {
                r = lex_number(c, t);
                if (r < 0)
                        return r;
        } else if (ch == '"' || ch == '\'') {
                r = lex_quoted(c, t);
                if (r < 0)
                        return r;
        } else if (ch == '`') {
                r = lex_raw(c, t);
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
                case '{': k = T_LBRACE; break;
                case '}': k = T_RBRACE; break;
                case ',': k = T_COMMA; break;
                case ':': k = T_COLON; break;
                case '#': k = T_HASH; break;
                case '.':
                        if (next == '.')
                                return expr_compile_error(c, c->p, "ranges (a..b) are not supported");
                        k = T_DOT;
                        break;
                case '+': k = T_PLUS; break;
                case '-': k = T_MINUS; break;
                case '/': k = T_SLASH; break;
                case '%': k = T_PERCENT; break;
                case '^': k = T_POW; break;
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
                        k = next == '|' ? T_OR : T_PIPE;
                        l = next == '|' ? 2 : 1;
                        break;
                case '?':
                        k = T_QUESTION;
                        l = next == '?' || next == '.' ? 2 : 1;
                        break;
                case ';':
                        return expr_compile_error(c, c->p, "sequences (a; b) are not supported: a filter is one "
                                                  "expression");
                default:
                        return lex_unexpected(c);
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
