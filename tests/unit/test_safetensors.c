/* Safetensors reader: files written by the reference library load bit-exactly
 * (all dtypes, sharded index, misaligned data) and every broken file gets a
 * one-line error naming the file. */
#include "mgl-internal.h"
#include "mgl-json.h"
#include "mgl-test.h"

#include <glib.h>
#include <glib/gstdio.h>

static char* fx(const char* rel) { return g_build_filename(test_env("MGL_FIXTURES"), "safetensors", rel, NULL); }

static void check_golden(const MglTensorSet* set, const char* golden_rel, size_t expect_n) {
    char* gp = fx(golden_rel);
    JsonParser* p = NULL;
    JsonObject* root = NULL;
    MglErr err = {0};
    REQUIRE(mgl_json_load_object(gp, 1 << 24, &p, &root, NULL));
    CHECK_MSG(set->n == expect_n, "%zu tensors, expected %zu", set->n, expect_n);
    GList* names = json_object_get_members(root);
    for (GList* l = names; l; l = l->next) {
        const char* name = l->data;
        JsonObject* o = json_object_get_object_member(root, name);
        const MglTensor* t = mgl_tset_get(set, name);
        CHECK_MSG(t != NULL, "tensor %s missing", name);
        if (!t) continue;
        CHECK_MSG(strcmp(mgl_dtype_name(t->dtype), json_object_get_string_member(o, "dtype")) == 0, "%s dtype", name);
        JsonArray* sh = json_object_get_array_member(o, "shape");
        CHECK_MSG((int)json_array_get_length(sh) == t->ndim, "%s ndim", name);
        for (int d = 0; d < t->ndim && d < (int)json_array_get_length(sh); d++)
            CHECK_MSG(t->shape[d] == json_array_get_int_element(sh, d), "%s shape[%d]", name, d);
        CHECK(mgl_tensor_is_contiguous(t));
        const char* hex = json_object_get_string_member(o, "hex");
        size_t nb = mgl_tensor_nbytes(t);
        CHECK_MSG(strlen(hex) == 2 * nb, "%s: %zu bytes vs golden %zu", name, nb, strlen(hex) / 2);
        bool same = strlen(hex) == 2 * nb;
        for (size_t i = 0; same && i < nb; i++) {
            unsigned v;
            sscanf(hex + 2 * i, "%2x", &v);
            same = t->data[i] == v;
        }
        CHECK_MSG(same, "%s: bytes differ from the golden", name);
        /* zero-copy: data lies inside the mapping */
        CHECK(t->map != NULL && (nb == 0 || (t->data >= t->map->data && t->data + nb <= t->map->data + t->map->size)));
        if (mgl_dtype_is_float(t->dtype) && nb) {
            float* f = malloc(sizeof(float) * (size_t)mgl_tensor_numel(t));
            CHECK(mgl_tensor_to_f32(t, f, &err) == MGL_OK);
            free(f);
        }
    }
    g_list_free(names);
    g_object_unref(p);
    g_free(gp);
}

static void good(void) {
    MglErr err = {0};
    MglTensorSet* s = mgl_tset_new();
    char* p = fx("all_dtypes.safetensors");
    CHECK_MSG(mgl_safetensors_load(p, s, &err) == MGL_OK, "%s", err.msg);
    check_golden(s, "all_dtypes.golden.json", 13);
    const MglTensor* t = mgl_tset_get(s, "f32");
    CHECK(t && t->map->mmapped);
    /* f16 widening matches the golden values through mgl_tensor_to_f32 */
    const MglTensor* sp = mgl_tset_get(s, "special");
    float v[6];
    REQUIRE(sp && mgl_tensor_to_f32(sp, v, &err) == MGL_OK);
    CHECK(v[0] > 1e38f && v[1] < -1e38f && v[2] != v[2] && v[5] == 65504.0f);
    mgl_tset_free(s);
    g_free(p);

    s = mgl_tset_new();
    p = fx("model.safetensors.index.json");
    CHECK_MSG(mgl_safetensors_load(p, s, &err) == MGL_OK, "%s", err.msg);
    check_golden(s, "sharded.golden.json", 4);
    mgl_tset_free(s);
    g_free(p);

    s = mgl_tset_new();
    p = fx("misaligned.safetensors");
    CHECK_MSG(mgl_safetensors_load(p, s, &err) == MGL_OK, "%s", err.msg);
    check_golden(s, "misaligned.golden.json", 1);
    t = mgl_tset_get(s, "x");
    CHECK(t && ((uintptr_t)t->data % 4) == 0 && !t->map->mmapped); /* aligned heap copy */
    mgl_tset_free(s);
    g_free(p);

    /* mgl_weights_load dispatches on content */
    s = mgl_tset_new();
    p = fx("all_dtypes.safetensors");
    CHECK(mgl_weights_load(p, s, &err) == MGL_OK && s->n == 13);
    mgl_tset_free(s);
    g_free(p);
}

static void bad(const char* rel, MglStatus want, const char* needle) {
    MglErr err = {0};
    MglTensorSet* s = mgl_tset_new();
    char* p = fx(rel);
    MglStatus st = mgl_weights_load(p, s, &err);
    CHECK_MSG(st == want, "%s: status %d (%s), want %d", rel, st, err.msg, want);
    CHECK_MSG(strstr(err.msg, p) != NULL, "%s: message does not name the file: %s", rel, err.msg);
    CHECK_MSG(!needle || strstr(err.msg, needle), "%s: message lacks '%s': %s", rel, needle, err.msg);
    CHECK_MSG(strchr(err.msg, '\n') == NULL, "%s: message is not one line", rel);
    printf("  %-36s -> %s\n", rel, err.msg);
    mgl_tset_free(s);
    g_free(p);
}

static void roundtrip(void) {
    /* writer -> reader, with f32 -> f16/bf16 conversion and a strided source */
    MglErr err = {0};
    MglTensorSet* s = mgl_tset_new();
    char* p = fx("all_dtypes.safetensors");
    REQUIRE(mgl_safetensors_load(p, s, &err) == MGL_OK);
    g_free(p);
    const MglTensor* src[16];
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) src[n++] = &s->items[i];
    /* a transposed view of f32 */
    MglTensor tr = *mgl_tset_get(s, "f32");
    tr.name = (char*)"f32_t";
    tr.shape[0] = 5;
    tr.shape[1] = 3;
    tr.stride[0] = 1;
    tr.stride[1] = 5;
    src[n++] = &tr;
    char* dir = g_dir_make_tmp("mgl-st-XXXXXX", NULL);
    char* out = g_build_filename(dir, "rt.safetensors", NULL);
    const char* meta[] = {"k", "v\"q", NULL};
    for (int dti = 0; dti < 3; dti++) {
        MglDType dt = dti == 0 ? MGL_DT_F32 : dti == 1 ? MGL_DT_F16 : MGL_DT_BF16;
        CHECK_MSG(mgl_safetensors_write(out, src, n, dt, meta, &err) == MGL_OK, "%s", err.msg);
        MglTensorSet* r = mgl_tset_new();
        CHECK_MSG(mgl_safetensors_load(out, r, &err) == MGL_OK, "%s", err.msg);
        CHECK(r->n == n);
        for (size_t i = 0; i < n; i++) {
            const MglTensor* a = src[i];
            const MglTensor* b = mgl_tset_get(r, a->name);
            REQUIRE(b);
            CHECK(((uintptr_t)b->data % mgl_dtype_size(b->dtype)) == 0);
            CHECK(b->dtype == (mgl_dtype_is_float(a->dtype) ? dt : a->dtype));
            int64_t ne = mgl_tensor_numel(a);
            CHECK(ne == mgl_tensor_numel(b));
            if (mgl_dtype_is_float(a->dtype) && ne) {
                float* fa = malloc(sizeof(float) * (size_t)ne);
                float* fb = malloc(sizeof(float) * (size_t)ne);
                mgl_tensor_to_f32(a, fa, &err);
                mgl_tensor_to_f32(b, fb, &err);
                for (int64_t k = 0; k < ne; k++) {
                    float want = fa[k];
                    if (dt == MGL_DT_F16) want = mgl_f16_to_f32(mgl_f32_to_f16(want));
                    if (dt == MGL_DT_BF16) want = mgl_bf16_to_f32(mgl_f32_to_bf16(want));
                    if (a->dtype == MGL_DT_F64 && dt == MGL_DT_F32) want = fa[k];
                    bool ok = (want != want && fb[k] != fb[k]) || memcmp(&want, &fb[k], 4) == 0;
                    CHECK_MSG(ok, "%s[%lld] dt=%s: %g vs %g", a->name, (long long)k, mgl_dtype_name(dt), want, fb[k]);
                }
                free(fa);
                free(fb);
            } else if (ne) {
                CHECK(memcmp(a->data, b->data, mgl_tensor_nbytes(a)) == 0);
            }
        }
        mgl_tset_free(r);
    }
    remove(out);
    g_rmdir(dir);
    g_free(out);
    g_free(dir);
    mgl_tset_free(s);
}

static void halves(void) {
    /* exhaustive f16 round trip and bf16 rounding */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        float f = mgl_f16_to_f32((uint16_t)h);
        CHECK_MSG(mgl_f32_to_f16(f) == h, "f16 %04x", h);
    }
    CHECK(mgl_f32_to_f16(65520.0f) == 0x7c00);       /* rounds to inf */
    CHECK(mgl_f32_to_f16(5.9604645e-08f) == 0x0001); /* smallest subnormal */
    CHECK(mgl_f32_to_f16(2.9802322e-08f) == 0x0000); /* half of it: ties to even (0) */
    CHECK(mgl_f32_to_bf16(1.00390625f) == 0x3f80);   /* tie to even, down */
    CHECK(mgl_f32_to_bf16(1.01171875f) == 0x3f82);   /* tie to even, up */
}

int main(void) {
    halves();
    good();
    roundtrip();
    bad("bad/truncated.safetensors", MGL_E_FORMAT, "past the end");
    bad("bad/truncated_header.safetensors", MGL_E_FORMAT, "header length");
    bad("bad/tiny.safetensors", MGL_E_FORMAT, "too short");
    bad("bad/empty.safetensors", MGL_E_FORMAT, "too short");
    bad("bad/huge_header.safetensors", MGL_E_FORMAT, "limit");
    bad("bad/not_json.safetensors", MGL_E_FORMAT, "invalid JSON");
    bad("bad/wrong_dtype.safetensors", MGL_E_UNSUPPORTED, "F7");
    bad("bad/size_mismatch.safetensors", MGL_E_FORMAT, "bytes of data");
    bad("bad/past_end.safetensors", MGL_E_FORMAT, "past the end");
    bad("bad/inverted.safetensors", MGL_E_FORMAT, "inverted");
    bad("bad/negative_shape.safetensors", MGL_E_FORMAT, "shape[0]");
    bad("bad/overflow_shape.safetensors", MGL_E_FORMAT, "overflow");
    bad("bad/missing_offsets.safetensors", MGL_E_FORMAT, "data_offsets");
    bad("bad/array_root.safetensors", MGL_E_FORMAT, NULL);
    bad("bad/model.safetensors.index.json", MGL_E_FORMAT, "ghost");
    bad("bad/escape.index.json", MGL_E_FORMAT, "plain file name");
    bad("bad/does_not_exist.safetensors", MGL_E_IO, "cannot open");
    TEST_DONE();
}
