/*
 * The qemu-m4 port: UART0 (CMSDK APB UART) and the SysTick timer, nothing else.
 * board.json states the same facts for the host tools.
 */
#ifndef QEMU_M4_BOARD_H
#define QEMU_M4_BOARD_H

#include <stdint.h>

#define BOARD_NAME "qemu-m4"
#define BOARD_TIMER "systick-icount"
#define BOARD_CYCLE "instruction" /* under -icount, one cycle of the report is one instruction */
/* The MPS2 FPGA image's nominal clock: cycles become microseconds at this rate. */
#define BOARD_CLOCK_HZ 25000000u
/* instructions = ticks * NUM / DEN under the shift of board.json (`reds build` passes them);
 * main.c measures the shift it runs under and converts with that one (see timer.c) */
#ifndef BOARD_CYCLES_NUM
#define BOARD_CYCLES_NUM 5u
#endif
#ifndef BOARD_CYCLES_DEN
#define BOARD_CYCLES_DEN 16u
#endif

void board_uart_init(void);
void board_write(const char *s, uint32_t n);
void board_puts(const char *s);
int board_getc(void); /* sleeps (wfi) until a byte arrives */
int board_pending(void); /* a received byte waits */

void board_timer_init(void);
uint64_t board_ticks(void); /* SysTick ticks since board_timer_init(), 64-bit */
/* The -icount shift QEMU runs under, measured (-1: none fits, e.g. no -icount at all). */
int board_icount_shift(void);

#endif
