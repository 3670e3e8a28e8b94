/*
 * Number formatting without stdio, for the serial protocol: exact float32 text (as
 * printf("%.9g") prints it, so it reads back to the same bits), unsigned decimals, hex.
 */
#include <string.h>

#include "reds_format.h"

uint32_t reds_format_u64(uint64_t v, char *out)
{
    char tmp[20];
    uint32_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0u);
    for (i = 0; i < n; ++i)
        out[i] = tmp[n - 1u - i];
    return n;
}

uint32_t reds_format_hex32(uint32_t v, char *out)
{
    static const char hex[] = "0123456789abcdef";
    int i;
    for (i = 0; i < 8; ++i)
        out[i] = hex[(v >> (28 - 4 * i)) & 0xFu];
    return 8u;
}

/* An unsigned integer of up to 12 x 32 bits: a float32 is m * 2^e with m < 2^24 and
 * e >= -149, so its exact decimal value m * 5^149 / 10^149 needs 24 + 346 bits. */
#define BIG_WORDS 12
typedef struct {
    uint32_t w[BIG_WORDS]; /* least significant first */
    uint32_t n;            /* words in use; 0 means zero */
} big_t;

static void big_mul(big_t *b, uint32_t m)
{
    uint64_t carry = 0;
    uint32_t i;
    for (i = 0; i < b->n; ++i) {
        const uint64_t t = (uint64_t)b->w[i] * m + carry;
        b->w[i] = (uint32_t)t;
        carry = t >> 32;
    }
    if (carry != 0u && b->n < BIG_WORDS)
        b->w[b->n++] = (uint32_t)carry;
}

static uint32_t big_divmod(big_t *b, uint32_t d)
{
    uint64_t r = 0;
    uint32_t i = b->n;
    while (i-- > 0u) {
        const uint64_t t = (r << 32) | b->w[i];
        b->w[i] = (uint32_t)(t / d);
        r = t % d;
    }
    while (b->n > 0u && b->w[b->n - 1u] == 0u)
        --b->n;
    return (uint32_t)r;
}

/* Exact: the float's full decimal expansion, rounded half-to-even to 9 significant
 * digits, laid out as %g does (fixed for exponents -4..8, else d.dddde+XX, trailing zeros
 * dropped). 9 digits identify every float32, so the text reads back to the same bits. */
uint32_t reds_format_float(float v, char *out)
{
    uint32_t bits, e, f, m, k, pos, len, i, ns;
    int32_t e2, x;
    char dig[9 * 14]; /* 9 digits per 10^9 chunk; the value has at most 112 */
    char s[9];
    char *o = out;
    big_t b;

    memcpy(&bits, &v, sizeof bits);
    e = (bits >> 23) & 0xFFu;
    f = bits & 0x7FFFFFu;
    if (e == 0xFFu && f != 0u) {
        memcpy(o, "nan", 3);
        return 3u;
    }
    if (bits >> 31)
        *o++ = '-';
    if (e == 0xFFu) {
        memcpy(o, "inf", 3);
        return (uint32_t)(o - out) + 3u;
    }
    if (e == 0u && f == 0u) {
        *o++ = '0';
        return (uint32_t)(o - out);
    }
    m = e != 0u ? (f | 0x800000u) : f;
    e2 = e != 0u ? (int32_t)e - 150 : -149;
    b.w[0] = m;
    b.n = 1;
    if (e2 >= 0) { /* an integer: m * 2^e2 */
        for (k = (uint32_t)e2; k >= 31u; k -= 31u)
            big_mul(&b, 1u << 31);
        big_mul(&b, 1u << k);
    } else { /* m * 5^-e2, with the decimal point -e2 places from the right */
        for (k = (uint32_t)-e2; k >= 13u; k -= 13u)
            big_mul(&b, 1220703125u); /* 5^13 */
        for (; k > 0u; --k)
            big_mul(&b, 5u);
    }
    pos = sizeof dig;
    while (b.n > 0u) {
        uint32_t r = big_divmod(&b, 1000000000u);
        for (i = 0; i < 9u; ++i) {
            dig[--pos] = (char)('0' + (int)(r % 10u));
            r /= 10u;
        }
    }
    while (dig[pos] == '0') /* the value is not zero: a non-zero digit exists */
        ++pos;
    len = (uint32_t)sizeof dig - pos;
    x = (int32_t)len - 1 + (e2 < 0 ? e2 : 0); /* decimal exponent of the first digit */
    for (i = 0; i < 9u; ++i)
        s[i] = i < len ? dig[pos + i] : '0';
    if (len > 9u) {
        const char c = dig[pos + 9u];
        int rest = 0, up;
        for (i = 10u; i < len; ++i)
            rest |= dig[pos + i] != '0';
        up = c > '5' || (c == '5' && (rest || ((s[8] - '0') & 1)));
        if (up) {
            int j = 8;
            while (j >= 0 && s[j] == '9')
                s[j--] = '0';
            if (j < 0) {
                s[0] = '1';
                ++x;
            } else {
                ++s[j];
            }
        }
    }
    ns = 9u;
    while (ns > 1u && s[ns - 1u] == '0')
        --ns;
    if (x >= -4 && x < 9) {
        if (x >= 0) {
            for (i = 0; i <= (uint32_t)x; ++i)
                *o++ = s[i];
            if (ns > (uint32_t)x + 1u) {
                *o++ = '.';
                for (i = (uint32_t)x + 1u; i < ns; ++i)
                    *o++ = s[i];
            }
        } else {
            *o++ = '0';
            *o++ = '.';
            for (i = 0; i < (uint32_t)(-x - 1); ++i)
                *o++ = '0';
            for (i = 0; i < ns; ++i)
                *o++ = s[i];
        }
    } else {
        const uint32_t ax = (uint32_t)(x < 0 ? -x : x);
        *o++ = s[0];
        if (ns > 1u) {
            *o++ = '.';
            for (i = 1; i < ns; ++i)
                *o++ = s[i];
        }
        *o++ = 'e';
        *o++ = x < 0 ? '-' : '+';
        *o++ = (char)('0' + (int)(ax / 10u));
        *o++ = (char)('0' + (int)(ax % 10u));
    }
    return (uint32_t)(o - out);
}

