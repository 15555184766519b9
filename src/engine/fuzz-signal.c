/* SPDX-License-Identifier: MIT */
/*
 * A signal as a producer sends it. Beyond "no crash, no sanitizer report",
 * what parses must hold the model's ranges (issue 20): every time is unset
 * or within the years 1..9999 and reads back from its RFC 3339 text, the
 * leak speed and the counts are not negative.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "sigmodel.h"
#include "timeutil.h"

static void check_time(spw_usec_t t, const char *what) {
        char buf[RFC3339_MAX];
        usec_t back;

        if (t == 0)
                return;
        if (t < TIME_YEAR1_USEC || t > TIME_YEAR9999_USEC ||
            parse_rfc3339(format_rfc3339(buf, sizeof buf, t), &back) < 0 || back != t) {
                fprintf(stderr, "%s: %lld (%s) is out of range or does not read back\n", what, (long long) t, buf);
                abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        arena a = ARENA_INIT;
        spw_signal s;
        spw_error err;

        if (signal_parse((const char *) data, size, &a, &s, &err) == 0) {
                check_time(s.start_at, "start_at");
                check_time(s.stop_at, "stop_at");
                if (s.leak_speed_ns < 0 || s.events_count < 0)
                        abort();
                for (size_t i = 0; i < s.n_events; i++)
                        check_time(s.events[i].time, "events_sequence[].time");
                for (size_t i = 0; i < s.n_bans; i++) {
                        check_time(s.bans[i].until, "ban_applications[].Until");
                        json_decref(ban_to_json(&s.bans[i]));
                }
        }
        arena_deinit(&a);
        return 0;
}
