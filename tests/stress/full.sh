#!/bin/bash
# The full-length stress runs (by hand; CI runs scaled-down versions):
# 20 000-frame soak, 200 state cycles, 200 flushing seeks, 3000 frames of
# property and caps changes, bad input. Usage: tests/stress/full.sh [BUILD_DIR]
set -u
B=${1:-build}
M=$(cd "$(dirname "$0")/../fixtures/models/tiny-vicuna" && pwd)
export GST_PLUGIN_PATH_1_0=$B/gst:$B/detectors GST_REGISTRY_1_0=$B/tests/stress-registry.bin
rc=0
for t in "soak 20000" "states 200" "seeks 200" "props 3000" "badinput 0"; do
    set -- $t
    "$B/tests/stress/stress" "$1" "$M" "$2" || { echo "FAILED: $t"; rc=1; }
done
exit $rc
