/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host tests of the exec wrapper examples/vfiocpr-exec: real execs, real fds.
 *
 * A forked child (the "old VMM") registers a memfd holding data, an eventfd holding
 * a count and a pipe under an awkward name, then calls vfiocpr_exec() on the wrapper
 * with "--fallback THIS-TEST -- NEW --vmm-child ...". NEW is this very binary in
 * child mode (or a path that cannot be exec'd, so that the wrapper falls back to this
 * binary as OLD). The image that finally runs reports what it inherited and what it
 * restored as key=value lines on a dedicated pipe; the wrapper's JSON summary comes
 * on stdout and its messages on stderr. All assertions are in the parent.
 *
 * The wrapper is found in $VFIOCPR_EXEC_WRAPPER, else
 * $top_builddir/examples/vfiocpr-exec/vfiocpr-exec (top_builddir defaults to ".").
 *
 * The last cases are unit tests of the wrapper's validation, its JSON summary and its
 * JSON writer, on states a host without VFIO cannot produce (containers, devices,
 * mappings, interrupt vectors): the fake kernel (tests/fake-kernel.c) stands in for
 * VFIO there, and the wrapper's source is compiled in without its main().
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#include <math.h>

#include "vfiocpr.h"
#include "../../tests/fake-kernel.h"
#include "../../tests/testutil.h"

#define VFIOCPR_EXEC_NO_MAIN 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-const-variable"
#include "vfiocpr-exec.c"
#pragma GCC diagnostic pop

#define RAM_TEXT "guest memory survives the wrapper"
#define EFD_COUNT 7
/* tab, quote, backslash and a non-ASCII letter: JSON escaping at work */
#define WEIRD_NAME "odd \"name\"\\\t\xc3\xa9"
#define WEIRD_ID 7

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif
/* What the sanitizer runtime itself calls in NEW (its start-up, LeakSanitizer at
 * exit), as tests/test-seccomp found: allowed on top of --seccomp, in that build only. */
#if UNDER_SANITIZER
#define SANITIZER_ALLOW \
    "--seccomp-allow=sigaltstack,open,sched_yield,ptrace,getppid,prctl,clone,wait4,getdents"
#else
#define SANITIZER_ALLOW NULL
#endif

static char *self_path;    /* this test binary: NEW in child mode, and OLD */
static char *wrapper_path; /* the wrapper under test */

/* ------------------------------------------------------------------ child mode */

static void report_add(GString *r, const char *key, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void report_add(GString *r, const char *key, const char *fmt, ...)
{
    va_list ap;

    g_string_append_printf(r, "%s=", key);
    va_start(ap, fmt);
    g_string_append_vprintf(r, fmt, ap);
    va_end(ap);
    g_string_append_c(r, '\n');
}

static int report_flush(int fd, GString *r)
{
    return write_all(fd, r->str, r->len) < 0 ? 1 : 0;
}

static const char *fd_state(int fd)
{
    return fcntl(fd, F_GETFD) < 0 ? "closed" : "open";
}

/* The image the wrapper execs, NEW or OLD:
 * self --vmm-child REPORT RAM EFD WEIRD [--then-socket] */
static int vmm_child(int argc, char **argv)
{
    int report = atoi(argv[2]), ram = atoi(argv[3]), efd = atoi(argv[4]), weird = atoi(argv[5]);
    bool then_socket = argc > 6 && strcmp(argv[6], "--then-socket") == 0;
    const char *env = g_getenv(VFIOCPR_STATE_ENV), *fb = g_getenv(FALLBACK_ENV);
    int sfd = env ? atoi(env) : -1;
    g_autoptr(GString) r = g_string_new(NULL);
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *status = NULL;
    struct sigaction sa;
    char buf[64] = { 0 };
    guint64 cnt = 0;

    report_add(r, "fallback", "%s", fb ? fb : "none");
    report_add(r, "state-env", "%s", env ? env : "unset");
    report_add(r, "state-fd-at-start", "%s", env ? fd_state(sfd) : "none");
    report_add(r, "state-fd-cloexec-at-start", "%d", env ? tu_cloexec(sfd) : -1);
    report_add(r, "ram-cloexec-at-start", "%d", tu_cloexec(ram));
    report_add(r, "efd-cloexec-at-start", "%d", tu_cloexec(efd));
    report_add(r, "weird-cloexec-at-start", "%d", tu_cloexec(weird));
    if (g_file_get_contents("/proc/self/status", &status, NULL, NULL)) {
        const char *l = strstr(status, "\nSeccomp:");
        report_add(r, "seccomp", "%d", l ? atoi(l + strlen("\nSeccomp:")) : -1);
    }
    sigaction(SIGPIPE, NULL, &sa);
    report_add(r, "sigpipe", "%s", sa.sa_handler == SIG_IGN ? "ignored" : "default");
    if (vfiocpr_new(VFIOCPR_NEW_DEFAULT, &ctx, &err) < 0) {
        report_add(r, "new", "error: %s", err->message);
        return report_flush(report, r);
    }
    report_add(r, "new", "ok");
    report_add(r, "restart", "%d", vfiocpr_is_restart(ctx));
    report_add(r, "count", "%u", vfiocpr_fd_count(ctx));
    report_add(r, "env-after-new", "%s", g_getenv(VFIOCPR_STATE_ENV) ? "set" : "unset");
    report_add(r, "state-fd-after-new", "%s", env ? fd_state(sfd) : "none");
    if (vfiocpr_is_restart(ctx)) {
        report_add(r, "ram-fd", "%s",
                   vfiocpr_fd_find(ctx, "ram", 0, VFIOCPR_FD_MEMFD, NULL) == ram ? "same" : "differs");
        report_add(r, "ram-data", "%s", pread(ram, buf, sizeof(buf) - 1, 0) > 0 ? buf : "unreadable");
        report_add(r, "efd-fd", "%s",
                   vfiocpr_fd_find(ctx, "irq", 0, VFIOCPR_FD_EVENTFD, NULL) == efd ? "same" : "differs");
        report_add(r, "efd-count", "%" G_GUINT64_FORMAT, read(efd, &cnt, 8) == 8 ? cnt : 0);
        report_add(r, "weird-fd", "%s",
                   vfiocpr_fd_find(ctx, WEIRD_NAME, WEIRD_ID, VFIOCPR_FD_OTHER, NULL) == weird
                       ? "same" : "differs");
        report_add(r, "finish", "%d", vfiocpr_finish(ctx, NULL, &err));
    }
    if (report_flush(report, r))
        return 1;
    if (then_socket) {
        /* not on any list: under --seccomp this kills the process */
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        g_string_truncate(r, 0);
        report_add(r, "socket", "%s", s >= 0 ? "survived" : "failed");
        return report_flush(report, r);
    }
    return 0;
}

/* ------------------------------------------------------------------ running a scenario */

typedef enum {
    VIA_VFIOCPR_EXEC,  /* the old VMM calls vfiocpr_exec(wrapper) */
    VIA_SWAPPED_FD,    /* ... through a shim that puts an epoll fd in the eventfd's place */
    VIA_INVALID_STATE, /* VFIOCPR_STATE_FD names an eventfd, execv(wrapper) */
    VIA_NO_STATE,      /* no state, execv(wrapper) */
} how;

typedef struct {
    how how;
    const char *opts[6];   /* wrapper options before --fallback/-- */
    const char *new_path;  /* NULL: this test binary */
    const char *fallback;  /* NULL: none; "self": this test binary */
    bool then_socket;
    bool close_stdout;     /* nobody reads the wrapper's stdout */
    const char *stale_env; /* VFIOCPR_EXEC_FALLBACK set before the exec */
} scenario;

typedef struct {
    int status;
    pid_t pid;
    int ram, efd, weird;
    GHashTable *kv;
    char *out, *err;
} outcome;

static void outcome_clear(outcome *o)
{
    g_clear_pointer(&o->kv, g_hash_table_unref);
    g_clear_pointer(&o->out, g_free);
    g_clear_pointer(&o->err, g_free);
}

/* Reads the three pipes until every writer is gone. */
static void drain(int fds[3], GString *bufs[3])
{
    struct pollfd p[3];
    int open_n = 0;

    for (int i = 0; i < 3; i++) {
        p[i] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
        open_n += fds[i] >= 0;
    }
    while (open_n > 0) {
        g_assert_cmpint(poll(p, 3, -1), >, 0);
        for (int i = 0; i < 3; i++) {
            char buf[4096];
            ssize_t n;
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            n = read(p[i].fd, buf, sizeof(buf));
            if (n > 0) {
                g_string_append_len(bufs[i], buf, n);
            } else if (n == 0 || errno != EINTR) {
                close(p[i].fd);
                p[i].fd = -1;
                open_n--;
            }
        }
    }
}

static void run_scenario(const scenario *sc, outcome *o)
{
    int outp[2], errp[2], repp[2], pipe_other[2];
    GString *bufs[3] = { g_string_new(NULL), g_string_new(NULL), g_string_new(NULL) };
    int rfds[3];
    pid_t pid;

    memset(o, 0, sizeof(*o));
    /* the old VMM's fds, made before fork so the parent knows their numbers */
    o->ram = tu_memfd_with("ram", RAM_TEXT, MFD_CLOEXEC);
    o->efd = tu_eventfd(EFD_COUNT, EFD_CLOEXEC);
    g_assert_cmpint(pipe2(pipe_other, O_CLOEXEC), ==, 0);
    o->weird = pipe_other[0];
    g_assert_cmpint(pipe2(outp, O_CLOEXEC), ==, 0);
    g_assert_cmpint(pipe2(errp, O_CLOEXEC), ==, 0);
    g_assert_cmpint(pipe2(repp, O_CLOEXEC), ==, 0);
    if (sc->close_stdout) {
        /* before fork: the wrapper must find no reader at all */
        close(outp[0]);
        outp[0] = -1;
    }
    pid = fork();
    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        g_autoptr(vfiocpr) ctx = NULL;
        g_autoptr(GError) err = NULL;
        g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
        int report = fcntl(repp[1], F_DUPFD, 100); /* no FD_CLOEXEC: crosses every exec */

        if (report < 0 || dup2(outp[1], STDOUT_FILENO) < 0 || dup2(errp[1], STDERR_FILENO) < 0)
            _exit(80);
        g_ptr_array_add(argv, g_strdup("vfiocpr-exec"));
        for (int i = 0; sc->opts[i]; i++)
            g_ptr_array_add(argv, g_strdup(sc->opts[i]));
        if (sc->fallback) {
            g_ptr_array_add(argv, g_strdup("--fallback"));
            g_ptr_array_add(argv, g_strdup(strcmp(sc->fallback, "self") ? sc->fallback : self_path));
        }
        g_ptr_array_add(argv, g_strdup("--"));
        g_ptr_array_add(argv, g_strdup(sc->new_path ? sc->new_path : self_path));
        g_ptr_array_add(argv, g_strdup("--vmm-child"));
        g_ptr_array_add(argv, g_strdup_printf("%d", report));
        g_ptr_array_add(argv, g_strdup_printf("%d", o->ram));
        g_ptr_array_add(argv, g_strdup_printf("%d", o->efd));
        g_ptr_array_add(argv, g_strdup_printf("%d", o->weird));
        if (sc->then_socket)
            g_ptr_array_add(argv, g_strdup("--then-socket"));
        g_ptr_array_add(argv, NULL);
        if (sc->stale_env)
            g_setenv(FALLBACK_ENV, sc->stale_env, TRUE);
        switch (sc->how) {
        case VIA_VFIOCPR_EXEC:
        case VIA_SWAPPED_FD:
            if (vfiocpr_new(0, &ctx, &err) < 0 ||
                vfiocpr_fd_save(ctx, "ram", 0, o->ram, VFIOCPR_FD_MEMFD, &err) < 0 ||
                vfiocpr_fd_save(ctx, "irq", 0, o->efd, VFIOCPR_FD_EVENTFD, &err) < 0 ||
                vfiocpr_fd_save(ctx, WEIRD_NAME, WEIRD_ID, o->weird, VFIOCPR_FD_OTHER, &err) < 0)
                _exit(81);
            if (sc->how == VIA_SWAPPED_FD) {
                /* self --swap-fd FD WRAPPER ARGV... */
                g_ptr_array_insert(argv, 0, g_strdup(wrapper_path));
                g_ptr_array_insert(argv, 0, g_strdup_printf("%d", o->efd));
                g_ptr_array_insert(argv, 0, g_strdup("--swap-fd"));
                g_ptr_array_insert(argv, 0, g_strdup(self_path));
                vfiocpr_exec(ctx, self_path, (char **)argv->pdata, NULL, &err);
            } else {
                vfiocpr_exec(ctx, wrapper_path, (char **)argv->pdata, NULL, &err);
            }
            fprintf(stderr, "vfiocpr_exec: %s\n", err ? err->message : "?");
            _exit(82);
        case VIA_INVALID_STATE: {
            /* the state variable names an eventfd: not a memfd, so not a state */
            g_autofree char *n = g_strdup_printf("%d", o->efd);
            fcntl(o->efd, F_SETFD, 0);
            g_setenv(VFIOCPR_STATE_ENV, n, TRUE);
            execv(wrapper_path, (char **)argv->pdata);
            _exit(83);
        }
        case VIA_NO_STATE:
            g_unsetenv(VFIOCPR_STATE_ENV);
            fcntl(o->ram, F_SETFD, 0);
            fcntl(o->efd, F_SETFD, 0);
            fcntl(o->weird, F_SETFD, 0);
            execv(wrapper_path, (char **)argv->pdata);
            _exit(84);
        }
        _exit(85);
    }
    o->pid = pid;
    close(outp[1]);
    close(errp[1]);
    close(repp[1]);
    close(pipe_other[1]);
    rfds[0] = outp[0];
    rfds[1] = errp[0];
    rfds[2] = repp[0];
    drain(rfds, bufs);
    g_assert_cmpint(waitpid(pid, &o->status, 0), ==, pid);
    close(o->ram);
    close(o->efd);
    close(o->weird);
    o->out = g_string_free(bufs[0], FALSE);
    o->err = g_string_free(bufs[1], FALSE);
    g_test_message("wrapper stdout:\n%s\nwrapper stderr:\n%s\nreport:\n%s", o->out, o->err,
                   bufs[2]->str);
    o->kv = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    {
        g_auto(GStrv) lines = g_strsplit(bufs[2]->str, "\n", -1);
        for (gsize i = 0; lines[i]; i++) {
            char *eq = strchr(lines[i], '=');
            if (eq)
                g_hash_table_insert(o->kv, g_strndup(lines[i], eq - lines[i]), g_strdup(eq + 1));
        }
    }
    g_string_free(bufs[2], TRUE);
}

#define KV(o, k) ((const char *)g_hash_table_lookup((o)->kv, k))

static void assert_exited(const outcome *o, int code)
{
    if (WIFSIGNALED(o->status))
        g_error("killed by signal %d", WTERMSIG(o->status));
    g_assert_true(WIFEXITED(o->status));
    g_assert_cmpint(WEXITSTATUS(o->status), ==, code);
}

/* What an image that restored the state must have seen: everything intact. */
static void assert_restored(const outcome *o)
{
    g_assert_cmpstr(KV(o, "state-env"), !=, "unset");
    g_assert_cmpstr(KV(o, "state-fd-at-start"), ==, "open");
    g_assert_cmpstr(KV(o, "state-fd-cloexec-at-start"), ==, "0");
    g_assert_cmpstr(KV(o, "ram-cloexec-at-start"), ==, "0");
    g_assert_cmpstr(KV(o, "efd-cloexec-at-start"), ==, "0");
    g_assert_cmpstr(KV(o, "weird-cloexec-at-start"), ==, "0");
    g_assert_cmpstr(KV(o, "sigpipe"), ==, "default");
    g_assert_cmpstr(KV(o, "new"), ==, "ok");
    g_assert_cmpstr(KV(o, "restart"), ==, "1");
    g_assert_cmpstr(KV(o, "count"), ==, "3");
    g_assert_cmpstr(KV(o, "env-after-new"), ==, "unset");
    g_assert_cmpstr(KV(o, "state-fd-after-new"), ==, "closed");
    g_assert_cmpstr(KV(o, "ram-fd"), ==, "same");
    g_assert_cmpstr(KV(o, "ram-data"), ==, RAM_TEXT);
    g_assert_cmpstr(KV(o, "efd-fd"), ==, "same");
    g_assert_cmpstr(KV(o, "efd-count"), ==, G_STRINGIFY(EFD_COUNT));
    g_assert_cmpstr(KV(o, "weird-fd"), ==, "same");
    g_assert_cmpstr(KV(o, "finish"), ==, "0");
}

/* ------------------------------------------------------------------ a tiny JSON reader
 * JSON -> GVariant: object a{sv}, array av, string s, integer x, other number d,
 * true/false b, null mv. Strict enough to reject what the wrapper must never print. */

static GVariant *j_value(const char **p, int depth);

static void j_ws(const char **p)
{
    while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
        (*p)++;
}

static int j_hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = g_ascii_xdigit_value(s[i]);
        if (c < 0)
            return -1;
        v = v * 16 + c;
    }
    return v;
}

static char *j_string(const char **p)
{
    g_autoptr(GString) s = g_string_new(NULL);
    const char *q = *p;

    if (*q++ != '"')
        return NULL;
    for (;;) {
        unsigned char c = (unsigned char)*q++;
        if (c == '"')
            break;
        if (c < 0x20)
            return NULL; /* raw control characters are not JSON (includes NUL) */
        if (c != '\\') {
            g_string_append_c(s, (char)c);
            continue;
        }
        c = (unsigned char)*q++;
        switch (c) {
        case '"': case '\\': case '/': g_string_append_c(s, (char)c); break;
        case 'b': g_string_append_c(s, '\b'); break;
        case 'f': g_string_append_c(s, '\f'); break;
        case 'n': g_string_append_c(s, '\n'); break;
        case 'r': g_string_append_c(s, '\r'); break;
        case 't': g_string_append_c(s, '\t'); break;
        case 'u': {
            int u = j_hex4(q);
            if (u < 0)
                return NULL;
            q += 4;
            if (u >= 0xd800 && u < 0xdc00) {
                int lo = q[0] == '\\' && q[1] == 'u' ? j_hex4(q + 2) : -1;
                if (lo < 0xdc00 || lo >= 0xe000)
                    return NULL;
                q += 6;
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            } else if (u >= 0xdc00 && u < 0xe000) {
                return NULL;
            }
            g_string_append_unichar(s, (gunichar)u);
            break;
        }
        default:
            return NULL;
        }
    }
    if (!g_utf8_validate(s->str, (gssize)s->len, NULL))
        return NULL;
    *p = q;
    return g_string_free(g_steal_pointer(&s), FALSE);
}

static GVariant *j_value(const char **p, int depth)
{
    j_ws(p);
    if (depth > 32)
        return NULL;
    if (**p == '{') {
        GVariantBuilder b;
        g_variant_builder_init(&b, G_VARIANT_TYPE_VARDICT);
        (*p)++;
        j_ws(p);
        if (**p == '}') {
            (*p)++;
            return g_variant_builder_end(&b);
        }
        for (;;) {
            g_autofree char *k = NULL;
            GVariant *v;
            j_ws(p);
            k = j_string(p);
            j_ws(p);
            if (!k || **p != ':')
                goto bad_obj;
            (*p)++;
            v = j_value(p, depth + 1);
            if (!v)
                goto bad_obj;
            g_variant_builder_add(&b, "{sv}", k, v);
            j_ws(p);
            if (**p == ',') {
                (*p)++;
                continue;
            }
            if (**p == '}') {
                (*p)++;
                return g_variant_builder_end(&b);
            }
        bad_obj:
            g_variant_builder_clear(&b);
            return NULL;
        }
    }
    if (**p == '[') {
        GVariantBuilder b;
        g_variant_builder_init(&b, G_VARIANT_TYPE("av"));
        (*p)++;
        j_ws(p);
        if (**p == ']') {
            (*p)++;
            return g_variant_builder_end(&b);
        }
        for (;;) {
            GVariant *v = j_value(p, depth + 1);
            if (!v)
                break;
            g_variant_builder_add(&b, "v", v);
            j_ws(p);
            if (**p == ',') {
                (*p)++;
                continue;
            }
            if (**p == ']') {
                (*p)++;
                return g_variant_builder_end(&b);
            }
            break;
        }
        g_variant_builder_clear(&b);
        return NULL;
    }
    if (**p == '"') {
        char *s = j_string(p);
        return s ? g_variant_new_take_string(s) : NULL;
    }
    if (g_str_has_prefix(*p, "true")) {
        *p += 4;
        return g_variant_new_boolean(TRUE);
    }
    if (g_str_has_prefix(*p, "false")) {
        *p += 5;
        return g_variant_new_boolean(FALSE);
    }
    if (g_str_has_prefix(*p, "null")) {
        *p += 4;
        return g_variant_new_maybe(G_VARIANT_TYPE_VARIANT, NULL);
    }
    if (**p == '-' || g_ascii_isdigit(**p)) {
        const char *start = *p;
        char *end;
        bool integral = true;
        if (**p == '-')
            (*p)++;
        if (!g_ascii_isdigit(**p) || (**p == '0' && g_ascii_isdigit((*p)[1])))
            return NULL;
        while (g_ascii_isdigit(**p) || strchr(".eE+-", **p)) {
            if (!g_ascii_isdigit(**p))
                integral = false;
            (*p)++;
        }
        if (integral) {
            gint64 v;
            g_autofree char *num = g_strndup(start, (gsize)(*p - start));
            if (g_ascii_string_to_signed(num, 10, G_MININT64, G_MAXINT64, &v, NULL))
                return g_variant_new_int64(v);
        }
        {
            double d = g_ascii_strtod(start, &end);
            if (end != *p)
                return NULL;
            return g_variant_new_double(d);
        }
    }
    return NULL;
}

/* Parses exactly one JSON value (a full line of text) or fails the test. */
static GVariant *parse_json(const char *text)
{
    const char *p = text;
    GVariant *v = j_value(&p, 0);

    if (!v)
        g_error("not valid JSON at offset %td: %s", p - text, text);
    g_variant_ref_sink(v);
    j_ws(&p);
    if (*p)
        g_error("trailing text after JSON at offset %td: %s", p - text, text);
    return v;
}

/* The first line of stdout is the wrapper's JSON. */
static GVariant *json_of(const outcome *o)
{
    g_autofree char *line = NULL;
    const char *nl = strchr(o->out, '\n');

    g_assert_nonnull(nl);
    g_assert_cmpint(o->out[0], ==, '{');
    line = g_strndup(o->out, (gsize)(nl - o->out));
    return parse_json(line);
}

static const char *j_str(GVariant *obj, const char *key)
{
    g_autoptr(GVariant) v = g_variant_lookup_value(obj, key, NULL);
    g_assert_nonnull(v);
    if (g_variant_is_of_type(v, G_VARIANT_TYPE("mv")))
        return NULL;
    g_assert_true(g_variant_is_of_type(v, G_VARIANT_TYPE_STRING));
    /* outlives v and obj whatever form GLib keeps them in; a test's few strings */
    return g_intern_string(g_variant_get_string(v, NULL));
}

static gint64 j_int(GVariant *obj, const char *key)
{
    gint64 x;
    if (!g_variant_lookup(obj, key, "x", &x))
        g_error("no integer '%s'", key);
    return x;
}

static bool j_bool(GVariant *obj, const char *key)
{
    gboolean b;
    if (!g_variant_lookup(obj, key, "b", &b))
        g_error("no boolean '%s'", key);
    return b;
}

static GVariant *j_get(GVariant *obj, const char *key, const char *type)
{
    GVariant *v = g_variant_lookup_value(obj, key, G_VARIANT_TYPE(type));
    if (!v)
        g_error("no '%s' of type %s", key, type);
    return v;
}

/* Element i of an array, unboxed. */
static GVariant *j_child(GVariant *arr, gsize i)
{
    g_autoptr(GVariant) boxed = g_variant_get_child_value(arr, i);
    return g_variant_get_variant(boxed);
}

static gsize j_len(GVariant *obj, const char *key)
{
    g_autoptr(GVariant) a = j_get(obj, key, "av");
    return g_variant_n_children(a);
}

/* The JSON of a valid state as the forked VMM left it. */
static void assert_json_state(GVariant *j, const outcome *o, const char *new_path)
{
    g_autofree char *ver = g_strdup_printf("%d.%d", VFIOCPR_STATE_FORMAT_MAJOR,
                                           VFIOCPR_STATE_FORMAT_MINOR);
    g_autoptr(GVariant) writer = j_get(j, "writer", "a{sv}");
    g_autoptr(GVariant) counts = j_get(j, "fd_counts", "a{sv}");
    g_autoptr(GVariant) fds = j_get(j, "fds", "av");
    struct {
        const char *name;
        gint64 id;
        const char *kind;
        int fd;
        bool seen;
    } want[] = {
        { "ram", 0, "memfd", o->ram, false },
        { "irq", 0, "eventfd", o->efd, false },
        { WEIRD_NAME, WEIRD_ID, "other", o->weird, false },
    };

    g_assert_cmpint(j_int(j, "schema"), ==, 1);
    g_assert_cmpstr(j_str(j, "state"), ==, "valid");
    g_assert_null(j_str(j, "error"));
    g_assert_nonnull(j_str(j, "state_fd"));
    g_assert_cmpstr(j_str(j, "format_version"), ==, ver);
    g_assert_cmpint(j_int(j, "state_bytes"), >, 32);
    g_assert_true(g_str_has_prefix(j_str(writer, "name"), "libvfiocpr "));
    g_assert_cmpint(j_int(writer, "pid"), ==, o->pid); /* exec keeps the pid */
    g_assert_nonnull(j_str(writer, "created"));
    g_assert_true(j_bool(j, "complete"));
    g_assert_cmpint(j_int(j, "fd_total"), ==, 3);
    g_assert_cmpint(j_int(counts, "memfd"), ==, 1);
    g_assert_cmpint(j_int(counts, "eventfd"), ==, 1);
    g_assert_cmpint(j_int(counts, "other"), ==, 1);
    g_assert_cmpint(j_int(counts, "vfio-device"), ==, 0);
    g_assert_cmpint(j_int(counts, "kvm"), ==, 0);
    g_assert_cmpuint(g_variant_n_children(fds), ==, G_N_ELEMENTS(want));
    for (gsize i = 0; i < g_variant_n_children(fds); i++) {
        g_autoptr(GVariant) f = j_child(fds, i);
        const char *name = j_str(f, "name");
        bool matched = false;
        for (gsize k = 0; k < G_N_ELEMENTS(want); k++)
            if (strcmp(want[k].name, name) == 0 && want[k].id == j_int(f, "id")) {
                g_assert_false(want[k].seen);
                g_assert_cmpstr(j_str(f, "kind"), ==, want[k].kind);
                g_assert_cmpint(j_int(f, "fd"), ==, want[k].fd);
                want[k].seen = matched = true;
            }
        if (!matched)
            g_error("unexpected fd '%s' in the JSON", name);
    }
    g_assert_cmpuint(j_len(j, "containers"), ==, 0);
    g_assert_cmpuint(j_len(j, "devices"), ==, 0);
    g_assert_cmpint(j_int(j, "dma_ranges"), ==, 0);
    g_assert_cmpint(j_int(j, "vectors"), ==, 0);
    {
        /* the library's description of the same state, as NEW will find it */
        g_autoptr(GVariant) full = j_get(j, "description", "a{sv}");
        g_autoptr(GVariant) st = j_get(full, "state", "a{sv}");
        g_autoptr(GVariant) dfds = j_get(full, "fds", "av");
        g_autoptr(GVariant) kvm = j_get(full, "kvm", "a{sv}");
        g_assert_cmpstr(j_str(full, "mode"), ==, "restart");
        g_assert_cmpint(j_int(st, "format-major"), ==, VFIOCPR_STATE_FORMAT_MAJOR);
        g_assert_cmpint(j_int(st, "format-minor"), ==, VFIOCPR_STATE_FORMAT_MINOR);
        g_assert_cmpint(j_int(st, "writer-pid"), ==, o->pid);
        g_assert_cmpint(j_int(st, "bytes"), ==, j_int(j, "state_bytes"));
        g_assert_cmpuint(g_variant_n_children(dfds), ==, G_N_ELEMENTS(want));
        for (gsize i = 0; i < g_variant_n_children(dfds); i++) {
            g_autoptr(GVariant) f = j_child(dfds, i);
            g_assert_cmpstr(j_str(f, "status"), ==, "unclaimed");
            if (strcmp(j_str(f, "name"), WEIRD_NAME) == 0)
                g_assert_cmpint(j_int(f, "fd"), ==, o->weird);
        }
        g_assert_cmpuint(j_len(full, "containers"), ==, 0);
        g_assert_cmpuint(j_len(full, "devices"), ==, 0);
        g_assert_cmpint(j_int(kvm, "vm-fd"), ==, -1);
    }
    g_assert_cmpstr(j_str(j, "new"), ==, new_path);
    g_assert_cmpstr(j_str(j, "fallback"), ==, self_path);
}

/* ------------------------------------------------------------------ the cases */

/* (a) NEW is this binary: it restores everything intact; the JSON describes it. */
static void test_exec_new(void)
{
    scenario sc = { .opts = { "--summary=json" }, .fallback = "self" };
    g_autoptr(GVariant) j = NULL;
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, 0);
    g_assert_cmpstr(KV(&o, "fallback"), ==, "none");
    g_assert_cmpstr(KV(&o, "seccomp"), ==, "0");
    assert_restored(&o);
    j = json_of(&o);
    assert_json_state(j, &o, self_path);
    g_assert_false(j_bool(j, "seccomp"));
    /* the JSON is the only thing on stdout: NEW printed nothing there */
    g_assert_cmpstr(strchr(o.out, '\n') + 1, ==, "");
    outcome_clear(&o);
}

/* The human summary on stderr. */
static void test_summary_text(void)
{
    scenario sc = { .opts = { "--summary" }, .fallback = "self" };
    g_autofree char *ver = g_strdup_printf("state format %d.%d,", VFIOCPR_STATE_FORMAT_MAJOR,
                                           VFIOCPR_STATE_FORMAT_MINOR);
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, 0);
    assert_restored(&o);
    g_assert_cmpstr(o.out, ==, "");
    g_assert_nonnull(strstr(o.err, "incoming state " VFIOCPR_STATE_ENV "="));
    g_assert_nonnull(strstr(o.err, "is valid"));
    g_assert_nonnull(strstr(o.err, ver));
    g_assert_nonnull(strstr(o.err, "fds: 3 (other 1, memfd 1, eventfd 1)"));
    g_assert_nonnull(strstr(o.err, "interrupt vectors: 0"));
    g_assert_nonnull(strstr(o.err, "next: exec "));
    outcome_clear(&o);
}

/* (b) NEW cannot be exec'd: OLD (this binary) restores the same intact state. */
static void fallback_case(const char *new_path, int expect_errno)
{
    scenario sc = { .opts = { "--summary=json" }, .new_path = new_path, .fallback = "self" };
    g_autofree char *why = g_strdup_printf("exec-failed: %s: %s", new_path,
                                           g_strerror(expect_errno));
    g_autoptr(GVariant) j = NULL;
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, 0);
    g_assert_cmpstr(KV(&o, "fallback"), ==, why);
    assert_restored(&o);
    g_assert_nonnull(strstr(o.err, "falling back to"));
    j = json_of(&o);
    assert_json_state(j, &o, new_path);
    outcome_clear(&o);
}

static void test_fallback_nonexistent(void)
{
    fallback_case("/nonexistent/vmm-new", ENOENT);
}

static char *make_file(const char *content, mode_t mode)
{
    g_autoptr(GError) err = NULL;
    char *path = NULL;
    int fd = g_file_open_tmp("vfiocpr-exec-test-XXXXXX", &path, &err);

    g_assert_no_error(err);
    g_assert_cmpint(write(fd, content, strlen(content)), ==, (ssize_t)strlen(content));
    close(fd);
    g_assert_cmpint(chmod(path, mode), ==, 0);
    return path;
}

static void test_fallback_not_executable(void)
{
    /* no x bit: EACCES, for root too */
    g_autofree char *path = make_file("#!/bin/sh\nexit 0\n", 0644);

    fallback_case(path, EACCES);
    unlink(path);
}

static void test_fallback_wrong_format(void)
{
    g_autofree char *path = make_file("not a program\n", 0755);
    struct statvfs sv;

    g_assert_cmpint(statvfs(path, &sv), ==, 0);
    if (sv.f_flag & ST_NOEXEC)
        g_test_skip("the temporary directory is mounted noexec: execve gives EACCES");
    else
        fallback_case(path, ENOEXEC);
    unlink(path);
}

/* (c) invalid state, with a fallback: OLD runs with the variable and the fd untouched. */
static void test_invalid_state_fallback(void)
{
    scenario sc = { .how = VIA_INVALID_STATE, .opts = { "--summary=json" }, .fallback = "self" };
    g_autoptr(GVariant) j = NULL;
    g_autofree char *efd = NULL;
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, 0);
    efd = g_strdup_printf("%d", o.efd);
    g_assert_true(g_str_has_prefix(KV(&o, "fallback"), "state-invalid: "));
    g_assert_nonnull(strstr(KV(&o, "fallback"), "not a memfd"));
    g_assert_cmpstr(KV(&o, "state-env"), ==, efd);
    g_assert_cmpstr(KV(&o, "state-fd-at-start"), ==, "open");
    g_assert_true(g_str_has_prefix(KV(&o, "new"), "error: "));
    g_assert_nonnull(strstr(KV(&o, "new"), "not a memfd"));
    j = json_of(&o);
    g_assert_cmpstr(j_str(j, "state"), ==, "invalid");
    g_assert_cmpstr(j_str(j, "state_fd"), ==, efd);
    g_assert_nonnull(strstr(j_str(j, "error"), "not a memfd"));
    g_assert_null(j_str(j, "format_version"));
    g_assert_cmpuint(j_len(j, "fds"), ==, 0);
    outcome_clear(&o);
}

/* Between the old VMM and the wrapper, the eventfd's number now holds an epoll fd:
 * same anon inode, so vfiocpr_new()'s identity check passes; the wrapper's claim of
 * every fd reads the link and falls back before NEW could trip over it. */
static void test_swapped_fd(void)
{
    scenario sc = { .how = VIA_SWAPPED_FD, .opts = { "--summary=json" }, .fallback = "self" };
    g_autoptr(GVariant) j = NULL;
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, 0);
    g_assert_true(g_str_has_prefix(KV(&o, "fallback"), "state-invalid: "));
    g_assert_nonnull(strstr(KV(&o, "fallback"), "the state says eventfd"));
    /* OLD gets everything as it was, and meets the same problem itself */
    g_assert_cmpstr(KV(&o, "new"), ==, "ok");
    g_assert_cmpstr(KV(&o, "ram-data"), ==, RAM_TEXT);
    g_assert_cmpstr(KV(&o, "efd-fd"), ==, "differs");
    j = json_of(&o);
    g_assert_cmpstr(j_str(j, "state"), ==, "invalid");
    outcome_clear(&o);
}

/* The documented exit codes when there is nowhere to go back to. */
static void test_invalid_state_no_fallback(void)
{
    scenario sc = { .how = VIA_INVALID_STATE };
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, EXIT_STATE_INVALID);
    g_assert_cmpuint(g_hash_table_size(o.kv), ==, 0);
    g_assert_nonnull(strstr(o.err, "no --fallback"));
    outcome_clear(&o);
}

static void test_exec_failed_no_fallback(void)
{
    scenario sc = { .new_path = "/nonexistent/vmm-new" };
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, EXIT_EXEC_FAILED);
    g_assert_cmpuint(g_hash_table_size(o.kv), ==, 0);
    outcome_clear(&o);
}

static void test_fallback_fails_too(void)
{
    scenario sc = { .new_path = "/nonexistent/vmm-new", .fallback = "/nonexistent/vmm-old" };
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, EXIT_FALLBACK_FAILED);
    g_assert_nonnull(strstr(o.err, "/nonexistent/vmm-old"));
    outcome_clear(&o);
}

/* A bad command line with state and a fallback: OLD, not an exit that would orphan
 * the devices. */
static void test_usage_error_falls_back(void)
{
    scenario sc = { .opts = { "--no-such-option" }, .fallback = "self" };
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, 0);
    g_assert_cmpstr(KV(&o, "fallback"), ==, "usage: unknown option '--no-such-option'");
    assert_restored(&o);
    outcome_clear(&o);
}

/* No incoming state: a cold start of NEW. */
static void test_no_state(void)
{
    scenario sc = { .how = VIA_NO_STATE, .opts = { "--summary=json" }, .fallback = "self" };
    g_autoptr(GVariant) j = NULL;
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, 0);
    g_assert_cmpstr(KV(&o, "fallback"), ==, "none");
    g_assert_cmpstr(KV(&o, "state-env"), ==, "unset");
    g_assert_cmpstr(KV(&o, "new"), ==, "ok");
    g_assert_cmpstr(KV(&o, "restart"), ==, "0");
    j = json_of(&o);
    g_assert_cmpstr(j_str(j, "state"), ==, "none");
    g_assert_null(j_str(j, "state_fd"));
    outcome_clear(&o);
}

/* A reason inherited from an earlier fallback never reaches NEW. */
static void test_stale_fallback_env(void)
{
    scenario sc = { .fallback = "self", .stale_env = "exec-failed: long ago" };
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, 0);
    g_assert_cmpstr(KV(&o, "fallback"), ==, "none");
    assert_restored(&o);
    outcome_clear(&o);
}

/* Nobody reads stdout: the JSON cannot be written, the exec goes on, and NEW gets
 * the default SIGPIPE disposition back. */
static void test_stdout_closed(void)
{
    scenario sc = { .opts = { "--summary=json" }, .fallback = "self", .close_stdout = true };
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, 0);
    g_assert_cmpstr(KV(&o, "fallback"), ==, "none");
    assert_restored(&o);
    g_assert_nonnull(strstr(o.err, "writing to stdout"));
    outcome_clear(&o);
}

/* --seccomp: NEW restores under the filter; a system call on no list kills it. */
static void test_seccomp(void)
{
    scenario sc = { .opts = { "--seccomp", "--summary=json", SANITIZER_ALLOW },
                    .fallback = "self", .then_socket = true };
    g_autoptr(GVariant) j = NULL;
    outcome o;

    run_scenario(&sc, &o);
    g_assert_cmpstr(KV(&o, "fallback"), ==, "none");
    g_assert_cmpstr(KV(&o, "seccomp"), ==, "2");
    assert_restored(&o);
    g_assert_null(KV(&o, "socket"));
    g_assert_true(WIFSIGNALED(o.status));
    g_assert_cmpint(WTERMSIG(o.status), ==, SIGSYS);
    j = json_of(&o);
    g_assert_true(j_bool(j, "seccomp"));
    outcome_clear(&o);
}

static void test_seccomp_allow(void)
{
    scenario sc = { .opts = { "--seccomp", "--seccomp-allow=socket", SANITIZER_ALLOW },
                    .fallback = "self", .then_socket = true };
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, 0);
    g_assert_cmpstr(KV(&o, "seccomp"), ==, "2");
    assert_restored(&o);
    g_assert_cmpstr(KV(&o, "socket"), ==, "survived");
    outcome_clear(&o);
}

/* NEW missing under --seccomp: found before the filter is loaded, so OLD runs as it
 * ran before, unconfined. */
static void test_seccomp_new_missing(void)
{
    scenario sc = { .opts = { "--seccomp" }, .new_path = "/nonexistent/vmm-new",
                    .fallback = "self" };
    outcome o;

    run_scenario(&sc, &o);
    assert_exited(&o, 0);
    g_assert_true(g_str_has_prefix(KV(&o, "fallback"), "exec-failed: /nonexistent/vmm-new: "));
    g_assert_cmpstr(KV(&o, "seccomp"), ==, "0");
    assert_restored(&o);
    outcome_clear(&o);
}

/* (d) command line: --help, --version, --seccomp-list and usage errors. */
static int run_plain(const char *const *args, char **out, char **err)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();
    g_autoptr(GError) error = NULL;
    int status = -1;

    g_ptr_array_add(argv, wrapper_path);
    for (gsize i = 0; args[i]; i++)
        g_ptr_array_add(argv, (gpointer)args[i]);
    g_ptr_array_add(argv, NULL);
    g_assert_true(g_spawn_sync(NULL, (char **)argv->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               out, err, &status, &error));
    g_assert_no_error(error);
    g_assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_help(void)
{
    static const char *const help[] = { "--help", NULL }, *const h[] = { "-h", NULL };
    static const char *const ver[] = { "--version", NULL };
    g_autofree char *out = NULL, *err = NULL, *out2 = NULL, *err2 = NULL;
    g_autofree char *vout = NULL, *verr = NULL;

    g_assert_cmpint(run_plain(help, &out, &err), ==, 0);
    g_assert_true(g_str_has_prefix(out, "Usage: vfiocpr-exec"));
    for (int code = EXIT_USAGE; code <= EXIT_SECCOMP_FAILED; code++) {
        g_autofree char *line = g_strdup_printf("\n  %d  ", code);
        g_assert_nonnull(strstr(out, line));
    }
    g_assert_cmpstr(err, ==, "");
    g_assert_cmpint(run_plain(h, &out2, &err2), ==, 0);
    g_assert_cmpstr(out2, ==, out);
    g_assert_cmpint(run_plain(ver, &vout, &verr), ==, 0);
    g_assert_true(g_str_has_prefix(vout, "vfiocpr-exec (libvfiocpr) "));
}

static void test_usage_errors(void)
{
    static const char *const cases[][4] = {
        { "--no-such-option", "--", "/bin/true", NULL },
        { "--summary", NULL },                                 /* no NEW */
        { "--fallback", NULL },                                /* no value */
        { "--summary=xml", "--", "/bin/true", NULL },
        { "--seccomp", "--seccomp-allow=no_such_call", "/bin/true", NULL },
        { "--seccomp-allow=read", "/bin/true", NULL },         /* without --seccomp */
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *out = NULL, *err = NULL;
        g_assert_cmpint(run_plain(cases[i], &out, &err), ==, EXIT_USAGE);
        g_assert_cmpstr(out, ==, "");
        g_assert_nonnull(strstr(err, "try --help"));
    }
}

static void test_seccomp_list(void)
{
    static const char *const args[] = { "--seccomp-list", "--seccomp-allow", "socket,bind", NULL };
    g_autofree char *out = NULL, *err = NULL;

    g_assert_cmpint(run_plain(args, &out, &err), ==, 0);
    g_assert_nonnull(strstr(out, "\nsyscall execve\n"));           /* the library's */
    g_assert_nonnull(strstr(out, "\nioctl VFIO_IOMMU_MAP_DMA ("));  /* the library's */
    g_assert_nonnull(strstr(out, "\nsyscall exit_group\n"));       /* start-up and exit */
    g_assert_nonnull(strstr(out, "\nioctl TCGETS ("));
    g_assert_nonnull(strstr(out, "\nsyscall socket\nsyscall bind\n")); /* --seccomp-allow */
}

/* ------------------------------------------------------------------ unit: the summary
 *
 * The wrapper's validation and JSON in this process, on a VMM the fake kernel lets a
 * host without VFIO have: a type1 container (named so that its name needs escaping)
 * with a group device, an iommufd one with a cdev, three DMA ranges, MSI-X and MSI
 * vectors, restored from the state of a real exec path. */

#define XBDF1 "0000:00:03.0"
#define XBDF2 "0000:00:04.0"
#define ODD_CONTAINER "c\"0\t\xc3\xa9"

static int fake_vmm_state(void)
{
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL, i = NULL;
    g_autoptr(vfiocpr_device) d1 = NULL, d2 = NULL;
    g_autoptr(GError) err = NULL;
    int ram = memfd_create("guest-ram", MFD_CLOEXEC), sfd;
    static guint8 va[4 << 20];

    fake_kernel_reset();
    fake_iommufd_enable(true);
    fake_vfio_add_group(12, XBDF1, false);
    fake_vfio_add_group(13, XBDF2, false);
    g_assert_cmpint(ftruncate(ram, sizeof(va)), ==, 0);
    if (vfiocpr_new(0, &ctx, &err) < 0 ||
        vfiocpr_fd_save(ctx, "guest-ram", 0, ram, VFIOCPR_FD_MEMFD, &err) < 0 ||
        vfiocpr_container_open_backend(ctx, ODD_CONTAINER, VFIOCPR_BACKEND_TYPE1, &c, &err) < 0 ||
        vfiocpr_device_attach(c, XBDF1, &d1, &err) < 0 ||
        vfiocpr_container_open_backend(ctx, "i0", VFIOCPR_BACKEND_IOMMUFD, &i, &err) < 0 ||
        vfiocpr_device_attach(i, XBDF2, &d2, &err) < 0 ||
        vfiocpr_dma_map(c, 0x100000, 0x100000, va, ram, 0, 3, &err) < 0 ||
        vfiocpr_dma_map(c, 0x40000000, 0x200000, va + 0x100000, ram, 0x100000, 1, &err) < 0 ||
        vfiocpr_dma_map(i, 0x200000, 0x100000, va + 0x300000, ram, 0x300000, 3, &err) < 0 ||
        vfiocpr_irq_enable(d1, VFIOCPR_IRQ_MSIX, 0, 3, NULL, NULL, &err) < 0 ||
        vfiocpr_irq_enable(d2, VFIOCPR_IRQ_MSI, 0, 1, NULL, NULL, &err) < 0)
        g_error("fake VMM: %s", err->message);
    for (unsigned v = 0; v < 3; v++)
        g_assert_cmpint(vfiocpr_irq_set_msi(d1, VFIOCPR_IRQ_MSIX, v, 0xfee01000, 0x4040 + v,
                                            v == 2, &err), ==, 0);
    sfd = fake_kernel_exec_ok(ctx, G_MAXUINT64);
    return sfd;
}

static GVariant *obj_at(GVariant *obj, const char *key, gsize i)
{
    g_autoptr(GVariant) a = j_get(obj, key, "av");
    g_assert_cmpuint(i, <, g_variant_n_children(a));
    return j_child(a, i);
}

static void test_json_full(void)
{
    int sfd = fake_vmm_state();
    g_autofree char *env = g_strdup_printf("%d", sfd);
    run_info ri = { .status = STATE_VALID, .state_env = env, .new_path = "/usr/bin/vmm-new",
                    .fallback = "/usr/bin/vmm-old" };
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GVariant) desc = NULL, j = NULL, c0 = NULL, c1 = NULL, d0 = NULL, d1 = NULL;
    g_autoptr(GVariant) full = NULL, fc0 = NULL, fm1 = NULL, fd0 = NULL, fd1 = NULL, fv2 = NULL;
    g_autoptr(GVariant) counts = NULL, fi0 = NULL, ram = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree char *json = NULL, *dump = NULL;

    g_setenv(VFIOCPR_STATE_ENV, env, TRUE);
    g_assert_cmpint(validate_state(env, &ctx, &desc, &dump, &err), ==, STATE_VALID);
    g_assert_no_error(err);
    g_assert_nonnull(strstr(dump, "fds: 10 (")); /* what NEW will find: */
    g_assert_nonnull(strstr(dump, " unclaimed\n"));
    json = summary_json(desc, &ri);
    g_test_message("%s", json);
    g_assert_true(g_str_has_suffix(json, "}\n"));
    g_assert_true(strchr(json, '\n') == json + strlen(json) - 1); /* one line */
    /* description keys sorted: the same state always prints the same */
    g_assert_nonnull(strstr(json, "{\"backend\":\"type1\",\"dma-bytes\":3145728,\"dma-ranges\":2,"));
    json[strlen(json) - 1] = '\0';
    j = parse_json(json);

    /* the schema 1 summary, now counted from the description */
    g_assert_cmpint(j_int(j, "schema"), ==, 1);
    g_assert_true(j_bool(j, "complete"));
    g_assert_cmpint(j_int(j, "fd_total"), ==, 10); /* ram, 2 containers, group, 2 devices, 4 eventfds */
    counts = j_get(j, "fd_counts", "a{sv}");
    g_assert_cmpint(j_int(counts, "eventfd"), ==, 4);
    g_assert_cmpint(j_int(counts, "iommufd"), ==, 1);
    g_assert_cmpint(j_int(counts, "vfio-cdev"), ==, 1);
    c0 = obj_at(j, "containers", 0); /* sorted by name: 'c"0..' before 'i0' */
    c1 = obj_at(j, "containers", 1);
    g_assert_cmpstr(j_str(c0, "name"), ==, ODD_CONTAINER);
    g_assert_cmpint(j_int(c0, "groups"), ==, 1);
    g_assert_cmpint(j_int(c0, "dma_ranges"), ==, 2);
    g_assert_cmpint(j_int(c0, "dma_bytes"), ==, 0x300000);
    g_assert_true(j_bool(c0, "remap_pending"));
    g_assert_cmpstr(j_str(c1, "backend"), ==, "iommufd");
    g_assert_cmpint(j_int(c1, "ioas"), ==, 1);
    g_assert_true(j_bool(c1, "pins_pending"));
    d0 = obj_at(j, "devices", 0);
    d1 = obj_at(j, "devices", 1);
    g_assert_cmpstr(j_str(d0, "name"), ==, XBDF1);
    g_assert_cmpint(j_int(d0, "vectors"), ==, 3);
    g_assert_cmpint(j_int(d1, "vectors"), ==, 1);
    g_assert_cmpint(j_int(j, "dma_ranges"), ==, 3);
    g_assert_cmpint(j_int(j, "dma_bytes"), ==, 0x400000);
    g_assert_cmpint(j_int(j, "vectors"), ==, 4);

    /* the whole description: mappings, vectors, ids */
    full = j_get(j, "description", "a{sv}");
    g_assert_cmpstr(j_str(full, "mode"), ==, "restart");
    fc0 = obj_at(full, "containers", 0);
    g_assert_cmpstr(j_str(fc0, "name"), ==, ODD_CONTAINER);
    g_assert_cmpstr(j_str(fc0, "status"), ==, "unclaimed");
    g_assert_cmpint(j_int(fc0, "remap-pending"), ==, 2);
    ram = obj_at(full, "fds", 0); /* sorted: "guest-ram" first */
    g_assert_cmpstr(j_str(ram, "name"), ==, "guest-ram");
    g_assert_cmpstr(j_str(ram, "kind"), ==, "memfd");
    fm1 = obj_at(fc0, "mappings", 1);
    g_assert_cmpint(j_int(fm1, "iova"), ==, 0x40000000);
    g_assert_cmpint(j_int(fm1, "size"), ==, 0x200000);
    g_assert_cmpint(j_int(fm1, "offset"), ==, 0x100000);
    g_assert_cmpint(j_int(fm1, "flags"), ==, VFIOCPR_DMA_READ);
    g_assert_cmpint(j_int(fm1, "memfd"), ==, j_int(ram, "fd"));
    g_assert_true(j_bool(fm1, "pending"));
    g_assert_cmpint(j_int(fm1, "vaddr"), ==, 0);
    fi0 = obj_at(full, "containers", 1);
    g_assert_cmpint(j_int(fi0, "ioas-id"), ==, 1);
    fd0 = obj_at(full, "devices", 0);
    g_assert_cmpstr(j_str(fd0, "kind"), ==, "group");
    g_assert_cmpint(j_int(fd0, "group"), ==, 12);
    g_assert_cmpstr(j_str(fd0, "container"), ==, ODD_CONTAINER);
    fv2 = obj_at(fd0, "vectors", 2);
    g_assert_cmpint(j_int(fv2, "index"), ==, VFIOCPR_IRQ_MSIX);
    g_assert_cmpstr(j_str(fv2, "status"), ==, "unclaimed");
    g_assert_true(j_bool(fv2, "has-msi"));
    g_assert_cmpint(j_int(fv2, "kvm-gsi"), ==, -1);
    g_assert_cmpint(j_int(fv2, "vector"), ==, 2);
    g_assert_cmpint(j_int(fv2, "msi-address"), ==, 0xfee01000);
    g_assert_cmpint(j_int(fv2, "msi-data"), ==, 0x4042);
    g_assert_true(j_bool(fv2, "masked"));
    fd1 = obj_at(full, "devices", 1);
    g_assert_cmpstr(j_str(fd1, "kind"), ==, "cdev");
    g_assert_cmpint(j_int(fd1, "devid"), >, 0);
    g_assert_cmpint(j_int(fd1, "group"), ==, -1);
    g_assert_cmpuint(j_len(full, "fds"), ==, 10);

    g_clear_pointer(&ctx, vfiocpr_unref);
    g_unsetenv(VFIOCPR_STATE_ENV);
    close(sfd);
    fake_kernel_uninstall();
}

/* A description the context does not back (here: of another state) is refused: the
 * claim of every fd it lists is what makes "valid" mean something. */
static void test_verify_mismatch(void)
{
    int sfd = fake_vmm_state();
    g_autofree char *env = g_strdup_printf("%d", sfd);
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GVariant) desc = NULL;
    g_autoptr(GError) err = NULL;

    g_setenv(VFIOCPR_STATE_ENV, env, TRUE);
    g_assert_cmpint(validate_state(env, &ctx, &desc, NULL, &err), ==, STATE_VALID);
    {
        /* the same description with one fd number changed */
        g_auto(GVariantDict) top = G_VARIANT_DICT_INIT(desc);
        g_autoptr(GVariant) fds = g_variant_lookup_value(desc, "fds", G_VARIANT_TYPE("a" FD_TUPLE));
        g_autoptr(GVariant) bad = NULL;
        GVariantBuilder b;
        g_assert_nonnull(fds);
        g_variant_builder_init(&b, G_VARIANT_TYPE("a" FD_TUPLE));
        for (gsize i = 0; i < g_variant_n_children(fds); i++) {
            const char *name, *kind, *status;
            guint64 id;
            gint32 fd;
            g_variant_get_child(fds, i, FD_GET, &name, &id, &kind, &fd, &status);
            g_variant_builder_add(&b, FD_TUPLE, name, id, kind, i == 0 ? 4242 : fd, status);
        }
        g_variant_dict_insert_value(&top, "fds", g_variant_builder_end(&b));
        bad = g_variant_ref_sink(g_variant_dict_end(&top));
        g_assert_cmpint(verify_fds(ctx, bad, &err), ==, -EBADMSG);
        g_assert_nonnull(strstr(err->message, "the description says fd 4242"));
        g_clear_error(&err);
    }
    /* the unchanged one passes (it was claimed already: found again) */
    g_assert_cmpint(verify_fds(ctx, desc, &err), ==, 0);
    g_clear_pointer(&ctx, vfiocpr_unref);
    g_unsetenv(VFIOCPR_STATE_ENV);
    close(sfd);
    fake_kernel_uninstall();
}

/* The generic writer: every GVariant type comes out as the JSON it should. */
static void test_json_variant_types(void)
{
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
    g_autoptr(GVariant) v = NULL, j = NULL, x = NULL;
    g_autoptr(GString) o = g_string_new(NULL);
    GVariantBuilder ay, dict, idict;
    const char *strv[] = { "a", "b\"", NULL };

    g_variant_dict_insert(&d, "z-bool", "b", TRUE);
    g_variant_dict_insert(&d, "a-byte", "y", (guint8)255);
    g_variant_dict_insert(&d, "n", "n", (gint16)-3);
    g_variant_dict_insert(&d, "q", "q", (guint16)7);
    g_variant_dict_insert(&d, "i", "i", -5);
    g_variant_dict_insert(&d, "u", "u", 4000000000u);
    g_variant_dict_insert(&d, "x", "x", (gint64)-9000000000000000000ll);
    g_variant_dict_insert(&d, "t", "t", (guint64)1 << 40);
    g_variant_dict_insert(&d, "h", "h", 3);
    g_variant_dict_insert(&d, "d", "d", 1.5);
    g_variant_dict_insert(&d, "inf", "d", INFINITY);
    g_variant_dict_insert(&d, "s", "s", "tab\there");
    g_variant_dict_insert(&d, "o", "o", "/a/b");
    g_variant_dict_insert(&d, "g", "g", "a{sv}");
    g_variant_dict_insert_value(&d, "v", g_variant_new_variant(g_variant_new_uint32(9)));
    g_variant_dict_insert_value(&d, "nothing", g_variant_new_maybe(G_VARIANT_TYPE_INT32, NULL));
    g_variant_dict_insert_value(&d, "just", g_variant_new_maybe(NULL, g_variant_new_string("x")));
    g_variant_dict_insert_value(&d, "as", g_variant_new_strv(strv, -1));
    g_variant_dict_insert(&d, "tuple", "(ius)", -1, 2u, "three");
    g_variant_builder_init(&ay, G_VARIANT_TYPE_BYTESTRING);
    g_variant_builder_add(&ay, "y", (guint8)1);
    g_variant_builder_add(&ay, "y", (guint8)2);
    g_variant_dict_insert_value(&d, "ay", g_variant_builder_end(&ay));
    g_variant_builder_init(&dict, G_VARIANT_TYPE("a{ss}"));
    g_variant_builder_add(&dict, "{ss}", "k2", "v2");
    g_variant_builder_add(&dict, "{ss}", "k1", "v1");
    g_variant_dict_insert_value(&d, "a{ss}", g_variant_builder_end(&dict));
    g_variant_builder_init(&idict, G_VARIANT_TYPE("a{is}"));
    g_variant_builder_add(&idict, "{is}", 7, "seven");
    g_variant_dict_insert_value(&d, "a{is}", g_variant_builder_end(&idict));
    v = g_variant_ref_sink(g_variant_dict_end(&d));
    json_variant(o, v);
    g_test_message("%s", o->str);
    /* keys sorted, whatever the dictionary's own order */
    g_assert_true(g_str_has_prefix(o->str, "{\"a-byte\":255,\"as\":[\"a\",\"b\\\"\"],"
                                           "\"ay\":[1,2],\"a{is}\":[[7,\"seven\"]],"
                                           "\"a{ss}\":{\"k1\":\"v1\",\"k2\":\"v2\"},"));
    g_assert_true(g_str_has_suffix(o->str, "\"z-bool\":true}"));
    j = parse_json(o->str);
    g_assert_cmpint(j_int(j, "n"), ==, -3);
    g_assert_cmpint(j_int(j, "q"), ==, 7);
    g_assert_cmpint(j_int(j, "i"), ==, -5);
    g_assert_cmpint(j_int(j, "u"), ==, 4000000000ll);
    g_assert_cmpint(j_int(j, "x"), ==, -9000000000000000000ll);
    g_assert_cmpint(j_int(j, "t"), ==, (gint64)1 << 40);
    g_assert_cmpint(j_int(j, "h"), ==, 3);
    g_assert_cmpint(j_int(j, "v"), ==, 9);
    {
        double dv = 0;
        g_assert_true(g_variant_lookup(j, "d", "d", &dv));
        g_assert_cmpfloat(dv, ==, 1.5);
    }
    g_assert_null(j_str(j, "inf"));     /* not a JSON number: null */
    g_assert_null(j_str(j, "nothing")); /* an empty maybe: null */
    g_assert_cmpstr(j_str(j, "just"), ==, "x");
    g_assert_cmpstr(j_str(j, "s"), ==, "tab\there");
    g_assert_cmpstr(j_str(j, "o"), ==, "/a/b");
    g_assert_cmpstr(j_str(j, "g"), ==, "a{sv}");
    g_assert_cmpuint(j_len(j, "as"), ==, 2);
    x = j_get(j, "as", "av");
    {
        g_autoptr(GVariant) s1 = j_child(x, 1);
        g_assert_cmpstr(g_variant_get_string(s1, NULL), ==, "b\"");
    }
    g_assert_cmpuint(j_len(j, "tuple"), ==, 3);
    g_assert_cmpuint(j_len(j, "ay"), ==, 2);
    g_assert_true(j_bool(j, "z-bool"));
}

/* Everything a name may hold comes out as valid JSON and reads back the same. */
static void test_json_escaping(void)
{
    static const char *const names[] = {
        "plain", "quote\" backslash\\ slash/", "ctl \x01\x1f\x7f \b\f\n\r\t end", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
        "",
    };

    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autoptr(GString) o = g_string_new(NULL);
        g_autoptr(GVariant) v = NULL;
        json_string(o, names[i]);
        for (gsize k = 0; k < o->len; k++)
            g_assert_cmpint((unsigned char)o->str[k], >=, 0x20);
        v = parse_json(o->str);
        g_assert_cmpstr(g_variant_get_string(v, NULL), ==, names[i]);
    }
    {
        /* invalid UTF-8 becomes U+FFFD, never raw bytes */
        g_autoptr(GString) o = g_string_new(NULL);
        g_autoptr(GVariant) v = NULL;
        json_string(o, "bad \xff\xfe byte");
        v = parse_json(o->str);
        g_assert_true(g_utf8_validate(g_variant_get_string(v, NULL), -1, NULL));
        g_assert_nonnull(strstr(g_variant_get_string(v, NULL), "\xef\xbf\xbd"));
    }
}

int main(int argc, char **argv)
{
    const char *w = g_getenv("VFIOCPR_EXEC_WRAPPER");

    if (argc > 5 && strcmp(argv[1], "--vmm-child") == 0)
        return vmm_child(argc, argv);
    if (argc > 4 && strcmp(argv[1], "--swap-fd") == 0) {
        int ep = epoll_create1(0);
        if (ep < 0 || dup2(ep, atoi(argv[2])) < 0)
            return 70;
        close(ep);
        execv(argv[3], argv + 4);
        return 71;
    }
    g_unsetenv(VFIOCPR_STATE_ENV);
    g_unsetenv(FALLBACK_ENV);
    g_test_init(&argc, &argv, NULL);
    self_path = g_file_read_link("/proc/self/exe", NULL);
    g_assert_nonnull(self_path);
    if (w && *w)
        wrapper_path = g_strdup(w);
    else
        wrapper_path = g_build_filename(g_getenv("top_builddir") ? g_getenv("top_builddir") : ".",
                                        "examples", "vfiocpr-exec", "vfiocpr-exec", NULL);
    if (!g_file_test(wrapper_path, G_FILE_TEST_IS_EXECUTABLE))
        g_error("the wrapper '%s' is not there: set VFIOCPR_EXEC_WRAPPER", wrapper_path);

    g_test_add_func("/vfiocpr-exec/exec-new", test_exec_new);
    g_test_add_func("/vfiocpr-exec/summary-text", test_summary_text);
    g_test_add_func("/vfiocpr-exec/fallback/nonexistent", test_fallback_nonexistent);
    g_test_add_func("/vfiocpr-exec/fallback/not-executable", test_fallback_not_executable);
    g_test_add_func("/vfiocpr-exec/fallback/wrong-format", test_fallback_wrong_format);
    g_test_add_func("/vfiocpr-exec/fallback/invalid-state", test_invalid_state_fallback);
    g_test_add_func("/vfiocpr-exec/fallback/swapped-fd", test_swapped_fd);
    g_test_add_func("/vfiocpr-exec/fallback/usage-error", test_usage_error_falls_back);
    g_test_add_func("/vfiocpr-exec/fallback/stale-env", test_stale_fallback_env);
    g_test_add_func("/vfiocpr-exec/exit/invalid-state", test_invalid_state_no_fallback);
    g_test_add_func("/vfiocpr-exec/exit/exec-failed", test_exec_failed_no_fallback);
    g_test_add_func("/vfiocpr-exec/exit/fallback-failed", test_fallback_fails_too);
    g_test_add_func("/vfiocpr-exec/no-state", test_no_state);
    g_test_add_func("/vfiocpr-exec/stdout-closed", test_stdout_closed);
    g_test_add_func("/vfiocpr-exec/seccomp/kills", test_seccomp);
    g_test_add_func("/vfiocpr-exec/seccomp/allow", test_seccomp_allow);
    g_test_add_func("/vfiocpr-exec/seccomp/new-missing", test_seccomp_new_missing);
    g_test_add_func("/vfiocpr-exec/cli/help", test_help);
    g_test_add_func("/vfiocpr-exec/cli/usage-errors", test_usage_errors);
    g_test_add_func("/vfiocpr-exec/cli/seccomp-list", test_seccomp_list);
    g_test_add_func("/vfiocpr-exec/summary/json-full", test_json_full);
    g_test_add_func("/vfiocpr-exec/summary/verify-mismatch", test_verify_mismatch);
    g_test_add_func("/vfiocpr-exec/json/variant-types", test_json_variant_types);
    g_test_add_func("/vfiocpr-exec/json/escaping", test_json_escaping);
    return g_test_run();
}
