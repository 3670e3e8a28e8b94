/*
 * conv2d, int8, optimized for a Cortex-M4 (ACLE DSP instructions where __ARM_FEATURE_DSP,
 * the same arithmetic in plain C99 elsewhere). Pointwise convs (1x1, stride 1, no padding)
 * run 2 pixels x 2 output channels at a time: the inputs (x - zx) of up to 8 pixel pairs
 * are widened once to int16 in a small buffer, each quad of channels stored (x0, x2, x1,
 * x3) for one pixel then the other, so one word of it is the pair that SXTB16 makes of a
 * weight word (w0, w2) or (w1, w3): per 4 inputs, 2 weight words, 4 SXTB16, 4 buffer
 * words and 8 SMLADs make 16 MACs; each pair of rows finds its weight chunks and store
 * steps once per buffer. A wider
 * input than the buffer runs 4 channels per pixel, packing (x - zx) pairs as it goes.
 * Every other conv (the first conv) reads a copy of its input padded with zx, every
 * window without bounds checks (window_s8.h); an input too large for the copy runs the
 * reference's loop. Integer sums are exact in any order, so every path gives the
 * reference's bits.
 * Reference: kernels/reference/conv2d_s8.c.
 */
#include <string.h>

#include "dsp_s8.h"
#include "reds_s8.h"
#include "rows.h"
#include "window_s8.h"

/* ---- rows.h's row blocking, over int8 weights --------------------------------------- */
ROW_CHUNKS(row_chunks_s8, chunk_s8_t, int8_t, reds_weights_s8_t)

/* ---- the kernel ---------------------------------------------------------------------- */

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
                a0 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a0));
                v = load4(w1 + i);
                a1 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a1));
                v = load4(w2 + i);
                a2 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a2));
                v = load4(w3 + i);
                a3 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a3));
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

/* Where input channel i of the 2-pixel buffer's pixel 0 sits (pixel 1: 4 further on): per
 * quad 4q .. 4q + 3, pixel 0's (x0, x2, x1, x3), then pixel 1's; 8 int16 per quad. */
static inline uint32_t pw_pos(uint32_t i)
{
    return (i & ~3u) * 2u | ((i & 1u) << 1) | ((i & 2u) >> 1);
}

/* One quad of inputs at xq (pw_pos order) for rows p0, p1 and both pixels: 2 weight words,
 * 4 SXTB16, 4 buffer words, 8 SMLADs; a macro over pointwise2x2's accumulators. */
#define QUAD2X2(xq, p0, p1)                                                                                     \
    do {                                                                                                        \
        const int32_t v0_ = load4(p0), v1_ = load4(p1);                                                         \
        const int32_t w0a_ = sxtb16(v0_), w0b_ = sxtb16_ror8(v0_), w1a_ = sxtb16(v1_), w1b_ = sxtb16_ror8(v1_); \
        int32_t xa_ = load4(xq), xb_ = load4((xq) + 2);                                                         \
        a00 = smlad(w0b_, xb_, smlad(w0a_, xa_, a00));                                                          \
        a10 = smlad(w1b_, xb_, smlad(w1a_, xa_, a10));                                                          \
        xa_ = load4((xq) + 4);                                                                                  \
        xb_ = load4((xq) + 6);                                                                                  \
        a01 = smlad(w0b_, xb_, smlad(w0a_, xa_, a01));                                                          \
        a11 = smlad(w1b_, xb_, smlad(w1a_, xa_, a11));                                                          \
    } while (0)

/* Rows o, o + 1 (nr of them real; their store steps k0, k1; their weights w0, w1, cin
 * each, contiguous) of a pointwise conv at pixels p and p + 1, whose inputs are in b
 * (pw_pos order). */
static void pointwise2x2(const int8_t *w0, const int8_t *w1, uint32_t cin, const int16_t *b, const chan_s8_t *k0,
                         const chan_s8_t *k1, uint32_t o, unsigned nr, uint32_t p, unsigned np, uint32_t hw,
                         int8_t *y)
{
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0; /* a<row><pixel> */
    const int16_t *xq = b, *const xend = b + 2u * (cin & ~3u);
    const int8_t *p0 = w0, *p1 = w1;
    uint32_t i;
    for (; xq < xend; xq += 8, p0 += 4, p1 += 4) /* unrolled further, GCC spills the sums */
        QUAD2X2(xq, p0, p1);
    for (i = cin & ~3u; i < cin; ++i) { /* the last 1 to 3 inputs */
        const uint32_t d = pw_pos(i);
        const int32_t x0 = b[d], x1 = b[d + 4u], v0 = w0[i], v1 = w1[i];
        a00 += x0 * v0;
        a01 += x1 * v0;
        a10 += x0 * v1;
        a11 += x1 * v1;
    }
    y[o * hw + p] = store_chan_s8(k0, a00);
    if (np > 1)
        y[o * hw + p + 1] = store_chan_s8(k0, a01);
    if (nr > 1) {
        y[(o + 1) * hw + p] = store_chan_s8(k1, a10);
        if (np > 1)
            y[(o + 1) * hw + p + 1] = store_chan_s8(k1, a11);
    }
}

/* A pointwise conv of up to PW_MAX_CIN inputs, 2 pixels at a time: as many pixel pairs as
 * the buffer holds (at most PW_MAX_PAIRS) are widened at once, and each pair of rows finds
 * its store steps, and copies its weights out of their segments into one contiguous row
 * each (whole quads, whatever the submodels' widths), once for all of them. */
#define PW_MAX_PAIRS 8u
static void pointwise_buffered(const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin, uint32_t cout,
                               uint32_t hw, const int8_t *x, int8_t *y)
{
    union { /* word-aligned: the quads are read a word at a time */
        int32_t align;
        int16_t h[2u * (PW_MAX_CIN + 4u)];
    } buf;
    int8_t rows[2][PW_MAX_CIN];
    chunk_s8_t c[REDS_MAX_CHUNKS];
    chan_s8_t k0, k1;
    const int32_t zx = q->zx;
    const uint32_t per = 2u * ((cin + 3u) & ~3u); /* int16 per pixel pair */
    const uint32_t room = (uint32_t)(sizeof buf.h / sizeof buf.h[0]) / per;
    const uint32_t pairs = room < PW_MAX_PAIRS ? room : PW_MAX_PAIRS;
    uint32_t p, i, o, g, j, nb;
    unsigned n, r, s;
    for (p = 0; p < hw; p += 2u * nb) {
        nb = (hw - p + 1u) / 2u < pairs ? (hw - p + 1u) / 2u : pairs;
        for (j = 0; j < nb; ++j) {
            const uint32_t p0 = p + 2u * j, p1 = p0 + 1u < hw ? p0 + 1u : p0; /* a last single pixel: both */
            int16_t *b = buf.h + j * per;
            for (i = 0; i < cin; ++i) {
                const uint32_t d = pw_pos(i);
                b[d] = (int16_t)((int32_t)x[i * hw + p0] - zx);
                b[d + 4u] = (int16_t)((int32_t)x[i * hw + p1] - zx);
            }
        }
        for (o = 0, g = 0; o < cout; o += r) {
            r = cout - o < 2 ? 1u : 2u; /* a last single row repeats row o */
            n = row_chunks_s8(w, &g, o, r, c);
            for (s = 0; s < n; ++s) { /* the chunks cover inputs 0 .. cin - 1 in order */
                memcpy(rows[0] + c[s].lo, c[s].w[0], c[s].hi - c[s].lo);
                memcpy(rows[1] + c[s].lo, c[s].w[1], c[s].hi - c[s].lo);
            }
            chan_s8(q, o, &k0);
            chan_s8(q, o + r - 1u, &k1);
            for (j = 0; j < nb; ++j) {
                const uint32_t p0 = p + 2u * j;
                pointwise2x2(rows[0], rows[1], cin, buf.h + j * per, &k0, &k1, o, r, p0, hw - p0 < 2 ? 1u : 2u, hw, y);
            }
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
