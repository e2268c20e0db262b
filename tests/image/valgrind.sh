#!/bin/bash
# The image decoders under valgrind memcheck over the whole corpus (decoded
# and refused files alike): zero errors (no read of uninitialised memory, no
# invalid access), no definite or indirect leaks. Skips without valgrind.
set -u
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 77; }
DRIVER=${1:?usage: valgrind.sh TEST_IMAGE_BINARY}
DIR=${MGL_FIXTURES:?}/images
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
files=("$DIR"/*.png "$DIR"/*.jpg "$DIR"/*.webp "$DIR"/*.ppm "$DIR"/*.pgm "$DIR"/*.pbm "$DIR"/*.pam "$DIR"/*.gif "$DIR"/*.bmp "$DIR"/*.tif
       "$DIR"/*.ico "$DIR"/*.cur "$DIR"/*.dib "$DIR"/*.tga "$DIR"/*.sgi "$DIR"/*.pcx "$DIR"/*.jp2 "$DIR"/*.j2k
       "$DIR"/*.msp "$DIR"/*.xbm "$DIR"/*.spider "$DIR"/*.im "$DIR"/*.dds "$DIR"/*.icns "$DIR"/*.blp)
# the dynamic loader's own over-read when a CUDA build loads libcublas (see tests/cli/valgrind.supp)
SUPP="$(dirname "$0")/../cli/valgrind.supp"
valgrind -q --suppressions="$SUPP" --error-exitcode=99 --track-origins=yes --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect "$DRIVER" "${files[@]}" >"$tmp/out" 2>"$tmp/vg"
rc=$?
n=$(wc -l <"$tmp/out")
if [ $rc -ne 0 ] || grep -q '==[0-9]*== ' "$tmp/vg"; then
    echo "FAIL valgrind over ${#files[@]} files (exit $rc)"
    head -60 "$tmp/vg"
    exit 1
fi
echo "ok   valgrind clean over ${#files[@]} files ($n decoded or refused)"
