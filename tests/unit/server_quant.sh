#!/bin/bash
# The scheduler's batched decode with quantized weights: the four tiny models
# converted to q8 and to q4, then test_server (each request's tokens the same
# alone and batched with others) against each set.
set -eu
server=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for d in q8 q4; do
    mkdir -p "$tmp/$d/models"
    for m in tiny-vicuna tiny-llama3 tiny-phi3 tiny-yi; do
        "$MGLLAVA" convert --model "$MGL_FIXTURES/models/$m" --out "$tmp/$d/models/$m" --dtype $d >/dev/null
    done
    echo "== $d"
    MGL_FIXTURES=$tmp/$d "$server"
done
