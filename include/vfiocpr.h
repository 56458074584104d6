/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvfiocpr: keep VFIO devices live while a VMM exec()s a new binary of itself.
 *
 * Conventions used by every call below:
 *  - functions returning int give 0 (or a non-negative result) on success and a
 *    negative errno on failure;
 *  - the optional GError ** is filled on failure in the VFIOCPR_ERROR domain with
 *    code == -return value, and a message naming the object and the step;
 *  - handles are opaque and reference counted; the library never closes an fd it
 *    did not open itself.
 */
#ifndef VFIOCPR_H
#define VFIOCPR_H

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VFIOCPR_BUILDING_LIBRARY)
#define VFIOCPR_EXPORT __attribute__((visibility("default")))
#else
#define VFIOCPR_EXPORT
#endif

/* Name of the environment variable that carries the state memfd number into the
 * new image. */
#define VFIOCPR_STATE_ENV "VFIOCPR_STATE_FD"

/* The state format this library writes. Readers accept every older format.
 * 1.0: fd registry. 1.1: VFIO type1 containers, groups, devices, DMA ranges
 * (required feature "vfio-type1" whenever a container exists). 1.2: interrupt
 * vectors (MSI messages, INTx GSI); optional: their eventfds are in the registry.
 * 1.3: iommufd containers (IOAS), cdev devices and their mappings by file
 * (required feature "iommufd" whenever one exists). 1.4: a transfer's state names
 * each fd by its index in the fds sent with it (required feature "fd-index").
 * 1.5: the identity of each device (GET_INFO, BAR sizes, PCI ids), optional: the
 * restore checks every inherited device fd against it where fdinfo cannot.
 * 1.6: each container's DMA records are in a sealed table memfd of their own, kept
 * current as the VMM maps and unmaps (required feature "dma-table"). */
#define VFIOCPR_STATE_FORMAT_MAJOR 1
#define VFIOCPR_STATE_FORMAT_MINOR 6

#define VFIOCPR_ERROR (vfiocpr_error_quark())
VFIOCPR_EXPORT GQuark vfiocpr_error_quark(void);

typedef struct vfiocpr vfiocpr;

/* What a registered fd is. The kind is verified against the kernel when the fd is
 * saved and again when the new image finds it. */
typedef enum {
    VFIOCPR_FD_OTHER = 0,       /* anything; only its identity is checked */
    VFIOCPR_FD_MEMFD = 1,
    VFIOCPR_FD_EVENTFD = 2,
    VFIOCPR_FD_VFIO_CONTAINER = 3,
    VFIOCPR_FD_VFIO_GROUP = 4,
    VFIOCPR_FD_VFIO_DEVICE = 5,
    VFIOCPR_FD_KVM = 6,         /* /dev/kvm or a KVM anon inode (VM, vCPU) */
    VFIOCPR_FD_IOMMUFD = 7,     /* /dev/iommu (since 0.2) */
    VFIOCPR_FD_VFIO_CDEV = 8,   /* a vfio device cdev, /dev/vfio/devices/vfioN (since 0.2) */
} vfiocpr_fd_kind;

/* Flags for vfiocpr_new(). */
typedef enum {
    VFIOCPR_NEW_DEFAULT = 0,
    /* Validate and load incoming state but leave VFIOCPR_STATE_FD set and the state
     * memfd open, so that a later image (e.g. after an exec wrapper) can consume it. */
    VFIOCPR_NEW_KEEP_STATE = 1u << 0,
} vfiocpr_new_flags;

/* Creates a context. If VFIOCPR_STATE_FD is set, the incoming state is read,
 * checked (header, checksum, seals, every recorded fd open and the same file) and
 * the context starts in restart mode. On failure nothing is closed and the
 * environment is left as it was. */
VFIOCPR_EXPORT int vfiocpr_new(unsigned int flags, vfiocpr **out, GError **error);
VFIOCPR_EXPORT vfiocpr *vfiocpr_ref(vfiocpr *ctx);
/* Dropping the last reference frees the context; registered fds stay open. */
VFIOCPR_EXPORT void vfiocpr_unref(vfiocpr *ctx);
VFIOCPR_EXPORT bool vfiocpr_is_restart(const vfiocpr *ctx);

VFIOCPR_EXPORT const char *vfiocpr_fd_kind_to_string(vfiocpr_fd_kind kind);

/* Named fd registry. (name, id) identifies an fd across exec; name is any
 * NUL-terminated string, id a number the caller chooses (a vector index, ...).
 *
 * vfiocpr_fd_save: registers fd; it is preserved by the next vfiocpr_exec().
 * Fails with -EBADF if fd is not open, -EBADFD if it is not of the given kind,
 * -EEXIST if (name, id) is registered to another fd. */
VFIOCPR_EXPORT int vfiocpr_fd_save(vfiocpr *ctx, const char *name, uint64_t id, int fd,
                                   vfiocpr_fd_kind kind, GError **error);
/* Returns the registered fd (>= 0), or -ENOENT. In restart mode the first find of
 * an inherited fd claims it after checking its kind; -EBADFD if the kind differs.
 * Inherited fds get FD_CLOEXEC back in vfiocpr_new(), so the VMM's own children do
 * not inherit them; vfiocpr_exec() clears it again for exactly the registered fds.
 * -ENOENT fills the error like every other failure: that is the 0.1 contract (a 0.1
 * caller may print err->message after any negative return), so it stays; a caller
 * for whom "not registered" is an expected answer uses vfiocpr_fd_lookup(). */
VFIOCPR_EXPORT int vfiocpr_fd_find(vfiocpr *ctx, const char *name, uint64_t id,
                                   vfiocpr_fd_kind kind, GError **error);
/* (since 0.3) The same look-up with absence as an answer, not an error: returns 1
 * and the fd in *fd_out when (name, id) is registered (claiming it in restart mode,
 * exactly as vfiocpr_fd_find()); 0 when nothing is registered under (name, id), with
 * *fd_out = -1 and no error set; a negative errno with the error set on a real
 * failure (-EBADFD: registered with another kind, or an inherited fd that is not
 * what the state recorded; -EINVAL: NULL ctx or fd_out). *fd_out is -1 on failure. */
VFIOCPR_EXPORT int vfiocpr_fd_lookup(vfiocpr *ctx, const char *name, uint64_t id,
                                     vfiocpr_fd_kind kind, int *fd_out, GError **error);
/* Removes (name, id) from the registry. Never closes the fd. */
VFIOCPR_EXPORT int vfiocpr_fd_forget(vfiocpr *ctx, const char *name, uint64_t id);
/* Number of registered fds. */
VFIOCPR_EXPORT unsigned int vfiocpr_fd_count(const vfiocpr *ctx);

/* Replaces the process image with path, keeping every registered fd open across
 * the exec. envp NULL means the current environment; VFIOCPR_STATE_FD is set in the
 * copy handed to execve, the process environment itself is never modified.
 * Returns only on failure, after a full rollback: FD_CLOEXEC restored on every fd,
 * the state memfd closed, every prepare step undone. */
VFIOCPR_EXPORT int vfiocpr_exec(vfiocpr *ctx, const char *path, char *const argv[],
                                char *const envp[], GError **error);

/* Ends restart mode. Returns the number of inherited fds that were never found
 * (0 when all were claimed), or a negative errno. If unclaimed is not NULL it gets a
 * NULL-terminated array (g_strfreev) describing them. Unclaimed fds are NOT closed:
 * they stay registered (preserved by the next exec) until the VMM forgets them.
 * In cold mode this is a no-op returning 0, so the same VMM code serves both. */
VFIOCPR_EXPORT int vfiocpr_finish(vfiocpr *ctx, char ***unclaimed, GError **error);

/* Human-readable description of the incoming state (restart mode) or of what the
 * next exec would write (cold mode). Free with g_free. Since 0.3 it is the text of
 * vfiocpr_describe() (every line has its counterpart there): the first line of each
 * object is as 0.1 printed it ("libvfiocpr state format ...", "mode: ...",
 * "container 'NAME': ...", "device 'NAME'", "fds: N (KIND n, ...)" and one line per
 * fd), the details follow as indented lines. For programs, use vfiocpr_describe(). */
VFIOCPR_EXPORT char *vfiocpr_dump(vfiocpr *ctx);

/* Validates the state held in state_fd without consuming it (nothing is closed, the
 * environment is untouched) and describes it. For exec wrappers and debugging.
 * Since 0.3 the text is the one vfiocpr_dump() gives for a context restored from
 * that state (containers, devices, mappings and vectors included), every fd
 * "unclaimed"; text may be NULL to validate only. A transfer's state (fds by index)
 * is refused: its fds are not in this process. */
VFIOCPR_EXPORT int vfiocpr_state_describe(int state_fd, char **text, GError **error);

/* (since 0.3) A structured description: everything vfiocpr_dump() shows, as a new
 * (not floating) reference to an a{sv}; free with g_variant_unref(); NULL (and a
 * critical warning) for a NULL ctx. Building it issues no system call. Keys
 * (absent ones are noted; lists are sorted by name, group id, iova, index/vector,
 * fd (name, id)). The three lists that grow with the guest (fds, mappings,
 * vectors) are arrays of tuples, not of a{sv}: GLib builds an a{sv} at about 1 us
 * a key, which made 10,000 mappings cost 170 ms and 2,048 vectors 100 ms, inside
 * an exec wrapper's blackout. docs/describe.md has the same schema.
 *   "mode"        s       "cold" or "restart"
 *   "state"       a{sv}   only in a context restored from a state (kept after finish):
 *       "format-major" u, "format-minor" u, "bytes" t (blob size), "writer" s,
 *       "writer-pid" u, "created-usec" x (UTC), "required-features" as
 *   "fds"         a(stsis) every registered fd: (name, id, kind
 *       (vfiocpr_fd_kind_to_string), fd, status: "registered" (by this image),
 *       "claimed" (inherited and found again) or "unclaimed" (inherited))
 *   "containers"  aa{sv}  "name" s, "backend" s ("type1", "iommufd"), "fd" i (the
 *       registry's while unclaimed), "status" s ("open": this image's, "claimed",
 *       "unclaimed"), "dma-ranges" u, "dma-bytes" t, "remap-pending" u (ranges not
 *       provided again yet), "mappings" a(tttuibt); type1: "groups" aa{sv} ("id" u,
 *       "fd" i, "status" s: "attached" or "preserved"); iommufd: "ioas-id" u,
 *       "pins-pending" b (IOMMU_IOAS_CHANGE_PROCESS not done yet)
 *     mapping:  (iova, size, offset, flags (VFIOCPR_DMA_*), memfd (the registered
 *       memfd with the recorded identity, -1 if none; its name is in "fds"),
 *       pending (preserved, not provided again yet), vaddr (0 while pending)):
 *       a fixed-size struct, g_variant_get_fixed_array() reads the whole list
 *   "devices"     aa{sv}  "name" s, "container" s, "kind" s ("group": from an IOMMU
 *       group, "cdev": a vfio cdev), "group" i (-1 for a cdev), "fd" i, "status" s
 *       (as containers), cdev only: "devid" u, "hwpt-id" u; "vectors" a(uuisbtubi);
 *       "intx" a{sv} when set: "gsi" u, "unmask-fd" i (each when set);
 *       "migration" a{sv} when this image learnt any of: "flags" u, "state" s
 *       (vfiocpr_mig_state_to_string), "data-fd" i
 *     vector:   (index (vfiocpr_irq_index), vector, fd (its eventfd), status
 *       ("enabled": by this image, "claimed", "unclaimed"), has-msi (the guest's
 *       message was recorded), msi-address, msi-data (0 without one), masked,
 *       kvm-gsi (-1 unless its irqfd is attached to the VM))
 *   "kvm"         a{sv}   "vm-fd" i (-1: not attached), "irqfds" aa{sv}: "fd" i,
 *       "gsi" u, "resample-fd" i (INTx only)
 * New keys may appear in later versions; no key or tuple changes type or meaning. */
VFIOCPR_EXPORT GVariant *vfiocpr_describe(vfiocpr *ctx);

/* (since 0.3) vfiocpr_describe() of the state held in state_fd, validated without
 * consuming it exactly as vfiocpr_state_describe() does: "mode" is "restart" and
 * every fd, container, device and vector "unclaimed". *out is a new reference (NULL
 * on failure; out may be NULL to validate only). */
VFIOCPR_EXPORT int vfiocpr_state_describe_variant(int state_fd, GVariant **out,
                                                  GError **error);

/* ------------------------------------------------------------------ transfer
 * (since 0.2)
 *
 * Instead of exec'ing in place, hand everything to a separately started process
 * (a new container image, another cgroup, a process a supervisor started) over a
 * connected UNIX socket. The old process keeps every fd until the new one commits,
 * so a new process that dies, hangs or refuses leaves the old one running with its
 * devices never reset.
 *
 * Old process: vfiocpr_transfer() runs the same preparation as vfiocpr_exec()
 * (blockers, KVM irqfds detached, type1 vaddrs invalidated, the state written and
 * sealed), sends the state memfd and every registered fd (SCM_RIGHTS, in batches),
 * then waits for the commit. On success (0) the devices belong to the new process:
 * this process must not touch them again. It may close its fds (the new process
 * holds the same open files, so no last close resets a device), unmap guest RAM and
 * exit; the library refuses (-EBUSY) every call that would touch a device. On a
 * timeout, a peer that closed the socket or died, or a refusal, everything is taken
 * back: DMA valid at the old addresses again (type1: ranges the new process already
 * re-mapped are invalidated and re-mapped; iommufd: the pinned memory accounting
 * moved back with IOMMU_IOAS_CHANGE_PROCESS), irqfds re-attached, the socket shut
 * down; the error names the last step the peer reported (received, validated,
 * restoring, finishing). The socket stays the caller's to close.
 *
 * New process: vfiocpr_new_incoming() instead of vfiocpr_new(): it checks the
 * peer, receives and validates the state exactly as an exec restore does, and
 * returns a context in restart mode; the VMM runs its normal start-up, and
 * vfiocpr_finish() commits and waits until the old process has let go. Until then
 * the new process must change nothing the old one could not take back: the library
 * refuses (-EBUSY) new DMA mappings, unmaps, closes, new groups, devices and
 * vectors, vectors disabled and migration state changes; it allows what it undoes
 * itself (type1 vaddr updates, claiming preserved objects, KVM routes and irqfds on
 * the new process's own VM). If finish's commit is not answered, the old process
 * took the devices back and this process must exit without touching them. Dropping
 * the context before finish tells the old process to take over at once.
 *
 * Both sides accept one peer running as the same effective uid (SO_PEERCRED),
 * unless VFIOCPR_TRANSFER_ANY_UID; timeout_ms 0 means
 * VFIOCPR_TRANSFER_TIMEOUT_MS. VMM-private data in registered memfds travels the
 * same way as every other registered fd.
 */
#define VFIOCPR_TRANSFER_ANY_UID (1u << 0)
#define VFIOCPR_TRANSFER_TIMEOUT_MS 30000
VFIOCPR_EXPORT int vfiocpr_transfer(vfiocpr *ctx, int sock, unsigned int timeout_ms,
                                    unsigned int flags, GError **error);
VFIOCPR_EXPORT int vfiocpr_new_incoming(int sock, unsigned int timeout_ms, unsigned int flags,
                                        vfiocpr **out, GError **error);

/* Since 0.4. Encodes the state of ctx now, for exec and for transfer, so that the
 * next vfiocpr_exec() or vfiocpr_transfer() does not encode it inside the blackout:
 * it patches in the DMA mappings' record counts and check values and the creation
 * time, and writes it. Call it once the guest runs again after a start-up (after
 * vfiocpr_finish() on a restart) and again after changing anything else. Any change
 * other than vfiocpr_dma_map()/vfiocpr_dma_unmap() within containers that keep at
 * least one mapping (an fd saved or forgotten, a container, device, interrupt, KVM
 * or migration call, a container's first mapping or its last unmap, a failed
 * handover) makes the next handover encode afresh, as without this call: the state
 * handed over is always the context's current one. Also puts each container's DMA
 * table fd in the registry (vfiocpr_fd_lookup "vfio-dma-table:NAME"). 0, or -EBUSY
 * while restoring (before vfiocpr_finish) or during an uncommitted transfer,
 * -EALREADY after a handover. */
VFIOCPR_EXPORT int vfiocpr_state_prepare(vfiocpr *ctx, GError **error);

/* ------------------------------------------------------------------ VFIO type1
 *
 * The VMM's normal start-up calls below serve both a cold start and a restart. In
 * restart mode they resolve to what the previous image preserved: no
 * VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU, VFIO_GROUP_GET_DEVICE_FD or
 * VFIO_DEVICE_RESET is issued, and a DMA map becomes VFIO_IOMMU_MAP_DMA with
 * VFIO_DMA_MAP_FLAG_VADDR at the new address after checking it is the same memfd
 * and offset. Handles belong to their context (they must not outlive it); ref/unref
 * lets a VMM keep one in several places. Nothing here closes a VFIO fd implicitly:
 * closing (which resets a device) is always an explicit call.
 */
typedef struct vfiocpr_container vfiocpr_container;
typedef struct vfiocpr_device vfiocpr_device;

/* DMA map flags, as VFIO_DMA_MAP_FLAG_READ / _WRITE. */
#define VFIOCPR_DMA_READ (1u << 0)
#define VFIOCPR_DMA_WRITE (1u << 1)

/* Opens /dev/vfio/vfio as container `name` (any string unique in the context), or
 * in restart mode finds the preserved one. */
VFIOCPR_EXPORT int vfiocpr_container_open(vfiocpr *ctx, const char *name,
                                          vfiocpr_container **out, GError **error);
/* Like vfiocpr_container_open(), for a container fd the VMM opened itself. In
 * restart mode fd must be -1 (the preserved fd is used). */
VFIOCPR_EXPORT int vfiocpr_container_adopt(vfiocpr *ctx, const char *name, int fd,
                                           vfiocpr_container **out, GError **error);
VFIOCPR_EXPORT vfiocpr_container *vfiocpr_container_ref(vfiocpr_container *c);
VFIOCPR_EXPORT void vfiocpr_container_unref(vfiocpr_container *c);
VFIOCPR_EXPORT int vfiocpr_container_fd(const vfiocpr_container *c);
/* Attaches IOMMU group `group_id` (/dev/vfio/N): checks viability, sets the
 * container and, for the first group, VFIO_SET_IOMMU(TYPE1v2). Returns the group fd.
 * While a restart has DMA vaddrs invalid, only preserved groups can be attached
 * (-EBUSY otherwise, as the kernel would). */
VFIOCPR_EXPORT int vfiocpr_container_add_group(vfiocpr_container *c, int group_id,
                                               GError **error);
/* Maps [iova, iova+size) to vaddr. memfd/offset name the memory behind vaddr; it
 * must be a registered memfd (vfiocpr_fd_save) for the mapping to survive exec
 * (-1: not preservable, vfiocpr_exec() will refuse). In restart mode the range must
 * match a preserved one exactly (iova, size, flags, same memfd, same offset). */
VFIOCPR_EXPORT int vfiocpr_dma_map(vfiocpr_container *c, uint64_t iova, uint64_t size,
                                   void *vaddr, int memfd, uint64_t offset, uint32_t flags,
                                   GError **error);
VFIOCPR_EXPORT int vfiocpr_dma_unmap(vfiocpr_container *c, uint64_t iova, uint64_t size,
                                     GError **error);
/* Explicitly closes the container and its group fds and forgets them. */
VFIOCPR_EXPORT int vfiocpr_container_close(vfiocpr_container *c, GError **error);

/* ------------------------------------------------------------------ IOMMU backends
 * (since 0.2)
 *
 * A container is one IOMMU address space behind one of two backends:
 *  - type1: the legacy VFIO container (/dev/vfio/vfio) and IOMMU groups. Across an
 *    upgrade every DMA vaddr is invalidated (DMA to guest RAM blocks in the kernel
 *    until the new image re-maps it at its new address).
 *  - iommufd: /dev/iommu with one IOAS, devices through their vfio cdev
 *    (/dev/vfio/devices/vfioN). Guest RAM is mapped by file (IOMMU_IOAS_MAP_FILE of
 *    the registered memfd), so nothing is invalidated: device DMA never blocks. The
 *    new image issues no BIND/ATTACH/ALLOC; vfiocpr_finish() moves the pinned-page
 *    accounting to it with one IOMMU_IOAS_CHANGE_PROCESS per container. That needs
 *    CAP_IPC_LOCK or RLIMIT_MEMLOCK of at least twice the pinned bytes in the new
 *    image (the kernel charges the new image before it uncharges the old one, both
 *    to the same user: measured on 7.3); on -ENOMEM nothing changed, restart mode
 *    goes on and finish can be retried.
 * The VMM's start-up code is the same for both, cold start and restart:
 *     vfiocpr_container_open_backend(ctx, "c0", VFIOCPR_BACKEND_AUTO, &c, &err);
 *     vfiocpr_device_attach(c, "0000:00:03.0", &dev, &err);
 *     vfiocpr_dma_map(c, iova, size, vaddr, memfd, offset, flags, &err);
 * In restart mode the backend is the one the state records (AUTO accepts it, an
 * explicit other one is refused). vfiocpr_container_open() stays type1.
 */
typedef enum {
    /* iommufd when /dev/iommu and vfio cdevs (/dev/vfio/devices) exist, else type1 */
    VFIOCPR_BACKEND_AUTO = 0,
    VFIOCPR_BACKEND_TYPE1 = 1,
    VFIOCPR_BACKEND_IOMMUFD = 2,
} vfiocpr_backend;

VFIOCPR_EXPORT const char *vfiocpr_backend_to_string(vfiocpr_backend backend);
/* Opens container `name` with backend (iommufd: opens /dev/iommu and allocates an
 * IOAS), or in restart mode finds the preserved one. */
VFIOCPR_EXPORT int vfiocpr_container_open_backend(vfiocpr *ctx, const char *name,
                                                  vfiocpr_backend backend,
                                                  vfiocpr_container **out, GError **error);
/* The backend actually in use (never AUTO). */
VFIOCPR_EXPORT vfiocpr_backend vfiocpr_container_backend(const vfiocpr_container *c);
/* iommufd: the IOAS id (> 0); type1: -ENOTTY. */
VFIOCPR_EXPORT int vfiocpr_container_ioas_id(const vfiocpr_container *c);
/* Opens device `name` (PCI BDF or mdev UUID) into the container whatever the backend.
 * type1: finds its IOMMU group in sysfs, adds the group if it is not attached yet,
 * then VFIO_GROUP_GET_DEVICE_FD. iommufd: opens its cdev (sysfs DEVICE/vfio-dev/),
 * VFIO_DEVICE_BIND_IOMMUFD, VFIO_DEVICE_ATTACH_IOMMUFD_PT to the IOAS. Restart: the
 * preserved fd, none of these ioctls. Never resets the device. */
VFIOCPR_EXPORT int vfiocpr_device_attach(vfiocpr_container *c, const char *name,
                                         vfiocpr_device **out, GError **error);
/* iommufd devices: the device id and the attached HWPT id from BIND/ATTACH (kept
 * across upgrades); type1: -ENOTTY. */
VFIOCPR_EXPORT int vfiocpr_device_iommufd_ids(const vfiocpr_device *d, uint32_t *devid,
                                              uint32_t *hwpt_id);

/* IOMMU group of a PCI device (BDF like "0000:00:03.0") or mdev (UUID), from sysfs. */
VFIOCPR_EXPORT int vfiocpr_device_group_id(const char *name, GError **error);
/* Gets the device fd for `name` from its group (which must have been added), or in
 * restart mode the preserved fd. Never resets the device. */
VFIOCPR_EXPORT int vfiocpr_device_open(vfiocpr_container *c, int group_id, const char *name,
                                       vfiocpr_device **out, GError **error);
VFIOCPR_EXPORT vfiocpr_device *vfiocpr_device_ref(vfiocpr_device *d);
VFIOCPR_EXPORT void vfiocpr_device_unref(vfiocpr_device *d);
VFIOCPR_EXPORT int vfiocpr_device_fd(const vfiocpr_device *d);
VFIOCPR_EXPORT const char *vfiocpr_device_name(const vfiocpr_device *d);
/* mmaps region `index` (a BAR) of the device, e.g. again after exec. */
VFIOCPR_EXPORT int vfiocpr_device_map_region(vfiocpr_device *d, unsigned int index,
                                             void **addr, uint64_t *size, GError **error);
/* Explicitly closes the device fd (the kernel then resets the device) and forgets it. */
VFIOCPR_EXPORT int vfiocpr_device_close(vfiocpr_device *d, GError **error);

/* ------------------------------------------------------------------ interrupts
 *
 * Per device, per index, per vector: the trigger eventfd (and, for INTx, the unmask
 * eventfd), kept in the fd registry so they cross exec. The kernel holds its own
 * references to them, so after exec they keep counting with no SET_IRQS at all;
 * re-issuing SET_IRQS on a live MSI/MSI-X index would free and re-request every
 * vector, so on a restart the library issues none.
 */
typedef enum {
    VFIOCPR_IRQ_INTX = 0, /* VFIO_PCI_INTX_IRQ_INDEX */
    VFIOCPR_IRQ_MSI = 1,
    VFIOCPR_IRQ_MSIX = 2,
    VFIOCPR_IRQ_ERR = 3,
    VFIOCPR_IRQ_REQ = 4,
} vfiocpr_irq_index;

/* Wires vectors [start, start + count) of index to eventfds. fds gives the caller's
 * eventfds (they get registered) or is NULL to let the library create them
 * (EFD_NONBLOCK | EFD_CLOEXEC); out, if not NULL, receives each vector's eventfd.
 * Cold start: VFIO_DEVICE_SET_IRQS(DATA_EVENTFD | ACTION_TRIGGER). Restart: the
 * preserved eventfds, no ioctl (fds must then be NULL). Vectors added to a live
 * MSI-X index (dynamic MSI-X, kernel 6.5+, VFIO_IRQ_INFO_NORESIZE clear) are set
 * alone. A vector beyond the device's count is refused. */
VFIOCPR_EXPORT int vfiocpr_irq_enable(vfiocpr_device *d, vfiocpr_irq_index index,
                                      unsigned int start, unsigned int count, const int *fds,
                                      int *out, GError **error);
/* INTx unmask eventfd (VFIO_IRQ_SET_ACTION_UNMASK); fd < 0 lets the library create
 * it. Same cold/restart rules. Returns the eventfd; it is also KVM's resample fd. */
VFIOCPR_EXPORT int vfiocpr_irq_intx_unmask(vfiocpr_device *d, int fd, GError **error);
/* Records what the guest programmed for an MSI/MSI-X vector, so KVM routes can be
 * rebuilt after exec. */
VFIOCPR_EXPORT int vfiocpr_irq_set_msi(vfiocpr_device *d, vfiocpr_irq_index index,
                                       unsigned int vector, uint64_t address, uint32_t data,
                                       bool masked, GError **error);
/* The legacy interrupt line (GSI) INTx is routed to in KVM. */
VFIOCPR_EXPORT int vfiocpr_irq_set_intx_gsi(vfiocpr_device *d, uint32_t gsi, GError **error);
/* The eventfd of a vector (>= 0), -ENOENT if not enabled. */
VFIOCPR_EXPORT int vfiocpr_irq_fd(vfiocpr_device *d, vfiocpr_irq_index index,
                                  unsigned int vector);
/* 1 if the vector's eventfd has a non-zero count (an interrupt arrived that nobody
 * consumed, e.g. during the exec), 0 if not; does not consume it. */
VFIOCPR_EXPORT int vfiocpr_irq_pending(vfiocpr_device *d, vfiocpr_irq_index index,
                                       unsigned int vector);
/* Disables index (SET_IRQS with count 0) and closes its eventfds. Explicit only. */
VFIOCPR_EXPORT int vfiocpr_irq_disable(vfiocpr_device *d, vfiocpr_irq_index index,
                                       GError **error);

/* KVM: one route per MSI/MSI-X vector with a message, GSIs gsi_base, gsi_base+1, ... */
typedef struct {
    uint32_t gsi;
    uint32_t data;
    uint64_t address;
} vfiocpr_msi_route;

/* Installs routes in KVM. The VMM owns the VM's routing table: it merges these with
 * its own and issues KVM_SET_GSI_ROUTING once. NULL callback: the library issues
 * KVM_SET_GSI_ROUTING with its routes and the x86 in-kernel irqchip's default ones
 * (GSI 0-15 on the PICs and the IOAPIC, 16-23 on the IOAPIC, as KVM_CREATE_IRQCHIP
 * set them up; since 0.2, before which INTx routes were dropped); a VM with a split
 * irqchip, which refuses those, gets the MSI routes alone. */
typedef int (*vfiocpr_kvm_commit_fn)(void *user, const vfiocpr_msi_route *routes,
                                     unsigned int n_routes, GError **error);

/* Wires every enabled vector of every device into the VM vm_fd: routes (one commit),
 * then KVM_IRQFD per vector (INTx with its unmask eventfd as resample fd). Cold start
 * and restart alike: after exec the VMM passes its NEW VM fd. Interrupts that
 * arrived while no irqfd was attached sit in the eventfd counters; KVM injects them
 * on attach. Returns the number of such pending vectors (>= 0). vfiocpr_exec()
 * detaches the irqfds before exec and re-attaches them on rollback. */
VFIOCPR_EXPORT int vfiocpr_kvm_attach(vfiocpr *ctx, int vm_fd, uint32_t gsi_base,
                                      vfiocpr_kvm_commit_fn commit, void *user,
                                      GError **error);
/* Detaches every irqfd from the VM (KVM_IRQFD deassign). */
VFIOCPR_EXPORT int vfiocpr_kvm_detach(vfiocpr *ctx, GError **error);

/* ------------------------------------------------------------------ migration v2
 *
 * Device state through VFIO migration v2 (VFIO_DEVICE_FEATURE_MIGRATION), independent
 * of exec: save a device's internal state to a file and load it back (snapshot,
 * restore, live migration building blocks).
 */
typedef enum {
    VFIOCPR_MIG_ERROR = 0,
    VFIOCPR_MIG_STOP = 1,
    VFIOCPR_MIG_RUNNING = 2,
    VFIOCPR_MIG_STOP_COPY = 3,
    VFIOCPR_MIG_RESUMING = 4,
    VFIOCPR_MIG_RUNNING_P2P = 5,
    VFIOCPR_MIG_PRE_COPY = 6,
    VFIOCPR_MIG_PRE_COPY_P2P = 7,
} vfiocpr_mig_state;

#define VFIOCPR_MIG_FLAG_STOP_COPY (1u << 0)
#define VFIOCPR_MIG_FLAG_P2P (1u << 1)
#define VFIOCPR_MIG_FLAG_PRE_COPY (1u << 2)

VFIOCPR_EXPORT const char *vfiocpr_mig_state_to_string(vfiocpr_mig_state state);
/* The device's migration flags; 0 (and success) when it has no migration support. */
VFIOCPR_EXPORT int vfiocpr_mig_flags(vfiocpr_device *d, uint32_t *flags, GError **error);
/* The next single arc from cur toward target for a device with these flags, as the
 * kernel defines it (states the device does not support are skipped). -EINVAL if
 * target cannot be reached. */
VFIOCPR_EXPORT int vfiocpr_mig_next_state(uint32_t flags, vfiocpr_mig_state cur,
                                          vfiocpr_mig_state target, vfiocpr_mig_state *next);
VFIOCPR_EXPORT int vfiocpr_mig_get_state(vfiocpr_device *d, vfiocpr_mig_state *state,
                                         GError **error);
/* Moves the device to target one arc at a time. If an arc fails, the device is moved
 * to recovery (VFIOCPR_MIG_ERROR: none); if that fails too, it is reset
 * (VFIO_DEVICE_RESET, back to RUNNING) and the error says so. The data fd of a data
 * state (STOP_COPY, RESUMING, PRE_COPY*) is kept by the library. */
VFIOCPR_EXPORT int vfiocpr_mig_set_state(vfiocpr_device *d, vfiocpr_mig_state target,
                                         vfiocpr_mig_state recovery, GError **error);
/* The data fd of the current data state, or -ENOENT. */
VFIOCPR_EXPORT int vfiocpr_mig_data_fd(vfiocpr_device *d);

/* Saves the device state: STOP -> STOP_COPY, the data drained to out_fd through a
 * buffer sized from VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, then STOP. The device must be
 * in STOP (a VMM stops it, and its vCPUs, first). *bytes gets the size. */
VFIOCPR_EXPORT int vfiocpr_mig_save(vfiocpr_device *d, int out_fd, uint64_t *bytes,
                                    GError **error);
/* Loads len bytes of device state from in_fd: STOP -> RESUMING, write, -> STOP.
 * The device is then ready for RUNNING. */
VFIOCPR_EXPORT int vfiocpr_mig_load(vfiocpr_device *d, int in_fd, uint64_t len, GError **error);
/* Pre-copy: initial and dirty bytes (VFIO_MIG_GET_PRECOPY_INFO); then reads what is
 * available now into out_fd (stops when the driver says "nothing now", ENOMSG). */
VFIOCPR_EXPORT int vfiocpr_mig_precopy_info(vfiocpr_device *d, uint64_t *initial_bytes,
                                            uint64_t *dirty_bytes, GError **error);
VFIOCPR_EXPORT int vfiocpr_mig_precopy_read(vfiocpr_device *d, int out_fd, uint64_t *bytes,
                                            GError **error);

/* The device-state file: a header and one record per device (identity: name,
 * PCI vendor/device, migration flags; length; CRC32C). save_file stops nothing: each
 * device must be in STOP. load_file checks the whole file (every header and CRC) and
 * that each record matches its device before the first device enters RESUMING. */
VFIOCPR_EXPORT int vfiocpr_mig_save_file(vfiocpr_device *const *devices, unsigned int n,
                                         int out_fd, GError **error);
VFIOCPR_EXPORT int vfiocpr_mig_load_file(vfiocpr_device *const *devices, unsigned int n,
                                         int in_fd, GError **error);

/* What the VMM is about to do, for vfiocpr_mig_check(). */
#define VFIOCPR_MIG_INTENT_BACKGROUND_SNAPSHOT (1u << 0)
#define VFIOCPR_MIG_INTENT_POSTCOPY (1u << 1)
#define VFIOCPR_MIG_INTENT_PRECOPY (1u << 2)
/* Refuses, with the reason, an operation this device cannot take part in: no
 * migration support, no STOP_COPY, background snapshot (device DMA writes would be
 * missed), postcopy, pre-copy without VFIO_MIGRATION_PRE_COPY. */
VFIOCPR_EXPORT int vfiocpr_mig_check(vfiocpr_device *d, uint32_t intent, GError **error);

/* ------------------------------------------------------------------ seccomp
 *
 * A sandboxed VMM installs a filter whose default action kills; it must allow what
 * the library itself does. vfiocpr_seccomp_add_rules() adds to the caller's libseccomp
 * filter (a scmp_filter_ctx, passed as void * so this header needs no seccomp.h)
 * exactly the system calls the library makes, with ioctl allowed only for the
 * request numbers it issues.
 */
#define VFIOCPR_SECCOMP_KVM (1u << 0)       /* KVM_SET_GSI_ROUTING, KVM_IRQFD */
#define VFIOCPR_SECCOMP_EXEC (1u << 1)      /* execve and the preparation of an exec */
#define VFIOCPR_SECCOMP_MIGRATION (1u << 2) /* VFIO migration v2 */
VFIOCPR_EXPORT int vfiocpr_seccomp_add_rules(void *scmp_filter_ctx, uint32_t flags,
                                             GError **error);
/* The list those rules allow, one per line, for documentation and audits. */
VFIOCPR_EXPORT char *vfiocpr_seccomp_describe(uint32_t flags);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(vfiocpr, vfiocpr_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vfiocpr_container, vfiocpr_container_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(vfiocpr_device, vfiocpr_device_unref)

#ifdef __cplusplus
}
#endif

#endif /* VFIOCPR_H */
