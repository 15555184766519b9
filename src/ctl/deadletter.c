/* SPDX-License-Identifier: MIT */
/*
 * `spillwayctl deadletter list|retry|drop BACKEND ...`: the signals a
 * backend with `durability: disk` rejected for good, kept in its spool's
 * dead-letter file with the reason (issue 12), over the daemon's admin ops
 * deadletter.list, deadletter.retry and deadletter.drop (adminops.c).
 * retry appends the chosen entries to the backend's spool again, with
 * their signal ids; drop forgets them. Both take signal ids, or --all:
 * never everything by accident.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "strbuf.h"
#include "timeutil.h"

const ctl_option deadletter_list_options[] = {
        { "limit", 0, required_argument, "N", NULL },
        {}
};

const ctl_option deadletter_change_options[] = {
        { "all", 0, no_argument, NULL, NULL },
        {}
};

/* The scenario of an entry's signal line, for the table ("" if it does
 * not parse). */
static char *entry_scenario(json_t *e) {
        const char *line = json_string_value(json_object_get(e, "line"));
        json_t *sig = line ? json_loads(line, 0, NULL) : NULL;
        json_t *env = sig ? json_object_get(sig, "signal") : NULL; /* an envelope */
        const char *s = jstr(env && json_is_object(env) ? env : sig, "scenario");
        char *r = strdup(s);
        json_decref(sig);
        return r;
}

static void entry_time(json_t *e, char *buf, size_t size) {
        json_t *at = json_object_get(e, "at");
        if (json_is_integer(at))
                format_rfc3339(buf, size, (usec_t) json_integer_value(at));
        else
                snprintf(buf, size, "?");
}

int cmd_deadletter_list(const ctl_command *cmd, int argc, char **argv) {
        long limit = 50;
        int c;

        while ((c = ctl_getopt(cmd, argc, argv, stderr)) >= 0) {
                char *end;
                if (c == '?')
                        return EXIT_USAGE;
                limit = strtol(optarg, &end, 10);
                if (*end || limit < 0) {
                        fprintf(stderr, "spillwayctl: --limit: expected a number (0 = all), got '%s'\n", optarg);
                        return EXIT_USAGE;
                }
        }
        if (argc - optind != 1) {
                fprintf(stderr, "spillwayctl: usage: deadletter list BACKEND [--limit N]\n");
                return EXIT_USAGE;
        }
        json_t *reply = request(json_pack("{s:s, s:s}", "op", "deadletter.list", "backend", argv[optind]));
        int r = check_reply(reply);
        if (r) {
                json_decref(reply);
                return r;
        }
        json_t *entries = json_object_get(reply, "entries"), *e;
        size_t n = json_array_size(entries), i;

        if (arg_output == OUT_JSON)
                print_json(reply);
        else if (arg_output == OUT_RAW) {
                printf("id,at,scenario,reason,line\n");
                json_array_foreach(entries, i, e) {
                        char id[32], at[RFC3339_MAX];
                        char *sc = entry_scenario(e);
                        snprintf(id, sizeof id, "%lld", jint(e, "id"));
                        entry_time(e, at, sizeof at);
                        csv_field(id, false);
                        csv_field(at, false);
                        csv_field(sc ? sc : "", false);
                        csv_field(jstr(e, "reason"), false);
                        csv_field(jstr(e, "line"), true);
                        free(sc);
                }
        } else if (n == 0)
                printf("No dead letters in backend %s.\n", argv[optind]);
        else {
                size_t shown = limit == 0 || (size_t) limit > n ? n : (size_t) limit;
                printf("%-20s | %-20s | %-32s | %s\n", "Signal id", "Rejected at", "Scenario", "Reason");
                json_array_foreach(entries, i, e) {
                        char at[RFC3339_MAX];
                        char *sc;
                        if (i >= shown)
                                break;
                        sc = entry_scenario(e);
                        entry_time(e, at, sizeof at);
                        printf("%-20lld | %-20s | %-32.64s | %s\n", jint(e, "id"), at, sc ? sc : "", jstr(e, "reason"));
                        free(sc);
                }
                if (shown < n)
                        printf("%zu more dead letters not shown (use --limit N, 0 for all)\n", n - shown);
                else
                        printf("%zu dead letter%s\n", n, n == 1 ? "" : "s");
        }
        json_decref(reply);
        return 0;
}

/* retry / drop BACKEND (ID... | --all) */
static int change(const ctl_command *cmd, int argc, char **argv, const char *op, const char *key, const char *what) {
        bool all = false;
        int c;

        while ((c = ctl_getopt(cmd, argc, argv, stderr)) >= 0) {
                if (c == '?')
                        return EXIT_USAGE;
                all = true;
        }
        if (argc - optind < 1 || (all ? argc - optind != 1 : argc - optind < 2)) {
                fprintf(stderr, "spillwayctl: usage: deadletter %s BACKEND ID... | --all\n", op);
                return EXIT_USAGE;
        }
        char opname[32];
        snprintf(opname, sizeof opname, "deadletter.%s", op);
        json_t *req = json_pack("{s:s, s:s}", "op", opname, "backend", argv[optind]);
        if (all)
                json_object_set_new(req, "all", json_true());
        else {
                json_t *ids = json_array();
                for (int i = optind + 1; i < argc; i++) {
                        char *end;
                        unsigned long long id = strtoull(argv[i], &end, 10);
                        if (!*argv[i] || *end || argv[i][0] == '-' || id > INT64_MAX) {
                                fprintf(stderr, "spillwayctl: deadletter %s: '%s' is not a signal id (a number from "
                                        "deadletter list)\n", op, argv[i]);
                                json_decref(ids);
                                json_decref(req);
                                return EXIT_USAGE;
                        }
                        json_array_append_new(ids, json_integer((json_int_t) id));
                }
                json_object_set_new(req, "ids", ids);
        }
        json_t *reply = request(req);
        int r = check_reply(reply);
        if (!r) {
                if (arg_output == OUT_JSON)
                        print_json(reply);
                else
                        printf("%lld dead letter(s) %s\n", jint(reply, key), what);
        }
        json_decref(reply);
        return r;
}

int cmd_deadletter_retry(const ctl_command *cmd, int argc, char **argv) {
        return change(cmd, argc, argv, "retry", "requeued", "queued again");
}

int cmd_deadletter_drop(const ctl_command *cmd, int argc, char **argv) {
        return change(cmd, argc, argv, "drop", "dropped", "dropped");
}
