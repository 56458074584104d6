/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake kernel: what names the device behind a VFIO device fd. When the kernel
 * is said to have it (Linux 6.18+), /proc/self/fdinfo/N of a device fd (a group's
 * or a cdev) has the vfio-device-syspath line; its config space (the device's PCI
 * model, fake-kernel-type1.c) can be changed under a live fd, as if another device
 * answered. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <linux/pci_regs.h>
#include <string.h>

#include "fake-kernel-private.h"

static bool fdinfo_syspath; /* the kernel prints vfio-device-syspath */

/* /proc/self/fdinfo/N of a fake device fd: what the kernel prints. */
int fk_devid_fdinfo(int fd, char *buf, size_t len)
{
    const fk_obj *o = fk_obj_get(fd, FK_DEVICE);

    if (!o)
        return FK_NOT_MINE;
    if (fdinfo_syspath)
        return g_snprintf(buf, len, "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1039\n"
                          "vfio-device-syspath: /sys/devices/%s%s\n",
                          o->group->mdev ? "virtual/mtty/mtty/" : "pci0000:00/", o->group->device);
    return g_snprintf(buf, len, "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1039\n");
}

void fk_devid_reset(void)
{
    fdinfo_syspath = false;
}

/* ---- test API (fake-kernel.h) ---- */
void fake_vfio_set_fdinfo_syspath(bool on)
{
    fdinfo_syspath = on;
}

static void put16(guint8 *p, guint16 v)
{
    p[0] = (guint8)v;
    p[1] = (guint8)(v >> 8);
}

void fake_vfio_set_model(int group, const fk_pci_model *m)
{
    fk_group *g = g_hash_table_lookup(fk.groups, GINT_TO_POINTER(group));

    g_assert_nonnull(g);
    if (m->cfg_size != g->model->cfg_size) {
        g->config = g_realloc(g->config, m->cfg_size);
        if (m->cfg_size > g->model->cfg_size)
            memset(g->config + g->model->cfg_size, 0, m->cfg_size - g->model->cfg_size);
    }
    g->model = m;
    /* the identity bytes only: what the device was told (command register) stays */
    put16(g->config + PCI_VENDOR_ID, m->vendor);
    put16(g->config + PCI_DEVICE_ID, m->device);
    g->config[PCI_REVISION_ID] = m->revision;
    g->config[PCI_CLASS_PROG] = (guint8)m->class_code;
    put16(g->config + PCI_CLASS_DEVICE, (guint16)(m->class_code >> 8));
    put16(g->config + PCI_SUBSYSTEM_VENDOR_ID, m->subsys_vendor);
    put16(g->config + PCI_SUBSYSTEM_ID, m->subsys_device);
}
