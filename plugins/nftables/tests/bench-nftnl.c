/* SPDX-License-Identifier: MIT */
/*
 * bench-nftnl: the ceiling the nftables backend's choice of library is
 * measured against. The same elements bench-nftables writes (10.x.y.z,
 * timeout 1 h, --batch per transaction) into the same kind of set, but as
 * netlink messages built with libmnl + libnftnl: no parser, no memory of
 * elements, no formatting. Root only (it runs in a network namespace of its
 * own, the set created there by `nft`); otherwise exit 77.
 *
 * Output: "nftnl: N elements/s (E elements, batch B, T s wall)"
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/common.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

static double now(void) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

static int write_batch(struct mnl_socket *nl, char *buf, size_t size, uint32_t *seq, unsigned first, unsigned count) {
        struct nftnl_set *s = nftnl_set_alloc();
        struct mnl_nlmsg_batch *b;
        struct nlmsghdr *nlh;
        char rbuf[MNL_SOCKET_BUFFER_SIZE];
        uint32_t portid = mnl_socket_get_portid(nl), elem_seq;
        int r;

        nftnl_set_set_str(s, NFTNL_SET_TABLE, "spillway");
        nftnl_set_set_str(s, NFTNL_SET_NAME, "addr4");
        for (unsigned i = first; i < first + count; i++) {
                struct nftnl_set_elem *e = nftnl_set_elem_alloc();
                uint32_t a = htonl(0x0a000000u | i);
                nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, &a, sizeof a);
                nftnl_set_elem_set_u64(e, NFTNL_SET_ELEM_TIMEOUT, 3600 * 1000);
                nftnl_set_elem_add(s, e);
        }
        b = mnl_nlmsg_batch_start(buf, size);
        nftnl_batch_begin(mnl_nlmsg_batch_current(b), (*seq)++);
        mnl_nlmsg_batch_next(b);
        elem_seq = *seq;
        nlh = nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(b), NFT_MSG_NEWSETELEM, NFPROTO_INET,
                                    NLM_F_CREATE | NLM_F_ACK, (*seq)++);
        nftnl_set_elems_nlmsg_build_payload(nlh, s);
        mnl_nlmsg_batch_next(b);
        nftnl_batch_end(mnl_nlmsg_batch_current(b), (*seq)++);
        mnl_nlmsg_batch_next(b);
        r = mnl_socket_sendto(nl, mnl_nlmsg_batch_head(b), mnl_nlmsg_batch_size(b)) < 0 ? -errno : 0;
        mnl_nlmsg_batch_stop(b);
        nftnl_set_free(s);
        if (r < 0)
                return r;
        for (;;) {
                ssize_t n = mnl_socket_recvfrom(nl, rbuf, sizeof rbuf);
                if (n < 0)
                        return -errno;
                r = mnl_cb_run(rbuf, (size_t) n, elem_seq, portid, NULL, NULL);
                if (r <= 0)
                        return r < 0 ? -errno : 0;
        }
}

int main(int argc, char **argv) {
        unsigned elements = 100000, batch = 1000;
        const char *nft = "/usr/sbin/nft";
        static const struct option opts[] = {
                { "elements", required_argument, NULL, 'n' },
                { "batch", required_argument, NULL, 'b' },
                { "nft", required_argument, NULL, 'N' },
                { NULL, 0, NULL, 0 },
        };
        char cmd[512], *buf;
        struct mnl_socket *nl;
        uint32_t seq = (uint32_t) time(NULL);
        double t0, t;
        int c;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'n': elements = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'b': batch = (unsigned) strtoul(optarg, NULL, 10); break;
                case 'N': nft = optarg; break;
                default:
                        fprintf(stderr, "usage: %s [--elements N] [--batch N] [--nft PATH]\n", argv[0]);
                        return 2;
                }
        }
        if (!elements || !batch || elements > 0xffffff) {
                fprintf(stderr, "%s: --elements 1..16777215, --batch >= 1\n", argv[0]);
                return 2;
        }
        if (geteuid() != 0 || access(nft, X_OK) < 0 || unshare(CLONE_NEWNET) < 0) {
                printf("SKIP: needs root, %s and a network namespace of its own\n", nft);
                return 77;
        }
        snprintf(cmd, sizeof cmd, "%s 'add table inet spillway; add set inet spillway addr4 { type ipv4_addr; flags timeout; }'", nft);
        if (system(cmd) != 0) {
                fprintf(stderr, "%s: creating the set failed\n", argv[0]);
                return 1;
        }
        nl = mnl_socket_open(NETLINK_NETFILTER);
        if (!nl || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
                perror("netlink");
                return 1;
        }
        buf = malloc(64u * batch + 4096);
        if (!buf)
                return 1;
        t0 = now();
        for (unsigned first = 0; first < elements; first += batch) {
                int r = write_batch(nl, buf, 64u * batch + 4096, &seq, first, first + batch <= elements ? batch : elements - first);
                if (r < 0) {
                        fprintf(stderr, "%s: transaction failed: %s\n", argv[0], strerror(-r));
                        return 1;
                }
        }
        t = now() - t0;
        printf("nftnl: %.0f elements/s (%u elements, batch %u, %.3f s wall)\n", elements / t, elements, batch, t);
        mnl_socket_close(nl);
        free(buf);
        return 0;
}
