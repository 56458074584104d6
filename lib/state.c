/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The state area: a sealed memfd holding a fixed header and a GVariant payload.
 *
 * Header, all little endian (format major 1):
 *   0  magic "VFIOCPR\0"
 *   8  u16 major, u16 minor
 *  12  u32 header size (>= 32, multiple of 8; the payload starts there)
 *  16  u64 payload length
 *  24  u32 CRC32C of the payload
 *  28  u32 CRC32C of bytes 0..27
 * The payload is an a{sv} in GVariant normal form, little endian. A reader accepts
 * any minor of its major: minors only add optional keys. Keys a reader must
 * understand are listed in "required-features" and refused when unknown.
 * Sections, features and keys: lib/state-format.h; all of it: docs/state-format.md.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "private.h"

#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif

/* GChecksum has no CRC and SHA-256 costs several times more per byte; the state is
 * written inside the exec blackout and the checksum only has to catch corruption
 * (anyone able to forge it could as well write a valid blob, so the payload is
 * validated field by field anyway). Slice-by-8 CRC32C, tables built once. */
static guint32 crc_table[8][256];

static gpointer crc_init(gpointer unused G_GNUC_UNUSED)
{
    for (guint32 i = 0; i < 256; i++) {
        guint32 c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_table[0][i] = c;
    }
    for (guint32 i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
    return NULL;
}

guint32 vfiocpr_crc32c_sw(guint32 crc, const void *data, size_t len)
{
    static GOnce once = G_ONCE_INIT;
    const guint8 *p = data;

    g_once(&once, crc_init, NULL);
    crc = ~crc;
    while (len >= 8) {
        guint64 w;
        memcpy(&w, p, 8);
        w = GUINT64_FROM_LE(w) ^ crc;
        crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
              crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
              crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
              crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#if defined(__has_include)
#if __has_include(<sys/platform/x86.h>)
#include <sys/platform/x86.h> /* glibc 2.33+ */
#define HAVE_GLIBC_X86_FEATURES 1
#endif
#endif
#ifndef HAVE_GLIBC_X86_FEATURES
#include <cpuid.h>
#endif

/* SSE4.2 has CRC32C in one instruction: ~10x the table's speed, which matters in
 * the exec blackout for large states (and under emulation even more). */
__attribute__((target("sse4.2"))) static guint32 crc32c_hw(guint32 crc, const void *data,
                                                            size_t len)
{
    const guint8 *p = data;
    guint64 c = ~crc;

    while (len >= 8) {
        guint64 w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        len -= 8;
    }
    while (len--)
        c = __builtin_ia32_crc32qi((guint32)c, *p++);
    return ~(guint32)c;
}

/* SSE4.2, asked at the first checksum. Not __builtin_cpu_supports(): that links
 * libgcc's __cpu_indicator_init, a constructor that probes every CPU feature in
 * every process loading the library (the library's largest own cost of an exec
 * cycle, measured), for the one bit needed here. glibc has asked the CPU already
 * at start-up: its answer costs no CPUID instruction, which traps to the
 * hypervisor in a VM (measured: most of the first checksum's time). */
static bool have_sse42(void)
{
#ifdef HAVE_GLIBC_X86_FEATURES
    return CPU_FEATURE_ACTIVE(SSE4_2);
#else
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_2);
#endif
}

/* One call for a whole table: the per-record call and dispatch cost more than the
 * six crc32 instructions of a 48-byte record. */
__attribute__((target("sse4.2"))) static guint32 crc32c_sum_hw(const void *records, guint n,
                                                               size_t size)
{
    const guint8 *p = records;
    guint32 sum = 0;

    for (guint i = 0; i < n; i++, p += size)
        sum += crc32c_hw(i, p, size);
    return sum;
}

static int hw = -1; /* racing first calls store the same answer */

guint32 vfiocpr_crc32c(guint32 crc, const void *data, size_t len)
{
    if (G_UNLIKELY(hw < 0))
        hw = have_sse42();
    return hw ? crc32c_hw(crc, data, len) : vfiocpr_crc32c_sw(crc, data, len);
}

guint32 vfiocpr_crc32c_sum(const void *records, guint n, size_t size)
{
    guint32 sum = 0;

    if (G_UNLIKELY(hw < 0))
        hw = have_sse42();
    if (hw)
        return crc32c_sum_hw(records, n, size);
    for (guint i = 0; i < n; i++)
        sum += vfiocpr_crc32c_sw(i, (const guint8 *)records + (gsize)i * size, size);
    return sum;
}
#else
guint32 vfiocpr_crc32c(guint32 crc, const void *data, size_t len)
{
    return vfiocpr_crc32c_sw(crc, data, len);
}

guint32 vfiocpr_crc32c_sum(const void *records, guint n, size_t size)
{
    guint32 sum = 0;
    for (guint i = 0; i < n; i++)
        sum += vfiocpr_crc32c_sw(i, (const guint8 *)records + (gsize)i * size, size);
    return sum;
}
#endif

static void put16(guint8 *p, guint16 v) { v = GUINT16_TO_LE(v); memcpy(p, &v, 2); }
static void put32(guint8 *p, guint32 v) { v = GUINT32_TO_LE(v); memcpy(p, &v, 4); }
static void put64(guint8 *p, guint64 v) { v = GUINT64_TO_LE(v); memcpy(p, &v, 8); }
static guint16 get16(const guint8 *p) { guint16 v; memcpy(&v, p, 2); return GUINT16_FROM_LE(v); }
static guint32 get32(const guint8 *p) { guint32 v; memcpy(&v, p, 4); return GUINT32_FROM_LE(v); }
static guint64 get64(const guint8 *p) { guint64 v; memcpy(&v, p, 8); return GUINT64_FROM_LE(v); }

GBytes *vfiocpr_state_encode(GVariant *payload)
{
    g_autoptr(GVariant) le = NULL;
    gsize plen;
    guint8 *buf;

    g_variant_ref_sink(payload);
    le = G_BYTE_ORDER == G_LITTLE_ENDIAN ? g_variant_ref(payload) : g_variant_byteswap(payload);
    g_variant_unref(payload);
    plen = g_variant_get_size(le);
    buf = g_malloc0(VFIOCPR_STATE_HEADER_SIZE + plen);
    g_variant_store(le, buf + VFIOCPR_STATE_HEADER_SIZE);
    memcpy(buf, VFIOCPR_STATE_MAGIC, 8);
    put16(buf + 8, VFIOCPR_STATE_FORMAT_MAJOR);
    put16(buf + 10, VFIOCPR_STATE_FORMAT_MINOR);
    put32(buf + 12, VFIOCPR_STATE_HEADER_SIZE);
    put64(buf + 16, plen);
    put32(buf + 24, vfiocpr_crc32c(0, buf + VFIOCPR_STATE_HEADER_SIZE, plen));
    put32(buf + 28, vfiocpr_crc32c(0, buf, 28));
    return g_bytes_new_take(buf, VFIOCPR_STATE_HEADER_SIZE + plen);
}

void vfiocpr_state_reseal(guint8 *buf, gsize len)
{
    put32(buf + 24, vfiocpr_crc32c(0, buf + VFIOCPR_STATE_HEADER_SIZE,
                                   len - VFIOCPR_STATE_HEADER_SIZE));
    put32(buf + 28, vfiocpr_crc32c(0, buf, 28));
}

const vfiocpr_section_def vfiocpr_state_sections[VFIOCPR_SEC_COUNT] = {
#define X(id, name, type, since, owner, record, feature) \
    [VFIOCPR_SEC_##id] = { name, type, since, owner, record, feature },
    VFIOCPR_STATE_SECTIONS(X)
#undef X
};

const vfiocpr_feature_def vfiocpr_state_features[VFIOCPR_FEAT_COUNT] = {
#define X(id, name, since) [VFIOCPR_FEAT_##id] = { name, since },
    VFIOCPR_STATE_FEATURES(X)
#undef X
};

const vfiocpr_key_def vfiocpr_state_keys[VFIOCPR_KEY_COUNT] = {
#define X(id, pattern, idm, owner) [VFIOCPR_KEY_##id] = { pattern, idm, owner },
    VFIOCPR_STATE_KEYS(X)
#undef X
};

static __thread struct {
    GVariant *payload; /* referenced while the index is up */
    GVariant *value[VFIOCPR_SEC_COUNT];
} sec_index;

void vfiocpr_section_index_begin(GVariant *payload)
{
    GVariantIter it;
    const char *key;
    GVariant *value;

    vfiocpr_section_index_end();
    sec_index.payload = g_variant_ref(payload);
    g_variant_iter_init(&it, payload);
    while (g_variant_iter_next(&it, "{&sv}", &key, &value)) {
        const vfiocpr_section_def *def = vfiocpr_section_find(key);
        gsize id = def ? (gsize)(def - vfiocpr_state_sections) : VFIOCPR_SEC_COUNT;
        if (id < VFIOCPR_SEC_COUNT && !sec_index.value[id])
            sec_index.value[id] = value;
        else
            g_variant_unref(value);
    }
}

void vfiocpr_section_index_end(void)
{
    for (gsize i = 0; i < VFIOCPR_SEC_COUNT; i++)
        g_clear_pointer(&sec_index.value[i], g_variant_unref);
    g_clear_pointer(&sec_index.payload, g_variant_unref);
}

GVariant *vfiocpr_section_lookup(GVariant *payload, vfiocpr_section_id id)
{
    if (payload == sec_index.payload) {
        GVariant *v = sec_index.value[id];
        return v && g_variant_is_of_type(v, G_VARIANT_TYPE(vfiocpr_state_sections[id].type))
                   ? g_variant_ref(v)
                   : NULL;
    }
    return g_variant_lookup_value(payload, vfiocpr_state_sections[id].name,
                                  G_VARIANT_TYPE(vfiocpr_state_sections[id].type));
}

GVariant *vfiocpr_section_lookup_any(GVariant *payload, vfiocpr_section_id id)
{
    if (payload == sec_index.payload)
        return sec_index.value[id] ? g_variant_ref(sec_index.value[id]) : NULL;
    return g_variant_lookup_value(payload, vfiocpr_state_sections[id].name, NULL);
}

bool vfiocpr_section_present(GVariant *payload, vfiocpr_section_id id)
{
    g_autoptr(GVariant) v = NULL;

    if (payload == sec_index.payload)
        return sec_index.value[id] != NULL;
    v = g_variant_lookup_value(payload, vfiocpr_state_sections[id].name, NULL);
    return v != NULL;
}

void vfiocpr_section_insert(GVariantDict *payload, vfiocpr_section_id id, GVariant *value)
{
    /* a writer that disagrees with the table is a bug the tests must see */
    g_warn_if_fail(g_variant_is_of_type(value, G_VARIANT_TYPE(vfiocpr_state_sections[id].type)));
    g_variant_dict_insert_value(payload, vfiocpr_state_sections[id].name, value);
}

const vfiocpr_section_def *vfiocpr_section_find(const char *name)
{
    for (gsize i = 0; i < VFIOCPR_SEC_COUNT; i++)
        if (strcmp(vfiocpr_state_sections[i].name, name) == 0)
            return &vfiocpr_state_sections[i];
    return NULL;
}

/* Arrays of padding-free fixed-size records: for these, normal form is exactly "the
 * size is a multiple of the record size", while g_variant_is_normal_form() would
 * walk every member of every record (1.5 ms for 10,000 fds). The sections' readers
 * use g_variant_get_fixed_array(), which needs nothing more. Matched by type, not
 * by name, as before the table: any section of a record type is checked so. */
static gsize flat_record(const char *type)
{
    for (gsize k = 0; k < VFIOCPR_SEC_COUNT; k++)
        if (vfiocpr_state_sections[k].record && strcmp(type, vfiocpr_state_sections[k].type) == 0)
            return vfiocpr_state_sections[k].record;
    return 0;
}

/* index, when not NULL, gets each known section's value (the first entry of a
 * name), from the same walk. */
static int check_normal_form(GVariant *dict, GVariant **index, GError **error)
{
    gsize n = g_variant_n_children(dict);
    g_auto(GVariantBuilder) rebuilt = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE_VARDICT);
    g_autoptr(GVariant) again = NULL;

    for (gsize i = 0; i < n; i++) {
        g_autoptr(GVariant) entry = g_variant_get_child_value(dict, i);
        g_autoptr(GVariant) key = g_variant_get_child_value(entry, 0);
        g_autoptr(GVariant) boxed = g_variant_get_child_value(entry, 1);
        g_autoptr(GVariant) value = g_variant_get_variant(boxed);
        const char *type = g_variant_get_type_string(value);
        gsize record = flat_record(type);
        bool flat = record != 0;

        if (flat && g_variant_get_size(value) % record)
            return vfiocpr_fail(error, EBADMSG, "state: payload: section '%s' is not "
                                "a whole number of records", g_variant_get_string(key, NULL));
        /* the entry framing (key, variant type string) is checked without the value */
        if (!g_variant_is_normal_form(key) ||
            (!flat && !g_variant_is_normal_form(value)) ||
            g_variant_get_size(boxed) != g_variant_get_size(value) + 1 + strlen(type))
            return vfiocpr_fail(error, EBADMSG, "state: payload: entry %zu not in GVariant "
                                "normal form", i);
        g_variant_builder_add_value(&rebuilt, entry);
        if (index) {
            const vfiocpr_section_def *def = vfiocpr_section_find(g_variant_get_string(key, NULL));
            if (def && !index[def - vfiocpr_state_sections])
                index[def - vfiocpr_state_sections] = g_variant_ref(value);
        }
    }
    /* With every entry normal, the dict is normal iff re-framing the same entries
     * gives the same bytes: one copy instead of a walk of every record. */
    again = g_variant_ref_sink(g_variant_builder_end(&rebuilt));
    if (g_variant_get_size(again) != g_variant_get_size(dict) ||
        (g_variant_get_size(dict) && /* empty data may be NULL */
         memcmp(g_variant_get_data(again), g_variant_get_data(dict), g_variant_get_size(dict))))
        return vfiocpr_fail(error, EBADMSG, "state: payload: not a GVariant a{sv} in normal form");
    return 0;
}

static bool known_feature(const char *name)
{
    for (gsize k = 0; k < VFIOCPR_FEAT_COUNT; k++)
        if (strcmp(vfiocpr_state_features[k].name, name) == 0)
            return true;
    return false;
}

/* A reader refuses any required feature it does not know. index: the walk's
 * section values, when it made them (no second search of the payload). */
static int check_features(GVariant *payload, GVariant **index, GError **error)
{
    g_autoptr(GVariant) req = NULL;
    g_autofree const char **list = NULL;

    if (index) {
        GVariant *v = index[VFIOCPR_SEC_REQUIRED_FEATURES];
        if (v && g_variant_is_of_type(v, VFIOCPR_SECTION_TYPE(REQUIRED_FEATURES)))
            req = g_variant_ref(v);
    } else {
        req = vfiocpr_section_lookup(payload, VFIOCPR_SEC_REQUIRED_FEATURES);
    }

    if (!req)
        return 0;
    list = g_variant_get_strv(req, NULL);
    for (gsize i = 0; list[i]; i++)
        if (!known_feature(list[i]))
            return vfiocpr_fail(error, ENOTSUP,
                                "state: payload: requires feature '%s' that this library "
                                "(%s) does not implement", list[i], PACKAGE_VERSION);
    return 0;
}

static int decode(GBytes *blob, GVariant **payload_out, guint16 *major_out, guint16 *minor_out,
                  GVariant **index, GError **error);

int vfiocpr_state_decode(GBytes *blob, GVariant **payload_out, guint16 *major_out,
                         guint16 *minor_out, GError **error)
{
    return decode(blob, payload_out, major_out, minor_out, NULL, error);
}

int vfiocpr_state_decode_indexed(GBytes *blob, GVariant **payload_out, guint16 *major_out,
                                 guint16 *minor_out, GError **error)
{
    GVariant *index[VFIOCPR_SEC_COUNT] = { NULL };
    int r = decode(blob, payload_out, major_out, minor_out,
                   G_BYTE_ORDER == G_LITTLE_ENDIAN ? index : NULL, error);

    vfiocpr_section_index_end();
    if (r < 0) {
        for (gsize i = 0; i < VFIOCPR_SEC_COUNT; i++)
            g_clear_pointer(&index[i], g_variant_unref);
        return r;
    }
    if (G_BYTE_ORDER != G_LITTLE_ENDIAN) {
        vfiocpr_section_index_begin(*payload_out); /* the values are the swapped ones */
        return 0;
    }
    sec_index.payload = g_variant_ref(*payload_out);
    memcpy(sec_index.value, index, sizeof(index));
    return 0;
}

static int decode(GBytes *blob, GVariant **payload_out, guint16 *major_out, guint16 *minor_out,
                  GVariant **index, GError **error)
{
    gsize len;
    const guint8 *p = g_bytes_get_data(blob, &len);
    guint16 major, minor;
    guint32 hsize;
    guint64 plen;
    g_autoptr(GBytes) pbytes = NULL;
    g_autoptr(GVariant) v = NULL;
    int r;

    if (len < VFIOCPR_STATE_HEADER_SIZE)
        return vfiocpr_fail(error, EBADMSG, "state: header: truncated (%zu of %d bytes)", len,
                            VFIOCPR_STATE_HEADER_SIZE);
    if (memcmp(p, VFIOCPR_STATE_MAGIC, 8) != 0)
        return vfiocpr_fail(error, EBADMSG, "state: header: bad magic, not a libvfiocpr state");
    if (get32(p + 28) != vfiocpr_crc32c(0, p, 28))
        return vfiocpr_fail(error, EBADMSG, "state: header: checksum mismatch (corrupt header)");
    major = get16(p + 8);
    minor = get16(p + 10);
    hsize = get32(p + 12);
    plen = get64(p + 16);
    if (major != VFIOCPR_STATE_FORMAT_MAJOR)
        return vfiocpr_fail(error, EPROTONOSUPPORT,
                            "state: header: format %u.%u, this library (%s) reads major %d",
                            major, minor, PACKAGE_VERSION, VFIOCPR_STATE_FORMAT_MAJOR);
    if (hsize < VFIOCPR_STATE_HEADER_SIZE || hsize % 8 || hsize > len)
        return vfiocpr_fail(error, EBADMSG, "state: header: bad header size %u", hsize);
    if (plen != len - hsize)
        return vfiocpr_fail(error, EBADMSG,
                            "state: header: payload length %" G_GUINT64_FORMAT
                            " but %zu bytes follow the header (truncated or padded)",
                            plen, len - hsize);
    if (get32(p + 24) != vfiocpr_crc32c(0, p + hsize, plen))
        return vfiocpr_fail(error, EBADMSG, "state: payload: checksum mismatch (corrupt payload)");

    /* Untrusted from here on: trusted=FALSE and a normal-form check before any use. */
    pbytes = g_bytes_new_from_bytes(blob, hsize, plen);
    v = g_variant_ref_sink(g_variant_new_from_bytes(G_VARIANT_TYPE_VARDICT, pbytes, FALSE));
    r = check_normal_form(v, index, error);
    if (r < 0)
        return r;
    if (G_BYTE_ORDER != G_LITTLE_ENDIAN) {
        GVariant *sw = g_variant_byteswap(v);
        g_variant_unref(v);
        v = sw;
    }
    r = check_features(v, G_BYTE_ORDER == G_LITTLE_ENDIAN ? index : NULL, error);
    if (r < 0)
        return r;
    if (major_out)
        *major_out = major;
    if (minor_out)
        *minor_out = minor;
    *payload_out = g_steal_pointer(&v);
    return 0;
}

int vfiocpr_state_write_memfd(GBytes *blob, int *fd_out, GError **error)
{
    gsize len;
    const guint8 *p = g_bytes_get_data(blob, &len);
    gsize done = 0;
    int fd, r;

    fd = VK(memfd_create, "vfiocpr-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return vfiocpr_fail(error, fd, "state memfd: memfd_create");
    while (done < len) {
        ssize_t n = VK(pwrite, fd, p + done, len - done, (off_t)done);
        if (n <= 0) {
            r = vfiocpr_fail(error, n ? (int)n : ENOSPC, "state memfd %d: write (%zu of %zu bytes)",
                             fd, done, len);
            goto fail;
        }
        done += (gsize)n;
    }
    r = VK(add_seals, fd, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
    if (r < 0) {
        r = vfiocpr_fail(error, r, "state memfd %d: seal", fd);
        goto fail;
    }
    *fd_out = fd;
    return 0;
fail:
    VK(close, fd);
    return r;
}

int vfiocpr_state_read_fd(int fd, GBytes **blob_out, GError **error)
{
    vfiocpr_fd_stat st;
    off_t size;
    int seals, r;
    guint8 *buf;
    gsize done = 0;

    r = VK(fstat, fd, &st, &size);
    if (r < 0)
        return vfiocpr_fail(error, r, "state fd %d: fstat (is it open?)", fd);
    seals = VK(get_seals, fd);
    if (!S_ISREG(st.mode) || seals == -EINVAL)
        return vfiocpr_fail(error, EBADF, "state fd %d: not a memfd", fd);
    if (seals < 0)
        return vfiocpr_fail(error, seals, "state fd %d: reading seals", fd);
    if ((seals & VFIOCPR_STATE_SEALS_REQUIRED) != VFIOCPR_STATE_SEALS_REQUIRED)
        return vfiocpr_fail(error, EPERM,
                            "state fd %d: memfd not sealed (seals 0x%x, need 0x%x): it could "
                            "still change under the reader", fd, (unsigned)seals,
                            VFIOCPR_STATE_SEALS_REQUIRED);
    if (size < VFIOCPR_STATE_HEADER_SIZE ||
        (guint64)size > VFIOCPR_STATE_HEADER_SIZE + (guint64)VFIOCPR_STATE_MAX_PAYLOAD)
        return vfiocpr_fail(error, EBADMSG, "state fd %d: implausible size %lld bytes", fd,
                            (long long)size);
    buf = g_malloc((gsize)size);
    while (done < (gsize)size) {
        ssize_t n = VK(pread, fd, buf + done, (gsize)size - done, (off_t)done);
        if (n <= 0) {
            g_free(buf);
            return vfiocpr_fail(error, n ? (int)n : EBADMSG, "state fd %d: read (%zu of %lld)",
                                fd, done, (long long)size);
        }
        done += (gsize)n;
    }
    *blob_out = g_bytes_new_take(buf, (gsize)size);
    return 0;
}

int vfiocpr_state_parse_env(const char *value, int *fd_out, GError **error)
{
    gint64 n;
    g_autoptr(GError) local = NULL;

    if (!g_ascii_string_to_signed(value, 10, 0, INT_MAX, &n, &local))
        return vfiocpr_fail(error, EINVAL, "%s='%s': not a file descriptor number (%s)",
                            VFIOCPR_STATE_ENV, value, local->message);
    *fd_out = (int)n;
    return 0;
}

/* The state memfd: written for an exec or a transfer, read by the new process. */
const vfiocpr_decl vfiocpr_state_uses[] = {
    VFIOCPR_OP(memfd_create, 0), VFIOCPR_OP(pwrite, 0),    VFIOCPR_OP(pread, 0),
    VFIOCPR_OP(fstat, 0),        VFIOCPR_OP(get_seals, 0), VFIOCPR_OP(add_seals, 0),
    VFIOCPR_OP(close, 0),        VFIOCPR_DECL_END,
};
