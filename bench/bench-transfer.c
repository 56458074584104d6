/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark: a transfer handover of N registered fds (real eventfds, real kernel)
 * from this process to a forked child over a socketpair, through the library, next
 * to the floor: the same fds sent raw (one sendmsg per 250, recvmsg in the child)
 * plus one message each way. The time runs from vfiocpr_transfer() until it
 * returned committed, i.e. the child received, validated every fd's identity,
 * claimed each with vfiocpr_fd_find() and committed from vfiocpr_finish(). 1, 100
 * and 10,000 fds; median of 5.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "private.h"

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void die(GError *err, const char *what)
{
    fprintf(stderr, "bench-transfer: %s: %s\n", what, err ? err->message : g_strerror(errno));
    exit(1);
}

typedef struct {
    int sock;
    unsigned n;
    double t_done;
} side;

static gpointer new_side(gpointer p)
{
    side *s = p;
    GError *err = NULL;
    vfiocpr *ctx = NULL;

    if (vfiocpr_new_incoming(s->sock, 10000, 0, &ctx, &err) < 0)
        die(err, "new_incoming");
    for (unsigned i = 0; i < s->n; i++)
        if (vfiocpr_fd_find(ctx, "vec", i, VFIOCPR_FD_EVENTFD, &err) < 0)
            die(err, "find");
    if (vfiocpr_finish(ctx, NULL, &err) < 0)
        die(err, "finish");
    vfiocpr_unref(ctx);
    return NULL;
}

static double lib_run(unsigned n)
{
    g_autoptr(vfiocpr) ctx = NULL;
    GError *err = NULL;
    int sv[2], *fds = g_new(int, n);
    side s = { .n = n };
    pid_t pid;
    double t0;

    if (vfiocpr_new(0, &ctx, &err) < 0)
        die(err, "new");
    for (unsigned i = 0; i < n; i++) {
        fds[i] = eventfd(0, EFD_CLOEXEC);
        if (fds[i] < 0 || vfiocpr_fd_save(ctx, "vec", i, fds[i], VFIOCPR_FD_EVENTFD, &err) < 0)
            die(err, "save");
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die(NULL, "socketpair");
    s.sock = sv[1];
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        /* a process started on its own has none of the old one's fds */
        for (unsigned i = 0; i < n; i++)
            close(fds[i]);
        close(sv[0]);
        new_side(&s);
        _exit(0);
    }
    close(sv[1]);
    t0 = now_us();
    if (vfiocpr_transfer(ctx, sv[0], 10000, 0, &err) < 0)
        die(err, "transfer");
    s.t_done = now_us();
    waitpid(pid, NULL, 0);
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
    close(sv[0]);
    g_free(fds);
    return s.t_done - t0;
}

static gpointer raw_new(gpointer p)
{
    side *s = p;
    char ctl[CMSG_SPACE(250 * sizeof(int))], b[16];
    unsigned got = 0;

    while (got < s->n) {
        struct iovec iov = { b, sizeof(b) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                             .msg_controllen = sizeof(ctl) };
        if (recvmsg(s->sock, &mh, MSG_CMSG_CLOEXEC) <= 0)
            die(NULL, "raw recvmsg");
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            unsigned k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (unsigned i = 0; i < k; i++)
                close(((int *)CMSG_DATA(c))[i]);
            got += k;
        }
    }
    if (write(s->sock, "c", 1) != 1 || read(s->sock, b, 1) != 1) /* commit, release */
        die(NULL, "raw commit");
    return NULL;
}

static double raw_run(unsigned n)
{
    int sv[2], *fds = g_new(int, n);
    side s = { .n = n };
    char b;
    pid_t pid;
    double t0;

    for (unsigned i = 0; i < n; i++)
        fds[i] = eventfd(0, EFD_CLOEXEC);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        die(NULL, "socketpair");
    s.sock = sv[1];
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        for (unsigned i = 0; i < n; i++)
            close(fds[i]);
        close(sv[0]);
        raw_new(&s);
        _exit(0);
    }
    close(sv[1]);
    t0 = now_us();
    for (unsigned at = 0; at < n; at += 250) {
        unsigned k = MIN(250, n - at);
        char ctl[CMSG_SPACE(250 * sizeof(int))] = { 0 };
        struct iovec iov = { (void *)"f", 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                             .msg_controllen = CMSG_SPACE(k * sizeof(int)) };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(k * sizeof(int));
        memcpy(CMSG_DATA(c), fds + at, k * sizeof(int));
        if (sendmsg(sv[0], &mh, 0) < 0)
            die(NULL, "raw sendmsg");
    }
    if (read(sv[0], &b, 1) != 1 || write(sv[0], "r", 1) != 1)
        die(NULL, "raw release");
    s.t_done = now_us();
    waitpid(pid, NULL, 0);
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
    close(sv[0]);
    g_free(fds);
    return s.t_done - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    const unsigned sizes[] = { 1, 100, 10000 };
    struct rlimit nofile;

    /* 10,000 fds on each side */
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < 40000) {
        nofile.rlim_cur = MIN(nofile.rlim_max, 40000);
        setrlimit(RLIMIT_NOFILE, &nofile);
    }

    printf("libvfiocpr %s: transfer handover of N eventfds to a child process, library vs "
           "raw sendmsg floor (real kernel)\nmedian of 5 runs; times in microseconds\n",
           PACKAGE_VERSION);
    printf("%8s %12s %12s %8s %14s\n", "fds", "library", "raw floor", "ratio", "library/fd");
    for (gsize s = 0; s < G_N_ELEMENTS(sizes); s++) {
        double l[5], r[5];
        for (int k = 0; k < 5; k++) {
            l[k] = lib_run(sizes[s]);
            r[k] = raw_run(sizes[s]);
        }
        qsort(l, 5, sizeof(double), cmp_double);
        qsort(r, 5, sizeof(double), cmp_double);
        printf("%8u %12.1f %12.1f %8.2f %14.2f\n", sizes[s], l[2], r[2], l[2] / r[2],
               l[2] / sizes[s]);
    }
    return 0;
}
