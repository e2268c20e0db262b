/* mgl-cli.h: what every `mgllava` command shares: option parsing and the
 * one-line error reports (exit status 1). */
#ifndef MGL_CLI_H
#define MGL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <glib.h>

#include "mgllava.h"

/* One option: "--name value", "--name=value" or a "--flag" (has_value false). */
typedef struct {
    const char* name;
    bool has_value;
    const char* value;
    bool seen;
} CliOpt;

/* Fills opts from argv; an unknown option or a missing value is reported and
 * returns 1. */
int cli_parse_opts(int argc, char** argv, CliOpt* opts, size_t n);
/* A number in [lo, hi] (the whole string). */
bool cli_num(const char* s, double lo, double hi, double* out);
/* "f16", "bf16" or "f32" (--dtype, --precision). */
bool cli_dtype(const char* s);
/* Fill `err` (if non-NULL) with a message and return `code`. */
MglStatus cli_err(MglErr* err, MglStatus code, const char* fmt, ...) G_GNUC_PRINTF(3, 4);
/* Prefix the message with "prefix: ". */
void cli_err_prefix(MglErr* err, const char* fmt, ...) G_GNUC_PRINTF(2, 3);
/* A common/ JSON GError as an MglErr; frees it. */
MglStatus cli_err_json(MglErr* err, GError* ge);
/* "mgllava: [cmd: ]<fmt with arg> (try 'mgllava help')" on stderr; returns 1. */
int cli_usage_error(const char* cmd, const char* fmt, const char* arg);
/* Packed RGB (stride 3*w) to a PNG file; false when it cannot be written. */
bool cli_write_png_rgb(const char* path, const uint8_t* px, int w, int h);
/* "mgllava: <message>" on stderr; returns 1. */
int cli_fail(const MglErr* e);
/* A model load's progress on a terminal: when stderr is one (and
 * MGL_NO_PROGRESS is unset), sets mp->progress to a function that keeps one
 * line up to date ("loading model: 45% reading weights (6.10 of 13.48 GB)")
 * and erases it when the load ends. Nothing otherwise (pipes, logs, tests). */
void cli_progress_attach(MglModelParams* mp);
/* Erases the progress line (a load that failed or was aborted). */
void cli_progress_end(void);
/* --schema FILE / --grammar FILE (opt names it in messages): the text of the
 * file (g_free), at most 1 MiB and without NUL bytes; NULL and err set otherwise. */
char* cli_read_constraint(const char* path, const char* opt, MglErr* err);

#endif
