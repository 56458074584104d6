#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# run-guest.sh --kernel SPEC|iommufd|DIR [--device edu|nvme|e1000e|mtty]... [--timeout SECS]
#              [--log FILE] [--extra PATH]... [--verbose] -- PROGRAM [ARGS...] | --prepare
#
# Boots a QEMU q35 guest (TCG, emulated intel-iommu) with the given devices
# bound to vfio-pci and runs PROGRAM (a host path, copied into the initramfs as
# /bin/NAME with its shared libraries) in it with ARGS.
#
#   --kernel SPEC|DIR   a kernel spec for fetch-kernel.sh (6.1, 7.3, ...), iommufd
#                       or iommufd-X.Y (the kernel build-kernel.sh builds from
#                       Debian's linux-source-X.Y, default 7.3: iommufd, the vfio
#                       cdev and mtty built in), or a directory one of them made
#   --device NAME       edu, nvme, e1000e or mtty; repeatable (default: edu).
#                       mtty is no PCI device: the kernel's mtty sample driver
#                       (built by build-mtty.sh, kernels >= 6.7 for migration;
#                       spec 6.12) and mdev.ko go into the initramfs and init
#                       creates one mtty-2 mdev, UUID $MTTY_UUID below
#   --timeout SECS      QEMU is killed after SECS seconds (default 240)
#   --log FILE          console log file (default: a new /tmp/vfiocpr-guest-*.log)
#   --extra PATH        another program or file for /bin; repeatable
#   --append ARGS       more kernel command line arguments
#   --verbose           copy the console to stderr as it comes
#   --prepare           only get the kernel (fetch or build) and mtty.ko for these
#                       options, print the kernel directory and exit: no PROGRAM,
#                       no QEMU (tests/test-guest.sh --prepare, before make check)
#
# stdout: the inventory as TAP comments ("# VFIOCPR-DEV name BDF group"), then
# the program's output (expected to be TAP): the lines between VFIOCPR-BEGIN and
# VFIOCPR-END in the console log.
# Exit status: the program's exit status in the guest; 99 (with "Bail out!" on
# stdout and the reason on stderr) when the guest could not boot, could not set
# up the devices, timed out, or never reported an end. A guest that does not
# boot is a failure, never a skip.
#
# Runs as root (apt-get install of qemu-system-x86 when missing). Environment:
# VFIOCPR_GUEST_CACHE (see fetch-kernel.sh).
#
# The mtty mdev's UUID is fixed: 83b8f4f2-509f-382f-3c1e-e6bfe0fa1001.
# shellcheck disable=SC2054  # QEMU options are comma lists, not array separators
set -euo pipefail

HERE=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
T_START=$(date +%s.%N)

say() { printf 'run-guest: %s\n' "$*" >&2; }
usage() {
    sed -n '4,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}/usage: /; 2s/^usage: /       /' >&2
    exit 2
}
# fail_hard MESSAGE: the test bed itself failed
fail_hard() {
    say "FAILED: $*"
    echo "Bail out! guest test bed: $*"
    exit 99
}
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
MTTY_UUID=83b8f4f2-509f-382f-3c1e-e6bfe0fa1001
MTTY_TYPE=mtty-2

KERNEL=
KDIR_REAL=
DEVICES=()
TIMEOUT=240
LOG=
EXTRAS=()
APPEND=
VERBOSE=0
PREPARE=0
while [ $# -gt 0 ]; do
    case $1 in
        --kernel) KERNEL=${2:?}; shift 2 ;;
        --device) DEVICES+=("${2:?}"); shift 2 ;;
        --timeout) TIMEOUT=${2:?}; shift 2 ;;
        --log) LOG=${2:?}; shift 2 ;;
        --extra) EXTRAS+=("${2:?}"); shift 2 ;;
        --append) APPEND=${2:?}; shift 2 ;;
        --verbose) VERBOSE=1; shift ;;
        --prepare) PREPARE=1; shift ;;
        --) shift; break ;;
        -h|--help) usage ;;
        *) say "unknown option $1"; usage ;;
    esac
done
[ -n "$KERNEL" ] || usage
[ "$PREPARE" = 1 ] || [ $# -ge 1 ] || usage
[[ $TIMEOUT =~ ^[0-9]+$ ]] || { say "bad --timeout $TIMEOUT"; usage; }
PROGRAM=${1:-}
[ $# -eq 0 ] || shift
[ "$PREPARE" = 1 ] || [ -f "$PROGRAM" ] || { say "no such program: $PROGRAM"; exit 2; }
[ ${#DEVICES[@]} -gt 0 ] || DEVICES=(edu)
WANT_MTTY=0
for d in "${DEVICES[@]}"; do
    case $d in
        edu|nvme|e1000e) ;;
        mtty) WANT_MTTY=1 ;;
        *) say "unknown device $d (edu, nvme, e1000e, mtty)"; exit 2 ;;
    esac
done

# ------------------------------------------------------------ the guest command line
# vfiocpr.run="..." is one kernel parameter: words are single-quoted when needed;
# a double quote cannot be passed at all.
quote_word() {
    if [[ $1 =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}
RUN="/bin/${PROGRAM##*/}"
for a in "$@"; do
    case $a in
        *'"'*|*$'\n'*|*$'\r'*) say "program arguments cannot contain a double quote or a newline: $a"; exit 2 ;;
    esac
    RUN+=" $(quote_word "$a")"
done

# ------------------------------------------------------------ tools
if ! command -v qemu-system-x86_64 >/dev/null; then
    say "installing qemu-system-x86"
    out=$(mktemp)
    if ! { env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 \
               -qq -y --no-install-recommends install qemu-system-x86 ||
           { env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq update &&
             env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 \
                 -qq -y --no-install-recommends install qemu-system-x86; }; } >"$out" 2>&1 </dev/null; then
        cat "$out" >&2
        rm -f "$out"
        fail_hard "cannot install qemu-system-x86"
    fi
    rm -f "$out"
fi

WORK=$(mktemp -d /tmp/vfiocpr-guest.XXXXXX)
QEMU_PID=
cleanup() {
    if [ -n "$QEMU_PID" ]; then kill "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ kernel + initramfs
# Every guest gets KVM: QEMU's TCG -cpu max emulates SVM, so kvm_amd loads and nested
# VMs run (minivmm --kvm). Built-in ones are skipped by fetch-kernel.sh.
KVM_MODULES=(kvm kvm_amd)
t=$(date +%s.%N)
if [ -d "$KERNEL" ]; then
    KDIR=$KERNEL
elif [[ $KERNEL =~ ^iommufd(-([0-9]+\.[0-9]+))?$ ]]; then
    # built, not fetched: minutes the first time, then cached
    KDIR=$("$HERE/build-kernel.sh" ${BASH_REMATCH[2]:+"${BASH_REMATCH[2]}"}) ||
        fail_hard "cannot build the iommufd kernel ($KERNEL) with build-kernel.sh"
elif [ "$WANT_MTTY" = 1 ]; then
    KDIR=$("$HERE/fetch-kernel.sh" "$KERNEL" mdev "${KVM_MODULES[@]}") || fail_hard "cannot fetch kernel $KERNEL (with mdev)"
else
    KDIR=$("$HERE/fetch-kernel.sh" "$KERNEL" "${KVM_MODULES[@]}") || fail_hard "cannot fetch kernel $KERNEL"
fi
[ -f "$KDIR/vmlinuz" ] || fail_hard "no vmlinuz in $KDIR"
T_FETCH=$(elapsed "$t")

MDEVARG=
if [ "$WANT_MTTY" = 1 ] && grep -qx 'mtty' "$KDIR/modules.builtin" 2>/dev/null; then
    # the sample driver is in the kernel: nothing to build or load
    MDEVARG=" vfiocpr.mdev=mtty:$MTTY_TYPE:$MTTY_UUID"
elif [ "$WANT_MTTY" = 1 ]; then
    # mtty.ko from build-mtty.sh, loaded last; its parent module mdev must be in
    # the kernel directory already (fetch-kernel.sh SPEC mdev) or built in
    if ! grep -qx 'mdev.ko' "$KDIR/modules.load" && ! grep -qx 'mdev' "$KDIR/modules.builtin" 2>/dev/null; then
        fail_hard "$KDIR has no mdev module: make it with fetch-kernel.sh SPEC mdev"
    fi
    t=$(date +%s.%N)
    MTTY_KO=$("$HERE/build-mtty.sh" "$KDIR") || fail_hard "cannot build mtty.ko for $KDIR"
    T_MTTY=$(elapsed "$t")
    # a kernel directory of links: the fetched one plus mtty.ko at the end of the load order
    mkdir -p "$WORK/kernel/modules"
    for f in "$KDIR"/*; do
        [ "${f##*/}" = modules ] || [ "${f##*/}" = modules.load ] || ln -s "$f" "$WORK/kernel/${f##*/}"
    done
    for f in "$KDIR"/modules/*.ko; do ln -s "$f" "$WORK/kernel/modules/${f##*/}"; done
    ln -sf "$MTTY_KO" "$WORK/kernel/modules/mtty.ko"
    KDIR_REAL=$KDIR
    { grep -vx 'mtty.ko' "$KDIR/modules.load" || true; echo mtty.ko; } >"$WORK/kernel/modules.load"
    KDIR=$WORK/kernel
    MDEVARG=" vfiocpr.mdev=mtty:$MTTY_TYPE:$MTTY_UUID"
fi

if [ "$PREPARE" = 1 ]; then
    say "kernel ready in ${T_FETCH}s${T_MTTY:+, mtty.ko in ${T_MTTY}s}: ${KDIR_REAL:-$KDIR}"
    # $KDIR may be the link directory in $WORK: name what stays
    echo "${KDIR_REAL:-$KDIR}"
    exit 0
fi

t=$(date +%s.%N)
"$HERE/mkinitramfs.sh" "$WORK/initrd.gz" "$KDIR" "$PROGRAM" "${EXTRAS[@]}" ||
    fail_hard "cannot build the initramfs"
T_INITRD=$(elapsed "$t")

# ------------------------------------------------------------ QEMU
DEVARGS=()
for d in "${DEVICES[@]}"; do
    case $d in
        edu) DEVARGS+=(-device edu) ;;
        nvme)
            truncate -s 16M "$WORK/nvme.img"
            DEVARGS+=(-drive "file=$WORK/nvme.img,if=none,id=nv,format=raw" -device nvme,serial=x,drive=nv) ;;
        e1000e) DEVARGS+=(-device e1000e,netdev=n0 -netdev user,id=n0,restrict=on) ;;
        mtty) ;;    # an mdev made in the guest: no QEMU device
    esac
done
DEVLIST=$(printf '%s\n' "${DEVICES[@]}" | awk '!seen[$0]++' | paste -sd,)
CMDLINE="console=ttyS0 intel_iommu=on panic=-1 vfiocpr.devices=$DEVLIST$MDEVARG vfiocpr.run=\"$RUN\"${APPEND:+ $APPEND}"

if [ -z "$LOG" ]; then LOG=$(mktemp /tmp/vfiocpr-guest-XXXXXX.log); fi
: >"$LOG"
QEMU=(qemu-system-x86_64 -accel tcg -cpu max -M q35,kernel-irqchip=split -m 512 -nic none
      -device intel-iommu,intremap=on,caching-mode=on "${DEVARGS[@]}"
      -kernel "$KDIR/vmlinuz" -initrd "$WORK/initrd.gz" -append "$CMDLINE"
      -nographic -no-reboot)
say "kernel $(cat "$KDIR/abi" 2>/dev/null || echo "$KDIR"), devices $DEVLIST, timeout ${TIMEOUT}s, log $LOG"
printf '%q ' "${QEMU[@]}" >>"$LOG"
printf '\n' >>"$LOG"

t=$(date +%s.%N)
if [ "$VERBOSE" = 1 ]; then
    tail -n +2 -f "$LOG" >&2 &
    TAIL_PID=$!
fi
timeout -k 5 "$TIMEOUT" "${QEMU[@]}" </dev/null >>"$LOG" 2>&1 &
QEMU_PID=$!
QRC=0
wait "$QEMU_PID" || QRC=$?
QEMU_PID=
T_QEMU=$(elapsed "$t")
if [ "$VERBOSE" = 1 ]; then sleep 0.2; kill "$TAIL_PID" 2>/dev/null || true; wait "$TAIL_PID" 2>/dev/null || true; fi

# ------------------------------------------------------------ results
CLEAN=$WORK/console
tr -d '\r' <"$LOG" >"$CLEAN"

grep -E '^VFIOCPR-(DEV|CDEV|INFO|ERROR) ' "$CLEAN" | sed 's/^/# /' || true
awk '/^VFIOCPR-END rc=/ { exit } inside { print } /^VFIOCPR-BEGIN$/ { inside = 1 }' "$CLEAN"

END_RC=$(sed -n 's/^VFIOCPR-END rc=\([0-9][0-9]*\)$/\1/p' "$CLEAN" | head -n1)
T_INIT=$(sed -n 's/^VFIOCPR-INIT uptime=\([0-9.]*\).*/\1/p' "$CLEAN" | head -n1)
T_SETUP=$(sed -n 's/^VFIOCPR-TIME setup-done=\([0-9.]*\).*/\1/p' "$CLEAN" | head -n1)
T_END=$(sed -n 's/^VFIOCPR-TIME end=\([0-9.]*\).*/\1/p' "$CLEAN" | head -n1)
prog_time=
if [ -n "$T_SETUP" ] && [ -n "$T_END" ]; then
    prog_time=$(awk -v a="$T_SETUP" -v b="$T_END" 'BEGIN { printf "%.1f", b - a }')
fi
say "times: kernel ${T_FETCH}s,${T_MTTY:+ mtty.ko ${T_MTTY}s,} initramfs ${T_INITRD}s, qemu ${T_QEMU}s (guest: /init at ${T_INIT:-?}s, devices ready at ${T_SETUP:-?}s, program ${prog_time:-?}s), total $(elapsed "$T_START")s"

if [ -z "$END_RC" ]; then
    if [ "$QRC" -eq 124 ] || [ "$QRC" -eq 137 ]; then
        why="timed out after ${TIMEOUT}s"
    else
        why="QEMU exited with status $QRC"
    fi
    if grep -q '^VFIOCPR-BEGIN$' "$CLEAN"; then
        why="$why while the program was running (no VFIOCPR-END)"
    elif [ -n "$T_INIT" ]; then
        why="$why during the guest set-up (no VFIOCPR-END)"
    else
        why="$why before the guest reached /init"
    fi
    if ! grep -q '^VFIOCPR-BEGIN$' "$CLEAN"; then     # else it is on stdout already
        say "last 40 lines of the console log $LOG:"
        tail -n 40 "$CLEAN" | sed 's/^/  | /' >&2
    fi
    fail_hard "$why"
fi

if ! grep -q '^VFIOCPR-BEGIN$' "$CLEAN"; then
    say "guest set-up failed:"
    grep '^VFIOCPR-ERROR ' "$CLEAN" | sed 's/^/  /' >&2 || true
    echo "Bail out! guest set-up failed: $(grep '^VFIOCPR-ERROR ' "$CLEAN" | head -n1 | cut -d' ' -f2-)"
    exit 99
fi
if [ "$END_RC" -ne 0 ]; then
    say "program exited with status $END_RC; kernel messages during the run:"
    grep '^VFIOCPR-DMESG ' "$CLEAN" | cut -d' ' -f2- | tail -n 60 | sed 's/^/  | /' >&2 || true
fi
exit "$END_RC"
