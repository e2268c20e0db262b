/* prep-images.h: the images the device preprocessing is checked on
 * (test_prep_kernels on the CPU, tests/gpu/test_cuda_ops on a GPU): padded
 * across and down, needing no resampling (a 768 square; 768 wide), shrunk,
 * enlarged from one pixel, a thin strip, strided rows; the side changes from
 * one to the next (the coefficient cache). */
#ifndef PREP_IMAGES_H
#define PREP_IMAGES_H

#include <stdint.h>
#include <stdlib.h>

/* width, height, bytes of padding after each row */
static const int prep_sizes[][3] = {{640, 480, 0},   {480, 640, 0}, {768, 768, 0},  {768, 500, 0},
                                    {1920, 1080, 0}, {100, 37, 0},  {1, 1, 0},      {2000, 30, 0},
                                    {800, 800, 0},   {300, 300, 0}, {333, 517, 17}, {2, 769, 5}};
#define PREP_N_SIZES (sizeof prep_sizes / sizeof prep_sizes[0])

/* image i: noise below, ramps above (the smooth part, where the passes' rounding shows); malloc'ed */
static inline uint8_t* prep_image(size_t i, int* w, int* h, int* stride) {
    *w = prep_sizes[i][0];
    *h = prep_sizes[i][1];
    *stride = 3 * *w + prep_sizes[i][2];
    uint8_t* px = malloc((size_t)*stride * *h);
    uint64_t r = 7 + i;
    for (size_t j = 0; j < (size_t)*stride * *h; j++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        px[j] = (uint8_t)(r >> 56);
    }
    for (int y = 0; y < *h / 2; y++)
        for (int x = 0; x < 3 * *w; x++) px[(size_t)y * *stride + x] = (uint8_t)((x * 7 + y * 3) & 255);
    return px;
}

#endif
