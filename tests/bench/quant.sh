#!/bin/bash
# Quantized weights on the CPU (figures quoted in docs/quantization.md):
# 110M-parameter Llama decode at f32, q8 and q4, each run REPS times in turn
# and the best tokens/s kept (a shared VM's neighbours only ever slow a run
# down), the per-layer error sanity figure, then the q4 model written to disk
# and loaded by mmap: peak RSS against its file size.
# Usage: tests/bench/quant.sh [BUILD_DIR] [REPS]
set -eu
B=${1:-build}
REPS=${2:-3}
BIN=$B/engine/mgllava
dir=$(mktemp -d "${TMPDIR:-/tmp}/mgl-quant.XXXXXX")
trap 'rm -rf "$dir"' EXIT
echo "== $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$REPS"); do
    for d in f32 q8 q4; do
        $BIN bench --preset llama-110m --dtype "$d" --gen-tokens 64 2>>"$dir/err.txt" >>"$dir/$d.jsonl"
    done
done
grep "relative RMS" "$dir/err.txt" | sort -u
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
best = {}
for k in ("f32", "q8", "q4"):
    runs = [json.loads(l) for l in open(f"{d}/{k}.jsonl") if l.strip()]
    best[k] = max(runs, key=lambda j: j["decode_tokens_per_s"])
    print(f"{k:4} decode {best[k]['decode_tokens_per_s']:6.1f} tok/s (best of {len(runs)}: "
          f"{', '.join(str(j['decode_tokens_per_s']) for j in runs)}), weights read per token "
          f"{best[k]['llm_weight_bytes'] / 2**20:.1f} MiB, prefill {best[k]['prefill_ms']:.0f} ms")
for k in ("q8", "q4"):
    print(f"{k} / f32 decode: {best[k]['decode_tokens_per_s'] / best['f32']['decode_tokens_per_s']:.2f}x")
PY
echo "== q4 model on disk, loaded by mmap"
tok=$(cd "$(dirname "$0")/../../.." && pwd)/shared/testdata/tokenizers/sp32k
$BIN bench --preset llama-110m --dtype q4 --save "$dir/q4" --tokenizer "$tok" 2>/dev/null
$BIN bench --model "$dir/q4" --gen-tokens 4
