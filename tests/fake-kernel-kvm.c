/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake kernel's KVM model: /dev/kvm, VMs, GSI routing commits and irqfds. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "fake-kernel-private.h"

int fk_kvm_ioctl(int fd, fk_obj *o, unsigned long request, void *arg)
{
    if (o->type == FK_KVM)
        return request == KVM_CREATE_VM ? fk_new_object("anon_inode:kvm-vm", 0600, 0, FK_VM, NULL)
                                        : -ENOTTY;
    switch (request) {
    case KVM_SET_GSI_ROUTING:
        o->routings++;
        if (o->split_irqchip)
            for (unsigned i = 0; i < ((struct kvm_irq_routing *)arg)->nr; i++)
                if (((struct kvm_irq_routing *)arg)->entries[i].type == KVM_IRQ_ROUTING_IRQCHIP)
                    return -EINVAL; /* no in-kernel IOAPIC/PIC */
        o->last_routes = ((struct kvm_irq_routing *)arg)->nr;
        o->last_irqchip = 0;
        for (unsigned i = 0; i < o->last_routes; i++)
            o->last_irqchip += ((struct kvm_irq_routing *)arg)->entries[i].type ==
                               KVM_IRQ_ROUTING_IRQCHIP;
        return 0;
    case KVM_IRQFD: {
        struct kvm_irqfd *i = arg;
        gpointer key = GINT_TO_POINTER((int)i->fd);
        if (i->flags & KVM_IRQFD_FLAG_DEASSIGN)
            return g_hash_table_remove(o->irqfds, key) ? 0 : -ENOENT;
        if (g_hash_table_contains(o->irqfds, key))
            return -EBUSY;
        g_hash_table_insert(o->irqfds, key, GUINT_TO_POINTER(i->gsi + 1));
        return 0;
    }
    }
    return -ENOTTY;
}

int fk_kvm_open(const char *path)
{
    if (strcmp(path, "/dev/kvm") == 0 && fk.fake_kvm)
        return fk_new_object(path, S_IFCHR | 0666, makedev(10, 232), FK_KVM, NULL);
    return FK_NOT_MINE;
}

/* ---- test API (fake-kernel.h) ---- */
void fake_kvm_enable(void)
{
    fk.fake_kvm = true;
}

int fake_kvm_irqfd_gsi(int vm_fd, int efd)
{
    fk_obj *o = fk_obj_get(vm_fd, FK_VM);
    gpointer v = o ? g_hash_table_lookup(o->irqfds, GINT_TO_POINTER(efd)) : NULL;
    return v ? (int)GPOINTER_TO_UINT(v) - 1 : -1;
}

unsigned fake_kvm_irqfds(int vm_fd)
{
    fk_obj *o = fk_obj_get(vm_fd, FK_VM);
    return o ? g_hash_table_size(o->irqfds) : 0;
}

unsigned fake_kvm_routings(int vm_fd, unsigned *last_routes)
{
    fk_obj *o = fk_obj_get(vm_fd, FK_VM);
    if (last_routes)
        *last_routes = o ? o->last_routes : 0;
    return o ? o->routings : 0;
}

unsigned fake_kvm_irqchip_routes(int vm_fd)
{
    fk_obj *o = fk_obj_get(vm_fd, FK_VM);
    return o ? o->last_irqchip : 0;
}

void fake_kvm_split_irqchip(int vm_fd)
{
    fk_obj *o = fk_obj_get(vm_fd, FK_VM);
    g_assert_nonnull(o);
    o->split_irqchip = true;
}

