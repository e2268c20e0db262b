/* mgl-image.h: decode PNG, JPEG, JPEG 2000, WebP, BMP, GIF, TIFF, ICO, CUR, ICNS, PNM, TGA, SGI, PCX, DDS, BLP, MSP,
 * IM, SPIDER and XBM files to packed RGB8 (for the CLI and tests), as Pillow 9.4's Image.open(f).convert("RGB")
 * (docs/engine.md, Image files). */
#ifndef MGL_IMAGE_H
#define MGL_IMAGE_H

#include "mgllava.h"

/* *rgb is malloc'ed (w*h*3). Grey and palette images are expanded, alpha is
 * dropped (as PIL's convert('RGB') does); EXIF orientation is not applied (a TIFF's Orientation
 * tag is, as Pillow's TIFF loader applies it). */
MglStatus mgl_image_load(const char* path, uint8_t** rgb, int* w, int* h, MglErr* err);

#endif
