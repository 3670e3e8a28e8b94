/*
 * The one loop the int8 convolutions share (the reference conv2d and depthwise conv2d,
 * and the general path of kernels/cortex_m/conv2d_s8.c): the dot product of a kernel
 * window with one input channel at output pixel (oy, ox), each input less its zero point
 * zx, zero padding (taps outside the input add nothing: they are real zeros). Integer
 * sums are exact, so every kernel that sums this way gives the same bits.
 * Internal to firmware/src/kernels/ (ref_window.h is the float loop).
 */
#ifndef REDS_REF_WINDOW_S8_H
#define REDS_REF_WINDOW_S8_H

#include "reds_s8.h"

static inline int32_t window_dot_s8(const reds_layer_t *L, const int8_t *wk, const int8_t *xc, int32_t zx,
                                    int32_t oy, int32_t ox)
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

#endif /* REDS_REF_WINDOW_S8_H */
