/* mgl-model.h: the loaded MG-LLaVA model and its stage functions (internal;
 * tests call the stages one by one against the PyTorch goldens). */
#ifndef MGL_MODEL_H
#define MGL_MODEL_H

#include <glib.h>

#include "mgl-model-files.h"
#include "mgl-ops.h"
#include "mgl-preprocess.h"

typedef struct {
    MglWeight q, k, v, o, fc1, fc2;
    float *q_b, *k_b, *v_b, *o_b, *fc1_b, *fc2_b, *ln1_w, *ln1_b, *ln2_w, *ln2_b;
} ClipLayer;

typedef struct {
    float *dw_w, *dw_b, *ln_w, *ln_b, *fc1_b, *fc2_b, *gamma;
    MglWeight fc1, fc2;
} CnxBlock;

typedef struct {
    float *ds_ln_w, *ds_ln_b, *ds_b;  /* downsample (stages 1-3) */
    MglWeight ds;
    CnxBlock* blocks;
    int depth, C;
} CnxStage;

typedef struct {
    MglWeight qkv;          /* Phi-3: fused (q|k|v); Llama: unused */
    MglWeight q, k, v, o;
    MglWeight gate_up;      /* Phi-3: fused (gate|up) */
    MglWeight gate, up, down;
    float *ln1, *ln2;
} LlmLayer;

typedef struct {
    MglWeight l0, l2;
    float *b0, *b2;
} Mlp2;

struct MglModel {
    MglModelFiles* files;
    MglTokenizer*  tok;
    const MglTemplate* tmpl;
    int n_threads;
    int n_ctx;
    /* CLIP */
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
    int Cm;                 /* channels of the multi-scale map */
    /* fusion */
    MglWeight slow_conv, slow_proj, fast_proj, gate0, gate2;
    float *slow_conv_b, *slow_proj_b, *fast_conv_w, *fast_conv_b, *fast_proj_b, *gate0_b, *gate2_b;
    int gate_hidden;
    /* projectors */
    Mlp2 proj, bproj;
    /* LLM */
    MglLlmConfig lc;
    MglWeight embed, lm_head;
    float* final_norm;
    LlmLayer* layers;
    int32_t eos_ids[10];
    int n_eos;
    /* f32 copies of small tensors, freed with the model */
    GPtrArray* owned;
    /* the CUDA backend's copy of the weights (engine/cuda/), NULL on the CPU */
    struct MglCudaModel* cuda;
};

struct MglCtx {
    MglModel* m;
    float *kc, *vc;         /* (n_layers, cap, kvdim) */
    int64_t kv_cap;
    struct MglCudaCtx* cuda;  /* device state when m->cuda */
};

/* A model over already-built files (takes ownership; no tokenizer): benchmarks. */
MglStatus mgl_model_from_files(MglModelFiles* files, const MglModelParams* params, MglModel** out, MglErr* err);

/* stages (CPU, fp32). Feature maps are NHWC (H*W, C). */
MglStatus mgl_stage_preprocess(const MglImage* img, const MglBox* boxes, size_t n_boxes, int limit_num, int order, float** x768,
                               float** x336, float** boxes768, size_t* n_obj, MglErr* err);
void mgl_stage_clip(MglModel* m, const float* x336, float* out /* (576, D) */);
/* stage_out[s] is (H_s*W_s, C_s), caller-allocated: 192², 96², 48², 24² for 768 input */
void mgl_stage_convnext(MglModel* m, const float* x768, float* stage_out[4]);
void mgl_stage_fuse(MglModel* m, const float* clip, const float* stage3, float* fused /* (576, D) */, float* gate_logit);
/* RoIAlign (torchvision, aligned=False, adaptive sampling, 56x56) over the
 * multi-scale map built from the four stages, then the mean: (n, Cm). */
void mgl_stage_objects(MglModel* m, float* const stage_out[4], const float* boxes768, size_t n, float* pooled);
void mgl_stage_mlp2(const Mlp2* p, const float* x, int64_t T, int64_t H, float* out);
/* The LLM input sequence [BOS prefix | projected image tokens | object tokens
 * | suffix] into emb ((n_ids + n_patches + n_obj), hidden). */
void mgl_stage_embeds(MglModel* m, const MglPrompt* pr, const float* fused, float* const so[4], const float* boxes768,
                      size_t n_obj, float* emb);
/* Run the decoder over `T` input embeddings at positions pos0..; fills the KV
 * cache; writes logits of the last row (or of all rows when all_logits). */
MglStatus mgl_llm_forward(MglCtx* c, const float* embeds, int64_t T, int64_t pos0, float* logits, bool all_logits,
                          MglErr* err);
MglStatus mgl_ctx_reserve(MglCtx* c, int64_t n_tokens, MglErr* err);

/* One generation request after mgl_generate's shared checks: the backend runs
 * its vision stages and prefill over it, then one decode step at a time. */
typedef struct {
    MglGenParams p;                 /* defaults resolved */
    MglPrompt    pr;
    float       *x768, *x336, *b768; /* preprocessed views and boxes (CPU) */
    size_t       n_obj;             /* object tokens (0 when objects are off) */
    int64_t      L;                 /* prompt length in LLM positions */
    uint64_t     rng;               /* sampling state (splitmix64) */
} MglGenRequest;

/* The sampled token for a uniform draw u in [0, 1): temperature, then top-k,
 * then top-p (as HF's logits warpers), then the draw over what is left. */
int32_t mgl_sample_draw(const float* logits, int64_t V, float temperature, int top_k, float top_p, double u);
/* A uniform draw in [0, 1) from the request's sampling state. */
double mgl_rng_unit(uint64_t* state);
/* Trim in place the whitespace Python's str.strip() removes (str.isspace). */
void mgl_text_strip(char* s);

#endif
