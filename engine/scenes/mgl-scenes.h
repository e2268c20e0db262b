/* mgl-scenes.h: synthetic scenes for the demo model, its evaluation and the
 * detector tests: 1-6 coloured shapes on varied backgrounds, moving smoothly,
 * some carrying a small digit that is legible at 768 px but not at 336 px.
 * One renderer: used by `mgllava scenes` and by the mgllavascenesrc element.
 * Deterministic for a given seed. */
#ifndef MGL_SCENES_H
#define MGL_SCENES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MGL_SCENE_MAX_OBJECTS 6

typedef enum { MGL_SHAPE_CIRCLE, MGL_SHAPE_SQUARE, MGL_SHAPE_TRIANGLE, MGL_SHAPE_STAR, MGL_SHAPE_COUNT } MglShape;

typedef struct {
    MglShape shape;
    int color; /* index into mgl_scene_color_name() */
    int size;  /* diameter in pixels */
    int digit; /* 0-9, or -1 */
    /* motion inside the object's own cell, so objects never overlap */
    int cell_x0, cell_y0, cell_x1, cell_y1;
    double x0, y0, vx, vy; /* centre at frame 0 and velocity in px/frame */
    /* at the rendered frame */
    int cx, cy;
    int box[4]; /* x1, y1, x2, y2 (exclusive) of the drawn pixels */
} MglSceneObject;

typedef struct {
    int width, height;
    uint64_t seed;
    int index; /* which scene of the sequence */
    int n;
    MglSceneObject obj[MGL_SCENE_MAX_OBJECTS];
    uint8_t bg[2][3]; /* vertical gradient, low saturation */
} MglScene;

/* Still images of the scene sequence (`mgllava scenes`, `mgllava eval-scenes`):
 * scene `index` is shown at this frame of its motion, at 640x480 by default.
 * One definition, so training data and evaluation never drift apart. */
#define MGL_SCENE_STILL_WIDTH 640
#define MGL_SCENE_STILL_HEIGHT 480
int mgl_scene_still_frame(long index);

/* Scene number `index` of the sequence for `seed`, with min..max objects. */
void mgl_scene_make(MglScene* s, int width, int height, uint64_t seed, int index, int min_objects, int max_objects);
/* Draw frame `t` of the scene into packed pixels: bpp 3 (RGB) or 4 (RGBx; byte
 * 3 set to 255); `bgr` swaps R and B. Updates each object's centre and box. */
void mgl_scene_render(MglScene* s, int t, uint8_t* pixels, int stride, int bpp, bool bgr);

const char* mgl_scene_color_name(int color);
const char* mgl_scene_shape_name(MglShape shape);
/* "top left", "top", ... "bottom right" of a point in the frame */
const char* mgl_scene_position(const MglScene* s, int cx, int cy);
/* The reference caption of the rendered frame, e.g. "a red circle at the top
 * left and a blue square at the bottom right" (objects in reading order). */
void mgl_scene_caption(const MglScene* s, char* out, size_t cap);
/* One JSON object (no newline) with boxes, labels, caption and question/answer
 * pairs of the rendered frame; malloc'ed. */
char* mgl_scene_truth_json(const MglScene* s, int64_t frame, int64_t pts);

#endif
