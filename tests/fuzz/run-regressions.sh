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
run() {   # run LOG FILES...: the harness once over each file
  local log="$1"; shift
  "$exe" -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$tmp/" "$@" > "$log" 2>&1
}
for exe in "$build"/fuzz_*; do
  [ -f "$exe" ] && [ -x "$exe" ] || continue
  t="$(basename "$exe")"
  # regressions one by one, so that each open bug is reported
  n_reg=0
  if [ -d "$here/regressions/$t" ]; then
    while IFS= read -r -d '' f; do
      n_reg=$((n_reg + 1))
      if ! run "$tmp/$t.log" "$f"; then
        echo "$t: FAILED on regressions/$t/$(basename "$f"):"
        grep -m3 -E "ERROR: |SUMMARY|runtime error|^fuzz_[a-z_]*: |^fuzz harness: " "$tmp/$t.log" | cut -c1-200
        fail=1
      fi
    done < <(find "$here/regressions/$t" -type f ! -name '*.md' ! -name '.gitkeep' -print0 | sort -z)
  fi
  # the seed corpus in chunks (libFuzzer stops at the first failing file)
  files=()
  if [ -d "$here/corpus/$t" ]; then
    while IFS= read -r -d '' f; do files+=("$f"); done < <(find "$here/corpus/$t" -type f -print0 | sort -z)
  fi
  rc=0
  for ((i = 0; i < ${#files[@]}; i += 200)); do
    run "$tmp/$t.log" "${files[@]:i:200}" || { rc=$?; break; }
  done
  if [ "$rc" -ne 0 ]; then
    echo "$t: FAILED on the seed corpus:"
    grep -m1 -E "Running: " "$tmp/$t.log" | tail -n1
    grep -m3 -E "ERROR: |SUMMARY|runtime error|^fuzz_[a-z_]*: |^fuzz harness: " "$tmp/$t.log" | cut -c1-200
    fail=1
  fi
  echo "$t: $n_reg regression inputs, ${#files[@]} seed inputs run"
done
exit $fail
