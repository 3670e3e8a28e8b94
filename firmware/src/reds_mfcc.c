/*
 * reds_mfcc: int16 PCM -> raw MFCCs (see reds_mfcc.h). C99, float32, no malloc.
 *
 * Work buffer layout (floats): [0, n_fft) the complex FFT of n_fft/2 points, interleaved
 * (re, im); [n_fft, n_fft + n_bins) the magnitudes; once those are taken, [0, n_mels) holds
 * the log mel energies.
 *
 * Scaling: the FFT runs on pcm * window (int16 units) and the split below leaves out its 1/2,
 * so every spectrum value is 2^16 times that of (pcm / 32768) * window. One multiply by 2^-16
 * per mel energy undoes it. Scaling by a power of two is exact in binary floating point (no
 * value here comes near overflow or the subnormals: |spectrum| < 2^16 * 2^15 * window), so the
 * result is bit for bit what reading x / 32768 first and halving in the split would give.
 *
 * Float operations per frame for REDS's configuration (window 640, n_fft 1024, 257 bins,
 * 40 mels with 493 weights, 10 coefficients), counting a fused multiply-add as 2:
 *   window          640 int->float conversions + 640 mul
 *   FFT (512 cplx)  9 stages x 256 butterflies: 511 with twiddle 1 (4 add), 1793 others
 *                   (4 mul + 6 add): 19974
 *   split + |X|     257 bins x (6 mul + 9 add + 1 sqrt): 3855 + 257 sqrtf
 *   mel             493 mul-add (986) + 40 x (1 mul + 1 add) = 1066
 *   log             40 logf
 *   DCT             400 mul-add = 800
 *   total           about 26.3 k flops + 640 conversions + 257 sqrtf + 40 logf
 */
#include "reds_mfcc.h"

#include <math.h>
#include <string.h>

/* 1 / 32768 for the int16 reading, times 1/2 for the split: 2^-16, exact */
#define REDS_MFCC_SCALE 1.52587890625e-05f

/* In-place radix-2 decimation-in-time FFT of m complex points (z interleaved, already in
 * bit-reversed order). tw holds W_N^k = exp(-2 pi i k / N), N = 2m, k < m: W_len^j = W_N^(j N / len). */
static void fft_complex(float *z, uint32_t m, const float *tw)
{
    uint32_t len, half, i, j, step;
    for (len = 2u; len <= m; len <<= 1) {
        half = len >> 1;
        step = 2u * m / len; /* index in tw of W_len^1 */
        /* j = 0: the twiddle is 1 */
        for (i = 0u; i < m; i += len) {
            float *a = z + 2u * i, *b = z + 2u * (i + half);
            float br = b[0], bi = b[1];
            b[0] = a[0] - br;
            b[1] = a[1] - bi;
            a[0] += br;
            a[1] += bi;
        }
        for (j = 1u; j < half; j++) {
            const float wr = tw[2u * j * step], wi = tw[2u * j * step + 1u];
            for (i = j; i < m; i += len) {
                float *a = z + 2u * i, *b = z + 2u * (i + half);
                const float tr = wr * b[0] - wi * b[1];
                const float ti = wr * b[1] + wi * b[0];
                b[0] = a[0] - tr;
                b[1] = a[1] - ti;
                a[0] += tr;
                a[1] += ti;
            }
        }
    }
}

/* One frame from pcm[0 .. avail-1]; samples from avail to window-1 read as zero. */
static void frame(const reds_mfcc_config_t *c, const int16_t *pcm, uint32_t avail, float *work,
                  float *out)
{
    const uint32_t m = (uint32_t)c->n_fft / 2u, win = c->window, nb = c->n_bins;
    const uint32_t nm = c->n_mels, nc = c->n_mfcc;
    const float *w = c->window_fn, *tw = c->twiddle, *fw = c->mel_weights, *d = c->dct;
    float *mag = work + c->n_fft;
    uint32_t i, k, b;

    if (avail > win)
        avail = win;
    /* pack sample i as the real (i even) or imaginary (i odd) part of complex point i / 2,
     * stored at its bit-reversed position; the zero padding stays zero */
    memset(work, 0, (size_t)c->n_fft * sizeof(float));
    for (i = 0u; i < avail; i++)
        work[2u * c->bitrev[i >> 1] + (i & 1u)] = (float)pcm[i] * w[i];

    fft_complex(work, m, tw);

    /* split: with Z the FFT of z[n] = x[2n] + i x[2n+1] (Z[m] = Z[0]),
     * 2 X[k] = (Z[k] + conj Z[m-k]) - i W_N^k (Z[k] - conj Z[m-k]) */
    for (k = 0u; k < nb; k++) {
        const uint32_t p = k ? m - k : 0u;
        const float zr = work[2u * k], zi = work[2u * k + 1u];
        const float pr = work[2u * p], pi = work[2u * p + 1u];
        const float er = zr + pr, ei = zi - pi; /* 2 E */
        const float orr = zi + pi, oi = pr - zr; /* 2 O = -i (Z[k] - conj Z[m-k]) */
        const float wr = tw[2u * k], wi = tw[2u * k + 1u];
        const float xr = er + (wr * orr - wi * oi);
        const float xi = ei + (wr * oi + wi * orr);
        mag[k] = sqrtf(xr * xr + xi * xi);
    }

    /* mel energies -> log, into work[0 .. n_mels-1] (the FFT is spent) */
    for (b = 0u; b < nm; b++) {
        const uint32_t first = c->mel_first[b], count = c->mel_count[b];
        float s = 0.0f;
        for (k = 0u; k < count; k++)
            s += fw[k] * mag[first + k];
        fw += count;
        work[b] = logf(s * REDS_MFCC_SCALE + c->log_offset);
    }

    /* DCT-II: out[k] = sum_b log_mel[b] dct[b][k] */
    for (k = 0u; k < nc; k++)
        out[k] = 0.0f;
    for (b = 0u; b < nm; b++) {
        const float v = work[b];
        const float *row = d + b * nc;
        for (k = 0u; k < nc; k++)
            out[k] += v * row[k];
    }
}

void reds_mfcc_frame_f32(const reds_mfcc_config_t *c, const int16_t *pcm, float *work, float *out)
{
    frame(c, pcm, c->window, work, out);
}

void reds_mfcc_f32(const reds_mfcc_config_t *c, const int16_t *pcm, uint32_t n, float *work,
                   float *features)
{
    uint32_t f, start = 0u;
    for (f = 0u; f < c->frames; f++, start += c->stride) {
        const uint32_t avail = start < n ? n - start : 0u;
        frame(c, pcm + (avail ? start : 0u), avail, work, features + f * (uint32_t)c->n_mfcc);
    }
}
