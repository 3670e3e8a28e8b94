/*
 * Host harness of one kernel: reads a test case on stdin, runs the kernel of its op once,
 * writes the output floats on stdout. tests/test_kernels.py writes the cases (seeded
 * random shapes, every submodel width, both layouts) and compares with PyTorch.
 *
 * Build: cc -std=c99 -I firmware/src [-I firmware/src/kernels/<target>] tests/c/kernel_harness.c
 *        firmware/src/reds_weights.c <one kernel set: firmware/src/kernels/...>
 * Case (native byte order): 19 uint32 (op, layout, K, k, kh, kw, sh, sw, pad_t, pad_b,
 * pad_l, pad_r, in_h, in_w, out_h, out_w, elem, act, post), float32 slope, then K
 * pairs of uint32 (input width, output width) of submodels 0..K-1, submodel k's segment
 * table as the exporter writes it (uint32 count, then o0 o1 first n per group; uint32
 * count, then off step lo hi per segment; both 0 but for conv and dense), then five float32
 * arrays, each as uint32 count + values: weight, bias, scale, shift, input x.
 * post, the store step of conv, depthwise and dense: 0 none, 1 the bias, 2 a fused batch
 * norm (scale, shift); each with the activation act.
 * Output: the kernel's output (cout x out_h x out_w floats; in-place ops: x).
 * A harness (not the runtime) may use stdio and malloc.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "case_reader.h"
#include "reds.h"

int main(void)
{
    uint32_t f[19], K, k, j, nw, nb, ns, nt, nx, cin, cout, out_n, ng, nsg;
    reds_group_t *groups;
    reds_seg_t *segs;
    uint16_t widths[2 * REDS_MAX_SUBMODELS];
    float slope, *weight, *bias, *scale, *shift, *x, *y;
    reds_layer_t L;
    reds_weights_t w;
    reds_post_t post;

    case_in = stdin;
    for (j = 0; j < 19u; ++j)
        f[j] = u32();
    if (fread(&slope, sizeof slope, 1, case_in) != 1)
        return 3;
    K = f[2];
    k = f[3];
    if (K == 0u || K > REDS_MAX_SUBMODELS || k >= K)
        return 4;
    for (j = 0; j < 2u * K; ++j)
        widths[j] = (uint16_t)u32();
    segment_table(&groups, &ng, &segs, &nsg);
    weight = array(&nw, sizeof(float));
    bias = array(&nb, sizeof(float));
    scale = array(&ns, sizeof(float));
    shift = array(&nt, sizeof(float));
    x = array(&nx, sizeof(float));

    memset(&L, 0, sizeof L);
    L.op = (uint8_t)f[0];
    L.kh = (uint8_t)f[4];
    L.kw = (uint8_t)f[5];
    L.sh = (uint8_t)f[6];
    L.sw = (uint8_t)f[7];
    L.pad_t = (uint8_t)f[8];
    L.pad_b = (uint8_t)f[9];
    L.pad_l = (uint8_t)f[10];
    L.pad_r = (uint8_t)f[11];
    L.in_h = (uint16_t)f[12];
    L.in_w = (uint16_t)f[13];
    L.out_h = (uint16_t)f[14];
    L.out_w = (uint16_t)f[15];
    L.elem = f[16];
    L.slope = slope;
    L.weight = weight;
    L.bias = f[18] == 1u ? bias : NULL;
    post.scale = f[18] == 2u ? scale : NULL;
    post.shift = f[18] == 2u ? shift : L.bias;
    post.act = (uint8_t)f[17];
    post.slope = slope;
    cin = widths[2u * k];
    cout = widths[2u * k + 1u];
    w.base = weight;
    w.groups = groups;
    w.ngroups = ng;
    w.segs = segs;
    w.elem = L.elem; /* the layout (f[1]) is all in the segment table */

    out_n = cout * L.out_h * L.out_w;
    y = calloc(out_n ? out_n : 1u, sizeof(float));
    if (y == NULL)
        return 3;
    switch (L.op) {
    case REDS_OP_CONV2D:
        reds_conv2d_f32(&L, &w, &post, cin, cout, x, y);
        break;
    case REDS_OP_DEPTHWISE_CONV2D:
        reds_depthwise_conv2d_f32(&L, &post, cout, x, y);
        break;
    case REDS_OP_DENSE:
        reds_dense_f32(&L, &w, &post, cin, cout, x, y);
        break;
    case REDS_OP_AVG_POOL:
        reds_avg_pool_f32(&L, cout, x, y);
        break;
    case REDS_OP_MAX_POOL:
        reds_max_pool_f32(&L, cout, x, y);
        break;
    case REDS_OP_SCALE_BIAS:
        reds_scale_bias_f32(scale, shift, cout, (uint32_t)L.out_h * L.out_w, x, (uint8_t)f[17], slope);
        memcpy(y, x, out_n * sizeof(float));
        break;
    case REDS_OP_RELU:
        reds_relu_f32(x, out_n);
        memcpy(y, x, out_n * sizeof(float));
        break;
    case REDS_OP_LEAKY_RELU:
        reds_leaky_relu_f32(x, out_n, slope);
        memcpy(y, x, out_n * sizeof(float));
        break;
    case REDS_OP_ADD: /* the skip tensor travels as the weight array */
        if (nw < out_n)
            return 4;
        reds_add_f32(x, weight, out_n);
        memcpy(y, x, out_n * sizeof(float));
        break;
    default:
        return 5;
    }
    if (fwrite(y, sizeof(float), out_n, stdout) != out_n)
        return 3;
    (void)nw;
    (void)nb;
    (void)ns;
    (void)nt;
    (void)nx;
    free(groups);
    free(segs);
    free(weight);
    free(bias);
    free(scale);
    free(shift);
    free(x);
    free(y);
    return 0;
}
