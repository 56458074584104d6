/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A fake kernel behind the library's kernel seam. By default every op passes
 * through to the real kernel; a test can fail any call, pretend an fd is a VFIO or
 * KVM object, and capture execve. */
#ifndef FAKE_KERNEL_H
#define FAKE_KERNEL_H

#include "private.h"
#include "seam-record.h"

typedef enum {
    FK_MEMFD_CREATE,
    FK_PWRITE,
    FK_PREAD,
    FK_FSTAT,
    FK_FD_PATH,
    FK_GET_CLOEXEC,
    FK_SET_CLOEXEC,
    FK_CLOEXEC_RANGE,
    FK_GET_SEALS,
    FK_ADD_SEALS,
    FK_CLOSE,
    FK_EXECVE,
    FK_IOCTL,
    FK_OPEN,
    FK_READLINK,
    FK_MMAP,
    FK_MUNMAP,
    FK_MEMLOCK,
    FK_EVENTFD,
    FK_READABLE,
    FK_READ,
    FK_WRITE,
    FK_LSEEK,
    FK_DIR_ENTRY,
    FK_SEND_MSG,
    FK_RECV_MSG,
    FK_WAIT_READABLE,
    FK_PEER_CRED,
    FK_SHUTDOWN,
    FK_FDINFO,
    FK_N_OPS,
    FK_ANY = FK_N_OPS,
} fk_op;

typedef int (*fk_execve_fn)(const char *path, char *const argv[], char *const envp[]);

/* Installs the fake (idempotent) and resets all its state. */
void fake_kernel_reset(void);
void fake_kernel_uninstall(void);
const char *fake_kernel_op_name(fk_op op);
/* Fails the nth (1-based) call of op (FK_ANY: of any op) with -err, once. */
void fake_kernel_fail(fk_op op, unsigned nth, int err);
unsigned fake_kernel_calls(fk_op op);
/* The op of the nth call (FK_ANY) since the last reset, for messages. */
fk_op fake_kernel_call_op(unsigned nth);
/* execve is never real: hook (NULL: return -ENOENT). */
void fake_kernel_set_execve(fk_execve_fn fn);
/* From now on fstat/readlink/cloexec on fd see this object instead of the real one.
 * ino/dev come from the caller so identities are fully controlled. */
void fake_kernel_pretend(int fd, const char *link, guint32 mode, guint64 dev, guint64 ino,
                         guint64 rdev);
/* CLOEXEC as seen by the fake for a pretended fd (real fds: ask fcntl). */
int fake_kernel_pretend_cloexec(int fd);



/* ---- VFIO type1 model: /dev/vfio/vfio, groups, device fds, DMA with VADDR ---- */
/* Declares IOMMU group id holding one device (PCI BDF, or an mdev UUID when mdev:
 * an mdev in a container turns VFIO_UPDATE_VADDR off, as on a real kernel). */
void fake_vfio_add_group(int id, const char *device, bool mdev);
/* ---- device models: what a device's PCI config space shows (read with pread at the
 * VFIO_PCI_CONFIG_REGION_INDEX region's offset; the command register is writable and
 * VFIO_DEVICE_RESET restores it). The ids are the ones QEMU's (and the mtty sample's)
 * devices present. fake_vfio_add_group() gives a PCI device fake_pci_edu, an mdev
 * fake_pci_mtty. */
typedef struct {
    guint16 vendor, device;
    guint32 class_code; /* base class << 16 | subclass << 8 | prog-if */
    guint8 revision;
    guint16 subsys_vendor, subsys_device;
    guint16 command;    /* after reset */
    guint16 cfg_size;   /* 256: conventional PCI, 4096: PCI Express */
} fk_pci_model;
extern const fk_pci_model fake_pci_edu;    /* 1234:11e8, class 00ff00 */
extern const fk_pci_model fake_pci_nvme;   /* 1b36:0010, class 010802 */
extern const fk_pci_model fake_pci_e1000e; /* 8086:10d3, class 020000 */
extern const fk_pci_model fake_pci_mtty;   /* 4348:3253, class 070002 */
/* Like fake_vfio_add_group() for a PCI device, with this identity and migration flags
 * of its own (0: no migration support) instead of fake_mig_setup()'s. */
void fake_vfio_add_device(int id, const char *bdf, const fk_pci_model *model, guint32 mig_flags);
/* Times request was issued (any fd) since the last reset. */
unsigned fake_vfio_ioctls(unsigned long request);
/* The nth ioctl with this request fails with -err (once). */
void fake_vfio_fail_ioctl(unsigned long request, unsigned nth, int err);
/* 1 valid, 0 vaddr invalid, -ENOENT no mapping at iova. */
int fake_vfio_dma(int container_fd, guint64 iova, guint64 *size, guint64 *vaddr);
unsigned fake_vfio_dma_count(int container_fd);
/* A new process: locked memory accounting starts at 0 with this limit. */
void fake_vfio_new_process(guint64 locked_limit);
void fake_kernel_set_memlock(guint64 limit, bool cap_ipc_lock);
/* Device fds closed (each would reset a real device). */
unsigned fake_vfio_device_closes(void);
/* Vectors a device has at index (defaults: INTx 1, MSI 1, MSI-X 5, ERR 1, REQ 1);
 * noresize: MSI-X cannot grow while live. */
void fake_vfio_set_irq_count(unsigned index, unsigned count, bool noresize);
/* SET_IRQS calls that touched an already live vector (a real kernel re-requests it). */
unsigned fake_vfio_irq_rerequests(void);
unsigned fake_vfio_irq_live(int device_fd, unsigned index);
int fake_vfio_unmask_fd(int device_fd);
/* ---- what names the device behind a fd (tests/fake-kernel-devid.c): whether
 * /proc/self/fdinfo/N of a device fd names the device (vfio-device-syspath, Linux
 * 6.18+; off by default, like 6.1); the PCI model group's device answers with from
 * now on, through fds already open too (as if another device were behind them). */
void fake_vfio_set_fdinfo_syspath(bool on);
void fake_vfio_set_model(int group, const fk_pci_model *model);
/* ---- KVM model: /dev/kvm, VMs, routing commits, irqfds (EBUSY when assigned twice).
 * Off by default so host tests reach the real /dev/kvm; ioctls on fds the fake does
 * not know go to the real kernel. */
void fake_kvm_enable(void);
int fake_kvm_irqfd_gsi(int vm_fd, int efd); /* -1 if not attached */
unsigned fake_kvm_irqfds(int vm_fd);
unsigned fake_kvm_routings(int vm_fd, unsigned *last_routes);
/* IOAPIC/PIC pin entries in the last KVM_SET_GSI_ROUTING */
unsigned fake_kvm_irqchip_routes(int vm_fd);
/* The VM has a split irqchip: routes to the in-kernel IOAPIC/PIC are refused. */
void fake_kvm_split_irqchip(int vm_fd);
/* ---- migration v2 model: the device has these migration flags (0: none); STOP_COPY
 * yields blob; RESUMING -> STOP accepts exactly blob; PRE_COPY offers the first
 * precopy_initial bytes, then ENOMSG. Every SET must be one legal uAPI arc into a
 * supported state (else EINVAL); all requested arcs are logged. */
void fake_mig_setup(guint32 flags, const void *blob, gsize len, guint precopy_initial);
void fake_mig_force_state(int device_fd, guint state);
guint fake_mig_state(int device_fd);
const GArray *fake_mig_arcs(void); /* guint cur << 8 | next */
void fake_mig_clear_arcs(void);

/* ---- iommufd model: /dev/iommu (IOAS ids, then device and HWPT ids from 1 up per
 * iommufd), each declared group's device also as the cdev /dev/vfio/devices/vfio<id>
 * (sysfs DEVICE/vfio-dev/vfio<id>), bound once; IOAS_MAP and MAP_FILE (memfds only)
 * charge the current process (fake_vfio_new_process starts a new one);
 * CHANGE_PROCESS moves every pin of the iommufd to it, all or nothing, EINVAL if a
 * mapping is not by file, ENOTTY without change_process. Off until enabled. */
void fake_iommufd_enable(bool change_process);
/* bytes charged to the current process (type1 and iommufd) */
guint64 fake_kernel_locked(void);
void fake_kernel_set_locked_limit(guint64 limit);
/* mappings of an iommufd (all IOAS); *pinned_here: bytes charged to this process */
unsigned fake_iommufd_maps(int iommufd_fd, guint64 *pinned_here);
bool fake_iommufd_mapped(int iommufd_fd, guint64 iova, bool *by_file);
/* the iommufd fd a cdev is bound to (-1: none), its devid and attached pt */
int fake_iommufd_cdev_binding(int cdev_fd, guint32 *devid, guint32 *pt);

/* The calling thread becomes a process of its own (a transfer's new process):
 * locked memory from 0 with this limit. fake_kernel_locked() then reports it;
 * fake_kernel_locked_of_main() reports the first thread's process. */
void fake_kernel_become_process(guint64 locked_limit);
guint64 fake_kernel_locked_of_main(void);
/* fd is pretended and has a real file behind it: dups of that file (received over a
 * socket) are the pretended object too. */
void fake_kernel_alias_real(int fd);
/* Runs vfiocpr_transfer() against a peer that takes the state and refuses: returns
 * the state blob a new process would have received (the transfer rolls back). */
GBytes *fake_kernel_capture_transfer(vfiocpr *ctx);
/* SO_PEERCRED reports uid for every peer from now on (a foreign peer, as root). */
void fake_kernel_set_peer_uid(guint32 uid);

/* Runs vfiocpr_exec() once to a failing execve (the fake's default, -ENOENT) and
 * returns how many kernel calls it made, execve included: the range a fault sweep
 * covers. */
unsigned fake_kernel_exec_calls(vfiocpr *ctx);
/* Runs vfiocpr_exec() with a capturing execve and returns the state blob it would
 * have handed to the new image (the exec itself fails and rolls back). */
GBytes *fake_kernel_capture_state(vfiocpr *ctx);
/* Runs vfiocpr_exec() with an execve that succeeds: returns the state memfd the new
 * image gets (open, inheritable). ctx is spent; a new process starts (locked memory
 * accounting at 0, with locked_limit). */
int fake_kernel_exec_ok(vfiocpr *ctx, guint64 locked_limit);
#endif
