/* mgl-cuda-model.cu: MG-LLaVA on the CUDA backend.
 *
 * The model is bound on the host first (mgl-model.c); this file uploads the
 * bound weights once, matrices in the chosen precision (f16/bf16/f32) and the
 * small vectors (norms, biases, conv taps) in f32, and runs the stages with
 * the ops of mgl-cuda-ops.cu:
 *   - CLIP on its own stream, ConvNeXt on another, joined by events before
 *     the fusion, which runs on the main stream with the projectors and the LLM;
 *   - Llama q|k|v and gate|up are concatenated at upload (one GEMM each, as
 *     Phi-3 stores them);
 *   - the KV cache lives on the device in the model precision;
 *   - one decode step (embedding of the token on the device, all layers, the
 *     logits) is captured once in a CUDA graph and replayed with the position
 *     read from device memory; sampling (argmax, or top-k/top-p) follows on
 *     the device and only the token id comes back to the host.
 * The CPU keeps image preprocessing and the box pipeline. */
#include <glib.h>

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "mgl-cuda-internal.cuh"
extern "C" {
#include "mgl-model.h"
}

/* ---- the device model ---------------------------------------------------------- */

struct DClip {
    MglCudaW qkv, o, fc1, fc2;
    float *qkv_b, *o_b, *fc1_b, *fc2_b, *ln1_w, *ln1_b, *ln2_w, *ln2_b;
};
struct DBlock {
    float *dw_w, *dw_b, *ln_w, *ln_b, *fc1_b, *fc2_b, *gamma;
    MglCudaW fc1, fc2;
};
struct DStage {
    float *ds_ln_w, *ds_ln_b, *ds_b;
    MglCudaW ds;
    std::vector<DBlock> blocks;
};
struct DLayer {
    MglCudaW qkv, o, gu, down;
    float *ln1, *ln2;
};
struct DMlp2 {
    MglCudaW l0, l2;
    float *b0, *b2;
};

struct MglCudaModel {
    MglModel* m;
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
    /* CLIP */
    MglCudaW patch_w;
    float *cls, *pos, *pre_w, *pre_b;
    std::vector<DClip> clip;
    /* ConvNeXt */
    MglCudaW stem_w;
    float *stem_b, *stem_ln_w, *stem_ln_b;
    DStage st4[4];
    /* fusion */
    MglCudaW slow_conv, slow_proj, fast_proj, gate0, gate2;
    float *slow_conv_b, *slow_proj_b, *fast_conv_w, *fast_conv_b, *fast_proj_b, *gate0_b, *gate2_b;
    DMlp2 proj, bproj;
    /* LLM */
    MglCudaW embed, lm_head;
    float *final_norm, *rope_inv;
    std::vector<DLayer> L;
    size_t weight_bytes, llm_bytes;
};

static void* dm_alloc(MglCudaModel* dm, size_t bytes, const char* what) {
    if (dm->st != MGL_OK) return NULL;
    bytes = (bytes + 255) & ~(size_t)255;
    dm->need += bytes;
    if (dm->in_llm) dm->llm_need += bytes;
    if (dm->counting) return NULL;
    void* p = NULL;
    dm->st = mglc_malloc(&p, bytes, what, dm->err);
    if (dm->st == MGL_OK) dm->allocs.push_back(p);
    return p;
}

static float* upF(MglCudaModel* dm, const float* h, int64_t n) {
    float* d = (float*)dm_alloc(dm, sizeof(float) * (size_t)n, "f32 tensors");
    if (!d || !h) return d;
    dm->st = mgl_cuda_upload(d, h, sizeof(float) * (size_t)n, dm->err);
    return d;
}

/* several vectors end to end */
static float* upFcat(MglCudaModel* dm, const float* const* hs, const int64_t* ns, int k) {
    int64_t n = 0;
    for (int i = 0; i < k; i++) n += ns[i];
    float* d = (float*)dm_alloc(dm, sizeof(float) * (size_t)n, "f32 tensors");
    if (!d) return d;
    int64_t off = 0;
    for (int i = 0; i < k && dm->st == MGL_OK; i++) {
        dm->st = mgl_cuda_upload(d + off, hs[i], sizeof(float) * (size_t)ns[i], dm->err);
        off += ns[i];
    }
    return d;
}

/* host matrix -> device rows at `dst`, converted to the precision in slices */
static void put_rows(MglCudaModel* dm, uint8_t* dst, const MglWeight* w) {
    const size_t n = (size_t)(w->rows * w->cols), es = mglc_dtsize(dm->prec), hes = mgl_dtype_size(w->dtype);
    const size_t slice = (size_t)8 << 20;
    void* stage = w->dtype == dm->prec ? NULL : malloc((n < slice ? n : slice) * es);
    if (w->dtype != dm->prec && !stage) {
        dm->st = mgl_err(dm->err, MGL_E_NOMEM, "CUDA: host staging buffer");
        return;
    }
    for (size_t i = 0; i < n && dm->st == MGL_OK; i += slice) {
        size_t k = n - i < slice ? n - i : slice;
        const uint8_t* src = (const uint8_t*)w->data + i * hes;
        if (stage) {
            mgl_convert_floats(src, w->dtype, stage, dm->prec, k);
            src = (const uint8_t*)stage;
        }
        dm->st = mgl_cuda_upload(dst + i * es, src, k * es, dm->err);
    }
    free(stage);
}

/* matrices stacked by rows (same cols) as one device matrix */
static MglCudaW upWcat(MglCudaModel* dm, const MglWeight* const* ws, int k) {
    MglCudaW r;
    memset(&r, 0, sizeof r);
    int64_t rows = 0;
    for (int i = 0; i < k; i++) rows += ws[i]->rows;
    r.rows = rows;
    r.cols = ws[0]->cols;
    r.dtype = dm->prec;
    r.data = dm_alloc(dm, (size_t)(rows * r.cols) * mglc_dtsize(dm->prec), "weights");
    if (!r.data) return r;
    uint8_t* p = (uint8_t*)r.data;
    for (int i = 0; i < k && dm->st == MGL_OK; i++) {
        put_rows(dm, p, ws[i]);
        p += (size_t)(ws[i]->rows * ws[i]->cols) * mglc_dtsize(dm->prec);
    }
    return r;
}

static MglCudaW upW(MglCudaModel* dm, const MglWeight* w) { return upWcat(dm, &w, 1); }

static void upload_all(MglCudaModel* dm) {
    MglModel* m = dm->m;
    const int64_t D = m->D, P = m->n_patches;
    /* CLIP */
    dm->patch_w = upW(dm, &m->patch_w);
    dm->cls = upF(dm, m->cls, D);
    dm->pos = upF(dm, m->pos, (P + 1) * D);
    dm->pre_w = upF(dm, m->pre_ln_w, D);
    dm->pre_b = upF(dm, m->pre_ln_b, D);
    dm->clip.resize((size_t)m->clip_layers_used);
    for (int l = 0; l < m->clip_layers_used; l++) {
        ClipLayer* h = &m->clip_layers[l];
        DClip* d = &dm->clip[(size_t)l];
        const MglWeight* qkv[3] = {&h->q, &h->k, &h->v};
        d->qkv = upWcat(dm, qkv, 3);
        const float* qb[3] = {h->q_b, h->k_b, h->v_b};
        const int64_t qn[3] = {D, D, D};
        d->qkv_b = upFcat(dm, qb, qn, 3);
        d->o = upW(dm, &h->o);
        d->o_b = upF(dm, h->o_b, D);
        d->fc1 = upW(dm, &h->fc1);
        d->fc1_b = upF(dm, h->fc1_b, h->fc1.rows);
        d->fc2 = upW(dm, &h->fc2);
        d->fc2_b = upF(dm, h->fc2_b, D);
        d->ln1_w = upF(dm, h->ln1_w, D);
        d->ln1_b = upF(dm, h->ln1_b, D);
        d->ln2_w = upF(dm, h->ln2_w, D);
        d->ln2_b = upF(dm, h->ln2_b, D);
    }
    /* ConvNeXt */
    const int64_t C0 = m->stages[0].C;
    dm->stem_w = upW(dm, &m->stem_w);
    dm->stem_b = upF(dm, m->stem_b, C0);
    dm->stem_ln_w = upF(dm, m->stem_ln_w, C0);
    dm->stem_ln_b = upF(dm, m->stem_ln_b, C0);
    for (int s = 0; s < 4; s++) {
        CnxStage* S = &m->stages[s];
        DStage* d = &dm->st4[s];
        const int64_t C = S->C;
        if (s > 0) {
            const int64_t Cp = m->stages[s - 1].C;
            d->ds_ln_w = upF(dm, S->ds_ln_w, Cp);
            d->ds_ln_b = upF(dm, S->ds_ln_b, Cp);
            d->ds = upW(dm, &S->ds);
            d->ds_b = upF(dm, S->ds_b, C);
        }
        d->blocks.resize((size_t)S->depth);
        for (int k = 0; k < S->depth; k++) {
            CnxBlock* B = &S->blocks[k];
            DBlock* b = &d->blocks[(size_t)k];
            b->dw_w = upF(dm, B->dw_w, C * 49);
            b->dw_b = upF(dm, B->dw_b, C);
            b->ln_w = upF(dm, B->ln_w, C);
            b->ln_b = upF(dm, B->ln_b, C);
            b->fc1 = upW(dm, &B->fc1);
            b->fc1_b = upF(dm, B->fc1_b, B->fc1.rows);
            b->fc2 = upW(dm, &B->fc2);
            b->fc2_b = upF(dm, B->fc2_b, C);
            b->gamma = upF(dm, B->gamma, C);
        }
    }
    /* fusion, projectors */
    dm->slow_conv = upW(dm, &m->slow_conv);
    dm->slow_conv_b = upF(dm, m->slow_conv_b, m->slow_conv.rows);
    dm->slow_proj = upW(dm, &m->slow_proj);
    dm->slow_proj_b = upF(dm, m->slow_proj_b, m->slow_proj.rows);
    dm->fast_conv_w = upF(dm, m->fast_conv_w, D * 49);
    dm->fast_conv_b = upF(dm, m->fast_conv_b, D);
    dm->fast_proj = upW(dm, &m->fast_proj);
    dm->fast_proj_b = upF(dm, m->fast_proj_b, m->fast_proj.rows);
    dm->gate0 = upW(dm, &m->gate0);
    dm->gate0_b = upF(dm, m->gate0_b, m->gate0.rows);
    dm->gate2 = upW(dm, &m->gate2);
    dm->gate2_b = upF(dm, m->gate2_b, m->gate2.rows);
    const Mlp2* hp[2] = {&m->proj, &m->bproj};
    DMlp2* dp[2] = {&dm->proj, &dm->bproj};
    for (int i = 0; i < 2; i++) {
        dp[i]->l0 = upW(dm, &hp[i]->l0);
        dp[i]->b0 = upF(dm, hp[i]->b0, hp[i]->l0.rows);
        dp[i]->l2 = upW(dm, &hp[i]->l2);
        dp[i]->b2 = upF(dm, hp[i]->b2, hp[i]->l2.rows);
    }
    /* LLM: what one decode step reads is counted in llm_need */
    const MglLlmConfig* lc = &m->lc;
    dm->embed = upW(dm, &m->embed);
    dm->in_llm = true;
    dm->lm_head = lc->tie_embeddings ? dm->embed : upW(dm, &m->lm_head);
    if (lc->tie_embeddings) dm->llm_need += (size_t)(dm->embed.rows * dm->embed.cols) * mglc_dtsize(dm->prec);
    dm->final_norm = upF(dm, m->final_norm, lc->hidden);
    dm->L.resize((size_t)lc->n_layers);
    for (int l = 0; l < lc->n_layers; l++) {
        LlmLayer* h = &m->layers[l];
        DLayer* d = &dm->L[(size_t)l];
        if (lc->arch == MGL_LLM_PHI3) {
            d->qkv = upW(dm, &h->qkv);
            d->gu = upW(dm, &h->gate_up);
        } else {
            const MglWeight* qkv[3] = {&h->q, &h->k, &h->v};
            d->qkv = upWcat(dm, qkv, 3);
            const MglWeight* gu[2] = {&h->gate, &h->up};
            d->gu = upWcat(dm, gu, 2);
        }
        d->o = upW(dm, &h->o);
        d->down = upW(dm, &h->down);
        d->ln1 = upF(dm, h->ln1, lc->hidden);
        d->ln2 = upF(dm, h->ln2, lc->hidden);
    }
    dm->in_llm = false;
}

extern "C" void mgl_cuda_model_free(MglCudaModel* dm) {
    if (!dm) return;
    cudaSetDevice(dm->dev);
    for (void* p : dm->allocs) mgl_cuda_free(p);
    mgl_cuda_free(dm->rope_inv);
    delete dm;
}

extern "C" size_t mgl_cuda_model_weight_bytes(const MglCudaModel* dm) { return dm->weight_bytes; }
extern "C" size_t mgl_cuda_model_llm_bytes(const MglCudaModel* dm) { return dm->llm_bytes; }
extern "C" const char* mgl_cuda_model_precision(const MglCudaModel* dm) { return dm->prec_name; }

extern "C" MglStatus mgl_cuda_model_new(MglModel* m, int gpu_id, const char* precision, MglCudaModel** out,
                                        MglErr* err) {
    *out = NULL;
    MglDType prec;
    if (!precision || !*precision || !strcmp(precision, "f16") || !strcmp(precision, "fp16")) prec = MGL_DT_F16;
    else if (!strcmp(precision, "bf16")) prec = MGL_DT_BF16;
    else if (!strcmp(precision, "f32") || !strcmp(precision, "fp32")) prec = MGL_DT_F32;
    else return mgl_err(err, MGL_E_INVALID, "precision \"%s\" (f16, bf16 or f32)", precision);
    MGL_TRY(mgl_cuda_probe(gpu_id, err));
    const MglLlmConfig* lc = &m->lc;
    if (lc->head_dim > 256 || lc->n_kv_heads <= 0 || lc->n_heads % lc->n_kv_heads != 0 ||
        m->D / (m->clip_heads ? m->clip_heads : 1) > 256)
        return mgl_err(err, MGL_E_UNSUPPORTED, "CUDA backend: head size above 256 or uneven GQA groups");
    MglCudaModel* dm = new MglCudaModel();
    dm->m = m;
    dm->dev = gpu_id;
    dm->prec = prec;
    snprintf(dm->prec_name, sizeof dm->prec_name, "%s", prec == MGL_DT_F16 ? "f16" : prec == MGL_DT_BF16 ? "bf16" : "f32");
    dm->err = err;
    dm->st = MGL_OK;
    /* pass 1: count */
    dm->counting = true;
    upload_all(dm);
    size_t need = dm->need, llm = dm->llm_need;
    size_t fr = 0, tot = 0;
    cudaError_t e = cudaMemGetInfo(&fr, &tot);
    if (e != cudaSuccess) {
        delete dm;
        return mgl_err(err, MGL_E_DEVICE, "CUDA: cudaMemGetInfo: %s", cudaGetErrorString(e));
    }
    const size_t margin = (size_t)256 << 20;
    if (need + margin > fr) {
        char name[160];
        mgl_cuda_device_name(gpu_id, name, sizeof name);
        delete dm;
        return mgl_err(err, MGL_E_NOMEM,
                       "CUDA: out of device memory: the model needs %.1f MiB for its weights in %s (plus %.0f MiB "
                       "working space), %.1f MiB free of %.1f MiB on device %d %s",
                       need / 1048576.0, precision ? precision : "f16", margin / 1048576.0, fr / 1048576.0,
                       tot / 1048576.0, gpu_id, name);
    }
    /* pass 2: allocate and upload */
    dm->counting = false;
    dm->need = dm->llm_need = 0;
    upload_all(dm);
    if (dm->st == MGL_OK) dm->st = mgl_cuda_rope_table(lc->head_dim, lc->rope_theta, &dm->rope_inv, err);
    if (dm->st != MGL_OK) {
        MglStatus st = dm->st;
        mgl_cuda_model_free(dm);
        return st;
    }
    dm->weight_bytes = need;
    dm->llm_bytes = llm;
    dm->err = NULL;
    *out = dm;
    return MGL_OK;
}

/* ---- contexts ------------------------------------------------------------------------ */

struct MglCudaCtx {
    MglCudaModel* dm;
    MglCudaStream *s_main, *s_clip, *s_cnx;
    cudaEvent_t ev_start, ev_clip, ev_cnx, ev_t0, ev_t1;
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
    int *d_pos;
    int32_t *d_tok, *d_ids;
    int64_t ids_cap;
    MglCudaSampler* sampler;
    /* the decode step */
    cudaGraphExec_t gexec;
    bool graph_ready, graph_off;
};

static MglStatus ctx_alloc(MglCudaCtx* dc, void** p, size_t bytes, const char* what, MglErr* err) {
    MGL_TRY(mglc_malloc(p, bytes, what, err));
    dc->bufs.push_back(*p);
    return MGL_OK;
}

static void ctx_release(MglCudaCtx* dc, void* p) {
    if (!p) return;
    for (size_t i = 0; i < dc->bufs.size(); i++)
        if (dc->bufs[i] == p) {
            dc->bufs.erase(dc->bufs.begin() + (long)i);
            break;
        }
    mgl_cuda_free(p);
}

static void graph_drop(MglCudaCtx* dc) {
    if (dc->graph_ready) cudaGraphExecDestroy(dc->gexec);
    dc->graph_ready = false;
}

extern "C" void mgl_cuda_ctx_free(MglCudaCtx* dc) {
    if (!dc) return;
    cudaSetDevice(dc->dm->dev);
    if (dc->s_main) cudaStreamSynchronize(dc->s_main->st);
    graph_drop(dc);
    mgl_cuda_stream_free(dc->s_main);
    mgl_cuda_stream_free(dc->s_clip);
    mgl_cuda_stream_free(dc->s_cnx);
    cudaEvent_t evs[5] = {dc->ev_start, dc->ev_clip, dc->ev_cnx, dc->ev_t0, dc->ev_t1};
    for (int i = 0; i < 5; i++)
        if (evs[i]) cudaEventDestroy(evs[i]);
    for (void* p : dc->bufs) mgl_cuda_free(p);
    mgl_cuda_sampler_free(dc->sampler);
    delete dc;
}

extern "C" MglStatus mgl_cuda_ctx_new(MglCudaModel* dm, MglCudaCtx** out, MglErr* err) {
    *out = NULL;
    cudaSetDevice(dm->dev);
    MglCudaCtx* dc = new MglCudaCtx(); /* value-initialised: every pointer NULL */
    dc->dm = dm;
    MglStatus st = mgl_cuda_stream_new(dm->dev, &dc->s_main, err);
    if (st == MGL_OK) st = mgl_cuda_stream_new(dm->dev, &dc->s_clip, err);
    if (st == MGL_OK) st = mgl_cuda_stream_new(dm->dev, &dc->s_cnx, err);
    cudaEvent_t* evs[5] = {&dc->ev_start, &dc->ev_clip, &dc->ev_cnx, &dc->ev_t0, &dc->ev_t1};
    for (int i = 0; i < 5 && st == MGL_OK; i++) {
        cudaError_t e = cudaEventCreate(evs[i]);
        if (e != cudaSuccess) st = mgl_err(err, MGL_E_DEVICE, "CUDA: event: %s", cudaGetErrorString(e));
    }
    if (st == MGL_OK) st = ctx_alloc(dc, (void**)&dc->d_pos, sizeof(int) * 4, "decode state", err);
    if (st == MGL_OK) st = ctx_alloc(dc, (void**)&dc->d_tok, sizeof(int32_t) * 4, "decode state", err);
    if (st == MGL_OK) st = mgl_cuda_sampler_new(dm->m->lc.vocab, &dc->sampler, err);
    if (st != MGL_OK) {
        mgl_cuda_ctx_free(dc);
        return st;
    }
    *out = dc;
    return MGL_OK;
}

static MglStatus sync_all(MglCudaCtx* dc, MglErr* err) {
    MglStatus a = mgl_cuda_stream_sync(dc->s_clip, err);
    MglStatus b = mgl_cuda_stream_sync(dc->s_cnx, a == MGL_OK ? err : NULL);
    MglStatus c = mgl_cuda_stream_sync(dc->s_main, a == MGL_OK && b == MGL_OK ? err : NULL);
    return a != MGL_OK ? a : (b != MGL_OK ? b : c);
}

/* vision buffers, sized from the model once */
static MglStatus ensure_vision(MglCudaCtx* dc, MglErr* err) {
    if (dc->vis) return MGL_OK;
    MglModel* m = dc->dm->m;
    const int64_t D = m->D, P = m->n_patches, T = P + 1;
    const int64_t FF = m->clip_layers_used > 0 ? m->clip_layers[0].fc1.rows : 4 * D;
    const int64_t C3 = m->stages[3].C, GH = m->gate_hidden > 0 ? m->gate_hidden : 1;
    const int64_t HID = m->proj.l0.rows > m->bproj.l0.rows ? m->proj.l0.rows : m->bproj.l0.rows;
    int64_t big = 0;
    for (int s = 0; s < 4; s++) {
        int64_t hs = (MGL_AUX_SIZE / 4) >> s, n = hs * hs * 4 * m->stages[s].C;
        if (n > big) big = n;
    }
    struct {
        float** p;
        int64_t n;
    } want[] = {{&dc->x336, 3 * 336 * 336}, {&dc->x768, 3 * MGL_AUX_SIZE * MGL_AUX_SIZE}, {&dc->cx, T * D},
                {&dc->ch, T * D}, {&dc->cqkv, T * 3 * D}, {&dc->ca, T * D}, {&dc->cf, T * FF},
                {&dc->clip_out, P * D}, {&dc->t1, big}, {&dc->t2, big}, {&dc->f_hs, P * C3}, {&dc->f_h, P * D},
                {&dc->f_t, P * D}, {&dc->f_l, P * D}, {&dc->f_mean, 2 * D}, {&dc->f_gh, GH}, {&dc->f_g, 4},
                {&dc->fused, P * D}, {&dc->mlp_tmp, P * HID}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        MGL_TRY(ctx_alloc(dc, (void**)want[i].p, sizeof(float) * (size_t)want[i].n, "vision activations", err));
    for (int s = 0; s < 4; s++) {
        int64_t hs = (MGL_AUX_SIZE / 4) >> s;
        MGL_TRY(ctx_alloc(dc, (void**)&dc->so[s], sizeof(float) * (size_t)(hs * hs * m->stages[s].C),
                          "ConvNeXt maps", err));
    }
    dc->vis = true;
    return MGL_OK;
}

static MglStatus ensure_boxes(MglCudaCtx* dc, int64_t n, MglErr* err) {
    if (n <= dc->box_cap) return MGL_OK;
    MglModel* m = dc->dm->m;
    int64_t cap = n < 128 ? 128 : n;
    ctx_release(dc, dc->boxes);
    ctx_release(dc, dc->pooled);
    dc->boxes = dc->pooled = NULL;
    dc->box_cap = 0;
    const int64_t HID = m->proj.l0.rows > m->bproj.l0.rows ? m->proj.l0.rows : m->bproj.l0.rows;
    (void)HID;
    MGL_TRY(ctx_alloc(dc, (void**)&dc->boxes, sizeof(float) * (size_t)(4 * cap), "boxes", err));
    MGL_TRY(ctx_alloc(dc, (void**)&dc->pooled, sizeof(float) * (size_t)(cap * m->Cm), "object features", err));
    dc->box_cap = cap;
    return MGL_OK;
}

/* activations for T tokens (and logits for all of them when all_logits) */
static MglStatus ensure_llm(MglCudaCtx* dc, int64_t T, bool all_logits, MglErr* err) {
    const MglLlmConfig* lc = &dc->dm->m->lc;
    const int64_t rows = all_logits ? T : 1;
    if (T <= dc->t_cap && rows <= dc->logit_rows) return MGL_OK;
    cudaStreamSynchronize(dc->s_main->st);
    graph_drop(dc); /* the graph holds the old pointers */
    const int64_t H = lc->hidden, qd = (int64_t)lc->n_heads * lc->head_dim, kvd = (int64_t)lc->n_kv_heads * lc->head_dim;
    const int64_t F = lc->intermediate, V = lc->vocab;
    int64_t cap = T > dc->t_cap ? (T < 64 ? 64 : T) : dc->t_cap;
    int64_t lr = rows > dc->logit_rows ? rows : dc->logit_rows;
    float** ps[8] = {&dc->x, &dc->h, &dc->qkv, &dc->a, &dc->g, &dc->u, &dc->logits, &dc->part};
    for (int i = 0; i < 8; i++) {
        ctx_release(dc, *ps[i]);
        *ps[i] = NULL;
    }
    dc->t_cap = dc->logit_rows = 0;
    int64_t n[8] = {cap * H, cap * H, cap * (qd + 2 * kvd), cap * qd, cap * 2 * F, cap * F, lr * V,
                    mglc_attn_partial_floats(4, lc->n_heads, lc->head_dim)};
    for (int i = 0; i < 8; i++)
        MGL_TRY(ctx_alloc(dc, (void**)ps[i], sizeof(float) * (size_t)n[i], "decoder activations", err));
    dc->t_cap = cap;
    dc->logit_rows = lr;
    return MGL_OK;
}

/* KV cache for n positions: grown (and copied) when needed */
static MglStatus ensure_kv(MglCudaCtx* dc, int64_t n, MglErr* err) {
    if (n <= dc->kv_cap) return MGL_OK;
    MglModel* m = dc->dm->m;
    const MglLlmConfig* lc = &m->lc;
    const int64_t kvd = (int64_t)lc->n_kv_heads * lc->head_dim;
    const size_t es = mglc_dtsize(dc->dm->prec);
    int64_t cap = (n + 255) / 256 * 256;
    if (cap > m->n_ctx && n <= m->n_ctx) cap = m->n_ctx;
    size_t bytes = (size_t)lc->n_layers * (size_t)cap * (size_t)kvd * es;
    void *k = NULL, *v = NULL;
    MglStatus st = mglc_malloc(&k, bytes, "the KV cache", err);
    if (st == MGL_OK) st = mglc_malloc(&v, bytes, "the KV cache", err);
    if (st != MGL_OK) {
        mgl_cuda_free(k);
        return st;
    }
    cudaStreamSynchronize(dc->s_main->st);
    graph_drop(dc);
    if (dc->kv_cap > 0) {
        size_t spitch = (size_t)dc->kv_cap * kvd * es, dpitch = (size_t)cap * kvd * es;
        cudaError_t e = cudaMemcpy2D(k, dpitch, dc->kc, spitch, spitch, (size_t)lc->n_layers, cudaMemcpyDeviceToDevice);
        if (e == cudaSuccess)
            e = cudaMemcpy2D(v, dpitch, dc->vc, spitch, spitch, (size_t)lc->n_layers, cudaMemcpyDeviceToDevice);
        if (e != cudaSuccess) {
            mgl_cuda_free(k);
            mgl_cuda_free(v);
            return mgl_err(err, MGL_E_DEVICE, "CUDA: KV cache copy: %s", cudaGetErrorString(e));
        }
    }
    ctx_release(dc, dc->kc);
    ctx_release(dc, dc->vc);
    dc->kc = k;
    dc->vc = v;
    dc->bufs.push_back(k);
    dc->bufs.push_back(v);
    dc->kv_cap = cap;
    return MGL_OK;
}

/* ---- stages on the device ----------------------------------------------------------------- */

static void clip_dev(MglCudaCtx* dc, MglCudaStream* s) {
    MglCudaModel* dm = dc->dm;
    MglModel* m = dm->m;
    const int64_t D = m->D, P = m->n_patches, T = P + 1, NH = m->clip_heads, HS = D / NH;
    const int64_t FF = m->clip_layers_used > 0 ? m->clip_layers[0].fc1.rows : 4 * D;
    const int64_t img = m->clip_grid * m->patch;
    float* x = dc->cx;
    mgl_cuda_patchify_conv(s, dc->x336, true, img, img, 3, m->patch, &dm->patch_w, NULL, x + D);
    mglc_fail(s, cudaMemcpyAsync(x, dm->cls, sizeof(float) * (size_t)D, cudaMemcpyDeviceToDevice, s->st), "copy");
    mgl_cuda_add(s, x, dm->pos, T * D);
    mgl_cuda_layernorm(s, x, T, D, dm->pre_w, dm->pre_b, m->clip_eps, x);
    for (int l = 0; l < m->clip_layers_used; l++) {
        const DClip* L = &dm->clip[(size_t)l];
        mgl_cuda_layernorm(s, x, T, D, L->ln1_w, L->ln1_b, m->clip_eps, dc->ch);
        mgl_cuda_matmul(s, dc->ch, T, &L->qkv, L->qkv_b, dc->cqkv, 3 * D);
        mglc_attention(s, dc->cqkv, 3 * D, T, 0, NULL, dc->cqkv + D, dc->cqkv + 2 * D, 3 * D, MGL_DT_F32, NH, NH, HS,
                       false, dc->ca, D, NULL);
        mgl_cuda_matmul(s, dc->ca, T, &L->o, L->o_b, dc->ch, D);
        mgl_cuda_add(s, x, dc->ch, T * D);
        mgl_cuda_layernorm(s, x, T, D, L->ln2_w, L->ln2_b, m->clip_eps, dc->ch);
        mgl_cuda_matmul(s, dc->ch, T, &L->fc1, L->fc1_b, dc->cf, FF);
        if (m->clip_quick_gelu) mgl_cuda_quick_gelu(s, dc->cf, T * FF);
        else mgl_cuda_gelu_erf(s, dc->cf, T * FF);
        mgl_cuda_matmul(s, dc->cf, T, &L->fc2, L->fc2_b, dc->ch, D);
        mgl_cuda_add(s, x, dc->ch, T * D);
    }
    mglc_fail(s, cudaMemcpyAsync(dc->clip_out, x + D, sizeof(float) * (size_t)(P * D), cudaMemcpyDeviceToDevice, s->st),
              "copy");
}

static void convnext_dev(MglCudaCtx* dc, MglCudaStream* s) {
    MglCudaModel* dm = dc->dm;
    MglModel* m = dm->m;
    int64_t H = MGL_AUX_SIZE / 4, W = H;
    const int64_t C0 = m->stages[0].C;
    mgl_cuda_patchify_conv(s, dc->x768, true, MGL_AUX_SIZE, MGL_AUX_SIZE, 3, 4, &dm->stem_w, dm->stem_b, dc->so[0]);
    mgl_cuda_layernorm(s, dc->so[0], H * W, C0, dm->stem_ln_w, dm->stem_ln_b, 1e-6f, dc->so[0]);
    for (int st = 0; st < 4; st++) {
        const DStage* S = &dm->st4[st];
        const int64_t C = m->stages[st].C;
        if (st > 0) {
            const int64_t Cp = m->stages[st - 1].C;
            mgl_cuda_layernorm(s, dc->so[st - 1], H * W, Cp, S->ds_ln_w, S->ds_ln_b, 1e-6f, dc->t1);
            mgl_cuda_patchify_conv(s, dc->t1, false, H, W, Cp, 2, &S->ds, S->ds_b, dc->so[st]);
            H /= 2;
            W /= 2;
        }
        const int64_t N = H * W;
        for (const DBlock& B : S->blocks) {
            mgl_cuda_dwconv7_nhwc(s, dc->so[st], H, W, C, B.dw_w, B.dw_b, dc->t1);
            mgl_cuda_layernorm(s, dc->t1, N, C, B.ln_w, B.ln_b, 1e-6f, dc->t1);
            mgl_cuda_matmul(s, dc->t1, N, &B.fc1, B.fc1_b, dc->t2, 4 * C);
            mgl_cuda_gelu_erf(s, dc->t2, N * 4 * C);
            mgl_cuda_matmul(s, dc->t2, N, &B.fc2, B.fc2_b, dc->t1, C);
            mgl_cuda_scale_add(s, dc->so[st], dc->t1, B.gamma, N, C);
        }
    }
}

static void fuse_dev(MglCudaCtx* dc, MglCudaStream* s) {
    MglCudaModel* dm = dc->dm;
    MglModel* m = dm->m;
    const int64_t P = m->n_patches, D = m->D, C3 = m->stages[3].C, G = m->clip_grid;
    mgl_cuda_matmul(s, dc->so[3], P, &dm->slow_conv, dm->slow_conv_b, dc->f_hs, C3);
    mgl_cuda_gelu_erf(s, dc->f_hs, P * C3);
    mgl_cuda_matmul(s, dc->f_hs, P, &dm->slow_proj, dm->slow_proj_b, dc->f_h, D);
    mgl_cuda_dwconv7_nhwc(s, dc->clip_out, G, G, D, dm->fast_conv_w, dm->fast_conv_b, dc->f_t);
    mgl_cuda_gelu_erf(s, dc->f_t, P * D);
    mgl_cuda_matmul(s, dc->f_t, P, &dm->fast_proj, dm->fast_proj_b, dc->f_l, D);
    mgl_cuda_add(s, dc->f_l, dc->clip_out, P * D);
    mglc_colmean(s, dc->f_l, P, D, dc->f_mean);
    mglc_colmean(s, dc->f_h, P, D, dc->f_mean + D);
    mgl_cuda_matmul(s, dc->f_mean, 1, &dm->gate0, dm->gate0_b, dc->f_gh, m->gate_hidden);
    mgl_cuda_gelu_erf(s, dc->f_gh, m->gate_hidden);
    mgl_cuda_matmul(s, dc->f_gh, 1, &dm->gate2, dm->gate2_b, dc->f_g, 1);
    mglc_gate_mix(s, dc->f_l, dc->f_h, dc->f_g, dc->fused, P * D);
}

static void objects_dev(MglCudaCtx* dc, MglCudaStream* s, int64_t n) {
    MglModel* m = dc->dm->m;
    int C[4];
    for (int i = 0; i < 4; i++) C[i] = m->stages[i].C;
    const float* so[4] = {dc->so[0], dc->so[1], dc->so[2], dc->so[3]};
    mgl_cuda_roi_pool(s, so, C, dc->boxes, n, dc->pooled);
}

static void mlp2_dev(MglCudaStream* s, const DMlp2* p, const float* x, int64_t T, float* tmp, float* out) {
    mgl_cuda_matmul(s, x, T, &p->l0, p->b0, tmp, p->l0.rows);
    mgl_cuda_gelu_erf(s, tmp, T * p->l0.rows);
    mgl_cuda_matmul(s, tmp, T, &p->l2, p->b2, out, p->l2.rows);
}

/* The decoder over dc->x (T rows). Positions from pos0, or from *d_pos when
 * non-NULL (the graph-captured decode step, T == 1). */
static void llm_dev(MglCudaCtx* dc, int64_t T, int64_t pos0, const int* d_pos, bool all_logits) {
    MglCudaModel* dm = dc->dm;
    const MglLlmConfig* lc = &dm->m->lc;
    MglCudaStream* s = dc->s_main;
    const int64_t H = lc->hidden, NH = lc->n_heads, NKV = lc->n_kv_heads, HS = lc->head_dim;
    const int64_t qd = NH * HS, kvd = NKV * HS, F = lc->intermediate, ld = qd + 2 * kvd;
    const size_t es = mglc_dtsize(dm->prec);
    for (int l = 0; l < lc->n_layers; l++) {
        const DLayer* L = &dm->L[(size_t)l];
        uint8_t* kc = (uint8_t*)dc->kc + (size_t)l * (size_t)dc->kv_cap * (size_t)kvd * es;
        uint8_t* vc = (uint8_t*)dc->vc + (size_t)l * (size_t)dc->kv_cap * (size_t)kvd * es;
        mgl_cuda_rmsnorm(s, dc->x, T, H, L->ln1, lc->rms_eps, dc->h);
        mgl_cuda_matmul(s, dc->h, T, &L->qkv, NULL, dc->qkv, ld);
        mglc_rope(s, dc->qkv, ld, T, NH, HS, pos0, d_pos, dm->rope_inv);
        mglc_rope(s, dc->qkv + qd, ld, T, NKV, HS, pos0, d_pos, dm->rope_inv);
        mglc_store_rows(s, dc->qkv + qd, ld, T, kvd, kc, dm->prec, pos0, d_pos);
        mglc_store_rows(s, dc->qkv + qd + kvd, ld, T, kvd, vc, dm->prec, pos0, d_pos);
        mglc_attention(s, dc->qkv, ld, T, pos0, d_pos, kc, vc, kvd, dm->prec, NH, NKV, HS, true, dc->a, qd, dc->part);
        mgl_cuda_matmul(s, dc->a, T, &L->o, NULL, dc->h, H);
        mgl_cuda_add(s, dc->x, dc->h, T * H);
        mgl_cuda_rmsnorm(s, dc->x, T, H, L->ln2, lc->rms_eps, dc->h);
        mgl_cuda_matmul(s, dc->h, T, &L->gu, NULL, dc->g, 2 * F);
        mgl_cuda_silu_mul(s, dc->g, 2 * F, dc->g + F, 2 * F, dc->u, T, F);
        mgl_cuda_matmul(s, dc->u, T, &L->down, NULL, dc->h, H);
        mgl_cuda_add(s, dc->x, dc->h, T * H);
    }
    if (all_logits) {
        mgl_cuda_rmsnorm(s, dc->x, T, H, dm->final_norm, lc->rms_eps, dc->h);
        mgl_cuda_matmul(s, dc->h, T, &dm->lm_head, NULL, dc->logits, lc->vocab);
    } else {
        mgl_cuda_rmsnorm(s, dc->x + (T - 1) * H, 1, H, dm->final_norm, lc->rms_eps, dc->h);
        mgl_cuda_matmul(s, dc->h, 1, &dm->lm_head, NULL, dc->logits, lc->vocab);
    }
}

/* One decode step at position `pos` for the token in d_tok: the graph when it
 * can be captured, the same launches eagerly otherwise. */
static MglStatus decode_step(MglCudaCtx* dc, int64_t pos, MglErr* err) {
    MglCudaStream* s = dc->s_main;
    int hp = (int)pos;
    mglc_fail(s, cudaMemcpyAsync(dc->d_pos, &hp, sizeof hp, cudaMemcpyHostToDevice, s->st), "position upload");
    if (!dc->graph_ready && !dc->graph_off && !getenv("MGL_CUDA_NO_GRAPH")) {
        cudaGraph_t g = NULL;
        cudaError_t e = cudaStreamBeginCapture(s->st, cudaStreamCaptureModeThreadLocal);
        if (e == cudaSuccess) {
            s->capturing = true;
            mgl_cuda_embed(s, &dc->dm->embed, dc->d_tok, 1, dc->x);
            llm_dev(dc, 1, 0, dc->d_pos, false);
            s->capturing = false;
            e = cudaStreamEndCapture(s->st, &g);
        }
        if (e == cudaSuccess && s->st_err == MGL_OK) e = cudaGraphInstantiate(&dc->gexec, g, 0);
        if (g) cudaGraphDestroy(g);
        if (e == cudaSuccess && s->st_err == MGL_OK) dc->graph_ready = true;
        else {
            /* run eagerly from now on; the reason goes to the log once */
            cudaGetLastError();
            if (s->st_err != MGL_OK) return mgl_cuda_stream_sync(s, err);
            g_message("mgllava: CUDA graph capture of the decode step failed (%s); decoding without a graph",
                      cudaGetErrorString(e));
            dc->graph_off = true;
        }
    }
    if (dc->graph_ready) {
        mglc_fail(s, cudaGraphLaunch(dc->gexec, s->st), "graph launch");
    } else {
        mgl_cuda_embed(s, &dc->dm->embed, dc->d_tok, 1, dc->x);
        llm_dev(dc, 1, pos, NULL, false);
    }
    return MGL_OK;
}

/* ---- host-buffer stage entry points (parity tests) ----------------------------------------- */

static MglCudaCtx* dctx(MglCtx* c) { return c ? c->cuda : NULL; }

#define NEED_DEV(c, err)                                                                            \
    do {                                                                                            \
        if (!dctx(c)) return mgl_err(err, MGL_E_INVALID, "CUDA: the context's model is not on a GPU"); \
        cudaSetDevice(dctx(c)->dm->dev);                                                            \
    } while (0)

extern "C" MglStatus mgl_cuda_stage_clip(MglCtx* c, const float* x336, float* out, MglErr* err) {
    NEED_DEV(c, err);
    MglCudaCtx* dc = dctx(c);
    MGL_TRY(ensure_vision(dc, err));
    MglModel* m = dc->dm->m;
    MGL_TRY(mgl_cuda_upload(dc->x336, x336, sizeof(float) * 3 * 336 * 336, err));
    clip_dev(dc, dc->s_clip);
    MGL_TRY(mgl_cuda_stream_sync(dc->s_clip, err));
    return mgl_cuda_download(out, dc->clip_out, sizeof(float) * (size_t)(m->n_patches * m->D), err);
}

extern "C" MglStatus mgl_cuda_stage_convnext(MglCtx* c, const float* x768, float* const so[4], MglErr* err) {
    NEED_DEV(c, err);
    MglCudaCtx* dc = dctx(c);
    MGL_TRY(ensure_vision(dc, err));
    MglModel* m = dc->dm->m;
    MGL_TRY(mgl_cuda_upload(dc->x768, x768, sizeof(float) * 3 * MGL_AUX_SIZE * MGL_AUX_SIZE, err));
    convnext_dev(dc, dc->s_cnx);
    MGL_TRY(mgl_cuda_stream_sync(dc->s_cnx, err));
    for (int s = 0; s < 4; s++) {
        int64_t hs = (MGL_AUX_SIZE / 4) >> s;
        MGL_TRY(mgl_cuda_download(so[s], dc->so[s], sizeof(float) * (size_t)(hs * hs * m->stages[s].C), err));
    }
    return MGL_OK;
}

extern "C" MglStatus mgl_cuda_stage_fuse(MglCtx* c, const float* clip, const float* stage3, float* fused,
                                         float* gate_logit, MglErr* err) {
    NEED_DEV(c, err);
    MglCudaCtx* dc = dctx(c);
    MGL_TRY(ensure_vision(dc, err));
    MglModel* m = dc->dm->m;
    const int64_t P = m->n_patches, D = m->D;
    MGL_TRY(mgl_cuda_upload(dc->clip_out, clip, sizeof(float) * (size_t)(P * D), err));
    MGL_TRY(mgl_cuda_upload(dc->so[3], stage3, sizeof(float) * (size_t)(P * m->stages[3].C), err));
    fuse_dev(dc, dc->s_main);
    MGL_TRY(mgl_cuda_stream_sync(dc->s_main, err));
    if (gate_logit) MGL_TRY(mgl_cuda_download(gate_logit, dc->f_g, sizeof(float), err));
    return mgl_cuda_download(fused, dc->fused, sizeof(float) * (size_t)(P * D), err);
}

extern "C" MglStatus mgl_cuda_stage_objects(MglCtx* c, float* const so[4], const float* boxes768, size_t n,
                                            float* pooled, MglErr* err) {
    NEED_DEV(c, err);
    MglCudaCtx* dc = dctx(c);
    MGL_TRY(ensure_vision(dc, err));
    MGL_TRY(ensure_boxes(dc, (int64_t)n, err));
    MglModel* m = dc->dm->m;
    for (int s = 0; s < 4; s++) {
        int64_t hs = (MGL_AUX_SIZE / 4) >> s;
        MGL_TRY(mgl_cuda_upload(dc->so[s], so[s], sizeof(float) * (size_t)(hs * hs * m->stages[s].C), err));
    }
    if (n == 0) return MGL_OK;
    MGL_TRY(mgl_cuda_upload(dc->boxes, boxes768, sizeof(float) * 4 * n, err));
    objects_dev(dc, dc->s_main, (int64_t)n);
    MGL_TRY(mgl_cuda_stream_sync(dc->s_main, err));
    return mgl_cuda_download(pooled, dc->pooled, sizeof(float) * n * (size_t)m->Cm, err);
}

extern "C" MglStatus mgl_cuda_llm_forward(MglCtx* c, const float* embeds, int64_t T, int64_t pos0, float* logits,
                                          bool all_logits, MglErr* err) {
    NEED_DEV(c, err);
    MglCudaCtx* dc = dctx(c);
    const MglLlmConfig* lc = &dc->dm->m->lc;
    if (T <= 0 || pos0 < 0) return mgl_err(err, MGL_E_INVALID, "CUDA decoder: bad token range");
    MGL_TRY(ensure_kv(dc, pos0 + T, err));
    MGL_TRY(ensure_llm(dc, T, all_logits, err));
    MGL_TRY(mgl_cuda_upload(dc->x, embeds, sizeof(float) * (size_t)(T * lc->hidden), err));
    llm_dev(dc, T, pos0, NULL, all_logits);
    MGL_TRY(mgl_cuda_stream_sync(dc->s_main, err));
    return mgl_cuda_download(logits, dc->logits, sizeof(float) * (size_t)((all_logits ? T : 1) * lc->vocab), err);
}

/* ---- generation ------------------------------------------------------------------------------ */

static double now_ms(void) { return (double)g_get_monotonic_time() / 1000.0; }

/* sample the next token from dc->logits into d_tok and return it */
static MglStatus sample_dev(MglCudaCtx* dc, const MglGenParams* p, uint64_t* rng, int32_t* id, MglErr* err) {
    MglCudaStream* s = dc->s_main;
    const int64_t V = dc->dm->m->lc.vocab;
    if (p->temperature <= 0.0f) mgl_cuda_argmax(s, dc->logits, V, dc->d_tok);
    else {
        double u = mgl_rng_unit(rng);
        mgl_cuda_sample(s, dc->sampler, dc->logits, p->temperature, p->top_k, p->top_p, u, dc->d_tok);
    }
    mglc_fail(s, cudaMemcpyAsync(id, dc->d_tok, sizeof(int32_t), cudaMemcpyDeviceToHost, s->st), "token download");
    return mgl_cuda_stream_sync(s, err);
}

/* Vision + the embedding sequence into dc->x. `ids` (n_ids) with the image at
 * image_pos; x336/x768/boxes768 from the CPU preprocessing. */
static MglStatus vision_embeds(MglCudaCtx* dc, const int32_t* ids, size_t n_ids, size_t image_pos, const float* x336,
                               const float* x768, const float* b768, size_t n_obj, bool high_res, MglErr* err) {
    MglCudaModel* dm = dc->dm;
    MglModel* m = dm->m;
    const int64_t H = m->lc.hidden, P = m->n_patches, D = m->D, ip = (int64_t)image_pos;
    const int64_t L = (int64_t)n_ids + P + (int64_t)n_obj;
    MGL_TRY(ensure_vision(dc, err));
    MGL_TRY(ensure_boxes(dc, (int64_t)n_obj, err));
    MGL_TRY(ensure_llm(dc, L, false, err));
    if ((int64_t)n_ids > dc->ids_cap) {
        ctx_release(dc, dc->d_ids);
        dc->d_ids = NULL;
        dc->ids_cap = 0;
        MGL_TRY(ctx_alloc(dc, (void**)&dc->d_ids, sizeof(int32_t) * (n_ids + 64), "token ids", err));
        dc->ids_cap = (int64_t)n_ids + 64;
    }
    MglCudaStream *sm = dc->s_main, *sc = dc->s_clip, *sx = dc->s_cnx;
    /* CLIP and ConvNeXt run side by side on their own streams */
    mglc_fail(sc, cudaMemcpyAsync(dc->x336, x336, sizeof(float) * 3 * 336 * 336, cudaMemcpyHostToDevice, sc->st),
              "upload");
    clip_dev(dc, sc);
    mglc_fail(sc, cudaEventRecord(dc->ev_clip, sc->st), "event");
    if (high_res) {
        mglc_fail(sx,
                  cudaMemcpyAsync(dc->x768, x768, sizeof(float) * 3 * MGL_AUX_SIZE * MGL_AUX_SIZE,
                                  cudaMemcpyHostToDevice, sx->st),
                  "upload");
        convnext_dev(dc, sx);
        mglc_fail(sx, cudaEventRecord(dc->ev_cnx, sx->st), "event");
    }
    if (n_ids)
        mglc_fail(sm, cudaMemcpyAsync(dc->d_ids, ids, sizeof(int32_t) * n_ids, cudaMemcpyHostToDevice, sm->st),
                  "upload");
    if (n_obj)
        mglc_fail(sm, cudaMemcpyAsync(dc->boxes, b768, sizeof(float) * 4 * n_obj, cudaMemcpyHostToDevice, sm->st),
                  "upload");
    /* text rows: [0, ip) and the suffix */
    mgl_cuda_embed(sm, &dm->embed, dc->d_ids, ip, dc->x);
    if ((int64_t)n_ids > ip) mgl_cuda_embed(sm, &dm->embed, dc->d_ids + ip, (int64_t)n_ids - ip, dc->x + (ip + P + (int64_t)n_obj) * H);
    mglc_fail(sm, cudaStreamWaitEvent(sm->st, dc->ev_clip, 0), "event wait");
    const float* img = dc->clip_out;
    if (high_res) {
        mglc_fail(sm, cudaStreamWaitEvent(sm->st, dc->ev_cnx, 0), "event wait");
        fuse_dev(dc, sm);
        img = dc->fused;
    }
    (void)D;
    mlp2_dev(sm, &dm->proj, img, P, dc->mlp_tmp, dc->x + ip * H);
    if (n_obj) {
        objects_dev(dc, sm, (int64_t)n_obj);
        mlp2_dev(sm, &dm->bproj, dc->pooled, (int64_t)n_obj, dc->mlp_tmp, dc->x + (ip + P) * H);
    }
    return sync_all(dc, err);
}

extern "C" MglStatus mgl_cuda_prefill(MglCtx* c, MglGenRequest* rq, int32_t* first, MglTimings* t, MglErr* err) {
    NEED_DEV(c, err);
    MglCudaCtx* dc = dctx(c);
    double t1 = now_ms();
    MGL_TRY(ensure_kv(dc, rq->L + rq->p.max_new_tokens + 1, err));
    MGL_TRY(vision_embeds(dc, rq->pr.ids, rq->pr.n_ids, rq->pr.image_pos, rq->x336, rq->x768, rq->b768, rq->n_obj,
                          rq->p.use_high_res, err));
    double t2 = now_ms();
    t->vision_ms = t2 - t1;
    llm_dev(dc, rq->L, 0, NULL, false);
    MglStatus st = sample_dev(dc, &rq->p, &rq->rng, first, err);
    t->prefill_ms = now_ms() - t2;
    return st;
}

extern "C" MglStatus mgl_cuda_step(MglCtx* c, MglGenRequest* rq, int64_t pos, int32_t* next, MglErr* err) {
    NEED_DEV(c, err);
    MglCudaCtx* dc = dctx(c);
    /* d_tok already holds the last sampled id */
    MGL_TRY(decode_step(dc, pos, err));
    return sample_dev(dc, &rq->p, &rq->rng, next, err);
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

extern "C" MglStatus mgl_cuda_bench_vision(MglCtx* c, int reps, MglCudaBench* out, MglErr* err) {
    NEED_DEV(c, err);
    MglCudaCtx* dc = dctx(c);
    MGL_TRY(ensure_vision(dc, err));
    const int64_t nbox = 10;
    MGL_TRY(ensure_boxes(dc, nbox, err));
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
        clip_dev(dc, dc->s_clip);
        cudaEventRecord(dc->ev_t1, dc->s_clip->st);
        st = mgl_cuda_stream_sync(dc->s_clip, err);
        double a = ev_ms(dc->ev_t0, dc->ev_t1);
        cudaEventRecord(dc->ev_t0, dc->s_cnx->st);
        convnext_dev(dc, dc->s_cnx);
        cudaEventRecord(dc->ev_t1, dc->s_cnx->st);
        if (st == MGL_OK) st = mgl_cuda_stream_sync(dc->s_cnx, err);
        double b = ev_ms(dc->ev_t0, dc->ev_t1);
        /* both towers at once, as a frame runs them */
        double h0 = now_ms();
        clip_dev(dc, dc->s_clip);
        convnext_dev(dc, dc->s_cnx);
        if (st == MGL_OK) st = sync_all(dc, err);
        double both = now_ms() - h0;
        cudaEventRecord(dc->ev_t0, dc->s_main->st);
        fuse_dev(dc, dc->s_main);
        cudaEventRecord(dc->ev_t1, dc->s_main->st);
        if (st == MGL_OK) st = mgl_cuda_stream_sync(dc->s_main, err);
        double f = ev_ms(dc->ev_t0, dc->ev_t1);
        cudaEventRecord(dc->ev_t0, dc->s_main->st);
        objects_dev(dc, dc->s_main, nbox);
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

extern "C" MglStatus mgl_cuda_bench_llm(MglCtx* c, int T, int G, MglCudaBench* out, MglErr* err) {
    NEED_DEV(c, err);
    MglCudaCtx* dc = dctx(c);
    MglModel* m = dc->dm->m;
    const int64_t V = m->lc.vocab;
    MGL_TRY(ensure_kv(dc, (int64_t)T + G + 1, err));
    MGL_TRY(ensure_llm(dc, T, false, err));
    if ((int64_t)T > dc->ids_cap) {
        ctx_release(dc, dc->d_ids);
        dc->d_ids = NULL;
        dc->ids_cap = 0;
        MGL_TRY(ctx_alloc(dc, (void**)&dc->d_ids, sizeof(int32_t) * ((size_t)T + 64), "token ids", err));
        dc->ids_cap = T + 64;
    }
    std::vector<int32_t> ids((size_t)T);
    for (int i = 0; i < T; i++) ids[(size_t)i] = (int32_t)(((int64_t)i * 7919) % V);
    MGL_TRY(mgl_cuda_upload(dc->d_ids, ids.data(), sizeof(int32_t) * (size_t)T, err));
    MglCudaStream* s = dc->s_main;
    MglGenParams gp = mgl_gen_default_params();
    uint64_t rng = 0;
    int32_t id = 0;
    /* warm-up prefill (cuBLAS heuristics, module loading) */
    mgl_cuda_embed(s, &dc->dm->embed, dc->d_ids, T, dc->x);
    llm_dev(dc, T, 0, NULL, false);
    MGL_TRY(mgl_cuda_stream_sync(s, err));
    mgl_cuda_embed(s, &dc->dm->embed, dc->d_ids, T, dc->x);
    cudaEventRecord(dc->ev_t0, s->st);
    llm_dev(dc, T, 0, NULL, false);
    cudaEventRecord(dc->ev_t1, s->st);
    MGL_TRY(sample_dev(dc, &gp, &rng, &id, err));
    out->prefill_ms = ev_ms(dc->ev_t0, dc->ev_t1);
    /* one step outside the timing captures the graph */
    MGL_TRY(decode_step(dc, T, err));
    MGL_TRY(sample_dev(dc, &gp, &rng, &id, err));
    double h0 = now_ms();
    for (int i = 1; i < G; i++) {
        MGL_TRY(decode_step(dc, T + i, err));
        MGL_TRY(sample_dev(dc, &gp, &rng, &id, err));
    }
    double h1 = now_ms();
    out->decode_ms_per_token = G > 1 ? (h1 - h0) / (G - 1) : 0.0;
    out->graph = dc->graph_ready;
    return MGL_OK;
}

extern "C" MglStatus mgl_cuda_bench_frame(MglCtx* c, int prompt_tokens, int gen_tokens, MglCudaBench* out,
                                          MglErr* err) {
    NEED_DEV(c, err);
    MglCudaCtx* dc = dctx(c);
    MglModel* m = dc->dm->m;
    const int64_t P = m->n_patches, V = m->lc.vocab;
    uint8_t* px = (uint8_t*)malloc(640 * 480 * 3);
    for (int i = 0; i < 640 * 480 * 3; i++) px[i] = (uint8_t)(i * 131 % 251);
    MglImage img = {px, 640, 480, 640 * 3};
    MglBox bx[10];
    for (int i = 0; i < 10; i++) {
        bx[i].x1 = (float)(i * 40);
        bx[i].y1 = (float)(i * 25);
        bx[i].x2 = (float)(i * 40 + 200);
        bx[i].y2 = (float)(i * 25 + 180);
        bx[i].score = 0.9f - 0.05f * (float)i;
        bx[i].label = i % 2 ? "a" : "b";
    }
    MglStatus st = MGL_OK;
    for (int rep = 0; rep < 2 && st == MGL_OK; rep++) { /* the first run warms up */
        double t0 = now_ms();
        float *x768 = NULL, *x336 = NULL, *b768 = NULL;
        size_t n_obj = 0;
        st = mgl_stage_preprocess(&img, bx, 10, 100, MGL_OBJECT_ORDER_SCORE, &x768, &x336, &b768, &n_obj, err);
        if (st != MGL_OK) break;
        int64_t n_text = (int64_t)prompt_tokens - P - (int64_t)n_obj;
        if (n_text < 2) n_text = 2;
        std::vector<int32_t> ids((size_t)n_text);
        for (int64_t i = 0; i < n_text; i++) ids[(size_t)i] = (int32_t)((i * 31 + 7) % V);
        const int64_t L = n_text + P + (int64_t)n_obj;
        double t1 = now_ms();
        st = ensure_kv(dc, L + gen_tokens + 1, err);
        if (st == MGL_OK)
            st = vision_embeds(dc, ids.data(), (size_t)n_text, n_text < 5 ? (size_t)n_text : 5, x336, x768, b768,
                               n_obj, true, err);
        free(x768);
        free(x336);
        free(b768);
        double t2 = now_ms();
        MglGenParams gp = mgl_gen_default_params();
        uint64_t rng = 0;
        int32_t id = 0;
        if (st == MGL_OK) {
            llm_dev(dc, L, 0, NULL, false);
            st = sample_dev(dc, &gp, &rng, &id, err);
        }
        double t3 = now_ms();
        for (int i = 1; i < gen_tokens && st == MGL_OK; i++) {
            st = decode_step(dc, L + i - 1, err);
            if (st == MGL_OK) st = sample_dev(dc, &gp, &rng, &id, err);
        }
        double t4 = now_ms();
        out->frame_ms = t4 - t0;
        out->frame_preprocess_ms = t1 - t0;
        out->frame_vision_ms = t2 - t1;
        out->frame_prefill_ms = t3 - t2;
        out->frame_decode_ms = t4 - t3;
        out->frame_prompt_tokens = (int)L;
        out->frame_generated = gen_tokens;
    }
    free(px);
    return st;
}
