/*
 * Row blocking of the optimized conv and dense kernels: up to 4 output rows walk the
 * inputs in one loop, whatever groups of the exporter's segment table they are in; one
 * definition for the float kernels' weights and the int8 kernels' (ROW_CHUNKS).
 * Internal to firmware/src/kernels/cortex_m/.
 */
#ifndef REDS_CORTEX_M_ROWS_H
#define REDS_CORTEX_M_ROWS_H

#include "reds.h"

/* Room for a block's chunks: a row's segments end at input widths of submodels 0 .. k,
 * so a block of rows of any groups has at most one chunk per submodel. */
#define REDS_MAX_CHUNKS REDS_MAX_SUBMODELS

/* ROW_CHUNKS(NAME, CHUNK, T, WEIGHTS) defines the row blocking over weights of element
 * type T seen through WEIGHTS (reds_weights_t, reds_weights_s8_t: the same segment table,
 * offsets in elements): the type CHUNK, inputs lo .. hi - 1 of a block of rows, row r's
 * weights of input i at w[r] + (i - lo) * elem; and
 *   static inline unsigned NAME(const WEIGHTS *w, uint32_t *g, uint32_t o, unsigned nr, CHUNK *c):
 * the block of rows o .. o + nr - 1 (1 <= nr <= 4; missing rows repeat row o) as chunks,
 * cut where any of its rows' segments end; *g is row o's group and moves on with o.
 * Every row's segments cover its inputs in order, so a row blocked with any others sums
 * its inputs in the same order as alone: blocking never changes the bits, and rows at a
 * shell boundary (two groups in one block) run in the blocked kernels too. Returns the
 * number of chunks. No index is computed: the offsets come from the exporter's table.
 * One definition for every element type, expanded where it is used: the same code as
 * one written out for that type (no byte offsets, no element size at run time). Use it
 * at file scope, without a semicolon after it. */
#define ROW_CHUNKS(NAME, CHUNK, T, WEIGHTS)                                                                     \
    typedef struct {                                                                                            \
        const T *w[4];                                                                                          \
        uint32_t lo, hi;                                                                                        \
    } CHUNK;                                                                                                    \
                                                                                                                \
    static inline unsigned NAME(const WEIGHTS *w, uint32_t *g, uint32_t o, unsigned nr, CHUNK *c)               \
    {                                                                                                           \
        const reds_group_t *G[4];                                                                               \
        const T *const base = w->base;                                                                          \
        unsigned r, n, s;                                                                                       \
        uint32_t h = *g;                                                                                        \
        while (o >= w->groups[h].o1)                                                                            \
            ++h;                                                                                                \
        *g = h;                                                                                                 \
        G[0] = &w->groups[h];                                                                                   \
        for (r = 1; r < nr; ++r) {                                                                              \
            while (o + r >= w->groups[h].o1)                                                                    \
                ++h;                                                                                            \
            G[r] = &w->groups[h];                                                                               \
        }                                                                                                       \
        if (G[nr - 1] == G[0]) { /* one group: its segments are the chunks */                                   \
            const reds_seg_t *S = &w->segs[G[0]->first];                                                        \
            for (s = 0; s < G[0]->n; ++s, ++S) {                                                                \
                const T *p = base + S->off + o * S->step;                                                       \
                c[s].w[0] = p;                                                                                  \
                c[s].w[1] = nr > 1 ? p + S->step : p;                                                           \
                c[s].w[2] = nr > 2 ? p + 2u * S->step : p;                                                      \
                c[s].w[3] = nr > 3 ? p + 3u * S->step : p;                                                      \
                c[s].lo = S->lo;                                                                                \
                c[s].hi = S->hi;                                                                                \
            }                                                                                                   \
            return G[0]->n;                                                                                     \
        } else {                                                                                                \
            const reds_seg_t *S[4];                                                                             \
            const uint32_t e = w->elem, end = w->segs[G[0]->first + G[0]->n - 1u].hi;                           \
            uint32_t lo = 0, hi;                                                                                \
            for (r = 0; r < nr; ++r)                                                                            \
                S[r] = &w->segs[G[r]->first];                                                                   \
            for (n = 0; lo < end; ++n, lo = hi) {                                                               \
                hi = end;                                                                                       \
                for (r = 0; r < nr; ++r) {                                                                      \
                    while (S[r]->hi <= lo)                                                                      \
                        ++S[r];                                                                                 \
                    if (S[r]->hi < hi)                                                                          \
                        hi = S[r]->hi;                                                                          \
                    c[n].w[r] = base + S[r]->off + (o + r) * S[r]->step + (lo - S[r]->lo) * e;                  \
                }                                                                                               \
                for (; r < 4; ++r)                                                                              \
                    c[n].w[r] = c[n].w[0];                                                                      \
                c[n].lo = lo;                                                                                   \
                c[n].hi = hi;                                                                                   \
            }                                                                                                   \
            return n;                                                                                           \
        }                                                                                                       \
    }

/* The float kernels' (conv2d_f32.c, dense_f32.c): chunk4_t and row_chunks. */
ROW_CHUNKS(row_chunks, chunk4_t, float, reds_weights_t)

#endif /* REDS_CORTEX_M_ROWS_H */
