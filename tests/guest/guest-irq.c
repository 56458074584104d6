/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Guest scenarios for interrupts across exec, on a real kernel with QEMU's e1000e
 * (8086:10d3, 5 MSI-X vectors) bound to vfio-pci (run inside QEMU by run-guest.sh).
 * A VMM-shaped start-up, the same code in every image, wires the device through the
 * library only (vfiocpr_irq_enable for MSI-X, ERR and REQ, library-made eventfds);
 * the program exec()s itself and the next image counts what arrived. Output is TAP;
 * test numbers carry across images in argv.
 *
 *   guest-irq msix-count     every interrupt counted exactly once: each vector is
 *                            fired a known number of times before the exec, during
 *                            it (by a helper process) and after it, and each
 *                            preserved eventfd is read once at the end
 *   guest-irq msix-negative  negative control: the new image re-issues SET_IRQS with
 *                            fresh eventfds (a restore that bypasses the library);
 *                            the same count check must see the interrupts missing
 * With --backend=iommufd first, the same on the iommufd backend (the e1000e cdev).
 *
 * How a shot is fired (QEMU hw/net/e1000e_core.c): IVAR routes the RXQ0 cause to one
 * MSI-X vector, EIAC auto-clears the cause after each message; a shot is IMS = RXQ0
 * then ICS = RXQ0. Shots are 2 ms apart (EITR throttling is 128 us, and a throttled
 * shot would merge with the next one). The OTHER cause is never unmasked: the link
 * timer raises it.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vfiocpr.h"
#include "guest-util.h"
#include "../seam-record.h"

/* e1000e registers (82574 datasheet; QEMU hw/net/e1000_regs.h) */
#define E1000_ICR 0xC0
#define E1000_ICS 0xC8
#define E1000_IMS 0xD0
#define E1000_IMC 0xD8
#define E1000_EIAC 0xDC
#define E1000_IVAR 0xE4
#define CAUSE_RXQ0 (1u << 20)
#define IVAR_VALID 0x8u

#define N_VEC 5
#define SHOT_US 2000
#define HELPER_VECTOR 2
#define HELPER_MS 300
#define HELPER_MAX 1024
#define HELPER_FILE "/tmp/guest-irq-helper"

/* how often the old image fires vector N, and the new image after the exec */
static unsigned fired_before(unsigned n) { return n + 2; }
static unsigned fired_after(unsigned n) { return 2 * n + 1; }

static const char *arg(char **args, const char *key)
{
    for (char **a = args; *a; a++)
        if (g_str_has_prefix(*a, key) && (*a)[strlen(key)] == '=')
            return *a + strlen(key) + 1;
    return NULL;
}

static unsigned arg_u(char **args, const char *key)
{
    const char *s = arg(args, key);
    if (!s)
        bail("argument %s missing", key);
    return (unsigned)atoi(s);
}

/* ------------------------------------------------------------------ the VMM */

typedef struct {
    const char *bdf;
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *dev;
    int group;
    volatile guint32 *bar;
    guint64 bar_size;
    guint64 cfg_off;
    int msix[N_VEC];
    int err_fd, req_fd;
    bool restarted;
} vmm;

static guint32 rd32(volatile guint32 *bar, guint32 off) { return bar[off / 4]; }
static void wr32(volatile guint32 *bar, guint32 off, guint32 val) { bar[off / 4] = val; }

/* What a VMM runs at start-up, cold or restarted: the same calls either way. On a
 * restart the library hands back the preserved fds and issues no SET_IRQS. */
/* "--backend=iommufd" before the scenario name: the container is an iommufd IOAS and
 * the device its cdev; passed on to every image. */
static bool iommufd;

static void vmm_start(vmm *v, GError **error)
{
    struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    g_auto(GStrv) unclaimed = NULL;
    void *bar;
    guint64 bar_size;

    if (vfiocpr_new(0, &v->ctx, error) < 0)
        bail("vfiocpr_new: %s", (*error)->message);
    v->restarted = vfiocpr_is_restart(v->ctx);
    v->group = vfiocpr_device_group_id(v->bdf, error);
    if (v->group < 0)
        bail("group of %s: %s", v->bdf, (*error)->message);
    if (iommufd) {
        /* the cdev: interrupts are set on its fd exactly as on a group's device fd */
        if (vfiocpr_container_open_backend(v->ctx, "c0", VFIOCPR_BACKEND_IOMMUFD, &v->c,
                                           error) < 0 ||
            vfiocpr_device_attach(v->c, v->bdf, &v->dev, error) < 0)
            bail("open %s (iommufd): %s", v->bdf, (*error)->message);
    } else if (vfiocpr_container_open(v->ctx, "c0", &v->c, error) < 0 ||
               vfiocpr_container_add_group(v->c, v->group, error) < 0 ||
               vfiocpr_device_open(v->c, v->group, v->bdf, &v->dev, error) < 0) {
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
        int fd = vfiocpr_device_fd(v->dev);
        if (pread(fd, &cmd, 2, (off_t)(v->cfg_off + PCI_COMMAND)) != 2)
            bail("read PCI_COMMAND");
        cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
        if (pwrite(fd, &cmd, 2, (off_t)(v->cfg_off + PCI_COMMAND)) != 2)
            bail("enable memory + bus master");
    }
    if (vfiocpr_irq_enable(v->dev, VFIOCPR_IRQ_MSIX, 0, N_VEC, NULL, v->msix, error) < 0 ||
        vfiocpr_irq_enable(v->dev, VFIOCPR_IRQ_ERR, 0, 1, NULL, &v->err_fd, error) < 0 ||
        vfiocpr_irq_enable(v->dev, VFIOCPR_IRQ_REQ, 0, 1, NULL, &v->req_fd, error) < 0)
        bail("irq enable: %s", (*error)->message);
    if (vfiocpr_finish(v->ctx, &unclaimed, error) < 0)
        bail("finish: %s", (*error)->message);
    if (v->restarted && unclaimed && unclaimed[0])
        bail("unclaimed after restart: %s", unclaimed[0]);
}

/* A VMM shutting down without touching the device: drop handles, unmap. */
static void vmm_stop(vmm *v)
{
    if (v->bar)
        munmap((void *)v->bar, v->bar_size);
    v->bar = NULL;
    g_clear_pointer(&v->dev, vfiocpr_device_unref);
    g_clear_pointer(&v->c, vfiocpr_container_unref);
    g_clear_pointer(&v->ctx, vfiocpr_unref);
}

static int vmm_exec(vmm *v, char **args, GError **error)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(argv, g_strdup("guest-irq"));
    if (iommufd)
        g_ptr_array_add(argv, g_strdup("--backend=iommufd"));
    for (char **a = args; *a; a++)
        g_ptr_array_add(argv, g_strdup(*a));
    g_ptr_array_add(argv, NULL);
    return vfiocpr_exec(v->ctx, "/proc/self/exe", (char *const *)argv->pdata, NULL, error);
}

/* ------------------------------------------------------------------ e1000e */

/* Cold start only: every cause masked, RXQ0 auto-cleared after its MSI-X message,
 * RXQ0 routed to vector 0, stale causes dropped (ICR is read-to-clear). */
static void e1000e_setup(volatile guint32 *bar)
{
    wr32(bar, E1000_IMC, 0xffffffffu);
    wr32(bar, E1000_EIAC, CAUSE_RXQ0);
    wr32(bar, E1000_IVAR, IVAR_VALID | 0);
    (void)rd32(bar, E1000_ICR);
}

static void route(volatile guint32 *bar, unsigned vector)
{
    wr32(bar, E1000_IVAR, IVAR_VALID | vector);
}

static void shot(volatile guint32 *bar)
{
    wr32(bar, E1000_IMS, CAUSE_RXQ0);
    wr32(bar, E1000_ICS, CAUSE_RXQ0);
    usleep(SHOT_US);
}

/* n shots into vector; the 2 ms after the last one lets it land before IVAR moves */
static void fire(volatile guint32 *bar, unsigned vector, unsigned n)
{
    route(bar, vector);
    for (unsigned i = 0; i < n; i++)
        shot(bar);
}

/* ------------------------------------------------------------------ the helper */

/* What the helper reports: how many shots it fired into which vector, and when. */
typedef struct {
    guint32 vector, shots;
    guint64 ts[HELPER_MAX];
} helper_report;

/* Forked by the old image just before vfiocpr_exec(); fires into HELPER_VECTOR for
 * HELPER_MS through the BAR0 mapping it inherited (an mmap survives fork), so shots
 * land while the parent prepares, exec()s and restores. It keeps no fd: the VFIO and
 * eventfd copies fork gave it are closed at once, so every interrupt counted later
 * arrived through the parent's preserved eventfds. The parent's exec keeps the pid,
 * so the helper is the new image's child: it writes its report to a file and exits,
 * the new image reaps it and reads the file. */
static void G_GNUC_NORETURN helper(volatile guint32 *bar)
{
    static helper_report r;
    guint64 start = now_us();
    int fd;

    for (int i = 3; i < 1024; i++)
        close(i);
    r.vector = HELPER_VECTOR;
    while (now_us() - start < HELPER_MS * 1000u && r.shots < HELPER_MAX) {
        r.ts[r.shots++] = now_us();
        shot(bar);
    }
    fd = open(HELPER_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, &r, sizeof(r)) != (ssize_t)sizeof(r) || close(fd) < 0 ||
        rename(HELPER_FILE ".tmp", HELPER_FILE) < 0)
        _exit(2);
    _exit(0);
}

/* ------------------------------------------------------------------ evidence */

/* The host kernel's view (sysfs config is the physical config space): bus master
 * and MSI-X enable still set means the device was neither closed nor reset. */
static bool live_in_sysfs(const char *bdf, guint16 *cmd, guint16 *msix_ctrl)
{
    char path[PATH_MAX];
    guint8 cfg[256] = { 0 };
    int fd;

    *cmd = *msix_ctrl = 0;
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    if (pread(fd, cfg, sizeof(cfg), 0) == sizeof(cfg)) {
        guint8 pos = cfg[PCI_CAPABILITY_LIST];
        memcpy(cmd, cfg + PCI_COMMAND, 2);
        for (int guard = 0; pos && pos < 0xff && guard < 48; guard++) {
            if (cfg[pos] == PCI_CAP_ID_MSIX) {
                memcpy(msix_ctrl, cfg + pos + 2, 2);
                break;
            }
            pos = cfg[pos + 1];
        }
    }
    close(fd);
    return (*cmd & PCI_COMMAND_MASTER) && (*msix_ctrl & PCI_MSIX_FLAGS_ENABLE);
}

/* One read of a non-blocking eventfd: its whole count, 0 if nothing arrived. */
static guint64 drain(int fd)
{
    guint64 n = 0;
    if (read(fd, &n, sizeof(n)) != sizeof(n))
        return 0;
    return n;
}

/* The buggy restore of the negative control: what a VMM's cold-start path does when
 * it bypasses the library on a restart, re-issuing SET_IRQS on the live MSI-X index
 * with fresh eventfds (raw ioctl on the preserved device fd). The kernel frees and
 * re-requests every vector; MSI-X itself stays enabled. (Disabling MSI-X first, with
 * DATA_NONE, also loses interrupts but can trip QEMU 7.2's e1000e model: an
 * assertion in its throttling timer aborts the whole guest.) */
static int reissue_set_irqs(int devfd, int fresh[N_VEC])
{
    char buf[sizeof(struct vfio_irq_set) + N_VEC * sizeof(int)];
    struct vfio_irq_set *s = (struct vfio_irq_set *)buf;

    for (unsigned i = 0; i < N_VEC; i++)
        if ((fresh[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
            return -1;
    *s = (struct vfio_irq_set){ .argsz = sizeof(buf), .index = VFIO_PCI_MSIX_IRQ_INDEX,
                                .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
                                .count = N_VEC };
    memcpy(s->data, fresh, N_VEC * sizeof(int));
    return ioctl(devfd, VFIO_DEVICE_SET_IRQS, s);
}

/* ------------------------------------------------------------------ scenarios */

static void cold(const char *name, vmm *v)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *t0 = NULL, *n = NULL, *fds = NULL, *er = NULL, *hp = NULL;
    char *next[] = { (char *)name, (char *)"gen=2", NULL, NULL, NULL, NULL, NULL, NULL };
    unsigned pending = 0;
    guint16 cmd, ctrl;
    bool live;
    pid_t pid;

    vmm_start(v, &err);
    ok(!v->restarted, "%s: cold start, e1000e %s in group %d, MSI-X fds %d-%d, ERR fd %d, "
       "REQ fd %d", name, v->bdf, v->group, v->msix[0], v->msix[N_VEC - 1], v->err_fd, v->req_fd);
    for (unsigned i = 0; i < N_VEC; i++)
        pending += vfiocpr_irq_pending(v->dev, VFIOCPR_IRQ_MSIX, i) != 0;
    ok(pending == 0, "%s: no vector pending before the first shot (%u pending)", name, pending);
    e1000e_setup(v->bar);
    /* fire, and look without consuming: every count must reach the new image */
    pending = 0;
    for (unsigned i = 0; i < N_VEC; i++) {
        fire(v->bar, i, fired_before(i));
        pending += vfiocpr_irq_pending(v->dev, VFIOCPR_IRQ_MSIX, i) == 1;
    }
    ok(pending == N_VEC, "%s: before exec vectors 0-%u fired %u-%u times each, eventfds not read "
       "(%u of %u pending)", name, N_VEC - 1, fired_before(0), fired_before(N_VEC - 1), pending,
       N_VEC);
    live = live_in_sysfs(v->bdf, &cmd, &ctrl);
    ok(live, "%s: before exec bus master and MSI-X enable are set (PCI_COMMAND 0x%04x, MSI-X "
       "control 0x%04x)", name, cmd, ctrl);

    route(v->bar, HELPER_VECTOR);
    unlink(HELPER_FILE);
    fflush(stdout);
    pid = fork();
    if (pid < 0)
        bail("fork: %s", g_strerror(errno));
    if (pid == 0)
        helper(v->bar);
    t0 = g_strdup_printf("t0=%" G_GUINT64_FORMAT, now_us());
    n = g_strdup_printf("n=%u", tap_n);
    fds = g_strdup_printf("msix=%d,%d,%d,%d,%d", v->msix[0], v->msix[1], v->msix[2], v->msix[3],
                          v->msix[4]);
    er = g_strdup_printf("errreq=%d,%d", v->err_fd, v->req_fd);
    next[2] = t0;
    next[3] = n;
    next[4] = fds;
    next[5] = er;
    hp = g_strdup_printf("helper=%d", (int)pid);
    next[6] = hp;
    vmm_exec(v, next, &err);
    bail("exec: %s", err ? err->message : "?");
}

static int scenario(const char *name, bool negative, char **args)
{
    g_autoptr(GError) err = NULL;
    helper_report rep;
    char bdf[32];
    vmm v = { 0 };
    guint64 t0, t1, fired_total = 0, got_total = 0, fresh_total = 0;
    int old_msix[N_VEC], old_err, old_req, fresh[N_VEC], status, fd;
    pid_t helper_pid, reaped;
    unsigned in_window = 0, wrong = 0, extra = 0, short_vec = 0;
    guint32 ivar, eiac;
    guint16 cmd, ctrl;
    bool live, same = true;

    if (find_pci(0x8086, 0x10d3, bdf, sizeof(bdf)) < 0)
        bail("no e1000e device");
    v.bdf = bdf;
    if (!arg(args, "gen"))
        cold(name, &v); /* does not return */

    tap_n = arg_u(args, "n");
    t0 = g_ascii_strtoull(arg(args, "t0"), NULL, 10);
    helper_pid = (pid_t)arg_u(args, "helper");
    if (sscanf(arg(args, "msix"), "%d,%d,%d,%d,%d", &old_msix[0], &old_msix[1], &old_msix[2],
               &old_msix[3], &old_msix[4]) != N_VEC ||
        sscanf(arg(args, "errreq"), "%d,%d", &old_err, &old_req) != 2)
        bail("bad arguments");
    vmm_start(&v, &err);
    t1 = now_us();
    ok(v.restarted, "%s: restarted in place; blackout (prepare + exec + restore) %" G_GUINT64_FORMAT
       " us", name, t1 - t0);

    /* the interrupt wiring came back as it was, through the library, with no SET_IRQS */
    for (unsigned i = 0; i < N_VEC; i++)
        same = same && v.msix[i] == old_msix[i] &&
               vfiocpr_irq_fd(v.dev, VFIOCPR_IRQ_MSIX, i) == old_msix[i];
    ok(same, "%s: MSI-X eventfds preserved: fds %d-%d, vfiocpr_irq_fd agrees", name, v.msix[0],
       v.msix[N_VEC - 1]);
    ok(v.err_fd == old_err && vfiocpr_irq_fd(v.dev, VFIOCPR_IRQ_ERR, 0) == old_err &&
       fcntl(old_err, F_GETFD) == FD_CLOEXEC,
       "%s: ERR eventfd preserved: fd %d before, %d now, vfiocpr_irq_fd %d", name, old_err,
       v.err_fd, vfiocpr_irq_fd(v.dev, VFIOCPR_IRQ_ERR, 0));
    ok(v.req_fd == old_req && vfiocpr_irq_fd(v.dev, VFIOCPR_IRQ_REQ, 0) == old_req &&
       fcntl(old_req, F_GETFD) == FD_CLOEXEC,
       "%s: REQ eventfd preserved: fd %d before, %d now, vfiocpr_irq_fd %d", name, old_req,
       v.req_fd, vfiocpr_irq_fd(v.dev, VFIOCPR_IRQ_REQ, 0));
    /* the device registers were not reset: what the old image programmed is there */
    ivar = rd32(v.bar, E1000_IVAR);
    eiac = rd32(v.bar, E1000_EIAC);
    ok(ivar == (IVAR_VALID | HELPER_VECTOR) && eiac == CAUSE_RXQ0,
       "%s: device registers kept: IVAR 0x%x (written 0x%x), EIAC 0x%x (written 0x%x)", name,
       ivar, IVAR_VALID | HELPER_VECTOR, eiac, CAUSE_RXQ0);
    live = live_in_sysfs(bdf, &cmd, &ctrl);
    ok(live, "%s: not reset: bus master and MSI-X enable still set (PCI_COMMAND 0x%04x, MSI-X "
       "control 0x%04x)", name, cmd, ctrl);

    if (negative) {
        /* The break, chosen over re-wiring in the old image or closing the device fd:
         * it is exactly what the library's restart rule ("no SET_IRQS on a restart")
         * prevents, done where the bug would live, in the new image's start-up, while
         * the helper may still be firing. The preserved eventfds stay open and are
         * still the ones the VMM (and the library) believe in; the kernel now signals
         * other ones. A device fd close instead would be caught earlier and by other
         * checks (restore refuses the state, bus master clear), not by the count. */
        ok(reissue_set_irqs(vfiocpr_device_fd(v.dev), fresh) == 0,
           "%s: the new image re-issues SET_IRQS on the live MSI-X index with fresh "
           "eventfds", name);
    }

    /* the helper: the new image's child now */
    reaped = waitpid(-1, &status, 0);
    fd = open(HELPER_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
        bail("no report from the helper");
    close(fd);
    for (unsigned i = 0; i < rep.shots; i++)
        in_window += rep.ts[i] >= t0 && rep.ts[i] <= t1;
    ok(reaped == helper_pid && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
       rep.vector == HELPER_VECTOR && rep.shots > 0 && in_window > 0,
       "%s: the helper (pid %d, reaped by the new image) fired %u shots into vector %u in "
       "%u ms, %u of them between the start of the exec and the end of the restore", name,
       (int)reaped, rep.shots, rep.vector, HELPER_MS, in_window);

    for (unsigned i = 0; i < N_VEC; i++)
        fire(v.bar, i, fired_after(i));

    /* each preserved eventfd read once: before + during + after, exactly */
    for (unsigned i = 0; i < N_VEC; i++) {
        guint64 during = i == rep.vector ? rep.shots : 0;
        guint64 want = fired_before(i) + during + fired_after(i);
        guint64 got = drain(v.msix[i]);
        fired_total += want;
        got_total += got;
        wrong += got != want;
        short_vec += got < want;
        if (!negative && got > want) {
            /* QEMU's e1000e model under TCG load sometimes sends a shot's message more
             * than once (tests/guest/README.md): none lost, reported as TODO */
            printf("not ok %u - %s: vector %u: fired %u before + %" G_GUINT64_FORMAT " during + %u "
                   "after exec = %" G_GUINT64_FORMAT ", received %" G_GUINT64_FORMAT ": extra "
                   "messages from the device model, none lost # TODO\n", ++tap_n, name, i,
                   fired_before(i), during, fired_after(i), want, got);
            extra++;
        } else if (!negative)
            ok(got == want, "%s: vector %u: fired %u before + %" G_GUINT64_FORMAT " during + %u "
               "after exec = %" G_GUINT64_FORMAT ", received %" G_GUINT64_FORMAT, name, i,
               fired_before(i), during, fired_after(i), want, got);
        else
            printf("# %s: vector %u: fired %u before + %" G_GUINT64_FORMAT " during + %u after "
                   "exec = %" G_GUINT64_FORMAT ", received %" G_GUINT64_FORMAT "\n", name, i,
                   fired_before(i), during, fired_after(i), want, got);
    }
    if (!negative) {
        ok(wrong == extra && got_total >= fired_total, "%s: no interrupt lost%s: fired %"
           G_GUINT64_FORMAT ", received %" G_GUINT64_FORMAT " on the preserved eventfds", name,
           extra ? " (extra messages on some vectors, above)" : " or extra", fired_total,
           got_total);
    } else {
        for (unsigned i = 0; i < N_VEC; i++) {
            guint64 f = drain(fresh[i]);
            printf("# %s: vector %u: %" G_GUINT64_FORMAT " arrived on the fresh eventfd\n", name,
                   i, f);
            fresh_total += f;
            close(fresh[i]);
        }
        /* What neither eventfd got was fired while MSI-X was disabled: lost for good.
         * Caught as the check above fails: a vector short of what was fired (extra
         * messages excused there cannot hide it; the e1000e model under load can
         * duplicate a busy vector's messages enough to lift the total above the
         * fired count while the other vectors lose theirs). */
        ok(short_vec > 0, "%s: the count check catches the lost interrupts: fired %"
           G_GUINT64_FORMAT ", received %" G_GUINT64_FORMAT " on the preserved eventfds (%u "
           "of %u vectors short; %" G_GUINT64_FORMAT " went to the fresh eventfds, %"
           G_GUINT64_FORMAT " to neither)", name, fired_total, got_total, short_vec, N_VEC,
           fresh_total,
           fired_total > got_total + fresh_total ? fired_total - got_total - fresh_total : 0);
    }
    unlink(HELPER_FILE);
    vmm_stop(&v);
    return 0;
}

int main(int argc, char **argv)
{
    const char *s;
    char **args;
    int r;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "--backend=iommufd") == 0) {
        iommufd = true;
        argv++;
        argc--;
    }
    s = argc > 1 ? argv[1] : "";
    args = argv + (argc > 1 ? 2 : 1);
    {
        /* guest-suite.sh: what the real kernel seam saw, for tests/test-seccomp-seen */
        g_autofree char *name = g_strdup_printf("guest-irq %s %s", iommufd ? "iommufd" : "type1",
                                                s);
        seam_record_program(name);
    }
    if (strcmp(s, "msix-count") == 0)
        r = scenario(s, false, args);
    else if (strcmp(s, "msix-negative") == 0)
        r = scenario(s, true, args);
    else
        bail("unknown scenario '%s'", s);
    printf("1..%u\n", tap_n);
    return r ? r : tap_failed ? 1 : 0;
}
