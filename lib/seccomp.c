/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libseccomp rules for exactly the system calls the library makes (lib/kernel.c is
 * the list's source of truth: every call there is here), ioctl limited to the
 * request numbers it issues. The caller owns the filter and loads it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/vfio.h>
#include <seccomp.h>

#include "private.h"
#include "vfio-compat.h"

#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#endif

typedef struct {
    const char *name;
    guint32 flags; /* 0: always */
} sys_rule;

/* What lib/kernel.c calls, by libc wrapper: fstat may be fstat/newfstatat/statx,
 * open is openat, getrlimit is prlimit64, close_range may be missing (fallback
 * loop uses fcntl). */
static const sys_rule syscalls[] = {
    { "fstat", 0 },         { "newfstatat", 0 },  { "statx", 0 },
    { "readlink", 0 },      { "readlinkat", 0 },  { "close", 0 },
    { "close_range", 0 },   { "pread64", 0 },     { "pwrite64", 0 },
    { "read", 0 },          { "write", 0 },       { "lseek", 0 },
    { "openat", 0 },        { "mmap", 0 },        { "munmap", 0 },
    { "poll", 0 },          { "ppoll", 0 },       { "eventfd2", 0 },
    { "memfd_create", 0 },  { "prlimit64", 0 },   { "capget", 0 },
    { "getdents64", 0 },    { "sendmsg", 0 },     { "recvmsg", 0 },
    { "getsockopt", 0 },    { "shutdown", 0 },    { "getpid", 0 },
    { "execve", VFIOCPR_SECCOMP_EXEC },
};

static const guint32 fcntl_cmds[] = { F_GETFD, F_SETFD, F_ADD_SEALS, F_GET_SEALS };

/* What the backend-neutral parts issue; each IOMMU backend declares its own. */
static const vfiocpr_ioctl_decl ioctls[] = {
    /* device identity: at a cold open, and in a restore on kernels without fdinfo */
    VFIOCPR_IOCTL(VFIO_DEVICE_GET_INFO, 0),
    VFIOCPR_IOCTL(VFIO_DEVICE_GET_REGION_INFO, 0),
    VFIOCPR_IOCTL(VFIO_DEVICE_GET_IRQ_INFO, 0),
    VFIOCPR_IOCTL(VFIO_DEVICE_SET_IRQS, 0),
    /* migration: recovery's last resort and the feature interface */
    VFIOCPR_IOCTL(VFIO_DEVICE_RESET, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_IOCTL(VFIO_DEVICE_FEATURE, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_IOCTL(VFIO_MIG_GET_PRECOPY_INFO, VFIOCPR_SECCOMP_MIGRATION),
    VFIOCPR_IOCTL(KVM_SET_GSI_ROUTING, VFIOCPR_SECCOMP_KVM),
    VFIOCPR_IOCTL(KVM_IRQFD, VFIOCPR_SECCOMP_KVM),
    { NULL, 0, 0 },
};

/* Every declared request: the neutral list, then each backend's. */
static const vfiocpr_ioctl_decl *const *all_lists(void)
{
    static const vfiocpr_ioctl_decl *lists[8];
    if (!lists[0]) {
        gsize n = 0;
        lists[n++] = ioctls;
        for (gsize b = 0; vfiocpr_backends[b]; b++)
            lists[n++] = vfiocpr_backends[b]->ioctls;
        lists[n] = NULL;
    }
    return lists;
}

#define VALID_FLAGS (VFIOCPR_SECCOMP_KVM | VFIOCPR_SECCOMP_EXEC | VFIOCPR_SECCOMP_MIGRATION)

static bool wanted(guint32 rule, guint32 flags)
{
    return !rule || (rule & flags);
}

VFIOCPR_EXPORT int vfiocpr_seccomp_add_rules(void *filter, uint32_t flags, GError **error)
{
    scmp_filter_ctx ctx = filter;
    int r, nr;

    if (!ctx || (flags & ~(uint32_t)VALID_FLAGS))
        return vfiocpr_fail(error, EINVAL, "seccomp: bad filter or flags 0x%x", flags);
    for (gsize i = 0; i < G_N_ELEMENTS(syscalls); i++) {
        if (!wanted(syscalls[i].flags, flags))
            continue;
        nr = seccomp_syscall_resolve_name(syscalls[i].name);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not on this architecture (e.g. poll on arm64) */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (r < 0 && r != -EEXIST)
            return vfiocpr_fail(error, r, "seccomp: allowing %s", syscalls[i].name);
    }
    for (gsize i = 0; i < G_N_ELEMENTS(fcntl_cmds); i++) {
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                             SCMP_A1(SCMP_CMP_EQ, fcntl_cmds[i]));
        if (r < 0 && r != -EEXIST)
            return vfiocpr_fail(error, r, "seccomp: allowing fcntl command %u", fcntl_cmds[i]);
    }
    for (const vfiocpr_ioctl_decl *const *l = all_lists(); *l; l++)
        for (const vfiocpr_ioctl_decl *d = *l; d->name; d++) {
            if (!wanted(d->flags, flags))
                continue;
            /* the request argument is an int in the kernel: compare the low 32 bits only */
            r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                 SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, d->req));
            if (r < 0 && r != -EEXIST)
                return vfiocpr_fail(error, r, "seccomp: allowing ioctl %s", d->name);
        }
    return 0;
}

VFIOCPR_EXPORT char *vfiocpr_seccomp_describe(uint32_t flags)
{
    GString *s = g_string_new(NULL);

    for (gsize i = 0; i < G_N_ELEMENTS(syscalls); i++)
        if (wanted(syscalls[i].flags, flags))
            g_string_append_printf(s, "syscall %s\n", syscalls[i].name);
    g_string_append(s, "syscall fcntl (F_GETFD, F_SETFD, F_ADD_SEALS, F_GET_SEALS)\n");
    for (const vfiocpr_ioctl_decl *const *l = all_lists(); *l; l++)
        for (const vfiocpr_ioctl_decl *d = *l; d->name; d++)
            if (wanted(d->flags, flags))
                g_string_append_printf(s, "ioctl %s (0x%lx)\n", d->name, d->req);
    return g_string_free(s, FALSE);
}
