/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel seam: the only file of the library that makes system calls. Everything
 * else goes through vfiocpr_kernel so that the unit tests can swap in a fake kernel
 * that models VFIO/KVM and fails any chosen call.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/capability.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "private.h"

#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* /dev/vfio/vfio and /dev/kvm are fixed misc minors (include/linux/miscdevice.h). */
#define MISC_MAJOR_NR 10
#define VFIO_MINOR_NR 196
#define KVM_MINOR_NR 232

static int real_memfd_create(const char *name, unsigned int flags)
{
    int fd = memfd_create(name, flags);
    return fd < 0 ? -errno : fd;
}

static ssize_t real_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    ssize_t n;
    do {
        n = pwrite(fd, buf, len, off);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t real_pread(int fd, void *buf, size_t len, off_t off)
{
    ssize_t n;
    do {
        n = pread(fd, buf, len, off);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static int real_fstat(int fd, vfiocpr_fd_stat *st, off_t *size)
{
    struct stat s;
    if (fstat(fd, &s) < 0)
        return -errno;
    st->dev = s.st_dev;
    st->ino = s.st_ino;
    st->rdev = s.st_rdev;
    st->mode = s.st_mode;
    if (size)
        *size = s.st_size;
    return 0;
}

static int real_fd_path(int fd, char *buf, size_t len)
{
    char path[40];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, buf, len - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return (int)n;
}

static int real_get_cloexec(int fd)
{
    int f = fcntl(fd, F_GETFD);
    return f < 0 ? -errno : !!(f & FD_CLOEXEC);
}

static int real_set_cloexec(int fd, bool on)
{
    return fcntl(fd, F_SETFD, on ? FD_CLOEXEC : 0) < 0 ? -errno : 0;
}

static int real_cloexec_range(int first, int last)
{
    /* One syscall for a run of fds; old kernels (< 5.11) fall back to a loop. */
    if (syscall(SYS_close_range, (unsigned int)first, (unsigned int)last,
                CLOSE_RANGE_CLOEXEC) == 0)
        return 0;
    if (errno != ENOSYS && errno != EINVAL)
        return -errno;
    for (int fd = first; fd <= last; fd++)
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 && errno != EBADF)
            return -errno;
    return 0;
}

static int real_get_seals(int fd)
{
    int s = fcntl(fd, F_GET_SEALS);
    return s < 0 ? -errno : s;
}

static int real_add_seals(int fd, int seals)
{
    return fcntl(fd, F_ADD_SEALS, seals) < 0 ? -errno : 0;
}

static int real_close(int fd)
{
    /* Linux releases the fd even when close() reports EINTR: never retry. */
    return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

static int real_execve(const char *path, char *const argv[], char *const envp[])
{
    execve(path, argv, envp);
    return -errno;
}

static int real_ioctl(int fd, unsigned long request, void *arg)
{
    int r = ioctl(fd, request, arg);
    return r < 0 ? -errno : r;
}

static int real_open(const char *path, int flags)
{
    int fd;
    do {
        fd = open(path, flags | O_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static int real_readlink(const char *path, char *buf, size_t len)
{
    ssize_t n = readlink(path, buf, len - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return (int)n;
}

static int real_fdinfo(int fd, char *buf, size_t len)
{
    char path[64];
    size_t have = 0;
    int f, r = 0;

    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
    f = real_open(path, O_RDONLY);
    if (f < 0)
        return f;
    while (have < len - 1) {
        ssize_t n = read(f, buf + have, len - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        if (n == 0)
            break;
        have += (size_t)n;
    }
    close(f); /* read-only procfs file: nothing a failed close could lose */
    buf[have] = '\0';
    return r < 0 ? r : (int)have;
}

static int real_mmap(int fd, size_t len, int prot, off_t off, void **addr)
{
    void *p = mmap(NULL, len, prot, MAP_SHARED, fd, off);
    if (p == MAP_FAILED)
        return -errno;
    *addr = p;
    return 0;
}

static int real_munmap(void *addr, size_t len)
{
    return munmap(addr, len) < 0 ? -errno : 0;
}

static int real_memlock(guint64 *limit, bool *cap_ipc_lock)
{
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2] = { { 0 } };
    struct rlimit rl;

    if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
        return -errno;
    *limit = rl.rlim_cur == RLIM_INFINITY ? G_MAXUINT64 : (guint64)rl.rlim_cur;
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -errno;
    *cap_ipc_lock = data[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32));
    return 0;
}

static int real_eventfd(unsigned int initval, int flags)
{
    int fd = eventfd(initval, flags);
    return fd < 0 ? -errno : fd;
}

static int real_readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r = poll(&p, 1, 0);
    if (r < 0)
        return -errno;
    if (p.revents & POLLNVAL)
        return -EBADF;
    return r > 0 && (p.revents & POLLIN);
}

static ssize_t real_read(int fd, void *buf, size_t len)
{
    ssize_t n;
    do {
        n = read(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static ssize_t real_write(int fd, const void *buf, size_t len)
{
    ssize_t n;
    do {
        n = write(fd, buf, len);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static off_t real_lseek(int fd, off_t off)
{
    off_t r = lseek(fd, off, SEEK_SET);
    return r < 0 ? -errno : r;
}

static int real_dir_entry(const char *path, const char *prefix, char *buf, size_t len)
{
    DIR *dir = opendir(path);
    struct dirent *de;
    int r = -ENOENT;

    if (!dir)
        return -errno;
    while ((de = readdir(dir)))
        if (g_str_has_prefix(de->d_name, prefix)) {
            r = g_strlcpy(buf, de->d_name, len) < len ? 0 : -ENAMETOOLONG;
            break;
        }
    closedir(dir);
    return r;
}

static ssize_t real_send_msg(int sock, const void *buf, size_t len, const int *fds,
                             unsigned n_fds)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    g_autofree char *ctl = NULL;
    ssize_t r;

    if (n_fds) {
        struct cmsghdr *c;
        ctl = g_malloc0(CMSG_SPACE(n_fds * sizeof(int)));
        mh.msg_control = ctl;
        mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
    }
    do
        r = sendmsg(sock, &mh, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

static ssize_t real_recv_msg(int sock, void *buf, size_t len, int *fds, unsigned max_fds,
                             unsigned *n_fds)
{
    struct iovec iov = { .iov_base = buf, .iov_len = len };
    /* room for more than max_fds, so that a peer sending too many is seen */
    size_t room = CMSG_SPACE((max_fds + 1) * sizeof(int));
    g_autofree char *ctl = g_malloc0(room);
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                         .msg_controllen = room };
    unsigned got = 0;
    bool bad = false;
    ssize_t r;

    do
        r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        unsigned n;
        int *p;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        p = (int *)CMSG_DATA(c);
        for (unsigned i = 0; i < n; i++) {
            if (got < max_fds)
                fds[got++] = p[i];
            else {
                close(p[i]);
                bad = true;
            }
        }
    }
    if (bad || (mh.msg_flags & MSG_CTRUNC)) {
        for (unsigned i = 0; i < got; i++)
            close(fds[i]);
        *n_fds = 0;
        /* cut with room to spare: the kernel could not install them (RLIMIT_NOFILE) */
        return bad ? -EMSGSIZE : -EMFILE;
    }
    *n_fds = got;
    return r;
}

static int real_wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r;

    do
        r = poll(&p, 1, timeout_ms);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    if (p.revents & POLLNVAL)
        return -EBADF;
    return r > 0;
}

static int real_peer_cred(int sock, guint32 *pid, guint32 *uid, guint32 *my_uid)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);

    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
        return -errno;
    *pid = (guint32)cr.pid;
    *uid = (guint32)cr.uid;
    *my_uid = (guint32)geteuid();
    return 0;
}

static int real_shutdown(int sock)
{
    return shutdown(sock, SHUT_RDWR) < 0 ? -errno : 0;
}

static guint32 real_getpid(void)
{
    return (guint32)getpid();
}

static gint64 real_monotonic_ms(void)
{
    return g_get_monotonic_time() / 1000;
}

static const vfiocpr_kernel_ops real_ops = {
    .memfd_create = real_memfd_create,
    .pwrite = real_pwrite,
    .pread = real_pread,
    .fstat = real_fstat,
    .fd_path = real_fd_path,
    .get_cloexec = real_get_cloexec,
    .set_cloexec = real_set_cloexec,
    .cloexec_range = real_cloexec_range,
    .get_seals = real_get_seals,
    .add_seals = real_add_seals,
    .close = real_close,
    .execve = real_execve,
    .ioctl = real_ioctl,
    .open = real_open,
    .readlink = real_readlink,
    .mmap = real_mmap,
    .munmap = real_munmap,
    .memlock = real_memlock,
    .eventfd = real_eventfd,
    .readable = real_readable,
    .read = real_read,
    .write = real_write,
    .lseek = real_lseek,
    .dir_entry = real_dir_entry,
    .send_msg = real_send_msg,
    .recv_msg = real_recv_msg,
    .wait_readable = real_wait_readable,
    .peer_cred = real_peer_cred,
    .shutdown = real_shutdown,
    .getpid = real_getpid,
    .monotonic_ms = real_monotonic_ms,
    .fdinfo = real_fdinfo,
};

/* What each real op above may make the kernel see, for the seccomp rules: every
 * system call of the libc wrappers it uses (glibc's fstat is newfstatat since 2.33,
 * older ones fstat, others statx; opendir opens and fstats; clock_gettime is normally
 * the vDSO, a syscall only without a usable clock source). Keep it next to the ops:
 * a change of an op is a change of this line. */
const vfiocpr_op_syscalls vfiocpr_kernel_op_syscalls[] = {
    { "memfd_create", "memfd_create", { 0 } },
    { "pwrite", "pwrite64", { 0 } },
    { "pread", "pread64", { 0 } },
    { "fstat", "fstat newfstatat statx", { 0 } },
    { "fd_path", "readlink readlinkat", { 0 } },
    { "get_cloexec", "fcntl", { F_GETFD } },
    { "set_cloexec", "fcntl", { F_SETFD } },
    { "cloexec_range", "close_range fcntl", { F_SETFD } },
    { "get_seals", "fcntl", { F_GET_SEALS } },
    { "add_seals", "fcntl", { F_ADD_SEALS } },
    { "close", "close", { 0 } },
    { "execve", "execve", { 0 } },
    { "ioctl", "ioctl", { 0 } }, /* each request is declared on its own */
    { "open", "openat", { 0 } },
    { "readlink", "readlink readlinkat", { 0 } },
    { "fdinfo", "openat read close", { 0 } },
    { "mmap", "mmap", { 0 } },
    { "munmap", "munmap", { 0 } },
    { "memlock", "prlimit64 capget", { 0 } },
    { "eventfd", "eventfd2", { 0 } },
    { "readable", "poll ppoll", { 0 } },
    { "read", "read", { 0 } },
    { "write", "write", { 0 } },
    { "lseek", "lseek", { 0 } },
    { "dir_entry", "openat fstat newfstatat statx getdents64 close", { 0 } },
    { "send_msg", "sendmsg", { 0 } },
    { "recv_msg", "recvmsg close", { 0 } },
    { "wait_readable", "poll ppoll", { 0 } },
    { "peer_cred", "getsockopt geteuid", { 0 } },
    { "shutdown", "shutdown", { 0 } },
    { "getpid", "getpid", { 0 } },
    { "monotonic_ms", "clock_gettime", { 0 } },
    { NULL, NULL, { 0 } },
};

const vfiocpr_op_syscalls *vfiocpr_kernel_op_lookup(const char *op)
{
    for (const vfiocpr_op_syscalls *o = vfiocpr_kernel_op_syscalls; o->op; o++)
        if (strcmp(o->op, op) == 0)
            return o;
    return NULL;
}

/* The seam's own helper below (the kind of an fd). */
const vfiocpr_decl vfiocpr_kernel_uses[] = {
    VFIOCPR_OP(fstat, 0),
    VFIOCPR_OP(fd_path, 0),
    VFIOCPR_DECL_END,
};

const vfiocpr_kernel_ops *vfiocpr_kernel = &real_ops;

const vfiocpr_kernel_ops *vfiocpr_kernel_real(void)
{
    return &real_ops;
}

const vfiocpr_kernel_ops *vfiocpr_kernel_set_ops(const vfiocpr_kernel_ops *ops)
{
    const vfiocpr_kernel_ops *old = vfiocpr_kernel;
    vfiocpr_kernel = ops ? ops : &real_ops;
    return old;
}

bool vfiocpr_kind_shares_inode(vfiocpr_fd_kind kind)
{
    /* eventfds, vfio device fds from a group and KVM VM fds all live on the single
     * anon inode, so dev/ino cannot tell them apart; only the link name can. */
    return kind == VFIOCPR_FD_EVENTFD || kind == VFIOCPR_FD_VFIO_DEVICE ||
           kind == VFIOCPR_FD_KVM;
}

bool vfiocpr_kind_matches(vfiocpr_fd_kind want, vfiocpr_fd_kind found)
{
    return want == found || (want == VFIOCPR_FD_VFIO_DEVICE && found == VFIOCPR_FD_VFIO_CDEV);
}

vfiocpr_fd_kind vfiocpr_kernel_kind_from_link(const char *link, const vfiocpr_fd_stat *st)
{
    if (S_ISREG(st->mode))
        return g_str_has_prefix(link, "/memfd:") ? VFIOCPR_FD_MEMFD : VFIOCPR_FD_OTHER;
    if (S_ISCHR(st->mode)) {
        if (major(st->rdev) == MISC_MAJOR_NR && minor(st->rdev) == VFIO_MINOR_NR)
            return VFIOCPR_FD_VFIO_CONTAINER;
        if (major(st->rdev) == MISC_MAJOR_NR && minor(st->rdev) == KVM_MINOR_NR)
            return VFIOCPR_FD_KVM;
        if (g_str_has_prefix(link, "/dev/vfio/devices/"))
            return VFIOCPR_FD_VFIO_CDEV;
        if (strcmp(link, "/dev/iommu") == 0)
            return VFIOCPR_FD_IOMMUFD;
        if (g_str_has_prefix(link, "/dev/vfio/"))
            return VFIOCPR_FD_VFIO_GROUP;
        return VFIOCPR_FD_OTHER;
    }
    if (strcmp(link, "anon_inode:[eventfd]") == 0)
        return VFIOCPR_FD_EVENTFD;
    if (strcmp(link, "anon_inode:[vfio-device]") == 0)
        return VFIOCPR_FD_VFIO_DEVICE;
    if (g_str_has_prefix(link, "anon_inode:kvm-"))
        return VFIOCPR_FD_KVM;
    return VFIOCPR_FD_OTHER;
}

int vfiocpr_kernel_fd_kind(int fd, vfiocpr_fd_kind *kind, vfiocpr_fd_stat *st, char *desc,
                           size_t desc_len)
{
    char link[256];
    vfiocpr_fd_stat s;
    int r;

    r = VK(fstat, fd, &s, NULL);
    if (r < 0)
        return r;
    r = VK(fd_path, fd, link, sizeof(link));
    if (r < 0)
        return r;
    *kind = vfiocpr_kernel_kind_from_link(link, &s);
    if (st)
        *st = s;
    if (desc)
        g_strlcpy(desc, link, desc_len);
    return 0;
}
