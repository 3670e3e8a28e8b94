/*
 * Row blocking of the optimized conv and dense kernels: up to 4 output rows walk the
 * inputs in one loop, whatever groups of the exporter's segment table they are in.
 * Internal to firmware/src/kernels/cortex_m/.
 */
#ifndef REDS_CORTEX_M_ROWS_H
#define REDS_CORTEX_M_ROWS_H

#include "reds.h"

/* Inputs lo .. hi - 1 of a block of rows: row r's weights of input i at w[r] + (i - lo) * elem. */
typedef struct {
    const float *w[4];
    uint32_t lo, hi;
} chunk4_t;

/* Room for a block's chunks: a row's segments end at input widths of submodels 0 .. k,
 * so a block of rows of any groups has at most one chunk per submodel. */
#define REDS_MAX_CHUNKS REDS_MAX_SUBMODELS

/* The block of rows o .. o + nr - 1 (1 <= nr <= 4; missing rows repeat row o) as chunks,
 * cut where any of its rows' segments end; *g is row o's group and moves on with o.
 * Every row's segments cover its inputs in order, so a row blocked with any others sums
 * its inputs in the same order as alone: blocking never changes the bits, and rows at a
 * shell boundary (two groups in one block) run in the blocked kernels too. Returns the
 * number of chunks. No index is computed: the offsets come from the exporter's table. */
static inline unsigned row_chunks(const reds_weights_t *w, uint32_t *g, uint32_t o, unsigned nr, chunk4_t *c)
{
    const reds_group_t *G[4];
    const float *const base = w->base;
    unsigned r, n, s;
    uint32_t h = *g;
    while (o >= w->groups[h].o1)
        ++h;
    *g = h;
    G[0] = &w->groups[h];
    for (r = 1; r < nr; ++r) {
        while (o + r >= w->groups[h].o1)
            ++h;
        G[r] = &w->groups[h];
    }
    if (G[nr - 1] == G[0]) { /* one group: its segments are the chunks */
        const reds_seg_t *S = &w->segs[G[0]->first];
        for (s = 0; s < G[0]->n; ++s, ++S) {
            const float *p = base + S->off + o * S->step;
            c[s].w[0] = p;
            c[s].w[1] = nr > 1 ? p + S->step : p;
            c[s].w[2] = nr > 2 ? p + 2u * S->step : p;
            c[s].w[3] = nr > 3 ? p + 3u * S->step : p;
            c[s].lo = S->lo;
            c[s].hi = S->hi;
        }
        return G[0]->n;
    } else {
        const reds_seg_t *S[4];
        const uint32_t e = w->elem, end = w->segs[G[0]->first + G[0]->n - 1u].hi;
        uint32_t lo = 0, hi;
        for (r = 0; r < nr; ++r)
            S[r] = &w->segs[G[r]->first];
        for (n = 0; lo < end; ++n, lo = hi) {
            hi = end;
            for (r = 0; r < nr; ++r) {
                while (S[r]->hi <= lo)
                    ++S[r];
                if (S[r]->hi < hi)
                    hi = S[r]->hi;
                c[n].w[r] = base + S[r]->off + (o + r) * S[r]->step + (lo - S[r]->lo) * e;
            }
            for (; r < 4; ++r)
                c[n].w[r] = c[n].w[0];
            c[n].lo = lo;
            c[n].hi = hi;
        }
        return n;
    }
}

#endif /* REDS_CORTEX_M_ROWS_H */
