/* test_resize: the preprocessing's fast paths against their plain
 * definitions, byte for byte and bit for bit: the bicubic resize (AVX-512
 * passes where the CPU has them) against the portable passes on random images
 * of many shapes, up- and downscaled, to the sizes MG-LLaVA uses and others;
 * the CLIP normalisation (a table per channel) against the formula. With
 * MGL_CPU_ISA=avx2 the AVX2 passes are the ones compared; with scalar both sides
 * take the portable passes and must still agree. */
#include "mgl-preprocess.h"
#include "mgl-test.h"

#include <stdint.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void check(int w, int h, int ow, int oh) {
    uint8_t* in = malloc((size_t)w * h * 3);
    uint8_t* a = malloc((size_t)ow * oh * 3);
    uint8_t* b = malloc((size_t)ow * oh * 3);
    /* noise with runs of 0 and 255 (the clamps) */
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        uint32_t r = next();
        in[i] = (r & 7) == 0 ? 0 : (r & 7) == 1 ? 255 : (uint8_t)(r >> 8);
    }
    MglErr e = {0};
    CHECK(mgl_resize_bicubic_rgb8(in, w, h, a, ow, oh, &e) == MGL_OK);
    CHECK(mgl_resize_bicubic_rgb8_scalar(in, w, h, b, ow, oh, &e) == MGL_OK);
    size_t bad = 0;
    for (size_t i = 0; i < (size_t)ow * oh * 3; i++) bad += a[i] != b[i];
    CHECK_MSG(bad == 0, "%dx%d -> %dx%d: %zu of %zu bytes differ", w, h, ow, oh, bad, (size_t)ow * oh * 3);
    free(in);
    free(a);
    free(b);
}

int main(void) {
    /* the pipeline's: padded squares to 768, and 768 to 336 is bilinear (not here) */
    static const int sq[] = {1, 2, 3, 15, 16, 17, 100, 336, 480, 640, 767, 768, 769, 1080, 1920, 3000};
    for (size_t i = 0; i < sizeof sq / sizeof sq[0]; i++) check(sq[i], sq[i], 768, 768);
    /* other shapes and targets: one axis only, tiny outputs, widths not a multiple of 16 */
    check(640, 480, 768, 480);
    check(640, 480, 640, 768);
    check(500, 7, 33, 9);
    check(37, 1000, 5, 1);
    check(1, 1, 1, 17);
    for (int t = 0; t < 40; t++) {
        int w = 1 + (int)(next() % 900), h = 1 + (int)(next() % 900);
        int ow = 1 + (int)(next() % 900), oh = 1 + (int)(next() % 900);
        check(w, h, ow, oh);
    }
    /* normalisation: every byte value of each channel, against the reference's arithmetic */
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float sd[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    uint8_t px[256 * 3];
    for (int v = 0; v < 256; v++) px[v * 3] = px[v * 3 + 1] = px[v * 3 + 2] = (uint8_t)(255 - v);
    float chw[3 * 256];
    mgl_normalize_clip(px, 16, 16, chw);
    int nbad = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 256; i++) {
            const float x = (float)((double)px[i * 3 + c] * (1.0 / 255.0));
            const float want = (x - mean[c]) / sd[c];
            nbad += memcmp(&want, &chw[c * 256 + i], sizeof want) != 0;
        }
    CHECK_MSG(nbad == 0, "normalisation: %d of 768 values differ from the formula", nbad);
    TEST_DONE();
}
