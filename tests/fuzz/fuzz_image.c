/* fuzz_image: the image decoders of `mgllava run` (PNG through libpng,
 * JPEG through libjpeg, WebP through libwebp, BMP, GIF, PPM/PGM; engine/cli/mgl-image.c). A decoded
 * image must have a sane size and every byte of it must be readable (ASan
 * sees an overrun, MSan-style checks in valgrind see uninitialised bytes);
 * bad input must be a clean error. */
#include "fuzz-common.h"
#include "mgl-image.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fuzz_write_input(data, size);
    uint8_t* rgb = NULL;
    int w = 0, h = 0;
    MglErr err = {0};
    if (mgl_image_load(path, &rgb, &w, &h, &err) == MGL_OK) {
        if (w <= 0 || h <= 0 || !rgb) abort();
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)w * (size_t)h * 3; i++) sum += rgb[i];
        if (sum == 0xffffffffu) abort(); /* keeps the reads */
        free(rgb);
    } else if (!err.msg[0]) {
        abort(); /* a refusal must say why */
    }
    return 0;
}
