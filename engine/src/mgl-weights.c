/* mgl-weights.c: open any weights file by its content. */
#include "mgl-internal.h"

#include <glib.h>
#include <string.h>

MglStatus mgl_weights_load(const char* path, MglTensorSet* set, MglErr* err) {
    if (g_str_has_suffix(path, ".json")) return mgl_safetensors_load(path, set, err);
    MglMap* m = NULL;
    MGL_TRY(mgl_map_open(path, &m, err));
    bool is_zip = m->size >= 4 && memcmp(m->data, "PK\x03\x04", 4) == 0;
    /* torch.save's legacy format starts with a pickle PROTO opcode (0x80) */
    bool is_pickle = m->size >= 2 && m->data[0] == 0x80 && m->data[1] <= 5;
    mgl_map_unref(m);
    if (is_zip || is_pickle) return mgl_torch_load(path, set, err);
    return mgl_safetensors_load(path, set, err);
}
