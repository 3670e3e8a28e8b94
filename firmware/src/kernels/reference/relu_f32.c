/*
 * ReLU, reference: x = max(x, 0), in place.
 */
#include "reds.h"

void reds_relu_f32(float *x, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; ++i)
        if (x[i] < 0.0f)
            x[i] = 0.0f;
}
