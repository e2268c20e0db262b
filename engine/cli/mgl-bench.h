/* mgl-bench.h: real-shape, random-weight benchmarks (`mgllava bench`). */
#ifndef MGL_BENCH_H
#define MGL_BENCH_H

#include <glib.h>
#include "mgl-internal.h"

typedef struct {
    const char* preset;
    MglDType dtype;
    int prompt_tokens; /* LLM prefill length */
    int gen_tokens;    /* decode steps */
    int reps;          /* vision repetitions (median) */
    int n_threads;
    const char* device;       /* NULL/"cpu"; "cuda" or "auto" run the CUDA backend (mgl-bench.c) */
    const char* precision;    /* CUDA: "f16" (default), "bf16", "f32"; the CPU: "bf16" or f32 */
    int quant_bits;           /* 8 or 4: the LLM's matrices quantized (--dtype q8|q4, mgl-quant.h); 0 none */
    const char* kv_precision; /* --kv: the KV cache (NULL: the precision's) */
} MglBenchParams;

const char* mgl_bench_preset_names(void);
/* Appends one JSON object (one line) with the figures to `out`. */
MglStatus mgl_bench_run(const MglBenchParams* p, GString* out, MglErr* err);

/* Write the preset's synthetic model as a packed folder (tokenizer copied from tokenizer_dir). */
MglStatus mgl_bench_save(const MglBenchParams* p, const char* dir, const char* tokenizer_dir, MglErr* err);
/* Load a model folder from disk and time one captioned frame; memory vs file size. */
MglStatus mgl_bench_model(const MglBenchParams* p, const char* path, GString* out, MglErr* err);

#endif
