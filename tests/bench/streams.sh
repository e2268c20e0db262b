#!/bin/bash
# Many streams, one model, through the pipeline: N mgllavascenesrc streams (different seeds), each
# with mgllavablobdetect's boxes (as the demo pipeline), into N mgllavafilter elements sharing one
# model and its scheduler (MglServer), for N in STREAMS.
# Every frame is sampled (interval=1) and every frame is a new scene (scene-frames=1); the
# source is not live, so attach-mode=auto holds each frame for its answer: each stream keeps one
# request at the model at a time and the scheduler batches the streams' requests.
#   answered/s  answers of all streams together / the time from the first answer to the last
#               (the model load and the first answer's wait are left out)
#   p50, p95    answer latency (sampling to answer, the result's latency_ms) over every answer
#   tokens      the mean answer length
#   batch       the mean and largest decode batch the answers ran in
# Figures come from the filter's debug log (one line per answer, with its latency and batch).
# Usage: tests/bench/streams.sh [BUILD_DIR] [MODEL_DIR] [ANSWERS_PER_STREAM]
#   STREAMS="1 2 4 8" (default "1 2 4"), MAX_BATCH (default 0: from memory), PROMPT,
#   MIN_OBJECTS (default 1; more objects make longer captions, so decoding weighs more).
# Not a test: prints a table; run it by hand on an idle machine.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
B=${1:-build}
M=${2:-$here/../../models/mgllava-demo}
A=${3:-16}
STREAMS=${STREAMS:-1 2 4}
MAX_BATCH=${MAX_BATCH:-0}
PROMPT=${PROMPT:-Describe the image.}
MIN_OBJECTS=${MIN_OBJECTS:-1}
export GST_PLUGIN_PATH_1_0=$B/gst:$B/detectors GST_REGISTRY_1_0=$B/tests/bench-registry.bin
[ -f "$M/mgllava.json" ] || { echo "no model at $M" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "model $M, $A answers per stream, prompt \"$PROMPT\", min-objects $MIN_OBJECTS, max-batch $MAX_BATCH"
echo "host: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
printf '%-8s %8s %9s %11s %8s %9s %9s %7s %11s %9s\n' streams answers seconds answered/s speedup \
    "p50 ms" "p95 ms" tokens "mean batch" "max batch"
base=""
for n in $STREAMS; do
    args=()
    for i in $(seq 0 $((n - 1))); do
        args+=(mgllavascenesrc seed=$((1000 + i)) num-buffers="$A" scene-frames=1 min-objects="$MIN_OBJECTS" !
            mgllavablobdetect !
            mgllavafilter name=f$i model="$M" max-batch="$MAX_BATCH" interval=1 "prompt=$PROMPT" ! fakesink)
    done
    GST_DEBUG_NO_COLOR=1 GST_DEBUG=mgllavafilter:5 gst-launch-1.0 -q "${args[@]}" \
        >"$tmp/out.$n" 2>"$tmp/log.$n" || { echo "N=$n failed: $(tail -3 "$tmp/log.$n")" >&2; exit 1; }
    python3 - "$tmp/log.$n" "$n" "$A" "${base:-0}" >"$tmp/row.$n" <<'PY'
import re, sys
path, n, per, base = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
line = re.compile(r'^(\d+):(\d+):(\d+\.\d+) .*<f\d+> frame \d+: .*\(([\d.]+) ms, (\d+) tokens, batch (\d+)\)\s*$')
times, lat, batch, toks = [], [], [], []
for l in open(path, errors="replace"):
    m = line.match(l)
    if m:
        h, mi, s = int(m.group(1)), int(m.group(2)), float(m.group(3))
        times.append(h * 3600 + mi * 60 + s)
        lat.append(float(m.group(4)))
        toks.append(int(m.group(5)))
        batch.append(int(m.group(6)))
if len(times) != n * per:
    sys.exit(f"N={n}: {len(times)} answers in the log, want {n * per}")
times.sort()
secs = times[-1] - times[0]
fps = (len(times) - 1) / secs
lat.sort()
pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
speed = fps / base if base else 1.0
print(f"{n:<8} {len(times):>8} {secs:>9.2f} {fps:>11.2f} {speed:>7.2f}x {pct(0.5):>9.1f} {pct(0.95):>9.1f}"
      f" {sum(toks) / len(toks):>7.1f} {sum(batch) / len(batch):>11.2f} {max(batch):>9}")
PY
    cat "$tmp/row.$n"
    [ -n "$base" ] || base=$(awk '{print $4}' "$tmp/row.$n")
done
