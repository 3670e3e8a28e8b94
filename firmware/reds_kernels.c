/*
 * Reference float kernels of the reds runtime, and the weight index of both layouts.
 *
 * Plain loops, written to be obviously right: they are what optimized kernels (one file
 * per target, same names) will be tested against. Activations are C x H x W.
 * Each kernel gets its channel counts from the caller (the active submodel's row of the
 * widths table); the weights of conv and dense layers are reached through
 * reds_weight_row(), so the kernels do not care which layout the exporter chose.
 */
#include <string.h>

#include "reds.h"

unsigned reds_weight_row(const reds_weights_t *w, uint32_t o, reds_seg_t *segs)
{
    const uint32_t k = w->k, st = w->stride, e = w->elem;
    uint32_t j, m, n;
    if (w->layout != REDS_LAYOUT_NESTED) {
        segs[0].w = w->base + o * w->row_stride;
        segs[0].lo = 0;
        segs[0].hi = w->in_w[k * st];
        return 1;
    }
    /* Shell j of row o: the first submodel whose output width covers o. That shell
     * holds the row's first in_w[j] entries, at o * in_w[j] (see README.md). */
    j = 0;
    while (j < k && o >= w->out_w[j * st])
        ++j;
    segs[0].w = w->base + (uint32_t)(o * w->in_w[j * st]) * e;
    segs[0].lo = 0;
    segs[0].hi = w->in_w[j * st];
    n = 1;
    /* Every later shell m adds the inputs in_w[m-1] .. in_w[m]-1 of all its older rows,
     * stored after the block of submodel m-1 (out_w[m-1] x in_w[m-1] entries). */
    for (m = j + 1; m <= k; ++m) {
        const uint32_t i0 = w->in_w[(m - 1) * st], i1 = w->in_w[m * st];
        if (i1 > i0) {
            const uint32_t off = w->out_w[(m - 1) * st] * i0 + o * (i1 - i0);
            segs[n].w = w->base + off * e;
            segs[n].lo = i0;
            segs[n].hi = i1;
            ++n;
        }
    }
    return n;
}

/* ---- conv2d ------------------------------------------------------------------------- */

/* The taps of one output row/column that fall inside the input: [*k0, *k1) of a kernel
 * of size k whose first tap is at input index i0 (negative in the padding). Computed once
 * per row or pixel, so the multiply-accumulate loops below need no per-tap bounds test. */
static void clip_taps(int32_t i0, int32_t k, int32_t n, int32_t *k0, int32_t *k1)
{
    *k0 = i0 < 0 ? -i0 : 0;
    *k1 = n - i0 < k ? n - i0 : k;
}

/* y[oy][ox] += sum over the kernel window of one input channel x (zero padding).
 * The general path: any kernel, stride and padding. Padding taps are skipped by clipping
 * the window's row range per output row and its column range per output pixel. */
static void conv_channel(const reds_layer_t *L, const float *wk, const float *x, float *y)
{
    const int32_t ih = L->in_h, iw = L->in_w, kh = L->kh, kw = L->kw;
    const int32_t sh = L->sh, sw = L->sw, pt = L->pad_t, pl = L->pad_l;
    const int32_t oh = L->out_h, ow = L->out_w;
    int32_t oy, ox, ky, kx, ky0, ky1, kx0, kx1;
    for (oy = 0; oy < oh; ++oy) {
        const int32_t iy0 = oy * sh - pt;
        clip_taps(iy0, kh, ih, &ky0, &ky1);
        for (ox = 0; ox < ow; ++ox) {
            const int32_t ix0 = ox * sw - pl;
            const float *xp = x + iy0 * iw + ix0; /* the window's top-left tap (maybe padding) */
            float acc = 0.0f;
            clip_taps(ix0, kw, iw, &kx0, &kx1);
            for (ky = ky0; ky < ky1; ++ky) {
                const float *xr = xp + ky * iw, *wr = wk + ky * kw;
                for (kx = kx0; kx < kx1; ++kx)
                    acc += wr[kx] * xr[kx];
            }
            y[oy * ow + ox] += acc;
        }
    }
}

/* y[r][0] += a_r for the nr (2 to 4) channels of a block that exist (a block of the
 * last 2 or 3 channels runs as a 4-block with zero weights in the missing rows). */
static void add4(float *yp, uint32_t ystride, uint32_t nr, float a0, float a1, float a2, float a3)
{
    yp[0] += a0;
    yp[ystride] += a1;
    if (nr > 2)
        yp[2 * ystride] += a2;
    if (nr > 3)
        yp[3 * ystride] += a3;
}

/* conv_channel for 4 output channels at once, whose weights for this input channel are
 * interleaved in wt[tap][4] (tap = ky * kw + kx): each input value is loaded once for 4
 * MACs and the 4 weights of a tap are adjacent. Each channel sums exactly as
 * conv_channel does (acc from 0 over ky, kx; then y += acc), so a row gives the same bits
 * whether it ran in a block of 4 or alone. */
static void conv_channel4(const reds_layer_t *L, const float *wt, const float *x, float *y, uint32_t ystride,
                          uint32_t nr)
{
    const int32_t ih = L->in_h, iw = L->in_w, kh = L->kh, kw = L->kw;
    const int32_t sh = L->sh, sw = L->sw, pt = L->pad_t, pl = L->pad_l;
    const int32_t oh = L->out_h, ow = L->out_w;
    int32_t oy, ox, ky, kx, ky0, ky1, kx0, kx1;
    for (oy = 0; oy < oh; ++oy) {
        const int32_t iy0 = oy * sh - pt;
        if (iy0 >= 0 && oy + 1 < oh && iy0 + sh + kh <= ih) {
            /* Rows oy and oy + 1 both have their whole column of taps inside the input:
             * do both at once (each loaded weight feeds 2 MACs), each pixel still summing
             * from 0 over ky, kx in order. */
            for (ox = 0; ox < ow; ++ox) {
                const int32_t ix0 = ox * sw - pl;
                const float *xp = x + iy0 * iw + ix0;
                float *yp = y + oy * ow + ox;
                float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
                float b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f;
                clip_taps(ix0, kw, iw, &kx0, &kx1);
                for (ky = 0; ky < kh; ++ky) {
                    const float *xr = xp + ky * iw + kx0, *xs = xr + sh * iw, *wp = wt + 4 * (ky * kw + kx0);
                    const float *xe = xp + ky * iw + kx1;
                    for (; xr < xe; ++xr, ++xs, wp += 4) {
                        const float v = *xr, u = *xs;
                        const float w0 = wp[0], w1 = wp[1], w2 = wp[2], w3 = wp[3];
                        a0 += w0 * v; a1 += w1 * v; a2 += w2 * v; a3 += w3 * v;
                        b0 += w0 * u; b1 += w1 * u; b2 += w2 * u; b3 += w3 * u;
                    }
                }
                add4(yp, ystride, nr, a0, a1, a2, a3);
                add4(yp + ow, ystride, nr, b0, b1, b2, b3);
            }
            ++oy;
            continue;
        }
        clip_taps(iy0, kh, ih, &ky0, &ky1);
        for (ox = 0; ox < ow; ++ox) {
            const int32_t ix0 = ox * sw - pl;
            const float *xp = x + iy0 * iw + ix0;
            float *yp = y + oy * ow + ox;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            if (ix0 >= 0 && ox + 1 < ow && ix0 + sw + kw <= iw) {
                /* Pixels ox and ox + 1 both have their whole row of taps inside the input:
                 * do both at once, so each loaded weight feeds 2 MACs (8 accumulators).
                 * Each pixel still sums from 0 over ky, kx in order. */
                float b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f;
                for (ky = ky0; ky < ky1; ++ky) {
                    const float *xr = xp + ky * iw, *xs = xr + sw, *wp = wt + 4 * ky * kw;
                    for (kx = 0; kx < kw; ++kx, wp += 4) {
                        const float v = xr[kx], u = xs[kx];
                        const float w0 = wp[0], w1 = wp[1], w2 = wp[2], w3 = wp[3];
                        a0 += w0 * v; a1 += w1 * v; a2 += w2 * v; a3 += w3 * v;
                        b0 += w0 * u; b1 += w1 * u; b2 += w2 * u; b3 += w3 * u;
                    }
                }
                add4(yp, ystride, nr, a0, a1, a2, a3);
                add4(yp + 1, ystride, nr, b0, b1, b2, b3);
                ++ox;
                continue;
            }
            clip_taps(ix0, kw, iw, &kx0, &kx1);
            for (ky = ky0; ky < ky1; ++ky) {
                const float *xr = xp + ky * iw, *wp = wt + 4 * (ky * kw + kx0);
                for (kx = kx0; kx + 2 <= kx1; kx += 2, wp += 8) { /* unrolled by 2: fewer loop instructions */
                    const float v = xr[kx], u = xr[kx + 1];
                    a0 += wp[0] * v; a1 += wp[1] * v; a2 += wp[2] * v; a3 += wp[3] * v;
                    a0 += wp[4] * u; a1 += wp[5] * u; a2 += wp[6] * u; a3 += wp[7] * u;
                }
                if (kx < kx1) {
                    const float v = xr[kx];
                    a0 += wp[0] * v; a1 += wp[1] * v; a2 += wp[2] * v; a3 += wp[3] * v;
                }
            }
            add4(yp, ystride, nr, a0, a1, a2, a3);
        }
    }
}

/* Depthwise fast path: 3x3 kernel, stride 1, padding 1 on every side (DS-CNN's blocks).
 * Each output line (a row; for a narrow input such as KWS's 25 x 5, a column) slides a
 * 3x3 window of registers along the input: per output pixel three new input values are
 * loaded and nine products added. A missing input line (padding) reads the centre line
 * with zero weights instead, so no pixel tests bounds; the padding at both ends of the
 * line is the zeros the window starts and ends with. acc starts at b, as the general
 * path's y does. The 9 weights come in registers (the caller loads them once per
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
        acc = b;                                                                                    \
        acc += w00 * a0; acc += w01 * c0; acc += w02 * d0;                                          \
        acc += w10 * a1; acc += w11 * c1; acc += w12 * d1;                                          \
        acc += w20 * a2; acc += w21 * c2; acc += w22 * d2;                                          \
        yr[ox * (ES)] = acc;                                                                        \
        a0 = r0[(ox + 2) * (ES)]; a1 = r1[(ox + 2) * (ES)]; a2 = r2[(ox + 2) * (ES)];               \
        acc = b;                                                                                    \
        acc += w00 * c0; acc += w01 * d0; acc += w02 * a0;                                          \
        acc += w10 * c1; acc += w11 * d1; acc += w12 * a1;                                          \
        acc += w20 * c2; acc += w21 * d2; acc += w22 * a2;                                          \
        yr[(ox + 1) * (ES)] = acc;                                                                  \
        c0 = r0[(ox + 3) * (ES)]; c1 = r1[(ox + 3) * (ES)]; c2 = r2[(ox + 3) * (ES)];               \
        acc = b;                                                                                    \
        acc += w00 * d0; acc += w01 * a0; acc += w02 * c0;                                          \
        acc += w10 * d1; acc += w11 * a1; acc += w12 * c1;                                          \
        acc += w20 * d2; acc += w21 * a2; acc += w22 * c2;                                          \
        yr[(ox + 2) * (ES)] = acc; /* the next window starts with columns ox + 2 (a), ox + 3 (c) */ \
    }                                                                                               \
    for (; ox + 1 < iw; ++ox) {                                                                     \
        const float d0 = r0[(ox + 1) * (ES)], d1 = r1[(ox + 1) * (ES)], d2 = r2[(ox + 1) * (ES)];   \
        acc = b;                                                                                    \
        acc += w00 * a0; acc += w01 * c0; acc += w02 * d0;                                          \
        acc += w10 * a1; acc += w11 * c1; acc += w12 * d1;                                          \
        acc += w20 * a2; acc += w21 * c2; acc += w22 * d2;                                          \
        yr[ox * (ES)] = acc;                                                                        \
        a0 = c0; a1 = c1; a2 = c2;                                                                  \
        c0 = d0; c1 = d1; c2 = d2;                                                                  \
    }                                                                                               \
    /* last column: the right padding */                                                            \
    acc = b;                                                                                        \
    acc += w00 * a0; acc += w01 * c0;                                                               \
    acc += w10 * a1; acc += w11 * c1;                                                               \
    acc += w20 * a2; acc += w21 * c2;                                                               \
    yr[ox * (ES)] = acc;

static void dw3x3_row(const float *r0, const float *r1, const float *r2, float *yr, uint32_t iw, float b,
                      float w00, float w01, float w02, float w10, float w11, float w12, float w20, float w21,
                      float w22)
{
    DW3X3_LINE(1)
}

static void dw3x3_col(const float *r0, const float *r1, const float *r2, float *yr, uint32_t iw, uint32_t es,
                      float b, float w00, float w01, float w02, float w10, float w11, float w12, float w20,
                      float w21, float w22)
{
    /* DW3X3_LINE with a variable stride: the pointers step by es (a VFP load takes no
     * register offset, so one add per load is the least it can cost) */
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f;
    float c0 = *r0, c1 = *r1, c2 = *r2;
    float acc;
    uint32_t ox;
    for (ox = 0; ox + 3 < iw; ox += 3) {
        float d0, d1, d2;
        d0 = *(r0 += es); d1 = *(r1 += es); d2 = *(r2 += es);
        acc = b;
        acc += w00 * a0; acc += w01 * c0; acc += w02 * d0;
        acc += w10 * a1; acc += w11 * c1; acc += w12 * d1;
        acc += w20 * a2; acc += w21 * c2; acc += w22 * d2;
        *yr = acc;
        a0 = *(r0 += es); a1 = *(r1 += es); a2 = *(r2 += es);
        acc = b;
        acc += w00 * c0; acc += w01 * d0; acc += w02 * a0;
        acc += w10 * c1; acc += w11 * d1; acc += w12 * a1;
        acc += w20 * c2; acc += w21 * d2; acc += w22 * a2;
        *(yr += es) = acc;
        c0 = *(r0 += es); c1 = *(r1 += es); c2 = *(r2 += es);
        acc = b;
        acc += w00 * d0; acc += w01 * a0; acc += w02 * c0;
        acc += w10 * d1; acc += w11 * a1; acc += w12 * c1;
        acc += w20 * d2; acc += w21 * a2; acc += w22 * c2;
        *(yr += es) = acc;
        yr += es;
    }
    for (; ox + 1 < iw; ++ox) {
        const float d0 = *(r0 += es), d1 = *(r1 += es), d2 = *(r2 += es);
        acc = b;
        acc += w00 * a0; acc += w01 * c0; acc += w02 * d0;
        acc += w10 * a1; acc += w11 * c1; acc += w12 * d1;
        acc += w20 * a2; acc += w21 * c2; acc += w22 * d2;
        *yr = acc;
        yr += es;
        a0 = c0; a1 = c1; a2 = c2;
        c0 = d0; c1 = d1; c2 = d2;
    }
    acc = b;
    acc += w00 * a0; acc += w01 * c0;
    acc += w10 * a1; acc += w11 * c1;
    acc += w20 * a2; acc += w21 * c2;
    *yr = acc;
}

static void dw3x3_s1_channel(const float *wk, uint32_t ih, uint32_t iw, const float *x, float b, float *y)
{
    const float w00 = wk[0], w01 = wk[1], w02 = wk[2], w10 = wk[3], w11 = wk[4], w12 = wk[5];
    const float w20 = wk[6], w21 = wk[7], w22 = wk[8];
    uint32_t i;
    if (iw < ih && iw > 1) {
        /* Narrow input (KWS: 25 x 5): slide the window down the columns instead, so the
         * per-line cost is paid iw times, not ih times. The lines are columns (the
         * weights transposed); the 9 products of a pixel are summed column by column. */
        dw3x3_col(x, x, x + 1, y, ih, iw, b, 0.0f, 0.0f, 0.0f, w01, w11, w21, w02, w12, w22);
        for (i = 1; i + 1 < iw; ++i)
            dw3x3_col(x + i - 1, x + i, x + i + 1, y + i, ih, iw, b, w00, w10, w20, w01, w11, w21, w02, w12,
                      w22);
        dw3x3_col(x + i - 1, x + i, x + i, y + i, ih, iw, b, w00, w10, w20, w01, w11, w21, 0.0f, 0.0f, 0.0f);
        return;
    }
    if (ih == 1) { /* both the rows above and below are padding */
        dw3x3_row(x, x, x, y, iw, b, 0.0f, 0.0f, 0.0f, w10, w11, w12, 0.0f, 0.0f, 0.0f);
        return;
    }
    dw3x3_row(x, x, x + iw, y, iw, b, 0.0f, 0.0f, 0.0f, w10, w11, w12, w20, w21, w22);
    for (i = 1; i + 1 < ih; ++i) {
        const float *r1 = x + i * iw;
        dw3x3_row(r1 - iw, r1, r1 + iw, y + i * iw, iw, b, w00, w01, w02, w10, w11, w12, w20, w21, w22);
    }
    dw3x3_row(x + (i - 1) * iw, x + i * iw, x + i * iw, y + i * iw, iw, b, w00, w01, w02, w10, w11, w12,
              0.0f, 0.0f, 0.0f);
}

/* Do rows a and b of a conv/dense layer have their inputs in the same segments? Then the
 * row-blocked kernels below can walk both rows with one loop. Rows of the same shell
 * do (rowmajor: every row). Blocking never changes the order of a row's sums, so both
 * layouts still give the same bits. */
static int same_runs(const reds_seg_t *a, unsigned na, const reds_seg_t *b, unsigned nb)
{
    unsigned s;
    if (na != nb)
        return 0;
    for (s = 0; s < na; ++s)
        if (a[s].lo != b[s].lo || a[s].hi != b[s].hi)
            return 0;
    return 1;
}

/* How many of the rows o, o+1, ... (at most 4, fewer than cout - o) share row o's
 * segments: fills segs[r] (REDS_MAX_SUBMODELS entries each) for those rows, returns
 * 4 when all four do, else 1 (the blocked kernels handle 4 rows or one). */
static unsigned row_block(const reds_weights_t *w, uint32_t o, uint32_t cout,
                          reds_seg_t segs[4][REDS_MAX_SUBMODELS], unsigned *n)
{
    unsigned r;
    *n = reds_weight_row(w, o, segs[0]);
    if (cout - o < 4)
        return 1;
    for (r = 1; r < 4; ++r) {
        const unsigned nr = reds_weight_row(w, o + r, segs[r]);
        if (!same_runs(segs[0], *n, segs[r], nr))
            return 1;
    }
    return 4;
}

/* Pointwise conv (1x1, stride 1, no padding) of 4 output channels whose weight rows
 * share their segments: y[r][p] = b[r] + sum_i w_r[i] * x[i][p]. A block of 4 channels x
 * 4 pixels lives in 16 registers while the loop walks the input channels, so each loaded
 * input value feeds 4 MACs and each loaded weight 4 (~1.5 instructions per MAC instead
 * of ~3 for one channel at a time). Sums run over the inputs in order, starting from the
 * bias, as in the one-channel path below. */
static void pointwise4(const reds_seg_t segs[4][REDS_MAX_SUBMODELS], unsigned n, const float *b,
                       uint32_t hw, const float *x, float *y)
{
    uint32_t p, i;
    unsigned s;
    float *y0 = y, *y1 = y + hw, *y2 = y + 2 * hw, *y3 = y + 3 * hw;
    for (p = 0; p + 4 <= hw; p += 4) {
        float a00 = b[0], a01 = b[0], a02 = b[0], a03 = b[0];
        float a10 = b[1], a11 = b[1], a12 = b[1], a13 = b[1];
        float a20 = b[2], a21 = b[2], a22 = b[2], a23 = b[2];
        float a30 = b[3], a31 = b[3], a32 = b[3], a33 = b[3];
        for (s = 0; s < n; ++s) {
            const float *w0 = segs[0][s].w, *w1 = segs[1][s].w, *w2 = segs[2][s].w, *w3 = segs[3][s].w;
            const float *xp = x + segs[0][s].lo * hw + p;
            const uint32_t len = segs[0][s].hi - segs[0][s].lo;
            for (i = 0; i < len; ++i, xp += hw) {
                const float x0 = xp[0], x1 = xp[1], x2 = xp[2], x3 = xp[3];
                const float v0 = w0[i], v1 = w1[i], v2 = w2[i], v3 = w3[i];
                a00 += v0 * x0; a01 += v0 * x1; a02 += v0 * x2; a03 += v0 * x3;
                a10 += v1 * x0; a11 += v1 * x1; a12 += v1 * x2; a13 += v1 * x3;
                a20 += v2 * x0; a21 += v2 * x1; a22 += v2 * x2; a23 += v2 * x3;
                a30 += v3 * x0; a31 += v3 * x1; a32 += v3 * x2; a33 += v3 * x3;
            }
        }
        y0[p] = a00; y0[p + 1] = a01; y0[p + 2] = a02; y0[p + 3] = a03;
        y1[p] = a10; y1[p + 1] = a11; y1[p + 2] = a12; y1[p + 3] = a13;
        y2[p] = a20; y2[p + 1] = a21; y2[p + 2] = a22; y2[p + 3] = a23;
        y3[p] = a30; y3[p + 1] = a31; y3[p + 2] = a32; y3[p + 3] = a33;
    }
    for (; p < hw; ++p) { /* the last hw % 4 pixels */
        float a0 = b[0], a1 = b[1], a2 = b[2], a3 = b[3];
        for (s = 0; s < n; ++s) {
            const float *w0 = segs[0][s].w, *w1 = segs[1][s].w, *w2 = segs[2][s].w, *w3 = segs[3][s].w;
            const float *xp = x + segs[0][s].lo * hw + p;
            const uint32_t len = segs[0][s].hi - segs[0][s].lo;
            for (i = 0; i < len; ++i, xp += hw) {
                const float xv = *xp;
                a0 += w0[i] * xv; a1 += w1[i] * xv; a2 += w2[i] * xv; a3 += w3[i] * xv;
            }
        }
        y0[p] = a0; y1[p] = a1; y2[p] = a2; y3[p] = a3;
    }
}

/* Pointwise conv of one output channel (the rows a 4-block cannot take): 4 pixels at a time. */
static void pointwise1(const reds_seg_t *segs, unsigned n, float b, uint32_t hw, const float *x, float *y)
{
    uint32_t p, i;
    unsigned s;
    for (p = 0; p + 4 <= hw; p += 4) {
        float a0 = b, a1 = b, a2 = b, a3 = b;
        for (s = 0; s < n; ++s) {
            const float *w0 = segs[s].w, *xp = x + segs[s].lo * hw + p;
            const uint32_t len = segs[s].hi - segs[s].lo;
            for (i = 0; i < len; ++i, xp += hw) {
                const float v = w0[i];
                a0 += v * xp[0]; a1 += v * xp[1]; a2 += v * xp[2]; a3 += v * xp[3];
            }
        }
        y[p] = a0; y[p + 1] = a1; y[p + 2] = a2; y[p + 3] = a3;
    }
    for (; p < hw; ++p) {
        float a = b;
        for (s = 0; s < n; ++s) {
            const float *w0 = segs[s].w, *xp = x + segs[s].lo * hw + p;
            const uint32_t len = segs[s].hi - segs[s].lo;
            for (i = 0; i < len; ++i, xp += hw)
                a += w0[i] * *xp;
        }
        y[p] = a;
    }
}

/* Largest kernel (kh * kw) that the 4-channel conv path interleaves on the stack. */
#define CONV4_TAPS 64

static int is_pointwise(const reds_layer_t *L)
{
    return L->kh == 1 && L->kw == 1 && L->sh == 1 && L->sw == 1 && L->pad_t == 0 && L->pad_b == 0 &&
           L->pad_l == 0 && L->pad_r == 0 && L->in_h == L->out_h && L->in_w == L->out_w;
}

void reds_conv2d_f32(const reds_layer_t *L, const reds_weights_t *w, uint32_t cin, uint32_t cout,
                     const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, out_hw = (uint32_t)L->out_h * L->out_w;
    const uint32_t taps = (uint32_t)L->kh * L->kw;
    reds_seg_t segs[4][REDS_MAX_SUBMODELS];
    float wt[4 * CONV4_TAPS];
    uint32_t o, p, i, t, j;
    unsigned s, n, r;
    (void)cin; /* the segments cover exactly the active submodel's cin inputs */
    if (is_pointwise(L)) {
        for (o = 0; o < cout; o += r) {
            float b[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            r = row_block(w, o, cout, segs, &n);
            if (L->bias)
                for (s = 0; s < r; ++s)
                    b[s] = L->bias[o + s];
            if (r == 4)
                pointwise4((const reds_seg_t(*)[REDS_MAX_SUBMODELS])segs, n, b, out_hw, x, y + o * out_hw);
            else
                pointwise1(segs[0], n, b[0], out_hw, x, y + o * out_hw);
        }
        return;
    }
    /* Blocks of 4 output channels when their kernels fit the interleave buffer, else one
     * channel at a time (the reference path). Both start y at the bias and add one input
     * channel's window sum at a time. */
    for (o = 0; o < cout; o += r) {
        r = taps <= CONV4_TAPS ? row_block(w, o, cout, segs, &n) : 1;
        if (r == 1 && taps > CONV4_TAPS)
            n = reds_weight_row(w, o, segs[0]);
        if (r == 1 && taps <= CONV4_TAPS && cout - o >= 2 && cout - o < 4) {
            /* the last 2 or 3 channels: a 4-block with zero weights in the missing rows
             * still costs less per MAC than one channel at a time */
            r = cout - o;
            for (j = 1; j < r; ++j) {
                const unsigned nj = reds_weight_row(w, o + j, segs[j]);
                if (!same_runs(segs[0], n, segs[j], nj))
                    r = 1;
            }
        }
        for (j = 0; j < r; ++j) {
            float *yo = y + (o + j) * out_hw;
            const float b = L->bias ? L->bias[o + j] : 0.0f;
            for (p = 0; p < out_hw; ++p)
                yo[p] = b;
        }
        for (s = 0; s < n; ++s) {
            for (i = segs[0][s].lo; i < segs[0][s].hi; ++i) {
                const uint32_t off = (i - segs[0][s].lo) * w->elem;
                if (r > 1) {
                    for (t = 0; t < taps; ++t)
                        for (j = 0; j < 4; ++j)
                            wt[4 * t + j] = j < r ? segs[j][s].w[off + t] : 0.0f;
                    conv_channel4(L, wt, x + i * in_hw, y + o * out_hw, out_hw, r);
                } else {
                    conv_channel(L, segs[0][s].w + off, x + i * in_hw, y + o * out_hw);
                }
            }
        }
    }
}

void reds_depthwise_conv2d_f32(const reds_layer_t *L, uint32_t c, const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, out_hw = (uint32_t)L->out_h * L->out_w;
    const uint32_t ksize = (uint32_t)L->kh * L->kw;
    const int fast = L->kh == 3 && L->kw == 3 && L->sh == 1 && L->sw == 1 && L->pad_t == 1 && L->pad_b == 1 &&
                     L->pad_l == 1 && L->pad_r == 1 && L->in_h == L->out_h && L->in_w == L->out_w;
    uint32_t ch, p;
    for (ch = 0; ch < c; ++ch) {
        float *yc = y + ch * out_hw;
        const float b = L->bias ? L->bias[ch] : 0.0f;
        if (fast) {
            dw3x3_s1_channel(L->weight + ch * ksize, L->in_h, L->in_w, x + ch * in_hw, b, yc);
            continue;
        }
        for (p = 0; p < out_hw; ++p)
            yc[p] = b;
        conv_channel(L, L->weight + ch * ksize, x + ch * in_hw, yc);
    }
}

/* ---- dense -------------------------------------------------------------------------- */

/* 4 rows of a dense layer that share their segments: each input value is loaded once for
 * 4 MACs, and the loop is unrolled by 4 (one accumulator per row, summed in input order
 * as in the one-row path, so the blocking does not change the result). */
static void dense4(const reds_seg_t segs[4][REDS_MAX_SUBMODELS], unsigned n, uint32_t e, const float *x,
                   float acc[4])
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    unsigned s;
    uint32_t t;
    for (s = 0; s < n; ++s) {
        const float *w0 = segs[0][s].w, *w1 = segs[1][s].w, *w2 = segs[2][s].w, *w3 = segs[3][s].w;
        const float *xs = x + segs[0][s].lo * e;
        const uint32_t len = (segs[0][s].hi - segs[0][s].lo) * e;
        for (t = 0; t + 4 <= len; t += 4) {
            float v;
            v = xs[t];
            a0 += w0[t] * v; a1 += w1[t] * v; a2 += w2[t] * v; a3 += w3[t] * v;
            v = xs[t + 1];
            a0 += w0[t + 1] * v; a1 += w1[t + 1] * v; a2 += w2[t + 1] * v; a3 += w3[t + 1] * v;
            v = xs[t + 2];
            a0 += w0[t + 2] * v; a1 += w1[t + 2] * v; a2 += w2[t + 2] * v; a3 += w3[t + 2] * v;
            v = xs[t + 3];
            a0 += w0[t + 3] * v; a1 += w1[t + 3] * v; a2 += w2[t + 3] * v; a3 += w3[t + 3] * v;
        }
        for (; t < len; ++t) {
            const float v = xs[t];
            a0 += w0[t] * v; a1 += w1[t] * v; a2 += w2[t] * v; a3 += w3[t] * v;
        }
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}

/* One row of a dense layer (the general path). */
static float dense1(const reds_seg_t *segs, unsigned n, uint32_t e, const float *x)
{
    float acc = 0.0f;
    unsigned s;
    uint32_t t;
    for (s = 0; s < n; ++s) {
        const float *ws = segs[s].w;
        const float *xs = x + segs[s].lo * e;
        const uint32_t len = (segs[s].hi - segs[s].lo) * e;
        for (t = 0; t < len; ++t)
            acc += ws[t] * xs[t];
    }
    return acc;
}

void reds_dense_f32(const reds_layer_t *L, const reds_weights_t *w, uint32_t cin, uint32_t cout,
                    const float *x, float *y)
{
    reds_seg_t segs[4][REDS_MAX_SUBMODELS];
    float acc[4];
    uint32_t o;
    unsigned n, r, j;
    (void)cin;
    for (o = 0; o < cout; o += r) {
        r = row_block(w, o, cout, segs, &n);
        if (r == 4)
            dense4((const reds_seg_t(*)[REDS_MAX_SUBMODELS])segs, n, w->elem, x, acc);
        else
            acc[0] = dense1(segs[0], n, w->elem, x);
        for (j = 0; j < r; ++j)
            y[o + j] = acc[j] + (L->bias ? L->bias[o + j] : 0.0f);
    }
}

/* The element-wise kernels run once per activation, not per MAC, yet at DS-CNN sizes they
 * cost as much as a tenth of the MACs: their loops are unrolled by 4 (fewer loop
 * instructions per element). */
void reds_scale_bias_f32(const float *scale, const float *bias, uint32_t c, uint32_t hw, float *x)
{
    uint32_t ch, p;
    for (ch = 0; ch < c; ++ch) {
        const float a = scale[ch], b = bias[ch];
        float *xc = x + ch * hw;
        for (p = 0; p + 4 <= hw; p += 4) {
            const float x0 = xc[p], x1 = xc[p + 1], x2 = xc[p + 2], x3 = xc[p + 3];
            xc[p] = x0 * a + b;
            xc[p + 1] = x1 * a + b;
            xc[p + 2] = x2 * a + b;
            xc[p + 3] = x3 * a + b;
        }
        for (; p < hw; ++p)
            xc[p] = xc[p] * a + b;
    }
}

/* max(x, 0) on the float's bits: a negative float (sign bit set) becomes +0.0f, anything
 * else is kept. One integer instruction per value instead of a float compare, a flags
 * transfer and a conditional move (memcpy is the C99 way to reinterpret the bits; the
 * compiler turns it into plain loads and stores). */
void reds_relu_f32(float *x, uint32_t n)
{
    uint32_t i, u0, u1, u2, u3;
    for (i = 0; i + 4 <= n; i += 4) {
        memcpy(&u0, x + i, 4);
        memcpy(&u1, x + i + 1, 4);
        memcpy(&u2, x + i + 2, 4);
        memcpy(&u3, x + i + 3, 4);
        /* clear every bit where the sign bit is set: an arithmetic shift of the sign
         * (what every C compiler for a two's complement target does; ARM: one bic) */
        u0 &= ~(uint32_t)((int32_t)u0 >> 31);
        u1 &= ~(uint32_t)((int32_t)u1 >> 31);
        u2 &= ~(uint32_t)((int32_t)u2 >> 31);
        u3 &= ~(uint32_t)((int32_t)u3 >> 31);
        memcpy(x + i, &u0, 4);
        memcpy(x + i + 1, &u1, 4);
        memcpy(x + i + 2, &u2, 4);
        memcpy(x + i + 3, &u3, 4);
    }
    for (; i < n; ++i)
        if (x[i] < 0.0f)
            x[i] = 0.0f;
}

void reds_leaky_relu_f32(float *x, uint32_t n, float slope)
{
    uint32_t i;
    for (i = 0; i < n; ++i)
        if (x[i] < 0.0f)
            x[i] *= slope;
}

void reds_avg_pool_f32(const reds_layer_t *L, uint32_t c, const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w;
    const float area = (float)((uint32_t)L->kh * L->kw);
    uint32_t ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ++ch) {
        const float *xc = x + ch * in_hw;
        for (oy = 0; oy < L->out_h; ++oy) {
            for (ox = 0; ox < L->out_w; ++ox) {
                float acc = 0.0f;
                for (ky = 0; ky < L->kh; ++ky)
                    for (kx = 0; kx < L->kw; ++kx)
                        acc += xc[(oy * L->sh + ky) * L->in_w + ox * L->sw + kx];
                *y++ = acc / area;
            }
        }
    }
}

void reds_max_pool_f32(const reds_layer_t *L, uint32_t c, const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w;
    uint32_t ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ++ch) {
        const float *xc = x + ch * in_hw;
        for (oy = 0; oy < L->out_h; ++oy) {
            for (ox = 0; ox < L->out_w; ++ox) {
                float best = xc[oy * L->sh * L->in_w + ox * L->sw];
                for (ky = 0; ky < L->kh; ++ky)
                    for (kx = 0; kx < L->kw; ++kx) {
                        const float v = xc[(oy * L->sh + ky) * L->in_w + ox * L->sw + kx];
                        if (v > best)
                            best = v;
                    }
                *y++ = best;
            }
        }
    }
}
