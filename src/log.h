/* layer 0: human log lines on stderr: "sshbox: <level>: <message>".
 *
 * Never pass a secret to these.  The level threshold comes from
 * SSHBOX_LOG_LEVEL (error|warn|info|debug), default info for the daemon and
 * warn for everything else (set by main). */
#ifndef SSHBOX_LOG_H
#define SSHBOX_LOG_H

#include "err.h"

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
/* Prefix each line with its UTC time (RFC 3339, ms): the daemon's log. */
void log_set_timestamps(int on);
/* Parse "error"/"warn"/"info"/"debug"; returns -1 when unknown. */
SB_MUST_CHECK int log_level_parse(const char *s);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
