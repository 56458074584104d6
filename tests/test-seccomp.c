/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host tests: the library's seccomp rules are complete for an exec + restore, and
 * strict: under a filter whose default action kills, a full exec through the library
 * and the restore in the new image succeed; an ioctl outside the list is killed. */
#include "config.h"

#include <errno.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "vfiocpr.h"
#include "testutil.h"

/* What a process needs besides the library to start (the dynamic loader, libc, GLib)
 * and to report: the part of the filter that is the test's own, not the library's.
 * Taken from strace of this very test. */
static const char *const process_needs[] = {
    "brk", "mprotect", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
    "getrandom", "access", "futex", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
    "exit_group", "exit", "getpid", "gettid", "getuid", "geteuid", "getgid", "getegid",
    "sched_getaffinity", "clock_gettime", "faccessat", "faccessat2", "uname", "sysinfo",
    "madvise", "mremap", "munmap",
};

/* A sanitizer runtime makes system calls of its own that no filter built for the
 * library allows: under ASan the filter cases cannot run. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

static bool skip_sanitized(void)
{
#ifdef SANITIZED
    g_test_skip("built with sanitizers: their runtime needs syscalls the filter kills");
    return true;
#else
    return false;
#endif
}

static scmp_filter_ctx make_filter(void)
{
    g_autoptr(GError) err = NULL;
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);

    g_assert_nonnull(f);
    g_assert_cmpint(vfiocpr_seccomp_add_rules(f, VFIOCPR_SECCOMP_KVM | VFIOCPR_SECCOMP_EXEC |
                                                     VFIOCPR_SECCOMP_MIGRATION, &err), ==, 0);
    for (gsize i = 0; i < G_N_ELEMENTS(process_needs); i++) {
        int nr = seccomp_syscall_resolve_name(process_needs[i]);
        if (nr != __NR_SCMP_ERROR)
            seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0);
    }
    return f;
}

static int child_main(int argc, char **argv)
{
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GError) err = NULL;
    char buf[32] = { 0 };
    guint64 cnt = 0;
    int ram, efd;

    /* still under the filter: seccomp survives exec */
    if (vfiocpr_new(0, &ctx, &err) < 0)
        return 10;
    ram = vfiocpr_fd_find(ctx, "ram", 0, VFIOCPR_FD_MEMFD, &err);
    efd = vfiocpr_fd_find(ctx, "irq", 0, VFIOCPR_FD_EVENTFD, &err);
    if (ram < 0 || efd < 0 || vfiocpr_finish(ctx, NULL, &err) < 0)
        return 11;
    if (pread(ram, buf, sizeof(buf) - 1, 0) <= 0 || read(efd, &cnt, 8) != 8)
        return 12;
    printf("data=%s count=%" G_GUINT64_FORMAT "\n", buf, cnt);
    fflush(stdout);
    return 0;
}

static void test_describe(void)
{
    g_autofree char *all = vfiocpr_seccomp_describe(VFIOCPR_SECCOMP_KVM);
    g_autofree char *base = vfiocpr_seccomp_describe(0);

    g_assert_nonnull(strstr(all, "ioctl VFIO_IOMMU_MAP_DMA"));
    g_assert_nonnull(strstr(all, "ioctl KVM_IRQFD"));
    g_assert_null(strstr(base, "KVM_IRQFD"));
    g_assert_null(strstr(base, "syscall execve"));
}

static void test_exec_under_filter(void)
{
    int pipefd[2], status;
    char out[256] = { 0 };
    pid_t pid;

    if (skip_sanitized())
        return;
    g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
    pid = fork();
    if (pid == 0) {
        g_autoptr(vfiocpr) ctx = NULL;
        g_autoptr(GError) err = NULL;
        char *argv[] = { (char *)"test-seccomp", (char *)"--child", NULL };
        int ram = tu_memfd_with("ram", "kept", MFD_CLOEXEC), efd = tu_eventfd(5, EFD_CLOEXEC);
        scmp_filter_ctx f;

        dup2(pipefd[1], STDOUT_FILENO);
        if (vfiocpr_new(0, &ctx, &err) < 0 ||
            vfiocpr_fd_save(ctx, "ram", 0, ram, VFIOCPR_FD_MEMFD, &err) < 0 ||
            vfiocpr_fd_save(ctx, "irq", 0, efd, VFIOCPR_FD_EVENTFD, &err) < 0)
            _exit(20);
        f = make_filter();
        if (seccomp_load(f) < 0)
            _exit(21);
        vfiocpr_exec(ctx, "/proc/self/exe", argv, NULL, &err);
        _exit(22);
    }
    close(pipefd[1]);
    g_assert_cmpint(read(pipefd[0], out, sizeof(out) - 1), >=, 0);
    close(pipefd[0]);
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    if (WIFSIGNALED(status))
        g_error("killed by signal %d under the filter: a syscall the library makes is missing",
                WTERMSIG(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    g_assert_cmpstr(out, ==, "data=kept count=5\n");
}

/* Negative control: the filter really kills what is not on the list. */
static void test_other_ioctl_killed(void)
{
    int status;
    pid_t pid;

    if (skip_sanitized())
        return;
    pid = fork();
    if (pid == 0) {
        struct winsize ws;
        scmp_filter_ctx f = make_filter();
        if (seccomp_load(f) < 0)
            _exit(21);
        ioctl(0, TIOCGWINSZ, &ws); /* not the library's */
        _exit(0);
    }
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFSIGNALED(status));
    g_assert_cmpint(WTERMSIG(status), ==, SIGSYS);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);
    g_unsetenv(VFIOCPR_STATE_ENV);
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/seccomp/describe", test_describe);
    g_test_add_func("/seccomp/exec-under-filter", test_exec_under_filter);
    g_test_add_func("/seccomp/other-ioctl-killed", test_other_ioctl_killed);
    return g_test_run();
}
