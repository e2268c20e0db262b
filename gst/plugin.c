/* plugin.c: the mgllava GStreamer plugin. */
#include <gst/gst.h>

#define PACKAGE "mgllava"

#include "gstmgllavafilter.h"

GST_ELEMENT_REGISTER_DECLARE(mgllavajson);
GST_ELEMENT_REGISTER_DECLARE(mgllavascenesrc);
GST_ELEMENT_REGISTER_DECLARE(mgllavapublish);

static gboolean plugin_init(GstPlugin* plugin) {
    gboolean ret = FALSE;

    ret |= GST_ELEMENT_REGISTER(mgllavafilter, plugin);
    ret |= GST_ELEMENT_REGISTER(mgllavajson, plugin);
    ret |= GST_ELEMENT_REGISTER(mgllavascenesrc, plugin);
    ret |= GST_ELEMENT_REGISTER(mgllavapublish, plugin);
    return ret;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, mgllava, "MG-LLaVA multimodal LLM inference on video",
                  plugin_init, "0.1.0", "MIT/X11", "mgllava", "mgllava source tree")
