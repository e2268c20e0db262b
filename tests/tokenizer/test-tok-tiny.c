/* test-tok-tiny: the small HF fixtures (tools/tokenizer/make_tiny_hf.py):
 * legacy Metaspace pre-tokenizer/decoder with "a b" merges and BOS+EOS
 * template, and GPT-2 ByteLevel with its regex and [a, b] merges; ids,
 * decode and stream decode must match HF. argv[1]: fixture folder name. */
#include "tok-test.h"

int main(int argc, char** argv) {
    if (argc < 2) return 2;
    char* folder = g_build_filename(fixtures_dir(), "tokenizer", argv[1], NULL);
    MglTokenizer* tok = NULL;
    MglErr err = {0};
    MglStatus st = mgl_tokenizer_load(folder, &tok, &err);
    if (st != MGL_OK) {
        fprintf(stderr, "FAIL: load %s: %s\n", folder, err.msg);
        return 1;
    }
    char* gpath = g_build_filename(folder, "golden.jsonl", NULL);
    GPtrArray* gold = read_jsonl(gpath);
    CHECK(gold && gold->len > 0, "cannot read %s", gpath);
    for (guint i = 0; gold && i < gold->len; i++) {
        JsonObject* o = json_node_get_object(gold->pdata[i]);
        const char* text = json_object_get_string_member(o, "text");
        for (int special = 0; special < 2; special++) {
            GArray* want = json_ids(o, special ? "ids" : "ids_no_special");
            int32_t* ids = NULL;
            size_t n = 0;
            st = mgl_tokenizer_encode(tok, text, -1, special, &ids, &n, &err);
            CHECK(st == MGL_OK, "%s:%u encode: %s", gpath, i + 1, err.msg);
            if (st == MGL_OK) {
                char* what = g_strdup_printf("%s:%u special=%d", gpath, i + 1, special);
                check_ids(ids, n, want, what, text);
                g_free(what);
            }
            free(ids);
            g_array_free(want, TRUE);
        }
        GArray* ids = json_ids(o, "ids");
        char* what = g_strdup_printf("%s:%u", gpath, i + 1);
        check_decoded(tok, ids, false, json_object_get_string_member(o, "decoded"), what);
        check_decoded(tok, ids, true, json_object_get_string_member(o, "decoded_skip"), what);
        g_free(what);
        g_array_free(ids, TRUE);
    }
    printf("%s: %u lines, %d failures\n", argv[1], gold ? gold->len : 0, g_failures);
    if (gold) g_ptr_array_unref(gold);
    g_free(gpath);
    g_free(folder);
    mgl_tokenizer_free(tok);
    return g_failures ? 1 : 0;
}
