/*
 * The Cortex-M4 DSP instructions the int8 kernels use (ACLE where __ARM_FEATURE_DSP, one
 * instruction each), or plain C99 with the same results elsewhere (the host builds of
 * these kernels, which the tests compare with the reference bit for bit).
 * Internal to firmware/src/kernels/cortex_m/.
 */
#ifndef REDS_CORTEX_M_DSP_S8_H
#define REDS_CORTEX_M_DSP_S8_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32)
#include <arm_acle.h>
#define REDS_DSP 1

static inline int32_t sxtb16(int32_t w) { return __sxtb16(w); }
/* bytes 1 and 3 of w, sign-extended: SXTB16 with its rotation (GCC does not fuse a ROR into it) */
static inline int32_t sxtb16_ror8(int32_t w)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
    return r;
}
static inline int32_t sxtab16(int32_t a, int32_t w) { return __sxtab16(a, w); }
static inline int32_t sxtab16_ror8(int32_t a, int32_t w)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(w));
    return r;
}
static inline int32_t smlad(int32_t a, int32_t b, int32_t acc) { return __smlad(a, b, acc); }
static inline int32_t smlabb(int32_t a, int32_t b, int32_t acc) { return __smlabb(a, b, acc); }
static inline int32_t smlatb(int32_t a, int32_t b, int32_t acc) { return __smlatb(a, b, acc); }
/* c + ((a b + 2^31) >> 32): SMMLAR */
static inline int32_t smmlar(int32_t a, int32_t b, int32_t c)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
/* (x >> e) + bit e - 1 of x, 1 <= e <= 31: ASRS by a register leaves that bit in the carry */
static inline int32_t asr_round(int32_t x, int32_t e)
{
    int32_t r;
    __asm__("asrs %0, %1, %2\n\tadc %0, %0, #0" : "=&r"(r) : "r"(x), "r"(e) : "cc");
    return r;
}
/* v clamped to -128 .. 127: SSAT */
static inline int32_t ssat8(int32_t v) { return __ssat(v, 8); }
/* acc + the 4 unsigned bytes of u: USADA8 against 0 */
static inline uint32_t usada8(uint32_t u, uint32_t acc) { return __usada8(u, 0u, acc); }
#else
/* bytes 0 and 2 of w, sign-extended to the two halfwords */
static inline int32_t sxtb16(int32_t w)
{
    const uint32_t u = (uint32_t)w;
    return (int32_t)(((uint32_t)(int32_t)(int8_t)(u & 0xFFu) & 0xFFFFu) |
                     ((uint32_t)(int32_t)(int8_t)((u >> 16) & 0xFFu) << 16));
}
static inline int32_t sxtb16_ror8(int32_t w) { return sxtb16((int32_t)((uint32_t)w >> 8)); }
/* a's halfwords plus bytes 0 and 2 of w, sign-extended (each halfword modulo 2^16) */
static inline int32_t sxtab16(int32_t a, int32_t w)
{
    const uint32_t ua = (uint32_t)a, e = (uint32_t)sxtb16(w);
    return (int32_t)(((ua + e) & 0xFFFFu) | (((ua >> 16) + (e >> 16)) << 16));
}
static inline int32_t sxtab16_ror8(int32_t a, int32_t w) { return sxtab16(a, (int32_t)((uint32_t)w >> 8)); }
/* acc + lo(a) lo(b) + hi(a) hi(b), the halfwords signed */
static inline int32_t smlad(int32_t a, int32_t b, int32_t acc)
{
    const uint32_t ua = (uint32_t)a, ub = (uint32_t)b;
    return acc + (int32_t)(int16_t)(ua & 0xFFFFu) * (int16_t)(ub & 0xFFFFu) +
           (int32_t)(int16_t)(ua >> 16) * (int16_t)(ub >> 16);
}
/* acc + lo(a) lo(b), signed */
static inline int32_t smlabb(int32_t a, int32_t b, int32_t acc)
{
    return acc + (int32_t)(int16_t)((uint32_t)a & 0xFFFFu) * (int16_t)((uint32_t)b & 0xFFFFu);
}
/* acc + hi(a) lo(b), signed */
static inline int32_t smlatb(int32_t a, int32_t b, int32_t acc)
{
    return acc + (int32_t)(int16_t)((uint32_t)a >> 16) * (int16_t)((uint32_t)b & 0xFFFFu);
}
/* c + ((a b + 2^31) >> 32), arithmetic (modulo 2^32) */
static inline int32_t smmlar(int32_t a, int32_t b, int32_t c)
{
    return (int32_t)((uint32_t)c + (uint32_t)(int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 31)) >> 32));
}
/* (x >> e) + bit e - 1 of x, 1 <= e <= 31 */
static inline int32_t asr_round(int32_t x, int32_t e) { return (x >> e) + ((x >> (e - 1)) & 1); }
/* v clamped to -128 .. 127 */
static inline int32_t ssat8(int32_t v) { return v < -128 ? -128 : (v > 127 ? 127 : v); }
/* acc + the 4 unsigned bytes of u */
static inline uint32_t usada8(uint32_t u, uint32_t acc)
{
    return acc + (u & 0xFFu) + ((u >> 8) & 0xFFu) + ((u >> 16) & 0xFFu) + (u >> 24);
}
#endif

/* The kernels' assembly loops (up to 14 registers) where the DSP instructions are there and
 * the build optimizes: at -O0 GCC keeps r7 as the frame pointer and the loops would not
 * fit, so such a build runs the same arithmetic in C. */
#if defined(REDS_DSP) && defined(__OPTIMIZE__)
#define REDS_ASM 1
#endif

/* 4 bytes as a word: one LDR (the M4 reads unaligned words) */
static inline int32_t load4(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* (lo, hi) as the two signed halfwords of a word */
static inline int32_t pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}

#endif
