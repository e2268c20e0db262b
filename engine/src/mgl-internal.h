/* mgl-internal.h: shared internals of libmgllava (not installed). */
#ifndef MGL_INTERNAL_H
#define MGL_INTERNAL_H

#include "mgllava.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#if defined(__GNUC__)
#define MGL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MGL_PRINTF(a, b)
#endif

/* Fill `err` (if non-NULL) and return `code`. */
MglStatus mgl_err(MglErr* err, MglStatus code, const char* fmt, ...) MGL_PRINTF(3, 4);
/* mgl_err with a va_list */
MglStatus mgl_verr(MglErr* err, MglStatus code, const char* fmt, va_list ap);
/* Prefix an existing message with "prefix: " (keeps the code). */
void mgl_err_prefix(MglErr* err, const char* fmt, ...) MGL_PRINTF(2, 3);
/* A GLib-style error of common/mgl-json.h (MGL_JSON_ERROR) into `err`: its
 * message, MGL_E_IO / MGL_E_NOMEM / MGL_E_FORMAT by its code. Frees `gerr`
 * (NULL gives MGL_E_FORMAT) and returns the status. */
struct _GError;
MglStatus mgl_err_json(MglErr* err, struct _GError* gerr);

#define MGL_TRY(expr)                                                                                                  \
    do {                                                                                                               \
        MglStatus s_ = (expr);                                                                                         \
        if (s_ != MGL_OK) return s_;                                                                                   \
    } while (0)

/* ---- read-only file mapping ------------------------------------------- */

typedef struct MglMap {
    char* path;
    const uint8_t* data; /* NULL when size == 0 */
    size_t size;
    int refcount;
    bool mmapped; /* false: heap copy */
} MglMap;

/* Maps a whole file read-only. Empty files map with data == NULL. */
MglStatus mgl_map_open(const char* path, MglMap** out, MglErr* err);
MglMap* mgl_map_ref(MglMap* m);
void mgl_map_unref(MglMap* m);

/* Read a whole (small) file into a NUL-terminated heap buffer; max_size guards
 * against reading a huge file by mistake. */
MglStatus mgl_read_file(const char* path, size_t max_size, char** out, size_t* out_len, MglErr* err);

/* CPUID F16C bit (clang < 15 has no __builtin_cpu_supports("f16c")). */
bool mgl_cpu_has_f16c(void);

/* ---- dtypes and tensors ----------------------------------------------- */

typedef enum {
    MGL_DT_F32 = 0,
    MGL_DT_F16,
    MGL_DT_BF16,
    MGL_DT_F64,
    MGL_DT_I64,
    MGL_DT_I32,
    MGL_DT_I16,
    MGL_DT_I8,
    MGL_DT_U8,
    MGL_DT_BOOL,
    MGL_DT_COUNT
} MglDType;

size_t mgl_dtype_size(MglDType t);
const char* mgl_dtype_name(MglDType t); /* safetensors spelling: "F32", "BF16", ... */
bool mgl_dtype_from_name(const char* s, MglDType* out);
bool mgl_dtype_is_float(MglDType t);

#define MGL_MAX_DIMS 8

/* A tensor view into a mapped file. Shapes and strides are in elements,
 * outermost first (PyTorch order). `data` points at element 0. Every byte
 * the view can reach has been checked to lie inside `map`. */
typedef struct {
    char* name;
    MglDType dtype;
    int ndim;
    int64_t shape[MGL_MAX_DIMS];
    int64_t stride[MGL_MAX_DIMS];
    const uint8_t* data;
    MglMap* map; /* owning mapping (one ref held per tensor) */
} MglTensor;

int64_t mgl_tensor_numel(const MglTensor* t);
bool mgl_tensor_is_contiguous(const MglTensor* t);
size_t mgl_tensor_nbytes(const MglTensor* t); /* numel * dtype size */
/* Copy the tensor's elements, in logical (row-major) order, converted to f32. */
MglStatus mgl_tensor_to_f32(const MglTensor* t, float* dst, MglErr* err);
/* Convert one element buffer between float dtypes (f32/f16/bf16/f64). Round to nearest even. */
void mgl_convert_floats(const void* src, MglDType st, void* dst, MglDType dt, size_t n);
uint16_t mgl_f32_to_f16(float f);
float mgl_f16_to_f32(uint16_t h);
uint16_t mgl_f32_to_bf16(float f);
float mgl_bf16_to_f32(uint16_t h);

/* A named set of tensors from one or more files. */
typedef struct MglTensorSet {
    MglTensor* items;
    size_t n, cap;
    void* index; /* GHashTable name -> index+1 */
} MglTensorSet;

MglTensorSet* mgl_tset_new(void);
void mgl_tset_free(MglTensorSet* s);
/* Takes ownership of t->name and the map reference. Duplicate names are an error. */
MglStatus mgl_tset_add(MglTensorSet* s, MglTensor* t, MglErr* err);
const MglTensor* mgl_tset_get(const MglTensorSet* s, const char* name);

/* ---- weight files ----------------------------------------------------- */

/* safetensors: single file, or a sharded `*.index.json` (safetensors or torch.save shards). */
MglStatus mgl_safetensors_load(const char* path, MglTensorSet* set, MglErr* err);
/* PyTorch torch.save zip (.pth/.bin). Restricted unpickler: never runs code. */
MglStatus mgl_torch_load(const char* path, MglTensorSet* set, MglErr* err);
/* Any weights file by its content: safetensors, index.json or torch zip. */
MglStatus mgl_weights_load(const char* path, MglTensorSet* set, MglErr* err);

/* Write a safetensors file (tensors converted to `dtype` when floating,
 * kept as-is otherwise). `meta` may be NULL: string pairs for __metadata__. */
MglStatus mgl_safetensors_write(const char* path, const MglTensor* const* tensors, size_t n,
                                int dtype /* MglDType, or -1 to keep */, const char* const* meta_kv, MglErr* err);

#endif /* MGL_INTERNAL_H */
