/* gstmgllavameta.h: the result of one MG-LLaVA inference, attached to a video
 * buffer by mgllavafilter. Link with libgstmgllavameta-1.0 (pkg-config
 * gstreamer-mgllava-meta-1.0) and include it as GStreamer's own headers are:
 *
 *   #include <gst/mgllava/gstmgllavameta.h>
 *
 * GObject introspection: namespace GstMgllava-1.0 (GstMgllava-1.0.typelib),
 * e.g. in Python GstMgllava.buffer_get_mgllava_result_meta(buf).text. The
 * annotations below are for g-ir-scanner (docs/introspection.md). */
#ifndef __GST_MGLLAVA_META_H__
#define __GST_MGLLAVA_META_H__

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_MGLLAVA_RESULT_META_API_TYPE (gst_mgllava_result_meta_api_get_type())
#define GST_MGLLAVA_RESULT_META_INFO (gst_mgllava_result_meta_get_info())

typedef struct _GstMgllavaResultMeta GstMgllavaResultMeta;

/**
 * GstMgllavaResultMeta:
 * @meta: parent #GstMeta
 * @text: the generated answer (UTF-8, stripped)
 * @prompt: the question it answers
 * @source_pts: PTS of the frame the answer is about (in `latest` mode this is
 *   an earlier frame than the one carrying the meta)
 * @source_frame: index of that frame in the stream (0-based, counted by mgllavafilter)
 * @n_tokens: number of generated tokens
 * @n_objects: number of object tokens the model saw (>= 1 when objects are used)
 * @latency_ms: wall time from sampling the frame to the finished answer
 * @preprocess_ms, @vision_ms, @prefill_ms, @decode_ms: engine stage timings
 * @json: (nullable): with a response schema (mgllavafilter's response-schema),
 *   the answer as one compact JSON value when it is complete (it parses and
 *   validates against the schema); %NULL otherwise. Appended after
 *   @decode_ms: the fields above keep their offsets.
 * @constraint: (nullable): with a response schema or grammar, how the answer
 *   ended: "complete", "incomplete" (the token budget ended inside the
 *   structure: @text is what was generated, @json is %NULL) or "invalid";
 *   %NULL when the answer was not constrained
 * @object_id: a per-object answer (mgllavafilter's object-mode): the track id
 *   of the object it is about (never 0); 0 for an answer about the whole frame.
 *   Appended after @constraint, set with gst_mgllava_result_meta_set_object()
 * @object_label: (nullable): a per-object answer: the object's label
 * @object_x, @object_y, @object_w, @object_h: a per-object answer: the
 *   object's box in the source frame's pixels (the box given to the model)
 * @clip_frames: an answer about a clip (mgllavafilter's clip-frames): the
 *   number of frames it saw (the window's, fewer for a partial window at
 *   EOS); 0 for an answer about one frame. Appended after @object_h, set
 *   with gst_mgllava_result_meta_set_clip(); @source_pts and @source_frame
 *   are then the window's last frame
 * @clip_start_pts: a clip answer: PTS of the window's first frame
 *   (GST_CLOCK_TIME_NONE otherwise)
 * @clip_end_pts: a clip answer: PTS of the window's last frame
 *
 * The struct only grows at its end. The functions that take caller-filled
 * values (gst_buffer_add_mgllava_result_meta_full(),
 * gst_mgllava_result_meta_from_structure()) read and write only the fields
 * up to @decode_ms, so a program built before @json existed keeps working;
 * @json and @constraint go through gst_mgllava_result_meta_set_constraint()
 * and gst_mgllava_result_structure_get_constraint().
 */
struct _GstMgllavaResultMeta {
    GstMeta meta;

    gchar* text;
    gchar* prompt;
    GstClockTime source_pts;
    guint64 source_frame;
    guint n_tokens;
    guint n_objects;
    gdouble latency_ms;
    gdouble preprocess_ms;
    gdouble vision_ms;
    gdouble prefill_ms;
    gdouble decode_ms;
    gchar* json;
    gchar* constraint;
    gint object_id;
    gchar* object_label;
    gint object_x, object_y, object_w, object_h;
    guint clip_frames;
    GstClockTime clip_start_pts;
    GstClockTime clip_end_pts;
};

/**
 * gst_mgllava_result_meta_api_get_type:
 *
 * Returns: the #GType of the result meta API ("GstMgllavaResultMetaAPI").
 */
GType gst_mgllava_result_meta_api_get_type(void);

/**
 * gst_mgllava_result_meta_get_info:
 *
 * Returns: (transfer none): the #GstMetaInfo of #GstMgllavaResultMeta.
 */
const GstMetaInfo* gst_mgllava_result_meta_get_info(void);

/**
 * gst_buffer_add_mgllava_result_meta:
 * @buffer: a writable #GstBuffer
 * @text: the answer (copied)
 * @prompt: the question (copied)
 * @source_pts: PTS of the frame the answer is about
 * @source_frame: index of that frame
 *
 * Adds a meta; text and prompt are copied.
 *
 * Returns: (transfer none) (nullable): the new meta, owned by @buffer.
 */
GstMgllavaResultMeta* gst_buffer_add_mgllava_result_meta(GstBuffer* buffer, const gchar* text, const gchar* prompt,
                                                         GstClockTime source_pts, guint64 source_frame);

/**
 * gst_buffer_add_mgllava_result_meta_full:
 * @buffer: a writable #GstBuffer
 * @fields: the values (another meta, or a value the caller filled; its
 *   #GstMeta header is not read)
 *
 * Adds a meta with every field of @fields; text and prompt are copied, NULL
 * ones as "".
 *
 * Returns: (transfer none) (nullable): the new meta, owned by @buffer.
 */
GstMgllavaResultMeta* gst_buffer_add_mgllava_result_meta_full(GstBuffer* buffer, const GstMgllavaResultMeta* fields);

/**
 * gst_mgllava_result_meta_set_constraint:
 * @meta: a #GstMgllavaResultMeta on a buffer
 * @json: (nullable): the answer as compact JSON text, or %NULL
 * @constraint: (nullable): "complete", "incomplete", "invalid", or %NULL
 *
 * Sets @meta's @json and @constraint fields (copied; the old values freed).
 */
void gst_mgllava_result_meta_set_constraint(GstMgllavaResultMeta* meta, const gchar* json, const gchar* constraint);

/**
 * gst_mgllava_result_meta_set_object:
 * @meta: a #GstMgllavaResultMeta on a buffer
 * @id: the object's track id (0: the answer is about the whole frame)
 * @label: (nullable): the object's label
 * @x: the object's box: left, in pixels
 * @y: top
 * @w: width
 * @h: height
 *
 * Sets @meta's object fields (@label copied; the old one freed).
 */
void gst_mgllava_result_meta_set_object(GstMgllavaResultMeta* meta, gint id, const gchar* label, gint x, gint y, gint w,
                                        gint h);

/**
 * gst_mgllava_result_meta_set_clip:
 * @meta: a #GstMgllavaResultMeta on a buffer
 * @n_frames: the frames of the clip the answer is about (0: one frame)
 * @start_pts: PTS of the clip's first frame
 * @end_pts: PTS of its last frame
 *
 * Sets @meta's clip fields.
 */
void gst_mgllava_result_meta_set_clip(GstMgllavaResultMeta* meta, guint n_frames, GstClockTime start_pts,
                                      GstClockTime end_pts);

/**
 * gst_buffer_get_mgllava_result_meta:
 * @buffer: a #GstBuffer
 *
 * Returns: (transfer none) (nullable): the first result meta of @buffer, or
 *   %NULL.
 */
GstMgllavaResultMeta* gst_buffer_get_mgllava_result_meta(GstBuffer* buffer);

/**
 * gst_buffer_iterate_mgllava_result_meta:
 * @buffer: a #GstBuffer
 * @state: (inout) (nullable) (transfer none): an opaque state, %NULL to
 *   start
 *
 * Iterates the result metas of @buffer in the order they were added: pass a
 * %NULL-initialised state and call again with the state it returns until
 * the result is %NULL.
 *
 * Returns: (transfer none) (nullable): the next result meta, or %NULL at the
 *   end.
 */
GstMgllavaResultMeta* gst_buffer_iterate_mgllava_result_meta(GstBuffer* buffer, gpointer* state);

/**
 * gst_mgllava_result_meta_to_structure:
 * @meta: a #GstMgllavaResultMeta
 *
 * The fields (all of them, @json and @constraint included: pass a meta from
 * a buffer or a value of this version of the struct) as the bus message
 * carries them; "json" and "constraint" are present only when set.
 *
 * Returns: (transfer full): the same fields as a #GstStructure named
 *   "mgllava-result" (the bus message body).
 */
GstStructure* gst_mgllava_result_meta_to_structure(const GstMgllavaResultMeta* meta);

/**
 * gst_mgllava_result_meta_from_structure:
 * @s: (nullable): an "mgllava-result" structure (the bus message body, or an
 *   element of a late-results event)
 * @fields: (out caller-allocates): the fields read; text and prompt point
 *   into @s (valid while it lives; never %NULL)
 *
 * Fills the fields up to @decode_ms (see gst_mgllava_result_structure_get_constraint()
 * for the others).
 *
 * Returns: %FALSE when @s is not an "mgllava-result" structure.
 */
gboolean gst_mgllava_result_meta_from_structure(const GstStructure* s, GstMgllavaResultMeta* fields);

/**
 * gst_mgllava_result_structure_get_constraint:
 * @s: (nullable): an "mgllava-result" structure
 * @json: (out) (optional) (nullable) (transfer none): the answer's JSON text, or %NULL
 * @constraint: (out) (optional) (nullable) (transfer none): how a constrained
 *   answer ended, or %NULL
 *
 * The fields appended to the meta, as the structure carries them (strings
 * valid while @s lives).
 *
 * Returns: %FALSE when @s is not an "mgllava-result" structure.
 */
gboolean gst_mgllava_result_structure_get_constraint(const GstStructure* s, const gchar** json,
                                                     const gchar** constraint);

/**
 * gst_mgllava_result_structure_get_object:
 * @s: (nullable): an "mgllava-result" structure
 * @id: (out) (optional): the object's track id
 * @label: (out) (optional) (nullable) (transfer none): its label
 * @x: (out) (optional): its box: left
 * @y: (out) (optional): top
 * @w: (out) (optional): width
 * @h: (out) (optional): height
 *
 * The object of a per-object answer as the structure carries it
 * ("object-id", "object-label", "object-x", "object-y", "object-w",
 * "object-h", present only on per-object answers).
 *
 * Returns: %FALSE (the outputs 0 and %NULL) when @s is not a per-object
 *   answer.
 */
gboolean gst_mgllava_result_structure_get_object(const GstStructure* s, gint* id, const gchar** label, gint* x, gint* y,
                                                 gint* w, gint* h);

/**
 * gst_mgllava_result_structure_get_clip:
 * @s: (nullable): an "mgllava-result" structure
 * @n_frames: (out) (optional): the clip's frames
 * @start_pts: (out) (optional): PTS of its first frame
 * @end_pts: (out) (optional): PTS of its last frame
 *
 * The clip of an answer about a clip as the structure carries it
 * ("clip-frames", "clip-start-pts", "clip-end-pts", present only on clip
 * answers).
 *
 * Returns: %FALSE (the outputs 0 and GST_CLOCK_TIME_NONE) when @s is not a
 *   clip answer.
 */
gboolean gst_mgllava_result_structure_get_clip(const GstStructure* s, guint* n_frames, GstClockTime* start_pts,
                                               GstClockTime* end_pts);

/**
 * GST_MGLLAVA_LATE_RESULTS_EVENT:
 *
 * The structure name of the custom downstream serialized event
 * (GST_EVENT_CUSTOM_DOWNSTREAM) that mgllavafilter sends on its src pad at
 * EOS, before forwarding the EOS, when answers remain that no video buffer
 * will carry (the last sampled frames have already gone downstream):
 *
 *   mgllava-late-results, results=(GstValueArray)< (GstStructure)mgllava-result, ... >
 *
 * Each element of `results` is an "mgllava-result" structure with the bus
 * message's fields (text, prompt, source-pts, source-frame, n-tokens, ...),
 * in the order the frames were sampled. It is never sent empty, and never as
 * an extra video buffer. mgllavajson writes it as one line with "pts": null.
 */
#define GST_MGLLAVA_LATE_RESULTS_EVENT "mgllava-late-results"

/**
 * gst_mgllava_late_results_event_new:
 * @results: (array length=n): the answers (copied)
 * @n: how many
 *
 * Returns: (transfer full): the late-results event for @n results.
 */
GstEvent* gst_mgllava_late_results_event_new(const GstMgllavaResultMeta* const* results, guint n);

/**
 * gst_mgllava_late_results_event_get_size:
 * @event: a #GstEvent
 *
 * Returns: the number of results in a late-results event; 0 for any other
 *   event.
 */
guint gst_mgllava_late_results_event_get_size(GstEvent* event);

/**
 * gst_mgllava_late_results_event_get:
 * @event: a late-results #GstEvent
 * @index: which result
 * @fields: (out caller-allocates): the result, as
 *   gst_mgllava_result_meta_from_structure() fills it (strings valid while
 *   the event lives)
 *
 * Returns: %FALSE when @index is out of range or @event is not a
 *   late-results event.
 */
gboolean gst_mgllava_late_results_event_get(GstEvent* event, guint index, GstMgllavaResultMeta* fields);

/**
 * gst_mgllava_late_results_event_get_structure:
 * @event: a late-results #GstEvent
 * @index: which result
 *
 * Returns: (transfer none) (nullable): the "mgllava-result" structure of
 *   result @index (valid while @event lives), or %NULL when @index is out of
 *   range or @event is not a late-results event.
 */
const GstStructure* gst_mgllava_late_results_event_get_structure(GstEvent* event, guint index);

G_END_DECLS

#endif
