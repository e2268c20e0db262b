#!/usr/bin/env python3
"""Goldens for the ids a tokenizer.json folder gives with special tokens, as AutoTokenizer gives them.

LlamaTokenizerFast (also CodeLlama, Gemma, Cohere) replaces tokenizer.json's post-processor with one
built from tokenizer_config.json's add_bos_token (default true) and add_eos_token (default false);
other classes keep tokenizer.json's. Writes tests/fixtures/tokenizer/post_hf.jsonl:
{"tokenizer", "config", "text", "ids", "ids_plain", "decoded_skip"}: AutoTokenizer(folder).encode(text) with
and without special tokens, and decode(ids_plain, skip_special_tokens=True). The config's added tokens that
tokenizer.json lacks are added by the constructor too.

Needs transformers (tools/requirements.txt).
Usage: tools/tokenizer/hf_post_goldens.py [FIXTURE_DIR]
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_spm_fixture import hf_tokenizer  # noqa: E402

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
    # added tokens the config lists and tokenizer.json lacks: the constructor adds them, with the next ids
    {"tokenizer_class": "LlamaTokenizer", "added_tokens_decoder": {
        "900": {"content": "<|im_start|>", "special": True, "normalized": False, "lstrip": False, "rstrip": False,
                "single_word": False},
        "901": {"content": "<|im_end|>", "special": False, "normalized": False, "lstrip": False, "rstrip": True,
                "single_word": False}}},
    {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|end|>", "added_tokens_decoder": {
        "7": {"content": "<|user|>", "special": True, "normalized": False, "lstrip": False, "rstrip": False,
              "single_word": False}}},
]
TEXTS = ["hello world", "", " a  b ", "<s>x</s>", "a<|im_start|>b<|im_end|> c<|user|>d<|end|>"]


def main():
    fx = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "tokenizer")
    work = tempfile.mkdtemp()
    try:
        with open(os.path.join(fx, "post_hf.jsonl"), "w", encoding="utf-8") as out:
            for tj in TOKENIZERS:
                for config in CONFIGS:
                    tok = hf_tokenizer(os.path.join(fx, tj), config, work, "tokenizer.json")
                    for text in TEXTS:
                        plain = tok.encode(text, add_special_tokens=False)
                        out.write(json.dumps({"tokenizer": tj, "config": config, "text": text,
                                              "ids": tok.encode(text), "ids_plain": plain,
                                              "decoded_skip": tok.decode(plain, skip_special_tokens=True)},
                                             ensure_ascii=False) + "\n")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
