/* gstmgllavamodelcache.c: the process-wide model cache; the design is in
 * gstmgllavamodelcache.h. */
#include "gstmgllavamodelcache.h"

#include <stdlib.h>
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

/* A load on its helper thread. */
typedef struct {
    const gchar* path;
    const MglModelParams* params;
    const MglServerParams* server_params;
    GstMgllavaModelLoadFunc load;
    MglModel* model;
    MglServer* server;
    MglStatus st;
    MglErr err;
} GstMgllavaLoad;

static gpointer gst_mgllava_load_thread(gpointer data) {
    GstMgllavaLoad* l = data;

    /* threads started from here (the scheduler's, the engine's compute pool)
     * inherit this priority: inference yields the CPU to streaming threads */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) != 0) g_debug("could not lower the loader's priority");
    l->st = l->load(l->path, l->params, &l->model, &l->err);
    if (l->st == MGL_OK && l->server_params) {
        l->st = mgl_server_new(l->model, l->server_params, &l->server, &l->err);
        if (l->st != MGL_OK) g_clear_pointer(&l->model, mgl_model_free);
    }
    return NULL;
}

static void gst_mgllava_server_free(gpointer server) { mgl_server_free(server); }

/* The first acquirer of a key: loads (and starts the scheduler) without any
 * lock held, then wakes the waiters. A failed entry leaves the table before
 * it is marked FAILED, so the next acquire loads again and never finds a
 * failure. */
static void gst_mgllava_cached_model_load(GstMgllavaCachedModel* e, const gchar* path, const MglModelParams* params,
                                          const MglServerParams* server) {
    GstMgllavaLoad l = {path, params, server, NULL, NULL, NULL, MGL_OK, {0}};
    MglModel* model;
    MglErr err;
    MglStatus st;

    g_mutex_lock(&cache_lock);
    l.load = load_func;
    g_mutex_unlock(&cache_lock);

    g_thread_join(g_thread_new("mgllava-load", gst_mgllava_load_thread, &l));
    model = l.model;
    err = l.err;
    st = l.st;

    if (st != MGL_OK) {
        g_mutex_lock(&cache_lock);
        if (e->in_table) {
            g_hash_table_remove(cache, e->key);
            e->in_table = FALSE;
        }
        g_mutex_unlock(&cache_lock);
    }

    g_mutex_lock(&e->lock);
    if (st == MGL_OK) {
        e->model = model;
        if (l.server) {
            e->scheduler = l.server;
            e->scheduler_free = gst_mgllava_server_free;
            e->scheduler_max_batch = server->max_batch;
        }
        e->state = GST_MGLLAVA_MODEL_READY;
    } else {
        e->error_code = err.code != MGL_OK ? err.code : st;
        e->error = g_strdup(err.msg);
        e->state = GST_MGLLAVA_MODEL_FAILED;
    }
    g_cond_broadcast(&e->cond);
    g_mutex_unlock(&e->lock);
}

GstMgllavaCachedModel* gst_mgllava_model_cache_acquire(const gchar* path, const MglModelParams* params,
                                                       const MglServerParams* server, gboolean* reused, MglErr* err) {
    gchar* key = gst_mgllava_model_cache_key(path, params);
    GstMgllavaCachedModel* e;
    gboolean loader = FALSE;
    GstMgllavaModelState state;

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

    if (loader) gst_mgllava_cached_model_load(e, path, params, server);

    g_mutex_lock(&e->lock);
    while (e->state == GST_MGLLAVA_MODEL_LOADING) g_cond_wait(&e->cond, &e->lock);
    state = e->state;
    if (state == GST_MGLLAVA_MODEL_FAILED && err) {
        err->code = e->error_code;
        g_strlcpy(err->msg, e->error ? e->error : "", sizeof err->msg);
    }
    g_mutex_unlock(&e->lock);

    if (state != GST_MGLLAVA_MODEL_READY) {
        gst_mgllava_cached_model_unref(e);
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
