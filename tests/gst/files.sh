#!/bin/bash
# No answer lost on files: the shipped demo model (models/mgllava-demo) on a file made from
# mgllavascenesrc (JPEG in AVI: plugins-good only), decoded by decodebin as a new user would.
#   1. the docs' example with default settings (attach-mode=auto, not live: exact with no
#      deadline): one JSON line per sampled frame, each carrying its own frame's answer
#   2. attach-mode=latest drop-policy=block: every sampled frame's answer reaches the JSON, the
#      last ones in the "pts": null line (the late-results event at EOS), and the bus
#   3. the default mode with drop-policy=block: every answer, on its own frame
#   4. interval=0 samples every frame
#   5. a live source: auto runs as latest (answers attach to later frames), and the answers
#      still pending at EOS arrive in the late line; frames that come while the model loads
#      pass unanswered (at most the first sampled one here)
# Usage: files.sh [MODEL_DIR]; exit 77 (skipped) without the demo model or jpegenc/avimux.
set -u
here=$(cd "$(dirname "$0")" && pwd)
M=${MGL_DEMO_MODEL:-${1:-$here/../../models/mgllava-demo}}
if [ ! -f "$M/mgllava.json" ]; then
    echo "SKIP: no demo model at $M"
    exit 77
fi
for e in jpegenc avimux avidemux jpegdec; do
    gst-inspect-1.0 $e >/dev/null 2>&1 || { echo "SKIP: no $e"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# $1 = JSON lines, $2 = frames in the file, $3 = interval, $4 = mode: own (every answer on its
# own frame, no late line) | late (answers on later frames; the rest in one "pts": null line)
check() {
    python3 - "$@" <<'PY'
import json, sys
path, frames, interval, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
lines = [json.loads(l) for l in open(path)]
want = list(range(0, frames, max(interval, 1)))
got, late_lines = [], 0
for d in lines:
    assert d["results"], f"an empty line with skip-empty: {d}"
    if d["pts"] is None:
        assert d["frame"] is None and d is lines[-1], f"the late line is not last: {d}"
        late_lines += 1
    for r in d["results"]:
        assert set(r) >= {"text", "prompt", "source_pts", "source_frame", "n_tokens"}, r
        assert r["text"] and r["n_tokens"] >= 1, r
        if mode == "own":
            assert d["frame"] == r["source_frame"] and d["pts"] == r["source_pts"], \
                f"not on its own frame: {d}"
        elif d["pts"] is not None:
            assert r["source_frame"] < d["frame"] and r["source_pts"] < d["pts"], \
                f"latest: an answer on its own frame: {d}"
        got.append(r["source_frame"])
skipped = 0
if mode == "live":
    # a live stream's first frames pass unanswered while the model loads (stats "unloaded")
    while skipped < 2 and got != want[skipped:]:
        skipped += 1
assert got == want[skipped:], f"answers for frames {got}, want {want}"
if skipped:
    print(f"  the first {skipped} sampled frame(s) passed while the model loaded (live)")
if mode == "own":
    assert len(lines) == len(want) and late_lines == 0, (len(lines), late_lines)
else:
    assert late_lines == 1, f"{late_lines} late lines (the last answers come after the last frame)"
print(f"  {len(got)} answers in {len(lines)} lines ({late_lines} after the last frame)")
PY
}

# 101 frames: the last frame is a sampled one (intervals 10, 20 and 25), so in latest mode its
# answer can only come after it
frames=101
for f in $frames 12; do
    if ! timeout 120 gst-launch-1.0 -q mgllavascenesrc seed=5 num-buffers=$f ! jpegenc ! avimux ! \
        filesink location="$tmp/in$f.avi" >"$tmp/make.log" 2>&1; then
        echo "could not make the file: $(tail -3 "$tmp/make.log")"
        exit 1
    fi
done

# 1. the docs' example as written (defaults), to standard output
start=$SECONDS
if timeout 300 gst-launch-1.0 -q filesrc location="$tmp/in$frames.avi" ! decodebin ! videoconvert ! \
    mgllavafilter model="$M" interval=25 ! mgllavajson location=- skip-empty=true ! fakesink \
    >"$tmp/1.json" 2>"$tmp/1.err" && check "$tmp/1.json" $frames 25 own; then
    ok "docs' file example: one JSON line per sampled frame ($((SECONDS - start)) s)"
else
    bad "docs' file example: $(head -c 600 "$tmp/1.json") $(tail -3 "$tmp/1.err")"
fi

# 2. latest + block: the answers lag the frames, the last ones come at EOS
start=$SECONDS
if timeout 300 gst-launch-1.0 -m filesrc location="$tmp/in$frames.avi" ! decodebin ! videoconvert ! \
    mgllavafilter model="$M" interval=10 attach-mode=latest drop-policy=block max-pending=4 ! \
    mgllavajson location="$tmp/2.json" skip-empty=true ! fakesink >"$tmp/2.log" 2>&1 &&
    check "$tmp/2.json" $frames 10 late; then
    n=$(grep -c 'mgllava-result' "$tmp/2.log")
    if [ "$n" -eq 11 ]; then
        ok "latest, drop-policy=block: every answer, the last ones included ($((SECONDS - start)) s)"
    else
        bad "latest, drop-policy=block: $n bus messages, want 11"
    fi
else
    bad "latest, drop-policy=block: $(cat "$tmp/2.json" | cut -c1-200) $(grep -v 'Got message' "$tmp/2.log" | tail -3)"
fi

# 3. default mode, drop-policy=block
if timeout 300 gst-launch-1.0 -q filesrc location="$tmp/in$frames.avi" ! decodebin ! videoconvert ! \
    mgllavafilter model="$M" interval=20 drop-policy=block ! mgllavajson location="$tmp/3.json" \
    skip-empty=true ! fakesink >"$tmp/3.log" 2>&1 && check "$tmp/3.json" $frames 20 own; then
    ok "default mode, drop-policy=block: every answer on its own frame"
else
    bad "default mode, drop-policy=block: $(tail -3 "$tmp/3.log")"
fi

# 4. interval=0: every frame
if timeout 300 gst-launch-1.0 -q filesrc location="$tmp/in12.avi" ! decodebin ! videoconvert ! \
    mgllavafilter model="$M" interval=0 ! \
    mgllavajson location="$tmp/4.json" skip-empty=true ! fakesink >"$tmp/4.log" 2>&1 &&
    check "$tmp/4.json" 12 1 own; then
    ok "interval=0 samples every frame"
else
    bad "interval=0: $(wc -l <"$tmp/4.json" 2>&1) lines; $(tail -3 "$tmp/4.log")"
fi

# 5. a live source: auto runs as latest; every answer still arrives (block), the last at EOS
if timeout 300 gst-launch-1.0 -q mgllavascenesrc is-live=true seed=5 num-buffers=61 ! \
    mgllavafilter model="$M" interval=10 drop-policy=block max-pending=8 ! \
    mgllavajson location="$tmp/5.json" skip-empty=true ! fakesink >"$tmp/5.log" 2>&1 &&
    check "$tmp/5.json" 61 10 live; then
    ok "live source: auto runs as latest, the last answers at EOS"
else
    bad "live source: $(cut -c1-200 "$tmp/5.json") $(tail -3 "$tmp/5.log")"
fi

echo "$fails failure(s)"
[ $fails -eq 0 ]
