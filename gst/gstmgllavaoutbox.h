/* gstmgllavaoutbox.h: mgllavapublish's bounded outgoing queue, shared by the
 * streaming thread (which only appends, never waits) and one sender thread
 * (which talks to the broker).
 *
 * The queue is ordered: [in flight ...][waiting ...]. A message is "waiting"
 * until the sender hands it to the broker, then "in flight" until the broker
 * acknowledges it (MQTT QoS 1: PUBACK; QoS 0: written to the socket; Redis:
 * the XADD reply; file: written). When the connection is lost every message
 * in flight becomes waiting again, in its place, and is sent again after the
 * reconnection (at least once: a message the broker took just before the
 * connection dropped may arrive twice).
 *
 * At most max-queue messages wait. Overflow policy when a new message finds
 * the queue full: drop-oldest (the oldest waiting message is discarded) or
 * drop-newest (the new one is); either way one message is counted in
 * "dropped". Messages in flight are never dropped.
 *
 * Counts: enqueued = published + dropped + failed + discarded + queued at
 * every snapshot (queued = waiting + in flight; discarded = left in the queue
 * when the element stopped). */
#ifndef __GST_MGLLAVA_OUTBOX_H__
#define __GST_MGLLAVA_OUTBOX_H__

#include <gst/gst.h>

G_BEGIN_DECLS

typedef struct {
    gchar* data;
    gsize len;
    gint id; /* the backend's id while in flight (MQTT mid) */
} GstMgllavaMsg;

typedef struct _GstMgllavaOutbox GstMgllavaOutbox;

/* @element receives the warnings and messages (it must outlive the outbox's
 * use by the sender thread); @what names the destination in them
 * ("MQTT broker 127.0.0.1:1883"). */
GstMgllavaOutbox* gst_mgllava_outbox_new(GstElement* element, const gchar* what, guint max_waiting,
                                         gboolean drop_newest);
void gst_mgllava_outbox_free(GstMgllavaOutbox* ob);

/* Streaming thread: appends a message (takes @data, g_malloc'ed), never
 * blocks. */
void gst_mgllava_outbox_push(GstMgllavaOutbox* ob, gchar* data, gsize len);

/* Sender thread. The next waiting message, moved into flight (borrowed: valid
 * until acknowledged, failed or requeued), or NULL. */
GstMgllavaMsg* gst_mgllava_outbox_next(GstMgllavaOutbox* ob);
/* The broker took (@ok) or refused for good (!@ok: counted "failed") the
 * message @msg in flight; it is freed. */
void gst_mgllava_outbox_done(GstMgllavaOutbox* ob, GstMgllavaMsg* msg, gboolean ok);
/* As _done (ok) for the message in flight with this backend id; FALSE when
 * none has it. */
gboolean gst_mgllava_outbox_ack(GstMgllavaOutbox* ob, gint id);
/* Connection lost: every message in flight waits again, in order. */
void gst_mgllava_outbox_requeue(GstMgllavaOutbox* ob);
guint gst_mgllava_outbox_n_inflight(GstMgllavaOutbox* ob);
guint gst_mgllava_outbox_n_queued(GstMgllavaOutbox* ob);

/* Waits up to @timeout_ms for a waiting message; FALSE once stopping. */
gboolean gst_mgllava_outbox_wait(GstMgllavaOutbox* ob, guint timeout_ms);
/* Sleeps @timeout_ms unless stopping; FALSE once stopping. */
gboolean gst_mgllava_outbox_sleep(GstMgllavaOutbox* ob, guint timeout_ms);
gboolean gst_mgllava_outbox_stopping(GstMgllavaOutbox* ob);

/* The sender's view of the connection: a transition to down posts one
 * warning per outage (the first failed connection counts) and an
 * "mgllava-publish" element message; up posts the message and counts a
 * reconnection when it was up before. @error may be NULL. */
void gst_mgllava_outbox_set_connected(GstMgllavaOutbox* ob, gboolean connected, const gchar* error);
/* A message the broker refused: one warning per kind of error. */
void gst_mgllava_outbox_warn_refused(GstMgllavaOutbox* ob, const gchar* error);

/* Any thread but the sender: waits until the queue is empty, at most
 * @timeout (ns); TRUE when it emptied. */
gboolean gst_mgllava_outbox_drain(GstMgllavaOutbox* ob, GstClockTime timeout);
/* Tells the sender to finish (its waits return FALSE). */
void gst_mgllava_outbox_stop(GstMgllavaOutbox* ob);
/* After the sender finished: what is left counts as discarded. */
void gst_mgllava_outbox_discard(GstMgllavaOutbox* ob);

/* "mgllava-publish-stats": enqueued, published, dropped, failed, discarded,
 * queued, in-flight, reconnects (guint64/guint), connected (boolean),
 * last-error (string, "" when none). */
GstStructure* gst_mgllava_outbox_stats(GstMgllavaOutbox* ob);

G_END_DECLS

#endif
