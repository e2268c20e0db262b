#!/bin/sh
# private-plugins.sh SYSTEM_PLUGIN_DIR OUT_DIR NAME...
# Makes OUT_DIR a folder of links to SYSTEM_PLUGIN_DIR/libgstNAME.so, one per NAME, for
# GST_PLUGIN_SYSTEM_PATH_1_0: the element tests then load these system plugins and no
# others, whatever else is installed. A plugin that is not installed is a dangling link,
# which the registry scan skips (the tests that need it skip or fail as they would without
# it), and it is found once installed.
set -e
src=$1
out=$2
shift 2
rm -rf "$out"
mkdir -p "$out"
for name in "$@"; do
    ln -s "$src/libgst$name.so" "$out/libgst$name.so"
done
