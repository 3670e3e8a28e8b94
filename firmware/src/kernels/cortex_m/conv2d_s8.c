/*
 * conv2d, int8, optimized for a Cortex-M4 (ACLE DSP instructions and inline assembly where
 * __ARM_FEATURE_DSP, the same arithmetic in plain C99 elsewhere).
 * - Pointwise convs (1x1, stride 1, no padding) of up to PW_MAX_CIN inputs run 2 pixels x
 *   2 output channels at a time: up to 32 pixel pairs are widened once to int16 (x - zx)
 *   in a stack buffer, per quad of channels (x0, x2), (x1, x3) of one pixel then the
 *   other; each pair of rows widens (SXTB16) and doubles its weights once for all of
 *   them. Per quad 2 LDMs and 8 SMLADs make 16 MACs; the store is window_s8.h's fast one
 *   (5 instructions) where the step allows. A wider input runs 4 rows per pixel.
 * - The first conv of a one-channel input with rows of 3 or 4 taps widens its padded input
 *   to int16 once and runs two output channels at a time (conv1).
 * - Every other conv reads a copy of its input padded with zx, every window without
 *   bounds checks (window_s8.h); an input too large for the copy runs the reference's loop.
 * Integer sums are exact in any order, so every path gives the reference's bits.
 * Stack: the pointwise path keeps about 14 KiB (its buffers), the others under 5 KiB;
 * each path has a frame of its own.
 * Reference: kernels/reference/conv2d_s8.c.
 */
#include <string.h>

#include "dsp_s8.h"
#include "reds_s8.h"
#include "rows.h"
#include "window_s8.h"

/* ---- rows.h's row blocking, over int8 weights --------------------------------------- */
ROW_CHUNKS(row_chunks_s8, chunk_s8_t, int8_t, reds_weights_s8_t)

/* ---- the kernel ---------------------------------------------------------------------- */

/* A pointwise conv's 4 rows o .. o + 3 (nr of them real) over the hw pixels of x. */
static void pointwise4(const chunk_s8_t *c, unsigned n, uint32_t hw, const int8_t *x, const reds_requant_t *q,
                       uint32_t o, unsigned nr, int8_t *y)
{
    const int32_t zx = q->zx;
    uint32_t p, i;
    unsigned s, r;
    for (p = 0; p < hw; ++p) {
        const int8_t *xp = x + p;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        for (s = 0; s < n; ++s) {
            const uint32_t lo = c[s].lo, hi = c[s].hi;
            const int8_t *w0 = c[s].w[0] - lo, *w1 = c[s].w[1] - lo, *w2 = c[s].w[2] - lo, *w3 = c[s].w[3] - lo;
            for (i = lo; i + 4 <= hi; i += 4) {
                const int8_t *xi = xp + i * hw;
                const int32_t x0 = (int32_t)xi[0] - zx, x1 = (int32_t)xi[hw] - zx;
                const int32_t x2 = (int32_t)xi[2 * hw] - zx, x3 = (int32_t)xi[3 * hw] - zx;
                const int32_t x02 = pack16(x0, x2), x13 = pack16(x1, x3);
                int32_t v;
                v = load4(w0 + i);
                a0 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a0));
                v = load4(w1 + i);
                a1 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a1));
                v = load4(w2 + i);
                a2 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a2));
                v = load4(w3 + i);
                a3 = smlad(sxtb16_ror8(v), x13, smlad(sxtb16(v), x02, a3));
            }
            for (; i < hi; ++i) {
                const int32_t v = (int32_t)xp[i * hw] - zx;
                a0 += v * w0[i];
                a1 += v * w1[i];
                a2 += v * w2[i];
                a3 += v * w3[i];
            }
        }
        for (r = 0; r < nr; ++r) {
            const int32_t a = r == 0 ? a0 : (r == 1 ? a1 : (r == 2 ? a2 : a3));
            y[(o + r) * hw + p] = reds_store_s8(q, o + r, a);
        }
    }
}

/* The buffered path's limit on input channels (its buffers are on the stack). */
#define PW_MAX_CIN 512u
#define PW_MAX_QUADS (PW_MAX_CIN / 4u)
/* Pixel pairs widened at once: each row pair's weights are widened once for all of them. */
#define PW_MAX_PAIRS 32u

/* The fast stores of pointwise_rows2's pairs: per row its multiplier, shift and zr
 * (store_fast_s8's), then hw; and the sums' doubled starts. */
typedef struct {
    int32_t m0, e0, z0, m1, e1, z1, hw, i0, i1;
} pw_fast_t;

/* wq's end is on a PW_WQ_ALIGN boundary and its span (at most 4 PW_MAX_QUADS words) no more
 * than that: the assembly's loop over a row pair's quads ends where bits 5 .. 10 of its
 * pointer are 0 (the steps are 32 bytes or more), so it needs no register for the end. */
#define PW_WQ_ALIGN 2048u

/* Pairs of pixels for rows o, o + 1, both fast, both pixels real, cin whole pairs of quads:
 * xb the pairs' inputs one after another (wq's words each), y row o's outputs from the
 * first pair's pixel 0, ye where they end. The assembly holds the 4 sums of a 2 x 2 tile
 * in r8 - r11, a quad's 4 words of inputs (pixel 0's, pixel 1's) in r0 - r3 and its 4 of
 * weights (row o's, row o + 1's) in r4 - r7, the two pointers in r12 and lr: per quad 2
 * LDMs and 8 SMLADs make 16 MACs (42 instructions for 64 MACs a turn of four quads, two
 * where the pairs of quads are odd); the stores then read the steps from the frame (one
 * LDM), 6 instructions each. */
#if REDS_ASM
typedef struct {
    int32_t i0, i1;                       /* [0], [4]: the sums' doubled starts */
    const int32_t *w0;                    /* [8]: wq */
    int32_t m0, e0, z0, m1, e1, z1, hw;   /* [12] .. [36]: the stores' steps, r0 - r6 */
    int8_t *y;                            /* [40]: r7, the next pair's outputs */
    const int8_t *ye;                     /* [44] */
} pw_run_t;

#define PW_QUAD_ASM                                                                                             \
    "ldm r12!, {r0-r3}\n\t"                                                                                     \
    "ldm lr!, {r4-r7}\n\t"                                                                                      \
    "smlad r8, r4, r0, r8\n\t"                                                                                  \
    "smlad r9, r4, r2, r9\n\t"                                                                                  \
    "smlad r10, r6, r0, r10\n\t"                                                                                \
    "smlad r11, r6, r2, r11\n\t"                                                                                \
    "smlad r8, r5, r1, r8\n\t"                                                                                  \
    "smlad r9, r5, r3, r9\n\t"                                                                                  \
    "smlad r10, r7, r1, r10\n\t"                                                                                \
    "smlad r11, r7, r3, r11\n\t"

/* store_fast_s8 of sum A with (M, E, Z) in registers, to [Y], lr the scratch */
#define PW_STORE_ASM(A, M, E, Z, Y)                                                                             \
    "add lr, " Z ", " A ", asr #31\n\t"                                                                         \
    "smmlar lr, " A ", " M ", lr\n\t"                                                                           \
    "asrs lr, lr, " E "\n\t"                                                                                    \
    "adc lr, lr, #0\n\t"                                                                                        \
    "ssat lr, #8, lr\n\t"                                                                                       \
    "strb lr, " Y "\n\t"

#define PW_PAIRS_ASM(TILE)                                                                                      \
    __asm__ volatile("push {r0}\n\t" /* the record: [sp] */                                                     \
                     "2:\n\t"                                                                                   \
                     "ldm r0, {r8, r10, lr}\n\t"                                                                \
                     "mov r9, r8\n\t"                                                                           \
                     "mov r11, r10\n\t"                                                                         \
                     "1:\n\t" TILE                                                                              \
                     "tst lr, #0x7E0\n\t"                                                                       \
                     "bne 1b\n\t"                                                                               \
                     "ldr lr, [sp]\n\t"                                                                         \
                     "add lr, lr, #12\n\t"                                                                      \
                     "ldm lr, {r0-r7}\n\t"                                                                      \
                     PW_STORE_ASM("r8", "r0", "r1", "r2", "[r7]")                                               \
                     PW_STORE_ASM("r9", "r0", "r1", "r2", "[r7, #1]")                                           \
                     PW_STORE_ASM("r10", "r3", "r4", "r5", "[r7, r6]")                                          \
                     "add r6, r6, #1\n\t"                                                                       \
                     PW_STORE_ASM("r11", "r3", "r4", "r5", "[r7, r6]")                                          \
                     "add r7, r7, #2\n\t"                                                                       \
                     "ldr r0, [sp]\n\t"                                                                         \
                     "str r7, [r0, #40]\n\t"                                                                    \
                     "ldr r1, [r0, #44]\n\t"                                                                    \
                     "cmp r7, r1\n\t"                                                                           \
                     "bne 2b\n\t"                                                                               \
                     "add sp, sp, #4\n\t"                                                                       \
                     : "+r"(r0), "+r"(r12)                                                                      \
                     :                                                                                          \
                     : "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "lr", "cc", "memory")

REDS_S8_NOINLINE void pw_pairs_fast(const int32_t *wq, uint32_t words, const int32_t *xb, const pw_fast_t *f,
                                    int8_t *y, const int8_t *ye)
{
    pw_run_t run = {f->i0, f->i1, wq, f->m0, f->e0, f->z0, f->m1, f->e1, f->z1, f->hw, y, ye};
    register pw_run_t *r0 __asm__("r0") = &run;
    register const int32_t *r12 __asm__("r12") = xb;
    if (words & 8u) /* an odd number of pairs of quads */
        PW_PAIRS_ASM(PW_QUAD_ASM PW_QUAD_ASM);
    else
        PW_PAIRS_ASM(PW_QUAD_ASM PW_QUAD_ASM PW_QUAD_ASM PW_QUAD_ASM);
}
#else
REDS_S8_NOINLINE void pw_pairs_fast(const int32_t *wq, uint32_t words, const int32_t *xb, const pw_fast_t *f,
                                    int8_t *y, const int8_t *ye)
{
    const int32_t *x = xb;
    uint32_t i;
    for (; y != ye; y += 2) {
        const int32_t *w = wq;
        int32_t a00 = f->i0, a01 = f->i0, a10 = f->i1, a11 = f->i1; /* a<row><pixel> */
        for (i = 0; i < words; i += 4, x += 4, w += 4) {
            a00 = smlad(w[1], x[1], smlad(w[0], x[0], a00));
            a01 = smlad(w[1], x[3], smlad(w[0], x[2], a01));
            a10 = smlad(w[3], x[1], smlad(w[2], x[0], a10));
            a11 = smlad(w[3], x[3], smlad(w[2], x[2], a11));
        }
        y[0] = store_fast_s8(a00, f->m0, f->e0, f->z0);
        y[1] = store_fast_s8(a01, f->m0, f->e0, f->z0);
        y[f->hw] = store_fast_s8(a10, f->m1, f->e1, f->z1);
        y[f->hw + 1] = store_fast_s8(a11, f->m1, f->e1, f->z1);
    }
}
#endif

/* Rows o, o + 1 (k0, k1 their steps; nr of them real) of a pointwise conv over nb pixel
 * pairs from pixel p: wq holds both rows' weights widened and doubled, per quad of inputs
 * row o's (w0, w2), (w1, w3), then row o + 1's; xb the pairs' inputs x - zx, per quad
 * pixel 0's (x0, x2), (x1, x3), then pixel 1's, `words` words a pair (whole pairs of
 * quads). The sums are doubled, as store_fast_s8 takes them. Where both rows are fast,
 * the pairs of two real pixels run pw_pairs_fast; the rest (a last single pixel, a step
 * that is not fast) run here. */
static void pointwise_rows2(const int32_t *wq, uint32_t words, const int32_t *xb, uint32_t nb, const chan_s8_t *k0,
                            const chan_s8_t *k1, unsigned nr, uint32_t p, uint32_t hw, int8_t *y)
{
    const int32_t i0 = 2 * k0->init, i1 = 2 * k1->init;
    uint32_t j = 0, i;
    if (k0->fast && k1->fast && nr == 2u) {
        const uint32_t full = p + 2u * nb <= hw ? nb : nb - 1u;
        const pw_fast_t f = {k0->mult, k0->right, k0->zr, k1->mult, k1->right, k1->zr, (int32_t)hw, i0, i1};
        if (full > 0) {
            pw_pairs_fast(wq, words, xb, &f, y + p, y + p + 2u * full);
            j = full;
            xb += full * words;
            p += 2u * full;
        }
    }
    for (; j < nb; ++j, p += 2u) {
        const int32_t *w = wq;
        int32_t a00 = i0, a01 = i0, a10 = i1, a11 = i1; /* a<row><pixel> */
        for (i = 0; i < words; i += 4, xb += 4, w += 4) {
            a00 = smlad(w[1], xb[1], smlad(w[0], xb[0], a00));
            a01 = smlad(w[1], xb[3], smlad(w[0], xb[2], a01));
            a10 = smlad(w[3], xb[1], smlad(w[2], xb[0], a10));
            a11 = smlad(w[3], xb[3], smlad(w[2], xb[2], a11));
        }
        y[p] = store2_s8(k0, a00);
        if (p + 1u < hw)
            y[p + 1u] = store2_s8(k0, a01);
        if (nr > 1) {
            y[hw + p] = store2_s8(k1, a10);
            if (p + 1u < hw)
                y[hw + p + 1u] = store2_s8(k1, a11);
        }
    }
}

/* 2 bytes as the low halfword: one LDRH (the M4 reads unaligned halfwords) */
static inline uint32_t load2(const int8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Pixels p0, p0 + 1 of x (channels hw apart) into b as pointwise_rows2 reads them: per quad
 * pixel 0's (x0 - zx, x2 - zx), (x1 - zx, x3 - zx), then pixel 1's. The two pixels of a
 * channel are one halfword, so per 2 channels 2 LDRHs, one ORR and 2 SXTAB16s onto
 * (-zx, -zx). A last single pixel (one) is both pixels; the channels from cin to 4 quads
 * are 0. */
static void widen_pair(const int8_t *x, uint32_t hw, uint32_t cin, uint32_t quads, uint32_t p0, int one, int32_t zx,
                       int32_t *b)
{
    const int32_t nz = (int32_t)(((uint32_t)-zx & 0xFFFFu) * 0x10001u);
    const uint32_t full = one ? 0u : cin / 4u, p1 = one ? p0 : p0 + 1u;
    const int8_t *xp = x + p0;
    uint32_t i, t;
    for (i = 0; i < full; ++i, xp += 4u * hw, b += 4) {
        const int32_t v02 = (int32_t)(load2(xp) | load2(xp + 2u * hw) << 16);
        const int32_t v13 = (int32_t)(load2(xp + hw) | load2(xp + 3u * hw) << 16);
        b[0] = sxtab16(nz, v02);
        b[1] = sxtab16(nz, v13);
        b[2] = sxtab16_ror8(nz, v02);
        b[3] = sxtab16_ror8(nz, v13);
    }
    for (; i < quads; ++i, b += 4) {
        int32_t v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (t = 0; t < 4u && 4u * i + t < cin; ++t) {
            v[t] = (int32_t)x[(4u * i + t) * hw + p0] - zx;
            v[4u + t] = (int32_t)x[(4u * i + t) * hw + p1] - zx;
        }
        b[0] = pack16(v[0], v[2]);
        b[1] = pack16(v[1], v[3]);
        b[2] = pack16(v[4], v[6]);
        b[3] = pack16(v[5], v[7]);
    }
}

/* Both halfwords of a word doubled (SXTB16's, so no carry between them) */
static inline int32_t twice16(int32_t v) { return (int32_t)(((uint32_t)v << 1) & 0xFFFEFFFEu); }

/* A quad of weights of a row, 4 int8 at w, into wq's (w0, w2), (w1, w3), doubled. */
static inline void widen_quad(const int8_t *w, int32_t *wq)
{
    const int32_t v = load4(w);
    wq[0] = twice16(sxtb16(v));
    wq[1] = twice16(sxtb16_ror8(v));
}

/* A pointwise conv of up to PW_MAX_CIN inputs, 2 pixels x 2 rows at a time: as many pixel
 * pairs as the buffer holds (at most PW_MAX_PAIRS) are widened at once, and each pair of
 * rows widens its weights once for all of them, doubled (so the sums are doubled, as
 * store_fast_s8 takes them): from its segments straight where every chunk starts on a
 * quad and cin is whole quads, else from a copy of the row (whatever the submodels'
 * widths), its last quad padded with zeros. */
REDS_S8_NOINLINE void pointwise_buffered(const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin, uint32_t cout,
                               uint32_t hw, const int8_t *x, int8_t *y)
{
    int32_t xb[4u * PW_MAX_QUADS * 4u]; /* 4 pairs of PW_MAX_CIN, 32 of 64 (8 KB) */
    int32_t wbuf[2u * PW_WQ_ALIGN / sizeof(int32_t)]; /* wq (4 PW_MAX_QUADS words), ending on a PW_WQ_ALIGN boundary */
    int8_t rows[2][PW_MAX_CIN + 4u];
    chunk_s8_t c[REDS_MAX_CHUNKS];
    chan_s8_t k0, k1;
    const uint32_t quads = ((cin + 3u) / 4u + 1u) & ~1u; /* whole pairs of quads, zeros past cin */
    const uint32_t words = 4u * quads, room = (uint32_t)(sizeof xb / sizeof xb[0]) / words;
    const uint32_t pairs = room < PW_MAX_PAIRS ? room : PW_MAX_PAIRS;
    int32_t *const wq = (int32_t *)(((uintptr_t)wbuf + 2u * PW_WQ_ALIGN) & ~(uintptr_t)(PW_WQ_ALIGN - 1u)) - words;
    uint32_t p, i, o, g, j, nb;
    unsigned n, r, s, straight;
    memset(rows, 0, sizeof rows); /* the padding past cin */
    memset(wq + (cin + 3u) / 4u * 4u, 0, (words - (cin + 3u) / 4u * 4u) * sizeof wq[0]); /* the padding quads: the
                                                                                       straight path leaves them be */
    for (p = 0; p < hw; p += 2u * nb) {
        nb = (hw - p + 1u) / 2u < pairs ? (hw - p + 1u) / 2u : pairs;
        for (j = 0; j < nb; ++j)
            widen_pair(x, hw, cin, quads, p + 2u * j, p + 2u * j + 1u >= hw, q->zx, xb + j * words);
        for (o = 0, g = 0; o < cout; o += r) {
            r = cout - o < 2 ? 1u : 2u; /* a last single row repeats row o */
            n = row_chunks_s8(w, &g, o, r, c);
            for (s = 0, straight = (cin & 3u) == 0; s < n; ++s)
                straight &= (c[s].lo & 3u) == 0;
            for (s = 0; s < n; ++s) { /* the chunks cover inputs 0 .. cin - 1 in order */
                if (straight) {
                    for (i = c[s].lo; i < c[s].hi; i += 4u) { /* quad i / 4: 4 words from wq + i */
                        widen_quad(c[s].w[0] + (i - c[s].lo), wq + i);
                        widen_quad(c[s].w[1] + (i - c[s].lo), wq + i + 2u);
                    }
                    continue;
                }
                memcpy(rows[0] + c[s].lo, c[s].w[0], c[s].hi - c[s].lo);
                memcpy(rows[1] + c[s].lo, c[s].w[1], c[s].hi - c[s].lo);
            }
            for (i = 0; !straight && i < quads; ++i) {
                widen_quad(rows[0] + 4u * i, wq + 4u * i);
                widen_quad(rows[1] + 4u * i, wq + 4u * i + 2u);
            }
            chan_s8(q, o, cin, &k0);
            chan_s8(q, o + r - 1u, cin, &k1);
            pointwise_rows2(wq, words, xb, nb, &k0, &k1, r, p, hw, y + o * hw);
        }
    }
}

/* The first conv of a one-channel input with rows of 3 or 4 taps (DS-CNN's 10 x 4, a 3 x 3):
 * the input padded and widened once, x - zx as int16 (the padding 0), rows pw apart (4
 * taps of a row are 2 words, the 4th tap of a 3-wide kernel weighs 0); each pair of output
 * channels a, b widens and doubles its kernels into one table, per kernel row a's
 * (w0, w1), (w2, w3), then b's (the sums are store_fast_s8's). Per row of a window, one
 * output of both channels: 2 words of x, 2 LDRDs of weights, 4 SMLADs (8 MACs); at a
 * horizontal stride of 2, two neighbouring outputs share a word of x: 3 words of x, 2
 * LDRDs, 8 SMLADs (16 MACs). */
#define C1_MAX 2048u /* int16 of the widened input, on the stack (4 KB) */
#define C1_MAX_KH 16u

static int conv1_fits(const reds_layer_t *L)
{
    const uint32_t ph = (uint32_t)L->in_h + L->pad_t + L->pad_b, pw = padded_w(L) + 1u;
    return L->kw >= 3 && L->kw <= 4 && L->kh <= C1_MAX_KH && ph * pw + 4u <= C1_MAX;
}

/* The rows of one window (xr: its first row of x, rows pwb bytes apart) for channels a, b:
 * k, kend the kernel table. a0, b0 += the window at xr; where TWO, a1, b1 += the one 2 taps
 * on (xr + 4 bytes). */
#if REDS_ASM
#define CONV1_ROWS1(XR, PWB, K, KEND, A0, B0)                                                                   \
    do {                                                                                                        \
        int32_t x0_, x1_, w0_, w1_;                                                                             \
        __asm__ volatile("1:\n\t"                                                                               \
                         "ldr %[x0], [%[xr]]\n\t"                                                               \
                         "ldr %[x1], [%[xr], #4]\n\t"                                                           \
                         "add %[xr], %[xr], %[pwb]\n\t"                                                         \
                         "ldrd %[w0], %[w1], [%[k]], #8\n\t"                                                    \
                         "smlad %[a0], %[w0], %[x0], %[a0]\n\t"                                                 \
                         "smlad %[a0], %[w1], %[x1], %[a0]\n\t"                                                 \
                         "ldrd %[w0], %[w1], [%[k]], #8\n\t"                                                    \
                         "smlad %[b0], %[w0], %[x0], %[b0]\n\t"                                                 \
                         "smlad %[b0], %[w1], %[x1], %[b0]\n\t"                                                 \
                         "cmp %[k], %[kend]\n\t"                                                                \
                         "bne 1b\n\t"                                                                           \
                         : [a0] "+r"(A0), [b0] "+r"(B0), [xr] "+r"(XR), [k] "+r"(K), [x0] "=&r"(x0_),           \
                           [x1] "=&r"(x1_), [w0] "=&r"(w0_), [w1] "=&r"(w1_)                                    \
                         : [pwb] "r"(PWB), [kend] "r"(KEND)                                                     \
                         : "cc", "memory");                                                                     \
    } while (0)
#define CONV1_ROWS2(XR, PWB, K, KEND, A0, B0, A1, B1)                                                           \
    do {                                                                                                        \
        int32_t x0_, x1_, x2_, w0_, w1_;                                                                        \
        __asm__ volatile("1:\n\t"                                                                               \
                         "ldr %[x0], [%[xr]]\n\t"                                                               \
                         "ldr %[x1], [%[xr], #4]\n\t"                                                           \
                         "ldr %[x2], [%[xr], #8]\n\t"                                                           \
                         "add %[xr], %[xr], %[pwb]\n\t"                                                         \
                         "ldrd %[w0], %[w1], [%[k]], #8\n\t"                                                    \
                         "smlad %[a0], %[w0], %[x0], %[a0]\n\t"                                                 \
                         "smlad %[a0], %[w1], %[x1], %[a0]\n\t"                                                 \
                         "smlad %[a1], %[w0], %[x1], %[a1]\n\t"                                                 \
                         "smlad %[a1], %[w1], %[x2], %[a1]\n\t"                                                 \
                         "ldrd %[w0], %[w1], [%[k]], #8\n\t"                                                    \
                         "smlad %[b0], %[w0], %[x0], %[b0]\n\t"                                                 \
                         "smlad %[b0], %[w1], %[x1], %[b0]\n\t"                                                 \
                         "smlad %[b1], %[w0], %[x1], %[b1]\n\t"                                                 \
                         "smlad %[b1], %[w1], %[x2], %[b1]\n\t"                                                 \
                         "cmp %[k], %[kend]\n\t"                                                                \
                         "bne 1b\n\t"                                                                           \
                         : [a0] "+r"(A0), [b0] "+r"(B0), [a1] "+r"(A1), [b1] "+r"(B1), [xr] "+r"(XR),           \
                           [k] "+r"(K), [x0] "=&r"(x0_), [x1] "=&r"(x1_), [x2] "=&r"(x2_), [w0] "=&r"(w0_),     \
                           [w1] "=&r"(w1_)                                                                      \
                         : [pwb] "r"(PWB), [kend] "r"(KEND)                                                     \
                         : "cc", "memory");                                                                     \
    } while (0)
#else
#define CONV1_ROWS1(XR, PWB, K, KEND, A0, B0)                                                                   \
    do {                                                                                                        \
        for (; K < KEND; K += 4, XR += PWB) {                                                                   \
            const int32_t x0_ = load4(XR), x1_ = load4(XR + 4);                                                 \
            A0 = smlad(K[1], x1_, smlad(K[0], x0_, A0));                                                        \
            B0 = smlad(K[3], x1_, smlad(K[2], x0_, B0));                                                        \
        }                                                                                                       \
    } while (0)
#define CONV1_ROWS2(XR, PWB, K, KEND, A0, B0, A1, B1)                                                           \
    do {                                                                                                        \
        for (; K < KEND; K += 4, XR += PWB) {                                                                   \
            const int32_t x0_ = load4(XR), x1_ = load4(XR + 4), x2_ = load4(XR + 8);                            \
            A0 = smlad(K[1], x1_, smlad(K[0], x0_, A0));                                                        \
            A1 = smlad(K[1], x2_, smlad(K[0], x1_, A1));                                                        \
            B0 = smlad(K[3], x1_, smlad(K[2], x0_, B0));                                                        \
            B1 = smlad(K[3], x2_, smlad(K[2], x1_, B1));                                                        \
        }                                                                                                       \
    } while (0)
#endif

/* Doubled sums a, b of channels ka, kb to ya, yb: store_fast_s8 where both are fast (fast,
 * tested once by the caller: GCC reloads the flags from memory otherwise), else store2_s8. */
REDS_S8_INLINE void store_ab(int fast, const chan_s8_t *ka, const chan_s8_t *kb, int32_t a, int32_t b, int8_t *ya,
                             int8_t *yb)
{
    if (fast) {
        *ya = store_fast_s8(a, ka->mult, ka->right, ka->zr);
        *yb = store_fast_s8(b, kb->mult, kb->right, kb->zr);
    } else {
        *ya = store2_s8(ka, a);
        *yb = store2_s8(kb, b);
    }
}

/* Output channels a, b (k: their kernel table, kh rows; ia, ib the sums' starts, doubled)
 * over the widened input xb (rows pw apart). */
REDS_S8_NOINLINE void conv1_pair(const reds_layer_t *L, const int16_t *xb, uint32_t pw, const int32_t *k,
                                 int32_t ia, int32_t ib, const chan_s8_t *ka, const chan_s8_t *kb, int8_t *ya,
                                 int8_t *yb)
{
    const uint32_t sh = L->sh, sw = L->sw, oh = L->out_h, ow = L->out_w, two = sw == 2u ? ow & ~1u : 0u;
    const int32_t *const kend = k + 4u * L->kh;
    const uint32_t pwb = 2u * pw; /* bytes */
    const int fast = ka->fast && kb->fast;
    uint32_t oy, ox;
    for (oy = 0; oy < oh; ++oy) {
        for (ox = 0; ox < ow; ++ox) {
            const char *xr = (const char *)(xb + oy * sh * pw + ox * sw);
            const int32_t *kk = k;
            int32_t a0 = ia, b0 = ib, a1 = ia, b1 = ib;
            if (ox < two) { /* outputs ox, ox + 1 */
                CONV1_ROWS2(xr, pwb, kk, kend, a0, b0, a1, b1);
            } else {
                CONV1_ROWS1(xr, pwb, kk, kend, a0, b0);
            }
            store_ab(fast, ka, kb, a0, b0, ya++, yb++);
            if (ox < two) {
                store_ab(fast, ka, kb, a1, b1, ya++, yb++);
                ++ox;
            }
        }
    }
}

/* A kernel (kh rows of kw int8 at wk) widened and doubled into every 4th pair of words of
 * k: (w0, w1), (w2, w3) a row, w3 = 0 where kw is 3. */
static void conv1_kernel(const int8_t *wk, uint32_t kh, uint32_t kw, int32_t *k)
{
    uint32_t ky;
    for (ky = 0; ky < kh; ++ky, wk += kw, k += 4) {
        k[0] = pack16(2 * wk[0], 2 * wk[1]);
        k[1] = pack16(2 * wk[2], kw == 4 ? 2 * wk[3] : 0);
    }
}

REDS_S8_NOINLINE void conv1(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q,
                            const int8_t *x, int8_t *y)
{
    const uint32_t pw = padded_w(L) + 1u, iw = L->in_w, ph = (uint32_t)L->in_h + L->pad_t + L->pad_b;
    const uint32_t out_hw = (uint32_t)L->out_h * L->out_w, taps = (uint32_t)L->kh * L->kw;
    union {
        int32_t align; /* word-aligned */
        int16_t h[C1_MAX];
    } xb;
    int32_t k[4u * C1_MAX_KH];
    chan_s8_t ka, kb;
    uint32_t g, o, r, c;
    memset(xb.h, 0, (ph * pw + 4u) * sizeof xb.h[0]);
    for (r = 0; r < L->in_h; ++r)
        for (c = 0; c < iw; ++c)
            xb.h[(r + L->pad_t) * pw + L->pad_l + c] = (int16_t)((int32_t)x[r * iw + c] - q->zx);
    for (g = 0; g < w->ngroups; ++g) {
        const reds_group_t *G = &w->groups[g];
        const reds_seg_t *S = &w->segs[G->first]; /* one input: one segment */
        for (o = G->o0; o < G->o1; o += 2u) {
            const uint32_t o1 = o + 1u < G->o1 ? o + 1u : o; /* a last single channel: twice */
            conv1_kernel(w->base + S->off + o * S->step, L->kh, L->kw, k);
            conv1_kernel(w->base + S->off + o1 * S->step, L->kh, L->kw, k + 2);
            chan_s8(q, o, taps, &ka);
            chan_s8(q, o1, taps, &kb);
            conv1_pair(L, xb.h, pw, k, 2 * ka.init, 2 * kb.init, &ka, &kb, y + o * out_hw, y + o1 * out_hw);
        }
    }
}

/* The general conv (the first conv, any kernel): the input copied with its padding (zx)
 * once, then per output channel the store step's values in registers and every window
 * summed without bounds checks (window_s8.h); an input too large for the copy runs the
 * reference's loop. */
REDS_S8_NOINLINE void conv_general(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin,
                         const int8_t *x, int8_t *y)
{
    const uint32_t in_hw = (uint32_t)L->in_h * L->in_w, out_hw = (uint32_t)L->out_h * L->out_w;
    const uint32_t pw = padded_w(L), psize = padded_size(L), fits = cin * psize + PAD_ROOM <= PAD_MAX_BYTES;
    const int32_t zx = q->zx;
    int8_t buf[PAD_MAX_BYTES];
    uint32_t g, o, i;
    int32_t oy, ox;
    unsigned s;
    if (cin == 1 && conv1_fits(L)) {
        conv1(L, w, q, x, y);
        return;
    }
    for (i = 0; fits && i < cin; ++i)
        pad_channel(L, x + i * in_hw, zx, buf + i * psize);
    if (fits && cin == 1) { /* the first conv of a one-channel input: a channel at a time */
        for (g = 0; g < w->ngroups; ++g) {
            const reds_group_t *G = &w->groups[g];
            const reds_seg_t *S = &w->segs[G->first]; /* one input: one segment */
            for (o = G->o0; o < G->o1; ++o) {
                const int8_t *wk = w->base + S->off + o * S->step;
                chan_s8_t k;
                chan_s8(q, o, w->elem, &k);
                channel_s8(L, wk, buf, pw, zx * weight_sum_s8(wk, w->elem), &k, y + o * out_hw);
            }
        }
        return;
    }
    for (g = 0; g < w->ngroups; ++g) {
        const reds_group_t *G = &w->groups[g];
        for (o = G->o0; o < G->o1; ++o) {
            int8_t *yo = y + o * out_hw;
            int32_t zw = 0; /* zx times the row's weight sum */
            chan_s8_t k;
            chan_s8(q, o, cin * w->elem, &k);
            for (s = 0; s < G->n; ++s) {
                const reds_seg_t *S = &w->segs[G->first + s];
                zw += weight_sum_s8(w->base + S->off + o * S->step, (S->hi - S->lo) * w->elem);
            }
            zw *= zx;
            for (oy = 0; oy < L->out_h; ++oy) {
                for (ox = 0; ox < L->out_w; ++ox) {
                    const uint32_t at = (uint32_t)oy * L->sh * pw + (uint32_t)ox * L->sw;
                    int32_t acc = k.init;
                    for (s = 0; s < G->n; ++s) {
                        const reds_seg_t *S = &w->segs[G->first + s];
                        const int8_t *ws = w->base + S->off + o * S->step;
                        if (fits)
                            for (i = S->lo; i < S->hi; ++i, ws += w->elem)
                                acc += window_at_s8(ws, buf + i * psize + at, pw, L->kh, L->kw);
                        else
                            for (i = S->lo; i < S->hi; ++i, ws += w->elem)
                                acc += window_dot_s8(L, ws, x + i * in_hw, zx, oy, ox);
                    }
                    *yo++ = store_chan_s8(&k, fits ? acc - zw : acc);
                }
            }
        }
    }
}

/* The paths keep their buffers in frames of their own (not inlined here): never two on the
 * stack at once. */
void reds_conv2d_s8(const reds_layer_t *L, const reds_weights_s8_t *w, const reds_requant_t *q, uint32_t cin,
                    uint32_t cout, const int8_t *x, int8_t *y)
{
    if (L->kh == 1 && L->kw == 1 && L->sh == 1 && L->sw == 1 && L->pad_t == 0 && L->pad_b == 0 && L->pad_l == 0 &&
        L->pad_r == 0) {
        const uint32_t hw = (uint32_t)L->in_h * L->in_w;
        chunk_s8_t c[REDS_MAX_CHUNKS];
        uint32_t o, g = 0;
        unsigned n, r;
        if (hw == 1) { /* one pixel: a dense layer (the same weights, elem 1, the same sums) */
            reds_dense_s8(L, w, q, cin, cout, x, y);
            return;
        }
        if (cin <= PW_MAX_CIN) {
            pointwise_buffered(w, q, cin, cout, hw, x, y);
            return;
        }
        for (o = 0; o < cout; o += r) {
            r = cout - o < 4 ? cout - o : 4; /* a last block of 1 to 3 rows repeats row o */
            n = row_chunks_s8(w, &g, o, r, c);
            pointwise4(c, n, hw, x, q, o, r, y);
        }
        return;
    }
    conv_general(L, w, q, cin, x, y);
}
