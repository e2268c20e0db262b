/* mgl-weight-table.h: the single list of the model's tensors.
 *
 * Every tensor the MG-LLaVA graph reads is one row of MGL_WEIGHT_TABLE below:
 * its canonical name, the group it repeats in (once, per CLIP layer, per
 * ConvNeXt stage or block, per LLM layer), its shape in terms of the configs,
 * the field of MglModelWeights it binds to, and how it is kept. Validation
 * (mgl_model_files_validate), synthesis of random weights (benchmarks), the
 * list of tensors `convert` packs, binding on the host and the upload to a
 * device are all walks over this table: adding a tensor is one row here plus
 * its field in mgl-model-weights.h.
 *
 * Columns: X(group, kind, flags, fuse, field, ndim, d0, d1, d2, d3, name)
 *   group  MODEL (once), CLIP (per CLIP layer used), STAGE (per ConvNeXt
 *          stage), BLOCK (per ConvNeXt block), LAYER (per LLM layer)
 *   kind   MAT: kept in its stored dtype as an MglWeight (rows = d0);
 *          VEC: an f32 copy (norms, biases, conv taps)
 *   flags  MGL_WF_* below
 *   fuse   0, or an id shared by tensors of one group instance that a device
 *          backend stores end to end as one matrix (one GEMM: q|k|v, gate|up);
 *          the first member's field then spans the whole run
 *   dims   literal sizes (> 0) or MGL_DIM_* symbols (< 0)
 *   name   printf format: %d is the layer (CLIP, LAYER), the stage (STAGE),
 *          or the stage then the block (BLOCK)
 * The order of the rows is the order of validation: the first problem
 * reported is the first row that has one. */
#ifndef MGL_WEIGHT_TABLE_H
#define MGL_WEIGHT_TABLE_H

#include "mgl-model-files.h"
#include "mgl-model-weights.h"

typedef enum { MGL_WG_MODEL, MGL_WG_CLIP, MGL_WG_STAGE, MGL_WG_BLOCK, MGL_WG_LAYER } MglWeightGroup;
typedef enum { MGL_WK_MAT, MGL_WK_VEC } MglWeightKind;

enum {
    MGL_WF_LLAMA = 1 << 0,  /* Llama-family layers only (separate q/k/v, gate/up) */
    MGL_WF_PHI3 = 1 << 1,   /* Phi-3 only (fused qkv, gate_up) */
    MGL_WF_UNTIED = 1 << 2, /* only when the LLM does not tie lm_head to the embeddings */
    MGL_WF_DS = 1 << 3,     /* ConvNeXt stages 1-3 (the downsample) */
    MGL_WF_STEP = 1 << 4,   /* read by every decode step (the decode bandwidth figure) */
};

/* symbolic sizes, from the configs (mgl_weight_dim) */
enum {
    MGL_DIM_D = -1,     /* CLIP hidden */
    MGL_DIM_CH = -2,    /* CLIP input channels */
    MGL_DIM_PATCH = -3, /* CLIP patch size */
    MGL_DIM_NPOS = -4,  /* CLIP positions: grid^2 + 1 */
    MGL_DIM_CFF = -5,   /* CLIP MLP width */
    MGL_DIM_C0 = -6,    /* ConvNeXt stage 0 width */
    MGL_DIM_C = -7,     /* this stage's width */
    MGL_DIM_CP = -8,    /* the previous stage's width */
    MGL_DIM_C4 = -9,    /* 4 x this stage's width */
    MGL_DIM_C3 = -10,   /* the last stage's width */
    MGL_DIM_GH = -11,   /* the fusion gate's hidden width */
    MGL_DIM_D2 = -12,   /* 2 x CLIP hidden */
    MGL_DIM_H = -13,    /* LLM hidden */
    MGL_DIM_CM = -14,   /* sum of the ConvNeXt widths */
    MGL_DIM_V = -15,    /* vocabulary */
    MGL_DIM_QD = -16,   /* heads x head size */
    MGL_DIM_KVD = -17,  /* KV heads x head size */
    MGL_DIM_QKV = -18,  /* QD + 2 KVD */
    MGL_DIM_FF = -19,   /* LLM MLP width */
    MGL_DIM_FF2 = -20,  /* 2 x LLM MLP width */
};

#define MGL_WEIGHT_TABLE(X)                                                                                            \
    X(MODEL, MAT, 0, 0, patch_w, 4, MGL_DIM_D, MGL_DIM_CH, MGL_DIM_PATCH, MGL_DIM_PATCH,                               \
      "clip.vision_model.embeddings.patch_embedding.weight")                                                           \
    X(MODEL, VEC, 0, 0, cls, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.embeddings.class_embedding")                    \
    X(MODEL, VEC, 0, 0, pos, 2, MGL_DIM_NPOS, MGL_DIM_D, 0, 0,                                                         \
      "clip.vision_model.embeddings.position_embedding.weight")                                                        \
    X(MODEL, VEC, 0, 0, pre_ln_w, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.pre_layrnorm.weight")                      \
    X(MODEL, VEC, 0, 0, pre_ln_b, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.pre_layrnorm.bias")                        \
    X(CLIP, MAT, 0, 1, q, 2, MGL_DIM_D, MGL_DIM_D, 0, 0,                                                               \
      "clip.vision_model.encoder.layers.%d.self_attn.q_proj.weight")                                                   \
    X(CLIP, VEC, 0, 2, q_b, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.encoder.layers.%d.self_attn.q_proj.bias")        \
    X(CLIP, MAT, 0, 1, k, 2, MGL_DIM_D, MGL_DIM_D, 0, 0,                                                               \
      "clip.vision_model.encoder.layers.%d.self_attn.k_proj.weight")                                                   \
    X(CLIP, VEC, 0, 2, k_b, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.encoder.layers.%d.self_attn.k_proj.bias")        \
    X(CLIP, MAT, 0, 1, v, 2, MGL_DIM_D, MGL_DIM_D, 0, 0,                                                               \
      "clip.vision_model.encoder.layers.%d.self_attn.v_proj.weight")                                                   \
    X(CLIP, VEC, 0, 2, v_b, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.encoder.layers.%d.self_attn.v_proj.bias")        \
    X(CLIP, MAT, 0, 0, o, 2, MGL_DIM_D, MGL_DIM_D, 0, 0,                                                               \
      "clip.vision_model.encoder.layers.%d.self_attn.out_proj.weight")                                                 \
    X(CLIP, VEC, 0, 0, o_b, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.encoder.layers.%d.self_attn.out_proj.bias")      \
    X(CLIP, VEC, 0, 0, ln1_w, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.encoder.layers.%d.layer_norm1.weight")         \
    X(CLIP, VEC, 0, 0, ln1_b, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.encoder.layers.%d.layer_norm1.bias")           \
    X(CLIP, VEC, 0, 0, ln2_w, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.encoder.layers.%d.layer_norm2.weight")         \
    X(CLIP, VEC, 0, 0, ln2_b, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.encoder.layers.%d.layer_norm2.bias")           \
    X(CLIP, MAT, 0, 0, fc1, 2, MGL_DIM_CFF, MGL_DIM_D, 0, 0, "clip.vision_model.encoder.layers.%d.mlp.fc1.weight")     \
    X(CLIP, VEC, 0, 0, fc1_b, 1, MGL_DIM_CFF, 0, 0, 0, "clip.vision_model.encoder.layers.%d.mlp.fc1.bias")             \
    X(CLIP, MAT, 0, 0, fc2, 2, MGL_DIM_D, MGL_DIM_CFF, 0, 0, "clip.vision_model.encoder.layers.%d.mlp.fc2.weight")     \
    X(CLIP, VEC, 0, 0, fc2_b, 1, MGL_DIM_D, 0, 0, 0, "clip.vision_model.encoder.layers.%d.mlp.fc2.bias")               \
    X(MODEL, MAT, 0, 0, stem_w, 4, MGL_DIM_C0, 3, 4, 4, "convnext.stem.0.weight")                                      \
    X(MODEL, VEC, 0, 0, stem_b, 1, MGL_DIM_C0, 0, 0, 0, "convnext.stem.0.bias")                                        \
    X(MODEL, VEC, 0, 0, stem_ln_w, 1, MGL_DIM_C0, 0, 0, 0, "convnext.stem.1.weight")                                   \
    X(MODEL, VEC, 0, 0, stem_ln_b, 1, MGL_DIM_C0, 0, 0, 0, "convnext.stem.1.bias")                                     \
    X(STAGE, VEC, MGL_WF_DS, 0, ds_ln_w, 1, MGL_DIM_CP, 0, 0, 0, "convnext.stages.%d.downsample.0.weight")             \
    X(STAGE, VEC, MGL_WF_DS, 0, ds_ln_b, 1, MGL_DIM_CP, 0, 0, 0, "convnext.stages.%d.downsample.0.bias")               \
    X(STAGE, MAT, MGL_WF_DS, 0, ds, 4, MGL_DIM_C, MGL_DIM_CP, 2, 2, "convnext.stages.%d.downsample.1.weight")          \
    X(STAGE, VEC, MGL_WF_DS, 0, ds_b, 1, MGL_DIM_C, 0, 0, 0, "convnext.stages.%d.downsample.1.bias")                   \
    X(BLOCK, VEC, 0, 0, dw_w, 4, MGL_DIM_C, 1, 7, 7, "convnext.stages.%d.blocks.%d.conv_dw.weight")                    \
    X(BLOCK, VEC, 0, 0, dw_b, 1, MGL_DIM_C, 0, 0, 0, "convnext.stages.%d.blocks.%d.conv_dw.bias")                      \
    X(BLOCK, VEC, 0, 0, ln_w, 1, MGL_DIM_C, 0, 0, 0, "convnext.stages.%d.blocks.%d.norm.weight")                       \
    X(BLOCK, VEC, 0, 0, ln_b, 1, MGL_DIM_C, 0, 0, 0, "convnext.stages.%d.blocks.%d.norm.bias")                         \
    X(BLOCK, MAT, 0, 0, fc1, 2, MGL_DIM_C4, MGL_DIM_C, 0, 0, "convnext.stages.%d.blocks.%d.mlp.fc1.weight")            \
    X(BLOCK, VEC, 0, 0, fc1_b, 1, MGL_DIM_C4, 0, 0, 0, "convnext.stages.%d.blocks.%d.mlp.fc1.bias")                    \
    X(BLOCK, MAT, 0, 0, fc2, 2, MGL_DIM_C, MGL_DIM_C4, 0, 0, "convnext.stages.%d.blocks.%d.mlp.fc2.weight")            \
    X(BLOCK, VEC, 0, 0, fc2_b, 1, MGL_DIM_C, 0, 0, 0, "convnext.stages.%d.blocks.%d.mlp.fc2.bias")                     \
    X(BLOCK, VEC, 0, 0, gamma, 1, MGL_DIM_C, 0, 0, 0, "convnext.stages.%d.blocks.%d.gamma")                            \
    X(MODEL, MAT, 0, 0, slow_conv, 4, MGL_DIM_C3, MGL_DIM_C3, 1, 1, "fuse_module.slow_conv.weight")                    \
    X(MODEL, VEC, 0, 0, slow_conv_b, 1, MGL_DIM_C3, 0, 0, 0, "fuse_module.slow_conv.bias")                             \
    X(MODEL, MAT, 0, 0, slow_proj, 4, MGL_DIM_D, MGL_DIM_C3, 1, 1, "fuse_module.slow_proj.weight")                     \
    X(MODEL, VEC, 0, 0, slow_proj_b, 1, MGL_DIM_D, 0, 0, 0, "fuse_module.slow_proj.bias")                              \
    X(MODEL, VEC, 0, 0, fast_conv_w, 4, MGL_DIM_D, 1, 7, 7, "fuse_module.fast_conv.weight")                            \
    X(MODEL, VEC, 0, 0, fast_conv_b, 1, MGL_DIM_D, 0, 0, 0, "fuse_module.fast_conv.bias")                              \
    X(MODEL, MAT, 0, 0, fast_proj, 4, MGL_DIM_D, MGL_DIM_D, 1, 1, "fuse_module.fast_proj.weight")                      \
    X(MODEL, VEC, 0, 0, fast_proj_b, 1, MGL_DIM_D, 0, 0, 0, "fuse_module.fast_proj.bias")                              \
    X(MODEL, MAT, 0, 0, gate0, 2, MGL_DIM_GH, MGL_DIM_D2, 0, 0, "fuse_module.gate.0.weight")                           \
    X(MODEL, VEC, 0, 0, gate0_b, 1, MGL_DIM_GH, 0, 0, 0, "fuse_module.gate.0.bias")                                    \
    X(MODEL, MAT, 0, 0, gate2, 2, 1, MGL_DIM_GH, 0, 0, "fuse_module.gate.2.weight")                                    \
    X(MODEL, VEC, 0, 0, gate2_b, 1, 1, 0, 0, 0, "fuse_module.gate.2.bias")                                             \
    X(MODEL, MAT, 0, 0, proj.l0, 2, MGL_DIM_H, MGL_DIM_D, 0, 0, "projector.model.0.weight")                            \
    X(MODEL, VEC, 0, 0, proj.b0, 1, MGL_DIM_H, 0, 0, 0, "projector.model.0.bias")                                      \
    X(MODEL, MAT, 0, 0, proj.l2, 2, MGL_DIM_H, MGL_DIM_H, 0, 0, "projector.model.2.weight")                            \
    X(MODEL, VEC, 0, 0, proj.b2, 1, MGL_DIM_H, 0, 0, 0, "projector.model.2.bias")                                      \
    X(MODEL, MAT, 0, 0, bproj.l0, 2, MGL_DIM_H, MGL_DIM_CM, 0, 0, "bbox_projector.model.0.weight")                     \
    X(MODEL, VEC, 0, 0, bproj.b0, 1, MGL_DIM_H, 0, 0, 0, "bbox_projector.model.0.bias")                                \
    X(MODEL, MAT, 0, 0, bproj.l2, 2, MGL_DIM_H, MGL_DIM_H, 0, 0, "bbox_projector.model.2.weight")                      \
    X(MODEL, VEC, 0, 0, bproj.b2, 1, MGL_DIM_H, 0, 0, 0, "bbox_projector.model.2.bias")                                \
    X(MODEL, MAT, 0, 0, embed, 2, MGL_DIM_V, MGL_DIM_H, 0, 0, "llm.model.embed_tokens.weight")                         \
    X(LAYER, MAT, MGL_WF_PHI3 | MGL_WF_STEP, 0, qkv, 2, MGL_DIM_QKV, MGL_DIM_H, 0, 0,                                  \
      "llm.model.layers.%d.self_attn.qkv_proj.weight")                                                                 \
    X(LAYER, MAT, MGL_WF_PHI3 | MGL_WF_STEP, 0, gate_up, 2, MGL_DIM_FF2, MGL_DIM_H, 0, 0,                              \
      "llm.model.layers.%d.mlp.gate_up_proj.weight")                                                                   \
    X(LAYER, MAT, MGL_WF_LLAMA | MGL_WF_STEP, 1, q, 2, MGL_DIM_QD, MGL_DIM_H, 0, 0,                                    \
      "llm.model.layers.%d.self_attn.q_proj.weight")                                                                   \
    X(LAYER, MAT, MGL_WF_LLAMA | MGL_WF_STEP, 1, k, 2, MGL_DIM_KVD, MGL_DIM_H, 0, 0,                                   \
      "llm.model.layers.%d.self_attn.k_proj.weight")                                                                   \
    X(LAYER, MAT, MGL_WF_LLAMA | MGL_WF_STEP, 1, v, 2, MGL_DIM_KVD, MGL_DIM_H, 0, 0,                                   \
      "llm.model.layers.%d.self_attn.v_proj.weight")                                                                   \
    X(LAYER, MAT, MGL_WF_LLAMA | MGL_WF_STEP, 2, gate, 2, MGL_DIM_FF, MGL_DIM_H, 0, 0,                                 \
      "llm.model.layers.%d.mlp.gate_proj.weight")                                                                      \
    X(LAYER, MAT, MGL_WF_LLAMA | MGL_WF_STEP, 2, up, 2, MGL_DIM_FF, MGL_DIM_H, 0, 0,                                   \
      "llm.model.layers.%d.mlp.up_proj.weight")                                                                        \
    X(LAYER, MAT, MGL_WF_STEP, 0, o, 2, MGL_DIM_H, MGL_DIM_QD, 0, 0, "llm.model.layers.%d.self_attn.o_proj.weight")    \
    X(LAYER, MAT, MGL_WF_STEP, 0, down, 2, MGL_DIM_H, MGL_DIM_FF, 0, 0, "llm.model.layers.%d.mlp.down_proj.weight")    \
    X(LAYER, VEC, MGL_WF_STEP, 0, ln1, 1, MGL_DIM_H, 0, 0, 0, "llm.model.layers.%d.input_layernorm.weight")            \
    X(LAYER, VEC, MGL_WF_STEP, 0, ln2, 1, MGL_DIM_H, 0, 0, 0, "llm.model.layers.%d.post_attention_layernorm.weight")   \
    X(MODEL, VEC, MGL_WF_STEP, 0, final_norm, 1, MGL_DIM_H, 0, 0, 0, "llm.model.norm.weight")                          \
    X(MODEL, MAT, MGL_WF_UNTIED | MGL_WF_STEP, 0, lm_head, 2, MGL_DIM_V, MGL_DIM_H, 0, 0, "llm.lm_head.weight")

typedef struct {
    MglWeightGroup group;
    MglWeightKind kind;
    int flags;
    int fuse;
    size_t offset; /* of the field in the group's struct */
    int ndim;
    int dims[4];
    const char* name;
} MglWeightSpec;

extern const MglWeightSpec mgl_weight_table[];
extern const size_t mgl_weight_table_len;

/* One tensor of the model: a row of the table at one instance. */
typedef struct {
    const MglWeightSpec* spec;
    char name[160];
    int ndim;
    int64_t shape[4];
    int i0, i1; /* layer, or stage (and block) */
} MglWeightItem;

/* Calls fn for every tensor the configs of `mf` imply, in table order with
 * the instances of each row in order (layer by layer), skipping rows whose
 * flags exclude them (architecture, tied embeddings, stage 0's downsample).
 * Stops early when fn returns false. */
typedef bool (*MglWeightFunc)(const MglWeightItem* it, void* user);
void mgl_weight_walk(const MglModelFiles* mf, MglWeightFunc fn, void* user);

/* The same walk for a model already bound: the dimensions from `w` (device
 * backends, which see no files). */
void mgl_weight_walk_bound(const MglModelWeights* w, MglWeightFunc fn, void* user);

/* Address of the item's field in `w` (a host model or a device twin whose
 * per-layer arrays are allocated). */
void* mgl_weight_field(MglModelWeights* w, const MglWeightItem* it);

#endif
