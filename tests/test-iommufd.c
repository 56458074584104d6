/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the iommufd backend across exec on the fake kernel's iommufd model
 * (tests/fake-kernel.c): IOAS, vfio cdevs bound once, mappings by file, pinned
 * memory charged per process and moved by CHANGE_PROCESS. The VMM-shaped start-up
 * below is the same code for the cold start and the restart, and the same as the
 * type1 one but for the backend it asks for. */
#include "config.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

#include "fake-kernel.h"
#include "golden-v1.h"
#include "testutil.h"
#include "vfio-compat.h"

#define RAM_SIZE (16u << 20)
#define N_MAPS 4
#define MAP_SIZE (RAM_SIZE / N_MAPS)
#define IOVA0 0x100000ull
#define BDF "0000:00:03.0"

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *dev;
    int ram;
    guint8 *va;
} vmm;

static vfiocpr_backend want_backend = VFIOCPR_BACKEND_AUTO;

static int vmm_start(vmm *m, bool restart_expected, bool finish, GError **error)
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
    m->va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->ram, 0);
    g_assert_true(m->va != MAP_FAILED);
    if ((r = vfiocpr_container_open_backend(m->ctx, "c0", want_backend, &m->c, error)) < 0)
        return r;
    if ((r = vfiocpr_device_attach(m->c, BDF, &m->dev, error)) < 0)
        return r;
    for (unsigned i = 0; i < N_MAPS; i++)
        if ((r = vfiocpr_dma_map(m->c, IOVA0 + i * MAP_SIZE, MAP_SIZE, m->va + i * MAP_SIZE,
                                 m->ram, i * MAP_SIZE, VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE,
                                 error)) < 0)
            return r;
    return finish ? vfiocpr_finish(m->ctx, NULL, error) : 0;
}

static void vmm_drop(vmm *m)
{
    vfiocpr_device_unref(m->dev);
    vfiocpr_container_unref(m->c);
    vfiocpr_unref(m->ctx);
    if (m->va)
        munmap(m->va, RAM_SIZE);
    memset(m, 0, sizeof(*m));
}

static void setup(void)
{
    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
    fake_vfio_add_group(12, BDF, false);
    fake_iommufd_enable(true);
    want_backend = VFIOCPR_BACKEND_AUTO;
}

/* every range of m mapped by file in the kernel */
static void assert_mapped(vmm *m)
{
    int ifd = vfiocpr_container_fd(m->c);
    g_assert_cmpuint(fake_iommufd_maps(ifd, NULL), ==, N_MAPS);
    for (unsigned i = 0; i < N_MAPS; i++) {
        bool by_file = false;
        g_assert_true(fake_iommufd_mapped(ifd, IOVA0 + i * MAP_SIZE, &by_file));
        g_assert_true(by_file);
    }
}

/* The heart: cold start, exec, restart with the same code. Nothing is invalidated,
 * the new image binds, attaches, allocates and maps nothing, and the pins move to it
 * with one CHANGE_PROCESS at finish. */
static void test_cold_exec_restart(void)
{
    vmm old = { 0 }, new = { 0 };
    g_autoptr(GError) err = NULL;
    guint32 devid = 0, hwpt = 0, devid2 = 0, hwpt2 = 0;
    guint64 here = 0;
    int ifd, dfd, sfd;

    g_assert_cmpint(vmm_start(&old, false, true, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_container_backend(old.c), ==, VFIOCPR_BACKEND_IOMMUFD);
    g_assert_cmpint(vfiocpr_container_ioas_id(old.c), ==, 1);
    g_assert_cmpint(vfiocpr_device_iommufd_ids(old.dev, &devid, &hwpt), ==, 0);
    g_assert_cmpuint(devid, ==, 2);
    g_assert_cmpuint(hwpt, ==, 3);
    ifd = vfiocpr_container_fd(old.c);
    dfd = vfiocpr_device_fd(old.dev);
    g_assert_cmpint(fake_iommufd_cdev_binding(dfd, NULL, NULL), ==, ifd);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_MAP_FILE), ==, N_MAPS);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_MAP), ==, 0);
    g_assert_cmpuint(fake_kernel_locked(), ==, RAM_SIZE);
    /* type1 objects were never touched */
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_SET_CONTAINER), ==, 0);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_GET_DEVICE_FD), ==, 0);

    /* probed when the IOAS was new and empty, not in the blackout */
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_CHANGE_PROCESS), ==, 1);
    sfd = fake_kernel_exec_ok(old.ctx, G_MAXUINT64);
    /* no probe and no invalidation of any kind in the exec */
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_CHANGE_PROCESS), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_UNMAP), ==, 0);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_IOMMU_UNMAP_DMA), ==, 0);
    g_assert_cmpint(fake_kernel_pretend_cloexec(ifd), ==, 0);
    g_assert_cmpint(fake_kernel_pretend_cloexec(dfd), ==, 0);
    vmm_drop(&old);
    /* a new process: the pins are still charged to the old one, DMA keeps going */
    g_assert_cmpuint(fake_kernel_locked(), ==, 0);

    tu_set_state_fd(sfd);
    g_assert_cmpint(vmm_start(&new, true, false, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_container_fd(new.c), ==, ifd);
    g_assert_cmpint(vfiocpr_device_fd(new.dev), ==, dfd);
    g_assert_cmpint(vfiocpr_container_ioas_id(new.c), ==, 1);
    g_assert_cmpint(vfiocpr_device_iommufd_ids(new.dev, &devid2, &hwpt2), ==, 0);
    g_assert_cmpuint(devid2, ==, devid);
    g_assert_cmpuint(hwpt2, ==, hwpt);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_ALLOC), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_BIND_IOMMUFD), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_ATTACH_IOMMUFD_PT), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_MAP_FILE), ==, N_MAPS);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_RESET), ==, 0);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    assert_mapped(&new);
    /* the pins move at finish, once */
    g_assert_cmpuint(fake_kernel_locked(), ==, 0);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_CHANGE_PROCESS), ==, 1);
    {
        g_autofree char *dump = vfiocpr_dump(new.ctx);
        g_assert_nonnull(strstr(dump, "container 'c0': iommufd IOAS 1 (pins pending), 4 DMA "
                                      "ranges (16777216 bytes)"));
    }
    g_assert_cmpint(vfiocpr_finish(new.ctx, NULL, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_CHANGE_PROCESS), ==, 2);
    g_assert_cmpuint(fake_kernel_locked(), ==, RAM_SIZE);
    fake_iommufd_maps(ifd, &here);
    g_assert_cmpuint(here, ==, RAM_SIZE);
    g_assert_cmpint(fake_kernel_pretend_cloexec(ifd), ==, 1);

    /* and again: a restarted VMM upgrades once more */
    sfd = fake_kernel_exec_ok(new.ctx, G_MAXUINT64);
    vmm_drop(&new);
    tu_set_state_fd(sfd);
    g_assert_cmpint(vmm_start(&new, true, true, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(fake_kernel_locked(), ==, RAM_SIZE);
    /* the second exec needs no probe either: the restart's finish proved it */
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_CHANGE_PROCESS), ==, 3);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    vmm_drop(&new);
}

/* Negative control of the accounting check above: without finish the pins stay
 * with the old process, which the fake shows (locked 0) and the next exec refuses. */
static void test_no_finish_is_seen(void)
{
    vmm old = { 0 }, new = { 0 };
    g_autoptr(GError) err = NULL;
    char *argv[] = { (char *)"x", NULL };

    g_assert_cmpint(vmm_start(&old, false, true, &err), ==, 0);
    tu_set_state_fd(fake_kernel_exec_ok(old.ctx, G_MAXUINT64));
    vmm_drop(&old);
    g_assert_cmpint(vmm_start(&new, true, false, &err), ==, 0);
    g_assert_cmpuint(fake_kernel_locked(), ==, 0);
    g_assert_cmpint(vfiocpr_exec(new.ctx, "/x", argv, NULL, &err), ==, -EBUSY);
    g_assert_nonnull(strstr(err->message, "still charged to the previous image"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_finish(new.ctx, NULL, &err), ==, 0);
    g_assert_cmpuint(fake_kernel_locked(), ==, RAM_SIZE);
    vmm_drop(&new);
}

static void exec_refused(vmm *m, int expect, const char *in_msg)
{
    g_autoptr(GError) err = NULL;
    char *argv[] = { (char *)"x", NULL };
    unsigned fds = tu_count_open_fds();

    g_assert_cmpint(vfiocpr_exec(m->ctx, "/x", argv, NULL, &err), ==, -expect);
    g_assert_error(err, VFIOCPR_ERROR, expect);
    g_test_message("refused: %s", err->message);
    g_assert_nonnull(strstr(err->message, in_msg));
    g_assert_cmpuint(fake_kernel_calls(FK_EXECVE), ==, 0);
    g_assert_cmpuint(tu_count_open_fds(), ==, fds);
    g_assert_cmpint(fake_kernel_pretend_cloexec(vfiocpr_device_fd(m->dev)), ==, 1);
}

/* A mapping by user address works (IOMMU_IOAS_MAP) but cannot cross an upgrade:
 * refused before anything, with the reason; gone, the exec goes ahead. */
static void test_blocker_user_va(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    char *argv[] = { (char *)"x", NULL };
    guint8 *anon = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    g_assert_cmpint(vmm_start(&m, false, true, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(m.c, 0x8000000, 0x10000, anon, -1, 0, 3, &err), ==, 0);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_MAP), ==, 1);
    exec_refused(&m, EINVAL, "0x8000000-0x800ffff is not backed by a registered memfd (mapped "
                             "by user address)");
    /* the kernel itself would refuse CHANGE_PROCESS: the probe says so too */
    {
        struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
        g_assert_cmpint(seam_unrecorded()->ioctl(vfiocpr_container_fd(m.c),
                                              IOMMU_IOAS_CHANGE_PROCESS, &cp), ==, -EINVAL);
    }
    g_assert_cmpint(vfiocpr_dma_unmap(m.c, 0x8000000, 0x10000, &err), ==, 0);
    fake_kernel_set_execve(NULL);
    g_assert_cmpint(vfiocpr_exec(m.ctx, "/x", argv, NULL, &err), ==, -ENOENT); /* reached execve */
    g_assert_cmpuint(fake_kernel_calls(FK_EXECVE), ==, 1);
    g_clear_error(&err);
    vmm_drop(&m);
    munmap(anon, 0x10000);
}

/* A kernel without CHANGE_PROCESS (before 6.14): the probe refuses the exec. */
static void test_blocker_no_change_process(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;

    fake_iommufd_enable(false);
    g_assert_cmpint(vmm_start(&m, false, true, &err), ==, 0);
    exec_refused(&m, ENOTSUP, "no IOMMU_IOAS_CHANGE_PROCESS");
    vmm_drop(&m);
}

/* The new image's memlock limit is too low: finish says why, changes nothing, stays in
 * restart mode, and succeeds once the limit is raised. */
static void test_finish_enomem_retry(void)
{
    vmm old = { 0 }, new = { 0 };
    g_autoptr(GError) err = NULL;

    g_assert_cmpint(vmm_start(&old, false, true, &err), ==, 0);
    tu_set_state_fd(fake_kernel_exec_ok(old.ctx, RAM_SIZE - 1));
    vmm_drop(&old);
    g_assert_cmpint(vmm_start(&new, true, false, &err), ==, 0);
    g_assert_cmpint(vfiocpr_finish(new.ctx, NULL, &err), ==, -ENOMEM);
    g_assert_error(err, VFIOCPR_ERROR, ENOMEM);
    g_assert_nonnull(strstr(err->message, "IOMMU_IOAS_CHANGE_PROCESS"));
    g_assert_nonnull(strstr(err->message, "RLIMIT_MEMLOCK"));
    g_assert_nonnull(strstr(err->message, "can be called again"));
    g_clear_error(&err);
    g_assert_true(vfiocpr_is_restart(new.ctx));
    g_assert_cmpuint(fake_kernel_locked(), ==, 0);
    assert_mapped(&new);
    fake_kernel_set_locked_limit(G_MAXUINT64); /* the operator raised it */
    g_assert_cmpint(vfiocpr_finish(new.ctx, NULL, &err), ==, 0);
    g_assert_false(vfiocpr_is_restart(new.ctx));
    g_assert_cmpuint(fake_kernel_locked(), ==, RAM_SIZE);
    vmm_drop(&new);
}

/* Restart-mode bad input: a clear error each, nothing unmapped, nothing closed. */
static void test_restart_bad_input(void)
{
    vmm old = { 0 };
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL, t1 = NULL;
    g_autoptr(vfiocpr_device) dev = NULL;
    guint8 *va;
    int ram, other, ifd;

    g_assert_cmpint(vmm_start(&old, false, true, &err), ==, 0);
    tu_set_state_fd(fake_kernel_exec_ok(old.ctx, G_MAXUINT64));
    vmm_drop(&old);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    ram = vfiocpr_fd_find(ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, &err);
    va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram, 0);
    other = memfd_create("other", MFD_CLOEXEC);
    g_assert_cmpint(ftruncate(other, RAM_SIZE), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(ctx, "other", 0, other, VFIOCPR_FD_MEMFD, &err), ==, 0);

    /* the preserved container is iommufd: asking for type1 is refused */
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "c0", VFIOCPR_BACKEND_TYPE1, &t1, &err),
                    ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "the preserved container is iommufd"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &t1, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "c0", VFIOCPR_BACKEND_IOMMUFD, &c, &err),
                    ==, 0);
    ifd = vfiocpr_container_fd(c);
    /* the group calls have no meaning here */
    g_assert_cmpint(vfiocpr_container_add_group(c, 12, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_device_open(c, 12, BDF, &dev, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "use vfiocpr_device_attach"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_device_attach(c, BDF, &dev, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(c, BDF, &dev, &err), ==, -EEXIST);
    g_clear_error(&err);
    /* a different size, other memory, another offset, other flags, no memfd */
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
    g_assert_cmpuint(fake_iommufd_maps(ifd, NULL), ==, N_MAPS);
    /* a range not provided again: finish names it and stays in restart mode */
    for (unsigned i = 0; i < N_MAPS - 1; i++)
        g_assert_cmpint(vfiocpr_dma_map(c, IOVA0 + i * MAP_SIZE, MAP_SIZE, va + i * MAP_SIZE, ram,
                                        i * MAP_SIZE, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, -ESTALE);
    g_assert_nonnull(strstr(err->message, "1 preserved DMA ranges were not re-mapped (iommufd"));
    g_assert_nonnull(strstr(err->message, "0xd00000-0x10fffff"));
    g_clear_error(&err);
    g_assert_true(vfiocpr_is_restart(ctx));
    /* the VMM no longer wants it: unmapping a preserved iommufd range works */
    g_assert_cmpint(vfiocpr_dma_unmap(c, IOVA0 + 3 * MAP_SIZE, MAP_SIZE, &err), ==, 0);
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, 0);
    g_assert_cmpuint(fake_iommufd_maps(ifd, NULL), ==, N_MAPS - 1);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    munmap(va, RAM_SIZE);
    close(other);
}

/* Cold-start errors name the device and the step, and leak nothing. */
static void test_cold_errors(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL, c2 = NULL;
    g_autoptr(vfiocpr_device) dev = NULL;
    unsigned fds = tu_count_open_fds();

    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "c0", 7, &c, &err), ==, -EINVAL);
    g_clear_error(&err);
    fake_vfio_fail_ioctl(IOMMU_IOAS_ALLOC, 1, ENOSPC);
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "c0", VFIOCPR_BACKEND_IOMMUFD, &c, &err),
                    ==, -ENOSPC);
    g_assert_nonnull(strstr(err->message, "container 'c0': IOMMU_IOAS_ALLOC"));
    g_clear_error(&err);
    g_assert_cmpuint(tu_count_open_fds(), ==, fds);
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "c0", VFIOCPR_BACKEND_IOMMUFD, &c, &err),
                    ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(c, "0000:00:09.0", &dev, &err), ==, -ENODEV);
    g_assert_nonnull(strstr(err->message, "device '0000:00:09.0': no vfio cdev in sysfs"));
    g_clear_error(&err);
    fake_vfio_fail_ioctl(VFIO_DEVICE_ATTACH_IOMMUFD_PT, 1, EBUSY);
    g_assert_cmpint(vfiocpr_device_attach(c, BDF, &dev, &err), ==, -EBUSY);
    g_assert_nonnull(strstr(err->message, "VFIO_DEVICE_ATTACH_IOMMUFD_PT to IOAS 1"));
    g_clear_error(&err);
    g_assert_cmpuint(vfiocpr_fd_count(ctx), ==, 1); /* the iommufd only */
    g_assert_cmpint(vfiocpr_device_attach(c, BDF, &dev, &err), ==, 0);
    /* a second container cannot bind the same cdev: the kernel binds once */
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "c1", VFIOCPR_BACKEND_IOMMUFD, &c2, &err),
                    ==, 0);
    g_clear_pointer(&dev, vfiocpr_device_unref);
    g_assert_cmpint(vfiocpr_device_attach(c2, BDF, &dev, &err), ==, -EEXIST);
    g_clear_error(&err);
    /* not a memfd the registry knows */
    {
        int mf = memfd_create("x", MFD_CLOEXEC);
        g_assert_cmpint(ftruncate(mf, 4096), ==, 0);
        g_assert_cmpint(vfiocpr_dma_map(c, 0, 4096, (void *)0x1000, mf, 0, 3, &err), ==, -EINVAL);
        g_assert_nonnull(strstr(err->message, "not a registered memfd"));
        g_clear_error(&err);
        close(mf);
    }
    /* AUTO without /dev/iommu is type1 */
    fake_kernel_reset();
    fake_vfio_add_group(12, BDF, false);
    {
        g_autoptr(vfiocpr) ctx2 = NULL;
        g_autoptr(vfiocpr_container) t = NULL;
        g_autoptr(vfiocpr_device) d = NULL;
        g_assert_cmpint(vfiocpr_new(0, &ctx2, &err), ==, 0);
        g_assert_cmpint(vfiocpr_container_open_backend(ctx2, "c0", VFIOCPR_BACKEND_AUTO, &t, &err),
                        ==, 0);
        g_assert_cmpint(vfiocpr_container_backend(t), ==, VFIOCPR_BACKEND_TYPE1);
        g_assert_cmpint(vfiocpr_container_ioas_id(t), ==, -ENOTTY);
        /* attach by name resolves the group for type1 */
        g_assert_cmpint(vfiocpr_device_attach(t, BDF, &d, &err), ==, 0);
        g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_SET_CONTAINER), ==, 1);
        g_assert_cmpint(vfiocpr_device_iommufd_ids(d, NULL, NULL), ==, -ENOTTY);
        g_assert_cmpint(vfiocpr_device_group(d), ==, 12);
    }
}

/* Every kernel call of an iommufd exec fails once: each ends rolled back, every
 * mapping still there by file, the pins where they were, flags restored, no fd
 * leaked. */
static void test_exec_fault_sweep(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    char *argv[] = { (char *)"x", NULL };
    unsigned total, fds;

    g_assert_cmpint(vmm_start(&m, false, true, &err), ==, 0);
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
        g_test_message("failing call %u (%s): %s", n, fake_kernel_op_name(op),
                       err ? err->message : "-");
        g_assert_cmpint(r, ==, -EIO);
        g_assert_nonnull(strstr(err->message, "rolled back"));
        g_clear_error(&err);
        assert_mapped(&m);
        g_assert_cmpuint(fake_kernel_locked(), ==, RAM_SIZE);
        g_assert_cmpint(tu_cloexec(m.ram), ==, 1);
        g_assert_cmpint(fake_kernel_pretend_cloexec(vfiocpr_device_fd(m.dev)), ==, 1);
        g_assert_cmpint(fake_kernel_pretend_cloexec(vfiocpr_container_fd(m.c)), ==, 1);
        g_assert_cmpuint(tu_count_open_fds(), ==, fds);
    }
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    vmm_drop(&m);
}

/* The VMM's whole restart (vfiocpr_new, open, attach, maps, finish) with each of
 * its kernel calls failing once: a clear error, nothing closed, the pins not half
 * moved, the mappings untouched; the same state then restores in a fresh image. */
static int restart_from(int sfd, vmm *m, GError **error)
{
    int r;

    tu_set_state_fd(sfd);
    /* KEEP_STATE keeps the memfd for the next round; the VMM code is the same */
    r = vfiocpr_new(VFIOCPR_NEW_KEEP_STATE, &m->ctx, error);
    if (r < 0)
        return r;
    r = m->ram = vfiocpr_fd_find(m->ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, error);
    if (r < 0)
        return r;
    m->va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->ram, 0);
    g_assert_true(m->va != MAP_FAILED);
    if ((r = vfiocpr_container_open_backend(m->ctx, "c0", VFIOCPR_BACKEND_AUTO, &m->c, error)) < 0)
        return r;
    if ((r = vfiocpr_device_attach(m->c, BDF, &m->dev, error)) < 0)
        return r;
    for (unsigned i = 0; i < N_MAPS; i++)
        if ((r = vfiocpr_dma_map(m->c, IOVA0 + i * MAP_SIZE, MAP_SIZE, m->va + i * MAP_SIZE,
                                 m->ram, i * MAP_SIZE, 3, error)) < 0)
            return r;
    return vfiocpr_finish(m->ctx, NULL, error);
}

static void test_restore_fault_sweep(void)
{
    vmm old = { 0 };
    g_autoptr(GError) err = NULL;
    unsigned n, fds;
    int sfd, ifd;

    g_assert_cmpint(vmm_start(&old, false, true, &err), ==, 0);
    ifd = vfiocpr_container_fd(old.c);
    sfd = fake_kernel_exec_ok(old.ctx, G_MAXUINT64);
    vmm_drop(&old);
    fds = tu_count_open_fds();
    for (n = 1;; n++) {
        vmm m = { 0 };
        unsigned base = fake_kernel_calls(FK_ANY);
        int r;

        fake_kernel_fail(FK_ANY, base + n, EIO);
        r = restart_from(sfd, &m, &err);
        if (fake_kernel_calls(FK_ANY) < base + n) {
            /* the restart made fewer calls than n: every one of them has failed once */
            fake_kernel_fail(FK_ANY, 0, 0);
            g_assert_cmpint(r, ==, 0);
            g_assert_no_error(err);
            g_assert_cmpuint(fake_kernel_locked(), ==, RAM_SIZE);
            vmm_drop(&m);
            break;
        }
        g_test_message("restart call %u (%s) failed: %s", n,
                       fake_kernel_op_name(fake_kernel_call_op(base + n)),
                       err ? err->message : "-");
        g_assert_cmpint(r, <, 0);
        g_assert_nonnull(err);
        g_clear_error(&err);
        g_assert_cmpuint(fake_kernel_locked(), ==, 0);
        g_assert_cmpuint(fake_iommufd_maps(ifd, NULL), ==, N_MAPS);
        g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
        g_assert_cmpint(fcntl(ifd, F_GETFD), >=, 0);
        vmm_drop(&m);
        g_assert_cmpuint(tu_count_open_fds(), ==, fds);
    }
    g_assert_cmpuint(n, >, 5);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_BIND_IOMMUFD), ==, 1);
    close(sfd);
    g_unsetenv(VFIOCPR_STATE_ENV);
}

/* Two devices in two IOAS, one iommufd each, across two upgrades. */
static void test_two_ioas(void)
{
    g_autoptr(GError) err = NULL;
    int ram, sfd, round;
    guint8 *va;

    fake_vfio_add_group(13, "0000:00:04.0", false);
    for (round = 0; round < 3; round++) {
        g_autoptr(vfiocpr) ctx = NULL;
        g_autoptr(vfiocpr_container) a = NULL, b = NULL;
        g_autoptr(vfiocpr_device) da = NULL, db = NULL;

        g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
        g_assert_cmpint(vfiocpr_is_restart(ctx), ==, round > 0);
        ram = vfiocpr_fd_find(ctx, "ram", 0, VFIOCPR_FD_MEMFD, NULL);
        if (ram < 0) {
            ram = memfd_create("ram", MFD_CLOEXEC);
            g_assert_cmpint(ftruncate(ram, 2 * MAP_SIZE), ==, 0);
            g_assert_cmpint(vfiocpr_fd_save(ctx, "ram", 0, ram, VFIOCPR_FD_MEMFD, &err), ==, 0);
        }
        va = mmap(NULL, 2 * MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram, 0);
        g_assert_cmpint(vfiocpr_container_open_backend(ctx, "a", VFIOCPR_BACKEND_IOMMUFD, &a,
                                                       &err), ==, 0);
        g_assert_cmpint(vfiocpr_container_open_backend(ctx, "b", VFIOCPR_BACKEND_IOMMUFD, &b,
                                                       &err), ==, 0);
        g_assert_cmpint(vfiocpr_container_fd(a), !=, vfiocpr_container_fd(b));
        g_assert_cmpint(vfiocpr_device_attach(a, BDF, &da, &err), ==, 0);
        if (round > 0) {
            /* a preserved device claimed through the wrong container */
            g_assert_cmpint(vfiocpr_device_attach(a, "0000:00:04.0", &db, &err), ==, -EINVAL);
            g_assert_nonnull(strstr(err->message, "in container 'b', not 'a'"));
            g_clear_error(&err);
        }
        g_assert_cmpint(vfiocpr_device_attach(b, "0000:00:04.0", &db, &err), ==, 0);
        g_assert_cmpint(vfiocpr_device_attach(a, "0000:00:04.0", &db, &err), ==, -EEXIST);
        g_clear_error(&err);
        g_assert_cmpint(vfiocpr_dma_map(a, IOVA0, MAP_SIZE, va, ram, 0, 3, &err), ==, 0);
        g_assert_cmpint(vfiocpr_dma_map(b, IOVA0, MAP_SIZE, va + MAP_SIZE, ram, MAP_SIZE, 3, &err),
                        ==, 0);
        g_assert_no_error(err);
        g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, 0);
        g_assert_cmpuint(fake_kernel_locked(), ==, 2 * MAP_SIZE);
        g_assert_cmpuint(fake_iommufd_maps(vfiocpr_container_fd(a), NULL), ==, 1);
        g_assert_cmpuint(fake_iommufd_maps(vfiocpr_container_fd(b), NULL), ==, 1);
        munmap(va, 2 * MAP_SIZE);
        sfd = fake_kernel_exec_ok(ctx, G_MAXUINT64);
        tu_set_state_fd(sfd);
    }
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_BIND_IOMMUFD), ==, 2);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_ALLOC), ==, 2);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    close(sfd);
    g_unsetenv(VFIOCPR_STATE_ENV);
}

/* Interrupts on a cdev device: SET_IRQS on the cold start only, the eventfds come
 * back and KVM routes are rebuilt on a new VM, as on a group device. */
static void test_irqs_and_kvm_on_cdev(void)
{
    g_autoptr(GError) err = NULL;
    int efd[2], sfd = -1;

    fake_kvm_enable();
    for (int round = 0; round < 2; round++) {
        vmm m = { 0 };
        int kvm, vm, out[2];

        g_assert_cmpint(vmm_start(&m, round == 1, false, &err), ==, 0);
        g_assert_no_error(err);
        g_assert_cmpint(vfiocpr_irq_enable(m.dev, VFIOCPR_IRQ_MSIX, 0, 2, NULL, out, &err), ==, 0);
        g_assert_no_error(err);
        if (round == 0) {
            efd[0] = out[0];
            efd[1] = out[1];
            g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_SET_IRQS), ==, 1);
        } else {
            g_assert_cmpint(out[0], ==, efd[0]);
            g_assert_cmpint(out[1], ==, efd[1]);
            g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_SET_IRQS), ==, 1);
            g_assert_cmpuint(fake_vfio_irq_rerequests(), ==, 0);
        }
        for (unsigned i = 0; i < 2; i++)
            g_assert_cmpint(vfiocpr_irq_set_msi(m.dev, VFIOCPR_IRQ_MSIX, i, 0xfee00000,
                                                0x40 + i, false, &err), ==, 0);
        g_assert_cmpint(vfiocpr_finish(m.ctx, NULL, &err), ==, 0);
        kvm = seam_unrecorded()->open("/dev/kvm", O_RDWR);
        vm = seam_unrecorded()->ioctl(kvm, KVM_CREATE_VM, 0);
        g_assert_cmpint(vfiocpr_kvm_attach(m.ctx, vm, 24, NULL, NULL, &err), >=, 0);
        g_assert_no_error(err);
        g_assert_cmpint(fake_kvm_irqfd_gsi(vm, efd[1]), ==, 25);
        if (round == 0)
            sfd = fake_kernel_exec_ok(m.ctx, G_MAXUINT64);
        /* the old image's VM is gone with it: its irqfds were detached by the exec */
        if (round == 0) {
            g_assert_cmpint(fake_kvm_irqfd_gsi(vm, efd[0]), ==, -1);
            tu_set_state_fd(sfd);
        }
        vmm_drop(&m);
    }
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
}

/* Migration v2 on a cdev device, as on a group device: save, load, running again. */
static void test_migration_on_cdev(void)
{
    static const guint8 blob[64] = "device state of the cdev device, sixty-four bytes long ....";
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    int out = memfd_create("state", MFD_CLOEXEC);
    guint8 back[64];
    guint64 bytes = 0;
    guint32 flags = 0;

    fake_mig_setup(VFIOCPR_MIG_FLAG_STOP_COPY | VFIOCPR_MIG_FLAG_P2P, blob, sizeof(blob), 0);
    g_assert_cmpint(vmm_start(&m, false, true, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_iommufd_ids(m.dev, NULL, NULL), ==, 0); /* a cdev */
    g_assert_cmpint(vfiocpr_mig_flags(m.dev, &flags, &err), ==, 0);
    g_assert_cmphex(flags, ==, VFIOCPR_MIG_FLAG_STOP_COPY | VFIOCPR_MIG_FLAG_P2P);
    g_assert_cmpint(vfiocpr_mig_set_state(m.dev, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RUNNING, &err), ==,
                    0);
    g_assert_cmpint(vfiocpr_mig_save(m.dev, out, &bytes, &err), ==, 0);
    g_assert_cmpuint(bytes, ==, sizeof(blob));
    g_assert_cmpint(pread(out, back, sizeof(back), 0), ==, sizeof(back));
    g_assert_cmpmem(back, sizeof(back), blob, sizeof(blob));
    g_assert_cmpint(lseek(out, 0, SEEK_SET), ==, 0);
    g_assert_cmpint(vfiocpr_mig_load(m.dev, out, sizeof(blob), &err), ==, 0);
    g_assert_cmpint(vfiocpr_mig_set_state(m.dev, VFIOCPR_MIG_RUNNING, VFIOCPR_MIG_ERROR, &err),
                    ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(fake_mig_state(vfiocpr_device_fd(m.dev)), ==, VFIOCPR_MIG_RUNNING);
    close(out);
    vmm_drop(&m);
}

/* type1 and iommufd containers in one context cross exec together. */
static void test_mixed_backends(void)
{
    g_autoptr(GError) err = NULL;
    int sfd = -1;

    fake_vfio_add_group(13, "0000:00:04.0", false);
    for (int round = 0; round < 2; round++) {
        g_autoptr(vfiocpr) ctx = NULL;
        g_autoptr(vfiocpr_container) t = NULL, i = NULL;
        g_autoptr(vfiocpr_device) dt = NULL, di = NULL;
        guint8 *va;
        int ram;

        g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
        ram = vfiocpr_fd_find(ctx, "ram", 0, VFIOCPR_FD_MEMFD, NULL);
        if (ram < 0) {
            ram = memfd_create("ram", MFD_CLOEXEC);
            g_assert_cmpint(ftruncate(ram, 2 * MAP_SIZE), ==, 0);
            g_assert_cmpint(vfiocpr_fd_save(ctx, "ram", 0, ram, VFIOCPR_FD_MEMFD, &err), ==, 0);
        }
        va = mmap(NULL, 2 * MAP_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ram, 0);
        g_assert_cmpint(vfiocpr_container_open_backend(ctx, "t", VFIOCPR_BACKEND_TYPE1, &t, &err),
                        ==, 0);
        g_assert_cmpint(vfiocpr_container_open_backend(ctx, "i", VFIOCPR_BACKEND_IOMMUFD, &i,
                                                       &err), ==, 0);
        g_assert_cmpint(vfiocpr_device_attach(t, BDF, &dt, &err), ==, 0);
        g_assert_cmpint(vfiocpr_device_attach(i, "0000:00:04.0", &di, &err), ==, 0);
        g_assert_cmpint(vfiocpr_dma_map(t, IOVA0, MAP_SIZE, va, ram, 0, 3, &err), ==, 0);
        g_assert_cmpint(vfiocpr_dma_map(i, IOVA0, MAP_SIZE, va + MAP_SIZE, ram, MAP_SIZE, 3, &err),
                        ==, 0);
        g_assert_no_error(err);
        g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, 0);
        g_assert_cmpint(fake_vfio_dma(vfiocpr_container_fd(t), IOVA0, NULL, NULL), ==, 1);
        if (round == 0) {
            g_autoptr(GBytes) blob = fake_kernel_capture_state(ctx);
            g_autoptr(GVariant) payload = NULL;
            g_autofree const char **req = NULL;
            g_assert_cmpint(vfiocpr_state_decode(blob, &payload, NULL, NULL, &err), ==, 0);
            g_assert_true(g_variant_lookup(payload, "required-features", "^a&s", &req));
            g_assert_cmpuint(g_strv_length((char **)req), ==, 3);
            g_assert_cmpstr(req[0], ==, "vfio-type1");
            g_assert_cmpstr(req[1], ==, "iommufd");
            g_assert_cmpstr(req[2], ==, "dma-table");
            sfd = fake_kernel_exec_ok(ctx, G_MAXUINT64);
            tu_set_state_fd(sfd);
        }
        munmap(va, 2 * MAP_SIZE);
    }
    /* type1 invalidated one container; iommufd moved its pins */
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_IOMMU_UNMAP_DMA), ==, 2); /* 1 per exec attempt */
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_BIND_IOMMUFD), ==, 1);
    g_assert_cmpuint(fake_kernel_locked(), ==, 2 * MAP_SIZE);
}

/* ------------------------------------------------------------ golden blob v1.3 */

/* The state a 1.3 writer made (tests/data/state-v1.3.bin, golden_v13_cold_start):
 * restored through the VMM path after recreating the same kernel objects. */
static void test_golden_v13_restore(void)
{
    g_autoptr(GBytes) blob = tu_read_file("state-v1.3.bin");
    g_autoptr(GVariant) payload = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL, i = NULL;
    g_autoptr(vfiocpr_device) dev = NULL, di = NULL;
    g_autoptr(GError) err = NULL;
    guint16 major, minor;
    guint32 devid = 0, hwpt = 0;
    int sfd, ifd;

    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, &major, &minor, &err), ==, 0);
    g_assert_cmpuint(major, ==, 1);
    g_assert_cmpuint(minor, ==, 3);
    vfiocpr_unref(golden_v13_cold_start());
    {
        /* the type1 container's vaddrs invalidated as the writer's exec did */
        struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un),
                                                 .flags = VFIO_DMA_UNMAP_FLAG_VADDR |
                                                          VFIO_DMA_UNMAP_FLAG_ALL };
        g_assert_cmpint(seam_unrecorded()->ioctl(950, VFIO_IOMMU_UNMAP_DMA, &un), ==, 0);
    }
    fake_vfio_new_process(G_MAXUINT64);
    sfd = tu_state_memfd(blob, true);
    tu_set_state_fd(sfd);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_container_open(ctx, "c0", &c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(c, "0000:00:03.0", &dev, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "i0", VFIOCPR_BACKEND_AUTO, &i, &err),
                    ==, 0);
    g_assert_cmpint(vfiocpr_container_backend(i), ==, VFIOCPR_BACKEND_IOMMUFD);
    ifd = vfiocpr_container_fd(i);
    g_assert_cmpint(vfiocpr_container_ioas_id(i), ==, 1);
    g_assert_cmpint(vfiocpr_device_attach(i, "0000:00:04.0", &di, &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_iommufd_ids(di, &devid, &hwpt), ==, 0);
    g_assert_cmpuint(devid, ==, 2);
    g_assert_cmpuint(hwpt, ==, 3);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x100000, 0x200000, (void *)0x7e0000000000ull,
                                    GOLDEN_V11_RAM_FD, 0, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(c, 0x40000000, 0x600000, (void *)0x7e0000200000ull,
                                    GOLDEN_V11_RAM_FD, 0x200000, 1, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(i, 0x100000, 0x100000, (void *)0x7e0000800000ull,
                                    GOLDEN_V11_RAM_FD, 0x0, 3, &err), ==, 0);
    g_assert_no_error(err);
    {
        int out[3];
        g_assert_cmpint(vfiocpr_fd_find(ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, &err), ==,
                        GOLDEN_V11_RAM_FD);
        g_assert_cmpint(vfiocpr_irq_enable(dev, VFIOCPR_IRQ_MSIX, 0, 3, NULL, out, &err), ==, 0);
        for (int v = 0; v < 3; v++)
            g_assert_cmpint(out[v], ==, GOLDEN_V12_EFD0 + v);
        g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_SET_IRQS), ==, 1); /* the writer's */
    }
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(fake_iommufd_maps(ifd, NULL), ==, 1);
    /* only the writer's cold start bound, attached and allocated anything */
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_BIND_IOMMUFD), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_ALLOC), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_MAP_FILE), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_RESET), ==, 0);
    g_assert_cmpuint(fake_kernel_locked(), ==, 0x100000 + 0x200000 + 0x600000);
}

/* Every byte of the 1.3 golden flipped: refused with a clear error, nothing closed. */
static void test_golden_v13_byte_flips(void)
{
    g_autoptr(GBytes) blob = tu_read_file("state-v1.3.bin");
    gsize len;
    const guint8 *p = g_bytes_get_data(blob, &len);
    unsigned fds;

    vfiocpr_unref(golden_v13_cold_start());
    fds = tu_count_open_fds();
    for (gsize at = 0; at < len; at++) {
        g_autofree guint8 *copy = g_memdup2(p, len);
        g_autoptr(GBytes) bad = NULL;
        g_autoptr(GError) err = NULL;
        vfiocpr *ctx = NULL;
        int sfd;

        copy[at] ^= 0xff;
        bad = g_bytes_new(copy, len);
        sfd = tu_state_memfd(bad, true);
        tu_set_state_fd(sfd);
        g_assert_cmpint(vfiocpr_new(0, &ctx, &err), <, 0);
        g_assert_null(ctx);
        g_assert_nonnull(err);
        close(sfd);
        g_assert_cmpuint(tu_count_open_fds(), ==, fds);
    }
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
}

/* The fake's own rules, which the tests above lean on. */
static void test_model(void)
{
    g_autoptr(GError) err = NULL;
    struct iommu_ioas_alloc a = { .size = sizeof(a) };
    struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
    int ifd, cdev, mf = memfd_create("m", MFD_CLOEXEC), ef = tu_eventfd(0, 0);

    g_assert_cmpint(ftruncate(mf, 0x200000), ==, 0);
    ifd = seam_unrecorded()->open("/dev/iommu", O_RDWR);
    g_assert_cmpint(seam_unrecorded()->ioctl(ifd, IOMMU_IOAS_ALLOC, &a), ==, 0);
    {
        struct iommu_ioas_map_file f = { .size = sizeof(f), .flags = IOMMU_IOAS_MAP_FIXED_IOVA,
                                         .ioas_id = a.out_ioas_id, .fd = ef, .length = 0x1000 };
        g_assert_cmpint(seam_unrecorded()->ioctl(ifd, IOMMU_IOAS_MAP_FILE, &f), ==, -EINVAL);
        f.fd = mf;
        f.length = 0x200000;
        g_assert_cmpint(seam_unrecorded()->ioctl(ifd, IOMMU_IOAS_MAP_FILE, &f), ==, 0);
        g_assert_cmpint(seam_unrecorded()->ioctl(ifd, IOMMU_IOAS_MAP_FILE, &f), ==, -EEXIST);
    }
    g_assert_cmpint(seam_unrecorded()->ioctl(ifd, IOMMU_IOAS_CHANGE_PROCESS, &cp), ==, 0);
    fake_vfio_new_process(0x1000);
    g_assert_cmpint(seam_unrecorded()->ioctl(ifd, IOMMU_IOAS_CHANGE_PROCESS, &cp), ==, -ENOMEM);
    g_assert_cmpuint(fake_kernel_locked(), ==, 0);
    fake_kernel_set_locked_limit(G_MAXUINT64);
    g_assert_cmpint(seam_unrecorded()->ioctl(ifd, IOMMU_IOAS_CHANGE_PROCESS, &cp), ==, 0);
    g_assert_cmpuint(fake_kernel_locked(), ==, 0x200000);
    cdev = seam_unrecorded()->open("/dev/vfio/devices/vfio12", O_RDWR);
    g_assert_cmpint(cdev, >=, 0);
    {
        struct vfio_device_bind_iommufd b = { .argsz = sizeof(b), .iommufd = ifd };
        struct vfio_region_info ri = { .argsz = sizeof(ri) };
        g_assert_cmpint(seam_unrecorded()->ioctl(cdev, VFIO_DEVICE_GET_REGION_INFO, &ri), ==, -EINVAL);
        g_assert_cmpint(seam_unrecorded()->ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, &b), ==, 0);
        g_assert_cmpint(seam_unrecorded()->ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, &b), ==, -EINVAL);
        g_assert_cmpint(seam_unrecorded()->ioctl(cdev, VFIO_DEVICE_GET_REGION_INFO, &ri), ==, 0);
    }
    g_assert_cmpint(seam_unrecorded()->close(cdev), ==, 0);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 1);
    g_assert_cmpint(seam_unrecorded()->close(ifd), ==, 0);
    g_assert_cmpuint(fake_kernel_locked(), ==, 0);
    close(mf);
    close(ef);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add_vtable(path, 0, NULL, (GTestFixtureFunc)setup, (GTestFixtureFunc)fn, NULL)
    ADD("/iommufd/cold-exec-restart", test_cold_exec_restart);
    ADD("/iommufd/negative-control-no-finish", test_no_finish_is_seen);
    ADD("/iommufd/blocker/user-va", test_blocker_user_va);
    ADD("/iommufd/blocker/no-change-process", test_blocker_no_change_process);
    ADD("/iommufd/finish-enomem-retry", test_finish_enomem_retry);
    ADD("/iommufd/restart-bad-input", test_restart_bad_input);
    ADD("/iommufd/cold-errors", test_cold_errors);
    ADD("/iommufd/exec-fault-sweep", test_exec_fault_sweep);
    ADD("/iommufd/restore-fault-sweep", test_restore_fault_sweep);
    ADD("/iommufd/two-ioas", test_two_ioas);
    ADD("/iommufd/irqs-and-kvm-on-cdev", test_irqs_and_kvm_on_cdev);
    ADD("/iommufd/mixed-backends", test_mixed_backends);
    ADD("/iommufd/migration-on-cdev", test_migration_on_cdev);
    ADD("/iommufd/golden-v1.3-restore", test_golden_v13_restore);
    ADD("/iommufd/golden-v1.3-byte-flips", test_golden_v13_byte_flips);
    ADD("/iommufd/model", test_model);
    return g_test_run();
}
