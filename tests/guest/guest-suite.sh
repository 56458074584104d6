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
         exec-window exec-window-negative nvme-busy; do
    run "$s" /bin/guest-cpr "$s"
done
for s in msix-count msix-negative; do
    run "$s" /bin/guest-irq "$s"
done
run minivmm /bin/minivmm-suite.sh edu 20
run cycles /bin/guest-cpr cycles "$cycles"
if [ "$iommufd" = 1 ]; then
    run iommufd-smoke /bin/guest-iommufd-smoke
    # the same scenario code on the other backend, plus what only iommufd has
    for s in edu-msi edu-intx edu-negative rollback nvme nvme-negative two-ioas exec-window \
             exec-window-negative nvme-busy pin uva-refused; do
        run "iommufd-$s" /bin/guest-cpr --backend=iommufd "$s"
    done
    for s in msix-count msix-negative; do
        run "iommufd-$s" /bin/guest-irq --backend=iommufd "$s"
    done
    run iommufd-cycles /bin/guest-cpr --backend=iommufd cycles "$cycles"
fi
if [ "$mig" = 1 ]; then
    run mig-smoke /bin/guest-mig-smoke
    run mig /bin/guest-mig
fi
exit 0
