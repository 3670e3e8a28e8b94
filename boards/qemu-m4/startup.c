/*
 * Reset and exception vectors of the qemu-m4 board (QEMU mps2-an386, Cortex-M4F).
 *
 * The reset handler copies .data from flash to RAM, zeroes .bss, turns the FPU on (the
 * code is built with -mfloat-abi=hard: the first float instruction would fault
 * otherwise) and calls main. A fault prints one line on the UART and stops there: the
 * board never resets silently.
 */
#include <stdint.h>

#include "board.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern int main(void);

void reset_handler(void);
void systick_handler(void);
void uart0_rx_handler(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

void reset_handler(void)
{
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end)
        *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;
    CPACR |= 0xFu << 20; /* CP10 and CP11: full access to the FPU */
    __asm volatile("dsb\n\tisb" ::: "memory");
    main();
    for (;;)
        __asm volatile("wfi");
}

static void fault_handler(void)
{
    board_puts("\r\nm-error-fault\r\n");
    for (;;)
        __asm volatile("wfi");
}

static void unused_handler(void) {}

typedef void (*vector_t)(void);

__attribute__((section(".vectors"), used)) static const vector_t vectors[17] = {
    (vector_t)&__stack_top, /* initial stack pointer */
    reset_handler,
    fault_handler, /* NMI */
    fault_handler, /* HardFault */
    fault_handler, /* MemManage */
    fault_handler, /* BusFault */
    fault_handler, /* UsageFault */
    0, 0, 0, 0,
    unused_handler, /* SVCall */
    unused_handler, /* DebugMon */
    0,
    unused_handler, /* PendSV */
    systick_handler,
    uart0_rx_handler, /* IRQ 0 */
};
