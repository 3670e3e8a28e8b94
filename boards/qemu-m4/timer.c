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
