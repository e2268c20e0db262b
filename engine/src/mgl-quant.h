/* mgl-quant.h: weight-only quantization of the LLM's linear layers
 * (`mgllava convert --dtype q8|q4`, docs/quantization.md).
 *
 * A quantized matrix W (N rows = out features, K cols = in features) is two
 * tensors under its canonical name:
 *   NAME         q8: I8 [N, K], one signed byte per weight
 *                q4: U8 [N, mgl_quant_row_bytes(4, K)], two weights a byte
 *   NAME_scale   F16 [N, G]: one scale per row and group of `group` weights
 *                along K (G = ceil(K / group); the last group is shorter when
 *                K is not a multiple of it: no padding to a full group)
 * weight = scale * q, with q in [-127, 127] (q8) or [-8, 7] (q4, stored + 8).
 * q4 rows are blocks of 32 weights, 16 bytes each; the last block of a row,
 * of L < 32 weights, takes ceil(L/2) bytes. In a block of L weights with
 * h = ceil(L/2), byte j holds weight j in its low nibble and weight j + h in
 * its high nibble (8, i.e. zero, where j + h >= L).
 * The group size is not stored: it is a power of two >= 32 (or the whole
 * row, G = 1), and for such sizes G alone names it (mgl_quant_group_for). */
#ifndef MGL_QUANT_H
#define MGL_QUANT_H

#include "mgl-model-files.h"
#include "mgl-ops.h"

#define MGL_QUANT_BLOCK 32

typedef struct {
    int bits;        /* 8 or 4 */
    int group;       /* power of two >= 32; 0 = one group per row (q8 per output channel) */
    bool head;       /* also lm_head (when not tied to the embeddings) */
    bool projectors; /* also the image and box projectors' linear layers */
} MglQuantSpec;

/* Bytes of one quantized row of K weights. */
int64_t mgl_quant_row_bytes(int bits, int64_t K);
/* Groups of a row: ceil(K / group), 1 for group 0. */
int64_t mgl_quant_n_groups(int64_t K, int group);
/* The group length that G groups over K weights stand for (K when G == 1),
 * 0 when no power of two >= 32 gives G groups. */
int64_t mgl_quant_group_for(int64_t K, int64_t G);

/* Quantize rows of f32 weights: q gets N rows of mgl_quant_row_bytes(bits, K)
 * bytes, scales N x n_groups f16 values. Scales are rounded to f16 before
 * the weights are divided by them, so scale * q is the value the kernels use. */
void mgl_quantize_rows(const float* w, int64_t N, int64_t K, int bits, int group, uint8_t* q, uint16_t* scales);
/* The MglWeight of N x K quantized rows `q` with N x G scales. */
MglWeight mgl_quant_weight(const void* q, const uint16_t* scales, int bits, int64_t N, int64_t K, int64_t G);
/* The integer value of weight k of a quantized row (q8 or q4 layout above). */
int mgl_quant_value(const uint8_t* row, int bits, int64_t K, int64_t k);
/* Row r of a quantized W, dequantized to f32. */
void mgl_quant_dequant_row(const MglWeight* W, int64_t r, float* out);
/* q4's kernels take the activations as int8 per whole block of 32 along K
 * (W4A8): xq = round(x / xs) with xs = max |x| / 127 of the block, and xsum
 * the block's sum of xq (for the weights' offset of 8); a row's last partial
 * block stays f32. Fills K / 32 blocks. */
void mgl_quant_act_blocks(const float* x, int64_t K, int8_t* xq, float* xs, int32_t* xsum);
/* The plain reference: y[t, n] = sum over groups of scale * (sum of q * x),
 * one thread, one weight at a time, in double (the kernels' parity tests);
 * with act8, q4's whole blocks take the activations of mgl_quant_act_blocks
 * as the kernels do. */
void mgl_quant_matmul_ref(const float* x, int64_t T, const MglWeight* W, bool act8, float* y);

/* The tensor of a quantized matrix's scales: NAME + "_scale". */
void mgl_quant_scale_name(const char* name, char* out, size_t cap);
/* A quantized tensor `t` of `set` (dtype I8 or U8) standing for an (N, K)
 * matrix: checks its dtype, shape, and its scale tensor (present, F16,
 * [N, G] with G a valid group count, every scale finite); fills `w` when
 * non-NULL. On a problem writes it to `msg` and returns false. */
bool mgl_quant_view(const MglTensorSet* set, const MglTensor* t, int64_t N, int64_t K, MglWeight* w, char* msg,
                    size_t cap);
/* Is tensor dtype `dt` a quantized matrix's (I8 or U8)? */
bool mgl_quant_dtype(MglDType dt);

/* Parses "q8" or "q4" with optional ",group=N", ",head=keep|q",
 * ",projectors=q|keep", ",float=f16|bf16|f32" (the dtype the other
 * tensors are packed in, f16 by default). False on anything else. */
bool mgl_quant_parse(const char* s, MglQuantSpec* q, MglDType* float_dtype);
/* Quantize, in mf->weights, every tensor of the weight table the spec
 * selects (the LLM layers' linear layers, optionally lm_head and the
 * projectors); the model must have been validated. Tensors already
 * quantized are an error. */
MglStatus mgl_quantize_model(MglModelFiles* mf, const MglQuantSpec* q, MglErr* err);
/* A model whose lm_head is tied to the embeddings keeps them in float (the
 * lookup) and, quantized, may carry a copy of them for the logits under this
 * name (with its _scale). */
#define MGL_QUANT_TIED_HEAD "llm.lm_head.weight"
/* That copy, when the model is tied and has one: checked (false with `msg`
 * when malformed) and viewed into `w` (left alone when there is none). */
bool mgl_quant_tied_head(const MglModelFiles* mf, MglWeight* w, char* msg, size_t cap);

/* The sanity figure of a spec on a model's float weights (before
 * mgl_quantize_model): for each selected matrix of layer 0 and lm_head, the
 * relative RMS error of y = W x over up to 256 rows and 4 random x (uniform
 * in [-1, 1]), quantized (as the CPU kernels compute it) against float.
 * A JSON object {"q_proj": 0.0041, ...} (g_free), "{}" when none. */
char* mgl_quant_error_report(const MglModelFiles* mf, const MglQuantSpec* q);

/* Random quantized matrices made directly (benchmarks of models too big to
 * synthesize in float first): every matrix the spec selects that mf->weights
 * lacks, with random levels and one scale 1/sqrt(K) / (127 or 8), the
 * spread of mgl_model_files_synthesize's float weights. Call before
 * mgl_model_files_synthesize, which then fills in the rest. */
MglStatus mgl_quant_synthesize(MglModelFiles* mf, const MglQuantSpec* q, uint64_t seed, MglErr* err);

/* "q4, group 32: 98 tensors, 12.3 MiB" for the quantized tensors of a set,
 * or NULL when there are none (g_free). */
char* mgl_quant_describe(const MglTensorSet* set);

#endif
