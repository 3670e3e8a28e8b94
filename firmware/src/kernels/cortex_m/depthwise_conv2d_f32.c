/*
 * depthwise conv2d, optimized: a sliding 3x3 register window for DS-CNN's blocks (3x3,
 * stride 1, padding 1), its 2x2 and 1x1 maps written out, a stride-2 3x3 window (padding
 * 0 or 1 on each side: MobileNet's downsampling blocks), the general window otherwise.
 * Each pixel ends in the store step (store.h: the bias, or the batch norm fused in, and
 * the activation; DW_POST), in registers.
 * Reference: kernels/reference/depthwise_conv2d_f32.c.
 */
#include "reds.h"
#include "store.h"
#include "window.h"

/* One output pixel of a 3x3 window held in registers: acc = the 9 products, row by
 * row; A, C, D name the window's columns (A0 .. A2: its left column's rows 0 .. 2). */
#define DW3X3_SUM(A, C, D)                                                                          \
    acc = w00 * A##0; acc += w01 * C##0; acc += w02 * D##0;                                         \
    acc += w10 * A##1; acc += w11 * C##1; acc += w12 * D##1;                                        \
    acc += w20 * A##2; acc += w21 * C##2; acc += w22 * D##2

/* The store step of a pixel's sum A: the locals of DW_POST_ARGS (the channel's post1_t)
 * and `act`. The line kernels take act as a constant (STORE_BY_ACT), so their loops carry no
 * test of it. */
#define DW_POST_ARGS const float ps = q->s, pt = q->t, slope = q->slope
#define DW_POST(A) post_act((A) * ps + pt, act, slope)

/* Depthwise fast path: 3x3 kernel, stride 1, padding 1 on every side (DS-CNN's blocks).
 * Each output line (a row; for a narrow input such as KWS's 25 x 5, a column) slides a
 * 3x3 window of registers along the input: per output pixel three new input values are
 * loaded and nine products added. A missing input line (padding) reads the centre line
 * with zero weights instead, so no pixel tests bounds; the padding at both ends of the
 * line is the zeros the window starts and ends with. The 9 weights come in registers (the caller loads them once per
 * channel, so short lines pay little per line). 3 pixels per iteration, the window's
 * columns rotating through the names a, c, d: no register moves (pixel ox reads a c d,
 * ox + 1 c d a, ox + 2 d a c).
 * The body of the row kernel (ES: the distance between a line's values, 1). */
#define DW3X3_LINE(ES)                                                                              \
    /* window columns: a = ox - 1, c = ox, d = ox + 1 */                                            \
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;                                                          \
    float c0 = r0[0], c1 = r1[0], c2 = r2[0];                                                       \
    float acc;                                                                                      \
    uint32_t ox;                                                                                    \
    for (ox = 0; ox + 3 < iw; ox += 3) {                                                            \
        const float d0 = r0[(ox + 1) * (ES)], d1 = r1[(ox + 1) * (ES)], d2 = r2[(ox + 1) * (ES)];   \
        DW3X3_SUM(a, c, d);                                                                         \
        yr[ox * (ES)] = DW_POST(acc);                                                                        \
        a0 = r0[(ox + 2) * (ES)]; a1 = r1[(ox + 2) * (ES)]; a2 = r2[(ox + 2) * (ES)];               \
        DW3X3_SUM(c, d, a);                                                                         \
        yr[(ox + 1) * (ES)] = DW_POST(acc);                                                                  \
        c0 = r0[(ox + 3) * (ES)]; c1 = r1[(ox + 3) * (ES)]; c2 = r2[(ox + 3) * (ES)];               \
        DW3X3_SUM(d, a, c);                                                                         \
        yr[(ox + 2) * (ES)] = DW_POST(acc); /* the next window starts with columns ox + 2 (a), ox + 3 (c) */ \
    }                                                                                               \
    for (; ox + 1 < iw; ++ox) {                                                                     \
        const float d0 = r0[(ox + 1) * (ES)], d1 = r1[(ox + 1) * (ES)], d2 = r2[(ox + 1) * (ES)];   \
        DW3X3_SUM(a, c, d);                                                                         \
        yr[ox * (ES)] = DW_POST(acc);                                                                        \
        a0 = c0; a1 = c1; a2 = c2;                                                                  \
        c0 = d0; c1 = d1; c2 = d2;                                                                  \
    }                                                                                               \
    /* last column: the right padding */                                                            \
    acc = w00 * a0; acc += w01 * c0;                                                                \
    acc += w10 * a1; acc += w11 * c1;                                                               \
    acc += w20 * a2; acc += w21 * c2;                                                               \
    yr[ox * (ES)] = DW_POST(acc);

STORE_INLINE void dw3x3_row_act(const float *r0, const float *r1, const float *r2, float *yr, uint32_t iw,
                             const post1_t *q, float w00, float w01, float w02, float w10, float w11, float w12,
                             float w20, float w21, float w22, const unsigned act)
{
    DW_POST_ARGS;
    DW3X3_LINE(1)
}

static void dw3x3_row(const float *r0, const float *r1, const float *r2, float *yr, uint32_t iw,
                      const post1_t *q, float w00, float w01, float w02, float w10, float w11, float w12, float w20,
                      float w21, float w22)
{
    STORE_BY_ACT(dw3x3_row_act, r0, r1, r2, yr, iw, q, w00, w01, w02, w10, w11, w12, w20, w21, w22);
}

STORE_INLINE void dw3x3_col_act(const float *r0, const float *r1, const float *r2, float *yr, uint32_t iw,
                             uint32_t es, const post1_t *q, float w00, float w01, float w02, float w10, float w11,
                             float w12, float w20, float w21, float w22, const unsigned act)
{
    DW_POST_ARGS;
    /* DW3X3_LINE with a variable stride: the pointers step by es (a VFP load takes no
     * register offset, so one add per load is the least it can cost) */
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;
    float c0 = *r0, c1 = *r1, c2 = *r2;
    float acc;
    uint32_t ox;
    for (ox = 0; ox + 3 < iw; ox += 3) {
        float d0, d1, d2;
        d0 = *(r0 += es); d1 = *(r1 += es); d2 = *(r2 += es);
        DW3X3_SUM(a, c, d);
        *yr = DW_POST(acc);
        a0 = *(r0 += es); a1 = *(r1 += es); a2 = *(r2 += es);
        DW3X3_SUM(c, d, a);
        *(yr += es) = DW_POST(acc);
        c0 = *(r0 += es); c1 = *(r1 += es); c2 = *(r2 += es);
        DW3X3_SUM(d, a, c);
        *(yr += es) = DW_POST(acc);
        yr += es;
    }
    for (; ox + 1 < iw; ++ox) {
        const float d0 = *(r0 += es), d1 = *(r1 += es), d2 = *(r2 += es);
        DW3X3_SUM(a, c, d);
        *yr = DW_POST(acc);
        yr += es;
        a0 = c0; a1 = c1; a2 = c2;
        c0 = d0; c1 = d1; c2 = d2;
    }
    acc = w00 * a0; acc += w01 * c0;
    acc += w10 * a1; acc += w11 * c1;
    acc += w20 * a2; acc += w21 * c2;
    *yr = DW_POST(acc);
}

static void dw3x3_col(const float *r0, const float *r1, const float *r2, float *yr, uint32_t iw, uint32_t es,
                      const post1_t *q, float w00, float w01, float w02, float w10, float w11, float w12,
                      float w20, float w21, float w22)
{
    STORE_BY_ACT(dw3x3_col_act, r0, r1, r2, yr, iw, es, q, w00, w01, w02, w10, w11, w12, w20, w21, w22);
}

static void dw3x3_s1_channel(const float *wk, uint32_t ih, uint32_t iw, const float *x, const post1_t *q, float *y)
{
    const float w00 = wk[0], w01 = wk[1], w02 = wk[2], w10 = wk[3], w11 = wk[4], w12 = wk[5];
    const float w20 = wk[6], w21 = wk[7], w22 = wk[8];
    uint32_t i;
    if (iw < ih && iw > 1) {
        /* Narrow input (KWS: 25 x 5): slide the window down the columns instead, so the
         * per-line cost is paid iw times, not ih times. The lines are columns (the
         * weights transposed); the 9 products of a pixel are summed column by column. */
        dw3x3_col(x, x, x + 1, y, ih, iw, q, 0.0f, 0.0f, 0.0f, w01, w11, w21, w02, w12, w22);
        for (i = 1; i + 1 < iw; ++i)
            dw3x3_col(x + i - 1, x + i, x + i + 1, y + i, ih, iw, q, w00, w10, w20, w01, w11, w21, w02, w12,
                      w22);
        dw3x3_col(x + i - 1, x + i, x + i, y + i, ih, iw, q, w00, w10, w20, w01, w11, w21, 0.0f, 0.0f, 0.0f);
        return;
    }
    if (ih == 1) { /* both the rows above and below are padding */
        dw3x3_row(x, x, x, y, iw, q, 0.0f, 0.0f, 0.0f, w10, w11, w12, 0.0f, 0.0f, 0.0f);
        return;
    }
    dw3x3_row(x, x, x + iw, y, iw, q, 0.0f, 0.0f, 0.0f, w10, w11, w12, w20, w21, w22);
    for (i = 1; i + 1 < ih; ++i) {
        const float *r1 = x + i * iw;
        dw3x3_row(r1 - iw, r1, r1 + iw, y + i * iw, iw, q, w00, w01, w02, w10, w11, w12, w20, w21, w22);
    }
    dw3x3_row(x + (i - 1) * iw, x + i * iw, x + i * iw, y + i * iw, iw, q, w00, w01, w02, w10, w11, w12,
              0.0f, 0.0f, 0.0f);
}

/* Stride-2 3x3 fast path, one output row: rows r0..r2 (a padding row is any input row
 * with zero weights, as above), ow pixels, the first window at input column -pl (pl 0
 * or 1). Consecutive windows share a column, so an inner pixel loads 6 values for its 9
 * products; 2 pixels per iteration with a common pointer (immediate offsets). A window
 * can only stick out by one column at each end (pads <= 1), written out before and
 * after the loop. */
STORE_INLINE void dw3x3_s2_row_act(const float *r0, const float *r1, const float *r2, float *y, uint32_t ow,
                                uint32_t iw, uint32_t pl, const post1_t *q, float w00, float w01, float w02,
                                float w10, float w11, float w12, float w20, float w21, float w22, const unsigned act)
{
    DW_POST_ARGS;
    uint32_t ox = 0, n;
    float acc, c0, c1, c2;
    if (pl) { /* column -1 is padding */
        acc = w01 * r0[0]; acc += w02 * r0[1];
        acc += w11 * r1[0]; acc += w12 * r1[1];
        acc += w21 * r2[0]; acc += w22 * r2[1];
        *y++ = DW_POST(acc);
        ox = 1;
    }
    r0 += 2 * ox - pl; r1 += 2 * ox - pl; r2 += 2 * ox - pl; /* the window's first column */
    /* inner pixels: the whole window inside, 2 * ox - pl + 2 < iw */
    n = iw + pl >= 3 ? (iw + pl - 3) / 2 + 1 : 0;
    n = (n > ow ? ow : n) - ox;
    ox += n;
    c0 = r0[0]; c1 = r1[0]; c2 = r2[0];
    for (; n >= 2; n -= 2, r0 += 4, r1 += 4, r2 += 4, y += 2) {
        const float d0 = r0[1], d1 = r1[1], d2 = r2[1], e0 = r0[2], e1 = r1[2], e2 = r2[2];
        const float f0 = r0[3], f1 = r1[3], f2 = r2[3];
        DW3X3_SUM(c, d, e);
        y[0] = DW_POST(acc);
        c0 = r0[4]; c1 = r1[4]; c2 = r2[4];
        DW3X3_SUM(e, f, c);
        y[1] = DW_POST(acc);
    }
    if (n) {
        acc = w00 * c0; acc += w01 * r0[1]; acc += w02 * r0[2];
        acc += w10 * c1; acc += w11 * r1[1]; acc += w12 * r1[2];
        acc += w20 * c2; acc += w21 * r2[1]; acc += w22 * r2[2];
        *y++ = DW_POST(acc);
        r0 += 2; r1 += 2; r2 += 2;
        c0 = r0[0]; c1 = r1[0]; c2 = r2[0];
    }
    if (ox < ow) { /* the last window: its column 2 is the right padding */
        acc = w00 * c0; acc += w01 * r0[1];
        acc += w10 * c1; acc += w11 * r1[1];
        acc += w20 * c2; acc += w21 * r2[1];
        *y = DW_POST(acc);
    }
}

static void dw3x3_s2_row(const float *r0, const float *r1, const float *r2, float *y, uint32_t ow, uint32_t iw,
                         uint32_t pl, const post1_t *q, float w00, float w01, float w02, float w10, float w11,
                         float w12, float w20, float w21, float w22)
{
    STORE_BY_ACT(dw3x3_s2_row_act, r0, r1, r2, y, ow, iw, pl, q, w00, w01, w02, w10, w11, w12, w20, w21, w22);
}

static void dw3x3_s2_channel(const reds_layer_t *L, const float *wk, const float *x, const post1_t *q, float *y)
{
    const uint32_t ih = L->in_h, iw = L->in_w, oh = L->out_h, ow = L->out_w, pt = L->pad_t, pl = L->pad_l;
    const float w00 = wk[0], w01 = wk[1], w02 = wk[2], w10 = wk[3], w11 = wk[4], w12 = wk[5];
    const float w20 = wk[6], w21 = wk[7], w22 = wk[8];
    uint32_t oy = 0, last = oh;
    const float *r;
    if (pt) { /* row -1 is padding: read row 0 with zero weights */
        dw3x3_s2_row(x, x, x + iw, y, ow, iw, pl, q, 0.0f, 0.0f, 0.0f, w10, w11, w12, w20, w21, w22);
        oy = 1;
    }
    if (2 * (oh - 1) - pt + 2 >= ih) /* the last window's row 2 is the bottom padding */
        last = oh - 1;
    for (r = x + (2 * oy - pt) * iw; oy < last; ++oy, r += 2 * iw)
        dw3x3_s2_row(r, r + iw, r + 2 * iw, y + oy * ow, ow, iw, pl, q, w00, w01, w02, w10, w11, w12, w20, w21,
                     w22);
    if (oy < oh) /* rows ih - 2, ih - 1 and the padding (row ih - 1 again, zero weights) */
        dw3x3_s2_row(r, r + iw, r + iw, y + oy * ow, ow, iw, pl, q, w00, w01, w02, w10, w11, w12, 0.0f, 0.0f,
                     0.0f);
}

static int is_dw3x3_s2(const reds_layer_t *L)
{
    return L->kh == 3 && L->kw == 3 && L->sh == 2 && L->sw == 2 && L->pad_t <= 1 && L->pad_b <= 1 &&
           L->pad_l <= 1 && L->pad_r <= 1 && L->in_h >= 2 && L->in_w >= 2 &&
           L->out_h == (L->in_h + L->pad_t + L->pad_b - 3) / 2 + 1 &&
           L->out_w == (L->in_w + L->pad_l + L->pad_r - 3) / 2 + 1;
}

/* 3x3, stride 1, padding 1 on a 2x2 map: each output sums the 4 taps that meet the input. */
static void dw3x3_2x2(const float *wk, const float *x, const post1_t *q, float *y)
{
    const float x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
    const float w11 = wk[4];
    const unsigned act = q->act;
    DW_POST_ARGS;
    float a;
    a = w11 * x0; a += wk[5] * x1; a += wk[7] * x2; a += wk[8] * x3; y[0] = DW_POST(a);
    a = wk[3] * x0; a += w11 * x1; a += wk[6] * x2; a += wk[7] * x3; y[1] = DW_POST(a);
    a = wk[1] * x0; a += wk[2] * x1; a += w11 * x2; a += wk[5] * x3; y[2] = DW_POST(a);
    a = wk[0] * x0; a += wk[1] * x1; a += wk[3] * x2; a += w11 * x3; y[3] = DW_POST(a);
}

void reds_depthwise_conv2d_f32(const reds_layer_t *L, const reds_post_t *p, uint32_t c, const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, out_hw = (uint32_t)L->out_h * L->out_w;
    const uint32_t ksize = (uint32_t)L->kh * L->kw;
    const int fast = L->kh == 3 && L->kw == 3 && L->sh == 1 && L->sw == 1 && L->pad_t == 1 && L->pad_b == 1 &&
                     L->pad_l == 1 && L->pad_r == 1 && L->in_h == L->out_h && L->in_w == L->out_w;
    const int s2 = is_dw3x3_s2(L), map2x2 = fast && in_hw == 4 && L->in_w == 2;
    uint32_t ch, px;
    post1_t q;
    if (s2 && in_hw == 4 && out_hw == 1) {
        /* 2x2 map, stride 2, one output: its window (top-left at -pad_t, -pad_l) meets the
         * input in the 2x2 taps from (pad_t, pad_l) */
        const float *wk = L->weight + 3 * L->pad_t + L->pad_l;
        for (ch = 0; ch < c; ++ch, x += 4, wk += 9) {
            float a = wk[0] * x[0];
            a += wk[1] * x[1]; a += wk[3] * x[2]; a += wk[4] * x[3];
            y[ch] = reds_post_f32(p, ch, a);
        }
        return;
    }
    if (fast && in_hw == 1) { /* 1x1 map: only the centre tap meets the input */
        for (ch = 0; ch < c; ++ch)
            y[ch] = reds_post_f32(p, ch, L->weight[9 * ch + 4] * x[ch]);
        return;
    }
    for (ch = 0; ch < c; ++ch) {
        float *yc = y + ch * out_hw;
        post_channel(p, ch, &q);
        if (map2x2) {
            dw3x3_2x2(L->weight + ch * ksize, x + ch * in_hw, &q, yc);
            continue;
        }
        if (s2) {
            dw3x3_s2_channel(L, L->weight + ch * ksize, x + ch * in_hw, &q, yc);
            continue;
        }
        if (fast) {
            dw3x3_s1_channel(L->weight + ch * ksize, L->in_h, L->in_w, x + ch * in_hw, &q, yc);
            continue;
        }
        for (px = 0; px < out_hw; ++px)
            yc[px] = 0.0f;
        conv_channel(L, L->weight + ch * ksize, x + ch * in_hw, yc);
        for (px = 0; px < out_hw; ++px) /* the general path sums into y: its store step comes after */
            yc[px] = post_act(yc[px] * q.s + q.t, q.act, q.slope);
    }
}
