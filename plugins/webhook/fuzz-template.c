/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the payload template language: compile any bytes
 * (the memory-buffer entry point the plugin uses for `format:`), and when
 * they compile, render them over a small fixed batch of two signals. Must
 * never crash, leak or run away (the step and output limits bound it).
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char batch_json[] =
        "[{\"scenario\":\"crowdsecurity/ssh-bf\",\"alert_message\":\"a \\\"b\\\"\\n\",\"events_count\":6,"
        "\"start_at\":\"2020-05-21T10:00:00Z\",\"source\":{\"Ip\":\"192.0.2.7\",\"Country\":\"FR\",\"Latitude\":48.85},"
        "\"Source_ip\":\"192.0.2.7\",\"Simulation\":false,\"Labels\":{\"remediation\":\"true\",\"type\":\"ssh\"},"
        "\"ban_applications\":[{\"MeasureType\":\"ban\",\"IpText\":\"192.0.2.7\",\"TargetAS\":64500}]},"
        "{\"scenario\":\"x/y\",\"events_count\":1,\"source\":{\"Ip\":\"2001:db8::1\"},\"Simulation\":true,\"Labels\":{}}]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static json_t *batch;
        tpl_error err;
        tpl *t = NULL;
        strbuf out = { 0 };

        if (!batch)
                batch = json_loads(batch_json, 0, NULL);
        if (tpl_compile((const char *) data, size, (tpl_origin) { 3, 9, 2 }, &t, &err) < 0)
                return 0;
        (void) tpl_render(t, batch, &out, 1 << 20);
        strbuf_deinit(&out);
        tpl_free(t);
        return 0;
}
