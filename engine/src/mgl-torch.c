/* mgl-torch.c: torch.save (zip format, torch >= 1.6) checkpoint loader.
 *
 * The archive is mapped once; data.pkl runs through the restricted unpickler
 * and every tensor of the state dict becomes a view into the mapping. Aligned
 * storages (torch pads entries to 64 bytes) are never copied, so loading a
 * multi-GB checkpoint costs page cache on access, not heap. */
#include "mgl-internal.h"
#include "mgl-pickle.h"
#include "mgl-zip.h"

#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char* path;
    MglZip* zip;
    const char* prefix; /* "<top>/" */
} TorchCtx;

static MglStatus load_storage(void* ud, const char* key, const uint8_t** data, uint64_t* nbytes, MglErr* err) {
    TorchCtx* c = ud;
    char* name = g_strdup_printf("%sdata/%s", c->prefix, key);
    const MglZipEntry* e = mgl_zip_find(c->zip, name);
    MglStatus st;
    if (!e)
        st = mgl_err(err, MGL_E_FORMAT, "%s: storage '%s' missing (no zip entry '%s')", c->path, key, name);
    else
        st = mgl_zip_entry_data(c->zip, e, data, nbytes, err);
    g_free(name);
    return st;
}

/* The legacy (pre-1.6) format is a bare pickle stream that starts with the
 * magic number 0x1950a86a20f9469cfc6c pickled as a LONG1. */
static bool is_legacy(const uint8_t* d, size_t n) {
    static const uint8_t magic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    if (n < 2 + sizeof magic || d[0] != 0x80) return false;
    return memcmp(d + 2, magic, sizeof magic) == 0;
}

/* Finds "<top>/data.pkl" with a single-level prefix. The top folder is
 * "archive" or the file stem depending on the torch version, so any name is
 * accepted; two candidates are ambiguous. */
static MglStatus find_data_pkl(const char* path, const MglZip* z, const MglZipEntry** out, MglErr* err) {
    *out = NULL;
    for (size_t i = 0; i < z->n; i++) {
        const char* nm = z->entries[i].name;
        const char* slash = strchr(nm, '/');
        if (!slash || slash == nm || strcmp(slash, "/data.pkl") != 0) continue;
        if (*out)
            return mgl_err(err, MGL_E_FORMAT, "%s: several data.pkl entries ('%s', '%s')", path, (*out)->name, nm);
        *out = &z->entries[i];
    }
    if (!*out)
        return mgl_err(err, MGL_E_FORMAT, "%s: zip archive has no '<folder>/data.pkl' (not a torch.save file)", path);
    return MGL_OK;
}

static MglStatus check_byteorder(const char* path, const MglZip* z, const char* prefix, MglErr* err) {
    char* name = g_strdup_printf("%sbyteorder", prefix);
    const MglZipEntry* e = mgl_zip_find(z, name);
    MglStatus st = MGL_OK;
    if (e) {
        const uint8_t* d;
        uint64_t n;
        st = mgl_zip_entry_data(z, e, &d, &n, err);
        if (st == MGL_OK) {
            while (n && (d[n - 1] == '\n' || d[n - 1] == '\r')) n--;
            if (n == 6 && memcmp(d, "little", 6) == 0)
                st = MGL_OK;
            else if (n == 3 && memcmp(d, "big", 3) == 0)
                st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: %s: big-endian checkpoints are not supported", path, name);
            else
                st = mgl_err(err, MGL_E_FORMAT, "%s: %s: unknown byte order", path, name);
        }
    }
    g_free(name);
    return st;
}

static const PkObj* dict_get(const PkObj* d, const char* key) {
    const PkObj* r = NULL;
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2) { /* last one wins, as in Python */
        const PkObj* k = d->u.seq.v[i];
        if (k->type == PK_STR && strcmp(k->u.str.s, key) == 0 && k->u.str.len == strlen(key)) r = d->u.seq.v[i + 1];
    }
    return r;
}

/* Adds the tensors of `sd` to `set`. Names are validated first so a failure
 * leaves `set` unchanged (except for out-of-memory). */
static MglStatus add_state_dict(const char* path, const PkObj* sd, MglTensorSet* set, size_t* n_added, MglErr* err) {
    *n_added = 0;
    /* Python dict semantics: a repeated key keeps its last value. */
    GHashTable* last = g_hash_table_new(g_str_hash, g_str_equal);
    for (size_t i = 0; i + 1 < sd->u.seq.n; i += 2) {
        const PkObj* k = sd->u.seq.v[i];
        if (k->type == PK_STR) g_hash_table_insert(last, k->u.str.s, GSIZE_TO_POINTER(i + 1));
    }
    MglStatus st = MGL_OK;
    for (size_t i = 0; i + 1 < sd->u.seq.n && st == MGL_OK; i += 2) {
        const PkObj* k = sd->u.seq.v[i];
        const PkObj* v = sd->u.seq.v[i + 1];
        if (k->type != PK_STR || v->type != PK_TENSOR) continue;
        if (GPOINTER_TO_SIZE(g_hash_table_lookup(last, k->u.str.s)) != i + 1) continue;
        if (strlen(k->u.str.s) != k->u.str.len)
            st = mgl_err(err, MGL_E_FORMAT, "%s: tensor name with a NUL byte", path);
        else if (mgl_tset_get(set, k->u.str.s))
            st = mgl_err(err, MGL_E_FORMAT, "%s: duplicate tensor name '%s'", path, k->u.str.s);
        else
            (*n_added)++;
    }
    for (size_t i = 0; i + 1 < sd->u.seq.n && st == MGL_OK; i += 2) {
        const PkObj* k = sd->u.seq.v[i];
        const PkObj* v = sd->u.seq.v[i + 1];
        if (k->type != PK_STR || v->type != PK_TENSOR) continue;
        if (GPOINTER_TO_SIZE(g_hash_table_lookup(last, k->u.str.s)) != i + 1) continue;
        MglTensor t = {0};
        t.name = strdup(k->u.str.s);
        if (!t.name) {
            st = mgl_err(err, MGL_E_NOMEM, "%s: out of memory", path);
            break;
        }
        t.dtype = v->u.tensor.dtype;
        t.ndim = v->u.tensor.ndim;
        memcpy(t.shape, v->u.tensor.shape, sizeof t.shape);
        memcpy(t.stride, v->u.tensor.stride, sizeof t.stride);
        t.data = v->u.tensor.data;
        t.map = mgl_map_ref(v->u.tensor.map);
        st = mgl_tset_add(set, &t, err);
        if (st != MGL_OK) {
            free(t.name);
            mgl_map_unref(t.map);
            mgl_err_prefix(err, "%s", path);
        }
    }
    g_hash_table_destroy(last);
    return st;
}

MglStatus mgl_torch_load(const char* path, MglTensorSet* set, MglErr* err) {
    if (!path || !set) return mgl_err(err, MGL_E_INVALID, "mgl_torch_load: NULL argument");
    MglMap* map = NULL;
    MGL_TRY(mgl_map_open(path, &map, err));
    if (is_legacy(map->data, map->size)) {
        mgl_map_unref(map);
        return mgl_err(err, MGL_E_UNSUPPORTED,
                       "%s: legacy (pre-1.6) torch.save format not supported, re-save with torch>=1.6", path);
    }
    MglZip zip;
    MglStatus st = mgl_zip_open(&zip, path, map->data, map->size, err);
    if (st != MGL_OK) {
        mgl_map_unref(map);
        return st;
    }

    const MglZipEntry* pkl = NULL;
    char* prefix = NULL;
    MglPickle* vm = NULL;
    PkObj* root = NULL;
    const uint8_t* pd = NULL;
    uint64_t plen = 0;
    st = find_data_pkl(path, &zip, &pkl, err);
    if (st == MGL_OK) {
        prefix = g_strndup(pkl->name, strlen(pkl->name) - strlen("data.pkl"));
        st = check_byteorder(path, &zip, prefix, err);
    }
    if (st == MGL_OK) st = mgl_zip_entry_data(&zip, pkl, &pd, &plen, err);
    if (st == MGL_OK) {
        TorchCtx ctx = {path, &zip, prefix};
        MglPickleOpts o = {path, pkl->name, map, load_storage, &ctx};
        st = mgl_pickle_run(pd, (size_t)plen, &o, &vm, &root, err);
    }
    if (st == MGL_OK) {
        /* As MG-LLaVA's loader: torch.load, then ['state_dict'] when present. */
        const PkObj* sd = root;
        if (root->type == PK_DICT) {
            const PkObj* inner = dict_get(root, "state_dict");
            if (inner && inner->type == PK_DICT) sd = inner;
        }
        size_t added = 0;
        if (sd->type == PK_DICT) st = add_state_dict(path, sd, set, &added, err);
        if (st == MGL_OK && added == 0) {
            char kind[160];
            st = mgl_err(err, MGL_E_FORMAT, "%s: no state dict of tensors found (top-level object is a %s)", path,
                         mgl_pickle_describe(root, kind, sizeof kind));
        }
    }
    mgl_pickle_free(vm);
    g_free(prefix);
    mgl_zip_close(&zip);
    mgl_map_unref(map); /* tensors hold their own references */
    return st;
}
