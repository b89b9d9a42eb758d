#!/bin/bash
# Install the pinned Claude Code CLI (npm @anthropic-ai/claude-code) once into
# a cache outside the repository and print the absolute path of the directory
# that holds its `claude` executable.
#
#   dir=$(scripts/claude-cli.sh) && "$dir/claude" --version
#
# Cache: ${SSHBOX_CLAUDE_CACHE:-/var/cache/sshbox-test/claude-code}/<version>.
# A finished install is marked by <version>/.sshbox-complete, written last, so
# an interrupted install is removed and redone by the next caller; concurrent
# callers serialise on a flock.  Everything is left world-readable (a+rX) so
# an unprivileged test user can run it.  Why this version: docs/testing-claude.md.
# SSHBOX_CLAUDE_VERSION overrides the pin (for trying another version only).
set -eu

PINNED_VERSION=2.1.112     # last release that ships cli.js and allows node >= 18

version=${SSHBOX_CLAUDE_VERSION:-$PINNED_VERSION}
root=${SSHBOX_CLAUDE_CACHE:-/var/cache/sshbox-test/claude-code}
pkg=@anthropic-ai/claude-code

die() {
	echo "claude-cli.sh: $*" >&2
	exit 1
}

case $version in
'' | *[!0-9A-Za-z.-]*) die "bad version '$version'" ;;
esac
case $root in
/*) ;;
*) die "SSHBOX_CLAUDE_CACHE must be an absolute path (got '$root')" ;;
esac

dir=$root/$version
bindir=$dir/node_modules/.bin
marker=$dir/.sshbox-complete

complete() {
	[ -f "$marker" ] && [ "$(cat "$marker" 2>/dev/null)" = "$pkg@$version" ] &&
		[ -x "$bindir/claude" ]
}

print_bindir() {
	(cd -P "$bindir" && pwd) || die "cannot resolve $bindir"
}

# Fast path: already installed (no lock needed, the marker is written last).
if complete; then
	print_bindir
	exit 0
fi

command -v npm >/dev/null 2>&1 || die "npm not found (apt-get install npm)"
command -v node >/dev/null 2>&1 || die "node not found (apt-get install nodejs)"
command -v flock >/dev/null 2>&1 || die "flock not found (apt-get install util-linux)"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) ||
	die "cannot run node"
[ "$node_major" -ge 18 ] 2>/dev/null || die "node >= 18 needed, found $(node --version)"

umask 022
mkdir -p "$root" 2>/dev/null || die "cannot create cache dir $root"
[ -w "$root" ] || die "cache dir $root is not writable (run as root or set SSHBOX_CLAUDE_CACHE)"

lock=$root/.lock-$version
exec 9>>"$lock" || die "cannot open lock file $lock"
flock -w 900 9 || die "timed out waiting for the install lock $lock"

if ! complete; then
	log=$root/install-$version.log
	rm -rf "$dir"
	mkdir -p "$dir"
	# --ignore-scripts: no install script may fetch anything from elsewhere
	# (this version has none; its only optional deps are sharp's prebuilt
	# binaries, which are ordinary npm packages).
	if ! npm install --prefix "$dir" --no-audit --no-fund --no-update-notifier \
		--ignore-scripts --omit=dev --loglevel=warn "$pkg@$version" >"$log" 2>&1; then
		rm -rf "$dir"
		die "npm install $pkg@$version failed: $(grep -m1 -i 'err' "$log" | cut -c1-200) (log: $log)"
	fi
	[ -x "$bindir/claude" ] || { rm -rf "$dir"; die "npm install left no $bindir/claude"; }
	got=$("$bindir/claude" --version 2>/dev/null | head -n1) || got=
	case $got in
	"$version"*) ;;
	*) rm -rf "$dir"; die "installed claude reports '$got', expected $version" ;;
	esac
	chmod -R a+rX "$dir"
	chmod a+rx "$root"
	printf '%s\n' "$pkg@$version" >"$marker.tmp"
	chmod a+r "$marker.tmp"
	mv -f "$marker.tmp" "$marker"
fi

complete || die "install in $dir is incomplete"
print_bindir
