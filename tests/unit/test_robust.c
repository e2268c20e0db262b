/* Careless or hostile input that must end in a clear error:
 * - files that are not regular files (a FIFO nobody writes to, a folder)
 *   where a model, a weights file, a config or a tokenizer is expected: a
 *   one-line error naming the file at once, never a wait (a FIFO opened for
 *   reading blocks until a writer appears; alarm() turns a hang into a
 *   failure);
 * - a model whose weights are NaN: the request fails naming the cause
 *   instead of answering token 0 eighty times. */
#include "mgllava.h"
#include "mgl-internal.h"
#include "mgl-json.h"
#include "mgl-model.h"
#include "mgl-test.h"

#include <glib.h>
#include <math.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

static void expect_not_regular(MglStatus st, const MglErr* err, const char* what) {
    CHECK_MSG(st != MGL_OK, "%s: accepted", what);
    CHECK_MSG(strstr(err->msg, "not a regular file") != NULL, "%s: '%s'", what, err->msg);
    printf("  expected error (%s): %s\n", what, err->msg);
}

int main(void) {
    alarm(60);
    char* dir = g_dir_make_tmp("mgl-files-XXXXXX", NULL);
    REQUIRE(dir);
    char* fifo = g_build_filename(dir, "pipe.safetensors", NULL);
    REQUIRE(mkfifo(fifo, 0600) == 0);
    MglErr err = {0};
    char* text = NULL;

    /* a weights file */
    expect_not_regular(mgl_inspect(fifo, &text, &err), &err, "inspect of a FIFO");
    free(text);

    /* a tokenizer file */
    MglTokenizer* tok = NULL;
    char* tj = g_build_filename(dir, "tokenizer.json", NULL);
    REQUIRE(mkfifo(tj, 0600) == 0);
    expect_not_regular(mgl_tokenizer_load(tj, &tok, &err), &err, "tokenizer.json as a FIFO");

    /* a model folder whose manifest is a FIFO */
    char* mdir = g_build_filename(dir, "model", NULL);
    REQUIRE(g_mkdir(mdir, 0700) == 0);
    char* man = g_build_filename(mdir, "mgllava.json", NULL);
    REQUIRE(mkfifo(man, 0600) == 0);
    MglModel* m = NULL;
    MglModelParams mp = mgl_model_default_params();
    mp.device = "cpu";
    expect_not_regular(mgl_model_load(mdir, &mp, &m, &err), &err, "mgllava.json as a FIFO");

    /* the JSON reader every config goes through, and a folder given as a file */
    char* data = NULL;
    size_t len = 0;
    GError* ge = NULL;
    CHECK(!mgl_json_read_file(fifo, 1 << 20, &data, &len, &ge));
    CHECK_MSG(ge && strstr(ge->message, "not a regular file"), "%s", ge ? ge->message : "(none)");
    g_clear_error(&ge);
    CHECK(!mgl_json_read_file(dir, 1 << 20, &data, &len, &ge));
    CHECK_MSG(ge && strstr(ge->message, "not a regular file"), "%s", ge ? ge->message : "(none)");
    g_clear_error(&ge);

    /* NaN weights: a real-shape model made in memory, its final norm poisoned */
    {
        MglModelFiles* f = calloc(1, sizeof *f);
        f->weights = mgl_tset_new();
        f->man.template_name = strdup("vicuna");
        f->man.max_new_tokens = 8;
        f->man.dir = strdup("(synthetic)");
        f->clip = (MglClipConfig){.hidden = 32,
                                  .n_layers = 2,
                                  .n_heads = 2,
                                  .intermediate = 64,
                                  .image_size = 336,
                                  .patch_size = 14,
                                  .n_channels = 3,
                                  .ln_eps = 1e-5f};
        snprintf(f->clip.act, sizeof f->clip.act, "quick_gelu");
        for (int s = 0; s < 4; s++) {
            f->cnx.depths[s] = 1;
            f->cnx.dims[s] = 8 << s;
        }
        f->llm = (MglLlmConfig){.arch = MGL_LLM_LLAMA,
                                .hidden = 32,
                                .n_layers = 1,
                                .n_heads = 2,
                                .n_kv_heads = 2,
                                .head_dim = 16,
                                .intermediate = 64,
                                .vocab = 64,
                                .max_pos = 256,
                                .rms_eps = 1e-5f,
                                .rope_theta = 1e4f};
        REQUIRE(mgl_model_files_synthesize(f, MGL_DT_F32, 7, &err) == MGL_OK);
        const MglTensor* norm = mgl_tset_get(f->weights, "llm.model.norm.weight");
        REQUIRE(norm);
        for (int i = 0; i < 32; i++) ((float*)norm->data)[i] = NAN;
        MglModel* nm = NULL;
        REQUIRE(mgl_model_from_files(f, &mp, &nm, &err) == MGL_OK);
        MglBatchBench bb;
        MglStatus st = mgl_model_bench_batch(nm, 1, 4, 2, &bb, &err);
        CHECK_MSG(st == MGL_E_FORMAT && strstr(err.msg, "not numbers"), "NaN model: %s", err.msg);
        printf("  expected error (NaN weights): %s\n", err.msg);
        mgl_model_free(nm);
    }

    g_unlink(man);
    g_rmdir(mdir);
    g_unlink(tj);
    g_unlink(fifo);
    g_rmdir(dir);
    g_free(man);
    g_free(mdir);
    g_free(tj);
    g_free(fifo);
    g_free(dir);
    TEST_DONE();
}
