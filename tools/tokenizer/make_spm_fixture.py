#!/usr/bin/env python3
"""Builds the small SentencePiece BPE fixtures and their goldens.

A folder with a tokenizer.model and no tokenizer.json reaches the official code through
transformers' AutoTokenizer, which converts the model into a fast (tokenizers) Llama tokenizer;
the engine does the same conversion, so the goldens come from AutoTokenizer, not from the
sentencepiece library (whose own normalization differs: see docs/engine.md, Tokenizers).

Writes, under tests/fixtures/tokenizer/:
  spm_corpus.txt         the training text (generated here, deterministic)
  spm_bpe.model          spm_train --model_type=bpe --byte_fallback=true ... (Llama-like options)
  spm_nobytes.model      spm_train without byte fallback, add_dummy_prefix=false,
                         remove_extra_whitespaces=true (flags the conversion ignores),
                         ChatML user-defined symbols and a <pad> control symbol
  spm_bpe_golden.jsonl   {"text", "ids"}: spm_bpe.model, no tokenizer_config.json
  spm_bpe_decode.jsonl   {"ids", "text"}: decode(ids, skip_special_tokens=True) of those ids
  spm_hf.jsonl           {"model", "config", "text", "ids", "decoded", "decoded_skip"}: both models
                         under tokenizer_config.json variants (legacy, add_prefix_space)

Needs the Debian `sentencepiece` package (spm_train) and, for the goldens, transformers with
sentencepiece and protobuf at the versions in tools/requirements.txt (a venv over Debian's python3).
Usage: tools/tokenizer/make_spm_fixture.py [OUT_DIR]
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

SUBJECTS = ["the camera", "a red car", "the man", "two people", "a small dog", "the truck", "a cyclist",
            "the security guard", "an old woman", "the delivery van", "a group of students", "the traffic light"]
VERBS = ["moves toward", "parks near", "walks past", "stops at", "turns left at", "waits beside",
         "is holding", "looks at", "crosses", "leaves"]
OBJECTS = ["the gate", "the left side of the frame", "the entrance", "a parked bus", "the crosswalk",
           "the building", "a blue umbrella", "the bicycle rack", "the loading dock", "the fountain"]
EXTRA = [
    "Describe the image in detail.", "What is the man holding?", "USER: <image>\nWhat do you see? ASSISTANT:",
    "A chat between a curious human and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the human's questions.",
    "Prices: $12.50, 3 items, 100% sure, 2024-05-17 14:05:33.",
    "naïve café résumé über Straße façade déjà vu",
    "日本語の文章です。東京は大きな都市です。", "中文句子，今天天气很好。", "한국어 문장입니다.",
    "Привет, как дела? Всё хорошо.", "Γειά σου κόσμε", "مرحبا بالعالم", "שלום עולם",
    "def main(): return 0  # code", "if (x > 0) { y = x * 2; }", "path/to/file.txt and https://example.com/a?b=c",
]


def corpus_lines():
    rng = random.Random(1234)
    lines = []
    for i in range(3000):
        s = "%s %s %s" % (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS))
        if rng.random() < 0.3:
            s += " at %02d:%02d" % (rng.randrange(24), rng.randrange(60))
        if rng.random() < 0.2:
            s += ", camera %d" % rng.randrange(1, 40)
        if rng.random() < 0.5:
            s = s[0].upper() + s[1:] + "."
        lines.append(s)
        if i % 10 == 0:
            lines.append(rng.choice(EXTRA))
    return lines


TEST_LINES = [
    "Hello world",
    "The camera moves toward the gate.",
    " leading space",
    "trailing space ",
    "  two leading spaces",
    "multiple   inner    spaces",
    "   ",
    "digits 1234567 and 3.14159 and 2024-05-17",
    "naïve café — déjà vu",
    "日本語の文章 and 中文 and 한국어",
    "emoji 🎉 👍🏽 😀 🇫🇷",
    "rare ǅ ɐ ʃ ∑ ∫ ≠ ∞",
    "tab\there",
    "USER: <image>\nWhat is the man holding? ASSISTANT:",
    "Привет мир",
    "A red car parks near the loading dock at 14:05, camera 3.",
    "x",
    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
    "the the the the the the the",
    "Ωmega ΑΒΓ",
    "\u2581literal metaspace\u2581",
    "CamelCaseWordsAndALLCAPS",
    "look at <image> please",
    "<image><image>x",
]


# tokenizer_config.json variants: LlamaTokenizer's `legacy` (absent means true) and
# `add_prefix_space` (absent means true; null is Python's None, false).
CONFIGS = [
    {},
    {"legacy": False},
    {"legacy": False, "add_prefix_space": False},
    {"legacy": True, "add_prefix_space": False},
    {"add_prefix_space": None},
    {"legacy": None},
]

EDGE_LINES = [
    "", " ", "  ", "a\nb", "\n", "\n\n\n", "line one\nline two\r\n", " x \n y ",
    "a<s>b</s>", "x <s> y", "<s>start", "end</s>", " </s> space", "<unk>q", "ok<s></s>ok",
    "<|im_start|>user\nWhat is this?<|im_end|>\n<|im_start|>assistant\n", "<pad>x<pad>",
    "USER: ", "\nWhat is the man holding? ASSISTANT:",
]


def random_lines(n):
    rng = random.Random(99)
    alphabet = list("abcdefghijklmnopqrstuvwxyz ABC  \n\t.,!?'0123456789") + [
        "é", "日本", "🎉", "<s>", "</s>", "<unk>", "<image>", "<|im_start|>", "<pad>", "\u2581", "  ", "Ω",
        "\u200b", "\r\n"]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 30))) for _ in range(n)]


def run(cmd, inp=None, cwd=None):
    return subprocess.run(cmd, input=inp, capture_output=True, check=True, text=True, cwd=cwd).stdout


LLAMA = {"tokenizer_class": "LlamaTokenizer"}


def hf_tokenizer(src, config, work, name="tokenizer.model"):
    """AutoTokenizer over a fresh folder (under `work`) holding `src` as `name` and `config` as its
    tokenizer_config.json."""
    from transformers import AutoTokenizer
    d = tempfile.mkdtemp(dir=work)
    shutil.copy(src, os.path.join(d, name))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(config, f)
    return AutoTokenizer.from_pretrained(d)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "tokenizer")
    os.makedirs(out_dir, exist_ok=True)
    corpus = os.path.join(out_dir, "spm_corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for line in corpus_lines():
            f.write(line.replace("\n", " ") + "\n")
    # relative paths: the trainer spec stored in the model records them
    run(["spm_train", "--input=spm_corpus.txt", "--model_prefix=spm_bpe", "--model_type=bpe",
         "--vocab_size=1200", "--byte_fallback=true", "--add_dummy_prefix=true",
         "--remove_extra_whitespaces=false", "--split_digits=true", "--normalization_rule_name=identity",
         "--character_coverage=0.9995", "--allow_whitespace_only_pieces=true", "--user_defined_symbols=<image>",
         "--num_threads=1", "--shuffle_input_sentence=false", "--minloglevel=2"], cwd=out_dir)
    run(["spm_train", "--input=spm_corpus.txt", "--model_prefix=spm_nobytes", "--model_type=bpe",
         "--vocab_size=800", "--byte_fallback=false", "--add_dummy_prefix=false",
         "--remove_extra_whitespaces=true", "--normalization_rule_name=identity", "--character_coverage=0.995",
         "--user_defined_symbols=<|im_start|>,<|im_end|>", "--control_symbols=<pad>",
         "--num_threads=1", "--shuffle_input_sentence=false", "--minloglevel=2"], cwd=out_dir)
    for p in ("spm_bpe", "spm_nobytes"):
        os.remove(os.path.join(out_dir, p + ".vocab"))
    models = {m: os.path.join(out_dir, m) for m in ("spm_bpe.model", "spm_nobytes.model")}
    work = tempfile.mkdtemp()
    try:
        tok = hf_tokenizer(models["spm_bpe.model"], LLAMA, work)
        with open(os.path.join(out_dir, "spm_bpe_golden.jsonl"), "w", encoding="utf-8") as g, \
             open(os.path.join(out_dir, "spm_bpe_decode.jsonl"), "w", encoding="utf-8") as d:
            for text in TEST_LINES:
                ids = tok.encode(text, add_special_tokens=False)
                g.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False) + "\n")
                d.write(json.dumps({"ids": ids, "text": tok.decode(ids, skip_special_tokens=True)},
                                   ensure_ascii=False) + "\n")
        texts = TEST_LINES + EDGE_LINES + random_lines(40)
        with open(os.path.join(out_dir, "spm_hf.jsonl"), "w", encoding="utf-8") as h:
            for name, path in models.items():
                for config in CONFIGS:
                    tok = hf_tokenizer(path, dict(config, **LLAMA), work)
                    for text in texts:
                        ids = tok.encode(text, add_special_tokens=False)
                        h.write(json.dumps({"model": name, "config": config, "text": text, "ids": ids,
                                            "decoded": tok.decode(ids, skip_special_tokens=False),
                                            "decoded_skip": tok.decode(ids, skip_special_tokens=True)},
                                           ensure_ascii=False) + "\n")
    finally:
        shutil.rmtree(work)
    print("wrote", ", ".join(models.values()))


if __name__ == "__main__":
    main()
