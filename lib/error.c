/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "private.h"

VFIOCPR_EXPORT GQuark vfiocpr_error_quark(void)
{
    return g_quark_from_static_string("vfiocpr-error-quark");
}

bool vfiocpr_log_verbose(void)
{
    const char *d = g_getenv("G_MESSAGES_DEBUG");

    /* a space- or comma-separated list of domains, as GLib parses it */
    while (d && *d) {
        gsize n = strcspn(d, " ,");
        if ((n == 3 && memcmp(d, "all", 3) == 0) ||
            (n == strlen(G_LOG_DOMAIN) && memcmp(d, G_LOG_DOMAIN, n) == 0))
            return true;
        d += n;
        d += strspn(d, " ,");
    }
    return false;
}

/* Every failure path funnels through here so that the GError code always equals
 * the errno the call returns, and every message is also logged once (when debug
 * messages are shown). A caller that passed no GError and no one logging: nothing
 * to format, which keeps expected failures (a look-up answering "absent") cheap. */
int vfiocpr_fail(GError **error, int err, const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    bool verbose;
    va_list ap;

    if (err < 0)
        err = -err;
    if (err == 0)
        err = EIO;
    verbose = vfiocpr_log_verbose();
    if (!error && !verbose)
        return -err;
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    if (verbose)
        g_debug("%s (%s)", msg, g_strerror(err));
    g_set_error(error, VFIOCPR_ERROR, err, "%s (%s)", msg, g_strerror(err));
    return -err;
}
