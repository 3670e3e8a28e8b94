/*
 * conv2d, int8 reference: plain loops, obviously right; the C twin of reds.quant.ops.conv2d
 * and what optimized int8 kernels are tested against. Zero padding: taps outside the input
 * add nothing (they are real zeros). y[o][oy][ox] = store(o, sum over the submodel's inputs
 * i and taps (ky, kx) of (x[i][oy * sh - pad_t + ky][ox * sw - pad_l + kx] - zx) * W[o][i][ky][kx]),
 * store the requantization step (reds_store_s8).
 */
#include "reds_s8.h"

/* the Arduino builder compiles all of src/: there kernels/cortex_m/conv2d_s8.c is this op's kernel */
#ifndef REDS_ALL_SOURCES
#include "ref_window_s8.h"

void reds_conv2d_s8(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin,
                    uint32_t cout, const int8_t *x, int8_t *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, out_hw = (uint32_t)L->out_h * L->out_w;
    uint32_t g, o, i;
    int32_t oy, ox;
    unsigned s;
    (void)cin;  /* the segments cover exactly the submodel's cin inputs */
    (void)cout; /* and the groups its cout rows */
    for (g = 0; g < w->ngroups; ++g) {
        const reds_group_t *G = &w->groups[g];
        for (o = G->o0; o < G->o1; ++o) {
            int8_t *yo = y + o * out_hw;
            for (oy = 0; oy < L->out_h; ++oy) {
                for (ox = 0; ox < L->out_w; ++ox) {
                    int32_t acc = 0;
                    for (s = 0; s < G->n; ++s) {
                        const reds_seg_t *S = &w->segs[G->first + s];
                        const int8_t *ws = w->base + S->off + o * S->step;
                        for (i = S->lo; i < S->hi; ++i)
                            acc += window_dot_s8(L, ws + (i - S->lo) * w->elem, x + i * in_hw, q->zx, oy, ox);
                    }
                    *yo++ = reds_store_s8(q, o, acc);
                }
            }
        }
    }
}

#endif /* REDS_ALL_SOURCES */
