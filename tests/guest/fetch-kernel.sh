#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# fetch-kernel.sh SPEC [EXTRA-MODULE...]
#
# Fetches a Debian kernel for the guest test bed and prints the path of a cached
# directory holding:
#     vmlinuz          the kernel image
#     modules/*.ko     the VFIO modules and their dependencies, decompressed
#     modules.load     module file names, one a line, in load order
#     modules.builtin  wanted modules that this kernel has built in (one a line)
#     config           the kernel's .config (when the packages ship it)
#     packages         the Debian packages (name=version) it came from
#     abi              the kernel release, e.g. 6.1.0-56-amd64
#
# SPEC is a kernel version prefix, optionally with a suite:
#     6.1                      newest linux-image-amd64 6.1.* (bookworm[-security])
#     7.3                      newest linux-image-amd64 7.3.* (trixie-backports)
#     6.12                     same as 6.12@bookworm-backports (trixie has 6.12 too,
#                              but only bookworm-backports' headers build with the
#                              host's gcc-12: see build-mtty.sh)
#     6.12@bookworm-backports  only versions from that suite
# The package names carry the kernel ABI and change when Debian updates a suite,
# so they are resolved at run time from the metapackage linux-image-amd64.
#
# Modules: irqbypass vfio vfio_iommu_type1 vfio_virqfd vfio-pci-core vfio-pci,
# then EXTRA-MODULEs, each with its dependencies (the `depends=` field of the
# module's .modinfo). Modules the kernel has built in are skipped (listed in
# modules.builtin); vfio_virqfd is optional (on newer kernels it is part of
# vfio.ko).
#
# apt runs under a private configuration: the machine's configured Debian mirrors
# (from /etc/apt/sources.list and /etc/apt/sources.list.d/) plus the suites
# bookworm-backports, trixie and trixie-backports; its lists and cache live in the
# cache directory, the system's apt state is not touched.
#
# Environment:
#     VFIOCPR_GUEST_CACHE    cache directory (default /var/cache/vfiocpr-guest)
#     VFIOCPR_GUEST_REFRESH  1: re-resolve SPEC against fresh package lists even
#                            when a kernel for it is cached
#     VFIOCPR_GUEST_MIRROR   Debian mirror URI to use instead of the configured one
#
# Progress goes to stderr; stdout is only the directory path.
set -euo pipefail

CACHE=${VFIOCPR_GUEST_CACHE:-/var/cache/vfiocpr-guest}
REQUIRED_MODULES=(irqbypass vfio vfio_iommu_type1 vfio-pci-core vfio-pci)
OPTIONAL_MODULES=(vfio_virqfd)
EXTRA_SUITES=(bookworm-backports trixie trixie-backports)

log() { printf 'fetch-kernel: %s\n' "$*" >&2; }
die() { printf 'fetch-kernel: error: %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: fetch-kernel.sh SPEC[@SUITE] [EXTRA-MODULE...]"
SPEC=$1
shift
EXTRA_MODULES=("$@")
case $SPEC in
    *@*) PREFIX=${SPEC%%@*}; SUITE=${SPEC#*@} ;;
    *) PREFIX=$SPEC; SUITE= ;;
esac
# Specs with a default suite (the cache link keeps the name as given).
if [ -z "$SUITE" ]; then
    case $PREFIX in
        6.12) SUITE=bookworm-backports ;;
    esac
fi
[[ $PREFIX =~ ^[0-9]+(\.[0-9]+)*$ ]] || die "bad kernel spec '$SPEC' (want e.g. 6.1, 7.3, 6.12@bookworm-backports)"
[[ $SUITE =~ ^[a-z0-9.-]*$ ]] || die "bad suite in '$SPEC'"
for m in "${EXTRA_MODULES[@]}"; do
    [[ $m =~ ^[A-Za-z0-9_-]+$ ]] || die "bad module name '$m'"
done

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9     # one fetch at a time per cache directory

# Name of the cached kernel directory for this module set.
modset_suffix() {
    local s=
    if [ ${#EXTRA_MODULES[@]} -gt 0 ]; then
        s=+$(printf '%s\n' "${EXTRA_MODULES[@]}" | tr - _ | LC_ALL=C sort -u | paste -sd+)
    fi
    printf '%s' "$s"
}
SPECLINK="$CACHE/spec/${SPEC//\//_}$(modset_suffix)"

if [ "${VFIOCPR_GUEST_REFRESH:-0}" != 1 ] && [ -e "$SPECLINK/.complete" ]; then
    cd -P "$SPECLINK" && pwd
    exit 0
fi

# ------------------------------------------------------------ private apt config
APTDIR=$CACHE/apt
mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$APTDIR/parts" \
         "$APTDIR/prefs.d"

# Prints "URI SUITE SIGNED-BY" for each configured Debian suite (deb822 and
# one-line formats; disabled entries and non-Debian suites are skipped).
configured_sources() {
    local f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk '
            /^[ \t]*deb[ \t]/ {
                sb = "-"; i = 2
                if ($2 ~ /^\[/) {
                    while (i <= NF) {
                        if ($i ~ /signed-by=/) { sb = $i; sub(/.*signed-by=/, "", sb); sub(/\]$/, "", sb) }
                        if ($i ~ /\]$/) { i++; break }
                        i++
                    }
                }
                print $i, $(i + 1), sb
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush(   n, m, u, s, i, j) {
                if (types ~ /(^| )deb( |$)/ && enabled != "no") {
                    n = split(uris, u, " "); m = split(suites, s, " ")
                    for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print u[i], s[j], (sb == "" ? "-" : sb)
                }
                types = uris = suites = sb = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[^ \t]/ {
                key = tolower($1); sub(/:.*/, "", key); val = $0; sub(/^[^:]*:[ \t]*/, "", val)
                if (key == "types") types = val
                else if (key == "uris") uris = val
                else if (key == "suites") suites = val
                else if (key == "enabled") enabled = tolower(val)
                else if (key == "signed-by") { sb = (val ~ /^\//) ? val : "" }
            }
            END { flush() }' "$f"
    done
}

write_sources_list() {
    local uri suite sb main_uri='' main_sb=- seen=" " out=$APTDIR/sources.list.new
    : >"$out"
    while read -r uri suite sb; do
        case $suite in bookworm|bookworm-*|trixie|trixie-*) ;; *) continue ;; esac
        case $seen in *" $uri|$suite "*) continue ;; esac
        seen+="$uri|$suite "
        if [ "$suite" = bookworm ] && [ -z "$main_uri" ]; then main_uri=$uri; main_sb=$sb; fi
        echo "deb $( [ "$sb" != - ] && echo "[signed-by=$sb] " )$uri $suite main" >>"$out"
    done < <(configured_sources)
    if [ -n "${VFIOCPR_GUEST_MIRROR:-}" ]; then
        main_uri=$VFIOCPR_GUEST_MIRROR
        echo "deb $main_uri bookworm main" >"$out"
        main_sb=-
    elif [ -z "$main_uri" ]; then
        main_uri=http://deb.debian.org/debian
        log "no Debian bookworm mirror configured in /etc/apt; using $main_uri"
        echo "deb $main_uri bookworm main" >>"$out"
    fi
    for suite in "${EXTRA_SUITES[@]}"; do
        case $seen in *" $main_uri|$suite "*) continue ;; esac
        echo "deb $( [ "$main_sb" != - ] && echo "[signed-by=$main_sb] " )$main_uri $suite main" >>"$out"
    done
    mv "$out" "$APTDIR/sources.list"
}

. "$(dirname -- "${BASH_SOURCE[0]}")/apt-private.sh"

write_sources_list
log "apt-get update (private config: $(awk '{print $(NF-1)}' "$APTDIR/sources.list" | paste -sd' '))"
if ! apt_quiet apt-get "${APT_OPTS[@]}" -q update; then
    if [ -e "$SPECLINK/.complete" ]; then
        log "apt-get update failed; using the cached kernel for $SPEC"
        cd -P "$SPECLINK" && pwd
        exit 0
    fi
    die "apt-get update failed (private config $APTDIR/sources.list)"
fi

# ------------------------------------------------------------ resolve packages
# Newest linux-image-amd64 version matching PREFIX (and SUITE when given).
meta_version=
while IFS='|' read -r _ ver src; do
    ver=${ver// /}
    src_suite=$(awk '{print $2}' <<<"$src")
    src_suite=${src_suite%%/*}
    case $ver in "$PREFIX".*|"$PREFIX"-*|"$PREFIX") ;; *) continue ;; esac
    if [ -n "$SUITE" ] && [ "$src_suite" != "$SUITE" ]; then continue; fi
    if [ -z "$meta_version" ] || dpkg --compare-versions "$ver" gt "$meta_version"; then
        meta_version=$ver
    fi
done < <(apt-cache "${APT_OPTS[@]}" madison linux-image-amd64)
[ -n "$meta_version" ] || {
    apt-cache "${APT_OPTS[@]}" madison linux-image-amd64 >&2 || true
    die "no linux-image-amd64 version matches '$SPEC' (see the list above)"
}

image_pkg=$(apt-cache "${APT_OPTS[@]}" depends "linux-image-amd64=$meta_version" |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-/ && $2 != "linux-image-amd64" {print $2; exit}')
[ -n "$image_pkg" ] || die "cannot find the kernel image package behind linux-image-amd64=$meta_version"
ABI=${image_pkg#linux-image-}

# The image package plus the packages it depends on that carry the same ABI
# (newer Debian kernels split it into linux-binary-ABI, linux-modules-ABI, ...).
pkgs=("$image_pkg")
queue=("$image_pkg")
while [ ${#queue[@]} -gt 0 ]; do
    p=${queue[0]}
    queue=("${queue[@]:1}")
    while read -r dep; do
        case " ${pkgs[*]} " in *" $dep "*) continue ;; esac
        pkgs+=("$dep")
        queue+=("$dep")
    done < <(apt-cache "${APT_OPTS[@]}" depends --no-recommends --no-suggests --no-conflicts \
                 --no-breaks --no-replaces --no-enhances "$p" |
             awk -v abi="$ABI" '($1 == "Depends:" || $1 == "PreDepends:") {
                 d = $2; if (substr(d, length(d) - length(abi)) == "-" abi) print d }')
done
log "$SPEC -> linux-image-amd64=$meta_version -> ${pkgs[*]}"

KDIR=$CACHE/kernels/$ABI$(modset_suffix)
if [ -e "$KDIR/.complete" ]; then
    mkdir -p "$CACHE/spec"
    ln -sfn "$KDIR" "$SPECLINK"
    echo "$KDIR"
    exit 0
fi

# ------------------------------------------------------------ download
DEBS=$CACHE/debs
mkdir -p "$DEBS"
need=()
for p in "${pkgs[@]}"; do
    if ! compgen -G "$DEBS/${p}_*.deb" >/dev/null; then need+=("$p"); fi
done
if [ ${#need[@]} -gt 0 ]; then
    t1=$(date +%s.%N)
    log "downloading ${need[*]}"
    dltmp=$(mktemp -d "$DEBS/.dl.XXXXXX")
    if ! (cd "$dltmp" && apt_quiet apt-get "${APT_OPTS[@]}" -q download "${need[@]}"); then
        rm -rf "$dltmp"
        die "apt-get download ${need[*]} failed"
    fi
    mv "$dltmp"/*.deb "$DEBS"/
    rmdir "$dltmp"
    log "downloaded $(cd "$DEBS" && for p in "${need[@]}"; do ls "${p}"_*.deb; done |
                      xargs du -ch --apparent-size | tail -n1 | cut -f1) in $(
        awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
else
    log "packages already downloaded in $DEBS"
fi

# ------------------------------------------------------------ extract
work=$(mktemp -d "$CACHE/.x.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root" "$work/out/modules"
packages_txt=
for p in "${pkgs[@]}"; do
    deb=$(ls -t "$DEBS/${p}"_*.deb | head -n1)
    dpkg-deb -x "$deb" "$work/root"
    packages_txt+="$p=$(dpkg-deb -f "$deb" Version)"$'\n'
done
R=$work/root
vmlinuz=
for c in "$R/boot/vmlinuz-$ABI" "$R/usr/lib/modules/$ABI/vmlinuz" "$R/lib/modules/$ABI/vmlinuz"; do
    if [ -f "$c" ]; then vmlinuz=$c; break; fi
done
[ -n "$vmlinuz" ] || die "no vmlinuz for $ABI in ${pkgs[*]}"
moddir=
for c in "$R/usr/lib/modules/$ABI" "$R/lib/modules/$ABI"; do
    if [ -d "$c/kernel" ]; then moddir=$c; break; fi
done
[ -n "$moddir" ] || die "no modules directory for $ABI in ${pkgs[*]}"
config=
for c in "$R/boot/config-$ABI" "$moddir/config"; do
    if [ -f "$c" ]; then config=$c; break; fi
done
builtin_list=$moddir/modules.builtin
[ -f "$builtin_list" ] || die "no modules.builtin for $ABI"

norm() { printf '%s' "$1" | tr - _; }
# module_path NAME: the module file for NAME (any compression), or nothing
module_index=$work/module-index     # "normalized-name path" per module file
find "$moddir/kernel" -type f \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' \
     -o -name '*.ko.gz' \) -print |
    awk '{ b = $0; sub(/.*\//, "", b); sub(/\.ko.*$/, "", b); gsub(/-/, "_", b); print b, $0 }' \
    >"$module_index"
module_path() {
    awk -v n="$(norm "$1")" '$1 == n { print $2; exit }' "$module_index"
}
is_builtin() {
    local n
    n=$(norm "$1")
    sed -e 's,.*/,,' -e 's,\.ko$,,' "$builtin_list" | tr - _ | grep -qx -- "$n"
}
# the decompressors (xz-utils and zstd are not always installed): EXT:TOOL:PACKAGE
for t in xz:xz:xz-utils zst:zstd:zstd; do
    IFS=: read -r ext tool pkg <<<"$t"
    if grep -q "\.ko\.$ext\$" "$module_index" && ! command -v "$tool" >/dev/null; then
        log "installing $pkg"
        apt_quiet env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -y \
            --no-install-recommends install "$pkg" || die "cannot install $pkg"
    fi
done
decompress() {   # decompress SRC DST
    case $1 in
        *.ko.xz) xz -dc "$1" >"$2" ;;
        *.ko.zst) zstd -qdc "$1" >"$2" ;;
        *.ko.gz) gzip -dc "$1" >"$2" ;;
        *) cp "$1" "$2" ;;
    esac
}

order=()          # module names, dependencies first
builtins=()
visiting=" "
# add_module NAME OPTIONAL: depth-first, post-order
add_module() {
    local name=$1 optional=$2 n path ko deps d
    n=$(norm "$name")
    case " ${order[*]} ${builtins[*]} " in *" $n "*) return 0 ;; esac
    case $visiting in *" $n "*) die "module dependency cycle at $name" ;; esac
    path=$(module_path "$name")
    if [ -z "$path" ]; then
        if is_builtin "$name"; then
            log "$name is built into $ABI"
            builtins+=("$n")
            return 0
        fi
        if [ "$optional" = 1 ]; then
            log "$name does not exist as a module in $ABI (built into another module?): skipped"
            return 0
        fi
        die "module $name not found in $ABI"
    fi
    ko=$work/out/modules/$n.ko
    decompress "$path" "$ko"
    visiting+="$n "
    deps=$(tr '\0' '\n' <"$ko" | sed -n 's/^depends=//p' | head -n1)
    for d in ${deps//,/ }; do
        add_module "$d" 0
    done
    visiting=${visiting/ $n / }
    order+=("$n")
}
for m in "${REQUIRED_MODULES[@]}"; do add_module "$m" 0; done
for m in "${OPTIONAL_MODULES[@]}"; do add_module "$m" 1; done
for m in "${EXTRA_MODULES[@]}"; do add_module "$m" 0; done

cp "$vmlinuz" "$work/out/vmlinuz"
if [ -n "$config" ]; then cp "$config" "$work/out/config"; fi
printf '%s.ko\n' "${order[@]}" >"$work/out/modules.load"
if [ ${#builtins[@]} -gt 0 ]; then printf '%s\n' "${builtins[@]}"; fi >"$work/out/modules.builtin"
printf '%s' "$packages_txt" >"$work/out/packages"
echo "$ABI" >"$work/out/abi"
touch "$work/out/.complete"
log "modules for $ABI in load order: ${order[*]}${builtins[*]:+ (built in: ${builtins[*]})}"

mkdir -p "$CACHE/kernels" "$CACHE/spec"
rm -rf "$KDIR"
mv "$work/out" "$KDIR"
ln -sfn "$KDIR" "$SPECLINK"
echo "$KDIR"
