/* mgl-image-internal.h: what the image decoders of mgl-image*.c share. */
#ifndef MGL_IMAGE_INTERNAL_H
#define MGL_IMAGE_INTERNAL_H

#include "mgl-cli.h"
#include "mgl-image.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MGL_IMAGE_MAX_SIDE 16384
/* Pillow's decompression-bomb limit: Image.open refuses more than twice Image.MAX_IMAGE_PIXELS
 * (1024 * 1024 * 1024 // 4 // 3 = 89,478,485) pixels, whatever the format */
#define MGL_IMAGE_MAX_PIXELS 178956970ull
static inline bool mgl_image_too_many_pixels(uint64_t w, uint64_t h) {
    return (w ? w : 1) * (h ? h : 1) > MGL_IMAGE_MAX_PIXELS;
}

/* Little- and big-endian fields of a file's bytes */
static inline uint16_t mgl_le16(const uint8_t* p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t mgl_le32(const uint8_t* p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint16_t mgl_be16(const uint8_t* p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t mgl_be32(const uint8_t* p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* A P image's 256-entry palette as Pillow holds it: `n` entries from `src` (`step` bytes apart,
 * blue first when `bgr`), and past them the grey ramp (i, i, i) that a new palette starts as. */
static inline void mgl_palette_fill(uint8_t pal[256][3], const uint8_t* src, size_t n, size_t step, bool bgr) {
    for (size_t i = 0; i < 256; i++) {
        const uint8_t* e = i < n ? src + i * step : NULL;
        pal[i][0] = e ? e[bgr ? 2 : 0] : (uint8_t)i;
        pal[i][1] = e ? e[1] : (uint8_t)i;
        pal[i][2] = e ? e[bgr ? 0 : 2] : (uint8_t)i;
    }
}

/* Pillow's I (or I;16) to L: values past 255 are 255 */
static inline uint8_t mgl_clip8_u16(unsigned v) { return (uint8_t)(v > 255 ? 255 : v); }

/* Pillow's I (signed) to L: clipped to 0..255 */
static inline uint8_t mgl_clip8_i64(int64_t v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* Pillow's F to L: 0 at or below 0 (and for NaN), 255 at or above 255, else truncated */
static inline uint8_t mgl_f2l(float v) { return v != v || v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v; }

/* Pillow's cmyk2rgb: nk = 255 - k, each of R, G, B = nk - MULDIV255(c, nk) */
static inline void mgl_cmyk2rgb(unsigned c, unsigned m, unsigned y, unsigned k, uint8_t* rgb) {
    const unsigned nk = 255 - k, cmy[3] = {c, m, y};
    for (int i = 0; i < 3; i++) {
        const unsigned t = cmy[i] * nk + 128;
        rgb[i] = (uint8_t)(nk - ((t + (t >> 8)) >> 8));
    }
}

/* Pillow's YCbCr to RGB over `w` pixels of 4 bytes, in place (mgl-image-legacy.c) */
void mgl_ycc_to_rgb_row(uint8_t* px, size_t w);

/* TIFF (mgl-image-tiff.c), `d` the whole file */
MglStatus mgl_tiff_load(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err);

/* Targa, SGI and PCX (mgl-image-legacy.c). *not_tga / *not_pcx: the header is not one (Pillow
 * would go on to other formats), as opposed to one it refuses. */
MglStatus mgl_tga_load(const char* path, const uint8_t* d, size_t n, bool* not_tga, uint8_t** rgb, int* w, int* h,
                       MglErr* err);
MglStatus mgl_sgi_load(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err);
MglStatus mgl_pcx_load(const char* path, const uint8_t* d, size_t n, bool* not_pcx, uint8_t** rgb, int* w, int* h,
                       MglErr* err);
/* MSP, XBM and SPIDER (mgl-image-legacy.c); *not_* as *not_tga. */
MglStatus mgl_msp_load(const char* path, const uint8_t* d, size_t n, bool* not_msp, uint8_t** rgb, int* w, int* h,
                       MglErr* err);
MglStatus mgl_xbm_load(const char* path, const uint8_t* d, size_t n, bool* not_xbm, uint8_t** rgb, int* w, int* h,
                       MglErr* err);
MglStatus mgl_spider_load(const char* path, const uint8_t* d, size_t n, bool* not_spider, uint8_t** rgb, int* w, int* h,
                          MglErr* err);
/* IM (mgl-image-legacy.c): Pillow tries it before most formats, by its header lines */
MglStatus mgl_im_load(const char* path, const uint8_t* d, size_t n, bool* not_im, uint8_t** rgb, int* w, int* h,
                      MglErr* err);
/* BLP, by its "BLP1"/"BLP2" signature (mgl-image-legacy.c) */
MglStatus mgl_blp_load(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err);
/* DDS, by its "DDS " signature (mgl-image-legacy.c) */
MglStatus mgl_dds_load(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err);
/* JPEG 2000, a JP2 file or a codestream (mgl-image-jp2.c); *not_jp2 as *not_tga. */
MglStatus mgl_jp2_load(const char* path, const uint8_t* d, size_t n, bool* not_jp2, uint8_t** rgb, int* w, int* h,
                       MglErr* err);

#endif
