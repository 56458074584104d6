#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs inside the guest (busybox sh): every type1 scenario of guest-cpr, one process
# each, in one boot. Each scenario's TAP is framed by "# scenario NAME" and
# "# scenario-end NAME rc=N" so the host can renumber it and notice a scenario that
# died without a plan.
cycles=${1:-100}
run() {
    echo "# scenario $1"
    /bin/guest-cpr "$@"
    echo "# scenario-end $1 rc=$?"
}
echo "# scenario smoke"
/bin/guest-smoke
echo "# scenario-end smoke rc=$?"
run edu-msi
run edu-intx
run edu-negative
run rollback
run group-busy
run nvme
run nvme-negative
run cycles "$cycles"
exit 0
