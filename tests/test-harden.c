/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: forged states whose fds were swapped between records (checksums
 * recomputed, as anyone able to write a state can). Every vfio device fd from a
 * group is the same anonymous inode, so fstat cannot tell two apart: the restore
 * checks each against the device it is recorded for (fdinfo's vfio-device-syspath
 * on Linux 6.18+, else the identity recorded at the cold open). Each swap must be
 * refused naming both objects, with no fd closed and no device reset; the same
 * state unswapped must restore. */
#include "config.h"

#include <errno.h>
#include <linux/vfio.h>
#include <sys/sysmacros.h>

#include "fake-kernel.h"
#include "golden-v1.h"
#include "testutil.h"
#include "transfer-peer.h"

#define RAM_SIZE (4u << 20)
#define BDF_A "0000:00:03.0" /* group 12 */
#define BDF_B "0000:00:04.0" /* group 13 */

/* On-the-wire fd record (lib/fdreg.c), "(uutiuttt)". */
typedef struct {
    guint32 name, kind;
    guint64 id;
    gint32 fd;
    guint32 mode;
    guint64 dev, ino, rdev;
} wire_fd;
G_STATIC_ASSERT(sizeof(wire_fd) == 48);

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c, *c2;
    vfiocpr_device *a, *b;
    int ram;
    int fd_a, fd_b; /* the device fds of the cold start */
} vmm;

static void setup(void)
{
    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
    fake_iommufd_enable(true);
    /* edu and e1000e, as in the guest test bed */
    fake_vfio_add_device(12, BDF_A, &fake_pci_edu, 0);
    fake_vfio_add_device(13, BDF_B, &fake_pci_e1000e, 0);
}

static void vmm_drop(vmm *m)
{
    g_clear_pointer(&m->a, vfiocpr_device_unref);
    g_clear_pointer(&m->b, vfiocpr_device_unref);
    g_clear_pointer(&m->c, vfiocpr_container_unref);
    g_clear_pointer(&m->c2, vfiocpr_container_unref);
    g_clear_pointer(&m->ctx, vfiocpr_unref);
}

/* The layouts the swaps are tried on. */
typedef enum {
    TYPE1_ONE,   /* one type1 container, both devices through their groups */
    TYPE1_TWO,   /* container c0 with device A, c1 with device B, different ranges */
    IOMMUFD_ONE, /* one iommufd container, both devices through their cdevs */
} layout;

static void cold_start(vmm *m, layout l)
{
    g_autoptr(GError) err = NULL;
    void *va;

    m->ram = memfd_create("guest-ram", MFD_CLOEXEC);
    g_assert_cmpint(ftruncate(m->ram, RAM_SIZE), ==, 0);
    va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->ram, 0);
    g_assert_true(va != MAP_FAILED);
    g_assert_cmpint(vfiocpr_new(0, &m->ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(m->ctx, "guest-ram", 0, m->ram, VFIOCPR_FD_MEMFD, &err), ==,
                    0);
    g_assert_cmpint(vfiocpr_container_open_backend(m->ctx, "c0", l == IOMMUFD_ONE ?
                                                   VFIOCPR_BACKEND_IOMMUFD :
                                                   VFIOCPR_BACKEND_TYPE1, &m->c, &err), ==, 0);
    if (l == TYPE1_TWO)
        g_assert_cmpint(vfiocpr_container_open(m->ctx, "c1", &m->c2, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(m->c, BDF_A, &m->a, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(l == TYPE1_TWO ? m->c2 : m->c, BDF_B, &m->b, &err), ==,
                    0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_dma_map(m->c, 0x100000, 0x100000, va, m->ram, 0, 3, &err), ==, 0);
    if (l == TYPE1_TWO)
        g_assert_cmpint(vfiocpr_dma_map(m->c2, 0x800000, 0x200000, (guint8 *)va + 0x100000,
                                        m->ram, 0x100000, 3, &err), ==, 0);
    g_assert_no_error(err);
    m->fd_a = vfiocpr_device_fd(m->a);
    m->fd_b = vfiocpr_device_fd(m->b);
}

/* What the old image handed over: its state bytes, read back from the memfd. */
static GBytes *state_of(int sfd)
{
    struct stat st;
    guint8 *buf;

    g_assert_cmpint(fstat(sfd, &st), ==, 0);
    buf = g_malloc((gsize)st.st_size);
    g_assert_cmpint(pread(sfd, buf, (gsize)st.st_size, 0), ==, st.st_size);
    return g_bytes_new_take(buf, (gsize)st.st_size);
}

typedef enum {
    SWAP_FD,  /* only the fd numbers */
    SWAP_ALL, /* the fd numbers and the recorded identities with them */
} swap_mode;

/* The state with the fds of records (name_x, id_x) and (name_y, id_y) swapped;
 * drop_section: also removes that payload key (a state of an older format).
 * Encoded again: both checksums are right. */
static GBytes *forge(GBytes *blob, const char *name_x, guint64 id_x, const char *name_y,
                     guint64 id_y, swap_mode mode, const char *drop_section)
{
    g_autoptr(GVariant) payload = NULL, vfds = NULL, vnames = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree const char **names = NULL;
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
    g_autofree wire_fd *w = NULL;
    wire_fd *x = NULL, *y = NULL;
    const wire_fd *src;
    gsize n;

    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, NULL, NULL, &err), ==, 0);
    vnames = g_variant_lookup_value(payload, "fd-names", G_VARIANT_TYPE_STRING_ARRAY);
    vfds = g_variant_lookup_value(payload, "fds", G_VARIANT_TYPE("a(uutiuttt)"));
    g_assert_nonnull(vnames);
    g_assert_nonnull(vfds);
    names = g_variant_get_strv(vnames, NULL);
    src = g_variant_get_fixed_array(vfds, &n, sizeof(wire_fd));
    w = g_memdup2(src, n * sizeof(wire_fd));
    for (gsize i = 0; i < n; i++) {
        if (strcmp(names[w[i].name], name_x) == 0 && w[i].id == id_x)
            x = &w[i];
        if (strcmp(names[w[i].name], name_y) == 0 && w[i].id == id_y)
            y = &w[i];
    }
    g_assert_nonnull(x);
    g_assert_nonnull(y);
    if (mode == SWAP_FD) {
        gint32 t = x->fd;
        x->fd = y->fd;
        y->fd = t;
    } else {
        wire_fd t = *x;
        x->fd = y->fd, x->mode = y->mode, x->dev = y->dev, x->ino = y->ino, x->rdev = y->rdev;
        y->fd = t.fd, y->mode = t.mode, y->dev = t.dev, y->ino = t.ino, y->rdev = t.rdev;
    }
    g_variant_dict_init(&d, payload);
    g_variant_dict_insert_value(&d, "fds", g_variant_new_fixed_array(G_VARIANT_TYPE("(uutiuttt)"),
                                                                      w, n, sizeof(wire_fd)));
    if (drop_section)
        g_assert_true(g_variant_dict_remove(&d, drop_section));
    return vfiocpr_state_encode(g_variant_dict_end(&d));
}

/* Restores from blob; returns vfiocpr_new()'s result, the context in *out. */
static int restore(GBytes *blob, vfiocpr **out, GError **error)
{
    int sfd = tu_state_memfd(blob, true), r;

    tu_set_state_fd(sfd);
    r = vfiocpr_new(0, out, error);
    if (r < 0) {
        /* a refused restore consumes nothing: the state stays for the caller */
        g_assert_cmpstr(g_getenv(VFIOCPR_STATE_ENV), !=, NULL);
        g_assert_cmpint(fcntl(sfd, F_GETFD), >=, 0);
        g_unsetenv(VFIOCPR_STATE_ENV);
        close(sfd);
    }
    return r; /* restored: the library consumed the state memfd */
}

/* Nothing of the old image was lost: every device fd still open, none closed
 * (a close would reset the device), the DMA ranges still there. */
static void assert_untouched(const vmm *m, unsigned closes_before)
{
    g_assert_cmpint(fcntl(m->fd_a, F_GETFD), >=, 0);
    g_assert_cmpint(fcntl(m->fd_b, F_GETFD), >=, 0);
    g_assert_cmpint(fcntl(vfiocpr_container_fd(m->c), F_GETFD), >=, 0);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, closes_before);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_RESET), ==, 0);
}

/* The refusal names the record and what its fd really is. */
static void assert_refused(int r, GError *err, const char *what_x, const char *what_y)
{
    g_assert_cmpint(r, ==, -EBADFD);
    g_assert_nonnull(err);
    g_test_message("refused: %s", err->message);
    g_assert_nonnull(strstr(err->message, what_x));
    g_assert_nonnull(strstr(err->message, what_y));
}

/* The honest state restores, and the VMM gets each device's own fd back. */
static void assert_restores(GBytes *blob, const vmm *old, layout l)
{
    g_autoptr(GError) err = NULL;
    vmm m = { 0 };
    unsigned paths;

    g_assert_cmpint(restore(blob, &m.ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_container_open_backend(m.ctx, "c0", VFIOCPR_BACKEND_AUTO, &m.c, &err),
                    ==, 0);
    if (l == TYPE1_TWO)
        g_assert_cmpint(vfiocpr_container_open(m.ctx, "c1", &m.c2, &err), ==, 0);
    paths = fake_kernel_calls(FK_FD_PATH);
    g_assert_cmpint(vfiocpr_device_attach(m.c, BDF_A, &m.a, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(l == TYPE1_TWO ? m.c2 : m.c, BDF_B, &m.b, &err), ==, 0);
    g_assert_no_error(err);
    /* the restore's device check (fdinfo or identity) proved each device fd's kind:
     * claiming them reads no link name */
    g_assert_cmpuint(fake_kernel_calls(FK_FD_PATH), ==, paths);
    g_assert_cmpint(vfiocpr_device_fd(m.a), ==, old->fd_a);
    g_assert_cmpint(vfiocpr_device_fd(m.b), ==, old->fd_b);
    vmm_drop(&m);
}

/* Runs the cold start and a successful exec: *blob is what the new image got. */
static void exec_state(vmm *m, layout l, GBytes **blob)
{
    int sfd;

    cold_start(m, l);
    sfd = fake_kernel_exec_ok(m->ctx, G_MAXUINT64);
    g_assert_cmpint(sfd, >=, 0);
    *blob = state_of(sfd);
    close(sfd);
    g_unsetenv(VFIOCPR_STATE_ENV);
}

/* ------------------------------------------------------------ device fds */

/* The user's report: two device records with their fds swapped. On a kernel
 * without the fdinfo line (6.1) the recorded identity catches it; with it (7.3)
 * fdinfo does, without asking the device anything. */
static void test_devices_swapped(gconstpointer data)
{
    bool fdinfo = GPOINTER_TO_INT(data) & 1;
    layout l = (GPOINTER_TO_INT(data) & 2) ? IOMMUFD_ONE : TYPE1_ONE;
    g_autoptr(GBytes) blob = NULL, bad = NULL;
    g_autoptr(GError) err = NULL;
    vfiocpr *ctx = NULL;
    vmm old = { 0 };
    unsigned closes, info;
    int r;

    setup();

    exec_state(&old, l, &blob);
    fake_vfio_set_fdinfo_syspath(fdinfo);
    closes = fake_vfio_device_closes();
    /* a cdev's identity differs from the other cdev's (rdev): fstat refuses a swap of
     * the numbers alone; a record carrying both fd and identity is for the device check */
    bad = forge(blob, "vfio-device:" BDF_A, 0, "vfio-device:" BDF_B, 0,
                l == IOMMUFD_ONE ? SWAP_ALL : SWAP_FD, NULL);
    info = fake_vfio_ioctls(VFIO_DEVICE_GET_INFO);
    r = restore(bad, &ctx, &err);
    g_assert_null(ctx);
    assert_refused(r, err, "device '" BDF_A "'", "'" BDF_B "'");
    g_assert_nonnull(strstr(err->message, fdinfo ? "vfio-device-syspath" : "8086:10d3"));
    /* fdinfo settles it without asking the device */
    if (fdinfo)
        g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_GET_INFO), ==, info);
    else
        g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_GET_INFO), >, info);
    assert_untouched(&old, closes);
    g_clear_error(&err);
    assert_restores(blob, &old, l);
    vmm_drop(&old);
    close(old.ram);
}

/* Two functions of one model: same ids, same BARs. Without fdinfo nothing the
 * kernel offers without touching the device tells them apart: the documented
 * limit, shown here so it stays documented; with fdinfo the swap is refused. */
static void test_identical_devices(void)
{
    g_autoptr(GBytes) blob = NULL, bad = NULL;
    g_autoptr(GError) err = NULL;
    vfiocpr *ctx = NULL;
    vmm old = { 0 };
    int r;

    setup();

    fake_vfio_set_model(13, &fake_pci_edu);
    exec_state(&old, TYPE1_ONE, &blob);
    bad = forge(blob, "vfio-device:" BDF_A, 0, "vfio-device:" BDF_B, 0, SWAP_FD, NULL);
    r = restore(bad, &ctx, &err);
    g_assert_cmpint(r, ==, 0); /* the limit: not detected on a 6.1 kernel */
    g_assert_no_error(err);
    g_clear_pointer(&ctx, vfiocpr_unref);
    g_unsetenv(VFIOCPR_STATE_ENV);
    fake_vfio_set_fdinfo_syspath(true);
    r = restore(bad, &ctx, &err);
    assert_refused(r, err, "device '" BDF_A "'", "'" BDF_B "'");
    assert_untouched(&old, 0);
    g_clear_error(&err);
    assert_restores(blob, &old, TYPE1_ONE);
    vmm_drop(&old);
    close(old.ram);
}

/* A state before 1.5 has no identities: only fdinfo can check it. */
static void test_old_state_no_identity(void)
{
    g_autoptr(GBytes) blob = NULL, bad = NULL, old_ok = NULL;
    g_autoptr(GError) err = NULL;
    vfiocpr *ctx = NULL;
    vmm old = { 0 };
    int r;

    setup();

    exec_state(&old, TYPE1_ONE, &blob);
    bad = forge(blob, "vfio-device:" BDF_A, 0, "vfio-device:" BDF_B, 0, SWAP_FD,
                "vfio-device-identity");
    r = restore(bad, &ctx, &err);
    g_assert_cmpint(r, ==, 0); /* nothing recorded to compare with, no fdinfo */
    g_clear_pointer(&ctx, vfiocpr_unref);
    g_unsetenv(VFIOCPR_STATE_ENV);
    fake_vfio_set_fdinfo_syspath(true);
    r = restore(bad, &ctx, &err);
    assert_refused(r, err, "device '" BDF_A "'", "'" BDF_B "'");
    g_assert_nonnull(strstr(err->message, "vfio-device-syspath"));
    assert_untouched(&old, 0);
    g_clear_error(&err);
    /* the unswapped old state restores, and the next state carries identities again */
    fake_vfio_set_fdinfo_syspath(false);
    old_ok = forge(blob, "guest-ram", 0, "guest-ram", 0, SWAP_FD, "vfio-device-identity");
    {
        g_autoptr(GVariant) payload = NULL;
        g_autoptr(GBytes) next = NULL;
        vmm m = { 0 };
        int sfd;
        g_assert_cmpint(restore(old_ok, &m.ctx, &err), ==, 0);
        unsigned paths;
        g_assert_cmpint(vfiocpr_container_open(m.ctx, "c0", &m.c, &err), ==, 0);
        /* nothing proved the device fds' kind (no identity, no fdinfo): each claim
         * reads the link name, as before the device checks */
        paths = fake_kernel_calls(FK_FD_PATH);
        g_assert_cmpint(vfiocpr_device_attach(m.c, BDF_A, &m.a, &err), ==, 0);
        g_assert_cmpint(vfiocpr_device_attach(m.c, BDF_B, &m.b, &err), ==, 0);
        g_assert_cmpuint(fake_kernel_calls(FK_FD_PATH) - paths, ==, 2);
        g_assert_cmpint(vfiocpr_fd_find(m.ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, &err), ==,
                        old.ram);
        g_assert_cmpint(vfiocpr_dma_map(m.c, 0x100000, 0x100000, (void *)0x7f0000000000ull,
                                        old.ram, 0, 3, &err), ==, 0);
        g_assert_cmpint(vfiocpr_finish(m.ctx, NULL, &err), ==, 0);
        g_assert_no_error(err);
        sfd = fake_kernel_exec_ok(m.ctx, G_MAXUINT64);
        next = state_of(sfd);
        close(sfd);
        g_unsetenv(VFIOCPR_STATE_ENV);
        g_assert_cmpint(vfiocpr_state_decode(next, &payload, NULL, NULL, &err), ==, 0);
        g_assert_true(g_variant_lookup_value(payload, "vfio-device-identity", NULL) != NULL);
        vmm_drop(&m);
    }
    vmm_drop(&old);
    close(old.ram);
}

/* ------------------------------------------------------------ groups */

/* Group fds are /dev/vfio/N character devices with their own rdev: fstat tells a
 * swap of the numbers; a record that carries the other group's identity too is
 * caught by the fd's path. */
static void test_groups_swapped(gconstpointer data)
{
    swap_mode mode = GPOINTER_TO_INT(data);
    g_autoptr(GBytes) blob = NULL, bad = NULL;
    g_autoptr(GError) err = NULL;
    vfiocpr *ctx = NULL;
    vmm old = { 0 };
    int r;

    setup();

    exec_state(&old, TYPE1_ONE, &blob);
    bad = forge(blob, "vfio-group", 12, "vfio-group", 13, mode, NULL);
    r = restore(bad, &ctx, &err);
    g_assert_null(ctx);
    /* whichever group is looked at first, the record and the fd's group are named */
    assert_refused(r, err, "/dev/vfio/1", mode == SWAP_FD ? "'vfio-group'/1" : "not /dev/vfio/1");
    g_assert_true((strstr(err->message, "/12") && strstr(err->message, "/13")) ||
                  (strstr(err->message, "group 12") && strstr(err->message, "/dev/vfio/13")) ||
                  (strstr(err->message, "group 13") && strstr(err->message, "/dev/vfio/12")));
    assert_untouched(&old, 0);
    g_clear_error(&err);
    assert_restores(blob, &old, TYPE1_ONE);
    vmm_drop(&old);
    close(old.ram);
}

/* ------------------------------------------------------------ cdevs */

/* A vfio cdev is a character device of its own (rdev): fstat refuses swapped
 * numbers, naming the cdev the fd really is. */
static void test_cdevs_swapped(void)
{
    g_autoptr(GBytes) blob = NULL, bad = NULL;
    g_autoptr(GError) err = NULL;
    vfiocpr *ctx = NULL;
    vmm old = { 0 };
    int r;

    setup();

    exec_state(&old, IOMMUFD_ONE, &blob);
    bad = forge(blob, "vfio-device:" BDF_A, 0, "vfio-device:" BDF_B, 0, SWAP_FD, NULL);
    r = restore(bad, &ctx, &err);
    g_assert_null(ctx);
    /* whichever record is looked at first: it, and the other device's cdev */
    assert_refused(r, err, "'vfio-device:0000:00:0", "/dev/vfio/devices/vfio1");
    g_assert_true((strstr(err->message, BDF_A) && strstr(err->message, "vfio13")) ||
                  (strstr(err->message, BDF_B) && strstr(err->message, "vfio12")));
    assert_untouched(&old, 0);
    g_clear_error(&err);
    assert_restores(blob, &old, IOMMUFD_ONE);
    vmm_drop(&old);
    close(old.ram);
}

/* ------------------------------------------------------------ containers */

/* Every /dev/vfio/vfio fd is one inode and no ioctl names a container's groups:
 * the restore cannot tell swapped containers apart. What does catch it where the
 * ranges differ is the kernel itself: a re-map (MAP_DMA|VADDR) needs a mapping of
 * exactly that iova and size in the container, and the other one has none. */
static void test_containers_swapped(void)
{
    g_autoptr(GBytes) blob = NULL, bad = NULL;
    g_autoptr(GError) err = NULL;
    vmm old = { 0 }, m = { 0 };
    int r;

    setup();

    exec_state(&old, TYPE1_TWO, &blob);
    /* On a real kernel both fds are the one /dev/vfio/vfio inode; the fake numbers its
     * objects' inodes (golden states depend on it), so the identities travel with the
     * fds here, which is what a real swap looks like. */
    bad = forge(blob, "vfio-container:c0", 0, "vfio-container:c1", 0, SWAP_ALL, NULL);
    g_assert_cmpint(restore(bad, &m.ctx, &err), ==, 0); /* the documented limit */
    g_assert_cmpint(vfiocpr_container_open(m.ctx, "c0", &m.c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_fd(m.c), ==, vfiocpr_container_fd(old.c2));
    r = vfiocpr_dma_map(m.c, 0x100000, 0x100000, (void *)0x7f0000000000ull, old.ram, 0, 3, &err);
    /* a real kernel says ENOENT (no mapping there), the fake EINVAL */
    g_assert_true(r == -ENOENT || r == -EINVAL);
    g_test_message("re-map refused: %s", err->message);
    g_assert_nonnull(strstr(err->message, "container 'c0'"));
    g_assert_nonnull(strstr(err->message, "VFIO_IOMMU_MAP_DMA(VADDR)"));
    g_assert_cmpint(vfiocpr_finish(m.ctx, NULL, NULL), <, 0); /* still unmapped */
    g_clear_error(&err);
    vmm_drop(&m);
    assert_untouched(&old, 0);
    vmm_drop(&old);
    close(old.ram);
}

/* ------------------------------------------------------------ transfer */

/* The fds of a transfer state's records, in record order: the old VMM's own. */
static GArray *transfer_fds(vfiocpr *ctx, GBytes *blob)
{
    g_autoptr(GVariant) payload = NULL, vfds = NULL, vnames = NULL;
    g_autofree const char **names = NULL;
    GArray *fds = g_array_new(FALSE, FALSE, sizeof(int));
    const wire_fd *w;
    gsize n;

    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, NULL, NULL, NULL), ==, 0);
    vnames = g_variant_lookup_value(payload, "fd-names", G_VARIANT_TYPE_STRING_ARRAY);
    vfds = g_variant_lookup_value(payload, "fds", G_VARIANT_TYPE("a(uutiuttt)"));
    names = g_variant_get_strv(vnames, NULL);
    w = g_variant_get_fixed_array(vfds, &n, sizeof(wire_fd));
    for (gsize i = 0; i < n; i++) {
        int fd = vfiocpr_fd_find(ctx, names[w[i].name], w[i].id, w[i].kind, NULL);
        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(w[i].fd, ==, (gint32)i);
        g_array_append_val(fds, fd);
    }
    return fds;
}

/* Offers blob with fds over a socket as an old process would; returns what
 * vfiocpr_new_incoming() returned and, refused, the REFUSE text the old side got. */
static int offer(GBytes *blob, GArray *fds, vfiocpr **out, char **refusal, int sv[2],
                 GError **error)
{
    int sfd = tu_state_memfd(blob, true), r;

    *refusal = NULL;
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    g_assert_cmpint(peer_send_offer(sv[0], sfd, (const int *)(void *)fds->data, fds->len), ==, 0);
    close(sfd);
    r = vfiocpr_new_incoming(sv[1], 2000, 0, out, error);
    if (r < 0) {
        guint8 buf[8193];
        int got[8];
        guint type = 0;
        guint32 len;
        unsigned n;
        while (peer_recv(sv[0], &type, buf, &len, got, &n, 1000) == 0)
            if (type == VFIOCPR_XFER_REFUSE) {
                *refusal = g_strdup((char *)buf);
                break;
            }
    }
    return r; /* the caller closes the sockets, after dropping a restored *out */
}

/* A transfer's new process is sent device records with swapped fds: it refuses,
 * the old process hears why (both devices named) and keeps everything; sent the
 * honest state, the new side gets each device's own file. */
static void test_transfer_swapped(void)
{
    g_autoptr(GBytes) blob = NULL, bad = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GArray) fds = NULL;
    g_autofree char *refusal = NULL;
    vfiocpr *ctx = NULL;
    vmm old = { 0 };
    unsigned open_before;
    int r, sv[2];

    setup();
    cold_start(&old, TYPE1_ONE);
    blob = fake_kernel_capture_transfer(old.ctx); /* refused by the capture: rolled back */
    fds = transfer_fds(old.ctx, blob);
    open_before = tu_count_open_fds();
    bad = forge(blob, "vfio-device:" BDF_A, 0, "vfio-device:" BDF_B, 0, SWAP_FD, NULL);
    r = offer(bad, fds, &ctx, &refusal, sv, &err);
    close(sv[0]);
    close(sv[1]);
    assert_refused(r, err, "device '" BDF_A "'", "'" BDF_B "'");
    g_assert_nonnull(refusal);
    g_test_message("the old side was told: %s", refusal);
    g_assert_nonnull(strstr(refusal, BDF_A));
    g_assert_nonnull(strstr(refusal, BDF_B));
    g_clear_error(&err);
    /* the new side closed what it received (copies); the old one lost nothing */
    g_assert_cmpuint(tu_count_open_fds(), ==, open_before);
    assert_untouched(&old, 0);
    g_clear_pointer(&refusal, g_free);
    r = offer(blob, fds, &ctx, &refusal, sv, &err);
    g_assert_cmpint(r, ==, 0);
    g_assert_no_error(err);
    {
        /* each received device fd is a dup of the old side's own: the same file */
        const char *rec[] = { "vfio-device:" BDF_A, "vfio-device:" BDF_B };
        int mine[] = { old.fd_a, old.fd_b };
        for (int i = 0; i < 2; i++) {
            struct stat a, b;
            int fd = vfiocpr_fd_find(ctx, rec[i], 0, VFIOCPR_FD_VFIO_DEVICE, &err);
            g_assert_cmpint(fd, >=, 0);
            g_assert_cmpint(fstat(fd, &a), ==, 0);
            g_assert_cmpint(fstat(mine[i], &b), ==, 0);
            g_assert_cmpuint(a.st_ino, ==, b.st_ino);
        }
    }
    g_clear_pointer(&ctx, vfiocpr_unref); /* refuses: the old side keeps everything */
    close(sv[0]);
    close(sv[1]);
    vmm_drop(&old);
    close(old.ram);
}

/* ------------------------------------------------------------ the identity section */

/* The state with section key set to value (NULL: removed); checksums recomputed. */
static GBytes *with_section(GBytes *blob, const char *key, GVariant *value)
{
    g_autoptr(GVariant) payload = NULL;
    g_autoptr(GError) err = NULL;
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);

    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, NULL, NULL, &err), ==, 0);
    g_variant_dict_init(&d, payload);
    if (value)
        g_variant_dict_insert_value(&d, key, value);
    else
        g_variant_dict_remove(&d, key);
    return vfiocpr_state_encode(g_variant_dict_end(&d));
}

/* One identity record for device A as the fake's edu answers, with sizes. */
static GVariant *id_record(const char *name, const guint64 *sizes, gsize n)
{
    return g_variant_new("(suuuuuu@at)", name, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
                         VFIO_PCI_NUM_REGIONS, VFIO_PCI_NUM_IRQS, 0x11e81234u, 0x11001af4u,
                         0x00ff0010u,
                         g_variant_new_fixed_array(G_VARIANT_TYPE_UINT64, sizes, n,
                                                   sizeof(guint64)));
}

static GVariant *id_section(GVariant *a, GVariant *b)
{
    GVariant *both[] = { a, b };
    return g_variant_new_array(G_VARIANT_TYPE("(suuuuuuat)"), both, b ? 2 : 1);
}

/* Region sizes this writer does not record are compared when a state has them (one
 * ioctl each); a malformed section is refused before any fd is looked at. */
static void test_identity_section(void)
{
    static const guint64 bar0_ok[] = { 0x1000 }, bar0_bad[] = { 0x2000 };
    static const guint64 seven[7] = { 0 };
    g_autoptr(GBytes) blob = NULL;
    g_autoptr(GError) err = NULL;
    vmm old = { 0 };
    struct {
        GVariant *section;
        int want;
        const char *msg;
    } cases[] = {
        { id_section(id_record(BDF_A, bar0_ok, 1), NULL), 0, NULL },
        { id_section(id_record(BDF_A, bar0_bad, 1), NULL), -EBADFD, "sizes 0x2000" },
        { id_section(id_record(BDF_A, seven, 7), NULL), -EBADMSG, "7 region sizes" },
        { id_section(id_record("0000:00:09.0", NULL, 0), NULL), -EBADMSG, "no such" },
        { id_section(id_record(BDF_A, NULL, 0), id_record(BDF_A, NULL, 0)), -EBADMSG,
          "recorded twice" },
        { g_variant_new_strv(NULL, 0), -EBADMSG, "is of type as" },
    };

    setup();
    exec_state(&old, TYPE1_ONE, &blob);
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GBytes) forged = with_section(blob, "vfio-device-identity", cases[i].section);
        vfiocpr *ctx = NULL;
        unsigned regions = fake_vfio_ioctls(VFIO_DEVICE_GET_REGION_INFO);
        int r = restore(forged, &ctx, &err);

        g_test_message("case %zu: %d %s", i, r, err ? err->message : "restored");
        g_assert_cmpint(r, ==, cases[i].want);
        if (cases[i].msg)
            g_assert_nonnull(strstr(err->message, cases[i].msg));
        if (i < 2) /* the config region, and BAR0 as recorded */
            g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_GET_REGION_INFO), ==, regions + 2);
        g_clear_error(&err);
        g_clear_pointer(&ctx, vfiocpr_unref);
        g_unsetenv(VFIOCPR_STATE_ENV);
        assert_untouched(&old, 0);
    }
    vmm_drop(&old);
    close(old.ram);
}

/* ------------------------------------------------------------ golden blob v1.5 */

/* The fake kernel as golden_v13_cold_start() left it, and the state a 1.5 writer
 * made of it (tests/data/state-v1.5.bin): the 1.3 VMM, an exec state, with the
 * identity of both devices (the fake's default PCI ids). */
static GBytes *golden_v15_setup(void)
{
    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
    vfiocpr_unref(golden_v13_cold_start());
    {
        /* the type1 container's vaddrs invalidated as the writer's exec did */
        struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un),
                                                 .flags = VFIO_DMA_UNMAP_FLAG_VADDR |
                                                          VFIO_DMA_UNMAP_FLAG_ALL };
        g_assert_cmpint(vfiocpr_kernel->ioctl(950, VFIO_IOMMU_UNMAP_DMA, &un), ==, 0);
    }
    fake_vfio_new_process(G_MAXUINT64);
    return tu_read_file("state-v1.5.bin");
}

static void test_golden_v15(void)
{
    g_autoptr(GBytes) blob = golden_v15_setup();
    g_autoptr(GVariant) payload = NULL, ids = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL, i = NULL;
    g_autoptr(vfiocpr_device) dev = NULL, di = NULL;
    guint16 major, minor;
    GVariantIter it;
    const char *name;
    guint32 ids_w, n = 0;

    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, &major, &minor, &err), ==, 0);
    g_assert_cmpuint(major, ==, 1);
    g_assert_cmpuint(minor, ==, 5);
    ids = g_variant_lookup_value(payload, "vfio-device-identity", G_VARIANT_TYPE("a(suuuuuuat)"));
    g_assert_nonnull(ids);
    g_variant_iter_init(&it, ids);
    while (g_variant_iter_next(&it, "(&suuuuuu@at)", &name, NULL, NULL, NULL, &ids_w, NULL, NULL,
                               NULL)) {
        g_assert_true(strcmp(name, "0000:00:03.0") == 0 || strcmp(name, "0000:00:04.0") == 0);
        g_assert_cmphex(ids_w, ==, 0x11e81234); /* edu, the fake's default */
        n++;
    }
    g_assert_cmpuint(n, ==, 2);
    g_assert_cmpint(restore(blob, &ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(c, "0000:00:03.0", &dev, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "i0", VFIOCPR_BACKEND_AUTO, &i, &err), ==,
                    0);
    g_assert_cmpint(vfiocpr_device_attach(i, "0000:00:04.0", &di, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_device_fd(dev), ==, 952);
    g_assert_cmpint(vfiocpr_device_fd(di), ==, 954);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x100000, 0x200000, (void *)0x7e0000000000ull,
                                    GOLDEN_V11_RAM_FD, 0, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x40000000, 0x600000, (void *)0x7e0000200000ull,
                                    GOLDEN_V11_RAM_FD, 0x200000, 1, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(i, 0x100000, 0x100000, (void *)0x7e0000800000ull,
                                    GOLDEN_V11_RAM_FD, 0x0, 3, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), >=, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_RESET), ==, 0);
}

/* The golden's recorded identities are really compared: the same state where the
 * device behind the cdev now answers with other ids is refused, naming it. */
static void test_golden_v15_other_device(void)
{
    g_autoptr(GBytes) blob = golden_v15_setup();
    g_autoptr(GError) err = NULL;
    vfiocpr *ctx = NULL;
    int r;

    fake_vfio_set_model(13, &fake_pci_e1000e);
    r = restore(blob, &ctx, &err);
    g_assert_null(ctx);
    assert_refused(r, err, "device '0000:00:04.0'", "8086:10d3");
    g_assert_cmpint(fcntl(954, F_GETFD), >=, 0);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
/* each test starts from a fresh fake kernel */
#define ADD(path, fn) g_test_add_func(path, fn)
#define ADDD(path, data, fn) g_test_add_data_func(path, GINT_TO_POINTER(data), fn)
    ADDD("/harden/type1/devices-swapped/identity", 0, test_devices_swapped);
    ADDD("/harden/type1/devices-swapped/fdinfo", 1, test_devices_swapped);
    ADDD("/harden/iommufd/devices-swapped/identity", 2, test_devices_swapped);
    ADDD("/harden/iommufd/devices-swapped/fdinfo", 3, test_devices_swapped);
    ADD("/harden/type1/identical-devices", test_identical_devices);
    ADD("/harden/type1/old-state-no-identity", test_old_state_no_identity);
    ADDD("/harden/type1/groups-swapped/fd", SWAP_FD, test_groups_swapped);
    ADDD("/harden/type1/groups-swapped/record", SWAP_ALL, test_groups_swapped);
    ADD("/harden/iommufd/cdevs-swapped", test_cdevs_swapped);
    ADD("/harden/type1/containers-swapped", test_containers_swapped);
    ADD("/harden/identity-section", test_identity_section);
    ADD("/harden/type1/transfer-devices-swapped", test_transfer_swapped);
    ADD("/harden/golden-v1.5", test_golden_v15);
    ADD("/harden/golden-v1.5/other-device", test_golden_v15_other_device);
    return g_test_run();
}
