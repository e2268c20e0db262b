#!/usr/bin/env bash
# run-regressions.sh BUILD_DIR: run every fuzz harness once over each file of
# tests/fuzz/regressions/<target>/ and tests/fuzz/corpus/<target>/ (libFuzzer
# runs file arguments once each, without fuzzing). Non-zero on any failure.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-${MGL_FUZZ_BUILD:-}}"
if [ -z "$build" ] || [ ! -d "$build" ]; then
  echo "usage: $0 BUILD_DIR/tests/fuzz" >&2
  exit 2
fi
export MGL_FIXTURES="${MGL_FIXTURES:-$here/../fixtures}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fail=0
for exe in "$build"/fuzz_*; do
  [ -f "$exe" ] && [ -x "$exe" ] || continue
  t="$(basename "$exe")"
  files=()
  for d in "$here/regressions/$t" "$here/corpus/$t"; do
    [ -d "$d" ] || continue
    while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$d" -type f ! -name '*.md' ! -name '.gitkeep' -print0 | sort -z)
  done
  if [ "${#files[@]}" -eq 0 ]; then
    echo "$t: no inputs"
    continue
  fi
  # In chunks, so that the command line stays short.
  rc=0
  for ((i = 0; i < ${#files[@]}; i += 200)); do
    "$exe" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$tmp/" "${files[@]:i:200}" > "$tmp/$t.log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then break; fi
  done
  if [ "$rc" -ne 0 ]; then
    echo "$t: FAILED (exit $rc) on ${#files[@]} inputs; log tail:"
    grep -E "Running: |ERROR|SUMMARY|runtime error|fuzz_[a-z_]*: " "$tmp/$t.log" | tail -n 15
    fail=1
  else
    echo "$t: ok, ${#files[@]} inputs"
  fi
done
exit $fail
