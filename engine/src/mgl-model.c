/* mgl-model.c: MG-LLaVA on the CPU backend: load and bind weights, the vision
 * stages (CLIP ViT, ConvNeXt, Conv-Gate fusion, RoIAlign objects), the
 * projectors, the Llama-family decoder with a KV cache, and generation. */
#include "mgl-model.h"

#include "cpu/mgl-blas.h"
#include "cpu/mgl-pool.h"
#ifdef MGL_HAVE_CUDA
#include "../cuda/mgl-cuda.h"
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- binding ---------------------------------------------------------- */

typedef struct {
    MglModel* m;
    MglErr* err;
    MglStatus st;
} Bind;

static const MglTensor* find(Bind* b, const char* name) {
    if (b->st != MGL_OK) return NULL;
    const MglTensor* t = mgl_tset_get(b->m->files->weights, name);
    if (!t) b->st = mgl_err(b->err, MGL_E_FORMAT, "model: missing tensor '%s'", name);
    else if (!mgl_tensor_is_contiguous(t) || !mgl_dtype_is_float(t->dtype) || t->dtype == MGL_DT_F64) {
        b->st = mgl_err(b->err, MGL_E_UNSUPPORTED, "model: tensor '%s' must be a contiguous f32/f16/bf16 tensor", name);
        t = NULL;
    }
    return t;
}

static float* f32(Bind* b, const char* fmt, ...) MGL_PRINTF(2, 3);
static float* f32(Bind* b, const char* fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const MglTensor* t = find(b, name);
    if (!t) return NULL;
    int64_t n = mgl_tensor_numel(t);
    float* p = malloc(sizeof(float) * (size_t)(n ? n : 1));
    mgl_tensor_to_f32(t, p, NULL);
    g_ptr_array_add(b->m->owned, p);
    return p;
}

static MglWeight wmat(Bind* b, const char* fmt, ...) MGL_PRINTF(2, 3);
static MglWeight wmat(Bind* b, const char* fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    MglWeight w = {0};
    const MglTensor* t = find(b, name);
    if (!t) return w;
    w.data = t->data;
    w.dtype = t->dtype;
    w.rows = t->shape[0];
    w.cols = t->ndim ? mgl_tensor_numel(t) / (t->shape[0] ? t->shape[0] : 1) : 1;
    return w;
}

MglModelParams mgl_model_default_params(void) {
    MglModelParams p = {.device = "auto", .gpu_id = 0, .n_threads = 0, .n_ctx = 0};
    return p;
}

void mgl_model_free(MglModel* m) {
    if (!m) return;
#ifdef MGL_HAVE_CUDA
    mgl_cuda_model_free(m->cuda);
#endif
    if (m->owned) g_ptr_array_unref(m->owned);
    free(m->clip_layers);
    for (int s = 0; s < 4; s++) free(m->stages[s].blocks);
    free(m->layers);
    mgl_tokenizer_free(m->tok);
    mgl_model_files_free(m->files);
    free(m);
}

const MglTokenizer* mgl_model_tokenizer(const MglModel* m) { return m->tok; }
const MglTemplate* mgl_model_template(const MglModel* m) { return m->tmpl; }
int mgl_model_default_max_new_tokens(const MglModel* m) { return m->files->man.max_new_tokens; }

static MglStatus model_bind(MglModel* m, const MglModelParams* pp, MglErr* err);

/* Device choice after binding: "cpu"; "cuda" (an error without a usable GPU);
 * "auto" (the GPU when one works, else the CPU: a log line when a GPU is
 * present but unusable, an info-level line when there is none). */
static MglStatus model_attach_device(MglModel* m, const MglModelParams* p, MglErr* err) {
    const char* dev = p->device && *p->device ? p->device : "auto";
    if (!strcmp(dev, "cpu")) return MGL_OK;
#ifdef MGL_HAVE_CUDA
    MglErr e = {0};
    MglStatus st = mgl_cuda_model_new(m, p->gpu_id, p->precision, &m->cuda, &e);
    if (st == MGL_OK) return MGL_OK;
    if (!strcmp(dev, "cuda") || st == MGL_E_INVALID) return mgl_err(err, st, "device=%s: %s", dev, e.msg);
    if (mgl_cuda_device_count() > 0) g_message("mgllava: device=auto: %s; running on the CPU", e.msg);
    else g_info("mgllava: device=auto: %s; running on the CPU", e.msg);
    return MGL_OK;
#else
    if (!strcmp(dev, "cuda"))
        return mgl_err(err, MGL_E_UNSUPPORTED, "device=cuda: this build has no CUDA backend (configure with "
                                               "-Dcuda=enabled and nvcc); use device=cpu or auto");
    return MGL_OK;
#endif
}

MglStatus mgl_model_load(const char* path, const MglModelParams* params, MglModel** out, MglErr* err) {
    *out = NULL;
    MglModelParams p = params ? *params : mgl_model_default_params();
    if (p.device && strcmp(p.device, "auto") && strcmp(p.device, "cpu") && strcmp(p.device, "cuda"))
        return mgl_err(err, MGL_E_INVALID, "device \"%s\" (auto, cpu or cuda)", p.device);
    MglModel* m = calloc(1, sizeof *m);
    if (!m) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    m->owned = g_ptr_array_new_with_free_func(free);
    MglStatus st = mgl_model_files_open(path, &m->files, err);
    if (st == MGL_OK) st = mgl_model_files_validate(m->files, err);
    if (st == MGL_OK) st = mgl_tokenizer_load(m->files->tokenizer_path, &m->tok, err);
    if (st == MGL_OK) st = model_bind(m, &p, err);
    if (st == MGL_OK) st = model_attach_device(m, &p, err);
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
    MglStatus st = model_bind(m, &p, err);
    if (st == MGL_OK) st = model_attach_device(m, &p, err);
    if (st != MGL_OK) {
        mgl_model_free(m);
        return st;
    }
    *out = m;
    return MGL_OK;
}

static MglStatus model_bind(MglModel* m, const MglModelParams* pp, MglErr* err) {
    MglModelParams p = *pp;
    MGL_TRY(mgl_blas_init(err));
    MglModelFiles* f = m->files;
    m->tmpl = mgl_template_get(f->man.template_name);
    m->n_threads = p.n_threads;
    /* one process-wide pool does the threading; each BLAS call is single-threaded */
    mgl_blas_set_threads(1);
    if (m->n_threads > 0) mgl_pool_set_size(m->n_threads);
    Bind b = {m, err, MGL_OK};

    /* CLIP: features after layer n_layers-2 (hidden_states[-2]) */
    const MglClipConfig* cc = &f->clip;
    m->D = cc->hidden;
    m->patch = cc->patch_size;
    m->clip_grid = cc->image_size / cc->patch_size;
    m->n_patches = m->clip_grid * m->clip_grid;
    m->clip_heads = cc->n_heads;
    m->clip_eps = cc->ln_eps;
    m->clip_quick_gelu = strcmp(cc->act, "quick_gelu") == 0;
    m->clip_layers_used = cc->n_layers - 1;
    m->patch_w = wmat(&b, "clip.vision_model.embeddings.patch_embedding.weight");
    m->cls = f32(&b, "clip.vision_model.embeddings.class_embedding");
    m->pos = f32(&b, "clip.vision_model.embeddings.position_embedding.weight");
    m->pre_ln_w = f32(&b, "clip.vision_model.pre_layrnorm.weight");
    m->pre_ln_b = f32(&b, "clip.vision_model.pre_layrnorm.bias");
    m->clip_layers = calloc((size_t)m->clip_layers_used, sizeof(ClipLayer));
    for (int l = 0; l < m->clip_layers_used; l++) {
        ClipLayer* L = &m->clip_layers[l];
        const char* pre = "clip.vision_model.encoder.layers";
        L->q = wmat(&b, "%s.%d.self_attn.q_proj.weight", pre, l);
        L->k = wmat(&b, "%s.%d.self_attn.k_proj.weight", pre, l);
        L->v = wmat(&b, "%s.%d.self_attn.v_proj.weight", pre, l);
        L->o = wmat(&b, "%s.%d.self_attn.out_proj.weight", pre, l);
        L->q_b = f32(&b, "%s.%d.self_attn.q_proj.bias", pre, l);
        L->k_b = f32(&b, "%s.%d.self_attn.k_proj.bias", pre, l);
        L->v_b = f32(&b, "%s.%d.self_attn.v_proj.bias", pre, l);
        L->o_b = f32(&b, "%s.%d.self_attn.out_proj.bias", pre, l);
        L->ln1_w = f32(&b, "%s.%d.layer_norm1.weight", pre, l);
        L->ln1_b = f32(&b, "%s.%d.layer_norm1.bias", pre, l);
        L->ln2_w = f32(&b, "%s.%d.layer_norm2.weight", pre, l);
        L->ln2_b = f32(&b, "%s.%d.layer_norm2.bias", pre, l);
        L->fc1 = wmat(&b, "%s.%d.mlp.fc1.weight", pre, l);
        L->fc2 = wmat(&b, "%s.%d.mlp.fc2.weight", pre, l);
        L->fc1_b = f32(&b, "%s.%d.mlp.fc1.bias", pre, l);
        L->fc2_b = f32(&b, "%s.%d.mlp.fc2.bias", pre, l);
    }

    /* ConvNeXt stem + stages */
    m->stem_w = wmat(&b, "convnext.stem.0.weight");
    m->stem_b = f32(&b, "convnext.stem.0.bias");
    m->stem_ln_w = f32(&b, "convnext.stem.1.weight");
    m->stem_ln_b = f32(&b, "convnext.stem.1.bias");
    m->Cm = 0;
    for (int s = 0; s < 4; s++) {
        CnxStage* S = &m->stages[s];
        S->depth = f->cnx.depths[s];
        S->C = f->cnx.dims[s];
        m->Cm += S->C;
        if (s > 0) {
            S->ds_ln_w = f32(&b, "convnext.stages.%d.downsample.0.weight", s);
            S->ds_ln_b = f32(&b, "convnext.stages.%d.downsample.0.bias", s);
            S->ds = wmat(&b, "convnext.stages.%d.downsample.1.weight", s);
            S->ds_b = f32(&b, "convnext.stages.%d.downsample.1.bias", s);
        }
        S->blocks = calloc((size_t)S->depth, sizeof(CnxBlock));
        for (int k = 0; k < S->depth; k++) {
            CnxBlock* B = &S->blocks[k];
            B->dw_w = f32(&b, "convnext.stages.%d.blocks.%d.conv_dw.weight", s, k);
            B->dw_b = f32(&b, "convnext.stages.%d.blocks.%d.conv_dw.bias", s, k);
            B->ln_w = f32(&b, "convnext.stages.%d.blocks.%d.norm.weight", s, k);
            B->ln_b = f32(&b, "convnext.stages.%d.blocks.%d.norm.bias", s, k);
            B->fc1 = wmat(&b, "convnext.stages.%d.blocks.%d.mlp.fc1.weight", s, k);
            B->fc1_b = f32(&b, "convnext.stages.%d.blocks.%d.mlp.fc1.bias", s, k);
            B->fc2 = wmat(&b, "convnext.stages.%d.blocks.%d.mlp.fc2.weight", s, k);
            B->fc2_b = f32(&b, "convnext.stages.%d.blocks.%d.mlp.fc2.bias", s, k);
            B->gamma = f32(&b, "convnext.stages.%d.blocks.%d.gamma", s, k);
        }
    }

    /* Conv-Gate fusion and projectors */
    m->slow_conv = wmat(&b, "fuse_module.slow_conv.weight");
    m->slow_conv_b = f32(&b, "fuse_module.slow_conv.bias");
    m->slow_proj = wmat(&b, "fuse_module.slow_proj.weight");
    m->slow_proj_b = f32(&b, "fuse_module.slow_proj.bias");
    m->fast_conv_w = f32(&b, "fuse_module.fast_conv.weight");
    m->fast_conv_b = f32(&b, "fuse_module.fast_conv.bias");
    m->fast_proj = wmat(&b, "fuse_module.fast_proj.weight");
    m->fast_proj_b = f32(&b, "fuse_module.fast_proj.bias");
    m->gate0 = wmat(&b, "fuse_module.gate.0.weight");
    m->gate0_b = f32(&b, "fuse_module.gate.0.bias");
    m->gate2 = wmat(&b, "fuse_module.gate.2.weight");
    m->gate2_b = f32(&b, "fuse_module.gate.2.bias");
    m->gate_hidden = f->gate_hidden;
    m->proj.l0 = wmat(&b, "projector.model.0.weight");
    m->proj.b0 = f32(&b, "projector.model.0.bias");
    m->proj.l2 = wmat(&b, "projector.model.2.weight");
    m->proj.b2 = f32(&b, "projector.model.2.bias");
    m->bproj.l0 = wmat(&b, "bbox_projector.model.0.weight");
    m->bproj.b0 = f32(&b, "bbox_projector.model.0.bias");
    m->bproj.l2 = wmat(&b, "bbox_projector.model.2.weight");
    m->bproj.b2 = f32(&b, "bbox_projector.model.2.bias");

    /* LLM */
    m->lc = f->llm;
    const MglLlmConfig* lc = &m->lc;
    m->embed = wmat(&b, "llm.model.embed_tokens.weight");
    m->lm_head = lc->tie_embeddings ? m->embed : wmat(&b, "llm.lm_head.weight");
    m->final_norm = f32(&b, "llm.model.norm.weight");
    m->layers = calloc((size_t)lc->n_layers, sizeof(LlmLayer));
    for (int l = 0; l < lc->n_layers; l++) {
        LlmLayer* L = &m->layers[l];
        if (lc->arch == MGL_LLM_PHI3) {
            L->qkv = wmat(&b, "llm.model.layers.%d.self_attn.qkv_proj.weight", l);
            L->gate_up = wmat(&b, "llm.model.layers.%d.mlp.gate_up_proj.weight", l);
        } else {
            L->q = wmat(&b, "llm.model.layers.%d.self_attn.q_proj.weight", l);
            L->k = wmat(&b, "llm.model.layers.%d.self_attn.k_proj.weight", l);
            L->v = wmat(&b, "llm.model.layers.%d.self_attn.v_proj.weight", l);
            L->gate = wmat(&b, "llm.model.layers.%d.mlp.gate_proj.weight", l);
            L->up = wmat(&b, "llm.model.layers.%d.mlp.up_proj.weight", l);
        }
        L->o = wmat(&b, "llm.model.layers.%d.self_attn.o_proj.weight", l);
        L->down = wmat(&b, "llm.model.layers.%d.mlp.down_proj.weight", l);
        L->ln1 = f32(&b, "llm.model.layers.%d.input_layernorm.weight", l);
        L->ln2 = f32(&b, "llm.model.layers.%d.post_attention_layernorm.weight", l);
    }
    if (b.st != MGL_OK) return b.st;
    /* EOS: the tokenizer's eos_token (as the reference's generate() uses) */
    int32_t te = m->tok ? mgl_tokenizer_eos(m->tok) : -1;
    if (te >= 0) m->eos_ids[m->n_eos++] = te;
    else
        for (int i = 0; i < lc->n_eos && m->n_eos < 10; i++) m->eos_ids[m->n_eos++] = lc->eos_ids[i];
    m->n_ctx = p.n_ctx > 0 ? p.n_ctx : lc->max_pos;
    if (m->tok && mgl_tokenizer_n_vocab(m->tok) > lc->vocab)
        return mgl_err(err, MGL_E_FORMAT, "%s: tokenizer has %d tokens but the LLM vocab is %d", f->tokenizer_path,
                       mgl_tokenizer_n_vocab(m->tok), lc->vocab);
    return MGL_OK;
}

/* ---- contexts --------------------------------------------------------- */

MglStatus mgl_ctx_new(MglModel* model, MglCtx** out, MglErr* err) {
    *out = NULL;
    if (!model) return mgl_err(err, MGL_E_INVALID, "ctx: no model");
    MglCtx* c = calloc(1, sizeof *c);
    if (!c) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    c->m = model;
#ifdef MGL_HAVE_CUDA
    if (model->cuda) {
        MglStatus st = mgl_cuda_ctx_new(model->cuda, &c->cuda, err);
        if (st != MGL_OK) {
            free(c);
            return st;
        }
    }
#endif
    *out = c;
    return MGL_OK;
}

void mgl_ctx_free(MglCtx* c) {
    if (!c) return;
#ifdef MGL_HAVE_CUDA
    mgl_cuda_ctx_free(c->cuda);
#endif
    free(c->kc);
    free(c->vc);
    free(c);
}

MglStatus mgl_ctx_reserve(MglCtx* c, int64_t n, MglErr* err) {
    if (n <= c->kv_cap) return MGL_OK;
    const MglLlmConfig* lc = &c->m->lc;
    int64_t kvd = (int64_t)lc->n_kv_heads * lc->head_dim;
    int64_t cap = n + 64;
    size_t bytes = sizeof(float) * (size_t)(lc->n_layers * cap * kvd);
    float* k = realloc(c->kc, bytes);
    if (!k) return mgl_err(err, MGL_E_NOMEM, "KV cache: cannot allocate %zu bytes for %lld tokens", bytes, (long long)cap);
    c->kc = k;
    float* v = realloc(c->vc, bytes);
    if (!v) return mgl_err(err, MGL_E_NOMEM, "KV cache: cannot allocate %zu bytes for %lld tokens", bytes, (long long)cap);
    c->vc = v;
    /* rows of each layer move to their new stride */
    if (c->kv_cap > 0)
        for (int64_t l = lc->n_layers - 1; l >= 0; l--) {
            memmove(c->kc + l * cap * kvd, c->kc + l * c->kv_cap * kvd, sizeof(float) * (size_t)(c->kv_cap * kvd));
            memmove(c->vc + l * cap * kvd, c->vc + l * c->kv_cap * kvd, sizeof(float) * (size_t)(c->kv_cap * kvd));
        }
    c->kv_cap = cap;
    return MGL_OK;
}

/* ---- vision ----------------------------------------------------------- */

MglStatus mgl_stage_preprocess(const MglImage* img, const MglBox* boxes, size_t n_boxes, int limit_num, int order, float** x768,
                               float** x336, float** boxes768, size_t* n_obj, MglErr* err) {
    *x768 = *x336 = *boxes768 = NULL;
    if (!img || !img->data) return mgl_err(err, MGL_E_INVALID, "image: no pixels");
    uint8_t* sq = NULL;
    int S = 0;
    MGL_TRY(mgl_pad_square(img->data, img->width, img->height, img->stride, &sq, &S, err));
    uint8_t* r = malloc((size_t)MGL_AUX_SIZE * MGL_AUX_SIZE * 3);
    mgl_resize_bicubic_rgb8(sq, S, S, r, MGL_AUX_SIZE, MGL_AUX_SIZE);
    free(sq);
    float* a = malloc(sizeof(float) * 3 * MGL_AUX_SIZE * MGL_AUX_SIZE);
    mgl_normalize_clip(r, MGL_AUX_SIZE, MGL_AUX_SIZE, a);
    free(r);
    float* l = malloc(sizeof(float) * 3 * 336 * 336);
    mgl_resize_bilinear_chw(a, 3, MGL_AUX_SIZE, MGL_AUX_SIZE, 336, 336, l);
    MglStatus st = mgl_boxes_to_768(boxes, n_boxes, img->width, img->height, limit_num, order, boxes768, n_obj, err);
    if (st != MGL_OK) {
        free(a);
        free(l);
        return st;
    }
    *x768 = a;
    *x336 = l;
    return MGL_OK;
}

void mgl_stage_clip(MglModel* m, const float* x336, float* out) {
    const int64_t D = m->D, P = m->n_patches, T = P + 1, NH = m->clip_heads, HS = D / NH;
    const int64_t FF = m->clip_layers_used > 0 ? m->clip_layers[0].fc1.rows : 4 * D;
    const int64_t img = m->clip_grid * m->patch;
    float* x = malloc(sizeof(float) * (size_t)(T * D));
    float* h = malloc(sizeof(float) * (size_t)(T * D));
    float* q = malloc(sizeof(float) * (size_t)(T * D));
    float* k = malloc(sizeof(float) * (size_t)(T * D));
    float* v = malloc(sizeof(float) * (size_t)(T * D));
    float* a = malloc(sizeof(float) * (size_t)(T * D));
    float* f = malloc(sizeof(float) * (size_t)(T * FF));
    /* patch embedding (conv k=stride=14, no bias) + class token + positions */
    mgl_patchify_conv(x336, true, img, img, 3, m->patch, &m->patch_w, NULL, x + D);
    memcpy(x, m->cls, sizeof(float) * (size_t)D);
    mgl_add(x, m->pos, T * D);
    mgl_layernorm(x, T, D, m->pre_ln_w, m->pre_ln_b, m->clip_eps, x);
    for (int l = 0; l < m->clip_layers_used; l++) {
        ClipLayer* L = &m->clip_layers[l];
        mgl_layernorm(x, T, D, L->ln1_w, L->ln1_b, m->clip_eps, h);
        mgl_matmul(h, T, &L->q, L->q_b, q);
        mgl_matmul(h, T, &L->k, L->k_b, k);
        mgl_matmul(h, T, &L->v, L->v_b, v);
        /* HF CLIP scales q before the product; mgl_attention scales by 1/sqrt(HS) itself */
        mgl_attention(q, T, 0, k, v, NH, NH, HS, false, a);
        mgl_matmul(a, T, &L->o, L->o_b, h);
        mgl_add(x, h, T * D);
        mgl_layernorm(x, T, D, L->ln2_w, L->ln2_b, m->clip_eps, h);
        mgl_matmul(h, T, &L->fc1, L->fc1_b, f);
        if (m->clip_quick_gelu) mgl_quick_gelu(f, T * FF);
        else mgl_gelu_erf(f, T * FF);
        mgl_matmul(f, T, &L->fc2, L->fc2_b, h);
        mgl_add(x, h, T * D);
    }
    memcpy(out, x + D, sizeof(float) * (size_t)(P * D)); /* drop CLS */
    free(x); free(h); free(q); free(k); free(v); free(a); free(f);
}

typedef struct {
    float* x;
    const float *y, *gamma;
    int64_t C;
} ScaleAddCtx;

static void scale_add_part(void* ctx, int64_t b, int64_t e) {
    const ScaleAddCtx* s = ctx;
    for (int64_t i = b; i < e; i++)
        for (int64_t c = 0; c < s->C; c++) s->x[i * s->C + c] += s->y[i * s->C + c] * s->gamma[c];
}

static void cnx_block(const CnxBlock* B, float* x, int64_t H, int64_t W, int64_t C, float* t1, float* t2) {
    const int64_t N = H * W;
    mgl_dwconv7_nhwc(x, H, W, C, B->dw_w, B->dw_b, t1);
    mgl_layernorm(t1, N, C, B->ln_w, B->ln_b, 1e-6f, t1);
    mgl_matmul(t1, N, &B->fc1, B->fc1_b, t2);
    mgl_gelu_erf(t2, N * 4 * C);
    mgl_matmul(t2, N, &B->fc2, B->fc2_b, t1);
    ScaleAddCtx sa = {x, t1, B->gamma, C};
    mgl_parallel_for(N, 64, scale_add_part, &sa);
}

void mgl_stage_convnext(MglModel* m, const float* x768, float* so[4]) {
    int64_t H = MGL_AUX_SIZE / 4, W = H;
    size_t big = 0;
    for (int s = 0; s < 4; s++) {
        int64_t hs = H >> s;
        size_t need = (size_t)(hs * hs * 4 * m->stages[s].C);
        if (need > big) big = need;
    }
    float* t1 = malloc(sizeof(float) * big);
    float* t2 = malloc(sizeof(float) * big);
    int64_t C0 = m->stages[0].C;
    mgl_patchify_conv(x768, true, MGL_AUX_SIZE, MGL_AUX_SIZE, 3, 4, &m->stem_w, m->stem_b, so[0]);
    mgl_layernorm(so[0], H * W, C0, m->stem_ln_w, m->stem_ln_b, 1e-6f, so[0]);
    for (int s = 0; s < 4; s++) {
        CnxStage* S = &m->stages[s];
        if (s > 0) {
            int64_t Cp = m->stages[s - 1].C;
            mgl_layernorm(so[s - 1], H * W, Cp, S->ds_ln_w, S->ds_ln_b, 1e-6f, t1);
            mgl_patchify_conv(t1, false, H, W, Cp, 2, &S->ds, S->ds_b, so[s]);
            H /= 2;
            W /= 2;
        }
        for (int k = 0; k < S->depth; k++) cnx_block(&S->blocks[k], so[s], H, W, S->C, t1, t2);
    }
    free(t1);
    free(t2);
}

void mgl_stage_fuse(MglModel* m, const float* clip, const float* stage3, float* fused, float* gate_logit) {
    const int64_t P = m->n_patches, D = m->D, C3 = m->stages[3].C, G = m->clip_grid;
    float* hs = malloc(sizeof(float) * (size_t)(P * C3));
    float* h = malloc(sizeof(float) * (size_t)(P * D));
    float* t = malloc(sizeof(float) * (size_t)(P * D));
    float* l = malloc(sizeof(float) * (size_t)(P * D));
    /* high-res path: 1x1 convs are per-token linears on the NHWC map */
    mgl_matmul(stage3, P, &m->slow_conv, m->slow_conv_b, hs);
    mgl_gelu_erf(hs, P * C3);
    mgl_matmul(hs, P, &m->slow_proj, m->slow_proj_b, h);
    /* low-res path: tokens t = r*G + c are an NHWC (G, G, D) map */
    mgl_dwconv7_nhwc(clip, G, G, D, m->fast_conv_w, m->fast_conv_b, t);
    mgl_gelu_erf(t, P * D);
    mgl_matmul(t, P, &m->fast_proj, m->fast_proj_b, l);
    mgl_add(l, clip, P * D);
    /* one scalar gate per image from the token-mean of [l, h] */
    float* mean = calloc((size_t)(2 * D), sizeof(float));
    for (int64_t c = 0; c < D; c++) {
        double sl = 0, sh = 0;
        for (int64_t p = 0; p < P; p++) {
            sl += l[p * D + c];
            sh += h[p * D + c];
        }
        mean[c] = (float)(sl / (double)P);
        mean[D + c] = (float)(sh / (double)P);
    }
    float* gh = malloc(sizeof(float) * (size_t)m->gate_hidden);
    mgl_matmul(mean, 1, &m->gate0, m->gate0_b, gh);
    mgl_gelu_erf(gh, m->gate_hidden);
    float g = 0;
    mgl_matmul(gh, 1, &m->gate2, m->gate2_b, &g);
    if (gate_logit) *gate_logit = g;
    float tg = tanhf(g);
    for (int64_t i = 0; i < P * D; i++) fused[i] = l[i] + h[i] * tg;
    free(hs); free(h); free(t); free(l); free(mean); free(gh);
}

/* Accumulate `w` at integer tap (y, x) of the 192x192 map into level s's own
 * grid: the multi-scale map's value there is the bilinear (align_corners=False)
 * upsample of the level, so its weight spreads over up to 4 level pixels. */
static void spread(float* lw, int64_t hs, int64_t ws, int64_t k, int64_t y, int64_t x, float w) {
    if (k == 1) {
        lw[y * ws + x] += w;
        return;
    }
    int64_t y0, y1, x0, x1;
    float ly, lx;
    mgl_bilinear_src(hs, hs * k, y, &y0, &y1, &ly);
    mgl_bilinear_src(ws, ws * k, x, &x0, &x1, &lx);
    lw[y0 * ws + x0] += w * (1 - ly) * (1 - lx);
    lw[y0 * ws + x1] += w * (1 - ly) * lx;
    lw[y1 * ws + x0] += w * ly * (1 - lx);
    lw[y1 * ws + x1] += w * ly * lx;
}

typedef struct {
    MglModel* m;
    float* const* so;
    const float* boxes;
    float* pooled;
} ObjCtx;

static void objects_part(void* ctx, int64_t b0, int64_t b1);

void mgl_stage_objects(MglModel* m, float* const so[4], const float* boxes, size_t n, float* pooled) {
    ObjCtx c = {m, so, boxes, pooled};
    mgl_parallel_for((int64_t)n, 1, objects_part, &c);
}

static void objects_part(void* ctx, int64_t b0, int64_t b1) {
    const ObjCtx* oc = ctx;
    MglModel* m = oc->m;
    float* const* so = oc->so;
    const float* boxes = oc->boxes;
    float* pooled = oc->pooled;
    const int64_t F = MGL_AUX_SIZE / 4, P = 56;
    const float sigma = (float)F / (float)MGL_AUX_SIZE;
    for (int64_t bi = b0; bi < b1; bi++) {
        const float* bx = boxes + 4 * bi;
        /* torchvision roi_align, aligned=False: weights of every 192-grid tap */
        float* wmap = calloc((size_t)(F * F), sizeof(float));
        float x0 = bx[0] * sigma, y0 = bx[1] * sigma;
        float rw = fmaxf(bx[2] * sigma - x0, 1.0f), rh = fmaxf(bx[3] * sigma - y0, 1.0f);
        float bw = rw / (float)P, bh = rh / (float)P;
        int64_t gw = (int64_t)ceilf(rw / (float)P), gh = (int64_t)ceilf(rh / (float)P);
        float cnt = (float)(gw * gh > 1 ? gw * gh : 1);
        /* the mean over the P*P bins folds into each sample's weight */
        float wsample = 1.0f / (cnt * (float)(P * P));
        for (int64_t ph = 0; ph < P; ph++)
            for (int64_t iy = 0; iy < gh; iy++) {
                float y = y0 + (float)ph * bh + ((float)iy + 0.5f) * bh / (float)gh;
                for (int64_t pw = 0; pw < P; pw++)
                    for (int64_t ix = 0; ix < gw; ix++) {
                        float x = x0 + (float)pw * bw + ((float)ix + 0.5f) * bw / (float)gw;
                        if (y < -1.0f || y > (float)F || x < -1.0f || x > (float)F) continue;
                        float yy = y <= 0 ? 0 : y, xx = x <= 0 ? 0 : x;
                        int64_t yl = (int64_t)yy, xl = (int64_t)xx, yh, xh;
                        if (yl >= F - 1) { yh = yl = F - 1; yy = (float)yl; } else yh = yl + 1;
                        if (xl >= F - 1) { xh = xl = F - 1; xx = (float)xl; } else xh = xl + 1;
                        float ly = yy - (float)yl, lx = xx - (float)xl, hy = 1 - ly, hx = 1 - lx;
                        wmap[yl * F + xl] += wsample * hy * hx;
                        wmap[yl * F + xh] += wsample * hy * lx;
                        wmap[yh * F + xl] += wsample * ly * hx;
                        wmap[yh * F + xh] += wsample * ly * lx;
                    }
            }
        float* out = pooled + (size_t)bi * (size_t)m->Cm;
        int64_t coff = 0;
        for (int s = 0; s < 4; s++) {
            int64_t k = (int64_t)1 << s, hs = F / k, C = m->stages[s].C;
            float* lw = calloc((size_t)(hs * hs), sizeof(float));
            for (int64_t i = 0; i < F * F; i++)
                if (wmap[i] != 0.0f) spread(lw, hs, hs, k, i / F, i % F, wmap[i]);
            float* o = out + coff;
            for (int64_t c = 0; c < C; c++) o[c] = 0;
            for (int64_t i = 0; i < hs * hs; i++) {
                if (lw[i] == 0.0f) continue;
                const float* src = so[s] + i * C;
                for (int64_t c = 0; c < C; c++) o[c] += lw[i] * src[c];
            }
            free(lw);
            coff += C;
        }
        free(wmap);
    }
}

void mgl_stage_mlp2(const Mlp2* p, const float* x, int64_t T, int64_t H, float* out) {
    float* t = malloc(sizeof(float) * (size_t)(T * H));
    mgl_matmul(x, T, &p->l0, p->b0, t);
    mgl_gelu_erf(t, T * H);
    mgl_matmul(t, T, &p->l2, p->b2, out);
    free(t);
}

void mgl_stage_embeds(MglModel* m, const MglPrompt* pr, const float* fused, float* const so[4], const float* boxes768,
                      size_t n_obj, float* emb) {
    const int64_t H = m->lc.hidden, P = m->n_patches, ip = (int64_t)pr->image_pos;
    /* [BOS prefix | 576 image tokens | N object tokens | suffix] */
    for (int64_t i = 0; i < ip; i++) mgl_weight_row(&m->embed, pr->ids[i], emb + i * H);
    mgl_stage_mlp2(&m->proj, fused, P, H, emb + ip * H);
    if (n_obj) {
        float* pooled = malloc(sizeof(float) * n_obj * (size_t)m->Cm);
        mgl_stage_objects(m, so, boxes768, n_obj, pooled);
        mgl_stage_mlp2(&m->bproj, pooled, (int64_t)n_obj, H, emb + (ip + P) * H);
        free(pooled);
    }
    for (int64_t i = ip; i < (int64_t)pr->n_ids; i++)
        mgl_weight_row(&m->embed, pr->ids[i], emb + (i + P + (int64_t)n_obj) * H);
}

/* ---- decoder ---------------------------------------------------------- */

MglStatus mgl_llm_forward(MglCtx* c, const float* embeds, int64_t T, int64_t pos0, float* logits, bool all_logits,
                          MglErr* err) {
    MglModel* m = c->m;
    const MglLlmConfig* lc = &m->lc;
    const int64_t H = lc->hidden, NH = lc->n_heads, NKV = lc->n_kv_heads, HS = lc->head_dim;
    const int64_t qd = NH * HS, kvd = NKV * HS, F = lc->intermediate;
    MGL_TRY(mgl_ctx_reserve(c, pos0 + T, err));
    float* x = malloc(sizeof(float) * (size_t)(T * H));
    float* h = malloc(sizeof(float) * (size_t)(T * H));
    float* q = malloc(sizeof(float) * (size_t)(T * (qd + 2 * kvd)));
    float* a = malloc(sizeof(float) * (size_t)(T * qd));
    float* g = malloc(sizeof(float) * (size_t)(T * 2 * F));
    float* u = malloc(sizeof(float) * (size_t)(T * F));
    if (!x || !h || !q || !a || !g || !u) {
        free(x); free(h); free(q); free(a); free(g); free(u);
        return mgl_err(err, MGL_E_NOMEM, "decoder: out of memory for %lld tokens", (long long)T);
    }
    memcpy(x, embeds, sizeof(float) * (size_t)(T * H));
    for (int l = 0; l < lc->n_layers; l++) {
        LlmLayer* L = &m->layers[l];
        float* kc = c->kc + (size_t)l * c->kv_cap * kvd;
        float* vc = c->vc + (size_t)l * c->kv_cap * kvd;
        mgl_rmsnorm(x, T, H, L->ln1, lc->rms_eps, h);
        float *qq, *kk, *vv;
        if (lc->arch == MGL_LLM_PHI3) {
            mgl_matmul(h, T, &L->qkv, NULL, q);
            /* split (T, qd+2kvd) rows into q | k | v */
            float* kt = malloc(sizeof(float) * (size_t)(T * kvd));
            float* vt = malloc(sizeof(float) * (size_t)(T * kvd));
            float* qt = malloc(sizeof(float) * (size_t)(T * qd));
            for (int64_t t = 0; t < T; t++) {
                memcpy(qt + t * qd, q + t * (qd + 2 * kvd), sizeof(float) * (size_t)qd);
                memcpy(kt + t * kvd, q + t * (qd + 2 * kvd) + qd, sizeof(float) * (size_t)kvd);
                memcpy(vt + t * kvd, q + t * (qd + 2 * kvd) + qd + kvd, sizeof(float) * (size_t)kvd);
            }
            memcpy(q, qt, sizeof(float) * (size_t)(T * qd));
            memcpy(q + T * qd, kt, sizeof(float) * (size_t)(T * kvd));
            memcpy(q + T * (qd + kvd), vt, sizeof(float) * (size_t)(T * kvd));
            free(kt); free(vt); free(qt);
        } else {
            mgl_matmul(h, T, &L->q, NULL, q);
            mgl_matmul(h, T, &L->k, NULL, q + T * qd);
            mgl_matmul(h, T, &L->v, NULL, q + T * (qd + kvd));
        }
        qq = q;
        kk = q + T * qd;
        vv = q + T * (qd + kvd);
        mgl_rope(qq, T, NH, HS, pos0, lc->rope_theta);
        mgl_rope(kk, T, NKV, HS, pos0, lc->rope_theta);
        memcpy(kc + pos0 * kvd, kk, sizeof(float) * (size_t)(T * kvd));
        memcpy(vc + pos0 * kvd, vv, sizeof(float) * (size_t)(T * kvd));
        mgl_attention(qq, T, pos0, kc, vc, NH, NKV, HS, true, a);
        mgl_matmul(a, T, &L->o, NULL, h);
        mgl_add(x, h, T * H);
        mgl_rmsnorm(x, T, H, L->ln2, lc->rms_eps, h);
        if (lc->arch == MGL_LLM_PHI3) {
            mgl_matmul(h, T, &L->gate_up, NULL, g);
            for (int64_t t = 0; t < T; t++) mgl_silu_mul(g + t * 2 * F, g + t * 2 * F + F, u + t * F, F);
        } else {
            mgl_matmul(h, T, &L->gate, NULL, g);
            mgl_matmul(h, T, &L->up, NULL, u);
            mgl_silu_mul(g, u, u, T * F);
        }
        mgl_matmul(u, T, &L->down, NULL, h);
        mgl_add(x, h, T * H);
    }
    if (all_logits) {
        mgl_rmsnorm(x, T, H, m->final_norm, lc->rms_eps, h);
        mgl_matmul(h, T, &m->lm_head, NULL, logits);
    } else {
        mgl_rmsnorm(x + (T - 1) * H, 1, H, m->final_norm, lc->rms_eps, h);
        mgl_matmul(h, 1, &m->lm_head, NULL, logits);
    }
    free(x); free(h); free(q); free(a); free(g); free(u);
    return MGL_OK;
}

/* ---- sampling and generation ------------------------------------------ */

MglGenParams mgl_gen_default_params(void) {
    MglGenParams p = {.max_new_tokens = 0, .temperature = 0.0f, .top_p = 1.0f, .top_k = 0, .seed = 0,
                      .limit_num = -1, .use_objects = true, .use_high_res = true,
                      .object_order = MGL_OBJECT_ORDER_MODEL};
    return p;
}

MglStatus mgl_object_order_parse(const char* name, int* order) {
    static const struct {
        const char* name;
        int order;
    } k[] = {{"model", MGL_OBJECT_ORDER_MODEL}, {"score", MGL_OBJECT_ORDER_SCORE}, {"reading", MGL_OBJECT_ORDER_READING}};
    for (size_t i = 0; name && i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(name, k[i].name)) {
            *order = k[i].order;
            return MGL_OK;
        }
    return MGL_E_INVALID;
}

static uint64_t rng_next(uint64_t* s) {
    /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct { float p; int32_t id; } Cand;
static int cand_desc(const void* a, const void* b) {
    const Cand* x = a;
    const Cand* y = b;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

int32_t mgl_sample_draw(const float* logits, int64_t V, float temperature, int top_k, float top_p, double u) {
    /* temperature -> top-k -> top-p, as HF's logits warpers */
    Cand* c = malloc(sizeof(Cand) * (size_t)V);
    float mx = -INFINITY;
    for (int64_t i = 0; i < V; i++) {
        c[i].p = logits[i] / temperature;
        c[i].id = (int32_t)i;
        if (c[i].p > mx) mx = c[i].p;
    }
    qsort(c, (size_t)V, sizeof(Cand), cand_desc);
    int64_t n = V;
    if (top_k > 0 && top_k < n) n = top_k;
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        c[i].p = expf(c[i].p - mx);
        sum += c[i].p;
    }
    if (top_p > 0.0f && top_p < 1.0f) {
        double cum = 0;
        int64_t keep = n;
        for (int64_t i = 0; i < n; i++) {
            cum += c[i].p / sum;
            if (cum >= top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        sum = 0;
        for (int64_t i = 0; i < n; i++) sum += c[i].p;
    }
    double r = u * sum;
    int32_t id = c[n - 1].id;
    for (int64_t i = 0; i < n; i++) {
        r -= c[i].p;
        if (r < 0) {
            id = c[i].id;
            break;
        }
    }
    free(c);
    return id;
}

static int32_t sample(const float* logits, int64_t V, const MglGenParams* p, uint64_t* rng) {
    if (p->temperature <= 0.0f) {
        int32_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = (int32_t)i;
        return best;
    }
    /* one draw per sampled token, as before the draw became a parameter */
    return mgl_sample_draw(logits, V, p->temperature, p->top_k, p->top_p, mgl_rng_unit(rng));
}

static double now_ms(void) { return (double)g_get_monotonic_time() / 1000.0; }

static bool ends_with_stop_word(const MglModel* m, const int32_t* ids, size_t n) {
    if (!m->tmpl->stop_words[0]) return false;
    char* text = NULL;
    if (mgl_tokenizer_decode(m->tok, ids, n, false, &text, NULL) != MGL_OK) return false;
    /* the reference deletes \r and \n before comparing */
    size_t k = 0;
    for (size_t i = 0; text[i]; i++)
        if (text[i] != '\r' && text[i] != '\n') text[k++] = text[i];
    text[k] = 0;
    bool hit = false;
    for (int i = 0; m->tmpl->stop_words[i] && !hit; i++) hit = g_str_has_suffix(text, m->tmpl->stop_words[i]);
    free(text);
    return hit;
}

double mgl_rng_unit(uint64_t* state) { return (double)(rng_next(state) >> 11) / 9007199254740992.0; }

/* Whitespace as Python's str.isspace() sees it: the reference's answer is
 * decode(...).strip(). */
static bool py_space(gunichar c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

void mgl_text_strip(char* s) {
    if (!s) return;
    if (!g_utf8_validate(s, -1, NULL)) {
        g_strstrip(s);
        return;
    }
    char* b = s;
    while (*b && py_space(g_utf8_get_char(b))) b = g_utf8_next_char(b);
    char* end = b;
    for (char* q = b; *q; q = g_utf8_next_char(q))
        if (!py_space(g_utf8_get_char(q))) end = g_utf8_next_char(q);
    memmove(s, b, (size_t)(end - b));
    s[end - b] = 0;
}

/* ---- the CPU backend of one request ---- */

typedef struct {
    float *logits, *e1;
} CpuGen;

static MglStatus cpu_prefill(MglCtx* c, MglGenRequest* rq, CpuGen* g, int32_t* first, MglTimings* t, MglErr* err) {
    MglModel* m = c->m;
    const int64_t D = m->D, H = m->lc.hidden, P = m->n_patches, L = rq->L;
    double t1 = now_ms();
    float* emb = malloc(sizeof(float) * (size_t)(L * H));
    float* clipf = malloc(sizeof(float) * (size_t)(P * D));
    float* fused = malloc(sizeof(float) * (size_t)(P * D));
    mgl_stage_clip(m, rq->x336, clipf);
    float* so[4] = {0};
    if (rq->p.use_high_res) {
        for (int s = 0; s < 4; s++) {
            int64_t hs = (MGL_AUX_SIZE / 4) >> s;
            so[s] = malloc(sizeof(float) * (size_t)(hs * hs * m->stages[s].C));
        }
        mgl_stage_convnext(m, rq->x768, so);
        mgl_stage_fuse(m, clipf, so[3], fused, NULL);
    } else {
        memcpy(fused, clipf, sizeof(float) * (size_t)(P * D));
    }
    mgl_stage_embeds(m, &rq->pr, fused, so, rq->b768, rq->n_obj, emb);
    for (int s = 0; s < 4; s++) free(so[s]);
    free(clipf);
    free(fused);
    double t2 = now_ms();
    t->vision_ms = t2 - t1;
    g->logits = malloc(sizeof(float) * (size_t)m->lc.vocab);
    g->e1 = malloc(sizeof(float) * (size_t)H);
    MglStatus st = mgl_llm_forward(c, emb, L, 0, g->logits, false, err);
    free(emb);
    if (st == MGL_OK) *first = sample(g->logits, m->lc.vocab, &rq->p, &rq->rng);
    t->prefill_ms = now_ms() - t2;
    return st;
}

static MglStatus cpu_step(MglCtx* c, MglGenRequest* rq, CpuGen* g, int32_t id, int64_t pos, int32_t* next,
                          MglErr* err) {
    mgl_weight_row(&c->m->embed, id, g->e1);
    MGL_TRY(mgl_llm_forward(c, g->e1, 1, pos, g->logits, false, err));
    *next = sample(g->logits, c->m->lc.vocab, &rq->p, &rq->rng);
    return MGL_OK;
}

/* One request on either backend: the shared checks, prompt and preprocessing;
 * the backend's vision + prefill; then one token at a time (EOS, stop words,
 * the streaming callback, the abort flag and the token budget are decided here
 * for both backends); the text is the reference's decode(...).strip(). */
MglStatus mgl_generate(MglCtx* c, const MglImage* image, const MglBox* boxes, size_t n_boxes, const char* question,
                       const MglGenParams* params, char** text, int32_t** ids_out, size_t* n_ids_out,
                       MglTimings* tm, MglErr* err) {
    if (text) *text = NULL;
    if (ids_out) *ids_out = NULL;
    if (n_ids_out) *n_ids_out = 0;
    if (!c || !image || !question) return mgl_err(err, MGL_E_INVALID, "generate: missing context, image or question");
    MglModel* m = c->m;
    MglGenRequest rq = {.p = params ? *params : mgl_gen_default_params()};
    MglGenParams* p = &rq.p;
    if (p->max_new_tokens <= 0) p->max_new_tokens = m->files->man.max_new_tokens;
    if (p->limit_num < 0) p->limit_num = m->files->man.limit_num;
    if (p->object_order < 0) p->object_order = m->files->man.object_order;
    if (p->object_order != MGL_OBJECT_ORDER_SCORE && p->object_order != MGL_OBJECT_ORDER_READING)
        return mgl_err(err, MGL_E_INVALID, "generate: object_order %d is not an MglObjectOrder", p->object_order);
    if (!(p->temperature >= 0.0f) || !(p->top_p > 0.0f && p->top_p <= 1.0f) || p->top_k < 0)
        return mgl_err(err, MGL_E_INVALID, "generate: temperature must be >= 0, top-p in (0, 1], top-k >= 0");
    MGL_TRY(mgl_model_files_check(m->files, err));
    MglTimings t = {0};
    double t0 = now_ms();
    const int64_t P = m->n_patches;
    {
        const char* q = question;
        while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r') q++;
        if (!*q) return mgl_err(err, MGL_E_INVALID, "prompt: empty question");
    }
    MglStatus st = mgl_prompt_build(m->tok, m->tmpl, question, true, &rq.pr, err);
    if (st != MGL_OK) return st;
    int32_t* gen = NULL;
    MglDetok* dt = NULL;
    CpuGen cg = {0};
    st = mgl_stage_preprocess(image, boxes, n_boxes, p->limit_num, p->object_order, &rq.x768, &rq.x336, &rq.b768, &rq.n_obj, err);
    if (st != MGL_OK) goto out;
    if (!p->use_objects || !p->use_high_res) rq.n_obj = 0;
    rq.L = (int64_t)rq.pr.n_ids + P + (int64_t)rq.n_obj;
    if (rq.L + p->max_new_tokens > m->n_ctx) {
        st = mgl_err(err, MGL_E_INVALID, "prompt: %lld tokens (%zu text + %lld visual) plus %d new exceed the %d-token context",
                     (long long)rq.L, rq.pr.n_ids, (long long)(P + (int64_t)rq.n_obj), p->max_new_tokens, m->n_ctx);
        goto out;
    }
    t.preprocess_ms = now_ms() - t0;
    rq.rng = p->seed ^ 0x6d676c6c617661ull;
    int32_t id = 0;
#ifdef MGL_HAVE_CUDA
    if (c->cuda) st = mgl_cuda_prefill(c, &rq, &id, &t, err);
    else
#endif
        st = cpu_prefill(c, &rq, &cg, &id, &t, err);
    double t3 = now_ms();
    gen = malloc(sizeof(int32_t) * (size_t)(p->max_new_tokens + 1));
    size_t ng = 0;
    dt = p->on_token ? mgl_detok_new(m->tok, true) : NULL;
    while (st == MGL_OK) {
        gen[ng++] = id;
        bool stop = false;
        for (int i = 0; i < m->n_eos; i++) stop |= id == m->eos_ids[i];
        if (p->on_token && !stop) {
            const char* piece = dt ? mgl_detok_push(dt, id) : "";
            if (!p->on_token(id, piece ? piece : "", p->user_data)) stop = true;
        }
        if (!stop) stop = ends_with_stop_word(m, gen, ng);
        if (stop || (int)ng >= p->max_new_tokens) break;
        if (p->abort_flag && *p->abort_flag) {
            st = mgl_err(err, MGL_E_ABORTED, "generate: aborted after %zu tokens", ng);
            break;
        }
        int64_t pos = rq.L + (int64_t)ng - 1;
#ifdef MGL_HAVE_CUDA
        if (c->cuda) st = mgl_cuda_step(c, &rq, pos, &id, err);
        else
#endif
            st = cpu_step(c, &rq, &cg, id, pos, &id, err);
    }
    t.decode_ms = now_ms() - t3;
    t.n_prompt_tokens = (int)rq.L;
    t.n_generated = (int)ng;
    t.n_objects = (int)rq.n_obj;
    if (st == MGL_OK && text) {
        char* s = NULL;
        st = mgl_tokenizer_decode(m->tok, gen, ng, true, &s, err);
        if (st == MGL_OK) {
            mgl_text_strip(s);
            *text = s;
        }
    }
    if (st == MGL_OK && ids_out) {
        *ids_out = gen;
        gen = NULL;
        if (n_ids_out) *n_ids_out = ng;
    }
    if (tm) *tm = t;
out:
    free(cg.logits);
    free(cg.e1);
    mgl_detok_free(dt);
    free(gen);
    free(rq.x768);
    free(rq.x336);
    free(rq.b768);
    mgl_prompt_clear(&rq.pr);
    return st;
}
