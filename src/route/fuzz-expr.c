/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the filter language: any bytes are compiled (with
 * both environments, the second one with the ban-history helpers); what
 * compiles is evaluated against three signals (full, without a source
 * object, empty), with a history callback that answers or fails. Beyond "no crash, no leak, no
 * undefined behaviour" it checks that the value's type is the static type
 * the compiler promised and that strings are NUL-terminated at their length.
 */
#include <stdint.h>

#include "expr.h"

static const spw_source fuzz_source = {
        .size = sizeof(spw_source), .ip = "192.0.2.7", .range = "192.0.2.0/24", .country = "FR" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const spw_kv labels[] = {
        { "remediation", "true" }, { "scope", "range" }, { "x", "1.5" }, { "y", "abc" },
};

static int fake_history(void *userdata, const char *value, int64_t since, uint64_t *count) {
        (void) userdata;
        assert_se(value && strlen(value) < 1 << 20);
        if (since < 0)
                return -EINVAL;
        *count = strlen(value) % 5;
        return strlen(value) % 7 == 3 ? -EIO : 0;
}

static void check_value(const expr *e, const expr_value *v) {
        char buf[256];

        assert_se(v->type == expr_result_type(e) || (v->type == EXPR_NIL && expr_result_type(e) == EXPR_NIL));
        if (v->type == EXPR_STRING)
                assert_se(v->str.ptr[v->str.len] == 0 && strlen(v->str.ptr) == v->str.len);
        if (v->type == EXPR_LIST)
                for (size_t i = 0; i < v->list.n; i++)
                        assert_se(v->list.items[i].type <= EXPR_STRING);
        expr_value_format(v, buf, sizeof buf);
        assert_se(strlen(buf) < sizeof buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        spw_signal sigs[3] = {
                {
                        .size = sizeof(spw_signal),
                        .scenario = "crowdsecurity/ssh-bf",
                        .events_count = 6,
                        .source = &fuzz_source,
                        .source_ip = "2001:db8::1",
                        .labels = labels,
                        .n_labels = sizeof labels / sizeof labels[0],
                },
                { .size = sizeof(spw_signal), .scenario = "x", .source_ip = "not an ip", .labels = labels, .n_labels = 2 },
                { .size = sizeof(spw_signal) },
        };
        static const unsigned envs[] = { EXPR_ENV_SIG, EXPR_ENV_ALERT | EXPR_ENV_SIG | EXPR_ENV_HISTORY };
        const expr_context ctx = { .now = INT64_C(1700000000000000), .history = fake_history };

        for (size_t k = 0; k < sizeof envs / sizeof envs[0]; k++) {
                expr_origin o = { .filename = "fuzz", .context = "filter", .line = 3, .column = 9 };
                spw_error err = { 0 };
                expr *e = NULL;

                if (expr_compile((const char *) data, size, envs[k], &o, &e, &err) < 0) {
                        assert_se(!e);
                        assert_se(strncmp(err.msg, "fuzz:", 5) == 0 || strstr(err.msg, "out of memory"));
                        continue;
                }
                assert_se(expr_stack_size(e) >= 1);
                for (size_t i = 0; i < 3; i++) {
                        expr_value v;
                        memset(&err, 0, sizeof err);
                        if (expr_eval_in(e, &sigs[i], &ctx, &v, &err) >= 0)
                                check_value(e, &v);
                        else
                                assert_se(strncmp(err.msg, "fuzz:", 5) == 0);
                        int b = expr_eval_bool(e, &sigs[i], NULL);
                        assert_se(expr_result_type(e) == EXPR_BOOL ? b >= -EINVAL && b <= 1 : b == -EINVAL);
                }
                expr_free(e);
        }
        return 0;
}
