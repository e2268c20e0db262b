/* gstmgllavajson.c
 *
 * SECTION:element-mgllavajson
 * @title: mgllavajson
 *
 * Passthrough element that writes one JSON object per buffer, one per line,
 * with the frame's detections (GstVideoRegionOfInterestMeta) and the
 * MG-LLaVA answers attached to it (#GstMgllavaResultMeta):
 *
 * |[
 * {"pts": 0, "frame": 0, "width": 640, "height": 480,
 *  "objects": [{"x": 10, "y": 20, "w": 30, "h": 40, "label": "red", "confidence": 0.9}],
 *  "results": [{"text": "...", "prompt": "...", "source_pts": 0, "source_frame": 0,
 *               "n_tokens": 12, "n_objects": 1, "latency_ms": 35.2}]}
 * ]|
 *
 * `location=-` writes to standard output. Fields may be added, never renamed.
 * `format=dlstreamer` writes DL Streamer gvametaconvert's layout instead;
 * `timings`, `source` and `tags` add fields (gstmgllavaformat.c,
 * docs/publishing.md, docs/mgllava-frame.schema.json,
 * docs/dlstreamer-frame.schema.json).
 *
 * Answers that mgllavafilter delivers after the last frame, at EOS (the
 * #GST_MGLLAVA_LATE_RESULTS_EVENT custom event), make one more line with no
 * frame: `"pts": null, "frame": null`, no objects, and the results (each with
 * its source_pts and source_frame):
 *
 * |[
 * {"pts": null, "frame": null, "width": 640, "height": 480, "objects": [],
 *  "results": [{"text": "...", ..., "source_pts": 3166666666, "source_frame": 95, ...}]}
 * ]|
 */
#include "gstmgllavaformat.h"
#include "gstmgllavameta.h"
#include "gstmgllavaoutput.h"

#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC(gst_mgllava_json_debug);
#define GST_CAT_DEFAULT gst_mgllava_json_debug

#define GST_TYPE_MGLLAVA_JSON (gst_mgllava_json_get_type())
G_DECLARE_FINAL_TYPE(GstMgllavaJson, gst_mgllava_json, GST, MGLLAVA_JSON, GstBaseTransform)

struct _GstMgllavaJson {
    GstBaseTransform parent;

    /* with OBJECT_LOCK */
    gchar* location;
    gboolean skip_empty;
    GstMgllavaFormatSettings fmt;

    /* streaming thread */
    FILE* out;
    GstVideoInfo info;
    gboolean have_info;
    guint64 frame;
    GString* line;
};

enum {
    PROP_0,
    PROP_LOCATION,
    PROP_SKIP_EMPTY,
    PROP_FORMAT,
    PROP_TIMINGS,
    PROP_SOURCE,
    PROP_TAGS,
};

G_DEFINE_TYPE(GstMgllavaJson, gst_mgllava_json, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(mgllavajson, "mgllavajson", GST_RANK_NONE, GST_TYPE_MGLLAVA_JSON);

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw(ANY)"));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw(ANY)"));

static gboolean gst_mgllava_json_start(GstBaseTransform* trans) {
    GstMgllavaJson* self = GST_MGLLAVA_JSON(trans);
    gchar* loc;

    GST_OBJECT_LOCK(self);
    loc = g_strdup(self->location);
    GST_OBJECT_UNLOCK(self);
    self->frame = 0;
    self->line = g_string_sized_new(1024);
    self->out = gst_mgllava_output_open(GST_ELEMENT(self), loc && *loc ? loc : "-");
    g_free(loc);
    return self->out != NULL;
}

static gboolean gst_mgllava_json_stop(GstBaseTransform* trans) {
    GstMgllavaJson* self = GST_MGLLAVA_JSON(trans);

    g_clear_pointer(&self->out, gst_mgllava_output_close);
    if (self->line) g_string_free(self->line, TRUE);
    self->line = NULL;
    self->have_info = FALSE;
    return TRUE;
}

static gboolean gst_mgllava_json_set_caps(GstBaseTransform* trans, GstCaps* incaps, GstCaps* outcaps) {
    GstMgllavaJson* self = GST_MGLLAVA_JSON(trans);

    self->have_info = gst_video_info_from_caps(&self->info, incaps);
    return TRUE;
}

/* Writes the line built in self->line. */
static GstFlowReturn gst_mgllava_json_write(GstMgllavaJson* self) {
    GString* s = self->line;

    if (fwrite(s->str, 1, s->len, self->out) != s->len || fflush(self->out)) {
        GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("Could not write JSON: %s", g_strerror(errno)), (NULL));
        return GST_FLOW_ERROR;
    }
    return GST_FLOW_OK;
}

static GstFlowReturn gst_mgllava_json_transform_ip(GstBaseTransform* trans, GstBuffer* buf) {
    GstMgllavaJson* self = GST_MGLLAVA_JSON(trans);
    GstMgllavaFormatSettings st;
    gboolean skip_empty;
    guint n;

    GST_OBJECT_LOCK(self);
    skip_empty = self->skip_empty;
    gst_mgllava_format_settings_copy(&st, &self->fmt);
    GST_OBJECT_UNLOCK(self);

    n = gst_mgllava_format_buffer(self->line, &st, buf, self->have_info ? &self->info : NULL, &trans->segment,
                                  self->frame);
    gst_mgllava_format_settings_clear(&st);
    self->frame++;

    if (skip_empty && n == 0) return GST_FLOW_OK;
    return gst_mgllava_json_write(self);
}

/* Answers delivered after the last frame (mgllavafilter at EOS): one line
 * with no frame, "pts": null. */
static gboolean gst_mgllava_json_sink_event(GstBaseTransform* trans, GstEvent* event) {
    GstMgllavaJson* self = GST_MGLLAVA_JSON(trans);
    guint n = gst_mgllava_late_results_event_get_size(event);

    if (n > 0 && self->out) {
        GstMgllavaFormatSettings st;

        GST_OBJECT_LOCK(self);
        gst_mgllava_format_settings_copy(&st, &self->fmt);
        GST_OBJECT_UNLOCK(self);
        gst_mgllava_format_late_results(self->line, &st, event, self->have_info ? &self->info : NULL);
        gst_mgllava_format_settings_clear(&st);
        if (self->line->len > 0 && gst_mgllava_json_write(self) != GST_FLOW_OK) {
            gst_event_unref(event);
            return FALSE;
        }
    }
    return GST_BASE_TRANSFORM_CLASS(gst_mgllava_json_parent_class)->sink_event(trans, event);
}

static void gst_mgllava_json_set_property(GObject* object, guint prop_id, const GValue* value, GParamSpec* pspec) {
    GstMgllavaJson* self = GST_MGLLAVA_JSON(object);

    GST_OBJECT_LOCK(self);
    switch (prop_id) {
    case PROP_LOCATION:
        g_free(self->location);
        self->location = g_value_dup_string(value);
        break;
    case PROP_SKIP_EMPTY: self->skip_empty = g_value_get_boolean(value); break;
    case PROP_FORMAT: self->fmt.format = g_value_get_enum(value); break;
    case PROP_TIMINGS: self->fmt.timings = g_value_get_boolean(value); break;
    case PROP_SOURCE:
        g_free(self->fmt.source);
        self->fmt.source = g_value_dup_string(value);
        break;
    case PROP_TAGS:
        if (!gst_mgllava_format_tags_valid(g_value_get_string(value))) {
            g_warning("mgllavajson: tags must be one JSON object, not \"%s\"", g_value_get_string(value));
            break;
        }
        g_free(self->fmt.tags);
        self->fmt.tags = g_value_dup_string(value);
        break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    }
    GST_OBJECT_UNLOCK(self);
}

static void gst_mgllava_json_get_property(GObject* object, guint prop_id, GValue* value, GParamSpec* pspec) {
    GstMgllavaJson* self = GST_MGLLAVA_JSON(object);

    GST_OBJECT_LOCK(self);
    switch (prop_id) {
    case PROP_LOCATION: g_value_set_string(value, self->location); break;
    case PROP_SKIP_EMPTY: g_value_set_boolean(value, self->skip_empty); break;
    case PROP_FORMAT: g_value_set_enum(value, self->fmt.format); break;
    case PROP_TIMINGS: g_value_set_boolean(value, self->fmt.timings); break;
    case PROP_SOURCE: g_value_set_string(value, self->fmt.source); break;
    case PROP_TAGS: g_value_set_string(value, self->fmt.tags); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    }
    GST_OBJECT_UNLOCK(self);
}

static void gst_mgllava_json_finalize(GObject* object) {
    g_free(GST_MGLLAVA_JSON(object)->location);
    gst_mgllava_format_settings_clear(&GST_MGLLAVA_JSON(object)->fmt);
    G_OBJECT_CLASS(gst_mgllava_json_parent_class)->finalize(object);
}

static void gst_mgllava_json_init(GstMgllavaJson* self) {
    self->location = g_strdup("-");
    gst_base_transform_set_passthrough(GST_BASE_TRANSFORM(self), TRUE);
}

static void gst_mgllava_json_class_init(GstMgllavaJsonClass* klass) {
    GObjectClass* gobject_class = G_OBJECT_CLASS(klass);
    GstElementClass* element_class = GST_ELEMENT_CLASS(klass);
    GstBaseTransformClass* trans_class = GST_BASE_TRANSFORM_CLASS(klass);

    GST_DEBUG_CATEGORY_INIT(gst_mgllava_json_debug, "mgllavajson", 0, "MG-LLaVA JSON writer");
    gobject_class->set_property = gst_mgllava_json_set_property;
    gobject_class->get_property = gst_mgllava_json_get_property;
    gobject_class->finalize = gst_mgllava_json_finalize;
    g_object_class_install_property(
        gobject_class, PROP_LOCATION,
        g_param_spec_string("location", "Location", "File to write JSON lines to (\"-\" = standard output)", "-",
                            G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
    g_object_class_install_property(
        gobject_class, PROP_SKIP_EMPTY,
        g_param_spec_boolean("skip-empty", "Skip empty", "Write only buffers that carry at least one MG-LLaVA result",
                             FALSE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
    g_object_class_install_property(
        gobject_class, PROP_FORMAT,
        g_param_spec_enum("format", "Format",
                          "JSON layout: mgllava (the project's schema) or dlstreamer (DL "
                          "Streamer gvametaconvert's layout, the answers in objects[] and "
                          "\"mgllava\"); see docs/publishing.md",
                          GST_TYPE_MGLLAVA_FORMAT, GST_MGLLAVA_FORMAT_MGLLAVA,
                          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
    g_object_class_install_property(
        gobject_class, PROP_TIMINGS,
        g_param_spec_boolean("timings", "Timings",
                             "Add each answer's engine stage timings (\"timings_ms\": "
                             "preprocess, vision, prefill, decode)",
                             FALSE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
    g_object_class_install_property(
        gobject_class, PROP_SOURCE,
        g_param_spec_string("source", "Source",
                            "A name of the stream written as \"source\" in every line (as "
                            "gvametaconvert's source); unset: none",
                            NULL, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
    g_object_class_install_property(
        gobject_class, PROP_TAGS,
        g_param_spec_string("tags", "Tags",
                            "A JSON object written as \"tags\" in every line (as "
                            "gvametaconvert's tags); unset: none",
                            NULL, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
    gst_element_class_add_static_pad_template(element_class, &sink_template);
    gst_element_class_add_static_pad_template(element_class, &src_template);
    gst_element_class_set_static_metadata(element_class, "MG-LLaVA JSON writer", "Sink/Metadata",
                                          "Writes each frame's detections and MG-LLaVA answers "
                                          "as one JSON line",
                                          "mgllava developers");
    trans_class->start = GST_DEBUG_FUNCPTR(gst_mgllava_json_start);
    trans_class->stop = GST_DEBUG_FUNCPTR(gst_mgllava_json_stop);
    trans_class->set_caps = GST_DEBUG_FUNCPTR(gst_mgllava_json_set_caps);
    trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_mgllava_json_transform_ip);
    trans_class->sink_event = GST_DEBUG_FUNCPTR(gst_mgllava_json_sink_event);
}
