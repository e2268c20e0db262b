#!/bin/bash
# tests/bench/anchors.sh: mgllava's CPU figures beside two anchors measured on the same machine,
# the same shapes and 2 threads each:
#   mgllava    `mgllava bench --preset llama-110m` (random 110M Llama built in memory) and
#              `--preset vision-l` (CLIP-L/14-336 + ConvNeXt-L@768);
#   llama.cpp  llama-bench, built from the llama.cpp vendored in the llama-cpp-python sdist on PyPI,
#              on GGUFs (f32, f16, bf16) converted by its convert_hf_to_gguf.py from a random HF Llama
#              of the llama-110m shape (anchors_make_hf.py);
#   PyTorch    torch/transformers/timm from PyPI in a venv: the same HF Llama, CLIPVisionModel and
#              timm convnext_large (anchors_torch.py).
# Rows: decode tokens/s after 100/500/2000 tokens of context (f32, f16, bf16), prefill of 128 and
# 2000 tokens (f32, ms), the two vision towers (f32, bf16; ms). Rounds are interleaved (each round
# runs every stack once per row group, the stack order rotating) and the table shows medians.
# Prints one JSON line per measurement, then the medians as JSON lines and a markdown table.
#
# Usage: tests/bench/anchors.sh [--build DIR] [--quick] [--only mgllava|llamacpp|torch[,...]]
#                               [--rounds N] [--dtypes LIST] [--no-vision]
#   --build DIR   the meson build holding engine/mgllava (default: build)
#   --quick       smoke check: one round, 32-token prompts and contexts, 4 decode steps, 1 vision pass
#   --only LIST   only these stacks (comma-separated)
#   --rounds N    rounds of the full run (default 3)
#   --dtypes LIST the LLM rows' weight types (comma-separated; default f32,f32kv,f16,bf16,q8,q4)
#   --no-vision   leave out the vision rows (with --dtypes, more rounds of the decode rows in the
#                 same time: e.g. --only mgllava,llamacpp --dtypes f32,f16,bf16 --no-vision --rounds 6)
# Downloads and builds go to ${MGL_ANCHOR_DIR:-/tmp/mgl-anchors} (about 6 GB: the venv, llama.cpp,
# the models) and are reused by later runs; llama.cpp builds with ${MGL_ANCHOR_JOBS:-2} jobs at
# nice 19. Needs network to PyPI the first time; on a bare Debian 12 run as root it installs cmake,
# g++ and python3-venv with apt-get.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=build
ONLY=mgllava,llamacpp,torch
QUICK=0
ROUNDS=
DTYPES=f32,f32kv,f16,bf16,q8,q4
VISION=1
DIR=${MGL_ANCHOR_DIR:-/tmp/mgl-anchors}
JOBS=${MGL_ANCHOR_JOBS:-2}
THREADS=2

# pinned versions (torch/torchvision/transformers/tokenizers/safetensors/timm as in tools/requirements.txt)
LCP_VERSION=0.3.36 # llama-cpp-python sdist; vendors ggml-org/llama.cpp@0c1e57098
PINS=(torch==2.5.1 torchvision==0.20.1 transformers==4.45.2 tokenizers==0.20.3 safetensors==0.4.5
    timm==1.0.11 sentencepiece==0.2.0 numpy==2.2.6)
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() {
    echo "anchors: $*" >&2
    exit 1
}
say() { echo "anchors: $*" >&2; }
failed() { say "$* failed; see $LOG"; }

while [ $# -gt 0 ]; do
    case $1 in
    --build) BUILD=${2:?--build DIR}; shift ;;
    --quick) QUICK=1 ;;
    --only) ONLY=${2:?--only mgllava|llamacpp|torch}; shift ;;
    --rounds) ROUNDS=${2:?--rounds N}; shift ;;
    --dtypes) DTYPES=${2:?--dtypes LIST}; shift ;;
    --no-vision) VISION=0 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done
for s in ${ONLY//,/ }; do
    case $s in mgllava | llamacpp | torch) ;; *) die "--only: unknown stack '$s'" ;; esac
done
case ${ROUNDS:-1} in *[!0-9]* | 0) die "--rounds: a positive number" ;; esac
for d in ${DTYPES//,/ }; do
    case $d in f32 | f32kv | f16 | bf16 | q8 | q4) ;; *) die "--dtypes: unknown weight type '$d'" ;; esac
done
want() { [[ ",$ONLY," == *",$1,"* ]]; }

if [ "$QUICK" = 1 ]; then
    ROUNDS=${ROUNDS:-1}
    PREFILLS=(32)
    CONTEXTS=(32)
    GEN=4
    MGL_VISION_REPS=1
    TORCH_VISION_REPS=1
    TORCH_VISION_WARMUP=0
else
    ROUNDS=${ROUNDS:-3}
    PREFILLS=(128 2000)
    CONTEXTS=(100 500 2000)
    GEN=32
    MGL_VISION_REPS=2
    TORCH_VISION_REPS=3
    TORCH_VISION_WARMUP=1
fi
join() {
    local IFS=,
    echo "$*"
}
in_list() {
    local x=$1 y
    shift
    for y in "$@"; do [ "$x" = "$y" ] && return 0; done
    return 1
}

mkdir -p "$DIR/logs"
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$DIR/results-$STAMP.jsonl
LOG=$DIR/logs/anchors-$STAMP.log
: >"$RESULTS"
VENV=$DIR/venv
PY=$VENV/bin/python
LCP_SRC=$DIR/llama_cpp_python-$LCP_VERSION
LLAMA_SRC=$LCP_SRC/vendor/llama.cpp
LLAMA_BENCH=$DIR/llama-bench-$LCP_VERSION/bin/llama-bench
HF=$DIR/hf-llama-110m
report() { python3 "$HERE/anchors_report.py" "$@" | tee -a "$RESULTS"; }

# ---- setup --------------------------------------------------------------------------------------

setup_system() {
    local miss=()
    command -v python3 >/dev/null || miss+=(python3)
    if want llamacpp || want torch; then
        python3 -c 'import ensurepip, venv' 2>/dev/null || miss+=(python3-venv)
    fi
    if want llamacpp; then
        command -v cmake >/dev/null || miss+=(cmake)
        command -v c++ >/dev/null || miss+=(g++)
        command -v make >/dev/null || command -v ninja >/dev/null || miss+=(make)
    fi
    [ ${#miss[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        die "missing: ${miss[*]} (install them, or run as root on Debian)"
    fi
    say "apt-get install ${miss[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${miss[@]}" >&2
}

setup_venv() {
    local stamp=$VENV/.anchors-pins pip
    [ -x "$PY" ] || python3 -m venv "$VENV"
    [ "$(cat "$stamp" 2>/dev/null)" = "${PINS[*]}" ] && return 0
    pip=("$PY" -m pip install -q --disable-pip-version-check --timeout 60)
    say "installing ${PINS[*]} into $VENV (torch: a large download)"
    # CPU-only torch wheels from PyTorch's index when it answers; else PyPI, whose Linux torch is
    # the CUDA build (the same CPU kernels, a few GB more to download)
    if ! { "$PY" -c "import urllib.request as u; u.urlopen('$TORCH_CPU_INDEX/torch/', timeout=20)" 2>/dev/null &&
        "${pip[@]}" --index-url "$TORCH_CPU_INDEX" "${PINS[0]}" "${PINS[1]}" >&2; }; then
        say "$TORCH_CPU_INDEX unreachable: torch from PyPI"
        "${pip[@]}" "${PINS[0]}" "${PINS[1]}" >&2
    fi
    "${pip[@]}" "${PINS[@]}" >&2
    echo "${PINS[*]}" >"$stamp"
}

setup_llamacpp_src() {
    [ -f "$LLAMA_SRC/convert_hf_to_gguf.py" ] && return 0
    say "downloading the llama-cpp-python $LCP_VERSION sdist (vendored llama.cpp)"
    mkdir -p "$DIR/dl"
    "$PY" -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
        "llama-cpp-python==$LCP_VERSION" -d "$DIR/dl" >&2
    tar -xzf "$DIR/dl/llama_cpp_python-$LCP_VERSION.tar.gz" -C "$DIR"
    [ -f "$LLAMA_SRC/convert_hf_to_gguf.py" ] || die "no vendor/llama.cpp in the sdist"
}

# the llama.cpp commit named in the sdist's changelog (the sdist carries no git history)
llama_commit() {
    sed -n "/^## \[$LCP_VERSION\]/,/^## \[[0-9]/p" "$LCP_SRC/CHANGELOG.md" |
        grep -o 'llama\.cpp@[0-9a-f]*' | head -1 | cut -d@ -f2 || true
}

setup_llama_bench() {
    [ -x "$LLAMA_BENCH" ] && return 0
    local b=$DIR/llama-bench-$LCP_VERSION commit
    commit=$(llama_commit)
    say "building llama-bench (llama.cpp ${commit:-unknown}) in $b, -j$JOBS at nice 19"
    nice -n 19 cmake -S "$LLAMA_SRC" -B "$b" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
        -DLLAMA_BUILD_APP=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DGGML_CCACHE=OFF \
        -DLLAMA_BUILD_COMMIT="${commit:-unknown}" -DLLAMA_BUILD_NUMBER=0 >>"$LOG" 2>&1 ||
        die "cmake configure failed (see $LOG)"
    nice -n 19 cmake --build "$b" --target llama-bench llama-quantize -j "$JOBS" >>"$LOG" 2>&1 ||
        die "llama-bench build failed (see $LOG)"
    "$LLAMA_BENCH" --help 2>&1 | grep -q -- '--n-depth' || die "this llama-bench has no -d/--n-depth"
}

setup_models() {
    if [ ! -f "$HF/model.safetensors" ]; then
        say "writing the random HF Llama (llama-110m shape) to $HF"
        "$PY" "$HERE/anchors_make_hf.py" "$HF.part" >>"$LOG" 2>&1 || die "anchors_make_hf.py failed (see $LOG)"
        rm -rf "$HF" && mv "$HF.part" "$HF"
    fi
    want llamacpp || return 0
    mkdir -p "$DIR/gguf"
    local dt g
    for dt in f32 f16 bf16; do
        g=$DIR/gguf/llama-110m-$dt.gguf
        [ -f "$g" ] && continue
        say "converting to $g"
        PYTHONPATH=$LLAMA_SRC/gguf-py "$PY" "$LLAMA_SRC/convert_hf_to_gguf.py" "$HF" --outtype "$dt" \
            --outfile "$g.part" >>"$LOG" 2>&1 || die "convert_hf_to_gguf.py --outtype $dt failed (see $LOG)"
        mv "$g.part" "$g"
    done
    # the quantized rows: llama.cpp's Q8_0 and Q4_0 (blocks of 32, f16 scales) from the f16 GGUF
    local q=$(dirname "$LLAMA_BENCH")/llama-quantize
    [ -x "$q" ] || nice -n 19 cmake --build "$(dirname "$(dirname "$LLAMA_BENCH")")" --target llama-quantize \
        -j "$JOBS" >>"$LOG" 2>&1 || die "llama-quantize build failed (see $LOG)"
    for dt in q8:Q8_0 q4:Q4_0; do
        g=$DIR/gguf/llama-110m-${dt%%:*}.gguf
        [ -f "$g" ] && continue
        say "quantizing to $g (${dt#*:})"
        "$q" "$DIR/gguf/llama-110m-f16.gguf" "$g.part" "${dt#*:}" >>"$LOG" 2>&1 || die "llama-quantize failed"
        mv "$g.part" "$g"
    done
}

# ---- the stacks ---------------------------------------------------------------------------------

# The environment may set OPENBLAS_CORETYPE (this project's sandbox sets Haswell); mgllava picks
# OpenBLAS's kernel from CPUID only when it is unset, so it runs without it.
mgl() { env -u OPENBLAS_CORETYPE "$MGL_BIN" bench --threads "$THREADS" "$@" 2>>"$LOG"; }
# How mgllava runs each dtype row. llama.cpp keeps an f16 KV cache whatever the weights, so the
# f32, f16, q8 and q4 rows give mgllava the same cache (f32 products); "f32kv" is mgllava's own
# default, f32 products and an f32 cache (the reference's arithmetic). bf16 is precision bf16 (bf16
# products on AVX512_BF16 and a bf16 cache), as PyTorch's bf16 rows compute in bf16.
mgl_mode() { # DTYPE
    case "$1" in
    f32kv) echo --kv f32 ;;
    bf16) echo --precision bf16 ;;
    *) echo --kv f16 ;;
    esac
}
mgl_dtype() { [ "$1" = f32kv ] && echo f32 || echo "$1"; }

mgllava_llm() { # DTYPE ROUND
    local p c emit
    for p in "${PREFILLS[@]}"; do
        in_list "$p" "${CONTEXTS[@]}" && continue # measured by the decode run below
        mgl --preset llama-110m --dtype "$(mgl_dtype "$1")" $(mgl_mode "$1") --prompt-tokens "$p" --gen-tokens 1 |
            report mgllava --round "$2" --dtype "$1" --emit prefill || failed "mgllava $1 prefill $p"
    done
    for c in "${CONTEXTS[@]}"; do
        emit=decode
        in_list "$c" "${PREFILLS[@]}" && emit=prefill,decode
        mgl --preset llama-110m --dtype "$(mgl_dtype "$1")" $(mgl_mode "$1") --prompt-tokens "$c" \
            --gen-tokens "$GEN" |
            report mgllava --round "$2" --dtype "$1" --emit "$emit" || failed "mgllava $1 context $c"
    done
}

mgllava_vision() { # DTYPE ROUND
    mgl --preset vision-l --dtype "$1" $(mgl_mode "$1") --reps "$MGL_VISION_REPS" |
        report mgllava --round "$2" --dtype "$1" --emit vision || failed "mgllava $1 vision"
}

llamacpp_llm() { # DTYPE ROUND: prefill at depth 0; decode (tg) at each depth
    [ "$1" = f32kv ] && return 0
    local g=$DIR/gguf/llama-110m-$1.gguf
    "$LLAMA_BENCH" -m "$g" -t "$THREADS" -r 1 -o json -p "$(join "${PREFILLS[@]}")" -n 0 -d 0 2>>"$LOG" |
        report llamacpp --round "$2" --dtype "$1" || failed "llama-bench $1 prefill"
    "$LLAMA_BENCH" -m "$g" -t "$THREADS" -r 1 -o json -p 0 -n "$GEN" -d "$(join "${CONTEXTS[@]}")" 2>>"$LOG" |
        report llamacpp --round "$2" --dtype "$1" || failed "llama-bench $1 decode"
}

torch_run() { OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$PY" "$HERE/anchors_torch.py" "$@" \
    --threads "$THREADS" 2>>"$LOG" | tee -a "$RESULTS"; }

torch_llm() { # DTYPE ROUND (f32 and bf16)
    case "$1" in f32 | bf16) ;; *) return 0 ;; esac
    torch_run llm --model "$HF" --dtype "$1" --round "$2" --prefill "$(join "${PREFILLS[@]}")" \
        --decode "$(join "${CONTEXTS[@]}")" --gen "$GEN" || failed "pytorch $1 llm"
}

torch_vision() { # DTYPE ROUND
    torch_run vision --dtype "$1" --round "$2" --reps "$TORCH_VISION_REPS" --warmup "$TORCH_VISION_WARMUP" ||
        failed "pytorch $1 vision"
}

# one stack's part of a row group (mgllava_llm, torch_vision, ...); a failed measurement is
# reported and leaves its cell empty
part() { # STACK KIND DTYPE ROUND
    if want "$1"; then "$1_$2" "$3" "$4"; fi
}

# ---- main ---------------------------------------------------------------------------------------

MGL_BIN=$BUILD/engine/mgllava
case $MGL_BIN in /*) ;; *) [ -x "$MGL_BIN" ] || MGL_BIN=$ROOT/$MGL_BIN ;; esac
if want mgllava; then
    [ -x "$MGL_BIN" ] || die "no $MGL_BIN (meson build first, or --build DIR)"
fi
setup_system
if want llamacpp || want torch; then setup_venv; fi
if want llamacpp; then
    setup_llamacpp_src
    setup_llama_bench
fi
if want llamacpp || want torch; then setup_models; fi

say "results: $RESULTS, log: $LOG"
# the decode rows' limit: what $THREADS threads reach reading memory, before and after (a shared
# machine's bandwidth moves with its neighbours)
membw() { # WHEN
    local bin=$DIR/membw
    [ -x "$bin" ] || gcc -O2 -march=native "$HERE/membw.c" -o "$bin" -lpthread 2>>"$LOG" || return 0
    local v
    v=$("$bin" "$THREADS") || return 0
    echo "{\"stack\": \"machine\", \"what\": \"read_bandwidth_$1\", \"value\": $v, \"unit\": \"GB/s\", \"threads\": $THREADS}" |
        tee -a "$RESULTS"
    BW="${BW:+$BW, }$v GB/s $1"
}
BW=
mkdir -p "$DIR"
membw before
STACKS=(mgllava llamacpp torch)
for ((r = 1; r <= ROUNDS; r++)); do
    # rotate the order of the stacks from round to round
    order=("${STACKS[@]:$(((r - 1) % 3))}" "${STACKS[@]:0:$(((r - 1) % 3))}")
    for dt in ${DTYPES//,/ }; do
        for s in "${order[@]}"; do part "$s" llm "$dt" "$r"; done
    done
    [ "$VISION" = 1 ] || continue
    for dt in f32 bf16; do
        for s in "${order[@]}"; do
            [ "$s" = llamacpp ] || part "$s" vision "$dt" "$r"
        done
    done
done

membw after

# ---- summary ------------------------------------------------------------------------------------

python3 "$HERE/anchors_report.py" medians "$RESULTS"
echo
echo "## Anchors: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores, $THREADS threads"
echo
want mgllava && echo "- mgllava $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') ($MGL_BIN)"
want llamacpp && echo "- llama.cpp $(llama_commit) (llama-cpp-python $LCP_VERSION sdist), llama-bench -t $THREADS -r 1 per round"
if want torch; then
    echo "- $("$PY" -c 'import torch, transformers, timm; print(f"torch {torch.__version__}, transformers {transformers.__version__}, timm {timm.__version__}")')"
fi
echo "- decode: $GEN greedy steps after the context; prefill: one prompt from an empty cache"
[ -n "$BW" ] && echo "- memory read bandwidth, $THREADS threads (tests/bench/membw.c): $BW"
echo "- KV cache: f16 for llama.cpp (its default) and for mgllava in the f32, f16, q8 and q4 rows; mgllava's f32kv row keeps its default f32 cache"
echo "- bf16: llama.cpp with bf16 weights; mgllava at precision bf16 (bf16 products on AVX512_BF16, bf16 cache); PyTorch's LLM in bf16, its vision towers f32 under torch.autocast(bfloat16)"
echo "- q8/q4: mgllava --dtype q8 (groups of 128) / q4 (groups of 32) against llama.cpp Q8_0 / Q4_0 (blocks of 32), both from the same weights"
echo "- results: $RESULTS"
echo
python3 "$HERE/anchors_report.py" table "$RESULTS"
