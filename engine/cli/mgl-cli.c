/* mgl-cli.c: see mgl-cli.h. */
#include "mgl-cli.h"

#include <glib.h>
#include <stdarg.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Whether a progress line is on the screen now. */
static bool progress_shown;
static gint64 progress_last_us;

void cli_progress_end(void) {
    if (!progress_shown) return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    progress_shown = false;
}

static bool cli_progress(double fraction, const char* what, void* data) {
    gint64 now = g_get_monotonic_time();
    (void)data;
    if (fraction >= 1.0) {
        cli_progress_end();
        return true;
    }
    /* ten updates a second are enough for the eye */
    if (progress_shown && now - progress_last_us < 100000) return true;
    progress_last_us = now;
    fprintf(stderr, "\r\033[Kloading model: %3.0f%% %s", fraction * 100.0, what);
    fflush(stderr);
    progress_shown = true;
    return true;
}

void cli_progress_attach(MglModelParams* mp) {
    const char* off = getenv("MGL_NO_PROGRESS");
    if ((off && *off) || !isatty(2)) return;
    mp->progress = cli_progress;
    mp->progress_data = NULL;
}

int cli_fail(const MglErr* e) {
    cli_progress_end();
    fprintf(stderr, "mgllava: %s\n", e->msg[0] ? e->msg : mgl_status_to_string(e->code));
    return 1;
}

int cli_usage_error(const char* cmd, const char* fmt, const char* arg) {
    fprintf(stderr, "mgllava: ");
    if (cmd) fprintf(stderr, "%s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (try 'mgllava help')\n");
    return 1;
}

int cli_parse_opts(int argc, char** argv, CliOpt* opts, size_t n) {
    for (int i = 0; i < argc; i++) {
        size_t k = 0;
        for (; k < n; k++) {
            size_t l = strlen(opts[k].name);
            if (strncmp(argv[i], opts[k].name, l) == 0 && (argv[i][l] == 0 || argv[i][l] == '=')) break;
        }
        if (k == n) return cli_usage_error(NULL, "unknown option '%s'", argv[i]);
        opts[k].seen = true;
        if (opts[k].has_value) {
            const char* eq = strchr(argv[i], '=');
            if (eq)
                opts[k].value = eq + 1;
            else if (i + 1 < argc)
                opts[k].value = argv[++i];
            else
                return cli_usage_error(NULL, "option '%s' needs a value", opts[k].name);
        }
    }
    return 0;
}

bool cli_num(const char* s, double lo, double hi, double* out) {
    if (!s || !*s) return false;
    char* end = NULL;
    double v = g_ascii_strtod(s, &end);
    if (*end || !(v >= lo && v <= hi)) return false;
    *out = v;
    return true;
}

bool cli_dtype(const char* s) { return s && (!strcmp(s, "f16") || !strcmp(s, "bf16") || !strcmp(s, "f32")); }

MglStatus cli_err(MglErr* err, MglStatus code, const char* fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void cli_err_prefix(MglErr* err, const char* fmt, ...) {
    if (!err) return;
    char pre[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    snprintf(old, sizeof old, "%s", err->msg);
    snprintf(err->msg, sizeof err->msg, "%s: %s", pre, old);
}

MglStatus cli_err_json(MglErr* err, GError* ge) {
    cli_err(err, MGL_E_FORMAT, "%s", ge ? ge->message : "JSON error"); /* the tool's exit status is 1 either way */
    if (ge) g_error_free(ge);
    return MGL_E_FORMAT;
}

bool cli_write_png_rgb(const char* path, const uint8_t* px, int w, int h) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = (png_uint_32)w;
    im.height = (png_uint_32)h;
    im.format = PNG_FORMAT_RGB;
    return png_image_write_to_file(&im, path, 0, px, w * 3, NULL) != 0;
}

char* cli_read_constraint(const char* path, const char* opt, MglErr* err) {
    char* text = NULL;
    gsize len = 0;
    GError* ge = NULL;
    if (!g_file_get_contents(path, &text, &len, &ge)) {
        cli_err(err, MGL_E_IO, "%s: cannot read (%s): %s", path, opt, ge ? ge->message : "error");
        g_clear_error(&ge);
        return NULL;
    }
    if (len > (1u << 20) || strlen(text) != len) {
        cli_err(err, MGL_E_INVALID, "%s: %s", path, len > (1u << 20) ? "larger than 1 MiB" : "holds a NUL byte");
        g_free(text);
        return NULL;
    }
    return text;
}
