/* mgl-image-internal.h: what the image decoders of mgl-image*.c share. */
#ifndef MGL_IMAGE_INTERNAL_H
#define MGL_IMAGE_INTERNAL_H

#include "mgl-cli.h"
#include "mgl-image.h"

#include <stdbool.h>
#include <stdint.h>

#define MGL_IMAGE_MAX_SIDE 16384
/* Pillow's decompression-bomb limit: Image.open refuses more than twice Image.MAX_IMAGE_PIXELS
 * (1024 * 1024 * 1024 // 4 // 3 = 89,478,485) pixels, whatever the format */
#define MGL_IMAGE_MAX_PIXELS 178956970ull
static inline bool mgl_image_too_many_pixels(uint64_t w, uint64_t h) {
    return (w ? w : 1) * (h ? h : 1) > MGL_IMAGE_MAX_PIXELS;
}

/* TIFF (mgl-image-tiff.c), `d` the whole file */
MglStatus mgl_tiff_load(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err);

#endif
