/*
 * depthwise conv2d, int8 reference: plain loops; the C twin of
 * reds.quant.ops.depthwise_conv2d. Channel ch of the output is channel ch of the input,
 * less zx, convolved with its own kernel weight[ch][ky][kx] (taps outside the input add
 * nothing), then the store step (reds_store_s8).
 */
#include "reds_s8.h"

/* the Arduino builder compiles all of src/: there kernels/cortex_m/depthwise_conv2d_s8.c is this op's kernel */
#ifndef REDS_ALL_SOURCES
#include "ref_window_s8.h"

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

#endif /* REDS_ALL_SOURCES */
