/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The program minivmm --kvm runs in its VM: the edu device's driver. 32-bit
 * protected mode, flat segments, no paging (the VMM sets that up, the GDT and the
 * IDT); freestanding, no libc, no FPU/SSE (so its state is the general registers).
 *
 * Forever: a DMA of a fresh pattern from guest RAM to the device and back, checked;
 * then one interrupt raised through the device's register, waited for, and counted
 * by the handler, which acknowledges the device before the end of interrupt (INTx is
 * level-triggered: the other order would take the same interrupt again). The handler
 * counts the status bits it finds: bit 0 is the guest's own raise, any other bit was
 * raised by someone else (minivmm's helper, while the VMM is being replaced), so
 * interrupts that KVM merges into one injection are still counted one by one.
 *
 * Every poll of the device is a tick: progress +1 and the TSC gap since the previous
 * tick (the largest is the longest time the guest did not run). Every
 * heartbeat_cycles of TSC a tick exits to the VMM with an OUT: the only moment the
 * VMM can stop the vCPU for an upgrade, never while an interrupt of the guest's own
 * is on its way. Nothing here knows about upgrades.
 *
 * On e1000e (mode MSIX) there is no DMA: a shot on each of its 5 MSI-X vectors in
 * turn, 2 ms apart, each waited for and counted by that vector's own handler.
 */
#include "minivmm-guest.h"

#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_COUNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_BUF 0x40000u

#define E1000_ICS 0xc8
#define E1000_IMS 0xd0
#define E1000_IVAR 0xe4
#define E1000_CAUSE_RXQ0 (1u << 20)
#define E1000_IVAR_VALID 0x8u

#define LAPIC_TPR 0x80
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360

struct interrupt_frame;

/* What the interrupt handlers call saves every register it uses: a plain call
 * out of a handler would clobber registers the interrupted code owns. */
#define ISR_SAFE static inline __attribute__((no_caller_saved_registers))

static volatile mvg_mbox *const mb = (volatile mvg_mbox *)MVG_MBOX;
static volatile uint32_t *const bar = (volatile uint32_t *)MVG_BAR0;
static uint64_t last_heartbeat;

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

ISR_SAFE void outl(uint16_t port, uint32_t val)
{
    __asm__ volatile("outl %0, %1" : : "a"(val), "Nd"(port) : "memory");
}

static inline void outb(uint16_t port, uint8_t val)
{
    __asm__ volatile("outb %0, %1" : : "a"(val), "Nd"(port) : "memory");
}

ISR_SAFE void lapic_write(uint32_t reg, uint32_t val)
{
    *(volatile uint32_t *)(MVG_LAPIC + reg) = val;
}

static void ioapic_write(uint32_t reg, uint32_t val)
{
    *(volatile uint32_t *)MVG_IOAPIC = reg;
    *(volatile uint32_t *)(MVG_IOAPIC + 0x10) = val;
}

ISR_SAFE unsigned bits(uint32_t x)
{
    unsigned n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
}

/* heartbeat 0: a tick the VMM cannot stop the guest at (an interrupt of its own is
 * on its way: it must not cross an upgrade, or it would count as the window's) */
static void tick_hb(int heartbeat)
{
    uint64_t t = rdtsc();
    uint64_t gap = t - mb->last_tsc;

    mb->progress++;
    if (gap > mb->max_gap)
        mb->max_gap = gap;
    mb->last_tsc = t;
    if (heartbeat && t - last_heartbeat >= mb->heartbeat_cycles) {
        last_heartbeat = t;
        /* The time the VMM keeps us out (an upgrade too) shows in the next gap. */
        outl(MVG_PORT_HEARTBEAT, (uint32_t)mb->progress);
    }
}

static void tick(void)
{
    tick_hb(1);
}

__attribute__((interrupt)) static void irq_handler(struct interrupt_frame *f)
{
    uint32_t status = bar[EDU_IRQ_STATUS / 4];
    unsigned other = bits(status & ~1u);

    (void)f;
    if (status)
        bar[EDU_IRQ_ACK / 4] = status; /* the device first: INTx drops with it */
    mb->runs++;
    mb->taken_own += status & 1u;
    mb->taken_other += other;
    if (!(status & 1u)) {
        mb->lone_runs++;
        mb->lone_events += other;
    }
    lapic_write(LAPIC_EOI, 0);
}

ISR_SAFE void msix_taken(unsigned n)
{
    mb->runs++;
    mb->taken_v[n]++;
    lapic_write(LAPIC_EOI, 0);
}

#define MSIX_HANDLER(n)                                                                  \
    __attribute__((interrupt)) static void msix_handler##n(struct interrupt_frame *f)    \
    {                                                                                    \
        (void)f;                                                                         \
        msix_taken(n);                                                                   \
    }
MSIX_HANDLER(0)
MSIX_HANDLER(1)
MSIX_HANDLER(2)
MSIX_HANDLER(3)
MSIX_HANDLER(4)

__attribute__((interrupt)) static void spurious_handler(struct interrupt_frame *f)
{
    (void)f;
    mb->spurious++;
}

struct frame {
    uint32_t ip, cs, flags;
};

__attribute__((interrupt)) static void fault_handler(struct frame *f)
{
    mb->fault_eip = f->ip;
    for (;;)
        outl(MVG_PORT_FAULT, mb->fault_vector);
}

static void pattern(volatile uint8_t *p, uint32_t seed, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

static int pattern_ok(const volatile uint8_t *p, uint32_t seed, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)(seed * 31 + i * 7 + (i >> 8)))
            return 0;
    return 1;
}

static void dma(uint32_t src, uint32_t dst, uint32_t cmd)
{
    bar[EDU_DMA_SRC / 4] = src;
    bar[EDU_DMA_SRC / 4 + 1] = 0;
    bar[EDU_DMA_DST / 4] = dst;
    bar[EDU_DMA_DST / 4 + 1] = 0;
    bar[EDU_DMA_COUNT / 4] = mb->dma_len;
    bar[EDU_DMA_COUNT / 4 + 1] = 0;
    bar[EDU_DMA_CMD / 4] = cmd;
    while (bar[EDU_DMA_CMD / 4] & 1u)
        tick();
}

static void cycle(void)
{
    uint64_t t0;

    mb->seed++;
    pattern((volatile uint8_t *)MVG_SRC, mb->seed, mb->dma_len);
    dma(MVG_SRC, EDU_BUF, 1u);
    for (uint32_t i = 0; i < mb->dma_len; i++)
        ((volatile uint8_t *)MVG_DST)[i] = 0;
    dma(EDU_BUF, MVG_DST, 1u | 2u);
    if (pattern_ok((volatile uint8_t *)MVG_DST, mb->seed, mb->dma_len))
        mb->dma_ok++;
    else
        mb->dma_bad++;

    mb->raised++;
    bar[EDU_IRQ_RAISE / 4] = 1u;
    t0 = rdtsc();
    while (mb->taken_own + mb->missed < mb->raised) {
        tick_hb(0);
        if (rdtsc() - t0 > mb->wait_cycles) {
            /* never came: take it back from the device, so that a late one does not
             * count for the next raise */
            __asm__ volatile("cli");
            bar[EDU_IRQ_ACK / 4] = 1u;
            mb->missed++;
            __asm__ volatile("sti");
            break;
        }
    }
    __asm__ volatile("cli");
    mb->done_raised = mb->raised;
    mb->done_taken_own = mb->taken_own;
    mb->done_taken_other = mb->taken_other;
    mb->done_lone_runs = mb->lone_runs;
    mb->done_lone_events = mb->lone_events;
    mb->cycles++;
    __asm__ volatile("sti");
}

/* e1000e: RXQ0 routed to vector n (IVAR), unmasked (IMS), set (ICS); EIAC (set by
 * the VMM) clears it again after the message. One shot at a time, each waited for. */
static void cycle_msix(void)
{
    uint64_t t0;

    for (unsigned n = 0; n < MVG_MSIX_VECTORS; n++) {
        /* 2 ms between shots, as the host-side minivmm does: e1000e's interrupt
         * throttling (128 us) sends a shot that comes too soon once more later */
        t0 = rdtsc();
        while (rdtsc() - t0 < 2 * mb->heartbeat_cycles)
            tick_hb(0);
        bar[E1000_IVAR / 4] = E1000_IVAR_VALID | n;
        mb->raised_v[n]++;
        bar[E1000_IMS / 4] = E1000_CAUSE_RXQ0;
        bar[E1000_ICS / 4] = E1000_CAUSE_RXQ0;
        t0 = rdtsc();
        while (mb->taken_v[n] < mb->raised_v[n]) {
            tick_hb(0);
            if (rdtsc() - t0 > mb->wait_cycles) {
                mb->missed++;
                break;
            }
        }
    }
    __asm__ volatile("cli");
    for (unsigned n = 0; n < MVG_MSIX_VECTORS; n++) {
        mb->done_raised_v[n] = mb->raised_v[n];
        mb->done_taken_v[n] = mb->taken_v[n];
    }
    mb->cycles++;
    __asm__ volatile("sti");
    /* a stretch the VMM may stop us in, about two heartbeats long */
    t0 = rdtsc();
    while (rdtsc() - t0 < 2 * mb->heartbeat_cycles)
        tick();
}

void guest_main(void);
void guest_main(void)
{
    mb->magic = MVG_MBOX_MAGIC;
    /* 8259s fully masked: INTx comes through the IOAPIC only */
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    lapic_write(LAPIC_LVT_LINT0, 1u << 16);
    lapic_write(LAPIC_LVT_LINT1, 1u << 16);
    lapic_write(LAPIC_TPR, 0);
    lapic_write(LAPIC_SVR, 0x100u | MVG_VEC_SPURIOUS);
    if (mb->mode == MVG_MODE_INTX) {
        /* level-triggered, active high, fixed delivery to APIC 0, unmasked */
        ioapic_write(0x10 + 2 * mb->intx_pin + 1, 0);
        ioapic_write(0x10 + 2 * mb->intx_pin, MVG_VEC_INTX | 1u << 15);
    }
    mb->last_tsc = last_heartbeat = rdtsc();
    __asm__ volatile("sti");
    for (;;) {
        if (mb->mode == MVG_MODE_MSIX)
            cycle_msix();
        else
            cycle();
    }
}

void guest_start(void);
__asm__(".section .text.start, \"ax\"\n"
        ".globl guest_start\n"
        "guest_start:\n"
        "  movl $" "0x11f000" ", %esp\n"
        "  call guest_main\n"
        "1: hlt\n"
        "  jmp 1b\n"
        ".previous\n");

__attribute__((section(".header"), used)) static const mvg_header header = {
    .magic = MVG_HEADER_MAGIC,
    .entry = (uint32_t)guest_start,
    .irq_handler = (uint32_t)irq_handler,
    .spurious_handler = (uint32_t)spurious_handler,
    .fault_handler = (uint32_t)fault_handler,
    .msix_handler = { (uint32_t)msix_handler0, (uint32_t)msix_handler1, (uint32_t)msix_handler2,
                      (uint32_t)msix_handler3, (uint32_t)msix_handler4 },
};
