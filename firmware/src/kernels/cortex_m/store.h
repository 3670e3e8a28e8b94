/*
 * The store step of the optimized conv, depthwise and dense kernels (reds_post_t): a
 * sum becomes act(acc * s + t) in registers, just before it is stored, with s and t the
 * output channel's fused batch norm (or 1 and the bias). Internal to
 * firmware/src/kernels/cortex_m/.
 */
#ifndef REDS_CORTEX_M_STORE_H
#define REDS_CORTEX_M_STORE_H

#include <string.h>

#include "reds.h"

/* max(v, 0) on the bits: a value whose sign bit is set becomes +0.0f (an arithmetic
 * shift of the sign, then one bic on ARM). */
#define RELU_BITS(u) ((u) & ~(uint32_t)((int32_t)(u) >> 31))

/* A kernel with the activation as a constant parameter is always inlined into its
 * STORE_BY_ACT call: one copy per activation, and no test of it in its loops. */
#if defined(__GNUC__)
#define STORE_INLINE static inline __attribute__((always_inline))
#else
#define STORE_INLINE static inline
#endif
/* F(..., act) with the store step q's activation as a constant. */
#define STORE_BY_ACT(F, ...)                                                                        \
    do {                                                                                            \
        if (q->act == REDS_ACT_RELU)                                                                \
            F(__VA_ARGS__, REDS_ACT_RELU);                                                          \
        else if (q->act == REDS_ACT_LEAKY_RELU)                                                     \
            F(__VA_ARGS__, REDS_ACT_LEAKY_RELU);                                                    \
        else                                                                                        \
            F(__VA_ARGS__, REDS_ACT_NONE);                                                          \
    } while (0)

/* One channel's store step. */
typedef struct {
    float s, t, slope;
    uint8_t act; /* reds_act_t */
} post1_t;

/* A block of up to 4 channels' (rows missing from the block: s 1, t 0). */
typedef struct {
    float s[4], t[4], slope;
    uint8_t act;
} post4_t;

static inline void post_channel(const reds_post_t *p, uint32_t o, post1_t *q)
{
    q->s = p->scale ? p->scale[o] : 1.0f;
    q->t = p->shift ? p->shift[o] : 0.0f;
    q->slope = p->slope;
    q->act = p->act;
}

static inline void post_block(const reds_post_t *p, uint32_t o, uint32_t nr, post4_t *q)
{
    uint32_t j;
    for (j = 0; j < 4; ++j) {
        q->s[j] = p->scale && j < nr ? p->scale[o + j] : 1.0f;
        q->t[j] = p->shift && j < nr ? p->shift[o + j] : 0.0f;
    }
    q->slope = p->slope;
    q->act = p->act;
}

/* The activation of the store step. post_act (after acc * s + t) is the register form of
 * reds_post_f32 (reds.h), the reference kernels' store step: the two must agree (the ReLU
 * on the bits here also makes -0.0f +0.0f, an equal value). */
static inline float post_act(float v, unsigned act, float slope)
{
    if (act == REDS_ACT_RELU) {
        uint32_t u;
        memcpy(&u, &v, 4);
        u = RELU_BITS(u);
        memcpy(&v, &u, 4);
    } else if (act == REDS_ACT_LEAKY_RELU && v < 0.0f) {
        v = v * slope;
    }
    return v;
}

/* The store step in place over n values of each of nr rows (ystride apart): for the paths
 * that sum into y one input channel at a time, so the sum is only whole at the end. */
static inline void post_rows(const post4_t *q, uint32_t nr, float *y, uint32_t n, uint32_t ystride)
{
    uint32_t j, i;
    for (j = 0; j < nr; ++j) {
        const float s = q->s[j], t = q->t[j];
        float *yj = y + j * ystride;
        for (i = 0; i < n; ++i)
            yj[i] = post_act(yj[i] * s + t, q->act, q->slope);
    }
}

#endif /* REDS_CORTEX_M_STORE_H */
