/* scene.c: coloured circles, squares and triangles on varied backgrounds.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <math.h>

#include "scene.h"

typedef struct {
    const gchar* name;
    gdouble hue; /* centre of the colour's hue range */
} MglSceneColour;

static const MglSceneColour colours[] = {
    {"red", 0},    {"orange", 30}, {"yellow", 57},  {"green", 120},
    {"cyan", 180}, {"blue", 230},  {"purple", 275}, {"magenta", 315},
};

static void hsv_to_rgb(gdouble h, gdouble s, gdouble v, guint8 rgb[3]) {
    gdouble c = v * s, hp = fmod(h < 0 ? h + 360 : h, 360.0) / 60.0;
    gdouble x = c * (1 - fabs(fmod(hp, 2.0) - 1)), m = v - c;
    gdouble r = 0, g = 0, b = 0;

    if (hp < 1) {
        r = c;
        g = x;
    } else if (hp < 2) {
        r = x;
        g = c;
    } else if (hp < 3) {
        g = c;
        b = x;
    } else if (hp < 4) {
        g = x;
        b = c;
    } else if (hp < 5) {
        r = x;
        b = c;
    } else {
        r = c;
        b = x;
    }
    rgb[0] = (guint8)lround((r + m) * 255);
    rgb[1] = (guint8)lround((g + m) * 255);
    rgb[2] = (guint8)lround((b + m) * 255);
}

static inline guint8 clamp8(gint v) { return (guint8)CLAMP(v, 0, 255); }

static void draw_background(GRand* rand, guint kind, guint8* rgb, gint w, gint h, gint stride) {
    gint x, y;
    gint base = g_rand_int_range(rand, 70, 220);
    gint other = g_rand_int_range(rand, 20, 240);
    gint cell = g_rand_int_range(rand, 12, 48);

    for (y = 0; y < h; y++) {
        guint8* p = rgb + (gsize)y * stride;

        for (x = 0; x < w; x++, p += 3) {
            gint r, g, b, n;

            switch (kind) {
            case 0: /* flat grey */ r = g = b = base; break;
            case 1: /* grey gradient, dark to light */ r = g = b = 20 + (215 * (x + y)) / (w + h); break;
            case 2: /* grey noise with a little colour jitter */
                n = g_rand_int_range(rand, -30, 31);
                r = base + n + g_rand_int_range(rand, -6, 7);
                g = base + n + g_rand_int_range(rand, -6, 7);
                b = base + n + g_rand_int_range(rand, -6, 7);
                break;
            case 3: /* grey checkerboard */ r = g = b = (((x / cell) + (y / cell)) & 1) ? base : other; break;
            case 4: /* dark, noisy (saturated but below value-min) */
                r = g_rand_int_range(rand, 0, 45);
                g = g_rand_int_range(rand, 0, 45);
                b = g_rand_int_range(rand, 0, 45);
                break;
            default: /* desaturated beige with noise */
                n = g_rand_int_range(rand, -12, 13);
                r = 205 + n;
                g = 192 + n;
                b = 168 + n;
                break;
            }
            p[0] = clamp8(r);
            p[1] = clamp8(g);
            p[2] = clamp8(b);
        }
    }
}

static gboolean overlaps(GArray* objects, guint first, gint x1, gint y1, gint x2, gint y2, gint margin) {
    guint i;

    for (i = first; i < objects->len; i++) {
        const MglSceneObject* o = &g_array_index(objects, MglSceneObject, i);

        if (x1 < o->x2 + margin && o->x1 < x2 + margin && y1 < o->y2 + margin && o->y1 < y2 + margin) return TRUE;
    }
    return FALSE;
}

static gdouble edge(gdouble ax, gdouble ay, gdouble bx, gdouble by, gdouble px, gdouble py) {
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax);
}

void mgl_scene_shapes(guint seed, guint8* rgb, gint width, gint height, gint stride, GArray* objects) {
    GRand* rand = g_rand_new_with_seed(seed);
    guint first = objects->len;
    gint n, i;

    draw_background(rand, seed % 6, rgb, width, height, stride);

    n = g_rand_int_range(rand, 3, 9);
    for (i = 0; i < n; i++) {
        const MglSceneColour* c = &colours[g_rand_int_range(rand, 0, G_N_ELEMENTS(colours))];
        gint shape = g_rand_int_range(rand, 0, 3);
        gint size = g_rand_int_range(rand, 14, 121);
        gint tries, x0 = 0, y0 = 0, x, y;
        guint8 col[3];
        MglSceneObject o = {G_MAXINT, G_MAXINT, -1, -1, c->name, NULL};
        gdouble cx, cy, r;
        gdouble tx[3], ty[3];

        for (tries = 0; tries < 200; tries++) {
            x0 = g_rand_int_range(rand, 0, width - size + 1);
            y0 = g_rand_int_range(rand, 0, height - size + 1);
            if (!overlaps(objects, first, x0, y0, x0 + size, y0 + size, 3)) break;
        }
        if (tries == 200) continue;

        hsv_to_rgb(c->hue + g_rand_double_range(rand, -6, 6), g_rand_double_range(rand, 0.6, 1.0),
                   g_rand_double_range(rand, 0.55, 1.0), col);

        cx = x0 + size / 2.0;
        cy = y0 + size / 2.0;
        r = size / 2.0;
        /* an upright or tilted triangle inside the square */
        tx[0] = x0 + g_rand_double_range(rand, 0, size);
        ty[0] = y0;
        tx[1] = x0;
        ty[1] = y0 + size;
        tx[2] = x0 + size;
        ty[2] = y0 + size - g_rand_double_range(rand, 0, size / 3.0);

        for (y = y0; y < y0 + size; y++) {
            guint8* p = rgb + (gsize)y * stride + (gsize)x0 * 3;

            for (x = x0; x < x0 + size; x++, p += 3) {
                gdouble px = x + 0.5, py = y + 0.5;
                gboolean in;

                if (shape == 0) {
                    in = (px - cx) * (px - cx) + (py - cy) * (py - cy) <= r * r;
                } else if (shape == 1) {
                    in = TRUE;
                } else {
                    gdouble e0 = edge(tx[0], ty[0], tx[1], ty[1], px, py);
                    gdouble e1 = edge(tx[1], ty[1], tx[2], ty[2], px, py);
                    gdouble e2 = edge(tx[2], ty[2], tx[0], ty[0], px, py);

                    in = (e0 >= 0 && e1 >= 0 && e2 >= 0) || (e0 <= 0 && e1 <= 0 && e2 <= 0);
                }
                if (!in) continue;
                p[0] = clamp8(col[0] + g_rand_int_range(rand, -4, 5));
                p[1] = clamp8(col[1] + g_rand_int_range(rand, -4, 5));
                p[2] = clamp8(col[2] + g_rand_int_range(rand, -4, 5));
                o.x1 = MIN(o.x1, x);
                o.y1 = MIN(o.y1, y);
                o.x2 = MAX(o.x2, x + 1);
                o.y2 = MAX(o.y2, y + 1);
            }
        }
        o.shape = shape == 0 ? "circle" : shape == 1 ? "square" : "triangle";
        if (o.x2 > o.x1) g_array_append_val(objects, o);
    }
    g_rand_free(rand);
}
