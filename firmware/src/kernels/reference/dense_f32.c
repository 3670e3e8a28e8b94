/*
 * dense, reference: y[o] = post(o, sum over the active submodel's inputs of W[o][i] x[i]),
 * post the store step (reds_post_f32).
 * After a flatten each input channel i owns `elem` consecutive values (its H x W map).
 */
#include "reds.h"

/* the Arduino builder compiles all of src/: there kernels/cortex_m/dense_f32.c is this op's kernel */
#ifndef REDS_ALL_SOURCES

void reds_dense_f32(const reds_layer_t *L, const reds_weights_t *w, const reds_post_t *p, uint32_t cin,
                    uint32_t cout, const float *x, float *y)
{
    uint32_t g, o, t;
    unsigned s;
    (void)L;
    (void)cin;
    (void)cout; /* the groups cover exactly the active submodel's cout rows */
    for (g = 0; g < w->ngroups; ++g) {
        const reds_group_t *G = &w->groups[g];
        for (o = G->o0; o < G->o1; ++o) {
            float acc = 0.0f;
            for (s = 0; s < G->n; ++s) {
                const reds_seg_t *S = &w->segs[G->first + s];
                const float *ws = w->base + S->off + o * S->step;
                for (t = 0; t < (uint32_t)(S->hi - S->lo) * w->elem; ++t)
                    acc += ws[t] * x[S->lo * w->elem + t];
            }
            y[o] = reds_post_f32(p, o, acc);
        }
    }
}

#endif /* REDS_ALL_SOURCES */
