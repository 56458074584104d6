/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host tests: a real execve() through the shared library, as a VMM does it.
 *
 * A forked child registers a memfd and two eventfds, keeps one fd unregistered and
 * one registered-then-forgotten (both CLOEXEC), and execs this very binary. Each new
 * image restores, bumps a counter and execs again until the last generation, which
 * reports what it found as key=value lines. All assertions are in the parent, on
 * values the child measured. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "vfiocpr.h"
#include "testutil.h"

#define GENERATIONS 3
#define RAM_TEXT "guest memory survives exec"

/* argv of a new image: self --cpr-child GEN RAM A B UNREG FORGOTTEN */
static int child_main(int argc, char **argv)
{
    const char *env = g_getenv(VFIOCPR_STATE_ENV);
    int gen = atoi(argv[2]), ram = atoi(argv[3]), a = atoi(argv[4]), b = atoi(argv[5]);
    int unreg = atoi(argv[6]), forgotten = atoi(argv[7]);
    int sfd = env ? atoi(env) : -1, seals = env ? fcntl(sfd, F_GET_SEALS) : -1;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GError) err = NULL;
    char buf[64] = { 0 };
    guint64 cnt = 0;
    int r;

    if (argc != 8)
        return 90;
    r = vfiocpr_new(0, &ctx, &err);
    if (r < 0) {
        printf("new=%s\n", err->message);
        return 91;
    }
    if (gen < GENERATIONS) {
        g_autofree char *g = g_strdup_printf("%d", gen + 1);
        char *next[] = { argv[0], argv[1], g, argv[3], argv[4], argv[5], argv[6], argv[7], NULL };
        /* the VMM of this generation finds everything, then upgrades again */
        if (vfiocpr_fd_find(ctx, "ram", 0, VFIOCPR_FD_MEMFD, &err) != ram ||
            vfiocpr_fd_find(ctx, "irq", 0, VFIOCPR_FD_EVENTFD, &err) != a ||
            vfiocpr_fd_find(ctx, "irq", 1, VFIOCPR_FD_EVENTFD, &err) != b ||
            vfiocpr_finish(ctx, NULL, &err) != 0)
            return 92;
        cnt = 1;
        if (write(b, &cnt, 8) != 8)
            return 93;
        vfiocpr_exec(ctx, "/proc/self/exe", next, NULL, &err);
        printf("exec-gen%d=%s\n", gen, err ? err->message : "?");
        return 94;
    }
    printf("generation=%d\n", gen);
    printf("restart=%d\n", vfiocpr_is_restart(ctx));
    printf("state-seals=0x%x\n", seals);
    printf("state-fd-after-new=%s\n", fcntl(sfd, F_GETFD) < 0 ? "closed" : "open");
    printf("env-after-new=%s\n", g_getenv(VFIOCPR_STATE_ENV) ? "set" : "unset");
    printf("count=%u\n", vfiocpr_fd_count(ctx));
    printf("ram-cloexec=%d\n", tu_cloexec(ram));
    printf("ram-fd=%s\n", vfiocpr_fd_find(ctx, "ram", 0, VFIOCPR_FD_MEMFD, &err) == ram ? "same" : "differs");
    printf("ram-data=%s\n", pread(ram, buf, sizeof(buf) - 1, 0) > 0 ? buf : "unreadable");
    printf("a-fd=%s\n", vfiocpr_fd_find(ctx, "irq", 0, VFIOCPR_FD_EVENTFD, &err) == a ? "same" : "differs");
    printf("a-count=%" G_GUINT64_FORMAT "\n", read(a, &cnt, 8) == 8 ? cnt : 0);
    printf("b-fd=%s\n", vfiocpr_fd_find(ctx, "irq", 1, VFIOCPR_FD_EVENTFD, &err) == b ? "same" : "differs");
    printf("b-count=%" G_GUINT64_FORMAT "\n", read(b, &cnt, 8) == 8 ? cnt : 0);
    printf("unregistered=%s\n", fcntl(unreg, F_GETFD) < 0 && errno == EBADF ? "closed" : "open");
    printf("forgotten=%s\n", fcntl(forgotten, F_GETFD) < 0 && errno == EBADF ? "closed" : "open");
    printf("finish=%d\n", vfiocpr_finish(ctx, NULL, &err));
    return 0;
}

static GHashTable *run_child(int *status)
{
    GHashTable *kv = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autoptr(GString) out = g_string_new(NULL);
    int pipefd[2];
    char buf[512];
    ssize_t n;
    pid_t pid;

    g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
    pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        g_autoptr(vfiocpr) ctx = NULL;
        g_autoptr(GError) err = NULL;
        int ram = tu_memfd_with("ram", RAM_TEXT, MFD_CLOEXEC);
        int a = tu_eventfd(3, EFD_CLOEXEC), b = tu_eventfd(5, EFD_CLOEXEC);
        int unreg = tu_eventfd(9, EFD_CLOEXEC), forgotten = tu_eventfd(11, EFD_CLOEXEC);
        char s_ram[16], s_a[16], s_b[16], s_u[16], s_f[16];
        char *argv[] = { (char *)"test-host-exec", (char *)"--cpr-child", (char *)"2", s_ram,
                         s_a, s_b, s_u, s_f, NULL };

        dup2(pipefd[1], STDOUT_FILENO);
        snprintf(s_ram, sizeof(s_ram), "%d", ram);
        snprintf(s_a, sizeof(s_a), "%d", a);
        snprintf(s_b, sizeof(s_b), "%d", b);
        snprintf(s_u, sizeof(s_u), "%d", unreg);
        snprintf(s_f, sizeof(s_f), "%d", forgotten);
        if (vfiocpr_new(0, &ctx, &err) < 0 ||
            vfiocpr_fd_save(ctx, "ram", 0, ram, VFIOCPR_FD_MEMFD, &err) < 0 ||
            vfiocpr_fd_save(ctx, "irq", 0, a, VFIOCPR_FD_EVENTFD, &err) < 0 ||
            vfiocpr_fd_save(ctx, "irq", 1, b, VFIOCPR_FD_EVENTFD, &err) < 0 ||
            vfiocpr_fd_save(ctx, "gone", 0, forgotten, VFIOCPR_FD_EVENTFD, &err) < 0 ||
            vfiocpr_fd_forget(ctx, "gone", 0) < 0)
            _exit(80);
        /* generation 1 execs; the images run generations 2..GENERATIONS */
        argv[2] = (char *)"2";
        vfiocpr_exec(ctx, "/proc/self/exe", argv, NULL, &err);
        printf("exec-gen1=%s\n", err ? err->message : "?");
        fflush(stdout);
        _exit(81);
    }
    close(pipefd[1]);
    while ((n = read(pipefd[0], buf, sizeof(buf))) > 0)
        g_string_append_len(out, buf, n);
    close(pipefd[0]);
    g_assert_cmpint(waitpid(pid, status, 0), ==, pid);
    g_test_message("child said:\n%s", out->str);
    {
        g_auto(GStrv) lines = g_strsplit(out->str, "\n", -1);
        for (gsize i = 0; lines[i]; i++) {
            char *eq = strchr(lines[i], '=');
            if (eq)
                g_hash_table_insert(kv, g_strndup(lines[i], eq - lines[i]), g_strdup(eq + 1));
        }
    }
    return kv;
}

static void test_exec_preserves(void)
{
    int status = -1;
    g_autoptr(GHashTable) kv = run_child(&status);

#define KV(k) ((const char *)g_hash_table_lookup(kv, k))
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    g_assert_cmpstr(KV("generation"), ==, G_STRINGIFY(GENERATIONS));
    g_assert_cmpstr(KV("restart"), ==, "1");
    g_assert_cmpstr(KV("state-seals"), ==, "0xf");
    g_assert_cmpstr(KV("state-fd-after-new"), ==, "closed");
    g_assert_cmpstr(KV("env-after-new"), ==, "unset");
    g_assert_cmpstr(KV("count"), ==, "3");
    g_assert_cmpstr(KV("ram-cloexec"), ==, "1");
    g_assert_cmpstr(KV("ram-fd"), ==, "same");
    g_assert_cmpstr(KV("ram-data"), ==, RAM_TEXT);
    g_assert_cmpstr(KV("a-fd"), ==, "same");
    g_assert_cmpstr(KV("a-count"), ==, "3");
    g_assert_cmpstr(KV("b-fd"), ==, "same");
    /* 5 at start, +1 by each intermediate generation */
    {
        g_autofree char *want = g_strdup_printf("%d", 5 + GENERATIONS - 2);
        g_assert_cmpstr(KV("b-count"), ==, want);
    }
    g_assert_cmpstr(KV("unregistered"), ==, "closed");
    g_assert_cmpstr(KV("forgotten"), ==, "closed");
    g_assert_cmpstr(KV("finish"), ==, "0");
#undef KV
}

static void exec_fails(const char *path, int expect_errno)
{
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GError) err = NULL;
    char *argv[] = { (char *)"vmm", NULL };
    int ram = tu_memfd_with("ram", "x", MFD_CLOEXEC);
    int a = tu_eventfd(0, EFD_CLOEXEC), b = tu_eventfd(0, 0);
    unsigned before;

    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(ctx, "ram", 0, ram, VFIOCPR_FD_MEMFD, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(ctx, "irq", 0, a, VFIOCPR_FD_EVENTFD, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(ctx, "irq", 1, b, VFIOCPR_FD_EVENTFD, &err), ==, 0);
    before = tu_count_open_fds();
    g_assert_cmpint(vfiocpr_exec(ctx, path, argv, NULL, &err), ==, -expect_errno);
    g_assert_error(err, VFIOCPR_ERROR, expect_errno);
    g_assert_nonnull(strstr(err->message, path));
    g_assert_cmpuint(tu_count_open_fds(), ==, before);
    g_assert_cmpint(tu_cloexec(ram), ==, 1);
    g_assert_cmpint(tu_cloexec(a), ==, 1);
    g_assert_cmpint(tu_cloexec(b), ==, 0);
    g_assert_null(g_getenv(VFIOCPR_STATE_ENV));
    /* still usable: the same context can try again */
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_exec(ctx, path, argv, NULL, &err), ==, -expect_errno);
    g_assert_cmpuint(tu_count_open_fds(), ==, before);
    close(ram);
    close(a);
    close(b);
}

static void test_exec_nonexistent(void)
{
    exec_fails("/nonexistent/new-vmm", ENOENT);
}

static void test_exec_not_executable(void)
{
    g_autofree char *path = NULL;
    int fd = g_file_open_tmp("vfiocpr-not-exec-XXXXXX", &path, NULL);

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    exec_fails(path, EACCES);
    unlink(path);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--cpr-child") == 0)
        return child_main(argc, argv);
    g_unsetenv(VFIOCPR_STATE_ENV);
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/host/exec-preserves", test_exec_preserves);
    g_test_add_func("/host/exec-nonexistent", test_exec_nonexistent);
    g_test_add_func("/host/exec-not-executable", test_exec_not_executable);
    return g_test_run();
}
