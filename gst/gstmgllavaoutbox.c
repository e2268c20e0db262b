/* gstmgllavaoutbox.c: see gstmgllavaoutbox.h. */
#include "gstmgllavaoutbox.h"

#include <string.h>

struct _GstMgllavaOutbox {
    GstElement* element;
    gchar* what;

    GMutex lock;
    GCond cond;   /* a message waits, the queue changed, or stop */
    GQueue queue; /* of GstMgllavaMsg: [in flight][waiting] */
    guint n_inflight;
    guint max_waiting;
    gboolean drop_newest;
    gboolean stopping;

    guint64 enqueued, published, dropped, failed, discarded, reconnects;
    gboolean connected, ever_connected, down_warned, full_warned;
    gchar* last_error;
    GHashTable* refused_warned;
};

static void msg_free(GstMgllavaMsg* m) {
    g_free(m->data);
    g_free(m);
}

GstMgllavaOutbox* gst_mgllava_outbox_new(GstElement* element, const gchar* what, guint max_waiting,
                                         gboolean drop_newest) {
    GstMgllavaOutbox* ob = g_new0(GstMgllavaOutbox, 1);

    ob->element = element;
    ob->what = g_strdup(what);
    g_mutex_init(&ob->lock);
    g_cond_init(&ob->cond);
    g_queue_init(&ob->queue);
    ob->max_waiting = MAX(max_waiting, 1);
    ob->drop_newest = drop_newest;
    ob->refused_warned = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    return ob;
}

void gst_mgllava_outbox_free(GstMgllavaOutbox* ob) {
    if (!ob) return;
    g_queue_clear_full(&ob->queue, (GDestroyNotify)msg_free);
    g_mutex_clear(&ob->lock);
    g_cond_clear(&ob->cond);
    g_hash_table_unref(ob->refused_warned);
    g_free(ob->last_error);
    g_free(ob->what);
    g_free(ob);
}

void gst_mgllava_outbox_push(GstMgllavaOutbox* ob, gchar* data, gsize len) {
    GstMgllavaMsg* m = g_new0(GstMgllavaMsg, 1);
    gboolean warn = FALSE;
    guint waiting;

    m->data = data;
    m->len = len;
    g_mutex_lock(&ob->lock);
    ob->enqueued++;
    waiting = ob->queue.length - ob->n_inflight;
    if (waiting >= ob->max_waiting) {
        ob->dropped++;
        if (!ob->full_warned) warn = ob->full_warned = TRUE;
        if (ob->drop_newest) {
            g_mutex_unlock(&ob->lock);
            msg_free(m);
            goto done;
        }
        msg_free(g_queue_pop_nth(&ob->queue, ob->n_inflight));
    } else if (waiting < ob->max_waiting / 2) {
        ob->full_warned = FALSE; /* the next overflow warns again */
    }
    g_queue_push_tail(&ob->queue, m);
    g_cond_broadcast(&ob->cond);
    g_mutex_unlock(&ob->lock);

done:
    if (warn)
        GST_ELEMENT_WARNING(ob->element, RESOURCE, WRITE,
                            ("Outgoing queue full (%u messages) for %s: dropping the %s message", ob->max_waiting,
                             ob->what, ob->drop_newest ? "newest" : "oldest"),
                            ("overflow policy %s; every drop is counted in stats.dropped",
                             ob->drop_newest ? "drop-newest" : "drop-oldest"));
}

GstMgllavaMsg* gst_mgllava_outbox_next(GstMgllavaOutbox* ob) {
    GstMgllavaMsg* m = NULL;

    g_mutex_lock(&ob->lock);
    if (ob->n_inflight < ob->queue.length) {
        m = g_queue_peek_nth(&ob->queue, ob->n_inflight);
        m->id = 0;
        ob->n_inflight++;
    }
    g_mutex_unlock(&ob->lock);
    return m;
}

/* with lock; @link holds a message in flight */
static void remove_inflight(GstMgllavaOutbox* ob, GList* link, gboolean ok) {
    msg_free(link->data);
    g_queue_delete_link(&ob->queue, link);
    ob->n_inflight--;
    if (ok)
        ob->published++;
    else
        ob->failed++;
    g_cond_broadcast(&ob->cond);
}

void gst_mgllava_outbox_done(GstMgllavaOutbox* ob, GstMgllavaMsg* msg, gboolean ok) {
    GList* l;
    guint i;

    g_mutex_lock(&ob->lock);
    for (l = ob->queue.head, i = 0; l && i < ob->n_inflight; l = l->next, i++) {
        if (l->data == msg) {
            remove_inflight(ob, l, ok);
            break;
        }
    }
    g_mutex_unlock(&ob->lock);
}

gboolean gst_mgllava_outbox_ack(GstMgllavaOutbox* ob, gint id) {
    GList* l;
    guint i;
    gboolean found = FALSE;

    g_mutex_lock(&ob->lock);
    for (l = ob->queue.head, i = 0; l && i < ob->n_inflight; l = l->next, i++) {
        if (((GstMgllavaMsg*)l->data)->id == id) {
            remove_inflight(ob, l, TRUE);
            found = TRUE;
            break;
        }
    }
    g_mutex_unlock(&ob->lock);
    return found;
}

void gst_mgllava_outbox_requeue(GstMgllavaOutbox* ob) {
    g_mutex_lock(&ob->lock);
    ob->n_inflight = 0;
    g_mutex_unlock(&ob->lock);
}

guint gst_mgllava_outbox_n_inflight(GstMgllavaOutbox* ob) {
    guint n;

    g_mutex_lock(&ob->lock);
    n = ob->n_inflight;
    g_mutex_unlock(&ob->lock);
    return n;
}

guint gst_mgllava_outbox_n_queued(GstMgllavaOutbox* ob) {
    guint n;

    g_mutex_lock(&ob->lock);
    n = ob->queue.length;
    g_mutex_unlock(&ob->lock);
    return n;
}

gboolean gst_mgllava_outbox_wait(GstMgllavaOutbox* ob, guint timeout_ms) {
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    gboolean ret;

    g_mutex_lock(&ob->lock);
    while (!ob->stopping && ob->n_inflight >= ob->queue.length)
        if (!g_cond_wait_until(&ob->cond, &ob->lock, end)) break;
    ret = !ob->stopping;
    g_mutex_unlock(&ob->lock);
    return ret;
}

gboolean gst_mgllava_outbox_sleep(GstMgllavaOutbox* ob, guint timeout_ms) {
    gint64 end = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    gboolean ret;

    g_mutex_lock(&ob->lock);
    while (!ob->stopping)
        if (!g_cond_wait_until(&ob->cond, &ob->lock, end)) break;
    ret = !ob->stopping;
    g_mutex_unlock(&ob->lock);
    return ret;
}

gboolean gst_mgllava_outbox_stopping(GstMgllavaOutbox* ob) {
    gboolean ret;

    g_mutex_lock(&ob->lock);
    ret = ob->stopping;
    g_mutex_unlock(&ob->lock);
    return ret;
}

static void post_state(GstMgllavaOutbox* ob, gboolean connected, const gchar* error) {
    gst_element_post_message(
        ob->element, gst_message_new_element(GST_OBJECT(ob->element),
                                             gst_structure_new("mgllava-publish", "connected", G_TYPE_BOOLEAN,
                                                               connected, "destination", G_TYPE_STRING, ob->what,
                                                               "error", G_TYPE_STRING, error ? error : "", NULL)));
}

void gst_mgllava_outbox_set_connected(GstMgllavaOutbox* ob, gboolean connected, const gchar* error) {
    gboolean post = FALSE, warn = FALSE;
    guint queued;

    g_mutex_lock(&ob->lock);
    if (error) {
        g_free(ob->last_error);
        ob->last_error = g_strdup(error);
    }
    queued = ob->queue.length;
    if (connected && !ob->connected) {
        if (ob->ever_connected) ob->reconnects++;
        ob->ever_connected = TRUE;
        ob->connected = TRUE;
        ob->down_warned = FALSE;
        post = TRUE;
    } else if (!connected && (ob->connected || !ob->down_warned)) {
        ob->connected = FALSE;
        warn = !ob->down_warned;
        ob->down_warned = TRUE;
        post = TRUE;
    }
    g_mutex_unlock(&ob->lock);

    if (warn)
        GST_ELEMENT_WARNING(ob->element, RESOURCE, WRITE,
                            ("No connection to %s: %s; retrying with backoff, messages are kept "
                             "in the queue (%u now)",
                             ob->what, error ? error : "not connected", queued),
                            (NULL));
    else if (!connected)
        GST_INFO_OBJECT(ob->element, "still no connection to %s: %s", ob->what, error ? error : "");
    if (post) post_state(ob, connected, error);
}

void gst_mgllava_outbox_warn_refused(GstMgllavaOutbox* ob, const gchar* error) {
    gboolean warn;

    g_mutex_lock(&ob->lock);
    warn = !g_hash_table_contains(ob->refused_warned, error);
    if (warn) g_hash_table_add(ob->refused_warned, g_strdup(error));
    g_free(ob->last_error);
    ob->last_error = g_strdup(error);
    g_mutex_unlock(&ob->lock);
    if (warn)
        GST_ELEMENT_WARNING(ob->element, RESOURCE, WRITE, ("%s refused a message: %s", ob->what, error),
                            ("counted in stats.failed; later refusals with the same error are "
                             "not reported again"));
}

gboolean gst_mgllava_outbox_drain(GstMgllavaOutbox* ob, GstClockTime timeout) {
    gint64 end = g_get_monotonic_time() + (gint64)(timeout / 1000);
    gboolean empty;

    g_mutex_lock(&ob->lock);
    while (ob->queue.length > 0 && !ob->stopping)
        if (!g_cond_wait_until(&ob->cond, &ob->lock, end)) break;
    empty = ob->queue.length == 0;
    g_mutex_unlock(&ob->lock);
    return empty;
}

void gst_mgllava_outbox_stop(GstMgllavaOutbox* ob) {
    g_mutex_lock(&ob->lock);
    ob->stopping = TRUE;
    g_cond_broadcast(&ob->cond);
    g_mutex_unlock(&ob->lock);
}

void gst_mgllava_outbox_discard(GstMgllavaOutbox* ob) {
    g_mutex_lock(&ob->lock);
    ob->discarded += ob->queue.length;
    g_queue_clear_full(&ob->queue, (GDestroyNotify)msg_free);
    g_queue_init(&ob->queue);
    ob->n_inflight = 0;
    ob->connected = FALSE;
    g_mutex_unlock(&ob->lock);
}

GstStructure* gst_mgllava_outbox_stats(GstMgllavaOutbox* ob) {
    GstStructure* s;

    g_mutex_lock(&ob->lock);
    s = gst_structure_new("mgllava-publish-stats", "enqueued", G_TYPE_UINT64, ob->enqueued, "published", G_TYPE_UINT64,
                          ob->published, "dropped", G_TYPE_UINT64, ob->dropped, "failed", G_TYPE_UINT64, ob->failed,
                          "discarded", G_TYPE_UINT64, ob->discarded, "queued", G_TYPE_UINT, ob->queue.length,
                          "in-flight", G_TYPE_UINT, ob->n_inflight, "reconnects", G_TYPE_UINT64, ob->reconnects,
                          "connected", G_TYPE_BOOLEAN, ob->connected, "last-error", G_TYPE_STRING,
                          ob->last_error ? ob->last_error : "", NULL);
    g_mutex_unlock(&ob->lock);
    return s;
}
