#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sb_error_set(struct sb_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

int sb_error_prefix(struct sb_error *e, const char *fmt, ...)
{
	char prefix[SB_ERROR_MSG_MAX], old[SB_ERROR_MSG_MAX];
	va_list ap;

	if (!e)
		return SB_ERR_INTERNAL;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	snprintf(e->msg, sizeof(e->msg), "%s: %s", prefix, old);
	return e->code;
}

const char *sb_err_str(int code)
{
	switch (code) {
	case SB_OK: return "success";
	case SB_ERR_USAGE: return "invalid input";
	case SB_ERR_NOMEM: return "out of memory";
	case SB_ERR_IO: return "input/output error";
	case SB_ERR_REDIS: return "Redis unavailable";
	case SB_ERR_NOTFOUND: return "not found";
	case SB_ERR_EXISTS: return "already exists";
	case SB_ERR_CRYPTO: return "invalid Fernet token";
	case SB_ERR_TRANSPORT: return "ssh transport failed";
	case SB_ERR_TIMEOUT: return "timed out";
	case SB_ERR_UNAVAILABLE: return "no sandbox available";
	case SB_ERR_TOOBIG: return "input too large";
	case SB_ERR_HOSTKEY: return "host key verification failed";
	case SB_ERR_CANCELLED: return "cancelled";
	default: return "internal error";
	}
}

int sb_err_exit_code(int code)
{
	switch (code) {
	case SB_OK: return SB_EXIT_OK;
	case SB_ERR_USAGE:
	case SB_ERR_TOOBIG:
	case SB_ERR_EXISTS:
	case SB_ERR_NOTFOUND:
	case SB_ERR_CRYPTO: return SB_EXIT_USAGE;
	case SB_ERR_REDIS:
	case SB_ERR_TRANSPORT:
	case SB_ERR_HOSTKEY: return SB_EXIT_TEMPFAIL;
	case SB_ERR_UNAVAILABLE: return SB_EXIT_UNAVAILABLE;
	case SB_ERR_TIMEOUT: return SB_EXIT_TIMEOUT;
	case SB_ERR_INTERNAL: return SB_EXIT_SOFTWARE;
	default: return SB_EXIT_FAILED;
	}
}
