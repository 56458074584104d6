/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * KVM wiring of VFIO interrupts: MSI routes and irqfds on the VMM's VM fd.
 *
 * A KVM VM belongs to the process that created it, so the VM fd does not cross
 * exec: the new image creates a new VM and attaches to it. Before exec the irqfds
 * are detached, so interrupts raised during the exec accumulate in the eventfd
 * counters; KVM injects what is pending the moment an irqfd is assigned again.
 */
#include "config.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>

#include "private.h"
#include "probes.h"

typedef struct {
    int fd;
    guint32 gsi;
    guint32 flags; /* KVM_IRQFD_FLAG_RESAMPLE for INTx */
    int resamplefd;
} irqfd;

struct vfiocpr_kvm {
    int vm_fd;
    GArray *irqfds; /* irqfd: what is attached to vm_fd */
    int exec_vm_fd; /* detached for an exec in progress; -1 otherwise */
};

vfiocpr_kvm *vfiocpr_kvm_new(void)
{
    vfiocpr_kvm *k = g_new0(vfiocpr_kvm, 1);
    k->vm_fd = -1;
    k->exec_vm_fd = -1;
    k->irqfds = g_array_new(FALSE, TRUE, sizeof(irqfd));
    return k;
}

void vfiocpr_kvm_free(vfiocpr_kvm *k)
{
    if (!k)
        return;
    g_array_unref(k->irqfds);
    g_free(k);
}

static int assign(int vm_fd, const irqfd *f, bool deassign)
{
    struct kvm_irqfd a = { .fd = (guint32)f->fd, .gsi = f->gsi,
                           .flags = deassign ? KVM_IRQFD_FLAG_DEASSIGN : f->flags,
                           .resamplefd = deassign ? 0 : (guint32)f->resamplefd };
    return VK(ioctl, vm_fd, KVM_IRQFD, &a);
}

/* Assigns every irqfd; on failure takes back the ones done. */
static int assign_all(vfiocpr_kvm *k, int vm_fd, GError **error)
{
    for (guint i = 0; i < k->irqfds->len; i++) {
        const irqfd *f = &g_array_index(k->irqfds, irqfd, i);
        int r = assign(vm_fd, f, false);
        if (r < 0) {
            while (i-- > 0)
                assign(vm_fd, &g_array_index(k->irqfds, irqfd, i), true);
            return vfiocpr_fail(error, r, "kvm: KVM_IRQFD assign of eventfd %d to GSI %u%s",
                                f->fd, f->gsi, r == -EBUSY ? " (already attached to this VM, or, since Linux 7.x, held by another "
                                             "VM's irqfd: detach it there first)" : "");
        }
    }
    return 0;
}

static int deassign_all(vfiocpr_kvm *k, int vm_fd, GError **error)
{
    for (guint i = 0; i < k->irqfds->len; i++) {
        const irqfd *f = &g_array_index(k->irqfds, irqfd, i);
        int r = assign(vm_fd, f, true);
        if (r < 0) {
            /* back to fully attached: an exec must not start half detached */
            while (i-- > 0)
                assign(vm_fd, &g_array_index(k->irqfds, irqfd, i), false);
            return vfiocpr_fail(error, r, "kvm: KVM_IRQFD deassign of eventfd %d (GSI %u)", f->fd,
                                f->gsi);
        }
    }
    return 0;
}

void vfiocpr_kvm_drop_fd(vfiocpr_kvm *k, int fd)
{
    for (guint i = k->irqfds->len; i-- > 0;) {
        const irqfd *f = &g_array_index(k->irqfds, irqfd, i);
        if (f->fd != fd)
            continue;
        /* the eventfd is about to be closed: an irqfd left on it would make the
         * next exec's detach fail (EBADF) */
        if (k->vm_fd >= 0)
            assign(k->vm_fd, f, true);
        g_array_remove_index(k->irqfds, i);
    }
}

typedef struct {
    GArray *routes;
    GArray *irqfds;
    guint32 gsi_base;
    guint pending;
} collect;

static void collect_vec(vfiocpr_device *d, guint index, guint vector, int fd, bool routable,
                        guint64 address, guint32 data, gpointer user)
{
    collect *c = user;
    vfiocpr_msi_route r;
    irqfd f;

    if (!routable)
        return;
    r = (vfiocpr_msi_route){ .gsi = c->gsi_base + c->routes->len, .address = address,
                             .data = data };
    f = (irqfd){ .fd = fd, .gsi = r.gsi, .resamplefd = -1 };
    g_array_append_val(c->routes, r);
    g_array_append_val(c->irqfds, f);
    if (VK(readable, fd) > 0)
        c->pending++;
}

/* KVM_SET_GSI_ROUTING replaces the whole table, so without the VMM's own merge the
 * library must keep what KVM_CREATE_IRQCHIP installed on x86: GSI 0-15 on the PICs
 * and the IOAPIC, 16-23 on the IOAPIC (as kvm_setup_default_irq_routing does), or
 * every INTx line routed through the IOAPIC would go dead. */
#define IRQCHIP_ROUTES (16 * 2 + 8)
#define KVM_IRQCHIP_PIC_MASTER_ 0
#define KVM_IRQCHIP_PIC_SLAVE_ 1
#define KVM_IRQCHIP_IOAPIC_ 2

static guint irqchip_routes(struct kvm_irq_routing_entry *e)
{
    guint n = 0;
    for (guint gsi = 0; gsi < 24; gsi++) {
        if (gsi < 16)
            e[n++] = (struct kvm_irq_routing_entry){
                .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
                .u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER_ : KVM_IRQCHIP_PIC_SLAVE_,
                               .pin = gsi % 8 } };
        e[n++] = (struct kvm_irq_routing_entry){
            .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC_, .pin = gsi } };
    }
    return n;
}

static int set_routing(int vm_fd, const vfiocpr_msi_route *routes, guint n, GError **error)
{
    gsize sz = sizeof(struct kvm_irq_routing) +
               (IRQCHIP_ROUTES + n) * sizeof(struct kvm_irq_routing_entry);
    g_autofree struct kvm_irq_routing *rt = g_malloc0(sz);
    guint base;
    int r;

    base = irqchip_routes(rt->entries);
    memmove(&rt->entries[n], &rt->entries[0], base * sizeof(rt->entries[0]));
    rt->nr = base + n;
    /* the MSI routes first, so that a split irqchip (no in-kernel IOAPIC/PIC, whose
     * routes KVM then refuses) can take them alone */
    for (guint i = 0; i < n; i++) {
        struct kvm_irq_routing_entry *e = &rt->entries[i];
        e->gsi = routes[i].gsi;
        e->type = KVM_IRQ_ROUTING_MSI;
        e->u.msi.address_lo = (guint32)routes[i].address;
        e->u.msi.address_hi = (guint32)(routes[i].address >> 32);
        e->u.msi.data = routes[i].data;
    }
    r = VK(ioctl, vm_fd, KVM_SET_GSI_ROUTING, rt);
    if (r == -EINVAL) {
        rt->nr = n;
        r = VK(ioctl, vm_fd, KVM_SET_GSI_ROUTING, rt);
    }
    if (r < 0)
        return vfiocpr_fail(error, r, "kvm: KVM_SET_GSI_ROUTING with %u MSI routes", n);
    return 0;
}

static int kvm_attach(vfiocpr *ctx, int vm_fd, uint32_t gsi_base, vfiocpr_kvm_commit_fn commit,
                      void *user, GError **error)
{
    vfiocpr_kvm *k;
    g_autoptr(GPtrArray) devs = NULL;
    g_autoptr(GArray) routes = g_array_new(FALSE, TRUE, sizeof(vfiocpr_msi_route));
    collect c;
    vfiocpr_fd_kind kind;
    char desc[256];
    int r;

    if (!ctx || vm_fd < 0)
        return vfiocpr_fail(error, EINVAL, "kvm: attach: bad arguments");
    k = vfiocpr_ctx_kvm(ctx);
    if (k->vm_fd >= 0)
        return vfiocpr_fail(error, EALREADY, "kvm: attach: already attached to VM fd %d",
                            k->vm_fd);
    r = vfiocpr_kernel_fd_kind(vm_fd, &kind, NULL, desc, sizeof(desc));
    if (r < 0 || kind != VFIOCPR_FD_KVM || !g_str_has_prefix(desc, "anon_inode:kvm-vm"))
        return vfiocpr_fail(error, r < 0 ? r : EBADFD, "kvm: attach: fd %d %s (%s)", vm_fd,
                            r < 0 ? "cannot be checked as a KVM VM" : "is not a KVM VM",
                            r == -EBADF ? "not open" : r < 0 ? "fstat/readlink failed" : desc);
    devs = vfiocpr_devices_sorted(vfiocpr_vfio_devices(vfiocpr_ctx_vfio(ctx)));
    g_array_set_size(k->irqfds, 0);
    c = (collect){ .routes = routes, .irqfds = k->irqfds, .gsi_base = gsi_base };
    for (guint i = 0; i < devs->len; i++) {
        vfiocpr_device *d = devs->pdata[i];
        irqfd f;
        int trig, res;
        guint32 gsi;
        vfiocpr_irqs_foreach(d, collect_vec, &c);
        if (vfiocpr_irqs_intx(d, &trig, &res, &gsi) == 0) {
            f = (irqfd){ .fd = trig, .gsi = gsi, .flags = KVM_IRQFD_FLAG_RESAMPLE,
                         .resamplefd = res };
            g_array_append_val(k->irqfds, f);
            if (VK(readable, trig) > 0)
                c.pending++;
        }
    }
    if (routes->len) {
        /* one routing update per attach, whatever the number of vectors */
        r = commit ? commit(user, (const vfiocpr_msi_route *)(void *)routes->data, routes->len, error)
                   : set_routing(vm_fd, (const vfiocpr_msi_route *)(void *)routes->data,
                                 routes->len, error);
        if (r < 0) {
            if (commit && error && !*error)
                vfiocpr_fail(error, r, "kvm: the VMM's route commit failed");
            g_array_set_size(k->irqfds, 0);
            return r < 0 ? r : -EIO;
        }
    }
    r = assign_all(k, vm_fd, error);
    if (r < 0) {
        g_array_set_size(k->irqfds, 0);
        return r;
    }
    k->vm_fd = vm_fd;
    return (int)c.pending;
}

VFIOCPR_EXPORT int vfiocpr_kvm_attach(vfiocpr *ctx, int vm_fd, uint32_t gsi_base,
                                      vfiocpr_kvm_commit_fn commit, void *user, GError **error)
{
    int r;

    if (ctx)
        vfiocpr_ctx_changed(ctx);
    VFIOCPR_PROBE(kvm_attach__start, vm_fd);
    r = kvm_attach(ctx, vm_fd, gsi_base, commit, user, error);
    VFIOCPR_PROBE(kvm_attach__end, vm_fd, r);
    return r;
}

VFIOCPR_EXPORT int vfiocpr_kvm_detach(vfiocpr *ctx, GError **error)
{
    vfiocpr_kvm *k;
    int r;

    if (!ctx)
        return vfiocpr_fail(error, EINVAL, "kvm: detach: NULL context");
    vfiocpr_ctx_changed(ctx);
    k = vfiocpr_ctx_kvm(ctx);
    if (k->vm_fd < 0)
        return 0;
    r = deassign_all(k, k->vm_fd, error);
    if (r < 0)
        return r;
    k->vm_fd = -1;
    g_array_set_size(k->irqfds, 0);
    return 0;
}

int vfiocpr_kvm_prepare(vfiocpr *ctx, GError **error)
{
    vfiocpr_kvm *k = vfiocpr_ctx_kvm(ctx);
    int r;

    if (k->vm_fd < 0)
        return 0;
    r = deassign_all(k, k->vm_fd, error);
    if (r < 0)
        return r;
    k->exec_vm_fd = k->vm_fd;
    return 0;
}

void vfiocpr_kvm_rollback(vfiocpr *ctx)
{
    vfiocpr_kvm *k = vfiocpr_ctx_kvm(ctx);
    g_autoptr(GError) err = NULL;

    if (k->exec_vm_fd < 0)
        return;
    if (assign_all(k, k->exec_vm_fd, &err) < 0)
        g_warning("kvm: rollback: re-attaching irqfds to VM fd %d failed: %s; interrupts now "
                  "wait in their eventfds", k->exec_vm_fd, err->message);
    k->exec_vm_fd = -1;
}

bool vfiocpr_kvm_irqfd_gsi(vfiocpr *ctx, int fd, guint32 *gsi)
{
    vfiocpr_kvm *k = vfiocpr_ctx_kvm(ctx);

    if (k->vm_fd < 0)
        return false;
    for (guint i = 0; i < k->irqfds->len; i++)
        if (g_array_index(k->irqfds, irqfd, i).fd == fd) {
            *gsi = g_array_index(k->irqfds, irqfd, i).gsi;
            return true;
        }
    return false;
}

GVariant *vfiocpr_kvm_describe(vfiocpr *ctx)
{
    vfiocpr_kvm *k = vfiocpr_ctx_kvm(ctx);
    GVariantBuilder d, b;

    g_variant_builder_init(&d, G_VARIANT_TYPE_VARDICT);
    vfiocpr_kv_i(&d, "vm-fd", k->vm_fd);
    g_variant_builder_init(&b, G_VARIANT_TYPE("aa{sv}"));
    for (guint i = 0; k->vm_fd >= 0 && i < k->irqfds->len; i++) {
        const irqfd *f = &g_array_index(k->irqfds, irqfd, i);
        GVariantBuilder fd;

        g_variant_builder_init(&fd, G_VARIANT_TYPE_VARDICT);
        vfiocpr_kv_i(&fd, "fd", f->fd);
        vfiocpr_kv_u(&fd, "gsi", f->gsi);
        if (f->flags & KVM_IRQFD_FLAG_RESAMPLE)
            vfiocpr_kv_i(&fd, "resample-fd", f->resamplefd);
        g_variant_builder_add_value(&b, g_variant_builder_end(&fd));
    }
    vfiocpr_kv(&d, "irqfds", g_variant_builder_end(&b));
    return g_variant_builder_end(&d);
}

const vfiocpr_decl vfiocpr_kvm_uses[] = {
    VFIOCPR_OP(readable, VFIOCPR_SECCOMP_KVM),
    VFIOCPR_IOCTL(KVM_SET_GSI_ROUTING, VFIOCPR_SECCOMP_KVM),
    VFIOCPR_IOCTL(KVM_IRQFD, VFIOCPR_SECCOMP_KVM),
    VFIOCPR_DECL_END,
};
