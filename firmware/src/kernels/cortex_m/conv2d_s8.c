/*
 * conv2d, int8, optimized for a Cortex-M4 (ACLE DSP instructions where __ARM_FEATURE_DSP,
 * the same arithmetic in plain C99 elsewhere). Pointwise convs (1x1, stride 1, no padding)
 * run 2 pixels x 2 output channels at a time: the 2 pixels' inputs (x - zx) are widened
 * once to int16 in a small buffer, each quad of channels stored (x0, x2, x1, x3), so one
 * word of it is the pair that SXTB16 makes of a weight word (w0, w2) or (w1, w3): per 4
 * inputs, 2 weight words, 4 SXTB16, 4 buffer words and 8 SMLADs make 16 MACs. A wider
 * input than the buffer runs 4 channels per pixel, packing (x - zx) pairs as it goes.
 * Every other conv (the first conv) reads a copy of its input padded with zx, every
 * window without bounds checks (window_s8.h); an input too large for the copy runs the
 * reference's loop. Integer sums are exact in any order, so every path gives the
 * reference's bits.
 * Reference: kernels/reference/conv2d_s8.c.
 */
#include <string.h>

#include "reds_s8.h"
#include "rows.h"
#include "window_s8.h"

/* ---- the DSP instructions, or C with the same results ------------------------------ */
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>

static inline int32_t sxtb16(int32_t w) { return __sxtb16(w); }
static inline int32_t smlad(int32_t a, int32_t b, int32_t acc) { return __smlad(a, b, acc); }
#else
/* bytes 0 and 2 of w, sign-extended to the two halfwords */
static inline int32_t sxtb16(int32_t w)
{
    const uint32_t u = (uint32_t)w;
    return (int32_t)(((uint32_t)(int32_t)(int8_t)(u & 0xFFu) & 0xFFFFu) |
                     ((uint32_t)(int32_t)(int8_t)((u >> 16) & 0xFFu) << 16));
}
/* acc + lo(a) lo(b) + hi(a) hi(b), the halfwords signed */
static inline int32_t smlad(int32_t a, int32_t b, int32_t acc)
{
    const uint32_t ua = (uint32_t)a, ub = (uint32_t)b;
    return acc + (int32_t)(int16_t)(ua & 0xFFFFu) * (int16_t)(ub & 0xFFFFu) +
           (int32_t)(int16_t)(ua >> 16) * (int16_t)(ub >> 16);
}
#endif

static inline int32_t ror8(int32_t w)
{
    const uint32_t u = (uint32_t)w;
    return (int32_t)((u >> 8) | (u << 24));
}

static inline int32_t load4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v); /* one LDR (the M4 reads unaligned words) */
    return v;
}

/* ---- rows.h's row blocking, over int8 weights --------------------------------------- */
ROW_CHUNKS(row_chunks_s8, chunk_s8_t, int8_t, reds_weights_s8_t)

/* ---- the kernel ---------------------------------------------------------------------- */

/* (lo, hi) as the two halfwords of a word */
static inline int32_t pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}

/* A pointwise conv's 4 rows o .. o + 3 (nr of them real) over the hw pixels of x. */
static void pointwise4(const chunk_s8_t *c, unsigned n, uint32_t hw, const int8_t *x, const reds_requant_t *q,
                       uint32_t o, unsigned nr, int8_t *y)
{
    const int32_t zx = q->zx;
    uint32_t p, i;
    unsigned s, r;
    for (p = 0; p < hw; ++p) {
        const int8_t *xp = x + p;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (s = 0; s < n; ++s) {
            const uint32_t lo = c[s].lo, hi = c[s].hi;
            const int8_t *w0 = c[s].w[0] - lo, *w1 = c[s].w[1] - lo, *w2 = c[s].w[2] - lo, *w3 = c[s].w[3] - lo;
            for (i = lo; i + 4 <= hi; i += 4) {
                const int8_t *xi = xp + i * hw;
                const int32_t x0 = (int32_t)xi[0] - zx, x1 = (int32_t)xi[hw] - zx;
                const int32_t x2 = (int32_t)xi[2 * hw] - zx, x3 = (int32_t)xi[3 * hw] - zx;
                const int32_t x02 = pack16(x0, x2), x13 = pack16(x1, x3);
                int32_t v;
                v = load4(w0 + i);
                a0 = smlad(sxtb16(ror8(v)), x13, smlad(sxtb16(v), x02, a0));
                v = load4(w1 + i);
                a1 = smlad(sxtb16(ror8(v)), x13, smlad(sxtb16(v), x02, a1));
                v = load4(w2 + i);
                a2 = smlad(sxtb16(ror8(v)), x13, smlad(sxtb16(v), x02, a2));
                v = load4(w3 + i);
                a3 = smlad(sxtb16(ror8(v)), x13, smlad(sxtb16(v), x02, a3));
            }
            for (; i < hi; ++i) {
                const int32_t v = (int32_t)xp[i * hw] - zx;
                a0 += v * w0[i];
                a1 += v * w1[i];
                a2 += v * w2[i];
                a3 += v * w3[i];
            }
        }
        for (r = 0; r < nr; ++r) {
            const int32_t a = r == 0 ? a0 : (r == 1 ? a1 : (r == 2 ? a2 : a3));
            y[(o + r) * hw + p] = reds_store_s8(q, o + r, a);
        }
    }
}

/* The 2-pixel path's buffer: 2 pixels x this many input channels (int16), on the stack. */
#define PW_MAX_CIN 512u

/* Where input channel i sits in the buffer: each quad 4q .. 4q + 3 as (x0, x2, x1, x3). */
static inline uint32_t quad_pos(uint32_t i) { return (i & ~3u) | ((i & 1u) << 1) | ((i & 2u) >> 1); }

static inline int32_t load2x16(const int16_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v); /* one LDR: two int16 */
    return v;
}

/* Rows o, o + 1 (nr of them real) of a pointwise conv at pixels p and p + 1, whose inputs
 * are in b0 and b1 (quad_pos order). */
static void pointwise2x2(const chunk_s8_t *c, unsigned n, const int16_t *b0, const int16_t *b1, const reds_requant_t *q,
                         uint32_t o, unsigned nr, uint32_t p, unsigned np, uint32_t hw, int8_t *y)
{
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0; /* a<row><pixel> */
    unsigned s;
    for (s = 0; s < n; ++s) {
        const uint32_t lo = c[s].lo, hi = c[s].hi;
        const uint32_t q0 = (lo + 3u) & ~3u, q1 = hi & ~3u; /* the whole quads inside lo .. hi */
        const int8_t *w0 = c[s].w[0] - lo, *w1 = c[s].w[1] - lo;
        uint32_t i = lo, head = q0 < q1 ? q0 : hi;
        for (;;) {
            for (; i < head; ++i) { /* a segment's first and last inputs, one at a time */
                const uint32_t d = quad_pos(i);
                const int32_t x0 = b0[d], x1 = b1[d], v0 = w0[i], v1 = w1[i];
                a00 += x0 * v0;
                a01 += x1 * v0;
                a10 += x0 * v1;
                a11 += x1 * v1;
            }
            if (i >= hi)
                break;
            for (; i < q1; i += 4) {
                const int32_t xa0 = load2x16(b0 + i), xb0 = load2x16(b0 + i + 2);
                const int32_t xa1 = load2x16(b1 + i), xb1 = load2x16(b1 + i + 2);
                int32_t v = load4(w0 + i), va = sxtb16(v), vb = sxtb16(ror8(v));
                a00 = smlad(vb, xb0, smlad(va, xa0, a00));
                a01 = smlad(vb, xb1, smlad(va, xa1, a01));
                v = load4(w1 + i);
                va = sxtb16(v);
                vb = sxtb16(ror8(v));
                a10 = smlad(vb, xb0, smlad(va, xa0, a10));
                a11 = smlad(vb, xb1, smlad(va, xa1, a11));
            }
            head = hi;
        }
    }
    y[o * hw + p] = reds_store_s8(q, o, a00);
    if (np > 1)
        y[o * hw + p + 1] = reds_store_s8(q, o, a01);
    if (nr > 1) {
        y[(o + 1) * hw + p] = reds_store_s8(q, o + 1, a10);
        if (np > 1)
            y[(o + 1) * hw + p + 1] = reds_store_s8(q, o + 1, a11);
    }
}

/* A pointwise conv of up to PW_MAX_CIN inputs, 2 pixels at a time. */
static void pointwise_buffered(const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin, uint32_t cout,
                               uint32_t hw, const int8_t *x, int8_t *y)
{
    int16_t b[2][PW_MAX_CIN + 4u];
    chunk_s8_t c[REDS_MAX_CHUNKS];
    const int32_t zx = q->zx;
    uint32_t p, i, o, g;
    unsigned n, r, np;
    for (p = 0; p < hw; p += np) {
        np = hw - p < 2 ? 1u : 2u; /* a last single pixel fills both halves */
        for (i = 0; i < cin; ++i) {
            const uint32_t d = quad_pos(i);
            b[0][d] = (int16_t)((int32_t)x[i * hw + p] - zx);
            b[1][d] = (int16_t)((int32_t)x[i * hw + p + np - 1u] - zx);
        }
        for (o = 0, g = 0; o < cout; o += r) {
            r = cout - o < 2 ? 1u : 2u; /* a last single row repeats row o */
            n = row_chunks_s8(w, &g, o, r, c);
            pointwise2x2(c, n, b[0], b[1], q, o, r, p, np, hw, y);
        }
    }
}

/* The general conv (the first conv, any kernel): the input copied with its padding (zx)
 * once, then per output channel the store step's values in registers and every window
 * summed without bounds checks (window_s8.h); an input too large for the copy runs the
 * reference's loop. */
static void conv_general(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin,
                         const int8_t *x, int8_t *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, out_hw = (uint32_t)L->out_h * L->out_w;
    const uint32_t pw = padded_w(L), psize = padded_size(L), fits = cin * psize + PAD_ROOM <= PAD_MAX_BYTES;
    const int32_t zx = q->zx;
    int8_t buf[PAD_MAX_BYTES];
    uint32_t g, o, i;
    int32_t oy, ox;
    unsigned s;
    for (i = 0; fits && i < cin; ++i)
        pad_channel(L, x + i * in_hw, zx, buf + i * psize);
    if (fits && cin == 1) { /* the first conv of a one-channel input: a channel at a time */
        for (g = 0; g < w->ngroups; ++g) {
            const reds_group_t *G = &w->groups[g];
            const reds_seg_t *S = &w->segs[G->first]; /* one input: one segment */
            for (o = G->o0; o < G->o1; ++o) {
                const int8_t *wk = w->base + S->off + o * S->step;
                chan_s8_t k;
                chan_s8(q, o, &k);
                channel_s8(L, wk, buf, pw, zx * weight_sum_s8(wk, w->elem), &k, y + o * out_hw);
            }
        }
        return;
    }
    for (g = 0; g < w->ngroups; ++g) {
        const reds_group_t *G = &w->groups[g];
        for (o = G->o0; o < G->o1; ++o) {
            int8_t *yo = y + o * out_hw;
            int32_t zw = 0; /* zx times the row's weight sum */
            chan_s8_t k;
            chan_s8(q, o, &k);
            for (s = 0; s < G->n; ++s) {
                const reds_seg_t *S = &w->segs[G->first + s];
                zw += weight_sum_s8(w->base + S->off + o * S->step, (S->hi - S->lo) * w->elem);
            }
            zw *= zx;
            for (oy = 0; oy < L->out_h; ++oy) {
                for (ox = 0; ox < L->out_w; ++ox) {
                    const uint32_t at = (uint32_t)oy * L->sh * pw + (uint32_t)ox * L->sw;
                    int32_t acc = 0;
                    for (s = 0; s < G->n; ++s) {
                        const reds_seg_t *S = &w->segs[G->first + s];
                        const int8_t *ws = w->base + S->off + o * S->step;
                        if (fits)
                            for (i = S->lo; i < S->hi; ++i, ws += w->elem)
                                acc += window_at_s8(ws, buf + i * psize + at, pw, L->kh, L->kw);
                        else
                            for (i = S->lo; i < S->hi; ++i, ws += w->elem)
                                acc += window_dot_s8(L, ws, x + i * in_hw, zx, oy, ox);
                    }
                    *yo++ = store_chan_s8(&k, fits ? acc - zw : acc);
                }
            }
        }
    }
}

void reds_conv2d_s8(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin,
                    uint32_t cout, const int8_t *x, int8_t *y)
{
    if (L->kh == 1 && L->kw == 1 && L->sh == 1 && L->sw == 1 && L->pad_t == 0 && L->pad_b == 0 && L->pad_l == 0 &&
        L->pad_r == 0) {
        const uint32_t hw = (uint32_t)L->in_h * L->in_w;
        chunk_s8_t c[REDS_MAX_CHUNKS];
        uint32_t o, g = 0;
        unsigned n, r;
        if (cin <= PW_MAX_CIN) {
            pointwise_buffered(w, q, cin, cout, hw, x, y);
            return;
        }
        for (o = 0; o < cout; o += r) {
            r = cout - o < 4 ? cout - o : 4; /* a last block of 1 to 3 rows repeats row o */
            n = row_chunks_s8(w, &g, o, r, c);
            pointwise4(c, n, hw, x, q, o, r, y);
        }
        return;
    }
    conv_general(L, w, q, cin, x, y);
}
