/* gstmgllavablobdetect.c: coloured-blob detector element.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */

/**
 * SECTION:element-mgllavablobdetect
 * @title: mgllavablobdetect
 *
 * A detector that needs no weights: finds saturated coloured regions
 * (HSV thresholds, 8-connected components) and attaches one
 * #GstVideoRegionOfInterestMeta per region, labelled with the colour name
 * (red, orange, yellow, green, cyan, blue, purple, magenta; white, grey and
 * black with #GstMgllavaBlobDetect:achromatic), with a "detection" param
 * structure carrying "confidence" as DL Streamer does. Pixels pass through
 * untouched.
 *
 * With #GstMgllavaBlobDetect:track (the default) each blob also gets a track
 * id that stays the same while the object moves (a simple IoU tracker,
 * detectors/gstmgllavatrack.h): written as DL Streamer's trackers write it,
 * in the meta's `id` and an "object_id" param structure with the int field
 * "id". A blob continues the track of the same colour whose last box it
 * overlaps most (IoU at least #GstMgllavaBlobDetect:track-iou); a track
 * unseen for more than #GstMgllavaBlobDetect:track-max-age frames ends.
 * A flush or a new stream forgets every track (ids keep counting up).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 videotestsrc pattern=ball ! video/x-raw,format=RGBx ! \
 *     mgllavablobdetect min-area=100 ! fakesink
 * ]|
 *
 * Since: 0.1
 */
#include "gstmgllavablobdetect.h"
#include "gstmgllavadetmeta.h"
#include "gstmgllavablob.h"
#include "gstmgllavatrack.h"

GST_DEBUG_CATEGORY_STATIC(gst_mgllava_blob_detect_debug);
#define GST_CAT_DEFAULT gst_mgllava_blob_detect_debug

enum {
    PROP_0,
    PROP_SATURATION_MIN,
    PROP_VALUE_MIN,
    PROP_HUE_TOLERANCE,
    PROP_MIN_AREA,
    PROP_MAX_OBJECTS,
    PROP_ACHROMATIC,
    PROP_WHITE_VALUE_MIN,
    PROP_TRACK,
    PROP_TRACK_IOU,
    PROP_TRACK_MAX_AGE,
};

#define DEFAULT_TRACK TRUE
static const GstMgllavaTrackParams default_track_params = GST_MGLLAVA_TRACK_PARAMS_INIT;

static const GstMgllavaBlobParams default_params = GST_MGLLAVA_BLOB_PARAMS_INIT;

#define FORMATS "{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, ARGB, ABGR, I420, NV12 }"

struct _GstMgllavaBlobDetect {
    GstBaseTransform parent;

    /*< private > */
    /* with OBJECT_LOCK */
    GstMgllavaBlobParams params;
    gboolean track;
    GstMgllavaTrackParams track_params;

    /* streaming thread only */
    GstVideoInfo info;
    gboolean yuv;
    gint pstride, r_off, g_off, b_off; /* packed RGB layouts */
    gint yuv_coef[5];                  /* 16.16: Y scale, R from V, G from U, G from V, B from U */
    gint y_offset;
    guint8* rgb_row; /* YUV: one row converted to RGB */
    GstMgllavaBlobDetector* detector;
    GArray* blobs; /* GstMgllavaBlob */
    GstMgllavaTracker* tracker;
    GArray* track_boxes; /* GstMgllavaTrackBox */
    GArray* track_ids;   /* gint */
};

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE(FORMATS)));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE(FORMATS)));

G_DEFINE_TYPE(GstMgllavaBlobDetect, gst_mgllava_blob_detect, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(mgllavablobdetect, "mgllavablobdetect", GST_RANK_NONE, GST_TYPE_MGLLAVA_BLOB_DETECT);

static gboolean gst_mgllava_blob_detect_set_caps(GstBaseTransform* trans, GstCaps* incaps, GstCaps* outcaps) {
    GstMgllavaBlobDetect* self = GST_MGLLAVA_BLOB_DETECT(trans);
    const GstVideoFormatInfo* finfo;

    if (!gst_video_info_from_caps(&self->info, incaps)) {
        GST_ERROR_OBJECT(self, "invalid caps %" GST_PTR_FORMAT, incaps);
        return FALSE;
    }
    finfo = self->info.finfo;
    self->yuv = GST_VIDEO_FORMAT_INFO_IS_YUV(finfo);

    if (self->yuv) {
        gdouble kr, kb, kg, ys, cs;

        if (!gst_video_color_matrix_get_Kr_Kb(self->info.colorimetry.matrix, &kr, &kb)) {
            kr = 0.299; /* BT.601 when the caps do not say */
            kb = 0.114;
        }
        kg = 1.0 - kr - kb;
        if (self->info.colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255) {
            ys = 1.0;
            cs = 1.0;
            self->y_offset = 0;
        } else {
            ys = 255.0 / 219.0;
            cs = 255.0 / 224.0;
            self->y_offset = 16;
        }
        self->yuv_coef[0] = (gint)(ys * 65536);
        self->yuv_coef[1] = (gint)(2 * (1 - kr) * cs * 65536);
        self->yuv_coef[2] = (gint)(2 * kb * (1 - kb) / kg * cs * 65536);
        self->yuv_coef[3] = (gint)(2 * kr * (1 - kr) / kg * cs * 65536);
        self->yuv_coef[4] = (gint)(2 * (1 - kb) * cs * 65536);
        self->rgb_row = g_realloc(self->rgb_row, (gsize)GST_VIDEO_INFO_WIDTH(&self->info) * 3);
    } else {
        self->pstride = GST_VIDEO_FORMAT_INFO_PSTRIDE(finfo, 0);
        self->r_off = GST_VIDEO_FORMAT_INFO_POFFSET(finfo, GST_VIDEO_COMP_R);
        self->g_off = GST_VIDEO_FORMAT_INFO_POFFSET(finfo, GST_VIDEO_COMP_G);
        self->b_off = GST_VIDEO_FORMAT_INFO_POFFSET(finfo, GST_VIDEO_COMP_B);
    }
    GST_DEBUG_OBJECT(self, "caps %" GST_PTR_FORMAT, incaps);
    return TRUE;
}

static inline guint8 clamp_u8(gint v) { return (guint8)CLAMP(v, 0, 255); }

/* I420 and NV12: one row of Y with its (subsampled) chroma row to RGB */
static void gst_mgllava_blob_detect_yuv_row(GstMgllavaBlobDetect* self, const guint8* yrow, const guint8* urow,
                                            const guint8* vrow, gint cstride) {
    const gint* k = self->yuv_coef;
    gint w = GST_VIDEO_INFO_WIDTH(&self->info), x;
    guint8* out = self->rgb_row;

    for (x = 0; x < w; x++, out += 3) {
        gint c = (x >> 1) * cstride;
        gint y = (yrow[x] - self->y_offset) * k[0];
        gint u = urow[c] - 128, v = vrow[c] - 128;

        out[0] = clamp_u8((y + k[1] * v + 32768) >> 16);
        out[1] = clamp_u8((y - k[2] * u - k[3] * v + 32768) >> 16);
        out[2] = clamp_u8((y + k[4] * u + 32768) >> 16);
    }
}

static GstFlowReturn gst_mgllava_blob_detect_transform_ip(GstBaseTransform* trans, GstBuffer* buf) {
    GstMgllavaBlobDetect* self = GST_MGLLAVA_BLOB_DETECT(trans);
    GstVideoFrame frame;
    GstMgllavaBlobParams params;
    GstMgllavaTrackParams track_params;
    gboolean track;
    gint width = GST_VIDEO_INFO_WIDTH(&self->info);
    gint height = GST_VIDEO_INFO_HEIGHT(&self->info);
    gint y;
    guint i, n;

    GST_OBJECT_LOCK(self);
    params = self->params;
    track = self->track;
    track_params = self->track_params;
    GST_OBJECT_UNLOCK(self);

    /* read only: the pixels are never written */
    if (!gst_video_frame_map(&frame, &self->info, buf, GST_MAP_READ | GST_VIDEO_FRAME_MAP_FLAG_NO_REF)) {
        GST_ELEMENT_ERROR(self, STREAM, FAILED, (NULL), ("could not map the video frame"));
        return GST_FLOW_ERROR;
    }

    gst_mgllava_blob_detector_begin(self->detector, &params, width, height);
    if (!self->yuv) {
        const guint8* data = GST_VIDEO_FRAME_PLANE_DATA(&frame, 0);
        gint stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);

        for (y = 0; y < height; y++)
            gst_mgllava_blob_detector_add_row(self->detector, data + (gsize)y * stride, self->pstride, self->r_off,
                                              self->g_off, self->b_off);
    } else {
        const guint8* yp = GST_VIDEO_FRAME_COMP_DATA(&frame, 0);
        const guint8* up = GST_VIDEO_FRAME_COMP_DATA(&frame, 1);
        const guint8* vp = GST_VIDEO_FRAME_COMP_DATA(&frame, 2);
        gint ys = GST_VIDEO_FRAME_COMP_STRIDE(&frame, 0);
        gint us = GST_VIDEO_FRAME_COMP_STRIDE(&frame, 1);
        gint vs = GST_VIDEO_FRAME_COMP_STRIDE(&frame, 2);
        /* I420: 1 byte per chroma sample; NV12: U and V interleaved */
        gint cps = GST_VIDEO_FRAME_COMP_PSTRIDE(&frame, 1);

        for (y = 0; y < height; y++) {
            gint cy = y >> 1;

            gst_mgllava_blob_detect_yuv_row(self, yp + (gsize)y * ys, up + (gsize)cy * us, vp + (gsize)cy * vs, cps);
            gst_mgllava_blob_detector_add_row(self->detector, self->rgb_row, 3, 0, 1, 2);
        }
    }
    gst_video_frame_unmap(&frame);

    g_array_set_size(self->blobs, 0);
    n = gst_mgllava_blob_detector_end(self->detector, self->blobs);
    if (track) {
        g_array_set_size(self->track_boxes, n);
        g_array_set_size(self->track_ids, n);
        for (i = 0; i < n; i++) {
            const GstMgllavaBlob* b = &g_array_index(self->blobs, GstMgllavaBlob, i);
            GstMgllavaTrackBox* tb = &g_array_index(self->track_boxes, GstMgllavaTrackBox, i);

            tb->x1 = b->x1;
            tb->y1 = b->y1;
            tb->x2 = b->x2;
            tb->y2 = b->y2;
            tb->label = b->label;
        }
        gst_mgllava_tracker_update(self->tracker, &track_params, (const GstMgllavaTrackBox*)self->track_boxes->data, n,
                                   (gint*)self->track_ids->data, NULL);
    }
    for (i = 0; i < n; i++) {
        const GstMgllavaBlob* b = &g_array_index(self->blobs, GstMgllavaBlob, i);
        GstVideoRegionOfInterestMeta* roi =
            gst_mgllava_det_attach(buf, width, height, b->x1, b->y1, b->x2, b->y2, b->confidence, b->label);

        if (roi && track) gst_mgllava_det_set_track_id(roi, g_array_index(self->track_ids, gint, i));
    }
    GST_LOG_OBJECT(self, "%u blobs at %" GST_TIME_FORMAT, n, GST_TIME_ARGS(GST_BUFFER_PTS(buf)));
    return GST_FLOW_OK;
}

/* a flush or a new stream: the tracks end */
static gboolean gst_mgllava_blob_detect_sink_event(GstBaseTransform* trans, GstEvent* event) {
    GstMgllavaBlobDetect* self = GST_MGLLAVA_BLOB_DETECT(trans);

    if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP || GST_EVENT_TYPE(event) == GST_EVENT_STREAM_START)
        gst_mgllava_tracker_reset(self->tracker);
    return GST_BASE_TRANSFORM_CLASS(gst_mgllava_blob_detect_parent_class)->sink_event(trans, event);
}

static gboolean gst_mgllava_blob_detect_start(GstBaseTransform* trans) {
    gst_mgllava_tracker_reset(GST_MGLLAVA_BLOB_DETECT(trans)->tracker);
    return TRUE;
}

static void gst_mgllava_blob_detect_set_property(GObject* object, guint prop_id, const GValue* value,
                                                 GParamSpec* pspec) {
    GstMgllavaBlobDetect* self = GST_MGLLAVA_BLOB_DETECT(object);

    GST_OBJECT_LOCK(self);
    switch (prop_id) {
    case PROP_SATURATION_MIN: self->params.saturation_min = g_value_get_uint(value); break;
    case PROP_VALUE_MIN: self->params.value_min = g_value_get_uint(value); break;
    case PROP_HUE_TOLERANCE: self->params.hue_tolerance = g_value_get_uint(value); break;
    case PROP_MIN_AREA: self->params.min_area = g_value_get_uint(value); break;
    case PROP_MAX_OBJECTS: self->params.max_objects = g_value_get_uint(value); break;
    case PROP_ACHROMATIC: self->params.achromatic = g_value_get_boolean(value); break;
    case PROP_WHITE_VALUE_MIN: self->params.white_value_min = g_value_get_uint(value); break;
    case PROP_TRACK: self->track = g_value_get_boolean(value); break;
    case PROP_TRACK_IOU: self->track_params.iou_min = g_value_get_double(value); break;
    case PROP_TRACK_MAX_AGE: self->track_params.max_age = g_value_get_uint(value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
    }
    GST_DEBUG_OBJECT(self, "%s changed", pspec->name);
    GST_OBJECT_UNLOCK(self);
}

static void gst_mgllava_blob_detect_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
    GstMgllavaBlobDetect* self = GST_MGLLAVA_BLOB_DETECT(object);

    GST_OBJECT_LOCK(self);
    switch (prop_id) {
    case PROP_SATURATION_MIN: g_value_set_uint(value, self->params.saturation_min); break;
    case PROP_VALUE_MIN: g_value_set_uint(value, self->params.value_min); break;
    case PROP_HUE_TOLERANCE: g_value_set_uint(value, self->params.hue_tolerance); break;
    case PROP_MIN_AREA: g_value_set_uint(value, self->params.min_area); break;
    case PROP_MAX_OBJECTS: g_value_set_uint(value, self->params.max_objects); break;
    case PROP_ACHROMATIC: g_value_set_boolean(value, self->params.achromatic); break;
    case PROP_WHITE_VALUE_MIN: g_value_set_uint(value, self->params.white_value_min); break;
    case PROP_TRACK: g_value_set_boolean(value, self->track); break;
    case PROP_TRACK_IOU: g_value_set_double(value, self->track_params.iou_min); break;
    case PROP_TRACK_MAX_AGE: g_value_set_uint(value, self->track_params.max_age); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec); break;
    }
    GST_OBJECT_UNLOCK(self);
}

static void gst_mgllava_blob_detect_finalize(GObject* object) {
    GstMgllavaBlobDetect* self = GST_MGLLAVA_BLOB_DETECT(object);

    gst_mgllava_blob_detector_free(self->detector);
    g_array_free(self->blobs, TRUE);
    gst_mgllava_tracker_free(self->tracker);
    g_array_free(self->track_boxes, TRUE);
    g_array_free(self->track_ids, TRUE);
    g_free(self->rgb_row);
    G_OBJECT_CLASS(gst_mgllava_blob_detect_parent_class)->finalize(object);
}

static void gst_mgllava_blob_detect_init(GstMgllavaBlobDetect* self) {
    self->params = default_params;
    self->detector = gst_mgllava_blob_detector_new();
    self->blobs = g_array_new(FALSE, FALSE, sizeof(GstMgllavaBlob));
    self->track = DEFAULT_TRACK;
    self->track_params = default_track_params;
    self->tracker = gst_mgllava_tracker_new();
    self->track_boxes = g_array_new(FALSE, FALSE, sizeof(GstMgllavaTrackBox));
    self->track_ids = g_array_new(FALSE, FALSE, sizeof(gint));
    gst_video_info_init(&self->info);

    /* metas are added: in place, not passthrough (writable buffers) */
    gst_base_transform_set_in_place(GST_BASE_TRANSFORM(self), TRUE);
    gst_base_transform_set_passthrough(GST_BASE_TRANSFORM(self), FALSE);
}

#define PARAM_FLAGS (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)

static void gst_mgllava_blob_detect_class_init(GstMgllavaBlobDetectClass* klass) {
    GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
    GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
    GstBaseTransformClass* trans_class = GST_BASE_TRANSFORM_CLASS(klass);

    GST_DEBUG_CATEGORY_INIT(gst_mgllava_blob_detect_debug, "mgllavablobdetect", 0, "MG-LLaVA coloured-blob detector");

    gobject_class->set_property = gst_mgllava_blob_detect_set_property;
    gobject_class->get_property = gst_mgllava_blob_detect_get_property;
    gobject_class->finalize = gst_mgllava_blob_detect_finalize;

    g_object_class_install_property(gobject_class, PROP_SATURATION_MIN,
                                    g_param_spec_uint("saturation-min", "Saturation minimum",
                                                      "HSV saturation (0-255) a pixel needs to be part of a blob", 0,
                                                      255, default_params.saturation_min, PARAM_FLAGS));
    g_object_class_install_property(gobject_class, PROP_VALUE_MIN,
                                    g_param_spec_uint("value-min", "Value minimum",
                                                      "HSV value (0-255) a pixel needs to be part of a blob; darker "
                                                      "pixels are black",
                                                      0, 255, default_params.value_min, PARAM_FLAGS));
    g_object_class_install_property(
        gobject_class, PROP_HUE_TOLERANCE,
        g_param_spec_uint("hue-tolerance", "Hue tolerance",
                          "Neighbouring pixels join the same blob when their hues differ by "
                          "at most this many degrees",
                          0, 180, default_params.hue_tolerance, PARAM_FLAGS));
    g_object_class_install_property(gobject_class, PROP_MIN_AREA,
                                    g_param_spec_uint("min-area", "Minimum area", "Blobs with fewer pixels are dropped",
                                                      1, G_MAXINT, default_params.min_area, PARAM_FLAGS));
    g_object_class_install_property(
        gobject_class, PROP_MAX_OBJECTS,
        g_param_spec_uint("max-objects", "Maximum objects",
                          "Keep at most this many blobs, highest confidence first (0 = all)", 0, G_MAXINT,
                          default_params.max_objects, PARAM_FLAGS));
    g_object_class_install_property(gobject_class, PROP_ACHROMATIC,
                                    g_param_spec_boolean("achromatic", "Achromatic",
                                                         "Also report white, grey and black regions",
                                                         default_params.achromatic, PARAM_FLAGS));
    g_object_class_install_property(
        gobject_class, PROP_WHITE_VALUE_MIN,
        g_param_spec_uint("white-value-min", "White value minimum",
                          "With achromatic: unsaturated pixels at least this bright are white", 0, 255,
                          default_params.white_value_min, PARAM_FLAGS));

    g_object_class_install_property(
        gobject_class, PROP_TRACK,
        g_param_spec_boolean("track", "Track",
                             "Give each blob a track id that stays while it moves (IoU tracker): the ROI meta's id "
                             "and an \"object_id\" param, as DL Streamer's trackers write them",
                             DEFAULT_TRACK, PARAM_FLAGS));
    g_object_class_install_property(gobject_class, PROP_TRACK_IOU,
                                    g_param_spec_double("track-iou", "Track IoU",
                                                        "Least intersection over union with a track's last box "
                                                        "(same colour) that continues the track",
                                                        0.01, 1.0, default_track_params.iou_min, PARAM_FLAGS));
    g_object_class_install_property(gobject_class, PROP_TRACK_MAX_AGE,
                                    g_param_spec_uint("track-max-age", "Track maximum age",
                                                      "Frames a track survives without a matching blob before it ends",
                                                      0, 100000, default_track_params.max_age, PARAM_FLAGS));

    gst_element_class_add_static_pad_template(element_class, &sink_template);
    gst_element_class_add_static_pad_template(element_class, &src_template);
    gst_element_class_set_static_metadata(element_class, "MG-LLaVA coloured-blob detector", "Filter/Analyzer/Video",
                                          "Detects coloured regions and attaches them as region-of-interest metas",
                                          "mgllava authors");

    trans_class->set_caps = GST_DEBUG_FUNCPTR(gst_mgllava_blob_detect_set_caps);
    trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_mgllava_blob_detect_transform_ip);
    trans_class->sink_event = GST_DEBUG_FUNCPTR(gst_mgllava_blob_detect_sink_event);
    trans_class->start = GST_DEBUG_FUNCPTR(gst_mgllava_blob_detect_start);
}
