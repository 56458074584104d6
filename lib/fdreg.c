/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The named fd registry: (name, id) -> fd, kind and file identity.
 *
 * Costs are shaped by what the kernel charges (measured here: fstat ~0.5 us,
 * readlink of /proc/self/fd/N ~4-5 us, F_SETFD ~0.2 us):
 *  - save() verifies the kind fully (fstat + link name) while the VMM starts up,
 *    so a wrong registration is refused before any exec, never discovered after it;
 *  - after exec, validate() compares fstat identity only (dev, ino, rdev, type),
 *    which settles the kind of everything except anon inodes (eventfd, vfio device,
 *    KVM VM), whose link name is checked once when the fd is claimed by find(),
 *    unless the restore proved the kind another way first (a vfio device fd that
 *    its fdinfo or VFIO_DEVICE_GET_INFO identity showed to be the recorded device:
 *    vfiocpr_fdreg_kind_proven());
 *  - FD_CLOEXEC is put back with one close_range() per run of consecutive fds.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "private.h"

typedef struct {
    const char *name; /* from the registry's pool: equality is a pointer test */
    guint64 id;
    int fd;
    vfiocpr_fd_kind kind;
    vfiocpr_fd_stat st;
    bool inherited;    /* came across exec */
    bool claimed;      /* inherited and found again */
    bool kind_checked; /* kind proven against the kernel */
    gint8 saved_cloexec;
} entry;

struct vfiocpr_fdreg {
    GHashTable *entries; /* entry* set, keyed by (name, id) */
    /* One copy of each name. Not g_intern_string(): names come from untrusted state,
     * and GLib's quark table only ever grows (it even leaks its old arrays). */
    GHashTable *names;
    GHashTable *by_fd;   /* fd -> entry*, for identity checks by fd (DMA backing) */
    GPtrArray *touched;  /* entries whose FD_CLOEXEC was cleared, in order */
    /* by_fd's last answer: a restore asks about the same guest RAM memfd once per
     * mapping. Dropped by every change to the registry. */
    entry *last_by_fd;
    /* every change, for a prepared state's validity (vfiocpr_state_prepare) */
    guint64 changes;
};

/* On-the-wire record, laid out exactly like the GVariant fixed-size struct
 * VFIOCPR_RECORD_FD so that the whole table is one g_variant_new_fixed_array(). */
typedef struct {
    guint32 name;
    guint32 kind;
    guint64 id;
    gint32 fd;
    guint32 mode;
    guint64 dev;
    guint64 ino;
    guint64 rdev;
} wire_fd;
G_STATIC_ASSERT(sizeof(wire_fd) == VFIOCPR_RECORD_FD_SIZE);

static guint entry_hash(gconstpointer p)
{
    const entry *e = p;
    return g_direct_hash(e->name) ^ (guint)(e->id * 0x9E3779B97F4A7C15ull >> 32);
}

static gboolean entry_equal(gconstpointer a, gconstpointer b)
{
    const entry *x = a, *y = b;
    return x->name == y->name && x->id == y->id;
}

vfiocpr_fdreg *vfiocpr_fdreg_new(void)
{
    vfiocpr_fdreg *reg = g_new0(vfiocpr_fdreg, 1);
    reg->entries = g_hash_table_new_full(entry_hash, entry_equal, g_free, NULL);
    reg->names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    reg->by_fd = g_hash_table_new(g_direct_hash, g_direct_equal);
    reg->touched = g_ptr_array_new();
    return reg;
}

void vfiocpr_fdreg_free(vfiocpr_fdreg *reg)
{
    if (!reg)
        return;
    g_hash_table_destroy(reg->entries);
    g_hash_table_destroy(reg->names);
    g_hash_table_destroy(reg->by_fd);
    g_ptr_array_unref(reg->touched);
    g_free(reg);
}

/* The pool's copy of name; added when add is set, else NULL if unknown. */
static const char *pooled(vfiocpr_fdreg *reg, const char *name, bool add)
{
    const char *p = g_hash_table_lookup(reg->names, name);

    if (!p && add) {
        p = g_strdup(name);
        g_hash_table_add(reg->names, (gpointer)p);
    }
    return p;
}

/* name must come from the pool */
static entry *lookup_pooled(vfiocpr_fdreg *reg, const char *name, guint64 id)
{
    entry key = { .name = name, .id = id };
    return name ? g_hash_table_lookup(reg->entries, &key) : NULL;
}

static entry *lookup(vfiocpr_fdreg *reg, const char *name, guint64 id)
{
    return lookup_pooled(reg, pooled(reg, name, false), id);
}

static bool same_file(const vfiocpr_fd_stat *a, const vfiocpr_fd_stat *b)
{
    return (a->mode & S_IFMT) == (b->mode & S_IFMT) && a->dev == b->dev && a->ino == b->ino &&
           a->rdev == b->rdev;
}

int vfiocpr_fdreg_save(vfiocpr_fdreg *reg, const char *name, guint64 id, int fd,
                       vfiocpr_fd_kind kind, GError **error)
{
    vfiocpr_fd_kind found;
    vfiocpr_fd_stat st;
    char desc[256];
    entry *e;
    int r;

    if (!name || !*name)
        return vfiocpr_fail(error, EINVAL, "fd registry: save: empty name");
    if ((unsigned)kind > VFIOCPR_FD_KIND_LAST)
        return vfiocpr_fail(error, EINVAL, "fd registry: save '%s'/%" G_GUINT64_FORMAT
                            ": unknown kind %d", name, id, (int)kind);
    if (fd < 0)
        return vfiocpr_fail(error, EBADF, "fd registry: save '%s'/%" G_GUINT64_FORMAT
                            ": fd %d is not a file descriptor", name, id, fd);
    if (kind == VFIOCPR_FD_OTHER) {
        found = VFIOCPR_FD_OTHER;
        r = VK(fstat, fd, &st, NULL);
        g_strlcpy(desc, "?", sizeof(desc));
    } else {
        r = vfiocpr_kernel_fd_kind(fd, &found, &st, desc, sizeof(desc));
    }
    if (r < 0)
        return vfiocpr_fail(error, r, "fd registry: save '%s'/%" G_GUINT64_FORMAT
                            ": fd %d is not open", name, id, fd);
    if (!vfiocpr_kind_matches(kind, found))
        return vfiocpr_fail(error, EBADFD, "fd registry: save '%s'/%" G_GUINT64_FORMAT
                            ": fd %d is %s (%s), not %s", name, id, fd,
                            vfiocpr_fd_kind_to_string(found), desc,
                            vfiocpr_fd_kind_to_string(kind));
    name = pooled(reg, name, true);
    e = lookup_pooled(reg, name, id);
    if (e && e->fd != fd)
        return vfiocpr_fail(error, EEXIST, "fd registry: save '%s'/%" G_GUINT64_FORMAT
                            ": already registered to fd %d (forget it first)", name, id, e->fd);
    if (!e) {
        e = g_new0(entry, 1);
        e->name = name;
        e->id = id;
        g_hash_table_add(reg->entries, e);
    }
    e->fd = fd;
    e->kind = kind;
    e->st = st;
    e->kind_checked = true;
    g_hash_table_insert(reg->by_fd, GINT_TO_POINTER(fd), e);
    reg->last_by_fd = NULL;
    reg->changes++;
    e->saved_cloexec = -1;
    return 0;
}

static int claim(entry *e, GError **error)
{
    vfiocpr_fd_kind found;
    char desc[256];
    int r;

    if (!e->kind_checked) {
        /* identity (and so the file type) was proven by validate(): only the link
         * name is missing, no second fstat */
        r = VK(fd_path, e->fd, desc, sizeof(desc));
        if (r < 0)
            return vfiocpr_fail(error, r, "fd registry: find '%s'/%" G_GUINT64_FORMAT
                                ": inherited fd %d is not open", e->name, e->id, e->fd);
        found = vfiocpr_kernel_kind_from_link(desc, &e->st);
        if (!vfiocpr_kind_matches(e->kind, found))
            return vfiocpr_fail(error, EBADFD, "fd registry: find '%s'/%" G_GUINT64_FORMAT
                                ": inherited fd %d is %s (%s), the state says %s", e->name,
                                e->id, e->fd, vfiocpr_fd_kind_to_string(found), desc,
                                vfiocpr_fd_kind_to_string(e->kind));
        e->kind_checked = true;
    }
    e->claimed = true;
    return 0;
}

void vfiocpr_fdreg_kind_proven(vfiocpr_fdreg *reg, const char *name, guint64 id,
                               vfiocpr_fd_kind kind)
{
    entry *e = lookup(reg, name, id);

    if (e && e->inherited && e->kind == kind)
        e->kind_checked = true;
}

int vfiocpr_fdreg_lookup(vfiocpr_fdreg *reg, const char *name, guint64 id,
                         vfiocpr_fd_kind kind, int *fd_out, GError **error)
{
    entry *e;
    int r;

    *fd_out = -1;
    if (!name)
        return vfiocpr_fail(error, EINVAL, "fd registry: find: NULL name");
    e = lookup(reg, name, id);
    if (!e)
        return 0;
    if (e->kind != kind)
        return vfiocpr_fail(error, EBADFD, "fd registry: find '%s'/%" G_GUINT64_FORMAT
                            ": registered as %s, asked for %s", name, id,
                            vfiocpr_fd_kind_to_string(e->kind), vfiocpr_fd_kind_to_string(kind));
    if (e->inherited && !e->claimed) {
        r = claim(e, error);
        if (r < 0)
            return r;
    }
    *fd_out = e->fd;
    return 1;
}

int vfiocpr_fdreg_find(vfiocpr_fdreg *reg, const char *name, guint64 id, vfiocpr_fd_kind kind,
                       GError **error)
{
    int fd, r = vfiocpr_fdreg_lookup(reg, name, id, kind, &fd, error);

    if (r == 0)
        return vfiocpr_fail(error, ENOENT, "fd registry: find '%s'/%" G_GUINT64_FORMAT
                            ": not registered", name, id);
    return r < 0 ? r : fd;
}

int vfiocpr_fdreg_forget(vfiocpr_fdreg *reg, const char *name, guint64 id)
{
    entry *e = name ? lookup(reg, name, id) : NULL;

    if (!e)
        return -ENOENT;
    reg->last_by_fd = NULL;
    reg->changes++;
    g_ptr_array_remove(reg->touched, e);
    if (g_hash_table_lookup(reg->by_fd, GINT_TO_POINTER(e->fd)) == e) {
        GHashTableIter it;
        gpointer k;
        g_hash_table_remove(reg->by_fd, GINT_TO_POINTER(e->fd));
        /* the same fd may stay registered under another name */
        g_hash_table_iter_init(&it, reg->entries);
        while (g_hash_table_iter_next(&it, &k, NULL))
            if (k != e && ((entry *)k)->fd == e->fd) {
                g_hash_table_insert(reg->by_fd, GINT_TO_POINTER(e->fd), k);
                break;
            }
    }
    g_hash_table_remove(reg->entries, e);
    return 0;
}

guint vfiocpr_fdreg_count(const vfiocpr_fdreg *reg)
{
    return g_hash_table_size(reg->entries);
}

static int check_identity(entry *e, const char *step, GError **error)
{
    vfiocpr_fd_stat st;
    int r = VK(fstat, e->fd, &st, NULL);

    if (r < 0)
        return vfiocpr_fail(error, r, "fd registry: %s '%s'/%" G_GUINT64_FORMAT
                            ": %s fd %d %s", step, e->name, e->id,
                            vfiocpr_fd_kind_to_string(e->kind), e->fd,
                            r == -EBADF ? "is not open" : "cannot be checked (fstat)");
    if (!same_file(&st, &e->st)) {
        /* what the fd is instead, by name (only on this error path) */
        char desc[256];
        if (VK(fd_path, e->fd, desc, sizeof(desc)) < 0)
            g_strlcpy(desc, "?", sizeof(desc));
        return vfiocpr_fail(error, EBADFD, "fd registry: %s '%s'/%" G_GUINT64_FORMAT
                            ": fd %d is not the recorded %s: it is %s (recorded dev %"
                            G_GUINT64_FORMAT " ino %" G_GUINT64_FORMAT " rdev %" G_GUINT64_FORMAT
                            " type 0%o, found dev %" G_GUINT64_FORMAT " ino %" G_GUINT64_FORMAT
                            " rdev %" G_GUINT64_FORMAT " type 0%o)", step, e->name, e->id, e->fd,
                            vfiocpr_fd_kind_to_string(e->kind), desc, e->st.dev, e->st.ino,
                            e->st.rdev, e->st.mode & S_IFMT, st.dev, st.ino, st.rdev,
                            st.mode & S_IFMT);
    }
    return 0;
}

int vfiocpr_fdreg_check(vfiocpr_fdreg *reg, GError **error)
{
    GHashTableIter it;
    gpointer k;
    int r;

    /* A registered fd closed or reused since save() would only be noticed by the new
     * image, after the point of no return: catch it while rollback is still free. */
    g_hash_table_iter_init(&it, reg->entries);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if ((r = check_identity(k, "exec check", error)) < 0)
            return r;
    return 0;
}

void vfiocpr_fdreg_serialize(vfiocpr_fdreg *reg, GVariantDict *payload)
{
    vfiocpr_fdreg_serialize_for(reg, payload, NULL);
}

void vfiocpr_fdreg_serialize_for(vfiocpr_fdreg *reg, GVariantDict *payload, GArray *transfer_fds)
{
    guint n = g_hash_table_size(reg->entries), i = 0;
    g_autoptr(GHashTable) name_idx = g_hash_table_new(g_direct_hash, g_direct_equal);
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    g_autofree wire_fd *w = g_new0(wire_fd, n ? n : 1);
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, reg->entries);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        entry *e = k;
        gpointer idx;
        if (!g_hash_table_lookup_extended(name_idx, e->name, NULL, &idx)) {
            idx = GUINT_TO_POINTER(names->len);
            g_hash_table_insert(name_idx, (gpointer)e->name, idx);
            g_ptr_array_add(names, (gpointer)e->name);
        }
        /* a transfer renumbers every fd in transit: records name the fd by its
         * place in the list that travels with the state */
        w[i] = (wire_fd){ .name = GPOINTER_TO_UINT(idx), .kind = e->kind, .id = e->id,
                          .fd = transfer_fds ? (gint32)transfer_fds->len : e->fd,
                          .mode = e->st.mode, .dev = e->st.dev, .ino = e->st.ino,
                          .rdev = e->st.rdev };
        if (transfer_fds)
            g_array_append_val(transfer_fds, e->fd);
        i++;
    }
    vfiocpr_section_insert(payload, VFIOCPR_SEC_FD_NAMES,
                           g_variant_new_strv((const char *const *)names->pdata, names->len));
    vfiocpr_section_insert(payload, VFIOCPR_SEC_FDS,
                           g_variant_new_fixed_array(G_VARIANT_TYPE(VFIOCPR_RECORD_FD), w, n,
                                                     sizeof(wire_fd)));
}

int vfiocpr_fdreg_deserialize(vfiocpr_fdreg *reg, GVariant *payload, GError **error)
{
    return vfiocpr_fdreg_deserialize_received(reg, payload, NULL, 0, error);
}

int vfiocpr_fdreg_deserialize_received(vfiocpr_fdreg *reg, GVariant *payload,
                                       const int *received, guint n_received, GError **error)
{
    g_autoptr(GVariant) vnames = NULL, vfds = NULL;
    g_autofree const char **names = NULL;
    g_autofree guint8 *used = received ? g_new0(guint8, n_received ? n_received : 1) : NULL;
    const wire_fd *w;
    gsize n_names, n;

    vnames = vfiocpr_section_lookup(payload, VFIOCPR_SEC_FD_NAMES);
    vfds = vfiocpr_section_lookup(payload, VFIOCPR_SEC_FDS);
    if (!vnames || !vfds)
        return vfiocpr_fail(error, EBADMSG, "state: fd registry: section '%s' missing or of the "
                            "wrong type",
                            vnames ? VFIOCPR_SECTION(FDS) : VFIOCPR_SECTION(FD_NAMES));
    names = g_variant_get_strv(vnames, &n_names);
    for (gsize i = 0; i < n_names; i++)
        names[i] = pooled(reg, names[i], true);
    w = g_variant_get_fixed_array(vfds, &n, sizeof(wire_fd));
    for (gsize i = 0; i < n; i++) {
        entry *e;
        if (w[i].name >= n_names || w[i].fd < 0 || !*names[w[i].name])
            return vfiocpr_fail(error, EBADMSG, "state: fd registry: record %zu: bad name index "
                                "%u or fd %d", i, w[i].name, w[i].fd);
        if (lookup_pooled(reg, names[w[i].name], w[i].id))
            return vfiocpr_fail(error, EBADMSG, "state: fd registry: record %zu: '%s'/%"
                                G_GUINT64_FORMAT " appears twice", i, names[w[i].name], w[i].id);
        if (received && ((guint32)w[i].fd >= n_received || used[w[i].fd]++))
            return vfiocpr_fail(error, EBADMSG, "state: fd registry: record %zu ('%s'/%"
                                G_GUINT64_FORMAT "): fd index %d is out of the %u fds received "
                                "or used twice", i, names[w[i].name], w[i].id, w[i].fd,
                                n_received);
        e = g_new0(entry, 1);
        e->name = names[w[i].name];
        e->id = w[i].id;
        e->fd = received ? received[w[i].fd] : w[i].fd;
        /* A kind from a newer minor is checked by identity only, like OTHER. */
        e->kind = w[i].kind <= VFIOCPR_FD_KIND_LAST ? (vfiocpr_fd_kind)w[i].kind : VFIOCPR_FD_OTHER;
        e->st = (vfiocpr_fd_stat){ .dev = w[i].dev, .ino = w[i].ino, .rdev = w[i].rdev,
                                   .mode = w[i].mode };
        e->inherited = true;
        e->saved_cloexec = -1;
        g_hash_table_add(reg->entries, e);
        g_hash_table_insert(reg->by_fd, GINT_TO_POINTER(e->fd), e);
        reg->last_by_fd = NULL;
        reg->changes++;
    }
    if (received && n != n_received)
        return vfiocpr_fail(error, EBADMSG, "state: fd registry: %zu records for %u fds "
                            "received", n, n_received);
    return 0;
}

int vfiocpr_fdreg_validate(vfiocpr_fdreg *reg, int state_fd, GError **error)
{
    GHashTableIter it;
    gpointer k;
    int r;

    g_hash_table_iter_init(&it, reg->entries);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        entry *e = k;
        if (e->fd == state_fd)
            return vfiocpr_fail(error, EBADMSG, "state: fd registry: '%s'/%" G_GUINT64_FORMAT
                                ": claims fd %d, which is the state memfd itself", e->name,
                                e->id, e->fd);
        if ((r = check_identity(e, "restore", error)) < 0)
            return r;
        /* A kind that may live on the shared anon inode is proven by its link name
         * when claimed, unless this fd is a device node whose number alone names
         * the kind (/dev/kvm), as the link name check would decide it too. */
        e->kind_checked = !vfiocpr_kind_shares_inode(e->kind) ||
                          (S_ISCHR(e->st.mode) &&
                           vfiocpr_kernel_kind_from_link("", &e->st) == e->kind);
        /* identity settles these kinds, but only if the type agrees with the kind */
        if (e->kind == VFIOCPR_FD_MEMFD && !S_ISREG(e->st.mode))
            return vfiocpr_fail(error, EBADFD, "state: fd registry: '%s'/%" G_GUINT64_FORMAT
                                ": fd %d recorded as memfd but is not a regular file",
                                e->name, e->id, e->fd);
        if ((e->kind == VFIOCPR_FD_VFIO_CONTAINER || e->kind == VFIOCPR_FD_VFIO_GROUP ||
             e->kind == VFIOCPR_FD_IOMMUFD || e->kind == VFIOCPR_FD_VFIO_CDEV) &&
            !S_ISCHR(e->st.mode))
            return vfiocpr_fail(error, EBADFD, "state: fd registry: '%s'/%" G_GUINT64_FORMAT
                                ": fd %d recorded as %s but is not a character device",
                                e->name, e->id, e->fd, vfiocpr_fd_kind_to_string(e->kind));
    }
    return 0;
}

static gint cmp_int(gconstpointer a, gconstpointer b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* FD_CLOEXEC on every inherited fd, one close_range() per run of consecutive fds:
 * VFIO fds leaking into the VMM's helper processes would keep devices open. */
int vfiocpr_fdreg_cloexec_inherited(vfiocpr_fdreg *reg, GError **error)
{
    g_autoptr(GArray) fds = g_array_new(FALSE, FALSE, sizeof(int));
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, reg->entries);
    while (g_hash_table_iter_next(&it, &k, NULL))
        if (((entry *)k)->inherited)
            g_array_append_val(fds, ((entry *)k)->fd);
    g_array_sort(fds, cmp_int);
    for (guint i = 0; i < fds->len;) {
        int first = g_array_index(fds, int, i), last = first;
        while (++i < fds->len && g_array_index(fds, int, i) <= last + 1)
            last = g_array_index(fds, int, i);
        int r = VK(cloexec_range, first, last);
        if (r < 0)
            return vfiocpr_fail(error, r, "fd registry: restore: setting FD_CLOEXEC on fds %d-%d",
                                first, last);
    }
    return 0;
}

int vfiocpr_fdreg_clear_cloexec(vfiocpr_fdreg *reg, GError **error)
{
    GHashTableIter it;
    gpointer k;

    g_ptr_array_set_size(reg->touched, 0);
    g_hash_table_iter_init(&it, reg->entries);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        entry *e = k;
        int old = VK(get_cloexec, e->fd);
        int r = old < 0 ? old : VK(set_cloexec, e->fd, false);
        if (r < 0) {
            vfiocpr_fdreg_undo_cloexec(reg);
            return vfiocpr_fail(error, r, "fd registry: exec '%s'/%" G_GUINT64_FORMAT
                                ": clearing FD_CLOEXEC on %s fd %d", e->name, e->id,
                                vfiocpr_fd_kind_to_string(e->kind), e->fd);
        }
        e->saved_cloexec = (gint8)old;
        g_ptr_array_add(reg->touched, e);
    }
    return 0;
}

void vfiocpr_fdreg_undo_cloexec(vfiocpr_fdreg *reg)
{
    /* Reverse order, so an fd registered under two names ends with its first flag. */
    for (guint i = reg->touched->len; i-- > 0;) {
        entry *e = reg->touched->pdata[i];
        int r = VK(set_cloexec, e->fd, e->saved_cloexec > 0);
        if (r < 0)
            g_warning("fd registry: rollback '%s'/%" G_GUINT64_FORMAT ": restoring FD_CLOEXEC on "
                      "fd %d: %s", e->name, e->id, e->fd, g_strerror(-r));
        e->saved_cloexec = -1;
    }
    g_ptr_array_set_size(reg->touched, 0);
}

static gint cmp_entry(gconstpointer a, gconstpointer b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->id > y->id) - (x->id < y->id);
}

static GPtrArray *sorted(vfiocpr_fdreg *reg)
{
    GPtrArray *a = g_ptr_array_sized_new(g_hash_table_size(reg->entries));
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, reg->entries);
    while (g_hash_table_iter_next(&it, &k, NULL))
        g_ptr_array_add(a, k);
    g_ptr_array_sort(a, cmp_entry);
    return a;
}

guint vfiocpr_fdreg_finish(vfiocpr_fdreg *reg, GPtrArray *out)
{
    g_autoptr(GPtrArray) all = sorted(reg);
    guint n = 0;

    for (guint i = 0; i < all->len; i++) {
        entry *e = all->pdata[i];
        if (e->inherited && !e->claimed) {
            n++;
            if (out)
                g_ptr_array_add(out, g_strdup_printf("'%s'/%" G_GUINT64_FORMAT ": %s fd %d",
                                                     e->name, e->id,
                                                     vfiocpr_fd_kind_to_string(e->kind), e->fd));
        }
        e->inherited = false;
        e->claimed = false;
    }
    return n;
}

static const char *entry_status(const entry *e)
{
    return !e->inherited ? "registered" : e->claimed ? "claimed" : "unclaimed";
}

GVariant *vfiocpr_fdreg_describe(vfiocpr_fdreg *reg)
{
    g_autoptr(GPtrArray) all = sorted(reg);
    GVariantBuilder b;

    /* a tuple each, not an a{sv}: a quarter of the cost, and one fd per vector
     * makes thousands of them */
    g_variant_builder_init(&b, G_VARIANT_TYPE("a" VFIOCPR_DESC_FD_TYPE));
    for (guint i = 0; i < all->len; i++) {
        entry *e = all->pdata[i];
        GVariant *f[] = { g_variant_new_string(e->name), g_variant_new_uint64(e->id),
                          g_variant_new_string(vfiocpr_fd_kind_to_string(e->kind)),
                          g_variant_new_int32(e->fd), g_variant_new_string(entry_status(e)) };
        g_variant_builder_add_value(&b, g_variant_new_tuple(f, G_N_ELEMENTS(f)));
    }
    return g_variant_builder_end(&b);
}

int vfiocpr_fdreg_by_identity(vfiocpr_fdreg *reg, vfiocpr_fd_kind kind, guint64 dev,
                              guint64 ino, const char **name, guint64 *id)
{
    g_autoptr(GPtrArray) all = sorted(reg);

    /* sorted, so that the same state always names the same entry */
    for (guint i = 0; i < all->len; i++) {
        entry *e = all->pdata[i];
        if (e->kind == kind && e->st.dev == dev && e->st.ino == ino) {
            *name = e->name;
            *id = e->id;
            return e->fd;
        }
    }
    return -ENOENT;
}

bool vfiocpr_fdreg_identity(vfiocpr_fdreg *reg, int fd, vfiocpr_fd_kind kind,
                            vfiocpr_fd_stat *st)
{
    entry *e = reg->last_by_fd;

    if (!e || e->fd != fd)
        e = reg->last_by_fd = g_hash_table_lookup(reg->by_fd, GINT_TO_POINTER(fd));
    if (!e || e->kind != kind)
        return false;
    *st = e->st;
    return true;
}

guint64 vfiocpr_fdreg_changes(const vfiocpr_fdreg *reg)
{
    return reg->changes;
}

bool vfiocpr_fdreg_has(vfiocpr_fdreg *reg, const char *name, guint64 id, vfiocpr_fd_kind kind)
{
    entry *e = lookup(reg, name, id);
    return e && e->kind == kind;
}

int vfiocpr_fdreg_peek(vfiocpr_fdreg *reg, const char *name, guint64 id)
{
    entry *e = lookup(reg, name, id);
    return e ? e->fd : -ENOENT;
}

const vfiocpr_decl vfiocpr_fdreg_uses[] = {
    VFIOCPR_OP(fstat, 0),       VFIOCPR_OP(fd_path, 0),       VFIOCPR_OP(get_cloexec, 0),
    VFIOCPR_OP(set_cloexec, 0), VFIOCPR_OP(cloexec_range, 0), VFIOCPR_DECL_END,
};
