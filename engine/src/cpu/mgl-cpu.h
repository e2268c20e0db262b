/* mgl-cpu.h: the CPU backend (mgl_backend_cpu) and its fp32 reference
 * stages, which the golden tests call one by one. Feature maps are NHWC
 * (H*W, C). */
#ifndef MGL_CPU_H
#define MGL_CPU_H

#include "mgl-backend.h"

extern const MglBackend mgl_backend_cpu;

void mgl_stage_clip(const MglModelWeights* m, const float* x336, float* out /* (576, D) */);
/* so[s] is (H_s*W_s, C_s), caller-allocated: 192², 96², 48², 24² for 768 input */
void mgl_stage_convnext(const MglModelWeights* m, const float* x768, float* const so[4]);
void mgl_stage_fuse(const MglModelWeights* m, const float* clip, const float* stage3, float* fused /* (576, D) */,
                    float* gate_logit);
/* RoIAlign (torchvision, aligned=False, adaptive sampling, 56x56) over the
 * multi-scale map built from the four stages, then the mean: (n, Cm). */
void mgl_stage_objects(const MglModelWeights* m, float* const so[4], const float* boxes768, size_t n, float* pooled);
void mgl_stage_mlp2(const Mlp2* p, const float* x, int64_t T, int64_t H, float* out);
/* The LLM input sequence (mgl_seq_layout) into emb ((n_ids + n_patches + n_obj), hidden). */
void mgl_stage_embeds(const MglModelWeights* m, const MglPrompt* pr, const float* fused, float* const so[4],
                      const float* boxes768, size_t n_obj, float* emb);

/* One sequence slot's KV cache: (n_layers, n_kv_heads, kv_cap, head_dim)
 * for K and V, head-major so that decode attention reads each head's keys
 * and values as one contiguous run; in `dtype` (F32, F16 or BF16: the
 * context's KV precision, f32 by default on the CPU). Grown on demand, each
 * (layer, head) run moved to its new place. */
typedef struct {
    void *kc, *vc;
    int64_t kv_cap;
    MglDType dtype; /* set before the first reserve; 0 (unset) is f32 */
} MglCpuKv;
MglStatus mgl_cpu_kv_reserve(MglCpuKv* kv, const MglLlmConfig* lc, int64_t n_tokens, MglErr* err);
/* The decoder over `T` input embeddings at positions pos0..; fills the KV
 * cache; writes logits of the last row (or of all rows when all_logits). */
MglStatus mgl_cpu_forward(const MglModelWeights* m, MglCpuKv* kv, const float* embeds, int64_t T, int64_t pos0,
                          float* logits, bool all_logits, MglErr* err);
/* The same over x (T, hidden), which it uses as the residual stream and
 * leaves overwritten (no copy of the embeddings). */
MglStatus mgl_cpu_forward_inplace(const MglModelWeights* m, MglCpuKv* kv, float* x, int64_t T, int64_t pos0,
                                  float* logits, bool all_logits, MglErr* err);
/* One decode step for M sequences (row m: cache kv[m], position pos[m]);
 * logits (M, vocab). Each row gets exactly its T = 1 result. */
MglStatus mgl_cpu_decode_rows(const MglModelWeights* m, MglCpuKv* const* kv, const int64_t* pos, const float* embeds,
                              int64_t M, float* logits, MglErr* err);

#endif
