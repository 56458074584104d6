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
 *   guest-cpr group-busy     e: a new group while vaddrs are invalid: EBUSY (type1)
 *   guest-cpr two-ioas       edu and nvme in two containers (IOAS), both across exec
 *   guest-cpr exec-window    a DMA the device runs during the exec lands in the memfd
 *   guest-cpr exec-window-negative   its control: the range unmapped underneath
 *   guest-cpr pin            iommufd: VmPin moves with vfiocpr_finish (CHANGE_PROCESS);
 *                            too low an RLIMIT_MEMLOCK: ENOMEM, retried after raising it
 *   guest-cpr nvme-busy      a helper process keeps nvme busy with DMA while the VMM
 *                            execs: commands complete during the window; the longest
 *                            gap between completions is printed (the device's blackout)
 *   guest-cpr uva-refused    iommufd: a user-VA mapping (memfd -1) blocks vfiocpr_exec;
 *                            unmapped, the exec goes through
 *   guest-cpr transfer [device=edu|nvme] [count=N]
 *                            N transfers (default 10) between separately started
 *                            processes over a UNIX socket: each restores with the same
 *                            start-up, checks the device (not reset, DMA, interrupt)
 *                            and hands on
 *   guest-cpr transfer-faults [device=edu|nvme]
 *                            a new process killed before receiving, after receiving,
 *                            after restoring, one that hangs, one that refuses: after
 *                            each the old one carries on (DMA at its addresses, its
 *                            interrupt delivered once, not reset); then a good one
 *   guest-cpr memlock        CAP_IPC_LOCK dropped: too low an RLIMIT_MEMLOCK blocks
 *                            vfiocpr_exec; in the new image the step that charges it
 *                            (type1 re-map, iommufd finish) fails with ENOMEM, a retry
 *                            after raising the limit works
 *   guest-cpr soak [total=N] [negative=fd-leak|intx-no-unmask|extra-msix|dma-skip|nvme-reset]
 *                            N upgrades (default 1000; make soak) of edu on INTx and
 *                            nvme on MSI-X, every one checked (not reset, DMA both ways,
 *                            each interrupt counted exactly once, fds/VmPin/VmLck steady);
 *                            prints a "# soak-summary" line with the times and usage
 *   guest-cpr swap-refused   edu and nvme: the new image is given the old one's state
 *                            with the two device records' fds swapped (checksums
 *                            recomputed); the restore refuses it naming both, the
 *                            nvme controller is not reset, and the honest state then
 *                            restores (type1: a swapped group record is refused too)
 *   guest-cpr demo           the same as edu-msi, told in words for a person
 * With --backend=iommufd first (guest-cpr --backend=iommufd edu-msi) every container
 * is an iommufd IOAS and every device its vfio cdev; the scenarios are the same code.
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
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>

#include "vfiocpr.h"
#include "private.h" /* the state codec, to forge a state as an attacker could */
#include "vfio-compat.h"
#include "guest-util.h"
#include "../seam-record.h"

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

static int cmp_u64(const void *a, const void *b)
{
    guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
    return (x > y) - (x < y);
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
    /* transfer: the context comes over this socket (vfiocpr_new_incoming) */
    bool incoming;
    int in_sock;
    /* group-busy: a second group tried while ranges are pending, then after finish */
    int extra_group;
    int extra_rc_pending, extra_rc_after;
    /* memlock: the scenario maps guest RAM itself, to see the re-map fail and retry it */
    bool no_map;
    char extra_msg[512];
} vmm;

static guint32 rd32(vmm *v, guint32 off) { return v->bar[off / 4]; }
static void wr32(vmm *v, guint32 off, guint32 val) { v->bar[off / 4] = val; }

static int cfg_read(vmm *v, guint32 off, void *buf, size_t n)
{
    return pread(vfiocpr_device_fd(v->dev), buf, n, (off_t)(v->cfg_off + off)) == (ssize_t)n ? 0 : -1;
}

/* The IOMMU backend of every container, from "--backend=iommufd" before the scenario
 * name (type1 otherwise); each image passes it on. type1 runs go through the 0.1
 * calls (container_open, add_group, device_open) so the old API stays covered on a
 * real kernel, iommufd runs through open_backend and device_attach. */
static vfiocpr_backend backend = VFIOCPR_BACKEND_TYPE1;
#define IOMMUFD (backend == VFIOCPR_BACKEND_IOMMUFD)

/* What a VMM runs at start-up, cold or restarted: the same calls either way. The
 * interrupt wiring goes through the library too: on a restart it hands back the
 * preserved eventfds and issues no SET_IRQS. In three steps so that scenarios with
 * two devices, or a finish of their own, reuse them. */
static void vmm_begin(vmm *v, GError **error)
{
    if (v->incoming) {
        if (vfiocpr_new_incoming(v->in_sock, 10000, 0, &v->ctx, error) < 0)
            bail("vfiocpr_new_incoming: %s", (*error)->message);
    } else if (vfiocpr_new(0, &v->ctx, error) < 0) {
        bail("vfiocpr_new: %s", (*error)->message);
    }
    v->restarted = vfiocpr_is_restart(v->ctx);
    v->ram = vfiocpr_fd_find(v->ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, NULL);
    if (v->ram < 0) {
        v->ram = memfd_create("guest-ram", MFD_CLOEXEC);
        if (v->ram < 0 || ftruncate(v->ram, RAM_SIZE) < 0 ||
            vfiocpr_fd_save(v->ctx, "guest-ram", 0, v->ram, VFIOCPR_FD_MEMFD, error) < 0)
            bail("guest RAM");
    }
    /* a new image maps guest RAM at a new address: type1 needs MAP|VADDR for it */
    v->va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, v->ram, 0);
    if (v->va == MAP_FAILED)
        bail("mmap guest RAM");
}

/* Container `cname` (opened, or found again on a restart), v->bdf in it, BAR0, bus
 * master on a cold start, guest RAM DMA-mapped, one interrupt vector. */
static void vmm_device(vmm *v, const char *cname, GError **error)
{
    struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    void *bar;
    guint64 bar_size;

    v->group = vfiocpr_device_group_id(v->bdf, error);
    if (v->group < 0)
        bail("group of %s: %s", v->bdf, (*error)->message);
    if (IOMMUFD) {
        if (vfiocpr_container_open_backend(v->ctx, cname, VFIOCPR_BACKEND_IOMMUFD, &v->c,
                                           error) < 0)
            bail("open iommufd container: %s", (*error)->message);
        if (vfiocpr_container_backend(v->c) != VFIOCPR_BACKEND_IOMMUFD)
            bail("container %s is %s, not iommufd", cname,
                 vfiocpr_backend_to_string(vfiocpr_container_backend(v->c)));
        v->group_fd = -1;
        if (vfiocpr_device_attach(v->c, v->bdf, &v->dev, error) < 0)
            bail("attach %s: %s", v->bdf, (*error)->message);
    } else {
        if (vfiocpr_container_open(v->ctx, cname, &v->c, error) < 0)
            bail("open container: %s", (*error)->message);
        if (v->extra_group) {
            GError *e = NULL;
            v->extra_rc_pending = vfiocpr_container_add_group(v->c, v->extra_group, &e);
            g_strlcpy(v->extra_msg, e ? e->message : "accepted", sizeof(v->extra_msg));
            g_clear_error(&e);
        }
        if ((v->group_fd = vfiocpr_container_add_group(v->c, v->group, error)) < 0 ||
            vfiocpr_device_open(v->c, v->group, v->bdf, &v->dev, error) < 0)
            bail("open %s: %s", v->bdf, (*error)->message);
    }
    if (vfiocpr_device_map_region(v->dev, 0, &bar, &bar_size, error) < 0)
        bail("BAR0 of %s: %s", v->bdf, (*error)->message);
    v->bar = bar;
    v->bar_size = bar_size;
    if (ioctl(vfiocpr_device_fd(v->dev), VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0)
        bail("config region");
    v->cfg_off = cfg.offset;
    if (!v->restarted) {
        guint16 cmd = 0;
        cfg_read(v, PCI_COMMAND, &cmd, 2);
        cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        if (pwrite(vfiocpr_device_fd(v->dev), &cmd, 2, (off_t)(v->cfg_off + PCI_COMMAND)) != 2)
            bail("enable bus master");
    }
    if (!v->no_map && vfiocpr_dma_map(v->c, RAM_IOVA, RAM_SIZE, v->va, v->ram, 0,
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
}

static void vmm_end(vmm *v, GError **error)
{
    g_auto(GStrv) unclaimed = NULL;

    if (vfiocpr_finish(v->ctx, &unclaimed, error) < 0)
        bail("finish: %s", (*error)->message);
    if (v->restarted && unclaimed && unclaimed[0])
        bail("unclaimed after restart: %s", unclaimed[0]);
    if (v->extra_group)
        v->extra_rc_after = vfiocpr_container_add_group(v->c, v->extra_group, NULL);
}

static void vmm_start(vmm *v, GError **error)
{
    vmm_begin(v, error);
    vmm_device(v, "c0", error);
    vmm_end(v, error);
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
    if (IOMMUFD)
        g_ptr_array_add(argv, g_strdup("--backend=iommufd"));
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
        ok(!v.restarted, "%s: cold start (%s), %s %s in group %d", name,
           vfiocpr_backend_to_string(vfiocpr_container_backend(v.c)),
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
    if (irqs) /* else polled, for a process that does not own the eventfd */
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
            if ((IOMMUFD ? vfiocpr_device_attach(v.c, bdf, &again, &err)
                         : vfiocpr_device_open(v.c, v.group, bdf, &again, &err)) < 0 ||
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

/* ------------------------------------------------------------------ two containers */

/* edu in container c0, nvme in c1 (two IOAS on iommufd, two type1 containers
 * otherwise), one guest RAM mapped in both, as a VMM with two IOMMU domains has. */
static void two_start(vmm *e, vmm *n, GError **error)
{
    vmm_begin(e, error);
    n->ctx = vfiocpr_ref(e->ctx);
    n->ram = e->ram;
    n->va = e->va;
    n->restarted = e->restarted;
    vmm_device(e, "c0", error);
    vmm_device(n, "c1", error);
    vmm_end(e, error);
}

static void two_stop(vmm *e, vmm *n)
{
    n->va = NULL; /* e's */
    vmm_stop(n);
    vmm_stop(e);
}

static int scenario_two(char **args)
{
    g_autoptr(GError) err = NULL;
    char ebdf[32], nbdf[32];
    vmm e = { .irq = IRQ_MSI }, n = { .irq = IRQ_MSIX };
    guint64 irqs = 0;
    bool r;

    if (find_pci(0x1234, 0x11e8, ebdf, sizeof(ebdf)) < 0 ||
        find_pci(0x1b36, 0x0010, nbdf, sizeof(nbdf)) < 0)
        bail("two-ioas needs edu and nvme");
    e.bdf = ebdf;
    n.bdf = nbdf;
    if (!arg(args, "gen")) {
        g_autofree char *tn = NULL;
        char *next[] = { (char *)"two-ioas", (char *)"gen=2", NULL, NULL };
        two_start(&e, &n, &err);
        /* a container is one /dev/iommu fd with one IOAS: ids are per fd, so both may be 1 */
        ok(vfiocpr_container_fd(e.c) != vfiocpr_container_fd(n.c) &&
           (IOMMUFD ? vfiocpr_container_ioas_id(e.c) > 0 && vfiocpr_container_ioas_id(n.c) > 0
                    : vfiocpr_container_ioas_id(e.c) == -ENOTTY),
           "two-ioas: edu in container fd %d, nvme in container fd %d (%s: IOAS ids %d, %d)",
           vfiocpr_container_fd(e.c), vfiocpr_container_fd(n.c),
           vfiocpr_backend_to_string(backend), vfiocpr_container_ioas_id(e.c),
           vfiocpr_container_ioas_id(n.c));
        r = edu_to_device(&e, 21);
        ok(r, "two-ioas: edu DMA RAM -> device before exec");
        r = nvme_enable(&n) && nvme_identify(&n, &irqs) && irqs == 1;
        ok(r, "two-ioas: nvme enabled, Identify by DMA completed, MSI-X counted %" G_GUINT64_FORMAT,
           irqs);
        tn = g_strdup_printf("n=%u", tap_n);
        next[2] = tn;
        vmm_exec(&e, "/proc/self/exe", next, &err);
        bail("exec: %s", err ? err->message : "?");
    }
    tap_n = (unsigned)atoi(arg(args, "n"));
    two_start(&e, &n, &err);
    ok(e.restarted, "two-ioas: restarted, both containers found again");
    r = edu_from_device(&e, 21);
    ok(r, "two-ioas: edu DMA device -> RAM after exec (container c0)");
    ok(edu_irq(&e) == 1, "two-ioas: edu MSI after exec");
    ok(rd32(&n, NVME_CC) == NVME_CC_VALUE && (rd32(&n, NVME_CSTS) & 1),
       "two-ioas: nvme not reset (CC 0x%08x CSTS 0x%x)", rd32(&n, NVME_CC), rd32(&n, NVME_CSTS));
    r = nvme_identify(&n, &irqs) && irqs == 1;
    ok(r, "two-ioas: nvme Identify after exec (container c1), MSI-X counted %" G_GUINT64_FORMAT,
       irqs);
    two_stop(&e, &n);
    return 0;
}

/* ------------------------------------------------------------------ swapped fds */

static GBytes *read_state(int fd)
{
    struct stat st;
    guint8 *buf;

    if (fstat(fd, &st) < 0 || st.st_size <= 0)
        bail("state fd %d: fstat", fd);
    buf = g_malloc((gsize)st.st_size);
    if (pread(fd, buf, (gsize)st.st_size, 0) != st.st_size)
        bail("state fd %d: read", fd);
    return g_bytes_new_take(buf, (gsize)st.st_size);
}

/* The state with the fds of two records swapped (all: their recorded identities
 * too), encoded again with good checksums. The record layout is lib/fdreg.c's. */
static GBytes *forge_swap(GBytes *blob, const char *nx, guint64 ix, const char *ny, guint64 iy,
                          bool all)
{
    typedef struct {
        guint32 name, kind;
        guint64 id;
        gint32 fd;
        guint32 mode;
        guint64 dev, ino, rdev;
    } wire_fd;
    g_autoptr(GVariant) payload = NULL, vfds = NULL, vnames = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree const char **names = NULL;
    g_autofree wire_fd *w = NULL;
    GVariantDict d;
    wire_fd *x = NULL, *y = NULL, t;
    const wire_fd *src;
    gsize n;

    if (vfiocpr_state_decode(blob, &payload, NULL, NULL, &err) < 0)
        bail("decode the state: %s", err->message);
    vnames = g_variant_lookup_value(payload, "fd-names", G_VARIANT_TYPE_STRING_ARRAY);
    vfds = g_variant_lookup_value(payload, "fds", G_VARIANT_TYPE("a(uutiuttt)"));
    if (!vnames || !vfds)
        bail("state without an fd table");
    names = g_variant_get_strv(vnames, NULL);
    src = g_variant_get_fixed_array(vfds, &n, sizeof(wire_fd));
    w = g_memdup2(src, n * sizeof(wire_fd));
    for (gsize i = 0; i < n; i++) {
        if (strcmp(names[w[i].name], nx) == 0 && w[i].id == ix)
            x = &w[i];
        if (strcmp(names[w[i].name], ny) == 0 && w[i].id == iy)
            y = &w[i];
    }
    if (!x || !y)
        bail("state has no record %s/%" G_GUINT64_FORMAT " or %s/%" G_GUINT64_FORMAT, nx, ix, ny,
             iy);
    t = *x;
    x->fd = y->fd;
    y->fd = t.fd;
    if (all) {
        x->mode = y->mode, x->dev = y->dev, x->ino = y->ino, x->rdev = y->rdev;
        y->mode = t.mode, y->dev = t.dev, y->ino = t.ino, y->rdev = t.rdev;
    }
    g_variant_dict_init(&d, payload);
    g_variant_dict_insert_value(&d, "fds", g_variant_new_fixed_array(G_VARIANT_TYPE("(uutiuttt)"),
                                                                      w, n, sizeof(wire_fd)));
    return vfiocpr_state_encode(g_variant_dict_end(&d));
}

/* Offers blob as the incoming state; true when vfiocpr_new() refused it with a
 * message naming both what_x and what_y (into msg), and consumed nothing. */
/* Restores blob in this process: true if refused with a message naming what_x and
 * what_y, or alt_x and alt_y (when not NULL), nothing consumed. */
static bool refused_either(GBytes *blob, const char *what_x, const char *what_y,
                           const char *alt_x, const char *alt_y, char *msg, size_t len)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *num = NULL;
    vfiocpr *ctx = NULL;
    gsize size;
    const void *p = g_bytes_get_data(blob, &size);
    int fd = memfd_create("forged-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int r;
    bool good;

    if (fd < 0 || write(fd, p, size) != (ssize_t)size ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
        bail("forged state memfd");
    num = g_strdup_printf("%d", fd);
    setenv(VFIOCPR_STATE_ENV, num, 1);
    r = vfiocpr_new(0, &ctx, &err);
    g_strlcpy(msg, err ? err->message : "accepted", len);
    good = r < 0 && err &&
           ((strstr(err->message, what_x) && strstr(err->message, what_y)) ||
            (alt_x && strstr(err->message, alt_x) && strstr(err->message, alt_y))) &&
           g_strcmp0(getenv(VFIOCPR_STATE_ENV), num) == 0 && fcntl(fd, F_GETFD) >= 0;
    if (ctx)
        vfiocpr_unref(ctx);
    close(fd);
    return good;
}

static bool refused(GBytes *blob, const char *what_x, const char *what_y, char *msg, size_t len)
{
    return refused_either(blob, what_x, what_y, NULL, NULL, msg, len);
}

static int scenario_swap(char **args)
{
    g_autoptr(GError) err = NULL;
    char ebdf[32], nbdf[32], msg[1024];
    vmm e = { .irq = IRQ_MSI }, n = { .irq = IRQ_MSIX };
    guint64 irqs = 0;
    bool r;

    if (find_pci(0x1234, 0x11e8, ebdf, sizeof(ebdf)) < 0 ||
        find_pci(0x1b36, 0x0010, nbdf, sizeof(nbdf)) < 0)
        bail("swap-refused needs edu and nvme");
    e.bdf = ebdf;
    n.bdf = nbdf;
    if (!arg(args, "gen")) {
        g_autofree char *tn = NULL;
        char *next[] = { (char *)"swap-refused", (char *)"gen=2", NULL, NULL };
        two_start(&e, &n, &err);
        r = edu_to_device(&e, 45);
        ok(r, "swap-refused: edu DMA RAM -> device before exec");
        r = nvme_enable(&n) && nvme_identify(&n, &irqs) && irqs == 1;
        ok(r, "swap-refused: nvme enabled, Identify completed before exec");
        tn = g_strdup_printf("n=%u", tap_n);
        next[2] = tn;
        vmm_exec(&e, "/proc/self/exe", next, &err);
        bail("exec: %s", err ? err->message : "?");
    }
    tap_n = (unsigned)atoi(arg(args, "n"));
    {
        const char *env = getenv(VFIOCPR_STATE_ENV);
        g_autofree char *keep = g_strdup(env);
        g_autofree char *rx = g_strdup_printf("vfio-device:%s", ebdf);
        g_autofree char *ry = g_strdup_printf("vfio-device:%s", nbdf);
        g_autoptr(GBytes) blob = NULL, bad = NULL;
        not_reset nr;

        if (!env)
            bail("no incoming state");
        blob = read_state(atoi(env));
        /* a cdev's own rdev would give a swap of the numbers alone away to fstat: the
         * records are swapped whole there, so the device check is what decides */
        bad = forge_swap(blob, rx, 0, ry, 0, IOMMUFD);
        r = refused(bad, ebdf, nbdf, msg, sizeof(msg));
        ok(r, "swap-refused: device records with swapped fds refused naming both (by %s): %s",
           strstr(msg, "vfio-device-syspath") ? "fdinfo" :
           strstr(msg, "recorded device") ? "the recorded identity" : "fstat", msg);
        nr = check_not_reset(nbdf);
        ok(nr.bus_master && nr.sysfs_enable,
           "swap-refused: nvme still enabled after the refusal (command 0x%04x, sysfs enable %d)",
           nr.cmd, nr.sysfs_enable);
        if (!IOMMUFD) {
            int ge = vfiocpr_device_group_id(ebdf, NULL), gn = vfiocpr_device_group_id(nbdf, NULL);
            g_autofree char *pe = g_strdup_printf("/dev/vfio/%d", ge);
            g_autofree char *pn = g_strdup_printf("/dev/vfio/%d", gn);
            g_autoptr(GBytes) g1 = forge_swap(blob, "vfio-group", (guint64)ge, "vfio-group",
                                              (guint64)gn, false);
            g_autoptr(GBytes) g2 = forge_swap(blob, "vfio-group", (guint64)ge, "vfio-group",
                                              (guint64)gn, true);
            g_autofree char *re = g_strdup_printf("'vfio-group'/%d", ge);
            g_autofree char *rn = g_strdup_printf("'vfio-group'/%d", gn);
            /* whichever record is looked at first (the registry's order may differ from
             * one restore to the next): it, and the other group's node, in one restore */
            r = refused_either(g1, re, pn, rn, pe, msg, sizeof(msg));
            ok(r, "swap-refused: group records with swapped fd numbers refused: %s", msg);
            r = refused(g2, pe, pn, msg, sizeof(msg));
            ok(r, "swap-refused: group records swapped whole refused by the fd's path: %s", msg);
        }
        setenv(VFIOCPR_STATE_ENV, keep, 1);
    }
    /* the honest state: nothing was lost */
    two_start(&e, &n, &err);
    ok(e.restarted, "swap-refused: the honest state restores");
    ok(vfiocpr_device_fd(e.dev) != vfiocpr_device_fd(n.dev),
       "swap-refused: edu fd %d, nvme fd %d", vfiocpr_device_fd(e.dev), vfiocpr_device_fd(n.dev));
    ok(rd32(&n, NVME_CC) == NVME_CC_VALUE && (rd32(&n, NVME_CSTS) & 1),
       "swap-refused: nvme not reset (CC 0x%08x CSTS 0x%x)", rd32(&n, NVME_CC), rd32(&n, NVME_CSTS));
    r = nvme_identify(&n, &irqs) && irqs == 1;
    ok(r, "swap-refused: nvme Identify after the restore, MSI-X counted %" G_GUINT64_FORMAT, irqs);
    r = edu_from_device(&e, 45);
    ok(r, "swap-refused: edu DMA device -> RAM after the restore (data from before the exec)");
    two_stop(&e, &n);
    return 0;
}

/* ------------------------------------------------------------------ exec window */

/* When main() started: the new image's first moment. */
static guint64 t_main;

/* The old image starts a device -> RAM DMA, sees it running, and calls vfiocpr_exec()
 * at once: QEMU's edu runs it 100 ms (virtual) later, while the exec is under way.
 * The new image looks before anything of the library runs, through the fds it
 * inherited (their numbers in argv): did it land in the memfd. Whether it was still
 * running at the new image's main() depends on how fast the image loads (a sanitizer
 * build takes longer than 100 ms), so that is only reported. The negative control
 * unmaps the range underneath the library before exec: the same look must find the
 * data missing. */
static int scenario_window(bool negative, char **args)
{
    const char *name = negative ? "exec-window-negative" : "exec-window";
    g_autoptr(GError) err = NULL;
    char bdf[32];
    vmm v = { .irq = IRQ_MSI };

    if (find_pci(0x1234, 0x11e8, bdf, sizeof(bdf)) < 0)
        bail("no edu device");
    v.bdf = bdf;
    if (!arg(args, "gen")) {
        g_autofree char *tn = NULL, *dev = NULL, *ram = NULL, *t0 = NULL;
        char *next[] = { (char *)name, (char *)"gen=2", NULL, NULL, NULL, NULL, NULL };
        bool running;
        vmm_start(&v, &err);
        ok(edu_to_device(&v, 31), "%s: device buffer filled by DMA", name);
        memset(v.va + 0x1000, 0, XFER);
        if (negative) {
            int r;
            if (IOMMUFD) {
                struct iommu_ioas_unmap un = { .size = sizeof(un),
                                               .ioas_id = (guint32)vfiocpr_container_ioas_id(v.c),
                                               .iova = RAM_IOVA, .length = RAM_SIZE };
                r = ioctl(vfiocpr_container_fd(v.c), IOMMU_IOAS_UNMAP, &un);
            } else {
                struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un), .iova = RAM_IOVA,
                                                         .size = RAM_SIZE };
                r = ioctl(vfiocpr_container_fd(v.c), VFIO_IOMMU_UNMAP_DMA, &un);
            }
            ok(r == 0, "%s: guest RAM deliberately unmapped from the IOMMU behind the "
               "library's back: %s", name, r ? g_strerror(errno) : "ok");
        }
        dev = g_strdup_printf("devfd=%d", vfiocpr_device_fd(v.dev));
        ram = g_strdup_printf("ramfd=%d", v.ram);
        wr32(&v, EDU_DMA_SRC, EDU_BUF);
        wr32(&v, EDU_DMA_DST, (guint32)(RAM_IOVA + 0x1000));
        wr32(&v, EDU_DMA_COUNT, XFER);
        wr32(&v, EDU_DMA_CMD, 1 | 2);
        running = rd32(&v, EDU_DMA_CMD) & 1;
        ok(running, "%s: DMA device -> RAM started, still running as vfiocpr_exec() is called",
           name);
        tn = g_strdup_printf("n=%u", tap_n);
        t0 = g_strdup_printf("t0=%" G_GUINT64_FORMAT, now_us());
        next[2] = tn;
        next[3] = dev;
        next[4] = ram;
        next[5] = t0;
        vmm_exec(&v, "/proc/self/exe", next, &err);
        bail("exec: %s", err ? err->message : "?");
    }
    tap_n = (unsigned)atoi(arg(args, "n"));
    {
        struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
        int devfd = atoi(arg(args, "devfd")), ramfd = atoi(arg(args, "ramfd"));
        g_autofree guint8 *want = g_malloc(XFER);
        volatile guint32 *b;
        guint8 *va;
        bool in_flight, landed;
        guint64 t0 = now_us(), t_exec = g_ascii_strtoull(arg(args, "t0"), NULL, 10);

        if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &bar) < 0)
            bail("%s: the inherited device fd %d: %s", name, devfd, g_strerror(errno));
        b = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, devfd, (off_t)bar.offset);
        va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, ramfd, 0);
        if (b == MAP_FAILED || va == MAP_FAILED)
            bail("%s: mmap of the inherited fds", name);
        in_flight = b[EDU_DMA_CMD / 4] & 1;
        while ((b[EDU_DMA_CMD / 4] & 1) && now_us() - t0 < 10000000)
            usleep(500);
        fill(want, XFER, 31);
        landed = memcmp(va + 0x1000, want, XFER) == 0;
        printf("# %s: the new image's main() ran %" G_GUINT64_FORMAT " us after vfiocpr_exec() "
               "was called; the DMA was %s then\n", name, t_main - t_exec,
               in_flight ? "still running" : "done already");
        if (negative) {
            ok(!landed, "%s: the check catches it: the DMA did not land in the memfd", name);
            return 0;
        }
        ok(landed, "%s: the DMA the device ran during the exec landed in the memfd, before any "
           "restore", name);
        munmap((void *)b, bar.size);
        munmap(va, RAM_SIZE);
    }
    vmm_start(&v, &err);
    ok(v.restarted && edu_to_device(&v, 32) && edu_from_device(&v, 32),
       "%s: after the restore DMA both ways", name);
    ok(edu_irq(&v) == 1, "%s: MSI after the restore", name);
    vmm_stop(&v);
    return 0;
}

/* ------------------------------------------------------------------ device blackout */

/* What the helper leaves for the new image: one timestamp per completed command. */
#define BUSY_MAX 200000u
typedef struct {
    volatile guint32 stop;
    volatile guint32 errors;
    volatile guint32 n;
    guint32 pad;
    guint64 t[BUSY_MAX];
} busy_log;

/* A forked helper (it shares the BAR and guest RAM mappings, and outlives the exec)
 * submits Identify commands back to back and polls their completions, so the device
 * is doing DMA into guest RAM all through the VMM's exec. The new image stops it and
 * looks at the timestamps: commands completed inside the window from vfiocpr_exec()
 * to the end of the restore, and the longest gap between two completions across it
 * is the blackout the device saw. */
static int scenario_busy(char **args)
{
    g_autoptr(GError) err = NULL;
    char bdf[32];
    vmm v = { .irq = IRQ_MSIX };
    busy_log *log;
    int logfd;

    if (find_pci(0x1b36, 0x0010, bdf, sizeof(bdf)) < 0)
        bail("no nvme device");
    v.bdf = bdf;
    if (!arg(args, "gen")) {
        g_autofree char *t0 = NULL, *tn = NULL, *pid = NULL;
        char *next[] = { (char *)"nvme-busy", (char *)"gen=2", NULL, NULL, NULL, NULL };
        guint64 irqs = 0;
        pid_t child;
        bool up;
        vmm_start(&v, &err);
        up = nvme_enable(&v) && nvme_identify(&v, &irqs);
        ok(up && irqs == 1, "nvme-busy: controller enabled, Identify completed (MSI-X %"
           G_GUINT64_FORMAT ")", irqs);
        logfd = memfd_create("busy-log", MFD_CLOEXEC);
        if (logfd < 0 || ftruncate(logfd, sizeof(busy_log)) < 0 ||
            vfiocpr_fd_save(v.ctx, "busy-log", 0, logfd, VFIOCPR_FD_MEMFD, &err) < 0)
            bail("busy log: %s", err ? err->message : g_strerror(errno));
        log = mmap(NULL, sizeof(*log), PROT_READ | PROT_WRITE, MAP_SHARED, logfd, 0);
        if (log == MAP_FAILED)
            bail("mmap busy log");
        child = fork();
        if (child < 0)
            bail("fork");
        if (child == 0) {
            while (!log->stop && log->n < BUSY_MAX) {
                if (!nvme_identify(&v, NULL))
                    log->errors++;
                log->t[log->n++] = now_us();
                usleep(300); /* leave the one guest CPU to the exec */
            }
            _exit(0);
        }
        usleep(200000);
        ok(log->n > 10 && !log->errors, "nvme-busy: helper pid %d completing commands (%u so far)",
           (int)child, log->n);
        t0 = g_strdup_printf("t0=%" G_GUINT64_FORMAT, now_us());
        tn = g_strdup_printf("n=%u", tap_n);
        pid = g_strdup_printf("child=%d", (int)child);
        next[2] = t0;
        next[3] = tn;
        next[4] = pid;
        vmm_exec(&v, "/proc/self/exe", next, &err);
        bail("exec: %s", err ? err->message : "?");
    }
    tap_n = (unsigned)atoi(arg(args, "n"));
    {
        guint64 t0 = g_ascii_strtoull(arg(args, "t0"), NULL, 10), t1, gap = 0, gap_at = 0;
        g_autofree guint64 *d = NULL;
        pid_t child = atoi(arg(args, "child"));
        guint32 n, in_window = 0, before = 0;
        int status = -1;
        guint64 irqs = 0;

        vmm_begin(&v, &err);
        logfd = vfiocpr_fd_find(v.ctx, "busy-log", 0, VFIOCPR_FD_MEMFD, &err);
        if (logfd < 0)
            bail("busy log after exec: %s", err->message);
        vmm_device(&v, "c0", &err);
        vmm_end(&v, &err);
        t1 = now_us();
        log = mmap(NULL, sizeof(*log), PROT_READ | PROT_WRITE, MAP_SHARED, logfd, 0);
        if (log == MAP_FAILED)
            bail("mmap busy log");
        usleep(200000);
        log->stop = 1;
        ok(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "nvme-busy: the helper, still our child after the exec, stopped cleanly");
        n = log->n;
        for (guint32 i = 0; i < n; i++) {
            in_window += log->t[i] >= t0 && log->t[i] <= t1;
            before += log->t[i] < t0;
            /* the gaps that overlap the window */
            if (i && log->t[i] >= t0 && log->t[i - 1] <= t1 && log->t[i] - log->t[i - 1] > gap) {
                gap = log->t[i] - log->t[i - 1];
                gap_at = log->t[i - 1];
            }
        }
        ok(!log->errors && n > before, "nvme-busy: %u commands, all completed with the right data "
           "(%u errors)", n, log->errors);
        ok(in_window > 0, "nvme-busy: %u of them completed inside the %" G_GUINT64_FORMAT " us "
           "from vfiocpr_exec() to the end of the restore: device DMA went on", in_window, t1 - t0);
        if (before > 1) {
            d = g_new(guint64, before - 1);
            for (guint32 i = 1; i < before; i++)
                d[i - 1] = log->t[i] - log->t[i - 1];
            qsort(d, before - 1, sizeof(*d), cmp_u64);
            printf("# nvme-busy: %s: window %" G_GUINT64_FORMAT " us; longest gap between two "
                   "completions across it %" G_GUINT64_FORMAT " us (starting %" G_GUINT64_FORMAT
                   " us after vfiocpr_exec), median gap before the exec %" G_GUINT64_FORMAT " us\n",
                   vfiocpr_backend_to_string(backend), t1 - t0, gap,
                   gap_at >= t0 ? gap_at - t0 : 0, d[(before - 1) / 2]);
        }
        bool idf = nvme_identify(&v, &irqs);
        ok(idf && irqs >= 1, "nvme-busy: the new image's own Identify completes (MSI-X counted %"
           G_GUINT64_FORMAT ", the helper's included)", irqs);
    }
    vmm_stop(&v);
    return 0;
}

/* ------------------------------------------------------------------ pinned pages */

static long vmpin_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmPin: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* As root iommufd accounts nothing (CAP_IPC_LOCK): drop it, from the bounding set too
 * so the new image does not get it back at execve. */
static int drop_cap_ipc_lock(void)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2];

    if (prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0) < 0 || syscall(SYS_capget, &hdr, data) < 0)
        return -1;
    data[0].effective &= ~(1u << CAP_IPC_LOCK);
    data[0].permitted &= ~(1u << CAP_IPC_LOCK);
    data[0].inheritable &= ~(1u << CAP_IPC_LOCK);
    return (int)syscall(SYS_capset, &hdr, data);
}

static int set_memlock_soft(rlim_t bytes)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
        return -1;
    rl.rlim_cur = bytes;
    return setrlimit(RLIMIT_MEMLOCK, &rl);
}

static int scenario_pin(char **args)
{
    g_autoptr(GError) err = NULL;
    char bdf[32];
    vmm v = { .irq = IRQ_MSI };
    long pin;
    int r;

    if (!IOMMUFD)
        bail("pin is an iommufd scenario (--backend=iommufd)");
    if (find_pci(0x1234, 0x11e8, bdf, sizeof(bdf)) < 0)
        bail("no edu device");
    v.bdf = bdf;
    if (!arg(args, "gen")) {
        g_autofree char *tn = NULL;
        char *next[] = { (char *)"pin", (char *)"gen=2", NULL, NULL };
        if (drop_cap_ipc_lock() < 0 || set_memlock_soft(RLIM_INFINITY) < 0)
            bail("drop CAP_IPC_LOCK: %s", g_strerror(errno));
        vmm_start(&v, &err);
        pin = vmpin_kb();
        ok(pin == RAM_SIZE / 1024, "pin: without CAP_IPC_LOCK the mapped guest RAM is pinned "
           "and accounted: VmPin %ld kB", pin);
        ok(edu_to_device(&v, 41), "pin: DMA before exec");
        tn = g_strdup_printf("n=%u", tap_n);
        next[2] = tn;
        vmm_exec(&v, "/proc/self/exe", next, &err);
        bail("exec: %s", err ? err->message : "?");
    }
    tap_n = (unsigned)atoi(arg(args, "n"));
    vmm_begin(&v, &err);
    vmm_device(&v, "c0", &err);
    pin = vmpin_kb();
    ok(v.restarted && pin == 0, "pin: restored and re-mapped, before vfiocpr_finish VmPin %ld kB "
       "(the pins are still the old image's)", pin);
    ok(edu_from_device(&v, 41), "pin: DMA works before vfiocpr_finish");
    if (set_memlock_soft(RAM_SIZE / 2) < 0)
        bail("setrlimit");
    r = vfiocpr_finish(v.ctx, NULL, &err);
    pin = vmpin_kb();
    ok(r == -ENOMEM && err && strstr(err->message, "RLIMIT_MEMLOCK") && pin == 0 &&
       vfiocpr_is_restart(v.ctx),
       "pin: RLIMIT_MEMLOCK %u kB, no CAP_IPC_LOCK: vfiocpr_finish %d (%s), VmPin still %ld kB, "
       "still in restart mode", RAM_SIZE / 2048, r, err ? err->message : "no error", pin);
    g_clear_error(&err);
    /* iommufd charges the new image before it uncharges the old one, both to the uid's
     * locked_vm: a limit of exactly the pinned size is not enough either */
    if (set_memlock_soft(RAM_SIZE) < 0)
        bail("setrlimit");
    r = vfiocpr_finish(v.ctx, NULL, &err);
    pin = vmpin_kb();
    ok(r == -ENOMEM && pin == 0 && vfiocpr_is_restart(v.ctx),
       "pin: RLIMIT_MEMLOCK %u kB (= pinned): vfiocpr_finish %d, VmPin still %ld kB: the old "
       "image's charge counts until the move is done", RAM_SIZE / 1024, r, pin);
    g_clear_error(&err);
    ok(edu_to_device(&v, 42) && edu_from_device(&v, 42), "pin: DMA both ways after the failed "
       "finish");
    /* the old image's charge is still on the uid's locked_vm while the new one is made */
    if (set_memlock_soft(2 * RAM_SIZE) < 0)
        bail("setrlimit");
    r = vfiocpr_finish(v.ctx, NULL, &err);
    pin = vmpin_kb();
    ok(r == 0 && pin == RAM_SIZE / 1024 && !vfiocpr_is_restart(v.ctx),
       "pin: RLIMIT_MEMLOCK raised to %u kB, vfiocpr_finish again: %d%s%s, VmPin %ld kB (moved "
       "by CHANGE_PROCESS)", RAM_SIZE / 512, r, err ? ", " : "", err ? err->message : "", pin);
    ok(edu_irq(&v) == 1, "pin: MSI after finish");
    set_memlock_soft(RLIM_INFINITY);
    vmm_stop(&v);
    return 0;
}

/* ------------------------------------------------------------------ user-VA mapping */

#define UVA_IOVA 0x800000ull
#define UVA_SIZE (64u << 10)

static int scenario_uva(char **args)
{
    g_autoptr(GError) err = NULL;
    char bdf[32];
    vmm v = { .irq = IRQ_MSI };
    char *next[] = { (char *)"uva-refused", (char *)"gen=2", NULL, NULL };
    g_autofree char *tn = NULL;
    g_autofree guint8 *want = g_malloc(XFER);
    guint8 *uva;
    int r;

    if (!IOMMUFD)
        bail("uva-refused is an iommufd scenario (--backend=iommufd)");
    if (find_pci(0x1234, 0x11e8, bdf, sizeof(bdf)) < 0)
        bail("no edu device");
    v.bdf = bdf;
    if (arg(args, "gen")) {
        tap_n = (unsigned)atoi(arg(args, "n"));
        vmm_start(&v, &err);
        ok(v.restarted && edu_from_device(&v, 51), "uva-refused: without the user-VA range the "
           "exec went through; DMA after it");
        vmm_stop(&v);
        return 0;
    }
    vmm_start(&v, &err);
    uva = mmap(NULL, UVA_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (uva == MAP_FAILED)
        bail("mmap");
    memset(uva, 0, UVA_SIZE);
    r = vfiocpr_dma_map(v.c, UVA_IOVA, UVA_SIZE, uva, -1, 0, VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE,
                        &err);
    ok(r == 0, "uva-refused: vfiocpr_dma_map of %u kB anonymous memory (memfd -1) at 0x%llx: %s",
       UVA_SIZE >> 10, (unsigned long long)UVA_IOVA, err ? err->message : "ok");
    g_clear_error(&err);
    fill(want, XFER, 51);
    ok(edu_to_device(&v, 51) && edu_dma(&v, EDU_BUF, UVA_IOVA, XFER, 1) &&
       memcmp(uva, want, XFER) == 0, "uva-refused: the device DMAs into it");
    r = vmm_exec(&v, "/proc/self/exe", next, &err);
    ok(r < 0 && err && strstr(err->message, "0x800000") && v.ctx && !vfiocpr_is_restart(v.ctx),
       "uva-refused: vfiocpr_exec refuses before exec, naming the range: %d, %s", r,
       err ? err->message : "no error");
    g_clear_error(&err);
    ok(fcntl(vfiocpr_device_fd(v.dev), F_GETFD) == FD_CLOEXEC && edu_from_device(&v, 51),
       "uva-refused: the old image goes on: device fd CLOEXEC, DMA works");
    r = vfiocpr_dma_unmap(v.c, UVA_IOVA, UVA_SIZE, &err);
    ok(r == 0, "uva-refused: the control: vfiocpr_dma_unmap of the user-VA range: %s",
       err ? err->message : "ok");
    munmap(uva, UVA_SIZE);
    tn = g_strdup_printf("n=%u", tap_n);
    next[2] = tn;
    vmm_exec(&v, "/proc/self/exe", next, &err);
    bail("uva-refused: the exec without the user-VA range failed: %s", err ? err->message : "?");
}

/* ------------------------------------------------------------------ soak */

/* A line of /proc/self/status or /proc/meminfo, in kB (-1 if absent). */
static long proc_kb(const char *file, const char *key)
{
    FILE *f = fopen(file, "r");
    char line[256];
    size_t kl = strlen(key);
    long kb = -1;

    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            kb = strtol(line + kl + 1, NULL, 10);
            break;
        }
    if (f)
        fclose(f);
    return kb;
}

/* What one image measures of itself and of the guest kernel, for the leak checks. */
typedef struct {
    guint32 fds;
    long rss, anon, pin, lck, sunreclaim, avail;
} soak_usage;

static soak_usage soak_measure(void)
{
    return (soak_usage){ .fds = count_fds(), .rss = proc_kb("/proc/self/status", "VmRSS"),
                         .anon = proc_kb("/proc/self/status", "RssAnon"),
                         .pin = proc_kb("/proc/self/status", "VmPin"),
                         .lck = proc_kb("/proc/self/status", "VmLck"),
                         .sunreclaim = proc_kb("/proc/meminfo", "SUnreclaim"),
                         .avail = proc_kb("/proc/meminfo", "MemAvailable") };
}

/* The soak's record, in a memfd the library preserves like guest RAM: every image
 * appends its cycle and the last one does the statistics. */
#define SOAK_MAX 100000u
typedef struct {
    guint32 total, done, failures, lost_tap;
    guint64 t_cold, t_exec; /* vfiocpr_exec() of the previous image was called at t_exec */
    soak_usage first, last;  /* the first restored image's and the last one's */
    long anon_max;           /* the largest RssAnon any restored image had */
    char first_failure[512];
    guint64 blackout[SOAK_MAX]; /* vfiocpr_exec() -> start-up done, per upgrade */
    guint64 period[SOAK_MAX];   /* vfiocpr_exec() -> the next vfiocpr_exec(), per upgrade */
} soak_log;

static bool soak_failed; /* this image's upgrade failed a check */

static void soak_fail(soak_log *log, unsigned gen, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void soak_fail(soak_log *log, unsigned gen, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (!soak_failed)
        log->failures++;
    soak_failed = true;
    if (!log->first_failure[0])
        g_snprintf(log->first_failure, sizeof(log->first_failure), "upgrade %u: %s", gen - 1, msg);
    /* each failure is a TAP line, up to a point: a broken soak must not flood the console */
    if (log->lost_tap++ < 20)
        ok(false, "soak: upgrade %u/%u: %s", gen - 1, log->total, msg);
    else if (log->lost_tap == 21)
        printf("# soak: further failures are only counted\n");
}

/* The count an eventfd has collected, after waiting for the first: exactly one wanted.
 * A second look after a pause catches an interrupt that arrives late. */
static guint64 soak_count(int fd, int timeout_ms)
{
    guint64 n = eventfd_wait(fd, timeout_ms);
    if (n)
        n += eventfd_wait(fd, 20);
    return n;
}

/* The p-th percentile (nearest rank) of n values, sorted in place. */
static guint64 pct(guint64 *v, guint32 n, unsigned p)
{
    guint64 rank = ((guint64)n * p + 99) / 100;
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), cmp_u64);
    return v[rank ? MIN(rank, n) - 1 : 0];
}

/* N upgrades of a VMM with edu on INTx in container c0 and nvme on MSI-X in c1 (one
 * guest RAM mapped in both). After every exec the new image checks: neither device
 * reset (edu: physical bus master and sysfs enable; nvme: CC.EN, CSTS.RDY), the data
 * the previous image DMA'd into edu arrives in this image's mapping (device -> RAM),
 * new data goes to the device for the next one (RAM -> device), one INTx raised is
 * counted exactly once on the preserved trigger eventfd and the line unmasked through
 * the preserved unmask eventfd, one nvme Identify by DMA completes with exactly one
 * MSI-X, and the open fds, VmPin and VmLck are those of the first restored image.
 * CAP_IPC_LOCK is dropped, so the pins are accounted against RLIMIT_MEMLOCK.
 * negative=fd-leak|intx-no-unmask|extra-msix|dma-skip|nvme-reset breaks one of them on purpose. */
static bool has_cap_ipc_lock(void);

static int scenario_soak(char **args)
{
    g_autoptr(GError) err = NULL;
    const char *neg = arg(args, "negative") ? arg(args, "negative") : "";
    unsigned gen = arg(args, "gen") ? (unsigned)atoi(arg(args, "gen")) : 1;
    char ebdf[32], nbdf[32];
    vmm e = { .irq = IRQ_INTX }, n = { .irq = IRQ_MSIX };
    soak_log *log;
    int logfd;
    guint64 t_up;

    if (find_pci(0x1234, 0x11e8, ebdf, sizeof(ebdf)) < 0 ||
        find_pci(0x1b36, 0x0010, nbdf, sizeof(nbdf)) < 0)
        bail("soak needs edu and nvme");
    e.bdf = ebdf;
    n.bdf = nbdf;
    if (arg(args, "n"))
        tap_n = (unsigned)atoi(arg(args, "n"));
    /* An unprivileged VMM's accounting: without CAP_IPC_LOCK the pins are charged, and
     * a limit of exactly what an upgrade needs (both containers; iommufd: the old and
     * the new image at once) turns any charge left behind into an ENOMEM. */
    if (gen == 1 && (drop_cap_ipc_lock() < 0 ||
                     set_memlock_soft((IOMMUFD ? 2u : 1u) * 2u * RAM_SIZE) < 0))
        bail("soak: drop CAP_IPC_LOCK, set RLIMIT_MEMLOCK: %s", g_strerror(errno));
    vmm_begin(&e, &err);
    n.ctx = vfiocpr_ref(e.ctx);
    n.ram = e.ram;
    n.va = e.va;
    n.restarted = e.restarted;
    logfd = vfiocpr_fd_find(e.ctx, "soak-log", 0, VFIOCPR_FD_MEMFD, NULL);
    if (gen == 1) {
        logfd = memfd_create("soak-log", MFD_CLOEXEC);
        if (logfd < 0 || ftruncate(logfd, sizeof(soak_log)) < 0 ||
            vfiocpr_fd_save(e.ctx, "soak-log", 0, logfd, VFIOCPR_FD_MEMFD, &err) < 0)
            bail("soak log: %s", err ? err->message : g_strerror(errno));
    } else if (logfd < 0) {
        bail("soak: image %u: the soak log did not survive the exec", gen);
    }
    log = mmap(NULL, sizeof(*log), PROT_READ | PROT_WRITE, MAP_SHARED, logfd, 0);
    if (log == MAP_FAILED)
        bail("mmap soak log");
    vmm_device(&e, "c0", &err);
    vmm_device(&n, "c1", &err);
    vmm_end(&e, &err);
    t_up = now_us();
    if (gen == 1) {
        log->total = arg(args, "total") ? (guint32)atoi(arg(args, "total")) : 1000;
        if (log->total < 1 || log->total > SOAK_MAX)
            bail("soak: total=%u out of range (1..%u)", log->total, SOAK_MAX);
        log->t_cold = t_up;
        ok(!e.restarted && nvme_enable(&n) && edu_to_device(&e, 1) && edu_irq(&e) == 1,
           "soak: cold start (%s): edu %s on INTx in c0, nvme %s on MSI-X in c1, %u upgrades "
           "to go; no CAP_IPC_LOCK, RLIMIT_MEMLOCK %u kB, VmPin %ld kB, VmLck %ld kB",
           vfiocpr_backend_to_string(backend), ebdf, nbdf, log->total,
           (IOMMUFD ? 2u : 1u) * 2u * RAM_SIZE / 1024, vmpin_kb(),
           proc_kb("/proc/self/status", "VmLck"));
    } else {
        guint32 i = gen - 2;
        guint64 irqs = 0, intx;
        not_reset r = check_not_reset(ebdf);
        guint32 cc = rd32(&n, NVME_CC), csts = rd32(&n, NVME_CSTS);
        soak_usage u;
        bool idf;

        log->blackout[i] = t_up - log->t_exec;
        if (!e.restarted)
            soak_fail(log, gen, "not a restart");
        if (has_cap_ipc_lock())
            soak_fail(log, gen, "CAP_IPC_LOCK is back");
        if (!r.bus_master || !r.sysfs_enable)
            soak_fail(log, gen, "edu reset or closed: PCI_COMMAND 0x%04x, enable %d", r.cmd,
                      r.sysfs_enable);
        if (cc != NVME_CC_VALUE || !(csts & 1))
            soak_fail(log, gen, "nvme reset: CC 0x%08x CSTS 0x%x", cc, csts);
        if (!edu_from_device(&e, gen - 1))
            soak_fail(log, gen, "edu DMA device -> RAM: the previous image's data did not "
                      "arrive at %p", (void *)e.va);
        /* dma-skip: this image's data never goes to the device */
        if ((strcmp(neg, "dma-skip") != 0 || gen != 2) && !edu_to_device(&e, gen))
            soak_fail(log, gen, "edu DMA RAM -> device timed out");
        wr32(&e, EDU_IRQ_RAISE, 0x1);
        intx = soak_count(e.trigger, 3000);
        wr32(&e, EDU_IRQ_ACK, rd32(&e, EDU_IRQ_STATUS));
        if (intx != 1)
            soak_fail(log, gen, "edu INTx counted %" G_GUINT64_FORMAT ", not 1", intx);
        if (strcmp(neg, "intx-no-unmask") != 0 || gen != 2) {
            guint64 one = 1;
            if (write(e.unmask, &one, 8) != 8)
                soak_fail(log, gen, "INTx unmask: %s", g_strerror(errno));
        }
        if (strcmp(neg, "extra-msix") == 0 && gen == 3)
            nvme_identify(&n, NULL); /* its MSI-X lands in the eventfd, unread */
        idf = nvme_identify(&n, NULL);
        irqs = soak_count(n.trigger, 5000);
        if (!idf || irqs != 1)
            soak_fail(log, gen, "nvme Identify by DMA %s, MSI-X counted %" G_GUINT64_FORMAT
                      ", not 1", idf ? "completed" : "FAILED", irqs);
        /* nvme-reset: a function reset of nvme behind the library's back */
        if (strcmp(neg, "nvme-reset") == 0 && gen == 2 &&
            ioctl(vfiocpr_device_fd(n.dev), VFIO_DEVICE_RESET) < 0)
            bail("soak: VFIO_DEVICE_RESET of nvme: %s", g_strerror(errno));
        if (strcmp(neg, "fd-leak") == 0 && open("/dev/null", O_RDONLY) < 0) /* no CLOEXEC */
            bail("open /dev/null");
        u = soak_measure();
        if (gen == 2)
            log->first = u;
        log->last = u;
        log->anon_max = MAX(log->anon_max, u.anon);
        if (u.fds != log->first.fds)
            soak_fail(log, gen, "%u open fds, the first restored image had %u", u.fds,
                      log->first.fds);
        if (u.pin != log->first.pin || u.lck != log->first.lck)
            soak_fail(log, gen, "VmPin %ld kB VmLck %ld kB, the first restored image had %ld, "
                      "%ld", u.pin, u.lck, log->first.pin, log->first.lck);
        log->done = gen - 1;
        if ((gen - 1) % 100 == 0)
            printf("# soak: %u/%u upgrades, %u failures, blackout of the last %" G_GUINT64_FORMAT
                   " us\n", gen - 1, log->total, log->failures, log->blackout[i]);
    }
    if (gen <= log->total) {
        g_autofree char *a1 = g_strdup_printf("gen=%u", gen + 1), *a2 = g_strdup_printf("n=%u", tap_n),
                        *a3 = g_strdup_printf("negative=%s", neg);
        char *next[] = { (char *)"soak", a1, a2, a3, NULL };
        guint64 t = now_us();
        if (gen >= 2)
            log->period[gen - 2] = t - log->t_exec;
        log->t_exec = t;
        vmm_exec(&e, "/proc/self/exe", next, &err);
        bail("soak: exec %u: %s", gen, err ? err->message : "?");
    }
    {
        guint32 d = log->done, np = d ? d - 1 : 0;
        soak_usage a = log->first, z = log->last;
        g_autofree guint64 *b = g_new0(guint64, MAX(d, 1));
        g_autofree guint64 *p = g_new0(guint64, MAX(np, 1));
        struct utsname un;
        memcpy(b, log->blackout, d * sizeof(guint64));
        memcpy(p, log->period, np * sizeof(guint64));
        uname(&un);
        ok(log->failures == 0, "soak: %u/%u upgrades good (%u failed)%s%s", d - log->failures,
           log->total, log->failures, log->first_failure[0] ? "; first: " : "",
           log->first_failure);
        ok(a.fds == z.fds && a.pin == z.pin && a.lck == z.lck, "soak: no leak in the process: "
           "open fds %u -> %u, VmPin %ld -> %ld kB, VmLck %ld -> %ld kB (first restored image "
           "-> last)", a.fds, z.fds, a.pin, z.pin, a.lck, z.lck);
        printf("# soak-summary kernel=%s backend=%s upgrades=%u failures=%u "
               "blackout_us(median/p99/max)=%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT "/%"
               G_GUINT64_FORMAT " cycle_us(median/p99/max)=%" G_GUINT64_FORMAT "/%"
               G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " total_s=%.1f fds=%u->%u "
               "VmRSS_kB=%ld->%ld RssAnon_kB=%ld->%ld(max %ld) VmPin_kB=%ld->%ld VmLck_kB=%ld->%ld SUnreclaim_kB=%ld->%ld "
               "MemAvailable_kB=%ld->%ld\n", un.release, vfiocpr_backend_to_string(backend), d,
               log->failures, pct(b, d, 50), pct(b, d, 99), pct(b, d, 100), pct(p, np, 50),
               pct(p, np, 99), pct(p, np, 100), (now_us() - log->t_cold) / 1e6, a.fds, z.fds,
               a.rss, z.rss, a.anon, z.anon, log->anon_max, a.pin, z.pin, a.lck, z.lck,
               a.sunreclaim, z.sunreclaim, a.avail, z.avail);
    }
    munmap(log, sizeof(*log));
    n.va = NULL;
    vmm_stop(&n);
    vmm_stop(&e);
    return 0;
}


/* ------------------------------------------------------------------ memlock */

static bool has_cap_ipc_lock(void)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2] = { { 0 } };

    if (syscall(SYS_capget, &hdr, data) < 0)
        bail("capget: %s", g_strerror(errno));
    return data[0].effective & (1u << CAP_IPC_LOCK);
}

static long vmlck_kb(void)
{
    return proc_kb("/proc/self/status", "VmLck");
}

/* RLIMIT_MEMLOCK on a real kernel, both backends, CAP_IPC_LOCK dropped (bounding set
 * too, so the new image does not get it back). The old image: too low a limit for
 * what the new image will be charged and vfiocpr_exec() refuses before exec with the
 * library's blocker message, the old image going on (device fd CLOEXEC again, not
 * reset, DMA both ways, MSI); the limit raised to exactly that, the exec goes through.
 * The new image lowers its own limit before the step that charges it and sees what
 * the kernel charges there: type1, VFIO_IOMMU_MAP_DMA(VADDR) (the kernel moves the
 * range's locked_vm to the new mm); iommufd, IOMMU_IOAS_CHANGE_PROCESS in
 * vfiocpr_finish(). The ENOMEM names the container and the step, the restore stays
 * where it was, and once the limit is raised the same call again works: not reset,
 * the old image's data arrives, DMA both ways, MSI. */
static int scenario_memlock(char **args)
{
    g_autoptr(GError) err = NULL;
    /* what the new image is charged: per mm for type1, per user (old + new) for iommufd */
    const guint64 need = IOMMUFD ? 2ull * RAM_SIZE : RAM_SIZE;
    const char *what = IOMMUFD ? "VmPin" : "VmLck";
    char bdf[32];
    vmm v = { .irq = IRQ_MSI };
    not_reset nr;
    long kb;
    int r;

    if (find_pci(0x1234, 0x11e8, bdf, sizeof(bdf)) < 0)
        bail("no edu device");
    v.bdf = bdf;
    if (!arg(args, "gen")) {
        g_autofree char *tn = NULL, *expect = NULL;
        char *next[] = { (char *)"memlock", (char *)"gen=2", NULL, NULL };
        if (drop_cap_ipc_lock() < 0 || set_memlock_soft(need) < 0)
            bail("drop CAP_IPC_LOCK, RLIMIT_MEMLOCK %" G_GUINT64_FORMAT ": %s", need,
                 g_strerror(errno));
        vmm_start(&v, &err);
        kb = IOMMUFD ? vmpin_kb() : vmlck_kb();
        ok(!has_cap_ipc_lock() && kb == RAM_SIZE / 1024, "memlock: %s, no CAP_IPC_LOCK, "
           "RLIMIT_MEMLOCK %" G_GUINT64_FORMAT " kB: the mapped guest RAM is charged to this "
           "process: %s %ld kB", vfiocpr_backend_to_string(backend), need >> 10, what, kb);
        ok(edu_to_device(&v, 61) && edu_irq(&v) == 1, "memlock: DMA RAM -> device, MSI");
        /* one page short of what the new image will be charged */
        if (set_memlock_soft(need - 4096) < 0)
            bail("setrlimit");
        r = vmm_exec(&v, "/proc/self/exe", next, &err);
        expect = g_strdup_printf("RLIMIT_MEMLOCK is %" G_GUINT64_FORMAT " bytes but the new image "
                                 "will be charged %" G_GUINT64_FORMAT " pinned bytes",
                                 need - 4096, need);
        ok(r == -ENOMEM && err && strstr(err->message, expect) && !vfiocpr_is_restart(v.ctx),
           "memlock: RLIMIT_MEMLOCK %" G_GUINT64_FORMAT " kB: vfiocpr_exec refuses before exec: "
           "%d, %s", (need - 4096) >> 10, r, err ? err->message : "no error");
        g_clear_error(&err);
        nr = check_not_reset(bdf);
        ok(fcntl(vfiocpr_device_fd(v.dev), F_GETFD) == FD_CLOEXEC && nr.bus_master &&
           nr.msi_enable && nr.sysfs_enable, "memlock: the old image goes on: device fd CLOEXEC "
           "again, not reset (PCI_COMMAND 0x%04x, MSI control 0x%04x)", nr.cmd, nr.msi_ctrl);
        ok(edu_from_device(&v, 61) && edu_to_device(&v, 62) && edu_irq(&v) == 1,
           "memlock: DMA both ways and MSI after the refusal");
        /* the blocker's threshold is the charge itself: exactly that is let through */
        if (set_memlock_soft(need) < 0)
            bail("setrlimit");
        tn = g_strdup_printf("n=%u", tap_n);
        next[2] = tn;
        vmm_exec(&v, "/proc/self/exe", next, &err);
        bail("memlock: the exec with RLIMIT_MEMLOCK %" G_GUINT64_FORMAT " failed: %s", need,
             err ? err->message : "?");
    }
    tap_n = (unsigned)atoi(arg(args, "n"));
    v.no_map = true;
    vmm_begin(&v, &err);
    vmm_device(&v, "c0", &err);
    kb = IOMMUFD ? vmpin_kb() : vmlck_kb();
    ok(v.restarted && !has_cap_ipc_lock() && kb == 0, "memlock: new image, no CAP_IPC_LOCK, "
       "RLIMIT_MEMLOCK %" G_GUINT64_FORMAT " kB inherited; restored, %s %ld kB", need >> 10,
       what, kb);
    if (!IOMMUFD) {
        /* what MAP_DMA(VADDR) charges: nothing may be left to charge, so try 0 first */
        if (set_memlock_soft(0) < 0)
            bail("setrlimit");
        r = vfiocpr_dma_map(v.c, RAM_IOVA, RAM_SIZE, v.va, v.ram, 0,
                            VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE, &err);
        if (r == 0) {
            kb = vmlck_kb();
            ok(kb == 0, "memlock: measured: type1's re-map (VFIO_IOMMU_MAP_DMA VADDR) charges "
               "nothing on this kernel: it succeeds with RLIMIT_MEMLOCK 0 and no CAP_IPC_LOCK, "
               "VmLck %ld kB", kb);
        } else {
            ok(r == -ENOMEM && err && strstr(err->message, "container 'c0'") &&
               strstr(err->message, "VFIO_IOMMU_MAP_DMA(VADDR)") &&
               strstr(err->message, "RLIMIT_MEMLOCK") && strstr(err->message, "can be retried"),
               "memlock: RLIMIT_MEMLOCK 0: the re-map is refused: %d, %s", r,
               err ? err->message : "no error");
            g_clear_error(&err);
            /* a real device's DMA goes through the IOMMU, which never lost the range */
            ok(edu_from_device(&v, 62), "memlock: DMA device -> RAM while the range waits for "
               "its re-map: the old image's data arrives");
            if (set_memlock_soft(RAM_SIZE - 4096) < 0)
                bail("setrlimit");
            r = vfiocpr_dma_map(v.c, RAM_IOVA, RAM_SIZE, v.va, v.ram, 0,
                                VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE, &err);
            ok(r == -ENOMEM && vmlck_kb() == 0, "memlock: measured: RLIMIT_MEMLOCK %u kB, one "
               "page short of the range: still ENOMEM (%d), VmLck %ld kB: the re-map charges "
               "the whole pinned range to the new image", RAM_SIZE / 1024 - 4, r, vmlck_kb());
            g_clear_error(&err);
            if (set_memlock_soft(RAM_SIZE) < 0)
                bail("setrlimit");
            r = vfiocpr_dma_map(v.c, RAM_IOVA, RAM_SIZE, v.va, v.ram, 0,
                                VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE, &err);
            kb = vmlck_kb();
            ok(r == 0 && kb == RAM_SIZE / 1024, "memlock: raised to %u kB (= pinned), the same "
               "vfiocpr_dma_map again: %d%s%s, VmLck %ld kB (moved to this mm)", RAM_SIZE / 1024,
               r, err ? ", " : "", err ? err->message : "", kb);
            if (r < 0)
                bail("memlock: the retry failed");
        }
        if (vfiocpr_finish(v.ctx, NULL, &err) < 0)
            bail("finish: %s", err->message);
    } else {
        /* the file mapping needs no re-map: the charge comes at vfiocpr_finish */
        if (vfiocpr_dma_map(v.c, RAM_IOVA, RAM_SIZE, v.va, v.ram, 0,
                            VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE, &err) < 0)
            bail("dma map: %s", err->message);
        if (set_memlock_soft(RAM_SIZE) < 0)
            bail("setrlimit");
        r = vfiocpr_finish(v.ctx, NULL, &err);
        ok(r == -ENOMEM && err && strstr(err->message, "container 'c0'") &&
           strstr(err->message, "IOMMU_IOAS_CHANGE_PROCESS") &&
           strstr(err->message, "RLIMIT_MEMLOCK") && strstr(err->message, "can be called again") &&
           vfiocpr_is_restart(v.ctx) && vmpin_kb() == 0,
           "memlock: RLIMIT_MEMLOCK %u kB (= pinned): vfiocpr_finish refused: %d, %s", RAM_SIZE / 1024,
           r, err ? err->message : "no error");
        g_clear_error(&err);
        ok(edu_from_device(&v, 62), "memlock: DMA device -> RAM after the refused finish: the "
           "old image's data arrives");
        if (set_memlock_soft(2 * RAM_SIZE) < 0)
            bail("setrlimit");
        r = vfiocpr_finish(v.ctx, NULL, &err);
        kb = vmpin_kb();
        ok(r == 0 && kb == RAM_SIZE / 1024 && !vfiocpr_is_restart(v.ctx), "memlock: raised to %u "
           "kB, vfiocpr_finish again: %d%s%s, VmPin %ld kB", 2 * RAM_SIZE / 1024, r,
           err ? ", " : "", err ? err->message : "", kb);
        if (r < 0)
            bail("memlock: the retry failed");
    }
    nr = check_not_reset(bdf);
    ok(nr.bus_master && nr.msi_enable && nr.sysfs_enable, "memlock: not reset: PCI_COMMAND "
       "0x%04x, MSI control 0x%04x, enable %d", nr.cmd, nr.msi_ctrl, nr.sysfs_enable);
    ok(edu_to_device(&v, 63) && edu_from_device(&v, 63), "memlock: DMA both ways after the retry");
    ok(edu_irq(&v) == 1, "memlock: MSI on the preserved eventfd");
    set_memlock_soft(RLIM_INFINITY);
    vmm_stop(&v);
    return 0;
}

/* ------------------------------------------------------------------ demo */

/* ------------------------------------------------------------------ transfer */

/* The device scenarios a transfer is checked with: edu (DMA through the device's
 * buffer, one MSI) or nvme (enabled controller, Identify completing on MSI-X). */
static bool xfer_nvme(char **args)
{
    const char *d = arg(args, "device");
    return d && strcmp(d, "nvme") == 0;
}

static void xfer_find(vmm *v, char *bdf, size_t len, char **args)
{
    bool nvme = xfer_nvme(args);
    if (find_pci(nvme ? 0x1b36 : 0x1234, nvme ? 0x0010 : 0x11e8, bdf, len) < 0)
        bail("no %s device", nvme ? "nvme" : "edu");
    v->bdf = bdf;
    v->irq = nvme ? IRQ_MSIX : IRQ_MSI;
}

/* What each process checks of the device it holds: alive and not reset, its data
 * where the previous holder left it, an interrupt counted exactly once. */
static void xfer_check(vmm *v, const char *who, guint32 seed, char **args)
{
    if (xfer_nvme(args)) {
        guint32 cc = rd32(v, NVME_CC), csts = rd32(v, NVME_CSTS);
        guint64 irqs = 0;
        bool idf;
        ok(cc == NVME_CC_VALUE && (csts & 1), "%s: nvme not reset: CC 0x%08x CSTS 0x%x", who, cc,
           csts);
        idf = nvme_identify(v, &irqs);
        ok(idf && irqs == 1, "%s: Identify by DMA into guest RAM at %p, MSI-X counted %"
           G_GUINT64_FORMAT, who, (void *)v->va, irqs);
    } else {
        not_reset r = check_not_reset(v->bdf);
        guint64 irqs;
        ok(r.bus_master && r.msi_enable && r.sysfs_enable, "%s: edu not reset: PCI_COMMAND "
           "0x%04x, MSI control 0x%04x, enable %d", who, r.cmd, r.msi_ctrl, r.sysfs_enable);
        ok(edu_from_device(v, seed), "%s: DMA device -> RAM at %p: the data the previous "
           "holder left in the device arrived", who, (void *)v->va);
        irqs = edu_irq(v);
        ok(irqs == 1, "%s: MSI counted %" G_GUINT64_FORMAT, who, irqs);
    }
}

/* Starts the next process (exec'd from scratch, not a fork of this one's state) with
 * one end of a socketpair; returns its pid and our end. */
static pid_t xfer_spawn(char **child_args, int *sock)
{
    int sv[2];
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        bail("socketpair");
    fflush(stdout);
    pid = fork();
    if (pid < 0)
        bail("fork");
    if (pid == 0) {
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        char fdarg[32];
        int s = dup(sv[1]); /* without CLOEXEC: the new program gets it */
        snprintf(fdarg, sizeof(fdarg), "sock=%d", s);
        g_ptr_array_add(argv, (char *)"guest-cpr");
        if (IOMMUFD)
            g_ptr_array_add(argv, (char *)"--backend=iommufd");
        for (char **a = child_args; *a; a++)
            g_ptr_array_add(argv, *a);
        g_ptr_array_add(argv, fdarg);
        g_ptr_array_add(argv, NULL);
        execv("/proc/self/exe", (char **)argv->pdata);
        _exit(127);
    }
    close(sv[1]);
    *sock = sv[0];
    return pid;
}

/* The holder hands over to a new process generation gen (of count); on success it
 * lets go of everything, waits for its successor and exits with its status. */
static int G_GNUC_NORETURN xfer_hand_over(vmm *v, unsigned gen, char **args)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *g = g_strdup_printf("gen=%u", gen);
    g_autofree char *t0 = g_strdup_printf("t0=%" G_GUINT64_FORMAT, now_us());
    g_autofree char *old = g_strdup_printf("old=%d", (int)getpid());
    g_autofree char *cnt = g_strdup_printf("count=%s", arg(args, "count") ? arg(args, "count") : "10");
    g_autofree char *dev = g_strdup_printf("device=%s", xfer_nvme(args) ? "nvme" : "edu");
    char *child[] = { (char *)"transfer", dev, cnt, g, t0, old, NULL };
    int sock, st = 0, r;
    pid_t pid = xfer_spawn(child, &sock);

    r = vfiocpr_transfer(v->ctx, sock, 10000, 0, &err);
    ok(r == 0, "transfer %u: pid %d handed over to pid %d%s%s", gen - 1, (int)getpid(), (int)pid,
       r ? ": " : "", r ? err->message : "");
    /* ours no more: drop the handles and mappings without touching the device */
    g_clear_error(&err);
    r = vfiocpr_dma_unmap(v->c, RAM_IOVA, RAM_SIZE, &err);
    ok(r == -EBUSY, "transfer %u: the old process is refused the device from now on: %s",
       gen - 1, err ? err->message : "accepted!");
    vmm_stop(v);
    close(sock);
    fflush(stdout);
    waitpid(pid, &st, 0);
    exit(WIFEXITED(st) ? WEXITSTATUS(st) : 1);
}

/* A chain of count transfers between separately started processes; each new one
 * restores with the VMM start-up, checks the device and hands on. */
static int scenario_transfer(char **args)
{
    g_autoptr(GError) err = NULL;
    const char *gen_s = arg(args, "gen");
    unsigned gen = gen_s ? (unsigned)atoi(gen_s) : 1;
    unsigned count = arg(args, "count") ? (unsigned)atoi(arg(args, "count")) : 10;
    char bdf[32];
    vmm v = { 0 };

    xfer_find(&v, bdf, sizeof(bdf), args);
    if (gen == 1) {
        vmm_start(&v, &err);
        ok(!v.restarted, "transfer: cold start, %s %s (%s)", xfer_nvme(args) ? "nvme" : "edu",
           bdf, vfiocpr_backend_to_string(vfiocpr_container_backend(v.c)));
        if (xfer_nvme(args)) {
            guint64 irqs = 0;
            ok(nvme_enable(&v) && nvme_identify(&v, &irqs) && irqs == 1,
               "transfer: nvme enabled, Identify completed, MSI-X counted %" G_GUINT64_FORMAT, irqs);
        } else {
            ok(edu_to_device(&v, 1) && edu_irq(&v) == 1, "transfer: DMA RAM -> device, MSI");
        }
        xfer_hand_over(&v, 2, args);
    }
    v.incoming = true;
    v.in_sock = atoi(arg(args, "sock"));
    {
        guint64 t0 = g_ascii_strtoull(arg(args, "t0"), NULL, 10);
        int old = atoi(arg(args, "old"));
        g_autofree char *who = g_strdup_printf("transfer %u, pid %d", gen - 1, (int)getpid());
        vmm_start(&v, &err); /* finish commits */
        ok(v.restarted && getpid() != old, "%s: restored from pid %d by transfer; blackout "
           "(vfiocpr_transfer -> committed vfiocpr_finish) %" G_GUINT64_FORMAT " us", who, old,
           now_us() - t0);
        xfer_check(&v, who, gen - 1, args);
        if (!xfer_nvme(args))
            ok(edu_to_device(&v, gen), "%s: DMA RAM -> device for the next one", who);
    }
    if (gen <= count)
        xfer_hand_over(&v, gen + 1, args);
    vmm_stop(&v);
    return 0;
}

/* A new process that fails at mode, started by transfer-faults. */
static int scenario_transfer_child(char **args)
{
    g_autoptr(GError) err = NULL;
    const char *mode = arg(args, "mode");
    char bdf[32];
    vmm v = { 0 };

    xfer_find(&v, bdf, sizeof(bdf), args);
    v.incoming = true;
    v.in_sock = atoi(arg(args, "sock"));
    if (strcmp(mode, "die-before-receive") == 0)
        raise(SIGKILL);
    if (strcmp(mode, "die-after-receive") == 0) {
        /* received and validated, nothing taken over yet */
        if (vfiocpr_new_incoming(v.in_sock, 10000, 0, &v.ctx, &err) < 0)
            bail("vfiocpr_new_incoming: %s", err->message);
        raise(SIGKILL);
    }
    vmm_begin(&v, &err);
    if (strcmp(mode, "refuse") == 0) {
        vmm_stop(&v); /* dropping the context before finish refuses */
        return 3;
    }
    vmm_device(&v, "c0", &err); /* type1: the ranges now point at this process */
    if (strcmp(mode, "die-after-restore") == 0)
        raise(SIGKILL);
    if (strcmp(mode, "hang") == 0)
        sleep(60);
    return 4;
}

/* Each way a new process can fail; after each the old one carries on with DMA at its
 * own addresses, its interrupts (one raised before the attempt arrives exactly
 * once) and the device not reset; then a good transfer. */
static int scenario_transfer_faults(char **args)
{
    static const struct {
        const char *mode;
        const char *step;
    } points[] = {
        { "die-before-receive", NULL },
        { "die-after-receive", "after step 'validated'" },
        { "die-after-restore", "after step 'restoring'" },
        { "hang", "did not commit in time" },
        { "refuse", "refused after step" },
    };
    g_autoptr(GError) err = NULL;
    char bdf[32];
    vmm v = { 0 };
    unsigned fds;

    xfer_find(&v, bdf, sizeof(bdf), args);
    vmm_start(&v, &err);
    if (xfer_nvme(args)) {
        guint64 irqs = 0;
        ok(nvme_enable(&v) && nvme_identify(&v, &irqs) && irqs == 1,
           "transfer-faults: nvme enabled, Identify on MSI-X");
    } else {
        ok(edu_to_device(&v, 1), "transfer-faults: DMA RAM -> device");
    }
    fds = count_fds();
    for (gsize i = 0; i < G_N_ELEMENTS(points); i++) {
        g_autofree char *mode = g_strdup_printf("mode=%s", points[i].mode);
        g_autofree char *dev = g_strdup_printf("device=%s", xfer_nvme(args) ? "nvme" : "edu");
        char *child[] = { (char *)"transfer-child", dev, mode, NULL };
        int sock, st = 0, r;
        pid_t pid;

        g_clear_error(&err);
        if (!xfer_nvme(args)) /* an interrupt nobody reads until the attempt is over */
            wr32(&v, EDU_IRQ_RAISE, 0x1);
        pid = xfer_spawn(child, &sock);
        r = vfiocpr_transfer(v.ctx, sock, strcmp(points[i].mode, "hang") == 0 ? 1500 : 10000, 0,
                             &err);
        if (strcmp(points[i].mode, "hang") == 0)
            kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        close(sock);
        ok(r < 0 && err && strstr(err->message, "rolled back") &&
           (!points[i].step || strstr(err->message, points[i].step)),
           "transfer-faults %s: refused and rolled back: %s", points[i].mode,
           err ? err->message : "committed!");
        ok(count_fds() == fds, "transfer-faults %s: no fd gained or lost (%u)", points[i].mode,
           count_fds());
        if (xfer_nvme(args)) {
            guint32 cc = rd32(&v, NVME_CC), csts = rd32(&v, NVME_CSTS);
            guint64 irqs = 0;
            ok(cc == NVME_CC_VALUE && (csts & 1), "transfer-faults %s: nvme not reset: CC "
               "0x%08x CSTS 0x%x", points[i].mode, cc, csts);
            ok(nvme_identify(&v, &irqs) && irqs == 1, "transfer-faults %s: the old process's "
               "Identify completes into its RAM at %p, MSI-X counted %" G_GUINT64_FORMAT,
               points[i].mode, (void *)v.va, irqs);
        } else {
            not_reset nr = check_not_reset(bdf);
            guint64 waiting = eventfd_wait(v.trigger, 3000);
            wr32(&v, EDU_IRQ_ACK, rd32(&v, EDU_IRQ_STATUS));
            ok(waiting == 1, "transfer-faults %s: the interrupt raised before the attempt "
               "arrived exactly once (%" G_GUINT64_FORMAT ")", points[i].mode, waiting);
            ok(nr.bus_master && nr.msi_enable && nr.sysfs_enable, "transfer-faults %s: not "
               "reset: PCI_COMMAND 0x%04x, MSI control 0x%04x", points[i].mode, nr.cmd,
               nr.msi_ctrl);
            ok(edu_from_device(&v, 1) && edu_to_device(&v, 1) && edu_irq(&v) == 1,
               "transfer-faults %s: DMA both ways at the old process's own address %p, MSI",
               points[i].mode, (void *)v.va);
        }
    }
    /* and a good one takes over */
    {
        char *more[] = { (char *)"count=1", NULL };
        g_autofree char *dev = g_strdup_printf("device=%s", xfer_nvme(args) ? "nvme" : "edu");
        char *a2[] = { dev, more[0], NULL };
        xfer_hand_over(&v, 2, a2);
    }
}

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
    const char *s;
    char **args;
    int r;

    t_main = now_us();
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && g_str_has_prefix(argv[1], "--backend=")) {
        if (strcmp(argv[1], "--backend=iommufd") == 0)
            backend = VFIOCPR_BACKEND_IOMMUFD;
        else if (strcmp(argv[1], "--backend=type1") != 0)
            bail("unknown %s (type1 or iommufd)", argv[1]);
        argv++;
        argc--;
    }
    s = argc > 1 ? argv[1] : "";
    args = argv + (argc > 1 ? 2 : 1);
    /* guest-suite.sh sets VFIOCPR_SEAM_RECORD_DIR: what the real kernel seam saw, for
     * tests/test-seccomp-seen on the host */
    {
        g_autofree char *name = g_strdup_printf("guest-cpr %s %s",
                                                backend == VFIOCPR_BACKEND_IOMMUFD ? "iommufd"
                                                                                   : "type1", s);
        seam_record_program(name);
    }
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
    else if (strcmp(s, "swap-refused") == 0)
        r = scenario_swap(args);
    else if (strcmp(s, "two-ioas") == 0)
        r = scenario_two(args);
    else if (strcmp(s, "exec-window") == 0)
        r = scenario_window(false, args);
    else if (strcmp(s, "exec-window-negative") == 0)
        r = scenario_window(true, args);
    else if (strcmp(s, "nvme-busy") == 0)
        r = scenario_busy(args);
    else if (strcmp(s, "pin") == 0)
        r = scenario_pin(args);
    else if (strcmp(s, "uva-refused") == 0)
        r = scenario_uva(args);
    else if (strcmp(s, "soak") == 0)
        r = scenario_soak(args);
    else if (strcmp(s, "memlock") == 0)
        r = scenario_memlock(args);
    else if (strcmp(s, "transfer") == 0)
        r = scenario_transfer(args);
    else if (strcmp(s, "transfer-faults") == 0)
        r = scenario_transfer_faults(args);
    else if (strcmp(s, "transfer-child") == 0)
        return scenario_transfer_child(args);
    else if (strcmp(s, "demo") == 0)
        return scenario_demo(args);
    else
        bail("unknown scenario '%s'", s);
    printf("1..%u\n", tap_n);
    return r ? r : tap_failed ? 1 : 0;
}
