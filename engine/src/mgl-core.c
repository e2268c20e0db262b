/* mgl-core.c: status strings, errors, file mapping, dtypes, tensor sets. */
#include "mgl-internal.h"
#include "mgl-json.h"
#include "cpu/mgl-cpu-isa.h"

#include <glib.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char* mgl_version(void) { return "0.1.0"; }

const char* mgl_status_to_string(MglStatus s) {
    switch (s) {
    case MGL_OK: return "ok";
    case MGL_E_INVALID: return "invalid argument";
    case MGL_E_NOMEM: return "out of memory";
    case MGL_E_IO: return "I/O error";
    case MGL_E_FORMAT: return "malformed file";
    case MGL_E_UNSUPPORTED: return "unsupported";
    case MGL_E_DEVICE: return "device error";
    case MGL_E_ABORTED: return "aborted";
    case MGL_E_SECURITY: return "refused for safety";
    }
    return "unknown status";
}

MglStatus mgl_verr(MglErr* err, MglStatus code, const char* fmt, va_list ap) {
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

MglStatus mgl_err(MglErr* err, MglStatus code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    mgl_verr(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void mgl_err_prefix(MglErr* err, const char* fmt, ...) {
    if (!err) return;
    char pre[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char tmp[sizeof err->msg];
    snprintf(tmp, sizeof tmp, "%s: %s", pre, err->msg);
    memcpy(err->msg, tmp, sizeof tmp);
}

MglStatus mgl_err_json(MglErr* err, GError* gerr) {
    MglStatus code = MGL_E_FORMAT;
    if (gerr && gerr->domain == MGL_JSON_ERROR && gerr->code == MGL_JSON_ERROR_IO) code = MGL_E_IO;
    if (gerr && gerr->domain == MGL_JSON_ERROR && gerr->code == MGL_JSON_ERROR_NOMEM) code = MGL_E_NOMEM;
    mgl_err(err, code, "%s", gerr ? gerr->message : "JSON error");
    if (gerr) g_error_free(gerr);
    return code;
}

/* ---- mapping ---------------------------------------------------------- */

MglStatus mgl_map_open(const char* path, MglMap** out, MglErr* err) {
    *out = NULL;
    GError* ge = NULL;
    int fd = mgl_open_regular(path, &ge);
    if (fd < 0) return mgl_err_json(err, ge);
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return mgl_err(err, MGL_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    MglMap* m = calloc(1, sizeof *m);
    if (!m) {
        close(fd);
        return mgl_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    }
    m->path = strdup(path);
    m->size = (size_t)st.st_size;
    m->refcount = 1;
    if (m->size > 0) {
        void* p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(m->path);
            free(m);
            return mgl_err(err, MGL_E_IO, "%s: cannot mmap %zu bytes: %s", path, (size_t)st.st_size, strerror(e));
        }
        m->data = p;
        m->mmapped = true;
    }
    close(fd);
    *out = m;
    return MGL_OK;
}

MglMap* mgl_map_ref(MglMap* m) {
    if (m) m->refcount++;
    return m;
}

void mgl_map_unref(MglMap* m) {
    if (!m || --m->refcount > 0) return;
    if (m->data) {
        if (m->mmapped)
            munmap((void*)m->data, m->size);
        else
            free((void*)m->data);
    }
    free(m->path);
    free(m);
}

MglStatus mgl_read_file(const char* path, size_t max_size, char** out, size_t* out_len, MglErr* err) {
    GError* ge = NULL;
    if (!mgl_json_read_file(path, max_size, out, out_len, &ge)) return mgl_err_json(err, ge);
    return MGL_OK;
}

/* ---- dtypes ----------------------------------------------------------- */

static const struct {
    const char* name;
    size_t size;
    bool is_float;
} k_dtypes[MGL_DT_COUNT] = {
    [MGL_DT_F32] = {"F32", 4, true},    [MGL_DT_F16] = {"F16", 2, true},  [MGL_DT_BF16] = {"BF16", 2, true},
    [MGL_DT_F64] = {"F64", 8, true},    [MGL_DT_I64] = {"I64", 8, false}, [MGL_DT_I32] = {"I32", 4, false},
    [MGL_DT_I16] = {"I16", 2, false},   [MGL_DT_I8] = {"I8", 1, false},   [MGL_DT_U8] = {"U8", 1, false},
    [MGL_DT_BOOL] = {"BOOL", 1, false},
};

size_t mgl_dtype_size(MglDType t) { return (unsigned)t < MGL_DT_COUNT ? k_dtypes[t].size : 0; }
const char* mgl_dtype_name(MglDType t) { return (unsigned)t < MGL_DT_COUNT ? k_dtypes[t].name : "?"; }
bool mgl_dtype_is_float(MglDType t) { return (unsigned)t < MGL_DT_COUNT && k_dtypes[t].is_float; }

bool mgl_dtype_from_name(const char* s, MglDType* out) {
    for (int i = 0; i < MGL_DT_COUNT; i++)
        if (strcmp(s, k_dtypes[i].name) == 0) {
            *out = (MglDType)i;
            return true;
        }
    return false;
}

uint16_t mgl_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t exp = (x >> 23) & 0xffu;
    uint32_t man = x & 0x7fffffu;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int32_t e = (int32_t)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) {
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - e);
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) half++;
    return (uint16_t)half;
}

float mgl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t x;
    if (exp == 0) {
        if (man == 0)
            x = sign;
        else {
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31)
        x = sign | 0x7f800000u | (man << 13);
    else
        x = sign | ((exp + 127 - 15) << 23) | (man << 13);
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t mgl_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float mgl_bf16_to_f32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

static double load_float(const uint8_t* p, MglDType t) {
    switch (t) {
    case MGL_DT_F32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case MGL_DT_F64: {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    case MGL_DT_F16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return mgl_f16_to_f32(h);
    }
    case MGL_DT_BF16: {
        uint16_t h;
        memcpy(&h, p, 2);
        return mgl_bf16_to_f32(h);
    }
    case MGL_DT_I64: {
        int64_t v;
        memcpy(&v, p, 8);
        return (double)v;
    }
    case MGL_DT_I32: {
        int32_t v;
        memcpy(&v, p, 4);
        return v;
    }
    case MGL_DT_I16: {
        int16_t v;
        memcpy(&v, p, 2);
        return v;
    }
    case MGL_DT_I8: return (int8_t)p[0];
    case MGL_DT_U8: return p[0];
    case MGL_DT_BOOL: return p[0] != 0;
    default: return 0;
    }
}

static void store_float(uint8_t* p, MglDType t, double v) {
    switch (t) {
    case MGL_DT_F32: {
        float f = (float)v;
        memcpy(p, &f, 4);
        break;
    }
    case MGL_DT_F64: memcpy(p, &v, 8); break;
    case MGL_DT_F16: {
        uint16_t h = mgl_f32_to_f16((float)v);
        memcpy(p, &h, 2);
        break;
    }
    case MGL_DT_BF16: {
        uint16_t h = mgl_f32_to_bf16((float)v);
        memcpy(p, &h, 2);
        break;
    }
    default: break;
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
bool mgl_cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#else
bool mgl_cpu_has_f16c(void) { return false; }
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MGL_X86 1
__attribute__((target("avx2,f16c"))) static void f16_to_f32_f16c(const uint16_t* s, float* d, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(s + i))));
    for (; i < n; i++) d[i] = mgl_f16_to_f32(s[i]);
}
__attribute__((target("avx2"))) static void bf16_to_f32_avx2(const uint16_t* s, float* d, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(s + i)));
        _mm256_storeu_si256((__m256i*)(d + i), _mm256_slli_epi32(v, 16));
    }
    for (; i < n; i++) d[i] = mgl_bf16_to_f32(s[i]);
}
/* f32 -> f16 (F16C, nearest even) and f32 -> bf16 (nearest even by integer
 * add), eight at a time; a group with a NaN is redone by the scalar
 * conversion so NaN payloads come out as mgl_f32_to_f16/bf16 make them. */
__attribute__((target("avx2,f16c"))) static void f32_to_f16_f16c(const float* s, uint16_t* d, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(s + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
            for (size_t k = i; k < i + 8; k++) d[k] = mgl_f32_to_f16(s[k]);
            continue;
        }
        _mm_storeu_si128((__m128i*)(d + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; i++) d[i] = mgl_f32_to_f16(s[i]);
}
__attribute__((target("avx2"))) static void f32_to_bf16_avx2(const float* s, uint16_t* d, size_t n) {
    size_t i = 0;
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(s + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
            for (size_t k = i; k < i + 8; k++) d[k] = mgl_f32_to_bf16(s[k]);
            continue;
        }
        __m256i x = _mm256_castps_si256(v);
        x = _mm256_add_epi32(x, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(x, 16), one)));
        x = _mm256_srli_epi32(x, 16);
        /* 8 x 32-bit -> 8 x 16-bit (values fit in 16 bits: unsigned pack is exact) */
        const __m128i lo = _mm256_castsi256_si128(x), hi = _mm256_extracti128_si256(x, 1);
        _mm_storeu_si128((__m128i*)(d + i), _mm_packus_epi32(lo, hi));
    }
    for (; i < n; i++) d[i] = mgl_f32_to_bf16(s[i]);
}
/* AVX2 with F16C: the kernels' AVX2 level (MGL_CPU_ISA caps it, so the tests
 * also run the scalar loops); kept here, conversions come a row at a time */
static int have_avx2_f16c(void) {
    static int v = -1;
    if (v < 0) v = mgl_cpu_level() >= MGL_CPU_AVX2;
    return v;
}
#endif

void mgl_convert_floats(const void* src, MglDType st, void* dst, MglDType dt, size_t n) {
    const uint8_t* s = src;
#ifdef MGL_X86
    if (dt == MGL_DT_F32 && (st == MGL_DT_F16 || st == MGL_DT_BF16) && have_avx2_f16c()) {
        if (st == MGL_DT_F16)
            f16_to_f32_f16c(src, dst, n);
        else
            bf16_to_f32_avx2(src, dst, n);
        return;
    }
    if (st == MGL_DT_F16 && dt == MGL_DT_BF16 && have_avx2_f16c()) {
        /* through f32 (exact), a block at a time: the generic path's rounding */
        float tmp[256];
        for (size_t i = 0; i < n; i += 256) {
            const size_t k = n - i < 256 ? n - i : 256;
            f16_to_f32_f16c((const uint16_t*)src + i, tmp, k);
            f32_to_bf16_avx2(tmp, (uint16_t*)dst + i, k);
        }
        return;
    }
    if (st == MGL_DT_F32 && (dt == MGL_DT_F16 || dt == MGL_DT_BF16) && have_avx2_f16c()) {
        if (dt == MGL_DT_F16)
            f32_to_f16_f16c(src, dst, n);
        else
            f32_to_bf16_avx2(src, dst, n);
        return;
    }
#endif
    if (dt == MGL_DT_F32 && st == MGL_DT_BF16) {
        const uint16_t* h = src;
        float* f = dst;
        for (size_t i = 0; i < n; i++) f[i] = mgl_bf16_to_f32(h[i]);
        return;
    }
    if (dt == MGL_DT_F32 && st == MGL_DT_F16) {
        const uint16_t* h = src;
        float* f = dst;
        for (size_t i = 0; i < n; i++) f[i] = mgl_f16_to_f32(h[i]);
        return;
    }
    uint8_t* d = dst;
    size_t ss = mgl_dtype_size(st), ds = mgl_dtype_size(dt);
    if (st == dt) {
        memcpy(dst, src, n * ss);
        return;
    }
    for (size_t i = 0; i < n; i++) store_float(d + i * ds, dt, load_float(s + i * ss, st));
}

/* ---- tensors ---------------------------------------------------------- */

int64_t mgl_tensor_numel(const MglTensor* t) {
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        if (__builtin_mul_overflow(n, t->shape[i], &n)) return INT64_MAX; /* loaders reject such shapes first */
    return n;
}

size_t mgl_tensor_nbytes(const MglTensor* t) { return (size_t)mgl_tensor_numel(t) * mgl_dtype_size(t->dtype); }

bool mgl_tensor_is_contiguous(const MglTensor* t) {
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != expect) return false;
        expect *= t->shape[i];
    }
    return true;
}

/* Calls fn on each element's address in logical order. */
static void tensor_walk(const MglTensor* t, void (*fn)(const uint8_t*, size_t, void*), void* ud) {
    int64_t n = mgl_tensor_numel(t);
    if (n == 0) return;
    size_t es = mgl_dtype_size(t->dtype);
    int64_t idx[MGL_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
        fn(t->data + off * (int64_t)es, (size_t)i, ud);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

typedef struct {
    float* dst;
    MglDType dt;
} ToF32;
static void to_f32_cb(const uint8_t* p, size_t i, void* ud) {
    ToF32* c = ud;
    c->dst[i] = (float)load_float(p, c->dt);
}

MglStatus mgl_tensor_to_f32(const MglTensor* t, float* dst, MglErr* err) {
    if ((unsigned)t->dtype >= MGL_DT_COUNT)
        return mgl_err(err, MGL_E_UNSUPPORTED, "tensor '%s': unknown dtype", t->name);
    if (mgl_tensor_is_contiguous(t) && mgl_dtype_is_float(t->dtype)) {
        mgl_convert_floats(t->data, t->dtype, dst, MGL_DT_F32, (size_t)mgl_tensor_numel(t));
        return MGL_OK;
    }
    ToF32 c = {dst, t->dtype};
    tensor_walk(t, to_f32_cb, &c);
    return MGL_OK;
}

/* ---- tensor sets ------------------------------------------------------ */

MglTensorSet* mgl_tset_new(void) {
    MglTensorSet* s = calloc(1, sizeof *s);
    if (s) s->index = g_hash_table_new(g_str_hash, g_str_equal);
    return s;
}

void mgl_tset_free(MglTensorSet* s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].name);
        mgl_map_unref(s->items[i].map);
    }
    free(s->items);
    g_hash_table_destroy(s->index);
    free(s);
}

MglStatus mgl_tset_add(MglTensorSet* s, MglTensor* t, MglErr* err) {
    if (g_hash_table_contains(s->index, t->name)) {
        MglStatus st = mgl_err(err, MGL_E_FORMAT, "duplicate tensor name '%s'", t->name);
        free(t->name);
        mgl_map_unref(t->map);
        t->name = NULL;
        t->map = NULL;
        return st;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        MglTensor* ni = realloc(s->items, nc * sizeof *ni);
        if (!ni) return mgl_err(err, MGL_E_NOMEM, "out of memory");
        /* the hash keys point into items' names, which do not move */
        s->items = ni;
        s->cap = nc;
    }
    s->items[s->n] = *t;
    g_hash_table_insert(s->index, s->items[s->n].name, GSIZE_TO_POINTER(s->n + 1));
    s->n++;
    return MGL_OK;
}

const MglTensor* mgl_tset_get(const MglTensorSet* s, const char* name) {
    gpointer v = g_hash_table_lookup(s->index, name);
    return v ? &s->items[GPOINTER_TO_SIZE(v) - 1] : NULL;
}
