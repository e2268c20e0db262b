#!/bin/bash
# `mgllava run --video`: the clip of tests/fixtures/golden-video/frames
# answered with the same tokens as the official video path's reference
# (tools/reference/make_video_goldens.py), the context check before any
# frame is read, and one-line errors on bad input.
set -u
BIN=${MGLLAVA:?}
FX=${MGL_FIXTURES:?}
G=$FX/golden-video
fails=0
passes=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok   $*"; passes=$((passes + 1)); }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
frames=()
for k in 0 1 2 3 4 5 6 7 8 9; do frames+=("$G/frames/frame$k.png"); done
Q="What happens in the video?"

# the reference's greedy ids, one line "a, b, c"
want_ids() { tr -d ' \n' <"$G/$1.json" | sed 's/.*"greedy_ids":\[\([^]]*\)\].*/\1/; s/,/, /g'; }

for c in "tiny-llama3 8 llama3_8f" "tiny-vicuna 7 vicuna_7f" "tiny-phi3 3 phi3_3f" "tiny-yi 4 yi_4f"; do
    set -- $c
    if "$BIN" run --video "${frames[@]}" --frames "$2" --model "$FX/models/$1" --prompt "$Q" \
        --boxes "$G/frames/boxes.json" --json >"$tmp/out" 2>"$tmp/err"; then
        got=$(sed 's/.*"token_ids": \[\([^]]*\)\].*/\1/' "$tmp/out")
        want=$(want_ids "$3")
        if [ "$got" = "$want" ]; then ok "$1: $2 frames, ids [$got]"; else bad "$1: ids [$got], reference [$want]"; fi
        grep -q "\"n_prompt_tokens\": $(tr -d ' \n' <"$G/$3.json" | sed 's/.*"sequence_length":\([0-9]*\).*/\1/')" "$tmp/out" \
            && ok "$1: prompt length" || bad "$1: prompt length differs: $(cat "$tmp/out")"
    else
        bad "$1: run --video failed: $(cat "$tmp/err")"
    fi
done

# one-line errors, exit 1, nothing on stdout
expect_error() {
    local needle=$1; shift
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    local rc=$?
    if [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -qF -- "$needle" "$tmp/err" && [ ! -s "$tmp/out" ]; then
        ok "error: $(cat "$tmp/err")"
    else
        bad "expected one-line error naming '$needle' from: $* (rc=$rc, stderr: $(head -c 300 "$tmp/err"))"
    fi
}
expect_error "8 frames need at least 4616 visual tokens" \
    "$BIN" run --video "${frames[@]}" --frames 8 --model "$FX/models/tiny-vicuna" --prompt "$Q"
expect_error "4096-token context" "$BIN" run --video "${frames[@]}" --frames 9 --model "$FX/models/tiny-vicuna" --prompt "$Q"
expect_error "give the clip's images" "$BIN" run --video --model "$FX/models/tiny-vicuna" --prompt "$Q"
expect_error "$tmp/none.png" "$BIN" run --video "$tmp/none.png" --model "$FX/models/tiny-vicuna" --prompt "$Q"
expect_error "--frames '0'" "$BIN" run --video "${frames[@]}" --frames 0 --model "$FX/models/tiny-vicuna" --prompt "$Q"
echo '{"frames": [{"boxes": [[1, 2]]}]}' >"$tmp/bad.json"
expect_error "$tmp/bad.json" "$BIN" run --video "${frames[@]:0:2}" --boxes "$tmp/bad.json" --model "$FX/models/tiny-vicuna" --prompt "$Q"
expect_error "<video>" "$BIN" run --video "${frames[@]:0:2}" --model "$FX/models/tiny-vicuna" --prompt "a <video> b"

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
