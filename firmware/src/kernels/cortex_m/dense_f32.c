/*
 * dense, optimized: 4 rows that share their weight segments per loaded input value.
 * Reference: kernels/reference/dense_f32.c.
 */
#include "reds.h"
#include "rows.h"

/* 4 rows of a dense layer (as chunks, rows.h): each input value is loaded once for
 * 4 MACs, and the loop is unrolled by 4 (one accumulator per row, summed in input order
 * as in the one-row path, so the blocking does not change the result). */
static void dense4(const chunk4_t *c, unsigned n, uint32_t e, const float *x, float acc[4])
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    unsigned s;
    uint32_t t;
    for (s = 0; s < n; ++s) {
        const float *w0 = c[s].w[0], *w1 = c[s].w[1], *w2 = c[s].w[2], *w3 = c[s].w[3];
        const float *xs = x + c[s].lo * e;
        const uint32_t len = (c[s].hi - c[s].lo) * e;
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

/* One row of a dense layer (the last cout % 4 rows). */
static float dense1(const chunk4_t *c, unsigned n, uint32_t e, const float *x)
{
    float acc = 0.0f;
    unsigned s;
    uint32_t t;
    for (s = 0; s < n; ++s) {
        const float *ws = c[s].w[0];
        const float *xs = x + c[s].lo * e;
        const uint32_t len = (c[s].hi - c[s].lo) * e;
        for (t = 0; t < len; ++t)
            acc += ws[t] * xs[t];
    }
    return acc;
}

void reds_dense_f32(const reds_layer_t *L, const reds_weights_t *w, const reds_post_t *p, uint32_t cin,
                    uint32_t cout, const float *x, float *y)
{
    chunk4_t c[REDS_MAX_CHUNKS];
    float acc[4];
    uint32_t o, g = 0;
    unsigned n, r, j;
    (void)L;
    (void)cin;
    for (o = 0; o < cout; o += r) {
        r = cout - o < 4 ? 1 : 4;
        n = row_chunks(w, &g, o, r, c);
        if (r == 4)
            dense4(c, n, w->elem, x, acc);
        else
            acc[0] = dense1(c, n, w->elem, x);
        for (j = 0; j < r; ++j)
            y[o + j] = reds_post_f32(p, o + j, acc[j]); /* once per output: the plain store step */
    }
}
