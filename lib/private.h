/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal interfaces shared by the objects in lib/. Not installed. */
#ifndef VFIOCPR_PRIVATE_H
#define VFIOCPR_PRIVATE_H

#include <stddef.h>
#include <sys/types.h>

#include "vfiocpr.h"
#include "state-format.h"

/* ---------------------------------------------------------------- kernel seam */

/* Every syscall the library makes goes through this table (lib/kernel.c holds the
 * real one). Each op returns a non-negative result or -errno, never sets errno for
 * the caller. Tests install a fake kernel with vfiocpr_kernel_set_ops(). */
typedef struct vfiocpr_fd_stat {
    guint64 dev;
    guint64 ino;
    guint64 rdev;
    guint32 mode;
} vfiocpr_fd_stat;

typedef struct vfiocpr_kernel_ops {
    int (*memfd_create)(const char *name, unsigned int flags);
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
    int (*fstat)(int fd, vfiocpr_fd_stat *st, off_t *size);
    /* readlink of /proc/self/fd/N; returns the length, NUL-terminates buf */
    int (*fd_path)(int fd, char *buf, size_t len);
    int (*get_cloexec)(int fd);               /* 1, 0 or -errno */
    int (*set_cloexec)(int fd, bool on);
    /* sets FD_CLOEXEC on every fd in [first, last] */
    int (*cloexec_range)(int first, int last);
    int (*get_seals)(int fd);
    int (*add_seals)(int fd, int seals);
    int (*close)(int fd);
    /* Never returns on success with the real kernel. A fake kernel may return 0 to
     * say "the image was replaced": the caller then behaves as if it never ran again
     * (no rollback), which lets unit tests restore in-process. */
    int (*execve)(const char *path, char *const argv[], char *const envp[]);
    int (*ioctl)(int fd, unsigned long request, void *arg);
    int (*open)(const char *path, int flags);
    int (*readlink)(const char *path, char *buf, size_t len);
    int (*mmap)(int fd, size_t len, int prot, off_t off, void **addr);
    int (*munmap)(void *addr, size_t len);
    /* RLIMIT_MEMLOCK soft limit (G_MAXUINT64 for unlimited) and CAP_IPC_LOCK */
    int (*memlock)(guint64 *limit, bool *cap_ipc_lock);
    int (*eventfd)(unsigned int initval, int flags);
    /* streams (migration data fds, pipes): no offset */
    ssize_t (*read)(int fd, void *buf, size_t len);
    ssize_t (*write)(int fd, const void *buf, size_t len);
    off_t (*lseek)(int fd, off_t off);
    /* 1 if fd is readable now (poll, no wait, nothing consumed), 0 if not */
    int (*readable)(int fd);
    /* the first entry of directory dir whose name starts with prefix, into buf */
    int (*dir_entry)(const char *dir, const char *prefix, char *buf, size_t len);
    /* UNIX sockets for a transfer handover. send_msg: one sendmsg of buf with the
     * n_fds fds as SCM_RIGHTS (MSG_NOSIGNAL). recv_msg: one recvmsg into buf; received
     * fds (MSG_CMSG_CLOEXEC) into fds, their count into *n_fds; -EMSGSIZE when more
     * than max_fds came, -EMFILE when the kernel could not install them all (the
     * control data was cut: RLIMIT_NOFILE); either way every fd that arrived is closed. */
    ssize_t (*send_msg)(int sock, const void *buf, size_t len, const int *fds, unsigned n_fds);
    ssize_t (*recv_msg)(int sock, void *buf, size_t len, int *fds, unsigned max_fds,
                        unsigned *n_fds);
    /* 1 when fd is readable (or hung up) within timeout_ms, 0 on timeout */
    int (*wait_readable)(int fd, int timeout_ms);
    /* SO_PEERCRED of a connected UNIX socket, and this process's effective uid */
    int (*peer_cred)(int sock, guint32 *pid, guint32 *uid, guint32 *my_uid);
    int (*shutdown)(int sock);
    guint32 (*getpid)(void);
    gint64 (*monotonic_ms)(void);
    /* /proc/self/fdinfo/N whole into buf (NUL-terminated, cut at len - 1): its length */
    int (*fdinfo)(int fd, char *buf, size_t len);
} vfiocpr_kernel_ops;

/* Installs ops (NULL: the real kernel); returns the previous table. */
const vfiocpr_kernel_ops *vfiocpr_kernel_set_ops(const vfiocpr_kernel_ops *ops);
const vfiocpr_kernel_ops *vfiocpr_kernel_real(void);
extern const vfiocpr_kernel_ops *vfiocpr_kernel;
#define VK(op, ...) (vfiocpr_kernel->op(__VA_ARGS__))

/* Detects what fd is from the kernel's view (fstat, /proc/self/fd). desc, if not
 * NULL, receives a short human description (the link target). */
int vfiocpr_kernel_fd_kind(int fd, vfiocpr_fd_kind *kind, vfiocpr_fd_stat *st, char *desc,
                           size_t desc_len);
/* The kind from a link name and an fstat already in hand (no syscall). */
vfiocpr_fd_kind vfiocpr_kernel_kind_from_link(const char *link, const vfiocpr_fd_stat *st);
/* True when fstat identity alone cannot tell kinds apart (anon inodes). */
bool vfiocpr_kind_shares_inode(vfiocpr_fd_kind kind);
/* The highest fd kind this library knows. */
#define VFIOCPR_FD_KIND_LAST VFIOCPR_FD_VFIO_CDEV
/* An fd the kernel shows as found serves a registration of kind want: the same
 * kind, or a vfio cdev registered as VFIOCPR_FD_VFIO_DEVICE (what 0.1 called it). */
bool vfiocpr_kind_matches(vfiocpr_fd_kind want, vfiocpr_fd_kind found);

/* ---------------------------------------------------------------- descriptions
 *
 * The tuple types of the lists that grow with the guest (see vfiocpr_describe()). */
#define VFIOCPR_DESC_FD_TYPE "(stsis)"     /* name, id, kind, fd, status */
/* iova, size, offset, flags, memfd, pending, vaddr: a fixed-size struct, so that a
 * container's whole list is one fixed array built with no allocation per mapping
 * (10,000 mappings as a{sv} took ~170 ms to describe) */
#define VFIOCPR_DESC_MAP_TYPE "(tttuibt)"
typedef struct {
    guint64 iova, size, offset;
    guint32 flags;
    gint32 memfd;
    guint8 pending, pad[7];
    guint64 vaddr;
} vfiocpr_desc_map;
G_STATIC_ASSERT(sizeof(vfiocpr_desc_map) == 48);
/* index, vector, fd, status, has-msi, msi-address, msi-data, masked, kvm-gsi */
#define VFIOCPR_DESC_VEC_TYPE "(uuisbtubi)"
/* the same, read with g_variant_get_child(): the strings borrowed from the list */
#define VFIOCPR_DESC_FD_GET "(&st&si&s)"
#define VFIOCPR_DESC_VEC_GET "(uui&sbtubi)"
/*
 * vfiocpr_describe()'s a{sv} objects are built with a GVariantBuilder, one entry
 * at a time: a GVariantDict's hash table cost about twice as much per key, which
 * shows at 10,000 DMA mappings. Each key is added once. */
static inline void vfiocpr_kv(GVariantBuilder *b, const char *key, GVariant *value)
{
    g_variant_builder_add_value(b, g_variant_new_dict_entry(g_variant_new_string(key),
                                                            g_variant_new_variant(value)));
}
static inline void vfiocpr_kv_s(GVariantBuilder *b, const char *key, const char *v)
{
    vfiocpr_kv(b, key, g_variant_new_string(v));
}
static inline void vfiocpr_kv_u(GVariantBuilder *b, const char *key, guint32 v)
{
    vfiocpr_kv(b, key, g_variant_new_uint32(v));
}
static inline void vfiocpr_kv_i(GVariantBuilder *b, const char *key, gint32 v)
{
    vfiocpr_kv(b, key, g_variant_new_int32(v));
}
static inline void vfiocpr_kv_t(GVariantBuilder *b, const char *key, guint64 v)
{
    vfiocpr_kv(b, key, g_variant_new_uint64(v));
}
static inline void vfiocpr_kv_x(GVariantBuilder *b, const char *key, gint64 v)
{
    vfiocpr_kv(b, key, g_variant_new_int64(v));
}
static inline void vfiocpr_kv_b(GVariantBuilder *b, const char *key, bool v)
{
    vfiocpr_kv(b, key, g_variant_new_boolean(v));
}

/* ---------------------------------------------------------------- errors */

int vfiocpr_fail(GError **error, int err, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
/* Whether debug and info messages of the domain "vfiocpr" are shown: the test GLib's
 * default writer applies (G_MESSAGES_DEBUG names the domain or "all"), asked on every
 * call so that a change of the variable is honoured as GLib honours it. The library
 * formats such messages only then (GLib 2.62's g_debug() formats before it drops):
 * nothing is formatted on the blackout path unless asked for. */
bool vfiocpr_log_verbose(void);
#define VFIOCPR_DEBUG(...) \
    G_STMT_START { if (G_UNLIKELY(vfiocpr_log_verbose())) g_debug(__VA_ARGS__); } G_STMT_END
#define VFIOCPR_INFO(...) \
    G_STMT_START { if (G_UNLIKELY(vfiocpr_log_verbose())) g_info(__VA_ARGS__); } G_STMT_END

/* ---------------------------------------------------------------- state format */

/* The constants, sections, features and registry keys: lib/state-format.h. */

guint32 vfiocpr_crc32c(guint32 crc, const void *data, size_t len);
/* The sum mod 2^32 over n records of size bytes of crc32c(i, record i): a table's
 * check value, updated per record in O(1) when one changes. */
guint32 vfiocpr_crc32c_sum(const void *records, guint n, size_t size);
/* The check value of a DMA table (format 1.6): the sum mod 2^32 over its n records
 * of CRC32C(seed = slot index, the record's 48 bytes). */
guint32 vfiocpr_dma_table_check(const void *records, guint n);
/* The portable table version, for tests that compare both paths. */
guint32 vfiocpr_crc32c_sw(guint32 crc, const void *data, size_t len);

/* Wraps a payload (a{sv}) in the fixed header. */
GBytes *vfiocpr_state_encode(GVariant *payload);
/* The header's check values again, after fixed-size values of an encoded state
 * (buf, len: header and payload) were patched in place. */
void vfiocpr_state_reseal(guint8 *buf, gsize len);
/* Parses untrusted bytes: header, checksums, then the payload as a{sv} in normal
 * form. *payload_out is a new reference. */
int vfiocpr_state_decode(GBytes *blob, GVariant **payload_out, guint16 *major, guint16 *minor,
                         GError **error);
/* memfd_create + write + seal; *fd_out is O_CLOEXEC. */
int vfiocpr_state_write_memfd(GBytes *blob, int *fd_out, GError **error);
/* Checks that fd is a sealed memfd of sane size and reads it whole. */
int vfiocpr_state_read_fd(int fd, GBytes **blob_out, GError **error);
/* Parses the environment variable's value. */
int vfiocpr_state_parse_env(const char *value, int *fd_out, GError **error);

/* ---------------------------------------------------------------- transfer wire */

enum {
    VFIOCPR_XFER_OFFER = 1,
    VFIOCPR_XFER_FDS,
    VFIOCPR_XFER_STEP,
    VFIOCPR_XFER_REFUSE,
    VFIOCPR_XFER_COMMIT,
    VFIOCPR_XFER_RELEASED,
};
#define VFIOCPR_XFER_BATCH 250        /* fds a message, under SCM_MAX_FD (253) */
#define VFIOCPR_XFER_MAX_FDS 65536    /* fds a transfer */
#define VFIOCPR_XFER_MAX_PAYLOAD 4096 /* bytes a message */

const char *vfiocpr_xfer_type_name(guint type);
/* SO_PEERCRED: same effective uid unless flags has VFIOCPR_TRANSFER_ANY_UID */
int vfiocpr_xfer_check_peer(int sock, unsigned flags, guint32 *peer_pid, GError **error);
int vfiocpr_xfer_send(int sock, guint type, const char *text, GError **error);
int vfiocpr_xfer_send_state(int sock, int state_fd, const int *fds, guint n, GError **error);
/* deadline in monotonic ms; a message with fds where none belong is a protocol error */
int vfiocpr_xfer_recv(int sock, gint64 deadline, guint *type, char **text, GError **error);
int vfiocpr_xfer_recv_state(int sock, gint64 deadline, int *state_fd, GArray **fds,
                            GError **error);

/* ---------------------------------------------------------------- fd registry */

typedef struct vfiocpr_fdreg vfiocpr_fdreg;

vfiocpr_fdreg *vfiocpr_fdreg_new(void);
void vfiocpr_fdreg_free(vfiocpr_fdreg *reg);
int vfiocpr_fdreg_save(vfiocpr_fdreg *reg, const char *name, guint64 id, int fd,
                       vfiocpr_fd_kind kind, GError **error);
/* The restore proved the kind of the inherited (name, id) by other means than its
 * link name (the device checks): its claim reads no link name. */
void vfiocpr_fdreg_kind_proven(vfiocpr_fdreg *reg, const char *name, guint64 id,
                               vfiocpr_fd_kind kind);
/* 1 and *fd_out when registered (claiming an inherited fd), 0 with no error when
 * nothing is registered under (name, id), < 0 on a real failure (wrong kind, ...). */
int vfiocpr_fdreg_lookup(vfiocpr_fdreg *reg, const char *name, guint64 id,
                         vfiocpr_fd_kind kind, int *fd_out, GError **error);
/* The same, but absence is -ENOENT with the error set (vfiocpr_fd_find's contract). */
int vfiocpr_fdreg_find(vfiocpr_fdreg *reg, const char *name, guint64 id, vfiocpr_fd_kind kind,
                       GError **error);
int vfiocpr_fdreg_forget(vfiocpr_fdreg *reg, const char *name, guint64 id);
guint vfiocpr_fdreg_count(const vfiocpr_fdreg *reg);
guint64 vfiocpr_fdreg_changes(const vfiocpr_fdreg *reg);
/* Pre-exec check: every fd still open and the same file. */
int vfiocpr_fdreg_check(vfiocpr_fdreg *reg, GError **error);
/* Adds the registry's sections to a payload under construction. */
void vfiocpr_fdreg_serialize(vfiocpr_fdreg *reg, GVariantDict *payload);
/* The same; with transfer_fds, every record names its fd by its index in
 * transfer_fds (appended in record order) instead of by number. */
void vfiocpr_fdreg_serialize_for(vfiocpr_fdreg *reg, GVariantDict *payload, GArray *transfer_fds);
/* Loads the records of a transfer state: each names its fd by index into
 * received (every index used exactly once). */
int vfiocpr_fdreg_deserialize_received(vfiocpr_fdreg *reg, GVariant *payload,
                                       const int *received, guint n_received, GError **error);
/* Loads inherited entries from a decoded payload: structural checks only. */
int vfiocpr_fdreg_deserialize(vfiocpr_fdreg *reg, GVariant *payload, GError **error);
/* Checks every inherited fd against the kernel (open, same identity); none may be
 * the state fd itself. */
int vfiocpr_fdreg_validate(vfiocpr_fdreg *reg, int state_fd, GError **error);
/* Sets FD_CLOEXEC on every inherited fd again (one syscall per run of fds). */
int vfiocpr_fdreg_cloexec_inherited(vfiocpr_fdreg *reg, GError **error);
/* Clears FD_CLOEXEC on every registered fd (remembering the old flag); undo restores. */
int vfiocpr_fdreg_clear_cloexec(vfiocpr_fdreg *reg, GError **error);
void vfiocpr_fdreg_undo_cloexec(vfiocpr_fdreg *reg);
/* Ends restart mode for the registry; describes unclaimed inherited fds into out. */
guint vfiocpr_fdreg_finish(vfiocpr_fdreg *reg, GPtrArray *out);
/* Every entry, sorted by (name, id): aa{sv} as documented for vfiocpr_describe(). */
GVariant *vfiocpr_fdreg_describe(vfiocpr_fdreg *reg);
/* The first entry (by name, id) of this kind with this file identity: its fd, name
 * (the registry's copy) and id, or -ENOENT. No syscall. */
int vfiocpr_fdreg_by_identity(vfiocpr_fdreg *reg, vfiocpr_fd_kind kind, guint64 dev,
                              guint64 ino, const char **name, guint64 *id);
/* The identity of fd if it is registered with that kind (no syscall). */
bool vfiocpr_fdreg_identity(vfiocpr_fdreg *reg, int fd, vfiocpr_fd_kind kind,
                            vfiocpr_fd_stat *st);
bool vfiocpr_fdreg_has(vfiocpr_fdreg *reg, const char *name, guint64 id, vfiocpr_fd_kind kind);
/* The fd registered under (name, id) without claiming it, or -ENOENT. */
int vfiocpr_fdreg_peek(vfiocpr_fdreg *reg, const char *name, guint64 id);

/* ---------------------------------------------------------------- context */

typedef struct vfiocpr_vfio vfiocpr_vfio;
vfiocpr_fdreg *vfiocpr_ctx_fdreg(vfiocpr *ctx);
vfiocpr_vfio *vfiocpr_ctx_vfio(vfiocpr *ctx);
/* 0 if the process may change what it holds (what: the call, for the message);
 * -EBUSY after a committed transfer (the devices belong to the new process) and, in
 * a process restoring from a transfer, before it committed (the old process could
 * not take the change back). */
int vfiocpr_ctx_may_change(vfiocpr *ctx, const char *what, GError **error);
/* Something a state could show changed (or may be about to): a prepared state
 * (vfiocpr_state_prepare) is no longer used. Called by every call that changes
 * what the state holds but the DMA mappings' counts and check values. */
void vfiocpr_ctx_changed(vfiocpr *ctx);
/* Tests: compare a prepared state against a fresh encoding at every handover that
 * uses one (a mismatch fails the handover with EIO); ignore_gen uses a prepared
 * state whatever changed (the negative control); hits counts the uses. */
extern bool vfiocpr_prepared_verify;
extern bool vfiocpr_prepared_ignore_gen;
extern guint vfiocpr_prepared_hits;
/* A transfer restore reached a step the old process should hear of (best effort). */
void vfiocpr_ctx_step(vfiocpr *ctx, const char *step);

/* ---------------------------------------------------------------- VFIO containers
 *
 * lib/vfio.c keeps what does not depend on the IOMMU backend: the containers and
 * devices of a context, their DMA mappings (memfd identity, restart claims), the
 * exec phases and the state sections of the mappings. Each backend (lib/type1.c,
 * lib/iommufd.c) implements one ops table. */

/* One DMA mapping as the backends see it: a view of a slot of its container's
 * table (lib/vfio.c), built on the stack for the call. */
typedef struct vfiocpr_mapping {
    guint64 iova, size, offset;
    guint32 flags;     /* VFIOCPR_DMA_READ | VFIOCPR_DMA_WRITE */
    void *vaddr;       /* where the range is mapped now (NULL while pending) */
    int memfd;         /* -1: not backed by a registered memfd, cannot be preserved */
    guint64 mem_dev, mem_ino;
    bool pending;      /* restart: preserved, not yet provided again by the VMM */
} vfiocpr_mapping;

/* What a slot holds besides its record: known only to this image. Zeroed (one
 * calloc) means "preserved, not provided again yet". */
typedef struct {
    void *vaddr;
    gint32 memfd;
    guint8 provided;
    guint8 pad[3];
} vfiocpr_map_rt;

/* The number of mappings of c and the view of slot i (0 <= i < the number). */
guint vfiocpr_container_n_maps(const vfiocpr_container *c);
guint32 vfiocpr_container_table_check(const vfiocpr_container *c);
void vfiocpr_container_mapping(const vfiocpr_container *c, guint i, vfiocpr_mapping *m);

typedef struct vfiocpr_backend_ops vfiocpr_backend_ops;

/* What a part of the library issues, for the seccomp rules: a kernel seam op by its
 * field name in vfiocpr_kernel_ops (req 0), or an ioctl request (the macro's name and
 * number). flags: the VFIOCPR_SECCOMP_* part it belongs to (0: always). The rules
 * and vfiocpr_seccomp_describe() are built from these lists only, and the tests check
 * that what the seam really sees equals them. Lists end with a NULL name. */
typedef struct {
    const char *name;
    unsigned long req;
    guint32 flags;
} vfiocpr_decl;
#define VFIOCPR_OP(op, f) { #op, 0, f }
#define VFIOCPR_IOCTL(x, f) { #x, x, f }
#define VFIOCPR_DECL_END { NULL, 0, 0 }

/* The system calls a seam op may make (space separated: every libc's choice for it,
 * e.g. fstat, newfstatat or statx), and the fcntl commands it uses (0 ends them):
 * lib/kernel.c, next to the real ops. */
typedef struct {
    const char *op;
    const char *syscalls;
    int fcntl_cmds[3];
} vfiocpr_op_syscalls;
extern const vfiocpr_op_syscalls vfiocpr_kernel_op_syscalls[]; /* ends with a NULL op */
const vfiocpr_op_syscalls *vfiocpr_kernel_op_lookup(const char *op);

/* Each participant's list (the backends': their ops table's uses). */
extern const vfiocpr_decl vfiocpr_kernel_uses[];
extern const vfiocpr_decl vfiocpr_state_uses[];
extern const vfiocpr_decl vfiocpr_fdreg_uses[];
extern const vfiocpr_decl vfiocpr_cpr_uses[];
extern const vfiocpr_decl vfiocpr_transfer_uses[];
extern const vfiocpr_decl vfiocpr_vfio_uses[];
extern const vfiocpr_decl vfiocpr_device_uses[];
extern const vfiocpr_decl vfiocpr_irq_uses[];
extern const vfiocpr_decl vfiocpr_kvm_uses[];
extern const vfiocpr_decl vfiocpr_mig_uses[];

typedef struct {
    const char *part; /* the file, for messages */
    const vfiocpr_decl *uses;
} vfiocpr_part;
/* Every participant and backend, ending with a NULL part. */
const vfiocpr_part *vfiocpr_seccomp_parts(void);
/* What parts allow under flags, as a set of strings: "op NAME", "ioctl 0xREQ",
 * "syscall NAME", "fcntl CMD" (tests compare it with what the seam saw). */
GHashTable *vfiocpr_seccomp_allowed(const vfiocpr_part *parts, guint32 flags);

struct vfiocpr_container {
    gint ref;
    vfiocpr *ctx;
    const vfiocpr_backend_ops *ops;
    char *name;
    char *reg_name;    /* registry key of the container fd */
    char *table_key;   /* registry key of its DMA table memfd during a handover */
    int fd;
    bool preserved;    /* came from the incoming state */
    bool claimed;      /* preserved and opened again by the VMM */
    bool prepared;     /* exec in progress: the backend's prepare ran */
    /* The DMA mappings (lib/vfio.c): n_maps fixed records, in the state's own
     * layout, kept current in a table memfd as the VMM maps and unmaps, so that an
     * upgrade only seals it. */
    guint8 *rec;          /* n_maps records: g_malloc'd (rec_owned) or a read-only
                           * mmap of an inherited sealed table (map_len bytes) */
    bool rec_owned;
    gsize map_len;
    guint n_maps, cap;
    vfiocpr_map_rt *rt;   /* cap slots */
    guint32 *idx;         /* open addressing by iova: slot + 1, 0 empty; NULL: not
                           * built (a restored table in ascending iova order) */
    guint idx_mask;
    guint claim_hint;     /* restore: the slot after the last one claimed */
    int table_fd;         /* -1: none yet */
    bool table_sealed;    /* no longer writable: copied to a fresh one before a change */
    bool table_inherited; /* from the state: its fd is not this image's to close on free */
    bool table_registered; /* in the fd registry (sealed: from a handover or the state) */
    bool table_stale;     /* a write to it failed: rewritten whole before use */
    guint32 table_check;  /* sum over slots of CRC32C(seed slot, record) */
    guint n_unbacked;     /* provided mappings with no registered memfd */
    guint64 dma_bytes;    /* sum of the sizes */
    guint n_pending;
    gpointer priv;     /* the backend's own state */
};

struct vfiocpr_backend_ops {
    vfiocpr_backend id;
    const char *name;
    const char *feature;     /* required feature of a state holding such a container */
    const char *reg_prefix;  /* registry name of the container fd: prefix + name */
    vfiocpr_fd_kind fd_kind; /* of the container fd */
    vfiocpr_section_id dma_section; /* state section of its DMA records */
    const vfiocpr_decl *uses; /* every op and ioctl request it issues */
    /* cold start: open (fd < 0) or adopt fd, make c->fd usable, fill c->priv */
    int (*open)(vfiocpr_container *c, int fd, GError **error);
    void (*free_priv)(gpointer priv);
    /* a device by name, cold start or restart */
    int (*attach)(vfiocpr_container *c, const char *name, vfiocpr_device **out,
                  GError **error);
    int (*map)(vfiocpr_container *c, vfiocpr_mapping *m, GError **error);
    /* restart: the VMM provides a preserved range again at vaddr */
    int (*remap)(vfiocpr_container *c, vfiocpr_mapping *m, void *vaddr, GError **error);
    int (*unmap)(vfiocpr_container *c, vfiocpr_mapping *m, GError **error);
    /* exec: blockers (no side effects), prepare (undone by undo) */
    int (*check)(vfiocpr_container *c, GError **error);
    int (*prepare)(vfiocpr_container *c, GError **error);
    void (*undo)(vfiocpr_container *c);
    /* restart ends (after every preserved range was provided again) */
    int (*finish)(vfiocpr_container *c, GError **error);
    /* explicit close: the backend's objects besides the container fd */
    int (*close)(vfiocpr_container *c, GError **error);
    /* state: containers is this backend's containers in record order */
    void (*serialize)(vfiocpr *ctx, GPtrArray *containers, GVariantDict *d);
    /* creates the preserved containers (in record order, appended to containers) and
     * their devices; false-y (0, nothing added) when the state has none */
    int (*deserialize)(vfiocpr *ctx, GVariant *payload, GPtrArray *containers,
                       GError **error);
    /* the backend's own keys of the container's description */
    void (*describe)(vfiocpr_container *c, GVariantBuilder *out);
};

extern const vfiocpr_backend_ops vfiocpr_type1_ops;
extern const vfiocpr_backend_ops vfiocpr_iommufd_ops;
/* Both, NULL-terminated: for what iterates every backend (seccomp). */
extern const vfiocpr_backend_ops *const vfiocpr_backends[];

vfiocpr_vfio *vfiocpr_vfio_new(void);
void vfiocpr_vfio_free(vfiocpr_vfio *v);
GHashTable *vfiocpr_vfio_devices(vfiocpr_vfio *v);
GHashTable *vfiocpr_vfio_containers(vfiocpr_vfio *v);
/* A container of backend ops named name, registered in the context (the context
 * holds the reference returned). */
vfiocpr_container *vfiocpr_container_new(vfiocpr *ctx, const char *name,
                                         const vfiocpr_backend_ops *ops, bool preserved);
/* exec: blockers, without side effects */
int vfiocpr_vfio_check(vfiocpr *ctx, GError **error);
/* exec: every backend's prepare; undone by unprepare */
int vfiocpr_vfio_prepare(vfiocpr *ctx, GError **error);
/* Every container's DMA table fd in the registry (not sealed): what a prepared
 * state names. */
int vfiocpr_vfio_register_tables(vfiocpr *ctx, GError **error);
void vfiocpr_vfio_unprepare(vfiocpr *ctx);
/* Adds the vfio sections and the required features they need to features. */
void vfiocpr_vfio_serialize(vfiocpr *ctx, GVariantDict *payload, GPtrArray *features);
int vfiocpr_vfio_deserialize(vfiocpr *ctx, GVariant *payload, GError **error);
/* restart ends: every preserved range must have been provided again */
int vfiocpr_vfio_finish(vfiocpr *ctx, GError **error);
/* Adds "containers" and "devices" (aa{sv}, sorted by name) to a description. */
void vfiocpr_vfio_describe(vfiocpr *ctx, GVariantBuilder *out);

const char *vfiocpr_container_name(const vfiocpr_container *c);
vfiocpr *vfiocpr_container_ctx(const vfiocpr_container *c);
/* type1 */
bool vfiocpr_container_has_group(const vfiocpr_container *c, int group_id, bool *attached);
guint vfiocpr_container_pending(const vfiocpr_container *c);

/* devices */
vfiocpr_container *vfiocpr_device_container(const vfiocpr_device *d);
int vfiocpr_device_group(const vfiocpr_device *d);
/* A preserved device from the state (its fd must be in the registry with kind). */
int vfiocpr_device_preserved(vfiocpr_container *c, int group, const char *name,
                             vfiocpr_fd_kind kind, vfiocpr_device **out, GError **error);
/* A device just opened on a cold start: registers fd (closed on failure: nothing
 * live can be lost) and adds it to the context. */
int vfiocpr_device_add(vfiocpr_container *c, int group, const char *name, int fd,
                       vfiocpr_fd_kind kind, vfiocpr_device **out, GError **error);
/* Restart: if name is a preserved device not claimed yet, claims it into c and
 * returns 1; 0 if it is not preserved; < 0 on error (another container, bad fd). */
int vfiocpr_device_claim(vfiocpr_container *c, const char *name, vfiocpr_device **out,
                         GError **error);
void vfiocpr_device_set_iommufd_ids(vfiocpr_device *d, guint32 devid, guint32 hwpt_id);
/* What a device fd is, as far as the kernel tells without touching the device:
 * VFIO_DEVICE_GET_INFO (flags, regions, irqs), the PCI ids, class and revision from
 * config space, and the sizes of the first n_sizes regions (PCI: the BARs, never the
 * ROM, whose info maps it; written as none, compared when a state has them). Two
 * functions of the same model and subsystem have equal identities: only fdinfo
 * tells them apart. */
#define VFIOCPR_ID_REGIONS 6 /* VFIO_PCI_BAR0..5 */
typedef struct vfiocpr_device_identity {
    bool known;
    guint32 flags, num_regions, num_irqs;
    guint16 vendor, device, subvendor, subdevice;
    guint32 class_rev; /* config 0x08: revision, then the class code */
    guint32 n_sizes;
    guint64 sizes[VFIOCPR_ID_REGIONS]; /* G_MAXUINT64: the region does not exist */
} vfiocpr_device_identity;
int vfiocpr_device_identity_read(int fd, guint n_sizes, vfiocpr_device_identity *id);
bool vfiocpr_device_identity_equal(const vfiocpr_device_identity *a,
                                   const vfiocpr_device_identity *b);
char *vfiocpr_device_identity_to_string(const vfiocpr_device_identity *id);
/* state 1.5: the identity of every device that has one (section vfio-device-identity) */
void vfiocpr_devices_serialize_identity(GHashTable *devices, GVariantDict *d);
/* restore: every preserved device's inherited fd is the device it is recorded for
 * (fdinfo's vfio-device-syspath where the kernel has it, else the recorded identity;
 * a state before 1.5 has none: then only fdinfo can check). Touches nothing. */
int vfiocpr_devices_verify(vfiocpr *ctx, GVariant *payload, GError **error);
/* after a restore: devices restored from a state without identity get one now,
 * outside the blackout, for the next upgrade's check (best effort) */
void vfiocpr_devices_fill_identity(GHashTable *devices);
vfiocpr_fd_kind vfiocpr_device_kind(const vfiocpr_device *d);
/* The devices of a context (values of devices) sorted by name: a stable order for
 * the state and the description. The caller frees the array, not the devices. */
GPtrArray *vfiocpr_devices_sorted(GHashTable *devices);
/* One device's a{sv} for vfiocpr_describe() (vectors, INTx, migration included). */
GVariant *vfiocpr_device_describe(vfiocpr_device *d);

#endif

/* ---------------------------------------------------------------- interrupts */

typedef struct vfiocpr_irqs vfiocpr_irqs;
vfiocpr_irqs *vfiocpr_irqs_new(void);
void vfiocpr_irqs_free(vfiocpr_irqs *q);
vfiocpr_irqs *vfiocpr_device_irqs(vfiocpr_device *d);
typedef void (*vfiocpr_irq_fn)(vfiocpr_device *d, guint index, guint vector, int fd,
                               bool routable, guint64 address, guint32 data, gpointer user);
/* Every enabled vector of d in a stable order; routable: MSI/MSI-X with a message,
 * not masked. */
void vfiocpr_irqs_foreach(vfiocpr_device *d, vfiocpr_irq_fn fn, gpointer user);
/* The number of enabled vectors of d. */
guint vfiocpr_irqs_count(vfiocpr_device *d);
/* INTx trigger, unmask (resample) fd and GSI, or -ENOENT when not all three exist. */
int vfiocpr_irqs_intx(vfiocpr_device *d, int *trigger, int *resample, guint32 *gsi);
gint vfiocpr_cmp_uint_ptr(gconstpointer a, gconstpointer b);
void vfiocpr_irqs_serialize(GHashTable *devices, GVariantDict *dict);
int vfiocpr_irqs_deserialize(GHashTable *devices, vfiocpr_fdreg *reg, GVariant *payload,
                             GError **error);
/* "vectors" (aa{sv}) and, when set, "intx" (a{sv}) of d's description. */
void vfiocpr_irqs_describe(vfiocpr_device *d, GVariantBuilder *out);

/* ---------------------------------------------------------------- KVM */

typedef struct vfiocpr_kvm vfiocpr_kvm;
vfiocpr_kvm *vfiocpr_ctx_kvm(vfiocpr *ctx);
/* fd (an interrupt eventfd) is going away: its irqfd, if any, is detached first. */
void vfiocpr_kvm_drop_fd(vfiocpr_kvm *k, int fd);
vfiocpr_kvm *vfiocpr_kvm_new(void);
void vfiocpr_kvm_free(vfiocpr_kvm *k);
/* exec: detach irqfds so interrupts accumulate in the eventfds; undo re-attaches */
int vfiocpr_kvm_prepare(vfiocpr *ctx, GError **error);
void vfiocpr_kvm_rollback(vfiocpr *ctx);
/* The GSI the irqfd of eventfd fd is attached to in the VM, if it is. */
bool vfiocpr_kvm_irqfd_gsi(vfiocpr *ctx, int fd, guint32 *gsi);
/* "kvm" of a description: a{sv} */
GVariant *vfiocpr_kvm_describe(vfiocpr *ctx);

/* ---------------------------------------------------------------- migration */

typedef struct vfiocpr_mig vfiocpr_mig;
vfiocpr_mig *vfiocpr_mig_new(void);
void vfiocpr_mig_free(vfiocpr_mig *m);
vfiocpr_mig *vfiocpr_device_mig(vfiocpr_device *d);
/* "migration" (a{sv}) of a device's description, when anything is known */
void vfiocpr_mig_describe(vfiocpr_mig *m, GVariantBuilder *out);

/* ---------------------------------------------------------------- descriptions */

/* The text of vfiocpr_dump() and vfiocpr_state_describe(), from the a{sv} of
 * vfiocpr_describe(): one renderer, so the two cannot drift. */
char *vfiocpr_describe_render(GVariant *desc);
