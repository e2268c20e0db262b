#!/usr/bin/env python3
"""Write a random-weight Hugging Face Llama with the shape of `mgllava bench --preset llama-110m`
(engine/cli/mgl-bench.c, k_llama110m: hidden 768, 12 layers, 12 heads, 12 KV heads, FFN 2048,
vocab 32000, 2048 positions, RoPE theta 1e4, tied embeddings) to OUT_DIR, with a small
SentencePiece tokenizer (the converter to GGUF needs one; it pads the vocabulary to 32000).

Used by tests/bench/anchors.sh: the same files feed PyTorch and, converted to GGUF, llama.cpp.
Usage: anchors_make_hf.py OUT_DIR
"""
import io
import json
import os
import sys

import sentencepiece as spm
import torch
from transformers import LlamaConfig, LlamaForCausalLM

# keep in step with k_llama110m in engine/cli/mgl-bench.c
SHAPE = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    num_key_value_heads=12,
    intermediate_size=2048,
    vocab_size=32000,
    max_position_embeddings=2048,
    rope_theta=10000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
    hidden_act="silu",
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)


def write_tokenizer(out):
    """A byte-fallback unigram model trained on a few generated lines: only its ids matter."""
    words = ["frame", "image", "object", "person", "car", "left", "right", "red", "blue", "the", "a", "of"]
    lines = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(12)) for i in range(400)]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=280,
        hard_vocab_limit=False,
        model_type="unigram",
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    with open(os.path.join(out, "tokenizer.model"), "wb") as f:
        f.write(buf.getvalue())
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
                   "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False}, f, indent=1)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1234)
    cfg = LlamaConfig(**SHAPE)
    model = LlamaForCausalLM(cfg).to(torch.float32).eval()
    with torch.no_grad():  # a sensible scale, so that no dtype overflows
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.02)
    model.save_pretrained(out, safe_serialization=True)
    write_tokenizer(out)
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"wrote": out, "parameters": n, **SHAPE}))


if __name__ == "__main__":
    main()
