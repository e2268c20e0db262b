/* mgl-cuda-model.cuh: the CUDA backend's model and context (private to
 * mgl-cuda-model.cu and mgl-cuda-backend.cu). */
#ifndef MGL_CUDA_MODEL_CUH
#define MGL_CUDA_MODEL_CUH

#include <vector>

#include "mgl-cuda-internal.cuh"

/* The weights on the device: `w` is a twin of the host's MglModelWeights
 * (same dimensions, pointers to device memory), built from the weight table;
 * fused runs (q|k|v, gate|up, CLIP's q|k|v biases) are one allocation whose
 * first member's field spans the run. */
struct MglBackendModel {
    const MglModelWeights* hw; /* the host binding it was uploaded from */
    MglModelWeights w;
    std::vector<ClipLayer> clip_store;
    std::vector<LlmLayer> layer_store;
    std::vector<CnxBlock> block_store[4];
    int dev;
    MglDType prec;
    char prec_name[8];
    /* upload bookkeeping: a counting pass sizes everything first */
    bool counting;
    size_t need, llm_need;
    bool in_llm;
    std::vector<void*> allocs;
    MglErr* err;
    MglStatus st;
    float* rope_inv;
    size_t weight_bytes, llm_bytes;
};

/* The batched decode step's buffers (slot 0 holds them): activations of up
 * to `cap` rows, the sequence table (device, with its host image) and one
 * CUDA graph per batch size below MGLC_BATCH_GRAPHS. */
#define MGLC_BATCH_GRAPHS 17
struct MglcBatch {
    int cap;
    float *x, *h, *qkv, *a, *g, *u, *logits, *part;
    void* tab; /* k[cap], v[cap], lstride[cap] (8 bytes each), tok[cap], pos[cap] (4 bytes each) */
    size_t tab_bytes;
    std::vector<uint8_t> host;
    MglcSeqTab seq;
    int32_t* tok;
    cudaGraphExec_t graph[MGLC_BATCH_GRAPHS];
    bool graph_off;
};

/* One sequence slot (its KV cache) and the working buffers. A context of
 * n slots is slot 0 with the other n - 1 in `more`. */
struct MglBackendCtx {
    MglBackendModel* dm;
    std::vector<MglBackendCtx*> more;
    int64_t n_ctx;
    MglDType kv_dt;
    MglCudaStream *s_main, *s_clip, *s_cnx;
    cudaEvent_t ev_start, ev_clip, ev_cnx, ev_t0, ev_t1, ev_prep;
    MglCudaPrep* prep; /* views made on the device (mgl-cuda-preprocess.cu) */
    std::vector<void*> bufs;
    /* vision */
    bool vis;
    float *x336, *x768, *cx, *ch, *cqkv, *ca, *cf, *clip_out, *so[4], *t1, *t2;
    float *f_hs, *f_h, *f_t, *f_l, *f_mean, *f_gh, *f_g, *fused, *mlp_tmp;
    float *boxes, *pooled;
    int64_t box_cap;
    /* LLM */
    void *kc, *vc;
    int64_t kv_cap;
    float *x, *h, *qkv, *a, *g, *u, *logits, *part;
    int64_t t_cap, logit_rows;
    int* d_pos;
    int32_t *d_tok, *d_ids;
    int32_t last_tok;  /* the id d_tok holds (-1: none) */
    uint32_t* d_allow; /* the sampling mask (V bits), allocated on first use */
    int64_t ids_cap;
    MglCudaSampler* sampler;
    /* the decode step */
    cudaGraphExec_t gexec;
    bool graph_ready, graph_off;
    MglcBatch* batch; /* slot 0: the batched decode step (NULL until first used) */
};

MglStatus mglc_model_new(const MglModelWeights* w, const MglBackendParams* p, MglBackendModel** out, MglErr* err);
void mglc_model_free(MglBackendModel* dm);
MglStatus mglc_ctx_new(MglBackendModel* dm, const MglBackendCtxParams* p, MglBackendCtx** out, MglErr* err);
void mglc_ctx_free(MglBackendCtx* dc);

MglStatus mglc_ctx_alloc(MglBackendCtx* dc, void** p, size_t bytes, const char* what, MglErr* err);
void mglc_ctx_release(MglBackendCtx* dc, void* p);
MglStatus mglc_sync_all(MglBackendCtx* dc, MglErr* err);
MglStatus mglc_ensure_vision(MglBackendCtx* dc, MglErr* err);
MglStatus mglc_ensure_boxes(MglBackendCtx* dc, int64_t n, MglErr* err);
/* activations for T tokens (and logits for all of them when all_logits) */
MglStatus mglc_ensure_llm(MglBackendCtx* dc, int64_t T, bool all_logits, MglErr* err);
/* KV cache for n positions: grown (and copied) when needed */
MglStatus mglc_ensure_kv(MglBackendCtx* dc, int64_t n, MglErr* err);

/* the stages on the context's device buffers */
void mglc_clip_dev(MglBackendCtx* dc, MglCudaStream* s);
void mglc_convnext_dev(MglBackendCtx* dc, MglCudaStream* s);
void mglc_fuse_dev(MglBackendCtx* dc, MglCudaStream* s);
void mglc_objects_dev(MglBackendCtx* dc, MglCudaStream* s, int64_t n);
void mglc_mlp2_dev(MglCudaStream* s, const Mlp2* p, const float* x, int64_t T, float* tmp, float* out);
/* The decoder over dc->x (T rows). Positions from pos0, or from *d_pos when
 * non-NULL (the graph-captured decode step, T == 1). */
void mglc_llm_dev(MglBackendCtx* dc, int64_t T, int64_t pos0, const int* d_pos, bool all_logits);
/* One decode step at position `pos` for the token in d_tok. */
MglStatus mglc_decode_step(MglBackendCtx* dc, int64_t pos, MglErr* err);
/* One decode step for n sequences at once (n >= 2), on slot 0's stream:
 * sequence i is slot slots[i], fed tok[i] at position pos[i]; its logits go
 * to slots[i]->logits. Each weight is read once for the n rows; every row
 * gets the bits of its step alone (mglc_decode_step). */
MglStatus mglc_decode_batch(MglBackendCtx* dc, MglBackendCtx* const* slots, const int32_t* tok, const int64_t* pos,
                            int n, MglErr* err);

#endif
