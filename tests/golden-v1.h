/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What tests/data/state-v1.bin holds. The blob is frozen: format 1.0 as released.
 * Every later library must keep restoring it (tests/test-state.c). */
#ifndef GOLDEN_V1_H
#define GOLDEN_V1_H

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/sysmacros.h>

#include "fake-kernel.h"
#include "vfiocpr.h"

typedef struct {
    const char *name;
    guint64 id;
    int fd;
    vfiocpr_fd_kind kind;
    const char *link;
    guint32 mode;
    guint64 dev, ino, rdev;
} golden_fd;

#define GOLDEN_V1_FDS                                                                          \
    {                                                                                          \
        { "guest-ram", 0, 900, VFIOCPR_FD_MEMFD, "/memfd:guest-ram (deleted)", S_IFREG | 0777, \
          1, 4242, 0 },                                                                        \
        { "vfio-container", 0, 901, VFIOCPR_FD_VFIO_CONTAINER, "/dev/vfio/vfio",               \
          S_IFCHR | 0666, 5, 88, makedev(10, 196) },                                           \
        { "vfio-group", 12, 902, VFIOCPR_FD_VFIO_GROUP, "/dev/vfio/12", S_IFCHR | 0600, 5,     \
          601, makedev(511, 0) },                                                              \
        { "vfio-device", 0x0300, 903, VFIOCPR_FD_VFIO_DEVICE, "anon_inode:[vfio-device]",      \
          0600, 10, 1039, 0 },                                                                 \
        { "irq-msix", 0, 904, VFIOCPR_FD_EVENTFD, "anon_inode:[eventfd]", 0600, 10, 1039, 0 }, \
        { "irq-msix", 1, 905, VFIOCPR_FD_EVENTFD, "anon_inode:[eventfd]", 0600, 10, 1039, 0 }, \
        { "irq-msix", 2, 906, VFIOCPR_FD_EVENTFD, "anon_inode:[eventfd]", 0600, 10, 1039, 0 }, \
        { "kvm", 0, 907, VFIOCPR_FD_KVM, "/dev/kvm", S_IFCHR | 0666, 5, 90, makedev(10, 232) }, \
        { "log", 0, 908, VFIOCPR_FD_OTHER, "/var/log/vmm.log", S_IFREG | 0640, 2049, 77, 0 },  \
    }

/* Makes the fake kernel answer for the recorded fds as the writer's kernel did. */
static inline void golden_v1_pretend(void)
{
    const golden_fd fds[] = GOLDEN_V1_FDS;
    for (gsize i = 0; i < G_N_ELEMENTS(fds); i++)
        fake_kernel_pretend(fds[i].fd, fds[i].link, fds[i].mode, fds[i].dev, fds[i].ino,
                            fds[i].rdev);
}

/* Format 1.1 (tests/data/state-v1.1.bin): the VMM below after a cold start on the
 * fake type1 kernel (fds from 950 up, guest RAM a pretended memfd at 899), captured
 * at exec. The test recreates the same kernel objects the same way, invalidates the
 * vaddrs as the old image's exec did, and restores the blob through the same code. */
#define GOLDEN_V11_RAM_FD 899
#define GOLDEN_V11_RAM_SIZE (8u << 20)
#define GOLDEN_V12_EFD0 890
#define GOLDEN_V16_TABLE_FD0 880 /* the DMA tables of c0 and i0 (format 1.6) */

static inline vfiocpr *golden_cold_start(bool irqs)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr_container) c = NULL;
    g_autoptr(vfiocpr_device) dev = NULL;
    vfiocpr *ctx = NULL;

    fake_vfio_add_group(12, "0000:00:03.0", false);
    fake_kernel_pretend(GOLDEN_V11_RAM_FD, "/memfd:guest-ram (deleted)", S_IFREG | 0777, 1, 7777, 0);
    if (vfiocpr_new(0, &ctx, &err) < 0 ||
        vfiocpr_fd_save(ctx, "guest-ram", 0, GOLDEN_V11_RAM_FD, VFIOCPR_FD_MEMFD, &err) < 0 ||
        vfiocpr_container_open(ctx, "c0", &c, &err) < 0 ||
        vfiocpr_container_add_group(c, 12, &err) < 0 ||
        vfiocpr_device_open(c, 12, "0000:00:03.0", &dev, &err) < 0)
        g_error("golden cold start: %s", err ? err->message : "?");
    /* two ranges; the vaddrs are whatever, the kernel model does not touch them */
    if (vfiocpr_dma_map(c, 0x100000, 0x200000, (void *)0x7f0000000000ull, GOLDEN_V11_RAM_FD, 0,
                        VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE, &err) < 0 ||
        vfiocpr_dma_map(c, 0x40000000, 0x600000, (void *)0x7f0000200000ull, GOLDEN_V11_RAM_FD,
                        0x200000, VFIOCPR_DMA_READ, &err) < 0)
        g_error("golden maps: %s", err->message);
    if (irqs) {
        int fds[3];
        for (int i = 0; i < 3; i++) {
            fds[i] = GOLDEN_V12_EFD0 + i;
            fake_kernel_pretend(fds[i], "anon_inode:[eventfd]", 0600, 10, 1039, 0);
        }
        if (vfiocpr_irq_enable(dev, VFIOCPR_IRQ_MSIX, 0, 3, fds, NULL, &err) < 0 ||
            vfiocpr_irq_set_intx_gsi(dev, 10, &err) < 0)
            g_error("golden irqs: %s", err->message);
        for (unsigned i = 0; i < 3; i++)
            vfiocpr_irq_set_msi(dev, VFIOCPR_IRQ_MSIX, i, 0xfee01000, 0x4040 + i, i == 2, &err);
    }
    return ctx;
}

static inline vfiocpr *golden_v11_cold_start(void)
{
    return golden_cold_start(false);
}

/* Format 1.2 (tests/data/state-v1.2.bin): the same plus 3 MSI-X vectors on the VMM's
 * own eventfds (pretended at 890..892), their MSI messages (vector 2 masked) and
 * INTx GSI 10. */
static inline vfiocpr *golden_v12_cold_start(void)
{
    return golden_cold_start(true);
}

/* Real fds behind the numbers the golden cold start pretends (guest RAM at 899, the
 * MSI-X eventfds at 890..892): what a transfer sends must exist. */
static inline void golden_real_fds(void)
{
    int ram = memfd_create("guest-ram", MFD_CLOEXEC);
    g_assert_cmpint(dup3(ram, GOLDEN_V11_RAM_FD, O_CLOEXEC), ==, GOLDEN_V11_RAM_FD);
    close(ram);
    for (int i = 0; i < 3; i++) {
        int e = eventfd(0, EFD_CLOEXEC);
        g_assert_cmpint(dup3(e, GOLDEN_V12_EFD0 + i, O_CLOEXEC), ==, GOLDEN_V12_EFD0 + i);
        close(e);
    }
}

static inline void golden_close_real_fds(void)
{
    close(GOLDEN_V11_RAM_FD);
    for (int i = 0; i < 3; i++)
        close(GOLDEN_V12_EFD0 + i);
}

/* Format 1.3 (tests/data/state-v1.3.bin): the 1.2 VMM plus an iommufd container
 * "i0" (IOAS 1) with device 0000:00:04.0 through its cdev (devid 2, HWPT 3) and one
 * range mapped by file: 0x100000-0x1fffff from the guest RAM memfd at offset 0. */
static inline vfiocpr *golden_v13_cold_start(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr_container) i = NULL;
    g_autoptr(vfiocpr_device) dev = NULL;
    vfiocpr *ctx;

    fake_iommufd_enable(true);
    fake_vfio_add_group(13, "0000:00:04.0", false);
    ctx = golden_cold_start(true);
    if (vfiocpr_container_open_backend(ctx, "i0", VFIOCPR_BACKEND_IOMMUFD, &i, &err) < 0 ||
        vfiocpr_device_attach(i, "0000:00:04.0", &dev, &err) < 0 ||
        vfiocpr_dma_map(i, 0x100000, 0x100000, (void *)0x7f0000800000ull, GOLDEN_V11_RAM_FD, 0,
                        VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE, &err) < 0)
        g_error("golden iommufd: %s", err->message);
    return ctx;
}

#endif

/* Format 1.4 (tests/data/state-v1.4.bin): what the 1.3 VMM above sends over a
 * transfer (fds by index). */
