/* Config readers, the mgllava.json manifest, model-file validation and
 * `convert`, on the tiny models written in the official layouts
 * (tools/fixtures/make_tiny_models.py). */
#include "mgl-internal.h"
#include "mgl-model-files.h"
#include "mgl-test.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>

static char* fx(const char* rel) { return g_build_filename(test_env("MGL_FIXTURES"), "models", rel, NULL); }
static char* tmpdir;

static char* write_tmp(const char* name, const char* text) {
    char* p = g_build_filename(tmpdir, name, NULL);
    char* d = g_path_get_dirname(p);
    g_mkdir_with_parents(d, 0755);
    g_free(d);
    REQUIRE(g_file_set_contents(p, text, -1, NULL));
    return p;
}

static void expect_fail(MglStatus st, MglStatus want, const MglErr* err, const char* needle) {
    CHECK_MSG(st == want, "status %d, want %d: %s", st, want, err->msg);
    CHECK_MSG(!needle || strstr(err->msg, needle), "message lacks '%s': %s", needle, err->msg);
    printf("  expected error: %s\n", err->msg);
}

static void clip_configs(void) {
    MglErr err = {0};
    MglClipConfig a, b;
    char* p = fx("components/clip/config.json");
    CHECK_MSG(mgl_clip_config_load(p, &a, &err) == MGL_OK, "%s", err.msg);
    g_free(p);
    p = fx("components/clip-bin/config.json"); /* full CLIPConfig: vision_config nested, hidden_act defaulted */
    CHECK_MSG(mgl_clip_config_load(p, &b, &err) == MGL_OK, "%s", err.msg);
    g_free(p);
    CHECK(a.hidden == 32 && a.n_layers == 3 && a.n_heads == 2 && a.intermediate == 64);
    CHECK(a.image_size == 336 && a.patch_size == 14 && strcmp(a.act, "quick_gelu") == 0);
    CHECK(memcmp(&a, &b, sizeof a) == 0);
    /* the real openai/clip-vit-large-patch14-336 vision_config, as HF serialises it */
    p = write_tmp("clip-l/config.json",
                  "{\"architectures\":[\"CLIPModel\"],\"model_type\":\"clip\",\"projection_dim\":768,"
                  "\"text_config\":{\"hidden_size\":768},\"vision_config\":{\"dropout\":0.0,\"hidden_size\":1024,"
                  "\"image_size\":336,\"intermediate_size\":4096,\"model_type\":\"clip_vision_model\","
                  "\"num_attention_heads\":16,\"num_hidden_layers\":24,\"patch_size\":14,\"projection_dim\":768}}");
    CHECK_MSG(mgl_clip_config_load(p, &a, &err) == MGL_OK, "%s", err.msg);
    CHECK(a.hidden == 1024 && a.n_layers == 24 && a.n_heads == 16 && a.intermediate == 4096 && a.image_size == 336 &&
          a.patch_size == 14 && fabsf(a.ln_eps - 1e-5f) < 1e-12f && strcmp(a.act, "quick_gelu") == 0);
    g_free(p);
    p = write_tmp("bad-clip1.json", "{\"hidden_size\": 100, \"num_attention_heads\": 3}");
    expect_fail(mgl_clip_config_load(p, &a, &err), MGL_E_FORMAT, &err, "divisible");
    g_free(p);
    p = write_tmp("bad-clip2.json", "{\"model_type\": \"bert\"}");
    expect_fail(mgl_clip_config_load(p, &a, &err), MGL_E_FORMAT, &err, "not a CLIP");
    g_free(p);
    p = write_tmp("bad-clip3.json", "{\"hidden_size\": \"big\"}");
    expect_fail(mgl_clip_config_load(p, &a, &err), MGL_E_FORMAT, &err, "hidden_size");
    g_free(p);
    p = write_tmp("bad-clip4.json", "[1,2]");
    expect_fail(mgl_clip_config_load(p, &a, &err), MGL_E_FORMAT, &err, "not an object");
    g_free(p);
    p = write_tmp("bad-clip5.json", "{\"hidden_size\": 32,");
    expect_fail(mgl_clip_config_load(p, &a, &err), MGL_E_FORMAT, &err, "invalid JSON");
    g_free(p);
}

static void convnext_configs(void) {
    MglErr err = {0};
    MglConvNextConfig c;
    char* p = fx("components/convnext/open_clip_config.json");
    CHECK_MSG(mgl_convnext_config_load(p, &c, &err) == MGL_OK, "%s", err.msg);
    CHECK(c.image_size == 320 && c.depths[0] == 0 && c.has_preprocess && fabsf(c.mean[0] - 0.48145466f) < 1e-7f);
    g_free(p);
    /* LAION CLIP-convnext_large_d_320's config */
    p = write_tmp(
        "oc/open_clip_config.json",
        "{\"model_cfg\":{\"embed_dim\":768,\"vision_cfg\":{\"timm_model_name\":\"convnext_large\","
        "\"timm_model_pretrained\":false,\"timm_pool\":\"\",\"timm_proj\":\"mlp\",\"timm_drop\":0.0,"
        "\"timm_drop_path\":0.1,\"image_size\":320},\"text_cfg\":{\"context_length\":77}},"
        "\"preprocess_cfg\":{\"mean\":[0.48145466,0.4578275,0.40821073],\"std\":[0.26862954,0.26130258,0.27577711]}}");
    CHECK_MSG(mgl_convnext_config_load(p, &c, &err) == MGL_OK, "%s", err.msg);
    CHECK(c.depths[2] == 27 && c.dims[0] == 192 && c.dims[3] == 1536 && strcmp(c.timm_model, "convnext_large") == 0);
    g_free(p);
    p = write_tmp("oc-bad.json", "{\"model_cfg\":{\"vision_cfg\":{\"layers\":12,\"width\":768}}}");
    expect_fail(mgl_convnext_config_load(p, &c, &err), MGL_E_UNSUPPORTED, &err, "timm_model_name");
    g_free(p);
    p = write_tmp("oc-bad2.json", "{\"model_cfg\":{\"vision_cfg\":{\"timm_model_name\":\"vit_base_patch16\"}}}");
    expect_fail(mgl_convnext_config_load(p, &c, &err), MGL_E_UNSUPPORTED, &err, "not a ConvNeXt");
    g_free(p);
}

static void llm_configs(void) {
    MglErr err = {0};
    MglLlmConfig c;
    char* p = fx("tiny-vicuna/llm/config.json");
    CHECK_MSG(mgl_llm_config_load(p, &c, &err) == MGL_OK, "%s", err.msg);
    CHECK(c.arch == MGL_LLM_LLAMA && c.n_kv_heads == 4 && c.head_dim == 8 && c.bos_id == 1 && c.eos_id == 2);
    g_free(p);
    p = fx("tiny-llama3/llm/config.json");
    CHECK_MSG(mgl_llm_config_load(p, &c, &err) == MGL_OK, "%s", err.msg);
    CHECK(c.arch == MGL_LLM_LLAMA && c.n_heads == 4 && c.n_kv_heads == 2 && c.rope_theta == 500000.0f && c.n_eos == 2);
    g_free(p);
    p = fx("tiny-phi3/llm/config.json");
    CHECK_MSG(mgl_llm_config_load(p, &c, &err) == MGL_OK, "%s", err.msg);
    CHECK(c.arch == MGL_LLM_PHI3 && c.hidden == 48 && c.head_dim == 12 && c.sliding_window == 2047);
    g_free(p);
    /* real Vicuna-7B-v1.5 and Llama-3-8B-Instruct configs (abridged to the fields they carry) */
    p = write_tmp(
        "vicuna7b.json",
        "{\"architectures\":[\"LlamaForCausalLM\"],\"bos_token_id\":1,\"eos_token_id\":2,"
        "\"hidden_act\":\"silu\",\"hidden_size\":4096,\"initializer_range\":0.02,\"intermediate_size\":11008,"
        "\"max_position_embeddings\":4096,\"model_type\":\"llama\",\"num_attention_heads\":32,"
        "\"num_hidden_layers\":32,\"num_key_value_heads\":32,\"pad_token_id\":0,\"pretraining_tp\":1,"
        "\"rms_norm_eps\":1e-05,\"rope_scaling\":null,\"tie_word_embeddings\":false,"
        "\"torch_dtype\":\"float16\",\"transformers_version\":\"4.31.0\",\"use_cache\":true,\"vocab_size\":32000}");
    CHECK_MSG(mgl_llm_config_load(p, &c, &err) == MGL_OK, "%s", err.msg);
    CHECK(c.hidden == 4096 && c.head_dim == 128 && c.intermediate == 11008 && c.vocab == 32000 &&
          c.rope_theta == 10000.0f);
    g_free(p);
    p = write_tmp("llama3-8b.json",
                  "{\"architectures\":[\"LlamaForCausalLM\"],\"attention_bias\":false,\"bos_token_id\":128000,"
                  "\"eos_token_id\":128009,\"hidden_act\":\"silu\",\"hidden_size\":4096,\"intermediate_size\":14336,"
                  "\"max_position_embeddings\":8192,\"model_type\":\"llama\",\"num_attention_heads\":32,"
                  "\"num_hidden_layers\":32,\"num_key_value_heads\":8,\"rms_norm_eps\":1e-05,\"rope_theta\":500000.0,"
                  "\"tie_word_embeddings\":false,\"vocab_size\":128256}");
    CHECK_MSG(mgl_llm_config_load(p, &c, &err) == MGL_OK, "%s", err.msg);
    CHECK(c.n_kv_heads == 8 && c.bos_id == 128000 && c.eos_id == 128009 && c.vocab == 128256);
    g_free(p);
    p = write_tmp("llm-bad1.json", "{\"model_type\":\"gpt2\"}");
    expect_fail(mgl_llm_config_load(p, &c, &err), MGL_E_UNSUPPORTED, &err, "gpt2");
    g_free(p);
    p = write_tmp("llm-bad2.json",
                  "{\"model_type\":\"llama\",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0}}");
    expect_fail(mgl_llm_config_load(p, &c, &err), MGL_E_UNSUPPORTED, &err, "rope_scaling");
    g_free(p);
    p = write_tmp("llm-bad3.json", "{\"model_type\":\"llama\",\"num_attention_heads\":32,\"num_key_value_heads\":5}");
    expect_fail(mgl_llm_config_load(p, &c, &err), MGL_E_FORMAT, &err, "num_key_value_heads");
    g_free(p);
    p = write_tmp("llm-bad4.json", "{\"model_type\":\"llama\",\"eos_token_id\":[2,\"x\"]}");
    expect_fail(mgl_llm_config_load(p, &c, &err), MGL_E_FORMAT, &err, "eos_token_id");
    g_free(p);
    p = write_tmp("llm-bad5.json", "{\"model_type\":\"llama\",\"hidden_size\":-4}");
    expect_fail(mgl_llm_config_load(p, &c, &err), MGL_E_FORMAT, &err, "out of range");
    g_free(p);
}

static void open_models(void) {
    static const char* kinds[] = {"tiny-vicuna", "tiny-llama3", "tiny-phi3", "tiny-yi"};
    static const char* templates[] = {"vicuna", "llama3_chat", "phi3_chat", "qwen_chat"};
    for (int k = 0; k < 4; k++) {
        MglErr err = {0};
        MglModelFiles* mf = NULL;
        char* p = fx(kinds[k]);
        MglStatus st = mgl_model_files_open(p, &mf, &err);
        CHECK_MSG(st == MGL_OK, "%s: %s", kinds[k], err.msg);
        g_free(p);
        if (st != MGL_OK) continue;
        CHECK_MSG(mgl_model_files_validate(mf, &err) == MGL_OK, "%s: %s", kinds[k], err.msg);
        CHECK(mf->cnx.depths[0] == 1 && mf->cnx.depths[2] == 2 && mf->cnx.dims[3] == 64);
        /* dropped: CLIP text tower / position_ids, OpenCLIP heads and text tower, checkpoint metadata */
        for (size_t i = 0; i < mf->weights->n; i++) {
            const char* n = mf->weights->items[i].name;
            CHECK_MSG(g_str_has_prefix(n, "clip.vision_model.") || g_str_has_prefix(n, "convnext.stem.") ||
                          g_str_has_prefix(n, "convnext.stages.") || g_str_has_prefix(n, "llm.") ||
                          g_str_has_prefix(n, "projector.") || g_str_has_prefix(n, "bbox_projector.") ||
                          g_str_has_prefix(n, "fuse_module."),
                      "unexpected tensor %s", n);
            CHECK(!g_str_has_suffix(n, "position_ids"));
        }
        const MglTensor* e = mgl_tset_get(mf->weights, "llm.model.embed_tokens.weight");
        CHECK(e && e->dtype == MGL_DT_BF16 && e->shape[0] == mf->llm.vocab);
        CHECK(strcmp(mf->man.template_name, templates[k]) == 0);
        /* tiny-yi: the split layout, the LLM's weights from its own folder */
        CHECK(mf->man.llm_weights_from_llm_folder == (k == 3));
        CHECK(mgl_tset_get(mf->weights, "llm.lm_head.weight") != NULL);
        CHECK(mf->man.limit_num == 100 && mf->man.max_new_tokens == 16);
        char* d = mgl_model_files_describe(mf);
        CHECK(strstr(d, "convnext") && strstr(d, "llm"));
        if (k == 0) printf("%s", d);
        g_free(d);
        mgl_model_files_free(mf);
    }
}

static void bad_manifests(void) {
    MglErr err = {0};
    MglModelFiles* mf = NULL;
    char* models = fx("");
    struct {
        const char* json;
        MglStatus want;
        const char* needle;
    } cases[] = {
        {"{\"template\":\"vicuna\"}", MGL_E_FORMAT, "\"mgllava\""},
        {"{\"mgllava\":2,\"template\":\"vicuna\"}", MGL_E_UNSUPPORTED, "version 2"},
        {"{\"mgllava\":1,\"template\":\"alpaca\"}", MGL_E_FORMAT, "unknown template"},
        {"{\"mgllava\":1,\"template\":\"vicuna\",\"clip\":\"C\",\"llm\":\"L\",\"convnext\":\"X\"}", MGL_E_FORMAT,
         "checkpoint"},
        {"{\"mgllava\":1,\"template\":\"vicuna\",\"clip\":7}", MGL_E_FORMAT, "\"clip\" must be a string"},
        {"{\"mgllava\":1,\"template\":\"vicuna\",\"clip\":\"C\",\"llm\":\"L\",\"convnext\":\"X\",\"checkpoint\":\"K\","
         "\"llm_weights\":\"both\"}",
         MGL_E_FORMAT, "llm_weights"},
        {"{\"mgllava\":1,\"template\":\"vicuna\",\"clip\":\"C\",\"llm\":\"L\",\"convnext\":\"X\",\"checkpoint\":\"K\","
         "\"limit_num\":50}",
         MGL_E_FORMAT, "limit_num"},
        {"{\"mgllava\":1,\"template\":\"vicuna\",\"clip\":\"C\",\"llm\":\"L\",\"convnext\":\"X\",\"checkpoint\":\"K\","
         "\"object_order\":\"model\"}",
         MGL_E_FORMAT, "object_order"},
        {"{\"mgllava\":1,\"template\":\"vicuna\",\"clip\":\"C\",\"llm\":\"L\",\"convnext\":\"X\",\"checkpoint\":\"K\","
         "\"object_order\":3}",
         MGL_E_FORMAT, "object_order"},
        {"not json", MGL_E_FORMAT, "invalid JSON"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char name[64];
        snprintf(name, sizeof name, "m%zu/mgllava.json", i);
        char* p = write_tmp(name, cases[i].json);
        expect_fail(mgl_model_files_open(p, &mf, &err), cases[i].want, &err, cases[i].needle);
        CHECK(mf == NULL);
        g_free(p);
    }
    /* components that do not exist */
    char* j =
        g_strdup_printf("{\"mgllava\":1,\"template\":\"vicuna\",\"clip\":\"%s/components/clip\",\"llm\":\"%s/nope\","
                        "\"convnext\":\"%s/components/convnext\",\"checkpoint\":\"%s/tiny-vicuna/iter_10.pth\"}",
                        models, models, models, models);
    char* p = write_tmp("m-missing-llm/mgllava.json", j);
    expect_fail(mgl_model_files_open(p, &mf, &err), MGL_E_IO, &err, "LLM folder");
    g_free(p);
    g_free(j);
    /* LLM weights requested from a folder that has none */
    j = g_strdup_printf(
        "{\"mgllava\":1,\"template\":\"vicuna\",\"clip\":\"%s/components/clip\",\"llm\":\"%s/tiny-vicuna/llm\","
        "\"convnext\":\"%s/components/convnext\",\"checkpoint\":\"%s/tiny-vicuna/iter_10.pth\","
        "\"llm_weights\":\"llm\"}",
        models, models, models, models);
    p = write_tmp("m-llm-weights/mgllava.json", j);
    expect_fail(mgl_model_files_open(p, &mf, &err), MGL_E_IO, &err, "no weights");
    g_free(p);
    g_free(j);
    /* a checkpoint that lacks one tensor and has another of the wrong shape: a clear error, not a silent
       strict=False load */
    {
        MglModelFiles* good = NULL;
        char* gp = fx("tiny-vicuna");
        REQUIRE(mgl_model_files_open(gp, &good, &err) == MGL_OK);
        g_free(gp);
        const MglTensor* list[512];
        size_t n = 0;
        for (size_t i = 0; i < good->weights->n && n < 512; i++) {
            const char* nm = good->weights->items[i].name;
            if (g_str_has_prefix(nm, "llm.") || g_str_has_prefix(nm, "projector.") ||
                g_str_has_prefix(nm, "bbox_projector.") || g_str_has_prefix(nm, "fuse_module."))
                if (strcmp(nm, "fuse_module.gate.2.weight") != 0) list[n++] = &good->weights->items[i];
        }
        char* ck = g_build_filename(tmpdir, "m-missing-key", "ckpt.safetensors", NULL);
        char* ckd = g_path_get_dirname(ck);
        g_mkdir_with_parents(ckd, 0755);
        REQUIRE(mgl_safetensors_write(ck, list, n, -1, NULL, &err) == MGL_OK);
        j = g_strdup_printf(
            "{\"mgllava\":1,\"template\":\"vicuna\",\"clip\":\"%s/components/clip\",\"llm\":\"%s/tiny-vicuna/llm\","
            "\"convnext\":\"%s/components/convnext\",\"checkpoint\":\"ckpt.safetensors\"}",
            models, models, models);
        p = write_tmp("m-missing-key/mgllava.json", j);
        CHECK_MSG(mgl_model_files_open(p, &mf, &err) == MGL_OK, "%s", err.msg);
        if (mf) {
            expect_fail(mgl_model_files_validate(mf, &err), MGL_E_FORMAT, &err, "fuse_module.gate.2.weight");
            CHECK(strstr(err.msg, "1 missing"));
            mgl_model_files_free(mf);
        }
        g_free(p);
        g_free(j);
        g_free(ck);
        g_free(ckd);
        mgl_model_files_free(good);
    }
    g_free(models);
}

static void convert_roundtrip(void) {
    static const MglDType dts[] = {MGL_DT_F32, MGL_DT_F16, MGL_DT_BF16};
    static const char* kinds[] = {"tiny-vicuna", "tiny-phi3"};
    for (int k = 0; k < 2; k++) {
        for (int di = 0; di < 3; di++) {
            MglErr err = {0};
            char* src = fx(kinds[k]);
            char* out = g_build_filename(tmpdir, "packed", kinds[k], mgl_dtype_name(dts[di]), NULL);
            CHECK_MSG(mgl_model_convert(src, out, dts[di], &err) == MGL_OK, "%s", err.msg);
            MglModelFiles *a = NULL, *b = NULL;
            REQUIRE(mgl_model_files_open(src, &a, &err) == MGL_OK);
            CHECK_MSG(mgl_model_files_open(out, &b, &err) == MGL_OK, "%s", err.msg);
            if (!b) {
                mgl_model_files_free(a);
                continue;
            }
            CHECK(b->man.packed);
            CHECK_MSG(mgl_model_files_validate(b, &err) == MGL_OK, "%s", err.msg);
            /* the packed model keeps exactly what the graph uses: CLIP's last layer and
             * post_layernorm (hidden_states[-2] never reaches them) are left behind */
            CHECK(b->weights->n < a->weights->n);
            CHECK(mgl_tset_get(a->weights, "clip.vision_model.post_layernorm.weight") != NULL);
            CHECK(mgl_tset_get(b->weights, "clip.vision_model.post_layernorm.weight") == NULL);
            CHECK(strcmp(a->man.template_name, b->man.template_name) == 0);
            CHECK(memcmp(&a->llm, &b->llm, sizeof a->llm) == 0 && memcmp(&a->clip, &b->clip, sizeof a->clip) == 0);
            size_t mismatches = 0;
            for (size_t i = 0; i < b->weights->n; i++) {
                const MglTensor* tb = &b->weights->items[i];
                const MglTensor* ta = mgl_tset_get(a->weights, tb->name);
                REQUIRE(ta);
                CHECK(tb->dtype == dts[di] && tb->ndim == ta->ndim && tb->map->mmapped);
                int64_t n = mgl_tensor_numel(ta);
                float* fa = malloc(sizeof(float) * (size_t)n);
                float* fb = malloc(sizeof(float) * (size_t)n);
                mgl_tensor_to_f32(ta, fa, &err);
                mgl_tensor_to_f32(tb, fb, &err);
                for (int64_t e = 0; e < n; e++) {
                    float w = fa[e];
                    if (dts[di] == MGL_DT_F16) w = mgl_f16_to_f32(mgl_f32_to_f16(w));
                    if (dts[di] == MGL_DT_BF16) w = mgl_bf16_to_f32(mgl_f32_to_bf16(w));
                    if (memcmp(&w, &fb[e], 4) != 0) mismatches++;
                }
                free(fa);
                free(fb);
            }
            CHECK_MSG(mismatches == 0, "%s %s: %zu elements differ", kinds[k], mgl_dtype_name(dts[di]), mismatches);
            mgl_model_files_free(a);
            mgl_model_files_free(b);
            g_free(src);
            g_free(out);
        }
    }
    MglErr err = {0};
    char* src = fx("tiny-vicuna");
    char* out = g_build_filename(tmpdir, "packed", "bad", NULL);
    expect_fail(mgl_model_convert(src, out, MGL_DT_I8, &err), MGL_E_INVALID, &err, "dtype");
    g_free(src);
    g_free(out);
}

static void rm_rf(const char* path) {
    if (g_file_test(path, G_FILE_TEST_IS_DIR)) {
        GDir* d = g_dir_open(path, 0, NULL);
        const char* n;
        while (d && (n = g_dir_read_name(d))) {
            char* c = g_build_filename(path, n, NULL);
            rm_rf(c);
            g_free(c);
        }
        if (d) g_dir_close(d);
        g_rmdir(path);
    } else
        g_remove(path);
}

int main(void) {
    tmpdir = g_dir_make_tmp("mgl-config-XXXXXX", NULL);
    REQUIRE(tmpdir);
    clip_configs();
    convnext_configs();
    llm_configs();
    open_models();
    bad_manifests();
    convert_roundtrip();
    rm_rf(tmpdir);
    g_free(tmpdir);
    TEST_DONE();
}
