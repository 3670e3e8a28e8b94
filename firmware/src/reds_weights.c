/*
 * The weight index of both layouts: which runs of a weight array hold one output unit's
 * row in the active submodel (firmware/README.md has the formulas). Every conv and dense
 * kernel, reference and optimized, reaches its weights through reds_weight_row().
 */
#include "reds.h"

unsigned reds_weight_row(const reds_weights_t *w, uint32_t o, reds_seg_t *segs)
{
    const uint32_t k = w->k, st = w->stride, e = w->elem;
    uint32_t j, m, n;
    if (w->layout != REDS_LAYOUT_NESTED) {
        segs[0].w = w->base + o * w->row_stride;
        segs[0].lo = 0;
        segs[0].hi = w->in_w[k * st];
        return 1;
    }
    /* Shell j of row o: the first submodel whose output width covers o. That shell
     * holds the row's first in_w[j] entries, at o * in_w[j] (see README.md). */
    j = 0;
    while (j < k && o >= w->out_w[j * st])
        ++j;
    segs[0].w = w->base + (uint32_t)(o * w->in_w[j * st]) * e;
    segs[0].lo = 0;
    segs[0].hi = w->in_w[j * st];
    n = 1;
    /* Every later shell m adds the inputs in_w[m-1] .. in_w[m]-1 of all its older rows,
     * stored after the block of submodel m-1 (out_w[m-1] x in_w[m-1] entries). */
    for (m = j + 1; m <= k; ++m) {
        const uint32_t i0 = w->in_w[(m - 1) * st], i1 = w->in_w[m * st];
        if (i1 > i0) {
            const uint32_t off = w->out_w[(m - 1) * st] * i0 + o * (i1 - i0);
            segs[n].w = w->base + off * e;
            segs[n].lo = i0;
            segs[n].hi = i1;
            ++n;
        }
    }
    return n;
}
