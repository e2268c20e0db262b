#!/usr/bin/python3
"""MG-LLaVA reference in PyTorch (evaluation path), built from the official building blocks.

The law is ../shared/docs/mgllava-model-spec.md (beside the checkout) ("spec" below); section numbers cite it.
Third-party parts are the real libraries: transformers CLIPVisionModel / LlamaForCausalLM /
Phi3ForCausalLM / CLIPImageProcessor, timm ConvNeXt, torchvision roi_align / batched_nms, Pillow.
The MG-LLaVA-specific parts (box pipeline, multi-scale map, Conv-Gate fusion, projectors, sequence
assembly, stop words) follow the spec and the official code it cites.

Everything runs in fp32. The official eval loop runs the model in fp16; its casts
(`.to(self.visual_encoder.dtype)`, `out_box_feat.to(pixel_values.dtype)`, the cast-back after the
Fm upsample, spec §2.3, §4.4, §6.1) are no-ops here because the model dtype is fp32.

Usage as a library:
    m = MGLLaVA("tests/fixtures/models/tiny-vicuna")
    out = m.run(pil_image, {"boxes": [...], "scores": [...], "labels": [...]}, "Describe the image.")
`out` holds every stage tensor (see `MGLLaVA.run`).
"""
import json
import math
import os
import sys
import types
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image

# ---------------------------------------------------------------------------------------------
# Constants (spec §2.1, §8.2)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# expand2square fills with tuple(int(x*255) for x in image_mean): truncation, spec §2.2
PAD_FILL = tuple(int(x * 255) for x in CLIP_MEAN)
assert PAD_FILL == (122, 116, 104)

IMAGE_SIZE_AUX = 768       # ConvNeXt input side, spec §2.1
IMAGE_SIZE_CLIP = 336      # crop_size_raw, spec §2.1
BOX_FEAT_SIZE = 56         # RoIAlign output, spec §6.1
NMS_IOU = 0.2              # spec §2.4 step 2
IMAGE_TOKEN = "<image>"
IMAGE_TOKEN_INDEX = -200

# xtuner/utils/templates.py (spec §8.2); no SYSTEM is used on the eval path
TEMPLATES = {
    "vicuna": dict(INSTRUCTION="USER: {input} ASSISTANT:", STOP_WORDS=[]),
    "phi3_chat": dict(INSTRUCTION="<|user|>{input}<|end|>\n<|assistant|>\n", STOP_WORDS=["<|end|>"]),
    "llama3_chat": dict(INSTRUCTION=("<|start_header_id|>user<|end_header_id|>\n\n{input}<|eot_id|>"
                                     "<|start_header_id|>assistant<|end_header_id|>\n\n"),
                        STOP_WORDS=["<|eot_id|>"]),
    "qwen_chat": dict(INSTRUCTION="<|im_start|>user\n{input}<|im_end|>\n<|im_start|>assistant\n",
                      STOP_WORDS=["<|im_end|>", "<|endoftext|>"]),
}


# ---------------------------------------------------------------------------------------------
# Image preprocessing (spec §2.2, §2.3)

def expand2square(img):
    """xtuner expand2square: a square image is returned as is (no copy, no canvas), spec §2.2."""
    w, h = img.size
    if w == h:
        return img
    s = max(w, h)
    canvas = Image.new(img.mode, (s, s), PAD_FILL)
    canvas.paste(img, (0, (w - h) // 2) if w > h else ((h - w) // 2, 0))
    return canvas


def clip_image_processor():
    """CLIPImageProcessor as MGLLaVAProxyEvalDataset leaves it: shortest_edge and crop both 768
    (spec §2.1), everything else from openai/clip-vit-large-patch14-336's preprocessor config."""
    from transformers import CLIPImageProcessor
    return CLIPImageProcessor(do_resize=True, size={"shortest_edge": IMAGE_SIZE_AUX}, resample=3,
                              do_center_crop=True, crop_size={"height": IMAGE_SIZE_AUX, "width": IMAGE_SIZE_AUX},
                              do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                              image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD), do_convert_rgb=True)


def preprocess_image(img):
    """Returns (canvas, resized768 uint8 HWC, x768 (3,768,768), x336 (3,336,336)).

    X768 is computed by hand (spec §2.3 step 1) and checked bit for bit against transformers'
    CLIPImageProcessor, the official path. X336 is a bilinear *downsample of the normalized X768*
    (spec §2.3 step 2, pitfall 1), not a separate resize of the image."""
    img = img.convert("RGB")   # Image.open(...).convert('RGB'); EXIF orientation is not applied
    canvas = expand2square(img)
    # PIL BICUBIC on uint8 (antialiased when downscaling); PIL returns a copy when S == 768
    resized = canvas.resize((IMAGE_SIZE_AUX, IMAGE_SIZE_AUX), Image.BICUBIC)
    u8 = np.asarray(resized, dtype=np.uint8)
    # transformers rescale: float64 multiply by 1/255, then stored as float32
    x = (u8.astype(np.float64) * (1 / 255)).astype(np.float32)
    # transformers normalize: (x - mean) / std with mean/std as float32 arrays
    x = (x - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    x768 = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    official = clip_image_processor().preprocess(canvas, return_tensors="pt")["pixel_values"][0]
    if not torch.equal(official, x768):
        raise AssertionError("hand-written X768 differs from CLIPImageProcessor")

    x336 = F.interpolate(x768[None], size=[IMAGE_SIZE_CLIP, IMAGE_SIZE_CLIP], mode="bilinear",
                         align_corners=False)[0]
    return canvas, u8, x768, x336


# ---------------------------------------------------------------------------------------------
# Box pipeline (spec §2.4), mirroring mg_llava/dataset/utils.py and mg_llava_proxy_eval_dataset.py

def adjust_padding_boxes(boxes, w, h):
    """Spec §2.4 step 1: shift into the padded square by the same (W-H)//2 as expand2square."""
    out = []
    for b in boxes:
        if w > h:
            d = (w - h) // 2
            out.append((b[0], b[1] + d, b[2], b[3] + d))
        elif h > w:
            d = (h - w) // 2
            out.append((b[0] + d, b[1], b[2] + d, b[3]))
        else:
            out.append(tuple(b))
    return out


def label_ids(labels):
    """Label strings -> ints in order of first appearance.

    Upstream maps through `set(labels)`, whose order is hash-randomized per process; class-aware NMS
    does not depend on the ids (see bbox_nms), so a deterministic mapping is used."""
    ids = {}
    for lab in labels:
        ids.setdefault(lab, len(ids))
    return ids


def bbox_nms(boxes, labels, scores, iou=NMS_IOU):
    """Class-aware NMS, output sorted by descending score (spec §2.4 step 2)."""
    ids = label_ids(labels)
    b = torch.tensor(boxes, dtype=torch.int64).reshape(-1, 4).float()
    s = torch.tensor(scores, dtype=torch.float32)
    lid = torch.tensor([ids[x] for x in labels], dtype=torch.int64)
    keep = torchvision.ops.batched_nms(b, s, lid, iou)
    # batched_nms separates classes by offsetting coordinates (its "coordinate trick"); boxes with
    # coordinates < -1 on both axes could then touch another class. The spec says class-aware, so
    # insist that the result equals plain per-label NMS (the engine implements the latter).
    ref = []
    for k in range(len(ids)):
        idx = torch.nonzero(lid == k).flatten()
        if len(idx):
            ref.append(idx[torchvision.ops.nms(b[idx], s[idx], iou)])
    ref = torch.cat(ref) if ref else torch.zeros(0, dtype=torch.int64)
    ref = ref[s[ref].sort(descending=True)[1]]
    if not torch.equal(keep, ref):
        raise AssertionError("batched_nms differs from per-label NMS on these boxes")
    return b[keep], [labels[i] for i in keep.tolist()], s[keep]


def limit_per_category(boxes, labels, scores, limit_num):
    """Spec §2.4 step 3 (limit_mode 'per_category'): only when more than limit_num boxes survive,
    keep each label's top num_per_category, labels grouped in order of first appearance."""
    if not limit_num or len(scores) <= limit_num:
        return boxes, labels
    if limit_num == 50:
        raise ValueError("limit_num == 50 is undefined upstream (NameError)")
    per_cat = 20 if limit_num > 50 else 5
    groups = OrderedDict()
    for i, lab in enumerate(labels):
        groups.setdefault(lab, []).append(i)
    for lab, idx in groups.items():
        if len(idx) > per_cat:
            _, top = scores[idx].topk(per_cat, largest=True)
            groups[lab] = [idx[i] for i in top.tolist()]
    order = [i for idx in groups.values() for i in idx]
    return torch.stack([boxes[i] for i in order]), [labels[i] for i in order]


def to_768_frame(boxes, labels, side):
    """Spec §2.4 steps 4-5: adjust_short_resize_coordinates + adjust_center_crop_box."""
    scale = IMAGE_SIZE_AUX / side                   # Python double
    # float32 tensor times a Python float: the scalar is rounded to float32 first, then
    # torch.round is round-half-to-even
    b = torch.round(boxes.reshape(-1, 4).float() * scale).int()
    h1 = w1 = int(side * scale)                     # 767 for the quirk sides (spec §2.4 step 4)
    sx = (w1 - IMAGE_SIZE_AUX) // 2                 # -1 in the quirk case
    sy = (h1 - IMAGE_SIZE_AUX) // 2
    out, out_labels = [], []
    for i in range(b.shape[0]):
        x1, y1, x2, y2 = b[i].tolist()
        nx1, ny1 = max(x1 - sx, 0), max(y1 - sy, 0)
        nx2, ny2 = min(x2 - sx, IMAGE_SIZE_AUX), min(y2 - sy, IMAGE_SIZE_AUX)
        if nx2 < 0 or ny2 < 0 or nx1 > IMAGE_SIZE_AUX or ny1 > IMAGE_SIZE_AUX:
            continue
        out.append(torch.tensor([nx1, ny1, nx2, ny2]))
        out_labels.append(labels[i])
    if not out:
        # N >= 1 always: a dummy [0,0,0,0] box, labels [] (spec §2.4 step 5)
        return torch.zeros(1, 4, dtype=torch.float32), [], h1
    return torch.stack(out).float(), out_labels, h1


def reading_order(boxes, labels, w, h):
    """Object order "reading" (an mgllava manifest option, not in the official code, which keeps the
    NMS order): row third of the box centre in the w x h image, then the centre's x, ties in NMS order.
    boxes are in the padded square (adjust_padding_boxes)."""
    dy = (w - h) // 2 if w > h else 0
    keys = []
    for i in range(len(labels)):
        x1, y1, x2, y2 = (float(v) for v in boxes[i].tolist())
        row = min(2, max(0, math.floor(3.0 * ((y1 + y2) / 2.0 - dy) / h)))
        keys.append((row, (x1 + x2) / 2.0, i))
    order = [k[2] for k in sorted(keys)]
    return boxes[order], [labels[i] for i in order]


def process_boxes(record, w, h, limit_num, object_order="score"):
    """Detector record in original-image pixels -> (boxes768 (N,4) f32, info dict)."""
    boxes = [list(map(int, b)) for b in record.get("boxes", [])]
    scores = [float(s) for s in record.get("scores", [])]
    labels = [str(x) for x in record.get("labels", [])]
    if not (len(boxes) == len(scores) == len(labels)):
        raise ValueError("boxes/scores/labels lengths differ")
    side = max(w, h)
    shifted = adjust_padding_boxes(boxes, w, h)      # pad_image_to_square = True in every config
    b, lab, sc = bbox_nms(shifted, labels, scores)
    n_nms = len(sc)
    b, lab = limit_per_category(b, lab, sc, limit_num)
    n_cap = len(lab)
    if object_order == "reading" and n_cap:
        b, lab = reading_order(b, lab, w, h)
    elif object_order != "score" and n_cap:
        raise ValueError(f"object_order {object_order!r}: expected 'score' or 'reading'")
    b768, lab768, h1 = to_768_frame(b, lab, side)
    info = dict(n_input=len(boxes), n_after_nms=n_nms, n_after_cap=n_cap,
                n_kept=len(lab768), n_tokens=int(b768.shape[0]), dummy=len(lab768) == 0,
                labels=lab768, resized_side=h1, quirk=h1 != IMAGE_SIZE_AUX)
    return b768, info


# ---------------------------------------------------------------------------------------------
# Vision encoders (spec §3, §4)

def load_clip(path):
    """HF CLIPVisionModel from the folder as published (CLIPVisionConfig or full CLIPConfig)."""
    from transformers import CLIPVisionModel
    model, info = CLIPVisionModel.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager",
                                                  output_loading_info=True)
    if info["missing_keys"]:
        raise RuntimeError(f"CLIP weights missing: {info['missing_keys']}")
    return model.eval()


class _Inert:
    """Stands in for foreign classes in a checkpoint (MMEngine message-hub objects and the like)."""

    def __init__(self, *a, **k):
        pass

    def __setstate__(self, state):
        pass


class _InertModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert


def load_torch_file(path):
    """torch.load for files that reference classes of packages we do not have (an MMEngine
    checkpoint pickles message-hub objects from mmengine). Missing modules are stubbed with inert
    classes for the duration of the load; only the tensors (['state_dict']) are used, spec §9.3.
    (torch 1.13 ignores a custom pickle_module unless weights_only, hence module stubs.)"""
    stubs = []
    try:
        for _ in range(32):
            try:
                return torch.load(path, map_location="cpu")
            except ModuleNotFoundError as e:
                parts = e.name.split(".")
                for i in range(1, len(parts) + 1):
                    name = ".".join(parts[:i])
                    if name not in sys.modules:
                        sys.modules[name] = _InertModule(name)
                        stubs.append(name)
        raise RuntimeError(f"{path}: too many unknown modules")
    finally:
        for name in stubs:
            del sys.modules[name]


def load_convnext(path):
    """timm ConvNeXt with depths/dims read from the OpenCLIP weights; stem + stages only
    (norm_pre and heads are dropped by MG-LLaVA, spec §4.1)."""
    from timm.models.convnext import ConvNeXt
    f = path
    if os.path.isdir(path):
        st = os.path.join(path, "open_clip_model.safetensors")
        f = st if os.path.exists(st) else os.path.join(path, "open_clip_pytorch_model.bin")
    if f.endswith(".safetensors"):
        from safetensors.torch import load_file
        sd = load_file(f)
    else:
        sd = load_torch_file(f)
    pre = "visual.trunk."
    trunk = {k[len(pre):]: v for k, v in sd.items()
             if k.startswith(pre + "stem.") or k.startswith(pre + "stages.")}
    dims = [trunk["stem.0.weight"].shape[0]]
    depths = []
    for s in range(4):
        nb = len({k.split(".")[3] for k in trunk if k.startswith(f"stages.{s}.blocks.")})
        depths.append(nb)
        if s:
            dims.append(trunk[f"stages.{s}.downsample.1.weight"].shape[0])
    # ls_init_value only sets the initial gamma (overwritten by the weights); LayerNorm eps stays
    # timm's default 1e-6 (spec §4.2)
    net = ConvNeXt(in_chans=3, num_classes=0, global_pool="", depths=depths, dims=dims,
                   ls_init_value=1e-6, conv_mlp=False, drop_path_rate=0.0)
    net.stem.load_state_dict({k[5:]: v.float() for k, v in trunk.items() if k.startswith("stem.")}, strict=True)
    net.stages.load_state_dict({k[7:]: v.float() for k, v in trunk.items() if k.startswith("stages.")},
                               strict=True)
    return net.eval(), depths, dims


def convnext_stages(net, x768):
    """basic_forward (openclip_encoder.py:231-237): stem, then each stage's output."""
    x = net.stem(x768[None])
    outs = []
    for stage in net.stages:
        x = stage(x)
        outs.append(x)
    return outs


def multiscale_map(stages):
    """Fm = concat[s0, up(s1), up(s2), up(s3)] at stage0's size, bilinear align_corners=False
    (spec §4.4)."""
    size = stages[0].shape[-2:]
    cat = [stages[0]] + [F.interpolate(s.float(), size=size, mode="bilinear", align_corners=False)
                         for s in stages[1:]]
    return torch.cat(cat, dim=1)


# ---------------------------------------------------------------------------------------------
# MG-LLaVA modules (spec §5, §7)

class DualPathFuseModule(nn.Module):
    """Conv-Gate fusion (fuse_model.py:629-671, spec §5). forward also returns the gate g before tanh."""

    def __init__(self, low_res_dim, high_res_dim):
        super().__init__()
        self.slow_conv = nn.Conv2d(high_res_dim, high_res_dim, 1)
        self.slow_proj = nn.Conv2d(high_res_dim, low_res_dim, 1)
        self.fast_conv = nn.Conv2d(low_res_dim, low_res_dim, 7, padding=3, groups=low_res_dim)
        self.fast_proj = nn.Conv2d(low_res_dim, low_res_dim, 1)
        self.gate = nn.Sequential(nn.Linear(low_res_dim * 2, low_res_dim // 2), nn.GELU(),
                                  nn.Linear(low_res_dim // 2, 1))

    def forward(self, low_res_feat, high_res_feat):
        b, _, _, _ = high_res_feat.shape
        d = low_res_feat.shape[2]
        high = self.slow_proj(F.gelu(self.slow_conv(high_res_feat)))
        high = high.view(b, d, -1).transpose(1, 2)
        n = int(math.sqrt(low_res_feat.shape[1]))
        low = low_res_feat.transpose(1, 2).reshape(b, d, n, n)
        low = low + self.fast_proj(F.gelu(self.fast_conv(low)))
        low = low.reshape(b, d, n * n).transpose(1, 2)
        # one scalar per image, squashed with tanh (not sigmoid), spec §5
        gate = self.gate(torch.cat([low, high], -1).mean(1)).unsqueeze(1)
        return low + high * gate.tanh(), gate


class ProjectorModel(nn.Module):
    """xtuner ProjectorModel, depth 2: Linear, GELU (exact erf, ACT2FN['gelu']), Linear (spec §7)."""

    def __init__(self, d_in, d_out):
        super().__init__()
        self.model = nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))

    def forward(self, x):
        return self.model(x)


def load_submodule(module, sd, prefix):
    sub = {k[len(prefix):]: v.float() for k, v in sd.items() if k.startswith(prefix)}
    module.load_state_dict(sub, strict=True)   # unlike upstream strict=False: a bad load is an error
    return module.eval()


def object_features(fm, boxes768):
    """align_box (fuse_model.py:241-259, spec §6): RoIAlign 56x56 on Fm, aligned=False,
    sampling_ratio=-1, spatial_scale = Fm side / 768, then mean over the bins."""
    out = torchvision.ops.roi_align(fm, [boxes768.float()], output_size=BOX_FEAT_SIZE,
                                    spatial_scale=fm.shape[2] / IMAGE_SIZE_AUX, sampling_ratio=-1,
                                    aligned=False)
    return out.mean(dim=(2, 3))


# ---------------------------------------------------------------------------------------------
# Text side (spec §8)

class StopWordStoppingCriteria:
    """xtuner/utils/stop_criteria.py: decode every generated id (special tokens kept), drop \\r and
    \\n, stop when the text ends with the stop word (spec §8.5)."""

    def __init__(self, tokenizer, stop_word):
        self.tokenizer = tokenizer
        self.stop_word = stop_word

    def __call__(self, input_ids, *args, **kwargs):
        text = self.tokenizer.decode(input_ids[0]).replace("\r", "").replace("\n", "")
        return text[-len(self.stop_word):] == self.stop_word


class MGLLaVA:
    def __init__(self, model_dir):
        from tokenizers import Tokenizer
        from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM, Phi3ForCausalLM

        self.dir = model_dir
        with open(os.path.join(model_dir, "mgllava.json")) as f:
            self.manifest = json.load(f)
        man = self.manifest
        rel = lambda p: p if os.path.isabs(p) else os.path.join(model_dir, p)
        self.template_name = man["template"]
        self.template = TEMPLATES[self.template_name]
        self.limit_num = man.get("limit_num") or None
        self.object_order = man.get("object_order", "score")
        if self.object_order not in ("score", "reading"):
            raise ValueError(f"mgllava.json: object_order {self.object_order!r}: expected 'score' or 'reading'")
        self.max_new_tokens = int(man.get("max_new_tokens", 100))
        llm_weights = man.get("llm_weights", "checkpoint")
        if llm_weights not in ("checkpoint", "llm"):
            raise ValueError(f"mgllava.json: llm_weights {llm_weights!r}: expected 'checkpoint' or 'llm'")

        self.clip = load_clip(rel(man["clip"]))
        self.convnext, self.cnx_depths, self.cnx_dims = load_convnext(rel(man["convnext"]))

        ckpt = load_torch_file(rel(man["checkpoint"]))
        sd = ckpt["state_dict"] if isinstance(ckpt, dict) and "state_dict" in ckpt else ckpt

        llm_dir = rel(man["llm"])
        cfg = AutoConfig.from_pretrained(llm_dir)
        # Phi3Config defaults pad_token_id to 32000, out of range for a tiny vocab; padding_idx only
        # affects training (gradient masking), never the forward pass
        if cfg.pad_token_id is not None and cfg.pad_token_id >= cfg.vocab_size:
            cfg.pad_token_id = None
        cls = {"llama": LlamaForCausalLM, "phi3": Phi3ForCausalLM}[cfg.model_type]
        llm_sd = {k[4:]: v.float() for k, v in sd.items() if k.startswith("llm.")}
        if llm_weights == "llm":
            # the split layout of the Yi-34B configs: the LLM from its own HF folder, the rest from a
            # checkpoint without llm.* (a checkpoint that has them would be ambiguous)
            if llm_sd:
                raise ValueError("llm_weights = 'llm' but the checkpoint holds llm.* tensors")
            self.llm = cls.from_pretrained(llm_dir, config=cfg, attn_implementation="eager",
                                           torch_dtype=torch.float32)
        else:
            self.llm = cls._from_config(cfg, attn_implementation="eager", torch_dtype=torch.float32)
            missing, unexpected = self.llm.load_state_dict(llm_sd, strict=False)
            if missing or unexpected:
                raise RuntimeError(f"LLM load: missing {missing}, unexpected {unexpected}")
        self.llm.eval()
        self.hidden = cfg.hidden_size

        D = self.clip.config.hidden_size
        self.fuse = load_submodule(DualPathFuseModule(D, self.cnx_dims[3]), sd, "fuse_module.")
        self.projector = load_submodule(ProjectorModel(D, self.hidden), sd, "projector.")
        self.bbox_projector = load_submodule(ProjectorModel(sum(self.cnx_dims), self.hidden), sd, "bbox_projector.")

        # prompt ids with HF tokenizers directly (as the C engine does); the transformers tokenizer
        # (AutoTokenizer, what xtuner uses) is used for decoding and cross-checked on encoding
        self.hf_tok = AutoTokenizer.from_pretrained(llm_dir)
        # a folder with only tokenizer.model: AutoTokenizer's conversion is the tokenizer
        tj = os.path.join(llm_dir, "tokenizer.json")
        self.tok = Tokenizer.from_file(tj) if os.path.exists(tj) else self.hf_tok.backend_tokenizer
        self.bos_id = self.hf_tok.bos_token_id
        # eval GenerationConfig uses tokenizer.eos_token_id only (spec §8.5), not config.eos_token_id
        self.eos_id = self.hf_tok.eos_token_id
        self.pad_id = self.hf_tok.pad_token_id if self.hf_tok.pad_token_id is not None else self.eos_id

    # --- text -----------------------------------------------------------------------------------
    def prompt_ids(self, question):
        """Spec §8.3: INSTRUCTION with input "<image>\\n"+question, split at <image>, chunks encoded
        separately without special tokens, BOS prepended explicitly."""
        prompt = self.template["INSTRUCTION"].format(input=IMAGE_TOKEN + "\n" + question, round=1)
        chunks = prompt.split(IMAGE_TOKEN)
        assert len(chunks) == 2
        enc = [self.tok.encode(c, add_special_tokens=False).ids for c in chunks]
        for c, e in zip(chunks, enc):
            if self.hf_tok.encode(c, add_special_tokens=False) != e:
                raise AssertionError(f"tokenizers and transformers disagree on {c!r}")
        ids = [self.bos_id] + enc[0] + [IMAGE_TOKEN_INDEX] + enc[1]
        return prompt, ids

    def decode(self, ids, skip_special_tokens=True):
        return self.hf_tok.decode(ids, skip_special_tokens=skip_special_tokens)

    # --- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def generate_hf(self, embeds):
        """The official call (xtuner llava.py:364-378 with fuse_model.py:262-280's config)."""
        from transformers import GenerationConfig, StoppingCriteriaList
        gen = GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False,
                               eos_token_id=self.eos_id, pad_token_id=self.pad_id)
        stop = StoppingCriteriaList([StopWordStoppingCriteria(self.hf_tok, w) for w in self.template["STOP_WORDS"]])
        out = self.llm.generate(inputs_embeds=embeds[None], generation_config=gen, bos_token_id=self.bos_id,
                                stopping_criteria=stop)
        return out[0].tolist()

    @torch.no_grad()
    def generate_loop(self, embeds):
        """The same greedy decode by hand over forward() with the KV cache, keeping every step's
        logits. Stops after EOS, after a stop word, or at max_new_tokens (the token that triggers a
        stop is part of the output, as in HF)."""
        out = self.llm(inputs_embeds=embeds[None], use_cache=True)
        past, logits = out.past_key_values, out.logits[0, -1]
        ids, step_logits, L = [], [], embeds.shape[0]
        for t in range(self.max_new_tokens):
            step_logits.append(logits.clone())
            nxt = int(torch.argmax(logits))
            ids.append(nxt)
            if nxt == self.eos_id:
                reason = "eos"
                break
            text = self.decode(ids, skip_special_tokens=False).replace("\r", "").replace("\n", "")
            if any(text.endswith(w) for w in self.template["STOP_WORDS"]):
                reason = "stop_word"
                break
            out = self.llm(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True,
                           position_ids=torch.tensor([[L + t]]))
            past, logits = out.past_key_values, out.logits[0, -1]
        else:
            reason = "max_new_tokens"
        return ids, torch.stack(step_logits), reason

    # --- whole model ----------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, image, boxes_record, question, generate=True):
        r = {}
        w, h = image.size
        canvas, resized, x768, x336 = preprocess_image(image)
        r.update(resized768=resized, x768=x768, x336=x336)

        b768, binfo = process_boxes(boxes_record, w, h, self.limit_num, self.object_order)
        r.update(boxes768=b768, box_info=binfo)

        # spec §3: hidden_states[-2] (after all but the last layer, no post_layernorm), CLS dropped
        hs = self.clip(x336[None], output_hidden_states=True).hidden_states
        fl = hs[-2][:, 1:]
        r["clip_features"] = fl[0]

        stages = convnext_stages(self.convnext, x768)
        for i, s in enumerate(stages):
            r[f"cnx_stage{i}"] = s[0]
        fm = multiscale_map(stages)
        r["fm"] = fm[0]

        fused, gate = self.fuse(fl, stages[3])           # spec §5: fusion uses stage 3 (last_feat)
        r.update(fuse_gate=gate.reshape(()), fused=fused[0])
        vimg = self.projector(fused)[0]
        r["vimg"] = vimg

        pooled = object_features(fm, b768)
        vobj = self.bbox_projector(pooled)
        r.update(obj_pooled=pooled, vobj=vobj)

        prompt, ids = self.prompt_ids(question)
        pos = ids.index(IMAGE_TOKEN_INDEX)
        emb = self.llm.get_input_embeddings()
        # spec §8.4: [E(bos, prefix), Vimg (576), Vobj (N), E(suffix)], plain consecutive positions
        embeds = torch.cat([emb(torch.tensor(ids[:pos])), vimg, vobj, emb(torch.tensor(ids[pos + 1:]))])
        r.update(prompt=prompt, prompt_ids=ids, image_pos=pos, inputs_embeds=embeds)
        r["prompt_logits"] = self.llm(inputs_embeds=embeds[None]).logits[0]

        if generate:
            hf_ids = self.generate_hf(embeds)
            ids_loop, step_logits, reason = self.generate_loop(embeds)
            if hf_ids != ids_loop:
                raise AssertionError(f"HF generate {hf_ids} != greedy loop {ids_loop}")
            if not torch.allclose(step_logits[0], r["prompt_logits"][-1], rtol=1e-5, atol=1e-5):
                raise AssertionError("first decode step logits differ from the prompt forward")
            top2 = step_logits.topk(2, dim=-1).values
            r.update(greedy_ids=hf_ids, step_logits=step_logits, stop_reason=reason,
                     greedy_margins=(top2[:, 0] - top2[:, 1]).tolist(),
                     text=self.decode(hf_ids, skip_special_tokens=True).strip(),
                     text_raw=self.decode(hf_ids, skip_special_tokens=False))
        return r


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="Run the MG-LLaVA reference on one image")
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--boxes", help="detector record JSON {boxes, scores, labels}")
    ap.add_argument("--prompt", default="Describe the image.")
    a = ap.parse_args()
    rec = json.load(open(a.boxes)) if a.boxes else {"boxes": [], "scores": [], "labels": []}
    res = MGLLaVA(a.model).run(Image.open(a.image), rec, a.prompt)
    print(json.dumps({"text": res["text"], "token_ids": res["greedy_ids"],
                      "n_prompt_tokens": int(res["inputs_embeds"].shape[0]),
                      "n_objects": int(res["boxes768"].shape[0]), "stop_reason": res["stop_reason"]}))
