/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The text of a description (vfiocpr_dump(), vfiocpr_state_describe()): one
 * renderer of the a{sv} that vfiocpr_describe() builds, so that the text and the
 * structured description cannot drift apart. The first line of each object keeps
 * the layout 0.1 and 0.2 printed ("container 'c0': 2 groups, ...", "device 'x'",
 * "fds: N (kind n, ...)" and one padded line per fd); the details added in 0.3 are
 * indented lines under their object. Keys a description lacks are left out, so an
 * older or partial description still renders.
 */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "private.h"

static const char *str(GVariant *d, const char *key, const char *def)
{
    const char *s;
    return g_variant_lookup(d, key, "&s", &s) ? s : def;
}

static guint32 u32(GVariant *d, const char *key, guint32 def)
{
    guint32 v;
    return g_variant_lookup(d, key, "u", &v) ? v : def;
}

static gint32 i32(GVariant *d, const char *key, gint32 def)
{
    gint32 v;
    return g_variant_lookup(d, key, "i", &v) ? v : def;
}

static guint64 u64(GVariant *d, const char *key, guint64 def)
{
    guint64 v;
    return g_variant_lookup(d, key, "t", &v) ? v : def;
}

static bool flag(GVariant *d, const char *key)
{
    gboolean v;
    return g_variant_lookup(d, key, "b", &v) && v;
}

/* The aa{sv} under key (an empty one if absent): a new reference. */
static GVariant *list(GVariant *d, const char *key)
{
    GVariant *v = g_variant_lookup_value(d, key, G_VARIANT_TYPE("aa{sv}"));
    return v ? v : g_variant_ref_sink(g_variant_new_array(G_VARIANT_TYPE_VARDICT, NULL, 0));
}

static void render_state(GString *out, GVariant *st)
{
    gint64 usec = 0;
    g_autoptr(GDateTime) when = NULL;
    g_autofree char *when_s = NULL;

    g_variant_lookup(st, "created-usec", "x", &usec);
    when = g_date_time_new_from_unix_utc(usec / G_USEC_PER_SEC);
    when_s = when ? g_date_time_format_iso8601(when) : g_strdup("?");
    g_string_append_printf(out, "libvfiocpr state format %u.%u, %" G_GUINT64_FORMAT " bytes, "
                           "written by %s (pid %u) at %s\n", u32(st, "format-major", 0),
                           u32(st, "format-minor", 0), u64(st, "bytes", 0),
                           str(st, "writer", "?"), u32(st, "writer-pid", 0), when_s);
}

static const char *dma_flags(guint32 f)
{
    static const char *const names[] = { "-", "r", "w", "rw" };
    return names[f & 3];
}

/* The name and id of the registered memfd fd, from the description's fds. */
static bool memfd_name(GVariant *fds, gint32 fd, const char **name, guint64 *id)
{
    for (gsize i = 0; fds && i < g_variant_n_children(fds); i++) {
        const char *n, *kind;
        guint64 eid;
        gint32 efd;
        g_variant_get_child(fds, i, VFIOCPR_DESC_FD_GET, &n, &eid, &kind, &efd, NULL);
        if (efd == fd && strcmp(kind, "memfd") == 0) {
            *name = n;
            *id = eid;
            return true;
        }
    }
    return false;
}

static void render_container(GString *out, GVariant *c, GVariant *fds)
{
    g_autoptr(GVariant) groups = list(c, "groups");
    g_autoptr(GVariant) maps = g_variant_lookup_value(c, "mappings",
                                                      G_VARIANT_TYPE("a" VFIOCPR_DESC_MAP_TYPE));
    const char *backend = str(c, "backend", "?");
    gsize n_maps = 0;
    const vfiocpr_desc_map *m =
        maps ? g_variant_get_fixed_array(maps, &n_maps, sizeof(vfiocpr_desc_map)) : NULL;
    GVariantIter it;
    GVariant *g;

    g_string_append_printf(out, "container '%s': ", str(c, "name", "?"));
    if (strcmp(backend, "iommufd") == 0)
        g_string_append_printf(out, "iommufd IOAS %u%s, ", u32(c, "ioas-id", 0),
                               flag(c, "pins-pending") ? " (pins pending)" : "");
    else
        g_string_append_printf(out, "%zu groups, ", g_variant_n_children(groups));
    g_string_append_printf(out, "%u DMA ranges (%" G_GUINT64_FORMAT " bytes)%s\n",
                           u32(c, "dma-ranges", 0), u64(c, "dma-bytes", 0),
                           u32(c, "remap-pending", 0) ? ", re-map pending" : "");
    g_string_append_printf(out, "  backend %s, fd %d, %s\n", backend, i32(c, "fd", -1),
                           str(c, "status", "?"));
    g_variant_iter_init(&it, groups);
    while ((g = g_variant_iter_next_value(&it))) {
        g_string_append_printf(out, "  group %u: fd %d, %s\n", u32(g, "id", 0), i32(g, "fd", -1),
                               str(g, "status", "?"));
        g_variant_unref(g);
    }
    const char *mname = NULL;
    guint64 mid = 0;
    gint32 named = -1; /* mappings mostly share one memfd: look its name up once */

    for (gsize i = 0; i < n_maps; i++) {
        const vfiocpr_desc_map *x = &m[i];
        if (x->memfd != named) {
            named = x->memfd;
            if (x->memfd < 0 || !memfd_name(fds, x->memfd, &mname, &mid))
                mname = NULL;
        }
        g_string_append_printf(out, "  dma 0x%" PRIx64 "-0x%" PRIx64 " (0x%" PRIx64 " bytes) %s, "
                               "offset 0x%" PRIx64 ", memfd %d", x->iova, x->iova + x->size - 1,
                               x->size, dma_flags(x->flags), x->offset, x->memfd);
        if (mname)
            g_string_append_printf(out, " '%s'/%" G_GUINT64_FORMAT, mname, mid);
        if (x->pending)
            g_string_append(out, ", pending");
        else
            g_string_append_printf(out, ", vaddr 0x%" PRIx64, x->vaddr);
        g_string_append_c(out, '\n');
    }
}

static void render_device(GString *out, GVariant *d)
{
    g_autoptr(GVariant) vecs = g_variant_lookup_value(d, "vectors",
                                                      G_VARIANT_TYPE("a" VFIOCPR_DESC_VEC_TYPE));
    g_autoptr(GVariant) intx = g_variant_lookup_value(d, "intx", G_VARIANT_TYPE_VARDICT);
    g_autoptr(GVariant) mig = g_variant_lookup_value(d, "migration", G_VARIANT_TYPE_VARDICT);
    static const char *const index_names[] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };

    g_string_append_printf(out, "device '%s'\n", str(d, "name", "?"));
    if (strcmp(str(d, "kind", "?"), "cdev") == 0)
        g_string_append_printf(out, "  cdev, fd %d, container '%s', iommufd devid %u hwpt %u, %s\n",
                               i32(d, "fd", -1), str(d, "container", "?"), u32(d, "devid", 0),
                               u32(d, "hwpt-id", 0), str(d, "status", "?"));
    else
        g_string_append_printf(out, "  group device, fd %d, group %d, container '%s', %s\n",
                               i32(d, "fd", -1), i32(d, "group", -1), str(d, "container", "?"),
                               str(d, "status", "?"));
    for (gsize i = 0; vecs && i < g_variant_n_children(vecs); i++) {
        guint32 index, vector, data;
        gint32 fd, gsi;
        const char *status;
        gboolean has_msi, masked;
        guint64 address;
        g_variant_get_child(vecs, i, VFIOCPR_DESC_VEC_GET, &index, &vector, &fd, &status,
                            &has_msi, &address, &data, &masked, &gsi);
        g_string_append_printf(out, "  %s %u: eventfd %d",
                               index < G_N_ELEMENTS(index_names) ? index_names[index] : "?",
                               vector, fd);
        if (has_msi)
            g_string_append_printf(out, ", msi 0x%" PRIx64 " data 0x%x", address, data);
        if (masked)
            g_string_append(out, ", masked");
        if (gsi >= 0)
            g_string_append_printf(out, ", kvm gsi %d", gsi);
        g_string_append_printf(out, ", %s\n", status);
    }
    if (intx) {
        guint32 gsi;
        gint32 fd;
        g_string_append(out, "  INTx:");
        if (g_variant_lookup(intx, "gsi", "u", &gsi))
            g_string_append_printf(out, " gsi %u", gsi);
        if (g_variant_lookup(intx, "unmask-fd", "i", &fd))
            g_string_append_printf(out, " unmask eventfd %d", fd);
        g_string_append_c(out, '\n');
    }
    if (mig) {
        guint32 flags;
        gint32 fd;
        g_string_append(out, "  migration:");
        if (g_variant_lookup(mig, "flags", "u", &flags))
            g_string_append_printf(out, " flags 0x%x", flags);
        if (g_variant_lookup(mig, "state", "&s", NULL))
            g_string_append_printf(out, " state %s", str(mig, "state", "?"));
        if (g_variant_lookup(mig, "data-fd", "i", &fd))
            g_string_append_printf(out, " data fd %d", fd);
        g_string_append_c(out, '\n');
    }
}

static void render_kvm(GString *out, GVariant *k)
{
    g_autoptr(GVariant) irqfds = list(k, "irqfds");
    GVariantIter it;
    GVariant *f;

    if (i32(k, "vm-fd", -1) < 0)
        return; /* not attached: nothing to say */
    g_string_append_printf(out, "kvm: VM fd %d, %zu irqfds\n", i32(k, "vm-fd", -1),
                           g_variant_n_children(irqfds));
    g_variant_iter_init(&it, irqfds);
    while ((f = g_variant_iter_next_value(&it))) {
        gint32 res;
        g_string_append_printf(out, "  irqfd eventfd %d -> gsi %u", i32(f, "fd", -1),
                               u32(f, "gsi", 0));
        if (g_variant_lookup(f, "resample-fd", "i", &res))
            g_string_append_printf(out, ", resample eventfd %d", res);
        g_string_append_c(out, '\n');
        g_variant_unref(f);
    }
}

static void render_fds(GString *out, GVariant *fds)
{
    guint per_kind[VFIOCPR_FD_KIND_LAST + 1] = { 0 };
    gsize n = fds ? g_variant_n_children(fds) : 0;
    bool first = true;

    for (gsize i = 0; i < n; i++) {
        const char *kind;
        g_variant_get_child(fds, i, VFIOCPR_DESC_FD_GET, NULL, NULL, &kind, NULL, NULL);
        for (int k = 0; k <= VFIOCPR_FD_KIND_LAST; k++)
            if (strcmp(kind, vfiocpr_fd_kind_to_string(k)) == 0)
                per_kind[k]++;
    }
    g_string_append_printf(out, "fds: %zu", n);
    for (int k = 0; k <= VFIOCPR_FD_KIND_LAST; k++)
        if (per_kind[k]) {
            g_string_append_printf(out, "%s%s %u", first ? " (" : ", ",
                                   vfiocpr_fd_kind_to_string(k), per_kind[k]);
            first = false;
        }
    g_string_append(out, first ? "\n" : ")\n");
    for (gsize i = 0; i < n; i++) {
        const char *name, *kind, *status;
        guint64 id;
        gint32 fd;
        bool registered;
        g_variant_get_child(fds, i, VFIOCPR_DESC_FD_GET, &name, &id, &kind, &fd, &status);
        registered = strcmp(status, "registered") == 0;
        g_string_append_printf(out, "  %-24s %-8" G_GUINT64_FORMAT " %-15s fd %-5d%s%s\n", name,
                               id, kind, fd, registered ? "" : " ", registered ? "" : status);
    }
}

char *vfiocpr_describe_render(GVariant *desc)
{
    GString *out = g_string_new(NULL);
    g_autoptr(GVariant) st = NULL, containers = NULL, devices = NULL, kvm = NULL, fds = NULL;

    fds = desc && g_variant_is_of_type(desc, G_VARIANT_TYPE_VARDICT)
              ? g_variant_lookup_value(desc, "fds", G_VARIANT_TYPE("a" VFIOCPR_DESC_FD_TYPE))
              : NULL;
    GVariantIter it;
    GVariant *x;

    if (!desc || !g_variant_is_of_type(desc, G_VARIANT_TYPE_VARDICT))
        return g_string_free(out, FALSE);
    st = g_variant_lookup_value(desc, "state", G_VARIANT_TYPE_VARDICT);
    if (st)
        render_state(out, st);
    g_string_append_printf(out, "mode: %s\n", str(desc, "mode", "?"));
    containers = list(desc, "containers");
    g_variant_iter_init(&it, containers);
    while ((x = g_variant_iter_next_value(&it))) {
        render_container(out, x, fds);
        g_variant_unref(x);
    }
    devices = list(desc, "devices");
    g_variant_iter_init(&it, devices);
    while ((x = g_variant_iter_next_value(&it))) {
        render_device(out, x);
        g_variant_unref(x);
    }
    kvm = g_variant_lookup_value(desc, "kvm", G_VARIANT_TYPE_VARDICT);
    if (kvm)
        render_kvm(out, kvm);
    render_fds(out, fds);
    return g_string_free(out, FALSE);
}
