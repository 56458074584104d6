/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Guest scenarios for type1 container CPR (run inside QEMU by run-guest.sh, on a real
 * kernel with real vfio-pci devices). A VMM-shaped start-up runs unchanged in every
 * image; the program exec()s itself through libvfiocpr and the next image checks what
 * survived. Output is TAP; test numbers carry across images in argv.
 *
 *   guest-cpr edu-msi        a + b: DMA and MSI across exec, device not reset
 *   guest-cpr edu-intx       a: the same with INTx (trigger + unmask eventfds)
 *   guest-cpr edu-negative   b: negative control, the device fd left CLOEXEC
 *   guest-cpr nvme           b2: NVMe controller stays enabled, Identify after exec
 *   guest-cpr nvme-negative  b2: negative control, last close + re-open resets it
 *   guest-cpr rollback       c: exec of a missing binary rolls back, DMA + MSI work
 *   guest-cpr cycles N       d: N exec cycles, DMA + MSI each, open fds stable
 *   guest-cpr group-busy     e: a new group while vaddrs are invalid: EBUSY
 *   guest-cpr demo           the same as edu-msi, told in words for a person
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vfiocpr.h"
#include "guest-util.h"

#define RAM_SIZE (2u << 20)
#define RAM_IOVA 0x100000ull /* edu's DMA mask is 28 bits */
#define XFER 2048u

/* edu registers (QEMU hw/misc/edu.c) */
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_BUF 0x40000

/* NVMe */
#define NVME_CC 0x14
#define NVME_CSTS 0x1c
#define NVME_AQA 0x24
#define NVME_ASQ 0x28
#define NVME_ACQ 0x30
#define NVME_SQ0TDBL 0x1000
#define NVME_CQ0HDBL 0x1004
#define NVME_CC_VALUE 0x00460001u
/* queues and buffers live in guest RAM (the memfd), like a guest driver's */
#define NVME_SQ_OFF 0x10000
#define NVME_CQ_OFF 0x11000
#define NVME_DATA_OFF 0x12000
#define NVME_META_OFF 0x13000 /* sq tail, cq head, phase: driver state in guest RAM */

static guint64 eventfd_wait(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    guint64 v = 0;
    if (poll(&p, 1, timeout_ms) == 1 && read(fd, &v, sizeof(v)) == sizeof(v))
        return v;
    return 0;
}

static unsigned count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    unsigned n = 0;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;
}

/* ------------------------------------------------------------------ the VMM */

typedef enum { IRQ_MSI, IRQ_INTX, IRQ_MSIX } irq_mode;

typedef struct {
    const char *bdf;
    irq_mode irq;
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *dev;
    int group;
    int group_fd;
    int ram;
    guint8 *va;
    volatile guint32 *bar;
    guint64 bar_size;
    guint64 cfg_off;
    int trigger, unmask;
    bool restarted;
    /* group-busy: a second group tried while ranges are pending, then after finish */
    int extra_group;
    int extra_rc_pending, extra_rc_after;
    char extra_msg[512];
} vmm;

static guint32 rd32(vmm *v, guint32 off) { return v->bar[off / 4]; }
static void wr32(vmm *v, guint32 off, guint32 val) { v->bar[off / 4] = val; }

static int cfg_read(vmm *v, guint32 off, void *buf, size_t n)
{
    return pread(vfiocpr_device_fd(v->dev), buf, n, (off_t)(v->cfg_off + off)) == (ssize_t)n ? 0 : -1;
}

/* What a VMM runs at start-up, cold or restarted: the same calls either way. The
 * interrupt wiring goes through the library too: on a restart it hands back the
 * preserved eventfds and issues no SET_IRQS. */
static void vmm_start(vmm *v, GError **error)
{
    struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    g_auto(GStrv) unclaimed = NULL;
    bool restart;
    void *bar;
    guint64 bar_size;

    if (vfiocpr_new(0, &v->ctx, error) < 0)
        bail("vfiocpr_new: %s", (*error)->message);
    restart = v->restarted = vfiocpr_is_restart(v->ctx);
    v->ram = vfiocpr_fd_find(v->ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, NULL);
    if (v->ram < 0) {
        v->ram = memfd_create("guest-ram", MFD_CLOEXEC);
        if (v->ram < 0 || ftruncate(v->ram, RAM_SIZE) < 0 ||
            vfiocpr_fd_save(v->ctx, "guest-ram", 0, v->ram, VFIOCPR_FD_MEMFD, error) < 0)
            bail("guest RAM");
    }
    /* a new image maps guest RAM at a new address: that is what MAP|VADDR fixes */
    v->va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, v->ram, 0);
    if (v->va == MAP_FAILED)
        bail("mmap guest RAM");
    v->group = vfiocpr_device_group_id(v->bdf, error);
    if (v->group < 0 || vfiocpr_container_open(v->ctx, "c0", &v->c, error) < 0)
        bail("open container: %s", (*error)->message);
    if (v->extra_group) {
        GError *e = NULL;
        v->extra_rc_pending = vfiocpr_container_add_group(v->c, v->extra_group, &e);
        g_strlcpy(v->extra_msg, e ? e->message : "accepted", sizeof(v->extra_msg));
        g_clear_error(&e);
    }
    if ((v->group_fd = vfiocpr_container_add_group(v->c, v->group, error)) < 0 ||
        vfiocpr_device_open(v->c, v->group, v->bdf, &v->dev, error) < 0 ||
        vfiocpr_device_map_region(v->dev, 0, &bar, &bar_size, error) < 0)
        bail("open %s: %s", v->bdf, (*error)->message);
    v->bar = bar;
    v->bar_size = bar_size;
    if (ioctl(vfiocpr_device_fd(v->dev), VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0)
        bail("config region");
    v->cfg_off = cfg.offset;
    if (!restart) {
        guint16 cmd = 0;
        cfg_read(v, PCI_COMMAND, &cmd, 2);
        cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        if (pwrite(vfiocpr_device_fd(v->dev), &cmd, 2, (off_t)(v->cfg_off + PCI_COMMAND)) != 2)
            bail("enable bus master");
    }
    if (vfiocpr_dma_map(v->c, RAM_IOVA, RAM_SIZE, v->va, v->ram, 0,
                        VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE, error) < 0)
        bail("dma map: %s", (*error)->message);
    /* cold: SET_IRQS; restart: the preserved eventfds, no ioctl */
    if (vfiocpr_irq_enable(v->dev, v->irq == IRQ_MSI ? VFIOCPR_IRQ_MSI :
                                   v->irq == IRQ_MSIX ? VFIOCPR_IRQ_MSIX : VFIOCPR_IRQ_INTX,
                           0, 1, NULL, &v->trigger, error) < 0)
        bail("irq enable: %s", (*error)->message);
    v->unmask = -1;
    if (v->irq == IRQ_INTX && (v->unmask = vfiocpr_irq_intx_unmask(v->dev, -1, error)) < 0)
        bail("INTx unmask: %s", (*error)->message);
    if (vfiocpr_finish(v->ctx, &unclaimed, error) < 0)
        bail("finish: %s", (*error)->message);
    if (restart && unclaimed && unclaimed[0])
        bail("unclaimed after restart: %s", unclaimed[0]);
    if (v->extra_group)
        v->extra_rc_after = vfiocpr_container_add_group(v->c, v->extra_group, NULL);
}

/* A VMM shutting down without touching the device: drop handles, unmap. */
static void vmm_stop(vmm *v)
{
    if (v->bar)
        munmap((void *)v->bar, v->bar_size);
    if (v->va)
        munmap(v->va, RAM_SIZE);
    g_clear_pointer(&v->dev, vfiocpr_device_unref);
    g_clear_pointer(&v->c, vfiocpr_container_unref);
    g_clear_pointer(&v->ctx, vfiocpr_unref);
    v->bar = NULL;
    v->va = NULL;
}

/* Re-execs this program as the next generation of the same scenario. */
static int vmm_exec(vmm *v, const char *path, char **args, GError **error)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(argv, g_strdup("guest-cpr"));
    for (char **a = args; *a; a++)
        g_ptr_array_add(argv, g_strdup(*a));
    g_ptr_array_add(argv, NULL);
    return vfiocpr_exec(v->ctx, path, (char *const *)argv->pdata, NULL, error);
}

/* ------------------------------------------------------------------ edu */

static bool edu_dma(vmm *v, guint64 src, guint64 dst, guint32 count, guint32 to_ram)
{
    guint64 t0 = now_us();
    wr32(v, EDU_DMA_SRC, (guint32)src);
    wr32(v, EDU_DMA_DST, (guint32)dst);
    wr32(v, EDU_DMA_COUNT, count);
    wr32(v, EDU_DMA_CMD, 1 | (to_ram ? 2 : 0));
    while (rd32(v, EDU_DMA_CMD) & 1) {
        if (now_us() - t0 > 10000000)
            return false;
        usleep(200);
    }
    return true;
}

static void fill(guint8 *p, size_t n, guint32 seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (guint8)(seed * 31 + i * 7 + (i >> 8));
}

/* RAM -> device: the old image hands data to the device. */
static bool edu_to_device(vmm *v, guint32 seed)
{
    fill(v->va, XFER, seed);
    return edu_dma(v, RAM_IOVA, EDU_BUF, XFER, 0);
}

/* device -> RAM at +0x1000, checked through this image's mapping. */
static bool edu_from_device(vmm *v, guint32 seed)
{
    g_autofree guint8 *want = g_malloc(XFER);
    memset(v->va + 0x1000, 0, XFER);
    if (!edu_dma(v, EDU_BUF, RAM_IOVA + 0x1000, XFER, 1))
        return false;
    fill(want, XFER, seed);
    return memcmp(v->va + 0x1000, want, XFER) == 0;
}

/* One interrupt raised by the device and counted on the eventfd. */
static guint64 edu_irq(vmm *v)
{
    guint64 n;
    wr32(v, EDU_IRQ_RAISE, 0x1);
    n = eventfd_wait(v->trigger, 3000);
    wr32(v, EDU_IRQ_ACK, rd32(v, EDU_IRQ_STATUS));
    if (v->irq == IRQ_INTX) {
        guint64 one = 1;
        if (write(v->unmask, &one, 8) != 8) /* let the next INTx through */
            return 0;
    }
    return n;
}

/* Evidence that the device was neither reset nor closed, read from the host kernel's
 * view (sysfs config is the physical config space; vfio's config region virtualizes
 * MSI enable). Each part is returned on its own so the negative control can show
 * that every one of them notices. No device fd needed: the negative control must
 * not re-open (and so re-enable) the device before looking. */
typedef struct {
    bool bus_master, msi_enable, sysfs_enable;
    guint16 cmd, msi_ctrl;
} not_reset;

static not_reset check_not_reset(const char *bdf)
{
    not_reset r = { 0 };
    char path[PATH_MAX], buf[8] = { 0 };
    guint8 cfg[256] = { 0 };
    FILE *f;
    int fd;

    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        if (pread(fd, cfg, sizeof(cfg), 0) == sizeof(cfg)) {
            guint8 pos = cfg[PCI_CAPABILITY_LIST];
            memcpy(&r.cmd, cfg + PCI_COMMAND, 2);
            r.bus_master = r.cmd & PCI_COMMAND_MASTER;
            for (int guard = 0; pos && pos < 0xff && guard < 48; guard++) {
                if (cfg[pos] == PCI_CAP_ID_MSI || cfg[pos] == PCI_CAP_ID_MSIX) {
                    memcpy(&r.msi_ctrl, cfg + pos + 2, 2);
                    r.msi_enable = cfg[pos] == PCI_CAP_ID_MSI ? (r.msi_ctrl & PCI_MSI_FLAGS_ENABLE)
                                                               : (r.msi_ctrl & PCI_MSIX_FLAGS_ENABLE);
                    break;
                }
                pos = cfg[pos + 1];
            }
        }
        close(fd);
    }
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/enable", bdf);
    if ((f = fopen(path, "r"))) {
        r.sysfs_enable = fgets(buf, sizeof(buf), f) && buf[0] == '1';
        fclose(f);
    }
    return r;
}

/* ------------------------------------------------------------------ scenarios */

static const char *arg(char **args, const char *key)
{
    for (char **a = args; *a; a++)
        if (g_str_has_prefix(*a, key) && (*a)[strlen(key)] == '=')
            return *a + strlen(key) + 1;
    return NULL;
}

static int scenario_edu(const char *name, irq_mode irq, bool negative, char **args)
{
    g_autoptr(GError) err = NULL;
    const char *gen = arg(args, "gen");
    char bdf[32];
    vmm v = { .irq = irq };

    if (find_pci(0x1234, 0x11e8, bdf, sizeof(bdf)) < 0)
        bail("no edu device");
    v.bdf = bdf;
    if (!gen) {
        g_autofree char *t0 = NULL, *n = NULL, *gfd = NULL;
        char *next[] = { (char *)name, (char *)"gen=2", NULL, NULL, NULL, NULL };
        bool dma;
        guint64 irqs;
        not_reset r;
        vmm_start(&v, &err);
        ok(!v.restarted, "%s: cold start, %s %s in group %d", name,
           irq == IRQ_MSI ? "MSI" : "INTx", bdf, v.group);
        dma = edu_to_device(&v, 1);
        ok(dma, "%s: DMA RAM -> device before exec", name);
        irqs = edu_irq(&v);
        ok(irqs == 1, "%s: %s before exec counted %" G_GUINT64_FORMAT, name,
           irq == IRQ_MSI ? "MSI" : "INTx", irqs);
        r = check_not_reset(bdf);
        ok(r.bus_master && r.sysfs_enable && (irq != IRQ_MSI || r.msi_enable),
           "%s: before exec the checks see a live device (PCI_COMMAND 0x%04x, MSI control "
           "0x%04x, enable %d)", name, r.cmd, r.msi_ctrl, r.sysfs_enable);
        if (negative) {
            /* the bug the checks must catch: the device fd not preserved */
            char key[64];
            snprintf(key, sizeof(key), "vfio-device:%s", bdf);
            vfiocpr_fd_forget(v.ctx, key, 0);
            ok(fcntl(vfiocpr_device_fd(v.dev), F_GETFD) == FD_CLOEXEC,
               "%s: device fd %d deliberately left CLOEXEC", name, vfiocpr_device_fd(v.dev));
        }
        t0 = g_strdup_printf("t0=%" G_GUINT64_FORMAT, now_us());
        n = g_strdup_printf("n=%u", tap_n);
        gfd = g_strdup_printf("groupfd=%d", v.group_fd);
        next[2] = t0;
        next[3] = n;
        next[4] = gfd;
        vmm_exec(&v, "/proc/self/exe", next, &err);
        bail("exec: %s", err ? err->message : "?");
    }
    tap_n = (unsigned)atoi(arg(args, "n"));
    if (negative) {
        /* The library rightly refuses the state: the device fd is gone. */
        vfiocpr *ctx = NULL;
        int rn = vfiocpr_new(0, &ctx, &err);
        not_reset r = check_not_reset(bdf);
        ok(rn == -EBADMSG && err && strstr(err->message, "no preserved fd"),
           "%s: restore refuses the state: %s", name, err ? err->message : "accepted!");
        ok(!r.bus_master, "%s: the bus-master check catches it (PCI_COMMAND 0x%04x)", name, r.cmd);
        ok(!r.msi_enable, "%s: the MSI-enable check catches it (MSI control 0x%04x)", name,
           r.msi_ctrl);
        ok(!r.sysfs_enable, "%s: the sysfs enable check catches it", name);
        vfiocpr_unref(ctx);
        return 0;
    }
    {
        guint64 t0 = g_ascii_strtoull(arg(args, "t0"), NULL, 10), t1, irqs;
        not_reset r;
        bool dma;
        vmm_start(&v, &err);
        t1 = now_us();
        ok(v.restarted, "%s: restarted in place; blackout (prepare + exec + restore) %"
           G_GUINT64_FORMAT " us", name, t1 - t0);
        r = check_not_reset(bdf);
        ok(r.bus_master, "%s: not reset: bus master still set (PCI_COMMAND 0x%04x)", name, r.cmd);
        if (irq == IRQ_MSI)
            ok(r.msi_enable, "%s: not reset: MSI enable still set (MSI control 0x%04x)", name,
               r.msi_ctrl);
        ok(r.sysfs_enable, "%s: not closed: sysfs enable still 1", name);
        dma = edu_from_device(&v, 1);
        ok(dma, "%s: DMA device -> RAM after exec lands in the memfd at the new vaddr %p", name,
           (void *)v.va);
        irqs = edu_irq(&v);
        ok(irqs == 1, "%s: %s after exec counted %" G_GUINT64_FORMAT " on the preserved eventfd",
           name, irq == IRQ_MSI ? "MSI" : "INTx", irqs);
        dma = edu_to_device(&v, 2) && edu_from_device(&v, 2);
        ok(dma, "%s: DMA both ways again", name);
    }
    vmm_stop(&v);
    return 0;
}

static int scenario_rollback(void)
{
    g_autoptr(GError) err = NULL;
    char *args[] = { (char *)"x", NULL };
    char bdf[32];
    vmm v = { .irq = IRQ_MSI };
    unsigned fds;
    int r;

    if (find_pci(0x1234, 0x11e8, bdf, sizeof(bdf)) < 0)
        bail("no edu device");
    v.bdf = bdf;
    vmm_start(&v, &err);
    r = edu_to_device(&v, 7);
    ok(r, "rollback: DMA before the failed exec");
    fds = count_fds();
    r = vmm_exec(&v, "/nonexistent/new-vmm", args, &err);
    ok(r == -ENOENT && strstr(err->message, "rolled back"), "rollback: exec of a missing binary "
       "fails and rolls back: %s", err ? err->message : "?");
    ok(count_fds() == fds, "rollback: open fds unchanged (%u)", fds);
    ok(fcntl(vfiocpr_device_fd(v.dev), F_GETFD) == FD_CLOEXEC, "rollback: device fd CLOEXEC again");
    r = edu_from_device(&v, 7);
    ok(r, "rollback: DMA device -> RAM works in the old process");
    r = edu_to_device(&v, 8) && edu_from_device(&v, 8);
    ok(r, "rollback: DMA both ways again");
    r = (int)edu_irq(&v);
    ok(r == 1, "rollback: MSI still delivered (%d)", r);
    vmm_stop(&v);
    return 0;
}

static int scenario_cycles(char **args)
{
    g_autoptr(GError) err = NULL;
    const char *gen_s = arg(args, "gen"), *total_s = arg(args, "total");
    unsigned gen = gen_s ? (unsigned)atoi(gen_s) : 1;
    unsigned total = total_s ? (unsigned)atoi(total_s) : args[0] ? (unsigned)atoi(args[0]) : 100;
    unsigned fds0 = arg(args, "fds") ? (unsigned)atoi(arg(args, "fds")) : 0, fds;
    guint64 worst = arg(args, "worst") ? g_ascii_strtoull(arg(args, "worst"), NULL, 10) : 0;
    guint64 sum = arg(args, "sum") ? g_ascii_strtoull(arg(args, "sum"), NULL, 10) : 0;
    char bdf[32];
    vmm v = { .irq = IRQ_MSI };
    bool dma_ok, irq_ok;

    if (arg(args, "n"))
        tap_n = (unsigned)atoi(arg(args, "n"));
    if (find_pci(0x1234, 0x11e8, bdf, sizeof(bdf)) < 0)
        bail("no edu device");
    v.bdf = bdf;
    vmm_start(&v, &err);
    if (gen > 1) {
        guint64 b = now_us() - g_ascii_strtoull(arg(args, "t0"), NULL, 10);
        worst = MAX(worst, b);
        sum += b;
    }
    /* the data the previous image left in the device must arrive at our mapping */
    dma_ok = (gen == 1 || edu_from_device(&v, gen - 1)) && edu_to_device(&v, gen);
    irq_ok = edu_irq(&v) == 1;
    fds = count_fds();
    if (gen == 1)
        fds0 = fds;
    ok(dma_ok && irq_ok && fds == fds0, "cycles: image %u/%u: DMA %s, MSI %s, %u open fds", gen,
       total, dma_ok ? "ok" : "FAILED", irq_ok ? "ok" : "LOST", fds);
    if (gen < total) {
        g_autofree char *a1 = g_strdup_printf("gen=%u", gen + 1), *a2 = g_strdup_printf("total=%u", total),
                        *a3 = g_strdup_printf("fds=%u", fds0), *a4 = g_strdup_printf("n=%u", tap_n),
                        *a5 = g_strdup_printf("worst=%" G_GUINT64_FORMAT, worst),
                        *a6 = g_strdup_printf("sum=%" G_GUINT64_FORMAT, sum),
                        *a7 = g_strdup_printf("t0=%" G_GUINT64_FORMAT, now_us());
        char *next[] = { (char *)"cycles", a1, a2, a3, a4, a5, a6, a7, NULL };
        vmm_exec(&v, "/proc/self/exe", next, &err);
        bail("exec %u: %s", gen, err ? err->message : "?");
    }
    vmm_stop(&v);
    printf("# cycles: %u execs, blackout mean %" G_GUINT64_FORMAT " us, worst %" G_GUINT64_FORMAT
           " us\n", total - 1, total > 1 ? sum / (total - 1) : 0, worst);
    return 0;
}

static int scenario_group_busy(char **args)
{
    g_autoptr(GError) err = NULL;
    char bdf[32], other[32];
    vmm v = { .irq = IRQ_MSI };
    int other_group, gfd, cfd, r;

    if (find_pci(0x1234, 0x11e8, bdf, sizeof(bdf)) < 0)
        bail("no edu device");
    if (find_pci(0x1b36, 0x0010, other, sizeof(other)) < 0 &&
        find_pci(0x8086, 0x10d3, other, sizeof(other)) < 0)
        bail("group-busy needs a second vfio-pci device (nvme or e1000e)");
    v.bdf = bdf;
    if (!arg(args, "gen")) {
        char *next[] = { (char *)"group-busy", (char *)"gen=2", NULL, NULL };
        g_autofree char *n = NULL;
        vmm_start(&v, &err);
        ok(edu_to_device(&v, 3), "group-busy: DMA before exec");
        n = g_strdup_printf("n=%u", tap_n);
        next[2] = n;
        vmm_exec(&v, "/proc/self/exe", next, &err);
        bail("exec: %s", err ? err->message : "?");
    }
    tap_n = (unsigned)atoi(arg(args, "n"));
    other_group = vfiocpr_device_group_id(other, &err);
    /* the kernel's own rule, on the raw container fd: the library restores first, so
     * look at the preserved container before the VMM re-maps (restart mode, pending) */
    {
        vfiocpr *ctx = NULL;
        vfiocpr_container *c = NULL;
        char path[64];
        if (vfiocpr_new(VFIOCPR_NEW_KEEP_STATE, &ctx, &err) < 0 ||
            vfiocpr_container_open(ctx, "c0", &c, &err) < 0)
            bail("restore: %s", err->message);
        cfd = vfiocpr_container_fd(c);
        snprintf(path, sizeof(path), "/dev/vfio/%d", other_group);
        gfd = open(path, O_RDWR | O_CLOEXEC);
        r = gfd >= 0 ? ioctl(gfd, VFIO_GROUP_SET_CONTAINER, &cfd) : -1;
        ok(r < 0 && errno == EBUSY, "group-busy: the kernel refuses VFIO_GROUP_SET_CONTAINER while "
           "vaddrs are invalid: %s", r < 0 ? g_strerror(errno) : "accepted");
        if (gfd >= 0)
            close(gfd);
        vfiocpr_container_unref(c);
        vfiocpr_unref(ctx); /* KEEP_STATE: the real start-up below restores for good */
    }
    v.extra_group = other_group;
    vmm_start(&v, &err);
    ok(v.extra_rc_pending == -EBUSY, "group-busy: the library refuses first, with the reason: %s",
       v.extra_msg);
    r = edu_from_device(&v, 3);
    ok(r, "group-busy: DMA after restore");
    ok(v.extra_rc_after >= 0, "group-busy: once every range is re-mapped the group attaches (%d)",
       v.extra_rc_after);
    vmm_stop(&v);
    return 0;
}

/* ------------------------------------------------------------------ NVMe */

typedef struct {
    guint32 sq_tail, cq_head, phase, cid;
} nvme_meta;

static bool nvme_wait_rdy(vmm *v, guint32 want)
{
    for (int i = 0; i < 5000; i++) {
        if ((rd32(v, NVME_CSTS) & 1) == want)
            return true;
        usleep(1000);
    }
    return false;
}

static bool nvme_enable(vmm *v)
{
    nvme_meta *m = (nvme_meta *)(v->va + NVME_META_OFF);
    wr32(v, NVME_CC, 0);
    if (!nvme_wait_rdy(v, 0))
        return false;
    memset(v->va + NVME_SQ_OFF, 0, 0x3000);
    *m = (nvme_meta){ .phase = 1 };
    wr32(v, NVME_AQA, 15u << 16 | 15u);
    wr32(v, NVME_ASQ, (guint32)(RAM_IOVA + NVME_SQ_OFF));
    wr32(v, NVME_ASQ + 4, 0);
    wr32(v, NVME_ACQ, (guint32)(RAM_IOVA + NVME_CQ_OFF));
    wr32(v, NVME_ACQ + 4, 0);
    wr32(v, NVME_CC, NVME_CC_VALUE);
    return nvme_wait_rdy(v, 1);
}

/* Identify controller into the data page; true when it completed (MSI-X counted) and
 * the PCI vendor id arrived in this image's view of guest RAM. */
static bool nvme_identify(vmm *v, guint64 *irqs)
{
    nvme_meta *m = (nvme_meta *)(v->va + NVME_META_OFF);
    guint32 *sqe = (guint32 *)(v->va + NVME_SQ_OFF + m->sq_tail * 64);
    volatile guint32 *cqe = (guint32 *)(v->va + NVME_CQ_OFF + m->cq_head * 16);
    guint16 vid;

    memset(v->va + NVME_DATA_OFF, 0, 4096);
    memset(sqe, 0, 64);
    sqe[0] = 0x06 | (++m->cid << 16); /* Identify */
    sqe[6] = (guint32)(RAM_IOVA + NVME_DATA_OFF); /* PRP1 */
    sqe[10] = 1;                                /* CNS 1: controller */
    m->sq_tail = (m->sq_tail + 1) % 16;
    wr32(v, NVME_SQ0TDBL, m->sq_tail);
    *irqs = eventfd_wait(v->trigger, 5000);
    for (int i = 0; i < 5000 && ((cqe[3] >> 16) & 1) != m->phase; i++)
        usleep(1000);
    if (((cqe[3] >> 16) & 1) != m->phase || (cqe[3] >> 17) != 0)
        return false;
    m->cq_head = (m->cq_head + 1) % 16;
    if (!m->cq_head)
        m->phase ^= 1;
    wr32(v, NVME_CQ0HDBL, m->cq_head);
    memcpy(&vid, v->va + NVME_DATA_OFF, 2);
    return vid == 0x1b36;
}

static int scenario_nvme(bool negative, char **args)
{
    g_autoptr(GError) err = NULL;
    char bdf[32];
    vmm v = { .irq = IRQ_MSIX };
    guint64 irqs = 0;

    if (find_pci(0x1b36, 0x0010, bdf, sizeof(bdf)) < 0)
        bail("no nvme device");
    v.bdf = bdf;
    if (!arg(args, "gen")) {
        char *next[] = { (char *)"nvme", (char *)"gen=2", NULL, NULL, NULL };
        g_autofree char *t0 = NULL, *n = NULL;
        bool en, idf;
        vmm_start(&v, &err);
        en = nvme_enable(&v);
        ok(en, "nvme: controller enabled: CC 0x%08x CSTS 0x%x", rd32(&v, NVME_CC),
           rd32(&v, NVME_CSTS));
        idf = nvme_identify(&v, &irqs);
        ok(idf && irqs == 1, "nvme: Identify by DMA completed, MSI-X counted %" G_GUINT64_FORMAT,
           irqs);
        if (negative) {
            /* The last close of the device fd, then a re-open: what the checks must see.
             * The BAR mapping holds the file too: unmap it, or close is not the last. */
            g_autoptr(vfiocpr_device) again = NULL;
            void *bar;
            guint32 cc, csts;
            munmap((void *)v.bar, v.bar_size);
            ok(vfiocpr_device_close(v.dev, &err) == 0, "nvme-negative: device fd closed");
            if (vfiocpr_device_open(v.c, v.group, bdf, &again, &err) < 0 ||
                vfiocpr_device_map_region(again, 0, &bar, NULL, &err) < 0)
                bail("re-open: %s", err->message);
            v.bar = bar;
            cc = rd32(&v, NVME_CC);
            csts = rd32(&v, NVME_CSTS);
            ok(cc == 0, "nvme-negative: the CC.EN check catches the reset (CC 0x%08x)", cc);
            ok((csts & 1) == 0, "nvme-negative: the CSTS.RDY check catches it (CSTS 0x%x)", csts);
            vmm_stop(&v); /* v.bar is the re-opened device's mapping now */
            return 0;
        }
        t0 = g_strdup_printf("t0=%" G_GUINT64_FORMAT, now_us());
        n = g_strdup_printf("n=%u", tap_n);
        next[2] = t0;
        next[3] = n;
        vmm_exec(&v, "/proc/self/exe", next, &err);
        bail("exec: %s", err ? err->message : "?");
    }
    tap_n = (unsigned)atoi(arg(args, "n"));
    {
        guint64 t0 = g_ascii_strtoull(arg(args, "t0"), NULL, 10), t1;
        guint32 cc, csts;
        bool idf;
        vmm_start(&v, &err);
        t1 = now_us();
        ok(v.restarted, "nvme: restarted; blackout %" G_GUINT64_FORMAT " us", t1 - t0);
        cc = rd32(&v, NVME_CC);
        csts = rd32(&v, NVME_CSTS);
        ok(cc == NVME_CC_VALUE, "nvme: CC still 0x%08x (EN=1): not reset", cc);
        ok((csts & 1) == 1, "nvme: CSTS.RDY still 1 (CSTS 0x%x)", csts);
        idf = nvme_identify(&v, &irqs);
        ok(idf && irqs == 1, "nvme: a new Identify completes into the re-mapped memfd, MSI-X "
           "counted %" G_GUINT64_FORMAT, irqs);
    }
    vmm_stop(&v);
    return 0;
}

/* ------------------------------------------------------------------ demo */

static void say(const char *who, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void say(const char *who, const char *fmt, ...)
{
    va_list ap;
    printf("[%s pid %d] ", who, (int)getpid());
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static int scenario_demo(char **args)
{
    g_autoptr(GError) err = NULL;
    char bdf[32];
    vmm v = { .irq = IRQ_MSI };
    not_reset r;
    guint64 irqs;

    if (find_pci(0x1234, 0x11e8, bdf, sizeof(bdf)) < 0)
        bail("no edu device");
    v.bdf = bdf;
    if (!arg(args, "gen")) {
        g_autofree char *t0 = NULL;
        char *next[] = { (char *)"demo", (char *)"gen=2", NULL, NULL };
        printf("\nlibvfiocpr demo: a VMM upgrades itself with exec() while its passthrough PCI "
               "device keeps working\n\n");
        vmm_start(&v, &err);
        say("old VMM", "opened PCI device %s (QEMU edu, IOMMU group %d) through libvfiocpr: "
            "container fd %d, device fd %d", bdf, v.group, vfiocpr_container_fd(v.c),
            vfiocpr_device_fd(v.dev));
        say("old VMM", "guest RAM: a 2 MiB memfd mapped at %p, DMA-mapped at IOVA 0x%llx",
            (void *)v.va, (unsigned long long)RAM_IOVA);
        say("old VMM", "device DMA, guest RAM -> device: %s", edu_to_device(&v, 42) ?
            "2048 bytes copied" : "FAILED");
        irqs = edu_irq(&v);
        say("old VMM", "device raised an MSI interrupt: eventfd counted %" G_GUINT64_FORMAT, irqs);
        say("old VMM", "upgrading in place: vfiocpr_exec(\"/proc/self/exe\") - DMA vaddrs "
            "invalidated, state sealed in a memfd, fds kept across exec");
        fflush(stdout);
        t0 = g_strdup_printf("t0=%" G_GUINT64_FORMAT, now_us());
        next[2] = t0;
        vmm_exec(&v, "/proc/self/exe", next, &err);
        bail("exec: %s", err ? err->message : "?");
    }
    {
        guint64 t0 = g_ascii_strtoull(arg(args, "t0"), NULL, 10), t1;
        bool dma;
        vmm_start(&v, &err);
        t1 = now_us();
        say("new VMM", "a new program image is running (same pid): it ran the SAME start-up "
            "code, and the library turned it into a restore");
        say("new VMM", "device fd %d and container fd %d were inherited: no VFIO_GROUP_GET_DEVICE_FD, "
            "no reset, no SET_IRQS", vfiocpr_device_fd(v.dev), vfiocpr_container_fd(v.c));
        say("new VMM", "guest RAM is now mapped at %p: DMA re-pointed there with "
            "VFIO_IOMMU_MAP_DMA(VADDR)", (void *)v.va);
        r = check_not_reset(bdf);
        say("new VMM", "evidence the device was not reset or closed: PCI command 0x%04x (bus "
            "master %s), MSI %s, sysfs enable %s", r.cmd, r.bus_master ? "on" : "OFF",
            r.msi_enable ? "still enabled" : "DISABLED", r.sysfs_enable ? "1" : "0");
        dma = edu_from_device(&v, 42);
        say("new VMM", "device DMA, device -> guest RAM: %s", dma ? "the 2048 bytes the old VMM "
            "gave the device arrived intact at the new mapping" : "FAILED");
        irqs = edu_irq(&v);
        say("new VMM", "device raised an MSI interrupt: the inherited eventfd counted %"
            G_GUINT64_FORMAT, irqs);
        printf("\nblackout (old VMM starts the exec -> new VMM finished restoring): %.1f ms "
               "(under QEMU TCG emulation)\n", (t1 - t0) / 1000.0);
        printf("result: %s\n\n", dma && irqs == 1 && r.bus_master && r.msi_enable &&
               r.sysfs_enable ? "the device kept working across the upgrade" : "FAILED");
        vmm_stop(&v);
        return dma && irqs == 1 && r.bus_master && r.msi_enable && r.sysfs_enable ? 0 : 1;
    }
}

int main(int argc, char **argv)
{
    const char *s = argc > 1 ? argv[1] : "";
    char **args = argv + (argc > 1 ? 2 : 1);
    int r;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(s, "edu-msi") == 0)
        r = scenario_edu(s, IRQ_MSI, false, args);
    else if (strcmp(s, "edu-intx") == 0)
        r = scenario_edu(s, IRQ_INTX, false, args);
    else if (strcmp(s, "edu-negative") == 0)
        r = scenario_edu(s, IRQ_MSI, true, args);
    else if (strcmp(s, "nvme") == 0)
        r = scenario_nvme(false, args);
    else if (strcmp(s, "nvme-negative") == 0)
        r = scenario_nvme(true, args);
    else if (strcmp(s, "rollback") == 0)
        r = scenario_rollback();
    else if (strcmp(s, "cycles") == 0)
        r = scenario_cycles(args);
    else if (strcmp(s, "group-busy") == 0)
        r = scenario_group_busy(args);
    else if (strcmp(s, "demo") == 0)
        return scenario_demo(args);
    else
        bail("unknown scenario '%s'", s);
    printf("1..%u\n", tap_n);
    return r ? r : tap_failed ? 1 : 0;
}
