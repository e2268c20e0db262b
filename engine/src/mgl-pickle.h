/* mgl-pickle.h: restricted unpickler for torch.save's data.pkl.
 *
 * The VM builds an inert object graph and never calls anything: the few
 * globals torch needs (OrderedDict, _rebuild_tensor_v2, ...) are interpreted
 * here, every other global becomes a placeholder object. */
#ifndef MGL_PICKLE_H
#define MGL_PICKLE_H

#include "mgl-internal.h"

typedef enum {
    PK_NONE,
    PK_BOOL,
    PK_INT,
    PK_BIGINT,
    PK_FLOAT,
    PK_STR,
    PK_BYTES,
    PK_LIST,
    PK_TUPLE,
    PK_DICT,
    PK_SET,
    PK_GLOBAL,  /* a class/function reference (module.name) */
    PK_OBJECT,  /* inert placeholder: result of "calling" an unknown global */
    PK_STORAGE, /* torch storage from a persistent id */
    PK_TENSOR,  /* rebuilt tensor view */
} PkType;

typedef enum {
    PG_OTHER,
    PG_DANGEROUS,
    PG_ORDERED_DICT,
    PG_REBUILD_V2,
    PG_REBUILD_V3,
    PG_REBUILD_PARAM,
    PG_REBUILD_FROM_TYPE,
    PG_STORAGE_TYPE,
    PG_DTYPE,
    PG_DEVICE,
    PG_SIZE,
} PkGlobalKind;

typedef struct PkObj PkObj;
struct PkObj {
    PkType type;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            char* s;
            size_t len;
        } str; /* STR, BYTES: NUL-terminated copy */
        struct {
            PkObj** v;
            size_t n, cap;
        } seq; /* LIST, TUPLE, SET; DICT: v[2k] key, v[2k+1] value */
        struct {
            PkGlobalKind kind;
            int dtype;
            char* qualname;
        } glob;
        struct {
            const PkObj* cls;
        } obj;
        struct {
            int dtype;
            const uint8_t* data;
            uint64_t nbytes;
            MglMap* map;
            char* key;
        } storage;
        struct {
            MglDType dtype;
            int ndim;
            int64_t shape[MGL_MAX_DIMS];
            int64_t stride[MGL_MAX_DIMS];
            const uint8_t* data;
            MglMap* map; /* one reference held */
        } tensor;
    } u;
};

/* Resolves a storage key to the bytes of "<prefix>/data/<key>" (fills a full
 * one-line message on error). */
typedef MglStatus (*MglPickleStorageFn)(void* ud, const char* key, const uint8_t** data, uint64_t* nbytes, MglErr* err);

typedef struct {
    const char* path;                /* file, for messages */
    const char* entry;               /* pickle entry name, for messages */
    MglMap* map;                     /* mapping holding the storage bytes */
    MglPickleStorageFn load_storage; /* NULL: persistent ids are an error */
    void* ud;
} MglPickleOpts;

typedef struct MglPickle MglPickle;

/* Runs the pickle in data[0..len). On success *vm owns the graph reachable
 * from *result; free it with mgl_pickle_free. On failure *vm is NULL. */
MglStatus mgl_pickle_run(const uint8_t* data, size_t len, const MglPickleOpts* opts, MglPickle** vm, PkObj** result,
                         MglErr* err);
void mgl_pickle_free(MglPickle* vm);
/* Short description of an object's kind for messages ("dict", "list",
 * "object of mmengine.x.Y", ...). Writes into buf. */
const char* mgl_pickle_describe(const PkObj* o, char* buf, size_t len);

#endif /* MGL_PICKLE_H */
