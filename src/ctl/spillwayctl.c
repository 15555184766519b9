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
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
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
#include "macro.h"
#include "strbuf.h"
#include "timeutil.h"

enum { EXIT_OP_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3, EXIT_PARTIAL = 4 };

typedef enum output { OUT_HUMAN, OUT_JSON, OUT_RAW } output;

static const char *arg_socket;
static bool arg_socket_given;
static output arg_output = OUT_HUMAN;
static bool arg_no_pager;
/* set by `top`: an unreachable daemon is shown, not fatal */
static bool soft_errors;

/* ------------------------------------------------------------ connection */

/* The last connection error; printed to stderr unless soft_errors (top
 * shows it on its screen instead). */
static char last_error[512];

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
static json_t *request(json_t *req) {
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
                report("sending to %s failed: %s", arg_socket, strerror(errno));
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
        return reply;
}

/* Print an error reply and return the exit code; 0 when ok. */
static int check_reply(json_t *reply) {
        if (json_is_true(json_object_get(reply, "ok")))
                return 0;
        const char *e = json_string_value(json_object_get(reply, "error"));
        fprintf(stderr, "spillwayctl: %s\n", e ? e : "the operation failed");
        return EXIT_OP_FAILED;
}

static void print_json(json_t *o) {
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
}

/* ------------------------------------------------------------ terminal */

static bool is_terminal(int fd) {
        const char *t = getenv("TERM");
        return isatty(fd) && !(t && !strcmp(t, "dumb"));
}

/* Colour on a terminal only, and never with NO_COLOR set (no-color.org). */
static bool use_colour(void) {
        const char *nc = getenv("NO_COLOR");
        return is_terminal(STDOUT_FILENO) && !(nc && *nc);
}

static void terminal_size(int fd, unsigned *rows, unsigned *cols) {
        struct winsize w = {};
        *rows = 24;
        *cols = 80;
        if (ioctl(fd, TIOCGWINSZ, &w) == 0 && w.ws_row > 0 && w.ws_col > 0) {
                *rows = w.ws_row;
                *cols = w.ws_col;
        }
}

/* Write text to stdout, through a pager when stdout is a terminal and the
 * text is taller than it (as systemctl does): $SYSTEMD_PAGER, else $PAGER,
 * else less; an empty value or "cat" means no pager, as does --no-pager. */
static void page_out(const char *text, size_t len) {
        size_t lines = 0;
        unsigned rows, cols;
        for (size_t i = 0; i < len; i++)
                lines += text[i] == '\n';
        if (!arg_no_pager && is_terminal(STDOUT_FILENO)) {
                terminal_size(STDOUT_FILENO, &rows, &cols);
                const char *pager = getenv("SYSTEMD_PAGER");
                if (!pager)
                        pager = getenv("PAGER");
                if (!pager)
                        pager = "less";
                if (lines >= rows && *pager && strcmp(pager, "cat")) {
                        setenv("LESS", "FRSXMK", 0);   /* systemd's defaults: quit if one screen, keep colours */
                        fflush(stdout);
                        FILE *p = popen(pager, "w");
                        if (p) {
                                void (*old)(int) = signal(SIGPIPE, SIG_IGN);
                                fwrite(text, 1, len, p);
                                int r = pclose(p);
                                signal(SIGPIPE, old);
                                if (r != -1 && !(WIFEXITED(r) && WEXITSTATUS(r) == 127))
                                        return;
                                fprintf(stderr, "spillwayctl: pager '%s' did not run; printing without it\n", pager);
                        }
                }
        }
        fwrite(text, 1, len, stdout);
}

/* ------------------------------------------------------------ ban */

static const char *jstr(json_t *o, const char *k) {
        const char *s = json_string_value(json_object_get(o, k));
        return s ? s : "";
}

static long long jint(json_t *o, const char *k) {
        return (long long) json_integer_value(json_object_get(o, k));
}

static void csv_field(const char *s, bool last) {
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
        static const char *const head[] = { "Source", "Ip", "Reason", "Bans", "Action", "Country", "AS", "Events", "Expiration" };
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
                cells[i][1] = strdup(jstr(row, "iptext"));
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
                printf("source,ip,reason,bans,action,country,as,events_count,expiration\n");
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
                        csv_field(jstr(row, "until"), true);
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

static int ban_scope(const char *s) {
        if (!strcmp(s, "ip") || !strcmp(s, "range"))
                return 0;
        fprintf(stderr, "spillwayctl: expected 'ip' or 'range', got '%s'\n", s);
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
        { "backend", 0, required_argument, "NAME", "@backends" }, {}
};

static int ban_add(const ctl_command *cmd, int argc, char **argv) {
        const char *remediation = "ban", *backend = NULL;
        strbuf reason = STRBUF_INIT;
        int c;

        /* options anywhere, also after the reason words */
        while ((c = ctl_getopt(cmd, argc, argv, stderr)) >= 0) {
                if (c == '?')
                        return EXIT_USAGE;
                if (!strcmp(ban_add_options[c - 256].name, "remediation"))
                        remediation = optarg;
                else
                        backend = optarg;
        }
        char **words = argv + optind;
        int nw = argc - optind;
        if (nw < 4) {
                fprintf(stderr, "spillwayctl: usage: ban add ip|range TARGET DURATION REASON... [--remediation ban|slow|captcha]\n");
                return EXIT_USAGE;
        }
        if (ban_scope(words[0]))
                return EXIT_USAGE;
        usec_t d;
        if (parse_duration(words[2], &d) < 0 || d <= 0) {
                fprintf(stderr, "spillwayctl: DURATION: expected a duration like 4h, 90m or 2d, got '%s'\n", words[2]);
                return EXIT_USAGE;
        }
        for (int i = 3; i < nw; i++)
                strbuf_printf(&reason, "%s%s", reason.len ? " " : "", words[i]);
        json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "op", "ban.add", "scope", words[0], "target", words[1],
                                "duration", words[2], "reason", reason.data ? reason.data : "", "remediation", remediation);
        if (backend)
                json_object_set_new(req, "backend", json_string(backend));
        strbuf_deinit(&reason);
        return count_reply(request(req), "backend(s) stored the ban");
}

/* For commands without options of their own: reject any, with the list. */
static int no_options(const ctl_command *cmd, int argc, char **argv) {
        int c;
        while ((c = ctl_getopt(cmd, argc, argv, stderr)) >= 0)
                if (c == '?')
                        return EXIT_USAGE;
        return 0;
}

static int ban_del(const ctl_command *cmd, int argc, char **argv) {
        if (no_options(cmd, argc, argv))
                return EXIT_USAGE;
        if (argc - optind != 2) {
                fprintf(stderr, "spillwayctl: usage: ban del ip|range TARGET\n");
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
                printf("  ban: %s %s until %s (%s)\n", jstr(v, "MeasureType"), jstr(v, "IpText"), jstr(v, "Until"), jstr(v, "Scope"));
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

/* ------------------------------------------------------------ status */

typedef enum health { HEALTHY, WARNING, FAILING } health;

/* The verdict on a status reply, and why, in one line. */
static health status_verdict(json_t *st, char *why, size_t size) {
        size_t i, n = 0, up = 0;
        json_t *b;
        health h = HEALTHY;
        char first[256] = "";

        json_array_foreach(json_object_get(st, "backends"), i, b) {
                json_t *q = json_object_get(b, "queue");
                long long depth = jint(q, "depth"), capacity = jint(q, "capacity");
                n++;
                if (!strcmp(jstr(b, "state"), "running"))
                        up++;
                else if (!*first)
                        snprintf(first, sizeof first, "backend %s is %s%s%s", jstr(b, "name"), jstr(b, "state"),
                                 *jstr(b, "error") ? ": " : "", jstr(b, "error"));
                if (h == HEALTHY && capacity > 0 && depth * 10 >= capacity * 8) {
                        h = WARNING;
                        if (!*first)
                                snprintf(first, sizeof first, "backend %s's queue is %lld%% full", jstr(b, "name"),
                                         depth * 100 / capacity);
                }
        }
        if (strcmp(jstr(st, "state"), "running")) {
                h = FAILING;
                snprintf(why, size, "spillwayd is %s", jstr(st, "state"));
                return h;
        }
        if (n > 0 && up == 0)
                h = FAILING;
        else if (up < n)
                h = WARNING;
        if (json_object_get(st, "reload_error")) {
                if (h == HEALTHY)
                        h = WARNING;
                if (!*first)
                        snprintf(first, sizeof first, "the last reload failed (the previous configuration runs)");
        }
        snprintf(why, size, "%zu/%zu backends running%s%s", up, n, *first ? "; " : "", first);
        return h;
}

static int cmd_status(const ctl_command *cmd, int argc, char **argv) {
        if (no_options(cmd, argc, argv))
                return EXIT_USAGE;
        if (optind < argc) {
                fprintf(stderr, "spillwayctl: status: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        json_t *reply = request(json_pack("{s:s}", "op", "status"));
        int r = check_reply(reply);
        size_t i;
        json_t *b;

        if (r) {
                json_decref(reply);
                return r;
        }
        if (arg_output != OUT_HUMAN) {
                print_json(reply);
                json_decref(reply);
                return 0;
        }
        static const char *const verdicts[] = { "healthy", "degraded", "failing" };
        static const char *const colours[] = { "\033[1;32m", "\033[1;33m", "\033[1;31m" };
        bool colour = use_colour();
        char why[512], uptime[64], started[64] = "";
        health h = status_verdict(reply, why, sizeof why);
        format_duration(uptime, sizeof uptime, jint(reply, "uptime_s") * USEC_PER_SEC);
        if (*jstr(reply, "started"))
                snprintf(started, sizeof started, " since %s", jstr(reply, "started"));

        /* first line: the verdict */
        printf("%s%s %s%s: %s\n", colour ? colours[h] : "", h == HEALTHY ? "●" : "×", verdicts[h], colour ? "\033[0m" : "", why);
        printf("spillwayd %s, pid %lld, %s, up %s%s\n", jstr(reply, "version"), jint(reply, "pid"), jstr(reply, "state"),
               uptime, started);
        printf("config %s, %lld reloads, %lld connections (this one included), %lld signals waiting for queue room, watchdog %s\n",
               jstr(reply, "config"), jint(reply, "reloads"), jint(reply, "connections"), jint(reply, "parked"),
               jint(reply, "watchdog_usec") ? "on" : "off");
        json_t *sig = json_object_get(reply, "signals");
        printf("signals: %lld accepted, %lld rejected, %lld flushed acks, %lld failed acks, %lld block timeouts, %lld oversized lines\n",
               jint(sig, "accepted"), jint(sig, "rejected"), jint(sig, "flushed_acks"), jint(sig, "failed_acks"),
               jint(sig, "blocked_timeouts"), jint(sig, "oversized_lines"));
        if (json_object_get(reply, "reload_error"))
                printf("%slast reload FAILED%s: %s\n", colour ? colours[FAILING] : "", colour ? "\033[0m" : "",
                       jstr(reply, "reload_error"));
        printf("\n%-16s %-10s %-9s %15s %9s %9s %9s %9s %9s %9s  %s\n", "BACKEND", "PLUGIN", "STATE", "QUEUE", "RECEIVED",
               "INSERTED", "FAILED", "RETRIED", "DROPPED", "FLUSHES", "LAST ERROR");
        json_array_foreach(json_object_get(reply, "backends"), i, b) {
                json_t *q = json_object_get(b, "queue");
                char queue[48];
                bool running = !strcmp(jstr(b, "state"), "running");
                if (q)
                        snprintf(queue, sizeof queue, "%lld/%lld", jint(q, "depth"), jint(q, "capacity"));
                else
                        snprintf(queue, sizeof queue, "-");
                printf("%-16s %-10s %s%-9s%s %15s %9lld %9lld %9lld %9lld %9lld %9lld  %s\n", jstr(b, "name"), jstr(b, "plugin"),
                       colour && !running ? colours[FAILING] : "", jstr(b, "state"), colour && !running ? "\033[0m" : "", queue,
                       jint(b, "received"), jint(b, "inserted"), jint(b, "failed"), jint(b, "retried"), jint(b, "dropped"),
                       jint(b, "flushes"), *jstr(b, "error") ? jstr(b, "error") : jstr(b, "last_error"));
                if (q)
                        printf("%-16s   queue: high water %lld, on_full %s; %lld flushed, %lld undelivered, busy %lld ms\n", "",
                               jint(q, "high_water"), jstr(q, "on_full"), jint(b, "flushed"), jint(b, "undelivered"),
                               jint(b, "busy_ms"));
                const char *k;
                json_t *v;
                json_object_foreach(json_object_get(b, "plugin_status"), k, v)
                        printf("%-16s   %s: %s\n", "", k, json_is_string(v) ? json_string_value(v) : "");
        }
        json_decref(reply);
        return 0;
}

/* ------------------------------------------------------------ top */

static const ctl_option top_options[] = {
        { "delay", 'd', required_argument, "SECONDS", NULL },
        { "iterations", 'n', required_argument, "N", NULL }, {}
};

typedef struct top_prev {
        char name[128];
        long long received, flushed;
} top_prev;

static struct termios top_saved;
static bool top_raw;
static volatile sig_atomic_t top_quit;

static void top_restore(void) {
        if (top_raw) {
                tcsetattr(STDIN_FILENO, TCSANOW, &top_saved);
                top_raw = false;
        }
}

static void top_on_signal(int sig) {
        top_quit = 1;
}

/* One frame into b. prev/n_prev: the counters of the previous frame. */
static void top_frame(strbuf *b, json_t *st, long long bans, const char *ban_error, top_prev *prev, size_t *n_prev,
                      double secs, bool first, unsigned cols) {
        size_t i;
        json_t *be;
        char uptime[64], why[512], line[1024];
        static long long prev_accepted, prev_rejected;
        top_prev cur[64];
        size_t n_cur = 0;

        health h = status_verdict(st, why, sizeof why);
        static const char *const verdicts[] = { "healthy", "degraded", "failing" };
        json_t *sig = json_object_get(st, "signals");
        long long accepted = jint(sig, "accepted"), rejected = jint(sig, "rejected");
        format_duration(uptime, sizeof uptime, jint(st, "uptime_s") * USEC_PER_SEC);

#define LINE(...) do { snprintf(line, sizeof line, __VA_ARGS__); strbuf_printf(b, "%.*s\n", (int) MIN(strlen(line), (size_t) cols), line); } while (0)
        LINE("spillwayd %s  pid %lld  %s  up %s  %s: %s", jstr(st, "version"), jint(st, "pid"), jstr(st, "state"), uptime,
             verdicts[h], why);
        if (first)
                LINE("signals in: - /s (%lld accepted, %lld rejected)", accepted, rejected);
        else
                LINE("signals in: %.1f/s accepted, %.1f/s rejected (%lld accepted, %lld rejected)",
                     (double) (accepted - prev_accepted) / secs, (double) (rejected - prev_rejected) / secs, accepted, rejected);
        if (bans >= 0)
                LINE("bans: %lld active   connections: %lld   waiting for queue room: %lld", bans, jint(st, "connections"),
                     jint(st, "parked"));
        else
                LINE("bans: - (%s)   connections: %lld   waiting for queue room: %lld", ban_error, jint(st, "connections"),
                     jint(st, "parked"));
        prev_accepted = accepted;
        prev_rejected = rejected;
        strbuf_putc(b, '\n');
        LINE("%-16s %-9s %9s %9s %13s %5s %8s %8s %8s  %s", "BACKEND", "STATE", "IN/s", "OUT/s", "QUEUE", "FILL", "RETRIES",
             "DROPS", "FAILED", "LAST ERROR");
        json_array_foreach(json_object_get(st, "backends"), i, be) {
                const char *name = jstr(be, "name");
                json_t *q = json_object_get(be, "queue");
                long long received = jint(be, "received"), flushed = jint(be, "flushed");
                long long depth = jint(q, "depth"), capacity = jint(q, "capacity");
                char in[32] = "-", out[32] = "-", queue[32] = "-", fill[16] = "-";
                for (size_t k = 0; k < *n_prev && !first; k++)
                        if (!strcmp(prev[k].name, name)) {
                                snprintf(in, sizeof in, "%.1f", (double) (received - prev[k].received) / secs);
                                snprintf(out, sizeof out, "%.1f", (double) (flushed - prev[k].flushed) / secs);
                        }
                if (q) {
                        snprintf(queue, sizeof queue, "%lld/%lld", depth, capacity);
                        if (capacity > 0)
                                snprintf(fill, sizeof fill, "%lld%%", depth * 100 / capacity);
                }
                LINE("%-16s %-9s %9s %9s %13s %5s %8lld %8lld %8lld  %s", name, jstr(be, "state"), in, out, queue, fill,
                     jint(be, "retried"), jint(be, "dropped"), jint(be, "failed"),
                     *jstr(be, "error") ? jstr(be, "error") : jstr(be, "last_error"));
                if (n_cur < ELEMENTSOF(cur)) {
                        snprintf(cur[n_cur].name, sizeof cur[n_cur].name, "%s", name);
                        cur[n_cur].received = received;
                        cur[n_cur++].flushed = flushed;
                }
        }
        memcpy(prev, cur, n_cur * sizeof *cur);
        *n_prev = n_cur;
#undef LINE
}

static int cmd_top(const ctl_command *cmd, int argc, char **argv) {
        double delay = 1.0;
        long iterations = 0;
        int c;

        while ((c = ctl_getopt(cmd, argc, argv, stderr)) >= 0) {
                char *end;
                if (c == '?')
                        return EXIT_USAGE;
                if (c == 'd') {
                        delay = strtod(optarg, &end);
                        if (*end || !(delay >= 0.1 && delay <= 3600)) {
                                fprintf(stderr, "spillwayctl: top: --delay: expected seconds between 0.1 and 3600, got '%s'\n", optarg);
                                return EXIT_USAGE;
                        }
                } else {
                        iterations = strtol(optarg, &end, 10);
                        if (*end || iterations <= 0) {
                                fprintf(stderr, "spillwayctl: top: --iterations: expected a positive number, got '%s'\n", optarg);
                                return EXIT_USAGE;
                        }
                }
        }
        if (optind < argc) {
                fprintf(stderr, "spillwayctl: top: unexpected argument '%s'\n", argv[optind]);
                return EXIT_USAGE;
        }
        bool tty = is_terminal(STDOUT_FILENO);
        if (arg_output != OUT_HUMAN)
                tty = false;
        if (tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &top_saved) == 0) {
                struct termios t = top_saved;
                t.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
                t.c_cc[VMIN] = 0;
                t.c_cc[VTIME] = 0;
                if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
                        top_raw = true;
                        atexit(top_restore);
                }
        }
        struct sigaction sa = { .sa_handler = top_on_signal };
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        if (tty)
                fputs("\033[?25l", stdout);     /* hide the cursor */

        top_prev prev[64];
        size_t n_prev = 0;
        usec_t last = 0;
        int ret = 0;
        soft_errors = tty;      /* on a screen, an unreachable daemon is shown and retried */
        for (long it = 0; !top_quit && (iterations == 0 || it < iterations); it++) {
                strbuf frame = STRBUF_INIT;
                unsigned rows, cols;
                terminal_size(STDOUT_FILENO, &rows, &cols);
                if (!tty)
                        cols = 1000;
                usec_t now = now_monotonic();
                json_t *st = request(json_pack("{s:s}", "op", "status"));
                if (st && json_is_true(json_object_get(st, "ok"))) {
                        json_t *bl = request(json_pack("{s:s, s:i}", "op", "ban.list", "limit", 1));
                        long long bans = -1;
                        char ban_error[200] = "no ban backend";
                        if (bl && json_is_true(json_object_get(bl, "ok")))
                                bans = jint(bl, "total");
                        else if (bl)
                                snprintf(ban_error, sizeof ban_error, "%.190s", jstr(bl, "error"));
                        json_decref(bl);
                        if (arg_output == OUT_JSON) {
                                json_object_set_new(st, "bans", bans >= 0 ? json_integer(bans) : json_null());
                                char *s = json_dumps(st, JSON_COMPACT);
                                strbuf_printf(&frame, "%s\n", s ? s : "null");
                                free(s);
                        } else
                                top_frame(&frame, st, bans, ban_error, prev, &n_prev, (double) (now - last) / USEC_PER_SEC,
                                          last == 0, cols);
                        last = now;
                } else {
                        const char *e = st ? jstr(st, "error") : last_error;
                        if (!tty) {
                                fprintf(stderr, "spillwayctl: %s\n", e);
                                json_decref(st);
                                strbuf_deinit(&frame);
                                ret = st ? EXIT_OP_FAILED : EXIT_UNREACHABLE;
                                break;
                        }
                        strbuf_printf(&frame, "spillwayd unreachable: %.*s\n(retrying every %.1fs)\n", (int) MIN(strlen(e), (size_t) cols), e, delay);
                        last = 0;
                }
                json_decref(st);
                if (tty) {
                        char clock[64];
                        time_t t = time(NULL);
                        strftime(clock, sizeof clock, "%H:%M:%S", localtime(&t));
                        fputs("\033[H\033[2J", stdout);
                        fwrite(frame.data, 1, frame.len, stdout);
                        printf("\n%s  every %.1fs; q: quit, any other key: refresh", clock, delay);
                } else {
                        fwrite(frame.data, 1, frame.len, stdout);
                        if (arg_output == OUT_HUMAN)
                                putchar('\n');
                }
                fflush(stdout);
                strbuf_deinit(&frame);
                if (iterations && it + 1 >= iterations)
                        break;
                /* wait for the delay, or a key */
                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                usec_t until = now_monotonic() + (usec_t) (delay * USEC_PER_SEC);
                while (!top_quit) {
                        usec_t left = until - now_monotonic();
                        if (left <= 0)
                                break;
                        int r = poll(&p, top_raw ? 1 : 0, (int) (left / USEC_PER_MSEC) + 1);
                        if (r > 0 && top_raw) {
                                char key;
                                if (read(STDIN_FILENO, &key, 1) == 1 && (key == 'q' || key == 'Q'))
                                        top_quit = 1;
                                break;
                        }
                        if (r == 0)
                                break;
                }
        }
        if (tty)
                fputs("\033[?25h\n", stdout);   /* the cursor back, below the last frame */
        fflush(stdout);
        top_restore();
        return ret;
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
                bool range = !strcmp(what + 8, "range");
                json_t *bl = request(json_pack("{s:s, s:i}", "op", "ban.list", "limit", 1000));
                json_array_foreach(json_object_get(bl, "rows"), i, v) {
                        const char *t = jstr(v, "iptext");
                        if (*t && (strchr(t, '/') != NULL) == range)
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
        { "ban", "add", NULL, ban_add_options, "ip|range TARGET DURATION REASON...", "ip range", ban_add },
        { "ban", "del", "delete", no_opts, "ip|range TARGET", "ip range|@targets", ban_del },
        { "ban", "flush", NULL, no_opts, NULL, NULL, ban_flush },
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
               "  ban list [--at TIME] [--ip IP] [--range CIDR] [--reason S] [--country CC]\n"
               "           [--as S] [--limit N | --all] [--backend NAME]\n"
               "  ban add ip|range TARGET DURATION REASON... [--remediation ban|slow|captcha]\n"
               "          [--backend NAME]\n"
               "  ban del ip|range TARGET\n"
               "  ban flush\n"
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
