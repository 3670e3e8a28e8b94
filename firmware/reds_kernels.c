/*
 * Reference float kernels of the reds runtime, and the weight index of both layouts.
 *
 * Plain loops, written to be obviously right: they are what optimized kernels (one file
 * per target, same names) will be tested against. Activations are C x H x W.
 * Each kernel gets its channel counts from the caller (the active submodel's row of the
 * widths table); the weights of conv and dense layers are reached through
 * reds_weight_row(), so the kernels do not care which layout the exporter chose.
 */
#include "reds.h"

unsigned reds_weight_row(const reds_weights_t *w, uint32_t o, reds_seg_t *segs)
{
    const uint32_t k = w->k, st = w->stride, e = w->elem;
    uint32_t j, m, n;
    if (w->layout != REDS_LAYOUT_NESTED) {
        segs[0].w = w->base + o * w->row_stride;
        segs[0].lo = 0;
        segs[0].hi = w->in_w[k * st];
        return 1;
    }
    /* Shell j of row o: the first submodel whose output width covers o. That shell
     * holds the row's first in_w[j] entries, at o * in_w[j] (see README.md). */
    j = 0;
    while (j < k && o >= w->out_w[j * st])
        ++j;
    segs[0].w = w->base + (uint32_t)(o * w->in_w[j * st]) * e;
    segs[0].lo = 0;
    segs[0].hi = w->in_w[j * st];
    n = 1;
    /* Every later shell m adds the inputs in_w[m-1] .. in_w[m]-1 of all its older rows,
     * stored after the block of submodel m-1 (out_w[m-1] x in_w[m-1] entries). */
    for (m = j + 1; m <= k; ++m) {
        const uint32_t i0 = w->in_w[(m - 1) * st], i1 = w->in_w[m * st];
        if (i1 > i0) {
            const uint32_t off = w->out_w[(m - 1) * st] * i0 + o * (i1 - i0);
            segs[n].w = w->base + off * e;
            segs[n].lo = i0;
            segs[n].hi = i1;
            ++n;
        }
    }
    return n;
}

/* y[oy][ox] += sum over the kernel window of one input channel x (zero padding). */
static void conv_channel(const reds_layer_t *L, const float *wk, const float *x, float *y)
{
    const int32_t ih = L->in_h, iw = L->in_w, kh = L->kh, kw = L->kw;
    const int32_t sh = L->sh, sw = L->sw, pt = L->pad_t, pl = L->pad_l;
    int32_t oy, ox, ky, kx;
    for (oy = 0; oy < (int32_t)L->out_h; ++oy) {
        for (ox = 0; ox < (int32_t)L->out_w; ++ox) {
            float acc = 0.0f;
            for (ky = 0; ky < kh; ++ky) {
                const int32_t iy = oy * sh + ky - pt;
                if (iy < 0 || iy >= ih)
                    continue;
                for (kx = 0; kx < kw; ++kx) {
                    const int32_t ix = ox * sw + kx - pl;
                    if (ix < 0 || ix >= iw)
                        continue;
                    acc += wk[ky * kw + kx] * x[iy * iw + ix];
                }
            }
            y[oy * L->out_w + ox] += acc;
        }
    }
}

void reds_conv2d_f32(const reds_layer_t *L, const reds_weights_t *w, uint32_t cin, uint32_t cout,
                     const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, out_hw = (uint32_t)L->out_h * L->out_w;
    reds_seg_t segs[REDS_MAX_SUBMODELS];
    uint32_t o, p, i;
    unsigned s, n;
    (void)cin; /* the segments cover exactly the active submodel's cin inputs */
    for (o = 0; o < cout; ++o) {
        float *yo = y + o * out_hw;
        const float b = L->bias ? L->bias[o] : 0.0f;
        for (p = 0; p < out_hw; ++p)
            yo[p] = b;
        n = reds_weight_row(w, o, segs);
        for (s = 0; s < n; ++s)
            for (i = segs[s].lo; i < segs[s].hi; ++i)
                conv_channel(L, segs[s].w + (i - segs[s].lo) * w->elem, x + i * in_hw, yo);
    }
}

void reds_depthwise_conv2d_f32(const reds_layer_t *L, uint32_t c, const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, out_hw = (uint32_t)L->out_h * L->out_w;
    const uint32_t ksize = (uint32_t)L->kh * L->kw;
    uint32_t ch, p;
    for (ch = 0; ch < c; ++ch) {
        float *yc = y + ch * out_hw;
        const float b = L->bias ? L->bias[ch] : 0.0f;
        for (p = 0; p < out_hw; ++p)
            yc[p] = b;
        conv_channel(L, L->weight + ch * ksize, x + ch * in_hw, yc);
    }
}

void reds_dense_f32(const reds_layer_t *L, const reds_weights_t *w, uint32_t cin, uint32_t cout,
                    const float *x, float *y)
{
    const uint32_t e = w->elem;
    reds_seg_t segs[REDS_MAX_SUBMODELS];
    uint32_t o, t;
    unsigned s, n;
    (void)cin;
    for (o = 0; o < cout; ++o) {
        float acc = 0.0f;
        n = reds_weight_row(w, o, segs);
        for (s = 0; s < n; ++s) {
            const float *ws = segs[s].w;
            const float *xs = x + segs[s].lo * e;
            const uint32_t len = (segs[s].hi - segs[s].lo) * e;
            for (t = 0; t < len; ++t)
                acc += ws[t] * xs[t];
        }
        y[o] = acc + (L->bias ? L->bias[o] : 0.0f);
    }
}

void reds_scale_bias_f32(const float *scale, const float *bias, uint32_t c, uint32_t hw, float *x)
{
    uint32_t ch, p;
    for (ch = 0; ch < c; ++ch) {
        const float a = scale[ch], b = bias[ch];
        float *xc = x + ch * hw;
        for (p = 0; p < hw; ++p)
            xc[p] = xc[p] * a + b;
    }
}

void reds_relu_f32(float *x, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; ++i)
        if (x[i] < 0.0f)
            x[i] = 0.0f;
}

void reds_leaky_relu_f32(float *x, uint32_t n, float slope)
{
    uint32_t i;
    for (i = 0; i < n; ++i)
        if (x[i] < 0.0f)
            x[i] *= slope;
}

void reds_avg_pool_f32(const reds_layer_t *L, uint32_t c, const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w;
    const float area = (float)((uint32_t)L->kh * L->kw);
    uint32_t ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ++ch) {
        const float *xc = x + ch * in_hw;
        for (oy = 0; oy < L->out_h; ++oy) {
            for (ox = 0; ox < L->out_w; ++ox) {
                float acc = 0.0f;
                for (ky = 0; ky < L->kh; ++ky)
                    for (kx = 0; kx < L->kw; ++kx)
                        acc += xc[(oy * L->sh + ky) * L->in_w + ox * L->sw + kx];
                *y++ = acc / area;
            }
        }
    }
}

void reds_max_pool_f32(const reds_layer_t *L, uint32_t c, const float *x, float *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w;
    uint32_t ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ++ch) {
        const float *xc = x + ch * in_hw;
        for (oy = 0; oy < L->out_h; ++oy) {
            for (ox = 0; ox < L->out_w; ++ox) {
                float best = xc[oy * L->sh * L->in_w + ox * L->sw];
                for (ky = 0; ky < L->kh; ++ky)
                    for (kx = 0; kx < L->kw; ++kx) {
                        const float v = xc[(oy * L->sh + ky) * L->in_w + ox * L->sw + kx];
                        if (v > best)
                            best = v;
                    }
                *y++ = best;
            }
        }
    }
}
