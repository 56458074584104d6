/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: state format (encode/decode, golden blob, corruption) and every kind
 * of bad incoming state handed to vfiocpr_new(). */
#include "config.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <stdlib.h>
#include <sys/timerfd.h>

#include "fake-kernel.h"
#include "golden-v1.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static void set_state_env(int fd)
{
    g_autofree char *v = g_strdup_printf("%d", fd);
    g_setenv(VFIOCPR_STATE_ENV, v, TRUE);
}

/* vfiocpr_new() must refuse: error with code == -ret, a message naming what was
 * wrong, no context, environment left alone, and no fd opened or closed. */
static void assert_new_refuses(int expect_errno, const char *expect_in_msg)
{
    g_autofree char *env_before = g_strdup(g_getenv(VFIOCPR_STATE_ENV));
    unsigned fds_before = tu_count_open_fds();
    g_autoptr(GError) err = NULL;
    vfiocpr *ctx = NULL;
    int r = vfiocpr_new(0, &ctx, &err);

    g_assert_cmpint(r, ==, -expect_errno);
    g_assert_null(ctx);
    g_assert_error(err, VFIOCPR_ERROR, expect_errno);
    if (expect_in_msg && !strstr(err->message, expect_in_msg))
        g_error("message '%s' lacks '%s'", err->message, expect_in_msg);
    g_assert_cmpstr(g_getenv(VFIOCPR_STATE_ENV), ==, env_before);
    g_assert_cmpuint(tu_count_open_fds(), ==, fds_before);
}

static GBytes *patch(GBytes *blob, gsize off, guint8 xor_mask)
{
    gsize len = g_bytes_get_size(blob);
    guint8 *p = g_memdup2(g_bytes_get_data(blob, NULL), len);
    p[off] ^= xor_mask;
    return g_bytes_new_take(p, len);
}

/* Re-computes the header checksum after a deliberate edit of header fields. */
static GBytes *reheader(GBytes *blob, guint16 major, guint16 minor)
{
    gsize len = g_bytes_get_size(blob);
    guint8 *p = g_memdup2(g_bytes_get_data(blob, NULL), len);
    guint32 crc;
    major = GUINT16_TO_LE(major);
    minor = GUINT16_TO_LE(minor);
    memcpy(p + 8, &major, 2);
    memcpy(p + 10, &minor, 2);
    crc = GUINT32_TO_LE(vfiocpr_crc32c(0, p, 28));
    memcpy(p + 28, &crc, 4);
    return g_bytes_new_take(p, len);
}

static void setup(void)
{
    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
}

/* ------------------------------------------------------------ checksum & format */

static void test_crc32c(void)
{
    /* RFC 3720 B.4 check values, plus the classic "123456789". */
    guint8 zeros[32] = { 0 }, ones[32];
    memset(ones, 0xff, sizeof(ones));
    g_assert_cmphex(vfiocpr_crc32c(0, "123456789", 9), ==, 0xE3069283);
    g_assert_cmphex(vfiocpr_crc32c(0, zeros, 32), ==, 0x8A9136AA);
    g_assert_cmphex(vfiocpr_crc32c(0, ones, 32), ==, 0x62A8AB43);
    /* incremental == one shot */
    g_assert_cmphex(vfiocpr_crc32c(vfiocpr_crc32c(0, "12345", 5), "6789", 4), ==, 0xE3069283);
    g_assert_cmphex(vfiocpr_crc32c_sw(0, "123456789", 9), ==, 0xE3069283);
    /* the hardware path (where the CPU has one) agrees with the table at every length
     * and alignment */
    {
        g_autoptr(GRand) rnd = g_rand_new_with_seed(7);
        guint8 buf[1100];
        for (gsize i = 0; i < sizeof(buf); i++)
            buf[i] = (guint8)g_rand_int(rnd);
        for (gsize off = 0; off < 8; off++)
            for (gsize len = 0; len + off <= sizeof(buf); len += 1 + len / 16)
                g_assert_cmphex(vfiocpr_crc32c(len, buf + off, len), ==,
                                vfiocpr_crc32c_sw(len, buf + off, len));
    }
}

static void test_roundtrip(void)
{
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
    g_autoptr(GBytes) blob = NULL;
    g_autoptr(GVariant) out = NULL;
    g_autoptr(GError) err = NULL;
    guint16 major = 0, minor = 0;
    const char *s = NULL;

    g_variant_dict_insert(&d, "writer", "s", "roundtrip");
    blob = vfiocpr_state_encode(g_variant_dict_end(&d));
    g_assert_cmpint(vfiocpr_state_decode(blob, &out, &major, &minor, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(major, ==, VFIOCPR_STATE_FORMAT_MAJOR);
    g_assert_cmpuint(minor, ==, VFIOCPR_STATE_FORMAT_MINOR);
    g_assert_true(g_variant_lookup(out, "writer", "&s", &s));
    g_assert_cmpstr(s, ==, "roundtrip");
}

static void test_memfd_sealed(void)
{
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
    g_autoptr(GBytes) blob = NULL, back = NULL;
    g_autoptr(GError) err = NULL;
    int fd = -1;

    blob = vfiocpr_state_encode(g_variant_dict_end(&d));
    g_assert_cmpint(vfiocpr_state_write_memfd(blob, &fd, &err), ==, 0);
    g_assert_cmphex(fcntl(fd, F_GET_SEALS), ==,
                    F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    g_assert_cmpint(tu_cloexec(fd), ==, 1);
    g_assert_cmpint(write(fd, "x", 1), ==, -1); /* sealed against writes */
    g_assert_cmpint(errno, ==, EPERM);
    g_assert_cmpint(vfiocpr_state_read_fd(fd, &back, &err), ==, 0);
    g_assert_true(g_bytes_equal(blob, back));
    close(fd);
}

static void test_memfd_write_faults(void)
{
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
    g_autoptr(GBytes) blob = vfiocpr_state_encode(g_variant_dict_end(&d));
    const fk_op ops[] = { FK_MEMFD_CREATE, FK_PWRITE, FK_ADD_SEALS };

    for (gsize i = 0; i < G_N_ELEMENTS(ops); i++) {
        g_autoptr(GError) err = NULL;
        unsigned before = tu_count_open_fds();
        int fd = -1;
        fake_kernel_reset();
        fake_kernel_fail(ops[i], 1, EIO);
        g_assert_cmpint(vfiocpr_state_write_memfd(blob, &fd, &err), ==, -EIO);
        g_assert_error(err, VFIOCPR_ERROR, EIO);
        g_assert_nonnull(strstr(err->message, "state memfd"));
        g_assert_cmpuint(tu_count_open_fds(), ==, before); /* no memfd leaked */
    }
}

/* ------------------------------------------------------------ golden blob v1 */

static void test_golden_v1_decode(void)
{
    const golden_fd fds[] = GOLDEN_V1_FDS;
    g_autoptr(GBytes) blob = tu_read_file("state-v1.bin");
    g_autoptr(GVariant) payload = NULL;
    g_autoptr(GError) err = NULL;
    guint16 major, minor;
    const char *writer = NULL;
    vfiocpr_fdreg *reg = vfiocpr_fdreg_new();

    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, &major, &minor, &err), ==, 0);
    g_assert_cmpuint(major, ==, 1);
    g_assert_cmpuint(minor, ==, 0);
    g_assert_true(g_variant_lookup(payload, "writer", "&s", &writer));
    g_assert_true(g_str_has_prefix(writer, "libvfiocpr "));
    g_assert_cmpint(vfiocpr_fdreg_deserialize(reg, payload, &err), ==, 0);
    g_assert_cmpuint(vfiocpr_fdreg_count(reg), ==, G_N_ELEMENTS(fds));
    vfiocpr_fdreg_free(reg);
}

/* The full restore of a v1 blob through the public API, as a VMM would do it. */
static void test_golden_v1_restore(void)
{
    const golden_fd fds[] = GOLDEN_V1_FDS;
    g_autoptr(GBytes) blob = tu_read_file("state-v1.bin");
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) unclaimed = NULL;
    g_autofree char *dump = NULL;
    int sfd = tu_state_memfd(blob, true);

    golden_v1_pretend();
    set_state_env(sfd);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_true(vfiocpr_is_restart(ctx));
    g_assert_null(g_getenv(VFIOCPR_STATE_ENV)); /* consumed */
    g_assert_cmpint(fcntl(sfd, F_GETFD), ==, -1); /* state memfd closed */
    g_assert_cmpuint(vfiocpr_fd_count(ctx), ==, G_N_ELEMENTS(fds));
    dump = vfiocpr_dump(ctx);
    g_assert_nonnull(strstr(dump, "format 1.0"));
    g_assert_nonnull(strstr(dump, "vfio-group"));
    for (gsize i = 0; i < G_N_ELEMENTS(fds); i++) {
        g_assert_cmpint(fake_kernel_pretend_cloexec(fds[i].fd), ==, 1); /* set again */
        g_assert_cmpint(vfiocpr_fd_find(ctx, fds[i].name, fds[i].id, fds[i].kind, &err), ==,
                        fds[i].fd);
        g_assert_no_error(err);
    }
    g_assert_cmpint(vfiocpr_finish(ctx, &unclaimed, &err), ==, 0);
    g_assert_cmpuint(g_strv_length(unclaimed), ==, 0);
    g_assert_false(vfiocpr_is_restart(ctx));
}

/* A single changed byte anywhere in the blob is refused, through the whole path. */
static void test_golden_every_byte_flip(gconstpointer file)
{
    g_autoptr(GBytes) blob = tu_read_file(file);
    gsize len = g_bytes_get_size(blob);

    setup();
    golden_v1_pretend();
    for (gsize off = 0; off < len; off++) {
        for (guint8 mask = 0x01; mask; mask = mask == 0x01 ? 0xff : 0) {
            g_autoptr(GBytes) bad = patch(blob, off, mask);
            int sfd = tu_state_memfd(bad, true);
            set_state_env(sfd);
            assert_new_refuses(EBADMSG, "state");
            g_assert_cmpint(fcntl(sfd, F_GETFD), >=, 0); /* not closed */
            close(sfd);
        }
    }
}

/* ------------------------------------------------------------ golden blob v1.1 */

static void test_golden_v11_decode(void)
{
    g_autoptr(GBytes) blob = tu_read_file("state-v1.1.bin");
    g_autoptr(GVariant) payload = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree const char **req = NULL;
    guint16 major, minor;

    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, &major, &minor, &err), ==, 0);
    g_assert_cmpuint(major, ==, 1);
    g_assert_cmpuint(minor, ==, 1);
    g_assert_true(g_variant_lookup(payload, "required-features", "^a&s", &req));
    g_assert_cmpuint(g_strv_length((char **)req), ==, 1);
    g_assert_cmpstr(req[0], ==, "vfio-type1");
}

/* The full restore of a 1.1 blob: the same kernel objects are recreated the way the
 * writer made them, their vaddrs invalidated as its exec did, and the VMM's start-up
 * re-points both preserved ranges without a reset-class ioctl. */
static void test_golden_v11_restore(void)
{
    g_autoptr(GBytes) blob = tu_read_file("state-v1.1.bin");
    struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un),
                                             .flags = VFIO_DMA_UNMAP_FLAG_VADDR |
                                                      VFIO_DMA_UNMAP_FLAG_ALL };
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL;
    g_autoptr(vfiocpr_device) dev = NULL;
    g_autoptr(GError) err = NULL;
    guint64 vaddr = 0;
    int sfd;

    vfiocpr_unref(golden_v11_cold_start());
    g_assert_cmpint(seam_unrecorded()->ioctl(950, VFIO_IOMMU_UNMAP_DMA, &un), ==, 0);
    sfd = tu_state_memfd(blob, true);
    set_state_env(sfd);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_fd_find(ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, &err), ==,
                    GOLDEN_V11_RAM_FD);
    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_fd(c), ==, 950);
    g_assert_cmpint(vfiocpr_container_add_group(c, 12, &err), ==, 951);
    g_assert_cmpint(vfiocpr_device_open(c, 12, "0000:00:03.0", &dev, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_fd(dev), ==, 952);
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, -ESTALE);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x100000, 0x200000, (void *)0x7e0000000000ull,
                                    GOLDEN_V11_RAM_FD, 0, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x40000000, 0x600000, (void *)0x7e0000200000ull,
                                    GOLDEN_V11_RAM_FD, 0x200000, 1, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, 0);
    g_assert_cmpint(fake_vfio_dma(950, 0x40000000, NULL, &vaddr), ==, 1);
    g_assert_cmphex(vaddr, ==, 0x7e0000200000ull);
    /* only the writer's cold start attached and opened anything */
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_SET_CONTAINER), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_GET_DEVICE_FD), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_RESET), ==, 0);
}

static void test_golden_v1_every_truncation(void)
{
    g_autoptr(GBytes) blob = tu_read_file("state-v1.bin");
    gsize len = g_bytes_get_size(blob);

    for (gsize n = 0; n < len; n++) {
        g_autoptr(GBytes) cut = g_bytes_new_from_bytes(blob, 0, n);
        g_autoptr(GVariant) payload = NULL;
        g_autoptr(GError) err = NULL;
        g_assert_cmpint(vfiocpr_state_decode(cut, &payload, NULL, NULL, &err), ==, -EBADMSG);
        g_assert_null(payload);
    }
    /* through vfiocpr_new: a truncated memfd is reported as such */
    {
        g_autoptr(GBytes) cut = g_bytes_new_from_bytes(blob, 0, len - 7);
        int sfd = tu_state_memfd(cut, true);
        set_state_env(sfd);
        assert_new_refuses(EBADMSG, "truncated or padded");
        close(sfd);
    }
}

/* ------------------------------------------------------------ golden blob v1.2 */

static vfiocpr_msi_route seen_routes[8];
static unsigned seen_n;

static int keep_routes(void *user, const vfiocpr_msi_route *routes, unsigned n, GError **error)
{
    seen_n = MIN(n, G_N_ELEMENTS(seen_routes));
    memcpy(seen_routes, routes, seen_n * sizeof(*routes));
    return 0;
}

/* Interrupts from a 1.2 blob: the VMM's own eventfds come back without SET_IRQS and
 * KVM routes are rebuilt from the MSI messages the blob holds. */
static void test_golden_v12_restore(void)
{
    g_autoptr(GBytes) blob = tu_read_file("state-v1.2.bin");
    struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un),
                                             .flags = VFIO_DMA_UNMAP_FLAG_VADDR |
                                                      VFIO_DMA_UNMAP_FLAG_ALL };
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL;
    g_autoptr(vfiocpr_device) dev = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) payload = NULL;
    guint16 minor = 0;
    int fds[3], kvm, vm;

    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, NULL, &minor, &err), ==, 0);
    g_assert_cmpuint(minor, ==, 2);
    fake_kvm_enable();
    vfiocpr_unref(golden_v12_cold_start());
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_SET_IRQS), ==, 1);
    g_assert_cmpint(seam_unrecorded()->ioctl(950, VFIO_IOMMU_UNMAP_DMA, &un), ==, 0);
    set_state_env(tu_state_memfd(blob, true));
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_fd_find(ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, &err), ==,
                    GOLDEN_V11_RAM_FD);
    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_add_group(c, 12, &err), ==, 951);
    g_assert_cmpint(vfiocpr_device_open(c, 12, "0000:00:03.0", &dev, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_enable(dev, VFIOCPR_IRQ_MSIX, 0, 3, NULL, fds, &err), ==, 0);
    for (int i = 0; i < 3; i++)
        g_assert_cmpint(fds[i], ==, GOLDEN_V12_EFD0 + i);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_SET_IRQS), ==, 1); /* none in the new image */
    kvm = seam_unrecorded()->open("/dev/kvm", O_RDWR);
    vm = seam_unrecorded()->ioctl(kvm, KVM_CREATE_VM, NULL);
    g_assert_cmpint(vfiocpr_kvm_attach(ctx, vm, 64, keep_routes, NULL, &err), ==, 0);
    g_assert_cmpuint(seen_n, ==, 2); /* vector 2 was masked */
    g_assert_cmphex(seen_routes[0].address, ==, 0xfee01000);
    g_assert_cmphex(seen_routes[1].data, ==, 0x4041);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x100000, 0x200000, (void *)0x7e0000000000ull,
                                    GOLDEN_V11_RAM_FD, 0, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x40000000, 0x600000, (void *)0x7e0000200000ull,
                                    GOLDEN_V11_RAM_FD, 0x200000, 1, &err), ==, 0);
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, 0);
    g_assert_no_error(err);
}

/* ------------------------------------------------------------ versioning */

static GBytes *payload_blob(const char *extra_key, GVariant *extra_value)
{
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
    g_variant_dict_insert(&d, "writer", "s", "test");
    g_variant_dict_insert_value(&d, "fd-names", g_variant_new_strv(NULL, 0));
    g_variant_dict_insert_value(&d, "fds", g_variant_new_array(G_VARIANT_TYPE("(uutiuttt)"),
                                                               NULL, 0));
    if (extra_key)
        g_variant_dict_insert_value(&d, extra_key, extra_value);
    return vfiocpr_state_encode(g_variant_dict_end(&d));
}

static void test_newer_minor_accepted(void)
{
    g_autoptr(GBytes) base = payload_blob("some-future-section", g_variant_new_uint32(7));
    g_autoptr(GBytes) blob = reheader(base, 1, 9);
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GError) err = NULL;
    int sfd = tu_state_memfd(blob, true);

    set_state_env(sfd);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_true(vfiocpr_is_restart(ctx));
}

static void test_newer_major_refused(void)
{
    g_autoptr(GBytes) base = payload_blob(NULL, NULL);
    g_autoptr(GBytes) blob = reheader(base, 2, 0);
    int sfd = tu_state_memfd(blob, true);

    set_state_env(sfd);
    assert_new_refuses(EPROTONOSUPPORT, "format 2.0");
    close(sfd);
}

static void test_unknown_required_feature(void)
{
    const char *feat[] = { "teleport", NULL };
    g_autoptr(GBytes) blob = payload_blob("required-features", g_variant_new_strv(feat, -1));
    int sfd = tu_state_memfd(blob, true);

    set_state_env(sfd);
    assert_new_refuses(ENOTSUP, "teleport");
    close(sfd);
}

static void test_wrong_section_type(void)
{
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
    g_autoptr(GBytes) blob = NULL;
    int sfd;

    g_variant_dict_insert(&d, "fd-names", "s", "not an array");
    g_variant_dict_insert_value(&d, "fds", g_variant_new_array(G_VARIANT_TYPE("(uutiuttt)"),
                                                               NULL, 0));
    blob = vfiocpr_state_encode(g_variant_dict_end(&d));
    sfd = tu_state_memfd(blob, true);
    set_state_env(sfd);
    assert_new_refuses(EBADMSG, "fd-names");
    close(sfd);
}

/* A forged payload with valid checksums but GVariant garbage inside. */
static void test_forged_not_normal_form(void)
{
    guint8 raw[VFIOCPR_STATE_HEADER_SIZE + 16];
    g_autoptr(GBytes) blob = NULL;
    g_autoptr(GVariant) payload = NULL;
    g_autoptr(GError) err = NULL;
    guint32 v32;
    guint64 v64;

    memset(raw, 0, sizeof(raw));
    memcpy(raw, VFIOCPR_STATE_MAGIC, 8);
    raw[8] = 1;
    v32 = GUINT32_TO_LE(VFIOCPR_STATE_HEADER_SIZE);
    memcpy(raw + 12, &v32, 4);
    v64 = GUINT64_TO_LE(16);
    memcpy(raw + 16, &v64, 8);
    memset(raw + 32, 0xee, 16);
    v32 = GUINT32_TO_LE(vfiocpr_crc32c(0, raw + 32, 16));
    memcpy(raw + 24, &v32, 4);
    v32 = GUINT32_TO_LE(vfiocpr_crc32c(0, raw, 28));
    memcpy(raw + 28, &v32, 4);
    blob = g_bytes_new(raw, sizeof(raw));
    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, NULL, NULL, &err), ==, -EBADMSG);
    g_assert_nonnull(strstr(err->message, "normal form"));
}

/* Forged records: out-of-range name index, duplicate key, negative fd. */
static void test_forged_records(void)
{
    struct {
        guint32 name, kind;
        guint64 id;
        gint32 fd;
        guint32 mode;
        guint64 dev, ino, rdev;
    } recs[2] = { { 0, VFIOCPR_FD_EVENTFD, 1, 40, 0600, 10, 1039, 0 },
                  { 0, VFIOCPR_FD_EVENTFD, 1, 41, 0600, 10, 1039, 0 } };
    const char *names[] = { "irq", NULL };
    const struct {
        const char *what;
        guint32 name;
        gint32 fd;
        guint64 id2;
    } cases[] = {
        { "bad name index", 5, 41, 2 },
        { "appears twice", 0, 41, 1 },
        { "bad name index", 0, -3, 2 },
    };

    for (gsize c = 0; c < G_N_ELEMENTS(cases); c++) {
        g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
        g_autoptr(GBytes) blob = NULL;
        g_autoptr(GVariant) payload = NULL;
        g_autoptr(GError) err = NULL;
        vfiocpr_fdreg *reg = vfiocpr_fdreg_new();

        recs[1].name = cases[c].name;
        recs[1].fd = cases[c].fd;
        recs[1].id = cases[c].id2;
        g_variant_dict_insert_value(&d, "fd-names", g_variant_new_strv(names, -1));
        g_variant_dict_insert_value(&d, "fds", g_variant_new_fixed_array(
                                                   G_VARIANT_TYPE("(uutiuttt)"), recs, 2,
                                                   sizeof(recs[0])));
        blob = vfiocpr_state_encode(g_variant_dict_end(&d));
        g_assert_cmpint(vfiocpr_state_decode(blob, &payload, NULL, NULL, &err), ==, 0);
        g_assert_cmpint(vfiocpr_fdreg_deserialize(reg, payload, &err), ==, -EBADMSG);
        if (!strstr(err->message, cases[c].what))
            g_error("case %zu: '%s' lacks '%s'", c, err->message, cases[c].what);
        vfiocpr_fdreg_free(reg);
    }
}

/* ------------------------------------------------------------ bad VFIOCPR_STATE_FD */

static void test_env_garbage(void)
{
    const char *values[] = { "abc", "-1", "", "12abc", " 7", "99999999999" };
    for (gsize i = 0; i < G_N_ELEMENTS(values); i++) {
        g_setenv(VFIOCPR_STATE_ENV, values[i], TRUE);
        assert_new_refuses(EINVAL, "not a file descriptor number");
    }
    g_setenv(VFIOCPR_STATE_ENV, "99999", TRUE); /* a number, but nothing open there */
    assert_new_refuses(EBADF, "state fd 99999");
}

static void test_env_not_memfd(void)
{
    int efd = tu_eventfd(0, EFD_CLOEXEC);
    int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

    set_state_env(efd);
    assert_new_refuses(EBADF, "not a memfd");
    set_state_env(nul);
    assert_new_refuses(EBADF, "not a memfd");
    g_assert_cmpint(close(efd), ==, 0);
    g_assert_cmpint(close(nul), ==, 0);
}

static void test_env_unsealed(void)
{
    g_autoptr(GBytes) blob = tu_read_file("state-v1.bin");
    int unsealed = tu_state_memfd(blob, false);
    int partly = tu_state_memfd(blob, false);

    g_assert_cmpint(fcntl(partly, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK), ==, 0);
    set_state_env(unsealed);
    assert_new_refuses(EPERM, "not sealed");
    set_state_env(partly);
    assert_new_refuses(EPERM, "not sealed");
    close(unsealed);
    close(partly);
}

static void test_env_not_state(void)
{
    g_autoptr(GBytes) junk = g_bytes_new_static("this is not a libvfiocpr state at all!", 38);
    int sfd = tu_state_memfd(junk, true);

    set_state_env(sfd);
    assert_new_refuses(EBADMSG, "bad magic");
    close(sfd);
}

/* ------------------------------------------------------------ recorded fds */

/* State recorded from real fds of this process, then the fds are tampered with. */
static GBytes *state_of(int memfd, int efd)
{
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GError) err = NULL;

    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(ctx, "ram", 0, memfd, VFIOCPR_FD_MEMFD, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(ctx, "irq", 3, efd, VFIOCPR_FD_EVENTFD, &err), ==, 0);
    return fake_kernel_capture_state(ctx);
}

static void test_recorded_fd_closed(void)
{
    int memfd = tu_memfd_with("ram", "x", MFD_CLOEXEC);
    int efd = tu_eventfd(0, EFD_CLOEXEC);
    g_autoptr(GBytes) blob = state_of(memfd, efd);
    int sfd = tu_state_memfd(blob, true);

    close(efd);
    set_state_env(sfd);
    assert_new_refuses(EBADF, "'irq'/3");
    g_assert_cmpint(tu_cloexec(memfd), ==, 1); /* untouched */
    close(memfd);
    close(sfd);
}

static void test_recorded_fd_other_file(void)
{
    int memfd = tu_memfd_with("ram", "x", MFD_CLOEXEC);
    int efd = tu_eventfd(0, EFD_CLOEXEC);
    g_autoptr(GBytes) blob = state_of(memfd, efd);
    int sfd = tu_state_memfd(blob, true);
    int other = tu_eventfd(0, EFD_CLOEXEC);

    /* the memfd's number now holds an eventfd: a different kind, a different file */
    g_assert_cmpint(dup3(other, memfd, O_CLOEXEC), ==, memfd);
    set_state_env(sfd);
    assert_new_refuses(EBADFD, "not the recorded memfd");
    close(other);
    close(memfd);
    close(efd);
    close(sfd);
}

/* Anon inodes share one inode: a timerfd in place of an eventfd passes the identity
 * check and must be caught by the kind check when the VMM finds it. */
static void test_recorded_anon_kind_swapped(void)
{
    int memfd = tu_memfd_with("ram", "x", MFD_CLOEXEC);
    int efd = tu_eventfd(0, EFD_CLOEXEC);
    g_autoptr(GBytes) blob = state_of(memfd, efd);
    int sfd = tu_state_memfd(blob, true);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GError) err = NULL;
    vfiocpr_fd_stat a, b;

    g_assert_cmpint(vfiocpr_kernel_real()->fstat(efd, &a, NULL), ==, 0);
    g_assert_cmpint(vfiocpr_kernel_real()->fstat(tfd, &b, NULL), ==, 0);
    if (a.dev != b.dev || a.ino != b.ino) {
        g_test_skip("this kernel gives timerfd its own inode: identity already tells them apart");
        close(tfd);
        close(memfd);
        close(efd);
        close(sfd);
        return;
    }
    g_assert_cmpint(dup3(tfd, efd, O_CLOEXEC), ==, efd);
    set_state_env(sfd);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_find(ctx, "irq", 3, VFIOCPR_FD_EVENTFD, &err), ==, -EBADFD);
    g_assert_error(err, VFIOCPR_ERROR, EBADFD);
    g_assert_nonnull(strstr(err->message, "timerfd"));
    g_assert_cmpint(fcntl(efd, F_GETFD), >=, 0); /* still open */
    close(tfd);
    close(memfd);
    close(efd);
}

/* A forged state that lists its own memfd as an fd to preserve. */
static void test_state_fd_listed_as_preserved(void)
{
    int sfd = memfd_create("forged", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    const char *names[] = { "ram", NULL };
    struct {
        guint32 name, kind;
        guint64 id;
        gint32 fd;
        guint32 mode;
        guint64 dev, ino, rdev;
    } rec = { 0, VFIOCPR_FD_MEMFD, 0, sfd, 0, 0, 0, 0 };
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
    g_autoptr(GBytes) blob = NULL;
    struct stat st;
    gsize len;
    const void *p;

    g_assert_cmpint(fstat(sfd, &st), ==, 0);
    rec.mode = st.st_mode;
    rec.dev = st.st_dev;
    rec.ino = st.st_ino;
    g_variant_dict_insert_value(&d, "fd-names", g_variant_new_strv(names, -1));
    g_variant_dict_insert_value(&d, "fds", g_variant_new_fixed_array(
                                               G_VARIANT_TYPE("(uutiuttt)"), &rec, 1,
                                               sizeof(rec)));
    blob = vfiocpr_state_encode(g_variant_dict_end(&d));
    p = g_bytes_get_data(blob, &len);
    g_assert_cmpint(write(sfd, p, len), ==, (ssize_t)len);
    g_assert_cmpint(fcntl(sfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW |
                                               F_SEAL_WRITE), ==, 0);
    set_state_env(sfd);
    assert_new_refuses(EBADMSG, "state memfd itself");
    close(sfd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add_vtable(path, 0, NULL, (GTestFixtureFunc)setup, (GTestFixtureFunc)fn, NULL)
    ADD("/state/crc32c", test_crc32c);
    ADD("/state/roundtrip", test_roundtrip);
    ADD("/state/memfd-sealed", test_memfd_sealed);
    ADD("/state/memfd-write-faults", test_memfd_write_faults);
    ADD("/state/golden-v1/decode", test_golden_v1_decode);
    ADD("/state/golden-v1/restore", test_golden_v1_restore);
    g_test_add_data_func("/state/golden-v1/every-byte-flip", "state-v1.bin",
                         test_golden_every_byte_flip);
    g_test_add_data_func("/state/golden-v1.1/every-byte-flip", "state-v1.1.bin",
                         test_golden_every_byte_flip);
    g_test_add_data_func("/state/golden-v1.2/every-byte-flip", "state-v1.2.bin",
                         test_golden_every_byte_flip);
    g_test_add_data_func("/state/golden-v1.3/every-byte-flip", "state-v1.3.bin",
                         test_golden_every_byte_flip);
    g_test_add_data_func("/state/golden-v1.5/every-byte-flip", "state-v1.5.bin",
                         test_golden_every_byte_flip);
    ADD("/state/golden-v1.2/restore", test_golden_v12_restore);
    ADD("/state/golden-v1.1/decode", test_golden_v11_decode);
    ADD("/state/golden-v1.1/restore", test_golden_v11_restore);
    ADD("/state/golden-v1/every-truncation", test_golden_v1_every_truncation);
    ADD("/state/version/newer-minor-accepted", test_newer_minor_accepted);
    ADD("/state/version/newer-major-refused", test_newer_major_refused);
    ADD("/state/version/unknown-required-feature", test_unknown_required_feature);
    ADD("/state/forged/wrong-section-type", test_wrong_section_type);
    ADD("/state/forged/not-normal-form", test_forged_not_normal_form);
    ADD("/state/forged/records", test_forged_records);
    ADD("/state/env/garbage", test_env_garbage);
    ADD("/state/env/not-memfd", test_env_not_memfd);
    ADD("/state/env/unsealed", test_env_unsealed);
    ADD("/state/env/not-state", test_env_not_state);
    ADD("/state/fds/recorded-closed", test_recorded_fd_closed);
    ADD("/state/fds/recorded-other-file", test_recorded_fd_other_file);
    ADD("/state/fds/anon-kind-swapped", test_recorded_anon_kind_swapped);
    ADD("/state/forged/state-fd-listed", test_state_fd_listed_as_preserved);
    return g_test_run();
}
