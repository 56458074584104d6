/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake kernel's core: fault injection, pretended fds and fake objects, the
 * dispatch of every op to the subsystem models (fake-kernel-private.h lists them). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "fake-kernel-private.h"
#include "seam-record.h"
#include "transfer-peer.h"

struct fk_state fk;
fk_proc fk_procs[FK_N_PROCS];
static unsigned fk_next_gen = 1;
__thread int fk_cur_proc;

fk_proc *fk_proc_by_gen(unsigned gen)
{
    for (int i = 0; i < FK_N_PROCS; i++)
        if (fk_procs[i].gen == gen)
            return &fk_procs[i];
    return NULL;
}

static const char *const names[] = {
    "memfd_create", "pwrite", "pread", "fstat", "fd_path", "get_cloexec", "set_cloexec",
    "cloexec_range", "get_seals", "add_seals", "close", "execve", "ioctl", "open", "readlink",
    "mmap", "munmap", "memlock", "eventfd", "readable", "read", "write", "lseek", "dir_entry",
    "send_msg", "recv_msg", "wait_readable", "peer_cred", "shutdown", "fdinfo", "any",
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
pretend *fk_find_pretend(int fd)
{
    return fk.pretend ? g_hash_table_lookup(fk.pretend, GINT_TO_POINTER(fd)) : NULL;
}

/* An object is an open file, as in the kernel, not an fd number: an fd that is a
 * dup of a fake object's backing file (received over a socket) is that object.
 * Returns the number the object is known by. */
int fk_canonical(int fd)
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
    return fk_find_pretend(fk_canonical(fd));
}

static int f_memfd_create(const char *name, unsigned int flags)
{
    int fd;
    ENTER(FK_MEMFD_CREATE);
    fd = REAL->memfd_create(name, flags);
    if (fd >= 0 && fk.memfd_at > 0) {
        int at = fk.memfd_at++;
        g_assert_cmpint(dup3(fd, at, (flags & MFD_CLOEXEC) ? O_CLOEXEC : 0), ==, at);
        close(fd);
        fd = at;
    }
    return fd;
}

void fake_kernel_memfd_at(int first)
{
    fk.memfd_at = first;
}

void fake_kernel_pretend_memfd(int fd, guint64 dev, guint64 ino)
{
    pretend *p;
    fake_kernel_pretend(fd, "/memfd:vfiocpr-dma (deleted)", S_IFREG | 0600, dev, ino, 0);
    p = fk_find_pretend(fd);
    p->real_file = true;
}

static ssize_t f_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    fk_obj *o;
    ssize_t r;
    ENTER(FK_PWRITE);
    if ((o = fk_obj_get(fd, FK_DEVICE)) &&
        (r = fk_device_rw(o, (void *)buf, len, off, true)) != FK_NOT_MINE)
        return r;
    return REAL->pwrite(fd, buf, len, off);
}

static ssize_t f_pread(int fd, void *buf, size_t len, off_t off)
{
    fk_obj *o;
    ssize_t r;
    ENTER(FK_PREAD);
    if ((o = fk_obj_get(fd, FK_DEVICE)) && (r = fk_device_rw(o, buf, len, off, false)) != FK_NOT_MINE)
        return r;
    return REAL->pread(fd, buf, len, off);
}

static int f_fstat(int fd, vfiocpr_fd_stat *st, off_t *size)
{
    pretend *p;
    ENTER(FK_FSTAT);
    if ((p = find_object_pretend(fd))) {
        vfiocpr_fd_stat real;
        *st = p->st;
        if (size)
            *size = 0;
        if (p->real_file && size)
            REAL->fstat(fd, &real, size);
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
    if ((p = fk_find_pretend(fd)))
        return p->cloexec;
    return REAL->get_cloexec(fd);
}

static int f_set_cloexec(int fd, bool on)
{
    pretend *p;
    ENTER(FK_SET_CLOEXEC);
    if ((p = fk_find_pretend(fd))) {
        p->cloexec = on;
        return 0;
    }
    return REAL->set_cloexec(fd, on);
}

static int f_cloexec_range(int first, int last)
{
    ENTER(FK_CLOEXEC_RANGE);
    for (int fd = first; fd <= last; fd++) {
        pretend *p = fk_find_pretend(fd);
        if (p)
            p->cloexec = 1;
        else
            REAL->set_cloexec(fd, true); /* EBADF on holes is fine, as close_range */
    }
    return 0;
}

static int f_get_seals(int fd)
{
    pretend *p;
    ENTER(FK_GET_SEALS);
    p = find_object_pretend(fd);
    return p && !p->real_file ? -EINVAL : REAL->get_seals(fd);
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
        if (REAL->fstat(n, &st, NULL) == 0 && st.ino == ino && !fk_find_pretend(n)) {
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
    if (fk_mig_stream_close(fd))
        return REAL->close(fd);
    if (fk_canonical(fd) != fd)
        return REAL->close(fd); /* a dup: the object lives on */
    if ((p = fk_find_pretend(fd))) {
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

int fk_new_object(const char *link, guint32 mode, guint64 rdev, int type, fk_group *g)
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
    fake_kernel_pretend(fd, link, mode, FK_DEVTMPFS_DEV,
                        type == FK_DEVICE ? FK_ANON_DEVICE_INO : ++fk.next_ino, rdev);
    p = fk_find_pretend(fd);
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
        p->st.dev = FK_ANON_DEV;
    o = g_new0(fk_obj, 1);
    o->type = type;
    o->group = g;
    if (type == FK_VM)
        o->irqfds = g_array_new(FALSE, TRUE, sizeof(fk_irqfd));
    o->unmask_fd = -1;
    o->mig_state = VFIO_DEVICE_STATE_RUNNING;
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
        g_array_unref(o->irqfds);
    if (o->iomaps) {
        g_array_unref(o->iomaps);
        g_hash_table_destroy(o->ioas);
    }
    g_free(o);
}

fk_obj *fk_obj_get(int fd, int type)
{
    fk_obj *o = g_hash_table_lookup(fk.objs, GINT_TO_POINTER(fk_canonical(fd)));
    return o && o->type == type ? o : NULL;
}

static int f_ioctl(int fd, unsigned long request, void *arg)
{
    gpointer n;
    fk_obj *o;
    fk_stream *st;

    ENTER(FK_IOCTL);
    n = g_hash_table_lookup(fk.ioctls, GSIZE_TO_POINTER(request));
    g_hash_table_insert(fk.ioctls, GSIZE_TO_POINTER(request), GSIZE_TO_POINTER(GPOINTER_TO_SIZE(n) + 1));
    if (fk.fail_req == request && fk.fail_req_nth && --fk.fail_req_nth == 0)
        return -fk.fail_req_err;
    if ((st = fk_mig_stream(fd)))
        return fk_mig_stream_ioctl(st, request, arg);
    fd = fk_canonical(fd);
    o = g_hash_table_lookup(fk.objs, GINT_TO_POINTER(fd));
    if (!o)
        return REAL->ioctl(fd, request, arg); /* e.g. a real KVM VM in the host tests */
    switch (o->type) {
    case FK_CONTAINER:
        return fk_container_ioctl(fd, o, request, arg);
    case FK_GROUP:
        return fk_group_ioctl(o, request, arg);
    case FK_DEVICE:
        return o->cdev ? fk_cdev_ioctl(o, request, arg) : fk_device_ioctl(o, request, arg);
    case FK_IOMMUFD:
        return fk_iommufd_ioctl(o, request, arg);
    default:
        return fk_kvm_ioctl(fd, o, request, arg);
    }
}

static int f_open(const char *path, int flags)
{
    int r;

    ENTER(FK_OPEN);
    /* iommufd before type1: /dev/vfio/devices is not a group */
    if ((r = fk_kvm_open(path)) != FK_NOT_MINE || (r = fk_iommufd_open(path)) != FK_NOT_MINE ||
        (r = fk_type1_open(path)) != FK_NOT_MINE)
        return r;
    return REAL->open(path, flags);
}

static int f_fdinfo(int fd, char *buf, size_t len)
{
    int r;

    ENTER(FK_FDINFO);
    if ((r = fk_devid_fdinfo(fd, buf, len)) != FK_NOT_MINE)
        return r;
    return REAL->fdinfo(fd, buf, len);
}

static int f_readlink(const char *path, char *buf, size_t len)
{
    int r;

    ENTER(FK_READLINK);
    if ((r = fk_type1_readlink(path, buf, len)) != FK_NOT_MINE)
        return r;
    if (g_str_has_prefix(path, "/sys/"))
        return -ENOENT;
    return REAL->readlink(path, buf, len);
}

static int f_dir_entry(const char *dir, const char *prefix, char *buf, size_t len)
{
    int r;

    ENTER(FK_DIR_ENTRY);
    if ((r = fk_iommufd_dir_entry(dir, prefix, buf, len)) != FK_NOT_MINE)
        return r;
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
    if (fk_obj_get(fd, FK_DEVICE)) {
        void *p;
        if (fk_obj_get(fd, FK_DEVICE)->cdev && fk_obj_get(fd, FK_DEVICE)->bound_to < 0)
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
    ENTER(FK_READ);
    if ((st = fk_mig_stream(fd)))
        return fk_mig_stream_read(st, buf, len);
    return REAL->read(fd, buf, len);
}

static ssize_t f_write(int fd, const void *buf, size_t len)
{
    fk_stream *st;
    ENTER(FK_WRITE);
    if ((st = fk_mig_stream(fd)))
        return fk_mig_stream_write(st, buf, len);
    return REAL->write(fd, buf, len);
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
    .fdinfo = f_fdinfo,
    .monotonic_ms = f_monotonic_ms,
};

static void free_pretend(gpointer p)
{
    g_free(((pretend *)p)->link);
    g_free(p);
}

void fake_kernel_reset(void)
{
    /* every handover of a unit test that uses a prepared state checks it */
    vfiocpr_prepared_verify = true;
    vfiocpr_prepared_ignore_gen = false;
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
    if (fk.ioctls)
        g_hash_table_destroy(fk.ioctls);
    fk_type1_free();
    fk_mig_free();
    memset(&fk, 0, sizeof(fk));
    fk.log = g_array_new(FALSE, FALSE, sizeof(fk_op));
    fk.pretend = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, free_pretend);
    fk.objs = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, free_obj);
    fk.by_real = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    fk.ioctls = g_hash_table_new(g_direct_hash, g_direct_equal);
    memset(fk_procs, 0, sizeof(fk_procs));
    fk_cur_proc = 0;
    CUR->gen = fk_next_gen++;
    CUR->limit = G_MAXUINT64;
    fk.next_ino = 1000;
    fk.next_fd = 950;
    fk_type1_reset();
    fk_mig_reset();
    fk_devid_reset();
    vfiocpr_kernel_set_ops(seam_record_wrap(&fake_ops));
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

void fake_kernel_uninstall(void)
{
    vfiocpr_kernel_set_ops(seam_record_wrap(NULL));
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
    pretend *p = fk_find_pretend(fd);
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
    if (vfiocpr_exec(ctx, "/usr/bin/new-vmm", argv, NULL, &err) < 0)
        g_error("fake exec: %s", err->message);
    g_assert_no_error(err);
    fk.execve = old;
    g_assert_cmpint(exec_ok_fd, >=, 0);
    fake_vfio_new_process(locked_limit);
    return exec_ok_fd;
}

guint64 fake_kernel_locked(void)
{
    return CUR->locked;
}

void fake_kernel_set_locked_limit(guint64 limit)
{
    CUR->limit = limit;
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
    pretend *p = fk_find_pretend(fd);

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

unsigned fake_kernel_exec_calls(vfiocpr *ctx)
{
    char *argv[] = { (char *)"x", NULL };
    unsigned before, total;

    /* The first handover seals the DMA tables (and a retry finds them sealed):
     * counted is what every attempt after the first issues. */
    g_assert_cmpint(vfiocpr_exec(ctx, "/x", argv, NULL, NULL), ==, -ENOENT);
    before = fake_kernel_calls(FK_ANY);
    g_assert_cmpint(vfiocpr_exec(ctx, "/x", argv, NULL, NULL), ==, -ENOENT);
    for (total = fake_kernel_calls(FK_ANY); total > before; total--)
        if (fake_kernel_call_op(total) == FK_EXECVE)
            break;
    return total - before;
}


