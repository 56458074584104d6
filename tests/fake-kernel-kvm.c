/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake kernel's KVM model: /dev/kvm, VMs, GSI routing commits and irqfds. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "fake-kernel-private.h"

/* The eventfd file behind fd, as the kernel's eventfd_ctx_fdget() finds it: -EBADF
 * if fd is not open, -EINVAL if it is not an eventfd. Every eventfd shares one anon
 * inode, so the name is fdinfo's eventfd-id where the host shows one (then a dup of
 * the eventfd, e.g. one received over a socket, is the same eventfd), else the fd
 * number. */
static gint64 eventfd_id(int fd)
{
    g_autofree char *path = g_strdup_printf("/proc/self/fdinfo/%d", fd);
    g_autofree char *info = NULL;
    pretend *p = fk_find_pretend(fd);
    char link[64];
    const char *id;

    if (p)
        g_strlcpy(link, p->link, sizeof(link));
    else if (REAL->fd_path(fd, link, sizeof(link)) < 0)
        return -EBADF;
    if (strcmp(link, "anon_inode:[eventfd]") != 0)
        return -EINVAL;
    if (!p && g_file_get_contents(path, &info, NULL, NULL) && (id = strstr(info, "eventfd-id:")))
        return ((gint64)1 << 32) + g_ascii_strtoll(id + strlen("eventfd-id:"), NULL, 10);
    return fd;
}

static fk_irqfd *irqfd_of(fk_obj *vm, gint64 eventfd)
{
    for (guint i = 0; i < vm->irqfds->len; i++)
        if (g_array_index(vm->irqfds, fk_irqfd, i).eventfd == eventfd)
            return &g_array_index(vm->irqfds, fk_irqfd, i);
    return NULL;
}

/* As virt/kvm/eventfd.c: an eventfd is assigned to a VM once (EBUSY, whatever the
 * GSI); a deassign shuts down every irqfd matching eventfd and GSI and returns 0
 * even when none matched. */
static int irqfd(fk_obj *vm, struct kvm_irqfd *args)
{
    gint64 id;

    if (args->flags & ~(guint32)(KVM_IRQFD_FLAG_DEASSIGN | KVM_IRQFD_FLAG_RESAMPLE))
        return -EINVAL;
    if ((id = eventfd_id((int)args->fd)) < 0)
        return (int)id;
    if (args->flags & KVM_IRQFD_FLAG_DEASSIGN) {
        for (guint i = vm->irqfds->len; i-- > 0;) {
            fk_irqfd *f = &g_array_index(vm->irqfds, fk_irqfd, i);
            if (f->eventfd == id && f->gsi == args->gsi)
                g_array_remove_index(vm->irqfds, i);
        }
        return 0;
    }
    if (irqfd_of(vm, id))
        return -EBUSY;
    g_array_append_val(vm->irqfds, ((fk_irqfd){ .eventfd = id, .fd = (int)args->fd, .gsi = args->gsi }));
    return 0;
}

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
    case KVM_IRQFD:
        return irqfd(o, arg);
    }
    return -ENOTTY;
}

int fk_kvm_open(const char *path)
{
    if (strcmp(path, "/dev/kvm") == 0 && fk.fake_kvm)
        return fk_new_object(path, S_IFCHR | 0666, makedev(FK_MISC_MAJOR, FK_KVM_MINOR), FK_KVM, NULL);
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
    gint64 id = eventfd_id(efd);
    fk_irqfd *f = o && id >= 0 ? irqfd_of(o, id) : NULL;
    return f ? (int)f->gsi : -1;
}

unsigned fake_kvm_irqfds(int vm_fd)
{
    fk_obj *o = fk_obj_get(vm_fd, FK_VM);
    return o ? o->irqfds->len : 0;
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

