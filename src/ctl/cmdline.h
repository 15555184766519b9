/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * spillwayctl's command line: a table of commands, each with its own
 * options, and global options accepted anywhere on the line (before the
 * command, between its words, after its arguments), as cscli, systemctl and
 * git users expect. Also the candidates the shell completion scripts ask for
 * (`spillwayctl __complete -- WORDS...`), computed from the same table so the
 * completions cannot drift from the parser.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

/* One option of a command or a global one. */
typedef struct ctl_option {
        const char *name;  /* long name, without "--" */
        int short_name;    /* a letter, or 0 */
        int has_arg;       /* no_argument, required_argument, optional_argument */
        const char *arg;   /* what the argument is, for messages ("PATH") */
        const char *values; /* space-separated choices for completion, NULL if free
                             * ("@files": a file, "@backends": a backend name) */
} ctl_option;

typedef struct ctl_command ctl_command;
struct ctl_command {
        const char *word1, *word2; /* "ban", "list"; word2 NULL for one-word commands */
        const char *alias2;        /* another spelling of word2 ("delete") */
        const ctl_option *options; /* terminated by { NULL } */
        const char *args;          /* positional arguments, for usage lines */
        const char *positional;    /* completion of positionals: "ip range" then "@targets",
                                    * or "@files"; words separated by '|' per position */
        int (*run)(const ctl_command *cmd, int argc, char **argv);
};

/* What the global options asked for. */
typedef struct ctl_globals {
        const char *socket; /* -s; NULL if not given */
        const char *output; /* -o; NULL if not given */
        bool help, version, no_pager;
} ctl_globals;

extern const ctl_option ctl_global_options[];

/* Split argv (argv[0] is the program) into the global options and the
 * command's own arguments. On success, *cmdp is the command and its argv
 * (returned, NULL-terminated, to free with free()) starts with the command's
 * name followed by everything that is not a global option or a command word,
 * in order. *cmdp is NULL when the line names no command (only global
 * options). Returns 0, or -EINVAL after printing a usage message to err. */
int ctl_cmdline_split(const ctl_command *table, int argc, char **argv, ctl_globals *g, const ctl_command **cmdp,
                      int *cmd_argc, char ***cmd_argv, FILE *err);

/* getopt_long() over a command's options, with messages that name the
 * command's valid options. Returns the option's short name or, for long-only
 * options, its index + 256; -1 at the end; '?' after printing an error.
 * Set optind = 0 before the first call on an argv (glibc: start over). */
int ctl_getopt(const ctl_command *cmd, int argc, char **argv, FILE *err);

/* The command's display name ("ban list"). */
const char *ctl_command_name(const ctl_command *cmd, char *buf, size_t size);

/* Print the command's usage line and options. */
void ctl_command_usage(const ctl_command *cmd, FILE *out);

/* Completion: the candidates for the word after `words` (the words typed
 * so far, without the program name and without the word being completed),
 * one per line to out. A line "@files" asks the shell to complete file
 * names; "@backends" and "@targets:ip" / "@targets:range" ask the caller to
 * ask the daemon (dynamic is called for those; it may print nothing). */
void ctl_complete(const ctl_command *table, int n, char **words, FILE *out,
                  void (*dynamic)(const char *what, const ctl_globals *g, FILE *out));
