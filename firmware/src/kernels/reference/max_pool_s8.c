/*
 * max pool, int8 reference: plain loops (reds.quant.ops.max_pool; no padding). The output
 * keeps the input's scale and zero point, so this is the float kernel over int8.
 */
#include "reds_s8.h"

void reds_max_pool_s8(const reds_layer_t *L, uint32_t c, const int8_t *x, int8_t *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w;
    uint32_t ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ++ch) {
        const int8_t *xc = x + ch * in_hw;
        for (oy = 0; oy < L->out_h; ++oy) {
            for (ox = 0; ox < L->out_w; ++ox) {
                int8_t best = -128;
                for (ky = 0; ky < L->kh; ++ky)
                    for (kx = 0; kx < L->kw; ++kx) {
                        const int8_t v = xc[(oy * L->sh + ky) * L->in_w + ox * L->sw + kx];
                        if (v > best)
                            best = v;
                    }
                *y++ = best;
            }
        }
    }
}
