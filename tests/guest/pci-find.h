/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The guest programs' and the upgrade bench's one sysfs scan for a PCI function by
 * vendor and device id. Plain libc: the raw-ioctl smoke tests and the floor program
 * link neither GLib nor libvfiocpr. */
#ifndef VFIOCPR_PCI_FIND_H
#define VFIOCPR_PCI_FIND_H

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

static inline unsigned pci_find_id(const char *bdf, const char *attr)
{
    char path[PATH_MAX];
    unsigned v = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, attr);
    if (!(f = fopen(path, "r")))
        return 0;
    if (fscanf(f, "%x", &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

/* The first function with these ids into bdf: 0, or -1 if there is none. */
static inline int pci_find(unsigned vendor, unsigned device, char *bdf, size_t len)
{
    DIR *d = opendir("/sys/bus/pci/devices");
    struct dirent *e;
    int found = -1;

    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (pci_find_id(e->d_name, "vendor") == vendor &&
            pci_find_id(e->d_name, "device") == device) {
            size_t n = strlen(e->d_name);
            if (n >= len)
                continue; /* no room for its name: not one this caller can use */
            memcpy(bdf, e->d_name, n + 1);
            found = 0;
            break;
        }
    }
    if (d)
        closedir(d);
    return found;
}

#endif
