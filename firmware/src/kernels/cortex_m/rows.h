/*
 * Row blocking of the optimized conv and dense kernels: which output rows share their
 * weight segments, so 4 of them can walk the inputs in one loop.
 * Internal to firmware/src/kernels/cortex_m/.
 */
#ifndef REDS_CORTEX_M_ROWS_H
#define REDS_CORTEX_M_ROWS_H

#include "reds.h"

/* Do rows a and b of a conv/dense layer have their inputs in the same segments? Then the
 * row-blocked kernels below can walk both rows with one loop. Rows of the same shell
 * do (rowmajor: every row). Blocking never changes the order of a row's sums, so both
 * layouts still give the same bits. */
static inline int same_runs(const reds_seg_t *a, unsigned na, const reds_seg_t *b, unsigned nb)
{
    unsigned s;
    if (na != nb)
        return 0;
    for (s = 0; s < na; ++s)
        if (a[s].lo != b[s].lo || a[s].hi != b[s].hi)
            return 0;
    return 1;
}

/* How many of the rows o, o+1, ... (at most 4, fewer than cout - o) share row o's
 * segments: fills segs[r] (REDS_MAX_SUBMODELS entries each) for those rows, returns
 * 4 when all four do, else 1 (the blocked kernels handle 4 rows or one). */
static inline unsigned row_block(const reds_weights_t *w, uint32_t o, uint32_t cout,
                          reds_seg_t segs[4][REDS_MAX_SUBMODELS], unsigned *n)
{
    unsigned r;
    *n = reds_weight_row(w, o, segs[0]);
    if (cout - o < 4)
        return 1;
    for (r = 1; r < 4; ++r) {
        const unsigned nr = reds_weight_row(w, o + r, segs[r]);
        if (!same_runs(segs[0], *n, segs[r], nr))
            return 1;
    }
    return 4;
}

#endif /* REDS_CORTEX_M_ROWS_H */
