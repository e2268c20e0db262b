#!/usr/bin/env bash
# tests/gpu/bundle-libs.sh [BUILD]: copy the shared libraries the CUDA build's
# programs need, except the C library, the CUDA driver and the loader, into
# BUILD/gpu-libs (default build-cuda), so that the carried build folder runs on
# a GPU machine that lacks glib, json-glib, libpng, libjpeg, libwebp or OpenBLAS; and
# the 32k tokenizer of ../shared/testdata into BUILD/gpu-libs/sp32k.
# tests/gpu/check.sh puts that folder on LD_LIBRARY_PATH; it also unpacks
# BUILD/gpu-libs.tar.xz (written here) when only the archive was carried.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build-cuda}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
DEST=$BUILD/gpu-libs
mkdir -p "$DEST"
skip='^(libc|libm|libdl|libpthread|librt|ld-linux.*|libcuda|libcudart|libcublas|libcublasLt|libgcc_s|libstdc\+\+)\.so'
for bin in "$BUILD/engine/mgllava" "$BUILD/engine/libmgllava-cuda.so" "$BUILD"/tests/gpu/test_cuda_ops \
    "$BUILD"/tests/gpu/test_cuda_model; do
    [ -e "$bin" ] || continue
    ldd "$bin" | awk '/=> \//{print $3}' | while read -r lib; do
        base=$(basename "$lib")
        if echo "$base" | grep -Eq "$skip"; then continue; fi
        [ -e "$DEST/$base" ] || cp -L "$lib" "$DEST/$base"
    done
done
# OpenBLAS is opened at run time (dlopen), not linked
for lib in /usr/lib/x86_64-linux-gnu/libopenblas.so.0 /usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0; do
    if [ -e "$lib" ]; then
        cp -L "$lib" "$DEST/libopenblas.so.0"
        for dep in $(ldd "$lib" | awk '/=> \//{print $3}'); do
            b=$(basename "$dep")
            echo "$b" | grep -Eq "$skip" || [ -e "$DEST/$b" ] || cp -L "$dep" "$DEST/$b"
        done
        break
    fi
done
# the 32k SentencePiece tokenizer of the shared test data (1.8 MB), for check.sh's streams step
# (a preset saved with a real vocabulary, constrained answers); the GPU machine has no ../shared
TOKSRC=${MGL_SHARED_TESTDATA:-$ROOT/../shared/testdata}/tokenizers/sp32k
if [ -f "$TOKSRC/tokenizer.json" ]; then
    mkdir -p "$DEST/sp32k"
    cp "$TOKSRC/tokenizer.json" "$TOKSRC/tokenizer_config.json" "$DEST/sp32k/"
fi
# the carried tree is size-limited: a compressed copy (7 MB instead of 44) that check.sh unpacks
tar -C "$BUILD" -cJf "$BUILD/gpu-libs.tar.xz" gpu-libs
du -sh "$DEST" "$BUILD/gpu-libs.tar.xz"
