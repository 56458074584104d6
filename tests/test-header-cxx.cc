/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The header as a C++ VMM sees it: it must compile alone under g++ with warnings
 * as errors, and its extern "C" block must hold, or the calls below would look for
 * mangled names and fail to link against the shared library.
 */
#include <vfiocpr.h>

static void test_header_cxx(void)
{
    g_autoptr(vfiocpr) ctx = nullptr;
    g_autoptr(GError) err = nullptr;
    vfiocpr *bad = nullptr;
    int r;

    // an inherited variable would put the context in restart mode
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
    // The documented convention: domain VFIOCPR_ERROR, code == -return value.
    r = vfiocpr_new(~0u, &bad, &err);
    g_assert_cmpint(r, <, 0);
    g_assert_null(bad);
    g_assert_error(err, VFIOCPR_ERROR, -r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, nullptr);
    g_test_add_func("/header/cxx", test_header_cxx);
    return g_test_run();
}
