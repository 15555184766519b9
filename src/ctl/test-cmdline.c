/* SPDX-License-Identifier: MIT */
/*
 * cmdline.c: global options wherever they are, command option values kept
 * beside their option, the command's argv, errors that name the valid
 * options, and the completion candidates.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"
#include "macro.h"
#include "tests.h"

static int run_nothing(const ctl_command *cmd, int argc, char **argv) {
        return 0;
}

static const ctl_option list_opts[] = {
        { "limit", 0, required_argument, "N", NULL }, { "all", 0, no_argument, NULL, NULL },
        { "backend", 0, required_argument, "NAME", "@backends" }, {}
};
static const ctl_option send_opts[] = {
        { "ack", 0, required_argument, "LEVEL", "queued flushed" },
        { "ingest", 0, optional_argument, "PATH", "@files" }, {}
};
static const ctl_option top_opts[] = { { "delay", 'd', required_argument, "SECONDS", NULL }, {} };
static const ctl_option none[] = { {} };

static const ctl_command table[] = {
        { "ban", "list", NULL, list_opts, NULL, NULL, run_nothing },
        { "ban", "del", "delete", none, "ip|range TARGET", "ip range|@targets", run_nothing },
        { "send", NULL, NULL, send_opts, "[FILE|-]", "@files", run_nothing },
        { "status", NULL, NULL, none, NULL, NULL, run_nothing },
        { "top", NULL, NULL, top_opts, NULL, NULL, run_nothing },
        {}
};

/* Split a space-separated line; returns the command's argv joined by '|'. */
static int split(const char *line, ctl_globals *g, const ctl_command **cmd, char *out, size_t size, char *err, size_t errsize) {
        char buf[512], *argv[32];
        int argc = 0;
        snprintf(buf, sizeof buf, "spillwayctl %s", line);
        for (char *t = strtok(buf, " "); t; t = strtok(NULL, " "))
                argv[argc++] = t;
        argv[argc] = NULL;
        FILE *e = fmemopen(err, errsize, "w");
        int cmd_argc;
        char **cmd_argv;
        *g = (ctl_globals) {};
        int r = ctl_cmdline_split(table, argc, argv, g, cmd, &cmd_argc, &cmd_argv, e);
        fclose(e);
        out[0] = 0;
        for (int i = 0; r == 0 && *cmd && i < cmd_argc; i++)
                snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? "|" : "", cmd_argv[i]);
        free(cmd_argv);
        return r;
}

static void test_globals_anywhere(void) {
        static const char *const lines[] = {
                "-o raw -s /x.sock ban list --limit 5", "ban -o raw list -s /x.sock --limit 5",
                "ban list --limit 5 -o raw -s /x.sock", "--output=raw ban --socket /x.sock list --limit 5",
                "-oraw ban list -s/x.sock --limit 5", "ban list --output raw --limit 5 --socket=/x.sock",
        };
        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                ctl_globals g;
                const ctl_command *cmd;
                char out[256], err[512];
                CHECK_EQ(split(lines[i], &g, &cmd, out, sizeof out, err, sizeof err), 0);
                CHECK(cmd == &table[0]);
                CHECK_STREQ(g.output, "raw");
                CHECK_STREQ(g.socket, "/x.sock");
                CHECK_STREQ(out, "ban|--limit|5");
        }
}

static void test_values_are_not_command_words(void) {
        ctl_globals g;
        const ctl_command *cmd;
        char out[256], err[512];
        /* "status" is --backend's value, not the command */
        CHECK_EQ(split("ban list --backend status --no-pager", &g, &cmd, out, sizeof out, err, sizeof err), 0);
        CHECK(cmd == &table[0] && g.no_pager);
        CHECK_STREQ(out, "ban|--backend|status");
        /* an optional argument is taken from the next word only if it is a socket */
        CHECK_EQ(split("send --ingest run/ingest.sock file.jsonl", &g, &cmd, out, sizeof out, err, sizeof err), 0);
        CHECK_STREQ(out, "send|--ingest=run/ingest.sock|file.jsonl");
        CHECK_EQ(split("send --ingest file.jsonl", &g, &cmd, out, sizeof out, err, sizeof err), 0);
        CHECK_STREQ(out, "send|--ingest|file.jsonl");
        /* aliases, and -- ending options */
        CHECK_EQ(split("ban delete ip -- -1", &g, &cmd, out, sizeof out, err, sizeof err), 0);
        CHECK(cmd == &table[1]);
        CHECK_STREQ(out, "ban|ip|--|-1");
        /* -h after the command: the command is known, help is set */
        CHECK_EQ(split("top -h", &g, &cmd, out, sizeof out, err, sizeof err), 0);
        CHECK(cmd == &table[4] && g.help);
        /* nothing but options */
        CHECK_EQ(split("--version", &g, &cmd, out, sizeof out, err, sizeof err), 0);
        CHECK(!cmd && g.version);
}

static void test_errors(void) {
        ctl_globals g;
        const ctl_command *cmd;
        char out[256], err[1024];
        CHECK_EQ(split("ban lsit", &g, &cmd, out, sizeof out, err, sizeof err), -EINVAL);
        CHECK_CONTAINS(err, "unknown subcommand 'lsit' (expected list, del)");
        CHECK_EQ(split("ban", &g, &cmd, out, sizeof out, err, sizeof err), -EINVAL);
        CHECK_CONTAINS(err, "ban: expected a subcommand (list, del)");
        CHECK_EQ(split("frob", &g, &cmd, out, sizeof out, err, sizeof err), -EINVAL);
        CHECK_CONTAINS(err, "unknown command 'frob' (commands: ban, send, status, top; see --help)");
        CHECK_EQ(split("status -s", &g, &cmd, out, sizeof out, err, sizeof err), -EINVAL);
        CHECK_CONTAINS(err, "option '-s' needs a value (PATH)");
        CHECK_EQ(split("--no-pager=yes status", &g, &cmd, out, sizeof out, err, sizeof err), -EINVAL);
        CHECK_CONTAINS(err, "'--no-pager' takes no value");
        CHECK_EQ(split("--bogus", &g, &cmd, out, sizeof out, err, sizeof err), -EINVAL);
        CHECK_CONTAINS(err, "'--bogus' before any command is not a global option");
}

static int getopt_line(const ctl_command *cmd, const char *line, char *err, size_t errsize, int *last) {
        char buf[256], *argv[16];
        int argc = 0, c, n = 0;
        snprintf(buf, sizeof buf, "%s", line);
        for (char *t = strtok(buf, " "); t; t = strtok(NULL, " "))
                argv[argc++] = t;
        argv[argc] = NULL;
        FILE *e = fmemopen(err, errsize, "w");
        optind = 0;
        while ((c = ctl_getopt(cmd, argc, argv, e)) >= 0) {
                *last = c;
                n++;
                if (c == '?')
                        break;
        }
        fclose(e);
        return n;
}

static void test_getopt_messages(void) {
        char err[1024] = "";
        int last = 0;
        /* options after the arguments are found (permutation) */
        CHECK_EQ(getopt_line(&table[0], "ban --all --limit 3", err, sizeof err, &last), 2);
        CHECK_EQ(last, 256 + 0);        /* --limit: long-only, index 0 */
        CHECK_EQ(getopt_line(&table[4], "top -d 2", err, sizeof err, &last), 1);
        CHECK_EQ(last, 'd');
        CHECK_EQ(getopt_line(&table[0], "ban --frob", err, sizeof err, &last), 1);
        CHECK_EQ(last, '?');
        CHECK_CONTAINS(err, "ban list: unknown option '--frob'");
        CHECK_CONTAINS(err, "options of 'ban list': --limit N, --all, --backend NAME");
        CHECK_CONTAINS(err, "global options, anywhere on the line: -s/--socket PATH, -o/--output human|json|raw");
        CHECK_EQ(getopt_line(&table[3], "status --limit 3", err, sizeof err, &last), 1);
        CHECK_CONTAINS(err, "status: unknown option '--limit'");
        CHECK_CONTAINS(err, "'status' has no options of its own");
        CHECK_EQ(getopt_line(&table[0], "ban --limit", err, sizeof err, &last), 1);
        CHECK_CONTAINS(err, "option '--limit' needs a value");
        CHECK_EQ(getopt_line(&table[4], "top -x", err, sizeof err, &last), 1);
        CHECK_CONTAINS(err, "top: unknown option '-x'");
        CHECK_CONTAINS(err, "-d/--delay SECONDS");
}

static char dyn_seen[64];

static void dyn(const char *what, const ctl_globals *g, FILE *out) {
        snprintf(dyn_seen, sizeof dyn_seen, "%s@%s", what, g->socket ? g->socket : "-");
        fprintf(out, "DYN\n");
}

static void complete(const char *line, char *out, size_t size) {
        char buf[256], *words[16];
        int n = 0;
        snprintf(buf, sizeof buf, "%s", line);
        /* the last word may be empty: a trailing space */
        char *p = buf;
        for (;;) {
                char *sp = strchr(p, ' ');
                words[n++] = p;
                if (!sp)
                        break;
                *sp = 0;
                p = sp + 1;
        }
        memset(out, 0, size);
        FILE *f = fmemopen(out, size, "w");
        dyn_seen[0] = 0;
        ctl_complete(table, n, words, f, dyn);
        fclose(f);
        for (char *q = out; *q; q++)
                if (*q == '\n')
                        *q = ' ';
}

static void test_completion(void) {
        char out[1024];
        complete("", out, sizeof out);
        CHECK_STREQ(out, "ban send status top ");
        complete("ban ", out, sizeof out);
        CHECK_STREQ(out, "list del ");
        complete("-o json ban ", out, sizeof out);
        CHECK_STREQ(out, "list del ");
        complete("ban list -", out, sizeof out);
        CHECK_STREQ(out, "--limit --all --backend --socket -s --output -o --no-pager --help -h --version ");
        complete("-o ", out, sizeof out);
        CHECK_STREQ(out, "human json raw ");
        complete("send --ack ", out, sizeof out);
        CHECK_STREQ(out, "queued flushed ");
        complete("send ", out, sizeof out);
        CHECK_STREQ(out, "@files ");
        complete("-s /a.sock ban list --backend ", out, sizeof out);
        CHECK_STREQ(out, "DYN ");
        CHECK_STREQ(dyn_seen, "backends@/a.sock");
        complete("ban del ", out, sizeof out);
        CHECK_STREQ(out, "ip range ");
        complete("ban del range -s /b.sock ", out, sizeof out);
        CHECK_STREQ(out, "DYN ");
        CHECK_STREQ(dyn_seen, "targets:range@/b.sock");
        complete("ban del ip 1.2.3.4 ", out, sizeof out);
        CHECK_STREQ(out, "");
        complete("status ", out, sizeof out);
        CHECK_STREQ(out, "");
}

int main(void) {
        test_globals_anywhere();
        test_values_are_not_command_words();
        test_errors();
        test_getopt_messages();
        test_completion();
        return 0;
}
