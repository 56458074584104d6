/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake kernel's migration v2 model: the device state machine, checked arc by
 * arc against the uAPI, and its data streams. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "fake-kernel-private.h"


/* ---- migration v2 model ---- */
#define M_P2P VFIO_MIGRATION_P2P
#define M_PRE VFIO_MIGRATION_PRE_COPY
#define STOP VFIO_DEVICE_STATE_STOP
#define RUNNING VFIO_DEVICE_STATE_RUNNING
#define STOP_COPY VFIO_DEVICE_STATE_STOP_COPY
#define RESUMING VFIO_DEVICE_STATE_RESUMING
#define RUNNING_P2P VFIO_DEVICE_STATE_RUNNING_P2P
#define PRE_COPY VFIO_DEVICE_STATE_PRE_COPY
#define PRE_COPY_P2P VFIO_DEVICE_STATE_PRE_COPY_P2P

/* The single arcs the uAPI defines, written from its text (not from the library's
 * table, which is what these tests check): cur, next, flags needed, flags that must
 * be absent. */
static const struct { guint cur, next, need, absent; } uapi_arcs[] = {
    { STOP, STOP_COPY, 0, 0 },
    { STOP_COPY, STOP, 0, 0 },
    { STOP, RESUMING, 0, 0 },
    { RESUMING, STOP, 0, 0 },
    { STOP, RUNNING, 0, M_P2P }, /* with P2P, through RUNNING_P2P */
    { RUNNING, STOP, 0, M_P2P },
    { STOP, RUNNING_P2P, M_P2P, 0 },
    { RUNNING_P2P, STOP, M_P2P, 0 },
    { RUNNING_P2P, RUNNING, M_P2P, 0 },
    { RUNNING, RUNNING_P2P, M_P2P, 0 },
    { RUNNING, PRE_COPY, M_PRE, 0 },
    { PRE_COPY, RUNNING, M_PRE, 0 },
    { PRE_COPY, STOP_COPY, M_PRE, M_P2P }, /* with P2P, through PRE_COPY_P2P */
    { PRE_COPY, PRE_COPY_P2P, M_PRE | M_P2P, 0 },
    { PRE_COPY_P2P, PRE_COPY, M_PRE | M_P2P, 0 },
    { RUNNING_P2P, PRE_COPY_P2P, M_PRE | M_P2P, 0 },
    { PRE_COPY_P2P, RUNNING_P2P, M_PRE | M_P2P, 0 },
    { PRE_COPY_P2P, STOP_COPY, M_PRE | M_P2P, 0 },
};

static bool state_supported(guint32 flags, guint s)
{
    switch (s) {
    case RUNNING_P2P: return flags & M_P2P;
    case PRE_COPY: return flags & M_PRE;
    case PRE_COPY_P2P: return (flags & (M_PRE | M_P2P)) == (M_PRE | M_P2P);
    case VFIO_DEVICE_STATE_ERROR: return false;
    default: return true;
    }
}

static bool legal_arc(guint32 flags, guint cur, guint next)
{
    for (gsize i = 0; i < G_N_ELEMENTS(uapi_arcs); i++)
        if (uapi_arcs[i].cur == cur && uapi_arcs[i].next == next &&
            (flags & uapi_arcs[i].need) == uapi_arcs[i].need && !(flags & uapi_arcs[i].absent))
            return true;
    return false;
}

void fk_free_stream(gpointer p)
{
    fk_stream *st = p;
    g_byte_array_unref(st->buf);
    g_free(st);
}

static int new_stream(fk_obj *o, bool precopy, bool resuming)
{
    int fd = REAL->memfd_create("fake-mig-data", MFD_CLOEXEC);
    fk_stream *st = g_new0(fk_stream, 1);
    st->buf = g_byte_array_new();
    st->precopy = precopy;
    st->resuming = resuming;
    if (!resuming && fk.mig_blob) {
        st->src = fk.mig_blob->data;
        st->len = precopy ? MIN(fk.mig_precopy_initial, fk.mig_blob->len) : fk.mig_blob->len;
    }
    g_hash_table_insert(fk.streams, GINT_TO_POINTER(fd), st);
    o->data_fd = fd;
    return fd;
}

int fk_mig_feature(fk_obj *o, struct vfio_device_feature *f)
{
    guint idx = f->flags & VFIO_DEVICE_FEATURE_MASK;
    bool get = f->flags & VFIO_DEVICE_FEATURE_GET;
    guint32 flags = fk_device_mig_flags(o);

    if (!flags)
        return -ENOTTY;
    if (idx == VFIO_DEVICE_FEATURE_MIGRATION && get) {
        ((struct vfio_device_feature_migration *)(void *)f->data)->flags = flags;
        return 0;
    }
    if (idx == VFIO_DEVICE_FEATURE_MIG_DATA_SIZE && get) {
        struct vfio_device_feature_mig_data_size *ds = (void *)f->data;
        ds->stop_copy_length = fk.mig_blob ? fk.mig_blob->len : 0;
        return 0;
    }
    if (idx == VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE) {
        struct vfio_device_feature_mig_state *ms = (void *)f->data;
        guint cur = o->mig_state, next = ms->device_state;
        fk_stream *old = o->data_fd >= 0 ? g_hash_table_lookup(fk.streams, GINT_TO_POINTER(o->data_fd)) : NULL;
        if (get) {
            ms->device_state = cur;
            return 0;
        }
        g_array_append_val(fk.arcs, ((guint){ cur << 8 | next }));
        /* strict: one legal arc, into a supported state */
        if (!state_supported(flags, next) || !legal_arc(flags, cur, next))
            return -EINVAL;
        if (cur == RESUMING && next == STOP) {
            /* the driver checks what it was given; nothing at all is "nothing loaded" */
            if (old && old->buf->len &&
                (!fk.mig_blob || old->buf->len != fk.mig_blob->len ||
                 memcmp(old->buf->data, fk.mig_blob->data, old->buf->len) != 0))
                return -EINVAL;
        }
        ms->data_fd = -1;
        if (next == STOP_COPY && (cur == PRE_COPY || cur == PRE_COPY_P2P) && old) {
            /* the pre-copy stream goes on: the rest of the blob, then EOF */
            old->precopy = false;
            if (fk.mig_blob)
                old->len = fk.mig_blob->len;
        } else if (next == STOP_COPY || next == RESUMING ||
                   ((next == PRE_COPY || next == PRE_COPY_P2P) && cur != PRE_COPY &&
                    cur != PRE_COPY_P2P)) {
            ms->data_fd = new_stream(o, next == PRE_COPY || next == PRE_COPY_P2P, next == RESUMING);
        }
        o->mig_state = next;
        return 0;
    }
    return -ENOTTY;
}

/* ---- data streams: the fds the device hands out for STOP_COPY, PRE_COPY, RESUMING ---- */
fk_stream *fk_mig_stream(int fd)
{
    return fk.streams ? g_hash_table_lookup(fk.streams, GINT_TO_POINTER(fd)) : NULL;
}

ssize_t fk_mig_stream_read(fk_stream *st, void *buf, size_t len)
{
    gsize n;

    if (st->resuming)
        return -EINVAL;
    if (st->pos == st->len)
        return st->precopy ? -ENOMSG : 0;
    n = MIN(len, st->len - st->pos);
    memcpy(buf, st->src + st->pos, n);
    st->pos += n;
    return (ssize_t)n;
}

ssize_t fk_mig_stream_write(fk_stream *st, const void *buf, size_t len)
{
    if (!st->resuming)
        return -EINVAL;
    g_byte_array_append(st->buf, buf, (guint)len);
    return (ssize_t)len;
}

int fk_mig_stream_ioctl(fk_stream *st, unsigned long request, void *arg)
{
    struct vfio_precopy_info *info = arg;
    if (request != VFIO_MIG_GET_PRECOPY_INFO || !st->precopy)
        return -EINVAL;
    info->initial_bytes = st->len - st->pos;
    info->dirty_bytes = 0;
    return 0;
}

bool fk_mig_stream_close(int fd)
{
    return fk.streams && g_hash_table_remove(fk.streams, GINT_TO_POINTER(fd));
}

void fk_mig_free(void)
{
    if (fk.streams) {
        GHashTableIter it;
        gpointer k;
        g_hash_table_iter_init(&it, fk.streams);
        while (g_hash_table_iter_next(&it, &k, NULL))
            REAL->close(GPOINTER_TO_INT(k));
        g_hash_table_destroy(fk.streams);
    }
    if (fk.mig_blob)
        g_byte_array_unref(fk.mig_blob);
    if (fk.arcs)
        g_array_unref(fk.arcs);
}

void fk_mig_reset(void)
{
    fk.streams = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, fk_free_stream);
    fk.arcs = g_array_new(FALSE, FALSE, sizeof(guint));
}

/* ---- test API (fake-kernel.h) ---- */
void fake_mig_setup(guint32 flags, const void *blob, gsize len, guint precopy_initial)
{
    fk.mig_flags = flags;
    if (fk.mig_blob)
        g_byte_array_unref(fk.mig_blob);
    fk.mig_blob = g_byte_array_new();
    g_byte_array_append(fk.mig_blob, blob, (guint)len);
    fk.mig_precopy_initial = precopy_initial;
}

void fake_mig_force_state(int device_fd, guint state)
{
    fk_obj *o = fk_obj_get(device_fd, FK_DEVICE);
    if (!o)
        return;
    o->mig_state = state;
    o->data_fd = -1; /* a forced state has no data stream */
}

guint fake_mig_state(int device_fd)
{
    fk_obj *o = fk_obj_get(device_fd, FK_DEVICE);
    return o ? o->mig_state : 0;
}

const GArray *fake_mig_arcs(void)
{
    return fk.arcs;
}

void fake_mig_clear_arcs(void)
{
    g_array_set_size(fk.arcs, 0);
}

