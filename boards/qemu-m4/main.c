/*
 * qemu-m4 application: one exported model behind the reds serial protocol on UART0.
 *
 * `reds build` compiles it with -DREDS_MODEL=<name> -DREDS_MODEL_HEADER="<name>.h"
 * -DREDS_INPUT_FLOATS=<C*H*W> (the model exported into the build folder).
 */
#include "board.h"
#include "reds_protocol.h"

#ifndef REDS_MODEL
#error "define REDS_MODEL (the exported model's name), REDS_MODEL_HEADER and REDS_INPUT_FLOATS"
#endif
#include REDS_MODEL_HEADER

static reds_board_t board = {
    board_write, board_ticks, BOARD_CYCLES_NUM, BOARD_CYCLES_DEN, BOARD_CLOCK_HZ,
    BOARD_NAME, BOARD_TIMER, BOARD_CYCLE, board_pending,
};

static reds_proto_t proto;
static float input[REDS_INPUT_FLOATS];

/* Convert ticks with the icount shift measured now: instructions = ticks * 40 / 2^S. */
static void calibrate(void)
{
    const int s = board_icount_shift();
    uint32_t num = 40u, den;
    if (s < 0) {
        board.cycle = "unknown"; /* not under -icount: these ticks count no instructions */
        return;
    }
    den = 1u << s;
    while (num % 2u == 0u && den % 2u == 0u) {
        num /= 2u;
        den /= 2u;
    }
    board.cycles_num = num;
    board.cycles_den = den;
}

int main(void)
{
    board_uart_init();
    board_timer_init();
    calibrate();
    reds_proto_init(&proto, &board, &REDS_MODEL, input);
    for (;;)
        reds_proto_feed(&proto, (char)board_getc());
}
