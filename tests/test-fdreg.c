/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: the named fd registry through the public API, with the fake kernel
 * standing in for VFIO and KVM objects this host does not have. */
#include "config.h"

#include <errno.h>
#include <sys/sysmacros.h>

#include "fake-kernel.h"
#include "golden-v1.h"
#include "testutil.h"

typedef struct {
    vfiocpr *ctx;
    int memfd, efd;
} fixture;

static void setup(fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
    g_assert_cmpint(vfiocpr_new(0, &f->ctx, &err), ==, 0);
    g_assert_no_error(err);
    f->memfd = tu_memfd_with("ram", "data", MFD_CLOEXEC);
    f->efd = tu_eventfd(0, EFD_CLOEXEC);
}

static void teardown(fixture *f, gconstpointer data)
{
    vfiocpr_unref(f->ctx);
    /* the registry never closes: both must still be open for these closes to work */
    g_assert_cmpint(close(f->memfd), ==, 0);
    g_assert_cmpint(close(f->efd), ==, 0);
}

static void assert_fails(int r, GError **err, int expect, const char *in_msg)
{
    g_assert_cmpint(r, ==, -expect);
    g_assert_error(*err, VFIOCPR_ERROR, expect);
    if (in_msg && !strstr((*err)->message, in_msg))
        g_error("message '%s' lacks '%s'", (*err)->message, in_msg);
    g_clear_error(err);
}

static void test_save_find_forget(fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    g_assert_false(vfiocpr_is_restart(f->ctx));
    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "ram", 0, f->memfd, VFIOCPR_FD_MEMFD, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "irq", 7, f->efd, VFIOCPR_FD_EVENTFD, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(vfiocpr_fd_count(f->ctx), ==, 2);
    g_assert_cmpint(vfiocpr_fd_find(f->ctx, "ram", 0, VFIOCPR_FD_MEMFD, &err), ==, f->memfd);
    g_assert_cmpint(vfiocpr_fd_find(f->ctx, "irq", 7, VFIOCPR_FD_EVENTFD, &err), ==, f->efd);
    /* same name, other id: a different key */
    assert_fails(vfiocpr_fd_find(f->ctx, "irq", 8, VFIOCPR_FD_EVENTFD, &err), &err, ENOENT,
                 "'irq'/8: not registered");
    /* saving the same key to the same fd again is harmless */
    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "irq", 7, f->efd, VFIOCPR_FD_EVENTFD, &err), ==, 0);
    g_assert_cmpuint(vfiocpr_fd_count(f->ctx), ==, 2);
    g_assert_cmpint(vfiocpr_fd_forget(f->ctx, "irq", 7), ==, 0);
    g_assert_cmpint(vfiocpr_fd_forget(f->ctx, "irq", 7), ==, -ENOENT);
    g_assert_cmpint(fcntl(f->efd, F_GETFD), >=, 0); /* forget does not close */
    assert_fails(vfiocpr_fd_find(f->ctx, "irq", 7, VFIOCPR_FD_EVENTFD, &err), &err, ENOENT, NULL);
    g_assert_cmpuint(vfiocpr_fd_count(f->ctx), ==, 1);
}

static void test_save_refusals(fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    int spare = tu_eventfd(0, EFD_CLOEXEC);

    assert_fails(vfiocpr_fd_save(f->ctx, "ram", 0, f->efd, VFIOCPR_FD_MEMFD, &err), &err, EBADFD,
                 "is eventfd (anon_inode:[eventfd]), not memfd");
    assert_fails(vfiocpr_fd_save(f->ctx, "irq", 0, f->memfd, VFIOCPR_FD_EVENTFD, &err), &err,
                 EBADFD, "is memfd");
    assert_fails(vfiocpr_fd_save(f->ctx, "irq", 0, 4000, VFIOCPR_FD_EVENTFD, &err), &err, EBADF,
                 "fd 4000 is not open");
    assert_fails(vfiocpr_fd_save(f->ctx, "irq", 0, -1, VFIOCPR_FD_EVENTFD, &err), &err, EBADF,
                 NULL);
    assert_fails(vfiocpr_fd_save(f->ctx, "", 0, f->efd, VFIOCPR_FD_EVENTFD, &err), &err, EINVAL,
                 "empty name");
    assert_fails(vfiocpr_fd_save(f->ctx, "irq", 0, f->efd, (vfiocpr_fd_kind)99, &err), &err,
                 EINVAL, "unknown kind");
    assert_fails(vfiocpr_fd_save(NULL, "irq", 0, f->efd, VFIOCPR_FD_EVENTFD, &err), &err, EINVAL,
                 NULL);
    g_assert_cmpuint(vfiocpr_fd_count(f->ctx), ==, 0); /* nothing half-registered */
    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "irq", 0, f->efd, VFIOCPR_FD_EVENTFD, &err), ==, 0);
    assert_fails(vfiocpr_fd_save(f->ctx, "irq", 0, spare, VFIOCPR_FD_EVENTFD, &err), &err, EEXIST,
                 "already registered to fd");
    assert_fails(vfiocpr_fd_find(f->ctx, "irq", 0, VFIOCPR_FD_MEMFD, &err), &err, EBADFD,
                 "registered as eventfd, asked for memfd");
    g_assert_cmpint(vfiocpr_fd_find(f->ctx, "irq", 0, VFIOCPR_FD_EVENTFD, &err), ==, f->efd);
    /* OTHER accepts anything open, and checks only that */
    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "log", 0, spare, VFIOCPR_FD_OTHER, &err), ==, 0);
    close(spare);
}

/* Kind detection for objects this host cannot open, through the fake kernel. */
static void test_kinds(fixture *f, gconstpointer data)
{
    const struct {
        const char *link;
        guint32 mode;
        guint64 rdev;
        vfiocpr_fd_kind kind;
    } objs[] = {
        { "/dev/vfio/vfio", S_IFCHR | 0666, makedev(10, 196), VFIOCPR_FD_VFIO_CONTAINER },
        { "/dev/vfio/12", S_IFCHR | 0600, makedev(511, 0), VFIOCPR_FD_VFIO_GROUP },
        { "/dev/vfio/noiommu-0", S_IFCHR | 0600, makedev(511, 1), VFIOCPR_FD_VFIO_GROUP },
        { "anon_inode:[vfio-device]", 0600, 0, VFIOCPR_FD_VFIO_DEVICE },
        { "/dev/vfio/devices/vfio0", S_IFCHR | 0600, makedev(237, 0), VFIOCPR_FD_VFIO_DEVICE },
        { "/dev/kvm", S_IFCHR | 0666, makedev(10, 232), VFIOCPR_FD_KVM },
        { "anon_inode:kvm-vm", 0600, 0, VFIOCPR_FD_KVM },
        { "anon_inode:[eventfd]", 0600, 0, VFIOCPR_FD_EVENTFD },
        { "/memfd:guest (deleted)", S_IFREG | 0777, 0, VFIOCPR_FD_MEMFD },
        { "/tmp/file", S_IFREG | 0644, 0, VFIOCPR_FD_OTHER },
        { "/dev/null", S_IFCHR | 0666, makedev(1, 3), VFIOCPR_FD_OTHER },
        { "socket:[1234]", S_IFSOCK | 0777, 0, VFIOCPR_FD_OTHER },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(objs); i++) {
        int fd = 800 + (int)i;
        fake_kernel_pretend(fd, objs[i].link, objs[i].mode, 9, 100 + i, objs[i].rdev);
        for (int k = VFIOCPR_FD_MEMFD; k <= VFIOCPR_FD_KVM; k++) {
            g_autoptr(GError) err = NULL;
            int r = vfiocpr_fd_save(f->ctx, objs[i].link, 0, fd, k, &err);
            if (k == (int)objs[i].kind) {
                g_assert_no_error(err);
                g_assert_cmpint(r, ==, 0);
            } else {
                if (r != -EBADFD)
                    g_error("%s saved as %s: got %d, want -EBADFD", objs[i].link,
                            vfiocpr_fd_kind_to_string(k), r);
                g_assert_nonnull(strstr(err->message, objs[i].link));
            }
        }
    }
}

/* Before exec the registry re-checks identity: a closed or reused fd number would
 * otherwise only show up in the new image, too late to roll back. */
static void test_check_before_exec(fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    char *argv[] = { (char *)"x", NULL };
    int other = tu_eventfd(0, EFD_CLOEXEC);
    int keep = dup(f->memfd);

    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "ram", 0, f->memfd, VFIOCPR_FD_MEMFD, &err), ==, 0);
    g_assert_cmpint(dup3(other, f->memfd, O_CLOEXEC), ==, f->memfd);
    assert_fails(vfiocpr_exec(f->ctx, "/bin/true", argv, NULL, &err), &err, EBADFD,
                 "'ram'/0: fd");
    g_assert_cmpuint(fake_kernel_calls(FK_MEMFD_CREATE), ==, 0); /* stopped before any work */
    g_assert_cmpuint(fake_kernel_calls(FK_EXECVE), ==, 0);
    close(f->memfd);
    assert_fails(vfiocpr_exec(f->ctx, "/bin/true", argv, NULL, &err), &err, EBADF, "not open");
    g_assert_cmpint(dup3(keep, f->memfd, O_CLOEXEC), ==, f->memfd);
    /* the same file under the number again: the check passes, execve is reached */
    assert_fails(vfiocpr_exec(f->ctx, "/nonexistent", argv, NULL, &err), &err, ENOENT, "execve");
    g_assert_cmpuint(fake_kernel_calls(FK_EXECVE), ==, 1);
    close(keep);
    close(other);
}

/* Restart mode over the golden state: CLOEXEC back in one syscall per run, claims,
 * and finish() reporting the fds the VMM never asked for without closing them. */
static void test_restart_claims_and_finish(fixture *f, gconstpointer data)
{
    const golden_fd fds[] = GOLDEN_V1_FDS;
    g_autoptr(GBytes) blob = tu_read_file("state-v1.bin");
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GError) err = NULL;
    g_auto(GStrv) unclaimed = NULL;
    g_autofree char *env = NULL;
    int sfd = tu_state_memfd(blob, true);

    golden_v1_pretend();
    for (gsize i = 0; i < G_N_ELEMENTS(fds); i++) /* as after exec: inheritable */
        g_assert_cmpint(seam_unrecorded()->set_cloexec(fds[i].fd, false), ==, 0);
    env = g_strdup_printf("%d", sfd);
    g_setenv(VFIOCPR_STATE_ENV, env, TRUE);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    /* golden fds are 900..908: one run, one syscall */
    g_assert_cmpuint(fake_kernel_calls(FK_CLOEXEC_RANGE), ==, 1);
    for (gsize i = 0; i < G_N_ELEMENTS(fds); i++)
        g_assert_cmpint(fake_kernel_pretend_cloexec(fds[i].fd), ==, 1);
    /* validation is one fstat per fd, no link name read: the identity (dev, ino,
     * rdev, type) settles every kind but those on the shared anon inode */
    g_assert_cmpuint(fake_kernel_calls(FK_FSTAT), ==, G_N_ELEMENTS(fds) + 1 /* state */);
    g_assert_cmpuint(fake_kernel_calls(FK_FD_PATH), ==, 0);
    /* the VMM of the new image asks only for the device and the RAM; the device
     * fd's kind is an anon inode's, proven by its link name once, when claimed */
    g_assert_cmpint(vfiocpr_fd_find(ctx, "vfio-device", 0x300, VFIOCPR_FD_VFIO_DEVICE, &err), ==,
                    903);
    g_assert_cmpuint(fake_kernel_calls(FK_FD_PATH), ==, 1);
    g_assert_cmpint(vfiocpr_fd_find(ctx, "vfio-device", 0x300, VFIOCPR_FD_VFIO_DEVICE, &err), ==,
                    903);
    g_assert_cmpint(vfiocpr_fd_find(ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, &err), ==, 900);
    g_assert_cmpint(vfiocpr_fd_find(ctx, "vfio-container", 0, VFIOCPR_FD_VFIO_CONTAINER, &err), ==,
                    901);
    g_assert_cmpint(vfiocpr_fd_find(ctx, "vfio-group", 12, VFIOCPR_FD_VFIO_GROUP, &err), ==, 902);
    g_assert_cmpint(vfiocpr_fd_find(ctx, "kvm", 0, VFIOCPR_FD_KVM, &err), ==, 907);
    g_assert_cmpuint(fake_kernel_calls(FK_FD_PATH), ==, 1); /* claimed once, others by fstat */
    g_assert_cmpuint(fake_kernel_calls(FK_FSTAT), ==, G_N_ELEMENTS(fds) + 1);
    /* a wrong kind is refused and does not claim */
    assert_fails(vfiocpr_fd_find(ctx, "irq-msix", 0, VFIOCPR_FD_MEMFD, &err), &err, EBADFD, NULL);
    g_assert_cmpint(vfiocpr_finish(ctx, &unclaimed, &err), ==, 4);
    g_assert_cmpuint(g_strv_length(unclaimed), ==, 4);
    g_assert_cmpstr(unclaimed[0], ==, "'irq-msix'/0: eventfd fd 904");
    g_assert_cmpstr(unclaimed[2], ==, "'irq-msix'/2: eventfd fd 906");
    g_assert_cmpstr(unclaimed[3], ==, "'log'/0: other fd 908");
    /* none closed, all still registered: the next exec preserves them again */
    g_assert_cmpuint(fake_kernel_calls(FK_CLOSE), ==, 1); /* the state memfd only */
    g_assert_cmpuint(vfiocpr_fd_count(ctx), ==, G_N_ELEMENTS(fds));
    for (gsize i = 0; i < G_N_ELEMENTS(fds); i++)
        g_assert_cmpint(fake_kernel_pretend_cloexec(fds[i].fd), >=, 0);
    /* finish again, and finish in cold mode: nothing to report */
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), ==, 0);
    g_assert_cmpint(vfiocpr_finish(f->ctx, NULL, &err), ==, 0);
}

static void test_cloexec_runs(fixture *f, gconstpointer data)
{
    /* 700-702, 705, 707-708: three runs, whatever the registration order */
    const int fds[] = { 708, 700, 705, 701, 707, 702 };
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GBytes) blob = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *env = NULL;
    int sfd;

    for (gsize i = 0; i < G_N_ELEMENTS(fds); i++) {
        fake_kernel_pretend(fds[i], "anon_inode:[eventfd]", 0600, 10, 1039, 0);
        g_assert_cmpint(vfiocpr_fd_save(f->ctx, "irq", i, fds[i], VFIOCPR_FD_EVENTFD, &err), ==, 0);
    }
    blob = fake_kernel_capture_state(f->ctx);
    for (gsize i = 0; i < G_N_ELEMENTS(fds); i++)
        seam_unrecorded()->set_cloexec(fds[i], false);
    sfd = tu_state_memfd(blob, true);
    env = g_strdup_printf("%d", sfd);
    g_setenv(VFIOCPR_STATE_ENV, env, TRUE);
    {
        unsigned before = fake_kernel_calls(FK_CLOEXEC_RANGE);
        g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
        g_assert_cmpuint(fake_kernel_calls(FK_CLOEXEC_RANGE) - before, ==, 3);
    }
    for (gsize i = 0; i < G_N_ELEMENTS(fds); i++)
        g_assert_cmpint(fake_kernel_pretend_cloexec(fds[i]), ==, 1);
}

/* KEEP_STATE: an exec wrapper validates and leaves everything for the next image. */
static void test_keep_state(fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GBytes) blob = NULL;
    g_autofree char *env = NULL, *text = NULL;
    vfiocpr *ctx = NULL;
    int sfd;

    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "irq", 1, f->efd, VFIOCPR_FD_EVENTFD, &err), ==, 0);
    blob = fake_kernel_capture_state(f->ctx);
    sfd = tu_state_memfd(blob, true);
    g_assert_cmpint(fcntl(f->efd, F_SETFD, 0), ==, 0);
    env = g_strdup_printf("%d", sfd);
    g_setenv(VFIOCPR_STATE_ENV, env, TRUE);
    g_assert_cmpint(vfiocpr_state_describe(sfd, &text, &err), ==, 0);
    g_assert_nonnull(strstr(text, "irq"));
    g_assert_cmpint(vfiocpr_new(VFIOCPR_NEW_KEEP_STATE, &ctx, &err), ==, 0);
    g_assert_true(vfiocpr_is_restart(ctx));
    g_assert_cmpstr(g_getenv(VFIOCPR_STATE_ENV), ==, env);
    g_assert_cmpint(fcntl(sfd, F_GETFD), >=, 0);
    g_assert_cmpint(tu_cloexec(f->efd), ==, 0); /* still inheritable for the next image */
    vfiocpr_unref(ctx);
    g_assert_cmpint(vfiocpr_new(0x80, &ctx, &err), ==, -EINVAL);
    g_clear_error(&err);
    close(sfd);
}

static void test_dump_cold(fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *dump = NULL;

    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "ram", 0, f->memfd, VFIOCPR_FD_MEMFD, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "irq", 2, f->efd, VFIOCPR_FD_EVENTFD, &err), ==, 0);
    dump = vfiocpr_dump(f->ctx);
    g_assert_nonnull(strstr(dump, "mode: cold"));
    g_assert_nonnull(strstr(dump, "fds: 2 (memfd 1, eventfd 1)"));
    g_assert_nonnull(strstr(dump, "ram"));
}

/* Debug messages are formatted only when shown: a writer sees none of the library's
 * unless G_MESSAGES_DEBUG names the domain (GLib 2.62's g_debug() would format and
 * hand every one to the writer, which then drops it). */
static unsigned n_debug;
static char last_debug[512];

static GLogWriterOutput count_writer(GLogLevelFlags level, const GLogField *fields, gsize n,
                                     gpointer user_data)
{
    const char *domain = NULL, *message = NULL;

    for (gsize i = 0; i < n; i++) {
        if (strcmp(fields[i].key, "GLIB_DOMAIN") == 0)
            domain = fields[i].value;
        if (strcmp(fields[i].key, "MESSAGE") == 0)
            message = fields[i].value;
    }
    if ((level & G_LOG_LEVEL_DEBUG) && g_strcmp0(domain, "vfiocpr") == 0) {
        n_debug++;
        g_strlcpy(last_debug, message ? message : "", sizeof(last_debug));
        return G_LOG_WRITER_HANDLED;
    }
    return g_log_writer_default(level, fields, n, user_data);
}

static void test_log_only_when_shown(fixture *f, gconstpointer data)
{
    const char *shown[] = { "vfiocpr", "all", "gio, vfiocpr", "x,vfiocpr,y" };
    const char *hidden[] = { "vfiocprx", "gio", "", "al" };

    g_log_set_writer_func(count_writer, NULL, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(hidden); i++) {
        g_setenv("G_MESSAGES_DEBUG", hidden[i], TRUE);
        n_debug = 0;
        g_assert_cmpint(vfiocpr_fd_find(f->ctx, "nothing", 7, VFIOCPR_FD_MEMFD, NULL), ==,
                        -ENOENT);
        g_assert_cmpuint(n_debug, ==, 0);
    }
    g_unsetenv("G_MESSAGES_DEBUG");
    n_debug = 0;
    g_assert_cmpint(vfiocpr_fd_find(f->ctx, "nothing", 7, VFIOCPR_FD_MEMFD, NULL), ==, -ENOENT);
    g_assert_cmpuint(n_debug, ==, 0);
    for (gsize i = 0; i < G_N_ELEMENTS(shown); i++) {
        g_autoptr(GError) err = NULL;
        g_setenv("G_MESSAGES_DEBUG", shown[i], TRUE);
        n_debug = 0;
        g_assert_cmpint(vfiocpr_fd_find(f->ctx, "nothing", 7, VFIOCPR_FD_MEMFD, NULL), ==,
                        -ENOENT);
        g_assert_cmpuint(n_debug, ==, 1);
        g_assert_nonnull(strstr(last_debug, "'nothing'/7: not registered"));
        /* with a GError the message is the same, logged once */
        g_assert_cmpint(vfiocpr_fd_find(f->ctx, "nothing", 7, VFIOCPR_FD_MEMFD, &err), ==,
                        -ENOENT);
        g_assert_cmpuint(n_debug, ==, 2);
        g_assert_nonnull(strstr(err->message, "'nothing'/7: not registered"));
    }
    g_unsetenv("G_MESSAGES_DEBUG");
    /* without a listener the error still carries the whole message */
    {
        g_autoptr(GError) err = NULL;
        g_assert_cmpint(vfiocpr_fd_find(f->ctx, "nothing", 7, VFIOCPR_FD_MEMFD, &err), ==,
                        -ENOENT);
        g_assert_error(err, VFIOCPR_ERROR, ENOENT);
        g_assert_nonnull(strstr(err->message, "'nothing'/7: not registered"));
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, fixture, NULL, setup, fn, teardown)
    ADD("/fdreg/save-find-forget", test_save_find_forget);
    ADD("/fdreg/save-refusals", test_save_refusals);
    ADD("/fdreg/kinds", test_kinds);
    ADD("/fdreg/check-before-exec", test_check_before_exec);
    ADD("/fdreg/restart-claims-and-finish", test_restart_claims_and_finish);
    ADD("/fdreg/cloexec-runs", test_cloexec_runs);
    ADD("/fdreg/keep-state", test_keep_state);
    ADD("/fdreg/dump-cold", test_dump_cold);
    ADD("/fdreg/log-only-when-shown", test_log_only_when_shown); /* sets the writer: last */
    return g_test_run();
}
