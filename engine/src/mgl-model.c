/* mgl-model.c: loading a model (files, tokenizer, the weights bound through
 * the weight table), choosing its backend, contexts, and the stage entry
 * points that dispatch to the context's backend. */
#include "mgl-model.h"

#include "mgl-quant.h"
#include "mgl-weight-table.h"
#include "cpu/mgl-pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- load progress ----------------------------------------------------- */

/* The caller's progress function and how far the load is. Fractions: files
 * and tokenizer to 0.05, reading the weights to 0.90 (by bytes), the
 * backend (device upload) to 1. */
typedef struct {
    MglProgressFunc fn;
    void* data;
    double done;
    bool stopped;
} LoadProgress;

/* Reports @f (kept non-decreasing); false once the caller asked to stop. */
static bool load_progress(LoadProgress* lp, double f, const char* what) {
    if (!lp->fn || lp->stopped) return !lp->stopped;
    if (f < lp->done) f = lp->done;
    if (f > 1.0) f = 1.0;
    lp->done = f;
    if (!lp->fn(f, what, lp->data)) lp->stopped = true;
    return !lp->stopped;
}

typedef struct {
    const MglModelFiles* f;
    LoadProgress* lp;
    uint64_t total, done;
    long page;
} Prefault;

static bool prefault_count(const MglWeightItem* it, void* user) {
    Prefault* pf = user;
    const MglTensor* t = mgl_tset_get(pf->f->weights, it->name);
    if (t && t->data) pf->total += mgl_tensor_nbytes(t);
    return true;
}

/* Reads every page of one tensor (mapped files are read ahead first), in
 * chunks between which progress is reported. */
static bool prefault_item(const MglWeightItem* it, void* user) {
    Prefault* pf = user;
    const MglTensor* t = mgl_tset_get(pf->f->weights, it->name);
    if (!t || !t->data) return true;
    const size_t chunk = (size_t)32 << 20, n = mgl_tensor_nbytes(t);
    const volatile unsigned char* p = t->data;
    for (size_t off = 0; off < n; off += chunk) {
        size_t len = n - off < chunk ? n - off : chunk;
        uintptr_t a = (uintptr_t)(p + off) & ~(uintptr_t)(pf->page - 1);
        (void)madvise((void*)a, (size_t)((uintptr_t)(p + off + len) - a), MADV_WILLNEED);
        unsigned char sink = 0;
        for (size_t i = 0; i < len; i += (size_t)pf->page) sink ^= p[off + i];
        sink ^= p[off + len - 1];
        (void)sink;
        pf->done += len;
        char what[96];
        const bool gb = pf->total >= 1000000000u;
        snprintf(what, sizeof what, "reading weights (%.*f of %.*f %s)", gb ? 2 : 1, pf->done / (gb ? 1e9 : 1e6),
                 gb ? 2 : 1, pf->total / (gb ? 1e9 : 1e6), gb ? "GB" : "MB");
        if (!load_progress(pf->lp, 0.05 + 0.85 * (pf->total ? (double)pf->done / (double)pf->total : 1.0), what))
            return false;
    }
    return true;
}

/* With a progress function: every weight page read now (the file mostly
 * comes from disk here rather than in the first answer), reported by bytes. */
static MglStatus model_prefault(MglModel* m, LoadProgress* lp, MglErr* err) {
    if (!lp->fn) return MGL_OK;
    Prefault pf = {m->files, lp, 0, 0, sysconf(_SC_PAGESIZE)};
    if (pf.page <= 0) pf.page = 4096;
    mgl_weight_walk(m->files, prefault_count, &pf);
    mgl_weight_walk(m->files, prefault_item, &pf);
    if (lp->stopped) return mgl_err(err, MGL_E_ABORTED, "model load aborted by the caller");
    return MGL_OK;
}

/* ---- binding: one walk over the weight table --------------------------- */

typedef struct {
    MglModel* m;
    MglErr* err;
    MglStatus st;
} Bind;

static bool bind_item(const MglWeightItem* it, void* user) {
    Bind* b = user;
    const MglTensor* t = mgl_tset_get(b->m->files->weights, it->name);
    if (!t) {
        b->st = mgl_err(b->err, MGL_E_FORMAT, "model: missing tensor '%s'", it->name);
        return false;
    }
    if (it->spec->kind == MGL_WK_MAT && mgl_quant_dtype(t->dtype)) { /* q8/q4 (mgl-quant.h) */
        char msg[400];
        if (!mgl_quant_view(b->m->files->weights, t, it->shape[0], it->ndim > 1 ? it->shape[1] : 1,
                            mgl_weight_field(&b->m->w, it), msg, sizeof msg)) {
            b->st = mgl_err(b->err, MGL_E_FORMAT, "model: %s", msg);
            return false;
        }
        return true;
    }
    if (!mgl_tensor_is_contiguous(t) || !mgl_dtype_is_float(t->dtype) || t->dtype == MGL_DT_F64) {
        b->st =
            mgl_err(b->err, MGL_E_UNSUPPORTED, "model: tensor '%s' must be a contiguous f32/f16/bf16 tensor", it->name);
        return false;
    }
    void* field = mgl_weight_field(&b->m->w, it);
    if (it->spec->kind == MGL_WK_MAT) {
        MglWeight* w = field;
        w->data = t->data;
        w->dtype = t->dtype;
        w->rows = t->shape[0];
        w->cols = t->ndim ? mgl_tensor_numel(t) / (t->shape[0] ? t->shape[0] : 1) : 1;
    } else {
        int64_t n = mgl_tensor_numel(t);
        float* p = malloc(sizeof(float) * (size_t)(n ? n : 1));
        if (!p) {
            b->st = mgl_err(b->err, MGL_E_NOMEM, "model: out of memory for '%s'", it->name);
            return false;
        }
        mgl_tensor_to_f32(t, p, NULL);
        g_ptr_array_add(b->m->owned, p);
        *(float**)field = p;
    }
    return true;
}

static MglStatus model_bind(MglModel* m, const MglModelParams* p, MglErr* err) {
    MglModelFiles* f = m->files;
    MglModelWeights* w = &m->w;
    m->tmpl = mgl_template_get(f->man.template_name);
    m->n_threads = p->n_threads;
    if (m->n_threads > 0) mgl_pool_set_size(m->n_threads);
    const MglClipConfig* cc = &f->clip;
    w->D = cc->hidden;
    w->patch = cc->patch_size;
    w->clip_grid = cc->image_size / cc->patch_size;
    w->n_patches = w->clip_grid * w->clip_grid;
    w->clip_heads = cc->n_heads;
    w->clip_eps = cc->ln_eps;
    w->clip_quick_gelu = strcmp(cc->act, "quick_gelu") == 0;
    w->clip_layers_used = cc->n_layers - 1;
    w->Cm = 0;
    for (int s = 0; s < 4; s++) {
        w->stages[s].depth = f->cnx.depths[s];
        w->stages[s].C = f->cnx.dims[s];
        w->Cm += w->stages[s].C;
        w->stages[s].blocks = calloc((size_t)(w->stages[s].depth > 0 ? w->stages[s].depth : 1), sizeof(CnxBlock));
    }
    w->gate_hidden = f->gate_hidden;
    w->lc = f->llm;
    const MglLlmConfig* lc = &w->lc;
    w->clip_layers = calloc((size_t)(w->clip_layers_used > 0 ? w->clip_layers_used : 1), sizeof(ClipLayer));
    w->layers = calloc((size_t)(lc->n_layers > 0 ? lc->n_layers : 1), sizeof(LlmLayer));
    if (!w->clip_layers || !w->layers) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    Bind b = {m, err, MGL_OK};
    mgl_weight_walk(f, bind_item, &b);
    if (b.st != MGL_OK) return b.st;
    if (lc->tie_embeddings) w->lm_head = w->embed;
    char qmsg[400]; /* a tied model's quantized lm_head copy (mgl-quant.h), when it has one */
    if (!mgl_quant_tied_head(f, &w->lm_head, qmsg, sizeof qmsg)) return mgl_err(err, MGL_E_FORMAT, "model: %s", qmsg);
    /* EOS: the tokenizer's eos_token (as the reference's generate() uses) */
    int32_t te = m->tok ? mgl_tokenizer_eos(m->tok) : -1;
    if (te >= 0)
        m->eos_ids[m->n_eos++] = te;
    else
        for (int i = 0; i < lc->n_eos && m->n_eos < 10; i++) m->eos_ids[m->n_eos++] = lc->eos_ids[i];
    m->n_ctx = p->n_ctx > 0 ? p->n_ctx : lc->max_pos;
    if (m->tok && mgl_tokenizer_n_vocab(m->tok) > lc->vocab)
        return mgl_err(err, MGL_E_FORMAT, "%s: tokenizer has %d tokens but the LLM vocab is %d", f->tokenizer_path,
                       mgl_tokenizer_n_vocab(m->tok), lc->vocab);
    return MGL_OK;
}

/* ---- models ------------------------------------------------------------ */

MglModelParams mgl_model_default_params(void) {
    MglModelParams p = {.device = "auto", .gpu_id = 0, .n_threads = 0, .n_ctx = 0};
    return p;
}

void mgl_model_free(MglModel* m) {
    if (!m) return;
    if (m->be && m->bm) m->be->model_free(m->bm);
    if (m->owned) g_ptr_array_unref(m->owned);
    free(m->w.clip_layers);
    for (int s = 0; s < 4; s++) free(m->w.stages[s].blocks);
    free(m->w.layers);
    mgl_tokenizer_free(m->tok);
    mgl_model_files_free(m->files);
    free(m);
}

const MglTokenizer* mgl_model_tokenizer(const MglModel* m) { return m->tok; }
const MglTemplate* mgl_model_template(const MglModel* m) { return m->tmpl; }
int mgl_model_default_max_new_tokens(const MglModel* m) { return m->files->man.max_new_tokens; }
const char* mgl_model_backend_name(const MglModel* m) { return m->be ? m->be->name : "none"; }

void mgl_model_backend_info(const MglModel* m, MglBackendInfo* out) {
    memset(out, 0, sizeof *out);
    if (m->be && m->bm) m->be->model_info(m->bm, out);
}

static bool dtype_of_precision(const char* s, MglDType* out) {
    if (!s || !*s || !strcmp(s, "f16") || !strcmp(s, "fp16"))
        *out = MGL_DT_F16;
    else if (!strcmp(s, "bf16"))
        *out = MGL_DT_BF16;
    else if (!strcmp(s, "f32") || !strcmp(s, "fp32"))
        *out = MGL_DT_F32;
    else
        return false;
    return true;
}

static MglStatus attach_backend(MglModel* m, const MglBackend* be, const MglModelParams* p, MglErr* err) {
    MglBackendParams bp = {.gpu_id = p->gpu_id, .precision = p->precision, .n_threads = p->n_threads};
    MGL_TRY(be->model_new(&m->w, &bp, &m->bm, err));
    m->be = be;
    MglBackendInfo info;
    be->model_info(m->bm, &info);
    if (!dtype_of_precision(info.precision, &m->kv_dtype)) m->kv_dtype = MGL_DT_F32;
    /* quantized LLM weights on the CPU: an f16 cache (as llama.cpp keeps), half
     * the f32 cache's memory and reads, for an error far below the weights' */
    if (m->kv_dtype == MGL_DT_F32 && !strcmp(info.device, "CPU") && m->w.lc.n_layers > 0 && m->w.layers[0].o.qbits)
        m->kv_dtype = MGL_DT_F16;
    return MGL_OK;
}

/* Device choice after binding: "cpu"; a named device (an error when it does
 * not work or this build lacks it); "auto" (the first device backend that
 * works, else the CPU: a log line when a GPU is present but unusable, an
 * info-level line when there is none). */
static MglStatus model_attach_device(MglModel* m, const MglModelParams* p, MglErr* err) {
    const char* dev = p->device && *p->device ? p->device : "auto";
    const MglBackend* cpu = mgl_backend_get("cpu");
    if (!strcmp(dev, "cpu")) return attach_backend(m, cpu, p, err);
    const MglBackend* want = strcmp(dev, "auto") ? mgl_backend_get(dev) : NULL;
    if (strcmp(dev, "auto") && !want)
        return mgl_err(err, MGL_E_UNSUPPORTED,
                       "device=%s: this build has no %s backend (configure with "
                       "-Dcuda=enabled and nvcc); use device=cpu or auto",
                       dev, strcmp(dev, "cuda") ? dev : "CUDA");
    for (const char* const* n = mgl_backend_names(); *n; n++) {
        const MglBackend* be = mgl_backend_get(*n);
        if (be == cpu || (want && be != want)) continue;
        MglErr e = {0};
        MglStatus st = be->probe(p->gpu_id, &e);
        if (st == MGL_OK) st = attach_backend(m, be, p, &e);
        if (st == MGL_OK) return MGL_OK;
        if (want || st == MGL_E_INVALID) return mgl_err(err, st, "device=%s: %s", dev, e.msg);
        if (be->device_count && be->device_count() > 0)
            g_message("mgllava: device=auto: %s; running on the CPU", e.msg);
        else
            g_info("mgllava: device=auto: %s; running on the CPU", e.msg);
    }
    return attach_backend(m, cpu, p, err);
}

static MglStatus model_finish(MglModel* m, const MglModelParams* p, MglErr* err) {
    MGL_TRY(model_bind(m, p, err));
    return model_attach_device(m, p, err);
}

MglStatus mgl_model_load(const char* path, const MglModelParams* params, MglModel** out, MglErr* err) {
    *out = NULL;
    MglModelParams p = params ? *params : mgl_model_default_params();
    if (p.device && strcmp(p.device, "auto") && strcmp(p.device, "cpu") && strcmp(p.device, "cuda"))
        return mgl_err(err, MGL_E_INVALID, "device \"%s\" (auto, cpu or cuda)", p.device);
    MglModel* m = calloc(1, sizeof *m);
    if (!m) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    m->owned = g_ptr_array_new_with_free_func(free);
    LoadProgress lp = {p.progress, p.progress_data, 0.0, false};
    MglStatus st = MGL_OK;
#define LOAD_STEP(f, what)                                                                                             \
    if (st == MGL_OK && !load_progress(&lp, f, what))                                                                  \
    st = mgl_err(err, MGL_E_ABORTED, "model load aborted by the caller")
    LOAD_STEP(0.0, "reading the manifest and configs");
    if (st == MGL_OK) st = mgl_model_files_open(path, &m->files, err);
    if (st == MGL_OK) st = mgl_model_files_validate(m->files, err);
    LOAD_STEP(0.02, "loading the tokenizer");
    if (st == MGL_OK) st = mgl_tokenizer_load(m->files->tokenizer_path, &m->tok, err);
    LOAD_STEP(0.04, "binding the tensors");
    if (st == MGL_OK) st = model_bind(m, &p, err);
    LOAD_STEP(0.05, "reading weights");
    if (st == MGL_OK) st = model_prefault(m, &lp, err);
    LOAD_STEP(0.9, "preparing the compute backend (device weights)");
    if (st == MGL_OK) st = model_attach_device(m, &p, err);
    LOAD_STEP(1.0, "ready");
#undef LOAD_STEP
    if (st != MGL_OK) {
        mgl_model_free(m);
        return st;
    }
    *out = m;
    return MGL_OK;
}

MglStatus mgl_model_from_files(MglModelFiles* files, const MglModelParams* params, MglModel** out, MglErr* err) {
    *out = NULL;
    MglModelParams p = params ? *params : mgl_model_default_params();
    MglModel* m = calloc(1, sizeof *m);
    if (!m) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    m->owned = g_ptr_array_new_with_free_func(free);
    m->files = files;
    MglStatus st = model_finish(m, &p, err);
    if (st != MGL_OK) {
        mgl_model_free(m);
        return st;
    }
    *out = m;
    return MGL_OK;
}

/* ---- contexts ---------------------------------------------------------- */

MglCtxParams mgl_ctx_default_params(void) {
    MglCtxParams p = {.n_ctx = 0, .kv_precision = NULL};
    return p;
}

MglStatus mgl_ctx_new_with_params(MglModel* model, const MglCtxParams* params, MglCtx** out, MglErr* err) {
    *out = NULL;
    if (!model) return mgl_err(err, MGL_E_INVALID, "ctx: no model");
    MglCtxParams p = params ? *params : mgl_ctx_default_params();
    if (p.n_ctx < 0) return mgl_err(err, MGL_E_INVALID, "ctx: n_ctx %d must be >= 0", p.n_ctx);
    MglBackendCtxParams bp = {.n_seq = 1, .n_ctx = p.n_ctx > 0 ? p.n_ctx : model->n_ctx, .kv_dtype = model->kv_dtype};
    if (p.kv_precision && !dtype_of_precision(p.kv_precision, &bp.kv_dtype))
        return mgl_err(err, MGL_E_INVALID, "ctx: KV precision \"%s\" (f16, bf16 or f32)", p.kv_precision);
    p.n_ctx = (int)bp.n_ctx;
    MglCtx* c = calloc(1, sizeof *c);
    if (!c) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    c->m = model;
    c->p = p;
    MglStatus st = model->be->ctx_new(model->bm, &bp, &c->bc, err);
    if (st != MGL_OK) {
        free(c);
        return st;
    }
    *out = c;
    return MGL_OK;
}

MglStatus mgl_ctx_new(MglModel* model, MglCtx** out, MglErr* err) {
    return mgl_ctx_new_with_params(model, NULL, out, err);
}

void mgl_ctx_free(MglCtx* c) {
    if (!c) return;
    c->m->be->ctx_free(c->bc);
    free(c);
}

/* ---- stages on the context's backend ------------------------------------ */

MglStatus mgl_ctx_stage_clip(MglCtx* c, const float* x336, float* out, MglErr* err) {
    return c->m->be->stage_clip(c->bc, x336, out, err);
}

MglStatus mgl_ctx_stage_convnext(MglCtx* c, const float* x768, float* const so[4], MglErr* err) {
    return c->m->be->stage_convnext(c->bc, x768, so, err);
}

MglStatus mgl_ctx_stage_fuse(MglCtx* c, const float* clip, const float* stage3, float* fused, float* gate_logit,
                             MglErr* err) {
    return c->m->be->stage_fuse(c->bc, clip, stage3, fused, gate_logit, err);
}

MglStatus mgl_ctx_stage_objects(MglCtx* c, float* const so[4], const float* boxes768, size_t n, float* pooled,
                                MglErr* err) {
    return c->m->be->stage_objects(c->bc, so, boxes768, n, pooled, err);
}

MglStatus mgl_llm_forward(MglCtx* c, const float* embeds, int64_t T, int64_t pos0, float* logits, bool all_logits,
                          MglErr* err) {
    if (T <= 0 || pos0 < 0) return mgl_err(err, MGL_E_INVALID, "decoder: bad token range");
    return c->m->be->forward(c->bc, 0, embeds, T, pos0, logits, all_logits, err);
}

MglStatus mgl_ctx_bench_vision(MglCtx* c, int reps, MglBackendBench* out, MglErr* err) {
    if (!c->m->be->bench_vision)
        return mgl_err(err, MGL_E_UNSUPPORTED, "bench: the %s backend has no vision bench", c->m->be->name);
    return c->m->be->bench_vision(c->bc, reps, out, err);
}

MglStatus mgl_ctx_bench_llm(MglCtx* c, int T, int G, MglBackendBench* out, MglErr* err) {
    if (!c->m->be->bench_llm)
        return mgl_err(err, MGL_E_UNSUPPORTED, "bench: the %s backend has no decoder bench", c->m->be->name);
    return c->m->be->bench_llm(c->bc, T, G, out, err);
}
