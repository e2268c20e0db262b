/* fuzz_boxes.c: the detections reader behind mgllavaboxes and
 * `mgllava run --boxes` (common/mgl-detections.c): the MG-LLaVA
 * offline-detector list, the video record and JSON Lines, by frame and by
 * PTS, and the same bytes as a single record. Every box it returns must be
 * finite and carry a label that is valid UTF-8; nothing may crash or leak. */
#include "fuzz-common.h"
#include "mgl-detections.h"

#include <math.h>
#include <stdlib.h>

static void walk(const char* path, MglDetectionsMatch match) {
    GPtrArray* warnings = g_ptr_array_new_with_free_func(g_free);
    GError* err = NULL;
    MglDetectionsFile* f = mgl_detections_file_open(path, match, warnings, &err);
    if (!f) {
        g_clear_error(&err);
        g_ptr_array_unref(warnings);
        return;
    }
    GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
    for (int pass = 0; pass < 2; pass++) {
        for (gint64 k = 0; k < 40; k++) {
            gint64 lo = match == MGL_DETECTIONS_MATCH_PTS ? k * 33333333 : k;
            gint64 hi = match == MGL_DETECTIONS_MATCH_PTS ? lo + 33333333 : k;
            g_array_set_size(out, 0);
            if (!mgl_detections_file_lookup(f, lo, hi, out, warnings, &err)) {
                g_clear_error(&err);
                break;
            }
            for (guint i = 0; i < out->len; i++) {
                const MglDetectionsBox* b = &g_array_index(out, MglDetectionsBox, i);
                if (!isfinite(b->x1) || !isfinite(b->y1) || !isfinite(b->x2) || !isfinite(b->y2) ||
                    !isfinite(b->score) || !b->label)
                    abort(); /* a non-finite box must never reach the engine */
                if (!g_utf8_validate(b->label, -1, NULL))
                    abort(); /* nor a label that is not UTF-8 (ROI metas, mgllavajson) */
            }
        }
        if (!mgl_detections_file_rewind(f, &err)) {
            g_clear_error(&err);
            break;
        }
    }
    g_array_unref(out);
    mgl_detections_file_free(f);
    g_ptr_array_unref(warnings);
}

/* the `mgllava run --boxes` form: one record (or a list of one) */
static void record(const char* path) {
    GError* err = NULL;
    MglDetections* d = mgl_detections_load_record(path, 1u << 20, NULL, &err);
    if (!d) {
        g_clear_error(&err);
        return;
    }
    for (guint i = 0; i < d->boxes->len; i++) {
        const MglDetectionsBox* b = &g_array_index(d->boxes, MglDetectionsBox, i);
        if (!isfinite(b->x1) || !isfinite(b->y1) || !isfinite(b->x2) || !isfinite(b->y2) || !isfinite(b->score) ||
            !b->label || !g_utf8_validate(b->label, -1, NULL))
            abort();
    }
    mgl_detections_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fuzz_write_input(data, size);
    walk(path, MGL_DETECTIONS_MATCH_FRAME);
    walk(path, MGL_DETECTIONS_MATCH_PTS);
    record(path);
    return 0;
}
