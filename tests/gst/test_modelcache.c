/* The process-wide model cache (gst/gstmgllavamodelcache.h) on the tiny
 * models: concurrent acquires of one model share one load and one scheduler
 * (started by the loader with its max_batch); a load that hangs (a load
 * function that blocks until the test releases it) blocks neither a
 * different model nor a bad path; a failed load is not cached; a waiter
 * hears the load's progress and may give up, which stops the load only when
 * nobody else waits for it. */
#include "gst-asan.h"
#include <gst/check/gstcheck.h>

#include <glib/gstdio.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gstmgllavamodelcache.h"

#define N_THREADS 8
#define WAIT_US (60 * G_USEC_PER_SEC)

static gchar* model_dir;

static MglModelParams cpu_params(void) {
    MglModelParams p = mgl_model_default_params();

    p.device = "cpu";
    p.n_threads = 1;
    return p;
}

/* ---- one acquire on its own thread ------------------------------------- */

typedef struct {
    gchar* path;
    GstMgllavaCachedModel* entry;
    gboolean reused;
    MglErr err;
    GAsyncQueue* done; /* gets this Acquire when it returns */
    /* start together (test_same_model_concurrent) */
    GMutex* gate_lock;
    GCond* gate;
    gboolean* open;
} Acquire;

static gpointer acquire_thread(gpointer data) {
    Acquire* a = data;
    MglModelParams p = cpu_params();

    if (a->gate) {
        g_mutex_lock(a->gate_lock);
        while (!*a->open) g_cond_wait(a->gate, a->gate_lock);
        g_mutex_unlock(a->gate_lock);
    }
    MglServerParams sp = mgl_server_default_params();

    sp.max_batch = 2;
    a->entry = gst_mgllava_model_cache_acquire(a->path, &p, &sp, &a->reused, &a->err);
    g_async_queue_push(a->done, a);
    return NULL;
}

static Acquire* acquire_start(const gchar* path, GAsyncQueue* done) {
    Acquire* a = g_new0(Acquire, 1);

    a->path = g_strdup(path);
    a->done = done;
    g_thread_unref(g_thread_new("acquire", acquire_thread, a));
    return a;
}

static void acquire_free(Acquire* a) {
    gst_mgllava_model_cache_release(a->entry);
    g_free(a->path);
    g_free(a);
}

GST_START_TEST(test_same_model_concurrent) {
    GAsyncQueue* done = g_async_queue_new();
    Acquire a[N_THREADS];
    GMutex gate_lock;
    GCond gate;
    gboolean open = FALSE;
    GThread* threads[N_THREADS];
    guint i, loads = 0;
    MglModelParams p = cpu_params();
    GstMgllavaCachedModel* again;
    gboolean reused = TRUE;
    MglErr err = {0};

    g_mutex_init(&gate_lock);
    g_cond_init(&gate);
    memset(a, 0, sizeof a);
    for (i = 0; i < N_THREADS; i++) {
        a[i].path = model_dir;
        a[i].done = done;
        a[i].gate_lock = &gate_lock;
        a[i].gate = &gate;
        a[i].open = &open;
        threads[i] = g_thread_new("acquire", acquire_thread, &a[i]);
    }
    g_mutex_lock(&gate_lock);
    open = TRUE;
    g_cond_broadcast(&gate);
    g_mutex_unlock(&gate_lock);
    for (i = 0; i < N_THREADS; i++) g_thread_join(threads[i]);

    /* one load, one model, every thread holds it */
    for (i = 0; i < N_THREADS; i++) {
        fail_unless(a[i].entry != NULL, "%s", a[i].err.msg);
        fail_unless(a[i].entry == a[0].entry);
        fail_unless(gst_mgllava_cached_model_get_model(a[i].entry) == gst_mgllava_cached_model_get_model(a[0].entry));
        /* and one scheduler, started by the loader with its max_batch */
        fail_unless(gst_mgllava_cached_model_get_server(a[i].entry) != NULL);
        fail_unless(gst_mgllava_cached_model_get_server(a[i].entry) == gst_mgllava_cached_model_get_server(a[0].entry));
        fail_unless_equals_int(gst_mgllava_cached_model_get_requested_max_batch(a[i].entry), 2);
        fail_unless_equals_int(mgl_server_max_batch(gst_mgllava_cached_model_get_server(a[i].entry)), 2);
        fail_unless(gst_mgllava_cached_model_get_model(a[i].entry) != NULL);
        if (!a[i].reused) loads++;
    }
    fail_unless_equals_int(loads, 1);
    fail_unless_equals_int(a[0].entry->refs, N_THREADS);

    /* the same model under another spelling of its path is the same entry */
    {
        gchar* alias = g_build_filename(model_dir, "..", "tiny-vicuna", NULL);
        GstMgllavaCachedModel* e = gst_mgllava_model_cache_acquire(alias, &p, NULL, &reused, &err);
        fail_unless(e == a[0].entry);
        fail_unless(reused);
        gst_mgllava_model_cache_release(e);
        g_free(alias);
    }

    /* other load parameters make another entry */
    p.n_threads = 2;
    again = gst_mgllava_model_cache_acquire(model_dir, &p, NULL, &reused, &err);
    fail_unless(again != NULL, "%s", err.msg);
    fail_unless(again != a[0].entry);
    fail_if(reused);
    gst_mgllava_model_cache_release(again);
    p.n_threads = 1;

    /* the last release frees it: the next acquire loads again */
    for (i = 0; i < N_THREADS; i++) gst_mgllava_model_cache_release(a[i].entry);
    again = gst_mgllava_model_cache_acquire(model_dir, &p, NULL, &reused, &err);
    fail_unless(again != NULL, "%s", err.msg);
    fail_if(reused);
    gst_mgllava_model_cache_release(again);
    gst_mgllava_model_cache_release(NULL);

    g_mutex_clear(&gate_lock);
    g_cond_clear(&gate);
    g_async_queue_unref(done);
}

GST_END_TEST;

/* A load that hangs: loading a path that ends in "hang" blocks until the
 * test releases it, then fails; other paths load as usual. */
static GMutex hang_lock;
static GCond hang_cond;
static gint hang_waiting;  /* loads blocked now */
static gint hang_released; /* loads that may go on */

static MglStatus hanging_load(const char* path, const MglModelParams* params, MglModel** out, MglErr* err) {
    if (!g_str_has_suffix(path, "hang")) return mgl_model_load(path, params, out, err);
    g_mutex_lock(&hang_lock);
    hang_waiting++;
    g_cond_broadcast(&hang_cond);
    while (hang_released == 0) g_cond_wait(&hang_cond, &hang_lock);
    hang_released--;
    hang_waiting--;
    g_mutex_unlock(&hang_lock);
    *out = NULL;
    err->code = MGL_E_IO;
    g_strlcpy(err->msg, "hung load released", sizeof err->msg);
    return MGL_E_IO;
}

/* Waits until a hanging load is blocked; FALSE when @loader returned first
 * or after 20 s. */
static gboolean wait_for_hang(GAsyncQueue* loader_done) {
    gint64 end = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
    gboolean blocked = FALSE;

    g_mutex_lock(&hang_lock);
    while (!(blocked = hang_waiting > 0) && g_async_queue_length(loader_done) == 0)
        if (!g_cond_wait_until(&hang_cond, &hang_lock, end)) break;
    g_mutex_unlock(&hang_lock);
    return blocked;
}

static void release_hang(void) {
    g_mutex_lock(&hang_lock);
    hang_released++;
    g_cond_broadcast(&hang_cond);
    g_mutex_unlock(&hang_lock);
}

GST_START_TEST(test_hung_load_blocks_no_other_key) {
    GAsyncQueue* hung_done = g_async_queue_new();
    GAsyncQueue* done = g_async_queue_new();
    gchar* dir = g_dir_make_tmp("mgl-cache-XXXXXX", NULL);
    gchar* hang = g_build_filename(dir, "hang", NULL);
    gchar* missing = g_build_filename(dir, "no-such-model", NULL);
    Acquire *hung, *good, *bad, *retry, *r;

    gst_mgllava_model_cache_set_load_func(hanging_load);

    /* a load that hangs until the test lets it fail */
    hung = acquire_start(hang, hung_done);
    fail_unless(wait_for_hang(hung_done), "the hanging load never started");

    /* meanwhile another model loads, and a bad path fails, without waiting */
    good = acquire_start(model_dir, done);
    r = g_async_queue_timeout_pop(done, WAIT_US);
    fail_unless(r == good, "acquiring another model waited for a hung load");
    fail_unless(good->entry != NULL, "%s", good->err.msg);
    fail_if(good->reused);
    bad = acquire_start(missing, done);
    r = g_async_queue_timeout_pop(done, WAIT_US);
    fail_unless(r == bad, "a bad path waited for a hung load");
    fail_unless(bad->entry == NULL);
    fail_unless(bad->err.code != MGL_OK);
    fail_unless(strstr(bad->err.msg, "no-such-model") != NULL, "%s", bad->err.msg);
    fail_unless(g_async_queue_try_pop(hung_done) == NULL);

    /* the hung load ends in a failure ... */
    release_hang();
    r = g_async_queue_timeout_pop(hung_done, WAIT_US);
    fail_unless(r == hung);
    fail_unless(hung->entry == NULL);
    fail_unless(hung->err.code != MGL_OK);
    fail_unless_equals_string(hung->err.msg, "hung load released");

    /* ... that is not cached: the next acquire loads again (and fails again) */
    retry = acquire_start(hang, hung_done);
    fail_unless(wait_for_hang(hung_done), "a failed load was cached");
    release_hang();
    r = g_async_queue_timeout_pop(hung_done, WAIT_US);
    fail_unless(r == retry);
    fail_unless(retry->entry == NULL);

    gst_mgllava_model_cache_set_load_func(NULL);
    acquire_free(hung);
    acquire_free(good);
    acquire_free(bad);
    acquire_free(retry);
    g_rmdir(dir);
    g_free(hang);
    g_free(missing);
    g_free(dir);
    g_async_queue_unref(hung_done);
    g_async_queue_unref(done);
}

GST_END_TEST;

/* ---- progress and giving up ------------------------------------------- */

/* A load of a path ending in "slow": 100 progress steps 5 ms apart, then the
 * tiny model; it stops when its progress function says so. */
static gint slow_stopped_at = -1; /* atomic: the step the load stopped at */
static gint slow_ended;           /* atomic: loads of "slow" that returned */

static MglStatus slow_load(const char* path, const MglModelParams* params, MglModel** out, MglErr* err) {
    MglStatus st;
    gint i;

    if (!g_str_has_suffix(path, "slow")) return mgl_model_load(path, params, out, err);
    for (i = 0; i < 100; i++) {
        g_usleep(5000);
        if (params->progress && !params->progress(i / 100.0, "slow step", params->progress_data)) {
            g_atomic_int_set(&slow_stopped_at, i);
            g_atomic_int_inc(&slow_ended);
            err->code = MGL_E_ABORTED;
            g_strlcpy(err->msg, "model load aborted by the caller", sizeof err->msg);
            return MGL_E_ABORTED;
        }
    }
    st = mgl_model_load(model_dir, params, out, err);
    g_atomic_int_inc(&slow_ended);
    return st;
}

typedef struct {
    gdouble give_up_at; /* > 1: never */
    gdouble last;
    gint calls;
    gboolean backwards;
} Watch;

static gboolean watch_progress(gdouble fraction, const gchar* what, gpointer data) {
    Watch* w = data;

    if (fraction < w->last) w->backwards = TRUE;
    w->last = fraction;
    w->calls++;
    return fraction < w->give_up_at;
}

typedef struct {
    gchar* path;
    Watch watch;
    GstMgllavaCachedModel* entry;
    MglErr err;
} SlowAcquire;

static gpointer slow_acquire_thread(gpointer data) {
    SlowAcquire* a = data;
    MglModelParams p = cpu_params();
    MglServerParams sp = mgl_server_default_params();

    sp.max_batch = 1;
    a->entry = gst_mgllava_model_cache_acquire_full(a->path, &p, &sp, watch_progress, &a->watch, NULL, &a->err);
    return NULL;
}

static void wait_slow_ended(gint n) {
    gint64 end = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;

    while (g_atomic_int_get(&slow_ended) < n && g_get_monotonic_time() < end) g_usleep(2000);
    fail_unless(g_atomic_int_get(&slow_ended) >= n, "the slow load never ended");
}

GST_START_TEST(test_progress_and_giving_up) {
    gchar* dir = g_dir_make_tmp("mgl-cache-XXXXXX", NULL);
    gchar* slow = g_build_filename(dir, "slow", NULL);
    SlowAcquire quitter = {slow, {0.1, 0, 0, FALSE}}, stayer = {slow, {2.0, 0, 0, FALSE}};
    GThread *tq, *ts;

    gst_mgllava_model_cache_set_load_func(slow_load);

    /* two wait for one load; one gives up at 10%: the load goes on for the other */
    g_atomic_int_set(&slow_ended, 0);
    g_atomic_int_set(&slow_stopped_at, -1);
    ts = g_thread_new("stayer", slow_acquire_thread, &stayer);
    tq = g_thread_new("quitter", slow_acquire_thread, &quitter);
    g_thread_join(tq);
    g_thread_join(ts);
    fail_unless(quitter.entry == NULL);
    fail_unless_equals_int(quitter.err.code, MGL_E_ABORTED);
    fail_unless(stayer.entry != NULL, "%s", stayer.err.msg);
    fail_unless(gst_mgllava_cached_model_get_model(stayer.entry) != NULL);
    fail_unless_equals_int(g_atomic_int_get(&slow_stopped_at), -1);
    /* the one that stayed heard the steps, in order */
    fail_if(stayer.watch.backwards);
    fail_unless(stayer.watch.calls >= 20, "%d progress calls", stayer.watch.calls);
    fail_unless(stayer.watch.last >= 0.9, "last fraction %f", stayer.watch.last);
    gst_mgllava_model_cache_release(stayer.entry);

    /* the only waiter gives up: the load stops at its next step */
    quitter.watch = (Watch){0.1, 0, 0, FALSE};
    g_atomic_int_set(&slow_ended, 0);
    tq = g_thread_new("quitter", slow_acquire_thread, &quitter);
    g_thread_join(tq);
    fail_unless(quitter.entry == NULL);
    wait_slow_ended(1);
    fail_unless(g_atomic_int_get(&slow_stopped_at) >= 10 && g_atomic_int_get(&slow_stopped_at) < 30,
                "stopped at step %d", g_atomic_int_get(&slow_stopped_at));

    gst_mgllava_model_cache_set_load_func(NULL);
    g_rmdir(dir);
    g_free(slow);
    g_free(dir);
}

GST_END_TEST;

static Suite* modelcache_suite(void) {
    Suite* s = suite_create("modelcache");
    TCase* tc = tcase_create("general");

    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    tcase_add_test(tc, test_same_model_concurrent);
    tcase_add_test(tc, test_hung_load_blocks_no_other_key);
    tcase_add_test(tc, test_progress_and_giving_up);
    return s;
}

int main(int argc, char** argv) {
    int ret;

    gst_check_init(&argc, &argv);
    model_dir = g_build_filename(g_getenv("MGL_FIXTURES"), "models", "tiny-vicuna", NULL);
    ret = gst_check_run_suite(modelcache_suite(), "modelcache", __FILE__);
    g_free(model_dir);
    return ret;
}
