#!/bin/bash
# `mgllava convert --dtype q8|q4` and `bench --dtype q8|q4` from the command line
# (docs/quantization.md): the options reach the file (inspect names the group),
# a quantized demo model answers the same caption as f32 on one scene, and bad
# options are refused with a message.
set -u
M=${MGLLAVA:?}
DEMO=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { # description, then a command that must succeed
    local what=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then echo "ok   $what"; else
        echo "FAIL $what"
        sed 's/^/     /' "$tmp/out"
        fail=1
    fi
}
refused() { # description, expected text, then a command that must fail with it
    local what=$1 want=$2
    shift 2
    if "$@" >"$tmp/out" 2>&1; then
        echo "FAIL $what: accepted"
        fail=1
    elif grep -q -- "$want" "$tmp/out"; then echo "ok   $what"; else
        echo "FAIL $what: message lacks '$want'"
        sed 's/^/     /' "$tmp/out"
        fail=1
    fi
}
check "convert q4 --group 64 --keep-head" "$M" convert --model "$DEMO" --out "$tmp/q4" --dtype q4 --group 64 --keep-head
check "inspect names q4 in groups of 64" grep -q "quantized     q4, groups of 64: 28 tensors" <("$M" inspect --model "$tmp/q4")
check "lm_head kept f16" grep -qE "^llm.lm_head.weight +F16 " <("$M" inspect --model "$tmp/q4/model.safetensors")
check "down_proj q4 with its scales" grep -qE "^llm.model.layers.0.mlp.down_proj.weight_scale +F16 +\[128, 6\]" \
    <("$M" inspect --model "$tmp/q4/model.safetensors")
check "convert q8 --group 0 --float f32" "$M" convert --model "$DEMO" --out "$tmp/q8" --dtype q8 --group 0 --float f32
check "inspect names q8 one scale per row" grep -q "quantized     q8, one scale per row: 29 tensors" <("$M" inspect --model "$tmp/q8")
for d in f32 q8; do
    p=$DEMO
    [ $d = q8 ] && p=$tmp/q8
    check "eval-scenes $d, one scene" "$M" eval-scenes --model "$p" --count 1 --seed 90003 --dump "$tmp/e-$d"
done
check "q8 answers as f32 on one scene" python3 - "$tmp/e-f32/items.jsonl" "$tmp/e-q8/items.jsonl" <<'PY'
import json, sys
a, b = ([json.loads(l)["answer"] for l in open(f)] for f in sys.argv[1:3])
sys.exit(0 if a == b and a else 1)
PY
check "bench --dtype q4" "$M" bench --preset llama-110m --dtype q4 --prompt-tokens 4 --gen-tokens 2
refused "q5 refused" "expected f16, bf16, f32, q8 or q4" "$M" convert --model "$DEMO" --out "$tmp/x" --dtype q5
refused "group 48 refused" "power of two" "$M" convert --model "$DEMO" --out "$tmp/x" --dtype q4 --group 48
refused "--group without q8/q4 refused" "go with q8 or q4" "$M" convert --model "$DEMO" --out "$tmp/x" --group 64
refused "yi-34b only quantized" "synthesized quantized only" "$M" bench --preset yi-34b
exit $fail
