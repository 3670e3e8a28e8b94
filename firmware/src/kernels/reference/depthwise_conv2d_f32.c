/*
 * depthwise conv2d, reference: plain loops. Channel ch of the output is channel ch of the
 * input convolved with its own kernel W[ch][ky][kx] (zero padding), then the store step
 * (reds_post_f32: the bias, or a fused batch norm, and activation).
 */
#include "reds.h"

/* the Arduino builder compiles all of src/: there kernels/cortex_m/depthwise_conv2d_f32.c is this op's kernel */
#ifndef REDS_ALL_SOURCES
#include "ref_window.h"

void reds_depthwise_conv2d_f32(const reds_layer_t *L, const reds_post_t *p, uint32_t c, const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, ksize = (uint32_t)L->kh * L->kw;
    uint32_t ch;
    int32_t oy, ox;
    for (ch = 0; ch < c; ++ch)
        for (oy = 0; oy < L->out_h; ++oy)
            for (ox = 0; ox < L->out_w; ++ox)
                *y++ = reds_post_f32(p, ch, window_dot(L, L->weight + ch * ksize, x + ch * in_hw, oy, ox));
}

#endif /* REDS_ALL_SOURCES */
