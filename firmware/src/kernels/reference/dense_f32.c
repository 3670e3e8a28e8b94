/*
 * dense, reference: y[o] = bias[o] + sum over the active submodel's inputs of W[o][i] x[i].
 * After a flatten each input channel i owns `elem` consecutive values (its H x W map).
 */
#include "reds.h"

/* the Arduino builder compiles all of src/: there kernels/cortex_m/dense_f32.c is this op's kernel */
#ifndef REDS_ALL_SOURCES

void reds_dense_f32(const reds_layer_t *L, const reds_weights_t *w, uint32_t cin, uint32_t cout,
                    const float *x, float *y)
{
    reds_seg_t segs[REDS_MAX_SUBMODELS];
    uint32_t o, t;
    unsigned s, n;
    (void)cin;
    for (o = 0; o < cout; ++o) {
        float acc = 0.0f;
        n = reds_weight_row(w, o, segs);
        for (s = 0; s < n; ++s)
            for (t = 0; t < (segs[s].hi - segs[s].lo) * w->elem; ++t)
                acc += segs[s].w[t] * x[segs[s].lo * w->elem + t];
        y[o] = acc + (L->bias ? L->bias[o] : 0.0f);
    }
}

#endif /* REDS_ALL_SOURCES */
