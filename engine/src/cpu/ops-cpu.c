/* ops-cpu.c: CPU backend: OpenBLAS GEMM, OpenMP over both cores, fp32 math. */
#include "mgl-ops.h"

#include "mgl-blas.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROW_TILE 256

/* Hot elementwise loops are compiled for AVX-512, AVX2 and baseline x86-64;
 * the loader picks the best at run time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define MGL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define MGL_CLONES
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* dot(w_row (16-bit), x) with AVX2/FMA; bf16 widens by a shift, f16 by F16C */
__attribute__((target("avx2,fma,f16c"))) static float dot16_avx2(const uint16_t* w, const float* x, int64_t K,
                                                                bool bf16) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m128i h0 = _mm_loadu_si128((const __m128i*)(w + k));
        __m128i h1 = _mm_loadu_si128((const __m128i*)(w + k + 8));
        __m256 w0, w1;
        if (bf16) {
            w0 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h0), 16));
            w1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h1), 16));
        } else {
            w0 = _mm256_cvtph_ps(h0);
            w1 = _mm256_cvtph_ps(h1);
        }
        a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + k), a0);
        a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + k + 8), a1);
    }
    __m256 a = _mm256_add_ps(a0, a1);
    __m128 lo = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    lo = _mm_hadd_ps(lo, lo);
    lo = _mm_hadd_ps(lo, lo);
    float s = _mm_cvtss_f32(lo);
    for (; k < K; k++) s += (bf16 ? mgl_bf16_to_f32(w[k]) : mgl_f16_to_f32(w[k])) * x[k];
    return s;
}
static int have_avx2(void) {
    static int v = -1;
    if (v < 0) v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    return v;
}
#define MGL_HAVE_DOT16 1
#endif

void mgl_weight_row(const MglWeight* W, int64_t r, float* out) {
    const uint8_t* base = W->data;
    size_t es = mgl_dtype_size(W->dtype);
    mgl_convert_floats(base + (size_t)(r * W->cols) * es, W->dtype, out, MGL_DT_F32, (size_t)W->cols);
}

void mgl_matmul(const float* x, int64_t T, const MglWeight* W, const float* bias, float* y) {
    const int64_t N = W->rows, K = W->cols;
    if (W->dtype == MGL_DT_F32) {
        mgl_sgemm(1, (int)T, (int)N, (int)K, 1.0f, x, (int)K,
                    (const float*)W->data, (int)K, 0.0f, y, (int)N);
    } else if (T == 1) {
        /* decode: one pass over the 16-bit rows, no scratch */
        const uint8_t* base = W->data;
        size_t es = mgl_dtype_size(W->dtype);
#ifdef MGL_HAVE_DOT16
        if (have_avx2()) {
            const bool bf = W->dtype == MGL_DT_BF16;
#pragma omp parallel for schedule(static)
            for (int64_t n = 0; n < N; n++) y[n] = dot16_avx2((const uint16_t*)base + n * K, x, K, bf);
            goto bias;
        }
#endif
#pragma omp parallel
        {
            float* row = malloc(sizeof(float) * (size_t)K);
#pragma omp for schedule(static)
            for (int64_t n = 0; n < N; n++) {
                mgl_convert_floats(base + (size_t)(n * K) * es, W->dtype, row, MGL_DT_F32, (size_t)K);
                float s = 0.0f;
                for (int64_t k = 0; k < K; k++) s += row[k] * x[k];
                y[n] = s;
            }
            free(row);
        }
    } else {
        /* widen ROW_TILE rows at a time, GEMM each tile into its column block */
        const uint8_t* base = W->data;
        size_t es = mgl_dtype_size(W->dtype);
        float* tile = malloc(sizeof(float) * (size_t)(ROW_TILE * K));
        float* ytile = malloc(sizeof(float) * (size_t)(ROW_TILE * T));
        for (int64_t n0 = 0; n0 < N; n0 += ROW_TILE) {
            int64_t nr = N - n0 < ROW_TILE ? N - n0 : ROW_TILE;
            mgl_convert_floats(base + (size_t)(n0 * K) * es, W->dtype, tile, MGL_DT_F32, (size_t)(nr * K));
            mgl_sgemm(1, (int)T, (int)nr, (int)K, 1.0f, x, (int)K, tile,
                        (int)K, 0.0f, ytile, (int)nr);
            for (int64_t t = 0; t < T; t++) memcpy(y + t * N + n0, ytile + t * nr, sizeof(float) * (size_t)nr);
        }
        free(tile);
        free(ytile);
    }
bias:
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++) y[t * N + n] += bias[n];
    }
}

MGL_CLONES static void layernorm_row(const float* xr, int64_t C, const float* w, const float* b, float eps, float* yr) {
    /* two passes in float with 4 partial sums: vectorises, and stays within
     * ~1e-7 of a double-precision reference for C up to a few thousand */
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t c = 0;
    for (; c + 4 <= C; c += 4) {
        s0 += xr[c];
        s1 += xr[c + 1];
        s2 += xr[c + 2];
        s3 += xr[c + 3];
    }
    for (; c < C; c++) s0 += xr[c];
    float mean = (s0 + s1 + s2 + s3) / (float)C;
    float v = 0;
    for (c = 0; c < C; c++) {
        float d = xr[c] - mean;
        v += d * d;
    }
    float rstd = 1.0f / sqrtf(v / (float)C + eps);
    for (c = 0; c < C; c++) yr[c] = (xr[c] - mean) * rstd * w[c] + (b ? b[c] : 0.0f);
}

void mgl_layernorm(const float* x, int64_t T, int64_t C, const float* w, const float* b, float eps, float* y) {
#pragma omp parallel for schedule(static) if (T * C > 4096)
    for (int64_t t = 0; t < T; t++) layernorm_row(x + t * C, C, w, b, eps, y + t * C);
}

void mgl_rmsnorm(const float* x, int64_t T, int64_t C, const float* w, float eps, float* y) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        const float* xr = x + t * C;
        float* yr = y + t * C;
        double ss = 0.0;
        for (int64_t c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        float r = 1.0f / sqrtf((float)(ss / (double)C) + eps);
        for (int64_t c = 0; c < C; c++) yr[c] = w[c] * (xr[c] * r);
    }
}


/* erf(x) for float as a branch-free rational approximation x*P(x^2)/Q(x^2)
 * on [-4, 4] (beyond that erf is +-1 in float); max error a few ulp, so the
 * loop vectorises where libm's erff does not. */
static inline float erf_fast(float x) {
    float c = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
    float x2 = c * c;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return c * p / q;
}

MGL_CLONES static void gelu_chunk(float* x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erf_fast(x[i] * 0.70710678118654752f));
}

void mgl_gelu_erf(float* x, int64_t n) {
    const int64_t CH = 1 << 14;
#pragma omp parallel for schedule(static) if (n > CH)
    for (int64_t i = 0; i < n; i += CH) gelu_chunk(x + i, n - i < CH ? n - i : CH);
}

void mgl_quick_gelu(float* x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void mgl_silu_mul(const float* gate, const float* up, float* out, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void mgl_add(float* y, const float* x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

MGL_CLONES static void dwconv7_row(const float* x, int64_t H, int64_t W, int64_t C, const float* wt, const float* b,
                                   float* y, int64_t r) {
        for (int64_t c = 0; c < W; c++) {
            float* yo = y + (r * W + c) * C;
            for (int64_t ch = 0; ch < C; ch++) yo[ch] = b ? b[ch] : 0.0f;
            for (int ky = 0; ky < 7; ky++) {
                int64_t yy = r + ky - 3;
                if (yy < 0 || yy >= H) continue;
                for (int kx = 0; kx < 7; kx++) {
                    int64_t xx = c + kx - 3;
                    if (xx < 0 || xx >= W) continue;
                    const float* xi = x + (yy * W + xx) * C;
                    const float* wk = wt + (ky * 7 + kx) * C;
                    for (int64_t ch = 0; ch < C; ch++) yo[ch] += xi[ch] * wk[ch];
                }
            }
        }
}

void mgl_dwconv7_nhwc(const float* x, int64_t H, int64_t W, int64_t C, const float* w, const float* b, float* y) {
    /* taps transposed to (49, C) so the channel loop reads both operands contiguously */
    float* wt = malloc(sizeof(float) * (size_t)(49 * C));
    for (int64_t ch = 0; ch < C; ch++)
        for (int k = 0; k < 49; k++) wt[k * C + ch] = w[ch * 49 + k];
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < H; r++) dwconv7_row(x, H, W, C, wt, b, y, r);
    free(wt);
}

void mgl_patchify_conv(const float* x, bool chw, int64_t H, int64_t W, int64_t Cin, int64_t k, const MglWeight* wt,
                       const float* bias, float* y) {
    int64_t Ho = H / k, Wo = W / k, K = Cin * k * k;
    float* cols = malloc(sizeof(float) * (size_t)(Ho * Wo * K));
#pragma omp parallel for schedule(static)
    for (int64_t oy = 0; oy < Ho; oy++)
        for (int64_t ox = 0; ox < Wo; ox++) {
            float* row = cols + (oy * Wo + ox) * K;
            for (int64_t ci = 0; ci < Cin; ci++)
                for (int64_t ky = 0; ky < k; ky++)
                    for (int64_t kx = 0; kx < k; kx++) {
                        int64_t iy = oy * k + ky, ix = ox * k + kx;
                        row[(ci * k + ky) * k + kx] = chw ? x[(ci * H + iy) * W + ix] : x[(iy * W + ix) * Cin + ci];
                    }
        }
    mgl_matmul(cols, Ho * Wo, wt, bias, y);
    free(cols);
}

/* PyTorch's source index for align_corners=False: the scale is rounded to
 * float (in/out), the index scale*(dst+0.5)-0.5 is formed in double, and the
 * weight is the float of its fractional part (matches upsample_bilinear2d on
 * the CPU to the last bit in our tests). */
static void bilinear_coeffs(int64_t in, int64_t out, int64_t* i0, int64_t* i1, float* l0, float* l1) {
    const double scale = (double)((float)in / (float)out);
    for (int64_t o = 0; o < out; o++) {
        double src = scale * ((double)o + 0.5) - 0.5;
        if (src < 0) src = 0;
        int64_t a = (int64_t)src;
        int64_t p = a < in - 1 ? 1 : 0;
        float lam = (float)(src - (double)a);
        i0[o] = a;
        i1[o] = a + p;
        l1[o] = lam;
        l0[o] = 1.0f - lam;
    }
}

void mgl_resize_bilinear_chw(const float* x, int64_t C, int64_t H, int64_t W, int64_t Ho, int64_t Wo, float* y) {
    int64_t *h0 = malloc(sizeof(int64_t) * (size_t)Ho), *h1 = malloc(sizeof(int64_t) * (size_t)Ho);
    int64_t *w0 = malloc(sizeof(int64_t) * (size_t)Wo), *w1 = malloc(sizeof(int64_t) * (size_t)Wo);
    float *hl0 = malloc(sizeof(float) * (size_t)Ho), *hl1 = malloc(sizeof(float) * (size_t)Ho);
    float *wl0 = malloc(sizeof(float) * (size_t)Wo), *wl1 = malloc(sizeof(float) * (size_t)Wo);
    bilinear_coeffs(H, Ho, h0, h1, hl0, hl1);
    bilinear_coeffs(W, Wo, w0, w1, wl0, wl1);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        const float* xc = x + c * H * W;
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                const float* r0 = xc + h0[oy] * W;
                const float* r1 = xc + h1[oy] * W;
                y[(c * Ho + oy) * Wo + ox] = hl0[oy] * (wl0[ox] * r0[w0[ox]] + wl1[ox] * r0[w1[ox]]) +
                                             hl1[oy] * (wl0[ox] * r1[w0[ox]] + wl1[ox] * r1[w1[ox]]);
            }
    }
    free(h0); free(h1); free(w0); free(w1); free(hl0); free(hl1); free(wl0); free(wl1);
}

void mgl_resize_bilinear_nhwc(const float* x, int64_t H, int64_t W, int64_t C, int64_t Ho, int64_t Wo, float* y) {
    int64_t *h0 = malloc(sizeof(int64_t) * (size_t)Ho), *h1 = malloc(sizeof(int64_t) * (size_t)Ho);
    int64_t *w0 = malloc(sizeof(int64_t) * (size_t)Wo), *w1 = malloc(sizeof(int64_t) * (size_t)Wo);
    float *hl0 = malloc(sizeof(float) * (size_t)Ho), *hl1 = malloc(sizeof(float) * (size_t)Ho);
    float *wl0 = malloc(sizeof(float) * (size_t)Wo), *wl1 = malloc(sizeof(float) * (size_t)Wo);
    bilinear_coeffs(H, Ho, h0, h1, hl0, hl1);
    bilinear_coeffs(W, Wo, w0, w1, wl0, wl1);
#pragma omp parallel for schedule(static)
    for (int64_t oy = 0; oy < Ho; oy++)
        for (int64_t ox = 0; ox < Wo; ox++) {
            const float* a = x + (h0[oy] * W + w0[ox]) * C;
            const float* b = x + (h0[oy] * W + w1[ox]) * C;
            const float* c = x + (h1[oy] * W + w0[ox]) * C;
            const float* d = x + (h1[oy] * W + w1[ox]) * C;
            float* o = y + (oy * Wo + ox) * C;
            for (int64_t ch = 0; ch < C; ch++)
                o[ch] = hl0[oy] * (wl0[ox] * a[ch] + wl1[ox] * b[ch]) + hl1[oy] * (wl0[ox] * c[ch] + wl1[ox] * d[ch]);
        }
    free(h0); free(h1); free(w0); free(w1); free(hl0); free(hl1); free(wl0); free(wl1);
}

/* Small T (decode): one pass per (token, head) over the cache. */
static void attention_rows(const float* q, int64_t T, int64_t pos0, const float* kc, const float* vc, int64_t NH,
                           int64_t NKV, int64_t HS, bool causal, float* out) {
    const int64_t group = NH / NKV, L = pos0 + T;
    const float scale = 1.0f / sqrtf((float)HS);
#pragma omp parallel
    {
        float* att = malloc(sizeof(float) * (size_t)L);
#pragma omp for collapse(2) schedule(static)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < NH; h++) {
                const float* qh = q + t * NH * HS + h * HS;
                int64_t kvh = h / group;
                int64_t n = causal ? pos0 + t + 1 : L;
                float mx = -INFINITY;
                for (int64_t j = 0; j < n; j++) {
                    const float* kj = kc + j * NKV * HS + kvh * HS;
                    float s = 0.0f;
                    for (int64_t d = 0; d < HS; d++) s += qh[d] * kj[d];
                    s *= scale;
                    att[j] = s;
                    if (s > mx) mx = s;
                }
                double sum = 0.0;
                for (int64_t j = 0; j < n; j++) {
                    att[j] = expf(att[j] - mx);
                    sum += att[j];
                }
                float inv = (float)(1.0 / sum);
                float* o = out + t * NH * HS + h * HS;
                memset(o, 0, sizeof(float) * (size_t)HS);
                for (int64_t j = 0; j < n; j++) {
                    const float* vj = vc + j * NKV * HS + kvh * HS;
                    float p = att[j] * inv;
                    for (int64_t d = 0; d < HS; d++) o[d] += p * vj[d];
                }
            }
        free(att);
    }
}

/* Prefill: per head, S = Q K^T and O = P V as GEMMs over strided views. */
static void attention_gemm(const float* q, int64_t T, int64_t pos0, const float* kc, const float* vc, int64_t NH,
                           int64_t NKV, int64_t HS, bool causal, float* out) {
    const int64_t group = NH / NKV, L = pos0 + T;
    const float scale = 1.0f / sqrtf((float)HS);
    float* S = malloc(sizeof(float) * (size_t)(T * L));
    for (int64_t h = 0; h < NH; h++) {
        const int64_t kvh = h / group;
        mgl_sgemm(1, (int)T, (int)L, (int)HS, scale, q + h * HS,
                    (int)(NH * HS), kc + kvh * HS, (int)(NKV * HS), 0.0f, S, (int)L);
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            float* r = S + t * L;
            int64_t n = causal ? pos0 + t + 1 : L;
            float mx = -INFINITY;
            for (int64_t j = 0; j < n; j++) mx = r[j] > mx ? r[j] : mx;
            double sum = 0.0;
            for (int64_t j = 0; j < n; j++) {
                r[j] = expf(r[j] - mx);
                sum += r[j];
            }
            float inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < n; j++) r[j] *= inv;
            for (int64_t j = n; j < L; j++) r[j] = 0.0f;
        }
        mgl_sgemm(0, (int)T, (int)HS, (int)L, 1.0f, S, (int)L,
                    vc + kvh * HS, (int)(NKV * HS), 0.0f, out + h * HS, (int)(NH * HS));
    }
    free(S);
}

void mgl_attention(const float* q, int64_t T, int64_t pos0, const float* kc, const float* vc, int64_t NH, int64_t NKV,
                   int64_t HS, bool causal, float* out) {
    if (T >= 16) attention_gemm(q, T, pos0, kc, vc, NH, NKV, HS, causal, out);
    else attention_rows(q, T, pos0, kc, vc, NH, NKV, HS, causal, out);
}

void mgl_rope(float* x, int64_t T, int64_t NH, int64_t HS, int64_t pos0, float theta) {
    const int64_t half = HS / 2;
    float* inv = malloc(sizeof(float) * (size_t)half);
    /* as HF: inv_freq = 1 / theta ** (arange(0, d, 2).float() / d), in float32 */
    for (int64_t i = 0; i < half; i++) inv[i] = 1.0f / powf(theta, (float)(2 * i) / (float)HS);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < T; t++) {
        float pos = (float)(pos0 + t);
        for (int64_t i = 0; i < half; i++) {
            float a = pos * inv[i];
            float c = cosf(a), s = sinf(a);
            for (int64_t h = 0; h < NH; h++) {
                float* v = x + t * NH * HS + h * HS;
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c - x1 * s;
                v[i + half] = x1 * c + x0 * s;
            }
        }
    }
    free(inv);
}
