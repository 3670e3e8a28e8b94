/*
 * host board: one exported model behind the reds serial protocol on stdin/stdout, as a
 * program of this computer. The tests drive it (tests/test_protocol.py); `reds build
 * --board host` builds it with make.
 *
 * Compiled with reds_config.h (what `reds build` writes), or with -DREDS_MODEL=<name>
 * -DREDS_MODEL_HEADER="<name>.h" -DREDS_INPUT_FLOATS=<C*H*W>.
 */
#include <stdio.h>

#ifndef REDS_MODEL
#include "reds_config.h"
#endif
#include "port.h"
#include REDS_MODEL_HEADER

/* stdin is a batch of commands (a pipe, a file): nothing aborts a run */
static const reds_board_t board = REDS_HOST_BOARD("host", 0);
static reds_proto_t proto;
static float input[REDS_INPUT_FLOATS];

int main(void)
{
    int c;
    reds_proto_init(&proto, &board, &REDS_MODEL, input);
    while ((c = getchar()) != EOF)
        reds_proto_feed(&proto, (char)c);
    return 0;
}
