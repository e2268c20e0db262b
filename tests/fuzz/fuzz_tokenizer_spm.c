/* fuzz_tokenizer_spm: SentencePiece tokenizer.model (protobuf ModelProto:
 * pieces, scores, types, trainer/normalizer specs). A tokenizer that loads is
 * then used: encode, decode, streaming detokenizer. */
#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz_write_input(data, size);
    MglTokenizer* tok = NULL;
    MglErr err = {0};
    if (mgl_tokenizer_load(fuzz_named_input("tokenizer.model"), &tok, &err) == MGL_OK) {
        fuzz_exercise_tokenizer(tok);
        mgl_tokenizer_free(tok);
    }
    return 0;
}
