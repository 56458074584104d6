/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every guest program shares: TAP output that counts across images, bailing
 * out, the clock, and finding a PCI device by its ids in sysfs. Header-only: each
 * guest program is one binary. */
#ifndef GUEST_UTIL_H
#define GUEST_UTIL_H

#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <glib.h>

#include "pci-find.h"

static unsigned tap_n;
static unsigned tap_failed;

static G_GNUC_UNUSED bool ok(bool cond, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static bool ok(bool cond, const char *fmt, ...)
{
    va_list ap;
    printf("%s %u - ", cond ? "ok" : "not ok", ++tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    tap_failed += !cond;
    return cond;
}

static G_GNUC_UNUSED void G_GNUC_NORETURN bail(const char *fmt, ...)
{
    va_list ap;
    printf("Bail out! ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    exit(1);
}

static G_GNUC_UNUSED guint64 now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (guint64)t.tv_sec * 1000000u + (guint64)t.tv_nsec / 1000u;
}

static G_GNUC_UNUSED int find_pci(unsigned vendor, unsigned device, char *bdf, size_t len)
{
    return pci_find(vendor, device, bdf, len);
}

#endif
