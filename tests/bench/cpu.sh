#!/bin/bash
# CPU benchmarks of the forward pass (figures quoted in docs/engine.md):
# the CLIP-L + ConvNeXt-L vision path, 110M-parameter Llama decode, and with
# --7b a 7B-class f16 MG-LLaVA written to disk (about 15 GB in $TMPDIR) and
# loaded by mmap: one captioned frame, peak RSS against the file size.
# Usage: tests/bench/cpu.sh [BUILD_DIR] [--7b]
set -eu
B=${1:-build}
BIN=$B/engine/mgllava
$BIN bench --preset vision-l --reps 3
$BIN bench --preset llama-110m --dtype f16 --gen-tokens 64
$BIN bench --preset llama-110m --dtype f32 --gen-tokens 64
if [ "${2:-}" = "--7b" ]; then
    dir=$(mktemp -d "${TMPDIR:-/tmp}/mgl-7b.XXXXXX")
    trap 'rm -rf "$dir"' EXIT
    tok=$(dirname "$0")/../../../shared/testdata/tokenizers/sp32k
    $BIN bench --preset mgllava-7b --dtype f16 --save "$dir/model" ${tok:+--tokenizer "$tok"}
    $BIN bench --model "$dir/model" --gen-tokens 4
fi
