/* mgl-safetensors.c: safetensors reader (mmap, every offset checked) and
 * writer (used by `mgllava convert`).
 *
 * File layout: u64 little-endian header length N, N bytes of UTF-8 JSON
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the data section; offsets are relative to the data section. */
#include "mgl-internal.h"
#include "mgl-json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reference implementation refuses headers over 100 MB; so do we. */
#define MGL_ST_MAX_HEADER (100u * 1024u * 1024u)

static uint64_t rd_u64le(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Parse a non-negative integer JSON node that fits int64. */
static bool node_u64(JsonNode* n, uint64_t* out) {
    if (!n || !JSON_NODE_HOLDS_VALUE(n)) return false;
    GType t = json_node_get_value_type(n);
    if (t == G_TYPE_INT64) {
        int64_t v = json_node_get_int(n);
        if (v < 0) return false;
        *out = (uint64_t)v;
        return true;
    }
    return false;
}

static MglStatus parse_entry(const char* path, MglMap* map, const uint8_t* data, uint64_t data_len, const char* name,
                             JsonNode* node, MglTensorSet* set, MglErr* err) {
    if (!JSON_NODE_HOLDS_OBJECT(node))
        return mgl_err(err, MGL_E_FORMAT, "%s: tensor '%s': header entry is not an object", path, name);
    JsonObject* o = json_node_get_object(node);
    const char* dts = NULL;
    JsonNode* dn = json_object_get_member(o, "dtype");
    if (dn && JSON_NODE_HOLDS_VALUE(dn) && json_node_get_value_type(dn) == G_TYPE_STRING)
        dts = json_node_get_string(dn);
    if (!dts) return mgl_err(err, MGL_E_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    MglDType dt;
    if (!mgl_dtype_from_name(dts, &dt))
        return mgl_err(err, MGL_E_UNSUPPORTED, "%s: tensor '%s': unsupported dtype \"%s\"", path, name, dts);

    JsonNode* sn = json_object_get_member(o, "shape");
    if (!sn || !JSON_NODE_HOLDS_ARRAY(sn))
        return mgl_err(err, MGL_E_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", path, name);
    JsonArray* sa = json_node_get_array(sn);
    guint nd = json_array_get_length(sa);
    if (nd > MGL_MAX_DIMS)
        return mgl_err(err, MGL_E_UNSUPPORTED, "%s: tensor '%s': %u dimensions (max %d)", path, name, nd, MGL_MAX_DIMS);
    MglTensor t = {0};
    t.dtype = dt;
    t.ndim = (int)nd;
    uint64_t numel = 1, nonzero = 1;
    for (guint i = 0; i < nd; i++) {
        uint64_t d;
        if (!node_u64(json_array_get_element(sa, i), &d))
            return mgl_err(err, MGL_E_FORMAT, "%s: tensor '%s': shape[%u] is not a non-negative integer", path, name,
                           i);
        /* strides are products of the non-zero dims: they must fit int64 even
         * when another dim is 0 and the tensor is empty */
        if (d != 0 && nonzero > (uint64_t)INT64_MAX / d)
            return mgl_err(err, MGL_E_FORMAT, "%s: tensor '%s': shape overflows", path, name);
        if (d != 0) nonzero *= d;
        numel *= d;
        t.shape[i] = (int64_t)d;
    }
    int64_t st = 1;
    for (int i = t.ndim - 1; i >= 0; i--) {
        t.stride[i] = st;
        st *= t.shape[i] ? t.shape[i] : 1;
    }

    JsonNode* on = json_object_get_member(o, "data_offsets");
    uint64_t b, e;
    if (!on || !JSON_NODE_HOLDS_ARRAY(on) || json_array_get_length(json_node_get_array(on)) != 2 ||
        !node_u64(json_array_get_element(json_node_get_array(on), 0), &b) ||
        !node_u64(json_array_get_element(json_node_get_array(on), 1), &e))
        return mgl_err(err, MGL_E_FORMAT, "%s: tensor '%s': \"data_offsets\" must be [begin, end]", path, name);
    if (b > e)
        return mgl_err(err, MGL_E_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] are inverted", path, name,
                       (unsigned long long)b, (unsigned long long)e);
    if (e > data_len)
        return mgl_err(
            err, MGL_E_FORMAT,
            "%s: tensor '%s': data [%llu, %llu) lies past the end of the %llu-byte data section (truncated file?)",
            path, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_len);
    size_t es = mgl_dtype_size(dt);
    if (numel > UINT64_MAX / es || numel * es != e - b)
        return mgl_err(err, MGL_E_FORMAT, "%s: tensor '%s': %llu bytes of data for %s shape with %llu elements", path,
                       name, (unsigned long long)(e - b), dts, (unsigned long long)numel);

    t.name = strdup(name);
    if (!t.name) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    const uint8_t* p = data + b;
    if (((uintptr_t)p % es) != 0 && e > b) {
        /* Misaligned for its dtype: give this tensor an aligned heap copy. */
        MglMap* hm = calloc(1, sizeof *hm);
        void* buf = malloc(e - b);
        if (!hm || !buf) {
            free(hm);
            free(buf);
            free(t.name);
            return mgl_err(err, MGL_E_NOMEM, "%s: tensor '%s': out of memory", path, name);
        }
        memcpy(buf, p, e - b);
        hm->path = strdup(path);
        hm->data = buf;
        hm->size = e - b;
        hm->refcount = 1;
        t.map = hm;
        t.data = buf;
    } else {
        t.map = mgl_map_ref(map);
        t.data = p;
    }
    MglStatus s = mgl_tset_add(set, &t, err);
    if (s != MGL_OK) mgl_err_prefix(err, "%s", path);
    return s;
}

static MglStatus load_single(const char* path, MglTensorSet* set, GHashTable* only, MglErr* err) {
    MglMap* map = NULL;
    MGL_TRY(mgl_map_open(path, &map, err));
    MglStatus st = MGL_OK;
    JsonParser* parser = NULL;
    if (map->size < 8) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: %zu bytes is too short for a safetensors file", path, map->size);
        goto done;
    }
    uint64_t hlen = rd_u64le(map->data);
    if (hlen > MGL_ST_MAX_HEADER) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: header length %llu exceeds the %u-byte limit (not a safetensors file?)",
                     path, (unsigned long long)hlen, MGL_ST_MAX_HEADER);
        goto done;
    }
    if (hlen > map->size - 8) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: header length %llu runs past the end of the %zu-byte file (truncated?)",
                     path, (unsigned long long)hlen, map->size);
        goto done;
    }
    if (hlen < 2 || map->data[8] != '{') {
        st = mgl_err(err, MGL_E_FORMAT, "%s: header does not start with a JSON object", path);
        goto done;
    }
    JsonObject* root = NULL;
    char what[512];
    snprintf(what, sizeof what, "%s: header", path);
    GError* ge = NULL;
    if (!mgl_json_parse_object(what, (const char*)map->data + 8, (size_t)hlen, &parser, &root, &ge)) {
        st = mgl_err_json(err, ge);
        goto done;
    }
    const uint8_t* data = map->data + 8 + hlen;
    uint64_t data_len = map->size - 8 - hlen;

    JsonObjectIter it;
    const char* name;
    JsonNode* node;
    json_object_iter_init(&it, root);
    while (json_object_iter_next(&it, &name, &node)) {
        if (strcmp(name, "__metadata__") == 0) {
            if (!JSON_NODE_HOLDS_OBJECT(node)) {
                st = mgl_err(err, MGL_E_FORMAT, "%s: \"__metadata__\" is not an object", path);
                goto done;
            }
            continue;
        }
        if (only && !g_hash_table_contains(only, name)) continue;
        st = parse_entry(path, map, data, data_len, name, node, set, err);
        if (st != MGL_OK) goto done;
    }
done:
    if (parser) g_object_unref(parser);
    mgl_map_unref(map);
    return st;
}

/* A sharded checkpoint, safetensors or torch.save shards:
 * {"metadata": {...}, "weight_map": {"tensor": "file"}}. */
static MglStatus load_index(const char* path, MglTensorSet* set, MglErr* err) {
    JsonParser* parser = NULL;
    JsonObject* root = NULL;
    GError* ge = NULL;
    if (!mgl_json_load_object(path, 64u << 20, &parser, &root, &ge)) return mgl_err_json(err, ge);
    MglStatus st = MGL_OK;
    JsonObject* wm = NULL;
    char* dir = g_path_get_dirname(path);
    GHashTable* files = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, (GDestroyNotify)g_hash_table_unref);
    if (!mgl_json_opt_object(root, "weight_map", &wm, path, &ge)) {
        st = mgl_err_json(err, ge);
        goto done;
    }
    if (!wm) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: missing \"weight_map\"", path);
        goto done;
    }

    JsonObjectIter it;
    const char* name;
    JsonNode* node;
    json_object_iter_init(&it, wm);
    while (json_object_iter_next(&it, &name, &node)) {
        if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_STRING) {
            st = mgl_err(err, MGL_E_FORMAT, "%s: weight_map[\"%s\"] is not a file name", path, name);
            goto done;
        }
        const char* file = json_node_get_string(node);
        if (file[0] == '/' || strstr(file, "..") || strchr(file, '/')) {
            st = mgl_err(err, MGL_E_FORMAT, "%s: weight_map[\"%s\"] = \"%s\" is not a plain file name", path, name,
                         file);
            goto done;
        }
        GHashTable* names = g_hash_table_lookup(files, file);
        if (!names) {
            names = g_hash_table_new(g_str_hash, g_str_equal);
            g_hash_table_insert(files, (gpointer)file, names);
        }
        g_hash_table_add(names, (gpointer)name);
    }
    GHashTableIter hit;
    gpointer k, v;
    g_hash_table_iter_init(&hit, files);
    while (g_hash_table_iter_next(&hit, &k, &v)) {
        char* shard = g_build_filename(dir, (const char*)k, NULL);
        /* HF shards are safetensors (only the listed names are taken) or
         * torch.save files (pytorch_model-0000k-of-0000n.bin) */
        st =
            g_str_has_suffix(shard, ".safetensors") ? load_single(shard, set, v, err) : mgl_torch_load(shard, set, err);
        g_free(shard);
        if (st != MGL_OK) goto done;
    }
    /* every tensor the index names must have been found in its shard */
    json_object_iter_init(&it, wm);
    while (json_object_iter_next(&it, &name, &node)) {
        if (!mgl_tset_get(set, name)) {
            st = mgl_err(err, MGL_E_FORMAT, "%s: tensor '%s' is listed in the index but missing from %s", path, name,
                         json_node_get_string(node));
            goto done;
        }
    }
done:
    g_hash_table_unref(files);
    g_free(dir);
    g_object_unref(parser);
    return st;
}

MglStatus mgl_safetensors_load(const char* path, MglTensorSet* set, MglErr* err) {
    if (g_str_has_suffix(path, ".index.json")) return load_index(path, set, err);
    return load_single(path, set, NULL, err);
}

/* ---- writer ----------------------------------------------------------- */

typedef struct {
    const MglTensor* t;
    MglDType out;
    size_t out_size;
    uint64_t off;
} WItem;

static int witem_cmp(const void* a, const void* b) {
    const WItem* x = a;
    const WItem* y = b;
    size_t sx = mgl_dtype_size(x->out), sy = mgl_dtype_size(y->out);
    if (sx != sy) return sx > sy ? -1 : 1; /* larger elements first keeps every tensor aligned */
    return strcmp(x->t->name, y->t->name);
}

/* Stream one tensor's elements, converted, to f. */
static MglStatus write_tensor(FILE* f, const WItem* w, const char* path, MglErr* err) {
    const MglTensor* t = w->t;
    int64_t n = mgl_tensor_numel(t);
    if (n == 0) return MGL_OK;
    size_t ies = mgl_dtype_size(t->dtype), oes = mgl_dtype_size(w->out);
    enum { CHUNK = 1 << 16 };
    uint8_t* in = malloc((size_t)CHUNK * ies);
    uint8_t* out = malloc((size_t)CHUNK * oes);
    if (!in || !out) {
        free(in);
        free(out);
        return mgl_err(err, MGL_E_NOMEM, "out of memory");
    }
    bool contig = mgl_tensor_is_contiguous(t);
    int64_t idx[MGL_MAX_DIMS] = {0};
    MglStatus st = MGL_OK;
    for (int64_t done = 0; done < n;) {
        int64_t m = n - done < CHUNK ? n - done : CHUNK;
        const uint8_t* src;
        if (contig)
            src = t->data + done * (int64_t)ies;
        else {
            for (int64_t i = 0; i < m; i++) {
                int64_t off = 0;
                for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
                memcpy(in + i * (int64_t)ies, t->data + off * (int64_t)ies, ies);
                for (int d = t->ndim - 1; d >= 0; d--) {
                    if (++idx[d] < t->shape[d]) break;
                    idx[d] = 0;
                }
            }
            src = in;
        }
        const uint8_t* wsrc = src;
        if (w->out != t->dtype) {
            mgl_convert_floats(src, t->dtype, out, w->out, (size_t)m);
            wsrc = out;
        }
        if (fwrite(wsrc, oes, (size_t)m, f) != (size_t)m) {
            st = mgl_err(err, MGL_E_IO, "%s: write failed: %s", path, strerror(errno));
            break;
        }
        done += m;
    }
    free(in);
    free(out);
    return st;
}

MglStatus mgl_safetensors_write(const char* path, const MglTensor* const* tensors, size_t n, int dtype,
                                const char* const* meta_kv, MglErr* err) {
    WItem* items = calloc(n ? n : 1, sizeof *items);
    if (!items) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        items[i].t = tensors[i];
        items[i].out = (dtype >= 0 && mgl_dtype_is_float(tensors[i]->dtype)) ? (MglDType)dtype : tensors[i]->dtype;
        /* the f16 scales of a quantized matrix (NAME_scale, mgl-quant.h) stay f16 */
        if (tensors[i]->dtype == MGL_DT_F16 && g_str_has_suffix(tensors[i]->name, "_scale")) items[i].out = MGL_DT_F16;
    }
    qsort(items, n, sizeof *items, witem_cmp);
    GString* h = g_string_new("{");
    bool first = true;
    if (meta_kv && meta_kv[0]) {
        g_string_append(h, "\"__metadata__\":{");
        for (size_t i = 0; meta_kv[i] && meta_kv[i + 1]; i += 2) {
            if (i) g_string_append_c(h, ',');
            mgl_json_append_string(h, meta_kv[i]);
            g_string_append_c(h, ':');
            mgl_json_append_string(h, meta_kv[i + 1]);
        }
        g_string_append_c(h, '}');
        first = false;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const MglTensor* t = items[i].t;
        uint64_t nb = (uint64_t)mgl_tensor_numel(t) * mgl_dtype_size(items[i].out);
        items[i].off = off;
        if (!first) g_string_append_c(h, ',');
        first = false;
        mgl_json_append_string(h, t->name);
        g_string_append_printf(h, ":{\"dtype\":\"%s\",\"shape\":[", mgl_dtype_name(items[i].out));
        for (int d = 0; d < t->ndim; d++) g_string_append_printf(h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        g_string_append_printf(h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                               (unsigned long long)(off + nb));
        off += nb;
    }
    g_string_append_c(h, '}');
    /* pad with spaces so the data section starts 64-byte aligned */
    while ((8 + h->len) % 64) g_string_append_c(h, ' ');

    MglStatus st = MGL_OK;
    char* tmp = g_strdup_printf("%s.partial", path);
    FILE* f = fopen(tmp, "wb");
    if (!f) {
        st = mgl_err(err, MGL_E_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    uint8_t hl[8];
    for (int i = 0; i < 8; i++) hl[i] = (uint8_t)((uint64_t)h->len >> (8 * i));
    if (fwrite(hl, 1, 8, f) != 8 || fwrite(h->str, 1, h->len, f) != h->len)
        st = mgl_err(err, MGL_E_IO, "%s: write failed: %s", tmp, strerror(errno));
    for (size_t i = 0; st == MGL_OK && i < n; i++) st = write_tensor(f, &items[i], tmp, err);
    if (fclose(f) != 0 && st == MGL_OK) st = mgl_err(err, MGL_E_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (st == MGL_OK && rename(tmp, path) != 0)
        st = mgl_err(err, MGL_E_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (st != MGL_OK) remove(tmp);
out:
    g_free(tmp);
    g_string_free(h, TRUE);
    free(items);
    return st;
}
