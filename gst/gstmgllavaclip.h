/* gstmgllavaclip.h: mgllavafilter's clip mode (gstmgllavaclip.c): a question
 * about a window of frames, answered by the official MG-LLaVA video path. */
#ifndef __GST_MGLLAVA_CLIP_H__
#define __GST_MGLLAVA_CLIP_H__

#include <gst/gst.h>

G_BEGIN_DECLS

/* The properties (with OBJECT_LOCK). */
typedef struct {
    guint frames;     /* clip-frames: frames per window; 0 = clip mode off */
    guint64 duration; /* clip-duration (ns): the window's span, frames every duration/frames; 0 = sampling as
                       * interval / interval-time say */
    gboolean partial; /* clip-partial: a partial window at EOS is answered (TRUE) or dropped */
} GstMgllavaClipSettings;

/* The open window (streaming thread) and the counters (with the filter's lock). */
typedef struct {
    GPtrArray* window;         /* GstMgllavaJob*: the frames gathered so far, in order */
    guint64 n_frames;          /* frames gathered into windows */
    guint64 n_clips;           /* windows submitted (full ones and answered partial ones) */
    guint64 n_partial;         /* partial windows answered at EOS */
    guint64 n_partial_dropped; /* partial windows dropped at EOS (clip-partial=false) */
    guint64 n_reset;           /* open windows discarded by a flush or a new stream */
} GstMgllavaClipState;

void gst_mgllava_clip_settings_init(GstMgllavaClipSettings* s);

G_END_DECLS

#endif
