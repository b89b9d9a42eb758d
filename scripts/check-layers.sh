#!/usr/bin/env bash
# Every src file includes only headers of its own layer or lower ones.
# A header's layer is the "layer N" on its first line; a .c file has the
# layer of its own header (main.c and cmd*.c: 4).  Prints each violation,
# exits 1 if there is any.
set -u
cd "$(dirname "$0")/../src" || exit 2
declare -A layer
bad=0
for h in *.h; do
	l=$(head -n 1 "$h" | grep -o 'layer [0-9]' | cut -d' ' -f2)
	if [ -z "$l" ]; then
		echo "check-layers: $h: first line does not name its layer"
		bad=1
		continue
	fi
	layer[$h]=$l
done
for f in *.c *.h; do
	case $f in
	main.c | cmd*.c) own=4 ;;
	*.c) own=${layer[${f%.c}.h]-} ;;
	*.h) own=${layer[$f]-} ;;
	esac
	[ -n "$own" ] || { echo "check-layers: $f: no header names its layer"; bad=1; continue; }
	while read -r inc; do
		[ -n "$inc" ] || continue
		l=${layer[$inc]-}
		[ -n "$l" ] || continue   # system header
		if [ "$l" -gt "$own" ]; then
			echo "check-layers: $f (layer $own) includes $inc (layer $l)"
			bad=1
		fi
	done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done
exit $bad
