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

#define MGL_DET_CHECK_MAIN(name)                                                                                       \
    int main(int argc, char** argv) {                                                                                  \
        mgl_det_check_init(&argc, &argv);                                                                              \
        return gst_check_run_suite(name##_suite(), #name, __FILE__);                                                   \
    }

#endif
