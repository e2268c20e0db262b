/* mgl-cli.h: what every `mgllava` command shares: option parsing and the
 * one-line error reports (exit status 1). */
#ifndef MGL_CLI_H
#define MGL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgllava.h"
#include "mgl-internal.h"

/* One option: "--name value", "--name=value" or a "--flag" (has_value false). */
typedef struct {
    const char* name;
    bool        has_value;
    const char* value;
    bool        seen;
} CliOpt;

/* Fills opts from argv; an unknown option or a missing value is reported and
 * returns 1. */
int cli_parse_opts(int argc, char** argv, CliOpt* opts, size_t n);
/* A number in [lo, hi] (the whole string). */
bool cli_num(const char* s, double lo, double hi, double* out);
/* "f16", "bf16" or "f32" (--dtype, --precision); out may be NULL to check only. */
bool cli_dtype(const char* s, MglDType* out);
/* "mgllava: [cmd: ]<fmt with arg> (try 'mgllava help')" on stderr; returns 1. */
int cli_usage_error(const char* cmd, const char* fmt, const char* arg);
/* Packed RGB (stride 3*w) to a PNG file; false when it cannot be written. */
bool cli_write_png_rgb(const char* path, const uint8_t* px, int w, int h);
/* "mgllava: <message>" on stderr; returns 1. */
int cli_fail(const MglErr* e);

#endif
