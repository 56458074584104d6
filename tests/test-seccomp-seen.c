/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The seccomp declarations are exact: what the kernel seam saw in the recorded unit
 * tests (tests/seam-record.c, one record per scenario tagged with the optional API
 * parts it used) is, for every scenario, within what the declarations allow under
 * that scenario's flags, and over all scenarios it is everything they allow with
 * every flag: an entry declared but never issued (a stale request) or issued but not
 * declared is reported. make check runs this after the recording tests. */
#include "config.h"

#include <string.h>

#include "private.h"
#include "vfio-compat.h"

#define ALL_FLAGS (VFIOCPR_SECCOMP_KVM | VFIOCPR_SECCOMP_EXEC | VFIOCPR_SECCOMP_MIGRATION)

typedef struct {
    char *name; /* PROGRAM SCENARIO */
    guint32 flags;
    GHashTable *seen;
} scenario;

static void scenario_free(gpointer p)
{
    scenario *s = p;
    g_free(s->name);
    g_hash_table_destroy(s->seen);
    g_free(s);
}

/* Every record in dir, scenarios of the same program and name merged. */
static GHashTable *load(const char *dir, guint *n_files)
{
    GHashTable *all = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, scenario_free);
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *e;

    *n_files = 0;
    while (d && (e = g_dir_read_name(d))) {
        g_autofree char *path = NULL, *text = NULL, *prog = NULL;
        g_auto(GStrv) lines = NULL;
        scenario *cur = NULL;

        if (!g_str_has_suffix(e, ".rec"))
            continue;
        path = g_build_filename(dir, e, NULL);
        g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
        prog = g_strndup(e, strcspn(e, "."));
        (*n_files)++;
        lines = g_strsplit(text, "\n", -1);
        for (char **l = lines; *l; l++) {
            if (g_str_has_prefix(*l, "scenario ")) {
                char *fl = strstr(*l, " flags 0x");
                g_autofree char *key = NULL;
                g_assert_nonnull(fl);
                key = g_strdup_printf("%s %.*s", prog, (int)(fl - *l - 9), *l + 9);
                cur = g_hash_table_lookup(all, key);
                if (!cur) {
                    cur = g_new0(scenario, 1);
                    cur->name = g_steal_pointer(&key);
                    cur->seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
                    g_hash_table_insert(all, cur->name, cur);
                }
                cur->flags |= (guint32)g_ascii_strtoull(fl + 9, NULL, 16);
            } else if (g_str_has_prefix(*l, "op ") || g_str_has_prefix(*l, "ioctl ")) {
                g_assert_nonnull(cur);
                g_hash_table_add(cur->seen, g_strdup(*l));
            } else
                g_assert_true(**l == '\0' || strcmp(*l, "end") == 0);
        }
    }
    return all;
}

/* Only what the seam can see: ops and ioctl requests (their syscalls are the
 * declarations of lib/kernel.c, checked by tests/test-seccomp under a filter). */
static bool seam_key(const char *k)
{
    return g_str_has_prefix(k, "op ") || g_str_has_prefix(k, "ioctl ");
}

static char *key_name(const vfiocpr_part *parts, const char *k)
{
    unsigned long req;
    if (!g_str_has_prefix(k, "ioctl "))
        return g_strdup(k);
    req = g_ascii_strtoull(k + 6, NULL, 16);
    for (const vfiocpr_part *p = parts; p->part; p++)
        for (const vfiocpr_decl *d = p->uses; d->name; d++)
            if (d->req == req)
                return g_strdup_printf("ioctl %s", d->name);
    return g_strdup(k);
}

/* The number of problems, each a line in out. */
static guint compare(const vfiocpr_part *parts, GHashTable *scenarios, GString *out)
{
    g_autoptr(GHashTable) all = vfiocpr_seccomp_allowed(parts, ALL_FLAGS);
    g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
    GHashTableIter it, jt;
    gpointer v, k;
    guint problems = 0;

    g_assert_nonnull(all);
    g_hash_table_iter_init(&it, scenarios);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        scenario *s = v;
        g_autoptr(GHashTable) allowed = vfiocpr_seccomp_allowed(parts, s->flags);
        g_hash_table_iter_init(&jt, s->seen);
        while (g_hash_table_iter_next(&jt, &k, NULL)) {
            g_hash_table_add(seen, k);
            if (!g_hash_table_contains(allowed, k)) {
                g_autofree char *n = key_name(parts, k);
                g_string_append_printf(out, "%s (flags 0x%x): %s is not allowed\n", s->name,
                                       s->flags, n);
                problems++;
            }
        }
    }
    g_hash_table_iter_init(&it, seen);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (!g_hash_table_contains(all, k)) {
            g_autofree char *n = key_name(parts, k);
            g_string_append_printf(out, "issued but not declared: %s\n", n);
            problems++;
        }
    g_hash_table_iter_init(&it, all);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (seam_key(k) && !g_hash_table_contains(seen, k)) {
            g_autofree char *n = key_name(parts, k);
            g_string_append_printf(out, "declared but never issued: %s\n", n);
            problems++;
        }
    return problems;
}

static GHashTable *scenarios;

static GHashTable *records(void)
{
    const char *dir = g_getenv("VFIOCPR_SEAM_RECORD_DIR");
    guint files;

    if (scenarios)
        return scenarios;
    if (!dir || !*dir)
        return NULL;
    scenarios = load(dir, &files);
    g_test_message("%u record files, %u scenarios in %s", files, g_hash_table_size(scenarios),
                   dir);
    g_assert_cmpuint(files, >, 0);
    return scenarios;
}

#define NEED_RECORDS(s)                                                                     \
    GHashTable *s = records();                                                              \
    if (!s) {                                                                               \
        g_test_skip("VFIOCPR_SEAM_RECORD_DIR is not set (make check sets it)");             \
        return;                                                                             \
    }

static void test_equal(void)
{
    NEED_RECORDS(s);
    g_autoptr(GString) out = g_string_new(NULL);
    guint n[8] = { 0 };
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, s);
    while (g_hash_table_iter_next(&it, NULL, &v))
        n[((scenario *)v)->flags & 7]++;
    for (guint f = 0; f < 8; f++)
        g_test_message("scenarios tagged 0x%x (KVM 1, EXEC 2, MIGRATION 4): %u", f, n[f]);
    if (compare(vfiocpr_seccomp_parts(), s, out))
        g_error("the seccomp declarations are not what the seam saw:\n%s", out->str);
}

/* A copy of parts with one entry more (extra) or one less (drop, by name and part),
 * or one entry's flags changed. */
typedef struct {
    vfiocpr_part parts[20];
    vfiocpr_decl lists[20][64];
} edited;

static const vfiocpr_part *edit(edited *e, const vfiocpr_decl *extra, const char *part,
                                const char *drop, const char *reflag, guint32 flags)
{
    const vfiocpr_part *p = vfiocpr_seccomp_parts();
    gsize n = 0;

    for (; p[n].part; n++) {
        gsize m = 0;
        g_assert_cmpuint(n, <, G_N_ELEMENTS(e->parts) - 2);
        for (const vfiocpr_decl *d = p[n].uses; d->name; d++) {
            if (drop && strcmp(p[n].part, part) == 0 && strcmp(d->name, drop) == 0)
                continue;
            g_assert_cmpuint(m, <, G_N_ELEMENTS(e->lists[n]) - 1);
            e->lists[n][m] = *d;
            if (reflag && strcmp(d->name, reflag) == 0)
                e->lists[n][m].flags = flags;
            m++;
        }
        e->lists[n][m] = (vfiocpr_decl)VFIOCPR_DECL_END;
        e->parts[n] = (vfiocpr_part){ p[n].part, e->lists[n] };
    }
    if (extra) {
        e->lists[n][0] = *extra;
        e->lists[n][1] = (vfiocpr_decl)VFIOCPR_DECL_END;
        e->parts[n] = (vfiocpr_part){ "extra", e->lists[n] };
        n++;
    }
    e->parts[n].part = NULL;
    return e->parts;
}

static void expect_caught(const vfiocpr_part *parts, const char *line)
{
    NEED_RECORDS(s);
    g_autoptr(GString) out = g_string_new(NULL);

    g_assert_cmpuint(compare(parts, s, out), >, 0);
    g_test_message("caught:\n%s", out->str);
    g_assert_nonnull(strstr(out->str, line));
}

/* Negative control: a request declared but issued nowhere (as VFIO_DEVICE_GET_INFO was in
 * 0.2, before the device identity check used it). */
static void test_extra_caught(void)
{
    static const vfiocpr_decl extra = VFIOCPR_IOCTL(VFIO_DEVICE_IOEVENTFD, 0);
    g_autofree edited *e = g_new0(edited, 1);
    expect_caught(edit(e, &extra, NULL, NULL, NULL, 0),
                  "declared but never issued: ioctl VFIO_DEVICE_IOEVENTFD\n");
}

/* Negative control: a call made but not declared (the getpid of the state writer). */
static void test_missing_caught(void)
{
    g_autofree edited *e = g_new0(edited, 1);
    expect_caught(edit(e, NULL, "lib/cpr.c", "getpid", NULL, 0),
                  "issued but not declared: op getpid\n");
}

/* Negative control: an entry under the wrong flag is seen in scenarios without it. */
static void test_wrong_flag_caught(void)
{
    g_autofree edited *e = g_new0(edited, 1);
    expect_caught(edit(e, NULL, NULL, NULL, "VFIO_DEVICE_SET_IRQS", VFIOCPR_SECCOMP_KVM),
                  "(flags 0x0): ioctl VFIO_DEVICE_SET_IRQS is not allowed\n");
}

/* Each part declares what it itself issues, no more: the VK() calls in its source
 * file (and the ioctl requests they name) are exactly its declarations. */
static guint check_sources(const vfiocpr_part *parts, const char *srcdir, GString *out)
{
    g_autoptr(GRegex) op_re = g_regex_new("\\bVK\\(\\s*([a-z_]+)|vfiocpr_kernel->([a-z_]+)\\(",
                                          0, 0, NULL);
    g_autoptr(GRegex) io_re = g_regex_new("\\bVK\\(\\s*ioctl\\s*,[^,]+,\\s*([A-Z0-9_]+)", 0, 0,
                                          NULL);
    guint problems = 0;

    for (const vfiocpr_part *p = parts; p->part; p++) {
        g_autofree char *file = g_str_has_prefix(p->part, "lib/")
                                    ? g_strdup(p->part)
                                    : g_strdup_printf("lib/%s.c", p->part);
        g_autofree char *path = g_build_filename(srcdir, file, NULL);
        g_autofree char *text = NULL;
        g_autoptr(GHashTable) used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_autoptr(GHashTable) decl = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        g_autoptr(GMatchInfo) m = NULL;
        GHashTableIter it;
        gpointer k;

        if (!g_file_get_contents(path, &text, NULL, NULL)) {
            g_string_append_printf(out, "%s: cannot read %s\n", p->part, path);
            problems++;
            continue;
        }
        if (strcmp(file, "lib/kernel.c") == 0) {
            /* the seam's own helpers call through the table; the real ops are not calls */
            char *helpers = strstr(text, "const vfiocpr_kernel_ops *vfiocpr_kernel =");
            g_assert_nonnull(helpers);
            memmove(text, helpers, strlen(helpers) + 1);
        }
        for (g_regex_match(op_re, text, 0, &m); g_match_info_matches(m);
             g_match_info_next(m, NULL)) {
            g_autofree char *a = g_match_info_fetch(m, 1), *b = g_match_info_fetch(m, 2);
            const char *op = a && *a ? a : b;
            if (strcmp(op, "ioctl") != 0)
                g_hash_table_add(used, g_strdup_printf("op %s", op));
        }
        g_clear_pointer(&m, g_match_info_free);
        for (g_regex_match(io_re, text, 0, &m); g_match_info_matches(m);
             g_match_info_next(m, NULL)) {
            g_autofree char *req = g_match_info_fetch(m, 1);
            g_hash_table_add(used, g_strdup_printf("ioctl %s", req));
        }
        for (const vfiocpr_decl *d = p->uses; d->name; d++)
            g_hash_table_add(decl, g_strdup_printf("%s %s", d->req ? "ioctl" : "op", d->name));
        g_hash_table_iter_init(&it, used);
        while (g_hash_table_iter_next(&it, &k, NULL))
            if (!g_hash_table_contains(decl, k)) {
                g_string_append_printf(out, "%s issues %s, not in its declarations\n", file,
                                       (char *)k);
                problems++;
            }
        g_hash_table_iter_init(&it, decl);
        while (g_hash_table_iter_next(&it, &k, NULL))
            if (!g_hash_table_contains(used, k)) {
                g_string_append_printf(out, "%s declares %s, which it never issues\n", file,
                                       (char *)k);
                problems++;
            }
    }
    return problems;
}

static const char *srcdir(void)
{
    const char *d = g_getenv("top_srcdir");
    return d && *d ? d : NULL;
}

static void test_sources(void)
{
    g_autoptr(GString) out = g_string_new(NULL);

    if (!srcdir()) {
        g_test_skip("top_srcdir is not set (make check sets it)");
        return;
    }
    if (check_sources(vfiocpr_seccomp_parts(), srcdir(), out))
        g_error("declarations do not match the sources:\n%s", out->str);
}

/* Negative control: a declaration moved to a part that does not issue it. */
static void test_sources_moved_caught(void)
{
    static const vfiocpr_decl extra = VFIOCPR_IOCTL(VFIO_DEVICE_SET_IRQS, 0);
    g_autofree edited *e = g_new0(edited, 1);
    g_autoptr(GString) out = g_string_new(NULL);
    const vfiocpr_part *parts;

    if (!srcdir()) {
        g_test_skip("top_srcdir is not set (make check sets it)");
        return;
    }
    /* the "extra" part reads lib/extra.c: point it at lib/kvm.c instead */
    parts = edit(e, &extra, "lib/irq.c", "VFIO_DEVICE_SET_IRQS", NULL, 0);
    for (vfiocpr_part *p = (vfiocpr_part *)parts; p->part; p++)
        if (strcmp(p->part, "extra") == 0)
            p->part = "lib/kvm.c";
    g_assert_cmpuint(check_sources(parts, srcdir(), out), >=, 2);
    g_test_message("caught:\n%s", out->str);
    g_assert_nonnull(strstr(out->str, "lib/irq.c issues ioctl VFIO_DEVICE_SET_IRQS, not in its "
                                      "declarations\n"));
    g_assert_nonnull(strstr(out->str, "lib/kvm.c declares ioctl VFIO_DEVICE_SET_IRQS, which it "
                                      "never issues\n"));
}

/* The allowed set of every flag combination, for the log (and the README). */
static void test_allowed_sets(void)
{
    for (guint32 f = 0; f < 8; f++) {
        g_autofree char *d = vfiocpr_seccomp_describe(f);
        g_auto(GStrv) lines = g_strsplit(d, "\n", -1);
        g_test_message("flags 0x%x: %u entries", f, g_strv_length(lines) - 1);
        g_assert_cmpuint(g_strv_length(lines), >, 1);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/seccomp-seen/allowed-sets", test_allowed_sets);
    g_test_add_func("/seccomp-seen/declared-equals-seen", test_equal);
    g_test_add_func("/seccomp-seen/extra-entry-caught", test_extra_caught);
    g_test_add_func("/seccomp-seen/missing-entry-caught", test_missing_caught);
    g_test_add_func("/seccomp-seen/wrong-flag-caught", test_wrong_flag_caught);
    g_test_add_func("/seccomp-seen/declared-where-issued", test_sources);
    g_test_add_func("/seccomp-seen/moved-declaration-caught", test_sources_moved_caught);
    return g_test_run();
}
