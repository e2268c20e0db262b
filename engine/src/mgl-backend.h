/* mgl-backend.h: the backend seam. A backend (engine/src/cpu, engine/cuda)
 * fills in one MglBackend table; the core (mgl-model.c, mgl-generate.c)
 * calls only through it and never names a backend. A backend sees the model
 * through MglModelWeights (mgl-model-weights.h) and a request through
 * MglSeq: never the core's MglModel or MglCtx.
 *
 * Every call that runs the model takes a batch of sequences (seqs[0..n)):
 * each sequence lives in a slot of the backend context (its KV cache), and a
 * scheduler can put several streams' sequences in one call. A backend may
 * run the batch sequence by sequence; what it must keep is that each
 * sequence's result is what it would be alone.
 *
 * One request's life: vision (the prompt's embeddings: text, image and
 * object tokens) -> prefill (the decoder over them, logits of the last row)
 * -> sample -> { decode (one token) -> sample } ... */
#ifndef MGL_BACKEND_H
#define MGL_BACKEND_H

#ifdef __cplusplus
extern "C" {
#endif

#include "mgl-model-weights.h"

typedef struct MglBackendModel MglBackendModel; /* the backend's copy of the weights */
typedef struct MglBackendCtx MglBackendCtx;     /* slots (KV caches) and working buffers */

/* Weights: which device, in what precision. */
typedef struct {
    int gpu_id;
    const char* precision; /* device weights: "f16" (default when NULL), "bf16", "f32" */
    int n_threads;         /* CPU threads; 0 = all cores */
} MglBackendParams;

/* Per-context settings (llama.h's split of model and context parameters). */
typedef struct {
    int n_seq;         /* sequence slots, each with its own KV cache (>= 1) */
    int64_t n_ctx;     /* positions per slot */
    MglDType kv_dtype; /* KV cache storage: F16, BF16 or F32 */
} MglBackendCtxParams;

/* One frame of a clip (the video path, spec section 11): its views and boxes. */
typedef struct {
    const float *x336, *x768; /* preprocessed views (CHW f32, host) */
    const float* boxes768;    /* n_obj boxes in the 768 frame (host) */
    size_t n_obj;             /* object tokens (0 = none) */
} MglSeqFrame;

/* One prompt: [ids[0, image_pos) | image tokens | object tokens | ids[image_pos, n_ids)].
 * Sequences whose inputs share x336/x768 (requests about one frame) may have
 * their vision towers run once by the backend. A clip (n_frames > 0) puts
 * every frame's [image tokens | object tokens] at image_pos in time order
 * (frames[0..n_frames)); x336, x768, boxes768 and n_obj are then unused. */
typedef struct {
    const int32_t* ids;
    size_t n_ids, image_pos;
    const float *x336, *x768; /* preprocessed views (CHW f32, host) */
    const uint8_t* rgb;       /* or (views_on_device) the image: packed RGB8, rgb_w x rgb_h */
    int rgb_w, rgb_h;
    const float* boxes768;     /* n_obj boxes in the 768 frame (host) */
    size_t n_obj;              /* object tokens (0 = none) */
    bool use_high_res;         /* false: the CLIP features stand for the fused ones */
    const MglSeqFrame* frames; /* a clip: n_frames frames (NULL for one image) */
    size_t n_frames;
} MglSeqInput;

/* Row ranges of the LLM input sequence of `in` with P image tokens: the one
 * place the [prefix | image | objects | suffix] layout is written down. */
typedef struct {
    int64_t prefix;  /* text rows [0, prefix) from ids[0, prefix) */
    int64_t image;   /* first image row; P rows */
    int64_t objects; /* first object row; n_obj rows */
    int64_t suffix;  /* first suffix row; from ids[prefix, n_ids) */
    int64_t n_suffix;
    int64_t L; /* total rows */
} MglSeqLayout;

static inline MglSeqLayout mgl_seq_layout(const MglSeqInput* in, int64_t P) {
    MglSeqLayout s;
    s.prefix = (int64_t)in->image_pos;
    s.image = s.prefix;
    s.objects = s.image + P;
    s.suffix = s.objects + (int64_t)in->n_obj;
    if (in->n_frames > 0) { /* a clip: image and objects are frame 0's; the frames end where the suffix starts */
        s.objects = s.image + P;
        s.suffix = s.image;
        for (size_t j = 0; j < in->n_frames; j++) s.suffix += P + (int64_t)in->frames[j].n_obj;
    }
    s.n_suffix = (int64_t)in->n_ids - s.prefix;
    s.L = s.suffix + s.n_suffix;
    return s;
}

/* The first row of frame j of a clip (its P image rows, then its object rows). */
static inline int64_t mgl_seq_frame_row(const MglSeqInput* in, int64_t P, size_t j) {
    int64_t r = (int64_t)in->image_pos;
    for (size_t k = 0; k < j && k < in->n_frames; k++) r += P + (int64_t)in->frames[k].n_obj;
    return r;
}

/* Sampling settings of one sequence: temperature 0 is greedy (first of equal
 * maxima); else temperature -> top-k -> top-p -> one draw from *rng. */
typedef struct {
    float temperature;
    int top_k;
    float top_p;
    uint64_t* rng;
    const uint32_t* allow; /* NULL, or n_vocab bits: a cleared bit makes that token's logit -inf */
} MglSampling;

typedef struct {
    int slot;              /* the context's slot holding this sequence's KV cache */
    int64_t n_past;        /* positions already in the slot (decode: the new token's position) */
    const MglSeqInput* in; /* vision and prefill: the prompt */
    int32_t token;         /* decode: the token fed; sample: the token drawn */
    MglSampling samp;
} MglSeq;

/* Figures of the stage benchmarks (`mgllava bench`), in ms. */
typedef struct {
    double clip_ms, convnext_ms, vision_overlap_ms, fuse_ms, objects_ms;
    double prefill_ms, decode_ms_per_token;
    double prefill_first_ms; /* the CPU: the first prefill of the process (prefill_ms is a second one) */
    bool graph;              /* decode replayed a CUDA graph */
} MglBackendBench;

typedef struct {
    size_t weight_bytes; /* the backend's own copy (0 when it uses the host's) */
    size_t step_bytes;   /* weights read by one decode step */
    char device[200];    /* "CPU", or the GPU's name */
    char precision[8];
    size_t free_bytes;  /* memory free now for KV caches and activations (host or device) */
    size_t total_bytes; /* a device's memory (free_bytes of it free now); 0 for the host */
} MglBackendInfo;

typedef struct MglBackend {
    const char* name; /* "cpu", "cuda" */
    /* MGL_OK when the device can run (a GPU is present and works) */
    MglStatus (*probe)(int gpu_id, MglErr* err);
    /* devices present, usable or not (NULL for the CPU) */
    int (*device_count)(void);
    MglStatus (*model_new)(const MglModelWeights* w, const MglBackendParams* p, MglBackendModel** out, MglErr* err);
    void (*model_free)(MglBackendModel* bm);
    void (*model_info)(const MglBackendModel* bm, MglBackendInfo* out);
    MglStatus (*ctx_new)(MglBackendModel* bm, const MglBackendCtxParams* p, MglBackendCtx** out, MglErr* err);
    void (*ctx_free)(MglBackendCtx* bc);
    /* Room for n positions in every sequence's slot (before vision/prefill). */
    MglStatus (*reserve)(MglBackendCtx* bc, MglSeq* const* seqs, int n, int64_t n_pos, MglErr* err);
    /* The prompt embeddings of each sequence (kept in the backend for prefill). */
    MglStatus (*vision)(MglBackendCtx* bc, MglSeq* const* seqs, int n, MglErr* err);
    /* The decoder over each sequence's embeddings at positions 0..L-1; logits of the last row. */
    MglStatus (*prefill)(MglBackendCtx* bc, MglSeq* const* seqs, int n, MglErr* err);
    /* One step: each sequence's token at position n_past; its logits. */
    MglStatus (*decode)(MglBackendCtx* bc, MglSeq* const* seqs, int n, MglErr* err);
    /* Each sequence's next token from its last logits, into seq->token. */
    MglStatus (*sample)(MglBackendCtx* bc, MglSeq* const* seqs, int n, MglErr* err);

    /* Stages with host buffers (parity tests, `mgllava dump`): shapes as mgl-model.h's mgl_stage_*. */
    MglStatus (*stage_clip)(MglBackendCtx* bc, const float* x336, float* out, MglErr* err);
    MglStatus (*stage_convnext)(MglBackendCtx* bc, const float* x768, float* const so[4], MglErr* err);
    MglStatus (*stage_fuse)(MglBackendCtx* bc, const float* clip, const float* stage3, float* fused, float* gate_logit,
                            MglErr* err);
    MglStatus (*stage_objects)(MglBackendCtx* bc, float* const so[4], const float* boxes768, size_t n, float* pooled,
                               MglErr* err);
    /* The decoder over T host embeddings at positions pos0.. of a slot; logits of the last row or all rows. */
    MglStatus (*forward)(MglBackendCtx* bc, int slot, const float* embeds, int64_t T, int64_t pos0, float* logits,
                         bool all_logits, MglErr* err);
    /* Stage timings on synthetic inputs: vision (reps, median) and T-token prefill + G decode steps. */
    MglStatus (*bench_vision)(MglBackendCtx* bc, int reps, MglBackendBench* out, MglErr* err);
    MglStatus (*bench_llm)(MglBackendCtx* bc, int T, int G, MglBackendBench* out, MglErr* err);
    /* The high-water mark of the backend's device allocations since the last
     * reset (benches); NULL where the backend has no memory of its own. */
    void (*mem_peak_reset)(void);
    size_t (*mem_peak_bytes)(void);
    /* true: the backend makes an image's views itself, from its pixels
     * (MglSeqInput.rgb, x336/x768 NULL); NULL or false: they come made (CPU) */
    bool (*views_on_device)(const MglBackendModel* bm);
} MglBackend;

/* The registry (mgl-backends.c): a backend by name, NULL when this build has none. */
const MglBackend* mgl_backend_get(const char* name);
/* "cpu" always; "cuda" in a CUDA build (loaded at the first mgl_backend_get
 * of it; where it cannot be, a stand-in whose probe says why). */
const char* const* mgl_backend_names(void);

/* Shared by the backends (core, backend-neutral). */
/* The id a draw u in [0, 1) picks: temperature, then top-k, then top-p (as
 * HF's logits warpers), then the draw over what is left. */
int32_t mgl_sample_draw(const float* logits, int64_t V, float temperature, int top_k, float top_p, double u);
/* A uniform draw in [0, 1) from a sampling state (splitmix64). */
double mgl_rng_unit(uint64_t* state);
/* The next token from host logits with `s` (logits of disallowed tokens are set to -inf first). */
int32_t mgl_sample_logits(float* logits, int64_t V, const MglSampling* s);

#ifdef __cplusplus
}
#endif
#endif
