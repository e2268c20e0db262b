/* gstmgllavaoutput.h: the text outputs of the plugin's elements (JSON lines,
 * ground truth): a file path, or "-" for standard output. */
#ifndef __GST_MGLLAVA_OUTPUT_H__
#define __GST_MGLLAVA_OUTPUT_H__

#include <gst/gst.h>
#include <stdio.h>

G_BEGIN_DECLS

/* Opens `location` for writing ("-" = stdout); on failure posts a
 * GST_ELEMENT_ERROR naming it and returns NULL. */
FILE* gst_mgllava_output_open(GstElement* element, const gchar* location);
/* Closes a file from gst_mgllava_output_open (stdout is only flushed); NULL is
 * a no-op. */
void gst_mgllava_output_close(FILE* out);

G_END_DECLS

#endif
