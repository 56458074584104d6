/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: VFIO migration v2 on the fake kernel's model (tests/fake-kernel.c),
 * whose arc list is written from the uAPI text and refuses anything but one legal
 * arc into a supported state. */
#include "config.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <sys/stat.h>

#include "fake-kernel.h"
#include "testutil.h"

#define BDF "0000:00:05.0"
#define F_SC VFIOCPR_MIG_FLAG_STOP_COPY
#define F_P2P VFIOCPR_MIG_FLAG_P2P
#define F_PRE VFIOCPR_MIG_FLAG_PRE_COPY

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *d;
} dev;

static guint8 blob[96];

/* model NULL: the default device, with fake_mig_setup()'s flags; else a device of
 * that model with flags of its own */
static void open_model(dev *x, const fk_pci_model *model, guint32 flags, const char *bdf,
                       int group)
{
    g_autoptr(GError) err = NULL;
    for (gsize i = 0; i < sizeof(blob); i++)
        blob[i] = (guint8)(i * 7 + 1);
    fake_mig_setup(model ? 0 : flags, blob, sizeof(blob), 48);
    if (model)
        fake_vfio_add_device(group, bdf, model, flags);
    else
        fake_vfio_add_group(group, bdf, false);
    if (!x->ctx) {
        g_assert_cmpint(vfiocpr_new(0, &x->ctx, &err), ==, 0);
        g_assert_cmpint(vfiocpr_container_open(x->ctx, "c0", &x->c, &err), ==, 0);
    }
    g_assert_cmpint(vfiocpr_container_add_group(x->c, group, &err), >=, 0);
    g_assert_cmpint(vfiocpr_device_open(x->c, group, bdf, &x->d, &err), ==, 0);
}

static void open_dev(dev *x, guint32 flags, const char *bdf, int group)
{
    open_model(x, NULL, flags, bdf, group);
}

static void close_dev(dev *x)
{
    vfiocpr_device_unref(x->d);
    vfiocpr_container_unref(x->c);
    vfiocpr_unref(x->ctx);
    memset(x, 0, sizeof(*x));
}

static void setup(void)
{
    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
}

static bool supported(guint32 flags, guint s)
{
    switch (s) {
    case VFIOCPR_MIG_RUNNING_P2P: return flags & F_P2P;
    case VFIOCPR_MIG_PRE_COPY: return flags & F_PRE;
    case VFIOCPR_MIG_PRE_COPY_P2P: return (flags & (F_PRE | F_P2P)) == (F_PRE | F_P2P);
    case VFIOCPR_MIG_ERROR: return false;
    default: return true;
    }
}

/* Every (current, target) pair under every flag combination. */
static void test_all_pairs(void)
{
    const guint32 combos[] = { F_SC, F_SC | F_P2P, F_SC | F_PRE, F_SC | F_P2P | F_PRE };
    unsigned walked = 0, refused = 0;

    for (gsize f = 0; f < G_N_ELEMENTS(combos); f++) {
        dev x = { 0 };
        setup();
        open_dev(&x, combos[f], BDF, 12);
        for (guint cur = 1; cur < 8; cur++) {
            for (guint target = 1; target < 8; target++) {
                g_autoptr(GError) err = NULL;
                vfiocpr_mig_state now;
                int r;
                if (!supported(combos[f], cur) || !supported(combos[f], target))
                    continue;
                fake_mig_force_state(vfiocpr_device_fd(x.d), cur);
                g_assert_cmpint(vfiocpr_mig_get_state(x.d, &now, &err), ==, 0);
                fake_mig_clear_arcs();
                r = vfiocpr_mig_set_state(x.d, target, VFIOCPR_MIG_ERROR, &err);
                /* the only moves the uAPI blocks: STOP_COPY -> PRE_COPY* */
                if (cur == VFIOCPR_MIG_STOP_COPY &&
                    (target == VFIOCPR_MIG_PRE_COPY || target == VFIOCPR_MIG_PRE_COPY_P2P)) {
                    g_assert_cmpint(r, ==, -EINVAL);
                    g_assert_cmpuint(fake_mig_arcs()->len, ==, 0);
                    refused++;
                    continue;
                }
                if (r < 0)
                    g_error("flags 0x%x: %s -> %s: %s", combos[f], vfiocpr_mig_state_to_string(cur),
                            vfiocpr_mig_state_to_string(target), err->message);
                g_assert_cmpuint(fake_mig_state(vfiocpr_device_fd(x.d)), ==, target);
                /* the fake refused every illegal arc, so they were all single legal arcs */
                g_assert_cmpuint(fake_mig_arcs()->len, <=, 4);
                walked++;
            }
        }
        close_dev(&x);
    }
    g_test_message("%u pairs walked, %u refused as the uAPI says", walked, refused);
    /* 4, 5, 5 and 7 supported states: 16 + 25 + (25 - 1) + (49 - 2) */
    g_assert_cmpuint(walked, ==, 16 + 25 + 24 + 47);
    g_assert_cmpuint(refused, ==, 0 + 0 + 1 + 2);
}

/* The combination transitions spelled out in include/uapi/linux/vfio.h, literally. */
static void test_documented_paths(void)
{
    const struct {
        guint32 flags;
        const char *path;
    } cases[] = {
        { F_SC, "RESUMING STOP RUNNING" },
        { F_SC, "RESUMING STOP STOP_COPY" },
        { F_SC, "RUNNING STOP RESUMING" },
        { F_SC, "RUNNING STOP STOP_COPY" },
        { F_SC, "STOP_COPY STOP RESUMING" },
        { F_SC, "STOP_COPY STOP RUNNING" },
        { F_SC | F_P2P, "RESUMING STOP RUNNING_P2P" },
        { F_SC | F_P2P, "RESUMING STOP RUNNING_P2P RUNNING" },
        { F_SC | F_P2P, "RUNNING RUNNING_P2P STOP" },
        { F_SC | F_P2P, "RUNNING RUNNING_P2P STOP RESUMING" },
        { F_SC | F_P2P, "RUNNING RUNNING_P2P STOP STOP_COPY" },
        { F_SC | F_P2P, "RUNNING_P2P STOP RESUMING" },
        { F_SC | F_P2P, "RUNNING_P2P STOP STOP_COPY" },
        { F_SC | F_P2P, "STOP RUNNING_P2P RUNNING" },
        { F_SC | F_P2P, "STOP_COPY STOP RUNNING_P2P" },
        { F_SC | F_P2P, "STOP_COPY STOP RUNNING_P2P RUNNING" },
        { F_SC | F_P2P | F_PRE, "RESUMING STOP RUNNING_P2P PRE_COPY_P2P" },
        { F_SC | F_P2P | F_PRE, "RESUMING STOP RUNNING_P2P RUNNING PRE_COPY" },
        { F_SC | F_P2P | F_PRE, "RUNNING RUNNING_P2P PRE_COPY_P2P" },
        { F_SC | F_P2P | F_PRE, "RUNNING_P2P RUNNING PRE_COPY" },
        { F_SC | F_P2P | F_PRE, "STOP RUNNING_P2P PRE_COPY_P2P" },
        { F_SC | F_P2P | F_PRE, "STOP RUNNING_P2P RUNNING PRE_COPY" },
        { F_SC | F_P2P | F_PRE, "PRE_COPY PRE_COPY_P2P STOP_COPY" },
        { F_SC | F_PRE, "PRE_COPY STOP_COPY" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_auto(GStrv) st = g_strsplit(cases[i].path, " ", -1);
        guint n = g_strv_length(st), cur = 0, target = 0, s;
        g_autoptr(GString) got = g_string_new(NULL);
        for (s = 0; s < 8; s++) {
            if (!strcmp(st[0], vfiocpr_mig_state_to_string(s)))
                cur = s;
            if (!strcmp(st[n - 1], vfiocpr_mig_state_to_string(s)))
                target = s;
        }
        g_string_append(got, vfiocpr_mig_state_to_string(cur));
        while (cur != target) {
            vfiocpr_mig_state next;
            g_assert_cmpint(vfiocpr_mig_next_state(cases[i].flags, cur, target, &next), ==, 0);
            g_string_append_printf(got, " %s", vfiocpr_mig_state_to_string(next));
            cur = next;
        }
        g_assert_cmpstr(got->str, ==, cases[i].path);
    }
    /* blocked */
    {
        vfiocpr_mig_state next;
        g_assert_cmpint(vfiocpr_mig_next_state(F_SC | F_P2P | F_PRE, VFIOCPR_MIG_STOP_COPY,
                                               VFIOCPR_MIG_PRE_COPY, &next), ==, -EINVAL);
        g_assert_cmpint(vfiocpr_mig_next_state(F_SC, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RUNNING_P2P,
                                               &next), ==, -EINVAL);
    }
}

/* Every arc of a RUNNING -> STOP_COPY walk failing once ends in the recovery state;
 * when the recovery fails too, in a reset; both reported. */
static void test_arc_failures(void)
{
    dev x = { 0 };

    open_dev(&x, F_SC | F_P2P, BDF, 12);
    {
        guint32 fl; /* queried (and cached) first, so the failing FEATURE calls are arcs */
        g_assert_cmpint(vfiocpr_mig_flags(x.d, &fl, NULL), ==, 0);
    }
    for (unsigned k = 1; k <= 3; k++) {
        g_autoptr(GError) err = NULL;
        vfiocpr_mig_state now;
        fake_mig_force_state(vfiocpr_device_fd(x.d), VFIOCPR_MIG_RUNNING);
        g_assert_cmpint(vfiocpr_mig_get_state(x.d, &now, &err), ==, 0);
        /* FEATURE calls of the walk: one per arc */
        fake_vfio_fail_ioctl(VFIO_DEVICE_FEATURE, k, EIO);
        g_assert_cmpint(vfiocpr_mig_set_state(x.d, VFIOCPR_MIG_STOP_COPY, VFIOCPR_MIG_RUNNING,
                                              &err), ==, -EIO);
        g_test_message("arc %u failing: %s", k, err->message);
        g_assert_nonnull(strstr(err->message, "recovered to RUNNING"));
        g_assert_cmpuint(fake_mig_state(vfiocpr_device_fd(x.d)), ==, VFIOCPR_MIG_RUNNING);
        g_assert_cmpint(vfiocpr_mig_data_fd(x.d), ==, -ENOENT);
    }
    {
        g_autoptr(GError) err = NULL;
        vfiocpr_mig_state now;
        unsigned resets = fake_vfio_ioctls(VFIO_DEVICE_RESET);
        fake_mig_force_state(vfiocpr_device_fd(x.d), VFIOCPR_MIG_RUNNING);
        g_assert_cmpint(vfiocpr_mig_get_state(x.d, &now, &err), ==, 0);
        /* the walk's 2nd arc fails and no recovery state is given: reset */
        fake_vfio_fail_ioctl(VFIO_DEVICE_FEATURE, 2, EIO);
        g_assert_cmpint(vfiocpr_mig_set_state(x.d, VFIOCPR_MIG_STOP_COPY, VFIOCPR_MIG_ERROR, &err),
                        ==, -EIO);
        g_assert_nonnull(strstr(err->message, "reset"));
        g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_RESET), ==, resets + 1);
        g_assert_cmpuint(fake_mig_state(vfiocpr_device_fd(x.d)), ==, VFIOCPR_MIG_RUNNING);
    }
    close_dev(&x);
}

static void test_save_load(void)
{
    dev x = { 0 };
    g_autoptr(GError) err = NULL;
    int out = memfd_create("state", MFD_CLOEXEC), bad = memfd_create("bad", MFD_CLOEXEC);
    guint64 bytes = 0;
    guint8 back[96];

    open_dev(&x, F_SC | F_P2P, BDF, 12);
    g_assert_cmpint(vfiocpr_mig_set_state(x.d, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RUNNING, &err), ==, 0);
    g_assert_cmpint(vfiocpr_mig_save(x.d, out, &bytes, &err), ==, 0);
    g_assert_cmpuint(bytes, ==, 96);
    g_assert_cmpint(pread(out, back, 96, 0), ==, 96);
    g_assert_cmpmem(back, 96, blob, 96);
    g_assert_cmpuint(fake_mig_state(vfiocpr_device_fd(x.d)), ==, VFIOCPR_MIG_STOP);
    g_assert_cmpint(lseek(out, 0, SEEK_SET), ==, 0);
    g_assert_cmpint(vfiocpr_mig_load(x.d, out, 96, &err), ==, 0);
    g_assert_cmpuint(fake_mig_state(vfiocpr_device_fd(x.d)), ==, VFIOCPR_MIG_STOP);
    g_assert_cmpint(vfiocpr_mig_set_state(x.d, VFIOCPR_MIG_RUNNING, VFIOCPR_MIG_ERROR, &err), ==, 0);
    /* a state the driver refuses: the error says so and the device is usable again */
    back[10] ^= 0xff;
    g_assert_cmpint(write(bad, back, 96), ==, 96);
    g_assert_cmpint(lseek(bad, 0, SEEK_SET), ==, 0);
    g_assert_cmpint(vfiocpr_mig_set_state(x.d, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RUNNING, &err), ==, 0);
    g_assert_cmpint(vfiocpr_mig_load(x.d, bad, 96, &err), <, 0);
    g_assert_nonnull(strstr(err->message, "RESUMING"));
    g_assert_cmpuint(fake_mig_state(vfiocpr_device_fd(x.d)), ==, VFIOCPR_MIG_RUNNING);
    close(out);
    close(bad);
    close_dev(&x);
}

static void test_precopy(void)
{
    dev x = { 0 };
    g_autoptr(GError) err = NULL;
    int out = memfd_create("pre", MFD_CLOEXEC);
    guint64 initial = 0, dirty = 1, bytes = 0, rest = 0;
    guint8 back[96];

    open_dev(&x, F_SC | F_P2P | F_PRE, BDF, 12);
    g_assert_cmpint(vfiocpr_mig_set_state(x.d, VFIOCPR_MIG_PRE_COPY, VFIOCPR_MIG_RUNNING, &err), ==, 0);
    g_assert_cmpint(vfiocpr_mig_precopy_info(x.d, &initial, &dirty, &err), ==, 0);
    g_assert_cmpuint(initial, ==, 48);
    g_assert_cmpuint(dirty, ==, 0);
    g_assert_cmpint(vfiocpr_mig_precopy_read(x.d, out, &bytes, &err), ==, 0); /* until ENOMSG */
    g_assert_cmpuint(bytes, ==, 48);
    g_assert_cmpint(vfiocpr_mig_precopy_read(x.d, out, &bytes, &err), ==, 0); /* nothing now */
    g_assert_cmpuint(bytes, ==, 0);
    /* the final pass goes on with the same stream: PRE_COPY -> PRE_COPY_P2P -> STOP_COPY */
    g_assert_cmpint(vfiocpr_mig_save(x.d, out, &rest, &err), ==, 0);
    g_assert_cmpuint(rest, ==, 48);
    g_assert_cmpint(pread(out, back, 96, 0), ==, 96);
    g_assert_cmpmem(back, 96, blob, 96);
    g_assert_cmpint(vfiocpr_mig_precopy_info(x.d, &initial, NULL, &err), ==, -EINVAL); /* not in PRE_COPY */
    close(out);
    close_dev(&x);
}

static void test_file(void)
{
    dev x = { 0 };
    g_autoptr(GError) err = NULL;
    int f = memfd_create("file", MFD_CLOEXEC);
    vfiocpr_device *one[1];
    vfiocpr_device *other_dev = NULL;
    guint8 byte;
    struct stat st;

    open_dev(&x, F_SC | F_P2P, BDF, 12);
    one[0] = x.d;
    g_assert_cmpint(vfiocpr_mig_set_state(x.d, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RUNNING, &err), ==, 0);
    g_assert_cmpint(vfiocpr_mig_save_file(one, 1, f, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(fstat(f, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 32 + 48 + 16 + 96);
    g_assert_cmpint(vfiocpr_mig_load_file(one, 1, f, &err), ==, 0);
    g_assert_no_error(err);
    /* another device: refused before it goes anywhere near RESUMING */
    fake_vfio_add_group(13, "0000:00:06.0", false);
    g_assert_cmpint(vfiocpr_container_add_group(x.c, 13, &err), >=, 0);
    g_assert_cmpint(vfiocpr_device_open(x.c, 13, "0000:00:06.0", &other_dev, &err), ==, 0);
    fake_mig_clear_arcs();
    one[0] = other_dev;
    g_assert_cmpint(vfiocpr_mig_load_file(one, 1, f, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "is the state of '0000:00:05.0'"));
    g_assert_cmpuint(fake_mig_arcs()->len, ==, 0);
    g_clear_error(&err);
    one[0] = x.d;
    /* corrupt data, then a truncated file */
    g_assert_cmpint(pread(f, &byte, 1, 32 + 48 + 16 + 50), ==, 1);
    byte ^= 0x10;
    g_assert_cmpint(pwrite(f, &byte, 1, 32 + 48 + 16 + 50), ==, 1);
    g_assert_cmpint(vfiocpr_mig_load_file(one, 1, f, &err), ==, -EBADMSG);
    g_assert_nonnull(strstr(err->message, "checksum"));
    g_clear_error(&err);
    g_assert_cmpint(ftruncate(f, 32 + 48 + 16 + 40), ==, 0);
    g_assert_cmpint(vfiocpr_mig_load_file(one, 1, f, &err), ==, -EBADMSG);
    g_assert_nonnull(strstr(err->message, "truncated"));
    g_clear_error(&err);
    g_assert_cmpint(ftruncate(f, 3), ==, 0);
    g_assert_cmpint(vfiocpr_mig_load_file(one, 1, f, &err), ==, -EBADMSG);
    g_assert_cmpuint(fake_mig_state(vfiocpr_device_fd(x.d)), ==, VFIOCPR_MIG_STOP); /* untouched */
    vfiocpr_device_unref(other_dev);
    close(f);
    close_dev(&x);
}

static void test_checks(void)
{
    dev x = { 0 };
    g_autoptr(GError) err = NULL;
    guint32 flags = 99;

    open_dev(&x, 0, BDF, 12); /* no migration support */
    g_assert_cmpint(vfiocpr_mig_flags(x.d, &flags, &err), ==, 0);
    g_assert_cmpuint(flags, ==, 0);
    g_assert_cmpint(vfiocpr_mig_check(x.d, 0, &err), ==, -ENOTSUP);
    g_assert_nonnull(strstr(err->message, "has no VFIO migration support"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_mig_set_state(x.d, VFIOCPR_MIG_STOP, VFIOCPR_MIG_ERROR, &err), ==, -ENOTSUP);
    g_clear_error(&err);
    close_dev(&x);
    setup();
    open_dev(&x, F_SC, BDF, 12);
    g_assert_cmpint(vfiocpr_mig_check(x.d, 0, &err), ==, 0);
    g_assert_cmpint(vfiocpr_mig_check(x.d, VFIOCPR_MIG_INTENT_BACKGROUND_SNAPSHOT, &err), ==, -ENOTSUP);
    g_assert_nonnull(strstr(err->message, "VFIO migration is not compatible with background snapshot"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_mig_check(x.d, VFIOCPR_MIG_INTENT_POSTCOPY, &err), ==, -ENOTSUP);
    g_assert_nonnull(strstr(err->message, "postcopy"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_mig_check(x.d, VFIOCPR_MIG_INTENT_PRECOPY, &err), ==, -ENOTSUP);
    g_assert_nonnull(strstr(err->message, "cannot pre-copy"));
    close_dev(&x);
}

static guint16 le16(const guint8 *p)
{
    return (guint16)(p[0] | p[1] << 8);
}

/* The fake's device as the library and a VMM see it: VFIO_DEVICE_GET_INFO, and the
 * model's ids in the config region, whose command register alone takes writes. */
static void test_device_model(void)
{
    dev x = { 0 };
    struct vfio_device_info di = { .argsz = sizeof(di) };
    struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    guint8 cfg[PCI_STD_HEADER_SIZEOF], w[2] = { PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 0 };
    int dfd;

    open_model(&x, &fake_pci_nvme, F_SC, BDF, 12);
    dfd = vfiocpr_device_fd(x.d);
    g_assert_cmpint(seam_unrecorded()->ioctl(dfd, VFIO_DEVICE_GET_INFO, &di), ==, 0);
    g_assert_cmpuint(di.flags, ==, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
    g_assert_cmpuint(di.num_regions, ==, VFIO_PCI_NUM_REGIONS);
    g_assert_cmpuint(di.num_irqs, ==, VFIO_PCI_NUM_IRQS);
    g_assert_cmpint(seam_unrecorded()->ioctl(dfd, VFIO_DEVICE_GET_REGION_INFO, &ri), ==, 0);
    g_assert_cmpuint(ri.size, ==, PCI_CFG_SPACE_EXP_SIZE);
    g_assert_false(ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
    g_assert_cmpint(seam_unrecorded()->pread(dfd, cfg, sizeof(cfg), (off_t)ri.offset), ==, sizeof(cfg));
    g_assert_cmphex(le16(cfg + PCI_VENDOR_ID), ==, 0x1b36);
    g_assert_cmphex(le16(cfg + PCI_DEVICE_ID), ==, 0x0010);
    g_assert_cmphex(cfg[PCI_CLASS_PROG] | le16(cfg + PCI_CLASS_DEVICE) << 8, ==, 0x010802);
    g_assert_cmphex(le16(cfg + PCI_SUBSYSTEM_VENDOR_ID), ==, 0x1af4);
    g_assert_cmphex(le16(cfg + PCI_COMMAND), ==, 0);
    /* the command register takes a write, the ids do not; a reset restores it */
    g_assert_cmpint(seam_unrecorded()->pwrite(dfd, w, 2, (off_t)ri.offset + PCI_COMMAND), ==, 2);
    g_assert_cmpint(seam_unrecorded()->pwrite(dfd, w, 2, (off_t)ri.offset + PCI_VENDOR_ID), ==, 2);
    g_assert_cmpint(seam_unrecorded()->pread(dfd, cfg, 8, (off_t)ri.offset), ==, 8);
    g_assert_cmphex(le16(cfg + PCI_COMMAND), ==, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
    g_assert_cmphex(le16(cfg + PCI_VENDOR_ID), ==, 0x1b36);
    g_assert_cmpint(seam_unrecorded()->ioctl(dfd, VFIO_DEVICE_RESET, NULL), ==, 0);
    g_assert_cmpint(seam_unrecorded()->pread(dfd, cfg, 8, (off_t)ri.offset), ==, 8);
    g_assert_cmphex(le16(cfg + PCI_COMMAND), ==, 0);
    /* past the end of the config space */
    g_assert_cmpint(seam_unrecorded()->pread(dfd, cfg, 4, (off_t)ri.offset + PCI_CFG_SPACE_EXP_SIZE),
                    ==, -EINVAL);
    close_dev(&x);
}

/* Migration flags are the device's: one container, a device that pre-copies and one
 * without migration support. */
static void test_per_device_flags(void)
{
    dev x = { 0 };
    g_autoptr(GError) err = NULL;
    vfiocpr_device *nic = NULL;
    guint32 flags = 99;

    open_model(&x, &fake_pci_edu, F_SC | F_PRE, BDF, 12);
    fake_vfio_add_device(13, "0000:00:06.0", &fake_pci_e1000e, 0);
    g_assert_cmpint(vfiocpr_container_add_group(x.c, 13, &err), >=, 0);
    g_assert_cmpint(vfiocpr_device_open(x.c, 13, "0000:00:06.0", &nic, &err), ==, 0);
    g_assert_cmpint(vfiocpr_mig_flags(x.d, &flags, &err), ==, 0);
    g_assert_cmphex(flags, ==, F_SC | F_PRE);
    g_assert_cmpint(vfiocpr_mig_check(x.d, VFIOCPR_MIG_INTENT_PRECOPY, &err), ==, 0);
    g_assert_cmpint(vfiocpr_mig_flags(nic, &flags, &err), ==, 0);
    g_assert_cmphex(flags, ==, 0);
    g_assert_cmpint(vfiocpr_mig_check(nic, 0, &err), ==, -ENOTSUP);
    g_assert_nonnull(strstr(err->message, "has no VFIO migration support"));
    g_clear_error(&err);
    /* PRE_COPY is an arc the first one takes and nothing the second one has */
    g_assert_cmpint(vfiocpr_mig_set_state(x.d, VFIOCPR_MIG_PRE_COPY, VFIOCPR_MIG_RUNNING, &err), ==, 0);
    g_assert_cmpuint(fake_mig_state(vfiocpr_device_fd(x.d)), ==, VFIOCPR_MIG_PRE_COPY);
    g_assert_cmpint(vfiocpr_mig_set_state(nic, VFIOCPR_MIG_STOP, VFIOCPR_MIG_ERROR, &err), ==, -ENOTSUP);
    vfiocpr_device_unref(nic);
    close_dev(&x);
}

/* Loads the file into a fresh device of this model and flags at BDF; returns the rc. */
static int load_into(int f, const fk_pci_model *model, guint32 flags, GError **error)
{
    dev x = { 0 };
    vfiocpr_device *one[1];
    int r;

    setup();
    open_model(&x, model, flags, BDF, 12);
    g_assert_cmpint(vfiocpr_mig_set_state(x.d, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RUNNING, NULL), ==, 0);
    fake_mig_clear_arcs();
    one[0] = x.d;
    r = vfiocpr_mig_load_file(one, 1, f, error);
    if (r < 0) /* refused before the device went anywhere near RESUMING */
        g_assert_cmpuint(fake_mig_arcs()->len, ==, 0);
    else
        g_assert_cmpuint(fake_mig_arcs()->len, >, 0);
    close_dev(&x);
    return r;
}

/* The device-state file names the device by its address and by the PCI identity in
 * its config space: another device model at the same address, or the same model
 * with other migration flags, refuses the state; the same model takes it. */
static void test_file_identity(void)
{
    dev x = { 0 };
    g_autoptr(GError) err = NULL;
    int f = memfd_create("file", MFD_CLOEXEC);
    vfiocpr_device *one[1];
    guint8 rec[48];

    open_model(&x, &fake_pci_edu, F_SC, BDF, 12);
    one[0] = x.d;
    g_assert_cmpint(vfiocpr_mig_set_state(x.d, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RUNNING, &err), ==, 0);
    g_assert_cmpint(vfiocpr_mig_save_file(one, 1, f, &err), ==, 0);
    close_dev(&x);
    /* the record carries what the config space says */
    g_assert_cmpint(pread(f, rec, sizeof(rec), 32), ==, sizeof(rec));
    g_assert_cmphex(le16(rec + 8), ==, 0x1234);
    g_assert_cmphex(le16(rec + 10), ==, 0x11e8);

    g_assert_cmpint(load_into(f, &fake_pci_edu, F_SC, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(load_into(f, &fake_pci_nvme, F_SC, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "is the state of '" BDF "' (PCI 1234:11e8, flags 0x1), "
                                          "not of device '" BDF "' (PCI 1b36:0010, flags 0x1)"));
    g_clear_error(&err);
    g_assert_cmpint(load_into(f, &fake_pci_e1000e, F_SC, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "(PCI 8086:10d3"));
    g_clear_error(&err);
    g_assert_cmpint(load_into(f, &fake_pci_edu, F_SC | F_PRE, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "(PCI 1234:11e8, flags 0x5)"));
    g_clear_error(&err);
    close(f);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add_vtable(path, 0, NULL, (GTestFixtureFunc)setup, (GTestFixtureFunc)fn, NULL)
    ADD("/mig/all-pairs", test_all_pairs);
    ADD("/mig/documented-paths", test_documented_paths);
    ADD("/mig/arc-failures", test_arc_failures);
    ADD("/mig/save-load", test_save_load);
    ADD("/mig/precopy", test_precopy);
    ADD("/mig/file", test_file);
    ADD("/mig/checks", test_checks);
    ADD("/mig/device-model", test_device_model);
    ADD("/mig/per-device-flags", test_per_device_flags);
    ADD("/mig/file-identity", test_file_identity);
    return g_test_run();
}
