/*
 * avg pool, int8, optimized for a Cortex-M4: a window's rows summed 4 bytes a word, each
 * word's signed bytes made unsigned (x + 128: the sign bit flipped) and added by one
 * USADA8; the sum of x is that less 128 per byte, and the sum of (x - zx) that less zx
 * per byte (exact integers, so the reference's bits). A window of whole rows (the global
 * pool of every DS-CNN) is one run of bytes.
 * Reference: kernels/reference/avg_pool_s8.c.
 */
#include "dsp_s8.h"
#include "reds_s8.h"

/* sum of the n int8 at p */
static int32_t sum_s8(const int8_t *p, uint32_t n)
{
    uint32_t u = 0, i;
    int32_t s;
    for (i = 0; i + 8u <= n; i += 8u)
        u = usada8((uint32_t)load4(p + i + 4u) ^ 0x80808080u, usada8((uint32_t)load4(p + i) ^ 0x80808080u, u));
    for (; i + 4u <= n; i += 4u)
        u = usada8((uint32_t)load4(p + i) ^ 0x80808080u, u);
    s = (int32_t)(u - 128u * i);
    for (; i < n; ++i)
        s += p[i];
    return s;
}

void reds_avg_pool_s8(const reds_layer_t *L, uint32_t c, int32_t m, int e, int32_t zx, int32_t zy, const int8_t *x,
                      int8_t *y)
{
    const uint32_t iw = L->in_w, in_hw = (uint32_t)L->in_h * iw, kh = L->kh, kw = L->kw;
    const int32_t zn = zx * (int32_t)(kh * kw);
    const int rows = kw == iw; /* a window of whole rows: one run */
    uint32_t ch, oy, ox, ky;
    for (ch = 0; ch < c; ++ch) {
        const int8_t *xc = x + ch * in_hw;
        for (oy = 0; oy < L->out_h; ++oy) {
            for (ox = 0; ox < L->out_w; ++ox) {
                const int8_t *xw = xc + oy * L->sh * iw + ox * L->sw;
                int32_t acc = 0;
                int64_t t;
                if (rows) {
                    acc = sum_s8(xw, kh * kw);
                } else {
                    for (ky = 0; ky < kh; ++ky, xw += iw)
                        acc += sum_s8(xw, kw);
                }
                t = (int64_t)reds_requantize(acc - zn, m, e) + zy;
                *y++ = (int8_t)(t < -128 ? -128 : (t > 127 ? 127 : t));
            }
        }
    }
}
