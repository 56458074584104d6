/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vfiocpr-exec: the binary an unmodified VMM execs instead of its new binary.
 *
 *   vfiocpr-exec [--summary[=text|json]] [--seccomp [--seccomp-allow LIST]]
 *                [--fallback OLD] -- NEW [ARGS...]
 *
 * The old VMM calls
 *   vfiocpr_exec(ctx, "/usr/bin/vfiocpr-exec",
 *                { "vfiocpr-exec", "--fallback", "/usr/bin/vmm-old", "--",
 *                  "/usr/bin/vmm-new", args..., NULL }, NULL, &error);
 * and this program, with the VMM's pid, its preserved fds and VFIOCPR_STATE_FD:
 *  1. validates the incoming state WITHOUT consuming it: vfiocpr_new() with
 *     VFIOCPR_NEW_KEEP_STATE leaves the variable set, the state memfd open and every
 *     preserved fd inheritable; the throw-away context then claims every fd it can
 *     name, which also checks the kind of anon-inode fds (eventfd, VFIO device, KVM);
 *  2. optionally describes it (--summary: text on stderr, --summary=json: one line of
 *     JSON on stdout);
 *  3. optionally installs a seccomp filter that kills by default (--seccomp); it stays
 *     on across execve, so it sandboxes NEW;
 *  4. execs NEW with the state exactly as it came in;
 *  5. if the state is invalid or NEW cannot be exec'd, execs OLD (--fallback) with the
 *     state still intact, so the old VMM restores itself and no device is orphaned:
 *     if this process exited instead, the kernel would close the device fds and reset
 *     the devices. OLD learns why from VFIOCPR_EXEC_FALLBACK.
 *
 * It uses only the public API of libvfiocpr (plus libc, GLib and libseccomp), so it
 * builds the same against the installed library:
 *   cc vfiocpr-exec.c $(pkg-config --cflags --libs vfiocpr libseccomp) -o vfiocpr-exec
 *
 * Single-threaded by design: it calls setenv() and changes signal dispositions.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <vfiocpr.h>

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "(built outside the libvfiocpr tree)"
#endif

#define PROG "vfiocpr-exec"

/* GLib only (no GIO): our own error domain for the few GErrors made here. */
#define EXEC_ERROR g_quark_from_static_string("vfiocpr-exec-error")

/* Exit codes. On success nothing is returned: the process becomes NEW (or OLD). */
enum {
    EXIT_USAGE = 64,          /* bad command line, and no incoming state + --fallback */
    EXIT_STATE_INVALID = 65,  /* incoming state invalid, no --fallback */
    EXIT_EXEC_FAILED = 66,    /* execve(NEW) failed, no --fallback */
    EXIT_FALLBACK_FAILED = 67, /* execve(OLD) failed as well */
    EXIT_SECCOMP_FAILED = 68, /* --seccomp: filter not built/loaded, no --fallback */
};

/* Set for OLD when it is exec'd as the fallback: "REASON: DETAIL". Unset for NEW. */
#define FALLBACK_ENV "VFIOCPR_EXEC_FALLBACK"

/* The library's rules that --seccomp adds: everything it may do in NEW. */
#define SECCOMP_LIB_FLAGS (VFIOCPR_SECCOMP_KVM | VFIOCPR_SECCOMP_EXEC | VFIOCPR_SECCOMP_MIGRATION)

/* What --seccomp allows besides the library's rules: what a dynamically linked
 * glibc + GLib program needs to start, print and exit, and what this wrapper itself
 * does between loading the filter and the execve (write, execve, exit_group).
 * strace of the test's NEW image (test-vfiocpr-exec --vmm-child, Debian 12 x86_64)
 * shows brk, mprotect, arch_prctl, set_tid_address, set_robust_list, rseq, access,
 * getrandom, futex, rt_sigaction, munmap (the loader drops ld.so.cache) and exit_group
 * besides the library's calls (which do not include munmap: it never unmaps); the rest
 * is what tests/test-seccomp found such a program can reach on other paths. A real
 * VMM needs far more (threads, signals, its event loop, KVM_RUN, ...): add them with
 * --seccomp-allow. Names unknown on this architecture are skipped. Keep the man
 * page's list in sync. */
static const char *const startup_syscalls[] = {
    /* dynamic loader and libc start-up */
    "brk", "mprotect", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
    "access", "faccessat", "faccessat2", "uname", "getrandom",
    /* libc and GLib at run time */
    "futex", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "madvise", "mremap", "munmap",
    "getpid", "gettid", "getuid", "geteuid", "getgid", "getegid", "sched_getaffinity",
    "clock_gettime", "sysinfo",
    /* exit */
    "exit_group", "exit",
};

/* fcntl commands besides the library's: fdopen(3) (GLib's g_file_get_contents on a
 * /proc file, for one) asks for F_GETFL. */
static const struct {
    const char *name;
    int cmd;
} startup_fcntls[] = {
    { "F_GETFL", F_GETFL },
};

/* ioctls besides the library's: isatty() on stdio (glibc uses TCGETS). */
static const struct {
    const char *name;
    unsigned long req;
} startup_ioctls[] = {
    { "TCGETS", TCGETS },
};

typedef enum { SUMMARY_NONE, SUMMARY_TEXT, SUMMARY_JSON } summary_mode;

typedef struct {
    summary_mode summary;
    bool seccomp;
    bool seccomp_list;
    GPtrArray *seccomp_allow; /* char *, syscall names */
    const char *fallback;     /* OLD, or NULL */
    char **new_argv;          /* NEW ARGS..., into argv; NULL if not found */
} options;

/* ------------------------------------------------------------------ output */

/* Writes everything or fails; never raises SIGPIPE (it is ignored while we run). */
static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    g_autofree char *line = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    line = g_strconcat(PROG ": ", msg, "\n", NULL);
    (void)write_all(STDERR_FILENO, line, strlen(line));
}

/* ------------------------------------------------------------------ command line */

static const char usage_text[] =
    "Usage: " PROG " [OPTION...] [--] NEW [ARGS...]\n"
    "\n"
    "Exec wrapper for a VMM using libvfiocpr: validates the incoming state\n"
    "(VFIOCPR_STATE_FD) without consuming it, then execs NEW with the state intact.\n"
    "If the state is invalid or NEW cannot be exec'd, execs OLD (--fallback) instead,\n"
    "so the VMM restores itself and its VFIO devices are never orphaned.\n"
    "NEW and OLD are paths (no PATH search); NEW gets ARGS, OLD gets the same ARGS.\n"
    "\n"
    "Options:\n"
    "  --fallback=OLD        exec OLD (with VFIOCPR_EXEC_FALLBACK=\"REASON: DETAIL\")\n"
    "                        when the state is invalid or NEW cannot be exec'd\n"
    "  --summary[=text]      describe the incoming state on stderr\n"
    "  --summary=json        describe it as one line of JSON on stdout\n"
    "  --seccomp             exec NEW under a seccomp filter that kills by default and\n"
    "                        allows libvfiocpr's system calls plus a process's start-up\n"
    "                        (see --seccomp-list); it also applies to OLD if execve(NEW)\n"
    "                        fails after the filter is loaded\n"
    "  --seccomp-allow=LIST  also allow these system calls (comma-separated names)\n"
    "  --seccomp-list        print what --seccomp allows and exit\n"
    "  -h, --help            print this help and exit\n"
    "  --version             print the version and exit\n"
    "\n"
    "Exit status (on success nothing returns: the process becomes NEW or OLD):\n"
    "  0   --help, --version, --seccomp-list\n"
    "  64  usage error (with incoming state and --fallback, OLD is exec'd instead)\n"
    "  65  the incoming state is invalid and there is no --fallback\n"
    "  66  NEW could not be exec'd and there is no --fallback\n"
    "  67  the fallback OLD could not be exec'd either\n"
    "  68  --seccomp: the filter could not be built or loaded, no --fallback\n"
    "Whenever it exits while the state was valid, the VMM process is gone and the\n"
    "kernel has closed its fds: VFIO devices are released and reset.\n";

typedef enum { PARSE_OK, PARSE_EXIT, PARSE_USAGE } parse_result;

/* Value of --name=V or --name V; advances *i for the second form. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *matched)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    *matched = false;
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=') {
        *matched = true;
        return a + n + 1;
    }
    if (a[n] == '\0') {
        *matched = true;
        return *i + 1 < argc ? argv[++*i] : NULL;
    }
    return NULL;
}

static parse_result parse_args(int argc, char **argv, options *o, GError **error)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        bool m;

        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0')
            break; /* NEW */
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            (void)write_all(STDOUT_FILENO, usage_text, sizeof(usage_text) - 1);
            return PARSE_EXIT;
        }
        if (strcmp(a, "--version") == 0) {
            static const char ver[] = PROG " (libvfiocpr) " PACKAGE_VERSION "\n";
            (void)write_all(STDOUT_FILENO, ver, sizeof(ver) - 1);
            return PARSE_EXIT;
        }
        if (strcmp(a, "--summary") == 0 || strcmp(a, "--summary=text") == 0) {
            o->summary = SUMMARY_TEXT;
            continue;
        }
        if (strcmp(a, "--summary=json") == 0) {
            o->summary = SUMMARY_JSON;
            continue;
        }
        if (strcmp(a, "--seccomp") == 0) {
            o->seccomp = true;
            continue;
        }
        if (strcmp(a, "--seccomp-list") == 0) {
            o->seccomp_list = true;
            continue;
        }
        v = opt_value(argc, argv, &i, "--fallback", &m);
        if (m) {
            if (!v || !*v) {
                g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                            "--fallback needs a path");
                return PARSE_USAGE;
            }
            o->fallback = v;
            continue;
        }
        v = opt_value(argc, argv, &i, "--seccomp-allow", &m);
        if (m) {
            g_auto(GStrv) names = g_strsplit(v ? v : "", ",", -1);
            if (!v || !*v) {
                g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                            "--seccomp-allow needs a list of system calls");
                return PARSE_USAGE;
            }
            for (gsize k = 0; names[k]; k++) {
                if (seccomp_syscall_resolve_name(names[k]) == __NR_SCMP_ERROR) {
                    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                                "--seccomp-allow: unknown system call '%s'", names[k]);
                    return PARSE_USAGE;
                }
                g_ptr_array_add(o->seccomp_allow, g_strdup(names[k]));
            }
            continue;
        }
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_UNKNOWN_OPTION, "unknown option '%s'",
                    a);
        return PARSE_USAGE;
    }
    if (i < argc && argv[i][0])
        o->new_argv = argv + i;
    if (o->seccomp_allow->len && !o->seccomp && !o->seccomp_list) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                    "--seccomp-allow without --seccomp");
        return PARSE_USAGE;
    }
    if (o->seccomp_list)
        return PARSE_OK;
    if (!o->new_argv) {
        g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED, "no NEW binary to exec");
        return PARSE_USAGE;
    }
    return PARSE_OK;
}

/* ------------------------------------------------------------------ state summary
 *
 * Built from the text of vfiocpr_dump(), the only public description of a state.
 * That text is for humans: names are printed raw, so a name with a newline or a
 * trailing space cannot be read back exactly. Every fd read back is therefore
 * checked with vfiocpr_fd_find() (same fd number) and "complete" says whether the
 * whole description was recovered. Interrupt vectors are not in the text: they are
 * derived from the eventfds the library registers as "irq:DEVICE:INDEX", id VECTOR.
 */

typedef struct {
    char *name;
    guint64 id;
    int kind; /* vfiocpr_fd_kind */
    int fd;
    bool verified;
} fd_info;

typedef struct {
    char *name;
    guint groups, dma_ranges;
    guint64 dma_bytes;
    bool remap_pending;
    bool iommufd;      /* else type1 */
    guint ioas;
    bool pins_pending; /* iommufd: CHANGE_PROCESS not done yet */
} container_info;

typedef struct {
    char *name;
    guint vectors;
} device_info;

#define MAX_KINDS 32

typedef struct {
    bool have_header;
    guint major, minor;
    guint64 state_bytes;
    char *writer, *created;
    guint64 writer_pid;
    bool have_counts;
    guint fd_total;
    guint fd_counts[MAX_KINDS];
    GPtrArray *fds;        /* fd_info * */
    GPtrArray *containers; /* container_info * */
    GPtrArray *devices;    /* device_info * */
    guint64 dma_ranges, dma_bytes;
    guint vectors;
    guint unparsed_lines;
    bool complete;
} summary;

static void fd_info_free(gpointer p)
{
    fd_info *f = p;
    g_free(f->name);
    g_free(f);
}

static void container_info_free(gpointer p)
{
    container_info *c = p;
    g_free(c->name);
    g_free(c);
}

static void device_info_free(gpointer p)
{
    device_info *d = p;
    g_free(d->name);
    g_free(d);
}

static void summary_init(summary *s)
{
    memset(s, 0, sizeof(*s));
    s->fds = g_ptr_array_new_with_free_func(fd_info_free);
    s->containers = g_ptr_array_new_with_free_func(container_info_free);
    s->devices = g_ptr_array_new_with_free_func(device_info_free);
}

static void summary_clear(summary *s)
{
    g_free(s->writer);
    g_free(s->created);
    g_ptr_array_unref(s->fds);
    g_ptr_array_unref(s->containers);
    g_ptr_array_unref(s->devices);
    memset(s, 0, sizeof(*s));
}

/* Number of fd kinds this library knows (vfiocpr_fd_kind_to_string() != "unknown"). */
static int n_kinds(void)
{
    int n = 0;
    while (n < MAX_KINDS && strcmp(vfiocpr_fd_kind_to_string((vfiocpr_fd_kind)n), "unknown"))
        n++;
    return n;
}

static int kind_from_string(const char *s)
{
    for (int k = 0; k < n_kinds(); k++)
        if (strcmp(vfiocpr_fd_kind_to_string((vfiocpr_fd_kind)k), s) == 0)
            return k;
    return -1;
}

static bool parse_u64(const char *s, guint64 *out)
{
    return g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT64, out, NULL);
}

/* Splits off the last space-separated token of s (trailing spaces ignored): *tok gets
 * it, s is cut before it (and before the spaces that precede it). */
static bool pop_token(char *s, char **tok)
{
    char *end = s + strlen(s), *sp;

    while (end > s && end[-1] == ' ')
        *--end = '\0';
    sp = strrchr(s, ' ');
    if (!sp || sp[1] == '\0')
        return false;
    *tok = sp + 1;
    *sp = '\0';
    while (sp > s && sp[-1] == ' ')
        *--sp = '\0';
    return true;
}

/* "libvfiocpr state format 1.2, 1234 bytes, written by libvfiocpr 0.1.0 (pid 42) at T" */
static bool parse_header(const char *line, summary *s)
{
    static const char pfx[] = "libvfiocpr state format ";
    const char *p = line + sizeof(pfx) - 1, *by, *pid;
    int n = 0;

    if (!g_str_has_prefix(line, pfx) ||
        sscanf(p, "%u.%u, %" SCNu64 " bytes, written by %n", &s->major, &s->minor,
               &s->state_bytes, &n) != 3 || n == 0)
        return false;
    by = p + n;
    pid = g_strrstr(by, " (pid ");
    if (!pid)
        return false;
    n = 0;
    if (sscanf(pid, " (pid %" SCNu64 ") at %n", &s->writer_pid, &n) != 1 || n == 0)
        return false;
    g_free(s->writer);
    g_free(s->created);
    s->writer = g_strndup(by, (gsize)(pid - by));
    s->created = g_strdup(pid + n);
    s->have_header = true;
    return true;
}

/* "fds: 3 (memfd 1, eventfd 2)" or "fds: 0" */
static bool parse_fd_counts(const char *line, summary *s)
{
    g_autofree char *copy = g_strdup(line + strlen("fds: "));
    char *paren = strchr(copy, ' ');
    guint64 total;

    memset(s->fd_counts, 0, sizeof(s->fd_counts));
    if (paren)
        *paren++ = '\0';
    if (!parse_u64(copy, &total) || total > G_MAXUINT)
        return false;
    s->fd_total = (guint)total;
    if (paren) {
        g_auto(GStrv) parts = NULL;
        gsize len = strlen(paren);
        if (len < 2 || paren[0] != '(' || paren[len - 1] != ')')
            return false;
        paren[len - 1] = '\0';
        parts = g_strsplit(paren + 1, ", ", -1);
        for (gsize i = 0; parts[i]; i++) {
            char *num;
            guint64 v;
            int k;
            if (!pop_token(parts[i], &num) || !parse_u64(num, &v) ||
                (k = kind_from_string(parts[i])) < 0 || v > G_MAXUINT)
                return false;
            s->fd_counts[k] = (guint)v;
        }
    }
    s->have_counts = true;
    return true;
}

/* "  NAME<pad> ID<pad> KIND<pad> fd N<pad>[ claimed| unclaimed]" */
static bool parse_fd_line(const char *line, summary *s)
{
    g_autofree char *copy = g_strdup(line + 2);
    char *t_fd, *t_fdword, *t_kind, *t_id, *end;
    guint64 id, fd;
    int kind;
    fd_info *f;

    end = copy + strlen(copy);
    while (end > copy && end[-1] == ' ')
        *--end = '\0';
    if (g_str_has_suffix(copy, " unclaimed"))
        copy[strlen(copy) - strlen(" unclaimed")] = '\0';
    else if (g_str_has_suffix(copy, " claimed"))
        copy[strlen(copy) - strlen(" claimed")] = '\0';
    if (!pop_token(copy, &t_fd) || !pop_token(copy, &t_fdword) || !pop_token(copy, &t_kind) ||
        !pop_token(copy, &t_id))
        return false;
    if (strcmp(t_fdword, "fd") != 0 || !parse_u64(t_fd, &fd) || fd > G_MAXINT ||
        !parse_u64(t_id, &id) || (kind = kind_from_string(t_kind)) < 0)
        return false;
    f = g_new0(fd_info, 1);
    f->name = g_strdup(copy); /* what is left: the name, its padding already cut */
    f->id = id;
    f->kind = kind;
    f->fd = (int)fd;
    g_ptr_array_add(s->fds, f);
    return true;
}

/* "container 'NAME': G groups, D DMA ranges (B bytes)[, re-map pending]" (type1) or
 * "container 'NAME': iommufd IOAS N[ (pins pending)], D DMA ranges (B bytes)[, ...]" */
static bool parse_container(const char *line, summary *s)
{
    const char *name = line + strlen("container '"), *q = g_strrstr(name, "': ");
    container_info c = { 0 };
    const char *p;
    int n = 0;

    if (!q)
        return false;
    p = q + 3;
    if (sscanf(p, "iommufd IOAS %u%n", &c.ioas, &n) == 1 && n > 0) {
        c.iommufd = true;
        p += n;
        if (g_str_has_prefix(p, " (pins pending)")) {
            c.pins_pending = true;
            p += strlen(" (pins pending)");
        }
        if (!g_str_has_prefix(p, ", "))
            return false;
        p += 2;
    } else if (sscanf(p, "%u groups, %n", &c.groups, &n) == 1 && n > 0) {
        p += n;
    } else {
        return false;
    }
    n = 0;
    if (sscanf(p, "%u DMA ranges (%" SCNu64 " bytes)%n", &c.dma_ranges, &c.dma_bytes, &n) != 2 ||
        n == 0)
        return false;
    if (p[n] != '\0' && strcmp(p + n, ", re-map pending") != 0)
        return false;
    c.remap_pending = p[n] != '\0';
    c.name = g_strndup(name, (gsize)(q - name));
    g_ptr_array_add(s->containers, g_memdup2(&c, sizeof(c)));
    s->dma_ranges += c.dma_ranges;
    s->dma_bytes += c.dma_bytes;
    return true;
}

/* "device 'NAME'" */
static bool parse_device(const char *line, summary *s)
{
    const char *name = line + strlen("device '");
    size_t len = strlen(name);
    device_info *d;

    if (len == 0 || name[len - 1] != '\'')
        return false;
    d = g_new0(device_info, 1);
    d->name = g_strndup(name, len - 1);
    g_ptr_array_add(s->devices, d);
    return true;
}

/* Parses the text of vfiocpr_dump(). complete is provisional: verify_fds() settles it. */
static void parse_dump(const char *text, summary *s)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    bool in_fds = false;

    for (gsize i = 0; lines[i]; i++) {
        const char *l = lines[i];
        bool ok;

        if (!*l && !lines[i + 1])
            break; /* after the final newline */
        if (in_fds)
            ok = g_str_has_prefix(l, "  ") && parse_fd_line(l, s);
        else if (g_str_has_prefix(l, "libvfiocpr state format "))
            ok = parse_header(l, s);
        else if (g_str_has_prefix(l, "mode: "))
            ok = true;
        else if (g_str_has_prefix(l, "container '"))
            ok = parse_container(l, s);
        else if (g_str_has_prefix(l, "device '"))
            ok = parse_device(l, s);
        else if (g_str_has_prefix(l, "fds: "))
            ok = in_fds = parse_fd_counts(l, s);
        else
            ok = false;
        if (!ok)
            s->unparsed_lines++;
    }
    s->complete = s->have_header && s->have_counts && !s->unparsed_lines &&
                  s->fds->len == s->fd_total;
}

/* Interrupt vectors: verified eventfds named "irq:DEVICE:INDEX" (INDEX 0-4: INTx, MSI,
 * MSI-X, ERR, REQ) of a listed device; the id is the vector. */
static void count_vectors(summary *s)
{
    s->vectors = 0;
    for (guint i = 0; i < s->devices->len; i++)
        ((device_info *)s->devices->pdata[i])->vectors = 0;
    for (guint i = 0; i < s->fds->len; i++) {
        fd_info *f = s->fds->pdata[i];
        const char *colon;
        if (!f->verified || f->kind != VFIOCPR_FD_EVENTFD || !g_str_has_prefix(f->name, "irq:"))
            continue;
        colon = strrchr(f->name, ':');
        if (colon == f->name + 3 || colon[1] < '0' || colon[1] > '4' || colon[2] != '\0')
            continue;
        for (guint k = 0; k < s->devices->len; k++) {
            device_info *d = s->devices->pdata[k];
            if (strlen(d->name) == (size_t)(colon - f->name - 4) &&
                strncmp(d->name, f->name + 4, (size_t)(colon - f->name - 4)) == 0) {
                d->vectors++;
                s->vectors++;
                break;
            }
        }
    }
}

/* Claims every fd read back from the description in the throw-away context: proves
 * the read-back (same fd number) and checks the kind of anon-inode fds, which
 * vfiocpr_new() leaves to the first vfiocpr_fd_find(). Nothing is closed and no
 * FD_CLOEXEC changes. Returns a negative errno only for a kind mismatch (-EBADFD). */
static int verify_fds(vfiocpr *ctx, summary *s, GError **error)
{
    guint verified = 0;

    for (guint i = 0; i < s->fds->len; i++) {
        fd_info *f = s->fds->pdata[i];
        g_autoptr(GError) local = NULL;
        int r = vfiocpr_fd_find(ctx, f->name, f->id, (vfiocpr_fd_kind)f->kind, &local);

        if (r == -EBADFD) {
            g_propagate_error(error, g_steal_pointer(&local));
            return r;
        }
        f->verified = r == f->fd;
        verified += f->verified;
    }
    if (verified != s->fds->len) {
        /* drop what was misread: the JSON lists only exact entries */
        for (guint i = s->fds->len; i-- > 0;)
            if (!((fd_info *)s->fds->pdata[i])->verified)
                g_ptr_array_remove_index(s->fds, i);
        s->complete = false;
    }
    if (verified != vfiocpr_fd_count(ctx))
        s->complete = false;
    count_vectors(s);
    return 0;
}

/* ------------------------------------------------------------------ JSON */

static void json_string(GString *out, const char *s)
{
    g_autofree char *valid = NULL;

    if (!s) {
        g_string_append(out, "null");
        return;
    }
    if (!g_utf8_validate(s, -1, NULL))
        s = valid = g_utf8_make_valid(s, -1); /* invalid bytes become U+FFFD */
    g_string_append_c(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\b': g_string_append(out, "\\b"); break;
        case '\f': g_string_append(out, "\\f"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                g_string_append_printf(out, "\\u%04x", *p);
            else
                g_string_append_c(out, (char)*p);
        }
    }
    g_string_append_c(out, '"');
}

static void json_key(GString *out, const char *key)
{
    if (out->len && out->str[out->len - 1] != '{')
        g_string_append_c(out, ',');
    json_string(out, key);
    g_string_append_c(out, ':');
}

typedef enum { STATE_NONE, STATE_VALID, STATE_INVALID } state_status;

static const char *const status_names[] = { "none", "valid", "invalid" };

typedef struct {
    state_status status;
    const char *state_env; /* VFIOCPR_STATE_FD's value, or NULL */
    const char *error;     /* why the state is invalid */
    const char *new_path, *fallback;
    bool seccomp;
} run_info;

/* One line of JSON. Schema (version 1): see the man page. */
static char *summary_json(const summary *s, const run_info *ri)
{
    GString *o = g_string_new("{");
    bool have = ri->status == STATE_VALID;
    int nk = n_kinds();

    json_key(o, "schema");
    g_string_append(o, "1");
    json_key(o, "state");
    json_string(o, status_names[ri->status]);
    json_key(o, "state_fd");
    json_string(o, ri->state_env);
    json_key(o, "error");
    json_string(o, ri->error);
    json_key(o, "format_version");
    if (have && s->have_header)
        g_string_append_printf(o, "\"%u.%u\"", s->major, s->minor);
    else
        g_string_append(o, "null");
    json_key(o, "state_bytes");
    if (have && s->have_header)
        g_string_append_printf(o, "%" G_GUINT64_FORMAT, s->state_bytes);
    else
        g_string_append(o, "null");
    json_key(o, "writer");
    if (have && s->have_header) {
        g_string_append_c(o, '{');
        json_key(o, "name");
        json_string(o, s->writer);
        json_key(o, "pid");
        g_string_append_printf(o, "%" G_GUINT64_FORMAT, s->writer_pid);
        json_key(o, "created");
        json_string(o, s->created);
        g_string_append_c(o, '}');
    } else {
        g_string_append(o, "null");
    }
    json_key(o, "complete");
    g_string_append(o, !have ? "null" : s->complete ? "true" : "false");
    json_key(o, "fd_total");
    g_string_append_printf(o, "%u", have ? s->fd_total : 0);
    json_key(o, "fd_counts");
    g_string_append_c(o, '{');
    for (int k = 0; k < nk; k++) {
        json_key(o, vfiocpr_fd_kind_to_string((vfiocpr_fd_kind)k));
        g_string_append_printf(o, "%u", have ? s->fd_counts[k] : 0);
    }
    g_string_append_c(o, '}');
    json_key(o, "fds");
    g_string_append_c(o, '[');
    for (guint i = 0; have && i < s->fds->len; i++) {
        const fd_info *f = s->fds->pdata[i];
        g_string_append(o, i ? ",{" : "{");
        json_key(o, "name");
        json_string(o, f->name);
        json_key(o, "id");
        g_string_append_printf(o, "%" G_GUINT64_FORMAT, f->id);
        json_key(o, "kind");
        json_string(o, vfiocpr_fd_kind_to_string((vfiocpr_fd_kind)f->kind));
        json_key(o, "fd");
        g_string_append_printf(o, "%d", f->fd);
        g_string_append_c(o, '}');
    }
    g_string_append_c(o, ']');
    json_key(o, "containers");
    g_string_append_c(o, '[');
    for (guint i = 0; have && i < s->containers->len; i++) {
        const container_info *c = s->containers->pdata[i];
        g_string_append(o, i ? ",{" : "{");
        json_key(o, "name");
        json_string(o, c->name);
        json_key(o, "groups");
        g_string_append_printf(o, "%u", c->groups);
        json_key(o, "dma_ranges");
        g_string_append_printf(o, "%u", c->dma_ranges);
        json_key(o, "dma_bytes");
        g_string_append_printf(o, "%" G_GUINT64_FORMAT, c->dma_bytes);
        json_key(o, "remap_pending");
        g_string_append(o, c->remap_pending ? "true" : "false");
        if (c->iommufd) {
            json_key(o, "backend");
            json_string(o, "iommufd");
            json_key(o, "ioas");
            g_string_append_printf(o, "%u", c->ioas);
            json_key(o, "pins_pending");
            g_string_append(o, c->pins_pending ? "true" : "false");
        }
        g_string_append_c(o, '}');
    }
    g_string_append_c(o, ']');
    json_key(o, "devices");
    g_string_append_c(o, '[');
    for (guint i = 0; have && i < s->devices->len; i++) {
        const device_info *d = s->devices->pdata[i];
        g_string_append(o, i ? ",{" : "{");
        json_key(o, "name");
        json_string(o, d->name);
        json_key(o, "vectors");
        g_string_append_printf(o, "%u", d->vectors);
        g_string_append_c(o, '}');
    }
    g_string_append_c(o, ']');
    json_key(o, "dma_ranges");
    g_string_append_printf(o, "%" G_GUINT64_FORMAT, have ? s->dma_ranges : 0);
    json_key(o, "dma_bytes");
    g_string_append_printf(o, "%" G_GUINT64_FORMAT, have ? s->dma_bytes : 0);
    json_key(o, "vectors");
    g_string_append_printf(o, "%u", have ? s->vectors : 0);
    json_key(o, "new");
    json_string(o, ri->new_path);
    json_key(o, "fallback");
    json_string(o, ri->fallback);
    json_key(o, "seccomp");
    g_string_append(o, ri->seccomp ? "true" : "false");
    g_string_append(o, "}\n");
    return g_string_free(o, FALSE);
}

static char *summary_text(const summary *s, const run_info *ri, const char *dump)
{
    GString *o = g_string_new(NULL);

    if (ri->status == STATE_NONE) {
        g_string_append(o, PROG ": no incoming state (" VFIOCPR_STATE_ENV " unset): cold start\n");
    } else if (ri->status == STATE_INVALID) {
        g_string_append_printf(o, PROG ": incoming state %s=%s is INVALID: %s\n",
                               VFIOCPR_STATE_ENV, ri->state_env, ri->error);
    } else {
        g_auto(GStrv) lines = g_strsplit(dump, "\n", -1);
        g_string_append_printf(o, PROG ": incoming state %s=%s is valid\n", VFIOCPR_STATE_ENV,
                               ri->state_env);
        for (gsize i = 0; lines[i]; i++)
            if (*lines[i])
                g_string_append_printf(o, "  %s\n", lines[i]);
        g_string_append_printf(o, "  interrupt vectors: %u (eventfds registered as "
                               "irq:DEVICE:INDEX)\n", s->vectors);
        if (!s->complete)
            g_string_append(o, "  (some names could not be read back exactly)\n");
    }
    g_string_append_printf(o, PROG ": next: exec %s%s%s%s\n", ri->new_path,
                           ri->fallback ? ", fallback " : "", ri->fallback ? ri->fallback : "",
                           ri->seccomp ? ", under seccomp" : "");
    return g_string_free(o, FALSE);
}

/* ------------------------------------------------------------------ seccomp */

static char *seccomp_list(const options *o)
{
    g_autofree char *lib = vfiocpr_seccomp_describe(SECCOMP_LIB_FLAGS);
    GString *s = g_string_new("# libvfiocpr: vfiocpr_seccomp_describe(KVM|EXEC|MIGRATION)\n");

    g_string_append(s, lib);
    g_string_append(s, "# " PROG ": process start-up and exit (names unknown here skipped)\n");
    for (gsize i = 0; i < G_N_ELEMENTS(startup_syscalls); i++)
        if (seccomp_syscall_resolve_name(startup_syscalls[i]) != __NR_SCMP_ERROR)
            g_string_append_printf(s, "syscall %s\n", startup_syscalls[i]);
    for (gsize i = 0; i < G_N_ELEMENTS(startup_fcntls); i++)
        g_string_append_printf(s, "syscall fcntl (%s)\n", startup_fcntls[i].name);
    for (gsize i = 0; i < G_N_ELEMENTS(startup_ioctls); i++)
        g_string_append_printf(s, "ioctl %s (0x%lx)\n", startup_ioctls[i].name,
                               startup_ioctls[i].req);
    if (o->seccomp_allow->len) {
        g_string_append(s, "# --seccomp-allow\n");
        for (guint i = 0; i < o->seccomp_allow->len; i++)
            g_string_append_printf(s, "syscall %s\n", (char *)o->seccomp_allow->pdata[i]);
    }
    g_string_append(s, "# everything else: SCMP_ACT_KILL_PROCESS\n");
    return g_string_free(s, FALSE);
}

static int allow(scmp_filter_ctx f, const char *name, GError **error)
{
    int nr = seccomp_syscall_resolve_name(name), r;

    if (nr == __NR_SCMP_ERROR)
        return 0; /* not on this architecture */
    r = seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0);
    if (r < 0 && r != -EEXIST) {
        g_set_error(error, EXEC_ERROR, 0, "seccomp: allowing %s: %s", name,
                    g_strerror(-r));
        return r;
    }
    return 0;
}

static int build_filter(const options *o, scmp_filter_ctx *out, GError **error)
{
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);
    int r;

    *out = NULL;
    if (!f) {
        g_set_error(error, EXEC_ERROR, 0, "seccomp_init failed");
        return -ENOMEM;
    }
    r = vfiocpr_seccomp_add_rules(f, SECCOMP_LIB_FLAGS, error);
    for (gsize i = 0; r == 0 && i < G_N_ELEMENTS(startup_syscalls); i++)
        r = allow(f, startup_syscalls[i], error);
    for (gsize i = 0; r == 0 && i < G_N_ELEMENTS(startup_fcntls); i++) {
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                             SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)startup_fcntls[i].cmd));
        if (r == -EEXIST)
            r = 0;
        if (r < 0)
            g_set_error(error, EXEC_ERROR, 0, "seccomp: allowing fcntl %s: %s",
                        startup_fcntls[i].name, g_strerror(-r));
    }
    for (gsize i = 0; r == 0 && i < G_N_ELEMENTS(startup_ioctls); i++) {
        /* the request is an int in the kernel: compare the low 32 bits, as the library */
        r = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, startup_ioctls[i].req));
        if (r == -EEXIST)
            r = 0;
        if (r < 0)
            g_set_error(error, EXEC_ERROR, 0, "seccomp: allowing ioctl %s: %s",
                        startup_ioctls[i].name, g_strerror(-r));
    }
    for (guint i = 0; r == 0 && i < o->seccomp_allow->len; i++)
        r = allow(f, o->seccomp_allow->pdata[i], error);
    if (r < 0) {
        seccomp_release(f);
        return r;
    }
    *out = f;
    return 0;
}

/* Before loading a filter that will also confine OLD, make sure NEW looks
 * executable, so the common failures fall back to an unconfined OLD, as it ran
 * before. A wrong format (ENOEXEC) is only found by execve itself. */
static int check_executable(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode))
        return -EACCES;
    if (faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) < 0)
        return -errno;
    return 0;
}

/* ------------------------------------------------------------------ exec */

static struct sigaction saved_sigpipe;

static void restore_signals(void)
{
    sigaction(SIGPIPE, &saved_sigpipe, NULL);
}

/* Execs OLD with the state untouched; returns only if that failed. */
static int exec_fallback(const options *o, const char *reason, const char *detail)
{
    g_autofree char *why = g_strdup_printf("%s: %s", reason, detail);
    g_autoptr(GPtrArray) args = g_ptr_array_new();
    int e;

    g_ptr_array_add(args, (gpointer)o->fallback);
    for (char **a = o->new_argv ? o->new_argv + 1 : NULL; a && *a; a++)
        g_ptr_array_add(args, *a);
    g_ptr_array_add(args, NULL);
    say("falling back to %s (%s)", o->fallback, why);
    g_setenv(FALLBACK_ENV, why, TRUE);
    restore_signals();
    execv(o->fallback, (char **)args->pdata);
    e = errno;
    signal(SIGPIPE, SIG_IGN);
    say("exec fallback '%s': %s%s", o->fallback, g_strerror(e),
        g_getenv(VFIOCPR_STATE_ENV) ? "; the VMM is gone, its devices are released" : "");
    return EXIT_FALLBACK_FAILED;
}

/* Falls back if there is an OLD to fall back to, else gives up with code. */
static int fail(const options *o, int code, const char *reason, const char *detail)
{
    if (o->fallback)
        return exec_fallback(o, reason, detail);
    say("%s: %s; no --fallback: exiting with %d%s", reason, detail, code,
        g_getenv(VFIOCPR_STATE_ENV) ? ", the VMM is gone and its devices are released" : "");
    return code;
}

static int run(int argc, char **argv)
{
    g_autoptr(GPtrArray) allow_list = g_ptr_array_new_with_free_func(g_free);
    options o = { .seccomp_allow = allow_list };
    g_autoptr(GError) error = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autofree char *dump = NULL;
    run_info ri = { 0 };
    summary s;
    scmp_filter_ctx filter = NULL;
    int r, e;

    /* A reason is only for the OLD we exec: never pass a stale one to NEW. */
    g_unsetenv(FALLBACK_ENV);

    switch (parse_args(argc, argv, &o, &error)) {
    case PARSE_EXIT:
        return 0;
    case PARSE_USAGE:
        say("%s (try --help)", error->message);
        /* With state to save and somewhere to go back to, go back: --fallback and
         * the ARGS after "--", wherever they are on the line parsing stopped. */
        for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
            bool m;
            const char *v = opt_value(argc, argv, &i, "--fallback", &m);
            if (m && v && *v && !o.fallback)
                o.fallback = v;
        }
        for (int i = 1; !o.new_argv && i + 1 < argc; i++)
            if (strcmp(argv[i], "--") == 0)
                o.new_argv = argv + i + 1;
        if (o.fallback && g_getenv(VFIOCPR_STATE_ENV))
            return exec_fallback(&o, "usage", error->message);
        return EXIT_USAGE;
    case PARSE_OK:
        break;
    }
    if (o.seccomp_list) {
        g_autofree char *list = seccomp_list(&o);
        (void)write_all(STDOUT_FILENO, list, strlen(list));
        return 0;
    }

    /* 1. validate, keeping everything as it is */
    summary_init(&s);
    ri.state_env = g_getenv(VFIOCPR_STATE_ENV);
    ri.new_path = o.new_argv[0];
    ri.fallback = o.fallback;
    ri.seccomp = o.seccomp;
    if (!ri.state_env) {
        ri.status = STATE_NONE;
    } else if (vfiocpr_new(VFIOCPR_NEW_KEEP_STATE, &ctx, &error) < 0) {
        ri.status = STATE_INVALID;
    } else {
        dump = vfiocpr_dump(ctx);
        parse_dump(dump, &s);
        ri.status = verify_fds(ctx, &s, &error) < 0 ? STATE_INVALID : STATE_VALID;
    }
    if (ri.status == STATE_INVALID)
        ri.error = error->message;

    /* 2. describe */
    if (o.summary != SUMMARY_NONE) {
        g_autofree char *text = o.summary == SUMMARY_JSON ? summary_json(&s, &ri)
                                                          : summary_text(&s, &ri, dump);
        int fd = o.summary == SUMMARY_JSON ? STDOUT_FILENO : STDERR_FILENO;
        r = write_all(fd, text, strlen(text));
        if (r < 0 && fd == STDOUT_FILENO)
            say("--summary=json: writing to stdout: %s (going on)", g_strerror(-r));
    }
    /* the context only validated: dropping it closes nothing, changes no flag */
    g_clear_pointer(&ctx, vfiocpr_unref);
    summary_clear(&s);
    if (ri.status == STATE_INVALID) {
        g_autofree char *msg = g_strdup(ri.error);
        return fail(&o, EXIT_STATE_INVALID, "state-invalid", msg);
    }

    /* 3. sandbox */
    if (o.seccomp) {
        r = check_executable(o.new_argv[0]);
        if (r < 0) {
            g_autofree char *msg = g_strdup_printf("%s: %s", o.new_argv[0], g_strerror(-r));
            return fail(&o, EXIT_EXEC_FAILED, "exec-failed", msg);
        }
        if (build_filter(&o, &filter, &error) < 0)
            return fail(&o, EXIT_SECCOMP_FAILED, "seccomp", error->message);
    }

    /* 4. exec NEW: fds, state memfd and environment exactly as they came in */
    restore_signals();
    if (filter) {
        r = seccomp_load(filter);
        seccomp_release(filter);
        if (r < 0) {
            g_autofree char *msg = g_strdup_printf("seccomp_load: %s", g_strerror(-r));
            signal(SIGPIPE, SIG_IGN);
            return fail(&o, EXIT_SECCOMP_FAILED, "seccomp", msg);
        }
    }
    execv(o.new_argv[0], o.new_argv);
    e = errno;

    /* 5. NEW did not start: the old VMM restores itself */
    signal(SIGPIPE, SIG_IGN);
    {
        g_autofree char *msg = g_strdup_printf("%s: %s", o.new_argv[0], g_strerror(e));
        return fail(&o, EXIT_EXEC_FAILED, "exec-failed", msg);
    }
}

#ifndef VFIOCPR_EXEC_NO_MAIN
int main(int argc, char **argv)
{
    struct sigaction ign = { .sa_handler = SIG_IGN };

    /* A closed stdout or stderr must not kill the process that holds the devices:
     * SIGPIPE is ignored while we run and restored for NEW/OLD. */
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &saved_sigpipe);
    return run(argc, argv);
}
#endif
