/* gstmgllavamodelcache.h: the process-wide model cache.
 *
 * Every mgllavafilter in the process that names the same model shares one
 * loaded MglModel and its MglServer: many streams, one copy of the weights,
 * one scheduler that batches their requests. Each element submits through
 * its own MglStream; the model is immutable once loaded.
 *
 * ## Entries
 *
 * One GstMgllavaCachedModel per key. The key is the model's canonical path
 * (symbolic links resolved) and every load parameter that changes what is
 * loaded: device, gpu_id, precision (NULL counts as "f16"), n_threads and
 * n_ctx. An entry is LOADING while its first acquirer loads it, then READY
 * (it holds the model) or FAILED (it holds the error).
 *
 * ## Locking
 *
 * - The cache lock (global) guards the table and every entry's `refs` and
 *   `in_table`. It is held only to find, insert or remove an entry and to
 *   count references: never while a model loads or is freed.
 * - An entry's own `lock` guards its `state`, `model` and `error`. The first
 *   acquirer of a key inserts a LOADING entry, loads the model (and, when it
 *   asked for one, starts the model's scheduler) without any lock, then sets
 *   READY or FAILED and broadcasts the entry's `cond`. The load runs on its
 *   own thread at a lower priority (nice +10), which the scheduler's thread
 *   and the engine's compute threads started there inherit: inference yields
 *   the CPU to the streaming threads. That thread holds a reference of its
 *   own until it has stored the outcome, and reports the engine's progress
 *   into the entry (`fraction`, `what`, broadcast on `cond`).
 * - A load that nobody waits for any more (every acquirer gave up through
 *   its progress function, e.g. its element went to NULL) is stopped at the
 *   engine's next progress report (MGL_E_ABORTED) and freed.
 *   Later acquirers of the same key take a reference and wait on that
 *   entry's `cond` while it is LOADING.
 *
 * So a model loads once however many elements start together, and a slow or
 * hung load of one model never blocks acquiring another: that acquirer only
 * takes the cache lock for a lookup.
 *
 * ## Lifetime
 *
 * - A failed load's entry leaves the table before it is marked FAILED, so a
 *   later acquire loads again; the acquirers that waited on it get its error
 *   and drop their references.
 * - The last gst_mgllava_model_cache_release() of a READY entry takes it out
 *   of the table and frees the model (and the scheduler, when there is one),
 *   after the cache lock is released. A model released and acquired again
 *   at the same moment may briefly exist twice.
 * - Once READY, `model` (and `scheduler`) never change until the entry is
 *   freed: a holder reads them without a lock.
 */
#ifndef __GST_MGLLAVA_MODEL_CACHE_H__
#define __GST_MGLLAVA_MODEL_CACHE_H__

#include <glib.h>

#include "mgllava.h"

G_BEGIN_DECLS

typedef enum {
    GST_MGLLAVA_MODEL_LOADING,
    GST_MGLLAVA_MODEL_READY,
    GST_MGLLAVA_MODEL_FAILED,
} GstMgllavaModelState;

typedef struct {
    gchar* key; /* path|device|gpu|precision|threads|ctx */

    /* with the cache lock */
    gint refs;         /* acquirers that hold (or wait for) it */
    gboolean in_table; /* FALSE once FAILED or released */

    /* with lock */
    GMutex lock;
    GCond cond; /* broadcast when LOADING ends */
    GstMgllavaModelState state;
    MglModel* model;      /* READY: the loaded model, owned */
    MglStatus error_code; /* FAILED: why */
    gchar* error;         /* FAILED: the loader's message */

    /* The batching scheduler of this model (an MglServer, one per loaded
     * model, shared by every stream that uses it): started by the loader right
     * after the model when its acquire passed server parameters (else NULL),
     * freed with scheduler_free before the model. */
    gpointer scheduler;
    GDestroyNotify scheduler_free;
    gint scheduler_max_batch; /* what the loader asked for (0 = from memory) */

    /* with lock: the load's progress (the engine's MglProgressFunc) */
    gdouble fraction;
    gchar what[96];
    guint progress_serial; /* bumped at each report */
    /* the last steps (a report whose step name differs from the one
     * before), so that a waiter that wakes late still hears each of them */
    gdouble step_fraction[8];
    gchar step_what[8][96];
    guint n_steps; /* steps so far; the last 8 are kept */
} GstMgllavaCachedModel;

/* The model at @path loaded with @params: an entry READY with its model,
 * shared with every other holder of the same key, or NULL with @err set when
 * loading failed (in this call or in the one it waited for). When this call
 * loads the model and @server is set, it also starts the model's MglServer
 * with @server (a failure to start it, e.g. an explicit max_batch whose KV
 * caches do not fit, fails the load with the server's error); a later
 * acquire's @server is not used (compare
 * gst_mgllava_cached_model_get_requested_max_batch()). @reused (optional):
 * TRUE when this call did not load it. Blocks while this key is LOADING;
 * never for another key's load. Release with
 * gst_mgllava_model_cache_release(). */
GstMgllavaCachedModel* gst_mgllava_model_cache_acquire(const gchar* path, const MglModelParams* params,
                                                       const MglServerParams* server, gboolean* reused, MglErr* err);

/* The length of the step's name in a progress text: what comes before its
 * detail in parentheses ("reading weights (1.20 of 13.48 GB)" -> 15). */
gsize gst_mgllava_load_step_len(const gchar* what);

/* Called in the acquirer's thread while it waits for a load: with every new
 * step (each once, even when reports came faster than the waiter woke), at
 * the latest report, and every 100 ms with the last one again. Returning
 * FALSE gives the wait up. */
typedef gboolean (*GstMgllavaLoadProgressFunc)(gdouble fraction, const gchar* what, gpointer data);

/* gst_mgllava_model_cache_acquire() that reports the load's progress to
 * @progress (may be NULL) while it waits; when @progress gives up, returns
 * NULL with @err MGL_E_ABORTED, and a load nobody else waits for stops. */
GstMgllavaCachedModel* gst_mgllava_model_cache_acquire_full(const gchar* path, const MglModelParams* params,
                                                            const MglServerParams* server,
                                                            GstMgllavaLoadProgressFunc progress, gpointer data,
                                                            gboolean* reused, MglErr* err);

/* The loaded model of a READY entry; borrowed until its release. */
MglModel* gst_mgllava_cached_model_get_model(GstMgllavaCachedModel* entry);

/* The model's scheduler (NULL when its loader asked for none); borrowed
 * until the release. */
MglServer* gst_mgllava_cached_model_get_server(GstMgllavaCachedModel* entry);

/* The max_batch the loader asked the scheduler for (0 = from memory). */
gint gst_mgllava_cached_model_get_requested_max_batch(GstMgllavaCachedModel* entry);

/* The function that loads a model: mgl_model_load unless set (tests replace
 * it, e.g. with one that blocks, to check what a slow load blocks). NULL
 * restores mgl_model_load. */
typedef MglStatus (*GstMgllavaModelLoadFunc)(const char* path, const MglModelParams* params, MglModel** out,
                                             MglErr* err);
void gst_mgllava_model_cache_set_load_func(GstMgllavaModelLoadFunc func);

/* Drops one reference; the last one frees the model. NULL is a no-op. */
void gst_mgllava_model_cache_release(GstMgllavaCachedModel* entry);

G_END_DECLS

#endif
