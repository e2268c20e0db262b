#!/bin/bash
# Live dashboard: several synthetic camera streams answered by one shared MG-LLaVA model, published
# to a local MQTT broker, shown on a web page that updates live.
#
#   bash pipelines/dashboard.sh            then open the address it prints
#
# It starts, all on loopback:
#   - mosquitto with a TCP listener (the pipeline publishes there) and a websockets listener (the
#     page subscribes there), socket_domain ipv4;
#   - one gst-launch-1.0 with N streams: mgllavascenesrc (seed i, live) ! mgllavablobdetect !
#     mgllavafilter (one model shared by all, a caption every MGL_DASHBOARD_INTERVAL s) !
#     mgllavapublish method=mqtt topic=mgllava/dashboard/stream<i>, and a branch writing the
#     stream's latest frame as a JPEG thumbnail about once a second;
#   - python3 -m http.server serving the page (pipelines/dashboard/) and the thumbnails.
# Environment: MODEL (default models/mgllava-demo), MGL_DASHBOARD_STREAMS (3),
# MGL_DASHBOARD_INTERVAL (seconds between answers of a stream, 2), MGL_DASHBOARD_SECONDS (run this
# long, 0 = until Ctrl-C), MGL_DASHBOARD_DIR (run folder, default a temporary one),
# MGL_DASHBOARD_HTTP_PORT / _MQTT_PORT / _WS_PORT (default: free ports), MGL_BUILD_DIR (build-demo;
# built when missing), MGL_SKIP_APT=1 (no apt-get). Prints "dashboard: URL" when ready.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
if [ -z "${MGL_SKIP_APT:-}" ]; then
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q meson ninja-build \
        pkg-config gcc libc6-dev libglib2.0-dev libjson-glib-dev libopenblas-dev libpng-dev libjpeg-dev libwebp-dev libtiff-dev liblcms2-dev libopenjp2-7-dev \
        libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools gstreamer1.0-plugins-base \
        gstreamer1.0-plugins-good libmosquitto-dev mosquitto python3 >/dev/null
fi
if [ -z "${GST_PLUGIN_PATH_1_0:-}" ]; then
    BUILD=${MGL_BUILD_DIR:-build-demo}
    [ -d "$BUILD" ] || meson setup "$BUILD" --buildtype=release >/dev/null
    ninja -C "$BUILD" >/dev/null
    export GST_PLUGIN_PATH_1_0=$ROOT/$BUILD/gst:$ROOT/$BUILD/detectors
    export GST_REGISTRY_1_0=$ROOT/$BUILD/dashboard-registry.bin
fi
MODEL=${MODEL:-models/mgllava-demo}
N=${MGL_DASHBOARD_STREAMS:-3}
INTERVAL=${MGL_DASHBOARD_INTERVAL:-2}
SECONDS_TO_RUN=${MGL_DASHBOARD_SECONDS:-0}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HTTP_PORT=${MGL_DASHBOARD_HTTP_PORT:-$(free_port)}
MQTT_PORT=${MGL_DASHBOARD_MQTT_PORT:-$(free_port)}
WS_PORT=${MGL_DASHBOARD_WS_PORT:-$(free_port)}
if [ -n "${MGL_DASHBOARD_DIR:-}" ]; then
    RUN=$MGL_DASHBOARD_DIR
    mkdir -p "$RUN"
else
    RUN=$(mktemp -d)
fi
mkdir -p "$RUN/thumbs"
chmod 755 "$RUN" "$RUN/thumbs"
cp pipelines/dashboard/*.html pipelines/dashboard/*.js "$RUN/"

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

cat >"$RUN/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous true
listener $MQTT_PORT 127.0.0.1
socket_domain ipv4
listener $WS_PORT 127.0.0.1
socket_domain ipv4
protocol websockets
user $(id -un)
CONF
mosquitto -c "$RUN/mosquitto.conf" >"$RUN/mosquitto.log" 2>&1 &
pids+=($!)

# N streams in one process: their mgllavafilters share one loaded model and its scheduler
desc=""
for i in $(seq 0 $((N - 1))); do
    desc+=" mgllavascenesrc seed=$((i + 1)) is-live=true scene-frames=$((90 + 30 * i)) ! tee name=t$i"
    desc+=" t$i. ! queue ! mgllavablobdetect ! mgllavafilter model=$MODEL interval-time=${INTERVAL}000000000"
    desc+=" ! mgllavapublish method=mqtt address=127.0.0.1:$MQTT_PORT topic=mgllava/dashboard/stream$i"
    desc+=" source=stream$i qos=0 ! fakesink sync=false"
    desc+=" t$i. ! queue leaky=downstream max-size-buffers=2 ! videorate drop-only=true ! video/x-raw,framerate=1/1"
    desc+=" ! videoconvert ! videoscale ! video/x-raw,width=320,height=240 ! jpegenc quality=80"
    desc+=" ! multifilesink location=$RUN/thumbs/stream$i.jpg"
done
# shellcheck disable=SC2086
gst-launch-1.0 -q $desc >"$RUN/pipeline.log" 2>&1 &
pids+=($!)

"$PY" -m http.server "$HTTP_PORT" --bind 127.0.0.1 --directory "$RUN" >"$RUN/http.log" 2>&1 &
pids+=($!)

streams=$(seq -s, -f 'stream%g' 0 $((N - 1)))
echo "dashboard: http://127.0.0.1:$HTTP_PORT/index.html?ws=ws://127.0.0.1:$WS_PORT&streams=$streams"
echo "(run folder $RUN; MQTT tcp://127.0.0.1:$MQTT_PORT, topics mgllava/dashboard/stream0..$((N - 1)))"
if [ "$SECONDS_TO_RUN" -gt 0 ]; then
    sleep "$SECONDS_TO_RUN"
else
    wait "${pids[1]}"
    tail -5 "$RUN/pipeline.log"
fi
