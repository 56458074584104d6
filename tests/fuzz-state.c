/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target for the state parser. The new image parses bytes it did not write (an
 * older or newer library, a corrupted memfd, a hostile parent), so everything from
 * the header to the loaded registry must turn garbage into an error, never into a
 * crash or a leak.
 *
 * Only the structural path runs: vfiocpr_fdreg_validate() and find() would fstat()
 * whatever fd numbers the input names, so the outcome would depend on what this
 * process happens to have open.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static GLogWriterOutput quiet_writer(GLogLevelFlags level, const GLogField *fields,
                                     gsize n_fields, gpointer user_data)
{
    /* Every rejected input logs a g_debug: off even under G_MESSAGES_DEBUG, or the
     * formatting and the output would cost more than the parse. */
    if (level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO))
        return G_LOG_WRITER_HANDLED;
    g_log_writer_default(level, fields, n_fields, user_data);
    /* A warning or critical on this path is a failed precondition inside GLib or
     * the library, i.e. a bug the fuzzer must report, not an expected error. */
    if (level & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL))
        abort();
    return G_LOG_WRITER_HANDLED;
}

static void put32(guint8 *p, guint32 v) { v = GUINT32_TO_LE(v); memcpy(p, &v, 4); }
static void put64(guint8 *p, guint64 v) { v = GUINT64_TO_LE(v); memcpy(p, &v, 8); }
static guint32 get32(const guint8 *p) { guint32 v; memcpy(&v, p, 4); return GUINT32_FROM_LE(v); }

/* Two checksums guard the payload, so nearly every mutation would die at the header
 * and the GVariant parser and registry loader would go untested. A second copy of
 * the input with both checksums (and the payload length) made consistent lets the
 * mutations through. NULL when that copy would be identical or has no header. */
static GBytes *with_checksums(const uint8_t *data, size_t size)
{
    guint8 *buf;
    guint32 hsize;

    if (size < VFIOCPR_STATE_HEADER_SIZE)
        return NULL;
    buf = g_malloc(size);
    memcpy(buf, data, size);
    hsize = get32(buf + 12);
    if (hsize >= VFIOCPR_STATE_HEADER_SIZE && hsize % 8 == 0 && hsize <= size) {
        put64(buf + 16, size - hsize);
        put32(buf + 24, vfiocpr_crc32c(0, buf + hsize, size - hsize));
    }
    put32(buf + 28, vfiocpr_crc32c(0, buf, 28));
    if (memcmp(buf, data, size) == 0) {
        g_free(buf);
        return NULL;
    }
    return g_bytes_new_take(buf, size);
}

/* Whatever the loader accepted must survive a write/read cycle unchanged: the next
 * exec writes exactly what was loaded. */
static void round_trip(vfiocpr_fdreg *reg, GVariant *before)
{
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
    g_autoptr(GBytes) blob = NULL;
    g_autoptr(GVariant) payload = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) after = NULL;
    vfiocpr_fdreg *copy = vfiocpr_fdreg_new();

    vfiocpr_fdreg_serialize(reg, &d);
    blob = vfiocpr_state_encode(g_variant_dict_end(&d));
    if (vfiocpr_state_decode(blob, &payload, NULL, NULL, &err) < 0 ||
        vfiocpr_fdreg_deserialize(copy, payload, &err) < 0)
        g_error("fuzz: a loaded registry does not load again once written: %s", err->message);
    after = g_variant_ref_sink(vfiocpr_fdreg_describe(copy));
    if (!g_variant_equal(before, after)) {
        g_autofree char *b = g_variant_print(before, FALSE), *a = g_variant_print(after, FALSE);
        g_error("fuzz: registry changed across a write/read cycle:\n%s\n---\n%s", b, a);
    }
    vfiocpr_fdreg_free(copy);
}

static void parse(GBytes *blob)
{
    g_autoptr(GVariant) payload = NULL;
    g_autoptr(GError) err = NULL;
    g_autoptr(GVariant) desc = NULL;
    g_autofree char *text = NULL;
    g_autoptr(GPtrArray) unclaimed = NULL;
    guint16 major, minor;
    vfiocpr_fdreg *reg;
    int r;

    /* A GError, not NULL, so that the messages built from hostile names and
     * numbers are formatted too. */
    if (vfiocpr_state_decode(blob, &payload, &major, &minor, &err) < 0)
        return;
    reg = vfiocpr_fdreg_new();
    r = vfiocpr_fdreg_deserialize(reg, payload, &err);
    /* Described even when loading stopped halfway: a partial registry must still be
     * self-consistent. */
    desc = g_variant_ref_sink(vfiocpr_fdreg_describe(reg));
    {
        /* and rendered, as vfiocpr_state_describe() would: hostile names included */
        g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
        g_autoptr(GVariant) all = NULL;
        g_variant_dict_insert_value(&d, "fds", desc);
        all = g_variant_ref_sink(g_variant_dict_end(&d));
        text = vfiocpr_describe_render(all);
        if (!g_str_has_prefix(text, "mode: ?\nfds: "))
            g_error("fuzz: a registry renders as: %s", text);
    }
    if (r == 0)
        round_trip(reg, desc);
    unclaimed = g_ptr_array_new_with_free_func(g_free);
    vfiocpr_fdreg_finish(reg, unclaimed);
    vfiocpr_fdreg_free(reg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool initialized;
    g_autoptr(GBytes) blob = NULL;
    g_autoptr(GBytes) fixed = NULL;

    if (!initialized) {
        g_log_set_writer_func(quiet_writer, NULL, NULL);
        initialized = true;
    }
    blob = g_bytes_new(data, size);
    parse(blob);
    fixed = with_checksums(data, size);
    if (fixed)
        parse(fixed);
    return 0;
}
