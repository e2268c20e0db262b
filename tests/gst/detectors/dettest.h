/* dettest.h: GST_CHECK_MAIN for the detector tests, safe under LeakSanitizer.
 *
 * GLib allocates its quark table in a library constructor and, when the
 * table grows (a fresh registry scan registers thousands of quarks), leaks
 * the old one on purpose (readers are lock-free). LeakSanitizer reports that
 * 16 KiB in every forked test. Under AddressSanitizer the tests therefore
 * unwind malloc stacks fully (GLib has no frame pointers) and suppress leaks
 * of memory allocated while shared libraries were being initialised
 * (_dl_init); everything else is still leak-checked.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#ifndef MGL_DET_TEST_H
#define MGL_DET_TEST_H

#include <gst/check/gstcheck.h>

#if defined(__SANITIZE_ADDRESS__)
/* read by the sanitizer runtime before main(); ASAN_OPTIONS and
 * LSAN_OPTIONS from the environment still apply on top */
const char* __asan_default_options(void);
const char* __lsan_default_suppressions(void);

__attribute__((visibility("default"))) const char* __asan_default_options(void) {
    return "fast_unwind_on_malloc=0:print_suppressions=0";
}

__attribute__((visibility("default"))) const char* __lsan_default_suppressions(void) {
    /* and GLib's old quark tables, leaked on purpose as the table grows
     * (one per 2048 quarks; the strings stay reachable) */
    return "leak:_dl_init\n"
           "leak:g_quark_from_string\nleak:g_quark_from_static_string\n"
           "leak:g_intern_string\nleak:g_intern_static_string\n";
}
#endif

static inline void mgl_det_check_init(int* argc, char*** argv) { gst_check_init(argc, argv); }

/* Runs the pipeline @launch to EOS (at most @timeout_s seconds; an error or
 * the timeout fails the test) with @probe on the sink pad of the element
 * named @sink. */
static inline void mgl_det_run_probed(const gchar* launch, const gchar* sink, GstPadProbeCallback probe, gpointer data,
                                      guint timeout_s) {
    GstElement* pipeline = gst_parse_launch(launch, NULL);
    GstElement* el;
    GstPad* pad;
    GstBus* bus;
    GstMessage* msg;

    fail_unless(pipeline != NULL, "could not build: %s", launch);
    el = gst_bin_get_by_name(GST_BIN(pipeline), sink);
    pad = gst_element_get_static_pad(el, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, probe, data, NULL);
    gst_object_unref(pad);
    gst_object_unref(el);
    bus = gst_element_get_bus(pipeline);
    fail_unless(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
    msg = gst_bus_timed_pop_filtered(bus, timeout_s * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    fail_unless(msg != NULL && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS, "no EOS from: %s", launch);
    gst_message_unref(msg);
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(bus);
    gst_object_unref(pipeline);
}

#define MGL_DET_CHECK_MAIN(name)                                                                                       \
    int main(int argc, char** argv) {                                                                                  \
        mgl_det_check_init(&argc, &argv);                                                                              \
        return gst_check_run_suite(name##_suite(), #name, __FILE__);                                                   \
    }

#endif
