/*
 * conv2d, reference: plain loops, obviously right; what the optimized kernels are tested
 * against. Zero padding (pad_t, pad_l before the input; the output size says the rest).
 * y[o][oy][ox] = post(o, sum over the active submodel's inputs i and taps (ky, kx) of
 * W[o][i][ky][kx] * x[i][oy * sh - pad_t + ky][ox * sw - pad_l + kx]), post the store step
 * (reds_post_f32: the bias, or a fused batch norm, and activation).
 */
#include "reds.h"

/* the Arduino builder compiles all of src/: there kernels/cortex_m/conv2d_f32.c is this op's kernel */
#ifndef REDS_ALL_SOURCES
#include "ref_window.h"

void reds_conv2d_f32(const reds_layer_t *L, const reds_weights_t *w, const reds_post_t *p, uint32_t cin,
                     uint32_t cout, const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, out_hw = (uint32_t)L->out_h * L->out_w;
    uint32_t g, o, i;
    int32_t oy, ox;
    unsigned s;
    (void)cin; /* the segments cover exactly the active submodel's cin inputs */
    (void)cout; /* and the groups its cout rows */
    for (g = 0; g < w->ngroups; ++g) {
        const reds_group_t *G = &w->groups[g];
        for (o = G->o0; o < G->o1; ++o) {
            float *yo = y + o * out_hw;
            for (oy = 0; oy < L->out_h; ++oy) {
                for (ox = 0; ox < L->out_w; ++ox) {
                    float acc = 0.0f;
                    for (s = 0; s < G->n; ++s) {
                        const reds_seg_t *S = &w->segs[G->first + s];
                        const float *ws = w->base + S->off + o * S->step;
                        for (i = S->lo; i < S->hi; ++i)
                            acc += window_dot(L, ws + (i - S->lo) * w->elem, x + i * in_hw, oy, ox);
                    }
                    *yo++ = reds_post_f32(p, o, acc);
                }
            }
        }
    }
}

#endif /* REDS_ALL_SOURCES */
