/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Format 1.6: the DMA tables. The golden 1.6 state restores (its tables recreated at
 * their recorded numbers with their recorded identities); every check of a forged
 * or damaged table refuses it; an exec issues the same kernel calls whatever the
 * number of mappings (no work per mapping in the blackout); after a failed
 * handover the sealed table is replaced at the next change and mapping, unmapping
 * and a later exec still work.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fake-kernel.h"
#include "golden-v1.h"
#include "private.h"
#include "testutil.h"
#include "vfio-compat.h"

#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

typedef struct {
    guint32 name, kind;
    guint64 id;
    gint32 fd;
    guint32 mode;
    guint64 dev, ino, rdev;
} wire_fd;

/* The recorded (dev, ino) of registry entry name in a state. */
static void recorded_identity(GBytes *blob, const char *name, int *fd, guint64 *dev,
                              guint64 *ino)
{
    g_autoptr(GVariant) payload = NULL, vfds = NULL, vnames = NULL;
    g_autofree const char **names = NULL;
    const wire_fd *w;
    gsize n;

    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, NULL, NULL, NULL), ==, 0);
    vnames = g_variant_lookup_value(payload, "fd-names", G_VARIANT_TYPE_STRING_ARRAY);
    vfds = g_variant_lookup_value(payload, "fds", G_VARIANT_TYPE("a(uutiuttt)"));
    names = g_variant_get_strv(vnames, NULL);
    w = g_variant_get_fixed_array(vfds, &n, sizeof(wire_fd));
    for (gsize i = 0; i < n; i++)
        if (strcmp(names[w[i].name], name) == 0) {
            *fd = w[i].fd;
            *dev = w[i].dev;
            *ino = w[i].ino;
            return;
        }
    g_error("no registry record '%s'", name);
}

/* A table memfd at fd holding bytes (sealed or not), shown with the identity the
 * state recorded for it. */
static void place_table(GBytes *blob, const char *key, GBytes *bytes, int seals)
{
    guint64 dev, ino;
    gsize len;
    const void *p = g_bytes_get_data(bytes, &len);
    int at, fd = memfd_create("vfiocpr-dma", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    recorded_identity(blob, key, &at, &dev, &ino);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(pwrite(fd, p, len, 0), ==, (ssize_t)len);
    if (seals)
        g_assert_cmpint(fcntl(fd, F_ADD_SEALS, seals), ==, 0);
    g_assert_cmpint(dup3(fd, at, O_CLOEXEC), ==, at);
    close(fd);
    fake_kernel_pretend_memfd(at, dev, ino);
}

/* The fake kernel as golden_v13_cold_start() left it after the 1.6 writer's exec. */
static GBytes *golden_v16_setup(void)
{
    struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un),
                                             .flags = VFIO_DMA_UNMAP_FLAG_VADDR |
                                                      VFIO_DMA_UNMAP_FLAG_ALL };
    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
    vfiocpr_unref(golden_v13_cold_start());
    g_assert_cmpint(vfiocpr_kernel->ioctl(950, VFIO_IOMMU_UNMAP_DMA, &un), ==, 0);
    fake_vfio_new_process(G_MAXUINT64);
    return tu_read_file("state-v1.6.bin");
}

static GBytes *golden_table(int fd)
{
    g_autofree char *name = g_strdup_printf("state-v1.6-fd%d.bin", fd);
    return tu_read_file(name);
}

static int restore(GBytes *blob, vfiocpr **out, GError **error)
{
    int sfd = tu_state_memfd(blob, true), r;

    tu_set_state_fd(sfd);
    r = vfiocpr_new(0, out, error);
    if (r < 0) {
        g_unsetenv(VFIOCPR_STATE_ENV);
        close(sfd);
    }
    return r;
}

static void close_tables(void)
{
    close(GOLDEN_V16_TABLE_FD0);
    close(GOLDEN_V16_TABLE_FD0 + 1);
}

static void test_golden_v16(void)
{
    g_autoptr(GBytes) blob = golden_v16_setup();
    g_autoptr(GBytes) t0 = golden_table(GOLDEN_V16_TABLE_FD0);
    g_autoptr(GBytes) t1 = golden_table(GOLDEN_V16_TABLE_FD0 + 1);
    g_autoptr(GVariant) payload = NULL, tables = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL, i = NULL;
    g_autoptr(vfiocpr_device) dev = NULL, di = NULL;
    g_autofree const char **req = NULL;
    guint16 major, minor;

    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, &major, &minor, &err), ==, 0);
    g_assert_cmpuint(minor, ==, 6);
    g_assert_true(g_variant_lookup(payload, "required-features", "^a&s", &req));
    g_assert_true(g_strv_contains(req, "dma-table"));
    tables = g_variant_lookup_value(payload, "dma-tables", G_VARIANT_TYPE("a(suu)"));
    g_assert_nonnull(tables);
    g_assert_cmpuint(g_variant_n_children(tables), ==, 2);
    /* the records are in the tables, not in the payload */
    g_assert_cmpuint(g_bytes_get_size(t0), ==, 2 * VFIOCPR_RECORD_DMA_SIZE);
    g_assert_cmpuint(g_bytes_get_size(t1), ==, VFIOCPR_RECORD_DMA_SIZE);
    place_table(blob, "vfio-dma-table:c0", t0, SEALS);
    place_table(blob, "vfio-dma-table:i0", t1, SEALS);
    g_assert_cmpint(restore(blob, &ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(c, "0000:00:03.0", &dev, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "i0", VFIOCPR_BACKEND_AUTO, &i, &err), ==,
                    0);
    g_assert_cmpint(vfiocpr_device_attach(i, "0000:00:04.0", &di, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(vfiocpr_container_pending(c), ==, 2);
    g_assert_cmpuint(vfiocpr_container_pending(i), ==, 1);
    /* a range not in the table is no restart remap; the recorded ones are */
    g_assert_cmpint(vfiocpr_dma_map(c, 0x100000, 0x200000, (void *)0x7e0000000000ull,
                                    GOLDEN_V11_RAM_FD, 0x1000, 3, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x100000, 0x200000, (void *)0x7e0000000000ull,
                                    GOLDEN_V11_RAM_FD, 0, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x40000000, 0x600000, (void *)0x7e0000200000ull,
                                    GOLDEN_V11_RAM_FD, 0x200000, 1, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(i, 0x100000, 0x100000, (void *)0x7e0000800000ull,
                                    GOLDEN_V11_RAM_FD, 0x0, 3, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), >=, 0);
    g_assert_no_error(err);
    /* the vaddrs of the type1 ranges are valid again */
    {
        guint64 size = 0, vaddr = 0;
        g_assert_cmpint(fake_vfio_dma(950, 0x40000000, &size, &vaddr), ==, 1);
        g_assert_cmphex(vaddr, ==, 0x7e0000200000ull);
    }
    /* the first change after the restore copies the table: the inherited one goes */
    {
        unsigned closes = fake_kernel_calls(FK_CLOSE);
        int fd = -1;
        g_assert_cmpint(vfiocpr_fd_lookup(ctx, "vfio-dma-table:c0", 0, VFIOCPR_FD_MEMFD, &fd, NULL),
                        ==, 1);
        g_assert_cmpint(vfiocpr_dma_unmap(c, 0x100000, 0x200000, &err), ==, 0);
        g_assert_no_error(err);
        g_assert_cmpuint(fake_kernel_calls(FK_CLOSE), ==, closes + 1);
        g_assert_cmpint(vfiocpr_fd_lookup(ctx, "vfio-dma-table:c0", 0, VFIOCPR_FD_MEMFD, &fd, NULL),
                        ==, 0);
    }
    g_clear_pointer(&dev, vfiocpr_device_unref);
    g_clear_pointer(&di, vfiocpr_device_unref);
    g_clear_pointer(&c, vfiocpr_container_unref);
    g_clear_pointer(&i, vfiocpr_container_unref);
    g_clear_pointer(&ctx, vfiocpr_unref);
    close_tables();
}

/* One forged table: c0's bytes after edit, sealed with seals; the restore must
 * fail with errno and a message holding what. */
typedef struct {
    const char *name;
    void (*edit)(GByteArray *t);
    int seals;
    int err;
    const char *what;
} forgery;

static void put64(GByteArray *t, gsize off, guint64 v)
{
    v = GUINT64_TO_LE(v);
    memcpy(t->data + off, &v, 8);
}

static void put32(GByteArray *t, gsize off, guint32 v)
{
    v = GUINT32_TO_LE(v);
    memcpy(t->data + off, &v, 4);
}

static void e_none(GByteArray *t G_GNUC_UNUSED) {}
static void e_flip(GByteArray *t) { t->data[20] ^= 1; } /* in a size: still valid */
static void e_container(GByteArray *t) { put32(t, 48, 1); }
static void e_size0(GByteArray *t) { put64(t, 48 + 16, 0); }
static void e_wrap(GByteArray *t) { put64(t, 8, G_MAXUINT64 - 0xfff); }
static void e_flags(GByteArray *t) { put32(t, 4, 4); }
static void e_twice(GByteArray *t) { memcpy(t->data + 48, t->data, 48); }
static void e_short(GByteArray *t) { g_byte_array_set_size(t, 48); }

static const forgery forgeries[] = {
    { "unsealed", e_none, 0, EPERM, "not a sealed memfd" },
    { "write-not-sealed", e_none, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW, EPERM,
      "not a sealed memfd" },
    { "check-value", e_flip, SEALS, EBADMSG, "check value" },
    { "container", e_container, SEALS, EBADMSG, "bad container, range or flags" },
    { "size-0", e_size0, SEALS, EBADMSG, "bad container, range or flags" },
    { "wraps", e_wrap, SEALS, EBADMSG, "bad container, range or flags" },
    { "flags", e_flags, SEALS, EBADMSG, "bad container, range or flags" },
    { "iova-twice", e_twice, SEALS, EBADMSG, "appears twice" },
    { "too-small", e_short, SEALS, EBADMSG, "cannot hold" },
};

static void test_forged(gconstpointer data)
{
    const forgery *f = data;
    g_autoptr(GBytes) blob = golden_v16_setup();
    g_autoptr(GBytes) t0 = golden_table(GOLDEN_V16_TABLE_FD0);
    g_autoptr(GBytes) t1 = golden_table(GOLDEN_V16_TABLE_FD0 + 1);
    g_autoptr(GByteArray) t = g_byte_array_new();
    g_autoptr(GBytes) edited = NULL;
    g_autoptr(GError) err = NULL;
    vfiocpr *ctx = NULL;

    g_byte_array_append(t, g_bytes_get_data(t0, NULL), g_bytes_get_size(t0));
    f->edit(t);
    edited = g_bytes_new(t->data, t->len);
    place_table(blob, "vfio-dma-table:c0", edited, f->seals);
    place_table(blob, "vfio-dma-table:i0", t1, SEALS);
    g_assert_cmpint(restore(blob, &ctx, &err), ==, -f->err);
    g_assert_null(ctx);
    g_test_message("%s: %s", f->name, err->message);
    if (!strstr(err->message, f->what))
        g_error("'%s' lacks '%s'", err->message, f->what);
    close_tables();
}

/* The control: the same placement, unedited, restores. */
static void test_forged_control(void)
{
    static const forgery none = { "control", e_none, SEALS, 0, "" };
    g_autoptr(GBytes) blob = golden_v16_setup();
    g_autoptr(GBytes) t0 = golden_table(GOLDEN_V16_TABLE_FD0);
    g_autoptr(GBytes) t1 = golden_table(GOLDEN_V16_TABLE_FD0 + 1);
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr) ctx = NULL;

    place_table(blob, "vfio-dma-table:c0", t0, none.seals);
    place_table(blob, "vfio-dma-table:i0", t1, SEALS);
    g_assert_cmpint(restore(blob, &ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_clear_pointer(&ctx, vfiocpr_unref);
    close_tables();
}

/* ------------------------------------------------------------ no work per mapping */

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *d;
    int ram;
    guint8 *va;
    unsigned n;
} vmm;

static void vmm_cold(vmm *m, vfiocpr_backend backend, unsigned n)
{
    g_autoptr(GError) err = NULL;

    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
    fake_vfio_add_group(12, "0000:00:03.0", false);
    fake_iommufd_enable(true);
    fake_kernel_set_memlock(G_MAXUINT64, true);
    m->n = n;
    g_assert_cmpint(vfiocpr_new(0, &m->ctx, &err), ==, 0);
    m->ram = memfd_create("ram", MFD_CLOEXEC);
    g_assert_cmpint(ftruncate(m->ram, (off_t)(n + 1) * 4096), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(m->ctx, "ram", 0, m->ram, VFIOCPR_FD_MEMFD, &err), ==, 0);
    m->va = mmap(NULL, (n + 1) * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, m->ram, 0);
    g_assert_true(m->va != MAP_FAILED);
    g_assert_cmpint(vfiocpr_container_open_backend(m->ctx, "c0", backend, &m->c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(m->c, "0000:00:03.0", &m->d, &err), ==, 0);
    for (unsigned i = 0; i < n; i++)
        g_assert_cmpint(vfiocpr_dma_map(m->c, 0x100000 + i * 4096ull, 4096, m->va + i * 4096,
                                        m->ram, i * 4096ull, 3, &err), ==, 0);
    g_assert_no_error(err);
}

static void vmm_free(vmm *m)
{
    g_clear_pointer(&m->d, vfiocpr_device_unref);
    g_clear_pointer(&m->c, vfiocpr_container_unref);
    g_clear_pointer(&m->ctx, vfiocpr_unref);
    munmap(m->va, (m->n + 1) * 4096);
    close(m->ram);
}

/* The old image execs (its handles dropped, its fds kept): the state fd. */
static int exec_away(vmm *m)
{
    int sfd = fake_kernel_exec_ok(m->ctx, G_MAXUINT64);
    g_clear_pointer(&m->d, vfiocpr_device_unref);
    g_clear_pointer(&m->c, vfiocpr_container_unref);
    g_clear_pointer(&m->ctx, vfiocpr_unref);
    return sfd;
}

/* The new image's start-up up to its re-maps: context, container c0, the device. */
static void vmm_restart(vmm *m, vfiocpr_backend backend, int sfd)
{
    g_autoptr(GError) err = NULL;

    tu_set_state_fd(sfd);
    g_assert_cmpint(vfiocpr_new(0, &m->ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_container_open_backend(m->ctx, "c0", backend, &m->c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(m->c, "0000:00:03.0", &m->d, &err), ==, 0);
    g_assert_no_error(err);
}

/* The kernel calls of a failing exec up to its execve (the rollback after it
 * re-validates every type1 vaddr, one by one), per op. */
static void exec_calls(vmm *m, unsigned *calls)
{
    char *argv[] = { (char *)"x", NULL };
    unsigned first = fake_kernel_calls(FK_ANY) + 1, last;

    g_assert_cmpint(vfiocpr_exec(m->ctx, "/x", argv, NULL, NULL), ==, -ENOENT);
    memset(calls, 0, sizeof(unsigned) * (FK_ANY + 1));
    for (last = first; fake_kernel_call_op(last) != FK_EXECVE; last++)
        g_assert_cmpuint(last, <=, fake_kernel_calls(FK_ANY));
    for (unsigned n = first; n <= last; n++) {
        calls[fake_kernel_call_op(n)]++;
        calls[FK_ANY]++;
    }
}

static void test_prepare_flat(gconstpointer data)
{
    vfiocpr_backend backend = GPOINTER_TO_INT(data);
    unsigned one[FK_ANY + 1], many[FK_ANY + 1], again[FK_ANY + 1];
    g_autoptr(GBytes) s1 = NULL, s2 = NULL;
    vmm a = { 0 }, b = { 0 };

    vmm_cold(&a, backend, 1);
    exec_calls(&a, one);
    s1 = fake_kernel_capture_state(a.ctx);
    vmm_free(&a);
    vmm_cold(&b, backend, 1000);
    exec_calls(&b, many);
    s2 = fake_kernel_capture_state(b.ctx);
    for (int o = 0; o <= FK_ANY; o++) {
        if (one[o] != many[o])
            g_error("exec at 1000 mappings: %u %s calls, at 1: %u", many[o],
                    fake_kernel_op_name(o), one[o]);
    }
    /* and the state itself does not grow with the mappings */
    g_assert_cmpuint(g_bytes_get_size(s1), ==, g_bytes_get_size(s2));
    /* the control: a retry after the failed exec finds the tables sealed already */
    exec_calls(&b, again);
    g_assert_cmpuint(again[FK_ADD_SEALS], ==, many[FK_ADD_SEALS] - 1);
    vmm_free(&b);
}

/* After a failed exec the table is sealed: mapping and unmapping still work, and
 * the next exec carries exactly the mappings of then. */
static void test_rollback_then_change(gconstpointer data)
{
    vfiocpr_backend backend = GPOINTER_TO_INT(data);
    g_autoptr(GError) err = NULL;
    unsigned calls[FK_ANY + 1];
    vmm m = { 0 }, m2 = { 0 };

    vmm_cold(&m, backend, 4);
    exec_calls(&m, calls); /* seals the table, rolls back */
    g_assert_cmpint(vfiocpr_dma_unmap(m.c, 0x100000 + 4096, 4096, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(m.c, 0x100000 + 4 * 4096ull, 4096, m.va + 4 * 4096, m.ram,
                                    4 * 4096ull, 3, &err), ==, 0);
    g_assert_no_error(err);
    exec_calls(&m, calls); /* seals the new table */
    g_assert_cmpint(vfiocpr_dma_unmap(m.c, 0x100000, 4096, &err), ==, 0);
    g_assert_no_error(err);
    vmm_restart(&m2, backend, exec_away(&m));
    /* slots 2, 3 and 4 remain (0 and 1 were unmapped) */
    g_assert_cmpuint(vfiocpr_container_pending(m2.c), ==, 3);
    for (unsigned i = 2; i <= 4; i++)
        g_assert_cmpint(vfiocpr_dma_map(m2.c, 0x100000 + i * 4096ull, 4096, m.va + i * 4096,
                                        m.ram, i * 4096ull, 3, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_finish(m2.ctx, NULL, &err), >=, 0);
    g_assert_no_error(err);
    m2.va = m.va;
    m2.ram = m.ram;
    m2.n = m.n;
    vmm_free(&m2);
}


/* A table restored in ascending iova order is not indexed: the claims take the
 * slots in order. Claimed in another order (reverse: every claim misses the next
 * slot) the index is built at the first miss; after the restore, unmapping and
 * mapping find their slots, and the next exec carries exactly the mappings of
 * then. order: 0 in order, 1 reversed. */
static void test_claim_order(gconstpointer data)
{
    bool reversed = GPOINTER_TO_INT(data);
    g_autoptr(GError) err = NULL;
    vmm m = { 0 }, m2 = { 0 };

    vmm_cold(&m, VFIOCPR_BACKEND_TYPE1, 6);
    vmm_restart(&m2, VFIOCPR_BACKEND_TYPE1, exec_away(&m));
    for (unsigned k = 0; k < 6; k++) {
        unsigned i = reversed ? 5 - k : k;
        g_assert_cmpint(vfiocpr_dma_map(m2.c, 0x100000 + i * 4096ull, 4096, m.va + i * 4096,
                                        m.ram, i * 4096ull, 3, &err), ==, 0);
        g_assert_no_error(err);
        /* the same range twice is refused, whichever way it was found */
        g_assert_cmpint(vfiocpr_dma_map(m2.c, 0x100000 + i * 4096ull, 4096, m.va + i * 4096,
                                        m.ram, i * 4096ull, 3, &err), ==, -EEXIST);
        g_clear_error(&err);
        g_assert_cmpuint(vfiocpr_container_pending(m2.c), ==, 5 - k);
    }
    {
        guint64 size = 0, vaddr = 0;
        g_assert_cmpint(fake_vfio_dma(vfiocpr_container_fd(m2.c), 0x100000 + 5 * 4096ull, &size,
                                      &vaddr), ==, 1);
        g_assert_cmphex(vaddr, ==, (guint64)(uintptr_t)(m.va + 5 * 4096));
    }
    g_assert_cmpint(vfiocpr_finish(m2.ctx, NULL, &err), >=, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_dma_unmap(m2.c, 0x100000 + 2 * 4096ull, 4096, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_unmap(m2.c, 0x100000 + 2 * 4096ull, 4096, &err), ==, -ENOENT);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_map(m2.c, 0x100000 + 6 * 4096ull, 4096, m.va + 6 * 4096, m.ram,
                                    6 * 4096ull, 3, &err), ==, 0);
    g_assert_no_error(err);
    /* 0, 1, 3, 4, 5, 6: no longer ascending (the unmap moved slot 5 into 2) */
    vmm_restart(&m2, VFIOCPR_BACKEND_TYPE1, exec_away(&m2));
    g_assert_cmpuint(vfiocpr_container_pending(m2.c), ==, 6);
    /* the index is built now (not ascending): the last mapping is found by it */
    g_assert_cmpint(vfiocpr_dma_map(m2.c, 0x100000 + 6 * 4096ull, 4096, m.va + 6 * 4096, m.ram,
                                    6 * 4096ull, 3, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(vfiocpr_container_pending(m2.c), ==, 5);
    m2.va = m.va;
    m2.ram = m.ram;
    m2.n = m.n;
    vmm_free(&m2);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/dma-table/golden-v1.6", test_golden_v16);
    g_test_add_func("/dma-table/forged/control", test_forged_control);
    for (gsize i = 0; i < G_N_ELEMENTS(forgeries); i++) {
        g_autofree char *p = g_strdup_printf("/dma-table/forged/%s", forgeries[i].name);
        g_test_add_data_func(p, &forgeries[i], test_forged);
    }
    g_test_add_data_func("/dma-table/prepare-flat/type1",
                         GINT_TO_POINTER(VFIOCPR_BACKEND_TYPE1), test_prepare_flat);
    g_test_add_data_func("/dma-table/prepare-flat/iommufd",
                         GINT_TO_POINTER(VFIOCPR_BACKEND_IOMMUFD), test_prepare_flat);
    g_test_add_data_func("/dma-table/claim-order/ascending", GINT_TO_POINTER(0),
                         test_claim_order);
    g_test_add_data_func("/dma-table/claim-order/reversed", GINT_TO_POINTER(1),
                         test_claim_order);
    g_test_add_data_func("/dma-table/rollback-then-change/type1",
                         GINT_TO_POINTER(VFIOCPR_BACKEND_TYPE1), test_rollback_then_change);
    g_test_add_data_func("/dma-table/rollback-then-change/iommufd",
                         GINT_TO_POINTER(VFIOCPR_BACKEND_IOMMUFD), test_rollback_then_change);
    return g_test_run();
}
