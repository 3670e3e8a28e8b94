/*
 * Host harness of the serial protocol: firmware/reds_protocol.c with an exported model
 * and a fake board whose UART is stdin/stdout and whose timer is the host's monotonic
 * clock in nanoseconds. tests/test_protocol.py drives it.
 *
 * Build: cc -std=c99 -I firmware -I OUT -DREDS_HARNESS_MODEL=<name> tests/c/protocol_harness.c
 *        firmware/reds_protocol.c OUT/<name>.c firmware/reds_runtime.c firmware/reds_kernels.c
 * Modes: no argument: every byte of stdin goes to the protocol, replies to stdout.
 *        --floats: stdin is float32 values (native order); prints reds_format_float() of
 *        each on its own line (tests compare with Python's '%.9g').
 *        --u64: stdin is uint64 values; prints reds_format_u64() of each.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "reds_protocol.h"

#ifndef REDS_HARNESS_MODEL
#error "define REDS_HARNESS_MODEL as the exported model's name"
#endif
extern reds_model_t REDS_HARNESS_MODEL;

static void host_write(const char *s, uint32_t n) { fwrite(s, 1, n, stdout); }

static uint64_t host_ticks(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const reds_board_t host_board = {
    host_write, host_ticks, 1u, 1u, 1000000000u, "host-harness", "clock-monotonic", "nanosecond",
};

static reds_proto_t proto;
static float input[65536];

int main(int argc, char **argv)
{
    int c;
    if (argc > 1 && strcmp(argv[1], "--floats") == 0) {
        float v;
        char buf[REDS_FLOAT_CHARS + 1];
        while (fread(&v, sizeof v, 1, stdin) == 1) {
            uint32_t n = reds_format_float(v, buf);
            if (n >= sizeof buf)
                return 5;
            buf[n] = '\0';
            puts(buf);
        }
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--u64") == 0) {
        uint64_t v;
        char buf[21];
        while (fread(&v, sizeof v, 1, stdin) == 1) {
            buf[reds_format_u64(v, buf)] = '\0';
            puts(buf);
        }
        return 0;
    }
    if (reds_input_size(&REDS_HARNESS_MODEL) > sizeof input / sizeof input[0])
        return 4;
    reds_proto_init(&proto, &host_board, &REDS_HARNESS_MODEL, input);
    while ((c = getchar()) != EOF)
        reds_proto_feed(&proto, (char)c);
    return 0;
}
