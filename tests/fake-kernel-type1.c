/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake kernel's VFIO type1 model: /dev/vfio/vfio containers with DMA mappings
 * (VADDR updates included), single-open groups, and the device fd with its regions
 * and IRQs. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "fake-kernel-private.h"

static void put16(guint8 *p, guint16 v);

void fk_free_group(gpointer p)
{
    fk_group *g = p;
    g_free(g->device);
    g_free(g->config);
    g_free(g);
}

static bool container_has_invalid(fk_obj *c)
{
    for (guint i = 0; i < c->dmas->len; i++)
        if (g_array_index(c->dmas, fk_dma, i).invalid)
            return true;
    return false;
}

static bool container_has_mdev(int cfd)
{
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, fk.groups);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((fk_group *)v)->container == cfd && ((fk_group *)v)->mdev)
            return true;
    return false;
}

int fk_container_ioctl(int fd, fk_obj *c, unsigned long request, void *arg)
{
    switch (request) {
    case VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
    case VFIO_CHECK_EXTENSION: {
        uintptr_t ext = (uintptr_t)arg;
        if (ext == VFIO_TYPE1v2_IOMMU)
            return 1;
        if (ext == VFIO_UPDATE_VADDR || ext == VFIO_UNMAP_ALL)
            return c->iommu_set && !container_has_mdev(fd);
        return 0;
    }
    case VFIO_SET_IOMMU: {
        GHashTableIter it;
        gpointer v;
        bool any = false;
        if ((uintptr_t)arg != VFIO_TYPE1v2_IOMMU)
            return -EINVAL;
        g_hash_table_iter_init(&it, fk.groups);
        while (g_hash_table_iter_next(&it, NULL, &v))
            any |= ((fk_group *)v)->container == fd;
        if (!any || c->iommu_set)
            return -EINVAL;
        c->iommu_set = true;
        return 0;
    }
    case VFIO_IOMMU_MAP_DMA: {
        struct vfio_iommu_type1_dma_map *m = arg;
        if (!c->iommu_set || m->argsz < sizeof(*m))
            return -EINVAL;
        if (m->flags & VFIO_DMA_MAP_FLAG_VADDR) {
            /* exact iova and size, READ/WRITE clear, range invalid */
            guint idx = GPOINTER_TO_UINT(g_hash_table_lookup(c->by_iova, &m->iova));
            fk_dma *d = idx ? &g_array_index(c->dmas, fk_dma, idx - 1) : NULL;
            if (m->flags != VFIO_DMA_MAP_FLAG_VADDR || !m->vaddr)
                return -EINVAL;
            if (!d || d->size != m->size || !d->invalid)
                return -EINVAL;
            if (CUR->locked + d->size > CUR->limit)
                return -ENOMEM;
            CUR->locked += d->size;
            d->vaddr = m->vaddr;
            d->invalid = false;
            return 0;
        }
        if (!m->size || !m->vaddr || m->iova + m->size < m->iova)
            return -EINVAL;
        for (guint i = 0; i < c->dmas->len; i++) {
            fk_dma *d = &g_array_index(c->dmas, fk_dma, i);
            if (m->iova < d->iova + d->size && d->iova < m->iova + m->size)
                return -EEXIST;
        }
        if (CUR->locked + m->size > CUR->limit)
            return -ENOMEM;
        CUR->locked += m->size;
        g_array_append_val(c->dmas, ((fk_dma){ m->iova, m->size, m->vaddr, false }));
        g_hash_table_insert(c->by_iova, g_memdup2(&m->iova, sizeof(guint64)),
                            GUINT_TO_POINTER(c->dmas->len));
        return 0;
    }
    case VFIO_IOMMU_UNMAP_DMA: {
        struct vfio_iommu_type1_dma_unmap *u = arg;
        if (u->flags == VFIO_DMA_UNMAP_FLAG_VADDR) {
            /* one whole, valid range: invalid ones are refused as by the kernel */
            guint idx = GPOINTER_TO_UINT(g_hash_table_lookup(c->by_iova, &u->iova));
            fk_dma *d = idx ? &g_array_index(c->dmas, fk_dma, idx - 1) : NULL;
            if (!d || d->size != u->size || d->invalid)
                return -EINVAL;
            d->invalid = true;
            return 0;
        }
        if (u->flags & VFIO_DMA_UNMAP_FLAG_VADDR) {
            if (!(u->flags & VFIO_DMA_UNMAP_FLAG_ALL) || u->iova || u->size)
                return -EINVAL; /* the model only knows the forms the library uses */
            if (container_has_invalid(c))
                return -EINVAL;
            for (guint i = 0; i < c->dmas->len; i++)
                g_array_index(c->dmas, fk_dma, i).invalid = true;
            return 0;
        }
        for (guint i = c->dmas->len; i-- > 0;) {
            fk_dma *d = &g_array_index(c->dmas, fk_dma, i);
            bool all = u->flags & VFIO_DMA_UNMAP_FLAG_ALL;
            if (all || (d->iova >= u->iova && d->iova + d->size <= u->iova + u->size)) {
                CUR->locked -= d->invalid ? 0 : d->size;
                g_hash_table_remove(c->by_iova, &d->iova);
                g_array_remove_index_fast(c->dmas, i);
                if (i < c->dmas->len) /* the last one moved into slot i */
                    g_hash_table_insert(c->by_iova,
                                        g_memdup2(&g_array_index(c->dmas, fk_dma, i).iova,
                                                  sizeof(guint64)),
                                        GUINT_TO_POINTER(i + 1));
            } else if (d->iova < u->iova + u->size && u->iova < d->iova + d->size) {
                return -EINVAL; /* would split a mapping */
            }
        }
        return 0;
    }
    }
    return -ENOTTY;
}

int fk_group_ioctl(fk_obj *o, unsigned long request, void *arg)
{
    fk_group *g = o->group;

    switch (request) {
    case VFIO_GROUP_GET_STATUS: {
        struct vfio_group_status *st = arg;
        st->flags = VFIO_GROUP_FLAGS_VIABLE | (g->container >= 0 ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0);
        return 0;
    }
    case VFIO_GROUP_SET_CONTAINER: {
        int cfd = *(int *)arg;
        fk_obj *c = fk_obj_get(cfd, FK_CONTAINER);
        if (!c)
            return -EBADF;
        if (g->container >= 0)
            return -EINVAL;
        if (container_has_invalid(c))
            return -EBUSY;
        g->container = cfd;
        return 0;
    }
    case VFIO_GROUP_UNSET_CONTAINER:
        if (g->container < 0)
            return -EINVAL;
        g->container = -1;
        return 0;
    case VFIO_GROUP_GET_DEVICE_FD: {
        fk_obj *c = g->container >= 0 ? fk_obj_get(g->container, FK_CONTAINER) : NULL;
        if (!c || !c->iommu_set)
            return -EINVAL;
        if (strcmp((const char *)arg, g->device) != 0)
            return -ENODEV;
        return fk_new_object("anon_inode:[vfio-device]", 0600, 0, FK_DEVICE, g);
    }
    }
    return -ENOTTY;
}

/* ---- the VFIO device fd (a group's, or a bound cdev's: fake-kernel-iommufd.c) ---- */
int fk_device_ioctl(fk_obj *o, unsigned long request, void *arg)
{
    switch (request) {
    case VFIO_DEVICE_GET_INFO: {
        struct vfio_device_info *i = arg;
        if (i->argsz < offsetof(struct vfio_device_info, num_irqs) + sizeof(i->num_irqs))
            return -EINVAL;
        i->flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
        i->num_regions = VFIO_PCI_NUM_REGIONS;
        i->num_irqs = VFIO_PCI_NUM_IRQS;
        return 0;
    }
    case VFIO_DEVICE_GET_REGION_INFO: {
        struct vfio_region_info *r = arg;
        if (r->argsz < offsetof(struct vfio_region_info, offset) + sizeof(r->offset) ||
            r->index >= VFIO_PCI_NUM_REGIONS)
            return -EINVAL;
        r->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                   (r->index == VFIO_PCI_BAR0_REGION_INDEX ? VFIO_REGION_INFO_FLAG_MMAP : 0);
        r->size = r->index == VFIO_PCI_BAR0_REGION_INDEX ? FK_BAR0_SIZE
                  : r->index == VFIO_PCI_CONFIG_REGION_INDEX ? o->group->model->cfg_size
                                                             : 0;
        r->offset = (guint64)r->index << FK_REGION_SHIFT;
        return 0;
    }
    case VFIO_DEVICE_GET_IRQ_INFO: {
        struct vfio_irq_info *i = arg;
        if (i->index >= FK_N_IRQ)
            return -EINVAL;
        i->count = fk.irq_count[i->index];
        i->flags = VFIO_IRQ_INFO_EVENTFD |
                   (i->index == VFIO_PCI_INTX_IRQ_INDEX ? VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED : 0) |
                   (i->index == VFIO_PCI_MSI_IRQ_INDEX ||
                    (i->index == VFIO_PCI_MSIX_IRQ_INDEX && fk.msix_noresize) ? VFIO_IRQ_INFO_NORESIZE : 0);
        return 0;
    }
    case VFIO_DEVICE_SET_IRQS: {
        struct vfio_irq_set *s = arg;
        guint32 action = s->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        if (s->index >= FK_N_IRQ || (guint64)s->start + s->count > fk.irq_count[s->index])
            return -EINVAL;
        if (action == VFIO_IRQ_SET_ACTION_UNMASK && (s->flags & VFIO_IRQ_SET_DATA_EVENTFD)) {
            memcpy(&o->unmask_fd, s->data, sizeof(int));
            return 0;
        }
        if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
            return 0;
        if ((s->flags & VFIO_IRQ_SET_DATA_NONE) && !s->count) {
            o->live[s->index] = 0;
            return 0;
        }
        if (s->start < o->live[s->index])
            fk.irq_rerequests++; /* the real kernel frees and re-requests them */
        o->live[s->index] = MAX(o->live[s->index], s->start + s->count);
        return 0;
    }
    case VFIO_DEVICE_RESET:
        o->mig_state = VFIO_DEVICE_STATE_RUNNING;
        put16(o->group->config + PCI_COMMAND, o->group->model->command);
        return 0;
    case VFIO_DEVICE_FEATURE:
        return fk_mig_feature(o, arg);
    }
    return -ENOTTY;
}

/* Config space, as vfio-pci lets user space see it: reads anywhere in the region,
 * writes only reach the command register (the ids are read-only). */
ssize_t fk_device_rw(fk_obj *o, void *buf, size_t len, off_t off, bool write)
{
    guint64 base = (guint64)VFIO_PCI_CONFIG_REGION_INDEX << FK_REGION_SHIFT;
    fk_group *g = o->group;
    guint64 pos;

    if ((guint64)off < base || (guint64)off >= base + ((guint64)1 << FK_REGION_SHIFT))
        return FK_NOT_MINE;
    if (o->cdev && o->bound_to < 0)
        return -EINVAL; /* an unbound cdev refuses everything */
    pos = (guint64)off - base;
    if (pos >= g->model->cfg_size)
        return -EINVAL;
    len = MIN(len, g->model->cfg_size - pos);
    if (!write) {
        memcpy(buf, g->config + pos, len);
        return (ssize_t)len;
    }
    for (gsize i = 0; i < len; i++)
        if (pos + i >= PCI_COMMAND && pos + i < PCI_COMMAND + 2)
            g->config[pos + i] = ((const guint8 *)buf)[i];
    return (ssize_t)len;
}

guint32 fk_device_mig_flags(fk_obj *o)
{
    return o->group && o->group->own_mig ? o->group->mig_flags : fk.mig_flags;
}

/* ---- paths ---- */
int fk_type1_open(const char *path)
{
    fk_group *g;
    char *end;
    int id;

    if (strcmp(path, "/dev/vfio/vfio") == 0)
        return fk_new_object(path, S_IFCHR | 0666, makedev(FK_MISC_MAJOR, FK_VFIO_MINOR), FK_CONTAINER, NULL);
    if (!g_str_has_prefix(path, "/dev/vfio/"))
        return FK_NOT_MINE;
    id = (int)strtol(path + strlen("/dev/vfio/"), &end, 10);
    g = *end ? NULL : g_hash_table_lookup(fk.groups, GINT_TO_POINTER(id));
    if (!g)
        return -ENOENT;
    if (g->fd >= 0)
        return -EBUSY; /* groups are single-open */
    g->fd = fk_new_object(path, S_IFCHR | 0600, makedev(FK_GROUP_MAJOR, (unsigned)id), FK_GROUP, g);
    return g->fd;
}

int fk_type1_readlink(const char *path, char *buf, size_t len)
{
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, fk.groups);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        fk_group *g = v;
        g_autofree char *p1 = g_strdup_printf("/sys/bus/%s/devices/%s/iommu_group",
                                              g->mdev ? "mdev" : "pci", g->device);
        if (strcmp(path, p1) == 0)
            return g_snprintf(buf, len, "../../../kernel/iommu_groups/%d", g->id);
    }
    return FK_NOT_MINE;
}

void fk_type1_free(void)
{
    if (fk.groups)
        g_hash_table_destroy(fk.groups);
}

void fk_type1_reset(void)
{
    fk.groups = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, fk_free_group);
    fk.irq_count[VFIO_PCI_INTX_IRQ_INDEX] = 1;
    fk.irq_count[VFIO_PCI_MSI_IRQ_INDEX] = 1;
    fk.irq_count[VFIO_PCI_MSIX_IRQ_INDEX] = 5;
    fk.irq_count[VFIO_PCI_ERR_IRQ_INDEX] = 1;
    fk.irq_count[VFIO_PCI_REQ_IRQ_INDEX] = 1;
}

/* ---- test API (fake-kernel.h) ---- */
/* As QEMU presents them: its own devices carry the Red Hat/QEMU subsystem ids, the
 * emulated Intel NIC Intel's; mtty as samples/vfio-mdev/mtty.c builds its space. */
const fk_pci_model fake_pci_edu = { 0x1234, 0x11e8, 0x00ff00, 0x10, 0x1af4, 0x1100, 0,
                                    PCI_CFG_SPACE_SIZE };
const fk_pci_model fake_pci_nvme = { 0x1b36, 0x0010, 0x010802, 0x02, 0x1af4, 0x1100, 0,
                                     PCI_CFG_SPACE_EXP_SIZE };
const fk_pci_model fake_pci_e1000e = { 0x8086, 0x10d3, 0x020000, 0x00, 0x8086, 0x0000, 0,
                                       PCI_CFG_SPACE_EXP_SIZE };
const fk_pci_model fake_pci_mtty = { 0x4348, 0x3253, 0x070002, 0x10, 0x4348, 0x3253,
                                     PCI_COMMAND_IO, PCI_CFG_SPACE_SIZE };

static void put16(guint8 *p, guint16 v)
{
    p[0] = (guint8)v;
    p[1] = (guint8)(v >> 8);
}

static fk_group *add_group(int id, const char *device, bool mdev, const fk_pci_model *m)
{
    fk_group *g = g_new0(fk_group, 1);
    g->id = id;
    g->device = g_strdup(device);
    g->mdev = mdev;
    g->fd = -1;
    g->container = -1;
    g->bound = -1;
    g->model = m;
    g->config = g_malloc0(m->cfg_size);
    put16(g->config + PCI_VENDOR_ID, m->vendor);
    put16(g->config + PCI_DEVICE_ID, m->device);
    put16(g->config + PCI_COMMAND, m->command);
    g->config[PCI_REVISION_ID] = m->revision;
    g->config[PCI_CLASS_PROG] = (guint8)m->class_code;
    put16(g->config + PCI_CLASS_DEVICE, (guint16)(m->class_code >> 8));
    put16(g->config + PCI_SUBSYSTEM_VENDOR_ID, m->subsys_vendor);
    put16(g->config + PCI_SUBSYSTEM_ID, m->subsys_device);
    g_hash_table_insert(fk.groups, GINT_TO_POINTER(id), g);
    return g;
}

void fake_vfio_add_group(int id, const char *device, bool mdev)
{
    add_group(id, device, mdev, mdev ? &fake_pci_mtty : &fake_pci_edu);
}

void fake_vfio_add_device(int id, const char *bdf, const fk_pci_model *model, guint32 mig_flags)
{
    fk_group *g = add_group(id, bdf, false, model);
    g->own_mig = true;
    g->mig_flags = mig_flags;
}

int fake_vfio_dma(int container_fd, guint64 iova, guint64 *size, guint64 *vaddr)
{
    fk_obj *c = fk_obj_get(container_fd, FK_CONTAINER);
    if (!c)
        return -EBADF;
    for (guint i = 0; i < c->dmas->len; i++) {
        fk_dma *d = &g_array_index(c->dmas, fk_dma, i);
        if (d->iova == iova) {
            if (size)
                *size = d->size;
            if (vaddr)
                *vaddr = d->vaddr;
            return d->invalid ? 0 : 1;
        }
    }
    return -ENOENT;
}

unsigned fake_vfio_dma_count(int container_fd)
{
    fk_obj *c = fk_obj_get(container_fd, FK_CONTAINER);
    return c ? c->dmas->len : 0;
}

unsigned fake_vfio_device_closes(void)
{
    return fk.device_closes;
}

void fake_vfio_set_irq_count(unsigned index, unsigned count, bool noresize)
{
    fk.irq_count[index] = count;
    if (index == VFIO_PCI_MSIX_IRQ_INDEX)
        fk.msix_noresize = noresize;
}

unsigned fake_vfio_irq_rerequests(void)
{
    return fk.irq_rerequests;
}

unsigned fake_vfio_irq_live(int device_fd, unsigned index)
{
    fk_obj *o = fk_obj_get(device_fd, FK_DEVICE);
    return o ? o->live[index] : 0;
}

int fake_vfio_unmask_fd(int device_fd)
{
    fk_obj *o = fk_obj_get(device_fd, FK_DEVICE);
    return o ? o->unmask_fd : -1;
}

