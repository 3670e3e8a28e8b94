/*
 * depthwise conv2d, int8, optimized for a Cortex-M4: per channel, the store step's values
 * in registers (chan_s8_t), the channel copied into a buffer whose padding (zx) is filled
 * once per layer, and every window summed without bounds checks (window_s8.h: sum x * w
 * less zx times the kernel's weight sum, exact, so the reference's bits; a 3x3 at stride
 * 1 two outputs per word of taps, in one assembly loop per channel); a channel too large
 * for the copy runs the reference's loop.
 * Reference: kernels/reference/depthwise_conv2d_s8.c.
 */
#include <string.h>

#include "reds_s8.h"
#include "window_s8.h"

void reds_depthwise_conv2d_s8(const reds_layer_t *L, const int8_t *weight, const reds_requant_t *q, uint32_t c,
                              const int8_t *x, int8_t *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, ksize = (uint32_t)L->kh * L->kw;
    const uint32_t pw = padded_w(L), fits = padded_size(L) + PAD_ROOM <= PAD_MAX_BYTES;
    const int32_t zx = q->zx;
    int8_t buf[PAD_MAX_BYTES];
    uint32_t ch;
    int32_t oy, ox;
    if (fits)
        memset(buf, zx, padded_size(L));
    for (ch = 0; ch < c; ++ch) {
        const int8_t *wk = weight + ch * ksize, *xc = x + ch * in_hw;
        const int32_t zw = zx * weight_sum_s8(wk, ksize);
        chan_s8_t k;
        chan_s8(q, ch, ksize, &k);
        if (!fits) {
            for (oy = 0; oy < L->out_h; ++oy)
                for (ox = 0; ox < L->out_w; ++ox)
                    *y++ = store_chan_s8(&k, k.init + window_dot_s8(L, wk, xc, zx, oy, ox));
            continue;
        }
        pad_copy(L, xc, buf); /* the padding, the same for every channel, was filled once */
        y = channel_s8(L, wk, buf, pw, zw, &k, y);
    }
}
