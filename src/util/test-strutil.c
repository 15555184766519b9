/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strutil.h"
#include "tests.h"

int main(void) {
        static const char *const keys[] = { "queue_size", "on_full", "flush_interval", "flush_batch" };
        spw_error err = { 0 };
        char *s;

        CHECK_EQ(unhexchar('0'), 0);
        CHECK_EQ(unhexchar('9'), 9);
        CHECK_EQ(unhexchar('a'), 10);
        CHECK_EQ(unhexchar('F'), 15);
        CHECK_EQ(unhexchar('g'), -1);
        CHECK_EQ(unhexchar('/'), -1);
        CHECK_EQ(unhexchar('\xff'), -1);
        CHECK_EQ(str_distance("kitten", "sitting"), 3);
        CHECK_EQ(str_distance("", "abc"), 3);
        CHECK_STREQ(str_closest("queue_sise", keys, 4), "queue_size");
        CHECK_STREQ(str_closest("flush_intervall", keys, 4), "flush_interval");
        CHECK(str_closest("zzzzzzzz", keys, 4) == NULL);

        setenv("SPW_TEST_TOKEN", "s3cret", 1);
        CHECK_OK(str_expand_vars("Bearer ${SPW_TEST_TOKEN} costs $$5", &s, &err));
        CHECK_STREQ(s, "Bearer s3cret costs $5");
        free(s);
        unsetenv("SPW_TEST_NOPE");
        CHECK_EQ(str_expand_vars("${SPW_TEST_NOPE}", &s, &err), -ENOENT);
        CHECK_CONTAINS(err.msg, "SPW_TEST_NOPE");
        CHECK_EQ(str_expand_vars("${unterminated", &s, &err), -EINVAL);

        char dir[] = "/tmp/spw-cred-XXXXXX";
        CHECK(mkdtemp(dir));
        char path[256];
        snprintf(path, sizeof path, "%s/token", dir);
        FILE *f = fopen(path, "w");
        CHECK(f);
        fputs("from-credential\n", f);
        fclose(f);
        unsetenv("CREDENTIALS_DIRECTORY");
        CHECK_EQ(str_expand_vars("${CREDENTIAL:token}", &s, &err), -ENOENT);
        CHECK_CONTAINS(err.msg, "LoadCredential");
        unsigned skipped = 0;
        CHECK_OK(str_expand_vars_full("x-${CREDENTIAL:token}", STR_EXPAND_CREDENTIAL_PLACEHOLDERS, &skipped, &s, &err));
        CHECK_STREQ(s, "x-<credential token>");
        CHECK_EQ(skipped, 1);
        free(s);
        setenv("CREDENTIALS_DIRECTORY", dir, 1);
        CHECK_OK(str_expand_vars("x-${CREDENTIAL:token}", &s, &err));
        CHECK_STREQ(s, "x-from-credential");
        free(s);
        CHECK_EQ(str_expand_vars("${CREDENTIAL:../etc}", &s, &err), -EINVAL);
        CHECK(str_expand_vars("${CREDENTIAL:missing}", &s, &err) < 0);
        CHECK_CONTAINS(err.msg, "missing");
        unlink(path);
        rmdir(dir);

        unsigned long long v;
        CHECK_OK(str_to_u64("1024", 1, 2048, &v));
        CHECK_EQ(v, 1024);
        CHECK_EQ(str_to_u64("4096", 1, 2048, &v), -ERANGE);
        CHECK_EQ(str_to_u64("-1", 0, 10, &v), -EINVAL);
        CHECK_EQ(str_to_u64("12x", 0, 100, &v), -EINVAL);
        return 0;
}
