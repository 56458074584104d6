// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * guest-smoke: raw VFIO type1 smoke test for the guest test bed.
 *
 * Plain libc and ioctls, no libvfiocpr. Runs inside the QEMU guest (run-guest.sh)
 * against the edu device bound to vfio-pci and prints TAP: container, group,
 * IOMMU, the VADDR extensions, device fd, BAR0 mmap, edu registers, DMA both
 * ways through the IOMMU, MSI through an eventfd, and the vaddr invalidate /
 * update sequence that CPR relies on (UNMAP_DMA VADDR|ALL, then MAP_DMA VADDR
 * at a new address of the same memfd).
 *
 * Usage: guest-smoke [BDF]     (default: the first edu device, 1234:11e8)
 * Build: gcc -O2 -Wall -Wextra -static -o guest-smoke guest-smoke.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "pci-find.h"

#include "vfio-compat.h"

#define EDU_ID 0x00
#define EDU_LIVENESS 0x04
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_RUN 0x1
#define EDU_DMA_TO_RAM 0x2
#define EDU_BUF 0x40000 /* device buffer 0x40000..0x40fff */

#define RAM_SIZE (2u << 20)
#define RAM_IOVA 0x100000u /* below 256 MiB: edu's DMA mask is 28 bits */
/* QEMU 7.2's edu rejects a DMA that ends exactly at the end of its 4 KiB buffer
 * (edu_check_range() wants end < 0x41000) and aborts the whole machine with a
 * hw_error: keep transfers inside, well short of 4096 bytes. */
#define XFER 2048u

static unsigned test_no;
static unsigned failures;

static bool tap(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool tap(bool ok, const char *fmt, ...)
{
    va_list ap;

    printf("%s %u - ", ok ? "ok" : "not ok", ++test_no);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (!ok)
        failures++;
    return ok;
}

static void __attribute__((noreturn)) bail(const char *what)
{
    printf("Bail out! %s\n", what);
    fflush(stdout);
    exit(1);
}

static volatile uint32_t *bar0;

static uint32_t rd32(uint32_t off)
{
    return bar0[off / 4];
}

static void wr32(uint32_t off, uint32_t v)
{
    bar0[off / 4] = v;
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Starts an edu DMA and waits for it; returns the time taken or -1 on timeout. */
static double edu_dma(uint64_t src, uint64_t dst, uint32_t count, uint32_t cmd)
{
    double t0 = now();

    wr32(EDU_DMA_SRC, (uint32_t)src);
    wr32(EDU_DMA_DST, (uint32_t)dst);
    wr32(EDU_DMA_COUNT, count);
    wr32(EDU_DMA_CMD, cmd | EDU_DMA_RUN);
    while (rd32(EDU_DMA_CMD) & EDU_DMA_RUN) {
        if (now() - t0 > 10.0)
            return -1;
        usleep(1000);
    }
    return now() - t0;
}

/* Reads an eventfd, waiting up to timeout_ms; returns the counter or 0. */
static uint64_t eventfd_wait(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v = 0;

    if (poll(&p, 1, timeout_ms) == 1 && read(fd, &v, sizeof(v)) == sizeof(v))
        return v;
    return 0;
}

static int find_edu(char *bdf, size_t len)
{
    return pci_find(0x1234, 0x11e8, bdf, len);
}

static int iommu_group_of(const char *bdf)
{
    char path[PATH_MAX], target[PATH_MAX];
    ssize_t n;
    const char *slash;

    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
    n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return -1;
    target[n] = '\0';
    slash = strrchr(target, '/');
    return atoi(slash ? slash + 1 : target);
}

int main(int argc, char **argv)
{
    char bdf[NAME_MAX + 1], path[64];
    int container, group, device, memfd, irqfd, r, grp;
    struct vfio_group_status gstatus = { .argsz = sizeof(gstatus) };
    struct vfio_device_info dinfo = { .argsz = sizeof(dinfo) };
    struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
    struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    struct vfio_irq_info msi = { .argsz = sizeof(msi), .index = VFIO_PCI_MSI_IRQ_INDEX };
    struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };
    struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap) };
    uint8_t *ram, *ram2, pattern[XFER];
    uint16_t cmd;
    uint32_t v;
    uint64_t count;
    double dt;
    size_t i;

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("# guest-smoke: raw VFIO type1 + edu\n");

    if (argc > 1)
        snprintf(bdf, sizeof(bdf), "%s", argv[1]);
    else if (find_edu(bdf, sizeof(bdf)) < 0)
        bail("no edu device (1234:11e8) in /sys/bus/pci/devices");
    grp = iommu_group_of(bdf);
    if (grp < 0)
        bail("the edu device has no iommu_group");
    printf("# edu at %s, iommu group %d\n", bdf, grp);

    container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    if (!tap(container >= 0, "open /dev/vfio/vfio (fd %d%s%s)", container,
             container < 0 ? ", " : "", container < 0 ? strerror(errno) : ""))
        bail("no container");

    r = ioctl(container, VFIO_GET_API_VERSION);
    tap(r == VFIO_API_VERSION, "VFIO_GET_API_VERSION = %d (want %d)", r, VFIO_API_VERSION);

    r = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
    tap(r == 1, "VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU) = %d", r);

    snprintf(path, sizeof(path), "/dev/vfio/%d", grp);
    group = open(path, O_RDWR | O_CLOEXEC);
    if (!tap(group >= 0, "open %s (fd %d%s%s)", path, group, group < 0 ? ", " : "",
             group < 0 ? strerror(errno) : ""))
        bail("no group");

    r = ioctl(group, VFIO_GROUP_GET_STATUS, &gstatus);
    tap(r == 0 && (gstatus.flags & VFIO_GROUP_FLAGS_VIABLE),
        "VFIO_GROUP_GET_STATUS: r=%d flags=0x%x (viable)", r, gstatus.flags);

    r = ioctl(group, VFIO_GROUP_SET_CONTAINER, &container);
    if (!tap(r == 0, "VFIO_GROUP_SET_CONTAINER: r=%d%s%s", r, r ? " " : "", r ? strerror(errno) : ""))
        bail("cannot attach the group");

    r = ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    if (!tap(r == 0, "VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU): r=%d%s%s", r, r ? " " : "",
             r ? strerror(errno) : ""))
        bail("cannot set the IOMMU");

    r = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR);
    tap(r == 1, "VFIO_CHECK_EXTENSION(VFIO_UPDATE_VADDR) = %d", r);
    r = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL);
    tap(r == 1, "VFIO_CHECK_EXTENSION(VFIO_UNMAP_ALL) = %d", r);

    device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
    if (!tap(device >= 0, "VFIO_GROUP_GET_DEVICE_FD(%s) = fd %d%s%s", bdf, device,
             device < 0 ? " " : "", device < 0 ? strerror(errno) : ""))
        bail("no device fd");

    r = ioctl(device, VFIO_DEVICE_GET_INFO, &dinfo);
    tap(r == 0 && (dinfo.flags & VFIO_DEVICE_FLAGS_PCI) &&
            dinfo.num_regions > VFIO_PCI_CONFIG_REGION_INDEX && dinfo.num_irqs > VFIO_PCI_MSI_IRQ_INDEX,
        "VFIO_DEVICE_GET_INFO: flags=0x%x num_regions=%u num_irqs=%u", dinfo.flags,
        dinfo.num_regions, dinfo.num_irqs);

    r = ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &bar);
    tap(r == 0 && bar.size >= 0x100000 && (bar.flags & VFIO_REGION_INFO_FLAG_MMAP),
        "BAR0 region info: size=0x%llx offset=0x%llx flags=0x%x", (unsigned long long)bar.size,
        (unsigned long long)bar.offset, bar.flags);
    bar0 = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, device, bar.offset);
    if (!tap(bar0 != MAP_FAILED, "mmap BAR0 at %p", (void *)bar0))
        bail("cannot mmap BAR0");

    v = rd32(EDU_ID);
    tap((v & 0xffff) == 0x00ed, "edu identification 0x00 = 0x%08x (0xRRrr00ed, version %u.%u)", v,
        v >> 24, (v >> 16) & 0xff);
    wr32(EDU_LIVENESS, 0x12345678);
    v = rd32(EDU_LIVENESS);
    tap(v == (uint32_t)~0x12345678u, "edu liveness 0x04: wrote 0x12345678, read 0x%08x", v);

    /* memory decoding + bus master: needed for DMA and MSI */
    r = ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &cfg);
    cmd = 0;
    if (r == 0 && pread(device, &cmd, 2, cfg.offset + PCI_COMMAND) == 2) {
        cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        if (pwrite(device, &cmd, 2, cfg.offset + PCI_COMMAND) != 2)
            r = -1;
        cmd = 0;
        if (pread(device, &cmd, 2, cfg.offset + PCI_COMMAND) != 2)
            r = -1;
    } else {
        r = -1;
    }
    tap(r == 0 && (cmd & PCI_COMMAND_MASTER) && (cmd & PCI_COMMAND_MEMORY),
        "config space: PCI_COMMAND = 0x%04x (memory + bus master)", cmd);

    memfd = memfd_create("guest-ram", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, RAM_SIZE) < 0)
        bail("memfd_create/ftruncate failed");
    ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (ram == MAP_FAILED)
        bail("mmap memfd failed");
    map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    map.vaddr = (uintptr_t)ram;
    map.iova = RAM_IOVA;
    map.size = RAM_SIZE;
    r = ioctl(container, VFIO_IOMMU_MAP_DMA, &map);
    if (!tap(r == 0, "VFIO_IOMMU_MAP_DMA memfd %u KiB at vaddr %p -> iova 0x%x: r=%d%s%s",
             RAM_SIZE >> 10, (void *)ram, RAM_IOVA, r, r ? " " : "", r ? strerror(errno) : ""))
        bail("cannot map guest RAM");

    for (i = 0; i < XFER; i++)
        pattern[i] = (uint8_t)(i * 7 + 3);
    memcpy(ram, pattern, XFER);
    dt = edu_dma(RAM_IOVA, EDU_BUF, XFER, 0);
    tap(dt >= 0, "edu DMA RAM->device: iova 0x%x -> buffer 0x%x, %u bytes, done in %.0f ms",
        RAM_IOVA, EDU_BUF, XFER, dt * 1e3);

    memset(ram + 0x10000, 0, XFER);
    dt = edu_dma(EDU_BUF, RAM_IOVA + 0x10000, XFER, EDU_DMA_TO_RAM);
    tap(dt >= 0 && memcmp(ram + 0x10000, pattern, XFER) == 0,
        "edu DMA device->RAM: buffer -> iova 0x%x, %u bytes match (%.0f ms)", RAM_IOVA + 0x10000,
        XFER, dt * 1e3);

    /* MSI: one vector into an eventfd */
    r = ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &msi);
    tap(r == 0 && msi.count >= 1 && (msi.flags & VFIO_IRQ_INFO_EVENTFD),
        "VFIO_DEVICE_GET_IRQ_INFO(MSI): count=%u flags=0x%x", msi.count, msi.flags);
    irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    {
        char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
        struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
        int32_t fd32 = irqfd;

        set->argsz = sizeof(buf);
        set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
        set->index = VFIO_PCI_MSI_IRQ_INDEX;
        set->start = 0;
        set->count = 1;
        memcpy(set->data, &fd32, sizeof(fd32));
        r = ioctl(device, VFIO_DEVICE_SET_IRQS, set);
        tap(r == 0, "VFIO_DEVICE_SET_IRQS(MSI, 1 eventfd, trigger): r=%d%s%s", r, r ? " " : "",
            r ? strerror(errno) : "");
    }
    count = 0;
    for (i = 0; i < 3; i++) {
        wr32(EDU_IRQ_RAISE, 1);
        count += eventfd_wait(irqfd, 2000);
        v = rd32(EDU_IRQ_STATUS);
        wr32(EDU_IRQ_ACK, v);
    }
    count += eventfd_wait(irqfd, 100); /* late or duplicate signals */
    tap(count == 3, "edu raise irq 3 times (0x60, ack 0x64): eventfd counted %" PRIu64, count);

    /* CPR vaddr dance: invalidate every vaddr, then give a new one */
    unmap.flags = VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL;
    unmap.iova = 0;
    unmap.size = 0;
    r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
    tap(r == 0, "VFIO_IOMMU_UNMAP_DMA(VADDR|ALL, iova=size=0): r=%d%s%s", r, r ? " " : "",
        r ? strerror(errno) : "");

    memset(ram + 0x20000, 0, XFER);
    dt = edu_dma(EDU_BUF, RAM_IOVA + 0x20000, XFER, EDU_DMA_TO_RAM);
    tap(dt >= 0 && memcmp(ram + 0x20000, pattern, XFER) == 0,
        "edu DMA device->RAM while the vaddr is invalid: %u bytes match", XFER);

    ram2 = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (ram2 == MAP_FAILED)
        bail("second mmap of the memfd failed");
    munmap(ram, RAM_SIZE);
    memset(&map, 0, sizeof(map));
    map.argsz = sizeof(map);
    map.flags = VFIO_DMA_MAP_FLAG_VADDR;
    map.vaddr = (uintptr_t)ram2;
    map.iova = RAM_IOVA;
    map.size = RAM_SIZE;
    r = ioctl(container, VFIO_IOMMU_MAP_DMA, &map);
    tap(r == 0, "VFIO_IOMMU_MAP_DMA(VADDR) new vaddr %p (old unmapped), same iova/size: r=%d%s%s",
        (void *)ram2, r, r ? " " : "", r ? strerror(errno) : "");

    memset(ram2 + 0x30000, 0, XFER);
    dt = edu_dma(EDU_BUF, RAM_IOVA + 0x30000, XFER, EDU_DMA_TO_RAM);
    tap(dt >= 0 && memcmp(ram2 + 0x30000, pattern, XFER) == 0,
        "edu DMA device->RAM after MAP_DMA(VADDR): %u bytes seen through the new mapping", XFER);

    for (i = 0; i < XFER; i++)
        ram2[0x40000 + i] = (uint8_t)~pattern[i];
    dt = edu_dma(RAM_IOVA + 0x40000, EDU_BUF, XFER, 0);
    memset(ram2 + 0x50000, 0, XFER);
    if (dt >= 0)
        dt = edu_dma(EDU_BUF, RAM_IOVA + 0x50000, XFER, EDU_DMA_TO_RAM);
    tap(dt >= 0 && memcmp(ram2 + 0x50000, ram2 + 0x40000, XFER) == 0,
        "edu DMA round trip RAM->device->RAM after the update: %u bytes match", XFER);

    wr32(EDU_IRQ_RAISE, 1);
    count = eventfd_wait(irqfd, 2000);
    wr32(EDU_IRQ_ACK, rd32(EDU_IRQ_STATUS));
    tap(count == 1, "MSI still delivered after the vaddr update: eventfd counted %" PRIu64, count);

    /* tear down */
    {
        struct vfio_irq_set off = {
            .argsz = sizeof(off),
            .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
            .index = VFIO_PCI_MSI_IRQ_INDEX,
        };

        r = ioctl(device, VFIO_DEVICE_SET_IRQS, &off);
        tap(r == 0, "VFIO_DEVICE_SET_IRQS(MSI, count 0): disabled, r=%d", r);
    }
    memset(&unmap, 0, sizeof(unmap));
    unmap.argsz = sizeof(unmap);
    unmap.iova = RAM_IOVA;
    unmap.size = RAM_SIZE;
    r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
    tap(r == 0 && unmap.size == RAM_SIZE, "VFIO_IOMMU_UNMAP_DMA: r=%d unmapped 0x%llx bytes", r,
        (unsigned long long)unmap.size);
    munmap(ram2, RAM_SIZE);
    munmap((void *)bar0, bar.size);
    close(irqfd);
    close(memfd);
    close(device);
    close(group);
    close(container);

    printf("1..%u\n", test_no);
    return failures ? 1 : 0;
}
