/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the transfer handover on the fake kernel. The old process is the main
 * thread; the new one is a second thread that the fake kernel treats as a process of
 * its own (locked-memory accounting), receiving dups of the old fds over a real
 * socketpair, exactly as across processes. Fault points, bad peers (a raw peer
 * written from the protocol description) and fault sweeps of both sides. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "fake-kernel.h"
#include "golden-v1.h"
#include "testutil.h"
#include "transfer-peer.h"
#include "vfio-compat.h"

#define RAM_SIZE (4u << 20)
#define N_MAPS 4
#define MAP_SIZE (RAM_SIZE / N_MAPS)
#define IOVA0 0x100000ull
#define BDF "0000:00:03.0"
#define GSI0 24

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c;
    vfiocpr_device *dev;
    int ram;
    guint8 *va;
    int vm;
    int vec[2];
} vmm;

static vfiocpr_backend backend;

/* The VMM's start-up: the same code for a cold start and a restart. */
static int vmm_start(vmm *m, GError **error)
{
    int r, kvm;

    r = vfiocpr_fd_find(m->ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, NULL);
    if (r == -ENOENT) {
        m->ram = memfd_create("guest-ram", MFD_CLOEXEC);
        g_assert_cmpint(ftruncate(m->ram, RAM_SIZE), ==, 0);
        r = vfiocpr_fd_save(m->ctx, "guest-ram", 0, m->ram, VFIOCPR_FD_MEMFD, error);
    } else {
        m->ram = r;
    }
    if (r < 0)
        return r;
    m->va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->ram, 0);
    g_assert_true(m->va != MAP_FAILED);
    if ((r = vfiocpr_container_open_backend(m->ctx, "c0", backend, &m->c, error)) < 0 ||
        (r = vfiocpr_device_attach(m->c, BDF, &m->dev, error)) < 0)
        return r;
    for (unsigned i = 0; i < N_MAPS; i++)
        if ((r = vfiocpr_dma_map(m->c, IOVA0 + i * MAP_SIZE, MAP_SIZE, m->va + i * MAP_SIZE,
                                 m->ram, i * MAP_SIZE, 3, error)) < 0)
            return r;
    if ((r = vfiocpr_irq_enable(m->dev, VFIOCPR_IRQ_MSIX, 0, 2, NULL, m->vec, error)) < 0)
        return r;
    for (unsigned i = 0; i < 2; i++)
        if ((r = vfiocpr_irq_set_msi(m->dev, VFIOCPR_IRQ_MSIX, i, 0xfee00000, 0x40 + i, false,
                                     error)) < 0)
            return r;
    /* each process has its own VM */
    kvm = seam_unrecorded()->open("/dev/kvm", O_RDWR);
    m->vm = seam_unrecorded()->ioctl(kvm, KVM_CREATE_VM, 0);
    r = vfiocpr_kvm_attach(m->ctx, m->vm, GSI0, NULL, NULL, error);
    return r < 0 ? r : 0;
}

static void vmm_drop(vmm *m)
{
    vfiocpr_device_unref(m->dev);
    vfiocpr_container_unref(m->c);
    vfiocpr_unref(m->ctx);
    if (m->va)
        munmap(m->va, RAM_SIZE);
    memset(m, 0, sizeof(*m));
}

static void cold_start(vmm *m)
{
    g_autoptr(GError) err = NULL;
    g_assert_cmpint(vfiocpr_new(0, &m->ctx, &err), ==, 0);
    g_assert_cmpint(vmm_start(m, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_finish(m->ctx, NULL, &err), ==, 0);
}

/* The old process runs on, as if nothing happened: DMA at its own addresses, its pins
 * its own, its irqfds on its VM, and it can still change its mappings. */
static void assert_old_carries_on(vmm *m)
{
    g_autoptr(GError) err = NULL;
    int cfd = vfiocpr_container_fd(m->c);

    for (unsigned i = 0; i < N_MAPS; i++) {
        if (backend == VFIOCPR_BACKEND_TYPE1) {
            guint64 vaddr = 0;
            g_assert_cmpint(fake_vfio_dma(cfd, IOVA0 + i * MAP_SIZE, NULL, &vaddr), ==, 1);
            g_assert_cmphex(vaddr, ==, (guint64)(uintptr_t)(m->va + i * MAP_SIZE));
        } else {
            g_assert_true(fake_iommufd_mapped(cfd, IOVA0 + i * MAP_SIZE, NULL));
        }
    }
    if (backend == VFIOCPR_BACKEND_IOMMUFD)
        g_assert_cmpuint(fake_kernel_locked(), ==, RAM_SIZE);
    g_assert_cmpint(fake_kvm_irqfd_gsi(m->vm, m->vec[0]), ==, GSI0);
    g_assert_cmpint(fake_kvm_irqfd_gsi(m->vm, m->vec[1]), ==, GSI0 + 1);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    g_assert_cmpuint(fake_vfio_irq_rerequests(), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(m->c, 0x10000000, MAP_SIZE, m->va, m->ram, 0, 3, &err), ==,
                    0);
    g_assert_cmpint(vfiocpr_dma_unmap(m->c, 0x10000000, MAP_SIZE, &err), ==, 0);
    g_assert_no_error(err);
}

/* ------------------------------------------------------------ the new process */

typedef enum {
    NEW_GOOD,
    NEW_DIES_BEFORE_RECEIVE, /* the socket closes before anything is read */
    NEW_DIES_AFTER_RECEIVE,  /* after vfiocpr_new_incoming(), nothing restored */
    NEW_DIES_AFTER_REMAP,    /* after its start-up (type1: vaddrs re-mapped), no finish */
    NEW_HANGS,               /* stops answering after its start-up */
    NEW_REFUSES,             /* drops its context: the VMM does not want the devices */
} new_mode;

typedef struct {
    int sock;
    new_mode mode;
    unsigned hang_ms;
    int rc_incoming, rc_start, rc_finish;
    char *finish_msg;
    guint64 locked_after;
    int dfd, cfd;
    guint8 *va;
    vmm m;
} new_proc;

/* The fds open now (once the old process has sent everything and waits). */
static GHashTable *fd_snapshot(void)
{
    GHashTable *set = g_hash_table_new(g_direct_hash, g_direct_equal);
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;

    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            g_hash_table_add(set, GINT_TO_POINTER(atoi(de->d_name)));
    closedir(d);
    return set;
}

/* A process that exits closes every fd it had: here, every fd opened since. */
static void die(new_proc *n, GHashTable *before)
{
    g_autoptr(GHashTable) now = fd_snapshot();
    GHashTableIter it;
    gpointer k;

    shutdown(n->sock, SHUT_RDWR); /* what the old process sees of a kill -9 */
    vmm_drop(&n->m);
    g_hash_table_iter_init(&it, now);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (!g_hash_table_contains(before, k) && GPOINTER_TO_INT(k) != n->sock)
            close(GPOINTER_TO_INT(k));
}

static gpointer new_process(gpointer p)
{
    new_proc *n = p;
    g_autoptr(GError) err = NULL;
    g_autoptr(GHashTable) before = NULL;

    fake_kernel_become_process(G_MAXUINT64);
    if (n->mode == NEW_DIES_BEFORE_RECEIVE) {
        close(n->sock);
        return NULL;
    }
    peer_readable(n->sock, 2000);
    g_usleep(20000); /* the old process is done sending: its fds are all open */
    before = fd_snapshot();
    n->rc_incoming = vfiocpr_new_incoming(n->sock, 2000, 0, &n->m.ctx, &err);
    if (n->rc_incoming < 0)
        return NULL;
    if (n->mode == NEW_DIES_AFTER_RECEIVE) {
        die(n, before);
        return NULL;
    }
    n->rc_start = vmm_start(&n->m, &err);
    g_clear_error(&err);
    n->dfd = n->m.dev ? vfiocpr_device_fd(n->m.dev) : -1;
    n->cfd = n->m.c ? vfiocpr_container_fd(n->m.c) : -1;
    n->va = n->m.va;
    if (n->mode == NEW_DIES_AFTER_REMAP) {
        die(n, before);
        return NULL;
    }
    if (n->mode == NEW_REFUSES) {
        vmm_drop(&n->m); /* tells the old process to take over */
        die(n, before);
        return NULL;
    }
    if (n->mode == NEW_HANGS)
        g_usleep(n->hang_ms * 1000);
    n->rc_finish = vfiocpr_finish(n->m.ctx, NULL, &err);
    n->finish_msg = err ? g_strdup(err->message) : NULL;
    n->locked_after = fake_kernel_locked();
    if (n->rc_finish < 0) {
        /* it must not go on: the old process has the devices */
        g_clear_error(&err);
        g_assert_cmpint(vfiocpr_dma_unmap(n->m.c, IOVA0, MAP_SIZE, &err), ==, -EBUSY);
        die(n, before);
    }
    return NULL;
}

static void setup(void)
{
    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
    fake_vfio_add_group(12, BDF, false);
    fake_iommufd_enable(true);
    fake_kvm_enable();
}

static void socket_pair(int sv[2])
{
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
}

/* One transfer attempt from old to a new process in mode; returns vfiocpr_transfer's
 * result and the new process's record (joined). */
static int transfer_to(vmm *old, new_proc *n, unsigned timeout_ms, GError **error)
{
    int sv[2], r;
    GThread *t;

    socket_pair(sv);
    n->sock = sv[1];
    t = g_thread_new("new-vmm", new_process, n);
    r = vfiocpr_transfer(old->ctx, sv[0], timeout_ms, 0, error);
    g_thread_join(t);
    close(sv[0]);
    if (n->mode != NEW_DIES_BEFORE_RECEIVE)
        close(sv[1]);
    return r;
}

/* good-prepared: the state encoded ahead (vfiocpr_state_prepare), and the transfer
 * uses it (compared with a fresh encoding, as every unit test handover is) */
static bool prepare_first;

static void test_good(gpointer fixture G_GNUC_UNUSED, gconstpointer data)
{
    vmm old = { 0 };
    new_proc n = { .mode = NEW_GOOD };
    g_autoptr(GError) err = NULL;
    unsigned binds, allocs, group_sets, hits = vfiocpr_prepared_hits;
    int ofd, ocfd;

    backend = GPOINTER_TO_INT(data);
    cold_start(&old);
    if (prepare_first) {
        g_assert_cmpint(vfiocpr_state_prepare(old.ctx, &err), ==, 0);
        g_assert_no_error(err);
    }
    binds = fake_vfio_ioctls(VFIO_DEVICE_BIND_IOMMUFD);
    allocs = fake_vfio_ioctls(IOMMU_IOAS_ALLOC);
    group_sets = fake_vfio_ioctls(VFIO_GROUP_SET_CONTAINER);
    ofd = vfiocpr_device_fd(old.dev);
    ocfd = vfiocpr_container_fd(old.c);

    g_assert_cmpint(transfer_to(&old, &n, 5000, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(n.rc_incoming, ==, 0);
    g_assert_cmpint(n.rc_start, ==, 0);
    g_assert_cmpint(n.rc_finish, ==, 0);
    g_assert_cmpuint(vfiocpr_prepared_hits - hits, ==, prepare_first ? 1 : 0);
    /* the new process holds the same objects under its own numbers */
    g_assert_cmpint(n.dfd, !=, ofd);
    g_assert_cmpint(n.cfd, !=, ocfd);
    /* nothing that would re-attach, reset or re-request */
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_BIND_IOMMUFD), ==, binds);
    g_assert_cmpuint(fake_vfio_ioctls(IOMMU_IOAS_ALLOC), ==, allocs);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_GROUP_SET_CONTAINER), ==, group_sets);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_SET_IRQS), ==, 1);
    g_assert_cmpuint(fake_vfio_ioctls(VFIO_DEVICE_RESET), ==, 0);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    if (backend == VFIOCPR_BACKEND_TYPE1) {
        guint64 vaddr = 0;
        g_assert_cmpint(fake_vfio_dma(ocfd, IOVA0, NULL, &vaddr), ==, 1);
        g_assert_cmphex(vaddr, ==, (guint64)(uintptr_t)n.va); /* the new process's address */
    } else {
        /* the pins moved to the new process */
        g_assert_cmpuint(n.locked_after, ==, RAM_SIZE);
        g_assert_cmpuint(fake_kernel_locked(), ==, 0);
    }
    /* the new VM took the vectors; the old one has none */
    g_assert_cmpint(fake_kvm_irqfd_gsi(n.m.vm, n.m.vec[0]), ==, GSI0);
    g_assert_cmpint(fake_kvm_irqfd_gsi(old.vm, old.vec[0]), ==, -1);

    /* the old process must not touch the devices again */
    g_assert_cmpint(vfiocpr_dma_unmap(old.c, IOVA0, MAP_SIZE, &err), ==, -EBUSY);
    g_assert_nonnull(strstr(err->message, "handed over to pid"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_irq_disable(old.dev, VFIOCPR_IRQ_MSIX, &err), ==, -EBUSY);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_device_close(old.dev, &err), ==, -EBUSY);
    g_clear_error(&err);
    {
        int sv[2];
        socket_pair(sv);
        g_assert_cmpint(vfiocpr_transfer(old.ctx, sv[0], 100, 0, &err), ==, -EALREADY);
        g_clear_error(&err);
        close(sv[0]);
        close(sv[1]);
    }
    /* but it may close its fds and exit: the new process holds the same files, so
     * nothing is reset */
    seam_unrecorded()->close(ofd);
    seam_unrecorded()->close(ocfd);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    {
        struct vfio_region_info ri = { .argsz = sizeof(ri) };
        g_assert_cmpint(seam_unrecorded()->ioctl(n.dfd, VFIO_DEVICE_GET_REGION_INFO, &ri), ==, 0);
    }
    /* negative control of that check: the last holder's close is seen */
    seam_unrecorded()->close(n.dfd);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 1);
    vmm_drop(&old);
    vmm_drop(&n.m);
    g_free(n.finish_msg);
}

/* Each way a new process can fail; after each the old one carries on and then a
 * transfer to a good new process goes through. */
static void test_good_prepared(gpointer fixture, gconstpointer data)
{
    prepare_first = true;
    test_good(fixture, data);
    prepare_first = false;
}

static void test_fault_points(gpointer fixture G_GNUC_UNUSED, gconstpointer data)
{
    static const struct {
        new_mode mode;
        int err;
        const char *msg;
    } points[] = {
        { NEW_DIES_BEFORE_RECEIVE, EPIPE, "failed after step 'none'" },
        { NEW_DIES_AFTER_RECEIVE, EPIPE, "after step 'validated'" },
        { NEW_DIES_AFTER_REMAP, EPIPE, "after step 'restoring'" },
        { NEW_HANGS, ETIMEDOUT, "did not commit in time after step 'restoring'" },
        { NEW_REFUSES, ECANCELED, "refused after step 'restoring': the new process dropped" },
    };
    vmm old = { 0 };

    backend = GPOINTER_TO_INT(data);
    cold_start(&old);
    for (gsize i = 0; i < G_N_ELEMENTS(points); i++) {
        g_autoptr(GError) err = NULL;
        new_proc n = { .mode = points[i].mode, .hang_ms = 700 };
        unsigned fds = tu_count_open_fds();
        int r = transfer_to(&old, &n, points[i].mode == NEW_HANGS ? 300 : 5000, &err);

        g_test_message("fault point %zu: %s", i, err ? err->message : "-");
        g_assert_nonnull(strstr(err->message, "transfer: rolled back: "));
        if (points[i].mode == NEW_DIES_BEFORE_RECEIVE) {
            /* it may die before or after the old process sent everything */
            g_assert_true(r == -EPIPE || r == -ECONNRESET);
            g_assert_true(strstr(err->message, points[i].msg) ||
                          strstr(err->message, "the peer is gone"));
        } else {
            g_assert_cmpint(r, ==, -points[i].err);
            g_assert_nonnull(strstr(err->message, "transfer: rolled back: wait for commit"));
            g_assert_nonnull(strstr(err->message, points[i].msg));
        }
        g_assert_cmpuint(tu_count_open_fds(), ==, fds);
        assert_old_carries_on(&old);
        if (points[i].mode == NEW_HANGS) {
            /* it woke up late: its commit goes unanswered and it must not go on */
            g_assert_cmpint(n.rc_finish, ==, -EPIPE);
            g_assert_nonnull(strstr(n.finish_msg, "must not touch them"));
            g_free(n.finish_msg);
        }
    }
    {
        g_autoptr(GError) err = NULL;
        new_proc n = { .mode = NEW_GOOD };
        g_assert_cmpint(transfer_to(&old, &n, 5000, &err), ==, 0);
        g_assert_no_error(err);
        g_assert_cmpint(n.rc_finish, ==, 0);
        vmm_drop(&n.m);
    }
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    vmm_drop(&old);
}

/* Before its commit the new process cannot change what the old one could not take
 * back. */
static gpointer new_tries_changes(gpointer p)
{
    new_proc *n = p;
    g_autoptr(GError) err = NULL;

    fake_kernel_become_process(G_MAXUINT64);
    n->rc_incoming = vfiocpr_new_incoming(n->sock, 2000, 0, &n->m.ctx, &err);
    g_assert_cmpint(n->rc_incoming, ==, 0);
    g_assert_cmpint(vmm_start(&n->m, &err), ==, 0);
    g_assert_cmpint(vfiocpr_dma_map(n->m.c, 0x10000000, MAP_SIZE, n->m.va, n->m.ram, 0, 3, &err),
                    ==, -EBUSY);
    g_assert_nonnull(strstr(err->message, "not before the transfer is committed"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_dma_unmap(n->m.c, IOVA0, MAP_SIZE, &err), ==, -EBUSY);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_irq_disable(n->m.dev, VFIOCPR_IRQ_MSIX, &err), ==, -EBUSY);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_irq_enable(n->m.dev, VFIOCPR_IRQ_MSIX, 2, 1, NULL, NULL, &err), ==,
                    -EBUSY);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_device_close(n->m.dev, &err), ==, -EBUSY);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_container_close(n->m.c, &err), ==, -EBUSY);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_mig_set_state(n->m.dev, VFIOCPR_MIG_STOP, VFIOCPR_MIG_ERROR, &err),
                    ==, -EBUSY);
    g_clear_error(&err);
    {
        char *argv[] = { (char *)"x", NULL };
        g_assert_cmpint(vfiocpr_exec(n->m.ctx, "/x", argv, NULL, &err), ==, -EBUSY);
        g_clear_error(&err);
    }
    n->rc_finish = vfiocpr_finish(n->m.ctx, NULL, &err);
    g_assert_no_error(err);
    /* committed: the same calls now work */
    g_assert_cmpint(vfiocpr_dma_map(n->m.c, 0x10000000, MAP_SIZE, n->m.va, n->m.ram, 0, 3, &err),
                    ==, 0);
    g_assert_no_error(err);
    return NULL;
}

static void test_new_side_rules(void)
{
    vmm old = { 0 };
    new_proc n = { 0 };
    g_autoptr(GError) err = NULL;
    int sv[2];
    GThread *t;

    backend = VFIOCPR_BACKEND_TYPE1;
    cold_start(&old);
    socket_pair(sv);
    n.sock = sv[1];
    t = g_thread_new("new-vmm", new_tries_changes, &n);
    g_assert_cmpint(vfiocpr_transfer(old.ctx, sv[0], 5000, 0, &err), ==, 0);
    g_thread_join(t);
    g_assert_cmpint(n.rc_finish, ==, 0);
    g_assert_cmpuint(fake_vfio_irq_rerequests(), ==, 0);
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    close(sv[0]);
    close(sv[1]);
    vmm_drop(&n.m);
    vmm_drop(&old);
}

/* ------------------------------------------------------------ bad peers */

typedef enum {
    BAD_GARBAGE,
    BAD_TRUNCATED,
    BAD_FDS_ON_STEP,
    BAD_UNKNOWN_TYPE,
    BAD_HUGE_LENGTH,
} bad_old_side;

typedef struct {
    int sock;
    bad_old_side what;
} raw_peer;

/* A new process that reads what the old one sends, then misbehaves. */
static gpointer bad_new_process(gpointer p)
{
    raw_peer *b = p;
    peer_offer o;
    int efd = eventfd(0, EFD_CLOEXEC);

    g_assert_cmpint(peer_recv_offer(b->sock, &o, 2000), ==, 0);
    peer_offer_close(&o);
    switch (b->what) {
    case BAD_GARBAGE:
        g_assert_cmpint(write(b->sock, "garbage! garbage! garbage!", 26), ==, 26);
        break;
    case BAD_TRUNCATED:
        g_assert_cmpint(write(b->sock, "\x56\x43\x50\x54\x03", 5), ==, 5);
        break;
    case BAD_FDS_ON_STEP:
        g_assert_cmpint(peer_send(b->sock, VFIOCPR_XFER_STEP, "x", 1, &efd, 1), ==, 0);
        break;
    case BAD_UNKNOWN_TYPE:
        g_assert_cmpint(peer_send(b->sock, 77, NULL, 0, NULL, 0), ==, 0);
        break;
    case BAD_HUGE_LENGTH: {
        peer_hdr h = { PEER_MAGIC, VFIOCPR_XFER_STEP, 0, 1u << 30, 0 };
        g_assert_cmpint(write(b->sock, &h, sizeof(h)), ==, sizeof(h));
        break;
    }
    }
    close(efd);
    /* then it dies */
    shutdown(b->sock, SHUT_RDWR);
    return NULL;
}

static void test_bad_new_peers(void)
{
    vmm old = { 0 };

    backend = VFIOCPR_BACKEND_TYPE1;
    cold_start(&old);
    for (int what = BAD_GARBAGE; what <= BAD_HUGE_LENGTH; what++) {
        g_autoptr(GError) err = NULL;
        raw_peer b = { .what = what };
        unsigned fds = tu_count_open_fds();
        int sv[2], r;
        GThread *t;

        socket_pair(sv);
        b.sock = sv[1];
        t = g_thread_new("bad-peer", bad_new_process, &b);
        r = vfiocpr_transfer(old.ctx, sv[0], 2000, 0, &err);
        g_thread_join(t);
        g_test_message("bad new process %d: %s", what, err->message);
        g_assert_cmpint(r, <, 0);
        g_assert_nonnull(strstr(err->message, "rolled back"));
        if (what != BAD_TRUNCATED)
            g_assert_cmpint(r, ==, -EPROTO);
        close(sv[0]);
        close(sv[1]);
        g_assert_cmpuint(tu_count_open_fds(), ==, fds);
        assert_old_carries_on(&old);
    }
    vmm_drop(&old);
}

/* A transfer captured from a real old process: the state memfd and the fds it sent
 * (dups), and the raw old side that replays it to the library's new side. */
typedef struct {
    int state_fd;
    GArray *fds;
} capture;

typedef struct {
    int sock;
    capture *cap;
    int variant;
    int refuse_seen;
    bool commit_seen;
} replay;

typedef struct {
    int sock;
    capture *cap;
} capture_job;

static gpointer capture_peer(gpointer p)
{
    capture_job *j = p;
    peer_offer o;

    g_assert_cmpint(peer_recv_offer(j->sock, &o, 2000), ==, 0);
    j->cap->state_fd = o.state_fd;
    j->cap->fds = o.fds;
    peer_send_text(j->sock, VFIOCPR_XFER_REFUSE, "captured, thank you");
    return NULL;
}

static void capture_transfer(vmm *old, capture *cap)
{
    g_autoptr(GError) err = NULL;
    capture_job j = { .cap = cap };
    int sv[2];
    GThread *t;

    socket_pair(sv);
    j.sock = sv[1];
    t = g_thread_new("capture", capture_peer, &j);
    g_assert_cmpint(vfiocpr_transfer(old->ctx, sv[0], 2000, 0, &err), ==, -ECANCELED);
    g_thread_join(t);
    close(sv[0]);
    close(sv[1]);
}

static void capture_free(capture *cap)
{
    peer_offer o = { cap->state_fd, cap->fds };
    peer_offer_close(&o);
}

static int dup_all(const capture *cap, int *state, int *fds)
{
    *state = dup(cap->state_fd);
    for (guint i = 0; i < cap->fds->len; i++)
        fds[i] = dup(g_array_index(cap->fds, int, i));
    return (int)cap->fds->len;
}

/* The raw old side: variant 0 sends the capture faithfully and answers the commit;
 * the others send something wrong. */
static gpointer replay_old(gpointer p)
{
    replay *r = p;
    int state, fds[64], n = dup_all(r->cap, &state, fds);
    guint8 buf[8193];
    guint32 len, total;
    int in[300];
    unsigned n_in;
    guint type;

    switch (r->variant) {
    case 0:
        peer_send_offer(r->sock, state, fds, n);
        break;
    case 1: /* OFFER without the state memfd */
        total = n;
        peer_send(r->sock, VFIOCPR_XFER_OFFER, &total, 4, NULL, 0);
        break;
    case 2: /* announces one fd more than it sends, then hangs up */
        total = n + 1;
        peer_send(r->sock, VFIOCPR_XFER_OFFER, &total, 4, &state, 1);
        total = 0;
        peer_send(r->sock, VFIOCPR_XFER_FDS, &total, 4, fds, n);
        shutdown(r->sock, SHUT_WR);
        break;
    case 3: /* a batch that starts in the wrong place */
        total = n;
        peer_send(r->sock, VFIOCPR_XFER_OFFER, &total, 4, &state, 1);
        total = 1;
        peer_send(r->sock, VFIOCPR_XFER_FDS, &total, 4, fds, n);
        break;
    case 4: { /* more fds in one message than a batch may carry (the kernel takes 253) */
        int many[252];
        for (int i = 0; i < 252; i++)
            many[i] = fds[0];
        total = 252;
        peer_send(r->sock, VFIOCPR_XFER_OFFER, &total, 4, &state, 1);
        total = 0;
        g_assert_cmpint(peer_send(r->sock, VFIOCPR_XFER_FDS, &total, 4, many, 252), ==, 0);
        break;
    }
    case 5: /* one fd fewer than the state's records: index out of range */
        peer_send_offer(r->sock, state, fds, n - 1);
        break;
    case 6: { /* two fds of different files swapped: the identity check catches it (two
               * eventfds share one anon inode, so a swap of those is not a swap) */
        struct stat s0, sj;
        int j = 1, t;
        g_assert_cmpint(fstat(fds[0], &s0), ==, 0);
        for (; j < n; j++) {
            g_assert_cmpint(fstat(fds[j], &sj), ==, 0);
            if (sj.st_dev != s0.st_dev || sj.st_ino != s0.st_ino)
                break;
        }
        g_assert_cmpint(j, <, n);
        t = fds[0];
        fds[0] = fds[j];
        fds[j] = t;
        peer_send_offer(r->sock, state, fds, n);
        break;
    }
    case 7: /* garbage instead of an OFFER */
        g_assert_cmpint(write(r->sock, "no protocol at all, none", 24), ==, 24);
        break;
    }
    close(state);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    /* answer a commit; note a refusal */
    while (peer_recv(r->sock, &type, buf, &len, in, &n_in, 3000) == 0) {
        for (unsigned i = 0; i < n_in; i++)
            close(in[i]);
        if (type == VFIOCPR_XFER_REFUSE)
            r->refuse_seen++;
        if (type == VFIOCPR_XFER_COMMIT) {
            r->commit_seen = true;
            peer_send(r->sock, VFIOCPR_XFER_RELEASED, NULL, 0, NULL, 0);
            break;
        }
    }
    return NULL;
}

/* The library's new side against a misbehaving old one: a clear error, nothing
 * leaked, a refusal sent where the socket still works. */
static void test_bad_old_peers(void)
{
    vmm old = { 0 };
    capture cap = { 0 };

    backend = VFIOCPR_BACKEND_IOMMUFD;
    cold_start(&old);
    capture_transfer(&old, &cap);
    for (int variant = 1; variant <= 7; variant++) {
        g_autoptr(GError) err = NULL;
        g_autoptr(vfiocpr) ctx = NULL;
        replay r = { .cap = &cap, .variant = variant };
        unsigned fds = tu_count_open_fds();
        int sv[2], rc;
        GThread *t;

        socket_pair(sv);
        r.sock = sv[0];
        t = g_thread_new("old", replay_old, &r);
        rc = vfiocpr_new_incoming(sv[1], 1000, 0, &ctx, &err);
        shutdown(sv[1], SHUT_RDWR);
        g_thread_join(t);
        g_test_message("bad old process %d: %s", variant, err ? err->message : "-");
        g_assert_cmpint(rc, <, 0);
        g_assert_null(ctx);
        g_assert_nonnull(err);
        g_assert_nonnull(strstr(err->message, "transfer from pid"));
        if (variant != 2)
            g_assert_cmpint(r.refuse_seen, ==, 1);
        close(sv[0]);
        close(sv[1]);
        g_assert_cmpuint(tu_count_open_fds(), ==, fds);
    }
    g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
    /* the capture itself restores: the variants failed for their own reasons */
    {
        g_autoptr(GError) err = NULL;
        replay r = { .cap = &cap, .variant = 0 };
        vmm n = { 0 };
        int sv[2];
        GThread *t;

        socket_pair(sv);
        r.sock = sv[0];
        t = g_thread_new("old", replay_old, &r);
        g_assert_cmpint(vfiocpr_new_incoming(sv[1], 1000, 0, &n.ctx, &err), ==, 0);
        g_assert_cmpint(vmm_start(&n, &err), ==, 0);
        g_assert_cmpint(vfiocpr_finish(n.ctx, NULL, &err), ==, 0);
        g_assert_no_error(err);
        g_thread_join(t);
        g_assert_true(r.commit_seen);
        close(sv[0]);
        close(sv[1]);
        vmm_drop(&n);
    }
    capture_free(&cap);
    vmm_drop(&old);
}

/* A peer running as another user is refused by both sides unless allowed. */
static void test_peer_credentials(void)
{
    g_autoptr(GError) err = NULL;
    vmm old = { 0 };
    vfiocpr *ctx = NULL;
    int sv[2];

    backend = VFIOCPR_BACKEND_TYPE1;
    cold_start(&old);
    fake_kernel_set_peer_uid(4242);
    socket_pair(sv);
    g_assert_cmpint(vfiocpr_transfer(old.ctx, sv[0], 100, 0, &err), ==, -EPERM);
    g_assert_nonnull(strstr(err->message, "runs as uid 4242"));
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_new_incoming(sv[1], 100, 0, &ctx, &err), ==, -EPERM);
    g_clear_error(&err);
    /* allowed: it gets as far as waiting for the state */
    g_assert_cmpint(vfiocpr_new_incoming(sv[1], 100, VFIOCPR_TRANSFER_ANY_UID, &ctx, &err), ==,
                    -ETIMEDOUT);
    g_clear_error(&err);
    /* not a socket at all */
    g_assert_cmpint(vfiocpr_transfer(old.ctx, old.ram, 100, 0, &err), ==, -ENOTSOCK);
    g_clear_error(&err);
    close(sv[0]);
    close(sv[1]);
    assert_old_carries_on(&old);
    vmm_drop(&old);
}

/* ------------------------------------------------------------ fault sweeps */

/* A good raw new process: reads the offer, commits, reads the release. */
static gpointer good_raw_new(gpointer p)
{
    raw_peer *b = p;
    peer_offer o;
    guint8 buf[8193];
    guint32 len;
    int in[300];
    unsigned n_in;
    guint type;

    if (peer_recv_offer(b->sock, &o, 3000) == 0) {
        peer_send_text(b->sock, VFIOCPR_XFER_STEP, "received");
        peer_send(b->sock, VFIOCPR_XFER_COMMIT, NULL, 0, NULL, 0);
        while (peer_recv(b->sock, &type, buf, &len, in, &n_in, 3000) == 0)
            if (type == VFIOCPR_XFER_RELEASED)
                break;
    }
    peer_offer_close(&o);
    return NULL;
}

/* Every kernel call of the old side fails once: each attempt ends rolled back with
 * the old process intact, or (a failure after the commit) handed over. */
static void test_old_fault_sweep(gpointer fixture G_GNUC_UNUSED, gconstpointer data)
{
    unsigned total = 0;

    backend = GPOINTER_TO_INT(data);
    for (unsigned n = 1;; n++) {
        g_autoptr(GError) err = NULL;
        vmm old = { 0 };
        raw_peer b = { 0 };
        unsigned base, fds;
        int sv[2], r;
        GThread *t;

        setup();
        cold_start(&old);
        fds = tu_count_open_fds();
        socket_pair(sv);
        b.sock = sv[1];
        t = g_thread_new("new", good_raw_new, &b);
        base = fake_kernel_calls(FK_ANY);
        fake_kernel_fail(FK_ANY, base + n, EIO);
        r = vfiocpr_transfer(old.ctx, sv[0], 3000, 0, &err);
        shutdown(sv[0], SHUT_RDWR);
        g_thread_join(t);
        close(sv[0]);
        close(sv[1]);
        if (fake_kernel_calls(FK_ANY) < base + n) {
            fake_kernel_fail(FK_ANY, 0, 0);
            g_assert_cmpint(r, ==, 0);
            total = n - 1;
            vmm_drop(&old);
            break;
        }
        g_test_message("old side call %u (%s): %s", n,
                       fake_kernel_op_name(fake_kernel_call_op(base + n)),
                       err ? err->message : "handed over");
        if (r == 0) {
            /* only what follows the commit may fail and still hand over: the
             * release message, the close of the spent state memfd */
            g_assert_true(fake_kernel_call_op(base + n) == FK_SEND_MSG ||
                          fake_kernel_call_op(base + n) == FK_CLOSE);
        } else {
            g_assert_nonnull(strstr(err->message, "rolled back"));
            g_assert_cmpuint(tu_count_open_fds(), ==, fds);
            assert_old_carries_on(&old);
        }
        vmm_drop(&old);
    }
    g_assert_cmpuint(total, >, 8);
}

/* Every kernel call of the new side (receive, validate, the VMM's start-up, finish
 * and commit) fails once: a clear error, nothing reset, and what it received closed
 * by the library or still the VMM's to close. */
static void test_new_fault_sweep(void)
{
    vmm old = { 0 };
    capture cap = { 0 };
    unsigned total = 0;

    backend = VFIOCPR_BACKEND_IOMMUFD;
    cold_start(&old);
    capture_transfer(&old, &cap);
    fake_kernel_become_process(G_MAXUINT64);
    for (unsigned n = 1;; n++) {
        g_autoptr(GError) err = NULL;
        replay r = { .cap = &cap, .variant = 0 };
        vmm m = { 0 };
        unsigned base;
        int sv[2], rc;
        GThread *t;

        socket_pair(sv);
        r.sock = sv[0];
        t = g_thread_new("old", replay_old, &r);
        base = fake_kernel_calls(FK_ANY);
        fake_kernel_fail(FK_ANY, base + n, EIO);
        rc = vfiocpr_new_incoming(sv[1], 2000, 0, &m.ctx, &err);
        if (rc == 0)
            rc = vmm_start(&m, &err);
        if (rc == 0)
            rc = vfiocpr_finish(m.ctx, NULL, &err);
        shutdown(sv[1], SHUT_RDWR);
        g_thread_join(t);
        close(sv[0]);
        close(sv[1]);
        if (fake_kernel_calls(FK_ANY) < base + n) {
            fake_kernel_fail(FK_ANY, 0, 0);
            g_assert_cmpint(rc, ==, 0);
            g_assert_true(r.commit_seen);
            total = n - 1;
            vmm_drop(&m);
            break;
        }
        g_test_message("new side call %u (%s): %s", n,
                       fake_kernel_op_name(fake_kernel_call_op(base + n)),
                       err ? err->message : "-");
        if (rc == 0) {
            /* only what is best effort may fail unnoticed: a progress report, the
             * close of the consumed state memfd, the count of pending vectors */
            g_assert_true(fake_kernel_call_op(base + n) == FK_SEND_MSG ||
                          fake_kernel_call_op(base + n) == FK_CLOSE ||
                          fake_kernel_call_op(base + n) == FK_READABLE);
            g_assert_true(r.commit_seen);
            vmm_drop(&m);
            continue;
        }
        g_assert_cmpint(rc, <, 0);
        g_assert_nonnull(err);
        g_assert_cmpuint(fake_vfio_device_closes(), ==, 0);
        /* a commit the old side answered but this side could not read: it says so */
        if (r.commit_seen)
            g_assert_nonnull(strstr(err->message, "commit to pid"));
        vmm_drop(&m);
    }
    g_assert_cmpuint(total, >, 10);
    capture_free(&cap);
    vmm_drop(&old);
}

/* ------------------------------------------------------------ state format 1.4 */

/* tests/data/state-v1.4.bin: the transfer state of golden_v13_cold_start()'s VMM.
 * Replayed with the fds of a recreated cold start, it restores through the new
 * side; as an exec state it is refused. */
static void test_golden_v14(void)
{
    g_autoptr(GBytes) blob = tu_read_file("state-v1.4.bin");
    g_autoptr(GVariant) payload = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autofree const char **req = NULL;
    guint16 major, minor;
    capture cap = { 0 };
    replay r = { 0 };
    int sv[2], sfd;
    GThread *t;

    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, &major, &minor, &err), ==, 0);
    g_assert_cmpuint(minor, ==, 4);
    g_assert_true(g_variant_lookup(payload, "required-features", "^a&s", &req));
    g_assert_true(g_strv_contains(req, "fd-index"));
    golden_real_fds();
    vfiocpr_unref(golden_v13_cold_start());
    fake_kernel_alias_real(GOLDEN_V11_RAM_FD);
    fake_kernel_alias_real(GOLDEN_V12_EFD0); /* every eventfd shares its anon inode */
    {
        /* the writer's exec invalidated the type1 vaddrs before sending */
        struct vfio_iommu_type1_dma_unmap un = { .argsz = sizeof(un),
                                                 .flags = VFIO_DMA_UNMAP_FLAG_VADDR |
                                                          VFIO_DMA_UNMAP_FLAG_ALL };
        g_assert_cmpint(seam_unrecorded()->ioctl(950, VFIO_IOMMU_UNMAP_DMA, &un), ==, 0);
    }
    /* as an exec state: refused */
    sfd = tu_state_memfd(blob, true);
    {
        g_autofree char *v = g_strdup_printf("%d", sfd);
        vfiocpr *bad = NULL;
        g_setenv(VFIOCPR_STATE_ENV, v, TRUE);
        g_assert_cmpint(vfiocpr_new(0, &bad, &err), ==, -EBADMSG);
        g_assert_nonnull(strstr(err->message, "a transfer state"));
        g_clear_error(&err);
        g_unsetenv(VFIOCPR_STATE_ENV);
    }
    /* over a transfer, with the fds in the writer's record order */
    cap.state_fd = sfd;
    cap.fds = g_array_new(FALSE, FALSE, sizeof(int));
    {
        g_autoptr(GVariant) vfds = g_variant_lookup_value(payload, "fds", NULL);
        g_autoptr(GVariant) vn = g_variant_lookup_value(payload, "fd-names", NULL);
        g_autofree const char **names = g_variant_get_strv(vn, NULL);
        GVariantIter it;
        guint32 name, kind, mode;
        guint64 id, dev, ino, rdev;
        gint32 idx;
        g_variant_iter_init(&it, vfds);
        while (g_variant_iter_next(&it, "(uutiuttt)", &name, &kind, &id, &idx, &mode, &dev, &ino,
                                   &rdev)) {
            /* the fd the cold start gave this record */
            int fd = -1;
            if (strcmp(names[name], "guest-ram") == 0)
                fd = GOLDEN_V11_RAM_FD;
            else if (g_str_has_prefix(names[name], "irq:"))
                fd = GOLDEN_V12_EFD0 + (int)id;
            else if (strcmp(names[name], "vfio-container:c0") == 0)
                fd = 950;
            else if (strcmp(names[name], "vfio-group") == 0)
                fd = 951;
            else if (strcmp(names[name], "vfio-device:0000:00:03.0") == 0)
                fd = 952;
            else if (strcmp(names[name], "iommufd:i0") == 0)
                fd = 953;
            else if (strcmp(names[name], "vfio-device:0000:00:04.0") == 0)
                fd = 954;
            g_assert_cmpint(fd, >=, 0);
            g_assert_cmpint(idx, ==, (gint32)cap.fds->len);
            g_array_append_val(cap.fds, fd);
        }
    }
    socket_pair(sv);
    r.sock = sv[0];
    r.cap = &cap;
    t = g_thread_new("old", replay_old, &r);
    g_assert_cmpint(vfiocpr_new_incoming(sv[1], 2000, 0, &ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(vfiocpr_fd_count(ctx), ==, cap.fds->len);
    g_assert_cmpint(vfiocpr_fd_find(ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, &err), !=,
                    GOLDEN_V11_RAM_FD); /* a dup: its own number */
    shutdown(sv[1], SHUT_RDWR);
    g_thread_join(t);
    close(sv[0]);
    close(sv[1]);
    close(sfd);
    g_array_unref(cap.fds);
    golden_close_real_fds();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    signal(SIGPIPE, SIG_IGN); /* the raw peers write to sockets the other side shut */
#define ADD(path, fn) g_test_add_vtable(path, 0, NULL, (GTestFixtureFunc)setup, (GTestFixtureFunc)fn, NULL)
#define ADD2(path, fn)                                                                          \
    g_test_add_vtable("/transfer/type1" path, 0, GINT_TO_POINTER(VFIOCPR_BACKEND_TYPE1),      \
                      (GTestFixtureFunc)setup, (GTestFixtureFunc)fn, NULL);                    \
    g_test_add_vtable("/transfer/iommufd" path, 0, GINT_TO_POINTER(VFIOCPR_BACKEND_IOMMUFD),  \
                      (GTestFixtureFunc)setup, (GTestFixtureFunc)fn, NULL)
    ADD2("/good", test_good);
    ADD2("/good-prepared", test_good_prepared);
    ADD2("/fault-points", test_fault_points);
    ADD2("/old-fault-sweep", test_old_fault_sweep);
    ADD("/transfer/new-side-rules", test_new_side_rules);
    ADD("/transfer/bad-new-peers", test_bad_new_peers);
    ADD("/transfer/bad-old-peers", test_bad_old_peers);
    ADD("/transfer/peer-credentials", test_peer_credentials);
    ADD("/transfer/new-fault-sweep", test_new_fault_sweep);
    ADD("/transfer/golden-v1.4", test_golden_v14);
    return g_test_run();
}
