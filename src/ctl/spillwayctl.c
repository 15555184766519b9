/* SPDX-License-Identifier: MIT */
/*
 * spillwayctl: the operator's client of spillwayd's admin socket.
 *
 * Each command sends JSON requests (one per line) and formats the replies.
 * Output for humans goes to stdout, errors to stderr; `-o json` prints the
 * daemon's replies as they are, for scripts. Exit codes:
 *   0 success, 1 the daemon refused or failed the operation,
 *   2 usage error, 3 the daemon could not be reached, 4 some signals of a
 *   `send` were rejected.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "build-config.h"
#include "macro.h"
#include "strbuf.h"
#include "timeutil.h"

enum { EXIT_OP_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3, EXIT_PARTIAL = 4 };

typedef enum output { OUT_HUMAN, OUT_JSON, OUT_RAW } output;

static const char *arg_socket;
static output arg_output = OUT_HUMAN;

/* ------------------------------------------------------------ connection */

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
                        fprintf(stderr, "spillwayctl: permission denied on %s: the admin socket is for root "
                                        "(run with sudo, or use --socket)\n", path);
                else
                        fprintf(stderr, "spillwayctl: cannot connect to %s: %s (is spillway.socket or spillwayd running?)\n",
                                path, strerror(-r));
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
                                fprintf(stderr, "spillwayctl: unreadable reply from spillwayd: %s\n", e.text);
                        return o;
                }
                if (!strbuf_reserve(&c->in, 65536))
                        return NULL;
                ssize_t k = read(c->fd, c->in.data + c->in.len, 65536);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        fprintf(stderr, "spillwayctl: spillwayd closed the connection%s%s\n", k < 0 ? ": " : "",
                                k < 0 ? strerror(errno) : "");
                        return NULL;
                }
                c->in.len += (size_t) k;
                c->in.data[c->in.len] = 0;
        }
}

static json_t *request(json_t *req) {
        client c;
        json_t *reply;
        char *line = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        if (!line)
                return NULL;
        if (client_connect(&c, arg_socket) < 0) {
                free(line);
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
                        fprintf(stderr, "spillwayctl: spillwayd refused the connection: %s\n", m ? m : "no room");
                } else
                        fprintf(stderr, "spillwayctl: sending to %s failed: %s\n", arg_socket, strerror(e));
                json_decref(reply);
                free(line);
                client_close(&c);
                exit(EXIT_UNREACHABLE);
        }
        free(line);
        reply = client_read_reply(&c);
        client_close(&c);
        if (!reply)
                exit(EXIT_UNREACHABLE);
        if (json_object_get(reply, "refused")) { /* no room for us: as good as unreachable */
                const char *e = json_string_value(json_object_get(reply, "error"));
                fprintf(stderr, "spillwayctl: spillwayd refused the connection: %s\n", e ? e : "no room");
                exit(EXIT_UNREACHABLE);
        }
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

/* ------------------------------------------------------------ ban */

static const char *jstr(json_t *o, const char *k) {
        const char *s = json_string_value(json_object_get(o, k));
        return s ? s : "";
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

static int ban_list(int argc, char **argv) {
        static const struct option opts[] = {
                { "at", required_argument, NULL, 't' }, { "ip", required_argument, NULL, 'i' },
                { "range", required_argument, NULL, 'r' }, { "reason", required_argument, NULL, 'R' },
                { "country", required_argument, NULL, 'c' }, { "as", required_argument, NULL, 'a' },
                { "limit", required_argument, NULL, 'l' }, { "all", no_argument, NULL, 'A' },
                { "backend", required_argument, NULL, 'b' }, {}
        };
        json_t *req = json_pack("{s:s}", "op", "ban.list");
        long limit = 50;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                switch (c) {
                case 't': json_object_set_new(req, "at", json_string(optarg)); break;
                case 'i': json_object_set_new(req, "ip", json_string(optarg)); break;
                case 'r': json_object_set_new(req, "range", json_string(optarg)); break;
                case 'R': json_object_set_new(req, "reason", json_string(optarg)); break;
                case 'c': json_object_set_new(req, "country", json_string(optarg)); break;
                case 'a': json_object_set_new(req, "as", json_string(optarg)); break;
                case 'b': json_object_set_new(req, "backend", json_string(optarg)); break;
                case 'l': {
                        char *end;
                        limit = strtol(optarg, &end, 10);
                        if (*end || limit <= 0) {
                                fprintf(stderr, "spillwayctl: --limit: expected a positive number, got '%s' (use --all for no limit)\n", optarg);
                                json_decref(req);
                                return EXIT_USAGE;
                        }
                        break;
                }
                case 'A': limit = 0; break;
                default: json_decref(req); return EXIT_USAGE;
                }
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
        json_t *rows = json_object_get(reply, "rows");
        size_t total = (size_t) json_integer_value(json_object_get(reply, "total")), i;
        json_t *row;

        if (arg_output == OUT_JSON) {
                print_json(reply);
        } else if (arg_output == OUT_RAW) {
                printf("source,ip,reason,bans,action,country,as,events_count,expiration\n");
                json_array_foreach(rows, i, row) {
                        char n[32];
                        csv_field(jstr(row, "source"), false);
                        csv_field(jstr(row, "iptext"), false);
                        csv_field(jstr(row, "reason"), false);
                        snprintf(n, sizeof n, "%lld", (long long) json_integer_value(json_object_get(row, "bancount")));
                        csv_field(n, false);
                        csv_field(jstr(row, "action"), false);
                        csv_field(jstr(row, "cn"), false);
                        csv_field(jstr(row, "as"), false);
                        snprintf(n, sizeof n, "%lld", (long long) json_integer_value(json_object_get(row, "events_count")));
                        csv_field(n, false);
                        csv_field(jstr(row, "until"), true);
                }
        } else {
                static const char *const head[] = { "Source", "Ip", "Reason", "Bans", "Action", "Country", "AS", "Events", "Expiration" };
                size_t n = json_array_size(rows);
                char ***cells = calloc(n + 1, sizeof *cells);
                size_t width[9];
                for (int k = 0; k < 9; k++)
                        width[k] = strlen(head[k]);
                json_array_foreach(rows, i, row) {
                        char buf[64];
                        cells[i] = calloc(9, sizeof(char *));
                        cells[i][0] = strdup(jstr(row, "source"));
                        cells[i][1] = strdup(jstr(row, "iptext"));
                        cells[i][2] = strdup(jstr(row, "reason"));
                        snprintf(buf, sizeof buf, "%lld", (long long) json_integer_value(json_object_get(row, "bancount")));
                        cells[i][3] = strdup(buf);
                        cells[i][4] = strdup(jstr(row, "action"));
                        cells[i][5] = strdup(jstr(row, "cn"));
                        if (json_integer_value(json_object_get(row, "as_number")))
                                snprintf(buf, sizeof buf, "%lld %.40s", (long long) json_integer_value(json_object_get(row, "as_number")),
                                         jstr(row, "as"));
                        else
                                snprintf(buf, sizeof buf, "%.50s", jstr(row, "as"));
                        cells[i][6] = strdup(buf);
                        snprintf(buf, sizeof buf, "%lld", (long long) json_integer_value(json_object_get(row, "events_count")));
                        cells[i][7] = strdup(buf);
                        expiration(buf, sizeof buf, jstr(row, "until"));
                        cells[i][8] = strdup(buf);
                        for (int k = 0; k < 9; k++)
                                if (strlen(cells[i][k]) > width[k])
                                        width[k] = strlen(cells[i][k]);
                }
                if (n == 0)
                        printf("No active bans%s.\n", total ? " match" : "");
                else {
                        for (int k = 0; k < 9; k++)
                                printf("%s%-*s", k ? " | " : "", k == 8 ? 0 : (int) width[k], head[k]);
                        putchar('\n');
                        for (int k = 0; k < 9; k++) {
                                printf("%s", k ? "-+-" : "");
                                for (size_t w = 0; w < width[k]; w++)
                                        putchar('-');
                        }
                        putchar('\n');
                        for (size_t r2 = 0; r2 < n; r2++) {
                                for (int k = 0; k < 9; k++)
                                        printf("%s%-*s", k ? " | " : "", k == 8 ? 0 : (int) width[k], cells[r2][k]);
                                putchar('\n');
                        }
                        if (total > n)
                                printf("%zu more bans not shown (use --limit N or --all)\n", total - n);
                        else
                                printf("%zu active ban%s\n", n, n == 1 ? "" : "s");
                }
                for (size_t r2 = 0; r2 < n; r2++) {
                        for (int k = 0; k < 9; k++)
                                free(cells[r2][k]);
                        free(cells[r2]);
                }
                free(cells);
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
                        printf("%lld %s\n", (long long) json_integer_value(json_object_get(reply, "count")), what);
        }
        json_decref(reply);
        return r;
}

static int ban_add(int argc, char **argv) {
        static const struct option opts[] = { { "remediation", required_argument, NULL, 'm' }, { "backend", required_argument, NULL, 'b' },
                                              { "force", no_argument, NULL, 'f' }, {} };
        const char *remediation = "ban", *backend = NULL;
        strbuf reason = STRBUF_INIT;
        bool force = false;
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "+", opts, NULL)) >= 0) {
                if (c == 'm')
                        remediation = optarg;
                else if (c == 'b')
                        backend = optarg;
                else if (c == 'f')
                        force = true;
                else
                        return EXIT_USAGE;
        }
        /* options may also follow the reason words */
        char **words = argv + optind;
        int nw = argc - optind;
        if (nw < 4) {
                fprintf(stderr, "spillwayctl: usage: ban add ip|range TARGET DURATION REASON... [--remediation ban|slow|captcha] [--force]\n");
                return EXIT_USAGE;
        }
        if (ban_scope(words[0]))
                return EXIT_USAGE;
        usec_t d;
        if (parse_duration(words[2], &d) < 0 || d <= 0) {
                fprintf(stderr, "spillwayctl: DURATION: expected a duration like 4h, 90m or 2d, got '%s'\n", words[2]);
                return EXIT_USAGE;
        }
        for (int i = 3; i < nw; i++) {
                if (!strcmp(words[i], "--remediation") && i + 1 < nw) {
                        remediation = words[++i];
                        continue;
                }
                if (!strncmp(words[i], "--remediation=", 14)) {
                        remediation = words[i] + 14;
                        continue;
                }
                if (!strcmp(words[i], "--force")) {
                        force = true;
                        continue;
                }
                strbuf_printf(&reason, "%s%s", reason.len ? " " : "", words[i]);
        }
        json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "op", "ban.add", "scope", words[0], "target", words[1],
                                "duration", words[2], "reason", reason.data ? reason.data : "", "remediation", remediation);
        if (backend)
                json_object_set_new(req, "backend", json_string(backend));
        if (force) /* broader than bans.min_prefix_v4/_v6 */
                json_object_set_new(req, "force", json_true());
        strbuf_deinit(&reason);
        return count_reply(request(req), "backend(s) stored the ban");
}

static int ban_del(int argc, char **argv) {
        if (argc != 3) {
                fprintf(stderr, "spillwayctl: usage: ban del ip|range TARGET\n");
                return EXIT_USAGE;
        }
        if (ban_scope(argv[1]))
                return EXIT_USAGE;
        return count_reply(request(json_pack("{s:s, s:s, s:s}", "op", "ban.delete", "scope", argv[1], "target", argv[2])),
                           "ban(s) deleted");
}

static int ban_flush(int argc, char **argv) {
        if (argc != 1) {
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

/* Pipeline the lines of `in` to the daemon, reading replies as they come. */
static int send_lines(FILE *in, const char *name, const char *ack, json_t *(*wrap)(json_t *, void *), void *userdata,
                      void (*on_reply)(size_t lineno, json_t *reply, void *), void *reply_data, size_t *n_sent, size_t *n_failed) {
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
                                        fprintf(stderr, "%s:%zu: invalid JSON at column %d: %s\n", name, lineno, e.column, e.text);
                                        (*n_failed)++;
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
                struct pollfd p = { .fd = c.fd, .events = POLLIN | (out.len ? POLLOUT : 0) };
                if (poll(&p, 1, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
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
                                        if (!on_reply)
                                                fprintf(stderr, "%s:%zu: %s\n", name, ln, reply ? jstr(reply, "error") : "unreadable reply");
                                } else
                                        (*n_sent)++;
                                if (on_reply && reply)
                                        on_reply(ln, reply, reply_data);
                                json_decref(reply);
                        }
                }
        }
        free(line);
        free(linenos);
        strbuf_deinit(&out);
        client_close(&c);
        return n_replies < n_lines ? EXIT_UNREACHABLE : 0;
}

static int cmd_send(int argc, char **argv) {
        static const struct option opts[] = { { "ack", required_argument, NULL, 'a' }, { "ingest", no_argument, NULL, 'i' }, {} };
        const char *ack = NULL;
        int c;
        size_t sent = 0, failed = 0;

        optind = 1;
        while ((c = getopt_long(argc, argv, "", opts, NULL)) >= 0) {
                if (c == 'a') {
                        if (strcmp(optarg, "queued") && strcmp(optarg, "flushed")) {
                                fprintf(stderr, "spillwayctl: --ack: expected queued or flushed\n");
                                return EXIT_USAGE;
                        }
                        ack = optarg;
                } else if (c == 'i') {
                        arg_socket = getenv("SPILLWAY_INGEST_SOCKET") ? getenv("SPILLWAY_INGEST_SOCKET") : SPW_RUNDIR "/ingest.sock";
                } else
                        return EXIT_USAGE;
        }
        if (argc - optind > 1) {
                fprintf(stderr, "spillwayctl: usage: send [FILE|-] [--ack queued|flushed]\n");
                return EXIT_USAGE;
        }
        const char *path = optind < argc ? argv[optind] : "-";
        FILE *in = open_input(path);
        if (!in)
                return EXIT_USAGE;
        int r = send_lines(in, strcmp(path, "-") ? path : "stdin", ack, NULL, NULL, NULL, NULL, &sent, &failed);
        if (in != stdin)
                fclose(in);
        if (arg_output == OUT_JSON)
                printf("{\"sent\":%zu,\"failed\":%zu}\n", sent, failed);
        else
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
                printf("  profile %s (line %lld) ->", jstr(v, "profile"), (long long) json_integer_value(json_object_get(v, "line")));
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

static int cmd_route(int argc, char **argv) {
        size_t ok = 0, failed = 0;
        if (argc < 2 || strcmp(argv[1], "test") || argc > 3) {
                fprintf(stderr, "spillwayctl: usage: route test [FILE|-]\n");
                return EXIT_USAGE;
        }
        const char *path = argc == 3 ? argv[2] : "-";
        FILE *in = open_input(path);
        if (!in)
                return EXIT_USAGE;
        int r = send_lines(in, strcmp(path, "-") ? path : "stdin", NULL, wrap_route, NULL, print_route, NULL, &ok, &failed);
        if (in != stdin)
                fclose(in);
        return r ? r : failed ? EXIT_OP_FAILED : 0;
}

/* ------------------------------------------------------------ status, metrics, reload, config */

static int cmd_status(int argc, char **argv) {
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
        json_t *sig = json_object_get(reply, "signals");
        printf("spillwayd %s, pid %lld, %s, up %llds, %lld connections\n", jstr(reply, "version"),
               (long long) json_integer_value(json_object_get(reply, "pid")), jstr(reply, "state"),
               (long long) json_integer_value(json_object_get(reply, "uptime_s")),
               (long long) json_integer_value(json_object_get(reply, "connections")));
        printf("signals: %lld accepted, %lld rejected, %lld flushed acks, %lld failed acks, %lld block timeouts\n",
               (long long) json_integer_value(json_object_get(sig, "accepted")),
               (long long) json_integer_value(json_object_get(sig, "rejected")),
               (long long) json_integer_value(json_object_get(sig, "flushed_acks")),
               (long long) json_integer_value(json_object_get(sig, "failed_acks")),
               (long long) json_integer_value(json_object_get(sig, "blocked_timeouts")));
        if (json_object_get(reply, "reload_error"))
                printf("last reload FAILED: %s\n", jstr(reply, "reload_error"));
        printf("\n%-16s %-10s %-9s %15s %9s %9s %9s %9s %9s  %s\n", "BACKEND", "PLUGIN", "STATE", "QUEUE", "INSERTED",
               "FAILED", "RETRIED", "DROPPED", "FLUSHES", "LAST ERROR");
        json_array_foreach(json_object_get(reply, "backends"), i, b) {
                json_t *q = json_object_get(b, "queue");
                char queue[48];
                if (q)
                        snprintf(queue, sizeof queue, "%lld/%lld", (long long) json_integer_value(json_object_get(q, "depth")),
                                 (long long) json_integer_value(json_object_get(q, "capacity")));
                else
                        snprintf(queue, sizeof queue, "-");
                printf("%-16s %-10s %-9s %15s %9lld %9lld %9lld %9lld %9lld  %s\n", jstr(b, "name"), jstr(b, "plugin"),
                       jstr(b, "state"), queue, (long long) json_integer_value(json_object_get(b, "inserted")),
                       (long long) json_integer_value(json_object_get(b, "failed")),
                       (long long) json_integer_value(json_object_get(b, "retried")),
                       (long long) json_integer_value(json_object_get(b, "dropped")),
                       (long long) json_integer_value(json_object_get(b, "flushes")),
                       *jstr(b, "error") ? jstr(b, "error") : jstr(b, "last_error"));
                const char *k;
                json_t *v;
                json_object_foreach(json_object_get(b, "plugin_status"), k, v)
                        printf("%-16s   %s: %s\n", "", k, json_string_value(v));
        }
        json_decref(reply);
        return 0;
}

static int cmd_metrics(int argc, char **argv) {
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

static int cmd_reload(int argc, char **argv) {
        json_t *reply = request(json_pack("{s:s}", "op", "reload"));
        int r = check_reply(reply);
        if (!r && arg_output == OUT_JSON)
                print_json(reply);
        else if (!r)
                printf("reloaded: %lld backends\n", (long long) json_integer_value(json_object_get(reply, "backends")));
        json_decref(reply);
        return r;
}

static int cmd_config(int argc, char **argv) {
        if (argc != 2 || strcmp(argv[1], "check")) {
                fprintf(stderr, "spillwayctl: usage: config check\n");
                return EXIT_USAGE;
        }
        json_t *reply = request(json_pack("{s:s}", "op", "config.check"));
        int r = check_reply(reply);
        if (arg_output == OUT_JSON)
                print_json(reply);
        else if (!r)
                printf("%s: configuration OK (%lld backends)\n", jstr(reply, "config"),
                       (long long) json_integer_value(json_object_get(reply, "backends")));
        json_decref(reply);
        return r;
}

/* ------------------------------------------------------------ main */

static void help(void) {
        printf("Usage: spillwayctl [OPTIONS] COMMAND ...\n"
               "Control spillwayd through its admin socket.\n\n"
               "Commands:\n"
               "  ban list [--at TIME] [--ip IP] [--range CIDR] [--reason S] [--country CC]\n"
               "           [--as S] [--limit N | --all] [--backend NAME]\n"
               "  ban add ip|range TARGET DURATION REASON... [--remediation ban|slow|captcha] [--force]\n"
               "  ban del ip|range TARGET\n"
               "  ban flush\n"
               "  send [FILE|-] [--ack queued|flushed] [--ingest]\n"
               "  route test [FILE|-]\n"
               "  status\n"
               "  metrics\n"
               "  reload\n"
               "  config check\n\n"
               "Options:\n"
               "  -s, --socket=PATH   admin socket (default $SPILLWAY_ADMIN_SOCKET or %s/admin.sock)\n"
               "  -o, --output=FORMAT human, json or raw (CSV for ban list)\n"
               "  -h, --help          show this help\n"
               "      --version       show the version\n\n"
               "Exit status: 0 ok, 1 operation failed, 2 usage error, 3 spillwayd unreachable,\n"
               "4 some signals of a send were rejected. See spillwayctl(1).\n",
               SPW_RUNDIR);
}

int main(int argc, char **argv) {
        static const struct option opts[] = {
                { "socket", required_argument, NULL, 's' }, { "output", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' }, { "version", no_argument, NULL, 'V' }, {}
        };
        int c;

        signal(SIGPIPE, SIG_IGN); /* a closed socket is an error to report, not a reason to die */
        arg_socket = getenv("SPILLWAY_ADMIN_SOCKET") ? getenv("SPILLWAY_ADMIN_SOCKET") : SPW_RUNDIR "/admin.sock";
        while ((c = getopt_long(argc, argv, "+s:o:h", opts, NULL)) >= 0) {
                switch (c) {
                case 's': arg_socket = optarg; break;
                case 'o':
                        if (!strcmp(optarg, "human"))
                                arg_output = OUT_HUMAN;
                        else if (!strcmp(optarg, "json"))
                                arg_output = OUT_JSON;
                        else if (!strcmp(optarg, "raw"))
                                arg_output = OUT_RAW;
                        else {
                                fprintf(stderr, "spillwayctl: --output: expected human, json or raw, got '%s'\n", optarg);
                                return EXIT_USAGE;
                        }
                        break;
                case 'h': help(); return 0;
                case 'V': printf("spillwayctl %s\n", SPW_VERSION); return 0;
                default: return EXIT_USAGE;
                }
        }
        argc -= optind;
        argv += optind;
        if (argc < 1) {
                help();
                return EXIT_USAGE;
        }
        const char *cmd = argv[0];
        if (!strcmp(cmd, "ban")) {
                if (argc < 2) {
                        fprintf(stderr, "spillwayctl: ban: expected list, add, del or flush\n");
                        return EXIT_USAGE;
                }
                if (!strcmp(argv[1], "list"))
                        return ban_list(argc - 1, argv + 1);
                if (!strcmp(argv[1], "add"))
                        return ban_add(argc - 1, argv + 1);
                if (!strcmp(argv[1], "del") || !strcmp(argv[1], "delete"))
                        return ban_del(argc - 1, argv + 1);
                if (!strcmp(argv[1], "flush"))
                        return ban_flush(argc - 1, argv + 1);
                fprintf(stderr, "spillwayctl: ban: unknown subcommand '%s' (list, add, del, flush)\n", argv[1]);
                return EXIT_USAGE;
        }
        if (!strcmp(cmd, "send"))
                return cmd_send(argc, argv);
        if (!strcmp(cmd, "route"))
                return cmd_route(argc, argv);
        if (!strcmp(cmd, "status"))
                return cmd_status(argc, argv);
        if (!strcmp(cmd, "metrics"))
                return cmd_metrics(argc, argv);
        if (!strcmp(cmd, "reload"))
                return cmd_reload(argc, argv);
        if (!strcmp(cmd, "config"))
                return cmd_config(argc, argv);
        fprintf(stderr, "spillwayctl: unknown command '%s' (see --help)\n", cmd);
        return EXIT_USAGE;
}
