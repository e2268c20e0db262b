/* mgllava.h: the public API of libmgllava, the GStreamer-free MG-LLaVA engine.
 *
 * Conventions: every fallible call returns an MglStatus and, when `err` is
 * non-NULL, fills it with a one-line message naming the file/object and the
 * problem. Objects are opaque; every *_free() accepts NULL. Nothing here
 * aborts on bad input. */
#ifndef MGLLAVA_H
#define MGLLAVA_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MGL_API __attribute__((visibility("default")))
#else
#define MGL_API
#endif

/* ---- status and errors ------------------------------------------------ */

typedef enum {
    MGL_OK = 0,             /* success */
    MGL_E_INVALID = -1,     /* bad argument or API misuse */
    MGL_E_NOMEM = -2,       /* allocation failed */
    MGL_E_IO = -3,          /* cannot open, map or read a file */
    MGL_E_FORMAT = -4,      /* file malformed: bad header, offset, dtype, shape, missing key */
    MGL_E_UNSUPPORTED = -5, /* valid input this build does not handle */
    MGL_E_DEVICE = -6,      /* accelerator failure */
    MGL_E_ABORTED = -7,     /* cancelled by the caller */
    MGL_E_SECURITY = -8,    /* refused: e.g. a pickle that would call code */
} MglStatus;

typedef struct {
    MglStatus code;
    char msg[512];
} MglErr;

MGL_API const char* mgl_status_to_string(MglStatus s);
MGL_API const char* mgl_version(void);

/* ---- tokenizer -------------------------------------------------------- */

typedef struct MglTokenizer MglTokenizer;

/* `path` is a folder holding tokenizer.json (preferred) or tokenizer.model,
 * or one of those files itself. tokenizer_config.json beside it, when
 * present, supplies bos/eos names and add_bos_token/add_eos_token. */
MGL_API MglStatus mgl_tokenizer_load(const char* path, MglTokenizer** out, MglErr* err);
MGL_API void mgl_tokenizer_free(MglTokenizer* tok);

/* Encode UTF-8 text (`len` bytes, may be -1 for NUL-terminated). With
 * `add_special`, BOS/EOS are added as the post-processor (tokenizer.json) or
 * add_bos_token/add_eos_token (tokenizer_config.json / .model) say. Added
 * tokens in the text are always matched first, as HF tokenizers does.
 * *ids is malloc'ed; free with free(). Invalid UTF-8 is an error. */
MGL_API MglStatus mgl_tokenizer_encode(const MglTokenizer* tok, const char* text, ptrdiff_t len, bool add_special,
                                       int32_t** ids, size_t* n_ids, MglErr* err);
/* Decode ids to UTF-8 (malloc'ed, NUL-terminated), as HF transformers'
 * `decode` does with skip_special_tokens = `skip_special`, including its
 * clean_up_tokenization_spaces step when the tokenizer has it on (see
 * mgl_tokenizer_clean_up_spaces). Ids out of range are an error. */
MGL_API MglStatus mgl_tokenizer_decode(const MglTokenizer* tok, const int32_t* ids, size_t n_ids, bool skip_special,
                                       char** text, MglErr* err);

MGL_API int32_t mgl_tokenizer_n_vocab(const MglTokenizer* tok);
MGL_API int32_t mgl_tokenizer_bos(const MglTokenizer* tok);                         /* -1 if none */
MGL_API int32_t mgl_tokenizer_eos(const MglTokenizer* tok);                         /* -1 if none */
MGL_API int32_t mgl_tokenizer_token_id(const MglTokenizer* tok, const char* piece); /* -1 if absent */
MGL_API const char* mgl_tokenizer_id_to_piece(const MglTokenizer* tok, int32_t id); /* NULL if out of range */
MGL_API bool mgl_tokenizer_is_special(const MglTokenizer* tok, int32_t id);
/* Whether decoding applies transformers' clean_up_tokenization (" ." -> ".",
 * " ?" -> "?", " !" -> "!", " ," -> ",", " ' " -> "'", " n't" -> "n't",
 * " 'm" -> "'m", " 's" -> "'s", " 've" -> "'ve", " 're" -> "'re", in that
 * order): tokenizer_config.json's clean_up_tokenization_spaces when set, else
 * the default of the tokenizer class AutoTokenizer would load, as in the
 * transformers versions the official MG-LLaVA code ran on (4.36-4.44):
 * false for LlamaTokenizer (Vicuna, Phi-3) and the other classes that
 * default it off, true for PreTrainedTokenizerFast (Llama-3) and the rest.
 * The setter overrides it for decoders made afterwards; decode and MglDetok
 * read it. */
MGL_API bool mgl_tokenizer_clean_up_spaces(const MglTokenizer* tok);
MGL_API void mgl_tokenizer_set_clean_up_spaces(MglTokenizer* tok, bool on);

/* Streaming detokenizer: push ids one at a time, receive only complete UTF-8
 * text (never half a character), with the same spacing as decoding the whole
 * sequence at once (clean-up included: a space that a later token may remove,
 * " ." -> ".", is held back until that token comes). */
typedef struct MglDetok MglDetok;
MGL_API MglDetok* mgl_detok_new(const MglTokenizer* tok, bool skip_special);
MGL_API void mgl_detok_free(MglDetok* d);
/* Returns a pointer to the new text (valid until the next call), may be "". */
MGL_API const char* mgl_detok_push(MglDetok* d, int32_t id);
/* Text held back (e.g. an incomplete byte sequence) at end of stream. */
MGL_API const char* mgl_detok_flush(MglDetok* d);

/* ---- prompt templates ------------------------------------------------- */

typedef struct {
    const char* name;        /* "vicuna", "phi3_chat", "llama3_chat", "qwen_chat" */
    const char* system;      /* SYSTEM format, "{system}" placeholder; unused by default */
    const char* instruction; /* INSTRUCTION format, "{input}" placeholder */
    const char* suffix;      /* may be "" */
    const char* sep;
    const char* stop_words[4]; /* NULL-terminated */
} MglTemplate;

MGL_API const MglTemplate* mgl_template_get(const char* name); /* NULL if unknown */
MGL_API const char* const* mgl_template_names(void);           /* NULL-terminated */

/* The tokenized prompt of one single-turn request: [BOS] chunk0 <image> chunk1.
 * `image_pos` is the index in `ids` where the visual tokens go (ids holds only
 * text tokens; the image slot is not a token). */
typedef struct {
    int32_t* ids;
    size_t n_ids;
    size_t image_pos;
    bool has_image;
} MglPrompt;

/* Builds the eval-path prompt: INSTRUCTION.format(input = "<image>\n" +
 * question) when `with_image`, else INSTRUCTION.format(input = question);
 * split at "<image>", chunks tokenized separately without specials, BOS
 * prepended explicitly (when the tokenizer has one). A question that itself
 * contains "<image>" is an error. */
MGL_API MglStatus mgl_prompt_build(const MglTokenizer* tok, const MglTemplate* tmpl, const char* question,
                                   bool with_image, MglPrompt* out, MglErr* err);
MGL_API void mgl_prompt_clear(MglPrompt* p);

/* Stop words as token sequences (for matching on generated ids), one
 * malloc'ed array per stop word. Template stop words are also matched on the
 * decoded text, as the reference does. */
typedef struct {
    int32_t* ids[4];
    size_t n[4];
    int count;
} MglStopSeqs;
MGL_API MglStatus mgl_template_stop_seqs(const MglTokenizer* tok, const MglTemplate* tmpl, MglStopSeqs* out,
                                         MglErr* err);
MGL_API void mgl_stop_seqs_clear(MglStopSeqs* s);


/* ---- model files -------------------------------------------------------- */

/* A human-readable summary of `path`: a model folder (every component, its
 * dims, tensors and bytes, the tokenizer; validated as mgl_model_load does)
 * or a single weights file (.safetensors, .pth, .bin: its tensors). *text
 * (malloc'ed) is set whenever something could be read, also when the result
 * is an error (a model whose tensors do not match its configs). */
MGL_API MglStatus mgl_inspect(const char* path, char** text, MglErr* err);
/* Pack the model at `model_path` into `out_dir` (created): mmap-able
 * safetensors in `dtype` ("f16", "bf16" or "f32"; NULL = "f16"), the configs,
 * the tokenizer files and a packed mgllava.json. "q8" or "q4" quantize the
 * LLM's linear layers (and lm_head) and pack the rest in f16; options follow
 * after commas: "q4,group=64,head=keep,projectors=q,float=f32"
 * (docs/quantization.md). */
MGL_API MglStatus mgl_convert(const char* model_path, const char* out_dir, const char* dtype, MglErr* err);

/* Trim in place the whitespace Python's str.strip() removes (str.isspace),
 * as the reference does to an answer. */
MGL_API void mgl_text_strip(char* s);

/* ---- model and inference ---------------------------------------------- */

typedef struct MglModel MglModel; /* immutable after load; shareable by several MglCtx */
typedef struct MglCtx MglCtx;     /* per-stream state (KV cache, scratch); one thread at a time */

/* A load's progress: fraction in [0, 1]; false = stop loading. */
typedef bool (*MglProgressFunc)(double fraction, const char* what, void* user_data);

/* Model parameters: where the weights live and in what precision. n_ctx is
 * the default context length of the contexts made with mgl_ctx_new(). */
typedef struct {
    const char* device;    /* "auto" (default), "cpu" or "cuda" */
    int gpu_id;            /* CUDA ordinal */
    int n_threads;         /* CPU threads; 0 = all cores */
    int n_ctx;             /* max prompt + generated tokens; 0 = the LLM's max_position_embeddings */
    const char* precision; /* GPU weights and KV cache: "f16" (default, also when NULL), "bf16" or "f32".
                            * The CPU computes in f32 unless "bf16": then its matrix products round
                            * activations and weights to bf16 (vdpbf16ps, where the CPU has
                            * AVX512_BF16) and its KV cache is bf16 (docs/cpu.md) */
    /* Load progress (optional): called on the loading thread with the
     * fraction done (0 to 1, never decreasing) and what is being loaded
     * ("reading weights (1.2 of 13.5 GB)"); returning false aborts the load
     * (mgl_model_load returns MGL_E_ABORTED, nothing leaked). */
    MglProgressFunc progress;
    void* progress_data;
} MglModelParams;

MGL_API MglModelParams mgl_model_default_params(void);
/* `path`: a model folder (mgllava.json, original downloads or packed). Every
 * tensor is validated before use. */
MGL_API MglStatus mgl_model_load(const char* path, const MglModelParams* params, MglModel** out, MglErr* err);
MGL_API void mgl_model_free(MglModel* model);
MGL_API const MglTokenizer* mgl_model_tokenizer(const MglModel* model);
MGL_API const MglTemplate* mgl_model_template(const MglModel* model);
MGL_API int mgl_model_default_max_new_tokens(const MglModel* model);

/* Context parameters (per stream, as llama.h separates them from the model's). */
typedef struct {
    int n_ctx;                /* max prompt + generated tokens; 0 = the model's default (MglModelParams.n_ctx) */
    const char* kv_precision; /* KV cache: "f16", "bf16" or "f32"; NULL = the model's precision (on the
                               * CPU: f32, bf16 at precision "bf16", f16 for q8/q4 weights) */
} MglCtxParams;

MGL_API MglCtxParams mgl_ctx_default_params(void);
MGL_API MglStatus mgl_ctx_new_with_params(MglModel* model, const MglCtxParams* params, MglCtx** out, MglErr* err);
/* mgl_ctx_new_with_params() with the defaults. */
MGL_API MglStatus mgl_ctx_new(MglModel* model, MglCtx** out, MglErr* err);
MGL_API void mgl_ctx_free(MglCtx* ctx);

/* One detector box in original-image pixels (the MG-LLaVA offline-detector record). */
typedef struct {
    float x1, y1, x2, y2;
    float score;
    const char* label; /* class name; NMS is class-aware */
} MglBox;

typedef struct {
    const uint8_t* data; /* packed RGB, 8 bits per channel */
    int width, height;
    int stride; /* bytes per row, >= 3*width */
} MglImage;

/* The order the object tokens follow (MglGenParams.object_order). */
typedef enum {
    MGL_OBJECT_ORDER_MODEL = -1, /* the manifest's "object_order" (default "score") */
    MGL_OBJECT_ORDER_SCORE = 0,  /* NMS output: by score, ties in input order (the official code) */
    MGL_OBJECT_ORDER_READING = 1 /* row third of the box centre, then the centre's x (left to right) */
} MglObjectOrder;

/* Called with each generated token and its newly complete text (may be "");
 * return false to stop generation. When generation ends, text the streaming
 * detokenizer still held back (an incomplete character, a space the
 * tokenizer's clean-up might have removed) comes in one last call with
 * id -1, so the pieces add up to the answer. */
typedef bool (*MglTokenFunc)(int32_t id, const char* text, void* user_data);

/* Constrained decoding: called before each token is sampled with the ids
 * generated so far; clears the bits of the tokens that may not come next in
 * `allow` (n_vocab bits, bit i of word i / 32, all set on entry). Sampling
 * then sees those logits as -inf (greedy and sampled alike, on every
 * backend). Return false to leave every token allowed this step. In an
 * MglServer it runs on the scheduler's thread, or, on a device backend, on
 * its mask thread while the device runs the step (one call at a time per
 * request, never two for the same request at once). */
typedef bool (*MglTokenMaskFunc)(const int32_t* generated, size_t n_generated, uint32_t* allow, int32_t n_vocab,
                                 void* user_data);

typedef struct {
    int max_new_tokens; /* <= 0: the model's default (100) */
    float temperature;  /* 0 = greedy (default) */
    float top_p;        /* 1 = off */
    int top_k;          /* 0 = off */
    uint64_t seed;
    int limit_num; /* box cap trigger; -1 = the manifest's value */
    MglTokenFunc on_token;
    void* user_data;
    const volatile int* abort_flag; /* generation stops with MGL_E_ABORTED when *abort_flag != 0 */
    bool use_objects;               /* object tokens from boxes (default true) */
    bool use_high_res;              /* ConvNeXt branch (default true); false = Ff := CLIP features, objects off */
    int object_order;               /* MglObjectOrder; MGL_OBJECT_ORDER_MODEL (default) = the manifest's */
    MglTokenMaskFunc token_mask;    /* NULL = unconstrained */
    void* token_mask_data;
} MglGenParams;

typedef struct {
    double preprocess_ms, vision_ms, prefill_ms, decode_ms;
    int n_prompt_tokens; /* text + visual tokens fed to the LLM */
    int n_generated;
    int n_objects; /* object tokens (>= 1 when objects are used) */
} MglTimings;

MGL_API MglGenParams mgl_gen_default_params(void);
/* "model" | "score" | "reading" -> MglObjectOrder; MGL_E_INVALID for anything else. */
MGL_API MglStatus mgl_object_order_parse(const char* name, int* order);

/* Answer `question` about `image` (with `boxes`, may be NULL/0). The result
 * text (malloc'ed, stripped, special tokens removed) goes to *text; the
 * generated ids to ids and n_ids when non-NULL. */
MGL_API MglStatus mgl_generate(MglCtx* ctx, const MglImage* image, const MglBox* boxes, size_t n_boxes,
                               const char* question, const MglGenParams* params, char** text, int32_t** ids,
                               size_t* n_ids, MglTimings* timings, MglErr* err);

/* ---- video clips: the official video path (spec section 11) ---------------
 *
 * A clip is T frames in time order, each with its own detector boxes. Every
 * frame goes through its own preprocessing (unlike an image: padded to its
 * square with the float CLIP mean, normalized, then resized bilinearly without
 * antialiasing to 336 for CLIP and, independently, to 768 for ConvNeXt), the
 * towers, the fusion, the projector and RoIAlign on its own map and boxes.
 * The prompt is INSTRUCTION.format(input = "<video>\n" + question), split at
 * "<video>": the first chunk is encoded with the tokenizer's special tokens
 * (its BOS), the second without; the frames' tokens fill the slot in time
 * order, [F0 (P image tokens) O0 (N_0 object tokens)] [F1 O1] ..., with no
 * separator, temporal embedding or pooling. */

typedef struct {
    MglImage image;
    const MglBox* boxes; /* this frame's detector boxes (original pixels); may be NULL */
    size_t n_boxes;
} MglClipFrame;

/* Which of `n_available` frames a clip of `n_frames` takes, as the official
 * decord loader: idx[i] = (size_t)(i * (n_available - 1) / (n_frames - 1))
 * (numpy linspace truncated; a frame may repeat when n_available < n_frames). */
MGL_API void mgl_clip_sample_indices(size_t n_available, size_t n_frames, size_t* idx);
/* The most frames whose tokens (P image tokens and at least one object token
 * each), the prompt's text (with `question`; NULL = an empty one) and one new
 * token fit in n_ctx tokens (0 = the model's default context). */
MGL_API int mgl_clip_max_frames(const MglModel* model, int n_ctx, const char* question);
/* MGL_OK when a clip of n_frames fits; else MGL_E_INVALID with a message
 * naming the frames, the tokens they need and the context length. */
MGL_API MglStatus mgl_clip_check(const MglModel* model, int n_ctx, int n_frames, const char* question, MglErr* err);
/* Answer `question` about a clip (frames in time order). As mgl_generate
 * otherwise; timings->n_objects counts the object tokens of all frames. */
MGL_API MglStatus mgl_generate_clip(MglCtx* ctx, const MglClipFrame* frames, size_t n_frames, const char* question,
                                    const MglGenParams* params, char** text, int32_t** ids, size_t* n_ids,
                                    MglTimings* timings, MglErr* err);

/* ---- serving many streams: one scheduler per model ------------------------
 *
 * An MglServer batches requests from many streams onto one model: up to
 * max_batch sequences run at once, each in a slot with its own KV cache.
 * Newly admitted requests get their vision and prefill together; then every
 * step decodes one token for every running sequence in one batched call
 * (continuous batching: a sequence joins and leaves at step boundaries and a
 * finished one frees its slot at once). Admission is round-robin over the
 * streams that have requests waiting, so one busy stream cannot starve the
 * others. On the CPU a sequence's tokens are exactly those it would get alone
 * (greedy or seeded sampling).
 *
 * Results come back through a callback, called exactly once per accepted
 * request, on the server's thread: keep it short (queue the result and
 * return). */

typedef struct MglServer MglServer;
typedef struct MglStream MglStream; /* one submitter (e.g. one element); not thread-safe itself */

typedef struct {
    int max_batch;            /* sequence slots; 0 = derived from free memory and n_ctx (at most 8) */
    int n_ctx;                /* tokens per slot; 0 = the model's default */
    const char* kv_precision; /* as MglCtxParams */
} MglServerParams;

typedef struct {
    MglStatus status;   /* MGL_OK, MGL_E_ABORTED (aborted or the stream freed), or the error */
    const char* error;  /* the one-line message when status != MGL_OK */
    const char* text;   /* the answer (stripped, special tokens removed); valid during the callback */
    const int32_t* ids; /* generated ids */
    size_t n_ids;
    MglTimings timings; /* vision, prefill and decode are the batched calls the request was part of */
    int batch;          /* the largest batch it decoded in */
    /* A constrained request (token_mask): the time the server spent on the
     * masks after its steps, waiting for the mask thread (a device backend,
     * where the masks are computed while the device runs the step) or
     * computing them (the CPU backend); 0 unconstrained. */
    double mask_wait_ms;
} MglResult;

typedef void (*MglResultFunc)(uint64_t request_id, const MglResult* result, void* user_data);

MGL_API MglServerParams mgl_server_default_params(void);
/* Starts the scheduler thread. An explicit max_batch whose KV caches do not
 * fit the free memory is MGL_E_NOMEM naming the sizes. The model must outlive
 * the server. */
MGL_API MglStatus mgl_server_new(MglModel* model, const MglServerParams* params, MglServer** out, MglErr* err);
/* Aborts what is still queued or running (callbacks with MGL_E_ABORTED), joins the thread. */
MGL_API void mgl_server_free(MglServer* server);
MGL_API int mgl_server_max_batch(const MglServer* server);

MGL_API MglStream* mgl_stream_new(MglServer* server);
/* Aborts the stream's requests and returns when none of its callbacks can run any more. */
MGL_API void mgl_stream_free(MglStream* stream);
/* Queues a request: the checks, prompt and image preprocessing happen here,
 * in the caller's thread (errors are returned, no callback follows); the
 * image and boxes are not referenced after the call. params->on_token is not
 * used (results come whole); params->abort_flag is honoured. *id (may be
 * NULL) names the request for mgl_stream_abort. */
MGL_API MglStatus mgl_stream_submit(MglStream* stream, const MglImage* image, const MglBox* boxes, size_t n_boxes,
                                    const char* question, const MglGenParams* params, MglResultFunc done,
                                    void* user_data, uint64_t* id, MglErr* err);
/* Several requests about one frame (several questions, or one per object
 * with its own boxes): the image is preprocessed once, and the vision towers
 * (CLIP, ConvNeXt, fusion) run once for those admitted together. ids[i] (ids
 * may be NULL) names each; on an error none is queued. */
typedef struct {
    const char* question;
    const MglBox* boxes;
    size_t n_boxes;
    const MglGenParams* params; /* NULL = defaults */
    MglResultFunc done;
    void* user_data;
} MglFrameRequest;
MGL_API MglStatus mgl_stream_submit_frame(MglStream* stream, const MglImage* image, const MglFrameRequest* requests,
                                          size_t n, uint64_t* ids, MglErr* err);
/* Queues a clip request (mgl_generate_clip's input): every frame is
 * preprocessed here, in the caller's thread; nothing is referenced after the
 * call. As mgl_stream_submit otherwise. */
MGL_API MglStatus mgl_stream_submit_clip(MglStream* stream, const MglClipFrame* frames, size_t n_frames,
                                         const char* question, const MglGenParams* params, MglResultFunc done,
                                         void* user_data, uint64_t* id, MglErr* err);
/* Aborts one request (id) or all of the stream's (id == 0); each still gets its callback. */
MGL_API void mgl_stream_abort(MglStream* stream, uint64_t id);
/* Requests of this stream accepted and not yet called back. */
MGL_API int mgl_stream_pending(MglStream* stream);

/* ---- structured output: grammar- and JSON-Schema-constrained generation ----
 *
 * An MglGrammar is compiled once per prompt setting from a JSON Schema subset
 * or a grammar in the GBNF-like notation of docs/structured-output.md,
 * against the tokenizer the model uses (each token's bytes go into a trie).
 * It is immutable and may be shared by any number of requests and threads.
 *
 * Each request gets its own MglGrammarState (one per sequence of a batch):
 * bind it to the request's MglGenParams, and the token mask lets through only
 * the tokens whose bytes keep the text inside the grammar, EOS only where the
 * text is complete, other special tokens never. After generation,
 * mgl_grammar_state_finish() tells a complete answer (the text parses and,
 * for a schema, validates) from one the token budget cut off inside the
 * structure. The output may begin with one space (SentencePiece models begin
 * words with one); the text finish() returns leaves it out.
 *
 *   MglGrammar* g;  mgl_grammar_from_schema(mgl_model_tokenizer(model), schema, &g, &err);
 *   MglGrammarState* st;  mgl_grammar_state_new(g, &st, &err);
 *   MglGenParams p = mgl_gen_default_params();  mgl_grammar_state_bind(st, &p);
 *   mgl_generate(ctx, &img, NULL, 0, question, &p, &text, &ids, &n_ids, NULL, &err);
 *   const char* json;
 *   if (mgl_grammar_state_finish(st, ids, n_ids, &json) == MGL_GRAMMAR_COMPLETE) ... json ...
 *   mgl_grammar_state_free(st);  mgl_grammar_free(g);
 *
 * With MglServer, bind a fresh state per submitted request and call finish()
 * with MglResult.ids in its callback; the state must live until then. */

typedef struct MglGrammar MglGrammar;
typedef struct MglGrammarState MglGrammarState;

typedef enum {
    MGL_GRAMMAR_COMPLETE =
        0, /* the text is a whole sentence of the grammar (EOS came there, or the budget ended there) */
    MGL_GRAMMAR_INCOMPLETE = 1, /* the text is the start of one: the token budget (or a stop word) ended it inside */
    MGL_GRAMMAR_INVALID = 2,    /* a token left the grammar: the mask was not applied, or no token could continue */
} MglGrammarResult;

/* Compile grammar text (rule "root" first to match) or a JSON Schema (the
 * subset in docs/structured-output.md; any other keyword is MGL_E_INVALID
 * naming it and where). `tok` may be NULL for a grammar that only checks
 * text (mgl_grammar_match_text); masks need it. */
MGL_API MglStatus mgl_grammar_from_gbnf(const MglTokenizer* tok, const char* gbnf, MglGrammar** out, MglErr* err);
MGL_API MglStatus mgl_grammar_from_schema(const MglTokenizer* tok, const char* json_schema, MglGrammar** out,
                                          MglErr* err);
MGL_API void mgl_grammar_free(MglGrammar* g);
/* The grammar text it was compiled from (for a schema, the rules it became). */
MGL_API const char* mgl_grammar_source(const MglGrammar* g);
/* The tokens that end the answer (allowed only where the text is complete):
 * the tokenizer's EOS by default. Set before making states. */
MGL_API MglStatus mgl_grammar_set_end_tokens(MglGrammar* g, const int32_t* ids, size_t n, MglErr* err);
/* Whether `text` (len bytes; -1 = NUL-terminated) is a whole sentence of
 * the grammar, the start of one, or neither (one leading space allowed). */
MGL_API MglGrammarResult mgl_grammar_match_text(const MglGrammar* g, const char* text, ptrdiff_t len);

/* A request's matcher (needs a grammar made with a tokenizer). */
MGL_API MglStatus mgl_grammar_state_new(const MglGrammar* g, MglGrammarState** out, MglErr* err);
MGL_API void mgl_grammar_state_free(MglGrammarState* st);
/* Back to the start (also done when the mask sees fewer generated ids than before). */
MGL_API void mgl_grammar_state_reset(MglGrammarState* st);
/* params->token_mask = mgl_grammar_token_mask, params->token_mask_data = st. */
MGL_API void mgl_grammar_state_bind(MglGrammarState* st, MglGenParams* params);
/* The MglTokenMaskFunc itself (user_data: the state): advances the state by
 * the ids generated since its last call, then clears the bits of every
 * token that may not come next. */
MGL_API bool mgl_grammar_token_mask(const int32_t* generated, size_t n_generated, uint32_t* allow, int32_t n_vocab,
                                    void* state);
/* After generation: advances over the ids not yet seen (the last sampled
 * token never reaches the mask) and says how the text ended; *text (may be
 * NULL; valid until the state is used again) is the text the grammar
 * matched, without the optional leading space. */
MGL_API MglGrammarResult mgl_grammar_state_finish(MglGrammarState* st, const int32_t* ids, size_t n_ids,
                                                  const char** text);
MGL_API const char* mgl_grammar_result_name(MglGrammarResult r); /* "complete", "incomplete", "invalid" */

/* What the masks of one state cost so far. */
typedef struct {
    uint64_t masks;     /* mask calls that computed a mask */
    uint64_t cached;    /* of those, answered from the state's mask cache */
    double total_ms;    /* time in mgl_grammar_token_mask, all calls */
    double max_ms;      /* the slowest call */
    uint32_t n_states;  /* matcher states made (interned stack sets) */
    uint32_t n_stacks;  /* parser stack nodes made */
    uint64_t cut_short; /* masks that reached the work budget of one mask (a very ambiguous grammar,
                           docs/structured-output.md): tokens not reached were left out */
} MglGrammarStats;
MGL_API void mgl_grammar_state_stats(const MglGrammarState* st, MglGrammarStats* out);

#ifdef __cplusplus
}
#endif
#endif /* MGLLAVA_H */
