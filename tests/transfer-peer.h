/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A transfer peer written from the protocol description in lib/transfer.c, with raw
 * syscalls (never the library's kernel seam): the other side for tests of one side,
 * a source of malformed messages, and a way to capture what an old process sends. */
#ifndef TRANSFER_PEER_H
#define TRANSFER_PEER_H

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "private.h"

typedef struct {
    guint32 magic;
    guint16 type;
    guint16 n_fds;
    guint32 len;
    guint32 reserved;
} peer_hdr;
#define PEER_MAGIC 0x54504356u

/* One raw message: header + payload, fds on it. */
static inline int peer_send(int sock, guint type, const void *payload, guint32 len, const int *fds,
                            unsigned n_fds)
{
    guint8 buf[sizeof(peer_hdr) + 8192];
    peer_hdr h = { PEER_MAGIC, (guint16)type, (guint16)n_fds, len, 0 };
    struct iovec iov = { buf, sizeof(h) + len };
    char ctl[CMSG_SPACE(300 * sizeof(int))];
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    g_assert(len <= 8192 && n_fds <= 300);
    memcpy(buf, &h, sizeof(h));
    if (len)
        memcpy(buf + sizeof(h), payload, len);
    if (n_fds) {
        struct cmsghdr *c;
        memset(ctl, 0, sizeof(ctl));
        mh.msg_control = ctl;
        mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
    }
    return sendmsg(sock, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static inline int peer_send_text(int sock, guint type, const char *text)
{
    return peer_send(sock, type, text, text ? (guint32)strlen(text) : 0, NULL, 0);
}

static inline bool peer_readable(int sock, int timeout_ms)
{
    struct pollfd p = { .fd = sock, .events = POLLIN };
    return poll(&p, 1, timeout_ms) > 0;
}

/* One message (type, payload into buf, fds into fds); -EPIPE on EOF, -ETIMEDOUT. */
static inline int peer_recv(int sock, guint *type, guint8 *buf, guint32 *len, int *fds,
                            unsigned *n_fds, int timeout_ms)
{
    peer_hdr h;
    char ctl[CMSG_SPACE(300 * sizeof(int))];
    struct iovec iov = { &h, sizeof(h) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                         .msg_controllen = sizeof(ctl) };
    ssize_t r;
    gsize got = 0;

    *n_fds = 0;
    if (!peer_readable(sock, timeout_ms))
        return -ETIMEDOUT;
    r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    if (r <= 0)
        return r < 0 ? -errno : -EPIPE;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_type == SCM_RIGHTS) {
            unsigned n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(fds + *n_fds, CMSG_DATA(c), n * sizeof(int));
            *n_fds += n;
        }
    while ((gsize)r < sizeof(h)) { /* a stream may split the header */
        ssize_t k = read(sock, (guint8 *)&h + r, sizeof(h) - r);
        if (k <= 0)
            return -EPIPE;
        r += k;
    }
    while (got < h.len) {
        ssize_t k = read(sock, buf + got, h.len - got);
        if (k <= 0)
            return -EPIPE;
        got += (gsize)k;
    }
    buf[h.len] = 0;
    *type = h.type;
    *len = h.len;
    return 0;
}

/* What an old process sent: the state memfd and every fd, in order. */
typedef struct {
    int state_fd;
    GArray *fds;
} peer_offer;

static inline int peer_recv_offer(int sock, peer_offer *o, int timeout_ms)
{
    guint8 buf[8193];
    int fds[300];
    guint type;
    guint32 len, total = 0;
    unsigned n;
    int r = peer_recv(sock, &type, buf, &len, fds, &n, timeout_ms);

    o->state_fd = -1;
    o->fds = g_array_new(FALSE, FALSE, sizeof(int));
    if (r < 0)
        return r;
    g_assert_cmpuint(type, ==, VFIOCPR_XFER_OFFER);
    g_assert_cmpuint(n, ==, 1);
    memcpy(&total, buf, 4);
    o->state_fd = fds[0];
    while (o->fds->len < total) {
        r = peer_recv(sock, &type, buf, &len, fds, &n, timeout_ms);
        if (r < 0)
            return r;
        g_assert_cmpuint(type, ==, VFIOCPR_XFER_FDS);
        g_array_append_vals(o->fds, fds, n);
    }
    return 0;
}

static inline void peer_offer_close(peer_offer *o)
{
    if (o->state_fd >= 0)
        close(o->state_fd);
    for (guint i = 0; o->fds && i < o->fds->len; i++)
        close(g_array_index(o->fds, int, i));
    if (o->fds)
        g_array_unref(o->fds);
    o->fds = NULL;
    o->state_fd = -1;
}

/* Sends o as an old process would (state memfd, then batches); -errno when the
 * other side went away. */
static inline int peer_send_offer(int sock, int state_fd, const int *fds, guint n)
{
    guint32 le = n;
    int r = peer_send(sock, VFIOCPR_XFER_OFFER, &le, 4, &state_fd, 1);
    for (guint at = 0; r == 0 && at < n; at += VFIOCPR_XFER_BATCH) {
        guint k = MIN(VFIOCPR_XFER_BATCH, n - at);
        le = at;
        r = peer_send(sock, VFIOCPR_XFER_FDS, &le, 4, fds + at, k);
    }
    return r;
}

#endif
