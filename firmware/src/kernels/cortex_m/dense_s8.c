/*
 * dense, int8, optimized for a Cortex-M4 (ACLE DSP instructions where __ARM_FEATURE_DSP,
 * the same arithmetic in plain C99 elsewhere): 4 rows at a time share each loaded word of
 * 4 inputs, which becomes two int16 pairs of (x - zx) (SXTAB16); each row's 4 weights
 * become two int16 pairs (SXTB16) and two SMLADs add the 4 products. Integer sums are
 * exact in any order, so every path gives the reference's bits.
 * Reference: kernels/reference/dense_s8.c.
 */
#include <string.h>

#include "dsp_s8.h"
#include "reds_s8.h"
#include "rows.h"

/* ---- rows.h's row blocking, over int8 weights --------------------------------------- */
ROW_CHUNKS(row_chunks_s8, chunk_s8_t, int8_t, reds_weights_s8_t)

/* ---- the kernel ---------------------------------------------------------------------- */

/* The sums of 4 rows: per 4 inputs one word of x (two (x - zx) pairs) and per row one
 * word of weights, two SMLADs; the last len % 4 inputs one by one. */
static void dense4(const chunk_s8_t *c, unsigned n, uint32_t e, const int8_t *x, int32_t zx, int32_t acc[4])
{
    const int32_t nz = (int32_t)(((uint32_t)-zx & 0xFFFFu) * 0x10001u); /* (-zx, -zx) */
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    unsigned s;
    uint32_t t;
    for (s = 0; s < n; ++s) {
        const int8_t *w0 = c[s].w[0], *w1 = c[s].w[1], *w2 = c[s].w[2], *w3 = c[s].w[3];
        const int8_t *xs = x + c[s].lo * e;
        const uint32_t len = (c[s].hi - c[s].lo) * e;
        for (t = 0; t + 4 <= len; t += 4) {
            const int32_t xw = load4(xs + t);
            const int32_t x02 = sxtab16(nz, xw), x13 = sxtab16_ror8(nz, xw);
            int32_t v;
            v = load4(w0 + t);
            a0 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a0));
            v = load4(w1 + t);
            a1 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a1));
            v = load4(w2 + t);
            a2 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a2));
            v = load4(w3 + t);
            a3 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a3));
        }
        for (; t < len; ++t) {
            const int32_t v = (int32_t)xs[t] - zx;
            a0 += v * w0[t];
            a1 += v * w1[t];
            a2 += v * w2[t];
            a3 += v * w3[t];
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* One row (the last cout % 4). */
static int32_t dense1(const chunk_s8_t *c, unsigned n, uint32_t e, const int8_t *x, int32_t zx)
{
    const int32_t nz = (int32_t)(((uint32_t)-zx & 0xFFFFu) * 0x10001u);
    int32_t a = 0;
    unsigned s;
    uint32_t t;
    for (s = 0; s < n; ++s) {
        const int8_t *ws = c[s].w[0], *xs = x + c[s].lo * e;
        const uint32_t len = (c[s].hi - c[s].lo) * e;
        for (t = 0; t + 4 <= len; t += 4) {
            const int32_t xw = load4(xs + t), v = load4(ws + t);
            a = smlad(sxtb16(v), sxtab16(nz, xw), a);
            a = smlad(sxtb16_ror8(v), sxtab16_ror8(nz, xw), a);
        }
        for (; t < len; ++t)
            a += ((int32_t)xs[t] - zx) * ws[t];
    }
    return a;
}

void reds_dense_s8(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin,
                   uint32_t cout, const int8_t *x, int8_t *y)
{
    chunk_s8_t c[REDS_MAX_CHUNKS];
    int32_t acc[4];
    uint32_t o, g = 0;
    unsigned n, r, j;
    (void)L;
    (void)cin;
    for (o = 0; o < cout; o += r) {
        r = cout - o < 4 ? 1 : 4;
        n = row_chunks_s8(w, &g, o, r, c);
        if (r == 4)
            dense4(c, n, w->elem, x, q->zx, acc);
        else
            acc[0] = dense1(c, n, w->elem, x, q->zx);
        for (j = 0; j < r; ++j)
            y[o + j] = reds_store_s8(q, o + j, acc[j]);
    }
}
