#!/bin/bash
# The JSON lines in both layouts, validated against their schemas (docs/*-frame.schema.json):
#   - known metas (tests/gst/json_emit.c) through mgllavajson, format mgllava and dlstreamer, with
#     and without timings, field by field;
#   - the gvametaconvert sample's objects validate against the dlstreamer schema;
#   - a real pipeline (scene source, blob detector, mgllavafilter on the tiny fixture model) through
#     mgllavajson and mgllavapublish method=file in both layouts: every line valid, answers present,
#     and the dlstreamer lines keyed and typed as gvametaconvert's.
# Usage: json_formats.sh JSON_EMIT MODEL_DIR. Exit 77 without python3-jsonschema.
set -u
EMIT=${1:?json_emit binary}
M=${2:?model folder}
PY=${MGL_PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
if ! "$PY" -c 'import jsonschema' 2>/dev/null; then
    echo "SKIP: python3-jsonschema is not installed"
    exit 77
fi
here=$(cd "$(dirname "$0")" && pwd)
check="$PY -W ignore::DeprecationWarning $here/check_json.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

$check sample || bad "gvametaconvert sample against the dlstreamer schema"
for fmt in mgllava dlstreamer; do
    for t in 0 1; do
        if "$EMIT" "$fmt" "$t" "$tmp/emit-$fmt-$t.jsonl"; then
            $check emit "$fmt" "$tmp/emit-$fmt-$t.jsonl" "$t" || bad "json_emit lines ($fmt, timings=$t)"
        else
            bad "json_emit $fmt $t"
        fi
    done
done

if [ "$M" = none ]; then
    echo "pipeline part not run (sanitizer build: gst-launch-1.0 cannot load the instrumented plugin)"
elif [ -f "$M/mgllava.json" ]; then
    for fmt in mgllava dlstreamer; do
        out=$tmp/pipe-$fmt.jsonl
        pub=$tmp/pub-$fmt.jsonl
        if timeout 120 gst-launch-1.0 -q mgllavascenesrc num-buffers=40 ! mgllavablobdetect ! \
            mgllavafilter model="$M" interval=10 max-new-tokens=6 ! \
            mgllavajson format=$fmt timings=true location="$out" ! \
            mgllavapublish method=file file-path="$pub" format=$fmt timings=true ! fakesink >"$tmp/log" 2>&1; then
            $check validate "$fmt" "$out" --min-results 4 --timings && ok "pipeline lines valid ($fmt)" \
                || bad "pipeline lines ($fmt)"
            # mgllavapublish's file method writes the answered frames of the same stream
            if "$PY" - "$out" "$pub" <<'PY'; then
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
res = lambda m: m["mgllava"]["results"] if "mgllava" in m else m["results"]
a = [m for m in a if res(m)]
sys.exit(0 if a == b and len(b) >= 4 else 1)
PY
                ok "mgllavapublish method=file = mgllavajson skip-empty ($fmt)"
            else
                bad "mgllavapublish method=file differs from mgllavajson ($fmt)"
            fi
        else
            tail -5 "$tmp/log"
            bad "pipeline ($fmt)"
        fi
    done
else
    echo "no model at $M: pipeline part skipped"
fi
echo "json_formats: $fails failure(s)"
[ $fails -eq 0 ]
