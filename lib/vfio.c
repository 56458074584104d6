/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Containers and their DMA mappings, whatever the IOMMU backend: the tables of a
 * context, the memfd identity of every mapping, the restart claims (a preserved
 * range must come back with the same iova, size, flags, memfd and offset), the exec
 * blockers every backend shares, and the state sections of the mappings. What the
 * kernel is asked to do lives in the backends (type1.c, iommufd.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>

#include "private.h"
#include "probes.h"

/* On-the-wire DMA record of both backends; matches the GVariant fixed struct
 * VFIOCPR_RECORD_DMA. container indexes the backend's container list. */
typedef struct {
    guint32 container;
    guint32 flags;
    guint64 iova, size, offset, mem_dev, mem_ino;
} wire_dma;
G_STATIC_ASSERT(sizeof(wire_dma) == VFIOCPR_RECORD_DMA_SIZE);

/* In the order their state sections and required features are written. */
const vfiocpr_backend_ops *const vfiocpr_backends[] = { &vfiocpr_type1_ops,
                                                        &vfiocpr_iommufd_ops, NULL };

struct vfiocpr_vfio {
    GHashTable *containers; /* name -> vfiocpr_container* (ref held) */
    GHashTable *devices;    /* name -> vfiocpr_device* (ref held) */
};

static guint map_hash(gconstpointer p)
{
    guint64 iova = ((const vfiocpr_mapping *)p)->iova;
    return (guint)(iova >> 12) ^ (guint)(iova >> 40);
}

static gboolean map_equal(gconstpointer a, gconstpointer b)
{
    return ((const vfiocpr_mapping *)a)->iova == ((const vfiocpr_mapping *)b)->iova;
}

vfiocpr_container *vfiocpr_container_new(vfiocpr *ctx, const char *name,
                                         const vfiocpr_backend_ops *ops, bool preserved)
{
    vfiocpr_container *c = g_new0(vfiocpr_container, 1);
    c->ref = 1;
    c->ctx = ctx;
    c->ops = ops;
    c->name = g_strdup(name);
    c->reg_name = vfiocpr_key_container(ops->reg_prefix, name);
    c->fd = -1;
    c->preserved = preserved;
    /* mappings from the state live in blocks; those made later are freed one by one */
    c->maps = g_hash_table_new(map_hash, map_equal);
    c->blocks = g_ptr_array_new_with_free_func(g_free);
    g_hash_table_insert(vfiocpr_ctx_vfio(ctx)->containers, c->name, c);
    return c;
}

VFIOCPR_EXPORT vfiocpr_container *vfiocpr_container_ref(vfiocpr_container *c)
{
    g_return_val_if_fail(c, NULL);
    g_atomic_int_inc(&c->ref);
    return c;
}

VFIOCPR_EXPORT void vfiocpr_container_unref(vfiocpr_container *c)
{
    if (!c || !g_atomic_int_dec_and_test(&c->ref))
        return;
    if (c->priv)
        c->ops->free_priv(c->priv);
    g_hash_table_destroy(c->maps);
    g_ptr_array_unref(c->blocks);
    g_free(c->reg_name);
    g_free(c->name);
    g_free(c);
}

VFIOCPR_EXPORT int vfiocpr_container_fd(const vfiocpr_container *c)
{
    return c ? c->fd : -EINVAL;
}

VFIOCPR_EXPORT vfiocpr_backend vfiocpr_container_backend(const vfiocpr_container *c)
{
    return c ? c->ops->id : VFIOCPR_BACKEND_AUTO;
}

VFIOCPR_EXPORT const char *vfiocpr_backend_to_string(vfiocpr_backend backend)
{
    switch (backend) {
    case VFIOCPR_BACKEND_AUTO:
        return "auto";
    case VFIOCPR_BACKEND_TYPE1:
        return "type1";
    case VFIOCPR_BACKEND_IOMMUFD:
        return "iommufd";
    }
    return "unknown";
}

const char *vfiocpr_container_name(const vfiocpr_container *c)
{
    return c->name;
}

vfiocpr *vfiocpr_container_ctx(const vfiocpr_container *c)
{
    return c->ctx;
}

guint vfiocpr_container_pending(const vfiocpr_container *c)
{
    return c->n_pending;
}

vfiocpr_vfio *vfiocpr_vfio_new(void)
{
    vfiocpr_vfio *v = g_new0(vfiocpr_vfio, 1);
    v->containers = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                          (GDestroyNotify)vfiocpr_container_unref);
    v->devices = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                       (GDestroyNotify)vfiocpr_device_unref);
    return v;
}

void vfiocpr_vfio_free(vfiocpr_vfio *v)
{
    if (!v)
        return;
    g_hash_table_destroy(v->devices);
    g_hash_table_destroy(v->containers);
    g_free(v);
}

GHashTable *vfiocpr_vfio_devices(vfiocpr_vfio *v)
{
    return v->devices;
}

GHashTable *vfiocpr_vfio_containers(vfiocpr_vfio *v)
{
    return v->containers;
}

/* AUTO: iommufd where both halves of it exist, /dev/iommu and the vfio cdevs. The
 * /dev/iommu fd it opened is handed on so it is not opened twice. */
static const vfiocpr_backend_ops *resolve_auto(int *iommu_fd)
{
    int fd = VK(open, "/dev/iommu", O_RDWR);
    int dir;

    *iommu_fd = -1;
    if (fd < 0)
        return &vfiocpr_type1_ops;
    dir = VK(open, "/dev/vfio/devices", O_RDONLY | O_DIRECTORY);
    if (dir < 0) {
        VK(close, fd);
        return &vfiocpr_type1_ops;
    }
    VK(close, dir);
    *iommu_fd = fd;
    return &vfiocpr_iommufd_ops;
}

static int container_get(vfiocpr *ctx, const char *name, vfiocpr_backend backend, int fd,
                         bool adopt, vfiocpr_container **out, GError **error)
{
    const vfiocpr_backend_ops *ops;
    vfiocpr_container *c;
    int r, opened = -1;

    if (!ctx || !name || !*name || !out)
        return vfiocpr_fail(error, EINVAL, "container: open: NULL or empty argument");
    if ((unsigned)backend > VFIOCPR_BACKEND_IOMMUFD)
        return vfiocpr_fail(error, EINVAL, "container '%s': open: unknown backend %d", name,
                            (int)backend);
    c = g_hash_table_lookup(vfiocpr_ctx_vfio(ctx)->containers, name);
    if (c && c->preserved && !c->claimed) {
        if (backend != VFIOCPR_BACKEND_AUTO && backend != c->ops->id)
            return vfiocpr_fail(error, EINVAL, "container '%s': open with the %s backend: the "
                                "preserved container is %s", name,
                                vfiocpr_backend_to_string(backend), c->ops->name);
        if (adopt && fd >= 0)
            return vfiocpr_fail(error, EINVAL, "container '%s': adopt: in restart mode the "
                                "preserved fd is used, pass -1", name);
        r = vfiocpr_fdreg_find(vfiocpr_ctx_fdreg(ctx), c->reg_name, 0, c->ops->fd_kind, error);
        if (r < 0)
            return r;
        c->fd = r;
        c->claimed = true;
        *out = vfiocpr_container_ref(c);
        return 0;
    }
    if (c)
        return vfiocpr_fail(error, EEXIST, "container '%s': already open", name);
    if (adopt && fd < 0)
        return vfiocpr_fail(error, EBADF, "container '%s': adopt: bad fd %d", name, fd);
    if (backend == VFIOCPR_BACKEND_AUTO) {
        ops = resolve_auto(&opened);
        fd = opened;
    } else {
        ops = backend == VFIOCPR_BACKEND_IOMMUFD ? &vfiocpr_iommufd_ops : &vfiocpr_type1_ops;
    }
    c = vfiocpr_container_new(ctx, name, ops, false);
    r = ops->open(c, fd, error); /* closes what it opened itself on failure */
    if (r == 0)
        r = vfiocpr_fdreg_save(vfiocpr_ctx_fdreg(ctx), c->reg_name, 0, c->fd, ops->fd_kind,
                               error);
    if (r < 0) {
        if (c->fd >= 0 && (!adopt || c->fd != fd))
            VK(close, c->fd);
        else if (opened >= 0 && c->fd != opened)
            VK(close, opened);
        g_hash_table_remove(vfiocpr_ctx_vfio(ctx)->containers, name);
        return r;
    }
    *out = vfiocpr_container_ref(c);
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_container_open(vfiocpr *ctx, const char *name,
                                          vfiocpr_container **out, GError **error)
{
    return container_get(ctx, name, VFIOCPR_BACKEND_TYPE1, -1, false, out, error);
}

VFIOCPR_EXPORT int vfiocpr_container_adopt(vfiocpr *ctx, const char *name, int fd,
                                           vfiocpr_container **out, GError **error)
{
    return container_get(ctx, name, VFIOCPR_BACKEND_TYPE1, fd, true, out, error);
}

VFIOCPR_EXPORT int vfiocpr_container_open_backend(vfiocpr *ctx, const char *name,
                                                  vfiocpr_backend backend,
                                                  vfiocpr_container **out, GError **error)
{
    return container_get(ctx, name, backend, -1, false, out, error);
}

VFIOCPR_EXPORT int vfiocpr_device_attach(vfiocpr_container *c, const char *name,
                                         vfiocpr_device **out, GError **error)
{
    if (!c || c->fd < 0 || !name || !*name || !out)
        return vfiocpr_fail(error, EINVAL, "device '%s': attach: bad arguments",
                            name ? name : "?");
    return c->ops->attach(c, name, out, error);
}

/* ------------------------------------------------------------------ DMA */

static vfiocpr_mapping *mapping_at(vfiocpr_container *c, guint64 iova)
{
    vfiocpr_mapping key = { .iova = iova };
    return g_hash_table_lookup(c->maps, &key);
}

VFIOCPR_EXPORT int vfiocpr_dma_map(vfiocpr_container *c, uint64_t iova, uint64_t size,
                                   void *vaddr, int memfd, uint64_t offset, uint32_t flags,
                                   GError **error)
{
    vfiocpr_fd_stat mem = { 0 };
    vfiocpr_mapping *m;
    bool backed = false;
    int r;

    if (!c || c->fd < 0 || !size || !vaddr || iova + size < iova ||
        (flags & ~(VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE)))
        return vfiocpr_fail(error, EINVAL, "container '%s': dma map iova 0x%" PRIx64 " size 0x%"
                            PRIx64 ": bad arguments", c ? c->name : "?", iova, size);
    if (memfd >= 0) {
        backed = vfiocpr_fdreg_identity(vfiocpr_ctx_fdreg(c->ctx), memfd, VFIOCPR_FD_MEMFD, &mem);
        if (!backed)
            return vfiocpr_fail(error, EINVAL, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                                ": fd %d is not a registered memfd (vfiocpr_fd_save it first)",
                                c->name, iova, iova + size - 1, memfd);
    }
    m = mapping_at(c, iova);
    if (m && m->pending) {
        /* restart: the same range, the same memory, maybe a new address */
        if (m->size != size || m->flags != flags)
            return vfiocpr_fail(error, EINVAL, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                                ": the preserved range is 0x%" PRIx64 "-0x%" PRIx64 " flags %u, "
                                "not flags %u", c->name, iova, iova + size - 1, m->iova,
                                m->iova + m->size - 1, m->flags, flags);
        if (!backed || mem.dev != m->mem_dev || mem.ino != m->mem_ino || offset != m->offset)
            return vfiocpr_fail(error, EINVAL, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                                ": not the preserved memory (recorded memfd dev %" G_GUINT64_FORMAT
                                " ino %" G_GUINT64_FORMAT " offset 0x%" PRIx64 ", given fd %d "
                                "offset 0x%" PRIx64 ")", c->name, iova, iova + size - 1,
                                m->mem_dev, m->mem_ino, m->offset, memfd, offset);
        vfiocpr_ctx_step(c->ctx, "restoring");
        VFIOCPR_PROBE(remap__start, probe_s(c->name), iova, size);
        r = c->ops->remap(c, m, vaddr, error);
        if (r == 0) {
            m->vaddr = vaddr;
            m->memfd = memfd;
            m->pending = false;
            c->n_pending--;
        }
        VFIOCPR_PROBE(remap__end, probe_s(c->name), iova, size, r, c->n_pending);
        return r;
    }
    if (m)
        return vfiocpr_fail(error, EEXIST, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                            ": already mapped", c->name, iova, iova + size - 1);
    if ((r = vfiocpr_ctx_may_change(c->ctx, "dma map", error)) < 0)
        return r;
    if (c->prepared)
        return vfiocpr_fail(error, EBUSY, "container '%s': dma map: exec in progress", c->name);
    m = g_new0(vfiocpr_mapping, 1);
    *m = (vfiocpr_mapping){ .iova = iova, .size = size, .offset = offset, .flags = flags,
                            .vaddr = vaddr, .memfd = backed ? memfd : -1, .mem_dev = mem.dev,
                            .mem_ino = mem.ino, .lone = true };
    r = c->ops->map(c, m, error);
    if (r < 0) {
        g_free(m);
        return r;
    }
    g_hash_table_add(c->maps, m);
    g_ptr_array_add(c->blocks, m);
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_dma_unmap(vfiocpr_container *c, uint64_t iova, uint64_t size,
                                     GError **error)
{
    vfiocpr_mapping *m;
    int r;

    if (!c || c->fd < 0)
        return vfiocpr_fail(error, EINVAL, "container: dma unmap: bad container");
    m = mapping_at(c, iova);
    if (!m || m->size != size)
        return vfiocpr_fail(error, ENOENT, "container '%s': dma unmap 0x%" PRIx64 "-0x%" PRIx64
                            ": no mapping exactly there", c->name, iova, iova + size - 1);
    if ((r = vfiocpr_ctx_may_change(c->ctx, "dma unmap", error)) < 0)
        return r;
    if (c->prepared)
        return vfiocpr_fail(error, EBUSY, "container '%s': dma unmap 0x%" PRIx64 "-0x%" PRIx64
                            ": exec in progress", c->name, iova, iova + size - 1);
    r = c->ops->unmap(c, m, error);
    if (r < 0)
        return r;
    if (m->pending)
        c->n_pending--;
    g_hash_table_remove(c->maps, m);
    /* a block from the state stays until the container goes; a lone one goes now */
    if (m->lone)
        g_ptr_array_remove_fast(c->blocks, m); /* frees it */
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_container_close(vfiocpr_container *c, GError **error)
{
    vfiocpr_vfio *v;
    GHashTableIter it;
    gpointer k;
    int r;

    if (!c || c->fd < 0)
        return vfiocpr_fail(error, EINVAL, "container: close: not open");
    if ((r = vfiocpr_ctx_may_change(c->ctx, "container close", error)) < 0)
        return r;
    v = vfiocpr_ctx_vfio(c->ctx);
    g_hash_table_iter_init(&it, v->devices);
    while (g_hash_table_iter_next(&it, NULL, &k))
        if (vfiocpr_device_container(k) == c)
            return vfiocpr_fail(error, EBUSY, "container '%s': close: device '%s' is still "
                                "open", c->name, vfiocpr_device_name(k));
    r = c->ops->close(c, error);
    if (r < 0)
        return r;
    vfiocpr_fdreg_forget(vfiocpr_ctx_fdreg(c->ctx), c->reg_name, 0);
    VK(close, c->fd);
    c->fd = -1;
    g_hash_table_remove(v->containers, c->name);
    return 0;
}

/* ------------------------------------------------------------------ exec phases */

int vfiocpr_vfio_check(vfiocpr *ctx, GError **error)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    guint64 pinned = 0, limit = 0;
    bool cap = false;
    GHashTableIter it, mit;
    gpointer k;
    int r;

    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        vfiocpr_container *c = k;
        if (!g_hash_table_size(c->maps))
            continue;
        if (c->n_pending)
            return vfiocpr_fail(error, EBUSY, "container '%s': %u preserved DMA ranges are not "
                                "re-mapped yet: finish the restore before the next exec",
                                c->name, c->n_pending);
        g_hash_table_iter_init(&mit, c->maps);
        while (g_hash_table_iter_next(&mit, &k, NULL)) {
            vfiocpr_mapping *m = k;
            if (m->memfd < 0)
                return vfiocpr_fail(error, EINVAL, "container '%s' (%s): DMA range 0x%" PRIx64
                                    "-0x%" PRIx64 " is not backed by a registered memfd (mapped "
                                    "by user address): the new image could not map it again",
                                    c->name, c->ops->name, m->iova, m->iova + m->size - 1);
            /* iommufd: CHANGE_PROCESS charges the new image before it uncharges the
             * old one, both to the same user (measured on 7.3) */
            pinned += c->ops == &vfiocpr_iommufd_ops ? 2 * m->size : m->size;
        }
        r = c->ops->check(c, error);
        if (r < 0)
            return r;
    }
    if (!pinned)
        return 0;
    r = VK(memlock, &limit, &cap);
    if (r < 0)
        return vfiocpr_fail(error, r, "exec check: reading RLIMIT_MEMLOCK");
    if (!cap && limit < pinned)
        return vfiocpr_fail(error, ENOMEM, "exec check: RLIMIT_MEMLOCK is %" G_GUINT64_FORMAT
                            " bytes but the new image will be charged %" G_GUINT64_FORMAT
                            " pinned bytes when it takes the DMA mappings over (iommufd ranges "
                            "count twice): raise the limit or grant CAP_IPC_LOCK", limit,
                            pinned);
    return 0;
}

int vfiocpr_vfio_prepare(vfiocpr *ctx, GError **error)
{
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, vfiocpr_ctx_vfio(ctx)->containers);
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        vfiocpr_container *c = k;
        int r;
        if (!g_hash_table_size(c->maps))
            continue;
        r = c->ops->prepare(c, error);
        if (r < 0) {
            vfiocpr_vfio_unprepare(ctx);
            return r;
        }
        c->prepared = true;
    }
    return 0;
}

void vfiocpr_vfio_unprepare(vfiocpr *ctx)
{
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, vfiocpr_ctx_vfio(ctx)->containers);
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        vfiocpr_container *c = k;
        if (!c->prepared)
            continue;
        c->ops->undo(c);
        c->prepared = false;
    }
}

/* ------------------------------------------------------------------ state */

static gint cmp_container_name(gconstpointer a, gconstpointer b)
{
    return strcmp((*(vfiocpr_container *const *)a)->name, (*(vfiocpr_container *const *)b)->name);
}

void vfiocpr_vfio_serialize(vfiocpr *ctx, GVariantDict *d, GPtrArray *features)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);

    for (gsize b = 0; vfiocpr_backends[b]; b++) {
        const vfiocpr_backend_ops *ops = vfiocpr_backends[b];
        g_autoptr(GPtrArray) list = g_ptr_array_new();
        GHashTableIter it;
        gpointer k;
        gsize n_dma = 0, at = 0;
        wire_dma *dma;

        g_hash_table_iter_init(&it, v->containers);
        while (g_hash_table_iter_next(&it, NULL, &k))
            if (((vfiocpr_container *)k)->ops == ops) {
                g_ptr_array_add(list, k);
                n_dma += g_hash_table_size(((vfiocpr_container *)k)->maps);
            }
        if (!list->len)
            continue;
        g_ptr_array_sort(list, cmp_container_name);
        /* written in place and handed to the GVariant without a copy */
        dma = g_new0(wire_dma, n_dma ? n_dma : 1);
        for (guint i = 0; i < list->len; i++) {
            vfiocpr_container *c = list->pdata[i];
            g_hash_table_iter_init(&it, c->maps);
            while (g_hash_table_iter_next(&it, &k, NULL)) {
                vfiocpr_mapping *m = k;
                dma[at++] = (wire_dma){ .container = i, .flags = m->flags, .iova = m->iova,
                                        .size = m->size, .offset = m->offset,
                                        .mem_dev = m->mem_dev, .mem_ino = m->mem_ino };
            }
        }
        ops->serialize(ctx, list, d);
        vfiocpr_section_insert(d, ops->dma_section,
                               g_variant_new_from_data(G_VARIANT_TYPE("a" VFIOCPR_RECORD_DMA), dma,
                                                       n_dma * sizeof(wire_dma), TRUE, g_free,
                                                       dma));
        g_ptr_array_add(features, (gpointer)ops->feature);
    }
    /* 1.5: what each device fd is, for the restore's swap check (optional: a 1.4
     * reader ignores it) */
    vfiocpr_devices_serialize_identity(v->devices, d);
}

static int deserialize_dma(const vfiocpr_backend_ops *ops, GVariant *payload, GPtrArray *byidx,
                           GError **error)
{
    g_autoptr(GVariant) vdma = NULL;
    g_autofree gsize *count = NULL;
    g_autofree vfiocpr_mapping **next = NULL;
    const wire_dma *w;
    gsize n;

    vdma = vfiocpr_section_lookup(payload, ops->dma_section);
    if (!vdma)
        return vfiocpr_fail(error, EBADMSG, "state: %s: section '%s' is missing or of the "
                            "wrong type", ops->name, vfiocpr_state_sections[ops->dma_section].name);
    w = g_variant_get_fixed_array(vdma, &n, sizeof(wire_dma));
    /* one allocation per container for all its ranges: count, then fill */
    count = g_new0(gsize, byidx->len + 1);
    next = g_new0(vfiocpr_mapping *, byidx->len + 1);
    for (gsize i = 0; i < n; i++) {
        if (w[i].container >= byidx->len || !w[i].size || w[i].iova + w[i].size < w[i].iova ||
            (w[i].flags & ~(VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE)))
            return vfiocpr_fail(error, EBADMSG, "state: %s: DMA record %zu: bad container, "
                                "range or flags", ops->name, i);
        count[w[i].container]++;
    }
    for (guint k = 0; k < byidx->len; k++)
        if (count[k]) {
            next[k] = g_new0(vfiocpr_mapping, count[k]);
            g_ptr_array_add(((vfiocpr_container *)byidx->pdata[k])->blocks, next[k]);
        }
    for (gsize i = 0; i < n; i++) {
        vfiocpr_container *c = byidx->pdata[w[i].container];
        vfiocpr_mapping *m = next[w[i].container]++;
        *m = (vfiocpr_mapping){ .iova = w[i].iova, .size = w[i].size, .offset = w[i].offset,
                                .flags = w[i].flags, .memfd = -1, .mem_dev = w[i].mem_dev,
                                .mem_ino = w[i].mem_ino, .pending = true };
        if (!g_hash_table_add(c->maps, m))
            return vfiocpr_fail(error, EBADMSG, "state: %s: DMA record %zu: iova 0x%" PRIx64
                                " appears twice in container '%s'", ops->name, i, w[i].iova,
                                c->name);
        c->n_pending++;
    }
    return 0;
}

int vfiocpr_vfio_deserialize(vfiocpr *ctx, GVariant *payload, GError **error)
{
    for (gsize b = 0; vfiocpr_backends[b]; b++) {
        const vfiocpr_backend_ops *ops = vfiocpr_backends[b];
        g_autoptr(GPtrArray) byidx = g_ptr_array_new();
        int r = ops->deserialize(ctx, payload, byidx, error);
        if (r < 0)
            return r;
        if (r == 0)
            continue; /* none of this backend (a 1.0 state has no VFIO at all) */
        for (guint i = 0; i < byidx->len; i++)
            if (!vfiocpr_fdreg_has(vfiocpr_ctx_fdreg(ctx),
                                   ((vfiocpr_container *)byidx->pdata[i])->reg_name, 0,
                                   ops->fd_kind))
                return vfiocpr_fail(error, EBADMSG, "state: %s: container '%s' has no "
                                    "preserved fd", ops->name,
                                    ((vfiocpr_container *)byidx->pdata[i])->name);
        r = deserialize_dma(ops, payload, byidx, error);
        if (r < 0)
            return r;
    }
    /* every device fd is the device it is recorded for (fstat cannot tell) */
    return vfiocpr_devices_verify(ctx, payload, error);
}

int vfiocpr_vfio_finish(vfiocpr *ctx, GError **error)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    g_autoptr(GString) missing = g_string_new(NULL);
    bool blocked = false;
    guint n = 0;
    GHashTableIter it, mit;
    gpointer k;

    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        vfiocpr_container *c = k;
        if (!c->n_pending)
            continue;
        blocked |= c->ops == &vfiocpr_type1_ops;
        g_hash_table_iter_init(&mit, c->maps);
        while (g_hash_table_iter_next(&mit, &k, NULL)) {
            vfiocpr_mapping *m = k;
            if (!m->pending)
                continue;
            if (n++ < 8)
                g_string_append_printf(missing, "%s'%s' 0x%" PRIx64 "-0x%" PRIx64,
                                       n > 1 ? ", " : "", c->name, m->iova, m->iova + m->size - 1);
        }
    }
    if (n)
        return vfiocpr_fail(error, ESTALE, "finish: %u preserved DMA ranges were not re-mapped "
                            "(%s): %s%s", n,
                            blocked ? "their vaddr is still invalid, DMA to them blocks"
                                    : "iommufd: still mapped by file; map or unmap them",
                            missing->str, n > 8 ? ", ..." : "");
    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        int r = ((vfiocpr_container *)k)->ops->finish(k, error);
        if (r < 0)
            return r;
    }
    vfiocpr_devices_fill_identity(v->devices);
    return 0;
}

static gint cmp_mapping_iova(gconstpointer a, gconstpointer b)
{
    guint64 x = (*(vfiocpr_mapping *const *)a)->iova, y = (*(vfiocpr_mapping *const *)b)->iova;
    return (x > y) - (x < y);
}

/* The registered memfd of one file identity; mappings mostly share one memfd, so
 * the last answer is kept. */
typedef struct {
    vfiocpr_fdreg *reg;
    bool valid;
    guint64 dev, ino;
    int fd;
    const char *name;
    guint64 id;
} memfd_cache;

static void memfd_of(memfd_cache *mc, guint64 dev, guint64 ino)
{
    if (mc->valid && mc->dev == dev && mc->ino == ino)
        return;
    mc->valid = true;
    mc->dev = dev;
    mc->ino = ino;
    mc->name = NULL;
    mc->id = 0;
    mc->fd = ino ? vfiocpr_fdreg_by_identity(mc->reg, VFIOCPR_FD_MEMFD, dev, ino, &mc->name,
                                             &mc->id)
                 : -ENOENT;
}

static void describe_mapping(memfd_cache *mc, const vfiocpr_mapping *m,
                             vfiocpr_desc_map *out)
{
    /* a preserved range has no fd until it is provided again: the memfd the
     * registry holds with its identity is the one it must come back with */
    if (m->memfd < 0)
        memfd_of(mc, m->mem_dev, m->mem_ino);
    *out = (vfiocpr_desc_map){ .iova = m->iova, .size = m->size, .offset = m->offset,
                       .flags = m->flags, .memfd = m->memfd >= 0 ? m->memfd : MAX(mc->fd, -1),
                       .pending = m->pending, .vaddr = (guint64)(uintptr_t)m->vaddr };
}

static GVariant *describe_container(vfiocpr_container *c)
{
    vfiocpr_fdreg *reg = vfiocpr_ctx_fdreg(c->ctx);
    memfd_cache mc = { .reg = reg };
    g_autoptr(GPtrArray) maps = g_ptr_array_new();
    g_autofree vfiocpr_desc_map *dm = NULL;
    GVariantBuilder d;
    GHashTableIter it;
    gpointer k;
    guint64 bytes = 0;

    g_hash_table_iter_init(&it, c->maps);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        g_ptr_array_add(maps, k);
        bytes += ((vfiocpr_mapping *)k)->size;
    }
    g_ptr_array_sort(maps, cmp_mapping_iova);
    g_variant_builder_init(&d, G_VARIANT_TYPE_VARDICT);
    vfiocpr_kv_s(&d, "name", c->name);
    vfiocpr_kv_s(&d, "backend", c->ops->name);
    /* not claimed yet: the fd the registry holds for it */
    vfiocpr_kv_i(&d, "fd", c->fd >= 0 ? c->fd : MAX(vfiocpr_fdreg_peek(reg, c->reg_name, 0), -1));
    vfiocpr_kv_s(&d, "status", !c->preserved ? "open" : c->claimed ? "claimed" : "unclaimed");
    c->ops->describe(c, &d);
    vfiocpr_kv_u(&d, "dma-ranges", g_hash_table_size(c->maps));
    vfiocpr_kv_t(&d, "dma-bytes", bytes);
    vfiocpr_kv_u(&d, "remap-pending", c->n_pending);
    dm = g_new0(vfiocpr_desc_map, maps->len ? maps->len : 1);
    for (guint i = 0; i < maps->len; i++)
        describe_mapping(&mc, maps->pdata[i], &dm[i]);
    vfiocpr_kv(&d, "mappings",
               g_variant_new_fixed_array(G_VARIANT_TYPE(VFIOCPR_DESC_MAP_TYPE), dm, maps->len,
                                         sizeof(vfiocpr_desc_map)));
    return g_variant_builder_end(&d);
}

static gint cmp_device_name(gconstpointer a, gconstpointer b)
{
    return strcmp(vfiocpr_device_name(*(vfiocpr_device *const *)a),
                  vfiocpr_device_name(*(vfiocpr_device *const *)b));
}

void vfiocpr_vfio_describe(vfiocpr *ctx, GVariantBuilder *out)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    g_autoptr(GPtrArray) list = g_ptr_array_new();
    GVariantBuilder b;
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k))
        g_ptr_array_add(list, k);
    g_ptr_array_sort(list, cmp_container_name);
    g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
    for (guint i = 0; i < list->len; i++)
        g_variant_builder_add_value(&b, describe_container(list->pdata[i]));
    vfiocpr_kv(out, "containers", g_variant_builder_end(&b));

    g_ptr_array_set_size(list, 0);
    g_hash_table_iter_init(&it, v->devices);
    while (g_hash_table_iter_next(&it, NULL, &k))
        g_ptr_array_add(list, k);
    g_ptr_array_sort(list, cmp_device_name);
    g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
    for (guint i = 0; i < list->len; i++)
        g_variant_builder_add_value(&b, vfiocpr_device_describe(list->pdata[i]));
    vfiocpr_kv(out, "devices", g_variant_builder_end(&b));
}

const vfiocpr_decl vfiocpr_vfio_uses[] = {
    VFIOCPR_OP(open, 0), VFIOCPR_OP(close, 0), VFIOCPR_OP(memlock, 0), VFIOCPR_DECL_END,
};
