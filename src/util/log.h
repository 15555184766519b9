/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Logging for programs (never called by util code that returns errors).
 *
 * Under journald (stderr is the journal stream named by $JOURNAL_STREAM, or
 * the target was forced), every line goes through sd_journal_sendv() with
 * PRIORITY, CODE_*, SYSLOG_IDENTIFIER and the caller's extra fields
 * (SPILLWAY_BACKEND=..., MESSAGE_ID=...). Otherwise lines go to stderr as
 * "ident: level: message". Thread-safe.
 */

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "macro.h"

typedef struct log_field {
        const char *key;   /* "SPILLWAY_BACKEND" */
        const char *value;
} log_field;

enum log_target {
        LOG_TARGET_AUTO,
        LOG_TARGET_CONSOLE,
        LOG_TARGET_JOURNAL,
};

void log_setup(const char *ident, enum log_target target);
void log_set_max_level(int level);
int log_get_max_level(void);
int log_target_from_string(const char *s);

/* Copy `in` to `out` (NUL-terminated, truncated to size) so that it is one
 * harmless line: control characters become \n, \r, \t, \e or \xNN, and
 * bytes that are not valid UTF-8 become \xNN. Every
 * message is passed through it before it reaches stderr or the journal's
 * MESSAGE=, so a producer's "scenario" cannot forge log lines or terminal
 * escapes; structured fields keep the raw value. Returns the length. */
size_t log_escape(char *out, size_t size, const char *in);

/* Returns -abs(err) when err != 0, else 0, so "return log_error_errno(r, ...)" works.
 * "%m" in the format is the text of err. */
int log_fields_internal(int level, int err, const char *file, int line, const char *func,
                        const log_field *fields, size_t n_fields, const char *format, ...) _printf_(8, 9);
int log_fieldsv_internal(int level, int err, const char *file, int line, const char *func,
                         const log_field *fields, size_t n_fields, const char *format, va_list ap) _printf_(8, 0);

#define log_full_errno(level, err, ...) \
        log_fields_internal(level, err, __FILE__, __LINE__, __func__, NULL, 0, __VA_ARGS__)
#define log_full(level, ...) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...)   log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)    log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)  log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)   log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...)   log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...)    log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...)   log_full_errno(LOG_ERR, e, __VA_ARGS__)

/* Structured: log_struct(LOG_INFO, FIELDS({"SPILLWAY_BACKEND", name}), "loaded %s", name) */
#define LOG_FIELDS(...) ((const log_field[]) { __VA_ARGS__ }), \
        (sizeof((const log_field[]) { __VA_ARGS__ }) / sizeof(log_field))
#define log_struct(level, fields_and_n, ...) \
        log_fields_internal(level, 0, __FILE__, __LINE__, __func__, fields_and_n, __VA_ARGS__)
#define log_struct_errno(level, err, fields_and_n, ...) \
        log_fields_internal(level, err, __FILE__, __LINE__, __func__, fields_and_n, __VA_ARGS__)
