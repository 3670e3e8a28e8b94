/*
 * reds runtime: submodel selection, one inference through the layer list, cost queries.
 *
 * The arena is used ping-pong: a layer that cannot run in place reads its input at one
 * end and writes its output at the other, so the arena needs max(in + out) floats over
 * the layers of the largest submodel (exactly the family's arena_bytes); batch norm,
 * activations and flatten overwrite their input.
 */
#include <string.h>

#include "reds.h"

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
float *reds_input(reds_model_t *m) { return m->arena; }
uint32_t reds_input_size(const reds_model_t *m) { return m->net->input_size; }
uint32_t reds_output_size(const reds_model_t *m) { return m->net->output_size; }

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

const float *reds_run(reds_model_t *m, const float *input)
{
    const reds_net_t *net = m->net;
    const uint32_t k = m->active, stride = (uint32_t)net->num_layers + 1u;
    const uint16_t *row = net->widths + k * stride;
    const uint16_t *last = net->widths + ((uint32_t)net->num_submodels - 1u) * stride;
    float *x = m->arena;
    int at_start = 1; /* x is at the start of the arena (else it ends at the arena's end) */
    uint32_t l, j;

    if (input != 0 && input != m->arena)
        memcpy(m->arena, input, net->input_size * sizeof(float));
    for (l = 0; l < net->num_layers; ++l) {
        const reds_layer_t *L = &net->layers[l];
        const uint32_t cin = row[l], cout = row[l + 1];
        const uint32_t out_n = cout * L->out_h * L->out_w;
        float *y = at_start ? m->arena + net->arena_floats - out_n : m->arena;
        reds_weights_t w;
        w.base = L->weight;
        w.in_w = net->widths + l;
        w.out_w = net->widths + l + 1;
        w.stride = stride;
        w.elem = L->elem;
        w.row_stride = last[l] * L->elem;
        w.k = (uint8_t)k;
        w.layout = net->layout;
        switch (L->op) {
        case REDS_OP_CONV2D:
            reds_conv2d_f32(L, &w, cin, cout, x, y);
            break;
        case REDS_OP_DEPTHWISE_CONV2D:
            reds_depthwise_conv2d_f32(L, cout, x, y);
            break;
        case REDS_OP_DENSE:
            reds_dense_f32(L, &w, cin, cout, x, y);
            break;
        case REDS_OP_AVG_POOL:
            reds_avg_pool_f32(L, cout, x, y);
            break;
        case REDS_OP_MAX_POOL:
            reds_max_pool_f32(L, cout, x, y);
            break;
        case REDS_OP_SCALE_BIAS: {
            /* Submodel k's vectors follow those of submodels 0 .. k-1. The activation that
             * follows, if any, is fused in (and then skipped). */
            const uint8_t next = l + 1 < net->num_layers ? net->layers[l + 1].op : 0u;
            const uint8_t act = next == REDS_OP_RELU         ? REDS_ACT_RELU
                                : next == REDS_OP_LEAKY_RELU ? REDS_ACT_LEAKY_RELU
                                                             : REDS_ACT_NONE;
            uint32_t off = 0;
            for (j = 0; j < k; ++j)
                off += net->widths[j * stride + l + 1];
            reds_scale_bias_f32(L->scale + off, L->shift + off, cout, (uint32_t)L->out_h * L->out_w, x, act,
                                act == REDS_ACT_LEAKY_RELU ? net->layers[l + 1].slope : 0.0f);
            if (act != REDS_ACT_NONE)
                ++l;
            continue;
        }
        case REDS_OP_RELU:
            reds_relu_f32(x, out_n);
            continue;
        case REDS_OP_LEAKY_RELU:
            reds_leaky_relu_f32(x, out_n, L->slope);
            continue;
        default: /* REDS_OP_FLATTEN: C x H x W is already the flat order */
            continue;
        }
        x = y;
        at_start = !at_start;
    }
    return x;
}
