/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A recording layer over the kernel seam, for tests only: when the environment names
 * a directory (VFIOCPR_SEAM_RECORD_DIR, set by make check), every op the library asks
 * of the seam and every ioctl request it issues is recorded per scenario (a GTest
 * case, or the whole program) with the VFIOCPR_SECCOMP_* parts of the API the
 * scenario used, into DIR/PROGRAM.PID.rec. tests/test-seccomp-seen compares them with
 * the library's declarations. Not in the library: the shipped seam has no such layer.
 * The first recording process of a program removes that program's earlier records
 * and sets VFIOCPR_SEAM_RECORD_OWNER, so that what it forks or execs keeps them; a
 * harness that runs many programs into one fresh directory sets it itself. */
#ifndef SEAM_RECORD_H
#define SEAM_RECORD_H

#include "private.h"

#define SEAM_RECORD_ENV "VFIOCPR_SEAM_RECORD_DIR"

/* ops wrapped by the recorder (NULL: the real kernel); ops itself when not recording. */
const vfiocpr_kernel_ops *seam_record_wrap(const vfiocpr_kernel_ops *ops);
/* The ops under the recorder (vfiocpr_kernel when not recording): what a test calls
 * when it acts on the fake kernel itself, so that only the library's calls count. */
const vfiocpr_kernel_ops *seam_unrecorded(void);
/* A KVM VM made by the test itself, outside the records (the library then attaches
 * to it): /dev/kvm opened, KVM_CREATE_VM, through seam_unrecorded(). */
int seam_kvm_vm(void);
/* Installs the recorder over the real kernel (host and guest programs). */
void seam_record_install(void);
/* For the guest programs: when SEAM_RECORD_ENV is set, installs the recorder and
 * names the scenario. */
void seam_record_program(const char *name);
/* Names the scenario from now on (programs without GTest; default "main"). */
void seam_record_name(const char *name);
/* The current scenario used a part of the API that needs these VFIOCPR_SECCOMP_* flags
 * (tests/seam-tag.c calls it from the public entry points it wraps). */
void seam_record_uses(guint32 flags);
/* Writes what was recorded so far (also at exit and before a real execve). */
void seam_record_flush(void);
/* The records so far of this process, in the file format (for a guest's console). */
char *seam_record_dump(void);

#endif
