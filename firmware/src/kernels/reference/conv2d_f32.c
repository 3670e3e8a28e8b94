/*
 * conv2d, reference: plain loops, obviously right; what the optimized kernels are tested
 * against. Zero padding (pad_t, pad_l before the input; the output size says the rest).
 * y[o][oy][ox] = bias[o] + sum over the active submodel's inputs i and taps (ky, kx) of
 * W[o][i][ky][kx] * x[i][oy * sh - pad_t + ky][ox * sw - pad_l + kx].
 */
#include "reds.h"

/* the Arduino builder compiles all of src/: there kernels/cortex_m/conv2d_f32.c is this op's kernel */
#ifndef REDS_ALL_SOURCES
#include "ref_window.h"

void reds_conv2d_f32(const reds_layer_t *L, const reds_weights_t *w, uint32_t cin, uint32_t cout,
                     const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w;
    reds_seg_t segs[REDS_MAX_SUBMODELS];
    uint32_t o, i;
    int32_t oy, ox;
    unsigned s, n;
    (void)cin; /* the segments cover exactly the active submodel's cin inputs */
    for (o = 0; o < cout; ++o) {
        n = reds_weight_row(w, o, segs);
        for (oy = 0; oy < L->out_h; ++oy) {
            for (ox = 0; ox < L->out_w; ++ox) {
                float acc = L->bias ? L->bias[o] : 0.0f;
                for (s = 0; s < n; ++s)
                    for (i = segs[s].lo; i < segs[s].hi; ++i)
                        acc += window_dot(L, segs[s].w + (i - segs[s].lo) * w->elem, x + i * in_hw, oy, ox);
                *y++ = acc;
            }
        }
    }
}

#endif /* REDS_ALL_SOURCES */
