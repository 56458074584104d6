/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host tests with the real /dev/kvm (skipped cleanly without it): MSI routes and
 * irqfds of (fake) VFIO vectors on a real VM, detached for exec, rebuilt on a NEW VM
 * after restore. Whether an eventfd is attached to a VM is read back from KVM
 * itself: assigning the same eventfd again is EBUSY while it is attached. */
#include "config.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "fake-kernel.h"
#include "testutil.h"

#define BDF "0000:00:04.0"
#define NVEC 4

static int kvm_fd = -1;

static int new_vm(void)
{
    int vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
    g_assert_cmpint(vm, >=, 0);
    g_assert_cmpint(ioctl(vm, KVM_CREATE_IRQCHIP, 0), ==, 0);
    return vm;
}

/* 1 when efd is attached to vm (KVM refuses a second assign), 0 when not. */
static int attached(int vm, int efd, guint32 gsi)
{
    struct kvm_irqfd a = { .fd = (guint32)efd, .gsi = gsi };
    if (ioctl(vm, KVM_IRQFD, &a) == 0) {
        a.flags = KVM_IRQFD_FLAG_DEASSIGN;
        g_assert_cmpint(ioctl(vm, KVM_IRQFD, &a), ==, 0);
        return 0;
    }
    g_assert_cmpint(errno, ==, EBUSY);
    return 1;
}

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *d;
    int fds[NVEC];
    int intx, unmask;
} vmm;

static void vmm_start(vmm *m, int vm, int expect_pending)
{
    g_autoptr(GError) err = NULL;

    g_assert_cmpint(vfiocpr_new(0, &m->ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open(m->ctx, "c0", &m->c, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_add_group(m->c, 12, &err), >=, 0);
    g_assert_cmpint(vfiocpr_device_open(m->c, 12, BDF, &m->d, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_enable(m->d, VFIOCPR_IRQ_MSIX, 0, NVEC, NULL, m->fds, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_enable(m->d, VFIOCPR_IRQ_INTX, 0, 1, NULL, &m->intx, &err), ==, 0);
    m->unmask = vfiocpr_irq_intx_unmask(m->d, -1, &err);
    g_assert_cmpint(m->unmask, >=, 0);
    g_assert_cmpint(vfiocpr_irq_set_intx_gsi(m->d, 10, &err), ==, 0);
    for (unsigned i = 0; i < NVEC; i++)
        g_assert_cmpint(vfiocpr_irq_set_msi(m->d, VFIOCPR_IRQ_MSIX, i, 0xfee00000, 0x4030 + i,
                                            false, &err), ==, 0);
    g_assert_cmpint(vfiocpr_kvm_attach(m->ctx, vm, 40, NULL, NULL, &err), ==, expect_pending);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_finish(m->ctx, NULL, &err), ==, 0);
}

static void vmm_drop(vmm *m)
{
    vfiocpr_device_unref(m->d);
    vfiocpr_container_unref(m->c);
    vfiocpr_unref(m->ctx);
}

static void test_irqfds_follow_the_vm(void)
{
    vmm old = { 0 }, new = { 0 };
    int vm1, vm2, sfd;
    guint64 one = 1;
    g_autoptr(GError) err = NULL;

    if (kvm_fd < 0) {
        g_test_skip("no usable /dev/kvm");
        return;
    }
    fake_kernel_reset();
    fake_vfio_add_group(12, BDF, false);
    g_unsetenv(VFIOCPR_STATE_ENV);
    vm1 = new_vm();
    vmm_start(&old, vm1, 0);
    for (unsigned i = 0; i < NVEC; i++)
        g_assert_cmpint(attached(vm1, old.fds[i], 40 + i), ==, 1);
    g_assert_cmpint(attached(vm1, old.intx, 10), ==, 1);

    sfd = fake_kernel_exec_ok(old.ctx, G_MAXUINT64);
    /* detached from the old VM before exec: KVM accepts them again */
    for (unsigned i = 0; i < NVEC; i++)
        g_assert_cmpint(attached(vm1, old.fds[i], 40 + i), ==, 0);
    g_assert_cmpint(attached(vm1, old.intx, 10), ==, 0);
    /* an interrupt arrives while nothing is attached */
    g_assert_cmpint(write(old.fds[2], &one, 8), ==, 8);
    vmm_drop(&old);

    {
        g_autofree char *v = g_strdup_printf("%d", sfd);
        g_setenv(VFIOCPR_STATE_ENV, v, TRUE);
    }
    vm2 = new_vm();
    vmm_start(&new, vm2, 1); /* the one in the counter is reported, KVM injects it */
    /* (Not asked of vm1 now: on kernels where the irq bypass token is the eventfd,
     * an eventfd attached to vm2 is EBUSY for every VM. The detach from vm1 was
     * checked above, before this attach, which is also why the library detaches
     * explicitly before exec instead of leaving it to the old VM's teardown.) */
    for (unsigned i = 0; i < NVEC; i++)
        g_assert_cmpint(attached(vm2, new.fds[i], 40 + i), ==, 1);
    g_assert_cmpint(attached(vm2, new.intx, 10), ==, 1);

    /* negative control: the check sees a detach */
    g_assert_cmpint(vfiocpr_kvm_detach(new.ctx, &err), ==, 0);
    g_assert_cmpint(attached(vm2, new.fds[0], 40), ==, 0);
    vmm_drop(&new);
    close(vm1);
    close(vm2);
}

/* A failed exec re-attaches every irqfd to the old VM. */
static void test_rollback_reattaches(void)
{
    vmm m = { 0 };
    g_autoptr(GError) err = NULL;
    char *argv[] = { (char *)"x", NULL };
    int vm;

    if (kvm_fd < 0) {
        g_test_skip("no usable /dev/kvm");
        return;
    }
    fake_kernel_reset();
    fake_vfio_add_group(12, BDF, false);
    g_unsetenv(VFIOCPR_STATE_ENV);
    vm = new_vm();
    vmm_start(&m, vm, 0);
    g_assert_cmpint(vfiocpr_exec(m.ctx, "/nonexistent", argv, NULL, &err), ==, -ENOENT);
    for (unsigned i = 0; i < NVEC; i++)
        g_assert_cmpint(attached(vm, m.fds[i], 40 + i), ==, 1);
    g_assert_cmpint(attached(vm, m.intx, 10), ==, 1);
    vmm_drop(&m);
    close(vm);
}

/* One KVM_IRQFD call: -errno or 0, from the real kernel or from the fake. */
static int irqfd_call(bool real, int vm, int fd, guint32 gsi, guint32 flags)
{
    struct kvm_irqfd a = { .fd = (guint32)fd, .gsi = gsi, .flags = flags };
    if (real)
        return ioctl(vm, KVM_IRQFD, &a) == 0 ? 0 : -errno;
    return seam_unrecorded()->ioctl(vm, KVM_IRQFD, &a);
}

/* KVM_IRQFD as virt/kvm/eventfd.c has it, asked of the fake's VM and, where there is
 * a /dev/kvm, of a real one with the same expectations: an eventfd (not an fd number)
 * is assigned once whatever the GSI; a deassign matches eventfd and GSI and is 0
 * when nothing matches, leaving the irqfd attached. */
static void irqfd_semantics(bool real)
{
    int vm, e1, e2, dup1, mem, closed;
    const guint32 D = KVM_IRQFD_FLAG_DEASSIGN;

    if (real) {
        vm = new_vm();
    } else {
        int kvm;
        fake_kernel_reset();
        fake_kvm_enable();
        kvm = seam_unrecorded()->open("/dev/kvm", O_RDWR | O_CLOEXEC);
        g_assert_cmpint(kvm, >=, 0);
        vm = seam_unrecorded()->ioctl(kvm, KVM_CREATE_VM, NULL);
        g_assert_cmpint(vm, >=, 0);
    }
    e1 = eventfd(0, EFD_CLOEXEC);
    e2 = eventfd(0, EFD_CLOEXEC);
    dup1 = fcntl(e1, F_DUPFD_CLOEXEC, 0);
    mem = memfd_create("not-an-eventfd", MFD_CLOEXEC);
    closed = eventfd(0, EFD_CLOEXEC);
    g_assert_cmpint(e1 | e2 | dup1 | mem | closed, >=, 0);
    close(closed);

    g_assert_cmpint(irqfd_call(real, vm, e1, 5, 0), ==, 0);
    g_assert_cmpint(irqfd_call(real, vm, e1, 6, 0), ==, -EBUSY);   /* once, whatever the GSI */
    g_assert_cmpint(irqfd_call(real, vm, dup1, 7, 0), ==, -EBUSY); /* the eventfd, not the fd */
    g_assert_cmpint(irqfd_call(real, vm, e1, 6, D), ==, 0);        /* wrong GSI: no match, 0 */
    g_assert_cmpint(irqfd_call(real, vm, e1, 5, 0), ==, -EBUSY);   /* ...and still attached */
    g_assert_cmpint(irqfd_call(real, vm, e2, 5, D), ==, 0);        /* never assigned: 0 */
    g_assert_cmpint(irqfd_call(real, vm, dup1, 5, D), ==, 0);      /* through a dup */
    g_assert_cmpint(irqfd_call(real, vm, e1, 8, 0), ==, 0);        /* so it was detached */
    g_assert_cmpint(irqfd_call(real, vm, e1, 8, D), ==, 0);
    g_assert_cmpint(irqfd_call(real, vm, e1, 8, D), ==, 0);        /* twice: still 0 */
    g_assert_cmpint(irqfd_call(real, vm, mem, 5, D), ==, -EINVAL); /* not an eventfd */
    g_assert_cmpint(irqfd_call(real, vm, mem, 5, 0), ==, -EINVAL);
    g_assert_cmpint(irqfd_call(real, vm, closed, 5, D), ==, -EBADF);
    g_assert_cmpint(irqfd_call(real, vm, e2, 5, 0x80), ==, -EINVAL); /* unknown flag */
    if (!real) {
        g_assert_cmpuint(fake_kvm_irqfds(vm), ==, 0);
        g_assert_cmpint(irqfd_call(real, vm, e2, 9, 0), ==, 0);
        g_assert_cmpint(fake_kvm_irqfd_gsi(vm, e2), ==, 9);
        g_assert_cmpuint(fake_kvm_irqfds(vm), ==, 1);
    }
    close(e1);
    close(e2);
    close(dup1);
    close(mem);
    if (real)
        close(vm);
    else
        fake_kernel_reset();
}

static void test_irqfd_semantics(void)
{
    irqfd_semantics(false);
    if (kvm_fd < 0) {
        g_test_message("no usable /dev/kvm: the fake's answers were not compared with KVM's");
        return;
    }
    irqfd_semantics(true);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm_fd >= 0) {
        int vm = ioctl(kvm_fd, KVM_CREATE_VM, 0);
        if (vm < 0) {
            close(kvm_fd);
            kvm_fd = -1;
        } else {
            close(vm);
        }
    }
    g_test_add_func("/host-kvm/irqfds-follow-the-vm", test_irqfds_follow_the_vm);
    g_test_add_func("/host-kvm/rollback-reattaches", test_rollback_reattaches);
    g_test_add_func("/host-kvm/irqfd-semantics", test_irqfd_semantics);
    return g_test_run();
}
