/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers shared by the tests (header-only, each test is one binary). */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <glib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vfiocpr.h"

/* The next vfiocpr_new() restores from state fd fd, as after an exec. */
static inline void tu_set_state_fd(int fd)
{
    g_autofree char *v = g_strdup_printf("%d", fd);
    g_setenv(VFIOCPR_STATE_ENV, v, TRUE);
}

static inline unsigned tu_count_open_fds(void)
{
    unsigned n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;

    g_assert_nonnull(d);
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the DIR's own fd */
}

static inline int tu_cloexec(int fd)
{
    int f = fcntl(fd, F_GETFD);
    return f < 0 ? -1 : !!(f & FD_CLOEXEC);
}

static inline int tu_memfd_with(const char *name, const char *data, unsigned flags)
{
    int fd = memfd_create(name, flags);
    g_assert_cmpint(fd, >=, 0);
    if (data)
        g_assert_cmpint(write(fd, data, strlen(data)), ==, (ssize_t)strlen(data));
    return fd;
}

static inline int tu_eventfd(unsigned count, int flags)
{
    int fd = eventfd(count, flags);
    g_assert_cmpint(fd, >=, 0);
    return fd;
}

static inline GBytes *tu_read_file(const char *name)
{
    g_autofree char *path = g_build_filename(g_getenv("VFIOCPR_TEST_DATA"), name, NULL);
    g_autoptr(GError) err = NULL;
    char *data;
    gsize len;

    if (!g_file_get_contents(path, &data, &len, &err))
        g_error("%s: %s", path, err->message);
    return g_bytes_new_take(data, len);
}

/* A sealed memfd holding bytes, as the library writes its state. */
static inline int tu_state_memfd(GBytes *blob, bool seal)
{
    gsize len;
    const char *p = g_bytes_get_data(blob, &len);
    int fd = memfd_create("test-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, p, len), ==, (ssize_t)len);
    if (seal)
        g_assert_cmpint(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW |
                                                   F_SEAL_WRITE), ==, 0);
    return fd;
}

#endif
