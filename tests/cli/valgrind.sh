#!/bin/bash
# The CLI under valgrind memcheck on a tiny model: zero errors, no definite or
# indirect leaks (run, inspect, convert, tokenize). Skips without valgrind.
set -u
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 77; }
BIN=${MGLLAVA:?}
M=${MGL_FIXTURES:?}/models/tiny-vicuna
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
SUPP=--suppressions=$(cd "$(dirname "$0")" && pwd)/valgrind.supp
vg() {
    valgrind -q "$SUPP" --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect "$@" >"$tmp/out" 2>"$tmp/vg" </dev/null
    local rc=$?
    if [ $rc -eq 99 ] || grep -q '==[0-9]*== ' "$tmp/vg"; then
        echo "FAIL valgrind: $*"; head -30 "$tmp/vg"; fails=$((fails + 1))
    else
        echo "ok   valgrind clean (exit $rc): ${*:1:2}"
    fi
}
printf 'P6\n16 12\n255\n' >"$tmp/img.ppm"; head -c 576 /dev/urandom >>"$tmp/img.ppm"
echo '{"boxes": [[1, 1, 8, 8], [4, 2, 15, 11]], "scores": [0.9, 0.5], "labels": ["a", "b"]}' >"$tmp/b.json"
vg "$BIN" run --model "$M" --image "$tmp/img.ppm" --boxes "$tmp/b.json" --prompt "Describe the image." --max-new-tokens 2 --json
vg "$BIN" inspect --model "$M"
vg "$BIN" inspect --model "$M/iter_10.pth"
vg "$BIN" convert --model "$M" --out "$tmp/packed" --dtype f16
printf 'a red circle' >"$tmp/t.txt"
valgrind -q "$SUPP" --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect "$BIN" tokenize \
    --tokenizer "$M/llm" <"$tmp/t.txt" >/dev/null 2>"$tmp/vg" && ! grep -q '==[0-9]*== ' "$tmp/vg" &&
    echo "ok   valgrind clean: tokenize" || { echo "FAIL valgrind tokenize"; head "$tmp/vg"; fails=$((fails + 1)); }
vg "$BIN" run --model "$M" --image "$tmp/missing.png" --prompt hi   # an error path
echo "$fails failure(s)"
[ $fails -eq 0 ]
