/* mgl-cpu-llm.c: the Llama-family decoder on the CPU (Llama MHA/GQA and
 * Phi-3's fused projections) over one slot's KV cache (f32, or 16-bit
 * where the weights are). */
#include "mgl-cpu.h"

#include <stdlib.h>
#include <string.h>

MglStatus mgl_cpu_kv_reserve(MglCpuKv* c, const MglLlmConfig* lc, int64_t n, MglErr* err) {
    if (n <= c->kv_cap) return MGL_OK;
    if (c->dtype != MGL_DT_F16 && c->dtype != MGL_DT_BF16) c->dtype = MGL_DT_F32;
    const size_t es = mgl_dtype_size(c->dtype);
    int64_t kvd = (int64_t)lc->n_kv_heads * lc->head_dim;
    int64_t cap = n + 64;
    size_t bytes = es * (size_t)(lc->n_layers * cap * kvd);
    void* k = realloc(c->kc, bytes);
    if (!k)
        return mgl_err(err, MGL_E_NOMEM, "KV cache: cannot allocate %zu bytes for %lld tokens", bytes, (long long)cap);
    c->kc = k;
    void* v = realloc(c->vc, bytes);
    if (!v)
        return mgl_err(err, MGL_E_NOMEM, "KV cache: cannot allocate %zu bytes for %lld tokens", bytes, (long long)cap);
    c->vc = v;
    /* each (layer, kv head) run moves to its new place, the last first (a
     * run only moves up) */
    const int64_t HS = lc->head_dim;
    if (c->kv_cap > 0)
        for (int64_t r = (int64_t)lc->n_layers * lc->n_kv_heads - 1; r >= 0; r--) {
            const size_t len = es * (size_t)(c->kv_cap * HS);
            memmove((uint8_t*)c->kc + es * (size_t)(r * cap * HS), (uint8_t*)c->kc + es * (size_t)(r * c->kv_cap * HS),
                    len);
            memmove((uint8_t*)c->vc + es * (size_t)(r * cap * HS), (uint8_t*)c->vc + es * (size_t)(r * c->kv_cap * HS),
                    len);
        }
    c->kv_cap = cap;
    return MGL_OK;
}

/* Layer l's K (or V) cache, and storing T rows of (NKV, HS) there from
 * position pos0 on: each head's HS values go to its own run. */
static void* kv_layer(const MglCpuKv* c, void* base, int l, int64_t kvd) {
    return (uint8_t*)base + mgl_dtype_size(c->dtype) * (size_t)((int64_t)l * c->kv_cap * kvd);
}
static void kv_store(const MglCpuKv* c, void* layer, int64_t pos0, const float* rows, int64_t T, int64_t NKV,
                     int64_t HS) {
    const size_t es = mgl_dtype_size(c->dtype);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < NKV; h++)
            mgl_convert_floats(rows + (t * NKV + h) * HS, MGL_DT_F32,
                               (uint8_t*)layer + es * (size_t)((h * c->kv_cap + pos0 + t) * HS), c->dtype, (size_t)HS);
}
/* Attention over the head-major cache of one layer */
static void kv_attention(const MglCpuKv* c, const float* q, int64_t T, int64_t pos0, const void* kc, const void* vc,
                         const MglLlmConfig* lc, float* out) {
    const int64_t HS = lc->head_dim;
    mgl_attention_cache(q, T, pos0, kc, vc, c->dtype, lc->n_heads, lc->n_kv_heads, HS, c->kv_cap * HS, HS, true, out);
}

MglStatus mgl_cpu_forward_inplace(const MglModelWeights* m, MglCpuKv* c, float* x, int64_t T, int64_t pos0,
                                  float* logits, bool all_logits, MglErr* err) {
    const MglLlmConfig* lc = &m->lc;
    const int64_t H = lc->hidden, NH = lc->n_heads, NKV = lc->n_kv_heads, HS = lc->head_dim;
    const int64_t qd = NH * HS, kvd = NKV * HS, F = lc->intermediate;
    const bool phi3 = lc->arch == MGL_LLM_PHI3;
    MGL_TRY(mgl_cpu_kv_reserve(c, &m->lc, pos0 + T, err));
    /* The activations of T rows, in as little memory as the order of the ops
     * allows (a 600-token prefill's buffers are a fifth of a small q4 model's
     * file): q (Phi-3: q | k | v of its fused product); k and v in u, free
     * until the MLP; the attention's output in g, free until the MLP; gate
     * in g (Phi-3: gate | up) and up in u. g and u are widened where a
     * model's shapes need it (F < 2 kvd, or g narrower than q; in none of
     * the published models). */
    const int64_t gw = (phi3 ? 2 : 1) * F;
    const int64_t gcols = gw > qd ? gw : qd, ucols = !phi3 && F < 2 * kvd ? 2 * kvd : F;
    float* h = malloc(sizeof(float) * (size_t)(T * H));
    float* q = malloc(sizeof(float) * (size_t)(T * (phi3 ? qd + 2 * kvd : qd)));
    float* g = malloc(sizeof(float) * (size_t)(T * gcols));
    float* u = malloc(sizeof(float) * (size_t)(T * ucols));
    if (!h || !q || !g || !u) {
        free(h);
        free(q);
        free(g);
        free(u);
        return mgl_err(err, MGL_E_NOMEM, "decoder: out of memory for %lld tokens", (long long)T);
    }
    float* kvb = phi3 ? q + T * qd : u;
    float* a = g;
    for (int l = 0; l < lc->n_layers; l++) {
        const LlmLayer* L = &m->layers[l];
        void* kc = kv_layer(c, c->kc, l, kvd);
        void* vc = kv_layer(c, c->vc, l, kvd);
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
            free(kt);
            free(vt);
            free(qt);
        } else {
            if (T == 1) { /* one region for the three (the same bits as three calls) */
                const MglWeight* W[3] = {&L->q, &L->k, &L->v};
                float* const y[3] = {q, kvb, kvb + kvd};
                mgl_matmul_rows_n(h, 1, 3, W, y);
            } else {
                mgl_matmul(h, T, &L->q, NULL, q);
                mgl_matmul(h, T, &L->k, NULL, kvb);
                mgl_matmul(h, T, &L->v, NULL, kvb + T * kvd);
            }
        }
        qq = q;
        kk = kvb;
        vv = kvb + T * kvd;
        mgl_rope(qq, T, NH, HS, pos0, lc->rope_theta);
        mgl_rope(kk, T, NKV, HS, pos0, lc->rope_theta);
        kv_store(c, kc, pos0, kk, T, NKV, HS);
        kv_store(c, vc, pos0, vv, T, NKV, HS);
        kv_attention(c, qq, T, pos0, kc, vc, lc, a);
        mgl_matmul(a, T, &L->o, NULL, h);
        mgl_add(x, h, T * H);
        mgl_rmsnorm(x, T, H, L->ln2, lc->rms_eps, h);
        if (lc->arch == MGL_LLM_PHI3) {
            mgl_matmul(h, T, &L->gate_up, NULL, g);
            for (int64_t t = 0; t < T; t++) mgl_silu_mul(g + t * 2 * F, g + t * 2 * F + F, u + t * F, F);
        } else {
            if (T == 1) {
                const MglWeight* W[2] = {&L->gate, &L->up};
                float* const y[2] = {g, u};
                mgl_matmul_rows_n(h, 1, 2, W, y);
            } else {
                mgl_matmul(h, T, &L->gate, NULL, g);
                mgl_matmul(h, T, &L->up, NULL, u);
            }
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
    free(h);
    free(q);
    free(g);
    free(u);
    return MGL_OK;
}

MglStatus mgl_cpu_forward(const MglModelWeights* m, MglCpuKv* c, const float* embeds, int64_t T, int64_t pos0,
                          float* logits, bool all_logits, MglErr* err) {
    float* x = malloc(sizeof(float) * (size_t)(T * m->lc.hidden));
    if (!x) return mgl_err(err, MGL_E_NOMEM, "decoder: out of memory for %lld tokens", (long long)T);
    memcpy(x, embeds, sizeof(float) * (size_t)(T * m->lc.hidden));
    MglStatus st = mgl_cpu_forward_inplace(m, c, x, T, pos0, logits, all_logits, err);
    free(x);
    return st;
}


/* One decode step for M sequences: row m is one token of the sequence whose
 * KV cache is kv[m], at position pos[m]. The linear layers read each weight
 * once for all rows (mgl_matmul_rows); RoPE, the KV store and attention are
 * per row on its own cache. Every op gives a row the bits it gets in
 * mgl_cpu_forward with T = 1, so a sequence decodes the same alone or in a
 * batch. */
MglStatus mgl_cpu_decode_rows(const MglModelWeights* m, MglCpuKv* const* kv, const int64_t* pos, const float* embeds,
                              int64_t M, float* logits, MglErr* err) {
    const MglLlmConfig* lc = &m->lc;
    const int64_t H = lc->hidden, NH = lc->n_heads, NKV = lc->n_kv_heads, HS = lc->head_dim;
    const int64_t qd = NH * HS, kvd = NKV * HS, F = lc->intermediate;
    for (int64_t r = 0; r < M; r++) MGL_TRY(mgl_cpu_kv_reserve(kv[r], lc, pos[r] + 1, err));
    float* x = malloc(sizeof(float) * (size_t)(M * H));
    float* h = malloc(sizeof(float) * (size_t)(M * H));
    float* qkv = malloc(sizeof(float) * (size_t)(M * (qd + 2 * kvd)));
    float* q = malloc(sizeof(float) * (size_t)(M * qd));
    float* k = malloc(sizeof(float) * (size_t)(M * kvd));
    float* v = malloc(sizeof(float) * (size_t)(M * kvd));
    float* a = malloc(sizeof(float) * (size_t)(M * qd));
    float* g = malloc(sizeof(float) * (size_t)(M * 2 * F));
    float* u = malloc(sizeof(float) * (size_t)(M * F));
    if (!x || !h || !qkv || !q || !k || !v || !a || !g || !u) {
        free(x);
        free(h);
        free(qkv);
        free(q);
        free(k);
        free(v);
        free(a);
        free(g);
        free(u);
        return mgl_err(err, MGL_E_NOMEM, "decoder: out of memory for %lld sequences", (long long)M);
    }
    memcpy(x, embeds, sizeof(float) * (size_t)(M * H));
    for (int l = 0; l < lc->n_layers; l++) {
        const LlmLayer* L = &m->layers[l];
        mgl_rmsnorm(x, M, H, L->ln1, lc->rms_eps, h);
        if (lc->arch == MGL_LLM_PHI3) {
            mgl_matmul_rows(h, M, &L->qkv, NULL, qkv);
            for (int64_t r = 0; r < M; r++) {
                const float* row = qkv + r * (qd + 2 * kvd);
                memcpy(q + r * qd, row, sizeof(float) * (size_t)qd);
                memcpy(k + r * kvd, row + qd, sizeof(float) * (size_t)kvd);
                memcpy(v + r * kvd, row + qd + kvd, sizeof(float) * (size_t)kvd);
            }
        } else {
            const MglWeight* W[3] = {&L->q, &L->k, &L->v};
            float* const y[3] = {q, k, v};
            mgl_matmul_rows_n(h, M, 3, W, y);
        }
        for (int64_t r = 0; r < M; r++) {
            void* kc = kv_layer(kv[r], kv[r]->kc, l, kvd);
            void* vc = kv_layer(kv[r], kv[r]->vc, l, kvd);
            mgl_rope(q + r * qd, 1, NH, HS, pos[r], lc->rope_theta);
            mgl_rope(k + r * kvd, 1, NKV, HS, pos[r], lc->rope_theta);
            kv_store(kv[r], kc, pos[r], k + r * kvd, 1, NKV, HS);
            kv_store(kv[r], vc, pos[r], v + r * kvd, 1, NKV, HS);
            kv_attention(kv[r], q + r * qd, 1, pos[r], kc, vc, lc, a + r * qd);
        }
        mgl_matmul_rows(a, M, &L->o, NULL, h);
        mgl_add(x, h, M * H);
        mgl_rmsnorm(x, M, H, L->ln2, lc->rms_eps, h);
        if (lc->arch == MGL_LLM_PHI3) {
            mgl_matmul_rows(h, M, &L->gate_up, NULL, g);
            for (int64_t r = 0; r < M; r++) mgl_silu_mul(g + r * 2 * F, g + r * 2 * F + F, u + r * F, F);
        } else {
            const MglWeight* W[2] = {&L->gate, &L->up};
            float* const y[2] = {g, u};
            mgl_matmul_rows_n(h, M, 2, W, y);
            mgl_silu_mul(g, u, u, M * F);
        }
        mgl_matmul_rows(u, M, &L->down, NULL, h);
        mgl_add(x, h, M * H);
    }
    mgl_rmsnorm(x, M, H, m->final_norm, lc->rms_eps, h);
    mgl_matmul_rows(h, M, &m->lm_head, NULL, logits);
    free(x);
    free(h);
    free(qkv);
    free(q);
    free(k);
    free(v);
    free(a);
    free(g);
    free(u);
    return MGL_OK;
}
