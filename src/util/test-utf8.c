/* SPDX-License-Identifier: MIT */
#include "tests.h"
#include "utf8.h"

int main(void) {
        CHECK(utf8_valid("", 0));
        CHECK(utf8_valid("plain ascii", 11));
        CHECK(utf8_valid("\xc3\xa9", 2));                   /* é */
        CHECK(utf8_valid("\xe2\x82\xac", 3));               /* € */
        CHECK(utf8_valid("\xf0\x9f\x98\x80", 4));           /* U+1F600 */
        CHECK(utf8_valid("\xf4\x8f\xbf\xbf", 4));           /* U+10FFFF */
        CHECK(!utf8_valid("\xc0\xaf", 2));                  /* overlong '/' */
        CHECK(!utf8_valid("\xe0\x80\xaf", 3));              /* overlong */
        CHECK(!utf8_valid("\xed\xa0\x80", 3));              /* surrogate U+D800 */
        CHECK(!utf8_valid("\xf4\x90\x80\x80", 4));          /* beyond U+10FFFF */
        CHECK(!utf8_valid("\xc3", 1));                      /* cut short */
        CHECK(!utf8_valid("\xe2\x82", 2));
        CHECK(!utf8_valid("\x80", 1));                      /* lone continuation */
        CHECK(!utf8_valid("a\xffz", 3));
        CHECK_EQ(utf8_char_len((const unsigned char *) "\xe2\x82\xac!", 4), 3);
        CHECK_EQ(utf8_char_len((const unsigned char *) "\xe2\x82\xac", 2), 0);
        return 0;
}
