#!/usr/bin/env python3
"""Goldens for the ids a tokenizer.json folder gives with special tokens, as AutoTokenizer gives them.

LlamaTokenizerFast (also CodeLlama, Gemma, Cohere) replaces tokenizer.json's post-processor with one
built from tokenizer_config.json's add_bos_token (default true) and add_eos_token (default false);
other classes keep tokenizer.json's. Writes tests/fixtures/tokenizer/post_hf.jsonl:
{"tokenizer", "config", "text", "ids"} with ids = AutoTokenizer(folder).encode(text) (specials added).

Needs transformers (tools/requirements.txt).
Usage: tools/tokenizer/hf_post_goldens.py [FIXTURE_DIR]
"""
import json
import os
import shutil
import sys
import tempfile

from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

TOKENIZERS = ["tiny_metaspace/tokenizer.json", "tiny_prepend/tokenizer.json"]
CONFIGS = [
    {"tokenizer_class": "PreTrainedTokenizerFast"},
    {"tokenizer_class": "LlamaTokenizer"},
    {"tokenizer_class": "LlamaTokenizer", "add_bos_token": False},
    {"tokenizer_class": "LlamaTokenizer", "add_eos_token": True},
    {"tokenizer_class": "LlamaTokenizer", "add_bos_token": False, "add_eos_token": True},
    {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False, "add_eos_token": True},
]
TEXTS = ["hello world", "", " a  b ", "<s>x</s>"]


def main():
    fx = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "tokenizer")
    work = tempfile.mkdtemp()
    try:
        with open(os.path.join(fx, "post_hf.jsonl"), "w", encoding="utf-8") as out:
            for tj in TOKENIZERS:
                for config in CONFIGS:
                    d = tempfile.mkdtemp(dir=work)
                    shutil.copy(os.path.join(fx, tj), os.path.join(d, "tokenizer.json"))
                    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
                        json.dump(config, f)
                    tok = AutoTokenizer.from_pretrained(d)
                    for text in TEXTS:
                        out.write(json.dumps({"tokenizer": tj, "config": config, "text": text,
                                              "ids": tok.encode(text)}, ensure_ascii=False) + "\n")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
