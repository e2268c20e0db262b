/* gstmgllavascenesrc.c
 *
 * SECTION:element-mgllavascenesrc
 * @title: mgllavascenesrc
 *
 * A video source of synthetic scenes: 1-6 coloured shapes (circle, square,
 * triangle, star) on varied low-saturation backgrounds, moving smoothly inside
 * their own regions; some carry a small digit that is legible at 768 px but not
 * at 336 px. A new scene starts every `scene-frames` frames. `seed` makes the
 * stream deterministic. With `truth-location`, one JSON line per frame gives
 * the ground truth: boxes, colours, shapes, positions, digits, the reference
 * caption and question/answer pairs. The same renderer backs
 * `mgllava scenes` (engine/scenes/mgl-scenes.c).
 *
 * |[
 * gst-launch-1.0 mgllavascenesrc is-live=true truth-location=truth.jsonl ! \
 *     mgllavablobdetect ! mgllavafilter model=models/demo ! mgllavajson ! fakesink
 * ]|
 */
#include <gst/gst.h>
#include <gst/base/gstpushsrc.h>
#include <gst/video/video.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "gstmgllavaoutput.h"
#include "mgl-scenes.h"

GST_DEBUG_CATEGORY_STATIC(gst_mgllava_scene_src_debug);
#define GST_CAT_DEFAULT gst_mgllava_scene_src_debug

#define GST_TYPE_MGLLAVA_SCENE_SRC (gst_mgllava_scene_src_get_type())
G_DECLARE_FINAL_TYPE(GstMgllavaSceneSrc, gst_mgllava_scene_src, GST, MGLLAVA_SCENE_SRC, GstPushSrc)

struct _GstMgllavaSceneSrc {
    GstPushSrc parent;

    /* with OBJECT_LOCK */
    guint64 seed;
    guint scene_frames;
    guint min_objects, max_objects;
    gchar* truth_location;
    gboolean is_live;

    /* streaming thread */
    GstVideoInfo info;
    guint64 n;
    gint scene_index;
    MglScene scene;
    FILE* truth;
};

enum {
    PROP_0,
    PROP_SEED,
    PROP_SCENE_FRAMES,
    PROP_MIN_OBJECTS,
    PROP_MAX_OBJECTS,
    PROP_TRUTH_LOCATION,
    PROP_IS_LIVE,
};

G_DEFINE_TYPE(GstMgllavaSceneSrc, gst_mgllava_scene_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE(mgllavascenesrc, "mgllavascenesrc", GST_RANK_NONE, GST_TYPE_MGLLAVA_SCENE_SRC);

static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS,
                            GST_STATIC_CAPS("video/x-raw, format = (string) { RGB, RGBx, BGRx }, "
                                            "width = (int) [ 64, 8192 ], height = (int) [ 64, 8192 ], "
                                            "framerate = (fraction) [ 1/1, 240/1 ]"));

static GstCaps* gst_mgllava_scene_src_fixate(GstBaseSrc* bsrc, GstCaps* caps) {
    GstStructure* s;

    caps = gst_caps_make_writable(caps);
    s = gst_caps_get_structure(caps, 0);
    gst_structure_fixate_field_nearest_int(s, "width", 640);
    gst_structure_fixate_field_nearest_int(s, "height", 480);
    gst_structure_fixate_field_nearest_fraction(s, "framerate", 30, 1);
    return GST_BASE_SRC_CLASS(gst_mgllava_scene_src_parent_class)->fixate(bsrc, caps);
}

static gboolean gst_mgllava_scene_src_set_caps(GstBaseSrc* bsrc, GstCaps* caps) {
    GstMgllavaSceneSrc* self = GST_MGLLAVA_SCENE_SRC(bsrc);
    GstVideoInfo info;

    if (!gst_video_info_from_caps(&info, caps) || info.fps_n <= 0) return FALSE;
    self->info = info;
    self->scene_index = -1; /* re-create the scene at the new size */
    gst_base_src_set_blocksize(bsrc, GST_VIDEO_INFO_SIZE(&info));
    return TRUE;
}

static gboolean gst_mgllava_scene_src_start(GstBaseSrc* bsrc) {
    GstMgllavaSceneSrc* self = GST_MGLLAVA_SCENE_SRC(bsrc);
    gchar* loc;

    GST_OBJECT_LOCK(self);
    loc = g_strdup(self->truth_location);
    GST_OBJECT_UNLOCK(self);
    self->n = 0;
    self->scene_index = -1;
    if (loc && *loc && !(self->truth = gst_mgllava_output_open(GST_ELEMENT(self), loc))) {
        g_free(loc);
        return FALSE;
    }
    g_free(loc);
    return TRUE;
}

static gboolean gst_mgllava_scene_src_stop(GstBaseSrc* bsrc) {
    GstMgllavaSceneSrc* self = GST_MGLLAVA_SCENE_SRC(bsrc);

    g_clear_pointer(&self->truth, gst_mgllava_output_close);
    return TRUE;
}

static void gst_mgllava_scene_src_get_times(GstBaseSrc* bsrc, GstBuffer* buf, GstClockTime* start, GstClockTime* end) {
    /* live: basesrc waits on the clock until each frame's time */
    if (gst_base_src_is_live(bsrc)) {
        GstClockTime ts = GST_BUFFER_PTS(buf);
        if (GST_CLOCK_TIME_IS_VALID(ts)) {
            *start = ts;
            *end = ts + GST_BUFFER_DURATION(buf);
            return;
        }
    }
    *start = *end = GST_CLOCK_TIME_NONE;
}

static GstFlowReturn gst_mgllava_scene_src_fill(GstPushSrc* psrc, GstBuffer* buf) {
    GstMgllavaSceneSrc* self = GST_MGLLAVA_SCENE_SRC(psrc);
    GstVideoFrame frame;
    guint scene_frames, minobj, maxobj;
    guint64 seed;
    gint index, t;
    GstVideoFormat fmt = GST_VIDEO_INFO_FORMAT(&self->info);

    GST_OBJECT_LOCK(self);
    seed = self->seed;
    scene_frames = MAX(self->scene_frames, 1);
    minobj = self->min_objects;
    maxobj = self->max_objects;
    GST_OBJECT_UNLOCK(self);

    index = (gint)(self->n / scene_frames);
    t = (gint)(self->n % scene_frames);
    if (index != self->scene_index) {
        mgl_scene_make(&self->scene, GST_VIDEO_INFO_WIDTH(&self->info), GST_VIDEO_INFO_HEIGHT(&self->info), seed, index,
                       (gint)minobj, (gint)maxobj);
        self->scene_index = index;
    }
    if (!gst_video_frame_map(&frame, &self->info, buf, GST_MAP_WRITE)) {
        GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("Could not map a frame."), (NULL));
        return GST_FLOW_ERROR;
    }
    mgl_scene_render(&self->scene, t, GST_VIDEO_FRAME_PLANE_DATA(&frame, 0), GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0),
                     fmt == GST_VIDEO_FORMAT_RGB ? 3 : 4, fmt == GST_VIDEO_FORMAT_BGRx);
    gst_video_frame_unmap(&frame);

    GST_BUFFER_PTS(buf) = gst_util_uint64_scale(self->n, GST_SECOND * self->info.fps_d, self->info.fps_n);
    GST_BUFFER_DURATION(buf) =
        gst_util_uint64_scale(self->n + 1, GST_SECOND * self->info.fps_d, self->info.fps_n) - GST_BUFFER_PTS(buf);
    GST_BUFFER_OFFSET(buf) = self->n;
    GST_BUFFER_OFFSET_END(buf) = self->n + 1;
    if (self->truth) {
        gchar* j = mgl_scene_truth_json(&self->scene, (gint64)self->n, (gint64)GST_BUFFER_PTS(buf));
        if (fprintf(self->truth, "%s\n", j) < 0 || fflush(self->truth) != 0) {
            g_free(j);
            GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("Could not write the ground truth: %s", g_strerror(errno)),
                              (NULL));
            return GST_FLOW_ERROR;
        }
        free(j);
    }
    self->n++;
    return GST_FLOW_OK;
}

static gboolean gst_mgllava_scene_src_decide_allocation(GstBaseSrc* bsrc, GstQuery* query) {
    return GST_BASE_SRC_CLASS(gst_mgllava_scene_src_parent_class)->decide_allocation(bsrc, query);
}

static void gst_mgllava_scene_src_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
    GstMgllavaSceneSrc* self = GST_MGLLAVA_SCENE_SRC(object);

    GST_OBJECT_LOCK(self);
    switch (prop_id) {
    case PROP_SEED: self->seed = g_value_get_uint64(value); break;
    case PROP_SCENE_FRAMES: self->scene_frames = g_value_get_uint(value); break;
    case PROP_MIN_OBJECTS: self->min_objects = g_value_get_uint(value); break;
    case PROP_MAX_OBJECTS: self->max_objects = g_value_get_uint(value); break;
    case PROP_TRUTH_LOCATION:
        g_free(self->truth_location);
        self->truth_location = g_value_dup_string(value);
        break;
    case PROP_IS_LIVE: self->is_live = g_value_get_boolean(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    }
    GST_OBJECT_UNLOCK(self);
    /* here, not in start(): the READY->PAUSED change asks whether the source is
     * live (no preroll) before start() runs; set_live takes the object lock */
    if (prop_id == PROP_IS_LIVE) gst_base_src_set_live(GST_BASE_SRC(self), g_value_get_boolean(value));
}

static void gst_mgllava_scene_src_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
    GstMgllavaSceneSrc* self = GST_MGLLAVA_SCENE_SRC(object);

    GST_OBJECT_LOCK(self);
    switch (prop_id) {
    case PROP_SEED: g_value_set_uint64(value, self->seed); break;
    case PROP_SCENE_FRAMES: g_value_set_uint(value, self->scene_frames); break;
    case PROP_MIN_OBJECTS: g_value_set_uint(value, self->min_objects); break;
    case PROP_MAX_OBJECTS: g_value_set_uint(value, self->max_objects); break;
    case PROP_TRUTH_LOCATION: g_value_set_string(value, self->truth_location); break;
    case PROP_IS_LIVE: g_value_set_boolean(value, self->is_live); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    }
    GST_OBJECT_UNLOCK(self);
}

static void gst_mgllava_scene_src_finalize(GObject* object) {
    g_free(GST_MGLLAVA_SCENE_SRC(object)->truth_location);
    G_OBJECT_CLASS(gst_mgllava_scene_src_parent_class)->finalize(object);
}

static void gst_mgllava_scene_src_init(GstMgllavaSceneSrc* self) {
    self->scene_frames = 150;
    self->min_objects = 1;
    self->max_objects = 6;
    gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
}

static void gst_mgllava_scene_src_class_init(GstMgllavaSceneSrcClass* klass) {
    GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
    GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
    GstBaseSrcClass* bsrc_class = GST_BASE_SRC_CLASS(klass);
    GstPushSrcClass* psrc_class = GST_PUSH_SRC_CLASS(klass);
    const GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;

    GST_DEBUG_CATEGORY_INIT(gst_mgllava_scene_src_debug, "mgllavascenesrc", 0, "MG-LLaVA synthetic scenes");
    gobject_class->set_property = gst_mgllava_scene_src_set_property;
    gobject_class->get_property = gst_mgllava_scene_src_get_property;
    gobject_class->finalize = gst_mgllava_scene_src_finalize;
    g_object_class_install_property(
        gobject_class, PROP_SEED,
        g_param_spec_uint64("seed", "Seed", "Scene sequence seed (deterministic)", 0, G_MAXUINT64, 0, rw));
    g_object_class_install_property(gobject_class, PROP_SCENE_FRAMES,
                                    g_param_spec_uint("scene-frames", "Scene frames",
                                                      "Frames per scene before a new one starts", 1, G_MAXINT, 150,
                                                      rw));
    g_object_class_install_property(
        gobject_class, PROP_MIN_OBJECTS,
        g_param_spec_uint("min-objects", "Min objects", "Fewest objects per scene", 1, MGL_SCENE_MAX_OBJECTS, 1, rw));
    g_object_class_install_property(
        gobject_class, PROP_MAX_OBJECTS,
        g_param_spec_uint("max-objects", "Max objects", "Most objects per scene", 1, MGL_SCENE_MAX_OBJECTS, 6, rw));
    g_object_class_install_property(
        gobject_class, PROP_TRUTH_LOCATION,
        g_param_spec_string("truth-location", "Truth location",
                            "Write one JSON line of ground truth per frame to this file (\"-\" = "
                            "standard output)",
                            NULL, rw));
    g_object_class_install_property(
        gobject_class, PROP_IS_LIVE,
        g_param_spec_boolean("is-live", "Is live",
                             "Produce frames at the frame rate of the pipeline clock, like a camera", FALSE, rw));
    gst_element_class_add_static_pad_template(element_class, &src_template);
    gst_element_class_set_static_metadata(element_class, "MG-LLaVA scene source", "Source/Video",
                                          "Synthetic scenes of coloured shapes with ground truth, for the MG-LLaVA "
                                          "demo and tests",
                                          "mgllava developers");
    bsrc_class->fixate = GST_DEBUG_FUNCPTR(gst_mgllava_scene_src_fixate);
    bsrc_class->set_caps = GST_DEBUG_FUNCPTR(gst_mgllava_scene_src_set_caps);
    bsrc_class->start = GST_DEBUG_FUNCPTR(gst_mgllava_scene_src_start);
    bsrc_class->stop = GST_DEBUG_FUNCPTR(gst_mgllava_scene_src_stop);
    bsrc_class->get_times = GST_DEBUG_FUNCPTR(gst_mgllava_scene_src_get_times);
    bsrc_class->decide_allocation = GST_DEBUG_FUNCPTR(gst_mgllava_scene_src_decide_allocation);
    psrc_class->fill = GST_DEBUG_FUNCPTR(gst_mgllava_scene_src_fill);
}
