/*
 * Residual add, reference: x += skip, in place.
 */
#include "reds.h"

void reds_add_f32(float *x, const float *skip, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; ++i)
        x[i] += skip[i];
}
