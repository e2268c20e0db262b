#!/usr/bin/env python3
"""Builds two tiny tokenizer.json fixtures with HF `tokenizers` and their goldens.

  tiny_metaspace/tokenizer.json  Llama-2-era layout: no normalizer, Metaspace
      pre-tokenizer (legacy add_prefix_space field), BPE with byte_fallback and
      merges stored as "a b" strings, Metaspace decoder, TemplateProcessing
      with BOS and EOS, a non-special added token with lstrip/rstrip.
  tiny_prepend/tokenizer.json  Llama-2/Mistral layout (Prepend + Replace
      normalizer, no pre-tokenizer, ByteFallback decoder chain) with
      normalized added tokens ("hello world", "<mask>") and a single_word
      token whose content is in the vocabulary under another id than the one
      stored (HF keeps the vocabulary's id).
  tiny_gpt2/tokenizer.json  GPT-2 layout: ByteLevel pre-tokenizer with its own
      regex (use_regex=true), merges stored as [a, b] pairs, ByteLevel decoder,
      no post-processor, an added token with single_word.

Each folder gets golden.jsonl: {"text", "ids", "ids_no_special", "decoded",
"decoded_skip"} from HF. Trained on tests/fixtures/tokenizer/spm_corpus.txt
(made by make_spm_fixture.py). Usage: tools/tokenizer/make_tiny_hf.py [FIXTURE_DIR]
"""
import json
import os
import sys

# One thread: the BPE trainer breaks count ties differently run to run when parallel.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer, models, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

TEXTS = [
    "", " ", "Hello world", "  two  spaces  ", "The camera moves toward the gate.",
    "naïve café 日本語 🎉 ∑", "digits 1234567 3.14", "don't I'LL we're", "tab\tnew\nline\r\n",
    "<s>Hello</s>", "a <mask> b", "x<mask>y", " <mask> ", "<mask>", "unseen chars: ǅ ʃ Ω ж 한",
    "\u2581meta\u2581space", "  ", "\n\n", "end.  ",
    "hello world and hello  world", "the theme", "x the y", "-the-", "t\u00bdthe", "the\u200d", "the\u0301",
    "a <mask> b<mask>c", "<s> the </s>", "he said he", "he-he he\u00bd",
]


def dump(j, path):
    # vocab in id order: the serializer's hash-map order changes run to run
    j["model"]["vocab"] = dict(sorted(j["model"]["vocab"].items(), key=lambda kv: kv[1]))
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(j, ensure_ascii=False))


def write_golden(tok, folder):
    with open(os.path.join(folder, "golden.jsonl"), "w", encoding="utf-8") as f:
        for t in TEXTS:
            ids = tok.encode(t).ids
            rec = {"text": t, "ids": ids, "ids_no_special": tok.encode(t, add_special_tokens=False).ids,
                   "decoded": tok.decode(ids, skip_special_tokens=False),
                   "decoded_skip": tok.decode(ids, skip_special_tokens=True)}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def metaspace(corpus, out):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tr = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"])
    tok.train([corpus], tr)
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    for b in range(256):
        vocab.setdefault("<0x%02X>" % b, len(vocab))
    j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    j["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
    j["decoder"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
    j["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                           "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}},
    }
    nid = len(vocab)
    j["added_tokens"].append({"id": nid, "content": "<mask>", "single_word": False, "lstrip": True,
                              "rstrip": True, "normalized": False, "special": False})
    tok = Tokenizer.from_str(json.dumps(j))
    os.makedirs(out, exist_ok=True)
    dump(j, os.path.join(out, "tokenizer.json"))
    write_golden(tok, out)


def prepend(base_json, out):
    # Same vocabulary and merges as tiny_metaspace (retraining could break count
    # ties differently); only the pipeline around the model changes.
    with open(base_json, encoding="utf-8") as f:
        j = json.load(f)
    j["model"]["merges"] = [m.split(" ", 1) if isinstance(m, str) else m for m in j["model"]["merges"]]
    j["added_tokens"] = [t for t in j["added_tokens"] if t["content"] != "<mask>"]
    vocab = j["model"]["vocab"]
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    j["pre_tokenizer"] = None
    j["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    j["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
    }
    n = len(vocab)
    the = next(w for w in ["he", "in", "er", "th", "on"] if w in vocab)
    j["added_tokens"] += [
        {"id": n, "content": "hello world", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": True, "special": False},
        {"id": n + 1, "content": "<mask>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": True, "special": True},
        {"id": n + 2, "content": the, "single_word": True, "lstrip": False, "rstrip": False,
         "normalized": False, "special": False},
    ]
    tok = Tokenizer.from_str(json.dumps(j))
    os.makedirs(out, exist_ok=True)
    dump(j, os.path.join(out, "tokenizer.json"))
    write_golden(tok, out)


def gpt2(corpus, out):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    from tokenizers import decoders
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=500, special_tokens=["<|endoftext|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([corpus], tr)
    j = json.loads(tok.to_str())
    j["model"]["merges"] = [m.split(" ", 1) if isinstance(m, str) else m for m in j["model"]["merges"]]
    nid = len(j["model"]["vocab"])
    j["added_tokens"].append({"id": nid, "content": "<mask>", "single_word": True, "lstrip": False,
                              "rstrip": False, "normalized": False, "special": True})
    tok = Tokenizer.from_str(json.dumps(j))
    os.makedirs(out, exist_ok=True)
    dump(j, os.path.join(out, "tokenizer.json"))
    write_golden(tok, out)


def main():
    fx = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "tokenizer")
    corpus = os.path.join(fx, "spm_corpus.txt")
    metaspace(corpus, os.path.join(fx, "tiny_metaspace"))
    prepend(os.path.join(fx, "tiny_metaspace", "tokenizer.json"), os.path.join(fx, "tiny_prepend"))
    gpt2(corpus, os.path.join(fx, "tiny_gpt2"))
    print("wrote tiny_metaspace, tiny_prepend and tiny_gpt2 under", fx)


if __name__ == "__main__":
    main()
