/* mgl-image-jp2.c: JPEG 2000 (a JP2 file or a bare codestream), pixel for pixel as Pillow 9.4's
 * Image.open(f).convert("RGB") reads it:
 *  - the size and mode from the header as Jpeg2KImagePlugin parses it: a codestream's SIZ segment
 *    (its component loop starts two bytes early, so the precision it tests is component 0's), or
 *    a JP2 file's boxes up to the ihdr box in jp2h (1 component: I;16 when the bit depth field
 *    & 0x7f exceeds 8, else L; 2: LA; 3: RGB; 4: RGB);
 *  - the samples from OpenJPEG's tile-by-tile decoder, called as Pillow's Jpeg2KDecode.c calls it
 *    (the same stream chunk size, no seek function, a skip function that returns the position it
 *    reached, default parameters);
 *  - Pillow's unpackers: a component of precision p is shifted into 8 bits (<< (8 - p), or
 *    >> (p - 8) with rounding; 16 for I;16), signed ones offset by 2^(p-1), subsampled components
 *    indexed by x / dx and y / dy over planes of (w / dx) x (h / dy) samples, sYCC converted with
 *    Pillow's fixed-point YCbCr tables; the colour space of a codestream without one guessed from
 *    its subsampling, as Pillow guesses it.
 * Then Pillow's convert("RGB"): grey replicated, I;16 clipped at 255, alpha dropped. */
#include "mgl-image-internal.h"

#include <openjpeg.h>
#include <stdlib.h>
#include <string.h>


enum { M_NONE, M_L, M_I16, M_LA, M_RGB, M_RGBA };

static int mode_for(unsigned nc, unsigned depth_field) {
    switch (nc) {
    case 1: return (depth_field & 0x7f) > 8 ? M_I16 : M_L;
    case 2: return M_LA;
    case 3: return M_RGB;
    case 4: return M_RGBA;
    default: return M_NONE;
    }
}

/* Jpeg2KImagePlugin's BoxReader over d[start, end) (end = SIZE_MAX: no length known). Returns the
 * box type, or 0 where Pillow raises SyntaxError (-1 via *hard for its OSError: a read past the end
 * of the file). */
typedef struct {
    const uint8_t* d;
    size_t n, pos, end; /* end: the reader's length, or SIZE_MAX */
    int64_t remaining;  /* -1: no box open */
} Boxes;

static bool box_can_read(const Boxes* b, uint64_t k) {
    if (b->end != SIZE_MAX && b->pos + k > b->end) return false;
    return b->remaining >= 0 ? k <= (uint64_t)b->remaining : true;
}

/* Reads k bytes of the open box: 1 fine, 0 SyntaxError, -1 OSError (short read). */
static int box_read(Boxes* b, size_t k, const uint8_t** out) {
    if (!box_can_read(b, k)) return 0;
    if (b->pos > b->n || b->n - b->pos < k) return -1;
    *out = b->d + b->pos;
    b->pos += k;
    if (b->remaining > 0) b->remaining -= (int64_t)k;
    return 1;
}

static bool box_has_next(const Boxes* b) {
    return b->end == SIZE_MAX ? true : (int64_t)b->pos + b->remaining < (int64_t)b->end;
}

/* The next box's type into t: 1, or 0 / -1 as box_read. */
static int box_next(Boxes* b, uint8_t t[4]) {
    if (b->remaining > 0) b->pos += (size_t)b->remaining;
    b->remaining = -1;
    const uint8_t* p;
    int r = box_read(b, 8, &p);
    if (r != 1) return r;
    uint64_t lbox = mgl_be32(p), hlen = 8;
    memcpy(t, p + 4, 4);
    if (lbox == 1) {
        if ((r = box_read(b, 8, &p)) != 1) return r;
        lbox = (uint64_t)mgl_be32(p) << 32 | mgl_be32(p + 4);
        hlen = 16;
    }
    if (lbox < hlen || !box_can_read(b, lbox - hlen)) return 0;
    b->remaining = (int64_t)(lbox - hlen);
    return 1;
}

/* The header: size, mode and codec as Pillow's _open finds them. 1 fine, 0 not taken (Pillow's
 * SyntaxError or struct.error: other formats are tried), -1 refused. */
static int jp2_header(const uint8_t* d, size_t n, uint64_t* W, uint64_t* H, int* mode, bool* jp2) {
    if (n >= 4 && !memcmp(d, "\xff\x4f\xff\x51", 4)) {
        *jp2 = false;
        if (n < 6) return 0;
        const size_t lsiz = mgl_be16(d + 4);
        const size_t have = lsiz < 2 || n - 4 < lsiz ? n - 4 : lsiz; /* hdr + read(lsiz - 2): all of it below 2 */
        const uint8_t* siz = d + 4;
        if (have < 38) return 0;
        const unsigned csiz = mgl_be16(siz + 36);
        if (36 + 3 * (size_t)csiz > have) return 0; /* Pillow reads the components from offset 36 */
        const int64_t w = (int64_t)mgl_be32(siz + 4) - mgl_be32(siz + 12),
                      h = (int64_t)mgl_be32(siz + 8) - mgl_be32(siz + 16);
        *mode = csiz ? mode_for(csiz, siz[38]) : M_NONE; /* Pillow's yrsiz[0], at byte 38: Ssiz of component 0 */
        if (*mode == M_NONE || w <= 0 || h <= 0) return 0;
        *W = (uint64_t)w, *H = (uint64_t)h;
        return 1;
    }
    if (n < 12 || memcmp(d, "\x00\x00\x00\x0cjP  \x0d\x0a\x87\x0a", 12)) return 0;
    *jp2 = true;
    Boxes top = {d, n, 12, SIZE_MAX, -1};
    uint8_t t[4];
    const uint8_t* p;
    int r;
    Boxes hdr = {0};
    for (;;) {
        if ((r = box_next(&top, t)) != 1) return r;
        if (!memcmp(t, "jp2h", 4)) {
            const size_t size = (size_t)top.remaining;
            if ((r = box_read(&top, size, &p)) != 1) return r;
            hdr = (Boxes){d, (size_t)(p - d) + size, (size_t)(p - d), (size_t)(p - d) + size, -1};
            break;
        }
        if (!memcmp(t, "ftyp", 4) && (r = box_read(&top, 4, &p)) != 1) return r;
    }
    bool have = false;
    *mode = M_NONE;
    while (box_has_next(&hdr)) {
        if ((r = box_next(&hdr, t)) != 1) return r;
        if (!memcmp(t, "ihdr", 4)) {
            if ((r = box_read(&hdr, 11, &p)) != 1) return r;
            *H = mgl_be32(p), *W = mgl_be32(p + 4);
            have = true;
            const int m = mode_for(mgl_be16(p + 8), p[10]);
            if (m != M_NONE) *mode = m;
        } else if (!memcmp(t, "res ", 4)) {
            const size_t size = (size_t)hdr.remaining;
            if ((r = box_read(&hdr, size, &p)) != 1) return r;
            Boxes res = {d, (size_t)(p - d) + size, (size_t)(p - d), (size_t)(p - d) + size, -1};
            while (box_has_next(&res)) {
                if ((r = box_next(&res, t)) != 1) return r;
                if (!memcmp(t, "resc", 4)) {
                    if ((r = box_read(&res, 10, &p)) != 1) return r;
                    break;
                }
            }
        }
    }
    if (!have || *mode == M_NONE || !*W || !*H) return 0;
    return 1;
}

/* ---- the stream, as Pillow's j2k_read / j2k_skip over its file ------------------------------- */

typedef struct {
    const uint8_t* d;
    uint64_t n, pos;
    char msg[256];
} J2kSrc;

static OPJ_SIZE_T src_read(void* buf, OPJ_SIZE_T k, void* user) {
    J2kSrc* s = user;
    const uint64_t left = s->pos < s->n ? s->n - s->pos : 0, got = k < left ? k : left;
    if (got) memcpy(buf, s->d + s->pos, (size_t)got);
    s->pos += got;
    return got ? (OPJ_SIZE_T)got : (OPJ_SIZE_T)-1;
}

static OPJ_OFF_T src_skip(OPJ_OFF_T k, void* user) {
    J2kSrc* s = user;
    const int64_t np = (int64_t)s->pos + (int64_t)k;
    s->pos = np < 0 ? 0 : (uint64_t)np;
    return s->pos ? (OPJ_OFF_T)s->pos : (OPJ_OFF_T)-1; /* the position, not the count (Pillow's) */
}

static void src_error(const char* msg, void* user) {
    J2kSrc* s = user;
    g_strlcpy(s->msg, msg, sizeof s->msg);
    size_t l = strlen(s->msg);
    while (l && (s->msg[l - 1] == '\n' || s->msg[l - 1] == '\r')) s->msg[--l] = 0;
}

/* ---- Pillow's unpackers ---------------------------------------------------------------------- */

typedef struct {
    uint32_t shift_left, shift_right, offset; /* the value is (offset + word) << l or >> r */
    size_t csiz;
    unsigned dx, dy;
} Comp;

static Comp comp_of(const opj_image_comp_t* c, int bits) {
    Comp k = {0};
    const int shift = bits - (int)c->prec;
    uint32_t off = c->sgnd ? 1u << (c->prec - 1) : 0;
    if (shift < 0) off += 1u << (-shift - 1);
    k.shift_left = shift > 0 ? (uint32_t)shift : 0;
    k.shift_right = shift < 0 ? (uint32_t)-shift : 0;
    k.offset = off;
    k.csiz = (c->prec + 7) >> 3;
    if (k.csiz == 3) k.csiz = 4;
    k.dx = c->dx ? c->dx : 1;
    k.dy = c->dy ? c->dy : 1;
    return k;
}

static uint32_t word_at(const uint8_t* p, size_t csiz, size_t i) {
    if (csiz == 1) return p[i];
    if (csiz == 2) {
        uint16_t v;
        memcpy(&v, p + 2 * i, 2);
        return v;
    }
    uint32_t v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

static uint32_t comp_val(const Comp* k, uint32_t word) {
    const uint32_t v = k->offset + word;
    return k->shift_right ? v >> k->shift_right : v << k->shift_left;
}

typedef enum { U_GRAY_L, U_GRAY_I, U_GRAY_RGB, U_GRAYA, U_SRGB, U_SYCC, U_SRGBA, U_SYCCA } Unpacker;

/* One tile into the image (px bytes a pixel: 1 for L, 2 for I;16, 4 else), as the unpacker does. */
static void unpack_tile(Unpacker u, const opj_image_t* in, const uint8_t* data, uint32_t tx0, uint32_t ty0, uint32_t w,
                        uint32_t h, uint8_t* im, size_t W, int px) {
    const uint32_t x0 = tx0 - in->x0, y0 = ty0 - in->y0;
    if (u == U_GRAY_L || u == U_GRAY_I || u == U_GRAY_RGB) {
        const Comp k = comp_of(&in->comps[0], u == U_GRAY_I ? 16 : 8);
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                const uint32_t v = comp_val(&k, word_at(data, k.csiz, (size_t)y * w + x));
                uint8_t* o = im + ((size_t)(y0 + y) * W + x0 + x) * (size_t)px;
                if (u == U_GRAY_I) {
                    const uint16_t s = (uint16_t)v;
                    memcpy(o, &s, 2);
                } else if (u == U_GRAY_L) {
                    o[0] = (uint8_t)v;
                } else {
                    o[0] = o[1] = o[2] = (uint8_t)v, o[3] = 0xff;
                }
            }
        return;
    }
    if (u == U_GRAYA) {
        const Comp k = comp_of(&in->comps[0], 8), ka = comp_of(&in->comps[1], 8);
        const uint8_t* adata = data + k.csiz * (size_t)w * h;
        for (uint32_t y = 0; y < h; y++)
            for (uint32_t x = 0; x < w; x++) {
                uint8_t* o = im + ((size_t)(y0 + y) * W + x0 + x) * 4;
                o[0] = o[1] = o[2] = (uint8_t)comp_val(&k, word_at(data, k.csiz, (size_t)y * w + x));
                o[3] = (uint8_t)comp_val(&ka, word_at(adata, ka.csiz, (size_t)y * w + x));
            }
        return;
    }
    const int nc = (u == U_SRGBA || u == U_SYCCA) ? 4 : 3;
    Comp k[4];
    const uint8_t* cdata[4];
    const uint8_t* cp = data;
    for (int c = 0; c < nc; c++) {
        k[c] = comp_of(&in->comps[c], 8);
        cdata[c] = cp;
        cp += k[c].csiz * (size_t)(w / k[c].dx) * (size_t)(h / k[c].dy);
    }
    for (uint32_t y = 0; y < h; y++) {
        uint8_t* row = im + ((size_t)(y0 + y) * W + x0) * 4;
        for (uint32_t x = 0; x < w; x++) {
            for (int c = 0; c < nc; c++) {
                const uint8_t* rd = cdata[c] + k[c].csiz * (size_t)(y / k[c].dy) * (size_t)(w / k[c].dx);
                row[4 * (size_t)x + (size_t)c] = (uint8_t)comp_val(&k[c], word_at(rd, k[c].csiz, x / k[c].dx));
            }
            if (nc == 3) row[4 * (size_t)x + 3] = 0xff;
        }
        if (u == U_SYCC || u == U_SYCCA) mgl_ycc_to_rgb_row(row, w);
    }
}

/* Pillow's table: (image mode, colour space, components, whether subsampling is allowed). */
static bool pick_unpacker(int mode, OPJ_COLOR_SPACE cs, unsigned nc, bool subsampled, Unpacker* u) {
    static const struct {
        int mode;
        OPJ_COLOR_SPACE cs;
        unsigned nc;
        bool sub;
        Unpacker u;
    } k[] = {
        {M_L, OPJ_CLRSPC_GRAY, 1, false, U_GRAY_L},     {M_I16, OPJ_CLRSPC_GRAY, 1, false, U_GRAY_I},
        {M_LA, OPJ_CLRSPC_GRAY, 2, false, U_GRAYA},     {M_RGB, OPJ_CLRSPC_GRAY, 1, false, U_GRAY_RGB},
        {M_RGB, OPJ_CLRSPC_GRAY, 2, false, U_GRAY_RGB}, {M_RGB, OPJ_CLRSPC_SRGB, 3, true, U_SRGB},
        {M_RGB, OPJ_CLRSPC_SYCC, 3, true, U_SYCC},      {M_RGB, OPJ_CLRSPC_SRGB, 4, true, U_SRGB},
        {M_RGB, OPJ_CLRSPC_SYCC, 4, true, U_SYCC},      {M_RGBA, OPJ_CLRSPC_GRAY, 1, false, U_GRAY_RGB},
        {M_RGBA, OPJ_CLRSPC_GRAY, 2, false, U_GRAYA},   {M_RGBA, OPJ_CLRSPC_SRGB, 3, true, U_SRGB},
        {M_RGBA, OPJ_CLRSPC_SYCC, 3, true, U_SYCC},     {M_RGBA, OPJ_CLRSPC_SRGB, 4, true, U_SRGBA},
        {M_RGBA, OPJ_CLRSPC_SYCC, 4, true, U_SYCCA},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (k[i].mode == mode && k[i].cs == cs && k[i].nc == nc && (k[i].sub || !subsampled)) {
            *u = k[i].u;
            return true;
        }
    return false;
}

MglStatus mgl_jp2_load(const char* path, const uint8_t* d, size_t n, bool* not_jp2, uint8_t** rgb, int* w, int* h,
                       MglErr* err) {
    uint64_t W = 0, H = 0;
    int mode = M_NONE;
    bool jp2 = false;
    const int hr = jp2_header(d, n, &W, &H, &mode, &jp2);
    *not_jp2 = hr == 0;
    if (hr == 0) return cli_err(err, MGL_E_FORMAT, "%s: JPEG 2000 header not understood", path);
    if (hr < 0) return cli_err(err, MGL_E_FORMAT, "%s: JPEG 2000 header cut short", path);
    if (W > MGL_IMAGE_MAX_SIDE || H > MGL_IMAGE_MAX_SIDE || mgl_image_too_many_pixels(W, H))
        return cli_err(err, MGL_E_FORMAT, "%s: JPEG 2000 of %llux%llu pixels (at most %d a side, %llu in all)", path,
                       (unsigned long long)W, (unsigned long long)H, MGL_IMAGE_MAX_SIDE, MGL_IMAGE_MAX_PIXELS);
    const int px = mode == M_L ? 1 : mode == M_I16 ? 2 : 4;
    uint8_t* im = calloc((size_t)W * (size_t)H, (size_t)px);
    if (!im) return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);

    J2kSrc src = {d, n, 0, {0}};
    const char* bad = NULL;
    opj_stream_t* stream = opj_stream_create(OPJ_J2K_STREAM_CHUNK_SIZE, OPJ_TRUE);
    opj_codec_t* codec = NULL;
    opj_image_t* image = NULL;
    uint8_t* buf = NULL;
    size_t buf_size = 0;
    if (!stream) {
        bad = "out of memory";
        goto done;
    }
    opj_stream_set_read_function(stream, src_read);
    opj_stream_set_skip_function(stream, src_skip);
    opj_stream_set_user_data(stream, &src, NULL);
    opj_stream_set_user_data_length(stream, n);
    opj_dparameters_t params;
    opj_set_default_decoder_parameters(&params);
    codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
    if (!codec) {
        bad = "out of memory";
        goto done;
    }
    opj_set_error_handler(codec, src_error, &src);
    opj_setup_decoder(codec, &params);
    if (!opj_read_header(stream, codec, &image)) {
        bad = "OpenJPEG cannot read its header";
        goto done;
    }
    if (image->numcomps < 1 || image->numcomps > 4 || image->color_space == OPJ_CLRSPC_UNKNOWN) {
        bad = "JPEG 2000 of 0 or more than 4 components, or of an unknown colour space";
        goto done;
    }
    /* a codestream larger than the header's size fails on its last tile in Pillow: refused before
     * OpenJPEG allocates for it */
    if ((uint64_t)image->x1 - image->x0 > W || (uint64_t)image->y1 - image->y0 > H || image->x1 < image->x0 ||
        image->y1 < image->y0) {
        bad = "JPEG 2000 codestream larger than its header's size";
        goto done;
    }
    int sub = -1;
    for (unsigned c = 0; c < image->numcomps && sub < 0; c++)
        if (image->comps[c].dx != 1 || image->comps[c].dy != 1) sub = (int)c;
    OPJ_COLOR_SPACE cs = image->color_space;
    if (cs == OPJ_CLRSPC_UNSPECIFIED) {
        if (image->numcomps <= 2)
            cs = OPJ_CLRSPC_GRAY;
        else
            cs = (sub == 1 || sub == 2) ? OPJ_CLRSPC_SYCC : OPJ_CLRSPC_SRGB;
    }
    Unpacker u;
    if (!pick_unpacker(mode, cs, image->numcomps, sub >= 0, &u)) {
        bad = "JPEG 2000 layout Pillow has no unpacker for";
        goto done;
    }
    uint64_t total_width = 0; /* Pillow's running sum over the tiles, never reset */
    for (;;) {
        OPJ_UINT32 index, data_size, nb_comps;
        OPJ_INT32 tx0, ty0, tx1, ty1;
        OPJ_BOOL more;
        if (!opj_read_tile_header(codec, stream, &index, &data_size, &tx0, &ty0, &tx1, &ty1, &nb_comps, &more)) {
            bad = "OpenJPEG cannot read a tile header";
            goto done;
        }
        if (!more) break;
        if (tx0 >= tx1 || ty0 >= ty1 || tx0 < 0 || ty0 < 0 || (OPJ_UINT32)tx0 < image->x0 ||
            (OPJ_UINT32)ty0 < image->y0 || (int64_t)((OPJ_UINT32)tx1 - image->x0) > (int64_t)W ||
            (int64_t)((OPJ_UINT32)ty1 - image->y0) > (int64_t)H) {
            bad = "JPEG 2000 tile outside the image";
            goto done;
        }
        if (nb_comps != image->numcomps) {
            bad = "JPEG 2000 tile of another component count";
            goto done;
        }
        const uint64_t tw = (uint32_t)(tx1 - tx0), th = (uint32_t)(ty1 - ty0);
        for (unsigned c = 0; c < nb_comps; c++) {
            uint64_t cs1 = (image->comps[c].prec + 7) >> 3;
            total_width += cs1 == 3 ? 4 : cs1;
        }
        if (tw * th * total_width > UINT32_MAX) {
            bad = "JPEG 2000 tile too large";
            goto done;
        }
        uint64_t need = tw * th * total_width;
        if (need < data_size) need = data_size;
        if (buf_size < need) {
            uint8_t* nb = realloc(buf, (size_t)need);
            if (!nb) {
                bad = "out of memory";
                goto done;
            }
            memset(nb, 0, (size_t)need);
            buf = nb, buf_size = (size_t)need;
        }
        if (!opj_decode_tile_data(codec, index, buf, (OPJ_UINT32)need, stream)) {
            bad = "JPEG 2000 tile data corrupt or truncated";
            goto done;
        }
        unpack_tile(u, image, buf, (uint32_t)tx0, (uint32_t)ty0, (uint32_t)tw, (uint32_t)th, im, (size_t)W, px);
    }
    if (!opj_end_decompress(codec, stream)) bad = "JPEG 2000 data corrupt after the last tile";
done:
    free(buf);
    if (codec) opj_destroy_codec(codec);
    if (image) opj_image_destroy(image);
    if (stream) opj_stream_destroy(stream);
    if (bad) {
        free(im);
        return cli_err(err, MGL_E_FORMAT, "%s: %s%s%s", path, bad, src.msg[0] ? ": " : "", src.msg);
    }
    uint8_t* out = malloc((size_t)W * (size_t)H * 3);
    if (!out) {
        free(im);
        return cli_err(err, MGL_E_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < (size_t)W * (size_t)H; i++) {
        uint8_t* o = out + 3 * i;
        if (px == 1) {
            o[0] = o[1] = o[2] = im[i];
        } else if (px == 2) {
            uint16_t v;
            memcpy(&v, im + 2 * i, 2);
            o[0] = o[1] = o[2] = mgl_clip8_u16(v);
        } else {
            memcpy(o, im + 4 * i, 3);
        }
    }
    free(im);
    *rgb = out;
    *w = (int)W;
    *h = (int)H;
    return MGL_OK;
}
