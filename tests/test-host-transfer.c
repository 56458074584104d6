/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host tier: a transfer between two real processes (this test and a separately
 * exec'd copy of it), through the shared library, on the real kernel: guest RAM as
 * a memfd and an interrupt eventfd change hands; a new process that is killed at
 * each point, or hangs, leaves the old one with everything; then a good one takes
 * over and sees the old process's memory. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <vfiocpr.h>

#include "testutil.h"

#define RAM 4096

static const char *self_exe;

/* ------------------------------------------------------------ the new process */

static int new_process(const char *mode, int sock)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    char *ram;
    int mem, efd;

    if (strcmp(mode, "die-at-once") == 0)
        raise(SIGKILL);
    if (vfiocpr_new_incoming(sock, 5000, 0, &ctx, &err) < 0) {
        fprintf(stderr, "new process: %s\n", err->message);
        return 2;
    }
    if (strcmp(mode, "die-after-receive") == 0)
        raise(SIGKILL);
    mem = vfiocpr_fd_find(ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, &err);
    efd = vfiocpr_fd_find(ctx, "irq", 0, VFIOCPR_FD_EVENTFD, &err);
    if (mem < 0 || efd < 0)
        return 3;
    ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, mem, 0);
    if (ram == MAP_FAILED || strcmp(ram, "written by the old process") != 0)
        return 4;
    if (strcmp(mode, "die-after-restore") == 0)
        raise(SIGKILL);
    if (strcmp(mode, "hang") == 0)
        g_usleep(3 * G_USEC_PER_SEC);
    if (vfiocpr_finish(ctx, NULL, &err) < 0) {
        fprintf(stderr, "new process: finish: %s\n", err->message);
        return 5;
    }
    /* it owns them now: the memory and the interrupt are the old process's own */
    strcpy(ram, "written by the new process");
    if (eventfd_write(efd, 7) < 0)
        return 6;
    return 0;
}

/* ------------------------------------------------------------ the old process */

typedef struct {
    vfiocpr *ctx;
    int mem, efd;
    char *ram;
} old_vmm;

static void old_start(old_vmm *o)
{
    g_autoptr(GError) err = NULL;

    g_assert_cmpint(vfiocpr_new(0, &o->ctx, &err), ==, 0);
    o->mem = memfd_create("guest-ram", MFD_CLOEXEC);
    g_assert_cmpint(ftruncate(o->mem, RAM), ==, 0);
    o->ram = mmap(NULL, RAM, PROT_READ | PROT_WRITE, MAP_SHARED, o->mem, 0);
    strcpy(o->ram, "written by the old process");
    o->efd = tu_eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g_assert_cmpint(vfiocpr_fd_save(o->ctx, "guest-ram", 0, o->mem, VFIOCPR_FD_MEMFD, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(o->ctx, "irq", 0, o->efd, VFIOCPR_FD_EVENTFD, &err), ==, 0);
}

static void old_stop(old_vmm *o)
{
    munmap(o->ram, RAM);
    close(o->mem);
    close(o->efd);
    vfiocpr_unref(o->ctx);
}

/* Starts a separate new process in mode, hands over to it; its exit status in *st. */
static int transfer_to(old_vmm *o, const char *mode, unsigned timeout_ms, int *st, GError **error)
{
    int sv[2], r;
    pid_t pid;

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        char fd[16];
        int s = dup(sv[1]); /* without CLOEXEC: the new binary gets it */
        snprintf(fd, sizeof(fd), "%d", s);
        execl(self_exe, self_exe, "--new-process", mode, fd, (char *)NULL);
        _exit(127);
    }
    close(sv[1]);
    r = vfiocpr_transfer(o->ctx, sv[0], timeout_ms, 0, error);
    if (r < 0 && strcmp(mode, "hang") == 0)
        kill(pid, SIGKILL);
    g_assert_cmpint(waitpid(pid, st, 0), ==, pid);
    close(sv[0]);
    return r;
}

static void assert_old_intact(old_vmm *o)
{
    eventfd_t v = 0;
    g_assert_cmpstr(o->ram, ==, "written by the old process");
    g_assert_cmpint(tu_cloexec(o->mem), ==, 1);
    g_assert_cmpint(tu_cloexec(o->efd), ==, 1);
    g_assert_cmpuint(vfiocpr_fd_count(o->ctx), ==, 2);
    /* the interrupt is still ours */
    g_assert_cmpint(eventfd_write(o->efd, 1), ==, 0);
    g_assert_cmpint(eventfd_read(o->efd, &v), ==, 0);
    g_assert_cmpuint(v, ==, 1);
}

static void test_kill_points_then_good(void)
{
    static const struct {
        const char *mode;
        int sig, err;
        const char *step;
    } points[] = {
        { "die-at-once", SIGKILL, 0, "after step 'none'" },
        { "die-after-receive", SIGKILL, EPIPE, "after step 'validated'" },
        { "die-after-restore", SIGKILL, EPIPE, "after step 'restoring'" },
        { "hang", SIGKILL, ETIMEDOUT, "did not commit in time" },
    };
    old_vmm o = { 0 };
    unsigned fds;

    old_start(&o);
    fds = tu_count_open_fds();
    for (gsize i = 0; i < G_N_ELEMENTS(points); i++) {
        g_autoptr(GError) err = NULL;
        int st = 0, r = transfer_to(&o, points[i].mode, 500, &st, &err);

        g_test_message("%s: %s", points[i].mode, err ? err->message : "-");
        g_assert_cmpint(r, <, 0);
        if (points[i].err)
            g_assert_cmpint(r, ==, -points[i].err);
        g_assert_nonnull(strstr(err->message, "rolled back"));
        if (strcmp(points[i].mode, "die-at-once") != 0 || strstr(err->message, "wait for commit"))
            g_assert_nonnull(strstr(err->message, points[i].step));
        g_assert_true(WIFSIGNALED(st) && WTERMSIG(st) == points[i].sig);
        g_assert_cmpuint(tu_count_open_fds(), ==, fds);
        assert_old_intact(&o);
    }
    {
        g_autoptr(GError) err = NULL;
        eventfd_t v = 0;
        int st = 0;

        g_assert_cmpint(transfer_to(&o, "good", 5000, &st, &err), ==, 0);
        g_assert_no_error(err);
        g_assert_true(WIFEXITED(st));
        g_assert_cmpint(WEXITSTATUS(st), ==, 0);
        /* the new process wrote our memory and signalled our eventfd: same files */
        g_assert_cmpstr(o.ram, ==, "written by the new process");
        g_assert_cmpint(eventfd_read(o.efd, &v), ==, 0);
        g_assert_cmpuint(v, ==, 7);
        /* and this one is spent */
        g_assert_cmpint(vfiocpr_exec(o.ctx, "/bin/true", (char *[]){ "true", NULL }, NULL, &err),
                        ==, -EALREADY);
    }
    old_stop(&o);
}

int main(int argc, char **argv)
{
    self_exe = g_file_read_link("/proc/self/exe", NULL);
    if (argc == 4 && strcmp(argv[1], "--new-process") == 0)
        return new_process(argv[2], atoi(argv[3]));
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/host-transfer/kill-points-then-good", test_kill_points_then_good);
    return g_test_run();
}
