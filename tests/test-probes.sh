#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The USDT probes (lib/probes.h) are a contract with tracing scripts: the shared
# library must carry exactly this list in its .note.stapsdt notes (provider
# vfiocpr, each probe with its number of arguments), as bpftrace and perf read them.
# Skipped only when configure left the probes out (--disable-usdt, or no sys/sdt.h
# with the default auto); .ci/run installs systemtap-sdt-dev, so CI runs it.
# Speaks TAP for automake's tap-driver.

top_srcdir=${top_srcdir:-$(dirname "$0")/..}
top_builddir=${top_builddir:-.}
READELF=${READELF:-readelf}
LC_ALL=C
export LC_ALL
so="$top_builddir/lib/.libs/libvfiocpr.so"
config="$top_builddir/config.h"

# provider:name arguments
EXPECTED='vfiocpr:handover__start 4
vfiocpr:handover__end 2
vfiocpr:phase__start 2
vfiocpr:phase__end 3
vfiocpr:participant__start 2
vfiocpr:participant__end 3
vfiocpr:rollback__start 3
vfiocpr:rollback__end 1
vfiocpr:restore__start 1
vfiocpr:restore__end 5
vfiocpr:remap__start 3
vfiocpr:remap__end 5
vfiocpr:kvm_attach__start 1
vfiocpr:kvm_attach__end 2
vfiocpr:finish__start 1
vfiocpr:finish__end 4'

if [ ! -f "$config" ]; then
    echo "Bail out! $config not found"
    exit 1
fi
if ! grep -q '^#define VFIOCPR_USDT 1' "$config"; then
    echo "1..0 # SKIP configured without USDT probes (--disable-usdt, or no sys/sdt.h: Debian systemtap-sdt-dev)"
    exit 0
fi
echo "1..4"
if [ ! -f "$so" ]; then
    echo "Bail out! $so not built"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test-probes.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# "provider:name nargs" for every stapsdt note, one line per distinct probe (a probe
# used at several call sites has one note each; they must agree on the arguments).
if ! $READELF --notes --wide "$so" >"$tmp/notes" 2>"$tmp/err"; then
    echo "Bail out! $READELF --notes failed: $(head -n 1 "$tmp/err")"
    exit 1
fi
awk '
    # readelf puts "Provider:" on the owner line or the next one, depending on width
    {
        for (i = 1; i <= NF; i++) {
            if ($i == "Provider:") { prov = $(i + 1); name = "" }
            else if ($i == "Name:") name = $(i + 1)
            else if ($i == "Arguments:") {
                print prov ":" name, NF - i
                prov = ""; name = ""
                break
            }
        }
    }
' "$tmp/notes" | sort -u >"$tmp/found"

# check EXPECTED-FILE FOUND-FILE: prints what is wrong, fails if anything is
check() {
    sort -u "$1" >"$tmp/want"
    cut -d' ' -f1 "$2" | sort | uniq -d >"$tmp/conflict"
    comm -23 "$tmp/want" "$2" >"$tmp/missing"
    comm -13 "$tmp/want" "$2" >"$tmp/extra"
    sed 's/^/# missing: /' "$tmp/missing"
    sed 's/^/# not in the expected list: /' "$tmp/extra"
    sed 's/^/# call sites disagree on the arguments of: /' "$tmp/conflict"
    [ ! -s "$tmp/missing" ] && [ ! -s "$tmp/extra" ] && [ ! -s "$tmp/conflict" ]
}

printf '%s\n' "$EXPECTED" >"$tmp/expected"
check "$tmp/expected" "$tmp/found" >"$tmp/real" && real_ok=yes || real_ok=no
if [ -s "$tmp/found" ] && ! grep -qv '^vfiocpr:' "$tmp/found"; then
    echo "ok 1 - $so carries stapsdt notes of provider vfiocpr only ($(wc -l <"$tmp/found") probes)"
else
    echo "not ok 1 - $so carries stapsdt notes of provider vfiocpr only"
    sed 's/^/# found: /' "$tmp/found"
fi
cat "$tmp/real"
if [ "$real_ok" = yes ]; then
    echo "ok 2 - the probes are exactly the expected list (name and argument count)"
else
    echo "not ok 2 - the probes are exactly the expected list (name and argument count)"
fi

# Negative controls: the check that accepted the real list must catch a probe that
# does not exist and a wrong argument count (a check that fails on everything would
# pass these, so they count only when test 2 passed).
{ cat "$tmp/expected"; echo "vfiocpr:no_such__probe 1"; } >"$tmp/bogus"
if [ "$real_ok" != yes ] || check "$tmp/bogus" "$tmp/found" >"$tmp/out"; then
    echo "not ok 3 - control: a probe that does not exist is reported missing"
else
    if grep -q 'missing: vfiocpr:no_such__probe' "$tmp/out"; then
        echo "ok 3 - control: a probe that does not exist is reported missing"
    else
        echo "not ok 3 - control: a probe that does not exist is reported missing"
        sed 's/^/# /' "$tmp/out"
    fi
fi
sed 's/^vfiocpr:phase__end 3$/vfiocpr:phase__end 2/' "$tmp/expected" >"$tmp/badargs"
if [ "$real_ok" != yes ] || cmp -s "$tmp/badargs" "$tmp/expected" || check "$tmp/badargs" "$tmp/found" >/dev/null; then
    echo "not ok 4 - control: a wrong argument count is caught"
else
    echo "ok 4 - control: a wrong argument count is caught"
fi
