#!/usr/bin/env python3
"""Measurement lines and the summary table of tests/bench/anchors.sh (standard library only).

  anchors_report.py mgllava --round R --dtype D --emit prefill,decode|vision < `mgllava bench` JSON
  anchors_report.py llamacpp --round R --dtype D < `llama-bench -o json` output
  anchors_report.py medians FILE        medians per (stack, what, dtype, context), JSON lines
  anchors_report.py table FILE          the markdown table of the medians

Every measurement line: {"stack", "what", "dtype", "context", "value", "unit", "round", ...}.
what: prefill (ms for `context` prompt tokens), decode (tokens/s, greedy steps after `context`
tokens in the KV cache), clip / convnext / vision (ms of one image; vision = clip + convnext).
"""
import argparse
import json
import statistics
import sys

STACKS = [("mgllava", "mgllava"), ("llamacpp", "llama.cpp"), ("pytorch", "PyTorch")]


def emit(rec):
    print(json.dumps(rec), flush=True)


def from_mgllava(a):
    emits = set(a.emit.split(","))
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        j = json.loads(line)
        base = {"stack": "mgllava", "dtype": a.dtype, "round": a.round, "threads": j.get("threads"),
                "blas_core": j.get("blas_core")}
        if "prefill" in emits:
            emit({**base, "what": "prefill", "context": j["prefill_tokens"], "value": j["prefill_ms"], "unit": "ms"})
        if "decode" in emits:
            emit({**base, "what": "decode", "context": j["prefill_tokens"], "value": j["decode_tokens_per_s"],
                  "unit": "tokens/s", "gen_tokens": j["decode_tokens"]})
        if "vision" in emits:
            for k in ("clip", "convnext"):
                emit({**base, "what": k, "context": None, "value": j[k + "_ms"], "unit": "ms"})
            emit({**base, "what": "vision", "context": None, "value": round(j["clip_ms"] + j["convnext_ms"], 1),
                  "unit": "ms"})


def from_llamacpp(a):
    text = sys.stdin.read()
    rows = json.loads(text[text.index("["):]) if "[" in text else []
    for r in rows:
        base = {"stack": "llamacpp", "dtype": a.dtype, "round": a.round, "threads": r.get("n_threads"),
                "build_commit": r.get("build_commit"), "flash_attn": r.get("flash_attn"),
                "reps": len(r.get("samples_ns") or []) or None}
        if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0:
            emit({**base, "what": "prefill", "context": r["n_prompt"], "value": round(r["avg_ns"] / 1e6, 1),
                  "unit": "ms", "depth": r.get("n_depth", 0)})
        elif r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0:
            emit({**base, "what": "decode", "context": r.get("n_depth", 0), "value": round(r["avg_ts"], 2),
                  "unit": "tokens/s", "gen_tokens": r["n_gen"]})


def order(key):
    stack, what, dtype, ctx = key
    st = [s for s, _ in STACKS]
    dt = ["f32", "f16", "bf16"]
    return (st.index(stack) if stack in st else 9, what, dt.index(dtype) if dtype in dt else 9, ctx or 0)


def load(path):
    groups = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if r.get("stat") == "median" or r.get("stack") == "machine":  # the bandwidth probe: in the header
                continue
            key = (r["stack"], r["what"], r["dtype"], r["context"])
            groups.setdefault(key, {"unit": r["unit"], "v": []})["v"].append(float(r["value"]))
    med = {}
    for key in sorted(groups, key=order):
        v = groups[key]["v"]
        med[key] = (statistics.median(v), min(v), max(v), len(v), groups[key]["unit"])
    return med


def medians(a):
    for (stack, what, dtype, ctx), (v, lo, hi, n, unit) in load(a.file).items():
        emit({"stack": stack, "what": what, "dtype": dtype, "context": ctx, "value": round(v, 3), "unit": unit,
              "stat": "median", "n": n, "min": lo, "max": hi})


def table(a):
    med = load(a.file)

    def cell(stack, what, dtype, ctx):
        m = med.get((stack, what, dtype, ctx))
        if not m:
            return "—"
        v, lo, hi, n, _ = m
        digits = 0 if v >= 1000 else 1 if v >= 10 else 2
        s = f"{v:.{digits}f}"
        return s + (f" ({lo:.{digits}f}–{hi:.{digits}f})" if n > 1 else "")

    ctxs = sorted({k[3] for k in med if k[1] == "decode"})
    pres = sorted({k[3] for k in med if k[1] == "prefill" and k[2] == "f32"})
    rows = []
    names = {"f32": "f32", "f32kv": "f32 with an f32 KV cache (mgllava's default)", "f16": "f16", "bf16": "bf16",
             "q8": "q8 (llama.cpp Q8_0)", "q4": "q4 (llama.cpp Q4_0)"}
    for dt in names:
        for c in ctxs:
            rows.append((f"decode {names[dt]}, context {c} (tokens/s)", "decode", dt, c))
    for p in pres:
        rows.append((f"prefill {p} tokens, f32 (ms)", "prefill", "f32", p))
    for dt in ("f32", "bf16"):
        rows.append((f"vision CLIP-L/336 + ConvNeXt-L@768, {dt} (ms)", "vision", dt, None))
    rounds = max((m[3] for m in med.values()), default=0)
    print(f"Median of up to {rounds} round(s) (min–max in parentheses); 2 threads each; — = not measured.")
    print()
    print("| | " + " | ".join(name for _, name in STACKS) + " |")
    print("|---|" + "---:|" * len(STACKS))
    for label, what, dt, c in rows:
        if any((s, what, dt, c) in med for s, _ in STACKS):
            print(f"| {label} | " + " | ".join(cell(s, what, dt, c) for s, _ in STACKS) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["mgllava", "llamacpp", "medians", "table"])
    ap.add_argument("file", nargs="?")
    ap.add_argument("--round", type=int, default=1)
    ap.add_argument("--dtype", default="f32")
    ap.add_argument("--emit", default="prefill,decode")
    a = ap.parse_args()
    {"mgllava": from_mgllava, "llamacpp": from_llamacpp, "medians": medians, "table": table}[a.mode](a)


if __name__ == "__main__":
    main()
