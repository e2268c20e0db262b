/* A live source (30 fps unless told) through mgllavafilter (attach-mode=latest,
 * every frame sampled) into a synchronised sink that drops anything more than
 * 20 ms late: inference is slower than real time (the test fails when it is
 * not, so the frame rate is set well above what any CPU answers at), yet no
 * frame may be late or dropped.
 * Prints one JSON line with the figures; exit 1 on any late/dropped frame. */
#include "gst-asan.h"
#include <gst/gst.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static guint64 handoffs, results;

static void on_handoff(GstElement* sink, GstBuffer* buf, GstPad* pad, gpointer ud) { handoffs++; }

int main(int argc, char** argv) {
    GstElement *pipe, *filter, *sink;
    GstBus* bus;
    GstMessage* msg;
    GError* err = NULL;
    guint64 qos_msgs = 0, sampled = 0, done = 0, dropped = 0;
    gboolean eos = FALSE, failed = FALSE;
    const gchar* model = argc > 1 ? argv[1] : NULL;
    gint frames = argc > 2 ? atoi(argv[2]) : 300;
    /* "latest" (default): every frame sampled, frames never wait; "exact": every
     * 10th frame held for its answer, with exact-latency reported upstream and
     * honoured by the synchronised sink */
    gboolean exact = argc > 3 && !strcmp(argv[3], "exact");
    gint fps = argc > 4 ? atoi(argv[4]) : 30;
    gchar* desc;
    GstStructure* st = NULL;
    gint64 t0;

    gst_init(&argc, &argv);
    desc = g_strdup_printf("videotestsrc is-live=true num-buffers=%d ! "
                           "video/x-raw,width=320,height=240,framerate=%d/1 ! "
                           "mgllavafilter name=f model=%s %s max-new-tokens=8 ! queue max-size-buffers=0 "
                           "max-size-time=0 max-size-bytes=0 ! fakesink name=s sync=true qos=true "
                           "max-lateness=20000000 signal-handoffs=true",
                           frames, fps, model,
                           exact ? "interval=10 attach-mode=exact exact-latency=1000000000"
                                 : "interval=1 attach-mode=latest");
    pipe = gst_parse_launch(desc, &err);
    g_free(desc);
    if (!pipe) {
        fprintf(stderr, "pipeline: %s\n", err->message);
        return 1;
    }
    filter = gst_bin_get_by_name(GST_BIN(pipe), "f");
    sink = gst_bin_get_by_name(GST_BIN(pipe), "s");
    g_signal_connect(sink, "handoff", G_CALLBACK(on_handoff), NULL);
    bus = gst_element_get_bus(pipe);
    t0 = g_get_monotonic_time();
    gst_element_set_state(pipe, GST_STATE_PLAYING);
    while (!eos && !failed) {
        msg = gst_bus_timed_pop(bus, 60 * GST_SECOND);
        if (!msg) {
            failed = TRUE;
            break;
        }
        switch (GST_MESSAGE_TYPE(msg)) {
        case GST_MESSAGE_EOS: eos = TRUE; break;
        case GST_MESSAGE_ERROR:
            gst_message_parse_error(msg, &err, NULL);
            fprintf(stderr, "error: %s\n", err->message);
            g_clear_error(&err);
            failed = TRUE;
            break;
        case GST_MESSAGE_QOS: qos_msgs++; break;
        case GST_MESSAGE_ELEMENT:
            if (gst_message_has_name(msg, "mgllava-result")) results++;
            break;
        default: break;
        }
        gst_message_unref(msg);
    }
    g_object_get(filter, "stats", &st, NULL);
    gst_structure_get(st, "sampled", G_TYPE_UINT64, &sampled, "results", G_TYPE_UINT64, &done, "dropped", G_TYPE_UINT64,
                      &dropped, NULL);
    printf("{\"frames\": %d, \"delivered\": %" G_GUINT64_FORMAT ", \"qos_messages\": %" G_GUINT64_FORMAT
           ", \"sampled\": %" G_GUINT64_FORMAT ", \"results\": %" G_GUINT64_FORMAT
           ", \"dropped_requests\": %" G_GUINT64_FORMAT ", \"bus_results\": %" G_GUINT64_FORMAT ", \"wall_s\": %.2f}\n",
           frames, handoffs, qos_msgs, sampled, done, dropped, results, (g_get_monotonic_time() - t0) / 1e6);
    gst_structure_free(st);
    gst_element_set_state(pipe, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(filter);
    gst_object_unref(sink);
    gst_object_unref(pipe);
    if (failed || handoffs != (guint64)frames || qos_msgs != 0) return 1;
    if (exact) /* every held frame got its own answer in time */
        return done == sampled && done > 0 ? 0 : 1;
    /* inference must really be slower than real time for this to mean anything */
    if (done >= sampled) return 1;
    return 0;
}
