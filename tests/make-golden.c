/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Writes the golden blob of the current format (1.5: the exec state of
 * golden_v13_cold_start(), with the identity of both devices) through the real exec
 * path, with the fake kernel standing in for the recorded fds. Run by hand only when
 * a NEW format version is introduced: make tests/make-golden && tests/make-golden OUT.
 * Released blobs are never regenerated: state-v1.bin (1.0), state-v1.1.bin (1.1) and
 * state-v1.2.bin (1.2) stay as they were written, and so do state-v1.3.bin (1.3, an
 * exec state written by the 1.3 writer) and state-v1.4.bin (1.4, a transfer state). */
#include "config.h"

#include "fake-kernel.h"
#include "golden-v1.h"

int main(int argc, char **argv)
{
    g_autoptr(vfiocpr) ctx = NULL;
    g_autoptr(GBytes) blob = NULL;
    g_autoptr(GError) err = NULL;

    if (argc != 2)
        g_error("usage: %s OUT", argv[0]);
    g_unsetenv(VFIOCPR_STATE_ENV);
    fake_kernel_reset();
    ctx = golden_v13_cold_start();
    blob = fake_kernel_capture_state(ctx);
    if (!g_file_set_contents(argv[1], g_bytes_get_data(blob, NULL), g_bytes_get_size(blob), &err))
        g_error("%s", err->message);
    return 0;
}
