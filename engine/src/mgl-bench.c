/* mgl-bench.c: `mgllava bench`: real-shape models with random weights built
 * in memory (no files), timed stage by stage on the CPU backend. */
#include "mgl-bench.h"
#include "mgl-model.h"
#include "cpu/mgl-blas.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef MGL_HAVE_CUDA
#include "../cuda/mgl-cuda.h"
#endif

typedef struct { int hidden, layers, heads, mlp; } ClipShape;
typedef struct { int depths[4], dims[4]; } CnxShape;
typedef struct { const char* arch; int hidden, layers, heads, kv, ffn, vocab, max_pos; float theta; bool tie; } LlmShape;

static const ClipShape k_clip_l = {1024, 24, 16, 4096};
static const ClipShape k_clip_tiny = {64, 2, 2, 128};
static const CnxShape k_cnx_l = {{3, 3, 27, 3}, {192, 384, 768, 1536}};
static const CnxShape k_cnx_tiny = {{1, 1, 1, 1}, {8, 16, 32, 64}};
static const LlmShape k_vicuna7b = {"llama", 4096, 32, 32, 32, 11008, 32000, 4096, 1e4f, false};
static const LlmShape k_phi3mini = {"phi3", 3072, 32, 32, 32, 8192, 32064, 4096, 1e4f, false};
static const LlmShape k_llama3_8b = {"llama", 4096, 32, 32, 8, 14336, 128256, 8192, 5e5f, false};
static const LlmShape k_llama110m = {"llama", 768, 12, 12, 12, 2048, 32000, 2048, 1e4f, true};
static const LlmShape k_llm_tiny = {"llama", 64, 1, 2, 2, 128, 256, 4096, 1e4f, false};

typedef struct {
    const char* name;
    const ClipShape* clip;
    const CnxShape* cnx;
    const LlmShape* llm;
    bool vision, lm;
} Preset;

static const Preset k_presets[] = {
    {"clip-l-336", &k_clip_l, &k_cnx_tiny, &k_llm_tiny, true, false},
    {"convnext-l-768", &k_clip_tiny, &k_cnx_l, &k_llm_tiny, true, false},
    {"vision-l", &k_clip_l, &k_cnx_l, &k_llm_tiny, true, false},
    {"llama-110m", &k_clip_tiny, &k_cnx_tiny, &k_llama110m, false, true},
    {"vicuna-7b", &k_clip_tiny, &k_cnx_tiny, &k_vicuna7b, false, true},
    {"phi3-mini", &k_clip_tiny, &k_cnx_tiny, &k_phi3mini, false, true},
    {"llama3-8b", &k_clip_tiny, &k_cnx_tiny, &k_llama3_8b, false, true},
    {"mgllava-7b", &k_clip_l, &k_cnx_l, &k_vicuna7b, true, true},
};

const char* mgl_bench_preset_names(void) {
    return "clip-l-336 convnext-l-768 vision-l llama-110m vicuna-7b phi3-mini llama3-8b mgllava-7b";
}

static double now_ms(void) { return (double)g_get_monotonic_time() / 1000.0; }

static long peak_rss_kb(void) {
    FILE* f = fopen("/proc/self/status", "r");
    long v = -1;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld", &v) == 1) break;
    if (f) fclose(f);
    return v;
}

static MglStatus build_files(const Preset* p, MglDType dt, uint64_t seed, MglModelFiles** out, size_t* llm_bytes,
                             MglErr* err);

static MglStatus build(const Preset* p, MglDType dt, uint64_t seed, MglModel** out, size_t* llm_bytes, MglErr* err) {
    MglModelFiles* f = NULL;
    MGL_TRY(build_files(p, dt, seed, &f, llm_bytes, err));
    MglModelParams mp = mgl_model_default_params();
    mp.device = "cpu"; /* the CPU benchmark stays on the CPU where a GPU exists */
    return mgl_model_from_files(f, &mp, out, err);
}

static MglStatus build_files(const Preset* p, MglDType dt, uint64_t seed, MglModelFiles** out, size_t* llm_bytes,
                             MglErr* err) {
    MglModelFiles* f = calloc(1, sizeof *f);
    f->weights = mgl_tset_new();
    f->man.template_name = strdup("vicuna");
    f->man.max_new_tokens = 100;
    f->man.limit_num = 100;
    f->man.dir = strdup("(synthetic)");
    f->clip = (MglClipConfig){.hidden = p->clip->hidden, .n_layers = p->clip->layers, .n_heads = p->clip->heads,
                              .intermediate = p->clip->mlp, .image_size = 336, .patch_size = 14, .n_channels = 3,
                              .ln_eps = 1e-5f};
    snprintf(f->clip.act, sizeof f->clip.act, "quick_gelu");
    for (int s = 0; s < 4; s++) {
        f->cnx.depths[s] = p->cnx->depths[s];
        f->cnx.dims[s] = p->cnx->dims[s];
    }
    MglLlmConfig* L = &f->llm;
    L->arch = strcmp(p->llm->arch, "phi3") == 0 ? MGL_LLM_PHI3 : MGL_LLM_LLAMA;
    L->hidden = p->llm->hidden;
    L->n_layers = p->llm->layers;
    L->n_heads = p->llm->heads;
    L->n_kv_heads = p->llm->kv;
    L->head_dim = p->llm->hidden / p->llm->heads;
    L->intermediate = p->llm->ffn;
    L->vocab = p->llm->vocab;
    L->max_pos = p->llm->max_pos;
    L->rms_eps = 1e-5f;
    L->rope_theta = p->llm->theta;
    L->tie_embeddings = p->llm->tie;
    L->eos_ids[0] = 2;
    L->n_eos = 1;
    snprintf(L->hidden_act, sizeof L->hidden_act, "silu");
    MglStatus st = mgl_model_files_synthesize(f, dt, seed, err);
    if (st == MGL_OK) st = mgl_model_files_validate(f, err);
    *llm_bytes = 0;
    for (size_t i = 0; i < f->weights->n; i++)
        if (g_str_has_prefix(f->weights->items[i].name, "llm.") &&
            strcmp(f->weights->items[i].name, "llm.model.embed_tokens.weight") != 0)
            *llm_bytes += mgl_tensor_nbytes(&f->weights->items[i]);
    if (L->tie_embeddings) *llm_bytes += (size_t)L->vocab * L->hidden * mgl_dtype_size(dt);
    if (st != MGL_OK) {
        mgl_model_files_free(f);
        return st;
    }
    *out = f;
    return MGL_OK;
}

static const Preset* find_preset(const char* name) {
    for (size_t i = 0; i < G_N_ELEMENTS(k_presets); i++)
        if (strcmp(k_presets[i].name, name) == 0) return &k_presets[i];
    return NULL;
}

MglStatus mgl_bench_save(const MglBenchParams* bp, const char* dir, const char* tokenizer_dir, MglErr* err) {
    const Preset* p = find_preset(bp->preset);
    if (!p) return mgl_err(err, MGL_E_INVALID, "bench: unknown preset '%s' (%s)", bp->preset, mgl_bench_preset_names());
    MglModelFiles* f = NULL;
    size_t llm_bytes = 0;
    MGL_TRY(build_files(p, bp->dtype, 1234, &f, &llm_bytes, err));
    MglStatus st = mgl_model_files_save_packed(f, dir, bp->dtype, tokenizer_dir, err);
    mgl_model_files_free(f);
    return st;
}

static uint64_t file_size(const char* path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* Load a model from disk (mmap), run one captioned frame, and report time and
 * memory against the size of its weight files. */
MglStatus mgl_bench_model(const MglBenchParams* bp, const char* path, GString* out, MglErr* err) {
    long rss0 = peak_rss_kb();
    double t0 = now_ms();
    MglModel* m = NULL;
    MglModelParams mp = mgl_model_default_params();
    mp.device = "cpu"; /* this measures the CPU backend's memory against the files */
    MGL_TRY(mgl_model_load(path, &mp, &m, err));
    double t1 = now_ms();
    long rss_load = peak_rss_kb();
    uint64_t bytes = 0;
    for (int i = 0; i < m->files->n_files; i++) bytes += file_size(m->files->files[i]);
    MglCtx* c = NULL;
    MglStatus st = mgl_ctx_new(m, &c, err);
    uint8_t* px = malloc(640 * 480 * 3);
    for (int i = 0; i < 640 * 480 * 3; i++) px[i] = (uint8_t)(i * 131 % 251);
    MglImage img = {px, 640, 480, 640 * 3};
    MglBox boxes[4] = {{10, 10, 200, 200, 0.9f, "a"}, {300, 50, 500, 300, 0.8f, "b"},
                       {100, 250, 400, 470, 0.7f, "c"}, {500, 300, 630, 470, 0.6f, "a"}};
    MglGenParams gp = mgl_gen_default_params();
    gp.max_new_tokens = bp->gen_tokens > 0 ? bp->gen_tokens : 4;
    MglTimings tm = {0};
    char* text = NULL;
    if (st == MGL_OK) st = mgl_generate(c, &img, boxes, 4, "Describe the image.", &gp, &text, NULL, NULL, &tm, err);
    double t2 = now_ms();
    if (st == MGL_OK)
        g_string_append_printf(out, "{\"model\": \"%s\", \"backend\": \"cpu\", \"blas_core\": \"%s\", "
                                    "\"weight_file_bytes\": %llu, \"load_ms\": %.1f, \"rss_before_load_MiB\": %.1f, "
                                    "\"rss_after_load_MiB\": %.1f, \"frame_ms\": %.1f, \"prompt_tokens\": %d, "
                                    "\"generated\": %d, \"vision_ms\": %.1f, \"prefill_ms\": %.1f, "
                                    "\"decode_ms_per_token\": %.1f, \"peak_rss_MiB\": %.1f, "
                                    "\"peak_rss_over_file_size\": %.3f}\n",
                               path, mgl_blas_corename(), (unsigned long long)bytes, t1 - t0, rss0 / 1024.0,
                               rss_load / 1024.0, t2 - t1, tm.n_prompt_tokens, tm.n_generated, tm.vision_ms,
                               tm.prefill_ms, tm.n_generated ? tm.decode_ms / tm.n_generated : 0.0,
                               peak_rss_kb() / 1024.0, (double)peak_rss_kb() * 1024.0 / (double)(bytes ? bytes : 1));
    free(text);
    free(px);
    mgl_ctx_free(c);
    mgl_model_free(m);
    return st;
}

static double median(double* v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n ? v[n / 2] : 0;
}

#ifdef MGL_HAVE_CUDA
/* The CUDA backend on the same presets: weights synthesized on the host in
 * the run's precision, uploaded once; stage timings from CUDA events, the
 * decode loop and the frame by the host clock (they include the token's
 * trip to the host each step, as generation does). */
static MglStatus bench_cuda(const Preset* p, const MglBenchParams* bp, GString* out, MglErr* err) {
    const char* prec = bp->precision && *bp->precision ? bp->precision : "f16";
    MglDType dt;
    if (!strcmp(prec, "f16")) dt = MGL_DT_F16;
    else if (!strcmp(prec, "bf16")) dt = MGL_DT_BF16;
    else if (!strcmp(prec, "f32")) dt = MGL_DT_F32;
    else return mgl_err(err, MGL_E_INVALID, "bench: --precision '%s': expected f16, bf16 or f32", prec);
    MGL_TRY(mgl_cuda_probe(0, err));
    double tb = now_ms();
    MglModelFiles* f = NULL;
    size_t host_llm_bytes = 0;
    MGL_TRY(build_files(p, dt, 1234, &f, &host_llm_bytes, err));
    MglModelParams mp = mgl_model_default_params();
    mp.device = "cuda";
    mp.precision = prec;
    mgl_cuda_reset_peak();
    MglModel* m = NULL;
    MGL_TRY(mgl_model_from_files(f, &mp, &m, err));
    double build_ms = now_ms() - tb;
    MglCtx* c = NULL;
    MglStatus st = mgl_ctx_new(m, &c, err);
    char dev[200];
    mgl_cuda_device_name(0, dev, sizeof dev);
    GString* j = g_string_new(NULL);
    g_string_append_printf(j, "{\"preset\": \"%s\", \"backend\": \"cuda\", \"device\": \"%s\", \"precision\": \"%s\", "
                              "\"build_ms\": %.1f, \"weight_bytes\": %zu",
                           p->name, dev, prec, build_ms, mgl_cuda_model_weight_bytes(m->cuda));
    const int reps = bp->reps > 0 ? bp->reps : 3;
    MglCudaBench b;
    memset(&b, 0, sizeof b);
    if (st == MGL_OK && p->vision) {
        st = mgl_cuda_bench_vision(c, reps, &b, err);
        if (st == MGL_OK)
            g_string_append_printf(j, ", \"clip_ms\": %.3f, \"convnext_ms\": %.3f, \"clip_convnext_overlapped_ms\": %.3f, "
                                      "\"fuse_ms\": %.3f, \"objects_ms_10_boxes\": %.3f, \"vision_ms\": %.3f",
                                   b.clip_ms, b.convnext_ms, b.vision_overlap_ms, b.fuse_ms, b.objects_ms,
                                   b.vision_overlap_ms + b.fuse_ms + b.objects_ms);
    }
    if (st == MGL_OK && p->lm) {
        int T = bp->prompt_tokens > 0 ? bp->prompt_tokens : 900;
        int G = bp->gen_tokens > 0 ? bp->gen_tokens : 32;
        st = mgl_cuda_bench_llm(c, T, G, &b, err);
        size_t lb = mgl_cuda_model_llm_bytes(m->cuda);
        double per = b.decode_ms_per_token;
        if (st == MGL_OK)
            g_string_append_printf(j, ", \"prefill_tokens\": %d, \"prefill_ms\": %.3f, \"decode_tokens\": %d, "
                                      "\"decode_ms_per_token\": %.3f, \"decode_tokens_per_s\": %.1f, "
                                      "\"llm_weight_bytes\": %zu, \"decode_weight_GBps\": %.1f, \"decode_cuda_graph\": %s",
                                   T, b.prefill_ms, G, per, per > 0 ? 1000.0 / per : 0.0, lb,
                                   per > 0 ? (double)lb / per / 1e6 : 0.0, b.graph ? "true" : "false");
    }
    if (st == MGL_OK && p->vision && p->lm) {
        int T = 900, G = 30;
        st = mgl_cuda_bench_frame(c, T, G, &b, err);
        if (st == MGL_OK)
            g_string_append_printf(j, ", \"frame_ms\": %.2f, \"frame_preprocess_ms\": %.2f, \"frame_vision_ms\": %.2f, "
                                      "\"frame_prefill_ms\": %.2f, \"frame_decode_ms\": %.2f, \"frame_prompt_tokens\": %d, "
                                      "\"frame_generated\": %d",
                                   b.frame_ms, b.frame_preprocess_ms, b.frame_vision_ms, b.frame_prefill_ms,
                                   b.frame_decode_ms, b.frame_prompt_tokens, b.frame_generated);
    }
    g_string_append_printf(j, ", \"peak_device_alloc_MiB\": %.1f, \"peak_rss_MiB\": %.1f}\n",
                           mgl_cuda_peak_bytes() / 1048576.0, peak_rss_kb() / 1024.0);
    if (st == MGL_OK) g_string_append(out, j->str);
    g_string_free(j, TRUE);
    mgl_ctx_free(c);
    mgl_model_free(m);
    return st;
}
#endif

MglStatus mgl_bench_run(const MglBenchParams* bp, GString* out, MglErr* err) {
    const Preset* p = find_preset(bp->preset);
    if (!p) return mgl_err(err, MGL_E_INVALID, "bench: unknown preset '%s' (%s)", bp->preset, mgl_bench_preset_names());
    const char* dev = bp->device && *bp->device ? bp->device : "cpu";
    if (strcmp(dev, "cpu") && strcmp(dev, "cuda") && strcmp(dev, "auto"))
        return mgl_err(err, MGL_E_INVALID, "bench: --device '%s' (cpu, cuda or auto)", dev);
#ifdef MGL_HAVE_CUDA
    if (!strcmp(dev, "cuda")) return bench_cuda(p, bp, out, err);
    if (!strcmp(dev, "auto")) {
        MglErr e = {0};
        if (mgl_cuda_probe(0, &e) == MGL_OK) return bench_cuda(p, bp, out, err);
        fprintf(stderr, "mgllava: bench: device=auto: %s; running on the CPU\n", e.msg);
    }
#else
    if (!strcmp(dev, "cuda"))
        return mgl_err(err, MGL_E_UNSUPPORTED, "bench: --device cuda: this build has no CUDA backend (configure with -Dcuda=enabled)");
#endif
    MglModel* m = NULL;
    size_t llm_bytes = 0;
    double tb = now_ms();
    MGL_TRY(build(p, bp->dtype, 1234, &m, &llm_bytes, err));
    double build_ms = now_ms() - tb;
    g_string_append_printf(out, "{\"preset\": \"%s\", \"backend\": \"cpu\", \"dtype\": \"%s\", \"threads\": %d, "
                                "\"blas_core\": \"%s\", \"build_ms\": %.1f",
                           p->name, mgl_dtype_name(bp->dtype), bp->n_threads, mgl_blas_corename(), build_ms);
    const int reps = bp->reps > 0 ? bp->reps : 1;
    if (p->vision) {
        const int64_t P = m->n_patches, D = m->D;
        float* x336 = malloc(sizeof(float) * 3 * 336 * 336);
        float* x768 = malloc(sizeof(float) * 3 * 768 * 768);
        for (int i = 0; i < 3 * 336 * 336; i++) x336[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
        for (int i = 0; i < 3 * 768 * 768; i++) x768[i] = (float)((i * 2246822519u) % 1000) / 500.0f - 1.0f;
        float* clip = malloc(sizeof(float) * (size_t)(P * D));
        float* fused = malloc(sizeof(float) * (size_t)(P * D));
        float* so[4];
        for (int s = 0; s < 4; s++) {
            int64_t hs = (MGL_AUX_SIZE / 4) >> s;
            so[s] = malloc(sizeof(float) * (size_t)(hs * hs * m->stages[s].C));
        }
        double tc[16], tx[16], tf[16], to[16];
        const size_t nbox = 10;
        float boxes[4 * nbox];
        for (size_t i = 0; i < nbox; i++) {
            boxes[4 * i] = (float)(i * 60);
            boxes[4 * i + 1] = (float)(i * 40);
            boxes[4 * i + 2] = (float)(i * 60 + 200);
            boxes[4 * i + 3] = (float)(i * 40 + 300);
        }
        float* pooled = malloc(sizeof(float) * nbox * (size_t)m->Cm);
        int r = reps > 16 ? 16 : reps;
        for (int i = 0; i < r; i++) {
            double a = now_ms();
            mgl_stage_clip(m, x336, clip);
            double b = now_ms();
            mgl_stage_convnext(m, x768, so);
            double c = now_ms();
            mgl_stage_fuse(m, clip, so[3], fused, NULL);
            double d = now_ms();
            mgl_stage_objects(m, so, boxes, nbox, pooled);
            double e = now_ms();
            tc[i] = b - a;
            tx[i] = c - b;
            tf[i] = d - c;
            to[i] = e - d;
        }
        g_string_append_printf(out, ", \"clip_ms\": %.1f, \"convnext_ms\": %.1f, \"fuse_ms\": %.1f, "
                                    "\"objects_ms_10_boxes\": %.1f, \"vision_ms\": %.1f",
                               median(tc, r), median(tx, r), median(tf, r), median(to, r),
                               median(tc, r) + median(tx, r) + median(tf, r) + median(to, r));
        free(x336); free(x768); free(clip); free(fused); free(pooled);
        for (int s = 0; s < 4; s++) free(so[s]);
    }
    if (p->lm) {
        const int64_t H = m->lc.hidden, V = m->lc.vocab;
        int64_t T = bp->prompt_tokens > 0 ? bp->prompt_tokens : 128;
        int G = bp->gen_tokens > 0 ? bp->gen_tokens : 32;
        MglCtx* c = NULL;
        mgl_ctx_new(m, &c, err);
        MglStatus st = mgl_ctx_reserve(c, T + G + 1, err);
        float* emb = malloc(sizeof(float) * (size_t)(T * H));
        for (int64_t i = 0; i < T; i++) mgl_weight_row(&m->embed, (i * 7919) % V, emb + i * H);
        float* logits = malloc(sizeof(float) * (size_t)V);
        double a = now_ms();
        if (st == MGL_OK) st = mgl_llm_forward(c, emb, T, 0, logits, false, err);
        double b = now_ms();
        float* e1 = malloc(sizeof(float) * (size_t)H);
        for (int i = 0; st == MGL_OK && i < G; i++) {
            int32_t id = 0;
            for (int64_t k = 1; k < V; k++)
                if (logits[k] > logits[id]) id = (int32_t)k;
            mgl_weight_row(&m->embed, id, e1);
            st = mgl_llm_forward(c, e1, 1, T + i, logits, false, err);
        }
        double d = now_ms();
        free(e1); free(emb); free(logits);
        mgl_ctx_free(c);
        if (st != MGL_OK) {
            mgl_model_free(m);
            return st;
        }
        double per = (d - b) / G;
        g_string_append_printf(out, ", \"prefill_tokens\": %lld, \"prefill_ms\": %.1f, \"decode_tokens\": %d, "
                                    "\"decode_ms_per_token\": %.2f, \"decode_tokens_per_s\": %.1f, "
                                    "\"llm_weight_bytes\": %zu, \"decode_weight_GBps\": %.2f",
                               (long long)T, b - a, G, per, 1000.0 / per, llm_bytes, (double)llm_bytes / per / 1e6);
    }
    g_string_append_printf(out, ", \"peak_rss_MiB\": %.1f}\n", peak_rss_kb() / 1024.0);
    mgl_model_free(m);
    return MGL_OK;
}
