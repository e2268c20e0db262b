#!/bin/bash
# demo_model.sh's time limits and failure messages, with stand-in programs (no model runs):
#   1. it sets no time limit of its own (the test's timeout, which meson's --timeout-multiplier
#      scales, is the only one): the `timeout` program is not called unless MGL_DEMO_TIMEOUT is set
#   2. when the test's time runs out (SIGTERM to the process group, as meson sends it) it says
#      which stage it stopped in and after how long, and exits 1 at once
#   3. a stage that fails with no output gets a message with its exit status, never an empty one
set -u
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

mkdir -p "$tmp/bin" "$tmp/model"
echo '{}' >"$tmp/model/mgllava.json"
# stand-ins: gst-launch-1.0 and mgllava sleep STUB_SLEEP seconds, then exit STUB_RC silently;
# timeout leaves a mark and runs the command
for p in gst-launch-1.0 mgllava; do
    printf '#!/bin/sh\nsleep "${STUB_SLEEP:-0}"\nexit "${STUB_RC:-0}"\n' >"$tmp/bin/$p"
done
printf '#!/bin/sh\ntouch "%s/timeout-called"\nshift\nexec "$@"\n' "$tmp" >"$tmp/bin/timeout"
chmod +x "$tmp/bin/"*
export PATH="$tmp/bin:$PATH" MGLLAVA="$tmp/bin/mgllava" MGL_DEMO_MODEL="$tmp/model"
unset MGL_DEMO_TIMEOUT

# 1. no limit of its own
STUB_RC=0 bash "$here/demo_model.sh" all >"$tmp/out1" 2>&1
if [ -e "$tmp/timeout-called" ]; then
    bad "demo_model.sh runs a stage under its own time limit: $(cat "$tmp/out1")"
else
    ok "no time limit of its own"
fi
rm -f "$tmp/timeout-called"
MGL_DEMO_TIMEOUT=5 STUB_RC=0 bash "$here/demo_model.sh" pipeline >"$tmp/out1b" 2>&1
[ -e "$tmp/timeout-called" ] && ok "MGL_DEMO_TIMEOUT bounds a stage" || bad "MGL_DEMO_TIMEOUT ignored"

# 2. the test's time runs out during the pipeline stage
STUB_SLEEP=60 setsid bash "$here/demo_model.sh" pipeline >"$tmp/out2" 2>&1 &
pid=$!
sleep 2
start=$SECONDS
kill -TERM -- -"$pid" 2>/dev/null || kill -TERM "$pid"
wait "$pid"
rc=$?
if [ $rc -eq 1 ] && [ $((SECONDS - start)) -le 5 ] &&
    grep -q "FAIL pipeline: stopped by the test's time limit (SIGTERM) after [0-9]* s" "$tmp/out2"; then
    ok "stopped by the time limit: $(grep FAIL "$tmp/out2")"
else
    bad "on SIGTERM: exit $rc after $((SECONDS - start)) s, output: $(cat "$tmp/out2")"
fi

# 3. a silent failure still gets a message
STUB_RC=3 bash "$here/demo_model.sh" all >"$tmp/out3" 2>&1
if grep -q "FAIL eval-scenes failed: exit status 3 after [0-9]* s; no output" "$tmp/out3" &&
    grep -q "FAIL pipeline failed: exit status 3 after [0-9]* s; no output" "$tmp/out3"; then
    ok "silent failures named"
else
    bad "silent failures: $(cat "$tmp/out3")"
fi
echo "$fails failure(s)"
[ $fails -eq 0 ]
