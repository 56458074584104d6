/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seam-record.h"

/* One scenario: its name, the API parts it used, what the seam saw ("op NAME",
 * "ioctl 0xREQ"). A scenario is the running GTest case: it changes when the test
 * path does, so fixtures and helpers count towards the case that runs them. */
typedef struct {
    char *name;
    guint32 flags;
    GHashTable *seen;
} scenario;

static struct {
    GMutex lock;
    bool on;
    char *dir;
    char *file;
    scenario cur;
    GString *done; /* flushed scenarios, for seam_record_dump */
} rec;

static const vfiocpr_kernel_ops *inner;

static char *fixed_name; /* seam_record_name */

static const char *scenario_name(void)
{
    const char *path = g_test_get_path();
    return fixed_name ? fixed_name : path && *path ? path : "main";
}

static gint cmp_str(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Under rec.lock. */
static void write_scenario(void)
{
    GString *s;
    GHashTableIter it;
    gpointer k;
    int fd;

    if (!rec.cur.name)
        return;
    if (g_hash_table_size(rec.cur.seen)) {
        s = g_string_new(NULL);
        g_string_append_printf(s, "scenario %s flags 0x%x\n", rec.cur.name, rec.cur.flags);
        g_autoptr(GPtrArray) keys = g_ptr_array_new();
        g_hash_table_iter_init(&it, rec.cur.seen);
        while (g_hash_table_iter_next(&it, &k, NULL))
            g_ptr_array_add(keys, k);
        /* sorted: the same scenario in another process is the same text */
        g_ptr_array_sort(keys, cmp_str);
        for (guint i = 0; i < keys->len; i++)
            g_string_append_printf(s, "%s\n", (char *)g_ptr_array_index(keys, i));
        g_string_append(s, "end\n");
        g_string_append(rec.done, s->str);
        /* the libc, not the seam: this is the test's own I/O */
        fd = open(rec.file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, s->str, s->len) != (ssize_t)s->len)
            g_printerr("seam-record: cannot write %s\n", rec.file);
        if (fd >= 0)
            close(fd);
        g_string_free(s, TRUE);
    }
    g_clear_pointer(&rec.cur.name, g_free);
    g_hash_table_remove_all(rec.cur.seen);
    rec.cur.flags = 0;
}

/* Under rec.lock: the scenario now running. */
static void enter_scenario(void)
{
    const char *name = scenario_name();
    if (rec.cur.name && strcmp(rec.cur.name, name) == 0)
        return;
    write_scenario();
    rec.cur.name = g_strdup(name);
}

static void seen_key(char *key)
{
    g_mutex_lock(&rec.lock);
    enter_scenario();
    g_hash_table_add(rec.cur.seen, key);
    g_mutex_unlock(&rec.lock);
}

static void seen_op(const char *op)
{
    seen_key(g_strdup_printf("op %s", op));
}

static void seen_ioctl(unsigned long request)
{
    seen_key(g_strdup_printf("ioctl 0x%lx", request));
}

static int r_memfd_create(const char *name, unsigned int flags)
{
    seen_op("memfd_create");
    return inner->memfd_create(name, flags);
}

static ssize_t r_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    seen_op("pwrite");
    return inner->pwrite(fd, buf, len, off);
}

static ssize_t r_pread(int fd, void *buf, size_t len, off_t off)
{
    seen_op("pread");
    return inner->pread(fd, buf, len, off);
}

static int r_fstat(int fd, vfiocpr_fd_stat *st, off_t *size)
{
    seen_op("fstat");
    return inner->fstat(fd, st, size);
}

static int r_fd_path(int fd, char *buf, size_t len)
{
    seen_op("fd_path");
    return inner->fd_path(fd, buf, len);
}

static int r_get_cloexec(int fd)
{
    seen_op("get_cloexec");
    return inner->get_cloexec(fd);
}

static int r_set_cloexec(int fd, bool on)
{
    seen_op("set_cloexec");
    return inner->set_cloexec(fd, on);
}

static int r_cloexec_range(int first, int last)
{
    seen_op("cloexec_range");
    return inner->cloexec_range(first, last);
}

static int r_get_seals(int fd)
{
    seen_op("get_seals");
    return inner->get_seals(fd);
}

static int r_add_seals(int fd, int seals)
{
    seen_op("add_seals");
    return inner->add_seals(fd, seals);
}

static int r_close(int fd)
{
    seen_op("close");
    return inner->close(fd);
}

static int r_execve(const char *path, char *const argv[], char *const envp[])
{
    seen_op("execve");
    seam_record_flush(); /* a real execve does not come back */
    return inner->execve(path, argv, envp);
}

static int r_ioctl(int fd, unsigned long request, void *arg)
{
    seen_op("ioctl");
    seen_ioctl(request);
    return inner->ioctl(fd, request, arg);
}

static int r_open(const char *path, int flags)
{
    seen_op("open");
    return inner->open(path, flags);
}

static int r_fdinfo(int fd, char *buf, size_t len)
{
    seen_op("fdinfo");
    return inner->fdinfo(fd, buf, len);
}

static int r_readlink(const char *path, char *buf, size_t len)
{
    seen_op("readlink");
    return inner->readlink(path, buf, len);
}

static int r_mmap(int fd, size_t len, int prot, off_t off, void **addr)
{
    seen_op("mmap");
    return inner->mmap(fd, len, prot, off, addr);
}

static int r_munmap(void *addr, size_t len)
{
    seen_op("munmap");
    return inner->munmap(addr, len);
}

static int r_memlock(guint64 *limit, bool *cap_ipc_lock)
{
    seen_op("memlock");
    return inner->memlock(limit, cap_ipc_lock);
}

static int r_eventfd(unsigned int initval, int flags)
{
    seen_op("eventfd");
    return inner->eventfd(initval, flags);
}

static ssize_t r_read(int fd, void *buf, size_t len)
{
    seen_op("read");
    return inner->read(fd, buf, len);
}

static ssize_t r_write(int fd, const void *buf, size_t len)
{
    seen_op("write");
    return inner->write(fd, buf, len);
}

static off_t r_lseek(int fd, off_t off)
{
    seen_op("lseek");
    return inner->lseek(fd, off);
}

static int r_readable(int fd)
{
    seen_op("readable");
    return inner->readable(fd);
}

static int r_dir_entry(const char *dir, const char *prefix, char *buf, size_t len)
{
    seen_op("dir_entry");
    return inner->dir_entry(dir, prefix, buf, len);
}

static ssize_t r_send_msg(int sock, const void *buf, size_t len, const int *fds, unsigned n_fds)
{
    seen_op("send_msg");
    return inner->send_msg(sock, buf, len, fds, n_fds);
}

static ssize_t r_recv_msg(int sock, void *buf, size_t len, int *fds, unsigned max_fds, unsigned *n_fds)
{
    seen_op("recv_msg");
    return inner->recv_msg(sock, buf, len, fds, max_fds, n_fds);
}

static int r_wait_readable(int fd, int timeout_ms)
{
    seen_op("wait_readable");
    return inner->wait_readable(fd, timeout_ms);
}

static int r_peer_cred(int sock, guint32 *pid, guint32 *uid, guint32 *my_uid)
{
    seen_op("peer_cred");
    return inner->peer_cred(sock, pid, uid, my_uid);
}

static int r_shutdown(int sock)
{
    seen_op("shutdown");
    return inner->shutdown(sock);
}

static guint32 r_getpid(void)
{
    seen_op("getpid");
    return inner->getpid();
}

static gint64 r_monotonic_ms(void)
{
    seen_op("monotonic_ms");
    return inner->monotonic_ms();
}

static const vfiocpr_kernel_ops recording_ops = {
    .memfd_create = r_memfd_create,
    .pwrite = r_pwrite,
    .pread = r_pread,
    .fstat = r_fstat,
    .fd_path = r_fd_path,
    .get_cloexec = r_get_cloexec,
    .set_cloexec = r_set_cloexec,
    .cloexec_range = r_cloexec_range,
    .get_seals = r_get_seals,
    .add_seals = r_add_seals,
    .close = r_close,
    .execve = r_execve,
    .ioctl = r_ioctl,
    .open = r_open,
    .readlink = r_readlink,
    .fdinfo = r_fdinfo,
    .mmap = r_mmap,
    .munmap = r_munmap,
    .memlock = r_memlock,
    .eventfd = r_eventfd,
    .read = r_read,
    .write = r_write,
    .lseek = r_lseek,
    .readable = r_readable,
    .dir_entry = r_dir_entry,
    .send_msg = r_send_msg,
    .recv_msg = r_recv_msg,
    .wait_readable = r_wait_readable,
    .peer_cred = r_peer_cred,
    .shutdown = r_shutdown,
    .getpid = r_getpid,
    .monotonic_ms = r_monotonic_ms,
};

void seam_record_flush(void)
{
    if (!rec.on)
        return;
    g_mutex_lock(&rec.lock);
    write_scenario();
    g_mutex_unlock(&rec.lock);
}

static void at_exit(void)
{
    seam_record_flush();
}

/* Once a process: DIR from the environment; the records of an earlier run of the
 * same program are removed by its first process (not by what it forks or execs). */
static bool start(void)
{
    static gsize once;

    if (g_once_init_enter(&once)) {
        const char *dir = g_getenv(SEAM_RECORD_ENV);
        if (dir && *dir) {
            g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);
            g_autofree char *prog = g_path_get_basename(exe ? exe : "unknown");
            g_autofree char *mine = g_strdup_printf("%d", (int)getpid());

            g_mkdir_with_parents(dir, 0755);
            if (!g_getenv("VFIOCPR_SEAM_RECORD_OWNER")) {
                g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
                g_autofree char *prefix = g_strdup_printf("%s.", prog);
                const char *e;
                while (d && (e = g_dir_read_name(d)))
                    if (g_str_has_prefix(e, prefix) && g_str_has_suffix(e, ".rec")) {
                        g_autofree char *p = g_build_filename(dir, e, NULL);
                        unlink(p);
                    }
                g_setenv("VFIOCPR_SEAM_RECORD_OWNER", mine, TRUE);
            }
            rec.dir = g_strdup(dir);
            rec.file = g_strdup_printf("%s/%s.%s.rec", dir, prog, mine);
            rec.cur.seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
            rec.done = g_string_new(NULL);
            rec.on = true;
            atexit(at_exit);
        }
        g_once_init_leave(&once, 1);
    }
    return rec.on;
}

const vfiocpr_kernel_ops *seam_record_wrap(const vfiocpr_kernel_ops *ops)
{
    if (!ops)
        ops = vfiocpr_kernel_real();
    if (!start())
        return ops;
    inner = ops;
    /* An op added to the seam but not here would be a NULL call in every recorded
     * test: say which table is short instead. */
    for (gsize i = 0; i < sizeof(recording_ops) / sizeof(void (*)(void)); i++)
        if (!((void (*const *)(void))(const void *)&recording_ops)[i])
            g_error("tests/seam-record.c: kernel op #%zu of vfiocpr_kernel_ops is not recorded",
                    i);
    return &recording_ops;
}

const vfiocpr_kernel_ops *seam_unrecorded(void)
{
    return vfiocpr_kernel == &recording_ops ? inner : vfiocpr_kernel;
}

int seam_kvm_vm(void)
{
    int kvm = seam_unrecorded()->open("/dev/kvm", O_RDWR);
    int vm = seam_unrecorded()->ioctl(kvm, KVM_CREATE_VM, NULL);
    g_assert_cmpint(vm, >=, 0);
    return vm;
}

void seam_record_install(void)
{
    vfiocpr_kernel_set_ops(seam_record_wrap(NULL));
}

void seam_record_program(const char *name)
{
    if (!g_getenv(SEAM_RECORD_ENV))
        return;
    seam_record_install();
    seam_record_name(name);
}

void seam_record_name(const char *name)
{
    g_mutex_lock(&rec.lock);
    g_free(fixed_name);
    fixed_name = g_strdup(name);
    g_mutex_unlock(&rec.lock);
}

void seam_record_uses(guint32 flags)
{
    if (!rec.on)
        return;
    g_mutex_lock(&rec.lock);
    enter_scenario();
    rec.cur.flags |= flags;
    g_mutex_unlock(&rec.lock);
}

char *seam_record_dump(void)
{
    char *s;

    if (!rec.on)
        return g_strdup("");
    g_mutex_lock(&rec.lock);
    write_scenario();
    s = g_strdup(rec.done->str);
    g_mutex_unlock(&rec.lock);
    return s;
}
