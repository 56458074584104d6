/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <stdarg.h>

#include "private.h"

VFIOCPR_EXPORT GQuark vfiocpr_error_quark(void)
{
    return g_quark_from_static_string("vfiocpr-error-quark");
}

/* Every failure path funnels through here so that the GError code always equals
 * the errno the call returns, and every message is also logged once. */
int vfiocpr_fail(GError **error, int err, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    if (err < 0)
        err = -err;
    if (err == 0)
        err = EIO;
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_debug("%s (%s)", msg, g_strerror(err));
    g_set_error(error, VFIOCPR_ERROR, err, "%s (%s)", msg, g_strerror(err));
    return -err;
}
