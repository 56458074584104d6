/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests (fake kernel): vfiocpr_state_prepare(). A state encoded ahead is used
 * by the next exec only while nothing it shows changed but the DMA mappings'
 * counts and check values inside containers that keep a table (those are patched
 * in); every other change makes the exec encode afresh. Every exec of the unit
 * tests compares a prepared state against a fresh encoding (the fake kernel turns
 * vfiocpr_prepared_verify on), so "afresh or equal" is checked for each change of
 * the matrix below; the negative control uses the prepared state whatever changed
 * and must see each of those changes caught by that comparison. The restored
 * context then takes every mapping over, the patched ones included. */
#include "config.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "fake-kernel.h"
#include "seam-record.h"
#include "testutil.h"

#define BDF1 "0000:00:03.0" /* type1, group 12 */
#define BDF2 "0000:00:04.0" /* iommufd cdev (group 13) */
#define BDF3 "0000:00:05.0" /* type1, group 14: joins later */
#define RAM_SIZE (4u << 20)
#define PAGE 4096u
#define IOVA0 0x100000ull
#define N_MAPS 8u

typedef struct {
    vfiocpr *ctx;
    vfiocpr_container *c0, *i0;
    vfiocpr_device *d1, *d2;
    int ram, vm, extra;
    guint8 *va;
} vmm;

static void setup(void)
{
    fake_kernel_reset();
    fake_kvm_enable();
    fake_iommufd_enable(true);
    fake_kernel_set_memlock(G_MAXUINT64, true);
    g_unsetenv(VFIOCPR_STATE_ENV);
    fake_vfio_add_group(12, BDF1, false);
    fake_vfio_add_group(13, BDF2, false);
    fake_vfio_add_group(14, BDF3, false);
}

/* A cold start: guest RAM, a type1 container c0 with BDF1 and N_MAPS one-page
 * mappings, an iommufd container i0 with BDF2 and none, MSI-X on BDF1, an extra
 * eventfd, a KVM VM; then the state prepared. */
static void vmm_cold(vmm *m)
{
    g_autoptr(GError) err = NULL;
    int msix[2];

    g_assert_cmpint(vfiocpr_new(0, &m->ctx, &err), ==, 0);
    m->ram = memfd_create("guest-ram", MFD_CLOEXEC);
    g_assert_cmpint(ftruncate(m->ram, RAM_SIZE), ==, 0);
    g_assert_cmpint(vfiocpr_fd_save(m->ctx, "guest-ram", 0, m->ram, VFIOCPR_FD_MEMFD, &err), ==,
                    0);
    m->va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m->ram, 0);
    g_assert_true(m->va != MAP_FAILED);
    m->extra = eventfd(0, EFD_CLOEXEC);
    g_assert_cmpint(vfiocpr_fd_save(m->ctx, "extra", 0, m->extra, VFIOCPR_FD_EVENTFD, &err), ==,
                    0);
    g_assert_cmpint(vfiocpr_container_open_backend(m->ctx, "c0", VFIOCPR_BACKEND_TYPE1, &m->c0,
                                                   &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(m->c0, BDF1, &m->d1, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open_backend(m->ctx, "i0", VFIOCPR_BACKEND_IOMMUFD, &m->i0,
                                                   &err), ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(m->i0, BDF2, &m->d2, &err), ==, 0);
    for (unsigned i = 0; i < N_MAPS; i++)
        g_assert_cmpint(vfiocpr_dma_map(m->c0, IOVA0 + i * PAGE, PAGE, m->va + i * PAGE, m->ram,
                                        i * PAGE, 3, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_enable(m->d1, VFIOCPR_IRQ_MSIX, 0, 2, NULL, msix, &err), ==, 0);
    g_assert_cmpint(vfiocpr_irq_set_msi(m->d1, VFIOCPR_IRQ_MSIX, 0, 0xfee01000, 0x4040, false,
                                        &err), ==, 0);
    m->vm = seam_kvm_vm();
    g_assert_cmpint(vfiocpr_kvm_attach(m->ctx, m->vm, 40, NULL, NULL, &err), >=, 0);
    g_assert_cmpint(vfiocpr_finish(m->ctx, NULL, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_state_prepare(m->ctx, &err), ==, 0);
    g_assert_no_error(err);
}

static void vmm_drop(vmm *m)
{
    g_clear_pointer(&m->d1, vfiocpr_device_unref);
    g_clear_pointer(&m->d2, vfiocpr_device_unref);
    g_clear_pointer(&m->c0, vfiocpr_container_unref);
    g_clear_pointer(&m->i0, vfiocpr_container_unref);
    g_clear_pointer(&m->ctx, vfiocpr_unref);
    munmap(m->va, RAM_SIZE);
}

/* ------------------------------------------------------------------ the changes */

static void map(vfiocpr_container *c, vmm *m, unsigned page)
{
    g_autoptr(GError) err = NULL;
    g_assert_cmpint(vfiocpr_dma_map(c, IOVA0 + page * PAGE, PAGE, m->va + page * PAGE, m->ram,
                                    page * PAGE, 3, &err), ==, 0);
    g_assert_no_error(err);
}

static void unmap(vfiocpr_container *c, unsigned page)
{
    g_autoptr(GError) err = NULL;
    g_assert_cmpint(vfiocpr_dma_unmap(c, IOVA0 + page * PAGE, PAGE, &err), ==, 0);
    g_assert_no_error(err);
}

static void ch_nothing(vmm *m G_GNUC_UNUSED) {}
static void ch_map_more(vmm *m) { map(m->c0, m, N_MAPS); map(m->c0, m, N_MAPS + 5); }
static void ch_unmap_some(vmm *m) { unmap(m->c0, 0); unmap(m->c0, 3); }
static void ch_remap(vmm *m) { unmap(m->c0, 2); map(m->c0, m, 2); }
static void ch_first_map(vmm *m) { map(m->i0, m, 100); }
static void ch_lookup(vmm *m)
{
    int fd = -1;
    g_assert_cmpint(vfiocpr_fd_lookup(m->ctx, "extra", 0, VFIOCPR_FD_EVENTFD, &fd, NULL), ==, 1);
    g_assert_cmpint(fd, ==, m->extra);
}

static void ch_last_unmap(vmm *m)
{
    for (unsigned i = 0; i < N_MAPS; i++)
        unmap(m->c0, i);
}

static void ch_fd_save(vmm *m)
{
    g_assert_cmpint(vfiocpr_fd_save(m->ctx, "extra", 1, eventfd(0, EFD_CLOEXEC),
                                    VFIOCPR_FD_EVENTFD, NULL), ==, 0);
}

static void ch_fd_forget(vmm *m)
{
    g_assert_cmpint(vfiocpr_fd_forget(m->ctx, "extra", 0), ==, 0);
}

static void ch_container(vmm *m)
{
    g_autoptr(vfiocpr_container) c = NULL;
    g_assert_cmpint(vfiocpr_container_open_backend(m->ctx, "c1", VFIOCPR_BACKEND_TYPE1, &c,
                                                   NULL), ==, 0);
}

static void ch_group_joins(vmm *m)
{
    g_assert_cmpint(vfiocpr_container_add_group(m->c0, 14, NULL), >=, 0);
}

static void ch_device_close(vmm *m)
{
    g_assert_cmpint(vfiocpr_device_close(m->d2, NULL), ==, 0);
}

static void ch_irq_enable(vmm *m)
{
    g_assert_cmpint(vfiocpr_irq_enable(m->d2, VFIOCPR_IRQ_MSI, 0, 1, NULL, NULL, NULL), ==, 0);
}

static void ch_irq_msi(vmm *m)
{
    g_assert_cmpint(vfiocpr_irq_set_msi(m->d1, VFIOCPR_IRQ_MSIX, 0, 0xfee02000, 0x4041, true,
                                        NULL), ==, 0);
}

static void ch_irq_disable(vmm *m)
{
    g_assert_cmpint(vfiocpr_irq_disable(m->d1, VFIOCPR_IRQ_MSIX, NULL), ==, 0);
}

static void ch_intx_gsi(vmm *m)
{
    g_assert_cmpint(vfiocpr_irq_set_intx_gsi(m->d1, 11, NULL), ==, 0);
}

static void ch_kvm_detach(vmm *m)
{
    g_assert_cmpint(vfiocpr_kvm_detach(m->ctx, NULL), ==, 0);
}

static void ch_failed_exec(vmm *m)
{
    char *argv[] = { (char *)"x", NULL };
    g_assert_cmpint(vfiocpr_exec(m->ctx, "/nonexistent", argv, NULL, NULL), ==, -ENOENT);
    /* the rollback left the table sealed: the next change replaces it */
    map(m->c0, m, N_MAPS);
}

typedef struct {
    const char *name;
    void (*change)(vmm *m);
    bool used;      /* the exec uses the prepared state (patched) */
    bool shows;     /* the change shows in the state: the negative control catches it */
} change;

static const change changes[] = {
    { "nothing", ch_nothing, true, false },
    { "map-more", ch_map_more, true, false },
    { "unmap-some", ch_unmap_some, true, false },
    { "unmap-remap", ch_remap, true, false },
    { "fd-lookup", ch_lookup, true, false },
    { "first-map", ch_first_map, false, true },
    { "last-unmap", ch_last_unmap, false, true },
    { "fd-save", ch_fd_save, false, true },
    { "fd-forget", ch_fd_forget, false, true },
    { "container-open", ch_container, false, true },
    { "group-joins", ch_group_joins, false, true },
    { "device-close", ch_device_close, false, true },
    { "irq-enable", ch_irq_enable, false, true },
    { "irq-set-msi", ch_irq_msi, false, true },
    { "irq-disable", ch_irq_disable, false, true },
    { "intx-gsi", ch_intx_gsi, false, true },
    { "kvm-detach", ch_kvm_detach, false, false },
    { "failed-exec", ch_failed_exec, false, true },
};

/* The restored image finds every mapping the old one had at its exec. */
static void restore_and_check(int sfd, guint want_c0)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(vfiocpr_container) c = NULL;
    vfiocpr_device *d = NULL;

    tu_set_state_fd(sfd);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "c0", VFIOCPR_BACKEND_TYPE1, &c, &err),
                    ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(c, BDF1, &d, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_cmpuint(vfiocpr_container_pending(c), ==, want_c0);
    vfiocpr_device_unref(d);
    g_unsetenv(VFIOCPR_STATE_ENV);
}

static void test_change(gpointer fixture G_GNUC_UNUSED, gconstpointer data)
{
    const change *ch = data;
    vmm m = { 0 };
    guint hits, maps;
    int sfd;

    vmm_cold(&m);
    ch->change(&m);
    maps = vfiocpr_container_n_maps(m.c0);
    hits = vfiocpr_prepared_hits;
    sfd = fake_kernel_exec_ok(m.ctx, G_MAXUINT64); /* compared with a fresh encoding */
    g_assert_cmpuint(vfiocpr_prepared_hits - hits, ==, ch->used ? 1 : 0);
    vmm_drop(&m);
    restore_and_check(sfd, maps);
}

/* The negative control: the prepared state used whatever changed. Each change the
 * state shows must be caught by the comparison (the exec fails, rolled back); the
 * patched ones still pass. */
static void test_change_stale(gpointer fixture G_GNUC_UNUSED, gconstpointer data)
{
    const change *ch = data;
    g_autoptr(GError) err = NULL;
    char *argv[] = { (char *)"x", NULL };
    vmm m = { 0 };
    int r;

    vmm_cold(&m);
    ch->change(&m);
    vfiocpr_prepared_ignore_gen = true;
    r = vfiocpr_exec(m.ctx, "/nonexistent", argv, NULL, &err);
    vfiocpr_prepared_ignore_gen = false;
    if (ch->shows) {
        g_assert_cmpint(r, ==, -EIO);
        g_assert_nonnull(strstr(err->message, "differs from a fresh encoding"));
    } else {
        g_assert_cmpint(r, ==, -ENOENT); /* got as far as execve */
    }
    vmm_drop(&m);
}

static void test_refused(void)
{
    g_autoptr(GError) err = NULL;
    vmm m = { 0 };
    g_autoptr(vfiocpr) ctx = NULL;
    int sfd;

    g_assert_cmpint(vfiocpr_state_prepare(NULL, &err), ==, -EINVAL);
    g_clear_error(&err);
    vmm_cold(&m);
    sfd = fake_kernel_exec_ok(m.ctx, G_MAXUINT64);
    /* the old context handed over */
    g_assert_cmpint(vfiocpr_state_prepare(m.ctx, &err), ==, -EALREADY);
    g_clear_error(&err);
    vmm_drop(&m);
    /* restoring: not before finish */
    tu_set_state_fd(sfd);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_assert_cmpint(vfiocpr_state_prepare(ctx, &err), ==, -EBUSY);
    g_assert_nonnull(strstr(err->message, "vfiocpr_finish"));
    g_unsetenv(VFIOCPR_STATE_ENV);
}

/* A restored VMM prepares after its finish, and its next exec uses it. */
static void test_after_restore(void)
{
    g_autoptr(GError) err = NULL;
    vmm m = { 0 };
    vfiocpr *ctx = NULL;
    vfiocpr_container *c = NULL, *i = NULL;
    vfiocpr_device *d = NULL, *d2 = NULL;
    guint hits;
    int sfd;

    vmm_cold(&m);
    sfd = fake_kernel_exec_ok(m.ctx, G_MAXUINT64);
    vmm_drop(&m);
    tu_set_state_fd(sfd);
    g_assert_cmpint(vfiocpr_new(0, &ctx, &err), ==, 0);
    g_unsetenv(VFIOCPR_STATE_ENV);
    g_assert_cmpint(vfiocpr_fd_find(ctx, "guest-ram", 0, VFIOCPR_FD_MEMFD, &err), ==, m.ram);
    g_assert_cmpint(vfiocpr_fd_find(ctx, "extra", 0, VFIOCPR_FD_EVENTFD, &err), ==, m.extra);
    m.va = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m.ram, 0);
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "c0", VFIOCPR_BACKEND_TYPE1, &c, &err),
                    ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(c, BDF1, &d, &err), ==, 0);
    g_assert_cmpint(vfiocpr_container_open_backend(ctx, "i0", VFIOCPR_BACKEND_IOMMUFD, &i, &err),
                    ==, 0);
    g_assert_cmpint(vfiocpr_device_attach(i, BDF2, &d2, &err), ==, 0);
    for (unsigned k = 0; k < N_MAPS; k++)
        map(c, &m, k);
    g_assert_cmpint(vfiocpr_irq_enable(d, VFIOCPR_IRQ_MSIX, 0, 2, NULL, NULL, &err), ==, 0);
    g_assert_cmpint(vfiocpr_kvm_attach(ctx, seam_kvm_vm(), 40, NULL, NULL, &err), >=, 0);
    g_assert_cmpint(vfiocpr_finish(ctx, NULL, &err), >=, 0);
    g_assert_no_error(err);
    g_assert_cmpint(vfiocpr_state_prepare(ctx, &err), ==, 0);
    g_assert_no_error(err);
    /* the inherited table, sealed, is handed on as it is */
    hits = vfiocpr_prepared_hits;
    sfd = fake_kernel_exec_ok(ctx, G_MAXUINT64);
    g_assert_cmpuint(vfiocpr_prepared_hits, ==, hits + 1);
    vfiocpr_device_unref(d);
    vfiocpr_device_unref(d2);
    vfiocpr_container_unref(c);
    vfiocpr_container_unref(i);
    vfiocpr_unref(ctx);
    munmap(m.va, RAM_SIZE);
    restore_and_check(sfd, N_MAPS);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, data, fn)                                                                  \
    g_test_add_vtable(path, 0, data, (GTestFixtureFunc)setup, (GTestFixtureFunc)fn, NULL)
    for (gsize i = 0; i < G_N_ELEMENTS(changes); i++) {
        g_autofree char *p = g_strdup_printf("/prepare/change/%s", changes[i].name);
        g_autofree char *q = g_strdup_printf("/prepare/negative-control/%s", changes[i].name);
        ADD(p, &changes[i], test_change);
        ADD(q, &changes[i], test_change_stale);
    }
    ADD("/prepare/refused", NULL, test_refused);
    ADD("/prepare/after-restore", NULL, test_after_restore);
    return g_test_run();
}
