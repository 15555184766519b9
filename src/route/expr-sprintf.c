/* SPDX-License-Identifier: MIT */
/*
 * Sprintf(format, args...): CrowdSec's helper is Go's fmt.Sprintf, so this
 * follows Go's rules for the values this language has (int is Go's int,
 * float is float64):
 *
 *   %v   any value: ints in decimal, floats as %g with the fewest digits
 *        that read back the same (1e+06, 0.1, 3.5), strings as they are,
 *        true/false, nil as <nil>
 *   %d %x %X %o %b %c   ints (%x of a negative int is -ff, not two's
 *        complement; %c writes the code point as UTF-8)
 *   %f %F %e %E %g %G   floats (%g without precision: shortest, as %v)
 *   %s %q %x %X   strings (%q Go-quoted, %x hex bytes)
 *   %t   booleans
 *   %T   the Go type: int, float64, string, bool
 *   %%   a percent sign
 * with the flags + - # 0 and space, a width and a .precision (digits only,
 * not *). What Go prints for a mistake is printed too: %!d(string=abc)
 * for a verb that does not fit the value, %!d(MISSING) for a missing
 * argument, %!(EXTRA int=1, string=a) for arguments left over,
 * %!(NOVERB) for a lone % at the end.
 *
 * Output goes to a caller's buffer; running out of room is -ENOSPC (the
 * evaluator turns it into a run-time error). Nothing is allocated.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr-internal.h"

typedef struct out {
        char *buf;
        size_t size, len;
        bool full;
} out;

static void put(out *o, const char *s, size_t n) {
        if (o->full || n >= o->size - o->len) {
                o->full = true;
                return;
        }
        memcpy(o->buf + o->len, s, n);
        o->len += n;
}

static void puts_(out *o, const char *s) {
        put(o, s, strlen(s));
}

static void put_repeat(out *o, char ch, size_t n) {
        for (size_t i = 0; i < n && !o->full; i++)
                put(o, &ch, 1);
}

typedef struct spec {
        bool minus, plus, sharp, zero, space;
        int width, prec; /* -1: absent */
        char verb;
} spec;

/* Characters of s (UTF-8) for width counting, as Go counts runes. */
static size_t char_count(const char *s, size_t n) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (((unsigned char) s[i] & 0xc0) != 0x80)
                        k++;
        return k;
}

/* Write body padded to the width: spaces on the left (right with '-'); with
 * '0' and `zero_ok`, zeros after the sign and prefix (sign_len bytes). */
static void put_padded(out *o, const spec *sp, const char *body, size_t n, bool zero_ok, size_t sign_len) {
        size_t w = char_count(body, n);
        size_t pad = sp->width > 0 && (size_t) sp->width > w ? (size_t) sp->width - w : 0;

        if (sp->minus) {
                put(o, body, n);
                put_repeat(o, ' ', pad);
        } else if (sp->zero && zero_ok) {
                put(o, body, sign_len);
                put_repeat(o, '0', pad);
                put(o, body + sign_len, n - sign_len);
        } else {
                put_repeat(o, ' ', pad);
                put(o, body, n);
        }
}

static const char *go_type(const expr_value *v) {
        switch (v->type) {
        case EXPR_BOOL: return "bool";
        case EXPR_INT: return "int";
        case EXPR_FLOAT: return "float64";
        case EXPR_STRING: return "string";
        default: return "?";
        }
}

/* The shortest decimal digits that read back as f (f finite, not 0):
 * writes d.ddd into digits (without the dot) and returns the exponent. */
static int shortest_digits(double f, locale_t loc, char *digits, size_t size) {
        char tmp[40];
        for (int p = 1; p <= 17; p++) {
                snprintf(tmp, sizeof tmp, "%.*e", p - 1, f);
                if (strtod_l(tmp, NULL, loc) == f)
                        break;
        }
        /* tmp is [-]d[.ddd]e[+-]XX */
        const char *s = tmp + (tmp[0] == '-');
        size_t k = 0;
        for (; *s && *s != 'e' && k < size - 1; s++)
                if (*s != '.')
                        digits[k++] = *s;
        digits[k] = 0;
        return atoi(s + 1);
}

/* Go's %v and %g without precision: the shortest digits, in %e form when
 * the exponent is below -4 or at least 6 (strconv's rule when the
 * precision is the shortest): 1e+06, 123456, 1.5e-05, 0.0001. */
static void format_shortest(char *buf, size_t size, double f, bool upper, locale_t loc) {
        char digits[24];
        int exp;
        size_t nd;
        bool neg = signbit(f);

        if (f == 0) {
                snprintf(buf, size, "%s0", neg ? "-" : "");
                return;
        }
        exp = shortest_digits(f, loc, digits, sizeof digits);
        nd = strlen(digits);
        if (exp < -4 || exp >= 6) {
                snprintf(buf, size, "%s%c%s%.*s%c%c%02d", neg ? "-" : "", digits[0], nd > 1 ? "." : "", (int) nd - 1,
                         digits + 1, upper ? 'E' : 'e', exp < 0 ? '-' : '+', abs(exp));
                return;
        }
        int decimals = (int) nd - 1 - exp;
        snprintf(buf, size, "%.*f", decimals > 0 ? decimals : 0, f);
}

static void format_go_value(out *o, const expr_value *v, locale_t loc) {
        char buf[64];
        switch (v->type) {
        case EXPR_NIL: puts_(o, "<nil>"); return;
        case EXPR_BOOL: puts_(o, v->b ? "true" : "false"); return;
        case EXPR_INT: snprintf(buf, sizeof buf, "%" PRId64, v->i); puts_(o, buf); return;
        case EXPR_FLOAT:
                if (isnan(v->f))
                        puts_(o, "NaN");
                else if (isinf(v->f))
                        puts_(o, v->f > 0 ? "+Inf" : "-Inf");
                else {
                        format_shortest(buf, sizeof buf, v->f, false, loc);
                        puts_(o, buf);
                }
                return;
        case EXPR_STRING: put(o, v->str.ptr, v->str.len); return;
        default: puts_(o, "?"); return;
        }
}

static void bad_verb(out *o, char verb, const expr_value *v, locale_t loc) {
        char head[8];
        snprintf(head, sizeof head, "%%!%c(", verb);
        puts_(o, head);
        if (v->type == EXPR_NIL)
                puts_(o, "<nil>");
        else {
                puts_(o, go_type(v));
                puts_(o, "=");
                format_go_value(o, v, loc);
        }
        puts_(o, ")");
}

static void format_int(out *o, const spec *sp, int64_t i) {
        /* sign, prefix, zeros of the precision (more than the scratch
         * buffer holds cannot be output anyway), digits */
        char body[EXPR_SCRATCH_SIZE + 96], digits[80];
        uint64_t mag = i < 0 ? (uint64_t) 0 - (uint64_t) i : (uint64_t) i;
        size_t n = 0, nd = 0, sign_len;
        unsigned base = sp->verb == 'x' || sp->verb == 'X' ? 16 : sp->verb == 'o' ? 8 : sp->verb == 'b' ? 2 : 10;
        const char *dig = sp->verb == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";

        do {
                digits[nd++] = dig[mag % base];
                mag /= base;
        } while (mag);
        if (sp->prec == 0 && i == 0)
                nd = 0; /* Go: %.0d of 0 is empty */
        if (i < 0)
                body[n++] = '-';
        else if (sp->plus)
                body[n++] = '+';
        else if (sp->space)
                body[n++] = ' ';
        if (sp->sharp && base == 16) {
                body[n++] = '0';
                body[n++] = sp->verb;
        } else if (sp->sharp && base == 8 && nd > 0 && digits[nd - 1] != '0')
                body[n++] = '0';
        else if (sp->sharp && base == 2) {
                body[n++] = '0';
                body[n++] = 'b';
        }
        sign_len = n;
        for (int k = (int) nd; sp->prec > 0 && k < sp->prec && n < EXPR_SCRATCH_SIZE; k++)
                body[n++] = '0';
        while (nd > 0)
                body[n++] = digits[--nd];
        /* Go ignores the 0 flag when a precision is given */
        put_padded(o, sp, body, n, sp->prec < 0, sign_len);
}

static void format_float(out *o, const spec *sp, double f, locale_t loc) {
        char body[EXPR_SCRATCH_SIZE + 64], fmt[32]; /* 309 digits + a precision of at most 1000 */
        size_t n = 0;
        bool shortest = (sp->verb == 'v' || sp->verb == 'g' || sp->verb == 'G') && sp->prec < 0;

        if (isnan(f) || isinf(f)) {
                /* Go: +Inf always has its sign; NaN only with + or space */
                const char *sign = f < 0 ? "-" : sp->plus ? "+" : sp->space ? " " : isnan(f) ? "" : "+";
                snprintf(body, sizeof body, "%s%s", sign, isnan(f) ? "NaN" : "Inf");
                spec nozero = *sp;
                nozero.zero = false;
                put_padded(o, &nozero, body, strlen(body), false, 0);
                return;
        }
        if (shortest) {
                if (!signbit(f) && sp->plus)
                        body[n++] = '+';
                else if (!signbit(f) && sp->space)
                        body[n++] = ' ';
                format_shortest(body + n, sizeof body - n, f, sp->verb == 'G', loc);
        } else {
                char verb = sp->verb == 'v' ? 'g' : sp->verb;
                /* C's conversions of these verbs print what Go's do; the
                 * format is built from a fixed set of flags and one verb */
                snprintf(fmt, sizeof fmt, "%%%s%s%s.%d%c", sp->plus ? "+" : "", sp->space ? " " : "",
                         sp->sharp ? "#" : "", sp->prec < 0 ? 6 : MIN(sp->prec, 1000), verb);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
                snprintf(body, sizeof body, fmt, f);
#pragma GCC diagnostic pop
        }
        n = strlen(body);
        put_padded(o, sp, body, n, true, body[0] == '-' || body[0] == '+' || body[0] == ' ' ? 1 : 0);
}

static void format_quoted(out *o, const spec *sp, const char *s, size_t len) {
        char body[EXPR_SCRATCH_SIZE];
        size_t n = 0;

        body[n++] = '"';
        for (size_t i = 0; i < len && n < sizeof body - 12; i++) {
                unsigned char ch = (unsigned char) s[i];
                uint32_t cp;
                size_t l;
                switch (ch) {
                case '"': body[n++] = '\\'; body[n++] = '"'; continue;
                case '\\': body[n++] = '\\'; body[n++] = '\\'; continue;
                case '\n': body[n++] = '\\'; body[n++] = 'n'; continue;
                case '\t': body[n++] = '\\'; body[n++] = 't'; continue;
                case '\r': body[n++] = '\\'; body[n++] = 'r'; continue;
                case '\a': body[n++] = '\\'; body[n++] = 'a'; continue;
                case '\b': body[n++] = '\\'; body[n++] = 'b'; continue;
                case '\f': body[n++] = '\\'; body[n++] = 'f'; continue;
                case '\v': body[n++] = '\\'; body[n++] = 'v'; continue;
                default: break;
                }
                if (ch >= 0x20 && ch < 0x7f) {
                        body[n++] = (char) ch;
                        continue;
                }
                if (ch < 0x80 || !(l = expr_utf8_decode(s + i, len - i, &cp))) {
                        n += (size_t) snprintf(body + n, sizeof body - n, "\\x%02x", ch);
                        continue;
                }
                memcpy(body + n, s + i, l); /* printable or not, kept: close enough to strconv.Quote */
                n += l;
                i += l - 1;
        }
        body[n++] = '"';
        put_padded(o, sp, body, n, false, 0);
}

static void format_one(out *o, const spec *sp, const expr_value *v, locale_t loc) {
        char buf[8];

        if (sp->verb == 'T') {
                const char *t = v->type == EXPR_NIL ? "<nil>" : go_type(v);
                put_padded(o, sp, t, strlen(t), false, 0);
                return;
        }
        switch (v->type) {
        case EXPR_INT:
                switch (sp->verb) {
                case 'v': case 'd': case 'x': case 'X': case 'o': case 'b':
                        format_int(o, sp, v->i);
                        return;
                case 'c': {
                        size_t l = expr_utf8_encode(buf, v->i < 0 || v->i > 0x10ffff ? 0xfffd : (uint32_t) v->i);
                        put_padded(o, sp, buf, l, false, 0);
                        return;
                }
                default: break;
                }
                break;
        case EXPR_FLOAT:
                switch (sp->verb) {
                case 'v': case 'f': case 'F': case 'e': case 'E': case 'g': case 'G':
                        format_float(o, sp, v->f, loc);
                        return;
                default: break;
                }
                break;
        case EXPR_STRING:
                switch (sp->verb) {
                case 'v':
                case 's': {
                        size_t len = v->str.len;
                        if (sp->prec >= 0) { /* precision: at most that many characters */
                                size_t k = 0, i = 0;
                                for (; i < len; i++)
                                        if (((unsigned char) v->str.ptr[i] & 0xc0) != 0x80 && k++ == (size_t) sp->prec)
                                                break;
                                len = i;
                        }
                        put_padded(o, sp, v->str.ptr, len, false, 0);
                        return;
                }
                case 'q':
                        format_quoted(o, sp, v->str.ptr, v->str.len);
                        return;
                case 'x':
                case 'X': {
                        const char *dig = sp->verb == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
                        char body[EXPR_SCRATCH_SIZE];
                        size_t n = 0;
                        for (size_t i = 0; i < v->str.len && n + 2 < sizeof body; i++) {
                                body[n++] = dig[(unsigned char) v->str.ptr[i] >> 4];
                                body[n++] = dig[(unsigned char) v->str.ptr[i] & 15];
                        }
                        put_padded(o, sp, body, n, false, 0);
                        return;
                }
                default: break;
                }
                break;
        case EXPR_BOOL:
                if (sp->verb == 'v' || sp->verb == 't') {
                        const char *s = v->b ? "true" : "false";
                        put_padded(o, sp, s, strlen(s), false, 0);
                        return;
                }
                break;
        case EXPR_NIL:
                if (sp->verb == 'v') {
                        put_padded(o, sp, "<nil>", 5, false, 0);
                        return;
                }
                break;
        default:
                break;
        }
        bad_verb(o, sp->verb, v, loc);
}

int expr_sprintf(const expr_value *args, size_t n_args, locale_t loc, char *buf, size_t size, size_t *len) {
        const char *f = args[0].str.ptr;
        size_t flen = args[0].str.len, next = 1;
        out o = { .buf = buf, .size = size };

        for (size_t i = 0; i < flen && !o.full;) {
                if (f[i] != '%') {
                        size_t j = i;
                        while (j < flen && f[j] != '%')
                                j++;
                        put(&o, f + i, j - i);
                        i = j;
                        continue;
                }
                i++;
                spec sp = { .width = -1, .prec = -1 };
                for (; i < flen; i++) {
                        if (f[i] == '-')
                                sp.minus = true;
                        else if (f[i] == '+')
                                sp.plus = true;
                        else if (f[i] == '#')
                                sp.sharp = true;
                        else if (f[i] == '0')
                                sp.zero = true;
                        else if (f[i] == ' ')
                                sp.space = true;
                        else
                                break;
                }
                for (; i < flen && f[i] >= '0' && f[i] <= '9'; i++)
                        sp.width = MIN((sp.width < 0 ? 0 : sp.width) * 10 + (f[i] - '0'), 10000);
                if (i < flen && f[i] == '.') {
                        sp.prec = 0;
                        for (i++; i < flen && f[i] >= '0' && f[i] <= '9'; i++)
                                sp.prec = MIN(sp.prec * 10 + (f[i] - '0'), 10000);
                }
                if (i >= flen) {
                        puts_(&o, "%!(NOVERB)");
                        break;
                }
                sp.verb = f[i++];
                if (sp.verb == '%') {
                        put(&o, "%", 1);
                        continue;
                }
                if (next >= n_args) {
                        char miss[24];
                        snprintf(miss, sizeof miss, "%%!%c(MISSING)", sp.verb);
                        puts_(&o, miss);
                        continue;
                }
                format_one(&o, &sp, &args[next++], loc);
        }
        if (next < n_args) {
                puts_(&o, "%!(EXTRA ");
                for (size_t k = next; k < n_args; k++) {
                        if (k > next)
                                puts_(&o, ", ");
                        if (args[k].type == EXPR_NIL)
                                puts_(&o, "<nil>");
                        else {
                                puts_(&o, go_type(&args[k]));
                                puts_(&o, "=");
                                format_go_value(&o, &args[k], loc);
                        }
                }
                puts_(&o, ")");
        }
        if (o.full)
                return -ENOSPC;
        o.buf[o.len] = 0;
        *len = o.len;
        return 0;
}
