/* fuzz_torch: torch.save zip archives (central directory, ZIP64, local
 * headers) and the restricted unpickler behind mgl_torch_load. Every loaded
 * tensor view is read back element by element. */
#include "fuzz-common.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fuzz_write_input(data, size);
    MglTensorSet* set = mgl_tset_new();
    if (!set) abort();
    MglErr err = {0};
    if (mgl_torch_load(path, set, &err) == MGL_OK) fuzz_touch_tensors(set);
    mgl_tset_free(set);
    return 0;
}
