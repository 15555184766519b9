/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What spillwayctl's modules share: the exit codes, the output format, the
 * admin connection (spillwayctl.c), the terminal (terminal.c), the status
 * verdict (status.c) and top (top.c).
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cmdline.h"

enum { EXIT_OP_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3, EXIT_PARTIAL = 4 };

typedef enum output { OUT_HUMAN, OUT_JSON, OUT_RAW } output;

extern const char *arg_socket;
extern output arg_output;
extern bool arg_no_pager;
/* set by `top` on a terminal and by completion: an unreachable daemon is
 * not fatal, request() returns NULL and last_error says why */
extern bool soft_errors;
extern char last_error[512];

/* One request on the admin socket (takes req); exits with EXIT_UNREACHABLE
 * when the daemon cannot be reached, unless soft_errors. */
json_t *request(json_t *req);
/* Print an error reply; 0 when ok, else EXIT_OP_FAILED. */
int check_reply(json_t *reply);
void print_json(json_t *o);
const char *jstr(json_t *o, const char *k);
long long jint(json_t *o, const char *k);
/* One CSV field on stdout (quoted when it must be), then ',' or, last, a newline. */
void csv_field(const char *s, bool last);
/* For commands without options: rejects any, naming the global ones. */
int no_options(const ctl_command *cmd, int argc, char **argv);

/* terminal.c */
bool is_terminal(int fd);
bool use_colour(void);
void terminal_size(int fd, unsigned *rows, unsigned *cols);
void page_out(const char *text, size_t len);

/* status.c */
typedef enum health { HEALTHY, WARNING, FAILING } health;
health status_verdict(json_t *st, char *why, size_t size);
int cmd_status(const ctl_command *cmd, int argc, char **argv);

/* top.c */
extern const ctl_option top_options[];
int cmd_top(const ctl_command *cmd, int argc, char **argv);

/* deadletter.c */
extern const ctl_option deadletter_list_options[];
extern const ctl_option deadletter_change_options[];
int cmd_deadletter_list(const ctl_command *cmd, int argc, char **argv);
int cmd_deadletter_retry(const ctl_command *cmd, int argc, char **argv);
int cmd_deadletter_drop(const ctl_command *cmd, int argc, char **argv);
