#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The libvfiocpr demo (Debian 12, as root): installs what it needs, builds, boots a
# QEMU guest with a PCI device bound to vfio-pci, and shows examples/minivmm, a
# VMM-shaped program, upgrading itself with exec() three times while the device keeps
# doing DMA and interrupts, with the timeline of each upgrade.
# DEMO_KERNEL picks the guest kernel (7.3 or 6.1; default 7.3).
#   bash demo.sh --iommufd   the same on the iommufd backend: the guest kernel is the
#                            one tests/guest/build-kernel.sh builds from Debian's
#                            linux-source (about 6 minutes on 2 cores the first time,
#                            cached after)
set -euo pipefail
cd "$(dirname "$0")"
backend=type1
case ${1:-} in
    "") ;;
    --iommufd) backend=iommufd ;;
    *) echo "usage: bash demo.sh [--iommufd]" >&2; exit 2 ;;
esac
# .ci/run defines the dependency install when sourced
# shellcheck source=.ci/run
source .ci/run
install_deps >&2
if [ ! -x _build-demo/examples/minivmm/minivmm ] ||
   [ -n "$(find examples/minivmm lib include -newer _build-demo/examples/minivmm/minivmm \
           -name '*.[ch]' 2>/dev/null | head -n1)" ]; then
    echo "demo: building (a minute)..." >&2
    [ -x configure ] || ./autogen.sh >/dev/null 2>&1
    mkdir -p _build-demo
    (cd _build-demo && { [ -f Makefile ] || ../configure -q --disable-guest-tests >/dev/null; } &&
        make -j"$(nproc)" -s examples/minivmm/minivmm >/dev/null)
fi
if [ "$backend" = iommufd ]; then
    kernel=iommufd
    echo "demo: booting the guest (the first time this builds the iommufd kernel: ~6 minutes)..." >&2
else
    kernel=${DEMO_KERNEL:-7.3}
    echo "demo: booting the guest (downloads a Debian kernel the first time)..." >&2
fi
bash tests/guest/run-guest.sh --kernel "$kernel" --device edu \
    --extra _build-demo/examples/minivmm/minivmm -- examples/minivmm/minivmm-demo.sh "$backend" |
    grep -v '^# VFIOCPR-\(DEV\|CDEV\)'
