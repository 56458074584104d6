#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The demo (demo.sh runs it in the guest): minivmm drives the edu device, upgrades
# itself in place three times, and prints the timeline of each upgrade.
#   minivmm-demo.sh [iommufd]    the IOMMU backend (default: minivmm's, type1)
for d in /sys/bus/pci/devices/*; do
    if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
        bdf=${d##*/}
    fi
done
[ -n "$bdf" ] || { echo "demo: no edu device"; exit 1; }
echo
echo "minivmm drives PCI device $bdf (QEMU edu) through libvfiocpr and upgrades itself"
echo "in place with exec() three times, while the device keeps doing DMA and interrupts."
echo
exec /bin/minivmm --device "$bdf" --upgrades 3 ${1:+--backend "$1"}
