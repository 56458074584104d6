/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What tests/data/state-v1.bin holds. The blob is frozen: format 1.0 as released.
 * Every later library must keep restoring it (tests/test-state.c). */
#ifndef GOLDEN_V1_H
#define GOLDEN_V1_H

#include <sys/stat.h>
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

#endif
