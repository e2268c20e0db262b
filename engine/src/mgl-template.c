/* mgl-template.c: the prompt templates MG-LLaVA was trained and evaluated
 * with (xtuner's templates.py strings, byte for byte), and the eval-path
 * prompt construction: "<image>\n" + question, split at "<image>", chunks
 * tokenized separately without special tokens, BOS prepended explicitly. */
#include "mgl-internal.h"

#include <glib.h>
#include <stdlib.h>
#include <string.h>

static const MglTemplate k_templates[] = {
    {
        .name = "vicuna",
        .system = "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                  "helpful, detailed, and polite answers to the user's questions. {system}\n ",
        .instruction = "USER: {input} ASSISTANT:",
        .suffix = "",
        .sep = "\n",
        .stop_words = {NULL},
    },
    {
        .name = "phi3_chat",
        .system = "<|system|>{system}<|end|>\n",
        .instruction = "<|user|>{input}<|end|>\n<|assistant|>\n",
        .suffix = "<|end|>",
        .sep = "\n",
        .stop_words = {"<|end|>", NULL},
    },
    {
        .name = "llama3_chat",
        .system = "<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>",
        .instruction = "<|start_header_id|>user<|end_header_id|>\n\n{input}<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n",
        .suffix = "<|eot_id|>",
        .sep = "",
        .stop_words = {"<|eot_id|>", NULL},
    },
    {
        .name = "qwen_chat",
        .system = "<|im_start|>system\n{system}<|im_end|>\n",
        .instruction = "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
        .suffix = "<|im_end|>",
        .sep = "\n",
        .stop_words = {"<|im_end|>", "<|endoftext|>", NULL},
    },
};

static const char* const k_names[] = {"vicuna", "phi3_chat", "llama3_chat", "qwen_chat", NULL};

const MglTemplate* mgl_template_get(const char* name) {
    if (!name) return NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(k_templates); i++)
        if (strcmp(k_templates[i].name, name) == 0) return &k_templates[i];
    return NULL;
}

const char* const* mgl_template_names(void) { return k_names; }

void mgl_prompt_clear(MglPrompt* p) {
    if (!p) return;
    free(p->ids);
    memset(p, 0, sizeof *p);
}

static MglStatus append_ids(int32_t** dst, size_t* n, size_t* cap, const int32_t* src, size_t m, MglErr* err) {
    if (*n + m > *cap) {
        size_t nc = (*n + m) * 2 + 16;
        int32_t* nd = realloc(*dst, nc * sizeof *nd);
        if (!nd) return mgl_err(err, MGL_E_NOMEM, "out of memory");
        *dst = nd;
        *cap = nc;
    }
    memcpy(*dst + *n, src, m * sizeof *src);
    *n += m;
    return MGL_OK;
}

MglStatus mgl_prompt_build(const MglTokenizer* tok, const MglTemplate* tmpl, const char* question, bool with_image,
                           MglPrompt* out, MglErr* err) {
    memset(out, 0, sizeof *out);
    if (!tok || !tmpl || !question)
        return mgl_err(err, MGL_E_INVALID, "prompt: missing tokenizer, template or question");
    if (!g_utf8_validate(question, -1, NULL)) return mgl_err(err, MGL_E_INVALID, "prompt: question is not valid UTF-8");
    if (strstr(question, "<image>"))
        return mgl_err(err, MGL_E_INVALID,
                       "prompt: the question must not contain \"<image>\" (the image slot is added automatically)");

    char* input = with_image ? g_strconcat("<image>\n", question, NULL) : g_strdup(question);
    const char* slot = strstr(tmpl->instruction, "{input}");
    char* prompt = g_strdup_printf("%.*s%s%s", (int)(slot - tmpl->instruction), tmpl->instruction, input,
                                   slot + strlen("{input}"));
    g_free(input);

    const char* cut = with_image ? strstr(prompt, "<image>") : NULL;
    size_t len0 = cut ? (size_t)(cut - prompt) : strlen(prompt);
    const char* c1 = cut ? cut + strlen("<image>") : NULL;

    MglStatus st = MGL_OK;
    int32_t* ids = NULL;
    size_t n = 0, cap = 0;
    int32_t* part = NULL;
    size_t np = 0;
    int32_t bos = mgl_tokenizer_bos(tok);
    if (bos >= 0 && (st = append_ids(&ids, &n, &cap, &bos, 1, err)) != MGL_OK) goto fail;
    if ((st = mgl_tokenizer_encode(tok, prompt, (ptrdiff_t)len0, false, &part, &np, err)) != MGL_OK) goto fail;
    st = append_ids(&ids, &n, &cap, part, np, err);
    free(part);
    part = NULL;
    if (st != MGL_OK) goto fail;
    out->image_pos = n;
    out->has_image = with_image;
    if (c1) {
        if ((st = mgl_tokenizer_encode(tok, c1, -1, false, &part, &np, err)) != MGL_OK) goto fail;
        st = append_ids(&ids, &n, &cap, part, np, err);
        free(part);
        if (st != MGL_OK) goto fail;
    }
    if (n == 0) {
        st = mgl_err(err, MGL_E_INVALID, "prompt: empty");
        goto fail;
    }
    out->ids = ids;
    out->n_ids = n;
    g_free(prompt);
    return MGL_OK;
fail:
    free(ids);
    g_free(prompt);
    memset(out, 0, sizeof *out);
    return st;
}

void mgl_stop_seqs_clear(MglStopSeqs* s) {
    if (!s) return;
    for (int i = 0; i < s->count; i++) free(s->ids[i]);
    memset(s, 0, sizeof *s);
}

MglStatus mgl_template_stop_seqs(const MglTokenizer* tok, const MglTemplate* tmpl, MglStopSeqs* out, MglErr* err) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < 4 && tmpl->stop_words[i]; i++) {
        int32_t* ids = NULL;
        size_t n = 0;
        MglStatus st = mgl_tokenizer_encode(tok, tmpl->stop_words[i], -1, false, &ids, &n, err);
        if (st != MGL_OK) {
            mgl_stop_seqs_clear(out);
            return st;
        }
        out->ids[out->count] = ids;
        out->n[out->count] = n;
        out->count++;
    }
    return MGL_OK;
}
