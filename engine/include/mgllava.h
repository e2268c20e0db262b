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
    MGL_OK            =  0,  /* success */
    MGL_E_INVALID     = -1,  /* bad argument or API misuse */
    MGL_E_NOMEM       = -2,  /* allocation failed */
    MGL_E_IO          = -3,  /* cannot open, map or read a file */
    MGL_E_FORMAT      = -4,  /* file malformed: bad header, offset, dtype, shape, missing key */
    MGL_E_UNSUPPORTED = -5,  /* valid input this build does not handle */
    MGL_E_DEVICE      = -6,  /* accelerator failure */
    MGL_E_ABORTED     = -7,  /* cancelled by the caller */
    MGL_E_SECURITY    = -8,  /* refused: e.g. a pickle that would call code */
} MglStatus;

typedef struct {
    MglStatus code;
    char      msg[512];
} MglErr;

MGL_API const char* mgl_status_to_string(MglStatus s);
MGL_API const char* mgl_version(void);

/* ---- tokenizer -------------------------------------------------------- */

typedef struct MglTokenizer MglTokenizer;

/* `path` is a folder holding tokenizer.json (preferred) or tokenizer.model,
 * or one of those files itself. tokenizer_config.json beside it, when
 * present, supplies bos/eos names and add_bos_token/add_eos_token. */
MGL_API MglStatus mgl_tokenizer_load(const char* path, MglTokenizer** out, MglErr* err);
MGL_API void      mgl_tokenizer_free(MglTokenizer* tok);

/* Encode UTF-8 text (`len` bytes, may be -1 for NUL-terminated). With
 * `add_special`, BOS/EOS are added as the post-processor (tokenizer.json) or
 * add_bos_token/add_eos_token (tokenizer_config.json / .model) say. Added
 * tokens in the text are always matched first, as HF tokenizers does.
 * *ids is malloc'ed; free with free(). Invalid UTF-8 is an error. */
MGL_API MglStatus mgl_tokenizer_encode(const MglTokenizer* tok, const char* text, ptrdiff_t len,
                                       bool add_special, int32_t** ids, size_t* n_ids, MglErr* err);
/* Decode ids to UTF-8 (malloc'ed, NUL-terminated), as HF `decode` does with
 * skip_special_tokens = `skip_special`. Ids out of range are an error. */
MGL_API MglStatus mgl_tokenizer_decode(const MglTokenizer* tok, const int32_t* ids, size_t n_ids,
                                       bool skip_special, char** text, MglErr* err);

MGL_API int32_t     mgl_tokenizer_n_vocab(const MglTokenizer* tok);
MGL_API int32_t     mgl_tokenizer_bos(const MglTokenizer* tok);   /* -1 if none */
MGL_API int32_t     mgl_tokenizer_eos(const MglTokenizer* tok);   /* -1 if none */
MGL_API int32_t     mgl_tokenizer_token_id(const MglTokenizer* tok, const char* piece); /* -1 if absent */
MGL_API const char* mgl_tokenizer_id_to_piece(const MglTokenizer* tok, int32_t id);    /* NULL if out of range */
MGL_API bool        mgl_tokenizer_is_special(const MglTokenizer* tok, int32_t id);

/* Streaming detokenizer: push ids one at a time, receive only complete UTF-8
 * text (never half a character), with the same spacing as decoding the whole
 * sequence at once. */
typedef struct MglDetok MglDetok;
MGL_API MglDetok* mgl_detok_new(const MglTokenizer* tok, bool skip_special);
MGL_API void      mgl_detok_free(MglDetok* d);
/* Returns a pointer to the new text (valid until the next call), may be "". */
MGL_API const char* mgl_detok_push(MglDetok* d, int32_t id);
/* Text held back (e.g. an incomplete byte sequence) at end of stream. */
MGL_API const char* mgl_detok_flush(MglDetok* d);

/* ---- prompt templates ------------------------------------------------- */

typedef struct {
    const char* name;          /* "vicuna", "phi3_chat", "llama3_chat", "qwen_chat" */
    const char* system;        /* SYSTEM format, "{system}" placeholder; unused by default */
    const char* instruction;   /* INSTRUCTION format, "{input}" placeholder */
    const char* suffix;        /* may be "" */
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
    size_t   n_ids;
    size_t   image_pos;
    bool     has_image;
} MglPrompt;

/* Builds the eval-path prompt: INSTRUCTION.format(input = "<image>\n" +
 * question) when `with_image`, else INSTRUCTION.format(input = question);
 * split at "<image>", chunks tokenized separately without specials, BOS
 * prepended explicitly (when the tokenizer has one). A question that itself
 * contains "<image>" is an error. */
MGL_API MglStatus mgl_prompt_build(const MglTokenizer* tok, const MglTemplate* tmpl,
                                   const char* question, bool with_image,
                                   MglPrompt* out, MglErr* err);
MGL_API void      mgl_prompt_clear(MglPrompt* p);

/* Stop words as token sequences (for matching on generated ids), one
 * malloc'ed array per stop word. Template stop words are also matched on the
 * decoded text, as the reference does. */
typedef struct {
    int32_t* ids[4];
    size_t   n[4];
    int      count;
} MglStopSeqs;
MGL_API MglStatus mgl_template_stop_seqs(const MglTokenizer* tok, const MglTemplate* tmpl,
                                         MglStopSeqs* out, MglErr* err);
MGL_API void      mgl_stop_seqs_clear(MglStopSeqs* s);

#ifdef __cplusplus
}
#endif
#endif /* MGLLAVA_H */
