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
#   3b. transfers to separately started processes (--incoming, --transfer-to):
#      TRANSFERS (default 10) chained old -> new -> newer, one TAP line each (lost
#      interrupts, DMA, not reset, from the old pid to a different new one, the old
#      one reporting the hand-over and exiting 0), the summary, the timeline of the
#      last one, the blackout of an exec (2.) and of a transfer in this boot; the
#      controls: an exec upgrade fails the transfer check, and a new process with
#      --negative ram-copy, irq-drain or bus-master-off is caught by its own checks;
#      "upgrade --transfer" on the control socket, answered by the new process,
#      which then serves that socket;
#      new processes killed (SIGKILL) after accepting the connection, after
#      receiving the state, after restoring the devices, killed from outside while
#      hung before the commit, or hung until the old side's timeout: each time the
#      old process's error names the step, it rolled back and carries on, and its
#      next exec upgrade (lost interrupts, DMA) and status check out;
#   4. --kvm, a real VM whose guest program drives edu and counts in its own RAM:
#      a. --upgrades KVM_UPGRADES (default 20) with MSI: one TAP line per upgrade
#         (device raised == taken by the guest's handler, the window's interrupts in
#         one interrupt of their own, the guest's DMA, its pause), the summary, the
#         guest's progress counter monotonic, the timeline of the last upgrade;
#      b. --intx --upgrades 3: INTx through the IOAPIC, the window delivered once;
#      b'. KVM_TRANSFERS (default 3) transfers chained through new processes, each
#         with a new VM restored from the vCPU memfd (raised == taken by the guest,
#         DMA, different pids); the control ram-copy in the new process, caught; a
#         new process killed after its restore: the old VM takes the interrupts
#         back and its next exec upgrade balances the guest's counts;
#      c. negative controls that must be caught: wrong-gsi (MSI and INTx),
#         irqfd-before-routes, keep-old-irqfds, cold-guest, set-irqs (a new
#         eventfd), ram-copy; set-irqs-same (the preserved eventfd) reported as
#         TODO;
#      d. e1000e: --upgrades 3 with its 5 MSI-X vectors, and wrong-gsi;
#      no /dev/kvm in the guest is a failure;
#   5-7. through the exec wrapper /bin/vfiocpr-exec (SKIP when it is not in the guest):
#      5. fallback: --upgrades 2 to a missing binary, --wrapper-arg --summary=json: the
#         wrapper falls back to /bin/minivmm each time, which restores; its JSON summary
#         must list exactly the fds minivmm registered, with their kinds and numbers;
#      6. seccomp: --upgrades 2 under --seccomp with the allow list below: the second
#         upgrade starts from inside the filtered image (the filter is inherited);
#      7. the control: the same with --forbidden-ioctl, killed by SIGSYS after the
#         restore (and the audit log, if the kernel prints it, names ioctl).
# The device (default edu) is found through sysfs by its PCI ids.
#
#   tests/guest/run-guest.sh --kernel 7.3 --device edu --device e1000e \
#       --extra examples/minivmm/minivmm --extra examples/minivmm/minivmm-guest.bin \
#       --extra examples/vfiocpr-exec/vfiocpr-exec -- examples/minivmm/minivmm-suite.sh
# (the wrapper is linked to libvfiocpr.so.0: in the build tree run it with
# LD_LIBRARY_PATH=$PWD/lib/.libs, absolute, so that ldd finds it for the initramfs)
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
# minivmm prepares its state once the guest runs (vfiocpr_state_prepare): every
# handover that uses it here also encodes afresh and fails (EIO) on a difference.
VFIOCPR_VERIFY_PREPARED=1
export VFIOCPR_VERIFY_PREPARED

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

# ------------------------------------------------------------ 3b. transfers (begin)
# vfiocpr_transfer() to separately started processes: each new one is started by
# this script with --incoming (it listens, takes one connection, then runs the same
# start-up as an exec restart), the old one hands over on --transfer-to and exits.
xn=${TRANSFERS:-10}
rm -f /tmp/xfer-*.sock /tmp/xfer-*.out
t0=$(now)
$M --device "$bdf" --upgrades "$xn" --transfer-to /tmp/xfer-1.sock >/tmp/xfer-0.out 2>&1 &
eval "xpid0=$!"
i=1
while [ "$i" -le "$xn" ]; do
    $M --device "$bdf" --incoming "/tmp/xfer-$i.sock" --transfer-to "/tmp/xfer-$((i + 1)).sock" \
        >"/tmp/xfer-$i.out" 2>&1 &
    eval "xpid$i=$!"
    i=$((i + 1))
done
i=0
while [ "$i" -le "$xn" ]; do
    eval "wait \$xpid$i"
    eval "xrc$i=$?"
    i=$((i + 1))
done
t1=$(now)
# xfer_check N OUT PREV_OUT OLD_PID NEW_PID: upgrade N of the chain, as OUT reports it
xfer_check() {
    xl=$(grep "^minivmm: upgrade $1/$xn: " "$2" | sed 's/^minivmm: //')
    xbad=
    case $xl in *": ok: lost 0 interrupts, DMA ok, not reset ok, "*) ;; *) xbad="$xbad; not ok" ;; esac
    case $xl in *", transfer from pid $4 to pid $5") ;; *) xbad="$xbad; not a transfer from pid $4 to pid $5" ;; esac
    [ "$4" != "$5" ] || xbad="$xbad; the same pid"
    grep -q "^minivmm: transfer to .* committed after [0-9]* us: handed over to pid $5; pid $4 exits without touching the devices$" "$3" ||
        xbad="$xbad; pid $4 did not report the hand-over to pid $5"
}
i=1
while [ "$i" -le "$xn" ]; do
    eval "old=\$xpid$((i - 1)) new=\$xpid$i orc=\$xrc$((i - 1))"
    xfer_check "$i" "/tmp/xfer-$i.out" "/tmp/xfer-$((i - 1)).out" "$old" "$new"
    [ "$orc" -eq 0 ] || xbad="$xbad; pid $old exited $orc after handing over"
    if [ -z "$xbad" ]; then
        result OK "transfer ${xl#upgrade }; pid $old exited 0"
    else
        result NOTOK "transfer $i/$xn:${xbad#;}: ${xl:-no result}"
        comment "/tmp/xfer-$((i - 1)).out"
        comment "/tmp/xfer-$i.out"
    fi
    i=$((i + 1))
done
eval "lrc=\$xrc$xn"
xsum=$(sed -n 's/^minivmm: summary: //p' "/tmp/xfer-$xn.out")
case $xsum in
    "$xn/$xn upgrades good, 0 interrupts lost "*) xs_ok=yes ;;
    *) xs_ok=no ;;
esac
if [ "$lrc" -eq 0 ] && [ "$xs_ok" = yes ]; then
    result OK "$xn transfers through $((xn + 1)) processes in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s: $xsum"
else
    result NOTOK "$xn transfers: the last process exited $lrc: ${xsum:-no summary}"
    comment "/tmp/xfer-$xn.out"
fi
echo "# the timeline of transfer $xn/$xn:"
awk -v n="$xn/$xn" '
    index($0, "---- upgrade " n ",") { on = 1 }
    on { sub(/^minivmm: /, ""); print "#   " $0 }
    on && index($0, "upgrade " n ": ") == 1 { exit }
' "/tmp/xfer-$xn.out"
# the same boot, the same device: exec (section 2) against transfer
xbo() { sed -n 's/^minivmm: summary: .*, blackout min \([0-9]*\) \/ mean \([0-9]*\) \/ max \([0-9]*\) us.*/min \1 \/ mean \2 \/ max \3 us/p' "$1"; }
echo "# blackout, exec ($upgrades upgrades): $(xbo /tmp/up.out); transfer ($xn): $(xbo "/tmp/xfer-$xn.out")"
# The check's control: an exec upgrade is no transfer, the check must say so.
xfer_check 1 /tmp/up.out /tmp/up.out 1 1
case $xbad in
    *"not a transfer"*"the same pid"*) result OK "transfer check control: an exec upgrade is refused:${xbad#;}" ;;
    *) result NOTOK "transfer check control: an exec upgrade passed the transfer check: $xl" ;;
esac

# xfer_one NAME NEGATIVE: one transfer to a process started with --negative NEGATIVE,
# which must be caught by the new process's own checks
xfer_one() {
    rm -f /tmp/xfer-n.sock
    $M --device "$bdf" --upgrades 1 --transfer-to /tmp/xfer-n.sock >"/tmp/xfer-$1-old.out" 2>&1 &
    xo=$!
    $M --device "$bdf" --incoming /tmp/xfer-n.sock --negative "$2" >"/tmp/xfer-$1.out" 2>&1
    xr=$?
    wait "$xo"
    xl=$(sed -n 's/^minivmm: upgrade 1\/1: //p' "/tmp/xfer-$1.out")
}
# each of the new process's checks, broken in turn
# (the pattern after the colon is a glob: the drain loses every interrupt of the
# window, one or more depending on how many the device raised in it)
for neg in "ram-copy:DMA BAD" "irq-drain:lost [1-9]* interrupts" "bus-master-off:not reset BAD"; do
    xfer_one "neg-${neg%%:*}" "${neg%%:*}"
    # shellcheck disable=SC2254  # the pattern is meant as a glob
    case $xl in
        FAILED:*${neg#*:}*) result OK "transfer --negative ${neg%%:*}: caught (exit $xr): ${xl#FAILED: }" ;;
        *) result NOTOK "transfer --negative ${neg%%:*}: NOT caught (exit $xr): ${xl:-no result}"
           comment "/tmp/xfer-neg-${neg%%:*}.out" ;;
    esac
done

# "upgrade --transfer" on the control socket: answered by the new process, which
# then serves the same control socket (its listening socket came with the transfer)
ctl=/tmp/minivmm-x.sock
xsend() { $M --control "$ctl" --send "$1" 2>&1; }
rm -f /tmp/xfer-c.sock
$M --device "$bdf" --control "$ctl" >/tmp/xfer-c-old.out 2>&1 &
xo=$!
$M --device "$bdf" --control "$ctl" --incoming /tmp/xfer-c.sock >/tmp/xfer-c.out 2>&1 &
xnew=$!
xt=$(xsend "upgrade --transfer /tmp/xfer-c.sock" | tr '\n' ' ')
wait "$xo"
xor=$?
xst=$(xsend status)
xq=$(xsend quit)
wait "$xnew"
xr=$?
xbad=
case $xt in *"upgraded by a transfer: generation 2, pid $xnew, "*"lost 0 interrupts, DMA ok: ok"*) ;;
            *) xbad="$xbad; answer: $xt" ;; esac
[ "$xor" -eq 0 ] || xbad="$xbad; the old pid $xo exited $xor"
case $xst in "generation 2, pid $xnew,"*"upgrades 1 (good 1), rollbacks 0,"*) ;; *) xbad="$xbad; status: $xst" ;; esac
[ "$xq" = bye ] && [ "$xr" -eq 0 ] || xbad="$xbad; quit: '$xq', exit $xr"
[ "$xo" != "$xnew" ] || xbad="$xbad; the same pid"
if [ -z "$xbad" ]; then
    result OK "control: upgrade --transfer: ${xt#transferring to the new process on /tmp/xfer-c.sock }(pid $xo exited 0); the new process serves the control socket: $xst"
else
    result NOTOK "control: upgrade --transfer:${xbad#;}"
    comment /tmp/xfer-c-old.out
    comment /tmp/xfer-c.out
fi

# A new process that dies (SIGKILL) or hangs after the connection: the old one rolls
# back (DMA at its addresses, the interrupts its own again) and carries on; its
# next exec upgrade is checked as usual, and finds the device not reset.
for case in accepted:none received:validated restored:restoring kill9:restoring timeout:restoring; do
    point=${case%%:*}
    step=${case#*:}
    fault=$point
    [ "$point" = kill9 ] || [ "$point" = timeout ] && fault=hang
    rm -f /tmp/xfer-k.sock
    $M --device "$bdf" --control "$ctl" >"/tmp/xfer-k-$point-old.out" 2>&1 &
    xo=$!
    $M --device "$bdf" --control "$ctl" --incoming /tmp/xfer-k.sock --incoming-fault "$fault" \
        >"/tmp/xfer-k-$point.out" 2>&1 &
    xn_pid=$!
    if [ "$point" = kill9 ]; then
        # killed from outside once it hangs, restored, before its commit
        ( for _ in $(seq 1 200); do
              grep -q 'hangs now' "/tmp/xfer-k-$point.out" && break
              sleep 0.05
          done
          kill -9 "$xn_pid" ) &
    fi
    xt=$(xsend "upgrade --transfer /tmp/xfer-k.sock" | tr '\n' ' ')
    # (from a subshell: the shell would report the kill of its own job)
    [ "$point" = timeout ] && (kill -9 "$xn_pid")
    wait "$xn_pid"
    xr=$?
    xu=$(xsend upgrade | tr '\n' ' ')
    xst=$(xsend status)
    xq=$(xsend quit)
    wait "$xo"
    xor=$?
    xbad=
    # killed at once: the old side finds the peer gone while it sends, or when it
    # waits for the first step
    [ "$step" = none ] && alt="send state: " || alt="after step '$step'"
    case $xt in *"upgrade failed, rolled back, still running: "*"after step '$step'"*) ;;
                *"upgrade failed, rolled back, still running: "*"$alt"*) ;;
                *) xbad="$xbad; the transfer did not fail after step '$step'" ;; esac
    [ "$xr" -eq 137 ] || xbad="$xbad; the new process exited $xr, not 137 (SIGKILL)"
    case $xu in *"upgraded: generation 2, pid $xo,"*"lost 0 interrupts, DMA ok: ok"*) ;;
                *) xbad="$xbad; the exec upgrade after it failed" ;; esac
    case $xst in "generation 2, pid $xo,"*"upgrades 1 (good 1), rollbacks 1,"*"(bad 0)") ;;
                 *) xbad="$xbad; status: $xst" ;; esac
    [ "$xq" = bye ] && [ "$xor" -eq 0 ] || xbad="$xbad; quit: '$xq', exit $xor"
    if [ -z "$xbad" ]; then
        result OK "transfer to a new process killed at '$point': ${xt#*still running: }; pid $xo carried on, then: ${xu#upgrading to * }"
    else
        result NOTOK "transfer to a new process killed at '$point':${xbad#;}: $xt / $xu"
        comment "/tmp/xfer-k-$point-old.out"
        comment "/tmp/xfer-k-$point.out"
    fi
done
# ------------------------------------------------------------ 3b. transfers (end)

# ------------------------------------------------------------ 4. KVM: a real VM
# minivmm --kvm runs a VM whose guest program drives the device; the guest counts
# in its own RAM the interrupts its handler took. A guest kernel without a working
# /dev/kvm is a failure: run-guest.sh loads kvm and kvm_amd into every guest.
# The guest drives edu (4a-c) and e1000e (4d), whichever device the suite is for.
kvm_edu=
kvm_e1000e=
for d in /sys/bus/pci/devices/*; do
    read -r vendor <"$d/vendor"
    read -r device <"$d/device"
    case $vendor:$device in
        0x1234:0x11e8) kvm_edu=${d##*/} ;;
        0x8086:0x10d3) kvm_e1000e=${d##*/} ;;
    esac
done
kvm_dev=$kvm_edu
# kvm_run NAME ARGS...: one minivmm --kvm run on $kvm_dev, its output in /tmp/kvm-NAME.out
kvm_run() {
    name=$1
    shift
    $M --device "$kvm_dev" --kvm "$@" >"/tmp/kvm-$name.out" 2>&1
}
if [ ! -c /dev/kvm ]; then
    result NOTOK "--kvm: no /dev/kvm in this guest (kvm, kvm_amd not loaded?)"
fi
if [ -z "$kvm_edu" ] || [ -z "$kvm_e1000e" ]; then
    result NOTOK "--kvm needs both edu and e1000e (run-guest.sh --device edu --device e1000e)"
fi
# 4a. KVM_UPGRADES upgrades with MSI: each one checked by what the guest counted
kvm_up=${KVM_UPGRADES:-20}
t0=$(now)
kvm_run msi --upgrades "$kvm_up"
rc=$?
t1=$(now)
seen=0
grep "^minivmm: upgrade [0-9]*/$kvm_up: " /tmp/kvm-msi.out >/tmp/kvm.lines
while read -r _ _ num status rest; do
    seen=$((seen + 1))
    if [ "$status" = "ok:" ]; then
        result OK "--kvm upgrade ${num%:} $rest"
    else
        result NOTOK "--kvm upgrade ${num%:} $status $rest"
    fi
done </tmp/kvm.lines
summary=$(sed -n 's/^minivmm: summary: //p' /tmp/kvm-msi.out)
# the guest's progress counter, read back at every upgrade: strictly increasing
mono=$(sed -n 's/.*the guest saw: .*; progress \([0-9]*\) -> \([0-9]*\) (first heartbeat) -> \([0-9]*\), .*/\1 \2 \3/p' /tmp/kvm-msi.out |
       awk 'BEGIN { ok = 1; last = -1 } { if ($1 < last || $2 <= $1 || $3 <= $2) ok = 0; last = $3; n++ }
            END { print (ok && n > 0) ? "monotonic over " n " upgrades" : "NOT monotonic" }')
if [ "$rc" -eq 0 ] && [ "$seen" -eq "$kvm_up" ] && [ -n "$summary" ]; then
    result OK "--kvm: $kvm_up upgrades in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s: $summary"
else
    result NOTOK "--kvm --upgrades $kvm_up: exit $rc, $seen upgrade(s) reported: ${summary:-no summary}"
    comment /tmp/kvm-msi.out
fi
case $mono in
    monotonic*) result OK "--kvm: the guest's progress counter is $mono" ;;
    *) result NOTOK "--kvm: the guest's progress counter is $mono" ;;
esac
echo "# the timeline of --kvm upgrade $kvm_up/$kvm_up:"
awk -v n="$kvm_up/$kvm_up" '
    index($0, "---- upgrade " n ",") { on = 1 }
    on { sub(/^minivmm: /, ""); print "#   " $0 }
    on && index($0, "upgrade " n ": ") == 1 { exit }
' /tmp/kvm-msi.out

# 4b. INTx: level-triggered through the IOAPIC with the resample irqfd; what the
# helper raised during each exec is delivered exactly once
kvm_run intx --intx --upgrades 3
rc=$?
once=$(grep -c '^minivmm: upgrade [123]/3: ok: INTx raised \([0-9]*\) = taken \1 by the guest, window [1-9][0-9]* in 1 interrupt(s),' /tmp/kvm-intx.out)
if [ "$rc" -eq 0 ] && [ "$once" -eq 3 ]; then
    result OK "--kvm --intx: 3 upgrades, each window's interrupts delivered exactly once: $(sed -n 's/^minivmm: summary: //p' /tmp/kvm-intx.out)"
else
    result NOTOK "--kvm --intx: exit $rc, $once of 3 upgrades delivered the window exactly once"
    comment /tmp/kvm-intx.out
fi

# 4b'. transfers under --kvm: each new process makes a new VM, restores the vCPU
# from the memfd that travels like every registered fd, and the guest's own counts
# must balance; then a new process killed after its restore, before its commit
kx=${KVM_TRANSFERS:-3}
rm -f /tmp/kx-*.sock
$M --device "$kvm_dev" --kvm --upgrades "$kx" --transfer-to /tmp/kx-1.sock >/tmp/kx-0.out 2>&1 &
eval "kpid0=$!"
i=1
while [ "$i" -le "$kx" ]; do
    $M --device "$kvm_dev" --kvm --incoming "/tmp/kx-$i.sock" --transfer-to "/tmp/kx-$((i + 1)).sock" \
        >"/tmp/kx-$i.out" 2>&1 &
    eval "kpid$i=$!"
    i=$((i + 1))
done
i=0
while [ "$i" -le "$kx" ]; do
    eval "wait \$kpid$i"
    eval "krc$i=$?"
    i=$((i + 1))
done
i=1
while [ "$i" -le "$kx" ]; do
    eval "old=\$kpid$((i - 1)) new=\$kpid$i orc=\$krc$((i - 1))"
    kl=$(sed -n "s/^minivmm: upgrade $i\/$kx: //p" "/tmp/kx-$i.out")
    kbad=
    case $kl in "ok: MSI raised "*" by the guest, "*", transfer from pid $old to pid $new") ;;
                *) kbad="$kbad; not a good transfer from pid $old to pid $new" ;; esac
    # the guest's own counts: what the device raised, the guest's handler took
    case $kl in *" raised "*" = taken "*" NOT EQUAL"*) kbad="$kbad; counts differ" ;; esac
    grep -q "^minivmm: transfer to .* committed after [0-9]* us: handed over to pid $new; pid $old exits without touching the devices$" \
        "/tmp/kx-$((i - 1)).out" || kbad="$kbad; pid $old did not report the hand-over"
    [ "$orc" -eq 0 ] || kbad="$kbad; pid $old exited $orc"
    if [ -z "$kbad" ]; then
        result OK "--kvm transfer $i/$kx ${kl#ok: }; pid $old exited 0"
    else
        result NOTOK "--kvm transfer $i/$kx:${kbad#;}: ${kl:-no result}"
        comment "/tmp/kx-$((i - 1)).out"
        comment "/tmp/kx-$i.out"
    fi
    i=$((i + 1))
done
eval "lrc=\$krc$kx"
ksum=$(sed -n 's/^minivmm: summary: //p' "/tmp/kx-$kx.out")
case $ksum in
    "$kx/$kx upgrades good, "*) [ "$lrc" -eq 0 ] && result OK "--kvm: $kx transfers through $((kx + 1)) processes: $ksum" ||
                                    result NOTOK "--kvm: $kx transfers: the last process exited $lrc: $ksum" ;;
    *) result NOTOK "--kvm: $kx transfers: exit $lrc: ${ksum:-no summary}"; comment "/tmp/kx-$kx.out" ;;
esac
echo "# the timeline of --kvm transfer $kx/$kx:"
awk -v n="$kx/$kx" '
    index($0, "---- upgrade " n ",") { on = 1 }
    on { sub(/^minivmm: /, ""); print "#   " $0 }
    on && index($0, "upgrade " n ": ") == 1 { exit }
' "/tmp/kx-$kx.out"
# the control of the guest's counts across a transfer: the new VM's RAM a copy
rm -f /tmp/kx-n.sock
$M --device "$kvm_dev" --kvm --upgrades 1 --transfer-to /tmp/kx-n.sock >/tmp/kx-n-old.out 2>&1 &
ko=$!
$M --device "$kvm_dev" --kvm --incoming /tmp/kx-n.sock --negative ram-copy >/tmp/kx-n.out 2>&1
kr=$?
wait "$ko"
kl=$(sed -n 's/^minivmm: upgrade 1\/1: //p' /tmp/kx-n.out)
case $kl in
    FAILED:*) result OK "--kvm transfer --negative ram-copy: caught (exit $kr): ${kl#FAILED: }" ;;
    *) result NOTOK "--kvm transfer --negative ram-copy: NOT caught (exit $kr): ${kl:-no result}"
       comment /tmp/kx-n.out ;;
esac
# killed after its restore (new VM made, irqfds on it): the old VM takes the
# interrupts back, and its next exec upgrade balances the guest's counts
ctl=/tmp/minivmm-kx.sock
rm -f /tmp/kx-k.sock
$M --device "$kvm_dev" --kvm --control "$ctl" >/tmp/kx-k-old.out 2>&1 &
ko=$!
$M --device "$kvm_dev" --kvm --control "$ctl" --incoming /tmp/kx-k.sock --incoming-fault restored \
    >/tmp/kx-k.out 2>&1 &
kn_pid=$!
kt=$($M --control "$ctl" --send "upgrade --transfer /tmp/kx-k.sock" 2>&1 | tr '\n' ' ')
wait "$kn_pid"
kr=$?
ku=$($M --control "$ctl" --send upgrade 2>&1 | tr '\n' ' ')
kq=$($M --control "$ctl" --send quit 2>&1)
wait "$ko"
kor=$?
kbad=
case $kt in *"upgrade failed, rolled back, still running: "*"after step 'restoring'"*) ;;
            *) kbad="$kbad; the transfer did not fail after step 'restoring'" ;; esac
[ "$kr" -eq 137 ] || kbad="$kbad; the new process exited $kr, not 137"
case $ku in *"upgraded: generation 2, pid $ko, "*": ok"*) ;; *) kbad="$kbad; the exec upgrade after it failed" ;; esac
[ "$kq" = bye ] && [ "$kor" -eq 0 ] || kbad="$kbad; quit '$kq', exit $kor"
kg=$(sed -n 's/^minivmm: upgrade 1: ok: \(.* by the guest\),.*/\1/p' /tmp/kx-k-old.out)
if [ -z "$kbad" ]; then
    result OK "--kvm transfer to a new process killed after its restore: ${kt#*still running: }; pid $ko carried on, its exec upgrade after it: $kg"
else
    result NOTOK "--kvm transfer to a new process killed after its restore:${kbad#;}: $kt / $ku"
    comment /tmp/kx-k-old.out
    comment /tmp/kx-k.out
fi

# 4c. negative controls: each breaks the upgrade; the guest's own counts must say so
# negative NAME [--intx]: caught when the upgrade FAILED on what the guest counted
negative() {
    neg=$1
    shift
    what="--kvm --negative $neg${*:+ $*}"
    [ "$kvm_dev" = "$kvm_e1000e" ] && what="--kvm e1000e --negative $neg"
    kvm_run "neg-$neg$*-$kvm_dev" --upgrades 1 --negative "$neg" "$@"
    rc=$?
    line=$(sed -n 's/^minivmm: upgrade 1\/1: //p' "/tmp/kvm-neg-$neg$*-$kvm_dev.out")
    busy=$(grep -c '^minivmm: error: kvm: KVM_IRQFD assign of eventfd .*(Device or resource busy)$' \
           "/tmp/kvm-neg-$neg$*-$kvm_dev.out")
    # keep-old-irqfds: newer kernels refuse a second irqfd on the eventfd (the
    # new VM's), so the new image cannot start; older ones let the old VM steal
    if [ -z "$line" ] && [ "$neg" = keep-old-irqfds ] && [ "$busy" -eq 1 ] && [ "$rc" -ne 0 ]; then
        line="FAILED: refused by the kernel: the new VM's KVM_IRQFD on the eventfd the old VM still holds is EBUSY"
    fi
    case $line in
        FAILED:*) result OK "$what: caught (exit $rc): ${line#FAILED: }" ;;
        ok:*) result NOTOK "$what: NOT caught: $line" ;;
        *) result NOTOK "$what: exit $rc, no result"
           comment "/tmp/kvm-neg-$neg$*-$kvm_dev.out" ;;
    esac
}
negative wrong-gsi
negative wrong-gsi --intx
negative irqfd-before-routes
negative keep-old-irqfds
# the new image boots the guest afresh instead of restoring it: its progress restarts
negative cold-guest
# the new image runs its cold-start interrupt set-up: SET_IRQS with a new eventfd
negative set-irqs
# the new VM's RAM is a copy: the device DMAs where the guest does not look
negative ram-copy
# 4d. e1000e: MSI-X, 5 vectors, each with its own route and irqfd; the helper shoots
# each vector once during the exec (e1000e has no status bit per shot)
kvm_dev=$kvm_e1000e
kvm_run msix --upgrades 3
rc=$?
good=$(grep -c '^minivmm: upgrade [123]/3: ok: MSI-X raised \([0-9]*\) = taken \1 by the guest, window 5, one per vector,' /tmp/kvm-msix.out)
if [ "$rc" -eq 0 ] && [ "$good" -eq 3 ]; then
    result OK "--kvm e1000e MSI-X: 3 upgrades, every vector's shots (one per vector in each window) taken exactly once: $(sed -n 's/^minivmm: summary: //p' /tmp/kvm-msix.out)"
    sed -n 's/^minivmm:   the guest.s handlers, per MSI-X vector/#   per MSI-X vector/p' /tmp/kvm-msix.out | tail -n 1
else
    # QEMU's e1000e model under TCG load sometimes sends a shot's MSI-X message more
    # than once (tests/guest/README.md). An upgrade that only has such extras, no
    # vector short, is reported as TODO; a lost interrupt always fails.
    short=$(grep '^minivmm: upgrade [123]/3: FAILED' /tmp/kvm-msix.out |
            grep -o 'vector [0-9]*: raised [0-9]*, taken [0-9]*' |
            awk '$4 + 0 > $6 + 0 { n++ } END { print n + 0 }')
    others=$(grep '^minivmm: upgrade [123]/3: FAILED' /tmp/kvm-msix.out | grep -vc 'NOT EQUAL')
    if [ "$rc" -eq 1 ] && [ "$short" -eq 0 ] && [ "$others" -eq 0 ] &&
       [ "$(grep -c '^minivmm: upgrade [123]/3: FAILED' /tmp/kvm-msix.out)" -eq $((3 - good)) ]; then
        echo "not ok $((t = t + 1)) - --kvm e1000e MSI-X: $good of 3 upgrades exact, the others with extra MSI-X messages from the device model and none lost # TODO"
    else
        result NOTOK "--kvm e1000e MSI-X: exit $rc, $good of 3 upgrades good"
    fi
    comment /tmp/kvm-msix.out
fi
# routes one GSI off their irqfds: every vector's interrupts land on the next vector
negative wrong-gsi
kvm_dev=$kvm_edu

# Re-issuing SET_IRQS with the preserved eventfd (set-irqs-same) is tolerated except
# for an interrupt raised between its free_irq() and request_irq(), whose message
# is zeroed meanwhile (the host logs a DMA write fault at IOVA 0); the guest's
# counts cannot see that loss, because edu keeps the status bit and the merged
# window interrupt carries it. Reported, as TODO, whichever way it goes.
faults0=$(dmesg | grep -c 'DMAR: \[DMA Write.*fault addr 0x0 ')
kvm_run neg-set-irqs-same --upgrades 1 --negative set-irqs-same
rc=$?
faults1=$(dmesg | grep -c 'DMAR: \[DMA Write.*fault addr 0x0 ')
line=$(sed -n 's/^minivmm: upgrade 1\/1: //p' /tmp/kvm-neg-set-irqs-same.out)
case $line in
    FAILED:*) result OK "--kvm --negative set-irqs-same: caught (exit $rc): ${line#FAILED: }" ;;
    ok:*) echo "not ok $((t = t + 1)) - --kvm --negative set-irqs-same: not caught by the guest's counts: $line; DMA write faults at IOVA 0 in the host log during it: $((faults1 - faults0)) # TODO" ;;
    *) result NOTOK "--kvm --negative set-irqs-same: exit $rc, no result"; comment /tmp/kvm-neg-set-irqs-same.out ;;
esac

# ------------------------------------------------------------ 5-7. the exec wrapper
W=/bin/vfiocpr-exec
# What minivmm needs under `vfiocpr-exec --seccomp` beyond libvfiocpr's rules and the
# wrapper's start-up list, found by trial with the audit log (type=1326 names the
# syscall that killed): its event loop (signalfd4; timerfd_create, timerfd_settime),
# and, for an upgrade from inside the filtered image, the wrapper loading its filter
# again (prctl: PR_SET_NO_NEW_PRIVS; seccomp: SECCOMP_SET_MODE_FILTER). Minimal (each
# one dropped gets SIGSYS) for edu without --control or --kvm; those would need more.
allow=signalfd4,timerfd_create,timerfd_settime,prctl,seccomp
# audit_last: the last seccomp kill in the kernel log, "COMM SYSCALL", or nothing
audit_count() { dmesg | grep -c 'type=1326'; }
audit_last() { dmesg | sed -n 's/.*type=1326.* comm="\([^"]*\)".* sig=31 .* syscall=\([0-9]*\) .*/\1 \2/p' | tail -n 1; }

wrapper=yes
if [ ! -x "$W" ]; then
    wrapper="no $W in this guest (run-guest.sh --extra .../examples/vfiocpr-exec/vfiocpr-exec)"
elif ! ver=$($W --version 2>&1); then
    # built in a libtool tree: libvfiocpr.so.0 sits at the host's build path
    lib=$(find / -xdev -name libvfiocpr.so.0 2>/dev/null | head -n 1)
    if [ -n "$lib" ] && ver=$(LD_LIBRARY_PATH=${lib%/*} $W --version 2>&1); then
        export LD_LIBRARY_PATH="${lib%/*}"
        result OK "the wrapper runs: $ver (libvfiocpr.so.0 from $LD_LIBRARY_PATH)"
    else
        result NOTOK "the wrapper does not run: $ver"
        wrapper="$W does not run"
    fi
else
    result OK "the wrapper runs: $ver"
fi

if [ "$wrapper" != yes ]; then
    case $wrapper in
        "no "*) for s in fallback seccomp "seccomp control"; do result OK "wrapper: $s # SKIP $wrapper"; done ;;
        *) for s in fallback seccomp "seccomp control"; do result NOTOK "wrapper: $s: $wrapper"; done ;;
    esac
    echo "1..$t"
    exit 0
fi

# ---- 5. fallback, and the JSON summary against what minivmm registered
group=$(readlink "/sys/bus/pci/devices/$bdf/iommu_group")
group=${group##*/}
sock=/tmp/minivmm-fb.sock
$M --device "$bdf" --control "$sock" --upgrades 2 --wrapper "$W" --wrapper-arg --summary=json \
    --upgrade-to /nonexistent/minivmm-new >/tmp/fb.out 2>&1 &
pid=$!
wait "$pid"
rc=$?
summary=$(sed -n 's/^minivmm: summary: //p' /tmp/fb.out)
ups=$(grep -c '^minivmm: upgrade [12]/2: ok: .*, the wrapper fell back to the old binary$' /tmp/fb.out)
why=$(grep -c '^minivmm:   new image  *the wrapper fell back to this binary: exec-failed: /nonexistent/minivmm-new: No such file or directory$' /tmp/fb.out)
case $summary in
    "2/2 upgrades good, 0 interrupts lost "*"fallbacks 2") sum_ok=yes ;;
    *) sum_ok=no ;;
esac
if [ "$rc" -eq 0 ] && [ "$ups" -eq 2 ] && [ "$why" -eq 2 ] && [ "$sum_ok" = yes ]; then
    result OK "wrapper: fallback: 2 upgrades to /nonexistent/minivmm-new, the wrapper fell back to $M (same pid $pid) and it restored: $summary"
else
    result NOTOK "wrapper: fallback: exit $rc, $ups upgrade(s) ok after a fallback, $why reason(s) seen: ${summary:-no summary}"
    comment /tmp/fb.out
fi
# What minivmm registered, from its cold start: fd numbers of the container, the device,
# the MSI eventfd (the others are checked by name and kind).
cfd=$(sed -n 's/^minivmm: cold start, .*, container fd \([0-9]*\), device fd \([0-9]*\)$/\1/p' /tmp/fb.out)
dfd=$(sed -n 's/^minivmm: cold start, .*, container fd \([0-9]*\), device fd \([0-9]*\)$/\2/p' /tmp/fb.out)
efd=$(sed -n 's/^minivmm: guest RAM: .*, eventfd \([0-9]*\)$/\1/p' /tmp/fb.out)
grep '^{"schema":' /tmp/fb.out >/tmp/fb.json
n=0
while read -r jl; do
    n=$((n + 1))
    bad=
    need() { case $jl in *"$1"*) ;; *) bad="$bad; no $1" ;; esac; }
    need '{"schema":1,"state":"valid","state_fd":"'
    need '"format_version":"1.6",'
    need '"writer":{"name":"libvfiocpr '
    need "\"pid\":$pid,"
    need '"complete":true,"fd_total":8,"fd_counts":{"other":1,"memfd":3,"eventfd":1,"vfio-container":1,"vfio-group":1,"vfio-device":1,"kvm":0,"iommufd":0,"vfio-cdev":0},'
    need '{"name":"control-listen","id":0,"kind":"other","fd":'
    need '{"name":"guest-ram","id":0,"kind":"memfd","fd":'
    need '{"name":"minivmm-state","id":0,"kind":"memfd","fd":'
    need '{"name":"vfio-dma-table:container0","id":0,"kind":"memfd","fd":'
    need "{\"name\":\"irq:$bdf:1\",\"id\":0,\"kind\":\"eventfd\",\"fd\":${efd:-?}}"
    need "{\"name\":\"vfio-container:container0\",\"id\":0,\"kind\":\"vfio-container\",\"fd\":${cfd:-?}}"
    need "{\"name\":\"vfio-group\",\"id\":$group,\"kind\":\"vfio-group\",\"fd\":"
    need "{\"name\":\"vfio-device:$bdf\",\"id\":0,\"kind\":\"vfio-device\",\"fd\":${dfd:-?}}"
    need '"containers":[{"name":"container0","groups":1,"dma_ranges":1,"dma_bytes":2097152,"remap_pending":true}],'
    need "\"devices\":[{\"name\":\"$bdf\",\"vectors\":1}],\"dma_ranges\":1,\"dma_bytes\":2097152,\"vectors\":1,"
    # the library's whole description (keys sorted): the container, its mapping, the vector
    need "\"description\":{\"containers\":[{\"backend\":\"type1\",\"dma-bytes\":2097152,\"dma-ranges\":1,\"fd\":${cfd:-?},\"groups\":[{\"fd\":"
    need '"pending":true,"vaddr":0}],"name":"container0","remap-pending":1,"status":"unclaimed"}]'
    need "\"vectors\":[{\"index\":1,\"vector\":0,\"fd\":${efd:-?},\"status\":\"unclaimed\","
    need '"new":"/nonexistent/minivmm-new","fallback":"/bin/minivmm","seccomp":false}'
    kinds=$(printf '%s\n' "${jl%%,\"description\":*}" | grep -o '"kind":"' | wc -l)
    [ "$kinds" -eq 8 ] || bad="$bad; $kinds fds listed, not 8"
    if [ -z "$bad" ]; then
        result OK "wrapper: fallback: JSON summary $n: valid, pid $pid, 8 fds: memfd 3 (guest-ram, minivmm-state, the DMA table), vfio-container fd $cfd, vfio-group $group, vfio-device fd $dfd, eventfd fd $efd (irq:$bdf:1), other 1 (control-listen); container0: 1 DMA range, 2 MiB, re-map pending; 1 vector"
    else
        result NOTOK "wrapper: fallback: JSON summary $n:${bad#;}"
        echo "#   $jl"
    fi
done </tmp/fb.json
[ "$n" -eq 2 ] || result NOTOK "wrapper: fallback: $n JSON summaries on stdout, not 2 (one per upgrade)"

# A sanitizer runtime makes system calls of its own that no filter built for the
# library and minivmm allows (LeakSanitizer opens files at exit): an instrumented
# minivmm cannot run under the filter, so sections 6 and 7 are skipped for it.
if grep -q 'libasan' "$M" 2>/dev/null; then
    result OK "wrapper: seccomp # SKIP minivmm is built with sanitizers: their runtime's syscalls are killed by the filter"
    result OK "wrapper: seccomp control # SKIP minivmm is built with sanitizers"
else
# ---- 6. seccomp: the new image under the wrapper's filter, and an upgrade from it
audits=$(audit_count)
t0=$(now)
$M --device "$bdf" --upgrades 2 --wrapper "$W" --wrapper-arg --seccomp \
    --wrapper-arg "--seccomp-allow=$allow" >/tmp/sc.out 2>&1
rc=$?
t1=$(now)
summary=$(sed -n 's/^minivmm: summary: //p' /tmp/sc.out)
f1=$(awk '/---- upgrade 1\/2,/ { on = 1 } on && /seccomp in this image:/ { sub(/.*seccomp in this image: /, ""); print; exit }' /tmp/sc.out)
f2=$(awk '/---- upgrade 2\/2,/ { on = 1 } on && /seccomp in this image:/ { sub(/.*seccomp in this image: /, ""); print; exit }' /tmp/sc.out)
ups=$(grep -c '^minivmm: upgrade [12]/2: ok: lost 0 interrupts, DMA ok, .*, through the wrapper$' /tmp/sc.out)
if [ "$rc" -eq 0 ] && [ "$ups" -eq 2 ] && [ "$f1" = "filter mode, 1 filter(s)" ] &&
   [ "$f2" = "filter mode, 2 filter(s)" ]; then
    case $summary in
        "2/2 upgrades good, 0 interrupts lost "*"fallbacks 0") sc_ok=yes ;;
        *) sc_ok=no ;;
    esac
else
    sc_ok=no
fi
if [ "$sc_ok" = yes ]; then
    result OK "wrapper: seccomp: 2 upgrades in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, generation 2 under $f1, generation 3 (upgraded from inside the filter) under $f2; --seccomp-allow=$allow: $summary"
else
    killed=
    [ "$(audit_count)" -gt "$audits" ] && killed=" (audit: killed $(audit_last))"
    result NOTOK "wrapper: seccomp: exit $rc$killed, $ups upgrade(s) ok, filters '$f1' then '$f2': ${summary:-no summary}"
    comment /tmp/sc.out
fi

# ---- 7. the control: an ioctl outside the lists after the restore is killed
audits=$(audit_count)
{ $M --device "$bdf" --upgrades 1 --wrapper "$W" --wrapper-arg --seccomp \
    --wrapper-arg "--seccomp-allow=$allow" --forbidden-ioctl >/tmp/fi.out 2>&1; } 2>/dev/null
rc=$?
last=$(grep '^minivmm: ' /tmp/fi.out | tail -n 1)
restored=$(grep -c '^minivmm: upgrade 1/1: ok: .*, through the wrapper$' /tmp/fi.out)
audit=
[ "$(audit_count)" -gt "$audits" ] && audit=$(audit_last)
case $last in
    "minivmm: --forbidden-ioctl: seccomp filter mode, 1 filter(s); ioctl(0, TIOCGWINSZ) now"*) last_ok=yes ;;
    *) last_ok=no ;;
esac
if [ "$rc" -eq 159 ] && [ "$restored" -eq 1 ] && [ "$last_ok" = yes ] &&
   { [ -z "$audit" ] || [ "$audit" = "minivmm 16" ]; }; then
    if [ -n "$audit" ]; then audit="comm minivmm, syscall 16 (ioctl)"; else audit="no record in the kernel log"; fi
    result OK "wrapper: seccomp control: restored under the filter, then ioctl TIOCGWINSZ: killed by SIGSYS (exit $rc), nothing printed after it; audit: $audit"
else
    result NOTOK "wrapper: seccomp control: exit $rc (want 159, SIGSYS), restored $restored, audit '${audit:-none}', last line: $last"
    comment /tmp/fi.out
fi

fi

echo "1..$t"
