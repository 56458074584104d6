#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# minivmm-suite.sh [edu|e1000e] [UPGRADES]
#
# Runs inside the guest of tests/guest/run-guest.sh (busybox sh), with /bin/minivmm
# beside it, and speaks TAP:
#   1. --self-test: an upgrade to a missing binary fails, rolls back, the VMM goes on;
#   2. --upgrades UPGRADES (default 20): one TAP line per upgrade (lost interrupts,
#      DMA, blackout), the summary, and the timeline of the last upgrade as comments;
#   3. the control socket and SIGHUP: status, upgrade (answered by the new image),
#      upgrade to a missing binary (rolled back), SIGHUP, quit; same pid throughout;
#   4. --kvm --upgrades 3 if the guest has a working /dev/kvm (a kernel directory from
#      `tests/guest/fetch-kernel.sh 7.3 kvm kvm_amd`: QEMU's TCG emulates SVM), else
#      minivmm says it runs without KVM and the test is a SKIP.
# The device (default edu) is found through sysfs by its PCI ids.
#
#   tests/guest/run-guest.sh --kernel 7.3 --device edu --extra examples/minivmm/minivmm \
#       -- examples/minivmm/minivmm-suite.sh
#   tests/guest/run-guest.sh --kernel 6.1 --device e1000e --extra examples/minivmm/minivmm \
#       -- examples/minivmm/minivmm-suite.sh e1000e
kind=${1:-edu}
upgrades=${2:-20}
case $kind in
    edu) ids=0x1234:0x11e8 ;;
    e1000e) ids=0x8086:0x10d3 ;;
    *) echo "Bail out! unknown device kind '$kind' (edu or e1000e)"; exit 1 ;;
esac
bdf=
for d in /sys/bus/pci/devices/*; do
    read -r vendor <"$d/vendor"
    read -r device <"$d/device"
    if [ "$vendor:$device" = "$ids" ]; then bdf=${d##*/}; break; fi
done
[ -n "$bdf" ] || { echo "Bail out! no $kind ($ids) on the PCI bus"; exit 1; }
echo "# minivmm on $kind $bdf"

t=0
# result OK|NOTOK DESCRIPTION
result() {
    t=$((t + 1))
    if [ "$1" = OK ]; then echo "ok $t - $2"; else echo "not ok $t - $2"; fi
}
# comment FILE: a whole output as TAP comments
comment() { sed 's/^/#   /' "$1"; }
now() { read -r u _ </proc/uptime; echo "$u"; }
M=/bin/minivmm

# ------------------------------------------------------------ 1. rollback
$M --device "$bdf" --self-test >/tmp/self.out 2>&1
rc=$?
line=$(sed -n 's/^minivmm: self-test: //p' /tmp/self.out)
if [ "$rc" -eq 0 ]; then
    result OK "self-test: $line"
    sed -n 's/^minivmm: \(upgrade to .*FAILED.*\)$/#   \1/p' /tmp/self.out
else
    result NOTOK "self-test: exit $rc: ${line:-no result}"
    comment /tmp/self.out
fi

# ------------------------------------------------------------ 2. N upgrades
t0=$(now)
$M --device "$bdf" --upgrades "$upgrades" >/tmp/up.out 2>&1
rc=$?
t1=$(now)
grep "^minivmm: upgrade [0-9]*/$upgrades: " /tmp/up.out >/tmp/up.lines
seen=0
while read -r _ _ num status rest; do
    seen=$((seen + 1))
    if [ "$status" = "ok:" ]; then
        result OK "upgrade ${num%:} $rest"
    else
        result NOTOK "upgrade ${num%:} $status $rest"
    fi
done </tmp/up.lines
if [ "$seen" -ne "$upgrades" ]; then
    result NOTOK "only $seen of $upgrades upgrades reported a result"
fi
summary=$(sed -n 's/^minivmm: summary: //p' /tmp/up.out)
if [ "$rc" -eq 0 ] && [ -n "$summary" ]; then
    result OK "$upgrades upgrades in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s: $summary"
else
    result NOTOK "--upgrades $upgrades: exit $rc: ${summary:-no summary}"
    comment /tmp/up.out
fi
echo "# the timeline of upgrade $upgrades/$upgrades:"
awk -v n="$upgrades/$upgrades" '
    index($0, "---- upgrade " n ",") { on = 1 }
    on { sub(/^minivmm: /, ""); print "#   " $0 }
    on && index($0, "upgrade " n ": ") == 1 { exit }
' /tmp/up.out

# ------------------------------------------------------------ 3. control socket, SIGHUP
sock=/tmp/minivmm.sock
$M --device "$bdf" --control "$sock" >/tmp/ctl.out 2>&1 &
pid=$!
send() { $M --control "$sock" --send "$1" 2>&1; }
st=$(send status)
case $st in
    "generation 1, pid $pid,"*) result OK "control: status: $st" ;;
    *) result NOTOK "control: status: $st" ;;
esac
up=$(send upgrade | tr '\n' ' ')
case $up in
    *"upgraded: generation 2, pid $pid,"*": ok"*) result OK "control: upgrade, answered by the new image: $up" ;;
    *) result NOTOK "control: upgrade: $up" ;;
esac
bad=$(send "upgrade /nonexistent/minivmm" | tr '\n' ' ')
case $bad in
    *"upgrade failed, rolled back, still running"*) result OK "control: upgrade to a missing binary: $bad" ;;
    *) result NOTOK "control: upgrade to a missing binary: $bad" ;;
esac
kill -HUP "$pid"
st=
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    st=$(send status)
    # the generation counts at start-up, the upgrade once the new image checked it
    case $st in "generation 3, pid $pid,"*"upgrades 2 "*) break ;; esac
    sleep 0.5
done
case $st in
    "generation 3, pid $pid,"*"upgrades 2 (good 2), rollbacks 1,"*) result OK "SIGHUP: upgraded again: $st" ;;
    *) result NOTOK "SIGHUP: $st" ;;
esac
bye=$(send quit)
wait "$pid"
rc=$?
if [ "$bye" = bye ] && [ "$rc" -eq 0 ]; then
    result OK "control: quit, exit $rc"
else
    result NOTOK "control: quit: '$bye', exit $rc"
    comment /tmp/ctl.out
fi

# ------------------------------------------------------------ 4. KVM
$M --device "$bdf" --kvm --upgrades 3 >/tmp/kvm.out 2>&1
rc=$?
why=$(sed -n 's/^minivmm: --kvm: //p' /tmp/kvm.out | head -n 1)
if [ -n "$why" ]; then
    if [ "$rc" -eq 0 ]; then
        result OK "--kvm # SKIP no KVM in this guest, ran without it: $why"
    else
        result NOTOK "--kvm: without KVM, exit $rc"
        comment /tmp/kvm.out
    fi
elif [ "$rc" -eq 0 ]; then
    result OK "--kvm: $(sed -n 's/^minivmm: summary: //p' /tmp/kvm.out)"
    grep 'interrupt fired with the irqfds detached' /tmp/kvm.out | tail -n 1 | sed 's/^minivmm: */#   /'
else
    result NOTOK "--kvm: exit $rc"
    comment /tmp/kvm.out
fi

echo "1..$t"
