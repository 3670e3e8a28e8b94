/*
 * depthwise conv2d, reference: plain loops. Channel ch of the output is channel ch of the
 * input convolved with its own kernel W[ch][ky][kx] (zero padding), plus bias[ch].
 */
#include "reds.h"

void reds_depthwise_conv2d_f32(const reds_layer_t *L, uint32_t c, const float *x, float *y)
{
    const int32_t ih = L->in_h, iw = L->in_w, oh = L->out_h, ow = L->out_w, kh = L->kh, kw = L->kw;
    uint32_t ch;
    int32_t oy, ox, ky, kx;
    for (ch = 0; ch < c; ++ch) {
        const float *wk = L->weight + ch * (uint32_t)(kh * kw);
        const float *xc = x + ch * (uint32_t)(ih * iw);
        for (oy = 0; oy < oh; ++oy) {
            for (ox = 0; ox < ow; ++ox) {
                float acc = L->bias ? L->bias[ch] : 0.0f;
                for (ky = 0; ky < kh; ++ky) {
                    const int32_t iy = oy * L->sh - L->pad_t + ky;
                    if (iy < 0 || iy >= ih)
                        continue;
                    for (kx = 0; kx < kw; ++kx) {
                        const int32_t ix = ox * L->sw - L->pad_l + kx;
                        if (ix >= 0 && ix < iw)
                            acc += wk[ky * kw + kx] * xc[iy * iw + ix];
                    }
                }
                y[(ch * (uint32_t)oh + (uint32_t)oy) * (uint32_t)ow + (uint32_t)ox] = acc;
            }
        }
    }
}
