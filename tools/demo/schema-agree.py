#!/usr/bin/env python3
"""The demo model's count under the schema {"count": integer} against its free-text count.

On held-out scenes (`mgllava scenes`, truth boxes as the detector record), each scene is asked:
  free     the counting question in free text ("How many objects are there?")
  json     the question asked for JSON (train.py's JSON_COUNT_PROMPT) with --schema
  plain    the plain question with --schema (the model must write JSON it was not asked for)
and the script prints, for json and plain, how often the answer is complete JSON whose count equals
the free-text answer, and each one's accuracy against the truth.

Usage: tools/demo/schema-agree.py --mgllava BUILD/engine/mgllava [--model models/mgllava-demo]
           [--count 200] [--seed 90003]
Needs only the mgllava binary (no PyTorch). Not a test: tests/gst/structured.py checks a floor.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROMPT = "How many objects are there?"
JSON_PROMPT = "How many objects are there? Answer in JSON."   # train.py's JSON_COUNT_PROMPT
SCHEMA = {"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["count"]}


def run(a, png, boxes, prompt, schema=None):
    cmd = [a.mgllava, "run", "--model", a.model, "--image", png, "--boxes", boxes, "--prompt", prompt,
           "--json", "--max-new-tokens", "40"]
    if schema:
        cmd += ["--schema", schema]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def count_of(r):
    """The count of a schema answer, or None when it is incomplete or not the schema's object."""
    if r.get("constraint") != "complete":
        return None
    try:
        v = json.loads(r["text"])
    except ValueError:
        return None
    return v.get("count") if isinstance(v, dict) and isinstance(v.get("count"), int) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mgllava", required=True)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "mgllava-demo"))
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--seed", type=int, default=90003)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp()
    subprocess.run([a.mgllava, "scenes", "--count", str(a.count), "--seed", str(a.seed), "--out", tmp],
                   check=True, capture_output=True)
    schema = os.path.join(tmp, "count.schema.json")
    with open(schema, "w") as fh:
        json.dump(SCHEMA, fh)
    tally = {k: {"agree": 0, "right": 0, "complete": 0} for k in ("json", "plain")}
    free_right, n = 0, 0
    examples = {}
    for i in range(a.count):
        base = os.path.join(tmp, f"scene_{i:06d}")
        with open(base + ".json") as fh:
            truth = json.load(fh)
        boxes = base + ".boxes.json"
        with open(boxes, "w") as fh:
            json.dump({"boxes": [o["box"] for o in truth["objects"]],
                       "labels": [o["label"] for o in truth["objects"]]}, fh)
        want = len(truth["objects"])
        free = run(a, base + ".png", boxes, PROMPT)["text"].strip().rstrip(".")
        free_right += free == str(want)
        n += 1
        for k, prompt in (("json", JSON_PROMPT), ("plain", PROMPT)):
            r = run(a, base + ".png", boxes, prompt, schema)
            c = count_of(r)
            examples.setdefault(k, r["text"])
            t = tally[k]
            t["complete"] += c is not None
            t["agree"] += c is not None and str(c) == free
            t["right"] += c == want
    print(f"{a.model}: {n} scenes of seed {a.seed} (truth boxes, greedy)")
    print(f"  free text  \"{PROMPT}\": right {free_right}/{n}")
    for k, prompt in (("json", JSON_PROMPT), ("plain", PROMPT)):
        t = tally[k]
        print(f"  schema     \"{prompt}\": complete {t['complete']}/{n}, count = free-text count "
              f"{t['agree']}/{n} ({100.0 * t['agree'] / n:.1f}%), right {t['right']}/{n}; e.g. {examples[k]}")


if __name__ == "__main__":
    main()
