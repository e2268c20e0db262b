/* gstmgllavaoutput.c: see gstmgllavaoutput.h. */
#include "gstmgllavaoutput.h"

#include <errno.h>
#include <string.h>

FILE* gst_mgllava_output_open(GstElement* element, const gchar* location) {
    FILE* out;

    if (strcmp(location, "-") == 0) return stdout;
    out = fopen(location, "w");
    if (!out)
        GST_ELEMENT_ERROR(element, RESOURCE, OPEN_WRITE,
                          ("Could not open \"%s\" for writing: %s", location, g_strerror(errno)), (NULL));
    return out;
}

void gst_mgllava_output_close(FILE* out) {
    if (out == stdout)
        fflush(out);
    else if (out)
        fclose(out);
}
