/* mgl-bench.c: `mgllava bench`: real-shape models with random weights built
 * in memory (no files), timed stage by stage on any backend through the
 * engine's backend table. A developer command: it builds models from
 * synthetic files and times stages, which the public API does not offer, so
 * it uses the engine's internal headers (the other commands do not). */
#include "mgl-bench.h"
#include "mgl-cli.h"
#include "mgl-dev.h"
#include "mgl-scenes.h"
#include "mgl-model.h"
#include "mgl-quant.h"
#include "cpu/mgl-blas.h"
#include "cpu/mgl-cpu-isa.h"
#include "cpu/mgl-ops-bf16.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* The bf16 product kernel for the bench line: the one chosen, and why not
 * AMX where the tiles were there but disagreed with their model. */
static const char* bf16_gemm_name(void) {
    if (mgl_gemm_bf16_amx_disagreed()) return "avx512-bf16 (AMX present, disagreed with its model)";
    return mgl_gemm_bf16_kernel_name(mgl_gemm_bf16_kernel());
}

/* user + system CPU time of the process so far, in seconds */
static double cpu_seconds(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

typedef struct {
    int hidden, layers, heads, mlp;
} ClipShape;
typedef struct {
    int depths[4], dims[4];
} CnxShape;
typedef struct {
    const char* arch;
    int hidden, layers, heads, kv, ffn, vocab, max_pos;
    float theta;
    bool tie;
} LlmShape;

static const ClipShape k_clip_l = {1024, 24, 16, 4096};
static const ClipShape k_clip_tiny = {64, 2, 2, 128};
static const CnxShape k_cnx_l = {{3, 3, 27, 3}, {192, 384, 768, 1536}};
static const CnxShape k_cnx_tiny = {{1, 1, 1, 1}, {8, 16, 32, 64}};
static const LlmShape k_vicuna7b = {"llama", 4096, 32, 32, 32, 11008, 32000, 4096, 1e4f, false};
static const LlmShape k_phi3mini = {"phi3", 3072, 32, 32, 32, 8192, 32064, 4096, 1e4f, false};
static const LlmShape k_llama3_8b = {"llama", 4096, 32, 32, 8, 14336, 128256, 8192, 5e5f, false};
static const LlmShape k_llama110m = {"llama", 768, 12, 12, 12, 2048, 32000, 2048, 1e4f, true};
static const LlmShape k_llm_tiny = {"llama", 64, 1, 2, 2, 128, 256, 4096, 1e4f, false};
static const LlmShape k_yi34b = {"llama", 7168, 60, 56, 8, 20480, 64000, 4096, 5e6f, false};

typedef struct {
    const char* name;
    const ClipShape* clip;
    const CnxShape* cnx;
    const LlmShape* llm;
    bool vision, lm;
    bool qdirect; /* synthesized quantized (q4: groups of 128), never in float: --dtype q8|q4 only */
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
    {"yi-34b", &k_clip_l, &k_cnx_l, &k_yi34b, true, true, true},
};

const char* mgl_bench_preset_names(void) {
    return "clip-l-336 convnext-l-768 vision-l llama-110m vicuna-7b phi3-mini llama3-8b mgllava-7b yi-34b (q8/q4)";
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

static MglStatus build_files(const Preset* p, MglDType dt, int qbits, uint64_t seed, MglModelFiles** out,
                             size_t* llm_bytes, MglErr* err);

/* qbits 8 or 4: the LLM's matrices and lm_head quantized (mgl-quant.h, default groups) after synthesis */
static MglStatus build_files(const Preset* p, MglDType dt, int qbits, uint64_t seed, MglModelFiles** out,
                             size_t* llm_bytes, MglErr* err) {
    MglModelFiles* f = calloc(1, sizeof *f);
    f->weights = mgl_tset_new();
    f->man.template_name = strdup("vicuna");
    f->man.max_new_tokens = 100;
    f->man.limit_num = 100;
    f->man.dir = strdup("(synthetic)");
    f->clip = (MglClipConfig){.hidden = p->clip->hidden,
                              .n_layers = p->clip->layers,
                              .n_heads = p->clip->heads,
                              .intermediate = p->clip->mlp,
                              .image_size = 336,
                              .patch_size = 14,
                              .n_channels = 3,
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
    MglStatus st = MGL_OK;
    if (p->qdirect && !qbits)
        st = mgl_err(err, MGL_E_INVALID, "bench: preset '%s' is synthesized quantized only: --dtype q4 or q8", p->name);
    /* quantized LLM matrices made directly (never the float model in host memory) for yi-34b, and for
     * any preset whose float LLM would take more than half this machine's memory */
    const double per_layer = 2.0 * L->n_heads * L->head_dim + 2.0 * L->n_kv_heads * L->head_dim + 3.0 * L->intermediate;
    const double llm_float =
        (double)mgl_dtype_size(dt) * ((double)L->n_layers * L->hidden * per_layer + 2.0 * L->vocab * L->hidden);
    const double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    const bool direct = qbits && (p->qdirect || (ram > 0 && llm_float > ram / 2));
    if (st == MGL_OK && direct) {
        MglQuantSpec q = {.bits = qbits, .group = p->qdirect || qbits == 8 ? 128 : 32, .head = true};
        fprintf(stderr, "quantization q%d: LLM matrices synthesized quantized (no float copy, so no error figure)\n",
                qbits);
        st = mgl_quant_synthesize(f, &q, seed, err);
    }
    if (st == MGL_OK) st = mgl_model_files_synthesize(f, dt, seed, err);
    if (st == MGL_OK) st = mgl_model_files_validate(f, err);
    if (st == MGL_OK && qbits && !direct) {
        MglQuantSpec q = {.bits = qbits, .group = qbits == 8 ? 128 : 32, .head = true};
        /* the sanity figure: each quantized matrix's output error on these random weights */
        char* rep = mgl_quant_error_report(f, &q);
        fprintf(stderr, "quantization q%d: relative RMS error of layer 0's outputs (and lm_head's when not tied): %s\n",
                qbits, rep);
        g_free(rep);
        st = mgl_quantize_model(f, &q, err);
    }
    *llm_bytes = 0;
    for (size_t i = 0; i < f->weights->n; i++)
        if (g_str_has_prefix(f->weights->items[i].name, "llm.") &&
            strcmp(f->weights->items[i].name, "llm.model.embed_tokens.weight") != 0)
            *llm_bytes += mgl_tensor_nbytes(&f->weights->items[i]);
    /* a tied lm_head reads the embeddings, unless a quantized copy stands in (counted above) */
    if (L->tie_embeddings && !mgl_tset_get(f->weights, MGL_QUANT_TIED_HEAD))
        *llm_bytes += (size_t)L->vocab * L->hidden * mgl_dtype_size(dt);
    if (st != MGL_OK) {
        mgl_model_files_free(f);
        return st;
    }
    *out = f;
    return MGL_OK;
}

static const char* bench_dtype_name(const MglBenchParams* bp) {
    return bp->quant_bits == 8 ? "q8" : bp->quant_bits == 4 ? "q4" : mgl_dtype_name(bp->dtype);
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
    MGL_TRY(build_files(p, bp->dtype, bp->quant_bits, 1234, &f, &llm_bytes, err));
    MglStatus st = mgl_model_files_save_packed(f, dir, bp->dtype, tokenizer_dir, err);
    mgl_model_files_free(f);
    return st;
}

static uint64_t file_size(const char* path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

/* The KV cache a context gets: the one asked for, else the model's default. */
static const char* kv_name(MglDType model_kv, const char* asked) {
    if (asked) return asked;
    return model_kv == MGL_DT_F16 ? "f16" : model_kv == MGL_DT_BF16 ? "bf16" : "f32";
}

/* Load a model from disk (mmap), run one captioned frame, and report time and
 * memory against the size of its weight files. */
MglStatus mgl_bench_model(const MglBenchParams* bp, const char* path, GString* out, MglErr* err) {
    long rss0 = peak_rss_kb();
    double t0 = now_ms();
    MglModel* m = NULL;
    MglModelParams mp = mgl_model_default_params();
    mp.device = "cpu"; /* this measures the CPU backend's memory against the files */
    mp.n_threads = bp->n_threads;
    mp.precision = bp->precision;
    MGL_TRY(mgl_model_load(path, &mp, &m, err));
    double t1 = now_ms();
    long rss_load = peak_rss_kb();
    uint64_t bytes = 0;
    for (int i = 0; i < m->files->n_files; i++) bytes += file_size(m->files->files[i]);
    MglCtx* c = NULL;
    MglCtxParams cp = mgl_ctx_default_params();
    cp.kv_precision = bp->kv_precision;
    MglStatus st = mgl_ctx_new_with_params(m, &cp, &c, err);
    uint8_t* px = malloc(640 * 480 * 3);
    for (int i = 0; i < 640 * 480 * 3; i++) px[i] = (uint8_t)(i * 131 % 251);
    MglImage img = {px, 640, 480, 640 * 3};
    MglBox boxes[4] = {{10, 10, 200, 200, 0.9f, "a"},
                       {300, 50, 500, 300, 0.8f, "b"},
                       {100, 250, 400, 470, 0.7f, "c"},
                       {500, 300, 630, 470, 0.6f, "a"}};
    MglGenParams gp = mgl_gen_default_params();
    gp.max_new_tokens = bp->gen_tokens > 0 ? bp->gen_tokens : 4;
    MglTimings tm = {0};
    char* text = NULL;
    if (st == MGL_OK) st = mgl_generate(c, &img, boxes, 4, "Describe the image.", &gp, &text, NULL, NULL, &tm, err);
    double t2 = now_ms();
    if (st == MGL_OK)
        g_string_append_printf(out,
                               "{\"model\": \"%s\", \"backend\": \"cpu\", \"precision\": \"%s\", \"kv\": \"%s\", "
                               "\"isa\": \"%s\", \"bf16_gemm\": \"%s\", \"blas_core\": \"%s\", "
                               "\"weight_file_bytes\": %llu, \"load_ms\": "
                               "%.1f, \"rss_before_load_MiB\": %.1f, "
                               "\"rss_after_load_MiB\": %.1f, \"frame_ms\": %.1f, \"prompt_tokens\": %d, "
                               "\"generated\": %d, \"vision_ms\": %.1f, \"prefill_ms\": %.1f, "
                               "\"decode_ms_per_token\": %.1f, \"peak_rss_MiB\": %.1f, "
                               "\"peak_rss_over_file_size\": %.3f}\n",
                               path, bp->precision && !strcmp(bp->precision, "bf16") ? "bf16" : "f32",
                               kv_name(m->kv_dtype, bp->kv_precision), mgl_cpu_level_name(mgl_cpu_level()),
                               bf16_gemm_name(), mgl_blas_corename(), (unsigned long long)bytes, t1 - t0, rss0 / 1024.0,
                               rss_load / 1024.0, t2 - t1, tm.n_prompt_tokens, tm.n_generated, tm.vision_ms,
                               tm.prefill_ms, tm.n_generated ? tm.decode_ms / tm.n_generated : 0.0,
                               peak_rss_kb() / 1024.0, (double)peak_rss_kb() * 1024.0 / (double)(bytes ? bytes : 1));
    free(text);
    free(px);
    mgl_ctx_free(c);
    mgl_model_free(m);
    return st;
}

/* The stage figures of a model built from a preset, on the backend `dev`
 * names ("cpu", "cuda"); "auto" takes the GPU when one works. */
static MglStatus bench_backend(const Preset* p, const MglBenchParams* bp, const char* dev, GString* out, MglErr* err) {
    const bool cpu = !strcmp(dev, "cpu");
    const char* prec = bp->precision && *bp->precision ? bp->precision : "f16";
    MglDType dt = bp->dtype;
    if (!cpu) {
        if (!strcmp(prec, "f16"))
            dt = MGL_DT_F16;
        else if (!strcmp(prec, "bf16"))
            dt = MGL_DT_BF16;
        else if (!strcmp(prec, "f32"))
            dt = MGL_DT_F32;
        else
            return mgl_err(err, MGL_E_INVALID, "bench: --precision '%s': expected f16, bf16 or f32", prec);
    }
    double tb = now_ms();
    MglModelFiles* f = NULL;
    size_t llm_bytes = 0;
    MGL_TRY(build_files(p, dt, bp->quant_bits, 1234, &f, &llm_bytes, err));
    MglModelParams mp = mgl_model_default_params();
    mp.device = dev;
    mp.precision = prec;
    mp.n_threads = bp->n_threads;
    const MglBackend* dev_be = cpu ? NULL : mgl_backend_get(dev);
    if (dev_be && dev_be->mem_peak_reset) dev_be->mem_peak_reset();
    MglModel* m = NULL;
    MGL_TRY(mgl_model_from_files(f, &mp, &m, err));
    double build_ms = now_ms() - tb;
    MglBackendInfo info;
    mgl_model_backend_info(m, &info);
    MglCtx* c = NULL;
    MglCtxParams cp = mgl_ctx_default_params();
    cp.kv_precision = bp->kv_precision;
    MglStatus st = mgl_ctx_new_with_params(m, &cp, &c, err);
    GString* j = g_string_new(NULL);
    if (cpu)
        g_string_append_printf(
            j,
            "{\"preset\": \"%s\", \"backend\": \"cpu\", \"dtype\": \"%s\", \"precision\": \"%s\", "
            "\"kv\": \"%s\", \"threads\": %d, \"isa\": \"%s\", \"bf16_gemm\": \"%s\", \"blas_core\": \"%s\", "
            "\"build_ms\": %.1f",
            p->name, bench_dtype_name(bp), info.precision, kv_name(m->kv_dtype, bp->kv_precision), bp->n_threads,
            mgl_cpu_level_name(mgl_cpu_level()), bf16_gemm_name(), mgl_blas_corename(), build_ms);
    else
        g_string_append_printf(j,
                               "{\"preset\": \"%s\", \"backend\": \"%s\", \"device\": \"%s\", \"precision\": \"%s\", "
                               "\"quant\": \"%s\", \"build_ms\": %.1f, \"weight_bytes\": %zu",
                               p->name, mgl_model_backend_name(m), info.device, prec,
                               bp->quant_bits ? bench_dtype_name(bp) : "none", build_ms, info.weight_bytes);
    const char* fmt = cpu ? "%.1f" : "%.3f";
    MglBackendBench b;
    memset(&b, 0, sizeof b);
    if (st == MGL_OK && p->vision) {
        st = mgl_ctx_bench_vision(c, bp->reps > 0 ? bp->reps : (cpu ? 1 : 3), &b, err);
        if (st == MGL_OK) {
            double v = (cpu ? b.clip_ms + b.convnext_ms : b.vision_overlap_ms) + b.fuse_ms + b.objects_ms;
            g_string_append_printf(j, ", \"clip_ms\": ");
            g_string_append_printf(j, fmt, b.clip_ms);
            g_string_append_printf(j, ", \"convnext_ms\": ");
            g_string_append_printf(j, fmt, b.convnext_ms);
            if (!cpu) g_string_append_printf(j, ", \"clip_convnext_overlapped_ms\": %.3f", b.vision_overlap_ms);
            g_string_append_printf(j, ", \"fuse_ms\": ");
            g_string_append_printf(j, fmt, b.fuse_ms);
            g_string_append_printf(j, ", \"objects_ms_10_boxes\": ");
            g_string_append_printf(j, fmt, b.objects_ms);
            g_string_append_printf(j, ", \"vision_ms\": ");
            g_string_append_printf(j, fmt, v);
        }
    }
    if (st == MGL_OK && p->lm) {
        int T = bp->prompt_tokens > 0 ? bp->prompt_tokens : (cpu ? 128 : 900);
        int G = bp->gen_tokens > 0 ? bp->gen_tokens : 32;
        st = mgl_ctx_bench_llm(c, T, G, &b, err);
        size_t lb = cpu ? llm_bytes : info.step_bytes;
        double per = b.decode_ms_per_token;
        if (st == MGL_OK && cpu)
            g_string_append_printf(
                j,
                ", \"prefill_tokens\": %d, \"prefill_ms\": %.1f, \"prefill_first_ms\": %.1f, "
                "\"decode_tokens\": %d, \"decode_ms_per_token\": %.2f, \"decode_tokens_per_s\": %.1f, "
                "\"llm_weight_bytes\": %zu, \"decode_weight_GBps\": %.2f",
                T, b.prefill_ms, b.prefill_first_ms, G, per, 1000.0 / per, lb, (double)lb / per / 1e6);
        else if (st == MGL_OK)
            g_string_append_printf(j,
                                   ", \"prefill_tokens\": %d, \"prefill_ms\": %.3f, \"decode_tokens\": %d, "
                                   "\"decode_ms_per_token\": %.3f, \"decode_tokens_per_s\": %.1f, "
                                   "\"llm_weight_bytes\": %zu, \"decode_weight_GBps\": %.1f, \"decode_cuda_graph\": %s",
                                   T, b.prefill_ms, G, per, per > 0 ? 1000.0 / per : 0.0, lb,
                                   per > 0 ? (double)lb / per / 1e6 : 0.0, b.graph ? "true" : "false");
    }
    if (st == MGL_OK && p->vision && p->lm && !cpu) {
        MglFrameBench fb;
        st = mgl_ctx_bench_frame(c, 900, 30, &fb, err);
        if (st == MGL_OK)
            g_string_append_printf(
                j,
                ", \"frame_ms\": %.2f, \"frame_preprocess_ms\": %.2f, \"frame_vision_ms\": %.2f, "
                "\"frame_prefill_ms\": %.2f, \"frame_decode_ms\": %.2f, \"frame_prompt_tokens\": %d, "
                "\"frame_generated\": %d",
                fb.frame_ms, fb.preprocess_ms, fb.vision_ms, fb.prefill_ms, fb.decode_ms, fb.prompt_tokens,
                fb.generated);
    }
    if (dev_be && dev_be->mem_peak_bytes)
        g_string_append_printf(j, ", \"peak_device_alloc_MiB\": %.1f", dev_be->mem_peak_bytes() / 1048576.0);
    if (!cpu) {
        /* the device's memory in use after the runs (cudaMemGetInfo): the engine's allocations,
         * which it keeps for reuse, plus the CUDA context and the libraries' workspaces */
        MglBackendInfo bi;
        mgl_model_backend_info(m, &bi);
        if (bi.total_bytes >= bi.free_bytes && bi.total_bytes > 0)
            g_string_append_printf(j, ", \"device_used_MiB\": %.1f, \"device_total_MiB\": %.1f",
                                   (double)(bi.total_bytes - bi.free_bytes) / 1048576.0,
                                   (double)bi.total_bytes / 1048576.0);
    }
    g_string_append_printf(j, ", \"peak_rss_MiB\": %.1f}\n", peak_rss_kb() / 1024.0);
    if (st == MGL_OK) g_string_append(out, j->str);
    g_string_free(j, TRUE);
    mgl_ctx_free(c);
    mgl_model_free(m);
    return st;
}

MglStatus mgl_bench_run(const MglBenchParams* bp, GString* out, MglErr* err) {
    const Preset* p = find_preset(bp->preset);
    if (!p) return mgl_err(err, MGL_E_INVALID, "bench: unknown preset '%s' (%s)", bp->preset, mgl_bench_preset_names());
    const char* dev = bp->device && *bp->device ? bp->device : "cpu";
    if (strcmp(dev, "cpu") && strcmp(dev, "cuda") && strcmp(dev, "auto"))
        return mgl_err(err, MGL_E_INVALID, "bench: --device '%s' (cpu, cuda or auto)", dev);
    if (!strcmp(dev, "auto")) {
        const MglBackend* be = mgl_backend_get("cuda");
        MglErr e = {0};
        if (be && be->probe(0, &e) == MGL_OK) return bench_backend(p, bp, "cuda", out, err);
        if (be) fprintf(stderr, "mgllava: bench: device=auto: %s; running on the CPU\n", e.msg);
        dev = "cpu";
    }
    if (strcmp(dev, "cpu") && !mgl_backend_get(dev))
        return mgl_err(err, MGL_E_UNSUPPORTED,
                       "bench: --device %s: this build has no CUDA backend (configure with -Dcuda=enabled)", dev);
    if (strcmp(dev, "cpu")) {
        MglErr e = {0};
        if (mgl_backend_get(dev)->probe(0, &e) != MGL_OK) return mgl_err(err, MGL_E_DEVICE, "%s", e.msg);
    }
    return bench_backend(p, bp, dev, out, err);
}


/* ---- many sequences: batched decode (--batch) and many streams (--streams) ---- */

/* "1,2,4,8" -> up to 16 values in [1, 256] */
static int parse_list(const char* s, int* v, int cap) {
    int n = 0;
    char** parts = g_strsplit(s, ",", -1);
    for (int i = 0; parts[i]; i++) {
        double d;
        if (n == cap || !cli_num(parts[i], 1, 256, &d)) {
            n = -1;
            break;
        }
        v[n++] = (int)d;
    }
    g_strfreev(parts);
    return n;
}

/* Decode throughput of a preset at each batch size: B sequences, one step for all of them at once. */
static MglStatus bench_batches(const MglBenchParams* bp, const int* bs, int nb, GString* out, MglErr* err) {
    const Preset* p = find_preset(bp->preset);
    if (!p) return mgl_err(err, MGL_E_INVALID, "bench: unknown preset '%s' (%s)", bp->preset, mgl_bench_preset_names());
    if (!p->lm) return mgl_err(err, MGL_E_INVALID, "bench: --batch needs a preset with an LLM");
    const char* dev = bp->device && *bp->device ? bp->device : "cpu";
    MglModelFiles* f = NULL;
    size_t llm_bytes = 0;
    MGL_TRY(build_files(p, bp->dtype, bp->quant_bits, 1234, &f, &llm_bytes, err));
    MglModelParams mp = mgl_model_default_params();
    mp.device = dev;
    mp.precision = bp->precision;
    mp.n_threads = bp->n_threads;
    MglModel* m = NULL;
    MGL_TRY(mgl_model_from_files(f, &mp, &m, err));
    const int T = bp->prompt_tokens > 0 ? bp->prompt_tokens : 128, G = bp->gen_tokens > 0 ? bp->gen_tokens : 16;
    MglStatus st = MGL_OK;
    double base = 0;
    for (int i = 0; i < nb && st == MGL_OK; i++) {
        MglBatchBench b;
        st = mgl_model_bench_batch(m, bs[i], T, G, &b, err);
        if (st != MGL_OK) break;
        if (i == 0) base = b.tokens_per_s / bs[0];
        g_string_append_printf(out,
                               "{\"preset\": \"%s\", \"backend\": \"%s\", \"dtype\": \"%s\", \"batch\": %d, "
                               "\"prompt_tokens\": %d, \"decode_steps\": %d, \"step_ms\": %.2f, "
                               "\"aggregate_tokens_per_s\": %.1f, \"per_sequence_tokens_per_s\": %.1f, "
                               "\"vs_batch_1\": %.2f}\n",
                               p->name, mgl_model_backend_name(m), bench_dtype_name(bp), bs[i], T, G, b.step_ms,
                               b.tokens_per_s, b.tokens_per_s / bs[i], base > 0 ? b.tokens_per_s / base : 0.0);
    }
    mgl_model_free(m);
    return st;
}

typedef struct {
    GMutex lock;
    GCond cond;
    int done, failed;
    double* lat; /* answer latencies, ms */
    int n_lat;
    /* the answers' generated tokens and decode time; with a constraint, the
     * server's time on the masks after the steps and the complete answers */
    long tokens, complete;
    double decode_ms, mask_wait_ms;
    GQueue ready; /* StreamFeed* whose answer came: the feeder submits their next frame */
    char err[256];
} StreamsRun;

typedef struct {
    StreamsRun* run;
    MglStream* stream;
    int stream_index, next_frame, frames, max_new_tokens;
    double submitted;
    uint8_t* px;
    const char* question;
    MglGrammarState* gs; /* --schema: the request's matcher (one request in flight per stream) */
} StreamFeed;

static void on_answer(uint64_t id, const MglResult* res, void* ud) {
    StreamFeed* f = ud;
    StreamsRun* r = f->run;
    g_mutex_lock(&r->lock);
    r->lat[r->n_lat++] = now_ms() - f->submitted;
    if (res->status != MGL_OK) {
        r->failed++;
        snprintf(r->err, sizeof r->err, "%s", res->error);
    } else {
        r->tokens += res->timings.n_generated;
        r->decode_ms += res->timings.decode_ms;
        r->mask_wait_ms += res->mask_wait_ms;
        if (f->gs) r->complete += mgl_grammar_state_finish(f->gs, res->ids, res->n_ids, NULL) == MGL_GRAMMAR_COMPLETE;
    }
    r->done++;
    if (f->next_frame < f->frames) g_queue_push_tail(&r->ready, f); /* a closed loop: next frame once answered */
    g_cond_broadcast(&r->cond);
    g_mutex_unlock(&r->lock);
}

/* Stream i shows frames of its own scene sequence (seed i) at 640x480. */
static void feed_next(StreamFeed* f) {
    MglScene sc;
    mgl_scene_make(&sc, 640, 480, (uint64_t)(1000 + f->stream_index), f->next_frame, 1, 6);
    mgl_scene_render(&sc, mgl_scene_still_frame(f->next_frame), f->px, 640 * 3, 3, false);
    MglBox boxes[MGL_SCENE_MAX_OBJECTS];
    for (int i = 0; i < sc.n; i++)
        boxes[i] = (MglBox){(float)sc.obj[i].box[0],
                            (float)sc.obj[i].box[1],
                            (float)sc.obj[i].box[2],
                            (float)sc.obj[i].box[3],
                            1.0f,
                            mgl_scene_color_name(sc.obj[i].color)};
    MglImage img = {f->px, 640, 480, 640 * 3};
    MglGenParams gp = mgl_gen_default_params();
    if (f->max_new_tokens > 0) gp.max_new_tokens = f->max_new_tokens;
    if (f->gs) {
        mgl_grammar_state_reset(f->gs);
        mgl_grammar_state_bind(f->gs, &gp);
    }
    MglErr err = {0};
    f->next_frame++;
    f->submitted = now_ms();
    if (mgl_stream_submit(f->stream, &img, boxes, (size_t)sc.n, f->question, &gp, on_answer, f, NULL, &err) != MGL_OK) {
        StreamsRun* r = f->run;
        g_mutex_lock(&r->lock);
        r->failed++;
        r->done++;
        snprintf(r->err, sizeof r->err, "%s", err.msg);
        g_cond_broadcast(&r->cond);
        g_mutex_unlock(&r->lock);
    }
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}

/* N streams, each answering `frames` scene frames one after another (a
 * stream waits for its answer before the next frame, as an element in
 * exact mode), all on one model's server with max_batch N. With a schema
 * (JSON text) every answer is constrained by it. */
static MglStatus bench_streams(const MglBenchParams* bp, const char* path, const int* ns, int nn, int frames,
                               const char* question, const char* schema, GString* out, MglErr* err) {
    MglModelParams mp = mgl_model_default_params();
    mp.device = bp->device && *bp->device ? bp->device : "cpu";
    mp.precision = bp->precision;
    if (bp->n_threads > 0) mp.n_threads = bp->n_threads;
    MglModel* m = NULL;
    MGL_TRY(mgl_model_load(path, &mp, &m, err));
    MglGrammar* g = NULL;
    if (schema && mgl_grammar_from_schema(mgl_model_tokenizer(m), schema, &g, err) != MGL_OK) {
        cli_err_prefix(err, "--schema");
        mgl_model_free(m);
        return err->code;
    }
    MglStatus st = MGL_OK;
    double base = 0;
    for (int k = 0; k < nn && st == MGL_OK; k++) {
        const int N = ns[k];
        MglServerParams sp = mgl_server_default_params();
        sp.max_batch = N;
        MglServer* s = NULL;
        if ((st = mgl_server_new(m, &sp, &s, err)) != MGL_OK) break;
        StreamsRun r;
        memset(&r, 0, sizeof r);
        g_mutex_init(&r.lock);
        g_cond_init(&r.cond);
        r.lat = g_new0(double, (gsize)N*(gsize)frames);
        StreamFeed* feeds = g_new0(StreamFeed, N);
        const double cpu0 = cpu_seconds();
        double t0 = now_ms();
        for (int i = 0; i < N; i++) {
            feeds[i] = (StreamFeed){.run = &r,
                                    .stream = mgl_stream_new(s),
                                    .stream_index = i,
                                    .frames = frames,
                                    .max_new_tokens = bp->gen_tokens,
                                    .px = g_malloc(640 * 480 * 3),
                                    .question = question};
            if (g && mgl_grammar_state_new(g, &feeds[i].gs, err) != MGL_OK) st = err->code;
        }
        for (int i = 0; i < N && st == MGL_OK; i++) feed_next(&feeds[i]);
        if (st != MGL_OK) r.done = N * frames; /* nothing submitted: skip the wait */
        /* this thread renders and submits (preprocessing runs here, beside the server's thread) */
        g_mutex_lock(&r.lock);
        while (r.done < N * frames) {
            StreamFeed* f = g_queue_pop_head(&r.ready);
            if (!f) {
                g_cond_wait(&r.cond, &r.lock);
                continue;
            }
            g_mutex_unlock(&r.lock);
            feed_next(f);
            g_mutex_lock(&r.lock);
        }
        g_mutex_unlock(&r.lock);
        const double wall = now_ms() - t0;
        const double cores = wall > 0 ? (cpu_seconds() - cpu0) / (wall / 1000.0) : 0.0;
        for (int i = 0; i < N; i++) {
            mgl_stream_free(feeds[i].stream);
            g_free(feeds[i].px);
            mgl_grammar_state_free(feeds[i].gs);
        }
        mgl_server_free(s);
        if (r.failed)
            st = mgl_err(err, MGL_E_INVALID, "bench: %d of %d answers failed: %s", r.failed, N * frames, r.err);
        qsort(r.lat, (size_t)r.n_lat, sizeof(double), cmp_double);
        const double fps = N * frames / (wall / 1000.0);
        if (k == 0) base = fps;
        if (st == MGL_OK) {
            /* decode_ms is the batched steps a request was in; per token of one answer */
            const double tok = r.tokens > 0 ? (double)r.tokens : 1.0;
            g_string_append_printf(
                out,
                "{\"model\": \"%s\", \"backend\": \"%s\", \"streams\": %d, \"frames_per_stream\": %d, "
                "\"wall_s\": %.2f, \"answered_frames_per_s\": %.3f, \"vs_first\": %.2f, "
                "\"latency_p50_ms\": %.1f, \"latency_p95_ms\": %.1f, \"mean_tokens\": %.1f, "
                "\"decode_ms_per_token\": %.3f, \"cpu_cores_busy\": %.2f",
                path, mgl_model_backend_name(m), N, frames, wall / 1000.0, fps, base > 0 ? fps / base : 0.0,
                r.lat[r.n_lat / 2], r.lat[(int)((r.n_lat - 1) * 0.95 + 0.5)], r.tokens / (double)(N * frames),
                r.decode_ms / tok, cores);
            if (g)
                g_string_append_printf(out, ", \"schema_complete\": %ld, \"mask_wait_ms_per_token\": %.4f", r.complete,
                                       r.mask_wait_ms / tok);
            g_string_append(out, "}\n");
        }
        g_free(r.lat);
        g_free(feeds);
        g_mutex_clear(&r.lock);
        g_cond_clear(&r.cond);
    }
    mgl_grammar_free(g);
    mgl_model_free(m);
    return st;
}

/* f16/bf16/f32; q8/q4: the LLM's matrices quantized, the other tensors f16 */
static bool bench_dtype(const char* s, MglBenchParams* bp) {
    if (s && (!strcmp(s, "q8") || !strcmp(s, "q4"))) {
        bp->dtype = MGL_DT_F16;
        bp->quant_bits = s[1] - '0';
        return true;
    }
    if (!cli_dtype(s)) return false;
    bp->dtype = !strcmp(s, "f16") ? MGL_DT_F16 : !strcmp(s, "bf16") ? MGL_DT_BF16 : MGL_DT_F32;
    return true;
}

int mgl_cmd_bench(int argc, char** argv) {
    CliOpt o[] = {{"--preset", true},    {"--dtype", true},   {"--prompt-tokens", true}, {"--gen-tokens", true},
                  {"--reps", true},      {"--threads", true}, {"--device", true},        {"--save", true},
                  {"--tokenizer", true}, {"--model", true},   {"--precision", true},     {"--batch", true},
                  {"--streams", true},   {"--frames", true},  {"--prompt", true},        {"--kv", true},
                  {"--schema", true}};
    if (cli_parse_opts(argc, argv, o, 17)) return 1;
    MglBenchParams bp = {.preset = o[0].value ? o[0].value : "mgllava-7b", .dtype = MGL_DT_F32, .reps = 3};
    if (o[1].value && !bench_dtype(o[1].value, &bp))
        return cli_usage_error(NULL, "--dtype '%s': expected f16, bf16, f32, q8 or q4", o[1].value);
    double v;
    if (o[2].value && !cli_num(o[2].value, 1, 1e6, &v))
        return cli_usage_error(NULL, "--prompt-tokens '%s'", o[2].value);
    if (o[2].value) bp.prompt_tokens = (int)v;
    if (o[3].value && !cli_num(o[3].value, 1, 1e6, &v)) return cli_usage_error(NULL, "--gen-tokens '%s'", o[3].value);
    if (o[3].value) bp.gen_tokens = (int)v;
    if (o[4].value && !cli_num(o[4].value, 1, 16, &v)) return cli_usage_error(NULL, "--reps '%s': 1..16", o[4].value);
    if (o[4].value) bp.reps = (int)v;
    if (o[5].value && !cli_num(o[5].value, 1, 1024, &v)) return cli_usage_error(NULL, "--threads '%s'", o[5].value);
    if (o[5].value) bp.n_threads = (int)v;
    if (o[6].value && strcmp(o[6].value, "cpu") && strcmp(o[6].value, "cuda") && strcmp(o[6].value, "auto"))
        return cli_usage_error(NULL, "--device '%s': expected cpu, cuda or auto", o[6].value);
    if (o[10].value && !cli_dtype(o[10].value))
        return cli_usage_error(NULL, "--precision '%s': expected f16, bf16 or f32", o[10].value);
    if (o[6].value && strcmp(o[6].value, "cpu") && (o[7].value || (o[9].value && !o[12].value)))
        return cli_usage_error(NULL, "%s: --save and --model (without --streams) run on the CPU", "bench");
    if (o[16].value && !o[12].value) return cli_usage_error(NULL, "%s: --schema goes with --streams", "bench");
    if (o[15].value && !cli_dtype(o[15].value))
        return cli_usage_error(NULL, "--kv '%s': expected f16, bf16 or f32", o[15].value);
    bp.device = o[6].value;
    bp.precision = o[10].value;
    bp.kv_precision = o[15].value;
    MglErr err = {0};
    int list[16], nl = 0;
    if (o[11].value || o[12].value) {
        const char* which = o[11].value ? "--batch" : "--streams";
        if (o[11].value && o[12].value)
            return cli_usage_error(NULL, "%s: --batch and --streams are separate runs", "bench");
        if ((nl = parse_list(o[11].value ? o[11].value : o[12].value, list, 16)) <= 0)
            return cli_usage_error(NULL, "%s: expected a list like 1,2,4,8 (each 1..256)", which);
        if (o[12].value && !o[9].value) return cli_usage_error(NULL, "%s: --streams needs --model PATH", "bench");
        double fr = 8;
        if (o[13].value && !cli_num(o[13].value, 1, 100000, &fr))
            return cli_usage_error(NULL, "--frames '%s'", o[13].value);
        char* schema = NULL;
        if (o[16].value && !(schema = cli_read_constraint(o[16].value, "--schema", &err))) return cli_fail(&err);
        GString* out = g_string_new(NULL);
        MglStatus st = o[11].value
                           ? bench_batches(&bp, list, nl, out, &err)
                           : bench_streams(&bp, o[9].value, list, nl, (int)fr,
                                           o[14].value ? o[14].value : "Describe the image.", schema, out, &err);
        g_free(schema);
        fputs(out->str, stdout);
        g_string_free(out, TRUE);
        return st == MGL_OK ? 0 : cli_fail(&err);
    }
    if (o[7].value) {
        if (mgl_bench_save(&bp, o[7].value, o[8].value, &err) != MGL_OK) return cli_fail(&err);
        printf("wrote %s (%s, %s)\n", o[7].value, bp.preset, bench_dtype_name(&bp));
        return 0;
    }
    GString* out = g_string_new(NULL);
    if ((o[9].value ? mgl_bench_model(&bp, o[9].value, out, &err) : mgl_bench_run(&bp, out, &err)) != MGL_OK) {
        g_string_free(out, TRUE);
        return cli_fail(&err);
    }
    fputs(out->str, stdout);
    g_string_free(out, TRUE);
    return 0;
}
