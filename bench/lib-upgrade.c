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
 * chained upgrades: [request] vfiocpr_exec(/proc/self/exe) ([execve]: the
 * library's execve, seen through -Wl,--wrap=execve), then in the new image [main]
 * vfiocpr_new (p1 "new"), RAM + container + device + BAR0 (p2 "attach"), the N
 * dma_maps (p3 "map"), irq_enable (p4 "irq"), vfiocpr_finish ("rest") [usable].
 * The VMM's own settings (mappings, K, ...) travel in argv, as a VMM's would.
 */
#include "upgrade-common.h"

#include <sys/ioctl.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "vfiocpr.h"

static bench_opts opt;
static struct bench_times *bt;

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
    char *argv[] = { (char *)"lib-upgrade", (char *)"--restart", iter, (char *)"--device",
                     (char *)opt.bdf, (char *)"--backend", (char *)opt.backend,
                     (char *)"--mappings", mappings, (char *)"--page-size", (char *)page,
                     (char *)"--upgrades", upgrades, opt.negative ? (char *)"--negative" : NULL,
                     NULL };

    snprintf(mappings, sizeof(mappings), "%u", opt.mappings);
    snprintf(upgrades, sizeof(upgrades), "%u", opt.upgrades);
    snprintf(iter, sizeof(iter), "%u", done);
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
    start(&v, restart);
    if (restart) {
        char why[128];
        const char *fail;
        const char *pn[4] = { "new", "attach", "map", "irq" };

        bt->t[T_USABLE] = bench_now_ns();
        fail = bench_check(v.bar, v.ram, &opt, v.irq_fd, done, why, sizeof(why));
        bench_report("library", &opt, done, bt, fail, pn);
        if (fail)
            return 1;
        if (done >= opt.upgrades)
            return 0;
    }
    upgrade(&v, done);
}
