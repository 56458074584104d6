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
#include <math.h>
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
 * Built from vfiocpr_describe() of the context vfiocpr_new() restored from the
 * state (what vfiocpr_state_describe_variant() gives for the state memfd): the
 * library's own structured description of the incoming state (names, ids and numbers exactly, whatever
 * bytes a name holds), never from the text of vfiocpr_dump(). The fds it lists are
 * then claimed in the throw-away context with vfiocpr_fd_lookup(), which also checks
 * the kind of anon-inode fds (eventfd, VFIO device, KVM) that vfiocpr_new() leaves
 * to the first look-up.
 */

typedef enum { STATE_NONE, STATE_VALID, STATE_INVALID } state_status;

static const char *const status_names[] = { "none", "valid", "invalid" };

typedef struct {
    state_status status;
    const char *state_env; /* VFIOCPR_STATE_FD's value, or NULL */
    const char *error;     /* why the state is invalid */
    const char *new_path, *fallback;
    bool seccomp;
} run_info;

#define MAX_KINDS 32

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

/* Typed look-ups in an a{sv} of the description, with a default when absent. */
static const char *d_str(GVariant *d, const char *key)
{
    const char *s = NULL;
    return d && g_variant_lookup(d, key, "&s", &s) ? s : NULL;
}

static guint64 d_num(GVariant *d, const char *key)
{
    g_autoptr(GVariant) v = d ? g_variant_lookup_value(d, key, NULL) : NULL;

    if (!v)
        return 0;
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT32))
        return g_variant_get_uint32(v);
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_INT32))
        return (guint64)(gint64)g_variant_get_int32(v);
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT64))
        return g_variant_get_uint64(v);
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_INT64))
        return (guint64)g_variant_get_int64(v);
    if (g_variant_is_of_type(v, G_VARIANT_TYPE_BOOLEAN))
        return g_variant_get_boolean(v);
    return 0;
}

/* The list of type "a" elem under key: a new reference, an empty one if absent. */
static GVariant *d_list_of(GVariant *d, const char *key, const char *elem)
{
    g_autofree char *t = g_strconcat("a", elem, NULL);
    GVariant *v = d ? g_variant_lookup_value(d, key, G_VARIANT_TYPE(t)) : NULL;
    return v ? v : g_variant_ref_sink(g_variant_new_array(G_VARIANT_TYPE(elem), NULL, 0));
}

static GVariant *d_list(GVariant *d, const char *key)
{
    return d_list_of(d, key, "a{sv}");
}

/* The tuples of vfiocpr_describe()'s long lists (see vfiocpr.h): their types, and
 * the names the JSON gives their members. */
#define FD_TUPLE "(stsis)"
#define FD_GET "(&st&si&s)" /* read with the strings borrowed from the list */
static const struct {
    const char *key, *type;
    const char *names[10];
} tuples[] = {
    { "fds", FD_TUPLE, { "name", "id", "kind", "fd", "status" } },
    { "mappings", "(tttuibt)",
      { "iova", "size", "offset", "flags", "memfd", "pending", "vaddr" } },
    { "vectors", "(uuisbtubi)",
      { "index", "vector", "fd", "status", "has-msi", "msi-address", "msi-data", "masked",
        "kvm-gsi" } },
};

/* Claims every fd the description lists in the throw-away context: checks the kind
 * of anon-inode fds and that the context holds exactly what the description says.
 * Nothing is closed and no FD_CLOEXEC changes. */
static int verify_fds(vfiocpr *ctx, GVariant *desc, GError **error)
{
    g_autoptr(GVariant) fds = d_list_of(desc, "fds", FD_TUPLE);

    for (gsize i = 0; i < g_variant_n_children(fds); i++) {
        const char *name, *kind;
        guint64 id;
        gint32 want;
        int k, fd = -1, r;

        g_variant_get_child(fds, i, FD_GET, &name, &id, &kind, &want, NULL);
        k = kind_from_string(kind);
        if (k < 0) {
            g_set_error(error, EXEC_ERROR, EBADMSG, "fd '%s'/%" G_GUINT64_FORMAT ": unknown "
                        "kind '%s'", name, id, kind);
            return -EBADMSG;
        }
        r = vfiocpr_fd_lookup(ctx, name, id, (vfiocpr_fd_kind)k, &fd, error);
        if (r < 0)
            return r;
        if (r == 0 || fd != want) {
            g_set_error(error, EXEC_ERROR, EBADMSG, "fd '%s'/%" G_GUINT64_FORMAT ": the "
                        "description says fd %d, the restored context %s", name, id, want,
                        r == 0 ? "does not have it" : "another one");
            return -EBADMSG;
        }
    }
    return 0;
}

/* Step 1: validates the incoming state without consuming it. On STATE_VALID, *desc
 * is its description (every fd verified), *ctx the throw-away context and, if dump
 * is not NULL, *dump its text as NEW will find it (before anything was claimed). */
static state_status validate_state(const char *state_env, vfiocpr **ctx, GVariant **desc,
                                   char **dump, GError **error)
{
    *ctx = NULL;
    *desc = NULL;
    if (!state_env)
        return STATE_NONE;
    if (vfiocpr_new(VFIOCPR_NEW_KEEP_STATE, ctx, error) < 0)
        return STATE_INVALID;
    /* The context just restored describes the state as vfiocpr_state_describe_variant()
     * would (tests/test-describe asserts they are equal) without loading it a second
     * time inside the blackout. */
    *desc = vfiocpr_describe(*ctx);
    if (dump)
        *dump = vfiocpr_dump(*ctx);
    return verify_fds(*ctx, *desc, error) < 0 ? STATE_INVALID : STATE_VALID;
}

/* Interrupt vectors of one device (NULL: of every device). */
static guint count_vectors(GVariant *desc, GVariant *device)
{
    g_autoptr(GVariant) devices = d_list(desc, "devices");
    guint n = 0;

    if (device) {
        g_autoptr(GVariant) v = g_variant_lookup_value(device, "vectors", NULL);
        return v && g_variant_is_container(v) ? (guint)g_variant_n_children(v) : 0;
    }
    for (gsize i = 0; i < g_variant_n_children(devices); i++) {
        g_autoptr(GVariant) d = g_variant_get_child_value(devices, i);
        n += count_vectors(desc, d);
    }
    return n;
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

static gint cmp_entry_key(gconstpointer a, gconstpointer b)
{
    g_autoptr(GVariant) ka = g_variant_get_child_value(*(GVariant *const *)a, 0);
    g_autoptr(GVariant) kb = g_variant_get_child_value(*(GVariant *const *)b, 0);
    return strcmp(g_variant_get_string(ka, NULL), g_variant_get_string(kb, NULL));
}

static void json_variant_in(GString *out, GVariant *v, const char *key);

static void json_variant(GString *out, GVariant *v)
{
    json_variant_in(out, v, NULL);
}

/* Any GVariant as JSON: dictionaries with string keys are objects (keys sorted, so
 * the same description always prints the same), other containers arrays, a variant
 * its value, a maybe null or its value; numbers in full (64-bit values above 2^53
 * lose precision in parsers that use doubles; non-finite doubles are null). The
 * description's lists of tuples (key: the dictionary key they are under) become
 * lists of objects with the members' names. */
static void json_variant_in(GString *out, GVariant *v, const char *key)
{
    const GVariantType *t = g_variant_get_type(v);

    for (gsize i = 0; key && i < G_N_ELEMENTS(tuples); i++) {
        g_autofree char *at = g_strconcat("a", tuples[i].type, NULL);
        if (strcmp(key, tuples[i].key) != 0 || !g_variant_is_of_type(v, G_VARIANT_TYPE(at)))
            continue;
        g_string_append_c(out, '[');
        for (gsize e = 0; e < g_variant_n_children(v); e++) {
            g_autoptr(GVariant) tuple = g_variant_get_child_value(v, e);
            g_string_append(out, e ? ",{" : "{");
            for (gsize m = 0; m < g_variant_n_children(tuple); m++) {
                g_autoptr(GVariant) member = g_variant_get_child_value(tuple, m);
                json_key(out, tuples[i].names[m]);
                json_variant_in(out, member, NULL);
            }
            g_string_append_c(out, '}');
        }
        g_string_append_c(out, ']');
        return;
    }

    switch (g_variant_classify(v)) {
    case G_VARIANT_CLASS_BOOLEAN:
        g_string_append(out, g_variant_get_boolean(v) ? "true" : "false");
        return;
    case G_VARIANT_CLASS_BYTE:
        g_string_append_printf(out, "%u", g_variant_get_byte(v));
        return;
    case G_VARIANT_CLASS_INT16:
        g_string_append_printf(out, "%d", g_variant_get_int16(v));
        return;
    case G_VARIANT_CLASS_UINT16:
        g_string_append_printf(out, "%u", g_variant_get_uint16(v));
        return;
    case G_VARIANT_CLASS_INT32:
        g_string_append_printf(out, "%" G_GINT32_FORMAT, g_variant_get_int32(v));
        return;
    case G_VARIANT_CLASS_UINT32:
        g_string_append_printf(out, "%" G_GUINT32_FORMAT, g_variant_get_uint32(v));
        return;
    case G_VARIANT_CLASS_INT64:
        g_string_append_printf(out, "%" G_GINT64_FORMAT, g_variant_get_int64(v));
        return;
    case G_VARIANT_CLASS_UINT64:
        g_string_append_printf(out, "%" G_GUINT64_FORMAT, g_variant_get_uint64(v));
        return;
    case G_VARIANT_CLASS_HANDLE:
        g_string_append_printf(out, "%" G_GINT32_FORMAT, g_variant_get_handle(v));
        return;
    case G_VARIANT_CLASS_DOUBLE: {
        double d = g_variant_get_double(v);
        char buf[G_ASCII_DTOSTR_BUF_SIZE];
        if (isfinite(d))
            g_string_append(out, g_ascii_formatd(buf, sizeof(buf), "%.17g", d));
        else
            g_string_append(out, "null");
        return;
    }
    case G_VARIANT_CLASS_STRING:
    case G_VARIANT_CLASS_OBJECT_PATH:
    case G_VARIANT_CLASS_SIGNATURE:
        json_string(out, g_variant_get_string(v, NULL));
        return;
    case G_VARIANT_CLASS_VARIANT: {
        g_autoptr(GVariant) inner = g_variant_get_variant(v);
        json_variant_in(out, inner, key);
        return;
    }
    case G_VARIANT_CLASS_MAYBE: {
        g_autoptr(GVariant) inner = g_variant_get_maybe(v);
        if (inner)
            json_variant(out, inner);
        else
            g_string_append(out, "null");
        return;
    }
    case G_VARIANT_CLASS_ARRAY:
        if (g_variant_type_is_dict_entry(g_variant_type_element(t)) &&
            g_variant_type_equal(g_variant_type_key(g_variant_type_element(t)),
                                 G_VARIANT_TYPE_STRING)) {
            g_autoptr(GPtrArray) entries = g_ptr_array_new_with_free_func(
                (GDestroyNotify)g_variant_unref);
            for (gsize i = 0; i < g_variant_n_children(v); i++)
                g_ptr_array_add(entries, g_variant_get_child_value(v, i));
            g_ptr_array_sort(entries, cmp_entry_key);
            g_string_append_c(out, '{');
            for (guint i = 0; i < entries->len; i++) {
                g_autoptr(GVariant) k = g_variant_get_child_value(entries->pdata[i], 0);
                g_autoptr(GVariant) val = g_variant_get_child_value(entries->pdata[i], 1);
                json_key(out, g_variant_get_string(k, NULL));
                json_variant_in(out, val, g_variant_get_string(k, NULL));
            }
            g_string_append_c(out, '}');
            return;
        }
        /* any other array is a JSON array */
        G_GNUC_FALLTHROUGH;
    case G_VARIANT_CLASS_TUPLE:
    case G_VARIANT_CLASS_DICT_ENTRY:
        g_string_append_c(out, '[');
        for (gsize i = 0; i < g_variant_n_children(v); i++) {
            g_autoptr(GVariant) c = g_variant_get_child_value(v, i);
            if (i)
                g_string_append_c(out, ',');
            json_variant(out, c);
        }
        g_string_append_c(out, ']');
        return;
    }
    g_string_append(out, "null");
}

/* One line of JSON. Schema (version 1): see the man page. The summary keys come
 * first, as schema 1 always had them, then the library's whole description. */
static char *summary_json(GVariant *desc, const run_info *ri)
{
    GString *o = g_string_new("{");
    bool have = ri->status == STATE_VALID && desc;
    g_autoptr(GVariant) st = have ? g_variant_lookup_value(desc, "state", G_VARIANT_TYPE_VARDICT)
                                  : NULL;
    g_autoptr(GVariant) fds = d_list_of(have ? desc : NULL, "fds", FD_TUPLE);
    g_autoptr(GVariant) containers = d_list(have ? desc : NULL, "containers");
    g_autoptr(GVariant) devices = d_list(have ? desc : NULL, "devices");
    guint counts[MAX_KINDS] = { 0 };
    guint64 dma_ranges = 0, dma_bytes = 0;
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
    if (st)
        g_string_append_printf(o, "\"%u.%u\"", (guint)d_num(st, "format-major"),
                               (guint)d_num(st, "format-minor"));
    else
        g_string_append(o, "null");
    json_key(o, "state_bytes");
    if (st)
        g_string_append_printf(o, "%" G_GUINT64_FORMAT, d_num(st, "bytes"));
    else
        g_string_append(o, "null");
    json_key(o, "writer");
    if (st) {
        g_autoptr(GDateTime) when = g_date_time_new_from_unix_utc(
            (gint64)d_num(st, "created-usec") / G_USEC_PER_SEC);
        g_autofree char *created = when ? g_date_time_format_iso8601(when) : NULL;
        g_string_append_c(o, '{');
        json_key(o, "name");
        json_string(o, d_str(st, "writer"));
        json_key(o, "pid");
        g_string_append_printf(o, "%" G_GUINT64_FORMAT, d_num(st, "writer-pid"));
        json_key(o, "created");
        json_string(o, created);
        g_string_append_c(o, '}');
    } else {
        g_string_append(o, "null");
    }
    /* read from the library's description: always exact now */
    json_key(o, "complete");
    g_string_append(o, have ? "true" : "null");
    json_key(o, "fd_total");
    g_string_append_printf(o, "%zu", g_variant_n_children(fds));
    for (gsize i = 0; i < g_variant_n_children(fds); i++) {
        const char *kind;
        int k;
        g_variant_get_child(fds, i, FD_GET, NULL, NULL, &kind, NULL, NULL);
        k = kind_from_string(kind);
        if (k >= 0)
            counts[k]++;
    }
    json_key(o, "fd_counts");
    g_string_append_c(o, '{');
    for (int k = 0; k < nk; k++) {
        json_key(o, vfiocpr_fd_kind_to_string((vfiocpr_fd_kind)k));
        g_string_append_printf(o, "%u", counts[k]);
    }
    g_string_append_c(o, '}');
    json_key(o, "fds");
    g_string_append_c(o, '[');
    for (gsize i = 0; i < g_variant_n_children(fds); i++) {
        const char *name, *kind;
        guint64 id;
        gint32 fd;
        g_variant_get_child(fds, i, FD_GET, &name, &id, &kind, &fd, NULL);
        g_string_append(o, i ? ",{" : "{");
        json_key(o, "name");
        json_string(o, name);
        json_key(o, "id");
        g_string_append_printf(o, "%" G_GUINT64_FORMAT, id);
        json_key(o, "kind");
        json_string(o, kind);
        json_key(o, "fd");
        g_string_append_printf(o, "%d", fd);
        g_string_append_c(o, '}');
    }
    g_string_append_c(o, ']');
    json_key(o, "containers");
    g_string_append_c(o, '[');
    for (gsize i = 0; i < g_variant_n_children(containers); i++) {
        g_autoptr(GVariant) c = g_variant_get_child_value(containers, i);
        g_autoptr(GVariant) groups = d_list(c, "groups");
        const char *backend = d_str(c, "backend");
        g_string_append(o, i ? ",{" : "{");
        json_key(o, "name");
        json_string(o, d_str(c, "name"));
        json_key(o, "groups");
        g_string_append_printf(o, "%zu", g_variant_n_children(groups));
        json_key(o, "dma_ranges");
        g_string_append_printf(o, "%" G_GUINT64_FORMAT, d_num(c, "dma-ranges"));
        json_key(o, "dma_bytes");
        g_string_append_printf(o, "%" G_GUINT64_FORMAT, d_num(c, "dma-bytes"));
        json_key(o, "remap_pending");
        g_string_append(o, d_num(c, "remap-pending") ? "true" : "false");
        if (backend && strcmp(backend, "iommufd") == 0) {
            json_key(o, "backend");
            json_string(o, "iommufd");
            json_key(o, "ioas");
            g_string_append_printf(o, "%" G_GUINT64_FORMAT, d_num(c, "ioas-id"));
            json_key(o, "pins_pending");
            g_string_append(o, d_num(c, "pins-pending") ? "true" : "false");
        }
        g_string_append_c(o, '}');
        dma_ranges += d_num(c, "dma-ranges");
        dma_bytes += d_num(c, "dma-bytes");
    }
    g_string_append_c(o, ']');
    json_key(o, "devices");
    g_string_append_c(o, '[');
    for (gsize i = 0; i < g_variant_n_children(devices); i++) {
        g_autoptr(GVariant) d = g_variant_get_child_value(devices, i);
        g_string_append(o, i ? ",{" : "{");
        json_key(o, "name");
        json_string(o, d_str(d, "name"));
        json_key(o, "vectors");
        g_string_append_printf(o, "%u", count_vectors(desc, d));
        g_string_append_c(o, '}');
    }
    g_string_append_c(o, ']');
    json_key(o, "dma_ranges");
    g_string_append_printf(o, "%" G_GUINT64_FORMAT, dma_ranges);
    json_key(o, "dma_bytes");
    g_string_append_printf(o, "%" G_GUINT64_FORMAT, dma_bytes);
    json_key(o, "vectors");
    g_string_append_printf(o, "%u", have ? count_vectors(desc, NULL) : 0);
    /* everything vfiocpr_describe() documents: mappings, vectors, fds, ... */
    json_key(o, "description");
    if (have)
        json_variant(o, desc);
    else
        g_string_append(o, "null");
    json_key(o, "new");
    json_string(o, ri->new_path);
    json_key(o, "fallback");
    json_string(o, ri->fallback);
    json_key(o, "seccomp");
    g_string_append(o, ri->seccomp ? "true" : "false");
    g_string_append(o, "}\n");
    return g_string_free(o, FALSE);
}

static char *summary_text(GVariant *desc, const run_info *ri, const char *dump)
{
    GString *o = g_string_new(NULL);

    if (ri->status == STATE_NONE) {
        g_string_append(o, PROG ": no incoming state (" VFIOCPR_STATE_ENV " unset): cold start\n");
    } else if (ri->status == STATE_INVALID) {
        g_string_append_printf(o, PROG ": incoming state %s=%s is INVALID: %s\n",
                               VFIOCPR_STATE_ENV, ri->state_env, ri->error);
    } else {
        g_auto(GStrv) lines = g_strsplit(dump ? dump : "", "\n", -1);
        g_string_append_printf(o, PROG ": incoming state %s=%s is valid\n", VFIOCPR_STATE_ENV,
                               ri->state_env);
        for (gsize i = 0; lines[i]; i++)
            if (*lines[i])
                g_string_append_printf(o, "  %s\n", lines[i]);
        g_string_append_printf(o, "  interrupt vectors: %u\n", count_vectors(desc, NULL));
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
    g_autoptr(GVariant) desc = NULL;
    g_autofree char *dump = NULL;
    run_info ri = { 0 };
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
    ri.state_env = g_getenv(VFIOCPR_STATE_ENV);
    ri.new_path = o.new_argv[0];
    ri.fallback = o.fallback;
    ri.seccomp = o.seccomp;
    ri.status = validate_state(ri.state_env, &ctx, &desc,
                               o.summary == SUMMARY_TEXT ? &dump : NULL, &error);
    if (ri.status == STATE_INVALID)
        ri.error = error->message;

    /* 2. describe */
    if (o.summary != SUMMARY_NONE) {
        g_autofree char *text = o.summary == SUMMARY_JSON ? summary_json(desc, &ri)
                                                          : summary_text(desc, &ri, dump);
        int fd = o.summary == SUMMARY_JSON ? STDOUT_FILENO : STDERR_FILENO;
        r = write_all(fd, text, strlen(text));
        if (r < 0 && fd == STDOUT_FILENO)
            say("--summary=json: writing to stdout: %s (going on)", g_strerror(-r));
    }
    /* the context only validated: dropping it closes nothing, changes no flag */
    g_clear_pointer(&ctx, vfiocpr_unref);
    g_clear_pointer(&desc, g_variant_unref);
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
