/* mgl-model-weights.h: the model's tensors bound to typed fields, and the
 * dimensions the graph needs. This is the one header a backend sees of the
 * model: no files, tokenizer or contexts.
 *
 * On the host (the CPU backend) matrices are views into the mapped files in
 * their stored dtype and the small tensors (norms, biases, conv taps) are f32
 * copies. A device backend builds a twin of this struct whose pointers are
 * device memory, field for field, from the weight table (mgl-weight-table.h):
 * the same names reach the same tensors on every backend. */
#ifndef MGL_MODEL_WEIGHTS_H
#define MGL_MODEL_WEIGHTS_H

#include "mgl-config.h"
#include "mgl-ops.h"
#include "mgl-preprocess.h" /* MGL_AUX_SIZE */

typedef struct {
    MglWeight q, k, v, o, fc1, fc2;
    float *q_b, *k_b, *v_b, *o_b, *fc1_b, *fc2_b, *ln1_w, *ln1_b, *ln2_w, *ln2_b;
} ClipLayer;

typedef struct {
    float *dw_w, *dw_b, *ln_w, *ln_b, *fc1_b, *fc2_b, *gamma;
    MglWeight fc1, fc2;
} CnxBlock;

typedef struct {
    float *ds_ln_w, *ds_ln_b, *ds_b; /* downsample (stages 1-3) */
    MglWeight ds;
    CnxBlock* blocks;
    int depth, C;
} CnxStage;

typedef struct {
    MglWeight qkv; /* Phi-3: fused (q|k|v); Llama: unused */
    MglWeight q, k, v, o;
    MglWeight gate_up; /* Phi-3: fused (gate|up) */
    MglWeight gate, up, down;
    float *ln1, *ln2;
} LlmLayer;

typedef struct {
    MglWeight l0, l2;
    float *b0, *b2;
} Mlp2;

typedef struct MglModelWeights {
    /* CLIP: features after layer n_layers-2 (hidden_states[-2]) */
    int D, clip_layers_used, n_patches, patch, clip_heads, clip_grid;
    MglWeight patch_w;
    float *cls, *pos, *pre_ln_w, *pre_ln_b;
    ClipLayer* clip_layers;
    float clip_eps;
    bool clip_quick_gelu;
    /* ConvNeXt */
    float *stem_b, *stem_ln_w, *stem_ln_b;
    MglWeight stem_w;
    CnxStage stages[4];
    int Cm; /* channels of the multi-scale map */
    /* Conv-Gate fusion */
    MglWeight slow_conv, slow_proj, fast_proj, gate0, gate2;
    float *slow_conv_b, *slow_proj_b, *fast_conv_w, *fast_conv_b, *fast_proj_b, *gate0_b, *gate2_b;
    int gate_hidden;
    /* projectors */
    Mlp2 proj, bproj;
    /* LLM */
    MglLlmConfig lc;
    MglWeight embed, lm_head; /* lm_head == embed when tied */
    float* final_norm;
    LlmLayer* layers;
} MglModelWeights;

#endif
