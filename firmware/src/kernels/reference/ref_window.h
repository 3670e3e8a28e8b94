/*
 * The one loop the reference convolutions share: the dot product of a kernel window with
 * one input channel at output pixel (oy, ox), zero padding (taps outside the input add
 * nothing). Internal to firmware/src/kernels/reference/.
 */
#ifndef REDS_REF_WINDOW_H
#define REDS_REF_WINDOW_H

#include "reds.h"

static inline float window_dot(const reds_layer_t *L, const float *wk, const float *xc, int32_t oy, int32_t ox)
{
    const int32_t ih = L->in_h, iw = L->in_w, kh = L->kh, kw = L->kw;
    float acc = 0.0f;
    int32_t ky, kx;
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
    return acc;
}

#endif /* REDS_REF_WINDOW_H */
