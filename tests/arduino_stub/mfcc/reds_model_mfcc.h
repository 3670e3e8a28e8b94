/* Stand-in for the front end's generated tables (tests only): the names the KeywordSpotting
 * sketch uses by default, sized for a 49 x 10 input (20 ms stride). */
#ifndef REDS_MODEL_MFCC_H
#define REDS_MODEL_MFCC_H
#include "reds_mfcc.h"
#define REDS_MODEL_MFCC_FRAMES 49
#define REDS_MODEL_MFCC_COEFFS 10
#define REDS_MODEL_MFCC_FEATURES (REDS_MODEL_MFCC_FRAMES * REDS_MODEL_MFCC_COEFFS)
#define REDS_MODEL_MFCC_WORK_FLOATS 1281
#ifdef __cplusplus
extern "C" {
#endif
extern const reds_mfcc_config_t reds_model_mfcc;
#ifdef __cplusplus
}
#endif
#endif
