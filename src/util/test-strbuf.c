/* SPDX-License-Identifier: MIT */
#include "strbuf.h"
#include "tests.h"

int main(void) {
        strbuf b = STRBUF_INIT;
        strbuf_puts(&b, "a");
        strbuf_printf(&b, "%d", 12);
        CHECK_STREQ(b.data, "a12");
        strbuf_reset(&b);
        strbuf_json_string(&b, "q\"\\\n\x01é");
        CHECK_STREQ(b.data, "\"q\\\"\\\\\\n\\u0001é\"");
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
