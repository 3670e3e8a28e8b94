/*
 * max pool, reference: plain loops (no optimized twin: pools run once per network).
 */
#include "reds.h"

void reds_max_pool_f32(const reds_layer_t *L, uint32_t c, const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w;
    uint32_t ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ++ch) {
        const float *xc = x + ch * in_hw;
        for (oy = 0; oy < L->out_h; ++oy) {
            for (ox = 0; ox < L->out_w; ++ox) {
                float best = xc[oy * L->sh * L->in_w + ox * L->sw];
                for (ky = 0; ky < L->kh; ++ky)
                    for (kx = 0; kx < L->kw; ++kx) {
                        const float v = xc[(oy * L->sh + ky) * L->in_w + ox * L->sw + kx];
                        if (v > best)
                            best = v;
                    }
                *y++ = best;
            }
        }
    }
}
