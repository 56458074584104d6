// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * floor-upgrade: the floor of a whole in-place VMM upgrade across exec, with raw
 * system calls and a minimal state memfd (no GLib, no libvfiocpr; a static binary).
 * bench/bench-upgrade-guest.sh runs it next to bench/lib-upgrade (the same upgrade
 * through the library) in one guest boot.
 *
 *   floor-upgrade [--device BDF] [--backend type1|iommufd] [--mappings N]
 *                 [--page-size 4k|2m] [--upgrades K] [--negative]
 *
 * Cold start: the edu device (type1: container, group, type1v2 IOMMU, device fd;
 * iommufd: /dev/iommu, an IOAS, the vfio cdev bound and attached), bus master on,
 * BAR0 mapped, a memfd of N pages as guest RAM mapped and DMA-mapped page by page
 * (type1: N MAP_DMA; iommufd: N IOMMU_IOAS_MAP_FILE), one MSI vector on an eventfd
 * (VFIO_DEVICE_SET_IRQS). Then K upgrades in a chain, each one:
 *   old image: [request] type1: UNMAP_DMA(VADDR|ALL); the state (fd numbers, BAR0
 *     offset and size, then (iova, size, offset) per mapping) written to a memfd;
 *     FD_CLOEXEC cleared on the VMM's fds; [execve] execve(/proc/self/exe).
 *   new image: [main] the state memfd mapped and read in place (p1 "state"), guest
 *     RAM mapped, type1: N MAP_DMA(VADDR) at the new address (p2 "map"), BAR0
 *     mapped; iommufd: IOMMU_IOAS_CHANGE_PROCESS (p2 "change"), BAR0 mapped
 *     [usable]. Then, outside the blackout, the check (edu DMA through the mappings,
 *     an MSI on the inherited eventfd; bench_check()) and the next upgrade.
 * The blackout is [request] -> [usable]. One line per upgrade (bench_report()).
 */
#include "upgrade-common.h"

#include <sys/ioctl.h>
#include <sys/stat.h>

#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "vfio-compat.h"

#define STATE_MAGIC 0x666c6f6f72737431ull /* "floorst1" */

struct floor_map {
    uint64_t iova, size, offset;
};
/* The minimal state: what the new image needs and nothing else. */
struct floor_state {
    uint64_t magic;
    uint32_t iommufd, mappings, upgrades, iter; /* iter: upgrades done so far */
    int32_t container, group, device, ram, irq;
    uint32_t ioas, negative;
    uint64_t page, ram_size, bar_off, bar_size;
    struct floor_map map[];
};

static bench_opts opt;
static struct bench_times *bt;
static volatile uint32_t *bar0;
static uint8_t *ram;
static uint64_t ram_size, bar_off, bar_size;
static int container = -1, group = -1, device = -1, ram_fd = -1, irq_fd = -1;
static uint32_t ioas;
static bool iommufd;

static void xioctl(int fd, unsigned long req, void *arg, const char *what)
{
    if (ioctl(fd, req, arg) < 0)
        bench_die("%s", what);
}

static void cold_start(void)
{
    struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
    struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    char path[PATH_MAX], target[PATH_MAX - 32];
    uint16_t cmd = 0;

    if (iommufd) {
        struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
        struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
        struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
        struct dirent *e;
        DIR *d;

        if ((container = open("/dev/iommu", O_RDWR | O_CLOEXEC)) < 0)
            bench_die("open /dev/iommu");
        xioctl(container, IOMMU_IOAS_ALLOC, &alloc, "IOMMU_IOAS_ALLOC");
        ioas = alloc.out_ioas_id;
        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", opt.bdf);
        if (!(d = opendir(path)))
            bench_die("%s", path);
        target[0] = 0;
        while ((e = readdir(d)))
            if (!strncmp(e->d_name, "vfio", 4))
                snprintf(target, sizeof(target), "/dev/vfio/devices/%s", e->d_name);
        closedir(d);
        if ((device = open(target, O_RDWR | O_CLOEXEC)) < 0)
            bench_die("open %s", target);
        bind.iommufd = container;
        xioctl(device, VFIO_DEVICE_BIND_IOMMUFD, &bind, "VFIO_DEVICE_BIND_IOMMUFD");
        at.pt_id = ioas;
        xioctl(device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at, "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
    } else {
        ssize_t n;
        const char *slash;

        snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", opt.bdf);
        if ((n = readlink(path, target, sizeof(target) - 1)) < 0)
            bench_die("%s", path);
        target[n] = 0;
        slash = strrchr(target, '/');
        snprintf(path, sizeof(path), "/dev/vfio/%d", atoi(slash ? slash + 1 : target));
        if ((container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC)) < 0 ||
            (group = open(path, O_RDWR | O_CLOEXEC)) < 0)
            bench_die("open the container / %s", path);
        xioctl(group, VFIO_GROUP_SET_CONTAINER, &container, "VFIO_GROUP_SET_CONTAINER");
        if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
            bench_die("VFIO_SET_IOMMU");
        if ((device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, opt.bdf)) < 0)
            bench_die("VFIO_GROUP_GET_DEVICE_FD");
        fcntl(device, F_SETFD, FD_CLOEXEC);
    }
    xioctl(device, VFIO_DEVICE_GET_REGION_INFO, &bar, "BAR0 region info");
    xioctl(device, VFIO_DEVICE_GET_REGION_INFO, &cfg, "config region info");
    bar_off = bar.offset;
    bar_size = bar.size;
    bar0 = mmap(NULL, bar_size, PROT_READ | PROT_WRITE, MAP_SHARED, device, (off_t)bar_off);
    if (bar0 == MAP_FAILED)
        bench_die("mmap BAR0");
    if (pread(device, &cmd, 2, (off_t)(cfg.offset + PCI_COMMAND)) != 2)
        bench_die("PCI_COMMAND");
    cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
    if (pwrite(device, &cmd, 2, (off_t)(cfg.offset + PCI_COMMAND)) != 2)
        bench_die("PCI_COMMAND");

    ram_size = (uint64_t)opt.mappings * opt.page;
    if ((ram_fd = memfd_create("guest-ram", MFD_CLOEXEC)) < 0 ||
        ftruncate(ram_fd, (off_t)ram_size) < 0)
        bench_die("guest RAM memfd");
    ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
    if (ram == MAP_FAILED)
        bench_die("mmap guest RAM");
    for (unsigned i = 0; i < opt.mappings; i++) {
        uint64_t off = (uint64_t)i * opt.page;
        if (iommufd) {
            struct iommu_ioas_map_file mf = {
                .size = sizeof(mf), .ioas_id = ioas, .fd = ram_fd, .start = off,
                .length = opt.page, .iova = IOVA0 + off,
                .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
                         IOMMU_IOAS_MAP_WRITEABLE,
            };
            xioctl(container, IOMMU_IOAS_MAP_FILE, &mf, "IOMMU_IOAS_MAP_FILE");
        } else {
            struct vfio_iommu_type1_dma_map m = {
                .argsz = sizeof(m), .vaddr = (uintptr_t)(ram + off), .iova = IOVA0 + off,
                .size = opt.page, .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
            };
            xioctl(container, VFIO_IOMMU_MAP_DMA, &m, "VFIO_IOMMU_MAP_DMA");
        }
    }
    {
        char buf[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
        struct vfio_irq_set *set = (struct vfio_irq_set *)buf;
        int32_t fd32;

        if ((irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
            bench_die("eventfd");
        fd32 = irq_fd;
        set->argsz = sizeof(buf);
        set->flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
        set->index = VFIO_PCI_MSI_IRQ_INDEX;
        set->start = 0;
        set->count = 1;
        memcpy(set->data, &fd32, sizeof(fd32));
        xioctl(device, VFIO_DEVICE_SET_IRQS, set, "VFIO_DEVICE_SET_IRQS(MSI)");
    }
}

/* The old image's half: returns only on failure. */
static void upgrade(unsigned done)
{
    size_t len = sizeof(struct floor_state) + (size_t)opt.mappings * sizeof(struct floor_map);
    struct floor_state *st;
    int sfd, fds[5] = { container, group, device, ram_fd, irq_fd };
    char fdarg[16];
    char *argv[] = { (char *)"floor-upgrade", (char *)"--restart", fdarg, NULL };
    extern char **environ;

    /* built before the request like any VMM's bookkeeping: the buffer, not its bytes */
    st = malloc(len);
    if (!st)
        bench_die("malloc");

    bt->t[T_REQUEST] = bench_now_ns();
    if (!iommufd) {
        struct vfio_iommu_type1_dma_unmap un = {
            .argsz = sizeof(un), .flags = VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL,
        };
        xioctl(container, VFIO_IOMMU_UNMAP_DMA, &un, "UNMAP_DMA(VADDR|ALL)");
    }
    *st = (struct floor_state){
        .magic = STATE_MAGIC, .iommufd = iommufd, .mappings = opt.mappings,
        .upgrades = opt.upgrades, .iter = done, .container = container, .group = group,
        .device = device, .ram = ram_fd, .irq = irq_fd, .ioas = ioas,
        .negative = opt.negative, .page = opt.page, .ram_size = ram_size, .bar_off = bar_off,
        .bar_size = bar_size,
    };
    for (unsigned i = 0; i < opt.mappings; i++)
        st->map[i] = (struct floor_map){ IOVA0 + (uint64_t)i * opt.page, opt.page,
                                         (uint64_t)i * opt.page };
    /* no MFD_CLOEXEC: the new image inherits it */
    if ((sfd = memfd_create("floor-state", 0)) < 0 || write(sfd, st, len) != (ssize_t)len)
        bench_die("state memfd");
    for (int i = 0; i < 5; i++)
        if (fds[i] >= 0 && fcntl(fds[i], F_SETFD, 0) < 0)
            bench_die("clearing FD_CLOEXEC");
    snprintf(fdarg, sizeof(fdarg), "%d", sfd);
    bt->t[T_EXECVE] = bench_now_ns();
    execve("/proc/self/exe", argv, environ);
    bench_die("execve");
}

/* The new image's half, up to the device being usable. */
static void restore(int sfd)
{
    struct stat sb;
    const struct floor_state *st;

    if (fstat(sfd, &sb) < 0)
        bench_die("fstat state");
    st = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, sfd, 0);
    if (st == MAP_FAILED || st->magic != STATE_MAGIC ||
        (size_t)sb.st_size != sizeof(*st) + (size_t)st->mappings * sizeof(struct floor_map))
        bench_die("state");
    iommufd = st->iommufd;
    opt.backend = iommufd ? "iommufd" : "type1";
    opt.mappings = st->mappings;
    opt.upgrades = st->upgrades;
    opt.page = st->page;
    opt.negative = st->negative;
    container = st->container;
    group = st->group;
    device = st->device;
    ram_fd = st->ram;
    irq_fd = st->irq;
    ioas = st->ioas;
    ram_size = st->ram_size;
    bar_off = st->bar_off;
    bar_size = st->bar_size;
    bt->t[T_P1] = bench_now_ns();

    ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
    if (ram == MAP_FAILED)
        bench_die("mmap guest RAM");
    if (iommufd) {
        struct iommu_ioas_change_process cp = { .size = sizeof(cp) };
        xioctl(container, IOMMU_IOAS_CHANGE_PROCESS, &cp, "IOMMU_IOAS_CHANGE_PROCESS");
    } else {
        for (unsigned i = 0; i < st->mappings; i++) {
            struct vfio_iommu_type1_dma_map m = {
                .argsz = sizeof(m), .flags = VFIO_DMA_MAP_FLAG_VADDR,
                .vaddr = (uintptr_t)(ram + st->map[i].offset), .iova = st->map[i].iova,
                .size = st->map[i].size,
            };
            xioctl(container, VFIO_IOMMU_MAP_DMA, &m, "MAP_DMA(VADDR)");
        }
    }
    bt->t[T_P2] = bench_now_ns();
    bar0 = mmap(NULL, bar_size, PROT_READ | PROT_WRITE, MAP_SHARED, device, (off_t)bar_off);
    if (bar0 == MAP_FAILED)
        bench_die("mmap BAR0");
    bt->t[T_USABLE] = bench_now_ns();
    /* the rest is outside the blackout */
    {
        int fds[5] = { container, group, device, ram_fd, irq_fd };
        unsigned done = st->iter + 1;
        char why[128];
        const char *fail = bench_check(bar0, ram, &opt, irq_fd, done, why, sizeof(why));
        const char *pn[4] = { "state", iommufd ? "change" : "map", NULL, NULL };

        bench_report("floor", &opt, done, bt, fail, pn);
        munmap((void *)st, (size_t)sb.st_size);
        close(sfd);
        /* a VMM's fds are close-on-exec while it runs */
        for (int i = 0; i < 5; i++)
            if (fds[i] >= 0)
                fcntl(fds[i], F_SETFD, FD_CLOEXEC);
        if (fail)
            exit(1);
        if (done < opt.upgrades)
            upgrade(done);
    }
}

int main(int argc, char **argv)
{
    char bdf[NAME_MAX + 1];

    bt = bench_times_map(argc != 3 || strcmp(argv[1], "--restart"));
    if (argc == 3 && !strcmp(argv[1], "--restart")) {
        bt->t[T_MAIN] = bench_now_ns();
        restore(atoi(argv[2]));
        return 0;
    }
    bench_parse(argc, argv, &opt, bdf, sizeof(bdf));
    iommufd = !strcmp(opt.backend, "iommufd");
    cold_start();
    upgrade(0);
    return 1;
}
