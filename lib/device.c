/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VFIO device fds: obtained once from the group on a cold start, inherited on every
 * restart. The library never resets a device and never closes its fd unless told to:
 * the last close of a vfio-pci device fd disables bus mastering and resets it.
 */
#include "config.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "private.h"

struct vfiocpr_device {
    gint ref;
    vfiocpr_container *container; /* not a reference: the context owns both */
    char *name;
    char *reg_name;
    int group;    /* type1; -1 for a cdev */
    int fd;
    vfiocpr_fd_kind kind; /* VFIO_DEVICE (from a group) or VFIO_CDEV */
    guint32 devid, hwpt_id; /* iommufd */
    bool preserved;
    bool claimed;
    vfiocpr_irqs *irqs;
    vfiocpr_mig *mig;
};

static vfiocpr_device *device_new(vfiocpr_container *c, int group, const char *name,
                                  vfiocpr_fd_kind kind)
{
    vfiocpr_device *d = g_new0(vfiocpr_device, 1);
    d->ref = 1;
    d->container = c;
    d->name = g_strdup(name);
    d->reg_name = vfiocpr_key_device(name);
    d->group = group;
    d->fd = -1;
    d->kind = kind;
    d->irqs = vfiocpr_irqs_new();
    d->mig = vfiocpr_mig_new();
    return d;
}

VFIOCPR_EXPORT vfiocpr_device *vfiocpr_device_ref(vfiocpr_device *d)
{
    g_return_val_if_fail(d, NULL);
    g_atomic_int_inc(&d->ref);
    return d;
}

VFIOCPR_EXPORT void vfiocpr_device_unref(vfiocpr_device *d)
{
    if (!d || !g_atomic_int_dec_and_test(&d->ref))
        return;
    vfiocpr_irqs_free(d->irqs);
    vfiocpr_mig_free(d->mig);
    g_free(d->name);
    g_free(d->reg_name);
    g_free(d);
}

VFIOCPR_EXPORT int vfiocpr_device_fd(const vfiocpr_device *d)
{
    return d ? d->fd : -EINVAL;
}

VFIOCPR_EXPORT const char *vfiocpr_device_name(const vfiocpr_device *d)
{
    return d ? d->name : NULL;
}

vfiocpr_container *vfiocpr_device_container(const vfiocpr_device *d)
{
    return d->container;
}

vfiocpr_mig *vfiocpr_device_mig(vfiocpr_device *d)
{
    return d->mig;
}

vfiocpr_irqs *vfiocpr_device_irqs(vfiocpr_device *d)
{
    return d->irqs;
}

int vfiocpr_device_group(const vfiocpr_device *d)
{
    return d->group;
}

vfiocpr_fd_kind vfiocpr_device_kind(const vfiocpr_device *d)
{
    return d->kind;
}

void vfiocpr_device_set_iommufd_ids(vfiocpr_device *d, guint32 devid, guint32 hwpt_id)
{
    d->devid = devid;
    d->hwpt_id = hwpt_id;
}

VFIOCPR_EXPORT int vfiocpr_device_iommufd_ids(const vfiocpr_device *d, uint32_t *devid,
                                              uint32_t *hwpt_id)
{
    if (!d)
        return -EINVAL;
    if (d->kind != VFIOCPR_FD_VFIO_CDEV)
        return -ENOTTY;
    if (devid)
        *devid = d->devid;
    if (hwpt_id)
        *hwpt_id = d->hwpt_id;
    return 0;
}

static GHashTable *devices_of(vfiocpr_container *c)
{
    return vfiocpr_vfio_devices(vfiocpr_ctx_vfio(vfiocpr_container_ctx(c)));
}

int vfiocpr_device_preserved(vfiocpr_container *c, int group, const char *name,
                             vfiocpr_fd_kind kind, vfiocpr_device **out, GError **error)
{
    vfiocpr_device *d = device_new(c, group, name, kind);

    if (!vfiocpr_fdreg_has(vfiocpr_ctx_fdreg(vfiocpr_container_ctx(c)), d->reg_name, 0, kind)) {
        vfiocpr_device_unref(d);
        return vfiocpr_fail(error, EBADMSG, "state: vfio: device '%s' has no preserved fd (%s)",
                            name, vfiocpr_fd_kind_to_string(kind));
    }
    d->preserved = true;
    g_hash_table_insert(devices_of(c), d->name, d);
    *out = d;
    return 0;
}

int vfiocpr_device_add(vfiocpr_container *c, int group, const char *name, int fd,
                       vfiocpr_fd_kind kind, vfiocpr_device **out, GError **error)
{
    vfiocpr_device *d = device_new(c, group, name, kind);
    int r = vfiocpr_ctx_may_change(vfiocpr_container_ctx(c), "device open", error);

    if (r == 0)
        r = vfiocpr_fdreg_save(vfiocpr_ctx_fdreg(vfiocpr_container_ctx(c)), d->reg_name, 0, fd,
                               kind, error);

    if (r < 0) {
        vfiocpr_device_unref(d);
        VK(close, fd); /* just obtained, never used: nothing live to lose */
        return r;
    }
    d->fd = fd;
    g_hash_table_insert(devices_of(c), d->name, d);
    *out = vfiocpr_device_ref(d);
    return 0;
}

int vfiocpr_device_claim(vfiocpr_container *c, const char *name, vfiocpr_device **out,
                         GError **error)
{
    vfiocpr_device *d = g_hash_table_lookup(devices_of(c), name);
    int r;

    if (!d)
        return 0;
    if (!d->preserved || d->claimed)
        return vfiocpr_fail(error, EEXIST, "device '%s': already open", name);
    if (d->container != c)
        return vfiocpr_fail(error, EINVAL, "device '%s': open: the preserved device is in "
                            "container '%s', not '%s'", name,
                            vfiocpr_container_name(d->container), vfiocpr_container_name(c));
    r = vfiocpr_fdreg_find(vfiocpr_ctx_fdreg(vfiocpr_container_ctx(c)), d->reg_name, 0, d->kind,
                           error);
    if (r < 0)
        return r;
    d->fd = r;
    d->claimed = true;
    vfiocpr_ctx_step(vfiocpr_container_ctx(c), "restoring");
    *out = vfiocpr_device_ref(d);
    return 1;
}

VFIOCPR_EXPORT int vfiocpr_device_group_id(const char *name, GError **error)
{
    const char *buses[] = { "pci", "mdev" };
    char path[256], link[256];

    if (!name || !*name || strchr(name, '/'))
        return vfiocpr_fail(error, EINVAL, "device '%s': not a PCI address or mdev UUID",
                            name ? name : "(null)");
    for (gsize i = 0; i < G_N_ELEMENTS(buses); i++) {
        const char *base;
        char *end;
        long id;
        int r;

        snprintf(path, sizeof(path), "/sys/bus/%s/devices/%s/iommu_group", buses[i], name);
        r = VK(readlink, path, link, sizeof(link));
        if (r < 0)
            continue;
        base = strrchr(link, '/');
        base = base ? base + 1 : link;
        id = strtol(base, &end, 10);
        if (*base && !*end && id >= 0 && id <= G_MAXINT)
            return (int)id;
        return vfiocpr_fail(error, EINVAL, "device '%s': odd iommu_group link '%s'", name, link);
    }
    return vfiocpr_fail(error, ENODEV, "device '%s': no iommu_group in sysfs (not a PCI or "
                        "mdev device, or no IOMMU)", name);
}

VFIOCPR_EXPORT int vfiocpr_device_open(vfiocpr_container *c, int group_id, const char *name,
                                       vfiocpr_device **out, GError **error)
{
    vfiocpr_fdreg *reg;
    vfiocpr_device *d;
    bool attached = false;
    int gfd, fd;

    if (!c || !name || !*name || !out || vfiocpr_container_fd(c) < 0)
        return vfiocpr_fail(error, EINVAL, "device '%s': open: bad arguments", name ? name : "?");
    if (vfiocpr_container_backend(c) != VFIOCPR_BACKEND_TYPE1)
        return vfiocpr_fail(error, EINVAL, "device '%s': open by group: container '%s' is %s "
                            "(use vfiocpr_device_attach)", name, vfiocpr_container_name(c),
                            vfiocpr_backend_to_string(vfiocpr_container_backend(c)));
    reg = vfiocpr_ctx_fdreg(vfiocpr_container_ctx(c));
    d = g_hash_table_lookup(devices_of(c), name);
    if (d && d->preserved && !d->claimed && d->container == c && d->group != group_id)
        return vfiocpr_fail(error, EINVAL, "device '%s': open: the preserved device is in "
                            "container '%s' group %d, not '%s' group %d", name,
                            vfiocpr_container_name(d->container), d->group,
                            vfiocpr_container_name(c), group_id);
    if (d) {
        int r = vfiocpr_device_claim(c, name, out, error);
        return r < 0 ? r : 0;
    }
    if (!vfiocpr_container_has_group(c, group_id, &attached) || !attached)
        return vfiocpr_fail(error, ENOENT, "device '%s': open: group %d is not attached to "
                            "container '%s' (vfiocpr_container_add_group first)", name, group_id,
                            vfiocpr_container_name(c));
    if (vfiocpr_container_pending(c))
        return vfiocpr_fail(error, ENOENT, "device '%s': not in the preserved state of container "
                            "'%s': new devices can be opened once every preserved DMA range is "
                            "re-mapped", name, vfiocpr_container_name(c));
    if ((gfd = vfiocpr_ctx_may_change(vfiocpr_container_ctx(c), "device open", error)) < 0)
        return gfd;
    gfd = vfiocpr_fdreg_find(reg, VFIOCPR_KEY_GROUP, (guint64)group_id, VFIOCPR_FD_VFIO_GROUP,
                             error);
    if (gfd < 0)
        return gfd;
    fd = VK(ioctl, gfd, VFIO_GROUP_GET_DEVICE_FD, (void *)name);
    if (fd < 0)
        return vfiocpr_fail(error, fd, "device '%s': VFIO_GROUP_GET_DEVICE_FD on group %d", name,
                            group_id);
    return vfiocpr_device_add(c, group_id, name, fd, VFIOCPR_FD_VFIO_DEVICE, out, error);
}

VFIOCPR_EXPORT int vfiocpr_device_map_region(vfiocpr_device *d, unsigned int index,
                                             void **addr, uint64_t *size, GError **error)
{
    struct vfio_region_info info = { .argsz = sizeof(info), .index = index };
    int r;

    if (!d || d->fd < 0 || !addr)
        return vfiocpr_fail(error, EINVAL, "device: map region %u: bad arguments", index);
    r = VK(ioctl, d->fd, VFIO_DEVICE_GET_REGION_INFO, &info);
    if (r < 0)
        return vfiocpr_fail(error, r, "device '%s': region %u: VFIO_DEVICE_GET_REGION_INFO",
                            d->name, index);
    if (!(info.flags & VFIO_REGION_INFO_FLAG_MMAP) || !info.size)
        return vfiocpr_fail(error, ENOTSUP, "device '%s': region %u cannot be mmapped", d->name,
                            index);
    r = VK(mmap, d->fd, info.size,
           (info.flags & VFIO_REGION_INFO_FLAG_READ ? PROT_READ : 0) |
               (info.flags & VFIO_REGION_INFO_FLAG_WRITE ? PROT_WRITE : 0),
           (off_t)info.offset, addr);
    if (r < 0)
        return vfiocpr_fail(error, r, "device '%s': region %u: mmap of %llu bytes", d->name,
                            index, (unsigned long long)info.size);
    if (size)
        *size = info.size;
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_device_close(vfiocpr_device *d, GError **error)
{
    vfiocpr *ctx;

    if (!d || d->fd < 0)
        return vfiocpr_fail(error, EINVAL, "device: close: not open");
    ctx = vfiocpr_container_ctx(d->container);
    {
        int r = vfiocpr_ctx_may_change(ctx, "device close", error);
        if (r < 0)
            return r;
    }
    vfiocpr_fdreg_forget(vfiocpr_ctx_fdreg(ctx), d->reg_name, 0);
    VK(close, d->fd);
    d->fd = -1;
    g_hash_table_remove(vfiocpr_vfio_devices(vfiocpr_ctx_vfio(ctx)), d->name);
    return 0;
}
