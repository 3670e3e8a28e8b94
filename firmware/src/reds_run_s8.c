/*
 * reds runtime, int8: the layer loop of an int8 family (reds_net_t.s8).
 *
 * reds_run hands an int8 family's run here. The float raw features are quantized in place
 * at the arena's start (clamp(floor(x * qa + qb)), submodel k's qa and qb), each layer runs
 * one int8 kernel (reds_s8.h) into the other end of the int8 region, and the last layer's
 * int8 logits are dequantized into the arena's last output_size floats, which reds_run
 * returns. The store chains (a conv with the batch norm and the activation after it) are
 * one int8 step: the requantization record of submodel k, reds_layer_s8_t.q[k], holds
 * them. reds.quant.reference is this loop in Python; the two agree bit for bit.
 */
#include <string.h>

#include "reds_s8.h"

/* x * qa + qb must round twice, as reds.quant.ops.quantize_input (numpy) does: never one fma. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* The view of an int8 conv/dense layer's weights that submodel k reads. */
static void weights_s8(const reds_layer_t *L, const reds_layer_s8_t *S, unsigned k, reds_weights_s8_t *w)
{
    w->base = S->weight;
    w->elem = L->elem;
    w->segs = L->segs;
    w->groups = L->groups + L->groups_at[k];
    w->ngroups = (uint32_t)L->groups_at[k + 1u] - L->groups_at[k];
}

/* x[i] (float, the arena's start) -> int8 at the same place: byte i is written after float
 * i (bytes 4i .. 4i+3) is read, and i <= 4i, so the forward pass never reads what it wrote. */
static void quantize_input(const reds_net_t *net, unsigned k, float *x)
{
    const reds_net_s8_t *s8 = net->s8;
    const float *qa = s8->in_qa + k * s8->in_n, *qb = s8->in_qb + k * s8->in_n;
    int8_t *q = (int8_t *)x;
    const uint32_t hw = (uint32_t)net->in_h * net->in_w;
    uint32_t c, p, i = 0;
    for (c = 0; c < net->in_c; ++c) {
        for (p = 0; p < hw; ++p, ++i) {
            const uint32_t a = net->in_axis == REDS_AXIS_CHANNEL ? c
                               : (net->in_axis == REDS_AXIS_WIDTH ? p % net->in_w : 0u);
            float v = x[i] * qa[a];
            float f;
            int32_t t;
            v = v + qb[a];
            f = v < -128.0f ? -128.0f : (v > 127.0f ? 127.0f : v);
            t = (int32_t)f; /* toward zero: floor is one less for a negative non-integer */
            if ((float)t > f)
                t -= 1;
            q[i] = (int8_t)t;
        }
    }
}

#if defined(__GNUC__)
#define RUN_INLINE static inline __attribute__((always_inline))
#else
#define RUN_INLINE static inline
#endif
RUN_INLINE const float *run_s8(reds_model_t *m, const float *input, reds_ticks_fn ticks, uint64_t *out)
{
    const reds_net_t *net = m->net;
    const reds_net_s8_t *s8 = net->s8;
    const uint32_t k = m->active, stride = (uint32_t)net->num_layers + 1u;
    const uint16_t *row = net->widths + k * stride;
    int8_t *const base = (int8_t *)m->arena;
    const uint32_t bytes = (net->arena_floats - net->output_size) * (uint32_t)sizeof(float);
    float *const logits = m->arena + net->arena_floats - net->output_size;
    const int8_t *last;
    int8_t *x = base;
    int at_start = 1;
    uint32_t l, j;
    uint64_t t = 0, t1;

    if (ticks != 0)
        t = ticks();
    if (input != 0 && input != m->arena)
        memcpy(m->arena, input, net->input_size * sizeof(float));
    quantize_input(net, k, m->arena);
    if (ticks != 0) {
        t1 = ticks();
        out[net->num_layers] = t1 - t;
        t = t1;
    }
    for (l = 0; l < net->num_layers; ++l) {
        const uint32_t first = l;
        const reds_layer_t *L = &net->layers[l];
        const reds_layer_s8_t *S = &s8->layers[l];
        const uint32_t cin = row[l], cout = row[l + 1];
        const uint32_t out_n = cout * L->out_h * L->out_w;
        int8_t *y = at_start ? base + bytes - out_n : base;
        int moved = 1;
        reds_weights_s8_t w;
        switch (L->op) {
        case REDS_OP_CONV2D:
            weights_s8(L, S, k, &w);
            reds_conv2d_s8(L, &w, &S->q[k], cin, cout, x, y);
            break;
        case REDS_OP_DEPTHWISE_CONV2D:
            reds_depthwise_conv2d_s8(L, S->weight, &S->q[k], cout, x, y);
            break;
        case REDS_OP_DENSE:
            weights_s8(L, S, k, &w);
            reds_dense_s8(L, &w, &S->q[k], cin, cout, x, y);
            break;
        case REDS_OP_AVG_POOL:
            reds_avg_pool_s8(L, cout, S->q[k].mult[0], S->q[k].shift[0], S->q[k].zx, S->q[k].zy, x, y);
            break;
        case REDS_OP_MAX_POOL:
            reds_max_pool_s8(L, cout, x, y);
            break;
        default: /* REDS_OP_FLATTEN: C x H x W is already the flat order */
            moved = 0;
            break;
        }
        l += L->fused; /* the batch norm and activation of the step: in its requantization */
        if (moved) {
            x = y;
            at_start = !at_start;
        }
        if (ticks != 0) {
            t1 = ticks();
            out[first] = t1 - t;
            t = t1;
        }
    }
    last = x;
    for (j = 0; j < net->output_size; ++j)
        logits[j] = (float)((int32_t)last[j] - s8->out_zero[k]) * s8->out_scale[k];
    if (ticks != 0)
        for (l = 0; l < net->num_layers; ++l)
            for (j = net->layers[l].fused; j > 0; --j)
                out[++l] = REDS_TICKS_FUSED;
    return logits;
}

const float *reds_run_s8(reds_model_t *m, const float *input, reds_ticks_fn ticks, uint64_t *out)
{
    return ticks != 0 ? run_s8(m, input, ticks, out) : run_s8(m, input, 0, 0);
}
