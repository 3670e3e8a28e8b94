/* CMSDK APB UART0 of the MPS2 board (QEMU connects it to the first -serial). */
#include "board.h"

#define UART0_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART0_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART0_BASE + 0x08u))
#define UART_INTSTATUS (*(volatile uint32_t *)(UART0_BASE + 0x0Cu))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0_BASE + 0x10u))
#define STATE_TX_FULL 0x1u
#define STATE_RX_FULL 0x2u
#define CTRL_TX_EN 0x1u
#define CTRL_RX_EN 0x2u
#define CTRL_RX_IRQ 0x8u
#define INT_RX 0x2u
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define UART0_RX_IRQ 0u /* mps2-an385/an386: UART0 RX is IRQ 0 */

void uart0_rx_handler(void);

void board_uart_init(void)
{
    UART_BAUDDIV = 16u;
    UART_CTRL = CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_IRQ;
    NVIC_ISER0 = 1u << UART0_RX_IRQ;
}

/* The RX interrupt only wakes board_getc() from wfi. */
void uart0_rx_handler(void) { UART_INTSTATUS = INT_RX; }

static void put(char c)
{
    while (UART_STATE & STATE_TX_FULL)
        ;
    UART_DATA = (uint8_t)c;
}

void board_write(const char *s, uint32_t n)
{
    while (n--)
        put(*s++);
}

void board_puts(const char *s)
{
    while (*s)
        put(*s++);
}

int board_getc(void)
{
    /* Check and sleep with interrupts masked: a byte that arrives in between still
     * wakes wfi (a pending interrupt does), so no wake-up is lost. While QEMU's CPU
     * sleeps it uses no host CPU. */
    for (;;) {
        __asm volatile("cpsid i" ::: "memory");
        if (UART_STATE & STATE_RX_FULL)
            break;
        __asm volatile("wfi" ::: "memory");
        __asm volatile("cpsie i" ::: "memory");
    }
    __asm volatile("cpsie i" ::: "memory");
    return (int)(UART_DATA & 0xFFu);
}

int board_pending(void) { return (UART_STATE & STATE_RX_FULL) != 0u; }
