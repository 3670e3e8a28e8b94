/*
 * conv2d, optimized for a Cortex-M4F (plain C99; the register counts are the M4's 32
 * single-precision registers): pointwise convs as 4 channels x 4 pixels in registers,
 * other kernels as 4 interleaved output channels, two pixels or rows per loaded weight.
 * Every path ends in the store step (store.h): the bias, or the batch norm fused in, and
 * the activation, applied in registers.
 * Reference: kernels/reference/conv2d_f32.c.
 */
#include "reds.h"
#include "rows.h"
#include "store.h"
#include "window.h"

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

/* Pointwise conv (1x1, stride 1, no padding) of 4 output channels (as chunks, rows.h):
 * y[r][p] = post_r(sum_i w_r[i] * x[i][p]). A block of 4 channels x
 * 4 pixels lives in 16 registers while the loop walks the input channels, so each loaded
 * input value feeds 4 MACs and each loaded weight 4 (~1.5 instructions per MAC instead
 * of ~3 for one channel at a time). Sums run over the inputs in order, as in the
 * one-channel path below. */
#define PW_STORE(Y, A, J) Y = post_act((A) * q->s[J] + q->t[J], act, q->slope)
STORE_INLINE void pointwise4_act(const chunk4_t *c, unsigned n, const post4_t *q, uint32_t hw, const float *x,
                                 float *y, const unsigned act)
{
    uint32_t p, i;
    unsigned s;
    float *y0 = y, *y1 = y + hw, *y2 = y + 2 * hw, *y3 = y + 3 * hw;
    for (p = 0; p + 4 <= hw; p += 4) {
        float a00 = 0.0f, a01 = 0.0f, a02 = 0.0f, a03 = 0.0f, a10 = 0.0f, a11 = 0.0f, a12 = 0.0f, a13 = 0.0f;
        float a20 = 0.0f, a21 = 0.0f, a22 = 0.0f, a23 = 0.0f, a30 = 0.0f, a31 = 0.0f, a32 = 0.0f, a33 = 0.0f;
        for (s = 0; s < n; ++s) {
            const float *w0 = c[s].w[0], *w1 = c[s].w[1], *w2 = c[s].w[2], *w3 = c[s].w[3];
            const float *xp = x + c[s].lo * hw + p;
            const uint32_t len = c[s].hi - c[s].lo;
            for (i = 0; i < len; ++i, xp += hw) {
                const float x0 = xp[0], x1 = xp[1], x2 = xp[2], x3 = xp[3];
                const float v0 = w0[i], v1 = w1[i], v2 = w2[i], v3 = w3[i];
                a00 += v0 * x0; a01 += v0 * x1; a02 += v0 * x2; a03 += v0 * x3;
                a10 += v1 * x0; a11 += v1 * x1; a12 += v1 * x2; a13 += v1 * x3;
                a20 += v2 * x0; a21 += v2 * x1; a22 += v2 * x2; a23 += v2 * x3;
                a30 += v3 * x0; a31 += v3 * x1; a32 += v3 * x2; a33 += v3 * x3;
            }
        }
        PW_STORE(y0[p], a00, 0); PW_STORE(y0[p + 1], a01, 0); PW_STORE(y0[p + 2], a02, 0); PW_STORE(y0[p + 3], a03, 0);
        PW_STORE(y1[p], a10, 1); PW_STORE(y1[p + 1], a11, 1); PW_STORE(y1[p + 2], a12, 1); PW_STORE(y1[p + 3], a13, 1);
        PW_STORE(y2[p], a20, 2); PW_STORE(y2[p + 1], a21, 2); PW_STORE(y2[p + 2], a22, 2); PW_STORE(y2[p + 3], a23, 2);
        PW_STORE(y3[p], a30, 3); PW_STORE(y3[p + 1], a31, 3); PW_STORE(y3[p + 2], a32, 3); PW_STORE(y3[p + 3], a33, 3);
    }
    for (; p < hw; ++p) { /* the last hw % 4 pixels */
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (s = 0; s < n; ++s) {
            const float *w0 = c[s].w[0], *w1 = c[s].w[1], *w2 = c[s].w[2], *w3 = c[s].w[3];
            const float *xp = x + c[s].lo * hw + p;
            const uint32_t len = c[s].hi - c[s].lo;
            for (i = 0; i < len; ++i, xp += hw) {
                const float xv = *xp;
                a0 += w0[i] * xv; a1 += w1[i] * xv; a2 += w2[i] * xv; a3 += w3[i] * xv;
            }
        }
        PW_STORE(y0[p], a0, 0); PW_STORE(y1[p], a1, 1); PW_STORE(y2[p], a2, 2); PW_STORE(y3[p], a3, 3);
    }
}

static void pointwise4(const chunk4_t *c, unsigned n, const post4_t *q, uint32_t hw, const float *x, float *y)
{
    STORE_BY_ACT(pointwise4_act, c, n, q, hw, x, y);
}

/* Pointwise conv of one output channel (the last cout % 4): 4 pixels at a time. */
static void pointwise1(const chunk4_t *c, unsigned n, const post1_t *q, uint32_t hw, const float *x, float *y)
{
    const float ps = q->s, pt = q->t;
    uint32_t p, i;
    unsigned s;
    for (p = 0; p + 4 <= hw; p += 4) {
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (s = 0; s < n; ++s) {
            const float *w0 = c[s].w[0], *xp = x + c[s].lo * hw + p;
            const uint32_t len = c[s].hi - c[s].lo;
            for (i = 0; i < len; ++i, xp += hw) {
                const float v = w0[i];
                a0 += v * xp[0]; a1 += v * xp[1]; a2 += v * xp[2]; a3 += v * xp[3];
            }
        }
        y[p] = post_act(a0 * ps + pt, q->act, q->slope);
        y[p + 1] = post_act(a1 * ps + pt, q->act, q->slope);
        y[p + 2] = post_act(a2 * ps + pt, q->act, q->slope);
        y[p + 3] = post_act(a3 * ps + pt, q->act, q->slope);
    }
    for (; p < hw; ++p) {
        float a = 0.0f;
        for (s = 0; s < n; ++s) {
            const float *w0 = c[s].w[0], *xp = x + c[s].lo * hw + p;
            const uint32_t len = c[s].hi - c[s].lo;
            for (i = 0; i < len; ++i, xp += hw)
                a += w0[i] * *xp;
        }
        y[p] = post_act(a * ps + pt, q->act, q->slope);
    }
}

/* The first conv (1-3 input channels: an MFCC map, a grey or RGB image), on its own path.
 * Each output row reads cin x kh input rows, copied with their padding into a buffer
 * (zero rows and columns: no tap tests bounds); a block of 4 output channels x NP (4, 2
 * or 1) pixels then sums in up to 16 registers, the kernel row unrolled (kw and the stride are
 * constants), so each loaded input value serves 4 MACs and each loaded weight NP. The
 * weights are read in place (one pointer per channel). Sums run over the inputs in
 * order, ky, kx: the same in either layout; the store step ends each. */
#define FIRST_BUF 384 /* floats of padded rows: cin * kh * (pad_l + in_w + pad_r) */

/* One tap: input column K of the kernel row at XR, weight WK of the block's 4 channels. */
#define FIRST_TAP(XR, K, WK, SW, NP)                                                                               \
    {                                                                                                              \
        const float v0 = w0[WK], v1 = w1[WK], v2 = w2[WK], v3 = w3[WK];                                            \
        const float x0 = XR[K], x1 = XR[(NP > 1) * SW + K], x2 = XR[(NP > 2) * 2 * SW + K];                        \
        const float x3 = XR[(NP > 3) * 3 * SW + K];                                                                \
        a00 += v0 * x0; a10 += v1 * x0; a20 += v2 * x0; a30 += v3 * x0;                                            \
        if (NP > 1) { a01 += v0 * x1; a11 += v1 * x1; a21 += v2 * x1; a31 += v3 * x1; }                            \
        if (NP > 2) { a02 += v0 * x2; a12 += v1 * x2; a22 += v2 * x2; a32 += v3 * x2; }                            \
        if (NP > 3) { a03 += v0 * x3; a13 += v1 * x3; a23 += v2 * x3; a33 += v3 * x3; }                            \
    }

/* One kernel row (KW taps, unrolled) at XR, its weights from WO. */
#define FIRST_ROW(XR, WO, KW, SW, NP)                                                                              \
    FIRST_TAP(XR, 0, (WO), SW, NP)                                                                                 \
    if (KW > 1) FIRST_TAP(XR, 1, (WO) + 1, SW, NP)                                                                 \
    if (KW > 2) FIRST_TAP(XR, 2, (WO) + 2, SW, NP)                                                                 \
    if (KW > 3) FIRST_TAP(XR, 3, (WO) + 3, SW, NP)

#define FIRST_STORE(J, A0, A1, A2, A3, NP)                                                                         \
    if (nr > J) {                                                                                                  \
        float *yj = y + J * ystride;                                                                               \
        const float sj = q->s[J], tj = q->t[J];                                                                    \
        yj[0] = post_act(A0 * sj + tj, act, q->slope);                                                               \
        if (NP > 1) { yj[1] = post_act(A1 * sj + tj, act, q->slope); }                                               \
        if (NP > 2) { yj[2] = post_act(A2 * sj + tj, act, q->slope); }                                               \
        if (NP > 3) { yj[3] = post_act(A3 * sj + tj, act, q->slope); }                                               \
    }

/* A block of 4 channels x NP pixels; KH 3: the kernel's 3 rows unrolled too (a whole
 * input channel per iteration), KH 0: one kernel row (of kh) per iteration. */
#define FIRST_BLOCK(NAME, KH, KW, SW, NP)                                                                          \
    STORE_INLINE void NAME##_act(const chunk4_t *c, unsigned n, uint32_t kh, uint32_t wp, const float *pb,         \
                                 const post4_t *q, float *y, uint32_t ystride, unsigned nr, const unsigned act)    \
    {                                                                                                              \
        float a00 = 0.0f, a01 = 0.0f, a02 = 0.0f, a03 = 0.0f, a10 = 0.0f, a11 = 0.0f, a12 = 0.0f, a13 = 0.0f;      \
        float a20 = 0.0f, a21 = 0.0f, a22 = 0.0f, a23 = 0.0f, a30 = 0.0f, a31 = 0.0f, a32 = 0.0f, a33 = 0.0f;      \
        const uint32_t rows = KH == 3 ? 3 : 1; /* kernel rows per iteration */                                     \
        unsigned s;                                                                                                \
        for (s = 0; s < n; ++s) {                                                                                  \
            const float *w0 = c[s].w[0], *w1 = c[s].w[1], *w2 = c[s].w[2], *w3 = c[s].w[3];                        \
            const float *xr = pb + c[s].lo * kh * wp;                                                              \
            uint32_t q = (c[s].hi - c[s].lo) * (KH == 3 ? 1 : kh);                                                 \
            for (; q; --q, xr += rows * wp, w0 += rows * KW, w1 += rows * KW, w2 += rows * KW, w3 += rows * KW) {  \
                FIRST_ROW(xr, 0, KW, SW, NP)                                                                       \
                if (KH == 3) {                                                                                     \
                    const float *xs = xr + wp, *xt = xr + 2 * wp;                                                  \
                    FIRST_ROW(xs, KW, KW, SW, NP)                                                                  \
                    FIRST_ROW(xt, 2 * KW, KW, SW, NP)                                                              \
                }                                                                                                  \
            }                                                                                                      \
        }                                                                                                          \
        FIRST_STORE(0, a00, a01, a02, a03, NP)                                                                     \
        FIRST_STORE(1, a10, a11, a12, a13, NP)                                                                     \
        FIRST_STORE(2, a20, a21, a22, a23, NP)                                                                     \
        FIRST_STORE(3, a30, a31, a32, a33, NP)                                                                     \
    }                                                                                                              \
    static void NAME(const chunk4_t *c, unsigned n, uint32_t kh, uint32_t wp, const float *pb, const post4_t *q,   \
                     float *y, uint32_t ystride, unsigned nr)                                                      \
    {                                                                                                              \
        STORE_BY_ACT(NAME##_act, c, n, kh, wp, pb, q, y, ystride, nr);                                             \
    }

FIRST_BLOCK(first_4x2_px4, 0, 4, 2, 4)
FIRST_BLOCK(first_4x2_px2, 0, 4, 2, 2)
FIRST_BLOCK(first_4x2_px1, 0, 4, 2, 1)
FIRST_BLOCK(first_3x3s2_px4, 3, 3, 2, 4)
FIRST_BLOCK(first_3x3s2_px2, 3, 3, 2, 2)
FIRST_BLOCK(first_3x3s2_px1, 3, 3, 2, 1)
FIRST_BLOCK(first_3x3s1_px4, 3, 3, 1, 4)
FIRST_BLOCK(first_3x3s1_px2, 3, 3, 1, 2)
FIRST_BLOCK(first_3x3s1_px1, 3, 3, 1, 1)

typedef void (*first_block_fn)(const chunk4_t *, unsigned, uint32_t, uint32_t, const float *, const post4_t *,
                               float *, uint32_t, unsigned);

/* The first conv's path; returns 0 (nothing done) for a layer it does not take. Not
 * static, so that GCC keeps it (and its row buffer) out of reds_conv2d_f32's frame. */
int reds_conv2d_first_f32(const reds_layer_t *L, const reds_weights_t *w, const reds_post_t *p, uint32_t cin,
                          uint32_t cout, const float *x, float *y)
{
    const uint32_t ih = L->in_h, iw = L->in_w, kh = L->kh, kw = L->kw, sh = L->sh, sw = L->sw;
    const uint32_t oh = L->out_h, ow = L->out_w, pl = L->pad_l, wp = L->pad_l + L->in_w + L->pad_r;
    const uint32_t out_hw = oh * ow;
    first_block_fn f4, f2, f1;
    chunk4_t c[REDS_MAX_CHUNKS];
    float pb[FIRST_BUF];
    uint32_t oy, ox, o, i, k, j, g;
    unsigned n, nr;
    if (cin > 3 || cin * kh * wp > FIRST_BUF)
        return 0;
    if (kw == 4 && sw == 2) {
        f4 = first_4x2_px4; f2 = first_4x2_px2; f1 = first_4x2_px1;
    } else if (kh == 3 && kw == 3 && sw == 2) {
        f4 = first_3x3s2_px4; f2 = first_3x3s2_px2; f1 = first_3x3s2_px1;
    } else if (kh == 3 && kw == 3 && sw == 1) {
        f4 = first_3x3s1_px4; f2 = first_3x3s1_px2; f1 = first_3x3s1_px1;
    } else {
        return 0;
    }
    for (oy = 0; oy < oh; ++oy) {
        const int32_t iy0 = (int32_t)(oy * sh) - L->pad_t;
        for (i = 0; i < cin; ++i) /* the padded input rows iy0 .. iy0 + kh - 1 of each channel */
            for (k = 0; k < kh; ++k) {
                float *d = pb + (i * kh + k) * wp;
                const int32_t iy = iy0 + (int32_t)k;
                for (j = 0; j < wp; ++j)
                    d[j] = 0.0f;
                if (iy >= 0 && iy < (int32_t)ih)
                    for (j = 0; j < iw; ++j)
                        d[pl + j] = x[(i * ih + (uint32_t)iy) * iw + j];
            }
        for (o = 0, g = 0; o < cout; o += 4) {
            post4_t q;
            float *yo = y + o * out_hw + oy * ow;
            nr = cout - o < 4 ? cout - o : 4;
            n = row_chunks(w, &g, o, nr, c);
            post_block(p, o, nr, &q);
            for (ox = 0; ox + 4 <= ow; ox += 4)
                f4(c, n, kh, wp, pb + ox * sw, &q, yo + ox, out_hw, nr);
            if (ox + 2 <= ow) {
                f2(c, n, kh, wp, pb + ox * sw, &q, yo + ox, out_hw, nr);
                ox += 2;
            }
            if (ox < ow)
                f1(c, n, kh, wp, pb + ox * sw, &q, yo + ox, out_hw, nr);
        }
    }
    return 1;
}

/* Largest kernel (kh * kw) that the 4-channel conv path interleaves on the stack. */
#define CONV4_TAPS 64

static int is_pointwise(const reds_layer_t *L)
{
    return L->kh == 1 && L->kw == 1 && L->sh == 1 && L->sw == 1 && L->pad_t == 0 && L->pad_b == 0 &&
           L->pad_l == 0 && L->pad_r == 0 && L->in_h == L->out_h && L->in_w == L->out_w;
}

void reds_conv2d_f32(const reds_layer_t *L, const reds_weights_t *w, const reds_post_t *p, uint32_t cin,
                     uint32_t cout, const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, out_hw = (uint32_t)L->out_h * L->out_w;
    const uint32_t taps = (uint32_t)L->kh * L->kw;
    chunk4_t c[REDS_MAX_CHUNKS];
    float wt[4 * CONV4_TAPS];
    post4_t q;
    uint32_t o, px, i, t, j, g = 0;
    unsigned s, n, r;
    if (is_pointwise(L)) {
        for (o = 0; o < cout; o += r) {
            r = cout - o < 4 ? 1 : 4;
            n = row_chunks(w, &g, o, r, c);
            if (r == 4) {
                post_block(p, o, 4, &q);
                pointwise4(c, n, &q, out_hw, x, y + o * out_hw);
            } else {
                post1_t q1;
                post_channel(p, o, &q1);
                pointwise1(c, n, &q1, out_hw, x, y + o * out_hw);
            }
        }
        return;
    }
    if (reds_conv2d_first_f32(L, w, p, cin, cout, x, y))
        return;
    /* Blocks of 4 output channels when their kernels fit the interleave buffer, else one
     * channel at a time (the reference path). The last 2 or 3 channels run as a 4-block
     * with zero weights in the missing rows: that still costs less per MAC than one channel
     * at a time. Both start y at 0 and add one input channel's window sum at a time; the
     * block's store step then runs over its rows. */
    for (o = 0; o < cout; o += r) {
        r = taps > CONV4_TAPS ? 1 : cout - o < 4 ? cout - o : 4;
        n = row_chunks(w, &g, o, r, c);
        for (px = 0; px < r * out_hw; ++px)
            y[o * out_hw + px] = 0.0f;
        for (s = 0; s < n; ++s) {
            for (i = c[s].lo; i < c[s].hi; ++i) {
                const uint32_t off = (i - c[s].lo) * w->elem;
                if (r > 1) {
                    for (t = 0; t < taps; ++t)
                        for (j = 0; j < 4; ++j)
                            wt[4 * t + j] = j < r ? c[s].w[j][off + t] : 0.0f;
                    conv_channel4(L, wt, x + i * in_hw, y + o * out_hw, out_hw, r);
                } else {
                    conv_channel(L, c[s].w[0] + off, x + i * in_hw, y + o * out_hw);
                }
            }
        }
        post_block(p, o, r, &q);
        post_rows(&q, r, y + o * out_hw, out_hw, out_hw);
    }
}
