/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * minivmm: the shape of a VMM that upgrades itself in place with exec() while its
 * passthrough PCI device keeps running, built on libvfiocpr.
 *
 *   minivmm --device BDF [--control PATH] [--upgrades N] [--self-test]
 *           [--upgrade-to PATH] [--wrapper PATH [--wrapper-arg ARG]...] [--forbidden-ioctl]
 *   minivmm --device BDF --kvm [--intx] [--guest-image PATH] [--negative NAME]
 *           [--control PATH] [--upgrades N] [--upgrade-to PATH]
 *           [--backend type1|iommufd|auto]
 *   minivmm ... [--transfer-to SOCKET]            (upgrades are transfers)
 *   minivmm --device BDF [--kvm] [--control PATH] --incoming SOCKET
 *           [--incoming-fault accepted|received|restored|hang] [--negative NAME]
 *   minivmm --control PATH --send "upgrade [PATH]" | "upgrade --transfer SOCKET" |
 *           status | quit
 *
 * Without --kvm there is no guest: the "device model" is this program driving the
 * device itself, as a guest driver would, so that every upgrade can be checked end
 * to end. With --kvm it is a VMM: see below.
 *
 *  - QEMU's edu (1234:11e8): a DMA round trip guest RAM -> device -> guest RAM with
 *    a pattern check, then an MSI raised on request; every DMA completion is an MSI
 *    too. One vector.
 *  - e1000e (8086:10d3): MSI-X shots round-robin over its 5 vectors (no DMA is
 *    driven; guest RAM is still mapped, so its mapping crosses every exec).
 *
 * Every interrupt the device is asked to raise is counted as "fired", every one
 * read from an eventfd as "received"; the counters live in a memfd registered with
 * libvfiocpr, so they cross exec and must balance after every upgrade.
 *
 * Upgrade: SIGHUP, "upgrade [PATH]" on the control socket, or --upgrades N
 * (automatic, one after every ~200 ms of device work, then exit 0 if all of them
 * were good). The running image hands over at a quiet point: it leaves a known
 * pattern in the device (edu) and fires one interrupt it does not read, then calls
 * vfiocpr_exec(). The new image runs the very same start-up code as a cold start
 * (libvfiocpr turns it into a restore), then checks that the pattern comes back by
 * DMA into guest RAM at its new address, that the unread interrupt is waiting on
 * the inherited eventfd, and that the device was not reset, and prints a timeline.
 * If vfiocpr_exec() fails, it has rolled everything back and the old image simply
 * keeps running.
 *
 * --kvm: a VM with an in-kernel irqchip and one vCPU running minivmm-guest.c (built
 * as minivmm-guest.bin, looked for beside this binary, or --guest-image), which is
 * the device's driver: on edu it does the DMA both ways and takes the device's MSI
 * (or, with --intx, its INTx through the IOAPIC) through KVM; on e1000e it shoots
 * each of the 5 MSI-X vectors in turn. It counts in its own RAM every interrupt its
 * handlers took. minivmm never touches the device while the guest
 * runs. At an upgrade the old image saves the vCPU and irqchip state into a memfd of
 * its own, a helper process keeps the device raising interrupts while no VM exists,
 * and the new image restores the state into a new VM, lets libvfiocpr rebuild the
 * routes and irqfds, and compares what the guest counted with what was raised.
 * --negative NAME breaks one rule, for the tests: set-irqs (the restart re-issues
 * SET_IRQS with a new eventfd and wires that one), set-irqs-same (SET_IRQS re-issued
 * with the preserved eventfd),
 * wrong-gsi, irqfd-before-routes (in the new image), keep-old-irqfds (the old
 * image's VM keeps an irqfd and crosses the exec), cold-guest (the new image boots
 * the guest afresh instead of restoring it), ram-copy (the new VM's RAM is a copy of
 * the DMA-mapped memfd). No /dev/kvm is an error.
 * minivmm-suite.sh beside this file is the guest test.
 *
 * Transfer: instead of exec'ing itself, the running VMM can hand everything to a
 * separately started process (another binary, container or cgroup) with
 * vfiocpr_transfer(). The new process is started as `minivmm --incoming SOCKET`
 * with the same --device (and --kvm, --control) as the old one: it listens on
 * SOCKET, takes exactly one connection, gets its context from
 * vfiocpr_new_incoming() instead of vfiocpr_new(), and then runs the very same
 * start-up as an exec restart (restart mode; under --kvm a new VM restored from the
 * vCPU memfd, which travels like every registered fd) and the same checks and
 * timeline, with both pids. The old side transfers on "upgrade --transfer SOCKET"
 * on the control socket, or, with --transfer-to SOCKET, on every upgrade that would
 * exec (--upgrades, SIGHUP); it connects (retrying for 10 s: the new process may
 * still be starting), hands over at the same quiet point as an exec, and once the
 * new process has committed it says so and exits 0 without touching the devices.
 * If the transfer fails (the new process refuses, dies or does not commit within
 * 10 s) the library has rolled everything back, the old process prints its error,
 * which names the last step the new one reported, and carries on, exactly as after
 * a failed exec. The new process writes nothing into the VMM state memfd (shared
 * with the old process, not copied) before vfiocpr_finish(): until the commit it is
 * still the old process's. --incoming-fault POINT (a test) SIGKILLs the new process
 * right after it accepted the connection, after it received and validated the
 * state, or after its devices are restored; "hang" stops it there for good. Without
 * --kvm, --negative NAME breaks one of the new image's checks (after an exec or a
 * transfer): ram-copy (guest RAM read from a copy), irq-drain (the waiting
 * interrupt read and dropped), bus-master-off (PCI bus mastering cleared, as a
 * reset would leave it).
 *
 * --upgrade-to PATH: the binary an upgrade without an explicit path execs (SIGHUP,
 * --upgrades, "upgrade" on the control socket); default: this binary.
 * --wrapper PATH: every upgrade execs an exec wrapper such as vfiocpr-exec instead,
 * through vfiocpr_exec() as always, with
 *   { PATH, ARG..., "--fallback", <this binary>, "--", <target>, <our arguments> }
 * (ARG: each --wrapper-arg; <this binary>: readlink /proc/self/exe just before the
 * exec). The wrapper checks the state, then execs the target, or this binary again
 * if the target cannot be exec'd: the restarted image then says it is the fallback
 * (VFIOCPR_EXEC_FALLBACK) and restores just the same. With --wrapper-arg --seccomp
 * the new image runs under the wrapper's filter; the timeline shows the filters
 * from /proc/self/status. --forbidden-ioctl (a test) makes a restarted image issue
 * an ioctl outside libvfiocpr's seccomp list (TIOCGWINSZ on stdin) once the upgrade
 * is checked: under such a filter the kernel kills it with SIGSYS; if the ioctl
 * returns, minivmm says there was no filter and exits 1. --self-test always execs
 * directly: it tests vfiocpr_exec()'s own rollback.
 *
 * Build against the installed library:
 *   cc -O2 -o minivmm minivmm.c $(pkg-config --cflags --libs vfiocpr)
 * Needs root (VFIO, locked memory) and the device bound to vfio-pci.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create, accept4 */
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/kvm.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <vfiocpr.h>

#include "minivmm-guest.h"

/* ------------------------------------------------------------------ constants */

#define RAM_SIZE (2u << 20)  /* guest RAM: a 2 MiB memfd */
#define RAM_IOVA 0x100000ull /* where the device sees it; edu's DMA mask is 28 bits */
#define RAM_SRC 0x0000u      /* offset in guest RAM of what goes to the device */
#define RAM_DST 0x1000u      /* ... and of what comes back */
#define XFER 2048u           /* edu's buffer is 4 KiB; QEMU 7.2 aborts on a full one */
#define STATE_SIZE 4096u     /* the VMM's own state memfd */

#define MAX_VECTORS 5
#define TICK_MS 10           /* the main loop's timer */
#define WORK_MS 200          /* --upgrades: device work between two upgrades */
#define VERIFY_QUIET_MS 50   /* e1000e: quiet time after a restart before counting */
#define DMA_TIMEOUT_MS 3000
#define SETTLE_MS 1000       /* how long a checkpoint waits for interrupts in flight */
#define KVM_GSI_BASE 24      /* our MSI routes, above the 24 IOAPIC pins */
#define XFER_TIMEOUT_MS 10000 /* a transfer: how long either side waits for the other */
#define XFER_ACCEPT_MS 300000 /* --incoming: how long the new process waits for the old */
#define XFER_CONNECT_MS 10000 /* the old side: the new process may still be starting */

/* edu (QEMU hw/misc/edu.c) */
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_START 0x1u
#define EDU_DMA_TO_RAM 0x2u
#define EDU_DMA_IRQ 0x4u
#define EDU_BUF 0x40000u
#define EDU_IRQ_DMA 0x100u /* status bit edu sets when a DMA with EDU_DMA_IRQ is done */
#define EDU_IRQ_USER 0x1u  /* the bit we raise ourselves */

/* e1000e (82574 datasheet; QEMU hw/net/e1000_regs.h) */
#define E1000_ICR 0xC0
#define E1000_ICS 0xC8
#define E1000_IMS 0xD0
#define E1000_IMC 0xD8
#define E1000_EIAC 0xDC
#define E1000_IVAR 0xE4
#define E1000_CAUSE_RXQ0 (1u << 20)
#define E1000_IVAR_VALID 0x8u
#define E1000_SHOT_GAP_US 2000 /* EITR throttles at 128 us: keep shots well apart */

/* ------------------------------------------------------------------ the VMM's state */

/*
 * What the VMM carries from one image to the next, besides what libvfiocpr keeps:
 * its device-model counters and the facts of the upgrade in flight. It lives in a
 * memfd registered with libvfiocpr, mapped shared, and the VMM updates it in place:
 * there is no "save" step at exec time and nothing to parse. A memfd rather than
 * argv: argv is visible in ps, limited in size and text only; the registry also
 * checks that the new image gets the very same file.
 *
 * The format is the VMM's own business: magic, version and size let a newer binary
 * accept (or convert, or refuse) what an older one wrote.
 */
#define STATE_MAGIC 0x4d564d4du /* "MVMM" */
#define STATE_VERSION 4u /* 2: via, fallbacks; 3: --kvm runs a guest; 4: transfers */

typedef struct {
    uint32_t magic, version, size;
    uint32_t generation; /* 1 on a cold start, +1 per exec */

    /* interrupt accounting, per vector, across every image */
    uint64_t fired[MAX_VECTORS], received[MAX_VECTORS];
    int64_t deficit;      /* fired - received at the last checkpoint */
    uint64_t last_shot_us; /* e1000e shot spacing holds across an exec too */
    uint32_t seed;        /* edu: the last pattern sent to the device */

    /* the upgrade in flight, written by the old image (CLOCK_MONOTONIC, us) */
    uint64_t t_requested, t_handover, t_exec;
    char requested_by[32];
    char exec_path[128];     /* the upgrade's target */
    char via[128];           /* the exec wrapper it went through, or "" */
    uint32_t handover_vector; /* the interrupt fired and left unread */
    uint16_t cmd_before, irq_ctrl_before;

    /* --upgrades and results */
    uint32_t upgrades_wanted; /* 0: only on request */
    uint32_t upgrades_done, upgrades_good, rollbacks;
    uint32_t fallbacks;       /* restarts of this binary by the wrapper, as OLD */
    uint64_t blackout_sum, blackout_min, blackout_max;
    int64_t lost_total;
    uint32_t dma_checks, dma_bad;

    /* --kvm: the helper that raises interrupts during the exec, and the guest's own
     * counts when the old image stopped it (the new image compares against those) */
    int32_t helper_pid;
    uint32_t helper_stop, helper_raised, window_raised;
    uint64_t helper_t_first, helper_t_last, helper_total;
    uint32_t helper_v[MVG_MSIX_VECTORS], window_v[MVG_MSIX_VECTORS]; /* e1000e, per vector */
    uint64_t helper_total_v[MVG_MSIX_VECTORS];
    uint64_t t_stop, t_saved, gap_before;
    mvg_mbox g;
    uint64_t pause_sum, pause_min, pause_max, stopped_sum, lib_sum;

    /* a transfer (--transfer-to, "upgrade --transfer"): the old process's pid, and
     * the helper's word that it stopped (the new process cannot waitpid() it) */
    int32_t old_pid;     /* 0: the upgrade in flight is an exec */
    uint32_t helper_done;
    uint32_t transfers;  /* committed transfers since the cold start */
} vmm_state;

G_STATIC_ASSERT(sizeof(vmm_state) <= STATE_SIZE);

/* ------------------------------------------------------------------ the VMM */

typedef enum { DEV_EDU, DEV_E1000E } device_kind;

typedef struct vcpu_save vcpu_save; /* --kvm: the vCPU state memfd, below */

/* Where the device work is. HANDOVER and VERIFY frame an upgrade. */
typedef enum {
    WORK_IDLE,
    WORK_TO_DEVICE,   /* edu: DMA guest RAM -> device in flight */
    WORK_FROM_DEVICE, /* edu: DMA device -> guest RAM in flight */
    WORK_HANDOVER,    /* edu: the pattern for the next image is on its way to the device */
    WORK_VERIFY,      /* after a restart: checking what the old image left */
} work_phase;

/* Evidence that the device was neither reset nor closed, from the host kernel's
 * view: sysfs config is the physical config space (VFIO's config region
 * virtualizes MSI enable), sysfs enable counts the kernel's users. */
typedef struct {
    uint16_t cmd, irq_ctrl;
    bool bus_master, irq_enabled, sysfs_enabled;
} liveness;

typedef struct {
    /* command line */
    const char *bdf;
    vfiocpr_backend backend; /* --backend; type1 keeps the 0.1 calls */
    bool want_kvm;
    const char *control_path;
    unsigned upgrades;
    bool self_test;
    const char *upgrade_to;   /* NULL: this binary */
    const char *wrapper;      /* NULL: exec the target directly */
    char **wrapper_args;      /* NULL-terminated, may be NULL */
    bool forbidden_ioctl;
    const char *incoming;       /* --incoming SOCKET: this process is a transfer's new side */
    const char *incoming_fault; /* --incoming-fault POINT: a test, SIGKILL (or hang) there */
    const char *transfer_to;    /* --transfer-to SOCKET: automatic upgrades are transfers */
    char **argv; /* handed to the next image as is (without --incoming) */
    char *fallback_reason; /* VFIOCPR_EXEC_FALLBACK: the wrapper started us as OLD */

    /* libvfiocpr */
    vfiocpr *ctx;
    vfiocpr_container *container;
    vfiocpr_device *dev;
    bool restart;

    /* the device */
    device_kind kind;
    uint16_t vendor, device;
    int group;
    volatile uint32_t *bar;
    uint64_t bar_size;
    uint64_t cfg_offset;
    vfiocpr_irq_index irq_index;
    unsigned n_vectors;
    int irq_fd[MAX_VECTORS];

    /* guest RAM and the VMM's state */
    int ram_fd, state_fd;
    uint8_t *ram;
    uint8_t *vm_ram; /* what the VM's memory slot maps: ram, but for a negative control */
    vmm_state *st;

    /* --kvm: the VM and its vCPU */
    bool intx;             /* --intx: edu's INTx through an IOAPIC pin instead of MSI */
    const char *negative;  /* --negative NAME: a control that must be caught */
    const char *guest_image;
    int kvm_fd, vm_fd, vcpu_fd, old_vm_fd, vcpu_state_fd;
    struct kvm_run *run;
    vcpu_save *vs;
    uint32_t tsc_khz;
    int kvm_pending; /* vectors with interrupts waiting when the irqfds were attached */
    vfiocpr_msi_route *routes_late; /* negative irqfd-before-routes */
    unsigned n_routes_late;
    uint64_t t_vm, t_attach0, t_attach1, t_run;
    uint64_t kvm_cycles_base; /* the guest's cycle count when this stretch of work began */
    uint64_t progress_resumed; /* the guest's progress at its first heartbeat in this image */
    uint64_t lib_us; /* this image's start-up time inside libvfiocpr calls */

    /* main loop */
    int timer_fd, signal_fd, listen_fd, client_fd;
    bool client_waiting; /* the client asked for an upgrade: it gets the result */
    char client_buf[256];
    size_t client_len;
    bool quit;
    int exit_status;

    /* device work */
    work_phase phase;
    uint64_t phase_since;
    uint64_t image_start; /* when this image's start-up finished */
    unsigned cycles;      /* edu round trips / e1000e rounds over all vectors in this image */
    unsigned shots;
    uint32_t expect_seed;

    /* upgrade */
    bool upgrade_pending;
    bool prepared_ahead; /* vfiocpr_state_prepare() done since the last change */
    bool upgrade_direct; /* --self-test: no wrapper */
    char *upgrade_path;
    char *upgrade_sock; /* the upgrade pending is a transfer to this socket */

    /* --incoming: the connection the old process came through, kept until the commit */
    int xfer_sock;
    uint64_t t_accept;

    /* this image's restart, measured */
    uint64_t t_main, t_new, t_ctx, t_devices, t_finish;
    bool handover_waiting;
    unsigned inherited_fds;
    liveness live_after;

    /* --self-test */
    bool rollback_seen, rollback_ok;
} vmm;

/* ------------------------------------------------------------------ helpers */

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t); /* the same clock on both sides of exec */
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* A libvfiocpr call, timed: the library's share of an upgrade's blackout. */
#define LIB(v, call)                                                                       \
    __extension__({                                                                        \
        uint64_t lib_t0_ = now_us();                                                        \
        __typeof__(call) lib_r_ = (call);                                                   \
        (v)->lib_us += now_us() - lib_t0_;                                                  \
        lib_r_;                                                                             \
    })

static void die(const char *fmt, ...) G_GNUC_PRINTF(1, 2) __attribute__((noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "minivmm: error: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static void say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
    va_list ap;
    printf("minivmm: ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

static uint32_t rd32(vmm *v, uint32_t off)
{
    return v->bar[off / 4];
}

static void wr32(vmm *v, uint32_t off, uint32_t val)
{
    v->bar[off / 4] = val;
}

static const char *device_label(const vmm *v)
{
    return v->kind == DEV_EDU ? "edu" : "e1000e";
}

static const char *irq_label(const vmm *v)
{
    return v->irq_index == VFIOCPR_IRQ_MSI ? "MSI" : v->irq_index == VFIOCPR_IRQ_INTX ? "INTx"
                                                                                    : "MSI-X";
}

/* This binary's absolute path, for whoever must exec it again (the wrapper's
 * fallback): /proc/self/exe itself would name the wrapper by then. A binary replaced
 * on disk since it started reads "PATH (deleted)": that PATH is the replacement. */
static char *self_path(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);

    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    if (g_str_has_suffix(buf, " (deleted)")) {
        buf[n - strlen(" (deleted)")] = '\0';
        say("warning: this binary was replaced on disk; %s is no longer the one running", buf);
    }
    return g_strdup(buf);
}

/* "Seccomp: 2" and "Seccomp_filters: N" of /proc/self/status: evidence of the
 * wrapper's filter in the image that runs under it. */
static const char *seccomp_text(char *buf, size_t len)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[128];
    int mode = -1, filters = -1;

    if (f) {
        while (fgets(line, sizeof(line), f)) {
            if (g_str_has_prefix(line, "Seccomp:"))
                mode = atoi(line + strlen("Seccomp:"));
            else if (g_str_has_prefix(line, "Seccomp_filters:"))
                filters = atoi(line + strlen("Seccomp_filters:"));
        }
        fclose(f);
    }
    if (mode == 2 && filters >= 0)
        snprintf(buf, len, "filter mode, %d filter(s)", filters);
    else
        snprintf(buf, len, "%s", mode == 0 ? "none" : mode == 1 ? "strict mode" :
                                 mode == 2 ? "filter mode" : "unknown");
    return buf;
}

/* ------------------------------------------------------------------ the fd registry */

/*
 * The pattern every preserved fd follows, the same on a cold start and a restart:
 * ask the registry first (a restart hands back the inherited fd and claims it),
 * otherwise create the object and register it so that the next exec keeps it.
 */
static int claim_memfd(vmm *v, const char *name, size_t size)
{
    g_autoptr(GError) err = NULL;
    struct stat sb;
    int fd = vfiocpr_fd_find(v->ctx, name, 0, VFIOCPR_FD_MEMFD, &err);

    if (fd >= 0) {
        if (fstat(fd, &sb) < 0 || (size_t)sb.st_size != size)
            die("inherited memfd '%s' has the wrong size", name);
        return fd;
    }
    if (fd != -ENOENT)
        die("%s", err->message);
    fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        die("memfd '%s': %s", name, g_strerror(errno));
    /* It is mapped (and DMA-mapped) for its whole life: it must never shrink. */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
        die("memfd '%s': sealing: %s", name, g_strerror(errno));
    if (vfiocpr_fd_save(v->ctx, name, 0, fd, VFIOCPR_FD_MEMFD, &err) < 0)
        die("%s", err->message);
    return fd;
}

static void *map_shared(int fd, size_t size, const char *what)
{
    /* a new image maps everything at new addresses: DMA follows via MAP_DMA(VADDR) */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("mmap %s: %s", what, g_strerror(errno));
    return p;
}

/* The VMM's state: fresh on a cold start, inherited as is on a restart. */
static void state_start(vmm *v)
{
    v->state_fd = claim_memfd(v, "minivmm-state", STATE_SIZE);
    v->st = map_shared(v->state_fd, STATE_SIZE, "VMM state");
    if (!v->restart) {
        memset(v->st, 0, STATE_SIZE);
        *v->st = (vmm_state){ .magic = STATE_MAGIC, .version = STATE_VERSION,
                              .size = sizeof(vmm_state), .generation = 1,
                              .upgrades_wanted = v->upgrades, .blackout_min = UINT64_MAX,
                              .pause_min = UINT64_MAX };
        return;
    }
    if (v->st->magic != STATE_MAGIC || v->st->version != STATE_VERSION ||
        v->st->size != sizeof(vmm_state))
        die("the previous image wrote VMM state this binary does not understand "
            "(magic 0x%08x, version %u, size %u)", v->st->magic, v->st->version, v->st->size);
    /* nothing is written into it before vfiocpr_finish(): see vmm_start() */
}

/* ------------------------------------------------------------------ the device */

static uint16_t cfg_read16(vmm *v, unsigned off)
{
    uint16_t val = 0;
    if (pread(vfiocpr_device_fd(v->dev), &val, 2, (off_t)(v->cfg_offset + off)) != 2)
        die("%s: config read at 0x%x: %s", v->bdf, off, g_strerror(errno));
    return val;
}

static void cfg_write16(vmm *v, unsigned off, uint16_t val)
{
    if (pwrite(vfiocpr_device_fd(v->dev), &val, 2, (off_t)(v->cfg_offset + off)) != 2)
        die("%s: config write at 0x%x: %s", v->bdf, off, g_strerror(errno));
}

/* edu has no reset: a cold start can find a DMA of the previous VMM still running
 * (edu ignores DMA register writes until it is done), so wait for it, then drop
 * stale interrupt status. Also what a VMM does before it exits. */
static void edu_wait_idle(vmm *v)
{
    for (int i = 0; i < DMA_TIMEOUT_MS && (rd32(v, EDU_DMA_CMD) & EDU_DMA_START); i++)
        usleep(1000);
    wr32(v, EDU_IRQ_ACK, rd32(v, EDU_IRQ_STATUS));
}

/* Cold start only: every cause masked, RXQ0 auto-cleared after its MSI-X message
 * and routed to vector 0, stale causes dropped (ICR is read-to-clear). The OTHER
 * cause stays masked: the link timer raises it. */
static void e1000e_init(vmm *v)
{
    wr32(v, E1000_IMC, 0xffffffffu);
    wr32(v, E1000_EIAC, E1000_CAUSE_RXQ0);
    wr32(v, E1000_IVAR, E1000_IVAR_VALID | 0);
    (void)rd32(v, E1000_ICR);
}

/*
 * Container, group, device, BAR. On a restart the library resolves each call to
 * what the previous image preserved: no SET_CONTAINER, no SET_IOMMU, no
 * GET_DEVICE_FD, no reset. What the VMM itself does to the device (bus master,
 * device registers) is a cold-start step: the device still has it.
 */
static bool negative(const vmm *v, const char *name); /* --negative NAME, below */

static void device_start(vmm *v)
{
    g_autoptr(GError) err = NULL;
    struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    void *bar;

    v->group = LIB(v, vfiocpr_device_group_id(v->bdf, &err));
    if (v->group < 0)
        die("%s", err->message);
    if (v->backend != VFIOCPR_BACKEND_TYPE1) {
        /* --backend iommufd|auto: the 0.2 calls, the device attached by name */
        if (LIB(v, vfiocpr_container_open_backend(v->ctx, "container0", v->backend,
                                                  &v->container, &err)) < 0 ||
            LIB(v, vfiocpr_device_attach(v->container, v->bdf, &v->dev, &err)) < 0)
            die("%s", err->message);
    } else if (LIB(v, vfiocpr_container_open(v->ctx, "container0", &v->container, &err)) < 0 ||
               LIB(v, vfiocpr_container_add_group(v->container, v->group, &err)) < 0 ||
               LIB(v, vfiocpr_device_open(v->container, v->group, v->bdf, &v->dev, &err)) < 0) {
        die("%s", err->message);
    }
    if (LIB(v, vfiocpr_device_map_region(v->dev, VFIO_PCI_BAR0_REGION_INDEX, &bar,
                                         &v->bar_size, &err)) < 0)
        die("%s", err->message);
    v->bar = bar;
    if (ioctl(vfiocpr_device_fd(v->dev), VFIO_DEVICE_GET_REGION_INFO, &cfg) < 0)
        die("%s: config region: %s", v->bdf, g_strerror(errno));
    v->cfg_offset = cfg.offset;

    v->vendor = cfg_read16(v, PCI_VENDOR_ID);
    v->device = cfg_read16(v, PCI_DEVICE_ID);
    if (v->vendor == 0x1234 && v->device == 0x11e8) {
        v->kind = DEV_EDU;
        v->irq_index = v->intx ? VFIOCPR_IRQ_INTX : VFIOCPR_IRQ_MSI;
        v->n_vectors = 1;
    } else if (v->vendor == 0x8086 && v->device == 0x10d3) {
        v->kind = DEV_E1000E;
        v->irq_index = VFIOCPR_IRQ_MSIX;
        v->n_vectors = 5;
    } else {
        die("%s is %04x:%04x; minivmm drives edu (1234:11e8) or e1000e (8086:10d3)", v->bdf,
            v->vendor, v->device);
    }
    if (v->want_kvm && v->kind != DEV_EDU && v->intx)
        die("--kvm --intx: edu only");

    if (negative(v, "bus-master-off") && !v->want_kvm) {
        /* what a reset or a last close leaves: bus mastering off */
        cfg_write16(v, PCI_COMMAND, cfg_read16(v, PCI_COMMAND) & ~PCI_COMMAND_MASTER);
        say("negative control: PCI_COMMAND bus master cleared by the new image");
    }
    if (!v->restart) {
        cfg_write16(v, PCI_COMMAND,
                    cfg_read16(v, PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
        if (v->kind == DEV_EDU)
            edu_wait_idle(v);
        else
            e1000e_init(v);
    }
}

/* Guest RAM is what the device DMAs to. The memfd and its offset are what make the
 * mapping preservable: the new image maps the same memfd elsewhere and the library
 * re-points the IOMMU mapping at the new address (MAP_DMA with VADDR). */
static void ram_start(vmm *v)
{
    g_autoptr(GError) err = NULL;

    v->ram_fd = claim_memfd(v, "guest-ram", RAM_SIZE);
    v->ram = map_shared(v->ram_fd, RAM_SIZE, "guest RAM");
    v->vm_ram = v->ram;
    if (LIB(v, vfiocpr_dma_map(v->container, RAM_IOVA, RAM_SIZE, v->ram, v->ram_fd, 0,
                               VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE, &err)) < 0)
        die("%s", err->message);
    if (negative(v, "ram-copy") && !v->want_kvm) {
        /* the VMM looks at a copy: the device's DMA lands where it does not look */
        void *copy = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          -1, 0);
        if (copy == MAP_FAILED)
            die("negative ram-copy: %s", g_strerror(errno));
        memcpy(copy, v->ram, RAM_SIZE);
        v->ram = copy;
        say("negative control: the new image reads guest RAM from a copy");
    }
}

/* Cold start: VFIO_DEVICE_SET_IRQS with library-made eventfds. Restart: the
 * preserved eventfds, no ioctl at all; the kernel kept signalling them during
 * the exec, so whatever arrived meanwhile is in their counters. */
static void irq_start(vmm *v)
{
    g_autoptr(GError) err = NULL;

    if (LIB(v, vfiocpr_irq_enable(v->dev, v->irq_index, 0, v->n_vectors, NULL, v->irq_fd,
                                  &err)) < 0)
        die("%s", err->message);
    /* INTx is level-triggered: the device stays masked after each interrupt until
     * this eventfd is signalled (by KVM, on the guest's EOI, as the resample fd) */
    if (v->irq_index == VFIOCPR_IRQ_INTX && LIB(v, vfiocpr_irq_intx_unmask(v->dev, -1, &err)) < 0)
        die("%s", err->message);
    /* Look (without consuming) for the interrupt the old image fired and left
     * unread, before anything, KVM included, can read it. Under --kvm the helper
     * is still raising: kvm_start() looks once it has stopped. */
    if (negative(v, "irq-drain") && !v->want_kvm) {
        /* the new image consumes what waits in the eventfd, and does not count it */
        uint64_t n = 0;
        if (read(v->irq_fd[v->st->handover_vector], &n, sizeof(n)) < 0)
            n = 0;
        say("negative control: %" PRIu64 " interrupt(s) read from the eventfd and dropped", n);
    }
    if (v->restart && !v->want_kvm)
        v->handover_waiting =
            vfiocpr_irq_pending(v->dev, v->irq_index, v->st->handover_vector) == 1;
}

/*
 * --kvm: a real VM. minivmm makes a VM with an in-kernel irqchip whose RAM is the
 * DMA-mapped guest RAM memfd (guest physical = IOVA, as a VMM maps it), puts the
 * device's BAR0 into the guest physical address space (a memory slot over the BAR
 * mmap) and runs one vCPU with the program of minivmm-guest.c: the device's driver.
 * The device's interrupt goes to the guest through a KVM MSI route + irqfd (or, with
 * --intx, an IOAPIC pin with the INTx unmask eventfd as the resample fd); minivmm
 * itself never touches the device or its eventfds while the guest runs.
 *
 * A VM belongs to the process that made it: every image makes a new one. On a cold
 * start the VMM loads the program and sets up protected mode; on a restart it puts
 * back what the old image saved (vCPU registers, segments and control registers,
 * FPU, the TSC offset, LAPIC, PICs and IOAPIC, pending events) into the new VM, and only then
 * lets libvfiocpr attach the irqfds: an interrupt pending since the exec is injected
 * at attach, into the LAPIC, and restoring the LAPIC afterwards would wipe it.
 * That state crosses exec in a memfd of the VMM's own ("minivmm-vcpu"), registered
 * with vfiocpr_fd_save() like guest RAM.
 */
#define VCPU_STATE_SIZE 16384u
#define VCPU_MAGIC 0x4d564350u /* "MVCP" */
#define VCPU_VERSION 1u
#define HELPER_MAX 30          /* distinct edu status bits: 1..7 and 9..31 */
#define HELPER_GAP_US 5000     /* between two raises of the helper */
#define GUEST_WAIT_MS 500      /* the guest's patience for its own interrupt */
#define INTX_PIN 20            /* an IOAPIC-only pin (16-23): no 8259 behind it */
#define IOAPIC_PINS 24

struct vcpu_save {
    uint32_t magic, version, size;
    uint32_t tsc_khz;
    uint64_t t_saved;    /* CLOCK_MONOTONIC, us */
    uint64_t tsc_offset; /* guest TSC - host TSC */
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_fpu fpu;
    struct kvm_lapic_state lapic;
    struct kvm_irqchip pic_master, pic_slave, ioapic;
    struct kvm_vcpu_events events;
    struct kvm_mp_state mp;
};

G_STATIC_ASSERT(sizeof(vcpu_save) <= VCPU_STATE_SIZE);

/* The negative controls act in a restarted image only (the old one's, keep-old-irqfds,
 * at its handover): the cold start is clean, the upgrade is what breaks. */
static bool negative(const vmm *v, const char *name)
{
    return v->negative && v->restart && strcmp(v->negative, name) == 0;
}

static bool using_kvm(const vmm *v)
{
    return v->vm_fd >= 0;
}

static void kvm_ioctl(int fd, unsigned long req, void *arg, const char *what)
{
    if (ioctl(fd, req, arg) < 0)
        die("KVM: %s: %s", what, g_strerror(errno));
}

static mvg_mbox *mbox(const vmm *v)
{
    return (mvg_mbox *)(void *)(v->vm_ram + (MVG_MBOX - RAM_IOVA));
}

/* The VMM's routing table: the 24 IOAPIC pins as KVM_CREATE_IRQCHIP made them, plus
 * libvfiocpr's MSI routes. One KVM_SET_GSI_ROUTING for both. The negative controls
 * bend it: MSI routes one GSI off their irqfds, or none until after the attach. */
static int kvm_commit_routes(void *user, const vfiocpr_msi_route *routes, unsigned n,
                             GError **error)
{
    vmm *v = user;
    size_t sz = sizeof(struct kvm_irq_routing) +
                (IOAPIC_PINS + n) * sizeof(struct kvm_irq_routing_entry);
    g_autofree struct kvm_irq_routing *rt = g_malloc0(sz);
    unsigned e = 0;

    if (negative(v, "irqfd-before-routes") && !v->routes_late) {
        v->routes_late = g_memdup2(routes, n * sizeof(*routes));
        v->n_routes_late = n;
        return 0;
    }
    for (unsigned pin = 0; pin < IOAPIC_PINS; pin++, e++) {
        rt->entries[e].gsi = pin;
        rt->entries[e].type = KVM_IRQ_ROUTING_IRQCHIP;
        rt->entries[e].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
        rt->entries[e].u.irqchip.pin = pin;
    }
    for (unsigned i = 0; i < n; i++, e++) {
        bool off = negative(v, "wrong-gsi");
        rt->entries[e].gsi = routes[i].gsi + (off ? 1 : 0);
        rt->entries[e].type = KVM_IRQ_ROUTING_MSI;
        rt->entries[e].u.msi.address_lo = (uint32_t)routes[i].address;
        rt->entries[e].u.msi.address_hi = (uint32_t)(routes[i].address >> 32);
        rt->entries[e].u.msi.data = routes[i].data;
    }
    rt->nr = e;
    if (ioctl(v->vm_fd, KVM_SET_GSI_ROUTING, rt) < 0) {
        int r = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(r),
                    "KVM_SET_GSI_ROUTING (%u entries): %s", e, g_strerror(r));
        return -r;
    }
    return 0;
}

/* Cold start: the program at MVG_CODE, a flat GDT, an IDT, 32-bit protected mode. */
static void kvm_cold_boot(vmm *v)
{
    g_autofree char *image = NULL;
    gsize len = 0;
    g_autoptr(GError) err = NULL;
    mvg_header h;
    uint64_t *gdt = (uint64_t *)(void *)(v->vm_ram + (MVG_GDT - RAM_IOVA));
    uint64_t *idt = (uint64_t *)(void *)(v->vm_ram + (MVG_IDT - RAM_IOVA));
    mvg_mbox *mb = mbox(v);
    struct kvm_sregs sregs;
    struct kvm_regs regs = { 0 };
    struct kvm_segment code = { .base = 0, .limit = 0xffffffff, .selector = MVG_SEL_CODE,
                                .type = 0xb, .present = 1, .dpl = 0, .db = 1, .s = 1,
                                .l = 0, .g = 1 };
    struct kvm_segment data = code;

    if (!g_file_get_contents(v->guest_image, &image, &len, &err))
        die("the guest program: %s", err->message);
    if (len < sizeof(h) || len > MVG_CODE_MAX)
        die("the guest program %s: %zu bytes", v->guest_image, (size_t)len);
    memcpy(&h, image, sizeof(h));
    if (h.magic != MVG_HEADER_MAGIC)
        die("%s is not a minivmm guest program (magic 0x%08x)", v->guest_image, h.magic);
    memset(v->vm_ram + (MVG_GDT - RAM_IOVA), 0, MVG_CODE + MVG_CODE_MAX - MVG_GDT);
    memcpy(v->vm_ram + (MVG_CODE - RAM_IOVA), image, len);

    gdt[0] = 0;
    gdt[MVG_SEL_CODE / 8] = 0x00cf9a000000ffffull; /* 4 GiB, 32-bit, execute/read */
    gdt[MVG_SEL_DATA / 8] = 0x00cf92000000ffffull; /* 4 GiB, read/write */
    for (unsigned vec = 0; vec < 256; vec++) {
        uint32_t off = vec < 32 ? h.fault_handler
                     : vec == MVG_VEC_MSI || vec == MVG_VEC_INTX ? h.irq_handler
                     : vec >= MVG_VEC_MSIX0 && vec < MVG_VEC_MSIX0 + MVG_MSIX_VECTORS
                         ? h.msix_handler[vec - MVG_VEC_MSIX0]
                         : h.spurious_handler;
        /* 32-bit interrupt gate, present, DPL 0 */
        idt[vec] = (uint64_t)(off & 0xffff0000u) << 32 | 0x8e00ull << 32 |
                   (uint64_t)MVG_SEL_CODE << 16 | (off & 0xffffu);
    }
    mb->mode = v->kind == DEV_E1000E ? MVG_MODE_MSIX : v->intx ? MVG_MODE_INTX : MVG_MODE_MSI;
    mb->intx_pin = INTX_PIN;
    mb->dma_len = XFER;
    mb->heartbeat_cycles = v->tsc_khz;                    /* 1 ms */
    mb->wait_cycles = (uint64_t)v->tsc_khz * GUEST_WAIT_MS;

    kvm_ioctl(v->vcpu_fd, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
    data.type = 0x3;
    data.selector = MVG_SEL_DATA;
    sregs.cs = code;
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.gdt.base = MVG_GDT;
    sregs.gdt.limit = 3 * 8 - 1;
    sregs.idt.base = MVG_IDT;
    sregs.idt.limit = 256 * 8 - 1;
    sregs.cr0 = 0x11; /* PE, ET: protected mode, no paging */
    kvm_ioctl(v->vcpu_fd, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
    regs.rip = h.entry;
    regs.rflags = 0x2;
    regs.rsp = MVG_STACK_TOP;
    kvm_ioctl(v->vcpu_fd, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

/*
 * The guest's TSC is the host's plus an offset: the same offset in the new vCPU keeps
 * the guest's clock running through the upgrade, so the guest sees the pause as it
 * was. Not through KVM_SET_MSRS(IA32_TSC): KVM takes a host write within a second of
 * what it expects (the vCPU was created a moment ago with TSC 0) for an attempt to
 * synchronize vCPUs and keeps its own value (measured: the guest's TSC went back).
 */
static uint64_t kvm_tsc_offset(vmm *v, uint64_t set, bool write)
{
    uint64_t off = set;
    struct kvm_device_attr a = { .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET,
                                 .addr = (uintptr_t)&off };

    kvm_ioctl(v->vcpu_fd, write ? KVM_SET_DEVICE_ATTR : KVM_GET_DEVICE_ATTR, &a,
              write ? "KVM_SET_DEVICE_ATTR(TSC offset)" : "KVM_GET_DEVICE_ATTR(TSC offset)");
    return off;
}

static void kvm_get_irqchip(vmm *v, struct kvm_irqchip *c, uint32_t id)
{
    c->chip_id = id;
    kvm_ioctl(v->vm_fd, KVM_GET_IRQCHIP, c, "KVM_GET_IRQCHIP");
}

/* The vCPU is stopped (out of KVM_RUN, the last OUT completed): everything the new
 * VM needs to carry on, into the vCPU memfd. */
static void kvm_save(vmm *v)
{
    vcpu_save *s = v->vs;
    memset(s, 0, sizeof(*s));
    s->magic = VCPU_MAGIC;
    s->version = VCPU_VERSION;
    s->size = sizeof(*s);
    s->tsc_khz = v->tsc_khz;
    kvm_ioctl(v->vcpu_fd, KVM_GET_REGS, &s->regs, "KVM_GET_REGS");
    kvm_ioctl(v->vcpu_fd, KVM_GET_SREGS, &s->sregs, "KVM_GET_SREGS");
    kvm_ioctl(v->vcpu_fd, KVM_GET_FPU, &s->fpu, "KVM_GET_FPU");
    kvm_ioctl(v->vcpu_fd, KVM_GET_LAPIC, &s->lapic, "KVM_GET_LAPIC");
    kvm_ioctl(v->vcpu_fd, KVM_GET_VCPU_EVENTS, &s->events, "KVM_GET_VCPU_EVENTS");
    kvm_ioctl(v->vcpu_fd, KVM_GET_MP_STATE, &s->mp, "KVM_GET_MP_STATE");
    kvm_get_irqchip(v, &s->pic_master, KVM_IRQCHIP_PIC_MASTER);
    kvm_get_irqchip(v, &s->pic_slave, KVM_IRQCHIP_PIC_SLAVE);
    kvm_get_irqchip(v, &s->ioapic, KVM_IRQCHIP_IOAPIC);
    s->tsc_offset = kvm_tsc_offset(v, 0, false);
    s->t_saved = now_us();
}

static void kvm_restore(vmm *v)
{
    const vcpu_save *s = v->vs;
    struct kvm_irqchip chip;

    if (s->magic != VCPU_MAGIC || s->version != VCPU_VERSION || s->size != sizeof(*s))
        die("the previous image saved vCPU state this binary does not understand "
            "(magic 0x%08x, version %u, size %u)", s->magic, s->version, s->size);
    chip = s->pic_master;
    kvm_ioctl(v->vm_fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP(PIC master)");
    chip = s->pic_slave;
    kvm_ioctl(v->vm_fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP(PIC slave)");
    chip = s->ioapic;
    kvm_ioctl(v->vm_fd, KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP(IOAPIC)");
    /* sregs first: they carry the APIC base the LAPIC state is checked against */
    kvm_ioctl(v->vcpu_fd, KVM_SET_SREGS, (void *)&s->sregs, "KVM_SET_SREGS");
    kvm_ioctl(v->vcpu_fd, KVM_SET_REGS, (void *)&s->regs, "KVM_SET_REGS");
    kvm_ioctl(v->vcpu_fd, KVM_SET_FPU, (void *)&s->fpu, "KVM_SET_FPU");
    kvm_tsc_offset(v, s->tsc_offset, true);
    kvm_ioctl(v->vcpu_fd, KVM_SET_LAPIC, (void *)&s->lapic, "KVM_SET_LAPIC");
    kvm_ioctl(v->vcpu_fd, KVM_SET_VCPU_EVENTS, (void *)&s->events, "KVM_SET_VCPU_EVENTS");
    kvm_ioctl(v->vcpu_fd, KVM_SET_MP_STATE, (void *)&s->mp, "KVM_SET_MP_STATE");
}

/* The helper keeps the device raising interrupts while no VM listens: from the old
 * image's last guest instruction until the new image has its VM (then it is told
 * to stop and reaped, before the irqfds are attached). Each raise sets a different
 * status bit, so the guest can count them although KVM injects whatever waits in an
 * eventfd as one interrupt. It is a fork: the BAR0 mapping and the VMM state are
 * shared with it; it closes every fd at once (the old VM must die with the exec). */
static void helper_start(vmm *v)
{
    vmm_state *st = v->st;
    volatile uint32_t *bar = v->bar;
    pid_t pid;

    st->helper_stop = 0;
    st->helper_done = 0;
    st->helper_raised = 0;
    memset(st->helper_v, 0, sizeof(st->helper_v));
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0)
        die("fork: %s", g_strerror(errno));
    if (pid == 0) {
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        /* e1000e has no status bit per shot: one shot per vector, or KVM's merging
         * of what waits in an eventfd would hide a count */
        for (unsigned n = 0; v->kind == DEV_E1000E && n < v->n_vectors &&
                             !__atomic_load_n(&st->helper_stop, __ATOMIC_ACQUIRE); n++) {
            wr32(v, E1000_IVAR, E1000_IVAR_VALID | n);
            st->helper_v[n]++;
            __atomic_add_fetch(&st->helper_raised, 1, __ATOMIC_RELEASE);
            if (n == 0)
                st->helper_t_first = now_us();
            st->helper_t_last = now_us();
            wr32(v, E1000_IMS, E1000_CAUSE_RXQ0);
            wr32(v, E1000_ICS, E1000_CAUSE_RXQ0);
            usleep(2 * HELPER_GAP_US);
        }
        for (unsigned k = 0; v->kind == DEV_EDU && k < HELPER_MAX &&
                             !__atomic_load_n(&st->helper_stop, __ATOMIC_ACQUIRE); k++) {
            uint32_t bit = k < 7 ? 1u << (k + 1) : 1u << (k + 2);
            __atomic_add_fetch(&st->helper_raised, 1, __ATOMIC_RELEASE);
            if (k == 0)
                st->helper_t_first = now_us();
            st->helper_t_last = now_us();
            bar[EDU_IRQ_RAISE / 4] = bit;
            usleep(HELPER_GAP_US);
        }
        __atomic_store_n(&st->helper_done, 1, __ATOMIC_RELEASE);
        _exit(0);
    }
    st->helper_pid = pid;
}

static void helper_stop(vmm *v)
{
    vmm_state *st = v->st;
    int status;

    if (st->helper_pid <= 0)
        return;
    __atomic_store_n(&st->helper_stop, 1, __ATOMIC_RELEASE);
    if (st->old_pid && st->old_pid != getpid()) {
        /* A transfer's new process: the helper is the old process's child, which
         * reaps it (or init does). Its pid stays recorded: if this process dies
         * before the commit, the old one still has to reap it. */
        uint64_t until = now_us() + 5000000u;
        while (!__atomic_load_n(&st->helper_done, __ATOMIC_ACQUIRE))
            if (now_us() > until)
                die("the interrupt helper (pid %d) did not stop within 5 s",
                    (int)st->helper_pid);
            else
                usleep(1000);
    } else {
        if (waitpid(st->helper_pid, &status, 0) != st->helper_pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0)
            die("the interrupt helper (pid %d) did not finish cleanly", (int)st->helper_pid);
        st->helper_pid = 0;
    }
    st->window_raised = st->helper_raised;
    memcpy(st->window_v, st->helper_v, sizeof(st->window_v));
}

/* KVM_CAP_USER_MEMORY slots: 0 guest RAM, 1 BAR0 of the device. */
static void kvm_slot(vmm *v, uint32_t slot, uint64_t gpa, uint64_t size, void *host)
{
    struct kvm_userspace_memory_region r = { .slot = slot, .guest_phys_addr = gpa,
                                             .memory_size = size,
                                             .userspace_addr = (uintptr_t)host };
    kvm_ioctl(v->vm_fd, KVM_SET_USER_MEMORY_REGION, &r, "KVM_SET_USER_MEMORY_REGION");
}

static void kvm_start(vmm *v)
{
    g_autoptr(GError) err = NULL;
    g_autofree struct kvm_cpuid2 *cpuid = NULL;
    int mmap_size, r;

    v->kvm_fd = v->vm_fd = v->vcpu_fd = -1;
    if (!v->want_kvm)
        return;
    /* The old image's VM fd, kept open across the exec by the negative control
     * keep-old-irqfds: claimed and held, so that its irqfd stays alive. */
    v->old_vm_fd = vfiocpr_fd_find(v->ctx, "old-vm", 0, VFIOCPR_FD_KVM, NULL);
    if (v->old_vm_fd >= 0)
        vfiocpr_fd_forget(v->ctx, "old-vm", 0);

    v->vcpu_state_fd = claim_memfd(v, "minivmm-vcpu", VCPU_STATE_SIZE);
    v->vs = map_shared(v->vcpu_state_fd, VCPU_STATE_SIZE, "vCPU state");
    /* --kvm asks for a VM: without one there is nothing to test, so it is an error */
    v->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (v->kvm_fd < 0)
        die("--kvm: /dev/kvm: %s", g_strerror(errno));
    if (ioctl(v->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
        die("--kvm: KVM API version is not %d", KVM_API_VERSION);
    v->vm_fd = ioctl(v->kvm_fd, KVM_CREATE_VM, 0);
    if (v->vm_fd < 0)
        die("--kvm: KVM_CREATE_VM: %s", g_strerror(errno));
    kvm_ioctl(v->vm_fd, KVM_CREATE_IRQCHIP, NULL, "KVM_CREATE_IRQCHIP");
    if (negative(v, "ram-copy")) {
        /* guest RAM from a copy, not the DMA-mapped memfd: the guest runs on, but the
         * device's DMA goes where the guest does not look */
        int fd = memfd_create("guest-ram-copy", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, RAM_SIZE) < 0)
            die("negative ram-copy: %s", g_strerror(errno));
        v->vm_ram = map_shared(fd, RAM_SIZE, "guest RAM copy");
        memcpy(v->vm_ram, v->ram, RAM_SIZE);
        say("negative control: the new VM's RAM is a copy of the DMA-mapped memfd");
    }
    kvm_slot(v, 0, RAM_IOVA, RAM_SIZE, v->vm_ram);
    kvm_slot(v, 1, MVG_BAR0, v->bar_size, (void *)v->bar);
    v->vcpu_fd = ioctl(v->vm_fd, KVM_CREATE_VCPU, 0);
    if (v->vcpu_fd < 0)
        die("--kvm: KVM_CREATE_VCPU: %s", g_strerror(errno));
    cpuid = g_malloc0(sizeof(*cpuid) + 128 * sizeof(cpuid->entries[0]));
    cpuid->nent = 128;
    kvm_ioctl(v->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid, "KVM_GET_SUPPORTED_CPUID");
    kvm_ioctl(v->vcpu_fd, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
    mmap_size = ioctl(v->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (mmap_size < (int)sizeof(struct kvm_run))
        die("--kvm: KVM_GET_VCPU_MMAP_SIZE: %s", g_strerror(errno));
    v->run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu_fd, 0);
    if (v->run == MAP_FAILED)
        die("--kvm: mmap of the vCPU: %s", g_strerror(errno));
    r = ioctl(v->vcpu_fd, KVM_GET_TSC_KHZ, 0);
    if (r <= 0)
        die("--kvm: KVM_GET_TSC_KHZ: %s", g_strerror(errno));
    v->tsc_khz = (uint32_t)r;

    /* cold-guest: the negative control of "the guest carries on where it was" */
    if (v->restart && !negative(v, "cold-guest"))
        kvm_restore(v);
    else
        kvm_cold_boot(v);
    v->t_vm = now_us();

    if (negative(v, "set-irqs-same")) {
        /* the rule broken as such, with the very eventfd, while the helper raises */
        struct { struct vfio_irq_set s; int32_t fd; } set = {
            .s = { .argsz = sizeof(set), .flags = VFIO_IRQ_SET_DATA_EVENTFD |
                   VFIO_IRQ_SET_ACTION_TRIGGER, .index = (uint32_t)v->irq_index,
                   .start = 0, .count = 1 },
            .fd = v->irq_fd[0] };
        if (ioctl(vfiocpr_device_fd(v->dev), VFIO_DEVICE_SET_IRQS, &set) < 0)
            die("negative set-irqs: VFIO_DEVICE_SET_IRQS: %s", g_strerror(errno));
        say("negative control: VFIO_DEVICE_SET_IRQS re-issued on the live %s index",
            irq_label(v));
    }
    if (v->restart) {
        helper_stop(v); /* every raise of the window now waits in the eventfd */
        v->handover_waiting = vfiocpr_irq_pending(v->dev, v->irq_index, 0) == 1;
    }

    /* What the guest's MSI capability would hold: its LAPIC (APIC ID 0) and the
     * vector of its handler, fixed delivery, edge. Recorded again on every start:
     * the library keeps it across exec and rebuilds the route from it. */
    v->t_attach0 = now_us();
    if (v->intx) {
        if (LIB(v, vfiocpr_irq_set_intx_gsi(v->dev, INTX_PIN + (negative(v, "wrong-gsi") ? 1 : 0),
                                            &err)) < 0)
            die("%s", err->message);
    } else {
        for (unsigned i = 0; i < v->n_vectors; i++)
            if (LIB(v, vfiocpr_irq_set_msi(v->dev, v->irq_index, i, MVG_LAPIC,
                                           v->kind == DEV_E1000E ? MVG_VEC_MSIX0 + i : MVG_VEC_MSI,
                                           false, &err)) < 0)
                die("%s", err->message);
    }
    if (negative(v, "set-irqs") && !v->intx) {
        /* A restart that runs the cold-start interrupt set-up: a new eventfd, SET_IRQS,
         * and its own route and irqfd. What the device raised during the exec waits
         * in the old eventfd, which no VM listens to any more. */
        vfiocpr_msi_route route = { .gsi = KVM_GSI_BASE, .address = MVG_LAPIC,
                                    .data = MVG_VEC_MSI };
        int fresh = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        struct { struct vfio_irq_set s; int32_t fd; } set = {
            .s = { .argsz = sizeof(set), .flags = VFIO_IRQ_SET_DATA_EVENTFD |
                   VFIO_IRQ_SET_ACTION_TRIGGER, .index = (uint32_t)v->irq_index,
                   .start = 0, .count = 1 },
            .fd = fresh };
        struct kvm_irqfd a = { .fd = (uint32_t)fresh, .gsi = KVM_GSI_BASE };
        if (fresh < 0 || ioctl(vfiocpr_device_fd(v->dev), VFIO_DEVICE_SET_IRQS, &set) < 0 ||
            kvm_commit_routes(v, &route, 1, &err) < 0 || ioctl(v->vm_fd, KVM_IRQFD, &a) < 0)
            die("negative set-irqs: %s", err ? err->message : g_strerror(errno));
        say("negative control: SET_IRQS re-issued with a new eventfd (fd %d), wired to the "
            "new VM by the VMM itself", fresh);
        v->kvm_pending = 0;
    } else {
        v->kvm_pending = LIB(v, vfiocpr_kvm_attach(v->ctx, v->vm_fd, KVM_GSI_BASE,
                                                   kvm_commit_routes, v, &err));
        if (v->kvm_pending < 0)
            die("%s", err->message);
    }
    v->t_attach1 = now_us();
    if (v->routes_late) {
        g_autoptr(GError) e2 = NULL;
        /* KVM injects what an irqfd finds pending at attach from a work item: let it
         * run against the missing routes, as the bug would, before they come (else the
         * control races with it and can miss) */
        g_usleep(200 * 1000);
        v->negative = NULL; /* this image's routes, for real now */
        if (kvm_commit_routes(v, v->routes_late, v->n_routes_late, &e2) < 0)
            die("%s", e2->message);
        say("negative control: the irqfds were attached before their routes existed");
    }
}

/* ------------------------------------------------------------------ control socket */

/* The listening socket is preserved too: a client connecting during the exec waits
 * in the backlog instead of being refused. */
static void control_start(vmm *v)
{
    g_autoptr(GError) err = NULL;
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    v->listen_fd = v->client_fd = -1;
    if (!v->control_path)
        return;
    fd = vfiocpr_fd_find(v->ctx, "control-listen", 0, VFIOCPR_FD_OTHER, &err);
    if (fd == -ENOENT) {
        g_clear_error(&err);
        if (strlen(v->control_path) >= sizeof(addr.sun_path))
            die("control socket path too long: %s", v->control_path);
        strcpy(addr.sun_path, v->control_path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        unlink(v->control_path); /* a stale socket of an earlier run */
        if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 8) < 0)
            die("control socket %s: %s", v->control_path, g_strerror(errno));
        if (vfiocpr_fd_save(v->ctx, "control-listen", 0, fd, VFIOCPR_FD_OTHER, &err) < 0)
            die("%s", err->message);
    } else if (fd < 0) {
        die("%s", err->message);
    }
    v->listen_fd = fd;

    /* The client that asked for the upgrade that started this image: it is owed an
     * answer. It crossed the exec for that only, so it leaves the registry now. */
    fd = vfiocpr_fd_find(v->ctx, "control-client", 0, VFIOCPR_FD_OTHER, NULL);
    if (fd >= 0) {
        vfiocpr_fd_forget(v->ctx, "control-client", 0);
        v->client_fd = fd;
        v->client_waiting = true;
    }
}

static void reply(int fd, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void reply(int fd, const char *fmt, ...)
{
    g_autofree char *s = NULL;
    va_list ap;

    va_start(ap, fmt);
    s = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    /* MSG_NOSIGNAL: a client that went away must not kill the VMM with SIGPIPE */
    if (send(fd, s, strlen(s), MSG_NOSIGNAL) < 0)
        return;
}

static void client_close(vmm *v)
{
    /* shutdown, not only close: after a failed transfer the new process may still
     * hold a copy of this connection, and the client must see the end of the answer */
    if (v->client_fd >= 0) {
        shutdown(v->client_fd, SHUT_RDWR);
        close(v->client_fd);
    }
    v->client_fd = -1;
    v->client_waiting = false;
    v->client_len = 0;
}

/* ------------------------------------------------------------------ transfer */

/* --incoming SOCKET: the new side listens and takes exactly one connection; the
 * path goes at once, so a second old process cannot connect to it. */
static int incoming_accept(vmm *v)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct pollfd p = { .events = POLLIN };
    int lfd, fd;

    if (strlen(v->incoming) >= sizeof(addr.sun_path))
        die("--incoming: socket path too long: %s", v->incoming);
    strcpy(addr.sun_path, v->incoming);
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    unlink(v->incoming); /* a stale socket of an earlier run */
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 1) < 0)
        die("--incoming %s: %s", v->incoming, g_strerror(errno));
    say("pid %d waits for a transfer on %s", (int)getpid(), v->incoming);
    p.fd = lfd;
    if (poll(&p, 1, XFER_ACCEPT_MS) != 1)
        die("--incoming %s: no old process connected within %d s", v->incoming,
            XFER_ACCEPT_MS / 1000);
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        die("--incoming %s: accept: %s", v->incoming, g_strerror(errno));
    close(lfd);
    unlink(v->incoming);
    return fd;
}

/* --incoming-fault POINT, for the tests of the old side's rollback: the new
 * process is SIGKILLed (nothing cleaned up, nothing said to the peer) right after
 * the connection is accepted, after vfiocpr_new_incoming() received and validated
 * everything, or after the devices are restored (the DMA vaddrs already re-pointed
 * here); "hang" stops at that last point for good, the old side's timeout ends it. */
static void incoming_fault(const vmm *v, const char *point)
{
    if (!v->incoming_fault || strcmp(v->incoming_fault, point) != 0)
        return;
    say("--incoming-fault %s: pid %d %s now", point, (int)getpid(),
        strcmp(point, "hang") == 0 ? "hangs" : "is SIGKILLed");
    fflush(stdout);
    if (strcmp(point, "hang") == 0)
        for (;;)
            pause();
    kill(getpid(), SIGKILL);
    for (;;)
        pause();
}

/* The old side: the new process may still be starting, so retry for a while (the
 * device work waits at its quiet point meanwhile, outside the blackout). */
static int transfer_connect(const char *path, GError **error)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    uint64_t until = now_us() + XFER_CONNECT_MS * 1000u;
    int fd, e;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NAMETOOLONG,
                    "transfer socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    strcpy(addr.sun_path, path);
    for (;;) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            break;
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
            return fd;
        e = errno;
        close(fd);
        errno = e;
        if ((errno != ENOENT && errno != ECONNREFUSED) || now_us() > until)
            break;
        usleep(20000);
    }
    e = errno;
    g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(e),
                "no new process to transfer to: connect to %s: %s", path, g_strerror(e));
    return -e;
}


/*
 * What the VMM runs at start-up. The same code serves a cold start and a restart:
 * vfiocpr_new() tells which, and the library calls resolve to what was preserved.
 * The only differences are the VMM's own: its state is inherited instead of fresh,
 * and it does not program a device that is already programmed.
 */
static void vmm_start(vmm *v)
{
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) unclaimed = NULL;
    int n;

    /* A transfer's new process: the context comes from the socket instead of the
     * environment; everything after it is the same start-up. */
    if (v->incoming) {
        v->xfer_sock = incoming_accept(v);
        v->t_accept = now_us();
        incoming_fault(v, "accepted");
    }
    v->t_new = now_us();
    if (v->incoming)
        n = LIB(v, vfiocpr_new_incoming(v->xfer_sock, XFER_TIMEOUT_MS, 0, &v->ctx, &err));
    else
        n = LIB(v, vfiocpr_new(VFIOCPR_NEW_DEFAULT, &v->ctx, &err));
    if (n < 0)
        die("%s", err->message);
    incoming_fault(v, "received");
    v->restart = vfiocpr_is_restart(v->ctx);
    v->inherited_fds = vfiocpr_fd_count(v->ctx);
    v->t_ctx = now_us();

    state_start(v);
    device_start(v);
    ram_start(v);
    irq_start(v);
    kvm_start(v);
    v->t_devices = now_us();
    control_start(v);
    incoming_fault(v, "restored");
    incoming_fault(v, "hang");

    /* Ends restart mode: every preserved DMA range must have been re-mapped (else it
     * fails, naming the range). Inherited fds nobody claimed are reported, never
     * closed behind the VMM's back. On a cold start this is a no-op. */
    n = LIB(v, vfiocpr_finish(v->ctx, &unclaimed, &err));
    if (n < 0)
        die("%s", err->message);
    for (char **u = unclaimed; u && *u; u++)
        say("warning: inherited but never claimed: %s", *u);
    v->t_finish = now_us();
    if (v->xfer_sock >= 0)
        close(v->xfer_sock); /* committed: the old process has let go */
    v->xfer_sock = -1;

    /* The VMM's own state is written from here only: until the commit the old
     * process of a transfer can take everything back and must find its state as it
     * left it (the memfd is shared with it, not copied). An exec runs the same code. */
    if (v->restart) {
        v->st->generation++;
        v->st->fallbacks += v->fallback_reason != NULL;
        v->st->transfers += v->incoming != NULL;
    }
}

/* ------------------------------------------------------------------ evidence */

static liveness read_liveness(const vmm *v)
{
    liveness l = { 0 };
    char path[PATH_MAX], buf[8] = "";
    uint8_t cfg[256] = { 0 };
    uint8_t want = v->irq_index == VFIOCPR_IRQ_MSIX ? PCI_CAP_ID_MSIX : PCI_CAP_ID_MSI;
    FILE *f;
    int fd;

    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", v->bdf);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        if (pread(fd, cfg, sizeof(cfg), 0) == (ssize_t)sizeof(cfg)) {
            uint8_t pos = cfg[PCI_CAPABILITY_LIST];
            memcpy(&l.cmd, cfg + PCI_COMMAND, 2);
            for (int guard = 0; pos && pos < 0xff && guard < 48; guard++) {
                if (cfg[pos] == want) {
                    memcpy(&l.irq_ctrl, cfg + pos + 2, 2);
                    break;
                }
                pos = cfg[pos + 1];
            }
        }
        close(fd);
    }
    l.bus_master = l.cmd & PCI_COMMAND_MASTER;
    l.irq_enabled = want == PCI_CAP_ID_MSI ? (l.irq_ctrl & PCI_MSI_FLAGS_ENABLE)
                                           : (l.irq_ctrl & PCI_MSIX_FLAGS_ENABLE);
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/enable", v->bdf);
    if ((f = fopen(path, "r"))) {
        l.sysfs_enabled = fgets(buf, sizeof(buf), f) && buf[0] != '0';
        fclose(f);
    }
    return l;
}

/* INTx has no enable bit of its own to show: bus master and sysfs enable only. */
static bool liveness_ok(const vmm *v, const liveness *l)
{
    return l->bus_master && (l->irq_enabled || v->irq_index == VFIOCPR_IRQ_INTX) &&
           l->sysfs_enabled;
}

/* ------------------------------------------------------------------ interrupt accounting */

/* One read of a non-blocking eventfd takes its whole count. */
static void irq_collect(vmm *v, unsigned vector)
{
    uint64_t n;
    if (read(v->irq_fd[vector], &n, sizeof(n)) == (ssize_t)sizeof(n))
        v->st->received[vector] += n;
}

static uint64_t total(const uint64_t *a, unsigned n)
{
    uint64_t s = 0;
    for (unsigned i = 0; i < n; i++)
        s += a[i];
    return s;
}

static uint64_t guest_taken(const vmm *v);

/* Under KVM the eventfds are KVM's: the guest counts, in its RAM. */
static const char *received_text(const vmm *v, char *buf, size_t len)
{
    if (using_kvm(v))
        snprintf(buf, len, "%" PRIu64 " (counted by the guest)", guest_taken(v));
    else
        snprintf(buf, len, "%" PRIu64, total(v->st->received, v->n_vectors));
    return buf;
}

static uint64_t fired_total(const vmm *v)
{
    const mvg_mbox *mb = mbox(v);
    uint64_t n = 0;

    if (!using_kvm(v))
        return total(v->st->fired, v->n_vectors);
    if (v->kind != DEV_E1000E)
        return mb->done_raised + v->st->helper_total;
    for (unsigned i = 0; i < v->n_vectors; i++)
        n += mb->done_raised_v[i];
    return n + v->st->helper_total;
}

/* What the guest's handlers counted, at the end of its last cycle. */
static uint64_t guest_taken(const vmm *v)
{
    const mvg_mbox *mb = mbox(v);
    uint64_t n = 0;

    if (v->kind != DEV_E1000E)
        return mb->done_taken_own + mb->done_taken_other;
    for (unsigned i = 0; i < v->n_vectors; i++)
        n += mb->done_taken_v[i];
    return n;
}

static int64_t irq_deficit(const vmm *v)
{
    return (int64_t)(total(v->st->fired, v->n_vectors) - total(v->st->received, v->n_vectors));
}

/* A checkpoint: waits (bounded) for interrupts still on their way, then returns
 * fired - received. 0 means none lost; negative would mean extra ones. */
static int64_t irq_settle(vmm *v)
{
    uint64_t deadline = now_us() + SETTLE_MS * 1000u;
    struct pollfd p[MAX_VECTORS];

    while (irq_deficit(v) > 0 && now_us() < deadline) {
        for (unsigned i = 0; i < v->n_vectors; i++)
            p[i] = (struct pollfd){ .fd = v->irq_fd[i], .events = POLLIN };
        if (poll(p, v->n_vectors, 10) > 0)
            for (unsigned i = 0; i < v->n_vectors; i++)
                if (p[i].revents & POLLIN)
                    irq_collect(v, i);
    }
    return irq_deficit(v);
}

/* ------------------------------------------------------------------ edu work */

static void pattern(uint8_t *p, uint32_t seed)
{
    for (size_t i = 0; i < XFER; i++)
        p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

static bool pattern_ok(const uint8_t *p, uint32_t seed)
{
    uint8_t want[XFER];
    pattern(want, seed);
    return memcmp(p, want, XFER) == 0;
}

/* The device raises one MSI when a DMA with EDU_DMA_IRQ completes: counted as fired
 * before the device is told to go, so a fast delivery never looks like an extra. */
static void edu_dma(vmm *v, work_phase phase, bool to_ram)
{
    wr32(v, EDU_DMA_SRC, (uint32_t)(to_ram ? EDU_BUF : RAM_IOVA + RAM_SRC));
    wr32(v, EDU_DMA_DST, (uint32_t)(to_ram ? RAM_IOVA + RAM_DST : EDU_BUF));
    wr32(v, EDU_DMA_COUNT, XFER);
    v->st->fired[0]++;
    wr32(v, EDU_DMA_CMD, EDU_DMA_START | EDU_DMA_IRQ | (to_ram ? EDU_DMA_TO_RAM : 0));
    v->phase = phase;
    v->phase_since = now_us();
}

/* Guest RAM -> device: a fresh pattern, the next one of the sequence. */
static void edu_send(vmm *v, work_phase phase)
{
    v->st->seed++;
    pattern(v->ram + RAM_SRC, v->st->seed);
    edu_dma(v, phase, false);
}

/* Device -> guest RAM, to be compared with expect_seed. */
static void edu_fetch(vmm *v, work_phase phase, uint32_t expect_seed)
{
    memset(v->ram + RAM_DST, 0, XFER);
    v->expect_seed = expect_seed;
    edu_dma(v, phase, true);
}

/* e1000e: one MSI-X message on `vector`: IVAR routes RXQ0 there, IMS unmasks it, ICS
 * sets it; EIAC clears it again after the message. */
static void e1000e_shot(vmm *v, unsigned vector)
{
    uint64_t gap = now_us() - v->st->last_shot_us;
    if (gap < E1000_SHOT_GAP_US) /* a throttled shot would merge with the previous one */
        usleep((useconds_t)(E1000_SHOT_GAP_US - gap));
    wr32(v, E1000_IVAR, E1000_IVAR_VALID | vector);
    v->st->fired[vector]++;
    wr32(v, E1000_IMS, E1000_CAUSE_RXQ0);
    wr32(v, E1000_ICS, E1000_CAUSE_RXQ0);
    v->st->last_shot_us = now_us();
}

/* One interrupt on purpose, not tied to any work. */
static void fire(vmm *v, unsigned vector)
{
    if (v->kind == DEV_EDU) {
        v->st->fired[0]++;
        wr32(v, EDU_IRQ_RAISE, EDU_IRQ_USER);
    } else {
        e1000e_shot(v, vector);
    }
}

/* ------------------------------------------------------------------ upgrade */

/* Where an upgrade without an explicit path goes: --upgrade-to, else this binary.
 * Through a wrapper that must be a real path (/proc/self/exe would be the wrapper). */
static char *default_target(const vmm *v)
{
    char *self;

    if (v->upgrade_to)
        return g_strdup(v->upgrade_to);
    if (v->wrapper && (self = self_path()))
        return self;
    return g_strdup("/proc/self/exe");
}

/* sock: a transfer to the new process listening there, instead of an exec of path */
static void request_upgrade(vmm *v, const char *path, const char *sock, const char *by)
{
    if (v->upgrade_pending) {
        say("upgrade requested by %s: one is already on its way", by);
        return;
    }
    v->upgrade_pending = true;
    v->upgrade_direct = false;
    g_free(v->upgrade_path);
    v->upgrade_path = path && *path ? g_strdup(path) : default_target(v);
    g_free(v->upgrade_sock);
    v->upgrade_sock = sock && *sock ? g_strdup(sock) : NULL;
    v->st->t_requested = now_us();
    g_strlcpy(v->st->requested_by, by, sizeof(v->st->requested_by));
    /* the actual exec waits for a quiet point of the device work: see work_idle() */
}

static void upgrade_finished(vmm *v, bool good); /* below: tallies, ends --upgrades */

/* A committed transfer: the devices are the new process's. Nothing touches them
 * again (no edu_wait_idle, no unref that could close); exit() closes our fds, which
 * resets nothing, since the new process holds the same open files. The control
 * socket's path is the new process's too: it is not unlinked. */
static void handed_over(vmm *v, int sock) __attribute__((noreturn));
static void handed_over(vmm *v, int sock)
{
    struct ucred peer = { 0 };
    socklen_t len = sizeof(peer);

    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0)
        peer.pid = 0;
    say("transfer to %s committed after %" PRIu64 " us: handed over to pid %d; pid %d exits "
        "without touching the devices", v->upgrade_sock, now_us() - v->st->t_exec,
        (int)peer.pid, (int)getpid());
    fflush(stdout);
    fflush(stderr);
    exit(0);
}

/*
 * The handover itself: vfiocpr_exec(), or with a transfer pending vfiocpr_transfer()
 * to the new process listening on v->upgrade_sock. Both prepare the same way and
 * roll back the same way; a committed transfer ends this process. Returns only on
 * failure, with everything taken back.
 */
static int handover(vmm *v, const char *path, char *const *argv, GError **err)
{
    vmm_state *st = v->st;
    int sock, r;

    if (!v->upgrade_sock) {
        st->old_pid = 0;
        st->t_exec = now_us();
        return vfiocpr_exec(v->ctx, path, argv, NULL, err);
    }
    sock = transfer_connect(v->upgrade_sock, err);
    st->t_exec = now_us();
    if (sock < 0)
        return sock;
    /* the new process reads these from the shared VMM state */
    st->old_pid = getpid();
    r = vfiocpr_transfer(v->ctx, sock, XFER_TIMEOUT_MS, 0, err);
    if (r == 0)
        handed_over(v, sock);
    st->old_pid = 0;
    close(sock);
    return r;
}

/*
 * The exec. The device is at a quiet point: for edu the pattern the new image must
 * find is in the device's buffer. One more interrupt is fired and deliberately not
 * read: the kernel puts it in the eventfd counter and the new image must find it
 * there. From here the library detaches KVM irqfds, invalidates the DMA vaddrs
 * (device DMA to guest RAM now waits in the kernel: the blackout starts), seals
 * its state in a memfd and exec()s.
 */
static void do_upgrade(vmm *v)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) wargs = NULL;
    g_autofree char *self = NULL;
    vmm_state *st = v->st;
    liveness before = read_liveness(v);
    const char *path = v->upgrade_path;
    char *const *argv = v->argv;
    uint64_t t_fail;
    int r;

    v->upgrade_pending = false;
    st->handover_vector = v->kind == DEV_EDU ? 0 : st->generation % v->n_vectors;
    st->cmd_before = before.cmd;
    st->irq_ctrl_before = before.irq_ctrl;
    g_strlcpy(st->exec_path, v->upgrade_sock ? v->upgrade_sock : v->upgrade_path,
              sizeof(st->exec_path));
    st->via[0] = '\0';
    /* Through the wrapper: { WRAPPER, ARG..., --fallback, SELF, --, TARGET, our args }.
     * The wrapper execs TARGET with our arguments, or SELF with them if it cannot. */
    if (v->wrapper && !v->upgrade_direct && !v->upgrade_sock) {
        self = self_path();
        if (!self)
            say("readlink /proc/self/exe: %s; upgrading without a fallback",
                g_strerror(errno));
        wargs = g_ptr_array_new();
        g_ptr_array_add(wargs, (gpointer)v->wrapper);
        for (char **a = v->wrapper_args; a && *a; a++)
            g_ptr_array_add(wargs, *a);
        if (self) {
            g_ptr_array_add(wargs, "--fallback");
            g_ptr_array_add(wargs, self);
        }
        g_ptr_array_add(wargs, "--");
        g_ptr_array_add(wargs, v->upgrade_path);
        for (char **a = v->argv + 1; *a; a++)
            g_ptr_array_add(wargs, *a);
        g_ptr_array_add(wargs, NULL);
        path = v->wrapper;
        argv = (char *const *)wargs->pdata;
        g_strlcpy(st->via, v->wrapper, sizeof(st->via));
    }
    v->upgrade_direct = false;
    fire(v, st->handover_vector);
    st->t_handover = now_us();

    /* The client that asked waits for the answer across the exec. */
    if (v->client_waiting &&
        vfiocpr_fd_save(v->ctx, "control-client", 0, v->client_fd, VFIOCPR_FD_OTHER, &err) < 0) {
        say("the control client cannot cross the exec (%s); it gets no answer", err->message);
        g_clear_error(&err);
        client_close(v);
    }
    fflush(stdout); /* stdio buffers do not survive exec */
    fflush(stderr);

    r = handover(v, path, argv, &err);
    v->prepared_ahead = false; /* failed: encode again once running */

    /* Only a failure returns, after a full rollback: DMA vaddrs, FD_CLOEXEC and KVM
     * irqfds are as they were. The VMM just keeps running; the interrupt fired above
     * is still in its eventfd and is counted by the main loop as usual. */
    t_fail = now_us();
    st->rollbacks++;
    if (v->upgrade_sock)
        say("transfer to %s FAILED after %" PRIu64 " us and was rolled back; still running: %s",
            v->upgrade_sock, t_fail - st->t_exec, err ? err->message : g_strerror(-r));
    else
        say("upgrade to %s%s%s FAILED after %" PRIu64 " us and was rolled back; still running: %s",
            v->upgrade_path, path != v->upgrade_path ? " through " : "",
            path != v->upgrade_path ? path : "", t_fail - st->t_exec,
            err ? err->message : g_strerror(-r));
    vfiocpr_fd_forget(v->ctx, "control-client", 0);
    if (v->client_waiting) {
        reply(v->client_fd, "upgrade failed, rolled back, still running: %s\n",
              err ? err->message : g_strerror(-r));
        client_close(v);
    }
    if (v->self_test && !v->rollback_seen) {
        v->rollback_seen = true;
        v->rollback_ok = r == -ENOENT && err && strstr(err->message, "rolled back");
    } else if (st->upgrades_wanted) {
        st->upgrades_done++; /* an automatic upgrade that failed is a failed upgrade */
        upgrade_finished(v, false);
    }
    v->phase = WORK_IDLE;
}

/* ------------------------------------------------------------------ after a restart */

/* "3" or, with --upgrades, "3/20" */
static const char *upgrade_number(const vmm_state *st, char *buf, size_t len)
{
    if (st->upgrades_wanted)
        snprintf(buf, len, "%u/%u", st->upgrades_done, st->upgrades_wanted);
    else
        snprintf(buf, len, "%u", st->upgrades_done);
    return buf;
}

static void print_timeline(vmm *v, int64_t lost, bool dma_ok, bool good)
{
    vmm_state *st = v->st;
    const liveness *a = &v->live_after;
    int64_t t0 = (int64_t)st->t_exec;
    char num[32], irqs[64], sc[64];
#define REL(t) ((int64_t)(t)-t0)

    upgrade_number(st, num, sizeof(num));
    if (v->incoming)
        say("---- upgrade %s, a transfer, generation %u, pid %d from pid %d; times from "
            "vfiocpr_transfer() ----", num, st->generation, (int)getpid(), (int)st->old_pid);
    else
        say("---- upgrade %s, generation %u, pid %d; times from vfiocpr_exec() ----", num,
            st->generation, (int)getpid());
    say("  old image %8" PRId64 " us  upgrade requested by %s", REL(st->t_requested),
        st->requested_by);
    say("  old image %8" PRId64 " us  handover: %s%s fired on vector %u and left %s",
        REL(st->t_handover), v->kind == DEV_EDU ? "pattern in the device's buffer, " : "",
        irq_label(v), st->handover_vector, "unread");
    if (v->incoming) {
        say("  new image %8" PRId64 " us  main() entered (pid %d, started by itself, waiting "
            "on %s)", REL(v->t_main), (int)getpid(), v->incoming);
        say("  new image %8" PRId64 " us  connection accepted", REL(v->t_accept));
        say("  old image %8" PRId64 " us  vfiocpr_transfer() to %s (pid %d)", REL(st->t_exec),
            st->exec_path, (int)st->old_pid);
    } else if (st->via[0])
        say("  old image %8" PRId64 " us  vfiocpr_exec(\"%s\"), the wrapper: new %s, fallback "
            "this binary", REL(st->t_exec), st->via, st->exec_path);
    else
        say("  old image %8" PRId64 " us  vfiocpr_exec(\"%s\")", REL(st->t_exec), st->exec_path);
    if (!v->incoming)
        say("  new image %8" PRId64 " us  main() entered      prepare + execve + load %7" PRId64
            " us%s", REL(v->t_main), (int64_t)(v->t_main - st->t_exec),
            st->via[0] ? "  (+ the wrapper and its execve)" : "");
    if (v->fallback_reason)
        say("  new image            the wrapper fell back to this binary: %s", v->fallback_reason);
    if (v->incoming)
        say("  new image %8" PRId64 " us  vfiocpr_new_incoming() prepare + send + receive + "
            "restore: state %" PRId64 " us  (%u fds received)", REL(v->t_ctx),
            (int64_t)(v->t_ctx - st->t_exec), v->inherited_fds);
    else {
        say("  new image %8" PRId64 " us  options parsed      program start-up        %7" PRId64
            " us", REL(v->t_new), (int64_t)(v->t_new - v->t_main));
        say("  new image %8" PRId64 " us  vfiocpr_new()       restore: state          %7" PRId64
            " us  (%u fds inherited)", REL(v->t_ctx), (int64_t)(v->t_ctx - v->t_new),
            v->inherited_fds);
    }
    say("  new image %8" PRId64 " us  devices back        restore: devices        %7" PRId64
        " us  (container, device, DMA vaddr, %s%s)", REL(v->t_devices),
        (int64_t)(v->t_devices - v->t_ctx), irq_label(v), "");
    say("  new image %8" PRId64 " us  vfiocpr_finish()    finish                  %7" PRId64
        " us", REL(v->t_finish), (int64_t)(v->t_finish - v->t_devices));
    say("  blackout (%s -> vfiocpr_finish): %" PRIu64 " us",
        v->incoming ? "vfiocpr_transfer" : "vfiocpr_exec", v->t_finish - st->t_exec);
    say("  interrupt fired before the %s: %s on the inherited eventfd; since the cold "
            "start fired %" PRIu64 ", received %" PRIu64 "; lost in this upgrade: %" PRId64,
            v->incoming ? "transfer" : "exec", v->handover_waiting ? "waiting" : "NOT waiting",
            total(st->fired, v->n_vectors),
            total(st->received, v->n_vectors), lost);
    if (v->kind == DEV_EDU)
        say("  DMA device -> guest RAM, now mapped at %p: %u bytes, pattern %u %s", (void *)v->ram,
            XFER, v->expect_seed, dma_ok ? "intact" : "WRONG");
    else
        say("  DMA: not driven on e1000e; guest RAM mapping re-pointed to %p", (void *)v->ram);
    say("  not reset: PCI_COMMAND 0x%04x -> 0x%04x (bus master %s), %s control 0x%04x -> 0x%04x "
        "(%s), sysfs enable %s", st->cmd_before, a->cmd, a->bus_master ? "on" : "OFF",
        irq_label(v), st->irq_ctrl_before, a->irq_ctrl, a->irq_enabled ? "enabled" : "DISABLED",
        a->sysfs_enabled ? "1" : "0");
    say("  seccomp in this image: %s", seccomp_text(sc, sizeof(sc)));
    snprintf(irqs, sizeof(irqs), "lost %" PRId64 " interrupts", lost);
    if (v->incoming)
        snprintf(sc, sizeof(sc), ", transfer from pid %d to pid %d%s", (int)st->old_pid,
                 (int)getpid(), st->old_pid == getpid() ? " (the SAME process)" : "");
    else
        g_strlcpy(sc, v->fallback_reason ? ", the wrapper fell back to the old binary" :
                      st->via[0] ? ", through the wrapper" : "", sizeof(sc));
    say("upgrade %s: %s: %s, DMA %s, not reset %s, blackout %" PRIu64 " us%s", num,
        good ? "ok" : "FAILED", irqs, v->kind != DEV_EDU ? "n/a" : dma_ok ? "ok" : "BAD",
        liveness_ok(v, a) ? "ok" : "BAD", v->t_finish - st->t_exec, sc);
#undef REL
}

static void print_summary(vmm *v)
{
    vmm_state *st = v->st;
    uint32_t n = st->upgrades_done;
    g_autofree char *irqs = NULL, *dma = NULL;

    if (using_kvm(v)) {
        const mvg_mbox *mb = mbox(v);
        uint64_t bo = n ? st->blackout_sum / n : 0;
        say("summary: %u/%u upgrades good, %s: the device raised %" PRIu64 " (guest %" PRIu64
            ", helper %" PRIu64 " during the exec windows), the guest's handler took %" PRIu64
            ", the guest waited in vain for %" PRIu64 "; the guest's DMA: %" PRIu64 " ok, %" PRIu64
            " bad; the pause the guest saw min %" PRIu64 " / mean %" PRIu64 " / max %" PRIu64
            " us; vCPU stopped mean %" PRIu64 " us; blackout min %" PRIu64 " / mean %" PRIu64
            " / max %" PRIu64 " us, of it in library calls (new image) mean %" PRIu64 " us (%"
            PRIu64 "%%); transfers %u, rollbacks %u", st->upgrades_good, n, irq_label(v),
            fired_total(v),
            fired_total(v) - st->helper_total, st->helper_total, guest_taken(v),
            mb->missed, mb->dma_ok, mb->dma_bad, n ? st->pause_min : 0,
            n ? st->pause_sum / n : 0, st->pause_max, n ? st->stopped_sum / n : 0,
            n ? st->blackout_min : 0, bo, st->blackout_max, n ? st->lib_sum / n : 0,
            bo ? st->lib_sum / n * 100 / bo : 0, st->transfers, st->rollbacks);
        return;
    }
    irqs = g_strdup_printf("%" PRId64 " interrupts lost (fired %" PRIu64 ", received %" PRIu64
                               ")", st->lost_total, total(st->fired, v->n_vectors),
                               total(st->received, v->n_vectors));
    dma = v->kind == DEV_EDU ? g_strdup_printf("DMA checks %u ok of %u",
                                               st->dma_checks - st->dma_bad, st->dma_checks)
                             : g_strdup("DMA n/a");
    say("summary: %u/%u upgrades good, %s, %s, blackout min %" PRIu64 " / mean %" PRIu64
        " / max %" PRIu64 " us, transfers %u, rollbacks %u, fallbacks %u", st->upgrades_good, n,
        irqs, dma, n ? st->blackout_min : 0, n ? st->blackout_sum / n : 0, st->blackout_max,
        st->transfers, st->rollbacks, st->fallbacks);
}

/* Called when an upgrade's outcome is known (checked, or failed to exec). */
static void upgrade_finished(vmm *v, bool good)
{
    vmm_state *st = v->st;

    st->upgrades_good += good;
    if (!st->upgrades_wanted || st->upgrades_done < st->upgrades_wanted)
        return;
    /* --upgrades N: the last one is done; everything fired must have arrived */
    if (using_kvm(v)) {
        const mvg_mbox *mb = mbox(v);
        print_summary(v);
        v->exit_status = st->upgrades_good == st->upgrades_wanted && mb->dma_bad == 0 &&
                         fired_total(v) == guest_taken(v) ? 0 : 1;
        v->quit = true;
        return;
    }
    {
        int64_t d = irq_settle(v);
        st->lost_total += d - st->deficit;
        st->deficit = d;
    }
    print_summary(v);
    v->exit_status = st->upgrades_good == st->upgrades_wanted && st->lost_total == 0 &&
                     st->dma_bad == 0 ? 0 : 1;
    v->quit = true;
}

/* --forbidden-ioctl: a request outside libvfiocpr's seccomp rules and the wrapper's
 * start-up list. Under the wrapper's filter (default action: kill the process) the
 * kernel kills us with SIGSYS before the ioctl runs: nothing after this line is
 * printed. If it returns, there was no such filter. */
static void forbidden_ioctl(void)
{
    struct winsize ws;
    char sc[64];
    int r;

    say("--forbidden-ioctl: seccomp %s; ioctl(0, TIOCGWINSZ) now, which no rule allows",
        seccomp_text(sc, sizeof(sc)));
    fflush(stdout);
    r = ioctl(STDIN_FILENO, TIOCGWINSZ, &ws);
    die("--forbidden-ioctl: ioctl(TIOCGWINSZ) returned %d (%s): NOT blocked, no seccomp filter",
        r, r < 0 ? g_strerror(errno) : "success");
}

/*
 * The new image has done its first work: everything about the upgrade is known.
 * For edu that is the DMA of the pattern the old image left in the device, into
 * guest RAM at its new address; for e1000e a short quiet time.
 */
static void upgrade_checkpoint(vmm *v, bool dma_ok)
{
    vmm_state *st = v->st;
    uint64_t blackout = v->t_finish - st->t_exec;
    int64_t lost = 0;
    bool irq_ok, good;

    v->live_after = read_liveness(v);
    {
        int64_t d = irq_settle(v);
        lost = d - st->deficit; /* what went missing since the previous checkpoint */
        st->deficit = d;
        st->lost_total += lost;
        irq_ok = v->handover_waiting && lost == 0;
    }
    /* a transfer hands over to another process: the same pid would mean it did not */
    good = irq_ok && dma_ok && liveness_ok(v, &v->live_after) &&
           (!v->incoming || (st->old_pid > 0 && st->old_pid != getpid()));
    st->upgrades_done++;
    st->blackout_sum += blackout;
    st->blackout_min = MIN(st->blackout_min, blackout);
    st->blackout_max = MAX(st->blackout_max, blackout);
    print_timeline(v, lost, dma_ok, good);
    if (v->client_waiting) {
        reply(v->client_fd, "upgraded%s: generation %u, pid %d, blackout %" PRIu64 " us, "
              "lost %" PRId64 " interrupts, DMA %s%s: %s\n",
              v->incoming ? " by a transfer" : "", st->generation, (int)getpid(),
              blackout, lost, v->kind != DEV_EDU ? "n/a" : dma_ok ? "ok" : "BAD",
              v->fallback_reason ? ", the wrapper fell back to the old binary" : "",
              good ? "ok" : "FAILED");
        client_close(v);
    }
    v->phase = WORK_IDLE;
    if (v->forbidden_ioctl)
        forbidden_ioctl();
    upgrade_finished(v, good);
}

/* ------------------------------------------------------------------ device work */

static void dma_result(vmm *v, bool ok)
{
    v->st->dma_checks++;
    if (!ok) {
        v->st->dma_bad++;
        say("DMA check FAILED: pattern %u did not come back intact", v->expect_seed);
    }
}

/* edu: an interrupt arrived (or a tick came, under KVM or as a fallback): read the
 * device's interrupt status to see what happened and move the work along. */
static void edu_service(vmm *v)
{
    uint32_t status = rd32(v, EDU_IRQ_STATUS);
    bool ok;

    if (status)
        wr32(v, EDU_IRQ_ACK, status);
    if (!(status & EDU_IRQ_DMA)) {
        if (v->phase != WORK_IDLE && now_us() - v->phase_since > DMA_TIMEOUT_MS * 1000u) {
            say("DMA timed out in phase %d", (int)v->phase);
            dma_result(v, false);
            if (v->phase == WORK_VERIFY)
                upgrade_checkpoint(v, false);
            v->phase = WORK_IDLE;
        }
        return;
    }
    switch (v->phase) {
    case WORK_TO_DEVICE:
        edu_fetch(v, WORK_FROM_DEVICE, v->st->seed);
        break;
    case WORK_FROM_DEVICE:
        dma_result(v, pattern_ok(v->ram + RAM_DST, v->expect_seed));
        fire(v, 0); /* the "MSI raise" of every cycle */
        v->cycles++;
        v->phase = WORK_IDLE;
        break;
    case WORK_HANDOVER:
        do_upgrade(v); /* returns only if the exec failed */
        break;
    case WORK_VERIFY:
        ok = pattern_ok(v->ram + RAM_DST, v->expect_seed);
        dma_result(v, ok);
        upgrade_checkpoint(v, ok);
        break;
    case WORK_IDLE:
        break;
    }
}

/* Nothing in flight: start the next piece of work, or the pending upgrade. */
static void work_idle(vmm *v)
{
    if (v->upgrade_pending) {
        if (v->kind == DEV_EDU)
            edu_send(v, WORK_HANDOVER); /* the pattern the next image must find */
        else
            do_upgrade(v);
        return;
    }
    if (v->kind == DEV_EDU) {
        edu_send(v, WORK_TO_DEVICE);
    } else {
        e1000e_shot(v, v->shots % v->n_vectors);
        if (++v->shots % v->n_vectors == 0)
            v->cycles++;
    }
}

/* What --upgrades and --self-test want next. */
static void script(vmm *v)
{
    vmm_state *st = v->st;
    bool worked = v->cycles >= 1 && now_us() - v->image_start >= WORK_MS * 1000u;

    if (v->phase != WORK_IDLE || v->upgrade_pending || v->quit)
        return;
    if (st->upgrades_wanted && st->upgrades_done < st->upgrades_wanted && worked)
        request_upgrade(v, NULL, v->transfer_to, "--upgrades");
    if (v->self_test) {
        if (!v->rollback_seen && v->cycles >= 2) {
            /* a binary that does not exist: vfiocpr_exec() must fail and roll back */
            request_upgrade(v, "/nonexistent/minivmm", NULL, "--self-test");
            v->upgrade_direct = true; /* vfiocpr_exec() itself must fail: no wrapper */
        } else if (v->rollback_seen && v->cycles >= 4) {
            /* after the rollback the interrupts still reach us, or the re-attached VM */
            bool irq_good = irq_settle(v) == 0;
            bool dma_good = v->kind != DEV_EDU || (st->dma_checks > 0 && st->dma_bad == 0);
            bool good = v->rollback_ok && irq_good && dma_good;
            char received[32], dma[48] = "DMA n/a";
            if (v->kind == DEV_EDU)
                snprintf(dma, sizeof(dma), "DMA checks %u ok of %u", st->dma_checks - st->dma_bad,
                         st->dma_checks);
            say("self-test: %s: rollback %s; after it %u cycles, interrupts fired %" PRIu64
                ", received %s, %s", good ? "ok" : "FAILED", v->rollback_ok ? "ok" : "WRONG",
                v->cycles, total(st->fired, v->n_vectors),
                received_text(v, received, sizeof(received)), dma);
            v->exit_status = good ? 0 : 1;
            v->quit = true;
        }
    }
}

/* Once the guest runs again: the state encoded outside the next blackout, so that
 * the upgrade only patches and writes it. Again after a failed upgrade. */
static void prepare_ahead(vmm *v)
{
    g_autoptr(GError) err = NULL;

    if (v->prepared_ahead || v->upgrade_pending)
        return;
    v->prepared_ahead = true;
    if (vfiocpr_state_prepare(v->ctx, &err) < 0)
        say("state prepare: %s (the upgrade will encode it)", err->message);
}

static void on_tick(vmm *v)
{
    uint64_t expirations;

    if (read(v->timer_fd, &expirations, sizeof(expirations)) < 0)
        return;
    prepare_ahead(v);
    if (v->kind == DEV_EDU && v->phase != WORK_IDLE)
        edu_service(v); /* under KVM the only way to see a DMA finish; else a timeout check */
    else if (v->phase == WORK_VERIFY &&
             now_us() - v->t_finish >= VERIFY_QUIET_MS * 1000u)
        upgrade_checkpoint(v, true); /* e1000e */
    script(v);
    if (v->phase == WORK_IDLE && !v->quit)
        work_idle(v);
}

/* ------------------------------------------------------------------ control commands */

static void control_command(vmm *v, char *line)
{
    vmm_state *st = v->st;

    g_strstrip(line);
    if (g_str_has_prefix(line, "upgrade --transfer ")) {
        const char *sock = g_strstrip(line + strlen("upgrade --transfer "));
        reply(v->client_fd, "transferring to the new process on %s\n", sock);
        v->client_waiting = true; /* answered by the new process, or by us if it fails */
        request_upgrade(v, NULL, sock, "the control socket");
    } else if (strcmp(line, "upgrade") == 0 || g_str_has_prefix(line, "upgrade ")) {
        const char *path = g_strstrip(line + strlen("upgrade"));
        g_autofree char *target = *path ? g_strdup(path) : default_target(v);
        reply(v->client_fd, "upgrading to %s%s%s\n", target, v->wrapper ? " through " : "",
              v->wrapper ? v->wrapper : "");
        v->client_waiting = true; /* answered by whichever image finds out how it went */
        request_upgrade(v, target, NULL, "the control socket");
    } else if (strcmp(line, "status") == 0) {
        char received[48];
        /* under --kvm the DMA is the guest's, counted in its RAM */
        uint64_t dma_bad = using_kvm(v) ? mbox(v)->dma_bad : st->dma_bad;
        uint64_t dma_checks = using_kvm(v) ? mbox(v)->dma_ok + dma_bad : st->dma_checks;
        reply(v->client_fd, "generation %u, pid %d, %s %s, upgrades %u (good %u), rollbacks %u, "
              "interrupts fired %" PRIu64 " received %s, DMA checks %" PRIu64 " (bad %" PRIu64
              ")\n", st->generation, (int)getpid(), device_label(v), v->bdf, st->upgrades_done,
              st->upgrades_good, st->rollbacks, fired_total(v),
              received_text(v, received, sizeof(received)), dma_checks, dma_bad);
        client_close(v);
    } else if (strcmp(line, "quit") == 0) {
        reply(v->client_fd, "bye\n");
        client_close(v);
        v->quit = true;
    } else {
        reply(v->client_fd, "unknown command '%s' (upgrade [PATH] | upgrade --transfer SOCKET | status | quit)\n", line);
        client_close(v);
    }
}

static void on_listen(vmm *v)
{
    int fd = accept4(v->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

    if (fd < 0)
        return;
    if (v->client_fd >= 0) {
        reply(fd, "busy: one command at a time\n");
        close(fd);
        return;
    }
    v->client_fd = fd;
    v->client_len = 0;
}

static void on_client(vmm *v)
{
    ssize_t n = read(v->client_fd, v->client_buf + v->client_len,
                     sizeof(v->client_buf) - 1 - v->client_len);
    char *nl;

    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0) {
        client_close(v);
        return;
    }
    v->client_len += (size_t)n;
    v->client_buf[v->client_len] = '\0';
    if ((nl = strchr(v->client_buf, '\n'))) {
        *nl = '\0';
        control_command(v, v->client_buf);
    } else if (v->client_len == sizeof(v->client_buf) - 1) {
        reply(v->client_fd, "line too long\n");
        client_close(v);
    }
}

/* minivmm --control PATH --send LINE: the client side, for scripts. */
static int control_send(const char *path, const char *line)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_autofree char *msg = g_strdup_printf("%s\n", line);
    char buf[512];
    int fd = -1, tries;

    if (strlen(path) >= sizeof(addr.sun_path))
        die("control socket path too long: %s", path);
    strcpy(addr.sun_path, path);
    for (tries = 0; tries < 100; tries++) { /* the VMM may still be starting */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            die("socket: %s", g_strerror(errno));
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
            break;
        close(fd);
        fd = -1;
        usleep(50000);
    }
    if (fd < 0)
        die("cannot connect to %s: %s", path, g_strerror(errno));
    if (write(fd, msg, strlen(msg)) != (ssize_t)strlen(msg))
        die("write to %s: %s", path, g_strerror(errno));
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        ssize_t n;
        if (poll(&p, 1, 60000) != 1)
            die("no answer from %s within 60 s", path);
        n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        fwrite(buf, 1, (size_t)n, stdout);
    }
    close(fd);
    return 0;
}

/* ------------------------------------------------------------------ main loop */

static void on_signal(vmm *v)
{
    struct signalfd_siginfo si;

    if (read(v->signal_fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return;
    if (si.ssi_signo == SIGHUP)
        request_upgrade(v, NULL, v->transfer_to, "SIGHUP");
    else
        v->quit = true;
}

static void loop_start(vmm *v)
{
    struct itimerspec period = { .it_interval = { 0, TICK_MS * 1000000L },
                                 .it_value = { 0, TICK_MS * 1000000L } };
    sigset_t set;

    /* Signals as fds. The mask survives exec, and so does a signal that arrives
     * during it: a SIGHUP sent mid-upgrade is read by the new image, not lost. */
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
        (v->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0)
        die("signalfd: %s", g_strerror(errno));
    v->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (v->timer_fd < 0 || timerfd_settime(v->timer_fd, 0, &period, NULL) < 0)
        die("timerfd: %s", g_strerror(errno));
}

static int main_loop(vmm *v)
{
    enum { FD_TIMER, FD_SIGNAL, FD_LISTEN, FD_CLIENT, FD_IRQ0, N_FDS = FD_IRQ0 + MAX_VECTORS };
    struct pollfd p[N_FDS];

    while (!v->quit) {
        for (unsigned i = 0; i < N_FDS; i++)
            p[i] = (struct pollfd){ .fd = -1, .events = POLLIN }; /* fd -1: ignored */
        p[FD_TIMER].fd = v->timer_fd;
        p[FD_SIGNAL].fd = v->signal_fd;
        p[FD_LISTEN].fd = v->listen_fd;
        p[FD_CLIENT].fd = v->client_waiting ? -1 : v->client_fd;
        for (unsigned i = 0; i < v->n_vectors; i++)
            p[FD_IRQ0 + i].fd = v->irq_fd[i];
        if (poll(p, N_FDS, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", g_strerror(errno));
        }
        for (unsigned i = 0; i < v->n_vectors; i++)
            if (p[FD_IRQ0 + i].revents & POLLIN) {
                irq_collect(v, i);
                if (v->kind == DEV_EDU)
                    edu_service(v);
            }
        if (p[FD_SIGNAL].revents & POLLIN)
            on_signal(v);
        if (p[FD_LISTEN].revents & POLLIN)
            on_listen(v);
        if (p[FD_CLIENT].revents & (POLLIN | POLLHUP) && v->client_fd >= 0)
            on_client(v);
        if (p[FD_TIMER].revents & POLLIN && !v->quit)
            on_tick(v);
    }
    /* Leave the device quiet for whoever opens it next: no DMA in flight. */
    if (v->kind == DEV_EDU && v->phase != WORK_IDLE)
        edu_wait_idle(v);
    if (v->control_path)
        unlink(v->control_path);
    return v->exit_status;
}

/* ------------------------------------------------------------------ --kvm: the VM runs */

static uint64_t tsc_us(const vmm *v, uint64_t cycles)
{
    return v->tsc_khz ? cycles * 1000u / v->tsc_khz : 0;
}

/*
 * The upgrade, from inside the VM's run loop: the vCPU exited on a heartbeat, so it
 * is stopped between two instructions of the guest. KVM completes an I/O
 * instruction on the next KVM_RUN: one entry with immediate_exit set does that and
 * returns at once, so the saved registers point after the OUT. Then the guest's
 * state goes into the vCPU memfd, the irqfds come off (the helper's interrupts now
 * wait in the eventfd), and vfiocpr_exec().
 */
static void kvm_handover(vmm *v)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *why = NULL;
    vmm_state *st = v->st;
    mvg_mbox *mb = mbox(v);
    liveness before = read_liveness(v);
    uint64_t t_fail;
    int r;

    v->upgrade_pending = false;
    v->run->immediate_exit = 1;
    r = ioctl(v->vcpu_fd, KVM_RUN, 0);
    v->run->immediate_exit = 0;
    if (r == 0 || errno != EINTR)
        die("KVM: completing the last I/O before saving: %s", r == 0 ? "the guest ran" :
            g_strerror(errno));
    st->t_stop = now_us();
    st->g = *mb;
    st->gap_before = mb->max_gap;
    mb->max_gap = 0; /* from here the guest measures the pause itself */
    kvm_save(v);
    st->t_saved = now_us();
    st->cmd_before = before.cmd;
    st->irq_ctrl_before = before.irq_ctrl;
    st->handover_vector = 0;
    g_strlcpy(st->exec_path, v->upgrade_sock ? v->upgrade_sock : v->upgrade_path,
              sizeof(st->exec_path));
    st->via[0] = '\0';

    if (vfiocpr_kvm_detach(v->ctx, &err) < 0)
        die("KVM: detaching the irqfds: %s", err->message);
    if (v->negative && strcmp(v->negative, "keep-old-irqfds") == 0) {
        /* an irqfd of this VM that outlives the exec: the VM fd crosses it too */
        struct kvm_irqfd a = { .fd = (uint32_t)v->irq_fd[0],
                               .gsi = v->intx ? INTX_PIN : KVM_GSI_BASE };
        if (ioctl(v->vm_fd, KVM_IRQFD, &a) < 0 ||
            vfiocpr_fd_save(v->ctx, "old-vm", 0, v->vm_fd, VFIOCPR_FD_KVM, &err) < 0)
            die("negative keep-old-irqfds: %s", err ? err->message : g_strerror(errno));
        say("negative control: the old VM keeps an irqfd on the %s eventfd across the exec",
            irq_label(v));
    }
    helper_start(v);
    st->t_handover = now_us();
    if (v->client_waiting &&
        vfiocpr_fd_save(v->ctx, "control-client", 0, v->client_fd, VFIOCPR_FD_OTHER, &err) < 0) {
        say("the control client cannot cross the exec (%s); it gets no answer", err->message);
        g_clear_error(&err);
        client_close(v);
    }
    fflush(stdout);
    fflush(stderr);
    r = handover(v, v->upgrade_path, v->argv, &err);
    v->prepared_ahead = false;

    /* rolled back: the helper stops, the same VM takes the irqfds (and so what the
     * helper raised) again, the vCPU simply carries on */
    t_fail = now_us();
    st->rollbacks++;
    say("%s %s FAILED after %" PRIu64 " us and was rolled back; still running: %s",
        v->upgrade_sock ? "transfer to" : "upgrade to",
        v->upgrade_sock ? v->upgrade_sock : v->upgrade_path, t_fail - st->t_exec,
        err ? err->message : g_strerror(-r));
    why = g_strdup(err ? err->message : g_strerror(-r));
    vfiocpr_fd_forget(v->ctx, "control-client", 0);
    vfiocpr_fd_forget(v->ctx, "old-vm", 0);
    helper_stop(v);
    st->helper_total += st->window_raised;
    for (unsigned n = 0; n < MVG_MSIX_VECTORS; n++)
        st->helper_total_v[n] += st->window_v[n];
    g_clear_error(&err);
    if (vfiocpr_kvm_attach(v->ctx, v->vm_fd, KVM_GSI_BASE, kvm_commit_routes, v, &err) < 0)
        die("KVM: re-attaching the irqfds: %s", err->message);
    if (v->client_waiting) {
        reply(v->client_fd, "upgrade failed, rolled back, still running: %s\n", why);
        client_close(v);
    }
    if (st->upgrades_wanted) {
        st->upgrades_done++;
        upgrade_finished(v, false);
    }
}

static void kvm_print_timeline(vmm *v, bool good, const char *why)
{
    vmm_state *st = v->st;
    const mvg_mbox *g = &st->g, *mb = mbox(v);
    const liveness *a = &v->live_after;
    int64_t t0 = (int64_t)st->t_exec;
    char num[32], win[64], xfer[64] = "";
#define REL(t) ((int64_t)(t)-t0)

    upgrade_number(st, num, sizeof(num));
    if (v->incoming)
        say("---- upgrade %s, a transfer, generation %u, pid %d from pid %d; times from "
            "vfiocpr_transfer() ----", num, st->generation, (int)getpid(), (int)st->old_pid);
    else
        say("---- upgrade %s, generation %u, pid %d; times from vfiocpr_exec() ----", num,
            st->generation, (int)getpid());
    say("  old image %8" PRId64 " us  upgrade requested by %s", REL(st->t_requested),
        st->requested_by);
    say("  old image %8" PRId64 " us  vCPU stopped at a heartbeat: guest progress %" PRIu64
        ", cycle %" PRIu64, REL(st->t_stop), g->progress, g->cycles);
    say("  old image %8" PRId64 " us  vCPU and irqchip state saved (%zu bytes: registers, "
        "segments, control registers, FPU, TSC offset, LAPIC, PICs, IOAPIC, events, MP state)",
        REL(st->t_saved), sizeof(vcpu_save));
    say("  old image %8" PRId64 " us  irqfds detached; the helper raises %s",
        REL(st->t_handover), v->kind == DEV_E1000E ? "one MSI-X shot per vector, 10 ms apart"
                                                   : "an interrupt every 5 ms");
    if (v->incoming) {
        say("  new image %8" PRId64 " us  main() entered (pid %d, started by itself, waiting "
            "on %s)", REL(v->t_main), (int)getpid(), v->incoming);
        say("  new image %8" PRId64 " us  connection accepted", REL(v->t_accept));
        say("  old image %8" PRId64 " us  vfiocpr_transfer() to %s (pid %d)", REL(st->t_exec),
            st->exec_path, (int)st->old_pid);
        say("  new image %8" PRId64 " us  vfiocpr_new_incoming() prepare + send + receive + "
            "restore: state %" PRId64 " us  (%u fds received)", REL(v->t_ctx),
            (int64_t)(v->t_ctx - st->t_exec), v->inherited_fds);
    } else {
        say("  old image %8" PRId64 " us  vfiocpr_exec(\"%s\")", REL(st->t_exec), st->exec_path);
        say("  new image %8" PRId64 " us  main() entered      prepare + execve + load %7" PRId64
            " us", REL(v->t_main), (int64_t)(v->t_main - st->t_exec));
        say("  new image %8" PRId64 " us  vfiocpr_new()       restore: state          %7" PRId64
            " us  (%u fds inherited)", REL(v->t_ctx), (int64_t)(v->t_ctx - v->t_new),
            v->inherited_fds);
    }
    say("  new image %8" PRId64 " us  new VM, vCPU state restored into it",
        REL(v->t_vm));
    say("  new image %8" PRId64 " us  helper stopped: %u interrupts raised in the window "
        "(%+" PRId64 " .. %+" PRId64 " us), %s in the eventfd", REL(v->t_attach0),
        st->window_raised, REL(st->helper_t_first), REL(st->helper_t_last),
        v->handover_waiting ? "waiting" : "NOTHING waiting");
    say("  new image %8" PRId64 " us  irqfds attached     routes + KVM_IRQFD      %7" PRId64
        " us  (%d vector(s) pending)", REL(v->t_attach1),
        (int64_t)(v->t_attach1 - v->t_attach0), v->kvm_pending);
    say("  new image %8" PRId64 " us  vfiocpr_finish()", REL(v->t_finish));
    say("  new image %8" PRId64 " us  vCPU runs again", REL(v->t_run));
    say("  blackout (%s -> vfiocpr_finish) %" PRIu64 " us; vCPU stopped -> running "
        "%" PRIu64 " us; in library calls (new image) %" PRIu64 " us",
        v->incoming ? "vfiocpr_transfer" : "vfiocpr_exec", v->t_finish - st->t_exec,
        v->t_run - st->t_stop, v->lib_us);
    say("  the guest saw: a pause of %" PRIu64 " us (its own TSC: the largest gap between two "
        "of its ticks; before the upgrade at most %" PRIu64 " us); progress %" PRIu64 " -> %"
        PRIu64 " (first heartbeat) -> %" PRIu64 ", cycle %" PRIu64 " -> %" PRIu64,
        tsc_us(v, mb->max_gap), tsc_us(v, st->gap_before), g->progress, v->progress_resumed,
        mb->progress, g->cycles, mb->cycles);
    if (v->kind == DEV_E1000E) {
        GString *vs = g_string_new(NULL);
        for (unsigned n = 0; n < v->n_vectors; n++)
            g_string_append_printf(vs, "%s%u: raised %" PRIu64 " taken %" PRIu64 " (window %u)",
                                   n ? ", " : "", n,
                                   mb->done_raised_v[n] + st->helper_total_v[n],
                                   mb->done_taken_v[n], st->window_v[n]);
        say("  the guest's handlers, per MSI-X vector since the cold start: %s", vs->str);
        g_string_free(vs, TRUE);
    } else
    say("  the guest's handler: the window's %u interrupts arrived in %" PRIu64 " interrupt(s) "
        "of their own carrying %" PRIu64 " event(s), %" PRIu64 " more carried by later ones; "
        "its own: raised %" PRIu64 ", taken %" PRIu64 ", waited for in vain %" PRIu64,
        st->window_raised, mb->done_lone_runs - g->done_lone_runs,
        mb->done_lone_events - g->done_lone_events,
        (mb->done_taken_other - g->done_taken_other) - (mb->done_lone_events - g->done_lone_events),
        mb->done_raised, mb->done_taken_own, mb->missed);
    say("  %s since the cold start: the device raised %" PRIu64 " (guest %" PRIu64 ", helper %"
        PRIu64 "), the guest's handlers took %" PRIu64, irq_label(v), fired_total(v),
        fired_total(v) - st->helper_total, st->helper_total, guest_taken(v));
    if (v->kind == DEV_EDU)
        say("  the guest's DMA: %" PRIu64 " round trips checked since the upgrade, %" PRIu64
            " bad since the cold start", mb->dma_ok + mb->dma_bad - g->dma_ok - g->dma_bad,
            mb->dma_bad);
    else
        say("  the guest's DMA: none on e1000e (guest RAM is still DMA-mapped and re-pointed)");
    say("  not reset: PCI_COMMAND 0x%04x -> 0x%04x (bus master %s), %s control 0x%04x -> 0x%04x "
        "(%s), sysfs enable %s", st->cmd_before, a->cmd, a->bus_master ? "on" : "OFF",
        v->intx ? "MSI" : irq_label(v), st->irq_ctrl_before, a->irq_ctrl,
        v->intx ? "n/a for INTx" : a->irq_enabled ? "enabled" : "DISABLED",
        a->sysfs_enabled ? "1" : "0");
    if (v->kind == DEV_E1000E)
        snprintf(win, sizeof(win), "window %u, one per vector", st->window_raised);
    else
        snprintf(win, sizeof(win), "window %u in %" PRIu64 " interrupt(s)", st->window_raised,
                 mb->done_lone_runs - g->done_lone_runs);
    if (v->incoming)
        snprintf(xfer, sizeof(xfer), ", transfer from pid %d to pid %d", (int)st->old_pid,
                 (int)getpid());
    say("upgrade %s: %s: %s raised %" PRIu64 " = taken %" PRIu64 " by the guest%s, %s, guest "
        "pause %" PRIu64 " us, DMA %s, blackout %" PRIu64 " us%s%s%s", num, good ? "ok" : "FAILED",
        irq_label(v), fired_total(v), guest_taken(v),
        fired_total(v) == guest_taken(v) ? "" : " NOT EQUAL", win, tsc_us(v, mb->max_gap),
        v->kind != DEV_EDU ? "n/a" : mb->dma_bad ? "BAD" : "ok", v->t_finish - st->t_exec,
        xfer, why[0] ? ": " : "", why);
#undef REL
}

/* The new image's guest has finished two cycles since it was stopped: what it
 * counted in its own RAM says whether the upgrade lost, doubled or delayed anything. */
static void kvm_checkpoint(vmm *v)
{
    vmm_state *st = v->st;
    const mvg_mbox *g = &st->g, *mb = mbox(v);
    uint64_t win = st->window_raised;
    uint64_t other = mb->done_taken_other - g->done_taken_other;
    uint64_t lone_runs = mb->done_lone_runs - g->done_lone_runs;
    uint64_t lone_events = mb->done_lone_events - g->done_lone_events;
    uint64_t pause = tsc_us(v, mb->max_gap);
    GString *why = g_string_new(NULL);
    bool good;

    v->live_after = read_liveness(v);
    st->helper_total += win;
    if (v->kind == DEV_E1000E) {
        /* per vector: the guest's own shots, and the window's one, each taken once */
        for (unsigned n = 0; n < v->n_vectors; n++) {
            uint64_t want = mb->done_raised_v[n] + st->helper_total_v[n] + st->window_v[n];
            uint64_t win_taken = (mb->done_taken_v[n] - g->done_taken_v[n]) -
                                 (mb->done_raised_v[n] - g->done_raised_v[n]);
            st->helper_total_v[n] += st->window_v[n];
            if (mb->done_taken_v[n] != want || win_taken != st->window_v[n])
                g_string_append_printf(why, "; vector %u: raised %" PRIu64 ", taken %" PRIu64
                                       " (the window's %u: %" PRId64 ")", n, want,
                                       mb->done_taken_v[n], st->window_v[n], (int64_t)win_taken);
        }
        if (mb->missed)
            g_string_append_printf(why, "; the guest waited in vain %" PRIu64 " times",
                                   mb->missed);
    } else if (mb->done_raised != mb->done_taken_own || mb->missed)
        g_string_append_printf(why, "; the guest's own interrupts: raised %" PRIu64 ", taken %"
                               PRIu64, mb->done_raised, mb->done_taken_own);
    if (v->kind == DEV_EDU && (other != win || lone_events != win))
        g_string_append_printf(why, "; of the window's %" PRIu64 " the guest took %" PRIu64
                               " (%" PRIu64 " in interrupts of their own)", win, other,
                               lone_events);
    if (v->kind == DEV_EDU && lone_runs != (win ? 1u : 0u))
        g_string_append_printf(why, "; the window's interrupts came as %" PRIu64
                               " interrupts of their own, not 1", lone_runs);
    if (v->kind == DEV_EDU && (mb->dma_bad || mb->dma_ok <= g->dma_ok))
        g_string_append_printf(why, "; DMA: %" PRIu64 " bad, %" PRIu64 " good since the upgrade",
                               mb->dma_bad, mb->dma_ok - g->dma_ok);
    /* carried on where it was: a few ticks past the stop at its first heartbeat */
    if (v->progress_resumed <= g->progress || mb->progress <= v->progress_resumed)
        g_string_append_printf(why, "; the guest's progress went from %" PRIu64 " (stop) to %"
                               PRIu64 " (first heartbeat after the upgrade) to %" PRIu64,
                               g->progress, v->progress_resumed, mb->progress);
    if (!liveness_ok(v, &v->live_after))
        g_string_append(why, "; the device looks reset or closed");
    if (!v->handover_waiting && win)
        g_string_append(why, "; nothing waited in the eventfd for the new VM");
    if (mb->spurious)
        g_string_append_printf(why, "; %" PRIu64 " spurious interrupts", mb->spurious);
    if (v->incoming && (st->old_pid <= 0 || st->old_pid == getpid()))
        g_string_append_printf(why, "; a transfer from pid %d to itself", (int)st->old_pid);
    good = why->len == 0;
    st->upgrades_done++;
    st->blackout_sum += v->t_finish - st->t_exec;
    st->blackout_min = MIN(st->blackout_min, v->t_finish - st->t_exec);
    st->blackout_max = MAX(st->blackout_max, v->t_finish - st->t_exec);
    st->pause_sum += pause;
    st->pause_min = MIN(st->pause_min, pause);
    st->pause_max = MAX(st->pause_max, pause);
    st->stopped_sum += v->t_run - st->t_stop;
    st->lib_sum += v->lib_us;
    kvm_print_timeline(v, good, why->len ? why->str + 2 : "");
    g_string_free(why, TRUE);
    /* From here the next upgrade waits for a cycle of plain running, whose largest
     * gap is the "before the upgrade" of its timeline. */
    mbox(v)->max_gap = 0;
    v->kvm_cycles_base = mbox(v)->cycles;
    v->image_start = now_us();
    if (v->client_waiting) {
        reply(v->client_fd, "upgraded: generation %u, pid %d, blackout %" PRIu64 " us, guest "
              "pause %" PRIu64 " us: %s\n", st->generation, (int)getpid(),
              v->t_finish - st->t_exec, pause, good ? "ok" : "FAILED");
        client_close(v);
    }
    v->phase = WORK_IDLE;
    upgrade_finished(v, good);
}

static void kvm_exit(vmm *v)
{
    struct kvm_run *run = v->run;
    const mvg_mbox *mb = mbox(v);

    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == MVG_PORT_HEARTBEAT)
            return;
        if (run->io.port == MVG_PORT_FAULT)
            die("the guest took an exception at EIP 0x%x", mb->fault_eip);
        die("the guest used I/O port 0x%x", run->io.port);
    case KVM_EXIT_MMIO:
        die("the guest touched unbacked memory at 0x%llx",
            (unsigned long long)run->mmio.phys_addr);
    case KVM_EXIT_SHUTDOWN:
        die("the guest shut down (triple fault)");
    case KVM_EXIT_FAIL_ENTRY:
        die("KVM: entry failed, reason 0x%llx",
            (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
    case KVM_EXIT_INTERNAL_ERROR:
        die("KVM: internal error, suberror %u", run->internal.suberror);
    default:
        die("KVM: unexpected exit reason %u", run->exit_reason);
    }
}

/* The main loop under --kvm: the vCPU runs here, and between two heartbeats (about
 * 1 ms of guest time) the VMM looks at its fds without waiting. */
static int kvm_loop(vmm *v)
{
    mvg_mbox *mb = mbox(v);
    struct pollfd p[4];

    v->kvm_cycles_base = mb->cycles;
    while (!v->quit) {
        if (!v->t_run)
            v->t_run = now_us();
        if (ioctl(v->vcpu_fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            die("KVM_RUN: %s", g_strerror(errno));
        }
        kvm_exit(v);
        if (!v->progress_resumed)
            v->progress_resumed = mb->progress; /* the guest's first heartbeat here */
        v->cycles = (unsigned)(mb->cycles - v->kvm_cycles_base);
        p[0] = (struct pollfd){ .fd = v->timer_fd, .events = POLLIN };
        p[1] = (struct pollfd){ .fd = v->signal_fd, .events = POLLIN };
        p[2] = (struct pollfd){ .fd = v->listen_fd, .events = POLLIN };
        p[3] = (struct pollfd){ .fd = v->client_waiting ? -1 : v->client_fd, .events = POLLIN };
        if (poll(p, 4, 0) > 0) {
            uint64_t expirations;
            if (p[0].revents & POLLIN && read(v->timer_fd, &expirations, sizeof(expirations)) < 0)
                (void)0;
            prepare_ahead(v);
            if (p[1].revents & POLLIN)
                on_signal(v);
            if (p[2].revents & POLLIN)
                on_listen(v);
            if (p[3].revents & (POLLIN | POLLHUP) && v->client_fd >= 0)
                on_client(v);
        }
        if (v->phase == WORK_VERIFY &&
            (v->cycles >= 2 || now_us() - v->t_run > 60u * 1000000u))
            kvm_checkpoint(v);
        script(v);
        if (v->upgrade_pending && v->phase == WORK_IDLE && !v->quit)
            kvm_handover(v);
    }
    edu_wait_idle(v); /* leave no DMA of the guest's in flight */
    if (v->control_path)
        unlink(v->control_path);
    return v->exit_status;
}

/* ------------------------------------------------------------------ main */

static void print_cold_start(vmm *v)
{
    char sc[64];

    say("cold start, pid %d: %s %s (%04x:%04x), IOMMU group %d, container fd %d, device fd %d",
        (int)getpid(), device_label(v), v->bdf, v->vendor, v->device, v->group,
        vfiocpr_container_fd(v->container), vfiocpr_device_fd(v->dev));
    say("guest RAM: %u MiB memfd at %p, DMA-mapped at IOVA 0x%llx; %s: %u vector(s), eventfd %d%s",
        RAM_SIZE >> 20, (void *)v->ram, (unsigned long long)RAM_IOVA, irq_label(v), v->n_vectors,
        v->irq_fd[0], v->n_vectors > 1 ? "..." : "");
    say("IOMMU backend: %s", vfiocpr_backend_to_string(vfiocpr_container_backend(v->container)));
    if (using_kvm(v))
        say("KVM: VM fd %d, vCPU fd %d, TSC %u kHz; guest RAM at guest physical 0x%llx (= IOVA), "
            "BAR0 at 0x%x; the guest program %s drives the device; %s %s", v->vm_fd, v->vcpu_fd,
            v->tsc_khz, (unsigned long long)RAM_IOVA, MVG_BAR0, v->guest_image, irq_label(v),
            v->intx ? "through IOAPIC pin 20 with a resample irqfd"
                    : "through a KVM MSI route (GSI 24) and an irqfd");
    if (v->control_path)
        say("control socket %s: \"upgrade [PATH]\", \"status\", \"quit\"", v->control_path);
    if (v->wrapper) {
        g_autofree char *args = v->wrapper_args ? g_strjoinv(" ", v->wrapper_args) : NULL;
        g_autofree char *target = default_target(v);
        say("upgrades go through %s%s%s, to %s, falling back to this binary", v->wrapper,
            args ? " " : "", args ? args : "", target);
    } else if (v->transfer_to) {
        say("upgrades are transfers to the new process on %s", v->transfer_to);
    } else if (v->upgrade_to) {
        say("upgrades go to %s", v->upgrade_to);
    }
    if (v->fallback_reason)
        say("started as the wrapper's fallback (%s) without incoming state", v->fallback_reason);
    say("seccomp: %s", seccomp_text(sc, sizeof(sc)));
    say("%u fds registered for the next exec or transfer; SIGHUP upgrades%s",
        vfiocpr_fd_count(v->ctx), v->transfer_to ? " by a transfer" : " in place");
}

int main(int argc, char **argv)
{
    uint64_t t_main = now_us(); /* first: after a restart the clock is running */
    g_autoptr(GOptionContext) opts = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree gchar *device = NULL, *control = NULL, *send_line = NULL, *upgrade_to = NULL,
                     *wrapper = NULL;
    g_auto(GStrv) wrapper_args = NULL;
    gboolean kvm = FALSE, self_test = FALSE, forbidden = FALSE, intx = FALSE;
    g_autofree gchar *negative_name = NULL, *guest_image = NULL;
    g_autofree gchar *backend = NULL;
    g_autofree gchar *incoming = NULL, *incoming_fault_at = NULL, *transfer_to = NULL;
    gint upgrades = 0;
    GOptionEntry entries[] = {
        { "device", 'd', 0, G_OPTION_ARG_STRING, &device, "PCI device bound to vfio-pci", "BDF" },
        { "kvm", 0, 0, G_OPTION_ARG_NONE, &kvm,
          "run a VM whose guest drives the device (edu) itself", NULL },
        { "intx", 0, 0, G_OPTION_ARG_NONE, &intx,
          "--kvm: the device's INTx through the IOAPIC instead of MSI", NULL },
        { "guest-image", 0, 0, G_OPTION_ARG_FILENAME, &guest_image,
          "--kvm: the guest program (default: minivmm-guest.bin beside this binary)", "PATH" },
        { "negative", 0, 0, G_OPTION_ARG_STRING, &negative_name,
          "--kvm test: break the upgrade: set-irqs, set-irqs-same, wrong-gsi, "
          "irqfd-before-routes, keep-old-irqfds, cold-guest, ram-copy", "NAME" },
        { "control", 'c', 0, G_OPTION_ARG_FILENAME, &control, "UNIX control socket", "PATH" },
        { "upgrades", 'u', 0, G_OPTION_ARG_INT, &upgrades,
          "upgrade N times, then exit (0: all good)", "N" },
        { "self-test", 0, 0, G_OPTION_ARG_NONE, &self_test,
          "check a failed upgrade rolls back, then exit", NULL },
        { "upgrade-to", 0, 0, G_OPTION_ARG_FILENAME, &upgrade_to,
          "the binary an upgrade execs (default: this one)", "PATH" },
        { "wrapper", 0, 0, G_OPTION_ARG_FILENAME, &wrapper,
          "upgrade through this exec wrapper (vfiocpr-exec), with --fallback this binary",
          "PATH" },
        { "wrapper-arg", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &wrapper_args,
          "an option for the wrapper, before --fallback (repeatable)", "ARG" },
        { "forbidden-ioctl", 0, 0, G_OPTION_ARG_NONE, &forbidden,
          "test: after a restart, issue an ioctl no seccomp rule allows (SIGSYS under "
          "the wrapper's --seccomp)", NULL },
        { "incoming", 0, 0, G_OPTION_ARG_FILENAME, &incoming,
          "start as the new process of a transfer: listen on SOCKET for the old one", "SOCKET" },
        { "incoming-fault", 0, 0, G_OPTION_ARG_STRING, &incoming_fault_at,
          "--incoming test: SIGKILL this process at accepted, received or restored, or hang "
          "(hang)", "POINT" },
        { "transfer-to", 0, 0, G_OPTION_ARG_FILENAME, &transfer_to,
          "upgrades (--upgrades, SIGHUP) are transfers to the new process on SOCKET", "SOCKET" },
        { "send", 0, 0, G_OPTION_ARG_STRING, &send_line, "client: send LINE to --control", "LINE" },
        { "backend", 0, 0, G_OPTION_ARG_STRING, &backend,
          "IOMMU backend: type1 (default), iommufd or auto", "NAME" },
        { NULL },
    };
    /* GOption edits argv; the next image needs it, but not --incoming: an exec'd
     * image finds its state in the environment, it does not wait for a transfer */
    g_auto(GStrv) saved_argv = g_new0(char *, (gsize)argc + 1);
    vmm v = { .t_main = t_main, .argv = saved_argv, .ram_fd = -1, .state_fd = -1, .kvm_fd = -1,
              .vm_fd = -1, .vcpu_fd = -1, .old_vm_fd = -1, .vcpu_state_fd = -1, .timer_fd = -1,
              .signal_fd = -1, .listen_fd = -1, .client_fd = -1, .xfer_sock = -1 };

    for (int i = 0, n = 0; i < argc; i++) {
        if (strcmp(argv[i], "--incoming") == 0 || strcmp(argv[i], "--incoming-fault") == 0) {
            i++;
            continue;
        }
        if (g_str_has_prefix(argv[i], "--incoming=") ||
            g_str_has_prefix(argv[i], "--incoming-fault="))
            continue;
        saved_argv[n++] = g_strdup(argv[i]);
    }

    setvbuf(stdout, NULL, _IOLBF, 0);
    opts = g_option_context_new("- a VMM that upgrades itself while its VFIO device runs");
    g_option_context_add_main_entries(opts, entries, NULL);
    if (!g_option_context_parse(opts, &argc, &argv, &err))
        die("%s", err->message);
    if (send_line) {
        if (!control)
            die("--send needs --control PATH");
        return control_send(control, send_line);
    }
    if (!device || upgrades < 0)
        die("usage: minivmm --device BDF [--kvm] [--control PATH] [--upgrades N] [--self-test] "
            "[--upgrade-to PATH] [--wrapper PATH [--wrapper-arg ARG]...] [--forbidden-ioctl] "
            "[--transfer-to SOCKET] [--incoming SOCKET [--incoming-fault POINT]]");
    if (wrapper_args && !wrapper)
        die("--wrapper-arg without --wrapper");
    if ((wrapper && !*wrapper) || (upgrade_to && !*upgrade_to))
        die("--wrapper and --upgrade-to need a path");
    if ((intx || guest_image) && !kvm)
        die("--intx and --guest-image go with --kvm");
    /* without --kvm, the controls of minivmm's own checks after an upgrade */
    if (negative_name && !kvm && strcmp(negative_name, "ram-copy") != 0 &&
        strcmp(negative_name, "irq-drain") != 0 && strcmp(negative_name, "bus-master-off") != 0)
        die("--negative %s goes with --kvm (without it: ram-copy, irq-drain, bus-master-off)",
            negative_name);
    if (kvm && (self_test || wrapper || forbidden))
        die("--kvm runs without --self-test, --wrapper and --forbidden-ioctl");
    if ((incoming || transfer_to) && self_test)
        die("--incoming and --transfer-to run without --self-test");
    if ((incoming && !*incoming) || (transfer_to && !*transfer_to))
        die("--incoming and --transfer-to need a socket path");
    if (incoming_fault_at && !incoming)
        die("--incoming-fault goes with --incoming");
    if (incoming_fault_at && strcmp(incoming_fault_at, "accepted") != 0 &&
        strcmp(incoming_fault_at, "received") != 0 && strcmp(incoming_fault_at, "restored") != 0 &&
        strcmp(incoming_fault_at, "hang") != 0)
        die("unknown --incoming-fault %s (accepted, received, restored, hang)", incoming_fault_at);
    if (negative_name && kvm && strcmp(negative_name, "set-irqs") != 0 &&
        strcmp(negative_name, "set-irqs-same") != 0 &&
        strcmp(negative_name, "wrong-gsi") != 0 && strcmp(negative_name, "irqfd-before-routes") != 0 &&
        strcmp(negative_name, "keep-old-irqfds") != 0 && strcmp(negative_name, "cold-guest") != 0 &&
        strcmp(negative_name, "ram-copy") != 0)
        die("unknown --negative %s", negative_name);
    if (kvm && !guest_image) {
        g_autofree char *self = self_path();
        g_autofree char *dir = self ? g_path_get_dirname(self) : g_strdup(".");
        guest_image = g_build_filename(dir, "minivmm-guest.bin", NULL);
    }
    v.bdf = device;
    if (!backend || strcmp(backend, "type1") == 0)
        v.backend = VFIOCPR_BACKEND_TYPE1;
    else if (strcmp(backend, "iommufd") == 0)
        v.backend = VFIOCPR_BACKEND_IOMMUFD;
    else if (strcmp(backend, "auto") == 0)
        v.backend = VFIOCPR_BACKEND_AUTO;
    else
        die("--backend %s: type1, iommufd or auto", backend);
    v.want_kvm = kvm;
    v.intx = intx;
    v.negative = negative_name;
    v.guest_image = guest_image;
    v.control_path = control;
    v.upgrades = (unsigned)upgrades;
    v.self_test = self_test;
    v.upgrade_to = upgrade_to;
    v.wrapper = wrapper;
    v.wrapper_args = wrapper_args;
    v.forbidden_ioctl = forbidden;
    v.incoming = incoming;
    v.incoming_fault = incoming_fault_at;
    v.transfer_to = transfer_to;
    /* Started by the wrapper as OLD: why. Not for our own next image. */
    if (g_getenv("VFIOCPR_EXEC_FALLBACK")) {
        v.fallback_reason = g_strdup(g_getenv("VFIOCPR_EXEC_FALLBACK"));
        g_unsetenv("VFIOCPR_EXEC_FALLBACK");
    }

    vmm_start(&v);
    loop_start(&v);
    v.image_start = now_us();
    if (!v.restart) {
        print_cold_start(&v);
    } else if (using_kvm(&v)) {
        v.phase = WORK_VERIFY; /* the guest's own counts, once it has run a little */
    } else if (v.kind == DEV_EDU) {
        /* the first work of a new image: fetch what the old one left in the device */
        edu_fetch(&v, WORK_VERIFY, v.st->seed);
    } else {
        v.phase = WORK_VERIFY; /* e1000e: a quiet time, then the count */
        v.phase_since = now_us();
    }
    {
        int rc = using_kvm(&v) ? kvm_loop(&v) : main_loop(&v);
        /* quitting: drop the handles (never closes a VFIO fd: process exit does) */
        vfiocpr_device_unref(v.dev);
        vfiocpr_container_unref(v.container);
        vfiocpr_unref(v.ctx);
        g_free(v.fallback_reason);
        g_free(v.upgrade_path); /* the last requested upgrade, if it failed */
        g_free(v.upgrade_sock);
        return rc;
    }
}
