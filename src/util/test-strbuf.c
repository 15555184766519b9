/* SPDX-License-Identifier: MIT */
#include "strbuf.h"
#include "tests.h"

int main(void) {
        strbuf b = STRBUF_INIT;
        strbuf_puts(&b, "a");
        strbuf_printf(&b, "%d", 12);
        CHECK_STREQ(b.data, "a12");
        strbuf_reset(&b);
        strbuf_put_uint(&b, 0);
        strbuf_putc(&b, ',');
        strbuf_put_uint(&b, 18446744073709551615ULL);
        strbuf_putc(&b, ',');
        strbuf_put_uint(&b, 1000);
        CHECK_STREQ(b.data, "0,18446744073709551615,1000");
        strbuf_reset(&b);
        strbuf_json_string(&b, "q\"\\\n\x01é");
        CHECK_STREQ(b.data, "\"q\\\"\\\\\\n\\u0001é\"");
        /* invalid UTF-8 never makes invalid JSON (a ban row with such bytes
         * broke `ban list`): each bad byte becomes U+FFFD */
        strbuf_reset(&b);
        strbuf_json_string(&b, "a\xff\xc3(\xed\xa0\x80z\xe2\x82\xac");
        CHECK_STREQ(b.data, "\"a\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffdz\xe2\x82\xac\"");
        strbuf_reset(&b);
        strbuf_json_escape(&b, "x\"y", 3);
        CHECK_STREQ(b.data, "x\\\"y");
        /* reset clears the oom flag, consume keeps it */
        b.oom = true;
        strbuf_consume(&b, b.len);
        CHECK_EQ(strbuf_error(&b), -12);
        strbuf_reset(&b);
        CHECK_EQ(strbuf_error(&b), 0);
        strbuf_reset(&b);
        strbuf_json_string(&b, NULL);
        CHECK_STREQ(b.data, "null");
        strbuf_reset(&b);
        strbuf_puts(&b, "line1\nline2");
        strbuf_consume(&b, 6);
        CHECK_STREQ(b.data, "line2");
        for (int i = 0; i < 100000; i++)
                strbuf_putc(&b, 'x');
        CHECK_EQ(b.len, 100005);
        CHECK_EQ(strbuf_error(&b), 0);
        char *s = strbuf_steal(&b);
        CHECK(s && b.data == NULL);
        free(s);
        strbuf_deinit(&b);
        return 0;
}
