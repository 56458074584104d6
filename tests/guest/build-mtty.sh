#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# build-mtty.sh KERNELDIR
#
# Builds the kernel's mtty sample driver (samples/vfio-mdev/mtty.c: an emulated
# serial card as a VFIO mdev, with migration v2 since Linux 6.7) as an
# out-of-tree module for the kernel of KERNELDIR (a directory made by
# fetch-kernel.sh) and prints the path of the cached mtty.ko.
#
# Debian does not ship the samples, so this fetches, with the private apt
# configuration of fetch-kernel.sh and into the same cache:
#     linux-headers-ABI, linux-headers-*-common, linux-kbuild-*   (the names come
#         from the Depends of linux-headers-ABI at the image's exact version)
#     linux-source-X.Y at the image's exact version                (for mtty.c)
# extracts them under the cache, writes a Kbuild (`obj-m := mtty.o`) beside
# mtty.c and runs `make -C HEADERS M=BUILDDIR modules`. The headers are built for
# the compiler of the kernel's suite (6.12@bookworm-backports: gcc-12, as on a
# bookworm host); missing build tools (make, that compiler, pahole, the
# libraries of linux-kbuild's tools) are installed with apt-get.
#
# Cache: ${VFIOCPR_GUEST_CACHE:-/var/cache/vfiocpr-guest}/mtty/ABI/ holds
# mtty.ko (debug info stripped), mtty.c, build.log and version (the Debian
# version it was built for); a later run for the same kernel prints the path at
# once without touching the network. Nothing is written outside the cache.
#
# Progress goes to stderr; stdout is only the path of mtty.ko.
set -euo pipefail

CACHE=${VFIOCPR_GUEST_CACHE:-/var/cache/vfiocpr-guest}

log() { printf 'build-mtty: %s\n' "$*" >&2; }
die() { printf 'build-mtty: error: %s\n' "$*" >&2; exit 1; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

[ $# -eq 1 ] || die "usage: build-mtty.sh KERNELDIR (a directory made by fetch-kernel.sh)"
KDIR=$1
[ -f "$KDIR/abi" ] && [ -f "$KDIR/packages" ] ||
    die "$KDIR is not a kernel directory from fetch-kernel.sh (no abi/packages)"
ABI=$(cat "$KDIR/abi")
[[ $ABI =~ ^[0-9A-Za-z.+~-]+$ ]] || die "bad kernel ABI '$ABI' in $KDIR/abi"
# the image package's version: linux-image-ABI=VERSION (or linux-binary-ABI=...)
VERSION=$(awk -F= -v abi="$ABI" '$1 == "linux-image-" abi || $1 == "linux-binary-" abi { print $2; exit }' \
          "$KDIR/packages")
[ -n "$VERSION" ] || die "cannot find the kernel package version in $KDIR/packages"
MAJMIN=$(sed -E 's/^([0-9]+\.[0-9]+).*/\1/' <<<"$ABI")

OUT=$CACHE/mtty/$ABI
if [ -f "$OUT/.complete" ] && [ "$(cat "$OUT/version" 2>/dev/null)" = "$VERSION" ] &&
   [ -f "$OUT/mtty.ko" ]; then
    echo "$OUT/mtty.ko"
    exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9     # shares fetch-kernel.sh's lock: one apt client per cache directory
if [ -f "$OUT/.complete" ] && [ "$(cat "$OUT/version" 2>/dev/null)" = "$VERSION" ] &&
   [ -f "$OUT/mtty.ko" ]; then
    echo "$OUT/mtty.ko"     # another run built it while we waited
    exit 0
fi
T0=$(date +%s.%N)

# ------------------------------------------------------------ private apt config
APTDIR=$CACHE/apt
[ -f "$APTDIR/sources.list" ] ||
    die "no $APTDIR/sources.list: run fetch-kernel.sh first (it writes the private apt configuration)"
. "$(dirname -- "${BASH_SOURCE[0]}")/apt-private.sh"
# has_version PACKAGE VERSION: the private lists know PACKAGE=VERSION
has_version() {
    apt-cache "${APT_OPTS[@]}" madison "$1" 2>/dev/null |
        awk -F'|' -v v="$2" '{ gsub(/ /, "", $2) } $2 == v { found = 1 } END { exit !found }'
}

HEADERS=linux-headers-$ABI
SOURCE=linux-source-$MAJMIN
DEBS=$CACHE/debs
mkdir -p "$DEBS"
deb_of() { compgen -G "$DEBS/${1}_${2//:/%3a}_*.deb" | head -n1; }
# deps_of DEPENDS-LINE: the -common and kbuild package names in it
deps_of() {
    tr ',' '\n' | sed -E 's/^ *//; s/ *\(.*//; s/ *\|.*//' | grep -E '^linux-(headers-.*-common|kbuild-)' || true
}

# Debs already in the cache need no apt query at all (apt-cache takes ~1.5 s a
# call with these lists).
if [ -z "$(deb_of "$HEADERS" "$VERSION")" ] || [ -z "$(deb_of "$SOURCE" "$VERSION")" ]; then
    if ! has_version "$HEADERS" "$VERSION" || ! has_version "$SOURCE" "$VERSION"; then
        log "apt-get update (private config)"
        apt_quiet apt-get "${APT_OPTS[@]}" -q update || die "apt-get update failed"
        has_version "$HEADERS" "$VERSION" || die "no $HEADERS=$VERSION in the configured suites"
        has_version "$SOURCE" "$VERSION" || die "no $SOURCE=$VERSION in the configured suites"
    fi
fi
# linux-headers-ABI depends on its -common package and on linux-kbuild-*, both
# at the same version; take their names from there rather than guessing.
if [ -n "$(deb_of "$HEADERS" "$VERSION")" ]; then
    HDR_DEPENDS=$(dpkg-deb -f "$(deb_of "$HEADERS" "$VERSION")" Depends)
else
    HDR_DEPENDS=$(apt-cache "${APT_OPTS[@]}" show "$HEADERS=$VERSION" | sed -n 's/^Depends: //p' | head -n1)
fi
mapfile -t DEPS < <(deps_of <<<"$HDR_DEPENDS")
[ ${#DEPS[@]} -eq 2 ] ||
    die "unexpected dependencies of $HEADERS=$VERSION: ${DEPS[*]:-none} (want headers-*-common and kbuild-*)"
# The compiler the kernel was built with is a dependency too (gcc-12 for
# bookworm-backports, gcc-14 for trixie): fail before the big download when
# this host cannot have it.
# (spelt gcc-12, gcc-14-for-host or linux-compiler-gcc-12-x86)
CC_PKG=$(tr ',|' '\n\n' <<<"$HDR_DEPENDS" | sed -E 's/^ *//; s/ *\(.*//' |
         sed -nE 's/^(gcc-[0-9]+)(-for-host)?$/\1/p; s/^linux-compiler-(gcc-[0-9]+)-.*/\1/p' | head -n1 || true)
CC_PKG=${CC_PKG:-gcc}
if [ "$(dpkg-query -W -f='${db:Status-Status}' "$CC_PKG" 2>/dev/null)" != installed ] &&
   ! apt-cache policy "$CC_PKG" 2>/dev/null | grep -q '^  Candidate: [^(]'; then
    die "$HEADERS needs $CC_PKG, which this host's apt sources do not offer (use a kernel built for this distribution, e.g. 6.12 = 6.12@bookworm-backports on bookworm)"
fi
PKGS=("$HEADERS" "${DEPS[@]}" "$SOURCE")
log "$ABI ($VERSION) -> ${PKGS[*]}"

# ------------------------------------------------------------ download
need=()
for p in "${PKGS[@]}"; do
    if [ -z "$(deb_of "$p" "$VERSION")" ]; then need+=("$p=$VERSION"); fi
done
if [ ${#need[@]} -gt 0 ]; then
    t=$(date +%s.%N)
    log "downloading ${need[*]}"
    dltmp=$(mktemp -d "$DEBS/.dl.XXXXXX")
    if ! (cd "$dltmp" && apt_quiet apt-get "${APT_OPTS[@]}" -q download "${need[@]}"); then
        rm -rf "$dltmp"
        die "apt-get download ${need[*]} failed"
    fi
    mv "$dltmp"/*.deb "$DEBS"/
    rmdir "$dltmp"
    log "downloaded $(for p in "${need[@]}"; do deb_of "${p%%=*}" "$VERSION"; done |
                      xargs du -ch --apparent-size | tail -n1 | cut -f1) in $(elapsed "$t") s"
fi
for p in "${PKGS[@]}"; do
    [ -n "$(deb_of "$p" "$VERSION")" ] || die "no ${p}_${VERSION}_*.deb in $DEBS after the download"
done

# ------------------------------------------------------------ mtty.c (background)
# xz-decompressing the whole source tarball takes ~10 s on one core: do it while
# the headers are unpacked and the tools installed.
mkdir -p "$OUT"
work=$(mktemp -d "$CACHE/.mtty.XXXXXX")
EXTRACT_PID=
trap 'if [ -n "$EXTRACT_PID" ]; then kill "$EXTRACT_PID" 2>/dev/null; wait "$EXTRACT_PID" 2>/dev/null; fi
      rm -rf "$work"' EXIT
src_cached=$OUT/mtty.c
if [ ! -f "$src_cached" ] || [ "$(cat "$OUT/source-version" 2>/dev/null)" != "$VERSION" ]; then
    t_src=$(date +%s.%N)
    log "extracting samples/vfio-mdev/mtty.c from $SOURCE $VERSION"
    src_deb=$(deb_of "$SOURCE" "$VERSION")
    tarball=$(dpkg-deb -c "$src_deb" | awk '{ print $NF }' | grep -E "/usr/src/$SOURCE\.tar\.(xz|gz|bz2|zst)$" |
              head -n1)
    [ -n "$tarball" ] || die "no $SOURCE.tar.* in $src_deb"
    case $tarball in
        *.xz) unz=(xz -dc) ;;
        *.gz) unz=(gzip -dc) ;;
        *.bz2) unz=(bzip2 -dc) ;;
        *.zst) unz=(zstd -qdc) ;;
    esac
    if ! command -v "${unz[0]}" >/dev/null; then
        pkg=${unz[0]}; [ "$pkg" = xz ] && pkg=xz-utils
        log "installing $pkg"
        apt_quiet env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y \
            --no-install-recommends install "$pkg" || die "cannot install $pkg"
    fi
    # stream: deb -> tarball -> the one member, nothing else lands on disk. tar
    # stops reading once it has the member (--occurrence), so the commands
    # upstream die of SIGPIPE: their complaints matter only when nothing came out.
    { dpkg-deb --fsys-tarfile "$src_deb" | tar -xO "$tarball" | "${unz[@]}" |
        tar -xO --occurrence=1 "$SOURCE/samples/vfio-mdev/mtty.c" >"$work/mtty.c"; } \
        2>"$work/extract.err" </dev/null &
    EXTRACT_PID=$!
fi

# ------------------------------------------------------------ build tools
R=$work/root
mkdir -p "$R"
for p in "$HEADERS" "${DEPS[@]}"; do
    dpkg-deb -x "$(deb_of "$p" "$VERSION")" "$R"
done
HDIR=$R/usr/src/$HEADERS
[ -f "$HDIR/Makefile" ] || die "no $HEADERS Makefile in the package"

# The compiler the kernel was built with, make, and what linux-kbuild's tools
# need at run time.
wanted=(make "$CC_PKG" binutils)
kbuild_deb=$(deb_of "${DEPS[1]}" "$VERSION")
case ${DEPS[0]} in linux-kbuild-*) kbuild_deb=$(deb_of "${DEPS[0]}" "$VERSION") ;; esac
while read -r d; do
    [ -n "$d" ] && wanted+=("$d")
done < <(dpkg-deb -f "$kbuild_deb" Depends | tr ',' '\n' | sed -E 's/^ *//; s/ *\(.*//; s/ *\|.*//')
missing=()
for p in "${wanted[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    t=$(date +%s.%N)
    log "installing ${missing[*]}"
    if ! apt_quiet env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y \
            --no-install-recommends install "${missing[@]}"; then
        apt_quiet env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q update || true
        apt_quiet env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y \
            --no-install-recommends install "${missing[@]}" || die "cannot install ${missing[*]}"
    fi
    log "installed ${missing[*]} in $(elapsed "$t") s"
fi

# The flavour's Makefile includes the -common one by its absolute /usr/src path:
# point it at the extracted copy (the scripts/tools symlinks are relative).
sed -i "s,^include /usr/src/,include $R/usr/src/," "$HDIR/Makefile"
grep -q "^include $R/" "$HDIR/Makefile" || die "unexpected $HEADERS/Makefile: $(cat "$HDIR/Makefile")"

if [ -n "$EXTRACT_PID" ]; then
    wait "$EXTRACT_PID" || true
    EXTRACT_PID=
    if [ ! -s "$work/mtty.c" ]; then
        cat "$work/extract.err" >&2
        die "no samples/vfio-mdev/mtty.c in $SOURCE $VERSION"
    fi
    mv "$work/mtty.c" "$src_cached"
    echo "$VERSION" >"$OUT/source-version"
    log "mtty.c ($(wc -l <"$src_cached") lines) in $(elapsed "$t_src") s"
fi

# ------------------------------------------------------------ build
B=$work/build
mkdir -p "$B"
cp "$src_cached" "$B/mtty.c"
echo 'obj-m := mtty.o' >"$B/Kbuild"
t=$(date +%s.%N)
if ! make -C "$HDIR" M="$B" -j"$(nproc)" modules >"$work/build.log" 2>&1 </dev/null; then
    cp "$work/build.log" "$OUT/build.log"
    tail -n 30 "$work/build.log" >&2
    die "make modules failed (log: $OUT/build.log)"
fi
[ -f "$B/mtty.ko" ] || die "the build made no mtty.ko (log: $OUT/build.log)"
log "built mtty.ko in $(elapsed "$t") s"

# Same vermagic as the kernel's own modules, or insmod refuses it in the guest.
vermagic() { tr '\0' '\n' <"$1" | sed -n 's/^vermagic=//p' | head -n1; }
ref=$(ls "$KDIR"/modules/*.ko 2>/dev/null | head -n1 || true)
if [ -n "$ref" ] && [ "$(vermagic "$B/mtty.ko")" != "$(vermagic "$ref")" ]; then
    die "mtty.ko vermagic '$(vermagic "$B/mtty.ko")' differs from the kernel's '$(vermagic "$ref")'"
fi
strip --strip-debug -o "$work/mtty.ko" "$B/mtty.ko"
mv "$work/mtty.ko" "$OUT/mtty.ko"
mv "$work/build.log" "$OUT/build.log"
echo "$VERSION" >"$OUT/version"
touch "$OUT/.complete"
log "mtty.ko for $ABI ($VERSION, $(stat -c %s "$OUT/mtty.ko") bytes, depends=$(tr '\0' '\n' <"$OUT/mtty.ko" |
    sed -n 's/^depends=//p')) in $(elapsed "$T0") s"
echo "$OUT/mtty.ko"
