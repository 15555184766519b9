/* SPDX-License-Identifier: MIT */
/* The rate limiter and its summary of a burst that ended (issue 12: the
 * failure log always prints its final "N more" line). */
#include <time.h>

#include "ratelimit.h"
#include "tests.h"

static void sleep_usec(usec_t u) {
        struct timespec ts = { .tv_sec = (time_t) (u / USEC_PER_SEC), .tv_nsec = (long) (u % USEC_PER_SEC) * 1000 };
        while (nanosleep(&ts, &ts) < 0)
                ;
}

int main(void) {
        ratelimit rl = RATELIMIT_INIT(50 * USEC_PER_MSEC, 3);
        uint64_t sup = 99;

        /* nothing suppressed: no summary, ever */
        CHECK_EQ(ratelimit_summary_due(&rl), INT64_MAX);
        CHECK_EQ(ratelimit_take_summary(&rl, true), 0);

        /* a burst of 10: 3 pass, 7 are suppressed */
        for (int i = 0; i < 10; i++)
                CHECK_EQ(ratelimit_below(&rl, &sup), i < 3);
        CHECK_EQ(sup, 0);
        usec_t due = ratelimit_summary_due(&rl);
        CHECK(due != INT64_MAX && due <= now_monotonic() + 50 * USEC_PER_MSEC);
        /* before the window closes: not yet */
        CHECK_EQ(ratelimit_take_summary(&rl, false), 0);
        /* the burst ended: after the window, the 7 are handed over once */
        sleep_usec(60 * USEC_PER_MSEC);
        CHECK(now_monotonic() >= due);
        CHECK_EQ(ratelimit_take_summary(&rl, false), 7);
        CHECK_EQ(ratelimit_take_summary(&rl, false), 0);
        CHECK_EQ(ratelimit_summary_due(&rl), INT64_MAX);
        /* and the next event does not report them a second time */
        CHECK(ratelimit_below(&rl, &sup));
        CHECK_EQ(sup, 0);

        /* at exit, whatever is suppressed, window closed or not */
        CHECK(ratelimit_below(&rl, NULL));
        CHECK(ratelimit_below(&rl, NULL));
        CHECK(!ratelimit_below(&rl, NULL));
        CHECK(!ratelimit_below(&rl, NULL));
        CHECK_EQ(ratelimit_take_summary(&rl, true), 2);

        /* without a summary taken, the next window's first event still
         * reports the count (the old behaviour stays) */
        CHECK(!ratelimit_below(&rl, NULL));
        sleep_usec(60 * USEC_PER_MSEC);
        CHECK(ratelimit_below(&rl, &sup));
        CHECK_EQ(sup, 1);
        return 0;
}
