/* SPDX-License-Identifier: MIT */
#pragma once

/* Compiled-in defaults; each is documented in spillway.yaml(5). */

#include "build-config.h" /* from meson: SPW_* directories */
#include "timeutil.h"

#define SPW_DEFAULT_MAX_LINE          (1u << 20)              /* 1 MiB per JSON line */
#define SPW_DEFAULT_MAX_CONNECTIONS   1024u
#define SPW_DEFAULT_CLIENT_TIMEOUT    (60 * USEC_PER_SEC)     /* partial line with no progress */
#define SPW_DEFAULT_MAX_ADMIN_CONNECTIONS 64u                 /* admin socket; root gets a reserve beyond */
#define SPW_DEFAULT_MAX_CONNECTIONS_PER_UID 512u              /* ingest socket, per peer uid */
#define SPW_DEFAULT_IDLE_TIMEOUT      (300 * USEC_PER_SEC)    /* connection that sends nothing */
#define SPW_DEFAULT_MAX_BUFFERED_INPUT (32u << 20)            /* partial lines, all connections */
#define SPW_DEFAULT_MIN_PREFIX_V4     16u                     /* broadest automatic IPv4 ban */
#define SPW_DEFAULT_MIN_PREFIX_V6     32u                     /* broadest automatic IPv6 ban */
/* never banned, whatever the source: loopback and link-local (as the nftables plugin) */
#define SPW_DEFAULT_NEVER_BAN         "127.0.0.0/8, ::1/128, 169.254.0.0/16, fe80::/10"
#define SPW_DEFAULT_MAX_BAN_DURATION  (8760ULL * 3600 * USEC_PER_SEC) /* one year */
#define SPW_DEFAULT_BAN_SYNC_INTERVAL (2 * USEC_PER_SEC)        /* ban database -> nftables, history */
#define SPW_DEFAULT_BAN_HISTORY_MAX   1000000u                /* ban-history records (~60 MB at most) */
#define SPW_DEFAULT_QUEUE_SIZE        10000u
#define SPW_DEFAULT_BLOCK_TIMEOUT     (5 * USEC_PER_SEC)
#define SPW_DEFAULT_FLUSH_INTERVAL    (200 * USEC_PER_MSEC)
#define SPW_DEFAULT_FLUSH_BATCH       1000u
#define SPW_DEFAULT_FLUSH_DELAY       0                       /* commit as soon as the queue runs dry */
#define SPW_DEFAULT_MAX_RETRY         5u
#define SPW_DEFAULT_RETRY_BACKOFF     (500 * USEC_PER_MSEC)
#define SPW_DEFAULT_RETRY_BACKOFF_MAX (30 * USEC_PER_SEC)
#define SPW_DEFAULT_SPOOL_MAX_SIZE  ((size_t) 1 << 30)             /* 1 GiB: hours at a normal rate */
#define SPW_DEFAULT_DRAIN_TIMEOUT     (10 * USEC_PER_SEC)
#define SPW_DEFAULT_STUCK_TIMEOUT     (60 * USEC_PER_SEC)
#define SPW_DEFAULT_STATUS_INTERVAL   (500 * USEC_PER_MSEC)
