#!/usr/bin/env python3
"""Writes HF-made goldens for the tokenizer tests.

For each shared tokenizer (sp32k, llama3) this encodes a set of texts with
HF `tokenizers` (PyPI) and records the ids with and without special tokens
and the decoded strings (skip_special_tokens False and True). A second kind
of line ("decode_ids") holds id sequences chosen to exercise the decoder
(byte-fallback runs that are not valid UTF-8, partial characters, specials).

Usage: tools/tokenizer/hf_goldens.py [SHARED_TOKENIZERS_DIR] [OUT_DIR]
Defaults: ../shared/testdata/tokenizers and tests/fixtures/tokenizer.
"""
import json
import os
import sys

import tokenizers
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

EXTRA = [
    "",
    " ",
    "  ",
    "     ",
    "\n",
    "\n\n\n",
    "\t",
    " \n \n",
    "a\n\n\nb",
    "hello   \n  world",
    "trailing spaces   ",
    "emoji 🎉🎉 😀 👍🏽 🧑‍🚀",
    "日本語のテキストです。中文文本。한국어 텍스트",
    "mixed: abc Ωμέγα кириллица עברית العربية 123 ٣٤٥ ๑๒๓",
    "1234567",
    "1234567890 3.14159 -42 +7 1,000,000",
    "don't I'LL we'RE you'Ve he'D she'S it'T",
    "'s 's' ''s",
    "<s>",
    "</s>",
    "<unk>",
    "a<s>b</s>c",
    "<s><s></s>",
    " <s> ",
    "<|eot_id|>",
    "<|begin_of_text|>Hello<|eot_id|>",
    "x <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|eot_id",
    "<0x41> <0xFF> literal byte-looking pieces",
    "\u2581already\u2581metaspace",
    "tab\tseparated\tvalues",
    "CRLF\r\nline\r\n\r\n",
    "nbsp\u00a0here and ideographic\u3000space",
    "zero\u200bwidth joiner\u200d",
    "combining e\u0301 and precomposed \u00e9",
    "math ∑∫∂ √2 ≠ ∞ and arrows → ⇒",
    "rare chars: \U0001d54f \U00010348 \U0001f9ec",
    "A" * 300,
    "ab" * 200,
    "   leading and    inner   spaces",
    "code: for (int i = 0; i < n; i++) { x[i] = y[i] * 2; }",
    "UPPER lower MiXeD ÀÉÎ ǅ",
    "\u0000nul inside",
]


def load_texts(golden):
    texts = []
    with open(golden, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                texts.append(json.loads(line)["text"])
    return texts


def compare_shared(tok, golden, name):
    """Prints every line where the shared golden (transformers.js) and HF differ."""
    bad = 0
    with open(golden, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            g = json.loads(line)
            for key, special in (("ids", True), ("ids_no_special", False)):
                hf = tok.encode(g["text"], add_special_tokens=special).ids
                if hf != g[key]:
                    bad += 1
                    print("%s:%d %s differs from HF:\n  golden %s\n  HF     %s" % (name, n, key, g[key], hf))
    print("%s: %d disagreement(s) between golden.jsonl and HF tokenizers %s" % (name, bad, tokenizers.__version__))


def decode_cases(tok):
    """Id sequences that stress the decoder."""
    vocab = tok.get_vocab()
    cases = []
    byte = {b: vocab.get("<0x%02X>" % b) for b in range(256)}
    if all(v is not None for v in byte.values()):
        e = "€".encode()
        cases += [
            [byte[e[0]], byte[e[1]]],                       # incomplete char
            [byte[e[0]], byte[e[1]], byte[e[2]]],           # complete char
            [byte[0xFF]],                                   # never valid
            [byte[0x41], byte[0xC3]],                       # valid then incomplete
            [byte[0xC3], byte[0xA9], byte[0x80]],           # valid + stray continuation
        ]
        hello = tok.encode("Hello", add_special_tokens=False).ids
        cases += [hello + [byte[0xE2], byte[0x82]] + hello, [byte[0xF0], byte[0x9F]] + hello]
    else:
        # byte-level: pieces for single bytes via the GPT-2 mapping
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        m = {b: chr(c) for b, c in zip(bs, cs)}
        bid = {b: vocab.get(m[b]) for b in range(256)}
        e = "€".encode()
        hello = tok.encode("Hello", add_special_tokens=False).ids
        cases += [
            [bid[e[0]], bid[e[1]]],
            [bid[e[0]], bid[e[1]], bid[e[2]]],
            [bid[0xFF]],
            [bid[0x41], bid[0xC3]],
            [bid[0xC3], bid[0xA9], bid[0x80]],
            hello + [bid[e[0]], bid[e[1]]] + hello,
            [bid[0xF0], bid[0x9F]] + hello,
        ]
        cases = [c for c in cases if None not in c]
    # specials at start/middle/end
    specials = sorted(tok.get_added_tokens_decoder().keys())[:3]
    word = tok.encode(" world", add_special_tokens=False).ids
    for s in specials:
        cases += [[s] + word, word + [s] + word, word + [s]]
    return cases


def main():
    shared = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "..", "shared", "testdata", "tokenizers")
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(REPO, "tests", "fixtures", "tokenizer")
    os.makedirs(out_dir, exist_ok=True)
    for name in ("sp32k", "llama3"):
        folder = os.path.join(shared, name)
        tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        compare_shared(tok, os.path.join(folder, "golden.jsonl"), name)
        texts = load_texts(os.path.join(folder, "golden.jsonl")) + EXTRA
        out = os.path.join(out_dir, name + "_hf.jsonl")
        with open(out, "w", encoding="utf-8") as f:
            for text in texts:
                ids = tok.encode(text, add_special_tokens=True).ids
                ids_ns = tok.encode(text, add_special_tokens=False).ids
                rec = {
                    "text": text,
                    "ids": ids,
                    "ids_no_special": ids_ns,
                    "decoded": tok.decode(ids, skip_special_tokens=False),
                    "decoded_skip": tok.decode(ids, skip_special_tokens=True),
                }
                if "\0" in text:
                    # C strings stop at NUL: the test reads the bytes from here
                    rec["text_hex"] = text.encode().hex()
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            for ids in decode_cases(tok):
                rec = {
                    "decode_ids": ids,
                    "decoded": tok.decode(ids, skip_special_tokens=False),
                    "decoded_skip": tok.decode(ids, skip_special_tokens=True),
                }
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        print("wrote", out)


if __name__ == "__main__":
    main()
