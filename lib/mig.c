/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VFIO migration v2: device state machine, save/load of the device's internal state
 * through its data fd, pre-copy, the device-state file format, and the checks a VMM
 * runs before it starts an operation.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "private.h"
#include "vfio-compat.h"

#define N_STATES 8
#define S(x) VFIOCPR_MIG_##x

static const char *const state_names[N_STATES] = {
    "ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P",
};

VFIOCPR_EXPORT const char *vfiocpr_mig_state_to_string(vfiocpr_mig_state state)
{
    return (unsigned)state < N_STATES ? state_names[state] : "?";
}

/* next_arc[cur][target]: the single arc the uAPI defines from cur toward target,
 * before skipping states the device lacks. ERROR where the uAPI blocks the move
 * (STOP_COPY -> PRE_COPY*) or from ERROR itself. */
static const guint8 next_arc[N_STATES][N_STATES] = {
    [S(STOP)] = { S(ERROR), S(STOP), S(RUNNING_P2P), S(STOP_COPY), S(RESUMING), S(RUNNING_P2P),
                  S(RUNNING_P2P), S(RUNNING_P2P) },
    [S(RUNNING)] = { S(ERROR), S(RUNNING_P2P), S(RUNNING), S(RUNNING_P2P), S(RUNNING_P2P),
                     S(RUNNING_P2P), S(PRE_COPY), S(RUNNING_P2P) },
    [S(STOP_COPY)] = { S(ERROR), S(STOP), S(STOP), S(STOP_COPY), S(STOP), S(STOP), S(ERROR),
                       S(ERROR) },
    [S(RESUMING)] = { S(ERROR), S(STOP), S(STOP), S(STOP), S(RESUMING), S(STOP), S(STOP), S(STOP) },
    [S(RUNNING_P2P)] = { S(ERROR), S(STOP), S(RUNNING), S(STOP), S(STOP), S(RUNNING_P2P),
                         S(RUNNING), S(PRE_COPY_P2P) },
    [S(PRE_COPY)] = { S(ERROR), S(RUNNING), S(RUNNING), S(PRE_COPY_P2P), S(RUNNING), S(RUNNING),
                      S(PRE_COPY), S(PRE_COPY_P2P) },
    [S(PRE_COPY_P2P)] = { S(ERROR), S(RUNNING_P2P), S(RUNNING_P2P), S(STOP_COPY), S(RUNNING_P2P),
                          S(RUNNING_P2P), S(PRE_COPY), S(PRE_COPY_P2P) },
};

/* The migration flags a state needs. */
static guint32 needs(guint state)
{
    switch (state) {
    case S(RUNNING_P2P):
        return VFIOCPR_MIG_FLAG_STOP_COPY | VFIOCPR_MIG_FLAG_P2P;
    case S(PRE_COPY):
        return VFIOCPR_MIG_FLAG_STOP_COPY | VFIOCPR_MIG_FLAG_PRE_COPY;
    case S(PRE_COPY_P2P):
        return VFIOCPR_MIG_FLAG_STOP_COPY | VFIOCPR_MIG_FLAG_PRE_COPY | VFIOCPR_MIG_FLAG_P2P;
    case S(ERROR):
        return 0;
    default:
        return VFIOCPR_MIG_FLAG_STOP_COPY;
    }
}

static bool data_state(guint s)
{
    return s == S(STOP_COPY) || s == S(RESUMING) || s == S(PRE_COPY) || s == S(PRE_COPY_P2P);
}

VFIOCPR_EXPORT int vfiocpr_mig_next_state(uint32_t flags, vfiocpr_mig_state cur,
                                          vfiocpr_mig_state target, vfiocpr_mig_state *next)
{
    guint n;

    if ((unsigned)cur >= N_STATES || (unsigned)target >= N_STATES || !next)
        return -EINVAL;
    if ((needs(target) & flags) != needs(target) || (needs(cur) & flags) != needs(cur))
        return -EINVAL;
    if (cur == target) {
        *next = cur;
        return 0;
    }
    n = next_arc[cur][target];
    while (n != S(ERROR) && (needs(n) & flags) != needs(n))
        n = next_arc[n][target];
    if (n == S(ERROR))
        return -EINVAL;
    *next = (vfiocpr_mig_state)n;
    return 0;
}

/* ------------------------------------------------------------------ device side */

struct vfiocpr_mig {
    bool known;
    guint32 flags;
    guint state;
    bool state_known;
    int data_fd;
};

vfiocpr_mig *vfiocpr_mig_new(void)
{
    vfiocpr_mig *m = g_new0(vfiocpr_mig, 1);
    m->data_fd = -1;
    return m;
}

void vfiocpr_mig_free(vfiocpr_mig *m)
{
    if (!m)
        return;
    if (m->data_fd >= 0)
        VK(close, m->data_fd);
    g_free(m);
}

void vfiocpr_mig_describe(vfiocpr_mig *m, GVariantBuilder *out)
{
    GVariantBuilder d;

    /* only what this image learnt: describing asks the device nothing */
    if (!m->known && !m->state_known && m->data_fd < 0)
        return;
    g_variant_builder_init(&d, G_VARIANT_TYPE_VARDICT);
    if (m->known)
        vfiocpr_kv_u(&d, "flags", m->flags);
    if (m->state_known)
        vfiocpr_kv_s(&d, "state", vfiocpr_mig_state_to_string((vfiocpr_mig_state)m->state));
    if (m->data_fd >= 0)
        vfiocpr_kv_i(&d, "data-fd", m->data_fd);
    vfiocpr_kv(out, "migration", g_variant_builder_end(&d));
}

static int feature(vfiocpr_device *d, guint32 flags, void *data, gsize len)
{
    g_autofree struct vfio_device_feature *f = g_malloc0(sizeof(*f) + len);
    int r;

    f->argsz = (guint32)(sizeof(*f) + len);
    f->flags = flags;
    if (data)
        memcpy(f->data, data, len);
    r = VK(ioctl, vfiocpr_device_fd(d), VFIO_DEVICE_FEATURE, f);
    if (r >= 0 && data)
        memcpy(data, f->data, len);
    return r;
}

VFIOCPR_EXPORT int vfiocpr_mig_flags(vfiocpr_device *d, uint32_t *flags, GError **error)
{
    vfiocpr_mig *m;
    struct vfio_device_feature_migration mf = { 0 };
    int r;

    if (!d || !flags || vfiocpr_device_fd(d) < 0)
        return vfiocpr_fail(error, EINVAL, "migration: flags: bad arguments");
    m = vfiocpr_device_mig(d);
    if (!m->known) {
        r = feature(d, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mf, sizeof(mf));
        /* a device without migration support answers ENOTTY: that is a fact, not an error */
        if (r < 0 && r != -ENOTTY && r != -EINVAL)
            return vfiocpr_fail(error, r, "device '%s': migration: VFIO_DEVICE_FEATURE(MIGRATION)",
                                vfiocpr_device_name(d));
        m->flags = r < 0 ? 0 : (guint32)mf.flags;
        m->known = true;
    }
    *flags = m->flags;
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_mig_get_state(vfiocpr_device *d, vfiocpr_mig_state *state,
                                         GError **error)
{
    struct vfio_device_feature_mig_state ms = { 0 };
    int r;

    if (!d || !state)
        return vfiocpr_fail(error, EINVAL, "migration: get state: bad arguments");
    r = feature(d, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &ms, sizeof(ms));
    if (r < 0)
        return vfiocpr_fail(error, r, "device '%s': migration: get state", vfiocpr_device_name(d));
    if (ms.device_state >= N_STATES)
        return vfiocpr_fail(error, EPROTO, "device '%s': migration: unknown state %u",
                            vfiocpr_device_name(d), ms.device_state);
    vfiocpr_device_mig(d)->state = ms.device_state;
    vfiocpr_device_mig(d)->state_known = true;
    *state = (vfiocpr_mig_state)ms.device_state;
    return 0;
}

/* One arc; keeps the data fd consistent with the state. */
static int arc(vfiocpr_device *d, vfiocpr_mig *m, guint next)
{
    struct vfio_device_feature_mig_state ms = { .device_state = next, .data_fd = -1 };
    int r = feature(d, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &ms,
                    sizeof(ms));

    if (r < 0)
        return r;
    if (ms.data_fd >= 0) {
        /* a new data stream: the old one (if any) is finished */
        if (m->data_fd >= 0)
            VK(close, m->data_fd);
        m->data_fd = ms.data_fd;
    } else if (!data_state(next) && m->data_fd >= 0) {
        VK(close, m->data_fd);
        m->data_fd = -1;
    }
    m->state = next;
    return 0;
}

static int walk(vfiocpr_device *d, vfiocpr_mig *m, guint target, GString *path, guint *failed_at)
{
    while (m->state != target) {
        vfiocpr_mig_state next;
        int r = vfiocpr_mig_next_state(m->flags, m->state, target, &next);
        if (r < 0) {
            *failed_at = m->state;
            return r;
        }
        r = arc(d, m, next);
        if (r < 0) {
            *failed_at = next;
            return r;
        }
        if (path)
            g_string_append_printf(path, " -> %s", state_names[next]);
    }
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_mig_set_state(vfiocpr_device *d, vfiocpr_mig_state target,
                                         vfiocpr_mig_state recovery, GError **error)
{
    g_autoptr(GString) path = g_string_new(NULL);
    vfiocpr_mig *m;
    vfiocpr_mig_state cur, dummy;
    guint32 flags;
    guint failed = 0;
    int r, r2;

    if (!d || (unsigned)target >= N_STATES || (unsigned)recovery >= N_STATES)
        return vfiocpr_fail(error, EINVAL, "migration: set state: bad arguments");
    vfiocpr_ctx_changed(vfiocpr_container_ctx(vfiocpr_device_container(d)));
    if ((r = vfiocpr_ctx_may_change(vfiocpr_container_ctx(vfiocpr_device_container(d)),
                                    "migration: set state", error)) < 0)
        return r;
    if ((r = vfiocpr_mig_flags(d, &flags, error)) < 0)
        return r;
    if (!(flags & VFIOCPR_MIG_FLAG_STOP_COPY))
        return vfiocpr_fail(error, ENOTSUP, "device '%s': no migration support (flags 0x%x)",
                            vfiocpr_device_name(d), flags);
    m = vfiocpr_device_mig(d);
    if (!m->state_known && (r = vfiocpr_mig_get_state(d, &cur, error)) < 0)
        return r;
    if (target == S(ERROR) || vfiocpr_mig_next_state(flags, m->state, target, &dummy) < 0)
        return vfiocpr_fail(error, EINVAL, "device '%s': migration: %s cannot reach %s with flags "
                            "0x%x", vfiocpr_device_name(d), state_names[m->state],
                            state_names[target], flags);
    g_string_append(path, state_names[m->state]);
    r = walk(d, m, target, path, &failed);
    if (r == 0)
        return 0;
    /* Where is the device now? A failed arc may leave it anywhere, even in ERROR. */
    if (vfiocpr_mig_get_state(d, &cur, NULL) < 0)
        m->state = S(ERROR);
    if (recovery != S(ERROR) && m->state != S(ERROR) &&
        walk(d, m, recovery, NULL, &failed) == 0)
        return vfiocpr_fail(error, r, "device '%s': migration: arc to %s failed on the way %s "
                            "(toward %s); recovered to %s", vfiocpr_device_name(d),
                            state_names[failed], path->str, state_names[target],
                            state_names[recovery]);
    /* the last resort, as the uAPI prescribes for ERROR */
    r2 = VK(ioctl, vfiocpr_device_fd(d), VFIO_DEVICE_RESET, NULL);
    if (m->data_fd >= 0) {
        VK(close, m->data_fd);
        m->data_fd = -1;
    }
    m->state = S(RUNNING);
    m->state_known = r2 == 0;
    return vfiocpr_fail(error, r, "device '%s': migration: arc to %s failed on the way %s (toward "
                        "%s); recovery %s; %s", vfiocpr_device_name(d), state_names[failed],
                        path->str, state_names[target],
                        recovery == S(ERROR) ? "not asked" : "failed too",
                        r2 == 0 ? "the device was reset (VFIO_DEVICE_RESET) and is RUNNING"
                                : "VFIO_DEVICE_RESET failed too: the device is unusable");
}

VFIOCPR_EXPORT int vfiocpr_mig_data_fd(vfiocpr_device *d)
{
    vfiocpr_mig *m = d ? vfiocpr_device_mig(d) : NULL;
    return m && m->data_fd >= 0 ? m->data_fd : -ENOENT;
}

/* ------------------------------------------------------------------ data */

static gsize buffer_size(vfiocpr_device *d)
{
    struct vfio_device_feature_mig_data_size ds = { 0 };
    /* sized from the driver's estimate, bounded both ways */
    if (feature(d, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &ds, sizeof(ds)) < 0)
        return 1u << 20;
    return CLAMP(ds.stop_copy_length, 4096u, 1u << 20);
}

static int write_all(int fd, const guint8 *p, gsize n)
{
    while (n) {
        ssize_t w = VK(write, fd, p, n);
        if (w < 0)
            return (int)w;
        p += w;
        n -= (gsize)w;
    }
    return 0;
}

/* data fd -> out_fd until EOF (or ENOMSG when stop_at_enomsg); crc optional */
static int drain(vfiocpr_device *d, int out_fd, bool stop_at_enomsg, guint64 *bytes, guint32 *crc,
                 GError **error)
{
    vfiocpr_mig *m = vfiocpr_device_mig(d);
    gsize sz = buffer_size(d);
    g_autofree guint8 *buf = g_malloc(sz);
    guint64 total = 0;

    for (;;) {
        ssize_t n = VK(read, m->data_fd, buf, sz);
        int r;
        if (n == 0 || (n == -ENOMSG && stop_at_enomsg))
            break;
        if (n < 0)
            return vfiocpr_fail(error, (int)n, "device '%s': migration: reading the data fd "
                                "(%" G_GUINT64_FORMAT " bytes so far)", vfiocpr_device_name(d), total);
        if (crc)
            *crc = vfiocpr_crc32c(*crc, buf, (gsize)n);
        if ((r = write_all(out_fd, buf, (gsize)n)) < 0)
            return vfiocpr_fail(error, r, "device '%s': migration: writing the state out",
                                vfiocpr_device_name(d));
        total += (guint64)n;
    }
    if (bytes)
        *bytes = total;
    return 0;
}

static int save_to(vfiocpr_device *d, int out_fd, guint64 *bytes, guint32 *crc, GError **error)
{
    int r = vfiocpr_mig_set_state(d, S(STOP_COPY), S(STOP), error);

    if (r < 0)
        return r;
    r = drain(d, out_fd, false, bytes, crc, error);
    if (r < 0) {
        vfiocpr_mig_set_state(d, S(STOP), S(ERROR), NULL);
        return r;
    }
    return vfiocpr_mig_set_state(d, S(STOP), S(ERROR), error);
}

VFIOCPR_EXPORT int vfiocpr_mig_save(vfiocpr_device *d, int out_fd, uint64_t *bytes, GError **error)
{
    if (!d || out_fd < 0)
        return vfiocpr_fail(error, EINVAL, "migration: save: bad arguments");
    vfiocpr_ctx_changed(vfiocpr_container_ctx(vfiocpr_device_container(d)));
    return save_to(d, out_fd, bytes, NULL, error);
}

/* len bytes from in_fd (at offset off, or the current position when off < 0) into
 * the device's RESUMING data fd. */
static int load_from(vfiocpr_device *d, int in_fd, gint64 off, guint64 len, GError **error)
{
    vfiocpr_mig *m = vfiocpr_device_mig(d);
    gsize sz;
    g_autofree guint8 *buf = NULL;
    guint64 done = 0;
    int r = vfiocpr_mig_set_state(d, S(RESUMING), S(STOP), error);

    if (r < 0)
        return r;
    sz = (gsize)MIN(len ? len : 1, (guint64)(1u << 20));
    buf = g_malloc(sz);
    while (done < len) {
        gsize want = (gsize)MIN((guint64)sz, len - done);
        ssize_t n = off >= 0 ? VK(pread, in_fd, buf, want, (off_t)(off + (gint64)done))
                             : VK(read, in_fd, buf, want);
        if (n <= 0) {
            r = vfiocpr_fail(error, n < 0 ? (int)n : EBADMSG, "device '%s': migration: reading "
                             "the state (%" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT " bytes)",
                             vfiocpr_device_name(d), done, len);
            goto back;
        }
        if ((r = write_all(m->data_fd, buf, (gsize)n)) < 0) {
            r = vfiocpr_fail(error, r, "device '%s': migration: the driver refused the state "
                             "after %" G_GUINT64_FORMAT " bytes", vfiocpr_device_name(d), done);
            goto back;
        }
        done += (guint64)n;
    }
    /* RESUMING -> STOP is where the driver checks and applies what it got */
    return vfiocpr_mig_set_state(d, S(STOP), S(ERROR), error);
back:
    vfiocpr_mig_set_state(d, S(STOP), S(ERROR), NULL);
    return r;
}

VFIOCPR_EXPORT int vfiocpr_mig_load(vfiocpr_device *d, int in_fd, uint64_t len, GError **error)
{
    if (!d || in_fd < 0)
        return vfiocpr_fail(error, EINVAL, "migration: load: bad arguments");
    vfiocpr_ctx_changed(vfiocpr_container_ctx(vfiocpr_device_container(d)));
    return load_from(d, in_fd, -1, len, error);
}

VFIOCPR_EXPORT int vfiocpr_mig_precopy_info(vfiocpr_device *d, uint64_t *initial_bytes,
                                            uint64_t *dirty_bytes, GError **error)
{
    struct vfio_precopy_info pi = { .argsz = sizeof(pi) };
    vfiocpr_mig *m = d ? vfiocpr_device_mig(d) : NULL;
    int r;

    if (!m || (m->state != S(PRE_COPY) && m->state != S(PRE_COPY_P2P)) || m->data_fd < 0)
        return vfiocpr_fail(error, EINVAL, "device '%s': migration: pre-copy info outside PRE_COPY",
                            d ? vfiocpr_device_name(d) : "?");
    r = VK(ioctl, m->data_fd, VFIO_MIG_GET_PRECOPY_INFO, &pi);
    if (r < 0)
        return vfiocpr_fail(error, r, "device '%s': migration: VFIO_MIG_GET_PRECOPY_INFO",
                            vfiocpr_device_name(d));
    if (initial_bytes)
        *initial_bytes = pi.initial_bytes;
    if (dirty_bytes)
        *dirty_bytes = pi.dirty_bytes;
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_mig_precopy_read(vfiocpr_device *d, int out_fd, uint64_t *bytes,
                                            GError **error)
{
    vfiocpr_mig *m = d ? vfiocpr_device_mig(d) : NULL;

    if (!m || (m->state != S(PRE_COPY) && m->state != S(PRE_COPY_P2P)) || m->data_fd < 0)
        return vfiocpr_fail(error, EINVAL, "device '%s': migration: pre-copy read outside PRE_COPY",
                            d ? vfiocpr_device_name(d) : "?");
    return drain(d, out_fd, true, bytes, NULL, error);
}

VFIOCPR_EXPORT int vfiocpr_mig_check(vfiocpr_device *d, uint32_t intent, GError **error)
{
    guint32 flags;
    int r;

    if (!d)
        return vfiocpr_fail(error, EINVAL, "migration: check: NULL device");
    if ((r = vfiocpr_mig_flags(d, &flags, error)) < 0)
        return r;
    if (!flags)
        return vfiocpr_fail(error, ENOTSUP, "device '%s' has no VFIO migration support",
                            vfiocpr_device_name(d));
    if (!(flags & VFIOCPR_MIG_FLAG_STOP_COPY))
        return vfiocpr_fail(error, ENOTSUP, "device '%s': migration flags 0x%x lack the mandatory "
                            "STOP_COPY", vfiocpr_device_name(d), flags);
    if (intent & VFIOCPR_MIG_INTENT_BACKGROUND_SNAPSHOT)
        return vfiocpr_fail(error, ENOTSUP, "device '%s': VFIO migration is not compatible with "
                            "background snapshot: the snapshot would miss device DMA writes",
                            vfiocpr_device_name(d));
    if (intent & VFIOCPR_MIG_INTENT_POSTCOPY)
        return vfiocpr_fail(error, ENOTSUP, "device '%s': VFIO migration is not compatible with "
                            "postcopy: the device state must be complete before the destination "
                            "runs", vfiocpr_device_name(d));
    if ((intent & VFIOCPR_MIG_INTENT_PRECOPY) && !(flags & VFIOCPR_MIG_FLAG_PRE_COPY))
        return vfiocpr_fail(error, ENOTSUP, "device '%s' cannot pre-copy (no "
                            "VFIO_MIGRATION_PRE_COPY; flags 0x%x)", vfiocpr_device_name(d), flags);
    return 0;
}

/* ------------------------------------------------------------------ the file */

/* File: 32-byte header, then per device a 48-byte record header, the name (padded to
 * 8), the data. All little endian.
 *   header: "VFIOMIG\0", u16 version 1, u16 records, u32 0, u64 0, u32 0, u32 crc(0..27)
 *   record: "VMIGDEV\0", u16 vendor, u16 device, u32 flags, u64 length, u32 data crc,
 *           u16 name length, u16 0, u64 0, u32 0, u32 crc(0..43 + name) */
#define MIG_MAGIC "VFIOMIG\0"
#define REC_MAGIC "VMIGDEV\0"
#define HDR 32
#define REC 48

static void p16(guint8 *p, guint16 v) { v = GUINT16_TO_LE(v); memcpy(p, &v, 2); }
static void p32(guint8 *p, guint32 v) { v = GUINT32_TO_LE(v); memcpy(p, &v, 4); }
static void p64(guint8 *p, guint64 v) { v = GUINT64_TO_LE(v); memcpy(p, &v, 8); }
static guint16 g16(const guint8 *p) { guint16 v; memcpy(&v, p, 2); return GUINT16_FROM_LE(v); }
static guint32 g32(const guint8 *p) { guint32 v; memcpy(&v, p, 4); return GUINT32_FROM_LE(v); }
static guint64 g64(const guint8 *p) { guint64 v; memcpy(&v, p, 8); return GUINT64_FROM_LE(v); }

/* PCI vendor/device from the config region; 0/0 for a device without one. */
static void identity(vfiocpr_device *d, guint16 *vendor, guint16 *device)
{
    struct vfio_region_info ri = { .argsz = sizeof(ri), .index = VFIO_PCI_CONFIG_REGION_INDEX };
    guint8 id[4] = { 0 };

    *vendor = *device = 0;
    if (VK(ioctl, vfiocpr_device_fd(d), VFIO_DEVICE_GET_REGION_INFO, &ri) < 0 || ri.size < 4)
        return;
    if (VK(pread, vfiocpr_device_fd(d), id, 4, (off_t)ri.offset) == 4) {
        *vendor = g16(id);
        *device = g16(id + 2);
    }
}

static int pwrite_all(int fd, const guint8 *p, gsize n, gint64 off)
{
    while (n) {
        ssize_t w = VK(pwrite, fd, p, n, (off_t)off);
        if (w <= 0)
            return w < 0 ? (int)w : -EIO;
        p += w;
        n -= (gsize)w;
        off += w;
    }
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_mig_save_file(vfiocpr_device *const *devices, unsigned int n,
                                         int out_fd, GError **error)
{
    guint8 hdr[HDR] = { 0 };
    gint64 off;
    int r;

    if (!devices || !n || n > G_MAXUINT16 || out_fd < 0)
        return vfiocpr_fail(error, EINVAL, "migration: save file: bad arguments");
    for (unsigned i = 0; i < n; i++)
        if (devices[i])
            vfiocpr_ctx_changed(vfiocpr_container_ctx(vfiocpr_device_container(devices[i])));
    memcpy(hdr, MIG_MAGIC, 8);
    p16(hdr + 8, 1);
    p16(hdr + 10, (guint16)n);
    p32(hdr + 28, vfiocpr_crc32c(0, hdr, 28));
    if ((r = pwrite_all(out_fd, hdr, HDR, 0)) < 0)
        return vfiocpr_fail(error, r, "migration: save file: writing the header (the file must be "
                            "seekable: record headers are written after their data)");
    off = HDR;
    for (unsigned i = 0; i < n; i++) {
        vfiocpr_device *d = devices[i];
        const char *name = vfiocpr_device_name(d);
        gsize nl = strlen(name), padded = (nl + 7) & ~(gsize)7;
        g_autofree guint8 *rec = g_malloc0(REC + padded);
        guint16 vendor, device;
        guint32 flags = 0, crc = 0;
        guint64 len = 0;
        off_t pos;

        if ((r = vfiocpr_mig_flags(d, &flags, error)) < 0)
            return r;
        identity(d, &vendor, &device);
        pos = (off_t)(off + REC + (gint64)padded);
        if (VK(lseek, out_fd, pos) != pos)
            return vfiocpr_fail(error, ESPIPE, "migration: save file: output not seekable");
        r = save_to(d, out_fd, &len, &crc, error);
        if (r < 0) {
            g_prefix_error(error, "save file, record %u: ", i);
            return r;
        }
        memcpy(rec, REC_MAGIC, 8);
        p16(rec + 8, vendor);
        p16(rec + 10, device);
        p32(rec + 12, flags);
        p64(rec + 16, len);
        p32(rec + 24, crc);
        p16(rec + 28, (guint16)nl);
        memcpy(rec + REC, name, nl);
        p32(rec + 44, vfiocpr_crc32c(vfiocpr_crc32c(0, rec, 44), rec + REC, padded));
        if ((r = pwrite_all(out_fd, rec, REC + padded, off)) < 0)
            return vfiocpr_fail(error, r, "migration: save file: record %u header", i);
        off += REC + (gint64)padded + (gint64)len;
    }
    return 0;
}

typedef struct {
    gint64 data_off;
    guint64 len;
} rec_pos;

static int read_exact(int fd, guint8 *p, gsize n, gint64 off)
{
    while (n) {
        ssize_t r = VK(pread, fd, p, n, (off_t)off);
        if (r <= 0)
            return r < 0 ? (int)r : -EBADMSG;
        p += r;
        n -= (gsize)r;
        off += r;
    }
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_mig_load_file(vfiocpr_device *const *devices, unsigned int n,
                                         int in_fd, GError **error)
{
    g_autofree rec_pos *pos = NULL;
    guint8 hdr[HDR];
    gint64 off = HDR;
    int r;

    if (!devices || !n || in_fd < 0)
        return vfiocpr_fail(error, EINVAL, "migration: load file: bad arguments");
    for (unsigned i = 0; i < n; i++)
        if (devices[i])
            vfiocpr_ctx_changed(vfiocpr_container_ctx(vfiocpr_device_container(devices[i])));
    if (read_exact(in_fd, hdr, HDR, 0) < 0 || memcmp(hdr, MIG_MAGIC, 8) != 0 ||
        g32(hdr + 28) != vfiocpr_crc32c(0, hdr, 28))
        return vfiocpr_fail(error, EBADMSG, "migration: load file: not a device-state file, or "
                            "its header is corrupt");
    if (g16(hdr + 8) != 1)
        return vfiocpr_fail(error, EPROTONOSUPPORT, "migration: load file: version %u, this "
                            "library reads 1", g16(hdr + 8));
    if (g16(hdr + 10) != n)
        return vfiocpr_fail(error, EINVAL, "migration: load file: %u device records for %u devices",
                            g16(hdr + 10), n);
    pos = g_new0(rec_pos, n);
    /* everything is checked before any device is touched */
    for (unsigned i = 0; i < n; i++) {
        vfiocpr_device *d = devices[i];
        guint8 rec[REC];
        g_autofree guint8 *name = NULL;
        g_autofree guint8 *buf = NULL;
        gsize nl, padded;
        guint16 vendor, device;
        guint32 flags = 0, crc = 0;
        guint64 len, done = 0;

        if (read_exact(in_fd, rec, REC, off) < 0 || memcmp(rec, REC_MAGIC, 8) != 0)
            return vfiocpr_fail(error, EBADMSG, "migration: load file: record %u: truncated or "
                                "not a record", i);
        nl = g16(rec + 28);
        padded = (nl + 7) & ~(gsize)7;
        name = g_malloc0(padded + 1);
        if (read_exact(in_fd, name, padded, off + REC) < 0 ||
            g32(rec + 44) != vfiocpr_crc32c(vfiocpr_crc32c(0, rec, 44), name, padded))
            return vfiocpr_fail(error, EBADMSG, "migration: load file: record %u: corrupt header", i);
        if ((r = vfiocpr_mig_flags(d, &flags, error)) < 0)
            return r;
        identity(d, &vendor, &device);
        if (strcmp((char *)name, vfiocpr_device_name(d)) != 0 || g16(rec + 8) != vendor ||
            g16(rec + 10) != device || g32(rec + 12) != flags)
            return vfiocpr_fail(error, EINVAL, "migration: load file: record %u is the state of "
                                "'%s' (PCI %04x:%04x, flags 0x%x), not of device '%s' (PCI "
                                "%04x:%04x, flags 0x%x)", i, name, g16(rec + 8), g16(rec + 10),
                                g32(rec + 12), vfiocpr_device_name(d), vendor, device, flags);
        len = g64(rec + 16);
        buf = g_malloc(64 * 1024);
        while (done < len) {
            gsize want = (gsize)MIN((guint64)64 * 1024, len - done);
            if (read_exact(in_fd, buf, want, off + REC + (gint64)padded + (gint64)done) < 0)
                return vfiocpr_fail(error, EBADMSG, "migration: load file: record %u ('%s'): "
                                    "truncated data", i, name);
            crc = vfiocpr_crc32c(crc, buf, want);
            done += want;
        }
        if (crc != g32(rec + 24))
            return vfiocpr_fail(error, EBADMSG, "migration: load file: record %u ('%s'): data "
                                "checksum mismatch (corrupt state)", i, name);
        pos[i] = (rec_pos){ .data_off = off + REC + (gint64)padded, .len = len };
        off = pos[i].data_off + (gint64)len;
    }
    for (unsigned i = 0; i < n; i++) {
        r = load_from(devices[i], in_fd, pos[i].data_off, pos[i].len, error);
        if (r < 0) {
            g_prefix_error(error, "load file, record %u: ", i);
            return r;
        }
    }
    return 0;
}

/* Data fds are streams (read/write); files are at offsets (pread/pwrite, lseek);
 * a device stuck in ERROR is reset as the last resort. */
const vfiocpr_decl vfiocpr_mig_uses[] = {
    VFIOCPR_OP(read, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_OP(write, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_OP(pread, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_OP(pwrite, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_OP(lseek, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_OP(close, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_IOCTL(VFIO_DEVICE_FEATURE, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_IOCTL(VFIO_MIG_GET_PRECOPY_INFO, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_IOCTL(VFIO_DEVICE_GET_REGION_INFO, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_IOCTL(VFIO_DEVICE_RESET, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_DECL_END,
};
