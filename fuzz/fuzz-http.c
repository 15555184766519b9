/* SPDX-License-Identifier: MIT */
/*
 * The HTTP ingest as a client on the network reaches it: raw request bytes
 * (request line, headers, Authorization / X-Api-Key tokens, Content-Type,
 * chunked or sized bodies, ?ack=, pipelined requests) to a real daemon's
 * libmicrohttpd listener on the event loop (fuzz-daemon.h), with the
 * token "fuzz-token", bodies up to 16 KiB and CrowdSec decisions applied.
 * Beyond sanitizers: a reply is an HTTP/1.x status line, the exchange ends,
 * and the daemon lets go of connections whose clients closed (within
 * http_timeout: see fz_run_http() for libmicrohttpd's late notice).
 */
#include "fuzz-daemon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        fz_run_http(data, size);
        return 0;
}
