/* SPDX-License-Identifier: MIT */
/*
 * spillwayctl: the operator's client of spillwayd's admin socket.
 *
 * Each command sends JSON requests (one per line) and formats the replies.
 * Output for humans goes to stdout, errors to stderr; `-o json` prints the
 * daemon's replies as they are, for scripts. The command line (cmdline.c)
 * takes the global options anywhere. Exit codes:
 *   0 success, 1 the daemon refused or failed the operation,
 *   2 usage error, 3 the daemon could not be reached, 4 some signals of a
 *   `send` were rejected.
 *
 * On a terminal, and only there: `status` colours its verdict (unless
 * NO_COLOR is set), `ban list` pages long output through $SYSTEMD_PAGER or
 * $PAGER (less), `send` shows its progress on stderr, and `top` redraws a
 * live view; elsewhere each prints plain text once.
 *
 * Modules: cmdline.c (the command table's parser and completion), status.c
 * (the verdict), top.c (the live view), terminal.c (tty, colour, pager);
 * this file has the connection and the other commands.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"
#include "cmdline.h"
#include "ctl.h"
#include "macro.h"
#include "strbuf.h"
#include "timeutil.h"

const char *arg_socket;
static bool arg_socket_given;
output arg_output = OUT_HUMAN;
bool arg_no_pager;
/* set by `top`: an unreachable daemon is shown, not fatal */
bool soft_errors;

/* ------------------------------------------------------------ connection */

/* The last connection error; printed to stderr unless soft_errors (top
 * shows it on its screen instead). */
char last_error[512];

_printf_(1, 2) static void report(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(last_error, sizeof last_error, fmt, ap);
        va_end(ap);
        if (!soft_errors)
                fprintf(stderr, "spillwayctl: %s\n", last_error);
}

typedef struct client {
        int fd;
        strbuf in;
        const char *path;
} client;

static int client_connect(client *c, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        c->path = path;
        c->in = (strbuf) STRBUF_INIT;
        if (strlen(path) >= sizeof sa.sun_path) {
                fprintf(stderr, "spillwayctl: socket path too long: %s\n", path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || connect(c->fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int r = -errno;
                if (r == -EACCES || r == -EPERM)
                        report("permission denied on %s: the admin socket is for root "
                               "(run with sudo, or use --socket)", path);
                else
                        report("cannot connect to %s: %s (is spillway.socket or spillwayd running?)", path, strerror(-r));
                if (c->fd >= 0)
                        close(c->fd);
                return r;
        }
        return 0;
}

static void client_close(client *c) {
        if (c->fd >= 0)
                close(c->fd);
        strbuf_deinit(&c->in);
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* Read one reply line (blocking). Returns a parsed object or NULL. */
static json_t *client_read_reply(client *c) {
        for (;;) {
                char *nl = c->in.data ? memchr(c->in.data, '\n', c->in.len) : NULL;
                if (nl) {
                        json_error_t e;
                        size_t len = (size_t) (nl - c->in.data);
                        json_t *o = json_loadb(c->in.data, len, 0, &e);
                        strbuf_consume(&c->in, len + 1);
                        if (!o)
                                report("unreadable reply from spillwayd: %s", e.text);
                        return o;
                }
                if (!strbuf_reserve(&c->in, 65536))
                        return NULL;
                ssize_t k = read(c->fd, c->in.data + c->in.len, 65536);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        report("spillwayd closed the connection%s%s", k < 0 ? ": " : "", k < 0 ? strerror(errno) : "");
                        return NULL;
                }
                c->in.len += (size_t) k;
                c->in.data[c->in.len] = 0;
        }
}

/* Send one request and read its reply; exits with EXIT_UNREACHABLE when
 * the daemon cannot be reached (NULL instead when soft_errors is set). */
json_t *request(json_t *req) {
        client c;
        json_t *reply;
        char *line = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        if (!line)
                return NULL;
        if (client_connect(&c, arg_socket) < 0) {
                free(line);
                if (soft_errors)
                        return NULL;
                exit(EXIT_UNREACHABLE);
        }
        size_t l = strlen(line);
        line = realloc(line, l + 2);
        line[l] = '\n';
        line[l + 1] = 0;
        if (write_all(c.fd, line, l + 1) < 0) {
                int e = errno;
                /* refused for lack of room: the daemon wrote why, then closed */
                reply = e == EPIPE ? client_read_reply(&c) : NULL;
                if (reply && json_object_get(reply, "refused")) {
                        const char *m = json_string_value(json_object_get(reply, "error"));
                        report("spillwayd refused the connection: %s", m ? m : "no room");
                } else
                        report("sending to %s failed: %s", arg_socket, strerror(e));
                json_decref(reply);
                free(line);
                client_close(&c);
                if (soft_errors)
                        return NULL;
                exit(EXIT_UNREACHABLE);
        }
        free(line);
        reply = client_read_reply(&c);
        client_close(&c);
        if (!reply && !soft_errors)
                exit(EXIT_UNREACHABLE);
        if (json_object_get(reply, "refused")) { /* no room for us: as good as unreachable */
                const char *e = json_string_value(json_object_get(reply, "error"));
                fprintf(stderr, "spillwayctl: spillwayd refused the connection: %s\n", e ? e : "no room");
                exit(EXIT_UNREACHABLE);
        }
        return reply;
}

/* Print an error reply and return the exit code; 0 when ok. */
int check_reply(json_t *reply) {
        if (json_is_true(json_object_get(reply, "ok")))
                return 0;
        const char *e = json_string_value(json_object_get(reply, "error"));
        fprintf(stderr, "spillwayctl: %s\n", e ? e : "the operation failed");
        return EXIT_OP_FAILED;
}

void print_json(json_t *o) {
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
}

/* ------------------------------------------------------------ ban */

const char *jstr(json_t *o, const char *k) {
        const char *s = json_string_value(json_object_get(o, k));
        return s ? s : "";
}

long long jint(json_t *o, const char *k) {
        return (long long) json_integer_value(json_object_get(o, k));
}

void csv_field(const char *s, bool last) {
        bool quote = strpbrk(s, ",\"\n\r") != NULL;
        if (quote) {
                putchar('"');
                for (const char *p = s; *p; p++) {
                        if (*p == '"')
                                putchar('"');
                        putchar(*p);
                }
                putchar('"');
        } else
                fputs(s, stdout);
        putchar(last ? '\n' : ',');
}

static void expiration(char *buf, size_t size, const char *until) {
        usec_t t;
        if (parse_rfc3339(until, &t) < 0) {
                snprintf(buf, size, "%s", until);
                return;
        }
        usec_t left = t - now_realtime();
        if (left < 0)
                left = 0;
        format_duration(buf, size, left / USEC_PER_SEC * USEC_PER_SEC);
}

/* CrowdSec's cscli table. */
static void ban_table(FILE *o, json_t *rows, size_t total) {
        static const char *const head[] = { "Source", "Scope:Value", "Reason", "Bans", "Action", "Country", "AS", "Events", "Expiration" };
        size_t n = json_array_size(rows), i;
        json_t *row;
        char ***cells = calloc(n + 1, sizeof *cells);
        size_t width[9];

        if (!cells)
                return;
        for (int k = 0; k < 9; k++)
                width[k] = strlen(head[k]);
        json_array_foreach(rows, i, row) {
                char buf[64];
                cells[i] = calloc(9, sizeof(char *));
                if (!cells[i])
                        break;
                cells[i][0] = strdup(jstr(row, "source"));
                /* cscli's "Scope:Value": Ip:192.0.2.7, Country:FR */
                snprintf(buf, sizeof buf, "%s:%s", *jstr(row, "scope") ? jstr(row, "scope") : "Ip",
                         *jstr(row, "value") ? jstr(row, "value") : jstr(row, "iptext"));
                cells[i][1] = strdup(buf);
                cells[i][2] = strdup(jstr(row, "reason"));
                snprintf(buf, sizeof buf, "%lld", jint(row, "bancount"));
                cells[i][3] = strdup(buf);
                cells[i][4] = strdup(jstr(row, "action"));
                cells[i][5] = strdup(jstr(row, "cn"));
                if (jint(row, "as_number"))
                        snprintf(buf, sizeof buf, "%lld %.40s", jint(row, "as_number"), jstr(row, "as"));
                else
                        snprintf(buf, sizeof buf, "%.50s", jstr(row, "as"));
                cells[i][6] = strdup(buf);
                snprintf(buf, sizeof buf, "%lld", jint(row, "events_count"));
                cells[i][7] = strdup(buf);
                expiration(buf, sizeof buf, jstr(row, "until"));
                cells[i][8] = strdup(buf);
                for (int k = 0; k < 9; k++)
                        if (cells[i][k] && strlen(cells[i][k]) > width[k])
                                width[k] = strlen(cells[i][k]);
        }
        if (n == 0)
                fprintf(o, "No active bans%s.\n", total ? " match" : "");
        else {
                for (int k = 0; k < 9; k++)
                        fprintf(o, "%s%-*s", k ? " | " : "", k == 8 ? 0 : (int) width[k], head[k]);
                fputc('\n', o);
                for (int k = 0; k < 9; k++) {
                        fprintf(o, "%s", k ? "-+-" : "");
                        for (size_t w = 0; w < width[k]; w++)
                                fputc('-', o);
                }
                fputc('\n', o);
                for (size_t r = 0; r < n && cells[r]; r++) {
                        for (int k = 0; k < 9; k++)
                                fprintf(o, "%s%-*s", k ? " | " : "", k == 8 ? 0 : (int) width[k], cells[r][k] ? cells[r][k] : "");
                        fputc('\n', o);
                }
                if (total > n)
                        fprintf(o, "%zu more bans not shown (use --limit N or --all)\n", total - n);
                else
                        fprintf(o, "%zu active ban%s\n", n, n == 1 ? "" : "s");
        }
        for (size_t r = 0; r < n && cells[r]; r++) {
                for (int k = 0; k < 9; k++)
                        free(cells[r][k]);
                free(cells[r]);
        }
        free(cells);
}

static const ctl_option ban_list_options[] = {
        { "at", 0, required_argument, "TIME", NULL }, { "ip", 0, required_argument, "IP", NULL },
        { "scope", 0, required_argument, "SCOPE", "Ip Range Country AS" },
        { "range", 0, required_argument, "CIDR", NULL }, { "reason", 0, required_argument, "S", NULL },
        { "country", 0, required_argument, "CC", NULL }, { "as", 0, required_argument, "S", NULL },
        { "limit", 0, required_argument, "N", NULL }, { "all", 0, no_argument, NULL, NULL },
        { "backend", 0, required_argument, "NAME", "@backends" }, {}
};

static int ban_list(const ctl_command *cmd, int argc, char **argv) {
        json_t *req = json_pack("{s:s}", "op", "ban.list");
        long limit = 50;
        int c;

        while ((c = ctl_getopt(cmd, argc, argv, stderr)) >= 0) {
                const char *name = c >= 256 ? ban_list_options[c - 256].name : NULL;
                if (c == '?') {
                        json_decref(req);
                        return EXIT_USAGE;
                } else if (!strcmp(name, "limit")) {
                        char *end;
                        limit = strtol(optarg, &end, 10);
                        if (*end || limit <= 0) {
                                fprintf(stderr, "spillwayctl: --limit: expected a positive number, got '%s' (use --all for no limit)\n", optarg);
                                json_decref(req);
                                return EXIT_USAGE;
                        }
                } else if (!strcmp(name, "all"))
                        limit = 0;
                else    /* every other option is a filter of the same name */
                        json_object_set_new(req, name, json_string(optarg));
        }
        if (optind < argc) {
                fprintf(stderr, "spillwayctl: ban list: unexpected argument '%s'\n", argv[optind]);
                json_decref(req);
                return EXIT_USAGE;
        }
        json_object_set_new(req, "limit", json_integer(limit));
        json_t *reply = request(req);
        int r = check_reply(reply);
        if (r) {
                json_decref(reply);
                return r;
        }
        json_t *rows = json_object_get(reply, "rows"), *row;
        size_t total = (size_t) jint(reply, "total"), i;

        if (arg_output == OUT_JSON) {
                print_json(reply);
        } else if (arg_output == OUT_RAW) {
                printf("source,ip,reason,bans,action,country,as,events_count,expiration,scope,value\n");
                json_array_foreach(rows, i, row) {
                        char n[32];
                        csv_field(jstr(row, "source"), false);
                        csv_field(jstr(row, "iptext"), false);
                        csv_field(jstr(row, "reason"), false);
                        snprintf(n, sizeof n, "%lld", jint(row, "bancount"));
                        csv_field(n, false);
                        csv_field(jstr(row, "action"), false);
                        csv_field(jstr(row, "cn"), false);
                        csv_field(jstr(row, "as"), false);
                        snprintf(n, sizeof n, "%lld", jint(row, "events_count"));
                        csv_field(n, false);
                        csv_field(jstr(row, "until"), false);
                        csv_field(jstr(row, "scope"), false);
                        csv_field(jstr(row, "value"), true);
                }
        } else {
                char *text = NULL;
                size_t len = 0;
                FILE *o = open_memstream(&text, &len);
                if (!o) {
                        ban_table(stdout, rows, total);
                } else {
                        ban_table(o, rows, total);
                        fclose(o);
                        page_out(text, len);
                        free(text);
                }
        }
        json_decref(reply);
        return 0;
}

/* ip, range, or another decision scope (Country, AS, username...): the
 * daemon checks the name; here only that it is one word. */
static int ban_scope(const char *s) {
        if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == strlen(s))
                return 0;
        fprintf(stderr, "spillwayctl: expected a scope (ip, range, or another such as Country, AS or username), got '%s'\n", s);
        return EXIT_USAGE;
}

/* Prints "<count> <what>". */
static int count_reply(json_t *reply, const char *what) {
        int r = check_reply(reply);
        if (!r) {
                if (arg_output == OUT_JSON)
                        print_json(reply);
                else
                        printf("%lld %s\n", jint(reply, "count"), what);
        }
        json_decref(reply);
        return r;
}

static const ctl_option ban_add_options[] = {
        { "remediation", 0, required_argument, "TYPE", "ban slow captcha" },
        { "backend", 0, required_argument, "NAME", "@backends" },
        { "force", 0, no_argument, NULL, NULL }, /* broader than bans.min_prefix_v4/_v6 */
        {}
};

static int ban_add(const ctl_command *cmd, int argc, char **argv) {
        const char *remediation = "ban", *backend = NULL;
        strbuf reason = STRBUF_INIT;
        bool force = false;
        int c;

        /* options anywhere, also after the reason words */
        while ((c = ctl_getopt(cmd, argc, argv, stderr)) >= 0) {
                if (c == '?')
                        return EXIT_USAGE;
                if (!strcmp(ban_add_options[c - 256].name, "remediation"))
                        remediation = optarg;
                else if (!strcmp(ban_add_options[c - 256].name, "force"))
                        force = true;
                else
                        backend = optarg;
        }
        char **words = argv + optind;
        int nw = argc - optind;
        if (nw < 4) {
                fprintf(stderr, "spillwayctl: usage: ban add ip|range|SCOPE TARGET DURATION REASON... [--remediation ban|slow|captcha] [--force]\n");
                return EXIT_USAGE;
        }
        if (ban_scope(words[0]))
                return EXIT_USAGE;
        usec_t d;
        if (parse_duration(words[2], &d) < 0 || d <= 0) {
                fprintf(stderr, "spillwayctl: DURATION: expected a duration like 4h, 90m or 2d (at most 2562047h), got '%s'\n", words[2]);
                return EXIT_USAGE;
        }
        for (int i = 3; i < nw; i++)
                strbuf_printf(&reason, "%s%s", reason.len ? " " : "", words[i]);
        json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "op", "ban.add", "scope", words[0], "target", words[1],
                                "duration", words[2], "reason", reason.data ? reason.data : "", "remediation", remediation);
        if (backend)
                json_object_set_new(req, "backend", json_string(backend));
        if (force) /* broader than bans.min_prefix_v4/_v6 */
                json_object_set_new(req, "force", json_true());
        strbuf_deinit(&reason);
        return count_reply(request(req), "backend(s) stored the ban");
}

/* For commands without options of their own: reject any, with the list. */
int no_options(const ctl_command *cmd, int argc, char **argv) {
        int c;
        while ((c = ctl_getopt(cmd, argc, argv, stderr)) >= 0)
                if (c == '?')
                        return EXIT_USAGE;
        return 0;
}

/* ban del SCOPE VALUE (ip 192.0.2.7, range 198.51.100.0/24, Country FR),
 * or ban del IP|CIDR alone. */
static int ban_del(const ctl_command *cmd, int argc, char **argv) {
        if (no_options(cmd, argc, argv))
                return EXIT_USAGE;
        if (argc - optind == 1)
                return count_reply(request(json_pack("{s:s, s:s}", "op", "ban.delete", "target", argv[optind])),
                                   "ban(s) deleted");
        if (argc - optind != 2) {
                fprintf(stderr, "spillwayctl: usage: ban del ip|range|SCOPE VALUE, or ban del IP|CIDR\n");
                return EXIT_USAGE;
        }
        if (ban_scope(argv[optind]))
                return EXIT_USAGE;
        return count_reply(request(json_pack("{s:s, s:s, s:s}", "op", "ban.delete", "scope", argv[optind], "target",
                                             argv[optind + 1])),
                           "ban(s) deleted");
}

static int ban_flush(const ctl_command *cmd, int argc, char **argv) {
        if (no_options(cmd, argc, argv))
                return EXIT_USAGE;
        if (argc - optind != 0) {
                fprintf(stderr, "spillwayctl: usage: ban flush\n");
                return EXIT_USAGE;
        }
        return count_reply(request(json_pack("{s:s}", "op", "ban.flush")), "ban(s) deleted");
}

/* ------------------------------------------------------------ send */

static FILE *open_input(const char *path) {
        if (!path || !strcmp(path, "-"))
                return stdin;
        FILE *f = fopen(path, "re");
        if (!f)
                fprintf(stderr, "spillwayctl: cannot open %s: %s\n", path, strerror(errno));
        return f;
}

/* Progress of a send on a terminal (stderr): redrawn in place. */
typedef struct progress {
        bool on;
        usec_t start, last;
        size_t sent, acked, rejected;
} progress;

static void progress_draw(progress *p, bool final) {
        usec_t now = now_monotonic();
        if (!p->on || (!final && now - p->last < 200 * USEC_PER_MSEC))
                return;
        p->last = now;
        double secs = (double) (now - p->start) / USEC_PER_SEC;
        fprintf(stderr, "\r\033[Ksent %zu, acknowledged %zu, rejected %zu, %.0f signals/s", p->sent, p->acked, p->rejected,
                secs > 0 ? (double) p->acked / secs : 0.0);
        if (final)
                fprintf(stderr, "\r\033[K");
        fflush(stderr);
}

static size_t count_lines(const strbuf *b) {
        size_t n = 0;
        for (const char *q = b->data, *end = b->data + b->len; q && q < end && (q = memchr(q, '\n', (size_t) (end - q))); q++)
                n++;
        return n;
}

/* Pipeline the lines of `in` to the daemon, reading replies as they come. */
static int send_lines(FILE *in, const char *name, const char *ack, json_t *(*wrap)(json_t *, void *), void *userdata,
                      void (*on_reply)(size_t lineno, json_t *reply, void *), void *reply_data, size_t *n_sent, size_t *n_failed,
                      progress *prog) {
        client c;
        char *line = NULL;
        size_t cap = 0, *linenos = NULL, n_lines = 0, n_replies = 0;
        ssize_t len;
        strbuf out = STRBUF_INIT;
        bool eof = false;

        if (client_connect(&c, arg_socket) < 0)
                return EXIT_UNREACHABLE;
        size_t lineno = 0;
        while (!eof || out.len > 0 || n_replies < n_lines) {
                /* fill the output buffer */
                while (!eof && out.len < 1 << 20) {
                        len = getline(&line, &cap, in);
                        if (len < 0) {
                                eof = true;
                                break;
                        }
                        lineno++;
                        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                                line[--len] = 0;
                        if (len == 0 || line[0] == '#')
                                continue;
                        json_t *o = NULL;
                        if (ack || wrap) {
                                json_error_t e;
                                o = json_loadb(line, (size_t) len, 0, &e);
                                if (!o) {
                                        if (prog && prog->on)
                                                fprintf(stderr, "\r\033[K");
                                        fprintf(stderr, "%s:%zu: invalid JSON at column %d: %s\n", name, lineno, e.column, e.text);
                                        (*n_failed)++;
                                        if (prog)
                                                prog->rejected++;
                                        continue;
                                }
                                if (wrap)
                                        o = wrap(o, userdata);
                                else
                                        o = json_pack("{s:o, s:s}", "signal", o, "ack", ack);
                                char *s = json_dumps(o, JSON_COMPACT);
                                json_decref(o);
                                strbuf_puts(&out, s);
                                free(s);
                        } else
                                strbuf_append(&out, line, (size_t) len);
                        strbuf_putc(&out, '\n');
                        linenos = realloc(linenos, (n_lines + 1) * sizeof *linenos);
                        linenos[n_lines++] = lineno;
                }
                if (eof && out.len == 0 && n_replies >= n_lines)
                        break;  /* nothing (more) to send or to wait for */
                struct pollfd p = { .fd = c.fd, .events = POLLIN | (out.len ? POLLOUT : 0) };
                int pr = poll(&p, 1, prog && prog->on ? 200 : -1);
                if (pr < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (prog && prog->on) {
                        prog->sent = n_lines - count_lines(&out);
                        progress_draw(prog, false);
                }
                if (pr == 0)
                        continue;
                if (p.revents & POLLOUT) {
                        ssize_t k = write(c.fd, out.data, out.len);
                        if (k > 0)
                                strbuf_consume(&out, (size_t) k);
                        else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                                fprintf(stderr, "spillwayctl: writing to %s failed: %s\n", arg_socket, strerror(errno));
                                break;
                        }
                }
                if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
                        if (!strbuf_reserve(&c.in, 65536))
                                break;
                        ssize_t k = read(c.fd, c.in.data + c.in.len, 65536);
                        if (k <= 0) {
                                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                                        continue;
                                fprintf(stderr, "spillwayctl: spillwayd closed the connection after %zu replies\n", n_replies);
                                break;
                        }
                        c.in.len += (size_t) k;
                        c.in.data[c.in.len] = 0;
                        char *nl;
                        while ((nl = memchr(c.in.data, '\n', c.in.len))) {
                                size_t l = (size_t) (nl - c.in.data);
                                json_t *reply = json_loadb(c.in.data, l, 0, NULL);
                                strbuf_consume(&c.in, l + 1);
                                size_t ln = n_replies < n_lines ? linenos[n_replies] : 0;
                                n_replies++;
                                if (!reply || !json_is_true(json_object_get(reply, "ok"))) {
                                        (*n_failed)++;
                                        if (prog)
                                                prog->rejected++;
                                        if (!on_reply) {
                                                if (prog && prog->on)
                                                        fprintf(stderr, "\r\033[K");
                                                fprintf(stderr, "%s:%zu: %s\n", name, ln, reply ? jstr(reply, "error") : "unreadable reply");
                                        }
                                } else {
                                        (*n_sent)++;
                                        if (prog)
                                                prog->acked++;
                                }
                                if (on_reply && reply)
                                        on_reply(ln, reply, reply_data);
                                json_decref(reply);
                        }
                }
        }
        if (prog && prog->on) {
                prog->sent = n_lines - count_lines(&out);
                progress_draw(prog, true);
        }
        free(line);
        free(linenos);
        strbuf_deinit(&out);
        client_close(&c);
        return n_replies < n_lines ? EXIT_UNREACHABLE : 0;
}

static const ctl_option send_options[] = {
        { "ack", 0, required_argument, "LEVEL", "queued flushed" },
        { "ingest", 0, optional_argument, "PATH", "@files" }, {}
};

/* The ingest socket: --ingest=PATH, else $SPILLWAY_INGEST_SOCKET, else the
 * ingest.sock beside the admin socket given with -s (the quick start's
 * run/), else the default. */
static const char *ingest_socket(const char *given) {
        static char buf[4096];
        if (given && *given)
                return given;
        if (getenv("SPILLWAY_INGEST_SOCKET"))
                return getenv("SPILLWAY_INGEST_SOCKET");
        if (arg_socket_given) {
                const char *slash = strrchr(arg_socket, '/');
                snprintf(buf, sizeof buf, "%.*s%singest.sock", slash ? (int) (slash - arg_socket) : 0, arg_socket,
                         slash ? "/" : "");
                return buf;
        }
        return SPW_RUNDIR "/ingest.sock";
}

static int cmd_send(const ctl_command *cmd, int argc, char **argv) {
        const char *ack = NULL;
        int c;
        size_t sent = 0, failed = 0;

        while ((c = ctl_getopt(cmd, argc, argv, stderr)) >= 0) {
                if (c == '?')
                        return EXIT_USAGE;
                if (!strcmp(send_options[c - 256].name, "ack")) {
                        if (strcmp(optarg, "queued") && strcmp(optarg, "flushed")) {
                                fprintf(stderr, "spillwayctl: --ack: expected queued or flushed, got '%s'\n", optarg);
                                return EXIT_USAGE;
                        }
                        ack = optarg;
                } else
                        arg_socket = ingest_socket(optarg);
        }
        if (argc - optind > 1) {
                fprintf(stderr, "spillwayctl: send: one FILE at most, got '%s' and '%s'\n", argv[optind], argv[optind + 1]);
                ctl_command_usage(cmd, stderr);
                return EXIT_USAGE;
        }
        const char *path = optind < argc ? argv[optind] : "-";
        FILE *in = open_input(path);
        if (!in)
                return EXIT_USAGE;
        progress prog = { .on = arg_output == OUT_HUMAN && is_terminal(STDERR_FILENO), .start = now_monotonic() };
        int r = send_lines(in, strcmp(path, "-") ? path : "stdin", ack, NULL, NULL, NULL, NULL, &sent, &failed, &prog);
        if (in != stdin)
                fclose(in);
        if (arg_output == OUT_JSON)
                printf("{\"sent\":%zu,\"failed\":%zu}\n", sent, failed);
        else if (prog.on) {
                double secs = (double) (now_monotonic() - prog.start) / USEC_PER_SEC;
                fprintf(stderr, "%zu signal%s sent to %s in %.1fs: %zu acknowledged%s%s, %zu rejected (%.0f signals/s)\n",
                        prog.sent, prog.sent == 1 ? "" : "s", arg_socket, secs, sent, ack ? " " : "", ack ? ack : "", failed,
                        secs > 0 ? (double) sent / secs : 0.0);
        } else
                fprintf(stderr, "%zu signal%s acknowledged%s%s, %zu failed\n", sent, sent == 1 ? "" : "s",
                        ack ? " " : "", ack ? ack : "", failed);
        if (r)
                return r;
        return failed ? EXIT_PARTIAL : 0;
}

/* ------------------------------------------------------------ route test */

static json_t *wrap_route(json_t *sig, void *userdata) {
        return json_pack("{s:s, s:o}", "op", "route.test", "signal", sig);
}

static void print_route(size_t lineno, json_t *reply, void *userdata) {
        size_t i;
        json_t *v;
        if (arg_output == OUT_JSON) {
                json_dumpf(reply, stdout, JSON_COMPACT);
                putchar('\n');
                return;
        }
        if (!json_is_true(json_object_get(reply, "ok"))) {
                printf("line %zu: error: %s\n", lineno, jstr(reply, "error"));
                return;
        }
        printf("line %zu: %s\n", lineno, jstr(reply, "scenario"));
        if (json_array_size(json_object_get(reply, "profiles")) == 0)
                printf("  profiles: none match\n");
        json_array_foreach(json_object_get(reply, "profiles"), i, v) {
                size_t k;
                json_t *b;
                printf("  profile %s (line %lld) ->", jstr(v, "profile"), jint(v, "line"));
                if (json_array_size(json_object_get(v, "backends")) == 0)
                        printf(" (no output)");
                json_array_foreach(json_object_get(v, "backends"), k, b)
                        printf(" %s", json_string_value(b));
                putchar('\n');
        }
        json_array_foreach(json_object_get(reply, "bans"), i, v)
                printf("  ban: %s %s:%s until %s%s\n", jstr(v, "MeasureType"), jstr(v, "Scope"),
                       *jstr(v, "Value") ? jstr(v, "Value") : jstr(v, "IpText"), jstr(v, "Until"),
                       json_is_false(json_object_get(v, "Enforceable"))
                               ? " (not an address: stored and forwarded, not enforced by address-based backends)" : "");
        json_array_foreach(json_object_get(reply, "warnings"), i, v)
                printf("  warning: profile %s: %s\n", jstr(v, "profile"), jstr(v, "message"));
        printf("  backends:");
        if (json_array_size(json_object_get(reply, "backends")) == 0)
                printf(" none (not delivered)");
        json_array_foreach(json_object_get(reply, "backends"), i, v)
                printf(" %s", json_string_value(v));
        putchar('\n');
}

static int cmd_route(const ctl_command *cmd, int argc, char **argv) {
        size_t ok = 0, failed = 0;
        if (no_options(cmd, argc, argv))
                return EXIT_USAGE;
        if (argc - optind > 1) {
                fprintf(stderr, "spillwayctl: usage: route test [FILE|-]\n");
                return EXIT_USAGE;
        }
        const char *path = optind < argc ? argv[optind] : "-";
        FILE *in = open_input(path);
        if (!in)
                return EXIT_USAGE;
        int r = send_lines(in, strcmp(path, "-") ? path : "stdin", NULL, wrap_route, NULL, print_route, NULL, &ok, &failed, NULL);
        if (in != stdin)
                fclose(in);
        return r ? r : failed ? EXIT_OP_FAILED : 0;
}

/* ------------------------------------------------------------ metrics, reload, config */

static int cmd_metrics(const ctl_command *cmd, int argc, char **argv) {
        if (no_options(cmd, argc, argv) || optind < argc) {
                if (optind < argc)
                        fprintf(stderr, "spillwayctl: metrics: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        json_t *reply = request(json_pack("{s:s}", "op", "metrics"));
        int r = check_reply(reply);
        if (!r) {
                if (arg_output == OUT_JSON)
                        print_json(reply);
                else
                        fputs(jstr(reply, "metrics"), stdout);
        }
        json_decref(reply);
        return r;
}

static int cmd_reload(const ctl_command *cmd, int argc, char **argv) {
        if (no_options(cmd, argc, argv) || optind < argc) {
                if (optind < argc)
                        fprintf(stderr, "spillwayctl: reload: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        json_t *reply = request(json_pack("{s:s}", "op", "reload"));
        int r = check_reply(reply);
        if (!r && arg_output == OUT_JSON)
                print_json(reply);
        else if (!r)
                printf("reloaded: %lld backends\n", jint(reply, "backends"));
        json_decref(reply);
        return r;
}

static int cmd_config(const ctl_command *cmd, int argc, char **argv) {
        if (no_options(cmd, argc, argv) || optind < argc) {
                if (optind < argc)
                        fprintf(stderr, "spillwayctl: config check: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        json_t *reply = request(json_pack("{s:s}", "op", "config.check"));
        int r = check_reply(reply);
        if (arg_output == OUT_JSON)
                print_json(reply);
        else if (!r)
                printf("%s: configuration OK (%lld backends)\n", jstr(reply, "config"), jint(reply, "backends"));
        json_decref(reply);
        return r;
}

/* ------------------------------------------------------------ completion */

/* What completion asks the running daemon: backend names, ban targets.
 * Quiet: an unreachable daemon means no candidates. */
static void complete_dynamic(const char *what, const ctl_globals *g, FILE *out) {
        size_t i;
        json_t *v;
        soft_errors = true;
        if (g->socket)
                arg_socket = g->socket;
        if (!strcmp(what, "backends")) {
                json_t *st = request(json_pack("{s:s}", "op", "status"));
                json_array_foreach(json_object_get(st, "backends"), i, v)
                        fprintf(out, "%s\n", jstr(v, "name"));
                json_decref(st);
        } else if (!strncmp(what, "targets:", 8)) {
                /* the values of the active bans of the scope typed before */
                json_t *bl = request(json_pack("{s:s, s:s, s:i}", "op", "ban.list", "scope", what + 8, "limit", 1000));
                json_array_foreach(json_object_get(bl, "rows"), i, v) {
                        const char *t = *jstr(v, "value") ? jstr(v, "value") : jstr(v, "iptext");
                        if (*t)
                                fprintf(out, "%s\n", t);
                }
                json_decref(bl);
        }
}

static int cmd_complete(const ctl_command *cmd, int argc, char **argv);

/* ------------------------------------------------------------ main */

static const ctl_option no_opts[] = { {} };

static const ctl_command commands[] = {
        { "ban", "list", NULL, ban_list_options, NULL, NULL, ban_list },
        { "ban", "add", NULL, ban_add_options, "ip|range|SCOPE TARGET DURATION REASON...", "ip range Country AS", ban_add },
        { "ban", "del", "delete", no_opts, "ip|range|SCOPE VALUE", "ip range Country AS|@targets", ban_del },
        { "ban", "flush", NULL, no_opts, NULL, NULL, ban_flush },
        { "deadletter", "list", NULL, deadletter_list_options, "BACKEND", "@backends", cmd_deadletter_list },
        { "deadletter", "retry", NULL, deadletter_change_options, "BACKEND ID...|--all", "@backends", cmd_deadletter_retry },
        { "deadletter", "drop", NULL, deadletter_change_options, "BACKEND ID...|--all", "@backends", cmd_deadletter_drop },
        { "send", NULL, NULL, send_options, "[FILE|-]", "@files", cmd_send },
        { "route", "test", NULL, no_opts, "[FILE|-]", "@files", cmd_route },
        { "status", NULL, NULL, no_opts, NULL, NULL, cmd_status },
        { "top", NULL, NULL, top_options, NULL, NULL, cmd_top },
        { "metrics", NULL, NULL, no_opts, NULL, NULL, cmd_metrics },
        { "reload", NULL, NULL, no_opts, NULL, NULL, cmd_reload },
        { "config", "check", NULL, no_opts, NULL, NULL, cmd_config },
        { "__complete", NULL, NULL, no_opts, "WORDS... CURRENT", NULL, cmd_complete },
        {}
};

/* `spillwayctl __complete [--] WORDS... CURRENT`: for the completion
 * scripts; prints candidates for CURRENT, one per line. */
static int cmd_complete(const ctl_command *cmd, int argc, char **argv) {
        int i = 1;
        if (i < argc && !strcmp(argv[i], "--"))
                i++;
        ctl_complete(commands, argc - i, argv + i, stdout, complete_dynamic);
        return 0;
}

static void help(void) {
        printf("Usage: spillwayctl [OPTIONS] COMMAND ... [OPTIONS]\n"
               "Control spillwayd through its admin socket. Options go anywhere on the line.\n\n"
               "Commands:\n"
               "  ban list [--at TIME] [--scope SCOPE] [--ip IP] [--range CIDR] [--reason S] [--country CC]\n"
               "           [--as S] [--limit N | --all] [--backend NAME]\n"
               "  ban add ip|range|SCOPE TARGET DURATION REASON... [--remediation ban|slow|captcha]\n"
               "          [--backend NAME] [--force]\n"
               "  ban del ip|range|SCOPE VALUE   (or ban del IP|CIDR)\n"
               "  ban flush\n"
               "  deadletter list BACKEND [--limit N]\n"
               "  deadletter retry|drop BACKEND ID...|--all\n"
               "  send [FILE|-] [--ack queued|flushed] [--ingest[=PATH]]\n"
               "  route test [FILE|-]\n"
               "  status\n"
               "  top [--delay SECONDS] [--iterations N]\n"
               "  metrics\n"
               "  reload\n"
               "  config check\n\n"
               "Options:\n"
               "  -s, --socket=PATH   admin socket (default $SPILLWAY_ADMIN_SOCKET or %s/admin.sock)\n"
               "  -o, --output=FORMAT human, json or raw (CSV for ban list)\n"
               "      --no-pager      do not page long output (ban list) through $SYSTEMD_PAGER, $PAGER or less\n"
               "  -h, --help          show this help (after a command: that command's options)\n"
               "      --version       show the version\n\n"
               "Exit status: 0 ok, 1 operation failed, 2 usage error, 3 spillwayd unreachable,\n"
               "4 some signals of a send were rejected. See spillwayctl(1).\n",
               SPW_RUNDIR);
}

int main(int argc, char **argv) {
        ctl_globals g = {};
        const ctl_command *cmd;
        int cmd_argc, r;
        char **cmd_argv;

        signal(SIGPIPE, SIG_IGN); /* a closed socket is an error to report, not a reason to die */
        arg_socket = getenv("SPILLWAY_ADMIN_SOCKET") ? getenv("SPILLWAY_ADMIN_SOCKET") : SPW_RUNDIR "/admin.sock";
        /* completion must see the words as typed: no global parsing first */
        if (argc >= 2 && !strcmp(argv[1], "__complete"))
                return cmd_complete(&commands[ELEMENTSOF(commands) - 2], argc - 1, argv + 1);
        r = ctl_cmdline_split(commands, argc, argv, &g, &cmd, &cmd_argc, &cmd_argv, stderr);
        if (r == -ENOMEM) {
                fprintf(stderr, "spillwayctl: out of memory\n");
                return EXIT_OP_FAILED;
        }
        if (r < 0)
                return EXIT_USAGE;
        if (g.output) {
                if (!strcmp(g.output, "human"))
                        arg_output = OUT_HUMAN;
                else if (!strcmp(g.output, "json"))
                        arg_output = OUT_JSON;
                else if (!strcmp(g.output, "raw"))
                        arg_output = OUT_RAW;
                else {
                        fprintf(stderr, "spillwayctl: --output: expected human, json or raw, got '%s'\n", g.output);
                        free(cmd_argv);
                        return EXIT_USAGE;
                }
        }
        if (g.socket) {
                arg_socket = g.socket;
                arg_socket_given = true;
        }
        arg_no_pager = g.no_pager;
        if (g.version) {
                printf("spillwayctl %s\n", SPW_VERSION);
                free(cmd_argv);
                return 0;
        }
        if (g.help) {
                if (cmd)
                        ctl_command_usage(cmd, stdout);
                else
                        help();
                free(cmd_argv);
                return 0;
        }
        if (!cmd) {
                help();
                return EXIT_USAGE;
        }
        optind = 0;     /* ctl_getopt() starts over on the command's argv */
        r = cmd->run(cmd, cmd_argc, cmd_argv);
        free(cmd_argv);
        return r;
}
