/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake kernel: what tells one VFIO device fd from another. Each declared
 * device has PCI config space (vendor, device, class, revision, subsystem ids;
 * defaults: edu, 1234:11e8 class 00ff00) and a BAR0 size, served through the
 * config region (VFIO_PCI_CONFIG_REGION_INDEX) of its device fd; and, when the
 * kernel is said to have it (Linux 6.18+), /proc/self/fdinfo/N of a device fd has
 * the vfio-device-syspath line. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-kernel-private.h"

#define FK_CONFIG_OFFSET ((guint64)VFIO_PCI_CONFIG_REGION_INDEX << 40)
#define FK_CONFIG_SIZE 256

typedef struct {
    guint16 vendor, device, subvendor, subdevice;
    guint32 class_rev;
    guint64 bar0;
} fk_devid;

static GHashTable *ids;   /* group id -> fk_devid* */
static bool fdinfo_syspath; /* the kernel prints vfio-device-syspath */

static const fk_devid default_id = { 0x1234, 0x11e8, 0x1af4, 0x1100, 0x00ff0010, 0x1000 };

static const fk_devid *devid_of(const fk_group *g)
{
    const fk_devid *d = ids ? g_hash_table_lookup(ids, GINT_TO_POINTER(g->id)) : NULL;
    return d ? d : &default_id;
}

guint64 fk_devid_region_size(const fk_obj *o, guint32 index)
{
    if (index == VFIO_PCI_CONFIG_REGION_INDEX)
        return FK_CONFIG_SIZE;
    return index == 0 ? devid_of(o->group)->bar0 : 0;
}

/* pread on a device fd: config space; every other region reads as nothing. */
ssize_t fk_devid_pread(const fk_obj *o, void *buf, size_t len, off_t off)
{
    const fk_devid *d = devid_of(o->group);
    guint8 cfg[FK_CONFIG_SIZE] = { 0 };
    guint64 at;

    if ((guint64)off < FK_CONFIG_OFFSET || (guint64)off >= FK_CONFIG_OFFSET + FK_CONFIG_SIZE)
        return -EINVAL;
    at = (guint64)off - FK_CONFIG_OFFSET;
    cfg[0] = (guint8)d->vendor;
    cfg[1] = (guint8)(d->vendor >> 8);
    cfg[2] = (guint8)d->device;
    cfg[3] = (guint8)(d->device >> 8);
    for (int i = 0; i < 4; i++)
        cfg[8 + i] = (guint8)(d->class_rev >> (8 * i));
    cfg[0x2c] = (guint8)d->subvendor;
    cfg[0x2d] = (guint8)(d->subvendor >> 8);
    cfg[0x2e] = (guint8)d->subdevice;
    cfg[0x2f] = (guint8)(d->subdevice >> 8);
    len = MIN(len, FK_CONFIG_SIZE - at);
    memcpy(buf, cfg + at, len);
    return (ssize_t)len;
}

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
    if (ids)
        g_hash_table_destroy(ids);
    ids = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    fdinfo_syspath = false;
}

/* ---- test API (fake-kernel.h) ---- */
void fake_vfio_set_device_id(int group, guint16 vendor, guint16 device, guint32 class_rev,
                             guint64 bar0_size)
{
    fk_devid *d = g_new(fk_devid, 1);
    *d = default_id;
    d->vendor = vendor;
    d->device = device;
    d->class_rev = class_rev;
    d->bar0 = bar0_size;
    g_hash_table_insert(ids, GINT_TO_POINTER(group), d);
}

void fake_vfio_set_fdinfo_syspath(bool on)
{
    fdinfo_syspath = on;
}
