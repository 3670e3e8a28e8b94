/*
 * Residual add, int8 reference (TFLite's, reds.quant.ops.add): x = add(x, skip), in place.
 * Each input is centred, lifted by 2^20 and brought to the common scale 2 max(sa, sb);
 * their sum is requantized to the output's scale.
 */
#include "reds_s8.h"

void reds_add_s8(int8_t *x, const int8_t *skip, uint32_t n, const reds_add_s8_t *a)
{
    uint32_t i;
    for (i = 0; i < n; ++i) {
        /* |x - z| <= 255: the lifted values fit int32 (255 * 2^20 < 2^28) */
        const int32_t ua = reds_requantize(((int32_t)x[i] - a->za) * ((int32_t)1 << REDS_ADD_LEFT_SHIFT), a->ma, a->ea);
        const int32_t ub = reds_requantize(((int32_t)skip[i] - a->zb) * ((int32_t)1 << REDS_ADD_LEFT_SHIFT), a->mb, a->eb);
        const int64_t v = (int64_t)reds_requantize(reds_sat32((int64_t)ua + ub), a->mo, a->eo) + a->zy;
        x[i] = (int8_t)(v < a->lo ? a->lo : (v > a->hi ? a->hi : v));
    }
}
