/* fuzz-common.h: shared helpers of the libFuzzer harnesses (tests/fuzz).
 *
 * The engine's loaders take paths, so each input is written to one memfd per
 * process (no disk churn) and handed over as /proc/self/fd/N. Loaders that
 * dispatch on the file name (tokenizer.json vs tokenizer.model, *.index.json)
 * get a symlink with that name in a private folder pointing at the memfd.
 *
 * fuzz-common.c also wraps mmap/munmap (-Wl,--wrap) for the engine objects:
 * read-only private file mappings become exact-size heap copies, so ASan sees
 * a read one byte past the end of a mapped file (which a real mapping hides
 * up to the end of the page). */
#ifndef MGL_FUZZ_COMMON_H
#define MGL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "mgl-internal.h"

/* Replace the memfd's contents with data[0..size) and return its path
 * ("/proc/self/fd/N"). Aborts on failure (an environment problem, not a
 * finding). */
const char* fuzz_write_input(const uint8_t* data, size_t size);

/* Path of a symlink called `name` in this process's private folder that
 * points at the memfd (create once, after fuzz_write_input has run once). */
const char* fuzz_named_input(const char* name);

/* Path of `rel` under the fixtures folder ($MGL_FIXTURES, else the
 * tests/fixtures folder of the source tree this harness was built from).
 * Returned string is static storage; valid until the next call. */
const char* fuzz_fixture(const char* rel);

/* Path of `name` in this process's private folder (the folder is created on
 * first use and removed at exit). Static storage, valid until the next call. */
const char* fuzz_private_path(const char* name);

/* Symlink `name` in the private folder to `target` (an absolute path); for
 * harnesses that need companion files next to the input. */
void fuzz_link_companion(const char* name, const char* target);

/* Walk every tensor of a loaded set as a consumer would: numel, contiguity,
 * and conversion of every element to f32 when the tensor is not huge. A view
 * that reaches outside its mapping shows up here as an ASan report. */
void fuzz_touch_tensors(const MglTensorSet* set);


/* After a successful tokenizer load: encode a fixed multilingual sample with
 * and without special tokens, decode it back (skip_special on and off), run
 * the streaming detokenizer over the result and over the first ids of the
 * vocabulary, and query the accessors. */
void fuzz_exercise_tokenizer(const MglTokenizer* tok);

#endif
