/*
 * The general convolution window of the optimized kernels (any kernel, stride and
 * padding): what conv2d and depthwise conv2d fall back to off their fast paths.
 * Internal to firmware/src/kernels/cortex_m/.
 */
#ifndef REDS_CORTEX_M_WINDOW_H
#define REDS_CORTEX_M_WINDOW_H

#include "reds.h"

/* The taps of one output row/column that fall inside the input: [*k0, *k1) of a kernel
 * of size k whose first tap is at input index i0 (negative in the padding). Computed once
 * per row or pixel, so the multiply-accumulate loops below need no per-tap bounds test. */
static inline void clip_taps(int32_t i0, int32_t k, int32_t n, int32_t *k0, int32_t *k1)
{
    *k0 = i0 < 0 ? -i0 : 0;
    *k1 = n - i0 < k ? n - i0 : k;
}

/* y[oy][ox] += sum over the kernel window of one input channel x (zero padding).
 * The general path: any kernel, stride and padding. Padding taps are skipped by clipping
 * the window's row range per output row and its column range per output pixel. */
static inline void conv_channel(const reds_layer_t *L, const float *wk, const float *x, float *y)
{
    const int32_t ih = L->in_h, iw = L->in_w, kh = L->kh, kw = L->kw;
    const int32_t sh = L->sh, sw = L->sw, pt = L->pad_t, pl = L->pad_l;
    const int32_t oh = L->out_h, ow = L->out_w;
    int32_t oy, ox, ky, kx, ky0, ky1, kx0, kx1;
    for (oy = 0; oy < oh; ++oy) {
        const int32_t iy0 = oy * sh - pt;
        clip_taps(iy0, kh, ih, &ky0, &ky1);
        for (ox = 0; ox < ow; ++ox) {
            const int32_t ix0 = ox * sw - pl;
            const float *xp = x + iy0 * iw + ix0; /* the window's top-left tap (maybe padding) */
            float acc = 0.0f;
            clip_taps(ix0, kw, iw, &kx0, &kx1);
            for (ky = ky0; ky < ky1; ++ky) {
                const float *xr = xp + ky * iw, *wr = wk + ky * kw;
                for (kx = kx0; kx < kx1; ++kx)
                    acc += wr[kx] * xr[kx];
            }
            y[oy * ow + ox] += acc;
        }
    }
}

#endif /* REDS_CORTEX_M_WINDOW_H */
