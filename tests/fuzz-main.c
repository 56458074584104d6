/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Runs the fuzz target without libFuzzer, as part of `make check`: every corpus file,
 * then a fixed set of truncations and mutations of it, so that the parser's
 * robustness is checked on every build and not only when someone runs a fuzzer.
 * Deterministic (fixed seed), so a failure here reproduces on any machine.
 *
 * Usage: fuzz-state [CORPUS_DIR_OR_FILE...]; default $VFIOCPR_TEST_DATA/fuzz.
 * Options (anything starting with '-') are ignored: the test wrapper passes GTest's.
 */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Present only when a sanitizer runtime is linked in. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

#define N_MUTATIONS 2000
#define MAX_ALL_TRUNCATIONS 4096
#define N_SPACED_TRUNCATIONS 256
#define CRASH_FILE "crash-fuzz-state.bin"

typedef struct {
    char *name;
    GBytes *data;
} corpus_file;

/* What is running now, prepared before each run so that a crash handler can report
 * it without formatting anything. */
static struct {
    char label[512];
    size_t label_len;
    const guint8 *data;
    size_t size;
} current;

static void save_crash_input(void)
{
    int fd = open(CRASH_FILE, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd >= 0) {
        for (size_t done = 0; done < current.size;) {
            ssize_t n = write(fd, current.data + done, current.size - done);
            if (n <= 0)
                break;
            done += (size_t)n;
        }
        close(fd);
    }
    if (write(STDOUT_FILENO, current.label, current.label_len) < 0)
        return;
}

static void on_signal(int sig)
{
    save_crash_input();
    raise(sig); /* SA_RESETHAND: now the default action, with the usual exit status */
}

static void on_sanitizer_death(void)
{
    save_crash_input();
}

static void install_crash_report(void)
{
    /* SIGTRAP: g_error() stops at a breakpoint instead of calling abort(). No
     * sanitizer handles these two by default. */
    static const int always[] = { SIGABRT, SIGTRAP };
    static const int faults[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL };
    struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESETHAND | SA_NODEFER };

    sigemptyset(&sa.sa_mask);
    for (gsize i = 0; i < G_N_ELEMENTS(always); i++)
        sigaction(always[i], &sa, NULL);
    /* A sanitizer reports faults better than a signal handler; overriding its
     * handlers would lose that report, so only ask it to call back. */
    if (__sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(on_sanitizer_death);
        return;
    }
    for (gsize i = 0; i < G_N_ELEMENTS(faults); i++)
        sigaction(faults[i], &sa, NULL);
}

static void run(const char *name, const char *what, const guint8 *data, size_t size)
{
    int n = snprintf(current.label, sizeof(current.label),
                     "Bail out! crashed on %s (%s, %zu bytes); input saved to %s\n", name,
                     what, size, CRASH_FILE);

    current.label_len = n < 0 ? 0 : MIN((size_t)n, sizeof(current.label) - 1);
    current.data = data;
    current.size = size;
    LLVMFuzzerTestOneInput(data, size);
}

/* Runs a copy of exactly size bytes, so that a sanitizer sees any read past the
 * end instead of the rest of the original buffer. */
static void run_copy(const char *name, const char *what, const guint8 *data, size_t size)
{
    guint8 *copy = g_malloc(size ? size : 1);

    if (size)
        memcpy(copy, data, size);
    run(name, what, copy, size);
    g_free(copy);
}

/* Values that sit on the parser's boundaries: zero, one, sign bits, all ones, the
 * header size and the record size. */
static const guint64 interesting[] = {
    0, 1, 7, 8, 16, 31, 32, 33, 40, 47, 48, 49, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000,
    0xffff, 0x7fffffff, 0x80000000, 0xffffffff, G_GUINT64_CONSTANT(0x7fffffffffffffff),
    G_GUINT64_CONSTANT(0x8000000000000000), G_GUINT64_CONSTANT(0xffffffffffffffff),
};

static const guint8 interesting_bytes[] = { 0, 1, 7, 8, 0x20, 0x30, 0x7f, 0x80, 0xff };

static void mutate_byte(GRand *rnd, GByteArray *a)
{
    guint pos;

    if (a->len == 0) {
        guint8 b = (guint8)g_rand_int(rnd);
        g_byte_array_append(a, &b, 1);
        return;
    }
    pos = g_rand_int_range(rnd, 0, (gint32)a->len);
    switch (g_rand_int_range(rnd, 0, 3)) {
    case 0:
        a->data[pos] ^= (guint8)(1u << g_rand_int_range(rnd, 0, 8));
        break;
    case 1:
        a->data[pos] = (guint8)g_rand_int(rnd);
        break;
    default:
        a->data[pos] =
            interesting_bytes[g_rand_int_range(rnd, 0, G_N_ELEMENTS(interesting_bytes))];
        break;
    }
}

static void mutate_bytes(GRand *rnd, GByteArray *a)
{
    guint len = a->len;
    guint pos = len ? (guint)g_rand_int_range(rnd, 0, (gint32)len) : 0;
    guint span = (guint)g_rand_int_range(rnd, 2, 17);
    guint8 buf[16];

    switch (g_rand_int_range(rnd, 0, 5)) {
    case 0: /* overwrite a run */
        for (guint i = pos; i < MIN(len, pos + span); i++)
            a->data[i] = (guint8)g_rand_int(rnd);
        break;
    case 1: { /* a boundary value as a little-endian 2, 4 or 8 byte integer */
        guint width = 2u << g_rand_int_range(rnd, 0, 3);
        guint64 v = interesting[g_rand_int_range(rnd, 0, G_N_ELEMENTS(interesting))];
        v = GUINT64_TO_LE(v);
        if (len >= width)
            memcpy(a->data + MIN(pos, len - width), &v, width);
        break;
    }
    case 2: /* insert */
        for (guint i = 0; i < span; i++)
            buf[i] = (guint8)g_rand_int(rnd);
        g_byte_array_set_size(a, len + span);
        memmove(a->data + pos + span, a->data + pos, len - pos);
        memcpy(a->data + pos, buf, span);
        break;
    case 3: /* delete */
        if (len)
            g_byte_array_remove_range(a, pos, MIN(span, len - pos));
        break;
    default: /* copy a run elsewhere in the input */
        if (len) {
            guint from = (guint)g_rand_int_range(rnd, 0, (gint32)len);
            memmove(a->data + pos, a->data + from, MIN(span, MIN(len - from, len - pos)));
        }
        break;
    }
}

static void run_mutations(const corpus_file *f)
{
    gsize size;
    const guint8 *data = g_bytes_get_data(f->data, &size);
    g_autoptr(GRand) rnd = g_rand_new_with_seed(1);
    g_autoptr(GByteArray) a = g_byte_array_new();
    char what[64];

    /* every cut of a small file; a bounded, evenly spread set of a large one */
    if (size <= MAX_ALL_TRUNCATIONS) {
        for (gsize len = 0; len < size; len++) {
            snprintf(what, sizeof(what), "truncated to %zu", len);
            run_copy(f->name, what, data, len);
        }
    } else {
        for (gsize k = 0; k < N_SPACED_TRUNCATIONS; k++) {
            gsize len = k * size / N_SPACED_TRUNCATIONS;
            snprintf(what, sizeof(what), "truncated to %zu", len);
            run_copy(f->name, what, data, len);
        }
    }
    /* Even: one byte changed. Odd: 2 to 8 stacked changes of any kind. */
    for (guint i = 0; i < N_MUTATIONS; i++) {
        g_byte_array_set_size(a, 0);
        if (size)
            g_byte_array_append(a, data, (guint)size);
        if (i % 2 == 0) {
            mutate_byte(rnd, a);
        } else {
            for (int k = g_rand_int_range(rnd, 2, 9); k > 0; k--)
                if (g_rand_boolean(rnd))
                    mutate_byte(rnd, a);
                else
                    mutate_bytes(rnd, a);
        }
        snprintf(what, sizeof(what), "mutation %u of %d, seed 1", i + 1, N_MUTATIONS);
        run_copy(f->name, what, a->data, a->len);
    }
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const corpus_file *)a)->name, ((const corpus_file *)b)->name);
}

static void clear_file(gpointer p)
{
    corpus_file *f = p;
    g_free(f->name);
    g_bytes_unref(f->data);
}

static bool add_file(GArray *files, const char *path, const char *name, GError **error)
{
    char *contents;
    gsize len;
    corpus_file f;

    if (!g_file_get_contents(path, &contents, &len, error))
        return false;
    f.name = g_strdup(name);
    f.data = g_bytes_new_take(contents, len);
    g_array_append_val(files, f);
    return true;
}

/* A directory contributes its regular files (sorted, hidden ones skipped), a file
 * itself, as libFuzzer takes them. */
static bool add_path(GArray *files, const char *path, GError **error)
{
    g_autoptr(GDir) dir = NULL;
    guint first = files->len;
    const char *entry;

    if (!g_file_test(path, G_FILE_TEST_IS_DIR)) {
        g_autofree char *base = g_path_get_basename(path);
        return add_file(files, path, base, error);
    }
    dir = g_dir_open(path, 0, error);
    if (!dir)
        return false;
    while ((entry = g_dir_read_name(dir))) {
        g_autofree char *full = g_build_filename(path, entry, NULL);
        if (entry[0] == '.' || !g_file_test(full, G_FILE_TEST_IS_REGULAR))
            continue;
        if (!add_file(files, full, entry, error))
            return false;
    }
    /* readdir order differs between filesystems; TAP numbering should not */
    if (files->len > first)
        qsort(&g_array_index(files, corpus_file, first), files->len - first,
              sizeof(corpus_file), cmp_name);
    return true;
}

static int fail(const char *why)
{
    printf("1..1\nnot ok 1 - corpus directory missing or empty\n# %s\n", why);
    return 1;
}

int main(int argc, char **argv)
{
    g_autoptr(GArray) files = g_array_new(FALSE, FALSE, sizeof(corpus_file));
    g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) err = NULL;
    guint k = 0;

    g_array_set_clear_func(files, clear_file);
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-')
            g_ptr_array_add(paths, g_strdup(argv[i]));
    if (paths->len == 0) {
        const char *data_dir = g_getenv("VFIOCPR_TEST_DATA");
        if (!data_dir)
            return fail("no corpus given and VFIOCPR_TEST_DATA is not set");
        g_ptr_array_add(paths, g_build_filename(data_dir, "fuzz", NULL));
    }
    /* A missing directory is an error, never a skip: a typo in the test setup would
     * otherwise pass quietly forever. */
    for (guint i = 0; i < paths->len; i++)
        if (!add_path(files, paths->pdata[i], &err)) {
            g_autofree char *why = g_strdup_printf("%s: %s", (char *)paths->pdata[i],
                                                   err->message);
            return fail(why);
        }
    if (files->len == 0) {
        g_autofree char *why = g_strdup_printf("no files in %s", (char *)paths->pdata[0]);
        return fail(why);
    }

    install_crash_report();
    printf("1..%u\n", 2 * files->len);
    /* flushed per line: a crash report written with write() must come after them */
    fflush(stdout);
    for (guint i = 0; i < files->len; i++) {
        corpus_file *f = &g_array_index(files, corpus_file, i);
        gsize size;
        const guint8 *data = g_bytes_get_data(f->data, &size);

        run_copy(f->name, "as is", data, size);
        printf("ok %u - %s\n", ++k, f->name);
        fflush(stdout);
        run_mutations(f);
        printf("ok %u - %s mutations\n", ++k, f->name);
        fflush(stdout);
    }
    return 0;
}
