/* mgl-video-cli.h: `mgllava run --video FRAME...` (mgl-video-cli.c). */
#ifndef MGL_VIDEO_CLI_H
#define MGL_VIDEO_CLI_H

/* argv: run's options, with --video followed by the clip's image files. */
int mgl_cmd_run_video(int argc, char** argv);

#endif
