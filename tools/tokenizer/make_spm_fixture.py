#!/usr/bin/env python3
"""Builds the small SentencePiece BPE fixture and its goldens.

Writes, under tests/fixtures/tokenizer/:
  spm_corpus.txt      the training text (generated here, deterministic)
  spm_bpe.model       spm_train --model_type=bpe --byte_fallback=true ... (Llama-like options)
  spm_bpe_golden.jsonl  {"text", "ids"} with ids from `spm_encode --output_format=id`
  spm_bpe_decode.jsonl  {"ids", "text"} with text from `spm_decode --input_format=id`

Needs the Debian `sentencepiece` package (spm_train, spm_encode, spm_decode).
Usage: tools/tokenizer/make_spm_fixture.py [OUT_DIR]
"""
import json
import os
import random
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


def run(cmd, inp=None, cwd=None):
    return subprocess.run(cmd, input=inp, capture_output=True, check=True, text=True, cwd=cwd).stdout


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "tokenizer")
    os.makedirs(out_dir, exist_ok=True)
    corpus = os.path.join(out_dir, "spm_corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for line in corpus_lines():
            f.write(line.replace("\n", " ") + "\n")
    prefix = os.path.join(out_dir, "spm_bpe")
    # relative paths: the trainer spec stored in the model records them
    run(["spm_train", "--input=spm_corpus.txt", "--model_prefix=spm_bpe", "--model_type=bpe",
         "--vocab_size=1200", "--byte_fallback=true", "--add_dummy_prefix=true",
         "--remove_extra_whitespaces=false", "--split_digits=true", "--normalization_rule_name=identity",
         "--character_coverage=0.9995", "--allow_whitespace_only_pieces=true", "--user_defined_symbols=<image>",
         "--num_threads=1", "--shuffle_input_sentence=false", "--minloglevel=2"], cwd=out_dir)
    os.remove(prefix + ".vocab")
    model = prefix + ".model"
    # spm_encode reads one sentence a line: newlines inside a test line are encoded
    # separately and joined with the id of "\n" pieces as the tokenizer would see them.
    # To keep goldens exact, each test line is encoded on its own via a temp file.
    with open(os.path.join(out_dir, "spm_bpe_golden.jsonl"), "w", encoding="utf-8") as g, \
         open(os.path.join(out_dir, "spm_bpe_decode.jsonl"), "w", encoding="utf-8") as d:
        for text in TEST_LINES:
            if "\n" in text:
                continue  # spm_encode is line based; newline cases live in the C test
            ids = run(["spm_encode", "--model=" + model, "--output_format=id"], text + "\n").split()
            ids = [int(x) for x in ids]
            g.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False) + "\n")
            back = run(["spm_decode", "--model=" + model, "--input_format=id"], " ".join(map(str, ids)) + "\n")
            d.write(json.dumps({"ids": ids, "text": back.rstrip("\n")}, ensure_ascii=False) + "\n")
    print("wrote", model)


if __name__ == "__main__":
    main()
