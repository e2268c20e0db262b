/* mgl-preprocess.h: MG-LLaVA eval-path preprocessing (spec section 2). */
#ifndef MGL_PREPROCESS_H
#define MGL_PREPROCESS_H

#include "mgl-internal.h"

#define MGL_AUX_SIZE 768 /* high-resolution (ConvNeXt) input */

/* An RGB8 image's size and stride as preprocessing takes them (1..16384 a side). */
MglStatus mgl_image_check(int w, int h, int stride, MglErr* err);
/* Pad an RGB8 image (stride in bytes) to its S x S square with (122,116,104),
 * pasted at ((S-W)/2 or 0, (S-H)/2 or 0). *out is malloc'ed (S*S*3). */
MglStatus mgl_pad_square(const uint8_t* rgb, int w, int h, int stride, uint8_t** out, int* S, MglErr* err);
/* Pillow Image.resize(BICUBIC) of an RGB8 image, bit-exact (8-bit fixed point, antialiased);
 * MGL_E_NOMEM when its working memory cannot be had. */
MglStatus mgl_resize_bicubic_rgb8(const uint8_t* in, int w, int h, uint8_t* out, int ow, int oh, MglErr* err);
/* the same with the portable passes only (the reference the SIMD passes are tested against) */
MglStatus mgl_resize_bicubic_rgb8_scalar(const uint8_t* in, int w, int h, uint8_t* out, int ow, int oh, MglErr* err);
/* CLIPImageProcessor rescale + normalize: RGB8 (S,S,3) -> CHW float (3,S,S). */
void mgl_normalize_clip(const uint8_t* rgb, int w, int h, float* chw);

/* The pieces of the above for a device that does the same work (the CUDA
 * backend's preprocessing): the square's side, where the image sits in it and
 * the pad colour (colour may be NULL); one axis's resampling coefficients as
 * the bicubic resize uses them (per output: first input and count in
 * bounds[2i], bounds[2i+1]; ksize fixed-point weights each in kk; returns
 * ksize; both malloc'ed, NULL when out of memory); the normalisation's value
 * for each channel and byte. */
void mgl_pad_geometry(int w, int h, int* S, int* ox, int* oy, uint8_t colour[3]);
int mgl_bicubic_coeffs(int in_size, int out_size, int** bounds, int32_t** kk);
#define MGL_BICUBIC_PRECISION 22 /* the fixed point of mgl_bicubic_coeffs' weights */
const float (*mgl_normalize_lut(void))[256];

/* Spec 2.4: pad shift, class-aware NMS (IoU 0.2), optional per-label top-20
 * cap when more than limit_num boxes survive (limit_num 0 = never), then with
 * order MGL_OBJECT_ORDER_READING the survivors sorted into reading order (row
 * third of the box centre in the w x h image, then the centre's x, ties in NMS
 * order; the official code keeps the NMS order, MGL_OBJECT_ORDER_SCORE), scale
 * to the 768 frame with round-half-even, the 767 quirk, clamp, drop boxes
 * outside, dummy [0,0,0,0] when none remain. out768 (n_out*4) is malloc'ed. */
MglStatus mgl_boxes_to_768(const MglBox* boxes, size_t n, int w, int h, int limit_num, int order, float** out768,
                           size_t* n_out, MglErr* err);
/* The same, checking *abort (may be NULL) during long box work (MGL_E_ABORTED). */
MglStatus mgl_boxes_to_768_abortable(const MglBox* boxes, size_t n, int w, int h, int limit_num, int order,
                                     const volatile int* abort, float** out768, size_t* n_out, MglErr* err);

/* Detections beyond this many: the most confident MGL_MAX_DETECTIONS (ties in
 * input order) go through NMS, with a log message; the official code keeps
 * them all, so on such input the result may differ from it. */
#define MGL_MAX_DETECTIONS 10000

#endif
