#!/usr/bin/env bash
# ci.sh [SECONDS_PER_TARGET]: the fuzzing stage of CI, from the source root.
# Configures build-fuzz with clang (reused when present), builds the harnesses,
# runs them once over tests/fuzz/regressions + corpus (meson test --suite fuzz),
# then fuzzes each for SECONDS_PER_TARGET (default 30) with run.sh.
# Skips (exit 0) when clang or libFuzzer is missing; non-zero on any failure.
# Needs: apt-get install -y clang libclang-rt-14-dev
set -uo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-30}"
log="${TMPDIR:-/tmp}/mgllava-fuzz-build.log"
if ! command -v clang > /dev/null; then
  echo "fuzz: skipped (no clang)"
  exit 0
fi
if [ -f build-fuzz/build.ninja ]; then
  meson setup --reconfigure build-fuzz > "$log" 2>&1
else
  CC=clang meson setup build-fuzz -Dcuda=disabled -Db_lundef=false > "$log" 2>&1
fi || { tail -30 "$log"; echo "fuzz: meson setup failed"; exit 1; }
if ! grep -q "fuzz_torch" build-fuzz/build.ninja; then
  grep -m1 "fuzz harnesses skipped" "$log" || true
  echo "fuzz: skipped (clang cannot link libFuzzer: install libclang-rt-14-dev)"
  exit 0
fi
ninja -C build-fuzz fuzz >> "$log" 2>&1 || { tail -40 "$log"; echo "fuzz: build failed"; exit 1; }
rc=0
meson test -C build-fuzz --suite fuzz --print-errorlogs || rc=1
MGL_FUZZ_JOBS="${MGL_FUZZ_JOBS:-$(nproc)}" bash tests/fuzz/run.sh "$secs" || rc=1
exit $rc
