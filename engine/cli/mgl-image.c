/* mgl-image.c: PNG (libpng), JPEG (libjpeg), WebP (libwebp), BMP, GIF, TIFF (mgl-image-tiff.c), ICO, CUR, ICNS, PNM,
 * and TGA, SGI, PCX, DDS, BLP, MSP, IM, SPIDER and XBM (mgl-image-legacy.c), JPEG 2000 (mgl-image-jp2.c) decoding,
 * pixel for pixel as Pillow 9.4's Image.open(f).convert("RGB") (the reference's image path).
 *
 * The rules, kind by kind (Pillow's mode for the file, then its RGB conversion):
 *  PNG   libpng's progressive reader with no transformation (no gamma, no
 *        sBIT, no expansion, no de-interlacing): the raw samples of each row
 *        (or Adam7 pass row) are converted and placed here. Grey 1-bit:
 *        0/255; 2-bit: v*0x55; 4-bit: v*0x11; 16-bit: Pillow's mode I,
 *        min(v, 255). RGB/RGBA/grey+alpha 16-bit: the high byte of each
 *        sample. Alpha and tRNS are dropped without compositing. Palette:
 *        the PLTE entry, and past the PLTE entries Pillow's grey ramp
 *        (i, i, i). CRCs are checked on the chunks before the image data
 *        (Pillow checks those), not on IDAT (Pillow does not); after the last
 *        row only the chunk framing is read, as Pillow's load_end does.
 *  JPEG  libjpeg with Pillow's decoder settings (libjpeg's defaults: ISLOW
 *        IDCT, fancy upsampling, block smoothing, no scaling). 1 and 3
 *        components: libjpeg's own RGB output (its colour-space guess from
 *        JFIF/Adobe markers and component ids). 4 components: libjpeg's CMYK
 *        output (YCCK converted by libjpeg), taken as Adobe-inverted as
 *        Pillow always does ("CMYK;I"), then Pillow's cmyk2rgb:
 *        nk = 255 - k, R = nk - round(c * nk / 255) (MULDIV255), same for G, B.
 *        A file whose data ends before the last row is decoded is refused
 *        (Pillow: "image file is truncated"). EXIF orientation is not applied.
 *  PNM   P1..P6 as Pillow's PpmImagePlugin reads them: header tokens with
 *        comments, maxval 1..65535; maxval 255 (and 65535 for P5) read raw,
 *        other maxvals scaled with round-half-even(v / maxval * 255) (P5/P2
 *        with maxval > 255: Pillow's mode I, scaled to 65535 then min(v, 255));
 *        P4 bit 1 = black; plain formats token by token.
 *  WebP  RIFF/WEBP with a first chunk VP8, VP8L or VP8X (Pillow's test),
 *        decoded by libwebp's animation decoder with its default options as
 *        Pillow's _webp module does (RGBA, fancy upsampling, no threads): the
 *        first frame, alpha dropped. Lossy, lossless, alpha and animated files.
 *  BMP   "BM" files as Pillow's BmpImagePlugin: headers of 12, 40, 64, 108
 *        and 124 bytes; 1/4/8-bit palettes raw or RLE8/RLE4 (its decoder's
 *        quirks included), 16/24/32-bit raw and the bitfield layouts Pillow
 *        knows; its grey-palette rule (such images are read raw as L or 1).
 *        docs/engine.md has the table.
 *  GIF   the first image as Pillow's GifImagePlugin and its LZW decoder
 *        (GifDecode.c) give it: the screen grown to the frame, index 0 or
 *        the transparent index around it, the palette rules of
 *        docs/engine.md.
 *  TIFF  mgl-image-tiff.c: the mode from the first IFD as Pillow's
 *        TiffImagePlugin decides it, the samples from libtiff.
 *  ICO   the entry Pillow's IcoImagePlugin picks (the largest), as a PNG or
 *        as a BMP bitmap without file header and mask; an empty or cut
 *        directory passes the file on, as Pillow's plugin does.
 *  TGA, SGI, PCX  mgl-image-legacy.c; TGA, which has no signature, is tried
 *        last, as Pillow tries it.
 * Anything else is refused with a one-line message naming the file. */
#include "mgl-image-internal.h"

#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <math.h>
#include <sys/stat.h>

#include <stdio.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>


/* ---- PNG ------------------------------------------------------------------------------------ */

/* The progressive reader: rows are delivered as soon as their data is
 * decoded, so "every row arrived" is known even when the file then ends or
 * turns bad. Pillow stops reading once it has the rows (no IEND, no trailing
 * chunks, no last IDAT CRC needed), and so does this decoder. */
typedef struct {
    jmp_buf jb;
    char msg[200];
    bool have_info;
    uint32_t W, H;
    int depth, ctype, ilace;
    uint8_t pal[256][3];
    uint8_t* out; /* W*H*3 */
    uint8_t* tmp; /* one pass row as RGB */
    uint32_t rows_in_pass[7];
    uint64_t rows_done, rows_total;
    size_t stop_pos; /* where Pillow's reading stands when the rows are complete */
} PngCtx;

static bool png_rows_complete(const PngCtx* x) { return x->have_info && x->rows_done == x->rows_total; }

/* Pillow (PngImageFile.load_read) reads the image data in blocks of at most
 * 64 KiB, each within one IDAT chunk. The next end of such a block after
 * `from`, or the end of the file: feeding libpng up to these points tells
 * where Pillow stands when the last row is decoded. */
static size_t png_next_boundary(const uint8_t* d, size_t n, size_t from) {
    size_t p = 8;
    while (p + 8 <= n) {
        uint64_t len = mgl_be32(d + p);
        size_t ds = p + 8;
        uint64_t de = (uint64_t)ds + len;
        if (memcmp(d + p + 4, "IDAT", 4) == 0 && de > from) {
            uint64_t b = from < ds ? ds : from;
            uint64_t k = (b - ds) / 65536 + 1;
            uint64_t e = (uint64_t)ds + k * 65536;
            if (e > de) e = de;
            if (from < ds || e > from) return e > n ? n : (size_t)e;
        }
        if (de + 4 > n || memcmp(d + p + 4, "IEND", 4) == 0) break;
        p = (size_t)de + 4;
    }
    return n;
}

/* Pillow's PngImageFile.load_end once the rows are decoded, from `pos`:
 * CRC, chunk header; stops (fine) at IEND, at a header it cannot read or
 * whose type is not four word characters, and in an animated file at the
 * next frame's fcTL; a chunk whose data runs past the end of the file is
 * "Truncated File Read". CRCs are not checked. */
static bool png_is_cid_char(uint8_t c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Whether Pillow takes the file for an animated PNG (is_animated): the acTL chunks before the image
 * data (a valid one sets the frame count, a second one unsets it) and whether the image data is a
 * default image (no fcTL before it, which then counts as one more frame). */
static bool png_animated(const uint8_t* d, size_t n) {
    uint64_t frames = 0, p = 8;
    bool have = false, fctl = false;
    while (p + 8 <= n) {
        const uint64_t len = mgl_be32(d + p);
        const uint8_t* cid = d + p + 4;
        if (!memcmp(cid, "IDAT", 4) || !memcmp(cid, "fdAT", 4)) break;
        if (!memcmp(cid, "fcTL", 4)) fctl = true;
        if (!memcmp(cid, "acTL", 4) && len >= 8 && p + 16 <= n) {
            const uint64_t k = mgl_be32(d + p + 8);
            if (have)
                have = false;
            else if (k && k <= 0x80000000u)
                have = true, frames = k;
        }
        p += 12 + len;
    }
    return have && frames + (fctl ? 0 : 1) > 1;
}

static bool png_tail_ok(const uint8_t* d, size_t n, size_t pos, bool animated) {
    uint64_t p = pos;
    for (;;) {
        p += 4; /* the CRC */
        if (p + 8 > n) return true;
        uint64_t len = mgl_be32(d + p);
        const uint8_t* cid = d + p + 4;
        p += 8;
        for (int i = 0; i < 4; i++)
            if (!png_is_cid_char(cid[i])) return true;
        if (memcmp(cid, "IEND", 4) == 0) return true;
        if (animated && memcmp(cid, "fcTL", 4) == 0) return true; /* the next frame: load_end stops */
        if (p + len > n) return false;
        p += len;
    }
}

static void png_err_fn(png_structp p, png_const_charp msg) {
    PngCtx* x = png_get_error_ptr(p);
    snprintf(x->msg, sizeof x->msg, "%s", msg);
    longjmp(x->jb, 1);
}

static void png_warn_fn(png_structp p, png_const_charp msg) {
    (void)p;
    (void)msg;
}

/* One row of raw samples (libpng's layout, big-endian 16-bit) to RGB8. */
static void png_row_to_rgb(const uint8_t* in, uint8_t* out, uint32_t w, int depth, int ctype,
                           const uint8_t pal[256][3]) {
    switch (ctype) {
    case PNG_COLOR_TYPE_GRAY:
    case PNG_COLOR_TYPE_PALETTE:
        for (uint32_t x = 0; x < w; x++) {
            unsigned v;
            if (depth == 16)
                v = ((unsigned)in[2 * x] << 8) | in[2 * x + 1];
            else if (depth == 8)
                v = in[x];
            else {
                unsigned per = 8u / (unsigned)depth;
                unsigned shift = 8u - (unsigned)depth * (x % per + 1);
                v = (in[x / per] >> shift) & ((1u << depth) - 1);
            }
            if (ctype == PNG_COLOR_TYPE_PALETTE) {
                memcpy(out + 3 * x, pal[v], 3);
                continue;
            }
            uint8_t g;
            switch (depth) {
            case 1: g = v ? 255 : 0; break;
            case 2: g = (uint8_t)(v * 0x55); break;
            case 4: g = (uint8_t)(v * 0x11); break;
            case 8: g = (uint8_t)v; break;
            default: g = mgl_clip8_u16(v); break; /* mode I, then clip8 */
            }
            out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = g;
        }
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: {
        size_t step = depth == 16 ? 4 : 2; /* the high byte of a 16-bit sample comes first */
        for (uint32_t x = 0; x < w; x++) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = in[x * step];
        break;
    }
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_RGB_ALPHA: {
        size_t ch = ctype == PNG_COLOR_TYPE_RGB ? 3 : 4;
        size_t bps = depth == 16 ? 2 : 1;
        for (uint32_t x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) out[3 * x + c] = in[(x * ch + (size_t)c) * bps];
        break;
    }
    default: break;
    }
}

static void png_info_cb(png_structp png, png_infop info) {
    PngCtx* x = png_get_progressive_ptr(png);
    png_uint_32 W, H;
    png_get_IHDR(png, info, &W, &H, &x->depth, &x->ctype, &x->ilace, NULL, NULL);
    x->W = W;
    x->H = H;
    if (mgl_image_too_many_pixels(W, H))
        png_error(png, "more pixels than Pillow's decompression-bomb limit (178956970)");
    mgl_palette_fill(x->pal, NULL, 0, 0, false); /* Pillow's ramp, then the PLTE entries */
    if (x->ctype == PNG_COLOR_TYPE_PALETTE) {
        png_colorp p = NULL;
        int np = 0;
        if (png_get_PLTE(png, info, &p, &np) && p)
            for (int i = 0; i < np && i < 256; i++) {
                x->pal[i][0] = p[i].red;
                x->pal[i][1] = p[i].green;
                x->pal[i][2] = p[i].blue;
            }
    }
    if (x->ilace != PNG_INTERLACE_NONE) {
        for (int p = 0; p < 7; p++)
            if (PNG_PASS_COLS(W, p) > 0) x->rows_total += PNG_PASS_ROWS(H, p);
    } else {
        x->rows_total = H;
    }
    /* no transformation: the raw samples (and the raw Adam7 passes) */
    png_read_update_info(png, info);
    /* Pillow does not check the CRC of IDAT chunks */
    png_set_crc_action(png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE);
    /* libpng can call this again for a malformed stream: the buffers of the first call go */
    free(x->out);
    free(x->tmp);
    x->out = malloc((size_t)W * H * 3);
    x->tmp = malloc((size_t)W * 3);
    if (!x->out || !x->tmp) png_error(png, "out of memory");
    x->have_info = true;
}

static void png_row_cb(png_structp png, png_bytep row, png_uint_32 row_num, int pass) {
    (void)row_num;
    PngCtx* x = png_get_progressive_ptr(png);
    if (!row || !x->have_info || pass < 0 || pass > 6) return;
    uint32_t k = x->rows_in_pass[pass]++;
    if (x->ilace == PNG_INTERLACE_NONE) {
        if (k < x->H)
            png_row_to_rgb(row, x->out + (size_t)k * x->W * 3, x->W, x->depth, x->ctype, (const uint8_t(*)[3])x->pal);
    } else {
        uint32_t y = PNG_ROW_FROM_PASS_ROW(k, pass);
        uint32_t pw = PNG_PASS_COLS(x->W, pass);
        if (y >= x->H || pw == 0) return;
        png_row_to_rgb(row, x->tmp, pw, x->depth, x->ctype, (const uint8_t(*)[3])x->pal);
        for (uint32_t i = 0; i < pw; i++) {
            uint32_t c = PNG_COL_FROM_PASS_COL(i, pass);
            if (c < x->W) memcpy(x->out + ((size_t)y * x->W + c) * 3, x->tmp + 3 * (size_t)i, 3);
        }
    }
    x->rows_done++;
}

static MglStatus load_png(const char* path, const uint8_t* data, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    PngCtx* x = calloc(1, sizeof *x);
    if (!x) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, x, png_err_fn, png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, NULL, NULL);
        free(x);
        return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    }
    bool failed = false;
    if (setjmp(x->jb)) {
        failed = true;
    } else {
        /* Pillow refuses a bad CRC on any chunk before the image data, ancillary ones too */
        png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
        png_set_benign_errors(png, 1); /* e.g. an iCCP profile libpng dislikes: Pillow ignores it */
        png_set_user_limits(png, MGL_IMAGE_MAX_SIDE, MGL_IMAGE_MAX_SIDE);
        png_set_progressive_read_fn(png, x, png_info_cb, png_row_cb, NULL);
        /* fed in Pillow's reads: image data in blocks of 64 KiB within each IDAT chunk */
        size_t fed = 0;
        while (fed < n && !png_rows_complete(x)) {
            size_t next = png_next_boundary(data, n, fed);
            x->stop_pos = next; /* also when libpng fails inside this block after the last row */
            png_process_data(png, info, (png_bytep)(uintptr_t)(data + fed), next - fed);
            fed = next;
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(x->tmp);
    MglStatus st = MGL_OK;
    if (!png_rows_complete(x)) {
        free(x->out);
        if (failed)
            st = cli_err(err, MGL_E_FORMAT, "%s: invalid PNG: %s", path, x->msg);
        else if (!x->have_info)
            st = cli_err(err, MGL_E_FORMAT, "%s: invalid PNG: no image data", path);
        else
            st = cli_err(err, MGL_E_FORMAT, "%s: invalid PNG: the file is truncated", path);
    } else if (!png_tail_ok(data, n, x->stop_pos, png_animated(data, n))) {
        free(x->out);
        st = cli_err(err, MGL_E_FORMAT, "%s: invalid PNG: a chunk after the image data is truncated", path);
    } else {
        *rgb = x->out;
        *w = (int)x->W;
        *h = (int)x->H;
    }
    free(x);
    return st;
}

/* ---- JPEG ------------------------------------------------------------------------------------ */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    bool hit_eof;
} JErr;

static void jerr_exit(j_common_ptr c) {
    JErr* e = (JErr*)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jb, 1);
}

/* Warnings (corrupt data that libjpeg decodes through) are silent, as in
 * Pillow; running out of data is not a warning for Pillow but a truncated
 * file, so it is recorded. */
static void jerr_emit(j_common_ptr c, int level) {
    JErr* e = (JErr*)c->err;
    if (level < 0) {
        if (c->err->msg_code == JWRN_JPEG_EOF) e->hit_eof = true;
        c->err->num_warnings++;
    }
}

static void jerr_output(j_common_ptr c) { (void)c; }

/* libjpeg-turbo's SIMD upsampling and colour conversion work in whole vectors
 * and read the padding past each row's samples, which libjpeg leaves
 * uninitialised: the pixels do not depend on it, but the reads do. Every
 * sample array is zeroed, padding included, so the decoder reads only
 * defined memory. */
typedef struct {
    JSAMPARRAY (*alloc_sarray)(j_common_ptr, int, JDIMENSION, JDIMENSION);
} JCtx;

static JSAMPARRAY zeroed_sarray(j_common_ptr c, int pool, JDIMENSION width, JDIMENSION rows) {
    JCtx* x = c->client_data;
    JSAMPARRAY a = x->alloc_sarray(c, pool, width, rows);
    size_t stride = width;
    /* rows come from one chunk for any width we accept: the distance between
     * two rows is the allocated (aligned) row size */
    if (rows >= 2 && a[1] > a[0] && (size_t)(a[1] - a[0]) >= width && (size_t)(a[1] - a[0]) <= (size_t)width + 256)
        stride = (size_t)(a[1] - a[0]);
    for (JDIMENSION r = 0; r < rows; r++) memset(a[r], 0, stride * sizeof(JSAMPLE));
    return a;
}

static MglStatus load_jpeg(const char* path, const uint8_t* data, size_t n, uint8_t** rgb, int* w, int* h,
                           MglErr* err) {
    struct jpeg_decompress_struct c;
    JErr je;
    memset(&je, 0, sizeof je);
    uint8_t* volatile buf = NULL;
    uint8_t* volatile row4 = NULL;
    c.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jerr_exit;
    je.pub.emit_message = jerr_emit;
    je.pub.output_message = jerr_output;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&c);
        free(buf);
        free(row4);
        return cli_err(err, MGL_E_FORMAT, "%s: invalid JPEG: %s", path, je.msg);
    }
    jpeg_create_decompress(&c);
    JCtx jx = {.alloc_sarray = c.mem->alloc_sarray};
    c.client_data = &jx;
    c.mem->alloc_sarray = zeroed_sarray;
    jpeg_mem_src(&c, data, (unsigned long)n);
    jpeg_read_header(&c, TRUE);
    if (je.hit_eof) {
        jpeg_destroy_decompress(&c);
        return cli_err(err, MGL_E_FORMAT, "%s: invalid JPEG: the file is truncated", path);
    }
    int nc = c.num_components;
    if (nc != 1 && nc != 3 && nc != 4) {
        jpeg_destroy_decompress(&c);
        return cli_err(err, MGL_E_UNSUPPORTED, "%s: JPEG with %d components (1, 3 or 4 are read)", path, nc);
    }
    if (c.image_width == 0 || c.image_height == 0 || c.image_width > MGL_IMAGE_MAX_SIDE ||
        c.image_height > MGL_IMAGE_MAX_SIDE || mgl_image_too_many_pixels(c.image_width, c.image_height)) {
        jpeg_destroy_decompress(&c);
        return cli_err(err, MGL_E_FORMAT, "%s: JPEG of %ux%u pixels (1..%d a side, at most %llu in all)", path,
                       c.image_width, c.image_height, MGL_IMAGE_MAX_SIDE, MGL_IMAGE_MAX_PIXELS);
    }
    /* Pillow's decoder settings: libjpeg's defaults, set here explicitly */
    c.out_color_space = nc == 4 ? JCS_CMYK : JCS_RGB;
    c.dct_method = JDCT_ISLOW;
    c.do_fancy_upsampling = TRUE;
    c.do_block_smoothing = TRUE;
    c.quantize_colors = FALSE;
    c.scale_num = c.scale_denom = 1;
    c.buffered_image = FALSE;
    c.raw_data_out = FALSE;
    jpeg_start_decompress(&c);
    if (c.output_components != (nc == 4 ? 4 : 3)) {
        jpeg_destroy_decompress(&c);
        return cli_err(err, MGL_E_FORMAT, "%s: invalid JPEG: unexpected output of %d components", path,
                       c.output_components);
    }
    size_t W = c.output_width, H = c.output_height;
    buf = malloc(W * H * 3);
    if (nc == 4) row4 = malloc(W * 4);
    if (!buf || (nc == 4 && !row4)) {
        jpeg_destroy_decompress(&c);
        free(buf);
        free(row4);
        return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    }
    /* Running out of data while rows are still to come is a truncated file
     * for Pillow (its source suspends and no more data comes); running out
     * after the last row (in jpeg_finish_decompress) is not. */
    while (c.output_scanline < c.output_height && !je.hit_eof) {
        size_t y = c.output_scanline;
        JSAMPROW r = nc == 4 ? row4 : buf + W * 3 * y;
        if (jpeg_read_scanlines(&c, &r, 1) != 1) break;
        if (nc == 4) {
            uint8_t* o = buf + W * 3 * y;
            for (size_t x = 0; x < W; x++) {
                const uint8_t* p = row4 + 4 * x;
                /* Pillow reads libjpeg's CMYK as Adobe-inverted ("CMYK;I") */
                mgl_cmyk2rgb(255u - p[0], 255u - p[1], 255u - p[2], 255u - p[3], o + 3 * x);
            }
        }
    }
    bool ok = !je.hit_eof && c.output_scanline == c.output_height;
    if (ok) jpeg_finish_decompress(&c); /* still refuses a corrupt marker before EOI, as Pillow does */
    jpeg_destroy_decompress(&c);
    free(row4);
    if (!ok) {
        free(buf);
        return cli_err(err, MGL_E_FORMAT, "%s: invalid JPEG: the file is truncated", path);
    }
    *w = (int)W;
    *h = (int)H;
    *rgb = buf;
    return MGL_OK;
}

/* ---- PNM (P1..P6), as Pillow's PpmImagePlugin ------------------------------------------------- */

static bool pnm_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* Python's int() of an ASCII token: optional sign, digits, single underscores between digits. */
static bool py_int(const uint8_t* s, size_t n, long long* out) {
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (i >= n || s[i] < '0' || s[i] > '9') return false;
    long long v = 0;
    for (; i < n; i++) {
        if (s[i] == '_') {
            if (i + 1 >= n || s[i + 1] < '0' || s[i + 1] > '9') return false;
            continue;
        }
        if (s[i] < '0' || s[i] > '9') return false;
        if (v < 1000000000000LL) v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

/* _read_token: skips leading whitespace, a '#' skips to the end of the line
 * (also inside a token), at most 10 characters, ended by whitespace (consumed)
 * or the end of the file. */
static bool pnm_token(const uint8_t* d, size_t n, size_t* pos, long long* val) {
    uint8_t tok[12];
    size_t len = 0, i = *pos;
    while (len <= 10) {
        if (i >= n) break;
        uint8_t c = d[i++];
        if (pnm_space(c)) {
            if (!len) continue;
            break;
        }
        if (c == '#') {
            while (i < n) {
                uint8_t e = d[i++];
                if (e == '\r' || e == '\n') break;
            }
            continue;
        }
        tok[len++] = c;
    }
    *pos = i;
    if (len == 0 || len > 10) return false;
    return py_int(tok, len, val);
}

/* Round half to even of v / maxval * out_max, in double, as Python's round(). */
static long long pnm_scale(long long v, long long maxval, double out_max) {
    double r = (double)v / (double)maxval * out_max;
    return (long long)nearbyint(r);
}

#define PNM_BLOCK (1024 * 1024) /* ImageFile.SAFEBLOCK: the plain decoders read in blocks */

typedef struct {
    const uint8_t* d;
    size_t n, pos;
} PnmRd;

/* fd.read(SAFEBLOCK) into b (replacing its contents); empty at the end of the file. */
static void pnm_read_block(PnmRd* r, GByteArray* b) {
    size_t take = r->n - r->pos < PNM_BLOCK ? r->n - r->pos : PNM_BLOCK;
    g_byte_array_set_size(b, 0);
    if (take) g_byte_array_append(b, r->d + r->pos, (guint)take);
    r->pos += take;
}

/* PpmPlainDecoder._find_comment_end: the first CR or LF at or after `from`, or -1. */
static ptrdiff_t pnm_comment_end(const GByteArray* b, size_t from) {
    for (size_t i = from; i < b->len; i++)
        if (b->data[i] == '\n' || b->data[i] == '\r') return (ptrdiff_t)i;
    return -1;
}

/* PpmPlainDecoder._ignore_comments: a comment runs from '#' to the next CR or
 * LF (removed with it), across blocks. */
static void pnm_ignore_comments(PnmRd* r, GByteArray* b, bool* spans) {
    if (*spans) {
        while (b->len) {
            ptrdiff_t e = pnm_comment_end(b, 0);
            if (e >= 0) {
                g_byte_array_remove_range(b, 0, (guint)e + 1);
                break;
            }
            pnm_read_block(r, b);
        }
    }
    *spans = false;
    for (;;) {
        uint8_t* hash = b->len ? memchr(b->data, '#', b->len) : NULL;
        if (!hash) break;
        size_t cs = (size_t)(hash - b->data);
        ptrdiff_t ce = pnm_comment_end(b, cs);
        if (ce >= 0) {
            g_byte_array_remove_range(b, (guint)cs, (guint)(ce - (ptrdiff_t)cs + 1));
        } else {
            g_byte_array_set_size(b, (guint)cs);
            *spans = true;
            break;
        }
    }
}

static void put_sample(uint8_t* out, size_t idx, int bands, uint8_t v) {
    if (bands == 1) {
        out[3 * idx] = out[3 * idx + 1] = out[3 * idx + 2] = v;
    } else {
        out[idx] = v;
    }
}

/* The plain formats P1, P2, P3, literally as PpmPlainDecoder (`bands` values
 * a pixel, `mode_i`: Pillow's mode I for greys with maxval > 255). */
static MglStatus pnm_plain(const char* path, const uint8_t* d, size_t n, size_t pos, bool bitonal, int bands,
                           long long maxval, bool mode_i, size_t npix, uint8_t* out, MglErr* err) {
    PnmRd rd = {d, n, pos};
    size_t total = npix * (size_t)bands;
    size_t got = 0;
    MglStatus st = MGL_OK;
    GByteArray* blk = g_byte_array_new();
    GByteArray* half = g_byte_array_new();
    bool have_half = false, spans = false;
    if (bitonal) {
        while (got != total) {
            pnm_read_block(&rd, blk);
            if (!blk->len) break;
            pnm_ignore_comments(&rd, blk, &spans);
            for (guint i = 0; i < blk->len; i++) {
                uint8_t c = blk->data[i];
                if (!pnm_space(c) && c != '0' && c != '1') {
                    st = cli_err(err, MGL_E_FORMAT, "%s: invalid PBM data: '%c' in the raster", path,
                                 c >= 32 && c < 127 ? c : '?');
                    goto done;
                }
            }
            for (guint i = 0; i < blk->len && got < total; i++) {
                uint8_t c = blk->data[i];
                if (!pnm_space(c)) put_sample(out, got++, 1, c == '0' ? 255 : 0);
            }
        }
    } else {
        double out_max = mode_i ? 65535.0 : 255.0;
        while (got != total) {
            pnm_read_block(&rd, blk);
            const bool at_end = !blk->len;
            if (at_end) {
                if (!have_half) break;
                g_byte_array_append(blk, (const guint8*)" ", 1); /* flush the half token */
            }
            const size_t got_before = got;
            pnm_ignore_comments(&rd, blk, &spans);
            /* the held-back token is prepended to every later block (Pillow never clears it) */
            if (have_half) g_byte_array_prepend(blk, half->data, half->len);
            size_t L = blk->len, end = L;
            if (L && !pnm_space(blk->data[L - 1])) {
                size_t s = L;
                while (s > 0 && !pnm_space(blk->data[s - 1])) s--;
                if (L - s > 10) {
                    st = cli_err(err, MGL_E_FORMAT, "%s: invalid PNM data: a token longer than 10 characters", path);
                    goto done;
                }
                g_byte_array_set_size(half, 0);
                g_byte_array_append(half, blk->data + s, (guint)(L - s));
                have_half = true;
                end = s;
            }
            size_t i = 0;
            while (i < end && got < total) {
                while (i < end && pnm_space(blk->data[i])) i++;
                if (i >= end) break;
                size_t s = i;
                while (i < end && !pnm_space(blk->data[i])) i++;
                long long v;
                if (i - s > 10) {
                    st = cli_err(err, MGL_E_FORMAT, "%s: invalid PNM data: a token longer than 10 characters", path);
                    goto done;
                }
                if (!py_int(blk->data + s, i - s, &v) || v < 0) {
                    st = cli_err(err, MGL_E_FORMAT, "%s: invalid PNM data: a sample that is not a number", path);
                    goto done;
                }
                if (v > maxval) {
                    st = cli_err(err, MGL_E_FORMAT, "%s: invalid PNM data: sample %lld over maxval %lld", path, v,
                                 maxval);
                    goto done;
                }
                long long q = pnm_scale(v, maxval, out_max);
                put_sample(out, got++, bands, mode_i ? mgl_clip8_u16((unsigned)q) : (uint8_t)q);
            }
            /* Past the data, every later round reads nothing, flushes the same held-back token
             * and so adds the same one sample, until the raster is full: fill it at once (a
             * 4444x14144 header over two samples took 62.8M rounds, 22 s under ASan) */
            if (at_end && got == got_before + 1) {
                const uint8_t last = out[bands == 1 ? (got - 1) * 3 : got - 1]; /* as put_sample stored it */
                while (got < total) put_sample(out, got++, bands, last);
            }
        }
    }
    if (got != total)
        st = cli_err(err, MGL_E_FORMAT, "%s: truncated PNM raster (%zu of %zu samples)", path, got, total);
done:
    g_byte_array_free(blk, TRUE);
    g_byte_array_free(half, TRUE);
    return st;
}

static MglStatus load_pnm(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    /* _read_magic: up to 6 characters, ended by whitespace (consumed) */
    size_t i = 0;
    char magic[8];
    size_t ml = 0;
    while (ml < 6 && i < n) {
        uint8_t c = d[i++];
        if (pnm_space(c)) break;
        magic[ml++] = (char)c;
    }
    magic[ml] = 0;
    if (ml != 2 || magic[0] != 'P' || magic[1] < '1' || magic[1] > '6')
        return cli_err(err, MGL_E_FORMAT, "%s: not a PNM image (magic '%s'; P1..P6 are read)", path, magic);
    int kind = magic[1] - '0';
    bool bitonal = kind == 1 || kind == 4;
    bool plain = kind <= 3;
    int bands = (kind == 3 || kind == 6) ? 3 : 1;
    long long v[3] = {0, 0, 0};
    int ntok = bitonal ? 2 : 3;
    for (int k = 0; k < ntok; k++)
        if (!pnm_token(d, n, &i, &v[k])) return cli_err(err, MGL_E_FORMAT, "%s: malformed PNM header", path);
    if (v[0] < 1 || v[1] < 1 || v[0] > MGL_IMAGE_MAX_SIDE || v[1] > MGL_IMAGE_MAX_SIDE ||
        mgl_image_too_many_pixels((uint64_t)v[0], (uint64_t)v[1]))
        return cli_err(err, MGL_E_FORMAT, "%s: PNM of %lldx%lld pixels (1..%d a side, at most %llu in all)", path, v[0],
                       v[1], MGL_IMAGE_MAX_SIDE, MGL_IMAGE_MAX_PIXELS);
    long long maxval = bitonal ? 1 : v[2];
    if (!bitonal && (maxval < 1 || maxval > 65535))
        return cli_err(err, MGL_E_FORMAT, "%s: PNM maxval %lld (1..65535)", path, maxval);
    bool mode_i = bands == 1 && !bitonal && maxval > 255;
    size_t W = (size_t)v[0], H = (size_t)v[1], npix = W * H;
    uint8_t* out = malloc(npix * 3);
    if (!out) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    const uint8_t* r = d + i;
    size_t avail = n - i;
    MglStatus st = MGL_OK;
    if (plain) {
        st = pnm_plain(path, d, n, i, bitonal, bands, maxval, mode_i, npix, out, err);
    } else if (kind == 4) {
        size_t stride = (W + 7) / 8;
        if (avail < stride * H) {
            st = cli_err(err, MGL_E_FORMAT, "%s: truncated PBM raster (%zu of %zu bytes)", path, avail, stride * H);
        } else {
            for (size_t y = 0; y < H; y++)
                for (size_t x = 0; x < W; x++) {
                    uint8_t g = (r[y * stride + x / 8] >> (7 - x % 8)) & 1 ? 0 : 255;
                    out[3 * (y * W + x)] = out[3 * (y * W + x) + 1] = out[3 * (y * W + x) + 2] = g;
                }
        }
    } else {
        size_t bps = maxval < 256 ? 1 : 2;
        size_t need = npix * (size_t)bands * bps;
        if (avail < need) {
            st = cli_err(err, MGL_E_FORMAT, "%s: truncated PNM raster (%zu of %zu bytes)", path, avail, need);
        } else {
            bool raw = maxval == 255 || (maxval == 65535 && bands == 1);
            double out_max = mode_i ? 65535.0 : 255.0;
            for (size_t p = 0; p < npix; p++)
                for (int c = 0; c < 3; c++) {
                    size_t k = p * (size_t)bands + (size_t)(bands == 3 ? c : 0);
                    long long s = bps == 1 ? r[k] : ((long long)r[2 * k] << 8) | r[2 * k + 1];
                    uint8_t b8;
                    if (raw) {
                        b8 = bps == 1 ? (uint8_t)s : mgl_clip8_u16((unsigned)s);
                    } else {
                        long long q = pnm_scale(s, maxval, out_max);
                        if (q > (long long)out_max) q = (long long)out_max; /* min(out_max, ...) */
                        b8 = mode_i ? mgl_clip8_u16((unsigned)q) : (uint8_t)q;
                    }
                    out[p * 3 + (size_t)c] = b8;
                }
        }
    }
    if (st != MGL_OK) {
        free(out);
        return st;
    }
    *rgb = out;
    *w = (int)W;
    *h = (int)H;
    return MGL_OK;
}

/* ---- BMP, as Pillow's BmpImagePlugin ------------------------------------------------------- */

static inline void put_rgb(uint8_t* o, const uint8_t* c) {
    o[0] = c[0];
    o[1] = c[1];
    o[2] = c[2];
}


/* Pillow's raw modes for BMP rows, and the bits each pixel takes in them. */
enum { BR_1, BR_L, BR_P1, BR_P4, BR_P8, BR_BGR15, BR_BGR16, BR_BGR, BR_BGRX, BR_XBGR, BR_RGBA };
static const int k_bmp_raw_bits[] = {1, 8, 1, 4, 8, 16, 16, 24, 32, 32, 32};

/* The RLE8/RLE4 stream from `pos`, literally as Pillow's BmpRleDecoder (its
 * clipping of runs, its delta and end-of-line padding, absolute runs aligned
 * on the file position): up to W*H indices, fewer when the stream ends; *bad
 * where Pillow fails on the stream. */
/* `count` copies of v at out[*len..] (those below total), *len advanced by count. */
static void rle_fill(uint8_t* out, size_t* len, size_t total, uint8_t v, size_t count) {
    if (*len < total) memset(out + *len, v, count < total - *len ? count : total - *len);
    *len += count;
}

static size_t bmp_rle(const uint8_t* d, size_t n, size_t pos, bool rle4, size_t W, size_t H, uint8_t* out, bool* bad) {
    const size_t total = W * H;
    size_t len = 0, x = 0;
    while (len < total) {
        if (pos + 2 > n) break;
        const size_t count = d[pos];
        const uint8_t b = d[pos + 1];
        pos += 2;
        if (count) { /* a run: clipped to the row */
            const size_t k = x + count > W ? (x < W ? W - x : 0) : count;
            if (!rle4) {
                rle_fill(out, &len, total, b, k);
            } else {
                for (size_t i = 0; i < k; i++) rle_fill(out, &len, total, i % 2 == 0 ? b >> 4 : b & 15, 1);
            }
            x += k;
        } else if (b == 0) { /* end of line: zeros up to a whole row */
            rle_fill(out, &len, total, 0, (W - len % W) % W);
            x = 0;
        } else if (b == 1) { /* end of bitmap */
            break;
        } else if (b == 2) {
            /* delta: Pillow reads two bytes, drops them, and takes (right, up) from the next two
             * (fewer than two there: it fails unpacking them) */
            if (pos + 2 > n) break;
            pos += 2;
            if (pos + 2 > n) {
                *bad = true;
                break;
            }
            const size_t right = d[pos], up = d[pos + 1];
            pos += 2;
            rle_fill(out, &len, total, 0, right + up * W);
            x = len % W;
        } else { /* absolute: b pixels (RLE4: b / 2 bytes of two), then word alignment */
            const size_t want = rle4 ? b / 2u : b;
            const size_t got = pos + want <= n ? want : (pos < n ? n - pos : 0);
            for (size_t i = 0; i < got; i++) {
                if (rle4) {
                    rle_fill(out, &len, total, (uint8_t)(d[pos + i] >> 4), 1);
                    rle_fill(out, &len, total, (uint8_t)(d[pos + i] & 15), 1);
                } else {
                    rle_fill(out, &len, total, d[pos + i], 1);
                }
            }
            pos += got;
            if (got < want) break;
            x += b;
            if (pos % 2) pos++;
        }
    }
    return len;
}

/* A BMP's bitmap as Pillow's BmpImageFile._bitmap reads it: the info header at `hpos` (14 in a
 * BMP file; in an ICO, where the DIB has no file header, the entry's offset), the pixel data at
 * `offset` (the file header's; 0: right after the palette). `half`: an ICO entry, whose DIB
 * height counts the AND mask too, so the image is its first half (IcoFile.frame). */
/* An ICO directory entry: Pillow's IcoFile.frame reads the entry's AND mask (at offset + size, back
 * by the mask's length) or, when the directory says 32 bits, its alpha bytes, and fails when they
 * are not all in the file, although convert("RGB") then drops them. */
typedef struct {
    unsigned bpp;
    uint64_t offset, size;
} IcoEntry;

static MglStatus bmp_decode(const char* path, const uint8_t* d, size_t n, size_t hpos, uint64_t offset, bool half,
                            const IcoEntry* ico, uint8_t** rgb, int* w, int* h, MglErr* err) {
    if (n < hpos || n - hpos < 4) return cli_err(err, MGL_E_FORMAT, "%s: truncated BMP header", path);
    const uint32_t hs = mgl_le32(d + hpos);
    if (hs != 12 && hs != 40 && hs != 64 && hs != 108 && hs != 124)
        return cli_err(err, MGL_E_FORMAT, "%s: unsupported BMP header size %u", path, hs);
    if (n - hpos < (size_t)hs) return cli_err(err, MGL_E_FORMAT, "%s: truncated BMP header", path);
    const uint8_t* hd = d + hpos + 4; /* the header after its size field */
    size_t pos = hpos + (size_t)hs;
    uint64_t W, H, colors = 0;
    unsigned bits, comp;
    size_t pad;
    bool topdown = false;
    uint32_t mask[4] = {0, 0, 0, 0};
    if (hs == 12) { /* OS/2 1.x: 16-bit sizes, BGR palette triples */
        W = mgl_le16(hd);
        H = mgl_le16(hd + 2);
        bits = mgl_le16(hd + 6);
        comp = 0;
        pad = 3;
    } else {
        topdown = hd[7] == 0xff; /* Pillow's test: the height's top byte */
        W = mgl_le32(hd);
        H = topdown ? 4294967296ull - mgl_le32(hd + 4) : mgl_le32(hd + 4);
        bits = mgl_le16(hd + 10);
        comp = mgl_le32(hd + 12);
        colors = mgl_le32(hd + 28);
        pad = 4;
        if (comp == 3) {
            if (hs - 4 >= 52) {
                for (int k = 0; k < 4; k++) mask[k] = mgl_le32(hd + 36 + 4 * k);
            } else { /* a 40-byte header: three masks after it */
                if (pos + 12 > n) return cli_err(err, MGL_E_FORMAT, "%s: truncated BMP bitfield masks", path);
                for (int k = 0; k < 3; k++) mask[k] = mgl_le32(d + pos + 4 * (size_t)k);
                pos += 12;
            }
        }
    }
    if (!colors) colors = bits < 64 ? 1ull << bits : 0;
    if (hpos == 14 && offset == 14 + (uint64_t)hs && bits <= 8) offset += 4 * colors;
    if (bits != 1 && bits != 4 && bits != 8 && bits != 16 && bits != 24 && bits != 32)
        return cli_err(err, MGL_E_FORMAT, "%s: unsupported BMP pixel depth (%u)", path, bits);
    int raw = bits == 1    ? BR_P1
              : bits == 4  ? BR_P4
              : bits == 8  ? BR_P8
              : bits == 16 ? BR_BGR15
              : bits == 24 ? BR_BGR
                           : BR_BGRX;
    const bool pal_mode = bits <= 8;
    bool rle = false;
    if (comp == 3) { /* the bitfield layouts Pillow knows */
        static const struct {
            unsigned bits;
            uint32_t m[4];
            int raw;
        } k_layouts[] = {
            {32, {0xff0000, 0xff00, 0xff, 0}, BR_BGRX},
            {32, {0xff000000, 0xff0000, 0xff00, 0}, BR_XBGR},
            {32, {0xff000000, 0xff0000, 0xff00, 0xff}, BR_XBGR},
            {32, {0xff, 0xff00, 0xff0000, 0xff000000}, BR_RGBA},
            {32, {0xff0000, 0xff00, 0xff, 0xff000000}, BR_BGRX},
            {32, {0, 0, 0, 0}, BR_BGRX},
            {24, {0xff0000, 0xff00, 0xff, 0}, BR_BGR},
            {16, {0xf800, 0x7e0, 0x1f, 0}, BR_BGR16},
            {16, {0x7c00, 0x3e0, 0x1f, 0}, BR_BGR15},
        };
        int found = -1;
        for (size_t k = 0; k < sizeof k_layouts / sizeof k_layouts[0] && found < 0; k++) {
            if (k_layouts[k].bits != bits) continue;
            /* 32 bits: all four masks; 24 and 16: the three colour masks */
            bool eq = k_layouts[k].m[0] == mask[0] && k_layouts[k].m[1] == mask[1] && k_layouts[k].m[2] == mask[2];
            if (bits == 32) eq = eq && k_layouts[k].m[3] == mask[3];
            if (eq) found = k_layouts[k].raw;
        }
        if (found < 0) return cli_err(err, MGL_E_FORMAT, "%s: unsupported BMP bitfields layout", path);
        raw = found;
    } else if (comp == 1 || comp == 2) {
        rle = true;
    } else if (comp != 0) {
        return cli_err(err, MGL_E_FORMAT, "%s: unsupported BMP compression (%u)", path, comp);
    }
    /* the palette (1, 4 and 8 bits); Pillow reads the palette as grey when every entry i is
     * (i, i, i) (entries 0 and 255 for two colours): the mode is then L (or 1), read raw */
    uint8_t pal[256][3];
    bool grey = false;
    if (pal_mode) {
        if (colors < 1 || colors > 65536)
            return cli_err(err, MGL_E_FORMAT, "%s: unsupported BMP palette size (%llu)", path,
                           (unsigned long long)colors);
        const size_t want = pad * (size_t)colors, got = pos < n ? (n - pos < want ? n - pos : want) : 0;
        const uint8_t* pb = d + pos;
        grey = true;
        for (size_t i = 0; i < colors; i++) {
            const uint8_t val = colors == 2 ? (uint8_t)(i ? 255 : 0) : (uint8_t)i;
            if (i * pad + 3 > got || pb[i * pad] != val || pb[i * pad + 1] != val || pb[i * pad + 2] != val)
                grey = false;
        }
        /* Pillow's grey test takes each index modulo 256; a colour palette of more than 256 entries
         * read from the file fails in putpalette (a short read can leave fewer) */
        if (!grey && got / pad > 256)
            return cli_err(err, MGL_E_FORMAT, "%s: BMP palette of %zu colours (Pillow reads at most 256)", path,
                           got / pad);
        mgl_palette_fill(pal, pb, got / pad, pad, true);
        pos += got;
        if (grey) raw = colors == 2 ? BR_1 : BR_L;
    }
    if (!offset) offset = pos; /* no offset in the file header: the data follow */
    if (W < 1 || H < 1)
        return cli_err(err, MGL_E_FORMAT, "%s: empty BMP (%llux%llu)", path, (unsigned long long)W,
                       (unsigned long long)H);
    if (W > MGL_IMAGE_MAX_SIDE || H > MGL_IMAGE_MAX_SIDE || mgl_image_too_many_pixels(W, H))
        return cli_err(err, MGL_E_FORMAT, "%s: %llux%llu pixels (at most %d a side, %llu in all)", path,
                       (unsigned long long)W, (unsigned long long)H, MGL_IMAGE_MAX_SIDE, MGL_IMAGE_MAX_PIXELS);
    if (half) {
        H /= 2;
        if (H < 1) return cli_err(err, MGL_E_FORMAT, "%s: ICO/CUR bitmap of height 1 (no image above its mask)", path);
    }
    if (rle && (!pal_mode || raw == BR_1)) /* Pillow decodes RLE data as P or L only */
        return cli_err(err, MGL_E_FORMAT, "%s: BMP RLE data in a %u-bit%s image", path, bits,
                       raw == BR_1 ? " two-colour" : "");
    /* raw rows: the sizes are checked before anything is allocated */
    const uint64_t stride = ((W * bits + 31) >> 3) & ~3ull;
    const uint64_t rowbytes = ((uint64_t)k_bmp_raw_bits[raw] * W + 7) / 8;
    if (!rle && rowbytes > stride) /* Pillow's raw decoder refuses a row longer than the stride */
        return cli_err(err, MGL_E_FORMAT,
                       "%s: BMP %u-bit rows read as 8-bit grey (a grey palette Pillow cannot decode)", path, bits);
    const uint64_t need = offset + (H - 1) * stride + rowbytes;
    if (!rle && need > n)
        return cli_err(err, MGL_E_FORMAT, "%s: truncated BMP pixel data (%zu of %llu bytes)", path, n,
                       (unsigned long long)need);
    if (ico && ico->bpp == 32 && (offset > n || (n - offset) / 4 < W * H))
        return cli_err(err, MGL_E_FORMAT, "%s: ICO 32-bit entry's alpha bytes cut short", path);
    if (ico && ico->bpp != 32) { /* the mask: 1-bit rows padded to 32 pixels, bottom up */
        const uint64_t mstride = (W + 31) / 32 * 4, total = mstride * H, mneed = (H - 1) * mstride + (W + 7) / 8;
        if (ico->offset + ico->size < total)
            return cli_err(err, MGL_E_FORMAT, "%s: ICO entry's AND mask before the start of the file", path);
        const uint64_t mo = ico->offset + ico->size - total, avail = mo >= n ? 0 : n - mo < total ? n - mo : total;
        if (avail < mneed) return cli_err(err, MGL_E_FORMAT, "%s: ICO entry's AND mask cut short", path);
    }
    uint8_t* out = malloc((size_t)W * (size_t)H * 3);
    if (!out)
        return cli_err(err, MGL_E_NOMEM, "%s: out of memory for %llux%llu pixels", path, (unsigned long long)W,
                       (unsigned long long)H);
    if (rle) {
        uint8_t* idx = malloc((size_t)W * (size_t)H);
        if (!idx) {
            free(out);
            return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
        }
        bool bad = false;
        const size_t got = offset < n ? bmp_rle(d, n, (size_t)offset, comp == 2, (size_t)W, (size_t)H, idx, &bad) : 0;
        if (bad) {
            free(idx);
            free(out);
            return cli_err(err, MGL_E_FORMAT, "%s: BMP RLE delta cut short", path);
        }
        if (got < (size_t)W * (size_t)H) {
            free(idx);
            free(out);
            return cli_err(err, MGL_E_FORMAT, "%s: BMP RLE data end after %zu of %llu pixels", path, got,
                           (unsigned long long)(W * H));
        }
        for (size_t r = 0; r < H; r++) {
            const size_t y = topdown ? r : (size_t)H - 1 - r;
            for (size_t x = 0; x < W; x++) put_rgb(out + (y * (size_t)W + x) * 3, pal[idx[r * (size_t)W + x]]);
        }
        free(idx);
    } else {
        for (size_t r = 0; r < H; r++) {
            const uint8_t* row = d + offset + r * stride;
            const size_t y = topdown ? r : (size_t)H - 1 - r;
            uint8_t* o = out + y * (size_t)W * 3;
            for (size_t x = 0; x < W; x++, o += 3) {
                unsigned v;
                switch (raw) {
                case BR_1:
                    v = (row[x >> 3] >> (7 - (x & 7))) & 1u ? 255 : 0;
                    o[0] = o[1] = o[2] = (uint8_t)v;
                    break;
                case BR_L: o[0] = o[1] = o[2] = row[x]; break;
                case BR_P1: put_rgb(o, pal[(row[x >> 3] >> (7 - (x & 7))) & 1u]); break;
                case BR_P4: put_rgb(o, pal[(row[x >> 1] >> (x & 1 ? 0 : 4)) & 15u]); break;
                case BR_P8: put_rgb(o, pal[row[x]]); break;
                case BR_BGR15:
                case BR_BGR16: {
                    const bool g6 = raw == BR_BGR16;
                    v = mgl_le16(row + 2 * x);
                    o[2] = (uint8_t)((v & 31u) * 255u / 31u);
                    o[1] = (uint8_t)(g6 ? ((v >> 5) & 63u) * 255u / 63u : ((v >> 5) & 31u) * 255u / 31u);
                    o[0] = (uint8_t)((g6 ? (v >> 11) & 31u : (v >> 10) & 31u) * 255u / 31u);
                    break;
                }
                case BR_BGR:
                    o[0] = row[3 * x + 2];
                    o[1] = row[3 * x + 1];
                    o[2] = row[3 * x];
                    break;
                case BR_BGRX:
                    o[0] = row[4 * x + 2];
                    o[1] = row[4 * x + 1];
                    o[2] = row[4 * x];
                    break;
                case BR_XBGR:
                    o[0] = row[4 * x + 3];
                    o[1] = row[4 * x + 2];
                    o[2] = row[4 * x + 1];
                    break;
                default: /* BR_RGBA */
                    o[0] = row[4 * x];
                    o[1] = row[4 * x + 1];
                    o[2] = row[4 * x + 2];
                    break;
                }
            }
        }
    }
    *rgb = out;
    *w = (int)W;
    *h = (int)H;
    return MGL_OK;
}

/* ---- GIF, as Pillow's GifImagePlugin (the first frame) --------------------------------------- */

/* Pillow's GifImageFile.data(): one sub-block; NULL for the terminator (or the end of the file). */
static const uint8_t* gif_sub(const uint8_t* d, size_t n, size_t* pos, size_t* len) {
    if (*pos >= n || d[*pos] == 0) {
        if (*pos < n) (*pos)++;
        *len = 0;
        return NULL;
    }
    const size_t want = d[(*pos)++];
    const uint8_t* b = d + *pos;
    *len = *pos + want <= n ? want : n - *pos;
    *pos += *len;
    return b;
}

/* A palette that is the grey ramp (entry i is (i, i, i)) is no palette to Pillow. */
static bool gif_ramp(const uint8_t* p, size_t len) {
    for (size_t i = 0; i + 2 < len; i += 3)
        if (p[i] != i / 3 || p[i + 1] != i / 3 || p[i + 2] != i / 3) return false;
    return true;
}

enum { GIF_OK = 0, GIF_MORE = 1, GIF_BROKEN = 2 };

/* Pillow's LZW decoder (libImaging/GifDecode.c) over the bytes from `pos` to the end of the
 * file, into the w x h frame at (x0, y0) of the W-wide RGB image (each index through lut): the same table, code sizes,
 * deferred clear, string buffer, interlace passes and end condition (the frame's last row
 * filled). An end code stops it until more data come: Pillow's loader reads on in 64 KiB
 * blocks, and at the end of the file calls the image truncated. */
static int gif_lzw(const uint8_t* d, size_t n, size_t pos, int bits, bool interlaced, const uint8_t (*lut)[3],
                   uint8_t* out, size_t W, size_t x0, size_t y0, size_t w, size_t h) {
    enum { TABLE = 4096, BUF = 4096 };
    if (bits < 0 || bits > 12) return GIF_BROKEN;
    uint8_t data[TABLE], buffer[BUF + 1]; /* BUF as Pillow's, and a slot for the string's first byte */
    uint16_t link[TABLE];
    const int clear = 1 << bits, end = clear + 1;
    int interlace = interlaced ? 1 : 0, step = interlaced ? 8 : 1;
    int next = 0, codesize = 0, codemask = 0, lastcode = 0, state = 1, bitcount = 0, blocksize = 0;
    uint8_t lastdata = 0;
    uint32_t bitbuffer = 0;
    size_t x = 0, y = 0;
    const size_t start = pos;
    size_t fed = 65536; /* bytes of the file the loader has read so far (from the frame's data) */
    for (;;) {
        if (state == 1) {
            next = clear + 2;
            codesize = bits + 1;
            codemask = (1 << codesize) - 1;
            state = 2;
        }
        while (bitcount < codesize) {
            if (blocksize > 0) {
                if (pos >= n) return GIF_MORE;
                bitbuffer |= (uint32_t)d[pos++] << bitcount;
                bitcount += 8;
                blocksize--;
            } else { /* a new sub-block, only once all of it is there (the loader reads on for it) */
                if (pos >= n || pos + d[pos] + 1 > n) return GIF_MORE;
                while (start + fed < pos + d[pos] + 1) fed += 65536;
                blocksize = d[pos++];
            }
        }
        int c = (int)(bitbuffer & (uint32_t)codemask);
        bitbuffer >>= codesize;
        bitcount -= codesize;
        if (c == clear) {
            if (state != 2) state = 1;
            continue;
        }
        if (c == end) {
            /* the decoder returns; the loader reads the next 64 KiB of the file, if any, and the
             * decoder goes on from here */
            if (start + fed >= n) return GIF_MORE;
            fed += 65536;
            continue;
        }
        const uint8_t* p;
        int len, bi = BUF + 1;
        if (state == 2) { /* the first code after a clear: a literal */
            if (c > clear) return GIF_BROKEN;
            lastdata = (uint8_t)c;
            lastcode = c;
            state = 3;
            p = &lastdata;
            len = 1;
        } else {
            const int thiscode = c;
            if (c > next) return GIF_BROKEN;
            if (c == next) {
                if (bi <= 1) return GIF_BROKEN;
                buffer[--bi] = lastdata;
                c = lastcode;
            }
            while (c >= clear) {
                if (bi <= 1 || c >= TABLE) return GIF_BROKEN;
                buffer[--bi] = data[c];
                c = link[c];
            }
            lastdata = (uint8_t)c;
            if (next < TABLE) {
                data[next] = (uint8_t)c;
                link[next] = (uint16_t)lastcode;
                if (next == codemask && codesize < 12) {
                    codesize++;
                    codemask = (1 << codesize) - 1;
                }
                next++;
            }
            lastcode = thiscode;
            buffer[--bi] = (uint8_t)c; /* Pillow writes this byte first, then the buffer */
            p = buffer + bi;
            len = BUF + 1 - bi;
        }
        if (y >= h) return GIF_BROKEN; /* overrun */
        for (int k = 0; k < len; k++) {
            put_rgb(out + ((y0 + y) * W + x0 + x) * 3, lut[p[k]]);
            if (++x >= w) { /* next row, or the next interlace pass */
                x = 0;
                y += (size_t)step;
                while (y >= h) {
                    if (interlace == 1) {
                        y = 4;
                        interlace = 2;
                    } else if (interlace == 2) {
                        step = 4;
                        y = 2;
                        interlace = 3;
                    } else if (interlace == 3) {
                        step = 2;
                        y = 1;
                        interlace = 0;
                    } else {
                        return GIF_OK;
                    }
                }
            }
        }
    }
}

static MglStatus load_gif(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    if (n < 13) return cli_err(err, MGL_E_FORMAT, "%s: truncated GIF header", path);
    size_t W = mgl_le16(d + 6), H = mgl_le16(d + 8), pos = 13;
    const uint8_t* gpal = NULL; /* the global palette, unless it is the grey ramp */
    size_t gpal_len = 0;
    if (d[10] & 128) {
        const size_t want = (size_t)3 << ((d[10] & 7) + 1);
        gpal_len = pos + want <= n ? want : n - pos;
        gpal = d + pos;
        pos += gpal_len;
        if (gif_ramp(gpal, gpal_len)) gpal = NULL;
    }
    /* the blocks before the first image, as Pillow's _seek(0) walks them */
    int transparency = -1;
    bool found = false, interlaced = false;
    size_t fx = 0, fy = 0, fw = 0, fh = 0;
    const uint8_t* lpal = NULL;
    bool lpal_flag = false, lpal_ramp = false;
    size_t lpal_len = 0;
    int bits = 0;
    if (pos >= n || d[pos] == ';') return cli_err(err, MGL_E_FORMAT, "%s: GIF without an image", path);
    while (!found) {
        if (pos >= n || d[pos] == ';') break;
        const uint8_t tag = d[pos++];
        if (tag == '!') {
            if (pos >= n) return cli_err(err, MGL_E_FORMAT, "%s: truncated GIF extension", path);
            const uint8_t label = d[pos++];
            size_t bl = 0;
            const uint8_t* block = gif_sub(d, n, &pos, &bl);
            if (label == 249) { /* graphic control: the transparent index */
                if (!block || bl < 3 || ((block[0] & 1) && bl < 4))
                    return cli_err(err, MGL_E_FORMAT, "%s: GIF graphic control extension too short", path);
                if (block[0] & 1) transparency = block[3];
            } else if (label == 254) { /* comment: its blocks, and nothing after them */
                while (block) block = gif_sub(d, n, &pos, &bl);
                continue;
            } else if (label == 255) { /* application */
                if (!block) return cli_err(err, MGL_E_FORMAT, "%s: empty GIF application extension", path);
                if (bl >= 11 && memcmp(block, "NETSCAPE2.0", 11) == 0 && !gif_sub(d, n, &pos, &bl))
                    return cli_err(err, MGL_E_FORMAT, "%s: GIF NETSCAPE2.0 extension without its data", path);
            }
            while (gif_sub(d, n, &pos, &bl)) {
            }
        } else if (tag == ',') {
            if (pos + 9 > n) return cli_err(err, MGL_E_FORMAT, "%s: truncated GIF image descriptor", path);
            fx = mgl_le16(d + pos);
            fy = mgl_le16(d + pos + 2);
            fw = mgl_le16(d + pos + 4);
            fh = mgl_le16(d + pos + 6);
            const uint8_t flags = d[pos + 8];
            pos += 9;
            interlaced = (flags & 64) != 0;
            if (flags & 128) {
                const size_t want = (size_t)3 << ((flags & 7) + 1);
                lpal_len = pos + want <= n ? want : n - pos;
                lpal = d + pos;
                lpal_flag = true;
                lpal_ramp = gif_ramp(lpal, lpal_len);
                pos += lpal_len;
            }
            if (pos >= n) return cli_err(err, MGL_E_FORMAT, "%s: truncated GIF image data", path);
            bits = d[pos++];
            found = true;
        }
        /* any other byte is skipped, as Pillow skips it */
    }
    if (!found) return cli_err(err, MGL_E_FORMAT, "%s: GIF without an image", path);
    /* the canvas grows to hold the frame */
    if (fx + fw > W) W = fx + fw;
    if (fy + fh > H) H = fy + fh;
    if (fx == 0 && fw == 0) { /* Pillow's tile rule: an extent from x 0 to x 0 is the whole image */
        fy = 0;
        fw = W;
        fh = H;
    }
    if (fw < 1 || fh < 1 || W < 1 || H < 1)
        return cli_err(err, MGL_E_FORMAT, "%s: GIF frame of %zux%zu pixels", path, fw, fh);
    if (W > MGL_IMAGE_MAX_SIDE || H > MGL_IMAGE_MAX_SIDE || mgl_image_too_many_pixels(W, H))
        return cli_err(err, MGL_E_FORMAT, "%s: %zux%zu pixels (at most %d a side, %llu in all)", path, W, H,
                       MGL_IMAGE_MAX_SIDE, MGL_IMAGE_MAX_PIXELS);
    /* the frame's palette: its own, unless it is the grey ramp; else the global one (also under
     * a grey-ramp local palette: Pillow then makes the image L, but loading puts the global
     * palette on it and the conversion uses that); none: the indices as grey */
    const bool own = lpal_flag && !lpal_ramp;
    const uint8_t* pal = own ? lpal : gpal;
    const size_t pal_len = own ? lpal_len : gpal_len;
    uint8_t lut[256][3];
    mgl_palette_fill(lut, pal, pal ? pal_len / 3 : 0, 3, false);
    uint8_t* out = malloc(W * H * 3);
    if (!out) return cli_err(err, MGL_E_NOMEM, "%s: out of memory for %zux%zu pixels", path, W, H);
    /* around the frame: index 0, or the transparent index (one pixel, then doubling copies) */
    memcpy(out, lut[transparency >= 0 ? transparency : 0], 3);
    for (size_t done = 3, total = W * H * 3; done < total;) {
        const size_t k = done < total - done ? done : total - done;
        memcpy(out + done, out, k);
        done += k;
    }
    const int r = gif_lzw(d, n, pos, bits, interlaced, (const uint8_t(*)[3])lut, out, W, fx, fy, fw, fh);
    if (r != GIF_OK) {
        free(out);
        return cli_err(err, MGL_E_FORMAT, "%s: %s", path,
                       r == GIF_MORE ? "GIF image data end before the frame is complete (truncated)"
                                     : "corrupt GIF image data");
    }
    *rgb = out;
    *w = (int)W;
    *h = (int)H;
    return MGL_OK;
}

/* ---- WebP, as Pillow's WebPImagePlugin ----------------------------------------------------- */

/* Pillow's _accept: RIFF, WEBP, and a first chunk of VP8, VP8L or VP8X. */
static bool webp_magic(const uint8_t* d, size_t n) {
    return n >= 16 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0 &&
           (memcmp(d + 12, "VP8 ", 4) == 0 || memcmp(d + 12, "VP8L", 4) == 0 || memcmp(d + 12, "VP8X", 4) == 0);
}

/* libwebp's animation decoder with its default options (RGBA, not premultiplied, no
 * threads), as Pillow's _webp.WebPAnimDecoder: the first frame on the canvas (a still
 * image is that frame; an animation's first frame is drawn on a transparent black
 * canvas), alpha dropped by convert("RGB"). */
static MglStatus load_webp(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    const WebPData src = {d, n};
    /* the canvas size first: the animation decoder allocates two canvases as it starts */
    WebPDemuxer* dmx = WebPDemux(&src);
    if (!dmx) return cli_err(err, MGL_E_FORMAT, "%s: not a WebP image libwebp can read (corrupt or truncated)", path);
    const uint32_t cw = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_WIDTH), ch = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_HEIGHT);
    WebPDemuxDelete(dmx);
    if (cw > MGL_IMAGE_MAX_SIDE || ch > MGL_IMAGE_MAX_SIDE || mgl_image_too_many_pixels(cw, ch))
        return cli_err(err, MGL_E_FORMAT, "%s: %ux%u pixels (at most %d a side, %llu in all)", path, cw, ch,
                       MGL_IMAGE_MAX_SIDE, MGL_IMAGE_MAX_PIXELS);
    WebPAnimDecoder* dec = WebPAnimDecoderNew(&src, NULL);
    if (!dec) return cli_err(err, MGL_E_FORMAT, "%s: not a WebP image libwebp can read (corrupt or truncated)", path);
    WebPAnimInfo info;
    MglStatus st = MGL_OK;
    uint8_t* frame = NULL;
    int ts = 0;
    if (!WebPAnimDecoderGetInfo(dec, &info) || info.canvas_width < 1 || info.canvas_height < 1) {
        st = cli_err(err, MGL_E_FORMAT, "%s: WebP without a canvas size", path);
    } else if (info.canvas_width > MGL_IMAGE_MAX_SIDE || info.canvas_height > MGL_IMAGE_MAX_SIDE) {
        st = cli_err(err, MGL_E_FORMAT, "%s: %ux%u is larger than %d pixels a side", path, info.canvas_width,
                     info.canvas_height, MGL_IMAGE_MAX_SIDE);
    } else if (!WebPAnimDecoderGetNext(dec, &frame, &ts) || !frame) {
        st = cli_err(err, MGL_E_FORMAT, "%s: WebP frame data corrupt or truncated", path);
    }
    if (st == MGL_OK) {
        const size_t np = (size_t)info.canvas_width * info.canvas_height;
        uint8_t* out = malloc(np * 3);
        if (!out) {
            st = cli_err(err, MGL_E_NOMEM, "%s: out of memory for %ux%u pixels", path, info.canvas_width,
                         info.canvas_height);
        } else {
            for (size_t i = 0; i < np; i++) {
                out[3 * i + 0] = frame[4 * i + 0];
                out[3 * i + 1] = frame[4 * i + 1];
                out[3 * i + 2] = frame[4 * i + 2];
            }
            *rgb = out;
            *w = (int)info.canvas_width;
            *h = (int)info.canvas_height;
        }
    }
    WebPAnimDecoderDelete(dec);
    return st;
}

static MglStatus load_bmp(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    if (n < 18) return cli_err(err, MGL_E_FORMAT, "%s: truncated BMP header", path);
    return bmp_decode(path, d, n, 14, mgl_le32(d + 10), false, NULL, rgb, w, h, err);
}

/* ---- ICO, as Pillow's IcoImagePlugin ------------------------------------------------------ */

/* The largest entry (by width x height, then colour depth; among equal ones the last listed),
 * decoded as a PNG or as a DIB without its AND mask; the mask only makes alpha, which
 * convert("RGB") drops. */
static MglStatus load_ico(const char* path, const uint8_t* d, size_t n, bool* not_ico, uint8_t** rgb, int* w, int* h,
                          MglErr* err) {
    /* a directory that is cut short or empty makes Pillow's ICO plugin pass the file on to the
     * formats after it (Targa, for one) */
    *not_ico = true;
    const unsigned count = mgl_le16(d + 4);
    int best = -1;
    uint64_t best_sq = 0, best_depth = 0;
    for (unsigned i = 0; i < count; i++) {
        const size_t e = 6 + 16 * (size_t)i;
        if (e + 16 > n) return cli_err(err, MGL_E_FORMAT, "%s: ICO directory cut short", path);
        const uint64_t ew = d[e] ? d[e] : 256, eh = d[e + 1] ? d[e + 1] : 256;
        const unsigned ncolor = d[e + 2], bpp = mgl_le16(d + e + 6);
        uint64_t depth = bpp;
        if (!depth && ncolor) { /* ceil(log2(colours)) */
            depth = 0;
            while ((1u << depth) < ncolor) depth++;
        }
        if (!depth) depth = 256;
        const uint64_t sq = ew * eh;
        /* Pillow sorts by depth, then (stably) by size, and reverses: equal entries come last first */
        if (best < 0 || sq > best_sq || (sq == best_sq && depth >= best_depth)) {
            best = (int)i;
            best_sq = sq;
            best_depth = depth;
        }
    }
    if (best < 0) return cli_err(err, MGL_E_FORMAT, "%s: ICO without images", path);
    *not_ico = false;
    const uint64_t off = mgl_le32(d + 6 + 16 * (size_t)best + 12);
    if (off >= n) return cli_err(err, MGL_E_FORMAT, "%s: ICO image past the end of the file", path);
    if (n - off >= 8 && memcmp(d + off, "\x89PNG\r\n\x1a\n", 8) == 0)
        return load_png(path, d + off, n - off, rgb, w, h, err);
    const size_t e = 6 + 16 * (size_t)best;
    const IcoEntry entry = {mgl_le16(d + e + 6), off, mgl_le32(d + e + 8)};
    return bmp_decode(path, d, n, (size_t)off, 0, true, &entry, rgb, w, h, err);
}

/* A Mac OS icon as Pillow's IcnsImagePlugin reads it: the table of blocks, the largest size it knows
 * (width, height, scale) among those present, and for that size every block its table lists, in
 * order: a PNG or JPEG 2000 image (ic07...: its RGB), 24-bit RGB run-length coded by channel or raw
 * (it32, il32...), and a mask (alpha, dropped); an image block wins over the RGB one. */
static MglStatus load_icns(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    if (n < 8) return cli_err(err, MGL_E_FORMAT, "%s: ICNS header cut short", path);
    static const struct {
        unsigned w, scale;
        const char* types[3]; /* image, RGB, mask */
    } k_sizes[] = {
        {512, 2, {"ic10", NULL, NULL}},    {512, 1, {"ic09", NULL, NULL}},  {256, 2, {"ic14", NULL, NULL}},
        {256, 1, {"ic08", NULL, NULL}},    {128, 2, {"ic13", NULL, NULL}},  {128, 1, {"ic07", "it32", "t8mk"}},
        {64, 1, {"icp6", NULL, NULL}},     {48, 1, {NULL, "ih32", "h8mk"}}, {32, 2, {"ic12", NULL, NULL}},
        {32, 1, {"icp5", "il32", "l8mk"}}, {16, 2, {"ic11", NULL, NULL}},   {16, 1, {"icp4", "is32", "s8mk"}},
    };
    /* the table: each block's data start and length; a type seen twice keeps its last block */
    struct {
        char type[4];
        size_t start, len;
    } blocks[64];
    int nb = 0;
    const uint64_t filesize = mgl_be32(d + 4);
    uint64_t i = 8;
    while (i < filesize) {
        if (i + 8 > n) return cli_err(err, MGL_E_FORMAT, "%s: ICNS block table cut short", path);
        const uint64_t bs = mgl_be32(d + i + 4);
        if (!bs) return cli_err(err, MGL_E_FORMAT, "%s: ICNS block of size 0", path);
        int k = 0;
        while (k < nb && memcmp(blocks[k].type, d + i, 4)) k++;
        if (k == nb) {
            if (nb == 64) return cli_err(err, MGL_E_FORMAT, "%s: ICNS of over 64 block types", path);
            nb++;
        }
        memcpy(blocks[k].type, d + i, 4);
        blocks[k].start = (size_t)MIN(i + 8, (uint64_t)n);
        blocks[k].len = (size_t)(bs < 8 ? 0 : bs - 8); /* Pillow takes blocksize - 8, negative for 1..7 */
        if (bs < 8) return cli_err(err, MGL_E_FORMAT, "%s: ICNS block shorter than its header", path);
        i += bs;
    }
    int best = -1; /* k_sizes is in Pillow's max() order: the first present is the largest */
    for (size_t s = 0; s < G_N_ELEMENTS(k_sizes) && best < 0; s++)
        for (int t = 0; t < 3 && best < 0; t++)
            for (int k = 0; k < nb && k_sizes[s].types[t]; k++)
                if (!memcmp(blocks[k].type, k_sizes[s].types[t], 4)) best = (int)s;
    if (best < 0) return cli_err(err, MGL_E_FORMAT, "%s: ICNS without an icon Pillow reads", path);
    const size_t side = (size_t)k_sizes[best].w * k_sizes[best].scale, sq = side * side;
    uint8_t* img = NULL; /* the image block's RGB */
    int iw = 0, ih = 0;
    uint8_t* planes = NULL; /* the RGB block's 3 planes */
    MglStatus st = MGL_OK;
    for (int t = 0; t < 3 && st == MGL_OK; t++) {
        int k = -1;
        for (int b = 0; b < nb && k_sizes[best].types[t]; b++)
            if (!memcmp(blocks[b].type, k_sizes[best].types[t], 4)) k = b;
        if (k < 0) continue;
        size_t start = blocks[k].start, len = blocks[k].len;
        if (t == 0) { /* PNG (read on to the end of the file, as Pillow's stream) or JPEG 2000 (its block) */
            if (n - start >= 8 && !memcmp(d + start, "\x89PNG\r\n\x1a\n", 8)) {
                st = load_png(path, d + start, n - start, &img, &iw, &ih, err);
            } else if (n - start >= 4 && (!memcmp(d + start, "\xff\x4f\xff\x51", 4) ||
                                          (n - start >= 12 && !memcmp(d + start, "\0\0\0\x0cjP  \r\n\x87\n", 12)))) {
                bool other = false;
                st = mgl_jp2_load(path, d + start, MIN(len, n - start), &other, &img, &iw, &ih, err);
                if (st != MGL_OK && other) st = cli_err(err, MGL_E_FORMAT, "%s: ICNS JPEG 2000 icon unreadable", path);
            } else {
                st = cli_err(err, MGL_E_FORMAT, "%s: ICNS icon of an unknown kind", path);
            }
        } else if (t == 1) { /* it32 has 4 zero bytes first */
            if (!strcmp(k_sizes[best].types[1], "it32")) {
                if (n - start < 4 || memcmp(d + start, "\0\0\0\0", 4)) {
                    st = cli_err(err, MGL_E_FORMAT, "%s: ICNS it32 block without its zero signature", path);
                    break;
                }
                start += 4, len -= len >= 4 ? 4 : len;
            }
            planes = malloc(3 * sq);
            if (!planes) {
                st = cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
                break;
            }
            if (len == 3 * sq) { /* raw, pixel-interleaved */
                if (n - start < 3 * sq) {
                    st = cli_err(err, MGL_E_FORMAT, "%s: ICNS RGB block cut short", path);
                    break;
                }
                for (size_t p = 0; p < sq; p++)
                    for (int c = 0; c < 3; c++) planes[(size_t)c * sq + p] = d[start + 3 * p + (size_t)c];
                continue;
            }
            size_t pos = start;
            for (int c = 0; c < 3 && st == MGL_OK; c++) { /* each channel run-length coded in turn */
                int64_t left = (int64_t)sq;
                size_t got = 0;
                while (left > 0) {
                    if (pos >= n) break;
                    const unsigned b = d[pos++];
                    if (b & 0x80) {
                        const size_t k2 = b - 125;
                        const bool have = pos < n;
                        const uint8_t v = have ? d[pos++] : 0;
                        if (have)
                            for (size_t q = 0; q < k2 && got < sq; q++) planes[(size_t)c * sq + got++] = v;
                        left -= (int64_t)k2;
                    } else {
                        const size_t k2 = b + 1, avail = MIN(k2, n - pos);
                        for (size_t q = 0; q < avail && got < sq; q++) planes[(size_t)c * sq + got++] = d[pos + q];
                        pos += avail;
                        left -= (int64_t)k2;
                    }
                }
                if (left != 0 || got < sq)
                    st = cli_err(err, MGL_E_FORMAT, "%s: ICNS RGB channel does not decode to its size", path);
            }
        } else if (n - start < sq) { /* the mask: read only to check it is all there */
            st = cli_err(err, MGL_E_FORMAT, "%s: ICNS mask cut short", path);
        }
    }
    if (st == MGL_OK && !img && !planes) st = cli_err(err, MGL_E_FORMAT, "%s: ICNS icon without an image", path);
    if (st != MGL_OK) {
        free(img);
        free(planes);
        return st;
    }
    if (img) { /* the image block wins */
        free(planes);
        *rgb = img, *w = iw, *h = ih;
        return MGL_OK;
    }
    uint8_t* out = malloc(3 * sq);
    if (!out) {
        free(planes);
        return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    }
    for (size_t p = 0; p < sq; p++)
        for (int c = 0; c < 3; c++) out[3 * p + (size_t)c] = planes[(size_t)c * sq + p];
    free(planes);
    *rgb = out, *w = (int)side, *h = (int)side;
    return MGL_OK;
}

/* A cursor as Pillow's CurImagePlugin reads it: the entry whose width and height bytes both
 * exceed those of the best so far (the first entry to begin with), its DIB (with header) at the
 * entry's offset, the upper half of its height. A directory that runs past the end of the file
 * makes the plugin pass the file on (it fails indexing a short entry), as does an offset with no
 * four bytes of header size behind it. */
static MglStatus load_cur(const char* path, const uint8_t* d, size_t n, bool* not_cur, uint8_t** rgb, int* w, int* h,
                          MglErr* err) {
    *not_cur = true;
    const unsigned count = mgl_le16(d + 4);
    size_t m = 0, mlen = 0; /* the chosen entry and the bytes the file has of it */
    for (unsigned i = 0; i < count; i++) {
        const size_t e = 6 + 16 * (size_t)i, len = e < n ? (n - e < 16 ? n - e : 16) : 0;
        if (!mlen) {
            m = e, mlen = len;
            continue;
        }
        if (len < 2 || mlen < 2) return cli_err(err, MGL_E_FORMAT, "%s: CUR directory cut short", path);
        if (d[e] > d[m] && d[e + 1] > d[m + 1]) m = e, mlen = len;
    }
    if (mlen < 16) return cli_err(err, MGL_E_FORMAT, "%s: CUR directory %s", path, mlen ? "cut short" : "empty");
    const uint64_t off = mgl_le32(d + m + 12);
    if (off > n || n - off < 4) return cli_err(err, MGL_E_FORMAT, "%s: CUR bitmap past the end of the file", path);
    *not_cur = false;
    return bmp_decode(path, d, n, (size_t)off, 0, true, NULL, rgb, w, h, err);
}

MglStatus mgl_image_load(const char* path, uint8_t** rgb, int* w, int* h, MglErr* err) {
    *rgb = NULL;
    *w = *h = 0;
    GStatBuf sb;
    if (g_stat(path, &sb) != 0) return cli_err(err, MGL_E_IO, "%s: cannot open: %s", path, g_strerror(errno));
    if (!S_ISREG(sb.st_mode)) return cli_err(err, MGL_E_IO, "%s: not a regular file", path);
    GError* ge = NULL;
    GMappedFile* m = g_mapped_file_new(path, FALSE, &ge);
    if (!m) {
        MglStatus e = cli_err(err, MGL_E_IO, "%s: cannot open: %s", path, ge->message);
        g_error_free(ge);
        return e;
    }
    MglStatus st;
    const uint8_t* d = (const uint8_t*)g_mapped_file_get_contents(m);
    size_t n = g_mapped_file_get_length(m);
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
        st = load_png(path, d, n, rgb, w, h, err);
    else if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        st = load_jpeg(path, d, n, rgb, w, h, err);
    else if (n >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6')
        st = load_pnm(path, d, n, rgb, w, h, err);
    else if (webp_magic(d, n))
        st = load_webp(path, d, n, rgb, w, h, err);
    else if (n >= 2 && d[0] == 'B' && d[1] == 'M')
        st = load_bmp(path, d, n, rgb, w, h, err);
    else if (n >= 6 && (memcmp(d, "GIF87a", 6) == 0 || memcmp(d, "GIF89a", 6) == 0))
        st = load_gif(path, d, n, rgb, w, h, err);
    else if (n >= 4 && (memcmp(d, "II\x2a\x00", 4) == 0 || memcmp(d, "MM\x00\x2a", 4) == 0 ||
                        memcmp(d, "II\x2b\x00", 4) == 0 || memcmp(d, "MM\x00\x2b", 4) == 0))
        st = mgl_tiff_load(path, d, n, rgb, w, h, err);
    else if (n >= 4 &&
             (mgl_le32(d) == 12 || mgl_le32(d) == 40 || mgl_le32(d) == 64 || mgl_le32(d) == 108 || mgl_le32(d) == 124))
        st = bmp_decode(path, d, n, 0, 0, false, NULL, rgb, w, h, err); /* a DIB: a BMP without its file header */
    else if (n >= 4 && !memcmp(d, "icns", 4))
        st = load_icns(path, d, n, rgb, w, h, err);
    else if (n >= 4 && (!memcmp(d, "BLP1", 4) || !memcmp(d, "BLP2", 4)))
        st = mgl_blp_load(path, d, n, rgb, w, h, err);
    else if (n >= 4 && !memcmp(d, "DDS ", 4))
        st = mgl_dds_load(path, d, n, rgb, w, h, err);
    else if (n >= 2 && d[0] == 0x01 && d[1] == 0xda)
        st = mgl_sgi_load(path, d, n, rgb, w, h, err);
    else {
        /* in Pillow's order: JPEG 2000, ICO, CUR, PCX, MSP by their first bytes, IM, SPIDER and Targa by
         * their header checks (they have no signature), XBM */
        bool other = true;
        st = MGL_E_FORMAT;
        if ((n >= 4 && !memcmp(d, "\xff\x4f\xff\x51", 4)) || (n >= 12 && !memcmp(d, "\0\0\0\x0cjP  \r\n\x87\n", 12)))
            st = mgl_jp2_load(path, d, n, &other, rgb, w, h, err);
        if (other && n >= 6 && memcmp(d, "\0\0\1\0", 4) == 0) st = load_ico(path, d, n, &other, rgb, w, h, err);
        if (other && n >= 6 && memcmp(d, "\0\0\2\0", 4) == 0) st = load_cur(path, d, n, &other, rgb, w, h, err);
        if (other && n >= 2 && d[0] == 10 && (d[1] == 0 || d[1] == 2 || d[1] == 3 || d[1] == 5))
            st = mgl_pcx_load(path, d, n, &other, rgb, w, h, err);
        if (other && n >= 4 && (!memcmp(d, "DanM", 4) || !memcmp(d, "LinS", 4)))
            st = mgl_msp_load(path, d, n, &other, rgb, w, h, err);
        if (other) st = mgl_im_load(path, d, n, &other, rgb, w, h, err);
        if (other) st = mgl_spider_load(path, d, n, &other, rgb, w, h, err);
        if (other) st = mgl_tga_load(path, d, n, &other, rgb, w, h, err);
        if (other) { /* XBM: "#define" after leading white space, within the first 16 bytes */
            size_t k = 0;
            while (k < n && k < 16 && g_ascii_isspace(d[k])) k++;
            if (k + 7 <= n && k + 7 <= 16 && !memcmp(d + k, "#define", 7))
                st = mgl_xbm_load(path, d, n, &other, rgb, w, h, err);
        }
        if (other)
            st = cli_err(
                err, MGL_E_FORMAT,
                "%s: not a PNG, JPEG, JPEG 2000, WebP, BMP, GIF, TIFF, ICO, CUR, ICNS, PNM (PPM/PGM/PBM), SGI, PCX, "
                "TGA, MSP, IM, SPIDER, XBM, DDS or BLP image",
                path);
    }
    g_mapped_file_unref(m);
    return st;
}
