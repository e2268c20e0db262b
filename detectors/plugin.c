/* plugin.c: the mgllavadetectors plugin.
 *
 * Copyright (C) 2026 mgllava authors
 * SPDX-License-Identifier: MIT
 */
#include <gst/gst.h>

#include "gstmgllavaboxes.h"
#include "gstmgllavablobdetect.h"

#ifndef PACKAGE
#define PACKAGE "mgllava"
#endif

static gboolean plugin_init(GstPlugin* plugin) {
    gboolean ret = FALSE;

    ret |= GST_ELEMENT_REGISTER(mgllavaboxes, plugin);
    ret |= GST_ELEMENT_REGISTER(mgllavablobdetect, plugin);
    return ret;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, mgllavadetectors,
                  "MG-LLaVA detectors: offline boxes and a coloured-blob detector", plugin_init,
                  GST_MGLLAVA_DETECTORS_VERSION, "MIT/X11", "mgllava", "https://github.com/mgllava/mgllava")
