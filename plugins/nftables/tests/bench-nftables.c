/* SPDX-License-Identifier: MIT */
/*
 * bench-nftables: how fast bans reach the kernel through the nftables
 * backend, beside fail2ban's way of doing the same work (one `nft add
 * element` process per ban), in the same run.
 *
 * It runs in a network namespace of its own (unshare(CLONE_NEWNET)), so
 * nothing of the machine's firewall is touched, and needs root for that;
 * otherwise it exits 77 (skip).
 *
 *   plugin:  nftables.so loaded with dlopen() as the daemon does, driven
 *            through tests/lib/testhost: --bans distinct addresses, a
 *            flush (one netlink transaction) every --batch bans;
 *   start:   the plugin's init on the table the first pass left (kept on
 *            stop): set-up plus adopting every element, read from the
 *            kernel, then from the copy the previous stop saved;
 *   replace: the same bans again into that table: each replaces an element;
 *   fork:    --forks bans, each by fork+exec of `nft add element ...`.
 *
 * Output (one line per mode; keep the format):
 *   plugin: N bans/s (B bans, batch N, W s wall, C s CPU; K elements in the set)
 *   start: T ms to set up the table and adopt the K elements it holds, read from the kernel
 *   start: T ms ... from the copy saved at stop
 *   replace: N bans/s (...)
 *   fork: N bans/s (F bans, one nft process each)
 *   ratio: plugin / fork = X
 */
#include <dlfcn.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-fixtures.h"
#include "tests.h"
#include "timeutil.h"

#ifndef NFT_PLUGIN_PATH
#define NFT_PLUGIN_PATH "nftables.so"
#endif

/* Elements in a set, counted from nft's listing. */
static uint64_t count_elements(const char *nft, const char *set) {
        char cmd[512];
        uint64_t n = 0;
        FILE *f;
        int c;

        snprintf(cmd, sizeof cmd, "%s list set inet spillway %s", nft, set);
        f = popen(cmd, "r");
        CHECK(f);
        while ((c = fgetc(f)) != EOF)
                n += c == 'e' && fgetc(f) == 'x' && fgetc(f) == 'p';   /* one "expires" per element */
        pclose(f);
        return n;
}

/* Start the plugin on the table a pass left (keep_on_stop): the time its
 * init takes, which adopts every element the sets hold. */
static double time_start(const char *path, const char *state_dir, uint64_t *adopted) {
        const struct spw_backend *(*entry)(void);
        spw_kv config[] = { { "check_interval", "0" } };
        testhost *host;
        void *h, *self = NULL;
        usec_t start;
        double ms;

        h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        CHECK(h);
        entry = (const struct spw_backend *(*)(void)) dlsym(h, SPW_BACKEND_ENTRY_SYMBOL);
        CHECK(entry);
        host = testhost_new("bench", config, 1);
        testhost_set_time(host, now_realtime());
        testhost_set_state_directory(host, state_dir);
        start = now_monotonic();
        CHECK_OK(testhost_init(host, entry(), &self));
        ms = (double) (now_monotonic() - start) / 1e3;
        *adopted = strtoull(testhost_status(host, "elements_ipv4") ?: "0", NULL, 10);
        entry()->shutdown(self);
        testhost_free(host);
        dlclose(h);
        return ms;
}

static double fork_bans(const char *nft, uint64_t n) {
        char cmd[256];
        usec_t start;
        int status;

        snprintf(cmd, sizeof cmd, "%s add table inet forkbench; %s add set inet forkbench a4 '{ type ipv4_addr; flags timeout; }'",
                 nft, nft);
        CHECK(system(cmd) == 0);
        start = now_monotonic();
        for (uint64_t i = 0; i < n; i++) {
                char el[96];
                pid_t pid;
                snprintf(el, sizeof el, "{ 10.200.%u.%u timeout 4h }", (unsigned) (i >> 8) & 255, (unsigned) i & 255);
                pid = fork();
                CHECK(pid >= 0);
                if (pid == 0) {
                        execl(nft, nft, "add", "element", "inet", "forkbench", "a4", el, (char *) NULL);
                        _exit(127);
                }
                CHECK(waitpid(pid, &status, 0) == pid);
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
        return (double) (now_monotonic() - start) / 1e6;
}

int main(int argc, char **argv) {
        uint64_t bans = 100000, batch = 1000, forks = 1000, n_rows, elements;
        const char *plugin = NFT_PLUGIN_PATH, *nft = "/usr/sbin/nft";
        static const struct option opts[] = {
                { "bans", required_argument, NULL, 'n' },
                { "batch", required_argument, NULL, 'b' },
                { "forks", required_argument, NULL, 'f' },
                { "plugin", required_argument, NULL, 'p' },
                { "nft", required_argument, NULL, 'N' },
                { NULL, 0, NULL, 0 },
        };
        spw_kv config[] = { { "check_interval", "0" } };
        double wall, cpu, read_ms, fork_wall, plugin_rate;
        int c;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'n': CHECK_OK(parse_u64(optarg, &bans)); break;
                case 'b': CHECK_OK(parse_u64(optarg, &batch)); break;
                case 'f': CHECK_OK(parse_u64(optarg, &forks)); break;
                case 'p': plugin = optarg; break;
                case 'N': nft = optarg; break;
                default:
                        fprintf(stderr, "usage: %s [--bans N] [--batch N] [--forks N] [--plugin PATH] [--nft PATH]\n", argv[0]);
                        return 2;
                }
        }
        if (geteuid() != 0) {
                printf("SKIP: needs root (a network namespace of its own)\n");
                return 77;
        }
        if (access(nft, X_OK) < 0) {
                printf("SKIP: %s not found (Debian: nftables)\n", nft);
                return 77;
        }
        if (unshare(CLONE_NEWNET) < 0) {
                printf("SKIP: unshare(CLONE_NEWNET): %m\n");
                return 77;
        }

        /* fail2ban's way first, into a ruleset that has nothing else (its
         * best case: nft reads the whole ruleset at each start) */
        fork_wall = fork_bans(nft, forks);

        wall = bench_through_plugin(argv[0], plugin, config, 1, bans, batch, bans, &cpu, &n_rows, &read_ms);
        unlink("/tmp/nftables-bench.elements");        /* the fixture's host saves in /tmp */
        elements = count_elements(nft, "addr4");
        CHECK_EQ(elements, bans);
        CHECK_EQ(n_rows, bans);
        plugin_rate = (double) bans / wall;
        printf("plugin: %.0f bans/s (%" PRIu64 " bans, batch %" PRIu64 ", %.3f s wall, %.3f s CPU; %" PRIu64
               " elements in the set; read_at %.1f ms)\n",
               plugin_rate, bans, batch, wall, cpu, elements, read_ms);

        /* a restart: the first reads the elements from the kernel (no saved
         * copy), and saves them at its stop; the second reads that copy */
        char state_dir[] = "/tmp/bench-nftables-XXXXXX", copy[128];
        CHECK(mkdtemp(state_dir));
        read_ms = time_start(plugin, state_dir, &n_rows);
        CHECK_EQ(n_rows, bans);
        printf("start: %.0f ms to set up the table and adopt the %" PRIu64 " elements it holds, read from the kernel\n",
               read_ms, n_rows);
        read_ms = time_start(plugin, state_dir, &n_rows);
        CHECK_EQ(n_rows, bans);
        printf("start: %.0f ms to set up the table and adopt the %" PRIu64 " elements it holds, from the copy saved at stop\n",
               read_ms, n_rows);
        snprintf(copy, sizeof copy, "%s/nftables-bench.elements", state_dir);
        unlink(copy);
        CHECK_OK(rmdir(state_dir));

        wall = bench_through_plugin(argv[0], plugin, config, 1, bans, batch, bans, &cpu, &n_rows, &read_ms);
        unlink("/tmp/nftables-bench.elements");
        CHECK_EQ(count_elements(nft, "addr4"), bans);
        printf("replace: %.0f bans/s (%" PRIu64 " bans replacing elements, batch %" PRIu64 ", %.3f s wall, %.3f s CPU)\n",
               (double) bans / wall, bans, batch, wall, cpu);

        printf("fork: %.0f bans/s (%" PRIu64 " bans, one nft process each, into an empty ruleset, %.3f s wall)\n", (double) forks / fork_wall,
               forks, fork_wall);
        printf("ratio: plugin / fork = %.0f\n", plugin_rate / ((double) forks / fork_wall));
        return 0;
}
