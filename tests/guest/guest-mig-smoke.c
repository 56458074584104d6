// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * guest-mig-smoke: raw VFIO migration v2 smoke test for the guest test bed.
 *
 * Plain libc and ioctls, no libvfiocpr. Runs inside the QEMU guest
 * (run-guest.sh --kernel 6.12 --device mtty) against the mtty sample driver's
 * mdev (an emulated IOMMU group under type1) and prints TAP:
 *   - container, group, type1v2; VFIO_CHECK_EXTENSION(VFIO_UPDATE_VADDR) is 0
 *     with an mdev in the container and UNMAP_DMA(VADDR|ALL) fails with EBUSY;
 *   - VFIO_DEVICE_FEATURE GET MIGRATION (mtty: STOP_COPY|P2P|PRE_COPY = 0x7),
 *     GET MIG_DEVICE_STATE, GET MIG_DATA_SIZE;
 *   - stop-and-copy: RUNNING -> RUNNING_P2P -> STOP -> STOP_COPY (data_fd, read
 *     to EOF) -> STOP -> RESUMING (new data_fd, write the blob) -> STOP ->
 *     RUNNING_P2P -> RUNNING, one arc per VFIO_DEVICE_FEATURE SET; the UART
 *     scratch registers of both ports, changed after the save, come back;
 *   - pre-copy: RUNNING -> PRE_COPY (data_fd), VFIO_MIG_GET_PRECOPY_INFO, read
 *     to the temporary end of stream, PRE_COPY -> PRE_COPY_P2P -> STOP_COPY
 *     (same data_fd) and read to EOF, STOP, then RUNNING in one request;
 *   - refusals: SET to ERROR or to no state at all, and a truncated blob in
 *     RESUMING (the device stays in RESUMING until VFIO_DEVICE_RESET brings it
 *     to RUNNING). The forbidden arcs STOP_COPY -> PRE_COPY[_P2P] are NOT
 *     requested: they hang 6.12.95 (see below).
 *
 * Usage: guest-mig-smoke [UUID]   (default: the first mdev of an mtty-* type)
 * Build: gcc -O2 -Wall -Wextra -o guest-mig-smoke guest-mig-smoke.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/vfio.h>

#include "vfio-compat.h"

#define UART_SCR 7 /* 16550 scratch register: mtty keeps it, per port, in its migration data */
#define BLOB_MAX 65536

static unsigned test_no;
static unsigned failures;

static bool tap(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool tap(bool ok, const char *fmt, ...)
{
    va_list ap;

    printf("%s %u - ", ok ? "ok" : "not ok", ++test_no);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (!ok)
        failures++;
    return ok;
}

static void __attribute__((noreturn)) bail(const char *what)
{
    printf("Bail out! %s\n", what);
    fflush(stdout);
    exit(1);
}

/* "r=0" or "r=-1 EBUSY (Device or resource busy)": the errno of a failed call */
static const char *res(int r, int err)
{
    static char buf[8][96];
    static unsigned slot;
    char *b = buf[slot++ % 8];

    if (r >= 0)
        snprintf(b, sizeof(buf[0]), "r=%d", r);
    else
        snprintf(b, sizeof(buf[0]), "r=%d %s (%s)", r, strerrorname_np(err) ? strerrorname_np(err) : "?",
                 strerror(err));
    return b;
}

static const char *state_name(uint32_t s)
{
    static const char *const names[] = { "ERROR",    "STOP",        "RUNNING",  "STOP_COPY",
                                         "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P" };

    return s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* ------------------------------------------------------------------ sysfs */

/* The first mdev whose type is mtty-*: its UUID into uuid. */
static int find_mtty(char *uuid, size_t len)
{
    DIR *d = opendir("/sys/bus/mdev/devices");
    struct dirent *e;
    int found = -1;

    if (!d)
        return -1;
    while ((e = readdir(d))) {
        char path[PATH_MAX], target[PATH_MAX];
        const char *type;
        ssize_t n;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/mdev_type", e->d_name);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
            continue;
        target[n] = '\0';
        type = strrchr(target, '/');
        type = type ? type + 1 : target;
        if (strncmp(type, "mtty-", 5) == 0) {
            snprintf(uuid, len, "%s", e->d_name);
            found = 0;
            break;
        }
    }
    closedir(d);
    return found;
}

static int iommu_group_of(const char *uuid)
{
    char path[PATH_MAX], target[PATH_MAX];
    ssize_t n;
    const char *slash;

    snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/iommu_group", uuid);
    n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return -1;
    target[n] = '\0';
    slash = strrchr(target, '/');
    return atoi(slash ? slash + 1 : target);
}

static void mdev_type_of(const char *uuid, char *out, size_t len)
{
    char path[PATH_MAX], target[PATH_MAX];
    ssize_t n;
    const char *slash;

    snprintf(path, sizeof(path), "/sys/bus/mdev/devices/%s/mdev_type", uuid);
    n = readlink(path, target, sizeof(target) - 1);
    if (n < 0) {
        snprintf(out, len, "?");
        return;
    }
    target[n] = '\0';
    slash = strrchr(target, '/');
    snprintf(out, len, "%s", slash ? slash + 1 : target);
}

/* ------------------------------------------------------------------ migration uAPI */

/* VFIO_DEVICE_FEATURE with a payload of len bytes; the payload is copied back. */
static int device_feature(int dev, uint32_t flags, void *payload, size_t len)
{
    union {
        struct vfio_device_feature f;
        unsigned char raw[sizeof(struct vfio_device_feature) + 64];
    } buf;
    int r;

    if (len > 64)
        return errno = EINVAL, -1;
    memset(&buf, 0, sizeof(buf));
    buf.f.argsz = sizeof(struct vfio_device_feature) + len;
    buf.f.flags = flags;
    memcpy(buf.f.data, payload, len);
    r = ioctl(dev, VFIO_DEVICE_FEATURE, &buf);
    memcpy(payload, buf.f.data, len);
    return r;
}

static int mig_get_state(int dev, uint32_t *state)
{
    struct vfio_device_feature_mig_state st = { .data_fd = -1 };
    int r = device_feature(dev, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st,
                           sizeof(st));

    *state = r == 0 ? st.device_state : UINT32_MAX;
    return r;
}

/* SET MIG_DEVICE_STATE; *data_fd is the returned fd or -1. */
static int mig_set_state(int dev, uint32_t state, int *data_fd)
{
    struct vfio_device_feature_mig_state st = { .device_state = state, .data_fd = -1 };
    int r = device_feature(dev, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st,
                           sizeof(st));

    *data_fd = r == 0 ? st.data_fd : -1;
    return r;
}

/*
 * One SET from `from` to `to`, checked: r == 0, a data_fd exactly when want_fd,
 * and GET reads `to` back. Prints "arc FROM -> TO". Returns the data_fd (or -1).
 */
static int arc(int dev, uint32_t from, uint32_t to, bool want_fd, const char *note)
{
    uint32_t now = UINT32_MAX;
    int fd = -1, r, err, cloexec = -1;

    r = mig_set_state(dev, to, &fd);
    err = errno;
    mig_get_state(dev, &now);
    if (fd >= 0)
        cloexec = (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
    tap(r == 0 && (want_fd ? fd >= 0 : fd < 0) && now == to,
        "arc %s -> %s: %s, data_fd %d%s%s, state now %s%s%s", state_name(from), state_name(to),
        res(r, err), fd, fd >= 0 ? (cloexec ? " (O_CLOEXEC)" : " (not O_CLOEXEC)") : "",
        want_fd ? (fd >= 0 ? " new" : " MISSING") : (fd >= 0 ? " UNEXPECTED" : ""), state_name(now),
        note ? ": " : "", note ? note : "");
    return fd;
}

/*
 * Reads fd into buf (from *len on) until read() returns 0 or fails. Returns 0
 * for EOF or the errno that stopped it (ENOMSG: pre-copy's "nothing now").
 */
static int read_stream(int fd, unsigned char *buf, size_t cap, size_t *len, unsigned *calls)
{
    for (;;) {
        ssize_t n;

        if (*len >= cap)
            return EFBIG;
        n = read(fd, buf + *len, cap - *len);
        ++*calls;
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        *len += (size_t)n;
    }
}

static void describe_blob(const char *what, const unsigned char *b, size_t n)
{
    uint64_t magic = 0;
    uint32_t major = 0, minor = 0, ports = 0, flags = 0;

    if (n >= 24) { /* mtty's struct mtty_data header */
        memcpy(&magic, b, 8);
        memcpy(&major, b + 8, 4);
        memcpy(&minor, b + 12, 4);
        memcpy(&ports, b + 16, 4);
        memcpy(&flags, b + 20, 4);
    }
    printf("# %s: %zu bytes, mtty header: magic 0x%016" PRIx64 " version %u.%u nr_ports %u flags 0x%x\n",
           what, n, magic, major, minor, ports, flags);
}

/* ------------------------------------------------------------------ mtty registers */

static uint64_t bar_offset[2];

static int scr_read(int dev, int port, uint8_t *v)
{
    return pread(dev, v, 1, (off_t)(bar_offset[port] + UART_SCR)) == 1 ? 0 : -1;
}

static int scr_write(int dev, int port, uint8_t v)
{
    return pwrite(dev, &v, 1, (off_t)(bar_offset[port] + UART_SCR)) == 1 ? 0 : -1;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    char uuid[NAME_MAX + 1], path[64], type[PATH_MAX];
    int container, group, dev, memfd, r, err, grp, fd, fd2;
    struct vfio_group_status gstatus = { .argsz = sizeof(gstatus) };
    struct vfio_device_info dinfo = { .argsz = sizeof(dinfo) };
    struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };
    struct vfio_iommu_type1_dma_unmap unmap = { .argsz = sizeof(unmap) };
    struct vfio_device_feature_migration mig = { 0 };
    struct vfio_device_feature_mig_data_size dsize = { 0 };
    struct vfio_precopy_info pinfo;
    static unsigned char blob[BLOB_MAX], stream[BLOB_MAX];
    size_t blob_len = 0, pre_len = 0, stream_len = 0;
    unsigned calls = 0;
    uint32_t state;
    uint8_t scr[2], v;
    void *ram;
    int port, stop;
    ssize_t w;

    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("# guest-mig-smoke: raw VFIO migration v2 + mtty mdev\n");

    if (argc > 1)
        snprintf(uuid, sizeof(uuid), "%s", argv[1]);
    else if (find_mtty(uuid, sizeof(uuid)) < 0)
        bail("no mtty mdev in /sys/bus/mdev/devices (run-guest.sh --device mtty)");
    grp = iommu_group_of(uuid);
    if (grp < 0)
        bail("the mtty mdev has no iommu_group");
    mdev_type_of(uuid, type, sizeof(type));
    printf("# mtty mdev %s, type %s, iommu group %d\n", uuid, type, grp);

    /* ------------------------------------------------ container + group */
    container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
    err = errno;
    if (!tap(container >= 0, "open /dev/vfio/vfio: %s", res(container, err)))
        bail("no container");
    r = ioctl(container, VFIO_GET_API_VERSION);
    tap(r == VFIO_API_VERSION, "VFIO_GET_API_VERSION = %d (want %d)", r, VFIO_API_VERSION);
    r = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
    tap(r == 1, "VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU) = %d", r);

    snprintf(path, sizeof(path), "/dev/vfio/%d", grp);
    group = open(path, O_RDWR | O_CLOEXEC);
    err = errno;
    if (!tap(group >= 0, "open %s: %s", path, res(group, err)))
        bail("no group");
    r = ioctl(group, VFIO_GROUP_GET_STATUS, &gstatus);
    tap(r == 0 && (gstatus.flags & VFIO_GROUP_FLAGS_VIABLE),
        "VFIO_GROUP_GET_STATUS: r=%d flags=0x%x (viable)", r, gstatus.flags);
    r = ioctl(group, VFIO_GROUP_SET_CONTAINER, &container);
    err = errno;
    if (!tap(r == 0, "VFIO_GROUP_SET_CONTAINER: %s", res(r, err)))
        bail("cannot attach the group");
    r = ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    err = errno;
    if (!tap(r == 0, "VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU): %s", res(r, err)))
        bail("cannot set the IOMMU");

    /* the emulated IOMMU group of an mdev turns the vaddr update off */
    r = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UPDATE_VADDR);
    tap(r == 0, "VFIO_CHECK_EXTENSION(VFIO_UPDATE_VADDR) = %d (0: an mdev is in the container)", r);
    r = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_UNMAP_ALL);
    tap(r == 1, "VFIO_CHECK_EXTENSION(VFIO_UNMAP_ALL) = %d", r);

    memfd = memfd_create("guest-ram", MFD_CLOEXEC);
    if (memfd < 0 || ftruncate(memfd, 1 << 20) < 0)
        bail("memfd_create/ftruncate failed");
    ram = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (ram == MAP_FAILED)
        bail("mmap memfd failed");
    map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    map.vaddr = (uintptr_t)ram;
    map.iova = 0x100000;
    map.size = 1 << 20;
    r = ioctl(container, VFIO_IOMMU_MAP_DMA, &map);
    err = errno;
    tap(r == 0, "VFIO_IOMMU_MAP_DMA 1 MiB memfd -> iova 0x100000 (emulated group only): %s", res(r, err));
    unmap.flags = VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL;
    r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
    err = errno;
    tap(r < 0 && err == EBUSY, "VFIO_IOMMU_UNMAP_DMA(VADDR|ALL) refused with an mdev: %s (want EBUSY)",
        res(r, err));
    memset(&unmap, 0, sizeof(unmap));
    unmap.argsz = sizeof(unmap);
    unmap.iova = 0x100000;
    unmap.size = 1 << 20;
    r = ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap);
    err = errno;
    tap(r == 0 && unmap.size == 1 << 20, "VFIO_IOMMU_UNMAP_DMA: %s, unmapped 0x%llx bytes", res(r, err),
        (unsigned long long)unmap.size);
    munmap(ram, 1 << 20);
    close(memfd);

    /* ------------------------------------------------ device */
    dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, uuid);
    err = errno;
    if (!tap(dev >= 0, "VFIO_GROUP_GET_DEVICE_FD(%s): %s", uuid, res(dev, err)))
        bail("no device fd");
    r = ioctl(dev, VFIO_DEVICE_GET_INFO, &dinfo);
    tap(r == 0 && (dinfo.flags & VFIO_DEVICE_FLAGS_PCI) && dinfo.num_regions > VFIO_PCI_BAR1_REGION_INDEX,
        "VFIO_DEVICE_GET_INFO: flags=0x%x num_regions=%u num_irqs=%u", dinfo.flags, dinfo.num_regions,
        dinfo.num_irqs);
    for (port = 0; port < 2; port++) {
        struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX + port };

        r = ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &bar);
        bar_offset[port] = bar.offset;
        tap(r == 0 && bar.size >= 8 && (bar.flags & VFIO_REGION_INFO_FLAG_WRITE),
            "BAR%d (UART port %d): size=0x%llx offset=0x%llx flags=0x%x", port, port,
            (unsigned long long)bar.size, (unsigned long long)bar.offset, bar.flags);
    }
    scr[0] = 0x5a;
    scr[1] = 0xa5;
    r = 0;
    for (port = 0; port < 2; port++)
        if (scr_write(dev, port, scr[port]) < 0 || scr_read(dev, port, &v) < 0 || v != scr[port])
            r = -1;
    tap(r == 0, "UART scratch registers set: port 0 = 0x%02x, port 1 = 0x%02x", scr[0], scr[1]);

    /* ------------------------------------------------ migration capabilities */
    r = device_feature(dev, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof(mig));
    err = errno;
    tap(r == 0 && mig.flags == (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_P2P | VFIO_MIGRATION_PRE_COPY),
        "VFIO_DEVICE_FEATURE GET|MIGRATION: %s flags=0x%llx (want 0x7 STOP_COPY|P2P|PRE_COPY)", res(r, err),
        (unsigned long long)mig.flags);
    if (r != 0 || !(mig.flags & VFIO_MIGRATION_STOP_COPY))
        bail("the device does not support migration v2");
    r = mig_get_state(dev, &state);
    err = errno;
    tap(r == 0 && state == VFIO_DEVICE_STATE_RUNNING, "GET MIG_DEVICE_STATE: %s state=%u %s (want RUNNING=2)",
        res(r, err), state, state_name(state));
    r = device_feature(dev, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &dsize,
                       sizeof(dsize));
    err = errno;
    tap(r == 0 && dsize.stop_copy_length > 0, "GET MIG_DATA_SIZE: %s stop_copy_length=%llu", res(r, err),
        (unsigned long long)dsize.stop_copy_length);

    /* ------------------------------------------------ stop-and-copy, then resume */
    arc(dev, VFIO_DEVICE_STATE_RUNNING, VFIO_DEVICE_STATE_RUNNING_P2P, false, NULL);
    arc(dev, VFIO_DEVICE_STATE_RUNNING_P2P, VFIO_DEVICE_STATE_STOP, false, NULL);
    fd = arc(dev, VFIO_DEVICE_STATE_STOP, VFIO_DEVICE_STATE_STOP_COPY, true, NULL);
    if (fd < 0)
        bail("STOP_COPY gave no data_fd");
    stop = read_stream(fd, blob, sizeof(blob), &blob_len, &calls);
    tap(stop == 0 && blob_len > 0 && blob_len == dsize.stop_copy_length,
        "STOP_COPY data_fd read to EOF: %zu bytes in %u read() calls (MIG_DATA_SIZE said %llu; mtty-2: 96)%s%s",
        blob_len, calls, (unsigned long long)dsize.stop_copy_length, stop ? ", stopped by " : "",
        stop ? strerrorname_np(stop) : "");
    describe_blob("STOP_COPY blob", blob, blob_len);
    arc(dev, VFIO_DEVICE_STATE_STOP_COPY, VFIO_DEVICE_STATE_STOP, false, "ends the saving session");
    r = (int)read(fd, stream, 16);
    err = errno;
    printf("# read() on the STOP_COPY data_fd after STOP: %s\n", res(r, err));
    close(fd);

    /* scribble over the saved registers, then load the blob back */
    r = 0;
    for (port = 0; port < 2; port++)
        if (scr_write(dev, port, 0) < 0 || scr_read(dev, port, &v) < 0 || v != 0)
            r = -1;
    tap(r == 0, "UART scratch registers cleared after the save (both read 0x00)");

    fd = arc(dev, VFIO_DEVICE_STATE_STOP, VFIO_DEVICE_STATE_RESUMING, true, NULL);
    if (fd < 0)
        bail("RESUMING gave no data_fd");
    w = write(fd, blob, blob_len);
    err = errno;
    tap(w == (ssize_t)blob_len, "RESUMING data_fd: wrote the %zu-byte blob: %s", blob_len, res((int)w, err));
    arc(dev, VFIO_DEVICE_STATE_RESUMING, VFIO_DEVICE_STATE_STOP, false, "loads the blob");
    close(fd);
    r = 0;
    for (port = 0; port < 2; port++)
        if (scr_read(dev, port, &v) < 0 || v != scr[port])
            r = -1;
    {
        uint8_t v0 = 0, v1 = 0;

        scr_read(dev, 0, &v0);
        scr_read(dev, 1, &v1);
        tap(r == 0, "UART scratch registers restored by the load: port 0 = 0x%02x, port 1 = 0x%02x", v0, v1);
    }
    arc(dev, VFIO_DEVICE_STATE_STOP, VFIO_DEVICE_STATE_RUNNING_P2P, false, NULL);
    arc(dev, VFIO_DEVICE_STATE_RUNNING_P2P, VFIO_DEVICE_STATE_RUNNING, false, NULL);

    /* ------------------------------------------------ pre-copy */
    if (!(mig.flags & VFIO_MIGRATION_PRE_COPY))
        bail("no PRE_COPY support");
    fd = arc(dev, VFIO_DEVICE_STATE_RUNNING, VFIO_DEVICE_STATE_PRE_COPY, true, NULL);
    if (fd < 0)
        bail("PRE_COPY gave no data_fd");
    memset(&pinfo, 0, sizeof(pinfo));
    pinfo.argsz = sizeof(pinfo);
    r = ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &pinfo);
    err = errno;
    tap(r == 0, "VFIO_MIG_GET_PRECOPY_INFO: %s initial_bytes=%llu dirty_bytes=%llu", res(r, err),
        (unsigned long long)pinfo.initial_bytes, (unsigned long long)pinfo.dirty_bytes);
    calls = 0;
    stop = read_stream(fd, stream, sizeof(stream), &stream_len, &calls);
    pre_len = stream_len;
    /* The uAPI says ENOMSG at the temporary end of stream; mtty returns 0. */
    tap((stop == ENOMSG || stop == 0) && pre_len == pinfo.initial_bytes + pinfo.dirty_bytes,
        "PRE_COPY data_fd: %zu bytes, then %s (\"nothing now\") after %u read() calls", pre_len,
        stop == ENOMSG ? "ENOMSG" : stop == 0 ? "read() = 0, not ENOMSG" : strerrorname_np(stop), calls);
    memset(&pinfo, 0, sizeof(pinfo));
    pinfo.argsz = sizeof(pinfo);
    r = ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &pinfo);
    err = errno;
    tap(r == 0 && pinfo.initial_bytes == 0 && pinfo.dirty_bytes == 0,
        "VFIO_MIG_GET_PRECOPY_INFO after the read: %s initial_bytes=%llu dirty_bytes=%llu", res(r, err),
        (unsigned long long)pinfo.initial_bytes, (unsigned long long)pinfo.dirty_bytes);
    arc(dev, VFIO_DEVICE_STATE_PRE_COPY, VFIO_DEVICE_STATE_PRE_COPY_P2P, false, NULL);
    fd2 = arc(dev, VFIO_DEVICE_STATE_PRE_COPY_P2P, VFIO_DEVICE_STATE_STOP_COPY, false,
              "the PRE_COPY data_fd carries on");
    if (fd2 >= 0)
        close(fd2);
    calls = 0;
    stop = read_stream(fd, stream, sizeof(stream), &stream_len, &calls);
    tap(stop == 0 && stream_len - pre_len > 0,
        "STOP_COPY on the PRE_COPY data_fd, read to EOF: %zu more bytes (%zu in all) in %u read() calls%s%s",
        stream_len - pre_len, stream_len, calls, stop ? ", stopped by " : "", stop ? strerrorname_np(stop) : "");
    describe_blob("PRE_COPY + STOP_COPY stream", stream, stream_len);
    tap(stream_len == blob_len && memcmp(stream, blob, blob_len) == 0,
        "the pre-copy stream (%zu + %zu bytes) equals the stop-copy blob (%zu bytes)", pre_len,
        stream_len - pre_len, blob_len);

    /*
     * Never request STOP_COPY -> PRE_COPY or PRE_COPY_P2P (forbidden arcs) here:
     * on 6.12.95 vfio_mig_get_next_state() spins forever on them (its skip loop
     * never leaves VFIO_DEVICE_STATE_ERROR; fix posted 2026-06-02, "Terminate the
     * skip loop on the ERROR sentinel"), a soft lockup with the state mutex held.
     * Requests the core refuses up front are safe: ERROR and out-of-range states.
     */
    printf("# not requested: STOP_COPY -> PRE_COPY (hangs the kernel in vfio_mig_get_next_state on 6.12.95)\n");
    r = mig_set_state(dev, VFIO_DEVICE_STATE_ERROR, &fd2);
    err = errno;
    mig_get_state(dev, &state);
    tap(r < 0 && err == EINVAL && state == VFIO_DEVICE_STATE_STOP_COPY,
        "SET MIG_DEVICE_STATE ERROR refused: %s, state still %s", res(r, err), state_name(state));
    r = mig_set_state(dev, VFIO_DEVICE_STATE_PRE_COPY_P2P + 1, &fd2);
    err = errno;
    mig_get_state(dev, &state);
    tap(r < 0 && err == EINVAL && state == VFIO_DEVICE_STATE_STOP_COPY,
        "SET MIG_DEVICE_STATE %d (no such state) refused: %s, state still %s",
        VFIO_DEVICE_STATE_PRE_COPY_P2P + 1, res(r, err), state_name(state));
    arc(dev, VFIO_DEVICE_STATE_STOP_COPY, VFIO_DEVICE_STATE_STOP, false, NULL);
    close(fd);
    /* several arcs in one request: the kernel walks STOP -> RUNNING_P2P -> RUNNING */
    arc(dev, VFIO_DEVICE_STATE_STOP, VFIO_DEVICE_STATE_RUNNING, false,
        "one request, the driver walks STOP -> RUNNING_P2P -> RUNNING");

    /* ------------------------------------------------ a bad blob */
    arc(dev, VFIO_DEVICE_STATE_RUNNING, VFIO_DEVICE_STATE_STOP, false, "one request via RUNNING_P2P");
    fd = arc(dev, VFIO_DEVICE_STATE_STOP, VFIO_DEVICE_STATE_RESUMING, true, NULL);
    if (fd < 0)
        bail("RESUMING gave no data_fd");
    w = write(fd, blob, blob_len / 2);
    err = errno;
    tap(w == (ssize_t)(blob_len / 2), "RESUMING data_fd: wrote only %zu of %zu bytes: %s", blob_len / 2,
        blob_len, res((int)w, err));
    r = mig_set_state(dev, VFIO_DEVICE_STATE_STOP, &fd2);
    err = errno;
    mig_get_state(dev, &state);
    tap(r < 0 && state != VFIO_DEVICE_STATE_STOP, "RESUMING -> STOP with a truncated blob refused: %s, state now %s",
        res(r, err), state_name(state));
    r = ioctl(dev, VFIO_DEVICE_RESET);
    err = errno;
    mig_get_state(dev, &state);
    tap(r == 0 && state == VFIO_DEVICE_STATE_RUNNING, "VFIO_DEVICE_RESET: %s, state now %s (want RUNNING)",
        res(r, err), state_name(state));
    close(fd);

    close(dev);
    close(group);
    close(container);
    printf("1..%u\n", test_no);
    return failures ? 1 : 0;
}
