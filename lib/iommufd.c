/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The iommufd backend: /dev/iommu with one IOAS per container, devices through
 * their vfio cdev. Guest RAM is mapped by file (IOMMU_IOAS_MAP_FILE of the memfd),
 * so the mappings do not depend on any process's address space: nothing is
 * invalidated before exec and device DMA never blocks. What does follow the
 * process is the pinned-page accounting, which the new image takes over with one
 * IOMMU_IOAS_CHANGE_PROCESS (all or nothing: on failure nothing changed and it can
 * be retried). The new image issues no BIND/ATTACH/ALLOC: the ids are in the state.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "private.h"
#include "vfio-compat.h"

typedef struct {
    guint32 ioas_id;
    /* restart: the pins are still charged to the previous image until
     * CHANGE_PROCESS moves them here */
    bool change_pending;
    /* CHANGE_PROCESS is known to work here: probed when the IOAS was new and empty
     * (the kernel walks every mapping even for a no-op, so not in the blackout), or
     * done by this image's finish */
    int change_supported; /* 1 yes, 0 no (ENOTTY), -errno: the probe failed */
} iommufd;

static iommufd *I(const vfiocpr_container *c)
{
    return c->priv;
}

static bool is_iommufd(const vfiocpr_container *c)
{
    return c && c->ops == &vfiocpr_iommufd_ops;
}

VFIOCPR_EXPORT int vfiocpr_container_ioas_id(const vfiocpr_container *c)
{
    if (!c)
        return -EINVAL;
    return is_iommufd(c) ? (int)I(c)->ioas_id : -ENOTTY;
}

static int change_process(vfiocpr_container *c)
{
    struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
    return VK(ioctl, c->fd, IOMMU_IOAS_CHANGE_PROCESS, &cp);
}

static int io_open(vfiocpr_container *c, int fd, GError **error)
{
    struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
    int r;

    c->priv = g_new0(iommufd, 1);
    c->fd = fd >= 0 ? fd : VK(open, "/dev/iommu", O_RDWR);
    if (c->fd < 0) {
        r = c->fd;
        c->fd = -1;
        return vfiocpr_fail(error, r, "container '%s': open /dev/iommu%s", c->name,
                            r == -ENOENT ? " (a kernel without CONFIG_IOMMUFD)" : "");
    }
    r = VK(ioctl, c->fd, IOMMU_IOAS_ALLOC, &alloc);
    if (r < 0)
        return vfiocpr_fail(error, r, "container '%s': IOMMU_IOAS_ALLOC", c->name);
    I(c)->ioas_id = alloc.out_ioas_id;
    r = change_process(c);
    I(c)->change_supported = r == 0 ? 1 : r == -ENOTTY ? 0 : r;
    return 0;
}

/* /dev/vfio/devices/vfioN of a PCI device or mdev, from sysfs DEVICE/vfio-dev/. */
static int cdev_path(const char *name, char *path, size_t len, GError **error)
{
    const char *buses[] = { "pci", "mdev" };
    char dir[256], entry[64];

    if (!name || !*name || strchr(name, '/'))
        return vfiocpr_fail(error, EINVAL, "device '%s': not a PCI address or mdev UUID",
                            name ? name : "(null)");
    for (gsize i = 0; i < G_N_ELEMENTS(buses); i++) {
        snprintf(dir, sizeof(dir), "/sys/bus/%s/devices/%s/vfio-dev", buses[i], name);
        if (VK(dir_entry, dir, "vfio", entry, sizeof(entry)) >= 0) {
            snprintf(path, len, "/dev/vfio/devices/%s", entry);
            return 0;
        }
    }
    return vfiocpr_fail(error, ENODEV, "device '%s': no vfio cdev in sysfs (no DEVICE/vfio-dev/: "
                        "not bound to a vfio driver, or a kernel without "
                        "CONFIG_VFIO_DEVICE_CDEV)", name);
}

static int io_attach(vfiocpr_container *c, const char *name, vfiocpr_device **out,
                     GError **error)
{
    struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = c->fd };
    struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = I(c)->ioas_id };
    vfiocpr_device *d;
    char path[128];
    int fd, r;

    r = vfiocpr_device_claim(c, name, out, error);
    if (r != 0)
        return r < 0 ? r : 0;
    if ((r = vfiocpr_ctx_may_change(c->ctx, "device attach", error)) < 0)
        return r;
    r = cdev_path(name, path, sizeof(path), error);
    if (r < 0)
        return r;
    fd = VK(open, path, O_RDWR);
    if (fd < 0)
        return vfiocpr_fail(error, fd, "device '%s': open %s", name, path);
    r = VK(ioctl, fd, VFIO_DEVICE_BIND_IOMMUFD, &bind);
    if (r < 0) {
        VK(close, fd);
        return vfiocpr_fail(error, r, "device '%s': VFIO_DEVICE_BIND_IOMMUFD of %s to container "
                            "'%s'%s", name, path, c->name,
                            r == -EBUSY || r == -EINVAL ? " (already bound elsewhere?)" : "");
    }
    r = VK(ioctl, fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
    if (r < 0) {
        VK(close, fd);
        return vfiocpr_fail(error, r, "device '%s': VFIO_DEVICE_ATTACH_IOMMUFD_PT to IOAS %u of "
                            "container '%s'", name, I(c)->ioas_id, c->name);
    }
    r = vfiocpr_device_add(c, -1, name, fd, VFIOCPR_FD_VFIO_CDEV, &d, error);
    if (r < 0)
        return r;
    vfiocpr_device_set_iommufd_ids(d, bind.out_devid, at.pt_id);
    *out = d;
    return 0;
}

/* ------------------------------------------------------------------ DMA */

static guint32 map_flags(const vfiocpr_mapping *m)
{
    return IOMMU_IOAS_MAP_FIXED_IOVA | (m->flags & VFIOCPR_DMA_READ ? IOMMU_IOAS_MAP_READABLE : 0) |
           (m->flags & VFIOCPR_DMA_WRITE ? IOMMU_IOAS_MAP_WRITEABLE : 0);
}

static int io_map(vfiocpr_container *c, vfiocpr_mapping *m, GError **error)
{
    int r;

    if (m->memfd >= 0) {
        struct iommu_ioas_map_file mf = { .size = sizeof(mf), .flags = map_flags(m),
                                          .ioas_id = I(c)->ioas_id, .fd = m->memfd,
                                          .start = m->offset, .length = m->size,
                                          .iova = m->iova };
        r = VK(ioctl, c->fd, IOMMU_IOAS_MAP_FILE, &mf);
        if (r < 0)
            return vfiocpr_fail(error, r, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                                ": IOMMU_IOAS_MAP_FILE of memfd %d at offset 0x%" PRIx64 "%s",
                                c->name, m->iova, m->iova + m->size - 1, m->memfd, m->offset,
                                r == -ENOMEM ? " (check RLIMIT_MEMLOCK or CAP_IPC_LOCK)"
                                : r == -ENOTTY ? " (the kernel predates 6.14)" : "");
    } else {
        /* by user address: works, but cannot cross an upgrade (exec refuses it) */
        struct iommu_ioas_map map = { .size = sizeof(map), .flags = map_flags(m),
                                      .ioas_id = I(c)->ioas_id,
                                      .user_va = (guint64)(uintptr_t)m->vaddr,
                                      .length = m->size, .iova = m->iova };
        r = VK(ioctl, c->fd, IOMMU_IOAS_MAP, &map);
        if (r < 0)
            return vfiocpr_fail(error, r, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                                ": IOMMU_IOAS_MAP%s", c->name, m->iova, m->iova + m->size - 1,
                                r == -ENOMEM ? " (check RLIMIT_MEMLOCK or CAP_IPC_LOCK)" : "");
    }
    return 0;
}

/* The mapping never stopped: the file is what the IOMMU maps, not an address. */
static int io_remap(vfiocpr_container *c G_GNUC_UNUSED, vfiocpr_mapping *m G_GNUC_UNUSED,
                    void *vaddr G_GNUC_UNUSED, GError **error G_GNUC_UNUSED)
{
    return 0;
}

static int io_unmap(vfiocpr_container *c, vfiocpr_mapping *m, GError **error)
{
    struct iommu_ioas_unmap un = { .size = sizeof(un), .ioas_id = I(c)->ioas_id,
                                   .iova = m->iova, .length = m->size };
    int r = VK(ioctl, c->fd, IOMMU_IOAS_UNMAP, &un);

    if (r < 0)
        return vfiocpr_fail(error, r, "container '%s': dma unmap 0x%" PRIx64 "-0x%" PRIx64
                            ": IOMMU_IOAS_UNMAP", c->name, m->iova, m->iova + m->size - 1);
    return 0;
}

static int io_close(vfiocpr_container *c G_GNUC_UNUSED, GError **error G_GNUC_UNUSED)
{
    return 0; /* closing the iommufd fd destroys the IOAS and its mappings */
}

/* ------------------------------------------------------------------ exec phases */

static int io_check(vfiocpr_container *c, GError **error)
{
    int r;

    if (I(c)->change_pending)
        return vfiocpr_fail(error, EBUSY, "container '%s': the pinned memory is still charged "
                            "to the previous image: vfiocpr_finish() before the next exec",
                            c->name);
    /* Probed before there was anything to walk (see change_supported); that every
     * mapping is by file the caller checked from its own records. */
    r = I(c)->change_supported;
    if (r == 0)
        return vfiocpr_fail(error, ENOTSUP, "container '%s': the kernel has no "
                            "IOMMU_IOAS_CHANGE_PROCESS (Linux 6.14+): the new image could not "
                            "take the pinned memory over", c->name);
    if (r < 0)
        return vfiocpr_fail(error, r, "container '%s': probing IOMMU_IOAS_CHANGE_PROCESS "
                            "when the IOAS was allocated", c->name);
    return 0;
}

static int io_prepare(vfiocpr_container *c G_GNUC_UNUSED, GError **error G_GNUC_UNUSED)
{
    return 0; /* nothing to invalidate: DMA goes on through the exec */
}

/* After a transfer the new process may have taken the pins already: take them back
 * (a no-op when they never left, as after a failed execve). */
static void io_undo(vfiocpr_container *c)
{
    int r = change_process(c);
    if (r < 0)
        g_warning("container '%s': rollback: IOMMU_IOAS_CHANGE_PROCESS: %s; the pinned "
                  "memory stays charged to the other process", c->name, g_strerror(-r));
}

static int io_finish(vfiocpr_container *c, GError **error)
{
    int r;

    if (!I(c)->change_pending)
        return 0;
    r = change_process(c);
    if (r < 0)
        return vfiocpr_fail(error, r, "finish: container '%s': IOMMU_IOAS_CHANGE_PROCESS%s; "
                            "nothing changed, the pins stay charged to the previous image and "
                            "vfiocpr_finish() can be called again", c->name,
                            r == -ENOMEM ? " (the pinned memory is charged to this process now: "
                                           "raise RLIMIT_MEMLOCK to twice the pinned bytes, or "
                                           "grant CAP_IPC_LOCK)" : "");
    I(c)->change_pending = false;
    I(c)->change_supported = 1;
    return 0;
}

/* ------------------------------------------------------------------ state
 * Sections of format 1.3: iommufd-containers (name, IOAS id; the index of
 * iommufd-dma records), iommufd-devices (device, container, devid, HWPT id). */

static void io_serialize(vfiocpr *ctx, GPtrArray *list, GVariantDict *d)
{
    GVariantBuilder cs, devs;
    GHashTableIter it;
    gpointer k, val;

    g_variant_builder_init(&cs, VFIOCPR_SECTION_TYPE(IOMMUFD_CONTAINERS));
    g_variant_builder_init(&devs, VFIOCPR_SECTION_TYPE(IOMMUFD_DEVICES));
    for (guint i = 0; i < list->len; i++) {
        vfiocpr_container *c = list->pdata[i];
        g_variant_builder_add(&cs, "(su)", c->name, I(c)->ioas_id);
    }
    g_hash_table_iter_init(&it, vfiocpr_vfio_devices(vfiocpr_ctx_vfio(ctx)));
    while (g_hash_table_iter_next(&it, &k, &val)) {
        guint32 devid = 0, hwpt = 0;
        if (!is_iommufd(vfiocpr_device_container(val)))
            continue;
        vfiocpr_device_iommufd_ids(val, &devid, &hwpt);
        g_variant_builder_add(&devs, "(ssuu)", (const char *)k,
                              vfiocpr_device_container(val)->name, devid, hwpt);
    }
    vfiocpr_section_insert(d, VFIOCPR_SEC_IOMMUFD_CONTAINERS, g_variant_builder_end(&cs));
    vfiocpr_section_insert(d, VFIOCPR_SEC_IOMMUFD_DEVICES, g_variant_builder_end(&devs));
}

static int io_deserialize(vfiocpr *ctx, GVariant *payload, GPtrArray *byidx, GError **error)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    GHashTable *containers = vfiocpr_vfio_containers(v);
    g_autoptr(GVariant) vc = NULL, vd = NULL;
    GVariantIter it;
    const char *cname, *dname;
    guint32 ioas, devid, hwpt;
    bool dma;

    vc = vfiocpr_section_lookup(payload, VFIOCPR_SEC_IOMMUFD_CONTAINERS);
    vd = vfiocpr_section_lookup(payload, VFIOCPR_SEC_IOMMUFD_DEVICES);
    dma = vfiocpr_section_present(payload, VFIOCPR_SEC_IOMMUFD_DMA);
    if (!vc && !vd && !dma)
        return 0;
    if (!vc || !vd || !dma)
        return vfiocpr_fail(error, EBADMSG, "state: iommufd: a section is missing or of the "
                            "wrong type");
    g_variant_iter_init(&it, vc);
    while (g_variant_iter_next(&it, "(&su)", &cname, &ioas)) {
        vfiocpr_container *c;
        if (!*cname || g_hash_table_contains(containers, cname) || !ioas)
            return vfiocpr_fail(error, EBADMSG, "state: iommufd: container '%s': empty or "
                                "duplicate name, or IOAS id 0", cname);
        c = vfiocpr_container_new(ctx, cname, &vfiocpr_iommufd_ops, true);
        c->priv = g_new0(iommufd, 1);
        I(c)->ioas_id = ioas;
        I(c)->change_pending = true;
        g_ptr_array_add(byidx, c);
    }
    g_variant_iter_init(&it, vd);
    while (g_variant_iter_next(&it, "(&s&suu)", &dname, &cname, &devid, &hwpt)) {
        vfiocpr_container *c = g_hash_table_lookup(containers, cname);
        vfiocpr_device *dev;
        int r;
        if (!is_iommufd(c) || !*dname || g_hash_table_contains(vfiocpr_vfio_devices(v), dname))
            return vfiocpr_fail(error, EBADMSG, "state: iommufd: device '%s': unknown "
                                "container or duplicate", dname);
        r = vfiocpr_device_preserved(c, -1, dname, VFIOCPR_FD_VFIO_CDEV, &dev, error);
        if (r < 0)
            return r;
        vfiocpr_device_set_iommufd_ids(dev, devid, hwpt);
    }
    return 1;
}

static void io_describe(vfiocpr_container *c, GVariantBuilder *out)
{
    vfiocpr_kv_u(out, "ioas-id", I(c)->ioas_id);
    vfiocpr_kv_b(out, "pins-pending", I(c)->change_pending);
}

static const vfiocpr_decl io_uses[] = {
    VFIOCPR_OP(open, 0),
    VFIOCPR_OP(close, 0),
    VFIOCPR_OP(dir_entry, 0),
    VFIOCPR_IOCTL(IOMMU_IOAS_ALLOC, 0),
    VFIOCPR_IOCTL(IOMMU_IOAS_MAP, 0),
    VFIOCPR_IOCTL(IOMMU_IOAS_MAP_FILE, 0),
    VFIOCPR_IOCTL(IOMMU_IOAS_UNMAP, 0),
    VFIOCPR_IOCTL(IOMMU_IOAS_CHANGE_PROCESS, 0),
    VFIOCPR_IOCTL(VFIO_DEVICE_BIND_IOMMUFD, 0),
    VFIOCPR_IOCTL(VFIO_DEVICE_ATTACH_IOMMUFD_PT, 0),
    VFIOCPR_DECL_END,
};

const vfiocpr_backend_ops vfiocpr_iommufd_ops = {
    .id = VFIOCPR_BACKEND_IOMMUFD,
    .name = "iommufd",
    .feature = VFIOCPR_FEATURE_IOMMUFD,
    .reg_prefix = VFIOCPR_KEY_IOMMUFD_CONTAINER_PREFIX,
    .fd_kind = VFIOCPR_FD_IOMMUFD,
    .dma_section = VFIOCPR_SEC_IOMMUFD_DMA,
    .uses = io_uses,
    .open = io_open,
    .free_priv = g_free,
    .attach = io_attach,
    .map = io_map,
    .remap = io_remap,
    .unmap = io_unmap,
    .check = io_check,
    .prepare = io_prepare,
    .undo = io_undo,
    .finish = io_finish,
    .close = io_close,
    .serialize = io_serialize,
    .deserialize = io_deserialize,
    .describe = io_describe,
};
