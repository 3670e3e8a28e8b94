/*
 * depthwise conv2d, int8 reference: plain loops; the C twin of
 * reds.quant.ops.depthwise_conv2d. Channel ch of the output is channel ch of the input,
 * less zx, convolved with its own kernel weight[ch][ky][kx] (taps outside the input add
 * nothing), then the store step (reds_store_s8).
 */
#include "reds_s8.h"

static int32_t window_dot_s8(const reds_layer_t *L, const int8_t *wk, const int8_t *xc, int32_t zx, int32_t oy,
                             int32_t ox)
{
    const int32_t ih = L->in_h, iw = L->in_w, kh = L->kh, kw = L->kw;
    int32_t acc = 0, ky, kx;
    for (ky = 0; ky < kh; ++ky) {
        const int32_t iy = oy * L->sh - L->pad_t + ky;
        if (iy < 0 || iy >= ih)
            continue;
        for (kx = 0; kx < kw; ++kx) {
            const int32_t ix = ox * L->sw - L->pad_l + kx;
            if (ix >= 0 && ix < iw)
                acc += ((int32_t)xc[iy * iw + ix] - zx) * wk[ky * kw + kx];
        }
    }
    return acc;
}

void reds_depthwise_conv2d_s8(const reds_layer_t *L, const int8_t *weight, const reds_requant_t *q, uint32_t c,
                              const int8_t *x, int8_t *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, ksize = (uint32_t)L->kh * L->kw;
    uint32_t ch;
    int32_t oy, ox;
    for (ch = 0; ch < c; ++ch)
        for (oy = 0; oy < L->out_h; ++oy)
            for (ox = 0; ox < L->out_w; ++ox)
                *y++ = reds_store_s8(q, ch, window_dot_s8(L, weight + ch * ksize, x + ch * in_hw, q->zx, oy, ox));
}
