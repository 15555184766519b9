/* SPDX-License-Identifier: MIT */
/*
 * spillwayd: command line, logging setup, --check-config, then the daemon.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"
#include "daemon.h"
#include "jsonscratch.h"
#include "log.h"
#include "route.h"


static void help(void) {
        printf("Usage: spillwayd [OPTIONS]\n"
               "Fan overflow signals out to output backend plugins.\n\n"
               "  -c, --config=PATH          main configuration (default %s/spillway.yaml)\n"
               "      --check-config         validate everything (main file, backends, plugins,\n"
               "                             profiles) and exit: 0 if valid, 1 if not\n"
               "      --state-dir=DIR        state directory (default $STATE_DIRECTORY or %s)\n"
               "      --runtime-dir=DIR      create ingest.sock and admin.sock here\n"
               "                             (default $RUNTIME_DIRECTORY or %s)\n"
               "      --plugin-dir=DIR       where backend plugins are (default %s)\n"
               "      --backend-dir=DIR      backend files (default plugins/backend beside the config)\n"
               "      --profiles=PATH        routing profiles (default profiles.yaml beside the config)\n"
               "      --allow-unsafe-plugins load plugins not owned by root or writable by others\n"
               "                             (for tests and the unprivileged quick start only)\n"
               "      --log-target=TARGET    auto, console or journal (default auto)\n"
               "      --log-level=LEVEL      debug, info, notice, warning, err (default info)\n"
               "  -h, --help                 show this help\n"
               "      --version              show the version\n\n"
               "See spillwayd(8) and spillway.yaml(5).\n",
               SPW_CONFDIR, SPW_STATEDIR, SPW_RUNDIR, SPW_PLUGINDIR);
}

static int level_from_string(const char *s) {
        static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };
        for (int i = 0; i < 8; i++)
                if (streq(s, names[i]))
                        return i;
        if (streq(s, "error"))
                return LOG_ERR;
        if (streq(s, "warn"))
                return LOG_WARNING;
        return -1;
}

static void print_warning(const char *text, void *userdata) {
        fprintf(stderr, "spillwayd: warning: %s\n", text);
}

int main(int argc, char **argv) {
        enum {
                ARG_CHECK = 0x100, ARG_STATE, ARG_RUNTIME, ARG_PLUGINS, ARG_BACKENDS, ARG_PROFILES, ARG_UNSAFE,
                ARG_LOG_TARGET, ARG_LOG_LEVEL, ARG_VERSION,
        };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "check-config", no_argument, NULL, ARG_CHECK },
                { "state-dir", required_argument, NULL, ARG_STATE },
                { "runtime-dir", required_argument, NULL, ARG_RUNTIME },
                { "plugin-dir", required_argument, NULL, ARG_PLUGINS },
                { "backend-dir", required_argument, NULL, ARG_BACKENDS },
                { "profiles", required_argument, NULL, ARG_PROFILES },
                { "allow-unsafe-plugins", no_argument, NULL, ARG_UNSAFE },
                { "log-target", required_argument, NULL, ARG_LOG_TARGET },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        daemon_options opt = { .config_path = SPW_CONFDIR "/spillway.yaml" };
        enum log_target target = LOG_TARGET_AUTO;
        bool check = false;
        int c, k;

        /* before anything calls jansson; this thread runs the event loop */
        if (json_scratch_install() < 0) {
                fprintf(stderr, "spillwayd: out of memory\n");
                return 1;
        }
        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
                switch (c) {
                case 'c': opt.config_path = optarg; break;
                case ARG_CHECK: check = true; break;
                case ARG_STATE: opt.overrides.state_dir = optarg; break;
                case ARG_RUNTIME: opt.overrides.runtime_dir = optarg; break;
                case ARG_PLUGINS: opt.overrides.plugin_dir = optarg; break;
                case ARG_BACKENDS: opt.overrides.backend_dir = optarg; break;
                case ARG_PROFILES: opt.overrides.profiles = optarg; break;
                case ARG_UNSAFE: opt.engine.allow_unsafe_plugins = true; break;
                case ARG_LOG_TARGET:
                        k = log_target_from_string(optarg);
                        if (k < 0) {
                                fprintf(stderr, "spillwayd: --log-target: expected auto, console or journal, got '%s'\n", optarg);
                                return 2;
                        }
                        target = (enum log_target) k;
                        break;
                case ARG_LOG_LEVEL:
                        k = level_from_string(optarg);
                        if (k < 0) {
                                fprintf(stderr, "spillwayd: --log-level: expected debug, info, notice, warning or err, got '%s'\n", optarg);
                                return 2;
                        }
                        log_set_max_level(k);
                        break;
                case 'h': help(); return 0;
                case ARG_VERSION: printf("spillwayd %s (backend ABI %d.%d)\n", SPW_VERSION, SPW_BACKEND_ABI_MAJOR, SPW_BACKEND_ABI_MINOR); return 0;
                default: return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "spillwayd: unexpected argument '%s' (see --help)\n", argv[optind]);
                return 2;
        }
        log_setup("spillwayd", check ? LOG_TARGET_CONSOLE : target);

        if (check) {
                spw_error err = { 0 };
                _cleanup_(config_freep) spw_config *cfg = NULL;
                opt.overrides.credential_placeholders = true;
                k = config_load(opt.config_path, &opt.overrides, &cfg, &err);
                if (k >= 0)
                        k = engine_check_config(cfg, &opt.engine, print_warning, NULL, &err);
                if (k < 0) {
                        fprintf(stderr, "spillwayd: configuration error: %s\n", err.msg);
                        return 1;
                }
                printf("%s: configuration OK (%zu backends", opt.config_path, cfg->n_backends);
                for (size_t i = 0; i < cfg->n_backends; i++)
                        printf("%s%s", i ? ", " : ": ", cfg->backends[i].name);
                printf("; profiles: %s)\n", access(cfg->profiles, F_OK) == 0 ? cfg->profiles : "none, every signal to every backend");
                if (cfg->unchecked_credentials)
                        printf("note: %u ${CREDENTIAL:...} value(s) not checked: $CREDENTIALS_DIRECTORY is not set outside the "
                               "service (spillwayctl config check asks the running daemon)\n", cfg->unchecked_credentials);
                return 0;
        }
        return daemon_run(&opt);
}
