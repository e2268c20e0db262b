/* mgl-cpu-backend.c: the CPU backend's table (mgl-backend.h). The weights
 * stay where the core bound them (mapped files, f32 copies of small
 * tensors); each slot holds an f32 KV cache, the prompt embeddings between
 * vision and prefill, and its last logits. A batch runs sequence by
 * sequence, each exactly as alone. */
#include "mgl-cpu.h"
#include "mgl-ops-bf16.h"

#include "mgl-blas.h"
#include "mgl-pool.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct MglBackendModel {
    const MglModelWeights* w;
    bool bf16; /* precision "bf16": bf16 products in the GEMMs (mgl_cpu_set_bf16) */
};

typedef struct {
    MglCpuKv kv;
    float* emb;    /* the prompt's embeddings, vision -> prefill */
    float* logits; /* (vocab) */
    float* e1;     /* one token's embedding */
} CpuSlot;

struct MglBackendCtx {
    const MglModelWeights* w;
    bool bf16;        /* the model's precision */
    MglDType kv_type; /* every slot's KV cache */
    int n_seq;
    CpuSlot* slots;
};

static MglStatus cpu_probe(int gpu_id, MglErr* err) { return MGL_OK; }

static MglStatus cpu_model_new(const MglModelWeights* w, const MglBackendParams* p, MglBackendModel** out,
                               MglErr* err) {
    *out = NULL;
    MGL_TRY(mgl_blas_init(err));
    /* one process-wide pool does the threading; each BLAS call is single-threaded */
    mgl_blas_set_threads(1);
    if (p && p->n_threads > 0) mgl_pool_set_size(p->n_threads);
    MglBackendModel* bm = calloc(1, sizeof *bm);
    if (!bm) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    bm->w = w;
    /* the CPU computes in f32 (the reference's arithmetic) unless asked for
     * bf16; "f16", the device default, changes nothing here */
    bm->bf16 = p && p->precision && !strcmp(p->precision, "bf16");
    *out = bm;
    return MGL_OK;
}

static void cpu_model_free(MglBackendModel* bm) { free(bm); }

static void cpu_model_info(const MglBackendModel* bm, MglBackendInfo* out) {
    memset(out, 0, sizeof *out);
    snprintf(out->device, sizeof out->device, "CPU");
    snprintf(out->precision, sizeof out->precision, "%s", bm->bf16 ? "bf16" : "f32");
    /* MemAvailable (kB) */
    FILE* f = fopen("/proc/meminfo", "r");
    char line[128];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    out->free_bytes = (size_t)kb * 1024;
}

static void cpu_ctx_free(MglBackendCtx* bc) {
    if (!bc) return;
    for (int i = 0; i < bc->n_seq; i++) {
        CpuSlot* s = &bc->slots[i];
        free(s->kv.kc);
        free(s->kv.vc);
        free(s->emb);
        free(s->logits);
        free(s->e1);
    }
    free(bc->slots);
    free(bc);
}

static MglStatus cpu_ctx_new(MglBackendModel* bm, const MglBackendCtxParams* p, MglBackendCtx** out, MglErr* err) {
    *out = NULL;
    const int n = p && p->n_seq > 0 ? p->n_seq : 1;
    MglBackendCtx* bc = calloc(1, sizeof *bc);
    if (bc) bc->slots = calloc((size_t)n, sizeof(CpuSlot));
    if (!bc || !bc->slots) {
        free(bc);
        return mgl_err(err, MGL_E_NOMEM, "out of memory");
    }
    bc->w = bm->w;
    bc->bf16 = bm->bf16;
    bc->kv_type = p && (p->kv_dtype == MGL_DT_F16 || p->kv_dtype == MGL_DT_BF16) ? p->kv_dtype : MGL_DT_F32;
    bc->n_seq = n;
    const int64_t V = bm->w->lc.vocab, H = bm->w->lc.hidden;
    for (int i = 0; i < n; i++) {
        bc->slots[i].logits = malloc(sizeof(float) * (size_t)V);
        bc->slots[i].e1 = malloc(sizeof(float) * (size_t)H);
        bc->slots[i].kv.dtype = bc->kv_type;
        if (!bc->slots[i].logits || !bc->slots[i].e1) {
            cpu_ctx_free(bc);
            return mgl_err(err, MGL_E_NOMEM, "out of memory for %lld logits", (long long)V);
        }
    }
    *out = bc;
    return MGL_OK;
}

static MglStatus slot_of(MglBackendCtx* bc, const MglSeq* s, CpuSlot** out, MglErr* err) {
    if (s->slot < 0 || s->slot >= bc->n_seq)
        return mgl_err(err, MGL_E_INVALID, "CPU backend: slot %d of %d", s->slot, bc->n_seq);
    *out = &bc->slots[s->slot];
    return MGL_OK;
}

static MglStatus cpu_reserve(MglBackendCtx* bc, MglSeq* const* seqs, int n, int64_t n_pos, MglErr* err) {
    for (int i = 0; i < n; i++) {
        CpuSlot* s = NULL;
        MGL_TRY(slot_of(bc, seqs[i], &s, err));
        MGL_TRY(mgl_cpu_kv_reserve(&s->kv, &bc->w->lc, n_pos, err));
    }
    return MGL_OK;
}

/* The vision towers of one image: CLIP, and with the high-res branch the
 * ConvNeXt maps and the fused features. */
typedef struct {
    const float* x336; /* the views they were computed from */
    bool hi;
    float *clip, *fused, *so[4];
} CpuVision;

static void vision_free(CpuVision* v) {
    free(v->clip);
    free(v->fused);
    for (int s = 0; s < 4; s++) free(v->so[s]);
}

static MglStatus vision_run(const MglModelWeights* m, const MglSeqInput* in, CpuVision* v, MglErr* err) {
    const int64_t D = m->D, P = m->n_patches;
    memset(v, 0, sizeof *v);
    if (!in->x336 || (in->use_high_res && !in->x768))
        return mgl_err(err, MGL_E_INVALID, "CPU backend: an image without its preprocessed views");
    v->x336 = in->x336;
    v->hi = in->use_high_res;
    v->clip = malloc(sizeof(float) * (size_t)(P * D));
    v->fused = malloc(sizeof(float) * (size_t)(P * D));
    bool ok = v->clip && v->fused;
    for (int s = 0; ok && v->hi && s < 4; s++) {
        int64_t hs = (MGL_AUX_SIZE / 4) >> s;
        ok = (v->so[s] = malloc(sizeof(float) * (size_t)(hs * hs * m->stages[s].C))) != NULL;
    }
    if (!ok) {
        vision_free(v);
        return mgl_err(err, MGL_E_NOMEM, "vision: out of memory");
    }
    mgl_stage_clip(m, in->x336, v->clip);
    if (v->hi) {
        mgl_stage_convnext(m, in->x768, v->so);
        mgl_stage_fuse(m, v->clip, v->so[3], v->fused, NULL);
    } else {
        memcpy(v->fused, v->clip, sizeof(float) * (size_t)(P * D));
    }
    return MGL_OK;
}

/* The embeddings of a clip: the text rows, then each frame's image and
 * object rows in time order, every frame through the towers alone. */
static MglStatus clip_embeds(const MglModelWeights* m, const MglSeqInput* in, float* emb, MglErr* err) {
    const int64_t H = m->lc.hidden, P = m->n_patches;
    const MglSeqLayout ly = mgl_seq_layout(in, P);
    for (int64_t i = 0; i < ly.prefix; i++) mgl_weight_row(&m->embed, in->ids[i], emb + i * H);
    for (int64_t i = 0; i < ly.n_suffix; i++)
        mgl_weight_row(&m->embed, in->ids[ly.prefix + i], emb + (ly.suffix + i) * H);
    for (size_t j = 0; j < in->n_frames; j++) {
        const MglSeqFrame* f = &in->frames[j];
        const MglSeqInput one = {.x336 = f->x336, .x768 = f->x768, .use_high_res = in->use_high_res};
        CpuVision v;
        MGL_TRY(vision_run(m, &one, &v, err));
        const int64_t row = mgl_seq_frame_row(in, P, j);
        mgl_stage_mlp2(&m->proj, v.fused, P, H, emb + row * H);
        float* pooled = f->n_obj ? malloc(sizeof(float) * f->n_obj * (size_t)m->Cm) : NULL;
        if (f->n_obj && !pooled) {
            vision_free(&v);
            return mgl_err(err, MGL_E_NOMEM, "vision: out of memory");
        }
        if (f->n_obj) {
            mgl_stage_objects(m, v.so, f->boxes768, f->n_obj, pooled);
            mgl_stage_mlp2(&m->bproj, pooled, (int64_t)f->n_obj, H, emb + (row + P) * H);
        }
        free(pooled);
        vision_free(&v);
    }
    return MGL_OK;
}

/* Whether `in` (one image, not a clip) takes the towers' run `v` (still held):
 * the same views and the same high-res setting. */
static bool vision_shared(const CpuVision* v, const MglSeqInput* in) {
    return v->clip && in->n_frames == 0 && v->x336 == in->x336 && v->hi == in->use_high_res;
}

/* Each sequence's prompt embeddings; sequences about one frame (the same
 * views) share one run of the vision towers. */
static MglStatus cpu_vision(MglBackendCtx* bc, MglSeq* const* seqs, int n, MglErr* err) {
    mgl_cpu_set_bf16(bc->bf16);
    const MglModelWeights* m = bc->w;
    const int64_t H = m->lc.hidden, P = m->n_patches;
    CpuVision* vs = calloc((size_t)(n > 0 ? n : 1), sizeof(CpuVision));
    int nv = 0;
    MglStatus st = vs ? MGL_OK : mgl_err(err, MGL_E_NOMEM, "vision: out of memory");
    for (int i = 0; i < n && st == MGL_OK; i++) {
        CpuSlot* sl = NULL;
        if ((st = slot_of(bc, seqs[i], &sl, err)) != MGL_OK) break;
        const MglSeqInput* in = seqs[i]->in;
        if (in->n_frames > 0) { /* a clip */
            const int64_t L = mgl_seq_layout(in, P).L;
            free(sl->emb);
            if (!(sl->emb = malloc(sizeof(float) * (size_t)(L * H)))) {
                st = mgl_err(err, MGL_E_NOMEM, "vision: out of memory for %lld tokens", (long long)L);
                break;
            }
            if ((st = clip_embeds(m, in, sl->emb, err)) != MGL_OK) break;
            continue;
        }
        CpuVision* v = NULL;
        for (int k = 0; k < nv && !v; k++)
            if (vision_shared(&vs[k], in)) v = &vs[k];
        if (!v) {
            if ((st = vision_run(m, in, &vs[nv], err)) != MGL_OK) break;
            v = &vs[nv++];
        }
        const MglSeqLayout ly = mgl_seq_layout(in, P);
        free(sl->emb);
        sl->emb = malloc(sizeof(float) * (size_t)(ly.L * H));
        if (!sl->emb) {
            st = mgl_err(err, MGL_E_NOMEM, "vision: out of memory for %lld tokens", (long long)ly.L);
            break;
        }
        const MglPrompt pr = {.ids = (int32_t*)in->ids, .n_ids = in->n_ids, .image_pos = in->image_pos};
        mgl_stage_embeds(m, &pr, v->fused, v->so, in->boxes768, in->n_obj, sl->emb);
        /* the towers' maps (about 14 MB an image at 768) go as soon as no later sequence of
         * this call shares them, not at the end of the call */
        bool later = false;
        for (int j = i + 1; j < n && !later; j++) later = vision_shared(v, seqs[j]->in);
        if (!later) {
            vision_free(v);
            memset(v, 0, sizeof *v);
        }
    }
    for (int k = 0; k < nv; k++) vision_free(&vs[k]);
    free(vs);
    return st;
}

static MglStatus cpu_prefill(MglBackendCtx* bc, MglSeq* const* seqs, int n, MglErr* err) {
    mgl_cpu_set_bf16(bc->bf16);
    for (int i = 0; i < n; i++) {
        CpuSlot* sl = NULL;
        MGL_TRY(slot_of(bc, seqs[i], &sl, err));
        if (!sl->emb) return mgl_err(err, MGL_E_INVALID, "CPU backend: prefill before vision");
        const int64_t L = mgl_seq_layout(seqs[i]->in, bc->w->n_patches).L;
        MglStatus st = mgl_cpu_forward_inplace(bc->w, &sl->kv, sl->emb, L, 0, sl->logits, false, err);
        free(sl->emb);
        sl->emb = NULL;
        MGL_TRY(st);
        seqs[i]->n_past = L;
    }
    return MGL_OK;
}

/* One step for every sequence of the batch at once (mgl_cpu_decode_rows). */
static MglStatus cpu_decode(MglBackendCtx* bc, MglSeq* const* seqs, int n, MglErr* err) {
    mgl_cpu_set_bf16(bc->bf16);
    if (n <= 0) return MGL_OK;
    const int64_t H = bc->w->lc.hidden, V = bc->w->lc.vocab;
    float* emb = malloc(sizeof(float) * (size_t)(n * H));
    float* logits = malloc(sizeof(float) * (size_t)((int64_t)n * V));
    MglCpuKv** kv = malloc(sizeof(MglCpuKv*) * (size_t)n);
    int64_t* pos = malloc(sizeof(int64_t) * (size_t)n);
    MglStatus st = emb && logits && kv && pos ? MGL_OK : mgl_err(err, MGL_E_NOMEM, "decode: out of memory");
    for (int i = 0; i < n && st == MGL_OK; i++) {
        CpuSlot* sl = NULL;
        st = slot_of(bc, seqs[i], &sl, err);
        if (st != MGL_OK) break;
        for (int j = 0; j < i; j++)
            if (seqs[j]->slot == seqs[i]->slot)
                st = mgl_err(err, MGL_E_INVALID, "decode: slot %d twice in one batch", seqs[i]->slot);
        mgl_weight_row(&bc->w->embed, seqs[i]->token, emb + i * H);
        kv[i] = &sl->kv;
        pos[i] = seqs[i]->n_past;
    }
    if (st == MGL_OK) st = mgl_cpu_decode_rows(bc->w, kv, pos, emb, n, logits, err);
    for (int i = 0; i < n && st == MGL_OK; i++)
        memcpy(bc->slots[seqs[i]->slot].logits, logits + (int64_t)i * V, sizeof(float) * (size_t)V);
    free(emb);
    free(logits);
    free(kv);
    free(pos);
    return st;
}

static MglStatus cpu_sample(MglBackendCtx* bc, MglSeq* const* seqs, int n, MglErr* err) {
    for (int i = 0; i < n; i++) {
        CpuSlot* sl = NULL;
        MGL_TRY(slot_of(bc, seqs[i], &sl, err));
        const int64_t V = bc->w->lc.vocab;
        for (int64_t k = 0; k < V; k++)
            if (isnan(sl->logits[k]))
                return mgl_err(err, MGL_E_FORMAT,
                               "the model's logits are not numbers (NaN at token %lld): its "
                               "weights or inputs are broken",
                               (long long)k);
        seqs[i]->token = mgl_sample_logits(sl->logits, V, &seqs[i]->samp);
    }
    return MGL_OK;
}

/* ---- stages with host buffers ---- */

static MglStatus cpu_stage_clip(MglBackendCtx* bc, const float* x336, float* out, MglErr* err) {
    mgl_cpu_set_bf16(bc->bf16);
    mgl_stage_clip(bc->w, x336, out);
    return MGL_OK;
}

static MglStatus cpu_stage_convnext(MglBackendCtx* bc, const float* x768, float* const so[4], MglErr* err) {
    mgl_cpu_set_bf16(bc->bf16);
    mgl_stage_convnext(bc->w, x768, so);
    return MGL_OK;
}

static MglStatus cpu_stage_fuse(MglBackendCtx* bc, const float* clip, const float* stage3, float* fused,
                                float* gate_logit, MglErr* err) {
    mgl_cpu_set_bf16(bc->bf16);
    mgl_stage_fuse(bc->w, clip, stage3, fused, gate_logit);
    return MGL_OK;
}

static MglStatus cpu_stage_objects(MglBackendCtx* bc, float* const so[4], const float* boxes768, size_t n,
                                   float* pooled, MglErr* err) {
    mgl_cpu_set_bf16(bc->bf16);
    mgl_stage_objects(bc->w, so, boxes768, n, pooled);
    return MGL_OK;
}

static MglStatus cpu_forward(MglBackendCtx* bc, int slot, const float* embeds, int64_t T, int64_t pos0, float* logits,
                             bool all_logits, MglErr* err) {
    mgl_cpu_set_bf16(bc->bf16);
    if (slot < 0 || slot >= bc->n_seq)
        return mgl_err(err, MGL_E_INVALID, "CPU backend: slot %d of %d", slot, bc->n_seq);
    return mgl_cpu_forward(bc->w, &bc->slots[slot].kv, embeds, T, pos0, logits, all_logits, err);
}

/* ---- stage benchmarks ---- */

static double now_ms(void) { return (double)g_get_monotonic_time() / 1000.0; }

static double median(double* v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n ? v[n / 2] : 0;
}

static MglStatus cpu_bench_vision(MglBackendCtx* bc, int reps, MglBackendBench* out, MglErr* err) {
    mgl_cpu_set_bf16(bc->bf16);
    const MglModelWeights* m = bc->w;
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
    enum { NBOX = 10 };
    float boxes[4 * NBOX];
    for (size_t i = 0; i < NBOX; i++) {
        boxes[4 * i] = (float)(i * 60);
        boxes[4 * i + 1] = (float)(i * 40);
        boxes[4 * i + 2] = (float)(i * 60 + 200);
        boxes[4 * i + 3] = (float)(i * 40 + 300);
    }
    float* pooled = malloc(sizeof(float) * NBOX * (size_t)m->Cm);
    int r = reps < 1 ? 1 : reps > 16 ? 16 : reps;
    for (int i = 0; i < r; i++) {
        double a = now_ms();
        mgl_stage_clip(m, x336, clip);
        double b = now_ms();
        mgl_stage_convnext(m, x768, so);
        double c = now_ms();
        mgl_stage_fuse(m, clip, so[3], fused, NULL);
        double d = now_ms();
        mgl_stage_objects(m, so, boxes, NBOX, pooled);
        double e = now_ms();
        tc[i] = b - a;
        tx[i] = c - b;
        tf[i] = d - c;
        to[i] = e - d;
    }
    out->clip_ms = median(tc, r);
    out->convnext_ms = median(tx, r);
    out->fuse_ms = median(tf, r);
    out->objects_ms = median(to, r);
    out->vision_overlap_ms = out->clip_ms + out->convnext_ms; /* one thread pool runs them one after the other */
    free(x336);
    free(x768);
    free(clip);
    free(fused);
    free(pooled);
    for (int s = 0; s < 4; s++) free(so[s]);
    return MGL_OK;
}

static MglStatus cpu_bench_llm(MglBackendCtx* bc, int T, int G, MglBackendBench* out, MglErr* err) {
    mgl_cpu_set_bf16(bc->bf16);
    const MglModelWeights* m = bc->w;
    const int64_t H = m->lc.hidden, V = m->lc.vocab;
    MglCpuKv* kv = &bc->slots[0].kv;
    MglStatus st = mgl_cpu_kv_reserve(kv, &m->lc, (int64_t)T + G + 1, err);
    float* emb = malloc(sizeof(float) * (size_t)((int64_t)T * H));
    for (int64_t i = 0; i < T; i++) mgl_weight_row(&m->embed, (i * 7919) % V, emb + i * H);
    float* logits = bc->slots[0].logits;
    /* a first prefill pays for first touches (allocations, the weights'
     * pages); the second, over the same positions, is the one reported, as
     * other stacks time a prefill after a warm-up */
    double a0 = now_ms();
    if (st == MGL_OK) st = mgl_cpu_forward(m, kv, emb, T, 0, logits, false, err);
    double a = now_ms();
    if (st == MGL_OK) st = mgl_cpu_forward(m, kv, emb, T, 0, logits, false, err);
    double b = now_ms();
    float* e1 = bc->slots[0].e1;
    for (int i = 0; st == MGL_OK && i < G; i++) {
        int32_t id = 0;
        for (int64_t k = 1; k < V; k++)
            if (logits[k] > logits[id]) id = (int32_t)k;
        mgl_weight_row(&m->embed, id, e1);
        st = mgl_cpu_forward(m, kv, e1, 1, T + i, logits, false, err);
    }
    double d = now_ms();
    free(emb);
    MGL_TRY(st);
    out->prefill_first_ms = a - a0;
    out->prefill_ms = b - a;
    out->decode_ms_per_token = G > 0 ? (d - b) / G : 0.0;
    return MGL_OK;
}

const MglBackend mgl_backend_cpu = {
    .name = "cpu",
    .probe = cpu_probe,
    .model_new = cpu_model_new,
    .model_free = cpu_model_free,
    .model_info = cpu_model_info,
    .ctx_new = cpu_ctx_new,
    .ctx_free = cpu_ctx_free,
    .reserve = cpu_reserve,
    .vision = cpu_vision,
    .prefill = cpu_prefill,
    .decode = cpu_decode,
    .sample = cpu_sample,
    .stage_clip = cpu_stage_clip,
    .stage_convnext = cpu_stage_convnext,
    .stage_fuse = cpu_stage_fuse,
    .stage_objects = cpu_stage_objects,
    .forward = cpu_forward,
    .bench_vision = cpu_bench_vision,
    .bench_llm = cpu_bench_llm,
};
