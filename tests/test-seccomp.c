/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host tests: the library's seccomp rules are complete for an exec + restore, and
 * strict: under a filter whose default action kills, made of the rules for just the
 * flags the scenario needs, a full exec through the library and the restore in the
 * new image succeed; without the EXEC part, or for an ioctl outside the list, the
 * process is killed; each kernel seam op makes only the syscalls declared for it. */
#include "config.h"

#include <errno.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "private.h"
#include "testutil.h"

/* What a process needs besides the library to start (the dynamic loader, libc, GLib)
 * and to report: the part of the filter that is the test's own, not the library's.
 * Taken from strace of this very test; nothing the library itself calls is here. */
static const char *const process_needs[] = {
    "brk", "mprotect", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
    "getrandom", "access", "futex", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
    "exit_group", "exit", "gettid", "getuid", "getgid", "getegid",
    "sched_getaffinity", "faccessat", "faccessat2", "uname", "sysinfo",
    "madvise", "mremap", "munmap",
    /* the loader reads each shared library, the child reads its eventfd and prints;
     * the library itself reads and writes only for migration (not in these filters) */
    "read", "write",
};

/* A sanitizer runtime makes system calls of its own: its part of the filter, only in
 * the sanitizer build. Found by running this test there under a logging filter, and
 * each one checked by removing it (the test then dies or hangs): ASan's start-up in
 * the new image (open of /proc/self/cmdline and maps, sigaltstack for its signal
 * stack), its allocator (mmap, where glibc's malloc takes brk) and LeakSanitizer at
 * exit, which stops the world with a ptrace()ing clone (clone, ptrace, prctl,
 * getppid, wait4, sched_yield, lseek and getdents of /proc/self/task). Since these
 * are allowed to every case, the log's "needs" of lseek and mmap say nothing here. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifdef SANITIZED
static const char *const sanitizer_needs[] = {
    "sigaltstack", "open", "mmap", "sched_yield", "ptrace", "getppid", "prctl", "clone",
    "wait4", "lseek", "getdents",
};
#endif

static void allow_names(scmp_filter_ctx f, const char *const *names, gsize n)
{
    for (gsize i = 0; i < n; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr != __NR_SCMP_ERROR)
            g_assert_cmpint(seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0), >=, 0);
    }
}

/* Kill (or trap) by default; the process's own needs (and the sanitizer's). */
static scmp_filter_ctx base_filter_act(uint32_t act)
{
    scmp_filter_ctx f = seccomp_init(act);

    g_assert_nonnull(f);
    allow_names(f, process_needs, G_N_ELEMENTS(process_needs));
#ifdef SANITIZED
    allow_names(f, sanitizer_needs, G_N_ELEMENTS(sanitizer_needs));
#endif
    return f;
}

static scmp_filter_ctx base_filter(void)
{
    return base_filter_act(SCMP_ACT_KILL_PROCESS);
}

/* flags: what the scenario uses, and no more (an exec and a restore: EXEC) */
static scmp_filter_ctx make_filter(guint32 flags)
{
    g_autoptr(GError) err = NULL;
    scmp_filter_ctx f = base_filter();

    g_assert_cmpint(vfiocpr_seccomp_add_rules(f, flags, &err), ==, 0);
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

/* An exec through the library and the restore in the new image, under a filter of
 * the library's rules for flags; the wait status, the new image's report in out. */
static int exec_under(guint32 flags, char *out, size_t len)
{
    int pipefd[2], status;
    pid_t pid;

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
        f = make_filter(flags);
        if (seccomp_load(f) < 0)
            _exit(21);
        vfiocpr_exec(ctx, "/proc/self/exe", argv, NULL, &err);
        _exit(22);
    }
    close(pipefd[1]);
    g_assert_cmpint(read(pipefd[0], out, len - 1), >=, 0);
    close(pipefd[0]);
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    return status;
}

/* Only what the scenario uses: EXEC, no KVM, no migration. */
static void test_exec_under_filter(void)
{
    char out[256] = { 0 };
    int status = exec_under(VFIOCPR_SECCOMP_EXEC, out, sizeof(out));

    if (WIFSIGNALED(status))
        g_error("killed by signal %d under the filter: a syscall the library makes is missing",
                WTERMSIG(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    g_assert_cmpstr(out, ==, "data=kept count=5\n");
}

/* Negative control: without VFIOCPR_SECCOMP_EXEC the execve is killed. */
static void test_exec_without_flag_killed(void)
{
    char out[256] = { 0 };
    int status = exec_under(0, out, sizeof(out));

    g_assert_true(WIFSIGNALED(status));
    g_assert_cmpint(WTERMSIG(status), ==, SIGSYS);
    g_assert_cmpstr(out, ==, "");
}

/* Negative control: the filter really kills what is not on the list. */
static void test_other_ioctl_killed(void)
{
    int status;
    pid_t pid;

    pid = fork();
    if (pid == 0) {
        struct winsize ws;
        scmp_filter_ctx f = make_filter(VFIOCPR_SECCOMP_KVM | VFIOCPR_SECCOMP_EXEC |
                                        VFIOCPR_SECCOMP_MIGRATION);
        if (seccomp_load(f) < 0)
            _exit(21);
        ioctl(0, TIOCGWINSZ, &ws); /* not the library's */
        _exit(0);
    }
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    g_assert_true(WIFSIGNALED(status));
    g_assert_cmpint(WTERMSIG(status), ==, SIGSYS);
}

/* ---- each seam op makes only the system calls lib/kernel.c declares for it ---- */

static pid_t parent_pid; /* taken before the filter: getppid is not the library's */

/* The ops' children trap instead of dying at once, to name the call: the child exits
 * with OP_TRAPPED after printing the system call's number. */
#define OP_TRAPPED 99
static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
    char msg[64];
    int n = snprintf(msg, sizeof(msg), "# trapped: system call %d\n", si->si_syscall);

    (void)sig;
    (void)ctx;
    if (write(STDERR_FILENO, msg, (size_t)n) < 0)
        _exit(OP_TRAPPED);
    _exit(OP_TRAPPED);
}

/* Runs the real op once on objects made before the filter; 0 if it did what it
 * should. */
static int run_op(const char *op, int memfd, int efd, const int *sv, const int *sv2)
{
    const vfiocpr_kernel_ops *k = vfiocpr_kernel_real();
    char buf[64];
    vfiocpr_fd_stat st;

    if (!strcmp(op, "memfd_create"))
        return k->memfd_create("x", MFD_CLOEXEC) >= 0 ? 0 : 1;
    if (!strcmp(op, "pwrite"))
        return k->pwrite(memfd, "ab", 2, 0) == 2 ? 0 : 1;
    if (!strcmp(op, "pread"))
        return k->pread(memfd, buf, 2, 0) == 2 ? 0 : 1;
    if (!strcmp(op, "fstat"))
        return k->fstat(memfd, &st, NULL);
    if (!strcmp(op, "fd_path"))
        return k->fd_path(memfd, buf, sizeof(buf)) > 0 ? 0 : 1;
    if (!strcmp(op, "get_cloexec"))
        return k->get_cloexec(memfd) == 1 ? 0 : 1;
    if (!strcmp(op, "set_cloexec"))
        return k->set_cloexec(memfd, false);
    if (!strcmp(op, "cloexec_range"))
        return k->cloexec_range(memfd, memfd);
    if (!strcmp(op, "get_seals"))
        return k->get_seals(memfd) >= 0 ? 0 : 1;
    if (!strcmp(op, "add_seals"))
        return k->add_seals(memfd, F_SEAL_SEAL);
    if (!strcmp(op, "close"))
        return k->close(memfd);
    if (!strcmp(op, "execve")) {
        char *argv[] = { (char *)"x", NULL };
        return k->execve("/nonexistent/x", argv, argv + 1) == -ENOENT ? 0 : 1;
    }
    if (!strcmp(op, "ioctl")) /* a declared request on a file that has none */
        return k->ioctl(efd, VFIO_DEVICE_GET_IRQ_INFO, buf) < 0 ? 0 : 1;
    if (!strcmp(op, "open"))
        return k->open("/dev/null", O_RDONLY) >= 0 ? 0 : 1;
    if (!strcmp(op, "readlink"))
        return k->readlink("/proc/self/exe", buf, sizeof(buf)) > 0 ? 0 : 1;
    if (!strcmp(op, "fdinfo"))
        return k->fdinfo(memfd, buf, sizeof(buf)) > 0 ? 0 : 1;
    if (!strcmp(op, "mmap")) {
        void *p;
        return k->mmap(memfd, 4096, PROT_READ, 0, &p);
    }
    if (!strcmp(op, "munmap"))
        return 2; /* no part declares it: never run */
    if (!strcmp(op, "memlock")) {
        guint64 lim;
        bool cap;
        return k->memlock(&lim, &cap);
    }
    if (!strcmp(op, "eventfd"))
        return k->eventfd(0, EFD_CLOEXEC) >= 0 ? 0 : 1;
    if (!strcmp(op, "readable"))
        return k->readable(efd) == 1 ? 0 : 1;
    if (!strcmp(op, "read"))
        return k->read(efd, buf, 8) == 8 ? 0 : 1;
    if (!strcmp(op, "write"))
        return k->write(efd, "\1\0\0\0\0\0\0\0", 8) == 8 ? 0 : 1;
    if (!strcmp(op, "lseek"))
        return k->lseek(memfd, 1) == 1 ? 0 : 1;
    if (!strcmp(op, "dir_entry"))
        return k->dir_entry("/proc/self", "fd", buf, sizeof(buf));
    if (!strcmp(op, "send_msg"))
        return k->send_msg(sv[0], "m", 1, &efd, 1) == 1 ? 0 : 1;
    if (!strcmp(op, "recv_msg")) {
        int fds[2];
        unsigned n = 0;
        return k->recv_msg(sv2[1], buf, sizeof(buf), fds, 2, &n) == 1 && n == 1 ? 0 : 1;
    }
    if (!strcmp(op, "wait_readable"))
        return k->wait_readable(sv2[1], 0) == 1 ? 0 : 1;
    if (!strcmp(op, "peer_cred")) {
        guint32 pid, uid, me;
        return k->peer_cred(sv[0], &pid, &uid, &me) == 0 && pid == (guint32)parent_pid ? 0 : 1;
    }
    if (!strcmp(op, "shutdown"))
        return k->shutdown(sv[0]);
    if (!strcmp(op, "getpid"))
        return k->getpid() > 0 ? 0 : 1;
    if (!strcmp(op, "monotonic_ms"))
        return k->monotonic_ms() > 0 ? 0 : 1;
    return 3; /* an op this test does not know: add it */
}

/* Forks; the child loads a trap-by-default filter allowing the process's needs and
 * exactly entries (what vfiocpr_seccomp_allowed gives), then runs op. Returns the
 * child's wait status. */
static int op_under(const char *op, GHashTable *entries)
{
    int memfd = tu_memfd_with("op", "abcd", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int efd = tu_eventfd(3, EFD_CLOEXEC);
    int sv[2], sv2[2], status;
    pid_t pid;

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), ==, 0);
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv2), ==, 0);
    g_assert_cmpint(vfiocpr_kernel_real()->send_msg(sv2[0], "m", 1, &efd, 1), ==, 1);
    parent_pid = getpid();
    pid = fork();
    if (pid == 0) {
        scmp_filter_ctx f = base_filter_act(SCMP_ACT_TRAP);
        struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
        GHashTableIter it;
        gpointer key;

        g_hash_table_iter_init(&it, entries);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
            const char *k = key;
            if (g_str_has_prefix(k, "syscall ")) {
                int nr = seccomp_syscall_resolve_name(k + 8);
                if (nr != __NR_SCMP_ERROR && strcmp(k + 8, "ioctl") != 0)
                    seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0);
            } else if (g_str_has_prefix(k, "fcntl ")) {
                seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                                 SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)atoi(k + 6)));
            } else if (g_str_has_prefix(k, "ioctl ")) {
                seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                 SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu,
                                         g_ascii_strtoull(k + 6, NULL, 16)));
            }
        }
        sigaction(SIGSYS, &sa, NULL);
        if (seccomp_load(f) < 0)
            _exit(20);
        _exit(run_op(op, memfd, efd, sv, sv2));
    }
    g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
    close(memfd);
    close(efd);
    close(sv[0]);
    close(sv[1]);
    close(sv2[0]);
    close(sv2[1]);
    return status;
}

static bool trapped(int status)
{
    return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == OP_TRAPPED);
}

/* What one op is allowed, from its declaration alone (with a declared request for
 * the ioctl op). */
static GHashTable *allowed_for(const char *op)
{
    vfiocpr_decl one[2] = { VFIOCPR_DECL_END, VFIOCPR_DECL_END };
    vfiocpr_part part[2] = { { "test", one }, { NULL, NULL } };

    if (strcmp(op, "ioctl") == 0)
        one[0] = (vfiocpr_decl)VFIOCPR_IOCTL(VFIO_DEVICE_GET_IRQ_INFO, 0);
    else
        one[0] = (vfiocpr_decl){ op, 0, 0 };
    return vfiocpr_seccomp_allowed(part, 0);
}

static bool declared_by_a_part(const char *op)
{
    for (const vfiocpr_part *p = vfiocpr_seccomp_parts(); p->part; p++)
        for (const vfiocpr_decl *d = p->uses; d->name; d++)
            if ((d->req && !strcmp(op, "ioctl")) || (!d->req && !strcmp(d->name, op)))
                return true;
    return false;
}

static void test_each_op(void)
{
    guint n = 0;

    for (const vfiocpr_op_syscalls *o = vfiocpr_kernel_op_syscalls; o->op; o++) {
        g_autoptr(GHashTable) a = NULL;
        g_auto(GStrv) alts = g_strsplit(o->syscalls, " ", -1);
        g_autoptr(GString) used = g_string_new(NULL), unused = g_string_new(NULL);
        int st;

        if (!declared_by_a_part(o->op))
            continue; /* not in the rules at all (munmap) */
        a = allowed_for(o->op);
        st = op_under(o->op, a);
        if (trapped(st))
            g_error("op %s made a system call outside those declared for it (%s): "
                    "lib/kernel.c misses one (its number is on stderr)", o->op, o->syscalls);
        if (WEXITSTATUS(st) != 0)
            g_error("op %s failed under its filter (exit %d)", o->op, WEXITSTATUS(st));
        n++;
        /* which of the declared syscalls this libc and kernel really need, for the log: the
         * others are alternatives of other libcs, fallbacks or error paths */
        for (char **alt = alts; *alt; alt++) {
            g_autoptr(GHashTable) less = g_hash_table_ref(a);
            g_autofree char *key = g_strdup_printf("syscall %s", *alt);
            g_autoptr(GHashTable) copy = g_hash_table_new(g_str_hash, g_str_equal);
            GHashTableIter it;
            gpointer k;
            g_hash_table_iter_init(&it, less);
            while (g_hash_table_iter_next(&it, &k, NULL)) {
                /* fcntl and ioctl are allowed by argument: drop those rules */
                bool by_arg = (!strcmp(*alt, "fcntl") && g_str_has_prefix(k, "fcntl ")) ||
                              (!strcmp(*alt, "ioctl") && g_str_has_prefix(k, "ioctl "));
                if (strcmp(k, key) != 0 && !by_arg)
                    g_hash_table_add(copy, k);
            }
            g_string_append_printf(trapped(op_under(o->op, copy)) ? used : unused, " %s", *alt);
        }
        g_test_message("op %s: needs%s%s%s", o->op, used->len ? used->str : " nothing",
                       unused->len ? "; not needed here:" : "", unused->str);
    }
    g_test_message("%u ops ran under filters of only their declared syscalls", n);
    g_assert_cmpuint(n, >, 20);
}

/* Negative control: an op whose filter lacks its syscalls is trapped. */
static void test_op_missing_syscall_killed(void)
{
    g_autoptr(GHashTable) a = allowed_for("fd_path");
    g_autoptr(GHashTable) none = g_hash_table_new(g_str_hash, g_str_equal);
    int st;

    g_assert_true(g_hash_table_contains(a, "syscall readlink"));
    st = op_under("fd_path", none);
    g_assert_true(trapped(st));
    /* and the declared set alone lets it run */
    st = op_under("fd_path", a);
    g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);
    g_unsetenv(VFIOCPR_STATE_ENV);
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/seccomp/describe", test_describe);
    g_test_add_func("/seccomp/exec-under-filter", test_exec_under_filter);
    g_test_add_func("/seccomp/exec-without-exec-flag-killed", test_exec_without_flag_killed);
    g_test_add_func("/seccomp/other-ioctl-killed", test_other_ioctl_killed);
    g_test_add_func("/seccomp/each-op-under-its-declared-syscalls", test_each_op);
    g_test_add_func("/seccomp/op-missing-syscall-killed", test_op_missing_syscall_killed);
    return g_test_run();
}
