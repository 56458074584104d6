/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests: vfiocpr_exec() phases and rollback, with the fake kernel capturing
 * execve and failing every kernel call of an exec in turn. */
#include "config.h"

#include <errno.h>

#include "fake-kernel.h"
#include "testutil.h"

extern char **environ;

typedef struct {
    vfiocpr *ctx;
    int memfd, efd_cloexec, efd_inherit;
    unsigned open_fds;
} fixture;

/* What the capturing execve saw at the moment of the call. */
static struct {
    unsigned calls;
    char *path;
    char **argv;
    char **envp;
    int state_fd;
    int state_cloexec, state_seals;
    int cloexec[3];
    bool env_clean; /* the process environment itself had no VFIOCPR_STATE_FD */
} seen;

static int watched[3];

static int capture(const char *path, char *const argv[], char *const envp[])
{
    const char *prefix = VFIOCPR_STATE_ENV "=";
    unsigned n_state = 0;

    seen.calls++;
    g_free(seen.path);
    g_strfreev(seen.argv);
    g_strfreev(seen.envp);
    seen.path = g_strdup(path);
    seen.argv = g_strdupv((char **)argv);
    seen.envp = g_strdupv((char **)envp);
    seen.state_fd = -1;
    for (gsize i = 0; envp[i]; i++)
        if (g_str_has_prefix(envp[i], prefix)) {
            seen.state_fd = atoi(envp[i] + strlen(prefix));
            n_state++;
        }
    g_assert_cmpuint(n_state, ==, 1);
    seen.state_cloexec = tu_cloexec(seen.state_fd);
    seen.state_seals = fcntl(seen.state_fd, F_GET_SEALS);
    for (int i = 0; i < 3; i++)
        seen.cloexec[i] = tu_cloexec(watched[i]);
    seen.env_clean = g_getenv(VFIOCPR_STATE_ENV) == NULL;
    return -ENOENT;
}

static void setup(fixture *f, gconstpointer data)
{
    g_autoptr(GError) err = NULL;

    fake_kernel_reset();
    fake_kernel_set_execve(capture);
    g_unsetenv(VFIOCPR_STATE_ENV);
    memset(&seen, 0, sizeof(seen));
    g_assert_cmpint(vfiocpr_new(0, &f->ctx, &err), ==, 0);
    f->memfd = tu_memfd_with("ram", "guest ram", MFD_CLOEXEC);
    f->efd_cloexec = tu_eventfd(3, EFD_CLOEXEC);
    f->efd_inherit = tu_eventfd(5, 0); /* the VMM chose to leave this one inheritable */
    watched[0] = f->memfd;
    watched[1] = f->efd_cloexec;
    watched[2] = f->efd_inherit;
    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "ram", 0, f->memfd, VFIOCPR_FD_MEMFD, &err), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "irq", 0, f->efd_cloexec, VFIOCPR_FD_EVENTFD, &err),
                    ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "irq", 1, f->efd_inherit, VFIOCPR_FD_EVENTFD, &err),
                    ==, 0);
    /* the same fd under a second name must not confuse the rollback */
    g_assert_cmpint(vfiocpr_fd_save(f->ctx, "ram-alias", 0, f->memfd, VFIOCPR_FD_MEMFD, &err), ==,
                    0);
    f->open_fds = tu_count_open_fds();
}

static void teardown(fixture *f, gconstpointer data)
{
    vfiocpr_unref(f->ctx);
    g_assert_cmpint(close(f->memfd), ==, 0);
    g_assert_cmpint(close(f->efd_cloexec), ==, 0);
    g_assert_cmpint(close(f->efd_inherit), ==, 0);
    g_clear_pointer(&seen.path, g_free);
    g_clear_pointer(&seen.argv, g_strfreev);
    g_clear_pointer(&seen.envp, g_strfreev);
}

/* The old process after a failed exec is exactly as before it. */
static void assert_rolled_back(fixture *f)
{
    g_assert_cmpint(tu_cloexec(f->memfd), ==, 1);
    g_assert_cmpint(tu_cloexec(f->efd_cloexec), ==, 1);
    g_assert_cmpint(tu_cloexec(f->efd_inherit), ==, 0);
    g_assert_cmpuint(tu_count_open_fds(), ==, f->open_fds); /* state memfd closed */
    g_assert_null(g_getenv(VFIOCPR_STATE_ENV));
    g_assert_cmpuint(vfiocpr_fd_count(f->ctx), ==, 4);
    g_assert_false(vfiocpr_is_restart(f->ctx));
}

static void test_exec_hands_over(fixture *f, gconstpointer data)
{
    char *argv[] = { (char *)"vmm", (char *)"--restart", NULL };
    char *envp[] = { (char *)"A=1", (char *)VFIOCPR_STATE_ENV "=77", (char *)"B=2", NULL };
    g_autoptr(GError) err = NULL;
    g_autoptr(GBytes) blob = NULL;
    g_autoptr(GVariant) payload = NULL;
    g_autofree char *state_kv = NULL;
    int r;

    r = vfiocpr_exec(f->ctx, "/usr/bin/new-vmm", argv, envp, &err);
    /* what the new image would have got */
    g_assert_cmpuint(seen.calls, ==, 1);
    g_assert_cmpstr(seen.path, ==, "/usr/bin/new-vmm");
    g_assert_cmpstrv(seen.argv, argv);
    state_kv = g_strdup_printf("%s=%d", VFIOCPR_STATE_ENV, seen.state_fd);
    {
        const char *want[] = { "A=1", "B=2", state_kv, NULL }; /* stale value replaced */
        g_assert_cmpstrv(seen.envp, want);
    }
    g_assert_cmpint(seen.state_cloexec, ==, 0);
    g_assert_cmphex(seen.state_seals, ==, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    g_assert_cmpint(seen.cloexec[0], ==, 0);
    g_assert_cmpint(seen.cloexec[1], ==, 0);
    g_assert_cmpint(seen.cloexec[2], ==, 0);
    g_assert_true(seen.env_clean);
    /* and the failure that followed */
    g_assert_cmpint(r, ==, -ENOENT);
    g_assert_error(err, VFIOCPR_ERROR, ENOENT);
    g_assert_nonnull(strstr(err->message, "exec '/usr/bin/new-vmm': rolled back: execve"));
    assert_rolled_back(f);
    g_assert_cmpint(fcntl(seen.state_fd, F_GETFD), ==, -1);
}

static void test_exec_default_env(fixture *f, gconstpointer data)
{
    char *argv[] = { (char *)"vmm", NULL };
    g_autoptr(GError) err = NULL;

    g_setenv("VFIOCPR_TEST_MARK", "present", TRUE);
    g_assert_cmpint(vfiocpr_exec(f->ctx, "/x", argv, NULL, &err), ==, -ENOENT);
    g_assert_cmpuint(g_strv_length(seen.envp), ==, g_strv_length(environ) + 1);
    g_assert_true(g_strv_contains((const char *const *)seen.envp, "VFIOCPR_TEST_MARK=present"));
    g_unsetenv("VFIOCPR_TEST_MARK");
    assert_rolled_back(f);
}

static void test_exec_bad_args(fixture *f, gconstpointer data)
{
    char *argv[] = { (char *)"vmm", NULL };
    g_autoptr(GError) err = NULL;
    unsigned before = fake_kernel_calls(FK_ANY);

    g_assert_cmpint(vfiocpr_exec(NULL, "/x", argv, NULL, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_exec(f->ctx, NULL, argv, NULL, &err), ==, -EINVAL);
    g_clear_error(&err);
    g_assert_cmpint(vfiocpr_exec(f->ctx, "/x", NULL, NULL, NULL), ==, -EINVAL);
    g_assert_cmpuint(fake_kernel_calls(FK_ANY), ==, before);
}

/* Fail every kernel call an exec makes, one at a time: each attempt must end in a
 * full rollback and a message naming the step. */
static void test_exec_fault_sweep(fixture *f, gconstpointer data)
{
    char *argv[] = { (char *)"vmm", NULL };
    g_autoptr(GHashTable) ops_hit = g_hash_table_new(g_direct_hash, g_direct_equal);
    unsigned total;

    {
        g_autoptr(GError) err = NULL;
        fake_kernel_reset();
        fake_kernel_set_execve(capture);
        g_assert_cmpint(vfiocpr_exec(f->ctx, "/x", argv, NULL, &err), ==, -ENOENT);
        /* the calls after execve are the rollback's own (tested separately below) */
        for (total = fake_kernel_calls(FK_ANY); total; total--)
            if (fake_kernel_call_op(total) == FK_EXECVE)
                break;
        g_assert_cmpuint(total, >, 0);
    }
    for (unsigned n = 1; n <= total; n++) {
        g_autoptr(GError) err = NULL;
        fk_op op;
        int r;

        fake_kernel_reset();
        fake_kernel_set_execve(capture);
        fake_kernel_fail(FK_ANY, n, EIO);
        r = vfiocpr_exec(f->ctx, "/x", argv, NULL, &err);
        op = fake_kernel_call_op(n);
        g_hash_table_add(ops_hit, GINT_TO_POINTER(op));
        g_test_message("failing call %u (%s)", n, fake_kernel_op_name(op));
        g_assert_cmpint(r, ==, -EIO);
        g_assert_error(err, VFIOCPR_ERROR, EIO);
        g_assert_nonnull(strstr(err->message, "rolled back"));
        assert_rolled_back(f);
    }
    /* every kind of call an exec makes was failed at least once */
    for (fk_op op = FK_MEMFD_CREATE; op <= FK_EXECVE; op++) {
        bool expected = op == FK_MEMFD_CREATE || op == FK_PWRITE || op == FK_FSTAT ||
                        op == FK_GET_CLOEXEC || op == FK_SET_CLOEXEC || op == FK_ADD_SEALS ||
                        op == FK_EXECVE;
        if (expected && !g_hash_table_contains(ops_hit, GINT_TO_POINTER(op)))
            g_error("the sweep never failed a %s call", fake_kernel_op_name(op));
    }
}

/* A restore call failing during rollback cannot be undone; it must not be silent. */
static void test_exec_rollback_failure_is_loud(fixture *f, gconstpointer data)
{
    if (g_test_subprocess()) {
        char *argv[] = { (char *)"vmm", NULL };
        /* 4 registrations: 4 set_cloexec(false) + 1 for the state fd, then execve
         * fails and the 6th set_cloexec is the first restore */
        fake_kernel_fail(FK_SET_CLOEXEC, 6, EIO);
        vfiocpr_exec(f->ctx, "/x", argv, NULL, NULL);
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
    g_test_trap_assert_failed(); /* g_warning is fatal under GTest */
    g_test_trap_assert_stderr("*rollback*restoring FD_CLOEXEC*");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, fixture, NULL, setup, fn, teardown)
    ADD("/exec/hands-over", test_exec_hands_over);
    ADD("/exec/default-env", test_exec_default_env);
    ADD("/exec/bad-args", test_exec_bad_args);
    ADD("/exec/fault-sweep", test_exec_fault_sweep);
    ADD("/exec/rollback-failure-is-loud", test_exec_rollback_failure_is_loud);
    return g_test_run();
}
