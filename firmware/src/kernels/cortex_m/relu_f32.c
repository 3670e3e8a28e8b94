/*
 * ReLU, optimized: on the floats' bits, unrolled by 4.
 * Reference: kernels/reference/relu_f32.c.
 */
#include <string.h>

#include "reds.h"

/* max(x, 0) on the float's bits: a negative float (sign bit set) becomes +0.0f, anything
 * else is kept. One integer instruction per value instead of a float compare, a flags
 * transfer and a conditional move (memcpy is the C99 way to reinterpret the bits; the
 * compiler turns it into plain loads and stores). */
void reds_relu_f32(float *x, uint32_t n)
{
    uint32_t i, u0, u1, u2, u3;
    for (i = 0; i + 4 <= n; i += 4) {
        memcpy(&u0, x + i, 4);
        memcpy(&u1, x + i + 1, 4);
        memcpy(&u2, x + i + 2, 4);
        memcpy(&u3, x + i + 3, 4);
        /* clear every bit where the sign bit is set: an arithmetic shift of the sign
         * (what every C compiler for a two's complement target does; ARM: one bic) */
        u0 &= ~(uint32_t)((int32_t)u0 >> 31);
        u1 &= ~(uint32_t)((int32_t)u1 >> 31);
        u2 &= ~(uint32_t)((int32_t)u2 >> 31);
        u3 &= ~(uint32_t)((int32_t)u3 >> 31);
        memcpy(x + i, &u0, 4);
        memcpy(x + i + 1, &u1, 4);
        memcpy(x + i + 2, &u2, 4);
        memcpy(x + i + 3, &u3, 4);
    }
    for (; i < n; ++i)
        if (x[i] < 0.0f)
            x[i] = 0.0f;
}
