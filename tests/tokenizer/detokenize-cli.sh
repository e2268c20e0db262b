#!/bin/bash
# mgllava detokenize: clean-up of tokenization spaces as the tokenizer's config says by default
# (tiny-llama3: PreTrainedTokenizerFast, unset -> on; tiny-vicuna: LlamaTokenizer -> off), and
# --clean-up-spaces=yes|no overriding it.
set -u
BIN=${MGLLAVA:?}
FX=${MGL_FIXTURES:?}
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
text="Is it a cat ? Yes , it is ! I don 't know , you 're right ; it 's here ."
clean="Is it a cat? Yes, it is! I don 't know, you're right ; it's here."
for m in tiny-llama3 tiny-vicuna; do
    tok=$FX/models/$m/llm
    ids=$(printf '%s' "$text" | "$BIN" tokenize --tokenizer "$tok") || { bad "$m: tokenize"; continue; }
    want_default=$text
    [ $m = tiny-llama3 ] && want_default=$clean
    got=$(echo "$ids" | "$BIN" detokenize --tokenizer "$tok" --skip-special)
    [ "$got" = "$want_default" ] && ok "$m: default" || bad "$m: default: '$got', want '$want_default'"
    got=$(echo "$ids" | "$BIN" detokenize --tokenizer "$tok" --clean-up-spaces=yes)
    [ "$got" = "$clean" ] && ok "$m: --clean-up-spaces=yes" || bad "$m: yes: '$got'"
    got=$(echo "$ids" | "$BIN" detokenize --tokenizer "$tok" --clean-up-spaces no)
    [ "$got" = "$text" ] && ok "$m: --clean-up-spaces no" || bad "$m: no: '$got'"
done
err=$(echo '[1]' | "$BIN" detokenize --tokenizer "$FX/models/tiny-vicuna/llm" --clean-up-spaces=maybe 2>&1)
rc=$?
if [ $rc -eq 1 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && [[ $err == *clean-up-spaces* ]]; then
    ok "a bad --clean-up-spaces value is a one-line error"
else
    bad "bad value: rc $rc: $err"
fi
echo "$fails failure(s)"
[ $fails -eq 0 ]
