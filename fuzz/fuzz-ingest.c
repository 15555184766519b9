/* SPDX-License-Identifier: MIT */
/*
 * The ingest socket's line protocol as a producer speaks it: partial lines,
 * pipelining, envelopes with ack levels, oversized lines (max_line 1024
 * here), a last line without a newline, bad JSON, ops sent to the wrong
 * socket. A real daemon (fuzz-daemon.h) answers; every line gets exactly
 * one reply.
 */
#include "fuzz-daemon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fz_run_client(LISTENER_INGEST, data, size);
        return 0;
}
