/* test-torch.c: torch.save checkpoint reader against committed fixtures.
 *
 * Good fixtures come with <name>.json golden data (written by
 * tools/fixtures/make_torch_fixtures.py from the tensors torch saved); every
 * tensor must match bit-exactly element by element through its strides. Bad
 * fixtures are listed in bad.json with the expected status. */
#include "mgl-internal.h"
#include "mgl-pickle.h"

#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static char* fixture(const char* name) {
    const char* dir = g_getenv("MGL_FIXTURES");
    g_assert_nonnull(dir);
    return g_build_filename(dir, "torch", name, NULL);
}

static JsonNode* load_json(const char* name) {
    char* p = fixture(name);
    JsonParser* parser = json_parser_new();
    GError* e = NULL;
    g_assert_true(json_parser_load_from_file(parser, p, &e));
    g_assert_no_error(e);
    JsonNode* root = json_node_copy(json_parser_get_root(parser));
    g_object_unref(parser);
    g_free(p);
    return root;
}

static guint8* unhex(const char* s, size_t* n) {
    size_t len = strlen(s);
    g_assert_cmpuint(len % 2, ==, 0);
    guint8* b = g_malloc(len / 2 + 1);
    for (size_t i = 0; i < len / 2; i++)
        b[i] = (guint8)(g_ascii_xdigit_value(s[2 * i]) * 16 + g_ascii_xdigit_value(s[2 * i + 1]));
    *n = len / 2;
    return b;
}

static float golden_f32(const guint8* p, MglDType dt) {
    switch (dt) {
    case MGL_DT_F32: {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    case MGL_DT_F64: {
        double d;
        memcpy(&d, p, 8);
        return (float)d;
    }
    case MGL_DT_F16: {
        guint16 h;
        memcpy(&h, p, 2);
        return mgl_f16_to_f32(h);
    }
    case MGL_DT_BF16: {
        guint16 h;
        memcpy(&h, p, 2);
        return mgl_bf16_to_f32(h);
    }
    case MGL_DT_I64: {
        gint64 v;
        memcpy(&v, p, 8);
        return (float)(double)v;
    }
    case MGL_DT_I32: {
        gint32 v;
        memcpy(&v, p, 4);
        return (float)(double)v;
    }
    case MGL_DT_I16: {
        gint16 v;
        memcpy(&v, p, 2);
        return v;
    }
    case MGL_DT_I8: return (gint8)p[0];
    case MGL_DT_U8: return p[0];
    case MGL_DT_BOOL: return p[0] != 0;
    default: g_assert_not_reached();
    }
}

static void check_tensor(const MglTensor* t, JsonObject* g, bool aligned) {
    MglDType dt;
    g_assert_true(mgl_dtype_from_name(json_object_get_string_member(g, "dtype"), &dt));
    g_assert_cmpint(t->dtype, ==, dt);
    JsonArray* shape = json_object_get_array_member(g, "shape");
    g_assert_cmpint(t->ndim, ==, (int)json_array_get_length(shape));
    for (int i = 0; i < t->ndim; i++) g_assert_cmpint(t->shape[i], ==, json_array_get_int_element(shape, (guint)i));
    size_t nb;
    guint8* want = unhex(json_object_get_string_member(g, "hex"), &nb);
    size_t es = mgl_dtype_size(t->dtype);
    int64_t numel = mgl_tensor_numel(t);
    g_assert_cmpuint(nb, ==, (size_t)numel * es);

    /* every reachable byte lies inside the owning mapping */
    g_assert_nonnull(t->map);
    if (numel > 0) {
        g_assert_true(t->data >= t->map->data && t->data < t->map->data + t->map->size);
        g_assert_cmpuint((uintptr_t)t->data % es, ==, 0);
        if (aligned)
            g_assert_true(t->map->mmapped); /* zero-copy: a view into the file */
        else if (es > 1)
            g_assert_false(t->map->mmapped); /* misaligned storage: heap copy */
    }

    /* element-wise through the strides, bit-exact */
    int64_t idx[MGL_MAX_DIMS] = {0};
    for (int64_t i = 0; i < numel; i++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
        const uint8_t* p = t->data + off * (int64_t)es;
        g_assert_true(p >= t->map->data && p + es <= t->map->data + t->map->size);
        if (memcmp(p, want + (size_t)i * es, es) != 0)
            g_error("tensor '%s' element %" G_GINT64_FORMAT " differs", t->name, i);
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }

    float* f = g_new0(float, (gsize)numel + 1);
    MglErr err = {0};
    g_assert_cmpint(mgl_tensor_to_f32(t, f, &err), ==, MGL_OK);
    for (int64_t i = 0; i < numel; i++) {
        float w = golden_f32(want + (size_t)i * es, t->dtype);
        if (isnan(w))
            g_assert_true(isnan(f[i]));
        else if (memcmp(&w, &f[i], 4) != 0)
            g_error("tensor '%s' f32 element %" G_GINT64_FORMAT ": %g != %g", t->name, i, f[i], w);
    }
    g_free(f);
    g_free(want);
}

static void test_good(gconstpointer data) {
    const char* name = data;
    char* jname = g_strdup_printf("%s.json", name);
    JsonNode* root = load_json(jname);
    JsonObject* o = json_node_get_object(root);
    char* path = fixture(json_object_get_string_member(o, "file"));
    bool aligned = json_object_get_boolean_member(o, "aligned");
    JsonArray* tensors = json_object_get_array_member(o, "tensors");

    MglTensorSet* set = mgl_tset_new();
    MglErr err = {0};
    MglStatus st = mgl_torch_load(path, set, &err);
    if (st != MGL_OK) g_error("%s: %s", path, err.msg);
    g_assert_cmpuint(set->n, ==, json_array_get_length(tensors));
    for (guint i = 0; i < json_array_get_length(tensors); i++) {
        JsonObject* g = json_array_get_object_element(tensors, i);
        const MglTensor* t = mgl_tset_get(set, json_object_get_string_member(g, "name"));
        if (!t) g_error("%s: tensor '%s' missing", path, json_object_get_string_member(g, "name"));
        check_tensor(t, g, aligned);
    }
    mgl_tset_free(set);
    g_free(path);
    json_node_unref(root);
    g_free(jname);
}

/* Views share one storage: tied names point at the same bytes, and the
 * transposed view at the base's. */
static void test_shared_storage(void) {
    char* path = fixture("views.pth");
    MglTensorSet* set = mgl_tset_new();
    MglErr err = {0};
    g_assert_cmpint(mgl_torch_load(path, set, &err), ==, MGL_OK);
    const MglTensor* a = mgl_tset_get(set, "tied_a");
    const MglTensor* b = mgl_tset_get(set, "tied_b");
    const MglTensor* base = mgl_tset_get(set, "base");
    const MglTensor* tr = mgl_tset_get(set, "transposed");
    const MglTensor* sl = mgl_tset_get(set, "slice");
    g_assert_true(a->data == b->data && a->data == base->data && tr->data == base->data);
    g_assert_true(sl->data == base->data + (1 * 6 + 2) * 4);
    g_assert_false(mgl_tensor_is_contiguous(tr));
    g_assert_cmpint(tr->stride[0], ==, 1);
    g_assert_cmpint(tr->stride[1], ==, 6);
    g_assert_true(a->map == base->map);
    g_assert_cmpint(base->map->refcount, ==, (int)set->n); /* one ref per tensor, none leaked */
    mgl_tset_free(set);
    g_free(path);
}

/* A second load into the same set fails on the first duplicate name and
 * leaves the set as it was. */
static void test_duplicate_names(void) {
    char* path = fixture("plain.pth");
    MglTensorSet* set = mgl_tset_new();
    MglErr err = {0};
    g_assert_cmpint(mgl_torch_load(path, set, &err), ==, MGL_OK);
    size_t n = set->n;
    g_assert_cmpint(mgl_torch_load(path, set, &err), ==, MGL_E_FORMAT);
    g_assert_nonnull(strstr(err.msg, "duplicate tensor name"));
    g_assert_nonnull(strstr(err.msg, "plain.pth"));
    g_assert_cmpuint(set->n, ==, n);
    mgl_tset_free(set);
    g_free(path);
}

static MglStatus status_from_name(const char* s) {
    static const struct {
        const char* n;
        MglStatus s;
    } k[] = {
        {"MGL_E_FORMAT", MGL_E_FORMAT},
        {"MGL_E_UNSUPPORTED", MGL_E_UNSUPPORTED},
        {"MGL_E_SECURITY", MGL_E_SECURITY},
        {"MGL_E_IO", MGL_E_IO},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(k); i++)
        if (strcmp(k[i].n, s) == 0) return k[i].s;
    g_error("unknown status %s", s);
}

static void test_bad(void) {
    JsonNode* root = load_json("bad.json");
    JsonArray* arr = json_node_get_array(root);
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonObject* o = json_array_get_object_element(arr, i);
        const char* file = json_object_get_string_member(o, "file");
        const char* marker = json_object_has_member(o, "marker") ? json_object_get_string_member(o, "marker") : NULL;
        if (marker) g_unlink(marker);
        char* path = fixture(file);
        MglTensorSet* set = mgl_tset_new();
        MglErr err = {0};
        MglStatus st = mgl_torch_load(path, set, &err);
        g_test_message("%s -> %s: %s", file, mgl_status_to_string(st), err.msg);
        if (st != status_from_name(json_object_get_string_member(o, "status")))
            g_error("%s: status %s, want %s (%s)", file, mgl_status_to_string(st),
                    json_object_get_string_member(o, "status"), err.msg);
        g_assert_cmpint(err.code, ==, st);
        g_assert_nonnull(strstr(err.msg, file));
        if (!strstr(err.msg, json_object_get_string_member(o, "msg")))
            g_error("%s: message '%s' lacks '%s'", file, err.msg, json_object_get_string_member(o, "msg"));
        g_assert_null(strchr(err.msg, '\n'));
        g_assert_cmpuint(set->n, ==, 0);
        if (marker && g_file_test(marker, G_FILE_TEST_EXISTS)) g_error("%s: payload ran (%s exists)", file, marker);
        mgl_tset_free(set);
        g_free(path);
    }
    json_node_unref(root);
}

/* ---- the pickle VM on its own ------------------------------------------ */

static MglStatus run_pickle(const void* d, size_t n, PkObj** res, MglPickle** vm, MglErr* err) {
    static const MglPickleOpts o = {"mem", "data.pkl", NULL, NULL, NULL};
    return mgl_pickle_run(d, n, &o, vm, res, err);
}

static void expect_fail(const char* d, size_t n, MglStatus want, const char* msg) {
    PkObj* r;
    MglPickle* vm;
    MglErr err = {0};
    MglStatus st = run_pickle(d, n, &r, &vm, &err);
    if (st != want || !strstr(err.msg, msg))
        g_error("pickle %zu bytes: got %d '%s', want %d '%s'", n, st, err.msg, want, msg);
    g_assert_null(vm);
}

#define FAIL(lit, st, msg) expect_fail(lit, sizeof(lit) - 1, st, msg)

static void test_pickle(void) {
    PkObj* r;
    MglPickle* vm;
    MglErr err = {0};
    /* protocol 4 framing, MEMOIZE, SHORT_BINUNICODE, sets, bytes, floats, LONG1 */
    static const char p4[] = "\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00"
                             "}\x94(\x8c\x01"
                             "a\x94"
                             "G\x3f\xf8\x00\x00\x00\x00\x00\x00"
                             "\x8c\x01"
                             "b\x94\x8f\x94(K\x01K\x02\x90"
                             "\x8c\x01"
                             "c\x94"
                             "C\x03xyz"
                             "\x8c\x01"
                             "d\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01"
                             "\x8c\x01"
                             "e\x94\x8a\x02\xff\x7f"
                             "\x8c\x01"
                             "f\x94\x8a\x01\xfe"
                             "\x8c\x01"
                             "g\x94h\x00"
                             "u.";
    g_assert_cmpint(run_pickle(p4, sizeof p4 - 1, &r, &vm, &err), ==, MGL_OK);
    g_assert_cmpint(r->type, ==, PK_DICT);
    g_assert_cmpuint(r->u.seq.n, ==, 14);
    g_assert_cmpfloat(r->u.seq.v[1]->u.f, ==, 1.5);
    g_assert_cmpint(r->u.seq.v[3]->type, ==, PK_SET);
    g_assert_cmpuint(r->u.seq.v[3]->u.seq.n, ==, 2);
    g_assert_cmpint(r->u.seq.v[5]->type, ==, PK_BYTES);
    g_assert_cmpint(r->u.seq.v[7]->type, ==, PK_BIGINT);
    g_assert_cmpint(r->u.seq.v[9]->u.i, ==, 0x7fff);
    g_assert_cmpint(r->u.seq.v[11]->u.i, ==, -2);
    g_assert_true(r->u.seq.v[13] == r); /* memo cycle is fine: no recursion */
    mgl_pickle_free(vm);

    /* text opcodes */
    static const char p0[] = "(lp0\nI42\naI01\naF0.5\naS'a\\'b\\n'\naV\\u20ac\naL-99L\nag0\na.";
    g_assert_cmpint(run_pickle(p0, sizeof p0 - 1, &r, &vm, &err), ==, MGL_OK);
    g_assert_cmpint(r->type, ==, PK_LIST);
    g_assert_cmpuint(r->u.seq.n, ==, 7);
    g_assert_cmpint(r->u.seq.v[0]->u.i, ==, 42);
    g_assert_true(r->u.seq.v[1]->type == PK_BOOL && r->u.seq.v[1]->u.b);
    g_assert_cmpstr(r->u.seq.v[3]->u.str.s, ==, "a'b\n");
    g_assert_cmpstr(r->u.seq.v[4]->u.str.s, ==, "\xe2\x82\xac");
    g_assert_cmpint(r->u.seq.v[5]->u.i, ==, -99);
    mgl_pickle_free(vm);

    /* an unknown global called stays an inert object */
    static const char g[] = "\x80\x02"
                            "cnumpy.core.multiarray\n_reconstruct\n)R}b.";
    g_assert_cmpint(run_pickle(g, sizeof g - 1, &r, &vm, &err), ==, MGL_OK);
    char buf[128];
    g_assert_cmpstr(mgl_pickle_describe(r, buf, sizeof buf), ==, "numpy.core.multiarray._reconstruct object");
    mgl_pickle_free(vm);

    FAIL("\x80\x02\xff", MGL_E_FORMAT, "unknown pickle opcode 0xff at offset 2");
    FAIL("\x80\x06.", MGL_E_UNSUPPORTED, "protocol 6");
    FAIL("N", MGL_E_FORMAT, "without STOP");
    FAIL(".", MGL_E_FORMAT, "underflow");
    FAIL("(.", MGL_E_FORMAT, "underflow"); /* STOP cannot pop below a MARK */
    FAIL("Na", MGL_E_FORMAT, "underflow");
    FAIL("h\x05.", MGL_E_FORMAT, "memo key 5 not found");
    FAIL("X\xff\xff\xff\x7f"
         "abc",
         MGL_E_FORMAT, "runs past the end");
    FAIL("\x8d\xff\xff\xff\xff\xff\xff\xff\xff", MGL_E_FORMAT, "runs past the end");
    FAIL("\x8b\xff\xff\xff\xff", MGL_E_FORMAT, "negative length");
    FAIL("\x82\x01", MGL_E_UNSUPPORTED, "EXT1");
    FAIL("\x97", MGL_E_UNSUPPORTED, "out-of-band");
    FAIL("Pfoo\n.", MGL_E_UNSUPPORTED, "PERSID");
    FAIL("N\x8c\x01xQ.", MGL_E_UNSUPPORTED, "persistent id");
    FAIL("K\x01K\x02K\x03"
         "d.",
         MGL_E_FORMAT, "MARK expected");
    FAIL("(K\x01"
         "d.",
         MGL_E_FORMAT, "odd number");
    FAIL("Ifoo\n.", MGL_E_FORMAT, "bad integer");
    FAIL("Sfoo\n.", MGL_E_FORMAT, "not quoted");
    FAIL("cos\nsystem\n", MGL_E_FORMAT, "without STOP"); /* a mere reference is inert */
    FAIL("cposix\nsystem\n\x8c\x02idR.", MGL_E_SECURITY, "posix.system");
    FAIL("csubprocess\nPopen\n)\x81.", MGL_E_SECURITY, "subprocess.Popen");
    FAIL("(cbuiltins\nexec\no.", MGL_E_SECURITY, "builtins.exec");
    FAIL("c__builtin__\ngetattr\n)R.", MGL_E_SECURITY, "__builtin__.getattr");

    /* deep nesting is bounded, never recursive */
    size_t n = 200000;
    char* deep = g_malloc(n + 2);
    memset(deep, '(', n);
    deep[n] = '.';
    expect_fail(deep, n + 1, MGL_E_FORMAT, "nested MARKs");
    /* [[[[...]]]] 100k deep: push the lists, then APPEND each into the one below */
    memset(deep, ']', n / 2);
    memset(deep + n / 2, 'a', n / 2 - 1);
    deep[n - 1] = '.';
    g_assert_cmpint(run_pickle(deep, n, &r, &vm, &err), ==, MGL_OK);
    g_assert_cmpint(r->type, ==, PK_LIST);
    g_assert_cmpuint(r->u.seq.n, ==, 1);
    mgl_pickle_free(vm);
    g_free(deep);
}

/* Rebuild forms the torch 1.13 fixtures do not produce: parameters with
 * state, _rebuild_tensor_v3 with a dtype over an untyped storage, torch.Size,
 * dtype globals as storage type, and subclass wrappers nested too deep. */
static const uint8_t k_storage[16] __attribute__((aligned(16))) = {
    0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40}; /* 1,2,3,4 as f32 */

static MglStatus fake_storage(void* ud, const char* key, const uint8_t** data, uint64_t* nbytes, MglErr* err) {
    if (strcmp(key, "0") != 0) return mgl_err(err, MGL_E_FORMAT, "mem: storage '%s' missing", key);
    *data = k_storage;
    *nbytes = sizeof k_storage;
    return MGL_OK;
}

#define PID(type, n)                                                                                                   \
    "(X\x07\x00\x00\x00storagectorch\n" type "\nX\x01\x00\x00\x00"                                                     \
    "0X\x03\x00\x00\x00"                                                                                               \
    "cpuK" n "tQ"
#define V2(type, n, rest) "ctorch._utils\n_rebuild_tensor_v2\n(" PID(type, n) rest "\x89NtR"

static void test_pickle_rebuild(void) {
    MglMap* map = calloc(1, sizeof *map);
    map->path = strdup("mem");
    map->data = k_storage;
    map->size = sizeof k_storage;
    map->refcount = 1;
    map->mmapped = true; /* stands for the file mapping; never freed through here */
    MglPickleOpts o = {"mem", "data.pkl", map, fake_storage, NULL};
    static const char pk[] =
        "\x80\x02}("
        "X\x01\x00\x00\x00"
        "actorch._utils\n_rebuild_parameter_with_state\n(" V2(
            "FloatStorage", "\x04", "K\x01(K\x03t(K\x01t") "\x88N}t"
                                                           "R"
                                                           "X\x01\x00\x00\x00"
                                                           "bctorch._utils\n_rebuild_tensor_v3\n(" PID(
                                                               "UntypedStorage",
                                                               "\x10") "K\x02(K\x02t(K\x01t\x89Nctorch\nint16\nNtR"
                                                                       "X\x01\x00\x00\x00"
                                                                       "cctorch\nSize\n(K\x02K\x03l\x85R"
                                                                       "X\x01\x00\x00\x00"
                                                                       "dctorch._tensor\n_rebuild_from_type_v2\n("
                                                                       "ctorch._utils\n_rebuild_tensor_v2\n"
                                                                       "cfoo\nSub\n"
                                                                       "(" PID("float32", "\x04") "K\x00)(t\x89Nt"
                                                                                                  "}tR"
                                                                                                  "u.";
    PkObj* r;
    MglPickle* vm;
    MglErr err = {0};
    MglStatus st = mgl_pickle_run((const uint8_t*)pk, sizeof pk - 1, &o, &vm, &r, &err);
    if (st != MGL_OK) g_error("%s", err.msg);
    g_assert_cmpuint(r->u.seq.n, ==, 8);
    PkObj* a = r->u.seq.v[1];
    g_assert_cmpint(a->type, ==, PK_TENSOR);
    g_assert_cmpint(a->u.tensor.dtype, ==, MGL_DT_F32);
    g_assert_cmpint(a->u.tensor.shape[0], ==, 3);
    g_assert_true(a->u.tensor.data == k_storage + 4);
    PkObj* b = r->u.seq.v[3];
    g_assert_cmpint(b->type, ==, PK_TENSOR);
    g_assert_cmpint(b->u.tensor.dtype, ==, MGL_DT_I16);
    g_assert_true(b->u.tensor.data == k_storage + 4); /* offset 2 int16 elements */
    PkObj* c = r->u.seq.v[5];
    g_assert_cmpint(c->type, ==, PK_TUPLE);
    g_assert_cmpuint(c->u.seq.n, ==, 2);
    PkObj* d = r->u.seq.v[7];
    g_assert_cmpint(d->type, ==, PK_TENSOR);
    g_assert_cmpint(d->u.tensor.ndim, ==, 0);
    mgl_pickle_free(vm);
    g_assert_cmpint(map->refcount, ==, 1); /* every storage/tensor reference dropped */

    /* v3 reaching past the 16-byte storage as int64: 2 elements from offset 1 */
    static const char oob[] = "ctorch._utils\n_rebuild_tensor_v3\n(" PID(
        "UntypedStorage", "\x10") "K\x01(K\x02t(K\x01t\x89Nctorch\nint64\nNtR.";
    st = mgl_pickle_run((const uint8_t*)oob, sizeof oob - 1, &o, &vm, &r, &err);
    g_assert_cmpint(st, ==, MGL_E_FORMAT);
    g_assert_nonnull(strstr(err.msg, "reaches past"));
    /* storage count larger than the entry */
    static const char big[] = V2("DoubleStorage", "\x03", "K\x00(K\x01t(K\x01t") ".";
    st = mgl_pickle_run((const uint8_t*)big, sizeof big - 1, &o, &vm, &r, &err);
    g_assert_cmpint(st, ==, MGL_E_FORMAT);
    g_assert_nonnull(strstr(err.msg, "exceed"));
    /* unsupported storage type */
    static const char cplx[] = V2("ComplexFloatStorage", "\x01", "K\x00)(t") ".";
    st = mgl_pickle_run((const uint8_t*)cplx, sizeof cplx - 1, &o, &vm, &r, &err);
    g_assert_cmpint(st, ==, MGL_E_UNSUPPORTED);
    g_assert_nonnull(strstr(err.msg, "torch.ComplexFloatStorage"));
    g_assert_cmpint(map->refcount, ==, 1);
    free(map->path);
    free(map);
}

/* ---- getattr: nested classes in metadata, and nothing else -------------- */

/* Python's pickler below protocol 4 writes a nested class Outer.Inner as
 * getattr(<module.Outer>, "Inner"): __builtin__.getattr at protocol 2
 * (torch.save's default), builtins.getattr at 3. The nested_class_p2/p3
 * fixtures (tools/fixtures/make_getattr_fixtures.py, Python's own pickler)
 * load through test_good; here, the VM's view of the pattern and every
 * getattr that is not it. */
#define GETATTR2 "c__builtin__\ngetattr\n"
#define GETATTR3 "cbuiltins\ngetattr\n"
/* BINUNICODE of a short literal: XSTR("\x05", "Inner") */
#define XSTR(n, lit) "X" n "\x00\x00\x00" lit

static void test_getattr(void) {
    PkObj* r;
    MglPickle* vm;
    MglErr err = {0};
    char buf[160];
    /* [getattr(m.Outer, "Inner"), getattr(getattr(m.Outer, "Inner"), "Deeper")(),
     *  getattr(m.Outer, "Inner")() with state, protocol 4's builtins.getattr via STACK_GLOBAL] */
    static const char ok[] =
        "\x80\x02]q\x00(" GETATTR2 "q\x01"
        "cm.x\nOuter\n" XSTR(
            "\x05",
            "Inner") "\x86R"
                     "q\x02"
                     "h\x01h\x02" XSTR(
                         "\x06",
                         "Deeper") "\x86R)\x81"
                                   "h\x02)\x81}" XSTR(
                                       "\x01",
                                       "a") "K\x01sb"
                                            "\x8c\x08"
                                            "builtins"
                                            "\x8c\x07"
                                            "getattr"
                                            "\x93"
                                            "cm.x\nOuter\n" XSTR("\x05", "Inner") "\x86R" GETATTR3 "cm\nC\n" XSTR(
                                                "\x05", "\xc3\xa9t\xc3\xa9") "\x86R"
                                                                             "e.";
    MglStatus st = run_pickle(ok, sizeof ok - 1, &r, &vm, &err);
    if (st != MGL_OK) g_error("%s", err.msg);
    g_assert_cmpint(r->type, ==, PK_LIST);
    g_assert_cmpuint(r->u.seq.n, ==, 5);
    g_assert_cmpstr(mgl_pickle_describe(r->u.seq.v[0], buf, sizeof buf), ==, "reference to m.x.Outer.Inner");
    g_assert_cmpstr(mgl_pickle_describe(r->u.seq.v[1], buf, sizeof buf), ==, "m.x.Outer.Inner.Deeper object");
    g_assert_cmpstr(mgl_pickle_describe(r->u.seq.v[2], buf, sizeof buf), ==, "m.x.Outer.Inner object");
    g_assert_cmpstr(mgl_pickle_describe(r->u.seq.v[3], buf, sizeof buf), ==, "reference to m.x.Outer.Inner");
    g_assert_cmpstr(mgl_pickle_describe(r->u.seq.v[4], buf, sizeof buf), ==, "reference to m.C.\xc3\xa9t\xc3\xa9");
    g_assert_cmpint(r->u.seq.v[0]->u.glob.kind, ==, PG_OTHER);
    mgl_pickle_free(vm);

    /* the fixture an attacker would write: pickle.load runs "touch" through
     * getattr(posixpath.os, "system") */
    const char* marker = "/tmp/mgl_pwned_getattr";
    g_unlink(marker);
    char* path = fixture("evil_getattr.pth");
    MglTensorSet* set = mgl_tset_new();
    st = mgl_torch_load(path, set, &err);
    g_test_message("evil_getattr.pth -> %s: %s", mgl_status_to_string(st), err.msg);
    g_assert_cmpint(st, ==, MGL_E_SECURITY);
    g_assert_nonnull(strstr(err.msg, "evil_getattr.pth"));
    g_assert_nonnull(strstr(err.msg, "refusing pickle that calls __builtin__.getattr on a reference to posixpath.os"));
    g_assert_cmpuint(set->n, ==, 0);
    g_assert_false(g_file_test(marker, G_FILE_TEST_EXISTS));
    mgl_tset_free(set);
    g_free(path);

    /* every getattr but the nested-class one stays refused */
    FAIL(GETATTR2 ")R.", MGL_E_SECURITY, "__builtin__.getattr with too few arguments");
    FAIL(GETATTR2 "cm\nC\n" XSTR("\x01", "x") "N\x87R.", MGL_E_SECURITY, "too many arguments");
    FAIL(GETATTR2 "(cm\nC\n" XSTR("\x01", "x") "lR.", MGL_E_SECURITY, "non-tuple arguments");
    /* on a module reached through another, on os itself, on a dangerous name */
    FAIL(GETATTR2 "cposixpath\nos\n" XSTR("\x06", "system") "\x86R.", MGL_E_SECURITY, "on a reference to posixpath.os");
    FAIL(GETATTR3 "cos\npath\n" XSTR("\x02", "os") "\x86R.", MGL_E_SECURITY, "on a reference to os.path");
    FAIL(GETATTR2 "cbuiltins\neval\n" XSTR("\x03", "x__") "\x86R.", MGL_E_SECURITY, "reference to builtins.eval");
    /* on builtins (object.__subclasses__ and friends live there) */
    FAIL(GETATTR2 "c__builtin__\nobject\n" XSTR("\x03", "mro") "\x86R.", MGL_E_SECURITY,
         "on a reference to __builtin__.object");
    /* on a torch name the VM interprets, on an object, a string, a tuple */
    FAIL(GETATTR2 "ccollections\nOrderedDict\n" XSTR("\x08", "fromkeys") "\x86R.", MGL_E_SECURITY,
         "on a reference to collections.OrderedDict");
    FAIL(GETATTR2 "cm\nC\n)R" XSTR("\x03", "run") "\x86R.", MGL_E_SECURITY, "on a m.C object");
    FAIL(GETATTR2 XSTR("\x02", "os") XSTR("\x06", "system") "\x86R.", MGL_E_SECURITY, "on a str");
    FAIL(GETATTR2 ")" XSTR("\x05", "count") "\x86R.", MGL_E_SECURITY, "on a tuple");
    /* names that lead to code or are not a class name */
    FAIL(GETATTR2 "cm\nC\n" XSTR("\x08", "__init__") "\x86R.", MGL_E_SECURITY,
         "getattr(m.C, '__init__'): not a nested class name");
    FAIL(GETATTR2 "cm\nC\n" XSTR("\x0b", "__globals__") "\x86R.", MGL_E_SECURITY, "'__globals__'");
    FAIL(GETATTR2 "cm\nC\n" XSTR("\x02", "os") "\x86R.", MGL_E_SECURITY, "getattr(m.C, 'os')");
    FAIL(GETATTR2 "cm\nC\n" XSTR("\x06", "system") "\x86R.", MGL_E_SECURITY, "'system'");
    FAIL(GETATTR2 "cm\nC\n" XSTR("\x04", "exec") "\x86R.", MGL_E_SECURITY, "'exec'");
    FAIL(GETATTR2 "cm\nC\n" XSTR("\x07", "getattr") "\x86R.", MGL_E_SECURITY, "'getattr'");
    FAIL(GETATTR2 "cm\nC\n" XSTR("\x03", "a.b") "\x86R.", MGL_E_SECURITY, "'a.b'");
    FAIL(GETATTR2 "cm\nC\n" XSTR("\x02", "9a") "\x86R.", MGL_E_SECURITY, "'9a'");
    FAIL(GETATTR2 "cm\nC\n" XSTR("\x00", "") "\x86R.", MGL_E_SECURITY, "''");
    FAIL(GETATTR2 "cm\nC\n" XSTR("\x03", "a\x00"
                                         "b") "\x86R.",
         MGL_E_SECURITY, "not a nested class name");
    FAIL(GETATTR2 "cm\nC\n"
                  "C\x01x"
                  "\x86R.",
         MGL_E_SECURITY, "getattr(m.C, bytes)");
    /* a resolved reference stays a reference: calling it makes a placeholder,
     * and getattr on that placeholder is refused */
    FAIL(GETATTR2 "q\x00"
                  "h\x00"
                  "cm\nC\n" XSTR("\x01", "I") "\x86R)R" XSTR("\x03", "run") "\x86R.",
         MGL_E_SECURITY, "on a m.C.I object");
    /* a getattr chain through the memo cannot grow names without bound */
    static const char head[] = "\x80\x02" GETATTR2 "q\x00"
                               "cm\nC\n";
    GString* chain = g_string_new_len(head, sizeof head - 1);
    for (int i = 0; i < 400; i++) g_string_append_len(chain, "q\x01h\x00h\x01" XSTR("\x03", "Abc") "\x86R", 16);
    g_string_append(chain, ".");
    expect_fail(chain->str, chain->len, MGL_E_FORMAT, "nested class name longer than 1024 bytes");
    g_string_free(chain, TRUE);
    /* getattr itself is never instantiated */
    FAIL(GETATTR2 ")\x81.", MGL_E_SECURITY, "refusing pickle that instantiates __builtin__.getattr");
    FAIL("(" GETATTR2 "o.", MGL_E_SECURITY, "instantiates __builtin__.getattr");
    /* the module reached through another is refused as a call too */
    FAIL("cshutil\nos\n)R.", MGL_E_SECURITY, "refusing pickle that calls shutil.os");
}

/* ---- mutation smoke test: truncations and byte flips never crash -------- */

static void test_mutations(void) {
    static const char* const names[] = {"plain.pth",  "views.pth",     "mmengine.pth",       "zip64.pth",
                                        "proto0.pth", "params_p4.pth", "nested_class_p2.pth"};
    char* dir = g_dir_make_tmp("mgl-torch-XXXXXX", NULL);
    g_assert_nonnull(dir);
    char* tmp = g_build_filename(dir, "m.pth", NULL);
    GRand* rng = g_rand_new_with_seed(1234);
    unsigned ok = 0, bad = 0;
    for (size_t f = 0; f < G_N_ELEMENTS(names); f++) {
        char* path = fixture(names[f]);
        gchar* orig;
        gsize len;
        g_assert_true(g_file_get_contents(path, &orig, &len, NULL));
        unsigned n_iter = g_test_slow() ? 4000 : 600;
        for (unsigned it = 0; it < n_iter; it++) {
            guint8* b = g_memdup2(orig, len);
            gsize blen = len;
            if (it % 3 == 0)
                blen = (gsize)g_rand_int_range(rng, 0, (gint32)len);
            else {
                int flips = g_rand_int_range(rng, 1, 4);
                for (int k = 0; k < flips; k++) {
                    /* mostly hit data.pkl (at the front) and the central
                     * directory (at the back): tensor bytes are not parsed */
                    gint32 pos = g_rand_int_range(rng, 0, (gint32)len);
                    int where = g_rand_int_range(rng, 0, 10);
                    if (where < 5)
                        pos = g_rand_int_range(rng, 0, (gint32)MIN(len, 1500));
                    else if (where < 8)
                        pos = (gint32)len - 1 - g_rand_int_range(rng, 0, (gint32)MIN(len, 700));
                    b[pos] = (guint8)g_rand_int(rng);
                }
            }
            g_assert_true(g_file_set_contents(tmp, (const char*)b, (gssize)blen, NULL));
            MglTensorSet* set = mgl_tset_new();
            MglErr err = {0};
            MglStatus st = mgl_torch_load(tmp, set, &err);
            if (st == MGL_OK) {
                ok++;
                /* whatever loaded must be readable in bounds */
                for (size_t i = 0; i < set->n; i++) {
                    const MglTensor* t = &set->items[i];
                    float* out = g_new(float, (gsize)mgl_tensor_numel(t) + 1);
                    g_assert_cmpint(mgl_tensor_to_f32(t, out, &err), ==, MGL_OK);
                    g_free(out);
                }
            } else {
                bad++;
                g_assert_cmpuint(strlen(err.msg), >, 0);
                g_assert_cmpuint(set->n, ==, 0);
            }
            mgl_tset_free(set);
            g_free(b);
        }
        g_free(orig);
        g_free(path);
    }
    g_test_message("mutations: %u loaded, %u refused", ok, bad);
    g_unlink(tmp);
    g_rmdir(dir);
    g_free(tmp);
    g_free(dir);
    g_rand_free(rng);
}

int main(int argc, char** argv) {
    g_test_init(&argc, &argv, NULL);
    static const char* const good[] = {"plain",    "module",          "params_p4",      "views",
                                       "mmengine", "misaligned",      "zip64",          "proto0",
                                       "subclass", "nested_class_p2", "nested_class_p3"};
    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        char* p = g_strdup_printf("/torch/good/%s", good[i]);
        g_test_add_data_func(p, good[i], test_good);
        g_free(p);
    }
    g_test_add_func("/torch/shared-storage", test_shared_storage);
    g_test_add_func("/torch/duplicate-names", test_duplicate_names);
    g_test_add_func("/torch/bad", test_bad);
    g_test_add_func("/torch/pickle", test_pickle);
    g_test_add_func("/torch/pickle-rebuild", test_pickle_rebuild);
    g_test_add_func("/torch/getattr", test_getattr);
    g_test_add_func("/torch/mutations", test_mutations);
    return g_test_run();
}
