/* mgl-config.c: readers for HF config.json (CLIP vision, Llama-family, Phi-3),
 * OpenCLIP open_clip_config.json and the mgllava.json manifest.
 *
 * Defaults are the upstream class defaults, because HF serialises only the
 * fields that differ from them (the CLIP-L/336 vision_config has no
 * hidden_act: it is quick_gelu by default). */
#include "mgl-config.h"
#include "mgl-json.h"

#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG_MAX_BYTES (16u << 20)

/* common/'s mgl_json_* report a GError; the readers here an MglErr */
static MglStatus json_load_object(const char* path, size_t max, JsonParser** p, JsonObject** root, MglErr* err) {
    GError* ge = NULL;
    return mgl_json_load_object(path, max, p, root, &ge) ? MGL_OK : mgl_err_json(err, ge);
}
static MglStatus json_opt_int(JsonObject* o, const char* key, int64_t* out, const char* what, MglErr* err) {
    GError* ge = NULL;
    return mgl_json_opt_int(o, key, out, what, &ge) ? MGL_OK : mgl_err_json(err, ge);
}
static MglStatus json_opt_double(JsonObject* o, const char* key, double* out, const char* what, MglErr* err) {
    GError* ge = NULL;
    return mgl_json_opt_double(o, key, out, what, &ge) ? MGL_OK : mgl_err_json(err, ge);
}
static MglStatus json_opt_bool(JsonObject* o, const char* key, bool* out, const char* what, MglErr* err) {
    GError* ge = NULL;
    return mgl_json_opt_bool(o, key, out, what, &ge) ? MGL_OK : mgl_err_json(err, ge);
}
static MglStatus json_opt_str(JsonObject* o, const char* key, const char** out, const char* what, MglErr* err) {
    GError* ge = NULL;
    return mgl_json_opt_str(o, key, out, what, &ge) ? MGL_OK : mgl_err_json(err, ge);
}
static MglStatus json_opt_object(JsonObject* o, const char* key, JsonObject** out, const char* what, MglErr* err) {
    GError* ge = NULL;
    return mgl_json_opt_object(o, key, out, what, &ge) ? MGL_OK : mgl_err_json(err, ge);
}
static MglStatus json_req_int(JsonObject* o, const char* key, int64_t* out, const char* what, MglErr* err) {
    GError* ge = NULL;
    return mgl_json_req_int(o, key, out, what, &ge) ? MGL_OK : mgl_err_json(err, ge);
}
static MglStatus json_req_str(JsonObject* o, const char* key, const char** out, const char* what, MglErr* err) {
    GError* ge = NULL;
    return mgl_json_req_str(o, key, out, what, &ge) ? MGL_OK : mgl_err_json(err, ge);
}

static MglStatus get_int(JsonObject* o, const char* key, int* out, int lo, int hi, const char* what, MglErr* err) {
    int64_t v = *out;
    MGL_TRY(json_opt_int(o, key, &v, what, err));
    if (v < lo || v > hi)
        return mgl_err(err, MGL_E_FORMAT, "%s: \"%s\" = %lld is out of range [%d, %d]", what, key, (long long)v, lo,
                       hi);
    *out = (int)v;
    return MGL_OK;
}

static MglStatus get_float(JsonObject* o, const char* key, float* out, double lo, double hi, const char* what,
                           MglErr* err) {
    double v = *out;
    MGL_TRY(json_opt_double(o, key, &v, what, err));
    if (!(v >= lo && v <= hi))
        return mgl_err(err, MGL_E_FORMAT, "%s: \"%s\" = %g is out of range [%g, %g]", what, key, v, lo, hi);
    *out = (float)v;
    return MGL_OK;
}

static void copy_str(char* dst, size_t cap, const char* src) { snprintf(dst, cap, "%s", src ? src : ""); }

/* ---- CLIP ------------------------------------------------------------- */

MglStatus mgl_clip_config_load(const char* path, MglClipConfig* c, MglErr* err) {
    JsonParser* p = NULL;
    JsonObject* root = NULL;
    MGL_TRY(json_load_object(path, CFG_MAX_BYTES, &p, &root, err));
    MglStatus st = MGL_OK;
    JsonObject* v = NULL;
    /* a full CLIPConfig nests the tower; a CLIPVisionConfig is flat */
    if ((st = json_opt_object(root, "vision_config", &v, path, err)) != MGL_OK) goto done;
    if (!v) v = root;
    const char* mt = NULL;
    if ((st = json_opt_str(root, "model_type", &mt, path, err)) != MGL_OK) goto done;
    if (mt && strcmp(mt, "clip") != 0 && strcmp(mt, "clip_vision_model") != 0) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: model_type \"%s\" is not a CLIP model", path, mt);
        goto done;
    }
    *c = (MglClipConfig){.hidden = 768,
                         .n_layers = 12,
                         .n_heads = 12,
                         .intermediate = 3072,
                         .image_size = 224,
                         .patch_size = 32,
                         .n_channels = 3,
                         .ln_eps = 1e-5f};
    copy_str(c->act, sizeof c->act, "quick_gelu");
    const char* act = NULL;
    if ((st = get_int(v, "hidden_size", &c->hidden, 1, 1 << 16, path, err)) ||
        (st = get_int(v, "num_hidden_layers", &c->n_layers, 1, 1024, path, err)) ||
        (st = get_int(v, "num_attention_heads", &c->n_heads, 1, 1024, path, err)) ||
        (st = get_int(v, "intermediate_size", &c->intermediate, 1, 1 << 18, path, err)) ||
        (st = get_int(v, "image_size", &c->image_size, 1, 8192, path, err)) ||
        (st = get_int(v, "patch_size", &c->patch_size, 1, 1024, path, err)) ||
        (st = get_int(v, "num_channels", &c->n_channels, 1, 4, path, err)) ||
        (st = get_float(v, "layer_norm_eps", &c->ln_eps, 0, 1, path, err)) ||
        (st = json_opt_str(v, "hidden_act", &act, path, err)))
        goto done;
    if (act) copy_str(c->act, sizeof c->act, act);
    if (c->hidden % c->n_heads) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: hidden_size %d is not divisible by num_attention_heads %d", path,
                     c->hidden, c->n_heads);
        goto done;
    }
    if (c->image_size % c->patch_size) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: image_size %d is not a multiple of patch_size %d", path, c->image_size,
                     c->patch_size);
        goto done;
    }
    if (strcmp(c->act, "quick_gelu") && strcmp(c->act, "gelu")) {
        st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: hidden_act \"%s\" (expected quick_gelu or gelu)", path, c->act);
        goto done;
    }
done:
    g_object_unref(p);
    return st;
}

/* ---- ConvNeXt (OpenCLIP/timm) ----------------------------------------- */

bool mgl_convnext_arch_from_name(const char* name, int depths[4], int dims[4]) {
    static const struct {
        const char* name;
        int d[4];
        int c0;
    } k[] = {
        {"convnext_atto", {2, 2, 6, 2}, 40},     {"convnext_femto", {2, 2, 6, 2}, 48},
        {"convnext_pico", {2, 2, 6, 2}, 64},     {"convnext_nano", {2, 2, 8, 2}, 80},
        {"convnext_tiny", {3, 3, 9, 3}, 96},     {"convnext_small", {3, 3, 27, 3}, 96},
        {"convnext_base", {3, 3, 27, 3}, 128},   {"convnext_large", {3, 3, 27, 3}, 192},
        {"convnext_xlarge", {3, 3, 27, 3}, 256}, {"convnext_xxlarge", {3, 4, 30, 3}, 384},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(k); i++) {
        if (strcmp(name, k[i].name) == 0) {
            for (int s = 0; s < 4; s++) {
                depths[s] = k[i].d[s];
                dims[s] = k[i].c0 << s;
            }
            return true;
        }
    }
    return false;
}

static MglStatus read_float3(JsonObject* o, const char* key, float out[3], const char* what, MglErr* err) {
    JsonNode* n = json_object_get_member(o, key);
    if (!n || JSON_NODE_HOLDS_NULL(n)) return MGL_OK;
    if (!JSON_NODE_HOLDS_ARRAY(n) || json_array_get_length(json_node_get_array(n)) != 3)
        return mgl_err(err, MGL_E_FORMAT, "%s: \"%s\" must be an array of 3 numbers", what, key);
    JsonArray* a = json_node_get_array(n);
    for (int i = 0; i < 3; i++) {
        JsonNode* e = json_array_get_element(a, i);
        if (!JSON_NODE_HOLDS_VALUE(e) ||
            (json_node_get_value_type(e) != G_TYPE_DOUBLE && json_node_get_value_type(e) != G_TYPE_INT64))
            return mgl_err(err, MGL_E_FORMAT, "%s: \"%s\"[%d] is not a number", what, key, i);
        out[i] = (float)json_node_get_double(e);
    }
    return MGL_OK;
}

MglStatus mgl_convnext_config_load(const char* path, MglConvNextConfig* c, MglErr* err) {
    JsonParser* p = NULL;
    JsonObject* root = NULL;
    MGL_TRY(json_load_object(path, CFG_MAX_BYTES, &p, &root, err));
    MglStatus st = MGL_OK;
    memset(c, 0, sizeof *c);
    JsonObject *mc = NULL, *vc = NULL, *pc = NULL;
    const char* timm = NULL;
    if ((st = json_opt_object(root, "model_cfg", &mc, path, err)) != MGL_OK) goto done;
    if (!mc) mc = root; /* a bare model config (open_clip's model_configs folder) */
    if ((st = json_opt_object(mc, "vision_cfg", &vc, path, err)) != MGL_OK) goto done;
    if (!vc) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: missing \"model_cfg.vision_cfg\" (not an open_clip_config.json?)", path);
        goto done;
    }
    if ((st = json_opt_str(vc, "timm_model_name", &timm, path, err)) != MGL_OK) goto done;
    if (!timm) {
        st = mgl_err(err, MGL_E_UNSUPPORTED,
                     "%s: vision tower has no \"timm_model_name\": only timm ConvNeXt towers are supported", path);
        goto done;
    }
    if (strncmp(timm, "convnext", 8) != 0) {
        st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: timm_model_name \"%s\" is not a ConvNeXt", path, timm);
        goto done;
    }
    copy_str(c->timm_model, sizeof c->timm_model, timm);
    mgl_convnext_arch_from_name(timm, c->depths, c->dims);
    c->image_size = 224;
    if ((st = get_int(vc, "image_size", &c->image_size, 1, 8192, path, err)) != MGL_OK) goto done;
    if ((st = json_opt_object(root, "preprocess_cfg", &pc, path, err)) != MGL_OK) goto done;
    if (pc) {
        c->has_preprocess = json_object_has_member(pc, "mean") && json_object_has_member(pc, "std");
        if ((st = read_float3(pc, "mean", c->mean, path, err)) || (st = read_float3(pc, "std", c->std, path, err)))
            goto done;
    }
done:
    g_object_unref(p);
    return st;
}

/* ---- LLM -------------------------------------------------------------- */

static MglStatus read_token_ids(JsonObject* o, const char* key, int* ids, int cap, int* n, const char* what,
                                MglErr* err) {
    JsonNode* v = json_object_get_member(o, key);
    *n = 0;
    if (!v || JSON_NODE_HOLDS_NULL(v)) return MGL_OK;
    if (JSON_NODE_HOLDS_VALUE(v) && json_node_get_value_type(v) == G_TYPE_INT64) {
        int64_t x = json_node_get_int(v);
        if (x < 0 || x > INT32_MAX) return mgl_err(err, MGL_E_FORMAT, "%s: \"%s\" is out of range", what, key);
        ids[0] = (int)x;
        *n = 1;
        return MGL_OK;
    }
    if (!JSON_NODE_HOLDS_ARRAY(v))
        return mgl_err(err, MGL_E_FORMAT, "%s: \"%s\" must be an id or a list of ids", what, key);
    JsonArray* a = json_node_get_array(v);
    for (guint i = 0; i < json_array_get_length(a); i++) {
        JsonNode* e = json_array_get_element(a, i);
        if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_INT64 || json_node_get_int(e) < 0 ||
            json_node_get_int(e) > INT32_MAX)
            return mgl_err(err, MGL_E_FORMAT, "%s: \"%s\"[%u] is not a token id", what, key, i);
        if (*n < cap) ids[(*n)++] = (int)json_node_get_int(e);
    }
    return MGL_OK;
}

MglStatus mgl_llm_config_load(const char* path, MglLlmConfig* c, MglErr* err) {
    JsonParser* p = NULL;
    JsonObject* root = NULL;
    MGL_TRY(json_load_object(path, CFG_MAX_BYTES, &p, &root, err));
    MglStatus st = MGL_OK;
    memset(c, 0, sizeof *c);
    const char* mt = NULL;
    const char* arch = NULL;
    JsonNode* an = json_object_get_member(root, "architectures");
    if (an && JSON_NODE_HOLDS_ARRAY(an) && json_array_get_length(json_node_get_array(an)) > 0) {
        JsonNode* e = json_array_get_element(json_node_get_array(an), 0);
        if (JSON_NODE_HOLDS_VALUE(e) && json_node_get_value_type(e) == G_TYPE_STRING) arch = json_node_get_string(e);
    }
    if ((st = json_opt_str(root, "model_type", &mt, path, err)) != MGL_OK) goto done;
    bool phi3 = (mt && strcmp(mt, "phi3") == 0) || (arch && strcmp(arch, "Phi3ForCausalLM") == 0);
    bool llama = (mt && (strcmp(mt, "llama") == 0 || strcmp(mt, "mistral") == 0)) ||
                 (arch && (strcmp(arch, "LlamaForCausalLM") == 0 || strcmp(arch, "MistralForCausalLM") == 0));
    if (!phi3 && !llama) {
        st = mgl_err(err, MGL_E_UNSUPPORTED,
                     "%s: model_type \"%s\" / architecture \"%s\" is not supported (Llama, Mistral or Phi-3 expected)",
                     path, mt ? mt : "(none)", arch ? arch : "(none)");
        goto done;
    }
    copy_str(c->arch_name, sizeof c->arch_name, arch ? arch : (phi3 ? "Phi3ForCausalLM" : "LlamaForCausalLM"));
    if (phi3) {
        c->arch = MGL_LLM_PHI3;
        c->vocab = 32064;
        c->hidden = 3072;
        c->intermediate = 8192;
        c->n_layers = 32;
        c->n_heads = 32;
        c->max_pos = 4096;
        c->rms_eps = 1e-5f;
        c->bos_id = 1;
        c->eos_ids[0] = 32000;
    } else {
        c->arch = MGL_LLM_LLAMA;
        c->vocab = 32000;
        c->hidden = 4096;
        c->intermediate = 11008;
        c->n_layers = 32;
        c->n_heads = 32;
        c->max_pos = 2048;
        c->rms_eps = 1e-6f;
        c->bos_id = 1;
        c->eos_ids[0] = 2;
    }
    c->n_eos = 1;
    c->rope_theta = 10000.0f;
    copy_str(c->hidden_act, sizeof c->hidden_act, "silu");
    c->n_kv_heads = -1;
    c->head_dim = -1;
    const char* act = NULL;
    if ((st = get_int(root, "vocab_size", &c->vocab, 1, 1 << 24, path, err)) ||
        (st = get_int(root, "hidden_size", &c->hidden, 1, 1 << 17, path, err)) ||
        (st = get_int(root, "intermediate_size", &c->intermediate, 1, 1 << 20, path, err)) ||
        (st = get_int(root, "num_hidden_layers", &c->n_layers, 1, 4096, path, err)) ||
        (st = get_int(root, "num_attention_heads", &c->n_heads, 1, 4096, path, err)) ||
        (st = get_int(root, "num_key_value_heads", &c->n_kv_heads, -1, 4096, path, err)) ||
        (st = get_int(root, "head_dim", &c->head_dim, -1, 4096, path, err)) ||
        (st = get_int(root, "max_position_embeddings", &c->max_pos, 1, 1 << 24, path, err)) ||
        (st = get_float(root, "rms_norm_eps", &c->rms_eps, 0, 1, path, err)) ||
        (st = get_float(root, "rope_theta", &c->rope_theta, 1, 1e12, path, err)) ||
        (st = json_opt_bool(root, "tie_word_embeddings", &c->tie_embeddings, path, err)) ||
        (st = get_int(root, "sliding_window", &c->sliding_window, 0, 1 << 24, path, err)) ||
        (st = json_opt_str(root, "hidden_act", &act, path, err)))
        goto done;
    if (act) copy_str(c->hidden_act, sizeof c->hidden_act, act);
    if (strcmp(c->hidden_act, "silu") != 0) {
        st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: hidden_act \"%s\" (only silu is supported)", path, c->hidden_act);
        goto done;
    }
    if (c->n_kv_heads <= 0) c->n_kv_heads = c->n_heads;
    if (c->head_dim <= 0) {
        if (c->hidden % c->n_heads) {
            st = mgl_err(err, MGL_E_FORMAT, "%s: hidden_size %d is not divisible by num_attention_heads %d", path,
                         c->hidden, c->n_heads);
            goto done;
        }
        c->head_dim = c->hidden / c->n_heads;
    }
    if (c->head_dim % 2) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: head_dim %d is odd (RoPE needs pairs)", path, c->head_dim);
        goto done;
    }
    if (c->n_heads % c->n_kv_heads) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", path,
                     c->n_heads, c->n_kv_heads);
        goto done;
    }
    JsonNode* rs = json_object_get_member(root, "rope_scaling");
    if (rs && !JSON_NODE_HOLDS_NULL(rs)) {
        const char* type = NULL;
        if (JSON_NODE_HOLDS_OBJECT(rs)) {
            JsonObject* ro = json_node_get_object(rs);
            if ((st = json_opt_str(ro, "rope_type", &type, path, err)) != MGL_OK) goto done;
            if (!type && (st = json_opt_str(ro, "type", &type, path, err)) != MGL_OK) goto done;
        }
        if (!type || strcmp(type, "default") != 0) {
            st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: rope_scaling \"%s\" is not supported (plain RoPE only)", path,
                         type ? type : "?");
            goto done;
        }
    }
    int bos[1], nb = 0;
    if ((st = read_token_ids(root, "bos_token_id", bos, 1, &nb, path, err)) != MGL_OK) goto done;
    if (nb)
        c->bos_id = bos[0];
    else if (json_object_has_member(root, "bos_token_id"))
        c->bos_id = -1; /* explicit null */
    int ne = 0, eos[8];
    if ((st = read_token_ids(root, "eos_token_id", eos, 8, &ne, path, err)) != MGL_OK) goto done;
    if (ne) {
        memcpy(c->eos_ids, eos, sizeof(int) * (size_t)ne);
        c->n_eos = ne;
    }
    c->eos_id = c->n_eos ? c->eos_ids[0] : -1;
done:
    g_object_unref(p);
    return st;
}

/* ---- manifest --------------------------------------------------------- */

void mgl_manifest_clear(MglManifest* m) {
    if (!m) return;
    free(m->dir);
    free(m->name);
    free(m->template_name);
    free(m->checkpoint);
    free(m->clip);
    free(m->convnext);
    free(m->llm);
    free(m->packed_dtype);
    if (m->packed_weights)
        for (char** p = m->packed_weights; *p; p++) free(*p);
    free(m->packed_weights);
    memset(m, 0, sizeof *m);
}

/* Resolve a manifest path: relative paths are relative to the manifest's folder. */
static char* resolve(const char* dir, const char* rel) {
    char* p = g_path_is_absolute(rel) ? g_strdup(rel) : g_build_filename(dir, rel, NULL);
    char* r = strdup(p);
    g_free(p);
    return r;
}

static MglStatus opt_path(JsonObject* o, const char* key, const char* dir, char** out, bool required, const char* what,
                          MglErr* err) {
    const char* s = NULL;
    MGL_TRY(json_opt_str(o, key, &s, what, err));
    if (!s) {
        if (required) return mgl_err(err, MGL_E_FORMAT, "%s: missing required \"%s\"", what, key);
        return MGL_OK;
    }
    if (!*s) return mgl_err(err, MGL_E_FORMAT, "%s: \"%s\" is empty", what, key);
    *out = resolve(dir, s);
    return MGL_OK;
}

MglStatus mgl_manifest_load(const char* path, MglManifest* m, MglErr* err) {
    memset(m, 0, sizeof *m);
    JsonParser* p = NULL;
    JsonObject* root = NULL;
    MGL_TRY(json_load_object(path, CFG_MAX_BYTES, &p, &root, err));
    MglStatus st = MGL_OK;
    char* gdir = g_path_get_dirname(path);
    m->dir = strdup(gdir);
    g_free(gdir);
    int64_t ver = 0;
    const char *tmpl = NULL, *name = NULL, *llm_w = NULL;
    JsonObject* packed = NULL;
    if ((st = json_req_int(root, "mgllava", &ver, path, err)) != MGL_OK) goto done;
    if (ver != 1) {
        st = mgl_err(err, MGL_E_UNSUPPORTED, "%s: manifest version %lld (this build reads version 1)", path,
                     (long long)ver);
        goto done;
    }
    m->version = (int)ver;
    if ((st = json_req_str(root, "template", &tmpl, path, err)) != MGL_OK) goto done;
    if (!mgl_template_get(tmpl)) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: unknown template \"%s\" (vicuna, phi3_chat, llama3_chat, qwen_chat)", path,
                     tmpl);
        goto done;
    }
    m->template_name = strdup(tmpl);
    if ((st = json_opt_str(root, "name", &name, path, err)) != MGL_OK) goto done;
    if (name) m->name = strdup(name);
    if ((st = json_opt_object(root, "packed", &packed, path, err)) != MGL_OK) goto done;
    m->packed = packed != NULL;
    if ((st = opt_path(root, "clip", m->dir, &m->clip, true, path, err)) ||
        (st = opt_path(root, "convnext", m->dir, &m->convnext, !m->packed, path, err)) ||
        (st = opt_path(root, "llm", m->dir, &m->llm, true, path, err)) ||
        (st = opt_path(root, "checkpoint", m->dir, &m->checkpoint, !m->packed, path, err)))
        goto done;
    if ((st = json_opt_str(root, "llm_weights", &llm_w, path, err)) != MGL_OK) goto done;
    if (llm_w && strcmp(llm_w, "checkpoint") && strcmp(llm_w, "llm")) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: \"llm_weights\" must be \"checkpoint\" or \"llm\", not \"%s\"", path,
                     llm_w);
        goto done;
    }
    m->llm_weights_from_llm_folder = llm_w && strcmp(llm_w, "llm") == 0;
    int64_t lim = 0, mnt = 100;
    if ((st = json_opt_int(root, "limit_num", &lim, path, err)) ||
        (st = json_opt_int(root, "max_new_tokens", &mnt, path, err)))
        goto done;
    if (lim < 0 || lim > 1000000 || lim == 50) {
        st = mgl_err(err, MGL_E_FORMAT,
                     "%s: \"limit_num\" = %lld is invalid (0/null = no cap; 50 is undefined upstream)", path,
                     (long long)lim);
        goto done;
    }
    if (mnt < 1 || mnt > 1000000) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: \"max_new_tokens\" = %lld is out of range", path, (long long)mnt);
        goto done;
    }
    m->limit_num = (int)lim;
    m->max_new_tokens = (int)mnt;
    const char* order = NULL;
    if ((st = json_opt_str(root, "object_order", &order, path, err)) != MGL_OK) goto done;
    if (mgl_object_order_parse(order ? order : "score", &m->object_order) != MGL_OK || m->object_order < 0) {
        st = mgl_err(err, MGL_E_FORMAT, "%s: \"object_order\" must be \"score\" or \"reading\", not \"%s\"", path,
                     order);
        goto done;
    }
    if (packed) {
        const char* dt = NULL;
        if ((st = json_req_str(packed, "dtype", &dt, path, err)) != MGL_OK) goto done;
        if (strcmp(dt, "f16") && strcmp(dt, "bf16") && strcmp(dt, "f32")) {
            st = mgl_err(err, MGL_E_FORMAT, "%s: packed.dtype \"%s\" (f16, bf16 or f32)", path, dt);
            goto done;
        }
        m->packed_dtype = strdup(dt);
        JsonNode* wn = json_object_get_member(packed, "weights");
        if (!wn || !JSON_NODE_HOLDS_ARRAY(wn) || json_array_get_length(json_node_get_array(wn)) == 0) {
            st = mgl_err(err, MGL_E_FORMAT, "%s: packed.weights must be a non-empty list of files", path);
            goto done;
        }
        JsonArray* wa = json_node_get_array(wn);
        guint n = json_array_get_length(wa);
        m->packed_weights = calloc(n + 1, sizeof(char*));
        for (guint i = 0; i < n; i++) {
            JsonNode* e = json_array_get_element(wa, i);
            if (!JSON_NODE_HOLDS_VALUE(e) || json_node_get_value_type(e) != G_TYPE_STRING) {
                st = mgl_err(err, MGL_E_FORMAT, "%s: packed.weights[%u] is not a file name", path, i);
                goto done;
            }
            m->packed_weights[i] = resolve(m->dir, json_node_get_string(e));
        }
    }
done:
    g_object_unref(p);
    if (st != MGL_OK) mgl_manifest_clear(m);
    return st;
}
