#!/usr/bin/python3
"""Checks the JSON lines of mgllavajson / mgllavapublish.

  check_json.py validate FORMAT FILE [--min-results N] [--timings]
      every line parses and validates against docs/<FORMAT>-frame.schema.json
      (jsonschema, Draft 7); with FORMAT dlstreamer also against the layout of a
      gvametaconvert message (tests/fixtures/dlstreamer/gvametaconvert-sample.json):
      every key our objects share with DL Streamer's has the same JSON type, and
      our top-level keys are DL Streamer's plus "mgllava"
  check_json.py emit FORMAT FILE TIMINGS
      the lines of tests/gst/json_emit.c, field by field
  check_json.py sample
      the gvametaconvert sample's objects validate against our dlstreamer
      schema's definitions (the schema describes DL Streamer's layout)
Exit 0 when everything holds; prints what does not.
"""
import json
import os
import sys

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DOCS = os.path.join(ROOT, "docs")
SAMPLE = os.path.join(ROOT, "tests", "fixtures", "dlstreamer", "gvametaconvert-sample.json")


def load_schemas():
    store = {}
    for name in ("mgllava-frame.schema.json", "dlstreamer-frame.schema.json"):
        with open(os.path.join(DOCS, name)) as f:
            s = json.load(f)
        jsonschema.Draft7Validator.check_schema(s)
        store[s["$id"]] = s
    return store


def validator(fmt, store=None, fragment=None):
    store = store or load_schemas()
    schema = next(s for s in store.values() if s["$id"].endswith(f"/{fmt}-frame.schema.json"))
    resolver = jsonschema.RefResolver(schema["$id"], schema, store=store)
    if fragment:
        schema = {"$ref": schema["$id"] + "#/definitions/" + fragment}
    return jsonschema.Draft7Validator(schema, resolver=resolver)


def read_lines(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"FAIL line {n} is not JSON: {e}: {line[:200]!r}")
    return out


def jtype(v):
    return {dict: "object", list: "array", str: "string", bool: "boolean",
            type(None): "null"}.get(type(v), "number")


def is_classification(v):
    return isinstance(v, dict) and "label" in v and "model" in v


def layout_errors(msg, sample):
    """Where msg's layout differs from gvametaconvert's (sample)."""
    errs = []
    for k, v in msg.items():
        if k == "mgllava":
            continue
        if k not in sample:
            errs.append(f"top-level key {k!r} is not one gvametaconvert writes")
        elif jtype(v) != jtype(sample[k]):
            errs.append(f"top-level {k!r}: {jtype(v)} where gvametaconvert has {jtype(sample[k])}")
    regions = [o for o in sample["objects"] if "detection" in o]
    frames = [o for o in sample["objects"] if "detection" not in o]
    for o in msg.get("objects", []):
        ref = regions[0] if "detection" in o else frames[0]
        for k, v in o.items():
            if is_classification(v):
                continue  # an attribute: its shape is checked below
            if k not in ref:
                errs.append(f"object key {k!r} is not one gvametaconvert writes")
                continue
            if jtype(v) != jtype(ref[k]):
                errs.append(f"object {k!r}: {jtype(v)} where gvametaconvert has {jtype(ref[k])}")
            if k == "detection":
                for dk, dv in v.items():
                    if dk not in ref[k] or jtype(dv) != jtype(ref[k][dk]):
                        errs.append(f"detection.{dk} differs from gvametaconvert's")
                if set(v["bounding_box"]) != set(ref[k]["bounding_box"]):
                    errs.append("bounding_box keys differ from gvametaconvert's")
        for k, v in o.items():
            if is_classification(v):
                ref_attr = next(a for a in ref.values() if is_classification(a))
                for ak, av in v.items():
                    if ak not in ref_attr or jtype(av) != jtype(ref_attr[ak]):
                        errs.append(f"attribute {k}.{ak} differs from gvametaconvert's")
    return errs


def cmd_validate(fmt, path, min_results=0, timings=False):
    v = validator(fmt)
    msgs = read_lines(path)
    sample = json.load(open(SAMPLE)) if fmt == "dlstreamer" else None
    bad = 0
    n_results = 0
    for i, m in enumerate(msgs):
        errs = [e.message for e in v.iter_errors(m)]
        if sample is not None:
            errs += layout_errors(m, sample)
        results = m["mgllava"]["results"] if fmt == "dlstreamer" else m.get("results", [])
        n_results += len(results)
        for r in results:
            if timings and "timings_ms" not in r:
                errs.append("an answer without timings_ms (timings=true)")
            if not timings and "timings_ms" in r:
                errs.append("an answer with timings_ms (timings=false)")
        if errs:
            bad += 1
            if bad <= 5:
                print(f"FAIL line {i + 1}: " + "; ".join(errs[:5]))
    print(f"{len(msgs)} lines, {n_results} answers, {bad} invalid ({fmt})")
    if n_results < min_results:
        print(f"FAIL fewer than {min_results} answers")
        return 1
    return 1 if bad or not msgs else 0


def expect(cond, what, errs):
    if not cond:
        errs.append(what)


def cmd_emit(fmt, path, timings):
    rc = cmd_validate(fmt, path, 5, timings)
    msgs = read_lines(path)
    errs = []
    expect(len(msgs) == 4, f"4 lines, not {len(msgs)}", errs)
    if len(msgs) != 4:
        print("FAIL " + "; ".join(errs))
        return 1
    m0, m1, m2, late = msgs
    text0 = 'a person \u00e9 "quoted"\n\ttab'
    if fmt == "mgllava":
        expect(m0["pts"] == 0 and m0["frame"] == 0 and m0["width"] == 640, "frame 0 header", errs)
        # a detection without a confidence counts as 1 (docs/detectors.md): most confident first
        expect([o["label"] for o in m0["objects"]] == ["car", "person"], "objects by confidence", errs)
        expect(m0["objects"][0]["w"] == 40 and m0["objects"][0]["h"] == 80, "clipped box", errs)
        expect(m0["results"][0]["text"] == text0, "text escaped and read back", errs)
        expect(m0["source"] == "cam-7" and m0["tags"] == {"site": "lab"}, "source and tags", errs)
        expect(m1["pts"] is None and m1["frame"] == 1 and m1["results"] == [], "frame 1", errs)
        expect([r["text"] for r in m2["results"]] == ["first answer", "second answer"], "two answers", errs)
        expect(late["pts"] is None and late["frame"] is None, "late line has no frame", errs)
        expect([r["source_frame"] for r in late["results"]] == [3, 4], "late answers", errs)
        r = m0["results"][0]
    else:
        expect(m0["timestamp"] == 0 and m0["resolution"] == {"width": 640, "height": 480}, "frame 0 header", errs)
        expect(m0["source"] == "cam-7" and m0["tags"] == {"site": "lab"}, "source and tags", errs)
        p, c, full = m0["objects"]
        expect(p["roi_type"] == "person" and p["region_id"] == 0 and p["id"] == 7, "person: roi_type, region_id, track id", errs)
        expect(p["detection"]["bounding_box"] == {"x_min": 0.1, "y_min": 0.1, "x_max": 0.3, "y_max": 0.3},
               "the detector's normalised box", errs)
        expect(p["detection"]["label_id"] == 3 and p["detection"]["confidence"] == 0.9, "label_id, confidence", errs)
        expect(p["answer"] == {"label": 'a person holding a "red" umbrella', "model": {"name": "mgllava"}},
               "per-object answer as a DL Streamer attribute", errs)
        expect(c["region_id"] == 1 and "id" not in c, "car: region 1, no track", errs)
        bb = c["detection"]["bounding_box"]
        expect(abs(bb["x_min"] - 600 / 640) < 1e-5 and bb["x_max"] == 1 and bb["y_max"] == 1,
               "box from pixels, clipped", errs)
        expect(full["x"] == 0 and full["w"] == 640 and full["mgllava"]["label"] == text0, "full-frame answer", errs)
        expect("objects" not in m1 and "timestamp" not in m1 and m1["mgllava"]["frame"] == 1, "frame 1", errs)
        expect(m2["timestamp"] == 66666666, "timestamp", errs)
        full2 = m2["objects"][0]
        expect(full2["mgllava"]["label"] == "first answer" and full2["mgllava_2"]["label"] == "second answer",
               "two answers as mgllava, mgllava_2", errs)
        expect("timestamp" not in late and late["mgllava"]["frame"] is None, "late line", errs)
        expect([r["source_frame"] for r in late["mgllava"]["results"]] == [3, 4], "late answers", errs)
        r = m0["mgllava"]["results"][0]
    expect(r["latency_ms"] == 123.5 and r["n_tokens"] == 7 and r["source_frame"] == 0, "answer fields", errs)
    if timings:
        expect(r["timings_ms"] == {"preprocess": 1.5, "vision": 20.25, "prefill": 30.125, "decode": 70.0},
               "timings", errs)
    for e in errs:
        print("FAIL " + e)
    if not errs:
        print(f"ok   json_emit lines ({fmt}, timings={timings})")
    return 1 if errs or rc else 0


def cmd_sample():
    store = load_schemas()
    sample = json.load(open(SAMPLE))
    region = validator("dlstreamer", store, "region")
    frame = validator("dlstreamer", store, "frame_classification")
    errs = []
    for o in sample["objects"]:
        v = region if "detection" in o else frame
        if "detection" not in o:
            # our full-frame object is the one named "mgllava": rename the sample's attribute
            o = dict(o)
            k = next(k for k, a in o.items() if is_classification(a))
            o["mgllava"] = o.pop(k)
        errs += [e.message for e in v.iter_errors(o)]
    for e in errs:
        print("FAIL sample: " + e)
    if not errs:
        print("ok   gvametaconvert sample objects validate against the dlstreamer schema")
    return 1 if errs else 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "validate":
        min_results = 0
        timings = "--timings" in argv
        if "--min-results" in argv:
            min_results = int(argv[argv.index("--min-results") + 1])
        return cmd_validate(argv[1], argv[2], min_results, timings)
    if len(argv) == 4 and argv[0] == "emit":
        return cmd_emit(argv[1], argv[2], argv[3] == "1")
    if argv == ["sample"]:
        return cmd_sample()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
