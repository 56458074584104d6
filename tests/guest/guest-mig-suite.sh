#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs inside the 6.12 guest with an mtty mdev (busybox sh): the raw migration smoke
# test, then the library scenario; framed like guest-suite.sh.
run() {
    name=$1
    shift
    echo "# scenario $name"
    "$@" >/tmp/scenario.out 2>&1
    rc=$?
    sed '/^\(ok\|not ok\|Bail out!\|1\.\.\|#\)/!s/^/# /' /tmp/scenario.out
    echo "# scenario-end $name rc=$rc"
}
run mig-smoke /bin/guest-mig-smoke
run mig /bin/guest-mig
exit 0
