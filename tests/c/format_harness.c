/*
 * Host harness of firmware/src/reds_format.c: reads numbers on stdin, prints their text.
 * tests/test_protocol.py drives it.
 *
 * Build: cc -std=c99 -I firmware/src tests/c/format_harness.c firmware/src/reds_format.c
 * Modes: --floats: stdin is float32 values (native order); prints reds_format_float() of
 *        each on its own line (tests compare with Python's '%.9g').
 *        --u64: stdin is uint64 values; prints reds_format_u64() of each.
 */
#include <stdio.h>
#include <string.h>

#include "reds_format.h"

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--floats") == 0) {
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
    if (argc == 2 && strcmp(argv[1], "--u64") == 0) {
        uint64_t v;
        char buf[21];
        while (fread(&v, sizeof v, 1, stdin) == 1) {
            buf[reds_format_u64(v, buf)] = '\0';
            puts(buf);
        }
        return 0;
    }
    fprintf(stderr, "usage: %s --floats | --u64 (numbers on stdin)\n", argv[0]);
    return 2;
}
