/*
 * Number formatting without stdio (reds_format.c). Each function writes into out (no NUL)
 * and returns the number of characters.
 */
#ifndef REDS_FORMAT_H
#define REDS_FORMAT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REDS_FLOAT_CHARS 16 /* "-1.17549435e-38" and the like, at most 15 */
uint32_t reds_format_float(float v, char *out);  /* exactly as printf("%.9g", (double)v) */
uint32_t reds_format_u64(uint64_t v, char *out); /* decimal, at most 20 characters */
uint32_t reds_format_hex32(uint32_t v, char *out); /* 8 lowercase hex digits */

#ifdef __cplusplus
}
#endif

#endif /* REDS_FORMAT_H */
