/* fuzz_boxes.c: the detection-file reader behind mgllavaboxes
 * (detectors/mglboxesfile.c): the MG-LLaVA offline-detector list, the video
 * record and JSON Lines, by frame and by PTS. Every box it returns must be
 * finite and within the reader's clamping rules; nothing may crash or leak. */
#include "fuzz-common.h"
#include "mglboxesfile.h"

#include <math.h>
#include <stdlib.h>

static void walk(const char* path, MglBoxesMatch match) {
    GPtrArray* warnings = g_ptr_array_new_with_free_func(g_free);
    GError* err = NULL;
    MglBoxesFile* f = mgl_boxes_file_open(path, match, warnings, &err);
    if (!f) {
        g_clear_error(&err);
        g_ptr_array_unref(warnings);
        return;
    }
    GArray* out = g_array_new(FALSE, FALSE, sizeof(MglDetBox));
    for (int pass = 0; pass < 2; pass++) {
        for (gint64 k = 0; k < 40; k++) {
            gint64 lo = match == MGL_BOXES_MATCH_PTS ? k * 33333333 : k;
            gint64 hi = match == MGL_BOXES_MATCH_PTS ? lo + 33333333 : k;
            g_array_set_size(out, 0);
            if (!mgl_boxes_file_lookup(f, lo, hi, out, warnings, &err)) {
                g_clear_error(&err);
                break;
            }
            for (guint i = 0; i < out->len; i++) {
                const MglDetBox* b = &g_array_index(out, MglDetBox, i);
                if (!isfinite(b->x1) || !isfinite(b->y1) || !isfinite(b->x2) || !isfinite(b->y2) ||
                    !isfinite(b->score))
                    abort(); /* a non-finite box must never reach the engine */
            }
        }
        if (!mgl_boxes_file_rewind(f, &err)) {
            g_clear_error(&err);
            break;
        }
    }
    g_array_unref(out);
    mgl_boxes_file_free(f);
    g_ptr_array_unref(warnings);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fuzz_write_input(data, size);
    walk(path, MGL_BOXES_MATCH_FRAME);
    walk(path, MGL_BOXES_MATCH_PTS);
    return 0;
}
