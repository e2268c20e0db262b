#!/bin/bash
# Demo: set up a fresh Debian 12 machine, build, and caption a video stream.
#   mgllavascenesrc ! mgllavablobdetect ! mgllavafilter ! mgllavajson location=- ! fakesink
# The model is a tiny random-weight MG-LLaVA stored in the official file
# layouts (HF CLIP folder, OpenCLIP ConvNeXt .bin, MG-LLaVA .pth, HF LLM
# folder, mgllava.json): every stage runs, but its answers are noise. The
# trained demo model (models/) replaces it when it lands.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ -z "${MGL_SKIP_APT:-}" ]; then
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q meson ninja-build pkg-config gcc libc6-dev \
        libglib2.0-dev libjson-glib-dev libopenblas-dev libpng-dev libjpeg-dev \
        libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base \
        gstreamer1.0-plugins-good gstreamer1.0-x >/dev/null
fi
[ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH
[ -d build-demo ] || meson setup build-demo --buildtype=release >/dev/null
ninja -C build-demo >/dev/null
export GST_PLUGIN_PATH_1_0=$PWD/build-demo/gst:$PWD/build-demo/detectors
export GST_REGISTRY_1_0=$PWD/build-demo/demo-registry.bin
MODEL=${MODEL:-tests/fixtures/models/tiny-llama3}

echo "== mgllava inspect --model $MODEL"
build-demo/engine/mgllava inspect --model "$MODEL" | grep -E '^(model|template|clip|convnext|llm|total|status)'
echo "== synthetic scenes -> blob detector -> MG-LLaVA; one JSON line per answered frame"
gst-launch-1.0 -q mgllavascenesrc num-buffers=90 seed=1 scene-frames=30 ! \
    mgllavablobdetect ! \
    mgllavafilter model="$MODEL" prompt="Describe the image." interval=15 attach-mode=exact max-new-tokens=12 ! \
    mgllavajson location=- skip-empty=true ! fakesink
