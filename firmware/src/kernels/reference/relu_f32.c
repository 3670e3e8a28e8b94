/*
 * ReLU, reference: x = max(x, 0), in place.
 */
#include "reds.h"

/* the Arduino builder compiles all of src/: there kernels/cortex_m/relu_f32.c is this op's kernel */
#ifndef REDS_ALL_SOURCES

void reds_relu_f32(float *x, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; ++i)
        if (x[i] < 0.0f)
            x[i] = 0.0f;
}

#endif /* REDS_ALL_SOURCES */
