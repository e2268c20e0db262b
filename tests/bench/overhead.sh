#!/bin/bash
# Per-frame cost of mgllavafilter when it does not sample (interval=2147483647: only the first
# frame is sampled; interval=0 means every frame) and of mgllavajson, against identity, on N
# 640x480 RGB frames (fakesink, no sync).
# Usage: tests/bench/overhead.sh [BUILD_DIR] [FRAMES]
set -eu
B=${1:-build}
N=${2:-20000}
M=$(dirname "$0")/../fixtures/models/tiny-vicuna
export GST_PLUGIN_PATH_1_0=$B/gst:$B/detectors GST_REGISTRY_1_0=$B/tests/bench-registry.bin
# best of 3 runs (the source dominates; the minimum is the least disturbed)
run() {
    local t0 t1 best=0 r
    for r in 1 2 3; do
        t0=$(date +%s%N)
        gst-launch-1.0 -q videotestsrc num-buffers="$N" pattern=solid-color ! \
            video/x-raw,format=RGB,width=640,height=480 ! "$@" ! fakesink sync=false
        t1=$(date +%s%N)
        r=$(((t1 - t0) / N))
        if [ $best -eq 0 ] || [ "$r" -lt $best ]; then best=$r; fi
    done
    echo $best
}
base=$(run identity)
filt=$(run mgllavafilter model="$M" interval=2147483647)
json=$(run mgllavajson location=/dev/null)
echo "{\"frames\": $N, \"identity_ns_per_frame\": $base, \"mgllavafilter_not_sampling_ns_per_frame\": $filt,"\
     "\"mgllavajson_ns_per_frame\": $json, \"filter_overhead_ns\": $((filt - base)), \"json_overhead_ns\": $((json - base))}"
