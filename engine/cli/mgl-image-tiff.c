/* mgl-image-tiff.c: TIFF files as Pillow 9.4's TiffImagePlugin reads them, then convert("RGB").
 *
 * Pillow decides the image's mode from the first IFD's tags (byte order, photometric
 * interpretation, sample format, fill order, bits per sample, extra samples: its OPEN_INFO
 * table) and decodes the samples with libtiff (every compression but none, which it reads
 * itself with the same result). Here the IFD is read by hand to take the same decision, and
 * libtiff decodes the strips or tiles. Then the samples are unpacked as Pillow's raw mode says
 * and converted as Image.convert("RGB") converts that mode, and the image is turned as the
 * Orientation tag says (Pillow's TIFF loader applies it, unlike its JPEG loader). The kinds
 * read, and those refused, are in docs/engine.md. */
#include "mgl-image-internal.h"

#include <glib.h>
#include <lcms2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

/* ---- the first IFD, read as Pillow reads it --------------------------------------------- */

enum { TIFF_MAX_VALUES = 8 }; /* Pillow's MAX_SAMPLESPERPIXEL is 6 */

typedef struct {
    uint64_t v[TIFF_MAX_VALUES];
    int n; /* values read (at most TIFF_MAX_VALUES); -1: the tag is absent */
    uint64_t count;
} TiffTag;

typedef struct {
    bool be, big;
    TiffTag width, length, bps, compression, photometric, fillorder, orientation, spp, planar, extra, sformat, strips,
        tiles;
    uint64_t colormap_off, colormap_count; /* SHORTs */
} TiffIfd;

/* The tags read, and where they go */
static const struct {
    unsigned tag;
    size_t field;
} k_tags[] = {
    {256, offsetof(TiffIfd, width)},       {257, offsetof(TiffIfd, length)},      {258, offsetof(TiffIfd, bps)},
    {259, offsetof(TiffIfd, compression)}, {262, offsetof(TiffIfd, photometric)}, {266, offsetof(TiffIfd, fillorder)},
    {273, offsetof(TiffIfd, strips)},      {274, offsetof(TiffIfd, orientation)}, {277, offsetof(TiffIfd, spp)},
    {284, offsetof(TiffIfd, planar)},      {324, offsetof(TiffIfd, tiles)},       {338, offsetof(TiffIfd, extra)},
    {339, offsetof(TiffIfd, sformat)}};

static TiffTag* tag_field(TiffIfd* f, size_t i) { return (TiffTag*)((char*)f + k_tags[i].field); }

static uint64_t rd(const uint8_t* p, int bytes, bool be) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[be ? bytes - 1 - i : i] << (8 * i);
    return v;
}

static int type_size(int type) {
    switch (type) {
    case 1:
    case 2:
    case 6:
    case 7: return 1; /* BYTE ASCII SBYTE UNDEFINED */
    case 3:
    case 8: return 2; /* SHORT SSHORT */
    case 4:
    case 9:
    case 11:
    case 13: return 4; /* LONG SLONG FLOAT IFD */
    case 5:
    case 10:
    case 12:
    case 16:
    case 17:
    case 18: return 8;
    default: return 0;
    }
}

static bool read_ifd(const uint8_t* d, size_t n, TiffIfd* f) {
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < G_N_ELEMENTS(k_tags); i++) tag_field(f, i)->n = -1;
    if (n < 8) return false;
    f->be = d[0] == 'M';
    /* Pillow 9.4 takes a file for BigTIFF when its third byte is 43: a big-endian BigTIFF
     * ("MM\0+") is read as a classic TIFF, and fails */
    f->big = d[2] == 43;
    uint64_t off;
    if (f->big) {
        if (n < 16 || rd(d + 4, 2, f->be) != 8) return false;
        off = rd(d + 8, 8, f->be);
    } else {
        off = rd(d + 4, 4, f->be);
    }
    const int cnt_bytes = f->big ? 8 : 2, ent = f->big ? 20 : 12, val_bytes = f->big ? 8 : 4;
    if (off > n || n - off < (uint64_t)cnt_bytes) return false;
    uint64_t count = rd(d + off, cnt_bytes, f->be);
    const uint64_t first = off + (uint64_t)cnt_bytes;
    /* Pillow reads the entries one by one and stops (keeping what it has) at the first that
     * is cut short, or whose data past the entry is */
    count = MIN(count, (n - first) / (uint64_t)ent);
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t* e = d + first + i * (uint64_t)ent;
        unsigned tag = (unsigned)rd(e, 2, f->be);
        int type = (int)rd(e + 2, 2, f->be);
        uint64_t c = rd(e + 4, f->big ? 8 : 4, f->be);
        int ts = type_size(type);
        if (!ts) continue;
        const uint8_t* vp = e + (f->big ? 12 : 8);
        if (c > ((uint64_t)1 << 40)) break;
        uint64_t bytes = c * (uint64_t)ts;
        if (bytes > (uint64_t)val_bytes) {
            uint64_t o = rd(vp, val_bytes, f->be);
            if (o > n || n - o < bytes) break;
            vp = d + o;
        }
        if (tag == 320) {
            if (type == 3) {
                f->colormap_off = (uint64_t)(vp - d);
                f->colormap_count = c;
            }
            continue;
        }
        TiffTag* t = NULL; /* a tag seen again replaces the earlier value, as in Pillow's dict */
        for (size_t k = 0; k < G_N_ELEMENTS(k_tags) && !t; k++)
            if (k_tags[k].tag == tag) t = tag_field(f, k);
        if (!t) continue;
        if (type != 1 && type != 3 && type != 4 && type != 16 && type != 8 && type != 9) continue;
        t->count = c;
        t->n = 0;
        for (uint64_t k = 0; k < c && k < TIFF_MAX_VALUES; k++) {
            uint64_t v = rd(vp + k * (uint64_t)ts, ts, f->be);
            if (type == 8) v = (uint64_t)(int64_t)(int16_t)v;
            if (type == 9) v = (uint64_t)(int64_t)(int32_t)v;
            t->v[t->n++] = v;
        }
    }
    return true;
}

static uint64_t tag1(const TiffTag* t, uint64_t def) { return t->n > 0 ? t->v[0] : def; }

/* ---- Pillow's OPEN_INFO, the part read here ------------------------------------------------ */

typedef struct {
    char order; /* 'I', 'M', or 0 for both */
    int photo, sformat, fill;
    const char* bps;   /* "8,8,8" */
    const char* extra; /* "" or "2" */
    const char* mode;
    const char* raw;
    bool fill2; /* Pillow also has the entry with fill order 2 */
} OpenInfo;

static const OpenInfo k_open[] = {
    {0, 0, 1, 1, "1", "", "1", "1;I", true},
    {0, 1, 1, 1, "1", "", "1", "1", true},
    {0, 0, 1, 1, "2", "", "L", "L;2I", true},
    {0, 1, 1, 1, "2", "", "L", "L;2", true},
    {0, 0, 1, 1, "4", "", "L", "L;4I", true},
    {0, 1, 1, 1, "4", "", "L", "L;4", true},
    {0, 0, 1, 1, "8", "", "L", "L;I", true},
    {0, 1, 1, 1, "8", "", "L", "L", true},
    {'I', 0, 1, 1, "16", "", "I;16", "I;16", false},
    {'I', 1, 1, 1, "16", "", "I;16", "I;16", true},
    {'M', 1, 1, 1, "16", "", "I;16B", "I;16", false},
    {'I', 1, 2, 1, "16", "", "I", "I;16S", false},
    {'M', 1, 2, 1, "16", "", "I", "I;16S", false},
    {'I', 1, 1, 1, "32", "", "I", "I;32N", false},
    {'I', 1, 2, 1, "32", "", "I", "I;32S", false},
    {'M', 1, 2, 1, "32", "", "I", "I;32S", false},
    {0, 0, 3, 1, "32", "", "F", "F", false},
    {0, 1, 3, 1, "32", "", "F", "F", false},
    {0, 1, 1, 1, "8,8", "2", "LA", "LA", false},
    {0, 2, 1, 1, "8,8,8", "", "RGB", "RGB", true},
    {0, 2, 1, 1, "8,8,8,8", "", "RGBA", "RGBA", false},
    {0, 2, 1, 1, "8,8,8,8", "0", "RGBX", "RGBX", false},
    {0, 2, 1, 1, "8,8,8,8,8", "0,0", "RGBX", "RGBXX", false},
    {0, 2, 1, 1, "8,8,8,8,8,8", "0,0,0", "RGBX", "RGBXXX", false},
    {0, 2, 1, 1, "8,8,8,8", "1", "RGBA", "RGBa", false},
    {0, 2, 1, 1, "8,8,8,8,8", "1,0", "RGBA", "RGBaX", false},
    {0, 2, 1, 1, "8,8,8,8,8,8", "1,0,0", "RGBA", "RGBaXX", false},
    {0, 2, 1, 1, "8,8,8,8", "2", "RGBA", "RGBA", false},
    {0, 2, 1, 1, "8,8,8,8,8", "2,0", "RGBA", "RGBAX", false},
    {0, 2, 1, 1, "8,8,8,8,8,8", "2,0,0", "RGBA", "RGBAXX", false},
    {0, 2, 1, 1, "8,8,8,8", "999", "RGBA", "RGBA", false},
    {0, 2, 1, 1, "16,16,16", "", "RGB", "RGB;16", false},
    {0, 2, 1, 1, "16,16,16,16", "", "RGBA", "RGBA;16", false},
    {0, 2, 1, 1, "16,16,16,16", "0", "RGBX", "RGBX;16", false},
    {0, 2, 1, 1, "16,16,16,16", "1", "RGBA", "RGBa;16", false},
    {0, 2, 1, 1, "16,16,16,16", "2", "RGBA", "RGBA;16", false},
    {0, 3, 1, 1, "1", "", "P", "P;1", true},
    {0, 3, 1, 1, "2", "", "P", "P;2", true},
    {0, 3, 1, 1, "4", "", "P", "P;4", true},
    {0, 3, 1, 1, "8", "", "P", "P", true},
    {0, 3, 1, 1, "8,8", "2", "PA", "PA", false},
    {0, 5, 1, 1, "8,8,8,8", "", "CMYK", "CMYK", false},
    {0, 5, 1, 1, "8,8,8,8,8", "0", "CMYK", "CMYKX", false},
    {0, 5, 1, 1, "8,8,8,8,8,8", "0,0", "CMYK", "CMYKXX", false},
    {'I', 5, 1, 1, "16,16,16,16", "", "CMYK", "CMYK;16", false},
    {0, 6, 1, 1, "8,8,8", "", "RGB", "YCbCr", false},
    {0, 8, 1, 1, "8,8,8", "", "LAB", "LAB", false},
};

static bool list_eq(const char* spec, const uint64_t* v, int n) {
    int k = 0;
    const char* p = spec;
    while (*p) {
        char* end;
        unsigned long x = strtoul(p, &end, 10);
        if (k >= n || v[k] != x) return false;
        k++;
        p = *end == ',' ? end + 1 : end;
    }
    return k == n;
}

/* ---- libtiff over the mapped file ----------------------------------------------------------- */

typedef struct {
    const uint8_t* d;
    size_t n, pos;
    char msg[200];
} TiffMem;

static tmsize_t mem_read(thandle_t h, void* buf, tmsize_t size) {
    TiffMem* m = h;
    if (size < 0 || m->pos >= m->n) return 0;
    size_t k = MIN((size_t)size, m->n - m->pos);
    memcpy(buf, m->d + m->pos, k);
    m->pos += k;
    return (tmsize_t)k;
}
static tmsize_t mem_write(thandle_t h, void* buf, tmsize_t size) {
    (void)h, (void)buf, (void)size;
    return -1;
}
static toff_t mem_seek(thandle_t h, toff_t off, int whence) {
    TiffMem* m = h;
    uint64_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->n : 0;
    if (off > UINT64_MAX - base) return (toff_t)-1;
    m->pos = (size_t)MIN(base + off, (uint64_t)SIZE_MAX);
    return (toff_t)m->pos;
}
static int mem_close(thandle_t h) {
    (void)h;
    return 0;
}
static toff_t mem_size(thandle_t h) { return (toff_t)((TiffMem*)h)->n; }
static int mem_map(thandle_t h, void** base, toff_t* size) {
    (void)h, (void)base, (void)size;
    return 0;
}
static void mem_unmap(thandle_t h, void* base, toff_t size) { (void)h, (void)base, (void)size; }

static int tiff_error(TIFF* tif, void* user, const char* module, const char* fmt, va_list ap) {
    (void)tif, (void)module;
    TiffMem* m = user;
    if (!m->msg[0]) vsnprintf(m->msg, sizeof m->msg, fmt, ap);
    return 1;
}
static int tiff_warning(TIFF* tif, void* user, const char* module, const char* fmt, va_list ap) {
    (void)tif, (void)user, (void)module, (void)fmt, (void)ap;
    return 1; /* Pillow prints libtiff's warnings and goes on */
}

/* Reads every sample into `raw`: rows of `row_bytes` (bpp bits a pixel), one plane after
 * another when there are several (planar configuration 2). As Pillow's libtiff decoder reads: tile
 * rows, then planes, then tiles (strip rows, then planes), each into one buffer that is reused, so
 * where libtiff leaves part of a damaged strip unwritten the previous strip's bytes show, as in
 * Pillow; only libtiff's -1 is a failure. */
static bool tiff_read_all(TIFF* tif, uint32_t W, uint32_t H, int planes, int bpp, size_t row_bytes, uint8_t* raw) {
    const size_t plane_bytes = row_bytes * H;
    if (TIFFIsTiled(tif)) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
        const tmsize_t ts = TIFFTileSize(tif), trow = TIFFTileRowSize(tif);
        if (!tw || !th || ts <= 0 || trow <= 0 || trow > ts || ((uint64_t)tw * (uint64_t)bpp) % 8) return false;
        if ((uint64_t)ts > ((uint64_t)th * (uint64_t)bpp + 7) / 8 * tw) return false; /* Pillow's size check */
        uint8_t* buf = calloc(1, (size_t)ts);
        if (!buf) return false;
        bool ok = true;
        for (uint32_t y = 0; y < H && ok; y += th)
            for (int p = 0; p < planes && ok; p++)
                for (uint32_t x = 0; x < W && ok; x += tw) {
                    if (TIFFReadTile(tif, buf, x, y, 0, (uint16_t)p) == -1) {
                        ok = false;
                        break;
                    }
                    const size_t x0 = (size_t)x * (size_t)bpp / 8, nb = MIN((size_t)trow, row_bytes - x0);
                    for (uint32_t r = 0; r < th && y + r < H; r++)
                        memcpy(raw + (size_t)p * plane_bytes + (size_t)(y + r) * row_bytes + x0,
                               buf + (size_t)r * (size_t)trow, nb);
                }
        free(buf);
        return ok;
    }
    uint32_t rps = H;
    if (TIFFGetField(tif, TIFFTAG_ROWSPERSTRIP, &rps) != 1 || rps == (uint32_t)-1) rps = H;
    const tmsize_t ss = TIFFStripSize(tif), srow = TIFFScanlineSize(tif);
    if (!rps || ss <= 0 || srow <= 0 || (uint64_t)ss > (uint64_t)row_bytes * rps || row_bytes > (size_t)srow)
        return false; /* Pillow's checks on libtiff's strip and row sizes */
    uint8_t* buf = calloc(1, (size_t)ss);
    if (!buf) return false;
    bool ok = true;
    for (uint32_t y = 0; y < H && ok; y += rps)
        for (int p = 0; p < planes && ok; p++) {
            if (TIFFReadEncodedStrip(tif, TIFFComputeStrip(tif, y, (uint16_t)p), buf, ss) == -1) {
                ok = false;
                break;
            }
            for (uint32_t r = 0; r < rps && y + r < H; r++)
                memcpy(raw + (size_t)p * plane_bytes + (size_t)(y + r) * row_bytes, buf + (size_t)r * (size_t)srow,
                       row_bytes);
        }
    free(buf);
    return ok;
}

/* A YCbCr image that is not JPEG-compressed in one plane, as Pillow's _decodeAsRGBA reads it:
 * libtiff's TIFFRGBAImage does the subsampling and the colour conversion, in blocks of a strip's
 * (or tile's) rows, oriented top-left; the RGB of each pixel into `out`. */
static bool tiff_read_rgba(TIFF* tif, uint32_t W, uint32_t H, uint8_t* out, char* msg, size_t msg_size) {
    uint32_t rpb = 0;
    const int got = TIFFIsTiled(tif) ? TIFFGetFieldDefaulted(tif, TIFFTAG_TILELENGTH, &rpb)
                                     : TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rpb);
    if (got != 1 || rpb == (uint32_t)-1) rpb = H;
    TIFFRGBAImage img;
    char em[1024] = "";
    if (!(TIFFRGBAImageOK(tif, em) && TIFFRGBAImageBegin(&img, tif, 0, em))) {
        g_strlcpy(msg, em, msg_size);
        return false;
    }
    img.req_orientation = ORIENTATION_TOPLEFT;
    img.col_offset = 0;
    bool ok = img.width == W && img.height == H && rpb && (uint64_t)rpb * W * 4 <= INT32_MAX;
    uint32_t* buf = ok ? malloc((size_t)MIN(rpb, H) * W * 4) : NULL;
    for (uint32_t y = 0; ok && buf && y < H; y += rpb) {
        img.row_offset = (int)y;
        const uint32_t rows = MIN(rpb, H - y);
        if (!TIFFRGBAImageGet(&img, buf, W, rows)) {
            ok = false;
            break;
        }
        for (uint32_t r = 0; r < rows; r++)
            for (uint32_t x = 0; x < W; x++) {
                const uint32_t v = buf[(size_t)r * W + x];
                uint8_t* o = out + ((size_t)(y + r) * W + x) * 3;
                o[0] = (uint8_t)TIFFGetR(v), o[1] = (uint8_t)TIFFGetG(v), o[2] = (uint8_t)TIFFGetB(v);
            }
    }
    ok = ok && buf;
    free(buf);
    TIFFRGBAImageEnd(&img);
    return ok;
}

/* ---- Pillow's unpacking and convert("RGB") ------------------------------------------------- */


/* The sample `i` (of `bits`) of a row, MSB first; 16 and 32 bits in the host's order (libtiff's). */
static uint32_t sample(const uint8_t* row, size_t i, int bits) {
    switch (bits) {
    case 8: return row[i];
    case 16: {
        uint16_t v;
        memcpy(&v, row + 2 * i, 2);
        return v;
    }
    case 32: {
        uint32_t v;
        memcpy(&v, row + 4 * i, 4);
        return v;
    }
    default: {
        size_t bit = i * (size_t)bits;
        unsigned byte = row[bit / 8];
        return (byte >> (8 - bits - (int)(bit % 8))) & ((1u << bits) - 1);
    }
    }
}

/* One pixel: the `spp` samples of pixel x, wherever the planes put them. */
typedef struct {
    const uint8_t* raw;
    size_t row_bytes, plane_bytes;
    int spp, bits;
    bool separate;
} Pix;

static uint32_t px(const Pix* p, uint32_t x, uint32_t y, int s) {
    if (p->separate) return sample(p->raw + (size_t)s * p->plane_bytes + (size_t)y * p->row_bytes, x, p->bits);
    return sample(p->raw + (size_t)y * p->row_bytes, (size_t)x * (size_t)p->spp + (size_t)s, p->bits);
}

/* Pillow's unpackers for the 16-bit raw modes keep the high byte. */
static uint8_t hi8(uint32_t v, int bits) { return (uint8_t)(bits == 16 ? v >> 8 : v); }

/* What a pixel becomes, decided once from Pillow's raw mode */
typedef enum {
    U_BILEVEL,     /* "1": bit 1 white */
    U_BILEVEL_INV, /* "1;I": bit 1 black */
    U_GREY,        /* L;2 L;4 L, and LA's L: v * (255 / max) */
    U_GREY_INV,    /* L;2I L;4I L;I: (max - v) * (255 / max) */
    U_I16,         /* I;16: min(v, 255) */
    U_I16S,        /* I;16S: signed, clipped */
    U_I32,         /* I;32S, and I;32N (Pillow's I is signed): clipped */
    U_F,           /* F: truncated and clipped, NaN 0 */
    U_RGB,         /* RGB, RGBA, RGBX, their ;16 and X variants, YCbCr read as RGB: high bytes */
    U_RGB_PREMUL,  /* RGBa...: divided by alpha */
    U_PAL,         /* P, PA */
    U_CMYK,        /* CMYK...: cmyk2rgb */
    U_LAB,         /* LAB: L, a ^ 128, b ^ 128 here, then lab_to_rgb */
} Unpack;

static Unpack unpack_of(const char* raw) {
    if (!strcmp(raw, "1")) return U_BILEVEL;
    if (!strcmp(raw, "1;I")) return U_BILEVEL_INV;
    if (!strcmp(raw, "LAB")) return U_LAB;
    if (raw[0] == 'L') return raw[strlen(raw) - 1] == 'I' ? U_GREY_INV : U_GREY;
    if (!strcmp(raw, "I;16")) return U_I16;
    if (!strcmp(raw, "I;16S")) return U_I16S;
    if (!strncmp(raw, "I;32", 4)) return U_I32;
    if (!strcmp(raw, "F")) return U_F;
    if (!strncmp(raw, "RGBa", 4)) return U_RGB_PREMUL;
    if (!strncmp(raw, "RGB", 3) || !strcmp(raw, "YCbCr")) return U_RGB;
    if (raw[0] == 'P') return U_PAL;
    return U_CMYK;
}

static void to_rgb(const Pix* p, Unpack u, const uint8_t (*pal)[3], uint32_t x, uint32_t y, uint8_t* o) {
    const int b = p->bits;
    const unsigned max = b < 32 ? (1u << b) - 1 : 0;
    switch (u) {
    case U_BILEVEL:
    case U_BILEVEL_INV: o[0] = o[1] = o[2] = ((px(p, x, y, 0) != 0) == (u == U_BILEVEL)) ? 255 : 0; break;
    case U_GREY:
    case U_GREY_INV: {
        unsigned v = px(p, x, y, 0);
        if (u == U_GREY_INV) v = max - v;
        o[0] = o[1] = o[2] = (uint8_t)(v * (255 / max));
        break;
    }
    case U_I16: o[0] = o[1] = o[2] = mgl_clip8_u16(px(p, x, y, 0)); break;
    case U_I16S: o[0] = o[1] = o[2] = mgl_clip8_i64((int16_t)px(p, x, y, 0)); break;
    case U_I32: o[0] = o[1] = o[2] = mgl_clip8_i64((int32_t)px(p, x, y, 0)); break;
    case U_F: {
        uint32_t bits = px(p, x, y, 0);
        float v;
        memcpy(&v, &bits, 4);
        o[0] = o[1] = o[2] = mgl_f2l(v);
        break;
    }
    case U_RGB_PREMUL: {
        /* premultiplied: Pillow's unpackRGBa divides by alpha (of the high bytes) */
        unsigned a = hi8(px(p, x, y, 3), b);
        for (int c = 0; c < 3; c++) {
            unsigned v = hi8(px(p, x, y, c), b);
            o[c] = !a ? 0 : a == 255 ? (uint8_t)v : mgl_clip8_i64((int64_t)v * 255 / a);
        }
        break;
    }
    case U_RGB:
        for (int c = 0; c < 3; c++) o[c] = hi8(px(p, x, y, c), b);
        break;
    case U_PAL: memcpy(o, pal[px(p, x, y, 0) & 255], 3); break;
    case U_CMYK:
        mgl_cmyk2rgb(hi8(px(p, x, y, 0), b), hi8(px(p, x, y, 1), b), hi8(px(p, x, y, 2), b), hi8(px(p, x, y, 3), b), o);
        break;
    case U_LAB: /* Pillow's LAB unpacker: a and b are signed in the file */
        o[0] = (uint8_t)px(p, x, y, 0), o[1] = (uint8_t)(px(p, x, y, 1) ^ 128), o[2] = (uint8_t)(px(p, x, y, 2) ^ 128);
        break;
    }
}

/* Pillow's convert("RGB") of a LAB image: ImageCms's transform from the built-in Lab (v2, D50)
 * profile to sRGB, perceptual intent, no flags, over Pillow's 4-byte pixels (LabV2 with one extra
 * byte in, RGBA out), row by row through LittleCMS as _imagingcms does. `rgb` holds L, a, b. */
static bool lab_to_rgb(uint8_t* rgb, uint32_t W, uint32_t H) {
    cmsHPROFILE lab = cmsCreateLab2Profile(NULL), srgb = cmsCreate_sRGBProfile();
    cmsHTRANSFORM t =
        lab && srgb ? cmsCreateTransform(lab, COLORSPACE_SH(PT_LabV2) | CHANNELS_SH(3) | BYTES_SH(1) | EXTRA_SH(1),
                                         srgb, TYPE_RGBA_8, INTENT_PERCEPTUAL, 0)
                    : NULL;
    uint8_t* in = t ? malloc((size_t)W * 8) : NULL;
    if (in) {
        uint8_t* out = in + (size_t)W * 4;
        for (uint32_t y = 0; y < H; y++) {
            uint8_t* row = rgb + (size_t)y * W * 3;
            for (uint32_t x = 0; x < W; x++)
                memcpy(in + 4 * (size_t)x, row + 3 * (size_t)x, 3), in[4 * (size_t)x + 3] = 255;
            cmsDoTransform(t, in, out, W);
            for (uint32_t x = 0; x < W; x++) memcpy(row + 3 * (size_t)x, out + 4 * (size_t)x, 3);
        }
    }
    free(in);
    if (t) cmsDeleteTransform(t);
    if (lab) cmsCloseProfile(lab);
    if (srgb) cmsCloseProfile(srgb);
    return in != NULL;
}

/* Image.transpose as Pillow's TIFF loader applies it for Orientation 2..8. */
static uint8_t* orient(const uint8_t* in, uint32_t W, uint32_t H, int o, uint32_t* ow, uint32_t* oh) {
    const bool swap = o >= 5;
    *ow = swap ? H : W;
    *oh = swap ? W : H;
    uint8_t* out = malloc((size_t)W * H * 3);
    if (!out) return NULL;
    for (uint32_t y = 0; y < *oh; y++)
        for (uint32_t x = 0; x < *ow; x++) {
            uint32_t sx, sy;
            switch (o) {
            case 2: sx = W - 1 - x, sy = y; break;         /* FLIP_LEFT_RIGHT */
            case 3: sx = W - 1 - x, sy = H - 1 - y; break; /* ROTATE_180 */
            case 4: sx = x, sy = H - 1 - y; break;         /* FLIP_TOP_BOTTOM */
            case 5: sx = y, sy = x; break;                 /* TRANSPOSE */
            case 6: sx = y, sy = H - 1 - x; break;         /* ROTATE_270 */
            case 7: sx = W - 1 - y, sy = H - 1 - x; break; /* TRANSVERSE */
            default: sx = W - 1 - y, sy = x; break;        /* 8: ROTATE_90 */
            }
            memcpy(out + ((size_t)y * *ow + x) * 3, in + ((size_t)sy * W + sx) * 3, 3);
        }
    return out;
}

static const char* compression_name(uint64_t c) {
    switch (c) {
    case 1: return "raw";
    case 2: return "tiff_ccitt";
    case 3: return "group3";
    case 4: return "group4";
    case 5: return "tiff_lzw";
    case 6: return "tiff_jpeg";
    case 7: return "jpeg";
    case 8: return "tiff_adobe_deflate";
    case 32771: return "tiff_raw_16";
    case 32773: return "packbits";
    case 32809: return "tiff_thunderscan";
    case 32946: return "tiff_deflate";
    case 34676: return "tiff_sgilog";
    case 34677: return "tiff_sgilog24";
    case 34925: return "lzma";
    case 50000: return "zstd";
    case 50001: return "webp";
    default: return NULL;
    }
}

/* The decoded RGB turned by the Orientation tag (Pillow's TIFF load_end transposes), handed out. */
static MglStatus tiff_finish(const char* path, const TiffIfd* f, uint8_t* out, uint32_t W, uint32_t H, uint8_t** rgb,
                             int* w, int* h, MglErr* err) {
    const uint64_t o = tag1(&f->orientation, 1);
    uint32_t ow = W, oh = H;
    if (o >= 2 && o <= 8) {
        uint8_t* t = orient(out, W, H, (int)o, &ow, &oh);
        free(out);
        if (!t) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
        out = t;
    }
    *rgb = out;
    *w = (int)ow;
    *h = (int)oh;
    return MGL_OK;
}

MglStatus mgl_tiff_load(const char* path, const uint8_t* d, size_t n, uint8_t** rgb, int* w, int* h, MglErr* err) {
    TiffIfd f;
    if (!read_ifd(d, n, &f)) return cli_err(err, MGL_E_FORMAT, "%s: TIFF header or first IFD cut short", path);
    if (f.width.n <= 0 || f.length.n <= 0) return cli_err(err, MGL_E_FORMAT, "%s: TIFF without an image size", path);
    const uint64_t comp = tag1(&f.compression, 1);
    const char* cname = compression_name(comp);
    if (!cname)
        return cli_err(err, MGL_E_FORMAT, "%s: TIFF compression %llu is unknown", path, (unsigned long long)comp);
    if (comp == 6 || comp == 32771 || comp == 34676 || comp == 34677)
        return cli_err(err, MGL_E_UNSUPPORTED, "%s: TIFF compression %s is not read by the engine", path, cname);
    const uint64_t planar = tag1(&f.planar, 1), photo = tag1(&f.photometric, 0), fill = tag1(&f.fillorder, 1);
    /* sample format: one value per band; all 1 means unsigned */
    uint64_t sf[TIFF_MAX_VALUES] = {1};
    int nsf = 1;
    if (f.sformat.n > 0) {
        bool all1 = true;
        for (int i = 0; i < f.sformat.n; i++) all1 &= f.sformat.v[i] == 1;
        if (!(f.sformat.n > 1 && all1)) {
            nsf = f.sformat.n;
            memcpy(sf, f.sformat.v, sizeof(uint64_t) * (size_t)nsf);
        }
    }
    uint64_t bps[TIFF_MAX_VALUES] = {1};
    int nbps = 1;
    if (f.bps.n >= 0) {
        nbps = (int)MIN(f.bps.count, (uint64_t)TIFF_MAX_VALUES);
        memcpy(bps, f.bps.v, sizeof(uint64_t) * (size_t)f.bps.n);
    }
    const int nextra = f.extra.n > 0 ? f.extra.n : 0;
    const uint64_t spp = tag1(&f.spp, 1);
    if (spp > 6) return cli_err(err, MGL_E_FORMAT, "%s: TIFF with %llu samples a pixel", path, (unsigned long long)spp);
    if (spp < (uint64_t)nbps)
        nbps = (int)spp;
    else if (spp > (uint64_t)nbps && nbps == 1) {
        for (uint64_t i = 1; i < spp; i++) bps[i] = bps[0];
        nbps = (int)spp;
    }
    if ((uint64_t)nbps != spp) return cli_err(err, MGL_E_FORMAT, "%s: TIFF data organization unknown", path);
    /* Pillow's decoder is libtiff (fill order done there) unless uncompressed; both give these samples */
    const OpenInfo* oi = NULL;
    for (size_t i = 0; i < G_N_ELEMENTS(k_open) && !oi; i++) {
        const OpenInfo* e = &k_open[i];
        if (e->order && e->order != (f.be ? 'M' : 'I')) continue;
        if ((uint64_t)e->photo != photo || !(fill == 1 || (fill == 2 && e->fill2))) continue;
        if (nsf != 1 || (uint64_t)e->sformat != sf[0] || !list_eq(e->bps, bps, nbps) ||
            !list_eq(e->extra, f.extra.v, nextra))
            continue;
        oi = e;
    }
    if (!oi)
        return cli_err(err, MGL_E_UNSUPPORTED,
                       "%s: TIFF pixel layout not read (photometric %llu, %d samples of %llu bits, %d extra)", path,
                       (unsigned long long)photo, nbps, (unsigned long long)bps[0], nextra);
    /* YCbCr other than JPEG in one plane: libtiff's RGBA reader, as Pillow's libtiff decoder; uncompressed,
     * Pillow's own raw reader takes 4 bytes a pixel from the 3-byte samples (refused here) */
    if (photo == 6 && comp == 1)
        return cli_err(err, MGL_E_UNSUPPORTED, "%s: TIFF YCbCr uncompressed is not read by the engine", path);
    const bool as_rgba = photo == 6 && !(comp == 7 && planar == 1);
    if (planar != 1 && planar != 2)
        return cli_err(err, MGL_E_FORMAT, "%s: TIFF planar configuration %llu", path, (unsigned long long)planar);
    if (planar == 2 && (bps[0] != 8 || strchr(oi->raw, 'X') || !strcmp(oi->raw, "RGBa") || oi->raw[0] == 'P'))
        return cli_err(err, MGL_E_UNSUPPORTED, "%s: TIFF with separate planes of this kind not read", path);
    /* uncompressed files go through Pillow's own unpackers, which lack some of these raw modes */
    if (comp == 1 && fill == 2 &&
        (!strcmp(oi->raw, "L;I") || !strcmp(oi->raw, "P;1") || !strcmp(oi->raw, "P;2") || !strcmp(oi->raw, "P;4")))
        return cli_err(err, MGL_E_FORMAT, "%s: uncompressed TIFF %s with fill order 2: Pillow has no unpacker for it",
                       path, oi->mode);
    if (comp == 1 && planar == 2 && !strcmp(oi->raw, "LA"))
        return cli_err(err, MGL_E_FORMAT, "%s: uncompressed TIFF LA in separate planes: Pillow has no unpacker for it",
                       path);
    if (comp == 1 && f.strips.n < 0 && f.tiles.n < 0)
        return cli_err(err, MGL_E_FORMAT, "%s: TIFF without strip or tile offsets", path);
    const uint64_t W = f.width.v[0], H = f.length.v[0];
    if (!W || !H || W > MGL_IMAGE_MAX_SIDE || H > MGL_IMAGE_MAX_SIDE || mgl_image_too_many_pixels(W, H))
        return cli_err(err, MGL_E_FORMAT, "%s: %llux%llu pixels (at most %d a side, %llu in all)", path,
                       (unsigned long long)W, (unsigned long long)H, MGL_IMAGE_MAX_SIDE, MGL_IMAGE_MAX_PIXELS);

    /* the palette: Pillow takes each 16-bit colormap value // 256, red block, green, blue */
    const Unpack unpack = unpack_of(oi->raw);
    uint8_t pal[256][3];
    if (unpack == U_PAL) {
        const uint64_t entries = f.colormap_count / 3;
        if (!f.colormap_count || f.colormap_count % 3 || entries > 256)
            return cli_err(err, MGL_E_FORMAT, "%s: TIFF palette image without a usable colormap", path);
        uint8_t cmap[256][3];
        for (uint64_t i = 0; i < entries; i++)
            for (int c = 0; c < 3; c++)
                cmap[i][c] = (uint8_t)(rd(d + f.colormap_off + 2 * (c * entries + i), 2, f.be) >> 8);
        mgl_palette_fill(pal, cmap[0], (size_t)entries, 3, false);
    }

    TiffMem mem = {d, n, 0, {0}};
    TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
    if (!opts) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, tiff_error, &mem);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, tiff_warning, &mem);
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, (tmsize_t)1 << 30);
    TIFF* tif = TIFFClientOpenExt(path, "rm", &mem, mem_read, mem_write, mem_seek, mem_close, mem_size, mem_map,
                                  mem_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif) return cli_err(err, MGL_E_FORMAT, "%s: libtiff cannot read it: %s", path, mem.msg[0] ? mem.msg : "?");
    MglStatus st = MGL_OK;
    uint32_t tw = 0, th = 0;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &th);
    if (tw != W || th != H) st = cli_err(err, MGL_E_FORMAT, "%s: TIFF size tags disagree with libtiff's", path);
    if (st == MGL_OK && photo == 6 && !as_rgba && !TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB))
        st = cli_err(err, MGL_E_FORMAT, "%s: TIFF JPEG colour mode refused: %s", path, mem.msg);
    if (st == MGL_OK && as_rgba) {
        uint8_t* out = malloc((size_t)W * H * 3);
        char em[1024] = "";
        if (!out)
            st = cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
        else if (!tiff_read_rgba(tif, (uint32_t)W, (uint32_t)H, out, em, sizeof em))
            st = cli_err(err, MGL_E_FORMAT, "%s: TIFF YCbCr data corrupt or truncated%s%s", path,
                         em[0] || mem.msg[0] ? ": " : "", em[0] ? em : mem.msg);
        TIFFClose(tif);
        if (st != MGL_OK) {
            free(out);
            return st;
        }
        return tiff_finish(path, &f, out, (uint32_t)W, (uint32_t)H, rgb, w, h, err);
    }
    const int bits = (int)bps[0], planes = planar == 2 ? (int)spp : 1, per_plane = planar == 2 ? 1 : (int)spp;
    const size_t row_bytes = ((size_t)W * (size_t)per_plane * (size_t)bits + 7) / 8;
    uint8_t* raw = NULL;
    if (st == MGL_OK) {
        raw = calloc((size_t)planes * row_bytes * H, 1);
        if (!raw)
            st = cli_err(err, MGL_E_NOMEM, "%s: out of memory for %llux%llu pixels", path, (unsigned long long)W,
                         (unsigned long long)H);
    }
    if (st == MGL_OK && !tiff_read_all(tif, (uint32_t)W, (uint32_t)H, planes, per_plane * bits, row_bytes, raw))
        st = cli_err(err, MGL_E_FORMAT, "%s: TIFF image data corrupt or truncated%s%s", path, mem.msg[0] ? ": " : "",
                     mem.msg);
    TIFFClose(tif);
    uint8_t* out = NULL;
    if (st == MGL_OK) {
        out = malloc((size_t)W * H * 3);
        if (!out) st = cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    }
    if (st == MGL_OK) {
        const Pix p = {raw, row_bytes, row_bytes * H, per_plane, bits, planar == 2};
        for (uint32_t y = 0; y < H; y++)
            for (uint32_t x = 0; x < W; x++)
                to_rgb(&p, unpack, (const uint8_t(*)[3])pal, x, y, out + ((size_t)y * W + x) * 3);
    }
    free(raw);
    if (st == MGL_OK && unpack == U_LAB && !lab_to_rgb(out, (uint32_t)W, (uint32_t)H))
        st = cli_err(err, MGL_E_NOMEM, "%s: LAB to RGB transform failed", path);
    if (st != MGL_OK) {
        free(out);
        return st;
    }
    return tiff_finish(path, &f, out, (uint32_t)W, (uint32_t)H, rgb, w, h, err);
}
