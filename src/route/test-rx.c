/* SPDX-License-Identifier: MIT */
/*
 * The `matches` engine: a table of patterns and subjects (syntax, classes,
 * anchors, repetitions, escapes), errors with their offsets, the limits,
 * pathological patterns that stay linear, and a differential test against
 * the C library's POSIX ERE matcher on random patterns from the syntax both
 * define the same way (run in the C locale, subjects without newlines).
 */
#include <locale.h>
#include <regex.h>
#include <stdint.h>

#include "rx.h"
#include "tests.h"

static int search(const char *pattern, const char *subject) {
        char msg[200];
        size_t off;
        _cleanup_(rx_freep) rx *re = NULL;

        if (rx_compile(pattern, strlen(pattern), &re, msg, sizeof msg, &off) < 0) {
                fprintf(stderr, "'%s' does not compile: %s (at %zu)\n", pattern, msg, off);
                abort();
        }
        return rx_search(re, subject, strlen(subject));
}

static void expect(const char *pattern, const char *subject, int want) {
        int got = search(pattern, subject);
        if (got != want) {
                fprintf(stderr, "'%s' on \"%s\": expected %d, got %d\n", pattern, subject, want, got);
                abort();
        }
}

static void expect_error(const char *pattern, size_t want_off, const char *want) {
        char msg[200] = "";
        size_t off = 9999;
        rx *re = NULL;

        CHECK_EQ(rx_compile(pattern, strlen(pattern), &re, msg, sizeof msg, &off), -EINVAL);
        CHECK(!re);
        CHECK_CONTAINS(msg, want);
        if (off != want_off) {
                fprintf(stderr, "'%s': error at %zu, expected %zu (%s)\n", pattern, off, want_off, msg);
                abort();
        }
}

static void test_syntax(void) {
        /* literals, search is unanchored */
        expect("ssh", "crowdsecurity/ssh-bf", 1);
        expect("http", "crowdsecurity/ssh-bf", 0);
        expect("", "", 1);
        expect("", "anything", 1);
        expect("a", "", 0);
        expect("héllo", "say héllo", 1); /* UTF-8 literals match their bytes */
        /* . is any byte but newline (as Go) */
        expect("a.c", "abc", 1);
        expect("a.c", "a\nc", 0);
        expect("^...$", "abc", 1);
        /* anchors */
        expect("^ssh", "ssh-bf", 1);
        expect("^ssh", "x-ssh", 0);
        expect("bf$", "ssh-bf", 1);
        expect("bf$", "bf-ssh", 0);
        expect("^$", "", 1);
        expect("^$", "x", 0);
        expect("\\Aab\\z", "ab", 1);
        expect("a^b", "ab", 0); /* an anchor in the middle can never hold here */
        expect("(^a|b$)", "cb", 1);
        /* alternation and groups */
        expect("ssh|http", "http-probe", 1);
        expect("^(ssh|http)-bf$", "http-bf", 1);
        expect("^(ssh|http)-bf$", "ftp-bf", 0);
        expect("^(a|)$", "", 1);
        expect("^(?:ab)+$", "abab", 1);
        expect("a||b", "zzz", 1); /* an empty alternative matches the empty string */
        /* repetitions */
        expect("^a*$", "", 1);
        expect("^a*$", "aaaa", 1);
        expect("^a+$", "", 0);
        expect("^a+$", "aaa", 1);
        expect("^ab?c$", "ac", 1);
        expect("^ab?c$", "abc", 1);
        expect("^ab?c$", "abbc", 0);
        expect("^a{3}$", "aaa", 1);
        expect("^a{3}$", "aa", 0);
        expect("^a{2,}$", "aaaaa", 1);
        expect("^a{2,}$", "a", 0);
        expect("^a{1,3}$", "aaa", 1);
        expect("^a{1,3}$", "aaaa", 0);
        expect("^a{0}b$", "b", 1);
        expect("^(ab){2}$", "abab", 1);
        expect("^(a|bc){2,3}$", "bcabc", 1);
        expect("^(a*)*$", "aaa", 1);     /* empty loops terminate */
        expect("^(a*)+b$", "aaab", 1);
        expect("^(|a)*$", "aa", 1);
        expect("a.*?b", "a---b", 1);     /* lazy marker: same yes/no answer */
        expect("^a+?$", "aa", 1);
        /* a { that is not an interval is a literal, as in Go */
        expect("a{", "a{", 1);
        expect("a{x}", "a{x}", 1);
        expect("a{1,x}", "a{1,x}", 1);
        expect("{", "{", 1);
        /* brackets */
        expect("^[abc]+$", "abcba", 1);
        expect("^[abc]+$", "abd", 0);
        expect("^[^abc]+$", "xyz", 1);
        expect("^[^abc]+$", "xaz", 0);
        expect("^[a-z0-9_]+$", "ssh_bf2", 1);
        expect("^[]a]+$", "]a]", 1);
        expect("^[^]a]$", "b", 1);
        expect("^[a-]+$", "a-a", 1);
        expect("^[-a]+$", "-a", 1);
        expect("[.]", "a.b", 1);
        expect("[.]", "ab", 0);
        expect("^[[:alpha:]]+[[:digit:]]+$", "abc123", 1);
        expect("^[[:alnum:]_]+$", "a_1", 1);
        expect("^[[:space:]]$", "\t", 1);
        expect("^[[:upper:]][[:lower:]]+$", "Paris", 1);
        expect("^[[:xdigit:]]+$", "dead00BEEF", 1);
        expect("^[[:punct:]]+$", "!-/", 1);
        expect("[[:cntrl:]]", "a\x01", 1);
        expect("^[^[:digit:]]+$", "abc", 1);
        expect("^[\\d.]+$", "10.0.0.1", 1); /* a backslash escapes inside brackets, as in Go */
        expect("^[\\]]$", "]", 1);
        expect("^[\\x41-\\x43]+$", "ABC", 1);
        /* escapes */
        expect("^\\d+$", "12345", 1);
        expect("^\\D+$", "abc", 1);
        expect("^\\D+$", "ab1", 0);
        expect("^\\w+$", "ssh_bf2", 1);
        expect("^\\W$", "-", 1);
        expect("^a\\sb$", "a b", 1);
        expect("^a\\Sb$", "a-b", 1);
        expect("\\bssh\\b", "crowdsecurity/ssh-bf", 1);
        expect("\\bssh\\b", "crowdsecurity/sshd", 0);
        expect("ss\\B", "sshd", 1);
        expect("^a\\.b$", "a.b", 1);
        expect("^a\\.b$", "axb", 0);
        expect("^\\(\\)\\[\\]\\{\\}\\*\\+\\?\\|\\^\\$\\\\\\/$", "()[]{}*+?|^$\\/", 1);
        expect("^\\x41\\t$", "A\t", 1);
        expect("a\\nb", "a\nb", 1);
        /* IPs and such, as profiles use them */
        expect("^([0-9]{1,3}\\.){3}[0-9]{1,3}$", "192.0.2.7", 1);
        expect("^([0-9]{1,3}\\.){3}[0-9]{1,3}$", "192.0.2", 0);
        expect("^crowdsecurity/(ssh-bf|ssh-slow-bf|http-probing)$", "crowdsecurity/ssh-slow-bf", 1);
}

static void test_errors(void) {
        expect_error("(", 0, "missing ) to close the group");
        expect_error("a(b|c", 1, "missing ) to close the group");
        expect_error("ab)", 2, "unmatched )");
        expect_error("[abc", 0, "missing ] to close the bracket expression");
        expect_error("[]", 0, "missing ]");
        expect_error("*a", 0, "missing argument to repetition operator");
        expect_error("a|+", 2, "missing argument to repetition operator");
        expect_error("({2})", 1, "missing argument to repetition operator");
        expect_error("a**", 2, "a repetition operator follows another one");
        expect_error("a+{2}", 2, "a repetition operator follows another one");
        expect_error("a*??", 3, "a repetition operator follows another one");
        expect_error("^*", 1, "an anchor (^, $, \\b ...) cannot be repeated");
        expect_error("a{1001}", 1, "repetition count larger than 1000");
        expect_error("a{3,2}", 1, "n is smaller than m");
        expect_error("(a)\\1", 3, "back-references");
        expect_error("\\0", 0, "octal escapes are not supported");
        expect_error("\\pL", 0, "Unicode classes");
        expect_error("\\q", 0, "unknown escape sequence");
        expect_error("ab\\", 2, "trailing backslash");
        expect_error("\\x4", 0, "\\x needs two hexadecimal digits");
        expect_error("(?i)abc", 0, "(?...) flags and named groups are not supported");
        expect_error("(?P<n>a)", 0, "(?...) flags");
        expect_error("[z-a]", 2, "invalid range (its end comes before its start)");
        expect_error("[[:alfa:]]", 1, "unknown character class");
        expect_error("[[:alpha:", 1, "missing :] to close");
        expect_error("[[=a=]]", 1, "[=x=] and [.x.] are not supported");
        expect_error("[é]", 1, "non-ASCII characters inside [...] are not supported");
        expect_error("[a-\\d]", 2, "invalid range");
        expect_error("[\\b]", 1, "this escape cannot be used inside [...]");
        expect_error("((a{100}){100}){100}", 0, "too complex");
        char deep[80];
        memset(deep, '(', 33);
        deep[33] = 'a';
        memset(deep + 34, ')', 33);
        deep[67] = 0;
        expect_error(deep, 32, "groups nested too deeply (more than 32)");
        char *big = malloc(RX_MAX_PATTERN + 2);
        CHECK(big);
        memset(big, 'a', RX_MAX_PATTERN + 1);
        big[RX_MAX_PATTERN + 1] = 0;
        expect_error(big, 0, "longer than 4096 bytes");
        free(big);
}

static void test_program_size(void) {
        static const struct {
                const char *pattern;
                size_t size;
        } cases[] = {
                { "", 1 },           /* MATCH */
                { "abc", 4 },
                { "a|b", 5 },        /* SPLIT a JMP b MATCH */
                { "a*", 4 },         /* SPLIT a JMP MATCH */
                { "a+", 3 },         /* a SPLIT MATCH */
                { "a?", 3 },
                { "a{3}", 4 },
                { "a{2,4}", 7 },     /* a a SPLIT a SPLIT a MATCH */
                { "a{2,}", 4 },      /* a a SPLIT MATCH */
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char msg[100];
                _cleanup_(rx_freep) rx *re = NULL;
                CHECK_OK(rx_compile(cases[i].pattern, strlen(cases[i].pattern), &re, msg, sizeof msg, NULL));
                CHECK_EQ(rx_program_size(re), cases[i].size);
        }
}

static void test_pathological(void) {
        /* patterns that are exponential or quadratic for backtracking or
         * glibc matchers stay linear here: each finishes within the work
         * limit on a 16 KiB subject (glibc: "(a+)+b" takes 24-60 ms on 4 KiB) */
        static const char *const patterns[] = {
                "(a+)+b", "(a|aa)*b", "(a|a?)+b", "(.*){1,100}b", "(a*)*(a*)*(a*)*(a*)*b",
                "^(([a-z])+.)+[A-Z]([a-z])+$", "(x+x+)+y",
        };
        size_t len = 16384;
        char *subject = malloc(len + 1);
        CHECK(subject);
        memset(subject, 'a', len);
        subject[len] = 0;
        for (size_t i = 0; i < ELEMENTSOF(patterns); i++) {
                char msg[100];
                _cleanup_(rx_freep) rx *re = NULL;
                CHECK_OK(rx_compile(patterns[i], strlen(patterns[i]), &re, msg, sizeof msg, NULL));
                CHECK_EQ(rx_search(re, subject, len), 0);
        }
        /* the work limit: 2001 states all alive on 16 KiB is more than
         * RX_MAX_WORK steps: the search gives up instead of stalling */
        char msg[100];
        _cleanup_(rx_freep) rx *re = NULL;
        CHECK_OK(rx_compile("((a{1,10}){1,10}){1,10}b", 24, &re, msg, sizeof msg, NULL));
        CHECK_EQ(rx_program_size(re), 2001);
        CHECK_EQ(rx_search(re, subject, len), -E2BIG);
        CHECK_EQ(rx_search(re, subject, 1000), 0); /* a short subject is fine */
        free(subject);
}

/* ---- differential test against glibc on the syntax both define alike */

static uint64_t rng = 0x9e3779b97f4a7c15u;
static unsigned rnd(unsigned n) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (unsigned) (rng % n);
}

static void gen_alt(char *out, size_t *len, size_t cap, unsigned depth);

static void gen_atom(char *out, size_t *len, size_t cap, unsigned depth) {
        static const char *const atoms[] = { "a", "b", "c", ".", "[ab]", "[^a]", "[a-c]", "[[:alpha:]]" };
        if (depth < 3 && rnd(4) == 0) {
                out[(*len)++] = '(';
                gen_alt(out, len, cap, depth + 1);
                out[(*len)++] = ')';
        } else {
                const char *a = atoms[rnd(ELEMENTSOF(atoms))];
                memcpy(out + *len, a, strlen(a));
                *len += strlen(a);
        }
        static const char *const reps[] = { "", "", "", "*", "+", "?", "{2}", "{1,2}", "{0,3}", "{2,}" };
        const char *r = reps[rnd(ELEMENTSOF(reps))];
        memcpy(out + *len, r, strlen(r));
        *len += strlen(r);
}

static void gen_alt(char *out, size_t *len, size_t cap, unsigned depth) {
        unsigned branches = 1 + (rnd(3) == 0);
        for (unsigned b = 0; b < branches; b++) {
                if (b)
                        out[(*len)++] = '|';
                unsigned atoms = 1 + rnd(3);
                for (unsigned i = 0; i < atoms && *len + 40 < cap; i++)
                        gen_atom(out, len, cap, depth);
        }
}

static void test_against_libc(void) {
        unsigned compared = 0, matched = 0;

        setlocale(LC_ALL, "C");
        for (int iter = 0; iter < 20000; iter++) {
                char pattern[256], subject[16], msg[100];
                size_t len = 0;
                regex_t ref;
                rx *re = NULL;

                if (rnd(4) == 0)
                        pattern[len++] = '^';
                gen_alt(pattern, &len, 200, 0);
                if (rnd(4) == 0)
                        pattern[len++] = '$';
                pattern[len] = 0;
                size_t sl = rnd(10);
                for (size_t i = 0; i < sl; i++)
                        subject[i] = "abcd"[rnd(4)];
                subject[sl] = 0;

                CHECK_OK(rx_compile(pattern, len, &re, msg, sizeof msg, NULL));
                CHECK_EQ(regcomp(&ref, pattern, REG_EXTENDED | REG_NOSUB), 0);
                int want = regexec(&ref, subject, 0, NULL, 0) == 0;
                int got = rx_search(re, subject, sl);
                if (got != want) {
                        fprintf(stderr, "'%s' on \"%s\": libc says %d, rx says %d\n", pattern, subject, want, got);
                        abort();
                }
                compared++;
                matched += (unsigned) want;
                regfree(&ref);
                rx_free(re);
        }
        printf("# %u random patterns agree with the C library (%u matches)\n", compared, matched);
        CHECK(matched > compared / 10 && matched < compared - compared / 10);
}

int main(void) {
        test_syntax();
        test_errors();
        test_program_size();
        test_pathological();
        test_against_libc();
        return 0;
}
