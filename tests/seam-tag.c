/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tags each recorded scenario with the optional parts of the public API it used,
 * i.e. the VFIOCPR_SECCOMP_* flags a VMM doing the same would pass. Linked into the
 * unit tests with -Wl,--wrap for each entry point (Makefile.am SEAM_WRAP): the
 * tests' calls come here, the library's own calls between its files do not (none of
 * these is called from another file of lib/). The tag comes from what the scenario
 * asked for, never from what the seam saw. */
#include "config.h"

#include "seam-record.h"

#define TAG_KVM seam_record_uses(VFIOCPR_SECCOMP_KVM)
#define TAG_MIG seam_record_uses(VFIOCPR_SECCOMP_MIGRATION)

int __real_vfiocpr_exec(vfiocpr *ctx, const char *path, char *const argv[], char *const envp[],
                        GError **error);
int __wrap_vfiocpr_exec(vfiocpr *ctx, const char *path, char *const argv[], char *const envp[],
                        GError **error);
int __wrap_vfiocpr_exec(vfiocpr *ctx, const char *path, char *const argv[], char *const envp[],
                        GError **error)
{
    seam_record_uses(VFIOCPR_SECCOMP_EXEC);
    return __real_vfiocpr_exec(ctx, path, argv, envp, error);
}

/* Declares __real_F and __wrap_F with the prototype of F, and defines the wrapper. */
#define WRAP(tag, ret, f, params, args)                                                   \
    ret __real_##f params;                                                                \
    ret __wrap_##f params;                                                                \
    ret __wrap_##f params                                                                 \
    {                                                                                     \
        tag;                                                                              \
        return __real_##f args;                                                           \
    }

WRAP(TAG_KVM, int, vfiocpr_kvm_attach,
     (vfiocpr * ctx, int vm_fd, uint32_t gsi_base, vfiocpr_kvm_commit_fn commit, void *user,
      GError **error),
     (ctx, vm_fd, gsi_base, commit, user, error))
WRAP(TAG_KVM, int, vfiocpr_kvm_detach, (vfiocpr * ctx, GError **error), (ctx, error))
WRAP(TAG_MIG, int, vfiocpr_mig_flags, (vfiocpr_device * d, uint32_t *flags, GError **error),
     (d, flags, error))
WRAP(TAG_MIG, int, vfiocpr_mig_get_state,
     (vfiocpr_device * d, vfiocpr_mig_state *state, GError **error), (d, state, error))
WRAP(TAG_MIG, int, vfiocpr_mig_set_state,
     (vfiocpr_device * d, vfiocpr_mig_state target, vfiocpr_mig_state recovery,
      GError **error),
     (d, target, recovery, error))
WRAP(TAG_MIG, int, vfiocpr_mig_data_fd, (vfiocpr_device * d), (d))
WRAP(TAG_MIG, int, vfiocpr_mig_save, (vfiocpr_device * d, int out_fd, uint64_t *bytes,
                                      GError **error),
     (d, out_fd, bytes, error))
WRAP(TAG_MIG, int, vfiocpr_mig_load, (vfiocpr_device * d, int in_fd, uint64_t len,
                                      GError **error),
     (d, in_fd, len, error))
WRAP(TAG_MIG, int, vfiocpr_mig_precopy_info,
     (vfiocpr_device * d, uint64_t *initial_bytes, uint64_t *dirty_bytes, GError **error),
     (d, initial_bytes, dirty_bytes, error))
WRAP(TAG_MIG, int, vfiocpr_mig_precopy_read,
     (vfiocpr_device * d, int out_fd, uint64_t *bytes, GError **error), (d, out_fd, bytes, error))
WRAP(TAG_MIG, int, vfiocpr_mig_save_file,
     (vfiocpr_device *const *devices, unsigned int n, int out_fd, GError **error),
     (devices, n, out_fd, error))
WRAP(TAG_MIG, int, vfiocpr_mig_load_file,
     (vfiocpr_device *const *devices, unsigned int n, int in_fd, GError **error),
     (devices, n, in_fd, error))
WRAP(TAG_MIG, int, vfiocpr_mig_check, (vfiocpr_device * d, uint32_t intent, GError **error),
     (d, intent, error))
