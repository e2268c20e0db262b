/* gstmgllavaboxes.c: offline detections -> ROI metas.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:element-mgllavaboxes
 * @title: mgllavaboxes
 *
 * Reads detections computed offline (MG-LLaVA's detector output, its video
 * record, or JSON Lines) and attaches them to the matching frames as
 * #GstVideoRegionOfInterestMeta, with a "detection" param structure carrying
 * "confidence" as DL Streamer does. Pixels pass through untouched.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=clip.mp4 ! decodebin ! videoconvert ! \
 *     mgllavaboxes location=clip-boxes.json ! mgllavafilter ... ! fakesink
 * ]|
 *
 * Since: 0.1
 */
#include "gstmgllavaboxes.h"
#include "gstmgllavadetmeta.h"

GST_DEBUG_CATEGORY_STATIC(gst_mgllava_boxes_debug);
#define GST_CAT_DEFAULT gst_mgllava_boxes_debug

/* at most this many warnings go to the bus per start; the rest are logged */
#define MAX_BUS_WARNINGS 10

enum {
    PROP_0,
    PROP_LOCATION,
    PROP_MATCH,
    PROP_SCORE_THRESHOLD,
};

#define DEFAULT_LOCATION NULL
#define DEFAULT_MATCH MGL_DETECTIONS_MATCH_FRAME
#define DEFAULT_SCORE_THRESHOLD 0.0

struct _GstMgllavaBoxes {
    GstBaseTransform parent;

    /*< private > */
    /* with OBJECT_LOCK */
    gchar* location;          /* MUTABLE_READY */
    MglDetectionsMatch match; /* MUTABLE_READY */
    gdouble score_threshold;

    /* streaming thread only */
    MglDetectionsFile* file;
    MglDetectionsMatch active_match;
    GstVideoInfo info;
    guint64 frame; /* frames seen since start */
    guint n_bus_warnings;
    GArray* scratch; /* MglDetectionsBox */
    GPtrArray* warnings;
};

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw(ANY)"));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw(ANY)"));

G_DEFINE_TYPE(GstMgllavaBoxes, gst_mgllava_boxes, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(mgllavaboxes, "mgllavaboxes", GST_RANK_NONE, GST_TYPE_MGLLAVA_BOXES);

GType gst_mgllava_boxes_match_get_type(void) {
    static GType type = 0;
    static const GEnumValue values[] = {{MGL_DETECTIONS_MATCH_FRAME,
                                         "Frame number (buffers counted from 0 since "
                                         "start)",
                                         "frame"},
                                        {MGL_DETECTIONS_MATCH_PTS,
                                         "Presentation timestamp in nanoseconds (JSON "
                                         "Lines \"pts\"); a record matches a frame when it lies within half a "
                                         "frame duration of the frame's pts",
                                         "pts"},
                                        {0, NULL, NULL}};

    if (g_once_init_enter(&type)) {
        GType t = g_enum_register_static("GstMgllavaBoxesMatch", values);
        g_once_init_leave(&type, t);
    }
    return type;
}

/* Posts the first warnings on the bus and logs the others. */
static void gst_mgllava_boxes_flush_warnings(GstMgllavaBoxes* self) {
    guint i;

    for (i = 0; i < self->warnings->len; i++) {
        const gchar* w = g_ptr_array_index(self->warnings, i);

        if (self->n_bus_warnings < MAX_BUS_WARNINGS) {
            self->n_bus_warnings++;
            GST_ELEMENT_WARNING(
                self, STREAM, FORMAT, ("Problem in detections file"),
                ("%s%s", w,
                 self->n_bus_warnings == MAX_BUS_WARNINGS ? " (further warnings only in the debug log)" : ""));
        } else {
            GST_WARNING_OBJECT(self, "%s", w);
        }
    }
    g_ptr_array_set_size(self->warnings, 0);
}

static gboolean gst_mgllava_boxes_start(GstBaseTransform* trans) {
    GstMgllavaBoxes* self = GST_MGLLAVA_BOXES(trans);
    GError* error = NULL;
    gchar* location;

    GST_OBJECT_LOCK(self);
    location = g_strdup(self->location);
    self->active_match = self->match;
    GST_OBJECT_UNLOCK(self);

    if (location == NULL || location[0] == '\0') {
        g_free(location);
        GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND, ("No detections file given."),
                          ("the location property is not set"));
        return FALSE;
    }

    self->frame = 0;
    self->n_bus_warnings = 0;
    self->file = mgl_detections_file_open(location, self->active_match, self->warnings, &error);
    gst_mgllava_boxes_flush_warnings(self);
    if (self->file == NULL) {
        if (g_error_matches(error, MGL_DETECTIONS_ERROR, MGL_DETECTIONS_ERROR_IO))
            GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Could not read detections file \"%s\".", location),
                              ("%s", error->message));
        else
            GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("Malformed detections file \"%s\".", location),
                              ("%s", error->message));
        g_clear_error(&error);
        g_free(location);
        return FALSE;
    }

    GST_INFO_OBJECT(self, "reading %s (%s layout), matching by %s", location,
                    mgl_detections_format_to_string(mgl_detections_file_get_format(self->file)),
                    self->active_match == MGL_DETECTIONS_MATCH_PTS ? "pts" : "frame");
    g_free(location);
    return TRUE;
}

static gboolean gst_mgllava_boxes_stop(GstBaseTransform* trans) {
    GstMgllavaBoxes* self = GST_MGLLAVA_BOXES(trans);

    g_clear_pointer(&self->file, mgl_detections_file_free);
    return TRUE;
}

static gboolean gst_mgllava_boxes_set_caps(GstBaseTransform* trans, GstCaps* incaps, GstCaps* outcaps) {
    GstMgllavaBoxes* self = GST_MGLLAVA_BOXES(trans);

    if (!gst_video_info_from_caps(&self->info, incaps)) {
        GST_ERROR_OBJECT(self, "invalid caps %" GST_PTR_FORMAT, incaps);
        return FALSE;
    }
    return TRUE;
}

static gboolean gst_mgllava_boxes_sink_event(GstBaseTransform* trans, GstEvent* event) {
    GstMgllavaBoxes* self = GST_MGLLAVA_BOXES(trans);

    if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP && self->file != NULL) {
        /* after a seek JSON Lines timestamps may go backwards: read again */
        GError* error = NULL;

        if (!mgl_detections_file_rewind(self->file, &error)) {
            GST_ELEMENT_WARNING(self, RESOURCE, SEEK, (NULL), ("%s", error->message));
            g_clear_error(&error);
        }
    }
    return GST_BASE_TRANSFORM_CLASS(gst_mgllava_boxes_parent_class)->sink_event(trans, event);
}

static GstFlowReturn gst_mgllava_boxes_transform_ip(GstBaseTransform* trans, GstBuffer* buf) {
    GstMgllavaBoxes* self = GST_MGLLAVA_BOXES(trans);
    gint width = GST_VIDEO_INFO_WIDTH(&self->info);
    gint height = GST_VIDEO_INFO_HEIGHT(&self->info);
    GError* error = NULL;
    gdouble threshold;
    gint64 lo, hi;
    guint i, attached = 0;
    gboolean ok;

    GST_OBJECT_LOCK(self);
    threshold = self->score_threshold;
    GST_OBJECT_UNLOCK(self);

    if (self->active_match == MGL_DETECTIONS_MATCH_FRAME) {
        lo = hi = (gint64)self->frame;
    } else {
        GstClockTime pts = GST_BUFFER_PTS(buf);
        GstClockTime dur = GST_BUFFER_DURATION(buf);

        if (!GST_CLOCK_TIME_IS_VALID(pts)) {
            GST_LOG_OBJECT(self, "buffer without pts: no detections");
            self->frame++;
            return GST_FLOW_OK;
        }
        if (!GST_CLOCK_TIME_IS_VALID(dur) && GST_VIDEO_INFO_FPS_N(&self->info) > 0)
            dur =
                gst_util_uint64_scale(GST_SECOND, GST_VIDEO_INFO_FPS_D(&self->info), GST_VIDEO_INFO_FPS_N(&self->info));
        if (GST_CLOCK_TIME_IS_VALID(dur) && dur > 1) {
            /* the record whose time falls within half a frame of this pts */
            lo = (gint64)pts - (gint64)(dur / 2);
            hi = (gint64)pts + (gint64)((dur + 1) / 2) - 1;
        } else {
            lo = hi = (gint64)pts;
        }
    }
    self->frame++;

    g_array_set_size(self->scratch, 0);
    ok = mgl_detections_file_lookup(self->file, lo, hi, self->scratch, self->warnings, &error);
    gst_mgllava_boxes_flush_warnings(self);
    if (!ok) {
        GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("Malformed detections file."), ("%s", error->message));
        g_clear_error(&error);
        return GST_FLOW_ERROR;
    }

    for (i = 0; i < self->scratch->len; i++) {
        const MglDetectionsBox* b = &g_array_index(self->scratch, MglDetectionsBox, i);

        if (b->score < threshold) continue;
        if (gst_mgllava_det_attach(buf, width, height, b->x1, b->y1, b->x2, b->y2, b->score, b->label) != NULL)
            attached++;
    }
    GST_LOG_OBJECT(self, "frame %" G_GUINT64_FORMAT " pts %" GST_TIME_FORMAT ": %u of %u boxes attached",
                   self->frame - 1, GST_TIME_ARGS(GST_BUFFER_PTS(buf)), attached, self->scratch->len);
    return GST_FLOW_OK;
}

static void gst_mgllava_boxes_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
    GstMgllavaBoxes* self = GST_MGLLAVA_BOXES(object);

    switch (prop_id) {
    case PROP_LOCATION:
        GST_OBJECT_LOCK(self);
        if (GST_STATE(self) > GST_STATE_READY) {
            GST_OBJECT_UNLOCK(self);
            GST_WARNING_OBJECT(self, "location can only change in READY or NULL");
            break;
        }
        GST_DEBUG_OBJECT(self, "location %s -> %s", self->location, g_value_get_string(value));
        g_free(self->location);
        self->location = g_value_dup_string(value);
        GST_OBJECT_UNLOCK(self);
        break;
    case PROP_MATCH:
        GST_OBJECT_LOCK(self);
        if (GST_STATE(self) > GST_STATE_READY) {
            GST_OBJECT_UNLOCK(self);
            GST_WARNING_OBJECT(self, "match can only change in READY or NULL");
            break;
        }
        self->match = g_value_get_enum(value);
        GST_OBJECT_UNLOCK(self);
        break;
    case PROP_SCORE_THRESHOLD:
        GST_OBJECT_LOCK(self);
        GST_DEBUG_OBJECT(self, "score-threshold %g -> %g", self->score_threshold, g_value_get_double(value));
        self->score_threshold = g_value_get_double(value);
        GST_OBJECT_UNLOCK(self);
        break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
    }
}

static void gst_mgllava_boxes_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
    GstMgllavaBoxes* self = GST_MGLLAVA_BOXES(object);

    GST_OBJECT_LOCK(self);
    switch (prop_id) {
    case PROP_LOCATION: g_value_set_string(value, self->location); break;
    case PROP_MATCH: g_value_set_enum(value, self->match); break;
    case PROP_SCORE_THRESHOLD: g_value_set_double(value, self->score_threshold); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
    }
    GST_OBJECT_UNLOCK(self);
}

static void gst_mgllava_boxes_finalize(GObject* object) {
    GstMgllavaBoxes* self = GST_MGLLAVA_BOXES(object);

    g_free(self->location);
    g_clear_pointer(&self->file, mgl_detections_file_free);
    g_array_free(self->scratch, TRUE);
    g_ptr_array_free(self->warnings, TRUE);
    G_OBJECT_CLASS(gst_mgllava_boxes_parent_class)->finalize(object);
}

static void gst_mgllava_boxes_init(GstMgllavaBoxes* self) {
    self->location = DEFAULT_LOCATION;
    self->match = DEFAULT_MATCH;
    self->score_threshold = DEFAULT_SCORE_THRESHOLD;
    self->scratch = g_array_new(FALSE, FALSE, sizeof(MglDetectionsBox));
    self->warnings = g_ptr_array_new_with_free_func(g_free);
    gst_video_info_init(&self->info);

    /* pixels are never touched, but metas are added: in place, not passthrough,
     * so the base class hands transform_ip a writable buffer */
    gst_base_transform_set_in_place(GST_BASE_TRANSFORM(self), TRUE);
    gst_base_transform_set_passthrough(GST_BASE_TRANSFORM(self), FALSE);
}

static void gst_mgllava_boxes_class_init(GstMgllavaBoxesClass* klass) {
    GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
    GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
    GstBaseTransformClass* trans_class = GST_BASE_TRANSFORM_CLASS(klass);

    GST_DEBUG_CATEGORY_INIT(gst_mgllava_boxes_debug, "mgllavaboxes", 0, "MG-LLaVA offline detections");

    gobject_class->set_property = gst_mgllava_boxes_set_property;
    gobject_class->get_property = gst_mgllava_boxes_get_property;
    gobject_class->finalize = gst_mgllava_boxes_finalize;

    /**
     * GstMgllavaBoxes:location:
     *
     * The detections file: a JSON list of {"id", "boxes", "scores", "labels"},
     * a {"video", "frames": [...]} record, or JSON Lines with "frame" or "pts".
     *
     * Since: 0.1
     */
    g_object_class_install_property(
        gobject_class, PROP_LOCATION,
        g_param_spec_string("location", "Location", "Detections file (JSON or JSON Lines)", DEFAULT_LOCATION,
                            G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

    /**
     * GstMgllavaBoxes:match:
     *
     * How records are matched to frames.
     *
     * Since: 0.1
     */
    g_object_class_install_property(
        gobject_class, PROP_MATCH,
        g_param_spec_enum("match", "Match", "How records are matched to frames", GST_TYPE_MGLLAVA_BOXES_MATCH,
                          DEFAULT_MATCH, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));

    /**
     * GstMgllavaBoxes:score-threshold:
     *
     * Boxes with a lower score are not attached.
     *
     * Since: 0.1
     */
    g_object_class_install_property(
        gobject_class, PROP_SCORE_THRESHOLD,
        g_param_spec_double("score-threshold", "Score threshold", "Boxes with a lower score are not attached", 0.0, 1.0,
                            DEFAULT_SCORE_THRESHOLD,
                            G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));

    gst_element_class_add_static_pad_template(element_class, &sink_template);
    gst_element_class_add_static_pad_template(element_class, &src_template);
    gst_element_class_set_static_metadata(element_class, "MG-LLaVA offline detections", "Filter/Analyzer/Video",
                                          "Attaches detections read from a JSON file as region-of-interest metas",
                                          "mgllava authors");

    trans_class->start = GST_DEBUG_FUNCPTR(gst_mgllava_boxes_start);
    trans_class->stop = GST_DEBUG_FUNCPTR(gst_mgllava_boxes_stop);
    trans_class->set_caps = GST_DEBUG_FUNCPTR(gst_mgllava_boxes_set_caps);
    trans_class->sink_event = GST_DEBUG_FUNCPTR(gst_mgllava_boxes_sink_event);
    trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_mgllava_boxes_transform_ip);

    gst_type_mark_as_plugin_api(GST_TYPE_MGLLAVA_BOXES_MATCH, 0);
}
