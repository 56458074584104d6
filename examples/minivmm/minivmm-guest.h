/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The contract between minivmm --kvm and the guest program it runs
 * (minivmm-guest.c): where things are in guest physical memory, and the mailbox
 * the guest keeps its own counts in. Guest physical addresses equal the device's
 * IOVAs (guest RAM is DMA-mapped at RAM_IOVA), as in a real VMM, so the guest
 * hands the device its own addresses.
 */
#ifndef MINIVMM_GUEST_H
#define MINIVMM_GUEST_H

#include <stdint.h>

#define MVG_RAM_BASE 0x100000u   /* = minivmm's RAM_IOVA; edu's DMA mask is 28 bits */
#define MVG_GDT 0x110000u        /* written by the VMM on a cold start */
#define MVG_IDT 0x110100u        /* 256 gates, written by the VMM on a cold start */
#define MVG_MBOX 0x111000u
#define MVG_SRC 0x112000u        /* DMA guest RAM -> device */
#define MVG_DST 0x113000u        /* DMA device -> guest RAM */
#define MVG_STACK_TOP 0x11f000u
#define MVG_CODE 0x120000u       /* the program is loaded here; its header first */
#define MVG_CODE_MAX 0x20000u
#define MVG_BAR0 0xe0000000u     /* a memory slot over the VMM's mmap of BAR0 */
#define MVG_LAPIC 0xfee00000u
#define MVG_IOAPIC 0xfec00000u

#define MVG_SEL_CODE 0x08
#define MVG_SEL_DATA 0x10

#define MVG_VEC_MSI 0x30   /* the device's MSI, through a KVM MSI route */
#define MVG_VEC_INTX 0x31  /* the device's INTx, through an IOAPIC pin */
#define MVG_VEC_MSIX0 0x40 /* e1000e's MSI-X vector n: MVG_VEC_MSIX0 + n */
#define MVG_MSIX_VECTORS 5
#define MVG_VEC_SPURIOUS 0xff

#define MVG_PORT_HEARTBEAT 0x510 /* the guest's periodic exit: the VMM's chance to act */
#define MVG_PORT_FAULT 0x511     /* an exception: the VMM stops with the registers */

#define MVG_MODE_MSI 0
#define MVG_MODE_INTX 1
#define MVG_MODE_MSIX 2 /* e1000e: a shot on each MSI-X vector in turn, no DMA */

#define MVG_HEADER_MAGIC 0x4d564731u /* "MVG1" */
#define MVG_MBOX_MAGIC 0x4d42u

/* At MVG_CODE: what the VMM needs to build the IDT and start the vCPU. */
typedef struct {
    uint32_t magic;
    uint32_t entry;
    uint32_t irq_handler;       /* MSI and INTx vectors */
    uint32_t spurious_handler;
    uint32_t fault_handler;     /* exceptions 0-31 */
    uint32_t msix_handler[MVG_MSIX_VECTORS];
} mvg_header;

/*
 * Written by the VMM before the guest first runs (mode .. heartbeat_cycles), and by
 * the guest ever after, except max_gap, which the VMM clears while the vCPU is
 * stopped for an upgrade so that the guest then measures the pause itself.
 * done_* are snapshots the guest takes at the end of each cycle, when no raise of
 * its own is outstanding: the VMM compares those, never a half-finished cycle.
 */
typedef struct {
    uint32_t magic;            /* the guest's: set when it starts */
    uint32_t mode;             /* MVG_MODE_* */
    uint32_t intx_pin;         /* IOAPIC pin of INTx */
    uint32_t dma_len;          /* < 4096: edu's buffer; QEMU 7.2 aborts on a full one */
    uint64_t heartbeat_cycles; /* TSC cycles between two heartbeat exits */
    uint64_t wait_cycles;      /* how long the guest waits for its own interrupt */

    uint64_t progress;     /* +1 per tick (every poll of the device) */
    uint64_t cycles;       /* DMA there, DMA back, one interrupt raised and taken */
    uint64_t raised;       /* interrupts the guest asked the device for (status bit 0) */
    uint64_t taken_own;    /* bit 0 seen by the handler */
    uint64_t taken_other;  /* other status bits seen (raised by someone else) */
    uint64_t runs;         /* handler invocations */
    uint64_t lone_runs;    /* ... with no interrupt of the guest's own in them */
    uint64_t lone_events;  /* status bits those carried */
    uint64_t missed;       /* raises of its own the guest waited for in vain */
    uint64_t dma_ok, dma_bad;
    uint64_t spurious;
    uint64_t last_tsc, max_gap; /* TSC between two consecutive ticks */
    uint32_t seed;
    uint32_t fault_vector, fault_eip;
    uint32_t pad;

    uint64_t done_raised, done_taken_own, done_taken_other, done_lone_runs, done_lone_events;

    /* MVG_MODE_MSIX, per vector: e1000e has no status bit per shot, so every shot
     * must come as an interrupt of its own */
    uint64_t raised_v[MVG_MSIX_VECTORS], taken_v[MVG_MSIX_VECTORS];
    uint64_t done_raised_v[MVG_MSIX_VECTORS], done_taken_v[MVG_MSIX_VECTORS];
} mvg_mbox;

#endif
