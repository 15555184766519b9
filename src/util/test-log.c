/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "log.h"
#include "tests.h"

int main(void) {
        char out[64];

        /* plain text and valid UTF-8 pass unchanged */
        CHECK_EQ(log_escape(out, sizeof out, "ban 192.0.2.7 (caf\xc3\xa9 \xe2\x99\xa5)"), strlen("ban 192.0.2.7 (caf\xc3\xa9 \xe2\x99\xa5)"));
        CHECK_STREQ(out, "ban 192.0.2.7 (caf\xc3\xa9 \xe2\x99\xa5)");

        /* a forged second line and terminal escapes become visible text */
        log_escape(out, sizeof out, "x\nspillway: admin: ban.flush\r\x1b[2K\t\x7f");
        CHECK_STREQ(out, "x\\nspillway: admin: ban.flush\\r\\e[2K\\t\\x7f");
        CHECK(strchr(out, '\n') == NULL);

        /* invalid UTF-8: a lone continuation byte, a truncated sequence, an
         * overlong form, a surrogate */
        log_escape(out, sizeof out, "a\x80" "b\xc3" "c\xe0\x80\xaf" "d\xed\xa0\x80");
        CHECK_STREQ(out, "a\\x80b\\xc3c\\xe0\\x80\\xafd\\xed\\xa0\\x80");

        /* truncation never splits an escape or a character */
        char small[6];
        log_escape(small, sizeof small, "abcd\n");
        CHECK_STREQ(small, "abcd");
        log_escape(small, sizeof small, "abc\xe2\x99\xa5");
        CHECK_STREQ(small, "abc");
        CHECK_EQ(log_escape(small, 0, "x"), 0);
        return 0;
}
