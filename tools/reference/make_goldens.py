#!/usr/bin/python3
"""Golden stage tensors of the tiny MG-LLaVA models for the C engine's tests.

    /usr/bin/python3 tools/reference/make_goldens.py [--models tests/fixtures/models] [--out tests/fixtures/golden]

Layout written under --out (see docs/reference.md and manifest.json):
  manifest.json                    cases, files, tensor shapes, subsampling, tolerances
  scenes/<scene>.safetensors       model-independent stages: image (U8), x768, x336, clip_features,
                                   cnx_stage0..3, fm, boxes768, obj_pooled
  scenes/<scene>.boxes.json        the detector record fed in (original-image pixels)
  <model>/<case>.safetensors       model-dependent stages: fuse_gate, fused, vimg, vobj,
                                   inputs_embeds, prompt_logits (+ step_logits in full cases)
  <model>/<case>.json              prompt ids, image position, greedy ids, text, box counts

The CLIP and ConvNeXt components are shared by the three tiny models (components/clip and
components/clip-bin hold the same tower), so a scene's vision stages are computed once and checked
to be identical under every model. Large tensors are stored as deterministic subsamples: a
subsampled tensor T is stored with int32 index tensors "T.idx<d>" (one per subsampled dim d), and
the stored values are T_full indexed by them (numpy-style outer indexing, one dim at a time).
"""
import argparse
import hashlib
import json
import os
import random
import struct
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgllava_ref as ref  # noqa: E402

MODELS = ["vicuna", "llama3", "phi3", "yi"]
Q1 = "Describe the image."
# one extra question per model (the second is also in prompt_goldens.jsonl)
Q2 = {"vicuna": "How many objects are there?\nAnswer the question using a single number.",
      "llama3": "What colour is the star?",
      "phi3": "Is there a dog in the picture?\nPlease answer the question with yes or no.",
      "yi": "Which object is on the left?\nAnswer the question using a single word or phrase."}

# tolerances: "rel" = max|got - ref| / max(max|ref|, 1e-6) over the stored values (DESIGN.md:
# fp32 CPU relative error <= 1e-4); "abs" = max|got - ref|; "exact" = equal
TOL = {
    "image": {"exact": True},
    "x768": {"abs": 1e-5},        # PIL-exact uint8 resize: one uint8 step is 0.0146 after normalization
    "x336": {"abs": 1e-5},
    "boxes768": {"exact": True},
    "fuse_gate": {"abs": 1e-5},
}
REL = 1e-4


# ---------------------------------------------------------------------------------------------
# Deterministic inputs

def make_image(w, h, seed):
    """A gradient with a few filled shapes (no text: font rendering is version dependent)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([255 * xx / max(w - 1, 1), 255 * yy / max(h - 1, 1),
                     128 + 100 * np.sin((xx + 2 * yy) / 9.0)], axis=-1)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    rng = random.Random(seed)
    for i in range(6):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randrange(4, max(5, w // 3)), y0 + rng.randrange(4, max(5, h // 3))
        col = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        [d.ellipse, d.rectangle, lambda b, fill: d.polygon([(b[0], b[3]), ((b[0] + b[2]) // 2, b[1]),
                                                            (b[2], b[3])], fill=fill)][i % 3](
            [x0, y0, x1, y1], fill=col)
    d.line([(0, h - 1), (w - 1, 0)], fill=(255, 255, 255), width=2)
    return img


def many_boxes(w, h, seed):
    """>100 boxes over six labels: grids per label (few same-label overlaps), near-duplicates
    that NMS removes, boxes partly outside the image and one fully outside the padded square."""
    rng = random.Random(seed)
    labels = {"person": 40, "car": 32, "tree": 26, "dog": 14, "cup": 9, "sign": 6}
    boxes, labs = [], []
    for li, (lab, n) in enumerate(labels.items()):
        for i in range(n):
            bw, bh = rng.randrange(12, 30), rng.randrange(10, 40)
            x1 = (i * 27 + li * 5) % (w - 10) - 8 + rng.randrange(-3, 4)
            y1 = rng.randrange(-12, h - 8)
            boxes.append([x1, y1, x1 + bw, y1 + bh])
            labs.append(lab)
        # a near duplicate of this label's first box: IoU > 0.2, removed by NMS
        b = boxes[-n]
        boxes.append([b[0] + 2, b[1] + 1, b[2] + 2, b[3] + 1])
        labs.append(lab)
    boxes.append([w + 20, 5, w + 60, 30])          # right of the padded square: dropped after scaling
    labs.append("sign")
    boxes.append([-30, h // 2, 10, h // 2 + 20])    # partly left of the image
    labs.append("sign")
    boxes.append([w - 15, -20, w + 25, 25])         # past the right edge (clamped to 768)
    labs.append("sign")
    n = len(boxes)
    # distinct scores (NMS and topk order is unspecified for ties), 4 decimals like typical JSON
    scores = rng.sample(range(2000, 9999), n)
    return {"boxes": boxes, "scores": [s / 10000 for s in scores], "labels": labs}


def scenes():
    """(name, image, detector record, what it exercises)."""
    out = []
    # 768/512 = 1.5 exactly and odd padded coordinates: every box coordinate lands on .5, so
    # torch.round's half-to-even is visible ([101,217,303,295]*1.5 -> [152,326,454,442])
    out.append(("landscape", make_image(512, 120, 1),
                {"boxes": [[101, 21, 303, 99]], "scores": [0.87], "labels": ["star"]},
                "W>H pad (0,196), bicubic upscale, 1 box, round half to even"))
    out.append(("portrait", make_image(90, 160, 2), {"boxes": [], "scores": [], "labels": []},
                "H>W pad (35,0), 0 boxes -> dummy [0,0,0,0] box"))
    out.append(("quirk", make_image(1070, 64, 3), many_boxes(1070, 64, 3),
                "S=1070: int(S*(768/S))==767 so boxes shift +1; bicubic downscale (antialiased); "
                "class-aware NMS and the per-label top-20 cap (>100 survive); boxes partly and fully outside"))
    out.append(("square768", make_image(768, 768, 4),
                {"boxes": [[100, 100, 300, 300], [120, 110, 310, 320], [120, 110, 310, 320],
                           [400, 400, 500, 500], [400, 400, 500, 420], [600, 600, 700, 700],
                           [600, 600, 700, 619], [700, -20, 800, 50]],
                 "scores": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.35],
                 "labels": ["cat", "cat", "dog", "cat", "cat", "cat", "cat", "sign"]},
                "W==H (no canvas), S==768 (PIL copy); NMS: same-label overlap removed, other label "
                "kept, IoU exactly 0.2 removed (float32 IoU > 0.2 double), IoU 0.19 kept; clamping"))
    return out


# ---------------------------------------------------------------------------------------------
# Subsampling

def edge_stride_idx(n, k):
    """First 4, last 4 and every k-th index: catches border handling and varied phases."""
    return sorted(set(range(4)) | set(range(0, n, k)) | set(range(n - 4, n)))


# stride per map side; the first scene keeps stage 3 whole and a finer Fm subsample
STRIDE = {768: 31, 336: 13, 192: 23, 96: 7, 48: 5, 24: 3}
STRIDE_FIRST = {**STRIDE, 192: 17, 24: 1}


def spatial_sub(name, t, store, meta, first=False):
    """Keep all channels of a (C,H,W) map, subsample H and W."""
    k = (STRIDE_FIRST if first else STRIDE)[t.shape[1]]
    idx = edge_stride_idx(t.shape[1], k)
    if idx is None or k == 1:
        store[name] = t.contiguous()
        return
    i = torch.tensor(idx, dtype=torch.int64)
    store[name] = t[:, i][:, :, i].contiguous()
    store[name + ".idx1"] = i.int()
    store[name + ".idx2"] = i.int()
    meta[name] = dict(full_shape=list(t.shape), subsampled_dims=[1, 2])


def row_sub(name, t, rows, store, meta):
    i = torch.tensor(sorted(set(rows)), dtype=torch.int64)
    if len(i) == t.shape[0]:
        store[name] = t.contiguous()
        return
    store[name] = t[i].contiguous()
    store[name + ".idx0"] = i.int()
    meta[name] = dict(full_shape=list(t.shape), subsampled_dims=[0])


def token_rows(n):
    return edge_stride_idx(n, 23) if n > 24 else list(range(n))


# ---------------------------------------------------------------------------------------------
# Stop rules (spec §8.5). The tiny random models never emit EOS or a stop word within
# max_new_tokens, so the stop rule gets its own golden: id sequences and whether generation stops
# after the last id, judged by the official StopWordStoppingCriteria and the EOS id.

def byte_level_char(b):
    """GPT-2 bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    if b in keep:
        return chr(b)
    return chr(256 + [x for x in range(256) if x not in keep].index(b))


def spelled(model, text):
    """`text` as single-byte tokens (SentencePiece byte fallback or byte-level alphabet)."""
    tok = model.tok
    ids = [tok.token_to_id(f"<0x{b:02X}>") for b in text.encode()]
    if any(i is None for i in ids):
        ids = [tok.token_to_id(byte_level_char(b)) for b in text.encode()]
    assert all(i is not None for i in ids), text
    return ids


def stop_goldens(model):
    tok = model.tok
    plain = tok.encode("a red circle", add_special_tokens=False).ids
    nl = spelled(model, "\n")
    seqs = [("plain text", plain), ("eos", plain + [model.eos_id])]
    for w in model.template["STOP_WORDS"]:
        wid = tok.token_to_id(w)
        seqs += [(f"stop word {w} as its token", plain + [wid]),
                 (f"stop word {w} then newlines (\\r/\\n are removed before matching)", plain + [wid] + nl + nl),
                 (f"stop word {w} spelled by byte tokens", plain + spelled(model, w)),
                 (f"stop word {w} then text", plain + [wid] + plain)]
    if model.template_name == "llama3_chat":
        seqs.append(("<|end_of_text|>: in config.eos_token_id but not the tokenizer's eos, so not a stop",
                     plain + [tok.token_to_id("<|end_of_text|>")]))
    out = []
    for what, ids in seqs:
        crit = [ref.StopWordStoppingCriteria(model.hf_tok, w) for w in model.template["STOP_WORDS"]]
        word = any(c(torch.tensor([ids])) for c in crit)
        out.append({"what": what, "ids": ids, "decoded": model.decode(ids, skip_special_tokens=False),
                    "eos": ids[-1] == model.eos_id, "stop_word": bool(word),
                    "stops": ids[-1] == model.eos_id or bool(word)})
    return {"eos_id": model.eos_id, "stop_words": model.template["STOP_WORDS"], "sequences": out}


# ---------------------------------------------------------------------------------------------

def f32(t):
    return t.detach().float().contiguous()


ST_DTYPE = {torch.float32: "F32", torch.uint8: "U8", torch.int32: "I32", torch.int64: "I64"}


def write_st(path, tensors):
    """A standard safetensors file written byte-deterministically: the safetensors library emits
    its JSON header in hash-map order, which changes from run to run. Here the header lists tensors
    by name, data follows in the same order, and the header is space-padded so data starts 64-byte
    aligned. The result is read back with the safetensors library and compared."""
    header, blobs, off = {"__metadata__": {"format": "pt", "generator": "tools/reference/make_goldens.py"}}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        b = t.numpy().tobytes() if t.dim() else t.reshape(1).numpy().tobytes()
        header[name] = {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((-(8 + len(h))) % 64)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    back = load_file(path)
    assert set(back) == set(tensors) and all(torch.equal(back[k], tensors[k]) for k in tensors), path


def shapes_of(store):
    return {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sorted(store.items())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="tests/fixtures/models")
    ap.add_argument("--out", default="tests/fixtures/golden")
    ap.add_argument("--only", default="", help="comma-separated models (e.g. yi): write only their cases and "
                    "stop rules into an existing --out, keeping its scenes and the other models' files")
    a = ap.parse_args()
    only = [m for m in a.only.split(",") if m]
    if any(m not in MODELS for m in only):
        ap.error(f"--only: models are {MODELS}")
    torch.manual_seed(0)
    torch.set_num_threads(1)   # deterministic reduction order across machines
    os.makedirs(os.path.join(a.out, "scenes"), exist_ok=True)

    models = {m: ref.MGLLaVA(os.path.join(a.models, f"tiny-{m}")) for m in MODELS}
    manifest = {
        "generator": "tools/reference/make_goldens.py (tools/reference/mgllava_ref.py)",
        "models_dir": os.path.relpath(a.models, a.out),
        "tolerance": {"default": {"rel": REL}, **TOL,
                      "rel_definition": "max|got-ref| / max(max|ref|, 1e-6) over the stored values",
                      "greedy_ids": "exact", "prompt_ids": "exact"},
        "subsampling": ("a subsampled tensor T is stored with int32 index tensors 'T.idx<d>' for each "
                        "subsampled dim d (listed in subsampled_dims); stored T = full T indexed by them "
                        "one dim at a time"),
        "scenes": {}, "cases": [],
    }

    scene_runs = {}
    for name, img, rec, what in scenes():
        jpath = os.path.join("scenes", f"{name}.boxes.json")
        with open(os.path.join(a.out, jpath), "w") as f:
            json.dump(rec, f)
            f.write("\n")
        runs = {m: models[m].run(img, rec, Q1, generate=False) for m in MODELS}
        r0 = runs[MODELS[0]]
        for m in MODELS[1:]:   # shared components: the model-independent stages must agree exactly
            for k in ("x768", "x336", "clip_features", "cnx_stage0", "cnx_stage1", "cnx_stage2",
                      "cnx_stage3", "fm", "boxes768", "obj_pooled"):
                if not torch.equal(runs[m][k], r0[k]):
                    raise AssertionError(f"{name}: {k} differs between {MODELS[0]} and {m}")
        scene_runs[name] = (img, rec)
        if only:
            continue
        store, meta = {}, {}
        store["image"] = torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8))
        spatial_sub("x768", f32(r0["x768"]), store, meta)
        spatial_sub("x336", f32(r0["x336"]), store, meta)
        store["clip_features"] = f32(r0["clip_features"])
        first = not scene_runs
        for i in range(4):
            spatial_sub(f"cnx_stage{i}", f32(r0[f"cnx_stage{i}"]), store, meta, first)
        spatial_sub("fm", f32(r0["fm"]), store, meta, first)
        store["boxes768"] = f32(r0["boxes768"])
        store["obj_pooled"] = f32(r0["obj_pooled"])
        spath = os.path.join("scenes", f"{name}.safetensors")
        write_st(os.path.join(a.out, spath), store)
        bi = r0["box_info"]
        manifest["scenes"][name] = {
            "file": spath, "boxes": jpath, "exercises": what,
            "image_size": [img.size[0], img.size[1]], "square_side": max(img.size),
            "limit_num": models[MODELS[0]].limit_num,
            "boxes_in": bi["n_input"], "after_nms": bi["n_after_nms"], "after_cap": bi["n_after_cap"],
            "kept": bi["n_kept"], "object_tokens": bi["n_tokens"], "dummy_box": bi["dummy"],
            "kept_labels": bi["labels"], "resized_side": bi["resized_side"], "quirk_767": bi["quirk"],
            "tensors": shapes_of(store), "subsampled": meta,
        }
        print(f"scene {name}: boxes {bi['n_input']} -> nms {bi['n_after_nms']} -> cap {bi['n_after_cap']} "
              f"-> kept {bi['n_kept']} (tokens {bi['n_tokens']})", flush=True)

    scene_names = list(scene_runs)
    if only:
        with open(os.path.join(a.out, "manifest.json")) as f:
            old = json.load(f)
        manifest["scenes"] = old["scenes"]
        manifest["cases"] = [c for c in old["cases"] if c["model"] not in {f"tiny-{m}" for m in only}]
    for m in only or MODELS:
        model = models[m]
        os.makedirs(os.path.join(a.out, m), exist_ok=True)
        cases = [(s, Q1) for s in scene_names] + [("quirk", Q2[m])]
        for ci, (sname, q) in enumerate(cases):
            full = ci == 0                           # one case per model keeps whole tensors
            cname = f"{sname}_q{1 if q == Q1 else 2}"
            img, rec = scene_runs[sname]
            r = model.run(img, rec, q)
            L, pos, n_obj = r["inputs_embeds"].shape[0], r["image_pos"], r["vobj"].shape[0]
            store, meta = {}, {}
            store["fuse_gate"] = f32(r["fuse_gate"]).reshape(1)   # [1]: some readers reject 0-d tensors
            if full:
                store["fused"] = f32(r["fused"])
                store["vimg"] = f32(r["vimg"])
                store["step_logits"] = f32(r["step_logits"])
            else:
                row_sub("fused", f32(r["fused"]), token_rows(576), store, meta)
                row_sub("vimg", f32(r["vimg"]), token_rows(576), store, meta)
            # image rows of inputs_embeds are vimg rows, object rows are vobj rows: subsample them
            rows = (list(range(pos)) + [pos + t for t in token_rows(576)]
                    + [pos + 576 + t for t in token_rows(n_obj)] + list(range(pos + 576 + n_obj, L)))
            row_sub("inputs_embeds", f32(r["inputs_embeds"]), rows, store, meta)
            store["vobj"] = f32(r["vobj"])
            # logits rows: text rows, the image/object boundaries and the last row (first new token)
            lrows = list(range(pos)) + [pos, pos + 575, pos + 576, pos + 575 + n_obj] + \
                list(range(pos + 576 + n_obj, L))
            if not full:
                lrows = [L - 1]
            row_sub("prompt_logits", f32(r["prompt_logits"]), lrows, store, meta)
            base = os.path.join(m, cname)
            write_st(os.path.join(a.out, base + ".safetensors"), store)
            side = {
                "model": f"tiny-{m}", "template": model.template_name, "scene": sname, "question": q,
                "prompt": r["prompt"], "prompt_ids": r["prompt_ids"], "image_pos": pos,
                "image_token_index": ref.IMAGE_TOKEN_INDEX, "bos_id": model.bos_id, "eos_id": model.eos_id,
                "stop_words": model.template["STOP_WORDS"], "max_new_tokens": model.max_new_tokens,
                "n_image_tokens": 576, "n_object_tokens": n_obj, "n_boxes_kept": r["box_info"]["n_kept"],
                "sequence_length": L, "greedy_ids": r["greedy_ids"], "stop_reason": r["stop_reason"],
                "greedy_margins": [round(x, 6) for x in r["greedy_margins"]],
                "text": r["text"], "text_raw": r["text_raw"], "fuse_gate": float(r["fuse_gate"]),
            }
            with open(os.path.join(a.out, base + ".json"), "w") as f:
                json.dump(side, f, indent=1, ensure_ascii=False)
                f.write("\n")
            manifest["cases"].append({
                "name": f"{m}/{cname}", "model": f"tiny-{m}", "scene": sname, "question": q,
                "file": base + ".safetensors", "sidecar": base + ".json", "full": full,
                "tensors": shapes_of(store), "subsampled": meta,
            })
            print(f"{m}/{cname}: L={L} N={n_obj} gate={float(r['fuse_gate']):+.5f} ids={r['greedy_ids']} "
                  f"({r['stop_reason']}, min margin {min(r['greedy_margins']):.4f})", flush=True)

    stops = {}
    if only:
        with open(os.path.join(a.out, "stop_rules.json")) as f:
            stops = json.load(f)
    stops.update({f"tiny-{m}": stop_goldens(models[m]) for m in only or MODELS})
    with open(os.path.join(a.out, "stop_rules.json"), "w") as f:
        json.dump(stops, f, indent=1, ensure_ascii=False)
        f.write("\n")
    manifest["stop_rules"] = "stop_rules.json"

    write_manifest(a.out, manifest)


def write_manifest(out, manifest):
    """manifest.json with a content hash of every other file written, so two runs can be compared
    at a glance."""
    digest = hashlib.sha256()
    for root, _, files in sorted(os.walk(out)):
        for fn in sorted(files):
            if fn != "manifest.json":
                with open(os.path.join(root, fn), "rb") as f:
                    digest.update(fn.encode() + f.read())
    manifest["content_sha256"] = digest.hexdigest()
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("content sha256", digest.hexdigest())

if __name__ == "__main__":
    main()
