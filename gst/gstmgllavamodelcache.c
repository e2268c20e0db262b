/* gstmgllavamodelcache.c: see gstmgllavamodelcache.h. */
#include "gstmgllavamodelcache.h"

#include <stdlib.h>

typedef struct
{
  gchar *key;
  MglModel *model;
  gint refs;
} SharedModel;

static GMutex shared_lock;
static GHashTable *shared_models;       /* key -> SharedModel, with shared_lock */

MglModel *
gst_mgllava_model_cache_acquire (const gchar * path,
    const MglModelParams * mp, gboolean * reused, MglErr * err)
{
  gchar *abs = g_canonicalize_filename (path, NULL);
  gchar *real = realpath (abs, NULL);
  gchar *key = g_strdup_printf ("%s|%s|%d|%d", real ? real : abs, mp->device,
      mp->gpu_id, mp->n_threads);
  SharedModel *sm;
  MglModel *m = NULL;

  free (real);
  g_free (abs);
  g_mutex_lock (&shared_lock);
  if (!shared_models)
    shared_models = g_hash_table_new (g_str_hash, g_str_equal);
  sm = g_hash_table_lookup (shared_models, key);
  if (sm) {
    sm->refs++;
    m = sm->model;
    *reused = TRUE;
    g_free (key);
  } else if (mgl_model_load (path, mp, &m, err) == MGL_OK) {
    /* loaded under the lock: two elements starting together load it once */
    sm = g_new0 (SharedModel, 1);
    sm->key = key;
    sm->model = m;
    sm->refs = 1;
    g_hash_table_insert (shared_models, sm->key, sm);
    *reused = FALSE;
  } else {
    g_free (key);
  }
  g_mutex_unlock (&shared_lock);
  return m;
}

void
gst_mgllava_model_cache_release (MglModel * m)
{
  GHashTableIter it;
  gpointer k, v;

  if (!m)
    return;
  g_mutex_lock (&shared_lock);
  g_hash_table_iter_init (&it, shared_models);
  while (g_hash_table_iter_next (&it, &k, &v)) {
    SharedModel *sm = v;
    if (sm->model == m) {
      if (--sm->refs == 0) {
        g_hash_table_iter_remove (&it);
        mgl_model_free (sm->model);
        g_free (sm->key);
        g_free (sm);
      }
      break;
    }
  }
  g_mutex_unlock (&shared_lock);
}
