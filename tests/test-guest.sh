#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Guest tier: boots each Debian kernel under QEMU TCG with edu, nvme and e1000e bound
# to vfio-pci and runs every scenario (tests/guest/guest-suite.sh). Speaks TAP.
# A guest that cannot boot, or a scenario that dies, is a failure, never a skip.
# VFIOCPR_GUEST_KERNELS (default "6.1 7.3") and VFIOCPR_GUEST_CYCLES (default 100)
# narrow it down by hand.
srcdir=${top_srcdir:-.}/tests/guest
builddir=${top_builddir:-.}/tests/guest
kernels=${VFIOCPR_GUEST_KERNELS:-6.1 7.3}
cycles=${VFIOCPR_GUEST_CYCLES:-100}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vfiocpr-guest.XXXXXX")
n=0
for k in $kernels; do
    start=$(date +%s)
    bash "$srcdir/run-guest.sh" --kernel "$k" --device edu --device nvme --device e1000e \
        --timeout 900 --log "$tmp/console-$k.log" --extra "$builddir/guest-cpr" \
        --extra "$builddir/guest-smoke" --extra "$builddir/guest-irq" -- \
        "$srcdir/guest-suite.sh" "$cycles" >"$tmp/out-$k" 2>"$tmp/err-$k"
    rc=$?
    echo "# kernel $k: $(( $(date +%s) - start )) s, rc=$rc"
    # one TAP stream: renumbered, prefixed with the kernel; a scenario that exits
    # non-zero or reports nothing counts as a failure of its own
    awk -v k="$k" -v n="$n" -v rc="$rc" -v countfile="$tmp/n" '
        /^# scenario-end / { split($4, a, "=")
                             if (a[2] != 0 || !seen)
                                 printf "not ok %d - [%s] %s: exited %s%s\n", ++n, k, $3, a[2],
                                        seen ? "" : " without any result"
                             next }
        /^# scenario / { cur = $3; seen = 0; next }
        /^(not )?ok [0-9]+/ { good = $1 == "ok"; sub(/^(not )?ok [0-9]+( - )?/, ""); seen = 1
                              printf "%s %d - [%s] %s\n", good ? "ok" : "not ok", ++n, k, $0; next }
        /^Bail out!/ { printf "not ok %d - [%s] %s: %s\n", ++n, k, cur, $0; next }
        /^#/ { print; next }
        END { if (rc == 99 || n == start_n)
                  printf "not ok %d - [%s] the guest did not boot or did not finish (rc %s)\n", ++n, k, rc
              print n > countfile }
    ' start_n="$n" "$tmp/out-$k"
    n=$(cat "$tmp/n")
    if [ "$rc" -ne 0 ]; then
        echo "# kernel $k: last lines of the console log:"
        tail -n 30 "$tmp/console-$k.log" 2>/dev/null | sed 's/^/#   /'
        sed 's/^/#   /' "$tmp/err-$k"
    fi
done
rm -rf "$tmp"
echo "1..$n"
