/*
 * What the optimized int8 convolutions share: one output channel's store step with its
 * constants in registers (chan_s8_t: reds_store_s8 with the requantization record's values
 * loaded once per channel, since every int8 store may alias them; the common step in 5
 * instructions, store_fast_s8, where the sums cannot overflow), and the dot product of
 * a kernel window with one input channel without bounds checks: on a copy of the input
 * padded with zx, sum x * w less zx times the kernel's weight sum (exact integers, so the
 * reference's sum of (x - zx) * w over the taps inside the input). An input too large for
 * the copy runs the reference's loop (ref_window_s8.h). Internal to firmware/src/kernels/cortex_m/.
 */
#ifndef REDS_CORTEX_M_WINDOW_S8_H
#define REDS_CORTEX_M_WINDOW_S8_H

#include <string.h>

#include "dsp_s8.h"
#include "reds_s8.h"

/* The reference's window loop, kernels/reference/ref_window_s8.h: beside this file where a
 * build copies the kernel headers into one folder (make, PlatformIO: see
 * reds.build.firmware.headers), one folder over where the files stay in firmware/src/
 * (the Arduino builder, bare-metal builds, the tests: their -I has no reference folder). */
#if defined(__has_include)
#if __has_include("ref_window_s8.h")
#define REDS_REF_WINDOW_S8 "ref_window_s8.h"
#endif
#endif
#ifndef REDS_REF_WINDOW_S8
#define REDS_REF_WINDOW_S8 "../reference/ref_window_s8.h"
#endif
#include REDS_REF_WINDOW_S8

/* Output channel o's store step (reds_store_s8), its values loaded once and the rounding
 * divide's mask precomputed. Where the sums cannot reach 2^30 with the bias in them, the
 * multiplier is positive and its shift a right shift of 1 to 22 (quick: the bias starts
 * the sum, init, and the requantization is store_fast_s8's), and moreover the step has no
 * leaky ReLU and the whole int8 range as its clamp (fast: the store is store_fast_s8);
 * else init is 0 and the store reds_store_s8's arithmetic. */
typedef struct {
    int32_t bias, mult, lo, hi, zy, slope_mult; /* lo, hi: the clamp less zy */
    int left, right;                            /* the multiplier's shift: 2^left, then / 2^right */
    uint32_t mask, half;                        /* 2^right - 1 and its half (reds_rdbpot's) */
    int slope_shift, leaky;
    int32_t init; /* what a sum starts from: the bias where quick, else 0 */
    int32_t zr;   /* zy 2^right, where fast */
    int quick, fast;
} chan_s8_t;

/* Channel o's step, for sums of `taps` products (x - zx) w, each at most 255 x 128 (twice
 * that bound, so that a sum from x w less zx times the weight sum stays in range too). */
REDS_S8_INLINE void chan_s8(const reds_requant_t *q, uint32_t o, uint32_t taps, chan_s8_t *c)
{
    const int e = q->shift[o];
    uint64_t most;
    c->bias = q->bias ? q->bias[o] : 0;
    c->mult = q->mult[o];
    c->left = e > 0 ? e : 0;
    c->right = e < 0 ? -e : 0;
    c->mask = ((uint32_t)1 << c->right) - 1u;
    c->half = c->mask >> 1;
    c->zy = q->zy;
    c->lo = q->lo - q->zy;
    c->hi = q->hi - q->zy;
    c->leaky = q->leaky;
    c->slope_mult = q->slope_mult;
    c->slope_shift = q->slope_shift;
    most = (uint64_t)taps * (2u * 255u * 128u) + (uint64_t)(c->bias < 0 ? -(int64_t)c->bias : c->bias);
    c->quick = e <= -1 && e >= -22 && c->mult > 0 && most < ((uint64_t)1 << 30);
    c->fast = c->quick && !q->leaky && q->lo == -128 && q->hi == 127;
    c->init = c->quick ? c->bias : 0;
    c->zr = c->fast ? (int32_t)((uint32_t)q->zy << c->right) : 0;
}

/* The fast store of a doubled sum a = 2 acc (|acc| < 2^30, the bias in it), 1 <= right <=
 * 22, m > 0, zr = zy 2^right: the same bits as reds_store_s8, in 5 instructions.
 * srdhm(acc, m) = floor((acc m + 2^30) / 2^31) = (a m + 2^31) >> 32 =: t. rdbpot(t, right) is
 * floor((t' + 2^(right-1)) / 2^right) with t' = t - (t < 0): t' >> right plus the last bit
 * shifted out (ASRS, ADC), and zy joins as zr before the shift (it leaves the low bits be).
 * t < 0 only where acc < 0, and where acc < 0 but t = 0, t' = -1 rounds to 0 too: so
 * t' + zr = SMMLAR(a, m, zr + (a >> 31)) (requant_fast_s8). The clamp to the int8 range is
 * SSAT. */
REDS_S8_INLINE int32_t requant_fast_s8(int32_t a, int32_t mult, int32_t right, int32_t zr)
{
    return asr_round(smmlar(a, mult, zr + (a >> 31)), right);
}

REDS_S8_INLINE int8_t store_fast_s8(int32_t a, int32_t mult, int32_t right, int32_t zr)
{
    return (int8_t)ssat8(requant_fast_s8(a, mult, right, zr));
}

/* reds_store_s8 with c's values, acc the sum from c->init: store_fast_s8 where c is fast;
 * its requantization (zr = 0), then the leaky slope and the clamp, where quick; else
 * reds_requantize's arithmetic with the mask precomputed. The same bits every way. */
REDS_S8_INLINE int8_t store_chan_s8(const chan_s8_t *c, int32_t acc)
{
    int32_t t;
    if (c->fast)
        return store_fast_s8((int32_t)((uint32_t)acc << 1), c->mult, c->right, c->zr);
    if (c->quick) {
        t = requant_fast_s8((int32_t)((uint32_t)acc << 1), c->mult, c->right, 0);
    } else {
        t = reds_add_sat32(acc, c->bias);
        if (c->left > 0)
            t = reds_sat_shl(t, c->left);
        t = reds_srdhm_m(t, c->mult);
        t = (t >> c->right) + (((uint32_t)t & c->mask) > c->half + (t < 0 ? 1u : 0u) ? 1 : 0);
    }
    if (c->leaky && t < 0)
        t = reds_requantize(t, c->slope_mult, c->slope_shift);
    t = t < c->lo ? c->lo : (t > c->hi ? c->hi : t);
    return (int8_t)(t + c->zy);
}

/* The store of a doubled sum a, from 2 init: store_fast_s8 where c is fast, else
 * store_chan_s8 of a / 2 (a is even). */
REDS_S8_INLINE int8_t store2_s8(const chan_s8_t *c, int32_t a)
{
    return c->fast ? store_fast_s8(a, c->mult, c->right, c->zr) : store_chan_s8(c, a >> 1);
}

/* The sum of a kernel's weights (kh * kw of them). */
REDS_S8_INLINE int32_t weight_sum_s8(const int8_t *wk, uint32_t n)
{
    int32_t s = 0;
    uint32_t j;
    for (j = 0; j < n; ++j)
        s += wk[j];
    return s;
}

/* The padded copy of the input the windows read: zx in the padding, so a tap there adds
 * (zx - zx) * w = 0, exactly the reference's padding, and every window is inside. */
#define PAD_MAX_BYTES 2048u /* on the stack; a larger input runs the reference's loop */
#define PAD_ROOM 4u         /* bytes a padded copy keeps free after it (row3_s8 reads one past) */

REDS_S8_INLINE uint32_t padded_w(const reds_layer_t *L) { return (uint32_t)L->in_w + L->pad_l + L->pad_r; }
REDS_S8_INLINE uint32_t padded_size(const reds_layer_t *L)
{
    return ((uint32_t)L->in_h + L->pad_t + L->pad_b) * padded_w(L);
}

/* Input channel xc into buf's inside (rows of padded_w, from pad_t, pad_l), the padding
 * left as it is. A row of 4 bytes or more is words, the last one ending the row (it may
 * overlap the one before): no byte loop. */
REDS_S8_INLINE void pad_copy(const reds_layer_t *L, const int8_t *xc, int8_t *buf)
{
    const uint32_t pw = padded_w(L), iw = L->in_w;
    const int8_t *const end = xc + (uint32_t)L->in_h * iw;
    int8_t *d = buf + (uint32_t)L->pad_t * pw + L->pad_l;
    uint32_t j;
    if (iw < 4u) {
        for (; xc < end; xc += iw, d += pw)
            for (j = 0; j < iw; ++j)
                d[j] = xc[j];
        return;
    }
    for (; xc < end; xc += iw, d += pw) {
        int32_t v;
        for (j = 0; j + 4u < iw; j += 4u) {
            v = load4(xc + j);
            memcpy(d + j, &v, sizeof v);
        }
        v = load4(xc + iw - 4u);
        memcpy(d + iw - 4u, &v, sizeof v);
    }
}

/* Input channel xc into buf (padded_size bytes), the padding filled with zx. */
REDS_S8_INLINE void pad_channel(const reds_layer_t *L, const int8_t *xc, int32_t zx, int8_t *buf)
{
    memset(buf, zx, padded_size(L));
    pad_copy(L, xc, buf);
}

/* acc + sum of 4 int8 products a[j] * b[j]: two unaligned words, SXTB16 twice each, two
 * SMLADs. */
REDS_S8_INLINE int32_t dot4_s8(const int8_t *a, const int8_t *b, int32_t acc)
{
    const int32_t u = load4(a), v = load4(b);
    return smlad(sxtb16_ror8(u), sxtb16_ror8(v), smlad(sxtb16(u), sxtb16(v), acc));
}

/* acc + x[0] w0 + x[1] w1 + x[2] w2, with a = pack16(w0, w2) and b = w1; reads x[3] too. */
REDS_S8_INLINE int32_t row3_s8(const int8_t *x, int32_t a, int32_t b, int32_t acc)
{
    const int32_t v = load4(x);
    return smlabb(sxtb16_ror8(v), b, smlad(sxtb16(v), a, acc));
}

/* sum x * w over the kh x kw window at xp, rows `stride` apart. */
REDS_S8_INLINE int32_t window_at_s8(const int8_t *wk, const int8_t *xp, uint32_t stride, uint32_t kh, uint32_t kw)
{
    int32_t acc = 0;
    uint32_t ky, kx;
    if (kh == 3 && kw == 3) { /* the depthwise 3x3 of every DS-CNN and MobileNet */
        acc = xp[0] * wk[0] + xp[1] * wk[1] + xp[2] * wk[2];
        xp += stride;
        acc += xp[0] * wk[3] + xp[1] * wk[4] + xp[2] * wk[5];
        xp += stride;
        return acc + xp[0] * wk[6] + xp[1] * wk[7] + xp[2] * wk[8];
    }
    if (kw == 4) { /* DS-CNN's first conv (10 x 4): a row is one word of taps */
        for (ky = 0; ky < kh; ++ky, xp += stride, wk += 4)
            acc = dot4_s8(wk, xp, acc);
        return acc;
    }
    for (ky = 0; ky < kh; ++ky, xp += stride, wk += kw) {
        for (kx = 0; kx + 4 <= kw; kx += 4) /* 4 taps of a row: two SMLADs */
            acc = dot4_s8(wk + kx, xp + kx, acc);
        for (; kx < kw; ++kx)
            acc += xp[kx] * wk[kx];
    }
    return acc;
}

/* A 3x3 channel at stride (sh, 1) with the fast store (chan_s8_t), ow >= 2: one word of x
 * holds a row of taps of two neighbouring outputs, (x0, x2) and (x1, x3) after SXTB16:
 * out0 += (x0, x2).(w0, w2) + x1 w1 (SMLAD, SMLABB), out1 += (x1, x3).(w0, w2) + x2 w1
 * (SMLAD, SMLATB); 21 instructions for their 18 MACs. w: (w0, w2), (w3, w5), (w6, w8),
 * (w1, w4), w7, doubled like init, so the sums are store_fast_s8's. On a Cortex-M4 the
 * whole channel is one assembly loop: 14 registers, the store's values read from the
 * frame; an odd last output of a row runs the same way alone. */
typedef struct {
    int32_t init, mult, right, zr; /* the caller's: the sums' start and the store's values */
    int32_t odd, step, estep;      /* dw3x3_pairs's own, in its frame: the row walk */
    const int8_t *yend;
} dw_fast_t;

#if REDS_ASM
#define DW_ROW_ASM(LOAD, A, B, BOT0, BOT1)                                                                      \
    LOAD "sxtb16 %[e], %[v]\n\t"                                                                                \
         "sxtb16 %[v], %[v], ror #8\n\t"                                                                        \
         "smlad %[s0], %[e], " A ", %[s0]\n\t"                                                                  \
         "smla" BOT0 " %[s0], %[v], " B ", %[s0]\n\t"                                                           \
         "smlad %[s1], %[v], " A ", %[s1]\n\t"                                                                  \
         "smla" BOT1 " %[s1], %[e], " B ", %[s1]\n\t"
/* the same row of taps for one output (out0 alone) */
#define DW_ONE_ASM(LOAD, A, B, BOT0)                                                                            \
    LOAD "sxtb16 %[e], %[v]\n\t"                                                                                \
         "sxtb16 %[v], %[v], ror #8\n\t"                                                                        \
         "smlad %[s0], %[e], " A ", %[s0]\n\t"                                                                  \
         "smla" BOT0 " %[s0], %[v], " B ", %[s0]\n\t"
#define DW_STORE_ASM(S)                                                                                         \
    "add %[t], %[v], " S ", asr #31\n\t"                                                                        \
    "smmlar " S ", " S ", %[e], %[t]\n\t"
REDS_S8_NOINLINE int8_t *dw3x3_pairs(const int8_t *buf, uint32_t pw, uint32_t sh, uint32_t oh, uint32_t ow,
                                     const int32_t w[5], const dw_fast_t *f, int8_t *y)
{
    const dw_fast_t k = {f->init, f->mult, f->right, f->zr, (int32_t)(ow & 1u),
                         (int32_t)(sh * pw - 2u * (ow / 2u)), (int32_t)(sh * pw), y + oh * ow};
    const int32_t a0 = w[0], a1 = w[1], a2 = w[2], b01 = w[3], b2 = w[4];
    const int8_t *r = buf, *end = buf + 2u * (ow / 2u);
    int32_t s0, s1, v, e, t;
    __asm__ volatile(
        "3:\n\t"
        "1:\n\t"
        "ldr %[s0], %[init]\n\t"
        "mov %[s1], %[s0]\n\t"
        DW_ROW_ASM("ldr %[v], [%[r]]\n\t", "%[a0]", "%[b01]", "bb", "tb")
        DW_ROW_ASM("ldr %[v], [%[r], %[pw]]\n\t", "%[a1]", "%[b01]", "bt", "tt")
        DW_ROW_ASM("ldr %[v], [%[r], %[pw], lsl #1]\n\t", "%[a2]", "%[b2]", "bb", "tb")
        "ldr %[v], %[zr]\n\t"
        "ldr %[e], %[m]\n\t"
        DW_STORE_ASM("%[s0]") DW_STORE_ASM("%[s1]")
        "ldr %[e], %[sh]\n\t"
        "asrs %[s0], %[s0], %[e]\n\t"
        "adc %[s0], %[s0], #0\n\t"
        "asrs %[s1], %[s1], %[e]\n\t"
        "adc %[s1], %[s1], #0\n\t"
        "ssat %[s0], #8, %[s0]\n\t"
        "ssat %[s1], #8, %[s1]\n\t"
        "strb %[s0], [%[y]], #1\n\t"
        "strb %[s1], [%[y]], #1\n\t"
        "add %[r], %[r], #2\n\t"
        "cmp %[r], %[end]\n\t"
        "bne 1b\n\t"
        "ldr %[t], %[odd]\n\t"
        "cmp %[t], #0\n\t"
        "beq 4f\n\t"
        "ldr %[s0], %[init]\n\t"
        DW_ONE_ASM("ldr %[v], [%[r]]\n\t", "%[a0]", "%[b01]", "bb")
        DW_ONE_ASM("ldr %[v], [%[r], %[pw]]\n\t", "%[a1]", "%[b01]", "bt")
        DW_ONE_ASM("ldr %[v], [%[r], %[pw], lsl #1]\n\t", "%[a2]", "%[b2]", "bb")
        "ldr %[v], %[zr]\n\t"
        "ldr %[e], %[m]\n\t"
        DW_STORE_ASM("%[s0]")
        "ldr %[e], %[sh]\n\t"
        "asrs %[s0], %[s0], %[e]\n\t"
        "adc %[s0], %[s0], #0\n\t"
        "ssat %[s0], #8, %[s0]\n\t"
        "strb %[s0], [%[y]], #1\n\t"
        "4:\n\t"
        "ldr %[t], %[step]\n\t"
        "add %[r], %[r], %[t]\n\t"
        "ldr %[t], %[estep]\n\t"
        "add %[end], %[end], %[t]\n\t"
        "ldr %[t], %[yend]\n\t"
        "cmp %[y], %[t]\n\t"
        "bne 3b\n\t"
        : [r] "+r"(r), [y] "+r"(y), [end] "+r"(end), [s0] "=&r"(s0), [s1] "=&r"(s1),
          [v] "=&r"(v), [e] "=&r"(e), [t] "=&r"(t)
        : [pw] "r"(pw), [a0] "r"(a0), [a1] "r"(a1), [a2] "r"(a2), [b01] "r"(b01), [b2] "r"(b2), [init] "m"(k.init),
          [m] "m"(k.mult), [sh] "m"(k.right), [zr] "m"(k.zr), [odd] "m"(k.odd), [step] "m"(k.step),
          [estep] "m"(k.estep), [yend] "m"(k.yend)
        : "cc", "memory");
    return y;
}
#else
REDS_S8_NOINLINE int8_t *dw3x3_pairs(const int8_t *buf, uint32_t pw, uint32_t sh, uint32_t oh, uint32_t ow,
                                     const int32_t w[5], const dw_fast_t *f, int8_t *y)
{
    const int32_t a0 = w[0], a1 = w[1], a2 = w[2], b0 = w[3] & 0xFFFF, b1 = w[3] >> 16, b2 = w[4];
    const int32_t init = f->init, mult = f->mult, right = f->right, zr = f->zr;
    uint32_t oy, ox;
    for (oy = 0; oy < oh; ++oy) {
        const int8_t *row = buf + oy * sh * pw;
        for (ox = 0; ox + 2u <= ow; ox += 2u, row += 2, y += 2) {
            int32_t s0, s1, v, e, o;
            v = load4(row);
            e = sxtb16(v);
            o = sxtb16_ror8(v);
            s0 = smlabb(o, b0, smlad(e, a0, init));
            s1 = smlatb(e, b0, smlad(o, a0, init));
            v = load4(row + pw);
            e = sxtb16(v);
            o = sxtb16_ror8(v);
            s0 = smlabb(o, b1, smlad(e, a1, s0));
            s1 = smlatb(e, b1, smlad(o, a1, s1));
            v = load4(row + 2u * pw);
            e = sxtb16(v);
            o = sxtb16_ror8(v);
            s0 = smlabb(o, b2, smlad(e, a2, s0));
            s1 = smlatb(e, b2, smlad(o, a2, s1));
            y[0] = store_fast_s8(s0, mult, right, zr);
            y[1] = store_fast_s8(s1, mult, right, zr);
        }
        if (ox < ow) { /* an odd last output */
            int32_t s0 = row3_s8(row, a0, b0, init);
            s0 = row3_s8(row + pw, a1, b1, s0);
            s0 = row3_s8(row + 2u * pw, a2, b2, s0);
            *y++ = store_fast_s8(s0, mult, right, zr);
        }
    }
    return y;
}
#endif

/* A 3x3 channel on its padded copy: the weights in registers as (w0, w2) pairs and w1 of
 * each row, so a row of taps is one word of x, two SXTB16, one SMLAD and one SMLABB (its
 * 4th byte, one past the window, is read and not used: the copy has room for it). */
REDS_S8_INLINE int8_t *dw3x3(const reds_layer_t *L, const int8_t *wk, const int8_t *buf, uint32_t pw, int32_t zw,
                     const chan_s8_t *k, int8_t *y)
{
    const int32_t a0 = pack16(wk[0], wk[2]), b0 = wk[1];
    const int32_t a1 = pack16(wk[3], wk[5]), b1 = wk[4];
    const int32_t a2 = pack16(wk[6], wk[8]), b2 = wk[7];
    const uint32_t sh = L->sh, sw = L->sw, oh = L->out_h, ow = L->out_w;
    uint32_t oy, ox;
    if (sw == 1 && ow >= 2 && k->fast) { /* the doubled sums store_fast_s8 takes: doubled weights */
        const int32_t w[5] = {pack16(2 * wk[0], 2 * wk[2]), pack16(2 * wk[3], 2 * wk[5]), pack16(2 * wk[6], 2 * wk[8]),
                              pack16(2 * b0, 2 * b1), 2 * b2};
        const dw_fast_t f = {2 * (k->init - zw), k->mult, k->right, k->zr, 0, 0, 0, NULL};
        return dw3x3_pairs(buf, pw, sh, oh, ow, w, &f, y);
    }
    for (oy = 0; oy < oh; ++oy) {
        const int8_t *row = buf + oy * sh * pw;
        for (ox = 0; ox < ow; ++ox, row += sw) {
            int32_t acc = k->init - zw;
            acc = row3_s8(row, a0, b0, acc);
            acc = row3_s8(row + pw, a1, b1, acc);
            acc = row3_s8(row + 2u * pw, a2, b2, acc);
            *y++ = store_chan_s8(k, acc);
        }
    }
    return y;
}

/* One output channel over one input channel's padded copy (buf, rows pw apart, room for
 * 4 bytes past it): y gets the out_h x out_w outputs; returns y moved past them. */
REDS_S8_INLINE int8_t *channel_s8(const reds_layer_t *L, const int8_t *wk, const int8_t *buf, uint32_t pw, int32_t zw,
                                  const chan_s8_t *k, int8_t *y)
{
    uint32_t oy, ox;
    if (L->kh == 3 && L->kw == 3)
        return dw3x3(L, wk, buf, pw, zw, k, y);
    for (oy = 0; oy < L->out_h; ++oy) {
        const int8_t *row = buf + oy * L->sh * pw;
        for (ox = 0; ox < L->out_w; ++ox)
            *y++ = store_chan_s8(k, k->init + window_at_s8(wk, row + ox * L->sw, pw, L->kh, L->kw) - zw);
    }
    return y;
}

#endif /* REDS_CORTEX_M_WINDOW_S8_H */
