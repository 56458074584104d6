#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Guest tier: boots each Debian kernel under QEMU TCG with edu, nvme and e1000e bound
# to vfio-pci and runs every scenario (tests/guest/guest-suite.sh); boots the kernel
# build-kernel.sh makes (spec "iommufd": iommufd, the vfio cdev and mtty built in)
# with the same devices plus an mtty mdev and runs the same type1 scenarios, the
# iommufd ones and the migration ones; then the 6.12 kernel with an mtty mdev for
# migration v2 on a Debian kernel (guest-mig-suite.sh). Speaks TAP.
# A guest that cannot boot, or a scenario that dies, is a failure, never a skip.
# VFIOCPR_GUEST_KERNELS (default "6.1 7.3 iommufd"), VFIOCPR_GUEST_CYCLES (default
# 100) and VFIOCPR_GUEST_MIG_KERNEL (default 6.12, empty: skip that boot) narrow it
# down by hand. The iommufd kernel is built once (minutes; .ci/run does it in a step
# of its own before make check) and cached.
#
# test-guest.sh --prepare: only fetches (and builds) every kernel, mtty.ko included,
# that the same settings would boot, so that the first, long iommufd kernel build is
# not inside make check's time (.ci/run runs this as a step of its own). Exit status
# non-zero if any kernel could not be had.
srcdir=${top_srcdir:-.}/tests/guest
builddir=${top_builddir:-.}/tests/guest
kernels=${VFIOCPR_GUEST_KERNELS:-6.1 7.3 iommufd}
cycles=${VFIOCPR_GUEST_CYCLES:-100}
mig_kernel=${VFIOCPR_GUEST_MIG_KERNEL-6.12}
# devices KERNEL: what the boot of KERNEL has (the iommufd kernel has mtty built in)
devices() {
    case $1 in
    iommufd*) echo edu nvme e1000e mtty ;;
    *) echo edu nvme e1000e ;;
    esac
}
if [ "${1:-}" = --prepare ]; then
    # run-guest.sh itself gets each kernel, so the modules and mtty.ko are the ones
    # the boot will ask for
    rc=0
    for k in $kernels ${mig_kernel:+"$mig_kernel:mtty"}; do
        devs=""
        case $k in
        *:mtty) k=${k%:mtty}; devs="--device mtty" ;;
        *) for d in $(devices "$k"); do devs="$devs --device $d"; done ;;
        esac
        start=$(date +%s)
        # shellcheck disable=SC2086
        if d=$(bash "$srcdir/run-guest.sh" --kernel "$k" $devs --prepare); then
            echo "kernel $k ($devs ): $d, $(( $(date +%s) - start )) s"
        else
            echo "test-guest: cannot get kernel $k ($devs )" >&2
            rc=1
        fi
    done
    exit $rc
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vfiocpr-guest.XXXXXX")
n=0
# boot KERNEL "SUITE [ARG...]" DEVICE... : one guest, one suite, its TAP renumbered
# into ours
boot() {
    k=$1
    suite=$2
    shift 2
    devs=""
    for d in "$@"; do devs="$devs --device $d"; done
    start=$(date +%s)
    # LD_LIBRARY_PATH (absolute): mkinitramfs's ldd must find libvfiocpr.so.0 for vfiocpr-exec
    # shellcheck disable=SC2086
    LD_LIBRARY_PATH="$(cd "${top_builddir:-.}/lib/.libs" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    bash "$srcdir/run-guest.sh" --kernel "$k" $devs --timeout 900 --log "$tmp/console-$k.log" \
        --extra "$builddir/guest-cpr" --extra "$builddir/guest-smoke" \
        --extra "$builddir/guest-irq" --extra "$builddir/guest-mig" \
        --extra "$builddir/guest-mig-smoke" --extra "$builddir/guest-iommufd-smoke" \
        --extra "${top_builddir:-.}/examples/minivmm/minivmm" \
        --extra "${top_builddir:-.}/examples/minivmm/minivmm-guest.bin" \
        --extra "${top_builddir:-.}/examples/vfiocpr-exec/vfiocpr-exec" \
        --extra "${top_srcdir:-.}/examples/minivmm/minivmm-suite.sh" \
        -- "$srcdir/${suite%% *}" "$cycles" ${suite#"${suite%% *}"} \
        >"$tmp/out-$k" 2>"$tmp/err-$k"
    rc=$?
    echo "# kernel $k: $(( $(date +%s) - start )) s, rc=$rc"
    # one TAP stream: renumbered, prefixed with the kernel; a scenario that exits
    # non-zero or reports nothing counts as a failure of its own
    awk -v k="$k" -v n="$n" -v rc="$rc" -v countfile="$tmp/n" '
        /^# scenario-end / { split($4, a, "=")
                             if (a[2] != 0 || !seen)
                                 printf "not ok %d - [%s] %s: exited %s%s\n", ++n, k, $3, a[2],
                                        seen ? "" : " without any result"
                             next }
        /^# scenario / { cur = $3; seen = 0; next }
        /^(not )?ok [0-9]+/ { good = $1 == "ok"; sub(/^(not )?ok [0-9]+( - )?/, ""); seen = 1
                              printf "%s %d - [%s] %s\n", good ? "ok" : "not ok", ++n, k, $0; next }
        /^Bail out!/ { printf "not ok %d - [%s] %s: %s\n", ++n, k, cur, $0; next }
        /^# seam-record / { next }
        /^#/ { print; next }
        END { if (rc == 99 || n == start_n)
                  printf "not ok %d - [%s] the guest did not boot or did not finish (rc %s)\n", ++n, k, rc
              print n > countfile }
    ' start_n="$n" "$tmp/out-$k"
    n=$(cat "$tmp/n")
    # what the kernel seam saw in the guest, for tests/test-seccomp-seen
    if [ -n "${VFIOCPR_SEAM_RECORD_DIR:-}" ]; then
        rec="$VFIOCPR_SEAM_RECORD_DIR/guest_$(echo "$k" | tr -c 'A-Za-z0-9\n' _)"
        mkdir -p "$VFIOCPR_SEAM_RECORD_DIR"
        rm -f "$rec".*.rec
        sed -n 's/^# seam-record //p' "$tmp/out-$k" >"$rec.0.rec"
        echo "# kernel $k: $(grep -c '^scenario ' "$rec.0.rec") seam records into $rec.0.rec"
    fi
    if [ "$rc" -ne 0 ]; then
        echo "# kernel $k: last lines of the console log:"
        tail -n 30 "$tmp/console-$k.log" 2>/dev/null | sed 's/^/#   /'
        sed 's/^/#   /' "$tmp/err-$k"
    fi
}
for k in $kernels; do
    case $k in
    iommufd*) suite="guest-suite.sh iommufd mig" ;;
    *) suite=guest-suite.sh ;;
    esac
    # shellcheck disable=SC2046
    boot "$k" "$suite" $(devices "$k")
done
# migration v2 on a real driver: the mtty sample on bookworm-backports' 6.12
case " $mig_kernel " in
"  ") ;;
*) boot "$mig_kernel" guest-mig-suite.sh mtty ;;
esac
rm -rf "$tmp"
echo "1..$n"
