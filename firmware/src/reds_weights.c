/*
 * The weight index of both layouts: the exporter writes each conv/dense layer's segment
 * table (which runs of the weight array hold one output unit's row, per submodel;
 * firmware/README.md has the formulas); this picks the active submodel's part of it.
 * Every conv and dense kernel, reference and optimized, reaches its weights through it.
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
