#!/bin/bash
# Demo: set up, build, and exercise the engine on a tiny MG-LLaVA stored in the
# official file layouts (HF CLIP folder, OpenCLIP ConvNeXt .bin, MG-LLaVA .pth,
# HF LLM folder, mgllava.json).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ -z "${MGL_SKIP_APT:-}" ]; then
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q meson ninja-build pkg-config gcc libc6-dev \
        libglib2.0-dev libjson-glib-dev libopenblas-openmp-dev >/dev/null
fi
[ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH
[ -d build-demo ] || meson setup build-demo --buildtype=release >/dev/null
ninja -C build-demo >/dev/null
BIN=build-demo/engine/mgllava
MODEL=tests/fixtures/models/tiny-llama3
echo "== mgllava inspect --model $MODEL"
$BIN inspect --model $MODEL
echo "== mgllava convert (bf16, mmap-loadable)"
out=$(mktemp -d)
$BIN convert --model $MODEL --out "$out/packed" --dtype bf16
$BIN inspect --model "$out/packed" | grep -E '^(form|dtype|total|status)'
echo "== tokenize / detokenize with the model's tokenizer"
ids=$(printf 'How many objects are there?' | $BIN tokenize --tokenizer $MODEL/llm --special)
echo "ids:  $ids"
echo "text: $(echo "$ids" | $BIN detokenize --tokenizer $MODEL/llm --skip-special)"
rm -rf "$out"
