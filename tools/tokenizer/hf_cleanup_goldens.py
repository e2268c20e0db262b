#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/cleanup_hf.jsonl: answer text as transformers decodes it.

The official MG-LLaVA answer is `tokenizer.decode(ids, skip_special_tokens=True).strip()` with the
tokenizer from `AutoTokenizer.from_pretrained(llm_path)`: after HF `tokenizers` decodes, transformers
applies `clean_up_tokenization` (" ." -> "." and nine more rules) when the tokenizer's
`clean_up_tokenization_spaces` is on. That flag comes from tokenizer_config.json, else from the
default of the class AutoTokenizer loads. The official code requires transformers>=4.36.0 (not
4.38.0-4.38.2), with no upper bound (requirements/runtime.txt); the releases of its time, and every one
up to 4.44, default PreTrainedTokenizerFast to True. 4.45 changed that default to False, so this
script must run under 4.44 (pinned below) for the defaults to be the official ones.

For each tokenizer family present here (Vicuna/Llama-2 SentencePiece-style: sp32k and tiny-vicuna;
Phi-3: tiny-phi3; Llama-3 byte-level BPE: llama3 and tiny-llama3), plus a few configs that flip the
flag, it encodes texts with punctuation after spaces and records:
  a line per tokenizer: its folder, the tokenizer_config.json that replaces its own (null: its
  own), the class AutoTokenizer loaded and the clean-up flag it resolved; then a line per case: ids,
  decode (skip_special_tokens False / True) with the default clean-up, and with clean-up forced on
  and off.

Setup (a venv of its own: the reference model tools pin transformers 4.45.2):
    python3 -m venv /tmp/venv-tok
    /tmp/venv-tok/bin/pip install transformers==4.44.2 tokenizers==0.19.1
    /tmp/venv-tok/bin/python tools/tokenizer/hf_cleanup_goldens.py [SHARED_TESTDATA] [OUT]
"""
import json
import os
import shutil
import sys
import tempfile

import tokenizers
import transformers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PINNED = "4.44.2"

TEXTS = [
    "Hello , world !",
    "What is this ? It is a cat .",
    "I don 't know , you 're right ; we 've seen it . He 's here and I 'm there .",
    "It isn 't , it wasn 't , they aren 't .",
    "a ' b ' c",
    "the dog 's toy . The dogs ' toys .",
    "x . y , z ! w ?",
    " . leading space then a dot",
    "multiple  .  spaces ,  here !  ?",
    "no change here.",
    "'s at the start, 's again",
    "two  n't and one n't",
    "ends with a space .",
    "1 , 2 , 3 . 4 ! 5 ?",
    "tab\t. and newline\n, stay",
    "unicode café , naïve ! 日本 。 ok ?",
    "A man , a plan , a canal : Panama !",
    "quote ' ' three ' ' ' end",
    " 're 're 're",
    "don't can't won't I'm you're we've it's",
    "it ' . then a ' 're and b ' 's and c ' m",
    "The answer is : a red circle , a blue square and a green triangle .",
    "Is it ? Yes ! No ... maybe .",
    "a .b ,c ?d !e 'f",
    "  ,  .  ?",
]

CONFIGS = [
    # (name, folder kind, folder, tokenizer_config override or None)
    ("sp32k", "shared", "tokenizers/sp32k", None),
    ("llama3", "shared", "tokenizers/llama3", None),
    ("tiny-vicuna", "fixtures", "models/tiny-vicuna/llm", None),
    ("tiny-phi3", "fixtures", "models/tiny-phi3/llm", None),
    ("tiny-llama3", "fixtures", "models/tiny-llama3/llm", None),
    # the same tokenizers with the flag set the other way in tokenizer_config.json
    ("tiny-llama3:clean-false", "fixtures", "models/tiny-llama3/llm",
     {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "tokenizer_class": "PreTrainedTokenizerFast",
      "clean_up_tokenization_spaces": False}),
    ("tiny-vicuna:clean-true", "fixtures", "models/tiny-vicuna/llm",
     {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False,
      "legacy": False, "tokenizer_class": "LlamaTokenizer", "clean_up_tokenization_spaces": True}),
    # LlamaTokenizerFast named directly; and a tokenizer_config.json that names no class and no
    # flag next to no config.json: a bare tokenizer.json, PreTrainedTokenizerFast
    ("tiny-phi3:fast-class", "fixtures", "models/tiny-phi3/llm",
     {"bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>", "add_bos_token": True,
      "add_eos_token": False, "legacy": False, "tokenizer_class": "LlamaTokenizerFast"}),
    ("tiny_gpt2:no-class", "fixtures", "tokenizer/tiny_gpt2", {}),
]


def copy_tokenizer_json(src, dst_dir):
    """tokenizers 0.20 writes BPE merges as pairs; 0.19 (what transformers 4.44 accepts) reads "a b"
    strings. Same merges, older spelling (none of these pieces holds a space)."""
    with open(src, encoding="utf-8") as f:
        t = json.load(f)
    merges = t.get("model", {}).get("merges")
    if merges and isinstance(merges[0], list):
        assert all(" " not in a and " " not in b for a, b in merges)
        t["model"]["merges"] = [a + " " + b for a, b in merges]
    with open(os.path.join(dst_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(t, f, ensure_ascii=False)


def load(folder, override, tmp):
    """AutoTokenizer as the official code calls it; the override replaces tokenizer_config.json."""
    d = os.path.join(tmp, str(len(os.listdir(tmp))))
    os.makedirs(d)
    copy_tokenizer_json(os.path.join(folder, "tokenizer.json"), d)
    if override is None:
        for f in ("tokenizer_config.json", "config.json", "special_tokens_map.json"):
            if os.path.exists(os.path.join(folder, f)):
                shutil.copy(os.path.join(folder, f), d)
        return AutoTokenizer.from_pretrained(d), d
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(override, f)
    if "tokenizer_class" not in override:
        # no class and no config.json: AutoTokenizer cannot resolve one; a bare tokenizer.json is
        # a PreTrainedTokenizerFast, which is what the engine assumes
        return PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json")), d
    return AutoTokenizer.from_pretrained(d), d


def main():
    if transformers.__version__ != PINNED:
        sys.exit(f"run under transformers {PINNED} (found {transformers.__version__}): its defaults are the "
                 "ones the official MG-LLaVA code ran with")
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "..", "shared", "testdata")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(REPO, "tests", "fixtures", "tokenizer",
                                                             "cleanup_hf.jsonl")
    fixtures = os.path.join(REPO, "tests", "fixtures")
    tmp = tempfile.mkdtemp()
    lines = []
    for name, kind, rel, override in CONFIGS:
        folder = os.path.join(shared if kind == "shared" else fixtures, rel)
        tok, _ = load(folder, override, tmp)
        flag = bool(tok.clean_up_tokenization_spaces)
        specials = [i for i in (tok.bos_token_id, tok.eos_token_id) if i is not None]
        print(f"{name}: {type(tok).__name__}, clean_up_tokenization_spaces={flag}")
        lines.append(json.dumps({"tokenizer": name, "folder": f"{kind}:{rel}", "tokenizer_config": override,
                                 "class": type(tok).__name__, "clean_up": flag}, ensure_ascii=False))
        for text in TEXTS:
            ids = tok.encode(text, add_special_tokens=False)
            seqs = [ids]
            if specials:   # specials around and inside: skip_special_tokens removes them first
                mid = len(ids) // 2
                seqs.append([specials[0]] + ids[:mid] + [specials[-1]] + ids[mid:] + [specials[-1]])
            for s in seqs:
                rec = {
                    "case": name,
                    "text": text,
                    "ids": s,
                    "decoded": tok.decode(s, skip_special_tokens=False),
                    "decoded_skip": tok.decode(s, skip_special_tokens=True),
                    "decoded_skip_clean": tok.decode(s, skip_special_tokens=True, clean_up_tokenization_spaces=True),
                    "decoded_skip_raw": tok.decode(s, skip_special_tokens=True, clean_up_tokenization_spaces=False),
                }
                lines.append(json.dumps(rec, ensure_ascii=False))
    shutil.rmtree(tmp)
    with open(out, "w", encoding="utf-8") as f:
        f.write(json.dumps({"generator": "tools/tokenizer/hf_cleanup_goldens.py",
                            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__}) + "\n")
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} lines -> {out}")


if __name__ == "__main__":
    main()
