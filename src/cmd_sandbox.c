/* sshbox sandbox add|list|show|enable|disable|drain|remove */
#include "cmd.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "child.h"
#include "fsutil.h"
#include "keys.h"
#include "kv.h"
#include "lock.h"
#include "log.h"
#include "registry.h"
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

int cmd_sandbox(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const char *const verbs[] = { "add", "list", "show", "enable", "disable", "drain", "remove" };
	struct sb_error e = SB_ERROR_INIT;
	struct sbx_opts o;
	struct kv *kv = NULL;
	size_t i;
	int r, known = 0;

	memset(&o, 0, sizeof(o));
	for (i = 0; argc >= 2 && i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(argv[1], verbs[i]) == 0)
			known = 1;
	if (!known) {
		sb_error_set(&e, SB_ERR_USAGE, "%s 'sandbox%s%.32s': expected add, list, show, enable, disable, drain or remove",
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
	else
		r = sandbox_change(ctx, kv, argv[1], &o, &e);
	kv_free(kv);
	if (!r)
		return SB_EXIT_OK;
fail:
	cmd_print_error(&e);
	return sb_err_exit_code(e.code ? e.code : SB_ERR_USAGE);
}
