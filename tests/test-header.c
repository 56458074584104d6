/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The installed header must be self-contained: nothing is included before it, and
 * nothing else is included at all, so a missing include in vfiocpr.h fails here and
 * not in some VMM's build. Linked against the shared library, so every call below
 * also proves the symbol is exported.
 */
#include <vfiocpr.h>

static void test_header_c(void)
{
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GError) err = NULL;
    vfiocpr *bad = NULL;
    int r;

    /* an inherited variable would put the context in restart mode */
    g_unsetenv(VFIOCPR_STATE_ENV);
    r = vfiocpr_new(VFIOCPR_NEW_DEFAULT, &ctx, &err);
    g_assert_no_error(err);
    g_assert_cmpint(r, ==, 0);
    g_assert_nonnull(ctx);
    g_assert_false(vfiocpr_is_restart(ctx));
    g_assert_cmpuint(vfiocpr_fd_count(ctx), ==, 0);

    g_assert_cmpstr(vfiocpr_fd_kind_to_string(VFIOCPR_FD_EVENTFD), ==, "eventfd");

    g_assert_cmpuint(VFIOCPR_ERROR, !=, 0);
    g_assert_nonnull(g_quark_to_string(VFIOCPR_ERROR));
    /* The documented convention: domain VFIOCPR_ERROR, code == -return value. */
    r = vfiocpr_new(~0u, &bad, &err);
    g_assert_cmpint(r, <, 0);
    g_assert_null(bad);
    g_assert_error(err, VFIOCPR_ERROR, -r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/header/c", test_header_c);
    return g_test_run();
}
