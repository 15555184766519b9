/* SPDX-License-Identifier: MIT */
/*
 * The nftables backend: bans become kernel drops. The plugin owns one
 * table (default `inet spillway`) and nothing else:
 *
 *   set addr4  { type ipv4_addr; flags timeout; }            single addresses
 *   set addr6  { type ipv6_addr; flags timeout; }
 *   set range4 { type ipv4_addr; flags interval, timeout; }  ranges
 *   set range6 { type ipv6_addr; flags interval, timeout; }
 *   chain bans { ip saddr @addr4 counter drop; ... one rule per set }
 *   chain input   { type filter hook input priority -10; jump bans; }
 *   chain forward { ... hook forward ... }                    (`hooks`)
 *
 * Expiry is the kernel's: each element carries the ban's remaining
 * duration as its timeout. The sets are written with libnftables, in nft's
 * own command language, one netlink transaction per flush: insert() only
 * records what to change (elements.c keeps the memory of what is in the
 * kernel, and decides replacements and nested ranges), flush() turns the
 * batch into a few `add element`/`delete element` commands with many
 * elements each and runs them as one transaction. The transaction is all
 * or nothing, so the memory's undo log follows the kernel exactly.
 *
 * Why libnftables for writing: measured (bench-nftables, bench-nftnl),
 * element additions through nft's parser reach two to five times the
 * 20,000/s target, against five to seven times that for hand-built libnftnl
 * messages; the table/chain/rule set-up stays readable nft text that nft
 * checks. The price: an `add element` into an *interval* set makes nft
 * read that set first (overlap checks), so range bans cost O(ranges in the
 * set) per transaction; ranges are few. Reads go through libnftnl instead
 * (nlread.c): nft 1.0.6 fetches every element of every set for any listing
 * of rules, counters or tables, which costs seconds at 100,000 elements.
 *
 * Replacing: an element for a target already in the set is written as
 * "add X; delete X; add X timeout T" in one transaction, which neither
 * errors when X is absent or expired nor leaves the old timeout.
 *
 * Safety: `never_ban` (CIDRs, default loopback and link-local) is checked
 * before anything reaches the kernel; a ban overlapping it is refused for
 * this backend with a rate-limited warning naming the signal.
 *
 * A timer (check_interval) reads the table without its elements (cost
 * independent of the sets' size): when the table, a set, a chain or a rule
 * is gone (`nft flush ruleset`, a firewall reload) it rebuilds the table and
 * puts back every active element it remembers, with a journal entry; the
 * same read gives the drop counters for `spillwayctl status`.
 *
 * Restarts: with keep_on_stop the table stays; a clean stop saves the
 * memory to the state directory and the next start adopts it (or, without
 * a usable copy, lists the sets from the kernel). Adopted elements are
 * "uncertain": their first change is written so that it cannot fail.
 *
 * Threading: one instance, one worker thread (backend.h); the two nft
 * contexts are the instance's own.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

#include <jansson.h>
#include <nftables/libnftables.h>
#include <spillway/backend.h>

#include "elements.h"
#include "nlread.h"
#include "spwp-config.h"

#ifndef NFT_PLUGIN_VERSION
#define NFT_PLUGIN_VERSION "1.0"
#endif

#define SEC INT64_C(1000000)
#define WARN_INTERVAL (10 * SEC)
/* nft reads each number of a duration as 32 bits; the kernel takes about
 * 24,855 days: longer bans are written with this timeout. */
#define MAX_TIMEOUT_MS (INT64_C(24000) * 86400 * 1000)

static const char *const set_names[4] = { "addr4", "addr6", "range4", "range6" };

/* An op kind besides ELEMS_ADD and ELEMS_DEL: empty every set (delete_all),
 * in the same transaction as the changes before and after it. */
#define OP_FLUSH_SETS 3

typedef struct op {
        uint8_t kind;           /* ELEMS_ADD, ELEMS_DEL, OP_FLUSH_SETS */
        uint8_t set;            /* index in set_names */
        bool new_run;           /* starts a new group of commands */
        nfaddr_range r;
        int64_t until;
        int64_t in_kernel_until;        /* 0: not in the kernel */
} op;

typedef struct strbuf {
        char *p;
        size_t len, cap;
} strbuf;

typedef struct nft_backend {
        spw_ctx *ctx;
        const struct spw_host *host;

        /* config */
        char family[8], table[64];
        bool hook_input, hook_forward;
        int priority;
        bool reject;
        bool keep_on_stop;
        int64_t check_interval;
        nfaddr_list never_ban;

        struct nft_ctx *nft;            /* commands, text output */
        struct nft_ctx *nft_json;       /* terse JSON listings */
        nlread *nl;                     /* cheap reads: table handle, rules and counters */

        elems *mem;
        op *ops;
        size_t n_ops, cap_ops;
        uint64_t run;                   /* current group of commands */
        uint8_t last_kind;
        bool force_new_run;
        strbuf batch, pre[4], del[4], add[4];

        /* counters (pending ones become real at a successful flush) */
        uint64_t enforced, pending_enforced;
        uint64_t not_enforced, pending_not_enforced;
        uint64_t refused, pending_refused;
        uint64_t expired, pending_expired;
        uint64_t restored, transactions;
        uint64_t dropped_packets, dropped_bytes;

        spw_usec_t last_warn;
        uint64_t warn_suppressed;
} nft_backend;

static const spw_config_key nft_keys[] = {
        { "table", SPW_CONFIG_STRING, "inet spillway", NULL,
          "the table this backend owns: `inet NAME` (the only family that filters IPv4 and IPv6 at once)" },
        { "hooks", SPW_CONFIG_STRING, "input", NULL, "where traffic from banned sources is dropped: input, forward or both (`input,forward`)" },
        { "priority", SPW_CONFIG_STRING, "-10", NULL, "base chain priority (an integer; the usual filter priority is 0, so -10 runs just before it)" },
        { "verdict", SPW_CONFIG_ENUM, "drop", "drop|reject", "what happens to a banned source's packets" },
        { "keep_on_stop", SPW_CONFIG_BOOL, "true", NULL, "leave the table (and its bans) in the kernel when the daemon stops, so a restart opens no gap" },
        { "never_ban", SPW_CONFIG_STRING, "127.0.0.0/8, ::1/128, 169.254.0.0/16, fe80::/10", NULL,
          "CIDRs never put in the sets (comma or space separated); a ban overlapping one is refused for this backend" },
        { "check_interval", SPW_CONFIG_DURATION, "5s", NULL, "how often the table is checked (and restored if removed) and the counters read; 0 disables" },
        { NULL },
};

/* ---------------------------------------------------------------- instances */

/* Live instances per table in this process: on a reload the new instance
 * starts before the old one stops, and the old one must not remove the
 * table the new one uses. The only global state of the plugin. */
static pthread_mutex_t users_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
        char name[80];
        unsigned users;
} table_registry[16];

/* Add delta (+1, -1) to the instances of b's table; returns the count after. */
static unsigned table_users(const nft_backend *b, int delta) {
        char name[80];
        unsigned left = 0;
        int free_slot = -1;

        snprintf(name, sizeof name, "%s %s", b->family, b->table);
        pthread_mutex_lock(&users_lock);
        for (int i = 0; i < 16; i++) {
                if (table_registry[i].users && !strcmp(table_registry[i].name, name)) {
                        table_registry[i].users += (unsigned) delta;
                        left = table_registry[i].users;
                        free_slot = -2;
                        break;
                }
                if (!table_registry[i].users && free_slot == -1)
                        free_slot = i;
        }
        if (free_slot >= 0 && delta > 0) {
                snprintf(table_registry[free_slot].name, sizeof table_registry[free_slot].name, "%s", name);
                table_registry[free_slot].users = left = 1;
        }
        pthread_mutex_unlock(&users_lock);
        return left;
}

/* ---------------------------------------------------------------- helpers */

static int sb_grow(strbuf *b, size_t more) {
        if (b->len + more + 1 <= b->cap)
                return 0;
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + more + 1)
                cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
                return -ENOMEM;
        b->p = p;
        b->cap = cap;
        return 0;
}

__attribute__((format(printf, 2, 3))) static int sb_printf(strbuf *b, const char *fmt, ...) {
        va_list ap;
        int n;

        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
                va_end(ap);
                if (n < 0)
                        return -EINVAL;
                if (b->p && b->len + (size_t) n < b->cap) {
                        b->len += (size_t) n;
                        return 0;
                }
                if (sb_grow(b, (size_t) n) < 0)
                        return -ENOMEM;
        }
}

static void sb_reset(strbuf *b) {
        b->len = 0;
        if (b->p)
                b->p[0] = 0;
}

static void sb_free(strbuf *b) {
        free(b->p);
        *b = (strbuf) { 0 };
}

static const char *nft_error(nft_backend *b) {
        const char *e = nft_ctx_get_error_buffer(b->nft);
        return e && *e ? e : "no message from libnftables";
}

/* The first line of nft's error text, for one-line reasons. */
static void first_line(const char *s, char *buf, size_t size) {
        size_t n = strcspn(s, "\n");
        snprintf(buf, size, "%.*s", (int) (n < size ? n : size - 1), s);
}

/* nft's error text as a negative errno and a one-line reason for set_error. */
static int report(nft_backend *b, const char *what, const char *e) {
        char line[400];
        int r;

        if (!e || !*e)
                e = "no message from libnftables";
        r = strstr(e, "Operation not permitted") ? -EPERM : strstr(e, "No such file or directory") ? -ENOENT : -EIO;
        /* nft prints "file:line:col: Error: ...", then the command and a caret */
        first_line(e, line, sizeof line);
        b->host->set_error(b->ctx, "%s in table %s %s failed: %s%s", what, b->family, b->table, line,
                           r == -EPERM ? " (the daemon needs CAP_NET_ADMIN: install the spillway-plugin-nftables "
                                         "drop-in, see the plugin's README)" : "");
        return r;
}

/* Run commands as one transaction; on failure the reason goes to set_error. */
static int run_cmds(nft_backend *b, const char *text, const char *what) {
        if (nft_run_cmd_from_buffer(b->nft, text) == 0)
                return 0;
        return report(b, what, nft_ctx_get_error_buffer(b->nft));
}

static void fmt_timeout(char *buf, size_t size, int64_t ms) {
        int64_t d, h, m, s;
        char *p = buf;
        size_t left = size;
        int n;

        if (ms < 1)
                ms = 1;
        if (ms > MAX_TIMEOUT_MS)
                ms = MAX_TIMEOUT_MS;
        d = ms / 86400000, ms %= 86400000;
        h = ms / 3600000, ms %= 3600000;
        m = ms / 60000, ms %= 60000;
        s = ms / 1000, ms %= 1000;
        buf[0] = 0;
#define PART(v, unit)                                                           \
        if (v) {                                                                \
                n = snprintf(p, left, "%" PRId64 unit, v);                      \
                p += n, left -= (size_t) n;                                     \
        }
        PART(d, "d") PART(h, "h") PART(m, "m") PART(s, "s") PART(ms, "ms")
#undef PART
}

static void fmt_elem(const nfaddr_range *r, char *buf, size_t size) {
        char a[64], z[64];
        nfaddr_format(r->start, a, sizeof a);
        if (memcmp(r->start, r->end, 16) == 0)
                snprintf(buf, size, "%s", a);
        else
                snprintf(buf, size, "%s-%s", a, nfaddr_format(r->end, z, sizeof z));
}

static int set_index(const nfaddr_range *r) {
        return (memcmp(r->start, r->end, 16) != 0 ? 2 : 0) + (nfaddr_is_v4(r->start) ? 0 : 1);
}

/* ---------------------------------------------------------------- the batch */

/* elements.c tells what to change in the kernel: record it. */
static int ops_reserve(nft_backend *b) {
        if (b->n_ops == b->cap_ops) {
                size_t cap = b->cap_ops ? b->cap_ops * 2 : 1024;
                op *n = realloc(b->ops, cap * sizeof *n);
                if (!n)
                        return -ENOMEM;
                b->ops = n;
                b->cap_ops = cap;
        }
        return 0;
}

static int on_emit(void *userdata, int kind, elem *e, int64_t in_kernel_until) {
        nft_backend *b = userdata;
        op *o;

        if (ops_reserve(b) < 0)
                return -ENOMEM;
        o = &b->ops[b->n_ops++];
        *o = (op) { .kind = (uint8_t) kind, .set = (uint8_t) set_index(&e->r), .r = e->r, .until = e->until,
                    .in_kernel_until = in_kernel_until };
        /* one group of commands takes many elements, but nft refuses the
         * same element twice in one list: a repeated target or another kind
         * of change starts a new group (e->mark: the last group it is in) */
        if (b->force_new_run || kind != b->last_kind || e->mark == b->run) {
                b->run++;
                o->new_run = true;
        }
        e->mark = b->run;
        b->force_new_run = false;
        b->last_kind = (uint8_t) kind;
        return 0;
}

static void batch_forget(nft_backend *b) {
        b->n_ops = 0;
        b->force_new_run = true;
        b->pending_enforced = b->pending_not_enforced = b->pending_refused = b->pending_expired = 0;
}

/* Write the commands of one group: the elements that may or may not be in
 * the kernel still (about to expire) are added first so that the delete
 * cannot fail; the others are deleted only when known to be there and
 * added when new. (Not "add, delete, add" for all: nft 1.0.6's cache then
 * sees a deleted interval as present and refuses a range inside it.) */
static int close_run(nft_backend *b) {
        int r = 0;
        for (int s = 0; s < 4 && r == 0; s++) {
                if (b->pre[s].len)
                        r = sb_printf(&b->batch, "add element %s %s %s { %s }\n", b->family, b->table, set_names[s], b->pre[s].p);
                if (r == 0 && b->del[s].len)
                        r = sb_printf(&b->batch, "delete element %s %s %s { %s }\n", b->family, b->table, set_names[s], b->del[s].p);
                if (r == 0 && b->add[s].len)
                        r = sb_printf(&b->batch, "add element %s %s %s { %s }\n", b->family, b->table, set_names[s], b->add[s].p);
                sb_reset(&b->pre[s]);
                sb_reset(&b->del[s]);
                sb_reset(&b->add[s]);
        }
        return r;
}

static int list_append(strbuf *l, const char *el, const char *timeout) {
        return timeout ? sb_printf(l, "%s%s timeout %s", l->len ? ", " : "", el, timeout)
                       : sb_printf(l, "%s%s", l->len ? ", " : "", el);
}

/* Within NEAR of its end, an element may expire in the kernel before the
 * transaction runs. */
#define NEAR (2 * SEC)

static int build_batch(nft_backend *b, spw_usec_t now) {
        char el[128], to[64];
        int r = 0;

        sb_reset(&b->batch);
        for (size_t i = 0; i < b->n_ops && r == 0; i++) {
                const op *o = &b->ops[i];
                int64_t left_ms = (o->until - now) / 1000;
                bool uncertain = o->in_kernel_until == ELEMS_UNCERTAIN;        /* adopted */
                bool there = !uncertain && o->in_kernel_until > now + NEAR;     /* surely in the kernel */
                bool maybe = uncertain || (!there && o->in_kernel_until > now - NEAR);
                if (o->new_run && i > 0 && (r = close_run(b)) < 0)
                        break;
                if (o->kind == OP_FLUSH_SETS) {
                        for (int s = 0; s < 4 && r == 0; s++)
                                r = sb_printf(&b->batch, "flush set %s %s %s\n", b->family, b->table, set_names[s]);
                        continue;
                }
                fmt_elem(&o->r, el, sizeof el);
                if (maybe) {
                        r = list_append(&b->pre[o->set], el, "1s");
                        if (r == 0)
                                r = list_append(&b->del[o->set], el, NULL);
                } else if (there)
                        r = list_append(&b->del[o->set], el, NULL);
                /* an addition that expired while it waited: nothing to add */
                if (r == 0 && o->kind == ELEMS_ADD && left_ms > 0) {
                        fmt_timeout(to, sizeof to, left_ms);
                        r = list_append(&b->add[o->set], el, to);
                }
        }
        if (r == 0 && b->n_ops)
                r = close_run(b);
        return r;
}

/* ---------------------------------------------------------------- the table */

typedef struct table_state {
        bool exists;
        uint64_t handle;
        bool set_ok[4], set_present[4];
        bool bans_chain;
        int rules[4];                   /* rules in `bans` using each set */
        bool chain_present[2], chain_ok[2]; /* input, forward */
        uint64_t packets, bytes;
} table_state;

static const char *const hook_names[2] = { "input", "forward" };

static bool json_has_flag(json_t *flags, const char *want) {
        size_t i;
        json_t *v;
        json_array_foreach(flags, i, v)
                if (json_is_string(v) && !strcmp(json_string_value(v), want))
                        return true;
        return false;
}

/* Run one listing command on the JSON context and parse its output. */
static int list_json(nft_backend *b, const char *cmd, json_t **ret) {
        json_error_t jerr;

        if (nft_run_cmd_from_buffer(b->nft_json, cmd) != 0) {
                const char *e = nft_ctx_get_error_buffer(b->nft_json);
                if (e && strstr(e, "No such file or directory"))
                        return -ENOENT;         /* not a failure here */
                return report(b, "listing", e);
        }
        *ret = json_loads(nft_ctx_get_output_buffer(b->nft_json), 0, &jerr);
        if (!json_is_array(json_object_get(*ret, "nftables"))) {
                json_decref(*ret);
                b->host->set_error(b->ctx, "listing table %s %s: unexpected JSON from libnftables: %s", b->family,
                                   b->table, jerr.text);
                return -EPROTO;
        }
        return 0;
}

static void on_rule(const char *set, uint64_t packets, uint64_t bytes, void *userdata) {
        table_state *st = userdata;
        for (int s = 0; s < 4; s++)
                if (!strcmp(set, set_names[s]))
                        st->rules[s]++;
        st->packets += packets;
        st->bytes += bytes;
}

/* The table as the kernel has it, without the elements, at the same cost
 * whatever the sets hold: the handle and the rules of `bans` (with their
 * counters) through nlread, the sets and chains through nft's listings
 * that do not fetch elements. -ENOENT: no table. */
static int table_read(nft_backend *b, table_state *st) {
        char cmd[160];
        json_t *root, *item;
        size_t i;
        int r;

        *st = (table_state) { 0 };
        r = nlread_table(b->nl, b->table, &st->handle);
        if (r == -ENOENT)
                return r;
        if (r < 0) {
                b->host->set_error(b->ctx, "reading table %s %s failed: %s%s", b->family, b->table, strerror(-r),
                                   r == -EPERM ? " (the daemon needs CAP_NET_ADMIN: install the spillway-plugin-nftables "
                                                 "drop-in, see the plugin's README)" : "");
                return r;
        }
        st->exists = true;

        snprintf(cmd, sizeof cmd, "list sets table %s %s", b->family, b->table);
        if ((r = list_json(b, cmd, &root)) < 0)
                return r == -ENOENT ? 0 : r;
        json_array_foreach(json_object_get(root, "nftables"), i, item) {
                json_t *o = json_object_get(item, "set");
                const char *name = json_string_value(json_object_get(o, "name"));
                const char *tab = json_string_value(json_object_get(o, "table"));
                const char *type = json_string_value(json_object_get(o, "type"));
                json_t *flags = json_object_get(o, "flags");
                if (!name || !tab || strcmp(tab, b->table))
                        continue;
                for (int s = 0; s < 4; s++) {
                        if (strcmp(name, set_names[s]))
                                continue;
                        st->set_present[s] = true;
                        st->set_ok[s] = type && !strcmp(type, s % 2 ? "ipv6_addr" : "ipv4_addr") &&
                                        json_has_flag(flags, "timeout") && json_has_flag(flags, "interval") == (s >= 2);
                }
        }
        json_decref(root);

        snprintf(cmd, sizeof cmd, "list chains %s", b->family);
        if ((r = list_json(b, cmd, &root)) < 0)
                return r == -ENOENT ? 0 : r;
        json_array_foreach(json_object_get(root, "nftables"), i, item) {
                json_t *o = json_object_get(item, "chain");
                const char *name = json_string_value(json_object_get(o, "name"));
                const char *tab = json_string_value(json_object_get(o, "table"));
                const char *hook = json_string_value(json_object_get(o, "hook"));
                json_t *prio = json_object_get(o, "prio");
                if (!name || !tab || strcmp(tab, b->table))
                        continue;
                if (!strcmp(name, "bans"))
                        st->bans_chain = true;
                for (int h = 0; h < 2; h++)
                        if (!strcmp(name, hook_names[h])) {
                                st->chain_present[h] = true;
                                st->chain_ok[h] = hook && !strcmp(hook, hook_names[h]) && json_is_integer(prio) &&
                                                  json_integer_value(prio) == b->priority;
                        }
        }
        json_decref(root);

        if (st->bans_chain && (r = nlread_rules(b->nl, b->table, "bans", on_rule, st)) < 0 && r != -ENOENT) {
                b->host->set_error(b->ctx, "reading the rules of table %s %s failed: %s", b->family, b->table, strerror(-r));
                return r;
        }
        return 0;
}

static bool table_complete(const nft_backend *b, const table_state *st) {
        if (!st->exists || !st->bans_chain)
                return false;
        for (int s = 0; s < 4; s++)
                if (!st->set_ok[s] || st->rules[s] != 1)
                        return false;
        if (st->chain_present[0] != b->hook_input || st->chain_present[1] != b->hook_forward)
                return false;
        for (int h = 0; h < 2; h++)
                if (st->chain_present[h] && !st->chain_ok[h])
                        return false;
        return true;
}

/* Create what is missing and (re)write the chains, in one transaction:
 * the sets and their elements stay; rules are rewritten, so a changed
 * priority, hook or verdict takes effect without a gap. */
static int table_setup(nft_backend *b, bool *existed) {
        table_state st;
        strbuf t = { 0 };
        const char *F = b->family, *T = b->table;
        int r;

        r = table_read(b, &st);
        if (r < 0 && r != -ENOENT)
                return r;
        if (existed)
                *existed = st.exists;
        r = sb_printf(&t, "add table %s %s\nadd chain %s %s bans\nflush chain %s %s bans\n", F, T, F, T, F, T);
        for (int h = 0; h < 2 && r == 0; h++)
                if (st.chain_present[h])
                        r = sb_printf(&t, "delete chain %s %s %s\n", F, T, hook_names[h]);
        for (int s = 0; s < 4 && r == 0; s++) {
                if (st.set_present[s] && !st.set_ok[s]) {
                        b->host->log(b->ctx, LOG_WARNING, "table %s %s: set %s has another type or flags than this backend "
                                     "writes; recreating it empty", F, T, set_names[s]);
                        r = sb_printf(&t, "delete set %s %s %s\n", F, T, set_names[s]);
                }
                if (r == 0)
                        r = sb_printf(&t, "add set %s %s %s { type %s; flags %s; }\n", F, T, set_names[s],
                                      s % 2 ? "ipv6_addr" : "ipv4_addr", s >= 2 ? "interval, timeout" : "timeout");
        }
        for (int s = 0; s < 4 && r == 0; s++)
                r = sb_printf(&t, "add rule %s %s bans %s saddr @%s counter %s\n", F, T, s % 2 ? "ip6" : "ip", set_names[s],
                              b->reject ? "reject" : "drop");
        for (int h = 0; h < 2 && r == 0; h++) {
                if (!(h == 0 ? b->hook_input : b->hook_forward))
                        continue;
                r = sb_printf(&t, "add chain %s %s %s { type filter hook %s priority %d; policy accept; }\n"
                                  "add rule %s %s %s jump bans\n",
                              F, T, hook_names[h], hook_names[h], b->priority, F, T, hook_names[h]);
        }
        if (r == 0)
                r = run_cmds(b, t.p, "setting up the table");
        sb_free(&t);
        return r;
}

/* Parse an element as nft's JSON writes it ("1.2.3.4", {"prefix": ...},
 * {"range": [lo, hi]}). */
static bool json_elem(json_t *val, nfaddr_range *rg) {
        nfaddr_range z;
        char txt[128];

        if (json_is_string(val))
                return nfaddr_parse(json_string_value(val), true, rg) == 0;
        if (json_object_get(val, "prefix")) {
                json_t *p = json_object_get(val, "prefix");
                const char *a = json_string_value(json_object_get(p, "addr"));
                snprintf(txt, sizeof txt, "%s/%" JSON_INTEGER_FORMAT, a ? a : "?", json_integer_value(json_object_get(p, "len")));
                return nfaddr_parse(txt, true, rg) == 0;
        }
        if (json_is_array(json_object_get(val, "range"))) {
                json_t *ra = json_object_get(val, "range");
                const char *lo = json_string_value(json_array_get(ra, 0)), *hi = json_string_value(json_array_get(ra, 1));
                if (!lo || !hi || nfaddr_parse(lo, true, rg) < 0 || nfaddr_parse(hi, true, &z) < 0)
                        return false;
                memcpy(rg->end, z.end, 16);
                return true;
        }
        return false;
}

/* Adopt the elements the kernel sets hold. Slow for big sets: the kernel
 * dumps a hash set by walking it from the start for every message, so a
 * listing of n elements costs O(n^2 / 300); used when the saved copy
 * (state_load) is missing or stale. */
static int adopt_from_kernel(nft_backend *b, spw_usec_t now, size_t *adopted) {
        int r = 0;

        nft_ctx_output_set_flags(b->nft_json, NFT_CTX_OUTPUT_JSON);
        for (int s = 0; s < 4 && r == 0; s++) {
                char cmd[160];
                json_t *root, *item;
                size_t i;

                snprintf(cmd, sizeof cmd, "list set %s %s %s", b->family, b->table, set_names[s]);
                if (nft_run_cmd_from_buffer(b->nft_json, cmd) != 0)
                        continue;
                root = json_loads(nft_ctx_get_output_buffer(b->nft_json), 0, NULL);
                json_array_foreach(json_object_get(root, "nftables"), i, item) {
                        json_t *e;
                        size_t j;
                        json_array_foreach(json_object_get(json_object_get(item, "set"), "elem"), j, e) {
                                json_t *wrap = json_object_get(e, "elem");
                                json_t *expires = json_object_get(wrap, "expires");
                                nfaddr_range rg;
                                char txt[128];
                                if (!wrap || !json_elem(json_object_get(wrap, "val"), &rg) || !json_is_integer(expires))
                                        continue;
                                fmt_elem(&rg, txt, sizeof txt);
                                r = elems_adopt(b->mem, &rg, now + json_integer_value(expires) * SEC, false, txt,
                                                "(in the kernel set before this start)", "nftables");
                                if (r < 0)
                                        break;
                                (*adopted)++;
                        }
                }
                json_decref(root);
        }
        nft_ctx_output_set_flags(b->nft_json, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_TERSE);
        return r;
}

/* The saved copy of the memory: written at a clean stop that keeps the
 * table, read at the next start if the table is still the same one (its
 * handle), so a restart does not list big sets from the kernel. */
static int state_path(nft_backend *b, char *buf, size_t size) {
        const char *dir = b->host->state_directory(b->ctx);
        if (!dir || !*dir)
                return -ENOENT;
        if ((size_t) snprintf(buf, size, "%s/nftables-%s.elements", dir, b->host->instance_name(b->ctx)) >= size)
                return -ENAMETOOLONG;
        return 0;
}

/* What names this table in this boot and network namespace: the boot id,
 * the namespace's cookie (unique within a boot, never reused) and the
 * table's handle (a new table gets a new one). Empty when unknown: then no
 * copy is trusted. */
static void table_identity(nft_backend *b, uint64_t handle, char *buf, size_t size) {
        char boot[64] = "";
        uint64_t cookie = 0;
        socklen_t len = sizeof cookie;
        FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
        int fd;

        buf[0] = 0;
        if (f) {
                if (!fgets(boot, sizeof boot, f))
                        boot[0] = 0;
                fclose(f);
        }
        boot[strcspn(boot, "\n")] = 0;
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd >= 0) {
                if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0)
                        cookie = 0;
                close(fd);
        }
        if (boot[0] && cookie)
                snprintf(buf, size, "spillway-nftables-elements 2 %s %s boot %s netns %" PRIu64 " handle %" PRIu64 "\n",
                         b->family, b->table, boot, cookie, handle);
}

typedef struct save_ctx {
        FILE *f;
} save_ctx;

static void clean_field(char *dst, size_t size, const char *s) {
        snprintf(dst, size, "%s", s ? s : "");
        for (char *p = dst; *p; p++)
                if (*p == '\t' || *p == '\n')
                        *p = ' ';
}

static int save_one(const elem *e, void *userdata) {
        save_ctx *sc = userdata;
        char el[128], text[128], reason[256], source[64];
        fmt_elem(&e->r, el, sizeof el);
        clean_field(text, sizeof text, e->text);
        clean_field(reason, sizeof reason, e->reason);
        clean_field(source, sizeof source, e->source);
        return fprintf(sc->f, "%" PRId64 " %d %s %s\t%s\t%s\n", e->until, e->covered, el, source, text, reason) < 0 ? -EIO : 0;
}

static void state_save(nft_backend *b, uint64_t handle) {
        char path[4096], tmp[4200], id[256];
        save_ctx sc;
        int r;

        table_identity(b, handle, id, sizeof id);
        if (!id[0] || state_path(b, path, sizeof path) < 0)
                return;
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        sc.f = fopen(tmp, "we");
        if (!sc.f) {
                b->host->log(b->ctx, LOG_WARNING, "saving the elements to %s failed: %m; the next start reads them "
                             "from the kernel", tmp);
                return;
        }
        fputs(id, sc.f);
        r = elems_foreach(b->mem, b->host->now(b->ctx), save_one, &sc);
        if (fclose(sc.f) != 0 || r < 0 || rename(tmp, path) < 0) {
                b->host->log(b->ctx, LOG_WARNING, "saving the elements to %s failed; the next start reads them from "
                             "the kernel", path);
                unlink(tmp);
        }
}

/* Returns the number adopted, or -ESTALE / -ENOENT when the copy cannot be used. */
static int state_load(nft_backend *b, uint64_t handle, spw_usec_t now) {
        char path[4096], line[1024], want[256];
        FILE *f;
        int n = 0, r = 0;

        if (state_path(b, path, sizeof path) < 0 || !(f = fopen(path, "re")))
                return -ENOENT;
        /* one use only: a copy older than the next stop is never trusted */
        unlink(path);
        table_identity(b, handle, want, sizeof want);
        if (!want[0] || !fgets(line, sizeof line, f) || strcmp(line, want) != 0) {
                fclose(f);
                return -ESTALE;
        }
        while (fgets(line, sizeof line, f)) {
                char *fields[3] = { NULL }, el[128], source[64], *p, *dash;
                long long until;
                int covered, off = 0;
                nfaddr_range rg, z;

                line[strcspn(line, "\n")] = 0;
                if (sscanf(line, "%lld %d %127s %63[^\t]%n", &until, &covered, el, source, &off) != 4 || line[off] != '\t')
                        continue;
                p = line + off + 1;
                fields[0] = p;
                if ((p = strchr(p, '\t'))) {
                        *p++ = 0;
                        fields[1] = p;
                }
                if (until <= now)
                        continue;
                dash = strchr(el, '-');
                if (dash)
                        *dash = 0;
                if (nfaddr_parse(el, true, &rg) < 0 || (dash && nfaddr_parse(dash + 1, true, &z) < 0))
                        continue;
                if (dash)
                        memcpy(rg.end, z.end, 16);
                r = elems_adopt(b->mem, &rg, until, covered, fields[0], fields[1] ? fields[1] : "", source);
                if (r < 0)
                        break;
                n++;
        }
        fclose(f);
        return r < 0 ? r : n;
}

/* Adopt the elements a previous run left in the sets (keep_on_stop), so
 * that replacements, ranges, read_at and a restore know them. */
static int table_adopt(nft_backend *b, bool existed, uint64_t handle, spw_usec_t now) {
        size_t adopted = 0;
        int r;

        if (!existed) {
                /* a new table: nothing in it, and any saved copy is stale */
                char path[4096];
                if (state_path(b, path, sizeof path) == 0)
                        unlink(path);
                return 0;
        }
        r = state_load(b, handle, now);
        if (r >= 0) {
                b->host->log(b->ctx, LOG_INFO, "table %s %s: %d active ban(s) from before this start kept in the "
                             "kernel sets (from the copy saved at the last stop)", b->family, b->table, r);
                return 0;
        }
        if (r != -ENOENT && r != -ESTALE)
                return r;
        r = adopt_from_kernel(b, now, &adopted);
        if (r < 0)
                return r;
        if (adopted)
                b->host->log(b->ctx, LOG_INFO, "table %s %s: %zu active ban(s) from before this start kept in the kernel "
                             "sets (read from the kernel)", b->family, b->table, adopted);
        return 0;
}

/* ---------------------------------------------------------------- status */

static void set_u64(nft_backend *b, const char *key, uint64_t v) {
        char s[32];
        snprintf(s, sizeof s, "%" PRIu64, v);
        b->host->set_status(b->ctx, key, s);
}

static void publish(nft_backend *b, bool counts) {
        spw_usec_t now = b->host->now(b->ctx);
        set_u64(b, "enforced", b->enforced);
        set_u64(b, "not_enforced", b->not_enforced);
        set_u64(b, "refused_never_ban", b->refused);
        set_u64(b, "expired_before_flush", b->expired);
        set_u64(b, "transactions", b->transactions);
        set_u64(b, "restored", b->restored);
        if (!counts)
                return;
        elems_counts c = elems_count(b->mem, now);
        set_u64(b, "elements_ipv4", c.addr4);
        set_u64(b, "elements_ipv6", c.addr6);
        set_u64(b, "ranges_ipv4", c.range4);
        set_u64(b, "ranges_ipv6", c.range6);
        set_u64(b, "ranges_covered", c.covered);
        set_u64(b, "dropped_packets", b->dropped_packets);
        set_u64(b, "dropped_bytes", b->dropped_bytes);
}

/* ---------------------------------------------------------------- operations */

static int do_flush(nft_backend *b) {
        spw_usec_t now = b->host->now(b->ctx);
        int r;

        if (b->n_ops) {
                r = build_batch(b, now);
                if (r == 0 && b->batch.len)
                        r = run_cmds(b, b->batch.p, "writing the sets");
                if (r < 0) {
                        elems_rollback(b->mem);
                        batch_forget(b);
                        return r;
                }
                if (b->batch.len)
                        b->transactions++;
        }
        elems_commit(b->mem);
        b->enforced += b->pending_enforced;
        b->not_enforced += b->pending_not_enforced;
        b->refused += b->pending_refused;
        b->expired += b->pending_expired;
        bool changed = b->n_ops > 0;
        batch_forget(b);
        if (changed)
                publish(b, false);
        return 0;
}

/* Rebuild the table and put every remembered element back. */
static int restore(nft_backend *b, const char *why) {
        spw_usec_t now = b->host->now(b->ctx);
        elems_counts c = elems_count(b->mem, now);
        int r;

        r = table_setup(b, NULL);
        if (r < 0)
                return r;
        r = elems_replay(b->mem, now);
        if (r == 0)
                r = do_flush(b);
        if (r < 0)
                return r;
        b->restored++;
        spw_kv f[] = { { "SPILLWAY_NFT_TABLE", b->table } };
        b->host->log_fields(b->ctx, LOG_WARNING, f, 1,
                            "table %s %s %s (nft flush ruleset, a firewall reload?): restored it with %" PRIu64
                            " active element(s) from memory", b->family, b->table, why,
                            c.addr4 + c.addr6 + c.range4 + c.range6);
        publish(b, true);
        return 0;
}

static int nft_check(void *userdata, spw_usec_t now) {
        nft_backend *b = userdata;
        table_state st;
        int r;

        (void) now;
        if (elems_dirty(b->mem) || b->n_ops)
                return 0; /* a batch is open: the next round checks */
        r = table_read(b, &st);
        if (r < 0 && r != -ENOENT)
                return r;
        if (!table_complete(b, &st)) {
                r = restore(b, st.exists ? "was changed by someone else" : "was removed");
                if (r < 0)
                        return r;
                if ((r = table_read(b, &st)) < 0)
                        return r;
        }
        b->dropped_packets = st.packets;
        b->dropped_bytes = st.bytes;
        /* forget what the kernel expired; covered ranges whose wider one
         * left go back in */
        r = elems_expire(b->mem, b->host->now(b->ctx));
        if (r < 0)
                return r;
        if ((r = do_flush(b)) < 0)
                return r;
        publish(b, true);
        return 0;
}

static void warn_refused(nft_backend *b, const spw_signal *sig, const spw_ban *ban, int allow) {
        spw_usec_t now = b->host->now(b->ctx);
        char id[32];

        if (b->last_warn && now - b->last_warn < WARN_INTERVAL) {
                b->warn_suppressed++;
                return;
        }
        snprintf(id, sizeof id, "%" PRIu64, sig->id);
        spw_kv f[] = {
                { "SPILLWAY_SCENARIO", sig->scenario ? sig->scenario : "" },
                { "SPILLWAY_SIGNAL_ID", id },
                { "SPILLWAY_TARGET", ban->ip_text ? ban->ip_text : "" },
        };
        b->host->log_fields(b->ctx, LOG_WARNING, f, 3,
                            "refusing to enforce the ban of %s from signal %s (scenario %s): it overlaps never_ban entry %s; "
                            "other backends still store it%s",
                            ban->ip_text ? ban->ip_text : "?", id, sig->scenario ? sig->scenario : "?",
                            b->never_ban.text[allow], b->warn_suppressed ? " (more such refusals were not logged)" : "");
        b->last_warn = now;
        b->warn_suppressed = 0;
}

static int nft_insert(void *self, const spw_signal *sig) {
        nft_backend *b = self;
        spw_usec_t now = b->host->now(b->ctx);

        for (size_t i = 0; i < sig->n_bans; i++) {
                const spw_ban *ban = spw_signal_ban(sig, i);
                nfaddr_range rg;
                int allow, r;

                if (!ban->measure_type || strcmp(ban->measure_type, "ban") != 0 || ban->scope == SPW_SCOPE_OTHER) {
                        /* captcha, slow, simulation:ban ...: not a firewall's
                         * job; nor is a Country or username scope (no address) */
                        b->pending_not_enforced++;
                        continue;
                }
                memcpy(rg.start, ban->start_ip, 16);
                memcpy(rg.end, ban->end_ip, 16);
                if (nfaddr_is_v4(rg.start) != nfaddr_is_v4(rg.end) || memcmp(rg.start, rg.end, 16) > 0) {
                        b->pending_not_enforced++;
                        continue;
                }
                if (ban->until <= now) {
                        b->pending_expired++;
                        continue;
                }
                if ((allow = nfaddr_list_overlap(&b->never_ban, &rg)) >= 0) {
                        b->pending_refused++;
                        warn_refused(b, sig, ban, allow);
                        continue;
                }
                char text[128];
                if (ban->ip_text)
                        snprintf(text, sizeof text, "%s", ban->ip_text);
                else
                        fmt_elem(&rg, text, sizeof text);
                r = elems_put(b->mem, &rg, ban->until, text, ban->scenario ? ban->scenario : ban->reason,
                              ban->measure_source, now);
                if (r < 0) {
                        /* the batch as before this signal: undo all of it */
                        elems_rollback(b->mem);
                        batch_forget(b);
                        b->host->set_error(b->ctx, "remembering a ban failed: %s", strerror(-r));
                        return -EAGAIN;
                }
                b->pending_enforced++;
        }
        return 0;
}

static int nft_flush(void *self) {
        nft_backend *b = self;
        int r = do_flush(b);

        if (r == -ENOENT) {
                /* the table went away under us: rebuild it now, then the
                 * daemon retries the batch */
                table_state st;
                if (table_read(b, &st) == 0 && table_complete(b, &st))
                        return -EAGAIN;
                (void) restore(b, "was missing when writing a batch");
                return -EAGAIN;
        }
        if (r == -EPERM || r == -ENOMEM)
                return r;
        return r < 0 ? -EAGAIN : 0;
}

static int nft_delete_target(void *self, const char *target, uint64_t *count) {
        nft_backend *b = self;
        nfaddr_range rg;
        bool found;
        int r;

        *count = 0;
        if (nfaddr_parse(target, false, &rg) < 0) {
                b->host->set_error(b->ctx, "'%s' is neither an IP address nor a CIDR range", target);
                return -EINVAL;
        }
        r = elems_remove(b->mem, &rg, &found, b->host->now(b->ctx));
        if (r < 0) {
                b->host->set_error(b->ctx, "forgetting %s failed: %s", target, strerror(-r));
                return r;
        }
        *count = found;
        return 0;
}

static int nft_delete_all(void *self, uint64_t *count) {
        nft_backend *b = self;
        int r;

        elem none = { .until = 0 };

        /* room for the flush op first: after the clear nothing may fail */
        r = ops_reserve(b);
        if (r == 0)
                r = elems_clear(b->mem, count, b->host->now(b->ctx));
        if (r < 0) {
                b->host->set_error(b->ctx, "forgetting the bans failed: %s", strerror(-r));
                return r;
        }
        /* the sets are emptied in the batch's transaction, after what was
         * recorded before (the flush that follows every admin job) */
        return on_emit(b, OP_FLUSH_SETS, &none, 0);
}

typedef struct read_ctx {
        spw_row_fn fn;
        void *userdata;
} read_ctx;

static int read_one(const elem *e, void *userdata) {
        read_ctx *rc = userdata;
        spw_ban_row row = {
                .size = sizeof row,
                .source = e->source ? e->source : "local",
                .iptext = e->text,
                .reason = e->reason,
                .bancount = 1,
                .action = "ban",
                .until = e->until,
        };
        return rc->fn(&row, rc->userdata);
}

/* The bans this host enforces now (the ban database stays the truth). */
static int nft_read_at(void *self, spw_usec_t at, spw_row_fn fn, void *userdata) {
        nft_backend *b = self;
        read_ctx rc = { fn, userdata };
        return elems_foreach(b->mem, at, read_one, &rc);
}

/* ---------------------------------------------------------------- init */

static int parse_config(nft_backend *b) {
        const struct spw_host *h = b->host;
        const char *v;
        char bad[64];
        int r;

        v = h->config_get(b->ctx, "table");
        if (!v)
                v = "inet spillway";
        {
                char fam[16] = "", name[80] = "";
                int n = 0;
                if (sscanf(v, "%15s %79s %n", fam, name, &n) != 2 || v[n] != 0 || strcmp(fam, "inet") != 0) {
                        h->set_error(b->ctx, "table: expected `inet NAME` (the inet family filters IPv4 and IPv6), got '%s'", v);
                        return -EINVAL;
                }
                for (const char *p = name; *p; p++)
                        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                              (p > name && *p >= '0' && *p <= '9')) || p - name >= 32) {
                                h->set_error(b->ctx, "table: '%s' is not a table name nft accepts (letters, digits "
                                             "and '_', starting with a letter, at most 32)", name);
                                return -EINVAL;
                        }
                snprintf(b->family, sizeof b->family, "%s", fam);
                snprintf(b->table, sizeof b->table, "%s", name);
        }

        v = h->config_get(b->ctx, "hooks");
        b->hook_input = true;
        if (v) {
                b->hook_input = b->hook_forward = false;
                for (const char *p = v; *p;) {
                        size_t n;
                        if (*p == ',' || *p == ' ') {
                                p++;
                                continue;
                        }
                        n = strcspn(p, ", ");
                        if (n == 5 && !strncmp(p, "input", 5))
                                b->hook_input = true;
                        else if (n == 7 && !strncmp(p, "forward", 7))
                                b->hook_forward = true;
                        else {
                                h->set_error(b->ctx, "hooks: expected input, forward or both, got '%.*s'", (int) n, p);
                                return -EINVAL;
                        }
                        p += n;
                }
                if (!b->hook_input && !b->hook_forward) {
                        h->set_error(b->ctx, "hooks: empty; expected input, forward or both");
                        return -EINVAL;
                }
        }

        v = h->config_get(b->ctx, "priority");
        b->priority = -10;
        if (v) {
                char *end;
                long p;
                errno = 0;
                p = strtol(v, &end, 10);
                if (errno || end == v || *end || p < -1000 || p > 1000) {
                        h->set_error(b->ctx, "priority: expected an integer between -1000 and 1000 (the filter priority "
                                     "is 0), got '%s'", v);
                        return -EINVAL;
                }
                b->priority = (int) p;
        }

        v = h->config_get(b->ctx, "verdict");
        if (v && strcmp(v, "drop") && strcmp(v, "reject")) {
                h->set_error(b->ctx, "verdict: expected drop or reject, got '%s'", v);
                return -EINVAL;
        }
        b->reject = v && !strcmp(v, "reject");

        v = h->config_get(b->ctx, "keep_on_stop");
        b->keep_on_stop = true;
        if (v && spwp_parse_bool(v, &b->keep_on_stop) < 0) {
                h->set_error(b->ctx, "keep_on_stop: expected true or false, got '%s'", v);
                return -EINVAL;
        }

        v = h->config_get(b->ctx, "check_interval");
        b->check_interval = 5 * SEC;
        if (v && (spwp_parse_duration(v, &b->check_interval) < 0 || (b->check_interval && b->check_interval < 100000))) {
                h->set_error(b->ctx, "check_interval: expected a duration of at least 100ms (\"5s\"), or 0 to disable, got '%s'", v);
                return -EINVAL;
        }

        v = h->config_get(b->ctx, "never_ban");
        r = nfaddr_list_parse(&b->never_ban, v ? v : "127.0.0.0/8, ::1/128, 169.254.0.0/16, fe80::/10", bad, sizeof bad);
        if (r == -EINVAL) {
                h->set_error(b->ctx, "never_ban: '%s' is not an IP address or CIDR (host bits must be zero)", bad);
                return r;
        }
        if (r < 0) {
                h->set_error(b->ctx, "never_ban: %s", strerror(-r));
                return r;
        }
        return 0;
}

static void nft_free(nft_backend *b) {
        if (!b)
                return;
        pthread_mutex_lock(&users_lock);
        if (b->nft)
                nft_ctx_free(b->nft);
        if (b->nft_json)
                nft_ctx_free(b->nft_json);
        pthread_mutex_unlock(&users_lock);
        nlread_free(b->nl);
        elems_free(b->mem);
        nfaddr_list_free(&b->never_ban);
        free(b->ops);
        sb_free(&b->batch);
        for (int s = 0; s < 4; s++) {
                sb_free(&b->pre[s]);
                sb_free(&b->del[s]);
                sb_free(&b->add[s]);
        }
        free(b);
}

static int nft_init(spw_ctx *ctx, const struct spw_host *host, const spw_kv *config, size_t n, void **selfp) {
        nft_backend *b = calloc(1, sizeof *b);
        int r;

        (void) config;
        (void) n;
        if (!b) {
                host->set_error(ctx, "out of memory");
                return -ENOMEM;
        }
        b->ctx = ctx;
        b->host = host;
        b->force_new_run = true;
        r = parse_config(b);
        if (r < 0)
                goto fail;
        b->mem = elems_new(on_emit, b);
        /* libnftables' context set-up touches process-wide state: one at a time */
        pthread_mutex_lock(&users_lock);
        b->nft = nft_ctx_new(NFT_CTX_DEFAULT);
        b->nft_json = nft_ctx_new(NFT_CTX_DEFAULT);
        pthread_mutex_unlock(&users_lock);
        if (!b->mem || !b->nft || !b->nft_json || nft_ctx_buffer_output(b->nft) < 0 || nft_ctx_buffer_error(b->nft) < 0 ||
            nft_ctx_buffer_output(b->nft_json) < 0 || nft_ctx_buffer_error(b->nft_json) < 0) {
                host->set_error(ctx, "out of memory (libnftables context)");
                r = -ENOMEM;
                goto fail;
        }
        nft_ctx_output_set_flags(b->nft_json, NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_TERSE);
        b->nl = nlread_new();
        if (!b->nl) {
                r = -errno;
                host->set_error(ctx, "opening a netfilter netlink socket failed: %s%s", strerror(-r),
                                r == -EPERM || r == -EAFNOSUPPORT ? " (the service needs AF_NETLINK: install the "
                                "spillway-plugin-nftables drop-in, see the plugin's README)" : "");
                goto fail;
        }

        bool existed = false;
        table_state st;
        r = table_setup(b, &existed);
        if (r == 0)
                r = table_read(b, &st);
        if (r < 0)
                goto fail;
        r = table_adopt(b, existed, st.handle, host->now(ctx));
        if (r < 0) {
                host->set_error(ctx, "reading the elements of table %s %s failed: %s", b->family, b->table, strerror(-r));
                goto fail;
        }
        if (b->check_interval && (r = host->schedule(ctx, b->check_interval, nft_check, b)) < 0) {
                host->set_error(ctx, "scheduling the table check failed: %s", strerror(-r));
                goto fail;
        }
        publish(b, true);
        table_users(b, +1);
        *selfp = b;
        return 0;
fail:
        nft_free(b);
        return r;
}

static void nft_shutdown(void *self) {
        nft_backend *b = self;

        /* after a reload the new instance already owns the table: leave it */
        unsigned users = table_users(b, -1);
        if (users == 0 && b->keep_on_stop && !elems_dirty(b->mem)) {
                table_state st;
                if (table_read(b, &st) == 0 && table_complete(b, &st))
                        state_save(b, st.handle);
        }
        if (users == 0 && !b->keep_on_stop) {
                char cmd[160];
                snprintf(cmd, sizeof cmd, "delete table %s %s", b->family, b->table);
                if (nft_run_cmd_from_buffer(b->nft, cmd) != 0)
                        b->host->log(b->ctx, LOG_WARNING, "keep_on_stop is false but removing table %s %s failed: %s",
                                     b->family, b->table, nft_error(b));
                else
                        b->host->log(b->ctx, LOG_INFO, "table %s %s removed (keep_on_stop: false)", b->family, b->table);
        }
        nft_free(b);
}

static const struct spw_backend nft_backend_desc = {
        SPW_BACKEND_HEADER,
        .name = "nftables",
        .version = NFT_PLUGIN_VERSION,
        .description = "bans become kernel drops: elements with timeouts in nftables sets",
        .config_keys = nft_keys,
        .init = nft_init,
        .insert = nft_insert,
        .flush = nft_flush,
        .read_at = nft_read_at,
        .delete_target = nft_delete_target,
        .delete_all = nft_delete_all,
        .shutdown = nft_shutdown,
};

SPW_BACKEND_EXPORT(nft_backend_desc)
