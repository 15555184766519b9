/* SPDX-License-Identifier: MIT */
/*
 * The payload template language on its own: every construct renders what
 * Go's text/template would for the same data (with the documented
 * differences), every compile error carries the right line:column, and the
 * limits stop runaway templates.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../template.h"
#include "tests.h"

/* Two signals in the shape payload.c produces. */
static const char batch_json[] =
        "[{\"scenario\":\"crowdsecurity/ssh-bf\",\"alert_message\":\"ssh \\\"bf\\\"\\nfrom 192.0.2.7\","
        "\"events_count\":6,\"start_at\":\"2020-05-21T10:00:00Z\",\"stop_at\":\"2020-05-21T10:00:20Z\","
        "\"source\":{\"Ip\":\"192.0.2.7\",\"Country\":\"FR\",\"AutonomousSystemNumber\":\"64500\",\"Latitude\":48.8582,\"Longitude\":2.3387},"
        "\"Source_ip\":\"192.0.2.7\",\"dst_ip\":\"198.51.100.1\",\"capacity\":5,\"leak_speed\":10000000000,"
        "\"Whitelisted\":false,\"Simulation\":false,\"Reprocess\":false,"
        "\"Labels\":{\"type\":\"ssh\",\"remediation\":\"true\",\"a-b\":\"dash\"},"
        "\"ban_applications\":[{\"MeasureType\":\"ban\",\"MeasureSource\":\"local\",\"IpText\":\"192.0.2.7\",\"Until\":\"2020-05-21T14:00:20Z\"}]},"
        "{\"scenario\":\"crowdsecurity/http-probing\",\"events_count\":11,"
        "\"source\":{\"Ip\":\"2001:db8::1\",\"Country\":\"DE\"},\"Source_ip\":\"2001:db8::1\","
        "\"Whitelisted\":false,\"Simulation\":true,\"Labels\":{}}]";

static json_t *batch(void) {
        json_error_t e;
        json_t *v = json_loads(batch_json, 0, &e);
        if (!v)
                fprintf(stderr, "batch_json: %d:%d: %s\n", e.line, e.column, e.text);
        CHECK(v);
        return v;
}

/* Render text over the test batch; the result is a static buffer. */
static const char *render_data(const char *text, json_t *data) {
        static strbuf out;
        tpl_error e;
        tpl *t = NULL;
        int r;

        r = tpl_compile(text, strlen(text), TPL_ORIGIN_TEXT, &t, &e);
        if (r < 0)
                fprintf(stderr, "compile \"%s\": %u:%u: %s\n", text, e.line, e.column, e.message);
        CHECK_OK(r);
        strbuf_deinit(&out);
        CHECK_OK(tpl_render(t, data, &out, 1 << 20));
        tpl_free(t);
        return strbuf_str(&out);
}

static const char *render(const char *text) {
        json_t *b = batch();
        const char *s = render_data(text, b);
        json_decref(b);
        return s;
}

#define CHECK_RENDER(text, expected) CHECK_STREQ(render(text), expected)

/* Compile must fail at line:column with a message containing `what`. */
static void check_error_at(const char *text, tpl_origin origin, unsigned line, unsigned column, const char *what) {
        tpl_error e;
        tpl *t = NULL;
        int r = tpl_compile(text, strlen(text), origin, &t, &e);

        if (r != -EINVAL || e.line != line || e.column != column || !strstr(e.message, what)) {
                fprintf(stderr, "template \"%s\": expected an error at %u:%u containing \"%s\", got r=%d at %u:%u: %s\n",
                        text, line, column, what, r, e.line, e.column, e.message);
                abort();
        }
        CHECK(t == NULL);
}

#define CHECK_ERROR(text, line, column, what) check_error_at(text, TPL_ORIGIN_TEXT, line, column, what)

static void test_text_and_fields(void) {
        CHECK_RENDER("", "");
        CHECK_RENDER("plain text, no actions }} {", "plain text, no actions }} {");
        CHECK_RENDER("{{range .}}{{.Scenario}} {{.Source.Ip}} {{.Source_ip}};{{end}}",
                     "crowdsecurity/ssh-bf 192.0.2.7 192.0.2.7;crowdsecurity/http-probing 2001:db8::1 2001:db8::1;");
        /* wire names, Go names, case-insensitive and CrowdSec v1 aliases */
        CHECK_RENDER("{{range .}}{{.scenario}}|{{.Events_count}}|{{.Source.IP}}|{{.Source.Cn}}|{{.Dest_ip}}|{{.Labels.type}}|{{.Start_at}};{{end}}",
                     "crowdsecurity/ssh-bf|6|192.0.2.7|FR|198.51.100.1|ssh|2020-05-21T10:00:00Z;crowdsecurity/http-probing|11|2001:db8::1|DE|||;");
        CHECK_RENDER("{{with index . 0}}{{range .Bans}}{{.MeasureType}} {{.Value}} until {{.Until}}{{end}}/"
                     "{{range .Decisions}}{{.Type}} {{.Origin}}{{end}}/{{range .ban_applications}}{{.IpText}}{{end}}{{end}}",
                     "ban 192.0.2.7 until 2020-05-21T14:00:20Z/ban local/192.0.2.7");
        /* numbers, booleans, objects as the template prints them */
        CHECK_RENDER("{{with index . 0}}{{.Source.Latitude}} {{.leak_speed}} {{.Whitelisted}} {{.Labels}}{{end}}",
                     "48.8582 10000000000 false {\"type\":\"ssh\",\"remediation\":\"true\",\"a-b\":\"dash\"}");
        /* a missing field is empty text and false */
        CHECK_RENDER("[{{.Nope}}][{{range .}}{{.Nope.Deeper}}{{end}}]{{if .Nope}}yes{{else}}no{{end}}", "[][]no");
        /* dot itself, and $ inside a range */
        CHECK_RENDER("{{range .}}{{len $}}{{end}}", "22");
        CHECK_RENDER("{{\"lit\"}} {{42}} {{-1}} {{1.5}} {{true}} {{`raw\\n`}} {{nil}}", "lit 42 -1 1.5 true raw\\n ");
        CHECK_RENDER("{{\"tab\\there \\u00e9 \\x41 \\101 \\\"q\\\"\"}}", "tab\there \xc3\xa9 A A \"q\"");
}

static void test_whole_batch_json(void) {
        json_t *b = batch();
        char *expected = json_dumps(b, TPL_JSON_FLAGS);
        strbuf want = { 0 };

        /* CrowdSec's http notification format, trailing newline included */
        strbuf_printf(&want, "%s\n", expected);
        CHECK_STREQ(render_data("{{.|toJson}}\n", b), strbuf_str(&want));
        CHECK_STREQ(render_data("{{ . | toJson }}", b), expected);
        CHECK_STREQ(render_data("{{toJson .}}", b), expected);
        CHECK_RENDER("{{range .}}{{.Labels | toJson}}{{end}}", "{\"type\":\"ssh\",\"remediation\":\"true\",\"a-b\":\"dash\"}{}");
        CHECK_RENDER("{{.Missing | toJson}} {{\"a\\\"b\" | toJson}} {{3 | toJson}}", "null \"a\\\"b\" 3");
        strbuf_deinit(&want);
        free(expected);
        json_decref(b);
}

static void test_control(void) {
        CHECK_RENDER("{{if .}}some{{end}}", "some");
        CHECK_RENDER("{{range .}}{{if .Simulation}}sim{{else if eq .Source.Country \"FR\"}}fr{{else}}other{{end}},{{end}}", "fr,sim,");
        CHECK_RENDER("{{range .}}{{with .dst_ip}}dst={{.}}{{else}}no-dst{{end}};{{end}}", "dst=198.51.100.1;no-dst;");
        CHECK_RENDER("{{range $i, $s := .}}{{if $i}}, {{end}}{{$i}}:{{$s.Source_ip}}{{end}}", "0:192.0.2.7, 1:2001:db8::1");
        CHECK_RENDER("{{range $s := .}}{{$s.Events_count}} {{end}}", "6 11 ");
        /* maps range in sorted key order, as in Go */
        CHECK_RENDER("{{with index . 0}}{{range $k, $v := .Labels}}{{$k}}={{$v}} {{end}}{{end}}", "a-b=dash remediation=true type=ssh ");
        CHECK_RENDER("{{range index . 1 \"Labels\"}}x{{else}}empty{{end}}", "empty");
        CHECK_RENDER("{{range .Nope}}x{{else}}none{{end}}", "none");
        /* variables: declaration prints nothing, scope ends with the block */
        CHECK_RENDER("{{$n := len .}}{{range .}}{{$n}}{{end}}", "22");
        CHECK_RENDER("{{$x := 1}}{{range .}}{{$x = .Events_count}}{{end}}{{$x}}", "11");
        CHECK_RENDER("{{if $c := len .}}{{$c}} signals{{else}}{{$c}}{{end}}", "2 signals");
        /* trim markers and comments */
        CHECK_RENDER("a  {{- \"b\" -}}  \n c", "abc");
        CHECK_RENDER("{{range .}}\n  {{- .Events_count -}}\n{{end}}", "611");
        CHECK_RENDER("x{{/* a comment {{ }} */}}y{{- /* trimmed */ -}}  z", "xyz");
        CHECK_RENDER("{{ -3 }}", "-3");
        /* parentheses */
        CHECK_RENDER("{{if gt (len .) 1}}many{{end}} {{(index . 0).Source.Country}}", "many FR");
}

static void test_functions(void) {
        CHECK_RENDER("{{with index . 0}}{{.alert_message | json}}{{end}}", "\"ssh \\\"bf\\\"\\nfrom 192.0.2.7\"");
        CHECK_RENDER("{{with index . 0}}{{.alert_message | jsonesc}}{{end}}", "ssh \\\"bf\\\"\\nfrom 192.0.2.7");
        CHECK_RENDER("{{\"\\x01\\u2028é\" | jsonesc}}|{{.Nope | json}}|{{6 | json}}", "\\u0001\xe2\x80\xa8\xc3\xa9|\"\"|\"6\"");
        CHECK_RENDER("{{\"a b&c=d/é\" | urlquery}}", "a+b%26c%3Dd%2F%C3%A9");
        CHECK_RENDER("{{range .}}{{.Source.Country | lower}}{{.scenario | upper}} {{end}}",
                     "frCROWDSECURITY/SSH-BF deCROWDSECURITY/HTTP-PROBING ");
        CHECK_RENDER("{{len .}} {{len (index . 0).Labels}} {{len \"héllo\"}} {{len .Nope}} {{len 3}}", "2 3 6 0 0");
        CHECK_RENDER("{{index . 0 \"Labels\" \"a-b\"}} {{index . 5}} {{index . 1 \"source\" \"Ip\"}}", "dash  2001:db8::1");
        CHECK_RENDER("{{range .}}{{.dst_ip | default \"n/a\"}} {{end}}", "198.51.100.1 n/a ");
        CHECK_RENDER("{{not .}} {{not .Nope}} {{and 1 0 2}} {{and 1 2}} {{or 0 \"\" \"x\"}} {{or 0 \"\"}}", "false true 0 2 x ");
        CHECK_RENDER("{{eq 1 1}} {{eq 1 1.0}} {{eq \"a\" \"b\" \"a\"}} {{ne \"a\" \"b\"}} {{eq .Nope nil}} {{eq .Nope \"\"}}",
                     "true true true true true false");
        CHECK_RENDER("{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1 \"a\"}} {{lt 1.5 2}}", "true true true false true");
        CHECK_RENDER("{{range .}}{{if and (eq .Labels.remediation \"true\") (not .Simulation)}}ban {{.Source_ip}}{{end}}{{end}}",
                     "ban 192.0.2.7");
}

static void test_errors(void) {
        CHECK_ERROR("abc {{ .Scenario", 1, 5, "unclosed action");
        CHECK_ERROR("line one\n  {{ nosuch . }}", 2, 6, "function \"nosuch\" not defined");
        CHECK_ERROR("{{range .}}\n{{.Scenario}}\n", 3, 1, "missing {{end}} for {{range}} started at 1:1");
        CHECK_ERROR("x\n{{end}}", 2, 1, "unexpected {{end}}");
        CHECK_ERROR("{{else}}", 1, 1, "unexpected {{else}}");
        CHECK_ERROR("{{ $x }}", 1, 4, "undefined variable \"$x\"");
        CHECK_ERROR("{{range $s := .}}{{end}}{{$s}}", 1, 27, "undefined variable \"$s\"");
        CHECK_ERROR("{{len . .}}", 1, 3, "wrong number of arguments for len: expected 1, got 2");
        CHECK_ERROR("{{. | len 1}}", 1, 7, "wrong number of arguments for len");
        CHECK_ERROR("{{. | .Scenario}}", 1, 7, "can't give an argument to a non-function");
        CHECK_ERROR("{{.A .B}}", 1, 6, "can't give an argument to a non-function");
        CHECK_ERROR("{{\"abc}}", 1, 3, "unterminated quoted string");
        CHECK_ERROR("{{ \"\\q\" }}", 1, 5, "unknown escape sequence");
        CHECK_ERROR("{{/* never closed", 1, 1, "unclosed comment");
        CHECK_ERROR("{{if}}{{end}}", 1, 5, "missing value for {{if}}");
        CHECK_ERROR("{{if .}}a{{else}}b{{else}}c{{end}}", 1, 19, "unexpected second {{else}}");
        CHECK_ERROR("{{ . # }}", 1, 6, "unexpected \"#\" in action");
        CHECK_ERROR("{{ template \"x\" }}", 1, 4, "{{template}} is not supported");
        CHECK_ERROR("{{ 12abc }}", 1, 4, "bad number syntax");
        CHECK_ERROR("{{ len }}", 1, 4, "wrong number of arguments for len: expected 1, got 0");
        CHECK_ERROR("{{ upper (len .) len }}", 1, 18, "used as an argument");
        CHECK_ERROR("é{{ ? }}", 1, 5, "unexpected \"?\""); /* columns count characters */
        CHECK_ERROR("{{ range . }}{{ if }}", 1, 20, "missing value for {{if}}");
        /* origin: the text starts at line 10, column 9 of a file; later
         * lines are indented by 2 (a YAML block scalar) */
        check_error_at("{{x}}", (tpl_origin) { 10, 9, 2 }, 10, 11, "function \"x\" not defined");
        check_error_at("a\nb {{x}}", (tpl_origin) { 10, 9, 2 }, 11, 7, "function \"x\" not defined");
}

static void test_limits(void) {
        json_t *b = batch();
        strbuf out = { 0 };
        tpl_error e;
        tpl *t = NULL;
        char deep[64 * 12 + 64];
        size_t n = 0;

        /* the output limit */
        CHECK_OK(tpl_compile("{{range .}}0123456789{{end}}", 28, TPL_ORIGIN_TEXT, &t, &e));
        CHECK_EQ(tpl_render(t, b, &out, 15), -E2BIG);
        strbuf_reset(&out);
        CHECK_OK(tpl_render(t, b, &out, 20));
        CHECK_STREQ(strbuf_str(&out), "01234567890123456789");
        t = tpl_free(t);

        /* the step limit: 2^30 iterations of nested ranges end early */
        for (int i = 0; i < 30; i++)
                n += (size_t) snprintf(deep + n, sizeof deep - n, "{{range $}}");
        for (int i = 0; i < 30; i++)
                n += (size_t) snprintf(deep + n, sizeof deep - n, "{{end}}");
        CHECK_OK(tpl_compile(deep, n, TPL_ORIGIN_TEXT, &t, &e));
        strbuf_reset(&out);
        CHECK_EQ(tpl_render(t, b, &out, 1 << 20), -E2BIG);
        t = tpl_free(t);

        /* nesting deeper than the limit is a compile error, not a crash */
        n = 0;
        for (int i = 0; i < 70; i++)
                n += (size_t) snprintf(deep + n, sizeof deep - n, "{{if 1}}");
        CHECK_EQ(tpl_compile(deep, n, TPL_ORIGIN_TEXT, &t, &e), -EINVAL);
        CHECK_CONTAINS(e.message, "nested too deeply");

        strbuf_deinit(&out);
        json_decref(b);
}

int main(void) {
        test_text_and_fields();
        test_whole_batch_json();
        test_control();
        test_functions();
        test_errors();
        test_limits();
        return 0;
}
