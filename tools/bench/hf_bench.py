#!/usr/bin/env python3
"""The `mgllava bench` shapes through HF transformers (and timm), fp16, batch 1,
random weights made on the GPU: a side-by-side for tests/gpu/check.sh.

Times: CLIP ViT-L/14-336 (hidden_states, as LLaVA reads layer -2), ConvNeXt-L
at 768 (timm forward_features), a 900-token prefill and greedy decode with the
KV cache for Vicuna-7B, Phi-3-mini and Llama-3-8B shapes, and one captioned
frame (CLIP + ConvNeXt + 900-token prefill + 29 decode steps; HF has no
MG-LLaVA fusion or RoI stage, so the frame is a lower bound of HF's time).
Every time is the median of a few runs after a warm-up, between
torch.cuda.synchronize() calls. Writes one JSON object (--out) and prints it.
"""
import argparse
import json
import statistics
import sys
import time

import torch

LLMS = {
    "vicuna-7b": dict(arch="llama", hidden=4096, layers=32, heads=32, kv=32, ffn=11008, vocab=32000, theta=1e4),
    "phi3-mini": dict(arch="phi3", hidden=3072, layers=32, heads=32, kv=32, ffn=8192, vocab=32064, theta=1e4),
    "llama3-8b": dict(arch="llama", hidden=4096, layers=32, heads=32, kv=8, ffn=14336, vocab=128256, theta=5e5),
}


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(ts)


def build_llm(s):
    import transformers as tf
    common = dict(hidden_size=s["hidden"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
                  num_key_value_heads=s["kv"], intermediate_size=s["ffn"], vocab_size=s["vocab"],
                  max_position_embeddings=4096, rope_theta=s["theta"], rms_norm_eps=1e-5)
    if s["arch"] == "phi3":
        cfg = tf.Phi3Config(**common)
        cls = tf.Phi3ForCausalLM
    else:
        cfg = tf.LlamaConfig(**common)
        cls = tf.LlamaForCausalLM
    torch.set_default_dtype(torch.float16)
    try:
        with torch.device("cuda"):
            model = cls(cfg)
    finally:
        torch.set_default_dtype(torch.float32)
    return model.eval()


@torch.inference_mode()
def bench_llm(name, s, T, G, reps):
    model = build_llm(s)
    emb = torch.randn(1, T, s["hidden"], device="cuda", dtype=torch.float16) * 0.02

    def prefill():
        return model(inputs_embeds=emb, use_cache=True)

    pre_ms = timed(prefill, reps)

    def decode():
        out = model(inputs_embeds=emb, use_cache=True)
        past = out.past_key_values
        tok = out.logits[:, -1:].argmax(-1)
        for _ in range(G - 1):
            out = model(input_ids=tok, past_key_values=past, use_cache=True)
            past = out.past_key_values
            tok = out.logits[:, -1:].argmax(-1)

    total = timed(decode, 1)
    per = (total - pre_ms) / max(G - 1, 1)
    del model
    torch.cuda.empty_cache()
    return dict(prefill_tokens=T, prefill_ms=pre_ms, decode_ms_per_token=per, decode_tokens_per_s=1000.0 / per,
                frame_llm_ms=total)


@torch.inference_mode()
def bench_vision(reps):
    import transformers as tf
    res = {}
    cfg = tf.CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, image_size=336, patch_size=14, hidden_act="quick_gelu")
    torch.set_default_dtype(torch.float16)
    try:
        with torch.device("cuda"):
            clip = tf.CLIPVisionModel(cfg).eval()
    finally:
        torch.set_default_dtype(torch.float32)
    x = torch.randn(1, 3, 336, 336, device="cuda", dtype=torch.float16)
    res["clip_ms"] = timed(lambda: clip(pixel_values=x, output_hidden_states=True), reps)
    res["convnext_ms"] = None
    try:
        import timm
        cnx = timm.create_model("convnext_large", pretrained=False).cuda().half().eval()
        y = torch.randn(1, 3, 768, 768, device="cuda", dtype=torch.float16)
        res["convnext_ms"] = timed(lambda: cnx.forward_features(y), reps)
        del cnx
    except Exception as e:  # timm missing or too old
        res["convnext_error"] = str(e)
    del clip
    torch.cuda.empty_cache()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=None)
    ap.add_argument("--prompt-tokens", type=int, default=900)
    ap.add_argument("--gen-tokens", type=int, default=30)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", default="vicuna-7b,phi3-mini,llama3-8b")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device for PyTorch", file=sys.stderr)
        return 77
    import transformers
    res = dict(device=torch.cuda.get_device_name(0), torch=torch.__version__, transformers=transformers.__version__,
               dtype="float16", llm={})
    t0 = time.time()
    res.update(bench_vision(a.reps))
    print("vision done %.0f s" % (time.time() - t0), file=sys.stderr)
    for name in a.models.split(","):
        try:
            res["llm"][name] = bench_llm(name, LLMS[name], a.prompt_tokens, a.gen_tokens, a.reps)
        except Exception as e:
            res["llm"][name] = dict(error=str(e))
        print("%s done %.0f s" % (name, time.time() - t0), file=sys.stderr)
        if a.out:  # partial results survive a timeout
            json.dump(res, open(a.out, "w"), indent=1)
    v = res["llm"].get("vicuna-7b", {})
    if "frame_llm_ms" in v and res.get("clip_ms"):
        res["frame_ms"] = res["clip_ms"] + (res.get("convnext_ms") or 0.0) + v["frame_llm_ms"]
    s = json.dumps(res, indent=1)
    if a.out:
        open(a.out, "w").write(s)
    print(s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
