#!/usr/bin/env bash
# scripts/deps.sh build|test|demo|bench — install the Debian packages this mode
# needs that are missing, and nothing else.
#
# Quiet when everything is there.  `apt-get update` runs at most once, and
# only when something has to be installed.  Without root it works only when
# nothing is missing (otherwise: one line saying root is needed, exit 1).
#
# node + npm (test, demo: the Claude Code CLI is an npm package): when both
# are on PATH nothing is done, whatever package provides them (a nodesource
# `nodejs` bundles npm and conflicts with Debian's `npm`; it is left alone).
# Otherwise Debian's `nodejs` and `npm` are installed.
set -eu

me=scripts/deps.sh
mode=${1-}
case $mode in
build|test|demo|bench) ;;
*)
	echo "usage: $me build|test|demo|bench" >&2
	exit 2
	;;
esac

pkgs=(gcc make libc6-dev libssl-dev libhiredis-dev libjsmn-dev)
if [ "$mode" != build ]; then
	pkgs+=(redis-server openssh-server openssh-client git git-lfs python3
	       python3-cryptography supervisor procps psmisc iproute2
	       ca-certificates curl util-linux coreutils time valgrind shellcheck
	       clang libclang-rt-14-dev)
fi
# bench: the test bed plus the measuring tools and the peer (`ansible -m raw`)
if [ "$mode" = bench ]; then
	pkgs+=(hyperfine ansible-core)
fi

# "install ok installed" or "hold ok installed"; a Multi-Arch package prints
# one status per installed architecture, any one of them is enough.
is_installed() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q ' ok installed$'
}

missing=()
for p in "${pkgs[@]}"; do
	is_installed "$p" || missing+=("$p")
done

if [ "$mode" != build ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
	# A nodejs package that Provides npm (nodesource) must not be replaced
	# by Debian's npm: that would remove or downgrade it.
	if is_installed nodejs &&
	   dpkg-query -W -f='${Provides}\n' nodejs 2>/dev/null | grep -Eq '(^|[ ,])npm([ ,(]|$)'; then
		echo "$me: error: 'node'/'npm' not on PATH although the installed nodejs package provides both: fix PATH or reinstall nodejs" >&2
		exit 1
	fi
	for p in nodejs npm; do
		is_installed "$p" || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "$me: error: nodejs and npm are installed but 'node'/'npm' are not on PATH ($PATH)" >&2
		exit 1
	fi
fi

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "$me: error: missing packages '${missing[*]}': installing them needs root (run: sudo $me $mode)" >&2
	exit 1
fi

echo "$me: installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2

# Verify rather than trust: a package that did not end up installed is an error.
for p in "${missing[@]}"; do
	if ! is_installed "$p"; then
		echo "$me: error: package '$p' is still not installed after apt-get install" >&2
		exit 1
	fi
done
