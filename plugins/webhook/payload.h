/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A signal as the webhook sends it: one JSON object with CrowdSec v0.3's
 * SignalOccurence field names as on the wire (the same names a producer
 * sends), the bans as `ban_applications`, and the producer's unknown
 * top-level members merged in unchanged. Templates evaluate over these
 * objects too, so the default payload and `{{.|toJson}}` are identical.
 */

#include <jansson.h>
#include <spillway/backend.h>

/* A new object holding copies of everything it needs from the (borrowed)
 * signal, or NULL on out-of-memory. */
json_t *payload_signal_to_json(const spw_signal *s);
