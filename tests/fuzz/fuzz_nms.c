/* fuzz_nms: the box pipeline (mgl_boxes_to_768: pad shift, class-aware NMS
 * in both of torchvision's forms, the per-label cap, reading order, the
 * 768-frame scaling). Input: an image size, a cap and an order, then boxes
 * of 9 bytes (four 16-bit coordinates around the frame, a score byte, a label
 * byte). Every output box must lie in the 768 frame, at least one must come
 * out, and nothing may crash or leak. */
#include "fuzz-common.h"
#include "mgl-preprocess.h"

#include <stdlib.h>

static const char* const labels[] = {"a", "b", "c", "", "person", "car", "\xc3\xa9t\xc3\xa9", "x"};

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 6) return 0;
    const int w = 1 + (data[0] | (data[1] << 8)) % 4096, h = 1 + (data[2] | (data[3] << 8)) % 4096;
    const int limit = data[4] % 4 == 0 ? 0 : data[4];
    const int order = data[5] & 1 ? MGL_OBJECT_ORDER_READING : MGL_OBJECT_ORDER_SCORE;
    data += 6;
    size -= 6;
    /* repeat the input so inputs of a few bytes still reach the grid form past 1000 boxes */
    const size_t base = size / 9, n = base * (base && data[0] & 0x80 ? 12 : 1);
    MglBox* b = malloc(sizeof(MglBox) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        const uint8_t* p = data + 9 * (i % base);
        float c[4];
        for (int k = 0; k < 4; k++) c[k] = (float)(int16_t)(p[2 * k] | (p[2 * k + 1] << 8)) / 8.0f + (float)(i / base);
        b[i] = (MglBox){c[0], c[1], c[2], c[3], (float)p[8] / 255.0f, labels[p[8] % 8]};
    }
    float* out = NULL;
    size_t n_out = 0;
    MglErr err = {0};
    if (mgl_boxes_to_768(b, n, w, h, limit, order, &out, &n_out, &err) == MGL_OK) {
        if (n_out == 0) abort();
        for (size_t i = 0; i < 4 * n_out; i++)
            if (!(out[i] >= 0.0f && out[i] <= 768.0f)) abort();
        free(out);
    }
    free(b);
    return 0;
}
