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

/* The state format this library writes. Readers accept every older format. */
#define VFIOCPR_STATE_FORMAT_MAJOR 1
#define VFIOCPR_STATE_FORMAT_MINOR 0

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
 * not inherit them; vfiocpr_exec() clears it again for exactly the registered fds. */
VFIOCPR_EXPORT int vfiocpr_fd_find(vfiocpr *ctx, const char *name, uint64_t id,
                                   vfiocpr_fd_kind kind, GError **error);
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
 * next exec would write (cold mode). Free with g_free. */
VFIOCPR_EXPORT char *vfiocpr_dump(vfiocpr *ctx);

/* Validates the state held in state_fd without consuming it (nothing is closed, the
 * environment is untouched) and describes it. For exec wrappers and debugging. */
VFIOCPR_EXPORT int vfiocpr_state_describe(int state_fd, char **text, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(vfiocpr, vfiocpr_unref)

#ifdef __cplusplus
}
#endif

#endif /* VFIOCPR_H */
