/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark: restoring N MSI-X vectors into a new KVM VM, through the library vs the
 * raw ioctl floor (one KVM_SET_GSI_ROUTING + N KVM_IRQFD), in one run, for 1, 64
 * and 2,048 vectors. The VFIO device is the fake kernel's (no SET_IRQS is issued on
 * a restart anyway); KVM is the real /dev/kvm when it works, the fake otherwise.
 *
 * library restore = vfiocpr_new() + open container/group/device + enable the
 *                   preserved vectors + record their MSI messages + vfiocpr_kvm_attach
 *                   + vfiocpr_finish(), in a fresh process image's order.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../tests/fake-kernel.h"

#define BDF "0000:00:04.0"

static bool real_kvm;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static unsigned n_routing;
static const vfiocpr_kernel_ops *base;
static vfiocpr_kernel_ops wrapped;
static int state_fd;

static int w_ioctl(int fd, unsigned long req, void *arg)
{
    n_routing += req == KVM_SET_GSI_ROUTING;
    return base->ioctl(fd, req, arg);
}

static int w_execve(const char *p, char *const a[], char *const e[])
{
    for (gsize i = 0; e[i]; i++)
        if (g_str_has_prefix(e[i], VFIOCPR_STATE_ENV "="))
            state_fd = atoi(e[i] + strlen(VFIOCPR_STATE_ENV "="));
    return 0;
}

static int new_vm(void)
{
    int kvm = vfiocpr_kernel->open("/dev/kvm", O_RDWR);
    int vm = vfiocpr_kernel->ioctl(kvm, KVM_CREATE_VM, NULL);
    if (vm < 0) {
        fprintf(stderr, "bench-irq: KVM_CREATE_VM: %s\n", g_strerror(-vm));
        exit(1);
    }
    if (real_kvm && vfiocpr_kernel->ioctl(vm, KVM_CREATE_IRQCHIP, NULL) < 0)
        exit(1);
    vfiocpr_kernel->close(kvm);
    return vm;
}

static void die(GError *e, const char *w)
{
    fprintf(stderr, "bench-irq: %s: %s\n", w, e ? e->message : "?");
    exit(1);
}

static void start(unsigned n, int vm, vfiocpr **ctx_out)
{
    g_autoptr(vfiocpr_container) c = NULL;
    g_autoptr(vfiocpr_device) d = NULL;
    GError *err = NULL;
    vfiocpr *ctx;

    if (vfiocpr_new(0, &ctx, &err) < 0 || vfiocpr_container_open(ctx, "c0", &c, &err) < 0 ||
        vfiocpr_container_add_group(c, 12, &err) < 0 ||
        vfiocpr_device_open(c, 12, BDF, &d, &err) < 0 ||
        vfiocpr_irq_enable(d, VFIOCPR_IRQ_MSIX, 0, n, NULL, NULL, &err) < 0)
        die(err, "start");
    for (unsigned i = 0; i < n; i++)
        vfiocpr_irq_set_msi(d, VFIOCPR_IRQ_MSIX, i, 0xfee00000 | (i % 4) << 12, 0x4020 + i % 200,
                            false, NULL);
    if (vfiocpr_kvm_attach(ctx, vm, 64, NULL, NULL, &err) < 0 || vfiocpr_finish(ctx, NULL, &err) < 0)
        die(err, "attach");
    *ctx_out = ctx;
}

static void run(unsigned n, double *lib, double *raw, unsigned *routings)
{
    vfiocpr *ctx, *ctx2;
    char *argv[] = { (char *)"x", NULL };
    GError *err = NULL;
    int vm1, vm2, vm3, *fds = g_new(int, n);
    gsize sz = sizeof(struct kvm_irq_routing) + n * sizeof(struct kvm_irq_routing_entry);
    struct kvm_irq_routing *rt = g_malloc0(sz);
    double t;

    fake_kernel_reset();
    if (!real_kvm)
        fake_kvm_enable();
    fake_vfio_add_group(12, BDF, false);
    fake_vfio_set_irq_count(2, 2048, false);
    base = vfiocpr_kernel;
    wrapped = *base;
    wrapped.ioctl = w_ioctl;
    wrapped.execve = w_execve;
    vfiocpr_kernel_set_ops(&wrapped);
    g_unsetenv(VFIOCPR_STATE_ENV);
    vm1 = new_vm();
    start(n, vm1, &ctx);
    if (vfiocpr_exec(ctx, "/x", argv, NULL, &err) < 0)
        die(err, "exec");
    vfiocpr_unref(ctx);
    {
        g_autofree char *v = g_strdup_printf("%d", state_fd);
        g_setenv(VFIOCPR_STATE_ENV, v, TRUE);
    }
    vm2 = new_vm();
    n_routing = 0;
    t = now_us();
    start(n, vm2, &ctx2);
    *lib = now_us() - t;
    *routings = n_routing;

    /* the floor: the same routes and irqfds on a third VM, nothing else */
    if (vfiocpr_kvm_detach(ctx2, &err) < 0)
        die(err, "detach");
    vm3 = new_vm();
    rt->nr = n;
    for (unsigned i = 0; i < n; i++) {
        rt->entries[i].gsi = 64 + i;
        rt->entries[i].type = KVM_IRQ_ROUTING_MSI;
        rt->entries[i].u.msi.address_lo = 0xfee00000 | (i % 4) << 12;
        rt->entries[i].u.msi.data = 0x4020 + i % 200;
    }
    for (unsigned i = 0; i < n; i++)
        fds[i] = vfiocpr_kernel->eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    t = now_us();
    if (base->ioctl(vm3, KVM_SET_GSI_ROUTING, rt) < 0)
        die(NULL, "raw routing");
    for (unsigned i = 0; i < n; i++) {
        struct kvm_irqfd a = { .fd = (guint32)fds[i], .gsi = 64 + i };
        if (base->ioctl(vm3, KVM_IRQFD, &a) < 0)
            die(NULL, "raw irqfd");
    }
    *raw = now_us() - t;
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
    vfiocpr_unref(ctx2);
    vfiocpr_kernel->close(vm1);
    vfiocpr_kernel->close(vm2);
    vfiocpr_kernel->close(vm3);
    g_free(fds);
    g_free(rt);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    const unsigned sizes[] = { 1, 64, 2048 };
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    bool ok = true;

    struct rlimit rl;

    /* 2,048 eventfds per image, several images' worth alive at once */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    real_kvm = kvm >= 0 && ioctl(kvm, KVM_CREATE_VM, 0) >= 0;
    printf("libvfiocpr %s: restore of MSI-X vectors into a new VM, library vs raw ioctl floor "
           "(%s KVM, fake VFIO device)\nmedian of 5; microseconds\n", PACKAGE_VERSION,
           real_kvm ? "real" : "fake");
    printf("%8s %12s %12s %8s %18s\n", "vectors", "library", "floor", "ratio", "GSI_ROUTING calls");
    for (gsize s = 0; s < G_N_ELEMENTS(sizes); s++) {
        double lib[5], raw[5];
        unsigned routings = 0;
        for (int k = 0; k < 5; k++)
            run(sizes[s], &lib[k], &raw[k], &routings);
        qsort(lib, 5, sizeof(double), cmp);
        qsort(raw, 5, sizeof(double), cmp);
        printf("%8u %12.1f %12.1f %8.2f %18u\n", sizes[s], lib[2], raw[2], lib[2] / raw[2],
               routings);
        ok &= routings == 1;
    }
    printf("one KVM_SET_GSI_ROUTING per restore, not per vector: %s\n", ok ? "yes" : "NO");
    return ok ? 0 : 1;
}
