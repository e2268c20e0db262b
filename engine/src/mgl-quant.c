/* mgl-quant.c: the quantized weight format (mgl-quant.h): quantizing rows,
 * reading them back, checking a file's quantized tensors, and quantizing the
 * selected tensors of a model (a walk over the weight table). */
#include "mgl-quant.h"

#include "mgl-weight-table.h"
#include "cpu/mgl-cpu-isa.h"
#include "cpu/mgl-pool.h"

#include <glib.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t mgl_quant_row_bytes(int bits, int64_t K) {
    if (bits == 8) return K;
    const int64_t tail = K % MGL_QUANT_BLOCK;
    return K / MGL_QUANT_BLOCK * (MGL_QUANT_BLOCK / 2) + (tail + 1) / 2;
}

int64_t mgl_quant_n_groups(int64_t K, int group) {
    if (group <= 0 || group >= K) return 1;
    return (K + group - 1) / group;
}

int64_t mgl_quant_group_for(int64_t K, int64_t G) {
    if (K <= 0 || G <= 0) return 0;
    if (G == 1) return K;
    for (int64_t g = MGL_QUANT_BLOCK; g < K; g *= 2)
        if ((K + g - 1) / g == G) return g;
    return 0;
}

bool mgl_quant_dtype(MglDType dt) { return dt == MGL_DT_I8 || dt == MGL_DT_U8; }

/* ---- quantizing ------------------------------------------------------- */

static void quantize_row(const float* w, int64_t K, int bits, int64_t gs, uint8_t* q, uint16_t* scales) {
    if (bits == 4) memset(q, 0x88, (size_t)mgl_quant_row_bytes(4, K)); /* padding nibbles are zero weights */
    for (int64_t g = 0, k0 = 0; k0 < K; g++, k0 += gs) {
        const int64_t k1 = k0 + gs < K ? k0 + gs : K;
        float amax = 0, vmax = 0;
        for (int64_t k = k0; k < k1; k++)
            if (fabsf(w[k]) > amax) {
                amax = fabsf(w[k]);
                vmax = w[k];
            }
        /* q8: symmetric, amax -> 127; q4: the weight of largest magnitude -> -8, so
         * all sixteen levels are used (the scale then has that weight's sign) */
        const float want = bits == 8 ? amax / 127.0f : vmax / -8.0f;
        uint16_t h = mgl_f32_to_f16(want);
        float s = mgl_f16_to_f32(h);
        if (!isfinite(s)) { /* beyond f16's range: the largest finite scale */
            h = (uint16_t)((want < 0 ? 0x8000u : 0u) | 0x7bffu);
            s = mgl_f16_to_f32(h);
        }
        scales[g] = h;
        const float inv = s != 0.0f ? 1.0f / s : 0.0f;
        for (int64_t k = k0; k < k1; k++) {
            float r = nearbyintf(w[k] * inv);
            if (r != r) r = 0; /* a NaN weight (a broken source) becomes 0 rather than an undefined cast */
            if (bits == 8) {
                r = r < -127.0f ? -127.0f : r > 127.0f ? 127.0f : r;
                q[k] = (uint8_t)(int8_t)r;
            } else {
                r = r < -8.0f ? -8.0f : r > 7.0f ? 7.0f : r;
                const int64_t b = k / MGL_QUANT_BLOCK, j = k % MGL_QUANT_BLOCK;
                const int64_t L = K - b * MGL_QUANT_BLOCK < MGL_QUANT_BLOCK ? K - b * MGL_QUANT_BLOCK : MGL_QUANT_BLOCK;
                const int64_t half = (L + 1) / 2;
                uint8_t* byte = q + b * (MGL_QUANT_BLOCK / 2) + (j < half ? j : j - half);
                const uint8_t nib = (uint8_t)((int)r + 8);
                *byte = j < half ? (uint8_t)((*byte & 0xf0) | nib) : (uint8_t)((*byte & 0x0f) | (nib << 4));
            }
        }
    }
}

void mgl_quantize_rows(const float* w, int64_t N, int64_t K, int bits, int group, uint8_t* q, uint16_t* scales) {
    const int64_t G = mgl_quant_n_groups(K, group), gs = mgl_quant_group_for(K, G), rb = mgl_quant_row_bytes(bits, K);
    for (int64_t n = 0; n < N; n++) quantize_row(w + n * K, K, bits, gs, q + n * rb, scales + n * G);
}

MglWeight mgl_quant_weight(const void* q, const uint16_t* scales, int bits, int64_t N, int64_t K, int64_t G) {
    return (MglWeight){.data = q,
                       .dtype = bits == 8 ? MGL_DT_I8 : MGL_DT_U8,
                       .rows = N,
                       .cols = K,
                       .scales = scales,
                       .qbits = bits,
                       .qgroup = (int32_t)mgl_quant_group_for(K, G)};
}

int mgl_quant_value(const uint8_t* row, int bits, int64_t K, int64_t k) {
    if (bits == 8) return (int8_t)row[k];
    const int64_t b = k / MGL_QUANT_BLOCK, j = k % MGL_QUANT_BLOCK;
    const int64_t L = K - b * MGL_QUANT_BLOCK < MGL_QUANT_BLOCK ? K - b * MGL_QUANT_BLOCK : MGL_QUANT_BLOCK;
    const int64_t half = (L + 1) / 2;
    const uint8_t byte = row[b * (MGL_QUANT_BLOCK / 2) + (j < half ? j : j - half)];
    return (j < half ? byte & 15 : byte >> 4) - 8;
}

void mgl_quant_dequant_row(const MglWeight* W, int64_t r, float* out) {
    const int64_t K = W->cols, gs = W->qgroup, G = (K + gs - 1) / gs;
    const uint8_t* row = (const uint8_t*)W->data + r * mgl_quant_row_bytes(W->qbits, K);
    const uint16_t* sc = W->scales + r * G;
    if (W->qbits == 8) {
        for (int64_t g = 0, k0 = 0; k0 < K; g++, k0 += gs) {
            const float s = mgl_f16_to_f32(sc[g]);
            for (int64_t k = k0; k < K && k < k0 + gs; k++) out[k] = s * (float)(int8_t)row[k];
        }
        return;
    }
    /* q4: whole blocks by their two nibble halves (a block never straddles a group), then the partial block */
    const int64_t nb = K / MGL_QUANT_BLOCK;
    for (int64_t b = 0; b < nb; b++) {
        const float s = mgl_f16_to_f32(sc[b * MGL_QUANT_BLOCK / gs]);
        const uint8_t* p = row + b * (MGL_QUANT_BLOCK / 2);
        float* o = out + b * MGL_QUANT_BLOCK;
        for (int j = 0; j < MGL_QUANT_BLOCK / 2; j++) {
            o[j] = s * (float)((p[j] & 15) - 8);
            o[j + MGL_QUANT_BLOCK / 2] = s * (float)((p[j] >> 4) - 8);
        }
    }
    for (int64_t k = nb * MGL_QUANT_BLOCK; k < K; k++)
        out[k] = mgl_f16_to_f32(sc[k / gs]) * (float)mgl_quant_value(row, 4, K, k);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* One block with AVX2: the scalar loop's values (the same max, the same
 * scale and inverse, round to nearest even as nearbyintf in the default
 * rounding mode, the same clamp). False for a block with a NaN, which the
 * scalar loop handles. */
__attribute__((target("avx2"))) static bool act_block_avx2(const float* v, int8_t* q, float* s_out, int32_t* sum_out) {
    __m256 x[4], m = _mm256_setzero_ps();
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int i = 0; i < 4; i++) {
        x[i] = _mm256_loadu_ps(v + 8 * i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(x[i], x[i], _CMP_UNORD_Q))) return false;
        m = _mm256_max_ps(m, _mm256_and_ps(x[i], absmask));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    const float amax = _mm_cvtss_f32(h);
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    const __m256 vinv = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    __m256i r[4], acc = _mm256_setzero_si256();
    for (int i = 0; i < 4; i++) {
        const __m256 rr = _mm256_round_ps(_mm256_mul_ps(x[i], vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r[i] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(rr, lo), hi));
        acc = _mm256_add_epi32(acc, r[i]);
    }
    /* 32 int32 in [-127, 127] to int8, in order */
    const __m256i p01 = _mm256_packs_epi32(r[0], r[1]), p23 = _mm256_packs_epi32(r[2], r[3]);
    __m256i p = _mm256_packs_epi16(p01, p23);
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i*)q, p);
    __m128i a = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0x4e));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0xb1));
    *s_out = amax / 127.0f;
    *sum_out = _mm_cvtsi128_si32(a);
    return true;
}
#endif

void mgl_quant_act_blocks(const float* x, int64_t K, int8_t* xq, float* xs, int32_t* xsum) {
#if defined(__x86_64__) && defined(__GNUC__)
    static int avx2 = -1;
    if (avx2 < 0) avx2 = mgl_cpu_level() >= MGL_CPU_AVX2;
#endif
    for (int64_t b = 0; b < K / MGL_QUANT_BLOCK; b++) {
        const float* v = x + b * MGL_QUANT_BLOCK;
#if defined(__x86_64__) && defined(__GNUC__)
        if (avx2 && act_block_avx2(v, xq + b * MGL_QUANT_BLOCK, &xs[b], &xsum[b])) continue;
#endif
        float amax = 0;
        for (int j = 0; j < MGL_QUANT_BLOCK; j++) amax = fmaxf(amax, fabsf(v[j]));
        const float inv = amax > 0 ? 127.0f / amax : 0.0f;
        float s = amax / 127.0f;
        int32_t sum = 0;
        for (int j = 0; j < MGL_QUANT_BLOCK; j++) {
            float r = nearbyintf(v[j] * inv);
            if (r != r) { /* a NaN activation: level 0, and a NaN scale so the products stay NaN as in f32 */
                r = 0;
                s = NAN;
            }
            r = r < -127.0f ? -127.0f : r > 127.0f ? 127.0f : r;
            xq[b * MGL_QUANT_BLOCK + j] = (int8_t)r;
            sum += (int32_t)r;
        }
        xs[b] = s;
        xsum[b] = sum;
    }
}

void mgl_quant_matmul_ref(const float* x, int64_t T, const MglWeight* W, bool act8, float* y) {
    const int64_t N = W->rows, K = W->cols, gs = W->qgroup, G = (K + gs - 1) / gs, nb = K / MGL_QUANT_BLOCK;
    const int64_t rb = mgl_quant_row_bytes(W->qbits, K);
    const bool a8 = act8 && W->qbits == 4;
    int8_t* xq = malloc((size_t)(K ? K : 1));
    float* xs = malloc(sizeof(float) * (size_t)(nb ? nb : 1));
    int32_t* xsum = malloc(sizeof(int32_t) * (size_t)(nb ? nb : 1));
    for (int64_t t = 0; t < T; t++) {
        if (a8) mgl_quant_act_blocks(x + t * K, K, xq, xs, xsum);
        for (int64_t n = 0; n < N; n++) {
            const uint8_t* row = (const uint8_t*)W->data + n * rb;
            double total = 0;
            for (int64_t g = 0; g < G; g++) {
                double acc = 0;
                for (int64_t k = g * gs; k < K && k < (g + 1) * gs; k++) {
                    const int64_t b = k / MGL_QUANT_BLOCK;
                    const double xv = a8 && b < nb ? (double)xs[b] * xq[k] : (double)x[t * K + k];
                    acc += (double)mgl_quant_value(row, W->qbits, K, k) * xv;
                }
                total += (double)mgl_f16_to_f32(W->scales[n * G + g]) * acc;
            }
            y[t * N + n] = (float)total;
        }
    }
    free(xq);
    free(xs);
    free(xsum);
}

/* ---- a file's quantized tensors ----------------------------------------- */

void mgl_quant_scale_name(const char* name, char* out, size_t cap) { snprintf(out, cap, "%s_scale", name); }

bool mgl_quant_view(const MglTensorSet* set, const MglTensor* t, int64_t N, int64_t K, MglWeight* w, char* msg,
                    size_t cap) {
    if (!mgl_quant_dtype(t->dtype)) {
        snprintf(msg, cap, "tensor '%s' is %s, not a quantized matrix (I8 for q8, U8 for q4)", t->name,
                 mgl_dtype_name(t->dtype));
        return false;
    }
    const int bits = t->dtype == MGL_DT_I8 ? 8 : 4;
    const int64_t rb = mgl_quant_row_bytes(bits, K);
    if (t->ndim != 2 || t->shape[0] != N || t->shape[1] != rb || !mgl_tensor_is_contiguous(t)) {
        snprintf(msg, cap, "q%d tensor '%s' must be a contiguous %s [%lld, %lld] for a [%lld, %lld] matrix", bits,
                 t->name, mgl_dtype_name(t->dtype), (long long)N, (long long)rb, (long long)N, (long long)K);
        return false;
    }
    char sname[200];
    mgl_quant_scale_name(t->name, sname, sizeof sname);
    const MglTensor* s = mgl_tset_get(set, sname);
    if (!s) {
        snprintf(msg, cap, "q%d tensor '%s' has no scales ('%s' missing)", bits, t->name, sname);
        return false;
    }
    const int64_t G = s->ndim == 2 ? s->shape[1] : 0;
    const int64_t gs = mgl_quant_group_for(K, G);
    if (s->dtype != MGL_DT_F16 || s->ndim != 2 || s->shape[0] != N || !gs || !mgl_tensor_is_contiguous(s)) {
        snprintf(msg, cap,
                 "scales '%s' must be a contiguous F16 [%lld, G] tensor with G = ceil(%lld / group) for a group "
                 "of a power of two >= 32 (or G = 1)",
                 sname, (long long)N, (long long)K);
        return false;
    }
    const uint16_t* sc = (const uint16_t*)s->data;
    for (int64_t i = 0; i < N * G; i++)
        if ((sc[i] & 0x7c00) == 0x7c00) {
            snprintf(msg, cap, "scales '%s': value %lld (row %lld) is not finite", sname, (long long)i,
                     (long long)(i / G));
            return false;
        }
    if (w) *w = mgl_quant_weight(t->data, sc, bits, N, K, G);
    return true;
}

/* ---- quantizing a model --------------------------------------------------- */

bool mgl_quant_parse(const char* s, MglQuantSpec* q, MglDType* float_dtype) {
    if (!s || (strncmp(s, "q8", 2) && strncmp(s, "q4", 2))) return false;
    *q = (MglQuantSpec){.bits = s[1] == '8' ? 8 : 4, .group = s[1] == '8' ? 128 : 32, .head = true};
    *float_dtype = MGL_DT_F16;
    gchar** parts = g_strsplit(s + 2, ",", -1);
    bool ok = true;
    for (int i = 0; ok && parts[i]; i++) {
        const char* p = parts[i];
        if (!*p && i == 0) continue;
        if (g_str_has_prefix(p, "group=")) {
            char* end = NULL;
            long g = strtol(p + 6, &end, 10);
            ok = end && !*end && (g == 0 || (g >= MGL_QUANT_BLOCK && g <= 65536 && !(g & (g - 1))));
            q->group = (int)g;
        } else if (!strcmp(p, "head=keep") || !strcmp(p, "head=q")) {
            q->head = p[5] == 'q';
        } else if (!strcmp(p, "projectors=keep") || !strcmp(p, "projectors=q")) {
            q->projectors = p[11] == 'q';
        } else if (!strcmp(p, "float=f16") || !strcmp(p, "float=bf16") || !strcmp(p, "float=f32")) {
            *float_dtype = !strcmp(p + 6, "f16") ? MGL_DT_F16 : !strcmp(p + 6, "bf16") ? MGL_DT_BF16 : MGL_DT_F32;
        } else {
            ok = false;
        }
    }
    g_strfreev(parts);
    return ok;
}

/* Does the spec select this row of the weight table? The LLM layers'
 * matrices always; lm_head (the one per-model matrix every decode step
 * reads) and the projectors when asked. */
static bool selected(const MglWeightSpec* sp, const MglQuantSpec* q) {
    if (sp->kind != MGL_WK_MAT || sp->ndim != 2) return false;
    if (sp->group == MGL_WG_LAYER) return true;
    if (sp->group != MGL_WG_MODEL) return false;
    if (sp->flags & MGL_WF_STEP) return q->head;
    return q->projectors && (g_str_has_prefix(sp->name, "projector.") || g_str_has_prefix(sp->name, "bbox_projector."));
}

typedef struct {
    const MglTensor* t;
    int64_t K;
    int bits, group;
    uint8_t* q;
    uint16_t* scales;
} QuantJob;

static void quant_part(void* ctx, int64_t b, int64_t e) {
    const QuantJob* j = ctx;
    const int64_t K = j->K, G = mgl_quant_n_groups(K, j->group), rb = mgl_quant_row_bytes(j->bits, K);
    const size_t es = mgl_dtype_size(j->t->dtype);
    float* row = malloc(sizeof(float) * (size_t)K);
    for (int64_t n = b; n < e; n++) {
        mgl_convert_floats(j->t->data + (size_t)(n * K) * es, j->t->dtype, row, MGL_DT_F32, (size_t)K);
        mgl_quantize_rows(row, 1, K, j->bits, j->group, j->q + n * rb, j->scales + n * G);
    }
    free(row);
}

static MglMap* heap_map(void* data, size_t size) {
    MglMap* m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->path = strdup("(quantized)");
    m->data = data;
    m->size = size;
    m->refcount = 1;
    return m;
}

typedef struct {
    MglModelFiles* mf;
    const MglQuantSpec* q;
    MglErr* err;
    MglStatus st;
} QuantWalk;

/* A contiguous 2-D tensor over `data` (the name copied, the map's reference taken). */
static MglTensor mat2(const char* name, MglDType dt, int64_t rows, int64_t cols, const void* data, MglMap* map) {
    return (MglTensor){.name = strdup(name),
                       .dtype = dt,
                       .ndim = 2,
                       .shape = {rows, cols},
                       .stride = {cols, 1},
                       .data = (const uint8_t*)data,
                       .map = map};
}

/* Heap buffers, each owned by a map, for quantized bytes and scales; false
 * (nothing left allocated) when out of memory. */
static bool qpair_alloc(size_t qbytes, size_t sbytes, uint8_t** q, uint16_t** sc, MglMap** qm, MglMap** sm) {
    *q = malloc(qbytes ? qbytes : 1);
    *sc = malloc(sbytes ? sbytes : 1);
    *qm = *q ? heap_map(*q, qbytes) : NULL;
    *sm = *sc ? heap_map(*sc, sbytes) : NULL;
    if (*qm && *sm) return true;
    if (*qm)
        mgl_map_unref(*qm);
    else
        free(*q);
    if (*sm)
        mgl_map_unref(*sm);
    else
        free(*sc);
    return false;
}

/* Quantize float tensor `t` (N, K) as `name`: replacing `t` in the set when
 * `replace`, else added beside it (a tied model's lm_head copy). */
static MglStatus quant_tensor(MglTensorSet* set, MglTensor* t, const char* name, int64_t N, int64_t K,
                              const MglQuantSpec* spec, bool replace, MglErr* err) {
    if (mgl_quant_dtype(t->dtype))
        return mgl_err(err, MGL_E_INVALID, "quantize: tensor '%s' is already quantized (%s)", t->name,
                       mgl_dtype_name(t->dtype));
    const int64_t G = mgl_quant_n_groups(K, spec->group);
    if (!mgl_tensor_is_contiguous(t) || !mgl_dtype_is_float(t->dtype) || t->dtype == MGL_DT_F64 || t->ndim != 2 ||
        t->shape[0] != N || t->shape[1] != K)
        return mgl_err(err, MGL_E_UNSUPPORTED, "quantize: tensor '%s' must be a contiguous f32/f16/bf16 [%lld, %lld]",
                       t->name, (long long)N, (long long)K);
    const size_t qbytes = (size_t)(N * mgl_quant_row_bytes(spec->bits, K)), sbytes = sizeof(uint16_t) * (size_t)(N * G);
    uint8_t* q;
    uint16_t* sc;
    MglMap *qm, *sm;
    if (!qpair_alloc(qbytes, sbytes, &q, &sc, &qm, &sm)) {
        return mgl_err(err, MGL_E_NOMEM, "quantize: out of memory for '%s'", name);
    }
    QuantJob job = {t, K, spec->bits, spec->group, q, sc};
    mgl_parallel_for(N, 16, quant_part, &job);
    char sname[200];
    mgl_quant_scale_name(name, sname, sizeof sname);
    MglTensor s = mat2(sname, MGL_DT_F16, N, G, (const uint8_t*)sc, sm);
    const MglDType qdt = spec->bits == 8 ? MGL_DT_I8 : MGL_DT_U8;
    const int64_t rb = mgl_quant_row_bytes(spec->bits, K);
    MglStatus st;
    if (replace) {
        /* the quantized bytes take the float tensor's place under its name (before
         * the scales are added: adding may move the set's items) */
        mgl_map_unref(t->map);
        t->map = qm;
        t->data = q;
        t->dtype = qdt;
        t->shape[1] = rb;
        t->stride[0] = rb;
        t->stride[1] = 1;
    } else {
        MglTensor c = mat2(name, qdt, N, rb, q, qm);
        if ((st = mgl_tset_add(set, &c, err)) != MGL_OK) {
            mgl_map_unref(sm);
            free(s.name);
            return st;
        }
    }
    return mgl_tset_add(set, &s, err);
}

static bool quant_item(const MglWeightItem* it, void* user) {
    QuantWalk* w = user;
    MglTensor* t = (MglTensor*)mgl_tset_get(w->mf->weights, it->name);
    if (!t) return true; /* validation reports it */
    if (selected(it->spec, w->q)) {
        w->st = quant_tensor(w->mf->weights, t, it->name, it->shape[0], it->shape[1], w->q, true, w->err);
    } else if (w->q->head && w->mf->llm.tie_embeddings && !strcmp(it->name, "llm.model.embed_tokens.weight")) {
        /* lm_head tied to the embeddings: a quantized copy for the logits, the
         * float rows kept for the lookup */
        w->st = quant_tensor(w->mf->weights, t, MGL_QUANT_TIED_HEAD, it->shape[0], it->shape[1], w->q, false, w->err);
    }
    return w->st == MGL_OK;
}

bool mgl_quant_tied_head(const MglModelFiles* mf, MglWeight* w, char* msg, size_t cap) {
    const MglTensor* t = mf->llm.tie_embeddings ? mgl_tset_get(mf->weights, MGL_QUANT_TIED_HEAD) : NULL;
    if (!t || !mgl_quant_dtype(t->dtype)) return true; /* none, or a float lm_head a tied checkpoint carries */
    if (!mgl_quant_view(mf->weights, t, mf->llm.vocab, mf->llm.hidden, w, msg, cap)) return false;
    return true;
}

MglStatus mgl_quantize_model(MglModelFiles* mf, const MglQuantSpec* q, MglErr* err) {
    if (!q || (q->bits != 8 && q->bits != 4)) return mgl_err(err, MGL_E_INVALID, "quantize: bits must be 8 or 4");
    if (q->group && (q->group < MGL_QUANT_BLOCK || (q->group & (q->group - 1))))
        return mgl_err(err, MGL_E_INVALID, "quantize: group %d is not a power of two >= %d", q->group, MGL_QUANT_BLOCK);
    QuantWalk w = {mf, q, err, MGL_OK};
    mgl_weight_walk(mf, quant_item, &w);
    return w.st;
}

typedef struct {
    const MglModelFiles* mf;
    const MglQuantSpec* q;
    GString* out;
} ErrWalk;

static bool err_item(const MglWeightItem* it, void* user) {
    ErrWalk* w = user;
    if (!selected(it->spec, w->q) || (it->spec->group == MGL_WG_LAYER && it->i0 != 0)) return true;
    const MglTensor* t = mgl_tset_get(w->mf->weights, it->name);
    if (!t || !mgl_tensor_is_contiguous(t) || !mgl_dtype_is_float(t->dtype) || t->dtype == MGL_DT_F64) return true;
    const int64_t K = it->shape[1], N = it->shape[0] < 256 ? it->shape[0] : 256, T = 4;
    const int64_t G = mgl_quant_n_groups(K, w->q->group);
    float* wf = malloc(sizeof(float) * (size_t)(N * K));
    float* x = malloc(sizeof(float) * (size_t)(T * K));
    uint8_t* qb = malloc((size_t)(N * mgl_quant_row_bytes(w->q->bits, K)));
    uint16_t* sc = malloc(sizeof(uint16_t) * (size_t)(N * G));
    float* yq = malloc(sizeof(float) * (size_t)(T * N));
    if (wf && x && qb && sc && yq) {
        mgl_convert_floats(t->data, t->dtype, wf, MGL_DT_F32, (size_t)(N * K));
        uint64_t r = 0x2545f4914f6cdd1dull;
        for (int64_t i = 0; i < T * K; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)((r >> 40) & 0xffffff) / 8388608.0f - 1.0f;
        }
        mgl_quantize_rows(wf, N, K, w->q->bits, w->q->group, qb, sc);
        const MglWeight W = mgl_quant_weight(qb, sc, w->q->bits, N, K, G);
        mgl_quant_matmul_ref(x, T, &W, true, yq);
        double se = 0, sy = 0;
        for (int64_t tn = 0; tn < T * N; tn++) {
            double y = 0;
            for (int64_t k = 0; k < K; k++) y += (double)wf[(tn % N) * K + k] * x[(tn / N) * K + k];
            se += (yq[tn] - y) * (yq[tn] - y);
            sy += y * y;
        }
        /* the short name: the tensor's last two name parts without ".weight" (q_proj, down_proj, lm_head) */
        const char* nm = it->name;
        const char* dot = strrchr(nm, '.');
        const char* prev = dot ? dot - 1 : nm;
        while (prev > nm && *prev != '.') prev--;
        if (*prev == '.') prev++;
        g_string_append_printf(w->out, "%s\"%.*s\": %.5f", w->out->len > 1 ? ", " : "", (int)(dot ? dot - prev : 0),
                               prev, sy > 0 ? sqrt(se / sy) : 0.0);
    }
    free(wf);
    free(x);
    free(qb);
    free(sc);
    free(yq);
    return true;
}

char* mgl_quant_error_report(const MglModelFiles* mf, const MglQuantSpec* q) {
    ErrWalk w = {mf, q, g_string_new("{")};
    mgl_weight_walk(mf, err_item, &w);
    g_string_append_c(w.out, '}');
    return g_string_free(w.out, FALSE);
}

typedef struct {
    uint64_t key;
    int64_t rb;
    uint8_t* q;
} SynthQ;

static void synth_q_part(void* ctx, int64_t b, int64_t e) {
    const SynthQ* j = ctx;
    for (int64_t n = b; n < e; n++) { /* counter-based: any split gives the same bytes */
        uint64_t s = j->key ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull);
        for (int64_t i = 0; i < j->rb; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            uint8_t v = (uint8_t)(s >> 56);
            j->q[n * j->rb + i] = v == 0x80 ? 0x81 : v; /* q8 never takes -128 */
        }
    }
}

typedef struct {
    MglModelFiles* mf;
    const MglQuantSpec* q;
    uint64_t seed;
    MglErr* err;
    MglStatus st;
} SynthWalk;

static bool synth_q_item(const MglWeightItem* it, void* user) {
    SynthWalk* w = user;
    if (!selected(it->spec, w->q) || mgl_tset_get(w->mf->weights, it->name)) return true;
    const int64_t N = it->shape[0], K = it->shape[1], G = mgl_quant_n_groups(K, w->q->group);
    const int64_t rb = mgl_quant_row_bytes(w->q->bits, K);
    const size_t qbytes = (size_t)(N * rb), sbytes = sizeof(uint16_t) * (size_t)(N * G);
    uint8_t* q;
    uint16_t* sc;
    MglMap *qm, *sm;
    if (!qpair_alloc(qbytes, sbytes, &q, &sc, &qm, &sm)) {
        w->st = mgl_err(w->err, MGL_E_NOMEM, "synthesize: out of memory for '%s' (%lld bytes)", it->name,
                        (long long)(N * rb));
        return false;
    }
    w->seed = w->seed * 6364136223846793005ull + 1442695040888963407ull;
    SynthQ job = {w->seed, rb, q};
    mgl_parallel_for(N, 64, synth_q_part, &job);
    const uint16_t s16 = mgl_f32_to_f16(1.0f / sqrtf((float)K) / (w->q->bits == 8 ? 127.0f : 8.0f));
    for (int64_t i = 0; i < N * G; i++) sc[i] = s16;
    char sname[200];
    mgl_quant_scale_name(it->name, sname, sizeof sname);
    MglTensor t = mat2(it->name, w->q->bits == 8 ? MGL_DT_I8 : MGL_DT_U8, N, rb, q, qm);
    MglTensor s = mat2(sname, MGL_DT_F16, N, G, (const uint8_t*)sc, sm);
    if ((w->st = mgl_tset_add(w->mf->weights, &t, w->err)) != MGL_OK) {
        mgl_map_unref(sm);
        free(s.name);
        return false;
    }
    w->st = mgl_tset_add(w->mf->weights, &s, w->err);
    return w->st == MGL_OK;
}

MglStatus mgl_quant_synthesize(MglModelFiles* mf, const MglQuantSpec* q, uint64_t seed, MglErr* err) {
    SynthWalk w = {mf, q, seed, err, MGL_OK};
    mgl_weight_walk(mf, synth_q_item, &w);
    return w.st;
}

char* mgl_quant_describe(const MglTensorSet* set) {
    int64_t n8 = 0, n4 = 0, g8 = -1, g4 = -1;
    bool mixed8 = false, mixed4 = false;
    uint64_t bytes = 0;
    for (size_t i = 0; i < set->n; i++) {
        const MglTensor* t = &set->items[i];
        if (!mgl_quant_dtype(t->dtype) || t->ndim != 2) continue;
        char sname[200];
        mgl_quant_scale_name(t->name, sname, sizeof sname);
        const MglTensor* s = mgl_tset_get(set, sname);
        if (!s || s->ndim != 2) continue;
        const bool is8 = t->dtype == MGL_DT_I8;
        /* K from the row bytes: exact for q8; for q4 the even K (every shape here) */
        const int64_t K = is8 ? t->shape[1] : 2 * t->shape[1];
        /* rows of one group (G = 1) fit any group size: only longer rows name it */
        const int64_t gs = s->shape[1] == 1 ? 0 : mgl_quant_group_for(K, s->shape[1]);
        int64_t* g = is8 ? &g8 : &g4;
        if (gs && *g > 0 && *g != gs) *(is8 ? &mixed8 : &mixed4) = true;
        if (gs || *g < 0) *g = gs;
        if (is8)
            n8++;
        else
            n4++;
        bytes += mgl_tensor_nbytes(t) + mgl_tensor_nbytes(s);
    }
    if (!n8 && !n4) return NULL;
    GString* out = g_string_new(NULL);
    for (int b = 0; b < 2; b++) {
        const int64_t n = b ? n4 : n8, g = b ? g4 : g8;
        if (!n) continue;
        if (out->len) g_string_append(out, "; ");
        if (b ? mixed4 : mixed8)
            g_string_append_printf(out, "q%d, mixed groups: %lld tensors", b ? 4 : 8, (long long)n);
        else if (g == 0)
            g_string_append_printf(out, "q%d, one scale per row: %lld tensors", b ? 4 : 8, (long long)n);
        else
            g_string_append_printf(out, "q%d, groups of %lld: %lld tensors", b ? 4 : 8, (long long)g, (long long)n);
    }
    g_string_append_printf(out, " (%.2f MiB with scales)", (double)bytes / (1 << 20));
    return g_string_free(out, FALSE);
}
