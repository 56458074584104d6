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
#include <sys/mman.h>

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

/* ------------------------------------------------------------------ the DMA table
 *
 * Every container keeps its mappings as wire_dma records in slots 0..n_maps-1 (swap
 * removal keeps them dense), in the state's own byte layout, and mirrors each change
 * into a table memfd with one pwrite. An upgrade then only seals that memfd and
 * names it in the state: no work per mapping in the blackout. The new image maps the
 * sealed table read-only and uses the records in place; it copies them only when the
 * VMM first changes its mappings (outside any blackout), or after a failed handover
 * left the table sealed. An index by iova (open addressing, one array) finds slots;
 * the per-slot data only this image knows (vaddr, fd) is one more array. */

#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

#define REC(c, i) ((wire_dma *)(void *)((c)->rec + (gsize)(i) * sizeof(wire_dma)))

static guint32 slot_check(guint i, const wire_dma *w)
{
    return vfiocpr_crc32c((guint32)i, w, sizeof(*w));
}

guint32 vfiocpr_dma_table_check(const void *records, guint n)
{
    return vfiocpr_crc32c_sum(records, n, sizeof(wire_dma));
}

static wire_dma wire_of(const vfiocpr_mapping *m)
{
    return (wire_dma){ .container = 0,
                       .flags = GUINT32_TO_LE(m->flags),
                       .iova = GUINT64_TO_LE(m->iova),
                       .size = GUINT64_TO_LE(m->size),
                       .offset = GUINT64_TO_LE(m->offset),
                       .mem_dev = GUINT64_TO_LE(m->mem_dev),
                       .mem_ino = GUINT64_TO_LE(m->mem_ino) };
}

guint vfiocpr_container_n_maps(const vfiocpr_container *c)
{
    return c->n_maps;
}

void vfiocpr_container_mapping(const vfiocpr_container *c, guint i, vfiocpr_mapping *m)
{
    const wire_dma *w = REC(c, i);
    const vfiocpr_map_rt *rt = &c->rt[i];

    *m = (vfiocpr_mapping){ .iova = GUINT64_FROM_LE(w->iova), .size = GUINT64_FROM_LE(w->size),
                            .offset = GUINT64_FROM_LE(w->offset),
                            .flags = GUINT32_FROM_LE(w->flags), .vaddr = rt->vaddr,
                            .memfd = rt->provided ? rt->memfd : -1,
                            .mem_dev = GUINT64_FROM_LE(w->mem_dev),
                            .mem_ino = GUINT64_FROM_LE(w->mem_ino), .pending = !rt->provided };
}

static guint idx_hash(const vfiocpr_container *c, guint64 iova)
{
    return (guint)((iova >> 12) * 0x9E3779B97F4A7C15ull >> 32) & c->idx_mask;
}

/* The position in idx of iova, or of the empty entry where it would go. */
static guint idx_pos(const vfiocpr_container *c, guint64 iova)
{
    guint p = idx_hash(c, iova);
    while (c->idx[p] && GUINT64_FROM_LE(REC(c, c->idx[p] - 1)->iova) != iova)
        p = (p + 1) & c->idx_mask;
    return p;
}

static bool idx_build(vfiocpr_container *c, guint n);

static int slot_of(vfiocpr_container *c, guint64 iova)
{
    guint p;
    if (!c->idx) {
        if (!c->n_maps)
            return -1;
        /* a restored table left unindexed: its iovas are strictly ascending, so
         * there is no duplicate to fail on */
        idx_build(c, c->n_maps);
    }
    p = idx_pos(c, iova);
    return c->idx[p] ? (int)c->idx[p] - 1 : -1;
}

/* Indexes slot (its record written already); false if the iova is there already. */
static bool idx_add(vfiocpr_container *c, guint slot)
{
    guint p = idx_pos(c, GUINT64_FROM_LE(REC(c, slot)->iova));
    if (c->idx[p])
        return false;
    c->idx[p] = slot + 1;
    return true;
}

/* Linear probing deletion: later entries of the run move back into the hole. */
static void idx_del(vfiocpr_container *c, guint64 iova)
{
    guint hole = idx_pos(c, iova), p = hole;

    if (!c->idx[hole])
        return;
    c->idx[hole] = 0;
    for (;;) {
        guint home;
        p = (p + 1) & c->idx_mask;
        if (!c->idx[p])
            return;
        home = idx_hash(c, GUINT64_FROM_LE(REC(c, c->idx[p] - 1)->iova));
        /* the entry at p may fill the hole unless its home lies in (hole, p] */
        if ((p > hole && (home <= hole || home > p)) || (p < hole && home <= hole && home > p)) {
            c->idx[hole] = c->idx[p];
            c->idx[p] = 0;
            hole = p;
        }
    }
}

/* An index for at least n entries at most half full; the records are indexed
 * again. Returns false on a duplicate iova among them. */
static bool idx_build(vfiocpr_container *c, guint n)
{
    guint size = 16;
    while (size < 2 * (gsize)n + 2)
        size *= 2;
    g_free(c->idx);
    c->idx = g_new0(guint32, size);
    c->idx_mask = size - 1;
    for (guint i = 0; i < c->n_maps; i++)
        if (!idx_add(c, i))
            return false;
    return true;
}

/* Unmaps or frees the records; closes the table fd when it is this image's own and
 * close_fd (not when it was handed over: it is the next image's now). */
static void table_release(vfiocpr_container *c, bool close_fd)
{
    if (c->rec_owned)
        g_free(c->rec);
    else if (c->rec)
        VK(munmap, c->rec, c->map_len);
    c->rec = NULL;
    c->rec_owned = false;
    c->map_len = 0;
    if (c->table_fd >= 0 && close_fd && !c->table_inherited)
        VK(close, c->table_fd);
    c->table_fd = -1;
}

static int table_pwrite(vfiocpr_container *c, const void *buf, gsize len, guint slot,
                        GError **error)
{
    gsize done = 0;
    while (done < len) {
        ssize_t n = VK(pwrite, c->table_fd, (const guint8 *)buf + done, len - done,
                       (off_t)((gsize)slot * sizeof(wire_dma) + done));
        if (n <= 0)
            return vfiocpr_fail(error, n ? (int)n : ENOSPC, "container '%s': DMA table memfd "
                                "%d: write of %zu bytes at slot %u", c->name, c->table_fd, len,
                                slot);
        done += (gsize)n;
    }
    return 0;
}

/* Makes the table writable before a change: this image's own records in memory
 * and an unsealed memfd holding exactly them. A no-op but after a restore, a
 * failed handover or a failed write (then one copy of every record). */
static int table_writable(vfiocpr_container *c, guint need, GError **error)
{
    if (c->rec_owned && need <= c->cap && c->table_fd >= 0 && !c->table_sealed &&
        !c->table_stale)
        return 0;
    if (!c->rec_owned || need > c->cap) {
        guint cap = MAX(c->cap, 16u);
        guint8 *rec;
        while (cap < need)
            cap *= 2;
        rec = g_malloc((gsize)cap * sizeof(wire_dma));
        if (c->n_maps)
            memcpy(rec, c->rec, (gsize)c->n_maps * sizeof(wire_dma));
        if (c->rec_owned)
            g_free(c->rec);
        else if (c->rec)
            VK(munmap, c->rec, c->map_len);
        c->rec = rec;
        c->rec_owned = true;
        c->map_len = 0;
        c->rt = g_renew(vfiocpr_map_rt, c->rt, cap);
        memset(c->rt + c->cap, 0, (gsize)(cap - c->cap) * sizeof(*c->rt));
        c->cap = cap;
    }
    if (c->table_fd < 0 || c->table_sealed || c->table_stale) {
        int fd = VK(memfd_create, "vfiocpr-dma", MFD_CLOEXEC | MFD_ALLOW_SEALING), old = c->table_fd;
        int r;
        if (fd < 0)
            return vfiocpr_fail(error, fd, "container '%s': DMA table: memfd_create", c->name);
        c->table_fd = fd;
        r = c->n_maps ? table_pwrite(c, c->rec, (gsize)c->n_maps * sizeof(wire_dma), 0, error) : 0;
        if (r < 0) {
            VK(close, fd);
            c->table_fd = old;
            return r;
        }
        if (old >= 0) {
            if (c->table_registered)
                vfiocpr_fdreg_forget(vfiocpr_ctx_fdreg(c->ctx), c->table_key, 0);
            VK(close, old);
        }
        c->table_registered = false;
        c->table_inherited = false;
        c->table_sealed = false;
        c->table_stale = false;
        vfiocpr_ctx_changed(c->ctx); /* another fd for the table */
    }
    return 0;
}

/* Slot i gets w (i == n_maps: a new slot); the check follows. The memory copy is
 * the truth: a failed write marks the memfd stale, rewritten before it is used. */
static int slot_put(vfiocpr_container *c, guint i, const wire_dma *w, GError **error)
{
    int r;
    if (i < c->n_maps)
        c->table_check -= slot_check(i, REC(c, i));
    memcpy(REC(c, i), w, sizeof(*w));
    c->table_check += slot_check(i, w);
    r = table_pwrite(c, w, sizeof(*w), i, error);
    if (r < 0)
        c->table_stale = true;
    return r;
}

/* The table's fd in the registry, so that it travels with the others (by number or
 * by index). vfiocpr_state_prepare() registers it ahead, so that the handover
 * changes nothing the prepared state shows. */
static int table_register(vfiocpr_container *c, GError **error)
{
    int r;

    if (c->table_fd < 0 || c->table_stale) {
        /* a restore from a format before 1.6 that was not finished, or a failed write */
        r = table_writable(c, c->n_maps, error);
        if (r < 0)
            return r;
    }
    if (c->table_registered)
        return 0; /* from the state, or an earlier attempt */
    r = vfiocpr_fdreg_save(vfiocpr_ctx_fdreg(c->ctx), c->table_key, 0, c->table_fd,
                           VFIOCPR_FD_MEMFD, error);
    c->table_registered = r == 0;
    return r;
}

/* exec or transfer: the table is sealed and registered. A failed handover leaves
 * it so (sealed, registered): the next change replaces it, and a retry hands the
 * same one again. */
static int table_hand(vfiocpr_container *c, GError **error)
{
    int r = table_register(c, error);

    if (r < 0 || c->table_sealed)
        return r;
    r = VK(add_seals, c->table_fd, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    if (r < 0)
        return vfiocpr_fail(error, r, "container '%s': DMA table memfd %d: seal", c->name,
                            c->table_fd);
    c->table_sealed = true;
    return 0;
}

int vfiocpr_vfio_register_tables(vfiocpr *ctx, GError **error)
{
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, vfiocpr_vfio_containers(vfiocpr_ctx_vfio(ctx)));
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        vfiocpr_container *c = k;
        int r = c->n_maps ? table_register(c, error) : 0;
        if (r < 0)
            return r;
    }
    return 0;
}

guint32 vfiocpr_container_table_check(const vfiocpr_container *c)
{
    return c->table_check;
}

/* In the order their state sections and required features are written. */
const vfiocpr_backend_ops *const vfiocpr_backends[] = { &vfiocpr_type1_ops,
                                                        &vfiocpr_iommufd_ops, NULL };

struct vfiocpr_vfio {
    GHashTable *containers; /* name -> vfiocpr_container* (ref held) */
    GHashTable *devices;    /* name -> vfiocpr_device* (ref held) */
};

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
    c->table_fd = -1;
    c->table_key = vfiocpr_key_dma_table(name);
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
    table_release(c, !c->prepared);
    g_free(c->rt);
    g_free(c->idx);
    g_free(c->reg_name);
    g_free(c->table_key);
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
    vfiocpr_ctx_changed(ctx);
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
    vfiocpr_ctx_changed(c->ctx);
    return c->ops->attach(c, name, out, error);
}

/* ------------------------------------------------------------------ DMA */

VFIOCPR_EXPORT int vfiocpr_dma_map(vfiocpr_container *c, uint64_t iova, uint64_t size,
                                   void *vaddr, int memfd, uint64_t offset, uint32_t flags,
                                   GError **error)
{
    vfiocpr_fd_stat mem = { 0 };
    vfiocpr_mapping m;
    wire_dma w;
    bool backed = false;
    int slot, r;

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
    /* a restart re-maps in the order it mapped, which is the table's unless it
     * unmapped since: the next slot first, the index only when that misses */
    if (c->n_pending && c->claim_hint < c->n_maps &&
        GUINT64_FROM_LE(REC(c, c->claim_hint)->iova) == iova)
        slot = (int)c->claim_hint;
    else
        slot = slot_of(c, iova);
    if (slot >= 0 && !c->rt[slot].provided) {
        vfiocpr_container_mapping(c, (guint)slot, &m);
        /* restart: the same range, the same memory, maybe a new address */
        if (m.size != size || m.flags != flags)
            return vfiocpr_fail(error, EINVAL, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                                ": the preserved range is 0x%" PRIx64 "-0x%" PRIx64 " flags %u, "
                                "not flags %u", c->name, iova, iova + size - 1, m.iova,
                                m.iova + m.size - 1, m.flags, flags);
        if (!backed || mem.dev != m.mem_dev || mem.ino != m.mem_ino || offset != m.offset)
            return vfiocpr_fail(error, EINVAL, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                                ": not the preserved memory (recorded memfd dev %" G_GUINT64_FORMAT
                                " ino %" G_GUINT64_FORMAT " offset 0x%" PRIx64 ", given fd %d "
                                "offset 0x%" PRIx64 ")", c->name, iova, iova + size - 1,
                                m.mem_dev, m.mem_ino, m.offset, memfd, offset);
        vfiocpr_ctx_step(c->ctx, "restoring");
        VFIOCPR_PROBE(remap__start, probe_s(c->name), iova, size);
        r = c->ops->remap(c, &m, vaddr, error);
        if (r == 0) {
            c->rt[slot] = (vfiocpr_map_rt){ .vaddr = vaddr, .memfd = memfd, .provided = 1 };
            c->n_pending--;
            c->claim_hint = (guint)slot + 1;
        }
        VFIOCPR_PROBE(remap__end, probe_s(c->name), iova, size, r, c->n_pending);
        return r;
    }
    if (slot >= 0)
        return vfiocpr_fail(error, EEXIST, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                            ": already mapped", c->name, iova, iova + size - 1);
    if ((r = vfiocpr_ctx_may_change(c->ctx, "dma map", error)) < 0)
        return r;
    if (c->prepared)
        return vfiocpr_fail(error, EBUSY, "container '%s': dma map: exec in progress", c->name);
    /* everything that can fail without a kernel change first */
    r = table_writable(c, c->n_maps + 1, error);
    if (r < 0)
        return r;
    if (2 * (gsize)(c->n_maps + 1) + 2 > (gsize)c->idx_mask + 1 || !c->idx)
        idx_build(c, MAX(2 * c->n_maps, 8u));
    m = (vfiocpr_mapping){ .iova = iova, .size = size, .offset = offset, .flags = flags,
                           .vaddr = vaddr, .memfd = backed ? memfd : -1, .mem_dev = mem.dev,
                           .mem_ino = mem.ino };
    r = c->ops->map(c, &m, error);
    if (r < 0)
        return r;
    w = wire_of(&m);
    r = slot_put(c, c->n_maps, &w, error);
    if (r < 0) {
        /* the table could not hold it: the mapping would be lost at the upgrade */
        c->table_stale = false; /* nothing beyond n_maps is read */
        c->table_check -= slot_check(c->n_maps, &w);
        c->ops->unmap(c, &m, NULL);
        return r;
    }
    c->rt[c->n_maps] = (vfiocpr_map_rt){ .vaddr = vaddr, .memfd = m.memfd, .provided = 1 };
    idx_add(c, c->n_maps);
    /* a prepared state patches in the count and check value of a table it names, but
     * a first mapping adds a table to the state */
    if (!c->n_maps)
        vfiocpr_ctx_changed(c->ctx);
    c->n_maps++;
    c->n_unbacked += m.memfd < 0;
    c->dma_bytes += size;
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_dma_unmap(vfiocpr_container *c, uint64_t iova, uint64_t size,
                                     GError **error)
{
    vfiocpr_mapping m;
    guint last;
    int slot, r;

    if (!c || c->fd < 0)
        return vfiocpr_fail(error, EINVAL, "container: dma unmap: bad container");
    slot = slot_of(c, iova);
    if (slot >= 0)
        vfiocpr_container_mapping(c, (guint)slot, &m);
    if (slot < 0 || m.size != size)
        return vfiocpr_fail(error, ENOENT, "container '%s': dma unmap 0x%" PRIx64 "-0x%" PRIx64
                            ": no mapping exactly there", c->name, iova, iova + size - 1);
    if ((r = vfiocpr_ctx_may_change(c->ctx, "dma unmap", error)) < 0)
        return r;
    if (c->prepared)
        return vfiocpr_fail(error, EBUSY, "container '%s': dma unmap 0x%" PRIx64 "-0x%" PRIx64
                            ": exec in progress", c->name, iova, iova + size - 1);
    if ((r = table_writable(c, c->n_maps, error)) < 0)
        return r;
    r = c->ops->unmap(c, &m, error);
    if (r < 0)
        return r;
    if (m.pending)
        c->n_pending--; /* a preserved range the backend let go of (iommufd) */
    else
        c->n_unbacked -= m.memfd < 0;
    c->dma_bytes -= size;
    last = c->n_maps - 1;
    idx_del(c, iova);
    if ((guint)slot != last) {
        wire_dma moved = *REC(c, last);
        c->table_check -= slot_check(last, &moved);
        c->rt[slot] = c->rt[last];
        /* the memfd's tail beyond n_maps is never read; a failed write marks it stale */
        slot_put(c, (guint)slot, &moved, NULL);
        c->idx[idx_pos(c, GUINT64_FROM_LE(moved.iova))] = (guint32)slot + 1;
    } else {
        c->table_check -= slot_check(last, REC(c, last));
    }
    c->n_maps--;
    if (!c->n_maps) {
        /* the table leaves the state, and its fd the registry (a prepared state
         * registered it) */
        if (c->table_registered)
            vfiocpr_fdreg_forget(vfiocpr_ctx_fdreg(c->ctx), c->table_key, 0);
        c->table_registered = false;
        vfiocpr_ctx_changed(c->ctx);
    }
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
    vfiocpr_ctx_changed(c->ctx);
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
    if (c->table_registered) /* its fd is closed with the container */
        vfiocpr_fdreg_forget(vfiocpr_ctx_fdreg(c->ctx), c->table_key, 0);
    c->table_inherited = false;
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
    GHashTableIter it;
    gpointer k;
    int r;

    /* counters kept at map time: nothing here grows with the mappings */
    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        vfiocpr_container *c = k;
        if (!c->n_maps)
            continue;
        if (c->n_pending)
            return vfiocpr_fail(error, EBUSY, "container '%s': %u preserved DMA ranges are not "
                                "re-mapped yet: finish the restore before the next exec",
                                c->name, c->n_pending);
        if (c->n_unbacked) {
            vfiocpr_mapping m = { 0 };
            for (guint i = 0; i < c->n_maps; i++) { /* only to name one in the message */
                vfiocpr_container_mapping(c, i, &m);
                if (m.memfd < 0)
                    break;
            }
            return vfiocpr_fail(error, EINVAL, "container '%s' (%s): DMA range 0x%" PRIx64
                                "-0x%" PRIx64 " is not backed by a registered memfd (mapped "
                                "by user address): the new image could not map it again",
                                c->name, c->ops->name, m.iova, m.iova + m.size - 1);
        }
        /* iommufd: CHANGE_PROCESS charges the new image before it uncharges the
         * old one, both to the same user (measured on 7.3) */
        pinned += c->ops == &vfiocpr_iommufd_ops ? 2 * c->dma_bytes : c->dma_bytes;
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
        if (!c->n_maps)
            continue;
        /* the table first: failing there leaves DMA untouched */
        r = table_hand(c, error);
        if (r == 0)
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
        /* the table stays sealed: the next change copies it to a fresh one */
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
    GVariantBuilder tables;
    bool any_table = false;

    g_variant_builder_init(&tables, VFIOCPR_SECTION_TYPE(DMA_TABLES));
    for (gsize b = 0; vfiocpr_backends[b]; b++) {
        const vfiocpr_backend_ops *ops = vfiocpr_backends[b];
        g_autoptr(GPtrArray) list = g_ptr_array_new();
        GHashTableIter it;
        gpointer k;

        g_hash_table_iter_init(&it, v->containers);
        while (g_hash_table_iter_next(&it, NULL, &k))
            if (((vfiocpr_container *)k)->ops == ops)
                g_ptr_array_add(list, k);
        if (!list->len)
            continue;
        g_ptr_array_sort(list, cmp_container_name);
        /* the records are in each container's sealed table (handed by prepare) */
        for (guint i = 0; i < list->len; i++) {
            vfiocpr_container *c = list->pdata[i];
            if (!c->n_maps)
                continue;
            g_variant_builder_add(&tables, "(suu)", c->name, (guint32)c->n_maps,
                                  c->table_check);
            any_table = true;
        }
        ops->serialize(ctx, list, d);
        vfiocpr_section_insert(d, ops->dma_section,
                               g_variant_new_fixed_array(G_VARIANT_TYPE(VFIOCPR_RECORD_DMA), NULL,
                                                         0, sizeof(wire_dma)));
        g_ptr_array_add(features, (gpointer)ops->feature);
    }
    if (any_table) {
        vfiocpr_section_insert(d, VFIOCPR_SEC_DMA_TABLES, g_variant_builder_end(&tables));
        g_ptr_array_add(features, (gpointer)VFIOCPR_FEATURE_DMA_TABLE);
    } else {
        g_variant_builder_clear(&tables);
    }
    /* 1.5: what each device fd is, for the restore's swap check (optional: a 1.4
     * reader ignores it) */
    vfiocpr_devices_serialize_identity(v->devices, d);
}

/* Slots for n records, in memory (a format before 1.6, or a copy). */
static void slots_alloc(vfiocpr_container *c, guint n)
{
    c->cap = MAX(n, 16u);
    c->rec = g_malloc((gsize)c->cap * sizeof(wire_dma));
    c->rec_owned = true;
    c->rt = g_new0(vfiocpr_map_rt, c->cap);
}

/* Formats 1.1 to 1.5: the records in the payload, copied into each container's
 * slots; the table memfd is written when the restore finishes. */
static int deserialize_dma(const vfiocpr_backend_ops *ops, GVariant *payload, GPtrArray *byidx,
                           GError **error)
{
    g_autoptr(GVariant) vdma = NULL;
    g_autofree guint *count = NULL;
    const wire_dma *w;
    gsize n;

    vdma = vfiocpr_section_lookup(payload, ops->dma_section);
    if (!vdma)
        return vfiocpr_fail(error, EBADMSG, "state: %s: section '%s' is missing or of the "
                            "wrong type", ops->name, vfiocpr_state_sections[ops->dma_section].name);
    w = g_variant_get_fixed_array(vdma, &n, sizeof(wire_dma));
    if (n > G_MAXUINT32 / 4)
        return vfiocpr_fail(error, EBADMSG, "state: %s: %zu DMA records", ops->name, n);
    /* the payload is in host order here (decode byteswapped it where needed); the
     * slots hold the table's little-endian bytes */
    count = g_new0(guint, byidx->len + 1);
    for (gsize i = 0; i < n; i++) {
        if (w[i].container >= byidx->len || !w[i].size || w[i].iova + w[i].size < w[i].iova ||
            (w[i].flags & ~(VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE)))
            return vfiocpr_fail(error, EBADMSG, "state: %s: DMA record %zu: bad container, "
                                "range or flags", ops->name, i);
        count[w[i].container]++;
    }
    for (guint k = 0; k < byidx->len; k++)
        if (count[k]) {
            vfiocpr_container *c = byidx->pdata[k];
            slots_alloc(c, count[k]);
            idx_build(c, count[k]);
        }
    for (gsize i = 0; i < n; i++) {
        vfiocpr_container *c = byidx->pdata[w[i].container];
        wire_dma *dst = REC(c, c->n_maps);
        vfiocpr_mapping m = { .iova = w[i].iova, .size = w[i].size, .offset = w[i].offset,
                              .flags = w[i].flags, .mem_dev = w[i].mem_dev,
                              .mem_ino = w[i].mem_ino };
        *dst = wire_of(&m);
        if (!idx_add(c, c->n_maps))
            return vfiocpr_fail(error, EBADMSG, "state: %s: DMA record %zu: iova 0x%" PRIx64
                                " appears twice in container '%s'", ops->name, i, w[i].iova,
                                c->name);
        c->table_check += slot_check(c->n_maps, dst);
        c->dma_bytes += w[i].size;
        c->n_maps++;
        c->n_pending++;
    }
    return 0;
}

/* Format 1.6: each container's records in a sealed table memfd (its fd in the
 * registry under vfio-dma-table:<container>), read in place. The state bytes are
 * checked as strictly as the payload's records were: seals, size, every record's
 * range and flags, no iova twice, and the check value the writer recorded. */
static int deserialize_tables(vfiocpr *ctx, GVariant *payload, GError **error)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    vfiocpr_fdreg *reg = vfiocpr_ctx_fdreg(ctx);
    g_autoptr(GVariant) vt = vfiocpr_section_lookup(payload, VFIOCPR_SEC_DMA_TABLES);
    g_autofree const char **req = NULL;
    bool feature;
    GVariantIter it;
    const char *name;
    guint32 count, check;

    {
        g_autoptr(GVariant) vreq = vfiocpr_section_lookup(payload, VFIOCPR_SEC_REQUIRED_FEATURES);
        if (vreq)
            req = g_variant_get_strv(vreq, NULL);
    }
    feature = req && g_strv_contains(req, VFIOCPR_FEATURE_DMA_TABLE);
    if (!vt && !vfiocpr_section_present(payload, VFIOCPR_SEC_DMA_TABLES) && !feature)
        return 0;
    if (!vt || !feature)
        return vfiocpr_fail(error, EBADMSG, "state: section '%s' %s", VFIOCPR_SECTION(DMA_TABLES),
                            !vt ? "is missing or of the wrong type"
                                : "is there but the feature '" VFIOCPR_FEATURE_DMA_TABLE
                                  "' is not required");
    g_variant_iter_init(&it, vt);
    while (g_variant_iter_next(&it, "(&suu)", &name, &count, &check)) {
        vfiocpr_container *c = g_hash_table_lookup(v->containers, name);
        vfiocpr_fd_stat st;
        off_t size = 0;
        void *map = NULL;
        guint32 sum = 0;
        guint64 last = 0;
        bool ascending = true;
        int fd, seals, r;

        if (!c || !c->preserved || c->rec || c->table_fd >= 0 || !count)
            return vfiocpr_fail(error, EBADMSG, "state: DMA table of container '%s': no such "
                                "preserved container, a second table for it, or no records",
                                name);
        if (count > VFIOCPR_STATE_MAX_PAYLOAD / sizeof(wire_dma))
            return vfiocpr_fail(error, EBADMSG, "state: DMA table of container '%s': %u "
                                "records", name, count);
        fd = vfiocpr_fdreg_find(reg, c->table_key, 0, VFIOCPR_FD_MEMFD, error);
        if (fd < 0)
            return fd == -ENOENT ? (g_prefix_error(error, "state: "), -EBADMSG) : fd;
        seals = VK(get_seals, fd);
        r = VK(fstat, fd, &st, &size);
        if (seals < 0 || r < 0 ||
            (seals & VFIOCPR_STATE_SEALS_REQUIRED) != VFIOCPR_STATE_SEALS_REQUIRED)
            return vfiocpr_fail(error, EPERM, "state: DMA table of container '%s': fd %d is not "
                                "a sealed memfd (seals 0x%x, need 0x%x)", name, fd,
                                seals < 0 ? 0u : (unsigned)seals, VFIOCPR_STATE_SEALS_REQUIRED);
        if ((guint64)size < (guint64)count * sizeof(wire_dma))
            return vfiocpr_fail(error, EBADMSG, "state: DMA table of container '%s': %lld bytes "
                                "cannot hold %u records", name, (long long)size, count);
        r = VK(mmap, fd, (gsize)count * sizeof(wire_dma), PROT_READ, 0, &map);
        if (r < 0)
            return vfiocpr_fail(error, r, "state: DMA table of container '%s': mmap of fd %d",
                                name, fd);
        c->rec = map;
        c->rec_owned = false;
        c->map_len = (gsize)count * sizeof(wire_dma);
        c->table_fd = fd;
        c->table_inherited = true;
        c->table_registered = true;
        c->table_sealed = true;
        c->cap = count;
        c->rt = g_new0(vfiocpr_map_rt, count);
        for (guint i = 0; i < count; i++) {
            const wire_dma *w = REC(c, i);
            guint32 fl = GUINT32_FROM_LE(w->flags);
            guint64 iova = GUINT64_FROM_LE(w->iova), sz = GUINT64_FROM_LE(w->size);
            if (w->container || !sz || iova + sz < iova ||
                (fl & ~(VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE)))
                return vfiocpr_fail(error, EBADMSG, "state: DMA table of container '%s': record "
                                    "%u: bad container, range or flags", name, i);
            ascending &= !i || iova > last;
            last = iova;
            c->dma_bytes += sz;
        }
        /* Strictly ascending iovas (a VMM that mapped in order and has not unmapped
         * since) have no duplicate and need no index for the restore: the claims
         * find their slots in order, and the index is built at the first miss or
         * change. Otherwise it is built now, which finds any iova twice. */
        if (!ascending) {
            idx_build(c, count);
            for (guint i = 0; i < count; i++) {
                c->n_maps = i;
                if (!idx_add(c, i))
                    return vfiocpr_fail(error, EBADMSG, "state: DMA table of container '%s': "
                                        "record %u: iova 0x%" PRIx64 " appears twice", name, i,
                                        GUINT64_FROM_LE(REC(c, i)->iova));
            }
        }
        c->n_maps = count;
        c->n_pending = count;
        sum = vfiocpr_dma_table_check(c->rec, count);
        if (sum != check)
            return vfiocpr_fail(error, EBADMSG, "state: DMA table of container '%s': check value "
                                "0x%08x, the state records 0x%08x (corrupt or not this state's "
                                "table)", name, sum, check);
        c->table_check = sum;
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
    int r = deserialize_tables(ctx, payload, error);
    if (r < 0)
        return r;
    /* every device fd is the device it is recorded for (fstat cannot tell) */
    return vfiocpr_devices_verify(ctx, payload, error);
}

int vfiocpr_vfio_finish(vfiocpr *ctx, GError **error)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    g_autoptr(GString) missing = g_string_new(NULL);
    bool blocked = false;
    guint n = 0;
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        vfiocpr_container *c = k;
        if (!c->n_pending)
            continue;
        blocked |= c->ops == &vfiocpr_type1_ops;
        for (guint i = 0; i < c->n_maps; i++) {
            vfiocpr_mapping m;
            if (c->rt[i].provided)
                continue;
            vfiocpr_container_mapping(c, i, &m);
            if (n++ < 8)
                g_string_append_printf(missing, "%s'%s' 0x%" PRIx64 "-0x%" PRIx64,
                                       n > 1 ? ", " : "", c->name, m.iova, m.iova + m.size - 1);
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
        vfiocpr_container *c = k;
        int r = c->ops->finish(c, error);
        if (r < 0)
            return r;
        /* restored from a format before 1.6: the table is written once, here */
        if (c->n_maps && c->table_fd < 0 && (r = table_writable(c, c->n_maps, error)) < 0)
            return r;
    }
    vfiocpr_devices_fill_identity(v->devices);
    return 0;
}

static gint cmp_mapping_iova(gconstpointer a, gconstpointer b)
{
    guint64 x = ((const vfiocpr_desc_map *)a)->iova, y = ((const vfiocpr_desc_map *)b)->iova;
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

static void describe_mapping(memfd_cache *mc, const vfiocpr_mapping *m, vfiocpr_desc_map *out)
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
    g_autofree vfiocpr_desc_map *dm = NULL;
    GVariantBuilder d;

    dm = g_new0(vfiocpr_desc_map, c->n_maps ? c->n_maps : 1);
    for (guint i = 0; i < c->n_maps; i++) {
        vfiocpr_mapping m;
        vfiocpr_container_mapping(c, i, &m);
        describe_mapping(&mc, &m, &dm[i]);
    }
    qsort(dm, c->n_maps, sizeof(*dm), cmp_mapping_iova);
    g_variant_builder_init(&d, G_VARIANT_TYPE_VARDICT);
    vfiocpr_kv_s(&d, "name", c->name);
    vfiocpr_kv_s(&d, "backend", c->ops->name);
    /* not claimed yet: the fd the registry holds for it */
    vfiocpr_kv_i(&d, "fd", c->fd >= 0 ? c->fd : MAX(vfiocpr_fdreg_peek(reg, c->reg_name, 0), -1));
    vfiocpr_kv_s(&d, "status", !c->preserved ? "open" : c->claimed ? "claimed" : "unclaimed");
    c->ops->describe(c, &d);
    vfiocpr_kv_u(&d, "dma-ranges", c->n_maps);
    vfiocpr_kv_t(&d, "dma-bytes", c->dma_bytes);
    vfiocpr_kv_u(&d, "remap-pending", c->n_pending);
    vfiocpr_kv(&d, "mappings",
               g_variant_new_fixed_array(G_VARIANT_TYPE(VFIOCPR_DESC_MAP_TYPE), dm, c->n_maps,
                                         sizeof(vfiocpr_desc_map)));
    return g_variant_builder_end(&d);
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

    g_ptr_array_unref(list);
    list = vfiocpr_devices_sorted(v->devices);
    g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
    for (guint i = 0; i < list->len; i++)
        g_variant_builder_add_value(&b, vfiocpr_device_describe(list->pdata[i]));
    vfiocpr_kv(out, "devices", g_variant_builder_end(&b));
}

/* The DMA tables: written as the VMM maps, sealed for a handover, read in place. */
const vfiocpr_decl vfiocpr_vfio_uses[] = {
    VFIOCPR_OP(open, 0),      VFIOCPR_OP(close, 0),     VFIOCPR_OP(memlock, 0),
    VFIOCPR_OP(memfd_create, 0), VFIOCPR_OP(pwrite, 0), VFIOCPR_OP(add_seals, 0),
    VFIOCPR_OP(get_seals, 0), VFIOCPR_OP(fstat, 0),     VFIOCPR_OP(mmap, 0),
    VFIOCPR_OP(munmap, 0),    VFIOCPR_DECL_END,
};
