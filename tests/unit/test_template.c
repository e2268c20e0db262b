/* Prompt templates and eval-path prompt construction against ids computed
 * with HF tokenizers (tools/fixtures/make_prompt_goldens.py). */
#include "mgl-internal.h"
#include "mgl-json.h"
#include "mgl-test.h"

#include <glib.h>

static void check_template_strings(void) {
    const MglTemplate* v = mgl_template_get("vicuna");
    const MglTemplate* p = mgl_template_get("phi3_chat");
    const MglTemplate* l = mgl_template_get("llama3_chat");
    const MglTemplate* q = mgl_template_get("qwen_chat");
    REQUIRE(v && p && l && q);
    CHECK(mgl_template_get("alpaca") == NULL && mgl_template_get(NULL) == NULL);
    CHECK(strcmp(v->instruction, "USER: {input} ASSISTANT:") == 0 && v->stop_words[0] == NULL);
    CHECK(strcmp(p->instruction, "<|user|>{input}<|end|>\n<|assistant|>\n") == 0);
    CHECK(strcmp(p->stop_words[0], "<|end|>") == 0 && p->stop_words[1] == NULL);
    CHECK(strcmp(l->instruction, "<|start_header_id|>user<|end_header_id|>\n\n{input}<|eot_id|>"
                                 "<|start_header_id|>assistant<|end_header_id|>\n\n") == 0);
    CHECK(strcmp(l->sep, "") == 0 && strcmp(l->stop_words[0], "<|eot_id|>") == 0);
    CHECK(strcmp(q->instruction, "<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n") == 0);
    CHECK(strcmp(q->stop_words[0], "<|im_end|>") == 0 && strcmp(q->stop_words[1], "<|endoftext|>") == 0);
    int n = 0;
    for (const char* const* t = mgl_template_names(); *t; t++, n++) CHECK(mgl_template_get(*t) != NULL);
    CHECK(n == 4);
}

static const char* template_of(const char* model) {
    if (strcmp(model, "tiny-vicuna") == 0) return "vicuna";
    if (strcmp(model, "tiny-llama3") == 0) return "llama3_chat";
    if (strcmp(model, "tiny-yi") == 0) return "qwen_chat";
    return "phi3_chat";
}

int main(void) {
    check_template_strings();
    char* path = g_build_filename(test_env("MGL_FIXTURES"), "models", "prompt_goldens.jsonl", NULL);
    char* data = NULL;
    size_t len = 0;
    MglErr err = {0};
    REQUIRE(mgl_read_file(path, 1 << 22, &data, &len, &err) == MGL_OK);
    char** lines = g_strsplit(data, "\n", -1);
    int n_cases = 0;
    for (char** ln = lines; *ln && **ln; ln++) {
        JsonParser* p = NULL;
        JsonObject* o = NULL;
        REQUIRE(mgl_json_parse_object("golden", *ln, strlen(*ln), &p, &o, NULL));
        const char* model = json_object_get_string_member(o, "model");
        char* tdir = g_build_filename(test_env("MGL_FIXTURES"), "models", model, "llm", NULL);
        MglTokenizer* tok = NULL;
        CHECK_MSG(mgl_tokenizer_load(tdir, &tok, &err) == MGL_OK, "%s", err.msg);
        g_free(tdir);
        const MglTemplate* t = mgl_template_get(template_of(model));
        if (tok && json_object_has_member(o, "stop_ids")) {
            MglStopSeqs s;
            CHECK(mgl_template_stop_seqs(tok, t, &s, &err) == MGL_OK);
            JsonArray* a = json_object_get_array_member(o, "stop_ids");
            CHECK((int)json_array_get_length(a) == s.count);
            for (int i = 0; i < s.count && i < (int)json_array_get_length(a); i++) {
                JsonArray* ids = json_array_get_array_element(a, (guint)i);
                CHECK(json_array_get_length(ids) == s.n[i]);
                for (size_t k = 0; k < s.n[i] && k < json_array_get_length(ids); k++)
                    CHECK(s.ids[i][k] == json_array_get_int_element(ids, (guint)k));
            }
            mgl_stop_seqs_clear(&s);
        } else if (tok) {
            const char* qn = json_object_get_string_member(o, "question");
            bool with_image = json_object_get_boolean_member(o, "with_image");
            MglPrompt pr;
            MglStatus st = mgl_prompt_build(tok, t, qn, with_image, &pr, &err);
            CHECK_MSG(st == MGL_OK, "%s", err.msg);
            JsonArray* ids = json_object_get_array_member(o, "ids");
            bool same = st == MGL_OK && pr.n_ids == json_array_get_length(ids) &&
                        (int64_t)pr.image_pos == json_object_get_int_member(o, "image_pos");
            for (size_t k = 0; same && k < pr.n_ids; k++) same = pr.ids[k] == json_array_get_int_element(ids, (guint)k);
            CHECK_MSG(same, "%s: prompt ids differ for question \"%s\" (image %d)", model, qn, with_image);
            mgl_prompt_clear(&pr);
            n_cases++;
        }
        if (tok && strcmp(model, "tiny-vicuna") == 0) {
            MglPrompt pr;
            MglStatus st = mgl_prompt_build(tok, t, "look at <image> twice", true, &pr, &err);
            CHECK(st == MGL_E_INVALID && strstr(err.msg, "<image>"));
            st = mgl_prompt_build(tok, t, "\xff\xfe", true, &pr, &err);
            CHECK(st == MGL_E_INVALID && strstr(err.msg, "UTF-8"));
        }
        mgl_tokenizer_free(tok);
        g_object_unref(p);
    }
    CHECK(n_cases == 40);
    g_strfreev(lines);
    free(data);
    g_free(path);
    TEST_DONE();
}
