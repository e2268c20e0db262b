/* gst-asan.h: AddressSanitizer settings for GStreamer test programs.
 *
 * GLib deliberately never frees its old quark table when it grows (a 16 KiB
 * block allocated while libraries initialise, then one per 2048 quarks),
 * which LeakSanitizer reports in every GStreamer process. Suppress exactly
 * allocations made under the dynamic loader's constructors (_dl_init) and
 * under GLib's quark and interned-string entry points (whose only heap blocks
 * not reachable afterwards are those old tables: the strings stay reachable),
 * unwinding malloc stacks fully because GLib is built without frame pointers;
 * everything else is leak-checked. Which system plugins a test loads is fixed
 * by tests/gst/meson.build (a private plugin folder), not by suppressions. */
#ifndef MGL_GST_ASAN_H
#define MGL_GST_ASAN_H

const char* __asan_default_options(void);
const char* __lsan_default_suppressions(void);

/* default visibility: the sanitizer runtime (a shared library) looks these up
 * in the executable, and the project builds with -fvisibility=hidden */
__attribute__((used, visibility("default"))) const char* __asan_default_options(void) {
    return "fast_unwind_on_malloc=0:print_suppressions=0";
}

__attribute__((used, visibility("default"))) const char* __lsan_default_suppressions(void) {
    return "leak:_dl_init\n"
           "leak:g_quark_from_string\nleak:g_quark_from_static_string\n"
           "leak:g_intern_string\nleak:g_intern_static_string\n";
}

#endif
