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
