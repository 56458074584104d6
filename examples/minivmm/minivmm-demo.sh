#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The demo (demo.sh runs it in the guest): minivmm runs a VM whose guest program
# drives the edu device itself (DMA both ways, interrupts through KVM), upgrades
# itself in place three times, and prints the timeline of each upgrade with what the
# guest counted in its own RAM.
#   minivmm-demo.sh [iommufd]    the IOMMU backend (default: minivmm's, type1)
for d in /sys/bus/pci/devices/*; do
    if [ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ]; then
        bdf=${d##*/}
    fi
done
[ -n "$bdf" ] || { echo "demo: no edu device"; exit 1; }
[ -c /dev/kvm ] || { echo "demo: no /dev/kvm in the guest"; exit 1; }
echo
echo "minivmm runs a KVM virtual machine whose guest program is the driver of PCI device"
echo "$bdf (QEMU edu, passed through with VFIO): the guest does DMA both ways and takes"
echo "the device's MSIs through KVM, counting them in its own RAM. minivmm upgrades itself"
echo "in place with exec() three times; the guest keeps running. A helper keeps the device"
echo "raising interrupts while no VM exists (during the exec)."
echo
/bin/minivmm --device "$bdf" --kvm --upgrades 3 ${1:+--backend "$1"}
rc=$?
echo
echo "Read each timeline: 'the guest saw' is the guest's own measure of the pause (its TSC),"
echo "'raised = taken by the guest' compares what the device raised with what the guest's"
echo "interrupt handler counted; 'not reset' is the device's config space from the host side."
exit $rc
