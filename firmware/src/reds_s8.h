/*
 * reds int8 kernels: the API (docs/int8.md is the contract, reds/quant/ops.py the
 * definition every kernel matches bit for bit).
 *
 * Tensors are int8, channel-major (C x H x W) as in the float runtime; real = s * (q - z)
 * per tensor. Weights are int8, symmetric (no zero point), shared by every submodel and
 * reached through the same segment table as the float weights (reds_weights_t), in either
 * layout. A layer's bias, batch norm and activation are its requantization record
 * (reds_requant_t), one per submodel: the kernels end in one store (reds_store_s8).
 *
 * Arithmetic is TFLite's (gemmlowp's): a real multiplier is an int32 M and a shift e with
 * r ~= M * 2^(e - 31); requantize(x, M, e) = rdbpot(srdhm(sat32(x * 2^max(e, 0)), M),
 * max(-e, 0)), rounding to nearest (the divide's ties away from zero; srdhm's below).
 *
 * Kernels `reds_<op>_s8` live in kernels/reference/<op>_s8.c (plain loops) and, where a
 * target has one, kernels/<target>/<op>_s8.c (same name), picked per op like the float
 * kernels. They read only the geometry of a reds_layer_t (kh, kw, sh, sw, pads, in/out
 * h/w, elem), never its float weight, bias or scale. C99, no malloc, no stdio.
 */
#ifndef REDS_S8_H
#define REDS_S8_H

#include <stdint.h>

#include "reds.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A conv/dense layer's int8 weights as one submodel sees them: reds_weights_t's segment
 * table, over int8 values (offsets and steps in elements, i.e. bytes). In segment s, input
 * unit i (lo <= i < hi) of row o has its `elem` weights at base + off + o * step + (i - lo) * elem. */
typedef struct {
    const int8_t *base;
    const reds_group_t *groups; /* the submodel's groups: they cover rows 0 .. cout - 1 in order */
    uint32_t ngroups;
    const reds_seg_t *segs;
    uint32_t elem;              /* weights per (output, input) entry: kh*kw, or a dense layer's H*W per input */
} reds_weights_s8_t;

/* The store step of a conv, depthwise or dense layer in one submodel (ops.store), indexed
 * by output channel o:
 *   t = requantize(sat32(acc + bias[o]), mult[o], shift[o])
 *   if leaky and t < 0: t = requantize(t, slope_mult, slope_shift)
 *   y = clamp(t + zy, lo, hi)
 * acc is the sum over the taps inside the input of (x - zx) * w (padding adds nothing). */
typedef struct {
    const int32_t *bias;  /* [cout] int32 biases (the layer's bias and batch norm, folded), or NULL: 0 */
    const int32_t *mult;  /* [cout] M: 2^30 <= |M| < 2^31 (or 0) */
    const int8_t *shift;  /* [cout] e: -31 <= e <= 30 */
    int32_t zx;           /* the input's zero point */
    int32_t zy;           /* the output's zero point */
    int32_t lo, hi;       /* the clamp: ReLU lo = max(zy, -128), else lo = -128; hi = 127 */
    int32_t slope_mult;   /* leaky ReLU: the slope's multiplier M ... */
    int8_t slope_shift;   /* ... and shift e */
    uint8_t leaky;        /* 1: a leaky ReLU requantizes the negative side (slope_mult, slope_shift) */
} reds_requant_t;

/* A residual add (ops.add, TFLite's): x is input a, skip input b. With L = 20,
 * u_a = requantize((a - za) * 2^L, ma, ea), u_b = requantize((b - zb) * 2^L, mb, eb),
 * y = clamp(requantize(u_a + u_b, mo, eo) + zy, lo, hi) (ops.add_multipliers gives the
 * multipliers). */
typedef struct {
    int32_t za, zb;       /* the inputs' zero points */
    int32_t ma, ea;       /* a's multiplier: sa / (2 max(sa, sb)) */
    int32_t mb, eb;       /* b's: sb / (2 max(sa, sb)) */
    int32_t mo, eo;       /* the output's: 2 max(sa, sb) / (2^L sy) */
    int32_t zy;           /* the output's zero point */
    int32_t lo, hi;       /* the clamp */
} reds_add_s8_t;

#define REDS_ADD_LEFT_SHIFT 20

static inline int32_t reds_sat32(int64_t x)
{
    return x > INT32_MAX ? INT32_MAX : (x < INT32_MIN ? INT32_MIN : (int32_t)x);
}

/* SaturatingRoundingDoublingHighMul (ops.srdhm, gemmlowp's): the high 32 bits of 2 a b,
 * nudged by 2^30 (1 - 2^30 if negative) and truncated toward zero, so a positive tie
 * rounds up and a negative tie toward zero; INT32_MAX for a == b == INT32_MIN. That is
 * floor((a b + 2^30) / 2^31) for every other pair: for a b >= 0 the truncation is a floor;
 * for a b < 0, v = a b + 1 - 2^30 < 0 truncates to floor((v + 2^31 - 1) / 2^31), the same.
 * So one multiply-accumulate (SMLAL on a Cortex-M4) and a shift: no sign branch, no 64-bit
 * division (a library call on a Cortex-M). Arithmetic right shift of negatives, as
 * gemmlowp assumes. */
static inline int32_t reds_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN)
        return INT32_MAX;
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* reds_srdhm for a requantization multiplier, which is never INT32_MIN (|M| < 2^31). On an
 * ARMv7-M one SMLAL onto 2^30 (GCC makes a full 64 x 64 multiply of it where the operand
 * comes from two paths). */
static inline int32_t reds_srdhm_m(int32_t a, int32_t m)
{
#if defined(__GNUC__) && (defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_7M__))
    uint32_t lo = (uint32_t)1 << 30;
    int32_t hi = 0;
    __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(a), "r"(m));
    return (int32_t)((lo >> 31) | ((uint32_t)hi << 1));
#else
    return (int32_t)(((int64_t)a * (int64_t)m + ((int64_t)1 << 30)) >> 31);
#endif
}

/* x / 2^exp, rounded half away from zero, 0 <= exp <= 31 (gemmlowp's RoundingDivideByPOT,
 * ops.rounding_divide_by_pot), in 32 bits. Arithmetic right shift of negatives, as
 * gemmlowp assumes. */
static inline int32_t reds_rdbpot(int32_t x, int exp)
{
    const uint32_t mask = ((uint32_t)1 << exp) - 1u;
    const uint32_t remainder = (uint32_t)x & mask;
    const uint32_t threshold = (mask >> 1) + (x < 0 ? 1u : 0u);
    return (x >> exp) + (remainder > threshold ? 1 : 0);
}

/* sat32(x * 2^e), 0 < e <= 30, in 32 bits */
static inline int32_t reds_sat_shl(int32_t x, int e)
{
    if (x > (INT32_MAX >> e))
        return INT32_MAX;
    if (x < (INT32_MIN >> e))
        return INT32_MIN;
    return (int32_t)((uint32_t)x << e);
}

/* ops.requantize: rdbpot(srdhm(sat32(x * 2^max(e, 0)), m), max(-e, 0)), in 32 bits but
 * for srdhm's one 64-bit product. */
static inline int32_t reds_requantize(int32_t x, int32_t m, int e)
{
    if (e > 0)
        return reds_srdhm_m(reds_sat_shl(x, e), m);
    return reds_rdbpot(reds_srdhm_m(x, m), -e);
}

/* The store step of output channel o (ops.store): acc is the sum over the taps without the
 * bias. The bias is added with saturation, which is what ops' int64 sum then sat32 gives;
 * the rest is in 32 bits (the clamp is moved before the zero point's add, so t + zy never
 * overflows). Always inlined: the kernels call it once per output. */
#if defined(__GNUC__)
#define REDS_S8_INLINE static inline __attribute__((always_inline))
#define REDS_S8_NOINLINE static __attribute__((noinline))
#else
#define REDS_S8_INLINE static inline
#define REDS_S8_NOINLINE static
#endif
REDS_S8_INLINE int32_t reds_add_sat32(int32_t a, int32_t b)
{
#if defined(__GNUC__)
    int32_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT32_MAX : INT32_MIN;
    return r;
#else
    return reds_sat32((int64_t)a + b);
#endif
}

REDS_S8_INLINE int8_t reds_store_s8(const reds_requant_t *q, uint32_t o, int32_t acc)
{
    const int32_t a = q->bias ? reds_add_sat32(acc, q->bias[o]) : acc;
    int32_t t = reds_requantize(a, q->mult[o], q->shift[o]);
    if (q->leaky && t < 0)
        t = reds_requantize(t, q->slope_mult, q->slope_shift);
    if (t < q->lo - q->zy)
        t = q->lo - q->zy;
    if (t > q->hi - q->zy)
        t = q->hi - q->zy;
    return (int8_t)(t + q->zy);
}

/* ---- an int8 family (reds_net_t.s8) ------------------------------------------------- */

/* One layer's int8 tables. The geometry, segment table and fusing are the reds_layer_t's. */
typedef struct {
    const int8_t *weight;      /* conv/dense: [out][in][elem] in the model's layout (the segment
                                  table's offsets count int8 values); depthwise: [channel][kh*kw] */
    const reds_requant_t *q;   /* [num_submodels]: submodel k's store step (avg pool: mult[0],
                                  shift[0], zx, zy); NULL for max pool, flatten and fused layers */
} reds_layer_s8_t;

/* The int8 layer loop, reds_run / reds_run_profiled's for an int8 family (reds_run_s8.c). */
typedef const float *(*reds_run_s8_fn)(reds_model_t *m, const float *input, reds_ticks_fn ticks, uint64_t *out);

/* An int8 family's tables. The arena: the float input (reds_input(m), input_size floats),
 * quantized in place to int8 at its start; the int8 activations ping-pong between the ends
 * of the arena's first arena_floats - output_size floats; the float logits are its last
 * output_size floats. */
typedef struct reds_net_s8 {
    const reds_layer_s8_t *layers;  /* [num_layers] */
    /* Submodel k quantizes the raw features x as clamp(floor(x * qa + qb), -128, 127), qa and
     * qb along the family's in_axis: in_n values each (1 for REDS_AXIS_NONE). */
    const float *in_qa;             /* [num_submodels][in_n] */
    const float *in_qb;
    uint32_t in_n;
    /* and dequantizes its int8 logits q as (q - out_zero) * out_scale */
    const float *out_scale;         /* [num_submodels] */
    const int32_t *out_zero;
    reds_run_s8_fn run;             /* reds_run_s8 */
} reds_net_s8_t;

const float *reds_run_s8(reds_model_t *m, const float *input, reds_ticks_fn ticks, uint64_t *out);

/* ---- int8 kernels: kernels/reference/<op>_s8.c, or a target's file of the same name ---- */

/* y[o][oy][ox] = store(o, sum over the submodel's inputs i and the taps (ky, kx) inside the
 * input of (x[i][oy*sh - pad_t + ky][ox*sw - pad_l + kx] - zx) * W[o][i][ky][kx]). */
void reds_conv2d_s8(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin,
                    uint32_t cout, const int8_t *x, int8_t *y);
/* Channel ch convolved with its own kernel weight[ch][kh*kw], then the store step. */
void reds_depthwise_conv2d_s8(const reds_layer_t *L, const int8_t *weight, const reds_requant_t *q, uint32_t c,
                              const int8_t *x, int8_t *y);
/* y[o] = store(o, sum over the submodel's inputs of (x - zx) * W[o][i]); after a flatten
 * each input unit i owns w->elem consecutive values. */
void reds_dense_s8(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin,
                   uint32_t cout, const int8_t *x, int8_t *y);
/* No padding: y = clamp(requantize(sum (x - zx), m, e) + zy, -128, 127), (m, e) the
 * multiplier of sx / (sy * kh * kw). */
void reds_avg_pool_s8(const reds_layer_t *L, uint32_t c, int32_t m, int e, int32_t zx, int32_t zy, const int8_t *x,
                      int8_t *y);
/* y = the window's max (the output keeps the input's scale and zero point). */
void reds_max_pool_s8(const reds_layer_t *L, uint32_t c, const int8_t *x, int8_t *y);
/* x[i] = add(x[i], skip[i]) (reds_add_s8_t), in place. */
void reds_add_s8(int8_t *x, const int8_t *skip, uint32_t n, const reds_add_s8_t *a);

#ifdef __cplusplus
}
#endif

#endif /* REDS_S8_H */
