#!/usr/bin/env bash
# run.sh [SECONDS_PER_TARGET] [TARGET...]: fuzz each harness for the given time
# (default 30) starting from its committed seed corpus tests/fuzz/corpus/<t>/.
#
#   MGL_FUZZ_BUILD  folder holding the fuzz_* binaries (default build-fuzz/tests/fuzz)
#   MGL_FUZZ_OUT    keep new corpus entries and crash files here (default: a temp dir,
#                   removed at the end unless something crashed)
#   MGL_FUZZ_JOBS   run this many targets at once (default 1)
#   FUZZ_ARGS       extra libFuzzer flags, e.g. "-max_len=65536"
#
# New inputs go to a scratch copy of the corpus, never into the source tree.
# Prints one summary line per target and exits non-zero if any target crashed
# (or leaked, timed out, ran out of memory).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
secs="${1:-30}"
shift || true
build="${MGL_FUZZ_BUILD:-$root/build-fuzz/tests/fuzz}"
jobs="${MGL_FUZZ_JOBS:-1}"
if [ ! -d "$build" ]; then
  echo "run.sh: no fuzz build in $build (CC=clang meson setup build-fuzz -Dcuda=disabled -Db_lundef=false && ninja -C build-fuzz fuzz)" >&2
  exit 2
fi
export MGL_FIXTURES="${MGL_FIXTURES:-$root/tests/fixtures}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
out="${MGL_FUZZ_OUT:-}"
keep=1
if [ -z "$out" ]; then out="$(mktemp -d /tmp/mgl-fuzz-run.XXXXXX)"; keep=0; fi
mkdir -p "$out"

declare -A dict=(
  [fuzz_safetensors]=json.dict [fuzz_tokenizer_json]=json.dict [fuzz_config]=json.dict
  [fuzz_torch]=pickle.dict
)

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  for exe in "$build"/fuzz_*; do
    [ -f "$exe" ] && [ -x "$exe" ] && targets+=("$(basename "$exe")")
  done
fi
[ "${#targets[@]}" -gt 0 ] || { echo "run.sh: no fuzz_* binaries in $build" >&2; exit 2; }

run_one() {
  local t="$1" exe="$build/$1"
  local work="$out/$t"
  mkdir -p "$work/corpus" "$work/crashes"
  local args=(-max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
              -artifact_prefix="$work/crashes/")
  [ -n "${dict[$t]:-}" ] && args+=(-dict="$here/dict/${dict[$t]}")
  local seeds=()
  [ -d "$here/corpus/$t" ] && seeds+=("$here/corpus/$t")
  # shellcheck disable=SC2086
  "$exe" "${args[@]}" ${FUZZ_ARGS:-} "$work/corpus" "${seeds[@]}" > "$work/log.txt" 2>&1
  echo $? > "$work/rc"
}

i=0
for t in "${targets[@]}"; do
  if [ ! -x "$build/$t" ]; then echo "run.sh: no such target $t" >&2; exit 2; fi
  run_one "$t" &
  i=$((i + 1))
  if [ $((i % jobs)) -eq 0 ]; then wait; fi
done
wait

fail=0
printf '%-24s %10s %9s %8s %6s  %s\n' target execs exec/s new_units cov result
for t in "${targets[@]}"; do
  work="$out/$t"
  rc="$(cat "$work/rc" 2>/dev/null || echo 1)"
  log="$work/log.txt"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)"
  speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)"
  newu="$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n1)"
  cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | cut -d' ' -f2)"
  crashes="$(find "$work/crashes" -type f | wc -l)"
  res=ok
  if [ "$rc" != 0 ] || [ "$crashes" != 0 ]; then
    res="FAILED (exit $rc): $(grep -m1 -E 'ERROR: |runtime error|^fuzz_[a-z_]*: |^fuzz harness: ' "$log" | cut -c1-120)"
    for f in "$work"/crashes/*; do [ -f "$f" ] && res="$res; input: $f"; done
    fail=1
  fi
  printf '%-24s %10s %9s %8s %6s  %s\n' "$t" "${execs:-?}" "${speed:-?}" "${newu:-?}" "${cov:-?}" "$res"
done
if [ "$fail" = 0 ] && [ "$keep" = 0 ]; then rm -rf "$out"; else echo "logs, new inputs and crashes: $out"; fi
exit $fail
