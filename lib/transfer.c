/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The wire protocol of a transfer handover, over a connected UNIX socket. Every
 * message is a 16-byte header (magic, type, number of fds riding with it, payload
 * length) and at most VFIOCPR_XFER_MAX_PAYLOAD bytes; fds travel as SCM_RIGHTS on
 * the header, at most VFIOCPR_XFER_BATCH a message (the kernel's SCM_MAX_FD is
 * 253). Everything received is untrusted: sizes, counts and order are checked and
 * a violation closes whatever fds came with it.
 *
 *   old -> new  OFFER    fds: the sealed state memfd; payload: u32 fds that follow
 *   old -> new  FDS      fds: the next batch; payload: u32 index of the first
 *   new -> old  STEP     payload: the step the new process reached (text)
 *   new -> old  REFUSE   payload: why it will not take the devices (text)
 *   new -> old  COMMIT   the new process takes the devices
 *   old -> new  RELEASED the old process let go: the new one owns them
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "private.h"

#define XFER_MAGIC 0x54504356u /* "VCPT" */

typedef struct {
    guint32 magic;
    guint16 type;
    guint16 n_fds;
    guint32 len;
    guint32 reserved;
} xfer_hdr;
G_STATIC_ASSERT(sizeof(xfer_hdr) == 16);

static const char *const type_names[] = { "?", "OFFER", "FDS", "STEP", "REFUSE", "COMMIT",
                                          "RELEASED" };

const char *vfiocpr_xfer_type_name(guint type)
{
    return type < G_N_ELEMENTS(type_names) ? type_names[type] : "?";
}

int vfiocpr_xfer_check_peer(int sock, unsigned flags, guint32 *peer_pid, GError **error)
{
    guint32 pid = 0, uid = 0, me = 0;
    int r = VK(peer_cred, sock, &pid, &uid, &me);

    if (r < 0)
        return vfiocpr_fail(error, r == -ENOPROTOOPT || r == -EOPNOTSUPP ? -ENOTSOCK : r,
                            "transfer: socket %d: SO_PEERCRED (not a connected UNIX socket?)",
                            sock);
    if (uid != me && !(flags & VFIOCPR_TRANSFER_ANY_UID))
        return vfiocpr_fail(error, EPERM, "transfer: the peer on socket %d (pid %u) runs as uid "
                            "%u, not %u like this process (VFIOCPR_TRANSFER_ANY_UID allows it)",
                            sock, pid, uid, me);
    if (peer_pid)
        *peer_pid = pid;
    return 0;
}

static int send_one(int sock, guint type, const void *payload, guint32 len, const int *fds,
                    guint n_fds, GError **error)
{
    guint8 buf[sizeof(xfer_hdr) + VFIOCPR_XFER_MAX_PAYLOAD];
    xfer_hdr h = { .magic = GUINT32_TO_LE(XFER_MAGIC), .type = GUINT16_TO_LE(type),
                   .n_fds = GUINT16_TO_LE(n_fds), .len = GUINT32_TO_LE(len) };
    gsize total = sizeof(h) + len, done = 0;

    g_assert(len <= VFIOCPR_XFER_MAX_PAYLOAD && n_fds <= VFIOCPR_XFER_BATCH);
    memcpy(buf, &h, sizeof(h));
    if (len)
        memcpy(buf + sizeof(h), payload, len);
    while (done < total) {
        /* the fds ride on the first byte of the message */
        ssize_t r = VK(send_msg, sock, buf + done, total - done, done ? NULL : fds,
                       done ? 0 : n_fds);
        if (r < 0)
            return vfiocpr_fail(error, (int)r, "transfer: sending %s (%u fds)%s",
                                vfiocpr_xfer_type_name(type), n_fds,
                                r == -EPIPE || r == -ECONNRESET ? ": the peer is gone" : "");
        done += (gsize)r;
    }
    return 0;
}

int vfiocpr_xfer_send(int sock, guint type, const char *text, GError **error)
{
    gsize len = text ? MIN(strlen(text), VFIOCPR_XFER_MAX_PAYLOAD) : 0;
    return send_one(sock, type, text, (guint32)len, NULL, 0, error);
}

int vfiocpr_xfer_send_state(int sock, int state_fd, const int *fds, guint n, GError **error)
{
    guint32 le = GUINT32_TO_LE(n);
    int r = send_one(sock, VFIOCPR_XFER_OFFER, &le, sizeof(le), &state_fd, 1, error);

    for (guint at = 0; r == 0 && at < n; at += VFIOCPR_XFER_BATCH) {
        guint k = MIN(VFIOCPR_XFER_BATCH, n - at);
        le = GUINT32_TO_LE(at);
        r = send_one(sock, VFIOCPR_XFER_FDS, &le, sizeof(le), fds + at, k, error);
    }
    return r;
}

static void close_all(const int *fds, guint n)
{
    for (guint i = 0; i < n; i++)
        VK(close, fds[i]);
}

/* Reads exactly len bytes (a stream socket may split a message). */
static int read_exact(int sock, void *buf, gsize len, gint64 deadline, int *fds, guint max_fds,
                      guint *n_fds, GError **error)
{
    gsize done = 0;

    if (n_fds)
        *n_fds = 0;
    while (done < len) {
        unsigned got = 0;
        gint64 left = deadline - VK(monotonic_ms);
        ssize_t r;

        r = VK(wait_readable, sock, (int)CLAMP(left, 0, G_MAXINT));
        if (r == 0)
            return vfiocpr_fail(error, ETIMEDOUT, "transfer: no message from the peer in time");
        if (r < 0)
            return vfiocpr_fail(error, (int)r, "transfer: waiting on the socket");
        r = VK(recv_msg, sock, (guint8 *)buf + done, len - done, done ? NULL : fds,
               done ? 0 : max_fds, &got);
        if (r == -EMSGSIZE)
            return vfiocpr_fail(error, EPROTO, "transfer: the peer sent more than %u fds in one "
                                "message", max_fds);
        if (r == -EMFILE)
            return vfiocpr_fail(error, EMFILE, "transfer: the fds received do not fit under "
                                "this process's RLIMIT_NOFILE (raise it)");
        if (r < 0)
            return vfiocpr_fail(error, (int)r, "transfer: receiving");
        if (done && got) { /* fds only on the first byte: the model never yields this */
            close_all(fds, got);
            return vfiocpr_fail(error, EPROTO, "transfer: fds in the middle of a message");
        }
        if (!done && n_fds)
            *n_fds = got;
        if (r == 0) {
            if (n_fds)
                close_all(fds, *n_fds);
            return vfiocpr_fail(error, EPIPE, "transfer: the peer closed the connection%s "
                                "(end of file)", done ? " in the middle of a message" : "");
        }
        done += (gsize)r;
    }
    return 0;
}

/* One message: its type, its payload (NUL-terminated, *len bytes) and its fds. */
static int recv_one(int sock, gint64 deadline, guint *type, guint8 *payload, guint32 *len,
                    int *fds, guint *n_fds, GError **error)
{
    xfer_hdr h;
    int r = read_exact(sock, &h, sizeof(h), deadline, fds, VFIOCPR_XFER_BATCH, n_fds, error);

    if (r < 0)
        return r;
    h.magic = GUINT32_FROM_LE(h.magic);
    h.type = GUINT16_FROM_LE(h.type);
    h.n_fds = GUINT16_FROM_LE(h.n_fds);
    h.len = GUINT32_FROM_LE(h.len);
    if (h.magic != XFER_MAGIC || h.type < VFIOCPR_XFER_OFFER || h.type > VFIOCPR_XFER_RELEASED ||
        h.len > VFIOCPR_XFER_MAX_PAYLOAD || h.n_fds != *n_fds || h.reserved) {
        close_all(fds, *n_fds);
        *n_fds = 0;
        return vfiocpr_fail(error, EPROTO, "transfer: bad message from the peer (magic 0x%08x, "
                            "type %u, %u bytes, %u fds announced, %u came)", h.magic, h.type,
                            h.len, h.n_fds, *n_fds);
    }
    r = read_exact(sock, payload, h.len, deadline, NULL, 0, NULL, error);
    if (r < 0) {
        close_all(fds, *n_fds);
        *n_fds = 0;
        return r;
    }
    payload[h.len] = 0;
    *type = h.type;
    *len = h.len;
    return 0;
}

int vfiocpr_xfer_recv(int sock, gint64 deadline, guint *type, char **text, GError **error)
{
    guint8 payload[VFIOCPR_XFER_MAX_PAYLOAD + 1];
    int fds[VFIOCPR_XFER_BATCH];
    guint n_fds = 0;
    guint32 len;
    int r = recv_one(sock, deadline, type, payload, &len, fds, &n_fds, error);

    if (r < 0)
        return r;
    if (n_fds || *type == VFIOCPR_XFER_OFFER || *type == VFIOCPR_XFER_FDS) {
        close_all(fds, n_fds);
        return vfiocpr_fail(error, EPROTO, "transfer: unexpected %s message from the peer",
                            vfiocpr_xfer_type_name(*type));
    }
    if (text)
        *text = g_utf8_make_valid((const char *)payload, len);
    return 0;
}

int vfiocpr_xfer_recv_state(int sock, gint64 deadline, int *state_fd, GArray **fds_out,
                            GError **error)
{
    guint8 payload[VFIOCPR_XFER_MAX_PAYLOAD + 1];
    int batch[VFIOCPR_XFER_BATCH];
    g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));
    guint n_fds = 0, type = 0;
    guint32 len, total, first;
    int r;

    r = recv_one(sock, deadline, &type, payload, &len, batch, &n_fds, error);
    if (r < 0)
        return r;
    if (type != VFIOCPR_XFER_OFFER || n_fds != 1 || len != sizeof(guint32)) {
        close_all(batch, n_fds);
        return vfiocpr_fail(error, EPROTO, "transfer: expected OFFER with the state memfd, got "
                            "%s with %u fds and %u bytes", vfiocpr_xfer_type_name(type), n_fds,
                            len);
    }
    memcpy(&total, payload, sizeof(total));
    total = GUINT32_FROM_LE(total);
    if (total > VFIOCPR_XFER_MAX_FDS) {
        VK(close, batch[0]);
        return vfiocpr_fail(error, EPROTO, "transfer: the peer announces %u fds, more than the "
                            "%u accepted", total, VFIOCPR_XFER_MAX_FDS);
    }
    *state_fd = batch[0];
    while (fds->len < total) {
        r = recv_one(sock, deadline, &type, payload, &len, batch, &n_fds, error);
        if (r == 0 && (type != VFIOCPR_XFER_FDS || len != sizeof(guint32) || !n_fds ||
                       n_fds > total - fds->len)) {
            close_all(batch, n_fds);
            r = vfiocpr_fail(error, EPROTO, "transfer: expected FDS with at most %u fds, got %s "
                             "with %u fds", total - fds->len, vfiocpr_xfer_type_name(type),
                             n_fds);
        }
        if (r == 0) {
            memcpy(&first, payload, sizeof(first));
            if (GUINT32_FROM_LE(first) != fds->len) {
                close_all(batch, n_fds);
                r = vfiocpr_fail(error, EPROTO, "transfer: FDS batch starts at %u, expected %u",
                                 GUINT32_FROM_LE(first), fds->len);
            }
        }
        if (r < 0) {
            close_all((const int *)(void *)fds->data, fds->len);
            VK(close, *state_fd);
            *state_fd = -1;
            return r;
        }
        g_array_append_vals(fds, batch, n_fds);
    }
    *fds_out = g_steal_pointer(&fds);
    return 0;
}

const vfiocpr_decl vfiocpr_transfer_uses[] = {
    VFIOCPR_OP(send_msg, 0),      VFIOCPR_OP(recv_msg, 0),     VFIOCPR_OP(peer_cred, 0),
    VFIOCPR_OP(wait_readable, 0), VFIOCPR_OP(monotonic_ms, 0), VFIOCPR_OP(close, 0),
    VFIOCPR_DECL_END,
};
