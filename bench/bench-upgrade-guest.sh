#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# bench/bench-upgrade-guest.sh [KERNEL] [UPGRADES] [MAPPINGS...]   (as root, from a build
#                                                                  directory after make check)
#
# A whole in-place upgrade's blackout through libvfiocpr (bench/lib-upgrade) against
# the floor (bench/floor-upgrade: raw system calls, a minimal state memfd, a static
# binary) doing the same upgrade of the same edu device in ONE guest boot (QEMU TCG):
# for each backend the kernel has (type1; iommufd where /dev/iommu exists) and each
# mapping count (default 1 100 10000, one page each of one memfd; PAGE=2m for 2 MiB
# pages), each program runs UPGRADES (default 20) chained exec upgrades. The
# blackout is from "upgrade requested" (before the first UNMAP_DMA / vfiocpr_exec())
# to "device usable again" (after the last re-map / vfiocpr_finish()), CLOCK_MONOTONIC
# stamps carried across the exec; after each one, outside it, both check the device
# (edu DMA RAM -> device -> RAM through the mappings, an MSI on the inherited eventfd).
# Printed: median and p90 of each, their ratio (target <= 1.3), then the medians of
# the phases (prep: request -> execve; exec: execve -> main of the new image; then
# each program's restore phases) so the library's excess can be located. A negative
# control per program and backend (the check looks at an unmapped IOVA and an
# unwired eventfd) must FAIL, or the bench fails. Where /dev/kvm works (nested KVM)
# `minivmm --kvm --upgrades UPGRADES` runs too and its guest-visible pause (the L2
# guest's own largest TSC gap) is printed next to minivmm's blackout.
# KERNEL: 6.1, 7.3 or iommufd (default 7.3). Under TCG every number is a multiple of
# real hardware: the ratio is the result, not the microseconds.
set -euo pipefail
KERNEL=${1:-7.3}
UPGRADES=${2:-20}
shift $(($# > 2 ? 2 : $#))
MAPPINGS=${*:-1 100 10000}
PAGE=${PAGE:-4k}
TRACE=${TRACE-1 10000}
SRC=$(cd "$(dirname "$0")/.." && pwd)
B=${top_builddir:-.}
EXTRA=()
for f in bench/floor-upgrade bench/lib-upgrade; do
    [ -x "$B/$f" ] || { echo "bench-upgrade-guest: no $B/$f (make check TESTS= in the build directory)" >&2; exit 1; }
    EXTRA+=(--extra "$B/$f")
done
# the library with GLib and libc static too (configure found static GLib): the same
# program without the dynamic loader
PROGS="floor-upgrade lib-upgrade"
LIBS=lib-upgrade
if [ -x "$B/bench/lib-upgrade-static" ]; then
    EXTRA+=(--extra "$B/bench/lib-upgrade-static")
    PROGS="floor-upgrade lib-upgrade lib-upgrade-static"
    LIBS="lib-upgrade lib-upgrade-static"
fi
# and the dynamic one with LD_BIND_NOW=1 (inherited across its execs): lazy binding's
# share of the blackout
PROGS="$PROGS lib-upgrade:bindnow"
KVM=0
if [ -f "$B/examples/minivmm/minivmm" ] && [ -f "$B/examples/minivmm/minivmm-guest.bin" ]; then
    EXTRA+=(--extra "$B/examples/minivmm/minivmm" --extra "$B/examples/minivmm/minivmm-guest.bin")
    KVM=1
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat >"$T/bench-upgrade-in-guest.sh" <<IN
#!/bin/sh
for d in /sys/bus/pci/devices/*; do
    if [ "\$(cat "\$d/vendor")" = 0x1234 ] && [ "\$(cat "\$d/device")" = 0x11e8 ]; then bdf=\${d##*/}; fi
done
backends=type1
[ -e /dev/iommu ] && backends="type1 iommufd"
echo "=== uname \$(uname -r) backends \$backends"
for be in \$backends; do
    for n in $MAPPINGS; do
        for prog in $PROGS; do
            case \$prog in *:bindnow) env=LD_BIND_NOW=1 ;; *) env=BENCH_LAZY=1 ;; esac
            env \$env /bin/\${prog%:bindnow} --device "\$bdf" --backend \$be --mappings \$n \\
                --page-size $PAGE --upgrades $UPGRADES || echo "=== FAILED \$prog \$be \$n rc=\$?"
        done
    done
    for prog in floor-upgrade lib-upgrade; do
        if /bin/\$prog --device "\$bdf" --backend \$be --mappings 1 --upgrades 1 \\
            --negative >/tmp/neg.out 2>&1; then
            echo "=== negative \$prog \$be NOT CAUGHT"
        else
            echo "=== negative \$prog \$be caught: \$(grep -o 'check: .*' /tmp/neg.out || tail -1 /tmp/neg.out)"
        fi
    done
    # where the library's time goes: its kernel-seam calls, timed, in one upgrade
    for n in $TRACE; do
        for prog in $LIBS; do
            echo "=== trace \$be \$n \$prog"
            /bin/\$prog --device "\$bdf" --backend \$be --mappings \$n --page-size $PAGE \\
                --upgrades 1 --trace | grep '^trace ' || echo "=== trace \$be \$n \$prog FAILED"
        done
    done
done
if [ $KVM = 1 ] && [ -e /dev/kvm ]; then
    for be in \$backends; do
        echo "=== kvm \$be"
        /bin/minivmm --device "\$bdf" --backend \$be --kvm --upgrades $UPGRADES 2>&1 |
            grep '^minivmm: upgrade [0-9]*/\|^minivmm: summary' || echo "=== kvm \$be FAILED"
    done
fi
IN
bash "$SRC/tests/guest/run-guest.sh" --kernel "$KERNEL" --device edu --timeout 1800 \
    "${EXTRA[@]}" -- "$T/bench-upgrade-in-guest.sh" >"$T/out" 2>"$T/err" ||
    { cat "$T/out" "$T/err" >&2; exit 1; }
[ -z "${BENCH_UPGRADE_RAW:-}" ] || cp "$T/out" "$BENCH_UPGRADE_RAW"
awk -v kernel="$KERNEL" -v page="$PAGE" '
    function sortv(a, n,    i, j, t) {
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t } }
    # nearest-rank percentile of the n values in v[key, 1..n]
    function pct(key, p, n,    i, a) {
        for (i = 1; i <= n; i++) a[i] = v[key, i]
        sortv(a, n)
        i = int(p * n + 0.999999); if (i < 1) i = 1; if (i > n) i = n
        return a[i] }
    /^=== uname / { uname = $3; next }
    /^=== FAILED / || / NOT CAUGHT/ || /^=== (kvm|trace) .* FAILED/ { print; fail = 1; next }
    /^=== negative / { neg[++nneg] = substr($0, 5); next }
    /^=== kvm / { kbe = $3; next }
    /^=== trace / { tr[++ntr] = ""; tr[++ntr] = $5 " timeline, " $3 ", " $4 " mapping(s):"; next }
    /^trace / { tr[++ntr] = $0; next }
    /^upgrade-bench: error/ { print; fail = 1; next }
    /^upgrade-bench: / {
        prog = $2; be = $3; n = $5
        if ($10 != "ok") { print; fail = 1 }
        k = be SUBSEP n SUBSEP prog
        if (!((be, n) in seen)) { seen[be, n] = 1; order[++no] = be SUBSEP n }
        if (!(prog in isprog)) { isprog[prog] = 1; progs[++np] = prog }
        c = ++cnt[k]
        for (i = 11; i + 1 <= NF && $i != "check:"; i += 2) {
            f = $i; v[k SUBSEP f, c] = $(i + 1) + 0
            if (!((k, f) in hasf)) { hasf[k, f] = 1; fl[k] = fl[k] " " f } }
        next }
    /^minivmm: upgrade [0-9]+\/[0-9]+: / {
        kn[kbe]++; c = kn[kbe]
        p = $0; sub(/.*guest pause /, "", p); sub(/ us.*/, "", p); v["kvm" SUBSEP kbe SUBSEP "pause", c] = p + 0
        b = $0; sub(/.* blackout /, "", b); sub(/ us.*/, "", b); v["kvm" SUBSEP kbe SUBSEP "blackout", c] = b + 0
        if ($4 != "ok:") kbad[kbe]++
        next }
    END {
        printf "bench-upgrade-guest: kernel %s (%s), edu, %s pages, one MSI vector; whole upgrade blackout in us\n",
               kernel, uname, page
        printf "%-8s %8s %-11s %4s %10s %10s %6s %10s %10s %6s %10s %10s %6s\n", "backend", "mappings",
               "program", "runs", "median", "floor med", "ratio", "p90", "floor p90", "ratio", "min",
               "floor min", "ratio"
        for (o = 1; o <= no; o++) {
            split(order[o], bn, SUBSEP); be = bn[1]; n = bn[2]
            kf = be SUBSEP n SUBSEP "floor"
            if (!cnt[kf]) { printf "%-8s %8s no floor results\n", be, n; fail = 1; continue }
            fm = pct(kf SUBSEP "blackout", 0.5, cnt[kf]); f9 = pct(kf SUBSEP "blackout", 0.9, cnt[kf])
            f0 = pct(kf SUBSEP "blackout", 0, cnt[kf])
            for (pi = 1; pi <= np; pi++) {
                prog = progs[pi]; if (prog == "floor") continue
                kl = be SUBSEP n SUBSEP prog
                if (!cnt[kl]) { printf "%-8s %8s %-10s no results\n", be, n, prog; fail = 1; continue }
                lm = pct(kl SUBSEP "blackout", 0.5, cnt[kl]); l9 = pct(kl SUBSEP "blackout", 0.9, cnt[kl])
                l0 = pct(kl SUBSEP "blackout", 0, cnt[kl])
                printf "%-8s %8d %-11s %4d %10.0f %10.0f %6.2f %10.0f %10.0f %6.2f %10.0f %10.0f %6.2f\n",
                       be, n, prog, cnt[kl], lm, fm, (fm > 0 ? lm / fm : 0), l9, f9,
                       (f9 > 0 ? l9 / f9 : 0), l0, f0, (f0 > 0 ? l0 / f0 : 0) } }
        printf "\nphase medians in us (prep: request -> execve; exec: execve -> the new main(); restore: main -> usable, then its parts)\n"
        for (o = 1; o <= no; o++) {
            split(order[o], bn, SUBSEP); be = bn[1]; n = bn[2]
            for (pi = 1; pi <= np; pi++) {
                prog = progs[pi]; k = be SUBSEP n SUBSEP prog
                if (!cnt[k]) continue
                line = sprintf("%-8s %8d %-11s", be, n, prog)
                nf = split(fl[k], fs, " ")
                for (j = 1; j <= nf; j++)
                    if (fs[j] != "blackout")
                        line = line sprintf(" %s %.1f", fs[j], pct(k SUBSEP fs[j], 0.5, cnt[k]))
                print line } }
        if (nneg) { printf "\nnegative controls (the check must fail):\n"; for (i = 1; i <= nneg; i++) print "  " neg[i] }
        else { print "no negative control ran"; fail = 1 }
        for (be in kn) {
            if (!hdr++) printf "\nminivmm --kvm (a nested VM driving edu): guest-visible pause and blackout, us\n"
            printf "%-8s %3d upgrades%s: guest pause median %d p90 %d; blackout median %d p90 %d\n", be,
                   kn[be], kbad[be] ? " (" kbad[be] " FAILED)" : "",
                   pct("kvm" SUBSEP be SUBSEP "pause", 0.5, kn[be]), pct("kvm" SUBSEP be SUBSEP "pause", 0.9, kn[be]),
                   pct("kvm" SUBSEP be SUBSEP "blackout", 0.5, kn[be]), pct("kvm" SUBSEP be SUBSEP "blackout", 0.9, kn[be])
            if (kbad[be]) fail = 1 }
        for (i = 1; i <= ntr; i++) print tr[i]
        exit fail }
' "$T/out"
