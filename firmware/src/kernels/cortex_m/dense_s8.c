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

/* Two quads of inputs for 4 rows, from x and w0 .. w3 (moved on) until x reaches end:
 * per quad one word of x becomes (x0 - zx, x2 - zx), (x1 - zx, x3 - zx) (2 SXTAB16s onto
 * nz), and per row one word of weights, 2 SXTB16s and 2 SMLADs. Inline assembly on a
 * Cortex-M4 (14 registers; the end is read from the frame). */
#if REDS_ASM
#define DENSE_QUAD_ROW_ASM(P, A)                                                                                \
    "ldr %[v], [" P "], #4\n\t"                                                                                 \
    "sxtb16 %[e], %[v]\n\t"                                                                                     \
    "sxtb16 %[v], %[v], ror #8\n\t"                                                                             \
    "smlad " A ", %[e], %[x02], " A "\n\t"                                                                      \
    "smlad " A ", %[v], %[x13], " A "\n\t"
#define DENSE_QUAD_ASM                                                                                          \
    "ldr %[v], [%[x]], #4\n\t"                                                                                  \
    "sxtab16 %[x02], %[nz], %[v]\n\t"                                                                           \
    "sxtab16 %[x13], %[nz], %[v], ror #8\n\t" DENSE_QUAD_ROW_ASM("%[w0]", "%[a0]")                              \
        DENSE_QUAD_ROW_ASM("%[w1]", "%[a1]") DENSE_QUAD_ROW_ASM("%[w2]", "%[a2]") DENSE_QUAD_ROW_ASM("%[w3]", "%[a3]")
REDS_S8_INLINE void dense4_quads(const int8_t **x, const int8_t *end, const int8_t **w, int32_t nz, int32_t a[4])
{
    const int8_t *xp = *x, *p0 = w[0], *p1 = w[1], *p2 = w[2], *p3 = w[3];
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], v, e, x02, x13;
    __asm__ volatile("1:\n\t" DENSE_QUAD_ASM DENSE_QUAD_ASM
                     "ldr %[e], %[end]\n\t"
                     "cmp %[x], %[e]\n\t"
                     "bne 1b\n\t"
                     : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(xp), [w0] "+r"(p0),
                       [w1] "+r"(p1), [w2] "+r"(p2), [w3] "+r"(p3), [v] "=&r"(v), [e] "=&r"(e), [x02] "=&r"(x02),
                       [x13] "=&r"(x13)
                     : [nz] "r"(nz), [end] "m"(end)
                     : "cc", "memory");
    *x = xp;
    w[0] = p0;
    w[1] = p1;
    w[2] = p2;
    w[3] = p3;
    a[0] = a0;
    a[1] = a1;
    a[2] = a2;
    a[3] = a3;
}
#endif

/* The sums of 4 rows: per 4 inputs one word of x (two (x - zx) pairs) and per row one
 * word of weights, two SMLADs (two quads a turn in assembly on a Cortex-M4); the last
 * len % 4 inputs one by one. */
REDS_S8_NOINLINE void dense4(const chunk_s8_t *c, unsigned n, uint32_t e, const int8_t *x, int32_t zx, int32_t acc[4])
{
    const int32_t nz = (int32_t)(((uint32_t)-zx & 0xFFFFu) * 0x10001u); /* (-zx, -zx) */
    int32_t a[4] = {0, 0, 0, 0};
    unsigned s;
    for (s = 0; s < n; ++s) {
        const int8_t *w[4] = {c[s].w[0], c[s].w[1], c[s].w[2], c[s].w[3]};
        const int8_t *xs = x + c[s].lo * e;
        const int8_t *const end = xs + (c[s].hi - c[s].lo) * e;
#if REDS_ASM
        if (end - xs >= 8)
            dense4_quads(&xs, xs + ((uint32_t)(end - xs) & ~7u), w, nz, a);
#endif
        for (; end - xs >= 4; xs += 4, w[0] += 4, w[1] += 4, w[2] += 4, w[3] += 4) {
            const int32_t xw = load4(xs);
            const int32_t x02 = sxtab16(nz, xw), x13 = sxtab16_ror8(nz, xw);
            int32_t v;
            v = load4(w[0]);
            a[0] = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a[0]));
            v = load4(w[1]);
            a[1] = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a[1]));
            v = load4(w[2]);
            a[2] = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a[2]));
            v = load4(w[3]);
            a[3] = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a[3]));
        }
        for (; xs < end; ++xs, ++w[0], ++w[1], ++w[2], ++w[3]) {
            const int32_t v = (int32_t)*xs - zx;
            a[0] += v * *w[0];
            a[1] += v * *w[1];
            a[2] += v * *w[2];
            a[3] += v * *w[3];
        }
    }
    acc[0] = a[0];
    acc[1] = a[1];
    acc[2] = a[2];
    acc[3] = a[3];
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
