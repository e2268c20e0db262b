#!/bin/bash
# Demo: set up a fresh Debian 12 machine, build, and caption a video stream.
#   1. mgllavascenesrc ! mgllavablobdetect ! mgllavafilter ! mgllavajson location=- ! fakesink
#      prints one JSON line per answered frame, then the same with one question per new track
#      (object-mode=new-track: the answers on the objects);
#   2. the same stream with the captions drawn on the video (mgllavafilter's text_src pad into
#      textoverlay): on the screen when $DISPLAY or $WAYLAND_DISPLAY is set, else as PNG frames
#      in demo-out/.
# The model is the trained demo model in models/mgllava-demo when it is there (docs/demo.md);
# otherwise a tiny random-weight MG-LLaVA stored in the official file layouts (HF CLIP folder,
# OpenCLIP ConvNeXt .bin, MG-LLaVA .pth, HF LLM folder, mgllava.json): every stage runs, but its
# answers are noise.
# Environment: MODEL (model folder), PROMPT (default "Describe the image."; the demo model writes
# 0.90 of held-out captions exactly and answers 0.99 of the questions: docs/demo-model.md),
# MGL_SKIP_APT=1 (no apt-get), MGL_DEMO_VIDEO=0 (part 1 only),
# MGL_DEMO_FRAMES (frames of part 2; default 90 as PNG, 900 on a screen), MGL_DEMO_OUT (demo-out),
# MGL_BUILD_DIR (build-demo), MGL_NINJA_JOBS (ninja -j).
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ -z "${MGL_SKIP_APT:-}" ]; then
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q meson ninja-build pkg-config gcc libc6-dev \
        libglib2.0-dev libjson-glib-dev libopenblas-dev libpng-dev libjpeg-dev libwebp-dev libtiff-dev liblcms2-dev libopenjp2-7-dev \
        libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base \
        gstreamer1.0-plugins-good gstreamer1.0-x >/dev/null
fi
[ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH
BUILD=${MGL_BUILD_DIR:-build-demo}
[ -d "$BUILD" ] || meson setup "$BUILD" --buildtype=release >/dev/null
ninja -C "$BUILD" ${MGL_NINJA_JOBS:+-j "$MGL_NINJA_JOBS"} >/dev/null
export GST_PLUGIN_PATH_1_0=$PWD/$BUILD/gst:$PWD/$BUILD/detectors
export GST_REGISTRY_1_0=$PWD/$BUILD/demo-registry.bin
if [ -z "${MODEL:-}" ]; then
    if [ -f models/mgllava-demo/mgllava.json ]; then
        MODEL=models/mgllava-demo
    else
        MODEL=tests/fixtures/models/tiny-llama3
        echo "note: models/mgllava-demo is not there yet; using $MODEL, a random-weight model: its answers are noise"
    fi
fi

PROMPT=${PROMPT:-Describe the image.}
echo "== mgllava inspect --model $MODEL"
"$BUILD"/engine/mgllava inspect --model "$MODEL" | grep -E '^(model|template|clip|convnext|llm|total|status)'
echo "== synthetic scenes -> blob detector -> MG-LLaVA; one JSON line per answered frame"
gst-launch-1.0 -q mgllavascenesrc num-buffers=90 seed=1 scene-frames=30 ! \
    mgllavablobdetect ! \
    mgllavafilter model="$MODEL" prompt="$PROMPT" interval=15 attach-mode=exact ! \
    mgllavajson location=- skip-empty=true ! fakesink
echo "== per object: each new track (mgllavablobdetect's track ids) asked its shape alone; answers in objects[].answers"
gst-launch-1.0 -q mgllavascenesrc num-buffers=60 seed=1 scene-frames=30 ! \
    mgllavablobdetect ! \
    mgllavafilter model="$MODEL" object-mode=new-track object-prompt="What shape is the {label} object?" \
        attach-mode=exact ! \
    mgllavajson location=- skip-empty=true ! fakesink

[ "${MGL_DEMO_VIDEO:-1}" = 0 ] && exit 0
# captions on the video: text_src -> textoverlay (docs/elements.md)
# (not a live source: a display sink paces the frames at 30 fps by itself)
overlay() { # $1: frames, then the sink part of the pipeline
    local frames=$1
    shift
    gst-launch-1.0 -q mgllavascenesrc num-buffers="$frames" seed=1 scene-frames=60 ! \
        mgllavablobdetect ! \
        mgllavafilter name=f model="$MODEL" prompt="$PROMPT" interval=30 attach-mode=exact ! queue ! \
        textoverlay name=o valignment=top halignment=left wrap-mode=word font-desc="Sans 14" ! videoconvert ! "$@" \
        f.text_src ! queue ! o.text_sink
}
if [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; then
    frames=${MGL_DEMO_FRAMES:-900}
    echo "== the same stream with its captions, on the screen ($frames frames at 30 fps; Ctrl-C stops it)"
    overlay "$frames" autovideosink
else
    frames=${MGL_DEMO_FRAMES:-90}
    out=${MGL_DEMO_OUT:-demo-out}
    mkdir -p "$out"
    rm -f "$out"/frame_*.png
    echo "== the same stream with its captions, no display: writing $frames PNG frames"
    overlay "$frames" pngenc ! multifilesink location="$out/frame_%05d.png"
    echo "wrote $(ls "$out" | grep -c '^frame_.*\.png$') frames to $out/ (frame_00000.png ...);" \
        "each answer is drawn from its frame until the next one (a new one every 30 frames)"
fi
