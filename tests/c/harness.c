/*
 * Host test harness for an exported model: runs every submodel on inputs read from stdin.
 *
 * Build: cc -std=c99 -I firmware/src [-I firmware/src/kernels/<target>] -I OUT -DREDS_HARNESS_MODEL=<name>
 *        tests/c/harness.c OUT/<name>.c firmware/src/reds_runtime.c firmware/src/reds_weights.c <one kernel set>
 *        (tests/csources.py lists the files, as `reds build` picks them)
 * Input: N samples of reds_input_size() float32 each (native byte order), on stdin.
 * Output: one line "meta K input_size output_size" and per submodel k one line
 *         "cost k macs weight_bytes arena_bytes budget", then for every submodel k and
 *         sample n one line "out k n y0 y1 ..." with %.9g (reads back exactly).
 * A harness (not the runtime) may use stdio and malloc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reds.h"

#ifndef REDS_HARNESS_MODEL
#error "define REDS_HARNESS_MODEL as the exported model's name"
#endif
extern reds_model_t REDS_HARNESS_MODEL;

int main(void)
{
    reds_model_t *m = &REDS_HARNESS_MODEL;
    const uint32_t isz = reds_input_size(m), osz = reds_output_size(m);
    const unsigned K = reds_num_submodels(m);
    size_t cap = 16, n = 0, got;
    float *in = malloc(cap * isz * sizeof(float));
    unsigned k, o;
    size_t s;

    if (in == NULL)
        return 3;
    while ((got = fread(in + n * isz, sizeof(float) * isz, 1, stdin)) == 1) {
        if (++n == cap) {
            float *more = realloc(in, 2 * cap * isz * sizeof(float));
            if (more == NULL)
                return 3;
            in = more;
            cap *= 2;
        }
    }
    if (reds_select(m, K) != -1 || reds_active(m) != K - 1) {
        fprintf(stderr, "reds_select accepted an out-of-range submodel\n");
        return 4;
    }
    printf("meta %u %lu %lu\n", K, (unsigned long)isz, (unsigned long)osz);
    for (k = 0; k < K; ++k)
        printf("cost %u %lu %lu %lu %.9g\n", k, (unsigned long)reds_macs(m, k),
               (unsigned long)reds_weight_bytes(m, k), (unsigned long)reds_arena_bytes(m, k),
               (double)reds_budget(m, k));
    for (k = 0; k < K; ++k) {
        if (reds_select(m, k) != 0 || reds_active(m) != k)
            return 4;
        for (s = 0; s < n; ++s) {
            const float *y;
            if (s % 2) { /* zero copy: write the input straight into the arena */
                memcpy(reds_input(m), in + s * isz, isz * sizeof(float));
                y = reds_run(m, NULL);
            } else {
                y = reds_run(m, in + s * isz);
            }
            printf("out %u %lu", k, (unsigned long)s);
            for (o = 0; o < osz; ++o)
                printf(" %.9g", (double)y[o]);
            printf("\n");
        }
    }
    free(in);
    return 0;
}
