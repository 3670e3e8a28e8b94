/*
 * dense, optimized: 4 rows that share their weight segments per loaded input value.
 * Reference: kernels/reference/dense_f32.c.
 */
#include "reds.h"
#include "rows.h"

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
