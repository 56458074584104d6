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
    vfiocpr_device_identity id; /* what the fd is, for the restore's swap check */
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

GVariant *vfiocpr_device_describe(vfiocpr_device *d)
{
    int fd = d->fd >= 0 ? d->fd
                        : vfiocpr_fdreg_peek(vfiocpr_ctx_fdreg(vfiocpr_container_ctx(d->container)),
                                             d->reg_name, 0);
    GVariantBuilder out;

    g_variant_builder_init(&out, G_VARIANT_TYPE_VARDICT);
    vfiocpr_kv_s(&out, "name", d->name);
    vfiocpr_kv_s(&out, "container", vfiocpr_container_name(d->container));
    vfiocpr_kv_s(&out, "kind", d->kind == VFIOCPR_FD_VFIO_CDEV ? "cdev" : "group");
    vfiocpr_kv_i(&out, "group", d->group);
    vfiocpr_kv_i(&out, "fd", MAX(fd, -1));
    vfiocpr_kv_s(&out, "status", !d->preserved ? "open" : d->claimed ? "claimed" : "unclaimed");
    if (d->kind == VFIOCPR_FD_VFIO_CDEV) {
        vfiocpr_kv_u(&out, "devid", d->devid);
        vfiocpr_kv_u(&out, "hwpt-id", d->hwpt_id);
    }
    vfiocpr_irqs_describe(d, &out);
    vfiocpr_mig_describe(d->mig, &out);
    return g_variant_builder_end(&out);
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

/* ------------------------------------------------------------------ identity
 *
 * Every vfio device fd obtained from a group is the same anonymous inode, so fstat
 * cannot tell two of them apart: a state whose device records had their fds swapped
 * would hand the VMM the wrong device. The restore checks each inherited device fd
 * against the device it is recorded for: the kernel's fdinfo names the device
 * (vfio-device-syspath, Linux 6.18+); on older kernels the identity taken here when
 * the device was opened cold (so it costs nothing in an upgrade's blackout) is
 * compared with a fresh one. */

#define PCI_ID_BYTES 0x30 /* vendor, device, class, revision, subsystem ids */

int vfiocpr_device_identity_read(int fd, guint n_sizes, vfiocpr_device_identity *id)
{
    struct vfio_device_info info = { .argsz = sizeof(info) };
    struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    guint8 b[PCI_ID_BYTES];
    ssize_t n;
    int r;

    memset(id, 0, sizeof(*id));
    r = VK(ioctl, fd, VFIO_DEVICE_GET_INFO, &info);
    if (r < 0)
        return r;
    id->flags = info.flags;
    id->num_regions = info.num_regions;
    id->num_irqs = info.num_irqs;
    /* Region sizes cost one ioctl each in the restore and add nothing for two
     * functions of one model: this writer records none; a state that has them is
     * compared on as many as it holds. */
    id->n_sizes = MIN(n_sizes, MIN(info.num_regions, (guint32)VFIOCPR_ID_REGIONS));
    for (guint i = 0; i < id->n_sizes; i++) {
        struct vfio_region_info ri = { .argsz = sizeof(ri), .index = i };
        r = VK(ioctl, fd, VFIO_DEVICE_GET_REGION_INFO, &ri);
        if (r < 0 && r != -EINVAL)
            return r;
        id->sizes[i] = r < 0 ? G_MAXUINT64 : ri.size; /* EINVAL: no such region */
    }
    if ((info.flags & VFIO_DEVICE_FLAGS_PCI) && info.num_regions > VFIO_PCI_CONFIG_REGION_INDEX) {
        r = VK(ioctl, fd, VFIO_DEVICE_GET_REGION_INFO, &cfg);
        if (r < 0)
            return r;
        if (cfg.size < PCI_ID_BYTES)
            return -ENXIO;
        n = VK(pread, fd, b, sizeof(b), (off_t)cfg.offset);
        if (n < 0)
            return (int)n;
        if (n != (ssize_t)sizeof(b))
            return -EIO;
        id->vendor = (guint16)(b[0] | b[1] << 8);
        id->device = (guint16)(b[2] | b[3] << 8);
        id->class_rev = (guint32)b[8] | (guint32)b[9] << 8 | (guint32)b[10] << 16 |
                        (guint32)b[11] << 24;
        id->subvendor = (guint16)(b[0x2c] | b[0x2d] << 8);
        id->subdevice = (guint16)(b[0x2e] | b[0x2f] << 8);
    }
    id->known = true;
    return 0;
}

bool vfiocpr_device_identity_equal(const vfiocpr_device_identity *a,
                                   const vfiocpr_device_identity *b)
{
    if (a->flags != b->flags || a->num_regions != b->num_regions ||
        a->num_irqs != b->num_irqs || a->vendor != b->vendor || a->device != b->device ||
        a->class_rev != b->class_rev || a->subvendor != b->subvendor ||
        a->subdevice != b->subdevice || a->n_sizes != b->n_sizes)
        return false;
    for (guint i = 0; i < a->n_sizes; i++)
        if (a->sizes[i] != b->sizes[i])
            return false;
    return true;
}

char *vfiocpr_device_identity_to_string(const vfiocpr_device_identity *id)
{
    GString *s = g_string_new(NULL);

    if (id->flags & VFIO_DEVICE_FLAGS_PCI)
        g_string_append_printf(s, "PCI %04x:%04x class %06x rev %02x subsystem %04x:%04x, ",
                               id->vendor, id->device, id->class_rev >> 8, id->class_rev & 0xff,
                               id->subvendor, id->subdevice);
    g_string_append_printf(s, "flags 0x%x, %u regions, %u irqs", id->flags, id->num_regions,
                           id->num_irqs);
    if (id->n_sizes) {
        g_string_append(s, ", sizes");
        for (guint i = 0; i < id->n_sizes; i++)
            g_string_append_printf(s, "%s0x%" G_GINT64_MODIFIER "x", i ? "/" : " ",
                                   id->sizes[i]);
    }
    return g_string_free(s, FALSE);
}

/* lib/state-format.h: name, flags, regions, irqs, ids, subsystem, class, sizes */
#define ID_SECTION VFIOCPR_SECTION(VFIO_DEVICE_IDENTITY)
#define ID_TYPE vfiocpr_state_sections[VFIOCPR_SEC_VFIO_DEVICE_IDENTITY].type

static gint cmp_device_name(gconstpointer a, gconstpointer b)
{
    return strcmp((*(vfiocpr_device *const *)a)->name, (*(vfiocpr_device *const *)b)->name);
}

GPtrArray *vfiocpr_devices_sorted(GHashTable *devices)
{
    GPtrArray *list = g_ptr_array_new();
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, devices);
    while (g_hash_table_iter_next(&it, NULL, &v))
        g_ptr_array_add(list, v);
    g_ptr_array_sort(list, cmp_device_name);
    return list;
}

void vfiocpr_devices_serialize_identity(GHashTable *devices, GVariantDict *d)
{
    g_autoptr(GPtrArray) list = vfiocpr_devices_sorted(devices);
    GVariantBuilder b;
    guint n = 0;

    g_variant_builder_init(&b, G_VARIANT_TYPE(ID_TYPE));
    for (guint i = 0; i < list->len; i++) {
        const vfiocpr_device *dev = list->pdata[i];
        const vfiocpr_device_identity *id = &dev->id;
        if (!id->known)
            continue;
        g_variant_builder_add_value(
            &b, g_variant_new("(suuuuuu@at)", dev->name, id->flags, id->num_regions, id->num_irqs,
                              (guint32)id->vendor | (guint32)id->device << 16,
                              (guint32)id->subvendor | (guint32)id->subdevice << 16,
                              id->class_rev,
                              g_variant_new_fixed_array(G_VARIANT_TYPE_UINT64, id->sizes,
                                                        id->n_sizes, sizeof(guint64))));
        n++;
    }
    if (n)
        vfiocpr_section_insert(d, VFIOCPR_SEC_VFIO_DEVICE_IDENTITY, g_variant_builder_end(&b));
    else
        g_variant_builder_clear(&b);
}

static int load_identities(GHashTable *devices, GVariant *payload, GError **error)
{
    g_autoptr(GVariant) v = vfiocpr_section_lookup_any(payload, VFIOCPR_SEC_VFIO_DEVICE_IDENTITY);
    GVariantIter it;
    GVariant *rec;

    if (!v)
        return 0; /* a state before 1.5 */
    if (!g_variant_is_of_type(v, G_VARIANT_TYPE(ID_TYPE)))
        return vfiocpr_fail(error, EBADMSG, "state: vfio: section '%s' is of type %s, not %s",
                            ID_SECTION, g_variant_get_type_string(v), ID_TYPE);
    g_variant_iter_init(&it, v);
    while ((rec = g_variant_iter_next_value(&it))) {
        g_autoptr(GVariant) r = rec, vsizes = NULL;
        vfiocpr_device_identity id = { .known = true };
        const char *name;
        guint32 ids, sub;
        const guint64 *sizes;
        gsize n_sizes;
        vfiocpr_device *dev;

        g_variant_get(r, "(&suuuuuu@at)", &name, &id.flags, &id.num_regions, &id.num_irqs, &ids,
                      &sub, &id.class_rev, &vsizes);
        dev = g_hash_table_lookup(devices, name);
        if (!dev || !dev->preserved || dev->id.known)
            return vfiocpr_fail(error, EBADMSG, "state: vfio: identity of device '%s': no such "
                                "preserved device, or recorded twice", name);
        sizes = g_variant_get_fixed_array(vsizes, &n_sizes, sizeof(guint64));
        if (n_sizes > VFIOCPR_ID_REGIONS)
            return vfiocpr_fail(error, EBADMSG, "state: vfio: identity of device '%s': %zu "
                                "region sizes, at most %d", name, n_sizes, VFIOCPR_ID_REGIONS);
        id.vendor = (guint16)ids;
        id.device = (guint16)(ids >> 16);
        id.subvendor = (guint16)sub;
        id.subdevice = (guint16)(sub >> 16);
        id.n_sizes = (guint32)n_sizes;
        if (n_sizes)
            memcpy(id.sizes, sizes, n_sizes * sizeof(guint64));
        dev->id = id;
    }
    return 0;
}

/* The device name the kernel's fdinfo gives fd (the basename of
 * vfio-device-syspath, a PCI address or an mdev UUID): 1 and the path in buf,
 * 0 if fdinfo has no such line (a kernel before 6.18), < 0 if fdinfo could not be
 * read. */
static int fdinfo_syspath(int fd, char *buf, size_t len)
{
    static const char key[] = "vfio-device-syspath:";
    char text[4096];
    const char *line, *end;
    int r = VK(fdinfo, fd, text, sizeof(text));

    if (r < 0)
        return r;
    for (line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, key, sizeof(key) - 1) != 0)
            continue;
        line += sizeof(key) - 1;
        while (*line == ' ' || *line == '\t')
            line++;
        end = strchr(line, '\n');
        if (!end)
            end = line + strlen(line);
        g_strlcpy(buf, line, MIN(len, (size_t)(end - line) + 1));
        return 1;
    }
    return 0;
}

/* Which recorded device has identity id (other than self), for the message. */
static const char *recorded_as(GPtrArray *list, const vfiocpr_device *self,
                               const vfiocpr_device_identity *id)
{
    for (guint i = 0; i < list->len; i++) {
        const vfiocpr_device *o = list->pdata[i];
        if (o != self && o->id.known && vfiocpr_device_identity_equal(&o->id, id))
            return o->name;
    }
    return NULL;
}

int vfiocpr_devices_verify(vfiocpr *ctx, GVariant *payload, GError **error)
{
    GHashTable *devices = vfiocpr_vfio_devices(vfiocpr_ctx_vfio(ctx));
    vfiocpr_fdreg *reg = vfiocpr_ctx_fdreg(ctx);
    g_autoptr(GPtrArray) list = NULL;
    bool no_fdinfo = false; /* every vfio device fd has the same fops: one look tells */
    int r;

    if (!g_hash_table_size(devices))
        return 0;
    r = load_identities(devices, payload, error);
    if (r < 0)
        return r;
    list = vfiocpr_devices_sorted(devices);
    for (guint i = 0; i < list->len; i++) {
        vfiocpr_device *d = list->pdata[i];
        vfiocpr_device_identity now;
        g_autofree char *want = NULL, *got = NULL;
        const char *other;
        char syspath[1024];
        int fd;

        if (!d->preserved)
            continue;
        fd = vfiocpr_fdreg_peek(reg, d->reg_name, 0);
        if (fd < 0)
            return vfiocpr_fail(error, EBADMSG, "state: vfio: device '%s' has no preserved fd",
                                d->name);
        if (!no_fdinfo) {
            r = fdinfo_syspath(fd, syspath, sizeof(syspath));
            if (r > 0) {
                const char *base = strrchr(syspath, '/');
                base = base ? base + 1 : syspath;
                if (strcmp(base, d->name) != 0)
                    return vfiocpr_fail(error, EBADFD, "state: vfio: device '%s': restore: "
                                        "inherited %s fd %d is device '%s' (fdinfo "
                                        "vfio-device-syspath %s), not '%s': the state's fds "
                                        "are swapped or forged; nothing was touched", d->name,
                                        vfiocpr_fd_kind_to_string(d->kind), fd, base, syspath,
                                        d->name);
                /* only a vfio device fd's fdinfo has that line: its kind is proven */
                vfiocpr_fdreg_kind_proven(reg, d->reg_name, 0, d->kind);
                continue; /* the kernel named it: nothing better to compare */
            }
            /* the library needs /proc anyway (fd kinds): unreadable is not normal */
            if (r < 0)
                return vfiocpr_fail(error, r, "state: vfio: device '%s': restore: reading "
                                    "/proc/self/fdinfo/%d of the inherited %s fd", d->name, fd,
                                    vfiocpr_fd_kind_to_string(d->kind));
            no_fdinfo = true;
        }
        if (!d->id.known)
            continue; /* a state before 1.5, on a kernel without the fdinfo line */
        r = vfiocpr_device_identity_read(fd, d->id.n_sizes, &now);
        if (r < 0)
            return vfiocpr_fail(error, r, "state: vfio: device '%s': restore: reading the "
                                "identity of inherited %s fd %d", d->name,
                                vfiocpr_fd_kind_to_string(d->kind), fd);
        if (vfiocpr_device_identity_equal(&now, &d->id)) {
            /* VFIO_DEVICE_GET_INFO answered as the recorded device did */
            vfiocpr_fdreg_kind_proven(reg, d->reg_name, 0, d->kind);
            continue;
        }
        want = vfiocpr_device_identity_to_string(&d->id);
        got = vfiocpr_device_identity_to_string(&now);
        other = recorded_as(list, d, &now);
        return vfiocpr_fail(error, EBADFD, "state: vfio: device '%s': restore: inherited %s fd "
                            "%d is not the recorded device (recorded %s; the fd is %s, %s%s%s): "
                            "the state's fds are swapped or forged; nothing was touched",
                            d->name, vfiocpr_fd_kind_to_string(d->kind), fd, want, got,
                            other ? "as recorded for device '" : "a device the state does not record",
                            other ? other : "", other ? "'" : "");
    }
    return 0;
}

void vfiocpr_devices_fill_identity(GHashTable *devices)
{
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, devices);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        vfiocpr_device *d = v;
        int r;
        if (d->id.known || d->fd < 0)
            continue;
        r = vfiocpr_device_identity_read(d->fd, 0, &d->id);
        if (r < 0)
            g_debug("device '%s': no identity (%s): the next restore checks it by fdinfo only",
                    d->name, g_strerror(-r));
    }
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

    if (r == 0) {
        r = vfiocpr_device_identity_read(fd, 0, &d->id);
        if (r < 0)
            vfiocpr_fail(error, r, "device '%s': open: reading its identity (VFIO_DEVICE_GET_INFO, "
                         "config region, PCI ids) for the restore's check", name);
    }
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
    vfiocpr_ctx_changed(vfiocpr_container_ctx(c));
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
    vfiocpr_ctx_changed(vfiocpr_container_ctx(d->container));
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
    vfiocpr_ctx_changed(ctx);
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

const vfiocpr_decl vfiocpr_device_uses[] = {
    VFIOCPR_OP(readlink, 0),
    VFIOCPR_OP(mmap, 0),
    VFIOCPR_OP(close, 0),
    /* the device's identity: read at a cold open, checked in a restore */
    VFIOCPR_OP(fdinfo, 0),
    VFIOCPR_OP(pread, 0),
    VFIOCPR_IOCTL(VFIO_DEVICE_GET_INFO, 0),
    VFIOCPR_IOCTL(VFIO_GROUP_GET_DEVICE_FD, 0),
    VFIOCPR_IOCTL(VFIO_DEVICE_GET_REGION_INFO, 0),
    VFIOCPR_DECL_END,
};
