/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Keeps docs/state-format.md true: its machine-readable tables (sections, features,
 * registry keys, current version) must equal lib/state-format.h both ways, and a
 * state the library really writes (every participant present, exec and transfer)
 * must hold exactly the documented sections with the documented types, features
 * and keys, and the golden state of each minor must date each section and feature
 * as the table does. The same comparison run on mutated copies of the document must
 * report each mutation: the check can fail. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>

#include "fake-kernel.h"
#include "golden-v1.h"
#include "private.h"
#include "testutil.h"

#if !defined(STATE_FORMAT_DOC) || !defined(STATE_FORMAT_DATA)
#error "STATE_FORMAT_DOC, STATE_FORMAT_DATA: docs/state-format.md and tests/data"
#endif

/* ------------------------------------------------------------ the document */

typedef struct {
    GPtrArray *sections; /* GStrv rows: section type since owner record feature */
    GPtrArray *features; /* feature since meaning */
    GPtrArray *keys;     /* key id owner */
    guint major, minor;  /* "Current format: **M.m**" */
    bool has_version;
} doc;

static void doc_clear(doc *d)
{
    g_clear_pointer(&d->sections, g_ptr_array_unref);
    g_clear_pointer(&d->features, g_ptr_array_unref);
    g_clear_pointer(&d->keys, g_ptr_array_unref);
}

static char *cell(const char *s)
{
    g_autofree char *t = g_strstrip(g_strdup(s));
    gsize n = strlen(t);
    if (n >= 2 && t[0] == '`' && t[n - 1] == '`')
        return g_strndup(t + 1, n - 2);
    return g_steal_pointer(&t);
}

/* The rows of the markdown table between "<!-- machine-readable: NAME -->" and the
 * next "<!-- end -->", without its header and separator lines. NULL if absent. */
static GPtrArray *doc_table(const char *text, const char *name, guint columns, GString *errs)
{
    g_autofree char *open = g_strdup_printf("<!-- machine-readable: %s -->", name);
    const char *start = strstr(text, open), *end;
    g_auto(GStrv) lines = NULL;
    GPtrArray *rows;
    guint seen = 0;

    if (!start || !(end = strstr(start, "<!-- end -->"))) {
        g_string_append_printf(errs, "document: no machine-readable table '%s'\n", name);
        return NULL;
    }
    start += strlen(open);
    rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
    {
        g_autofree char *block = g_strndup(start, (gsize)(end - start));
        lines = g_strsplit(block, "\n", -1);
    }
    for (guint i = 0; lines[i]; i++) {
        g_auto(GStrv) parts = NULL;
        GStrv row;
        guint n;
        char *l = g_strstrip(lines[i]);
        if (!*l)
            continue;
        if (l[0] != '|' || l[strlen(l) - 1] != '|') {
            g_string_append_printf(errs, "table '%s': not a table line: %s\n", name, l);
            continue;
        }
        if (seen++ < 2) /* header, separator */
            continue;
        l[strlen(l) - 1] = 0;
        parts = g_strsplit(l + 1, "|", -1);
        n = g_strv_length(parts);
        if (n != columns) {
            g_string_append_printf(errs, "table '%s': %u columns, not %u: %s\n", name, n,
                                   columns, l);
            continue;
        }
        row = g_new0(char *, columns + 1);
        for (guint k = 0; k < columns; k++)
            row[k] = cell(parts[k]);
        g_ptr_array_add(rows, row);
    }
    return rows;
}

static void doc_parse(const char *text, doc *d, GString *errs)
{
    g_autoptr(GRegex) re = g_regex_new("^Current format: \\*\\*([0-9]+)\\.([0-9]+)\\*\\*$",
                                       G_REGEX_MULTILINE, 0, NULL);
    g_autoptr(GMatchInfo) m = NULL;

    d->sections = doc_table(text, "sections", 6, errs);
    d->features = doc_table(text, "features", 3, errs);
    d->keys = doc_table(text, "keys", 3, errs);
    d->has_version = g_regex_match(re, text, 0, &m);
    if (d->has_version) {
        g_autofree char *a = g_match_info_fetch(m, 1), *b = g_match_info_fetch(m, 2);
        d->major = (guint)atoi(a);
        d->minor = (guint)atoi(b);
    } else {
        g_string_append(errs, "document: no line 'Current format: **M.m**'\n");
    }
}

static char *since_text(guint minor)
{
    return g_strdup_printf("%d.%u", VFIOCPR_STATE_FORMAT_MAJOR, minor);
}

/* Compares the document with lib/state-format.h both ways; every difference is a
 * line in errs. */
static void compare(const doc *d, GString *errs)
{
    guint newest = 0;

    if (d->sections) {
        for (guint i = 0; i < VFIOCPR_SEC_COUNT; i++) {
            const vfiocpr_section_def *s = &vfiocpr_state_sections[i];
            g_autofree char *since = since_text(s->since);
            g_autofree char *rec = s->record ? g_strdup_printf("%zu", s->record) : g_strdup("-");
            const char *feat = *s->feature ? s->feature : "-";
            GStrv row = NULL;
            guint at = 0;
            for (; at < d->sections->len; at++)
                if (strcmp(((GStrv)d->sections->pdata[at])[0], s->name) == 0) {
                    row = d->sections->pdata[at];
                    break;
                }
            newest = MAX(newest, s->since);
            if (!row) {
                g_string_append_printf(errs, "section '%s': in lib/state-format.h, not in the "
                                       "document\n", s->name);
                continue;
            }
            if (at != i)
                g_string_append_printf(errs, "section '%s': row %u in the document, %u in the "
                                       "header\n", s->name, at, i);
            if (strcmp(row[1], s->type))
                g_string_append_printf(errs, "section '%s': type '%s' documented, '%s' defined\n",
                                       s->name, row[1], s->type);
            if (strcmp(row[2], since))
                g_string_append_printf(errs, "section '%s': since %s documented, %s defined\n",
                                       s->name, row[2], since);
            if (strcmp(row[3], s->owner))
                g_string_append_printf(errs, "section '%s': owner %s documented, %s defined\n",
                                       s->name, row[3], s->owner);
            if (strcmp(row[4], rec))
                g_string_append_printf(errs, "section '%s': record %s documented, %s defined\n",
                                       s->name, row[4], rec);
            if (strcmp(row[5], feat))
                g_string_append_printf(errs, "section '%s': feature %s documented, %s defined\n",
                                       s->name, row[5], feat);
        }
        for (guint k = 0; k < d->sections->len; k++) {
            const char *name = ((GStrv)d->sections->pdata[k])[0];
            if (!vfiocpr_section_find(name))
                g_string_append_printf(errs, "section '%s': in the document, not in "
                                       "lib/state-format.h\n", name);
            for (guint j = 0; j < k; j++)
                if (strcmp(((GStrv)d->sections->pdata[j])[0], name) == 0)
                    g_string_append_printf(errs, "section '%s': documented twice\n", name);
        }
    }
    if (d->features) {
        for (guint i = 0; i < VFIOCPR_FEAT_COUNT; i++) {
            const vfiocpr_feature_def *f = &vfiocpr_state_features[i];
            g_autofree char *since = since_text(f->since);
            GStrv row = NULL;
            for (guint k = 0; k < d->features->len; k++)
                if (strcmp(((GStrv)d->features->pdata[k])[0], f->name) == 0)
                    row = d->features->pdata[k];
            newest = MAX(newest, f->since);
            if (!row)
                g_string_append_printf(errs, "feature '%s': defined, not documented\n", f->name);
            else if (strcmp(row[1], since))
                g_string_append_printf(errs, "feature '%s': since %s documented, %s defined\n",
                                       f->name, row[1], since);
        }
        for (guint k = 0; k < d->features->len; k++) {
            const char *name = ((GStrv)d->features->pdata[k])[0];
            bool found = false;
            for (guint i = 0; i < VFIOCPR_FEAT_COUNT; i++)
                found |= strcmp(vfiocpr_state_features[i].name, name) == 0;
            if (!found)
                g_string_append_printf(errs, "feature '%s': documented, not defined\n", name);
        }
    }
    if (d->keys) {
        for (guint i = 0; i < VFIOCPR_KEY_COUNT; i++) {
            const vfiocpr_key_def *kd = &vfiocpr_state_keys[i];
            GStrv row = NULL;
            for (guint k = 0; k < d->keys->len; k++)
                if (strcmp(((GStrv)d->keys->pdata[k])[0], kd->pattern) == 0)
                    row = d->keys->pdata[k];
            if (!row)
                g_string_append_printf(errs, "key '%s': defined, not documented\n", kd->pattern);
            else if (strcmp(row[1], kd->id) || strcmp(row[2], kd->owner))
                g_string_append_printf(errs, "key '%s': id %s, owner %s documented; %s, %s "
                                       "defined\n", kd->pattern, row[1], row[2], kd->id,
                                       kd->owner);
        }
        for (guint k = 0; k < d->keys->len; k++) {
            const char *pat = ((GStrv)d->keys->pdata[k])[0];
            bool found = false;
            for (guint i = 0; i < VFIOCPR_KEY_COUNT; i++)
                found |= strcmp(vfiocpr_state_keys[i].pattern, pat) == 0;
            if (!found)
                g_string_append_printf(errs, "key '%s': documented, not defined\n", pat);
        }
    }
    if (d->has_version) {
        if (d->major != VFIOCPR_STATE_FORMAT_MAJOR || d->minor != VFIOCPR_STATE_FORMAT_MINOR)
            g_string_append_printf(errs, "current format %u.%u documented, %d.%d defined\n",
                                   d->major, d->minor, VFIOCPR_STATE_FORMAT_MAJOR,
                                   VFIOCPR_STATE_FORMAT_MINOR);
    }
    /* every minor adds something, and nothing is newer than the current one */
    if (newest != VFIOCPR_STATE_FORMAT_MINOR)
        g_string_append_printf(errs, "the newest section or feature is from minor %u, the "
                               "current format is %d.%d\n", newest, VFIOCPR_STATE_FORMAT_MAJOR,
                               VFIOCPR_STATE_FORMAT_MINOR);
}

static char *compare_text(const char *text)
{
    doc d = { 0 };
    GString *errs = g_string_new(NULL);

    doc_parse(text, &d, errs);
    compare(&d, errs);
    doc_clear(&d);
    return g_string_free(errs, FALSE);
}

static char *doc_text(void)
{
    g_autoptr(GError) err = NULL;
    char *text = NULL;

    if (!g_file_get_contents(STATE_FORMAT_DOC, &text, NULL, &err))
        g_error("%s", err->message);
    return text;
}

static void test_doc_matches_header(void)
{
    g_autofree char *text = doc_text();
    g_autofree char *errs = compare_text(text);
    doc d = { 0 };
    g_autoptr(GString) perr = g_string_new(NULL);

    if (*errs)
        g_error("docs/state-format.md and lib/state-format.h differ:\n%s", errs);
    /* the parse saw every row, not an empty table that trivially compares */
    doc_parse(text, &d, perr);
    g_assert_cmpuint(d.sections->len, ==, VFIOCPR_SEC_COUNT);
    g_assert_cmpuint(d.features->len, ==, VFIOCPR_FEAT_COUNT);
    g_assert_cmpuint(d.keys->len, ==, VFIOCPR_KEY_COUNT);
    g_assert_cmpuint(d.minor, ==, VFIOCPR_STATE_FORMAT_MINOR);
    doc_clear(&d);
}

/* Replaces the first occurrence of from (which must exist) in text. */
static char *mutate(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    g_assert_nonnull(at);
    return g_strdup_printf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

/* Negative controls: each mutation of the document is reported, naming what. */
static void test_doc_mutations(void)
{
    static const struct {
        const char *from, *to, *expect;
    } cases[] = {
        /* a type changed */
        { "| `vfio-groups` | `a(su)` |", "| `vfio-groups` | `a(sb)` |", "'vfio-groups': type" },
        /* a since changed */
        { "| `vfio-irqs` | `a(uuuutuu)` | 1.2 |", "| `vfio-irqs` | `a(uuuutuu)` | 1.3 |",
          "'vfio-irqs': since" },
        /* an owner, a record size, a feature */
        { "| `fd-names` | `as` | 1.0 | fdreg |", "| `fd-names` | `as` | 1.0 | cpr |",
          "'fd-names': owner" },
        { "| `fds` | `a(uutiuttt)` | 1.0 | fdreg | 48 |",
          "| `fds` | `a(uutiuttt)` | 1.0 | fdreg | 40 |", "'fds': record" },
        { "| `vfio-dma` | `a(uuttttt)` | 1.1 | vfio | 48 | `vfio-type1` |",
          "| `vfio-dma` | `a(uuttttt)` | 1.1 | vfio | 48 | - |", "'vfio-dma': feature" },
        /* a row dropped, a row added */
        { "| `iommufd-devices` | `a(ssuu)` | 1.3 | iommufd | - | `iommufd` |\n", "",
          "'iommufd-devices': in lib/state-format.h, not in the document" },
        { "| `vfio-intx` |", "| `vfio-msi` | `a(su)` | 1.2 | irq | - | - |\n| `vfio-intx` |",
          "'vfio-msi': in the document, not in" },
        /* two rows swapped (the order is part of the table) */
        { "| `writer` | `s` | 1.0 | cpr | - | - |\n| `writer-pid` | `u` | 1.0 | cpr | - | - |",
          "| `writer-pid` | `u` | 1.0 | cpr | - | - |\n| `writer` | `s` | 1.0 | cpr | - | - |",
          "'writer': row 1 in the document, 0" },
        /* the version */
        { "Current format: **1.", "Current format: **2.", "current format 2." },
        { "Current format: **", "Current: **", "no line 'Current format" },
        /* features and keys */
        { "| `fd-index` | 1.4 |", "| `fd-index` | 1.3 |", "feature 'fd-index': since" },
        { "| `iommufd` | 1.3 | iommufd containers", "| `iommufd2` | 1.3 | iommufd containers",
          "feature 'iommufd': defined, not documented" },
        { "| `irq-unmask:<device>` | 0 | irq |", "| `irq-unmask:<device>` | vector | irq |",
          "key 'irq-unmask:<device>': id vector" },
        { "| `vfio-group` | group number | type1 |", "| `vfio-groups` | group number | type1 |",
          "key 'vfio-groups': documented, not defined" },
        /* the table gone */
        { "<!-- machine-readable: sections -->", "", "no machine-readable table 'sections'" },
        /* a malformed row */
        { "| `vfio-containers` | `as` | 1.1 | type1 | - | `vfio-type1` |",
          "| `vfio-containers` | `as` | 1.1 | type1 | - |", "5 columns, not 6" },
    };
    g_autofree char *text = doc_text();

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *bad = mutate(text, cases[i].from, cases[i].to);
        g_autofree char *errs = compare_text(bad);
        if (!strstr(errs, cases[i].expect))
            g_error("mutation %zu ('%s' -> '%s') not reported as '%s'; report:\n%s", i,
                    cases[i].from, cases[i].to, cases[i].expect, errs);
    }
}

/* ------------------------------------------------------------ the builders */

/* A key pattern as an anchored regex: <index> is decimal, other placeholders any text. */
static GRegex *key_regex(const char *pattern)
{
    g_autoptr(GString) re = g_string_new("^");
    g_autoptr(GRegex) r = NULL;
    const char *p = pattern;

    while (*p) {
        const char *lt = strchr(p, '<'), *gt;
        g_autofree char *lit = g_strndup(p, lt ? (gsize)(lt - p) : strlen(p));
        g_autofree char *esc = g_regex_escape_string(lit, -1);
        g_string_append(re, esc);
        if (!lt)
            break;
        gt = strchr(lt, '>');
        g_assert_nonnull(gt);
        g_string_append(re, g_str_has_prefix(lt, "<index>") ? "[0-9]+" : ".+");
        p = gt + 1;
    }
    g_string_append(re, "$");
    r = g_regex_new(re->str, 0, 0, NULL);
    g_assert_nonnull(r);
    return g_steal_pointer(&r);
}

/* The key a name is (index into vfiocpr_state_keys), -1: the VMM's own. Two
 * matches would make the scheme ambiguous. */
static int key_of(const char *name)
{
    int found = -1;
    for (guint i = 0; i < VFIOCPR_KEY_COUNT; i++) {
        g_autoptr(GRegex) re = key_regex(vfiocpr_state_keys[i].pattern);
        if (g_regex_match(re, name, 0, NULL)) {
            if (found >= 0)
                g_error("registry name '%s' matches keys '%s' and '%s'", name,
                        vfiocpr_state_keys[found].pattern, vfiocpr_state_keys[i].pattern);
            found = (int)i;
        }
    }
    return found;
}

static void test_builders(void)
{
    g_autofree char *dev = vfiocpr_key_device("<device>");
    g_autofree char *un = vfiocpr_key_irq_unmask("<device>");
    g_autofree char *t1 = vfiocpr_key_container(VFIOCPR_KEY_TYPE1_CONTAINER_PREFIX, "<container>");
    g_autofree char *io = vfiocpr_key_container(VFIOCPR_KEY_IOMMUFD_CONTAINER_PREFIX,
                                                "<container>");
    g_autofree char *irq = vfiocpr_key_irq("0000:00:03.0", 2);

    /* what the builders spell is what the table (and so the document) says */
    g_assert_cmpstr(dev, ==, vfiocpr_state_keys[VFIOCPR_KEY_DEVICE].pattern);
    g_assert_cmpstr(un, ==, vfiocpr_state_keys[VFIOCPR_KEY_IRQ_UNMASK].pattern);
    g_assert_cmpstr(t1, ==, vfiocpr_state_keys[VFIOCPR_KEY_TYPE1_CONTAINER].pattern);
    g_assert_cmpstr(io, ==, vfiocpr_state_keys[VFIOCPR_KEY_IOMMUFD_CONTAINER].pattern);
    g_assert_cmpstr(VFIOCPR_KEY_GROUP, ==, vfiocpr_state_keys[VFIOCPR_KEY_VFIO_GROUP].pattern);
    g_assert_cmpstr(irq, ==, "irq:0000:00:03.0:2");
    g_assert_cmpint(key_of(irq), ==, VFIOCPR_KEY_IRQ);
    /* a device name with colons does not make an irq key look like anything else */
    g_assert_cmpint(key_of("irq-unmask:0000:00:03.0"), ==, VFIOCPR_KEY_IRQ_UNMASK);
    g_assert_cmpint(key_of("vfio-device:0000:00:03.0"), ==, VFIOCPR_KEY_DEVICE);
    g_assert_cmpint(key_of("guest-ram"), ==, -1);
    /* the regex is strict: a non-decimal index is no irq key */
    g_assert_cmpint(key_of("irq:0000:00:03.0:x"), ==, -1);
}

/* The size GVariant gives one record of the element type (all numbers). */
static gsize record_size(const char *array_type)
{
    const GVariantType *elem = g_variant_type_element(G_VARIANT_TYPE(array_type));
    g_autoptr(GString) text = g_string_new("(");
    g_autoptr(GVariant) v = NULL;
    g_autoptr(GError) err = NULL;

    for (gsize i = 0; i < g_variant_type_n_items(elem); i++)
        g_string_append(text, i ? ", 0" : "0");
    g_string_append(text, ")");
    v = g_variant_parse(elem, text->str, NULL, NULL, &err);
    g_assert_no_error(err);
    g_variant_ref_sink(v);
    return g_variant_get_size(v);
}

static void test_record_sizes(void)
{
    guint n = 0;

    for (guint i = 0; i < VFIOCPR_SEC_COUNT; i++) {
        const vfiocpr_section_def *s = &vfiocpr_state_sections[i];
        g_assert_true(g_variant_type_string_is_valid(s->type));
        if (!s->record)
            continue;
        n++;
        g_assert_cmpuint(record_size(s->type), ==, s->record);
    }
    g_assert_cmpuint(n, ==, 4);
}

/* ------------------------------------------------------------ the goldens */

/* The released states (tests/data) date every section and feature: each one first
 * appears in the golden of the minor the table says, and no golden holds anything
 * newer than itself or of another type. */
static void test_goldens_date_the_table(void)
{
    guint first_sec[VFIOCPR_SEC_COUNT], first_feat[VFIOCPR_FEAT_COUNT];

    for (guint i = 0; i < VFIOCPR_SEC_COUNT; i++)
        first_sec[i] = G_MAXUINT;
    for (guint i = 0; i < VFIOCPR_FEAT_COUNT; i++)
        first_feat[i] = G_MAXUINT;
    /* one golden per minor, the current one included */
    for (guint g = 0; g <= VFIOCPR_STATE_FORMAT_MINOR; g++) {
        g_autofree char *file = g ? g_strdup_printf("state-v%d.%u.bin",
                                                    VFIOCPR_STATE_FORMAT_MAJOR, g)
                                  : g_strdup_printf("state-v%d.bin", VFIOCPR_STATE_FORMAT_MAJOR);
        g_autofree char *path = g_build_filename(STATE_FORMAT_DATA, file, NULL);
        g_autofree char *data = NULL;
        g_autoptr(GBytes) blob = NULL;
        g_autoptr(GVariant) payload = NULL, req = NULL;
        g_autoptr(GError) err = NULL;
        g_autofree const char **reqv = NULL;
        guint16 major = 0, minor = 0;
        gsize len;

        if (!g_file_get_contents(path, &data, &len, &err))
            g_error("%s", err->message);
        blob = g_bytes_new_take(g_steal_pointer(&data), len);
        g_assert_cmpint(vfiocpr_state_decode(blob, &payload, &major, &minor, &err), ==, 0);
        g_assert_no_error(err);
        g_assert_cmpuint(minor, ==, g);
        for (gsize i = 0; i < g_variant_n_children(payload); i++) {
            const char *key;
            g_autoptr(GVariant) v = NULL;
            const vfiocpr_section_def *s;
            g_variant_get_child(payload, i, "{&sv}", &key, &v);
            s = vfiocpr_section_find(key);
            if (!s)
                g_error("%s has section '%s', not in the table", file, key);
            g_assert_cmpstr(g_variant_get_type_string(v), ==, s->type);
            first_sec[s - vfiocpr_state_sections] = MIN(first_sec[s - vfiocpr_state_sections], g);
        }
        req = vfiocpr_section_lookup(payload, VFIOCPR_SEC_REQUIRED_FEATURES);
        g_assert_nonnull(req);
        reqv = g_variant_get_strv(req, NULL);
        for (guint i = 0; reqv[i]; i++) {
            guint k = 0;
            while (k < VFIOCPR_FEAT_COUNT && strcmp(vfiocpr_state_features[k].name, reqv[i]))
                k++;
            g_assert_cmpuint(k, <, VFIOCPR_FEAT_COUNT);
            first_feat[k] = MIN(first_feat[k], g);
        }
    }
    for (guint i = 0; i < VFIOCPR_SEC_COUNT; i++)
        if (first_sec[i] != vfiocpr_state_sections[i].since)
            g_error("section '%s': since 1.%u in the table, first in the golden of 1.%u",
                    vfiocpr_state_sections[i].name, vfiocpr_state_sections[i].since,
                    first_sec[i]);
    for (guint i = 0; i < VFIOCPR_FEAT_COUNT; i++)
        if (first_feat[i] != vfiocpr_state_features[i].since)
            g_error("feature '%s': since 1.%u in the table, first in the golden of 1.%u",
                    vfiocpr_state_features[i].name, vfiocpr_state_features[i].since,
                    first_feat[i]);
}

/* ------------------------------------------------------------ a real state */

#define BDF3 "0000:00:03.0"
#define BDF4 "0000:00:04.0"

/* Every participant: the fd registry (a VMM fd of its own), type1 and iommufd
 * containers with devices and DMA, MSI-X vectors with messages, INTx GSI and unmask
 * eventfd, and KVM irqfds (KVM adds no section, but must not make one appear). */
static vfiocpr *everything(void)
{
    g_autoptr(GError) err = NULL;
    vfiocpr *ctx;
    vfiocpr_device *d4;
    int kvm, vm;

    fake_kvm_enable();
    ctx = golden_v13_cold_start();
    d4 = g_hash_table_lookup(vfiocpr_vfio_devices(vfiocpr_ctx_vfio(ctx)), BDF4);
    g_assert_nonnull(d4);
    g_assert_cmpint(vfiocpr_irq_intx_unmask(d4, -1, &err), >=, 0);
    g_assert_no_error(err);
    kvm = seam_unrecorded()->open("/dev/kvm", O_RDWR);
    vm = seam_unrecorded()->ioctl(kvm, KVM_CREATE_VM, NULL);
    g_assert_cmpint(vm, >=, 0);
    g_assert_cmpint(vfiocpr_kvm_attach(ctx, vm, 32, NULL, NULL, &err), ==, 0);
    g_assert_no_error(err);
    return ctx;
}

/* an fds record as documented (lib/fdreg.c has its own, private) */
typedef struct {
    guint32 name, kind;
    guint64 id;
    gint32 fd;
    guint32 mode;
    guint64 dev, ino, rdev;
} fd_rec;
G_STATIC_ASSERT(sizeof(fd_rec) == VFIOCPR_RECORD_FD_SIZE);

static void check_payload(GBytes *blob, bool transfer)
{
    g_autofree char *text = doc_text();
    g_autoptr(GString) perr = g_string_new(NULL);
    g_autoptr(GVariant) payload = NULL, req = NULL, names = NULL, fds = NULL;
    g_autoptr(GError) err = NULL;
    g_autofree const char **reqv = NULL, **namev = NULL;
    bool present[VFIOCPR_SEC_COUNT] = { false }, key_seen[VFIOCPR_KEY_COUNT] = { false };
    guint16 major = 0, minor = 0;
    doc d = { 0 };
    const guint8 *hdr = g_bytes_get_data(blob, NULL);
    const fd_rec *w;
    gsize n_fds, n_names;

    doc_parse(text, &d, perr);
    g_assert_true(d.has_version);
    g_assert_cmpint(vfiocpr_state_decode(blob, &payload, &major, &minor, &err), ==, 0);
    g_assert_no_error(err);
    /* the version written is the documented one, in the header as documented */
    g_assert_cmpuint(major, ==, d.major);
    g_assert_cmpuint(minor, ==, d.minor);
    g_assert_cmpmem(hdr, 8, "VFIOCPR\0", 8);
    g_assert_cmpuint(GUINT16_FROM_LE(*(const guint16 *)(hdr + 8)), ==, d.major);
    g_assert_cmpuint(GUINT16_FROM_LE(*(const guint16 *)(hdr + 10)), ==, d.minor);
    g_assert_cmpuint(GUINT32_FROM_LE(*(const guint32 *)(hdr + 12)), ==, 32);

    /* every section written is in the table, with the table's type */
    for (gsize i = 0; i < g_variant_n_children(payload); i++) {
        const char *key;
        g_autoptr(GVariant) v = NULL;
        const vfiocpr_section_def *s;
        g_variant_get_child(payload, i, "{&sv}", &key, &v);
        s = vfiocpr_section_find(key);
        if (!s)
            g_error("the payload has section '%s', which is not in the table", key);
        g_assert_cmpstr(g_variant_get_type_string(v), ==, s->type);
        if (s->record)
            g_assert_cmpuint(g_variant_get_size(v) % s->record, ==, 0);
        g_assert_cmpuint(s->since, <=, minor);
        present[s - vfiocpr_state_sections] = true;
    }
    /* every participant present: every documented section is written */
    for (guint i = 0; i < VFIOCPR_SEC_COUNT; i++)
        if (!present[i])
            g_error("section '%s' is in the table but was not written",
                    vfiocpr_state_sections[i].name);

    /* features: each section's feature is required, each required one is documented,
     * and fd-index marks exactly the transfer encoding */
    req = vfiocpr_section_lookup(payload, VFIOCPR_SEC_REQUIRED_FEATURES);
    g_assert_nonnull(req);
    reqv = g_variant_get_strv(req, NULL);
    for (guint i = 0; i < VFIOCPR_SEC_COUNT; i++)
        if (*vfiocpr_state_sections[i].feature &&
            !g_strv_contains(reqv, vfiocpr_state_sections[i].feature))
            g_error("section '%s' written without its feature '%s'",
                    vfiocpr_state_sections[i].name, vfiocpr_state_sections[i].feature);
    for (guint i = 0; reqv[i]; i++) {
        bool documented = false;
        for (guint k = 0; k < d.features->len; k++)
            documented |= strcmp(((GStrv)d.features->pdata[k])[0], reqv[i]) == 0;
        if (!documented)
            g_error("required feature '%s' is not documented", reqv[i]);
    }
    g_assert_cmpint(g_strv_contains(reqv, VFIOCPR_FEATURE_FD_INDEX), ==, transfer);

    /* registry keys: each library name is one documented key, ids "0" are 0, and
     * every key of the scheme occurs; the only other name is the VMM's guest-ram */
    names = vfiocpr_section_lookup(payload, VFIOCPR_SEC_FD_NAMES);
    fds = vfiocpr_section_lookup(payload, VFIOCPR_SEC_FDS);
    namev = g_variant_get_strv(names, &n_names);
    w = g_variant_get_fixed_array(fds, &n_fds, sizeof(*w));
    for (gsize i = 0; i < n_fds; i++) {
        int k;
        g_assert_cmpuint(w[i].name, <, n_names);
        k = key_of(namev[w[i].name]);
        if (k < 0) {
            g_assert_cmpstr(namev[w[i].name], ==, "guest-ram");
            continue;
        }
        key_seen[k] = true;
        if (strcmp(vfiocpr_state_keys[k].id, "0") == 0)
            g_assert_cmpuint(w[i].id, ==, 0);
        /* transfer: indexes 0..n-1 */
        if (transfer)
            g_assert_cmpint(w[i].fd, <, (gint32)n_fds);
    }
    for (guint k = 0; k < VFIOCPR_KEY_COUNT; k++)
        if (!key_seen[k])
            g_error("key '%s' does not occur in the state", vfiocpr_state_keys[k].pattern);
    doc_clear(&d);
}

static void test_exec_state(void)
{
    g_autoptr(GBytes) blob = NULL;
    vfiocpr *ctx;

    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
    ctx = everything();
    blob = fake_kernel_capture_state(ctx);
    check_payload(blob, false);
    vfiocpr_unref(ctx);
}

static void test_transfer_state(void)
{
    g_autoptr(GBytes) blob = NULL;
    vfiocpr *ctx;

    fake_kernel_reset();
    g_unsetenv(VFIOCPR_STATE_ENV);
    golden_real_fds();
    ctx = everything();
    blob = fake_kernel_capture_transfer(ctx);
    check_payload(blob, true);
    vfiocpr_unref(ctx);
    golden_close_real_fds();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/state-format/doc-matches-header", test_doc_matches_header);
    g_test_add_func("/state-format/doc-mutations-reported", test_doc_mutations);
    g_test_add_func("/state-format/key-builders", test_builders);
    g_test_add_func("/state-format/record-sizes", test_record_sizes);
    g_test_add_func("/state-format/goldens-date-the-table", test_goldens_date_the_table);
    g_test_add_func("/state-format/exec-state", test_exec_state);
    g_test_add_func("/state-format/transfer-state", test_transfer_state);
    return g_test_run();
}
