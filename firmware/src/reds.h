/*
 * reds runtime: run any submodel of a nested family on a microcontroller.
 *
 * `reds export DIR --format c` writes a model (<name>.h, <name>.c) that holds the shared
 * weights as `static const` arrays, a widths table (submodel x layer), each submodel's
 * folded batch norm (a per-channel scale and bias) and one static activation arena sized
 * for the largest submodel. This header is what that model and the application compile
 * against; reds_runtime.c, reds_weights.c and one kernel file per op implement it
 * (kernels/reference/<op>_f32.c, or a target's optimized file of the same name, e.g.
 * kernels/cortex_m/conv2d_f32.c; README.md says how a build picks them).
 *
 * C99, no malloc, no stdio: the core uses <string.h> (memcpy) and nothing of the board.
 * Switching submodel is reds_select(): one store. reds_run then passes each kernel its
 * layer's widths from the active submodel's row of the widths table, and every submodel
 * reads a prefix of the same weights (see README.md for the two weight layouts). A
 * submodel may also skip whole blocks of layers (elastic depth): the layer mask's row says
 * which.
 */
#ifndef REDS_H
#define REDS_H

#include <stdint.h>

#include "reds_mfcc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define REDS_ABI_VERSION 6
/* The exporter refuses families with more submodels (a row of weights has at most one
 * segment per submodel; kernels keep that many segment descriptors on the stack). */
#define REDS_MAX_SUBMODELS 32

/* Kernel picking where every file of src/ is compiled (the Arduino builder compiles a
 * library's src/ recursively): there REDS_ALL_SOURCES is defined and each reference kernel
 * that kernels/cortex_m/ replaces compiles to nothing, so the cortex_m file (plain C99,
 * right on any target, fast on a Cortex-M4F) is that op's kernel. Builds that pick one file
 * per op (`reds build`, library.json's srcFilter) compile each file they pick whole: any
 * build without ARDUINO, or with -DREDS_PICKED_SOURCES. */
#if defined(ARDUINO) && !defined(REDS_PICKED_SOURCES)
#define REDS_ALL_SOURCES 1
#endif

typedef enum {
    REDS_OP_CONV2D = 1,
    REDS_OP_DEPTHWISE_CONV2D = 2,
    REDS_OP_DENSE = 3,
    REDS_OP_SCALE_BIAS = 4, /* a batch norm folded into y = x * scale + bias, per channel */
    REDS_OP_RELU = 5,
    REDS_OP_LEAKY_RELU = 6,
    REDS_OP_AVG_POOL = 7,
    REDS_OP_MAX_POOL = 8,
    REDS_OP_FLATTEN = 9,
    REDS_OP_ADD = 10 /* residual: x += the output kept in the layer's skip slot, in place */
} reds_op_t;

typedef enum {
    REDS_LAYOUT_ROWMAJOR = 0, /* rows of the largest submodel; a submodel reads the top-left block */
    REDS_LAYOUT_NESTED = 1    /* submodel k's weights are one contiguous prefix, shell by shell */
} reds_layout_t;

/* A layer in submodel k (reds_net_t.layer_mask): it runs, or it is in a block the submodel
 * skips, and then its input passes through it unchanged. */
typedef enum {
    REDS_LAYER_RUN = 0,
    REDS_LAYER_SKIP = 1,
    REDS_LAYER_SKIP_KEEP = 2 /* skipped, and a later ADD reads what passes through: copied to the skip slot */
} reds_layer_mask_t;

typedef enum {
    REDS_AXIS_NONE = 0,    /* the input is used as it is */
    REDS_AXIS_CHANNEL = 1, /* one scale and shift per channel (images) */
    REDS_AXIS_WIDTH = 2    /* one per column of the H x W map (MFCC coefficients) */
} reds_axis_t;

/* One layer. Channel counts are not here: they come from the widths table. Activations
 * are channel-major (C x H x W), as in PyTorch. */
typedef struct {
    uint8_t op;             /* reds_op_t */
    uint8_t kh, kw;         /* kernel (conv, depthwise, pools) */
    uint8_t sh, sw;         /* stride */
    uint8_t pad_t, pad_b, pad_l, pad_r;
    uint16_t in_h, in_w, out_h, out_w;
    uint32_t elem;          /* floats per (output, input) weight entry: kh*kw, or for a
                               dense layer the input's H*W per channel (1 if flat) */
    float slope;            /* LEAKY_RELU, or the leaky ReLU of this layer's store step (act) */
    const float *weight;    /* conv/dense: [out][in][elem] in the model's layout;
                               depthwise: [channel][kh*kw] */
    const float *bias;      /* [out], or NULL */
    /* The store step (reds_post_t). SCALE_BIAS: its own folded batch norm; conv, depthwise,
     * dense: the batch norm that follows, fused in (NULL: none). Submodel k's values are
     * at scale + scale_at[k]: submodel 0's cout values, then submodel 1's, ... */
    const float *scale;
    const float *shift;     /* laid out as scale; replaces the bias, which the exporter folded in */
    const uint32_t *scale_at; /* [num_submodels], precomputed by the exporter */
    uint8_t act;            /* reds_act_t applied by the store step (the activation that follows, fused in) */
    uint8_t fused;          /* how many of the layers that follow the store step runs (0 to 2): reds_run
                               skips them */
    uint8_t keep;           /* 1: a later ADD reads this layer's output: copy it to the skip slot */
    uint32_t skip;          /* keep / ADD: the skip slot's offset in the arena, in floats */
    /* conv/dense: the exporter's segment table (see reds_weights_t), in either layout */
    const struct reds_group *groups; /* every submodel's row groups, submodel 0's first */
    const uint16_t *groups_at;       /* [num_submodels + 1]: submodel k's are groups[groups_at[k] ..
                                        groups_at[k + 1] - 1] */
    const struct reds_seg *segs;     /* the groups' segments */
} reds_layer_t;

struct reds_net_s8; /* reds_s8.h: an int8 family's tables */

/* A whole family: constant, lives in flash. */
typedef struct {
    const char *name;
    const char *family_hash;    /* sha256 of the family folder it was exported from */
    uint8_t num_submodels;
    uint8_t layout;             /* reds_layout_t */
    uint16_t num_layers;
    uint16_t in_c, in_h, in_w;  /* input shape */
    uint32_t input_size;        /* floats */
    uint32_t output_size;       /* floats (classes) */
    uint32_t arena_floats;      /* of the largest submodel */
    uint32_t skip_floats;       /* the arena's first floats: skip slots of residual adds (0: none) */
    /* Input normalisation (x * scale[a] + shift[a], a along in_axis): reds_run applies it,
     * so the input is the raw features the family was trained on before standardising. */
    uint8_t in_axis;            /* reds_axis_t */
    const float *in_scale;      /* 1 / std: in_c values (channel) or in_w values (width) */
    const float *in_shift;      /* -mean / std */
    /* The front end of a family trained on audio (NULL: the model takes features): 16-bit
     * PCM -> the raw features reds_input() takes (reds_features). Its buffers live with the
     * model: a clip's samples and the front end's scratch floats. */
    const reds_mfcc_config_t *frontend;
    int16_t *pcm;               /* pcm_samples samples (what the protocol's `db` fills in pcm mode) */
    uint32_t pcm_samples;
    float *frontend_work;       /* REDS_MFCC_WORK_FLOATS(frontend) floats */
    const reds_layer_t *layers;
    /* [num_submodels][num_layers + 1]: column 0 is the input's channels, column l + 1
     * the output channels of layer l (of a skipped layer: its input's, passed through). */
    const uint16_t *widths;
    /* [num_submodels][num_layers] reds_layer_mask_t, or NULL: every submodel runs every layer */
    const uint8_t *layer_mask;
    const uint32_t *macs;         /* [num_submodels] */
    const uint32_t *weight_bytes; /* [num_submodels] float32 weights the submodel reads */
    const uint32_t *arena_bytes;  /* [num_submodels] activation bytes the submodel needs */
    const float *budgets;         /* [num_submodels] fraction of the full model's MACs */
    /* An int8 family (reds_s8.h; NULL: float32): its layers' int8 weights and per-submodel
     * requantization, and the int8 layer loop that reds_run hands the run to. Its layers'
     * float weight, bias and scale are NULL then; input and output stay float. */
    const struct reds_net_s8 *s8;
} reds_net_t;

/* A model instance: the only mutable state is the active submodel and the arena. */
typedef struct {
    const reds_net_t *net;
    float *arena;   /* net->arena_floats floats: the skip slots, then the input, ping-pong between
                       the ends of the rest (int8: see reds_s8.h) */
    uint8_t active; /* submodel that reds_run() runs */
} reds_model_t;

/* ---- runtime (reds_runtime.c) ------------------------------------------------------ */

/* Make submodel k (0 = smallest) the active one: one store. -1 if k is out of range. */
int reds_select(reds_model_t *m, unsigned k);
unsigned reds_active(const reds_model_t *m);
unsigned reds_num_submodels(const reds_model_t *m);

/* Where to write an input (reds_input_size() floats, C x H x W) for zero-copy runs. */
float *reds_input(reds_model_t *m);
uint32_t reds_input_size(const reds_model_t *m);
uint32_t reds_output_size(const reds_model_t *m);

/* The family's front end: pcm[0 .. n-1] (16 kHz, 16-bit; a short clip is padded with
 * silence) -> the raw features, written to reds_input(m); then reds_run(m, NULL). -1 if the
 * model has no front end. */
int reds_features(reds_model_t *m, const int16_t *pcm, uint32_t n);

/* One inference of the active submodel. `input` (C x H x W floats, raw features) is copied
 * into the arena unless it is NULL or reds_input(m) already, then normalised there as the
 * family recorded (so write raw features to reds_input(m) before each NULL run). Returns the outputs (logits) inside
 * the arena, valid until the next run. */
const float *reds_run(reds_model_t *m, const float *input);

/* A free-running timer (e.g. a board's cycle counter): reds_run_profiled's clock. */
typedef uint64_t (*reds_ticks_fn)(void);
/* reds_run_profiled's entry for a layer fused into the store step of the one before it. */
#define REDS_TICKS_FUSED UINT64_MAX

/* reds_run, timing each step with `ticks` (one timer read per step; reds_run itself reads
 * none): out (num_layers + 1 entries) gets out[l] = the ticks of layer l (with the time of
 * the timer read), out[num_layers] = those of the input's copy and normalisation. A layer
 * and those fused into its store step (a batch norm, an activation) are one step: its
 * ticks are on the first layer's entry, and each fused layer's is REDS_TICKS_FUSED. */
const float *reds_run_profiled(reds_model_t *m, const float *input, reds_ticks_fn ticks, uint64_t *out);

/* Costs of submodel k (0 if out of range). */
uint32_t reds_macs(const reds_model_t *m, unsigned k);
uint32_t reds_weight_bytes(const reds_model_t *m, unsigned k);
uint32_t reds_arena_bytes(const reds_model_t *m, unsigned k);
float reds_budget(const reds_model_t *m, unsigned k);
/* The largest submodel whose MACs fit `max_macs`, or -1 if none does. */
int reds_pick_macs(const reds_model_t *m, uint32_t max_macs);

/* ---- weights indexing (reds_weights.c) --------------------------------------------- */

/* The exporter precomputes, for every conv/dense layer and submodel, which runs of the
 * weight array hold each output unit's row (firmware/README.md has the formulas of both
 * layouts); no kernel computes an index. Rows o0 .. o1 - 1 of a group share their
 * segments: in segment s, input unit i (lo <= i < hi) of row o has its `elem` floats at
 * weight + off + o * step + (i - lo) * elem. A row's segments cover its inputs 0 .. cin-1
 * in order. */
typedef struct reds_seg {
    uint32_t off, step; /* floats */
    uint16_t lo, hi;
} reds_seg_t;

typedef struct reds_group {
    uint16_t o0, o1;    /* rows o0 .. o1 - 1; a submodel's groups cover 0 .. cout - 1 in order */
    uint16_t first, n;  /* segs[first .. first + n - 1] */
} reds_group_t;

/* A conv/dense layer's weights as the active submodel sees them. */
typedef struct {
    const float *base;
    const reds_group_t *groups; /* the active submodel's */
    uint32_t ngroups;
    const reds_seg_t *segs;
    uint32_t elem;
} reds_weights_t;

/* The view of layer L's weights that submodel k reads (a few loads: no index is computed). */
void reds_layer_weights(const reds_layer_t *L, unsigned k, reds_weights_t *w);

/* ---- float kernels: one file per op, kernels/reference/<op>_f32.c (plain loops), and
 * kernels/<target>/<op>_f32.c (optimized, same name) where a target has one ---------- */

/* The activation a kernel's store step applies (the layer that follows, fused in). */
typedef enum {
    REDS_ACT_NONE = 0,
    REDS_ACT_RELU = 1,
    REDS_ACT_LEAKY_RELU = 2
} reds_act_t;

/* The store step of the conv, depthwise and dense kernels, for the active submodel: each
 * output channel o's sum becomes act(acc * scale[o] + shift[o]) in registers before it is
 * stored (scale NULL: 1; shift NULL: 0). The exporter fuses a batch norm and the
 * activation after a layer into it, so they cost no pass of their own. */
typedef struct {
    const float *scale;
    const float *shift;
    uint8_t act;  /* reds_act_t */
    float slope;  /* REDS_ACT_LEAKY_RELU */
} reds_post_t;

/* Layer L's store step in submodel k (a few loads). */
void reds_layer_post(const reds_layer_t *L, unsigned k, reds_post_t *p);

/* The store step of one value (the reference kernels'; the optimized ones inline their own). */
static inline float reds_post_f32(const reds_post_t *p, uint32_t o, float acc)
{
    float v = acc * (p->scale ? p->scale[o] : 1.0f) + (p->shift ? p->shift[o] : 0.0f);
    if (v < 0.0f && p->act == REDS_ACT_RELU)
        v = 0.0f;
    else if (v < 0.0f && p->act == REDS_ACT_LEAKY_RELU)
        v = v * p->slope;
    return v;
}

/* Conv, depthwise and dense end in the store step `p`; they do not read L->bias (the
 * runtime passes it as p->shift where no batch norm is fused in). */
void reds_conv2d_f32(const reds_layer_t *L, const reds_weights_t *w, const reds_post_t *p, uint32_t cin,
                     uint32_t cout, const float *x, float *y);
void reds_depthwise_conv2d_f32(const reds_layer_t *L, const reds_post_t *p, uint32_t c, const float *x, float *y);
void reds_dense_f32(const reds_layer_t *L, const reds_weights_t *w, const reds_post_t *p, uint32_t cin,
                    uint32_t cout, const float *x, float *y);
/* x[c][p] = x[c][p] * scale[c] + bias[c], then the activation `act` (reds_act_t). */
void reds_scale_bias_f32(const float *scale, const float *bias, uint32_t c, uint32_t hw, float *x, uint8_t act,
                         float slope);
void reds_relu_f32(float *x, uint32_t n);
void reds_leaky_relu_f32(float *x, uint32_t n, float slope);
void reds_avg_pool_f32(const reds_layer_t *L, uint32_t c, const float *x, float *y);
void reds_max_pool_f32(const reds_layer_t *L, uint32_t c, const float *x, float *y);
/* x[i] += skip[i], in place (a residual add). */
void reds_add_f32(float *x, const float *skip, uint32_t n);

#ifdef __cplusplus
}
#endif

#endif /* REDS_H */
