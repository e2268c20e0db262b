#!/usr/bin/env python3
"""PyTorch anchors for tests/bench/anchors.sh: the same random-weight Llama as the other stacks
(anchors_make_hf.py) and the two vision towers, timed on the CPU. One JSON line per measurement:
{"stack": "pytorch", "what": ..., "dtype": ..., "context": ..., "value": ..., "unit": ..., "round": ...}

  anchors_torch.py llm --model DIR --dtype f32|bf16 [--prefill 128,2000] [--decode 100,500,2000]
                       [--gen 32] [--threads 2] [--round 1]
  anchors_torch.py vision --dtype f32|bf16 [--reps 1] [--warmup 1] [--threads 2] [--round 1]

llm: one warm-up (a short prefill and a few steps); each --prefill length once untimed (llama-bench
also warms up with the full prompt), then timed (inputs_embeds, only the last position's logits, as
llama.cpp and mgllava compute); per --decode context C a prefill of C tokens (the timed one when C
is also a prefill length) and --gen greedy steps with past_key_values, timed: gen / their total time.
vision: CLIP ViT-L/14 at 336 (the config of openai/clip-vit-large-patch14-336 written by hand,
random weights; 23 of its 24 layers, as LLaVA reads the penultimate layer and mgllava stops there)
and timm convnext_large (pretrained=False) forward_features on one 768x768 image; f32, or bf16
under torch.autocast. Median of --reps after --warmup passes.
"""
import argparse
import json
import statistics
import sys
import time

import torch


def emit(args, what, dtype, context, value, unit, **extra):
    rec = {"stack": "pytorch", "what": what, "dtype": dtype, "context": context, "value": round(value, 3),
           "unit": unit, "round": args.round, "threads": args.threads, "torch": torch.__version__}
    rec.update(extra)
    print(json.dumps(rec), flush=True)


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()] if s else []


def run_llm(args):
    import transformers
    from transformers import DynamicCache, LlamaForCausalLM

    transformers.logging.set_verbosity_error()

    dt = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    model = LlamaForCausalLM.from_pretrained(args.model, torch_dtype=dt).eval()
    V = model.config.vocab_size
    embed = model.get_input_embeddings()

    def prompt(n):  # the same id pattern as mgllava's bench: (i * 7919) % V
        ids = (torch.arange(n) * 7919) % V
        return embed(ids).unsqueeze(0)

    def prefill(n):
        cache = DynamicCache()
        x = prompt(n)
        t0 = time.perf_counter()
        out = model(inputs_embeds=x, past_key_values=cache, use_cache=True, num_logits_to_keep=1)
        return time.perf_counter() - t0, out.logits[:, -1], out.past_key_values

    def decode(logits, cache, steps):
        t0 = time.perf_counter()
        for i in range(steps):
            nxt = logits.argmax(-1, keepdim=True)
            out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
            logits, cache = out.logits[:, -1], out.past_key_values
        return time.perf_counter() - t0

    with torch.inference_mode():
        _, lg, kv = prefill(32)  # warm-up
        decode(lg, kv, 4)
        pre, dec = ints(args.prefill), ints(args.decode)
        for n in sorted(set(pre) | set(dec)):
            if n in pre:
                prefill(n)  # a warm-up of the same length, as llama-bench does
            s, lg, kv = prefill(n)
            if n in pre:
                emit(args, "prefill", args.dtype, n, s * 1000.0, "ms")
            if n in dec:
                s = decode(lg, kv, args.gen)
                emit(args, "decode", args.dtype, n, args.gen / s, "tokens/s", gen_tokens=args.gen)


def run_vision(args):
    import timm
    from transformers import CLIPVisionConfig, CLIPVisionModel

    # openai/clip-vit-large-patch14-336, vision part; 23 layers: the penultimate layer's output
    cfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                           num_channels=3, image_size=336, patch_size=14, hidden_act="quick_gelu",
                           layer_norm_eps=1e-5, projection_dim=768, attn_implementation="sdpa")
    torch.manual_seed(0)
    clip = CLIPVisionModel(cfg).eval()
    cnx = timm.create_model("convnext_large", pretrained=False).eval()
    x336 = torch.rand(1, 3, 336, 336) * 2 - 1
    x768 = torch.rand(1, 3, 768, 768) * 2 - 1
    auto = args.dtype == "bf16"

    def once():
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=auto):
            a = time.perf_counter()
            clip(pixel_values=x336)
            b = time.perf_counter()
            cnx.forward_features(x768)
            c = time.perf_counter()
        return (b - a) * 1000.0, (c - b) * 1000.0

    for _ in range(args.warmup):
        once()
    t = [once() for _ in range(max(1, args.reps))]
    tc = statistics.median(x[0] for x in t)
    tx = statistics.median(x[1] for x in t)
    extra = {"reps": len(t), "autocast": auto}
    emit(args, "clip", args.dtype, None, tc, "ms", **extra)
    emit(args, "convnext", args.dtype, None, tx, "ms", **extra)
    emit(args, "vision", args.dtype, None, tc + tx, "ms", **extra)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["llm", "vision"])
    ap.add_argument("--model")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    ap.add_argument("--prefill", default="128,2000")
    ap.add_argument("--decode", default="100,500,2000")
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--round", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.mode == "llm":
        if not args.model:
            sys.exit("llm: --model DIR (written by anchors_make_hf.py)")
        run_llm(args)
    else:
        run_vision(args)


if __name__ == "__main__":
    main()
