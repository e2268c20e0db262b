/* gstmgllavablob.c: coloured-blob detector core (see gstmgllavablob.h).
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gstmgllavablob.h"

/* Pixel classes: 0 background, 1..360 chromatic (hue + 1), then achromatic. */
#define CLS_BG 0
#define CLS_HUE_MAX 360
#define CLS_WHITE 1000
#define CLS_GREY 1001
#define CLS_BLACK 1002

typedef struct {
    gint x0, x1; /* [x0, x1) on row y */
    gint y;
    guint16 cls; /* class of the run's middle pixel */
    guint32 sum_s;
    gfloat sum_cos, sum_sin;
} GstMgllavaBlobRun;

typedef struct {
    gint x1, y1, x2, y2;
    guint area;
    guint16 cls;
    guint64 sum_s;
    gdouble sum_cos, sum_sin;
} GstMgllavaBlobComp;

struct _GstMgllavaBlobDetector {
    GstMgllavaBlobParams p;
    gint width, height, y;

    guint16* cls; /* one row */
    guint8* sat;  /* one row */
    gint row_cap;

    GstMgllavaBlobRun* runs;
    guint32* parent;
    guint n_runs, runs_cap;
    guint prev_start, prev_end; /* runs of the previous row */

    gint32* comp_of; /* per run: component index or -1 */
    guint comp_of_cap;
    GArray* comps; /* GstMgllavaBlobComp */
    GArray* blobs; /* GstMgllavaBlob */
};

static gfloat hue_cos[360], hue_sin[360];
static guint32 recip[256]; /* round (65536 / i) */

static gpointer gst_mgllava_blob_init_tables(gpointer data) {
    gint i;

    for (i = 0; i < 360; i++) {
        hue_cos[i] = cos(i * G_PI / 180.0);
        hue_sin[i] = sin(i * G_PI / 180.0);
    }
    recip[0] = 0;
    for (i = 1; i < 256; i++) recip[i] = (65536 + i / 2) / i;
    return NULL;
}

const gchar* gst_mgllava_blob_hue_name(gdouble hue) {
    hue = fmod(hue, 360.0);
    if (hue < 0) hue += 360.0;
    if (hue < 15.0 || hue >= 345.0) return "red";
    if (hue < 45.0) return "orange";
    if (hue < 70.0) return "yellow";
    if (hue < 160.0) return "green";
    if (hue < 200.0) return "cyan";
    if (hue < 260.0) return "blue";
    if (hue < 290.0) return "purple";
    return "magenta";
}

GstMgllavaBlobDetector* gst_mgllava_blob_detector_new(void) {
    static GOnce once = G_ONCE_INIT;
    GstMgllavaBlobDetector* d;

    g_once(&once, gst_mgllava_blob_init_tables, NULL);

    d = g_new0(GstMgllavaBlobDetector, 1);
    d->comps = g_array_new(FALSE, FALSE, sizeof(GstMgllavaBlobComp));
    d->blobs = g_array_new(FALSE, FALSE, sizeof(GstMgllavaBlob));
    return d;
}

void gst_mgllava_blob_detector_free(GstMgllavaBlobDetector* d) {
    if (d == NULL) return;
    g_free(d->cls);
    g_free(d->sat);
    g_free(d->runs);
    g_free(d->parent);
    g_free(d->comp_of);
    g_array_free(d->comps, TRUE);
    g_array_free(d->blobs, TRUE);
    g_free(d);
}

void gst_mgllava_blob_detector_begin(GstMgllavaBlobDetector* d, const GstMgllavaBlobParams* p, gint width,
                                     gint height) {
    g_return_if_fail(d != NULL && p != NULL);

    d->p = *p;
    d->p.hue_tolerance = MIN(d->p.hue_tolerance, 180);
    d->width = MAX(width, 0);
    d->height = MAX(height, 0);
    d->y = 0;
    d->n_runs = 0;
    d->prev_start = d->prev_end = 0;
    if (d->width > d->row_cap) {
        d->row_cap = d->width;
        d->cls = g_renew(guint16, d->cls, d->row_cap);
        d->sat = g_renew(guint8, d->sat, d->row_cap);
    }
}

static inline gboolean gst_mgllava_blob_cls_compatible(guint a, guint b, guint tol) {
    if (a <= CLS_HUE_MAX && b <= CLS_HUE_MAX) {
        guint diff = a > b ? a - b : b - a;

        if (diff > 180) diff = 360 - diff;
        return diff <= tol;
    }
    return a == b;
}

static inline guint32 gst_mgllava_blob_find(guint32* parent, guint32 i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]]; /* path halving */
        i = parent[i];
    }
    return i;
}

static inline void gst_mgllava_blob_union(guint32* parent, guint32 a, guint32 b) {
    a = gst_mgllava_blob_find(parent, a);
    b = gst_mgllava_blob_find(parent, b);
    if (a < b)
        parent[b] = a;
    else if (b < a)
        parent[a] = b;
}

static void gst_mgllava_blob_classify_row(GstMgllavaBlobDetector* d, const guint8* row, gint pstride, gint ro, gint go,
                                          gint bo) {
    const guint smin = d->p.saturation_min, vmin = d->p.value_min;
    const guint white = d->p.white_value_min;
    const gboolean achromatic = d->p.achromatic;
    guint16* cls = d->cls;
    guint8* sat = d->sat;
    gint x, w = d->width;

    for (x = 0; x < w; x++, row += pstride) {
        gint r = row[ro], g = row[go], b = row[bo];
        gint mx = MAX(r, MAX(g, b)), mn = MIN(r, MIN(g, b));
        gint dlt = mx - mn;
        gint h;

        /* S >= smin/255  <=>  dlt * 255 >= smin * mx (no division) */
        if ((guint)mx < vmin || (guint)dlt * 255 < smin * (guint)mx || dlt == 0) {
            if (!achromatic) {
                cls[x] = CLS_BG;
            } else {
                cls[x] = (guint)mx < vmin ? CLS_BLACK : (guint)mx >= white ? CLS_WHITE : CLS_GREY;
                sat[x] = (dlt * 255 * recip[mx]) >> 16;
            }
            continue;
        }

        if (mx == r)
            h = (60 * (g - b) * (gint)recip[dlt] + 32768) >> 16;
        else if (mx == g)
            h = 120 + ((60 * (b - r) * (gint)recip[dlt] + 32768) >> 16);
        else
            h = 240 + ((60 * (r - g) * (gint)recip[dlt] + 32768) >> 16);
        if (h < 0)
            h += 360;
        else if (h >= 360)
            h -= 360;

        cls[x] = (guint16)(h + 1);
        sat[x] = (dlt * 255 * recip[mx]) >> 16;
    }
}

void gst_mgllava_blob_detector_add_row(GstMgllavaBlobDetector* d, const guint8* row, gint pstride, gint ro, gint go,
                                       gint bo) {
    const guint tol = d->p.hue_tolerance;
    const guint16* cls = d->cls;
    const guint8* sat = d->sat;
    guint row_start = d->n_runs, i, j;
    gint x = 0, w = d->width;

    g_return_if_fail(d->y < d->height);

    gst_mgllava_blob_classify_row(d, row, pstride, ro, go, bo);

    /* runs of compatible foreground pixels */
    while (x < w) {
        GstMgllavaBlobRun* run;
        guint c0;
        guint32 ss = 0;
        gfloat sc = 0.f, sn = 0.f;
        gint x0;

        if (cls[x] == CLS_BG) {
            x++;
            continue;
        }

        c0 = cls[x];
        x0 = x;
        if (c0 <= CLS_HUE_MAX) {
            /* each pixel against its left neighbour: a run follows slow hue
             * changes (shading) and stops at an edge between two colours */
            do {
                guint h = cls[x] - 1;

                ss += sat[x];
                sc += hue_cos[h];
                sn += hue_sin[h];
                x++;
            } while (x < w && cls[x] != CLS_BG && gst_mgllava_blob_cls_compatible(cls[x], cls[x - 1], tol));
            /* the middle pixel stands for the run: edge pixels are often mixed
             * with the background (anti-aliasing, chroma subsampling) */
            c0 = cls[x0 + (x - x0 - 1) / 2];
        } else {
            while (x < w && cls[x] == c0) {
                ss += sat[x];
                x++;
            }
        }

        if (d->n_runs == d->runs_cap) {
            d->runs_cap = MAX(1024, d->runs_cap * 2);
            d->runs = g_renew(GstMgllavaBlobRun, d->runs, d->runs_cap);
            d->parent = g_renew(guint32, d->parent, d->runs_cap);
        }
        run = &d->runs[d->n_runs];
        run->x0 = x0;
        run->x1 = x;
        run->y = d->y;
        run->cls = c0;
        run->sum_s = ss;
        run->sum_cos = sc;
        run->sum_sin = sn;
        d->parent[d->n_runs] = d->n_runs;
        d->n_runs++;
    }

    /* 8-connectivity with the previous row: [x0-1, x1] overlaps */
    j = d->prev_start;
    for (i = row_start; i < d->n_runs; i++) {
        const GstMgllavaBlobRun* r = &d->runs[i];
        guint k;

        while (j < d->prev_end && d->runs[j].x1 < r->x0) j++;
        for (k = j; k < d->prev_end && d->runs[k].x0 <= r->x1; k++) {
            if (gst_mgllava_blob_cls_compatible(d->runs[k].cls, r->cls, tol)) gst_mgllava_blob_union(d->parent, k, i);
        }
    }

    d->prev_start = row_start;
    d->prev_end = d->n_runs;
    d->y++;
}

static gint gst_mgllava_blob_compare(gconstpointer a, gconstpointer b) {
    const GstMgllavaBlob *ba = a, *bb = b;

    if (ba->confidence != bb->confidence) return ba->confidence < bb->confidence ? 1 : -1;
    if (ba->area != bb->area) return ba->area < bb->area ? 1 : -1;
    if (ba->y1 != bb->y1) return ba->y1 < bb->y1 ? -1 : 1;
    return (ba->x1 > bb->x1) - (ba->x1 < bb->x1);
}

guint gst_mgllava_blob_detector_end(GstMgllavaBlobDetector* d, GArray* out) {
    guint i, n;

    g_return_val_if_fail(d != NULL && out != NULL, 0);

    if (d->n_runs > d->comp_of_cap) {
        d->comp_of_cap = d->runs_cap;
        d->comp_of = g_renew(gint32, d->comp_of, d->comp_of_cap);
    }
    g_array_set_size(d->comps, 0);
    g_array_set_size(d->blobs, 0);

    /* roots come first in index order: a root is the lowest index of its set */
    for (i = 0; i < d->n_runs; i++) {
        const GstMgllavaBlobRun* r = &d->runs[i];
        guint32 root = gst_mgllava_blob_find(d->parent, i);
        GstMgllavaBlobComp* c;

        if (root == i) {
            GstMgllavaBlobComp nc = {r->x0, r->y, r->x1, r->y + 1, 0, r->cls, 0, 0.0, 0.0};

            d->comp_of[i] = d->comps->len;
            g_array_append_val(d->comps, nc);
        } else {
            d->comp_of[i] = d->comp_of[root];
        }
        c = &g_array_index(d->comps, GstMgllavaBlobComp, d->comp_of[i]);
        c->x1 = MIN(c->x1, r->x0);
        c->x2 = MAX(c->x2, r->x1);
        c->y2 = MAX(c->y2, r->y + 1);
        c->area += r->x1 - r->x0;
        c->sum_s += r->sum_s;
        c->sum_cos += r->sum_cos;
        c->sum_sin += r->sum_sin;
    }

    for (i = 0; i < d->comps->len; i++) {
        const GstMgllavaBlobComp* c = &g_array_index(d->comps, GstMgllavaBlobComp, i);
        gdouble size_term, sat_term;
        GstMgllavaBlob b;

        if (c->area < MAX(d->p.min_area, 1)) continue;

        b.x1 = c->x1;
        b.y1 = c->y1;
        b.x2 = c->x2;
        b.y2 = c->y2;
        b.area = c->area;
        b.saturation = (gfloat)(c->sum_s / (255.0 * c->area));
        /* 0.63 at 20x20 pixels, 0.98 at 40x40 */
        size_term = 1.0 - exp(-(gdouble)c->area / 400.0);
        if (c->cls <= CLS_HUE_MAX) {
            gdouble hue = atan2(c->sum_sin, c->sum_cos) * 180.0 / G_PI;

            if (hue < 0) hue += 360.0;
            b.hue = hue;
            b.label = gst_mgllava_blob_hue_name(hue);
            sat_term = b.saturation;
        } else {
            b.hue = -1.f;
            b.label = c->cls == CLS_WHITE ? "white" : c->cls == CLS_BLACK ? "black" : "grey";
            sat_term = 0.5;
        }
        b.confidence = (gfloat)(0.5 * size_term + 0.5 * sat_term);
        g_array_append_val(d->blobs, b);
    }

    g_array_sort(d->blobs, gst_mgllava_blob_compare);
    n = d->blobs->len;
    if (d->p.max_objects > 0 && n > d->p.max_objects) n = d->p.max_objects;
    g_array_append_vals(out, d->blobs->data, n);
    return n;
}
