/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark: DMA prepare + restore through the library vs the raw minimal ioctl
 * sequence doing the same kernel work (the floor), in one run, at 1, 100 and 10,000
 * mappings.
 *
 *   bench-cpr [--backend type1|iommufd]...              fake kernel: the library's own
 *                                                       cost (ioctls ~free)
 *   bench-cpr --device BDF [--backend type1|iommufd]... real kernel (in the guest),
 *                                                       device bound to vfio-pci
 * Without --backend: both (type1 only on a real kernel without /dev/iommu).
 * --mappings N[,N...]: other mapping counts than 1,100,10000 (up to 8).
 * The state is prepared ahead (vfiocpr_state_prepare() after the start-up, outside
 * the measured prepare), as a VMM does once its guest runs; --no-prepare: not, the
 * exec encodes it.
 *
 * type1:
 * prepare = everything vfiocpr_exec() does before execve with DMA live: blockers,
 *           one UNMAP_DMA(VADDR|ALL) per container, state written and sealed, fds
 *           made inheritable. Floor: the one UNMAP_DMA ioctl.
 * restore = what the new image does: vfiocpr_new() + open container/group/device +
 *           N vfiocpr_dma_map() + vfiocpr_finish(). Floor: N MAP_DMA(VADDR) ioctls.
 * DMA blocked = from the UNMAP_DMA(VADDR|ALL) to the last MAP_DMA(VADDR): the time
 *           the device's DMA to guest RAM would wait in the kernel.
 * iommufd:
 * prepare = the same exec preparation; the kernel needs nothing (floor 0), the
 *           library probes IOMMU_IOAS_CHANGE_PROCESS once per container.
 * restore = the same start-up; floor: the one IOMMU_IOAS_CHANGE_PROCESS.
 * DMA blocked = 0: the mappings are by file and never invalid (checked: every
 *           mapping is still in the IOAS when execve is reached).
 * Both run in this process: execve is replaced by a hook that stops the clock and
 * reports success, leaving vaddrs invalid and fds inheritable as a real exec does;
 * the restart path then runs against the preserved kernel objects.
 */
#include "config.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <string.h>

#include "../tests/fake-kernel.h"
#include "vfio-compat.h"

#define PAGE 4096ull
#define IOVA0 0x100000ull

static bool real;
static const char *bdf = "0000:00:03.0";
static int group_id = 12;
static vfiocpr_backend backend = VFIOCPR_BACKEND_TYPE1;
static unsigned sizes[8] = { 1, 100, 10000 };
/* vfiocpr_state_prepare() before each exec (--no-prepare: the state encoded in it) */
static bool ahead = true;
static gsize n_sizes = 3;

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
static double t_execve, t_invalid, t_valid;
static int state_fd = -1;
static unsigned n_ioctl;
static bool all_mapped_at_execve;

static int w_execve(const char *path, char *const argv[], char *const envp[])
{
    const char *prefix = VFIOCPR_STATE_ENV "=";
    t_execve = now_us();
    all_mapped_at_execve = true;
    for (gsize i = 0; envp[i]; i++)
        if (g_str_has_prefix(envp[i], prefix))
            state_fd = atoi(envp[i] + strlen(prefix));
    return 0;
}

static int w_ioctl(int fd, unsigned long req, void *arg)
{
    int r;
    n_ioctl++;
    r = base->ioctl(fd, req, arg);
    if (req == VFIO_IOMMU_UNMAP_DMA && (((struct vfio_iommu_type1_dma_unmap *)arg)->flags &
                                        VFIO_DMA_UNMAP_FLAG_VADDR))
        t_invalid = now_us();
    if (req == VFIO_IOMMU_MAP_DMA && (((struct vfio_iommu_type1_dma_map *)arg)->flags &
                                      VFIO_DMA_MAP_FLAG_VADDR))
        t_valid = now_us();
    return r;
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
    if (vfiocpr_container_open_backend(m->ctx, "c0", backend, &m->c, &err) < 0 ||
        vfiocpr_device_attach(m->c, bdf, &m->d, &err) < 0)
        die(err, "open");
    for (unsigned i = 0; i < n; i++)
        if (vfiocpr_dma_map(m->c, IOVA0 + i * PAGE, PAGE, m->va + i * PAGE, m->ram, i * PAGE, 3,
                            &err) < 0)
            die(err, "dma map");
    if (vfiocpr_finish(m->ctx, NULL, &err) < 0)
        die(err, "finish");
}

/* The floor goes through the same counting wrapper as the library (w_ioctl), so
 * that the bench's own bookkeeping per ioctl is on both sides. */

/* Its own function so that a profile can single the restore out
 * (valgrind --tool=callgrind --toggle-collect=restore_vmm). */
static __attribute__((noinline)) void restore_vmm(vmm *m, unsigned n)
{
    vmm_start(m, n);
}

static __attribute__((noinline)) void raw_remap(int cfd, guint8 *va, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct vfio_iommu_type1_dma_map mp = { .argsz = sizeof(mp),
                                               .flags = VFIO_DMA_MAP_FLAG_VADDR,
                                               .vaddr = (guint64)(uintptr_t)(va + i * PAGE),
                                               .iova = IOVA0 + i * PAGE, .size = PAGE };
        if (wrapped.ioctl(cfd, VFIO_IOMMU_MAP_DMA, &mp) < 0)
            die(NULL, "raw MAP_DMA(VADDR)");
    }
}

static void raw_change_process(int ifd)
{
    struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
    if (wrapped.ioctl(ifd, IOMMU_IOAS_CHANGE_PROCESS, &cp) < 0)
        die(NULL, "raw IOMMU_IOAS_CHANGE_PROCESS");
}

static void evict_caches(void)
{
    static guint8 *junk;
    if (!junk)
        junk = g_malloc(16u << 20);
    memset(junk, (int)n_ioctl, 16u << 20);
}

typedef struct {
    double lib_prep, raw_prep, lib_rest, raw_rest, blocked;
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
        vfiocpr_prepared_verify = false; /* the tests' check, not the library's cost */
        fake_vfio_add_group(group_id, bdf, false);
        fake_kernel_set_memlock(G_MAXUINT64, true);
        fake_iommufd_enable(true);
        install();
    }
    g_unsetenv(VFIOCPR_STATE_ENV);
    vmm_start(&m, n);
    cfd = vfiocpr_container_fd(m.c);
    /* what a VMM does once its guest runs: the state encoded outside the blackout */
    if (ahead && vfiocpr_state_prepare(m.ctx, &err) < 0)
        die(err, "state prepare");

    /* the floor: the same kernel work with nothing around it, from caches as cold
     * as the library's (below) */
    evict_caches();
    if (backend == VFIOCPR_BACKEND_TYPE1) {
        t = now_us();
        if (wrapped.ioctl(cfd, VFIO_IOMMU_UNMAP_DMA, &un) < 0)
            die(NULL, "raw UNMAP_DMA(VADDR|ALL)");
        res->raw_prep = now_us() - t;
        t = now_us();
        raw_remap(cfd, m.va, n);
        res->raw_rest = now_us() - t;
    } else {
        res->raw_prep = 0; /* nothing to invalidate */
        t = now_us();
        raw_change_process(cfd); /* a no-op here, the same ioctl as after exec */
        res->raw_rest = now_us() - t;
    }
    t_invalid = t_valid = 0;

    /* the library: prepare up to execve, from caches as cold at every size (setting
     * up 10,000 mappings evicts the library's code and data; 1 does not)... */
    evict_caches();
    n_ioctl = 0;
    t = now_us();
    if (vfiocpr_exec(m.ctx, "/usr/bin/new-vmm", argv, NULL, &err) < 0)
        die(err, "exec");
    res->lib_prep = t_execve - t;
    res->io_prep = n_ioctl;
    if (backend == VFIOCPR_BACKEND_IOMMUFD && !real && fake_iommufd_maps(cfd, NULL) != n)
        all_mapped_at_execve = false;
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
    restore_vmm(&m2, n);
    res->lib_rest = now_us() - t;
    res->io_rest = n_ioctl;
    res->blocked = backend == VFIOCPR_BACKEND_TYPE1 ? t_valid - t_invalid : 0;

    if (vfiocpr_device_close(m2.d, &err) < 0 || vfiocpr_container_close(m2.c, &err) < 0)
        die(err, "close");
    vfiocpr_device_unref(m2.d);
    vfiocpr_container_unref(m2.c);
    vfiocpr_fd_forget(m2.ctx, "ram", 0);
    close(m2.ram);
    munmap(m2.va, n * PAGE);
    vfiocpr_unref(m2.ctx);
}

/* ------------------------------------------------------------------ state bytes
 * What the state holds for n_maps mappings, n_fds extra registered fds and n_vec
 * MSI-X vectors (each with its eventfd): the state memfd plus the DMA table memfds
 * (format 1.6), fake kernel. */
static gsize state_bytes(unsigned n_maps, unsigned n_fds, unsigned n_vec)
{
    g_autoptr(GBytes) blob = NULL;
    GError *err = NULL;
    vmm m = { 0 };
    int *efds = g_new0(int, n_fds + n_vec + 1), tfd = -1;
    gsize bytes;
    off_t size = 0;
    vfiocpr_fd_stat st;

    fake_kernel_reset();
    fake_vfio_add_group(group_id, bdf, false);
    fake_kernel_set_memlock(G_MAXUINT64, true);
    fake_iommufd_enable(true);
    fake_vfio_set_irq_count(VFIOCPR_IRQ_MSIX, MAX(n_vec, 1u), false);
    g_unsetenv(VFIOCPR_STATE_ENV);
    vmm_start(&m, n_maps);
    for (unsigned i = 0; i < n_fds + n_vec; i++) {
        efds[i] = eventfd(0, EFD_CLOEXEC);
        if (i < n_fds && vfiocpr_fd_save(m.ctx, "extra", i, efds[i], VFIOCPR_FD_EVENTFD, &err) < 0)
            die(err, "fd save");
    }
    if (n_vec && vfiocpr_irq_enable(m.d, VFIOCPR_IRQ_MSIX, 0, n_vec, efds + n_fds, NULL, &err) < 0)
        die(err, "irq enable");
    blob = fake_kernel_capture_state(m.ctx);
    bytes = g_bytes_get_size(blob);
    if (vfiocpr_fd_lookup(m.ctx, "vfio-dma-table:c0", 0, VFIOCPR_FD_MEMFD, &tfd, NULL) == 1 &&
        vfiocpr_kernel->fstat(tfd, &st, &size) == 0)
        bytes += (gsize)size;
    vfiocpr_device_unref(m.d);
    vfiocpr_container_unref(m.c);
    vfiocpr_unref(m.ctx);
    munmap(m.va, n_maps * PAGE);
    close(m.ram);
    for (unsigned i = 0; i < n_fds + n_vec; i++)
        close(efds[i]);
    g_free(efds);
    return bytes;
}

static bool bench_bytes(void)
{
    gsize one = state_bytes(1, 0, 1), maps = state_bytes(10001, 0, 1);
    gsize fds = state_bytes(1, 1000, 1), vecs = state_bytes(1, 0, 1001);
    double per_map = (double)(maps - one) / 10000, per_fd = (double)(fds - one) / 1000;
    double per_vec = (double)(vecs - one) / 1000;

    printf("\nstate bytes (state memfd + DMA tables, %s backend, fake kernel): %zu at 1 mapping, "
           "1 vector\n", vfiocpr_backend_to_string(backend), one);
    printf("  per mapping %.1f, per registered fd %.1f, per MSI-X vector %.1f (its eventfd's fd "
           "record included)\n", per_map, per_fd, per_vec);
    printf("  per mapping <= 48 bytes: %s\n", per_map <= 48.0 ? "yes" : "NO");
    return per_map <= 48.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static bool bench(void)
{
    /* type1: the one UNMAP_DMA(VADDR|ALL) (the extensions were probed when the group
     * joined); iommufd: none (CHANGE_PROCESS was probed when the IOAS was new) */
    unsigned want_prep = backend == VFIOCPR_BACKEND_TYPE1 ? 1 : 0;
    bool ok = true;

    printf("\n%s backend, DMA prepare + restore, library vs raw ioctl floor (%s kernel%s%s)\n",
           vfiocpr_backend_to_string(backend), real ? "real" : "fake", real ? ", device " : "",
           real ? bdf : "");
    printf("median of 5 runs; times in microseconds; state %s\n",
           ahead ? "prepared ahead (vfiocpr_state_prepare)" : "encoded in the exec (--no-prepare)");
    printf("%8s %12s %12s %8s %12s %12s %8s %9s %9s %12s\n", "mappings", "lib prep", "raw prep",
           "ratio", "lib restore", "raw restore", "ratio", "ioctl/prep", "ioctl/rest",
           "DMA blocked");
    for (gsize s = 0; s < n_sizes; s++) {
        double lp[5], rp[5], lr[5], rr[5], bl[5], tot_lib, tot_raw;
        result r = { 0 };
        for (int k = 0; k < 5; k++) {
            all_mapped_at_execve = false;
            run(sizes[s], &r);
            lp[k] = r.lib_prep;
            rp[k] = r.raw_prep;
            lr[k] = r.lib_rest;
            rr[k] = r.raw_rest;
            bl[k] = r.blocked;
            if (backend == VFIOCPR_BACKEND_IOMMUFD && !all_mapped_at_execve)
                ok = false;
        }
        qsort(lp, 5, sizeof(double), cmp_double);
        qsort(rp, 5, sizeof(double), cmp_double);
        qsort(lr, 5, sizeof(double), cmp_double);
        qsort(rr, 5, sizeof(double), cmp_double);
        qsort(bl, 5, sizeof(double), cmp_double);
        if (rp[2] > 0)
            printf("%8u %12.1f %12.1f %8.2f", sizes[s], lp[2], rp[2], lp[2] / rp[2]);
        else
            printf("%8u %12.1f %12s %8s", sizes[s], lp[2], "0 (none)", "-");
        printf(" %12.1f %12.1f %8.2f %9u %9u %12.1f\n", lr[2], rr[2], lr[2] / rr[2], r.io_prep,
               r.io_rest, bl[2]);
        tot_lib = lp[2] + lr[2];
        tot_raw = rp[2] + rr[2];
        printf("%8s prepare+restore: library %.1f us, floor %.1f us, ratio %.3f\n", "", tot_lib,
               tot_raw, tot_lib / tot_raw);
        /* a fixed number of ioctls in prepare, whatever the mapping count */
        ok &= r.io_prep == want_prep;
    }
    printf("prepare issues %s%u ioctls per container at every size (%s)\n", ok ? "" : "NOT ",
           want_prep, backend == VFIOCPR_BACKEND_TYPE1
                          ? "UNMAP_DMA(VADDR|ALL)"
                          : "every mapping still in the IOAS at execve");
    return ok;
}

int main(int argc, char **argv)
{
    vfiocpr_backend list[2];
    unsigned n_list = 0;
    bool ok = true;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            real = true;
            bdf = argv[++i];
        } else if (strcmp(argv[i], "--no-prepare") == 0) {
            ahead = false;
        } else if (strcmp(argv[i], "--mappings") == 0 && i + 1 < argc) {
            /* --mappings N[,N...]: other sizes (a profile of one size, say) */
            g_auto(GStrv) v = g_strsplit(argv[++i], ",", G_N_ELEMENTS(sizes));
            n_sizes = 0;
            for (gsize k = 0; v[k]; k++)
                if ((sizes[n_sizes++] = (unsigned)g_ascii_strtoull(v[k], NULL, 10)) == 0)
                    goto usage;
            if (!n_sizes)
                goto usage;
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc && n_list < 2) {
            i++;
            if (strcmp(argv[i], "type1") == 0)
                list[n_list++] = VFIOCPR_BACKEND_TYPE1;
            else if (strcmp(argv[i], "iommufd") == 0)
                list[n_list++] = VFIOCPR_BACKEND_IOMMUFD;
            else
                goto usage;
        } else {
            goto usage;
        }
    }
    if (!n_list) {
        list[n_list++] = VFIOCPR_BACKEND_TYPE1;
        if (!real || access("/dev/iommu", F_OK) == 0)
            list[n_list++] = VFIOCPR_BACKEND_IOMMUFD;
    }
    if (real)
        install();
    printf("libvfiocpr %s: bench-cpr\n", PACKAGE_VERSION);
    for (unsigned b = 0; b < n_list; b++) {
        backend = list[b];
        ok &= bench();
        if (!real)
            ok &= bench_bytes();
    }
    return ok ? 0 : 1;
usage:
    fprintf(stderr, "usage: %s [--device BDF] [--backend type1|iommufd]... "
            "[--mappings N[,N...]] [--no-prepare]\n", argv[0]);
    return 2;
}
