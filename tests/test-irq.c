/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: interrupt vectors and KVM irqfds across exec, on the fake kernel
 * (VFIO SET_IRQS model and a fake KVM). */
#include "config.h"

#include <errno.h>
#include <linux/kvm.h>
#include <linux/vfio.h>

#include "fake-kernel.h"
#include "testutil.h"

#define BDF "0000:00:04.0"
#define NVEC 5

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *d;
    int fds[NVEC];
    int vm;
} vmm;

/* The VMM's start-up: device, MSI-X vectors with their messages, INTx unmask and a
 * KVM VM with irqfds. The same calls on a cold start and a restart. */
static int vmm_start(vmm *m, GError **error)
{
    int r;

    if ((r = vfiocpr_new(0, &m->ctx, error)) < 0 ||
        (r = vfiocpr_container_open(m->ctx, "c0", &m->c, error)) < 0 ||
        (r = vfiocpr_container_add_group(m->c, 12, error)) < 0 ||
        (r = vfiocpr_device_open(m->c, 12, BDF, &m->d, error)) < 0 ||
        (r = vfiocpr_irq_enable(m->d, VFIOCPR_IRQ_MSIX, 0, NVEC, NULL, m->fds, error)) < 0 ||
        (r = vfiocpr_irq_enable(m->d, VFIOCPR_IRQ_ERR, 0, 1, NULL, NULL, error)) < 0 ||
        (r = vfiocpr_irq_enable(m->d, VFIOCPR_IRQ_REQ, 0, 1, NULL, NULL, error)) < 0)
        return r;
    for (unsigned i = 0; i < NVEC; i++)
        if ((r = vfiocpr_irq_set_msi(m->d, VFIOCPR_IRQ_MSIX, i, 0xfee00000, 0x4020 + i, i == 4,
                                     error)) < 0)
            return r;
    m->vm = seam_kvm_vm();
    r = vfiocpr_kvm_attach(m->ctx, m->vm, 32, NULL, NULL, error);
    if (r < 0)
        return r;
    return vfiocpr_finish(m->ctx, NULL, error) < 0 ? -1 : r;
}

static void vmm_drop(vmm *m)
{
    vfiocpr_device_unref(m->d);
    vfiocpr_container_unref(m->c);
    vfiocpr_unref(m->ctx);
    m->d = NULL;
    m->c = NULL;
    m->ctx = NULL;
}

static void setup(void)
{
    fake_kernel_reset();
    fake_kvm_enable();
    g_unsetenv(VFIOCPR_STATE_ENV);
    fake_vfio_add_group(12, BDF, false);
}

static void test_cold_exec_restart(void)
{
    vmm old = { 0 }, new = { 0 };
    g_autoptr(GError) err = NULL;
    unsigned routes = 0;
    int old_fds[NVEC];
    guint64 one = 1;

    g_assert_cmpint(vmm_start(&old, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_SET_IRQS), ==, 3);
    g_assert_cmpuint(fake_vfio_irq_live(vfiocpr_device_fd(old.d), VFIO_PCI_MSIX_IRQ_INDEX), ==, NVEC);
    /* one routing update for all vectors; vector 4 is masked: no route, no irqfd */
    g_assert_cmpuint(fake_kvm_routings(old.vm, &routes), ==, 1);
    /* with no commit callback the irqchip's own routes are kept (GSI 0-23) */
    g_assert_cmpuint(fake_kvm_irqchip_routes(old.vm), ==, 40);
    g_assert_cmpuint(routes, ==, 40 + 4);
    g_assert_cmpuint(fake_kvm_irqfds(old.vm), ==, 4);
    for (unsigned i = 0; i < 4; i++)
        g_assert_cmpint(fake_kvm_irqfd_gsi(old.vm, old.fds[i]), ==, 32 + (int)i);
    memcpy(old_fds, old.fds, sizeof(old_fds));

    tu_set_state_fd(fake_kernel_exec_ok(old.ctx, G_MAXUINT64));
    g_assert_cmpuint(fake_kvm_irqfds(old.vm), ==, 0); /* detached before exec */
    /* the device raises vectors 1 and 3 during the exec: they wait in the counters */
    g_assert_cmpint(write(old_fds[1], &one, 8), ==, 8);
    g_assert_cmpint(write(old_fds[3], &one, 8), ==, 8);
    vmm_drop(&old);

    g_assert_cmpint(vmm_start(&new, &err), ==, 2); /* two pending, injected on attach */
    g_assert_no_error(err);
    for (unsigned i = 0; i < NVEC; i++)
        g_assert_cmpint(new.fds[i], ==, old_fds[i]);
    /* nothing re-requested: no SET_IRQS at all in the new image */
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_SET_IRQS), ==, 3);
    g_assert_cmpuint(fake_vfio_irq_rerequests(), ==, 0);
    /* the new VM gets the same routes and irqfds, in one routing update */
    g_assert_cmpuint(fake_kvm_routings(new.vm, &routes), ==, 1);
    g_assert_cmpuint(fake_kvm_irqchip_routes(new.vm), ==, 40);
    g_assert_cmpuint(routes, ==, 40 + 4);
    for (unsigned i = 0; i < 4; i++)
        g_assert_cmpint(fake_kvm_irqfd_gsi(new.vm, new.fds[i]), ==, 32 + (int)i);
    g_assert_cmpint(vfiocpr_irq_pending(new.d, VFIOCPR_IRQ_MSIX, 1), ==, 1);
    g_assert_cmpint(vfiocpr_irq_pending(new.d, VFIOCPR_IRQ_MSIX, 0), ==, 0);
    vmm_drop(&new);
}

/* Negative control for "no SET_IRQS on a reused device": the counter catches a
 * second enable of live vectors. */
static void test_negative_control_rerequest(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    int fd[NVEC];

    g_assert_cmpint(vmm_start(&m, &err), ==, 0);
    for (unsigned i = 0; i < NVEC; i++)
        fd[i] = m.fds[i];
    g_assert_cmpint(seam_unrecorded()->ioctl(vfiocpr_device_fd(m.d), VFIO_DEVICE_SET_IRQS,
                                          &(struct { struct vfio_irq_set s; int f[NVEC]; }){
                                              .s = { .argsz = sizeof(struct vfio_irq_set) + sizeof(fd),
                                                     .flags = VFIO_IRQ_SET_DATA_EVENTFD |
                                                              VFIO_IRQ_SET_ACTION_TRIGGER,
                                                     .index = VFIO_PCI_MSIX_IRQ_INDEX,
                                                     .count = NVEC } }),
                    ==, 0);
    g_assert_cmpuint(fake_vfio_irq_rerequests(), ==, 1);
    vmm_drop(&m);
}

static void test_enable_refusals(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    int memfd = tu_memfd_with("x", NULL, MFD_CLOEXEC);
    int efd = tu_eventfd(0, EFD_CLOEXEC);

    g_assert_cmpint(vfiocpr_new(0, &m.ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open(m.ctx, "c0", &m.c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_add_group(m.c, 12, &err), >=, 0);
    g_assert_cmpint(vfiocpr_device_open(m.c, 12, BDF, &m.d, &err), ==, 0);
    /* beyond the device's count */
    g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSIX, 3, 4, NULL, NULL, &err), ==, -EINVAL);
    g_assert_nonnull(strstr(err->message, "MSI-X vectors 3-6: the device has 5"));
    g_clear_error(&err);
    /* not an eventfd */
    g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSI, 0, 1, &memfd, NULL, &err), ==, -EBADFD);
    g_assert_nonnull(strstr(err->message, "not eventfd"));
    g_clear_error(&err);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_SET_IRQS), ==, 0);
    g_assert_cmpint(fcntl(memfd, F_GETFD), >=, 0); /* the caller's fd is not closed */
    /* the caller's own eventfd is fine */
    g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSI, 0, 1, &efd, NULL, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_fd(m.d, VFIOCPR_IRQ_MSI, 0), ==, efd);
    /* MSI cannot grow while live; a live vector cannot be enabled twice */
    g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSI, 0, 1, NULL, NULL, &err), ==, -EBUSY);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_irq_set_msi(m.d, VFIOCPR_IRQ_MSIX, 2, 0, 0, false, &err), ==, -ENOENT);
    g_clear_error(&err);
    /* a VM fd that is not a VM */
    g_assert_cmpint(vfiocpr_kvm_attach(m.ctx, efd, 32, NULL, NULL, &err), ==, -EBADFD);
    g_assert_nonnull(strstr(err->message, "is not a KVM VM (anon_inode:[eventfd])"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_irq_disable(m.d, VFIOCPR_IRQ_MSI, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_fd(m.d, VFIOCPR_IRQ_MSI, 0), ==, -ENOENT);
    vmm_drop(&m);
    close(memfd);
}

static void test_dynamic_msix(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    int sfd;

    fake_vfio_set_irq_count(VFIO_PCI_MSIX_IRQ_INDEX, 8, false);
    g_assert_cmpint(vmm_start(&m, &err), ==, 0);
    /* a vector added after start: only it is set, nothing live re-requested */
    g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSIX, 5, 1, NULL, NULL, &err), ==, 0);
    g_assert_cmpuint(fake_vfio_irq_rerequests(), ==, 0);
    sfd = fake_kernel_exec_ok(m.ctx, G_MAXUINT64);
    vmm_drop(&m);
    tu_set_state_fd(sfd);
    g_assert_cmpint(vmm_start(&m, &err), ==, 0);
    /* the dynamic vector is preserved too, and another one can still be added */
    g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSIX, 5, 1, NULL, NULL, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSIX, 6, 1, NULL, NULL, &err), ==, 0);
    g_assert_cmpuint(fake_vfio_irq_rerequests(), ==, 0);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_SET_IRQS), ==, 5);
    vmm_drop(&m);
    /* with NORESIZE the library refuses instead of re-requesting */
    setup();
    fake_vfio_set_irq_count(VFIO_PCI_MSIX_IRQ_INDEX, 8, true);
    g_assert_cmpint(vmm_start(&m, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSIX, 5, 1, NULL, NULL, &err), ==, -EBUSY);
    g_assert_nonnull(strstr(err->message, "NORESIZE"));
    vmm_drop(&m);
}

static void test_intx_resample(void)
{
    g_autoptr(GError) err = NULL;
    vmm m = { 0 };
    int trig, unmask, vm, sfd;

    for (int gen = 0; gen < 2; gen++) {
        g_assert_cmpint(vfiocpr_new(0, &m.ctx, &err), ==, 0);
        g_assert_cmpint(vfiocpr_container_open(m.ctx, "c0", &m.c, &err), ==, 0);
        g_assert_cmpint(vfiocpr_container_add_group(m.c, 12, &err), >=, 0);
        g_assert_cmpint(vfiocpr_device_open(m.c, 12, BDF, &m.d, &err), ==, 0);
        g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_INTX, 0, 1, NULL, &trig, &err), ==, 0);
        unmask = vfiocpr_irq_intx_unmask(m.d, -1, &err);
        g_assert_cmpint(unmask, >=, 0);
        g_assert_cmpint(vfiocpr_irq_set_intx_gsi(m.d, 10, &err), ==, 0);
        vm = seam_kvm_vm();
        g_assert_cmpint(vfiocpr_kvm_attach(m.ctx, vm, 32, NULL, NULL, &err), ==, 0);
        g_assert_cmpint(fake_kvm_irqfd_gsi(vm, trig), ==, 10);
        g_assert_cmpint(fake_vfio_unmask_fd(vfiocpr_device_fd(m.d)), ==, unmask);
        g_assert_cmpint(vfiocpr_finish(m.ctx, NULL, &err), ==, 0);
        if (gen == 0) {
            sfd = fake_kernel_exec_ok(m.ctx, G_MAXUINT64);
            g_assert_cmpuint(fake_kvm_irqfds(vm), ==, 0);
            tu_set_state_fd(sfd);
        }
        vmm_drop(&m);
    }
    /* INTx trigger + unmask set once, on the cold start */
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_SET_IRQS), ==, 2);
}

/* The VMM merges the routes into its own table: the library calls it once. */
static int commit_calls, commit_n;
static int commit(void *user, const vfiocpr_msi_route *routes, unsigned n, GError **error)
{
    commit_calls++;
    commit_n = (int)n;
    g_assert_cmpuint(routes[0].gsi, ==, 100);
    g_assert_cmphex(routes[1].data, ==, 0x4021);
    return 0;
}

static void test_commit_callback(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;

    g_assert_cmpint(vfiocpr_new(0, &m.ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open(m.ctx, "c0", &m.c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_add_group(m.c, 12, &err), >=, 0);
    g_assert_cmpint(vfiocpr_device_open(m.c, 12, BDF, &m.d, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSIX, 0, NVEC, NULL, m.fds, &err), ==, 0);
    for (unsigned i = 0; i < NVEC; i++)
        vfiocpr_irq_set_msi(m.d, VFIOCPR_IRQ_MSIX, i, 0xfee00000, 0x4020 + i, false, &err);
    m.vm = seam_kvm_vm();
    g_assert_cmpint(vfiocpr_kvm_attach(m.ctx, m.vm, 100, commit, NULL, &err), ==, 0);
    g_assert_cmpint(commit_calls, ==, 1);
    g_assert_cmpint(commit_n, ==, NVEC);
    g_assert_cmpuint(fake_kvm_routings(m.vm, NULL), ==, 0); /* the VMM did it */
    g_assert_cmpuint(fake_kvm_irqfds(m.vm), ==, NVEC);
    g_assert_cmpint(vfiocpr_kvm_attach(m.ctx, m.vm, 100, commit, NULL, &err), ==, -EALREADY);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_kvm_detach(m.ctx, &err), ==, 0);
    g_assert_cmpuint(fake_kvm_irqfds(m.vm), ==, 0);
    vmm_drop(&m);
}

/* Without a commit callback the library keeps the irqchip's routes; a VM with a
 * split irqchip refuses those, and gets the MSI routes alone. */
static void test_split_irqchip(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    unsigned routes = 0;

    g_assert_cmpint(vfiocpr_new(0, &m.ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open(m.ctx, "c0", &m.c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_add_group(m.c, 12, &err), >=, 0);
    g_assert_cmpint(vfiocpr_device_open(m.c, 12, BDF, &m.d, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSIX, 0, NVEC, NULL, m.fds, &err), ==, 0);
    for (unsigned i = 0; i < NVEC; i++)
        vfiocpr_irq_set_msi(m.d, VFIOCPR_IRQ_MSIX, i, 0xfee00000, 0x4020 + i, false, &err);
    m.vm = seam_kvm_vm();
    fake_kvm_split_irqchip(m.vm);
    g_assert_cmpint(vfiocpr_kvm_attach(m.ctx, m.vm, 100, NULL, NULL, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(fake_kvm_routings(m.vm, &routes), ==, 2); /* refused, then MSI only */
    g_assert_cmpuint(routes, ==, NVEC);
    g_assert_cmpuint(fake_kvm_irqchip_routes(m.vm), ==, 0);
    g_assert_cmpuint(fake_kvm_irqfds(m.vm), ==, NVEC);
    vmm_drop(&m);
}

/* Every kernel call of an exec with irqfds attached fails once: irqfds end up
 * attached to the old VM again, eventfds and flags as before. */
static void test_exec_fault_sweep(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    char *argv[] = { (char *)"x", NULL };
    unsigned total, fds;
    bool saw_deassign = false;

    g_assert_cmpint(vmm_start(&m, &err), ==, 0);
    fds = tu_count_open_fds();
    total = fake_kernel_exec_calls(m.ctx);
    g_assert_cmpuint(fake_kvm_irqfds(m.vm), ==, 4);
    for (unsigned n = 1; n <= total; n++) {
        unsigned base = fake_kernel_calls(FK_ANY);
        fk_op op;
        fake_kernel_fail(FK_ANY, base + n, EIO);
        g_assert_cmpint(vfiocpr_exec(m.ctx, "/x", argv, NULL, &err), ==, -EIO);
        op = fake_kernel_call_op(base + n);
        g_test_message("failing call %u (%s): %s", n, fake_kernel_op_name(op), err->message);
        saw_deassign |= strstr(err->message, "KVM_IRQFD deassign") != NULL;
        g_clear_error(&err);
        g_assert_cmpuint(fake_kvm_irqfds(m.vm), ==, 4);
        for (unsigned i = 0; i < 4; i++)
            g_assert_cmpint(fake_kvm_irqfd_gsi(m.vm, m.fds[i]), ==, 32 + (int)i);
        g_assert_cmpint(tu_cloexec(m.fds[0]), ==, 1);
        g_assert_cmpuint(tu_count_open_fds(), ==, fds);
    }
    g_assert_true(saw_deassign);
    vmm_drop(&m);
}

/* Every kernel call of a KVM attach fails once: a clear error, nothing left
 * attached, no eventfd closed; then a retry attaches everything. */
static void test_attach_fault_sweep(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    unsigned before, total, fds;

    g_assert_cmpint(vfiocpr_new(0, &m.ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open(m.ctx, "c0", &m.c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_add_group(m.c, 12, &err), >=, 0);
    g_assert_cmpint(vfiocpr_device_open(m.c, 12, BDF, &m.d, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSIX, 0, NVEC, NULL, m.fds, &err), ==, 0);
    for (unsigned i = 0; i < NVEC; i++)
        vfiocpr_irq_set_msi(m.d, VFIOCPR_IRQ_MSIX, i, 0xfee00000, 0x4020 + i, false, &err);
    m.vm = seam_kvm_vm();
    before = fake_kernel_calls(FK_ANY);
    g_assert_cmpint(vfiocpr_kvm_attach(m.ctx, m.vm, 32, NULL, NULL, &err), ==, 0);
    total = fake_kernel_calls(FK_ANY) - before;
    g_assert_cmpint(vfiocpr_kvm_detach(m.ctx, &err), ==, 0);
    fds = tu_count_open_fds();
    for (unsigned n = 1; n <= total; n++) {
        unsigned base = fake_kernel_calls(FK_ANY);
        int r;
        fake_kernel_fail(FK_ANY, base + n, EIO);
        r = vfiocpr_kvm_attach(m.ctx, m.vm, 32, NULL, NULL, &err);
        g_test_message("failing call %u (%s): %s", n, fake_kernel_op_name(fake_kernel_call_op(base + n)),
                       err ? err->message : "-");
        if (fake_kernel_call_op(base + n) == FK_READABLE) {
            /* only the pending count is affected: a vector it cannot poll is not counted */
            g_assert_cmpint(r, >=, 0);
            g_assert_cmpint(vfiocpr_kvm_detach(m.ctx, &err), ==, 0);
        } else {
            g_assert_cmpint(r, ==, -EIO);
            g_assert_nonnull(strstr(err->message, "kvm"));
            g_clear_error(&err);
        }
        g_assert_cmpuint(fake_kvm_irqfds(m.vm), ==, 0);
        g_assert_cmpuint(tu_count_open_fds(), ==, fds);
    }
    g_assert_cmpint(vfiocpr_kvm_attach(m.ctx, m.vm, 32, NULL, NULL, &err), ==, 0);
    g_assert_cmpuint(fake_kvm_irqfds(m.vm), ==, NVEC);
    vmm_drop(&m);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add_vtable(path, 0, NULL, (GTestFixtureFunc)setup, (GTestFixtureFunc)fn, NULL)
    ADD("/irq/cold-exec-restart", test_cold_exec_restart);
    ADD("/irq/negative-control-rerequest", test_negative_control_rerequest);
    ADD("/irq/enable-refusals", test_enable_refusals);
    ADD("/irq/dynamic-msix", test_dynamic_msix);
    ADD("/irq/intx-resample", test_intx_resample);
    ADD("/irq/commit-callback", test_commit_callback);
    ADD("/irq/split-irqchip", test_split_irqchip);
    ADD("/irq/exec-fault-sweep", test_exec_fault_sweep);
    ADD("/irq/attach-fault-sweep", test_attach_fault_sweep);
    return g_test_run();
}
