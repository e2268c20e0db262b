/* mgl-config.h: the configuration of each MG-LLaVA component, read from the
 * files the upstream projects publish (HF config.json, open_clip_config.json)
 * and from the mgllava.json manifest. */
#ifndef MGL_CONFIG_H
#define MGL_CONFIG_H

#include "mgl-internal.h"

/* CLIP vision tower (HF CLIPVisionConfig, or the vision_config of a CLIPConfig). */
typedef struct {
    int hidden;       /* 1024 for ViT-L */
    int n_layers;     /* 24 */
    int n_heads;      /* 16 */
    int intermediate; /* 4096 */
    int image_size;   /* 336 */
    int patch_size;   /* 14 */
    int n_channels;   /* 3 */
    float ln_eps;     /* 1e-5 */
    char act[32];     /* "quick_gelu" */
} MglClipConfig;

/* ConvNeXt trunk of an OpenCLIP timm tower (open_clip_config.json). */
typedef struct {
    char timm_model[64]; /* "convnext_large" */
    int image_size;      /* the OpenCLIP training size (320); MG-LLaVA runs it at 768 */
    int depths[4];       /* from the timm model name; 0 when the name is unknown */
    int dims[4];
    float mean[3], std[3]; /* preprocess_cfg, when present */
    bool has_preprocess;
} MglConvNextConfig;

typedef enum { MGL_LLM_LLAMA = 0, MGL_LLM_PHI3 = 1 } MglLlmArch;

/* Llama-family decoder (LlamaForCausalLM, MistralForCausalLM, Phi3ForCausalLM). */
typedef struct {
    MglLlmArch arch;
    char arch_name[64]; /* "LlamaForCausalLM" */
    int hidden;
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int intermediate;
    int vocab;
    int max_pos;
    float rms_eps;
    float rope_theta;
    bool tie_embeddings;
    int sliding_window;  /* 0 = none */
    char hidden_act[16]; /* "silu" */
    int bos_id, eos_id;  /* -1 when absent; eos is the first of a list */
    int eos_ids[8];
    int n_eos;
} MglLlmConfig;

MglStatus mgl_clip_config_load(const char* path, MglClipConfig* out, MglErr* err);
MglStatus mgl_convnext_config_load(const char* path, MglConvNextConfig* out, MglErr* err);
/* Known timm ConvNeXt names -> depths/dims; false when unknown. */
bool mgl_convnext_arch_from_name(const char* timm_name, int depths[4], int dims[4]);
MglStatus mgl_llm_config_load(const char* path, MglLlmConfig* out, MglErr* err);

/* The mgllava.json manifest (docs/model-format.md). Paths are absolute after loading. */
typedef struct {
    int version;
    char* dir;           /* folder holding the manifest */
    char* name;          /* optional display name */
    char* template_name; /* "vicuna" | "phi3_chat" | "llama3_chat" | "qwen_chat" */
    char* checkpoint;    /* MG-LLaVA .pth / .safetensors; NULL when packed */
    char* clip;          /* HF CLIP folder */
    char* convnext;      /* OpenCLIP ConvNeXt folder or weights file */
    char* llm;           /* HF LLM folder: config + tokenizer (+ weights when llm_weights="llm") */
    bool llm_weights_from_llm_folder;
    int limit_num;      /* box cap trigger; 0 = no cap */
    int max_new_tokens; /* default generation length */
    int object_order;   /* MGL_OBJECT_ORDER_SCORE (default) | MGL_OBJECT_ORDER_READING */
    /* packed form (written by `mgllava convert`) */
    bool packed;
    char* packed_dtype;    /* "f16" | "bf16" | "f32" */
    char** packed_weights; /* NULL-terminated, absolute */
} MglManifest;

MglStatus mgl_manifest_load(const char* path, MglManifest* out, MglErr* err);
void mgl_manifest_clear(MglManifest* m);

#endif
