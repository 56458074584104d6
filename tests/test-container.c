/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: type1 containers, groups, devices and DMA across exec, on the fake
 * type1 kernel (tests/fake-kernel.c). A VMM-shaped start-up function runs in both
 * the old and the new "image" (the same process: the fake's execve succeeds and the
 * test restores from the state memfd it produced). */
#include "config.h"

#include <errno.h>
#include <linux/vfio.h>

#include "fake-kernel.h"
#include "testutil.h"

#define RAM_SIZE (16u << 20)
#define N_MAPS 4
#define MAP_SIZE (RAM_SIZE / N_MAPS)
#define IOVA0 0x100000ull

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *dev;
    int ram;       /* memfd */
    guint8 *va;    /* this image's mapping of the memfd */
    int group_fd;
} vmm;

/* What a VMM does at start-up, cold or restart: the same calls either way. */
static int vmm_start(vmm *m, bool restart_expected, GError **error)
{
    int r;

    r = vfiocpr_new(0, &m->ctx, error);
    if (r < 0)
        return r;
    g_assert_cmpint(vfiocpr_is_restart(m->ctx), ==, restart_expected);
    r = vfiocpr_fd_find(m->ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, NULL);
    if (r == -ENOENT) {
        m->ram = memfd_create("guest-ram", MFD_CLOEXEC);
        g_assert_cmpint(ftruncate(m->ram, RAM_SIZE), ==, 0);
        r = vfiocpr_fd_save(m->ctx, "guest-ram", 0, m->ram, VFIOCPR_FD_MEMFD, error);
    } else {
        m->ram = r;
    }
    if (r < 0)
        return r;
    /* a new image maps guest RAM at a new address */
    m->va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->ram, 0);
    g_assert_true(m->va != MAP_FAILED);
    if ((r = vfiocpr_container_open(m->ctx, "c0", &m->c, error)) < 0)
        return r;
    if ((r = vfiocpr_device_group_id("0000:00:03.0", error)) < 0)
        return r;
    g_assert_cmpint(r, ==, 12);
    if ((m->group_fd = vfiocpr_container_add_group(m->c, 12, error)) < 0)
        return m->group_fd;
    if ((r = vfiocpr_device_open(m->c, 12, "0000:00:03.0", &m->dev, error)) < 0)
        return r;
    for (unsigned i = 0; i < N_MAPS; i++)
        if ((r = vfiocpr_dma_map(m->c, IOVA0 + i * MAP_SIZE, MAP_SIZE, m->va + i * MAP_SIZE,
                                 m->ram, i * MAP_SIZE, VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE,
                                 error)) < 0)
            return r;
    return vfiocpr_finish(m->ctx, NULL, error);
}

static void vmm_drop(vmm *m)
{
    vfiocpr_device_unref(m->dev);
    vfiocpr_container_unref(m->c);
    vfiocpr_unref(m->ctx);
    munmap(m->va, RAM_SIZE);
    memset(m, 0, sizeof(*m));
}

static void assert_dma(vmm *m, bool valid, guint8 *base)
{
    for (unsigned i = 0; i < N_MAPS; i++) {
        guint64 size = 0, vaddr = 0;
        int st = fake_vfio_dma(vfiocpr_container_fd(m->c), IOVA0 + i * MAP_SIZE, &size, &vaddr);
        g_assert_cmpint(st, ==, valid ? 1 : 0);
        g_assert_cmpuint(size, ==, MAP_SIZE);
        if (valid)
            g_assert_cmphex(vaddr, ==, (guint64)(uintptr_t)(base + i * MAP_SIZE));
    }
}

static void setup(void)
{
    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
    fake_vfio_add_group(12, "0000:00:03.0", false);
}

/* The heart: cold start, exec, restart with the same code; no reset-class ioctl in
 * the new image, one UNMAP per container, every range re-pointed at the new vaddr. */
static void test_cold_exec_restart(void)
{
    vmm old = { 0 }, new = { 0 };
    g_autoptr(GError) err = NULL;
    int cfd, dfd, sfd;

    g_assert_cmpint(vmm_start(&old, false, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_SET_CONTAINER), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_SET_IOMMU), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_GET_DEVICE_FD), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_IOMMU_MAP_DMA), ==, N_MAPS);
    assert_dma(&old, true, old.va);
    cfd = vfiocpr_container_fd(old.c);
    dfd = vfiocpr_device_fd(old.dev);

    sfd = fake_kernel_exec_ok(old.ctx, G_MAXUINT64);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_IOMMU_UNMAP_DMA), ==, 1);
    assert_dma(&old, false, NULL); /* invalid across the exec */
    g_assert_cmpint(tu_cloexec(old.ram), ==, 0);
    vmm_drop(&old); /* the old image is gone; its fds are not */

    tu_set_state_fd(sfd);
    g_assert_cmpint(vmm_start(&new, true, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_container_fd(new.c), ==, cfd);
    g_assert_cmpint(vfiocpr_device_fd(new.dev), ==, dfd);
    /* nothing that would reset or re-attach the device */
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_SET_CONTAINER), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_SET_IOMMU), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_GET_DEVICE_FD), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_RESET), ==, 0);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_IOMMU_MAP_DMA), ==, 2 * N_MAPS);
    assert_dma(&new, true, new.va);
    g_assert_cmpint(tu_cloexec(new.ram), ==, 1);

    /* and again: a restarted VMM can upgrade once more */
    sfd = fake_kernel_exec_ok(new.ctx, G_MAXUINT64);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_IOMMU_UNMAP_DMA), ==, 2);
    vmm_drop(&new);
    tu_set_state_fd(sfd);
    g_assert_cmpint(vmm_start(&new, true, &err), ==, 0);
    assert_dma(&new, true, new.va);
    vmm_drop(&new);
}

/* Negative control for the "not reset" checks above: a VMM that closes the device
 * fd (what losing it across exec amounts to) is seen by the same counters. */
static void test_negative_control_device_closed(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;

    g_assert_cmpint(vmm_start(&m, false, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_close(m.dev, &err), ==, 0);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 1);
    vmm_drop(&m);
}

/* A cold start, an exec, and the new image up to the point where it has its context,
 * guest RAM found and mapped at a new address, every preserved range still pending:
 * where a test takes over the VMM's restore. */
static vfiocpr *restart_pending(guint64 locked_limit, int *ram, guint8 **va)
{
    vmm old = { 0 };
    g_autoptr(GError) err = NULL;
    vfiocpr *ctx = NULL;

    g_assert_cmpint(vmm_start(&old, false, &err), ==, 0);
    tu_set_state_fd(fake_kernel_exec_ok(old.ctx, locked_limit));
    vmm_drop(&old);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    *ram = vfiocpr_fd_find(ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, &err);
    g_assert_cmpint(*ram, >=, 0);
    *va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, *ram, 0);
    g_assert_true(*va != MAP_FAILED);
    return ctx;
}

static void test_finish_names_unmapped_ranges(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr_container) c = NULL;
    g_autoptr(vfiocpr_device) dev = NULL;
    guint8 *va;
    int ram;
    g_autoptr(vfiocpr) ctx = restart_pending(G_MAXUINT64, &ram, &va);

    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_add_group(c, 12, &err), >=, 0);
    g_assert_cmpint(vfiocpr_device_open(c, 12, "0000:00:03.0", &dev, &err), ==, 0);
    /* only the first two ranges come back */
    for (unsigned i = 0; i < 2; i++)
        g_assert_cmpint(vfiocpr_dma_map(c, IOVA0 + i * MAP_SIZE, MAP_SIZE, va + i * MAP_SIZE, ram,
                                        i * MAP_SIZE, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, -ESTALE);
    g_assert_error(err, VFIOCPR_ERROR, ESTALE);
    g_assert_nonnull(strstr(err->message, "2 preserved DMA ranges were not re-mapped"));
    g_assert_nonnull(strstr(err->message, "0x900000-0xcfffff"));
    g_assert_nonnull(strstr(err->message, "0xd00000-0x10fffff"));
    g_assert_true(vfiocpr_is_restart(ctx)); /* still restoring: the VMM can fix it */
    g_clear_error(&err);
    /* a second exec is refused while ranges are pending */
    {
        char *argv[] = { (char *)"x", NULL };
        g_assert_cmpint(vfiocpr_exec(ctx, "/x", argv, NULL, &err), ==, -EBUSY);
        g_assert_nonnull(strstr(err->message, "not re-mapped yet"));
        g_clear_error(&err);
    }
    for (unsigned i = 2; i < N_MAPS; i++)
        g_assert_cmpint(vfiocpr_dma_map(c, IOVA0 + i * MAP_SIZE, MAP_SIZE, va + i * MAP_SIZE, ram,
                                        i * MAP_SIZE, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, 0);
    g_assert_false(vfiocpr_is_restart(ctx));
    munmap(va, RAM_SIZE);
}

/* Restart-mode bad input: nothing unmapped, nothing closed, a clear error each. */
static void test_restart_bad_input(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr_container) c = NULL;
    g_autoptr(vfiocpr_device) dev = NULL;
    guint8 *va;
    int ram, other, cfd;
    g_autoptr(vfiocpr) ctx = NULL;

    fake_vfio_add_group(13, "0000:00:04.0", false);
    ctx = restart_pending(G_MAXUINT64, &ram, &va);
    other = memfd_create("other", MFD_CLOEXEC);
    g_assert_cmpint(ftruncate(other, RAM_SIZE), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(ctx, "other", 0, other, VFIOCPR_FD_MEMFD, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &c, &err), ==, 0);
    cfd = vfiocpr_container_fd(c); /* the preserved one */
    g_assert_cmpint(vfiocpr_container_add_group(c, 12, &err), >=, 0);

    /* a group the state does not know, while ranges are invalid: the kernel's EBUSY */
    g_assert_cmpint(vfiocpr_container_add_group(c, 13, &err), ==, -EBUSY);
    g_assert_nonnull(strstr(err->message, "add group 13"));
    g_clear_error(&err);
    /* a device the state does not know */
    g_assert_cmpint(vfiocpr_device_open(c, 12, "0000:00:09.0", &dev, &err), ==, -ENOENT);
    g_assert_nonnull(strstr(err->message, "not in the preserved state"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_device_open(c, 12, "0000:00:03.0", &dev, &err), ==, 0);
    /* a different size, other memory, another offset, other flags */
    g_assert_cmpint(vfiocpr_dma_map(c, IOVA0, MAP_SIZE / 2, va, ram, 0, 3, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "the preserved range is 0x100000-0x4fffff"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_map(c, IOVA0, MAP_SIZE, va, other, 0, 3, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "not the preserved memory"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_map(c, IOVA0, MAP_SIZE, va, ram, MAP_SIZE, 3, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_map(c, IOVA0, MAP_SIZE, va, ram, 0, 1, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_map(c, IOVA0, MAP_SIZE, va, -1, 0, 3, &err), ==, -EINVAL);
    g_clear_error(&err);
    /* none of that touched the kernel's mappings */
    g_assert_cmpuint(fake_vfio_dma_count(cfd), ==, N_MAPS);
    g_assert_cmpint(fake_vfio_dma(cfd, IOVA0, NULL, NULL), ==, 0);
    /* the right one, then the same range again */
    g_assert_cmpint(vfiocpr_dma_map(c, IOVA0, MAP_SIZE, va, ram, 0, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(c, IOVA0, MAP_SIZE, va, ram, 0, 3, &err), ==, -EEXIST);
    g_assert_nonnull(strstr(err->message, "already mapped"));
    g_clear_error(&err);
    g_assert_cmpuint(fake_vfio_dma_count(cfd), ==, N_MAPS);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    g_assert_cmpint(fcntl(cfd, F_GETFD), >=, 0);
    munmap(va, RAM_SIZE);
    close(other);
}

static void exec_refused(vmm *m, int expect, const char *in_msg)
{
    g_autoptr(GError) err = NULL;
    char *argv[] = { (char *)"x", NULL };
    unsigned unmaps = fake_vfio_ioctls(VFIO_IOMMU_UNMAP_DMA);
    unsigned memfds = fake_kernel_calls(FK_MEMFD_CREATE); /* the DMA table's, at map time */

    g_assert_cmpint(vfiocpr_exec(m->ctx, "/x", argv, NULL, &err), ==, -expect);
    if (!strstr(err->message, in_msg))
        g_error("'%s' lacks '%s'", err->message, in_msg);
    /* refused before any side effect: no invalidation, no state memfd */
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_IOMMU_UNMAP_DMA), ==, unmaps);
    g_assert_cmpuint(fake_kernel_calls(FK_MEMFD_CREATE), ==, memfds);
    assert_dma(m, true, m->va);
}

static void test_blocker_unbacked(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    void *anon = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    g_assert_cmpint(vmm_start(&m, false, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(m.c, 0x8000000, 0x10000, anon, -1, 0, 3, &err), ==, 0);
    exec_refused(&m, EINVAL, "DMA range 0x8000000-0x800ffff is not backed by a registered memfd");
    vmm_drop(&m);
    munmap(anon, 0x10000);
}

static void test_blocker_mdev(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;

    fake_vfio_add_group(20, "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001", true);
    g_assert_cmpint(vmm_start(&m, false, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_group_id("83b8f4f2-509f-382f-3c1e-e6bfe0fa1001", &err), ==, 20);
    g_assert_cmpint(vfiocpr_container_add_group(m.c, 20, &err), >=, 0);
    exec_refused(&m, ENOTSUP, "VFIO_UPDATE_VADDR or VFIO_UNMAP_ALL is 0");
    vmm_drop(&m);
}

/* The vaddr extensions are probed when a group joins, not in the blackout; the
 * probe still catches an mdev that joins a restored container (negative control
 * for the cached answer: without the probe at add-group the exec would go on). */
static void test_blocker_mdev_after_restore(void)
{
    vmm old = { 0 }, new = { 0 };
    g_autoptr(GError) err = NULL;
    unsigned probes;
    int sfd;

    fake_vfio_add_group(20, "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001", true);
    g_assert_cmpint(vmm_start(&old, false, &err), ==, 0);
    probes = fake_vfio_ioctls(VFIO_CHECK_EXTENSION);
    sfd = fake_kernel_exec_ok(old.ctx, G_MAXUINT64);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_CHECK_EXTENSION), ==, probes);
    vmm_drop(&old);
    tu_set_state_fd(sfd);
    g_assert_cmpint(vmm_start(&new, true, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_container_add_group(new.c, 20, &err), >=, 0);
    exec_refused(&new, ENOTSUP, "VFIO_UPDATE_VADDR or VFIO_UNMAP_ALL is 0");
    vmm_drop(&new);
}

static void test_blocker_memlock(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;

    g_assert_cmpint(vmm_start(&m, false, &err), ==, 0);
    fake_kernel_set_memlock(RAM_SIZE - 1, false);
    exec_refused(&m, ENOMEM, "RLIMIT_MEMLOCK is 16777215 bytes but the new image will be "
                 "charged 16777216");
    fake_kernel_set_memlock(RAM_SIZE - 1, true); /* CAP_IPC_LOCK lifts it */
    {
        char *argv[] = { (char *)"x", NULL };
        g_assert_cmpint(vfiocpr_exec(m.ctx, "/x", argv, NULL, &err), ==, -ENOENT);
    }
    assert_dma(&m, true, m.va);
    vmm_drop(&m);
}

/* The new process is charged again for pinned memory: ENOMEM on MAP|VADDR names
 * RLIMIT_MEMLOCK, leaves the range pending, and a retry works. */
static void test_restore_enomem(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr_container) c = NULL;
    guint8 *va;
    int ram;
    g_autoptr(vfiocpr) ctx = restart_pending(MAP_SIZE, &ram, &va); /* room for one range */

    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(c, IOVA0, MAP_SIZE, va, ram, 0, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(c, IOVA0 + MAP_SIZE, MAP_SIZE, va + MAP_SIZE, ram, MAP_SIZE,
                                    3, &err), ==, -ENOMEM);
    g_assert_nonnull(strstr(err->message, "RLIMIT_MEMLOCK"));
    g_assert_nonnull(strstr(err->message, "can be retried"));
    g_clear_error(&err);
    g_assert_cmpint(fake_vfio_dma(vfiocpr_container_fd(c), IOVA0 + MAP_SIZE, NULL, NULL), ==, 0);
    fake_vfio_new_process(G_MAXUINT64); /* the operator raised the limit */
    for (unsigned i = 1; i < N_MAPS; i++)
        g_assert_cmpint(vfiocpr_dma_map(c, IOVA0 + i * MAP_SIZE, MAP_SIZE, va + i * MAP_SIZE, ram,
                                        i * MAP_SIZE, 3, &err), ==, 0);
    munmap(va, RAM_SIZE);
}

/* Every kernel call of an exec with live DMA fails once: each ends with every range
 * valid at its OLD vaddr, flags restored, no fd leaked. */
static void test_exec_fault_sweep(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    char *argv[] = { (char *)"x", NULL };
    unsigned total, fds;
    bool saw_unmap = false;

    g_assert_cmpint(vmm_start(&m, false, &err), ==, 0);
    fds = tu_count_open_fds();
    total = fake_kernel_exec_calls(m.ctx);
    g_assert_cmpuint(total, >, 5);
    for (unsigned n = 1; n <= total; n++) {
        unsigned base = fake_kernel_calls(FK_ANY);
        fk_op op;
        int r;

        fake_kernel_fail(FK_ANY, base + n, EIO);
        r = vfiocpr_exec(m.ctx, "/x", argv, NULL, &err);
        op = fake_kernel_call_op(base + n);
        saw_unmap |= op == FK_IOCTL;
        g_test_message("failing call %u (%s): %s", n, fake_kernel_op_name(op),
                       err ? err->message : "-");
        g_assert_cmpint(r, ==, -EIO);
        g_assert_nonnull(strstr(err->message, "rolled back"));
        g_clear_error(&err);
        assert_dma(&m, true, m.va);
        g_assert_cmpint(tu_cloexec(m.ram), ==, 1);
        g_assert_cmpint(tu_cloexec(vfiocpr_device_fd(m.dev)), ==, 1);
        g_assert_cmpuint(tu_count_open_fds(), ==, fds);
    }
    g_assert_true(saw_unmap);
    /* and the invalidation itself failing in the kernel */
    fake_vfio_fail_ioctl(VFIO_IOMMU_UNMAP_DMA, 1, EFAULT);
    g_assert_cmpint(vfiocpr_exec(m.ctx, "/x", argv, NULL, &err), ==, -EFAULT);
    g_assert_nonnull(strstr(err->message, "VFIO_IOMMU_UNMAP_DMA(VADDR|ALL)"));
    assert_dma(&m, true, m.va);
    vmm_drop(&m);
}

/* The kernel model itself: a group cannot join a container with invalid vaddrs. */
static void test_model_group_add_while_invalid(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un),
                                             .flags = VFIO_DMA_UNMAP_FLAG_VADDR |
                                                      VFIO_DMA_UNMAP_FLAG_ALL };
    int gfd, cfd;

    fake_vfio_add_group(13, "0000:00:04.0", false);
    g_assert_cmpint(vmm_start(&m, false, &err), ==, 0);
    cfd = vfiocpr_container_fd(m.c);
    g_assert_cmpint(seam_unrecorded()->ioctl(cfd, VFIO_IOMMU_UNMAP_DMA, &un), ==, 0);
    gfd = seam_unrecorded()->open("/dev/vfio/13", O_RDWR);
    g_assert_cmpint(seam_unrecorded()->ioctl(gfd, VFIO_GROUP_SET_CONTAINER, &cfd), ==, -EBUSY);
    /* invalidating twice is refused too: the library must never try */
    g_assert_cmpint(seam_unrecorded()->ioctl(cfd, VFIO_IOMMU_UNMAP_DMA, &un), ==, -EINVAL);
    seam_unrecorded()->close(gfd);
    vmm_drop(&m);
}

static void test_cold_errors(void)
{
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL, c2 = NULL;
    g_autoptr(vfiocpr_device) dev = NULL;
    g_autoptr(GError) err = NULL;
    void *buf = g_malloc0(0x2000);
    int efd = tu_eventfd(0, EFD_CLOEXEC);

    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &c2, &err), ==, -EEXIST);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_device_open(c, 12, "0000:00:03.0", &dev, &err), ==, -ENOENT);
    g_assert_nonnull(strstr(err->message, "group 12 is not attached"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_container_add_group(c, 99, &err), ==, -ENOENT);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_device_group_id("0000:00:09.0", &err), ==, -ENODEV);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_container_add_group(c, 12, &err), >=, 0);
    g_assert_cmpint(vfiocpr_device_open(c, 12, "0000:00:04.0", &dev, &err), ==, -ENODEV);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x1000, 0x1000, buf, efd, 0, 3, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "not a registered memfd"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x1000, 0x2000, buf, -1, 0, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x2000, 0x1000, buf, -1, 0, 3, &err), ==, -EEXIST);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_unmap(c, 0x1000, 0x1000, &err), ==, -ENOENT);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_unmap(c, 0x1000, 0x2000, &err), ==, 0);
    g_assert_cmpuint(fake_vfio_dma_count(vfiocpr_container_fd(c)), ==, 0);
    g_assert_cmpint(vfiocpr_container_close(c, &err), ==, 0);
    close(efd);
    g_free(buf);
}

/* A group whose container cannot take the IOMMU type is taken out of it again and
 * closed: adding it once more works (groups are single-open). */
static void test_set_iommu_fails(void)
{
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL;
    g_autoptr(GError) err = NULL;

    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &c, &err), ==, 0);
    fake_vfio_fail_ioctl(VFIO_SET_IOMMU, 1, EINVAL);
    g_assert_cmpint(vfiocpr_container_add_group(c, 12, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "VFIO_SET_IOMMU"));
    g_clear_error(&err);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_UNSET_CONTAINER), ==, 1);
    g_assert_cmpint(vfiocpr_container_add_group(c, 12, &err), >=, 0);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_SET_IOMMU), ==, 2);
    g_assert_cmpint(vfiocpr_container_close(c, &err), ==, 0);
}

/* Two containers, each with its group and device: one invalidation each, both
 * restored, each range re-mapped in its own container. */
static void test_two_containers(void)
{
    const char *names[2] = { "c0", "c1" }, *bdfs[2] = { "0000:00:03.0", "0000:00:04.0" };
    const int groups[2] = { 12, 13 };
    g_autoptr(GError) err = NULL;
    vfiocpr *ctx = NULL;
    vfiocpr_container *c[2];
    vfiocpr_device *d[2];
    int ram, cfd[2], sfd;
    guint8 *va;

    fake_vfio_add_group(13, "0000:00:04.0", false);
    for (int gen = 0; gen < 2; gen++) {
        g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
        g_assert_cmpint(vfiocpr_is_restart(ctx), ==, gen == 1);
        ram = vfiocpr_fd_find(ctx, "ram", 0, VFIOCPR_FD_MEMFD, NULL);
        if (ram < 0) {
            ram = memfd_create("ram", MFD_CLOEXEC);
            g_assert_cmpint(ftruncate(ram, 0x200000), ==, 0);
            g_assert_cmpint(vfiocpr_fd_save(ctx, "ram", 0, ram, VFIOCPR_FD_MEMFD, &err), ==, 0);
        }
        va = mmap(NULL, 0x200000, PROT_READ | PROT_WRITE, MAP_SHARED, ram, 0);
        for (int i = 0; i < 2; i++) {
            g_assert_cmpint(vfiocpr_container_open(ctx, names[i], &c[i], &err), ==, 0);
            g_assert_cmpint(vfiocpr_container_add_group(c[i], groups[i], &err), >=, 0);
            g_assert_cmpint(vfiocpr_device_open(c[i], groups[i], bdfs[i], &d[i], &err), ==, 0);
            /* the same iova in both containers: separate address spaces */
            g_assert_cmpint(vfiocpr_dma_map(c[i], 0x100000, 0x100000, va + i * 0x100000, ram,
                                            i * 0x100000, 3, &err), ==, 0);
            if (gen == 0)
                cfd[i] = vfiocpr_container_fd(c[i]);
            g_assert_cmpint(vfiocpr_container_fd(c[i]), ==, cfd[i]);
        }
        g_assert_no_error(err);
        g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, 0);
        for (int i = 0; i < 2; i++) {
            guint64 vaddr = 0;
            g_assert_cmpint(fake_vfio_dma(cfd[i], 0x100000, NULL, &vaddr), ==, 1);
            g_assert_cmphex(vaddr, ==, (guint64)(uintptr_t)(va + i * 0x100000));
        }
        if (gen == 0) {
            sfd = fake_kernel_exec_ok(ctx, G_MAXUINT64);
            g_assert_cmpuint(fake_vfio_ioctls(VFIO_IOMMU_UNMAP_DMA), ==, 2);
            for (int i = 0; i < 2; i++)
                g_assert_cmpint(fake_vfio_dma(cfd[i], 0x100000, NULL, NULL), ==, 0);
            tu_set_state_fd(sfd);
        }
        for (int i = 0; i < 2; i++) {
            vfiocpr_device_unref(d[i]);
            vfiocpr_container_unref(c[i]);
        }
        vfiocpr_unref(ctx);
        munmap(va, 0x200000);
    }
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_SET_CONTAINER), ==, 2);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_SET_IOMMU), ==, 2);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_GET_DEVICE_FD), ==, 2);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
}

static void test_map_region(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    void *bar = NULL;
    guint64 size = 0;

    g_assert_cmpint(vmm_start(&m, false, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_map_region(m.dev, 0, &bar, &size, &err), ==, 0);
    g_assert_nonnull(bar);
    g_assert_cmpuint(size, ==, 0x1000);
    g_assert_cmpint(vfiocpr_device_map_region(m.dev, 2, &bar, &size, &err), ==, -ENOTSUP);
    vmm_drop(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add_vtable(path, 0, NULL, (GTestFixtureFunc)setup, (GTestFixtureFunc)fn, NULL)
    ADD("/container/cold-exec-restart", test_cold_exec_restart);
    ADD("/container/negative-control-device-closed", test_negative_control_device_closed);
    ADD("/container/finish-names-unmapped-ranges", test_finish_names_unmapped_ranges);
    ADD("/container/restart-bad-input", test_restart_bad_input);
    ADD("/container/blocker/unbacked", test_blocker_unbacked);
    ADD("/container/blocker/mdev", test_blocker_mdev);
    ADD("/container/blocker/mdev-after-restore", test_blocker_mdev_after_restore);
    ADD("/container/blocker/memlock", test_blocker_memlock);
    ADD("/container/restore-enomem", test_restore_enomem);
    ADD("/container/exec-fault-sweep", test_exec_fault_sweep);
    ADD("/container/model/group-add-while-invalid", test_model_group_add_while_invalid);
    ADD("/container/cold-errors", test_cold_errors);
    ADD("/container/set-iommu-fails", test_set_iommu_fails);
    ADD("/container/map-region", test_map_region);
    ADD("/container/two-containers", test_two_containers);
    return g_test_run();
}
