/*
 * What submodel k reads of a layer's tables. The weight index of both layouts: the
 * exporter writes each conv/dense layer's segment table (which runs of the weight array
 * hold one output unit's row, per submodel; firmware/README.md has the formulas); this
 * picks the active submodel's part of it. Every conv and dense kernel, reference and
 * optimized, reaches its weights through it. And the store step: submodel k's folded
 * batch norm, at the offset the exporter precomputed.
 */
#include "reds.h"

void reds_layer_weights(const reds_layer_t *L, unsigned k, reds_weights_t *w)
{
    w->base = L->weight;
    w->elem = L->elem;
    w->segs = L->segs;
    if (L->groups_at != 0) {
        w->groups = L->groups + L->groups_at[k];
        w->ngroups = (uint32_t)L->groups_at[k + 1u] - L->groups_at[k];
    } else {
        w->groups = 0;
        w->ngroups = 0;
    }
}

void reds_layer_post(const reds_layer_t *L, unsigned k, reds_post_t *p)
{
    const uint32_t off = L->scale_at != 0 ? L->scale_at[k] : 0u;
    p->scale = L->scale != 0 ? L->scale + off : 0;
    p->shift = L->shift != 0 ? L->shift + off : L->bias;
    p->act = L->act;
    p->slope = L->slope;
}
