/* mgl-cuda-backend.cu: the CUDA backend's table (mgl-backend.h) over the
 * device model and stages of mgl-cuda-model.cu: a request's vision, prefill,
 * decode steps and sampling; the stages on host buffers (parity tests); the
 * stage benchmarks. */
#include <glib.h>

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "mgl-cuda-model.cuh"

/* ---- stages on host buffers (parity tests) -------------------------------------------------- */

static MglStatus cuda_stage_clip(MglBackendCtx* dc, const float* x336, float* out, MglErr* err) {
    cudaSetDevice(dc->dm->dev);
    MGL_TRY(mglc_ensure_vision(dc, err));
    const MglModelWeights* m = &dc->dm->w;
    MGL_TRY(mgl_cuda_upload(dc->x336, x336, sizeof(float) * 3 * 336 * 336, err));
    mglc_clip_dev(dc, dc->s_clip);
    MGL_TRY(mgl_cuda_stream_sync(dc->s_clip, err));
    return mgl_cuda_download(out, dc->clip_out, sizeof(float) * (size_t)(m->n_patches * m->D), err);
}

static MglStatus cuda_stage_convnext(MglBackendCtx* dc, const float* x768, float* const so[4], MglErr* err) {
    cudaSetDevice(dc->dm->dev);
    MGL_TRY(mglc_ensure_vision(dc, err));
    const MglModelWeights* m = &dc->dm->w;
    MGL_TRY(mgl_cuda_upload(dc->x768, x768, sizeof(float) * 3 * MGL_AUX_SIZE * MGL_AUX_SIZE, err));
    mglc_convnext_dev(dc, dc->s_cnx);
    MGL_TRY(mgl_cuda_stream_sync(dc->s_cnx, err));
    for (int s = 0; s < 4; s++) {
        int64_t hs = (MGL_AUX_SIZE / 4) >> s;
        MGL_TRY(mgl_cuda_download(so[s], dc->so[s], sizeof(float) * (size_t)(hs * hs * m->stages[s].C), err));
    }
    return MGL_OK;
}

static MglStatus cuda_stage_fuse(MglBackendCtx* dc, const float* clip, const float* stage3, float* fused,
                                 float* gate_logit, MglErr* err) {
    cudaSetDevice(dc->dm->dev);
    MGL_TRY(mglc_ensure_vision(dc, err));
    const MglModelWeights* m = &dc->dm->w;
    const int64_t P = m->n_patches, D = m->D;
    MGL_TRY(mgl_cuda_upload(dc->clip_out, clip, sizeof(float) * (size_t)(P * D), err));
    MGL_TRY(mgl_cuda_upload(dc->so[3], stage3, sizeof(float) * (size_t)(P * m->stages[3].C), err));
    mglc_fuse_dev(dc, dc->s_main);
    MGL_TRY(mgl_cuda_stream_sync(dc->s_main, err));
    if (gate_logit) MGL_TRY(mgl_cuda_download(gate_logit, dc->f_g, sizeof(float), err));
    return mgl_cuda_download(fused, dc->fused, sizeof(float) * (size_t)(P * D), err);
}

static MglStatus cuda_stage_objects(MglBackendCtx* dc, float* const so[4], const float* boxes768, size_t n,
                                    float* pooled, MglErr* err) {
    cudaSetDevice(dc->dm->dev);
    MGL_TRY(mglc_ensure_vision(dc, err));
    MGL_TRY(mglc_ensure_boxes(dc, (int64_t)n, err));
    const MglModelWeights* m = &dc->dm->w;
    for (int s = 0; s < 4; s++) {
        int64_t hs = (MGL_AUX_SIZE / 4) >> s;
        MGL_TRY(mgl_cuda_upload(dc->so[s], so[s], sizeof(float) * (size_t)(hs * hs * m->stages[s].C), err));
    }
    if (n == 0) return MGL_OK;
    MGL_TRY(mgl_cuda_upload(dc->boxes, boxes768, sizeof(float) * 4 * n, err));
    mglc_objects_dev(dc, dc->s_main, (int64_t)n);
    MGL_TRY(mgl_cuda_stream_sync(dc->s_main, err));
    return mgl_cuda_download(pooled, dc->pooled, sizeof(float) * n * (size_t)m->Cm, err);
}

static MglStatus cuda_forward(MglBackendCtx* dc, int slot, const float* embeds, int64_t T, int64_t pos0, float* logits,
                              bool all_logits, MglErr* err) {
    if (slot < 0 || slot > (int)dc->more.size())
        return mgl_err(err, MGL_E_INVALID, "CUDA backend: slot %d of %d", slot, 1 + (int)dc->more.size());
    if (slot > 0) dc = dc->more[(size_t)(slot - 1)];
    cudaSetDevice(dc->dm->dev);
    const MglLlmConfig* lc = &dc->dm->w.lc;
    if (T <= 0 || pos0 < 0) return mgl_err(err, MGL_E_INVALID, "CUDA decoder: bad token range");
    MGL_TRY(mglc_ensure_kv(dc, pos0 + T, err));
    MGL_TRY(mglc_ensure_llm(dc, T, all_logits, err));
    MGL_TRY(mgl_cuda_upload(dc->x, embeds, sizeof(float) * (size_t)(T * lc->hidden), err));
    mglc_llm_dev(dc, T, pos0, NULL, all_logits);
    MGL_TRY(mgl_cuda_stream_sync(dc->s_main, err));
    return mgl_cuda_download(logits, dc->logits, sizeof(float) * (size_t)((all_logits ? T : 1) * lc->vocab), err);
}

/* ---- a request ---------------------------------------------------------------------------------- */

static double now_ms(void) { return (double)g_get_monotonic_time() / 1000.0; }

/* sample the next token from dc->logits into d_tok and return it */
static MglStatus sample_dev(MglBackendCtx* dc, const MglSampling* p, int32_t* id, MglErr* err) {
    MglCudaStream* s = dc->s_main;
    const int64_t V = dc->dm->w.lc.vocab;
    mgl_cuda_nan_flag(s, dc->logits, V, dc->d_tok + 1); /* d_tok has room for 4 ids; [1] is the flag */
    if (p->allow) { /* constrained decoding: the mask goes to the device and applies there */
        const size_t words = (size_t)((V + 31) / 32);
        if (!dc->d_allow)
            MGL_TRY(mglc_ctx_alloc(dc, (void**)&dc->d_allow, sizeof(uint32_t) * words, "sampling mask", err));
        mglc_fail(s, cudaMemcpyAsync(dc->d_allow, p->allow, sizeof(uint32_t) * words, cudaMemcpyHostToDevice, s->st),
                  "mask upload");
        mgl_cuda_mask_logits(s, dc->logits, V, dc->d_allow);
    }
    if (p->temperature <= 0.0f)
        mgl_cuda_argmax(s, dc->logits, V, dc->d_tok);
    else {
        double u = mgl_rng_unit(p->rng);
        mgl_cuda_sample(s, dc->sampler, dc->logits, p->temperature, p->top_k, p->top_p, u, dc->d_tok);
    }
    mglc_fail(s, cudaMemcpyAsync(id, dc->d_tok, sizeof(int32_t), cudaMemcpyDeviceToHost, s->st), "token download");
    int32_t nan = 0;
    mglc_fail(s, cudaMemcpyAsync(&nan, dc->d_tok + 1, sizeof(int32_t), cudaMemcpyDeviceToHost, s->st), "flag download");
    MglStatus st = mgl_cuda_stream_sync(s, err);
    if (st == MGL_OK && nan)
        st = mgl_err(err, MGL_E_FORMAT, "the model's logits are not numbers (NaN): its weights or inputs are broken");
    dc->last_tok = st == MGL_OK ? *id : -1;
    return st;
}

/* An image's pixels (host, packed RGB8) or its views made on the host. */
typedef struct {
    const float *x336, *x768;
    const uint8_t* rgb;
    int w, h;
} FrameViews;

/* The towers of one image (or one frame of a clip) into the rows of dc->x
 * from `row`: P image rows, then n_obj object rows (on the main stream). */
static MglStatus frame_embeds(MglBackendCtx* dc, const FrameViews* fv, const float* b768, size_t n_obj, bool high_res,
                              int64_t row, MglErr* err) {
    MglBackendModel* dm = dc->dm;
    const MglModelWeights* m = &dm->w;
    const int64_t H = m->lc.hidden, P = m->n_patches;
    MglCudaStream *sm = dc->s_main, *sc = dc->s_clip, *sx = dc->s_cnx;
    if (fv->x336) { /* views made on the host */
        mglc_fail(sc,
                  cudaMemcpyAsync(dc->x336, fv->x336, sizeof(float) * 3 * 336 * 336, cudaMemcpyHostToDevice, sc->st),
                  "upload");
        if (high_res)
            mglc_fail(sx,
                      cudaMemcpyAsync(dc->x768, fv->x768, sizeof(float) * 3 * MGL_AUX_SIZE * MGL_AUX_SIZE,
                                      cudaMemcpyHostToDevice, sx->st),
                      "upload");
    } else { /* made here, on the CLIP stream; ConvNeXt waits for them */
        if (!fv->rgb)
            return mgl_err(err, MGL_E_INVALID, "CUDA backend: an image with neither its pixels nor its views");
        MGL_TRY(mgl_cuda_preprocess(sc, &dc->prep, fv->rgb, fv->w, fv->h, fv->w * 3, dc->x768, dc->x336, err));
        mglc_fail(sc, cudaEventRecord(dc->ev_prep, sc->st), "event");
        if (high_res) mglc_fail(sx, cudaStreamWaitEvent(sx->st, dc->ev_prep, 0), "event wait");
    }
    /* CLIP and ConvNeXt run side by side on their own streams */
    mglc_clip_dev(dc, sc);
    mglc_fail(sc, cudaEventRecord(dc->ev_clip, sc->st), "event");
    if (high_res) {
        mglc_convnext_dev(dc, sx);
        mglc_fail(sx, cudaEventRecord(dc->ev_cnx, sx->st), "event");
    }
    if (n_obj)
        mglc_fail(sm, cudaMemcpyAsync(dc->boxes, b768, sizeof(float) * 4 * n_obj, cudaMemcpyHostToDevice, sm->st),
                  "upload");
    mglc_fail(sm, cudaStreamWaitEvent(sm->st, dc->ev_clip, 0), "event wait");
    const float* img = dc->clip_out;
    if (high_res) {
        mglc_fail(sm, cudaStreamWaitEvent(sm->st, dc->ev_cnx, 0), "event wait");
        mglc_fuse_dev(dc, sm);
        img = dc->fused;
    }
    mglc_mlp2_dev(sm, &m->proj, img, P, dc->mlp_tmp, dc->x + row * H);
    if (n_obj) {
        mglc_objects_dev(dc, sm, (int64_t)n_obj);
        mglc_mlp2_dev(sm, &m->bproj, dc->pooled, (int64_t)n_obj, dc->mlp_tmp, dc->x + (row + P) * H);
    }
    return MGL_OK;
}

/* Vision + the embedding sequence into dc->x. `ids` (n_ids) with the image at
 * image_pos; x336/x768/boxes768 from the CPU preprocessing. A clip runs its
 * frames one after the other (they share the tower buffers). */
static MglStatus vision_embeds(MglBackendCtx* dc, const MglSeqInput* in, MglErr* err) {
    MglBackendModel* dm = dc->dm;
    const MglModelWeights* m = &dm->w;
    const int64_t H = m->lc.hidden, P = m->n_patches;
    const MglSeqLayout ly = mgl_seq_layout(in, P);
    const int64_t L = ly.L;
    const int32_t* ids = in->ids;
    const size_t n_ids = in->n_ids;
    size_t max_obj = in->n_obj;
    for (size_t j = 0; j < in->n_frames; j++)
        if (in->frames[j].n_obj > max_obj) max_obj = in->frames[j].n_obj;
    MGL_TRY(mglc_ensure_vision(dc, err));
    MGL_TRY(mglc_ensure_boxes(dc, (int64_t)max_obj, err));
    MGL_TRY(mglc_ensure_llm(dc, L, false, err));
    if ((int64_t)n_ids > dc->ids_cap) {
        mglc_ctx_release(dc, dc->d_ids);
        dc->d_ids = NULL;
        dc->ids_cap = 0;
        MGL_TRY(mglc_ctx_alloc(dc, (void**)&dc->d_ids, sizeof(int32_t) * (n_ids + 64), "token ids", err));
        dc->ids_cap = (int64_t)n_ids + 64;
    }
    MglCudaStream* sm = dc->s_main;
    if (n_ids)
        mglc_fail(sm, cudaMemcpyAsync(dc->d_ids, ids, sizeof(int32_t) * n_ids, cudaMemcpyHostToDevice, sm->st),
                  "upload");
    /* text rows: the prefix and the suffix */
    mgl_cuda_embed(sm, &m->embed, dc->d_ids, ly.prefix, dc->x);
    if (ly.n_suffix > 0) mgl_cuda_embed(sm, &m->embed, dc->d_ids + ly.prefix, ly.n_suffix, dc->x + ly.suffix * H);
    if (in->n_frames == 0) {
        const FrameViews fv = {in->x336, in->x768, in->rgb, in->rgb_w, in->rgb_h};
        MglStatus st = frame_embeds(dc, &fv, in->boxes768, in->n_obj, in->use_high_res, ly.image, err);
        MglStatus sy = mglc_sync_all(dc, st == MGL_OK ? err : NULL);
        return st != MGL_OK ? st : sy;
    }
    for (size_t j = 0; j < in->n_frames; j++) {
        const MglSeqFrame* f = &in->frames[j];
        const FrameViews fv = {f->x336, f->x768, NULL, 0, 0};
        MglStatus st = frame_embeds(dc, &fv, f->boxes768, f->n_obj, in->use_high_res, mgl_seq_frame_row(in, P, j), err);
        MglStatus sy = mglc_sync_all(dc, st == MGL_OK ? err : NULL); /* the next frame reuses the tower buffers */
        MGL_TRY(st);
        MGL_TRY(sy);
    }
    return MGL_OK;
}

/* ---- benchmarks ------------------------------------------------------------------------------- */

static float ev_ms(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, a, b);
    return ms;
}

static double median_of(std::vector<double> v) {
    if (v.empty()) return 0.0;
    for (size_t i = 1; i < v.size(); i++)
        for (size_t j = i; j > 0 && v[j] < v[j - 1]; j--) std::swap(v[j], v[j - 1]);
    return v[v.size() / 2];
}

static void fill_inputs(float* x336, float* x768) {
    for (int i = 0; i < 3 * 336 * 336; i++) x336[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int i = 0; i < 3 * MGL_AUX_SIZE * MGL_AUX_SIZE; i++)
        x768[i] = (float)((i * 2246822519u) % 1000) / 500.0f - 1.0f;
}

static MglStatus cuda_bench_vision(MglBackendCtx* dc, int reps, MglBackendBench* out, MglErr* err) {
    cudaSetDevice(dc->dm->dev);
    MGL_TRY(mglc_ensure_vision(dc, err));
    const int64_t nbox = 10;
    MGL_TRY(mglc_ensure_boxes(dc, nbox, err));
    float* x336 = (float*)malloc(sizeof(float) * 3 * 336 * 336);
    float* x768 = (float*)malloc(sizeof(float) * 3 * MGL_AUX_SIZE * MGL_AUX_SIZE);
    fill_inputs(x336, x768);
    float boxes[4 * nbox];
    for (int64_t i = 0; i < nbox; i++) {
        boxes[4 * i] = (float)(i * 60);
        boxes[4 * i + 1] = (float)(i * 40);
        boxes[4 * i + 2] = (float)(i * 60 + 200);
        boxes[4 * i + 3] = (float)(i * 40 + 300);
    }
    MglStatus st = mgl_cuda_upload(dc->x336, x336, sizeof(float) * 3 * 336 * 336, err);
    if (st == MGL_OK) st = mgl_cuda_upload(dc->x768, x768, sizeof(float) * 3 * MGL_AUX_SIZE * MGL_AUX_SIZE, err);
    if (st == MGL_OK) st = mgl_cuda_upload(dc->boxes, boxes, sizeof boxes, err);
    free(x336);
    free(x768);
    MGL_TRY(st);
    std::vector<double> tc, tx, tb, tf, to;
    for (int r = 0; r <= reps && st == MGL_OK; r++) { /* r == 0 warms up */
        cudaEventRecord(dc->ev_t0, dc->s_clip->st);
        mglc_clip_dev(dc, dc->s_clip);
        cudaEventRecord(dc->ev_t1, dc->s_clip->st);
        st = mgl_cuda_stream_sync(dc->s_clip, err);
        double a = ev_ms(dc->ev_t0, dc->ev_t1);
        cudaEventRecord(dc->ev_t0, dc->s_cnx->st);
        mglc_convnext_dev(dc, dc->s_cnx);
        cudaEventRecord(dc->ev_t1, dc->s_cnx->st);
        if (st == MGL_OK) st = mgl_cuda_stream_sync(dc->s_cnx, err);
        double b = ev_ms(dc->ev_t0, dc->ev_t1);
        /* both towers at once, as a frame runs them */
        double h0 = now_ms();
        mglc_clip_dev(dc, dc->s_clip);
        mglc_convnext_dev(dc, dc->s_cnx);
        if (st == MGL_OK) st = mglc_sync_all(dc, err);
        double both = now_ms() - h0;
        cudaEventRecord(dc->ev_t0, dc->s_main->st);
        mglc_fuse_dev(dc, dc->s_main);
        cudaEventRecord(dc->ev_t1, dc->s_main->st);
        if (st == MGL_OK) st = mgl_cuda_stream_sync(dc->s_main, err);
        double f = ev_ms(dc->ev_t0, dc->ev_t1);
        cudaEventRecord(dc->ev_t0, dc->s_main->st);
        mglc_objects_dev(dc, dc->s_main, nbox);
        cudaEventRecord(dc->ev_t1, dc->s_main->st);
        if (st == MGL_OK) st = mgl_cuda_stream_sync(dc->s_main, err);
        double o = ev_ms(dc->ev_t0, dc->ev_t1);
        if (r > 0) {
            tc.push_back(a);
            tx.push_back(b);
            tb.push_back(both);
            tf.push_back(f);
            to.push_back(o);
        }
    }
    MGL_TRY(st);
    out->clip_ms = median_of(tc);
    out->convnext_ms = median_of(tx);
    out->vision_overlap_ms = median_of(tb);
    out->fuse_ms = median_of(tf);
    out->objects_ms = median_of(to);
    return MGL_OK;
}

static MglStatus cuda_bench_llm(MglBackendCtx* dc, int T, int G, MglBackendBench* out, MglErr* err) {
    cudaSetDevice(dc->dm->dev);
    const MglModelWeights* m = &dc->dm->w;
    const int64_t V = m->lc.vocab;
    MGL_TRY(mglc_ensure_kv(dc, (int64_t)T + G + 1, err));
    MGL_TRY(mglc_ensure_llm(dc, T, false, err));
    if ((int64_t)T > dc->ids_cap) {
        mglc_ctx_release(dc, dc->d_ids);
        dc->d_ids = NULL;
        dc->ids_cap = 0;
        MGL_TRY(mglc_ctx_alloc(dc, (void**)&dc->d_ids, sizeof(int32_t) * ((size_t)T + 64), "token ids", err));
        dc->ids_cap = T + 64;
    }
    std::vector<int32_t> ids((size_t)T);
    for (int i = 0; i < T; i++) ids[(size_t)i] = (int32_t)(((int64_t)i * 7919) % V);
    MGL_TRY(mgl_cuda_upload(dc->d_ids, ids.data(), sizeof(int32_t) * (size_t)T, err));
    MglCudaStream* s = dc->s_main;
    uint64_t rng = 0;
    MglSampling gp = {0.0f, 0, 1.0f, &rng, NULL};
    int32_t id = 0;
    /* warm-up prefill (cuBLAS heuristics, module loading) */
    mgl_cuda_embed(s, &dc->dm->w.embed, dc->d_ids, T, dc->x);
    mglc_llm_dev(dc, T, 0, NULL, false);
    MGL_TRY(mgl_cuda_stream_sync(s, err));
    mgl_cuda_embed(s, &dc->dm->w.embed, dc->d_ids, T, dc->x);
    cudaEventRecord(dc->ev_t0, s->st);
    mglc_llm_dev(dc, T, 0, NULL, false);
    cudaEventRecord(dc->ev_t1, s->st);
    MGL_TRY(sample_dev(dc, &gp, &id, err));
    out->prefill_ms = ev_ms(dc->ev_t0, dc->ev_t1);
    /* one step outside the timing captures the graph */
    MGL_TRY(mglc_decode_step(dc, T, err));
    MGL_TRY(sample_dev(dc, &gp, &id, err));
    double h0 = now_ms();
    for (int i = 1; i < G; i++) {
        MGL_TRY(mglc_decode_step(dc, T + i, err));
        MGL_TRY(sample_dev(dc, &gp, &id, err));
    }
    double h1 = now_ms();
    out->decode_ms_per_token = G > 1 ? (h1 - h0) / (G - 1) : 0.0;
    out->graph = dc->graph_ready;
    return MGL_OK;
}

/* ---- the backend table ------------------------------------------------------------------------ */

/* The context of a sequence's slot (slot 0 is `dc` itself). */
static MglStatus slot_ctx(MglBackendCtx* dc, const MglSeq* s, MglBackendCtx** out, MglErr* err) {
    const int n = 1 + (int)dc->more.size();
    if (s->slot < 0 || s->slot >= n) return mgl_err(err, MGL_E_INVALID, "CUDA backend: slot %d of %d", s->slot, n);
    *out = s->slot == 0 ? dc : dc->more[(size_t)(s->slot - 1)];
    cudaSetDevice(dc->dm->dev);
    return MGL_OK;
}

static MglStatus cuda_probe(int gpu_id, MglErr* err) { return mgl_cuda_probe(gpu_id, err); }

static void cuda_model_info(const MglBackendModel* dm, MglBackendInfo* out) {
    memset(out, 0, sizeof *out);
    out->weight_bytes = dm->weight_bytes;
    out->step_bytes = dm->llm_bytes;
    mgl_cuda_device_name(dm->dev, out->device, sizeof out->device);
    snprintf(out->precision, sizeof out->precision, "%s", dm->prec_name);
    size_t fr = 0, tot = 0;
    cudaSetDevice(dm->dev);
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) {
        out->free_bytes = fr;
        out->total_bytes = tot;
    } else {
        cudaGetLastError();
    }
}

static void cuda_ctx_free(MglBackendCtx* dc) {
    if (!dc) return;
    for (MglBackendCtx* o : dc->more) mglc_ctx_free(o);
    dc->more.clear();
    mglc_ctx_free(dc);
}

/* Slots are separate device contexts (own KV cache, buffers and decode
 * graph); a batch runs sequence by sequence on them. */
static MglStatus cuda_ctx_new(MglBackendModel* dm, const MglBackendCtxParams* p, MglBackendCtx** out, MglErr* err) {
    MGL_TRY(mglc_ctx_new(dm, p, out, err));
    const int n = p && p->n_seq > 1 ? p->n_seq : 1;
    for (int i = 1; i < n; i++) {
        MglBackendCtx* o = NULL;
        MglStatus st = mglc_ctx_new(dm, p, &o, err);
        if (st != MGL_OK) {
            cuda_ctx_free(*out);
            *out = NULL;
            return st;
        }
        (*out)->more.push_back(o);
    }
    return MGL_OK;
}

static MglStatus cuda_reserve(MglBackendCtx* dc, MglSeq* const* seqs, int n, int64_t n_pos, MglErr* err) {
    for (int i = 0; i < n; i++) {
        MglBackendCtx* c = NULL;
        MGL_TRY(slot_ctx(dc, seqs[i], &c, err));
        MGL_TRY(mglc_ensure_kv(c, n_pos, err));
    }
    return MGL_OK;
}

static MglStatus cuda_vision(MglBackendCtx* dc, MglSeq* const* seqs, int n, MglErr* err) {
    for (int i = 0; i < n; i++) {
        MglBackendCtx* c = NULL;
        MGL_TRY(slot_ctx(dc, seqs[i], &c, err));
        MGL_TRY(vision_embeds(c, seqs[i]->in, err));
    }
    return MGL_OK;
}

static MglStatus cuda_prefill(MglBackendCtx* dc, MglSeq* const* seqs, int n, MglErr* err) {
    for (int i = 0; i < n; i++) {
        MglBackendCtx* c = NULL;
        MGL_TRY(slot_ctx(dc, seqs[i], &c, err));
        const int64_t L = mgl_seq_layout(seqs[i]->in, dc->dm->w.n_patches).L;
        MGL_TRY(mglc_ensure_kv(c, L, err));
        mglc_llm_dev(c, L, 0, NULL, false);
        seqs[i]->n_past = L;
    }
    return MGL_OK;
}

/* MGL_CUDA_BATCHED=1: steps of two or more sequences run as one batched step
 * (mglc_decode_batch) instead of slot by slot. */
static bool batched_decode(void) {
    const char* e = getenv("MGL_CUDA_BATCHED");
    return e && *e && strcmp(e, "0") != 0;
}

static MglStatus cuda_decode(MglBackendCtx* dc, MglSeq* const* seqs, int n, MglErr* err) {
    if (n >= 2 && batched_decode()) {
        std::vector<MglBackendCtx*> cs((size_t)n);
        std::vector<int32_t> tok((size_t)n);
        std::vector<int64_t> pos((size_t)n);
        for (int i = 0; i < n; i++) {
            MGL_TRY(slot_ctx(dc, seqs[i], &cs[(size_t)i], err));
            MGL_TRY(mglc_ensure_kv(cs[(size_t)i], seqs[i]->n_past + 1, err));
            for (int j = 0; j < i; j++)
                if (cs[(size_t)j] == cs[(size_t)i])
                    return mgl_err(err, MGL_E_INVALID, "CUDA backend: slot %d twice in one step", seqs[i]->slot);
            tok[(size_t)i] = seqs[i]->token;
            pos[(size_t)i] = seqs[i]->n_past;
        }
        return mglc_decode_batch(dc, cs.data(), tok.data(), pos.data(), n, err);
    }
    for (int i = 0; i < n; i++) {
        MglBackendCtx* c = NULL;
        MGL_TRY(slot_ctx(dc, seqs[i], &c, err));
        MglSeq* s = seqs[i];
        MGL_TRY(mglc_ensure_kv(c, s->n_past + 1, err));
        if (s->token != c->last_tok) { /* d_tok holds the last sampled id; any other is uploaded */
            MGL_TRY(mgl_cuda_upload(c->d_tok, &s->token, sizeof(int32_t), err));
            c->last_tok = s->token;
        }
        MGL_TRY(mglc_decode_step(c, s->n_past, err));
    }
    return MGL_OK;
}

static MglStatus cuda_sample(MglBackendCtx* dc, MglSeq* const* seqs, int n, MglErr* err) {
    for (int i = 0; i < n; i++) {
        MglBackendCtx* c = NULL;
        MGL_TRY(slot_ctx(dc, seqs[i], &c, err));
        MGL_TRY(sample_dev(c, &seqs[i]->samp, &seqs[i]->token, err));
    }
    return MGL_OK;
}

/* Views made on the device unless MGL_CUDA_HOST_VIEWS=1 (the CPU's, uploaded as floats). */
static bool cuda_views_on_device(const MglBackendModel* dm) {
    (void)dm;
    const char* e = getenv("MGL_CUDA_HOST_VIEWS");
    return !(e && *e && strcmp(e, "0") != 0);
}

extern "C" const MglBackend mgl_backend_cuda = {
    "cuda",
    cuda_probe,
    mgl_cuda_device_count,
    mglc_model_new,
    mglc_model_free,
    cuda_model_info,
    cuda_ctx_new,
    cuda_ctx_free,
    cuda_reserve,
    cuda_vision,
    cuda_prefill,
    cuda_decode,
    cuda_sample,
    cuda_stage_clip,
    cuda_stage_convnext,
    cuda_stage_fuse,
    cuda_stage_objects,
    cuda_forward,
    cuda_bench_vision,
    cuda_bench_llm,
    mgl_cuda_reset_peak,
    mgl_cuda_peak_bytes,
    cuda_views_on_device,
};
