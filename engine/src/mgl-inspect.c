/* mgl-inspect.c: the public file-level API: a summary of a model folder or
 * of one weights file (`mgllava inspect`), and packing (`mgllava convert`). */
#include "mgl-model-files.h"
#include "mgl-quant.h"

#include <glib.h>
#include <stdio.h>
#include <string.h>

static MglStatus list_weights(const char* path, GString* out, MglErr* err) {
    MglTensorSet* set = mgl_tset_new();
    MglStatus st = mgl_weights_load(path, set, err);
    if (st != MGL_OK) {
        mgl_tset_free(set);
        return st;
    }
    uint64_t total = 0;
    size_t count[MGL_DT_COUNT] = {0};
    for (size_t i = 0; i < set->n; i++) {
        const MglTensor* t = &set->items[i];
        char shape[160] = "";
        size_t k = 0;
        for (int d = 0; d < t->ndim; d++)
            k += (size_t)snprintf(shape + k, sizeof shape - k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        g_string_append_printf(out, "%-64s %-5s [%s] %zu bytes%s\n", t->name, mgl_dtype_name(t->dtype), shape,
                               mgl_tensor_nbytes(t), mgl_tensor_is_contiguous(t) ? "" : " (strided view)");
        total += mgl_tensor_nbytes(t);
        count[t->dtype]++;
    }
    g_string_append_printf(out, "%zu tensors, %llu bytes (", set->n, (unsigned long long)total);
    bool first = true;
    for (int d = 0; d < MGL_DT_COUNT; d++)
        if (count[d]) {
            g_string_append_printf(out, "%s%s x%zu", first ? "" : ", ", mgl_dtype_name((MglDType)d), count[d]);
            first = false;
        }
    g_string_append(out, ")\n");
    char* quant = mgl_quant_describe(set);
    if (quant) g_string_append_printf(out, "quantized: %s\n", quant);
    g_free(quant);
    mgl_tset_free(set);
    return MGL_OK;
}

static MglStatus describe_model(const char* path, GString* out, MglErr* err) {
    MglModelFiles* mf = NULL;
    MGL_TRY(mgl_model_files_open(path, &mf, err));
    MglStatus st = mgl_model_files_validate(mf, err);
    char* d = mgl_model_files_describe(mf);
    g_string_append(out, d);
    g_free(d);
    if (st == MGL_OK) {
        MglTokenizer* tok = NULL;
        st = mgl_tokenizer_load(mf->tokenizer_path, &tok, err);
        if (st == MGL_OK) {
            g_string_append_printf(out, "              %d tokens, bos %d, eos %d\n", mgl_tokenizer_n_vocab(tok),
                                   mgl_tokenizer_bos(tok), mgl_tokenizer_eos(tok));
            if (mgl_tokenizer_n_vocab(tok) > mf->llm.vocab)
                st = mgl_err(err, MGL_E_FORMAT, "%s: tokenizer has %d tokens but the LLM vocab is %d",
                             mf->tokenizer_path, mgl_tokenizer_n_vocab(tok), mf->llm.vocab);
            mgl_tokenizer_free(tok);
        }
    }
    mgl_model_files_free(mf);
    if (st == MGL_OK) g_string_append(out, "status        OK\n");
    return st;
}

MglStatus mgl_inspect(const char* path, char** text, MglErr* err) {
    if (text) *text = NULL;
    if (!path) return mgl_err(err, MGL_E_INVALID, "inspect: no path");
    const bool model = g_file_test(path, G_FILE_TEST_IS_DIR) || g_str_has_suffix(path, "mgllava.json");
    if (!model && !g_file_test(path, G_FILE_TEST_EXISTS))
        return mgl_err(err, MGL_E_IO, "%s: no such file or folder", path);
    GString* out = g_string_new(NULL);
    MglStatus st = model ? describe_model(path, out, err) : list_weights(path, out, err);
    if (text && out->len) *text = strdup(out->str);
    g_string_free(out, TRUE);
    return st;
}

/* q8/q4: the selected matrices quantized, the other tensors in the float dtype */
static MglStatus convert_quantized(const char* model_path, const char* out_dir, const MglQuantSpec* q,
                                   MglDType float_dt, MglErr* err) {
    MglModelFiles* mf = NULL;
    MGL_TRY(mgl_model_files_open(model_path, &mf, err));
    MglStatus st = mgl_model_files_validate(mf, err);
    if (st == MGL_OK) st = mgl_quantize_model(mf, q, err);
    if (st == MGL_OK) st = mgl_model_files_save_packed(mf, out_dir, float_dt, mf->man.llm, err);
    mgl_model_files_free(mf);
    return st;
}

MglStatus mgl_convert(const char* model_path, const char* out_dir, const char* dtype, MglErr* err) {
    MglDType dt;
    MglQuantSpec q;
    if (dtype && dtype[0] == 'q') {
        if (!mgl_quant_parse(dtype, &q, &dt))
            return mgl_err(err, MGL_E_INVALID,
                           "convert: dtype '%s': expected q8 or q4, then optionally ,group=N (a power of two >= 32, "
                           "or 0 for one scale per row) ,head=keep|q ,projectors=q|keep ,float=f16|bf16|f32",
                           dtype);
        if (!model_path || !out_dir)
            return mgl_err(err, MGL_E_INVALID, "convert: model path and output folder are required");
        return convert_quantized(model_path, out_dir, &q, dt, err);
    }
    if (!dtype || !strcmp(dtype, "f16"))
        dt = MGL_DT_F16;
    else if (!strcmp(dtype, "bf16"))
        dt = MGL_DT_BF16;
    else if (!strcmp(dtype, "f32"))
        dt = MGL_DT_F32;
    else
        return mgl_err(err, MGL_E_INVALID, "convert: dtype '%s': expected f16, bf16, f32, q8 or q4", dtype);
    if (!model_path || !out_dir)
        return mgl_err(err, MGL_E_INVALID, "convert: model path and output folder are required");
    return mgl_model_convert(model_path, out_dir, dt, err);
}
