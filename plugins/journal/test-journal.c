/* SPDX-License-Identifier: MIT */
#include <string.h>
#include <syslog.h>

#include "journal-fields.h"
#include "tests.h"

static const char *find(journal_entry *e, int n, const char *prefix) {
        for (int i = 0; i < n; i++)
                if (!strncmp(e->field[i], prefix, strlen(prefix)))
                        return e->field[i] + strlen(prefix);
        return NULL;
}

int main(void) {
        spw_ban ban = { .measure_type = "ban", .ip_text = "192.0.2.7", .until = INT64_C(1590069620) * 1000000 };
        spw_kv labels[] = { { "remediation", "true" } };
        spw_signal s = { .size = sizeof s, .id = 42, .scenario = "crowdsecurity/ssh-bf", .events_count = 6,
                         .source = &(spw_source) { .size = sizeof(spw_source), .ip = "192.0.2.7", .country = "FR" },
                         .alert_message = "multi\nline", .labels = labels, .n_labels = 1, .bans = &ban, .n_bans = 1, .ban_size = sizeof ban };
        journal_entry e;
        int n = journal_fields_build(&e, &s, "journal", "spillway-signal", LOG_NOTICE);

        CHECK_STREQ(find(&e, n, "MESSAGE="), "multi line");
        CHECK_STREQ(find(&e, n, "PRIORITY="), "5");
        CHECK_STREQ(find(&e, n, "SPILLWAY_BACKEND="), "journal");
        CHECK_STREQ(find(&e, n, "SPILLWAY_SCENARIO="), "crowdsecurity/ssh-bf");
        CHECK_STREQ(find(&e, n, "SPILLWAY_SOURCE_IP="), "192.0.2.7");
        CHECK_STREQ(find(&e, n, "SPILLWAY_COUNTRY="), "FR");
        CHECK_STREQ(find(&e, n, "SPILLWAY_SIGNAL_ID="), "42");
        CHECK_STREQ(find(&e, n, "SPILLWAY_TARGET="), "192.0.2.7");
        CHECK_STREQ(find(&e, n, "SPILLWAY_UNTIL="), "2020-05-21T14:00:20Z");
        CHECK_STREQ(find(&e, n, "SPILLWAY_REMEDIATION="), "true");
        CHECK(find(&e, n, "SPILLWAY_SOURCE_RANGE=") == NULL); /* absent fields are omitted */

        s.alert_message = NULL;
        n = journal_fields_build(&e, &s, "journal", "x", LOG_INFO);
        CHECK_STREQ(find(&e, n, "MESSAGE="), "crowdsecurity/ssh-bf: ban 192.0.2.7 (6 events)");

        /* a value longer than a field is cut, and ends with "..." */
        static char long_message[3000];
        memset(long_message, 'x', sizeof long_message - 1);
        s.alert_message = long_message;
        n = journal_fields_build(&e, &s, "journal", "x", LOG_INFO);
        const char *m = find(&e, n, "MESSAGE=");
        CHECK(m && strlen(m) == JOURNAL_FIELD_MAX - 1 - strlen("MESSAGE="));
        CHECK(m && strcmp(m + strlen(m) - 3, "...") == 0);
        return 0;
}
