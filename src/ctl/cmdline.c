/* SPDX-License-Identifier: MIT */
/*
 * spillwayctl's command line (see cmdline.h).
 *
 * Parsing runs in two steps. ctl_cmdline_split() walks the whole line once:
 * global options (-s, -o, --no-pager, -h, --version) are taken wherever
 * they are, the value of any command option is kept beside it (so that
 * `ban list --reason ssh` does not read "ssh" as a command word), and the
 * first one or two remaining words name the command. The command then runs
 * getopt_long() through ctl_getopt() over what is left, with permutation,
 * so its own options may come before or after its arguments. An unknown or
 * misplaced option is answered with the list of the command's options and
 * the global ones.
 *
 * Completion uses the same table: ctl_complete() reads the words typed so
 * far the same way and prints what may come next.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmdline.h"
#include "macro.h"

const ctl_option ctl_global_options[] = {
        { "socket", 's', required_argument, "PATH", "@files" },
        { "output", 'o', required_argument, "FORMAT", "human json raw" },
        { "no-pager", 0, no_argument, NULL, NULL },
        { "help", 'h', no_argument, NULL, NULL },
        { "version", 0, no_argument, NULL, NULL },
        {}
};

const char *ctl_command_name(const ctl_command *cmd, char *buf, size_t size) {
        snprintf(buf, size, "%s%s%s", cmd->word1, cmd->word2 ? " " : "", cmd->word2 ? cmd->word2 : "");
        return buf;
}

/* "-s" / "-sPATH" / "--socket" / "--socket=PATH" against a table. */
static const ctl_option *match(const ctl_option *opts, const char *a, const char **inline_value) {
        *inline_value = NULL;
        if (a[0] != '-' || !a[1])
                return NULL;
        if (a[1] == '-') {
                const char *name = a + 2;
                size_t n = strcspn(name, "=");
                for (const ctl_option *o = opts; o && o->name; o++)
                        if (strlen(o->name) == n && !strncmp(o->name, name, n)) {
                                if (name[n] == '=')
                                        *inline_value = name + n + 1;
                                return o;
                        }
                return NULL;
        }
        for (const ctl_option *o = opts; o && o->name; o++)
                if (o->short_name && o->short_name == a[1]) {
                        if (a[2])
                                *inline_value = a + 2;
                        return o;
                }
        return NULL;
}

/* A command option of any command (for values that follow their option). */
static const ctl_option *match_any(const ctl_command *table, const char *a, const char **inline_value) {
        for (const ctl_command *c = table; c->word1; c++) {
                const ctl_option *o = match(c->options, a, inline_value);
                if (o)
                        return o;
        }
        return NULL;
}

static void apply_global(ctl_globals *g, const ctl_option *o, const char *v) {
        if (!strcmp(o->name, "socket"))
                g->socket = v;
        else if (!strcmp(o->name, "output"))
                g->output = v;
        else if (!strcmp(o->name, "no-pager"))
                g->no_pager = true;
        else if (!strcmp(o->name, "help"))
                g->help = true;
        else if (!strcmp(o->name, "version"))
                g->version = true;
}

/* An option's argument as usage shows it: " a|b|c" for a fixed set of
 * values, " NAME", or "[=NAME]" when optional. */
static void option_arg(const ctl_option *o, FILE *out) {
        if (o->has_arg == required_argument && o->values && o->values[0] != '@') {
                fputc(' ', out);
                for (const char *p = o->values; *p; p++)
                        fputc(*p == ' ' ? '|' : *p, out);
        } else if (o->has_arg == required_argument)
                fprintf(out, " %s", o->arg);
        else if (o->has_arg == optional_argument)
                fprintf(out, "[=%s]", o->arg);
}

static void option_list(const ctl_option *opts, FILE *out) {
        bool first = true;
        for (const ctl_option *o = opts; o && o->name; o++) {
                fprintf(out, "%s", first ? "" : ", ");
                first = false;
                if (o->short_name)
                        fprintf(out, "-%c/", o->short_name);
                fprintf(out, "--%s", o->name);
                option_arg(o, out);
        }
}

static void valid_options(const ctl_command *cmd, FILE *err) {
        char name[64];
        ctl_command_name(cmd, name, sizeof name);
        if (cmd->options && cmd->options->name) {
                fprintf(err, "  options of '%s': ", name);
                option_list(cmd->options, err);
                fputc('\n', err);
        } else
                fprintf(err, "  '%s' has no options of its own\n", name);
        fprintf(err, "  global options, anywhere on the line: ");
        option_list(ctl_global_options, err);
        fputc('\n', err);
}

void ctl_command_usage(const ctl_command *cmd, FILE *out) {
        char name[64];
        fprintf(out, "Usage: spillwayctl %s", ctl_command_name(cmd, name, sizeof name));
        for (const ctl_option *o = cmd->options; o && o->name; o++) {
                fprintf(out, " [--%s", o->name);
                option_arg(o, out);
                fputc(']', out);
        }
        fprintf(out, "%s%s\n", cmd->args ? " " : "", cmd->args ? cmd->args : "");
        valid_options(cmd, out);
}

static const ctl_command *find_command(const ctl_command *table, const char *w1, const char *w2) {
        for (const ctl_command *c = table; c->word1; c++) {
                if (strcmp(c->word1, w1))
                        continue;
                if (!c->word2)
                        return c;
                if (w2 && (!strcmp(c->word2, w2) || (c->alias2 && !strcmp(c->alias2, w2))))
                        return c;
        }
        return NULL;
}

static bool has_subcommands(const ctl_command *table, const char *w1) {
        for (const ctl_command *c = table; c->word1; c++)
                if (!strcmp(c->word1, w1) && c->word2)
                        return true;
        return false;
}

static void subcommand_list(const ctl_command *table, const char *w1, FILE *out) {
        bool first = true;
        for (const ctl_command *c = table; c->word1; c++)
                if (!strcmp(c->word1, w1) && c->word2) {
                        fprintf(out, "%s%s", first ? "" : ", ", c->word2);
                        first = false;
                }
}

static void command_list(const ctl_command *table, FILE *out) {
        const char *last = NULL;
        for (const ctl_command *c = table; c->word1; c++) {
                if (c->word1[0] == '_' || (last && !strcmp(last, c->word1)))
                        continue;
                fprintf(out, "%s%s", last ? ", " : "", c->word1);
                last = c->word1;
        }
}

/* "--ingest PATH": an optional argument is taken from the next word only
 * when that word names a socket, so `send --ingest FILE` still reads FILE. */
static bool optional_value(const char *next) {
        size_t n = strlen(next);
        return next[0] != '-' && n > 5 && !strcmp(next + n - 5, ".sock");
}

int ctl_cmdline_split(const ctl_command *table, int argc, char **argv, ctl_globals *g, const ctl_command **cmdp,
                      int *cmd_argc, char ***cmd_argv, FILE *err) {
        /* joined "--opt=value" for optional arguments given as two words */
        static char joined[4][4096];
        size_t n_joined = 0;
        char **rest = calloc((size_t) argc + 2, sizeof *rest);
        size_t *pos = calloc((size_t) argc + 1, sizeof *pos);
        size_t nr = 0, np = 0;
        bool dashdash = false;

        *cmdp = NULL;
        *cmd_argv = NULL;
        *cmd_argc = 0;
        if (!rest || !pos) {
                free(rest);
                free(pos);
                return -ENOMEM;
        }
        for (int i = 1; i < argc; i++) {
                const char *a = argv[i], *iv;
                const ctl_option *o;

                if (dashdash || a[0] != '-' || !a[1]) {
                        pos[np++] = nr;
                        rest[nr++] = argv[i];
                        continue;
                }
                if (!strcmp(a, "--")) {
                        dashdash = true;
                        rest[nr++] = argv[i];
                        continue;
                }
                if ((o = match(ctl_global_options, a, &iv))) {
                        const char *v = iv;
                        if (o->has_arg == required_argument && !v) {
                                if (i + 1 >= argc) {
                                        fprintf(err, "spillwayctl: option '%s' needs a value (%s)\n", a, o->arg);
                                        goto usage;
                                }
                                v = argv[++i];
                        } else if (o->has_arg == no_argument && iv) {
                                fprintf(err, "spillwayctl: option '--%s' takes no value\n", o->name);
                                goto usage;
                        }
                        apply_global(g, o, v);
                        continue;
                }
                rest[nr++] = argv[i];
                o = match_any(table, a, &iv);
                if (o && !iv && i + 1 < argc) {
                        if (o->has_arg == required_argument)
                                rest[nr++] = argv[++i];
                        else if (o->has_arg == optional_argument && optional_value(argv[i + 1]) &&
                                 n_joined < ELEMENTSOF(joined)) {
                                snprintf(joined[n_joined], sizeof joined[n_joined], "%s=%s", a, argv[++i]);
                                rest[nr - 1] = joined[n_joined++];
                        }
                }
        }

        if (np == 0) {
                /* only options (or nothing): the caller shows help or the version */
                if (nr > 0) {
                        fprintf(err, "spillwayctl: '%s' before any command is not a global option\n", rest[0]);
                        fprintf(err, "  global options, anywhere on the line: ");
                        option_list(ctl_global_options, err);
                        fputc('\n', err);
                        goto usage;
                }
                free(rest);
                free(pos);
                return 0;
        }
        const char *w1 = rest[pos[0]], *w2 = np > 1 ? rest[pos[1]] : NULL;
        const ctl_command *cmd = find_command(table, w1, w2);
        if (!cmd) {
                if (has_subcommands(table, w1)) {
                        if (w2)
                                fprintf(err, "spillwayctl: %s: unknown subcommand '%s' (expected ", w1, w2);
                        else
                                fprintf(err, "spillwayctl: %s: expected a subcommand (", w1);
                        subcommand_list(table, w1, err);
                        fprintf(err, ")\n");
                } else {
                        fprintf(err, "spillwayctl: unknown command '%s' (commands: ", w1);
                        command_list(table, err);
                        fprintf(err, "; see --help)\n");
                }
                goto usage;
        }
        /* the command's argv: its name, then everything but its words */
        size_t skip = cmd->word2 ? 2 : 1, k = 0;
        char **out = calloc(nr + 2, sizeof *out);
        if (!out) {
                free(rest);
                free(pos);
                return -ENOMEM;
        }
        out[k++] = (char *) cmd->word1;
        for (size_t i = 0; i < nr; i++) {
                bool is_word = false;
                for (size_t j = 0; j < skip; j++)
                        if (pos[j] == i)
                                is_word = true;
                if (!is_word)
                        out[k++] = rest[i];
        }
        out[k] = NULL;
        free(rest);
        free(pos);
        *cmdp = cmd;
        *cmd_argc = (int) k;
        *cmd_argv = out;
        return 0;

usage:
        free(rest);
        free(pos);
        return -EINVAL;
}

int ctl_getopt(const ctl_command *cmd, int argc, char **argv, FILE *err) {
        static const ctl_command *built;
        static struct option longopts[32];
        static char shortopts[64];
        char name[64];

        if (built != cmd) {
                size_t n = 0, s = 0;
                shortopts[s++] = ':';   /* report a missing value as ':' */
                for (const ctl_option *o = cmd->options; o && o->name && n < ELEMENTSOF(longopts) - 1; o++, n++) {
                        longopts[n] = (struct option) { o->name, o->has_arg, NULL, o->short_name ? o->short_name : 256 + (int) n };
                        if (o->short_name && s < sizeof shortopts - 3) {
                                shortopts[s++] = (char) o->short_name;
                                if (o->has_arg != no_argument)
                                        shortopts[s++] = ':';
                                if (o->has_arg == optional_argument)
                                        shortopts[s++] = ':';
                        }
                }
                longopts[n] = (struct option) {};
                shortopts[s] = 0;
                built = cmd;
        }
        opterr = 0;
        int c = getopt_long(argc, argv, shortopts, longopts, NULL);
        if (c == '?' || c == ':') {
                const char *bad = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
                char shortbuf[3] = { '-', (char) optopt, 0 };
                if (optopt && optopt < 256 && (bad[0] != '-' || bad[1] == '-' || !strchr(bad, optopt)))
                        bad = shortbuf;
                ctl_command_name(cmd, name, sizeof name);
                if (c == ':')
                        fprintf(err, "spillwayctl: %s: option '%s' needs a value\n", name, bad);
                else if (!strncmp(bad, "--", 2) && strchr(bad, '='))
                        fprintf(err, "spillwayctl: %s: option '%.*s' takes no value, or is not an option of '%s'\n", name,
                                (int) strcspn(bad, "="), bad, name);
                else
                        fprintf(err, "spillwayctl: %s: unknown option '%s'\n", name, bad);
                valid_options(cmd, err);
                return '?';
        }
        return c;
}

/* ------------------------------------------------------------ completion */

static void print_words(const char *words, FILE *out) {
        const char *p = words;
        while (p && *p) {
                size_t n = strcspn(p, " ");
                if (n)
                        fprintf(out, "%.*s\n", (int) n, p);
                p += n;
                p += strspn(p, " ");
        }
}

static void print_values(const ctl_option *o, const ctl_globals *g,
                         void (*dynamic)(const char *what, const ctl_globals *g, FILE *out), FILE *out) {
        if (!o->values)
                return;
        if (!strcmp(o->values, "@files"))
                fputs("@files\n", out);
        else if (o->values[0] == '@') {
                if (dynamic)
                        dynamic(o->values + 1, g, out);
        } else
                print_words(o->values, out);
}

static void print_options(const ctl_option *opts, FILE *out) {
        for (const ctl_option *o = opts; o && o->name; o++) {
                fprintf(out, "--%s\n", o->name);
                if (o->short_name)
                        fprintf(out, "-%c\n", o->short_name);
        }
}

void ctl_complete(const ctl_command *table, int n, char **words, FILE *out,
                  void (*dynamic)(const char *what, const ctl_globals *g, FILE *out)) {
        ctl_globals g = {};
        const char *cur = n > 0 ? words[n - 1] : "";
        const char *pos[64];
        size_t np = 0;
        const ctl_option *pending = NULL;
        bool dashdash = false;

        n--;    /* the last word is the one being completed */
        for (int i = 0; i < n; i++) {
                const char *a = words[i], *iv;
                const ctl_option *o;
                if (dashdash || a[0] != '-' || !a[1]) {
                        if (np < ELEMENTSOF(pos))
                                pos[np++] = a;
                        continue;
                }
                if (!strcmp(a, "--")) {
                        dashdash = true;
                        continue;
                }
                bool global = (o = match(ctl_global_options, a, &iv)) != NULL;
                if (!o)
                        o = match_any(table, a, &iv);
                if (!o || iv || o->has_arg != required_argument)
                        continue;
                if (i + 1 < n) {
                        if (global)
                                apply_global(&g, o, words[i + 1]);
                        i++;
                } else
                        pending = o;
        }
        if (pending) {
                print_values(pending, &g, dynamic, out);
                return;
        }

        const ctl_command *cmd = NULL;
        if (np >= 1)
                cmd = find_command(table, pos[0], np > 1 ? pos[1] : NULL);

        if (cur[0] == '-') {
                if (cmd)
                        print_options(cmd->options, out);
                print_options(ctl_global_options, out);
                return;
        }
        if (np == 0) {
                const char *last = NULL;
                for (const ctl_command *c = table; c->word1; c++) {
                        if (c->word1[0] == '_' || (last && !strcmp(last, c->word1)))
                                continue;
                        fprintf(out, "%s\n", c->word1);
                        last = c->word1;
                }
                return;
        }
        if (!cmd) {
                if (np == 1 && has_subcommands(table, pos[0]))
                        for (const ctl_command *c = table; c->word1; c++)
                                if (!strcmp(c->word1, pos[0]) && c->word2)
                                        fprintf(out, "%s\n", c->word2);
                return;
        }
        /* the k-th positional of the command */
        size_t k = np - (cmd->word2 ? 2 : 1);
        const char *spec = cmd->positional;
        for (size_t i = 0; spec && i < k; i++) {
                spec = strchr(spec, '|');
                if (spec)
                        spec++;
        }
        if (!spec)
                return;
        size_t len = strcspn(spec, "|");
        char buf[128];
        snprintf(buf, sizeof buf, "%.*s", (int) len, spec);
        if (!strcmp(buf, "@files"))
                fputs("@files\n", out);
        else if (!strcmp(buf, "@targets")) {
                /* targets of the scope typed before: ip or range */
                char what[32];
                snprintf(what, sizeof what, "targets:%s", k > 0 ? pos[np - 1] : "ip");
                if (dynamic)
                        dynamic(what, &g, out);
        } else if (buf[0] == '@') {
                if (dynamic)
                        dynamic(buf + 1, &g, out);
        } else
                print_words(buf, out);
}
