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
#define M_STOP_COPY 1u
#define M_P2P 2u
#define M_PRE 4u

/* The single arcs the uAPI defines, written from its text (not from the library's
 * table, which is what these tests check): cur, next, flags needed, flags that must
 * be absent. */
static const struct { guint cur, next, need, absent; } uapi_arcs[] = {
    { 1, 3, 0, 0 }, { 3, 1, 0, 0 },                 /* STOP <-> STOP_COPY */
    { 1, 4, 0, 0 }, { 4, 1, 0, 0 },                 /* STOP <-> RESUMING */
    { 1, 2, 0, M_P2P }, { 2, 1, 0, M_P2P },         /* STOP <-> RUNNING, without P2P */
    { 1, 5, M_P2P, 0 }, { 5, 1, M_P2P, 0 },         /* STOP <-> RUNNING_P2P */
    { 5, 2, M_P2P, 0 }, { 2, 5, M_P2P, 0 },         /* RUNNING_P2P <-> RUNNING */
    { 2, 6, M_PRE, 0 }, { 6, 2, M_PRE, 0 },         /* RUNNING <-> PRE_COPY */
    { 6, 3, M_PRE, M_P2P },                         /* PRE_COPY -> STOP_COPY, without P2P */
    { 6, 7, M_PRE | M_P2P, 0 }, { 7, 6, M_PRE | M_P2P, 0 },  /* PRE_COPY <-> PRE_COPY_P2P */
    { 5, 7, M_PRE | M_P2P, 0 }, { 7, 5, M_PRE | M_P2P, 0 },  /* RUNNING_P2P <-> PRE_COPY_P2P */
    { 7, 3, M_PRE | M_P2P, 0 },                     /* PRE_COPY_P2P -> STOP_COPY */
};

static bool state_supported(guint s)
{
    switch (s) {
    case 5: return fk.mig_flags & M_P2P;
    case 6: return fk.mig_flags & M_PRE;
    case 7: return (fk.mig_flags & (M_PRE | M_P2P)) == (M_PRE | M_P2P);
    case 0: return false;
    default: return true;
    }
}

static bool legal_arc(guint cur, guint next)
{
    for (gsize i = 0; i < G_N_ELEMENTS(uapi_arcs); i++)
        if (uapi_arcs[i].cur == cur && uapi_arcs[i].next == next &&
            (fk.mig_flags & uapi_arcs[i].need) == uapi_arcs[i].need &&
            !(fk.mig_flags & uapi_arcs[i].absent))
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

    if (!fk.mig_flags)
        return -ENOTTY;
    if (idx == VFIO_DEVICE_FEATURE_MIGRATION && get) {
        ((struct vfio_device_feature_migration *)(void *)f->data)->flags = fk.mig_flags;
        return 0;
    }
    if (idx == VFIO_DEVICE_FEATURE_MIG_DATA_SIZE && get) {
        guint64 len = fk.mig_blob ? fk.mig_blob->len : 0;
        memcpy(f->data, &len, 8);
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
        if (!state_supported(next) || !legal_arc(cur, next))
            return -EINVAL;
        if (cur == 4 && next == 1) {
            /* the driver checks what it was given; nothing at all is "nothing loaded" */
            if (old && old->buf->len &&
                (!fk.mig_blob || old->buf->len != fk.mig_blob->len ||
                 memcmp(old->buf->data, fk.mig_blob->data, old->buf->len) != 0))
                return -EINVAL;
        }
        ms->data_fd = -1;
        if (next == 3 && (cur == 6 || cur == 7) && old) {
            /* the pre-copy stream goes on: the rest of the blob, then EOF */
            old->precopy = false;
            if (fk.mig_blob)
                old->len = fk.mig_blob->len;
        } else if (next == 3 || next == 4 || ((next == 6 || next == 7) && cur != 6 && cur != 7)) {
            ms->data_fd = new_stream(o, next == 6 || next == 7, next == 4);
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
    guint64 *p = (guint64 *)((guint8 *)arg + 8); /* vfio_precopy_info: initial, dirty */
    if (request != VFIO_MIG_GET_PRECOPY_INFO || !st->precopy)
        return -EINVAL;
    p[0] = st->len - st->pos;
    p[1] = 0;
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

