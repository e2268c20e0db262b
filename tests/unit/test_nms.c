/* The box pipeline's NMS past 1000 boxes (torchvision's per-label form) is a
 * grid search, not all pairs: it must keep exactly the boxes the all-pairs
 * greedy loop keeps. The reference below is that loop, written out; both
 * run on clustered random boxes (many overlapping, several labels, some
 * degenerate or inverted) and on 60,000 boxes of one label. Past
 * MGL_MAX_DETECTIONS only the most confident go through NMS. An abort flag
 * stops the work. */
#include "mgllava.h"
#include "mgl-preprocess.h"
#include "mgl-test.h"

#include <glib.h>
#include <math.h>

static uint64_t rng = 0x1234567;
static double unit(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / 9007199254740992.0;
}

typedef struct {
    float b[4], score;
    int label;
    size_t idx;
} Ref;

static int ref_cmp(const void* a, const void* b) {
    const Ref* x = a;
    const Ref* y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* All-pairs greedy NMS per label (IoU > 0.2 as float vs double), then the
 * 768-frame scaling of mgl_boxes_to_768 for a w x h image (w >= h). */
static size_t reference(const MglBox* in, size_t n, int w, int h, const char* const* labels, int n_labels, float* out) {
    Ref* r = malloc(sizeof *r * n);
    const float dy = (float)((w - h) / 2);
    for (size_t i = 0; i < n; i++) {
        r[i] = (Ref){{in[i].x1, in[i].y1 + dy, in[i].x2, in[i].y2 + dy}, in[i].score, 0, i};
        for (int l = 0; l < n_labels; l++)
            if (!strcmp(in[i].label, labels[l])) r[i].label = l;
    }
    qsort(r, n, sizeof *r, ref_cmp);
    bool* dead = calloc(n, 1);
    for (size_t i = 0; i < n; i++) {
        if (dead[i]) continue;
        float ai = (r[i].b[2] - r[i].b[0]) * (r[i].b[3] - r[i].b[1]);
        for (size_t j = i + 1; j < n; j++) {
            if (dead[j] || r[j].label != r[i].label) continue;
            float aj = (r[j].b[2] - r[j].b[0]) * (r[j].b[3] - r[j].b[1]);
            float iw = fmaxf(0.0f, fminf(r[i].b[2], r[j].b[2]) - fmaxf(r[i].b[0], r[j].b[0]));
            float ih = fmaxf(0.0f, fminf(r[i].b[3], r[j].b[3]) - fmaxf(r[i].b[1], r[j].b[1]));
            float inter = iw * ih;
            if ((double)(inter / (ai + aj - inter)) > 0.2) dead[j] = true;
        }
    }
    const int S = w;
    const double s = 768.0 / S;
    const int start = (int)floor(((int)(S * s) - 768) / 2.0);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (dead[i]) continue;
        int v[4];
        for (int q = 0; q < 4; q++) v[q] = (int)nearbyintf(r[i].b[q] * (float)s);
        float x1 = (float)(v[0] - start > 0 ? v[0] - start : 0), y1 = (float)(v[1] - start > 0 ? v[1] - start : 0);
        float x2 = (float)(v[2] - start < 768 ? v[2] - start : 768),
              y2 = (float)(v[3] - start < 768 ? v[3] - start : 768);
        if (x2 < 0 || y2 < 0 || x1 > 768 || y1 > 768) continue;
        out[4 * k] = x1;
        out[4 * k + 1] = y1;
        out[4 * k + 2] = x2;
        out[4 * k + 3] = y2;
        k++;
    }
    free(dead);
    free(r);
    return k;
}

static const char* const labels[] = {"person", "car", "dog", "cat", "bus"};

static void random_boxes(MglBox* b, size_t n, int n_labels, double spread) {
    for (size_t i = 0; i < n; i++) {
        /* clusters: many boxes near a few centres, so NMS has work to do */
        double cx = floor(unit() * 8) * 120 + unit() * spread, cy = floor(unit() * 6) * 80 + unit() * spread;
        double bw = 5 + unit() * 120, bh = 5 + unit() * 90;
        b[i] = (MglBox){(float)(cx - bw / 2),
                        (float)(cy - bh / 2),
                        (float)(cx + bw / 2),
                        (float)(cy + bh / 2),
                        (float)(floor(unit() * 50) / 50.0),
                        labels[(size_t)(unit() * n_labels)]};
        if (i % 97 == 0) b[i].x2 = b[i].x1; /* zero width */
        if (i % 89 == 0) {
            float t = b[i].y1;
            b[i].y1 = b[i].y2;
            b[i].y2 = t;
        } /* inverted */
    }
}

static void compare(const MglBox* b, size_t n, int n_labels, const char* what) {
    float* got = NULL;
    size_t n_got = 0;
    MglErr err = {0};
    REQUIRE(mgl_boxes_to_768(b, n, 960, 600, 0, MGL_OBJECT_ORDER_SCORE, &got, &n_got, &err) == MGL_OK);
    float* want = malloc(sizeof(float) * 4 * (n + 1));
    size_t n_want = reference(b, n, 960, 600, labels, n_labels, want);
    if (n_want == 0) { /* the pipeline's dummy box */
        memset(want, 0, sizeof(float) * 4);
        n_want = 1;
    }
    CHECK_MSG(n_got == n_want, "%s: %zu boxes kept, the all-pairs loop keeps %zu", what, n_got, n_want);
    size_t diff = 0;
    for (size_t i = 0; i < 4 * (n_got < n_want ? n_got : n_want); i++) diff += got[i] != want[i];
    CHECK_MSG(diff == 0, "%s: %zu coordinates differ", what, diff);
    printf("%s: %zu of %zu boxes kept, as all pairs\n", what, n_got, n);
    free(got);
    free(want);
}

static volatile int stop_now = 1;

int main(void) {
    for (int t = 0; t < 4; t++) {
        const size_t n = 1500 + 1000 * (size_t)t;
        MglBox* b = malloc(sizeof *b * n);
        random_boxes(b, n, 1 + t, 30.0 + 40.0 * t);
        char what[64];
        snprintf(what, sizeof what, "%zu boxes, %d labels", n, 1 + t);
        compare(b, n, 1 + t, what);
        free(b);
    }
    /* 60,000 boxes of one label: past MGL_MAX_DETECTIONS, the most confident go through */
    const size_t big = 60000;
    MglBox* b = malloc(sizeof *b * big);
    random_boxes(b, big, 1, 200.0);
    for (size_t i = 0; i < big; i++) b[i].score = (float)(1.0 - (double)i / big); /* distinct, falling */
    float* got = NULL;
    size_t n_got = 0;
    MglErr err = {0};
    REQUIRE(mgl_boxes_to_768(b, big, 960, 600, 0, MGL_OBJECT_ORDER_SCORE, &got, &n_got, &err) == MGL_OK);
    float* want = malloc(sizeof(float) * 4 * (MGL_MAX_DETECTIONS + 1));
    size_t n_want = reference(b, MGL_MAX_DETECTIONS, 960, 600, labels, 1, want);
    CHECK_MSG(n_got == n_want && !memcmp(got, want, sizeof(float) * 4 * n_got),
              "60000 boxes: %zu kept, the first %d through all pairs keep %zu", n_got, MGL_MAX_DETECTIONS, n_want);
    printf("60000 boxes: the %d most confident through NMS, %zu kept\n", MGL_MAX_DETECTIONS, n_got);
    free(got);
    free(want);
    /* an abort stops the box work */
    CHECK(mgl_boxes_to_768_abortable(b, big, 960, 600, 0, MGL_OBJECT_ORDER_SCORE, &stop_now, &got, &n_got, &err) ==
          MGL_E_ABORTED);
    free(b);
    TEST_DONE();
}
