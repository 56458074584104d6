/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Benchmark: save and load of a synthetic 256 MiB device state through the library
 * vs a raw loop doing the same work (the same state ioctls, read/write through a
 * 1 MiB buffer), in one run, on the fake kernel's migration model. The output is a
 * memfd. Target: the library at >= 0.9x the raw loop's throughput.
 */
#include "config.h"

#include <errno.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../tests/fake-kernel.h"

#define SIZE (256u << 20)
#define BUF (1u << 20)

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *w, GError *e)
{
    fprintf(stderr, "bench-mig: %s: %s\n", w, e ? e->message : "?");
    exit(1);
}

static int set_state(int devfd, guint32 state)
{
    struct {
        struct vfio_device_feature f;
        struct vfio_device_feature_mig_state s;
    } a = { .f = { .argsz = sizeof(a), .flags = VFIO_DEVICE_FEATURE_SET |
                                                VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE },
            .s = { .device_state = state, .data_fd = -1 } };
    return vfiocpr_kernel->ioctl(devfd, VFIO_DEVICE_FEATURE, &a) < 0 ? -1 : a.s.data_fd;
}

#define MED(a) (((a)[3] + (a)[4]) / 2)

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL;
    g_autoptr(vfiocpr_device) d = NULL;
    guint8 *blob = g_malloc(SIZE), *buf = g_malloc(BUF);
    double lib_save[8], raw_save[8], lib_load[8], raw_load[8];
    int out = memfd_create("state", MFD_CLOEXEC), devfd;
    guint64 bytes;

    for (gsize i = 0; i < SIZE; i += 4096)
        blob[i] = (guint8)i;
    fake_kernel_reset();
    fake_mig_setup(VFIOCPR_MIG_FLAG_STOP_COPY, blob, SIZE, 0);
    fake_vfio_add_group(12, "0000:00:05.0", false);
    if (vfiocpr_new(0, &ctx, &err) < 0 || vfiocpr_container_open(ctx, "c0", &c, &err) < 0 ||
        vfiocpr_container_add_group(c, 12, &err) < 0 ||
        vfiocpr_device_open(c, 12, "0000:00:05.0", &d, &err) < 0 ||
        vfiocpr_mig_set_state(d, VFIOCPR_MIG_STOP, VFIOCPR_MIG_ERROR, &err) < 0)
        die("setup", err);
    devfd = vfiocpr_device_fd(d);
    for (int k = 0; k < 8; k++) {

        double t;
        int dfd;
        gsize done;

        /* ABBA: which side runs first alternates, so neither gets the warm caches */
        for (int side = 0; side < 2; side++) {
        if ((side == 0) == (k % 2 == 0)) {
        /* raw save: STOP -> STOP_COPY, read to EOF, write out, -> STOP */
        if (ftruncate(out, 0) < 0 || lseek(out, 0, SEEK_SET) < 0)
            die("truncate", NULL);
        t = now_s();
        dfd = set_state(devfd, VFIOCPR_MIG_STOP_COPY);
        for (;;) {
            ssize_t n = vfiocpr_kernel->read(dfd, buf, BUF);
            if (n <= 0)
                break;
            if (write(out, buf, (size_t)n) != n)
                die("raw write", NULL);
        }
        set_state(devfd, VFIOCPR_MIG_STOP);
        vfiocpr_kernel->close(dfd);
        raw_save[k] = now_s() - t;

        /* raw load: -> RESUMING, write it all, -> STOP (the driver checks it) */
        t = now_s();
        dfd = set_state(devfd, VFIOCPR_MIG_RESUMING);
        for (done = 0; done < SIZE;) {
            ssize_t n = pread(out, buf, BUF, (off_t)done);
            if (n <= 0 || vfiocpr_kernel->write(dfd, buf, (size_t)n) != n)
                die("raw load", NULL);
            done += (gsize)n;
        }
        if (set_state(devfd, VFIOCPR_MIG_STOP) < -1)
            die("raw resume", NULL);
        vfiocpr_kernel->close(dfd);
        raw_load[k] = now_s() - t;
        fake_mig_force_state(devfd, VFIOCPR_MIG_STOP);
        vfiocpr_mig_get_state(d, &(vfiocpr_mig_state){ 0 }, NULL);

        } else {
        /* the library */
        if (ftruncate(out, 0) < 0 || lseek(out, 0, SEEK_SET) < 0)
            die("truncate", NULL);
        t = now_s();
        if (vfiocpr_mig_save(d, out, &bytes, &err) < 0 || bytes != SIZE)
            die("save", err);
        lib_save[k] = now_s() - t;
        if (lseek(out, 0, SEEK_SET) < 0)
            die("seek", NULL);
        t = now_s();
        if (vfiocpr_mig_load(d, out, SIZE, &err) < 0)
            die("load", err);
        lib_load[k] = now_s() - t;
        }
        }
    }
    qsort(lib_save, 8, sizeof(double), cmp);
    qsort(raw_save, 8, sizeof(double), cmp);
    qsort(lib_load, 8, sizeof(double), cmp);
    qsort(raw_load, 8, sizeof(double), cmp);
    printf("libvfiocpr %s: 256 MiB device state, fake kernel, median of 8, sides alternating\n", PACKAGE_VERSION);
    printf("save: library %.0f MiB/s, raw loop %.0f MiB/s, library/raw %.2f\n",
           256 / MED(lib_save), 256 / MED(raw_save), MED(raw_save) / MED(lib_save));
    printf("load: library %.0f MiB/s, raw loop %.0f MiB/s, library/raw %.2f\n",
           256 / MED(lib_load), 256 / MED(raw_load), MED(raw_load) / MED(lib_load));
    printf("target >= 0.90x: save %s, load %s\n", MED(raw_save) / MED(lib_save) >= 0.9 ? "met" : "NOT MET",
           MED(raw_load) / MED(lib_load) >= 0.9 ? "met" : "NOT MET");
    g_free(blob);
    g_free(buf);
    return 0;
}
