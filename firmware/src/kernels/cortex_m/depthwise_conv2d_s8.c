/*
 * depthwise conv2d, int8, optimized for a Cortex-M4: per channel, the store step's values
 * in registers (chan_s8_t), the channel copied with its padding (zx) and every window
 * summed without bounds checks (window_s8.h: sum x * w less zx times the kernel's weight
 * sum, exact, so the reference's bits); a channel too large for the copy runs the
 * reference's loop.
 * Reference: kernels/reference/depthwise_conv2d_s8.c.
 */
#include "reds_s8.h"
#include "window_s8.h"

/* A 3x3 channel on its padded copy: the weights in registers as (w0, w2) pairs and w1 of
 * each row, so a row of taps is one word of x, two SXTB16, one SMLAD and one SMLABB (its
 * 4th byte, one past the window, is read and not used: the copy has room for it). */
static int8_t *dw3x3(const reds_layer_t *L, const int8_t *wk, const int8_t *buf, uint32_t pw, int32_t zw,
                     const chan_s8_t *k, int8_t *y)
{
    const int32_t a0 = pair16(wk[0], wk[2]), b0 = wk[1];
    const int32_t a1 = pair16(wk[3], wk[5]), b1 = wk[4];
    const int32_t a2 = pair16(wk[6], wk[8]), b2 = wk[7];
    const uint32_t sh = L->sh, sw = L->sw, oh = L->out_h, ow = L->out_w;
    uint32_t oy, ox;
    for (oy = 0; oy < oh; ++oy) {
        const int8_t *row = buf + oy * sh * pw;
        for (ox = 0; ox < ow; ++ox, row += sw) {
            int32_t acc = -zw;
            acc = row3_s8(row, a0, b0, acc);
            acc = row3_s8(row + pw, a1, b1, acc);
            acc = row3_s8(row + 2u * pw, a2, b2, acc);
            *y++ = store_chan_s8(k, acc);
        }
    }
    return y;
}

void reds_depthwise_conv2d_s8(const reds_layer_t *L, const int8_t *weight, const reds_requant_t *q, uint32_t c,
                              const int8_t *x, int8_t *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, ksize = (uint32_t)L->kh * L->kw;
    const uint32_t pw = padded_w(L), fits = padded_size(L) <= PAD_MAX_BYTES;
    const int32_t zx = q->zx;
    int8_t buf[PAD_MAX_BYTES];
    uint32_t ch;
    int32_t oy, ox;
    for (ch = 0; ch < c; ++ch) {
        const int8_t *wk = weight + ch * ksize, *xc = x + ch * in_hw;
        const int32_t zw = zx * weight_sum_s8(wk, ksize);
        chan_s8_t k;
        chan_s8(q, ch, &k);
        if (!fits) {
            for (oy = 0; oy < L->out_h; ++oy)
                for (ox = 0; ox < L->out_w; ++ox)
                    *y++ = store_chan_s8(&k, window_dot_s8(L, wk, xc, zx, oy, ox));
            continue;
        }
        pad_channel(L, xc, zx, buf);
        if (L->kh == 3 && L->kw == 3 && padded_size(L) + 4u <= PAD_MAX_BYTES) {
            y = dw3x3(L, wk, buf, pw, zw, &k, y);
            continue;
        }
        for (oy = 0; oy < L->out_h; ++oy) {
            const int8_t *row = buf + (uint32_t)oy * L->sh * pw;
            for (ox = 0; ox < L->out_w; ++ox)
                *y++ = store_chan_s8(&k, window_at_s8(wk, row + (uint32_t)ox * L->sw, pw, L->kh, L->kw) - zw);
        }
    }
}
