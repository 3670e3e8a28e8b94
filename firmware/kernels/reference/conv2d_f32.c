/*
 * conv2d, reference: plain loops, obviously right; what the optimized kernels are tested
 * against. Zero padding (pad_t, pad_l before the input; the output size says the rest).
 * y[o][oy][ox] = bias[o] + sum over the active submodel's inputs i and taps (ky, kx) of
 * W[o][i][ky][kx] * x[i][oy * sh - pad_t + ky][ox * sw - pad_l + kx].
 */
#include "reds.h"

void reds_conv2d_f32(const reds_layer_t *L, const reds_weights_t *w, uint32_t cin, uint32_t cout,
                     const float *x, float *y)
{
    const int32_t ih = L->in_h, iw = L->in_w, oh = L->out_h, ow = L->out_w, kh = L->kh, kw = L->kw;
    reds_seg_t segs[REDS_MAX_SUBMODELS];
    uint32_t o, i;
    int32_t oy, ox, ky, kx;
    unsigned s, n;
    (void)cin; /* the segments cover exactly the active submodel's cin inputs */
    for (o = 0; o < cout; ++o) {
        n = reds_weight_row(w, o, segs);
        for (oy = 0; oy < oh; ++oy) {
            for (ox = 0; ox < ow; ++ox) {
                float acc = L->bias ? L->bias[o] : 0.0f;
                for (s = 0; s < n; ++s) {
                    for (i = segs[s].lo; i < segs[s].hi; ++i) {
                        const float *wi = segs[s].w + (i - segs[s].lo) * w->elem;
                        const float *xi = x + i * (uint32_t)(ih * iw);
                        for (ky = 0; ky < kh; ++ky) {
                            const int32_t iy = oy * L->sh - L->pad_t + ky;
                            if (iy < 0 || iy >= ih)
                                continue;
                            for (kx = 0; kx < kw; ++kx) {
                                const int32_t ix = ox * L->sw - L->pad_l + kx;
                                if (ix >= 0 && ix < iw)
                                    acc += wi[ky * kw + kx] * xi[iy * iw + ix];
                            }
                        }
                    }
                }
                y[(o * (uint32_t)oh + (uint32_t)oy) * (uint32_t)ow + (uint32_t)ox] = acc;
            }
        }
    }
}
