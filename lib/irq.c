/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Interrupt vectors of VFIO devices: which eventfd each vector signals, the INTx
 * unmask eventfd, and the MSI message the guest programmed (for KVM routes).
 *
 * The kernel keeps references to the eventfds given with VFIO_DEVICE_SET_IRQS, so an
 * inherited eventfd keeps counting across exec with no ioctl at all. Re-issuing
 * SET_IRQS on a live MSI/MSI-X index would free and re-request every vector (and on
 * real hardware can lose an interrupt): on a restart the library issues none for
 * preserved vectors.
 */
#include "config.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>

#include "private.h"

#define N_INDEX 5
#define MSI_HAS 1u
#define MSI_MASKED 2u

typedef struct {
    guint32 index, vector;
    int fd;
    bool preserved, claimed;
    bool has_msi, masked;
    guint64 address;
    guint32 data;
} vec;

struct vfiocpr_irqs {
    GHashTable *vecs; /* key index << 24 | vector -> vec* */
    guint live[N_INDEX];         /* vectors enabled per index, as the kernel sees it */
    int unmask_fd;               /* INTx unmask / KVM resample, -1 if none */
    bool unmask_preserved, unmask_claimed;
    bool has_intx_gsi;
    guint32 intx_gsi;
};

/* On-the-wire vector record: GVariant VFIOCPR_RECORD_IRQ. */
typedef struct {
    guint32 device, index, vector, flags;
    guint64 address;
    guint32 data, pad;
} wire_irq;
G_STATIC_ASSERT(sizeof(wire_irq) == VFIOCPR_RECORD_IRQ_SIZE);

#define KEY(i, v) GUINT_TO_POINTER((guint)(i) << 24 | (guint)(v))

static const char *const index_names[N_INDEX] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };

vfiocpr_irqs *vfiocpr_irqs_new(void)
{
    vfiocpr_irqs *q = g_new0(vfiocpr_irqs, 1);
    q->vecs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
    q->unmask_fd = -1;
    return q;
}

void vfiocpr_irqs_free(vfiocpr_irqs *q)
{
    if (!q)
        return;
    g_hash_table_destroy(q->vecs);
    g_free(q);
}

static char *reg_name(vfiocpr_device *d, guint index)
{
    return vfiocpr_key_irq(vfiocpr_device_name(d), index);
}

static char *unmask_name(vfiocpr_device *d)
{
    return vfiocpr_key_irq_unmask(vfiocpr_device_name(d));
}

static vfiocpr_fdreg *reg_of(vfiocpr_device *d)
{
    return vfiocpr_ctx_fdreg(vfiocpr_container_ctx(vfiocpr_device_container(d)));
}

static vfiocpr *ctx_of(vfiocpr_device *d)
{
    return vfiocpr_container_ctx(vfiocpr_device_container(d));
}

static int set_irqs(vfiocpr_device *d, guint index, guint32 action, guint start, guint count,
                    const int *fds)
{
    gsize sz = sizeof(struct vfio_irq_set) + (fds ? count * sizeof(int) : 0);
    g_autofree struct vfio_irq_set *s = NULL;

    /* callers check with a message first; this keeps a live device safe regardless */
    if (vfiocpr_ctx_may_change(ctx_of(d), "SET_IRQS", NULL) < 0)
        return -EBUSY;
    s = g_malloc0(sz);

    s->argsz = (guint32)sz;
    s->flags = action | (fds ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE);
    s->index = index;
    s->start = start;
    s->count = count;
    if (fds)
        memcpy(s->data, fds, count * sizeof(int));
    return VK(ioctl, vfiocpr_device_fd(d), VFIO_DEVICE_SET_IRQS, s);
}

static int irq_info(vfiocpr_device *d, guint index, struct vfio_irq_info *info, GError **error)
{
    int r;
    *info = (struct vfio_irq_info){ .argsz = sizeof(*info), .index = index };
    r = VK(ioctl, vfiocpr_device_fd(d), VFIO_DEVICE_GET_IRQ_INFO, info);
    if (r < 0)
        return vfiocpr_fail(error, r, "device '%s': %s: VFIO_DEVICE_GET_IRQ_INFO",
                            vfiocpr_device_name(d), index_names[index]);
    return 0;
}

/* Cold path for vectors [start, start+count): eventfds, SET_IRQS, registry. */
static int enable_new(vfiocpr_device *d, vfiocpr_irqs *q, guint index, guint start, guint count,
                      const int *fds, int *out, GError **error)
{
    g_autofree int *efd = g_new(int, count);
    g_autofree char *name = reg_name(d, index);
    vfiocpr_fdreg *reg = reg_of(d);
    struct vfio_irq_info info;
    guint made = 0, saved = 0;
    int r;

    if ((r = vfiocpr_ctx_may_change(ctx_of(d), "irq enable", error)) < 0)
        return r;
    r = irq_info(d, index, &info, error);
    if (r < 0)
        return r;
    if ((guint64)start + count > info.count)
        return vfiocpr_fail(error, EINVAL, "device '%s': %s vectors %u-%u: the device has %u",
                            vfiocpr_device_name(d), index_names[index], start,
                            start + count - 1, info.count);
    if (q->live[index]) {
        /* the index is live: only MSI-X can grow in place, and only without NORESIZE */
        if (index != VFIO_PCI_MSIX_IRQ_INDEX || (info.flags & VFIO_IRQ_INFO_NORESIZE))
            return vfiocpr_fail(error, EBUSY, "device '%s': %s is live with %u vectors: adding "
                                "vectors would disable and re-request all of them%s",
                                vfiocpr_device_name(d), index_names[index], q->live[index],
                                index == VFIO_PCI_MSIX_IRQ_INDEX ? " (NORESIZE)" : "");
    }
    for (guint i = 0; i < count; i++)
        if (g_hash_table_contains(q->vecs, KEY(index, start + i)))
            return vfiocpr_fail(error, EEXIST, "device '%s': %s vector %u is already enabled",
                                vfiocpr_device_name(d), index_names[index], start + i);
    for (; made < count; made++) {
        if (fds) {
            efd[made] = fds[made];
            continue;
        }
        r = VK(eventfd, 0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (r < 0) {
            r = vfiocpr_fail(error, r, "device '%s': %s vector %u: eventfd",
                             vfiocpr_device_name(d), index_names[index], start + made);
            goto undo;
        }
        efd[made] = r;
    }
    for (; saved < count; saved++) {
        r = vfiocpr_fdreg_save(reg, name, start + saved, efd[saved], VFIOCPR_FD_EVENTFD, error);
        if (r < 0)
            goto undo;
    }
    r = set_irqs(d, index, VFIO_IRQ_SET_ACTION_TRIGGER, start, count, efd);
    if (r < 0) {
        r = vfiocpr_fail(error, r, "device '%s': %s vectors %u-%u: VFIO_DEVICE_SET_IRQS",
                         vfiocpr_device_name(d), index_names[index], start, start + count - 1);
        goto undo;
    }
    for (guint i = 0; i < count; i++) {
        vec *v = g_new0(vec, 1);
        *v = (vec){ .index = index, .vector = start + i, .fd = efd[i] };
        g_hash_table_insert(q->vecs, KEY(index, start + i), v);
        if (out)
            out[i] = efd[i];
    }
    q->live[index] = MAX(q->live[index], start + count);
    return 0;
undo:
    while (saved-- > 0)
        vfiocpr_fdreg_forget(reg, name, start + saved);
    if (!fds)
        while (made-- > 0)
            VK(close, efd[made]);
    return r;
}

VFIOCPR_EXPORT int vfiocpr_irq_enable(vfiocpr_device *d, vfiocpr_irq_index index,
                                      unsigned int start, unsigned int count, const int *fds,
                                      int *out, GError **error)
{
    vfiocpr_irqs *q;
    g_autofree char *name = NULL;
    guint i;

    if (!d || vfiocpr_device_fd(d) < 0 || (guint)index >= N_INDEX || !count)
        return vfiocpr_fail(error, EINVAL, "device: irq enable: bad arguments");
    vfiocpr_ctx_changed(ctx_of(d));
    q = vfiocpr_device_irqs(d);
    name = reg_name(d, index);
    /* preserved vectors first: they come back as they are */
    for (i = 0; i < count; i++) {
        vec *v = g_hash_table_lookup(q->vecs, KEY(index, start + i));
        int fd;
        if (!v || !v->preserved)
            break;
        if (fds && fds[i] != v->fd)
            return vfiocpr_fail(error, EEXIST, "device '%s': %s vector %u: restart: the "
                                "preserved eventfd is fd %d; pass NULL to get it",
                                vfiocpr_device_name(d), index_names[index], start + i, v->fd);
        fd = vfiocpr_fdreg_find(reg_of(d), name, start + i, VFIOCPR_FD_EVENTFD, error);
        if (fd < 0)
            return fd;
        v->claimed = true;
        if (out)
            out[i] = fd;
    }
    if (i == count)
        return 0;
    if (i > 0)
        return vfiocpr_fail(error, EINVAL, "device '%s': %s vectors %u-%u: only %u of them are "
                            "preserved; enable the preserved ones and the new ones separately",
                            vfiocpr_device_name(d), index_names[index], start, start + count - 1, i);
    return enable_new(d, q, index, start, count, fds, out, error);
}

VFIOCPR_EXPORT int vfiocpr_irq_intx_unmask(vfiocpr_device *d, int fd, GError **error)
{
    vfiocpr_irqs *q;
    g_autofree char *name = NULL;
    bool made = false;
    int r;

    if (!d || vfiocpr_device_fd(d) < 0)
        return vfiocpr_fail(error, EINVAL, "device: INTx unmask: bad arguments");
    vfiocpr_ctx_changed(ctx_of(d));
    q = vfiocpr_device_irqs(d);
    name = unmask_name(d);
    if (q->unmask_preserved) {
        if (fd >= 0 && fd != q->unmask_fd)
            return vfiocpr_fail(error, EEXIST, "device '%s': INTx unmask: restart: the preserved "
                                "eventfd is fd %d", vfiocpr_device_name(d), q->unmask_fd);
        r = vfiocpr_fdreg_find(reg_of(d), name, 0, VFIOCPR_FD_EVENTFD, error);
        if (r >= 0)
            q->unmask_claimed = true;
        return r;
    }
    if (q->unmask_fd >= 0)
        return vfiocpr_fail(error, EEXIST, "device '%s': INTx unmask already set",
                            vfiocpr_device_name(d));
    if (fd < 0) {
        fd = VK(eventfd, 0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0)
            return vfiocpr_fail(error, fd, "device '%s': INTx unmask: eventfd",
                                vfiocpr_device_name(d));
        made = true;
    }
    r = vfiocpr_fdreg_save(reg_of(d), name, 0, fd, VFIOCPR_FD_EVENTFD, error);
    if (r == 0) {
        r = set_irqs(d, VFIO_PCI_INTX_IRQ_INDEX, VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, &fd);
        if (r < 0) {
            vfiocpr_fdreg_forget(reg_of(d), name, 0);
            r = vfiocpr_fail(error, r, "device '%s': INTx unmask: VFIO_DEVICE_SET_IRQS",
                             vfiocpr_device_name(d));
        }
    }
    if (r < 0) {
        if (made)
            VK(close, fd);
        return r;
    }
    q->unmask_fd = fd;
    return fd;
}

VFIOCPR_EXPORT int vfiocpr_irq_set_msi(vfiocpr_device *d, vfiocpr_irq_index index,
                                       unsigned int vector, uint64_t address, uint32_t data,
                                       bool masked, GError **error)
{
    vec *v;

    if (!d || (index != VFIOCPR_IRQ_MSI && index != VFIOCPR_IRQ_MSIX))
        return vfiocpr_fail(error, EINVAL, "device: set MSI: not an MSI or MSI-X index");
    v = g_hash_table_lookup(vfiocpr_device_irqs(d)->vecs, KEY(index, vector));
    if (!v)
        return vfiocpr_fail(error, ENOENT, "device '%s': %s vector %u is not enabled",
                            vfiocpr_device_name(d), index_names[index], vector);
    vfiocpr_ctx_changed(ctx_of(d));
    v->has_msi = true;
    v->address = address;
    v->data = data;
    v->masked = masked;
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_irq_set_intx_gsi(vfiocpr_device *d, uint32_t gsi, GError **error)
{
    vfiocpr_irqs *q;
    if (!d)
        return vfiocpr_fail(error, EINVAL, "device: set INTx GSI: NULL device");
    vfiocpr_ctx_changed(ctx_of(d));
    q = vfiocpr_device_irqs(d);
    q->intx_gsi = gsi;
    q->has_intx_gsi = true;
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_irq_fd(vfiocpr_device *d, vfiocpr_irq_index index, unsigned int vector)
{
    vec *v = d ? g_hash_table_lookup(vfiocpr_device_irqs(d)->vecs, KEY(index, vector)) : NULL;
    return v ? v->fd : -ENOENT;
}

VFIOCPR_EXPORT int vfiocpr_irq_pending(vfiocpr_device *d, vfiocpr_irq_index index,
                                       unsigned int vector)
{
    int fd = vfiocpr_irq_fd(d, index, vector);
    return fd < 0 ? fd : VK(readable, fd);
}

VFIOCPR_EXPORT int vfiocpr_irq_disable(vfiocpr_device *d, vfiocpr_irq_index index, GError **error)
{
    vfiocpr_irqs *q;
    g_autofree char *name = NULL;
    GHashTableIter it;
    gpointer k, val;
    int r;

    if (!d || vfiocpr_device_fd(d) < 0 || (guint)index >= N_INDEX)
        return vfiocpr_fail(error, EINVAL, "device: irq disable: bad arguments");
    vfiocpr_ctx_changed(ctx_of(d));
    if ((r = vfiocpr_ctx_may_change(ctx_of(d), "irq disable", error)) < 0)
        return r;
    q = vfiocpr_device_irqs(d);
    r = set_irqs(d, index, VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, NULL);
    if (r < 0)
        return vfiocpr_fail(error, r, "device '%s': %s: VFIO_DEVICE_SET_IRQS(count 0)",
                            vfiocpr_device_name(d), index_names[index]);
    name = reg_name(d, index);
    g_hash_table_iter_init(&it, q->vecs);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        vec *v = val;
        if (v->index != (guint)index)
            continue;
        vfiocpr_fdreg_forget(reg_of(d), name, v->vector);
        vfiocpr_kvm_drop_fd(vfiocpr_ctx_kvm(ctx_of(d)), v->fd);
        VK(close, v->fd);
        g_hash_table_iter_remove(&it);
    }
    q->live[index] = 0;
    return 0;
}

/* ------------------------------------------------------------------ for kvm.c */

void vfiocpr_irqs_foreach(vfiocpr_device *d, vfiocpr_irq_fn fn, gpointer user)
{
    vfiocpr_irqs *q = vfiocpr_device_irqs(d);
    g_autoptr(GList) keys = g_hash_table_get_keys(q->vecs);

    /* a stable order, so GSIs are assigned the same way every time */
    keys = g_list_sort(keys, (GCompareFunc)(void *)vfiocpr_cmp_uint_ptr);
    for (GList *l = keys; l; l = l->next) {
        vec *v = g_hash_table_lookup(q->vecs, l->data);
        fn(d, v->index, v->vector, v->fd, v->has_msi && !v->masked, v->address, v->data, user);
    }
}

guint vfiocpr_irqs_count(vfiocpr_device *d)
{
    return g_hash_table_size(vfiocpr_device_irqs(d)->vecs);
}

int vfiocpr_irqs_intx(vfiocpr_device *d, int *trigger, int *resample, guint32 *gsi)
{
    vfiocpr_irqs *q = vfiocpr_device_irqs(d);
    vec *v = g_hash_table_lookup(q->vecs, KEY(VFIO_PCI_INTX_IRQ_INDEX, 0));
    if (!v || q->unmask_fd < 0 || !q->has_intx_gsi)
        return -ENOENT;
    *trigger = v->fd;
    *resample = q->unmask_fd;
    *gsi = q->intx_gsi;
    return 0;
}

void vfiocpr_irqs_describe(vfiocpr_device *d, GVariantBuilder *out)
{
    vfiocpr_irqs *q = vfiocpr_device_irqs(d);
    g_autoptr(GList) keys = g_list_sort(g_hash_table_get_keys(q->vecs),
                                        (GCompareFunc)(void *)vfiocpr_cmp_uint_ptr);
    GVariantBuilder b;

    /* a tuple each: devices have up to 2048 MSI-X vectors */
    g_variant_builder_init(&b, G_VARIANT_TYPE("a" VFIOCPR_DESC_VEC_TYPE));
    for (GList *l = keys; l; l = l->next) {
        vec *v = g_hash_table_lookup(q->vecs, l->data);
        guint32 gsi;
        bool routed = vfiocpr_kvm_irqfd_gsi(ctx_of(d), v->fd, &gsi);
        GVariant *f[] = {
            g_variant_new_uint32(v->index), g_variant_new_uint32(v->vector),
            g_variant_new_int32(v->fd),
            g_variant_new_string(!v->preserved ? "enabled" : v->claimed ? "claimed" : "unclaimed"),
            g_variant_new_boolean(v->has_msi), g_variant_new_uint64(v->has_msi ? v->address : 0),
            g_variant_new_uint32(v->has_msi ? v->data : 0), g_variant_new_boolean(v->masked),
            g_variant_new_int32(routed ? (gint32)gsi : -1),
        };
        g_variant_builder_add_value(&b, g_variant_new_tuple(f, G_N_ELEMENTS(f)));
    }
    vfiocpr_kv(out, "vectors", g_variant_builder_end(&b));
    if (q->has_intx_gsi || q->unmask_fd >= 0) {
        GVariantBuilder x;

        g_variant_builder_init(&x, G_VARIANT_TYPE_VARDICT);
        if (q->has_intx_gsi)
            vfiocpr_kv_u(&x, "gsi", q->intx_gsi);
        if (q->unmask_fd >= 0)
            vfiocpr_kv_i(&x, "unmask-fd", q->unmask_fd);
        vfiocpr_kv(out, "intx", g_variant_builder_end(&x));
    }
}

gint vfiocpr_cmp_uint_ptr(gconstpointer a, gconstpointer b)
{
    guint x = GPOINTER_TO_UINT(a), y = GPOINTER_TO_UINT(b);
    return (x > y) - (x < y);
}

/* ------------------------------------------------------------------ state */

void vfiocpr_irqs_serialize(GHashTable *devices, GVariantDict *dict)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    g_autoptr(GArray) recs = g_array_new(FALSE, TRUE, sizeof(wire_irq));
    GVariantBuilder intx;
    GHashTableIter it;
    gpointer k, val;

    g_variant_builder_init(&intx, VFIOCPR_SECTION_TYPE(VFIO_INTX));
    g_hash_table_iter_init(&it, devices);
    while (g_hash_table_iter_next(&it, &k, &val)) {
        vfiocpr_irqs *q = vfiocpr_device_irqs(val);
        GHashTableIter vit;
        gpointer vv;
        guint idx = names->len;
        g_ptr_array_add(names, k);
        g_variant_builder_add(&intx, "(sbu)", (const char *)k, q->has_intx_gsi, q->intx_gsi);
        g_hash_table_iter_init(&vit, q->vecs);
        while (g_hash_table_iter_next(&vit, NULL, &vv)) {
            vec *v = vv;
            wire_irq w = { .device = idx, .index = v->index, .vector = v->vector,
                           .flags = (v->has_msi ? MSI_HAS : 0) | (v->masked ? MSI_MASKED : 0),
                           .address = v->address, .data = v->data };
            g_array_append_val(recs, w);
        }
    }
    vfiocpr_section_insert(dict, VFIOCPR_SEC_VFIO_IRQ_DEVICES,
                           g_variant_new_strv((const char *const *)names->pdata, names->len));
    vfiocpr_section_insert(dict, VFIOCPR_SEC_VFIO_INTX, g_variant_builder_end(&intx));
    vfiocpr_section_insert(dict, VFIOCPR_SEC_VFIO_IRQS,
                           g_variant_new_fixed_array(G_VARIANT_TYPE(VFIOCPR_RECORD_IRQ), recs->data,
                                                     recs->len, sizeof(wire_irq)));
}

int vfiocpr_irqs_deserialize(GHashTable *devices, vfiocpr_fdreg *reg, GVariant *payload,
                             GError **error)
{
    g_autoptr(GVariant) vn = NULL, vx = NULL, vr = NULL;
    g_autofree const char **names = NULL;
    g_autoptr(GPtrArray) byidx = g_ptr_array_new();
    const wire_irq *w;
    GVariantIter it;
    const char *dname;
    gboolean has;
    guint32 gsi;
    gsize n, n_names;

    vn = vfiocpr_section_lookup(payload, VFIOCPR_SEC_VFIO_IRQ_DEVICES);
    vx = vfiocpr_section_lookup(payload, VFIOCPR_SEC_VFIO_INTX);
    vr = vfiocpr_section_lookup(payload, VFIOCPR_SEC_VFIO_IRQS);
    if (!vn && !vx && !vr)
        return 0; /* format 1.0/1.1 without interrupts */
    if (!vn || !vx || !vr)
        return vfiocpr_fail(error, EBADMSG, "state: irqs: a section is missing or of the wrong type");
    names = g_variant_get_strv(vn, &n_names);
    for (gsize i = 0; i < n_names; i++) {
        vfiocpr_device *d = g_hash_table_lookup(devices, names[i]);
        if (!d)
            return vfiocpr_fail(error, EBADMSG, "state: irqs: device '%s' is not a preserved "
                                "device", names[i]);
        g_ptr_array_add(byidx, d);
    }
    g_variant_iter_init(&it, vx);
    while (g_variant_iter_next(&it, "(&sbu)", &dname, &has, &gsi)) {
        vfiocpr_device *d = g_hash_table_lookup(devices, dname);
        vfiocpr_irqs *q;
        g_autofree char *un = NULL;
        if (!d)
            return vfiocpr_fail(error, EBADMSG, "state: irqs: INTx of unknown device '%s'", dname);
        q = vfiocpr_device_irqs(d);
        q->has_intx_gsi = has;
        q->intx_gsi = gsi;
        un = unmask_name(d);
        q->unmask_preserved = vfiocpr_fdreg_has(reg, un, 0, VFIOCPR_FD_EVENTFD);
        if (q->unmask_preserved)
            q->unmask_fd = vfiocpr_fdreg_peek(reg, un, 0);
    }
    w = g_variant_get_fixed_array(vr, &n, sizeof(wire_irq));
    for (gsize i = 0; i < n; i++) {
        vfiocpr_device *d = w[i].device < byidx->len ? byidx->pdata[w[i].device] : NULL;
        g_autofree char *name = NULL;
        vfiocpr_irqs *q;
        vec *v;
        if (!d || w[i].index >= N_INDEX || w[i].vector >= 0x1000000 ||
            (w[i].flags & ~(MSI_HAS | MSI_MASKED)))
            return vfiocpr_fail(error, EBADMSG, "state: irqs: record %zu: bad device, index, "
                                "vector or flags", i);
        q = vfiocpr_device_irqs(d);
        name = reg_name(d, w[i].index);
        if (!vfiocpr_fdreg_has(reg, name, w[i].vector, VFIOCPR_FD_EVENTFD))
            return vfiocpr_fail(error, EBADMSG, "state: irqs: device '%s' %s vector %u has no "
                                "preserved eventfd", vfiocpr_device_name(d),
                                index_names[w[i].index], w[i].vector);
        v = g_new0(vec, 1);
        *v = (vec){ .index = w[i].index, .vector = w[i].vector,
                    .fd = vfiocpr_fdreg_peek(reg, name, w[i].vector), .preserved = true,
                    .has_msi = w[i].flags & MSI_HAS, .masked = w[i].flags & MSI_MASKED,
                    .address = w[i].address, .data = w[i].data };
        if (g_hash_table_contains(q->vecs, KEY(v->index, v->vector))) {
            g_free(v);
            return vfiocpr_fail(error, EBADMSG, "state: irqs: record %zu appears twice", i);
        }
        g_hash_table_insert(q->vecs, KEY(v->index, v->vector), v);
        q->live[v->index] = MAX(q->live[v->index], v->vector + 1);
    }
    return 0;
}

const vfiocpr_decl vfiocpr_irq_uses[] = {
    VFIOCPR_OP(eventfd, 0),
    VFIOCPR_OP(readable, 0),
    VFIOCPR_OP(close, 0),
    VFIOCPR_IOCTL(VFIO_DEVICE_GET_IRQ_INFO, 0),
    VFIOCPR_IOCTL(VFIO_DEVICE_SET_IRQS, 0),
    VFIOCPR_DECL_END,
};
