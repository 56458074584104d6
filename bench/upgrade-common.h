/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What bench/floor-upgrade.c and bench/lib-upgrade.c share, so that the two do the
 * same upgrade and are timed and checked the same way: plain libc (the floor links
 * neither GLib nor libvfiocpr), the options, the edu device, the timing page that
 * crosses the exec, the post-upgrade check and the result line.
 *
 * Timing: a small memfd at a fixed fd number (BENCH_TIMES_FD), opened without
 * FD_CLOEXEC and mapped MAP_SHARED by every image, holds CLOCK_MONOTONIC stamps in
 * nanoseconds. It is the benchmark's, not the VMM's: neither program records it in
 * its state and each image maps it first thing in main() (a store per stamp, no
 * system call inside the blackout).
 */
#ifndef BENCH_UPGRADE_COMMON_H
#define BENCH_UPGRADE_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../tests/guest/pci-find.h"

#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_RUN 0x1
#define EDU_DMA_TO_RAM 0x2
#define EDU_BUF 0x40000
/* QEMU's edu refuses (and aborts the machine on) a DMA ending at its buffer's end */
#define XFER 2048u
/* edu's DMA mask is 28 bits: every IOVA stays below 256 MiB */
#define IOVA0 0x100000ull
#define IOVA_LIMIT (1ull << 28)

#define BENCH_TIMES_FD 900
enum {
    T_REQUEST,  /* the upgrade is requested: the blackout starts */
    T_EXECVE,   /* execve() is called */
    T_MAIN,     /* the new image's main() runs */
    T_P1,       /* program-specific phase ends (see each program) */
    T_P2,
    T_P3,
    T_P4,
    T_USABLE,   /* the device is usable again: the blackout ends */
    T_COUNT
};
/* lib-upgrade --trace: the library's calls into its kernel seam, consecutive calls
 * of one kind (and ioctl request) folded into one entry */
struct bench_trace {
    uint64_t first, last; /* start of the first call, end of the last */
    uint32_t count;
    uint32_t req;
    char op[16];
};
#define BENCH_TRACE_MAX 4096
struct bench_times {
    uint64_t t[T_COUNT];
    uint32_t n_trace, trace_lost;
    struct bench_trace trace[BENCH_TRACE_MAX];
};
#define BENCH_TIMES_SIZE ((sizeof(struct bench_times) + 4095) & ~(size_t)4095)

typedef struct {
    const char *bdf;
    const char *backend; /* "type1" or "iommufd" */
    unsigned mappings;
    uint64_t page;
    unsigned upgrades;
    bool negative; /* the check looks where nothing was mapped: it must fail */
    bool trace;    /* lib-upgrade: print the library's seam calls of each upgrade */
} bench_opts;

static inline uint64_t bench_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void __attribute__((noreturn, format(printf, 1, 2))) bench_die(const char *fmt, ...);
#include <stdarg.h>
static void bench_die(const char *fmt, ...)
{
    va_list ap;
    int e = errno;
    fprintf(stdout, "upgrade-bench: error: ");
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fprintf(stdout, " (errno %d %s)\n", e, strerror(e));
    fflush(stdout);
    exit(1);
}

/* Creates (cold start) or maps (new image) the timing page. */
static inline struct bench_times *bench_times_map(bool create)
{
    void *p;
    if (create) {
        int fd = memfd_create("bench-times", 0);
        if (fd < 0 || ftruncate(fd, BENCH_TIMES_SIZE) < 0 || dup2(fd, BENCH_TIMES_FD) < 0)
            bench_die("timing memfd");
        close(fd);
    }
    p = mmap(NULL, BENCH_TIMES_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, BENCH_TIMES_FD, 0);
    if (p == MAP_FAILED)
        bench_die("mmap of the timing memfd (fd %d)", BENCH_TIMES_FD);
    return p;
}

static inline int bench_find_edu(char *bdf, size_t len)
{
    return pci_find(0x1234, 0x11e8, bdf, len);
}

static void bench_usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--device BDF] [--backend type1|iommufd] [--mappings N] "
            "[--page-size 4k|2m] [--upgrades K] [--negative] [--trace]\n", prog);
    exit(2);
}

/* Cold-start options; the new image gets what it needs from its state. */
static inline void bench_parse(int argc, char **argv, bench_opts *o, char *bdf, size_t len)
{
    o->bdf = NULL;
    o->backend = "type1";
    o->mappings = 1;
    o->page = 4096;
    o->upgrades = 20;
    o->negative = false;
    o->trace = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--device") && v)
            o->bdf = argv[++i];
        else if (!strcmp(a, "--backend") && v && (!strcmp(v, "type1") || !strcmp(v, "iommufd")))
            o->backend = argv[++i];
        else if (!strcmp(a, "--mappings") && v)
            o->mappings = (unsigned)strtoul(argv[++i], NULL, 0);
        else if (!strcmp(a, "--page-size") && v && (!strcmp(v, "4k") || !strcmp(v, "2m")))
            o->page = !strcmp(argv[++i], "2m") ? 2u << 20 : 4096;
        else if (!strcmp(a, "--upgrades") && v)
            o->upgrades = (unsigned)strtoul(argv[++i], NULL, 0);
        else if (!strcmp(a, "--negative"))
            o->negative = true;
        else if (!strcmp(a, "--trace"))
            o->trace = true;
        else
            bench_usage(argv[0]);
    }
    if (!o->mappings || !o->upgrades ||
        IOVA0 + (uint64_t)o->mappings * o->page > IOVA_LIMIT)
        bench_usage(argv[0]);
    if (!o->bdf) {
        if (bench_find_edu(bdf, len) < 0)
            bench_die("no edu device (1234:11e8) in /sys/bus/pci/devices");
        o->bdf = bdf;
    }
}

static inline uint32_t rd32(volatile uint32_t *bar, uint32_t off)
{
    return bar[off / 4];
}
static inline void wr32(volatile uint32_t *bar, uint32_t off, uint32_t v)
{
    bar[off / 4] = v;
}

static inline bool bench_edu_dma(volatile uint32_t *bar, uint64_t src, uint64_t dst,
                                 uint32_t cmd)
{
    uint64_t t0 = bench_now_ns();
    wr32(bar, EDU_DMA_SRC, (uint32_t)src);
    wr32(bar, EDU_DMA_DST, (uint32_t)dst);
    wr32(bar, EDU_DMA_COUNT, XFER);
    wr32(bar, EDU_DMA_CMD, cmd | EDU_DMA_RUN);
    while (rd32(bar, EDU_DMA_CMD) & EDU_DMA_RUN) {
        if (bench_now_ns() - t0 > 10000000000ull)
            return false;
        usleep(200);
    }
    return true;
}

/* After the blackout, outside it: is the device usable through what the new image
 * rebuilt? A pattern written through the new image's mapping of the last mapping's
 * page goes to the device and back into the first mapping's page, and an MSI raised
 * now arrives on the inherited eventfd. The negative control DMAs from and to an
 * IOVA past the last mapping and waits on an eventfd the device does not know: both
 * must fail. Returns a description of what failed, NULL when all is well. */
static inline const char *bench_check(volatile uint32_t *bar, uint8_t *ram, const bench_opts *o,
                                      int irq_fd, unsigned iter, char *buf, size_t len)
{
    uint64_t last = (uint64_t)(o->mappings - 1) * o->page;
    uint64_t src = IOVA0 + last, dst = IOVA0;
    uint8_t *s = ram + last, *d = ram + (o->mappings > 1 ? 0 : XFER);
    bool dma_ok, irq_ok;
    uint64_t count = 0;
    struct pollfd p;
    int fd = irq_fd, neg_fd = -1;

    if (o->mappings == 1)
        dst = IOVA0 + XFER; /* one page: the second half of it */
    if (o->negative) {
        src = dst = IOVA0 + (uint64_t)o->mappings * o->page + 0x10000;
        neg_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        fd = neg_fd;
    }
    for (unsigned i = 0; i < XFER; i++)
        s[i] = (uint8_t)(i * 13 + iter * 7 + 1);
    memset(d, 0, XFER);
    dma_ok = bench_edu_dma(bar, src, EDU_BUF, 0) &&
             bench_edu_dma(bar, EDU_BUF, dst, EDU_DMA_TO_RAM) && !memcmp(s, d, XFER);

    wr32(bar, EDU_IRQ_RAISE, 1);
    p.fd = fd;
    p.events = POLLIN;
    if (poll(&p, 1, 2000) == 1 && read(fd, &count, sizeof(count)) != sizeof(count))
        count = 0;
    wr32(bar, EDU_IRQ_ACK, rd32(bar, EDU_IRQ_STATUS));
    irq_ok = count >= 1;
    if (neg_fd >= 0) {
        uint64_t drain;
        close(neg_fd);
        /* the real eventfd got it: drain it so the next upgrade starts clean */
        usleep(10000);
        if (read(irq_fd, &drain, sizeof(drain)) < 0)
            drain = 0;
    }
    if (dma_ok && irq_ok)
        return NULL;
    snprintf(buf, len, "%s%s%s", dma_ok ? "" : "DMA RAM->edu->RAM mismatch",
             !dma_ok && !irq_ok ? ", " : "", irq_ok ? "" : "no MSI on the eventfd");
    return buf;
}

static inline double us(uint64_t a, uint64_t b)
{
    return (double)(b - a) / 1000.0;
}

/* One line per upgrade: bench-upgrade-guest.sh reads it. p1..p4 name the
 * program's own restore phases (NULL: not printed). */
static inline void bench_report(const char *prog, const bench_opts *o, unsigned iter,
                                const struct bench_times *bt, const char *fail,
                                const char *const pn[4])
{
    printf("upgrade-bench: %s %s mappings %u page %" PRIu64 " upgrade %u/%u %s blackout %.1f "
           "prep %.1f exec %.1f restore %.1f", prog, o->backend, o->mappings, o->page, iter,
           o->upgrades, fail ? "FAILED" : "ok", us(bt->t[T_REQUEST], bt->t[T_USABLE]),
           us(bt->t[T_REQUEST], bt->t[T_EXECVE]), us(bt->t[T_EXECVE], bt->t[T_MAIN]),
           us(bt->t[T_MAIN], bt->t[T_USABLE]));
    uint64_t prev = bt->t[T_MAIN];
    for (int i = 0; i < 4; i++) {
        if (!pn[i])
            continue;
        printf(" %s %.1f", pn[i], us(prev, bt->t[T_P1 + i]));
        prev = bt->t[T_P1 + i];
    }
    printf(" %s %.1f", "rest", us(prev, bt->t[T_USABLE]));
    if (fail)
        printf(" check: %s", fail);
    printf("\n");
    fflush(stdout);
}

#endif
