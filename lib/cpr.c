/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The context and the orchestrator: restore on start-up, exec with rollback, finish.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "private.h"

extern char **environ;

struct vfiocpr {
    gint refcount;
    bool restart;
    bool replaced; /* a fake kernel's execve "succeeded": this image is gone */
    vfiocpr_fdreg *fdreg;
    vfiocpr_vfio *vfio;
    vfiocpr_kvm *kvm;
    /* incoming state, kept for vfiocpr_dump() */
    GVariant *incoming;
    gsize incoming_size;
    guint16 in_major, in_minor;
};

static const char *const kind_names[] = {
    [VFIOCPR_FD_OTHER] = "other",
    [VFIOCPR_FD_MEMFD] = "memfd",
    [VFIOCPR_FD_EVENTFD] = "eventfd",
    [VFIOCPR_FD_VFIO_CONTAINER] = "vfio-container",
    [VFIOCPR_FD_VFIO_GROUP] = "vfio-group",
    [VFIOCPR_FD_VFIO_DEVICE] = "vfio-device",
    [VFIOCPR_FD_KVM] = "kvm",
    [VFIOCPR_FD_IOMMUFD] = "iommufd",
    [VFIOCPR_FD_VFIO_CDEV] = "vfio-cdev",
};

VFIOCPR_EXPORT const char *vfiocpr_fd_kind_to_string(vfiocpr_fd_kind kind)
{
    return (unsigned)kind < G_N_ELEMENTS(kind_names) ? kind_names[kind] : "unknown";
}

vfiocpr_fdreg *vfiocpr_ctx_fdreg(vfiocpr *ctx)
{
    return ctx->fdreg;
}

vfiocpr_vfio *vfiocpr_ctx_vfio(vfiocpr *ctx)
{
    return ctx->vfio;
}

vfiocpr_kvm *vfiocpr_ctx_kvm(vfiocpr *ctx)
{
    return ctx->kvm;
}

/* Reads, checks and loads a state fd into a fresh registry. Touches nothing. */
static int load_state(int state_fd, vfiocpr_fdreg *reg, GVariant **payload, gsize *size,
                      guint16 *major, guint16 *minor, GError **error)
{
    g_autoptr(GBytes) blob = NULL;
    int r;

    r = vfiocpr_state_read_fd(state_fd, &blob, error);
    if (r < 0)
        return r;
    r = vfiocpr_state_decode(blob, payload, major, minor, error);
    if (r < 0)
        return r;
    *size = g_bytes_get_size(blob);
    r = vfiocpr_fdreg_deserialize(reg, *payload, error);
    if (r < 0)
        return r;
    return vfiocpr_fdreg_validate(reg, state_fd, error);
}

VFIOCPR_EXPORT int vfiocpr_new(unsigned int flags, vfiocpr **out, GError **error)
{
    g_autoptr(vfiocpr) ctx = NULL;
    const char *env;
    int state_fd = -1, r;

    if (!out)
        return vfiocpr_fail(error, EINVAL, "vfiocpr_new: NULL out");
    if (flags & ~(unsigned)VFIOCPR_NEW_KEEP_STATE)
        return vfiocpr_fail(error, EINVAL, "vfiocpr_new: unknown flags 0x%x", flags);
    ctx = g_new0(vfiocpr, 1);
    ctx->refcount = 1;
    ctx->fdreg = vfiocpr_fdreg_new();
    ctx->vfio = vfiocpr_vfio_new();
    ctx->kvm = vfiocpr_kvm_new();

    env = g_getenv(VFIOCPR_STATE_ENV);
    if (env) {
        r = vfiocpr_state_parse_env(env, &state_fd, error);
        if (r == 0)
            r = load_state(state_fd, ctx->fdreg, &ctx->incoming, &ctx->incoming_size,
                           &ctx->in_major, &ctx->in_minor, error);
        if (r == 0)
            r = vfiocpr_vfio_deserialize(ctx, ctx->incoming, error);
        if (r < 0) {
            g_prefix_error(error, "restore from %s=%s: ", VFIOCPR_STATE_ENV, env);
            return r;
        }
        if (!(flags & VFIOCPR_NEW_KEEP_STATE)) {
            r = vfiocpr_fdreg_cloexec_inherited(ctx->fdreg, error);
            if (r < 0)
                return r;
            /* Consumed: a child of the VMM must not mistake a stale number for state. */
            VK(close, state_fd);
            g_unsetenv(VFIOCPR_STATE_ENV);
        }
        ctx->restart = true;
        g_info("restart: state format %u.%u, %u fds inherited", ctx->in_major, ctx->in_minor,
               vfiocpr_fdreg_count(ctx->fdreg));
    }
    *out = g_steal_pointer(&ctx);
    return 0;
}

VFIOCPR_EXPORT vfiocpr *vfiocpr_ref(vfiocpr *ctx)
{
    g_return_val_if_fail(ctx, NULL);
    g_atomic_int_inc(&ctx->refcount);
    return ctx;
}

VFIOCPR_EXPORT void vfiocpr_unref(vfiocpr *ctx)
{
    if (!ctx || !g_atomic_int_dec_and_test(&ctx->refcount))
        return;
    vfiocpr_kvm_free(ctx->kvm);
    vfiocpr_vfio_free(ctx->vfio);
    vfiocpr_fdreg_free(ctx->fdreg);
    if (ctx->incoming)
        g_variant_unref(ctx->incoming);
    g_free(ctx);
}

VFIOCPR_EXPORT bool vfiocpr_is_restart(const vfiocpr *ctx)
{
    return ctx && ctx->restart;
}

VFIOCPR_EXPORT int vfiocpr_fd_save(vfiocpr *ctx, const char *name, uint64_t id, int fd,
                                   vfiocpr_fd_kind kind, GError **error)
{
    if (!ctx)
        return vfiocpr_fail(error, EINVAL, "fd registry: save: NULL context");
    return vfiocpr_fdreg_save(ctx->fdreg, name, id, fd, kind, error);
}

VFIOCPR_EXPORT int vfiocpr_fd_find(vfiocpr *ctx, const char *name, uint64_t id,
                                   vfiocpr_fd_kind kind, GError **error)
{
    if (!ctx)
        return vfiocpr_fail(error, EINVAL, "fd registry: find: NULL context");
    return vfiocpr_fdreg_find(ctx->fdreg, name, id, kind, error);
}

VFIOCPR_EXPORT int vfiocpr_fd_forget(vfiocpr *ctx, const char *name, uint64_t id)
{
    return ctx ? vfiocpr_fdreg_forget(ctx->fdreg, name, id) : -EINVAL;
}

VFIOCPR_EXPORT unsigned int vfiocpr_fd_count(const vfiocpr *ctx)
{
    return ctx ? vfiocpr_fdreg_count(ctx->fdreg) : 0;
}

/* ------------------------------------------------------------------ exec */

/* What one exec attempt holds while its phases run; undo needs it. */
typedef struct {
    const char *path;
    char *const *argv;
    char *const *envp;
    int state_fd;
    bool state_fd_open;
    GBytes *blob;
} exec_op;

static GVariant *build_payload(vfiocpr *ctx)
{
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);

    g_variant_dict_insert(&d, "writer", "s", PACKAGE_STRING);
    g_variant_dict_insert(&d, "writer-pid", "u", (guint32)getpid());
    g_variant_dict_insert(&d, "created-usec", "x", g_get_real_time());
    vfiocpr_fdreg_serialize(ctx->fdreg, &d);
    /* A reader that ignored the VFIO sections would never take the preserved DMA
     * ranges over (type1: DMA would block): make older readers refuse instead. */
    {
        g_autoptr(GPtrArray) features = g_ptr_array_new();
        vfiocpr_vfio_serialize(ctx, &d, features);
        g_variant_dict_insert_value(&d, "required-features",
                                    g_variant_new_strv((const char *const *)features->pdata,
                                                       features->len));
    }
    return g_variant_dict_end(&d);
}

static int phase_check(vfiocpr *ctx, exec_op *op G_GNUC_UNUSED, GError **error)
{
    int r = vfiocpr_fdreg_check(ctx->fdreg, error);
    return r < 0 ? r : vfiocpr_vfio_check(ctx, error);
}

/* From here on interrupts wait in the eventfd counters instead of reaching the VM. */
static int phase_detach_irqfds(vfiocpr *ctx, exec_op *op G_GNUC_UNUSED, GError **error)
{
    return vfiocpr_kvm_prepare(ctx, error);
}

static void undo_detach_irqfds(vfiocpr *ctx, exec_op *op G_GNUC_UNUSED)
{
    vfiocpr_kvm_rollback(ctx);
}

/* type1: from here until the new image re-maps, DMA to the ranges blocks in the
 * kernel: the blackout starts (iommufd: nothing to do, DMA goes on). Everything
 * that can fail without side effects ran before. */
static int phase_prepare_dma(vfiocpr *ctx, exec_op *op G_GNUC_UNUSED, GError **error)
{
    return vfiocpr_vfio_prepare(ctx, error);
}

static void undo_prepare_dma(vfiocpr *ctx, exec_op *op G_GNUC_UNUSED)
{
    vfiocpr_vfio_unprepare(ctx);
}

static int phase_write_state(vfiocpr *ctx, exec_op *op, GError **error)
{
    int r;

    op->blob = vfiocpr_state_encode(build_payload(ctx));
    r = vfiocpr_state_write_memfd(op->blob, &op->state_fd, error);
    op->state_fd_open = r == 0;
    return r;
}

static void undo_write_state(vfiocpr *ctx G_GNUC_UNUSED, exec_op *op)
{
    if (op->state_fd_open)
        VK(close, op->state_fd);
    op->state_fd_open = false;
}

static int phase_preserve_fds(vfiocpr *ctx, exec_op *op, GError **error)
{
    int r = vfiocpr_fdreg_clear_cloexec(ctx->fdreg, error);

    if (r < 0)
        return r;
    r = VK(set_cloexec, op->state_fd, false);
    if (r < 0) {
        vfiocpr_fdreg_undo_cloexec(ctx->fdreg);
        return vfiocpr_fail(error, r, "state memfd %d: clearing FD_CLOEXEC", op->state_fd);
    }
    return 0;
}

static void undo_preserve_fds(vfiocpr *ctx, exec_op *op G_GNUC_UNUSED)
{
    vfiocpr_fdreg_undo_cloexec(ctx->fdreg);
    /* the state memfd is closed by undo_write_state */
}

static int phase_execve(vfiocpr *ctx, exec_op *op, GError **error)
{
    char *const *src = op->envp ? op->envp : environ;
    g_autoptr(GPtrArray) env = g_ptr_array_new_with_free_func(g_free);
    const char *prefix = VFIOCPR_STATE_ENV "=";
    int r;

    /* The process environment is never touched: nothing to restore if execve fails,
     * and no setenv() racing with the VMM's other threads. */
    for (gsize i = 0; src && src[i]; i++)
        if (!g_str_has_prefix(src[i], prefix))
            g_ptr_array_add(env, g_strdup(src[i]));
    g_ptr_array_add(env, g_strdup_printf("%s%d", prefix, op->state_fd));
    g_ptr_array_add(env, NULL);
    r = VK(execve, op->path, op->argv, (char *const *)env->pdata);
    if (r == 0) {
        ctx->replaced = true; /* only a fake kernel returns here on success */
        return 0;
    }
    return vfiocpr_fail(error, r, "execve('%s')", op->path);
}

/* The phases of an exec, in order. A phase that fails has undone its own partial
 * work; the phases before it are undone in reverse. Later capabilities (DMA vaddr
 * invalidation, irqfd detach) slot in before "write state". */
static const struct {
    const char *name;
    int (*run)(vfiocpr *ctx, exec_op *op, GError **error);
    void (*undo)(vfiocpr *ctx, exec_op *op);
} exec_phases[] = {
    { "check", phase_check, NULL },
    { "detach KVM irqfds", phase_detach_irqfds, undo_detach_irqfds },
    { "prepare DMA (type1: invalidate vaddrs)", phase_prepare_dma, undo_prepare_dma },
    { "write state", phase_write_state, undo_write_state },
    { "preserve fds", phase_preserve_fds, undo_preserve_fds },
    { "execve", phase_execve, NULL },
};

VFIOCPR_EXPORT int vfiocpr_exec(vfiocpr *ctx, const char *path, char *const argv[],
                                char *const envp[], GError **error)
{
    exec_op op = { .path = path, .argv = argv, .envp = envp, .state_fd = -1 };
    guint i;
    int r = 0;

    if (!ctx || !path || !argv)
        return vfiocpr_fail(error, EINVAL, "exec: NULL %s", !ctx ? "context" : !path ? "path" : "argv");
    if (ctx->replaced)
        return vfiocpr_fail(error, EALREADY, "exec: this context already exec'd");
    for (i = 0; i < G_N_ELEMENTS(exec_phases); i++) {
        r = exec_phases[i].run(ctx, &op, error);
        if (r < 0)
            break;
    }
    if (ctx->replaced) {
        /* the state memfd now belongs to the new image */
        g_clear_pointer(&op.blob, g_bytes_unref);
        return 0;
    }
    /* Only a failed execve() gets here: roll everything back. */
    while (i-- > 0)
        if (exec_phases[i].undo)
            exec_phases[i].undo(ctx, &op);
    g_clear_pointer(&op.blob, g_bytes_unref);
    if (error && *error)
        g_prefix_error(error, "exec '%s': rolled back: ", path);
    g_info("exec '%s' failed and was rolled back: %s", path, g_strerror(-r));
    return r < 0 ? r : -EIO;
}

/* ------------------------------------------------------------------ finish, dump */

VFIOCPR_EXPORT int vfiocpr_finish(vfiocpr *ctx, char ***unclaimed, GError **error)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(g_free);
    guint n;

    if (unclaimed)
        *unclaimed = NULL;
    if (!ctx)
        return vfiocpr_fail(error, EINVAL, "finish: NULL context");
    if (!ctx->restart)
        return 0;
    {
        int r = vfiocpr_vfio_finish(ctx, error);
        if (r < 0)
            return r; /* still in restart mode: the VMM can re-map and finish again */
    }
    n = vfiocpr_fdreg_finish(ctx->fdreg, list);
    for (guint i = 0; i < list->len; i++)
        g_message("finish: inherited fd never claimed, left open and registered: %s",
                  (char *)list->pdata[i]);
    ctx->restart = false;
    if (unclaimed) {
        g_ptr_array_add(list, NULL);
        *unclaimed = (char **)g_ptr_array_free(g_steal_pointer(&list), FALSE);
    }
    return (int)n;
}

static void describe_payload(GString *out, GVariant *payload, gsize size, guint16 major,
                             guint16 minor)
{
    const char *writer = "?";
    guint32 pid = 0;
    gint64 usec = 0;
    g_autoptr(GDateTime) when = NULL;
    g_autofree char *when_s = NULL;

    g_variant_lookup(payload, "writer", "&s", &writer);
    g_variant_lookup(payload, "writer-pid", "u", &pid);
    g_variant_lookup(payload, "created-usec", "x", &usec);
    when = g_date_time_new_from_unix_utc(usec / G_USEC_PER_SEC);
    when_s = when ? g_date_time_format_iso8601(when) : g_strdup("?");
    g_string_append_printf(out, "libvfiocpr state format %u.%u, %zu bytes, written by %s "
                           "(pid %u) at %s\n", major, minor, size, writer, pid, when_s);
}

VFIOCPR_EXPORT char *vfiocpr_dump(vfiocpr *ctx)
{
    GString *out = g_string_new(NULL);

    if (!ctx)
        return g_string_free(out, FALSE);
    if (ctx->incoming)
        describe_payload(out, ctx->incoming, ctx->incoming_size, ctx->in_major, ctx->in_minor);
    g_string_append_printf(out, "mode: %s\n", ctx->restart ? "restart" : "cold");
    vfiocpr_vfio_describe(ctx, out);
    vfiocpr_fdreg_describe(ctx->fdreg, out);
    return g_string_free(out, FALSE);
}

VFIOCPR_EXPORT int vfiocpr_state_describe(int state_fd, char **text, GError **error)
{
    vfiocpr_fdreg *reg = vfiocpr_fdreg_new();
    g_autoptr(GVariant) payload = NULL;
    guint16 major = 0, minor = 0;
    gsize size = 0;
    int r;

    r = load_state(state_fd, reg, &payload, &size, &major, &minor, error);
    if (r == 0 && text) {
        GString *out = g_string_new(NULL);
        describe_payload(out, payload, size, major, minor);
        vfiocpr_fdreg_describe(reg, out);
        *text = g_string_free(out, FALSE);
    }
    vfiocpr_fdreg_free(reg);
    return r;
}
