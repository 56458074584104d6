/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What the fd registry and the state cost on each side of an exec, for a small, a
 * typical and a very large VMM (10, 1000, 10000 eventfds, as with one irqfd per MSI-X
 * vector). Each operation runs twice: on the real kernel, which is what a VMM pays,
 * and on the fake kernel with every fd pretended, where each kernel call is a hash
 * lookup, which leaves the library's own cost. Kernel calls are counted on the fake
 * run; the library makes the same calls on both.
 *
 * The four operations:
 *   save         vfiocpr_fd_save() of every fd into a fresh context (VMM start-up)
 *   find         vfiocpr_fd_find() of every fd in that context (cold mode)
 *   state write  payload + encode + sealed memfd, as vfiocpr_exec() writes it
 *   parse        what the new image pays before it runs: read the memfd, decode,
 *                load and validate the registry, then find (claim) every fd
 * Frees and closes are left out of the timings: neither side of the exec pays them
 * on its critical path.
 *
 * The fake kernel is not free either (a hash lookup and a log entry per call), so its
 * own cost per call is measured too and subtracted for the library-only estimate. The
 * state memfd is real in both runs: the fake passes memfd calls through.
 *
 * Not a test: run it with `make bench` and read the table.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* bench/ has no include path of its own into tests/ */
#include "../tests/fake-kernel.h"

#define TARGET_FDS 10000
#define TARGET_MS 2.0
#define MAX_REPS 7

enum { OP_SAVE, OP_FIND, OP_WRITE, OP_PARSE, N_OPS };
static const char *const op_names[N_OPS] = { "save", "find", "state write", "parse" };

typedef struct {
    double ms[N_OPS];          /* median over the repetitions */
    unsigned calls[N_OPS];     /* kernel calls of one repetition (fake run only) */
    char breakdown[N_OPS][160];
    gsize state_bytes;
    double fake_call_ns;       /* the fake kernel's own cost per call (fake run only) */
} result;

/* Kernel call counters of the fake, per op, at one instant. */
typedef struct {
    unsigned n[FK_N_OPS + 1];
} snapshot;

static guint64 now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (guint64)ts.tv_sec * G_GUINT64_CONSTANT(1000000000) + (guint64)ts.tv_nsec;
}

static void snap(snapshot *s, bool fake)
{
    for (int op = 0; op <= FK_N_OPS; op++)
        s->n[op] = fake ? fake_kernel_calls((fk_op)op) : 0;
}

static unsigned calls_since(const snapshot *before, bool fake, char *breakdown, size_t len)
{
    snapshot after;
    size_t used = 0;

    snap(&after, fake);
    breakdown[0] = '\0';
    for (int op = 0; op < FK_N_OPS; op++) {
        unsigned d = after.n[op] - before->n[op];
        if (d && used < len) {
            int w = snprintf(breakdown + used, len - used, "%s%s %u", used ? ", " : "",
                             fake_kernel_op_name((fk_op)op), d);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    return after.n[FK_ANY] - before->n[FK_ANY];
}

static void check(int r, GError *err, const char *what)
{
    if (r < 0)
        g_error("bench: %s failed: %s", what, err ? err->message : g_strerror(-r));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, guint n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The payload exactly as cpr.c's build_payload() makes it (it is static there). */
static GVariant *build_payload(vfiocpr_fdreg *reg)
{
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);

    g_variant_dict_insert(&d, "writer", "s", PACKAGE_STRING);
    g_variant_dict_insert(&d, "writer-pid", "u", (guint32)getpid());
    g_variant_dict_insert(&d, "created-usec", "x", g_get_real_time());
    g_variant_dict_insert_value(&d, "required-features", g_variant_new_strv(NULL, 0));
    vfiocpr_fdreg_serialize(reg, &d);
    return g_variant_dict_end(&d);
}

static void measure(const int *fds, guint n, bool fake, guint reps, result *res)
{
    double samples[N_OPS][MAX_REPS];
    vfiocpr_fdreg *filled = vfiocpr_fdreg_new();
    g_autoptr(GError) err = NULL;

    g_assert(reps <= MAX_REPS);
    if (fake) {
        fake_kernel_reset();
        for (guint i = 0; i < n; i++)
            fake_kernel_pretend(fds[i], "anon_inode:[eventfd]", 0600, 10, 1039, 0);
    } else {
        fake_kernel_uninstall();
    }
    /* what the exec serializes: the VMM's registry, filled long before */
    for (guint i = 0; i < n; i++)
        check(vfiocpr_fdreg_save(filled, "irq", i, fds[i], VFIOCPR_FD_EVENTFD, &err), err,
              "filling the registry");

    for (guint rep = 0; rep < reps; rep++) {
        vfiocpr *ctx = NULL;
        vfiocpr_fdreg *reg;
        g_autoptr(GBytes) blob = NULL;
        g_autoptr(GBytes) read_blob = NULL;
        g_autoptr(GVariant) payload = NULL;
        snapshot s;
        guint64 t0;
        int state_fd = -1;

        /* (a) save */
        check(vfiocpr_new(VFIOCPR_NEW_DEFAULT, &ctx, &err), err, "vfiocpr_new");
        snap(&s, fake);
        t0 = now_ns();
        for (guint i = 0; i < n; i++)
            check(vfiocpr_fd_save(ctx, "irq", i, fds[i], VFIOCPR_FD_EVENTFD, &err), err,
                  "vfiocpr_fd_save");
        samples[OP_SAVE][rep] = (double)(now_ns() - t0) / 1e6;
        res->calls[OP_SAVE] = calls_since(&s, fake, res->breakdown[OP_SAVE],
                                          sizeof(res->breakdown[OP_SAVE]));

        /* (b) find */
        snap(&s, fake);
        t0 = now_ns();
        for (guint i = 0; i < n; i++)
            if (vfiocpr_fd_find(ctx, "irq", i, VFIOCPR_FD_EVENTFD, &err) != fds[i])
                check(-EIO, err, "vfiocpr_fd_find");
        samples[OP_FIND][rep] = (double)(now_ns() - t0) / 1e6;
        res->calls[OP_FIND] = calls_since(&s, fake, res->breakdown[OP_FIND],
                                          sizeof(res->breakdown[OP_FIND]));
        vfiocpr_unref(ctx);

        /* (c) state write */
        snap(&s, fake);
        t0 = now_ns();
        blob = vfiocpr_state_encode(build_payload(filled));
        check(vfiocpr_state_write_memfd(blob, &state_fd, &err), err, "writing the state");
        samples[OP_WRITE][rep] = (double)(now_ns() - t0) / 1e6;
        res->calls[OP_WRITE] = calls_since(&s, fake, res->breakdown[OP_WRITE],
                                           sizeof(res->breakdown[OP_WRITE]));
        res->state_bytes = g_bytes_get_size(blob);

        /* (d) parse: load_state() of cpr.c, then the VMM finds every fd */
        snap(&s, fake);
        t0 = now_ns();
        reg = vfiocpr_fdreg_new();
        check(vfiocpr_state_read_fd(state_fd, &read_blob, &err), err, "reading the state");
        check(vfiocpr_state_decode(read_blob, &payload, NULL, NULL, &err), err,
              "decoding the state");
        check(vfiocpr_fdreg_deserialize(reg, payload, &err), err, "loading the registry");
        check(vfiocpr_fdreg_validate(reg, state_fd, &err), err, "validating the registry");
        for (guint i = 0; i < n; i++)
            if (vfiocpr_fdreg_find(reg, "irq", i, VFIOCPR_FD_EVENTFD, &err) != fds[i])
                check(-EIO, err, "claiming an inherited fd");
        samples[OP_PARSE][rep] = (double)(now_ns() - t0) / 1e6;
        res->calls[OP_PARSE] = calls_since(&s, fake, res->breakdown[OP_PARSE],
                                           sizeof(res->breakdown[OP_PARSE]));
        vfiocpr_fdreg_free(reg);
        close(state_fd);
    }
    for (int op = 0; op < N_OPS; op++)
        res->ms[op] = median(samples[op], reps);
    if (fake) {
        /* the calls parse makes most, straight into the fake with nothing around them */
        for (guint rep = 0; rep < reps; rep++) {
            vfiocpr_fd_stat st;
            char link[256];
            guint64 t0 = now_ns();
            for (guint i = 0; i < n; i++) {
                VK(fstat, fds[i], &st, NULL);
                VK(fd_path, fds[i], link, sizeof(link));
            }
            samples[0][rep] = (double)(now_ns() - t0) / (2.0 * n);
        }
        res->fake_call_ns = median(samples[0], reps);
    }
    vfiocpr_fdreg_free(filled);
    fake_kernel_uninstall();
}

/* The fake run minus what its kernel calls cost the fake itself. */
static double library_ms(const result *fake, int op)
{
    return MAX(0.0, fake->ms[op] - fake->calls[op] * fake->fake_call_ns / 1e6);
}

static void print_result(guint n, guint reps, const result *real, const result *fake)
{
    double sum_real = 0, sum_fake = 0, sum_lib = 0;

    printf("\nN = %u eventfds, median of %u runs, state %zu bytes\n", n, reps, real->state_bytes);
    printf("  %-12s %12s %10s   %12s %10s   %12s %8s\n", "operation", "real ms", "ns/fd",
           "fake ms", "ns/fd", "kernel calls", "per fd");
    for (int op = 0; op < N_OPS; op++) {
        printf("  %-12s %12.3f %10.1f   %12.3f %10.1f   %12u %8.2f\n", op_names[op],
               real->ms[op], real->ms[op] * 1e6 / n, fake->ms[op], fake->ms[op] * 1e6 / n,
               fake->calls[op], (double)fake->calls[op] / n);
        sum_real += real->ms[op];
        sum_fake += fake->ms[op];
    }
    printf("  %-12s %12.3f %10.1f   %12.3f %10.1f\n", "sum", sum_real, sum_real * 1e6 / n,
           sum_fake, sum_fake * 1e6 / n);
    printf("  kernel calls of one run:\n");
    for (int op = 0; op < N_OPS; op++)
        printf("    %-12s %s\n", op_names[op], fake->calls[op] ? fake->breakdown[op] : "none");
    printf("  library alone (fake run minus %.1f ns per fake kernel call), ms:\n   ",
           fake->fake_call_ns);
    for (int op = 0; op < N_OPS; op++) {
        printf(" %s %.3f,", op_names[op], library_ms(fake, op));
        sum_lib += library_ms(fake, op);
    }
    printf(" sum %.3f (%.1f ns/fd)\n", sum_lib, sum_lib * 1e6 / n);
}

int main(void)
{
    static const guint sizes[] = { 10, 1000, TARGET_FDS };
    double target_real = -1, target_fake = -1, target_lib = -1;
    struct rlimit rl;

    /* the context must start cold, whatever the shell passed down */
    g_unsetenv(VFIOCPR_STATE_ENV);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            fprintf(stderr, "bench: raising RLIMIT_NOFILE: %s\n", g_strerror(errno));
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("libvfiocpr %s: fd registry + state cost\n", PACKAGE_VERSION);
    printf("RLIMIT_NOFILE soft %llu, hard %llu; times from CLOCK_MONOTONIC\n",
           (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
    printf("real: the host kernel; fake: every fd pretended by the fake kernel (pure library "
           "cost); kernel calls counted on the fake run\n");

    for (gsize k = 0; k < G_N_ELEMENTS(sizes); k++) {
        guint n = sizes[k];
        guint reps = n <= 1000 ? 7 : 3;
        g_autofree int *fds = g_new(int, n);
        result real = { 0 }, fake = { 0 };

        /* room for the eventfds, the state memfd and what the process already has */
        if ((rlim_t)n + 64 > rl.rlim_cur) {
            printf("\nN = %u: skipped, RLIMIT_NOFILE %llu is too low\n", n,
                   (unsigned long long)rl.rlim_cur);
            continue;
        }
        for (guint i = 0; i < n; i++) {
            fds[i] = eventfd(0, EFD_CLOEXEC);
            if (fds[i] < 0)
                g_error("bench: eventfd %u of %u: %s", i, n, g_strerror(errno));
        }
        measure(fds, n, false, reps, &real);
        measure(fds, n, true, reps, &fake);
        print_result(n, reps, &real, &fake);
        if (n == TARGET_FDS) {
            target_real = target_fake = target_lib = 0;
            for (int op = 0; op < N_OPS; op++) {
                target_real += real.ms[op];
                target_fake += fake.ms[op];
                target_lib += library_ms(&fake, op);
            }
        }
        for (guint i = 0; i < n; i++)
            close(fds[i]);
    }

    printf("\ntarget: %d fds, all four operations, under %.0f ms total\n", TARGET_FDS, TARGET_MS);
    if (target_real < 0) {
        printf("  not measured (RLIMIT_NOFILE too low)\n");
        return 0;
    }
    printf("  real kernel: %8.3f ms  %s\n", target_real,
           target_real < TARGET_MS ? "MET" : "NOT MET");
    printf("  fake kernel: %8.3f ms  %s (pure library cost)\n", target_fake,
           target_fake < TARGET_MS ? "MET" : "NOT MET");
    printf("  library alone, the fake's own cost removed: %8.3f ms  %s\n", target_lib,
           target_lib < TARGET_MS ? "MET" : "NOT MET");
    return 0;
}
