#!/usr/bin/python3
"""Golden tensors of MG-LLaVA's video path (spec section 11) on the tiny models, for the C engine.

    /usr/bin/python3 tools/reference/make_video_goldens.py [--models tests/fixtures/models]
                                                           [--out tests/fixtures/golden-video]

The reference follows the official video evaluation (VideoObjectLLaVAProxyEvalDataset with the
decord loader and pad_image_to_square=True, MultiFuseObjectLLaVAModel's video branch):
  - frame sampling: np.linspace(0, n-1, T, dtype=int) over the source frames;
  - per resolution (336 for CLIP, 768 for ConvNeXt, computed independently): x/255, pad to the
    square with the float CLIP mean (centered), NormalizeVideo, pytorchvideo ShortSideScale
    (bilinear F.interpolate, align_corners=False), CenterCropVideo; the real torchvision /
    pytorchvideo transforms are used;
  - per-frame boxes: pad shift, class-aware NMS 0.2, cap when limit_num is exceeded, scale to the
    768 frame, crop, dummy box (the image path's box pipeline, mgllava_ref.process_boxes);
  - the frames go through CLIP, ConvNeXt, the fusion and the projector as one batch of T, RoIAlign
    on each frame's own map and boxes;
  - prompt: INSTRUCTION.format(input="<video>\\n"+question), split at "<video>", chunk 0 encoded
    with tokenizer.encode(chunk) (special tokens on), chunk 1 without;
  - embeddings: [text before, F0, O0, F1, O1, ..., text after]; greedy decoding as for images.

Layout written under --out:
  manifest.json                   clip, cases, tolerances
  clip.safetensors                source frames frame<k> (U8, HWC); per source frame x768_<k>,
                                  x336_<k> (subsampled), boxes768_<k>
  clip.boxes.json                 one detector record per source frame
  frames/frame<k>.png, boxes.json the source frames as files and their boxes as the official video
                                  record {"video", "frames": [...]} (for `mgllava run --video`)
  <model>_<T>f.safetensors        inputs_embeds (rows subsampled), prompt_logits (last row)
  <model>_<T>f.json               frame indices, prompt ids (-201 = the video slot), greedy ids, text
"""
import argparse
import json
import os
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torchvision.transforms import Compose, Lambda
from torchvision.transforms._transforms_video import CenterCropVideo, NormalizeVideo
from pytorchvideo.transforms import ShortSideScale

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mgllava_ref as ref  # noqa: E402
from make_goldens import f32, write_manifest, row_sub, shapes_of, spatial_sub, token_rows, write_st  # noqa: E402

VIDEO_TOKEN = "<video>"
VIDEO_TOKEN_INDEX = -201
N_SOURCE = 10
FRAME_W, FRAME_H = 160, 96
QUESTION = "What happens in the video?"
# (model, frames): llama3 at the official 8; vicuna at the most its 4096-token context holds with
# 16 new tokens; phi3 at 3, the demo model's limit; yi (ChatML, split layout) at 4
CASES = [("llama3", 8), ("vicuna", 7), ("phi3", 3), ("yi", 4)]
REL = 1e-4


class PadVideoToSquare:
    """padding_video (mg_llava/dataset/utils.py): a (C,T,H,W) float clip centered on an S x S
    canvas filled with the float mean per channel, top = (S-H)//2, left = (S-W)//2."""

    def __init__(self, mean):
        self.mean = mean

    def __call__(self, v):
        c, t, h, w = v.shape
        s = max(h, w)
        top, left = (s - h) // 2, (s - w) // 2
        out = torch.zeros(c, t, s, s)
        for k in range(c):
            out[k] = self.mean[k]
        out[:, :, top:top + h, left:left + w] = v
        return out


def video_transform(res):
    """get_video_transform(video_decode_backend='decord', padding=True)."""
    return Compose([Lambda(lambda x: x / 255.0), PadVideoToSquare(ref.CLIP_MEAN),
                    NormalizeVideo(mean=ref.CLIP_MEAN, std=ref.CLIP_STD), ShortSideScale(size=res),
                    CenterCropVideo(res)])


def sample_indices(n, t):
    return np.linspace(0, n - 1, t, dtype=int).tolist()


def make_frames():
    """A short synthetic clip: a gradient background and three shapes that move across it."""
    frames = []
    yy, xx = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float64)
    for k in range(N_SOURCE):
        base = np.stack([255 * xx / (FRAME_W - 1), 255 * yy / (FRAME_H - 1),
                         128 + 90 * np.sin((xx + 2 * yy + 7 * k) / 9.0)], axis=-1)
        img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
        d = ImageDraw.Draw(img)
        d.ellipse([10 + 12 * k, 20, 40 + 12 * k, 50], fill=(220, 30, 30))
        d.rectangle([120 - 8 * k, 50, 150 - 8 * k, 80], fill=(30, 200, 60))
        d.polygon([(60, 90 - 4 * k), (75, 60 - 4 * k), (90, 90 - 4 * k)], fill=(40, 40, 230))
        frames.append(img)
    return frames


def frame_records():
    """One detector record per source frame: mostly one box (the token budget of vicuna's 7-frame
    case), one frame with none (the dummy box), one with an NMS-suppressed duplicate and two labels."""
    recs = []
    rng = random.Random(5)
    for k in range(N_SOURCE):
        if k == 3:
            recs.append({"boxes": [], "scores": [], "labels": []})
            continue
        b = [10 + 12 * k, 20, 40 + 12 * k, 50]
        rec = {"boxes": [b], "scores": [round(rng.uniform(0.3, 0.95), 4)], "labels": ["ball"]}
        if k == 6:
            rec["boxes"] += [[b[0] + 1, b[1] + 1, b[2] + 1, b[3]], [120 - 8 * k, 50, 150 - 8 * k, 80]]
            rec["scores"] += [0.2, 0.91]
            rec["labels"] += ["ball", "box"]
        recs.append(rec)
    return recs


@torch.no_grad()
def run_video(model, frames, records, question):
    """The official video branch on one clip (frames: list of PIL images, records: one per frame)."""
    r = {}
    video = torch.stack([torch.from_numpy(np.array(f.convert("RGB"), dtype=np.uint8)) for f in frames])
    video = video.permute(3, 0, 1, 2)                       # (T,H,W,C) -> (C,T,H,W), as decord's path
    h, w = video.shape[2], video.shape[3]
    aux = video_transform(ref.IMAGE_SIZE_AUX)(video.clone())
    low = video_transform(ref.IMAGE_SIZE_CLIP)(video)
    x768 = aux.permute(1, 0, 2, 3).contiguous()              # video_collate_fn: (C,T,H,W) -> (T,C,H,W)
    x336 = low.permute(1, 0, 2, 3).contiguous()
    r.update(x768=x768, x336=x336)

    boxes = [ref.process_boxes(rec, w, h, model.limit_num, model.object_order)[0] for rec in records]
    r["boxes768"] = boxes

    hs = model.clip(x336, output_hidden_states=True).hidden_states
    fl = hs[-2][:, 1:]
    x = model.convnext.stem(x768)
    stages = []
    for st in model.convnext.stages:
        x = st(x)
        stages.append(x)
    fm = ref.multiscale_map(stages)
    fused, _ = model.fuse(fl, stages[3])
    vimg = model.projector(fused)                          # (T, 576, H)
    vobj = [model.bbox_projector(ref.object_features(fm[j:j + 1], boxes[j])) for j in range(len(frames))]

    prompt = model.template["INSTRUCTION"].format(input=VIDEO_TOKEN + "\n" + question, round=1)
    chunks = prompt.split(VIDEO_TOKEN)
    assert len(chunks) == 2
    enc = [model.hf_tok.encode(chunks[0]), model.hf_tok.encode(chunks[1], add_special_tokens=False)]
    ids = enc[0] + [VIDEO_TOKEN_INDEX] + enc[1]
    pos = len(enc[0])
    emb = model.llm.get_input_embeddings()
    parts = [emb(torch.tensor(enc[0], dtype=torch.long))]
    frame_rows = []
    row = pos
    for j in range(len(frames)):
        frame_rows.append((row, vobj[j].shape[0]))
        parts += [vimg[j], vobj[j]]
        row += vimg.shape[1] + vobj[j].shape[0]
    parts.append(emb(torch.tensor(enc[1], dtype=torch.long)))
    embeds = torch.cat(parts)
    r.update(prompt=prompt, prompt_ids=ids, video_pos=pos, inputs_embeds=embeds, frame_rows=frame_rows,
             n_objects=sum(v.shape[0] for v in vobj))
    r["prompt_logits"] = model.llm(inputs_embeds=embeds[None]).logits[0]
    hf_ids = model.generate_hf(embeds)
    loop_ids, _, reason = model.generate_loop(embeds)
    if hf_ids != loop_ids:
        raise AssertionError(f"HF generate {hf_ids} != greedy loop {loop_ids}")
    r.update(greedy_ids=hf_ids, stop_reason=reason, text=model.decode(hf_ids, skip_special_tokens=True).strip())
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="tests/fixtures/models")
    ap.add_argument("--out", default="tests/fixtures/golden-video")
    ap.add_argument("--only", default="", help="comma-separated models (e.g. yi): write only their cases into an "
                    "existing --out, keeping its clip files and the other cases (make_goldens.py --only)")
    a = ap.parse_args()
    only = [m for m in a.only.split(",") if m]
    if any(m not in dict(CASES) for m in only):
        ap.error(f"--only: models are {[m for m, _ in CASES]}")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    frames, recs = make_frames(), frame_records()
    models = {m: ref.MGLLaVA(os.path.join(a.models, f"tiny-{m}")) for m, _ in CASES if not only or m in only}
    if only:
        with open(os.path.join(a.out, "manifest.json")) as f:
            manifest = json.load(f)
        manifest["cases"] = [c for c in manifest["cases"] if c["model"] not in {f"tiny-{m}" for m in only}]
        write_cases(a, [(m, T) for m, T in CASES if m in only], models, frames, recs, manifest)
        return

    with open(os.path.join(a.out, "clip.boxes.json"), "w") as f:
        json.dump(recs, f)
        f.write("\n")
    # the same clip as files, for `mgllava run --video` (the official video record form of the boxes)
    os.makedirs(os.path.join(a.out, "frames"), exist_ok=True)
    for k, img in enumerate(frames):
        img.save(os.path.join(a.out, "frames", f"frame{k}.png"), optimize=False)
    with open(os.path.join(a.out, "frames", "boxes.json"), "w") as f:
        json.dump({"video": "clip.mp4", "frames": recs}, f)
        f.write("\n")
    # model-independent: every source frame's views and boxes (a clip of all of them)
    m0 = models[CASES[0][0]]
    video = torch.stack([torch.from_numpy(np.array(f, dtype=np.uint8)) for f in frames]).permute(3, 0, 1, 2)
    aux = video_transform(ref.IMAGE_SIZE_AUX)(video.clone()).permute(1, 0, 2, 3)
    low = video_transform(ref.IMAGE_SIZE_CLIP)(video).permute(1, 0, 2, 3)
    store, meta = {}, {}
    for k, img in enumerate(frames):
        store[f"frame{k}"] = torch.from_numpy(np.array(img, dtype=np.uint8))
        spatial_sub(f"x768_{k}", f32(aux[k]), store, meta)
        spatial_sub(f"x336_{k}", f32(low[k]), store, meta)
        store[f"boxes768_{k}"] = f32(ref.process_boxes(recs[k], FRAME_W, FRAME_H, m0.limit_num)[0])
    write_st(os.path.join(a.out, "clip.safetensors"), store)
    manifest = {"generator": "tools/reference/make_video_goldens.py (tools/reference/mgllava_ref.py)",
                "models_dir": os.path.relpath(a.models, a.out),
                "clip": {"file": "clip.safetensors", "boxes": "clip.boxes.json", "n_source_frames": N_SOURCE,
                         "frame_size": [FRAME_W, FRAME_H], "limit_num": m0.limit_num,
                         "tensors": shapes_of(store), "subsampled": meta},
                "tolerance": {"default": {"rel": REL}, "x768": {"abs": 1e-5}, "x336": {"abs": 1e-5},
                              "boxes768": "exact", "prompt_ids": "exact", "greedy_ids": "exact"},
                "cases": []}
    write_cases(a, CASES, models, frames, recs, manifest)


def write_cases(a, cases, models, frames, recs, manifest):
    for m, T in cases:
        model = models[m]
        idx = sample_indices(N_SOURCE, T)
        r = run_video(model, [frames[i] for i in idx], [recs[i] for i in idx], QUESTION)
        L = r["inputs_embeds"].shape[0]
        n_ctx = model.llm.config.max_position_embeddings
        if L + model.max_new_tokens > n_ctx:
            raise AssertionError(f"{m}: {T} frames make {L} tokens, no room for {model.max_new_tokens} in {n_ctx}")
        pos = r["video_pos"]
        rows = list(range(pos))
        for (start, nobj) in r["frame_rows"]:
            rows += [start + t for t in token_rows(576)] + [start + 576 + t for t in range(nobj)]
        rows += list(range(r["frame_rows"][-1][0] + 576 + r["frame_rows"][-1][1], L))
        cs, cm = {}, {}
        row_sub("inputs_embeds", f32(r["inputs_embeds"]), rows, cs, cm)
        row_sub("prompt_logits", f32(r["prompt_logits"]), [L - 1], cs, cm)
        name = f"{m}_{T}f"
        write_st(os.path.join(a.out, name + ".safetensors"), cs)
        side = {"model": f"tiny-{m}", "template": model.template_name, "question": QUESTION, "frames": T,
                "frame_indices": idx, "prompt": r["prompt"], "prompt_ids": r["prompt_ids"],
                "video_pos": pos, "video_token_index": VIDEO_TOKEN_INDEX,
                "frame_rows": [list(x) for x in r["frame_rows"]], "n_object_tokens": r["n_objects"],
                "sequence_length": L, "context": n_ctx, "max_new_tokens": model.max_new_tokens,
                "greedy_ids": r["greedy_ids"], "stop_reason": r["stop_reason"], "text": r["text"]}
        with open(os.path.join(a.out, name + ".json"), "w") as f:
            json.dump(side, f, indent=1, ensure_ascii=False)
            f.write("\n")
        manifest["cases"].append({"name": name, "model": f"tiny-{m}", "frames": T, "file": name + ".safetensors",
                                  "sidecar": name + ".json", "tensors": shapes_of(cs), "subsampled": cm})
        print(f"{name}: frames {idx} L={L} objects={r['n_objects']} ids={r['greedy_ids']} ({r['stop_reason']})",
              flush=True)

    write_manifest(a.out, manifest)

if __name__ == "__main__":
    main()
