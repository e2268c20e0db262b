/* mgl-model.h: the loaded model and its contexts (core, internal). The core
 * binds the files' tensors to MglModelWeights through the weight table, picks
 * a backend from the registry and talks to it only through MglBackend
 * (mgl-backend.h); no backend includes this header. */
#ifndef MGL_MODEL_H
#define MGL_MODEL_H

#include <glib.h>

#include "mgl-backend.h"
#include "mgl-model-files.h"
#include "mgl-preprocess.h"

struct MglModel {
    MglModelFiles* files;
    MglTokenizer* tok;
    const MglTemplate* tmpl;
    MglModelWeights w; /* bound on the host */
    GPtrArray* owned;  /* f32 copies of small tensors, freed with the model */
    int n_threads;
    int n_ctx;         /* the default context length */
    MglDType kv_dtype; /* the default KV precision (the device weights' precision) */
    int32_t eos_ids[10];
    int n_eos;
    int warned_budget;    /* the answer budget was capped to the context once (logged) */
    const MglBackend* be; /* where the model runs */
    MglBackendModel* bm;
};

struct MglCtx {
    MglModel* m;
    MglCtxParams p;
    MglBackendCtx* bc; /* owns the KV cache of each slot */
};

/* A model over already-built files (takes ownership; no tokenizer): benchmarks. */
MglStatus mgl_model_from_files(MglModelFiles* files, const MglModelParams* params, MglModel** out, MglErr* err);
/* The backend's name ("cpu", "cuda") and its figures. */
const char* mgl_model_backend_name(const MglModel* m);
void mgl_model_backend_info(const MglModel* m, MglBackendInfo* out);

/* Preprocessing (CPU, backend-neutral): the two views and the boxes in the 768 frame. */
MglStatus mgl_stage_preprocess(const MglImage* img, const MglBox* boxes, size_t n_boxes, int limit_num, int order,
                               float** x768, float** x336, float** boxes768, size_t* n_obj, MglErr* err);

/* The context's backend running one stage on host buffers (parity tests,
 * `mgllava dump`); shapes as the CPU stages of cpu/mgl-cpu.h. */
MglStatus mgl_ctx_stage_clip(MglCtx* c, const float* x336, float* out, MglErr* err);
MglStatus mgl_ctx_stage_convnext(MglCtx* c, const float* x768, float* const so[4], MglErr* err);
MglStatus mgl_ctx_stage_fuse(MglCtx* c, const float* clip, const float* stage3, float* fused, float* gate_logit,
                             MglErr* err);
MglStatus mgl_ctx_stage_objects(MglCtx* c, float* const so[4], const float* boxes768, size_t n, float* pooled,
                                MglErr* err);
/* The decoder over `T` input embeddings at positions pos0.. of slot 0 (the
 * KV cache keeps them); logits of the last row, or of all rows. */
MglStatus mgl_llm_forward(MglCtx* c, const float* embeds, int64_t T, int64_t pos0, float* logits, bool all_logits,
                          MglErr* err);
/* Stage benchmarks on the context's backend (MGL_E_UNSUPPORTED when it has none). */
MglStatus mgl_ctx_bench_vision(MglCtx* c, int reps, MglBackendBench* out, MglErr* err);
MglStatus mgl_ctx_bench_llm(MglCtx* c, int T, int G, MglBackendBench* out, MglErr* err);

/* One captioned frame on the context's backend: preprocessing of a 640x480
 * image with 10 boxes, vision, `prompt_tokens` LLM tokens in all (image +
 * object + text), then `gen_tokens` greedy tokens (the first from the
 * prefill); the second of two runs is reported (the first warms up). */
typedef struct {
    double frame_ms, preprocess_ms, vision_ms, prefill_ms, decode_ms;
    int prompt_tokens, generated;
} MglFrameBench;
MglStatus mgl_ctx_bench_frame(MglCtx* c, int prompt_tokens, int gen_tokens, MglFrameBench* out, MglErr* err);

/* Batched decode on the model's backend: B sequences of T synthetic prompt
 * tokens (each prefilled alone), then G decode steps of all B together. */
typedef struct {
    double prefill_ms, step_ms, tokens_per_s;
} MglBatchBench;
MglStatus mgl_model_bench_batch(MglModel* m, int B, int T, int G, MglBatchBench* out, MglErr* err);

/* One request from checks to text, the steps mgl_generate and the scheduler
 * share: mgl_gen_begin (checks, prompt, preprocessing; g->seq is ready for
 * the backend), then after each sampled token mgl_gen_push (true when the
 * request is done: EOS, stop word, budget, the callback's stop, abort), then
 * mgl_gen_finish (the text), mgl_gen_clear. */
typedef struct {
    MglGenParams p; /* defaults resolved */
    MglPrompt pr;
    MglSeqInput in;
    float* b768;  /* the boxes in the 768 frame */
    int64_t L;    /* prompt length in LLM positions */
    uint64_t rng; /* sampling state (splitmix64) */
    MglSeq seq;
    int32_t* gen;
    size_t ng;
    MglDetok* dt;
    MglTimings t;
    MglStatus st;
    volatile int abort;     /* set by the scheduler's abort */
    uint32_t* allow;        /* the token mask buffer (p.token_mask set) */
    struct MglViews* views; /* the image's preprocessed views (shared by requests about one frame) */
    /* a clip (mgl_gen_begin_clip): its frames, their views and boxes (owned) */
    MglSeqFrame* frames;
    struct MglViews** fviews;
    float** fb768;
    size_t n_frames;
} MglGen;

/* The two preprocessed views of one image (768 and 336, CHW f32), shared by
 * the requests about that frame; reference-counted, thread-safe. */
typedef struct MglViews {
    float *x768, *x336;
    uint8_t* rgb;      /* or, for a backend that makes the views itself, the image (packed RGB8) */
    int width, height; /* the original image */
    int refs;
} MglViews;
MglStatus mgl_views_make(const MglImage* img, MglViews** out, MglErr* err);
/* The views for model m's backend: made here, or (views_on_device) the
 * image's pixels for the backend to make them from. */
MglStatus mgl_model_views_make(const MglModel* m, const MglImage* img, MglViews** out, MglErr* err);
MglViews* mgl_views_ref(MglViews* v);
void mgl_views_unref(MglViews* v);

MglStatus mgl_gen_begin(MglModel* m, int64_t n_ctx, const MglImage* image, const MglBox* boxes, size_t n_boxes,
                        const char* question, const MglGenParams* params, MglGen* g, MglErr* err);
/* mgl_gen_begin in two steps, for requests sharing one frame's views: the
 * parameter checks (fills g->p), then the prompt and boxes over the views. */
MglStatus mgl_gen_check(MglModel* m, const char* question, const MglGenParams* params, MglGen* g, MglErr* err);
MglStatus mgl_gen_begin_views(MglModel* m, int64_t n_ctx, MglViews* v, const MglBox* boxes, size_t n_boxes,
                              const char* question, MglGen* g, MglErr* err);
/* The length check, budget, sampling state and buffers once g->in is set (clears g on an error). */
MglStatus mgl_gen_ready(MglModel* m, int64_t n_ctx, MglGen* g, MglErr* err);
/* A begun request run to its end on the context, as mgl_generate does; clears g. */
MglStatus mgl_gen_run(MglCtx* c, MglGen* g, char** text, int32_t** ids, size_t* n_ids, MglTimings* tm, MglErr* err);
/* A clip request (mgl-video.c): checks, the video prompt, each frame's video
 * preprocessing (spec section 11) and boxes; then as mgl_gen_begin. */
MglStatus mgl_gen_begin_clip(MglModel* m, int64_t n_ctx, const MglClipFrame* frames, size_t n_frames,
                             const char* question, const MglGenParams* params, MglGen* g, MglErr* err);
void mgl_gen_clear_clip(MglGen* g);
/* The two views of one video frame (spec section 11): pad with the float
 * mean, normalize, then bilinear (no antialias) to 336 and to 768, each from
 * the padded frame. */
MglStatus mgl_views_make_video(const MglImage* img, MglViews** out, MglErr* err);
/* Once the vision stage has run: the views are released (the two float
 * images of a frame are not held through prefill and decode). */
void mgl_gen_drop_views(MglGen* g);
bool mgl_gen_push(MglModel* m, MglGen* g, MglErr* err);
/* Before each sample: the request's token mask (or none) into g->seq.samp.allow. */
void mgl_gen_prepare_sample(MglModel* m, MglGen* g);
MglStatus mgl_gen_finish(MglModel* m, MglGen* g, char** text, MglErr* err);
void mgl_gen_clear(MglGen* g);


#endif
