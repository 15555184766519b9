/* SPDX-License-Identifier: MIT */
/*
 * Connections on the unix sockets and the line protocol.
 *
 * Every connection reads newline-delimited JSON requests and answers each
 * one with exactly one line, in request order, so clients may pipeline.
 * Each line becomes a request (request.h) handed to ingest or adminops;
 * requests that cannot be answered at once (ack "flushed", a full "block"
 * queue, administrative jobs on worker threads, a reload) sit in the
 * connection's FIFO; replies are written as soon as the head of the FIFO is
 * done.
 *
 * Flow control: a connection stops being read while one of its requests is
 * parked on a full queue (that is the "block the producer" policy) and while
 * it has more than OUT_HIGH bytes of unread replies (a client that does not
 * read cannot make us buffer without bound). Nothing here ever blocks: all
 * sockets are non-blocking and the loop serves every other client meanwhile.
 *
 * Bad input never closes a connection: malformed JSON, a wrong field, an
 * oversized line each get an error reply naming the problem, and the next
 * line is read normally.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "adminops.h"
#include "conn.h"
#include "daemon.h"
#include "ingest.h"
#include "jsonscratch.h"
#include "log.h"
#include "ratelimit.h"
#include "strbuf.h"
#include "strutil.h"

#define READ_CHUNK (64 * 1024)
#define READ_ROUNDS 4
#define OUT_HIGH   (4 * 1024 * 1024)
#define OUT_ADOPT  (64 * 1024)  /* a reply this large becomes the output buffer as is */
#define OUT_STREAM (256 * 1024) /* of a streaming reply, at most this much waits here */
#define MAX_PIPELINE 10000      /* requests in flight per connection */
/* One connection's lines are handled for at most this long per turn of
 * the event loop; then the others (the admin socket first of all) get
 * their turn and this one resumes (a deferred event). A signal costs
 * microseconds, but a flood of signals that each route for ~70 ms
 * (ROUTE_MAX_WORK) must not hold the loop for a whole pipeline. */
#define CONN_SLICE (20 * USEC_PER_MSEC)

struct conn {
        daemon_t *d;
        uint64_t id;               /* unique: the park keeps order per connection */
        listener_kind kind;
        int fd;
        sd_event_source *source;
        struct ucred peer;
        strbuf in;
        size_t in_off;             /* bytes of `in` handled; moved out before the next read */
        size_t counted;            /* in_pending() as counted in d->buffered_input */
        size_t scanned;            /* bytes after in_off known to hold no newline */
        bool discarding;           /* skipping the rest of an oversized line */
        strbuf out;
        size_t out_off;            /* bytes of `out` already written */
        request *head, *tail;
        unsigned n_requests;
        bool paused;               /* `parked` holds the line order */
        request *parked;
        bool eof;
        bool oom;                  /* a line could not get a request: close after the replies */
        bool yielded;              /* complete lines left for the next turn (CONN_SLICE) */
        sd_event_source *resume;   /* defer source: the next turn */
        usec_t last_input;         /* monotonic */
        uint64_t lines;
        bool dirty;                /* has replies to flush (in daemon.dirty) */
        conn *dirty_next;
        conn *prev, *next;
};

/* warnings about misbehaving clients: a flood of them must not flood the journal */
static ratelimit client_rl = RATELIMIT_INIT(10 * USEC_PER_SEC, 20);

bool conn_warning_allowed(void) {
        uint64_t suppressed = 0;
        bool ok = ratelimit_below(&client_rl, &suppressed);
        if (ok && suppressed)
                log_warning("%llu warnings about clients suppressed (rate limit)", (unsigned long long) suppressed);
        return ok;
}

static void conn_flush_replies(conn *c);
static void conn_process(conn *c);
static void conn_kick(conn *c, const char *error);

/* The daemon-wide count of buffered input (max_buffered_input). */
/* Input not handled yet. Handled lines are skipped (in_off), not moved
 * out, until the next read: a connection paused on a full queue with 1 MiB
 * read ahead used to move that MiB after every few lines it handled (6 %
 * of the loop's CPU per signal under the bench, issue 17). */
static size_t in_pending(const conn *c) {
        return c->in.len - c->in_off;
}

static void in_clear(conn *c) {
        strbuf_reset(&c->in);
        c->in_off = 0;
        c->scanned = 0;
}

static void conn_input_changed(conn *c, size_t len) {
        c->d->buffered_input = c->d->buffered_input - c->counted + len;
        c->counted = len;
}

/* ------------------------------------------------------------ requests */

/* A request finished after the fact (worker result, unparked, timeout).
 * Its connection is only marked: the caller flushes every marked
 * connection once (conn_flush_dirty), so a flush that completes 1000
 * signals costs one write per connection, not one per reply. */
static void request_done(request *r, void *userdata) {
        conn *c = userdata;
        daemon_t *d = c->d;

        if (r == c->parked) {
                c->parked = NULL;
                c->paused = false;
        }
        if (!c->dirty) {
                c->dirty = true;
                c->dirty_next = d->dirty;
                d->dirty = c;
        }
}

static request *conn_request(conn *c) {
        request *r = request_new(request_done, c, &c->peer, c->id);
        if (!r)
                return NULL;
        if (c->tail)
                c->tail->next = r;
        else
                c->head = r;
        c->tail = r;
        c->n_requests++;
        return r;
}

void conn_flush_dirty(daemon_t *d) {
        while (d->dirty) {
                conn *c = d->dirty;
                d->dirty = c->dirty_next;
                c->dirty = false;
                c->dirty_next = NULL;
                conn_flush_replies(c); /* may free c */
        }
}

/* ------------------------------------------------------------ one line */

static void handle_line(conn *c, const char *line, size_t len) {
        daemon_t *d = c->d;
        json_error_t jerr;
        json_t *obj;
        request *r = conn_request(c);

        if (!r) {
                /* no request, no reply: rather than leave the line
                 * unanswered, say so and close (conn_process) */
                log_error("out of memory handling a request from pid %d; disconnecting it", (int) c->peer.pid);
                c->oom = true;
                return;
        }
        c->lines++;
        if (len == 0 || (len == 1 && line[0] == '\r')) {
                d->stats.rejected++;
                request_error(r, "empty line: expected a JSON object");
                return;
        }
        /* a signal's tree lives until the end of this function: in
         * scratch memory, dropped at once (jsonscratch.h) */
        bool scratch = false;
        obj = c->kind == LISTENER_INGEST ? json_scratch_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr, &scratch)
                                         : json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj) {
                json_scratch_drop(NULL, scratch);
                d->stats.rejected++;
                request_error(r, "invalid JSON at line %llu, column %d: %s", (unsigned long long) c->lines, jerr.column, jerr.text);
                return;
        }
        if (!json_is_object(obj)) {
                d->stats.rejected++;
                json_scratch_drop(obj, scratch);
                request_error(r, "expected a JSON object (a signal, or {\"signal\": {...}, \"ack\": \"flushed\"})");
                return;
        }

        json_t *op = json_object_get(obj, "op");
        if (op) {
                if (!json_is_string(op))
                        request_error(r, "op: expected a string");
                else if (c->kind != LISTENER_ADMIN)
                        request_error(r, "op '%s' is only served on the admin socket; the ingest socket takes signals",
                                      json_string_value(op));
                else
                        adminops_handle(d, r, obj, json_string_value(op));
        } else
                ingest_handle(d, r, obj, line, len);
        if (r->state == REQ_PARKED) {
                /* "block the producer": read nothing more from this client
                 * until the signal has room (or its block_timeout passed) */
                c->paused = true;
                c->parked = r;
        }
        json_scratch_drop(obj, scratch);
}

/* ------------------------------------------------------------ connections */

static size_t conn_out_pending(const conn *c) {
        return c->out.len - c->out_off;
}

static void conn_update_events(conn *c) {
        uint32_t ev = 0;
        if (!c->paused && !c->yielded && !c->eof && !c->d->stopping && conn_out_pending(c) < OUT_HIGH && c->n_requests < MAX_PIPELINE)
                ev |= EPOLLIN;
        /* a streaming reply with more to take: woken when the socket has
         * room, even if everything taken so far went out already */
        if (conn_out_pending(c) > 0 || (c->head && c->head->stream.len > 0))
                ev |= EPOLLOUT;
        sd_event_source_set_io_events(c->source, ev);
        sd_event_source_set_enabled(c->source, ev ? SD_EVENT_ON : SD_EVENT_OFF);
}

/* Write what the socket takes. Written bytes are skipped with out_off, not
 * moved: a 400 MB reply written 200 KB at a time used to be memmove()d
 * once per write. The rest moves to the front only when no larger than
 * what was written (amortised linear). */
static int conn_write(conn *c) {
        while (conn_out_pending(c) > 0) {
                ssize_t n = write(c->fd, c->out.data + c->out_off, conn_out_pending(c));
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                break;
                        return -errno;
                }
                c->out_off += (size_t) n;
        }
        if (c->out_off == c->out.len) {
                if (c->out.cap > 2 * OUT_HIGH)
                        strbuf_deinit(&c->out); /* give a huge reply's memory back */
                c->out.len = 0;
                c->out_off = 0;
        } else if (c->out_off >= OUT_ADOPT && c->out_off >= conn_out_pending(c)) {
                memmove(c->out.data, c->out.data + c->out_off, conn_out_pending(c));
                c->out.len -= c->out_off;
                c->out_off = 0;
        }
        return 0;
}

/* Move the replies that are ready, in request order, to the output buffer.
 * A reply that streams (ban.list) moves while the client keeps up: at most
 * OUT_STREAM bytes wait here, the rest waits in its producer's window. */
static void conn_take_replies(conn *c) {
        while (c->head) {
                request *r = c->head;
                if (r->stream.len > 0 && conn_out_pending(c) < OUT_STREAM)
                        request_stream_take(r, &c->out, OUT_STREAM - conn_out_pending(c));
                if (r->state != REQ_DONE || r->stream.len > 0)
                        break;
                c->last_input = now_monotonic(); /* idle_timeout counts from the last reply too */
                size_t len = r->reply ? (r->reply_len ? r->reply_len : strlen(r->reply)) : 0;
                if (len >= OUT_ADOPT && c->out.len == 0) {
                        /* a large reply (ban.list) becomes the output buffer:
                         * no copy; its NUL slot takes the newline */
                        strbuf_deinit(&c->out);
                        c->out = (strbuf) { .data = TAKE_PTR(r->reply), .len = len + 1, .cap = len + 1 };
                        c->out.data[len] = '\n';
                } else if (r->reply) {
                        strbuf_append(&c->out, r->reply, len);
                        strbuf_putc(&c->out, '\n');
                } else {
                        strbuf_puts(&c->out, "{\"ok\":false,\"error\":\"out of memory\"}");
                        strbuf_putc(&c->out, '\n');
                }
                c->head = r->next;
                if (!c->head)
                        c->tail = NULL;
                c->n_requests--;
                request_free(r);
        }
}

static void conn_flush_replies(conn *c) {
        conn_take_replies(c);
        /* at EOF, done only once every line was read too: lines left for
         * the next turn (yielded) or behind a parked one still get replies */
        if (conn_write(c) < 0 || (c->eof && !c->head && conn_out_pending(c) == 0 && in_pending(c) == 0 && !c->yielded)) {
                conn_free(c);
                return;
        }
        /* unparked: lines that were waiting behind the parked one */
        if (!c->paused && !c->yielded && in_pending(c) > 0 && !c->discarding)
                conn_process(c);
        else
                conn_update_events(c);
}

/* Handle every complete line in the input buffer. */
static int on_conn_resume(sd_event_source *s, void *userdata) {
        conn *c = userdata;
        daemon_t *d = c->d;
        c->yielded = false;
        conn_process(c); /* may free c */
        ingest_wake(d);
        daemon_flush_replies(d);
        return 0;
}

/* Leave the rest of the input for the next turn of the loop. */
static void conn_yield(conn *c) {
        if (!c->resume) {
                if (sd_event_add_defer(c->d->event, &c->resume, on_conn_resume, c) < 0)
                        return; /* cannot defer: go on now rather than stall */
                /* after every other ready event (accepts, the admin socket) */
                (void) sd_event_source_set_priority(c->resume, SD_EVENT_PRIORITY_IDLE);
        }
        c->yielded = true;
        sd_event_source_set_enabled(c->resume, SD_EVENT_ONESHOT);
}

static void conn_process(conn *c) {
        daemon_t *d = c->d;
        size_t max_line = engine_config(d->engine)->max_line;
        size_t start = c->in_off;
        usec_t t0 = now_monotonic();

        while (!c->paused && !c->oom && !d->stopping && c->n_requests < MAX_PIPELINE) {
                char *nl = memchr(c->in.data + start + c->scanned, '\n', c->in.len - start - c->scanned);
                if (!nl) {
                        c->scanned = c->in.len - start;
                        break;
                }
                size_t len = (size_t) (nl - (c->in.data + start));
                c->scanned = 0;
                if (c->discarding) {
                        c->discarding = false;
                } else if (len > max_line) {
                        request *r = conn_request(c);
                        d->stats.oversized++;
                        d->stats.rejected++;
                        if (r)
                                request_error(r, "line %llu is %zu bytes, longer than max_line (%zu): rejected",
                                              (unsigned long long) ++c->lines, len, max_line);
                        else
                                c->oom = true;
                } else
                        handle_line(c, c->in.data + start, len);
                start += len + 1;
                if (c->paused)
                        break;
                if (now_monotonic() - t0 > CONN_SLICE && start < c->in.len) {
                        conn_yield(c);
                        if (c->yielded)
                                break;
                }
        }
        c->in_off = start;
        if (c->in_off == c->in.len)
                in_clear(c);
        if (c->oom) {
                conn_kick(c, "out of memory: a request could not be handled; disconnected");
                return;
        }

        /* a line longer than max_line with no newline yet: answer now and
         * skip the rest of it, so a client cannot make us buffer without bound */
        if (!c->discarding && c->scanned == in_pending(c) && in_pending(c) > max_line) {
                request *r = conn_request(c);
                d->stats.oversized++;
                d->stats.rejected++;
                if (r)
                        request_error(r, "line %llu is longer than max_line (%zu bytes): rejected; skipping to its end",
                                      (unsigned long long) ++c->lines, max_line);
                c->discarding = true;
        }
        if (c->discarding)
                in_clear(c);

        /* the client closed its side after a last line without a newline:
         * that line is complete (end of input ends it) */
        if (c->eof && in_pending(c) > 0 && !c->paused && !c->yielded && !c->discarding && c->n_requests < MAX_PIPELINE &&
            !memchr(c->in.data + c->in_off, '\n', in_pending(c))) {
                handle_line(c, c->in.data + c->in_off, in_pending(c));
                in_clear(c);
        }
        conn_input_changed(c, in_pending(c));

        /* replies that are ready (without recursing into conn_process) */
        conn_take_replies(c);
        if (conn_write(c) < 0 || (c->eof && !c->head && conn_out_pending(c) == 0 && in_pending(c) == 0 && !c->yielded)) {
                conn_free(c);
                return;
        }
        conn_update_events(c);
}

static int conn_read(conn *c) {
        if (c->in_off > 0) {
                strbuf_consume(&c->in, c->in_off);
                c->in_off = 0;
        }
        /* at most READ_ROUNDS chunks ahead: what is read waits in memory
         * while a full queue pauses the connection (16 rounds, 1 MiB per
         * pipelining producer, were ~3 MiB of the bench's peak) */
        for (int rounds = 0; rounds < READ_ROUNDS; rounds++) {
                ssize_t n;
                if (!strbuf_reserve(&c->in, READ_CHUNK))
                        return -ENOMEM;
                n = read(c->fd, c->in.data + c->in.len, READ_CHUNK);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return -errno;
                }
                if (n == 0) {
                        c->eof = true;
                        return 0;
                }
                c->in.len += (size_t) n;
                c->in.data[c->in.len] = 0;
                c->last_input = now_monotonic();
                conn_input_changed(c, c->in.len);
                if (c->in.len > engine_config(c->d->engine)->max_line + READ_CHUNK)
                        break; /* let conn_process deal with the oversized line */
        }
        return 0;
}

/* Disconnect a misbehaving client with one last error line (best effort:
 * it goes after the replies already queued, if the socket takes them). */
static void conn_kick(conn *c, const char *error) {
        strbuf line = STRBUF_INIT;
        conn_take_replies(c);
        strbuf_puts(&line, "{\"ok\":false,\"error\":");
        strbuf_json_string(&line, error);
        strbuf_puts(&line, "}\n");
        if (!line.oom && !c->head) /* not mistaken for the reply to a waiting request */
                strbuf_append(&c->out, line.data, line.len);
        (void) conn_write(c);
        strbuf_deinit(&line);
        conn_free(c);
}

/* Over max_buffered_input: cut the connections holding the most input,
 * largest first, until the total is back under the budget. One client can
 * hold at most max_line + a read; many cannot add up to gigabytes. */
static void conn_shed_input(daemon_t *d) {
        size_t budget = engine_config(d->engine)->max_buffered_input;

        while (d->buffered_input > budget) {
                conn *worst = NULL;
                char msg[300];
                for (conn *c = d->conns; c; c = c->next)
                        if (!worst || c->counted > worst->counted)
                                worst = c;
                if (!worst || worst->counted == 0)
                        break;
                d->stats.shed_input++;
                if (conn_warning_allowed())
                        log_warning("client pid %d (uid %u): %zu bytes of unfinished input while all clients hold %zu "
                                    "(max_buffered_input %zu): disconnecting the largest",
                                    (int) worst->peer.pid, (unsigned) worst->peer.uid, worst->counted, d->buffered_input,
                                    budget);
                snprintf(msg, sizeof msg, "spillwayd holds more unfinished input than max_buffered_input (%zu bytes) and "
                         "this connection held the most (%zu bytes): disconnected; send complete lines", budget, worst->counted);
                conn_kick(worst, msg);
        }
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        conn *c = userdata;
        daemon_t *d = c->d;
        int r;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (revents & EPOLLIN || !(revents & EPOLLOUT)) {
                        r = conn_read(c);
                        if (r < 0) {
                                if (r != -ECONNRESET)
                                        log_debug_errno(r, "client pid %d: read failed: %m", (int) c->peer.pid);
                                conn_free(c);
                                return 0;
                        }
                }
        }
        if (revents & EPOLLOUT) {
                r = conn_write(c);
                if (r < 0) {
                        conn_free(c);
                        return 0;
                }
        }
        conn_process(c); /* may free c */
        conn_shed_input(d);
        ingest_wake(d); /* one wake-up per burst of signals */
        return 0;
}

void conn_free(conn *c) {
        daemon_t *d = c->d;
        request *r = c->head;

        if (c->dirty)
                for (conn **p = &d->dirty; *p; p = &(*p)->dirty_next)
                        if (*p == c) {
                                *p = c->dirty_next;
                                break;
                        }

        /* requests still waiting on workers or queues finish without us */
        while (r) {
                request *n = r->next;
                request_detach(r);
                r = n;
        }
        if (c->prev)
                c->prev->next = c->next;
        else
                d->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        d->n_conns--;
        d->n_conns_kind[c->kind]--;
        conn_input_changed(c, 0);
        sd_event_source_disable_unref(c->source);
        sd_event_source_disable_unref(c->resume);
        close(c->fd);
        strbuf_deinit(&c->in);
        strbuf_deinit(&c->out);
        free(c);
        if (d->n_conns == 0)
                d->idle_since = now_monotonic();
}


int conn_new(daemon_t *d, int fd, listener_kind kind, const struct ucred *peer) {
        conn *c = calloc(1, sizeof *c);
        int r;

        if (!c)
                return -ENOMEM;
        c->d = d;
        c->id = ++d->next_conn_id;
        c->kind = kind;
        c->fd = fd;
        c->last_input = now_monotonic();
        c->peer = *peer;
        r = sd_event_add_io(d->event, &c->source, fd, EPOLLIN, on_conn_io, c);
        if (r < 0) {
                free(c);
                return r;
        }
        c->next = d->conns;
        if (d->conns)
                d->conns->prev = c;
        d->conns = c;
        d->n_conns++;
        d->n_conns_kind[kind]++;
        d->stats.connections_total++;
        d->idle_since = 0;
        return 0;
}

unsigned conn_count_uid(daemon_t *d, listener_kind kind, uid_t uid) {
        unsigned n = 0;
        for (conn *c = d->conns; c; c = c->next)
                n += c->kind == kind && c->peer.uid == uid;
        return n;
}

void conn_free_all(daemon_t *d) {
        while (d->conns)
                conn_free(d->conns);
}

/* A client that sent part of a line and then nothing for client_timeout is
 * disconnected (with an error line), so idle half-lines cannot pin memory. */
void conn_expire_idle(daemon_t *d, usec_t now) {
        usec_t limit = engine_config(d->engine)->client_timeout;
        usec_t idle = engine_config(d->engine)->idle_timeout;
        conn *c = d->conns;
        while (c) {
                conn *next = c->next;
                if (idle > 0 && in_pending(c) == 0 && !c->discarding && !c->head && conn_out_pending(c) == 0 &&
                    now - c->last_input > idle) {
                        char msg[160];
                        d->stats.idle_disconnects++;
                        if (conn_warning_allowed())
                                log_info("client pid %d (uid %u) on the %s socket sent nothing for %lld s (idle_timeout); "
                                         "disconnecting", (int) c->peer.pid, (unsigned) c->peer.uid,
                                         c->kind == LISTENER_ADMIN ? "admin" : "ingest", (long long) (idle / USEC_PER_SEC));
                        snprintf(msg, sizeof msg, "nothing received for %lld s (idle_timeout): disconnected",
                                 (long long) (idle / USEC_PER_SEC));
                        conn_kick(c, msg);
                        c = next;
                        continue;
                }
                if (limit <= 0) {
                        c = next;
                        continue;
                }
                if ((in_pending(c) > 0 || c->discarding) && !c->paused && now - c->last_input > limit) {
                        char line[160];
                        int n = snprintf(line, sizeof line,
                                         "{\"ok\":false,\"error\":\"incomplete line and no data for %lld s (client_timeout): disconnected\"}\n",
                                         (long long) (limit / USEC_PER_SEC));
                        if (conn_warning_allowed())
                                log_warning("client pid %d (uid %u): %zu bytes of an unfinished line and no data for %lld s; disconnecting",
                                            (int) c->peer.pid, (unsigned) c->peer.uid, in_pending(c), (long long) (limit / USEC_PER_SEC));
                        if (!c->head) {
                                ssize_t k = write(c->fd, line, (size_t) n);
                                (void) k;
                        }
                        conn_free(c);
                }
                c = next;
        }
}

void conn_pause_all(daemon_t *d) {
        for (conn *c = d->conns; c; c = c->next)
                conn_update_events(c);
}
