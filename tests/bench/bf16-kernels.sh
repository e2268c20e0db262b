#!/bin/bash
# The bf16 product kernels side by side on this CPU: the two vision towers at precision bf16
# (CLIP-L/336 + ConvNeXt-L@768, `bench --preset vision-l`) with the kernel the engine picks (AMX
# tiles where the CPU has them) and capped to vdpbf16ps (MGL_CPU_ISA=avx512-bf16), interleaved
# rounds, medians; then the demo model's answers at bf16 with each kernel against f32 on held-out
# scenes. Prints the bench lines (their "bf16_gemm" names the kernel), then one summary line each.
# A CPU without AVX512_BF16 runs both with f32 products (bf16_gemm "none").
# Usage: tests/bench/bf16-kernels.sh [BUILD_DIR] [ROUNDS (default 3)] [SCENES (default 50, 0: none)]
set -eu
B=${1:-build}
ROUNDS=${2:-3}
SCENES=${3:-50}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$B/engine/mgllava
[ -x "$BIN" ] || { echo "no $BIN: build first"; exit 2; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# OpenBLAS's kernel from the CPU's own flags, as in tests/bench/anchors.sh
unset OPENBLAS_CORETYPE
"$B/tests/unit/test_cpu_kernels" >"$out/kernels.txt" 2>&1 && echo "test_cpu_kernels: ok ($(head -n 1 "$out/kernels.txt"))" ||
    { tail -n 20 "$out/kernels.txt"; echo "test_cpu_kernels failed"; exit 1; }
for r in $(seq 1 "$ROUNDS"); do
    for cap in "" avx512-bf16; do
        MGL_CPU_ISA=$cap "$BIN" bench --preset vision-l --dtype bf16 --precision bf16 --reps 2 2>/dev/null |
            tail -n 1 | tee -a "$out/vision-${cap:-auto}.jsonl"
    done
done
python3 - "$out" <<'PY'
import json, os, statistics, sys
for name in ("auto", "avx512-bf16"):
    rows = [json.loads(l) for l in open(os.path.join(sys.argv[1], "vision-%s.jsonl" % name))]
    v = sorted(r["vision_ms"] for r in rows)
    print("vision at bf16, cap %-12s kernel %-12s median %.1f ms (%.1f-%.1f), clip %.1f, convnext %.1f"
          % (name, rows[0].get("bf16_gemm", "?"), statistics.median(v), v[0], v[-1],
             statistics.median(r["clip_ms"] for r in rows), statistics.median(r["convnext_ms"] for r in rows)))
PY
[ "$SCENES" -gt 0 ] || exit 0
M=$ROOT/models/mgllava-demo
"$BIN" eval-scenes --model "$M" --count "$SCENES" --seed 90003 --dump "$out/f32" >/dev/null
for cap in "" avx512-bf16; do
    MGL_CPU_ISA=$cap "$BIN" eval-scenes --model "$M" --count "$SCENES" --seed 90003 --precision bf16 \
        --dump "$out/bf16-${cap:-auto}" >/dev/null
    echo -n "demo answers at bf16, cap ${cap:-auto}: "
    python3 "$ROOT/tests/bench/quant-agree.py" "$out/f32" "$out/bf16-${cap:-auto}" | head -n 1
done
