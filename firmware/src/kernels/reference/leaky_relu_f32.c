/*
 * LeakyReLU, reference: x = x < 0 ? x * slope : x, in place.
 */
#include "reds.h"

void reds_leaky_relu_f32(float *x, uint32_t n, float slope)
{
    uint32_t i;
    for (i = 0; i < n; ++i)
        if (x[i] < 0.0f)
            x[i] *= slope;
}
