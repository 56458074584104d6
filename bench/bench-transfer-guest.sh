#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/bench-transfer-guest.sh [UPGRADES] [KERNEL]   (as root, from a build directory)
#
# The blackout of a transfer (vfiocpr_transfer() to a separately started minivmm)
# against that of an exec (vfiocpr_exec() of minivmm itself), for the same binary on
# the same device in the same boot: boots the guest test bed (QEMU TCG) with edu and
# runs, UPGRADES times each (default 10): `minivmm --upgrades` (exec), a chain of
# `minivmm --incoming` processes (transfer), and both again with --kvm (a VM whose
# guest drives edu; there the guest's own pause is printed too). The blackout is
# what minivmm measures: the handover call in the old process -> vfiocpr_finish() in
# the new one. A transfer's new process is already running when the old one hands
# over, so it saves the execve, the dynamic loading and the option parsing of an
# exec; it pays for sending the fds instead. Under TCG every number is a multiple of
# what real hardware would show: compare them with each other, not with a target.
set -euo pipefail
UPGRADES=${1:-10}
KERNEL=${2:-7.3}
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=${top_builddir:-.}
for f in "$B/examples/minivmm/minivmm" "$B/examples/minivmm/minivmm-guest.bin"; do
    [ -f "$f" ] || { echo "bench-transfer-guest: no $f (run it from a build directory after make)" >&2; exit 1; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat >"$T/bench-transfer-in-guest.sh" <<IN
#!/bin/sh
for d in /sys/bus/pci/devices/*; do
    if [ "\$(cat "\$d/vendor")" = 0x1234 ] && [ "\$(cat "\$d/device")" = 0x11e8 ]; then bdf=\${d##*/}; fi
done
n=$UPGRADES
# chain MODE ARGS...: n transfers through n + 1 separately started processes
chain() {
    mode=\$1
    shift
    rm -f /tmp/b-*.sock
    /bin/minivmm --device "\$bdf" "\$@" --upgrades \$n --transfer-to /tmp/b-1.sock >/tmp/b-0.out 2>&1 &
    i=1
    while [ \$i -le \$n ]; do
        /bin/minivmm --device "\$bdf" "\$@" --incoming /tmp/b-\$i.sock --transfer-to /tmp/b-\$((i + 1)).sock \\
            >/tmp/b-\$i.out 2>&1 &
        i=\$((i + 1))
    done
    wait
    echo "=== \$mode"
    cat /tmp/b-*.out | grep '^minivmm: upgrade [0-9]*/'
}
echo "=== exec"
/bin/minivmm --device "\$bdf" --upgrades \$n 2>&1 | grep '^minivmm: upgrade [0-9]*/'
chain transfer
echo "=== kvm-exec"
/bin/minivmm --device "\$bdf" --kvm --upgrades \$n 2>&1 | grep '^minivmm: upgrade [0-9]*/'
chain kvm-transfer --kvm
IN
bash "$SRC/tests/guest/run-guest.sh" --kernel "$KERNEL" --device edu --timeout 900 \
    --extra "$B/examples/minivmm/minivmm" --extra "$B/examples/minivmm/minivmm-guest.bin" \
    -- "$T/bench-transfer-in-guest.sh" >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err" >&2; exit 1; }
awk '
    /^=== / { mode = $2; order[++nm] = mode; next }
    /^minivmm: upgrade [0-9]+\/[0-9]+: / {
        ok = $4 == "ok:"
        bo = $0; sub(/.* blackout /, "", bo); sub(/ us.*/, "", bo); bo += 0
        p = ""
        if (index($0, "guest pause ")) { p = $0; sub(/.*guest pause /, "", p); sub(/ us.*/, "", p) }
        n[mode]++; sb[mode] += bo; bad[mode] += !ok
        if (!(mode in mn) || bo < mn[mode]) mn[mode] = bo
        if (bo > mx[mode]) mx[mode] = bo
        if (p != "") { sp[mode] += p; np[mode]++ } }
    END {
        printf "%-13s %5s %4s %12s %12s %12s %14s\n", "handover", "n", "bad", "blackout min",
               "mean", "max", "guest pause"
        for (i = 1; i <= nm; i++) {
            m = order[i]
            if (!n[m]) { printf "%-13s no results\n", m; fail = 1; continue }
            printf "%-13s %5d %4d %12d %12d %12d %14s\n", m, n[m], bad[m], mn[m], sb[m] / n[m],
                   mx[m], np[m] ? sprintf("%d", sp[m] / np[m]) : "-"
            if (bad[m]) fail = 1 }
        for (i = 1; i <= nm; i += 2)
            if (n[order[i]] && n[order[i + 1]])
                printf "%s / %s mean blackout: %.2f\n", order[i + 1], order[i],
                       (sb[order[i + 1]] / n[order[i + 1]]) / (sb[order[i]] / n[order[i]])
        exit fail }
' "$T/out"
