#!/bin/bash
# mgllavablobdetect speed on one core: frames per second at 640x480 on
# rendered scenes (flat, noisy, checkerboard and dark backgrounds), for
# RGBx, RGB and I420 input. Not a test: timings depend on the machine.
#
# Usage: tests/gst/detectors/bench_blob.sh [BUILD_DIR] [WIDTH HEIGHT SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=${1:-build}
shift || true
BIN=$BUILD/tests/gst/detectors/bench-blob
[ -x "$BIN" ] || { echo "no $BIN: build first (ninja -C $BUILD)"; exit 1; }
export GST_PLUGIN_PATH_1_0=$PWD/$BUILD/detectors
export GST_REGISTRY_1_0=${TMPDIR:-/tmp}/mgllava-bench-registry.bin
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
if command -v taskset >/dev/null; then
    exec taskset -c 0 "$BIN" "$@"
fi
echo "(taskset not found: not pinned to one core)"
exec "$BIN" "$@"
