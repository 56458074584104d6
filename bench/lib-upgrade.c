// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * lib-upgrade: the whole in-place upgrade floor-upgrade does, through libvfiocpr:
 * the same device, the same number of mappings and vectors, timed and checked by
 * the same code (upgrade-common.h). The library is linked in statically, like the
 * guest programs; GLib and libc are shared libraries.
 *
 *   lib-upgrade [--device BDF] [--backend type1|iommufd] [--mappings N]
 *               [--page-size 4k|2m] [--upgrades K] [--negative]
 *
 * Cold start and restart run the same start-up calls: vfiocpr_new(), the guest RAM
 * memfd (vfiocpr_fd_save / vfiocpr_fd_find) mapped, vfiocpr_container_open_backend(),
 * vfiocpr_device_attach(), vfiocpr_device_map_region(BAR0), N vfiocpr_dma_map() of
 * one page each, vfiocpr_irq_enable(MSI, 1 vector), vfiocpr_finish(). Each of the K
 * chained upgrades: vfiocpr_state_prepare() (outside the blackout, as a VMM does
 * once its guest runs), [request] vfiocpr_exec(/proc/self/exe) ([execve]: the
 * library's execve, seen through -Wl,--wrap=execve), then in the new image [main]
 * vfiocpr_new (p1 "new"), RAM + container + device + BAR0 (p2 "attach"), the N
 * dma_maps (p3 "map"), irq_enable (p4 "irq"), vfiocpr_finish ("rest") [usable].
 * The VMM's own settings (mappings, K, ...) travel in argv, as a VMM's would.
 */
#include "upgrade-common.h"

#include <sys/ioctl.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "private.h" /* the kernel seam, for --trace */
#include "vfiocpr.h"

#ifdef LIB_UPGRADE_STATIC
#define PROG "lib-static"
#else
#define PROG "library"
#endif

static bench_opts opt;
static struct bench_times *bt;

/* --trace: every call the library makes through its kernel seam (lib/kernel.c),
 * timed; the gaps between them are the library's own work. The page holds the old
 * image's preparation and the new image's restore of one upgrade. */
static const vfiocpr_kernel_ops *base;
static vfiocpr_kernel_ops traced;

static void tr(const char *op, uint32_t req, uint64_t t0)
{
    uint64_t t1 = bench_now_ns();
    struct bench_trace *e = bt->n_trace ? &bt->trace[bt->n_trace - 1] : NULL;

    if (e && e->req == req && !strcmp(e->op, op)) {
        e->count++;
        e->last = t1;
        return;
    }
    if (bt->n_trace == BENCH_TRACE_MAX) {
        bt->trace_lost++;
        return;
    }
    e = &bt->trace[bt->n_trace++];
    *e = (struct bench_trace){ .first = t0, .last = t1, .count = 1, .req = req };
    snprintf(e->op, sizeof(e->op), "%s", op);
}

#define TR(op, req, call)                                                                      \
    do {                                                                                       \
        uint64_t t0_ = bench_now_ns();                                                         \
        __typeof__(call) r_ = (call);                                                          \
        tr(op, req, t0_);                                                                      \
        return r_;                                                                             \
    } while (0)

static int t_ioctl(int fd, unsigned long req, void *arg)
{
    TR("ioctl", (uint32_t)req, base->ioctl(fd, req, arg));
}
static int t_open(const char *path, int flags)
{
    TR("open", 0, base->open(path, flags));
}
static int t_fstat(int fd, vfiocpr_fd_stat *st, off_t *size)
{
    TR("fstat", 0, base->fstat(fd, st, size));
}
static int t_fd_path(int fd, char *buf, size_t len)
{
    TR("fd_path", 0, base->fd_path(fd, buf, len));
}
static int t_readlink(const char *path, char *buf, size_t len)
{
    TR("readlink", 0, base->readlink(path, buf, len));
}
static int t_mmap(int fd, size_t len, int prot, off_t off, void **addr)
{
    TR("mmap", 0, base->mmap(fd, len, prot, off, addr));
}
static int t_munmap(void *addr, size_t len)
{
    TR("munmap", 0, base->munmap(addr, len));
}
static int t_memfd_create(const char *name, unsigned int flags)
{
    TR("memfd_create", 0, base->memfd_create(name, flags));
}
static ssize_t t_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    TR("pwrite", 0, base->pwrite(fd, buf, len, off));
}
static ssize_t t_pread(int fd, void *buf, size_t len, off_t off)
{
    TR("pread", 0, base->pread(fd, buf, len, off));
}
static int t_get_seals(int fd)
{
    TR("get_seals", 0, base->get_seals(fd));
}
static int t_add_seals(int fd, int seals)
{
    TR("add_seals", 0, base->add_seals(fd, seals));
}
static int t_get_cloexec(int fd)
{
    TR("get_cloexec", 0, base->get_cloexec(fd));
}
static int t_set_cloexec(int fd, bool on)
{
    TR("set_cloexec", 0, base->set_cloexec(fd, on));
}
static int t_cloexec_range(int first, int last)
{
    TR("cloexec_range", 0, base->cloexec_range(first, last));
}
static int t_close(int fd)
{
    TR("close", 0, base->close(fd));
}
static int t_memlock(guint64 *limit, bool *cap)
{
    TR("memlock", 0, base->memlock(limit, cap));
}
static int t_eventfd(unsigned int initval, int flags)
{
    TR("eventfd", 0, base->eventfd(initval, flags));
}
static int t_fdinfo(int fd, char *buf, size_t len)
{
    TR("fdinfo", 0, base->fdinfo(fd, buf, len));
}
static int t_dir_entry(const char *dir, const char *prefix, char *buf, size_t len)
{
    TR("dir_entry", 0, base->dir_entry(dir, prefix, buf, len));
}

static void trace_install(void)
{
    base = vfiocpr_kernel;
    traced = *base;
    traced.ioctl = t_ioctl;
    traced.open = t_open;
    traced.fstat = t_fstat;
    traced.fd_path = t_fd_path;
    traced.readlink = t_readlink;
    traced.mmap = t_mmap;
    traced.munmap = t_munmap;
    traced.memfd_create = t_memfd_create;
    traced.pwrite = t_pwrite;
    traced.pread = t_pread;
    traced.get_seals = t_get_seals;
    traced.add_seals = t_add_seals;
    traced.get_cloexec = t_get_cloexec;
    traced.set_cloexec = t_set_cloexec;
    traced.cloexec_range = t_cloexec_range;
    traced.close = t_close;
    traced.memlock = t_memlock;
    traced.eventfd = t_eventfd;
    traced.dir_entry = t_dir_entry;
    traced.fdinfo = t_fdinfo;
    vfiocpr_kernel_set_ops(&traced);
}

/* The timeline of one upgrade, relative to the request: the program's stamps and
 * the library's seam calls between them. */
static void trace_print(unsigned iter)
{
    static const char *const names[T_COUNT] = { "request", "execve", "main", "p1", "p2",
                                                "p3", "p4", "usable" };
    uint64_t t0 = bt->t[T_REQUEST], prev = t0;
    unsigned e = 0;

    printf("trace %u: %u entries%s (us from the request; gap: since the previous one ended)\n",
           iter, bt->n_trace, bt->trace_lost ? ", some lost" : "");
    for (int s = 0; s < T_COUNT; s++) {
        for (; e < bt->n_trace && bt->trace[e].first < bt->t[s]; e++) {
            const struct bench_trace *x = &bt->trace[e];
            printf("trace %u: %10.1f  gap %9.1f  %-13s", iter, us(t0, x->first), us(prev, x->first),
                   x->op);
            if (x->req)
                printf(" 0x%08x", x->req);
            else
                printf("           ");
            printf(" x%-6u %9.1f us\n", x->count, us(x->first, x->last));
            prev = x->last;
        }
        printf("trace %u: %10.1f  gap %9.1f  [%s]\n", iter, us(t0, bt->t[s]), us(prev, bt->t[s]),
               names[s]);
        prev = bt->t[s];
    }
}

/* The library's execve (lib/kernel.c): the end of its preparation. */
int __real_execve(const char *path, char *const argv[], char *const envp[]);
int __wrap_execve(const char *path, char *const argv[], char *const envp[]);
int __wrap_execve(const char *path, char *const argv[], char *const envp[])
{
    if (bt)
        bt->t[T_EXECVE] = bench_now_ns();
    return __real_execve(path, argv, envp);
}

static void __attribute__((noreturn)) die_err(const char *what, GError *err)
{
    printf("upgrade-bench: error: %s: %s\n", what, err ? err->message : "?");
    fflush(stdout);
    exit(1);
}

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *d;
    int ram_fd, irq_fd;
    uint8_t *ram;
    volatile uint32_t *bar;
} vmm;

/* The VMM's start-up, cold or restart: the same calls. */
static void start(vmm *v, bool restart)
{
    GError *err = NULL;
    uint64_t ram_size = (uint64_t)opt.mappings * opt.page, bar_size;
    vfiocpr_backend be = !strcmp(opt.backend, "iommufd") ? VFIOCPR_BACKEND_IOMMUFD
                                                           : VFIOCPR_BACKEND_TYPE1;
    void *bar;

    if (vfiocpr_new(0, &v->ctx, &err) < 0)
        die_err("vfiocpr_new", err);
    if (vfiocpr_is_restart(v->ctx) != restart)
        die_err(restart ? "not restarted" : "restarted on a cold start", NULL);
    bt->t[T_P1] = bench_now_ns();
    v->ram_fd = vfiocpr_fd_find(v->ctx, "ram", 0, VFIOCPR_FD_MEMFD, restart ? &err : NULL);
    if (v->ram_fd < 0) {
        if (restart)
            die_err("guest RAM memfd", err);
        if ((v->ram_fd = memfd_create("guest-ram", MFD_CLOEXEC)) < 0 ||
            ftruncate(v->ram_fd, (off_t)ram_size) < 0)
            bench_die("guest RAM memfd");
        if (vfiocpr_fd_save(v->ctx, "ram", 0, v->ram_fd, VFIOCPR_FD_MEMFD, &err) < 0)
            die_err("vfiocpr_fd_save", err);
    }
    v->ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->ram_fd, 0);
    if (v->ram == MAP_FAILED)
        bench_die("mmap guest RAM");
    if (vfiocpr_container_open_backend(v->ctx, "c0", be, &v->c, &err) < 0)
        die_err("vfiocpr_container_open_backend", err);
    if (vfiocpr_device_attach(v->c, opt.bdf, &v->d, &err) < 0)
        die_err("vfiocpr_device_attach", err);
    if (vfiocpr_device_map_region(v->d, VFIO_PCI_BAR0_REGION_INDEX, &bar, &bar_size, &err) < 0)
        die_err("BAR0", err);
    v->bar = bar;
    if (!restart) {
        struct vfio_region_info cfg = { .argsz = sizeof(cfg),
                                        .index = VFIO_PCI_CONFIG_REGION_INDEX };
        int dfd = vfiocpr_device_fd(v->d);
        uint16_t cmd = 0;
        if (ioctl(dfd, VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0 ||
            pread(dfd, &cmd, 2, (off_t)(cfg.offset + PCI_COMMAND)) != 2)
            bench_die("PCI_COMMAND");
        cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        if (pwrite(dfd, &cmd, 2, (off_t)(cfg.offset + PCI_COMMAND)) != 2)
            bench_die("PCI_COMMAND");
    }
    bt->t[T_P2] = bench_now_ns();
    for (unsigned i = 0; i < opt.mappings; i++) {
        uint64_t off = (uint64_t)i * opt.page;
        if (vfiocpr_dma_map(v->c, IOVA0 + off, opt.page, v->ram + off, v->ram_fd, off,
                            VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE, &err) < 0)
            die_err("vfiocpr_dma_map", err);
    }
    bt->t[T_P3] = bench_now_ns();
    if (vfiocpr_irq_enable(v->d, VFIOCPR_IRQ_MSI, 0, 1, NULL, &v->irq_fd, &err) < 0)
        die_err("vfiocpr_irq_enable", err);
    bt->t[T_P4] = bench_now_ns();
    if (vfiocpr_finish(v->ctx, NULL, &err) < 0)
        die_err("vfiocpr_finish", err);
}

static void __attribute__((noreturn)) upgrade(vmm *v, unsigned done)
{
    GError *err = NULL;
    char mappings[16], upgrades[16], iter[16];
    const char *page = opt.page == 4096 ? "4k" : "2m";
    char *argv[] = { (char *)PROG, (char *)"--restart", iter, (char *)"--device",
                     (char *)opt.bdf, (char *)"--backend", (char *)opt.backend,
                     (char *)"--mappings", mappings, (char *)"--page-size", (char *)page,
                     (char *)"--upgrades", upgrades, NULL, NULL, NULL };
    int a = 13;

    if (opt.negative)
        argv[a++] = (char *)"--negative";
    if (opt.trace)
        argv[a++] = (char *)"--trace";

    snprintf(mappings, sizeof(mappings), "%u", opt.mappings);
    snprintf(upgrades, sizeof(upgrades), "%u", opt.upgrades);
    snprintf(iter, sizeof(iter), "%u", done);
    /* once the guest runs, before anyone asks for the upgrade: the state encoded
     * outside the blackout (the exec then only patches and writes it) */
    if (vfiocpr_state_prepare(v->ctx, &err) < 0)
        die_err("vfiocpr_state_prepare", err);
    bt->n_trace = bt->trace_lost = 0;
    bt->t[T_REQUEST] = bench_now_ns();
    vfiocpr_exec(v->ctx, "/proc/self/exe", argv, NULL, &err);
    die_err("vfiocpr_exec", err);
}

int main(int argc, char **argv)
{
    char bdf[NAME_MAX + 1];
    bool restart = argc > 2 && !strcmp(argv[1], "--restart");
    unsigned done = 0;
    vmm v = { 0 };

    bt = bench_times_map(!restart);
    if (restart) {
        bt->t[T_MAIN] = bench_now_ns();
        done = (unsigned)strtoul(argv[2], NULL, 10) + 1;
        argv[2] = argv[0];
        argc -= 2;
        argv += 2;
    }
    bench_parse(argc, argv, &opt, bdf, sizeof(bdf));
    if (opt.trace)
        trace_install();
    start(&v, restart);
    if (restart) {
        char why[128];
        const char *fail;
        const char *pn[4] = { "new", "attach", "map", "irq" };

        bt->t[T_USABLE] = bench_now_ns();
        fail = bench_check(v.bar, v.ram, &opt, v.irq_fd, done, why, sizeof(why));
        /* the dynamic loader binding every symbol at exec instead of at first call */
        bench_report(getenv("LD_BIND_NOW") && strcmp(PROG, "lib-static") ? "lib-bindnow" : PROG,
                     &opt, done, bt, fail, pn);
        if (opt.trace)
            trace_print(done);
        if (fail)
            return 1;
        if (done >= opt.upgrades)
            return 0;
    }
    upgrade(&v, done);
}
