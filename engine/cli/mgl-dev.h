/* mgl-dev.h: the developer commands of `mgllava` (dump, bench), which use the
 * engine's internal headers (mgl-dev.c, mgl-bench.c). */
#ifndef MGL_DEV_H
#define MGL_DEV_H

#include "mgllava.h"

/* `dump`: run the stages up to `stage` on the CPU reference path and write its tensor; returns the exit status. */
int mgl_cmd_dump_stage(MglModel* m, const MglImage* img, const MglBox* boxes, size_t n_boxes, int order,
                       const char* question, const char* stage, const char* out);
/* `bench`: argv after the command name; returns the exit status. */
int mgl_cmd_bench(int argc, char** argv);

#endif
