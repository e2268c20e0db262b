/* fuzz_safetensors: the safetensors reader (header JSON, offsets, dtypes,
 * shapes) and, for inputs that look like JSON, the sharded-index reader with
 * the two fixture shards next to it. Every loaded tensor is then read back. */
#include "fuzz-common.h"

#include <stdlib.h>

static void load_and_touch(const char* path, bool via_weights) {
    MglTensorSet* set = mgl_tset_new();
    if (!set) abort();
    MglErr err = {0};
    MglStatus st = via_weights ? mgl_weights_load(path, set, &err) : mgl_safetensors_load(path, set, &err);
    if (st == MGL_OK) fuzz_touch_tensors(set);
    mgl_tset_free(set);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static bool init;
    if (!init) {
        init = true;
        fuzz_link_companion("model-00001-of-00002.safetensors",
                            fuzz_fixture("safetensors/model-00001-of-00002.safetensors"));
        fuzz_link_companion("model-00002-of-00002.safetensors",
                            fuzz_fixture("safetensors/model-00002-of-00002.safetensors"));
    }
    const char* path = fuzz_write_input(data, size);
    load_and_touch(path, false);
    /* the content-sniffing entry point (safetensors unless zip/pickle magic) */
    if (size >= 1 && data[0] != 'P' && data[0] != 0x80) load_and_touch(path, true);
    if (size >= 1 && data[0] == '{') load_and_touch(fuzz_named_input("model.safetensors.index.json"), false);
    return 0;
}
