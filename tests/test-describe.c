/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests (fake kernel): vfiocpr_fd_lookup (absence is an answer, not an
 * error), vfiocpr_describe / vfiocpr_state_describe_variant (everything the dump
 * shows, as an a{sv}) on a cold and a restarted VMM with both IOMMU backends,
 * mappings, vectors, INTx, KVM and migration, and on every golden state; the text
 * of vfiocpr_state_describe() and vfiocpr_dump(); and a check, with its negative
 * control, that every line the dump prints has its counterpart in the description. */
#include "config.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fake-kernel.h"
#include "golden-v1.h"
#include "testutil.h"
#include "vfio-compat.h"

#define BDF1 "0000:00:03.0" /* type1, group 12 */
#define BDF2 "0000:00:04.0" /* iommufd cdev (group 13) */
#define RAM_SIZE (4u << 20)
#define GSI_BASE 40
#define INTX_GSI 10

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c0, *i0;
    vfiocpr_device *d1, *d2;
    int ram, vm;
    guint8 *va;
    int msix[4];
} vmm;

static void setup(void)
{
    fake_kernel_reset();
    fake_kvm_enable();
    fake_iommufd_enable(true);
    g_unsetenv(VFIOCPR_STATE_ENV);
    fake_vfio_add_group(12, BDF1, false);
    fake_vfio_add_group(13, BDF2, false);
}

/* The VMM's start-up, the same for a cold start and a restart: guest RAM, a type1
 * container with BDF1, an iommufd one with BDF2, three ranges, MSI-X 0-3 (2 masked)
 * and INTx on BDF1, MSI on BDF2, then KVM. */
static int vmm_setup(vmm *m, bool kvm, GError **error)
{
    int r;

    r = vfiocpr_fd_lookup(m->ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, &m->ram, error);
    if (r < 0)
        return r;
    if (r == 0) {
        m->ram = memfd_create("guest-ram", MFD_CLOEXEC);
        g_assert_cmpint(ftruncate(m->ram, RAM_SIZE), ==, 0);
        if ((r = vfiocpr_fd_save(m->ctx, "guest-ram", 0, m->ram, VFIOCPR_FD_MEMFD, error)) < 0)
            return r;
    }
    m->va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->ram, 0);
    g_assert_true(m->va != MAP_FAILED);
    if ((r = vfiocpr_container_open_backend(m->ctx, "c0", VFIOCPR_BACKEND_TYPE1, &m->c0,
                                            error)) < 0 ||
        (r = vfiocpr_device_attach(m->c0, BDF1, &m->d1, error)) < 0 ||
        (r = vfiocpr_container_open_backend(m->ctx, "i0", VFIOCPR_BACKEND_IOMMUFD, &m->i0,
                                            error)) < 0 ||
        (r = vfiocpr_device_attach(m->i0, BDF2, &m->d2, error)) < 0)
        return r;
    if ((r = vfiocpr_dma_map(m->c0, 0x100000, 0x100000, m->va, m->ram, 0,
                             VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE, error)) < 0 ||
        (r = vfiocpr_dma_map(m->c0, 0x40000000, 0x200000, m->va + 0x100000, m->ram, 0x100000,
                             VFIOCPR_DMA_READ, error)) < 0 ||
        (r = vfiocpr_dma_map(m->i0, 0x200000, 0x100000, m->va + 0x300000, m->ram, 0x300000,
                             VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE, error)) < 0)
        return r;
    if ((r = vfiocpr_irq_enable(m->d1, VFIOCPR_IRQ_MSIX, 0, 4, NULL, m->msix, error)) < 0 ||
        (r = vfiocpr_irq_enable(m->d1, VFIOCPR_IRQ_INTX, 0, 1, NULL, NULL, error)) < 0 ||
        (r = vfiocpr_irq_intx_unmask(m->d1, -1, error)) < 0 ||
        (r = vfiocpr_irq_set_intx_gsi(m->d1, INTX_GSI, error)) < 0 ||
        (r = vfiocpr_irq_enable(m->d2, VFIOCPR_IRQ_MSI, 0, 1, NULL, NULL, error)) < 0 ||
        (r = vfiocpr_irq_set_msi(m->d2, VFIOCPR_IRQ_MSI, 0, 0xfee02000, 0x4100, false,
                                 error)) < 0)
        return r;
    for (unsigned i = 0; i < 4; i++)
        if ((r = vfiocpr_irq_set_msi(m->d1, VFIOCPR_IRQ_MSIX, i, 0xfee01000, 0x4040 + i, i == 2,
                                     error)) < 0)
            return r;
    if (!kvm)
        return 0;
    m->vm = seam_kvm_vm();
    r = vfiocpr_kvm_attach(m->ctx, m->vm, GSI_BASE, NULL, NULL, error);
    return r < 0 ? r : 0;
}

static void vmm_drop(vmm *m)
{
    vfiocpr_device_unref(m->d1);
    vfiocpr_device_unref(m->d2);
    vfiocpr_container_unref(m->c0);
    vfiocpr_container_unref(m->i0);
    vfiocpr_unref(m->ctx);
    if (m->va)
        munmap(m->va, RAM_SIZE);
    memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------ helpers */

static GVariant *get(GVariant *d, const char *key, const char *type)
{
    GVariant *v = g_variant_lookup_value(d, key, G_VARIANT_TYPE(type));
    if (!v)
        g_error("description: no '%s' of type %s in %s", key, type, g_variant_print(d, FALSE));
    return v;
}

static const char *s_of(GVariant *d, const char *key)
{
    g_autoptr(GVariant) v = get(d, key, "s");
    return g_intern_string(g_variant_get_string(v, NULL));
}

static guint64 num(GVariant *d, const char *key)
{
    g_autoptr(GVariant) v = g_variant_lookup_value(d, key, NULL);
    if (!v)
        g_error("description: no '%s' in %s", key, g_variant_print(d, FALSE));
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT32))
        return g_variant_get_uint32(v);
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_INT32))
        return (guint64)(gint64)g_variant_get_int32(v);
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT64))
        return g_variant_get_uint64(v);
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_INT64))
        return (guint64)g_variant_get_int64(v);
    g_error("description: '%s' is %s, not a number", key, g_variant_get_type_string(v));
}

static int int_of(GVariant *d, const char *key)
{
    return (int)(gint64)num(d, key);
}

static bool b_of(GVariant *d, const char *key)
{
    g_autoptr(GVariant) v = get(d, key, "b");
    return g_variant_get_boolean(v);
}

static bool has(GVariant *d, const char *key)
{
    g_autoptr(GVariant) v = g_variant_lookup_value(d, key, NULL);
    return v != NULL;
}

/* The description's lists of tuples and their members' names (vfiocpr.h). */
static const struct {
    const char *key, *type;
    const char *names[10];
} tuples[] = {
    { "fds", "a(stsis)", { "name", "id", "kind", "fd", "status" } },
    { "mappings", "a(tttuibt)", { "iova", "size", "offset", "flags", "memfd", "pending", "vaddr" } },
    { "vectors", "a(uuisbtubi)",
      { "index", "vector", "fd", "status", "has-msi", "msi-address", "msi-data", "masked",
        "kvm-gsi" } },
};

/* List key of d as aa{sv} (a new reference): the tuples of the long lists are
 * checked against their documented type and named, so that the assertions below
 * read the same for every list. */
static GVariant *as_dicts(GVariant *d, const char *key)
{
    GVariantBuilder b;
    GVariant *v;

    for (gsize t = 0; t < G_N_ELEMENTS(tuples); t++) {
        g_autoptr(GVariant) l = NULL;
        if (strcmp(key, tuples[t].key) != 0)
            continue;
        l = get(d, key, tuples[t].type);
        g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
        for (gsize i = 0; i < g_variant_n_children(l); i++) {
            g_autoptr(GVariant) tuple = g_variant_get_child_value(l, i);
            GVariantBuilder e;
            g_variant_builder_init(&e, G_VARIANT_TYPE_VARDICT);
            for (gsize m = 0; m < g_variant_n_children(tuple); m++) {
                g_autoptr(GVariant) member = g_variant_get_child_value(tuple, m);
                g_variant_builder_add(&e, "{sv}", tuples[t].names[m], member);
            }
            g_variant_builder_add_value(&b, g_variant_builder_end(&e));
        }
        return g_variant_ref_sink(g_variant_builder_end(&b));
    }
    v = get(d, key, "aa{sv}");
    return v;
}

static gsize n_of(GVariant *d, const char *key)
{
    g_autoptr(GVariant) v = as_dicts(d, key);
    return g_variant_n_children(v);
}

/* Element i of list key (a new reference). */
static GVariant *nth(GVariant *d, const char *key, gsize i)
{
    g_autoptr(GVariant) v = as_dicts(d, key);
    g_assert_cmpuint(i, <, g_variant_n_children(v));
    return g_variant_get_child_value(v, i);
}

/* The fd entry (name, id), or NULL. */
static GVariant *fd_entry(GVariant *desc, const char *name, guint64 id)
{
    g_autoptr(GVariant) fds = as_dicts(desc, "fds");
    for (gsize i = 0; i < g_variant_n_children(fds); i++) {
        GVariant *e = g_variant_get_child_value(fds, i);
        if (strcmp(s_of(e, "name"), name) == 0 && num(e, "id") == id)
            return e;
        g_variant_unref(e);
    }
    return NULL;
}

static guint count_status(GVariant *list, const char *status)
{
    guint n = 0;
    for (gsize i = 0; i < g_variant_n_children(list); i++) {
        g_autoptr(GVariant) e = g_variant_get_child_value(list, i);
        n += strcmp(s_of(e, "status"), status) == 0;
    }
    return n;
}

/* ------------------------------------------------------------------ dump coverage
 *
 * Every line vfiocpr_dump() prints is classified, and each kind of line must come as
 * often as its object in the description: the dump shows nothing the description
 * lacks. A line of no known kind fails too, so a new kind of line cannot be added to
 * the dump without its counterpart here. */

typedef struct {
    guint state, mode, containers, backends, groups, maps, devices, device_details, vectors,
        intx, migration, kvm, irqfds, fd_heads, fds;
} line_counts;

static bool is_vector_line(const char *l)
{
    static const char *const names[] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };
    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autofree char *p = g_strdup_printf("  %s ", names[i]);
        unsigned v;
        char colon;
        if (g_str_has_prefix(l, p) && sscanf(l + strlen(p), "%u%c", &v, &colon) == 2 &&
            colon == ':')
            return true;
    }
    return false;
}

static bool count_dump_lines(const char *dump, line_counts *c, GString *why)
{
    g_auto(GStrv) lines = g_strsplit(dump, "\n", -1);
    bool in_fds = false;

    memset(c, 0, sizeof(*c));
    for (gsize i = 0; lines[i]; i++) {
        const char *l = lines[i];
        if (!*l && !lines[i + 1])
            break;
        if (in_fds && g_str_has_prefix(l, "  "))
            c->fds++;
        else if (g_str_has_prefix(l, "libvfiocpr state format "))
            c->state++;
        else if (g_str_has_prefix(l, "mode: "))
            c->mode++;
        else if (g_str_has_prefix(l, "container '"))
            c->containers++;
        else if (g_str_has_prefix(l, "  backend "))
            c->backends++;
        else if (g_str_has_prefix(l, "  group device, ") || g_str_has_prefix(l, "  cdev, "))
            c->device_details++;
        else if (g_str_has_prefix(l, "  group "))
            c->groups++;
        else if (g_str_has_prefix(l, "  dma 0x"))
            c->maps++;
        else if (g_str_has_prefix(l, "device '"))
            c->devices++;
        else if (is_vector_line(l))
            c->vectors++;
        else if (g_str_has_prefix(l, "  INTx:"))
            c->intx++;
        else if (g_str_has_prefix(l, "  migration:"))
            c->migration++;
        else if (g_str_has_prefix(l, "kvm: "))
            c->kvm++;
        else if (g_str_has_prefix(l, "  irqfd "))
            c->irqfds++;
        else if (g_str_has_prefix(l, "fds: "))
            c->fd_heads++, in_fds = true;
        else {
            g_string_append_printf(why, "line of no known kind: '%s'; ", l);
            return false;
        }
    }
    return true;
}

static bool dump_covered(const char *dump, GVariant *desc, GString *why)
{
    line_counts c, want = { 0 };
    g_autoptr(GVariant) containers = get(desc, "containers", "aa{sv}");
    g_autoptr(GVariant) devices = get(desc, "devices", "aa{sv}");
    g_autoptr(GVariant) kvm = get(desc, "kvm", "a{sv}");

    if (!count_dump_lines(dump, &c, why))
        return false;
    want.state = has(desc, "state");
    want.mode = 1;
    want.containers = want.backends = g_variant_n_children(containers);
    for (gsize i = 0; i < want.containers; i++) {
        g_autoptr(GVariant) x = g_variant_get_child_value(containers, i);
        g_autoptr(GVariant) groups = g_variant_lookup_value(x, "groups", NULL);
        g_autoptr(GVariant) maps = g_variant_lookup_value(x, "mappings", NULL);
        want.groups += groups ? g_variant_n_children(groups) : 0;
        want.maps += maps ? g_variant_n_children(maps) : 0;
    }
    want.devices = want.device_details = g_variant_n_children(devices);
    for (gsize i = 0; i < want.devices; i++) {
        g_autoptr(GVariant) x = g_variant_get_child_value(devices, i);
        g_autoptr(GVariant) vecs = g_variant_lookup_value(x, "vectors", NULL);
        want.vectors += vecs ? g_variant_n_children(vecs) : 0;
        want.intx += has(x, "intx");
        want.migration += has(x, "migration");
    }
    want.kvm = int_of(kvm, "vm-fd") >= 0;
    want.irqfds = want.kvm ? n_of(kvm, "irqfds") : 0;
    want.fd_heads = 1;
    want.fds = n_of(desc, "fds");
#define CMP(f)                                                                          \
    if (c.f != want.f)                                                                  \
        g_string_append_printf(why, "%s: %u in the dump, %u in the description; ", #f, c.f, \
                               want.f);
    CMP(state) CMP(mode) CMP(containers) CMP(backends) CMP(groups) CMP(maps) CMP(devices)
    CMP(device_details) CMP(vectors) CMP(intx) CMP(migration) CMP(kvm) CMP(irqfds)
    CMP(fd_heads) CMP(fds)
#undef CMP
    return why->len == 0;
}

static void assert_dump_covered(vfiocpr *ctx)
{
    g_autoptr(GVariant) desc = vfiocpr_describe(ctx);
    g_autofree char *dump = vfiocpr_dump(ctx);
    g_autoptr(GString) why = g_string_new(NULL);

    g_assert_false(g_variant_is_floating(desc));
    if (!dump_covered(dump, desc, why))
        g_error("the dump shows what the description lacks: %s\n%s", why->str, dump);
}

/* A copy of desc with key dropped from element 0 of list. */
static GVariant *drop_key(GVariant *desc, const char *list, const char *key)
{
    g_auto(GVariantDict) top = G_VARIANT_DICT_INIT(desc);
    g_autoptr(GVariant) l = get(desc, list, "aa{sv}");
    GVariantBuilder b;

    g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
    for (gsize i = 0; i < g_variant_n_children(l); i++) {
        g_autoptr(GVariant) e = g_variant_get_child_value(l, i);
        g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(e);
        if (i == 0)
            g_variant_dict_remove(&d, key);
        g_variant_builder_add_value(&b, g_variant_dict_end(&d));
    }
    g_variant_dict_insert_value(&top, list, g_variant_builder_end(&b));
    return g_variant_ref_sink(g_variant_dict_end(&top));
}

/* ------------------------------------------------------------------ lookup */

static void test_lookup_cold(void)
{
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GError) err = NULL;
    int efd = tu_eventfd(0, EFD_CLOEXEC), fd = 1234;

    setup();
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(ctx, "irq", 3, efd, VFIOCPR_FD_EVENTFD, &err), ==, 0);
    /* found */
    g_assert_cmpint(vfiocpr_fd_lookup(ctx, "irq", 3, VFIOCPR_FD_EVENTFD, &fd, &err), ==, 1);
    g_assert_no_error(err);
    g_assert_cmpint(fd, ==, efd);
    /* absent: an answer, no error to clear */
    fd = 1234;
    g_assert_cmpint(vfiocpr_fd_lookup(ctx, "irq", 4, VFIOCPR_FD_EVENTFD, &fd, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(fd, ==, -1);
    g_assert_cmpint(vfiocpr_fd_lookup(ctx, "nothing", 0, VFIOCPR_FD_MEMFD, &fd, &err), ==, 0);
    g_assert_no_error(err);
    /* the same absence through vfiocpr_fd_find keeps its 0.1 contract: an error */
    g_assert_cmpint(vfiocpr_fd_find(ctx, "irq", 4, VFIOCPR_FD_EVENTFD, &err), ==, -ENOENT);
    g_assert_error(err, VFIOCPR_ERROR, ENOENT);
    g_assert_nonnull(strstr(err->message, "'irq'/4"));
    g_clear_error(&err);
    /* a real failure: error set, naming the entry */
    fd = 1234;
    g_assert_cmpint(vfiocpr_fd_lookup(ctx, "irq", 3, VFIOCPR_FD_MEMFD, &fd, &err), ==, -EBADFD);
    g_assert_error(err, VFIOCPR_ERROR, EBADFD);
    g_assert_nonnull(strstr(err->message, "'irq'/3"));
    g_assert_nonnull(strstr(err->message, "registered as eventfd"));
    g_assert_cmpint(fd, ==, -1);
    g_clear_error(&err);
    /* bad arguments */
    g_assert_cmpint(vfiocpr_fd_lookup(ctx, "irq", 3, VFIOCPR_FD_EVENTFD, NULL, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_fd_lookup(NULL, "irq", 3, VFIOCPR_FD_EVENTFD, &fd, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_fd_lookup(ctx, NULL, 3, VFIOCPR_FD_EVENTFD, &fd, &err), ==, -EINVAL);
    g_clear_error(&err);
    close(efd);
}

static void test_lookup_restart(void)
{
    g_autoptr(vfiocpr) old = NULL, ctx = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) desc = NULL, e = NULL;
    g_auto(GStrv) unclaimed = NULL;
    int efd = tu_eventfd(0, EFD_CLOEXEC), efd2 = tu_eventfd(0, EFD_CLOEXEC), fd = 1234;
    struct stat st;

    setup();
    g_assert_cmpint(vfiocpr_new(0, &old, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(old, "irq", 3, efd, VFIOCPR_FD_EVENTFD, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(old, "swapped", 0, efd2, VFIOCPR_FD_EVENTFD, &err), ==, 0);
    tu_set_state_fd(fake_kernel_exec_ok(old, G_MAXUINT64));
    g_clear_pointer(&old, vfiocpr_unref);
    /* between the images, "swapped" becomes another anon inode with the same
     * identity (what an epoll fd dup'ed over it would look like to fstat) */
    g_assert_cmpint(fstat(efd2, &st), ==, 0);
    fake_kernel_pretend(efd2, "anon_inode:[eventpoll]", st.st_mode, st.st_dev, st.st_ino,
                        st.st_rdev);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_true(vfiocpr_is_restart(ctx));
    /* absent in restart mode: still no error */
    g_assert_cmpint(vfiocpr_fd_lookup(ctx, "irq", 9, VFIOCPR_FD_EVENTFD, &fd, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(fd, ==, -1);
    /* wrong kind: refused, and the entry stays unclaimed */
    g_assert_cmpint(vfiocpr_fd_lookup(ctx, "irq", 3, VFIOCPR_FD_MEMFD, &fd, &err), ==, -EBADFD);
    g_assert_nonnull(strstr(err->message, "'irq'/3"));
    g_clear_error(&err);
    desc = vfiocpr_describe(ctx);
    e = fd_entry(desc, "irq", 3);
    g_assert_cmpstr(s_of(e, "status"), ==, "unclaimed");
    g_clear_pointer(&e, g_variant_unref);
    g_clear_pointer(&desc, g_variant_unref);
    /* an inherited fd that is not what the state recorded: the claim's check */
    g_assert_cmpint(vfiocpr_fd_lookup(ctx, "swapped", 0, VFIOCPR_FD_EVENTFD, &fd, &err), ==,
                    -EBADFD);
    g_assert_nonnull(strstr(err->message, "'swapped'/0"));
    g_assert_nonnull(strstr(err->message, "the state says eventfd"));
    g_assert_cmpint(fd, ==, -1);
    g_clear_error(&err);
    /* found: claimed, as vfiocpr_fd_find would */
    g_assert_cmpint(vfiocpr_fd_lookup(ctx, "irq", 3, VFIOCPR_FD_EVENTFD, &fd, &err), ==, 1);
    g_assert_no_error(err);
    g_assert_cmpint(fd, ==, efd);
    desc = vfiocpr_describe(ctx);
    e = fd_entry(desc, "irq", 3);
    g_assert_cmpstr(s_of(e, "status"), ==, "claimed");
    g_clear_pointer(&e, g_variant_unref);
    e = fd_entry(desc, "swapped", 0);
    g_assert_cmpstr(s_of(e, "status"), ==, "unclaimed");
    /* only the swapped one is left unclaimed at finish */
    g_assert_cmpint(vfiocpr_finish(ctx, &unclaimed, &err), ==, 1);
    g_assert_nonnull(strstr(unclaimed[0], "'swapped'/0"));
    close(efd);
    close(efd2);
}

/* ------------------------------------------------------------------ describe */

static void assert_cold_description(vmm *m, GVariant *desc)
{
    g_autoptr(GVariant) c0 = nth(desc, "containers", 0), i0 = nth(desc, "containers", 1);
    g_autoptr(GVariant) g = NULL, m0 = NULL, m1 = NULL, im = NULL;
    g_autoptr(GVariant) d1 = nth(desc, "devices", 0), d2 = nth(desc, "devices", 1);
    g_autoptr(GVariant) intx = NULL, mig = NULL, kvm = get(desc, "kvm", "a{sv}");
    g_autoptr(GVariant) fds = as_dicts(desc, "fds"), e = NULL;
    guint32 devid = 0, hwpt = 0;

    g_assert_cmpstr(s_of(desc, "mode"), ==, "cold");
    g_assert_false(has(desc, "state"));
    /* ram, 2 containers, 1 group, 2 devices, 4 MSI-X + INTx + unmask + MSI eventfds */
    g_assert_cmpuint(g_variant_n_children(fds), ==, 1 + 2 + 1 + 2 + 4 + 1 + 1 + 1);
    g_assert_cmpuint(count_status(fds, "registered"), ==, g_variant_n_children(fds));
    e = fd_entry(desc, "guest-ram", 0);
    g_assert_nonnull(e);
    g_assert_cmpstr(s_of(e, "kind"), ==, "memfd");
    g_assert_cmpint(int_of(e, "fd"), ==, m->ram);
    g_clear_pointer(&e, g_variant_unref);
    e = fd_entry(desc, "irq:" BDF1 ":2", 3);
    g_assert_nonnull(e);
    g_assert_cmpint(int_of(e, "fd"), ==, m->msix[3]);
    g_clear_pointer(&e, g_variant_unref);

    /* type1 */
    g_assert_cmpstr(s_of(c0, "name"), ==, "c0");
    g_assert_cmpstr(s_of(c0, "backend"), ==, "type1");
    g_assert_cmpint(int_of(c0, "fd"), ==, vfiocpr_container_fd(m->c0));
    g_assert_cmpstr(s_of(c0, "status"), ==, "open");
    g_assert_false(has(c0, "ioas-id"));
    g_assert_cmpuint(n_of(c0, "groups"), ==, 1);
    g = nth(c0, "groups", 0);
    g_assert_cmpuint(num(g, "id"), ==, 12);
    g_assert_cmpint(int_of(g, "fd"), ==, vfiocpr_fd_find(m->ctx, "vfio-group", 12,
                                                         VFIOCPR_FD_VFIO_GROUP, NULL));
    g_assert_cmpstr(s_of(g, "status"), ==, "attached");
    g_assert_cmpuint(num(c0, "dma-ranges"), ==, 2);
    g_assert_cmpuint(num(c0, "dma-bytes"), ==, 0x300000);
    g_assert_cmpuint(num(c0, "remap-pending"), ==, 0);
    m0 = nth(c0, "mappings", 0);
    m1 = nth(c0, "mappings", 1);
    g_assert_cmphex(num(m0, "iova"), ==, 0x100000);
    g_assert_cmphex(num(m0, "size"), ==, 0x100000);
    g_assert_cmphex(num(m0, "offset"), ==, 0);
    g_assert_cmpuint(num(m0, "flags"), ==, VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE);
    g_assert_cmpint(int_of(m0, "memfd"), ==, m->ram);
    g_assert_cmphex(num(m0, "vaddr"), ==, (guint64)(uintptr_t)m->va);
    g_assert_false(b_of(m0, "pending"));
    g_assert_cmphex(num(m1, "iova"), ==, 0x40000000);
    g_assert_cmphex(num(m1, "offset"), ==, 0x100000);
    {
        /* the list is a fixed array with the documented C layout */
        struct {
            guint64 iova, size, offset;
            guint32 flags;
            gint32 memfd;
            guint8 pending, pad[7];
            guint64 vaddr;
        } const *fa;
        g_autoptr(GVariant) l = get(c0, "mappings", "a(tttuibt)");
        gsize n = 0;
        fa = g_variant_get_fixed_array(l, &n, 48);
        g_assert_cmpuint(n, ==, 2);
        g_assert_cmphex(fa[1].iova, ==, 0x40000000);
        g_assert_cmphex(fa[1].size, ==, 0x200000);
        g_assert_cmpint(fa[1].memfd, ==, m->ram);
        g_assert_cmpuint(fa[1].pending, ==, 0);
        g_assert_cmphex(fa[1].vaddr, ==, (guint64)(uintptr_t)(m->va + 0x100000));
    }
    g_assert_cmpuint(num(m1, "flags"), ==, VFIOCPR_DMA_READ);
    g_assert_cmphex(num(m1, "vaddr"), ==, (guint64)(uintptr_t)(m->va + 0x100000));
    /* iommufd */
    g_assert_cmpstr(s_of(i0, "name"), ==, "i0");
    g_assert_cmpstr(s_of(i0, "backend"), ==, "iommufd");
    g_assert_cmpint(int_of(i0, "fd"), ==, vfiocpr_container_fd(m->i0));
    g_assert_cmpuint(num(i0, "ioas-id"), ==, (guint64)vfiocpr_container_ioas_id(m->i0));
    g_assert_false(b_of(i0, "pins-pending"));
    g_assert_false(has(i0, "groups"));
    g_assert_cmpuint(n_of(i0, "mappings"), ==, 1);
    im = nth(i0, "mappings", 0);
    g_assert_cmphex(num(im, "iova"), ==, 0x200000);
    g_assert_cmphex(num(im, "offset"), ==, 0x300000);

    /* the group device */
    g_assert_cmpstr(s_of(d1, "name"), ==, BDF1);
    g_assert_cmpstr(s_of(d1, "kind"), ==, "group");
    g_assert_cmpint(int_of(d1, "group"), ==, 12);
    g_assert_cmpstr(s_of(d1, "container"), ==, "c0");
    g_assert_cmpint(int_of(d1, "fd"), ==, vfiocpr_device_fd(m->d1));
    g_assert_cmpstr(s_of(d1, "status"), ==, "open");
    g_assert_false(has(d1, "devid"));
    g_assert_cmpuint(n_of(d1, "vectors"), ==, 5);
    {
        /* sorted by index, then vector: INTx first */
        g_autoptr(GVariant) v0 = nth(d1, "vectors", 0), v3 = nth(d1, "vectors", 3);
        g_autoptr(GVariant) v4 = nth(d1, "vectors", 4);
        g_assert_cmpuint(num(v0, "index"), ==, VFIOCPR_IRQ_INTX);
        g_assert_false(b_of(v0, "has-msi"));
        g_assert_cmpuint(num(v0, "kvm-gsi"), ==, INTX_GSI);
        g_assert_cmpuint(num(v3, "index"), ==, VFIOCPR_IRQ_MSIX);
        g_assert_true(b_of(v3, "has-msi"));
        g_assert_cmpuint(num(v3, "vector"), ==, 2);
        g_assert_cmpint(int_of(v3, "fd"), ==, m->msix[2]);
        g_assert_cmphex(num(v3, "msi-address"), ==, 0xfee01000);
        g_assert_cmphex(num(v3, "msi-data"), ==, 0x4042);
        g_assert_true(b_of(v3, "masked"));
        g_assert_cmpint(int_of(v3, "kvm-gsi"), ==, -1); /* masked: no route, no irqfd */
        g_assert_cmpstr(s_of(v3, "status"), ==, "enabled");
        g_assert_cmpuint(num(v4, "vector"), ==, 3);
        g_assert_false(b_of(v4, "masked"));
        /* routable vectors get GSIs in device, index, vector order: MSI-X 0, 1, 3 */
        g_assert_cmpuint(num(v4, "kvm-gsi"), ==, GSI_BASE + 2);
    }
    intx = get(d1, "intx", "a{sv}");
    g_assert_cmpuint(num(intx, "gsi"), ==, INTX_GSI);
    g_assert_cmpint(int_of(intx, "unmask-fd"), ==,
                    vfiocpr_fd_find(m->ctx, "irq-unmask:" BDF1, 0, VFIOCPR_FD_EVENTFD, NULL));
    mig = get(d1, "migration", "a{sv}");
    g_assert_cmphex(num(mig, "flags"), ==, VFIOCPR_MIG_FLAG_STOP_COPY | VFIOCPR_MIG_FLAG_P2P);
    g_assert_cmpstr(s_of(mig, "state"), ==, "RUNNING");
    /* the cdev */
    g_assert_cmpstr(s_of(d2, "name"), ==, BDF2);
    g_assert_cmpstr(s_of(d2, "kind"), ==, "cdev");
    g_assert_cmpint(int_of(d2, "group"), ==, -1);
    g_assert_cmpstr(s_of(d2, "container"), ==, "i0");
    g_assert_cmpint(vfiocpr_device_iommufd_ids(m->d2, &devid, &hwpt), ==, 0);
    g_assert_cmpuint(num(d2, "devid"), ==, devid);
    g_assert_cmpuint(num(d2, "hwpt-id"), ==, hwpt);
    g_assert_false(has(d2, "intx"));
    g_assert_false(has(d2, "migration")); /* nothing asked of it */
    {
        g_autoptr(GVariant) v = nth(d2, "vectors", 0);
        g_assert_cmpuint(num(v, "index"), ==, VFIOCPR_IRQ_MSI);
        g_assert_cmpuint(num(v, "kvm-gsi"), ==, GSI_BASE + 3);
    }
    /* KVM: MSI-X 0, 1, 3, the cdev's MSI, INTx with its resample fd */
    g_assert_cmpint(int_of(kvm, "vm-fd"), ==, m->vm);
    g_assert_cmpuint(n_of(kvm, "irqfds"), ==, 5);
    {
        g_autoptr(GVariant) f = nth(kvm, "irqfds", 3); /* per device: MSI-X, then INTx */
        g_assert_cmpuint(num(f, "gsi"), ==, INTX_GSI);
        g_assert_cmpint(int_of(f, "resample-fd"), ==, int_of(intx, "unmask-fd"));
    }
}

static void test_describe_cold(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) desc = NULL;
    g_autofree char *dump = NULL;
    guint32 flags = 0;
    vfiocpr_mig_state st;

    setup();
    fake_mig_setup(VFIOCPR_MIG_FLAG_STOP_COPY | VFIOCPR_MIG_FLAG_P2P, "x", 1, 0);
    g_assert_cmpint(vfiocpr_new(0, &m.ctx, &err), ==, 0);
    g_assert_cmpint(vmm_setup(&m, true, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_mig_flags(m.d1, &flags, &err), ==, 0);
    g_assert_cmpint(vfiocpr_mig_get_state(m.d1, &st, &err), ==, 0);
    {
        /* building the description asks the kernel nothing */
        unsigned before = fake_kernel_calls(FK_ANY);
        desc = vfiocpr_describe(m.ctx);
        g_assert_cmpuint(fake_kernel_calls(FK_ANY), ==, before);
    }
    assert_cold_description(&m, desc);
    dump = vfiocpr_dump(m.ctx);
    g_test_message("%s", dump);
    /* the 0.1/0.2 first lines stay */
    g_assert_nonnull(strstr(dump, "mode: cold\n"));
    g_assert_nonnull(strstr(dump, "container 'c0': 1 groups, 2 DMA ranges (3145728 bytes)\n"));
    g_assert_nonnull(strstr(dump, "container 'i0': iommufd IOAS 1, 1 DMA ranges (1048576 bytes)\n"));
    g_assert_nonnull(strstr(dump, "\ndevice '" BDF1 "'\n"));
    g_assert_nonnull(strstr(dump, "\nfds: 13 (memfd 1, eventfd 7, vfio-container 1, "
                                  "vfio-group 1, vfio-device 1, iommufd 1, vfio-cdev 1)\n"));
    /* and the details */
    g_assert_nonnull(strstr(dump, "\n  dma 0x40000000-0x401fffff (0x200000 bytes) r, offset "
                                  "0x100000, memfd "));
    g_assert_nonnull(strstr(dump, "\n  MSI-X 2: eventfd "));
    g_assert_nonnull(strstr(dump, ", masked, enabled\n"));
    g_assert_nonnull(strstr(dump, "\n  INTx: gsi 10 unmask eventfd "));
    g_assert_nonnull(strstr(dump, "\n  migration: flags 0x3 state RUNNING\n"));
    g_assert_nonnull(strstr(dump, "\nkvm: VM fd "));
    assert_dump_covered(m.ctx);
    vmm_drop(&m);
}

static void test_describe_restart(void)
{
    vmm old = { 0 }, m = { 0 };
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) desc = NULL, st = NULL, c0 = NULL, i0 = NULL, m0 = NULL, d1 = NULL,
                        v = NULL, g = NULL, kvm = NULL, fds = NULL;
    int ram, c0fd, msix2;

    setup();
    g_assert_cmpint(vfiocpr_new(0, &old.ctx, &err), ==, 0);
    g_assert_cmpint(vmm_setup(&old, true, &err), ==, 0);
    ram = old.ram;
    c0fd = vfiocpr_container_fd(old.c0);
    msix2 = old.msix[2];
    tu_set_state_fd(fake_kernel_exec_ok(old.ctx, G_MAXUINT64));
    vmm_drop(&old);

    g_assert_cmpint(vfiocpr_new(0, &m.ctx, &err), ==, 0);
    g_assert_no_error(err);
    /* before the VMM's start-up: everything preserved, nothing claimed */
    desc = vfiocpr_describe(m.ctx);
    g_assert_cmpstr(s_of(desc, "mode"), ==, "restart");
    st = get(desc, "state", "a{sv}");
    g_assert_cmpuint(num(st, "format-major"), ==, VFIOCPR_STATE_FORMAT_MAJOR);
    g_assert_cmpuint(num(st, "format-minor"), ==, VFIOCPR_STATE_FORMAT_MINOR);
    g_assert_cmpuint(num(st, "writer-pid"), ==, (guint64)getpid());
    g_assert_cmpuint(num(st, "bytes"), >, VFIOCPR_STATE_HEADER_SIZE);
    g_assert_true(g_str_has_prefix(s_of(st, "writer"), "libvfiocpr "));
    {
        g_autoptr(GVariant) req = get(st, "required-features", "as");
        g_autofree const char **f = g_variant_get_strv(req, NULL);
        g_assert_true(g_strv_contains(f, "vfio-type1"));
        g_assert_true(g_strv_contains(f, "iommufd"));
    }
    fds = as_dicts(desc, "fds");
    g_assert_cmpuint(count_status(fds, "unclaimed"), ==, 13);
    c0 = nth(desc, "containers", 0);
    g_assert_cmpstr(s_of(c0, "status"), ==, "unclaimed");
    g_assert_cmpint(int_of(c0, "fd"), ==, c0fd); /* the registry's, before the claim */
    g_assert_cmpuint(num(c0, "remap-pending"), ==, 2);
    g = nth(c0, "groups", 0);
    g_assert_cmpstr(s_of(g, "status"), ==, "preserved");
    m0 = nth(c0, "mappings", 0);
    g_assert_true(b_of(m0, "pending"));
    g_assert_cmpuint(num(m0, "vaddr"), ==, 0);
    /* the memfd it must come back with, found by its identity */
    g_assert_cmpint(int_of(m0, "memfd"), ==, ram);
    i0 = nth(desc, "containers", 1);
    g_assert_true(b_of(i0, "pins-pending"));
    g_assert_cmpuint(num(i0, "remap-pending"), ==, 1);
    d1 = nth(desc, "devices", 0);
    g_assert_cmpstr(s_of(d1, "status"), ==, "unclaimed");
    g_assert_false(has(d1, "migration")); /* not carried by the state */
    v = nth(d1, "vectors", 3);
    g_assert_cmpstr(s_of(v, "status"), ==, "unclaimed");
    g_assert_cmpint(int_of(v, "fd"), ==, msix2);
    g_assert_cmphex(num(v, "msi-data"), ==, 0x4042);
    g_assert_true(b_of(v, "masked"));
    g_clear_pointer(&v, g_variant_unref);
    v = nth(d1, "vectors", 1);
    g_assert_cmpint(int_of(v, "kvm-gsi"), ==, -1); /* the new VM is not attached yet */
    kvm = get(desc, "kvm", "a{sv}");
    g_assert_cmpint(int_of(kvm, "vm-fd"), ==, -1);
    g_assert_cmpuint(n_of(kvm, "irqfds"), ==, 0);
    assert_dump_covered(m.ctx);

    /* the VMM's start-up claims everything */
    g_assert_cmpint(vmm_setup(&m, true, &err), ==, 0);
    g_assert_no_error(err);
    g_clear_pointer(&desc, g_variant_unref);
    g_clear_pointer(&c0, g_variant_unref);
    g_clear_pointer(&m0, g_variant_unref);
    g_clear_pointer(&d1, g_variant_unref);
    g_clear_pointer(&v, g_variant_unref);
    g_clear_pointer(&fds, g_variant_unref);
    g_clear_pointer(&kvm, g_variant_unref);
    desc = vfiocpr_describe(m.ctx);
    fds = as_dicts(desc, "fds");
    g_assert_cmpuint(count_status(fds, "claimed"), ==, 15); /* and the 2 DMA tables */
    c0 = nth(desc, "containers", 0);
    g_assert_cmpstr(s_of(c0, "status"), ==, "claimed");
    g_assert_cmpuint(num(c0, "remap-pending"), ==, 0);
    m0 = nth(c0, "mappings", 0);
    g_assert_false(b_of(m0, "pending"));
    g_assert_cmphex(num(m0, "vaddr"), ==, (guint64)(uintptr_t)m.va);
    d1 = nth(desc, "devices", 0);
    g_assert_cmpstr(s_of(d1, "status"), ==, "claimed");
    v = nth(d1, "vectors", 1);
    g_assert_cmpstr(s_of(v, "status"), ==, "claimed");
    g_assert_cmpuint(num(v, "kvm-gsi"), ==, GSI_BASE);
    kvm = get(desc, "kvm", "a{sv}");
    g_assert_cmpint(int_of(kvm, "vm-fd"), ==, m.vm);
    assert_dump_covered(m.ctx);
    /* after finish: back to cold, the state it came from still described */
    g_assert_cmpint(vfiocpr_finish(m.ctx, NULL, &err), ==, 0);
    g_clear_pointer(&desc, g_variant_unref);
    g_clear_pointer(&fds, g_variant_unref);
    g_clear_pointer(&i0, g_variant_unref);
    desc = vfiocpr_describe(m.ctx);
    g_assert_cmpstr(s_of(desc, "mode"), ==, "cold");
    g_assert_true(has(desc, "state"));
    fds = as_dicts(desc, "fds");
    g_assert_cmpuint(count_status(fds, "registered"), ==, 15); /* the DMA tables too, until they change */
    i0 = nth(desc, "containers", 1);
    g_assert_false(b_of(i0, "pins-pending"));
    vmm_drop(&m);
}

/* The text of a state and the dump of the context restored from it are one text,
 * and describe the containers, devices, mappings and vectors; describing consumes
 * nothing. */
static void test_state_describe_text(void)
{
    vmm old = { 0 };
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) v = NULL, v2 = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autofree char *text = NULL, *dump = NULL, *env = NULL;
    int sfd, c0fd;

    setup();
    g_assert_cmpint(vfiocpr_new(0, &old.ctx, &err), ==, 0);
    g_assert_cmpint(vmm_setup(&old, true, &err), ==, 0);
    c0fd = vfiocpr_container_fd(old.c0);
    sfd = fake_kernel_exec_ok(old.ctx, G_MAXUINT64);
    vmm_drop(&old);
    tu_set_state_fd(sfd);
    env = g_strdup(g_getenv(VFIOCPR_STATE_ENV));

    g_assert_cmpint(vfiocpr_state_describe(sfd, &text, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_state_describe_variant(sfd, &v, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_false(g_variant_is_floating(v));
    g_test_message("%s", text);
    /* nothing consumed or changed */
    g_assert_cmpint(fcntl(sfd, F_GETFD), >=, 0);
    g_assert_cmpstr(g_getenv(VFIOCPR_STATE_ENV), ==, env);
    g_assert_cmpint(fake_kernel_pretend_cloexec(c0fd), ==, 0);
    /* what the 0.2 text lacked */
    g_assert_nonnull(strstr(text, "\nmode: restart\n"));
    g_assert_nonnull(strstr(text, "\ncontainer 'c0': 1 groups, 2 DMA ranges (3145728 bytes), "
                                  "re-map pending\n"));
    g_assert_nonnull(strstr(text, "\n  group 12: fd "));
    g_assert_nonnull(strstr(text, "\n  dma 0x100000-0x1fffff (0x100000 bytes) rw, offset 0x0, "
                                  "memfd "));
    g_assert_nonnull(strstr(text, " 'guest-ram'/0, pending\n"));
    g_assert_nonnull(strstr(text, "\ncontainer 'i0': iommufd IOAS 1 (pins pending), 1 DMA ranges"));
    g_assert_nonnull(strstr(text, "\ndevice '" BDF1 "'\n  group device, fd "));
    g_assert_nonnull(strstr(text, "\ndevice '" BDF2 "'\n  cdev, fd "));
    g_assert_nonnull(strstr(text, "\n  MSI-X 3: eventfd "));
    g_assert_nonnull(strstr(text, ", msi 0xfee01000 data 0x4043, unclaimed\n"));
    g_assert_nonnull(strstr(text, "\n  MSI 0: eventfd "));
    g_assert_nonnull(strstr(text, "\n  INTx: gsi 10 unmask eventfd "));
    g_assert_null(strstr(text, "\nkvm: ")); /* the VM did not cross the exec */
    g_assert_nonnull(strstr(text, "\nfds: 15 ("));
    /* the same as the dump and the description of a context that loaded it */
    g_assert_cmpint(vfiocpr_new(VFIOCPR_NEW_KEEP_STATE, &ctx, &err), ==, 0);
    dump = vfiocpr_dump(ctx);
    g_assert_cmpstr(text, ==, dump);
    v2 = vfiocpr_describe(ctx);
    g_assert_true(g_variant_equal(v, v2));
    g_assert_cmpint(vfiocpr_state_describe(sfd, NULL, &err), ==, 0); /* validate only */
    g_assert_cmpint(vfiocpr_state_describe_variant(sfd, NULL, &err), ==, 0);
    close(sfd);
}

static void test_state_describe_refusals(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) v = NULL;
    g_autoptr(GBytes) blob = tu_read_file("state-v1.bin");
    int efd = tu_eventfd(0, EFD_CLOEXEC), sfd;
    char *text = (char *)"untouched";

    setup();
    g_assert_cmpint(vfiocpr_state_describe_variant(efd, &v, &err), ==, -EBADF);
    g_assert_null(v);
    g_assert_nonnull(strstr(err->message, "not a memfd"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_state_describe(efd, &text, &err), ==, -EBADF);
    g_assert_null(text);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_state_describe_variant(-1, &v, &err), ==, -EBADF);
    g_clear_error(&err);
    /* a valid v1 blob whose fds are not there (no pretending): refused, none closed */
    sfd = tu_state_memfd(blob, true);
    g_assert_cmpint(vfiocpr_state_describe_variant(sfd, &v, &err), <, 0);
    g_assert_nonnull(strstr(err->message, "fd registry"));
    g_assert_null(v);
    g_assert_cmpint(fcntl(sfd, F_GETFD), >=, 0);
    close(sfd);
    close(efd);
}

/* ------------------------------------------------------------------ goldens */

static GVariant *describe_golden(const char *file)
{
    g_autoptr(GBytes) blob = tu_read_file(file);
    g_autoptr(GError) err = NULL;
    g_autofree char *text = NULL;
    GVariant *v = NULL;
    int sfd = tu_state_memfd(blob, true);

    g_assert_cmpint(vfiocpr_state_describe_variant(sfd, &v, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_state_describe(sfd, &text, &err), ==, 0);
    g_test_message("%s:\n%s", file, text);
    {
        g_autoptr(GString) why = g_string_new(NULL);
        if (!dump_covered(text, v, why))
            g_error("%s: the text shows what the description lacks: %s", file, why->str);
    }
    g_assert_cmpint(fcntl(sfd, F_GETFD), >=, 0);
    close(sfd);
    return v;
}

static void assert_golden_type1(GVariant *v, bool irqs)
{
    g_autoptr(GVariant) c0 = nth(v, "containers", 0), g = nth(c0, "groups", 0);
    g_autoptr(GVariant) m0 = nth(c0, "mappings", 0), m1 = nth(c0, "mappings", 1);
    g_autoptr(GVariant) d = nth(v, "devices", 0);

    g_assert_cmpstr(s_of(c0, "name"), ==, "c0");
    g_assert_cmpstr(s_of(c0, "backend"), ==, "type1");
    g_assert_cmpint(int_of(c0, "fd"), ==, 950);
    g_assert_cmpuint(num(g, "id"), ==, 12);
    g_assert_cmpint(int_of(g, "fd"), ==, 951);
    g_assert_cmpuint(n_of(c0, "mappings"), ==, 2);
    g_assert_cmphex(num(m0, "iova"), ==, 0x100000);
    g_assert_cmphex(num(m0, "size"), ==, 0x200000);
    g_assert_cmpuint(num(m0, "flags"), ==, 3);
    g_assert_cmpint(int_of(m0, "memfd"), ==, GOLDEN_V11_RAM_FD);
    g_assert_true(b_of(m0, "pending"));
    g_assert_cmphex(num(m1, "iova"), ==, 0x40000000);
    g_assert_cmphex(num(m1, "size"), ==, 0x600000);
    g_assert_cmphex(num(m1, "offset"), ==, 0x200000);
    g_assert_cmpuint(num(m1, "flags"), ==, 1);
    g_assert_cmpstr(s_of(d, "name"), ==, "0000:00:03.0");
    g_assert_cmpint(int_of(d, "fd"), ==, 952);
    g_assert_cmpint(int_of(d, "group"), ==, 12);
    g_assert_cmpstr(s_of(d, "container"), ==, "c0");
    if (!irqs) {
        g_assert_cmpuint(n_of(d, "vectors"), ==, 0);
        g_assert_false(has(d, "intx"));
        return;
    }
    g_assert_cmpuint(n_of(d, "vectors"), ==, 3);
    for (unsigned i = 0; i < 3; i++) {
        g_autoptr(GVariant) x = nth(d, "vectors", i);
        g_assert_cmpuint(num(x, "index"), ==, VFIOCPR_IRQ_MSIX);
        g_assert_cmpuint(num(x, "vector"), ==, i);
        g_assert_cmpint(int_of(x, "fd"), ==, GOLDEN_V12_EFD0 + (int)i);
        g_assert_cmphex(num(x, "msi-address"), ==, 0xfee01000);
        g_assert_cmphex(num(x, "msi-data"), ==, 0x4040 + i);
        g_assert_cmpint(b_of(x, "masked"), ==, i == 2);
    }
    {
        g_autoptr(GVariant) intx = get(d, "intx", "a{sv}");
        g_assert_cmpuint(num(intx, "gsi"), ==, 10);
    }
}

static void assert_state_version(GVariant *v, guint minor)
{
    g_autoptr(GVariant) st = get(v, "state", "a{sv}");
    g_assert_cmpstr(s_of(v, "mode"), ==, "restart");
    g_assert_cmpuint(num(st, "format-major"), ==, 1);
    g_assert_cmpuint(num(st, "format-minor"), ==, minor);
}

static void test_golden_v1(void)
{
    const golden_fd fds[] = GOLDEN_V1_FDS;
    g_autoptr(GVariant) v = NULL, e = NULL;

    setup();
    golden_v1_pretend();
    v = describe_golden("state-v1.bin");
    assert_state_version(v, 0);
    g_assert_cmpuint(n_of(v, "fds"), ==, G_N_ELEMENTS(fds));
    for (gsize i = 0; i < G_N_ELEMENTS(fds); i++) {
        e = fd_entry(v, fds[i].name, fds[i].id);
        g_assert_nonnull(e);
        g_assert_cmpint(int_of(e, "fd"), ==, fds[i].fd);
        g_assert_cmpstr(s_of(e, "kind"), ==, vfiocpr_fd_kind_to_string(fds[i].kind));
        g_assert_cmpstr(s_of(e, "status"), ==, "unclaimed");
        g_clear_pointer(&e, g_variant_unref);
    }
    g_assert_cmpuint(n_of(v, "containers"), ==, 0);
    g_assert_cmpuint(n_of(v, "devices"), ==, 0);
}

static void test_golden_v11(void)
{
    g_autoptr(GVariant) v = NULL;

    setup();
    vfiocpr_unref(golden_v11_cold_start());
    v = describe_golden("state-v1.1.bin");
    assert_state_version(v, 1);
    g_assert_cmpuint(n_of(v, "containers"), ==, 1);
    assert_golden_type1(v, false);
}

static void test_golden_v12(void)
{
    g_autoptr(GVariant) v = NULL;

    setup();
    vfiocpr_unref(golden_v12_cold_start());
    v = describe_golden("state-v1.2.bin");
    assert_state_version(v, 2);
    assert_golden_type1(v, true);
}

static void test_golden_v13(void)
{
    g_autoptr(GVariant) v = NULL, i0 = NULL, m = NULL, d = NULL;

    setup();
    vfiocpr_unref(golden_v13_cold_start());
    v = describe_golden("state-v1.3.bin");
    assert_state_version(v, 3);
    assert_golden_type1(v, true);
    i0 = nth(v, "containers", 1);
    g_assert_cmpstr(s_of(i0, "name"), ==, "i0");
    g_assert_cmpstr(s_of(i0, "backend"), ==, "iommufd");
    g_assert_cmpuint(num(i0, "ioas-id"), ==, 1);
    g_assert_true(b_of(i0, "pins-pending"));
    m = nth(i0, "mappings", 0);
    g_assert_cmphex(num(m, "iova"), ==, 0x100000);
    g_assert_cmphex(num(m, "size"), ==, 0x100000);
    g_assert_cmpint(int_of(m, "memfd"), ==, GOLDEN_V11_RAM_FD);
    d = nth(v, "devices", 1);
    g_assert_cmpstr(s_of(d, "name"), ==, "0000:00:04.0");
    g_assert_cmpstr(s_of(d, "kind"), ==, "cdev");
    g_assert_cmpstr(s_of(d, "container"), ==, "i0");
    g_assert_cmpuint(num(d, "devid"), ==, 2);
    g_assert_cmpuint(num(d, "hwpt-id"), ==, 3);
}

/* 1.4 is a transfer's state: its fds travel with it, by index, so a state fd alone
 * cannot be validated; refused with the reason, as vfiocpr_new() refuses it. */
static void test_golden_v14(void)
{
    g_autoptr(GBytes) blob = tu_read_file("state-v1.4.bin");
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) v = NULL;
    int sfd;

    setup();
    golden_real_fds();
    vfiocpr_unref(golden_v13_cold_start());
    sfd = tu_state_memfd(blob, true);
    g_assert_cmpint(vfiocpr_state_describe_variant(sfd, &v, &err), ==, -EBADMSG);
    g_assert_nonnull(strstr(err->message, "a transfer state (fds by index)"));
    g_assert_null(v);
    g_assert_cmpint(fcntl(sfd, F_GETFD), >=, 0);
    close(sfd);
    golden_close_real_fds();
}

/* ------------------------------------------------------------------ negative control */

/* The coverage check catches a description that lacks what the dump shows (a
 * container's mappings, a device's vectors, its INTx) and a kind of dump line it
 * does not know. */
static void test_coverage_negative_control(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) desc = NULL;
    g_autofree char *dump = NULL;
    static const struct {
        const char *list, *key, *caught;
    } drops[] = {
        { "containers", "mappings", "maps:" },
        { "containers", "groups", "groups:" },
        { "devices", "vectors", "vectors:" },
        { "devices", "intx", "intx:" },
    };

    setup();
    g_assert_cmpint(vfiocpr_new(0, &m.ctx, &err), ==, 0);
    g_assert_cmpint(vmm_setup(&m, true, &err), ==, 0);
    desc = vfiocpr_describe(m.ctx);
    dump = vfiocpr_dump(m.ctx);
    {
        g_autoptr(GString) why = g_string_new(NULL);
        g_assert_true(dump_covered(dump, desc, why)); /* the control's baseline */
    }
    for (gsize i = 0; i < G_N_ELEMENTS(drops); i++) {
        g_autoptr(GVariant) less = drop_key(desc, drops[i].list, drops[i].key);
        g_autoptr(GString) why = g_string_new(NULL);
        g_assert_false(dump_covered(dump, less, why));
        g_assert_nonnull(strstr(why->str, drops[i].caught));
    }
    {
        g_autofree char *more = g_strconcat(dump, "  hugepages: 2\n", NULL);
        g_autoptr(GString) why = g_string_new(NULL);
        /* a line after "fds:" counts as an fd line: put it before */
        g_autofree char *moved = g_strconcat("weird line\n", dump, NULL);
        g_assert_false(dump_covered(more, desc, why));
        g_assert_nonnull(strstr(why->str, "fds:"));
        g_string_truncate(why, 0);
        g_assert_false(dump_covered(moved, desc, why));
        g_assert_nonnull(strstr(why->str, "no known kind"));
    }
    vmm_drop(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/describe/lookup/cold", test_lookup_cold);
    g_test_add_func("/describe/lookup/restart", test_lookup_restart);
    g_test_add_func("/describe/cold", test_describe_cold);
    g_test_add_func("/describe/restart", test_describe_restart);
    g_test_add_func("/describe/state-text", test_state_describe_text);
    g_test_add_func("/describe/state-refusals", test_state_describe_refusals);
    g_test_add_func("/describe/golden/v1.0", test_golden_v1);
    g_test_add_func("/describe/golden/v1.1", test_golden_v11);
    g_test_add_func("/describe/golden/v1.2", test_golden_v12);
    g_test_add_func("/describe/golden/v1.3", test_golden_v13);
    g_test_add_func("/describe/golden/v1.4", test_golden_v14);
    g_test_add_func("/describe/coverage-negative-control", test_coverage_negative_control);
    return g_test_run();
}
