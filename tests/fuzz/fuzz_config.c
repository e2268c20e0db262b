/* fuzz_config: the small JSON files of a model folder, each input tried with
 * every reader: HF config.json as CLIP vision config and as LLM config,
 * OpenCLIP open_clip_config.json, the mgllava.json manifest, and
 * tokenizer_config.json (read alone, then applied to the fixture SentencePiece
 * tokenizer, which adds its added tokens and BOS/EOS rules, and to the folder
 * that also holds a tokenizer.json: its added tokens, the special-token
 * template of the Llama classes, the choice between the two files). */
#include "fuzz-common.h"
#include "mgl-config.h"
#include "tokenizer/tok-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static bool init;
    if (!init) {
        init = true;
        fuzz_link_companion("tokenizer.model", fuzz_fixture("tokenizer/spm_bpe.model"));
        fuzz_link_companion("tokenizer.json", fuzz_fixture("tokenizer/tiny_metaspace/tokenizer.json"));
    }
    const char* path = fuzz_write_input(data, size);
    MglErr err = {0};

    MglClipConfig clip;
    (void)mgl_clip_config_load(path, &clip, &err);

    MglConvNextConfig cnx;
    if (mgl_convnext_config_load(path, &cnx, &err) == MGL_OK) {
        int depths[4], dims[4];
        (void)mgl_convnext_arch_from_name(cnx.timm_model, depths, dims);
    }

    MglLlmConfig llm;
    (void)mgl_llm_config_load(path, &llm, &err);

    MglManifest man;
    if (mgl_manifest_load(path, &man, &err) == MGL_OK) mgl_manifest_clear(&man);

    TokConfig tc;
    MglStatus st = tok_read_config(path, &tc, &err);
    if (st == MGL_OK) tok_config_clear(&tc);

    if (st == MGL_OK) {
        (void)fuzz_named_input("tokenizer_config.json");
        MglTokenizer* tok = NULL;
        if (mgl_tokenizer_load(fuzz_private_path("tokenizer.model"), &tok, &err) == MGL_OK) {
            fuzz_exercise_tokenizer(tok);
            mgl_tokenizer_free(tok);
        }
        tok = NULL;
        if (mgl_tokenizer_load(fuzz_private_path(""), &tok, &err) == MGL_OK) {
            fuzz_exercise_tokenizer(tok);
            mgl_tokenizer_free(tok);
        }
    }
    return 0;
}
