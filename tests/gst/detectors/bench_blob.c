/* bench_blob.c: mgllavablobdetect frames per second on rendered 640x480
 * scenes (run by bench_blob.sh, pinned to one core).
 *
 * Usage: bench-blob [WIDTH HEIGHT SECONDS]
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>

#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include "scene.h"

static const struct {
    guint seed;
    const gchar* what;
} scenes[] = {
    {0, "flat grey background"},  {2, "grey noise background"},           {3, "checkerboard background"},
    {4, "dark noise background"}, {G_MAXUINT, "random colour per pixel"}, /* worst case: ~10^5 runs */
};

int main(int argc, char** argv) {
    gint w = argc > 2 ? atoi(argv[1]) : 640;
    gint h = argc > 2 ? atoi(argv[2]) : 480;
    gdouble seconds = argc > 3 ? g_ascii_strtod(argv[3], NULL) : 2.0;
    const gchar* formats[] = {"RGBx", "RGB", "I420"};
    guint s, f;

    gst_init(&argc, &argv);
    if (w < 16 || h < 16) {
        g_printerr("usage: %s [WIDTH HEIGHT SECONDS]\n", argv[0]);
        return 2;
    }

    for (f = 0; f < G_N_ELEMENTS(formats); f++) {
        for (s = 0; s < G_N_ELEMENTS(scenes); s++) {
            GstHarness *conv, *det;
            GArray* objects = g_array_new(FALSE, FALSE, sizeof(MglSceneObject));
            GstBuffer* rgb = gst_buffer_new_allocate(NULL, (gsize)w * h * 3, NULL);
            GstBuffer* frame;
            GstMapInfo map;
            gchar* caps;
            gint64 t0, t1;
            guint n = 0, rois = 0;

            gst_buffer_map(rgb, &map, GST_MAP_WRITE);
            if (scenes[s].seed != G_MAXUINT) {
                mgl_scene_shapes(scenes[s].seed, map.data, w, h, w * 3, objects);
            } else {
                GRand* rand = g_rand_new_with_seed(1);
                gsize i;

                for (i = 0; i < map.size; i++) map.data[i] = g_rand_int_range(rand, 0, 256);
                g_rand_free(rand);
            }
            gst_buffer_unmap(rgb, &map);

            /* convert once, outside the timed loop */
            caps = g_strdup_printf("video/x-raw,format=%s", formats[f]);
            conv = gst_harness_new_parse("videoconvert");
            gst_harness_set_src_caps_str(conv, "video/x-raw,format=RGB,width=640,"
                                               "height=480,framerate=30/1");
            g_free(caps);
            caps = g_strdup_printf("video/x-raw,format=%s,width=%d,height=%d,"
                                   "framerate=30/1",
                                   formats[f], w, h);
            gst_harness_set_caps_str(conv,
                                     "video/x-raw,format=RGB,width=640,"
                                     "height=480,framerate=30/1",
                                     caps);
            frame = gst_harness_push_and_pull(conv, rgb);

            det = gst_harness_new_parse("mgllavablobdetect");
            gst_harness_set_src_caps_str(det, caps);

            t0 = g_get_monotonic_time();
            do {
                GstBuffer* out = gst_harness_push_and_pull(det, gst_buffer_ref(frame));
                gpointer state = NULL;

                while (gst_buffer_iterate_meta_filtered(out, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
                    rois++;
                gst_buffer_unref(out);
                n++;
                t1 = g_get_monotonic_time();
            } while (t1 - t0 < seconds * 1e6);

            g_print("%-5s %dx%d %-24s %7.1f fps (%.3f ms/frame), %u objects drawn, "
                    "%.1f boxes/frame\n",
                    formats[f], w, h, scenes[s].what, n / ((t1 - t0) / 1e6), (t1 - t0) / 1e3 / n, objects->len,
                    (gdouble)rois / n);

            gst_buffer_unref(frame);
            gst_harness_teardown(det);
            gst_harness_teardown(conv);
            g_free(caps);
            g_array_free(objects, TRUE);
        }
    }
    return 0;
}
