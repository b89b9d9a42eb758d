/* sshbox sandbox add|list|show|enable|disable|drain|remove */
#include "cmd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "child.h"
#include "conn.h"
#include "fsutil.h"
#include "keys.h"
#include "kv.h"
#include "lock.h"
#include "log.h"
#include "registry.h"
#include "remote.h"
#include "ssh.h"
#include "validate.h"

#define SSH_KEYSCAN "/usr/bin/ssh-keyscan"
#define DEFAULT_WORKDIR "/var/lib/sshbox"

struct sbx_opts {
	const char *account, *host, *port, *user, *workdir, *slots, *claude, *host_key;
	int accept_new, force;
};

static int take(int argc, char **argv, int *i, const char *name, const char **dst)
{
	size_t n = strlen(name);

	if (strcmp(argv[*i], name) == 0 && *i + 1 < argc) {
		*dst = argv[++*i];
		return 1;
	}
	if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') {
		*dst = argv[*i] + n + 1;
		return 1;
	}
	return 0;
}

static int parse_opts(int argc, char **argv, struct sbx_opts *o, struct sb_error *e)
{
	int i;

	for (i = 2; i < argc; i++) {
		if (take(argc, argv, &i, "--account", &o->account) || take(argc, argv, &i, "--host", &o->host) ||
		    take(argc, argv, &i, "--port", &o->port) || take(argc, argv, &i, "--user", &o->user) ||
		    take(argc, argv, &i, "--workdir", &o->workdir) || take(argc, argv, &i, "--slots", &o->slots) ||
		    take(argc, argv, &i, "--claude", &o->claude) || take(argc, argv, &i, "--host-key", &o->host_key))
			continue;
		if (strcmp(argv[i], "--accept-new") == 0)
			o->accept_new = 1;
		else if (strcmp(argv[i], "--force") == 0)
			o->force = 1;
		else if (strcmp(argv[i], "--json") == 0)
			;
		else
			return sb_error_set(e, SB_ERR_USAGE, "unknown option '%.64s' for 'sandbox %s'", argv[i], argv[1]);
	}
	/* everything is checked before Redis is asked: bad input is exit 2
	 * whether or not Redis is up */
	if ((o->account && validate_account(o->account, e)) || (o->host && validate_host(o->host, e)) ||
	    (o->port && validate_port(o->port, e)) || (o->slots && validate_slots(o->slots, e)) ||
	    (o->user && validate_user(o->user, e)) || (o->workdir && validate_workdir(o->workdir, e)) ||
	    (o->claude && validate_claude_path(o->claude, e)))
		return SB_ERR_USAGE;
	return 0;
}

/* "TYPE BASE64", or a known_hosts line "NAMES TYPE BASE64 [comment]". */
static int parse_host_key(const char *in, struct buf *out, struct sb_error *e)
{
	static const char *const types[] = { "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
					     "ecdsa-sha2-nistp521", "ssh-rsa", "sk-ssh-ed25519@openssh.com",
					     "sk-ecdsa-sha2-nistp256@openssh.com" };
	char *copy = strdup(in), *tok, *save = NULL, *type = NULL, *b64 = NULL;
	size_t i;
	int r = 0;

	if (!copy)
		return sb_error_set(e, SB_ERR_NOMEM, "out of memory");
	if (strlen(in) > VALIDATE_HOST_KEY_MAX || strpbrk(in, "\n\r"))
		r = sb_error_set(e, SB_ERR_USAGE, "invalid host-key: expected one line 'TYPE BASE64'");
	if (!r && (in[strspn(in, " \t")] == '@'))
		r = sb_error_set(e, SB_ERR_USAGE,
				 "invalid host-key: a known_hosts line with a marker (@revoked, @cert-authority) cannot be pinned");
	for (tok = strtok_r(copy, " \t", &save); !r && tok; tok = strtok_r(NULL, " \t", &save)) {
		for (i = 0; i < sizeof(types) / sizeof(types[0]) && !type; i++)
			if (strcmp(tok, types[i]) == 0)
				type = tok;
		if (type && tok != type) {
			b64 = tok;
			break;
		}
	}
	if (!r && (!type || !b64))
		r = sb_error_set(e, SB_ERR_USAGE, "invalid host-key: expected 'TYPE BASE64' with a supported key type");
	for (i = 0; !r && b64[i]; i++)
		if (!isalnum((unsigned char)b64[i]) && !strchr("+/=", b64[i]))
			r = sb_error_set(e, SB_ERR_USAGE, "invalid host-key: the key is not base64");
	if (!r)
		r = buf_printf(out, "%s %s", type, b64) ? sb_error_set(e, SB_ERR_NOMEM, "out of memory") : 0;
	if (!r) {
		char fp[128];
		r = keys_fingerprint(out->data, fp, e);
		if (r)
			sb_error_set(e, SB_ERR_USAGE, "invalid host-key: ssh-keygen cannot read it");
	}
	free(copy);
	return r;
}

static int keyscan(const char *host, int port, struct buf *out, struct sb_error *e)
{
	static const char *const prefer[] = { "ssh-ed25519 ", "ecdsa-sha2-nistp256 ", "ssh-rsa " };
	struct child_run_opts o = { NULL, "/", 1, 0, 20000 };
	struct buf so = BUF_INIT, se = BUF_INIT;
	char portstr[16];
	const char *argv[] = { SSH_KEYSCAN, "-T", "10", "-p", portstr, "-t", "ed25519,ecdsa,rsa", "--", host, NULL };
	size_t i;
	int code = -1, r;

	snprintf(portstr, sizeof(portstr), "%d", port);
	buf_init(&so, 256 * 1024);
	buf_init(&se, 64 * 1024);
	r = child_run(argv, &o, NULL, 0, &so, &se, &code, e);
	if (!r) {
		r = sb_error_set(e, SB_ERR_TRANSPORT, "ssh-keyscan found no host key on '%s' port %d", host, port);
		for (i = 0; i < sizeof(prefer) / sizeof(prefer[0]) && r; i++) {
			const char *p = buf_cstr(&so);
			while ((p = strstr(p, prefer[i])) != NULL) {
				/* a line "host type b64" */
				size_t len = strcspn(p, "\n");
				char *line = strndup(p, len);
				if (line) {
					r = parse_host_key(line, out, e);
					free(line);
				}
				break;
			}
		}
	}
	buf_release(&so);
	buf_release(&se);
	return r;
}

static void json_sandbox(struct buf *out, const struct sandbox_rec *s, int used, const char *fp)
{
	buf_puts(out, "{\"account\":");
	cmd_json_string(out, s->account);
	buf_puts(out, ",\"host\":");
	cmd_json_string(out, s->host);
	buf_printf(out, ",\"port\":%d,\"user\":", s->port);
	cmd_json_string(out, s->user);
	buf_puts(out, ",\"workdir\":");
	cmd_json_string(out, s->workdir);
	buf_printf(out, ",\"slots\":%d,\"slots_used\":%d,\"claude\":", s->slots, used);
	cmd_json_string(out, s->claude);
	buf_puts(out, ",\"state\":");
	cmd_json_string(out, s->state);
	buf_puts(out, ",\"host_key\":");
	cmd_json_string(out, s->host_key);
	if (fp) {
		buf_puts(out, ",\"host_key_fingerprint\":");
		cmd_json_string(out, fp);
	}
	buf_printf(out, ",\"created_at\":%lld,\"updated_at\":%lld}", s->created_at, s->updated_at);
}

static int slots_used(struct kv *kv, const struct sandbox_rec *s, int *used, struct sb_error *e)
{
	struct lock_holder h[VALIDATE_SLOTS_MAX];

	return lock_list_holders(kv, s->account, s->host, s->slots, h, used, e);
}

static int sandbox_add(struct cmd_ctx *ctx, struct kv *kv, const struct sbx_opts *o, struct sb_error *e)
{
	struct sandbox_rec rec = SANDBOX_REC_INIT;
	struct buf key = BUF_INIT, out = BUF_INIT;
	char host[VALIDATE_HOST_MAX + 1], fp[128];
	int r;

	if (!o->account || !o->host)
		return sb_error_set(e, SB_ERR_USAGE, "'sandbox add' needs --account and --host");
	if ((r = validate_host_canonical(o->host, host, sizeof(host), e)) != 0)
		return r;
	rec.account = (char *)o->account;
	rec.host = host;
	rec.port = 22;
	rec.slots = 1;
	rec.user = (char *)(o->user ? o->user : "root");
	rec.workdir = (char *)(o->workdir ? o->workdir : DEFAULT_WORKDIR);
	rec.claude = (char *)(o->claude ? o->claude : "claude");
	if ((o->port && validate_port_parse(o->port, &rec.port, e)) ||
	    (o->slots && validate_slots_parse(o->slots, &rec.slots, e)) ||
	    validate_user(rec.user, e) || validate_workdir(rec.workdir, e) || validate_claude_path(rec.claude, e))
		return SB_ERR_USAGE;
	if (o->host_key && o->accept_new)
		return sb_error_set(e, SB_ERR_USAGE, "--host-key and --accept-new exclude each other");
	if (o->host_key)
		r = parse_host_key(o->host_key, &key, e);
	else if (o->accept_new)
		r = keyscan(host, rec.port, &key, e);
	else
		r = sb_error_set(e, SB_ERR_USAGE,
				 "no host key for sandbox '%s': pass --host-key 'TYPE BASE64' or --accept-new", host);
	if (r)
		goto out;
	rec.host_key = key.data;
	if ((r = keys_fingerprint(key.data, fp, e)) != 0)
		goto out;
	if ((r = registry_sandbox_add(kv, &rec, e)) != 0)
		goto out;
	if (ctx->json) {
		struct sandbox_rec got = SANDBOX_REC_INIT;
		if ((r = registry_sandbox_get(kv, o->account, host, &got, e)) == 0) {
			json_sandbox(&out, &got, 0, fp);
			buf_putc(&out, '\n');
		}
		sandbox_rec_release(&got);
	} else {
		buf_printf(&out, "added sandbox %s for account %s (%s@%s:%d, workdir %s, %d slot%s)\n"
			   "host key %s %s%s\n", host, o->account, rec.user, host, rec.port, rec.workdir,
			   rec.slots, rec.slots == 1 ? "" : "s", fp,
			   o->accept_new ? "pinned from ssh-keyscan: compare it with the sandbox's " : "pinned",
			   o->accept_new ? "`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`" : "");
	}
	(void)fs_write_all(STDOUT_FILENO, buf_cstr(&out), out.len);
out:
	buf_release(&key);
	buf_release(&out);
	return r;
}

static int sandbox_list(struct cmd_ctx *ctx, struct kv *kv, const struct sbx_opts *o, int show,
			struct sb_error *e)
{
	struct sandbox_rec *list = NULL;
	struct buf out = BUF_INIT;
	size_t n = 0, i;
	int r, shown = 0;

	if (show && (!o->account || !o->host))
		return sb_error_set(e, SB_ERR_USAGE, "'sandbox show' needs --account and --host");
	if ((r = registry_sandbox_list(kv, o->account, &list, &n, e)) != 0)
		return r;
	if (ctx->json && !show)
		buf_putc(&out, '[');
	else if (!show)
		buf_printf(&out, "%-16s %-28s %-6s %-14s %-9s %-6s %s\n", "ACCOUNT", "HOST", "PORT", "USER",
			   "STATE", "SLOTS", "WORKDIR");
	for (i = 0; i < n && !r; i++) {
		char host[VALIDATE_HOST_MAX + 1];
		int used = 0;

		if (show && (validate_host_canonical(o->host, host, sizeof(host), NULL) ||
			     strcmp(host, list[i].host) != 0))
			continue;
		if (slots_used(kv, &list[i], &used, e) != 0) {
			/* one unreadable lock key must not hide the registry */
			log_warn("%s", e->msg);
			used = -1;
		}
		if (ctx->json) {
			if (shown)
				buf_putc(&out, ',');
			json_sandbox(&out, &list[i], used, NULL);
		} else if (show) {
			buf_printf(&out, "account:  %s\nhost:     %s\nport:     %d\nuser:     %s\nworkdir:  %s\n"
				   "slots:    %d/%d used\nclaude:   %s\nstate:    %s\nhost key: %s\n",
				   list[i].account, list[i].host, list[i].port, list[i].user, list[i].workdir,
				   used, list[i].slots, list[i].claude, list[i].state, list[i].host_key);
		} else {
			char slots[24];
			snprintf(slots, sizeof(slots), "%d/%d", used, list[i].slots);
			buf_printf(&out, "%-16s %-28s %-6d %-14s %-9s %-6s %s\n", list[i].account, list[i].host,
				   list[i].port, list[i].user, list[i].state, slots, list[i].workdir);
		}
		shown++;
	}
	if (!r && show && !shown)
		r = sb_error_set(e, SB_ERR_NOTFOUND, "sandbox '%s' is not registered for account '%s'", o->host, o->account);
	if (!r && ctx->json)
		buf_puts(&out, show ? "\n" : "]\n");
	if (!r)
		(void)fs_write_all(STDOUT_FILENO, buf_cstr(&out), out.len);
	sandbox_rec_free_array(list, n);
	buf_release(&out);
	return r;
}

static int sandbox_change(struct cmd_ctx *ctx, struct kv *kv, const char *verb, const struct sbx_opts *o,
			  struct sb_error *e)
{
	struct sandbox_rec rec = SANDBOX_REC_INIT;
	int r, used = 0;

	if (!o->account || !o->host)
		return sb_error_set(e, SB_ERR_USAGE, "'sandbox %s' needs --account and --host", verb);
	if ((r = registry_sandbox_get(kv, o->account, o->host, &rec, e)) != 0)
		return r;
	if (strcmp(verb, "remove") == 0) {
		if (!o->force && (r = slots_used(kv, &rec, &used, e)) == 0 && used > 0)
			r = sb_error_set(e, SB_ERR_EXISTS,
					 "sandbox '%s' of account '%s' is running %d job%s: drain it first or pass --force",
					 rec.host, rec.account, used, used == 1 ? "" : "s");
		if (!r)
			r = registry_sandbox_remove(kv, o->account, o->host, e);
	} else {
		const char *state = strcmp(verb, "enable") == 0 ? REGISTRY_STATE_ACTIVE :
				    strcmp(verb, "disable") == 0 ? REGISTRY_STATE_DISABLED : REGISTRY_STATE_DRAINING;
		r = registry_sandbox_set_state(kv, o->account, o->host, state, e);
	}
	if (!r) {
		if (ctx->json)
			printf("{\"account\":\"%s\",\"host\":\"%s\",\"action\":\"%s\"}\n", rec.account, rec.host, verb);
		else
			printf("%s: sandbox %s of account %s\n", verb, rec.host, rec.account);
	}
	sandbox_rec_release(&rec);
	return r;
}


/* ---- check ---- */

/* What a sandbox needs, probed by one POSIX sh script on the session's
 * stdin; it prints "name|required|ok-or-missing|version" lines. */
static const char check_body[] =
	"item() { n=$1; q=$2; shift 2\n"
	"  if command -v \"$1\" >/dev/null 2>&1 && v=$(\"$@\" 2>&1 </dev/null | head -n 1) && [ -n \"$v\" ]; then\n"
	"    printf '%s|%s|ok|%s\\n' \"$n\" \"$q\" \"$v\"; else printf '%s|%s|missing|\\n' \"$n\" \"$q\"; fi; }\n"
	"item bash 1 bash --version\n"
	"item flock 1 flock --version\n"
	"item git 1 git --version\n"
	"item git-lfs 1 git-lfs version\n"
	"item node 1 node --version\n"
	"item npm 1 npm --version\n"
	"item python3 1 python3 --version\n"
	"item uv 1 uv --version\n"
	"item claude 1 \"$C\" --version\n"
	"item curl 0 curl --version\n"
	"if command -v make >/dev/null 2>&1; then item build-essential 0 gcc --version; else echo 'build-essential|0|missing|'; fi\n"
	"if mkdir -p -- \"$W\" 2>/dev/null && t=$(mktemp \"$W/.sshbox-check.XXXXXX\" 2>/dev/null) && rm -f -- \"$t\"; then\n"
	"  echo \"workdir|1|ok|$W is writable\"; else echo \"workdir|1|missing|$W is not writable by $(id -un)\"; fi\n"
	"k=$(df -Pk -- \"$W\" 2>/dev/null | awk 'NR==2 { print $4 }')\n"
	"case $k in (''|*[!0-9]*) echo 'disk|1|missing|unknown';;\n"
	"  (*) if [ \"$k\" -ge 1048576 ]; then echo \"disk|1|ok|$((k / 1024)) MiB free\"; else echo \"disk|1|missing|only $((k / 1024)) MiB free (< 1 GiB)\"; fi;; esac\n";

static const char *check_fix(const char *name, const struct sandbox_rec *s)
{
	static const struct { const char *name, *fix; } t[] = {
		{ "bash", "apt-get install bash" },
		{ "flock", "apt-get install util-linux" },
		{ "git", "apt-get install git" },
		{ "git-lfs", "apt-get install git-lfs && git lfs install --system" },
		{ "node", "apt-get install nodejs (Claude Code needs Node.js 18 or later)" },
		{ "npm", "apt-get install npm" },
		{ "python3", "apt-get install python3" },
		{ "uv", "curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/usr/local/bin sh" },
		{ "claude", "npm install -g @anthropic-ai/claude-code (or fix the path: sshbox sandbox add --claude)" },
		{ "curl", "apt-get install curl" },
		{ "build-essential", "apt-get install build-essential" },
		{ "disk", "free space under the workdir" },
	};
	size_t i;

	if (strcmp(name, "workdir") == 0)
		return s->workdir;   /* the caller words it */
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcmp(name, t[i].name) == 0)
			return t[i].fix;
	return "";
}

/* Remote text is untrusted: no control characters reach the terminal. */
static void put_clean(struct buf *out, const char *s)
{
	for (; *s; s++)
		buf_putc(out, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

/* One sandbox: *missing = required items missing; SB_ERR_TRANSPORT etc.
 * when it cannot be reached (reported in out too). */
static int check_one(struct cmd_ctx *ctx, struct kv *kv, const struct sandbox_rec *s, struct buf *out, int first,
		     int *missing)
{
	struct sb_error e = SB_ERROR_INIT;
	struct conn c = CONN_INIT;
	struct buf script = BUF_INIT, res = BUF_INIT, items = BUF_INIT;
	char *line, *save = NULL;
	int code = -1, r, n = 0, opt_missing = 0;

	*missing = 0;
	buf_puts(&script, "W=");
	remote_quote(&script, s->workdir);
	buf_puts(&script, "; C=");
	remote_quote(&script, s->claude ? s->claude : "claude");
	buf_puts(&script, "\n");
	buf_puts(&script, check_body);
	r = conn_open(&c, ctx->cfg, kv, s, &e);
	if (!r)
		r = ssh_exec(&c.t, "/bin/sh -s", script.data, script.len, &res, 60000, &code, &e);
	if (!r && code != 0)
		r = sb_error_set(&e, SB_ERR_TRANSPORT, "the check script on sandbox '%s' exited with status %d", s->host, code);
	conn_release(&c);
	if (ctx->json) {
		buf_puts(out, first ? "{\"account\":" : ",{\"account\":");
		cmd_json_string(out, s->account);
		buf_puts(out, ",\"host\":");
		cmd_json_string(out, s->host);
	}
	if (r) {
		if (ctx->json) {
			buf_puts(out, ",\"reachable\":false,\"ok\":false,\"error\":");
			cmd_json_string(out, e.msg);
			buf_puts(out, ",\"items\":[]}");
		} else {
			buf_printf(out, "sandbox %s (account %s): UNREACHABLE: %s\n", s->host, s->account, e.msg);
		}
		buf_release(&script);
		buf_release(&res);
		return r;
	}
	for (line = strtok_r(res.data ? res.data : (char *)"", "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *name = line, *req, *st, *ver;
		int ok, required;

		if (!(req = strchr(name, '|')) || !(st = strchr(req + 1, '|')) || !(ver = strchr(st + 1, '|')))
			continue;   /* noise from the sandbox's shell start-up */
		*req++ = *st++ = *ver++ = '\0';
		if (!*check_fix(name, s) && strcmp(name, "workdir") != 0)
			continue;   /* not an item of ours */
		ok = strncmp(st, "ok", 3) == 0;
		required = req[0] == '1';
		*missing += required && !ok;
		opt_missing += !required && !ok;
		if (ctx->json) {
			buf_puts(&items, n ? ",{\"name\":" : "{\"name\":");
			cmd_json_string(&items, name);
			buf_printf(&items, ",\"required\":%s,\"ok\":%s,\"version\":", required ? "true" : "false",
				   ok ? "true" : "false");
			cmd_json_string(&items, ver);
			buf_puts(&items, ",\"fix\":");
			if (ok)
				buf_puts(&items, "null");
			else if (strcmp(name, "workdir") == 0)
				cmd_json_string(&items, "create it and give it to the sandbox user");
			else
				cmd_json_string(&items, check_fix(name, s));
			buf_putc(&items, '}');
		} else {
			buf_printf(&items, "  %-8s %-16s ", ok ? "ok" : required ? "MISSING" : "missing", name);
			if (ok || strcmp(name, "workdir") == 0 || strcmp(name, "disk") == 0)
				put_clean(&items, ver);
			if (!ok) {
				buf_puts(&items, ok ? "" : strcmp(name, "workdir") == 0 || strcmp(name, "disk") == 0 ? " — fix: " : "fix: ");
				buf_puts(&items, strcmp(name, "workdir") == 0 ? "create it and give it to the sandbox user"
									   : check_fix(name, s));
				if (!required)
					buf_puts(&items, " (optional)");
			}
			buf_putc(&items, '\n');
		}
		n++;
	}
	if (ctx->json) {
		buf_printf(out, ",\"reachable\":true,\"ok\":%s,\"items\":[%s]}", *missing ? "false" : "true",
			   buf_cstr(&items));
	} else {
		buf_printf(out, "sandbox %s (account %s): ", s->host, s->account);
		if (*missing)
			buf_printf(out, "%d required item%s missing\n", *missing, *missing == 1 ? "" : "s");
		else
			buf_printf(out, "ready%s\n", opt_missing ? " (optional items missing)" : "");
		buf_puts(out, buf_cstr(&items));
	}
	if (n == 0 && !*missing)
		*missing = 1;   /* nothing parsed: not a usable sandbox */
	buf_release(&script);
	buf_release(&res);
	buf_release(&items);
	return 0;
}

static int sandbox_check(struct cmd_ctx *ctx, struct kv *kv, const struct sbx_opts *o, int *exit_code,
			 struct sb_error *e)
{
	struct sandbox_rec *list = NULL;
	struct buf out = BUF_INIT;
	size_t n = 0, i;
	int r, missing, any_missing = 0, unreachable = 0, shown = 0;

	if (!o->account)
		return sb_error_set(e, SB_ERR_USAGE, "'sandbox check' needs --account");
	if ((r = registry_sandbox_list(kv, o->account, &list, &n, e)) != 0)
		return r;
	if (ctx->json)
		buf_puts(&out, "{\"sandboxes\":[");
	for (i = 0; i < n; i++) {
		char canon[256];

		if (o->host && (validate_host_canonical(o->host, canon, sizeof(canon), NULL) != 0 ||
				strcmp(canon, list[i].host) != 0))
			continue;
		if (check_one(ctx, kv, &list[i], &out, !shown, &missing) != 0)
			unreachable++;
		any_missing += missing;
		shown++;
	}
	sandbox_rec_free_array(list, n);
	if (!shown) {
		buf_release(&out);
		return o->host ? sb_error_set(e, SB_ERR_NOTFOUND, "sandbox '%s' is not registered for account '%s'", o->host,
					      o->account)
			       : sb_error_set(e, SB_ERR_NOTFOUND, "account '%s' has no sandboxes", o->account);
	}
	if (ctx->json)
		buf_puts(&out, "]}\n");
	(void)fs_write_all(STDOUT_FILENO, buf_cstr(&out), out.len);
	buf_release(&out);
	*exit_code = unreachable ? SB_EXIT_TEMPFAIL : any_missing ? SB_EXIT_FAILED : SB_EXIT_OK;
	return 0;
}

int cmd_sandbox(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const char *const verbs[] = { "add", "list", "show", "check", "enable", "disable", "drain", "remove" };
	struct sb_error e = SB_ERROR_INIT;
	struct sbx_opts o;
	struct kv *kv = NULL;
	size_t i;
	int r, known = 0, exit_code = SB_EXIT_OK;

	memset(&o, 0, sizeof(o));
	for (i = 0; argc >= 2 && i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(argv[1], verbs[i]) == 0)
			known = 1;
	if (!known) {
		sb_error_set(&e, SB_ERR_USAGE, "%s 'sandbox%s%.32s': expected add, list, show, check, enable, disable, drain or remove",
			     argc < 2 ? "missing subcommand for" : "unknown subcommand", argc < 2 ? "" : " ",
			     argc < 2 ? "" : argv[1]);
		goto fail;
	}
	if ((r = parse_opts(argc, argv, &o, &e)) != 0)
		goto fail;
	if ((r = kv_open(&kv, ctx->cfg->redis_url, ctx->cfg->redis_timeout_ms, &e)) != 0)
		goto fail;
	if (strcmp(argv[1], "add") == 0)
		r = sandbox_add(ctx, kv, &o, &e);
	else if (strcmp(argv[1], "list") == 0 || strcmp(argv[1], "show") == 0)
		r = sandbox_list(ctx, kv, &o, strcmp(argv[1], "show") == 0, &e);
	else if (strcmp(argv[1], "check") == 0)
		r = sandbox_check(ctx, kv, &o, &exit_code, &e);
	else
		r = sandbox_change(ctx, kv, argv[1], &o, &e);
	kv_free(kv);
	if (!r)
		return exit_code;
fail:
	cmd_print_error(&e);
	return sb_err_exit_code(e.code ? e.code : SB_ERR_USAGE);
}
