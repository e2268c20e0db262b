/* scene.h: synthetic test frames with known boxes for the detector tests.
 *
 * The accuracy test only sees MglSceneFunc, so a different frame source
 * (e.g. mgllavascenesrc's generator) can replace mgl_scene_shapes().
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#ifndef MGL_TEST_SCENE_H
#define MGL_TEST_SCENE_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
    gint x1, y1, x2, y2; /* bounding box of the drawn pixels, x2/y2 exclusive */
    const gchar* colour; /* expected colour name */
    const gchar* shape;
} MglSceneObject;

/* Draws scene @seed into packed RGB (3 bytes per pixel) and appends the
 * objects (MglSceneObject) to @objects. */
typedef void (*MglSceneFunc)(guint seed, guint8* rgb, gint width, gint height, gint stride, GArray* objects);

void mgl_scene_shapes(guint seed, guint8* rgb, gint width, gint height, gint stride, GArray* objects);

G_END_DECLS

#endif
