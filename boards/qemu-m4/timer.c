/*
 * The cycle counter of the qemu-m4 board: SysTick on the processor clock, 24 bits,
 * extended to 64 bits by counting its wraps in the SysTick interrupt.
 *
 * QEMU's SysTick counts the MPS2's 25 MHz of *virtual* time. Under `-icount shift=S`
 * every instruction takes 2^S ns of virtual time, so an instruction is
 * 2^S * 25e6 / 1e9 ticks: 3.2 ticks for S = 7 (board.json's shift). The protocol turns
 * tick differences into instructions with BOARD_CYCLES_NUM / BOARD_CYCLES_DEN (5/16),
 * rounded: a difference is off by less than one tick, i.e. by 1/3.2 of an instruction,
 * so the rounded count is exact. (With shift 0 a tick would be 40 instructions.)
 *
 * An outside runner may start QEMU with another shift, or without -icount: at start the
 * firmware times a loop of a known number of instructions (board_icount_shift) and
 * converts with the shift it finds, or, with none, reports that it cannot count cycles.
 */
#include "board.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)
#define ICSR_PENDSTSET (1u << 26)
#define PERIOD_BITS 24u
#define RELOAD 0xFFFFFFu

void systick_handler(void);

static volatile uint32_t wraps;

void systick_handler(void) { wraps = wraps + 1u; }

void board_timer_init(void)
{
    SYST_RVR = RELOAD; /* period 2^24 ticks */
    SYST_CVR = 0u;
    SYST_CSR = 7u; /* enable, interrupt on wrap, processor clock */
}

uint64_t board_ticks(void)
{
    uint32_t primask, hi, v;
    __asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    hi = wraps;
    v = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) { /* reached zero, interrupt not taken yet */
        v = SYST_CVR;
        if (v != 0u) /* and reloaded: a new period began */
            ++hi;
    }
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
    return ((uint64_t)hi << PERIOD_BITS) | (RELOAD - v);
}

/* A loop that retires exactly 2 instructions per iteration (subs, bne). */
static void spin(uint32_t n)
{
    __asm volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

static uint64_t timed_spin(uint32_t iterations)
{
    const uint64_t t0 = board_ticks();
    spin(iterations);
    return board_ticks() - t0;
}

int board_icount_shift(void)
{
    /* 100,000 instructions take 2500 * 2^S ticks under -icount shift=S (2^S ns each, 25
     * ticks per microsecond); the timer reads around the loop add a few dozen, well inside
     * the 2 % accepted. Under -icount the three timings agree to a tick or two (an
     * interrupt may fall in one); in real time they scatter, so none is taken for a shift. */
    const uint32_t iterations = 50000u;
    uint64_t t[3], lo, hi;
    int s, i;
    spin(2000u); /* past the first reload: the counter starts at 0 */
    for (i = 0; i < 3; ++i)
        t[i] = timed_spin(iterations);
    lo = hi = t[0];
    for (i = 1; i < 3; ++i) {
        lo = t[i] < lo ? t[i] : lo;
        hi = t[i] > hi ? t[i] : hi;
    }
    for (s = 0; s <= 15; ++s) {
        const uint64_t want = 2500ull << s;
        if (lo * 50u >= want * 49u && hi * 50u <= want * 51u && hi - lo <= 2u + want / 1000u)
            return s;
    }
    return -1;
}
