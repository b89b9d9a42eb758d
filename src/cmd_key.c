/* sshbox key set|show|rotate --account A [--encrypted]; sshbox key reencrypt */
#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fernet.h"
#include "fsutil.h"
#include "keys.h"
#include "kv.h"
#include "registry.h"
#include "secret.h"
#include "validate.h"

struct key_opts {
	const char *account;
	int encrypted;
};

static SB_MUST_CHECK int parse_opts(int argc, char **argv, struct key_opts *o, struct sb_error *e)
{
	int i;

	for (i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--account") == 0 && i + 1 < argc)
			o->account = argv[++i];
		else if (strncmp(argv[i], "--account=", 10) == 0)
			o->account = argv[i] + 10;
		else if (strcmp(argv[i], "--encrypted") == 0)
			o->encrypted = 1;
		else if (strcmp(argv[i], "--json") == 0)
			;
		else
			return sb_error_set(e, SB_ERR_USAGE, "unknown option '%.64s' for 'key %s'", argv[i], argv[1]);
	}
	if (strcmp(argv[1], "reencrypt") != 0) {
		if (!o->account)
			return sb_error_set(e, SB_ERR_USAGE, "missing --account for 'key %s'", argv[1]);
		return validate_account(o->account, e);
	}
	return 0;
}

static SB_MUST_CHECK int print_key(const struct cmd_ctx *ctx, const struct account_rec *a, struct sb_error *e)
{
	struct buf out = BUF_INIT;
	int r;

	if (ctx->json) {
		buf_adds(&out, "{\"account\":");
		cmd_json_string(&out, a->account);
		buf_adds(&out, ",\"type\":");
		cmd_json_string(&out, a->key_type);
		buf_adds(&out, ",\"fingerprint\":");
		cmd_json_string(&out, a->fingerprint);
		buf_adds(&out, ",\"public_key\":");
		cmd_json_string(&out, a->public_key);
		buf_addf(&out, ",\"key_version\":%lld,\"created_at\":%lld,\"updated_at\":%lld}\n",
			   a->key_version, a->created_at, a->updated_at);
	} else {
		buf_addf(&out, "account:     %s\ntype:        %s\nfingerprint: %s\nversion:     %lld\n"
			   "created:     %lld\nupdated:     %lld\npublic key:  %s\n",
			   a->account, a->key_type, a->fingerprint, a->key_version, a->created_at,
			   a->updated_at, a->public_key);
	}
	r = cmd_write_out(&out, e);
	buf_release(&out);
	return r;
}

/* set (expect no key) or rotate (expect the current version) */
static SB_MUST_CHECK int key_store(struct cmd_ctx *ctx, struct kv *kv, const struct key_opts *o, int rotate,
		     struct sb_error *e)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	struct buf input, plain, raw, token = BUF_INIT;
	struct key_info info = KEY_INFO_INIT;
	struct account_rec cur = ACCOUNT_REC_INIT, rec = ACCOUNT_REC_INIT;
	long long expect = 0, version = 0;
	size_t start, end;
	int r;

	buf_init_secret(&input, FERNET_MAX_TOKEN_LEN + 4096);
	buf_init_secret(&plain, KEYS_MAX_PRIVATE + 1);
	buf_init_secret(&raw, FERNET_MAX_PLAINTEXT);
	if ((r = config_fernet_keyring(ctx->cfg, &kr, e)) != 0)
		goto out;
	if (rotate) {
		if ((r = registry_account_get(kv, o->account, &cur, e)) != 0) {
			if (r == SB_ERR_NOTFOUND)
				sb_error_set(e, SB_ERR_NOTFOUND,
					     "account '%s' has no key to rotate: use 'sshbox key set'", o->account);
			goto out;
		}
		expect = cur.key_version;
	}
	if ((r = fs_read_fd(STDIN_FILENO, &input, input.max, e)) != 0) {
		sb_error_prefix(e, "cannot read the key from standard input");
		goto out;
	}
	if (o->encrypted) {
		for (start = 0; start < input.len && strchr(" \t\r\n", input.data[start]); start++)
			;
		for (end = input.len; end > start && strchr(" \t\r\n", input.data[end - 1]); end--)
			;
		if ((r = fernet_decrypt(&kr, input.data + start, end - start, -1, &raw, e)) != 0) {
			sb_error_set(e, r, "invalid --encrypted input: not a Fernet token under the configured keys");
			goto out;
		}
		r = buf_append(&token, input.data + start, end - start);
		if (!r)
			r = keys_normalize(buf_cstr(&raw), raw.len, &plain);
	} else if (input.len > KEYS_MAX_PRIVATE) {
		r = sb_error_set(e, SB_ERR_USAGE, "invalid private key: larger than %d bytes", KEYS_MAX_PRIVATE);
		goto out;
	} else {
		r = keys_normalize(buf_cstr(&input), input.len, &plain);
	}
	if (r) {
		sb_error_set(e, r, "cannot read the key: %s", sb_err_str(r));
		goto out;
	}
	if ((r = keys_inspect(plain.data ? plain.data : "", plain.len, &info, e)) != 0)
		goto out;
	if (!o->encrypted && (r = fernet_encrypt(&kr, plain.data, plain.len, &token)) != 0) {
		sb_error_set(e, r, "cannot encrypt the key: %s", fernet_strerror(r));
		goto out;
	}
	rec.account = (char *)o->account;
	rec.key_token = token.data;
	rec.public_key = info.public_key.data;
	rec.fingerprint = info.fingerprint;
	rec.key_type = info.type;
	r = registry_account_put_key(kv, &rec, expect, &version, e);
	if (r == SB_ERR_EXISTS && !rotate)
		sb_error_set(e, r, "account '%s' already has a key: use 'sshbox key rotate' to replace it", o->account);
	if (r)
		goto out;
	account_rec_release(&cur);
	r = registry_account_get(kv, o->account, &cur, e);
	if (!r)
		r = print_key(ctx, &cur, e);
out:
	account_rec_release(&cur);
	key_info_release(&info);
	buf_release(&input);
	buf_release(&plain);
	buf_release(&raw);
	buf_release(&token);
	fernet_keyring_clear(&kr);
	return r;
}

static SB_MUST_CHECK int key_reencrypt(struct cmd_ctx *ctx, struct kv *kv, struct sb_error *e)
{
	struct fernet_keyring kr = FERNET_KEYRING_INIT;
	char **names = NULL;
	size_t n = 0, i, done = 0;
	int r;

	if ((r = config_fernet_keyring(ctx->cfg, &kr, e)) != 0 ||
	    (r = registry_account_list(kv, &names, &n, e)) != 0)
		goto out;
	for (i = 0; i < n && !r; i++) {
		struct account_rec a = ACCOUNT_REC_INIT;
		struct buf tok = BUF_INIT;

		r = registry_account_get(kv, names[i], &a, e);
		if (r == SB_ERR_NOTFOUND) {
			r = 0;
		} else if (!r) {
			r = fernet_rotate(&kr, a.key_token, strlen(a.key_token), &tok, e);
			if (r)
				sb_error_prefix(e, "cannot re-encrypt the key of account '%s'", a.account);
			else if ((r = registry_account_set_token(kv, a.account, a.key_version, tok.data, e)) == 0)
				done++;
		}
		buf_release(&tok);
		account_rec_release(&a);
	}
	if (!r)
		printf(ctx->json ? "{\"reencrypted\":%zu}\n" : "re-encrypted %zu key(s) under the first Fernet key\n", done);
out:
	registry_names_free(names, n);
	fernet_keyring_clear(&kr);
	return r;
}

int cmd_key(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct sb_error e = SB_ERROR_INIT;
	struct key_opts o = { NULL, 0 };
	struct kv *kv = NULL;
	int r;

	if (argc < 2) {
		sb_error_set(&e, SB_ERR_USAGE, "missing subcommand for 'key': expected set, show, rotate or reencrypt");
		goto fail;
	}
	if (strcmp(argv[1], "set") && strcmp(argv[1], "show") && strcmp(argv[1], "rotate") &&
	    strcmp(argv[1], "reencrypt")) {
		sb_error_set(&e, SB_ERR_USAGE, "unknown subcommand 'key %.32s': expected set, show, rotate or reencrypt", argv[1]);
		goto fail;
	}
	if ((r = parse_opts(argc, argv, &o, &e)) != 0)
		goto fail;
	if ((r = kv_open(&kv, ctx->cfg->redis_url, ctx->cfg->redis_timeout_ms, &e)) != 0)
		goto fail;
	if (strcmp(argv[1], "show") == 0) {
		struct account_rec a = ACCOUNT_REC_INIT;
		r = registry_account_get(kv, o.account, &a, &e);
		if (!r)
			r = print_key(ctx, &a, &e);
		account_rec_release(&a);
	} else if (strcmp(argv[1], "reencrypt") == 0) {
		r = key_reencrypt(ctx, kv, &e);
	} else {
		r = key_store(ctx, kv, &o, strcmp(argv[1], "rotate") == 0, &e);
	}
	kv_free(kv);
	if (!r)
		return SB_EXIT_OK;
fail:
	cmd_print_error(&e);
	return sb_err_exit_code(e.code ? e.code : SB_ERR_USAGE);
}
