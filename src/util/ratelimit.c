/* SPDX-License-Identifier: MIT */
#include "ratelimit.h"

bool ratelimit_below(ratelimit *rl, uint64_t *suppressed_before) {
        usec_t now = now_monotonic();
        bool ok;

        pthread_mutex_lock(&rl->lock);
        if (suppressed_before)
                *suppressed_before = 0;
        if (rl->begin == 0 || now - rl->begin >= rl->interval) {
                rl->begin = now;
                rl->num = 0;
                if (suppressed_before)
                        *suppressed_before = rl->suppressed;
                rl->suppressed = 0;
        }
        ok = rl->num < rl->burst;
        if (ok)
                rl->num++;
        else
                rl->suppressed++;
        pthread_mutex_unlock(&rl->lock);
        return ok;
}

usec_t ratelimit_summary_due(ratelimit *rl) {
        usec_t due;

        pthread_mutex_lock(&rl->lock);
        due = rl->suppressed > 0 ? rl->begin + rl->interval : INT64_MAX;
        pthread_mutex_unlock(&rl->lock);
        return due;
}

uint64_t ratelimit_take_summary(ratelimit *rl, bool now_anyway) {
        uint64_t n = 0;

        pthread_mutex_lock(&rl->lock);
        if (rl->suppressed > 0 && (now_anyway || now_monotonic() - rl->begin >= rl->interval)) {
                n = rl->suppressed;
                rl->suppressed = 0;
        }
        pthread_mutex_unlock(&rl->lock);
        return n;
}
