/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fake-kernel.h"

typedef struct {
    char *link;
    vfiocpr_fd_stat st;
    int cloexec;
} pretend;

static struct {
    unsigned calls[FK_N_OPS + 1];
    GArray *log; /* fk_op per call */
    fk_op fail_op;
    unsigned fail_nth;
    int fail_err;
    fk_execve_fn execve;
    GHashTable *pretend; /* fd -> pretend* */
} fk;

static const char *const names[] = {
    "memfd_create", "pwrite", "pread", "fstat", "fd_path", "get_cloexec", "set_cloexec",
    "cloexec_range", "get_seals", "add_seals", "close", "execve", "ioctl", "any",
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
#define ENTER(op)          \
    do {                   \
        int e_ = enter(op); \
        if (e_)            \
            return e_;     \
    } while (0)

static pretend *find_pretend(int fd)
{
    return fk.pretend ? g_hash_table_lookup(fk.pretend, GINT_TO_POINTER(fd)) : NULL;
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
    if ((p = find_pretend(fd))) {
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
    if ((p = find_pretend(fd)))
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
    return find_pretend(fd) ? -EINVAL : REAL->get_seals(fd);
}

static int f_add_seals(int fd, int seals)
{
    ENTER(FK_ADD_SEALS);
    return REAL->add_seals(fd, seals);
}

static int f_close(int fd)
{
    ENTER(FK_CLOSE);
    if (find_pretend(fd)) {
        g_hash_table_remove(fk.pretend, GINT_TO_POINTER(fd));
        return 0;
    }
    return REAL->close(fd);
}

static int f_execve(const char *path, char *const argv[], char *const envp[])
{
    ENTER(FK_EXECVE);
    return fk.execve ? fk.execve(path, argv, envp) : -ENOENT;
}

static int f_ioctl(int fd, unsigned long request, void *arg)
{
    ENTER(FK_IOCTL);
    return -ENOTTY;
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
    if (fk.pretend)
        g_hash_table_destroy(fk.pretend);
    memset(&fk, 0, sizeof(fk));
    fk.log = g_array_new(FALSE, FALSE, sizeof(fk_op));
    fk.pretend = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, free_pretend);
    vfiocpr_kernel_set_ops(&fake_ops);
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
