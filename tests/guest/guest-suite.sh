#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs inside the guest (busybox sh): every type1 scenario of guest-cpr and the
# e1000e MSI-X scenarios of guest-irq, one process each, in one boot. Each
# scenario's TAP is framed by "# scenario NAME" and "# scenario-end NAME rc=N" so
# the host can renumber it and notice a scenario that died without a plan. stderr
# (sanitizer reports, GLib warnings) is kept, as TAP comments, so a failure
# explains itself in the host's log.
#
#   guest-suite.sh [CYCLES [iommufd] [mig]]
# iommufd: also the iommufd scenarios (the raw smoke test, then guest-cpr's
# scenarios on the iommufd backend), for the kernel build-kernel.sh makes; the
# type1 ones run there too since that kernel keeps the legacy container.
# mig: also the mtty migration scenarios of guest-mig-suite.sh (mtty built in).
# A feature asked for that the kernel lacks fails in its scenarios, never skips.
cycles=${1:-100}
shift
iommufd=0
mig=0
for f in "$@"; do
    case $f in
        iommufd) iommufd=1 ;;
        mig) mig=1 ;;
        *) echo "Bail out! guest-suite.sh: unknown feature '$f' (iommufd, mig)"; exit 1 ;;
    esac
done
# minivmm on the iommufd backend: upgrades in place, then through vfiocpr-exec under
# its seccomp filter (the library's rules with the iommufd and cdev ioctls), as
# minivmm-suite.sh does for type1; an ASan build cannot run under a filter
# shellcheck disable=SC2317  # called through run()
minivmm_iommufd() {
    # every prepared state a handover uses is compared with a fresh encoding
    VFIOCPR_VERIFY_PREPARED=1
    export VFIOCPR_VERIFY_PREPARED
    bdf=
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ] && bdf=${d##*/}
    done
    /bin/minivmm --device "$bdf" --backend iommufd --upgrades 5 >/tmp/mi.out 2>&1
    rc=$?
    sum=$(sed -n 's/^minivmm: summary: //p' /tmp/mi.out)
    case "$rc $sum" in
        "0 5/5 upgrades good, 0 interrupts lost "*) echo "ok 1 - minivmm --backend iommufd: $sum" ;;
        *) echo "not ok 1 - minivmm --backend iommufd: exit $rc: ${sum:-no summary}"
           sed 's/^/# /' /tmp/mi.out ;;
    esac
    # a KVM VM whose guest drives the device, its irqfds on the cdev's eventfds
    /bin/minivmm --device "$bdf" --backend iommufd --kvm --upgrades 3 >/tmp/mi.out 2>&1
    rc=$?
    sum=$(sed -n 's/^minivmm: summary: //p' /tmp/mi.out)
    case "$rc $sum" in
        "0 3/3 upgrades good, "*"the guest's DMA: "*" 0 bad"*) echo "ok 2 - minivmm --backend iommufd --kvm: $sum" ;;
        *) echo "not ok 2 - minivmm --backend iommufd --kvm: exit $rc: ${sum:-no summary}"
           sed 's/^/# /' /tmp/mi.out ;;
    esac
    # its control: irqfds on the wrong GSI must be caught by the guest's counts here too
    /bin/minivmm --device "$bdf" --backend iommufd --kvm --upgrades 1 --negative wrong-gsi \
        >/tmp/mi.out 2>&1
    rc=$?
    line=$(sed -n 's/^minivmm: upgrade 1\/1: //p' /tmp/mi.out)
    case $line in
        FAILED:*) echo "ok 3 - its control, --negative wrong-gsi: caught (exit $rc): ${line#FAILED: }" ;;
        *) echo "not ok 3 - its control, --negative wrong-gsi: not caught (exit $rc): ${line:-no result}"
           sed 's/^/# /' /tmp/mi.out ;;
    esac
    if grep -q libasan /bin/minivmm; then
        echo "ok 4 - minivmm --backend iommufd under vfiocpr-exec --seccomp # SKIP sanitizer build"
        echo "ok 5 - its control # SKIP sanitizer build"
    else
        /bin/minivmm --device "$bdf" --backend iommufd --upgrades 2 --wrapper /bin/vfiocpr-exec \
            --wrapper-arg --seccomp \
            --wrapper-arg --seccomp-allow=signalfd4,timerfd_create,timerfd_settime,prctl,seccomp \
            >/tmp/mi.out 2>&1
        rc=$?
        sum=$(sed -n 's/^minivmm: summary: //p' /tmp/mi.out)
        ups=$(grep -c '^minivmm: upgrade [12]/2: ok: lost 0 interrupts, DMA ok, .*, through the wrapper$' /tmp/mi.out)
        case "$rc $ups $sum" in
            "0 2 2/2 upgrades good, 0 interrupts lost "*"fallbacks 0")
                echo "ok 4 - minivmm --backend iommufd under vfiocpr-exec --seccomp: $sum" ;;
            *) echo "not ok 4 - minivmm --backend iommufd under vfiocpr-exec --seccomp: exit $rc, $ups upgrade(s) ok: ${sum:-no summary}"
               sed 's/^/# /' /tmp/mi.out ;;
        esac
        # the control: the filter is really there after an iommufd restore
        { /bin/minivmm --device "$bdf" --backend iommufd --upgrades 1 --wrapper /bin/vfiocpr-exec \
            --wrapper-arg --seccomp \
            --wrapper-arg --seccomp-allow=signalfd4,timerfd_create,timerfd_settime,prctl,seccomp \
            --forbidden-ioctl >/tmp/mi.out 2>&1; } 2>/dev/null
        rc=$?
        ups=$(grep -c '^minivmm: upgrade 1/1: ok: .*, through the wrapper$' /tmp/mi.out)
        if [ "$rc" -eq 159 ] && [ "$ups" -eq 1 ]; then
            echo "ok 5 - its control: restored under the filter, then ioctl TIOCGWINSZ: killed by SIGSYS (exit $rc)"
        else
            echo "not ok 5 - its control: exit $rc (want 159, SIGSYS), restored $ups"
            sed 's/^/# /' /tmp/mi.out
        fi
    fi
    echo "1..5"
}
# guest-cpr, guest-irq and guest-mig record what their kernel seam sees
# (tests/seam-record.c); printed at the end, each distinct record once, for the
# host's tests/test-seccomp-seen
VFIOCPR_SEAM_RECORD_DIR=/tmp/seam-records
# one boot, one fresh directory: no program may clear another scenario's records
VFIOCPR_SEAM_RECORD_OWNER=guest-suite
export VFIOCPR_SEAM_RECORD_DIR VFIOCPR_SEAM_RECORD_OWNER
run() {
    name=$1
    shift
    echo "# scenario $name"
    "$@" >/tmp/scenario.out 2>&1
    rc=$?
    sed '/^\(ok\|not ok\|Bail out!\|1\.\.\|#\)/!s/^/# /' /tmp/scenario.out
    echo "# scenario-end $name rc=$rc"
}
run smoke /bin/guest-smoke
for s in edu-msi edu-intx edu-negative rollback group-busy nvme nvme-negative two-ioas \
         swap-refused exec-window exec-window-negative nvme-busy memlock; do
    run "$s" /bin/guest-cpr "$s"
done
for s in msix-count msix-negative; do
    run "$s" /bin/guest-irq "$s"
done
# transfer: separately started processes over a UNIX socket, the old one the fallback
run transfer /bin/guest-cpr transfer device=edu count=10
run transfer-nvme /bin/guest-cpr transfer device=nvme count=10
run transfer-faults /bin/guest-cpr transfer-faults device=edu
run transfer-faults-nvme /bin/guest-cpr transfer-faults device=nvme
run minivmm /bin/minivmm-suite.sh edu 20
run cycles /bin/guest-cpr cycles "$cycles"
if [ "$iommufd" = 1 ]; then
    run iommufd-smoke /bin/guest-iommufd-smoke
    # the same scenario code on the other backend, plus what only iommufd has
    for s in edu-msi edu-intx edu-negative rollback nvme nvme-negative two-ioas swap-refused exec-window \
             exec-window-negative nvme-busy pin uva-refused memlock; do
        run "iommufd-$s" /bin/guest-cpr --backend=iommufd "$s"
    done
    for s in msix-count msix-negative; do
        run "iommufd-$s" /bin/guest-irq --backend=iommufd "$s"
    done
    for s in transfer transfer-faults; do
        run "iommufd-$s" /bin/guest-cpr --backend=iommufd "$s" device=edu count=10
        run "iommufd-$s-nvme" /bin/guest-cpr --backend=iommufd "$s" device=nvme count=10
    done
    run iommufd-minivmm minivmm_iommufd
    run iommufd-cycles /bin/guest-cpr --backend=iommufd cycles "$cycles"
fi
if [ "$mig" = 1 ]; then
    run mig-smoke /bin/guest-mig-smoke
    run mig /bin/guest-mig
fi
for f in "$VFIOCPR_SEAM_RECORD_DIR"/*.rec; do
    [ -f "$f" ] && cat "$f"
done | awk '{ b = b $0 "\n" } /^end$/ { if (!seen[b]++) printf "%s", b; b = "" }' |
    sed 's/^/# seam-record /'
exit 0
