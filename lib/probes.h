/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * USDT probes (provider "vfiocpr"), for timing an upgrade with bpftrace, perf or
 * SystemTap. Each is a nop in the code and a note in .note.stapsdt: nothing runs
 * when no tracer is attached (but one load of each string argument, see probe_s()),
 * so there are no semaphores. Without sys/sdt.h
 * (configure --disable-usdt) every call site compiles to nothing and its arguments
 * are not evaluated, only type-checked.
 *
 * The list is a contract with tracing scripts (tests/test-probes.sh checks it):
 *   handover__start(how, fds, mappings, vectors)   how: "exec" or "transfer"
 *   handover__end(how, rc)                         exec: only when it failed
 *   phase__start(how, phase) / phase__end(how, phase, rc)
 *       how: "exec", "transfer" (old process), "restore", "finish" (new process)
 *   participant__start(op, name) / participant__end(op, name, rc)
 *       op: "check", "prepare" (old process), "restore", "finish" (new); name: "fd registry",
 *       "KVM", "IOMMU backends", "interrupts"
 *   rollback__start(how, phase, rc) / rollback__end(how)
 *   restore__start(how) / restore__end(how, rc, fds, mappings, vectors)
 *   remap__start(container, iova, size) / remap__end(container, iova, size, rc, pending)
 *   kvm_attach__start(vm_fd) / kvm_attach__end(vm_fd, rc)   rc: pending vectors or -errno
 *   finish__start(restart) / finish__end(rc, fds, mappings, vectors)
 */
#ifndef VFIOCPR_PROBES_H
#define VFIOCPR_PROBES_H

#include "private.h"

#ifdef VFIOCPR_USDT
#define SDT_USE_VARIADIC 1
#include <sys/sdt.h>
#define VFIOCPR_PROBE(name, ...) STAP_PROBEV(vfiocpr, name, ##__VA_ARGS__)
/* A string argument. BPF reads user memory without faulting pages in, and a string
 * in a page this process never touched (the phase names, right after an exec) reads
 * as empty: one load makes it readable. */
static inline const char *probe_s(const char *s)
{
    if (s)
        (void)*(const volatile char *)s;
    return s;
}
#else
static inline void vfiocpr_probe_off(int unused, ...)
{
    (void)unused;
}
#define probe_s(s) (s)
#define VFIOCPR_PROBE(name, ...) \
    do { \
        if (0) \
            vfiocpr_probe_off(0, ##__VA_ARGS__); \
    } while (0)
#endif

/* Counts for the probes' arguments (only evaluated where a probe is compiled in);
 * 0 for a NULL context. PROBE_COUNTS: fds, mappings, vectors. */
unsigned int vfiocpr_probe_mappings(vfiocpr *ctx);
unsigned int vfiocpr_probe_vectors(vfiocpr *ctx);
#define PROBE_COUNTS(ctx) \
    vfiocpr_fd_count(ctx), vfiocpr_probe_mappings(ctx), vfiocpr_probe_vectors(ctx)

#endif
