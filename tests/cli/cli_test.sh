#!/bin/bash
# The mgllava command line as DESIGN.md fixes it: tokenize, detokenize,
# inspect, convert, and one-line errors with exit status 1 on bad input.
set -u
BIN=${MGLLAVA:?}
FX=${MGL_FIXTURES:?}
SHARED=${MGL_SHARED_TESTDATA:-}
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }

# expect_error NEEDLE CMD...: exit 1, exactly one stderr line, naming NEEDLE, nothing on stdout
expect_error() {
    local needle=$1; shift
    "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
    local rc=$?
    local lines; lines=$(wc -l <"$tmp/err")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -qF -- "$needle" "$tmp/err" && [ ! -s "$tmp/out" ]; then
        ok "error: $(cat "$tmp/err")"
    else
        bad "expected one-line error naming '$needle' and exit 1 from: $* (rc=$rc, stderr: $(head -c 300 "$tmp/err"))"
    fi
}

# --- tokenize / detokenize on the tiny models' tokenizers
for m in tiny-vicuna tiny-llama3 tiny-phi3 tiny-yi; do
    tdir=$FX/models/$m/llm
    tfile=$tdir/tokenizer.json
    [ -f "$tfile" ] || tfile=$tdir/tokenizer.model   # tiny-yi: a lone SentencePiece model
    out=$(printf 'a red circle at the top left' | "$BIN" tokenize --tokenizer "$tdir")
    if [[ $out =~ ^\[[0-9]+(,\ [0-9]+)*\]$ ]]; then ok "tokenize $m: $out"; else bad "tokenize $m: '$out'"; fi
    text=$(echo "$out" | "$BIN" detokenize --tokenizer "$tfile")
    if [ "$text" = "a red circle at the top left" ]; then ok "detokenize $m"; else bad "detokenize $m: '$text'"; fi
    sp=$(printf 'a red circle' | "$BIN" tokenize --tokenizer "$tdir" --special)
    plain=$(printf 'a red circle' | "$BIN" tokenize --tokenizer "$tdir")
    if [ $m = tiny-yi ]; then
        # Yi's tokenizer_config.json: add_bos_token false
        [ "$sp" = "$plain" ] && ok "tokenize --special $m adds no BOS: $sp" || bad "--special $m: $sp vs $plain"
    elif [ "${sp#\[}" != "${plain#\[}" ] && [[ $sp == *"${plain#\[}" ]]; then ok "tokenize --special $m adds BOS: $sp"; else bad "--special $m: $sp vs $plain"; fi
done
empty=$(printf '' | "$BIN" tokenize --tokenizer "$FX/models/tiny-vicuna/llm")
[ "$empty" = "[]" ] && ok "empty text -> []" || bad "empty text -> '$empty'"

# --- shared goldens through the CLI (skipped without ../shared)
if [ -n "$SHARED" ] && [ -f "$SHARED/tokenizers/sp32k/golden.jsonl" ]; then
    n=0
    while IFS= read -r line; do
        text=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["text"], end="")' "$line" 2>/dev/null) || break
        want=$(python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])["ids"]))' "$line")
        got=$(printf '%s' "$text" | "$BIN" tokenize --tokenizer "$SHARED/tokenizers/sp32k" --special)
        [ "$got" = "$want" ] || { bad "sp32k golden: '$text' -> $got, want $want"; }
        n=$((n + 1))
        [ $n -ge 5 ] && break
    done <"$SHARED/tokenizers/sp32k/golden.jsonl"
    ok "sp32k goldens through the CLI ($n lines)"
fi

# --- inspect
for m in tiny-vicuna tiny-llama3 tiny-phi3 tiny-yi; do
    if "$BIN" inspect --model "$FX/models/$m" >"$tmp/insp" 2>"$tmp/err" && grep -q '^status *OK' "$tmp/insp"; then
        ok "inspect $m"
    else
        bad "inspect $m: $(cat "$tmp/err")"
    fi
done
"$BIN" inspect --model "$FX/models/tiny-vicuna/mgllava.json" >/dev/null 2>&1 && ok "inspect manifest file" || bad "inspect manifest file"
if "$BIN" inspect --model "$FX/safetensors/all_dtypes.safetensors" >"$tmp/insp" && grep -q '^13 tensors' "$tmp/insp"; then
    ok "inspect safetensors file"; else bad "inspect safetensors file: $(tail -1 "$tmp/insp")"; fi
if "$BIN" inspect --model "$FX/models/tiny-vicuna/iter_10.pth" >"$tmp/insp" && grep -q 'fuse_module.gate.0.weight' "$tmp/insp"; then
    ok "inspect .pth file: $(tail -1 "$tmp/insp")"; else bad "inspect .pth file"; fi
if "$BIN" inspect --model "$FX/models/components/convnext/open_clip_pytorch_model.bin" >"$tmp/insp" && grep -q 'visual.trunk.stem.0.weight' "$tmp/insp"; then
    ok "inspect .bin file"; else bad "inspect .bin file"; fi

# --- convert, then the packed folder inspects and its tensors are f16/bf16
for dt in f16 bf16 f32; do
    if "$BIN" convert --model "$FX/models/tiny-llama3" --out "$tmp/packed-$dt" --dtype $dt >/dev/null &&
        "$BIN" inspect --model "$tmp/packed-$dt" >"$tmp/insp" && grep -q "^dtype *$dt" "$tmp/insp" &&
        grep -q '^status *OK' "$tmp/insp"; then
        ok "convert --dtype $dt"
    else
        bad "convert --dtype $dt"
    fi
done
u=$(echo '[1, 2, 3]' | "$BIN" detokenize --tokenizer "$tmp/packed-f16/llm" 2>&1) && ok "packed folder carries the tokenizer" || bad "packed tokenizer: $u"

# --- bad input: one line, the file named, exit 1, never a crash
B=$FX/safetensors/bad
expect_error "$B/truncated.safetensors" "$BIN" inspect --model "$B/truncated.safetensors"
expect_error "$B/huge_header.safetensors" "$BIN" inspect --model "$B/huge_header.safetensors"
expect_error "$B/wrong_dtype.safetensors" "$BIN" inspect --model "$B/wrong_dtype.safetensors"
expect_error "$B/past_end.safetensors" "$BIN" inspect --model "$B/past_end.safetensors"
expect_error "$tmp/nope.bin" "$BIN" inspect --model "$tmp/nope.bin"
# every broken or malicious checkpoint fixture listed in tests/fixtures/torch/bad.json
for name in $(python3 -c 'import json,sys; print(" ".join(r["file"] for r in json.load(open(sys.argv[1]))))' "$FX/torch/bad.json"); do
    expect_error "$FX/torch/$name" "$BIN" inspect --model "$FX/torch/$name"
done
# inputs the fuzzers found crashing (tests/fuzz/regressions): each a clean one-line error now
R=$FX/../fuzz/regressions
for f in "$R"/fuzz_safetensors/*.safetensors "$R"/fuzz_torch/*.pth; do
    [ -f "$f" ] && expect_error "$f" "$BIN" inspect --model "$f"
done
[ -f "$R/fuzz_tokenizer_spm/empty-file-null-plus-zero" ] &&
    expect_error "empty file" "$BIN" tokenize --tokenizer "$R/fuzz_tokenizer_spm/empty-file-null-plus-zero"
if [ -f "$R/fuzz_config/deep-nesting-stack-overflow.json" ]; then
    mkdir -p "$tmp/deep" && cp "$R/fuzz_config/deep-nesting-stack-overflow.json" "$tmp/deep/mgllava.json"
    expect_error "nested deeper" "$BIN" inspect --model "$tmp/deep"
fi
for marker in /tmp/mgl_pwned_*; do
    [ -e "$marker" ] && bad "a malicious pickle ran: $marker exists"
done
mkdir -p "$tmp/badmodel" && echo '{"mgllava": 1, "template": "alpaca"}' >"$tmp/badmodel/mgllava.json"
expect_error "$tmp/badmodel/mgllava.json" "$BIN" inspect --model "$tmp/badmodel"
mkdir -p "$tmp/empty" && expect_error "$tmp/empty" "$BIN" inspect --model "$tmp/empty"
expect_error "$tmp/nope" "$BIN" tokenize --tokenizer "$tmp/nope"
echo '{"model": {"type": "BPE"' >"$tmp/tokenizer.json"
expect_error "$tmp/tokenizer.json" "$BIN" tokenize --tokenizer "$tmp/tokenizer.json"
expect_error "unknown command" "$BIN" frobnicate
expect_error "--dtype" "$BIN" convert --model "$FX/models/tiny-vicuna" --out "$tmp/x" --dtype q3
expect_error "not a JSON array" sh -c "echo '[1, \"a\"' | '$BIN' detokenize --tokenizer '$FX/models/tiny-vicuna/llm'"
expect_error "element 1" sh -c "echo '[1, -5]' | '$BIN' detokenize --tokenizer '$FX/models/tiny-vicuna/llm'"
expect_error "out of range" sh -c "echo '[1, 999999]' | '$BIN' detokenize --tokenizer '$FX/models/tiny-vicuna/llm'"
expect_error "UTF-8" sh -c "printf 'ab\\377\\376' | '$BIN' tokenize --tokenizer '$FX/models/tiny-vicuna/llm'"

# --- run: one JSON object with the fixed fields; bad input gives one-line errors
printf 'P6\n4 3\n255\n' >"$tmp/img.ppm"; head -c 36 /dev/urandom >>"$tmp/img.ppm"
echo '{"boxes": [[0, 0, 2, 2]], "scores": [0.9], "labels": ["dot"]}' >"$tmp/boxes.json"
M=$FX/models/tiny-vicuna
if "$BIN" run --model "$M" --image "$tmp/img.ppm" --boxes "$tmp/boxes.json" --prompt "Describe the image." --json \
    --max-new-tokens 4 >"$tmp/run.json" 2>"$tmp/err" &&
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert set(d)=={"text","token_ids","n_prompt_tokens","n_objects","timings_ms"}, d; assert len(d["token_ids"])<=4 and d["n_objects"]==1; assert set(d["timings_ms"])=={"preprocess","vision","prefill","decode"}' "$tmp/run.json"; then
    ok "run --json: $(cat "$tmp/run.json")"
else
    bad "run --json: $(cat "$tmp/run.json") $(cat "$tmp/err")"
fi
if "$BIN" run --model "$M" --image "$tmp/img.ppm" --prompt "Describe the image." --max-new-tokens 2 --temperature 0.5 --top-p 0.9 --top-k 5 --seed 3 >"$tmp/run.txt"; then
    ok "run (sampling): $(cat "$tmp/run.txt")"; else bad "run (sampling)"; fi
expect_error "$tmp/missing.png" "$BIN" run --model "$M" --image "$tmp/missing.png" --prompt hi
printf 'not an image' >"$tmp/garbage.png"
expect_error "$tmp/garbage.png" "$BIN" run --model "$M" --image "$tmp/garbage.png" --prompt hi
printf '\x89PNG\r\n\x1a\nxxxxxxxxxxxx' >"$tmp/trunc.png"
expect_error "$tmp/trunc.png" "$BIN" run --model "$M" --image "$tmp/trunc.png" --prompt hi
printf 'P6\n4 3\n255\nabc' >"$tmp/short.ppm"
expect_error "$tmp/short.ppm" "$BIN" run --model "$M" --image "$tmp/short.ppm" --prompt hi
printf 'P6\n0 0\n255\n' >"$tmp/zero.ppm"
expect_error "$tmp/zero.ppm" "$BIN" run --model "$M" --image "$tmp/zero.ppm" --prompt hi
echo '{"boxes": [[0, 0, 2]], "scores": [0.9], "labels": ["dot"]}' >"$tmp/b1.json"
expect_error '"boxes"[0]' "$BIN" run --model "$M" --image "$tmp/img.ppm" --boxes "$tmp/b1.json" --prompt hi
echo '{"boxes": [[0, 0, 2, 2]], "scores": [0.9, 0.1], "labels": ["dot"]}' >"$tmp/b2.json"
expect_error "scores" "$BIN" run --model "$M" --image "$tmp/img.ppm" --boxes "$tmp/b2.json" --prompt hi
echo '{"boxes": [[0, 0, 1e12, 2]], "scores": [0.9], "labels": ["dot"]}' >"$tmp/b3.json"
expect_error "1e6" "$BIN" run --model "$M" --image "$tmp/img.ppm" --boxes "$tmp/b3.json" --prompt hi
# integer labels are names ("7"), as mgllavaboxes reads them (one reader, one set of rules); other types are refused
echo '{"boxes": [[0, 0, 2, 2]], "scores": [0.9], "labels": [[7]]}' >"$tmp/b4.json"
expect_error '"labels"[0]' "$BIN" run --model "$M" --image "$tmp/img.ppm" --boxes "$tmp/b4.json" --prompt hi
expect_error "empty question" "$BIN" run --model "$M" --image "$tmp/img.ppm" --prompt ""
expect_error "--top-p" "$BIN" run --model "$M" --image "$tmp/img.ppm" --prompt hi --top-p 0
expect_error "context" "$BIN" run --model "$M" --image "$tmp/img.ppm" --prompt "$(printf 'red %.0s' $(seq 1 5000))"
expect_error "device" "$BIN" run --model "$M" --image "$tmp/img.ppm" --prompt hi --device tpu
expect_error "--precision 'f64'" "$BIN" eval-scenes --model "$M" --count 1 --precision f64
expect_error "needs --per-object" "$BIN" eval-scenes --model "$M" --count 1 --object-shape-prompt "What?"
# --per-object: each object asked alone, one question per attribute (the tiny model's answers are noise)
if "$BIN" eval-scenes --model "$M" --count 2 --seed 5 --per-object --max-new-tokens 2 --dump "$tmp/po" >"$tmp/po.json" 2>/dev/null &&
    python3 - "$tmp/po.json" "$tmp/po/items.jsonl" <<'PY'; then
import json, sys
s = json.load(open(sys.argv[1]))
items = [json.loads(l) for l in open(sys.argv[2])]
n = s["object_shape"]["n"]
assert s["per_object"] is True and "caption" not in s and n >= 2 and s["object_color"]["n"] == n
assert s["objects"]["n"] == n * 2 + s["object_digit"]["n"] == len(items)
assert all(len(i["boxes"]) == 1 and i["category"].startswith("object_") for i in items)
assert all(i["question"] == "What shape is the %s object?" % i["labels"][0] for i in items if i["category"] == "object_shape")
PY
    ok "eval-scenes --per-object"; else bad "eval-scenes --per-object"; fi
expect_error "--stage" "$BIN" dump --model "$M" --image "$tmp/img.ppm" --prompt hi --stage nope --out "$tmp/x.safetensors"
if "$BIN" dump --model "$M" --image "$tmp/img.ppm" --prompt hi --stage fused --out "$tmp/fused.safetensors" >/dev/null &&
    "$BIN" inspect --model "$tmp/fused.safetensors" | grep -q '^fused .*F32 *\[576, 32\]'; then
    ok "dump --stage fused"; else bad "dump --stage fused"; fi

# bench --streams with a schema: every answer constrained and complete; the server's mask time reported
echo '{"type":"object","properties":{"n":{"type":"integer"}},"required":["n"]}' >"$tmp/n.schema.json"
if "$BIN" bench --model "$M" --streams 1,2 --frames 2 --gen-tokens 40 --schema "$tmp/n.schema.json" \
    >"$tmp/streams.jsonl" 2>"$tmp/streams.err" && python3 - "$tmp/streams.jsonl" <<'PY'; then
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["streams"] for r in rows] == [1, 2], rows
for r in rows:
    assert r["schema_complete"] == 2 * r["streams"], r
    assert r["mask_wait_ms_per_token"] > 0 and r["decode_ms_per_token"] > 0 and r["answered_frames_per_s"] > 0, r
    assert 0 < r["cpu_cores_busy"] <= 64, r
PY
    ok "bench --streams --schema"; else bad "bench --streams --schema ($(head -c 300 "$tmp/streams.err"))"; fi
expect_error "--schema goes with --streams" "$BIN" bench --model "$M" --schema "$tmp/n.schema.json"
echo '{"type":"object","pattern":"x"}' >"$tmp/bad.schema.json"
expect_error '"pattern"' "$BIN" bench --model "$M" --streams 1 --frames 1 --schema "$tmp/bad.schema.json"

# run --grammar with a grammar whose masks reach the work budget (made small here): the answer
# still follows the grammar, and one warning on stderr says the masks were cut short
printf 'root ::= [a-z] root+ | [a-m]\n' >"$tmp/amb.gbnf"
MGL_GRAMMAR_MASK_WORK=2000 "$BIN" run --model "$M" --image "$tmp/img.ppm" --prompt "What is this?" \
    --grammar "$tmp/amb.gbnf" --max-new-tokens 12 >"$tmp/amb.out" 2>"$tmp/amb.err"
rc=$?
if grep -q "reached the work budget of one mask" "$tmp/amb.err" && [ "$(grep -c 'work budget' "$tmp/amb.err")" -eq 1 ] &&
    { [ $rc -ne 0 ] || grep -Eq '^[a-z]+$' "$tmp/amb.out"; }; then
    ok "run --grammar: work-budget warning ($(head -c 120 "$tmp/amb.err"))"
else
    bad "run --grammar with MGL_GRAMMAR_MASK_WORK=2000: rc=$rc out=$(head -c 100 "$tmp/amb.out") err=$(head -c 300 "$tmp/amb.err")"
fi

echo "$fails failure(s)"
[ $fails -eq 0 ]
