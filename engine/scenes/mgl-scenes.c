/* mgl-scenes.c: the synthetic scene renderer (see mgl-scenes.h). */
#include "mgl-scenes.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char* name;
    uint8_t rgb[3];
} k_colors[] = {
    {"red", {220, 40, 40}},   {"orange", {240, 140, 20}}, {"yellow", {235, 215, 30}}, {"green", {40, 180, 60}},
    {"cyan", {30, 200, 210}}, {"blue", {40, 70, 220}},    {"purple", {130, 50, 200}}, {"magenta", {220, 40, 200}},
};
#define N_COLORS ((int)(sizeof k_colors / sizeof k_colors[0]))

static const char* const k_shapes[MGL_SHAPE_COUNT] = {"circle", "square", "triangle", "star"};

/* 3x5 digit glyphs, one row per byte, bit 2 = left column */
static const uint8_t k_digits[10][5] = {
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
    {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
};

const char* mgl_scene_color_name(int c) { return c >= 0 && c < N_COLORS ? k_colors[c].name : "?"; }
const char* mgl_scene_shape_name(MglShape s) { return (unsigned)s < MGL_SHAPE_COUNT ? k_shapes[s] : "?"; }

int mgl_scene_still_frame(long index) { return (int)((index * 7919) % 600); }

/* splitmix64: small, fast, and the same on every platform */
static uint64_t rng_next(uint64_t* s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rng_int(uint64_t* s, int lo, int hi) { return lo + (int)(rng_next(s) % (uint64_t)(hi - lo + 1)); }
static double rng_unit(uint64_t* s) { return (double)(rng_next(s) >> 11) / 9007199254740992.0; }

void mgl_scene_make(MglScene* s, int width, int height, uint64_t seed, int index, int min_objects, int max_objects) {
    memset(s, 0, sizeof *s);
    s->width = width;
    s->height = height;
    s->seed = seed;
    s->index = index;
    uint64_t r = seed * 0x100000001b3ull ^ (uint64_t)index * 0x9e3779b97f4a7c15ull ^ 0x6d676c6c;
    rng_next(&r);
    if (min_objects < 1) min_objects = 1;
    if (max_objects > MGL_SCENE_MAX_OBJECTS) max_objects = MGL_SCENE_MAX_OBJECTS;
    if (max_objects < min_objects) max_objects = min_objects;
    s->n = rng_int(&r, min_objects, max_objects);
    /* a low-saturation vertical gradient: never mistaken for an object */
    for (int k = 0; k < 2; k++) {
        int v = rng_int(&r, 40, 200), tint = rng_int(&r, 0, 2);
        for (int c = 0; c < 3; c++) s->bg[k][c] = (uint8_t)(v + (c == tint ? rng_int(&r, 0, 18) : 0));
    }
    /* cells: objects move inside their own cell and never overlap */
    int gx = s->n <= 2 ? 2 : s->n <= 4 ? 2 : 3, gy = s->n <= 2 ? 1 : 2;
    int cells[6] = {0, 1, 2, 3, 4, 5}, ncell = gx * gy;
    for (int i = ncell - 1; i > 0; i--) {
        int j = rng_int(&r, 0, i), t = cells[i];
        cells[i] = cells[j];
        cells[j] = t;
    }
    int colors[N_COLORS];
    for (int i = 0; i < N_COLORS; i++) colors[i] = i;
    for (int i = N_COLORS - 1; i > 0; i--) {
        int j = rng_int(&r, 0, i), t = colors[i];
        colors[i] = colors[j];
        colors[j] = t;
    }
    for (int i = 0; i < s->n; i++) {
        MglSceneObject* o = &s->obj[i];
        int c = cells[i], cx = c % gx, cy = c / gx;
        o->cell_x0 = cx * width / gx + 4;
        o->cell_x1 = (cx + 1) * width / gx - 4;
        o->cell_y0 = cy * height / gy + 4;
        o->cell_y1 = (cy + 1) * height / gy - 4;
        int room =
            o->cell_x1 - o->cell_x0 < o->cell_y1 - o->cell_y0 ? o->cell_x1 - o->cell_x0 : o->cell_y1 - o->cell_y0;
        int smax = room - 16 < 120 ? room - 16 : 120;
        o->shape = (MglShape)rng_int(&r, 0, MGL_SHAPE_COUNT - 1);
        o->color = colors[i];
        o->size = rng_int(&r, 44 < smax ? 44 : smax, smax);
        o->digit = rng_unit(&r) < 0.5 ? rng_int(&r, 0, 9) : -1;
        double rad = o->size / 2.0;
        o->x0 = o->cell_x0 + rad + rng_unit(&r) * (o->cell_x1 - o->cell_x0 - 2 * rad);
        o->y0 = o->cell_y0 + rad + rng_unit(&r) * (o->cell_y1 - o->cell_y0 - 2 * rad);
        double speed = 0.4 + rng_unit(&r) * 1.2, ang = rng_unit(&r) * 6.283185307179586;
        o->vx = speed * cos(ang);
        o->vy = speed * sin(ang);
    }
}

/* position along [lo, hi] bouncing off both ends (a triangle wave) */
static double bounce(double p0, double v, int t, double lo, double hi) {
    double len = hi - lo;
    if (len <= 0) return lo;
    double p = fmod(p0 - lo + v * t, 2 * len);
    if (p < 0) p += 2 * len;
    return lo + (p <= len ? p : 2 * len - p);
}

static bool inside(const MglSceneObject* o, double x, double y) {
    double r = o->size / 2.0, dx = x - o->cx, dy = y - o->cy;
    switch (o->shape) {
    case MGL_SHAPE_CIRCLE: return dx * dx + dy * dy <= r * r;
    case MGL_SHAPE_SQUARE: return fabs(dx) <= r * 0.86 && fabs(dy) <= r * 0.86;
    case MGL_SHAPE_TRIANGLE: {
        /* apex up, base at +0.8r */
        if (dy > r * 0.8 || dy < -r) return false;
        double half = (dy + r) / (1.8 * r) * r * 0.98;
        return fabs(dx) <= half;
    }
    case MGL_SHAPE_STAR: {
        double ang = atan2(dy, dx) + 1.5707963267948966, d = sqrt(dx * dx + dy * dy);
        double seg = fmod(ang + 62.83185307179586, 1.2566370614359172) / 1.2566370614359172; /* 0..1 per point */
        double f = fabs(seg - 0.5) * 2.0; /* 1 at a tip, 0 between tips */
        return d <= r * (0.45 + 0.55 * f);
    }
    default: return false;
    }
}

void mgl_scene_render(MglScene* s, int t, uint8_t* px, int stride, int bpp, bool bgr) {
    const int W = s->width, H = s->height;
    for (int y = 0; y < H; y++) {
        uint8_t* row = px + (size_t)y * stride;
        double a = H > 1 ? (double)y / (H - 1) : 0;
        uint8_t c[3];
        for (int k = 0; k < 3; k++) c[k] = (uint8_t)(s->bg[0][k] * (1 - a) + s->bg[1][k] * a + 0.5);
        for (int x = 0; x < W; x++) {
            uint8_t* p = row + (size_t)x * bpp;
            p[0] = bgr ? c[2] : c[0];
            p[1] = c[1];
            p[2] = bgr ? c[0] : c[2];
            if (bpp == 4) p[3] = 255;
        }
    }
    for (int i = 0; i < s->n; i++) {
        MglSceneObject* o = &s->obj[i];
        double r = o->size / 2.0;
        o->cx = (int)lround(bounce(o->x0, o->vx, t, o->cell_x0 + r, o->cell_x1 - r));
        o->cy = (int)lround(bounce(o->y0, o->vy, t, o->cell_y0 + r, o->cell_y1 - r));
        int x0 = o->cx - (int)r - 1, x1 = o->cx + (int)r + 2, y0 = o->cy - (int)r - 1, y1 = o->cy + (int)r + 2;
        if (x0 < 0) x0 = 0;
        if (y0 < 0) y0 = 0;
        if (x1 > W) x1 = W;
        if (y1 > H) y1 = H;
        int bx0 = W, by0 = H, bx1 = -1, by1 = -1;
        const uint8_t* rgb = k_colors[o->color].rgb;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                if (!inside(o, x + 0.5, y + 0.5)) continue;
                uint8_t* p = px + (size_t)y * stride + (size_t)x * bpp;
                p[0] = bgr ? rgb[2] : rgb[0];
                p[1] = rgb[1];
                p[2] = bgr ? rgb[0] : rgb[2];
                if (x < bx0) bx0 = x;
                if (x > bx1) bx1 = x;
                if (y < by0) by0 = y;
                if (y > by1) by1 = y;
            }
        o->box[0] = bx0;
        o->box[1] = by0;
        o->box[2] = bx1 + 1;
        o->box[3] = by1 + 1;
        if (o->digit >= 0) {
            /* a 3x5 glyph at 2 px per cell (6x10 px): legible at 768 px, a blur at 336 px */
            int lum = (rgb[0] * 299 + rgb[1] * 587 + rgb[2] * 114) / 1000;
            uint8_t ink = lum > 140 ? 0 : 255;
            int gx0 = o->cx - 3, gy0 = o->cy - 5 + (o->shape == MGL_SHAPE_TRIANGLE ? (int)(r * 0.3) : 0);
            for (int gy = 0; gy < 5; gy++)
                for (int gx = 0; gx < 3; gx++) {
                    if (!(k_digits[o->digit][gy] & (4 >> gx))) continue;
                    for (int yy = 0; yy < 2; yy++)
                        for (int xx = 0; xx < 2; xx++) {
                            int x = gx0 + gx * 2 + xx, y = gy0 + gy * 2 + yy;
                            if (x < 0 || y < 0 || x >= W || y >= H) continue;
                            uint8_t* p = px + (size_t)y * stride + (size_t)x * bpp;
                            p[0] = p[1] = p[2] = ink;
                        }
                }
        }
    }
}

const char* mgl_scene_position(const MglScene* s, int cx, int cy) {
    static const char* const names[3][3] = {
        {"top left", "top", "top right"}, {"left", "center", "right"}, {"bottom left", "bottom", "bottom right"}};
    int col = cx * 3 / s->width, row = cy * 3 / s->height;
    if (col > 2) col = 2;
    if (row > 2) row = 2;
    if (col < 0) col = 0;
    if (row < 0) row = 0;
    return names[row][col];
}

static const char* position_phrase(const char* pos) {
    if (!strcmp(pos, "left") || !strcmp(pos, "right")) return "on the";
    if (!strcmp(pos, "center")) return "in the";
    return "at the";
}

/* objects in reading order: by row third, then left to right */
static void reading_order(const MglScene* s, int* order) {
    for (int i = 0; i < s->n; i++) order[i] = i;
    for (int i = 1; i < s->n; i++)
        for (int j = i; j > 0; j--) {
            const MglSceneObject *a = &s->obj[order[j - 1]], *b = &s->obj[order[j]];
            int ra = a->cy * 3 / s->height, rb = b->cy * 3 / s->height;
            if (ra > rb || (ra == rb && a->cx > b->cx)) {
                int t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        }
}

void mgl_scene_caption(const MglScene* s, char* out, size_t cap) {
    int order[MGL_SCENE_MAX_OBJECTS];
    reading_order(s, order);
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < s->n && k < cap; i++) {
        const MglSceneObject* o = &s->obj[order[i]];
        const char* pos = mgl_scene_position(s, o->cx, o->cy);
        const char* sep = i == 0 ? "" : (i == s->n - 1 ? " and " : ", ");
        k += (size_t)snprintf(out + k, cap - k, "%sa %s %s %s %s", sep, mgl_scene_color_name(o->color),
                              mgl_scene_shape_name(o->shape), position_phrase(pos), pos);
    }
}

static void append(char** buf, size_t* len, size_t* cap, const char* fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < *cap - *len) {
            *len += (size_t)n;
            return;
        }
        *cap = *cap * 2 + (size_t)(n > 0 ? n : 256);
        *buf = realloc(*buf, *cap);
    }
}

char* mgl_scene_truth_json(const MglScene* s, int64_t frame, int64_t pts) {
    size_t cap = 2048, len = 0;
    char* b = malloc(cap);
    char caption[1024];
    int order[MGL_SCENE_MAX_OBJECTS];
    b[0] = 0;
    reading_order(s, order);
    mgl_scene_caption(s, caption, sizeof caption);
    append(&b, &len, &cap,
           "{\"frame\": %lld, \"pts\": %lld, \"width\": %d, \"height\": %d, \"scene\": %d, \"objects\": [",
           (long long)frame, (long long)pts, s->width, s->height, s->index);
    for (int i = 0; i < s->n; i++) {
        const MglSceneObject* o = &s->obj[order[i]];
        append(&b, &len, &cap,
               "%s{\"shape\": \"%s\", \"color\": \"%s\", \"label\": \"%s\", \"box\": [%d, %d, %d, %d], "
               "\"position\": \"%s\", \"digit\": ",
               i ? ", " : "", mgl_scene_shape_name(o->shape), mgl_scene_color_name(o->color),
               mgl_scene_color_name(o->color), o->box[0], o->box[1], o->box[2], o->box[3],
               mgl_scene_position(s, o->cx, o->cy));
        if (o->digit >= 0)
            append(&b, &len, &cap, "%d}", o->digit);
        else
            append(&b, &len, &cap, "null}");
    }
    append(&b, &len, &cap, "], \"caption\": \"%s\", \"qa\": [{\"q\": \"How many objects are there?\", \"a\": \"%d\"}",
           caption, s->n);
    for (int i = 0; i < s->n; i++) {
        const MglSceneObject* o = &s->obj[order[i]];
        const char* cn = mgl_scene_color_name(o->color);
        const char* sn = mgl_scene_shape_name(o->shape);
        int same_shape = 0;
        for (int j = 0; j < s->n; j++) same_shape += s->obj[j].shape == o->shape;
        if (same_shape == 1) append(&b, &len, &cap, ", {\"q\": \"What colour is the %s?\", \"a\": \"%s\"}", sn, cn);
        append(&b, &len, &cap, ", {\"q\": \"What shape is the %s object?\", \"a\": \"%s\"}", cn, sn);
        append(&b, &len, &cap, ", {\"q\": \"Where is the %s %s?\", \"a\": \"%s\"}", cn, sn,
               mgl_scene_position(s, o->cx, o->cy));
        if (o->digit >= 0)
            append(&b, &len, &cap, ", {\"q\": \"What digit is on the %s %s?\", \"a\": \"%d\", \"digit\": true}", cn, sn,
                   o->digit);
    }
    append(&b, &len, &cap, "]}");
    return b;
}
