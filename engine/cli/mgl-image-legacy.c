/* mgl-image-legacy.c: Targa (TGA), SGI, PCX, DDS, BLP, MSP, IM, SPIDER and XBM files, pixel for pixel as Pillow 9.4's
 * Image.open(f).convert("RGB") reads them: the header checks of its TgaImagePlugin, SgiImagePlugin
 * and PcxImagePlugin, then what its decoders (TgaRleDecode.c, SgiRleDecode.c, PcxDecode.c and the
 * raw decoder) and unpackers do, quirks included:
 *  - TGA: the RLE packets run across rows (a literal packet that crosses a row goes on in the next
 *    one; a run packet that crosses one is refused); 1-bit RLE never ends (refused); a colour map on
 *    a grey image turns it into a palette image, one on a true-colour image is refused, as is a
 *    32-bit colour map or one of over 256 entries.
 *  - SGI: the RLE length table counts packets, not bytes, and a row whose last counted packet is
 *    not the end marker stops the decoding with the remaining rows black; row buffers are not
 *    cleared between rows; 16-bit samples give their high byte.
 *  - PCX: a padded stride moves the colour planes only when the line length is not a multiple of
 *    the width (PcxDecode.c's test), and the bit-plane unpackers take their plane spacing from the
 *    width; a run past the end of a line is refused.
 * Pillow opens a TGA file by elimination (it has no signature), after every other format; so does
 * mgl_image_load. */
#include "mgl-image-internal.h"

#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>


static MglStatus size_check(const char* path, const char* kind, uint64_t W, uint64_t H, MglErr* err) {
    if (W > MGL_IMAGE_MAX_SIDE || H > MGL_IMAGE_MAX_SIDE || mgl_image_too_many_pixels(W, H))
        return cli_err(err, MGL_E_FORMAT, "%s: %s of %llux%llu pixels (at most %d a side, %llu in all)", path, kind,
                       (unsigned long long)W, (unsigned long long)H, MGL_IMAGE_MAX_SIDE, MGL_IMAGE_MAX_PIXELS);
    return MGL_OK;
}

/* The raw modes (Pillow's names) these formats' rows are unpacked from, and the bits a pixel
 * takes in them. The unpacked pixel is Pillow's: a band index or grey value in mode 1/L/P, RGB(A)
 * in the 4-byte modes. */
typedef enum {
    RM_1,       /* "1": MSB first, set bits 255 */
    RM_L,       /* "L", also "P" (the index) */
    RM_LA,      /* "LA" (grey, alpha) */
    RM_BGR5,    /* "BGR;5": 5/5/5 little-endian, blue in the low bits */
    RM_BGR,     /* "BGR" */
    RM_BGRA,    /* "BGRA" */
    RM_RGB,     /* "RGB" */
    RM_RGBA,    /* "RGBA" */
    RM_L16B,    /* "L;16B": the high byte */
    RM_RGB16B,  /* "RGB;16B" */
    RM_RGBA16B, /* "RGBA;16B" */
    RM_P2L,     /* "P;2L": two bit planes, spaced (width + 7) / 8 */
    RM_P4L,     /* "P;4L": four bit planes */
    RM_RGBL,    /* "RGB;L": three byte planes, spaced width */
    RM_ARGB,    /* "ARGB" */
    RM_ABGR,    /* "ABGR" */
} RawMode;

static int raw_bits(RawMode m) {
    static const int bits[] = {1, 8, 16, 16, 24, 32, 24, 32, 16, 48, 64, 2, 4, 24, 32, 32};
    return bits[m];
}

/* The image as it is built, the way Pillow holds it: one byte (1, L, P) or four (LA, PA, RGB,
 * RGBA) per pixel, and a palette for P/PA. */
typedef struct {
    size_t W, H;
    int px;       /* bytes per pixel: 1 or 4 */
    bool palette; /* a P or PA image: band 0 indexes pal */
    uint8_t pal[256][3];
    uint8_t* pix; /* W*H*px */
} Img;

static bool img_new(Img* im, size_t W, size_t H, int px) {
    im->W = W;
    im->H = H;
    im->px = px;
    im->palette = false;
    im->pix = calloc(W * H, (size_t)px);
    return im->pix != NULL;
}

/* One row of `n` pixels from `in` in raw mode `m`, into a Pillow row of px bytes per pixel. */
static void unpack_row(RawMode m, const uint8_t* in, size_t n, uint8_t* out, int px) {
    const size_t s = (n + 7) / 8;
    for (size_t i = 0; i < n; i++) {
        uint8_t* o = out + i * (size_t)px;
        unsigned v;
        switch (m) {
        case RM_1: o[0] = (in[i >> 3] >> (7 - (i & 7)) & 1) ? 255 : 0; break;
        case RM_L: o[0] = in[i]; break;
        case RM_LA: o[0] = o[1] = o[2] = in[2 * i], o[3] = in[2 * i + 1]; break;
        case RM_BGR5:
            v = mgl_le16(in + 2 * i);
            o[2] = (uint8_t)((v & 31) * 255 / 31);
            o[1] = (uint8_t)(((v >> 5) & 31) * 255 / 31);
            o[0] = (uint8_t)(((v >> 10) & 31) * 255 / 31);
            o[3] = 255;
            break;
        case RM_BGR: o[0] = in[3 * i + 2], o[1] = in[3 * i + 1], o[2] = in[3 * i], o[3] = 255; break;
        case RM_BGRA: o[0] = in[4 * i + 2], o[1] = in[4 * i + 1], o[2] = in[4 * i], o[3] = in[4 * i + 3]; break;
        case RM_RGB: o[0] = in[3 * i], o[1] = in[3 * i + 1], o[2] = in[3 * i + 2], o[3] = 255; break;
        case RM_RGBA: memcpy(o, in + 4 * i, 4); break;
        case RM_L16B: o[0] = in[2 * i]; break;
        case RM_RGB16B: o[0] = in[6 * i], o[1] = in[6 * i + 2], o[2] = in[6 * i + 4], o[3] = 255; break;
        case RM_RGBA16B: o[0] = in[8 * i], o[1] = in[8 * i + 2], o[2] = in[8 * i + 4], o[3] = in[8 * i + 6]; break;
        case RM_P2L:
        case RM_P4L: {
            const unsigned mask = 0x80u >> (i & 7);
            const size_t j = i >> 3;
            const int planes = m == RM_P2L ? 2 : 4;
            v = 0;
            for (int p = 0; p < planes; p++)
                if (in[j + (size_t)p * s] & mask) v |= 1u << p;
            o[0] = (uint8_t)v;
            break;
        }
        case RM_RGBL: o[0] = in[i], o[1] = in[i + n], o[2] = in[i + 2 * n], o[3] = 255; break;
        case RM_ARGB: o[0] = in[4 * i + 1], o[1] = in[4 * i + 2], o[2] = in[4 * i + 3], o[3] = in[4 * i]; break;
        case RM_ABGR: o[0] = in[4 * i + 3], o[1] = in[4 * i + 2], o[2] = in[4 * i + 1], o[3] = in[4 * i]; break;
        }
    }
}

/* The finished image to packed RGB, as convert("RGB"); with `flip`, each row mirrored. */
static MglStatus img_to_rgb(const char* path, Img* im, bool flip, uint8_t** rgb, int* w, int* h, MglErr* err) {
    uint8_t* out = malloc(im->W * im->H * 3);
    if (!out) {
        free(im->pix);
        return cli_err(err, MGL_E_NOMEM, "%s: out of memory for %zux%zu pixels", path, im->W, im->H);
    }
    for (size_t y = 0; y < im->H; y++)
        for (size_t x = 0; x < im->W; x++) {
            const uint8_t* p = im->pix + (y * im->W + x) * (size_t)im->px;
            uint8_t* o = out + (y * im->W + (flip ? im->W - 1 - x : x)) * 3;
            if (im->palette)
                memcpy(o, im->pal[p[0]], 3);
            else if (im->px == 1)
                o[0] = o[1] = o[2] = p[0];
            else
                memcpy(o, p, 3);
        }
    free(im->pix);
    im->pix = NULL;
    *rgb = out;
    *w = (int)im->W;
    *h = (int)im->H;
    return MGL_OK;
}

static MglStatus refuse(const char* path, Img* im, MglErr* err, const char* what) {
    free(im->pix);
    im->pix = NULL;
    return cli_err(err, MGL_E_FORMAT, "%s: %s", path, what);
}

/* Pillow's ImagingConvertYCbCr2RGB: fixed point with 6 fraction bits, tables of
 * trunc(c * 64 * (v - 128) + 0.5); pixels of 4 bytes (Y, Cb, Cr, alpha kept) converted in place. */
static int ycc_tab(double c, int v) { return (int)(c * 64.0 * (double)(v - 128) + 0.5); }

void mgl_ycc_to_rgb_row(uint8_t* px, size_t w) {
    static int r_cr[256], g_cb[256], g_cr[256], b_cb[256];
    static bool ready;
    if (!ready) {
        for (int i = 0; i < 256; i++)
            r_cr[i] = ycc_tab(1.40200, i), g_cb[i] = ycc_tab(-0.34414, i), g_cr[i] = ycc_tab(-0.71414, i),
            b_cb[i] = ycc_tab(1.77200, i);
        ready = true;
    }
    for (size_t x = 0; x < w; x++, px += 4) {
        const int y = px[0], cb = px[1], cr = px[2];
        const int r = y + (r_cr[cr] >> 6), g = y + ((g_cb[cb] + g_cr[cr]) >> 6), b = y + (b_cb[cb] >> 6);
        px[0] = (uint8_t)(r <= 0 ? 0 : r >= 255 ? 255 : r);
        px[1] = (uint8_t)(g <= 0 ? 0 : g >= 255 ? 255 : g);
        px[2] = (uint8_t)(b <= 0 ? 0 : b >= 255 ? 255 : b);
    }
}

/* ---- TGA ------------------------------------------------------------------------------------- */

MglStatus mgl_tga_load(const char* path, const uint8_t* d, size_t n, bool* not_tga, uint8_t** rgb, int* w, int* h,
                       MglErr* err) {
    *not_tga = true;
    if (n < 18) return cli_err(err, MGL_E_FORMAT, "%s: not an image file", path);
    const unsigned id_len = d[0], cmap_type = d[1], type = d[2], depth = d[16], flags = d[17];
    const size_t W = mgl_le16(d + 12), H = mgl_le16(d + 14);
    if (cmap_type > 1 || !W || !H || (depth != 1 && depth != 8 && depth != 16 && depth != 24 && depth != 32))
        return cli_err(err, MGL_E_FORMAT, "%s: not an image file", path);
    enum { M_1, M_L, M_LA, M_P, M_RGB, M_RGBA } mode;
    switch (type) {
    case 3:
    case 11: mode = depth == 1 ? M_1 : depth == 16 ? M_LA : M_L; break;
    case 1:
    case 9: mode = M_P; break;
    case 2:
    case 10: mode = depth == 32 ? M_RGBA : M_RGB; break;
    default: return cli_err(err, MGL_E_FORMAT, "%s: not an image file", path);
    }
    *not_tga = false;
    MglStatus st = size_check(path, "TGA", W, H, err);
    if (st != MGL_OK) return st;
    const bool top_down = flags & 0x20, flip = flags & 0x10, rle = type & 8;
    size_t pos = 18 + (size_t)id_len;
    /* the colour map: `start` entries of zeros, then `size` from the file */
    Img im = {0};
    bool have_pal = false;
    size_t pal_n = 0;
    uint8_t palbuf[256][3];
    if (cmap_type) {
        const size_t start = mgl_le16(d + 3), size = mgl_le16(d + 5);
        const unsigned mapdepth = d[7];
        size_t esz = mapdepth == 16 ? 2 : mapdepth == 24 ? 3 : mapdepth == 32 ? 4 : 0;
        if (esz) {
            const size_t avail = pos < n ? n - pos : 0, got = esz * size < avail ? esz * size : avail;
            if (mapdepth == 32) /* Pillow has no RGB unpacker for a BGRA palette */
                return cli_err(err, MGL_E_FORMAT, "%s: TGA with a 32-bit colour map", path);
            pal_n = (esz * start + got) / esz;
            if (pal_n > 256)
                return cli_err(err, MGL_E_FORMAT, "%s: TGA colour map of %zu entries (at most 256)", path, pal_n);
            if (mode == M_1 || mode == M_RGB || mode == M_RGBA)
                return cli_err(err, MGL_E_FORMAT, "%s: TGA colour map on a %s image", path,
                               mode == M_1 ? "two-colour" : "true-colour");
            /* `start` black entries, the file's entries unpacked as Pillow's BGR / BGR;15, the grey ramp past */
            mgl_palette_fill(palbuf, NULL, 0, 3, false);
            memset(palbuf, 0, 3 * (start < pal_n ? start : pal_n));
            uint8_t unpacked[256][4];
            if (pal_n > start) {
                unpack_row(esz == 3 ? RM_BGR : RM_BGR5, d + pos, pal_n - start, &unpacked[0][0], 4);
                for (size_t i = start; i < pal_n; i++) memcpy(palbuf[i], unpacked[i - start], 3);
            }
            have_pal = true;
            pos += got;
        }
    }
    /* Pillow's MODES table: (image type & 7, depth) to the raw mode of the pixels */
    static const struct {
        unsigned type, depth;
        RawMode rm;
    } k_modes[] = {{1, 8, RM_L},     {3, 1, RM_1},    {3, 8, RM_L},    {3, 16, RM_LA},
                   {2, 16, RM_BGR5}, {2, 24, RM_BGR}, {2, 32, RM_BGRA}};
    int mi = -1;
    for (int i = 0; i < (int)(sizeof k_modes / sizeof k_modes[0]); i++)
        if (k_modes[i].type == (type & 7) && k_modes[i].depth == depth) mi = i;
    if (mi < 0)
        return cli_err(err, MGL_E_FORMAT, "%s: TGA image type %u with %u-bit pixels (Pillow cannot load it)", path,
                       type, depth);
    const RawMode rm = k_modes[mi].rm;
    if (rle && rm == RM_1) /* Pillow's RLE decoder takes depth / 8 = 0 bytes a pixel and never ends */
        return cli_err(err, MGL_E_FORMAT, "%s: run-length coded 1-bit TGA", path);
    const int px = (mode == M_1 || mode == M_L || mode == M_P) ? 1 : 4;
    if (!img_new(&im, W, H, px)) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    if (mode == M_P || have_pal) { /* a grey image with a colour map becomes P (or PA) */
        im.palette = true;
        if (have_pal)
            memcpy(im.pal, palbuf, sizeof palbuf);
        else
            mgl_palette_fill(im.pal, NULL, 0, 3, false);
    }
    const size_t bytes = (W * (size_t)raw_bits(rm) + 7) / 8;
    if (!rle) {
        if (pos > n || (n - pos) / bytes < H) return refuse(path, &im, err, "TGA pixel data cut short");
        for (size_t r = 0; r < H; r++) {
            const size_t y = top_down ? r : H - 1 - r;
            unpack_row(rm, d + pos + r * bytes, W, im.pix + y * W * (size_t)px, px);
        }
        return img_to_rgb(path, &im, flip, rgb, w, h, err);
    }
    /* TgaRleDecode.c: packets of (count & 0x7f) + 1 pixels; a literal may run on into the next rows */
    const size_t bpp = raw_bits(rm) / 8;
    uint8_t* buf = calloc(1, bytes);
    if (!buf) return refuse(path, &im, err, "out of memory");
    size_t x = 0, r = 0;
    const char* bad = NULL;
    for (;;) {
        if (pos >= n) {
            bad = "TGA run-length data cut short";
            break;
        }
        const uint8_t c = d[pos];
        size_t cnt = bpp * ((size_t)(c & 0x7f) + 1), extra = 0;
        if (c & 0x80) {
            if (n - pos < 1 + bpp) {
                bad = "TGA run-length data cut short";
                break;
            }
            if (x + cnt > bytes) {
                bad = "TGA run packet past the end of a row";
                break;
            }
            for (size_t i = 0; i < cnt; i += bpp) memcpy(buf + x + i, d + pos + 1, bpp);
            pos += 1 + bpp;
        } else {
            if (n - pos < 1 + cnt) {
                bad = "TGA run-length data cut short";
                break;
            }
            if (x + cnt > bytes) {
                extra = cnt - (bytes - x);
                cnt = bytes - x;
            }
            memcpy(buf + x, d + pos + 1, cnt);
            pos += 1 + cnt;
        }
        bool done = false;
        for (;;) {
            x += cnt;
            if (x >= bytes) {
                const size_t y = top_down ? r : H - 1 - r;
                unpack_row(rm, buf, W, im.pix + y * W * (size_t)px, px);
                x = 0;
                if (++r >= H) {
                    done = true;
                    break;
                }
            }
            if (!extra || x > 0) break;
            cnt = extra < bytes ? extra : bytes;
            memcpy(buf, d + pos, cnt);
            pos += cnt;
            extra -= cnt;
        }
        if (done) break;
    }
    free(buf);
    if (bad) return refuse(path, &im, err, bad);
    return img_to_rgb(path, &im, flip, rgb, w, h, err);
}

/* ---- SGI ------------------------------------------------------------------------------------- */

/* SgiRleDecode.c's expandrow/expandrow2 on the data after the header (`buf`, `len` bytes, len >= 1):
 * `npk` packets at most; 0 when the row ended on its marker or ran out of packets, 1 when the last
 * packet counted was not the marker (the decoding stops there), -1 on an overrun. The bounds are
 * Pillow's, which treat the last byte as out of reach for copies. */
static int sgi_row(uint8_t* dest, const uint8_t* buf, size_t len, uint64_t src, uint32_t npk, int z, size_t xsize,
                   int bpc) {
    const uint64_t end = len - 1;
    size_t x = 0;
    for (int32_t k = (int32_t)npk; k > 0; k--) { /* Pillow passes the count as an int */
        if (src + (uint64_t)(bpc - 1) > end) return -1;
        const uint8_t pixel = buf[src + (uint64_t)(bpc - 1)];
        src += (uint64_t)bpc;
        if (k == 1 && pixel != 0) return 1;
        const unsigned count = pixel & 0x7f;
        if (!count) return 0;
        if (x + count > xsize) return -1;
        x += count;
        if (pixel & 0x80) {
            if (src + (uint64_t)count * (uint64_t)bpc > end) return -1;
            for (unsigned i = 0; i < count; i++) {
                memcpy(dest, buf + src, (size_t)bpc);
                src += (uint64_t)bpc;
                dest += (size_t)z * (size_t)bpc;
            }
        } else {
            if (bpc == 1 ? src > end : src + 2 > end) return -1;
            for (unsigned i = 0; i < count; i++) {
                memcpy(dest, buf + src, (size_t)bpc);
                dest += (size_t)z * (size_t)bpc;
            }
            src += (uint64_t)bpc;
        }
    }
    return 0;
}

MglStatus mgl_sgi_load(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    if (n < 12) return cli_err(err, MGL_E_FORMAT, "%s: SGI header cut short", path);
    const unsigned compression = d[2], bpc = d[3], dim = mgl_be16(d + 4), zsize = mgl_be16(d + 10);
    const size_t W = mgl_be16(d + 6), H = mgl_be16(d + 8);
    int bands = 0;
    if ((bpc == 1 || bpc == 2) && (dim == 1 || dim == 2) && zsize == 1)
        bands = 1;
    else if ((bpc == 1 || bpc == 2) && dim == 3 && (zsize == 3 || zsize == 4))
        bands = (int)zsize;
    if (!bands)
        return cli_err(err, MGL_E_FORMAT, "%s: SGI image of %u-byte samples, dimension %u and %u channels", path, bpc,
                       dim, zsize);
    if (!W || !H) return cli_err(err, MGL_E_FORMAT, "%s: empty SGI image (%zux%zu)", path, W, H);
    if (compression > 1) return cli_err(err, MGL_E_FORMAT, "%s: SGI compression %u", path, compression);
    MglStatus st = size_check(path, "SGI image", W, H, err);
    if (st != MGL_OK) return st;
    Img im = {0};
    const int px = bands == 1 ? 1 : 4;
    if (!img_new(&im, W, H, px)) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    if (compression == 0) { /* band after band, rows bottom up */
        const size_t page = W * H * bpc;
        if (n < 512 || (n - 512) / page < (size_t)bands) return refuse(path, &im, err, "SGI pixel data cut short");
        for (int b = 0; b < bands; b++)
            for (size_t y = 0; y < H; y++)
                for (size_t x = 0; x < W; x++) {
                    const uint8_t v = d[512 + (size_t)b * page + ((H - 1 - y) * W + x) * bpc];
                    uint8_t* o = im.pix + (y * W + x) * (size_t)px;
                    if (b < 3) o[b] = v;
                }
        if (px == 4)
            for (size_t i = 0; i < W * H; i++) im.pix[4 * i + 3] = 255;
        return img_to_rgb(path, &im, false, rgb, w, h, err);
    }
    /* RLE: offset and length tables of bands*H big-endian words after the 512-byte header */
    const uint64_t tablen = (uint64_t)bands * H;
    if (n < 512 || n - 512 < 8 * tablen) return refuse(path, &im, err, "SGI offset tables cut short");
    const uint8_t* buf = d + 512;
    const size_t len = n - 512;
    const RawMode rm = bpc == 1 ? (bands == 1   ? RM_L
                                   : bands == 3 ? RM_RGB
                                                : RM_RGBA)
                                : (bands == 1   ? RM_L16B
                                   : bands == 3 ? RM_RGB16B
                                                : RM_RGBA16B);
    uint8_t* row = calloc(W * (size_t)bands, 2);
    if (!row) return refuse(path, &im, err, "out of memory");
    const char* bad = NULL;
    for (size_t r = 0; r < H && !bad; r++) {
        bool stop = false;
        for (int c = 0; c < bands; c++) {
            const size_t t = r + (size_t)c * H;
            const uint32_t off = mgl_be32(buf + 4 * t), cnt = mgl_be32(buf + 4 * (tablen + t));
            if (off < 512) {
                bad = "SGI row offset inside the header";
                break;
            }
            const int s = sgi_row(row + (size_t)c * bpc, buf, len, off - 512u, cnt, bands, W, (int)bpc);
            if (s < 0) {
                bad = "SGI run-length row past its width or the end of the file";
                break;
            }
            if (s == 1) {
                stop = true;
                break;
            }
        }
        if (bad || stop) break;
        unpack_row(rm, row, W, im.pix + (H - 1 - r) * W * (size_t)px, px);
    }
    free(row);
    if (bad) return refuse(path, &im, err, bad);
    return img_to_rgb(path, &im, false, rgb, w, h, err);
}

/* ---- PCX ------------------------------------------------------------------------------------- */

MglStatus mgl_pcx_load(const char* path, const uint8_t* d, size_t n, bool* not_pcx, uint8_t** rgb, int* w, int* h,
                       MglErr* err) {
    *not_pcx = true;
    if (n < 68) return cli_err(err, MGL_E_FORMAT, "%s: PCX header cut short", path);
    const size_t x0 = mgl_le16(d + 4), y0 = mgl_le16(d + 6), x1 = (size_t)mgl_le16(d + 8) + 1,
                 y1 = (size_t)mgl_le16(d + 10) + 1;
    if (x1 <= x0 || y1 <= y0) return cli_err(err, MGL_E_FORMAT, "%s: PCX of empty size", path);
    *not_pcx = false;
    if (n < 128) return cli_err(err, MGL_E_FORMAT, "%s: PCX header cut short", path);
    const unsigned version = d[1], bits = d[3], planes = d[65], given_stride = mgl_le16(d + 66);
    const size_t W = x1 - x0, H = y1 - y0;
    Img im = {0};
    RawMode rm;
    int px = 1;
    bool pal = false;
    const uint8_t* pal_src = NULL;
    size_t pal_n = 0;
    if (bits == 1 && planes == 1) {
        rm = RM_1;
    } else if (bits == 1 && (planes == 2 || planes == 4)) {
        rm = planes == 2 ? RM_P2L : RM_P4L;
        pal = true, pal_src = d + 16, pal_n = 16;
    } else if (version == 5 && bits == 8 && planes == 1) {
        rm = RM_L;
        if (n < 769) /* Pillow seeks 769 bytes back from the end for the palette */
            return cli_err(err, MGL_E_FORMAT, "%s: 8-bit PCX of %zu bytes, too short for its palette", path, n);
        if (d[n - 769] == 12) {
            const uint8_t* p = d + n - 768;
            for (size_t i = 0; i < 256 && !pal; i++)
                if (p[3 * i] != i || p[3 * i + 1] != i || p[3 * i + 2] != i) pal = true;
            pal_src = p, pal_n = 256;
        }
    } else if (version == 5 && bits == 8 && planes == 3) {
        rm = RM_RGBL;
        px = 4;
    } else {
        return cli_err(err, MGL_E_FORMAT, "%s: PCX of version %u with %u bits in %u planes", path, version, bits,
                       planes);
    }
    MglStatus st = size_check(path, "PCX", W, H, err);
    if (st != MGL_OK) return st;
    size_t stride = (W * bits + 7) / 8;
    if (given_stride != stride) stride += stride % 2;
    const size_t bytes = planes * stride;
    if ((W * (size_t)raw_bits(rm) + 7) / 8 > bytes)
        return cli_err(err, MGL_E_FORMAT, "%s: PCX lines shorter than the width", path);
    if (!img_new(&im, W, H, px)) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    if (pal) {
        im.palette = true;
        mgl_palette_fill(im.pal, pal_src, pal_n, 3, false);
    }
    uint8_t* buf = calloc(1, bytes);
    if (!buf) return refuse(path, &im, err, "out of memory");
    size_t pos = 128, x = 0, y = 0;
    const char* bad = NULL;
    for (;;) {
        if (pos >= n || ((d[pos] & 0xc0) == 0xc0 && n - pos < 2)) {
            bad = "PCX data cut short";
            break;
        }
        if ((d[pos] & 0xc0) == 0xc0) {
            const unsigned k = d[pos] & 0x3f;
            for (unsigned i = 0; i < k; i++) {
                if (x >= bytes) {
                    bad = "PCX run past the end of a line";
                    break;
                }
                buf[x++] = d[pos + 1];
            }
            pos += 2;
        } else {
            buf[x++] = d[pos++];
        }
        if (x >= bytes) {
            if (bytes % W && bytes > W) { /* PcxDecode.c's plane compaction, and its test for it */
                const size_t nb = bytes / W, s = bytes / nb;
                for (size_t i = 1; i < nb; i++) memmove(buf + i * W, buf + i * s, W);
            }
            unpack_row(rm, buf, W, im.pix + y * W * (size_t)px, px);
            x = 0;
            if (++y >= H) break;
        }
    }
    free(buf);
    if (bad) return refuse(path, &im, err, bad);
    return img_to_rgb(path, &im, false, rgb, w, h, err);
}

/* ---- MSP (Windows Paint) ---------------------------------------------------------------------- */

/* Pillow's MspImagePlugin: a 32-byte header whose 16-bit words XOR to 0; "DanM" rows raw, "LinS"
 * rows run-length coded through a row map, the decoded rows then read back to back as raw 1-bit
 * rows (so a row that decodes short shifts the rows after it). */
MglStatus mgl_msp_load(const char* path, const uint8_t* d, size_t n, bool* not_msp, uint8_t** rgb, int* w, int* h,
                       MglErr* err) {
    *not_msp = true;
    if (n < 32) return cli_err(err, MGL_E_FORMAT, "%s: MSP header cut short", path);
    unsigned sum = 0;
    for (int i = 0; i < 32; i += 2) sum ^= mgl_le16(d + i);
    const size_t W = mgl_le16(d + 4), H = mgl_le16(d + 6);
    if (sum || !W || !H) return cli_err(err, MGL_E_FORMAT, "%s: MSP checksum or size bad", path);
    *not_msp = false;
    MglStatus st = size_check(path, "MSP image", W, H, err);
    if (st != MGL_OK) return st;
    const size_t stride = (W + 7) / 8;
    Img im = {0};
    if (!img_new(&im, W, H, 1)) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    if (!memcmp(d, "DanM", 4)) {
        if ((n - 32) / stride < H) return refuse(path, &im, err, "MSP data cut short");
        for (size_t y = 0; y < H; y++) unpack_row(RM_1, d + 32 + y * stride, W, im.pix + y * W, 1);
        return img_to_rgb(path, &im, false, rgb, w, h, err);
    }
    if (n - 32 < 2 * H) return refuse(path, &im, err, "MSP row map cut short");
    GByteArray* out = g_byte_array_new();
    size_t pos = 32 + 2 * H;
    const char* bad = NULL;
    for (size_t r = 0; r < H && !bad; r++) {
        const size_t len = mgl_le16(d + 32 + 2 * r);
        if (!len) {
            for (size_t i = 0; i < stride; i++) g_byte_array_append(out, (const guint8*)"\xff", 1);
            continue;
        }
        if (n - pos < len) {
            bad = "MSP row cut short";
            break;
        }
        const uint8_t* row = d + pos;
        pos += len;
        for (size_t i = 0; i < len;) {
            const unsigned type = row[i++];
            if (type == 0) {
                if (len - i < 2) {
                    bad = "MSP run cut short";
                    break;
                }
                for (unsigned k = 0; k < row[i]; k++) g_byte_array_append(out, row + i + 1, 1);
                i += 2;
            } else {
                const size_t k = type < len - i ? type : len - i; /* a literal past the row is cut */
                g_byte_array_append(out, row + i, (guint)k);
                i += type;
            }
        }
    }
    if (!bad && out->len / stride < H) bad = "MSP rows decode to too few bytes";
    if (!bad)
        for (size_t y = 0; y < H; y++) unpack_row(RM_1, out->data + y * stride, W, im.pix + y * W, 1);
    g_byte_array_unref(out);
    if (bad) return refuse(path, &im, err, bad);
    return img_to_rgb(path, &im, false, rgb, w, h, err);
}

/* ---- XBM (X11 bitmap) ------------------------------------------------------------------------- */

/* Pillow's XbmImagePlugin: its header expression over the first 512 bytes (the width and height
 * lines, an optional hot spot, up to the last "_bits[]"), then from there each "x" and the two
 * characters after it as a hex byte (anything not a hex digit counts 0), rows of (width + 7) / 8
 * bytes, least significant bit first, a set bit white. */
MglStatus mgl_xbm_load(const char* path, const uint8_t* d, size_t n, bool* not_xbm, uint8_t** rgb, int* w, int* h,
                       MglErr* err) {
    *not_xbm = true;
    static GRegex* head;
    static gsize once;
    if (g_once_init_enter(&once)) {
        head = g_regex_new("\\s*#define[ \\t]+.*_width[ \\t]+(?P<width>[0-9]+)[\\r\\n]+"
                           "#define[ \\t]+.*_height[ \\t]+(?P<height>[0-9]+)[\\r\\n]+"
                           "(?P<hotspot>#define[ \\t]+[^_]*_x_hot[ \\t]+(?P<xhot>[0-9]+)[\\r\\n]+"
                           "#define[ \\t]+[^_]*_y_hot[ \\t]+(?P<yhot>[0-9]+)[\\r\\n]+)?"
                           "[\\x00-\\xff]*_bits\\[]",
                           G_REGEX_RAW | G_REGEX_OPTIMIZE, G_REGEX_MATCH_ANCHORED, NULL);
        g_once_init_leave(&once, 1);
    }
    GMatchInfo* mi = NULL;
    const size_t hn = n < 512 ? n : 512;
    size_t W = 0, H = 0, start = 0;
    bool ok = head && g_regex_match_full(head, (const gchar*)d, (gssize)hn, 0, G_REGEX_MATCH_ANCHORED, &mi, NULL);
    if (ok) {
        gint s, e;
        char* ws = g_match_info_fetch_named(mi, "width");
        char* hs = g_match_info_fetch_named(mi, "height");
        /* Python's int() of a digit string: over 16 digits is past any size read here */
        ok = ws && hs && strlen(ws) <= 16 && strlen(hs) <= 16 && g_match_info_fetch_pos(mi, 0, &s, &e);
        if (ok)
            W = (size_t)g_ascii_strtoull(ws, NULL, 10), H = (size_t)g_ascii_strtoull(hs, NULL, 10), start = (size_t)e;
        g_free(ws);
        g_free(hs);
    }
    g_match_info_free(mi);
    if (!ok || !W || !H) return cli_err(err, MGL_E_FORMAT, "%s: not an XBM header", path);
    *not_xbm = false;
    MglStatus st = size_check(path, "XBM", W, H, err);
    if (st != MGL_OK) return st;
    const size_t stride = (W + 7) / 8;
    Img im = {0};
    if (!img_new(&im, W, H, 1)) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    uint8_t* row = malloc(stride);
    if (!row) return refuse(path, &im, err, "out of memory");
    size_t pos = start, x = 0, y = 0;
    bool done = false;
    while (!done) {
        while (pos < n && d[pos] != 'x') pos++;
        if (n - pos < 3) break;
        uint8_t v = 0;
        for (int k = 1; k <= 2; k++) {
            const char c = (char)d[pos + k];
            v = (uint8_t)(v << 4 | (g_ascii_isxdigit(c) ? g_ascii_xdigit_value(c) : 0));
        }
        row[x] = v;
        if (++x >= stride) {
            for (size_t i = 0; i < W; i++) im.pix[y * W + i] = (row[i >> 3] >> (i & 7)) & 1 ? 255 : 0;
            x = 0;
            if (++y >= H) done = true;
        }
        pos += 3;
    }
    free(row);
    if (!done) return refuse(path, &im, err, "XBM data cut short");
    return img_to_rgb(path, &im, false, rgb, w, h, err);
}

/* ---- SPIDER ----------------------------------------------------------------------------------- */

static float rd_f32(const uint8_t* p, bool be) {
    const uint32_t v = be ? mgl_be32(p) : mgl_le32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

/* Python's isInt: finite and integral */
static bool spider_int(float f) { return isfinite(f) && f == truncf(f); }

/* Pillow's isSpiderHeader over the 27 values (1-based as there): the header length, 0 if not one. */
static double spider_header(const float* t) {
    const int idx[] = {1, 2, 5, 12, 13, 22, 23};
    for (int i = 0; i < 7; i++)
        if (!spider_int(t[idx[i] - 1])) return 0;
    const float iform = t[4];
    if (iform != 1 && iform != 3 && iform != -11 && iform != -12 && iform != -21 && iform != -22) return 0;
    const double labrec = t[12], labbyt = t[21], lenbyt = t[22];
    return labbyt == labrec * lenbyt ? labbyt : 0;
}

/* Pillow's SpiderImagePlugin (it has no signature: tried before Targa, as Pillow orders them): 27
 * 32-bit floats, big-endian tried first; a 2D image (iform 1) of float samples, the first of a
 * stack; convert("RGB") through L (truncated, clipped, NaN 0). */
MglStatus mgl_spider_load(const char* path, const uint8_t* d, size_t n, bool* not_spider, uint8_t** rgb, int* w, int* h,
                          MglErr* err) {
    *not_spider = true;
    if (n < 108) return cli_err(err, MGL_E_FORMAT, "%s: not a SPIDER header", path);
    float t[27];
    bool be = true;
    double hdr = 0;
    for (int pass = 0; pass < 2 && hdr == 0; pass++) {
        be = pass == 0;
        for (int i = 0; i < 27; i++) t[i] = rd_f32(d + 4 * i, be);
        hdr = spider_header(t);
    }
    if (hdr == 0 || t[4] != 1) return cli_err(err, MGL_E_FORMAT, "%s: not a SPIDER 2D image", path);
    if (!isfinite(t[23]) || !isfinite(t[26]) || fabsf(t[23]) > 2e9f || fabsf(t[26]) > 2e9f)
        return *not_spider = false, cli_err(err, MGL_E_FORMAT, "%s: SPIDER stack fields not numbers", path);
    const long long istack = (long long)t[23], imgnumber = (long long)t[26];
    double offset;
    if (istack == 0 && imgnumber == 0)
        offset = hdr;
    else if (istack > 0 && imgnumber == 0)
        offset = hdr * 2;
    else if (istack == 0 && imgnumber > 0) /* Pillow fails here (its stack offset is not set yet) */
        return *not_spider = false, cli_err(err, MGL_E_FORMAT, "%s: SPIDER image number without a stack", path);
    else
        return cli_err(err, MGL_E_FORMAT, "%s: SPIDER stack fields inconsistent", path);
    const double fw = t[11], fh = t[1];
    if (fw < 1 || fh < 1) return cli_err(err, MGL_E_FORMAT, "%s: empty SPIDER image", path);
    *not_spider = false;
    if (fw > MGL_IMAGE_MAX_SIDE || fh > MGL_IMAGE_MAX_SIDE)
        return size_check(path, "SPIDER image", (uint64_t)MGL_IMAGE_MAX_SIDE + 1, 1, err);
    const size_t W = (size_t)fw, H = (size_t)fh;
    MglStatus st = size_check(path, "SPIDER image", W, H, err);
    if (st != MGL_OK) return st;
    if (offset < 0 || offset > (double)n || ((double)n - offset) / (4.0 * (double)W) < (double)H)
        return cli_err(err, MGL_E_FORMAT, "%s: SPIDER data cut short", path);
    Img im = {0};
    if (!img_new(&im, W, H, 1)) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    const uint8_t* p = d + (size_t)offset;
    for (size_t i = 0; i < W * H; i++) {
        const float v = rd_f32(p + 4 * i, be);
        im.pix[i] = mgl_f2l(v);
    }
    return img_to_rgb(path, &im, false, rgb, w, h, err);
}

/* ---- IM (IFUNC Image Memory) ----------------------------------------------------------------- */

/* Python's int() of a header number: white space around, a sign, digits with single underscores
 * between them. */
static bool py_int_str(const char* s, long long* v) {
    while (g_ascii_isspace(*s)) s++;
    bool neg = *s == '-';
    if (*s == '+' || *s == '-') s++;
    if (!g_ascii_isdigit(*s)) return false;
    long long x = 0;
    for (; *s; s++) {
        if (*s == '_' && g_ascii_isdigit(s[1]) && g_ascii_isdigit(s[-1])) continue;
        if (!g_ascii_isdigit(*s)) break;
        if (x > (1ll << 40)) return false;
        x = x * 10 + (*s - '0');
    }
    while (g_ascii_isspace(*s)) s++;
    if (*s) return false;
    *v = neg ? -x : x;
    return true;
}

/* The image types Pillow writes (and the plain ones of its table), with the raw mode of their
 * rows: the rest of its table (RLB, RYB, bit-packed floats, RGB3...) is not read here. */
typedef enum {
    IR_1,
    IR_L,
    IR_P,
    IR_P2,
    IR_P4,
    IR_RGB,
    IR_RGB_L,
    IR_YCC_L,
    IR_LA_L,
    IR_PA_L,
    IR_RGBA_L,
    IR_CMYK_L,
    IR_I32S,
    IR_I16L,
    IR_I16B,
    IR_F32F
} ImRaw;

static const struct {
    const char* type;
    ImRaw raw;
} k_im_types[] = {
    {"0 1 image", IR_1},       {"L 1 image", IR_1},       {"B1 image", IR_1},        {"Greyscale image", IR_L},
    {"Grayscale image", IR_L}, {"B2 image", IR_P2},       {"B4 image", IR_P4},       {"X 24 image", IR_RGB},
    {"RGB image", IR_RGB_L},   {"YCC image", IR_YCC_L},   {"LA image", IR_LA_L},     {"PA image", IR_PA_L},
    {"RGBA image", IR_RGBA_L}, {"RGBX image", IR_RGBA_L}, {"CMYK image", IR_CMYK_L}, {"L 32S image", IR_I32S},
    {"L*32S image", IR_I32S},  {"L 16 image", IR_I16L},   {"L*16 image", IR_I16L},   {"L 16L image", IR_I16L},
    {"L*16L image", IR_I16L},  {"L 16B image", IR_I16B},  {"L*16B image", IR_I16B},  {"L 32F image", IR_F32F},
    {"L*32F image", IR_F32F},
};

/* Pillow's ImImagePlugin: header lines "Key: value" (at most 100 bytes each, up to a NUL or 0x1A),
 * the 0x1A after them, a 768-byte planar palette when there is a "Lut" line (a palette that is not
 * grey makes a grey image P, a grey one is ignored), then rows bottom up. */
MglStatus mgl_im_load(const char* path, const uint8_t* d, size_t n, bool* not_im, uint8_t** rgb, int* w, int* h,
                      MglErr* err) {
    *not_im = true;
    if (!n || !memchr(d, '\n', n < 100 ? n : 100)) return cli_err(err, MGL_E_FORMAT, "%s: not an IM header", path);
    size_t pos = 0, tags = 0;
    long long W = 512, H = 512;
    int type = IR_L;
    bool known_type = true, lut = false;
    int end = -1; /* what ended the header: -1 the end of the file, else the byte */
    char line[128];
    for (;;) {
        if (pos >= n) break;
        const uint8_t c = d[pos++];
        if (c == '\r') continue;
        if (c == 0 || c == 0x1a) {
            end = c;
            break;
        }
        const uint8_t* nl = memchr(d + pos, '\n', n - pos);
        size_t len = (nl ? (size_t)(nl - d) + 1 : n) - (pos - 1);
        if (len > 100) return cli_err(err, MGL_E_FORMAT, "%s: not an IM header (a line over 100 bytes)", path);
        memcpy(line, d + pos - 1, len);
        pos += len - 1;
        if (len >= 2 && line[len - 2] == '\r' && line[len - 1] == '\n')
            len -= 2;
        else if (len >= 1 && line[len - 1] == '\n')
            len -= 1;
        line[len] = 0;
        const char* colon = memchr(line, ':', len);
        if (!g_ascii_isalpha(line[0]) || !colon) return cli_err(err, MGL_E_FORMAT, "%s: not an IM header line", path);
        const char* v = colon + 1;
        while (v < line + len && (*v == ' ' || *v == '\t')) v++;
        const size_t vlen = (size_t)(line + len - v); /* the value may hold NUL bytes, as Python's */
        const size_t klen = (size_t)(colon - line);
#define IM_KEY(s) (klen == strlen(s) && !memcmp(line, s, klen))
        if (IM_KEY("File size (no of images)") || IM_KEY("Scale (x,y)") || IM_KEY("Image size (x*y)")) {
            if (memchr(v, 0, vlen))
                return *not_im = false, cli_err(err, MGL_E_FORMAT, "%s: IM header number not a number", path);
            char** parts = g_strsplit_set(v, "*,", -1);
            long long num[2] = {0, 0};
            int np = 0;
            bool ints = true;
            for (char** p = parts; *p; p++, np++) {
                long long x;
                if (!py_int_str(*p, &x)) {
                    char* e2;
                    const char* q = *p;
                    while (g_ascii_isspace(*q)) q++;
                    g_ascii_strtod(q, &e2);
                    while (g_ascii_isspace(*e2)) e2++;
                    if (e2 == q || *e2) {
                        g_strfreev(parts);
                        return *not_im = false, cli_err(err, MGL_E_FORMAT, "%s: IM header number not a number", path);
                    }
                    ints = false;
                } else if (np < 2) {
                    num[np] = x;
                }
            }
            g_strfreev(parts);
            if (IM_KEY("Image size (x*y)")) {
                if (!ints || np != 2)
                    return *not_im = false, cli_err(err, MGL_E_FORMAT, "%s: IM image size not two integers", path);
                W = num[0], H = num[1];
            }
        } else if (IM_KEY("Image type")) {
            known_type = false;
            for (size_t i = 0; i < sizeof k_im_types / sizeof k_im_types[0]; i++)
                if (vlen == strlen(k_im_types[i].type) && !memcmp(v, k_im_types[i].type, vlen))
                    type = (int)k_im_types[i].raw, known_type = true;
        } else if (IM_KEY("Lut")) {
            lut = true;
        }
        if (IM_KEY("Comment") || IM_KEY("Date") || IM_KEY("Digitalization equipment") ||
            IM_KEY("File size (no of images)") || IM_KEY("Lut") || IM_KEY("Name") || IM_KEY("Scale (x,y)") ||
            IM_KEY("Image size (x*y)") || IM_KEY("Image type"))
            tags++;
#undef IM_KEY
    }
    if (!tags || end < 0) return cli_err(err, MGL_E_FORMAT, "%s: not an IM header", path);
    if (end == 0) {
        while (pos < n && d[pos] != 0x1a) pos++;
        if (pos >= n) return cli_err(err, MGL_E_FORMAT, "%s: IM header without its end mark", path);
        pos++;
    }
    uint8_t pal[256][3];
    bool palette = type == IR_P2 || type == IR_P4;
    if (palette) mgl_palette_fill(pal, NULL, 0, 3, false);
    if (lut) {
        if (n - pos < 768) return cli_err(err, MGL_E_FORMAT, "%s: IM palette cut short", path);
        const uint8_t* p = d + pos;
        bool grey = true;
        for (int i = 0; i < 256; i++)
            if (!(p[i] == p[i + 256] && p[i] == p[i + 512])) grey = false;
        if (!grey && known_type &&
            (type == IR_L || type == IR_P2 || type == IR_P4 || type == IR_LA_L || type == IR_PA_L)) {
            type = (type == IR_LA_L || type == IR_PA_L) ? IR_PA_L : IR_P; /* Pillow's raw mode becomes P or PA;L */
            palette = true;
            for (int i = 0; i < 256; i++) pal[i][0] = p[i], pal[i][1] = p[i + 256], pal[i][2] = p[i + 512];
        }
        pos += 768;
    }
    *not_im = false;
    if (type == IR_PA_L && !palette) /* Pillow has no LA unpacker for PA;L rows */
        return cli_err(err, MGL_E_FORMAT, "%s: IM PA image without a colour palette", path);
    if (!known_type) return cli_err(err, MGL_E_UNSUPPORTED, "%s: IM image type not read by the engine", path);
    if (W < 1 || H < 1) return cli_err(err, MGL_E_FORMAT, "%s: empty IM image", path);
    MglStatus st = size_check(path, "IM image", (uint64_t)W, (uint64_t)H, err);
    if (st != MGL_OK) return st;
    static const int k_bits[] = {1, 8, 8, 2, 4, 24, 24, 24, 16, 16, 32, 32, 32, 16, 16, 32};
    const size_t row = ((size_t)W * (size_t)k_bits[type] + 7) / 8;
    if ((n - pos) / row < (size_t)H) return cli_err(err, MGL_E_FORMAT, "%s: IM data cut short", path);
    uint8_t* out = malloc((size_t)W * (size_t)H * 3);
    if (!out) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    const size_t Wn = (size_t)W;
    for (size_t r = 0; r < (size_t)H; r++) {
        const uint8_t* in = d + pos + r * row;
        uint8_t* o = out + ((size_t)H - 1 - r) * Wn * 3; /* rows bottom up */
        for (size_t x = 0; x < Wn; x++, o += 3) {
            unsigned g = 0;
            bool is_grey = true;
            switch ((ImRaw)type) {
            case IR_1: g = (in[x >> 3] >> (7 - (x & 7)) & 1) ? 255 : 0; break;
            case IR_L: g = in[x]; break;
            case IR_P:
            case IR_PA_L: is_grey = false, memcpy(o, pal[in[x]], 3); break;
            case IR_P2: is_grey = false, memcpy(o, pal[(in[x >> 2] >> (6 - 2 * (x & 3))) & 3], 3); break;
            case IR_P4: is_grey = false, memcpy(o, pal[(in[x >> 1] >> (x & 1 ? 0 : 4)) & 15], 3); break;
            case IR_RGB: is_grey = false, memcpy(o, in + 3 * x, 3); break;
            case IR_RGB_L:
            case IR_RGBA_L: is_grey = false, o[0] = in[x], o[1] = in[x + Wn], o[2] = in[x + 2 * Wn]; break;
            case IR_YCC_L: {
                uint8_t px[4] = {in[x], in[x + Wn], in[x + 2 * Wn], 255};
                mgl_ycc_to_rgb_row(px, 1);
                is_grey = false, memcpy(o, px, 3);
                break;
            }
            case IR_CMYK_L: is_grey = false, mgl_cmyk2rgb(in[x], in[x + Wn], in[x + 2 * Wn], in[x + 3 * Wn], o); break;
            case IR_LA_L: g = in[x]; break;
            case IR_I32S: g = mgl_clip8_i64((int32_t)mgl_le32(in + 4 * x)); break;
            case IR_I16L: g = mgl_clip8_u16(mgl_le16(in + 2 * x)); break;
            case IR_I16B: g = mgl_clip8_u16(mgl_be16(in + 2 * x)); break;
            case IR_F32F: g = mgl_f2l(rd_f32(in + 4 * x, false)); break;
            }
            if (is_grey) o[0] = o[1] = o[2] = (uint8_t)g;
        }
    }
    *rgb = out;
    *w = (int)W;
    *h = (int)H;
    return MGL_OK;
}

/* ---- DDS (DirectDraw Surface) ----------------------------------------------------------------- */

/* Pillow's BcnDecode.c for BC1-BC5: a 565 colour widened by repeating its top bits; BC1's third and
 * fourth colours by integer thirds (or the half and transparent black when c0 <= c1; BC2 and BC3
 * always take thirds); BC3/BC4/BC5 alpha ramps in sevenths or fifths (with 0 and 255). */
static void bc_565(unsigned v, unsigned* r, unsigned* g, unsigned* b) {
    *r = (v & 0xf800) >> 8, *r |= *r >> 5;
    *g = (v & 0x7e0) >> 3, *g |= *g >> 6;
    *b = (v & 0x1f) << 3, *b |= *b >> 5;
}

static void bc1_color(uint8_t col[16][4], const uint8_t* s, bool separate_alpha) {
    const unsigned c0 = mgl_le16(s), c1 = mgl_le16(s + 2);
    const uint32_t lut = mgl_le32(s + 4);
    unsigned r0, g0, b0, r1, g1, b1;
    bc_565(c0, &r0, &g0, &b0);
    bc_565(c1, &r1, &g1, &b1);
    uint8_t p[4][4] = {{(uint8_t)r0, (uint8_t)g0, (uint8_t)b0, 255}, {(uint8_t)r1, (uint8_t)g1, (uint8_t)b1, 255}};
    if (c0 > c1 || separate_alpha) {
        p[2][0] = (uint8_t)((2 * r0 + r1) / 3), p[2][1] = (uint8_t)((2 * g0 + g1) / 3),
        p[2][2] = (uint8_t)((2 * b0 + b1) / 3);
        p[3][0] = (uint8_t)((r0 + 2 * r1) / 3), p[3][1] = (uint8_t)((g0 + 2 * g1) / 3),
        p[3][2] = (uint8_t)((b0 + 2 * b1) / 3);
        p[2][3] = p[3][3] = 255;
    } else {
        p[2][0] = (uint8_t)((r0 + r1) / 2), p[2][1] = (uint8_t)((g0 + g1) / 2), p[2][2] = (uint8_t)((b0 + b1) / 2);
        p[2][3] = 255;
        memset(p[3], 0, 4);
    }
    for (int k = 0; k < 16; k++) memcpy(col[k], p[3 & (lut >> (2 * k))], 4);
}

/* An alpha-style block into byte `o` of 16 pixels of `stride` bytes; `sign`: BC5S's signed ends. */
static void bc3_alpha(uint8_t* dst, const uint8_t* s, int stride, int o, bool sign) {
    const unsigned a0 = sign ? (unsigned)(((int8_t)s[0] + 255) / 2) : s[0],
                   a1 = sign ? (unsigned)(((int8_t)s[1] + 255) / 2) : s[1];
    const uint32_t l1 = (uint32_t)s[2] | (uint32_t)s[3] << 8 | (uint32_t)s[4] << 16,
                   l2 = (uint32_t)s[5] | (uint32_t)s[6] << 8 | (uint32_t)s[7] << 16;
    uint8_t a[8] = {(uint8_t)a0, (uint8_t)a1};
    if (a0 > a1) {
        for (int k = 1; k <= 6; k++) a[k + 1] = (uint8_t)(((7 - k) * a0 + k * a1) / 7);
    } else {
        for (int k = 1; k <= 4; k++) a[k + 1] = (uint8_t)(((5 - k) * a0 + k * a1) / 5);
        a[6] = 0, a[7] = 255;
    }
    for (int k = 0; k < 8; k++) dst[stride * k + o] = a[7 & (l1 >> (3 * k))];
    for (int k = 0; k < 8; k++) dst[stride * (8 + k) + o] = a[7 & (l2 >> (3 * k))];
}

/* Pillow's DdsImagePlugin: uncompressed luminance (L, LA) and RGB(A) by masks, BC1-BC5 by FourCC or
 * a DX10 header (BC5, and plain R8G8B8A8); BC6H and BC7 are not read here. */
MglStatus mgl_dds_load(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    if (n < 8 || mgl_le32(d + 4) != 124) return cli_err(err, MGL_E_FORMAT, "%s: DDS header size is not 124", path);
    if (n < 128) return cli_err(err, MGL_E_FORMAT, "%s: DDS header cut short", path);
    const size_t H = mgl_le32(d + 12), W = mgl_le32(d + 16);
    const uint32_t pfflags = mgl_le32(d + 80);
    const uint8_t* fourcc = d + 84;
    uint32_t masks[4];
    for (int i = 0; i < 4; i++) masks[i] = mgl_le32(d + 92 + 4 * i);
    if (!W || !H) return cli_err(err, MGL_E_FORMAT, "%s: empty DDS", path);
    MglStatus st = size_check(path, "DDS", W, H, err);
    if (st != MGL_OK) return st;
    enum { RAW, BCN } kind = RAW;
    int bc = 0, px = 4;
    bool sign = false;
    size_t start = 128;
    RawMode rm = RM_L;
    if (pfflags & 0x20000) { /* luminance */
        rm = pfflags & 1 ? RM_LA : RM_L;
        px = pfflags & 1 ? 4 : 1;
    } else if (pfflags & 0x40) { /* RGB by masks: Pillow's raw mode, read backwards */
        const uint32_t want[4] = {0xff000000u, 0xff0000u, 0xff00u, 0xffu};
        char fwd[5] = "";
        for (int k = (pfflags & 1) ? 0 : 1; k < 4; k++) {
            int found = -1;
            for (int i = 0; i < 4; i++)
                if (masks[i] == want[k]) found = i; /* a repeated mask: the last one, as Python's dict */
            if (found < 0) return cli_err(err, MGL_E_FORMAT, "%s: DDS colour masks Pillow does not read", path);
            fwd[strlen(fwd)] = "RGBA"[found];
        }
        char raw[5] = "";
        const size_t len = strlen(fwd);
        for (size_t i = 0; i < len; i++) raw[i] = fwd[len - 1 - i];
        /* the unpackers Pillow has for RGB and RGBA images */
        static const struct {
            const char* name;
            RawMode rm;
        } k_unpack[] = {{"RGB", RM_RGB},   {"BGR", RM_BGR},   {"RGBA", RM_RGBA},
                        {"BGRA", RM_BGRA}, {"ARGB", RM_ARGB}, {"ABGR", RM_ABGR}};
        int found = -1;
        for (int i = 0; i < (int)(sizeof k_unpack / sizeof k_unpack[0]); i++)
            if (!strcmp(raw, k_unpack[i].name)) found = i;
        if (found < 0) return cli_err(err, MGL_E_FORMAT, "%s: DDS channel order %s has no Pillow unpacker", path, raw);
        rm = k_unpack[found].rm;
    } else {
        kind = BCN;
        if (!memcmp(fourcc, "DXT1", 4))
            bc = 1;
        else if (!memcmp(fourcc, "DXT3", 4))
            bc = 2;
        else if (!memcmp(fourcc, "DXT5", 4))
            bc = 3;
        else if (!memcmp(fourcc, "ATI1", 4))
            bc = 4, px = 1;
        else if (!memcmp(fourcc, "ATI2", 4) || !memcmp(fourcc, "BC5S", 4))
            bc = 5, sign = fourcc[3] == 'S';
        else if (!memcmp(fourcc, "DX10", 4)) {
            if (n < 132) return cli_err(err, MGL_E_FORMAT, "%s: DDS DX10 header cut short", path);
            const uint32_t dxgi = mgl_le32(d + 128);
            start = 148;
            if (dxgi == 82 || dxgi == 83 || dxgi == 84)
                bc = 5, sign = dxgi == 84;
            else if (dxgi == 27 || dxgi == 28 || dxgi == 29)
                kind = RAW, rm = RM_RGBA;
            else
                return cli_err(err, MGL_E_UNSUPPORTED, "%s: DDS DXGI format %u not read by the engine", path, dxgi);
        } else {
            return cli_err(err, MGL_E_UNSUPPORTED, "%s: DDS pixel format not read by the engine", path);
        }
    }
    Img im = {0};
    if (!img_new(&im, W, H, px)) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    if (kind == RAW) {
        const size_t row = W * (size_t)raw_bits(rm) / 8;
        if (n < start || (n - start) / row < H) return refuse(path, &im, err, "DDS pixel data cut short");
        for (size_t y = 0; y < H; y++) unpack_row(rm, d + start + y * row, W, im.pix + y * W * (size_t)px, px);
        return img_to_rgb(path, &im, false, rgb, w, h, err);
    }
    const size_t bw = (W + 3) / 4, bh = (H + 3) / 4, bsz = (bc == 1 || bc == 4) ? 8 : 16;
    if (n < start || (n - start) / bsz / bw < bh) return refuse(path, &im, err, "DDS block data cut short");
    for (size_t by = 0; by < bh; by++)
        for (size_t bx = 0; bx < bw; bx++) {
            const uint8_t* s = d + start + (by * bw + bx) * bsz;
            uint8_t col[16][4];
            memset(col, 0, sizeof col);
            if (bc == 1) {
                bc1_color(col, s, false);
            } else if (bc == 2) {
                bc1_color(col, s + 8, true);
                for (int k = 0; k < 16; k++) {
                    const unsigned av = 0xf & (s[(k * 4) >> 3] >> ((k * 4) & 7));
                    col[k][3] = (uint8_t)(av << 4 | av);
                }
            } else if (bc == 3) {
                bc1_color(col, s + 8, true);
                bc3_alpha(&col[0][0], s, 4, 3, false);
            } else if (bc == 4) {
                bc3_alpha(&col[0][0], s, 1, 0, false); /* Pillow's lum blocks: one byte a pixel */
            } else {
                bc3_alpha(&col[0][0], s, 4, 0, sign);
                bc3_alpha(&col[0][0], s + 8, 4, 1, sign);
            }
            for (int j = 0; j < 4; j++)
                for (int i = 0; i < 4; i++) {
                    const size_t x = bx * 4 + (size_t)i, y = by * 4 + (size_t)j;
                    if (x >= W || y >= H) continue;
                    uint8_t* o = im.pix + (y * W + x) * (size_t)px;
                    if (bc == 4)
                        o[0] = (&col[0][0])[j * 4 + i];
                    else
                        memcpy(o, col[j * 4 + i], 4);
                }
        }
    return img_to_rgb(path, &im, false, rgb, w, h, err);
}

/* ---- BLP (Blizzard) --------------------------------------------------------------------------- */

/* Pillow's BlpImagePlugin DXT decoding (its own, in Python): 565 colours shifted without repeating
 * bits; one block row gives 4 rows of 4-pixel groups, appended to one stream that is then read as
 * rows of the image's width (so a width that is not a multiple of 4 shears, as in Pillow). */
static void blp_565(unsigned v, int* r, int* g, int* b) {
    *r = (int)((v >> 11) & 0x1f) << 3, *g = (int)((v >> 5) & 0x3f) << 2, *b = (int)(v & 0x1f) << 3;
}

static void blp_dxt_row(const uint8_t* s, size_t blocks, int kind, bool alpha, GByteArray* rows[4]) {
    for (size_t k = 0; k < blocks; k++) {
        const uint8_t* blk = s + k * (kind == 1 ? 8 : 16);
        const uint8_t* cb = kind == 1 ? blk : blk + 8;
        const unsigned c0 = mgl_le16(cb), c1 = mgl_le16(cb + 2);
        uint32_t code = mgl_le32(cb + 4);
        int r0, g0, b0, r1, g1, b1;
        blp_565(c0, &r0, &g0, &b0);
        blp_565(c1, &r1, &g1, &b1);
        const uint32_t ac2 = kind == 7 ? (uint32_t)blk[2] | (uint32_t)blk[3] << 8 : 0;
        const uint32_t ac1 = kind == 7 ? mgl_le32(blk + 4) : 0;
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 4; i++) {
                const unsigned cc = (code >> (2 * (4 * j + i))) & 3;
                int r, g, b, a = 255;
                const bool four = kind != 1 || c0 > c1;
                if (cc == 0)
                    r = r0, g = g0, b = b0;
                else if (cc == 1)
                    r = r1, g = g1, b = b1;
                else if (cc == 2)
                    r = four ? (2 * r0 + r1) / 3 : (r0 + r1) / 2, g = four ? (2 * g0 + g1) / 3 : (g0 + g1) / 2,
                    b = four ? (2 * b0 + b1) / 3 : (b0 + b1) / 2;
                else if (four)
                    r = (2 * r1 + r0) / 3, g = (2 * g1 + g0) / 3, b = (2 * b1 + b0) / 3;
                else
                    r = g = b = a = 0;
                if (kind == 3) { /* DXT3: 4-bit alpha, low nibble first */
                    const unsigned v = blk[(4 * j + i) / 2];
                    a = (int)((i % 2 ? v >> 4 : v & 0xf) * 17);
                } else if (kind == 7) { /* DXT5 */
                    const unsigned idx = 3 * (4 * j + i), a0 = blk[0], a1 = blk[1];
                    unsigned ac;
                    if (idx <= 12)
                        ac = (ac2 >> idx) & 7;
                    else if (idx == 15)
                        ac = (ac2 >> 15) | ((ac1 << 1) & 6);
                    else
                        ac = (ac1 >> (idx - 16)) & 7;
                    a = ac == 0   ? (int)a0
                        : ac == 1 ? (int)a1
                        : a0 > a1 ? (int)(((8 - ac) * a0 + (ac - 1) * a1) / 7)
                        : ac == 6 ? 0
                        : ac == 7 ? 255
                                  : (int)(((6 - ac) * a0 + (ac - 1) * a1) / 5);
                }
                const uint8_t px[4] = {(uint8_t)r, (uint8_t)g, (uint8_t)b, (uint8_t)a};
                g_byte_array_append(rows[j], px, kind == 1 && !alpha ? 3 : 4);
            }
    }
}

/* Pillow's BLP reader: BLP2 palette (256 BGRA entries) or DXT1/3/5 images, BLP1 palette images; the
 * mode RGBA when the alpha depth byte is not 0, else RGB, and the decoded stream read in that
 * mode's pixel size. BLP1's JPEG images are not read here. */
MglStatus mgl_blp_load(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    if (n < 20) return cli_err(err, MGL_E_FORMAT, "%s: BLP header cut short", path);
    const bool blp1 = d[3] == '1';
    const int8_t alpha_depth = (int8_t)d[9];
    const size_t W = mgl_le32(d + 12), H = mgl_le32(d + 16);
    if (!W || !H) return cli_err(err, MGL_E_FORMAT, "%s: empty BLP", path);
    MglStatus st = size_check(path, "BLP", W, H, err);
    if (st != MGL_OK) return st;
    const size_t head = blp1 ? 156 : 148;
    if (n < head) return cli_err(err, MGL_E_FORMAT, "%s: BLP header cut short", path);
    const int32_t compression = (int32_t)mgl_le32(d + 4);
    const int32_t encoding = blp1 ? (int32_t)mgl_le32(d + 20) : (int8_t)d[8];
    const int alpha_encoding = (int8_t)d[10];
    const size_t o = blp1 ? 28 : 20;
    const uint32_t off0 = mgl_le32(d + o), len0 = mgl_le32(d + o + 64);
    const bool alpha = alpha_depth != 0;
    if (compression != 1 || (blp1 && encoding != 4 && encoding != 5) || (!blp1 && encoding != 1 && encoding != 2))
        return cli_err(err, MGL_E_UNSUPPORTED, "%s: BLP compression %d, encoding %d not read by the engine", path,
                       compression, encoding);
    if (n - head < 1024) return cli_err(err, MGL_E_FORMAT, "%s: BLP palette cut short", path);
    const uint8_t* pal = d + head; /* B, G, R, A */
    GByteArray* data = g_byte_array_new();
    const char* bad = NULL;
    if (blp1 || encoding == 1) { /* palette indices: BLP1 right after the palette, BLP2 at its offset */
        const size_t at = blp1 ? head + 1024 : off0;
        if (at > n || n - at < len0) {
            bad = "BLP image data cut short";
        } else {
            for (size_t i = 0; i < len0; i++) {
                const uint8_t* e = pal + 4 * d[at + i];
                const uint8_t px[4] = {e[2], e[1], e[0], e[3]};
                g_byte_array_append(data, px, alpha ? 4 : 3);
            }
        }
    } else if (alpha_encoding == 0 || alpha_encoding == 1 || alpha_encoding == 7) {
        const int kind = alpha_encoding == 0 ? 1 : alpha_encoding == 1 ? 3 : 7;
        const size_t blocks = (W + 3) / 4, line = blocks * (kind == 1 ? 8 : 16);
        size_t at = off0;
        for (size_t yb = 0; yb < (H + 3) / 4 && !bad; yb++, at += line) {
            if (at > n || n - at < line) {
                bad = "BLP DXT data cut short";
                break;
            }
            GByteArray* rows[4] = {g_byte_array_new(), g_byte_array_new(), g_byte_array_new(), g_byte_array_new()};
            blp_dxt_row(d + at, blocks, kind, alpha, rows);
            for (int j = 0; j < 4; j++) {
                g_byte_array_append(data, rows[j]->data, rows[j]->len);
                g_byte_array_unref(rows[j]);
            }
        }
    } else {
        bad = "BLP alpha encoding not read";
    }
    const size_t pb = alpha ? 4 : 3;
    if (!bad && data->len / pb / W < H) bad = "BLP image data too short for its size";
    if (bad) {
        g_byte_array_unref(data);
        return cli_err(err, MGL_E_FORMAT, "%s: %s", path, bad);
    }
    uint8_t* out = malloc(W * H * 3);
    if (!out) {
        g_byte_array_unref(data);
        return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < W * H; i++) memcpy(out + 3 * i, data->data + pb * i, 3);
    g_byte_array_unref(data);
    *rgb = out, *w = (int)W, *h = (int)H;
    return MGL_OK;
}
