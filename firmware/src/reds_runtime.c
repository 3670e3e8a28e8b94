/*
 * reds runtime: submodel selection, one inference through the layer list, cost queries.
 *
 * The arena is used ping-pong: a layer that cannot run in place reads its input at one
 * end and writes its output at the other, so the arena needs max(in + out) floats over
 * the layers of the largest submodel; batch norm, activations, flatten and adds overwrite
 * their input. A residual network's arena starts with its skip slots (skip_floats): the
 * output of a layer a later add reads is copied there. Together that is exactly the
 * family's arena_bytes. A layer the active submodel skips (its layer mask) leaves x as it
 * is: its input passes through. An int8 family's run is reds_run_s8 (reds_run_s8.c): the
 * model points at it, so a float build links none of the int8 code.
 */
#include <string.h>

#include "reds_s8.h"

/* No kernel lives here: reds_run walks the layer list and calls one kernel per layer. */

int reds_select(reds_model_t *m, unsigned k)
{
    if (k >= m->net->num_submodels)
        return -1;
    m->active = (uint8_t)k;
    return 0;
}

unsigned reds_active(const reds_model_t *m) { return m->active; }
unsigned reds_num_submodels(const reds_model_t *m) { return m->net->num_submodels; }
float *reds_input(reds_model_t *m) { return m->arena + m->net->skip_floats; }
uint32_t reds_input_size(const reds_model_t *m) { return m->net->input_size; }
uint32_t reds_output_size(const reds_model_t *m) { return m->net->output_size; }

int reds_features(reds_model_t *m, const int16_t *pcm, uint32_t n)
{
    const reds_net_t *net = m->net;
    if (net->frontend == 0)
        return -1;
    reds_mfcc_f32(net->frontend, pcm, n, net->frontend_work, reds_input(m));
    return 0;
}

uint32_t reds_macs(const reds_model_t *m, unsigned k)
{
    return k < m->net->num_submodels ? m->net->macs[k] : 0u;
}

uint32_t reds_weight_bytes(const reds_model_t *m, unsigned k)
{
    return k < m->net->num_submodels ? m->net->weight_bytes[k] : 0u;
}

uint32_t reds_arena_bytes(const reds_model_t *m, unsigned k)
{
    return k < m->net->num_submodels ? m->net->arena_bytes[k] : 0u;
}

float reds_budget(const reds_model_t *m, unsigned k)
{
    return k < m->net->num_submodels ? m->net->budgets[k] : 0.0f;
}

int reds_pick_macs(const reds_model_t *m, uint32_t max_macs)
{
    int k;
    for (k = (int)m->net->num_submodels - 1; k >= 0; --k)
        if (m->net->macs[k] <= max_macs)
            return k;
    return -1;
}

/* x = x * scale + shift along the family's input axis, in place. */
static void normalise(const reds_net_t *net, float *x)
{
    const uint32_t hw = (uint32_t)net->in_h * net->in_w;
    uint32_t c, p, i = 0;
    for (c = 0; c < net->in_c; ++c) {
        if (net->in_axis == REDS_AXIS_CHANNEL) {
            const float s = net->in_scale[c], t = net->in_shift[c];
            for (p = 0; p < hw; ++p, ++i)
                x[i] = x[i] * s + t;
        } else {
            for (p = 0; p < net->in_h; ++p) {
                uint32_t j;
                for (j = 0; j < net->in_w; ++j, ++i)
                    x[i] = x[i] * net->in_scale[j] + net->in_shift[j];
            }
        }
    }
}

/* The one layer loop of reds_run and reds_run_profiled. With ticks == NULL (reds_run: a
 * constant, so the compiler drops the timing once this is inlined there) it only runs; else
 * it reads the timer after the input's copy and normalisation and after every step, and
 * writes each step's ticks (see reds_run_profiled). */
#if defined(__GNUC__)
#define RUN_INLINE static inline __attribute__((always_inline))
#else
#define RUN_INLINE static inline
#endif
RUN_INLINE const float *run_layers(reds_model_t *m, const float *input, reds_ticks_fn ticks, uint64_t *out)
{
    const reds_net_t *net = m->net;
    const uint32_t k = m->active, stride = (uint32_t)net->num_layers + 1u;
    const uint16_t *row = net->widths + k * stride;
    const uint8_t *mask = net->layer_mask != 0 ? net->layer_mask + k * net->num_layers : 0;
    float *const base = m->arena + net->skip_floats; /* the ping-pong region */
    const uint32_t floats = net->arena_floats - net->skip_floats;
    float *x = base;
    int at_start = 1; /* x is at the start of the region (else it ends at the region's end) */
    uint32_t l, j;
    uint64_t t = 0, t1;

    if (net->s8 != 0) /* an int8 family: its own layer loop (reds_run_s8.c, linked only by int8 models) */
        return net->s8->run(m, input, ticks, out);
    if (ticks != 0)
        t = ticks();
    if (input != 0 && input != base)
        memcpy(base, input, net->input_size * sizeof(float));
    if (net->in_axis != REDS_AXIS_NONE)
        normalise(net, base);
    if (ticks != 0) {
        t1 = ticks();
        out[net->num_layers] = t1 - t;
        t = t1;
    }
    for (l = 0; l < net->num_layers; ++l) {
        const uint32_t first = l; /* l moves on past the layers fused into this one's store step */
        const reds_layer_t *L = &net->layers[l];
        const uint32_t cin = row[l], cout = row[l + 1];
        const uint32_t out_n = cout * L->out_h * L->out_w;
        const uint8_t skipped = mask != 0 ? mask[l] : (uint8_t)REDS_LAYER_RUN;
        float *y = at_start ? base + floats - out_n : base;
        int moved = 1; /* the output is in y (else the layer ran in place on x) */
        reds_weights_t w;
        reds_post_t post;
        switch (skipped == REDS_LAYER_RUN ? L->op : 0u) { /* 0: skipped, x passes through */
        case REDS_OP_CONV2D:
            reds_layer_weights(L, k, &w);
            reds_layer_post(L, k, &post);
            reds_conv2d_f32(L, &w, &post, cin, cout, x, y);
            break;
        case REDS_OP_DEPTHWISE_CONV2D:
            reds_layer_post(L, k, &post);
            reds_depthwise_conv2d_f32(L, &post, cout, x, y);
            break;
        case REDS_OP_DENSE:
            reds_layer_weights(L, k, &w);
            reds_layer_post(L, k, &post);
            reds_dense_f32(L, &w, &post, cin, cout, x, y);
            break;
        case REDS_OP_AVG_POOL:
            reds_avg_pool_f32(L, cout, x, y);
            break;
        case REDS_OP_MAX_POOL:
            reds_max_pool_f32(L, cout, x, y);
            break;
        case REDS_OP_SCALE_BIAS: /* a batch norm no conv could take into its store step */
            reds_layer_post(L, k, &post);
            reds_scale_bias_f32(post.scale, post.shift, cout, (uint32_t)L->out_h * L->out_w, x, post.act,
                                post.slope);
            moved = 0;
            break;
        case REDS_OP_RELU:
            reds_relu_f32(x, out_n);
            moved = 0;
            break;
        case REDS_OP_LEAKY_RELU:
            reds_leaky_relu_f32(x, out_n, L->slope);
            moved = 0;
            break;
        case REDS_OP_ADD:
            reds_add_f32(x, m->arena + L->skip, out_n);
            moved = 0;
            break;
        default: /* REDS_OP_FLATTEN: C x H x W is already the flat order; or a skipped layer */
            moved = 0;
            break;
        }
        /* The exporter fuses a chain only where every submodel runs all of it or none. */
        if (skipped == REDS_LAYER_RUN)
            l += L->fused;
        if (moved) {
            x = y;
            at_start = !at_start;
        }
        /* l: the last layer run (the chain's last). Skipped, the layer's kept output is what
         * passes through, copied where a later add reads it only. */
        if (skipped == REDS_LAYER_RUN ? net->layers[l].keep : skipped == REDS_LAYER_SKIP_KEEP)
            memcpy(m->arena + net->layers[l].skip, x, out_n * sizeof(float));
        if (ticks != 0) {
            t1 = ticks();
            out[first] = t1 - t;
            t = t1;
        }
    }
    if (ticks != 0) /* after the last timer read: the layers run in a store step before them */
        for (l = 0; l < net->num_layers; ++l)
            if (mask == 0 || mask[l] == REDS_LAYER_RUN)
                for (j = net->layers[l].fused; j > 0; --j)
                    out[++l] = REDS_TICKS_FUSED;
    return x;
}

const float *reds_run(reds_model_t *m, const float *input) { return run_layers(m, input, 0, 0); }

const float *reds_run_profiled(reds_model_t *m, const float *input, reds_ticks_fn ticks, uint64_t *out)
{
    return run_layers(m, input, ticks, out);
}
