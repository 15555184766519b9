/* SPDX-License-Identifier: MIT */
/*
 * The HTTP ingest's bodies, as a producer or CrowdSec's http notification
 * plugin sends them: byte 0 picks the endpoint and Content-Type
 *   0 POST /v1/signals, application/json (one object or an array)
 *   1 POST /v1/signals, application/x-ndjson (one signal per line)
 *   2 POST /v1/crowdsec/alerts (models.Alert, decisions kept as labels)
 *   3 POST /v1/crowdsec/alerts with crowdsec_decisions: apply
 * and the rest is the body. Each item then goes through the same signal
 * check as http.c's check_items(). Beyond sanitizers: a body is refused
 * with a reason or yields at least one item; a mapped alert is a JSON
 * object; an alert mapped twice gives the same signal (no hidden state).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "arena.h"
#include "http.h"
#include "sigmodel.h"

static const long long now_usec = 1796466000000000LL; /* 2026-12-05T11:00:00Z: reproducible */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *body = (const char *) data + 1;
        char why[512] = "";
        json_t *items = NULL, *item;
        size_t i;
        int k;

        if (size == 0)
                return 0;
        size--;
        switch (data[0] & 3) {
        case 0:
                k = http_parse_signals(body, size, "application/json", &items, why, sizeof why);
                break;
        case 1:
                k = http_parse_signals(body, size, "application/x-ndjson; charset=utf-8", &items, why, sizeof why);
                break;
        default:
                k = http_parse_alerts(body, size, (data[0] & 3) == 3, now_usec, &items, why, sizeof why);
                if (k == 0) {
                        json_t *again = NULL;
                        char why2[512];
                        if (http_parse_alerts(body, size, (data[0] & 3) == 3, now_usec, &again, why2, sizeof why2) < 0 ||
                            !json_equal(items, again)) {
                                fprintf(stderr, "the same alerts mapped twice differ\n");
                                abort();
                        }
                        json_decref(again);
                }
                break;
        }
        if (k < 0) {
                if (items || !why[0]) {
                        fprintf(stderr, "a refused body must come with a reason and no items\n");
                        abort();
                }
                return 0;
        }
        if (json_array_size(items) == 0 && (data[0] & 3) < 2) {
                fprintf(stderr, "an accepted body with no signal\n");
                abort();
        }
        json_array_foreach(items, i, item) {
                arena a = ARENA_INIT;
                spw_signal sig = { 0 };
                spw_error err = { 0 };
                if ((data[0] & 3) >= 2 && !json_is_object(item))
                        abort();
                (void) signal_from_json(item, &a, &sig, &err);
                arena_deinit(&a);
        }
        json_decref(items);
        return 0;
}
