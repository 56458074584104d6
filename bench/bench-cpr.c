/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark: DMA prepare + restore through the library vs the raw minimal ioctl
 * sequence doing the same kernel work (the floor), in one run, at 1, 100 and 10,000
 * mappings.
 *
 *   bench-cpr                 fake kernel: the library's own cost (ioctls ~free)
 *   bench-cpr --device BDF    real kernel (in the guest), device bound to vfio-pci
 *   --backend iommufd         either of them on the iommufd backend (the real kernel:
 *                             run-guest.sh --kernel iommufd)
 *
 * prepare = everything vfiocpr_exec() does before execve with DMA live: blockers,
 *           one UNMAP_DMA(VADDR|ALL) per container, state written and sealed, fds
 *           made inheritable. Floor: the one UNMAP_DMA ioctl.
 * restore = what the new image does: vfiocpr_new() + open container/group/device +
 *           N vfiocpr_dma_map() + vfiocpr_finish(). Floor: N MAP_DMA(VADDR) ioctls.
 * iommufd: nothing is invalidated, so prepare has no DMA ioctl at all (its floor is
 *           empty: no ratio), and restore re-maps nothing: its floor is the one
 *           IOMMU_IOAS_CHANGE_PROCESS that vfiocpr_finish() issues (here in the same
 *           process, where the kernel finds nothing to move).
 * Both run in this process: execve is replaced by a hook that stops the clock and
 * reports success, leaving vaddrs invalid and fds inheritable as a real exec does;
 * the restart path then runs against the preserved kernel objects.
 */
#include "config.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <string.h>

#include "../tests/fake-kernel.h"
#include "vfio-compat.h"

#define PAGE 4096ull
#define IOVA0 0x100000ull

static bool real;
static bool iommufd;
static const char *bdf = "0000:00:03.0";
static int group_id = 12;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

/* The installed kernel (real or fake) with execve replaced: it stops the clock and
 * reports success, so the vaddrs stay invalid and the fds inheritable exactly as
 * after a real exec, and the restore runs in this process against the preserved
 * objects. ioctls are counted. */
static const vfiocpr_kernel_ops *base;
static vfiocpr_kernel_ops wrapped;
static double t_execve;
static int state_fd = -1;
static unsigned n_ioctl;

static int w_execve(const char *path, char *const argv[], char *const envp[])
{
    const char *prefix = VFIOCPR_STATE_ENV "=";
    t_execve = now_us();
    for (gsize i = 0; envp[i]; i++)
        if (g_str_has_prefix(envp[i], prefix))
            state_fd = atoi(envp[i] + strlen(prefix));
    return 0;
}

static int w_ioctl(int fd, unsigned long req, void *arg)
{
    n_ioctl++;
    return base->ioctl(fd, req, arg);
}

static void install(void)
{
    base = vfiocpr_kernel;
    wrapped = *base;
    wrapped.execve = w_execve;
    wrapped.ioctl = w_ioctl;
    vfiocpr_kernel_set_ops(&wrapped);
}

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *d;
    int ram;
    guint8 *va;
} vmm;

static void die(GError *err, const char *what)
{
    fprintf(stderr, "bench-cpr: %s: %s\n", what, err ? err->message : g_strerror(errno));
    exit(1);
}

/* The VMM's start-up, cold or restart: the same calls. */
static void vmm_start(vmm *m, unsigned n)
{
    GError *err = NULL;
    if (vfiocpr_new(0, &m->ctx, &err) < 0)
        die(err, "vfiocpr_new");
    m->ram = vfiocpr_fd_find(m->ctx, "ram", 0, VFIOCPR_FD_MEMFD, NULL);
    if (m->ram < 0) {
        m->ram = memfd_create("ram", MFD_CLOEXEC);
        if (ftruncate(m->ram, (off_t)(n * PAGE)) < 0 ||
            vfiocpr_fd_save(m->ctx, "ram", 0, m->ram, VFIOCPR_FD_MEMFD, &err) < 0)
            die(err, "ram");
    }
    m->va = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, m->ram, 0);
    if (m->va == MAP_FAILED)
        die(NULL, "mmap");
    if (iommufd) {
        if (vfiocpr_container_open_backend(m->ctx, "c0", VFIOCPR_BACKEND_IOMMUFD, &m->c, &err) < 0 ||
            vfiocpr_device_attach(m->c, bdf, &m->d, &err) < 0)
            die(err, "open (iommufd)");
    } else if (vfiocpr_container_open(m->ctx, "c0", &m->c, &err) < 0 ||
               vfiocpr_container_add_group(m->c, group_id, &err) < 0 ||
               vfiocpr_device_open(m->c, group_id, bdf, &m->d, &err) < 0) {
        die(err, "open");
    }
    for (unsigned i = 0; i < n; i++)
        if (vfiocpr_dma_map(m->c, IOVA0 + i * PAGE, PAGE, m->va + i * PAGE, m->ram, i * PAGE, 3,
                            &err) < 0)
            die(err, "dma map");
    if (vfiocpr_finish(m->ctx, NULL, &err) < 0)
        die(err, "finish");
}

static void raw_remap(int cfd, guint8 *va, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct vfio_iommu_type1_dma_map mp = { .argsz = sizeof(mp),
                                               .flags = VFIO_DMA_MAP_FLAG_VADDR,
                                               .vaddr = (guint64)(uintptr_t)(va + i * PAGE),
                                               .iova = IOVA0 + i * PAGE, .size = PAGE };
        if (base->ioctl(cfd, VFIO_IOMMU_MAP_DMA, &mp) < 0)
            die(NULL, "raw MAP_DMA(VADDR)");
    }
}

typedef struct {
    double lib_prep, raw_prep, lib_rest, raw_rest;
    unsigned io_prep, io_rest;
} result;

static void run(unsigned n, result *res)
{
    vmm m = { 0 }, m2 = { 0 };
    GError *err = NULL;
    char *argv[] = { (char *)"new-vmm", NULL };
    struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un),
                                             .flags = VFIO_DMA_UNMAP_FLAG_VADDR |
                                                      VFIO_DMA_UNMAP_FLAG_ALL };
    int cfd;
    double t;

    if (!real) {
        fake_kernel_reset();
        if (iommufd)
            fake_iommufd_enable(true);
        fake_vfio_add_group(group_id, bdf, false);
        fake_kernel_set_memlock(G_MAXUINT64, true);
        install();
    }
    g_unsetenv(VFIOCPR_STATE_ENV);
    vmm_start(&m, n);
    cfd = vfiocpr_container_fd(m.c);

    /* the floor: the same kernel work with nothing around it */
    if (iommufd) {
        struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
        res->raw_prep = 0; /* nothing to invalidate */
        t = now_us();
        if (base->ioctl(cfd, IOMMU_IOAS_CHANGE_PROCESS, &cp) < 0)
            die(NULL, "raw IOMMU_IOAS_CHANGE_PROCESS");
        res->raw_rest = now_us() - t;
    } else {
        t = now_us();
        if (base->ioctl(cfd, VFIO_IOMMU_UNMAP_DMA, &un) < 0)
            die(NULL, "raw UNMAP_DMA(VADDR|ALL)");
        res->raw_prep = now_us() - t;
        t = now_us();
        raw_remap(cfd, m.va, n);
        res->raw_rest = now_us() - t;
    }

    /* the library: prepare up to execve... */
    n_ioctl = 0;
    t = now_us();
    if (vfiocpr_exec(m.ctx, "/usr/bin/new-vmm", argv, NULL, &err) < 0)
        die(err, "exec");
    res->lib_prep = t_execve - t;
    res->io_prep = n_ioctl;
    vfiocpr_device_unref(m.d);
    vfiocpr_container_unref(m.c);
    vfiocpr_unref(m.ctx); /* the old image is gone; its fds are not */
    munmap(m.va, n * PAGE);

    /* ...and the new image's start-up */
    {
        g_autofree char *v = g_strdup_printf("%d", state_fd);
        g_setenv(VFIOCPR_STATE_ENV, v, TRUE);
    }
    n_ioctl = 0;
    t = now_us();
    vmm_start(&m2, n);
    res->lib_rest = now_us() - t;
    res->io_rest = n_ioctl;

    if (vfiocpr_device_close(m2.d, &err) < 0 || vfiocpr_container_close(m2.c, &err) < 0)
        die(err, "close");
    vfiocpr_device_unref(m2.d);
    vfiocpr_container_unref(m2.c);
    vfiocpr_fd_forget(m2.ctx, "ram", 0);
    close(m2.ram);
    munmap(m2.va, n * PAGE);
    vfiocpr_unref(m2.ctx);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const unsigned sizes[] = { 1, 100, 10000 };
    unsigned io_prep0 = 0, io_rest0 = 0;
    bool ok = true;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            GError *err = NULL;
            real = true;
            bdf = argv[++i];
            group_id = vfiocpr_device_group_id(bdf, &err);
            if (group_id < 0)
                die(err, "group");
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc &&
                   (strcmp(argv[i + 1], "iommufd") == 0 || strcmp(argv[i + 1], "type1") == 0)) {
            iommufd = strcmp(argv[++i], "iommufd") == 0;
        } else {
            fprintf(stderr, "usage: %s [--device BDF] [--backend type1|iommufd]\n", argv[0]);
            return 2;
        }
    }
    if (real)
        install();
    printf("libvfiocpr %s: DMA prepare + restore, library vs raw ioctl floor (%s kernel, %s%s%s)\n",
           PACKAGE_VERSION, real ? "real" : "fake", iommufd ? "iommufd" : "type1",
           real ? ", device " : "", real ? bdf : "");
    printf("median of 5 runs; times in microseconds\n");
    printf("%8s %12s %12s %8s %12s %12s %8s %9s %9s\n", "mappings", "lib prep", "raw prep",
           "ratio", "lib restore", "raw restore", "ratio", "ioctl/prep", "ioctl/rest");
    for (gsize s = 0; s < G_N_ELEMENTS(sizes); s++) {
        double lp[5], rp[5], lr[5], rr[5], tot_lib, tot_raw;
        result r = { 0 };
        for (int k = 0; k < 5; k++) {
            run(sizes[s], &r);
            lp[k] = r.lib_prep;
            rp[k] = r.raw_prep;
            lr[k] = r.lib_rest;
            rr[k] = r.raw_rest;
        }
        qsort(lp, 5, sizeof(double), cmp_double);
        qsort(rp, 5, sizeof(double), cmp_double);
        qsort(lr, 5, sizeof(double), cmp_double);
        qsort(rr, 5, sizeof(double), cmp_double);
        if (iommufd)
            printf("%8u %12.1f %12s %8s %12.1f %12.1f %8.2f %9u %9u\n", sizes[s], lp[2], "none",
                   "-", lr[2], rr[2], lr[2] / rr[2], r.io_prep, r.io_rest);
        else
            printf("%8u %12.1f %12.1f %8.2f %12.1f %12.1f %8.2f %9u %9u\n", sizes[s], lp[2],
                   rp[2], lp[2] / rp[2], lr[2], rr[2], lr[2] / rr[2], r.io_prep, r.io_rest);
        tot_lib = lp[2] + lr[2];
        tot_raw = rp[2] + rr[2];
        printf("%8s prepare+restore: library %.1f us, floor %.1f us, ratio %.3f\n", "", tot_lib,
               tot_raw, tot_lib / tot_raw);
        if (iommufd) {
            /* neither side may grow with the mapping count: no per-range ioctl at all */
            if (s == 0) {
                io_prep0 = r.io_prep;
                io_rest0 = r.io_rest;
            }
            ok &= r.io_prep == io_prep0 && r.io_rest == io_rest0;
        } else {
            /* one DMA ioctl per container in prepare, whatever the mapping count */
            ok &= r.io_prep == 3; /* 2 extension probes + 1 UNMAP_DMA(VADDR|ALL) */
        }
    }
    if (iommufd)
        printf("prepare issues %u and restore %u ioctls at every size: %s\n", io_prep0, io_rest0,
               ok ? "none per mapping" : "NOT constant");
    else
        printf("prepare issues %s DMA ioctl per container (plus 2 extension probes) at every "
               "size\n", ok ? "one" : "NOT one");
    return ok ? 0 : 1;
}
