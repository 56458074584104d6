/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libseccomp rules for exactly what the library makes the kernel do. Nothing here is
 * a list of its own: every participant declares the kernel seam ops and the ioctl
 * requests it issues (its vfiocpr_*_uses list, a backend's ops table), lib/kernel.c
 * declares the system calls each op may make, and the rules and the description are
 * built from those. tests/test-seccomp-seen checks the declarations against what the
 * seam really saw. The caller owns the filter and loads it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <string.h>

#include "private.h"

#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#endif

const vfiocpr_part *vfiocpr_seccomp_parts(void)
{
    static vfiocpr_part parts[16];
    static gsize once;

    if (g_once_init_enter(&once)) {
        static const vfiocpr_part fixed[] = {
            { "lib/kernel.c", vfiocpr_kernel_uses },     { "lib/state.c", vfiocpr_state_uses },
            { "lib/fdreg.c", vfiocpr_fdreg_uses },       { "lib/cpr.c", vfiocpr_cpr_uses },
            { "lib/transfer.c", vfiocpr_transfer_uses }, { "lib/vfio.c", vfiocpr_vfio_uses },
            { "lib/device.c", vfiocpr_device_uses },     { "lib/irq.c", vfiocpr_irq_uses },
            { "lib/kvm.c", vfiocpr_kvm_uses },           { "lib/mig.c", vfiocpr_mig_uses },
        };
        gsize n = 0;
        for (; n < G_N_ELEMENTS(fixed); n++)
            parts[n] = fixed[n];
        for (gsize b = 0; vfiocpr_backends[b]; b++, n++) {
            g_assert(n < G_N_ELEMENTS(parts) - 1);
            parts[n].part = vfiocpr_backends[b]->name;
            parts[n].uses = vfiocpr_backends[b]->uses;
        }
        parts[n].part = NULL;
        g_once_init_leave(&once, 1);
    }
    return parts;
}

#define VALID_FLAGS (VFIOCPR_SECCOMP_KVM | VFIOCPR_SECCOMP_EXEC | VFIOCPR_SECCOMP_MIGRATION)

static bool wanted(guint32 decl, guint32 flags)
{
    return !decl || (decl & flags);
}

/* What a set of declarations allows under some flags, each entry once, in the order
 * first declared. */
typedef struct {
    GHashTable *seen; /* "op x", "syscall x", "fcntl n", "ioctl 0xn" */
    GPtrArray *syscalls; /* names */
    GArray *fcntl_cmds;  /* int */
    GPtrArray *ioctls;   /* const vfiocpr_decl * */
} allowed;

static void allowed_clear(allowed *a)
{
    if (a->seen)
        g_hash_table_destroy(a->seen);
    g_ptr_array_free(a->syscalls, TRUE);
    g_array_free(a->fcntl_cmds, TRUE);
    g_ptr_array_free(a->ioctls, TRUE);
}

static bool first(allowed *a, char *key)
{
    if (g_hash_table_contains(a->seen, key)) {
        g_free(key);
        return false;
    }
    g_hash_table_add(a->seen, key);
    return true;
}

static int collect(const vfiocpr_part *parts, guint32 flags, allowed *a, GError **error)
{
    a->seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    a->syscalls = g_ptr_array_new_with_free_func(g_free);
    a->fcntl_cmds = g_array_new(FALSE, FALSE, sizeof(int));
    a->ioctls = g_ptr_array_new();
    for (const vfiocpr_part *p = parts; p->part; p++)
        for (const vfiocpr_decl *d = p->uses; d->name; d++) {
            const vfiocpr_op_syscalls *op;
            g_auto(GStrv) names = NULL;

            if (!wanted(d->flags, flags))
                continue;
            if (d->req) {
                if (first(a, g_strdup("op ioctl")))
                    g_ptr_array_add(a->syscalls, g_strdup("ioctl"));
                if (first(a, g_strdup_printf("ioctl 0x%lx", d->req)))
                    g_ptr_array_add(a->ioctls, (gpointer)d);
                continue;
            }
            op = vfiocpr_kernel_op_lookup(d->name);
            if (!op || strcmp(d->name, "ioctl") == 0) {
                allowed_clear(a);
                return vfiocpr_fail(error, EINVAL, "seccomp: %s declares %s '%s'", p->part,
                                    op ? "the ioctl op without a request" : "an unknown op",
                                    d->name);
            }
            if (!first(a, g_strdup_printf("op %s", d->name)))
                continue;
            names = g_strsplit(op->syscalls, " ", -1);
            for (char **n = names; *n; n++)
                if (strcmp(*n, "fcntl") != 0 && first(a, g_strdup_printf("syscall %s", *n)))
                    g_ptr_array_add(a->syscalls, g_strdup(*n));
            for (gsize i = 0; i < G_N_ELEMENTS(op->fcntl_cmds) && op->fcntl_cmds[i]; i++)
                if (first(a, g_strdup_printf("fcntl %d", op->fcntl_cmds[i])))
                    g_array_append_val(a->fcntl_cmds, op->fcntl_cmds[i]);
        }
    return 0;
}

GHashTable *vfiocpr_seccomp_allowed(const vfiocpr_part *parts, guint32 flags)
{
    allowed a;
    GHashTable *set;

    if (collect(parts, flags, &a, NULL) < 0)
        return NULL;
    set = a.seen;
    a.seen = NULL;
    allowed_clear(&a);
    return set;
}

static const char *fcntl_name(int cmd)
{
    switch (cmd) {
    case F_GETFD:
        return "F_GETFD";
    case F_SETFD:
        return "F_SETFD";
    case F_ADD_SEALS:
        return "F_ADD_SEALS";
    case F_GET_SEALS:
        return "F_GET_SEALS";
    default:
        return "?";
    }
}

VFIOCPR_EXPORT int vfiocpr_seccomp_add_rules(void *filter, uint32_t flags, GError **error)
{
    scmp_filter_ctx ctx = filter;
    allowed a;
    int r = 0, nr;

    if (!ctx || (flags & ~(uint32_t)VALID_FLAGS))
        return vfiocpr_fail(error, EINVAL, "seccomp: bad filter or flags 0x%x", flags);
    if ((r = collect(vfiocpr_seccomp_parts(), flags, &a, error)) < 0)
        return r;
    for (guint i = 0; i < a.syscalls->len && r >= 0; i++) {
        const char *name = g_ptr_array_index(a.syscalls, i);
        if (strcmp(name, "ioctl") == 0)
            continue; /* by request, below */
        nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not on this architecture (e.g. poll on arm64) */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (r < 0 && r != -EEXIST)
            r = vfiocpr_fail(error, r, "seccomp: allowing %s", name);
        else
            r = 0;
    }
    for (guint i = 0; i < a.fcntl_cmds->len && r >= 0; i++) {
        int cmd = g_array_index(a.fcntl_cmds, int, i);
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                             SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)cmd));
        if (r < 0 && r != -EEXIST)
            r = vfiocpr_fail(error, r, "seccomp: allowing fcntl %s", fcntl_name(cmd));
        else
            r = 0;
    }
    for (guint i = 0; i < a.ioctls->len && r >= 0; i++) {
        const vfiocpr_decl *d = g_ptr_array_index(a.ioctls, i);
        /* the request argument is an int in the kernel: compare the low 32 bits only */
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                             SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, d->req));
        if (r < 0 && r != -EEXIST)
            r = vfiocpr_fail(error, r, "seccomp: allowing ioctl %s", d->name);
        else
            r = 0;
    }
    allowed_clear(&a);
    return r;
}

VFIOCPR_EXPORT char *vfiocpr_seccomp_describe(uint32_t flags)
{
    GString *s = g_string_new(NULL);
    allowed a;

    if (collect(vfiocpr_seccomp_parts(), flags & VALID_FLAGS, &a, NULL) < 0)
        return g_string_free(s, FALSE);
    for (guint i = 0; i < a.syscalls->len; i++)
        if (strcmp(g_ptr_array_index(a.syscalls, i), "ioctl") != 0)
            g_string_append_printf(s, "syscall %s\n", (char *)g_ptr_array_index(a.syscalls, i));
    if (a.fcntl_cmds->len) {
        g_string_append(s, "syscall fcntl (");
        for (guint i = 0; i < a.fcntl_cmds->len; i++)
            g_string_append_printf(s, "%s%s", i ? ", " : "",
                                   fcntl_name(g_array_index(a.fcntl_cmds, int, i)));
        g_string_append(s, ")\n");
    }
    for (guint i = 0; i < a.ioctls->len; i++) {
        const vfiocpr_decl *d = g_ptr_array_index(a.ioctls, i);
        g_string_append_printf(s, "ioctl %s (0x%lx)\n", d->name, d->req);
    }
    allowed_clear(&a);
    return g_string_free(s, FALSE);
}
