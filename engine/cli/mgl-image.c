/* mgl-image.c: PNG (libpng), JPEG (libjpeg) and binary PPM/PGM decoding. */
#include "mgl-image.h"
#include "mgl-cli.h"

#include <errno.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sys/stat.h>

#include <stdio.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIDE 16384

static MglStatus load_png(const char* path, const uint8_t* data, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&im, data, n))
        return cli_err(err, MGL_E_FORMAT, "%s: invalid PNG: %s", path, im.message);
    if (im.width == 0 || im.height == 0 || im.width > MAX_SIDE || im.height > MAX_SIDE) {
        png_image_free(&im);
        return cli_err(err, MGL_E_FORMAT, "%s: PNG of %ux%u pixels (1..%d a side)", path, im.width, im.height, MAX_SIDE);
    }
    im.format = PNG_FORMAT_RGB;
    uint8_t* buf = malloc(PNG_IMAGE_SIZE(im));
    if (!buf) {
        png_image_free(&im);
        return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    }
    /* PNG_FORMAT_RGB without a background drops alpha, as PIL convert("RGB") does */
    if (!png_image_finish_read(&im, NULL, buf, 0, NULL)) {
        free(buf);
        MglStatus s = cli_err(err, MGL_E_FORMAT, "%s: cannot decode PNG: %s", path, im.message);
        png_image_free(&im);
        return s;
    }
    *rgb = buf;
    *w = (int)im.width;
    *h = (int)im.height;
    return MGL_OK;
}

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
} JErr;

static void jerr_exit(j_common_ptr c) {
    JErr* e = (JErr*)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jb, 1);
}

static MglStatus load_jpeg(const char* path, const uint8_t* data, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    struct jpeg_decompress_struct c;
    JErr je;
    uint8_t* volatile buf = NULL;
    c.err = jpeg_std_error(&je.pub);
    je.pub.error_exit = jerr_exit;
    if (setjmp(je.jb)) {
        jpeg_destroy_decompress(&c);
        free(buf);
        return cli_err(err, MGL_E_FORMAT, "%s: invalid JPEG: %s", path, je.msg);
    }
    jpeg_create_decompress(&c);
    jpeg_mem_src(&c, data, (unsigned long)n);
    jpeg_read_header(&c, TRUE);
    c.out_color_space = JCS_RGB;
    if (c.image_width == 0 || c.image_height == 0 || c.image_width > MAX_SIDE || c.image_height > MAX_SIDE) {
        jpeg_destroy_decompress(&c);
        return cli_err(err, MGL_E_FORMAT, "%s: JPEG of %ux%u pixels (1..%d a side)", path, c.image_width,
                       c.image_height, MAX_SIDE);
    }
    jpeg_start_decompress(&c);
    size_t row = (size_t)c.output_width * 3;
    buf = malloc(row * c.output_height);
    while (c.output_scanline < c.output_height) {
        JSAMPROW r = buf + row * c.output_scanline;
        jpeg_read_scanlines(&c, &r, 1);
    }
    jpeg_finish_decompress(&c);
    *w = (int)c.output_width;
    *h = (int)c.output_height;
    jpeg_destroy_decompress(&c);
    *rgb = buf;
    return MGL_OK;
}

/* Binary P6 (RGB) and P5 (grey), maxval <= 255. */
static MglStatus load_pnm(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    size_t i = 2;
    long v[3];
    for (int k = 0; k < 3; k++) {
        for (;;) {
            while (i < n && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r')) i++;
            if (i < n && d[i] == '#') {
                while (i < n && d[i] != '\n') i++;
                continue;
            }
            break;
        }
        if (i >= n || d[i] < '0' || d[i] > '9') return cli_err(err, MGL_E_FORMAT, "%s: malformed PPM header", path);
        long x = 0;
        while (i < n && d[i] >= '0' && d[i] <= '9' && x < 1000000) x = x * 10 + (d[i++] - '0');
        v[k] = x;
    }
    if (i >= n) return cli_err(err, MGL_E_FORMAT, "%s: truncated PPM", path);
    i++; /* one whitespace byte before the raster */
    if (v[0] < 1 || v[1] < 1 || v[0] > MAX_SIDE || v[1] > MAX_SIDE)
        return cli_err(err, MGL_E_FORMAT, "%s: PPM of %ldx%ld pixels (1..%d a side)", path, v[0], v[1], MAX_SIDE);
    if (v[2] < 1 || v[2] > 255) return cli_err(err, MGL_E_UNSUPPORTED, "%s: PPM maxval %ld (only 8-bit)", path, v[2]);
    int ch = d[1] == '6' ? 3 : 1;
    size_t need = (size_t)v[0] * (size_t)v[1] * (size_t)ch;
    if (n - i < need) return cli_err(err, MGL_E_FORMAT, "%s: truncated PPM raster (%zu of %zu bytes)", path, n - i, need);
    uint8_t* buf = malloc((size_t)v[0] * (size_t)v[1] * 3);
    for (size_t p = 0; p < (size_t)v[0] * (size_t)v[1]; p++)
        for (int c = 0; c < 3; c++) {
            unsigned s = d[i + p * ch + (ch == 3 ? c : 0)];
            buf[p * 3 + c] = (uint8_t)(v[2] == 255 ? s : (s * 255 + v[2] / 2) / v[2]);
        }
    *rgb = buf;
    *w = (int)v[0];
    *h = (int)v[1];
    return MGL_OK;
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
    if (n >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0) st = load_png(path, d, n, rgb, w, h, err);
    else if (n >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) st = load_jpeg(path, d, n, rgb, w, h, err);
    else if (n >= 2 && d[0] == 'P' && (d[1] == '6' || d[1] == '5')) st = load_pnm(path, d, n, rgb, w, h, err);
    else st = cli_err(err, MGL_E_FORMAT, "%s: not a PNG, JPEG or binary PPM image", path);
    g_mapped_file_unref(m);
    return st;
}
