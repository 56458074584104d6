#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# build-kernel.sh [SERIES]
#
# Builds the guest kernel with iommufd and the vfio cdev from Debian's
# linux-source-SERIES (default 7.3, trixie-backports) and prints the path of a
# cached kernel directory shaped like fetch-kernel.sh's: vmlinuz, modules/ (empty:
# everything is built in), modules.load (empty), modules.builtin (the wanted
# modules, all built in), config, packages, abi.
#
# Debian's own kernels have CONFIG_IOMMUFD unset, so the iommufd backend needs a
# kernel of our own. Recipe: `make tinyconfig`, then every option of
# iommufd.config (beside this script) enabled with scripts/config, `make
# olddefconfig`, and every one of them checked =y in the resulting .config (an
# option silently dropped for a missing dependency is the usual failure: it is an
# error here, not a guest that fails later), then `make bzImage`. About 6 minutes
# on 2 cores, once: the result is cached by (source version, fragment hash,
# compiler), and a cached kernel is used without touching the network.
#
# The package comes through the private apt configuration of fetch-kernel.sh
# (written by it; this script runs `fetch-kernel.sh SERIES` first when it is
# missing). Build tools (bc flex bison libelf-dev libssl-dev make gcc) are
# installed with apt-get when missing.
#
# Environment: VFIOCPR_GUEST_CACHE (default /var/cache/vfiocpr-guest),
# VFIOCPR_GUEST_REFRESH=1 (re-resolve the source version), JOBS (make -j,
# default nproc).
#
# Progress goes to stderr; stdout is only the directory path.
set -euo pipefail

HERE=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
CACHE=${VFIOCPR_GUEST_CACHE:-/var/cache/vfiocpr-guest}
SERIES=${1:-7.3}
FRAGMENT=$HERE/iommufd.config
JOBS=${JOBS:-$(nproc)}

log() { printf 'build-kernel: %s\n' "$*" >&2; }
die() { printf 'build-kernel: error: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

[[ $SERIES =~ ^[0-9]+\.[0-9]+$ ]] || die "usage: build-kernel.sh [SERIES] (e.g. 7.3)"
[ -f "$FRAGMENT" ] || die "no $FRAGMENT"
mapfile -t OPTIONS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$FRAGMENT" | grep -v '^$')
[ ${#OPTIONS[@]} -gt 0 ] || die "$FRAGMENT lists no options"
# the key: what the fragment asks for and which compiler builds it
KEY=$( { printf '%s\n' "${OPTIONS[@]}"; gcc -dumpfullversion 2>/dev/null || echo nogcc; } |
       sha256sum | cut -c1-12)
SPECLINK=$CACHE/spec/iommufd-$SERIES

if [ "${VFIOCPR_GUEST_REFRESH:-0}" != 1 ] && [ -e "$SPECLINK/.complete" ] &&
   [ "$(cat "$SPECLINK/key" 2>/dev/null)" = "$KEY" ]; then
    cd -P "$SPECLINK" && pwd
    exit 0
fi

APTDIR=$CACHE/apt
if [ ! -f "$APTDIR/sources.list" ]; then
    log "no private apt configuration yet: fetch-kernel.sh $SERIES writes it"
    "$HERE/fetch-kernel.sh" "$SERIES" >/dev/null || die "fetch-kernel.sh $SERIES failed"
fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9     # one apt client per cache directory (shared with fetch-kernel.sh)
T0=$(date +%s.%N)

. "$HERE/apt-private.sh"

SOURCE=linux-source-$SERIES
DEBS=$CACHE/debs
mkdir -p "$DEBS"
# newest version the private lists offer
newest() {
    apt-cache "${APT_OPTS[@]}" madison "$SOURCE" 2>/dev/null |
        awk -F'|' '{ gsub(/ /, "", $2); print $2 }' |
        while read -r v; do echo "$v"; done | sort -V | tail -n1 || true
}
VERSION=
if [ "${VFIOCPR_GUEST_REFRESH:-0}" != 1 ]; then
    # a source deb already downloaded needs no apt query
    deb=$(compgen -G "$DEBS/${SOURCE}_*.deb" | sort -V | tail -n1 || true)
    if [ -n "$deb" ]; then VERSION=$(dpkg-deb -f "$deb" Version); fi
fi
if [ -z "$VERSION" ]; then
    VERSION=$(newest)
    if [ -z "$VERSION" ]; then
        log "apt-get update (private config)"
        apt_quiet apt-get "${APT_OPTS[@]}" -q update || die "apt-get update failed"
        VERSION=$(newest)
    fi
    [ -n "$VERSION" ] || die "no $SOURCE in the configured suites (trixie-backports has linux-source-7.3)"
fi
deb_of() { compgen -G "$DEBS/${SOURCE}_${VERSION//:/%3a}_*.deb" | head -n1; }
KDIR=$CACHE/kernels/iommufd-$VERSION-$KEY
if [ -e "$KDIR/.complete" ]; then
    mkdir -p "$CACHE/spec"
    ln -sfn "$KDIR" "$SPECLINK"
    echo "$KDIR"
    exit 0
fi
log "$SOURCE $VERSION, fragment ${FRAGMENT##*/} (${#OPTIONS[@]} options), key $KEY"

if [ -z "$(deb_of)" ]; then
    t=$(date +%s.%N)
    dltmp=$(mktemp -d "$DEBS/.dl.XXXXXX")
    if ! (cd "$dltmp" && apt_quiet apt-get "${APT_OPTS[@]}" -q download "$SOURCE=$VERSION"); then
        rm -rf "$dltmp"
        die "apt-get download $SOURCE=$VERSION failed"
    fi
    mv "$dltmp"/*.deb "$DEBS"/
    rmdir "$dltmp"
    log "downloaded $(du -h --apparent-size "$(deb_of)" | cut -f1) in $(elapsed "$t") s"
fi

# ------------------------------------------------------------ build tools
wanted=(make gcc bc flex bison libelf-dev libssl-dev xz-utils cpio)
missing=()
for p in "${wanted[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    if ! apt_quiet env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y \
            --no-install-recommends install "${missing[@]}"; then
        apt_quiet env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q update || true
        apt_quiet env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y \
            --no-install-recommends install "${missing[@]}" || die "cannot install ${missing[*]}"
    fi
fi

# ------------------------------------------------------------ source
work=$(mktemp -d "$CACHE/.kbuild.XXXXXX")
trap 'rm -rf "$work"' EXIT
t=$(date +%s.%N)
tarball=$(dpkg-deb -c "$(deb_of)" | awk '{ print $NF }' |
          grep -E "/usr/src/$SOURCE\.tar\.(xz|gz|bz2|zst)$" | head -n1)
[ -n "$tarball" ] || die "no $SOURCE.tar.* in $(deb_of)"
case $tarball in
    *.xz) unz=(xz -dc) ;;
    *.gz) unz=(gzip -dc) ;;
    *.bz2) unz=(bzip2 -dc) ;;
    *.zst) unz=(zstd -qdc) ;;
esac
# deb -> tarball -> tree, streamed; of Documentation only the Kconfig files are needed
dpkg-deb --fsys-tarfile "$(deb_of)" | tar -xO "$tarball" | "${unz[@]}" |
    tar -x -C "$work" --wildcards --exclude="$SOURCE/Documentation/*.rst" \
        --exclude="$SOURCE/Documentation/*.txt" --exclude="$SOURCE/Documentation/*.yaml" ||
    die "cannot unpack $tarball"
S=$work/$SOURCE
[ -f "$S/Makefile" ] || die "no $SOURCE/Makefile in $tarball"
log "unpacked the source in $(elapsed "$t") s"

# ------------------------------------------------------------ configure
t=$(date +%s.%N)
mk() { make -C "$S" -s LOCALVERSION=-vfiocpr "$@"; }
mk tinyconfig >"$work/config.log" 2>&1 || { cat "$work/config.log" >&2; die "make tinyconfig failed"; }
args=()
for o in "${OPTIONS[@]}"; do args+=(--enable "$o"); done
# a choice: tinyconfig picks XZ, the initramfs and our check want gzip
"$S/scripts/config" --file "$S/.config" "${args[@]}" --disable KERNEL_XZ --disable MODULES
mk olddefconfig >>"$work/config.log" 2>&1 || { cat "$work/config.log" >&2; die "make olddefconfig failed"; }
dropped=()
for o in "${OPTIONS[@]}"; do
    grep -qx "CONFIG_$o=y" "$S/.config" || dropped+=("$o")
done
[ ${#dropped[@]} -eq 0 ] ||
    die "options not =y after olddefconfig (a dependency is missing from ${FRAGMENT##*/}): ${dropped[*]}"
grep -q '^CONFIG_IOMMUFD_VFIO_CONTAINER=y' "$S/.config" &&
    die "CONFIG_IOMMUFD_VFIO_CONTAINER=y: the legacy type1 container would be emulated"
log "configured in $(elapsed "$t") s"

# ------------------------------------------------------------ build
t=$(date +%s.%N)
if ! mk -j"$JOBS" bzImage >"$work/build.log" 2>&1 </dev/null; then
    tail -n 40 "$work/build.log" >&2
    die "make bzImage failed"
fi
RELEASE=$(mk kernelrelease)
log "built $RELEASE in $(elapsed "$t") s"

out=$work/out
mkdir -p "$out/modules"
cp "$S/arch/x86/boot/bzImage" "$out/vmlinuz"
cp "$S/.config" "$out/config"
: >"$out/modules.load"
# what fetch-kernel.sh would have loaded, and mdev for --device mtty
printf '%s\n' irqbypass vfio vfio_iommu_type1 vfio_pci_core vfio_pci mdev mtty iommufd kvm \
    kvm_amd >"$out/modules.builtin"
echo "$SOURCE=$VERSION" >"$out/packages"
echo "$RELEASE" >"$out/abi"
echo "$KEY" >"$out/key"
touch "$out/.complete"
mkdir -p "$CACHE/kernels" "$CACHE/spec"
rm -rf "$KDIR"
mv "$out" "$KDIR"
ln -sfn "$KDIR" "$SPECLINK"
log "kernel $RELEASE in $KDIR, $(elapsed "$T0") s in all"
echo "$KDIR"
