/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "fake-kernel.h"
#include "transfer-peer.h"
#include "vfio-compat.h"

typedef struct {
    char *link;
    vfiocpr_fd_stat st;
    int cloexec;
    bool owned; /* backed by a real fd the fake opened: close it too */
    guint64 real_ino; /* owned: the backing memfd, whose dups are this object too */
} pretend;

/* ---- VFIO type1 model ---- */
typedef struct {
    guint64 iova, size, vaddr;
    bool invalid;
} fk_dma;

typedef struct {
    int id;
    char *device;
    bool mdev;
    int fd;        /* open group fd, -1 if closed (groups are single-open) */
    int container; /* container fd, -1 if none */
    int bound;     /* iommufd fd the device's cdev is bound to, -1 if none */
} fk_group;

enum { FK_CONTAINER = 1, FK_GROUP, FK_DEVICE, FK_KVM, FK_VM, FK_IOMMUFD };

/* ---- iommufd model ---- */
typedef struct {
    guint32 ioas;
    guint64 iova, length;
    bool by_file;
    unsigned gen; /* the process its pins are charged to */
} fk_iomap;

#define FK_N_IRQ 5

typedef struct {
    int type;
    bool iommu_set;
    GArray *dmas;    /* fk_dma, containers */
    GHashTable *by_iova; /* iova -> index + 1 into dmas */
    fk_group *group; /* groups and devices */
    guint live[FK_N_IRQ];  /* devices: vectors enabled per index */
    int unmask_fd;         /* devices: INTx unmask eventfd */
    guint mig_state;       /* devices: migration state */
    int data_fd;           /* devices: current migration data fd */
    GHashTable *irqfds;    /* VMs: eventfd -> gsi + 1 */
    unsigned routings;     /* VMs: KVM_SET_GSI_ROUTING calls */
    unsigned last_routes;  /* VMs: entries in the last one */
    unsigned last_irqchip; /* VMs: of those, IOAPIC/PIC pin routes */
    bool split_irqchip;    /* VMs: KVM_CAP_SPLIT_IRQCHIP, the IOAPIC in user space */
    bool cdev;             /* devices: opened as /dev/vfio/devices/vfioN */
    int bound_to;          /* cdevs: iommufd fd after BIND, else -1 */
    guint32 devid, pt;     /* cdevs: from BIND and ATTACH */
    GArray *iomaps;        /* iommufd: fk_iomap */
    guint32 next_id;       /* iommufd: object ids */
    GHashTable *ioas;      /* iommufd: IOAS ids */
} fk_obj;

/* A process, for locked-memory accounting: the thread that runs the library is in
 * one (a transfer test runs the new process in another thread). */
typedef struct {
    unsigned gen;
    guint64 locked, limit;
} fk_proc;
#define FK_N_PROCS 8
static fk_proc fk_procs[FK_N_PROCS];
static unsigned fk_next_gen = 1;
static __thread int fk_cur_proc; /* index into fk_procs */
#define CUR (&fk_procs[fk_cur_proc])

static fk_proc *proc_by_gen(unsigned gen)
{
    for (int i = 0; i < FK_N_PROCS; i++)
        if (fk_procs[i].gen == gen)
            return &fk_procs[i];
    return NULL;
}

static struct {
    unsigned calls[FK_N_OPS + 1];
    GArray *log; /* fk_op per call */
    fk_op fail_op;
    unsigned fail_nth;
    int fail_err;
    fk_execve_fn execve;
    GHashTable *pretend; /* fd -> pretend* */
    GHashTable *by_real; /* real ino of an owned object's memfd -> its fd */
    GHashTable *objs;    /* fd -> fk_obj* */
    GHashTable *groups;  /* id -> fk_group* */
    GHashTable *ioctls;  /* request -> count */
    unsigned long fail_req;
    unsigned fail_req_nth;
    int fail_req_err;
    guint64 locked, locked_limit;
    bool memlock_set, cap_ipc_lock;
    guint64 memlock_limit;
    guint64 next_ino;
    int next_fd;
    unsigned device_closes;
    guint irq_count[FK_N_IRQ];
    bool msix_noresize;
    unsigned irq_rerequests; /* SET_IRQS that hit an already live vector */
    bool fake_kvm;
    bool iommufd;              /* /dev/iommu and the cdevs exist */
    bool peer_uid_set;         /* SO_PEERCRED reports this uid */
    guint32 peer_uid;
    bool no_change_process;    /* a kernel before 6.14 */
    unsigned gen;              /* the current process, for iommufd pin accounting */
    /* migration model */
    guint32 mig_flags;
    GByteArray *mig_blob;      /* what STOP_COPY produces; RESUMING must get exactly this */
    guint mig_precopy_initial; /* bytes of the blob PRE_COPY offers first */
    GHashTable *streams;       /* data fd -> fk_stream* */
    GArray *arcs;              /* every arc the device was asked to take, as cur << 8 | next */
} fk;

typedef struct {
    GByteArray *buf; /* RESUMING: what the library wrote */
    const guint8 *src; /* otherwise: the blob, not copied */
    gsize len;
    gsize pos;
    bool precopy; /* ENOMSG at the end instead of EOF */
    bool resuming;
} fk_stream;

static const char *const names[] = {
    "memfd_create", "pwrite", "pread", "fstat", "fd_path", "get_cloexec", "set_cloexec",
    "cloexec_range", "get_seals", "add_seals", "close", "execve", "ioctl", "open", "readlink",
    "mmap", "munmap", "memlock", "eventfd", "readable", "read", "write", "lseek", "dir_entry",
    "send_msg", "recv_msg", "wait_readable", "peer_cred", "shutdown", "any",
};

const char *fake_kernel_op_name(fk_op op)
{
    return op <= FK_ANY ? names[op] : "?";
}

/* Counts the call; returns the injected error for it, or 0. */
static int enter(fk_op op)
{
    unsigned n_op = ++fk.calls[op];
    unsigned n_any = ++fk.calls[FK_ANY];

    g_array_append_val(fk.log, op);
    if (fk.fail_nth && ((fk.fail_op == FK_ANY && n_any == fk.fail_nth) ||
                        (fk.fail_op == op && n_op == fk.fail_nth))) {
        fk.fail_nth = 0;
        return -fk.fail_err;
    }
    return 0;
}

#define REAL (vfiocpr_kernel_real())
/* Two threads may play the old and the new process of a transfer: every op that
 * touches the model holds the lock for its whole body; the blocking socket ops only
 * while counting. */
static GRecMutex fk_lock;
#define ENTER(op)                                                                   \
    g_autoptr(GRecMutexLocker) locker_ G_GNUC_UNUSED = g_rec_mutex_locker_new(&fk_lock); \
    do {                                                                            \
        int e_ = enter(op);                                                         \
        if (e_)                                                                     \
            return e_;                                                              \
    } while (0)
#define ENTER_UNLOCKED(op)                         \
    do {                                           \
        int e_;                                    \
        g_rec_mutex_lock(&fk_lock);                \
        e_ = enter(op);                            \
        g_rec_mutex_unlock(&fk_lock);              \
        if (e_)                                    \
            return e_;                             \
    } while (0)

/* The pretend of exactly this fd number (per-fd state: FD_CLOEXEC). */
static pretend *find_pretend(int fd)
{
    return fk.pretend ? g_hash_table_lookup(fk.pretend, GINT_TO_POINTER(fd)) : NULL;
}

/* An object is an open file, as in the kernel, not an fd number: an fd that is a
 * dup of a fake object's backing file (received over a socket) is that object.
 * Returns the number the object is known by. */
static int canonical(int fd)
{
    vfiocpr_fd_stat st;
    gpointer c;

    if (!fk.pretend || g_hash_table_contains(fk.pretend, GINT_TO_POINTER(fd)) ||
        !fk.by_real || !g_hash_table_size(fk.by_real) || REAL->fstat(fd, &st, NULL) < 0)
        return fd;
    if (g_hash_table_lookup_extended(fk.by_real, &st.ino, NULL, &c))
        return GPOINTER_TO_INT(c);
    return fd;
}

/* The pretend of the object behind fd (an alias included). */
static pretend *find_object_pretend(int fd)
{
    return find_pretend(canonical(fd));
}

static int f_memfd_create(const char *name, unsigned int flags)
{
    ENTER(FK_MEMFD_CREATE);
    return REAL->memfd_create(name, flags);
}

static ssize_t f_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    ENTER(FK_PWRITE);
    return REAL->pwrite(fd, buf, len, off);
}

static ssize_t f_pread(int fd, void *buf, size_t len, off_t off)
{
    ENTER(FK_PREAD);
    return REAL->pread(fd, buf, len, off);
}

static int f_fstat(int fd, vfiocpr_fd_stat *st, off_t *size)
{
    pretend *p;
    ENTER(FK_FSTAT);
    if ((p = find_object_pretend(fd))) {
        *st = p->st;
        if (size)
            *size = 0;
        return 0;
    }
    return REAL->fstat(fd, st, size);
}

static int f_fd_path(int fd, char *buf, size_t len)
{
    pretend *p;
    ENTER(FK_FD_PATH);
    if ((p = find_object_pretend(fd)))
        return (int)g_strlcpy(buf, p->link, len);
    return REAL->fd_path(fd, buf, len);
}

static int f_get_cloexec(int fd)
{
    pretend *p;
    ENTER(FK_GET_CLOEXEC);
    if ((p = find_pretend(fd)))
        return p->cloexec;
    return REAL->get_cloexec(fd);
}

static int f_set_cloexec(int fd, bool on)
{
    pretend *p;
    ENTER(FK_SET_CLOEXEC);
    if ((p = find_pretend(fd))) {
        p->cloexec = on;
        return 0;
    }
    return REAL->set_cloexec(fd, on);
}

static int f_cloexec_range(int first, int last)
{
    ENTER(FK_CLOEXEC_RANGE);
    for (int fd = first; fd <= last; fd++) {
        pretend *p = find_pretend(fd);
        if (p)
            p->cloexec = 1;
        else
            REAL->set_cloexec(fd, true); /* EBADF on holes is fine, as close_range */
    }
    return 0;
}

static int f_get_seals(int fd)
{
    ENTER(FK_GET_SEALS);
    return find_object_pretend(fd) ? -EINVAL : REAL->get_seals(fd);
}

static int f_add_seals(int fd, int seals)
{
    ENTER(FK_ADD_SEALS);
    return REAL->add_seals(fd, seals);
}

static void obj_closed(int fd)
{
    fk_obj *o = g_hash_table_lookup(fk.objs, GINT_TO_POINTER(fd));

    if (!o)
        return;
    if (o->type == FK_GROUP) {
        o->group->fd = -1;
        o->group->container = -1; /* the last close detaches it */
    }
    if (o->type == FK_DEVICE)
        fk.device_closes++; /* the real kernel resets the device here */
    if (o->type == FK_DEVICE && o->cdev && o->bound_to >= 0 && o->group)
        o->group->bound = -1;
    if (o->type == FK_IOMMUFD) {
        /* the last close of the iommufd unpins everything of this process */
        for (guint i = 0; i < o->iomaps->len; i++) {
            fk_iomap *m = &g_array_index(o->iomaps, fk_iomap, i);
            if (m->gen == CUR->gen)
                CUR->locked -= m->length;
        }
    }
    g_hash_table_remove(fk.objs, GINT_TO_POINTER(fd));
}

/* Another open fd on the same backing file as fd, or -1. */
static int other_holder(int fd, guint64 ino)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int found = -1;

    while (d && (de = readdir(d))) {
        vfiocpr_fd_stat st;
        int n = atoi(de->d_name);
        if (de->d_name[0] == '.' || n == fd || n == dirfd(d))
            continue;
        if (REAL->fstat(n, &st, NULL) == 0 && st.ino == ino && !find_pretend(n)) {
            found = n;
            break;
        }
    }
    if (d)
        closedir(d);
    return found;
}

static void renumber(int from, int to)
{
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, fk.groups);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        fk_group *g = v;
        if (g->fd == from)
            g->fd = to;
        if (g->container == from)
            g->container = to;
        if (g->bound == from)
            g->bound = to;
    }
    g_hash_table_iter_init(&it, fk.objs);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((fk_obj *)v)->bound_to == from)
            ((fk_obj *)v)->bound_to = to;
}

static int f_close(int fd)
{
    pretend *p;
    ENTER(FK_CLOSE);
    if (fk.streams && g_hash_table_remove(fk.streams, GINT_TO_POINTER(fd)))
        return REAL->close(fd);
    if (canonical(fd) != fd)
        return REAL->close(fd); /* a dup: the object lives on */
    if ((p = find_pretend(fd))) {
        bool owned = p->owned;
        if (owned && p->real_ino) {
            int other = other_holder(fd, p->real_ino);
            if (other >= 0) {
                /* not the last close: the object now goes by the other number */
                gpointer o = g_hash_table_lookup(fk.objs, GINT_TO_POINTER(fd));
                g_hash_table_steal(fk.pretend, GINT_TO_POINTER(fd));
                g_hash_table_insert(fk.pretend, GINT_TO_POINTER(other), p);
                p->cloexec = REAL->get_cloexec(other);
                if (o) {
                    g_hash_table_steal(fk.objs, GINT_TO_POINTER(fd));
                    g_hash_table_insert(fk.objs, GINT_TO_POINTER(other), o);
                }
                g_hash_table_insert(fk.by_real, g_memdup2(&p->real_ino, sizeof(guint64)),
                                    GINT_TO_POINTER(other));
                renumber(fd, other);
                return REAL->close(fd);
            }
            g_hash_table_remove(fk.by_real, &p->real_ino);
        }
        obj_closed(fd);
        g_hash_table_remove(fk.pretend, GINT_TO_POINTER(fd));
        return owned ? REAL->close(fd) : 0;
    }
    return REAL->close(fd);
}

static int f_execve(const char *path, char *const argv[], char *const envp[])
{
    ENTER(FK_EXECVE);
    return fk.execve ? fk.execve(path, argv, envp) : -ENOENT;
}

static int new_object(const char *link, guint32 mode, guint64 rdev, int type, fk_group *g)
{
    int tmp = REAL->memfd_create("fake-vfio", MFD_CLOEXEC);
    fk_obj *o;
    pretend *p;
    int fd;

    if (tmp < 0)
        return tmp;
    /* fixed numbers from 950 up, so a golden state's fds can be recreated exactly;
     * never one that is open (dup3 would silently replace it) */
    while (fcntl(fk.next_fd, F_GETFD) >= 0)
        fk.next_fd++;
    fd = dup3(tmp, fk.next_fd++, O_CLOEXEC);
    REAL->close(tmp);
    if (fd < 0)
        return -errno;
    fake_kernel_pretend(fd, link, mode, 5, type == FK_DEVICE ? 1039 : ++fk.next_ino, rdev);
    p = find_pretend(fd);
    p->owned = true;
    {
        vfiocpr_fd_stat real;
        if (REAL->fstat(fd, &real, NULL) == 0) {
            p->real_ino = real.ino;
            g_hash_table_insert(fk.by_real, g_memdup2(&real.ino, sizeof(guint64)),
                                GINT_TO_POINTER(fd));
        }
    }
    if (type == FK_DEVICE)
        p->st.dev = 10; /* the anon inode */
    o = g_new0(fk_obj, 1);
    o->type = type;
    o->group = g;
    if (type == FK_VM)
        o->irqfds = g_hash_table_new(g_direct_hash, g_direct_equal);
    o->unmask_fd = -1;
    o->mig_state = 2; /* RUNNING */
    o->data_fd = -1;
    o->bound_to = -1;
    if (type == FK_IOMMUFD) {
        o->iomaps = g_array_new(FALSE, TRUE, sizeof(fk_iomap));
        o->ioas = g_hash_table_new(g_direct_hash, g_direct_equal);
        o->next_id = 1;
    }
    if (type == FK_CONTAINER) {
        o->dmas = g_array_new(FALSE, TRUE, sizeof(fk_dma));
        o->by_iova = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    }
    g_hash_table_insert(fk.objs, GINT_TO_POINTER(fd), o);
    return fd;
}

static void free_obj(gpointer p)
{
    fk_obj *o = p;
    if (o->dmas) {
        g_array_unref(o->dmas);
        g_hash_table_destroy(o->by_iova);
    }
    if (o->irqfds)
        g_hash_table_destroy(o->irqfds);
    if (o->iomaps) {
        g_array_unref(o->iomaps);
        g_hash_table_destroy(o->ioas);
    }
    g_free(o);
}

static void free_group(gpointer p)
{
    fk_group *g = p;
    g_free(g->device);
    g_free(g);
}

static fk_obj *obj(int fd, int type)
{
    fk_obj *o = g_hash_table_lookup(fk.objs, GINT_TO_POINTER(canonical(fd)));
    return o && o->type == type ? o : NULL;
}

static bool container_has_invalid(fk_obj *c)
{
    for (guint i = 0; i < c->dmas->len; i++)
        if (g_array_index(c->dmas, fk_dma, i).invalid)
            return true;
    return false;
}

static bool container_has_mdev(int cfd)
{
    GHashTableIter it;
    gpointer v;
    g_hash_table_iter_init(&it, fk.groups);
    while (g_hash_table_iter_next(&it, NULL, &v))
        if (((fk_group *)v)->container == cfd && ((fk_group *)v)->mdev)
            return true;
    return false;
}

static int container_ioctl(int fd, fk_obj *c, unsigned long request, void *arg)
{
    switch (request) {
    case VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
    case VFIO_CHECK_EXTENSION: {
        uintptr_t ext = (uintptr_t)arg;
        if (ext == VFIO_TYPE1v2_IOMMU)
            return 1;
        if (ext == VFIO_UPDATE_VADDR || ext == VFIO_UNMAP_ALL)
            return c->iommu_set && !container_has_mdev(fd);
        return 0;
    }
    case VFIO_SET_IOMMU: {
        GHashTableIter it;
        gpointer v;
        bool any = false;
        if ((uintptr_t)arg != VFIO_TYPE1v2_IOMMU)
            return -EINVAL;
        g_hash_table_iter_init(&it, fk.groups);
        while (g_hash_table_iter_next(&it, NULL, &v))
            any |= ((fk_group *)v)->container == fd;
        if (!any || c->iommu_set)
            return -EINVAL;
        c->iommu_set = true;
        return 0;
    }
    case VFIO_IOMMU_MAP_DMA: {
        struct vfio_iommu_type1_dma_map *m = arg;
        if (!c->iommu_set || m->argsz < sizeof(*m))
            return -EINVAL;
        if (m->flags & VFIO_DMA_MAP_FLAG_VADDR) {
            /* exact iova and size, READ/WRITE clear, range invalid */
            guint idx = GPOINTER_TO_UINT(g_hash_table_lookup(c->by_iova, &m->iova));
            fk_dma *d = idx ? &g_array_index(c->dmas, fk_dma, idx - 1) : NULL;
            if (m->flags != VFIO_DMA_MAP_FLAG_VADDR || !m->vaddr)
                return -EINVAL;
            if (!d || d->size != m->size || !d->invalid)
                return -EINVAL;
            if (CUR->locked + d->size > CUR->limit)
                return -ENOMEM;
            CUR->locked += d->size;
            d->vaddr = m->vaddr;
            d->invalid = false;
            return 0;
        }
        if (!m->size || !m->vaddr || m->iova + m->size < m->iova)
            return -EINVAL;
        for (guint i = 0; i < c->dmas->len; i++) {
            fk_dma *d = &g_array_index(c->dmas, fk_dma, i);
            if (m->iova < d->iova + d->size && d->iova < m->iova + m->size)
                return -EEXIST;
        }
        if (CUR->locked + m->size > CUR->limit)
            return -ENOMEM;
        CUR->locked += m->size;
        g_array_append_val(c->dmas, ((fk_dma){ m->iova, m->size, m->vaddr, false }));
        g_hash_table_insert(c->by_iova, g_memdup2(&m->iova, sizeof(guint64)),
                            GUINT_TO_POINTER(c->dmas->len));
        return 0;
    }
    case VFIO_IOMMU_UNMAP_DMA: {
        struct vfio_iommu_type1_dma_unmap *u = arg;
        if (u->flags == VFIO_DMA_UNMAP_FLAG_VADDR) {
            /* one whole, valid range: invalid ones are refused as by the kernel */
            guint idx = GPOINTER_TO_UINT(g_hash_table_lookup(c->by_iova, &u->iova));
            fk_dma *d = idx ? &g_array_index(c->dmas, fk_dma, idx - 1) : NULL;
            if (!d || d->size != u->size || d->invalid)
                return -EINVAL;
            d->invalid = true;
            return 0;
        }
        if (u->flags & VFIO_DMA_UNMAP_FLAG_VADDR) {
            if (!(u->flags & VFIO_DMA_UNMAP_FLAG_ALL) || u->iova || u->size)
                return -EINVAL; /* the model only knows the forms the library uses */
            if (container_has_invalid(c))
                return -EINVAL;
            for (guint i = 0; i < c->dmas->len; i++)
                g_array_index(c->dmas, fk_dma, i).invalid = true;
            return 0;
        }
        for (guint i = c->dmas->len; i-- > 0;) {
            fk_dma *d = &g_array_index(c->dmas, fk_dma, i);
            bool all = u->flags & VFIO_DMA_UNMAP_FLAG_ALL;
            if (all || (d->iova >= u->iova && d->iova + d->size <= u->iova + u->size)) {
                CUR->locked -= d->invalid ? 0 : d->size;
                g_hash_table_remove(c->by_iova, &d->iova);
                g_array_remove_index_fast(c->dmas, i);
                if (i < c->dmas->len) /* the last one moved into slot i */
                    g_hash_table_insert(c->by_iova,
                                        g_memdup2(&g_array_index(c->dmas, fk_dma, i).iova,
                                                  sizeof(guint64)),
                                        GUINT_TO_POINTER(i + 1));
            } else if (d->iova < u->iova + u->size && u->iova < d->iova + d->size) {
                return -EINVAL; /* would split a mapping */
            }
        }
        return 0;
    }
    }
    return -ENOTTY;
}

static int group_ioctl(fk_obj *o, unsigned long request, void *arg)
{
    fk_group *g = o->group;

    switch (request) {
    case VFIO_GROUP_GET_STATUS: {
        struct vfio_group_status *st = arg;
        st->flags = VFIO_GROUP_FLAGS_VIABLE | (g->container >= 0 ? VFIO_GROUP_FLAGS_CONTAINER_SET : 0);
        return 0;
    }
    case VFIO_GROUP_SET_CONTAINER: {
        int cfd = *(int *)arg;
        fk_obj *c = obj(cfd, FK_CONTAINER);
        if (!c)
            return -EBADF;
        if (g->container >= 0)
            return -EINVAL;
        if (container_has_invalid(c))
            return -EBUSY;
        g->container = cfd;
        return 0;
    }
    case VFIO_GROUP_UNSET_CONTAINER:
        if (g->container < 0)
            return -EINVAL;
        g->container = -1;
        return 0;
    case VFIO_GROUP_GET_DEVICE_FD: {
        fk_obj *c = g->container >= 0 ? obj(g->container, FK_CONTAINER) : NULL;
        if (!c || !c->iommu_set)
            return -EINVAL;
        if (strcmp((const char *)arg, g->device) != 0)
            return -ENODEV;
        return new_object("anon_inode:[vfio-device]", 0600, 0, FK_DEVICE, g);
    }
    }
    return -ENOTTY;
}

/* ---- migration v2 model ---- */
#define M_STOP_COPY 1u
#define M_P2P 2u
#define M_PRE 4u

/* The single arcs the uAPI defines, written from its text (not from the library's
 * table, which is what these tests check): cur, next, flags needed, flags that must
 * be absent. */
static const struct { guint cur, next, need, absent; } uapi_arcs[] = {
    { 1, 3, 0, 0 }, { 3, 1, 0, 0 },                 /* STOP <-> STOP_COPY */
    { 1, 4, 0, 0 }, { 4, 1, 0, 0 },                 /* STOP <-> RESUMING */
    { 1, 2, 0, M_P2P }, { 2, 1, 0, M_P2P },         /* STOP <-> RUNNING, without P2P */
    { 1, 5, M_P2P, 0 }, { 5, 1, M_P2P, 0 },         /* STOP <-> RUNNING_P2P */
    { 5, 2, M_P2P, 0 }, { 2, 5, M_P2P, 0 },         /* RUNNING_P2P <-> RUNNING */
    { 2, 6, M_PRE, 0 }, { 6, 2, M_PRE, 0 },         /* RUNNING <-> PRE_COPY */
    { 6, 3, M_PRE, M_P2P },                         /* PRE_COPY -> STOP_COPY, without P2P */
    { 6, 7, M_PRE | M_P2P, 0 }, { 7, 6, M_PRE | M_P2P, 0 },  /* PRE_COPY <-> PRE_COPY_P2P */
    { 5, 7, M_PRE | M_P2P, 0 }, { 7, 5, M_PRE | M_P2P, 0 },  /* RUNNING_P2P <-> PRE_COPY_P2P */
    { 7, 3, M_PRE | M_P2P, 0 },                     /* PRE_COPY_P2P -> STOP_COPY */
};

static bool state_supported(guint s)
{
    switch (s) {
    case 5: return fk.mig_flags & M_P2P;
    case 6: return fk.mig_flags & M_PRE;
    case 7: return (fk.mig_flags & (M_PRE | M_P2P)) == (M_PRE | M_P2P);
    case 0: return false;
    default: return true;
    }
}

static bool legal_arc(guint cur, guint next)
{
    for (gsize i = 0; i < G_N_ELEMENTS(uapi_arcs); i++)
        if (uapi_arcs[i].cur == cur && uapi_arcs[i].next == next &&
            (fk.mig_flags & uapi_arcs[i].need) == uapi_arcs[i].need &&
            !(fk.mig_flags & uapi_arcs[i].absent))
            return true;
    return false;
}

static void free_stream(gpointer p)
{
    fk_stream *st = p;
    g_byte_array_unref(st->buf);
    g_free(st);
}

static int new_stream(fk_obj *o, bool precopy, bool resuming)
{
    int fd = REAL->memfd_create("fake-mig-data", MFD_CLOEXEC);
    fk_stream *st = g_new0(fk_stream, 1);
    st->buf = g_byte_array_new();
    st->precopy = precopy;
    st->resuming = resuming;
    if (!resuming && fk.mig_blob) {
        st->src = fk.mig_blob->data;
        st->len = precopy ? MIN(fk.mig_precopy_initial, fk.mig_blob->len) : fk.mig_blob->len;
    }
    g_hash_table_insert(fk.streams, GINT_TO_POINTER(fd), st);
    o->data_fd = fd;
    return fd;
}

static int mig_feature(fk_obj *o, struct vfio_device_feature *f)
{
    guint idx = f->flags & VFIO_DEVICE_FEATURE_MASK;
    bool get = f->flags & VFIO_DEVICE_FEATURE_GET;

    if (!fk.mig_flags)
        return -ENOTTY;
    if (idx == VFIO_DEVICE_FEATURE_MIGRATION && get) {
        ((struct vfio_device_feature_migration *)(void *)f->data)->flags = fk.mig_flags;
        return 0;
    }
    if (idx == VFIO_DEVICE_FEATURE_MIG_DATA_SIZE && get) {
        guint64 len = fk.mig_blob ? fk.mig_blob->len : 0;
        memcpy(f->data, &len, 8);
        return 0;
    }
    if (idx == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE) {
        struct vfio_device_feature_mig_state *ms = (void *)f->data;
        guint cur = o->mig_state, next = ms->device_state;
        fk_stream *old = o->data_fd >= 0 ? g_hash_table_lookup(fk.streams, GINT_TO_POINTER(o->data_fd)) : NULL;
        if (get) {
            ms->device_state = cur;
            return 0;
        }
        g_array_append_val(fk.arcs, ((guint){ cur << 8 | next }));
        /* strict: one legal arc, into a supported state */
        if (!state_supported(next) || !legal_arc(cur, next))
            return -EINVAL;
        if (cur == 4 && next == 1) {
            /* the driver checks what it was given; nothing at all is "nothing loaded" */
            if (old && old->buf->len &&
                (!fk.mig_blob || old->buf->len != fk.mig_blob->len ||
                 memcmp(old->buf->data, fk.mig_blob->data, old->buf->len) != 0))
                return -EINVAL;
        }
        ms->data_fd = -1;
        if (next == 3 && (cur == 6 || cur == 7) && old) {
            /* the pre-copy stream goes on: the rest of the blob, then EOF */
            old->precopy = false;
            if (fk.mig_blob)
                old->len = fk.mig_blob->len;
        } else if (next == 3 || next == 4 || ((next == 6 || next == 7) && cur != 6 && cur != 7)) {
            ms->data_fd = new_stream(o, next == 6 || next == 7, next == 4);
        }
        o->mig_state = next;
        return 0;
    }
    return -ENOTTY;
}

static int device_ioctl(fk_obj *o, unsigned long request, void *arg)
{
    switch (request) {
    case VFIO_DEVICE_GET_INFO: {
        struct vfio_device_info *i = arg;
        i->flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET;
        i->num_regions = VFIO_PCI_NUM_REGIONS;
        i->num_irqs = VFIO_PCI_NUM_IRQS;
        return 0;
    }
    case VFIO_DEVICE_GET_REGION_INFO: {
        struct vfio_region_info *r = arg;
        if (r->index >= VFIO_PCI_NUM_REGIONS)
            return -EINVAL;
        r->flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                   (r->index == 0 ? VFIO_REGION_INFO_FLAG_MMAP : 0);
        r->size = r->index == 0 ? 0x1000 : 0;
        r->offset = (guint64)r->index << 40;
        return 0;
    }
    case VFIO_DEVICE_GET_IRQ_INFO: {
        struct vfio_irq_info *i = arg;
        if (i->index >= FK_N_IRQ)
            return -EINVAL;
        i->count = fk.irq_count[i->index];
        i->flags = VFIO_IRQ_INFO_EVENTFD |
                   (i->index == VFIO_PCI_INTX_IRQ_INDEX ? VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED : 0) |
                   (i->index == VFIO_PCI_MSI_IRQ_INDEX ||
                    (i->index == VFIO_PCI_MSIX_IRQ_INDEX && fk.msix_noresize) ? VFIO_IRQ_INFO_NORESIZE : 0);
        return 0;
    }
    case VFIO_DEVICE_SET_IRQS: {
        struct vfio_irq_set *s = arg;
        guint32 action = s->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
        if (s->index >= FK_N_IRQ || (guint64)s->start + s->count > fk.irq_count[s->index])
            return -EINVAL;
        if (action == VFIO_IRQ_SET_ACTION_UNMASK && (s->flags & VFIO_IRQ_SET_DATA_EVENTFD)) {
            memcpy(&o->unmask_fd, s->data, sizeof(int));
            return 0;
        }
        if (action != VFIO_IRQ_SET_ACTION_TRIGGER)
            return 0;
        if ((s->flags & VFIO_IRQ_SET_DATA_NONE) && !s->count) {
            o->live[s->index] = 0;
            return 0;
        }
        if (s->start < o->live[s->index])
            fk.irq_rerequests++; /* the real kernel frees and re-requests them */
        o->live[s->index] = MAX(o->live[s->index], s->start + s->count);
        return 0;
    }
    case VFIO_DEVICE_RESET:
        o->mig_state = 2;
        return 0;
    case VFIO_DEVICE_FEATURE:
        return mig_feature(o, arg);
    }
    return -ENOTTY;
}

static int kvm_ioctl(int fd, fk_obj *o, unsigned long request, void *arg)
{
    if (o->type == FK_KVM)
        return request == KVM_CREATE_VM ? new_object("anon_inode:kvm-vm", 0600, 0, FK_VM, NULL)
                                        : -ENOTTY;
    switch (request) {
    case KVM_SET_GSI_ROUTING:
        o->routings++;
        if (o->split_irqchip)
            for (unsigned i = 0; i < ((struct kvm_irq_routing *)arg)->nr; i++)
                if (((struct kvm_irq_routing *)arg)->entries[i].type == KVM_IRQ_ROUTING_IRQCHIP)
                    return -EINVAL; /* no in-kernel IOAPIC/PIC */
        o->last_routes = ((struct kvm_irq_routing *)arg)->nr;
        o->last_irqchip = 0;
        for (unsigned i = 0; i < o->last_routes; i++)
            o->last_irqchip += ((struct kvm_irq_routing *)arg)->entries[i].type ==
                               KVM_IRQ_ROUTING_IRQCHIP;
        return 0;
    case KVM_IRQFD: {
        struct kvm_irqfd *i = arg;
        gpointer key = GINT_TO_POINTER((int)i->fd);
        if (i->flags & KVM_IRQFD_FLAG_DEASSIGN)
            return g_hash_table_remove(o->irqfds, key) ? 0 : -ENOENT;
        if (g_hash_table_contains(o->irqfds, key))
            return -EBUSY;
        g_hash_table_insert(o->irqfds, key, GUINT_TO_POINTER(i->gsi + 1));
        return 0;
    }
    }
    return -ENOTTY;
}

static int iomap_add(fk_obj *o, guint32 ioas, guint64 iova, guint64 length, bool by_file)
{
    if (!g_hash_table_contains(o->ioas, GUINT_TO_POINTER(ioas)) || !length ||
        iova + length < iova)
        return -EINVAL;
    for (guint i = 0; i < o->iomaps->len; i++) {
        fk_iomap *m = &g_array_index(o->iomaps, fk_iomap, i);
        if (m->ioas == ioas && iova < m->iova + m->length && m->iova < iova + length)
            return -EEXIST;
    }
    if (CUR->locked + length > CUR->limit)
        return -ENOMEM;
    CUR->locked += length;
    g_array_append_val(o->iomaps, ((fk_iomap){ ioas, iova, length, by_file, CUR->gen }));
    return 0;
}

static int iommufd_ioctl(fk_obj *o, unsigned long request, void *arg)
{
    switch (request) {
    case IOMMU_IOAS_ALLOC: {
        struct iommu_ioas_alloc *a = arg;
        if (a->size < sizeof(*a) || a->flags)
            return -EINVAL;
        a->out_ioas_id = o->next_id++;
        g_hash_table_add(o->ioas, GUINT_TO_POINTER(a->out_ioas_id));
        return 0;
    }
    case IOMMU_IOAS_MAP: {
        struct iommu_ioas_map *m = arg;
        if (!(m->flags & IOMMU_IOAS_MAP_FIXED_IOVA) || !m->user_va)
            return -EINVAL; /* the model only knows the form the library uses */
        return iomap_add(o, m->ioas_id, m->iova, m->length, false);
    }
    case IOMMU_IOAS_MAP_FILE: {
        struct iommu_ioas_map_file *m = arg;
        vfiocpr_fd_stat st;
        char link[256];
        if (!(m->flags & IOMMU_IOAS_MAP_FIXED_IOVA))
            return -EINVAL;
        /* shmem or hugetlbfs only: a memfd (as this fake shows fds; no call counted) */
        pretend *p = find_pretend(m->fd);
        if (p)
            g_strlcpy(link, p->link, sizeof(link));
        else if (REAL->fstat(m->fd, &st, NULL) < 0 || REAL->fd_path(m->fd, link, sizeof(link)) < 0)
            return -EBADF;
        if (!g_str_has_prefix(link, "/memfd:"))
            return -EINVAL;
        return iomap_add(o, m->ioas_id, m->iova, m->length, true);
    }
    case IOMMU_IOAS_UNMAP: {
        struct iommu_ioas_unmap *u = arg;
        for (guint i = 0; i < o->iomaps->len; i++) {
            fk_iomap *m = &g_array_index(o->iomaps, fk_iomap, i);
            if (m->ioas == u->ioas_id && m->iova == u->iova && m->length == u->length) {
                if (m->gen == CUR->gen)
                    CUR->locked -= m->length;
                g_array_remove_index_fast(o->iomaps, i);
                return 0;
            }
        }
        return -ENOENT;
    }
    case IOMMU_IOAS_CHANGE_PROCESS: {
        guint64 move = 0;
        if (fk.no_change_process)
            return -ENOTTY;
        for (guint i = 0; i < o->iomaps->len; i++) {
            fk_iomap *m = &g_array_index(o->iomaps, fk_iomap, i);
            if (!m->by_file)
                return -EINVAL;
            if (m->gen != CUR->gen)
                move += m->length;
        }
        /* all or nothing */
        if (CUR->locked + move > CUR->limit)
            return -ENOMEM;
        CUR->locked += move;
        for (guint i = 0; i < o->iomaps->len; i++) {
            fk_iomap *m = &g_array_index(o->iomaps, fk_iomap, i);
            fk_proc *was = m->gen != CUR->gen ? proc_by_gen(m->gen) : NULL;
            if (was)
                was->locked -= m->length;
            m->gen = CUR->gen;
        }
        return 0;
    }
    }
    return -ENOTTY;
}

static int cdev_ioctl(fk_obj *o, unsigned long request, void *arg)
{
    switch (request) {
    case VFIO_DEVICE_BIND_IOMMUFD: {
        struct vfio_device_bind_iommufd *b = arg;
        fk_obj *ictx = obj(b->iommufd, FK_IOMMUFD);
        if (!ictx)
            return -EBADF;
        if (o->bound_to >= 0 || o->group->bound >= 0)
            return -EINVAL; /* a cdev is bound once */
        o->bound_to = b->iommufd;
        o->group->bound = b->iommufd;
        o->devid = b->out_devid = ictx->next_id++;
        return 0;
    }
    case VFIO_DEVICE_ATTACH_IOMMUFD_PT: {
        struct vfio_device_attach_iommufd_pt *a = arg;
        fk_obj *ictx = o->bound_to >= 0 ? obj(o->bound_to, FK_IOMMUFD) : NULL;
        if (!ictx || !g_hash_table_contains(ictx->ioas, GUINT_TO_POINTER(a->pt_id)))
            return -EINVAL;
        o->pt = a->pt_id = ictx->next_id++; /* the automatic HWPT */
        return 0;
    }
    }
    /* until bound, the device refuses everything (vfio_device_fops) */
    return o->bound_to >= 0 ? device_ioctl(o, request, arg) : -EINVAL;
}

static int f_ioctl(int fd, unsigned long request, void *arg)
{
    gpointer n;
    fk_obj *o;

    ENTER(FK_IOCTL);
    n = g_hash_table_lookup(fk.ioctls, GSIZE_TO_POINTER(request));
    g_hash_table_insert(fk.ioctls, GSIZE_TO_POINTER(request), GSIZE_TO_POINTER(GPOINTER_TO_SIZE(n) + 1));
    if (fk.fail_req == request && fk.fail_req_nth && --fk.fail_req_nth == 0)
        return -fk.fail_req_err;
    if (fk.streams && g_hash_table_contains(fk.streams, GINT_TO_POINTER(fd))) {
        fk_stream *st = g_hash_table_lookup(fk.streams, GINT_TO_POINTER(fd));
        guint64 *p = (guint64 *)((guint8 *)arg + 8); /* vfio_precopy_info: initial, dirty */
        if (request != VFIO_MIG_GET_PRECOPY_INFO || !st->precopy)
            return -EINVAL;
        p[0] = st->len - st->pos;
        p[1] = 0;
        return 0;
    }
    fd = canonical(fd);
    o = g_hash_table_lookup(fk.objs, GINT_TO_POINTER(fd));
    if (!o)
        return REAL->ioctl(fd, request, arg); /* e.g. a real KVM VM in the host tests */
    switch (o->type) {
    case FK_CONTAINER:
        return container_ioctl(fd, o, request, arg);
    case FK_GROUP:
        return group_ioctl(o, request, arg);
    case FK_DEVICE:
        return o->cdev ? cdev_ioctl(o, request, arg) : device_ioctl(o, request, arg);
    case FK_IOMMUFD:
        return iommufd_ioctl(o, request, arg);
    default:
        return kvm_ioctl(fd, o, request, arg);
    }
}

static int f_open(const char *path, int flags)
{
    int id;
    char *end;

    ENTER(FK_OPEN);
    if (strcmp(path, "/dev/kvm") == 0 && fk.fake_kvm)
        return new_object(path, S_IFCHR | 0666, makedev(10, 232), FK_KVM, NULL);
    if (strcmp(path, "/dev/vfio/vfio") == 0)
        return new_object(path, S_IFCHR | 0666, makedev(10, 196), FK_CONTAINER, NULL);
    if (strcmp(path, "/dev/iommu") == 0)
        return fk.iommufd ? new_object(path, S_IFCHR | 0660, makedev(10, 257), FK_IOMMUFD, NULL)
                          : -ENOENT;
    if (strcmp(path, "/dev/vfio/devices") == 0)
        return fk.iommufd ? REAL->open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -ENOENT;
    if (g_str_has_prefix(path, "/dev/vfio/devices/vfio")) {
        fk_group *g;
        fk_obj *o;
        pretend *p;
        int fd;
        id = (int)strtol(path + strlen("/dev/vfio/devices/vfio"), &end, 10);
        g = *end || !fk.iommufd ? NULL : g_hash_table_lookup(fk.groups, GINT_TO_POINTER(id));
        if (!g)
            return -ENOENT;
        fd = new_object(path, 0, 0, FK_DEVICE, g);
        if (fd < 0)
            return fd;
        o = obj(fd, FK_DEVICE);
        o->cdev = true;
        /* a real character device: its own inode and rdev, unlike a group's device fd */
        p = find_pretend(fd);
        p->st = (vfiocpr_fd_stat){ .dev = 5, .ino = ++fk.next_ino, .rdev = makedev(235, (unsigned)id),
                                   .mode = S_IFCHR | 0600 };
        return fd;
    }
    if (g_str_has_prefix(path, "/dev/vfio/")) {
        fk_group *g;
        id = (int)strtol(path + strlen("/dev/vfio/"), &end, 10);
        g = *end ? NULL : g_hash_table_lookup(fk.groups, GINT_TO_POINTER(id));
        if (!g)
            return -ENOENT;
        if (g->fd >= 0)
            return -EBUSY; /* groups are single-open */
        g->fd = new_object(path, S_IFCHR | 0600, makedev(511, (unsigned)id), FK_GROUP, g);
        return g->fd;
    }
    return REAL->open(path, flags);
}

static int f_readlink(const char *path, char *buf, size_t len)
{
    GHashTableIter it;
    gpointer v;

    ENTER(FK_READLINK);
    g_hash_table_iter_init(&it, fk.groups);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        fk_group *g = v;
        g_autofree char *p1 = g_strdup_printf("/sys/bus/%s/devices/%s/iommu_group",
                                              g->mdev ? "mdev" : "pci", g->device);
        if (strcmp(path, p1) == 0)
            return g_snprintf(buf, len, "../../../kernel/iommu_groups/%d", g->id);
    }
    if (g_str_has_prefix(path, "/sys/"))
        return -ENOENT;
    return REAL->readlink(path, buf, len);
}

static int f_dir_entry(const char *dir, const char *prefix, char *buf, size_t len)
{
    GHashTableIter it;
    gpointer v;

    ENTER(FK_DIR_ENTRY);
    g_hash_table_iter_init(&it, fk.groups);
    while (fk.iommufd && g_hash_table_iter_next(&it, NULL, &v)) {
        fk_group *g = v;
        g_autofree char *d = g_strdup_printf("/sys/bus/%s/devices/%s/vfio-dev",
                                             g->mdev ? "mdev" : "pci", g->device);
        g_autofree char *name = g_strdup_printf("vfio%d", g->id);
        if (strcmp(dir, d) == 0 && g_str_has_prefix(name, prefix))
            return g_strlcpy(buf, name, len) < len ? 0 : -ENAMETOOLONG;
    }
    if (g_str_has_prefix(dir, "/sys/"))
        return -ENOENT;
    return REAL->dir_entry(dir, prefix, buf, len);
}

static ssize_t f_send_msg(int sock, const void *buf, size_t len, const int *fds, unsigned n_fds)
{
    ENTER_UNLOCKED(FK_SEND_MSG);
    return REAL->send_msg(sock, buf, len, fds, n_fds);
}

static ssize_t f_recv_msg(int sock, void *buf, size_t len, int *fds, unsigned max_fds,
                          unsigned *n_fds)
{
    ENTER_UNLOCKED(FK_RECV_MSG);
    return REAL->recv_msg(sock, buf, len, fds, max_fds, n_fds);
}

static int f_wait_readable(int fd, int timeout_ms)
{
    ENTER_UNLOCKED(FK_WAIT_READABLE);
    return REAL->wait_readable(fd, timeout_ms);
}

static int f_peer_cred(int sock, guint32 *pid, guint32 *uid, guint32 *my_uid)
{
    int r;
    ENTER(FK_PEER_CRED);
    r = REAL->peer_cred(sock, pid, uid, my_uid);
    if (r == 0 && fk.peer_uid_set)
        *uid = fk.peer_uid;
    return r;
}

static int f_shutdown(int sock)
{
    ENTER(FK_SHUTDOWN);
    return REAL->shutdown(sock);
}

static guint32 f_getpid(void)
{
    return REAL->getpid();
}

static gint64 f_monotonic_ms(void)
{
    return REAL->monotonic_ms();
}

static int f_mmap(int fd, size_t len, int prot, off_t off, void **addr)
{
    ENTER(FK_MMAP);
    if (obj(fd, FK_DEVICE)) {
        void *p;
        if (obj(fd, FK_DEVICE)->cdev && obj(fd, FK_DEVICE)->bound_to < 0)
            return -EINVAL;
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return -errno;
        *addr = p;
        return 0;
    }
    return REAL->mmap(fd, len, prot, off, addr);
}

static int f_munmap(void *addr, size_t len)
{
    ENTER(FK_MUNMAP);
    return REAL->munmap(addr, len);
}

static int f_eventfd(unsigned int initval, int flags)
{
    ENTER(FK_EVENTFD);
    return REAL->eventfd(initval, flags);
}

static int f_readable(int fd)
{
    ENTER(FK_READABLE);
    return REAL->readable(fd);
}

static ssize_t f_read(int fd, void *buf, size_t len)
{
    fk_stream *st;
    gsize n;
    ENTER(FK_READ);
    st = fk.streams ? g_hash_table_lookup(fk.streams, GINT_TO_POINTER(fd)) : NULL;
    if (!st)
        return REAL->read(fd, buf, len);
    if (st->resuming)
        return -EINVAL;
    if (st->pos == st->len)
        return st->precopy ? -ENOMSG : 0;
    n = MIN(len, st->len - st->pos);
    memcpy(buf, st->src + st->pos, n);
    st->pos += n;
    return (ssize_t)n;
}

static ssize_t f_write(int fd, const void *buf, size_t len)
{
    fk_stream *st;
    ENTER(FK_WRITE);
    st = fk.streams ? g_hash_table_lookup(fk.streams, GINT_TO_POINTER(fd)) : NULL;
    if (!st)
        return REAL->write(fd, buf, len);
    if (!st->resuming)
        return -EINVAL;
    g_byte_array_append(st->buf, buf, (guint)len);
    return (ssize_t)len;
}

static off_t f_lseek(int fd, off_t off)
{
    ENTER(FK_LSEEK);
    return REAL->lseek(fd, off);
}

static int f_memlock(guint64 *limit, bool *cap)
{
    ENTER(FK_MEMLOCK);
    if (!fk.memlock_set)
        return REAL->memlock(limit, cap);
    *limit = fk.memlock_limit;
    *cap = fk.cap_ipc_lock;
    return 0;
}

static const vfiocpr_kernel_ops fake_ops = {
    .memfd_create = f_memfd_create,
    .pwrite = f_pwrite,
    .pread = f_pread,
    .fstat = f_fstat,
    .fd_path = f_fd_path,
    .get_cloexec = f_get_cloexec,
    .set_cloexec = f_set_cloexec,
    .cloexec_range = f_cloexec_range,
    .get_seals = f_get_seals,
    .add_seals = f_add_seals,
    .close = f_close,
    .execve = f_execve,
    .ioctl = f_ioctl,
    .open = f_open,
    .readlink = f_readlink,
    .mmap = f_mmap,
    .munmap = f_munmap,
    .memlock = f_memlock,
    .eventfd = f_eventfd,
    .readable = f_readable,
    .read = f_read,
    .write = f_write,
    .lseek = f_lseek,
    .dir_entry = f_dir_entry,
    .send_msg = f_send_msg,
    .recv_msg = f_recv_msg,
    .wait_readable = f_wait_readable,
    .peer_cred = f_peer_cred,
    .shutdown = f_shutdown,
    .getpid = f_getpid,
    .monotonic_ms = f_monotonic_ms,
};

static void free_pretend(gpointer p)
{
    g_free(((pretend *)p)->link);
    g_free(p);
}

void fake_kernel_reset(void)
{
    if (fk.log)
        g_array_unref(fk.log);
    if (fk.pretend) {
        /* close what the fake itself opened, so tests do not leak fds */
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, fk.pretend);
        while (g_hash_table_iter_next(&it, &k, &v))
            if (((pretend *)v)->owned)
                REAL->close(GPOINTER_TO_INT(k));
        g_hash_table_destroy(fk.pretend);
    }
    if (fk.objs)
        g_hash_table_destroy(fk.objs);
    if (fk.by_real)
        g_hash_table_destroy(fk.by_real);
    if (fk.groups)
        g_hash_table_destroy(fk.groups);
    if (fk.ioctls)
        g_hash_table_destroy(fk.ioctls);
    if (fk.streams) {
        GHashTableIter it;
        gpointer k;
        g_hash_table_iter_init(&it, fk.streams);
        while (g_hash_table_iter_next(&it, &k, NULL))
            REAL->close(GPOINTER_TO_INT(k));
        g_hash_table_destroy(fk.streams);
    }
    if (fk.mig_blob)
        g_byte_array_unref(fk.mig_blob);
    if (fk.arcs)
        g_array_unref(fk.arcs);
    memset(&fk, 0, sizeof(fk));
    fk.log = g_array_new(FALSE, FALSE, sizeof(fk_op));
    fk.pretend = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, free_pretend);
    fk.objs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, free_obj);
    fk.by_real = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    fk.groups = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, free_group);
    fk.ioctls = g_hash_table_new(g_direct_hash, g_direct_equal);
    fk.streams = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, free_stream);
    fk.arcs = g_array_new(FALSE, FALSE, sizeof(guint));
    memset(fk_procs, 0, sizeof(fk_procs));
    fk_cur_proc = 0;
    CUR->gen = fk_next_gen++;
    CUR->limit = G_MAXUINT64;
    fk.next_ino = 1000;
    fk.next_fd = 950;
    fk.irq_count[VFIO_PCI_INTX_IRQ_INDEX] = 1;
    fk.irq_count[VFIO_PCI_MSI_IRQ_INDEX] = 1;
    fk.irq_count[VFIO_PCI_MSIX_IRQ_INDEX] = 5;
    fk.irq_count[VFIO_PCI_ERR_IRQ_INDEX] = 1;
    fk.irq_count[VFIO_PCI_REQ_IRQ_INDEX] = 1;
    vfiocpr_kernel_set_ops(&fake_ops);
}

void fake_vfio_add_group(int id, const char *device, bool mdev)
{
    fk_group *g = g_new0(fk_group, 1);
    g->id = id;
    g->device = g_strdup(device);
    g->mdev = mdev;
    g->fd = -1;
    g->container = -1;
    g->bound = -1;
    g_hash_table_insert(fk.groups, GINT_TO_POINTER(id), g);
}

unsigned fake_vfio_ioctls(unsigned long request)
{
    return GPOINTER_TO_SIZE(g_hash_table_lookup(fk.ioctls, GSIZE_TO_POINTER(request)));
}

void fake_vfio_fail_ioctl(unsigned long request, unsigned nth, int err)
{
    fk.fail_req = request;
    fk.fail_req_nth = nth;
    fk.fail_req_err = err;
}

int fake_vfio_dma(int container_fd, guint64 iova, guint64 *size, guint64 *vaddr)
{
    fk_obj *c = obj(container_fd, FK_CONTAINER);
    if (!c)
        return -EBADF;
    for (guint i = 0; i < c->dmas->len; i++) {
        fk_dma *d = &g_array_index(c->dmas, fk_dma, i);
        if (d->iova == iova) {
            if (size)
                *size = d->size;
            if (vaddr)
                *vaddr = d->vaddr;
            return d->invalid ? 0 : 1;
        }
    }
    return -ENOENT;
}

unsigned fake_vfio_dma_count(int container_fd)
{
    fk_obj *c = obj(container_fd, FK_CONTAINER);
    return c ? c->dmas->len : 0;
}

void fake_vfio_new_process(guint64 locked_limit)
{
    CUR->gen = fk_next_gen++;
    CUR->locked = 0;
    CUR->limit = locked_limit;
}

void fake_kernel_set_memlock(guint64 limit, bool cap_ipc_lock)
{
    fk.memlock_set = true;
    fk.memlock_limit = limit;
    fk.cap_ipc_lock = cap_ipc_lock;
}

unsigned fake_vfio_device_closes(void)
{
    return fk.device_closes;
}

void fake_kernel_uninstall(void)
{
    vfiocpr_kernel_set_ops(NULL);
}

void fake_kernel_fail(fk_op op, unsigned nth, int err)
{
    fk.fail_op = op;
    fk.fail_nth = nth;
    fk.fail_err = err;
}

unsigned fake_kernel_calls(fk_op op)
{
    return fk.calls[op];
}

fk_op fake_kernel_call_op(unsigned nth)
{
    return nth >= 1 && nth <= fk.log->len ? g_array_index(fk.log, fk_op, nth - 1) : FK_ANY;
}

void fake_kernel_set_execve(fk_execve_fn fn)
{
    fk.execve = fn;
}

void fake_kernel_pretend(int fd, const char *link, guint32 mode, guint64 dev, guint64 ino,
                         guint64 rdev)
{
    pretend *p = g_new0(pretend, 1);
    p->link = g_strdup(link);
    p->st = (vfiocpr_fd_stat){ .dev = dev, .ino = ino, .rdev = rdev, .mode = mode };
    p->cloexec = 1;
    g_hash_table_insert(fk.pretend, GINT_TO_POINTER(fd), p);
}

int fake_kernel_pretend_cloexec(int fd)
{
    pretend *p = find_pretend(fd);
    return p ? p->cloexec : -EBADF;
}

static GBytes *captured;

static int capture_execve(const char *path, char *const argv[], char *const envp[])
{
    const char *prefix = VFIOCPR_STATE_ENV "=";
    for (gsize i = 0; envp[i]; i++) {
        if (g_str_has_prefix(envp[i], prefix)) {
            int fd = atoi(envp[i] + strlen(prefix));
            g_autoptr(GError) err = NULL;
            g_assert_cmpint(vfiocpr_state_read_fd(fd, &captured, &err), ==, 0);
        }
    }
    return -ENOENT;
}

GBytes *fake_kernel_capture_state(vfiocpr *ctx)
{
    char *argv[] = { (char *)"capture", NULL };
    fk_execve_fn old = fk.execve;
    g_autoptr(GError) err = NULL;

    captured = NULL;
    fk.execve = capture_execve;
    g_assert_cmpint(vfiocpr_exec(ctx, "/nonexistent/capture", argv, NULL, &err), ==, -ENOENT);
    fk.execve = old;
    g_assert_nonnull(captured);
    return g_steal_pointer(&captured);
}

static int exec_ok_fd;

static int exec_ok(const char *path, char *const argv[], char *const envp[])
{
    const char *prefix = VFIOCPR_STATE_ENV "=";
    for (gsize i = 0; envp[i]; i++)
        if (g_str_has_prefix(envp[i], prefix))
            exec_ok_fd = atoi(envp[i] + strlen(prefix));
    return 0;
}

int fake_kernel_exec_ok(vfiocpr *ctx, guint64 locked_limit)
{
    char *argv[] = { (char *)"new-vmm", NULL };
    fk_execve_fn old = fk.execve;
    g_autoptr(GError) err = NULL;

    exec_ok_fd = -1;
    fk.execve = exec_ok;
    g_assert_cmpint(vfiocpr_exec(ctx, "/usr/bin/new-vmm", argv, NULL, &err), ==, 0);
    g_assert_no_error(err);
    fk.execve = old;
    g_assert_cmpint(exec_ok_fd, >=, 0);
    fake_vfio_new_process(locked_limit);
    return exec_ok_fd;
}

void fake_vfio_set_irq_count(unsigned index, unsigned count, bool noresize)
{
    fk.irq_count[index] = count;
    if (index == VFIO_PCI_MSIX_IRQ_INDEX)
        fk.msix_noresize = noresize;
}

unsigned fake_vfio_irq_rerequests(void)
{
    return fk.irq_rerequests;
}

unsigned fake_vfio_irq_live(int device_fd, unsigned index)
{
    fk_obj *o = obj(device_fd, FK_DEVICE);
    return o ? o->live[index] : 0;
}

int fake_vfio_unmask_fd(int device_fd)
{
    fk_obj *o = obj(device_fd, FK_DEVICE);
    return o ? o->unmask_fd : -1;
}

void fake_kvm_enable(void)
{
    fk.fake_kvm = true;
}

int fake_kvm_irqfd_gsi(int vm_fd, int efd)
{
    fk_obj *o = obj(vm_fd, FK_VM);
    gpointer v = o ? g_hash_table_lookup(o->irqfds, GINT_TO_POINTER(efd)) : NULL;
    return v ? (int)GPOINTER_TO_UINT(v) - 1 : -1;
}

unsigned fake_kvm_irqfds(int vm_fd)
{
    fk_obj *o = obj(vm_fd, FK_VM);
    return o ? g_hash_table_size(o->irqfds) : 0;
}

unsigned fake_kvm_routings(int vm_fd, unsigned *last_routes)
{
    fk_obj *o = obj(vm_fd, FK_VM);
    if (last_routes)
        *last_routes = o ? o->last_routes : 0;
    return o ? o->routings : 0;
}

void fake_mig_setup(guint32 flags, const void *blob, gsize len, guint precopy_initial)
{
    fk.mig_flags = flags;
    if (fk.mig_blob)
        g_byte_array_unref(fk.mig_blob);
    fk.mig_blob = g_byte_array_new();
    g_byte_array_append(fk.mig_blob, blob, (guint)len);
    fk.mig_precopy_initial = precopy_initial;
}

void fake_mig_force_state(int device_fd, guint state)
{
    fk_obj *o = obj(device_fd, FK_DEVICE);
    if (!o)
        return;
    o->mig_state = state;
    o->data_fd = -1; /* a forced state has no data stream */
}

guint fake_mig_state(int device_fd)
{
    fk_obj *o = obj(device_fd, FK_DEVICE);
    return o ? o->mig_state : 0;
}

const GArray *fake_mig_arcs(void)
{
    return fk.arcs;
}

void fake_mig_clear_arcs(void)
{
    g_array_set_size(fk.arcs, 0);
}

void fake_iommufd_enable(bool change_process)
{
    fk.iommufd = true;
    fk.no_change_process = !change_process;
}

guint64 fake_kernel_locked(void)
{
    return CUR->locked;
}

void fake_kernel_set_locked_limit(guint64 limit)
{
    CUR->limit = limit;
}

unsigned fake_iommufd_maps(int iommufd_fd, guint64 *pinned_here)
{
    fk_obj *o = obj(iommufd_fd, FK_IOMMUFD);
    guint64 here = 0;
    if (!o)
        return 0;
    for (guint i = 0; i < o->iomaps->len; i++)
        if (g_array_index(o->iomaps, fk_iomap, i).gen == CUR->gen)
            here += g_array_index(o->iomaps, fk_iomap, i).length;
    if (pinned_here)
        *pinned_here = here;
    return o->iomaps->len;
}

bool fake_iommufd_mapped(int iommufd_fd, guint64 iova, bool *by_file)
{
    fk_obj *o = obj(iommufd_fd, FK_IOMMUFD);
    for (guint i = 0; o && i < o->iomaps->len; i++)
        if (g_array_index(o->iomaps, fk_iomap, i).iova == iova) {
            if (by_file)
                *by_file = g_array_index(o->iomaps, fk_iomap, i).by_file;
            return true;
        }
    return false;
}

int fake_iommufd_cdev_binding(int cdev_fd, guint32 *devid, guint32 *pt)
{
    fk_obj *o = obj(cdev_fd, FK_DEVICE);
    if (!o || !o->cdev)
        return -ENOENT;
    if (devid)
        *devid = o->devid;
    if (pt)
        *pt = o->pt;
    return o->bound_to;
}

void fake_kernel_set_peer_uid(guint32 uid)
{
    fk.peer_uid_set = true;
    fk.peer_uid = uid;
}

void fake_kernel_become_process(guint64 locked_limit)
{
    g_rec_mutex_lock(&fk_lock);
    for (int i = 1; i < FK_N_PROCS; i++)
        if (!fk_procs[i].gen) {
            fk_cur_proc = i;
            break;
        }
    g_assert_cmpint(fk_cur_proc, !=, 0);
    CUR->gen = fk_next_gen++;
    CUR->locked = 0;
    CUR->limit = locked_limit;
    g_rec_mutex_unlock(&fk_lock);
}

guint64 fake_kernel_locked_of_main(void)
{
    return fk_procs[0].locked;
}

void fake_kernel_alias_real(int fd)
{
    vfiocpr_fd_stat real;
    pretend *p = find_pretend(fd);

    g_assert_nonnull(p);
    g_assert_cmpint(REAL->fstat(fd, &real, NULL), ==, 0);
    p->real_ino = real.ino;
    g_hash_table_insert(fk.by_real, g_memdup2(&real.ino, sizeof(guint64)), GINT_TO_POINTER(fd));
}

typedef struct {
    int sock;
    GBytes *blob;
} capture_xfer;

static gpointer capture_xfer_peer(gpointer p)
{
    capture_xfer *c = p;
    peer_offer o;
    struct stat st;

    if (peer_recv_offer(c->sock, &o, 5000) == 0 && fstat(o.state_fd, &st) == 0) {
        guint8 *buf = g_malloc(st.st_size);
        g_assert_cmpint(pread(o.state_fd, buf, st.st_size, 0), ==, st.st_size);
        c->blob = g_bytes_new_take(buf, st.st_size);
    }
    peer_offer_close(&o);
    peer_send_text(c->sock, VFIOCPR_XFER_REFUSE, "captured");
    return NULL;
}

GBytes *fake_kernel_capture_transfer(vfiocpr *ctx)
{
    capture_xfer c = { 0 };
    int sv[2];
    GThread *t;

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    c.sock = sv[1];
    t = g_thread_new("capture", capture_xfer_peer, &c);
    g_assert_cmpint(vfiocpr_transfer(ctx, sv[0], 5000, 0, NULL), ==, -ECANCELED);
    g_thread_join(t);
    close(sv[0]);
    close(sv[1]);
    g_assert_nonnull(c.blob);
    return c.blob;
}

unsigned fake_kvm_irqchip_routes(int vm_fd)
{
    fk_obj *o = obj(vm_fd, FK_VM);
    return o ? o->last_irqchip : 0;
}

void fake_kvm_split_irqchip(int vm_fd)
{
    fk_obj *o = obj(vm_fd, FK_VM);
    g_assert_nonnull(o);
    o->split_irqchip = true;
}

unsigned fake_kernel_exec_calls(vfiocpr *ctx)
{
    char *argv[] = { (char *)"x", NULL };
    unsigned before = fake_kernel_calls(FK_ANY), total;

    g_assert_cmpint(vfiocpr_exec(ctx, "/x", argv, NULL, NULL), ==, -ENOENT);
    for (total = fake_kernel_calls(FK_ANY); total > before; total--)
        if (fake_kernel_call_op(total) == FK_EXECVE)
            break;
    return total - before;
}
