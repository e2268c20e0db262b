#!/usr/bin/env bash
# tools/demo/gpu-explore.sh OUT MINUTES STEPS 'NAME ARGS...' ['NAME ARGS...' ...]
#
# Trains recipe variants of the demo model side by side on one GPU, to compare them at the step
# count the CPU recipe reaches in its hour (docs/demo-model.md): each variant is a
# `train.py --device cuda` run with its own ARGS, --batch 8 in one process (the CPU recipe's two
# processes of 4), its schedule following STEPS or MINUTES, whichever runs out first, and no
# export. Each writes OUT/NAME/train-log.jsonl as it goes; the consoles' tails end up in
# OUT/consoles.txt. LOADERS (default 3) scene-making processes per variant; DEVICE (default cuda).
# The shipped model is still trained on the CPU (tools/demo/train.py's defaults).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$1 MIN=$2 STEPS=$3
shift 3
LOADERS=${LOADERS:-3}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
CON=$(mktemp -d)
pids=()
names=()
for spec in "$@"; do
    name=${spec%% *}
    args=${spec#"$name"}
    mkdir -p "$OUT/$name"
    # shellcheck disable=SC2086
    timeout $((${MIN%.*} * 60 + 180)) "$PY" "$ROOT/tools/demo/train.py" --out "$OUT/$name" --device "${DEVICE:-cuda}" \
        --processes 1 --loaders "$LOADERS" --batch 8 --max-steps "$STEPS" --minutes "$MIN" --step-schedule \
        --no-export $args >"$CON/$name.txt" 2>&1 &
    pids+=($!)
    names+=("$name")
    sleep 2
done
rc=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "${names[$i]}: exit $?"; rc=1; }
done
for n in "${names[@]}"; do
    echo "== $n"
    tail -n 25 "$CON/$n.txt" | cut -c1-400
done >"$OUT/consoles.txt"
rm -rf "$CON"
exit $rc
