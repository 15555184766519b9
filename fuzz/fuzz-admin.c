/* SPDX-License-Identifier: MIT */
/*
 * The admin socket's requests: every op (status, metrics, ban.list with its
 * filters, ban.add/delete/flush on a real SQLite ban database, route.test,
 * config.check, reload, the dead-letter ops) with any arguments, pipelined
 * and split anywhere. A real daemon (fuzz-daemon.h) answers; every line
 * gets exactly one reply, a JSON object with a boolean "ok".
 */
#include "fuzz-daemon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fz_run_client(LISTENER_ADMIN, data, size);
        return 0;
}
