/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake kernel's iommufd model: /dev/iommu with IOAS mappings charged to a
 * process (CHANGE_PROCESS moves them), and the vfio cdev that binds to it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "fake-kernel-private.h"

static int iomap_add(fk_obj *o, guint32 ioas, guint64 iova, guint64 length, bool by_file)
{
    if (!g_hash_table_contains(o->ioas, GUINT_TO_POINTER(ioas)) || !length ||
        iova + length < iova)
        return -EINVAL;
    for (guint i = 0; i < o->iomaps->len; i++) {
        fk_iomap *m = &g_array_index(o->iomaps, fk_iomap, i);
        if (m->ioas == ioas && iova < m->iova + m->length && m->iova < iova + length)
            return -EEXIST;
    }
    if (CUR->locked + length > CUR->limit)
        return -ENOMEM;
    CUR->locked += length;
    g_array_append_val(o->iomaps, ((fk_iomap){ ioas, iova, length, by_file, CUR->gen }));
    return 0;
}

int fk_iommufd_ioctl(fk_obj *o, unsigned long request, void *arg)
{
    switch (request) {
    case IOMMU_IOAS_ALLOC: {
        struct iommu_ioas_alloc *a = arg;
        if (a->size < sizeof(*a) || a->flags)
            return -EINVAL;
        a->out_ioas_id = o->next_id++;
        g_hash_table_add(o->ioas, GUINT_TO_POINTER(a->out_ioas_id));
        return 0;
    }
    case IOMMU_IOAS_MAP: {
        struct iommu_ioas_map *m = arg;
        if (!(m->flags & IOMMU_IOAS_MAP_FIXED_IOVA) || !m->user_va)
            return -EINVAL; /* the model only knows the form the library uses */
        return iomap_add(o, m->ioas_id, m->iova, m->length, false);
    }
    case IOMMU_IOAS_MAP_FILE: {
        struct iommu_ioas_map_file *m = arg;
        vfiocpr_fd_stat st;
        char link[256];
        if (!(m->flags & IOMMU_IOAS_MAP_FIXED_IOVA))
            return -EINVAL;
        /* shmem or hugetlbfs only: a memfd (as this fake shows fds; no call counted) */
        pretend *p = fk_find_pretend(m->fd);
        if (p)
            g_strlcpy(link, p->link, sizeof(link));
        else if (REAL->fstat(m->fd, &st, NULL) < 0 || REAL->fd_path(m->fd, link, sizeof(link)) < 0)
            return -EBADF;
        if (!g_str_has_prefix(link, "/memfd:"))
            return -EINVAL;
        return iomap_add(o, m->ioas_id, m->iova, m->length, true);
    }
    case IOMMU_IOAS_UNMAP: {
        struct iommu_ioas_unmap *u = arg;
        for (guint i = 0; i < o->iomaps->len; i++) {
            fk_iomap *m = &g_array_index(o->iomaps, fk_iomap, i);
            if (m->ioas == u->ioas_id && m->iova == u->iova && m->length == u->length) {
                if (m->gen == CUR->gen)
                    CUR->locked -= m->length;
                g_array_remove_index_fast(o->iomaps, i);
                return 0;
            }
        }
        return -ENOENT;
    }
    case IOMMU_IOAS_CHANGE_PROCESS: {
        guint64 move = 0;
        if (fk.no_change_process)
            return -ENOTTY;
        for (guint i = 0; i < o->iomaps->len; i++) {
            fk_iomap *m = &g_array_index(o->iomaps, fk_iomap, i);
            if (!m->by_file)
                return -EINVAL;
            if (m->gen != CUR->gen)
                move += m->length;
        }
        /* all or nothing */
        if (CUR->locked + move > CUR->limit)
            return -ENOMEM;
        CUR->locked += move;
        for (guint i = 0; i < o->iomaps->len; i++) {
            fk_iomap *m = &g_array_index(o->iomaps, fk_iomap, i);
            fk_proc *was = m->gen != CUR->gen ? fk_proc_by_gen(m->gen) : NULL;
            if (was)
                was->locked -= m->length;
            m->gen = CUR->gen;
        }
        return 0;
    }
    }
    return -ENOTTY;
}

int fk_cdev_ioctl(fk_obj *o, unsigned long request, void *arg)
{
    switch (request) {
    case VFIO_DEVICE_BIND_IOMMUFD: {
        struct vfio_device_bind_iommufd *b = arg;
        fk_obj *ictx = fk_obj_get(b->iommufd, FK_IOMMUFD);
        if (!ictx)
            return -EBADF;
        if (o->bound_to >= 0 || o->group->bound >= 0)
            return -EINVAL; /* a cdev is bound once */
        o->bound_to = b->iommufd;
        o->group->bound = b->iommufd;
        o->devid = b->out_devid = ictx->next_id++;
        return 0;
    }
    case VFIO_DEVICE_ATTACH_IOMMUFD_PT: {
        struct vfio_device_attach_iommufd_pt *a = arg;
        fk_obj *ictx = o->bound_to >= 0 ? fk_obj_get(o->bound_to, FK_IOMMUFD) : NULL;
        if (!ictx || !g_hash_table_contains(ictx->ioas, GUINT_TO_POINTER(a->pt_id)))
            return -EINVAL;
        o->pt = a->pt_id = ictx->next_id++; /* the automatic HWPT */
        return 0;
    }
    }
    /* until bound, the device refuses everything (vfio_device_fops) */
    return o->bound_to >= 0 ? fk_device_ioctl(o, request, arg) : -EINVAL;
}

/* ---- paths ---- */
int fk_iommufd_open(const char *path)
{
    fk_group *g;
    fk_obj *o;
    pretend *p;
    char *end;
    int fd, id;

    if (strcmp(path, "/dev/iommu") == 0)
        return fk.iommufd ? fk_new_object(path, S_IFCHR | 0660, makedev(FK_MISC_MAJOR, FK_IOMMU_MINOR), FK_IOMMUFD, NULL)
                          : -ENOENT;
    if (strcmp(path, "/dev/vfio/devices") == 0)
        return fk.iommufd ? REAL->open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -ENOENT;
    if (!g_str_has_prefix(path, "/dev/vfio/devices/vfio"))
        return FK_NOT_MINE;
    id = (int)strtol(path + strlen("/dev/vfio/devices/vfio"), &end, 10);
    g = *end || !fk.iommufd ? NULL : g_hash_table_lookup(fk.groups, GINT_TO_POINTER(id));
    if (!g)
        return -ENOENT;
    fd = fk_new_object(path, 0, 0, FK_DEVICE, g);
    if (fd < 0)
        return fd;
    o = fk_obj_get(fd, FK_DEVICE);
    o->cdev = true;
    /* a real character device: its own inode and rdev, unlike a group's device fd */
    p = fk_find_pretend(fd);
    p->st = (vfiocpr_fd_stat){ .dev = FK_DEVTMPFS_DEV, .ino = ++fk.next_ino,
                               .rdev = makedev(FK_CDEV_MAJOR, (unsigned)id),
                               .mode = S_IFCHR | 0600 };
    return fd;
}

int fk_iommufd_dir_entry(const char *dir, const char *prefix, char *buf, size_t len)
{
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, fk.groups);
    while (fk.iommufd && g_hash_table_iter_next(&it, NULL, &v)) {
        fk_group *g = v;
        g_autofree char *d = g_strdup_printf("/sys/bus/%s/devices/%s/vfio-dev",
                                             g->mdev ? "mdev" : "pci", g->device);
        g_autofree char *name = g_strdup_printf("vfio%d", g->id);
        if (strcmp(dir, d) == 0 && g_str_has_prefix(name, prefix))
            return g_strlcpy(buf, name, len) < len ? 0 : -ENAMETOOLONG;
    }
    return FK_NOT_MINE;
}

/* ---- test API (fake-kernel.h) ---- */
void fake_iommufd_enable(bool change_process)
{
    fk.iommufd = true;
    fk.no_change_process = !change_process;
}

unsigned fake_iommufd_maps(int iommufd_fd, guint64 *pinned_here)
{
    fk_obj *o = fk_obj_get(iommufd_fd, FK_IOMMUFD);
    guint64 here = 0;
    if (!o)
        return 0;
    for (guint i = 0; i < o->iomaps->len; i++)
        if (g_array_index(o->iomaps, fk_iomap, i).gen == CUR->gen)
            here += g_array_index(o->iomaps, fk_iomap, i).length;
    if (pinned_here)
        *pinned_here = here;
    return o->iomaps->len;
}

bool fake_iommufd_mapped(int iommufd_fd, guint64 iova, bool *by_file)
{
    fk_obj *o = fk_obj_get(iommufd_fd, FK_IOMMUFD);
    for (guint i = 0; o && i < o->iomaps->len; i++)
        if (g_array_index(o->iomaps, fk_iomap, i).iova == iova) {
            if (by_file)
                *by_file = g_array_index(o->iomaps, fk_iomap, i).by_file;
            return true;
        }
    return false;
}

int fake_iommufd_cdev_binding(int cdev_fd, guint32 *devid, guint32 *pt)
{
    fk_obj *o = fk_obj_get(cdev_fd, FK_DEVICE);
    if (!o || !o->cdev)
        return -ENOENT;
    if (devid)
        *devid = o->devid;
    if (pt)
        *pt = o->pt;
    return o->bound_to;
}

