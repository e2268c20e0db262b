#!/usr/bin/env python3
"""Rebuild tests/fuzz/corpus/ (the committed seed corpora) from tests/fixtures.

Seeds stay small (well under 2 MB in all): the tiny fixtures only, never the
big tokenizers of shared/testdata. Re-run after adding fixtures; the harness
selector bytes below must match tests/fuzz/fuzz-fixed-tok.h.

Files named m-* are kept across runs of this script: m-<hash> are inputs
from fuzzing runs (libFuzzer -merge=1, then a sample), m-crafted-* were
written by hand.
"""
import json
import pathlib
import shutil
import struct

here = pathlib.Path(__file__).resolve().parent
fx = here.parent / "fixtures"
corpus = here / "corpus"

# order of g_fixed[] in fuzz-fixed-tok.h
FIXED = ["tiny_gpt2", "tiny-llama3", "tiny_metaspace", "tiny-vicuna", "spm_bpe.model"]
GOLDENS = {0: fx / "tokenizer/tiny_gpt2/golden.jsonl",
           2: fx / "tokenizer/tiny_metaspace/golden.jsonl",
           4: fx / "tokenizer/spm_bpe_golden.jsonl"}


def copy(target, files):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    for f in files:
        name = str(f.relative_to(fx)).replace("/", "__")
        shutil.copyfile(f, d / name)


def write(target, name, data):
    d = corpus / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def main():
    for f in corpus.glob("*/*"):
        if f.is_file() and not f.name.startswith("m-"):
            f.unlink()
    copy("fuzz_safetensors", sorted((fx / "safetensors").rglob("*.safetensors")) +
         sorted((fx / "safetensors").rglob("*.index.json")))
    copy("fuzz_torch", sorted((fx / "torch").glob("*.pth")))
    copy("fuzz_tokenizer_json", sorted((fx / "tokenizer").glob("*/tokenizer.json")) +
         sorted((fx / "models").glob("*/llm/tokenizer.json")))
    copy("fuzz_tokenizer_spm", [fx / "tokenizer/spm_bpe.model", fx / "tokenizer/spm_nobytes.model"])
    copy("fuzz_config", sorted((fx / "models").rglob("config.json")) +
         sorted((fx / "models").rglob("open_clip_config.json")) +
         sorted((fx / "models").rglob("mgllava.json")) +
         sorted((fx / "models").rglob("tokenizer_config.json")))

    # encode: selector byte + text; detok: selector byte + int32 ids
    texts = set()
    for sel, path in GOLDENS.items():
        rows = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
        for i, r in enumerate(rows[:12]):
            texts.add(r["text"])
            ids = r.get("ids") or []
            if ids:
                write("fuzz_detok", f"{FIXED[sel]}_{i}", bytes([sel]) + struct.pack(f"<{len(ids)}i", *ids))
                write("fuzz_detok", f"{FIXED[sel]}_{i}_skip", bytes([sel | 0x80]) + struct.pack(f"<{len(ids)}i", *ids))
    texts = sorted(texts)[:24]
    for sel, name in enumerate(FIXED):
        for i, t in enumerate(texts):
            if i % len(FIXED) == sel or i < 4:
                write("fuzz_tokenizer_encode", f"{name}_{i}", bytes([sel]) + t.encode("utf-8"))
        # special-token text and a few ids around the vocabulary edges
        write("fuzz_tokenizer_encode", f"{name}_special",
              bytes([sel]) + "<s>Hi</s> <|endoftext|><unk><|eot_id|> <0x0A>".encode())
        write("fuzz_detok", f"{name}_edges", bytes([sel]) + struct.pack("<6i", 0, 1, 2, 3, 255, 256))


if __name__ == "__main__":
    main()
