#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs inside the guest (busybox sh) for make soak (tests/guest/soak.sh): first the
# soak's negative controls, 3 upgrades each, each of which must be caught in its own
# check; then `guest-cpr soak total=CYCLES`. TAP, framed per part as guest-suite.sh
# does.
#
#   guest-soak.sh CYCLES [type1|iommufd]
cycles=${1:-1000}
backend=${2:-type1}
# control NEGATIVE WANT: the soak with one check broken on purpose must fail, and
# fail in that check
control() {
    echo "# scenario soak-$1"
    /bin/guest-cpr --backend="$backend" soak total=3 negative="$1" >/tmp/soak.out 2>&1
    rc=$?
    if [ "$rc" -ne 0 ] && grep -q "^not ok .*soak: upgrade [0-9]*/3: .*$2" /tmp/soak.out; then
        echo "ok 1 - soak negative=$1: caught (exit $rc): $(grep -m1 '^not ok' /tmp/soak.out | sed 's/^not ok [0-9]* - //')"
    else
        echo "not ok 1 - soak negative=$1: not caught (exit $rc, want a failure naming '$2')"
    fi
    sed 's/^/# /' /tmp/soak.out
    echo "1..1"
    echo "# scenario-end soak-$1 rc=0"
}
control fd-leak "open fds"
control intx-no-unmask "INTx counted 0"
control extra-msix "MSI-X counted 2"
control dma-skip "the previous image's data did not arrive"
control nvme-reset "nvme reset: CC"
echo "# scenario soak"
/bin/guest-cpr --backend="$backend" soak total="$cycles" 2>&1 |
    sed '/^\(ok\|not ok\|Bail out!\|1\.\.\|#\)/!s/^/# /'
echo "# scenario-end soak rc=0"
exit 0
