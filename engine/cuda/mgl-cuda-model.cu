/* mgl-cuda-model.cu: MG-LLaVA on the CUDA backend: the weights and the stages.
 *
 * The model is bound on the host first (the core's MglModelWeights); this
 * file uploads every tensor of the weight table once, matrices in the chosen
 * precision (f16/bf16/f32) and the small vectors (norms, biases, conv taps)
 * in f32, and runs the stages with the ops of mgl-cuda-ops.cu:
 *   - CLIP on its own stream, ConvNeXt on another, joined by events before
 *     the fusion, which runs on the main stream with the projectors and the LLM;
 *   - Llama q|k|v and gate|up are concatenated at upload (one GEMM each, as
 *     Phi-3 stores them): the table's fuse column;
 *   - the KV cache lives on the device in the context's KV precision;
 *   - one decode step (embedding of the token on the device, all layers, the
 *     logits) is captured once in a CUDA graph and replayed with the position
 *     read from device memory; sampling (argmax, or top-k/top-p) follows on
 *     the device and only the token id comes back to the host.
 * The core keeps image preprocessing and the box pipeline on the CPU;
 * mgl-cuda-backend.cu is the backend table over these pieces. */
#include <glib.h>

#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "mgl-cuda-model.cuh"
extern "C" {
#include "mgl-quant.h"
#include "mgl-weight-table.h"
}

/* ---- the device model ---------------------------------------------------------- */

static void* dm_alloc(MglBackendModel* dm, size_t bytes, const char* what) {
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

/* several vectors end to end */
static float* upFcat(MglBackendModel* dm, const float* const* hs, const int64_t* ns, int k) {
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
static void put_rows(MglBackendModel* dm, uint8_t* dst, const MglWeight* w) {
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

/* quantized matrices (mgl-quant.h) stacked by rows: their bytes, then their
 * scales, each end to end as they are (same cols, bits and group) */
static MglCudaW upQcat(MglBackendModel* dm, const MglWeight* const* ws, int k) {
    MglCudaW r = *ws[0];
    int64_t rows = 0;
    for (int i = 0; i < k; i++) rows += ws[i]->rows;
    const int64_t rb = mgl_quant_row_bytes(r.qbits, r.cols), G = mgl_quant_n_groups(r.cols, r.qgroup);
    r.rows = rows;
    r.data = dm_alloc(dm, (size_t)(rows * rb), "quantized weights");
    r.scales = (const uint16_t*)dm_alloc(dm, sizeof(uint16_t) * (size_t)(rows * G), "quantized weight scales");
    if (!r.data || !r.scales) return r;
    int64_t at = 0;
    for (int i = 0; i < k && dm->st == MGL_OK; i++) {
        dm->st = mgl_cuda_upload((uint8_t*)r.data + at * rb, ws[i]->data, (size_t)(ws[i]->rows * rb), dm->err);
        if (dm->st == MGL_OK)
            dm->st = mgl_cuda_upload((uint16_t*)r.scales + at * G, ws[i]->scales,
                                     sizeof(uint16_t) * (size_t)(ws[i]->rows * G), dm->err);
        at += ws[i]->rows;
    }
    return r;
}

/* matrices stacked by rows (same cols) as one device matrix */
static MglCudaW upWcat(MglBackendModel* dm, const MglWeight* const* ws, int k) {
    if (ws[0]->qbits) return upQcat(dm, ws, k);
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


/* Every tensor of the weight table: matrices in the model precision, vectors
 * in f32, fused runs end to end; the twin's fields point at the copies. */
static void upload_all(MglBackendModel* dm) {
    std::vector<MglWeightItem> items;
    struct Collect {
        static bool add(const MglWeightItem* it, void* user) {
            ((std::vector<MglWeightItem>*)user)->push_back(*it);
            return true;
        }
    };
    mgl_weight_walk_bound(dm->hw, Collect::add, &items);
    MglModelWeights* hw = (MglModelWeights*)dm->hw; /* read only: the walk needs a non-const base */
    std::vector<bool> done(items.size(), false);
    for (size_t i = 0; i < items.size() && dm->st == MGL_OK; i++) {
        if (done[i]) continue;
        const MglWeightItem& it = items[i];
        dm->in_llm = (it.spec->flags & MGL_WF_STEP) != 0;
        /* the run: this item and the later ones of the same instance with its fuse id */
        std::vector<size_t> run(1, i);
        for (size_t j = i + 1; it.spec->fuse && j < items.size(); j++) {
            const MglWeightItem& o = items[j];
            if (o.spec->group != it.spec->group || o.i0 != it.i0 || o.i1 != it.i1) break;
            if (o.spec->fuse == it.spec->fuse) run.push_back(j);
        }
        if (it.spec->kind == MGL_WK_MAT) {
            std::vector<const MglWeight*> hs;
            for (size_t k : run) hs.push_back((const MglWeight*)mgl_weight_field(hw, &items[k]));
            /* q8/q4 (mgl-quant.h): the LLM's matrices only (mgl-cuda-quant.cu's kernels) */
            bool mixed = false;
            for (const MglWeight* h : hs) mixed |= h->qbits != hs[0]->qbits || h->qgroup != hs[0]->qgroup;
            if (hs[0]->qbits && (mixed || !(it.spec->group == MGL_WG_LAYER || (it.spec->flags & MGL_WF_STEP)))) {
                dm->st = mgl_err(dm->err, MGL_E_UNSUPPORTED,
                                 "cuda: '%s' is quantized (q%d)%s; the CUDA backend takes quantized LLM layers and "
                                 "lm_head only (run it with --device cpu)",
                                 it.name, (int)hs[0]->qbits, mixed ? " unlike the matrices fused with it" : "");
                break;
            }
            MglCudaW whole = upWcat(dm, hs.data(), (int)hs.size());
            const bool q = hs[0]->qbits != 0;
            const int64_t qrb = q ? mgl_quant_row_bytes(hs[0]->qbits, hs[0]->cols) : 0;
            const int64_t qG = q ? mgl_quant_n_groups(hs[0]->cols, hs[0]->qgroup) : 0;
            size_t off = 0, soff = 0;
            for (size_t r = 0; r < run.size(); r++) {
                MglWeight* d = (MglWeight*)mgl_weight_field(&dm->w, &items[run[r]]);
                *d = whole;
                d->rows = r == 0 ? whole.rows : hs[r]->rows;
                if (whole.data) d->data = (const uint8_t*)whole.data + off;
                if (q && whole.scales) d->scales = whole.scales + soff;
                off += q ? (size_t)(hs[r]->rows * qrb) : (size_t)(hs[r]->rows * hs[r]->cols) * mglc_dtsize(dm->prec);
                soff += (size_t)(hs[r]->rows * qG);
            }
        } else {
            std::vector<const float*> hs;
            std::vector<int64_t> ns;
            for (size_t k : run) {
                int64_t n = 1;
                for (int d = 0; d < items[k].ndim; d++) n *= items[k].shape[d];
                hs.push_back(*(float**)mgl_weight_field(hw, &items[k]));
                ns.push_back(n);
            }
            float* whole = upFcat(dm, hs.data(), ns.data(), (int)hs.size());
            int64_t off = 0;
            for (size_t r = 0; r < run.size(); r++) {
                *(float**)mgl_weight_field(&dm->w, &items[run[r]]) = whole ? whole + off : NULL;
                off += ns[r];
            }
        }
        for (size_t k : run) done[k] = true;
    }
    dm->in_llm = false;
    if (dm->hw->lc.tie_embeddings && dm->hw->lm_head.qbits) { /* a tied model's quantized copy (mgl-quant.h) */
        dm->in_llm = true;
        const MglWeight* h = &dm->hw->lm_head;
        dm->w.lm_head = upQcat(dm, &h, 1);
        dm->in_llm = false;
    } else if (dm->hw->lc.tie_embeddings) {
        dm->w.lm_head = dm->w.embed;
        dm->llm_need += (size_t)(dm->w.embed.rows * dm->w.embed.cols) * mglc_dtsize(dm->prec);
    }
}

void mglc_model_free(MglBackendModel* dm) {
    if (!dm) return;
    cudaSetDevice(dm->dev);
    for (void* p : dm->allocs) mgl_cuda_free(p);
    mgl_cuda_free(dm->rope_inv);
    delete dm;
}


MglStatus mglc_model_new(const MglModelWeights* m, const MglBackendParams* bp, MglBackendModel** out, MglErr* err) {
    *out = NULL;
    const int gpu_id = bp ? bp->gpu_id : 0;
    const char* precision = bp ? bp->precision : NULL;
    MglDType prec;
    if (!precision || !*precision || !strcmp(precision, "f16") || !strcmp(precision, "fp16"))
        prec = MGL_DT_F16;
    else if (!strcmp(precision, "bf16"))
        prec = MGL_DT_BF16;
    else if (!strcmp(precision, "f32") || !strcmp(precision, "fp32"))
        prec = MGL_DT_F32;
    else
        return mgl_err(err, MGL_E_INVALID, "precision \"%s\" (f16, bf16 or f32)", precision);
    MGL_TRY(mgl_cuda_probe(gpu_id, err));
    const MglLlmConfig* lc = &m->lc;
    if (lc->head_dim > 256 || lc->n_kv_heads <= 0 || lc->n_heads % lc->n_kv_heads != 0 ||
        m->D / (m->clip_heads ? m->clip_heads : 1) > 256)
        return mgl_err(err, MGL_E_UNSUPPORTED, "CUDA backend: head size above 256 or uneven GQA groups");
    MglBackendModel* dm = new MglBackendModel();
    dm->hw = m;
    /* the twin: the host's dimensions, per-layer arrays of its own */
    dm->w = *m;
    dm->clip_store.assign((size_t)(m->clip_layers_used > 0 ? m->clip_layers_used : 1), ClipLayer());
    dm->layer_store.assign((size_t)(m->lc.n_layers > 0 ? m->lc.n_layers : 1), LlmLayer());
    dm->w.clip_layers = dm->clip_store.data();
    dm->w.layers = dm->layer_store.data();
    for (int s = 0; s < 4; s++) {
        dm->block_store[s].assign((size_t)(m->stages[s].depth > 0 ? m->stages[s].depth : 1), CnxBlock());
        dm->w.stages[s].blocks = dm->block_store[s].data();
    }
    dm->dev = gpu_id;
    dm->prec = prec;
    snprintf(dm->prec_name, sizeof dm->prec_name, "%s",
             prec == MGL_DT_F16    ? "f16"
             : prec == MGL_DT_BF16 ? "bf16"
                                   : "f32");
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
        mglc_model_free(dm);
        return st;
    }
    dm->weight_bytes = need;
    dm->llm_bytes = llm;
    dm->err = NULL;
    *out = dm;
    return MGL_OK;
}

/* ---- contexts ------------------------------------------------------------------------ */


MglStatus mglc_ctx_alloc(MglBackendCtx* dc, void** p, size_t bytes, const char* what, MglErr* err) {
    MGL_TRY(mglc_malloc(p, bytes, what, err));
    dc->bufs.push_back(*p);
    return MGL_OK;
}

void mglc_ctx_release(MglBackendCtx* dc, void* p) {
    if (!p) return;
    for (size_t i = 0; i < dc->bufs.size(); i++)
        if (dc->bufs[i] == p) {
            dc->bufs.erase(dc->bufs.begin() + (long)i);
            break;
        }
    mgl_cuda_free(p);
}

void mglc_graph_drop(MglBackendCtx* dc) {
    if (dc->graph_ready) cudaGraphExecDestroy(dc->gexec);
    dc->graph_ready = false;
}

static void batch_graphs_drop(MglcBatch* b) {
    for (int i = 0; i < MGLC_BATCH_GRAPHS; i++)
        if (b->graph[i]) {
            cudaGraphExecDestroy(b->graph[i]);
            b->graph[i] = NULL;
        }
}

void mglc_ctx_free(MglBackendCtx* dc) {
    if (!dc) return;
    cudaSetDevice(dc->dm->dev);
    if (dc->s_main) cudaStreamSynchronize(dc->s_main->st);
    mglc_graph_drop(dc);
    if (dc->batch) {
        batch_graphs_drop(dc->batch);
        delete dc->batch;
    }
    mgl_cuda_stream_free(dc->s_main);
    mgl_cuda_stream_free(dc->s_clip);
    mgl_cuda_stream_free(dc->s_cnx);
    cudaEvent_t evs[6] = {dc->ev_start, dc->ev_clip, dc->ev_cnx, dc->ev_t0, dc->ev_t1, dc->ev_prep};
    for (int i = 0; i < 6; i++)
        if (evs[i]) cudaEventDestroy(evs[i]);
    mgl_cuda_preprocess_free(dc->prep);
    for (void* p : dc->bufs) mgl_cuda_free(p);
    mgl_cuda_sampler_free(dc->sampler);
    delete dc;
}

MglStatus mglc_ctx_new(MglBackendModel* dm, const MglBackendCtxParams* p, MglBackendCtx** out, MglErr* err) {
    *out = NULL;
    cudaSetDevice(dm->dev);
    MglBackendCtx* dc = new MglBackendCtx(); /* value-initialised: every pointer NULL */
    dc->last_tok = -1;
    dc->dm = dm;
    dc->n_ctx = p && p->n_ctx > 0 ? p->n_ctx : dm->w.lc.max_pos;
    dc->kv_dt = p ? p->kv_dtype : dm->prec;
    if (dc->kv_dt != MGL_DT_F16 && dc->kv_dt != MGL_DT_BF16 && dc->kv_dt != MGL_DT_F32) dc->kv_dt = dm->prec;
    MglStatus st = mgl_cuda_stream_new(dm->dev, &dc->s_main, err);
    if (st == MGL_OK) st = mgl_cuda_stream_new(dm->dev, &dc->s_clip, err);
    if (st == MGL_OK) st = mgl_cuda_stream_new(dm->dev, &dc->s_cnx, err);
    cudaEvent_t* evs[6] = {&dc->ev_start, &dc->ev_clip, &dc->ev_cnx, &dc->ev_t0, &dc->ev_t1, &dc->ev_prep};
    for (int i = 0; i < 6 && st == MGL_OK; i++) {
        cudaError_t e = cudaEventCreate(evs[i]);
        if (e != cudaSuccess) st = mgl_err(err, MGL_E_DEVICE, "CUDA: event: %s", cudaGetErrorString(e));
    }
    if (st == MGL_OK) st = mglc_ctx_alloc(dc, (void**)&dc->d_pos, sizeof(int) * 4, "decode state", err);
    if (st == MGL_OK) st = mglc_ctx_alloc(dc, (void**)&dc->d_tok, sizeof(int32_t) * 4, "decode state", err);
    if (st == MGL_OK) st = mgl_cuda_sampler_new(dm->w.lc.vocab, &dc->sampler, err);
    if (st != MGL_OK) {
        mglc_ctx_free(dc);
        return st;
    }
    *out = dc;
    return MGL_OK;
}

MglStatus mglc_sync_all(MglBackendCtx* dc, MglErr* err) {
    MglStatus a = mgl_cuda_stream_sync(dc->s_clip, err);
    MglStatus b = mgl_cuda_stream_sync(dc->s_cnx, a == MGL_OK ? err : NULL);
    MglStatus c = mgl_cuda_stream_sync(dc->s_main, a == MGL_OK && b == MGL_OK ? err : NULL);
    return a != MGL_OK ? a : (b != MGL_OK ? b : c);
}

/* vision buffers, sized from the model once */
MglStatus mglc_ensure_vision(MglBackendCtx* dc, MglErr* err) {
    if (dc->vis) return MGL_OK;
    const MglModelWeights* m = &dc->dm->w;
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
    } want[] = {{&dc->x336, 3 * 336 * 336},
                {&dc->x768, 3 * MGL_AUX_SIZE * MGL_AUX_SIZE},
                {&dc->cx, T * D},
                {&dc->ch, T * D},
                {&dc->cqkv, T * 3 * D},
                {&dc->ca, T * D},
                {&dc->cf, T * FF},
                {&dc->clip_out, P * D},
                {&dc->t1, big},
                {&dc->t2, big},
                {&dc->f_hs, P * C3},
                {&dc->f_h, P * D},
                {&dc->f_t, P * D},
                {&dc->f_l, P * D},
                {&dc->f_mean, 2 * D},
                {&dc->f_gh, GH},
                {&dc->f_g, 4},
                {&dc->fused, P * D},
                {&dc->mlp_tmp, P * HID}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        MGL_TRY(mglc_ctx_alloc(dc, (void**)want[i].p, sizeof(float) * (size_t)want[i].n, "vision activations", err));
    for (int s = 0; s < 4; s++) {
        int64_t hs = (MGL_AUX_SIZE / 4) >> s;
        MGL_TRY(mglc_ctx_alloc(dc, (void**)&dc->so[s], sizeof(float) * (size_t)(hs * hs * m->stages[s].C),
                               "ConvNeXt maps", err));
    }
    dc->vis = true;
    return MGL_OK;
}

MglStatus mglc_ensure_boxes(MglBackendCtx* dc, int64_t n, MglErr* err) {
    if (n <= dc->box_cap) return MGL_OK;
    const MglModelWeights* m = &dc->dm->w;
    int64_t cap = n < 128 ? 128 : n;
    mglc_ctx_release(dc, dc->boxes);
    mglc_ctx_release(dc, dc->pooled);
    dc->boxes = dc->pooled = NULL;
    dc->box_cap = 0;
    const int64_t HID = m->proj.l0.rows > m->bproj.l0.rows ? m->proj.l0.rows : m->bproj.l0.rows;
    (void)HID;
    MGL_TRY(mglc_ctx_alloc(dc, (void**)&dc->boxes, sizeof(float) * (size_t)(4 * cap), "boxes", err));
    MGL_TRY(mglc_ctx_alloc(dc, (void**)&dc->pooled, sizeof(float) * (size_t)(cap * m->Cm), "object features", err));
    dc->box_cap = cap;
    return MGL_OK;
}

/* activations for T tokens (and logits for all of them when all_logits) */
MglStatus mglc_ensure_llm(MglBackendCtx* dc, int64_t T, bool all_logits, MglErr* err) {
    const MglLlmConfig* lc = &dc->dm->w.lc;
    const int64_t rows = all_logits ? T : 1;
    if (T <= dc->t_cap && rows <= dc->logit_rows) return MGL_OK;
    cudaStreamSynchronize(dc->s_main->st);
    mglc_graph_drop(dc); /* the graph holds the old pointers */
    const int64_t H = lc->hidden, qd = (int64_t)lc->n_heads * lc->head_dim,
                  kvd = (int64_t)lc->n_kv_heads * lc->head_dim;
    const int64_t F = lc->intermediate, V = lc->vocab;
    int64_t cap = T > dc->t_cap ? (T < 64 ? 64 : T) : dc->t_cap;
    int64_t lr = rows > dc->logit_rows ? rows : dc->logit_rows;
    float** ps[8] = {&dc->x, &dc->h, &dc->qkv, &dc->a, &dc->g, &dc->u, &dc->logits, &dc->part};
    for (int i = 0; i < 8; i++) {
        mglc_ctx_release(dc, *ps[i]);
        *ps[i] = NULL;
    }
    dc->t_cap = dc->logit_rows = 0;
    int64_t n[8] = {cap * H,
                    cap * H,
                    cap * (qd + 2 * kvd),
                    cap * qd,
                    cap * 2 * F,
                    cap * F,
                    lr * V,
                    mglc_attn_partial_floats(4, lc->n_heads, lc->head_dim)};
    for (int i = 0; i < 8; i++)
        MGL_TRY(mglc_ctx_alloc(dc, (void**)ps[i], sizeof(float) * (size_t)n[i], "decoder activations", err));
    dc->t_cap = cap;
    dc->logit_rows = lr;
    return MGL_OK;
}

/* KV cache for n positions: grown (and copied) when needed */
MglStatus mglc_ensure_kv(MglBackendCtx* dc, int64_t n, MglErr* err) {
    if (n <= dc->kv_cap) return MGL_OK;
    const MglModelWeights* m = &dc->dm->w;
    const MglLlmConfig* lc = &m->lc;
    const int64_t kvd = (int64_t)lc->n_kv_heads * lc->head_dim;
    const size_t es = mglc_dtsize(dc->kv_dt);
    int64_t cap = (n + 255) / 256 * 256;
    if (cap > dc->n_ctx && n <= dc->n_ctx) cap = dc->n_ctx;
    size_t bytes = (size_t)lc->n_layers * (size_t)cap * (size_t)kvd * es;
    void *k = NULL, *v = NULL;
    MglStatus st = mglc_malloc(&k, bytes, "the KV cache", err);
    if (st == MGL_OK) st = mglc_malloc(&v, bytes, "the KV cache", err);
    if (st != MGL_OK) {
        mgl_cuda_free(k);
        return st;
    }
    cudaStreamSynchronize(dc->s_main->st);
    mglc_graph_drop(dc);
    if (dc->kv_cap > 0) {
        size_t spitch = (size_t)dc->kv_cap * kvd * es, dpitch = (size_t)cap * kvd * es;
        cudaError_t e = cudaMemcpy2D(k, dpitch, dc->kc, spitch, spitch, (size_t)lc->n_layers, cudaMemcpyDeviceToDevice);
        if (e == cudaSuccess)
            e = cudaMemcpy2D(v, dpitch, dc->vc, spitch, spitch, (size_t)lc->n_layers, cudaMemcpyDeviceToDevice);
        /* the copies ran on the legacy stream, which may return before they end; the
         * caches are read next on non-blocking streams */
        if (e == cudaSuccess) e = cudaDeviceSynchronize();
        if (e != cudaSuccess) {
            mgl_cuda_free(k);
            mgl_cuda_free(v);
            return mgl_err(err, MGL_E_DEVICE, "CUDA: KV cache copy: %s", cudaGetErrorString(e));
        }
    }
    mglc_ctx_release(dc, dc->kc);
    mglc_ctx_release(dc, dc->vc);
    dc->kc = k;
    dc->vc = v;
    dc->bufs.push_back(k);
    dc->bufs.push_back(v);
    dc->kv_cap = cap;
    return MGL_OK;
}

/* ---- stages on the device ----------------------------------------------------------------- */

void mglc_clip_dev(MglBackendCtx* dc, MglCudaStream* s) {
    MglBackendModel* dm = dc->dm;
    const MglModelWeights* m = &dm->w;
    const int64_t D = m->D, P = m->n_patches, T = P + 1, NH = m->clip_heads, HS = D / NH;
    const int64_t FF = m->clip_layers_used > 0 ? m->clip_layers[0].fc1.rows : 4 * D;
    const int64_t img = m->clip_grid * m->patch;
    float* x = dc->cx;
    mgl_cuda_patchify_conv(s, dc->x336, true, img, img, 3, m->patch, &dm->w.patch_w, NULL, x + D);
    mglc_fail(s, cudaMemcpyAsync(x, dm->w.cls, sizeof(float) * (size_t)D, cudaMemcpyDeviceToDevice, s->st), "copy");
    mgl_cuda_add(s, x, dm->w.pos, T * D);
    mgl_cuda_layernorm(s, x, T, D, dm->w.pre_ln_w, dm->w.pre_ln_b, m->clip_eps, x);
    for (int l = 0; l < m->clip_layers_used; l++) {
        const ClipLayer* L = &dm->w.clip_layers[l];
        mgl_cuda_layernorm(s, x, T, D, L->ln1_w, L->ln1_b, m->clip_eps, dc->ch);
        mgl_cuda_matmul(s, dc->ch, T, &L->q, L->q_b, dc->cqkv, 3 * D);
        mglc_attention(s, dc->cqkv, 3 * D, T, 0, NULL, dc->cqkv + D, dc->cqkv + 2 * D, 3 * D, MGL_DT_F32, NH, NH, HS,
                       false, dc->ca, D, NULL);
        mgl_cuda_matmul(s, dc->ca, T, &L->o, L->o_b, dc->ch, D);
        mgl_cuda_add(s, x, dc->ch, T * D);
        mgl_cuda_layernorm(s, x, T, D, L->ln2_w, L->ln2_b, m->clip_eps, dc->ch);
        mgl_cuda_matmul(s, dc->ch, T, &L->fc1, L->fc1_b, dc->cf, FF);
        if (m->clip_quick_gelu)
            mgl_cuda_quick_gelu(s, dc->cf, T * FF);
        else
            mgl_cuda_gelu_erf(s, dc->cf, T * FF);
        mgl_cuda_matmul(s, dc->cf, T, &L->fc2, L->fc2_b, dc->ch, D);
        mgl_cuda_add(s, x, dc->ch, T * D);
    }
    mglc_fail(s, cudaMemcpyAsync(dc->clip_out, x + D, sizeof(float) * (size_t)(P * D), cudaMemcpyDeviceToDevice, s->st),
              "copy");
}

void mglc_convnext_dev(MglBackendCtx* dc, MglCudaStream* s) {
    MglBackendModel* dm = dc->dm;
    const MglModelWeights* m = &dm->w;
    int64_t H = MGL_AUX_SIZE / 4, W = H;
    const int64_t C0 = m->stages[0].C;
    mgl_cuda_patchify_conv(s, dc->x768, true, MGL_AUX_SIZE, MGL_AUX_SIZE, 3, 4, &dm->w.stem_w, dm->w.stem_b, dc->so[0]);
    mgl_cuda_layernorm(s, dc->so[0], H * W, C0, dm->w.stem_ln_w, dm->w.stem_ln_b, 1e-6f, dc->so[0]);
    for (int st = 0; st < 4; st++) {
        const CnxStage* S = &dm->w.stages[st];
        const int64_t C = m->stages[st].C;
        if (st > 0) {
            const int64_t Cp = m->stages[st - 1].C;
            mgl_cuda_layernorm(s, dc->so[st - 1], H * W, Cp, S->ds_ln_w, S->ds_ln_b, 1e-6f, dc->t1);
            mgl_cuda_patchify_conv(s, dc->t1, false, H, W, Cp, 2, &S->ds, S->ds_b, dc->so[st]);
            H /= 2;
            W /= 2;
        }
        const int64_t N = H * W;
        for (int k = 0; k < S->depth; k++) {
            const CnxBlock& B = S->blocks[k];
            mgl_cuda_dwconv7_nhwc(s, dc->so[st], H, W, C, B.dw_w, B.dw_b, dc->t1);
            mgl_cuda_layernorm(s, dc->t1, N, C, B.ln_w, B.ln_b, 1e-6f, dc->t1);
            mgl_cuda_matmul(s, dc->t1, N, &B.fc1, B.fc1_b, dc->t2, 4 * C);
            mgl_cuda_gelu_erf(s, dc->t2, N * 4 * C);
            mgl_cuda_matmul(s, dc->t2, N, &B.fc2, B.fc2_b, dc->t1, C);
            mgl_cuda_scale_add(s, dc->so[st], dc->t1, B.gamma, N, C);
        }
    }
}

void mglc_fuse_dev(MglBackendCtx* dc, MglCudaStream* s) {
    MglBackendModel* dm = dc->dm;
    const MglModelWeights* m = &dm->w;
    const int64_t P = m->n_patches, D = m->D, C3 = m->stages[3].C, G = m->clip_grid;
    mgl_cuda_matmul(s, dc->so[3], P, &dm->w.slow_conv, dm->w.slow_conv_b, dc->f_hs, C3);
    mgl_cuda_gelu_erf(s, dc->f_hs, P * C3);
    mgl_cuda_matmul(s, dc->f_hs, P, &dm->w.slow_proj, dm->w.slow_proj_b, dc->f_h, D);
    mgl_cuda_dwconv7_nhwc(s, dc->clip_out, G, G, D, dm->w.fast_conv_w, dm->w.fast_conv_b, dc->f_t);
    mgl_cuda_gelu_erf(s, dc->f_t, P * D);
    mgl_cuda_matmul(s, dc->f_t, P, &dm->w.fast_proj, dm->w.fast_proj_b, dc->f_l, D);
    mgl_cuda_add(s, dc->f_l, dc->clip_out, P * D);
    mglc_colmean(s, dc->f_l, P, D, dc->f_mean);
    mglc_colmean(s, dc->f_h, P, D, dc->f_mean + D);
    mgl_cuda_matmul(s, dc->f_mean, 1, &dm->w.gate0, dm->w.gate0_b, dc->f_gh, m->gate_hidden);
    mgl_cuda_gelu_erf(s, dc->f_gh, m->gate_hidden);
    mgl_cuda_matmul(s, dc->f_gh, 1, &dm->w.gate2, dm->w.gate2_b, dc->f_g, 1);
    mglc_gate_mix(s, dc->f_l, dc->f_h, dc->f_g, dc->fused, P * D);
}

void mglc_objects_dev(MglBackendCtx* dc, MglCudaStream* s, int64_t n) {
    const MglModelWeights* m = &dc->dm->w;
    int C[4];
    for (int i = 0; i < 4; i++) C[i] = m->stages[i].C;
    const float* so[4] = {dc->so[0], dc->so[1], dc->so[2], dc->so[3]};
    mgl_cuda_roi_pool(s, so, C, dc->boxes, n, dc->pooled);
}

void mglc_mlp2_dev(MglCudaStream* s, const Mlp2* p, const float* x, int64_t T, float* tmp, float* out) {
    mgl_cuda_matmul(s, x, T, &p->l0, p->b0, tmp, p->l0.rows);
    mgl_cuda_gelu_erf(s, tmp, T * p->l0.rows);
    mgl_cuda_matmul(s, tmp, T, &p->l2, p->b2, out, p->l2.rows);
}

/* The decoder over dc->x (T rows). Positions from pos0, or from *d_pos when
 * non-NULL (the graph-captured decode step, T == 1). */
void mglc_llm_dev(MglBackendCtx* dc, int64_t T, int64_t pos0, const int* d_pos, bool all_logits) {
    MglBackendModel* dm = dc->dm;
    const MglLlmConfig* lc = &dm->w.lc;
    MglCudaStream* s = dc->s_main;
    const int64_t H = lc->hidden, NH = lc->n_heads, NKV = lc->n_kv_heads, HS = lc->head_dim;
    const int64_t qd = NH * HS, kvd = NKV * HS, F = lc->intermediate, ld = qd + 2 * kvd;
    const size_t es = mglc_dtsize(dc->kv_dt);
    for (int l = 0; l < lc->n_layers; l++) {
        const LlmLayer* L = &dm->w.layers[l];
        uint8_t* kc = (uint8_t*)dc->kc + (size_t)l * (size_t)dc->kv_cap * (size_t)kvd * es;
        uint8_t* vc = (uint8_t*)dc->vc + (size_t)l * (size_t)dc->kv_cap * (size_t)kvd * es;
        mgl_cuda_rmsnorm(s, dc->x, T, H, L->ln1, lc->rms_eps, dc->h);
        mgl_cuda_matmul(s, dc->h, T, L->qkv.data ? &L->qkv : &L->q, NULL, dc->qkv, ld);
        mglc_rope(s, dc->qkv, ld, T, NH, HS, pos0, d_pos, dm->rope_inv);
        mglc_rope(s, dc->qkv + qd, ld, T, NKV, HS, pos0, d_pos, dm->rope_inv);
        mglc_store_rows(s, dc->qkv + qd, ld, T, kvd, kc, dc->kv_dt, pos0, d_pos);
        mglc_store_rows(s, dc->qkv + qd + kvd, ld, T, kvd, vc, dc->kv_dt, pos0, d_pos);
        mglc_attention(s, dc->qkv, ld, T, pos0, d_pos, kc, vc, kvd, dc->kv_dt, NH, NKV, HS, true, dc->a, qd, dc->part);
        mgl_cuda_matmul(s, dc->a, T, &L->o, NULL, dc->h, H);
        mgl_cuda_add(s, dc->x, dc->h, T * H);
        mgl_cuda_rmsnorm(s, dc->x, T, H, L->ln2, lc->rms_eps, dc->h);
        mgl_cuda_matmul(s, dc->h, T, L->gate_up.data ? &L->gate_up : &L->gate, NULL, dc->g, 2 * F);
        mgl_cuda_silu_mul(s, dc->g, 2 * F, dc->g + F, 2 * F, dc->u, T, F);
        mgl_cuda_matmul(s, dc->u, T, &L->down, NULL, dc->h, H);
        mgl_cuda_add(s, dc->x, dc->h, T * H);
    }
    if (all_logits) {
        mgl_cuda_rmsnorm(s, dc->x, T, H, dm->w.final_norm, lc->rms_eps, dc->h);
        mgl_cuda_matmul(s, dc->h, T, &dm->w.lm_head, NULL, dc->logits, lc->vocab);
    } else {
        mgl_cuda_rmsnorm(s, dc->x + (T - 1) * H, 1, H, dm->w.final_norm, lc->rms_eps, dc->h);
        mgl_cuda_matmul(s, dc->h, 1, &dm->w.lm_head, NULL, dc->logits, lc->vocab);
    }
}

/* Captures body(dc, n) on dc's main stream into *exec (NULL when it could
 * not be). An error the stream held before the capture is returned; a failed
 * capture, a launch the capture refused included (the launches never ran:
 * the eager path reports a real launch error itself), is logged once, naming
 * `what`, and sets *off: the step runs eagerly from then on. */
static MglStatus capture_step(MglBackendCtx* dc, void (*body)(MglBackendCtx*, int), int n, const char* what,
                              cudaGraphExec_t* exec, bool* off, MglErr* err) {
    MglCudaStream* s = dc->s_main;
    if (s->st_err != MGL_OK) return mgl_cuda_stream_sync(s, err);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamBeginCapture(s->st, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) {
        s->capturing = true;
        body(dc, n);
        s->capturing = false;
        e = cudaStreamEndCapture(s->st, &g);
    }
    if (e == cudaSuccess && s->st_err == MGL_OK) e = cudaGraphInstantiate(exec, g, 0);
    if (g) cudaGraphDestroy(g);
    if (e == cudaSuccess && s->st_err == MGL_OK) return MGL_OK;
    cudaGetLastError();
    *exec = NULL;
    if (e == cudaSuccess) e = cudaErrorStreamCaptureInvalidated;
    g_message("mgllava: CUDA graph capture of the %s failed (%s%s%s); decoding without a graph", what,
              cudaGetErrorString(e), s->st_err != MGL_OK ? ": " : "", s->st_err != MGL_OK ? s->msg : "");
    s->st_err = MGL_OK;
    *off = true;
    return MGL_OK;
}

/* The decode step's launches, the position read from d_pos (graph-captured) */
static void step_body(MglBackendCtx* dc, int n) {
    (void)n;
    mgl_cuda_embed(dc->s_main, &dc->dm->w.embed, dc->d_tok, 1, dc->x);
    mglc_llm_dev(dc, 1, 0, dc->d_pos, false);
}

/* One decode step at position `pos` for the token in d_tok: the graph when it
 * can be captured, the same launches eagerly otherwise. */
MglStatus mglc_decode_step(MglBackendCtx* dc, int64_t pos, MglErr* err) {
    MglCudaStream* s = dc->s_main;
    int hp = (int)pos;
    mglc_fail(s, cudaMemcpyAsync(dc->d_pos, &hp, sizeof hp, cudaMemcpyHostToDevice, s->st), "position upload");
    if (!dc->graph_ready && !dc->graph_off && !getenv("MGL_CUDA_NO_GRAPH")) {
        MGL_TRY(capture_step(dc, step_body, 1, "decode step", &dc->gexec, &dc->graph_off, err));
        dc->graph_ready = dc->gexec != NULL;
    }
    if (dc->graph_ready) {
        mglc_fail(s, cudaGraphLaunch(dc->gexec, s->st), "graph launch");
    } else {
        mgl_cuda_embed(s, &dc->dm->w.embed, dc->d_tok, 1, dc->x);
        mglc_llm_dev(dc, 1, pos, NULL, false);
    }
    return MGL_OK;
}

/* ---- batched decode ------------------------------------------------------------------ */

/* buffers for n rows (kept when they hold enough; graphs dropped when they move) */
static MglStatus batch_ensure(MglBackendCtx* dc, int n, MglErr* err) {
    if (!dc->batch) dc->batch = new MglcBatch();
    MglcBatch* b = dc->batch;
    if (b->cap >= n) return MGL_OK;
    const MglLlmConfig* lc = &dc->dm->w.lc;
    const int64_t H = lc->hidden, NH = lc->n_heads, HS = lc->head_dim, qd = NH * HS, kvd = lc->n_kv_heads * HS;
    const int64_t F = lc->intermediate, V = lc->vocab, ld = qd + 2 * kvd;
    const int cap = n > 1 + (int)dc->more.size() ? n : 1 + (int)dc->more.size();
    cudaStreamSynchronize(dc->s_main->st);
    batch_graphs_drop(b);
    float** bufs[] = {&b->x, &b->h, &b->qkv, &b->a, &b->g, &b->u, &b->logits, &b->part};
    for (float** p : bufs) {
        mglc_ctx_release(dc, *p);
        *p = NULL;
    }
    mglc_ctx_release(dc, b->tab);
    b->tab = NULL;
    b->cap = 0;
    const int64_t rows[] = {H, H, ld, qd, 2 * F, F, V, mglc_attn_partial_floats(1, NH, HS)};
    for (int i = 0; i < 8; i++)
        MGL_TRY(mglc_ctx_alloc(dc, (void**)bufs[i], sizeof(float) * (size_t)(cap * rows[i]), "batched decode", err));
    b->tab_bytes = (size_t)cap * (3 * 8 + 2 * 4);
    MGL_TRY(mglc_ctx_alloc(dc, &b->tab, b->tab_bytes, "batched decode table", err));
    b->host.assign(b->tab_bytes, 0);
    uint8_t* t = (uint8_t*)b->tab;
    b->seq.k = (uint8_t* const*)t;
    b->seq.v = (uint8_t* const*)(t + (size_t)cap * 8);
    b->seq.lstride = (const int64_t*)(t + (size_t)cap * 16);
    b->tok = (int32_t*)(t + (size_t)cap * 24);
    b->seq.pos = (const int*)(t + (size_t)cap * 28);
    b->cap = cap;
    return MGL_OK;
}

/* The decoder over the batch's n rows: the launches of mglc_llm_dev at T = 1,
 * each over n rows, with each row's position and KV cache from the table. */
static void batch_llm(MglBackendCtx* dc, int n) {
    MglBackendModel* dm = dc->dm;
    MglcBatch* b = dc->batch;
    const MglLlmConfig* lc = &dm->w.lc;
    MglCudaStream* s = dc->s_main;
    const int64_t H = lc->hidden, NH = lc->n_heads, NKV = lc->n_kv_heads, HS = lc->head_dim;
    const int64_t qd = NH * HS, kvd = NKV * HS, F = lc->intermediate, ld = qd + 2 * kvd;
    mgl_cuda_embed(s, &dm->w.embed, b->tok, n, b->x);
    for (int l = 0; l < lc->n_layers; l++) {
        const LlmLayer* L = &dm->w.layers[l];
        MglcSeqTab tab = b->seq;
        tab.layer = l;
        mgl_cuda_rmsnorm(s, b->x, n, H, L->ln1, lc->rms_eps, b->h);
        mglc_matmul_rows(s, b->h, n, L->qkv.data ? &L->qkv : &L->q, NULL, b->qkv, ld);
        mglc_rope_rows(s, b->qkv, ld, n, NH, HS, tab.pos, dm->rope_inv);
        mglc_rope_rows(s, b->qkv + qd, ld, n, NKV, HS, tab.pos, dm->rope_inv);
        mglc_store_seqs(s, b->qkv + qd, ld, n, kvd, &tab, false, dc->kv_dt);
        mglc_store_seqs(s, b->qkv + qd + kvd, ld, n, kvd, &tab, true, dc->kv_dt);
        mglc_attention_seqs(s, b->qkv, ld, n, &tab, kvd, dc->kv_dt, NH, NKV, HS, b->a, qd, b->part);
        mglc_matmul_rows(s, b->a, n, &L->o, NULL, b->h, H);
        mgl_cuda_add(s, b->x, b->h, n * H);
        mgl_cuda_rmsnorm(s, b->x, n, H, L->ln2, lc->rms_eps, b->h);
        mglc_matmul_rows(s, b->h, n, L->gate_up.data ? &L->gate_up : &L->gate, NULL, b->g, 2 * F);
        mgl_cuda_silu_mul(s, b->g, 2 * F, b->g + F, 2 * F, b->u, n, F);
        mglc_matmul_rows(s, b->u, n, &L->down, NULL, b->h, H);
        mgl_cuda_add(s, b->x, b->h, n * H);
    }
    mgl_cuda_rmsnorm(s, b->x, n, H, dm->w.final_norm, lc->rms_eps, b->h);
    mglc_matmul_rows(s, b->h, n, &dm->w.lm_head, NULL, b->logits, lc->vocab);
}

MglStatus mglc_decode_batch(MglBackendCtx* dc, MglBackendCtx* const* slots, const int32_t* tok, const int64_t* pos,
                            int n, MglErr* err) {
    MGL_TRY(batch_ensure(dc, n, err));
    MglcBatch* b = dc->batch;
    MglCudaStream* s = dc->s_main;
    const MglLlmConfig* lc = &dc->dm->w.lc;
    const int64_t kvd = (int64_t)lc->n_kv_heads * lc->head_dim, V = lc->vocab;
    /* the table's host image, in the device layout (batch_ensure) */
    uint8_t* h = b->host.data();
    const size_t cap = (size_t)b->cap;
    for (int i = 0; i < n; i++) {
        MglBackendCtx* c = slots[i];
        if (c->kv_dt != dc->kv_dt) return mgl_err(err, MGL_E_INVALID, "CUDA batched decode: KV caches of two dtypes");
        const int64_t lstride = c->kv_cap * kvd * (int64_t)mglc_dtsize(c->kv_dt);
        const int32_t p = (int32_t)pos[i];
        memcpy(h + (size_t)i * 8, &c->kc, 8);
        memcpy(h + cap * 8 + (size_t)i * 8, &c->vc, 8);
        memcpy(h + cap * 16 + (size_t)i * 8, &lstride, 8);
        memcpy(h + cap * 24 + (size_t)i * 4, &tok[i], 4);
        memcpy(h + cap * 28 + (size_t)i * 4, &p, 4);
        /* the slot's own stream (its prefill, a grown cache's copy) is done before this one reads the cache */
        if (c != dc) mglc_fail(s, cudaStreamSynchronize(c->s_main->st), "slot stream");
    }
    mglc_fail(s, cudaMemcpyAsync(b->tab, h, b->tab_bytes, cudaMemcpyHostToDevice, s->st), "batch table upload");
    /* synchronous from pageable memory: the host image is free for the next step */
    if (!b->graph_off && n < MGLC_BATCH_GRAPHS && !getenv("MGL_CUDA_NO_GRAPH") && !b->graph[n])
        MGL_TRY(capture_step(dc, batch_llm, n, "batched decode step", &b->graph[n], &b->graph_off, err));
    if (n < MGLC_BATCH_GRAPHS && b->graph[n])
        mglc_fail(s, cudaGraphLaunch(b->graph[n], s->st), "graph launch");
    else
        batch_llm(dc, n);
    for (int i = 0; i < n; i++)
        mglc_fail(s,
                  cudaMemcpyAsync(slots[i]->logits, b->logits + (int64_t)i * V, sizeof(float) * (size_t)V,
                                  cudaMemcpyDeviceToDevice, s->st),
                  "logits copy");
    return mgl_cuda_stream_sync(s, err);
}
