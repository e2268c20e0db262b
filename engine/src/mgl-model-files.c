/* mgl-model-files.c: open the four downloads of an MG-LLaVA deployment (or a
 * packed model), map their weights into one canonical name space, validate
 * every tensor the graph needs, and pack models with `mgllava convert`. */
#include "mgl-model-files.h"
#include "mgl-quant.h"
#include "mgl-weight-table.h"
#include "mgl-json.h"
#include "cpu/mgl-pool.h"

#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_file(const char* p) { return g_file_test(p, G_FILE_TEST_IS_REGULAR); }
static bool is_dir(const char* p) { return g_file_test(p, G_FILE_TEST_IS_DIR); }

/* First existing file among `names` inside `dir` (g_free), or NULL. */
static char* find_in(const char* dir, const char* const* names) {
    for (size_t i = 0; names[i]; i++) {
        char* p = g_build_filename(dir, names[i], NULL);
        if (is_file(p)) return p;
        g_free(p);
    }
    return NULL;
}

static const char* const k_hf_weights[] = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                           "pytorch_model.bin.index.json", NULL};
static const char* const k_oc_weights[] = {"open_clip_model.safetensors", "open_clip_pytorch_model.bin",
                                           "model.safetensors", "pytorch_model.bin", NULL};

typedef const char* (*RenameFn)(const char* name, void* ud, char* buf, size_t cap);

/* Load `path` and move the tensors `fn` keeps into `dst` under their new names. */
static MglStatus load_renamed(MglModelFiles* mf, const char* path, RenameFn fn, void* ud, MglErr* err) {
    MglTensorSet* tmp = mgl_tset_new();
    if (!tmp) return mgl_err(err, MGL_E_NOMEM, "out of memory");
    MglStatus st = mgl_weights_load(path, tmp, err);
    for (size_t i = 0; st == MGL_OK && i < tmp->n; i++) {
        char buf[512];
        const char* nn = fn(tmp->items[i].name, ud, buf, sizeof buf);
        if (!nn) continue;
        MglTensor t = tmp->items[i];
        t.name = strdup(nn);
        t.map = mgl_map_ref(t.map);
        st = mgl_tset_add(mf->weights, &t, err);
        if (st != MGL_OK) mgl_err_prefix(err, "%s", path);
    }
    mgl_tset_free(tmp);
    if (st == MGL_OK && mf->n_files < (int)G_N_ELEMENTS(mf->files)) {
        struct stat sb;
        int i = mf->n_files;
        if (stat(path, &sb) == 0) {
            mf->file_dev[i] = (uint64_t)sb.st_dev;
            mf->file_ino[i] = (uint64_t)sb.st_ino;
            mf->file_size[i] = (uint64_t)sb.st_size;
            mf->file_mtime_ns[i] = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        }
        mf->files[mf->n_files++] = strdup(path);
    }
    return st;
}

static const char* rn_clip(const char* n, void* ud, char* buf, size_t cap) {
    if (!g_str_has_prefix(n, "vision_model.") || g_str_has_suffix(n, "position_ids")) return NULL;
    snprintf(buf, cap, "clip.%s", n);
    return buf;
}

static const char* rn_convnext(const char* n, void* ud, char* buf, size_t cap) {
    const char* pre = "visual.trunk.";
    if (!g_str_has_prefix(n, pre)) return NULL;
    const char* rest = n + strlen(pre);
    if (!g_str_has_prefix(rest, "stem.") && !g_str_has_prefix(rest, "stages.")) return NULL;
    snprintf(buf, cap, "convnext.%s", rest);
    return buf;
}

static const char* rn_checkpoint(const char* n, void* ud, char* buf, size_t cap) {
    bool skip_llm = *(bool*)ud;
    if (g_str_has_prefix(n, "llm.")) return skip_llm ? NULL : n;
    if (g_str_has_prefix(n, "projector.") || g_str_has_prefix(n, "bbox_projector.") ||
        g_str_has_prefix(n, "fuse_module."))
        return n;
    return NULL;
}

static const char* rn_llm(const char* n, void* ud, char* buf, size_t cap) {
    if (!g_str_has_prefix(n, "model.") && strcmp(n, "lm_head.weight") != 0) return NULL;
    snprintf(buf, cap, "llm.%s", n);
    return buf;
}

static const char* rn_keep(const char* n, void* ud, char* buf, size_t cap) { return n; }

MglStatus mgl_model_files_check(const MglModelFiles* mf, MglErr* err) {
    for (int i = 0; i < mf->n_files; i++) {
        struct stat sb;
        if (stat(mf->files[i], &sb) != 0)
            return mgl_err(err, MGL_E_IO, "%s: weight file disappeared since the model was loaded; reload the model",
                           mf->files[i]);
        int64_t mt = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        if ((uint64_t)sb.st_size != mf->file_size[i] || (uint64_t)sb.st_ino != mf->file_ino[i] ||
            (uint64_t)sb.st_dev != mf->file_dev[i] || mt != mf->file_mtime_ns[i])
            return mgl_err(err, MGL_E_IO,
                           "%s: weight file changed on disk since the model was loaded (%llu -> %llu bytes); "
                           "reload the model",
                           mf->files[i], (unsigned long long)mf->file_size[i], (unsigned long long)sb.st_size);
    }
    return MGL_OK;
}

void mgl_model_files_free(MglModelFiles* mf) {
    if (!mf) return;
    mgl_manifest_clear(&mf->man);
    mgl_tset_free(mf->weights);
    free(mf->tokenizer_path);
    free(mf->cnx_config_path);
    for (int i = 0; i < mf->n_files; i++) free(mf->files[i]);
    free(mf);
}

/* ConvNeXt depths and dims from the tensors themselves (tiny test models
 * use names timm does not know). */
static MglStatus convnext_shape_from_weights(MglModelFiles* mf, MglErr* err) {
    for (int s = 0; s < 4; s++) {
        char n[128];
        snprintf(n, sizeof n, "convnext.stages.%d.blocks.0.conv_dw.weight", s);
        const MglTensor* t = mgl_tset_get(mf->weights, n);
        if (!t || t->ndim != 4 || t->shape[0] < 1)
            return mgl_err(err, MGL_E_FORMAT, "convnext: missing or malformed tensor '%s'", n);
        int depth = 0;
        for (;;) {
            snprintf(n, sizeof n, "convnext.stages.%d.blocks.%d.conv_dw.weight", s, depth);
            if (!mgl_tset_get(mf->weights, n)) break;
            depth++;
        }
        int known_d = mf->cnx.depths[s], known_c = mf->cnx.dims[s];
        if (known_d && (known_d != depth || known_c != t->shape[0]))
            return mgl_err(err, MGL_E_FORMAT, "convnext: stage %d has %d blocks of %lld channels but %s has %d of %d",
                           s, depth, (long long)t->shape[0], mf->cnx.timm_model, known_d, known_c);
        mf->cnx.depths[s] = depth;
        mf->cnx.dims[s] = (int)t->shape[0];
    }
    return MGL_OK;
}

MglStatus mgl_model_files_open(const char* path, MglModelFiles** out, MglErr* err) {
    *out = NULL;
    char* manifest = is_dir(path) ? g_build_filename(path, "mgllava.json", NULL) : g_strdup(path);
    if (!is_file(manifest)) {
        MglStatus s =
            g_file_test(manifest, G_FILE_TEST_EXISTS)
                ? mgl_err(err, MGL_E_IO, "%s: not a regular file", manifest)
                : mgl_err(err, MGL_E_IO, "%s: no mgllava.json manifest here (see docs/model-format.md)", path);
        g_free(manifest);
        return s;
    }
    MglModelFiles* mf = calloc(1, sizeof *mf);
    mf->weights = mgl_tset_new();
    MglStatus st = mgl_manifest_load(manifest, &mf->man, err);
    g_free(manifest);
    if (st != MGL_OK) goto fail;
    MglManifest* m = &mf->man;

    /* configs */
    char* p = is_dir(m->clip) ? g_build_filename(m->clip, "config.json", NULL) : g_strdup(m->clip);
    st = mgl_clip_config_load(p, &mf->clip, err);
    g_free(p);
    if (st != MGL_OK) goto fail;
    if (m->convnext) {
        char* dir = is_dir(m->convnext) ? g_strdup(m->convnext) : g_path_get_dirname(m->convnext);
        char* c = g_build_filename(dir, "open_clip_config.json", NULL);
        if (is_file(c)) {
            st = mgl_convnext_config_load(c, &mf->cnx, err);
            mf->has_cnx_config = st == MGL_OK;
            mf->cnx_config_path = strdup(c);
        }
        g_free(c);
        g_free(dir);
        if (st != MGL_OK) goto fail;
    }
    if (!is_dir(m->llm)) {
        st = mgl_err(err, MGL_E_IO, "%s: LLM folder not found", m->llm);
        goto fail;
    }
    p = g_build_filename(m->llm, "config.json", NULL);
    st = mgl_llm_config_load(p, &mf->llm, err);
    g_free(p);
    if (st != MGL_OK) goto fail;
    mf->tokenizer_path = strdup(m->llm);

    /* weights */
    if (m->packed) {
        for (char** w = m->packed_weights; *w && st == MGL_OK; w++) st = load_renamed(mf, *w, rn_keep, NULL, err);
        if (st != MGL_OK) goto fail;
    } else {
        char* w = is_dir(m->clip) ? find_in(m->clip, k_hf_weights) : NULL;
        if (!w) {
            st = mgl_err(err, MGL_E_IO, "%s: no CLIP weights (model.safetensors or pytorch_model.bin)", m->clip);
            goto fail;
        }
        st = load_renamed(mf, w, rn_clip, NULL, err);
        g_free(w);
        if (st != MGL_OK) goto fail;
        w = is_dir(m->convnext) ? find_in(m->convnext, k_oc_weights) : g_strdup(m->convnext);
        if (!w) {
            st = mgl_err(err, MGL_E_IO,
                         "%s: no ConvNeXt weights (open_clip_pytorch_model.bin or open_clip_model.safetensors)",
                         m->convnext);
            goto fail;
        }
        st = load_renamed(mf, w, rn_convnext, NULL, err);
        g_free(w);
        if (st != MGL_OK) goto fail;
        bool skip_llm = m->llm_weights_from_llm_folder;
        if ((st = load_renamed(mf, m->checkpoint, rn_checkpoint, &skip_llm, err)) != MGL_OK) goto fail;
        if (m->llm_weights_from_llm_folder) {
            w = find_in(m->llm, k_hf_weights);
            if (!w) {
                st = mgl_err(err, MGL_E_IO, "%s: llm_weights is \"llm\" but the folder has no weights", m->llm);
                goto fail;
            }
            st = load_renamed(mf, w, rn_llm, NULL, err);
            g_free(w);
            if (st != MGL_OK) goto fail;
        }
    }
    if ((st = convnext_shape_from_weights(mf, err)) != MGL_OK) goto fail;
    *out = mf;
    return MGL_OK;
fail:
    mgl_model_files_free(mf);
    return st;
}

/* ---- validation ------------------------------------------------------- */

typedef struct {
    MglTensorSet* set;
    int missing;
    int bad;
    char first[400];
    char first_file[300]; /* the file of the first problem (a wrong tensor's; else the model folder) */
    /* names the graph uses (when non-NULL) */
    GHashTable* used;
    /* synthesis: create each missing tensor with random values instead of failing */
    bool create;
    MglDType dtype;
    uint64_t rng;
    size_t bytes;
} Check;

static uint64_t synth_next(uint64_t* s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

enum { SYNTH_CHUNK = 4096 };

typedef struct {
    uint64_t key;
    float base, scale;
    MglDType dtype;
    uint8_t* out;
    int64_t n;
} SynthFill;

static void synth_fill_range(void* ctx, int64_t begin, int64_t end) {
    const SynthFill* f = ctx;
    size_t es = mgl_dtype_size(f->dtype);
    float tmp[SYNTH_CHUNK];
    for (int64_t ch = begin; ch < end; ch++) {
        int64_t i = ch * SYNTH_CHUNK, k = f->n - i < SYNTH_CHUNK ? f->n - i : SYNTH_CHUNK;
        for (int64_t j = 0; j < k; j++) {
            uint64_t s = f->key + (uint64_t)(i + j) * 0x9e3779b97f4a7c15ull;
            tmp[j] = f->base + f->scale * ((float)(synth_next(&s) >> 40) / 8388608.0f - 1.0f);
        }
        mgl_convert_floats(tmp, MGL_DT_F32, f->out + (size_t)i * es, f->dtype, (size_t)k);
    }
}

/* A heap tensor of uniform noise: norms around 1, matrices scaled by 1/sqrt(fan-in). */
static void synth_tensor(Check* c, const char* name, int ndim, const int64_t* shape) {
    MglTensor t = {0};
    t.name = strdup(name);
    t.dtype = c->dtype;
    t.ndim = ndim;
    int64_t n = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = n;
        n *= shape[i];
    }
    size_t es = mgl_dtype_size(c->dtype);
    MglMap* m = calloc(1, sizeof *m);
    uint8_t* buf = malloc((size_t)n * es);
    m->path = strdup("(synthetic)");
    m->data = buf;
    m->size = (size_t)n * es;
    m->refcount = 1;
    bool norm =
        strstr(name, "norm") || strstr(name, "layrnorm") || strstr(name, "stem.1.") || strstr(name, "downsample.0.");
    float scale = ndim >= 2 ? 1.0f / sqrtf((float)(n / shape[0])) : 0.02f;
    float base = norm && g_str_has_suffix(name, ".weight") ? 1.0f : 0.0f;
    /* counter-based noise (value i = hash(tensor key + i)), so the chunks fill in parallel: a
     * 7B-parameter synthetic model takes seconds on a many-core machine instead of minutes */
    SynthFill sf = {.key = synth_next(&c->rng), .base = base, .scale = scale, .dtype = c->dtype, .out = buf, .n = n};
    mgl_parallel_for((n + SYNTH_CHUNK - 1) / SYNTH_CHUNK, 16, synth_fill_range, &sf);
    t.data = buf;
    t.map = m;
    c->bytes += m->size;
    mgl_tset_add(c->set, &t, NULL);
}

static void need(Check* c, const char* name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    if (c->used) g_hash_table_add(c->used, g_strdup(name));
    const MglTensor* t = mgl_tset_get(c->set, name);
    int64_t want[4] = {d0, d1, d2, d3};
    if (!t && c->create) {
        synth_tensor(c, name, ndim, want);
        return;
    }
    if (!t) {
        if (!c->missing && !c->bad) snprintf(c->first, sizeof c->first, "missing tensor '%s'", name);
        if (!c->missing && !c->bad) c->first_file[0] = 0;
        c->missing++;
        return;
    }
    if (ndim == 2 && mgl_quant_dtype(t->dtype)) { /* q8/q4 and its scales (mgl-quant.h) */
        char msg[400], sname[200];
        mgl_quant_scale_name(name, sname, sizeof sname);
        if (c->used) g_hash_table_add(c->used, g_strdup(sname));
        if (!mgl_quant_view(c->set, t, d0, d1, NULL, msg, sizeof msg)) {
            if (!c->missing && !c->bad) {
                snprintf(c->first, sizeof c->first, "%s", msg);
                snprintf(c->first_file, sizeof c->first_file, "%s", t->map && t->map->path ? t->map->path : "");
            }
            c->bad++;
        }
        return;
    }
    bool ok = t->ndim == ndim && mgl_dtype_is_float(t->dtype);
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        if (!c->missing && !c->bad) {
            char got[128] = "", exp[128] = "";
            size_t g = 0, e = 0;
            for (int i = 0; i < t->ndim; i++)
                g += (size_t)snprintf(got + g, sizeof got - g, i ? ",%lld" : "%lld", (long long)t->shape[i]);
            for (int i = 0; i < ndim; i++)
                e += (size_t)snprintf(exp + e, sizeof exp - e, i ? ",%lld" : "%lld", (long long)want[i]);
            snprintf(c->first, sizeof c->first, "tensor '%s' is %s [%s], expected a float tensor [%s]", name,
                     mgl_dtype_name(t->dtype), got, exp);
            snprintf(c->first_file, sizeof c->first_file, "%s", t->map && t->map->path ? t->map->path : "");
        }
        c->bad++;
    }
}

static MglStatus check_all(MglModelFiles* mf, Check* cp, MglErr* err);

MglStatus mgl_model_files_validate(MglModelFiles* mf, MglErr* err) {
    Check c = {.set = mf->weights};
    return check_all(mf, &c, err);
}

MglStatus mgl_model_files_synthesize(MglModelFiles* mf, MglDType dtype, uint64_t seed, MglErr* err) {
    Check c = {.set = mf->weights, .create = true, .dtype = dtype, .rng = seed};
    return check_all(mf, &c, err);
}

static bool check_item(const MglWeightItem* it, void* user) {
    const int64_t* d = it->shape;
    need(user, it->name, it->ndim, d[0], it->ndim > 1 ? d[1] : 0, it->ndim > 2 ? d[2] : 0, it->ndim > 3 ? d[3] : 0);
    return true;
}

/* Every row of the weight table (mgl-weight-table.h) at the shapes the configs imply. */
static MglStatus check_all(MglModelFiles* mf, Check* cp, MglErr* err) {
    Check c = *cp;
    const MglTensor* g0 = mgl_tset_get(mf->weights, "fuse_module.gate.0.weight");
    mf->fuse_dim = mf->clip.hidden;
    mf->gate_hidden = g0 && g0->ndim == 2 ? (int)g0->shape[0] : mf->clip.hidden / 2;
    mgl_weight_walk(mf, check_item, &c);
    if (c.missing || c.bad) {
        /* name the file the wrong tensor is in, or the model folder a tensor is missing from */
        const char* where = c.first_file[0] ? c.first_file : mf->man.dir ? mf->man.dir : "model";
        return mgl_err(err, MGL_E_FORMAT, "%s: %s (%d missing, %d with a wrong shape or dtype)", where, c.first,
                       c.missing, c.bad);
    }
    return MGL_OK;
}

/* ---- summary ---------------------------------------------------------- */

static void human_bytes(char* buf, size_t cap, uint64_t b) {
    if (b >= (1ull << 30))
        snprintf(buf, cap, "%.2f GiB", (double)b / (1ull << 30));
    else if (b >= (1ull << 20))
        snprintf(buf, cap, "%.2f MiB", (double)b / (1ull << 20));
    else if (b >= 1024)
        snprintf(buf, cap, "%.1f KiB", (double)b / 1024);
    else
        snprintf(buf, cap, "%llu B", (unsigned long long)b);
}

static void component_stats(GString* s, const MglTensorSet* set, const char* const* prefixes) {
    size_t count[MGL_DT_COUNT] = {0}, n = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < set->n; i++) {
        bool hit = false;
        for (size_t k = 0; prefixes[k] && !hit; k++) hit = g_str_has_prefix(set->items[i].name, prefixes[k]);
        if (!hit) continue;
        n++;
        count[set->items[i].dtype]++;
        bytes += mgl_tensor_nbytes(&set->items[i]);
    }
    char hb[32];
    human_bytes(hb, sizeof hb, bytes);
    g_string_append_printf(s, "              %zu tensors, %s (", n, hb);
    bool first = true;
    for (int d = 0; d < MGL_DT_COUNT; d++) {
        if (!count[d]) continue;
        g_string_append_printf(s, "%s%s x%zu", first ? "" : ", ", mgl_dtype_name((MglDType)d), count[d]);
        first = false;
    }
    g_string_append(s, ")\n");
}

char* mgl_model_files_describe(const MglModelFiles* mf) {
    GString* s = g_string_new(NULL);
    const MglManifest* m = &mf->man;
    g_string_append_printf(s, "model         %s%s%s\n", m->dir, m->name ? "  " : "", m->name ? m->name : "");
    g_string_append_printf(s, "form          %s\n",
                           m->packed ? "packed (mgllava convert)" : "manifest of the original downloads");
    if (m->packed) g_string_append_printf(s, "dtype         %s\n", m->packed_dtype);
    char* quant = mgl_quant_describe(mf->weights);
    if (quant) g_string_append_printf(s, "quantized     %s\n", quant);
    g_free(quant);
    g_string_append_printf(s, "template      %s\n", m->template_name);
    for (int i = 0; i < mf->n_files; i++) g_string_append_printf(s, "weights file  %s\n", mf->files[i]);
    const MglClipConfig* c = &mf->clip;
    g_string_append_printf(s,
                           "clip          ViT: %d layers (features after layer %d), hidden %d, %d heads, mlp %d, "
                           "%d px / patch %d = %d tokens, %s, eps %g\n",
                           c->n_layers, c->n_layers - 1, c->hidden, c->n_heads, c->intermediate, c->image_size,
                           c->patch_size, (c->image_size / c->patch_size) * (c->image_size / c->patch_size), c->act,
                           (double)c->ln_eps);
    component_stats(s, mf->weights, (const char* const[]){"clip.", NULL});
    const MglConvNextConfig* x = &mf->cnx;
    g_string_append_printf(s, "convnext      %s: depths %d,%d,%d,%d, dims %d,%d,%d,%d (multi-scale map %d channels)\n",
                           x->timm_model[0] ? x->timm_model : "(no open_clip_config.json)", x->depths[0], x->depths[1],
                           x->depths[2], x->depths[3], x->dims[0], x->dims[1], x->dims[2], x->dims[3],
                           x->dims[0] + x->dims[1] + x->dims[2] + x->dims[3]);
    component_stats(s, mf->weights, (const char* const[]){"convnext.", NULL});
    g_string_append_printf(
        s, "mg-llava      fusion %d+%d -> gate %d -> 1; projector %d->%d->%d; bbox_projector %d->%d->%d\n", x->dims[3],
        mf->fuse_dim, mf->gate_hidden, mf->fuse_dim, mf->llm.hidden, mf->llm.hidden,
        x->dims[0] + x->dims[1] + x->dims[2] + x->dims[3], mf->llm.hidden, mf->llm.hidden);
    component_stats(s, mf->weights, (const char* const[]){"fuse_module.", "projector.", "bbox_projector.", NULL});
    const MglLlmConfig* L = &mf->llm;
    g_string_append_printf(s,
                           "llm           %s: %d layers, hidden %d, %d heads / %d kv (head %d), ffn %d, vocab %d, "
                           "rope theta %g, rms eps %g, max pos %d%s\n",
                           L->arch_name, L->n_layers, L->hidden, L->n_heads, L->n_kv_heads, L->head_dim,
                           L->intermediate, L->vocab, (double)L->rope_theta, (double)L->rms_eps, L->max_pos,
                           L->tie_embeddings ? ", tied embeddings" : "");
    component_stats(s, mf->weights, (const char* const[]){"llm.", NULL});
    g_string_append_printf(s, "tokenizer     %s\n", mf->tokenizer_path);
    uint64_t total = 0;
    for (size_t i = 0; i < mf->weights->n; i++) total += mgl_tensor_nbytes(&mf->weights->items[i]);
    char hb[32];
    human_bytes(hb, sizeof hb, total);
    g_string_append_printf(s, "total         %zu tensors, %s\n", mf->weights->n, hb);
    return g_string_free(s, FALSE);
}

/* ---- convert ---------------------------------------------------------- */

static MglStatus copy_file(const char* src, const char* dst, MglErr* err) {
    char* data = NULL;
    size_t len = 0;
    MGL_TRY(mgl_read_file(src, 256u << 20, &data, &len, err));
    GError* ge = NULL;
    MglStatus st = MGL_OK;
    if (!g_file_set_contents(dst, data, (gssize)len, &ge)) {
        st = mgl_err(err, MGL_E_IO, "%s: cannot write: %s", dst, ge ? ge->message : "?");
        g_clear_error(&ge);
    }
    free(data);
    return st;
}

static MglStatus mkdir_p(const char* d, MglErr* err) {
    if (g_mkdir_with_parents(d, 0755) != 0)
        return mgl_err(err, MGL_E_IO, "%s: cannot create folder: %s", d, strerror(errno));
    return MGL_OK;
}

static int tensor_name_cmp(const void* a, const void* b) {
    const MglTensor* const* x = a;
    const MglTensor* const* y = b;
    return strcmp((*x)->name, (*y)->name);
}

static MglStatus write_packed(MglModelFiles* mf, const char* out_dir, MglDType dtype, const char* tokenizer_src,
                              MglErr* err);

MglStatus mgl_model_convert(const char* model_path, const char* out_dir, MglDType dtype, MglErr* err) {
    if (dtype != MGL_DT_F16 && dtype != MGL_DT_BF16 && dtype != MGL_DT_F32)
        return mgl_err(err, MGL_E_INVALID, "convert: dtype must be f16, bf16 or f32");
    MglModelFiles* mf = NULL;
    MGL_TRY(mgl_model_files_open(model_path, &mf, err));
    MglStatus st = mgl_model_files_validate(mf, err);
    if (st == MGL_OK) st = write_packed(mf, out_dir, dtype, mf->man.llm, err);
    mgl_model_files_free(mf);
    return st;
}

MglStatus mgl_model_files_save_packed(MglModelFiles* mf, const char* out_dir, MglDType dtype, const char* tokenizer_dir,
                                      MglErr* err) {
    return write_packed(mf, out_dir, dtype, tokenizer_dir, err);
}

static MglStatus write_text(const char* path, const char* text, MglErr* err) {
    GError* ge = NULL;
    if (!g_file_set_contents(path, text, -1, &ge)) {
        MglStatus st = mgl_err(err, MGL_E_IO, "%s: cannot write: %s", path, ge ? ge->message : "?");
        g_clear_error(&ge);
        return st;
    }
    return MGL_OK;
}

/* Configs of a model that has no source files (synthetic benchmarks). */
static MglStatus write_configs_from_structs(const MglModelFiles* mf, const char* out_dir, MglErr* err) {
    const MglClipConfig* c = &mf->clip;
    const MglLlmConfig* l = &mf->llm;
    char* clip =
        g_strdup_printf("{\"architectures\": [\"CLIPVisionModel\"], \"model_type\": \"clip_vision_model\", "
                        "\"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
                        "\"intermediate_size\": %d, \"image_size\": %d, \"patch_size\": %d, \"num_channels\": %d, "
                        "\"layer_norm_eps\": %g, \"hidden_act\": \"%s\"}\n",
                        c->hidden, c->n_layers, c->n_heads, c->intermediate, c->image_size, c->patch_size,
                        c->n_channels, (double)c->ln_eps, c->act);
    char* llm = g_strdup_printf("{\"architectures\": [\"%s\"], \"model_type\": \"%s\", \"hidden_size\": %d, "
                                "\"num_hidden_layers\": %d, \"num_attention_heads\": %d, \"num_key_value_heads\": %d, "
                                "\"intermediate_size\": %d, \"vocab_size\": %d, \"max_position_embeddings\": %d, "
                                "\"rms_norm_eps\": %g, \"rope_theta\": %.1f, \"tie_word_embeddings\": %s, "
                                "\"bos_token_id\": %d, \"eos_token_id\": %d, \"hidden_act\": \"silu\"}\n",
                                l->arch == MGL_LLM_PHI3 ? "Phi3ForCausalLM" : "LlamaForCausalLM",
                                l->arch == MGL_LLM_PHI3 ? "phi3" : "llama", l->hidden, l->n_layers, l->n_heads,
                                l->n_kv_heads, l->intermediate, l->vocab, l->max_pos, (double)l->rms_eps,
                                (double)l->rope_theta, l->tie_embeddings ? "true" : "false", l->bos_id, l->eos_ids[0]);
    char* d1 = g_build_filename(out_dir, "clip", NULL);
    char* d2 = g_build_filename(out_dir, "llm", NULL);
    char* f1 = g_build_filename(d1, "config.json", NULL);
    char* f2 = g_build_filename(d2, "config.json", NULL);
    MglStatus st = mkdir_p(d1, err);
    if (st == MGL_OK) st = mkdir_p(d2, err);
    if (st == MGL_OK) st = write_text(f1, clip, err);
    if (st == MGL_OK) st = write_text(f2, llm, err);
    g_free(clip);
    g_free(llm);
    g_free(d1);
    g_free(d2);
    g_free(f1);
    g_free(f2);
    return st;
}

static MglStatus write_packed(MglModelFiles* mf, const char* out_dir, MglDType dtype, const char* tokenizer_src,
                              MglErr* err) {
    if (dtype != MGL_DT_F16 && dtype != MGL_DT_BF16 && dtype != MGL_DT_F32)
        return mgl_err(err, MGL_E_INVALID, "convert: dtype must be f16, bf16 or f32");
    MglStatus st = MGL_OK;
    const MglTensor** list = NULL;
    GString* man = NULL;
    char *sub = NULL, *quant = NULL;
    GPtrArray* shards = g_ptr_array_new_with_free_func(g_free);
    if ((st = mkdir_p(out_dir, err)) != MGL_OK) goto done;

    /* configs and tokenizer */
    static const char* const llm_files[] = {"config.json",
                                            "tokenizer.json",
                                            "tokenizer.model",
                                            "tokenizer_config.json",
                                            "special_tokens_map.json",
                                            "generation_config.json",
                                            NULL};
    sub = g_build_filename(out_dir, "llm", NULL);
    if ((st = mkdir_p(sub, err)) != MGL_OK) goto done;
    if (!mf->man.clip) st = write_configs_from_structs(mf, out_dir, err);
    for (int i = 0; llm_files[i] && st == MGL_OK; i++) {
        if (!mf->man.clip && i == 0) continue; /* config.json written from the structs */
        if (!tokenizer_src) break;
        char* src = g_build_filename(i == 0 ? mf->man.llm : tokenizer_src, llm_files[i], NULL);
        char* dst = g_build_filename(sub, llm_files[i], NULL);
        if (is_file(src)) st = copy_file(src, dst, err);
        g_free(src);
        g_free(dst);
    }
    g_free(sub);
    sub = g_build_filename(out_dir, "clip", NULL);
    if (st == MGL_OK) st = mkdir_p(sub, err);
    if (st == MGL_OK && mf->man.clip) {
        char* src = is_dir(mf->man.clip) ? g_build_filename(mf->man.clip, "config.json", NULL) : g_strdup(mf->man.clip);
        char* dst = g_build_filename(sub, "config.json", NULL);
        st = copy_file(src, dst, err);
        g_free(src);
        g_free(dst);
    }
    g_free(sub);
    sub = NULL;
    if (st == MGL_OK && mf->cnx_config_path) {
        sub = g_build_filename(out_dir, "convnext", NULL);
        st = mkdir_p(sub, err);
        char* dst = g_build_filename(sub, "open_clip_config.json", NULL);
        if (st == MGL_OK) st = copy_file(mf->cnx_config_path, dst, err);
        g_free(dst);
    }
    if (st != MGL_OK) goto done;

    /* the weights the graph uses (anything else a checkpoint carries is left
     * behind), sorted by name, sharded at 4 GiB */
    GHashTable* used = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    {
        Check uc = {.set = mf->weights, .used = used};
        check_all(mf, &uc, NULL);
        if (mf->llm.tie_embeddings && mgl_tset_get(mf->weights, MGL_QUANT_TIED_HEAD)) { /* mgl-quant.h */
            g_hash_table_add(used, g_strdup(MGL_QUANT_TIED_HEAD));
            g_hash_table_add(used, g_strdup(MGL_QUANT_TIED_HEAD "_scale"));
        }
    }
    size_t n = 0;
    list = malloc((mf->weights->n ? mf->weights->n : 1) * sizeof *list);
    for (size_t i = 0; i < mf->weights->n; i++)
        if (g_hash_table_contains(used, mf->weights->items[i].name)) list[n++] = &mf->weights->items[i];
    g_hash_table_unref(used);
    qsort(list, n, sizeof *list, tensor_name_cmp);
    const uint64_t shard_max = 4ull << 30;
    size_t start = 0;
    GArray* bounds = g_array_new(FALSE, FALSE, sizeof(size_t));
    uint64_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t b = (uint64_t)mgl_tensor_numel(list[i]) *
                     mgl_dtype_size(mgl_dtype_is_float(list[i]->dtype) ? dtype : list[i]->dtype);
        if (acc > 0 && acc + b > shard_max) {
            g_array_append_val(bounds, i);
            acc = 0;
        }
        acc += b;
    }
    g_array_append_val(bounds, n);
    const char* dname = dtype == MGL_DT_F16 ? "f16" : dtype == MGL_DT_BF16 ? "bf16" : "f32";
    quant = mgl_quant_describe(mf->weights); /* q8/q4 tensors (mgl-quant.h), or NULL */
    const char* meta[] = {"format", "mgllava-packed", "dtype", dname, quant ? "quant" : NULL, quant, NULL};
    for (guint k = 0; k < bounds->len && st == MGL_OK; k++) {
        size_t end = g_array_index(bounds, size_t, k);
        char* fname = bounds->len == 1 ? g_strdup("model.safetensors")
                                       : g_strdup_printf("model-%05u-of-%05u.safetensors", k + 1, bounds->len);
        char* fpath = g_build_filename(out_dir, fname, NULL);
        st = mgl_safetensors_write(fpath, list + start, end - start, (int)dtype, meta, err);
        g_free(fpath);
        g_ptr_array_add(shards, fname);
        start = end;
    }
    g_array_free(bounds, TRUE);
    if (st != MGL_OK) goto done;

    man = g_string_new("{\n  \"mgllava\": 1,\n");
    if (mf->man.name) {
        g_string_append(man, "  \"name\": ");
        mgl_json_append_string(man, mf->man.name);
        g_string_append(man, ",\n");
    }
    g_string_append(man, "  \"template\": ");
    mgl_json_append_string(man, mf->man.template_name);
    g_string_append_printf(man, ",\n  \"clip\": \"clip\",\n%s  \"llm\": \"llm\",\n",
                           mf->cnx_config_path ? "  \"convnext\": \"convnext\",\n" : "");
    if (mf->man.limit_num) g_string_append_printf(man, "  \"limit_num\": %d,\n", mf->man.limit_num);
    if (mf->man.object_order == MGL_OBJECT_ORDER_READING) g_string_append(man, "  \"object_order\": \"reading\",\n");
    g_string_append_printf(man, "  \"max_new_tokens\": %d,\n", mf->man.max_new_tokens);
    g_string_append_printf(man, "  \"packed\": {\"dtype\": \"%s\", ", dname);
    if (quant) {
        g_string_append(man, "\"quant\": ");
        mgl_json_append_string(man, quant);
        g_string_append(man, ", ");
    }
    g_string_append(man, "\"weights\": [");
    for (guint k = 0; k < shards->len; k++)
        g_string_append_printf(man, "%s\"%s\"", k ? ", " : "", (const char*)g_ptr_array_index(shards, k));
    g_string_append(man, "]}\n}\n");
    char* mpath = g_build_filename(out_dir, "mgllava.json", NULL);
    GError* ge = NULL;
    if (!g_file_set_contents(mpath, man->str, (gssize)man->len, &ge)) {
        st = mgl_err(err, MGL_E_IO, "%s: cannot write: %s", mpath, ge ? ge->message : "?");
        g_clear_error(&ge);
    }
    g_free(mpath);
done:
    g_free(quant);
    if (man) g_string_free(man, TRUE);
    g_free(sub);
    g_ptr_array_unref(shards);
    free(list);
    return st;
}
