/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The counts the USDT probes report (lib/probes.h). */
#include "config.h"

#include "probes.h"

unsigned int vfiocpr_probe_mappings(vfiocpr *ctx)
{
    GHashTableIter it;
    gpointer c;
    guint n = 0;

    if (!ctx)
        return 0;
    g_hash_table_iter_init(&it, vfiocpr_vfio_containers(vfiocpr_ctx_vfio(ctx)));
    while (g_hash_table_iter_next(&it, NULL, &c))
        n += g_hash_table_size(((vfiocpr_container *)c)->maps);
    return n;
}

unsigned int vfiocpr_probe_vectors(vfiocpr *ctx)
{
    GHashTableIter it;
    gpointer d;
    guint n = 0;

    if (!ctx)
        return 0;
    g_hash_table_iter_init(&it, vfiocpr_vfio_devices(vfiocpr_ctx_vfio(ctx)));
    while (g_hash_table_iter_next(&it, NULL, &d))
        n += vfiocpr_irqs_count(d);
    return n;
}
