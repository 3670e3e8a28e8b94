/*
 * avg pool, int8 reference: plain loops, the C twin of reds.quant.ops.avg_pool (no
 * padding): y = clamp(requantize(sum over the window of (x - zx), m, e) + zy, -128, 127),
 * (m, e) the multiplier of sx / (sy * kh * kw).
 */
#include "reds_s8.h"

/* the Arduino builder compiles all of src/: there kernels/cortex_m/avg_pool_s8.c is this op's kernel */
#ifndef REDS_ALL_SOURCES

void reds_avg_pool_s8(const reds_layer_t *L, uint32_t c, int32_t m, int e, int32_t zx, int32_t zy, const int8_t *x,
                      int8_t *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w;
    uint32_t ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ++ch) {
        const int8_t *xc = x + ch * in_hw;
        for (oy = 0; oy < L->out_h; ++oy) {
            for (ox = 0; ox < L->out_w; ++ox) {
                int32_t acc = 0;
                int64_t v;
                for (ky = 0; ky < L->kh; ++ky)
                    for (kx = 0; kx < L->kw; ++kx)
                        acc += (int32_t)xc[(oy * L->sh + ky) * L->in_w + ox * L->sw + kx] - zx;
                v = (int64_t)reds_requantize(acc, m, e) + zy;
                *y++ = (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
            }
        }
    }
}

#endif /* REDS_ALL_SOURCES */
