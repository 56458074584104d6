/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The context and the orchestrator. What the library carries across an upgrade is
 * held by participants (the fd registry, the IOMMU backends, interrupts, KVM), each
 * with the same lifecycle: check, prepare/undo, serialize/deserialize, finish,
 * describe. An upgrade runs the participants' phases, writes the state, then hands
 * over in one of two ways:
 *  - exec: clear FD_CLOEXEC on the preserved fds and execve() the new binary; the
 *    new image restores from the state memfd named in VFIOCPR_STATE_FD;
 *  - transfer: send the state and the fds over a UNIX socket to a separately
 *    started process and wait for its commit; until then this process keeps every
 *    fd and takes everything back if the peer fails.
 * A handover phase that fails has undone its own partial work; the phases before it
 * are undone in reverse.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "private.h"
#include "probes.h"

extern char **environ;

struct vfiocpr {
    gint refcount;
    bool restart;
    /* handed over: a fake kernel's execve "succeeded", or a transfer committed */
    bool replaced;
    guint32 replaced_by; /* transfer: the new process */
    vfiocpr_fdreg *fdreg;
    vfiocpr_vfio *vfio;
    vfiocpr_kvm *kvm;
    /* incoming state, kept for vfiocpr_dump() */
    GVariant *incoming;
    gsize incoming_size;
    guint16 in_major, in_minor;
    /* restoring from a transfer: the socket to the old process, until it released */
    int xfer_sock;
    guint xfer_timeout_ms;
    guint32 xfer_peer;
    bool xfer_failed; /* the old process took the devices back */
    const char *xfer_last_step;
    /* vfiocpr_state_prepare(): the state encoded ahead, for exec [0] and transfer
     * [1], valid while gen (bumped by every change the state shows but the DMA
     * mappings' counts and check values) and the registry's change count stay */
    guint64 gen;
    struct prepared *ahead[2];
};

bool vfiocpr_prepared_verify;
bool vfiocpr_prepared_ignore_gen;
guint vfiocpr_prepared_hits;

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

static bool uncommitted(const vfiocpr *ctx)
{
    return ctx->xfer_sock >= 0;
}

/* ------------------------------------------------------------------ prepared state
 *
 * What vfiocpr_state_prepare() encoded, and where in it the values live that change
 * without invalidating it: the creation time, and each DMA table's record count
 * and check value (fixed-size values, so patching them keeps the normal form). */
typedef struct {
    const vfiocpr_container *c;
    gsize count_off, check_off;
} prepared_table;

typedef struct prepared {
    guint64 gen, reg_changes;
    GBytes *blob;      /* header + payload */
    GArray *fds;       /* transfer: the fds in state order */
    gsize usec_off;
    GArray *tables;    /* prepared_table, in the state's order */
} prepared;

static void prepared_free(prepared *p)
{
    if (!p)
        return;
    g_bytes_unref(p->blob);
    if (p->fds)
        g_array_unref(p->fds);
    g_array_unref(p->tables);
    g_free(p);
}

static void prepared_drop(vfiocpr *ctx)
{
    for (gsize i = 0; i < G_N_ELEMENTS(ctx->ahead); i++)
        g_clear_pointer(&ctx->ahead[i], prepared_free);
}

void vfiocpr_ctx_changed(vfiocpr *ctx)
{
    if (ctx)
        ctx->gen++;
}

int vfiocpr_ctx_may_change(vfiocpr *ctx, const char *what, GError **error)
{
    if (ctx->replaced && ctx->replaced_by)
        return vfiocpr_fail(error, EBUSY, "%s: the devices were handed over to pid %u (transfer "
                            "committed): this process must not touch them again", what,
                            ctx->replaced_by);
    if (ctx->xfer_failed)
        return vfiocpr_fail(error, EBUSY, "%s: the transfer failed and the old process took "
                            "the devices back: this process must not touch them", what);
    if (uncommitted(ctx))
        return vfiocpr_fail(error, EBUSY, "%s: not before the transfer is committed "
                            "(vfiocpr_finish): the old process could not take it back", what);
    return 0;
}

void vfiocpr_ctx_step(vfiocpr *ctx, const char *step)
{
    if (!uncommitted(ctx) || (ctx->xfer_last_step && strcmp(ctx->xfer_last_step, step) == 0))
        return;
    ctx->xfer_last_step = step;
    if (vfiocpr_xfer_send(ctx->xfer_sock, VFIOCPR_XFER_STEP, step, NULL) < 0)
        VFIOCPR_DEBUG("transfer: could not tell the old process about step '%s'", step);
}

/* ------------------------------------------------------------------ participants */

static int reg_check(vfiocpr *ctx, GError **error)
{
    return vfiocpr_fdreg_check(ctx->fdreg, error);
}

static int reg_finish(vfiocpr *ctx, GPtrArray *unclaimed, GError **error G_GNUC_UNUSED)
{
    vfiocpr_fdreg_finish(ctx->fdreg, unclaimed);
    return 0;
}

static void reg_describe(vfiocpr *ctx, GVariantBuilder *out)
{
    vfiocpr_kv(out, "fds", vfiocpr_fdreg_describe(ctx->fdreg));
}

static void kvm_describe(vfiocpr *ctx, GVariantBuilder *out)
{
    vfiocpr_kv(out, "kvm", vfiocpr_kvm_describe(ctx));
}

static int kvm_prepare(vfiocpr *ctx, GError **error)
{
    /* from here on interrupts wait in the eventfd counters instead of reaching the VM */
    return vfiocpr_kvm_prepare(ctx, error);
}

static void kvm_undo(vfiocpr *ctx)
{
    vfiocpr_kvm_rollback(ctx);
}

static int vfio_finish(vfiocpr *ctx, GPtrArray *unclaimed G_GNUC_UNUSED, GError **error)
{
    return vfiocpr_vfio_finish(ctx, error);
}

static void vfio_serialize(vfiocpr *ctx, GVariantDict *d, GPtrArray *features)
{
    vfiocpr_vfio_serialize(ctx, d, features);
}

static void irqs_serialize(vfiocpr *ctx, GVariantDict *d, GPtrArray *features G_GNUC_UNUSED)
{
    GHashTable *devices = vfiocpr_vfio_devices(ctx->vfio);
    if (g_hash_table_size(devices))
        vfiocpr_irqs_serialize(devices, d);
}

static int irqs_deserialize(vfiocpr *ctx, GVariant *payload, GError **error)
{
    GHashTable *devices = vfiocpr_vfio_devices(ctx->vfio);
    return g_hash_table_size(devices) ?
               vfiocpr_irqs_deserialize(devices, ctx->fdreg, payload, error) : 0;
}

/* The registry is serialized and loaded by the handover itself (a transfer numbers
 * its fds by index), so its entry has no serialize/deserialize here. Order matters:
 * prepare runs in this order (irqfds detached before DMA is touched), undo, finish
 * and describe in reverse. */
static const struct participant {
    const char *name;
    int (*check)(vfiocpr *ctx, GError **error);
    int (*prepare)(vfiocpr *ctx, GError **error);
    void (*undo)(vfiocpr *ctx);
    void (*serialize)(vfiocpr *ctx, GVariantDict *d, GPtrArray *features);
    int (*deserialize)(vfiocpr *ctx, GVariant *payload, GError **error);
    int (*finish)(vfiocpr *ctx, GPtrArray *unclaimed, GError **error);
    /* its keys of vfiocpr_describe() (the interrupts are in the devices') */
    void (*describe)(vfiocpr *ctx, GVariantBuilder *out);
} participants[] = {
    { "fd registry", reg_check, NULL, NULL, NULL, NULL, reg_finish, reg_describe },
    { "KVM", NULL, kvm_prepare, kvm_undo, NULL, NULL, NULL, kvm_describe },
    { "IOMMU backends", vfiocpr_vfio_check, vfiocpr_vfio_prepare, vfiocpr_vfio_unprepare,
      vfio_serialize, vfiocpr_vfio_deserialize, vfio_finish, vfiocpr_vfio_describe },
    { "interrupts", NULL, NULL, NULL, irqs_serialize, irqs_deserialize, NULL, NULL },
};

/* ------------------------------------------------------------------ restore */

/* Reads, checks and loads a state fd into a fresh context. received: the fds of a
 * transfer (the state names them by index), NULL for an exec. Touches nothing. */
static int load_sections(vfiocpr *ctx, int state_fd, const int *received, guint n_received,
                         GError **error);

static int load_state(vfiocpr *ctx, int state_fd, const int *received, guint n_received,
                      GError **error)
{
    g_autoptr(GBytes) blob = NULL;
    int r;

    VFIOCPR_PROBE(phase__start, probe_s("restore"), probe_s("read state"));
    r = vfiocpr_state_read_fd(state_fd, &blob, error);
    if (r == 0)
        r = vfiocpr_state_decode_indexed(blob, &ctx->incoming, &ctx->in_major, &ctx->in_minor,
                                         error);
    VFIOCPR_PROBE(phase__end, probe_s("restore"), probe_s("read state"), r);
    if (r < 0)
        return r;
    ctx->incoming_size = g_bytes_get_size(blob);
    r = load_sections(ctx, state_fd, received, n_received, error);
    vfiocpr_section_index_end();
    return r;
}

static int load_sections(vfiocpr *ctx, int state_fd, const int *received, guint n_received,
                         GError **error)
{
    g_autoptr(GVariant) vreq = vfiocpr_section_lookup(ctx->incoming,
                                                      VFIOCPR_SEC_REQUIRED_FEATURES);
    g_autofree const char **req = NULL;
    bool by_index;
    int r = 0;

    by_index = vreq && (req = g_variant_get_strv(vreq, NULL)) &&
               g_strv_contains(req, VFIOCPR_FEATURE_FD_INDEX);
    if (by_index != (received != NULL))
        return vfiocpr_fail(error, EBADMSG, "state: %s", by_index
                            ? "a transfer state (fds by index) cannot be restored from "
                              VFIOCPR_STATE_ENV
                            : "an exec state (fds by number) cannot come over a transfer");
    VFIOCPR_PROBE(phase__start, probe_s("restore"), probe_s("registry"));
    r = vfiocpr_fdreg_deserialize_received(ctx->fdreg, ctx->incoming, received, n_received,
                                           error);
    if (r == 0)
        r = vfiocpr_fdreg_validate(ctx->fdreg, state_fd, error);
    VFIOCPR_PROBE(phase__end, probe_s("restore"), probe_s("registry"), r);
    for (gsize i = 0; r == 0 && i < G_N_ELEMENTS(participants); i++)
        if (participants[i].deserialize) {
            VFIOCPR_PROBE(participant__start, probe_s("restore"), probe_s(participants[i].name));
            r = participants[i].deserialize(ctx, ctx->incoming, error);
            VFIOCPR_PROBE(participant__end, probe_s("restore"), probe_s(participants[i].name), r);
        }
    return r;
}

static vfiocpr *ctx_new(void)
{
    vfiocpr *ctx = g_new0(vfiocpr, 1);
    ctx->refcount = 1;
    ctx->fdreg = vfiocpr_fdreg_new();
    ctx->vfio = vfiocpr_vfio_new();
    ctx->kvm = vfiocpr_kvm_new();
    ctx->xfer_sock = -1;
    return ctx;
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
    ctx = ctx_new();
    env = g_getenv(VFIOCPR_STATE_ENV);
    if (env) {
        VFIOCPR_PROBE(restore__start, probe_s("exec"));
        r = vfiocpr_state_parse_env(env, &state_fd, error);
        if (r == 0)
            r = load_state(ctx, state_fd, NULL, 0, error);
        if (r < 0) {
            g_prefix_error(error, "restore from %s=%s: ", VFIOCPR_STATE_ENV, env);
            VFIOCPR_PROBE(restore__end, probe_s("exec"), r, 0, 0, 0);
            return r;
        }
        if (!(flags & VFIOCPR_NEW_KEEP_STATE)) {
            r = vfiocpr_fdreg_cloexec_inherited(ctx->fdreg, error);
            if (r < 0) {
                VFIOCPR_PROBE(restore__end, probe_s("exec"), r, 0, 0, 0);
                return r;
            }
            /* Consumed: a child of the VMM must not mistake a stale number for state. */
            VK(close, state_fd);
            g_unsetenv(VFIOCPR_STATE_ENV);
        }
        ctx->restart = true;
        VFIOCPR_INFO("restart: state format %u.%u, %u fds inherited", ctx->in_major,
                     ctx->in_minor, vfiocpr_fdreg_count(ctx->fdreg));
        VFIOCPR_PROBE(restore__end, probe_s("exec"), 0, PROBE_COUNTS(ctx));
    }
    *out = g_steal_pointer(&ctx);
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_new_incoming(int sock, unsigned int timeout_ms, unsigned int flags,
                                        vfiocpr **out, GError **error)
{
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GArray) fds = NULL;
    guint32 peer = 0;
    int state_fd = -1, r;

    if (!out || sock < 0)
        return vfiocpr_fail(error, EINVAL, "transfer: receive: bad arguments");
    if (flags & ~(unsigned)VFIOCPR_TRANSFER_ANY_UID)
        return vfiocpr_fail(error, EINVAL, "transfer: receive: unknown flags 0x%x", flags);
    if (!timeout_ms)
        timeout_ms = VFIOCPR_TRANSFER_TIMEOUT_MS;
    VFIOCPR_PROBE(restore__start, probe_s("transfer"));
    r = vfiocpr_xfer_check_peer(sock, flags, &peer, error);
    if (r < 0) {
        VFIOCPR_PROBE(restore__end, probe_s("transfer"), r, 0, 0, 0);
        return r;
    }
    VFIOCPR_PROBE(phase__start, probe_s("restore"), probe_s("receive"));
    r = vfiocpr_xfer_recv_state(sock, VK(monotonic_ms) + timeout_ms, &state_fd, &fds, error);
    VFIOCPR_PROBE(phase__end, probe_s("restore"), probe_s("receive"), r);
    if (r < 0) {
        VFIOCPR_PROBE(restore__end, probe_s("transfer"), r, 0, 0, 0);
        vfiocpr_xfer_send(sock, VFIOCPR_XFER_REFUSE, (error && *error) ? (*error)->message :
                          "receiving the state failed", NULL);
        g_prefix_error(error, "transfer from pid %u: receive: ", peer);
        return r;
    }
    vfiocpr_xfer_send(sock, VFIOCPR_XFER_STEP, "received", NULL);
    ctx = ctx_new();
    r = load_state(ctx, state_fd, (const int *)(void *)fds->data, fds->len, error);
    VK(close, state_fd); /* consumed either way */
    if (r < 0) {
        /* what came is a copy of what the old process holds: closing it loses nothing */
        for (guint i = 0; i < fds->len; i++)
            VK(close, g_array_index(fds, int, i));
        vfiocpr_xfer_send(sock, VFIOCPR_XFER_REFUSE, (error && *error) ? (*error)->message :
                          "the state was refused", NULL);
        g_prefix_error(error, "transfer from pid %u: validate: ", peer);
        VFIOCPR_PROBE(restore__end, probe_s("transfer"), r, 0, 0, 0);
        return r;
    }
    ctx->restart = true;
    ctx->xfer_sock = sock;
    ctx->xfer_peer = peer;
    ctx->xfer_timeout_ms = timeout_ms;
    vfiocpr_ctx_step(ctx, "validated");
    VFIOCPR_INFO("restart by transfer from pid %u: state format %u.%u, %u fds received", peer,
                 ctx->in_major, ctx->in_minor, fds->len);
    VFIOCPR_PROBE(restore__end, probe_s("transfer"), 0, PROBE_COUNTS(ctx));
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
    if (uncommitted(ctx)) /* the VMM gave up: let the old process take over at once */
        vfiocpr_xfer_send(ctx->xfer_sock, VFIOCPR_XFER_REFUSE, "the new process dropped its "
                          "context before committing", NULL);
    prepared_drop(ctx);
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
    vfiocpr_ctx_changed(ctx);
    return vfiocpr_fdreg_save(ctx->fdreg, name, id, fd, kind, error);
}

VFIOCPR_EXPORT int vfiocpr_fd_find(vfiocpr *ctx, const char *name, uint64_t id,
                                   vfiocpr_fd_kind kind, GError **error)
{
    int r;

    if (!ctx)
        return vfiocpr_fail(error, EINVAL, "fd registry: find: NULL context");
    r = vfiocpr_fdreg_find(ctx->fdreg, name, id, kind, error);
    if (r >= 0)
        vfiocpr_ctx_step(ctx, "restoring"); /* the VMM's start-up takes things over */
    return r;
}

VFIOCPR_EXPORT int vfiocpr_fd_lookup(vfiocpr *ctx, const char *name, uint64_t id,
                                     vfiocpr_fd_kind kind, int *fd_out, GError **error)
{
    int fd = -1, r;

    if (fd_out)
        *fd_out = -1;
    if (!ctx || !fd_out)
        return vfiocpr_fail(error, EINVAL, "fd registry: lookup: NULL %s",
                            !ctx ? "context" : "fd_out");
    r = vfiocpr_fdreg_lookup(ctx->fdreg, name, id, kind, &fd, error);
    if (r > 0) {
        vfiocpr_ctx_step(ctx, "restoring");
        *fd_out = fd;
    }
    return r;
}

VFIOCPR_EXPORT int vfiocpr_fd_forget(vfiocpr *ctx, const char *name, uint64_t id)
{
    if (!ctx)
        return -EINVAL;
    vfiocpr_ctx_changed(ctx);
    return vfiocpr_fdreg_forget(ctx->fdreg, name, id);
}

VFIOCPR_EXPORT unsigned int vfiocpr_fd_count(const vfiocpr *ctx)
{
    return ctx ? vfiocpr_fdreg_count(ctx->fdreg) : 0;
}

/* ------------------------------------------------------------------ handover */

/* What one handover attempt holds while its phases run; undo needs it. */
typedef struct {
    const char *path; /* exec */
    char *const *argv;
    char *const *envp;
    int sock; /* transfer */
    guint timeout_ms;
    guint flags;
    guint32 peer;
    const char *peer_step; /* the last step the new process reported */
    GArray *fds;           /* transfer: the fds in state order */
    int state_fd;
    bool state_fd_open;
    GBytes *blob;
} handover_op;

static GVariant *build_payload(vfiocpr *ctx, GArray *transfer_fds, gint64 usec)
{
    g_auto(GVariantDict) d = G_VARIANT_DICT_INIT(NULL);
    g_autoptr(GPtrArray) features = g_ptr_array_new();

    vfiocpr_section_insert(&d, VFIOCPR_SEC_WRITER, g_variant_new_string(PACKAGE_STRING));
    vfiocpr_section_insert(&d, VFIOCPR_SEC_WRITER_PID,
                           g_variant_new_uint32(vfiocpr_kernel->getpid()));
    vfiocpr_section_insert(&d, VFIOCPR_SEC_CREATED_USEC, g_variant_new_int64(usec));
    vfiocpr_fdreg_serialize_for(ctx->fdreg, &d, transfer_fds);
    if (transfer_fds)
        g_ptr_array_add(features, (gpointer)VFIOCPR_FEATURE_FD_INDEX);
    /* A reader that ignored the VFIO sections would never take the preserved DMA
     * ranges over (type1: DMA would block): make older readers refuse instead. */
    for (gsize i = 0; i < G_N_ELEMENTS(participants); i++)
        if (participants[i].serialize)
            participants[i].serialize(ctx, &d, features);
    vfiocpr_section_insert(&d, VFIOCPR_SEC_REQUIRED_FEATURES,
                           g_variant_new_strv((const char *const *)features->pdata, features->len));
    return g_variant_dict_end(&d);
}

static int phase_check(vfiocpr *ctx, handover_op *op G_GNUC_UNUSED, GError **error)
{
    for (gsize i = 0; i < G_N_ELEMENTS(participants); i++) {
        int r;
        if (!participants[i].check)
            continue;
        VFIOCPR_PROBE(participant__start, probe_s("check"), probe_s(participants[i].name));
        r = participants[i].check(ctx, error);
        VFIOCPR_PROBE(participant__end, probe_s("check"), probe_s(participants[i].name), r);
        if (r < 0)
            return r;
    }
    return 0;
}

/* type1: from here until the new image re-maps, DMA to the ranges blocks in the
 * kernel: the blackout starts (iommufd: nothing to do, DMA goes on). Everything
 * that can fail without side effects ran before. */
static int phase_prepare(vfiocpr *ctx, handover_op *op G_GNUC_UNUSED, GError **error)
{
    for (gsize i = 0; i < G_N_ELEMENTS(participants); i++) {
        int r;
        if (!participants[i].prepare)
            continue;
        VFIOCPR_PROBE(participant__start, probe_s("prepare"), probe_s(participants[i].name));
        r = participants[i].prepare(ctx, error);
        VFIOCPR_PROBE(participant__end, probe_s("prepare"), probe_s(participants[i].name), r);
        if (r < 0) {
            g_prefix_error(error, "%s: ", participants[i].name);
            while (i-- > 0)
                if (participants[i].undo)
                    participants[i].undo(ctx);
            return r;
        }
    }
    return 0;
}

static void undo_prepare(vfiocpr *ctx, handover_op *op G_GNUC_UNUSED)
{
    for (gsize i = G_N_ELEMENTS(participants); i-- > 0;)
        if (participants[i].undo)
            participants[i].undo(ctx);
}

/* Where the value v of a serialized payload (a child of it, however deep) starts in
 * the encoded state; 0 when it is not a slice of it. */
static gsize offset_in(GBytes *blob, GVariant *v, gsize size)
{
    gsize len;
    const guint8 *base = g_bytes_get_data(blob, &len);
    const guint8 *p = g_variant_get_data(v);

    if (!p || g_variant_get_size(v) != size || p < base + VFIOCPR_STATE_HEADER_SIZE ||
        p + size > base + len)
        return 0;
    return (gsize)(p - base);
}

/* The encoded state of ctx with the places of its changing values, or NULL if
 * they cannot be found (then every handover encodes afresh). */
static prepared *prepared_new(vfiocpr *ctx, bool transfer)
{
    g_autoptr(GArray) fds = transfer ? g_array_new(FALSE, FALSE, sizeof(int)) : NULL;
    prepared *p = g_new0(prepared, 1);
    g_autoptr(GBytes) pl = NULL;
    g_autoptr(GVariant) payload = NULL, usec = NULL, tables = NULL;
    gsize len;

    p->gen = ctx->gen;
    p->reg_changes = vfiocpr_fdreg_changes(ctx->fdreg);
    p->blob = vfiocpr_state_encode(build_payload(ctx, fds, g_get_real_time()));
    p->fds = g_steal_pointer(&fds);
    p->tables = g_array_new(FALSE, FALSE, sizeof(prepared_table));
    /* the offsets from GVariant's own reading of the encoded bytes, in place */
    len = g_bytes_get_size(p->blob);
    pl = g_bytes_new_from_bytes(p->blob, VFIOCPR_STATE_HEADER_SIZE,
                                len - VFIOCPR_STATE_HEADER_SIZE);
    payload = g_variant_ref_sink(g_variant_new_from_bytes(G_VARIANT_TYPE_VARDICT, pl, TRUE));
    usec = g_variant_lookup_value(payload, VFIOCPR_SECTION(CREATED_USEC), G_VARIANT_TYPE_INT64);
    if (!usec || !(p->usec_off = offset_in(p->blob, usec, 8)))
        goto fail;
    tables = vfiocpr_section_lookup(payload, VFIOCPR_SEC_DMA_TABLES);
    for (gsize i = 0; tables && i < g_variant_n_children(tables); i++) {
        g_autoptr(GVariant) el = g_variant_get_child_value(tables, i);
        g_autoptr(GVariant) name = g_variant_get_child_value(el, 0);
        g_autoptr(GVariant) count = g_variant_get_child_value(el, 1);
        g_autoptr(GVariant) check = g_variant_get_child_value(el, 2);
        prepared_table t = {
            .c = g_hash_table_lookup(vfiocpr_vfio_containers(ctx->vfio),
                                     g_variant_get_string(name, NULL)),
            .count_off = offset_in(p->blob, count, 4),
            .check_off = offset_in(p->blob, check, 4),
        };
        if (!t.c || !t.count_off || !t.check_off ||
            g_variant_get_uint32(count) != vfiocpr_container_n_maps(t.c) ||
            g_variant_get_uint32(check) != vfiocpr_container_table_check(t.c))
            goto fail;
        g_array_append_val(p->tables, t);
    }
    return p;
fail:
    g_warning("state prepare: the changing values were not found in the encoded state: every "
              "handover encodes it afresh");
    prepared_free(p);
    return NULL;
}

static void put_le32(guint8 *p, guint32 v)
{
    v = GUINT32_TO_LE(v);
    memcpy(p, &v, 4);
}

/* The prepared state with today's values, or NULL when something it shows changed
 * since (then the handover encodes afresh). */
static GBytes *prepared_take(vfiocpr *ctx, prepared *p, gint64 usec, GArray *fds)
{
    gsize len;
    guint8 *buf;
    guint64 u = GUINT64_TO_LE((guint64)usec);

    if (!p || (!vfiocpr_prepared_ignore_gen &&
               (p->gen != ctx->gen || p->reg_changes != vfiocpr_fdreg_changes(ctx->fdreg))))
        return NULL;
    /* the containers with a table are those it names: a first mapping or a last
     * unmap changed gen */
    {
        const void *src = g_bytes_get_data(p->blob, &len);
        buf = g_malloc(len);
        memcpy(buf, src, len);
    }
    memcpy(buf + p->usec_off, &u, 8);
    for (guint i = 0; i < p->tables->len; i++) {
        const prepared_table *t = &g_array_index(p->tables, prepared_table, i);
        put_le32(buf + t->count_off, vfiocpr_container_n_maps(t->c));
        put_le32(buf + t->check_off, vfiocpr_container_table_check(t->c));
    }
    vfiocpr_state_reseal(buf, len);
    if (fds)
        g_array_append_vals(fds, p->fds->data, p->fds->len);
    return g_bytes_new_take(buf, len);
}

static int phase_write_state(vfiocpr *ctx, handover_op *op, GError **error)
{
    gint64 usec = g_get_real_time();
    int r;

    op->blob = prepared_take(ctx, ctx->ahead[op->sock >= 0], usec, op->fds);
    if (op->blob) {
        vfiocpr_prepared_hits++;
        if (vfiocpr_prepared_verify) {
            g_autoptr(GArray) fds = op->fds ? g_array_new(FALSE, FALSE, sizeof(int)) : NULL;
            g_autoptr(GBytes) fresh = vfiocpr_state_encode(build_payload(ctx, fds, usec));
            if (!g_bytes_equal(fresh, op->blob) ||
                (fds && (fds->len != op->fds->len ||
                         memcmp(fds->data, op->fds->data, fds->len * sizeof(int)) != 0)))
                return vfiocpr_fail(error, EIO, "the prepared state differs from a fresh "
                                    "encoding of the same context (%zu and %zu bytes): a change "
                                    "did not invalidate it", g_bytes_get_size(op->blob),
                                    g_bytes_get_size(fresh));
        }
    } else {
        op->blob = vfiocpr_state_encode(build_payload(ctx, op->fds, usec));
    }
    r = vfiocpr_state_write_memfd(op->blob, &op->state_fd, error);
    op->state_fd_open = r == 0;
    return r;
}

static void undo_write_state(vfiocpr *ctx G_GNUC_UNUSED, handover_op *op)
{
    if (op->state_fd_open)
        VK(close, op->state_fd);
    op->state_fd_open = false;
}

static int phase_preserve_fds(vfiocpr *ctx, handover_op *op, GError **error)
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

static void undo_preserve_fds(vfiocpr *ctx, handover_op *op G_GNUC_UNUSED)
{
    vfiocpr_fdreg_undo_cloexec(ctx->fdreg);
    /* the state memfd is closed by undo_write_state */
}

static int phase_execve(vfiocpr *ctx, handover_op *op, GError **error)
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

static int phase_peer(vfiocpr *ctx G_GNUC_UNUSED, handover_op *op, GError **error)
{
    return vfiocpr_xfer_check_peer(op->sock, op->flags, &op->peer, error);
}

static int phase_send(vfiocpr *ctx G_GNUC_UNUSED, handover_op *op, GError **error)
{
    int r = vfiocpr_xfer_send_state(op->sock, op->state_fd, (const int *)(void *)op->fds->data,
                                    op->fds->len, error);
    if (r < 0)
        g_prefix_error(error, "pid %u failed after step 'none': ", op->peer);
    return r;
}

/* Whatever went wrong, the new process must learn at once that it owns nothing. */
static void undo_send(vfiocpr *ctx G_GNUC_UNUSED, handover_op *op)
{
    VK(shutdown, op->sock);
}

static const char *const known_steps[] = { "received", "validated", "restoring", "finishing",
                                           NULL };

static int phase_wait_commit(vfiocpr *ctx, handover_op *op, GError **error)
{
    gint64 deadline = VK(monotonic_ms) + op->timeout_ms;

    for (;;) {
        g_autofree char *text = NULL;
        g_autoptr(GError) local = NULL;
        guint type = 0;
        int r = vfiocpr_xfer_recv(op->sock, deadline, &type, &text, &local);

        if (r < 0) {
            /* local already names the errno */
            g_propagate_prefixed_error(error, g_steal_pointer(&local), "pid %u %s after step "
                                       "'%s': ", op->peer, r == -ETIMEDOUT ?
                                       "did not commit in time" : "failed",
                                       op->peer_step ? op->peer_step : "none");
            return r;
        }
        switch (type) {
        case VFIOCPR_XFER_STEP:
            for (gsize i = 0; known_steps[i]; i++)
                if (strcmp(text, known_steps[i]) == 0)
                    op->peer_step = known_steps[i];
            VFIOCPR_DEBUG("transfer: pid %u reached step '%s'", op->peer, text);
            break;
        case VFIOCPR_XFER_REFUSE:
            return vfiocpr_fail(error, ECANCELED, "pid %u refused after step '%s': %s",
                                op->peer, op->peer_step ? op->peer_step : "none", text);
        case VFIOCPR_XFER_COMMIT:
            /* released before the reply: from here the devices are the new process's */
            ctx->replaced = true;
            ctx->replaced_by = op->peer;
            if (vfiocpr_xfer_send(op->sock, VFIOCPR_XFER_RELEASED, NULL, &local) < 0)
                g_message("transfer: committed by pid %u but the release could not be sent "
                          "(%s); it will time out and exit without touching the devices",
                          op->peer, local->message);
            return 0;
        default:
            return vfiocpr_fail(error, EPROTO, "pid %u sent an unexpected %s message", op->peer,
                                vfiocpr_xfer_type_name(type));
        }
    }
}

typedef struct {
    const char *name;
    int (*run)(vfiocpr *ctx, handover_op *op, GError **error);
    void (*undo)(vfiocpr *ctx, handover_op *op);
} phase;

static const phase exec_phases[] = {
    { "check", phase_check, NULL },
    { "prepare", phase_prepare, undo_prepare },
    { "write state", phase_write_state, undo_write_state },
    { "preserve fds", phase_preserve_fds, undo_preserve_fds },
    { "execve", phase_execve, NULL },
};

static const phase transfer_phases[] = {
    { "peer", phase_peer, NULL },
    { "check", phase_check, NULL },
    { "prepare", phase_prepare, undo_prepare },
    { "write state", phase_write_state, undo_write_state },
    { "send state", phase_send, undo_send },
    { "wait for commit", phase_wait_commit, NULL },
};

static int run_handover(vfiocpr *ctx, const phase *phases, guint n, handover_op *op,
                        const char *what, GError **error)
{
    const char *how = op->sock >= 0 ? "transfer" : "exec";
    guint i;
    int r = 0;

    VFIOCPR_PROBE(handover__start, probe_s(how), PROBE_COUNTS(ctx));
    for (i = 0; i < n; i++) {
        VFIOCPR_DEBUG("%s: phase '%s'", what, phases[i].name);
        VFIOCPR_PROBE(phase__start, probe_s(how), probe_s(phases[i].name));
        r = phases[i].run(ctx, op, error);
        VFIOCPR_PROBE(phase__end, probe_s(how), probe_s(phases[i].name), r);
        if (r < 0)
            break;
    }
    if (ctx->replaced) {
        /* the state memfd now belongs to the new image or was sent: ours is spent */
        if (op->sock >= 0)
            undo_write_state(ctx, op);
        g_clear_pointer(&op->blob, g_bytes_unref);
        VFIOCPR_PROBE(handover__end, probe_s(how), 0);
        return 0;
    }
    vfiocpr_ctx_changed(ctx); /* what a rollback leaves is encoded afresh */
    {
        const char *failed = phases[MIN(i, n - 1)].name;
        VFIOCPR_PROBE(rollback__start, probe_s(how), probe_s(failed), r);
        while (i-- > 0)
            if (phases[i].undo)
                phases[i].undo(ctx, op);
        VFIOCPR_PROBE(rollback__end, probe_s(how));
        g_clear_pointer(&op->blob, g_bytes_unref);
        if (error && *error)
            g_prefix_error(error, "%s: rolled back: %s: ", what, failed);
        VFIOCPR_INFO("%s failed in phase '%s' and was rolled back: %s", what, failed,
                     g_strerror(-r));
    }
    VFIOCPR_PROBE(handover__end, probe_s(how), r < 0 ? r : -EIO);
    return r < 0 ? r : -EIO;
}

VFIOCPR_EXPORT int vfiocpr_exec(vfiocpr *ctx, const char *path, char *const argv[],
                                char *const envp[], GError **error)
{
    handover_op op = { .path = path, .argv = argv, .envp = envp, .state_fd = -1, .sock = -1 };
    g_autofree char *what = NULL;
    int r;

    if (!ctx || !path || !argv)
        return vfiocpr_fail(error, EINVAL, "exec: NULL %s", !ctx ? "context" : !path ? "path" : "argv");
    if (ctx->replaced)
        return vfiocpr_fail(error, EALREADY, "exec: this context already handed over");
    if ((r = vfiocpr_ctx_may_change(ctx, "exec", error)) < 0)
        return r;
    what = g_strdup_printf("exec '%s'", path);
    return run_handover(ctx, exec_phases, G_N_ELEMENTS(exec_phases), &op, what, error);
}

VFIOCPR_EXPORT int vfiocpr_transfer(vfiocpr *ctx, int sock, unsigned int timeout_ms,
                                    unsigned int flags, GError **error)
{
    g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));
    handover_op op = { .sock = sock, .timeout_ms = timeout_ms ? timeout_ms
                                                              : VFIOCPR_TRANSFER_TIMEOUT_MS,
                       .flags = flags, .fds = fds, .state_fd = -1 };
    int r;

    if (!ctx || sock < 0)
        return vfiocpr_fail(error, EINVAL, "transfer: bad arguments");
    if (flags & ~(unsigned)VFIOCPR_TRANSFER_ANY_UID)
        return vfiocpr_fail(error, EINVAL, "transfer: unknown flags 0x%x", flags);
    if (ctx->replaced)
        return vfiocpr_fail(error, EALREADY, "transfer: this context already handed over");
    if ((r = vfiocpr_ctx_may_change(ctx, "transfer", error)) < 0)
        return r;
    return run_handover(ctx, transfer_phases, G_N_ELEMENTS(transfer_phases), &op, "transfer",
                        error);
}

VFIOCPR_EXPORT int vfiocpr_state_prepare(vfiocpr *ctx, GError **error)
{
    prepared *p[G_N_ELEMENTS(ctx->ahead)];
    int r;

    if (!ctx)
        return vfiocpr_fail(error, EINVAL, "state prepare: NULL context");
    if (ctx->replaced)
        return vfiocpr_fail(error, EALREADY, "state prepare: this context already handed over");
    if ((r = vfiocpr_ctx_may_change(ctx, "state prepare", error)) < 0)
        return r;
    if (ctx->restart)
        return vfiocpr_fail(error, EBUSY, "state prepare: the restore is not finished: call "
                            "it after vfiocpr_finish()");
    /* a debugging knob, read here and not in the blackout: every handover that uses a
     * prepared state checks it against a fresh encoding */
    if (G_UNLIKELY(g_getenv("VFIOCPR_VERIFY_PREPARED")))
        vfiocpr_prepared_verify = true;
    /* the tables' fds are in the registry before it is encoded: the handover then
     * only seals them */
    if ((r = vfiocpr_vfio_register_tables(ctx, error)) < 0) {
        g_prefix_error(error, "state prepare: ");
        return r;
    }
    for (gsize i = 0; i < G_N_ELEMENTS(p); i++) {
        p[i] = prepared_new(ctx, i == 1);
        if (!p[i]) {
            while (i-- > 0)
                prepared_free(p[i]);
            prepared_drop(ctx);
            return vfiocpr_fail(error, EPROTO, "state prepare: the encoded state could not be "
                                "read back in place");
        }
    }
    prepared_drop(ctx);
    memcpy(ctx->ahead, p, sizeof(p));
    return 0;
}

/* ------------------------------------------------------------------ finish, dump */

/* The new process of a transfer takes the devices: commit, and wait until the old
 * one has let go, so that the two never both think they own them. */
static int commit(vfiocpr *ctx, GError **error)
{
    g_autoptr(GError) local = NULL;
    g_autofree char *text = NULL;
    guint type = 0;
    int r;

    r = vfiocpr_xfer_send(ctx->xfer_sock, VFIOCPR_XFER_COMMIT, NULL, &local);
    if (r == 0)
        r = vfiocpr_xfer_recv(ctx->xfer_sock, VK(monotonic_ms) + ctx->xfer_timeout_ms, &type,
                              &text, &local);
    if (r == 0 && type != VFIOCPR_XFER_RELEASED)
        r = vfiocpr_fail(&local, EPROTO, "expected RELEASED, got %s",
                         vfiocpr_xfer_type_name(type));
    if (r < 0) {
        /* the old process rolled back (timeout) or died: it is not ours to use */
        ctx->xfer_failed = true;
        ctx->xfer_sock = -1;
        g_propagate_prefixed_error(error, g_steal_pointer(&local), "finish: commit to pid %u "
                                   "(the old process keeps, or took back, the devices: this "
                                   "process must not touch them): ", ctx->xfer_peer);
        return r;
    }
    ctx->xfer_sock = -1;
    return 0;
}

static int finish(vfiocpr *ctx, char ***unclaimed, GError **error)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(g_free);
    int r;

    if (unclaimed)
        *unclaimed = NULL;
    if (!ctx)
        return vfiocpr_fail(error, EINVAL, "finish: NULL context");
    if (ctx->xfer_failed)
        return vfiocpr_ctx_may_change(ctx, "finish", error);
    if (!ctx->restart)
        return 0;
    /* A transfer whose old process gave up (it shut the socket down) must not take
     * anything over, the pinned memory accounting included. The window between this
     * look and the commit is the library's own few calls. */
    if (uncommitted(ctx) && VK(wait_readable, ctx->xfer_sock, 0) != 0) {
        ctx->xfer_failed = true;
        ctx->xfer_sock = -1;
        return vfiocpr_fail(error, EPIPE, "finish: the old process (pid %u) is no longer "
                            "waiting for the commit (it timed out or died and keeps the "
                            "devices): this process must not touch them", ctx->xfer_peer);
    }
    vfiocpr_ctx_step(ctx, "finishing");
    /* in reverse: the registry last, once everything else took its fds over */
    for (gsize i = G_N_ELEMENTS(participants); i-- > 1;) {
        if (!participants[i].finish)
            continue;
        VFIOCPR_PROBE(participant__start, probe_s("finish"), probe_s(participants[i].name));
        r = participants[i].finish(ctx, list, error);
        VFIOCPR_PROBE(participant__end, probe_s("finish"), probe_s(participants[i].name), r);
        if (r < 0)
            return r; /* still in restart mode: the VMM can fix it and finish again */
    }
    if (uncommitted(ctx)) {
        VFIOCPR_PROBE(phase__start, probe_s("finish"), probe_s("commit"));
        r = commit(ctx, error);
        VFIOCPR_PROBE(phase__end, probe_s("finish"), probe_s("commit"), r);
        if (r < 0)
            return r;
    }
    VFIOCPR_PROBE(participant__start, probe_s("finish"), probe_s(participants[0].name));
    participants[0].finish(ctx, list, NULL);
    VFIOCPR_PROBE(participant__end, probe_s("finish"), probe_s(participants[0].name), 0);
    for (guint i = 0; i < list->len; i++)
        g_message("finish: inherited fd never claimed, left open and registered: %s",
                  (char *)list->pdata[i]);
    ctx->restart = false;
    r = (int)list->len;
    if (unclaimed) {
        g_ptr_array_add(list, NULL);
        *unclaimed = (char **)g_ptr_array_free(g_steal_pointer(&list), FALSE);
    }
    return r;
}

VFIOCPR_EXPORT int vfiocpr_finish(vfiocpr *ctx, char ***unclaimed, GError **error)
{
    int r;

    VFIOCPR_PROBE(finish__start, ctx && ctx->restart);
    vfiocpr_ctx_changed(ctx);
    r = finish(ctx, unclaimed, error);
    vfiocpr_ctx_changed(ctx);
    VFIOCPR_PROBE(finish__end, r, PROBE_COUNTS(ctx));
    return r;
}

/* "state" of a description: the header and who wrote it. */
static GVariant *describe_state(GVariant *payload, gsize size, guint16 major, guint16 minor)
{
    g_autofree const char **req = NULL;
    const char *writer = "?";
    guint32 pid = 0;
    gint64 usec = 0;
    GVariantBuilder d;

    g_variant_lookup(payload, VFIOCPR_SECTION(WRITER), "&s", &writer);
    g_variant_lookup(payload, VFIOCPR_SECTION(WRITER_PID), "u", &pid);
    g_variant_lookup(payload, VFIOCPR_SECTION(CREATED_USEC), "x", &usec);
    g_variant_builder_init(&d, G_VARIANT_TYPE_VARDICT);
    vfiocpr_kv_u(&d, "format-major", (guint32)major);
    vfiocpr_kv_u(&d, "format-minor", (guint32)minor);
    vfiocpr_kv_t(&d, "bytes", (guint64)size);
    vfiocpr_kv_s(&d, "writer", writer);
    vfiocpr_kv_u(&d, "writer-pid", pid);
    vfiocpr_kv_x(&d, "created-usec", usec);
    if (!g_variant_lookup(payload, VFIOCPR_SECTION(REQUIRED_FEATURES), "^a&s", &req))
        req = g_new0(const char *, 1);
    vfiocpr_kv(&d, "required-features", g_variant_new_strv(req, -1));
    return g_variant_builder_end(&d);
}

VFIOCPR_EXPORT GVariant *vfiocpr_describe(vfiocpr *ctx)
{
    GVariantBuilder d;

    g_return_val_if_fail(ctx, NULL);
    g_variant_builder_init(&d, G_VARIANT_TYPE_VARDICT);
    vfiocpr_kv_s(&d, "mode", ctx->restart ? "restart" : "cold");
    if (ctx->incoming)
        vfiocpr_kv(&d, "state", describe_state(ctx->incoming, ctx->incoming_size,
                                               ctx->in_major, ctx->in_minor));
    for (gsize i = 0; i < G_N_ELEMENTS(participants); i++)
        if (participants[i].describe)
            participants[i].describe(ctx, &d);
    return g_variant_ref_sink(g_variant_builder_end(&d));
}

VFIOCPR_EXPORT char *vfiocpr_dump(vfiocpr *ctx)
{
    g_autoptr(GVariant) desc = NULL;

    if (!ctx)
        return g_strdup("");
    desc = vfiocpr_describe(ctx);
    return vfiocpr_describe_render(desc);
}

VFIOCPR_EXPORT int vfiocpr_state_describe_variant(int state_fd, GVariant **out, GError **error)
{
    g_autoptr(vfiocpr) ctx = NULL;
    int r;

    if (out)
        *out = NULL;
    if (state_fd < 0)
        return vfiocpr_fail(error, EBADF, "state describe: bad fd %d", state_fd);
    /* A throw-away context loaded exactly as vfiocpr_new() loads one, minus what
     * consumes the state: nothing is closed, no flag changes, the environment stays. */
    ctx = ctx_new();
    r = load_state(ctx, state_fd, NULL, 0, error);
    if (r < 0)
        return r;
    ctx->restart = true;
    if (out)
        *out = vfiocpr_describe(ctx);
    return 0;
}

VFIOCPR_EXPORT int vfiocpr_state_describe(int state_fd, char **text, GError **error)
{
    g_autoptr(GVariant) desc = NULL;
    int r;

    if (text)
        *text = NULL;
    r = vfiocpr_state_describe_variant(state_fd, &desc, error);
    if (r == 0 && text)
        *text = vfiocpr_describe_render(desc);
    return r;
}

/* The writer's pid goes into every state; a transfer waits on its socket. */
const vfiocpr_decl vfiocpr_cpr_uses[] = {
    VFIOCPR_OP(close, 0),         VFIOCPR_OP(set_cloexec, 0),  VFIOCPR_OP(shutdown, 0),
    VFIOCPR_OP(wait_readable, 0), VFIOCPR_OP(monotonic_ms, 0), VFIOCPR_OP(getpid, 0),
    VFIOCPR_OP(execve, VFIOCPR_SECCOMP_EXEC), VFIOCPR_DECL_END,
};
