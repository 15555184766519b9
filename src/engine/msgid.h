/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * MESSAGE_IDs of the important journal events. Every id here has an entry
 * in src/daemon/spillway.catalog (checked by test_catalog_covers_every_message_id
 * in tests/integration/test_lifecycle.py), so
 * `journalctl -x` explains it.
 */

#define SPW_MESSAGE_STARTED            "afc5c37135eb43f9883e15f5712a56e9"
#define SPW_MESSAGE_STOPPED            "19dd60121e98470caf5379d9e96cfb9e"
#define SPW_MESSAGE_BACKEND_LOADED     "21b3d44c88ea416e899f671696d6ef04"
#define SPW_MESSAGE_BACKEND_FAILED     "032ce860aa9646c5b3031911702c671d"
#define SPW_MESSAGE_RELOADED           "a11fd97ae51a492ea06f9cdc82cf304b"
#define SPW_MESSAGE_RELOAD_FAILED      "237066dafa6740369558695de53593a2"
#define SPW_MESSAGE_QUEUE_FULL         "23dff0654bc440c984fa1492c4f70c3a"
#define SPW_MESSAGE_BACKEND_RETRY      "15d1affde9a241cc9ba0d05b8c6c361d"
#define SPW_MESSAGE_UNDELIVERED        "46e5d828e2934e7cae342a7cb7e963bb"
#define SPW_MESSAGE_SIGNAL_FAILED      "570df71576a2486da2e9153e66c80ab3"
#define SPW_MESSAGE_BAN_DECISION       "9d23b844791348ab82e4e8298fb22621"
#define SPW_MESSAGE_ADMIN_ACTION       "4ee1e216b400415d9e8f9474ce118704"
#define SPW_MESSAGE_WATCHDOG_STUCK     "459f895dbde24b479a290dcfe0057862"
#define SPW_MESSAGE_BACKEND_STOPPED    "55171fb48a894b158e62a2d46b005e4a"
#define SPW_MESSAGE_SPOOL_TRUNCATED    "55a56e51f1b54b468478a01cf456aee4"
#define SPW_MESSAGE_SPOOL_REPLAY       "2d6829be3783419e8fe49c37cbaae662"
