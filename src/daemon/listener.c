/* SPDX-License-Identifier: MIT */
/*
 * The listening sockets: taken by name from systemd (socket activation,
 * FileDescriptorName=ingest|admin) or opened on the configured paths, and
 * accepting connections (handed to conn.c) within max_connections.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "conn.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"
#include "ratelimit.h"
#include "strbuf.h"
#include "strutil.h"

/* Out of file descriptors (EMFILE, ENFILE) or kernel memory: the pending
 * connection stays in the backlog and the listener stays readable, so trying
 * again at once would spin (and flood the journal). Stop watching that
 * listener for a moment; its connections wait in the backlog meanwhile. */
#define ACCEPT_PAUSE (100 * USEC_PER_MSEC)

static int on_accept_resume(sd_event_source *s, uint64_t usec, void *userdata) {
        listener *l = userdata;
        if (l->source) /* NULL once the listeners are closed */
                sd_event_source_set_enabled(l->source, SD_EVENT_ON);
        return 0;
}

static void pause_accepting(listener *l, int err) {
        static ratelimit rl = RATELIMIT_INIT(10 * USEC_PER_SEC, 1);
        uint64_t suppressed = 0;

        if (ratelimit_below(&rl, &suppressed))
                log_warning_errno(err, "accept on the %s socket failed: %m; pausing accepts for %lld ms with %u connections open "
                                  "(raise LimitNOFILE= or lower max_connections)%s",
                                  l->kind == LISTENER_ADMIN ? "admin" : "ingest", (long long) (ACCEPT_PAUSE / USEC_PER_MSEC),
                                  l->d->n_conns, suppressed ? "; it happened again since the last warning" : "");
        sd_event_source_set_enabled(l->source, SD_EVENT_OFF);
        if (sd_event_add_time_relative(l->d->event, NULL, CLOCK_MONOTONIC, ACCEPT_PAUSE, 0, on_accept_resume, l) < 0)
                sd_event_source_set_enabled(l->source, SD_EVENT_ON);
}

/* Room on the admin socket kept for root whatever else is connected. */
#define ADMIN_ROOT_RESERVE 4u

/* Why a new connection is refused, or NULL. Each socket has its own limit,
 * so producers cannot take the operator's room; root keeps a few admin
 * slots beyond max_admin_connections; one uid cannot take the whole
 * ingest socket. */
static const char *accept_refusal(listener *l, const struct ucred *peer) {
        static char why[200];
        daemon_t *d = l->d;
        const spw_config *c = engine_config(d->engine);
        unsigned n = d->n_conns_kind[l->kind];

        if (l->kind == LISTENER_ADMIN) {
                unsigned max = c->max_admin_connections + (peer->uid == 0 ? ADMIN_ROOT_RESERVE : 0);
                if (n >= max) {
                        snprintf(why, sizeof why, "too many connections on the admin socket (%u open, max_admin_connections %u); "
                                 "try again later", n, c->max_admin_connections);
                        return why;
                }
                return NULL;
        }
        if (n >= c->max_connections) {
                snprintf(why, sizeof why, "too many connections on the ingest socket (%u open, max_connections %u); try again later",
                         n, c->max_connections);
                return why;
        }
        unsigned mine = conn_count_uid(d, LISTENER_INGEST, peer->uid);
        if (mine >= c->max_connections_per_uid) {
                snprintf(why, sizeof why, "too many connections from uid %u on the ingest socket (%u open, "
                         "max_connections_per_uid %u); try again later", (unsigned) peer->uid, mine, c->max_connections_per_uid);
                return why;
        }
        return NULL;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        listener *l = userdata;
        daemon_t *d = l->d;
        int cfd;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                        pause_accepting(l, errno);
                else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(errno, "accept on the %s socket failed: %m", l->kind == LISTENER_ADMIN ? "admin" : "ingest");
                return 0;
        }
        struct ucred peer;
        socklen_t len = sizeof peer;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0)
                peer = (struct ucred) { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        const char *why = accept_refusal(l, &peer);
        if (why) {
                strbuf msg = STRBUF_INIT;
                /* "refused": a client can tell "no room" from an operation
                 * that failed (spillwayctl exits 3, unreachable) */
                strbuf_puts(&msg, "{\"ok\":false,\"refused\":\"connection limit\",\"error\":");
                strbuf_json_string(&msg, why);
                strbuf_puts(&msg, "}\n");
                if (!msg.oom) {
                        ssize_t k = write(cfd, msg.data, msg.len);
                        (void) k;
                }
                strbuf_deinit(&msg);
                close(cfd);
                d->stats.refused_connections++;
                if (conn_warning_allowed())
                        log_warning("refused a connection on the %s socket from pid %d (uid %u): %s",
                                    l->kind == LISTENER_ADMIN ? "admin" : "ingest", (int) peer.pid, (unsigned) peer.uid, why);
                return 0;
        }
        if (conn_new(d, cfd, l->kind, &peer) < 0)
                close(cfd);
        return 0;
}

/* ------------------------------------------------------------ opening and closing */

static int make_listener(const char *path, mode_t mode, int *ret, spw_error *err) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        char dir[sizeof sa.sun_path];
        char *slash;

        if (strlen(path) >= sizeof sa.sun_path)
                return spw_error_set(err, -ENAMETOOLONG, "socket path %s is longer than %zu bytes", path, sizeof sa.sun_path - 1);
        strcpy(sa.sun_path, path);
        snprintf(dir, sizeof dir, "%s", path);
        if ((slash = strrchr(dir, '/')) && slash != dir) {
                *slash = 0;
                if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                        int r = negative_errno();
                        return spw_error_set(err, r, "cannot create the socket directory %s: %s", dir, strerror(-r));
                }
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return spw_error_set(err, negative_errno(), "socket(): %s", strerror(errno));

        /* a stale socket from a previous run: remove it only if nobody answers */
        struct stat st;
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return spw_error_set(err, -EEXIST, "%s exists and is not a socket: remove it or choose another path", path);
                int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof sa) == 0) {
                        close(probe);
                        return spw_error_set(err, -EADDRINUSE, "%s is in use by another running spillwayd", path);
                }
                if (probe >= 0)
                        close(probe);
                unlink(path);
        }
        mode_t old = umask(0777 & ~mode);
        int k = bind(fd, (struct sockaddr *) &sa, sizeof sa);
        umask(old);
        if (k < 0) {
                int r = negative_errno();
                return spw_error_set(err, r, "cannot bind %s: %s", path, strerror(-r));
        }
        if (chmod(path, mode) < 0 || listen(fd, SOMAXCONN) < 0) {
                int r = negative_errno();
                unlink(path);
                return spw_error_set(err, r, "cannot listen on %s: %s", path, strerror(-r));
        }
        *ret = TAKE_FD(fd);
        return 0;
}

int listener_open_all(daemon_t *d, spw_error *err) {
        const spw_config *c = engine_config(d->engine);
        char **names = NULL;
        int n = sd_listen_fds_with_names(1, &names);
        int r = 0;

        d->n_listeners = 0;
        if (n < 0)
                return spw_error_set(err, n, "socket activation: %s", strerror(-n));
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i;
                const char *name = names && names[i] ? names[i] : "unknown";
                listener_kind kind;
                if (streq(name, "http")) {
                        /* served by http.c (TCP or unix, checked there) */
                        if (d->n_http_fds >= ELEMENTSOF(d->http_fds)) {
                                r = spw_error_set(err, -EINVAL, "socket activation: more than %zu 'http' sockets", ELEMENTSOF(d->http_fds));
                                break;
                        }
                        fcntl(fd, F_SETFD, FD_CLOEXEC);
                        d->http_fds[d->n_http_fds++] = fd;
                        continue;
                }
                if (streq(name, "ingest"))
                        kind = LISTENER_INGEST;
                else if (streq(name, "admin"))
                        kind = LISTENER_ADMIN;
                else if (n == 1 || (i == 0 && streq(name, "unknown")))
                        kind = LISTENER_INGEST; /* a single unnamed socket: ingest */
                else {
                        r = spw_error_set(err, -EINVAL, "socket activation: fd %d has name '%s'; expected FileDescriptorName=ingest, admin or http",
                                          fd, name);
                        break;
                }
                if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
                        r = spw_error_set(err, -EINVAL, "socket activation: fd %d (%s) is not a listening unix stream socket", fd, name);
                        break;
                }
                fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
                fcntl(fd, F_SETFD, FD_CLOEXEC);
                bool dup = false;
                for (size_t k = 0; k < d->n_listeners; k++)
                        dup |= d->listeners[k].kind == kind;
                if (dup || d->n_listeners >= ELEMENTSOF(d->listeners)) {
                        r = spw_error_set(err, -EINVAL, "socket activation: more than one '%s' socket", name);
                        break;
                }
                d->listeners[d->n_listeners++] = (listener) { .d = d, .kind = kind, .fd = fd, .activated = true };
        }
        if (names) {
                for (int i = 0; i < n; i++)
                        free(names[i]);
                free(names);
        }
        if (r < 0)
                return r;

        /* whatever systemd did not pass, we open on the configured paths */
        for (listener_kind kind = LISTENER_INGEST; kind <= LISTENER_ADMIN; kind++) {
                bool have = false;
                for (size_t k = 0; k < d->n_listeners; k++)
                        have |= d->listeners[k].kind == kind;
                if (have || n > 0)
                        continue; /* under socket activation, only what systemd passed */
                const char *path = kind == LISTENER_ADMIN ? c->admin_socket : c->ingest_socket;
                int fd;
                r = make_listener(path, kind == LISTENER_ADMIN ? 0600 : 0660, &fd, err);
                if (r < 0)
                        return r;
                d->listeners[d->n_listeners++] = (listener) { .d = d, .kind = kind, .fd = fd, .path = strdup(path) };
        }
        for (size_t k = 0; k < d->n_listeners; k++) {
                listener *l = &d->listeners[k];
                r = sd_event_add_io(d->event, &l->source, l->fd, EPOLLIN, on_accept, l);
                if (r < 0)
                        return spw_error_set(err, r, "event loop: %s", strerror(-r));
        }
        return 0;
}

void listener_close_all(daemon_t *d) {
        for (size_t k = 0; k < d->n_listeners; k++) {
                listener *l = &d->listeners[k];
                l->source = sd_event_source_disable_unref(l->source);
                if (l->fd >= 0)
                        close(l->fd);
                l->fd = -1;
                if (l->path) {
                        unlink(l->path);
                        free(l->path);
                        l->path = NULL;
                }
        }
        d->n_listeners = 0;
}
