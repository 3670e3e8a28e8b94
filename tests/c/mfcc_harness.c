/*
 * MFCC front-end harness for tests/test_mfcc_c.py: reads clips of N int16 samples (native
 * byte order) from stdin until it ends, writes each clip's features (frames x n_mfcc float32)
 * to stdout. N = argv[1] (default 16000). Compiled with firmware/src/reds_mfcc.c and tables
 * emitted by reds.export.c.frontend.emit_mfcc_c("harness", stride).
 *
 * It also checks that reds_mfcc_frame_f32 on each whole frame gives the same bits as
 * reds_mfcc_f32 (exit 3 otherwise).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness_mfcc.h"

#define MAX_SAMPLES 64000u

static int16_t pcm[MAX_SAMPLES];
static float work[HARNESS_MFCC_WORK_FLOATS];
static float features[HARNESS_MFCC_FEATURES];
static float one[HARNESS_MFCC_COEFFS];

int main(int argc, char **argv)
{
    const reds_mfcc_config_t *c = &harness_mfcc;
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 16000ul;
    uint32_t f;
    if (n == 0 || n > MAX_SAMPLES || REDS_MFCC_WORK_FLOATS(c) != HARNESS_MFCC_WORK_FLOATS)
        return 2;
    while (fread(pcm, sizeof(int16_t), n, stdin) == n) {
        reds_mfcc_f32(c, pcm, (uint32_t)n, work, features);
        for (f = 0; f < c->frames && (unsigned long)f * c->stride + c->window <= n; f++) {
            reds_mfcc_frame_f32(c, pcm + f * c->stride, work, one);
            if (memcmp(one, features + f * c->n_mfcc, sizeof one) != 0)
                return 3;
        }
        if (fwrite(features, sizeof(float), HARNESS_MFCC_FEATURES, stdout) != HARNESS_MFCC_FEATURES)
            return 4;
    }
    return 0;
}
