#!/usr/bin/env python3
"""quant-agree.py F32_DIR Q_DIR...: agreement of quantized models' answers with f32's, per category.

Each DIR is an `mgllava eval-scenes --dump DIR` folder (items.jsonl). Items are matched by scene and
question; an answer agrees when it is the same string. Also prints each run's accuracy against the truth.
Usage (docs/quantization.md):
  mgllava convert --model models/mgllava-demo --out /tmp/demo-q8 --dtype q8 --float f32
  mgllava eval-scenes --model models/mgllava-demo --count 200 --seed 90003 --dump /tmp/eval-f32   (and q8, q4)
  tests/bench/quant-agree.py /tmp/eval-f32 /tmp/eval-q8 /tmp/eval-q4
"""
import collections, json, sys


def load(d):
    items = {}
    for line in open(f"{d}/items.jsonl"):
        try:
            j = json.loads(line)
        except ValueError:  # a run still writing its last line
            continue
        items[(j["scene"], j["question"])] = j
    return items


ref = load(sys.argv[1])
for d in sys.argv[2:]:
    q = load(d)
    keys = [k for k in ref if k in q]
    agree, total, right, right_ref = (collections.Counter() for _ in range(4))
    for k in keys:
        c = ref[k]["category"]
        total[c] += 1
        agree[c] += ref[k]["answer"] == q[k]["answer"]
        right[c] += bool(q[k]["correct"])
        right_ref[c] += bool(ref[k]["correct"])
    n, a = sum(total.values()), sum(agree.values())
    print(f"{d}: {a}/{n} answers equal to f32's ({100.0 * a / max(n, 1):.2f}%) over {len({k[0] for k in keys})} scenes;"
          f" accuracy {sum(right.values()) / max(n, 1):.4f} vs f32 {sum(right_ref.values()) / max(n, 1):.4f}")
    for c in sorted(total):
        print(f"  {c:9} {agree[c]:5}/{total[c]:<5} {100.0 * agree[c] / total[c]:6.2f}% equal;"
              f" accuracy {right[c] / total[c]:.4f} (f32 {right_ref[c] / total[c]:.4f})")
