/*
 * conv2d, int8, optimized for a Cortex-M4 (ACLE DSP instructions where __ARM_FEATURE_DSP,
 * the same arithmetic in plain C99 elsewhere). Pointwise convs (1x1, stride 1, no padding)
 * run 4 output channels at a time: per pixel, 4 input channels' (x - zx) are packed once
 * as two int16 pairs, and each channel's 4 weights (one word, two SXTB16) meet them in two
 * SMLADs. Every other conv runs the reference's loop. Integer sums are exact in any
 * order, so every path gives the reference's bits.
 * Reference: kernels/reference/conv2d_s8.c.
 */
#include <string.h>

#include "reds_s8.h"
#include "rows.h"
/* The reference's window loop, kernels/reference/ref_window_s8.h: beside this file where a
 * build copies the kernel headers into one folder (make, PlatformIO: see
 * reds.build.firmware.headers), one folder over where a build compiles the files in
 * place with -I firmware/src (the Arduino builder, bare-metal builds). */
#if defined(__has_include)
#if __has_include("ref_window_s8.h")
#define REDS_REF_WINDOW_S8 "ref_window_s8.h"
#endif
#endif
#ifndef REDS_REF_WINDOW_S8
#define REDS_REF_WINDOW_S8 "../reference/ref_window_s8.h"
#endif
#include REDS_REF_WINDOW_S8

/* ---- the DSP instructions, or C with the same results ------------------------------ */
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>

static inline int32_t sxtb16(int32_t w) { return __sxtb16(w); }
static inline int32_t sxtab16(int32_t a, int32_t w) { return __sxtab16(a, w); }
static inline int32_t smlad(int32_t a, int32_t b, int32_t acc) { return __smlad(a, b, acc); }
#else
/* bytes 0 and 2 of w, sign-extended to the two halfwords */
static inline int32_t sxtb16(int32_t w)
{
    const uint32_t u = (uint32_t)w;
    return (int32_t)(((uint32_t)(int32_t)(int8_t)(u & 0xFFu) & 0xFFFFu) |
                     ((uint32_t)(int32_t)(int8_t)((u >> 16) & 0xFFu) << 16));
}
/* a's halfwords plus bytes 0 and 2 of w, sign-extended (each halfword modulo 2^16) */
static inline int32_t sxtab16(int32_t a, int32_t w)
{
    const uint32_t ua = (uint32_t)a, e = (uint32_t)sxtb16(w);
    return (int32_t)(((ua + e) & 0xFFFFu) | (((ua >> 16) + (e >> 16)) << 16));
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

/* The general conv: the reference's loop (ref_window_s8.h). */
static void conv_general(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q,
                         const int8_t *x, int8_t *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, out_hw = (uint32_t)L->out_h * L->out_w;
    uint32_t g, o, i;
    int32_t oy, ox;
    unsigned s;
    for (g = 0; g < w->ngroups; ++g) {
        const reds_group_t *G = &w->groups[g];
        for (o = G->o0; o < G->o1; ++o) {
            int8_t *yo = y + o * out_hw;
            for (oy = 0; oy < L->out_h; ++oy) {
                for (ox = 0; ox < L->out_w; ++ox) {
                    int32_t acc = 0;
                    for (s = 0; s < G->n; ++s) {
                        const reds_seg_t *S = &w->segs[G->first + s];
                        const int8_t *ws = w->base + S->off + o * S->step;
                        for (i = S->lo; i < S->hi; ++i)
                            acc += window_dot_s8(L, ws + (i - S->lo) * w->elem, x + i * in_hw, q->zx, oy, ox);
                    }
                    *yo++ = reds_store_s8(q, o, acc);
                }
            }
        }
    }
}

void reds_conv2d_s8(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin,
                    uint32_t cout, const int8_t *x, int8_t *y)
{
    (void)cin;
    if (L->kh == 1 && L->kw == 1 && L->sh == 1 && L->sw == 1 && L->pad_t == 0 && L->pad_b == 0 && L->pad_l == 0 &&
        L->pad_r == 0) {
        const uint32_t hw = (uint32_t)L->in_h * L->in_w;
        chunk_s8_t c[REDS_MAX_CHUNKS];
        uint32_t o, g = 0;
        unsigned n, r;
        for (o = 0; o < cout; o += r) {
            r = cout - o < 4 ? cout - o : 4; /* a last block of 1 to 3 rows repeats row o */
            n = row_chunks_s8(w, &g, o, r, c);
            pointwise4(c, n, hw, x, q, o, r, y);
        }
        return;
    }
    conv_general(L, w, q, x, y);
}
