/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The type1 backend: the legacy VFIO container (/dev/vfio/vfio) and its IOMMU
 * groups. Across exec the DMA mappings survive in the kernel but their vaddrs do
 * not: one UNMAP_DMA(VADDR|ALL) per container invalidates them before exec (DMA to
 * guest RAM blocks from there), the old vaddrs come back on rollback, and the new
 * image's DMA maps become MAP_DMA(VADDR) updates of the preserved ranges.
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
    bool iommu_set;
    GHashTable *groups; /* group id -> GROUP_ATTACHED | GROUP_PRESERVED */
    /* VFIO_UPDATE_VADDR and VFIO_UNMAP_ALL, known outside any blackout: only a group
     * joining the container changes them (an mdev turns them off), so they are
     * probed when one joins; a restored container proved them by the previous
     * image's UNMAP_DMA(VADDR|ALL) and its own first MAP_DMA(VADDR). 0 not known
     * yet (probed at the check), 1 both, -ENOTSUP one is 0, else the probe's error
     * with vaddr_which naming the extension. */
    int vaddr_ext;
    int vaddr_which;
} type1;

#define GROUP_ATTACHED 1
#define GROUP_PRESERVED 2 /* from the state, not attached again yet */

static type1 *T(const vfiocpr_container *c)
{
    return c->priv;
}

static void free_priv(gpointer p)
{
    type1 *t = p;
    g_hash_table_destroy(t->groups);
    g_free(t);
}

static type1 *priv_new(vfiocpr_container *c)
{
    type1 *t = g_new0(type1, 1);
    t->groups = g_hash_table_new(g_direct_hash, g_direct_equal);
    c->priv = t;
    return t;
}

static bool is_type1(const vfiocpr_container *c)
{
    return c && c->ops == &vfiocpr_type1_ops;
}

bool vfiocpr_container_has_group(const vfiocpr_container *c, int group_id, bool *attached)
{
    gpointer v;
    if (!is_type1(c) ||
        !g_hash_table_lookup_extended(T(c)->groups, GINT_TO_POINTER(group_id), NULL, &v))
        return false;
    if (attached)
        *attached = GPOINTER_TO_INT(v) == GROUP_ATTACHED;
    return true;
}

static int t1_open(vfiocpr_container *c, int fd, GError **error)
{
    int api, r;

    priv_new(c);
    c->fd = fd >= 0 ? fd : VK(open, "/dev/vfio/vfio", O_RDWR);
    if (c->fd < 0) {
        r = c->fd;
        c->fd = -1;
        return vfiocpr_fail(error, r, "container '%s': open /dev/vfio/vfio", c->name);
    }
    api = VK(ioctl, c->fd, VFIO_GET_API_VERSION, NULL);
    if (api != VFIO_API_VERSION)
        return vfiocpr_fail(error, api < 0 ? api : EPROTONOSUPPORT,
                            "container '%s': VFIO_GET_API_VERSION gave %d, want %d", c->name, api,
                            VFIO_API_VERSION);
    r = VK(ioctl, c->fd, VFIO_CHECK_EXTENSION, (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU);
    if (r <= 0)
        return vfiocpr_fail(error, r < 0 ? r : ENOTSUP, "container '%s': no type1v2 IOMMU",
                            c->name);
    return 0;
}

/* Never fails the caller: a VMM that does not upgrade may attach an mdev; the
 * answer is reported by the exec check. */
static int probe_vaddr(vfiocpr_container *c)
{
    type1 *t = T(c);
    for (int e = 0; e < 2; e++) {
        unsigned long ext = e ? VFIO_UNMAP_ALL : VFIO_UPDATE_VADDR;
        int r = VK(ioctl, c->fd, VFIO_CHECK_EXTENSION, (void *)(uintptr_t)ext);
        t->vaddr_which = e;
        if (r < 0)
            return r; /* not kept: the check asks again */
        if (r == 0)
            return t->vaddr_ext = -ENOTSUP;
    }
    return t->vaddr_ext = 1;
}

VFIOCPR_EXPORT int vfiocpr_container_add_group(vfiocpr_container *c, int group_id,
                                               GError **error)
{
    vfiocpr_fdreg *reg;
    struct vfio_group_status status = { .argsz = sizeof(status) };
    type1 *t;
    char path[64];
    gpointer st;
    int fd, r;

    if (!c || c->fd < 0 || group_id < 0)
        return vfiocpr_fail(error, EINVAL, "container: add group %d: bad arguments", group_id);
    vfiocpr_ctx_changed(c->ctx);
    if (!is_type1(c))
        return vfiocpr_fail(error, EINVAL, "container '%s': add group %d: a %s container has "
                            "no groups (vfiocpr_device_attach opens devices by name)", c->name,
                            group_id, c->ops->name);
    t = T(c);
    reg = vfiocpr_ctx_fdreg(c->ctx);
    if (g_hash_table_lookup_extended(t->groups, GINT_TO_POINTER(group_id), NULL, &st)) {
        /* restart: the preserved group is still attached to the preserved container */
        r = vfiocpr_fdreg_find(reg, VFIOCPR_KEY_GROUP, (guint64)group_id, VFIOCPR_FD_VFIO_GROUP,
                               error);
        if (r >= 0)
            g_hash_table_insert(t->groups, GINT_TO_POINTER(group_id),
                                GINT_TO_POINTER(GROUP_ATTACHED));
        return r;
    }
    if (c->n_pending)
        return vfiocpr_fail(error, EBUSY, "container '%s': add group %d: not in the preserved "
                            "state, and a group cannot be attached while %u preserved DMA "
                            "ranges still wait for their new vaddr: re-map them first", c->name,
                            group_id, c->n_pending);
    if (c->prepared)
        return vfiocpr_fail(error, EBUSY, "container '%s': add group %d: DMA vaddrs are "
                            "invalid during exec", c->name, group_id);
    if ((r = vfiocpr_ctx_may_change(c->ctx, "add group", error)) < 0)
        return r;
    if (vfiocpr_fdreg_find(reg, VFIOCPR_KEY_GROUP, (guint64)group_id, VFIOCPR_FD_VFIO_GROUP,
                           NULL) >= 0)
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
    if (!t->iommu_set) {
        r = VK(ioctl, c->fd, VFIO_SET_IOMMU, (void *)(uintptr_t)VFIO_TYPE1v2_IOMMU);
        if (r < 0) {
            r = vfiocpr_fail(error, r, "container '%s': VFIO_SET_IOMMU(TYPE1v2)", c->name);
            VK(ioctl, fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
            goto fail;
        }
        t->iommu_set = true;
    }
    r = vfiocpr_fdreg_save(reg, VFIOCPR_KEY_GROUP, (guint64)group_id, fd, VFIOCPR_FD_VFIO_GROUP,
                           error);
    if (r < 0) {
        VK(ioctl, fd, VFIO_GROUP_UNSET_CONTAINER, NULL);
        goto fail;
    }
    g_hash_table_insert(t->groups, GINT_TO_POINTER(group_id), GINT_TO_POINTER(GROUP_ATTACHED));
    probe_vaddr(c);
    return fd;
fail:
    VK(close, fd);
    return r;
}

static int t1_attach(vfiocpr_container *c, const char *name, vfiocpr_device **out,
                     GError **error)
{
    bool attached = false;
    int group, r;

    group = vfiocpr_device_group_id(name, error);
    if (group < 0)
        return group;
    if (!vfiocpr_container_has_group(c, group, &attached) || !attached) {
        r = vfiocpr_container_add_group(c, group, error);
        if (r < 0)
            return r;
    }
    return vfiocpr_device_open(c, group, name, out, error);
}

/* ------------------------------------------------------------------ DMA */

static const char *memlock_hint(int r)
{
    return r == -ENOMEM ? " (locked memory is charged to this process: check "
                          "RLIMIT_MEMLOCK or grant CAP_IPC_LOCK)" : "";
}

static int map_vaddr(vfiocpr_container *c, vfiocpr_mapping *m, void *vaddr)
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

static int t1_map(vfiocpr_container *c, vfiocpr_mapping *m, GError **error)
{
    struct vfio_iommu_type1_dma_map map = {
        .argsz = sizeof(map),
        .flags = (m->flags & VFIOCPR_DMA_READ ? VFIO_DMA_MAP_FLAG_READ : 0) |
                 (m->flags & VFIOCPR_DMA_WRITE ? VFIO_DMA_MAP_FLAG_WRITE : 0),
        .vaddr = (guint64)(uintptr_t)m->vaddr,
        .iova = m->iova,
        .size = m->size,
    };
    int r = VK(ioctl, c->fd, VFIO_IOMMU_MAP_DMA, &map);

    if (r < 0)
        return vfiocpr_fail(error, r, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                            ": VFIO_IOMMU_MAP_DMA%s", c->name, m->iova, m->iova + m->size - 1,
                            memlock_hint(r));
    return 0;
}

static int t1_remap(vfiocpr_container *c, vfiocpr_mapping *m, void *vaddr, GError **error)
{
    int r = map_vaddr(c, m, vaddr);

    if (r == 0 && !T(c)->vaddr_ext)
        T(c)->vaddr_ext = 1; /* no group can join before every range is re-mapped */
    if (r < 0)
        return vfiocpr_fail(error, r, "container '%s': dma map 0x%" PRIx64 "-0x%" PRIx64
                            ": VFIO_IOMMU_MAP_DMA(VADDR)%s; the range stays invalid and "
                            "the call can be retried", c->name, m->iova, m->iova + m->size - 1,
                            memlock_hint(r));
    return 0;
}

static int t1_unmap(vfiocpr_container *c, vfiocpr_mapping *m, GError **error)
{
    struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un), .iova = m->iova,
                                             .size = m->size };
    int r;

    if (m->pending)
        return vfiocpr_fail(error, EBUSY, "container '%s': dma unmap 0x%" PRIx64 "-0x%" PRIx64
                            ": the range's vaddr is invalid (restart in progress)", c->name,
                            m->iova, m->iova + m->size - 1);
    r = VK(ioctl, c->fd, VFIO_IOMMU_UNMAP_DMA, &un);
    if (r < 0)
        return vfiocpr_fail(error, r, "container '%s': dma unmap 0x%" PRIx64 "-0x%" PRIx64
                            ": VFIO_IOMMU_UNMAP_DMA", c->name, m->iova, m->iova + m->size - 1);
    return 0;
}

static int t1_close(vfiocpr_container *c, GError **error G_GNUC_UNUSED)
{
    vfiocpr_fdreg *reg = vfiocpr_ctx_fdreg(c->ctx);
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, T(c)->groups);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        int gfd = vfiocpr_fdreg_find(reg, VFIOCPR_KEY_GROUP, GPOINTER_TO_INT(k),
                                     VFIOCPR_FD_VFIO_GROUP, NULL);
        vfiocpr_fdreg_forget(reg, VFIOCPR_KEY_GROUP, GPOINTER_TO_INT(k));
        if (gfd >= 0)
            VK(close, gfd);
    }
    return 0;
}

/* ------------------------------------------------------------------ exec phases */

static int t1_check(vfiocpr_container *c, GError **error)
{
    int r = T(c)->vaddr_ext ? T(c)->vaddr_ext : probe_vaddr(c);

    if (r == -ENOTSUP)
        return vfiocpr_fail(error, ENOTSUP, "container '%s': the kernel cannot update "
                            "DMA vaddrs (VFIO_UPDATE_VADDR or VFIO_UNMAP_ALL is 0: an "
                            "mdev or emulated IOMMU group is attached, the container is "
                            "iommufd's emulation, or the kernel predates 5.12)", c->name);
    if (r < 0)
        return vfiocpr_fail(error, r, "container '%s': VFIO_CHECK_EXTENSION(%s)", c->name,
                            T(c)->vaddr_which ? "VFIO_UNMAP_ALL" : "VFIO_UPDATE_VADDR");
    return 0;
}

/* From here until the new image re-maps, DMA to the ranges blocks in the kernel. */
static int t1_prepare(vfiocpr_container *c, GError **error)
{
    struct vfio_iommu_type1_dma_unmap un = {
        .argsz = sizeof(un),
        .flags = VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL,
    };
    int r = VK(ioctl, c->fd, VFIO_IOMMU_UNMAP_DMA, &un);

    if (r < 0)
        return vfiocpr_fail(error, r, "container '%s': VFIO_IOMMU_UNMAP_DMA(VADDR|ALL)", c->name);
    return 0;
}

/* Back to the old vaddrs. After a transfer the new process may have re-mapped some
 * ranges to its own addresses already (the kernel then refuses MAP|VADDR on them as
 * valid): those are invalidated one by one first. */
static void t1_undo(vfiocpr_container *c)
{
    for (guint i = 0; i < vfiocpr_container_n_maps(c); i++) {
        vfiocpr_mapping mm, *m = &mm;
        int r;
        vfiocpr_container_mapping(c, i, m);
        r = map_vaddr(c, m, m->vaddr);
        if (r == -EINVAL) {
            struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un),
                                                     .flags = VFIO_DMA_UNMAP_FLAG_VADDR,
                                                     .iova = m->iova, .size = m->size };
            r = VK(ioctl, c->fd, VFIO_IOMMU_UNMAP_DMA, &un);
            if (r == 0)
                r = map_vaddr(c, m, m->vaddr);
        }
        if (r < 0)
            g_warning("container '%s': rollback: VFIO_IOMMU_MAP_DMA(VADDR) of 0x%" PRIx64 "-0x%"
                      PRIx64 " to its old vaddr failed: %s; DMA to it blocks", c->name, m->iova,
                      m->iova + m->size - 1, g_strerror(-r));
    }
}

static int t1_finish(vfiocpr_container *c G_GNUC_UNUSED, GError **error G_GNUC_UNUSED)
{
    return 0; /* every range re-mapped (checked by the caller) is all it takes */
}

/* ------------------------------------------------------------------ state
 * Sections of format 1.1: vfio-containers (names, the index of vfio-dma records),
 * vfio-groups (container, group), vfio-devices (device, container, group). */

static void t1_serialize(vfiocpr *ctx, GPtrArray *list, GVariantDict *d)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    GVariantBuilder groups, devices;
    GHashTableIter it;
    gpointer k, val;

    g_variant_builder_init(&groups, VFIOCPR_SECTION_TYPE(VFIO_GROUPS));
    g_variant_builder_init(&devices, VFIOCPR_SECTION_TYPE(VFIO_DEVICES));
    for (guint i = 0; i < list->len; i++) {
        vfiocpr_container *c = list->pdata[i];
        g_ptr_array_add(names, c->name);
        g_hash_table_iter_init(&it, T(c)->groups);
        while (g_hash_table_iter_next(&it, &k, NULL))
            g_variant_builder_add(&groups, "(su)", c->name, (guint32)GPOINTER_TO_INT(k));
    }
    g_hash_table_iter_init(&it, vfiocpr_vfio_devices(vfiocpr_ctx_vfio(ctx)));
    while (g_hash_table_iter_next(&it, &k, &val))
        if (is_type1(vfiocpr_device_container(val)))
            g_variant_builder_add(&devices, "(ssu)", (const char *)k,
                                  vfiocpr_device_container(val)->name,
                                  (guint32)vfiocpr_device_group(val));
    vfiocpr_section_insert(d, VFIOCPR_SEC_VFIO_CONTAINERS,
                           g_variant_new_strv((const char *const *)names->pdata, names->len));
    vfiocpr_section_insert(d, VFIOCPR_SEC_VFIO_GROUPS, g_variant_builder_end(&groups));
    vfiocpr_section_insert(d, VFIOCPR_SEC_VFIO_DEVICES, g_variant_builder_end(&devices));
}

/* fstat identity (checked before) tells group fds apart, but a forged record could
 * carry another group's fd with that group's identity: the fd's path names its
 * group. One readlink per group. */
static int check_group_fd(vfiocpr_container *c, guint32 gid, GError **error)
{
    int fd = vfiocpr_fdreg_peek(vfiocpr_ctx_fdreg(c->ctx), VFIOCPR_KEY_GROUP, gid);
    char link[256], want[64], want_noiommu[64];
    int r;

    if (fd < 0)
        return vfiocpr_fail(error, EBADMSG, "state: vfio: group %u has no preserved fd", gid);
    r = VK(fd_path, fd, link, sizeof(link));
    if (r < 0)
        return vfiocpr_fail(error, r, "state: vfio: group %u of container '%s': restore: "
                            "reading the path of inherited fd %d", gid, c->name, fd);
    snprintf(want, sizeof(want), "/dev/vfio/%u", gid);
    snprintf(want_noiommu, sizeof(want_noiommu), "/dev/vfio/noiommu-%u", gid);
    if (strcmp(link, want) != 0 && strcmp(link, want_noiommu) != 0)
        return vfiocpr_fail(error, EBADFD, "state: vfio: group %u of container '%s': restore: "
                            "inherited fd %d is %s, not %s: the state's fds are swapped or "
                            "forged; nothing was touched", gid, c->name, fd, link, want);
    return 0;
}

static int t1_deserialize(vfiocpr *ctx, GVariant *payload, GPtrArray *byidx, GError **error)
{
    vfiocpr_vfio *v = vfiocpr_ctx_vfio(ctx);
    vfiocpr_fdreg *reg = vfiocpr_ctx_fdreg(ctx);
    GHashTable *devices = vfiocpr_vfio_devices(v);
    g_autoptr(GVariant) vc = NULL, vg = NULL, vd = NULL;
    g_autofree const char **names = NULL;
    GVariantIter it;
    const char *cname, *dname;
    guint32 gid;
    gsize n_names;
    bool dma;
    int r;

    vc = vfiocpr_section_lookup(payload, VFIOCPR_SEC_VFIO_CONTAINERS);
    vg = vfiocpr_section_lookup(payload, VFIOCPR_SEC_VFIO_GROUPS);
    vd = vfiocpr_section_lookup(payload, VFIOCPR_SEC_VFIO_DEVICES);
    dma = vfiocpr_section_present(payload, VFIOCPR_SEC_VFIO_DMA);
    if (!vc && !vg && !vd && !dma)
        return 0;
    if (!vc || !vg || !vd || !dma)
        return vfiocpr_fail(error, EBADMSG, "state: vfio: a section is missing or of the wrong "
                            "type");
    names = g_variant_get_strv(vc, &n_names);
    for (gsize i = 0; i < n_names; i++) {
        vfiocpr_container *c;
        if (!*names[i] || g_hash_table_contains(vfiocpr_vfio_containers(v), names[i]))
            return vfiocpr_fail(error, EBADMSG, "state: vfio: container %zu: empty or duplicate "
                                "name", i);
        c = vfiocpr_container_new(ctx, names[i], &vfiocpr_type1_ops, true);
        priv_new(c)->iommu_set = true;
        g_ptr_array_add(byidx, c);
    }
    g_variant_iter_init(&it, vg);
    while (g_variant_iter_next(&it, "(&su)", &cname, &gid)) {
        vfiocpr_container *c = g_hash_table_lookup(vfiocpr_vfio_containers(v), cname);
        if (!is_type1(c) || gid > G_MAXINT ||
            !vfiocpr_fdreg_has(reg, VFIOCPR_KEY_GROUP, gid, VFIOCPR_FD_VFIO_GROUP) ||
            g_hash_table_contains(T(c)->groups, GINT_TO_POINTER((int)gid)))
            return vfiocpr_fail(error, EBADMSG, "state: vfio: group %u of container '%s': "
                                "unknown container, duplicate or no preserved fd", gid, cname);
        r = check_group_fd(c, gid, error);
        if (r < 0)
            return r;
        g_hash_table_insert(T(c)->groups, GINT_TO_POINTER((int)gid),
                            GINT_TO_POINTER(GROUP_PRESERVED));
    }
    g_variant_iter_init(&it, vd);
    while (g_variant_iter_next(&it, "(&s&su)", &dname, &cname, &gid)) {
        vfiocpr_container *c = g_hash_table_lookup(vfiocpr_vfio_containers(v), cname);
        vfiocpr_device *dev;
        if (!is_type1(c) || !g_hash_table_contains(T(c)->groups, GINT_TO_POINTER((int)gid)) ||
            !*dname || g_hash_table_contains(devices, dname))
            return vfiocpr_fail(error, EBADMSG, "state: vfio: device '%s': unknown container or "
                                "group, or duplicate", dname);
        r = vfiocpr_device_preserved(c, (int)gid, dname, VFIOCPR_FD_VFIO_DEVICE, &dev, error);
        if (r < 0)
            return r;
    }
    return 1;
}

static void t1_describe(vfiocpr_container *c, GVariantBuilder *out)
{
    g_autoptr(GList) ids = g_hash_table_get_keys(T(c)->groups);
    vfiocpr_fdreg *reg = vfiocpr_ctx_fdreg(c->ctx);
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
    ids = g_list_sort(ids, (GCompareFunc)(void *)vfiocpr_cmp_uint_ptr);
    for (GList *l = ids; l; l = l->next) {
        int id = GPOINTER_TO_INT(l->data);
        GVariantBuilder g;

        g_variant_builder_init(&g, G_VARIANT_TYPE_VARDICT);
        vfiocpr_kv_u(&g, "id", (guint32)id);
        vfiocpr_kv_i(&g, "fd", MAX(vfiocpr_fdreg_peek(reg, "vfio-group", (guint64)id), -1));
        vfiocpr_kv_s(&g, "status",
                     GPOINTER_TO_INT(g_hash_table_lookup(T(c)->groups, l->data)) ==
                             GROUP_ATTACHED ? "attached" : "preserved");
        g_variant_builder_add_value(&b, g_variant_builder_end(&g));
    }
    vfiocpr_kv(out, "groups", g_variant_builder_end(&b));
}

static const vfiocpr_decl t1_uses[] = {
    VFIOCPR_OP(open, 0),
    VFIOCPR_OP(fd_path, 0), /* a restored group fd is /dev/vfio/<its group> */
    VFIOCPR_OP(close, 0),
    VFIOCPR_IOCTL(VFIO_GET_API_VERSION, 0),
    VFIOCPR_IOCTL(VFIO_CHECK_EXTENSION, 0),
    VFIOCPR_IOCTL(VFIO_SET_IOMMU, 0),
    VFIOCPR_IOCTL(VFIO_GROUP_GET_STATUS, 0),
    VFIOCPR_IOCTL(VFIO_GROUP_SET_CONTAINER, 0),
    VFIOCPR_IOCTL(VFIO_GROUP_UNSET_CONTAINER, 0),
    VFIOCPR_IOCTL(VFIO_IOMMU_MAP_DMA, 0),
    VFIOCPR_IOCTL(VFIO_IOMMU_UNMAP_DMA, 0),
    VFIOCPR_DECL_END,
};

const vfiocpr_backend_ops vfiocpr_type1_ops = {
    .id = VFIOCPR_BACKEND_TYPE1,
    .name = "type1",
    .feature = VFIOCPR_FEATURE_VFIO_TYPE1,
    .reg_prefix = VFIOCPR_KEY_TYPE1_CONTAINER_PREFIX,
    .fd_kind = VFIOCPR_FD_VFIO_CONTAINER,
    .dma_section = VFIOCPR_SEC_VFIO_DMA,
    .uses = t1_uses,
    .open = t1_open,
    .free_priv = free_priv,
    .attach = t1_attach,
    .map = t1_map,
    .remap = t1_remap,
    .unmap = t1_unmap,
    .check = t1_check,
    .prepare = t1_prepare,
    .undo = t1_undo,
    .finish = t1_finish,
    .close = t1_close,
    .serialize = t1_serialize,
    .deserialize = t1_deserialize,
    .describe = t1_describe,
};
