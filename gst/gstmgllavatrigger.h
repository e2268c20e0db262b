/* gstmgllavatrigger.h: mgllavafilter's triggers and per-object questions.
 *
 * Every frame, when a trigger or per-object mode is set, the filter reads
 * the frame's objects (GstVideoRegionOfInterestMeta, the object-labels and
 * min-object-size filters applied) with a track id each: the "object_id"
 * param's "id" as DL Streamer's trackers write it, else a non-zero ROI meta
 * id, else one the filter gives with its own IoU tracker
 * (detectors/gstmgllavatrack.h), written back onto the ROI meta the same
 * way. From those objects it decides whether the frame is sampled and, in
 * per-object mode, which objects get a question. docs/elements.md,
 * "Triggers" and "Per-object questions". */
#ifndef __GST_MGLLAVA_TRIGGER_H__
#define __GST_MGLLAVA_TRIGGER_H__

#include <gst/gst.h>
#include <gst/video/video.h>

#include "mgllava.h"

G_BEGIN_DECLS

/* Why a frame is sampled; also the `trigger` property's flags. */
typedef enum {
    GST_MGLLAVA_TRIGGER_LABEL = 1 << 0,     /* an object with a label in trigger-labels appears */
    GST_MGLLAVA_TRIGGER_NEW_TRACK = 1 << 1, /* a new track id appears */
    GST_MGLLAVA_TRIGGER_COUNT = 1 << 2,     /* the number of objects changes */
} GstMgllavaTriggerFlags;

#define GST_TYPE_MGLLAVA_TRIGGER_FLAGS (gst_mgllava_trigger_flags_get_type())
GType gst_mgllava_trigger_flags_get_type(void);

typedef enum {
    GST_MGLLAVA_OBJECT_MODE_OFF = 0,       /* one question about the frame */
    GST_MGLLAVA_OBJECT_MODE_NEW_TRACK = 1, /* one question per track, once */
    GST_MGLLAVA_OBJECT_MODE_INTERVAL = 2,  /* one question per track every object-interval */
} GstMgllavaObjectMode;

#define GST_TYPE_MGLLAVA_OBJECT_MODE (gst_mgllava_object_mode_get_type())
GType gst_mgllava_object_mode_get_type(void);

/* The properties (with the filter's OBJECT_LOCK). */
typedef struct {
    guint trigger;         /* GstMgllavaTriggerFlags */
    gchar* trigger_labels; /* comma-separated; NULL or empty = every label */
    guint64 cooldown;      /* ns of running time after a triggered frame */
    GstMgllavaObjectMode object_mode;
    guint64 object_interval; /* ns of running time per track (object-mode=interval) */
    gchar* object_prompt;    /* template: {label}, {position}, {id} */
    gchar* object_attribute; /* the ROI param's attribute_name */
} GstMgllavaTriggerSettings;

/* One object of the current frame. */
typedef struct {
    GstVideoRegionOfInterestMeta* roi; /* valid while the frame is processed */
    gint id;                           /* track id, never 0 */
    gboolean is_new;                   /* its track was not seen before */
    const gchar* label;                /* the ROI's label (gst_mgllava_roi_meta_get_label) */
    gdouble confidence;
    gdouble x1, y1, x2, y2; /* pixels, clipped to the frame */
} GstMgllavaFrameObject;

/* A per-object question of a request (owned strings). */
typedef struct {
    gint id;
    gchar* label;
    gchar* prompt;
    MglBox box; /* box.label is label */
} GstMgllavaObjectQuestion;

/* The streaming thread's state. */
typedef struct {
    struct _GstMgllavaTracker* tracker; /* ids for ROI metas that carry none (gstmgllavatrack.h) */
    GHashTable* tracks;                 /* id -> GstMgllavaTrackInfo */
    GArray* objects;                    /* GstMgllavaFrameObject: the current frame's */
    GArray* questions;                  /* GstMgllavaObjectQuestion: for the next request */
    gint last_count;
    GstClockTime last_fire_rt;
    guint64 frame;
} GstMgllavaTriggerState;

/* Why frames were sampled and what per-object mode did (with the filter's lock). */
typedef struct {
    guint64 interval;  /* sampled by interval or interval-time */
    guint64 label;     /* by the label trigger */
    guint64 new_track; /* by the new-track trigger */
    guint64 count;     /* by the count trigger */
    guint64 objects;   /* by per-object mode (an object was due) */
    guint64 cooled;    /* frames a trigger fired on inside the cooldown: not sampled */
    guint64 object_questions, object_answers;
} GstMgllavaTriggerStats;

/* The track ids of the filter's own tracker start here, above what upstream
 * trackers give in practice, so the two never meet in one stream. */
#define GST_MGLLAVA_TRIGGER_OWN_ID_BASE (1 << 30)

/* The default object-prompt. */
#define GST_MGLLAVA_DEFAULT_OBJECT_PROMPT "What shape is the {label} object?"
#define GST_MGLLAVA_DEFAULT_OBJECT_ATTRIBUTE "mgllava"

/* The name of the param structure a per-object answer adds to its ROI meta. */
#define GST_MGLLAVA_OBJECT_ANSWER_PARAM "mgllava-answer"

void gst_mgllava_trigger_settings_init(GstMgllavaTriggerSettings* s);
void gst_mgllava_trigger_settings_clear(GstMgllavaTriggerSettings* s);
void gst_mgllava_trigger_state_init(GstMgllavaTriggerState* st);
void gst_mgllava_trigger_state_clear(GstMgllavaTriggerState* st);
/* A flush, a new stream, start(): tracks, counts and cooldown start over. */
void gst_mgllava_trigger_state_reset(GstMgllavaTriggerState* st);

/* "{label}", "{position}" and "{id}" of @tmpl replaced; any other "{NAME}"
 * by the "label" of @roi's param structure whose attribute_name (else whose
 * name) is NAME, the last one added (a classifier's result, or an earlier
 * mgllavafilter's per-object answer with object-attribute=NAME), and kept as
 * it is when @roi (may be NULL) has none; "{{" and "}}" are literal braces.
 * g_free the result. */
gchar* gst_mgllava_object_prompt_expand(const gchar* tmpl, const gchar* label, const gchar* position, gint id,
                                        GstVideoRegionOfInterestMeta* roi);

/* The "label" of @roi's param structure for attribute @name (see above); NULL when none. */
const gchar* gst_mgllava_roi_meta_get_attribute(GstVideoRegionOfInterestMeta* roi, const gchar* name, gsize len);

/* The place of a point in a width x height frame in the words of the demo
 * captions: "top left", "top", "top right", "left", "center", "right",
 * "bottom left", "bottom", "bottom right" (thirds of the frame). */
const gchar* gst_mgllava_position_words(gdouble cx, gdouble cy, gint width, gint height);

/* The track id of a ROI meta as upstream wrote it ("object_id" param's
 * "id", else a non-zero meta id); 0 when it has none. */
gint gst_mgllava_roi_meta_get_track_id(GstVideoRegionOfInterestMeta* roi);

void gst_mgllava_object_question_clear(gpointer q);

G_END_DECLS

#endif
