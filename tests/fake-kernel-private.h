/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the parts of the fake kernel share; tests include fake-kernel.h only.
 *   fake-kernel.c          core: objects, the fd table, fault injection, dispatch of
 *                          every op, memfd/eventfd/socket pass-through, exec/transfer
 *                          capture helpers, per-process locked-memory accounting
 *   fake-kernel-type1.c    VFIO container, groups and the device fd
 *   fake-kernel-iommufd.c  /dev/iommu, IOAS mappings, the vfio cdev
 *   fake-kernel-kvm.c      /dev/kvm, VMs, GSI routing, irqfds
 *   fake-kernel-mig.c      the migration v2 state machine and its data streams */
#ifndef FAKE_KERNEL_PRIVATE_H
#define FAKE_KERNEL_PRIVATE_H

#include <linux/kvm.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>

#include "fake-kernel.h"
#include "vfio-compat.h"

#define REAL (vfiocpr_kernel_real())
/* A subsystem's open/readlink/dir_entry hook: the path is not one of its own. */
#define FK_NOT_MINE INT_MIN
/* Identities of the fake's files. Not uAPI, but fixed here: golden states record
 * them. The misc minors are the ones include/linux/miscdevice.h assigns; /dev/iommu's
 * and the dynamic majors are what a test machine happened to show. */
#define FK_DEVTMPFS_DEV 5      /* st_dev of /dev nodes */
#define FK_ANON_DEV 10         /* st_dev of anon inodes (a group's device fd) */
#define FK_ANON_DEVICE_INO 1039
#define FK_MISC_MAJOR 10
#define FK_VFIO_MINOR 196
#define FK_KVM_MINOR 232
#define FK_IOMMU_MINOR 257
#define FK_GROUP_MAJOR 511     /* /dev/vfio/N */
#define FK_CDEV_MAJOR 235      /* /dev/vfio/devices/vfioN */
#define FK_BAR0_SIZE 0x1000
/* vfio-pci's region layout: region index << 40 (VFIO_PCI_OFFSET_SHIFT, which is not uAPI) */
#define FK_REGION_SHIFT 40

/* ---- objects (core) ---- */
typedef struct {
    char *link;
    vfiocpr_fd_stat st;
    int cloexec;
    bool owned; /* backed by a real fd the fake opened: close it too */
    guint64 real_ino; /* owned: the backing memfd, whose dups are this object too */
} pretend;

enum { FK_CONTAINER = 1, FK_GROUP, FK_DEVICE, FK_KVM, FK_VM, FK_IOMMUFD };

/* ---- VFIO type1 model ---- */
typedef struct {
    guint64 iova, size, vaddr;
    bool invalid;
} fk_dma;

typedef struct {
    int id;
    char *device;
    bool mdev;
    int fd;        /* open group fd, -1 if closed (groups are single-open) */
    int container; /* container fd, -1 if none */
    int bound;     /* iommufd fd the device's cdev is bound to, -1 if none */
    /* the device itself */
    const fk_pci_model *model;
    guint8 *config;     /* model->cfg_size bytes of PCI config space */
    bool own_mig;       /* mig_flags are its own, not fk.mig_flags */
    guint32 mig_flags;
} fk_group;

/* ---- KVM model ---- */
typedef struct {
    gint64 eventfd; /* the eventfd file, as fk_eventfd_id() names it */
    int fd;         /* the number it was assigned by */
    guint32 gsi;
} fk_irqfd;

/* ---- iommufd model ---- */
typedef struct {
    guint32 ioas;
    guint64 iova, length;
    bool by_file;
    unsigned gen; /* the process its pins are charged to */
} fk_iomap;

#define FK_N_IRQ VFIO_PCI_NUM_IRQS

/* Every fake object: one struct for all types, the fields a type uses are marked. */
typedef struct {
    int type;
    bool iommu_set;
    GArray *dmas;    /* fk_dma, containers */
    GHashTable *by_iova; /* iova -> index + 1 into dmas */
    fk_group *group; /* groups and devices */
    guint live[FK_N_IRQ];  /* devices: vectors enabled per index */
    int unmask_fd;         /* devices: INTx unmask eventfd */
    guint mig_state;       /* devices: migration state */
    int data_fd;           /* devices: current migration data fd */
    GArray *irqfds;        /* VMs: fk_irqfd */
    unsigned routings;     /* VMs: KVM_SET_GSI_ROUTING calls */
    unsigned last_routes;  /* VMs: entries in the last one */
    unsigned last_irqchip; /* VMs: of those, IOAPIC/PIC pin routes */
    bool split_irqchip;    /* VMs: KVM_CAP_SPLIT_IRQCHIP, the IOAPIC in user space */
    bool cdev;             /* devices: opened as /dev/vfio/devices/vfioN */
    int bound_to;          /* cdevs: iommufd fd after BIND, else -1 */
    guint32 devid, pt;     /* cdevs: from BIND and ATTACH */
    GArray *iomaps;        /* iommufd: fk_iomap */
    guint32 next_id;       /* iommufd: object ids */
    GHashTable *ioas;      /* iommufd: IOAS ids */
} fk_obj;

/* A process, for locked-memory accounting: the thread that runs the library is in
 * one (a transfer test runs the new process in another thread). */
typedef struct {
    unsigned gen;
    guint64 locked, limit;
} fk_proc;
#define FK_N_PROCS 8
extern fk_proc fk_procs[FK_N_PROCS];
extern __thread int fk_cur_proc; /* index into fk_procs */
#define CUR (&fk_procs[fk_cur_proc])
fk_proc *fk_proc_by_gen(unsigned gen);

/* ---- migration model ---- */
typedef struct {
    GByteArray *buf; /* RESUMING: what the library wrote */
    const guint8 *src; /* otherwise: the blob, not copied */
    gsize len;
    gsize pos;
    bool precopy; /* ENOMSG at the end instead of EOF */
    bool resuming;
} fk_stream;

/* The whole model's state: one instance (fake-kernel.c), reset by fake_kernel_reset(). */
struct fk_state {
    unsigned calls[FK_N_OPS + 1];
    GArray *log; /* fk_op per call */
    fk_op fail_op;
    unsigned fail_nth;
    int fail_err;
    fk_execve_fn execve;
    GHashTable *pretend; /* fd -> pretend* */
    GHashTable *by_real; /* real ino of an owned object's memfd -> its fd */
    GHashTable *objs;    /* fd -> fk_obj* */
    GHashTable *groups;  /* id -> fk_group* */
    GHashTable *ioctls;  /* request -> count */
    unsigned long fail_req;
    unsigned fail_req_nth;
    int fail_req_err;
    guint64 locked, locked_limit;
    bool memlock_set, cap_ipc_lock;
    guint64 memlock_limit;
    guint64 next_ino;
    int next_fd;
    unsigned device_closes;
    guint irq_count[FK_N_IRQ];
    bool msix_noresize;
    unsigned irq_rerequests; /* SET_IRQS that hit an already live vector */
    bool fake_kvm;
    bool iommufd;              /* /dev/iommu and the cdevs exist */
    bool peer_uid_set;         /* SO_PEERCRED reports this uid */
    guint32 peer_uid;
    bool no_change_process;    /* a kernel before 6.14 */
    unsigned gen;              /* the current process, for iommufd pin accounting */
    /* migration model */
    guint32 mig_flags;
    GByteArray *mig_blob;      /* what STOP_COPY produces; RESUMING must get exactly this */
    guint mig_precopy_initial; /* bytes of the blob PRE_COPY offers first */
    GHashTable *streams;       /* data fd -> fk_stream* */
    GArray *arcs;              /* every arc the device was asked to take, as cur << 8 | next */
};
extern struct fk_state fk;

/* ---- core (fake-kernel.c) ---- */
pretend *fk_find_pretend(int fd);
/* The number the object behind fd (a dup received over a socket included) is known by. */
int fk_canonical(int fd);
/* A fake object of type backed by a real memfd, at a fixed fd number from 950 up. */
int fk_new_object(const char *link, guint32 mode, guint64 rdev, int type, fk_group *g);
/* The object of this type behind fd, or NULL. */
fk_obj *fk_obj_get(int fd, int type);

/* ---- type1 (fake-kernel-type1.c) ---- */
void fk_free_group(gpointer p);
int fk_container_ioctl(int fd, fk_obj *c, unsigned long request, void *arg);
int fk_group_ioctl(fk_obj *o, unsigned long request, void *arg);
int fk_device_ioctl(fk_obj *o, unsigned long request, void *arg);
/* pread/pwrite on a device fd: the config region, or FK_NOT_MINE */
ssize_t fk_device_rw(fk_obj *o, void *buf, size_t len, off_t off, bool write);
/* The device's migration flags (fake_vfio_add_device's, else fake_mig_setup's). */
guint32 fk_device_mig_flags(fk_obj *o);
int fk_type1_open(const char *path);
int fk_type1_readlink(const char *path, char *buf, size_t len);
/* before fake_kernel_reset() clears the state, and after */
void fk_type1_free(void);
void fk_type1_reset(void);

/* ---- iommufd (fake-kernel-iommufd.c) ---- */
int fk_iommufd_ioctl(fk_obj *o, unsigned long request, void *arg);
int fk_cdev_ioctl(fk_obj *o, unsigned long request, void *arg);
int fk_iommufd_open(const char *path);
int fk_iommufd_dir_entry(const char *dir, const char *prefix, char *buf, size_t len);

/* ---- device identity (fake-kernel-devid.c) ---- */
int fk_devid_fdinfo(int fd, char *buf, size_t len);
void fk_devid_reset(void);

/* ---- KVM (fake-kernel-kvm.c) ---- */
int fk_kvm_ioctl(int fd, fk_obj *o, unsigned long request, void *arg);
int fk_kvm_open(const char *path);

/* ---- migration (fake-kernel-mig.c) ---- */
void fk_free_stream(gpointer p);
int fk_mig_feature(fk_obj *o, struct vfio_device_feature *f);
/* The migration data stream behind fd, or NULL. */
fk_stream *fk_mig_stream(int fd);
ssize_t fk_mig_stream_read(fk_stream *st, void *buf, size_t len);
ssize_t fk_mig_stream_write(fk_stream *st, const void *buf, size_t len);
int fk_mig_stream_ioctl(fk_stream *st, unsigned long request, void *arg);
/* fd was a data stream: forget it (the caller closes the fd). */
bool fk_mig_stream_close(int fd);
/* before fake_kernel_reset() clears the state, and after */
void fk_mig_free(void);
void fk_mig_reset(void);

#endif
