#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/bench-kvm-guest.sh [UPGRADES] [KERNEL]   (as root, from a build directory)
#
# The pause a guest sees across an in-place upgrade of its VMM, against the blackout
# the VMM measures and the part of it spent in libvfiocpr calls: boots the guest test
# bed (QEMU TCG, nested KVM) with edu, runs `minivmm --kvm --upgrades UPGRADES`
# (default 20) and prints one row per upgrade and the means. The guest's pause is its
# own measure (the largest TSC gap between two of its ticks, its TSC kept running
# through the upgrade); "stopped" is the VMM's vCPU-stopped -> running; the blackout
# is vfiocpr_exec() -> vfiocpr_finish(); "library" is the new image's time inside
# libvfiocpr calls (vfiocpr_new, container/device/DMA/irq, KVM attach, finish).
# Under TCG every number is a multiple of what real hardware would show: compare
# them with each other, not with a target.
set -euo pipefail
UPGRADES=${1:-20}
KERNEL=${2:-6.1}
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=${top_builddir:-.}
for f in "$B/examples/minivmm/minivmm" "$B/examples/minivmm/minivmm-guest.bin"; do
    [ -f "$f" ] || { echo "bench-kvm-guest: no $f (run it from a build directory after make)" >&2; exit 1; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat >"$T/bench-kvm-in-guest.sh" <<IN
#!/bin/sh
for d in /sys/bus/pci/devices/*; do
    if [ "\$(cat "\$d/vendor")" = 0x1234 ] && [ "\$(cat "\$d/device")" = 0x11e8 ]; then bdf=\${d##*/}; fi
done
/bin/minivmm --device "\$bdf" --kvm --upgrades $UPGRADES
IN
bash "$SRC/tests/guest/run-guest.sh" --kernel "$KERNEL" --device edu --timeout 900 \
    --extra "$B/examples/minivmm/minivmm" --extra "$B/examples/minivmm/minivmm-guest.bin" \
    -- "$T/bench-kvm-in-guest.sh" >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err" >&2; exit 1; }
awk '
    /^minivmm:   blackout \(vfiocpr_exec -> vfiocpr_finish\)/ {
        bo = $6; st = $12; lib = $19 }
    /^minivmm: upgrade [0-9]+\/[0-9]+: / {
        n++; p = $0; sub(/.*guest pause /, "", p); sub(/ us.*/, "", p)
        ok = $4 == "ok:"
        printf "%-8s %-6s %10d %10d %10d %10d %5.1f%%\n", $3, ok ? "ok" : "FAILED", p, st, bo, lib,
               bo ? 100 * lib / bo : 0
        sp += p; ss += st; sb += bo; sl += lib
        if (!ok) bad++ }
    BEGIN { printf "%-8s %-6s %10s %10s %10s %10s %6s\n", "upgrade", "", "guest(us)", "stopped",
                   "blackout", "library", "lib%" }
    END { if (n) printf "%-8s %-6s %10d %10d %10d %10d %5.1f%%\n", "mean", bad ? bad " bad" : "",
                        sp / n, ss / n, sb / n, sl / n, sb ? 100 * sl / sb : 0
          exit n ? 0 : 1 }
' "$T/out"
grep '^minivmm: summary: ' "$T/out" | sed 's/^minivmm: //'
