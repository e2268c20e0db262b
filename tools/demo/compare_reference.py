#!/usr/bin/python3
"""Rerun the items of `mgllava eval-scenes --dump DIR` through the PyTorch reference.

    /usr/bin/python3 tools/demo/compare_reference.py DIR [--model PATH] [--limit N]

DIR/items.jsonl holds one asked item per line (image, truth boxes and labels, question, truth,
the C engine's answer, category); DIR/summary.json the eval-scenes summary (its "model" is the
default --model, its "object_order" the box order when given). Every item is answered by tools/reference/mgllava_ref.py (MGLLaVA) with the same
boxes (score 1.0, label = colour name), greedily, and the answer strings are compared with the C
engine's. Prints one JSON object: items, agree, agree_fraction, agree_modulo_whitespace,
reference_accuracy and engine_accuracy per category (scored as eval-scenes scores), and the first
disagreements.
Exit status 0 when it ran (whatever the agreement), 1 on an error.
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no generate() chatter on stderr
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

CATEGORIES = ("caption", "questions", "counting", "color", "shape", "position", "digit", "other")


def normalize(s):
    """eval-scenes' scoring: trim (str.strip's whitespace), drop one trailing ".", trim again, lower-case."""
    s = s.strip()
    if s.endswith("."):
        s = s[:-1]
    return s.strip().lower()


def answer(model, image, record, question):
    """MGLLaVA.run's greedy answer, decoded once: run() with generate=True also runs the hand-written
    loop and cross-checks it against HF generate (the goldens do that); here only the official HF
    generate call runs, on the same inputs_embeds, decoded as run() decodes its `text`."""
    r = model.run(image, record, question, generate=False)
    ids = model.generate_hf(r["inputs_embeds"])
    return model.decode(ids, skip_special_tokens=True).strip()


def tally_add(t, cat, ok):
    for key in (cat, "questions") if cat not in ("caption", "digit") else (cat,):
        n, c = t.get(key, (0, 0))
        t[key] = (n + 1, c + int(ok))


def tally_json(t):
    out = {}
    for k in CATEGORIES:
        if k in t or k != "other":
            n, c = t.get(k, (0, 0))
            out[k] = {"n": n, "correct": c, "accuracy": (c / n) if n else None}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", help="the --dump folder of mgllava eval-scenes")
    ap.add_argument("--model", help="model folder (default: the one in DIR/summary.json)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N items")
    ap.add_argument("--verbose", action="store_true", help="one line per item on stderr")
    a = ap.parse_args()

    summary = {}
    sp = os.path.join(a.dir, "summary.json")
    if os.path.exists(sp):
        with open(sp) as f:
            summary = json.load(f)
    if summary.get("use_high_res") is False or summary.get("use_objects") is False:
        sys.exit("compare_reference: the reference has no ablations; dump with --use-high-res true --use-objects true")
    model_dir = a.model or summary.get("model")
    if not model_dir:
        sys.exit("compare_reference: no --model and no model in %s" % sp)
    with open(os.path.join(a.dir, "items.jsonl")) as f:
        items = [json.loads(line) for line in f if line.strip()]
    if a.limit > 0:
        items = items[:a.limit]
    if not items:
        sys.exit("compare_reference: %s/items.jsonl has no items" % a.dir)

    import torch
    from PIL import Image
    from mgllava_ref import MGLLaVA
    torch.set_grad_enabled(False)

    t0 = time.monotonic()
    model = MGLLaVA(model_dir)
    if summary.get("object_order"):               # eval-scenes --object-order overrode the manifest's
        model.object_order = summary["object_order"]
    images, agree, agree_ws, ref_t, eng_t, diffs = {}, 0, 0, {}, {}, []
    for k, it in enumerate(items):
        name = it["image"]
        if name not in images:
            images[name] = Image.open(os.path.join(a.dir, name)).convert("RGB")
        boxes = it["boxes"]
        rec = {"boxes": boxes, "scores": [1.0] * len(boxes), "labels": it["labels"]}
        ref = answer(model, images[name], rec, it["question"])
        same = ref == it["answer"]
        agree += same
        agree_ws += ref.strip() == it["answer"].strip()
        tally_add(ref_t, it["category"], normalize(ref) == normalize(it["truth"]))
        tally_add(eng_t, it["category"], bool(it["correct"]))
        if not same and len(diffs) < 10:
            diffs.append({"image": name, "question": it["question"], "engine": it["answer"], "reference": ref})
        if a.verbose:
            print("%d/%d %s %s: %r%s" % (k + 1, len(items), name, it["question"], ref, "" if same else
                                         "  (engine: %r)" % it["answer"]), file=sys.stderr)
    print(json.dumps({"model": model_dir, "items": len(items), "agree": agree,
                      "agree_fraction": agree / len(items),
                      # the same after Python's str.strip() on both: tells a whitespace-trimming difference
                      # (the engine's strip vs the reference's str.strip) from a different generation
                      "agree_modulo_whitespace": agree_ws,
                      "reference_accuracy": tally_json(ref_t), "engine_accuracy": tally_json(eng_t),
                      "disagreements": diffs, "seconds": round(time.monotonic() - t0, 3)}))


if __name__ == "__main__":
    main()
