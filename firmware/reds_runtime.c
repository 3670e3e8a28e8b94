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

/* Batch norm followed by ReLU or LeakyReLU, in one pass over the activations (a peephole
 * of reds_run): x = x * scale + bias, then the activation, per value. The same float
 * operations as the two layers run one after the other, so the result has the same bits;
 * the values are loaded and stored once instead of twice. ReLU clears a value whose sign
 * bit is set (as reds_relu_f32 does); else LeakyReLU multiplies a negative value by slope. */
static void scale_bias_act(const float *scale, const float *bias, uint32_t c, uint32_t hw, float *x,
                           int relu, float slope)
{
    uint32_t ch, p, u0, u1, u2, u3;
    for (ch = 0; ch < c; ++ch) {
        const float a = scale[ch], b = bias[ch];
        float *xc = x + ch * hw;
        if (relu) {
            for (p = 0; p + 4 <= hw; p += 4) {
                const float v0 = xc[p] * a + b, v1 = xc[p + 1] * a + b;
                const float v2 = xc[p + 2] * a + b, v3 = xc[p + 3] * a + b;
                memcpy(&u0, &v0, 4);
                memcpy(&u1, &v1, 4);
                memcpy(&u2, &v2, 4);
                memcpy(&u3, &v3, 4);
                u0 &= ~(uint32_t)((int32_t)u0 >> 31);
                u1 &= ~(uint32_t)((int32_t)u1 >> 31);
                u2 &= ~(uint32_t)((int32_t)u2 >> 31);
                u3 &= ~(uint32_t)((int32_t)u3 >> 31);
                memcpy(xc + p, &u0, 4);
                memcpy(xc + p + 1, &u1, 4);
                memcpy(xc + p + 2, &u2, 4);
                memcpy(xc + p + 3, &u3, 4);
            }
            for (; p < hw; ++p) {
                const float v = xc[p] * a + b;
                memcpy(&u0, &v, 4);
                u0 &= ~(uint32_t)((int32_t)u0 >> 31);
                memcpy(xc + p, &u0, 4);
            }
        } else {
            for (p = 0; p < hw; ++p) {
                const float v = xc[p] * a + b;
                xc[p] = v < 0.0f ? v * slope : v;
            }
        }
    }
}

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
            /* submodel k's vectors follow those of submodels 0 .. k-1 */
            uint32_t off = 0;
            for (j = 0; j < k; ++j)
                off += net->widths[j * stride + l + 1];
            if (l + 1 < net->num_layers && (net->layers[l + 1].op == REDS_OP_RELU ||
                                             net->layers[l + 1].op == REDS_OP_LEAKY_RELU)) {
                /* fused with the activation that follows, which is then skipped */
                scale_bias_act(L->scale + off, L->shift + off, cout, (uint32_t)L->out_h * L->out_w, x,
                               net->layers[l + 1].op == REDS_OP_RELU, net->layers[l + 1].slope);
                ++l;
                continue;
            }
            reds_scale_bias_f32(L->scale + off, L->shift + off, cout, (uint32_t)L->out_h * L->out_w, x);
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
