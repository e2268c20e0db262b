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
#include "gstmgllavameta.h"
#include "gstmgllavaoutput.h"
#include "gstmgllavaroi.h"
#include "mgl-json.h"

#include <gst/base/gstbasetransform.h>
#include <gst/video/video.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

GST_DEBUG_CATEGORY_STATIC (gst_mgllava_json_debug);
#define GST_CAT_DEFAULT gst_mgllava_json_debug

#define GST_TYPE_MGLLAVA_JSON (gst_mgllava_json_get_type ())
G_DECLARE_FINAL_TYPE (GstMgllavaJson, gst_mgllava_json, GST, MGLLAVA_JSON,
    GstBaseTransform)

struct _GstMgllavaJson
{
  GstBaseTransform parent;

  /* with OBJECT_LOCK */
  gchar *location;
  gboolean skip_empty;

  /* streaming thread */
  FILE *out;
  GstVideoInfo info;
  gboolean have_info;
  guint64 frame;
  GString *line;
};

enum
{
  PROP_0,
  PROP_LOCATION,
  PROP_SKIP_EMPTY,
};

G_DEFINE_TYPE (GstMgllavaJson, gst_mgllava_json, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (mgllavajson, "mgllavajson", GST_RANK_NONE,
    GST_TYPE_MGLLAVA_JSON);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink",
    GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src",
    GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS ("video/x-raw(ANY)"));

static void
append_time (GString * s, GstClockTime t)
{
  if (GST_CLOCK_TIME_IS_VALID (t))
    g_string_append_printf (s, "%" G_GUINT64_FORMAT, (guint64) t);
  else
    g_string_append (s, "null");
}

/* One answer as a JSON object, after ", " when @comma. */
static void
append_result (GString * s, const GstMgllavaResultMeta * m, gboolean comma)
{
  gchar num[G_ASCII_DTOSTR_BUF_SIZE];

  g_string_append (s, comma ? ", {\"text\": " : "{\"text\": ");
  mgl_json_append_string (s, m->text);
  g_string_append (s, ", \"prompt\": ");
  mgl_json_append_string (s, m->prompt);
  g_string_append (s, ", \"source_pts\": ");
  append_time (s, m->source_pts);
  g_string_append_printf (s, ", \"source_frame\": %" G_GUINT64_FORMAT
      ", \"n_tokens\": %u, \"n_objects\": %u, \"latency_ms\": %s}",
      m->source_frame, m->n_tokens, m->n_objects,
      g_ascii_formatd (num, sizeof num, "%.1f", m->latency_ms));
}

static gboolean
gst_mgllava_json_start (GstBaseTransform * trans)
{
  GstMgllavaJson *self = GST_MGLLAVA_JSON (trans);
  gchar *loc;

  GST_OBJECT_LOCK (self);
  loc = g_strdup (self->location);
  GST_OBJECT_UNLOCK (self);
  self->frame = 0;
  self->line = g_string_sized_new (1024);
  self->out = gst_mgllava_output_open (GST_ELEMENT (self),
      loc && *loc ? loc : "-");
  g_free (loc);
  return self->out != NULL;
}

static gboolean
gst_mgllava_json_stop (GstBaseTransform * trans)
{
  GstMgllavaJson *self = GST_MGLLAVA_JSON (trans);

  g_clear_pointer (&self->out, gst_mgllava_output_close);
  if (self->line)
    g_string_free (self->line, TRUE);
  self->line = NULL;
  self->have_info = FALSE;
  return TRUE;
}

static gboolean
gst_mgllava_json_set_caps (GstBaseTransform * trans, GstCaps * incaps,
    GstCaps * outcaps)
{
  GstMgllavaJson *self = GST_MGLLAVA_JSON (trans);

  self->have_info = gst_video_info_from_caps (&self->info, incaps);
  return TRUE;
}

/* Writes the line built in self->line. */
static GstFlowReturn
gst_mgllava_json_write (GstMgllavaJson * self)
{
  GString *s = self->line;

  if (fwrite (s->str, 1, s->len, self->out) != s->len || fflush (self->out)) {
    GST_ELEMENT_ERROR (self, RESOURCE, WRITE, ("Could not write JSON: %s",
            g_strerror (errno)), (NULL));
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

static GstFlowReturn
gst_mgllava_json_transform_ip (GstBaseTransform * trans, GstBuffer * buf)
{
  GstMgllavaJson *self = GST_MGLLAVA_JSON (trans);
  GString *s = self->line;
  gint w = self->have_info ? GST_VIDEO_INFO_WIDTH (&self->info) : 0;
  gint h = self->have_info ? GST_VIDEO_INFO_HEIGHT (&self->info) : 0;
  GArray *boxes = g_array_new (FALSE, FALSE, sizeof (MglBox));
  GstMgllavaRoiFilter f = { 0 };
  GstMgllavaResultMeta *m;
  gpointer state = NULL;
  gboolean skip_empty, any = FALSE;
  guint i;

  GST_OBJECT_LOCK (self);
  skip_empty = self->skip_empty;
  GST_OBJECT_UNLOCK (self);

  g_string_truncate (s, 0);
  g_string_append (s, "{\"pts\": ");
  append_time (s, GST_BUFFER_PTS (buf));
  g_string_append_printf (s, ", \"frame\": %" G_GUINT64_FORMAT
      ", \"width\": %d, \"height\": %d, \"objects\": [", self->frame, w, h);
  gst_mgllava_roi_collect (buf, w > 0 ? w : G_MAXINT, h > 0 ? h : G_MAXINT, &f,
      boxes);
  for (i = 0; i < boxes->len; i++) {
    const MglBox *b = &g_array_index (boxes, MglBox, i);
    gchar num[G_ASCII_DTOSTR_BUF_SIZE];

    g_string_append_printf (s, "%s{\"x\": %d, \"y\": %d, \"w\": %d, \"h\": %d, "
        "\"label\": ", i ? ", " : "", (gint) b->x1, (gint) b->y1,
        (gint) (b->x2 - b->x1), (gint) (b->y2 - b->y1));
    mgl_json_append_string (s, b->label);
    g_string_append_printf (s, ", \"confidence\": %s}",
        g_ascii_formatd (num, sizeof num, "%.4g", b->score));
  }
  g_string_append (s, "], \"results\": [");
  while ((m = gst_buffer_iterate_mgllava_result_meta (buf, &state))) {
    append_result (s, m, any);
    any = TRUE;
  }
  g_string_append (s, "]}\n");
  g_array_unref (boxes);
  self->frame++;

  if (skip_empty && !any)
    return GST_FLOW_OK;
  return gst_mgllava_json_write (self);
}

/* Answers delivered after the last frame (mgllavafilter at EOS): one line
 * with no frame, "pts": null. */
static gboolean
gst_mgllava_json_sink_event (GstBaseTransform * trans, GstEvent * event)
{
  GstMgllavaJson *self = GST_MGLLAVA_JSON (trans);
  guint n = gst_mgllava_late_results_event_get_size (event), i;

  if (n > 0 && self->out) {
    GString *s = self->line;
    gint w = self->have_info ? GST_VIDEO_INFO_WIDTH (&self->info) : 0;
    gint h = self->have_info ? GST_VIDEO_INFO_HEIGHT (&self->info) : 0;

    g_string_truncate (s, 0);
    g_string_append_printf (s, "{\"pts\": null, \"frame\": null, "
        "\"width\": %d, \"height\": %d, \"objects\": [], \"results\": [",
        w, h);
    for (i = 0; i < n; i++) {
      GstMgllavaResultMeta m;

      if (gst_mgllava_late_results_event_get (event, i, &m))
        append_result (s, &m, i > 0);
    }
    g_string_append (s, "]}\n");
    if (gst_mgllava_json_write (self) != GST_FLOW_OK) {
      gst_event_unref (event);
      return FALSE;
    }
  }
  return GST_BASE_TRANSFORM_CLASS (gst_mgllava_json_parent_class)->sink_event
      (trans, event);
}

static void
gst_mgllava_json_set_property (GObject * object, guint prop_id,
    const GValue * value, GParamSpec * pspec)
{
  GstMgllavaJson *self = GST_MGLLAVA_JSON (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_free (self->location);
      self->location = g_value_dup_string (value);
      break;
    case PROP_SKIP_EMPTY:
      self->skip_empty = g_value_get_boolean (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_mgllava_json_get_property (GObject * object, guint prop_id, GValue * value,
    GParamSpec * pspec)
{
  GstMgllavaJson *self = GST_MGLLAVA_JSON (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_LOCATION:
      g_value_set_string (value, self->location);
      break;
    case PROP_SKIP_EMPTY:
      g_value_set_boolean (value, self->skip_empty);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_mgllava_json_finalize (GObject * object)
{
  g_free (GST_MGLLAVA_JSON (object)->location);
  G_OBJECT_CLASS (gst_mgllava_json_parent_class)->finalize (object);
}

static void
gst_mgllava_json_init (GstMgllavaJson * self)
{
  self->location = g_strdup ("-");
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}

static void
gst_mgllava_json_class_init (GstMgllavaJsonClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_mgllava_json_debug, "mgllavajson", 0,
      "MG-LLaVA JSON writer");
  gobject_class->set_property = gst_mgllava_json_set_property;
  gobject_class->get_property = gst_mgllava_json_get_property;
  gobject_class->finalize = gst_mgllava_json_finalize;
  g_object_class_install_property (gobject_class, PROP_LOCATION,
      g_param_spec_string ("location", "Location",
          "File to write JSON lines to (\"-\" = standard output)", "-",
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (gobject_class, PROP_SKIP_EMPTY,
      g_param_spec_boolean ("skip-empty", "Skip empty",
          "Write only buffers that carry at least one MG-LLaVA result", FALSE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
          GST_PARAM_MUTABLE_PLAYING));
  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (element_class, "MG-LLaVA JSON writer",
      "Sink/Metadata", "Writes each frame's detections and MG-LLaVA answers "
      "as one JSON line", "mgllava developers");
  trans_class->start = GST_DEBUG_FUNCPTR (gst_mgllava_json_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_mgllava_json_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_mgllava_json_set_caps);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_mgllava_json_transform_ip);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_mgllava_json_sink_event);
}
