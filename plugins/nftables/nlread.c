/* SPDX-License-Identifier: MIT */
/*
 * Cheap reads of the kernel's nftables state (see nlread.h): one
 * NETLINK_NETFILTER socket per backend instance, a GETTABLE request or a
 * GETRULE dump filtered by table and chain, answers parsed with libnftnl.
 * Used from the instance's worker thread only.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "nlread.h"

struct nlread {
        struct mnl_socket *nl;
        uint32_t portid;
        uint32_t seq;
        char buf[65536];                /* more than one dump message (MNL_SOCKET_DUMP_SIZE) */
};

nlread *nlread_new(void) {
        nlread *n = calloc(1, sizeof *n);
        if (!n)
                return NULL;
        n->nl = mnl_socket_open(NETLINK_NETFILTER);
        if (!n->nl || mnl_socket_bind(n->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
                int e = errno ? errno : EIO;
                nlread_free(n);
                errno = e;
                return NULL;
        }
        n->portid = mnl_socket_get_portid(n->nl);
        n->seq = (uint32_t) time(NULL);
        return n;
}

nlread *nlread_free(nlread *n) {
        if (!n)
                return NULL;
        if (n->nl)
                mnl_socket_close(n->nl);
        free(n);
        return NULL;
}

/* Send the request in n->buf and run cb on every answer until done. */
static int talk(nlread *n, struct nlmsghdr *nlh, mnl_cb_t cb, void *data) {
        uint32_t seq = nlh->nlmsg_seq;
        ssize_t len;
        int r;

        if (mnl_socket_sendto(n->nl, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        for (;;) {
                len = mnl_socket_recvfrom(n->nl, n->buf, sizeof n->buf);
                if (len < 0)
                        return -errno;
                r = mnl_cb_run(n->buf, (size_t) len, seq, n->portid, cb, data);
                if (r < 0)
                        return errno ? -errno : -EIO;
                if (r == MNL_CB_STOP)
                        return 0;
        }
}

static int table_cb(const struct nlmsghdr *nlh, void *data) {
        struct nftnl_table *t = nftnl_table_alloc();
        if (!t)
                return MNL_CB_ERROR;
        if (nftnl_table_nlmsg_parse(nlh, t) == 0)
                *(uint64_t *) data = nftnl_table_get_u64(t, NFTNL_TABLE_HANDLE);
        nftnl_table_free(t);
        return MNL_CB_OK;
}

int nlread_table(nlread *n, const char *table, uint64_t *handle) {
        char req[512];
        struct nftnl_table *t = nftnl_table_alloc();
        struct nlmsghdr *nlh;
        int r;

        if (!t)
                return -ENOMEM;
        nftnl_table_set_str(t, NFTNL_TABLE_NAME, table);
        nlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, ++n->seq);
        nftnl_table_nlmsg_build_payload(nlh, t);
        nftnl_table_free(t);
        *handle = 0;
        r = talk(n, nlh, table_cb, handle);
        return r;
}

typedef struct rules_ctx {
        nlread_rule_fn fn;
        void *userdata;
        const char *set;
        uint64_t packets, bytes;
} rules_ctx;

static int expr_cb(struct nftnl_expr *e, void *data) {
        rules_ctx *c = data;
        const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);
        if (!name)
                return 0;
        if (!strcmp(name, "lookup") && nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_SET))
                c->set = nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET);
        else if (!strcmp(name, "counter")) {
                c->packets += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_PACKETS);
                c->bytes += nftnl_expr_get_u64(e, NFTNL_EXPR_CTR_BYTES);
        }
        return 0;
}

static int rule_cb(const struct nlmsghdr *nlh, void *data) {
        rules_ctx *c = data;
        struct nftnl_rule *r = nftnl_rule_alloc();
        if (!r)
                return MNL_CB_ERROR;
        if (nftnl_rule_nlmsg_parse(nlh, r) == 0) {
                c->set = "";
                c->packets = c->bytes = 0;
                nftnl_expr_foreach(r, expr_cb, c);
                c->fn(c->set, c->packets, c->bytes, c->userdata);
        }
        nftnl_rule_free(r);
        return MNL_CB_OK;
}

int nlread_rules(nlread *n, const char *table, const char *chain, nlread_rule_fn fn, void *userdata) {
        char req[512];
        struct nftnl_rule *r = nftnl_rule_alloc();
        struct nlmsghdr *nlh;
        rules_ctx c = { .fn = fn, .userdata = userdata };

        if (!r)
                return -ENOMEM;
        nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table);
        nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
        nlh = nftnl_nlmsg_build_hdr(req, NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, ++n->seq);
        nftnl_rule_nlmsg_build_payload(nlh, r);
        nftnl_rule_free(r);
        return talk(n, nlh, rule_cb, &c);
}
