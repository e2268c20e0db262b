/* mgl-model-files.h: a model on disk: the manifest, the configs of its four
 * components and every weight tensor under one canonical name space:
 *   clip.vision_model.*   HF CLIP vision tower
 *   convnext.stem.*, convnext.stages.*   OpenCLIP/timm ConvNeXt trunk
 *   llm.model.*, llm.lm_head.weight      the decoder (from the MG-LLaVA checkpoint or the LLM folder)
 *   projector.*, bbox_projector.*, fuse_module.*   MG-LLaVA modules
 * A packed model (written by `mgllava convert`) stores exactly these names. */
#ifndef MGL_MODEL_FILES_H
#define MGL_MODEL_FILES_H

#include "mgl-config.h"

typedef struct {
    MglManifest man;
    MglClipConfig clip;
    MglConvNextConfig cnx; /* depths/dims filled from the weights */
    bool has_cnx_config;
    char* cnx_config_path;
    MglLlmConfig llm;
    char* tokenizer_path; /* the LLM folder */
    MglTensorSet* weights;
    int fuse_dim;    /* CLIP hidden size seen by the fusion (1024) */
    int gate_hidden; /* 512 */
    int n_files;
    char* files[64]; /* weight files read, for the summary */
    /* identity of each file when it was mapped (mgl_model_files_check) */
    uint64_t file_dev[64], file_ino[64], file_size[64];
    int64_t file_mtime_ns[64];
} MglModelFiles;

/* `path`: a folder holding mgllava.json, or the manifest file itself. */
MglStatus mgl_model_files_open(const char* path, MglModelFiles** out, MglErr* err);
void mgl_model_files_free(MglModelFiles* mf);

/* Every tensor the MG-LLaVA graph needs is present with the shape the
 * configs imply; the first problem (and the count of missing ones) is reported. */
MglStatus mgl_model_files_validate(MglModelFiles* mf, MglErr* err);

/* Fill mf->weights with random tensors of every shape the configs imply
 * (benchmarks: real shapes, no files). */
MglStatus mgl_model_files_synthesize(MglModelFiles* mf, MglDType dtype, uint64_t seed, MglErr* err);

/* The weights are mmapped: a file truncated or replaced on disk after
 * loading would fault (SIGBUS) on access. Called before each request, this
 * turns any change of a weight file's identity, size or mtime into a clear
 * MGL_E_IO error naming the file. */
MglStatus mgl_model_files_check(const MglModelFiles* mf, MglErr* err);

/* Human-readable summary (malloc'ed). */
char* mgl_model_files_describe(const MglModelFiles* mf);

/* Pack into `out_dir` (created): model.safetensors (sharded past 4 GiB) in
 * `dtype` (f16/bf16/f32; non-float tensors kept), the configs, the tokenizer
 * files and a packed mgllava.json. */
MglStatus mgl_model_convert(const char* model_path, const char* out_dir, MglDType dtype, MglErr* err);

/* Write `mf` (e.g. a synthetic model) as a packed folder; tokenizer files are
 * copied from `tokenizer_dir` when non-NULL. */
MglStatus mgl_model_files_save_packed(MglModelFiles* mf, const char* out_dir, MglDType dtype, const char* tokenizer_dir,
                                      MglErr* err);

#endif
