/* mgl-eval-scenes.h: `mgllava eval-scenes` (engine/cli/mgl-eval-scenes.c). */
#ifndef MGL_EVAL_SCENES_H
#define MGL_EVAL_SCENES_H

/* argv holds the options after the command name; returns the exit status. */
int mgl_cmd_eval_scenes(int argc, char** argv);

#endif
