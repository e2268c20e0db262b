/* ops-attn.c: attention on the CPU.
 *
 * Decode (fewer than 16 query rows): one pass per (row, head) over the KV
 * cache. With AVX-512 the scores of 16 keys are formed at once (16 partial
 * dot products over the head dimension, folded into one vector of 16 scores
 * by a transposing reduction), the softmax takes 16 lanes at a time with a
 * vector exp, and P.V keeps the output row in registers (head sizes that are
 * multiples of 16, up to 256). With AVX2 only (or MGL_CPU_ISA=avx2), 8 keys
 * at a time the same way, for head sizes that are multiples of 8. Other
 * head sizes and MGL_CPU_ISA=scalar take the portable loops.
 *
 * Prefill (16 query rows or more): with AVX-512 and a head size that is a
 * multiple of 16 (up to 256), flash style (flash_head below): tiles of query
 * rows against blocks of keys with an online softmax, no score matrix. The
 * portable version: per head, S = Q K^T and O = P V as GEMMs over strided
 * views, in blocks of query rows so causal attention never computes the
 * scores of keys after a block's last row.
 *
 * Both paths give a row the same bits whatever the other rows of the call
 * are, so a sequence decodes the same alone or in a batch. */
#include "mgl-ops.h"

#include "mgl-blas.h"
#include "mgl-cpu-isa.h"
#include "mgl-cpu-math.h"
#include "mgl-pool.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define MGL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MGL_CLONES
#endif

typedef struct {
    const float* q;
    const void *kc, *vc;
    MglDType kvdt;
    int64_t T, pos0, NH, NKV, HS, L;
    int64_t hstep, kstep; /* cache elements from one kv head to the next, and from one key to the next */
    bool causal;
    float* out;
} AttnCtx;

/* Element i of a cache row in f32. */
static inline const void* kv_at(const void* base, MglDType dt, int64_t i) {
    return (const uint8_t*)base + (size_t)i * (dt == MGL_DT_F32 ? 4 : 2);
}

/* n rows of HS values (a head's slice, rows `stride` apart) widened to f32
 * and packed (rows HS apart). */
static void widen_rows(const void* base, MglDType dt, int64_t stride, int64_t n, int64_t HS, float* out) {
    for (int64_t j = 0; j < n; j++)
        mgl_convert_floats(kv_at(base, dt, j * stride), dt, out + j * HS, MGL_DT_F32, (size_t)HS);
}

/* Softmax of r[0, n) in place with max mx: e^(r - mx) / sum (sum in 16 float lanes, then double). */
MGL_CLONES static void softmax_row(float* r, int64_t n) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) mx = r[j] > mx ? r[j] : mx;
    float lane[16] = {0};
    int64_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int k = 0; k < 16; k++) {
            r[j + k] = exp_fast(r[j + k] - mx);
            lane[k] += r[j + k];
        }
    double sum = 0.0;
    for (; j < n; j++) {
        r[j] = exp_fast(r[j] - mx);
        sum += r[j];
    }
    for (int k = 0; k < 16; k++) sum += lane[k];
    const float inv = (float)(1.0 / sum);
    for (j = 0; j < n; j++) r[j] *= inv;
}

/* q . k over HS in 16 float lanes (vectorises; one fixed order) */
MGL_CLONES static float dot_hs(const float* q, const float* k, int64_t HS) {
    float lane[16] = {0};
    int64_t d = 0;
    for (; d + 16 <= HS; d += 16)
        for (int i = 0; i < 16; i++) lane[i] += q[d + i] * k[d + i];
    float s = 0.0f;
    for (; d < HS; d++) s += q[d] * k[d];
    for (int i = 0; i < 16; i++) s += lane[i];
    return s;
}

MGL_CLONES static void axpy_hs(float* o, float p, const float* v, int64_t HS) {
    for (int64_t d = 0; d < HS; d++) o[d] += p * v[d];
}

/* The portable decode row: scores, softmax, P.V over n keys. */
static void attn_row_plain(const float* qh, const float* kb, const float* vb, int64_t stride, int64_t n, int64_t HS,
                           float scale, float* att, float* o) {
    for (int64_t j = 0; j < n; j++) att[j] = dot_hs(qh, kb + j * stride, HS) * scale;
    softmax_row(att, n);
    memset(o, 0, sizeof(float) * (size_t)HS);
    for (int64_t j = 0; j < n; j++) axpy_hs(o, att[j], vb + j * stride, HS);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MGL_AVX512_ATTN 1
#define AVX512 __attribute__((target("avx512f,avx512dq")))

/* e^x in 16 lanes, the polynomial of exp_fast; 2^n by scalef. */
AVX512 static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Sixteen vectors to one: lane i of the result is the sum of r[i]'s lanes.
 * Halves are folded pairwise (256-bit, 128-bit, 64-bit, 32-bit steps), which
 * leaves the sums in a fixed shuffled order that one permute undoes. */
AVX512 static inline __m512 fold16(const __m512* r) {
    __m512 c[8], d[4], e[2];
    for (int i = 0; i < 8; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(r[i], r[i + 8], 0x44), _mm512_shuffle_f32x4(r[i], r[i + 8], 0xEE));
    for (int i = 0; i < 4; i++)
        d[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[i], c[i + 4], 0x88), _mm512_shuffle_f32x4(c[i], c[i + 4], 0xDD));
    for (int i = 0; i < 2; i++) {
        __m512d x = _mm512_castps_pd(d[i]), y = _mm512_castps_pd(d[i + 2]);
        e[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    __m512 f = _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_ps(e[0], e[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i idx = _mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15);
    return _mm512_permutexvar_ps(idx, f);
}

/* Sixteen cache values at element i, widened to f32. */
AVX512 static inline __attribute__((always_inline)) __m512 load_kv16(const void* base, MglDType dt, int64_t i) {
    if (dt == MGL_DT_F32) return _mm512_loadu_ps((const float*)base + i);
    const __m256i h = _mm256_loadu_si256((const __m256i*)((const uint16_t*)base + i));
    if (dt == MGL_DT_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

/* One decode row with AVX-512, HS = 16 * NC: att[0, n) receives the scaled
 * scores and then the unnormalised weights. NC is a constant where the
 * body is instantiated for the common head sizes (so q, the 16 partial dots
 * and the output row live in registers), 0 for the general body. */
AVX512 static inline __attribute__((always_inline)) void attn_row_body(const float* qh, const void* kb, const void* vb,
                                                                       MglDType dt, int64_t stride, int64_t n,
                                                                       int64_t HS, float scale, float* att, float* o,
                                                                       const int NC) {
    const int nc = NC ? NC : (int)(HS / 16);
    __m512 qv[16];
    for (int c = 0; c < nc; c++) qv[c] = _mm512_loadu_ps(qh + 16 * c);
    const __m512 vscale = _mm512_set1_ps(scale);
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int64_t j0 = 0;
    for (; j0 + 16 <= n; j0 += 16) { /* whole blocks: a fixed trip count */
        __m512 acc[16];
        for (int i = 0; i < 16; i++) {
            const int64_t k = (j0 + i) * stride;
            __m512 a = _mm512_mul_ps(load_kv16(kb, dt, k), qv[0]);
            for (int c = 1; c < nc; c++) a = _mm512_fmadd_ps(load_kv16(kb, dt, k + 16 * c), qv[c], a);
            acc[i] = a;
        }
        const __m512 s = _mm512_mul_ps(fold16(acc), vscale);
        vmax = _mm512_max_ps(vmax, s);
        _mm512_storeu_ps(att + j0, s);
    }
    if (j0 < n) {
        const int nk = (int)(n - j0);
        __m512 acc[16];
        for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
        for (int i = 0; i < nk; i++) {
            const int64_t k = (j0 + i) * stride;
            __m512 a = _mm512_mul_ps(load_kv16(kb, dt, k), qv[0]);
            for (int c = 1; c < nc; c++) a = _mm512_fmadd_ps(load_kv16(kb, dt, k + 16 * c), qv[c], a);
            acc[i] = a;
        }
        const __mmask16 m = (__mmask16)((1u << nk) - 1u);
        const __m512 s = _mm512_mul_ps(fold16(acc), vscale);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, s);
        _mm512_mask_storeu_ps(att + j0, m, s);
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (j0 = 0; j0 < n; j0 += 16) {
        const int nk = n - j0 < 16 ? (int)(n - j0) : 16;
        const __mmask16 m = (__mmask16)((1u << nk) - 1u);
        __m512 p = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, att + j0), mx));
        p = _mm512_maskz_mov_ps(m, p);
        vsum = _mm512_add_ps(vsum, p);
        _mm512_mask_storeu_ps(att + j0, m, p);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    /* P.V with two sets of accumulators (even and odd keys): twice the
     * independent FMA chains */
    __m512 ov[16], ow[16];
    for (int c = 0; c < nc; c++) ov[c] = ow[c] = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 2 <= n; j += 2) {
        const __m512 p0 = _mm512_set1_ps(att[j]), p1 = _mm512_set1_ps(att[j + 1]);
        for (int c = 0; c < nc; c++) {
            ov[c] = _mm512_fmadd_ps(p0, load_kv16(vb, dt, j * stride + 16 * c), ov[c]);
            ow[c] = _mm512_fmadd_ps(p1, load_kv16(vb, dt, (j + 1) * stride + 16 * c), ow[c]);
        }
    }
    if (j < n) {
        const __m512 p0 = _mm512_set1_ps(att[j]);
        for (int c = 0; c < nc; c++) ov[c] = _mm512_fmadd_ps(p0, load_kv16(vb, dt, j * stride + 16 * c), ov[c]);
    }
    for (int c = 0; c < nc; c++) _mm512_storeu_ps(o + 16 * c, _mm512_mul_ps(_mm512_add_ps(ov[c], ow[c]), inv));
}

/* attn_row_body for a cache dtype and head size */
#define MGL_ATTN_ROW(NAME, DT, NC)                                                                                     \
    AVX512 static void NAME(const float* qh, const void* kb, const void* vb, int64_t stride, int64_t n, int64_t HS,    \
                            float scale, float* att, float* o) {                                                       \
        attn_row_body(qh, kb, vb, DT, stride, n, HS, scale, att, o, NC);                                               \
    }
#define MGL_ATTN_ROWS(SUF, DT)                                                                                         \
    MGL_ATTN_ROW(attn_row_##SUF##_0, DT, 0)                                                                            \
    MGL_ATTN_ROW(attn_row_##SUF##_4, DT, 4)                                                                            \
    MGL_ATTN_ROW(attn_row_##SUF##_5, DT, 5)                                                                            \
    MGL_ATTN_ROW(attn_row_##SUF##_6, DT, 6)                                                                            \
    MGL_ATTN_ROW(attn_row_##SUF##_8, DT, 8)
MGL_ATTN_ROWS(f32, MGL_DT_F32)
MGL_ATTN_ROWS(f16, MGL_DT_F16)
MGL_ATTN_ROWS(bf16, MGL_DT_BF16)
typedef void (*AttnRowFn)(const float*, const void*, const void*, int64_t, int64_t, int64_t, float, float*, float*);

/* The kernel for a cache dtype and a head size (a multiple of 16 up to 256):
 * head sizes 64, 80, 96 and 128 (the Llama, Vicuna, Phi-3 and test models')
 * have their own. */
static AttnRowFn attn_row_avx512(MglDType dt, int64_t HS) {
    static const AttnRowFn fns[3][5] = {
        {attn_row_f32_0, attn_row_f32_4, attn_row_f32_5, attn_row_f32_6, attn_row_f32_8},
        {attn_row_f16_0, attn_row_f16_4, attn_row_f16_5, attn_row_f16_6, attn_row_f16_8},
        {attn_row_bf16_0, attn_row_bf16_4, attn_row_bf16_5, attn_row_bf16_6, attn_row_bf16_8}};
    const int d = dt == MGL_DT_F32 ? 0 : dt == MGL_DT_F16 ? 1 : 2;
    const int nc = (int)(HS / 16);
    const int k = nc == 4 ? 1 : nc == 5 ? 2 : nc == 6 ? 3 : nc == 8 ? 4 : 0;
    return fns[d][k];
}


/* The AVX2 kernel (CPUs without AVX-512), HS a multiple of 8: 8 keys at a
 * time, folded by hadd steps; q read from L1 (16 registers do not hold it);
 * the output row accumulated in place. */
#define AVX2F __attribute__((target("avx2,fma,f16c")))
AVX2F static inline __m256 load_kv8(const void* base, MglDType dt, int64_t i) {
    if (dt == MGL_DT_F32) return _mm256_loadu_ps((const float*)base + i);
    const __m128i h = _mm_loadu_si128((const __m128i*)((const uint16_t*)base + i));
    if (dt == MGL_DT_BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* e^x in 8 lanes: exp16's polynomial, 2^n through the exponent bits */
AVX2F static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* lane i = the sum of r[i]'s lanes */
AVX2F static inline __m256 fold8(const __m256* r) {
    const __m256 a = _mm256_hadd_ps(r[0], r[1]), b = _mm256_hadd_ps(r[2], r[3]);
    const __m256 c = _mm256_hadd_ps(r[4], r[5]), d = _mm256_hadd_ps(r[6], r[7]);
    const __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    /* ab: [0 1 2 3 | 0 1 2 3] halves of rows 0-3, cd likewise for rows 4-7 */
    return _mm256_add_ps(_mm256_permute2f128_ps(ab, cd, 0x20), _mm256_permute2f128_ps(ab, cd, 0x31));
}

AVX2F static inline __attribute__((always_inline)) void attn_row_avx2_body(const float* qh, const void* kb,
                                                                           const void* vb, MglDType dt, int64_t stride,
                                                                           int64_t n, int64_t HS, float scale,
                                                                           float* att, float* o) {
    const int64_t nc = HS / 8;
    const __m256 vscale = _mm256_set1_ps(scale);
    __m256 vmax = _mm256_set1_ps(-INFINITY);
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
        const int nk = n - j0 < 8 ? (int)(n - j0) : 8;
        __m256 acc[8];
        for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
        for (int64_t c = 0; c < nc; c++) {
            const __m256 qv = _mm256_loadu_ps(qh + 8 * c);
            for (int i = 0; i < nk; i++)
                acc[i] = _mm256_fmadd_ps(load_kv8(kb, dt, (j0 + i) * stride + 8 * c), qv, acc[i]);
        }
        const __m256 sc = _mm256_mul_ps(fold8(acc), vscale);
        float tmp[8];
        _mm256_storeu_ps(tmp, sc);
        for (int i = 0; i < nk; i++) att[j0 + i] = tmp[i];
        if (nk == 8)
            vmax = _mm256_max_ps(vmax, sc);
        else
            for (int i = 0; i < nk; i++) vmax = _mm256_max_ps(vmax, _mm256_set1_ps(tmp[i]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
    const __m256 mx = _mm256_set1_ps(_mm_cvtss_f32(m4));
    __m256 vsum = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 p = exp8(_mm256_sub_ps(_mm256_loadu_ps(att + j), mx));
        vsum = _mm256_add_ps(vsum, p);
        _mm256_storeu_ps(att + j, p);
    }
    float tail = 0;
    for (; j < n; j++) {
        float tmp[8];
        _mm256_storeu_ps(tmp, exp8(_mm256_set1_ps(att[j] - _mm_cvtss_f32(m4))));
        att[j] = tmp[0];
        tail += tmp[0];
    }
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(vsum), _mm256_extractf128_ps(vsum, 1));
    s4 = _mm_hadd_ps(s4, s4);
    s4 = _mm_hadd_ps(s4, s4);
    const __m256 inv = _mm256_set1_ps(1.0f / (_mm_cvtss_f32(s4) + tail));
    for (int64_t c = 0; c < nc; c++) _mm256_storeu_ps(o + 8 * c, _mm256_setzero_ps());
    for (j = 0; j < n; j++) {
        const __m256 p = _mm256_set1_ps(att[j]);
        for (int64_t c = 0; c < nc; c++)
            _mm256_storeu_ps(o + 8 * c,
                             _mm256_fmadd_ps(p, load_kv8(vb, dt, j * stride + 8 * c), _mm256_loadu_ps(o + 8 * c)));
    }
    for (int64_t c = 0; c < nc; c++) _mm256_storeu_ps(o + 8 * c, _mm256_mul_ps(_mm256_loadu_ps(o + 8 * c), inv));
}
AVX2F static void attn_row_avx2(const float* qh, const void* kb, const void* vb, MglDType dt, int64_t stride, int64_t n,
                                int64_t HS, float scale, float* att, float* o) {
    if (dt == MGL_DT_F32)
        attn_row_avx2_body(qh, kb, vb, MGL_DT_F32, stride, n, HS, scale, att, o);
    else if (dt == MGL_DT_F16)
        attn_row_avx2_body(qh, kb, vb, MGL_DT_F16, stride, n, HS, scale, att, o);
    else
        attn_row_avx2_body(qh, kb, vb, MGL_DT_BF16, stride, n, HS, scale, att, o);
}

/* Prefill with AVX-512, flash style: per head, tiles of FQ query rows meet
 * blocks of FK keys; a tile keeps its output rows, each row's running max
 * and sum, and takes each key block in three steps per four rows: the
 * scores (four rows by FK keys in 16 accumulators, over the head's keys
 * packed transposed once), the online softmax (the block's max, the old
 * rows' rescale, the vector exp), and P.V into the output rows. Causal
 * attention skips every block after a tile's last row and masks the
 * diagonal block. Sums are f32; no T x L score matrix is formed. */
#define FQ 64
#define FK 64

typedef struct {
    float (*o)[256]; /* FQ output rows of a tile (heap: 64 KB is much for a caller's stack) */
    float* kt;       /* HS x L: the head's keys, transposed */
    float* v;        /* L x HS: its values (widened from a 16-bit cache) */
    int64_t kvh;     /* the kv head they hold, -1 for none */
} FlashBuf;

/* four query rows against keys [j0, j0 + FK) (nj of them): scaled scores into s[4][FK] */
AVX512 static inline __attribute__((always_inline)) void
flash_scores(const float* const q[4], const float* kt, int64_t L, int64_t HS, int64_t j0, float scale, float s[4][FK]) {
    __m512 a[4][FK / 16];
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < FK / 16; c++) a[r][c] = _mm512_setzero_ps();
    for (int64_t d = 0; d < HS; d++) {
        const float* kd = kt + d * L + j0;
        __m512 k[FK / 16];
        for (int c = 0; c < FK / 16; c++) k[c] = _mm512_loadu_ps(kd + 16 * c);
        for (int r = 0; r < 4; r++) {
            const __m512 qv = _mm512_set1_ps(q[r][d]);
            for (int c = 0; c < FK / 16; c++) a[r][c] = _mm512_fmadd_ps(qv, k[c], a[r][c]);
        }
    }
    const __m512 sc = _mm512_set1_ps(scale);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < FK / 16; c++) _mm512_storeu_ps(&s[r][16 * c], _mm512_mul_ps(a[r][c], sc));
}

/* o[r][0, 16 NC) = o * alpha[r] + sum over keys j < n of s[r][j] V[j] for the
 * nr rows (the value rows HS apart at vb), four rows at once so each value
 * vector is loaded once for the four */
AVX512 static inline __attribute__((always_inline)) void flash_pv(float* const o[4], int nr, const float alpha[4],
                                                                  const float s[4][FK], const float* vb, int64_t HS,
                                                                  int64_t n, int NC) {
    __m512 acc[4][4];
    for (int r = 0; r < 4; r++) {
        const __m512 av = _mm512_set1_ps(alpha[r]);
        for (int k = 0; k < NC; k++) acc[r][k] = _mm512_mul_ps(_mm512_loadu_ps(o[r] + 16 * k), av);
    }
    for (int64_t j = 0; j < n; j++) {
        __m512 v[4];
        for (int k = 0; k < NC; k++) v[k] = _mm512_loadu_ps(vb + j * HS + 16 * k);
        for (int r = 0; r < 4; r++) {
            const __m512 pj = _mm512_set1_ps(s[r][j]);
            for (int k = 0; k < NC; k++) acc[r][k] = _mm512_fmadd_ps(pj, v[k], acc[r][k]);
        }
    }
    for (int r = 0; r < nr; r++)
        for (int k = 0; k < NC; k++) _mm512_storeu_ps(o[r] + 16 * k, acc[r][k]);
}

AVX512 static void flash_head(const AttnCtx* a, int64_t h, const FlashBuf* fb) {
    const int64_t T = a->T, HS = a->HS, L = a->L, ldq = a->NH * HS;
    const float scale = 1.0f / sqrtf((float)HS);
    float(*o)[256] = fb->o;
    float m[FQ], l[FQ];
    float s[4][FK] __attribute__((aligned(64)));
    for (int64_t t0 = 0; t0 < T; t0 += FQ) {
        const int64_t nt = T - t0 < FQ ? T - t0 : FQ;
        const int64_t last = a->causal ? a->pos0 + t0 + nt : L; /* keys the tile sees: [0, last) */
        for (int64_t r = 0; r < nt; r++) {
            m[r] = -INFINITY;
            l[r] = 0.0f;
            memset(o[r], 0, sizeof(float) * (size_t)HS);
        }
        for (int64_t j0 = 0; j0 < last; j0 += FK) {
            const int64_t nj = last - j0 < FK ? last - j0 : FK;
            for (int64_t r0 = 0; r0 < nt; r0 += 4) {
                const float* q[4];
                for (int r = 0; r < 4; r++) q[r] = a->q + (t0 + (r0 + r < nt ? r0 + r : r0)) * ldq + h * HS;
                flash_scores(q, fb->kt, L, HS, j0, scale, s);
                float alpha[4] = {1.0f, 1.0f, 1.0f, 1.0f};
                int64_t nmax = 0;
                for (int r = 0; r < 4; r++) {
                    const int64_t t = t0 + r0 + r;
                    /* keys this row sees in the block: all nj, or up to its own position */
                    int64_t n = r0 + r < nt ? nj : 0;
                    if (n && a->causal && a->pos0 + t + 1 - j0 < n) n = a->pos0 + t + 1 - j0;
                    float* row = s[r];
                    if (n <= 0) { /* a row past the tile, or one whose keys all come later: no weight */
                        memset(row, 0, sizeof(float) * FK);
                        continue;
                    }
                    nmax = n > nmax ? n : nmax;
                    __m512 mx = _mm512_set1_ps(-INFINITY);
                    int64_t j = 0;
                    for (; j + 16 <= n; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(row + j));
                    float bm = _mm512_reduce_max_ps(mx);
                    for (; j < n; j++) bm = row[j] > bm ? row[j] : bm;
                    const float mnew = bm > m[r0 + r] ? bm : m[r0 + r];
                    alpha[r] = m[r0 + r] == -INFINITY ? 0.0f : expf(m[r0 + r] - mnew);
                    m[r0 + r] = mnew;
                    const __m512 mv = _mm512_set1_ps(mnew);
                    __m512 sum = _mm512_setzero_ps();
                    for (j = 0; j + 16 <= n; j += 16) {
                        const __m512 pv = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j), mv));
                        sum = _mm512_add_ps(sum, pv);
                        _mm512_storeu_ps(row + j, pv);
                    }
                    if (j < n) {
                        const __mmask16 km = (__mmask16)((1u << (n - j)) - 1);
                        const __m512 pv =
                            _mm512_maskz_mov_ps(km, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(km, row + j), mv)));
                        sum = _mm512_add_ps(sum, pv);
                        _mm512_storeu_ps(row + j, pv); /* zero past n */
                        j += 16;
                    }
                    for (; j < FK; j += 16) _mm512_storeu_ps(row + j, _mm512_setzero_ps()); /* masked keys */
                    l[r0 + r] = l[r0 + r] * alpha[r] + _mm512_reduce_add_ps(sum);
                }
                /* o = o * alpha + p . V over the block's keys, four rows at once: each value
                 * vector loaded once for the four */
                const int nr = nt - r0 < 4 ? (int)(nt - r0) : 4;
                for (int64_t c = 0; c < HS; c += 64) {
                    float* orow[4];
                    for (int r = 0; r < 4; r++) orow[r] = o[r0 + (r < nr ? r : 0)] + c;
                    const float* vb = fb->v + j0 * HS + c;
                    switch (HS - c >= 64 ? 4 : (int)((HS - c) / 16)) {
                    case 4: flash_pv(orow, nr, alpha, s, vb, HS, nmax, 4); break;
                    case 3: flash_pv(orow, nr, alpha, s, vb, HS, nmax, 3); break;
                    case 2: flash_pv(orow, nr, alpha, s, vb, HS, nmax, 2); break;
                    default: flash_pv(orow, nr, alpha, s, vb, HS, nmax, 1); break;
                    }
                }
            }
        }
        for (int64_t r = 0; r < nt; r++) {
            float* out = a->out + (t0 + r) * ldq + h * HS;
            const float inv = 1.0f / l[r];
            for (int64_t d = 0; d < HS; d++) out[d] = o[r][d] * inv;
        }
    }
}

/* The head's keys transposed and values widened, for the kv head h uses:
 * the keys widened into v first, transposed from there, then the values */
static void flash_pack(const AttnCtx* a, int64_t kvh, FlashBuf* fb) {
    if (fb->kvh == kvh) return;
    const int64_t L = a->L, HS = a->HS, ld = a->kstep;
    widen_rows(kv_at(a->kc, a->kvdt, kvh * a->hstep), a->kvdt, ld, L, HS, fb->v);
    for (int64_t j = 0; j < L; j++)
        for (int64_t d = 0; d < HS; d++) fb->kt[d * L + j] = fb->v[j * HS + d];
    widen_rows(kv_at(a->vc, a->kvdt, kvh * a->hstep), a->kvdt, ld, L, HS, fb->v);
    fb->kvh = kvh;
}

static void attn_heads_part(void* ctx, int64_t b, int64_t e);
static void attn_flash_part(void* ctx, int64_t b, int64_t e) {
    const AttnCtx* a = ctx;
    const int64_t L = a->L, HS = a->HS, group = a->NH / a->NKV;
    /* the transposed keys are read FK at a time from any key: room for a block past L */
    FlashBuf fb = {malloc(sizeof(float[256]) * FQ), calloc((size_t)(HS * (L + FK)), sizeof(float)),
                   malloc(sizeof(float) * (size_t)(L * HS)), -1};
    if (fb.o && fb.kt && fb.v)
        for (int64_t h = b; h < e; h++) {
            flash_pack(a, h / group, &fb);
            flash_head(a, h, &fb);
        }
    else /* out of memory for the packed head: the GEMM version */
        attn_heads_part(ctx, b, e);
    free(fb.o);
    free(fb.kt);
    free(fb.v);
}
#endif

/* Small T (decode): one pass per (token, head) over the cache. The portable
 * path reads a 16-bit cache through a widened copy of the head's slice. */
static void attn_rows_part(void* ctx, int64_t b, int64_t e) {
    const AttnCtx* a = ctx;
    const int64_t group = a->NH / a->NKV, HS = a->HS, stride = a->kstep;
    const float scale = 1.0f / sqrtf((float)HS);
    float* att = malloc(sizeof(float) * (size_t)(a->L + 16));
#ifdef MGL_AVX512_ATTN
    const bool wide = mgl_cpu_level() >= MGL_CPU_AVX512 && HS % 16 == 0 && HS <= 256;
    const AttnRowFn row_fn = wide ? attn_row_avx512(a->kvdt, HS) : NULL;
    const bool narrow = !wide && mgl_cpu_level() >= MGL_CPU_AVX2 && HS % 8 == 0;
#else
    const bool wide = false, narrow = false;
#endif
    float* kw = !wide && !narrow && a->kvdt != MGL_DT_F32 ? malloc(sizeof(float) * (size_t)(2 * a->L * HS)) : NULL;
    for (int64_t th = b; th < e; th++) {
        int64_t t = th / a->NH, h = th % a->NH;
        const float* qh = a->q + t * a->NH * HS + h * HS;
        const int64_t kvh = h / group;
        const int64_t n = a->causal ? a->pos0 + t + 1 : a->L;
        const void* kb = kv_at(a->kc, a->kvdt, kvh * a->hstep);
        const void* vb = kv_at(a->vc, a->kvdt, kvh * a->hstep);
        float* o = a->out + t * a->NH * HS + h * HS;
#ifdef MGL_AVX512_ATTN
        if (wide) {
            row_fn(qh, kb, vb, stride, n, HS, scale, att, o);
            continue;
        }
        if (narrow) {
            attn_row_avx2(qh, kb, vb, a->kvdt, stride, n, HS, scale, att, o);
            continue;
        }
#endif
        if (kw) {
            widen_rows(kb, a->kvdt, stride, n, HS, kw);
            widen_rows(vb, a->kvdt, stride, n, HS, kw + a->L * HS);
            attn_row_plain(qh, kw, kw + a->L * HS, HS, n, HS, scale, att, o);
        } else {
            attn_row_plain(qh, kb, vb, stride, n, HS, scale, att, o);
        }
    }
    free(kw);
    free(att);
}

/* Prefill: heads spread over the pool, each with its own score buffer. */
#define ATTN_ROW_BLOCK 128
static void attn_heads_part(void* ctx, int64_t b, int64_t e) {
    const AttnCtx* a = ctx;
    const int64_t T = a->T, L = a->L, HS = a->HS, group = a->NH / a->NKV;
    const float scale = 1.0f / sqrtf((float)HS);
    const int64_t TB = a->causal ? (T < ATTN_ROW_BLOCK ? T : ATTN_ROW_BLOCK) : T;
    float* S = malloc(sizeof(float) * (size_t)(TB * L));
    /* a 16-bit cache: the head's keys and values widened once for all blocks */
    float* kw = a->kvdt != MGL_DT_F32 ? malloc(sizeof(float) * (size_t)(2 * L * HS)) : NULL;
    int64_t widened = -1;
    for (int64_t h = b; h < e; h++) {
        const int64_t kvh = h / group;
        const float *kb = (const float*)a->kc + kvh * a->hstep, *vb = (const float*)a->vc + kvh * a->hstep;
        int64_t ld = a->kstep;
        if (kw) {
            if (widened != kvh) {
                widen_rows(kv_at(a->kc, a->kvdt, kvh * a->hstep), a->kvdt, a->kstep, L, HS, kw);
                widen_rows(kv_at(a->vc, a->kvdt, kvh * a->hstep), a->kvdt, a->kstep, L, HS, kw + L * HS);
                widened = kvh;
            }
            kb = kw;
            vb = kw + L * HS;
            ld = HS;
        }
        for (int64_t t0 = 0; t0 < T; t0 += TB) {
            const int64_t nt = T - t0 < TB ? T - t0 : TB;
            const int64_t Lb = a->causal ? a->pos0 + t0 + nt : L; /* keys any row of the block sees */
            mgl_sgemm(1, (int)nt, (int)Lb, (int)HS, scale, a->q + (t0 * a->NH + h) * HS, (int)(a->NH * HS), kb, (int)ld,
                      0.0f, S, (int)Lb);
            for (int64_t t = 0; t < nt; t++) {
                float* r = S + t * Lb;
                int64_t n = a->causal ? a->pos0 + t0 + t + 1 : Lb;
                softmax_row(r, n);
                for (int64_t j = n; j < Lb; j++) r[j] = 0.0f;
            }
            mgl_sgemm(0, (int)nt, (int)HS, (int)Lb, 1.0f, S, (int)Lb, vb, (int)ld, 0.0f, a->out + (t0 * a->NH + h) * HS,
                      (int)(a->NH * HS));
        }
    }
    free(kw);
    free(S);
}

void mgl_attention(const float* q, int64_t T, int64_t pos0, const float* kc, const float* vc, int64_t NH, int64_t NKV,
                   int64_t HS, bool causal, float* out) {
    mgl_attention_kv(q, T, pos0, kc, vc, MGL_DT_F32, NH, NKV, HS, causal, out);
}

void mgl_attention_kv(const float* q, int64_t T, int64_t pos0, const void* kc, const void* vc, MglDType kvdt,
                      int64_t NH, int64_t NKV, int64_t HS, bool causal, float* out) {
    mgl_attention_cache(q, T, pos0, kc, vc, kvdt, NH, NKV, HS, HS, NKV * HS, causal, out);
}

void mgl_attention_cache(const float* q, int64_t T, int64_t pos0, const void* kc, const void* vc, MglDType kvdt,
                         int64_t NH, int64_t NKV, int64_t HS, int64_t head_step, int64_t key_step, bool causal,
                         float* out) {
    AttnCtx a = {q, kc, vc, kvdt, T, pos0, NH, NKV, HS, pos0 + T, head_step, key_step, causal, out};
#ifdef MGL_AVX512_ATTN
    if (T >= 16 && mgl_cpu_level() >= MGL_CPU_AVX512 && HS % 16 == 0 && HS <= 256) {
        mgl_parallel_for(NH, 1, attn_flash_part, &a);
        return;
    }
#endif
    if (T >= 16)
        mgl_parallel_for(NH, 1, attn_heads_part, &a);
    else
        mgl_parallel_for(T * NH, 1, attn_rows_part, &a);
}
