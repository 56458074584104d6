#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The libvfiocpr demo (Debian 12, as root): installs what it needs, builds, boots a
# QEMU guest with a PCI device bound to vfio-pci and KVM (nested under TCG), and shows
# examples/minivmm running a VM whose guest drives the device, upgrading itself with
# exec() three times while the guest keeps doing DMA and taking interrupts, with the
# timeline of each upgrade and what the guest counted.
# DEMO_KERNEL picks the guest kernel (7.3 or 6.1; default 7.3).
#   bash demo.sh --iommufd   the same on the iommufd backend: the guest kernel is the
#                            one tests/guest/build-kernel.sh builds from Debian's
#                            linux-source (about 6 minutes on 2 cores the first time,
#                            cached after)
set -euo pipefail
cd "$(dirname "$0")"
backend=
case ${1:-} in
    "") ;;
    --iommufd) backend=iommufd ;;
    *) echo "usage: bash demo.sh [--iommufd]" >&2; exit 2 ;;
esac
# .ci/run defines the dependency install when sourced
# shellcheck source=.ci/run
source .ci/run
install_deps >&2
if [ ! -x _build-demo/examples/minivmm/minivmm ] || [ ! -f _build-demo/examples/minivmm/minivmm-guest.bin ]; then
    echo "demo: building (a minute)..." >&2
    [ -x configure ] || ./autogen.sh >/dev/null 2>&1
    mkdir -p _build-demo
    (cd _build-demo && ../configure -q --disable-guest-tests >/dev/null &&
        make -j"$(nproc)" -s examples/minivmm/minivmm examples/minivmm/minivmm-guest.bin >/dev/null)
fi
kernel=${DEMO_KERNEL:-7.3}
if [ "$backend" = iommufd ]; then
    # a _build-demo from before --backend existed must not be used as it is
    make -C _build-demo -s examples/minivmm/minivmm examples/minivmm/minivmm-guest.bin >/dev/null
    kernel=iommufd
    echo "demo: booting the guest (the first time this builds its kernel: ~6 minutes)..." >&2
else
    echo "demo: booting the guest (downloads a Debian kernel the first time)..." >&2
fi
bash tests/guest/run-guest.sh --kernel "$kernel" --device edu \
    --extra _build-demo/examples/minivmm/minivmm --extra _build-demo/examples/minivmm/minivmm-guest.bin \
    -- examples/minivmm/minivmm-demo.sh ${backend:+"$backend"} |
    grep -v '^# VFIOCPR-\(DEV\|CDEV\)'
