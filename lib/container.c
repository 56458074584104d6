/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VFIO type1 containers, their groups and DMA mappings, and what an exec does to
 * them: refuse early (blockers), invalidate every vaddr with one ioctl per container,
 * put the old vaddrs back on rollback, and in the new image turn the VMM's DMA maps
 * into vaddr updates of the preserved ranges.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <linux/vfio.h>
#include <string.h>

#include "private.h"

typedef struct {
    guint64 iova, size, offset;
    guint32 flags;
    void *vaddr;       /* where the range is mapped now (NULL while pending) */
    int memfd;         /* -1: not backed by a memfd, cannot be preserved */
    guint64 mem_dev, mem_ino;
    bool pending;      /* restart: preserved, vaddr invalid until the VMM re-maps it */
    bool lone;         /* its own allocation (made in this image), not part of a block */
} mapping;

struct vfiocpr_container {
    gint ref;
    vfiocpr *ctx;
    char *name;
    char *reg_name; /* registry key of the container fd */
    int fd;
    bool iommu_set;
    bool preserved; /* came from the incoming state */
    bool claimed;   /* preserved and opened again by the VMM */
    bool invalidated; /* exec in progress: vaddrs invalidated by us */
    GHashTable *groups;   /* group id -> preserved? (GINT_TO_POINTER(1|2)) */
    GHashTable *maps;     /* mapping*, keyed by iova */
    GPtrArray *blocks;    /* where restored mappings live: one allocation per state */
    guint n_pending;
};

#define GROUP_ATTACHED 1
#define GROUP_PRESERVED 2 /* from the state, not attached again yet */

/* On-the-wire DMA record; matches the GVariant fixed struct "(uuttttt)". */
typedef struct {
    guint32 container;
    guint32 flags;
    guint64 iova, size, offset, mem_dev, mem_ino;
} wire_dma;
G_STATIC_ASSERT(sizeof(wire_dma) == 48);
#define WIRE_DMA_TYPE "(uuttttt)"

static guint map_hash(gconstpointer p)
{
    guint64 iova = ((const mapping *)p)->iova;
    return (guint)(iova >> 12) ^ (guint)(iova >> 40);
}

static gboolean map_equal(gconstpointer a, gconstpointer b)
{
    return ((const mapping *)a)->iova == ((const mapping *)b)->iova;
}

static vfiocpr_container *container_new(vfiocpr *ctx, const char *name)
{
    vfiocpr_container *c = g_new0(vfiocpr_container, 1);
    c->ref = 1;
    c->ctx = ctx;
    c->name = g_strdup(name);
    c->reg_name = g_strdup_printf("vfio-container:%s", name);
    c->fd = -1;
    c->groups = g_hash_table_new(g_direct_hash, g_direct_equal);
    /* mappings from the state live in blocks; those made later are freed one by one */
    c->maps = g_hash_table_new_full(map_hash, map_equal, NULL, NULL);
    c->blocks = g_ptr_array_new_with_free_func(g_free);
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
    g_hash_table_destroy(c->groups);
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

const char *vfiocpr_container_name(const vfiocpr_container *c)
{
    return c->name;
}

vfiocpr *vfiocpr_container_ctx(const vfiocpr_container *c)
{
    return c->ctx;
}

bool vfiocpr_container_has_group(const vfiocpr_container *c, int group_id, bool *attached)
{
    gpointer v;
    if (!g_hash_table_lookup_extended(c->groups, GINT_TO_POINTER(group_id), NULL, &v))
        return false;
    if (attached)
        *attached = GPOINTER_TO_INT(v) == GROUP_ATTACHED;
    return true;
}

guint vfiocpr_container_pending(const vfiocpr_container *c)
{
    return c->n_pending;
}

/* ------------------------------------------------------------------ registry */

struct vfiocpr_vfio {
    GHashTable *containers; /* name -> vfiocpr_container* (ref held) */
    GHashTable *devices;    /* name -> vfiocpr_device* (ref held) */
};

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

static int container_get(vfiocpr *ctx, const char *name, int fd, bool adopt,
                         vfiocpr_container **out, GError **error)
{
    vfiocpr_vfio *v;
    vfiocpr_container *c;
    int r, api;

    if (!ctx || !name || !*name || !out)
        return vfiocpr_fail(error, EINVAL, "container: open: NULL or empty argument");
    v = vfiocpr_ctx_vfio(ctx);
    c = g_hash_table_lookup(v->containers, name);
    if (c && c->preserved && !c->claimed) {
        if (adopt && fd >= 0)
            return vfiocpr_fail(error, EINVAL, "container '%s': adopt: in restart mode the "
                                "preserved fd is used, pass -1", name);
        r = vfiocpr_fdreg_find(vfiocpr_ctx_fdreg(ctx), c->reg_name, 0,
                               VFIOCPR_FD_VFIO_CONTAINER, error);
        if (r < 0)
            return r;
        c->fd = r;
        c->claimed = true;
        *out = vfiocpr_container_ref(c);
        return 0;
    }
    if (c)
        return vfiocpr_fail(error, EEXIST, "container '%s': already open", name);
    if (!adopt) {
        fd = VK(open, "/dev/vfio/vfio", O_RDWR);
        if (fd < 0)
            return vfiocpr_fail(error, fd, "container '%s': open /dev/vfio/vfio", name);
    } else if (fd < 0) {
        return vfiocpr_fail(error, EBADF, "container '%s': adopt: bad fd %d", name, fd);
    }
    api = VK(ioctl, fd, VFIO_GET_API_VERSION, NULL);
    if (api != VFIO_API_VERSION) {
        r = vfiocpr_fail(error, api < 0 ? api : EPROTONOSUPPORT,
                         "container '%s': VFIO_GET_API_VERSION gave %d, want %d", name, api,
                         VFIO_API_VERSION);
        goto fail;
    }
    r = VK(ioctl, fd, VFIO_CHECK_EXTENSION, (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU);
    if (r <= 0) {
        r = vfiocpr_fail(error, r < 0 ? r : ENOTSUP, "container '%s': no type1v2 IOMMU", name);
        goto fail;
    }
    c = container_new(ctx, name);
    r = vfiocpr_fdreg_save(vfiocpr_ctx_fdreg(ctx), c->reg_name, 0, fd, VFIOCPR_FD_VFIO_CONTAINER,
                           error);
    if (r < 0) {
        vfiocpr_container_unref(c);
        goto fail;
    }
    c->fd = fd;
    g_hash_table_insert(v->containers, c->name, c);
    *out = vfiocpr_container_ref(c);
    return 0;
fail:
    if (!adopt)
        VK(close, fd);
    return r;
}

VFIOCPR_EXPORT int vfiocpr_container_open(vfiocpr *ctx, const char *name,
                                          vfiocpr_container **out, GError **error)
{
    return container_get(ctx, name, -1, false, out, error);
}

VFIOCPR_EXPORT int vfiocpr_container_adopt(vfiocpr *ctx, const char *name, int fd,
                                           vfiocpr_container **out, GError **error)
{
    return container_get(ctx, name, fd, true, out, error);
}

VFIOCPR_EXPORT int vfiocpr_container_add_group(vfiocpr_container *c, int group_id,
                                               GError **error)
{
    vfiocpr_fdreg *reg;
    struct vfio_group_status status = { .argsz = sizeof(status) };
    char path[64];
    gpointer st;
    int fd, r;

    if (!c || c->fd < 0 || group_id < 0)
        return vfiocpr_fail(error, EINVAL, "container: add group %d: bad arguments", group_id);
    reg = vfiocpr_ctx_fdreg(c->ctx);
    if (g_hash_table_lookup_extended(c->groups, GINT_TO_POINTER(group_id), NULL, &st)) {
        /* restart: the preserved group is still attached to the preserved container */
        r = vfiocpr_fdreg_find(reg, "vfio-group", (guint64)group_id, VFIOCPR_FD_VFIO_GROUP, error);
        if (r >= 0)
            g_hash_table_insert(c->groups, GINT_TO_POINTER(group_id),
                                GINT_TO_POINTER(GROUP_ATTACHED));
        return r;
    }
    if (c->n_pending)
        return vfiocpr_fail(error, EBUSY, "container '%s': add group %d: not in the preserved "
                            "state, and a group cannot be attached while %u preserved DMA "
                            "ranges still wait for their new vaddr: re-map them first", c->name,
                            group_id, c->n_pending);
    if (c->invalidated)
        return vfiocpr_fail(error, EBUSY, "container '%s': add group %d: DMA vaddrs are "
                            "invalid during exec", c->name, group_id);
    if (vfiocpr_fdreg_find(reg, "vfio-group", (guint64)group_id, VFIOCPR_FD_VFIO_GROUP, NULL) >= 0)
        return vfiocpr_fail(error, EEXIST, "container '%s': add group %d: the group is already "
                            "attached to another container", c->name, group_id);
    snprintf(path, sizeof(path), "/dev/vfio/%d", group_id);
    fd = VK(open, path, O_RDWR);
    if (fd < 0)
        return vfiocpr_fail(error, fd, "container '%s': add group %d: open %s", c->name,
                            group_id, path);
    r = VK(ioctl, fd, VFIO_GROUP_GET_STATUS, &status);
    if (r < 0) {
        r = vfiocpr_fail(error, r, "container '%s': group %d: VFIO_GROUP_GET_STATUS", c->name,
                         group_id);
        goto fail;
    }
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        r = vfiocpr_fail(error, EPERM, "container '%s': group %d is not viable (bind every "
                         "device of the group to vfio-pci)", c->name, group_id);
        goto fail;
    }
    r = VK(ioctl, fd, VFIO_GROUP_SET_CONTAINER, &c->fd);
    if (r < 0) {
        r = vfiocpr_fail(error, r, "container '%s': group %d: VFIO_GROUP_SET_CONTAINER%s",
                         c->name, group_id, r == -EBUSY ? " (DMA vaddrs invalid?)" : "");
        goto fail;
    }
    if (!c->iommu_set) {
        r = VK(ioctl, c->fd, VFIO_SET_IOMMU, (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU);
        if (r < 0) {
            r = vfiocpr_fail(error, r, "container '%s': VFIO_SET_IOMMU(TYPE1v2)", c->name);
            VK(ioctl, fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
            goto fail;
        }
        c->iommu_set = true;
    }
    r = vfiocpr_fdreg_save(reg, "vfio-group", (guint64)group_id, fd, VFIOCPR_FD_VFIO_GROUP, error);
    if (r < 0) {
        VK(ioctl, fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
        goto fail;
    }
    g_hash_table_insert(c->groups, GINT_TO_POINTER(group_id), GINT_TO_POINTER(GROUP_ATTACHED));
    return fd;
fail:
    VK(close, fd);
    return r;
}

/* ------------------------------------------------------------------ DMA */

static const char *memlock_hint(int r)
{
    return r == -ENOMEM ? " (locked memory is charged again to this process: check "
                          "RLIMIT_MEMLOCK or grant CAP_IPC_LOCK)" : "";
}

static int map_vaddr(vfiocpr_container *c, mapping *m, void *vaddr)
{
    struct vfio_iommu_type1_dma_map map = {
        .argsz = sizeof(map),
        .flags = VFIO_DMA_MAP_FLAG_VADDR,
        .vaddr = (guint64)(uintptr_t)vaddr,
        .iova = m->iova,
        .size = m->size,
    };
    return VK(ioctl, c->fd, VFIO_IOMMU_MAP_DMA, &map);
}

VFIOCPR_EXPORT int vfiocpr_dma_map(vfiocpr_container *c, uint64_t iova, uint64_t size,
                                   void *vaddr, int memfd, uint64_t offset, uint32_t flags,
                                   GError **error)
{
    mapping key = { .iova = iova }, *m;
    vfiocpr_fd_stat mem = { 0 };
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
    m = g_hash_table_lookup(c->maps, &key);
    if (m && m->pending) {
        /* restart: the same range, the same memory, a new address */
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
        r = map_vaddr(c, m, vaddr);
        if (r < 0)
            return vfiocpr_fail(error, r, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                                ": VFIO_IOMMU_MAP_DMA(VADDR)%s; the range stays invalid and "
                                "the call can be retried", c->name, iova, iova + size - 1,
                                memlock_hint(r));
        m->vaddr = vaddr;
        m->memfd = memfd;
        m->pending = false;
        c->n_pending--;
        return 0;
    }
    if (m)
        return vfiocpr_fail(error, EEXIST, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                            ": already mapped", c->name, iova, iova + size - 1);
    if (c->invalidated)
        return vfiocpr_fail(error, EBUSY, "container '%s': dma map: exec in progress", c->name);
    {
        struct vfio_iommu_type1_dma_map map = {
            .argsz = sizeof(map),
            .flags = (flags & VFIOCPR_DMA_READ ? VFIO_DMA_MAP_FLAG_READ : 0) |
                     (flags & VFIOCPR_DMA_WRITE ? VFIO_DMA_MAP_FLAG_WRITE : 0),
            .vaddr = (guint64)(uintptr_t)vaddr,
            .iova = iova,
            .size = size,
        };
        r = VK(ioctl, c->fd, VFIO_IOMMU_MAP_DMA, &map);
        if (r < 0)
            return vfiocpr_fail(error, r, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                                ": VFIO_IOMMU_MAP_DMA%s", c->name, iova, iova + size - 1,
                                r == -ENOMEM ? " (check RLIMIT_MEMLOCK or CAP_IPC_LOCK)" : "");
    }
    m = g_new0(mapping, 1);
    *m = (mapping){ .iova = iova, .size = size, .offset = offset, .flags = flags,
                    .vaddr = vaddr, .memfd = backed ? memfd : -1, .mem_dev = mem.dev,
                    .mem_ino = mem.ino, .lone = true };
    g_hash_table_add(c->maps, m);
    g_ptr_array_add(c->blocks, m);
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_dma_unmap(vfiocpr_container *c, uint64_t iova, uint64_t size,
                                     GError **error)
{
    mapping key = { .iova = iova }, *m;
    struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un), .iova = iova, .size = size };
    int r;

    if (!c || c->fd < 0)
        return vfiocpr_fail(error, EINVAL, "container: dma unmap: bad container");
    m = g_hash_table_lookup(c->maps, &key);
    if (!m || m->size != size)
        return vfiocpr_fail(error, ENOENT, "container '%s': dma unmap 0x%" PRIx64 "-0x%" PRIx64
                            ": no mapping exactly there", c->name, iova, iova + size - 1);
    if (m->pending || c->invalidated)
        return vfiocpr_fail(error, EBUSY, "container '%s': dma unmap 0x%" PRIx64 "-0x%" PRIx64
                            ": the range's vaddr is invalid (restart or exec in progress)",
                            c->name, iova, iova + size - 1);
    r = VK(ioctl, c->fd, VFIO_IOMMU_UNMAP_DMA, &un);
    if (r < 0)
        return vfiocpr_fail(error, r, "container '%s': dma unmap 0x%" PRIx64 "-0x%" PRIx64
                            ": VFIO_IOMMU_UNMAP_DMA", c->name, iova, iova + size - 1);
    g_hash_table_remove(c->maps, m);
    /* a block from the state stays until the container goes; a lone one goes now */
    if (m->lone)
        g_ptr_array_remove_fast(c->blocks, m); /* frees it */
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_container_close(vfiocpr_container *c, GError **error)
{
    vfiocpr_fdreg *reg;
    vfiocpr_vfio *v;
    GHashTableIter it;
    gpointer k;

    if (!c || c->fd < 0)
        return vfiocpr_fail(error, EINVAL, "container: close: not open");
    reg = vfiocpr_ctx_fdreg(c->ctx);
    v = vfiocpr_ctx_vfio(c->ctx);
    g_hash_table_iter_init(&it, v->devices);
    while (g_hash_table_iter_next(&it, NULL, &k))
        if (vfiocpr_device_container(k) == c)
            return vfiocpr_fail(error, EBUSY, "container '%s': close: device '%s' is still "
                                "open", c->name, vfiocpr_device_name(k));
    g_hash_table_iter_init(&it, c->groups);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        int gfd = vfiocpr_fdreg_find(reg, "vfio-group", GPOINTER_TO_INT(k), VFIOCPR_FD_VFIO_GROUP,
                                     NULL);
        vfiocpr_fdreg_forget(reg, "vfio-group", GPOINTER_TO_INT(k));
        if (gfd >= 0)
            VK(close, gfd);
    }
    vfiocpr_fdreg_forget(reg, c->reg_name, 0);
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
        /* probed now, after every group attached: an mdev turns them off */
        for (int e = 0; e < 2; e++) {
            unsigned long ext = e ? VFIO_UNMAP_ALL : VFIO_UPDATE_VADDR;
            r = VK(ioctl, c->fd, VFIO_CHECK_EXTENSION, (void *)(uintptr_t)ext);
            if (r < 0)
                return vfiocpr_fail(error, r, "container '%s': VFIO_CHECK_EXTENSION(%s)", c->name,
                                    e ? "VFIO_UNMAP_ALL" : "VFIO_UPDATE_VADDR");
            if (r == 0)
                return vfiocpr_fail(error, ENOTSUP, "container '%s': the kernel cannot update "
                                    "DMA vaddrs (VFIO_UPDATE_VADDR or VFIO_UNMAP_ALL is 0: an "
                                    "mdev or emulated IOMMU group is attached, or the kernel "
                                    "predates 5.12)", c->name);
        }
        g_hash_table_iter_init(&mit, c->maps);
        while (g_hash_table_iter_next(&mit, &k, NULL)) {
            mapping *m = k;
            if (m->memfd < 0)
                return vfiocpr_fail(error, EINVAL, "container '%s': DMA range 0x%" PRIx64 "-0x%"
                                    PRIx64 " is not backed by a registered memfd: the new "
                                    "image could not map it again", c->name, m->iova,
                                    m->iova + m->size - 1);
            pinned += m->size;
        }
    }
    if (!pinned)
        return 0;
    r = VK(memlock, &limit, &cap);
    if (r < 0)
        return vfiocpr_fail(error, r, "exec check: reading RLIMIT_MEMLOCK");
    if (!cap && limit < pinned)
        return vfiocpr_fail(error, ENOMEM, "exec check: RLIMIT_MEMLOCK is %" G_GUINT64_FORMAT
                            " bytes but the new image will be charged %" G_GUINT64_FORMAT
                            " pinned bytes when it re-maps DMA: raise the limit or grant "
                            "CAP_IPC_LOCK", limit, pinned);
    return 0;
}

static void revalidate(vfiocpr_container *c)
{
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, c->maps);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        mapping *m = k;
        int r = map_vaddr(c, m, m->vaddr);
        if (r < 0)
            g_warning("container '%s': rollback: VFIO_IOMMU_MAP_DMA(VADDR) of 0x%" PRIx64 "-0x%"
                      PRIx64 " to its old vaddr failed: %s; DMA to it blocks", c->name, m->iova,
                      m->iova + m->size - 1, g_strerror(-r));
    }
    c->invalidated = false;
}

int vfiocpr_vfio_invalidate(vfiocpr *ctx, GError **error)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        vfiocpr_container *c = k;
        struct vfio_iommu_type1_dma_unmap un = {
            .argsz = sizeof(un),
            .flags = VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL,
        };
        int r;
        if (!g_hash_table_size(c->maps))
            continue;
        r = VK(ioctl, c->fd, VFIO_IOMMU_UNMAP_DMA, &un);
        if (r < 0) {
            vfiocpr_vfio_revalidate(ctx);
            return vfiocpr_fail(error, r, "container '%s': VFIO_IOMMU_UNMAP_DMA(VADDR|ALL)",
                                c->name);
        }
        c->invalidated = true;
    }
    return 0;
}

void vfiocpr_vfio_revalidate(vfiocpr *ctx)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k))
        if (((vfiocpr_container *)k)->invalidated)
            revalidate(k);
}

/* ------------------------------------------------------------------ state */

bool vfiocpr_vfio_serialize(vfiocpr *ctx, GVariantDict *d)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    GVariantBuilder groups, devices;
    GHashTableIter it, sub;
    gpointer k, val;
    gsize n_dma = 0, at = 0;
    wire_dma *dma;

    if (!g_hash_table_size(v->containers))
        return false;
    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k))
        n_dma += g_hash_table_size(((vfiocpr_container *)k)->maps);
    /* written in place and handed to the GVariant without a copy */
    dma = g_new0(wire_dma, n_dma ? n_dma : 1);
    g_variant_builder_init(&groups, G_VARIANT_TYPE("a(su)"));
    g_variant_builder_init(&devices, G_VARIANT_TYPE("a(ssu)"));
    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        vfiocpr_container *c = k;
        guint idx = names->len;
        g_ptr_array_add(names, c->name);
        g_hash_table_iter_init(&sub, c->groups);
        while (g_hash_table_iter_next(&sub, &k, NULL))
            g_variant_builder_add(&groups, "(su)", c->name, (guint32)GPOINTER_TO_INT(k));
        g_hash_table_iter_init(&sub, c->maps);
        while (g_hash_table_iter_next(&sub, &k, NULL)) {
            mapping *m = k;
            dma[at++] = (wire_dma){ .container = idx, .flags = m->flags, .iova = m->iova,
                                    .size = m->size, .offset = m->offset, .mem_dev = m->mem_dev,
                                    .mem_ino = m->mem_ino };
        }
    }
    g_hash_table_iter_init(&it, v->devices);
    while (g_hash_table_iter_next(&it, &k, &val))
        g_variant_builder_add(&devices, "(ssu)", (const char *)k,
                              vfiocpr_device_container(val)->name,
                              (guint32)vfiocpr_device_group(val));
    g_variant_dict_insert_value(d, "vfio-containers",
                                g_variant_new_strv((const char *const *)names->pdata, names->len));
    g_variant_dict_insert_value(d, "vfio-groups", g_variant_builder_end(&groups));
    g_variant_dict_insert_value(d, "vfio-devices", g_variant_builder_end(&devices));
    g_variant_dict_insert_value(d, "vfio-dma",
                                g_variant_new_from_data(G_VARIANT_TYPE("a" WIRE_DMA_TYPE), dma,
                                                        n_dma * sizeof(wire_dma), TRUE, g_free,
                                                        dma));
    vfiocpr_irqs_serialize(v->devices, d);
    return true;
}

int vfiocpr_vfio_deserialize(vfiocpr *ctx, GVariant *payload, GError **error)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    vfiocpr_fdreg *reg = vfiocpr_ctx_fdreg(ctx);
    g_autoptr(GVariant) vc = NULL, vg = NULL, vd = NULL, vdma = NULL;
    g_autoptr(GPtrArray) byidx = g_ptr_array_new();
    g_autofree const char **names = NULL;
    GVariantIter it;
    const char *cname, *dname;
    guint32 gid;
    const wire_dma *w;
    gsize n, n_names;

    vc = g_variant_lookup_value(payload, "vfio-containers", G_VARIANT_TYPE_STRING_ARRAY);
    vg = g_variant_lookup_value(payload, "vfio-groups", G_VARIANT_TYPE("a(su)"));
    vd = g_variant_lookup_value(payload, "vfio-devices", G_VARIANT_TYPE("a(ssu)"));
    vdma = g_variant_lookup_value(payload, "vfio-dma", G_VARIANT_TYPE("a" WIRE_DMA_TYPE));
    if (!vc && !vg && !vd && !vdma)
        return 0; /* a state without VFIO (format 1.0 from the foundation) */
    if (!vc || !vg || !vd || !vdma)
        return vfiocpr_fail(error, EBADMSG, "state: vfio: a section is missing or of the wrong "
                            "type");
    names = g_variant_get_strv(vc, &n_names);
    for (gsize i = 0; i < n_names; i++) {
        vfiocpr_container *c;
        if (!*names[i] || g_hash_table_contains(v->containers, names[i]))
            return vfiocpr_fail(error, EBADMSG, "state: vfio: container %zu: empty or duplicate "
                                "name", i);
        c = container_new(ctx, names[i]);
        c->preserved = true;
        c->iommu_set = true;
        g_hash_table_insert(v->containers, c->name, c);
        g_ptr_array_add(byidx, c);
        if (!vfiocpr_fdreg_has(reg, c->reg_name, 0, VFIOCPR_FD_VFIO_CONTAINER))
            return vfiocpr_fail(error, EBADMSG, "state: vfio: container '%s' has no preserved "
                                "fd", c->name);
    }
    g_variant_iter_init(&it, vg);
    while (g_variant_iter_next(&it, "(&su)", &cname, &gid)) {
        vfiocpr_container *c = g_hash_table_lookup(v->containers, cname);
        if (!c || gid > G_MAXINT ||
            !vfiocpr_fdreg_has(reg, "vfio-group", gid, VFIOCPR_FD_VFIO_GROUP) ||
            g_hash_table_contains(c->groups, GINT_TO_POINTER((int)gid)))
            return vfiocpr_fail(error, EBADMSG, "state: vfio: group %u of container '%s': "
                                "unknown container, duplicate or no preserved fd", gid, cname);
        g_hash_table_insert(c->groups, GINT_TO_POINTER((int)gid), GINT_TO_POINTER(GROUP_PRESERVED));
    }
    g_variant_iter_init(&it, vd);
    while (g_variant_iter_next(&it, "(&s&su)", &dname, &cname, &gid)) {
        vfiocpr_container *c = g_hash_table_lookup(v->containers, cname);
        vfiocpr_device *dev;
        int r;
        if (!c || !g_hash_table_contains(c->groups, GINT_TO_POINTER((int)gid)) || !*dname ||
            g_hash_table_contains(v->devices, dname))
            return vfiocpr_fail(error, EBADMSG, "state: vfio: device '%s': unknown container or "
                                "group, or duplicate", dname);
        r = vfiocpr_device_preserved(c, (int)gid, dname, &dev, error);
        if (r < 0)
            return r;
        g_hash_table_insert(v->devices, (gpointer)vfiocpr_device_name(dev), dev);
    }
    w = g_variant_get_fixed_array(vdma, &n, sizeof(wire_dma));
    {
        /* one allocation per container for all its ranges: count, then fill */
        g_autofree gsize *count = g_new0(gsize, byidx->len + 1);
        g_autofree mapping **next = g_new0(mapping *, byidx->len + 1);
        for (gsize i = 0; i < n; i++) {
            if (w[i].container >= byidx->len || !w[i].size || w[i].iova + w[i].size < w[i].iova ||
                (w[i].flags & ~(VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE)))
                return vfiocpr_fail(error, EBADMSG, "state: vfio: DMA record %zu: bad container, "
                                    "range or flags", i);
            count[w[i].container]++;
        }
        for (guint k = 0; k < byidx->len; k++)
            if (count[k]) {
                next[k] = g_new0(mapping, count[k]);
                g_ptr_array_add(((vfiocpr_container *)byidx->pdata[k])->blocks, next[k]);
            }
        for (gsize i = 0; i < n; i++) {
            vfiocpr_container *c = byidx->pdata[w[i].container];
            mapping *m = next[w[i].container]++;
            *m = (mapping){ .iova = w[i].iova, .size = w[i].size, .offset = w[i].offset,
                            .flags = w[i].flags, .memfd = -1, .mem_dev = w[i].mem_dev,
                            .mem_ino = w[i].mem_ino, .pending = true };
            if (!g_hash_table_add(c->maps, m))
                return vfiocpr_fail(error, EBADMSG, "state: vfio: DMA record %zu: iova 0x%" PRIx64
                                    " appears twice in container '%s'", i, w[i].iova, c->name);
            c->n_pending++;
        }
    }
    return vfiocpr_irqs_deserialize(v->devices, reg, payload, error);
}

int vfiocpr_vfio_finish(vfiocpr *ctx, GError **error)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    g_autoptr(GString) missing = g_string_new(NULL);
    guint n = 0;
    GHashTableIter it, mit;
    gpointer k;

    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        vfiocpr_container *c = k;
        if (!c->n_pending)
            continue;
        g_hash_table_iter_init(&mit, c->maps);
        while (g_hash_table_iter_next(&mit, &k, NULL)) {
            mapping *m = k;
            if (!m->pending)
                continue;
            if (n++ < 8)
                g_string_append_printf(missing, "%s'%s' 0x%" PRIx64 "-0x%" PRIx64,
                                       n > 1 ? ", " : "", c->name, m->iova, m->iova + m->size - 1);
        }
    }
    if (n)
        return vfiocpr_fail(error, ESTALE, "finish: %u preserved DMA ranges were not re-mapped "
                            "(their vaddr is still invalid, DMA to them blocks): %s%s", n,
                            missing->str, n > 8 ? ", ..." : "");
    return 0;
}

void vfiocpr_vfio_describe(vfiocpr *ctx, GString *out)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, v->containers);
    while (g_hash_table_iter_next(&it, NULL, &k)) {
        vfiocpr_container *c = k;
        guint64 bytes = 0;
        GHashTableIter mit;
        g_hash_table_iter_init(&mit, c->maps);
        while (g_hash_table_iter_next(&mit, &k, NULL))
            bytes += ((mapping *)k)->size;
        g_string_append_printf(out, "container '%s': %u groups, %u DMA ranges (%" G_GUINT64_FORMAT
                               " bytes)%s\n", c->name, g_hash_table_size(c->groups),
                               g_hash_table_size(c->maps), bytes,
                               c->n_pending ? ", re-map pending" : "");
    }
    g_hash_table_iter_init(&it, v->devices);
    while (g_hash_table_iter_next(&it, &k, NULL))
        g_string_append_printf(out, "device '%s'\n", (const char *)k);
}
