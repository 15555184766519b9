/* SPDX-License-Identifier: MIT */
/*
 * Delivery rate of the webhook plugin, batching off (group_threshold 1) and
 * on (100), into two receivers on loopback: tests/receiver.py (the Python
 * receiver the tests use, which is the bottleneck) and a minimal HTTP/1.1
 * sink in a thread of this process (so the figure is the plugin's own
 * ceiling: JSON building, rendering, libcurl, one keep-alive connection).
 * The plugin is driven as the daemon does it: group_threshold inserts, then
 * flush. Prints numbers; asserts only that every flush succeeded.
 *
 * Usage: bench-webhook PATH/webhook.so [signals-unbatched [signals-batched]]
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "receiver-spawn.h"
#include "testhost.h"
#include "tests.h"

static const struct spw_backend *B;

static double clock_seconds(clockid_t id) {
        struct timespec ts;
        clock_gettime(id, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* ------------------------------------------------ in-process sink */

static int sink_fd = -1;

static void *sink_thread(void *arg) {
        static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        char *buf = malloc(1 << 20);
        size_t cap = 1 << 20;

        CHECK(buf);
        for (;;) {
                int c = accept(sink_fd, NULL, NULL);
                size_t len = 0;
                if (c < 0)
                        break;
                for (;;) {
                        char *end, *cl;
                        size_t head, body;
                        ssize_t k;

                        /* a full request: headers, then Content-Length bytes */
                        end = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL;
                        if (end) {
                                head = (size_t) (end - buf) + 4;
                                buf[head - 1] = 0;
                                cl = strcasestr(buf, "\r\nContent-Length:");
                                body = cl ? strtoul(cl + 17, NULL, 10) : 0;
                                buf[head - 1] = '\n';
                                if (len >= head + body) {
                                        if (write(c, answer, sizeof answer - 1) < 0)
                                                break;
                                        memmove(buf, buf + head + body, len - head - body);
                                        len -= head + body;
                                        continue;
                                }
                                if (head + body > cap) {
                                        cap = head + body;
                                        buf = realloc(buf, cap);
                                        CHECK(buf);
                                }
                        }
                        k = read(c, buf + len, cap - len);
                        if (k <= 0)
                                break;
                        len += (size_t) k;
                }
                close(c);
        }
        free(buf);
        return NULL;
}

static int sink_start(pthread_t *th) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t l = sizeof a;

        sink_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(sink_fd >= 0);
        CHECK(bind(sink_fd, (struct sockaddr *) &a, sizeof a) == 0);
        CHECK(listen(sink_fd, 16) == 0);
        CHECK(getsockname(sink_fd, (struct sockaddr *) &a, &l) == 0);
        CHECK(pthread_create(th, NULL, sink_thread, NULL) == 0);
        return ntohs(a.sin_port);
}

/* ------------------------------------------------------- the run */

static void make_signal(spw_signal *s, spw_kv *labels, char *ip, size_t iplen, unsigned i) {
        memset(s, 0, sizeof *s);
        s->size = sizeof *s;
        s->id = i;
        snprintf(ip, iplen, "198.51.%u.%u", (i / 250) % 250, i % 250 + 1);
        s->scenario = "crowdsecurity/ssh-bf";
        s->bucket_id = "bench";
        s->alert_message = "ssh brute force";
        s->events_count = 6;
        s->start_at = (spw_usec_t) 1590055200 * 1000000;
        s->stop_at = s->start_at + 20000000;
        static spw_source src; /* one signal at a time */
        src = (spw_source) { .size = sizeof src, .ip = ip, .country = "FR", .as_number = "64500" };
        s->source = &src;
        s->source_ip = ip;
        labels[0] = (spw_kv) { "remediation", "true" };
        s->labels = labels;
        s->n_labels = 1;
}

static void run(const char *sink, int port, const char *threshold, unsigned n) {
        char url[128];
        spw_kv cfg[2];
        testhost *t;
        void *self = NULL;
        unsigned thr = (unsigned) atoi(threshold);
        double start, elapsed, cpu_start, cpu;

        snprintf(url, sizeof url, "http://127.0.0.1:%d/bench", port);
        cfg[0] = (spw_kv) { "url", url };
        cfg[1] = (spw_kv) { "group_threshold", threshold };
        t = testhost_new("bench", cfg, 2);
        CHECK_OK(testhost_init(t, B, &self));

        start = clock_seconds(CLOCK_MONOTONIC);
        cpu_start = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
        for (unsigned i = 0; i < n; i++) {
                spw_signal s;
                spw_kv labels[1];
                char ip[64];
                make_signal(&s, labels, ip, sizeof ip, i);
                CHECK_EQ(B->insert(self, &s), 0);
                if ((i + 1) % thr == 0 || i + 1 == n) {
                        int r = B->flush(self);
                        if (r < 0) {
                                fprintf(stderr, "flush: %s\n", testhost_last_error(t));
                                abort();
                        }
                }
        }
        elapsed = clock_seconds(CLOCK_MONOTONIC) - start;
        cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu_start;
        /* CPU time is this process's (plugin, libcurl, and the C sink when
         * used), steadier than wall time on a busy machine */
        printf("webhook delivery into %-12s group_threshold=%-4s %6u signals in %6.3f s: %8.0f signals/s, %6.0f requests/s, %5.1f us CPU/signal\n",
               sink, threshold, n, elapsed, n / elapsed, ((n + thr - 1) / thr) / elapsed, cpu * 1e6 / n);
        fflush(stdout);
        CHECK_STREQ(testhost_status(t, "last_http_status"), "200");
        B->shutdown(self);
        testhost_free(t);
}

int main(int argc, char **argv) {
        const struct spw_backend *(*entry)(void);
        unsigned n1 = argc > 2 ? (unsigned) atoi(argv[2]) : 3000;
        unsigned n100 = argc > 3 ? (unsigned) atoi(argv[3]) : 100000;
        receiver rc;
        pthread_t th;
        void *dl;
        int port;

        if (argc < 2) {
                fprintf(stderr, "usage: %s PATH/webhook.so [signals-unbatched [signals-batched]]\n", argv[0]);
                return 2;
        }
        dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        CHECK(dl);
        entry = (const struct spw_backend *(*)(void)) dlsym(dl, SPW_BACKEND_ENTRY_SYMBOL);
        CHECK(entry);
        B = entry();

        port = sink_start(&th);
        run("C sink", port, "1", n1 * 4);
        run("C sink", port, "100", n100);

        CHECK_OK(receiver_start(&rc, NULL, NULL));
        run("receiver.py", rc.port, "1", n1);
        run("receiver.py", rc.port, "100", n100 / 2);
        receiver_stop(&rc);

        shutdown(sink_fd, SHUT_RDWR);
        close(sink_fd);
        return 0;
}
