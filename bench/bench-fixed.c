/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark: the library's fixed cost of one upgrade, at 1 DMA mapping and 6 fds
 * (RAM memfd, container, group or iommufd + cdev, device, 2 eventfds), fake kernel:
 * prepare (vfiocpr_exec() up to execve) + restore (vfiocpr_new(), the VMM's
 * start-up calls, one vfiocpr_dma_map()) + finish (vfiocpr_finish()), each timed
 * on its own, median of many runs; also how many seam ops of each interesting kind
 * the restore issued (fd_path = readlink of /proc/self/fd/N).
 *
 *   bench-fixed [--backend type1|iommufd]... [--runs N] [--no-prepare] fake kernel
 *   bench-fixed --device BDF|auto [--backend type1|iommufd]... [--runs N]
 *                                        real kernel (the guest), a device bound to
 *                                        vfio-pci (auto: the first one bound)
 *
 * Like bench-cpr, everything runs in this process with execve replaced by a hook,
 * so the code is warm: what is measured is the library's own work, not first-use
 * costs of a fresh image (those are seen in the guest, through a real exec).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../tests/fake-kernel.h"

#define PAGE 4096ull
#define IOVA0 0x100000ull

static bool real;
static const char *bdf = "0000:00:03.0";
static vfiocpr_backend backend = VFIOCPR_BACKEND_TYPE1;
/* vfiocpr_state_prepare() before each exec (--no-prepare: the state encoded in it) */
static bool ahead = true;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static const vfiocpr_kernel_ops *base;
static vfiocpr_kernel_ops wrapped;
static double t_execve;
static int state_fd = -1;
static unsigned n_fd_path, n_fstat, n_ops;

static int w_execve(const char *path, char *const argv[], char *const envp[])
{
    const char *prefix = VFIOCPR_STATE_ENV "=";
    t_execve = now_us();
    for (gsize i = 0; envp[i]; i++)
        if (g_str_has_prefix(envp[i], prefix))
            state_fd = atoi(envp[i] + strlen(prefix));
    return 0;
}

/* Time spent inside the seam's ops (the kernel's share, system calls), kept apart
 * from the library's own code; and how many ops were issued. */
static double t_ops;
static unsigned n_calls;
#define TIMED(expr)                         \
    G_STMT_START {                          \
        double t0_ = now_us();              \
        n_calls++;                          \
        r_ = (expr);                        \
        t_ops += now_us() - t0_;            \
    } G_STMT_END

static int w_fd_path(int fd, char *buf, size_t len)
{
    int r_;
    n_fd_path++;
    TIMED(base->fd_path(fd, buf, len));
    return r_;
}

static int w_fstat(int fd, vfiocpr_fd_stat *st, off_t *size)
{
    int r_;
    n_fstat++;
    TIMED(base->fstat(fd, st, size));
    return r_;
}

static int w_ioctl(int fd, unsigned long req, void *arg)
{
    int r_;
    n_ops++;
    TIMED(base->ioctl(fd, req, arg));
    return r_;
}

#define WRAP1(name, T, A)                                  \
    static T w_##name(A a)                                 \
    {                                                      \
        T r_;                                              \
        TIMED(base->name(a));                              \
        return r_;                                         \
    }
#define WRAP2(name, T, A, B)                               \
    static T w_##name(A a, B b)                            \
    {                                                      \
        T r_;                                              \
        TIMED(base->name(a, b));                           \
        return r_;                                         \
    }
#define WRAP3(name, T, A, B, C)                            \
    static T w_##name(A a, B b, C c)                       \
    {                                                      \
        T r_;                                              \
        TIMED(base->name(a, b, c));                        \
        return r_;                                         \
    }
#define WRAP4(name, T, A, B, C, D)                         \
    static T w_##name(A a, B b, C c, D d)                  \
    {                                                      \
        T r_;                                              \
        TIMED(base->name(a, b, c, d));                     \
        return r_;                                         \
    }
WRAP2(memfd_create, int, const char *, unsigned int)
WRAP4(pwrite, ssize_t, int, const void *, size_t, off_t)
WRAP4(pread, ssize_t, int, void *, size_t, off_t)
WRAP1(get_cloexec, int, int)
WRAP2(set_cloexec, int, int, bool)
WRAP2(cloexec_range, int, int, int)
WRAP1(get_seals, int, int)
WRAP2(add_seals, int, int, int)
WRAP1(close, int, int)
WRAP2(open, int, const char *, int)
WRAP3(readlink, int, const char *, char *, size_t)
WRAP2(munmap, int, void *, size_t)
WRAP1(readable, int, int)
WRAP3(fdinfo, int, int, char *, size_t)

static int w_mmap(int fd, size_t len, int prot, off_t off, void **addr)
{
    int r_;
    TIMED(base->mmap(fd, len, prot, off, addr));
    return r_;
}

static void install(void)
{
    base = vfiocpr_kernel;
    wrapped = *base;
    wrapped.execve = w_execve;
    wrapped.fd_path = w_fd_path;
    wrapped.fstat = w_fstat;
    wrapped.ioctl = w_ioctl;
    wrapped.memfd_create = w_memfd_create;
    wrapped.pwrite = w_pwrite;
    wrapped.pread = w_pread;
    wrapped.get_cloexec = w_get_cloexec;
    wrapped.set_cloexec = w_set_cloexec;
    wrapped.cloexec_range = w_cloexec_range;
    wrapped.get_seals = w_get_seals;
    wrapped.add_seals = w_add_seals;
    wrapped.close = w_close;
    wrapped.open = w_open;
    wrapped.readlink = w_readlink;
    wrapped.mmap = w_mmap;
    wrapped.munmap = w_munmap;
    wrapped.readable = w_readable;
    wrapped.fdinfo = w_fdinfo;
    vfiocpr_kernel_set_ops(&wrapped);
}

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *d;
    int ram, ev[2];
    guint8 *va;
} vmm;

static void die(GError *err, const char *what)
{
    fprintf(stderr, "bench-fixed: %s: %s\n", what, err ? err->message : g_strerror(errno));
    exit(1);
}

/* The VMM's start-up, cold or restart: the same calls, up to the DMA map. */
static void vmm_start(vmm *m)
{
    GError *err = NULL;

    if (vfiocpr_new(0, &m->ctx, &err) < 0)
        die(err, "vfiocpr_new");
    m->ram = vfiocpr_fd_find(m->ctx, "ram", 0, VFIOCPR_FD_MEMFD, NULL);
    if (m->ram < 0) {
        m->ram = memfd_create("ram", MFD_CLOEXEC);
        if (ftruncate(m->ram, (off_t)PAGE) < 0 ||
            vfiocpr_fd_save(m->ctx, "ram", 0, m->ram, VFIOCPR_FD_MEMFD, &err) < 0)
            die(err, "ram");
    }
    for (int i = 0; i < 2; i++) {
        int r = vfiocpr_fd_lookup(m->ctx, "ev", (guint64)i, VFIOCPR_FD_EVENTFD, &m->ev[i], &err);
        if (r < 0)
            die(err, "eventfd lookup");
        if (r == 0) {
            m->ev[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            if (vfiocpr_fd_save(m->ctx, "ev", (guint64)i, m->ev[i], VFIOCPR_FD_EVENTFD, &err) < 0)
                die(err, "eventfd");
        }
    }
    m->va = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, m->ram, 0);
    if (m->va == MAP_FAILED)
        die(NULL, "mmap");
    if (vfiocpr_container_open_backend(m->ctx, "c0", backend, &m->c, &err) < 0 ||
        vfiocpr_device_attach(m->c, bdf, &m->d, &err) < 0)
        die(err, "open");
    if (vfiocpr_dma_map(m->c, IOVA0, PAGE, m->va, m->ram, 0, 3, &err) < 0)
        die(err, "dma map");
}

typedef struct {
    double prep, rest, fin, kern;
    unsigned fds, fd_path, fstat, ioctls, calls;
} result;

static void run(result *res)
{
    vmm m = { 0 }, m2 = { 0 };
    GError *err = NULL;
    char *argv[] = { (char *)"new-vmm", NULL };
    double t;

    if (!real) {
        fake_kernel_reset();
        vfiocpr_prepared_verify = false; /* the tests' check, not the library's cost */
        fake_vfio_add_group(12, bdf, false);
        fake_kernel_set_memlock(G_MAXUINT64, true);
        fake_iommufd_enable(true);
    }
    install();
    g_unsetenv(VFIOCPR_STATE_ENV);
    vmm_start(&m);
    if (vfiocpr_finish(m.ctx, NULL, &err) < 0)
        die(err, "finish");
    /* what a VMM does once its guest runs: the state encoded outside the blackout */
    if (ahead && vfiocpr_state_prepare(m.ctx, &err) < 0)
        die(err, "state prepare");
    res->fds = vfiocpr_fd_count(m.ctx);

    t_ops = 0;
    n_calls = 0;
    t = now_us();
    if (vfiocpr_exec(m.ctx, "/usr/bin/new-vmm", argv, NULL, &err) < 0)
        die(err, "exec");
    res->prep = t_execve - t;
    res->kern = t_ops;
    res->calls = n_calls;
    vfiocpr_device_unref(m.d);
    vfiocpr_container_unref(m.c);
    vfiocpr_unref(m.ctx); /* the old image is gone; its fds are not */
    munmap(m.va, PAGE);

    {
        char v[16];
        g_snprintf(v, sizeof(v), "%d", state_fd);
        g_setenv(VFIOCPR_STATE_ENV, v, TRUE);
    }
    n_fd_path = n_fstat = n_ops = 0;
    t_ops = 0;
    n_calls = 0;
    t = now_us();
    vmm_start(&m2);
    res->rest = now_us() - t;
    t = now_us();
    if (vfiocpr_finish(m2.ctx, NULL, &err) < 0)
        die(err, "finish");
    res->fin = now_us() - t;
    res->kern += t_ops;
    res->calls += n_calls;
    res->fd_path = n_fd_path;
    res->fstat = n_fstat;
    res->ioctls = n_ops;

    if (vfiocpr_device_close(m2.d, &err) < 0 || vfiocpr_container_close(m2.c, &err) < 0)
        die(err, "close");
    vfiocpr_device_unref(m2.d);
    vfiocpr_container_unref(m2.c);
    vfiocpr_fd_forget(m2.ctx, "ram", 0);
    close(m2.ram);
    for (int i = 0; i < 2; i++) {
        vfiocpr_fd_forget(m2.ctx, "ev", (guint64)i);
        close(m2.ev[i]);
    }
    munmap(m2.va, PAGE);
    vfiocpr_unref(m2.ctx);
    vfiocpr_kernel_set_ops(base);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return v[n / 2];
}

int main(int argc, char **argv)
{
    vfiocpr_backend list[2];
    unsigned n_list = 0;
    int runs = 201;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc && n_list < 2) {
            i++;
            if (strcmp(argv[i], "type1") == 0)
                list[n_list++] = VFIOCPR_BACKEND_TYPE1;
            else if (strcmp(argv[i], "iommufd") == 0)
                list[n_list++] = VFIOCPR_BACKEND_IOMMUFD;
            else
                goto usage;
        } else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            real = true;
            bdf = argv[++i];
        } else if (strcmp(argv[i], "--no-prepare") == 0) {
            ahead = false;
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
            if (runs < 1)
                goto usage;
        } else {
            goto usage;
        }
    }
    if (real && strcmp(bdf, "auto") == 0) {
        GDir *d = g_dir_open("/sys/bus/pci/drivers/vfio-pci", 0, NULL);
        const char *e;
        bdf = NULL;
        while (d && (e = g_dir_read_name(d)))
            if (strchr(e, ':') && strchr(e, '.'))
                bdf = g_strdup(e); /* the last one listed: any bound device */
        if (d)
            g_dir_close(d);
        if (!bdf) {
            fprintf(stderr, "bench-fixed: no device bound to vfio-pci\n");
            return 1;
        }
    }
    if (!n_list) {
        list[n_list++] = VFIOCPR_BACKEND_TYPE1;
        if (!real || access("/dev/iommu", F_OK) == 0)
            list[n_list++] = VFIOCPR_BACKEND_IOMMUFD;
    }
    printf("libvfiocpr %s: bench-fixed (%s kernel%s%s, 1 mapping; median of %d runs, us)\n",
           PACKAGE_VERSION, real ? "real" : "fake", real ? ", device " : "", real ? bdf : "",
           runs);
    printf("state %s\n", ahead ? "prepared ahead (vfiocpr_state_prepare)"
                                 : "encoded in the exec (--no-prepare)");
    printf("(the machine may be shared: the minimum is the cost without interference)\n");
    printf("in ops = time inside the kernel seam's ops (system calls) of the total;\n"
           "ops = seam calls from prepare to finish; fd_path, fstat, ioctls: in the restore\n");
    printf("%-8s %4s %9s %9s %9s %9s %9s %9s %5s %8s %6s %7s\n", "backend", "fds", "prepare",
           "restore", "finish", "total", "min total", "in ops", "ops", "fd_path", "fstat",
           "ioctls");
    for (unsigned b = 0; b < n_list; b++) {
        double *p = g_new(double, runs), *r = g_new(double, runs), *f = g_new(double, runs),
               *s = g_new(double, runs), *kk = g_new(double, runs);
        result res = { 0 };
        backend = list[b];
        for (int k = 0; k < runs; k++) {
            run(&res);
            p[k] = res.prep;
            r[k] = res.rest;
            f[k] = res.fin;
            s[k] = res.prep + res.rest + res.fin;
            kk[k] = res.kern;
        }
        printf("%-8s %4u %9.1f %9.1f %9.1f %9.1f", vfiocpr_backend_to_string(backend), res.fds,
               median(p, runs), median(r, runs), median(f, runs), median(s, runs));
        printf(" %9.1f %9.1f %5u %8u %6u %7u\n", s[0], median(kk, runs), res.calls, res.fd_path,
               res.fstat, res.ioctls);
        g_free(p);
        g_free(r);
        g_free(f);
        g_free(s);
        g_free(kk);
    }
    return 0;
usage:
    fprintf(stderr, "usage: %s [--device BDF|auto] [--backend type1|iommufd]... [--runs N] "
            "[--no-prepare]\n",
            argv[0]);
    return 2;
}
