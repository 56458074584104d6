/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Guest scenario for VFIO migration v2 on a real driver: the mtty sample (kernel
 * 6.12 guest, see run-guest.sh --device mtty), through the library only. TAP output.
 *   flags and checks; save the device state to a file and load it back; resume;
 *   a pre-copy iteration; a state file from another device refused; and the CPR
 *   blocker with an mdev in the container (VFIO_UPDATE_VADDR is 0: exec refuses).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vfiocpr.h"
#include "guest-util.h"
#include "../seam-record.h"

#define UUID2 "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002"

/* The first mdev instance, or the one that is not `not`. */
static bool find_mdev(char *uuid, size_t len, const char *not)
{
    DIR *d = opendir("/sys/bus/mdev/devices");
    struct dirent *e;
    bool found = false;

    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.' && (!not || strcmp(e->d_name, not) != 0)) {
            g_strlcpy(uuid, e->d_name, len);
            found = true;
            break;
        }
    if (d)
        closedir(d);
    return found;
}

/* The arcs the library walks from cur to target for these flags, as text. */
static char *arcs(guint32 flags, vfiocpr_mig_state cur, vfiocpr_mig_state target)
{
    GString *s = g_string_new(vfiocpr_mig_state_to_string(cur));
    while (cur != target) {
        vfiocpr_mig_state next;
        if (vfiocpr_mig_next_state(flags, cur, target, &next) < 0) {
            g_string_append(s, " (unreachable)");
            break;
        }
        g_string_append_printf(s, " -> %s", vfiocpr_mig_state_to_string(next));
        cur = next;
    }
    return g_string_free(s, FALSE);
}

int main(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL;
    g_autoptr(vfiocpr_device) d = NULL, d2 = NULL;
    g_autofree char *a_save = NULL, *a_load = NULL, *a_resume = NULL, *a_pre = NULL;
    char uuid[64], uuid2[64];
    vfiocpr_device *one[1];
    vfiocpr_mig_state st;
    guint32 flags = 0;
    guint64 bytes = 0, initial = 0, dirty = 0, pre = 0, rest = 0;
    int group, group2, f, r;
    struct stat sb;

    setvbuf(stdout, NULL, _IOLBF, 0);
    seam_record_program("guest-mig"); /* guest-suite.sh: for tests/test-seccomp-seen */
    if (!find_mdev(uuid, sizeof(uuid), NULL))
        bail("no mdev device (is mtty loaded and an instance created?): %s", g_strerror(errno));
    if (vfiocpr_new(0, &ctx, &err) < 0 || vfiocpr_container_open(ctx, "c0", &c, &err) < 0 ||
        (group = vfiocpr_device_group_id(uuid, &err)) < 0 ||
        vfiocpr_container_add_group(c, group, &err) < 0 ||
        vfiocpr_device_open(c, group, uuid, &d, &err) < 0)
        bail("open the mtty mdev: %s", err ? err->message : g_strerror(errno));
    ok(true, "mtty mdev %s in group %d opened through the library", uuid, group);

    r = vfiocpr_mig_flags(d, &flags, &err);
    ok(r == 0 && (flags & VFIOCPR_MIG_FLAG_STOP_COPY), "migration flags 0x%x (STOP_COPY%s%s)",
       flags, flags & VFIOCPR_MIG_FLAG_P2P ? " P2P" : "", flags & VFIOCPR_MIG_FLAG_PRE_COPY ? " PRE_COPY" : "");
    r = vfiocpr_mig_check(d, 0, &err);
    ok(r == 0, "check: the device can take part in a migration");
    r = vfiocpr_mig_check(d, VFIOCPR_MIG_INTENT_BACKGROUND_SNAPSHOT, &err);
    ok(r == -ENOTSUP && strstr(err->message, "background snapshot"), "check refuses a background "
       "snapshot: %s", err ? err->message : "accepted");
    g_clear_error(&err);
    r = vfiocpr_mig_get_state(d, &st, &err);
    ok(r == 0 && st == VFIOCPR_MIG_RUNNING, "state %s", vfiocpr_mig_state_to_string(st));

    /* save: RUNNING -> STOP, then the file (STOP -> STOP_COPY -> STOP) */
    a_save = arcs(flags, VFIOCPR_MIG_RUNNING, VFIOCPR_MIG_STOP);
    r = vfiocpr_mig_set_state(d, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RUNNING, &err);
    ok(r == 0, "stopped: %s", a_save);
    f = memfd_create("mtty-state", MFD_CLOEXEC);
    one[0] = d;
    r = vfiocpr_mig_save_file(one, 1, f, &err);
    fstat(f, &sb);
    g_free(a_save);
    a_save = arcs(flags, VFIOCPR_MIG_STOP, VFIOCPR_MIG_STOP_COPY);
    ok(r == 0, "saved to a file of %lld bytes (arcs %s -> STOP): %s", (long long)sb.st_size, a_save,
       err ? err->message : "ok");
    g_clear_error(&err);

    /* load it back: STOP -> RESUMING -> STOP, then resume */
    a_load = arcs(flags, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RESUMING);
    r = vfiocpr_mig_load_file(one, 1, f, &err);
    ok(r == 0, "loaded back (arcs %s -> STOP): %s", a_load, err ? err->message : "ok");
    g_clear_error(&err);
    a_resume = arcs(flags, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RUNNING);
    r = vfiocpr_mig_set_state(d, VFIOCPR_MIG_RUNNING, VFIOCPR_MIG_STOP, &err);
    ok(r == 0, "resumed: %s", a_resume);
    g_clear_error(&err);

    /* the plain save size, for the record */
    {
        int s2 = memfd_create("raw", MFD_CLOEXEC);
        vfiocpr_mig_set_state(d, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RUNNING, NULL);
        r = vfiocpr_mig_save(d, s2, &bytes, &err);
        ok(r == 0 && bytes > 0, "STOP_COPY blob: %" G_GUINT64_FORMAT " bytes", bytes);
        vfiocpr_mig_set_state(d, VFIOCPR_MIG_RUNNING, VFIOCPR_MIG_STOP, NULL);
        close(s2);
        g_clear_error(&err);
    }

    /* pre-copy: RUNNING -> PRE_COPY, info, read until "nothing now", then the rest */
    if (flags & VFIOCPR_MIG_FLAG_PRE_COPY) {
        int p = memfd_create("pre", MFD_CLOEXEC);
        a_pre = arcs(flags, VFIOCPR_MIG_RUNNING, VFIOCPR_MIG_PRE_COPY);
        r = vfiocpr_mig_set_state(d, VFIOCPR_MIG_PRE_COPY, VFIOCPR_MIG_RUNNING, &err);
        ok(r == 0, "pre-copy: %s", a_pre);
        r = vfiocpr_mig_precopy_info(d, &initial, &dirty, &err);
        ok(r == 0, "pre-copy info: initial %" G_GUINT64_FORMAT ", dirty %" G_GUINT64_FORMAT " bytes",
           initial, dirty);
        r = vfiocpr_mig_precopy_read(d, p, &pre, &err);
        ok(r == 0, "pre-copy read %" G_GUINT64_FORMAT " bytes until the driver had nothing more",
           pre);
        r = vfiocpr_mig_save(d, p, &rest, &err);
        g_free(a_pre);
        a_pre = arcs(flags, VFIOCPR_MIG_PRE_COPY, VFIOCPR_MIG_STOP_COPY);
        ok(r == 0, "final pass %" G_GUINT64_FORMAT " bytes (arcs %s -> STOP): %s", rest, a_pre,
           err ? err->message : "ok");
        g_clear_error(&err);
        r = vfiocpr_mig_set_state(d, VFIOCPR_MIG_RUNNING, VFIOCPR_MIG_STOP, &err);
        ok(r == 0, "running again");
        close(p);
    }

    /* a second mtty instance: the first one's state file is refused for it */
    {
        FILE *cf = fopen("/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create", "w");
        bool made = cf && fputs(UUID2, cf) >= 0;
        if (cf)
            fclose(cf);
        if (!made || !find_mdev(uuid2, sizeof(uuid2), uuid)) {
            ok(false, "create a second mtty instance: %s", g_strerror(errno));
        } else {
            group2 = vfiocpr_device_group_id(uuid2, &err);
            if (group2 < 0 || vfiocpr_container_add_group(c, group2, &err) < 0 ||
                vfiocpr_device_open(c, group2, uuid2, &d2, &err) < 0)
                bail("open the second mtty: %s", err ? err->message : g_strerror(errno));
            vfiocpr_mig_set_state(d2, VFIOCPR_MIG_STOP, VFIOCPR_MIG_RUNNING, NULL);
            one[0] = d2;
            r = vfiocpr_mig_load_file(one, 1, f, &err);
            ok(r == -EINVAL && strstr(err->message, "is the state of"), "a state file from "
               "another device is refused: %s", err ? err->message : "accepted!");
            g_clear_error(&err);
            r = vfiocpr_mig_get_state(d2, &st, &err);
            ok(r == 0 && st == VFIOCPR_MIG_STOP, "that device was not touched (%s)",
               vfiocpr_mig_state_to_string(st));
            vfiocpr_mig_set_state(d2, VFIOCPR_MIG_RUNNING, VFIOCPR_MIG_STOP, NULL);
        }
    }

    /* the CPR blocker: an mdev in the container turns VFIO_UPDATE_VADDR off */
    {
        int ram = memfd_create("ram", MFD_CLOEXEC);
        void *va;
        char *argv[] = { (char *)"guest-mig", NULL };
        int ext = ioctl(vfiocpr_container_fd(c), VFIO_CHECK_EXTENSION, 10 /* VFIO_UPDATE_VADDR */);
        ok(ext == 0, "VFIO_CHECK_EXTENSION(VFIO_UPDATE_VADDR) = %d with the mdev attached", ext);
        if (ftruncate(ram, 1 << 20) < 0)
            bail("ftruncate: %s", g_strerror(errno));
        va = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, ram, 0);
        if (vfiocpr_fd_save(ctx, "ram", 0, ram, VFIOCPR_FD_MEMFD, &err) < 0 ||
            vfiocpr_dma_map(c, 0x100000, 1 << 20, va, ram, 0, VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE,
                            &err) < 0)
            bail("dma map: %s", err ? err->message : g_strerror(errno));
        r = vfiocpr_exec(ctx, "/proc/self/exe", argv, NULL, &err);
        ok(r == -ENOTSUP && strstr(err->message, "VFIO_UPDATE_VADDR"), "CPR exec is refused "
           "before any side effect: %s", err ? err->message : "?");
    }
    close(f);
    printf("1..%u\n", tap_n);
    return tap_failed ? 1 : 0;
}
