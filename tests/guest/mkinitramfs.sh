#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# mkinitramfs.sh OUT KERNELDIR PROGRAM...
#
# Builds the guest initramfs OUT (gzip'd newc cpio) from:
#   - busybox-static with a symlink per applet (installed with apt-get if missing);
#   - ./init (the guest /init beside this script);
#   - KERNELDIR/modules/*.ko, modules.load and modules.builtin (from
#     fetch-kernel.sh or build-kernel.sh, whose kernel has no modules at all) into
#     /lib/modules/vfiocpr/, with the VFIO/iommufd lines of KERNELDIR/config as
#     /lib/modules/vfiocpr/config (init checks the devices those options promise);
#   - each PROGRAM into /bin/ under its base name, with every shared library ldd
#     lists for it (and the dynamic loader) at the same path as on the host.
#     Statically linked programs and scripts are copied as they are.
set -euo pipefail

HERE=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

die() { printf 'mkinitramfs: error: %s\n' "$*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: mkinitramfs.sh OUT KERNELDIR PROGRAM..."
OUT=$1
KDIR=$2
shift 2
[ -f "$KDIR/modules.load" ] || die "$KDIR is not a kernel directory from fetch-kernel.sh (no modules.load)"

apt_install() {     # apt_install PACKAGE...: quiet unless it fails
    local out rc=0
    out=$(mktemp)
    env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 \
        -qq -y --no-install-recommends install "$@" >"$out" 2>&1 </dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then    # maybe the package lists were never fetched
        rc=0
        { env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq update &&
          env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 \
              -qq -y --no-install-recommends install "$@"; } >>"$out" 2>&1 </dev/null || rc=$?
    fi
    if [ "$rc" -ne 0 ]; then cat "$out" >&2; fi
    rm -f "$out"
    return "$rc"
}

if [ "$(dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null)" != installed ]; then
    echo "mkinitramfs: installing busybox-static" >&2
    apt_install busybox-static || die "cannot install busybox-static"
fi
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "no $BUSYBOX"

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
S=$STAGE
mkdir -p "$S"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,etc,root,lib/modules/vfiocpr}

cp "$BUSYBOX" "$S/bin/busybox"
while read -r applet; do
    [ -n "$applet" ] && [ "$applet" != bin/busybox ] || continue
    mkdir -p "$S/$(dirname "$applet")"
    ln -sf /bin/busybox "$S/$applet"
done < <("$BUSYBOX" --list-full)

install -m 0755 "$HERE/init" "$S/init"
# a kernel with everything built in has no .ko: an empty glob is not an error
for ko in "$KDIR"/modules/*.ko; do
    if [ -e "$ko" ]; then cp "$ko" "$S/lib/modules/vfiocpr/"; fi
done
cp "$KDIR/modules.load" "$S/lib/modules/vfiocpr/"
if [ -f "$KDIR/modules.builtin" ]; then cp "$KDIR/modules.builtin" "$S/lib/modules/vfiocpr/"; fi
if [ -f "$KDIR/config" ]; then
    grep -E '^CONFIG_(IOMMUFD|IOMMUFD_VFIO_CONTAINER|VFIO_DEVICE_CDEV|VFIO_GROUP|VFIO_CONTAINER)=' \
        "$KDIR/config" >"$S/lib/modules/vfiocpr/config" || true
fi

# copy_libs PROGRAM: the shared libraries of PROGRAM, at their host paths; a library
# from outside the system directories (a build tree's lib/.libs) goes to /usr/lib,
# where the loader finds it with no environment, and never under /tmp, which init
# mounts over
copy_libs() {
    local out lib dest
    if ! out=$(LC_ALL=C ldd "$1" 2>&1); then
        case $out in
            *"not a dynamic executable"*|*"statically linked"*) return 0 ;;
            *) die "ldd $1: $out" ;;
        esac
    fi
    case $out in *"statically linked"*) return 0 ;; esac
    if grep -q 'not found' <<<"$out"; then die "ldd $1: missing libraries: $out"; fi
    while read -r lib; do
        [ -n "$lib" ] || continue
        dest=$lib
        case $lib in
            /lib/*|/lib64/*|/usr/lib/*|/usr/lib64/*) ;;
            *) dest=/usr/lib/${lib##*/} ;;
        esac
        [ -e "$S$dest" ] && continue
        mkdir -p "$S$(dirname "$dest")"
        cp -L "$lib" "$S$dest"
    done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3; next }
                  $1 ~ /^\// { print $1 }' <<<"$out")
}

for prog in "$@"; do
    [ -f "$prog" ] || die "no such program: $prog"
    # a libtool wrapper script: take the real binary from .libs/
    if ! head -c 4 "$prog" | grep -q 'ELF' &&
       grep -q 'temporary wrapper script for' "$prog" 2>/dev/null &&
       [ -f "$(dirname "$prog")/.libs/${prog##*/}" ]; then
        prog=$(dirname "$prog")/.libs/${prog##*/}
    fi
    # may replace a busybox applet: remove the symlink, never write through it
    rm -f "$S/bin/${prog##*/}"
    cp -L "$prog" "$S/bin/${prog##*/}"
    chmod 0755 "$S/bin/${prog##*/}"
    if head -c 4 "$prog" | grep -q 'ELF'; then copy_libs "$prog"; fi
done

# Device nodes for the kernel's initial console (init also remounts /dev).
if [ "$(id -u)" -eq 0 ]; then
    mknod -m 600 "$S/dev/console" c 5 1
    mknod -m 666 "$S/dev/null" c 1 3
fi

mkdir -p "$(dirname "$OUT")"
(cd "$S" && find . -mindepth 1 | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) |
    gzip -1 >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
