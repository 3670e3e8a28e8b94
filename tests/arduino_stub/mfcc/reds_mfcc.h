/* Stand-in for firmware/src/reds_mfcc.h (tests only), used by tests/test_arduino_library.py
 * only while the library has no front end of its own: the API the KeywordSpotting sketch
 * calls. With the real header present, the test compiles against that one. */
#ifndef REDS_MFCC_H
#define REDS_MFCC_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef struct reds_mfcc_config reds_mfcc_config_t;
void reds_mfcc_f32(const reds_mfcc_config_t *c, const int16_t *pcm, uint32_t n, float *work, float *features);
#ifdef __cplusplus
}
#endif
#endif
