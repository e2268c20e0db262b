#!/bin/bash
# The golden parity run again, on the tiny models packed by `mgllava convert --dtype f32`.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for m in tiny-vicuna tiny-llama3 tiny-phi3 tiny-yi; do
    "$MGLLAVA" convert --model "$MGL_FIXTURES/models/$m" --out "$tmp/$m" --dtype f32 >/dev/null
done
MGL_GOLDEN_MODELS=$tmp exec "$1"
