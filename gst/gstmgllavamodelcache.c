/* gstmgllavamodelcache.c: the process-wide model cache; the design is in
 * gstmgllavamodelcache.h. */
#include "gstmgllavamodelcache.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static GMutex cache_lock;
static GHashTable* cache;                                  /* key -> GstMgllavaCachedModel, with cache_lock */
static GstMgllavaModelLoadFunc load_func = mgl_model_load; /* with cache_lock */

void gst_mgllava_model_cache_set_load_func(GstMgllavaModelLoadFunc func) {
    g_mutex_lock(&cache_lock);
    load_func = func ? func : mgl_model_load;
    g_mutex_unlock(&cache_lock);
}

/* Everything that changes what mgl_model_load() makes of @path. */
static gchar* gst_mgllava_model_cache_key(const gchar* path, const MglModelParams* p) {
    gchar* abs = g_canonicalize_filename(path, NULL);
    gchar* real = realpath(abs, NULL);
    gchar* key = g_strdup_printf("%s|%s|%d|%s|%d|%d", real ? real : abs, p->device ? p->device : "auto", p->gpu_id,
                                 p->precision ? p->precision : "f16", p->n_threads, p->n_ctx);

    free(real);
    g_free(abs);
    return key;
}

static void gst_mgllava_cached_model_free(GstMgllavaCachedModel* e) {
    if (e->scheduler && e->scheduler_free) e->scheduler_free(e->scheduler);
    if (e->model) mgl_model_free(e->model);
    g_free(e->error);
    g_free(e->key);
    g_mutex_clear(&e->lock);
    g_cond_clear(&e->cond);
    g_free(e);
}

/* Drops a reference; the last one takes the entry out of the table (when it
 * is still there) and frees it outside the cache lock. */
static void gst_mgllava_cached_model_unref(GstMgllavaCachedModel* e) {
    gboolean last;

    g_mutex_lock(&cache_lock);
    last = --e->refs == 0;
    if (last && e->in_table) {
        g_hash_table_remove(cache, e->key);
        e->in_table = FALSE;
    }
    g_mutex_unlock(&cache_lock);
    if (last) gst_mgllava_cached_model_free(e);
}

/* A load on its own thread, which holds a reference to the entry until it
 * has stored the outcome: copies of what the first acquirer asked for. */
typedef struct {
    GstMgllavaCachedModel* e;
    gchar* path;
    MglModelParams params;
    gchar* device;
    gchar* precision;
    MglServerParams server_params;
    gboolean with_server;
    gchar* kv_precision;
    GstMgllavaModelLoadFunc load;
} GstMgllavaLoad;

static void gst_mgllava_load_free(GstMgllavaLoad* l) {
    g_free(l->path);
    g_free(l->device);
    g_free(l->precision);
    g_free(l->kv_precision);
    g_free(l);
}

/* The engine's progress, on the loading thread: stored in the entry for its
 * waiters (woken), and the load stops when nobody waits for it any more (only
 * the loader's own reference is left). */
gsize gst_mgllava_load_step_len(const gchar* what) {
    const gchar* paren = what ? strstr(what, " (") : NULL;
    return paren ? (gsize)(paren - what) : (what ? strlen(what) : 0);
}

static bool gst_mgllava_load_progress(double fraction, const char* what, void* data) {
    GstMgllavaCachedModel* e = data;
    gboolean wanted;
    const gsize n = gst_mgllava_load_step_len(what);

    g_mutex_lock(&e->lock);
    if (fraction > e->fraction) e->fraction = fraction; /* never backwards */
    if (e->n_steps == 0 || n != gst_mgllava_load_step_len(e->step_what[(e->n_steps - 1) % 8]) ||
        strncmp(what, e->step_what[(e->n_steps - 1) % 8], n) != 0) {
        e->step_fraction[e->n_steps % 8] = e->fraction;
        g_strlcpy(e->step_what[e->n_steps % 8], what ? what : "", sizeof e->step_what[0]);
        e->n_steps++;
    }
    g_strlcpy(e->what, what ? what : "", sizeof e->what);
    e->progress_serial++;
    g_cond_broadcast(&e->cond);
    g_mutex_unlock(&e->lock);
    g_mutex_lock(&cache_lock);
    wanted = e->refs > 1;
    g_mutex_unlock(&cache_lock);
    return wanted;
}

static void gst_mgllava_server_free(gpointer server) { mgl_server_free(server); }

/* Loads (and starts the scheduler) without any lock held, then stores the
 * outcome and wakes the waiters. A failed entry leaves the table before it
 * is marked FAILED, so the next acquire loads again and never finds a
 * failure. */
static gpointer gst_mgllava_load_thread(gpointer data) {
    GstMgllavaLoad* l = data;
    GstMgllavaCachedModel* e = l->e;
    MglModel* model = NULL;
    MglServer* server = NULL;
    MglErr err = {0};
    MglStatus st;
    gboolean last;

    /* threads started from here (the scheduler's, the engine's compute pool)
     * inherit this priority: inference yields the CPU to streaming threads */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0) g_debug("could not lower the loader's priority");
    l->params.progress = gst_mgllava_load_progress;
    l->params.progress_data = e;
    st = l->load(l->path, &l->params, &model, &err);
    if (st == MGL_OK && l->with_server) {
        st = mgl_server_new(model, &l->server_params, &server, &err);
        if (st != MGL_OK) g_clear_pointer(&model, mgl_model_free);
    }

    /* the outcome and the loader's reference go together (under both locks:
     * the cache lock, then the entry's), so a waiter that wakes counts only
     * the acquirers' references; when none is left the entry is freed here */
    g_mutex_lock(&cache_lock);
    g_mutex_lock(&e->lock);
    if (st == MGL_OK) {
        e->model = model;
        if (server) {
            e->scheduler = server;
            e->scheduler_free = gst_mgllava_server_free;
            e->scheduler_max_batch = l->server_params.max_batch;
        }
        e->fraction = 1.0;
        e->state = GST_MGLLAVA_MODEL_READY;
    } else {
        e->error_code = err.code != MGL_OK ? err.code : st;
        e->error = g_strdup(err.msg);
        e->state = GST_MGLLAVA_MODEL_FAILED;
    }
    last = --e->refs == 0;
    /* a failed entry leaves the table; so does one nobody holds */
    if ((st != MGL_OK || last) && e->in_table) {
        g_hash_table_remove(cache, e->key);
        e->in_table = FALSE;
    }
    g_cond_broadcast(&e->cond);
    g_mutex_unlock(&e->lock);
    g_mutex_unlock(&cache_lock);
    gst_mgllava_load_free(l);
    if (last) gst_mgllava_cached_model_free(e);
    return NULL;
}

static void gst_mgllava_cached_model_start_load(GstMgllavaCachedModel* e, const gchar* path,
                                                const MglModelParams* params, const MglServerParams* server) {
    GstMgllavaLoad* l = g_new0(GstMgllavaLoad, 1);

    l->e = e;
    l->path = g_strdup(path);
    l->params = *params;
    l->params.device = l->device = g_strdup(params->device);
    l->params.precision = l->precision = g_strdup(params->precision);
    if (server) {
        l->with_server = TRUE;
        l->server_params = *server;
        l->server_params.kv_precision = l->kv_precision = g_strdup(server->kv_precision);
    }
    g_mutex_lock(&cache_lock);
    l->load = load_func;
    e->refs++; /* the loader's */
    g_mutex_unlock(&cache_lock);
    g_thread_unref(g_thread_new("mgllava-load", gst_mgllava_load_thread, l));
}

GstMgllavaCachedModel* gst_mgllava_model_cache_acquire(const gchar* path, const MglModelParams* params,
                                                       const MglServerParams* server, gboolean* reused, MglErr* err) {
    return gst_mgllava_model_cache_acquire_full(path, params, server, NULL, NULL, reused, err);
}

GstMgllavaCachedModel* gst_mgllava_model_cache_acquire_full(const gchar* path, const MglModelParams* params,
                                                            const MglServerParams* server,
                                                            GstMgllavaLoadProgressFunc progress, gpointer data,
                                                            gboolean* reused, MglErr* err) {
    gchar* key = gst_mgllava_model_cache_key(path, params);
    GstMgllavaCachedModel* e;
    gboolean loader = FALSE, gave_up = FALSE;
    GstMgllavaModelState state;
    guint seen = 0, steps_seen = 0;

    g_mutex_lock(&cache_lock);
    if (!cache) cache = g_hash_table_new(g_str_hash, g_str_equal);
    e = g_hash_table_lookup(cache, key);
    if (e) {
        e->refs++;
        g_free(key);
    } else {
        e = g_new0(GstMgllavaCachedModel, 1);
        e->key = key;
        e->refs = 1;
        e->in_table = TRUE;
        e->state = GST_MGLLAVA_MODEL_LOADING;
        g_mutex_init(&e->lock);
        g_cond_init(&e->cond);
        g_hash_table_insert(cache, e->key, e);
        loader = TRUE;
    }
    g_mutex_unlock(&cache_lock);

    if (loader) gst_mgllava_cached_model_start_load(e, path, params, server);

    g_mutex_lock(&e->lock);
    /* the steps not heard yet are delivered also when the load ended first */
    while (e->state == GST_MGLLAVA_MODEL_LOADING || (progress && steps_seen < e->n_steps)) {
        if (progress) {
            /* the caller hears of every step, then of the latest report (or,
             * every 100 ms, of the last one again: its chance to give up) */
            gdouble f = e->fraction;
            gchar what[sizeof e->what];
            gboolean more;

            if (steps_seen < e->n_steps) {
                if (e->n_steps - steps_seen > 8) steps_seen = e->n_steps - 8;
                f = e->step_fraction[steps_seen % 8];
                g_strlcpy(what, e->step_what[steps_seen % 8], sizeof what);
                steps_seen++;
                g_mutex_unlock(&e->lock);
                more = progress(f, what, data);
                g_mutex_lock(&e->lock);
                if (!more) {
                    gave_up = TRUE;
                    break;
                }
                continue;
            }
            if (e->state != GST_MGLLAVA_MODEL_LOADING) break;
            g_strlcpy(what, e->what, sizeof what);
            seen = e->progress_serial;
            g_mutex_unlock(&e->lock);
            more = progress(f, what, data);
            g_mutex_lock(&e->lock);
            if (!more) {
                gave_up = TRUE;
                break;
            }
            if (e->state == GST_MGLLAVA_MODEL_LOADING && e->progress_serial == seen)
                g_cond_wait_until(&e->cond, &e->lock, g_get_monotonic_time() + 100 * G_TIME_SPAN_MILLISECOND);
        } else {
            g_cond_wait(&e->cond, &e->lock);
        }
    }
    state = gave_up ? GST_MGLLAVA_MODEL_LOADING : e->state;
    if (state == GST_MGLLAVA_MODEL_FAILED && err) {
        err->code = e->error_code;
        g_strlcpy(err->msg, e->error ? e->error : "", sizeof err->msg);
    }
    g_mutex_unlock(&e->lock);
    if (gave_up && err) {
        err->code = MGL_E_ABORTED;
        g_strlcpy(err->msg, "the wait for the model was given up", sizeof err->msg);
    }

    if (state != GST_MGLLAVA_MODEL_READY) {
        gst_mgllava_cached_model_unref(e); /* the last waiter leaving stops the load */
        return NULL;
    }
    if (reused) *reused = !loader;
    return e;
}

MglModel* gst_mgllava_cached_model_get_model(GstMgllavaCachedModel* e) {
    g_return_val_if_fail(e != NULL, NULL);
    return e->model;
}

MglServer* gst_mgllava_cached_model_get_server(GstMgllavaCachedModel* e) {
    g_return_val_if_fail(e != NULL, NULL);
    return e->scheduler;
}

gint gst_mgllava_cached_model_get_requested_max_batch(GstMgllavaCachedModel* e) {
    g_return_val_if_fail(e != NULL, 0);
    return e->scheduler_max_batch;
}

void gst_mgllava_model_cache_release(GstMgllavaCachedModel* e) {
    if (e) gst_mgllava_cached_model_unref(e);
}
