#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# make soak (never part of make check): per configuration one guest boot running
# `guest-cpr soak`: VFIOCPR_SOAK_CYCLES upgrades (default 1000) of edu on INTx and
# nvme on MSI-X, every upgrade checked (not reset, DMA both ways, each interrupt
# counted exactly once, open fds / VmPin / VmLck steady), after the soak's negative
# controls (tests/guest/guest-soak.sh). Prints one summary line per configuration:
# upgrades, failures, blackout and cycle time (median / p99 / max), fds, VmRSS, VmPin,
# VmLck of the first restored image against the last, the guest kernel's SUnreclaim
# and MemAvailable then and at the end.
#
# VFIOCPR_SOAK_CONFIGS (default "6.1:type1 7.3:type1 iommufd:type1 iommufd:iommufd"):
# KERNEL:BACKEND pairs, run one after the other. VFIOCPR_SOAK_SECS_PER_CYCLE (default
# 3) sizes each boot's timeout (60 s + that many per upgrade). As root, like the guest
# tier. Exit status non-zero if any configuration failed.
srcdir=${top_srcdir:-.}/tests/guest
builddir=${top_builddir:-.}/tests/guest
cycles=${VFIOCPR_SOAK_CYCLES:-1000}
configs=${VFIOCPR_SOAK_CONFIGS:-6.1:type1 7.3:type1 iommufd:type1 iommufd:iommufd}
per=${VFIOCPR_SOAK_SECS_PER_CYCLE:-3}
case $cycles in '' | *[!0-9]*) echo "soak: VFIOCPR_SOAK_CYCLES=$cycles is not a number" >&2; exit 2 ;; esac
failed=0
summaries=""
for c in $configs; do
    k=${c%%:*}
    b=${c#*:}
    [ "$b" = "$c" ] && b=type1
    out=$(mktemp "${TMPDIR:-/tmp}/vfiocpr-soak.XXXXXX")
    start=$(date +%s)
    echo "soak: kernel $k, backend $b, $cycles upgrades (timeout $((60 + cycles * per)) s)"
    bash "$srcdir/run-guest.sh" --kernel "$k" --device edu --device nvme \
        --timeout $((60 + cycles * per)) --log "$out.console" --extra "$builddir/guest-cpr" \
        -- "$srcdir/guest-soak.sh" "$cycles" "$b" >"$out" 2>"$out.err"
    rc=$?
    secs=$(( $(date +%s) - start ))
    grep -E '^(ok|not ok|Bail out!)' "$out" | sed "s/^/  [$k $b] /"
    sum=$(sed -n 's/^# soak-summary //p' "$out")
    nfail=$(grep -c -E '^(not ok|Bail out!)' "$out")
    nok=$(grep -c '^ok' "$out")
    # 5 controls caught, the cold start, the soak's verdict and its leak check
    if [ "$rc" -ne 0 ] || [ "$nfail" -ne 0 ] || [ "$nok" -lt 8 ] || [ -z "$sum" ]; then
        failed=1
        echo "soak: kernel $k backend $b FAILED (run-guest exit $rc, $nfail failed, $nok ok); console: $out.console"
        tail -n 20 "$out.err" | sed 's/^/  /'
    else
        rm -f "$out.console"
    fi
    summaries="$summaries
[$k $b] ${sum:-no summary} boot_s=$secs"
    rm -f "$out" "$out.err"
done
echo "soak results:$summaries"
exit $failed
