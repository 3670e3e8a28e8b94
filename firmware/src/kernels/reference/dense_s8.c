/*
 * dense, int8 reference: y[o] = store(o, sum over the submodel's inputs of (x[i] - zx) W[o][i]),
 * the C twin of reds.quant.ops.dense; store the requantization step (reds_store_s8).
 * After a flatten each input unit i owns `elem` consecutive values (its H x W map).
 */
#include "reds_s8.h"

/* the Arduino builder compiles all of src/: there kernels/cortex_m/dense_s8.c is this op's kernel */
#ifndef REDS_ALL_SOURCES

void reds_dense_s8(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin,
                   uint32_t cout, const int8_t *x, int8_t *y)
{
    uint32_t g, o, t;
    unsigned s;
    (void)L;
    (void)cin;
    (void)cout; /* the groups cover exactly the submodel's cout rows */
    for (g = 0; g < w->ngroups; ++g) {
        const reds_group_t *G = &w->groups[g];
        for (o = G->o0; o < G->o1; ++o) {
            int32_t acc = 0;
            for (s = 0; s < G->n; ++s) {
                const reds_seg_t *S = &w->segs[G->first + s];
                const int8_t *ws = w->base + S->off + o * S->step;
                const int8_t *xs = x + S->lo * w->elem;
                for (t = 0; t < (uint32_t)(S->hi - S->lo) * w->elem; ++t)
                    acc += ((int32_t)xs[t] - q->zx) * ws[t];
            }
            y[o] = reds_store_s8(q, o, acc);
        }
    }
}

#endif /* REDS_ALL_SOURCES */
