/* gstmgllavamodelcache.h: one loaded MglModel per model in the process.
 *
 * Every mgllavafilter in the process that names the same model (same folder,
 * device and thread setting) shares one loaded MglModel: many streams, one
 * copy of the weights. Each element keeps its own MglCtx (KV cache), and the
 * model is immutable once loaded. */
#ifndef __GST_MGLLAVA_MODEL_CACHE_H__
#define __GST_MGLLAVA_MODEL_CACHE_H__

#include <glib.h>

#include "mgllava.h"

G_BEGIN_DECLS

/* The model at @path loaded with @params, shared; NULL with @err set when
 * it cannot be loaded. @reused: whether another holder had loaded it. */
MglModel *gst_mgllava_model_cache_acquire (const gchar * path,
    const MglModelParams * params, gboolean * reused, MglErr * err);
/* Drops one reference; the last one frees the model. NULL is a no-op. */
void gst_mgllava_model_cache_release (MglModel * model);

G_END_DECLS

#endif
