/*
 * Per-channel scale + bias (a folded batch norm), then the fused activation, reference:
 * x = x * scale[c] + bias[c], then max(x, 0) (ReLU) or x < 0 ? x * slope : x (LeakyReLU).
 */
#include "reds.h"

/* the Arduino builder compiles all of src/: there kernels/cortex_m/scale_bias_f32.c is this op's kernel */
#ifndef REDS_ALL_SOURCES

void reds_scale_bias_f32(const float *scale, const float *bias, uint32_t c, uint32_t hw, float *x, uint8_t act,
                         float slope)
{
    uint32_t ch, p;
    for (ch = 0; ch < c; ++ch) {
        for (p = 0; p < hw; ++p) {
            float v = x[ch * hw + p] * scale[ch] + bias[ch];
            if (act == REDS_ACT_RELU && v < 0.0f)
                v = 0.0f;
            else if (act == REDS_ACT_LEAKY_RELU && v < 0.0f)
                v = v * slope;
            x[ch * hw + p] = v;
        }
    }
}

#endif /* REDS_ALL_SOURCES */
