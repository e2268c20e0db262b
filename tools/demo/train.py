#!/usr/bin/python3
"""Trains the demo MG-LLaVA on synthetic scenes, on the CPU, and exports it in the official layouts.

The model is a small but complete MG-LLaVA: an HF CLIPVisionModel (336 px, patch 14, 576 tokens;
hidden_states[-2] as the engine takes it), a timm ConvNeXt on the 768 px view, the Conv-Gate fusion
module, object tokens from boxes (RoIAlign on the multi-scale map, mean), the two projectors and an
HF LlamaForCausalLM with a SentencePiece-style BPE tokenizer. The modules are the reference's
(tools/reference/mgllava_ref.py), so the exported files load in the reference and in the C engine
exactly like a released checkpoint (docs/demo-model.md).

Data: scenes from the C renderer (tools/demo/scenes.py), training seed 1 only; every scene is asked
its caption and all of its questions. The image prefix [BOS, "USER: ", image tokens, object tokens]
is the same for every question of a scene (vicuna template, causal attention), so the decoder runs
it once and the items continue from its KV cache in two batches (the caption; the questions).

Boxes go in the truth's reading order (the order the caption names the objects in), with a few
pixels of jitter.

Auxiliary losses (their heads dropped at export) speed up learning: per object (pooled box
features) colour, shape, digit and region; per fused image token the colour and shape of the
object under it and the token's own region; dense colour/shape/digit heads on ConvNeXt stages 1-2;
the region of each object token after two decoder layers; and attention supervision: head 0 of
the first decoder layer, from each object token, attends to the image tokens under its box, each
weighed by the box's share of it (object_attention_loss, --attn-target coverage), so the object
token picks up where it is to a fraction of a token; head 1 attends to the object
token before it (previous_object_loss). Each answer token attends, in head 0 of layer 2, to the
object token it is about (answer_pointers, pointer_loss), and its residual after that layer names
that object's colour, shape, digit and region (answer_value_loss). Optional ordinal supervision
(ordinal_loss, off in the shipped recipe): object tokens name their index, caption tokens the index
of the phrase they write and how many phrases follow. And (--token-digit, on in the shipped
recipe) each object token names its digit at the input of the pointer layer, where the answers
read it.

Captions: a caption weighs --caption-weight questions (15), and the object-only phase asks the
caption too, so the caption's walk over the object tokens starts before the image tokens come in.

The high-resolution branch starts from PyTorch's fan-in initialisation with layer scale 1 (timm's
std-0.02 start with layer scale 0.1 learnt object places and shapes far more slowly), and its
first stages learn the digits on glyph canvases (glyph_canvas): alone for the first part of the
budget (--glyph-phase), then one canvas per step beside the scenes.

Usage: tools/demo/train.py --out models/mgllava-demo [--minutes 50] [--seed 1]
Writes train-log.jsonl beside the model. Deterministic for a given seed and thread count.
--device cuda (one process, --loaders N) trains on a GPU for comparing recipes
(tools/demo/gpu-explore.sh); the shipped model is trained on the CPU.
"""
import argparse
import json
import math
import os
import random
import re
import sys
import time

# One BLAS/OpenMP thread per process (the two processes split the cores); OpenBLAS takes its
# AVX-512/AVX2 kernels only when told (it takes this VM's CPU for a generic one).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
if "OPENBLAS_CORETYPE" not in os.environ:
    flags = open("/proc/cpuinfo").read()
    if all(f in flags for f in (" avx512f", " avx512bw", " avx512vl", " avx512dq")):
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
    elif " avx2" in flags and " fma" in flags:
        os.environ["OPENBLAS_CORETYPE"] = "Haswell"

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools", "tokenizer"))

import mgllava_ref as ref  # noqa: E402
import scenes  # noqa: E402
from sp_bpe import sp_bpe_tokenizer  # noqa: E402

TRAIN_SEED_SCENES = 1  # the renderer seed of the training scenes; evaluation uses seeds >= 90000

CLIP_CFG = dict(hidden_size=96, intermediate_size=384, num_hidden_layers=3, num_attention_heads=4,
                image_size=336, patch_size=14, num_channels=3, layer_norm_eps=1e-5, hidden_act="quick_gelu",
                projection_dim=96)
CNX_DEPTHS = [1, 1, 2, 1]
CNX_DIMS = [16, 48, 64, 128]
LLM_CFG = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=128, intermediate_size=352,
               num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
               rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
               hidden_act="silu", rope_scaling=None, torch_dtype="float32")
TEMPLATE = ref.TEMPLATES["vicuna"]["INSTRUCTION"]
# the renderer's palette (engine/scenes/mgl-scenes.c), for the per-cell training labels
COLOR_RGB = {"red": (220, 40, 40), "orange": (240, 140, 20), "yellow": (235, 215, 30), "green": (40, 180, 60),
             "cyan": (30, 200, 210), "blue": (40, 70, 220), "purple": (130, 50, 200), "magenta": (220, 40, 200)}
MAX_OBJECTS = 6  # the renderer's most objects per scene
REGIONS = ["top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"]


# ---------------------------------------------------------------------------------------------
# tokenizer

def corpus_lines(renderer, n=3000):
    lines = []
    for i in range(n):
        _, truth = renderer.render(TRAIN_SEED_SCENES, i, renderer.still_frame(i))
        for q, a, _ in scenes.items(truth):
            lines.append(TEMPLATE.format(input="\n" + q))
            lines.append(a)
    return lines


def build_tokenizer(lines):
    """The demo's tokenizer: SentencePiece-style BPE learned on the scene texts. 360 trainer pieces
    make every one-word answer one piece ("▁red", "▁orange", "▁center", "▁3"); with 260 a colour
    answer was "▁" then "red" (or "▁o", "rang", "e"), and the colour was decided at a token that
    carries nothing."""
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    return sp_bpe_tokenizer(lines, 360)


# ---------------------------------------------------------------------------------------------
# model

class DemoMGLLaVA(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        from timm.models.convnext import ConvNeXt
        from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM
        self.clip = CLIPVisionModel(CLIPVisionConfig(**CLIP_CFG, attn_implementation="eager"))
        self.cnx = ConvNeXt(in_chans=3, num_classes=0, global_pool="", depths=CNX_DEPTHS, dims=CNX_DIMS,
                            ls_init_value=1e-1, conv_mlp=False, drop_path_rate=0.0)
        D, H, Cm = CLIP_CFG["hidden_size"], LLM_CFG["hidden_size"], sum(CNX_DIMS)
        self.fuse = ref.DualPathFuseModule(D, CNX_DIMS[3])
        self.projector = ref.ProjectorModel(D, H)
        self.bbox_projector = ref.ProjectorModel(Cm, H)
        cfg = dict(LLM_CFG, vocab_size=vocab)
        self.llm = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if k != "architectures"},
                                                attn_implementation="eager"))
        # auxiliary heads (training only)
        nc, ns = len(scenes.COLORS), len(scenes.SHAPES)
        # colour, shape, digit (or none) and region (top left ... bottom right) from the pooled box
        # features: the region one makes the high-resolution branch encode where a box is (from the
        # frame's borders, which its zero padding lets it see), so an object token carries its place
        self.aux_obj = nn.Linear(Cm, nc + ns + 11 + 9)
        # per fused image token: colour and shape of the object under it, and its own region
        self.aux_tok = nn.Linear(D, (nc + 1) + (ns + 1) + 9)
        # dense heads on ConvNeXt stages 1 and 2: colour and shape of the object under each cell
        # (stage 1), shape and digit (stage 2); they give the high-resolution branch a direct signal
        self.aux_s1 = nn.Linear(CNX_DIMS[1], (nc + 1) + (ns + 1) + 10)
        self.aux_s2 = nn.Linear(CNX_DIMS[2], (ns + 1) + 11)
        # the object tokens after two decoder layers name their region (top left ... bottom right)
        self.aux_llm_pos = nn.Linear(LLM_CFG["hidden_size"], 9)
        # the answer tokens after the pointer layer name the pointed object's colour, shape, digit
        # and region (answer_value_loss)
        self.aux_ans = nn.Linear(LLM_CFG["hidden_size"], nc + ns + 11 + 9)
        # ordinals (ordinal_loss): an object token's index among the object tokens; a caption
        # token's phrase index and how many phrases follow it (0, 1, 2 or more)
        self.aux_ord = nn.Linear(LLM_CFG["hidden_size"], MAX_OBJECTS + 3)
        # the object tokens at the pointer layer's input name their digit (or none): where the
        # pointer head reads them (--token-digit); drawn aside, so that the random stream of the
        # initialisation that follows is the same as without it
        with torch.random.fork_rng():
            self.aux_llm_digit = nn.Linear(LLM_CFG["hidden_size"], 11)

    def vision(self, x768, x336, boxes768):
        """Batched vision; boxes768 is a list of (n_i, 4) tensors. Returns vimg (B, 576, H), the list
        of object tokens, the pooled box features and the fused tokens."""
        vm = self.clip.vision_model
        h = vm.pre_layrnorm(vm.embeddings(x336))
        for layer in vm.encoder.layers[:-1]:         # hidden_states[-2], spec §3
            h = layer(h, None, None)[0]
        fl = h[:, 1:]
        x = self.cnx.stem(x768)
        st = []
        for stage in self.cnx.stages:
            x = stage(x)
            st.append(x)
        fused, _ = self.fuse(fl, st[3])
        vimg = self.projector(fused)
        pooled = box_pool(st, boxes768)
        vobj = self.bbox_projector(pooled)
        counts = [b.shape[0] for b in boxes768]
        self.last_stages = st
        return vimg, list(torch.split(vobj, counts)), pooled, fused


def read_exported(folder):
    """The files export() wrote (the official layouts, as the folder's mgllava.json names them) as
    one state dict in the training model's names, and the checkpoint's iteration."""
    from safetensors.torch import load_file
    with open(os.path.join(folder, "mgllava.json")) as fh:
        desc = json.load(fh)
    sd = {"clip." + k: v for k, v in load_file(os.path.join(folder, desc["clip"], "model.safetensors")).items()}
    cnx = torch.load(os.path.join(folder, desc["convnext"], "open_clip_pytorch_model.bin"), map_location="cpu",
                     weights_only=True)
    sd.update({"cnx." + k[len("visual.trunk."):]: v for k, v in cnx.items()})
    ck = torch.load(os.path.join(folder, desc["checkpoint"]), map_location="cpu", weights_only=True)
    for k, v in ck["state_dict"].items():
        sd["fuse." + k[len("fuse_module."):] if k.startswith("fuse_module.") else k] = v
    return sd, int(ck.get("meta", {}).get("iter", 0))


def cnx_dims_of(sd):
    """The ConvNeXt stage widths of a state dict (its stem and downsample weights)."""
    return [int(sd["cnx.stem.0.weight"].shape[0])] + \
        [int(sd[f"cnx.stages.{i}.downsample.1.weight"].shape[0]) for i in range(1, len(CNX_DEPTHS))]


def load_exported(model, sd, folder):
    """Loads read_exported's state dict into the model; the auxiliary heads, which export drops,
    keep their initial weights."""
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith("aux_")]
    # buffers the modules make themselves (CLIP's position ids) may be absent from the files, and
    # the ConvNeXt head (unused: the stages' maps are the features) is not exported
    missing = [k for k in missing if not k.endswith("position_ids") and not k.startswith("cnx.head.")]
    if missing or unexpected:
        raise SystemExit(f"{folder}: the exported model does not match the training model "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")


def sdpa_where_no_maps(model):
    """With PyTorch 2's scaled_dot_product_attention: the CLIP layers and the decoder layers whose
    attention maps no loss reads (all but object_attention_loss's, previous_object_loss's and
    pointer_loss's) attend through it instead of the eager softmax(QK^T)V. The same function to
    float rounding, in fused kernels; the model and its files are unchanged. A no-op on PyTorch 1."""
    if not hasattr(F, "scaled_dot_product_attention"):
        return 0
    from transformers.models.clip.modeling_clip import CLIPSdpaAttention
    from transformers.models.llama.modeling_llama import LlamaSdpaAttention

    class NoMaps(LlamaSdpaAttention):
        def forward(self, *args, **kwargs):
            kwargs["output_attentions"] = False
            return super().forward(*args, **kwargs)

    n = 0
    for layer in model.clip.vision_model.encoder.layers:
        layer.self_attn.__class__ = CLIPSdpaAttention
        n += 1
    read = {ATTN_HEAD[0], PREV_HEAD[0], POINTER_HEAD[0]}
    for i, layer in enumerate(model.llm.model.layers):
        if i not in read:
            layer.self_attn.__class__ = NoMaps
            n += 1
    return n


def roi_axis_weights(lo, hi, F_):
    """RoIAlign (torchvision, aligned=False, sampling_ratio=-1, 56 bins) followed by the mean over the
    bins is a weighted sum over the map whose weights factor into one vector per axis: the sample
    grid is a product grid and bilinear weights are separable. This is that vector for one axis."""
    P = ref.BOX_FEAT_SIZE
    s = F_ / ref.IMAGE_SIZE_AUX
    start = np.float32(lo) * np.float32(s)
    size = max(np.float32(hi) * np.float32(s) - start, np.float32(1.0))
    bin_ = size / P
    g = int(math.ceil(size / P))
    w = np.zeros(F_, dtype=np.float64)
    k = np.arange(P)[:, None] * bin_ + (np.arange(g)[None, :] + 0.5) * bin_ / g
    y = (start + k).reshape(-1).astype(np.float64)
    ok = (y >= -1.0) & (y <= F_)
    y = np.clip(y[ok], 0, None)
    yl = np.floor(y).astype(np.int64)
    top = yl >= F_ - 1
    yl[top] = F_ - 1
    y[top] = yl[top]
    yh = np.where(top, yl, yl + 1)
    ly = y - yl
    np.add.at(w, yl, 1 - ly)
    np.add.at(w, yh, ly)
    return w / (g * P)


_UP = {}


def upsample_matrix(n, m):
    """(m, n) matrix of PyTorch's 1-D linear upsample n -> m, align_corners=False."""
    if (n, m) not in _UP:
        _UP[(n, m)] = F.interpolate(torch.eye(n)[None], size=m, mode="linear", align_corners=False)[0].T.contiguous()
    return _UP[(n, m)]


def box_pool(stages, boxes768):
    """Object features: RoIAlign over the multi-scale map (stage 0 plus the bilinear upsamples of
    stages 1-3, spec §4.4/§6) then the mean, computed as separable weighted sums on each stage's own
    grid (the weights pushed through the upsample). Equal to the reference's roi_align path up to
    float rounding (checked by check_box_pool) and about 50x cheaper to train through."""
    F0, dev = stages[0].shape[-1], stages[0].device
    out = []
    for b, bx in enumerate(boxes768):
        wy = torch.tensor(np.stack([roi_axis_weights(float(r[1]), float(r[3]), F0) for r in bx]), dtype=torch.float32,
                          device=dev)
        wx = torch.tensor(np.stack([roi_axis_weights(float(r[0]), float(r[2]), F0) for r in bx]), dtype=torch.float32,
                          device=dev)
        feats = []
        for st in stages:
            n = st.shape[-1]
            U = upsample_matrix(n, F0).to(dev) if n != F0 else None
            wys, wxs = (wy @ U, wx @ U) if U is not None else (wy, wx)
            feats.append(torch.einsum("ni,cij,nj->nc", wys, st[b], wxs))
        out.append(torch.cat(feats, 1))
    return torch.cat(out)


def check_box_pool(model):
    """The separable pooling equals torchvision roi_align + mean on the multi-scale map."""
    g = torch.Generator().manual_seed(0)
    st = [torch.randn(1, c, 192 >> i, 192 >> i, generator=g) for i, c in enumerate(CNX_DIMS)]
    boxes = torch.tensor([[0, 0, 768, 768], [10, 20, 130, 90], [700, 3, 768, 400], [0, 0, 0, 0], [383, 383, 384, 385]],
                         dtype=torch.float32)
    a = box_pool(st, [boxes])
    fm = ref.multiscale_map(st)
    b = ref.object_features(fm, boxes)
    err = float((a - b).abs().max())
    if err > 1e-4:
        raise AssertionError(f"box_pool differs from roi_align by {err}")
    return err


# ---------------------------------------------------------------------------------------------
# data

def preprocess(px):
    """x768 and x336 exactly as the engine and the reference make them (spec §2.2-2.3)."""
    img = Image.fromarray(px)
    canvas = ref.expand2square(img)
    u8 = np.asarray(canvas.resize((ref.IMAGE_SIZE_AUX, ref.IMAGE_SIZE_AUX), Image.BICUBIC), dtype=np.uint8)
    x = (u8.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(ref.CLIP_MEAN, dtype=np.float32)) / np.array(ref.CLIP_STD, dtype=np.float32)
    x768 = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
    x336 = F.interpolate(x768[None], size=[ref.IMAGE_SIZE_CLIP] * 2, mode="bilinear", align_corners=False)[0]
    return x768, x336


def boxes_to_768(boxes, w, h):
    """Truth boxes (non-overlapping, one per label, so NMS keeps them all) through the spec's
    padding shift and 768 mapping (spec §2.4)."""
    shifted = ref.adjust_padding_boxes(boxes, w, h)
    b768, _, _ = ref.to_768_frame(torch.tensor(shifted, dtype=torch.int64).reshape(-1, 4), ["x"] * len(boxes),
                                  max(w, h))
    return b768


class Sample:
    pass


def at_cells(m, n):
    """A (HEIGHT, WIDTH) frame map read at the centres of an n x n grid over the padded square
    frame (a ConvNeXt stage's cells); -1 on the rows in the padding."""
    side = max(scenes.WIDTH, scenes.HEIGHT)
    dy = (side - scenes.HEIGHT) // 2
    cs = (np.arange(n) + 0.5) * side / n
    ys = np.clip((cs - dy).astype(np.int64), 0, scenes.HEIGHT - 1)
    xs = np.clip(cs.astype(np.int64), 0, scenes.WIDTH - 1)
    out = m[ys][:, xs]
    out[(cs - dy < 0) | (cs - dy >= scenes.HEIGHT)] = -1
    return out


_COVER = None


def token_cover(boxes, n=24):
    """Each truth box's share of every image token's square (the square over the padded frame,
    spec 2.2): (len(boxes), n * n) float32, the fraction of the token's area inside the box. The
    boxes do not overlap. A token the box only partly covers gets its part, so the shares' centroid
    is the box centre to a fraction of a token, where the set of token centres inside the box is a
    token's width coarse."""
    global _COVER
    side = max(scenes.WIDTH, scenes.HEIGHT)
    dy = (side - scenes.HEIGHT) // 2
    if _COVER is None:
        cell = side / n
        lo = np.arange(n)[:, None] * cell

        def overlap(size, off):                     # (n, size): pixel p's share of cell r's side
            p = np.arange(size)[None, :] + off
            return np.clip(np.minimum(lo + cell, p + 1) - np.maximum(lo, p), 0, None) / cell
        _COVER = (overlap(scenes.HEIGHT, dy), overlap(scenes.WIDTH, 0))
    ay, ax = _COVER
    out = np.stack([np.outer(ay[:, y1:y2].sum(1), ax[:, x1:x2].sum(1)).reshape(-1) for x1, y1, x2, y2 in boxes])
    return torch.from_numpy(out.astype(np.float32))


def make_sample(renderer, tok, rng, index, t):
    px, truth = renderer.render(TRAIN_SEED_SCENES, index, t)
    s = Sample()
    s.x768, s.x336 = preprocess(px)
    objs = truth["objects"]
    order = list(range(len(objs)))                  # the truth's reading order (docs/demo-model.md)
    boxes = []
    for k in order:
        x1, y1, x2, y2 = objs[k]["box"]
        j = [rng.randint(-2, 2) for _ in range(4)]  # detector boxes are not pixel-exact
        boxes.append([max(0, x1 + j[0]), max(0, y1 + j[1]), min(scenes.WIDTH, x2 + j[2]),
                      min(scenes.HEIGHT, y2 + j[3])])
    s.boxes768 = boxes_to_768(boxes, scenes.WIDTH, scenes.HEIGHT)
    s.obj_color = torch.tensor([scenes.COLORS.index(objs[k]["color"]) for k in order])
    s.obj_shape = torch.tensor([scenes.SHAPES.index(objs[k]["shape"]) for k in order])
    s.obj_digit = torch.tensor([10 if objs[k]["digit"] is None else objs[k]["digit"] for k in order])
    # the object under each of the 24x24 image tokens (box test at the token centre, padded frame)
    side = max(scenes.WIDTH, scenes.HEIGHT)
    dy = (side - scenes.HEIGHT) // 2
    tc = torch.full((24, 24), len(scenes.COLORS), dtype=torch.long)
    ts = torch.full((24, 24), len(scenes.SHAPES), dtype=torch.long)
    to = torch.full((24, 24), -1, dtype=torch.long)
    tr = torch.full((24, 24), -100, dtype=torch.long)
    cys = [(r + 0.5) * side / 24 - dy for r in range(24)]   # token centres in frame pixels
    cxs = [(c + 0.5) * side / 24 for c in range(24)]
    for r, cy in enumerate(cys):
        if not (0 <= cy < scenes.HEIGHT):
            continue
        for c, cx in enumerate(cxs):
            tr[r, c] = 3 * min(2, int(cy * 3 / scenes.HEIGHT)) + min(2, int(cx * 3 / scenes.WIDTH))
    for k, o in enumerate(objs):
        x1, y1, x2, y2 = o["box"]
        for r, cy in enumerate(cys):
            if not (y1 <= cy < y2):
                continue
            for c, cx in enumerate(cxs):
                if x1 <= cx < x2:
                    tc[r, c] = scenes.COLORS.index(o["color"])
                    ts[r, c] = scenes.SHAPES.index(o["shape"])
                    to[r, c] = k
    s.tok_color, s.tok_shape, s.tok_obj, s.tok_region = tc.flatten(), ts.flatten(), to.flatten(), tr.flatten()
    s.tok_cover = token_cover([objs[k]["box"] for k in order])
    # per-cell labels of ConvNeXt stages 1 (96x96) and 2 (48x48): the object whose pixels (its colour
    # or its digit's ink, inside its box) are at the cell centre; digits only on object cells
    # and the digit's own cells: its ink pixels, widened by 4 px (the glyph is 6x10 px)
    idmap = np.full((scenes.HEIGHT, scenes.WIDTH), -1, dtype=np.int64)
    inkmap = np.full((scenes.HEIGHT, scenes.WIDTH), -1, dtype=np.int64)
    for k, o in enumerate(objs):
        x1, y1, x2, y2 = o["box"]
        sub = px[y1:y2, x1:x2].astype(np.int64)
        rgb = np.array(COLOR_RGB[o["color"]])
        ink = (sub.min(-1) == sub.max(-1)) & ((sub[..., 0] == 0) | (sub[..., 0] == 255))
        mine = (np.abs(sub - rgb).sum(-1) == 0) | ink
        idmap[y1:y2, x1:x2][mine] = k
        if o["digit"] is not None:
            yy, xx = np.nonzero(ink)
            if len(yy):
                inkmap[max(0, y1 + yy.min() - 4):y1 + yy.max() + 5,
                       max(0, x1 + xx.min() - 4):x1 + xx.max() + 5] = o["digit"]
    colors = np.array([scenes.COLORS.index(o["color"]) for o in objs] + [len(scenes.COLORS)])
    shapes = np.array([scenes.SHAPES.index(o["shape"]) for o in objs] + [len(scenes.SHAPES)])
    digits = np.array([10 if o["digit"] is None else o["digit"] for o in objs] + [-100])
    for n, name in ((96, "s1"), (48, "s2")):
        ids = at_cells(idmap, n)
        setattr(s, name + "_color", torch.from_numpy(colors[ids].reshape(-1)))
        setattr(s, name + "_shape", torch.from_numpy(shapes[ids].reshape(-1)))
        setattr(s, name + "_digit", torch.from_numpy(digits[ids].reshape(-1)))
        if name == "s1":
            g = at_cells(inkmap, n)
            s.s1_glyph = torch.from_numpy(np.where(g >= 0, g, -100).reshape(-1))
    s.obj_region = torch.tensor([REGIONS.index(objs[k]["position"]) for k in order])
    # text: prefix [BOS] + "USER: " is shared; each item is "\n{q} ASSISTANT:" + answer + </s>
    chunks = TEMPLATE.format(input=ref.IMAGE_TOKEN + "\n").split(ref.IMAGE_TOKEN)
    s.prefix_ids = [1] + tok.encode(chunks[0], add_special_tokens=False).ids
    s.items = []
    for q, a, cat in scenes.items(truth) + json_items(truth):
        p = TEMPLATE.format(input=ref.IMAGE_TOKEN + "\n" + q).split(ref.IMAGE_TOKEN)[1]
        q_ids = tok.encode(p, add_special_tokens=False).ids
        enc = tok.encode(a, add_special_tokens=False)
        a_ids = enc.ids + [2]
        s.items.append((q_ids, a_ids, cat, answer_pointers(objs, q, a, cat, enc.offsets)))
    return s


# JSON answers (--json-count): the counting question asked for JSON, answered as the object the
# schema {"count": integer} describes, written as the engine's constraint writes it (one space
# after the colon; docs/structured-output.md)
JSON_COUNT_PROMPT = "How many objects are there? Answer in JSON."
JSON_ITEMS = False
# --json-plain W: the plain counting question also answered in JSON, at W times an item's weight
# (W < 1): the free-text answer stays the likelier start ("▁3" against "▁" then "{"), and a
# constraint that rules the free text out finds the JSON continuation learnt for that question
JSON_PLAIN_WEIGHT = 0.0


def json_items(truth):
    """The scene's JSON items (question, answer, "json" or "json_plain"), when JSON_ITEMS is set."""
    if not JSON_ITEMS:
        return []
    a = '{"count": %d}' % len(truth["objects"])
    out = [(JSON_COUNT_PROMPT, a, "json")]
    if JSON_PLAIN_WEIGHT > 0:
        out.append((next(q for q, _, c in scenes.items(truth) if c == "count"), a, "json_plain"))
    return out


_GLYPHS = None


def digit_glyphs():
    """The renderer's 3x5 digit bitmaps (engine/scenes/mgl-scenes.c, k_digits), read from its source
    so that there is one table: (10, 5, 3) bool."""
    global _GLYPHS
    if _GLYPHS is None:
        src = open(scenes.SRC).read()
        body = re.search(r"k_digits\[10\]\[5\]\s*=\s*\{(.*?)\};", src, re.S).group(1)
        rows = [[int(v) for v in m.split(",")] for m in re.findall(r"\{([^{}]*)\}", body)]
        _GLYPHS = np.array([[[(r >> (2 - x)) & 1 for x in range(3)] for r in d] for d in rows], dtype=bool)
    return _GLYPHS


def glyph_canvas(rng, cell=80):
    """A training image for the high-resolution branch's digit reading: a 640x480 frame tiled with
    patches of the scene palette, each carrying one digit drawn exactly as the renderer draws it
    (2 px per glyph cell, black ink on light colours, white on dark) at a random place. Returns x768
    and the stage-1 glyph labels under make_sample's rule (the ink's box widened by 4 px). A scene
    holds about two digits; a canvas holds 48, so the glyphs are learnt from far more examples."""
    W, H = scenes.WIDTH, scenes.HEIGHT
    px = np.zeros((H, W, 3), dtype=np.uint8)
    inkmap = np.full((H, W), -1, dtype=np.int64)
    G = digit_glyphs()
    for y0 in range(0, H, cell):
        for x0 in range(0, W, cell):
            rgb = COLOR_RGB[scenes.COLORS[rng.randrange(len(scenes.COLORS))]]
            px[y0:y0 + cell, x0:x0 + cell] = rgb
            lum = (rgb[0] * 299 + rgb[1] * 587 + rgb[2] * 114) // 1000
            d = rng.randrange(10)
            gx, gy = x0 + rng.randrange(8, cell - 14), y0 + rng.randrange(8, cell - 18)
            ink = np.repeat(np.repeat(G[d], 2, 0), 2, 1)            # (10, 6)
            px[gy:gy + 10, gx:gx + 6][ink] = 0 if lum > 140 else 255
            yy, xx = np.nonzero(ink)
            inkmap[gy + yy.min() - 4:gy + yy.max() + 5, gx + xx.min() - 4:gx + xx.max() + 5] = d
    x768, _ = preprocess(px)
    g = at_cells(inkmap, 96)
    return x768, torch.from_numpy(np.where(g >= 0, g, -100).reshape(-1))


def answer_pointers(objs, q, a, cat, offsets):
    """The object each answer token is about (-1: none), for pointer supervision (pointer_loss).
    A question names its object by colour (colours are distinct in a scene) or, for the colour of a
    shape, by its unique shape; every answer token points at it. A caption token points at the object
    of the phrase its last character is in (the phrases start at the "a" of each "a <colour> <shape>
    <where>", in the objects' reading order); the closing </s> at the last object."""
    n_ans = len(offsets) + 1
    if cat == "caption":
        starts = sorted([0] + [m.start() + 2 for m in re.finditer(", a ", a)] +
                        [m.start() + 5 for m in re.finditer(" and a ", a)])
        if len(starts) != len(objs):
            raise AssertionError(f"caption phrases {len(starts)} != objects {len(objs)}: {a!r}")
        return [max(k for k, st in enumerate(starts) if st <= e - 1) for _, e in offsets] + [len(objs) - 1]
    if cat in ("count", "json", "json_plain"):
        return [-1] * n_ans
    words = q.rstrip("?").split()
    for k, o in enumerate(objs):
        if o["color"] in words:
            return [k] * n_ans
    for k, o in enumerate(objs):
        if o["shape"] in words:
            return [k] * n_ans
    raise AssertionError(f"no object named in {q!r}")


# ---------------------------------------------------------------------------------------------
# training step

ITEM_KINDS = ("caption", "count", "color", "shape", "position", "digit",    # scenes.items' categories
              "json", "json_plain")                                          # json_items'

# what the object-only phase asks by default (--object-phase-items): the questions the object tokens
# answer by themselves, and the caption, whose walk over the object tokens starts there
OBJECT_PHASE_ITEMS = ("count", "color", "shape", "digit", "caption")


def image_loss(model, s, vimg, vobj, objects_only=False, ordinal=False, caption_weight=1.0,
               object_items=OBJECT_PHASE_ITEMS, token_digit=False, attn_coverage=False):
    """Decoder loss of one scene: the prefix once, then its items from the prefix's KV cache in two
    batches (continue_items): the caption, and the questions.
    Each item weighs the same (its tokens' mean), so the one-word answers count as much as the
    caption; caption_weight multiplies the caption's. objects_only (the first phase): the prefix
    leaves the 576 image tokens out and only the object_items are asked (OBJECT_PHASE_ITEMS), so
    the decoder learns to read the object tokens among a few keys instead of ~600 (they keep the
    same distance to the question afterwards).
    Returns the LM loss, the item count, per-category exact counts and the auxiliary decoder losses
    (region of the object tokens, their attention to the image and to the previous object token, and
    the answer pointers; with ordinal, ordinal_loss; with token_digit, the digit of the object
    tokens at the pointer layer's input)."""
    llm = model.llm
    emb = llm.get_input_embeddings()
    dev = vobj.device
    parts = [emb(torch.tensor(s.prefix_ids, device=dev))] + ([] if objects_only else [vimg]) + [vobj]
    prefix = torch.cat(parts)[None]
    out = llm.model(inputs_embeds=prefix, use_cache=True, output_hidden_states=not objects_only or token_digit,
                    output_attentions=True)
    P, N = prefix.shape[1], vobj.shape[0]
    aux = {"prev": previous_object_loss(out.attentions[PREV_HEAD[0]][0, PREV_HEAD[1]], N)}
    # the object tokens at the pointer layer's input (after two decoder layers)
    h2 = out.hidden_states[POINTER_HEAD[0]][0, -N:] if out.hidden_states is not None else None
    if token_digit:
        z = model.aux_llm_digit(h2)
        aux["digit"] = F.cross_entropy(z, s.obj_digit)
        hit = z.argmax(1) == s.obj_digit
        m = s.obj_digit < 10                                # the objects that carry a digit
        aux["digit_ok"] = float(hit.float().mean())
        aux["digit_ok_marked"] = float(hit[m].sum())
        aux["digit_marked"] = float(m.sum())
    if not objects_only:
        aux["pos"] = F.cross_entropy(model.aux_llm_pos(h2), s.obj_region)
        aux["attn"] = object_attention_loss(out.attentions[ATTN_HEAD[0]][0, ATTN_HEAD[1]], s, vimg.shape[0], N,
                                            coverage=attn_coverage)
        if ordinal:
            aux["ord"] = F.cross_entropy(model.aux_ord(h2)[:, :MAX_OBJECTS], torch.arange(N, device=dev))
    legacy = out.past_key_values.to_legacy_cache() if hasattr(out.past_key_values, "to_legacy_cache") \
        else out.past_key_values
    items = [it for it in s.items if not objects_only or it[2] in object_items]
    # the caption runs ~3x longer than a question: it goes alone, so the questions are not padded
    # to its length (the losses are the same; causal attention, padding at the end)
    groups = [g for g in ([it for it in items if it[2] == "caption"], [it for it in items if it[2] != "caption"]) if g]
    loss, ok, ptr_l, ans_l, cap_l = 0.0, [], [], [], []
    for g in groups:
        r = continue_items(model, s, legacy, g, P, N, objects_only, ordinal, caption_weight)
        loss = loss + r[0]
        ok += r[1]
        ptr_l.append(r[2])
        ans_l.append(r[3])
        cap_l.append(r[4])
    # the pointer and value losses: means over all the answer positions of the scene
    n_sel = sum(x[1] for x in ptr_l)
    aux["ptr"] = sum(x[0] * x[1] for x in ptr_l) / max(n_sel, 1)
    aux["ans"] = sum(x[0] * x[1] for x in ans_l) / max(n_sel, 1)
    if ordinal:
        n_cap = sum(x[1] for x in cap_l)
        aux["cap"] = sum(x[0] * x[1] for x in cap_l) / max(n_cap, 1)
    Q = len(items)
    per_cat = {}
    for g_ok, it in zip(ok, [it for g in groups for it in g]):
        c = per_cat.setdefault(it[2], [0, 0])
        c[0] += int(g_ok)
        c[1] += 1
    return loss, Q, per_cat, aux


def continue_items(model, s, legacy, items, P, N, objects_only, ordinal, caption_weight):
    """One batch of a scene's items continued from the prefix's KV cache (legacy form; P keys, the
    last N of them object tokens). Returns the weighted sum of the items' mean token losses, each
    item's teacher-forced exactness, and (loss, positions) of pointer_loss, answer_value_loss and
    ordinal_loss over the batch's answer positions."""
    from transformers import DynamicCache
    llm = model.llm
    emb = llm.get_input_embeddings()
    dev = legacy[0][0].device
    Q = len(items)
    L = max(len(q) + len(a) for q, a, _, _ in items)
    ids = torch.zeros(Q, L, dtype=torch.long)
    tgt = torch.full((Q, L), -100, dtype=torch.long)
    ptr = torch.full((Q, L), -1, dtype=torch.long)
    for i, (q, a, _, pa) in enumerate(items):
        seq = q + a
        ids[i, :len(seq)] = torch.tensor(seq)
        # position j predicts token j+1: targets are the answer tokens
        for j in range(len(q) - 1, len(seq) - 1):
            tgt[i, j] = seq[j + 1]
            ptr[i, j] = pa[j + 1 - len(q)]
    ids, tgt, ptr = ids.to(dev), tgt.to(dev), ptr.to(dev)
    cache = DynamicCache.from_legacy_cache(tuple((k.expand(Q, -1, -1, -1), v.expand(Q, -1, -1, -1))
                                                 for k, v in legacy))
    pos = torch.arange(P, P + L, device=dev)[None].expand(Q, -1)
    res = llm(inputs_embeds=emb(ids), past_key_values=cache, position_ids=pos, use_cache=True,
              output_attentions=True, output_hidden_states=True)
    logits = res.logits
    sel = ptr.ge(0).nonzero(as_tuple=True)        # the answer positions that have an object
    n_sel = len(sel[0])
    ptr_l = (pointer_loss(res.attentions[POINTER_HEAD[0]][:, POINTER_HEAD[1]], ptr, sel, P - N), n_sel)
    ans_l = (answer_value_loss(model, res.hidden_states[POINTER_HEAD[0] + 1], ptr, sel, s, objects_only), n_sel)
    cap_l = (torch.zeros(()), 0)
    if ordinal:
        cap_l = ordinal_loss(model, res.hidden_states[POINTER_HEAD[0]], ptr, items, N)
    tok_loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100,
                               reduction="none").view(Q, L)
    n_tok = (tgt != -100).sum(1).clamp(min=1)
    w = torch.tensor([caption_weight if it[2] == "caption" else JSON_PLAIN_WEIGHT if it[2] == "json_plain" else 1.0
                      for it in items], device=dev)
    loss = (tok_loss.sum(1) / n_tok * w).sum()
    ok = ((logits.argmax(-1) == tgt) | (tgt == -100)).all(dim=1)
    return loss, [bool(x) for x in ok], ptr_l, ans_l, cap_l


# the decoder heads the auxiliary attention losses train: (layer, head)
ATTN_HEAD = (0, 0)
PREV_HEAD = (0, 1)
POINTER_HEAD = (2, 0)


def pointer_loss(att, ptr, sel, first_obj):
    """Pointer supervision: the answer tokens' attention in one head of a middle layer (POINTER_HEAD)
    goes to the object token the token is about (answer_pointers): the question's object, or in a
    caption the object of the phrase being written. The decoder then reads an object's colour,
    shape, place and digit from the right object token (where the auxiliary heads show they are)
    instead of from the ~600 image tokens around it. att: (Q, L, P + L); ptr: (Q, L), -1 for none;
    sel: the (item, position) indices where ptr >= 0."""
    qi, li = sel
    if not len(qi):
        return torch.zeros(())
    p = att[qi, li, first_obj + ptr[qi, li]]
    return -(p + 1e-9).log().mean()


def answer_value_loss(model, h, ptr, sel, s, objects_only):
    """Value supervision, the other half of pointer supervision: after the pointer layer, the
    residual of each answer token names the colour, shape, digit and (once the object tokens know
    it, outside the object-only phase) the region of the object it points at, through a linear head
    (aux_ans). The pointer head's values and output then carry what the answer needs; without
    this the decoder sat at chance on colour and shape questions for hundreds of steps even with the
    attention right. h: (Q, L, H) after the pointer layer; ptr and sel as for pointer_loss."""
    qi, li = sel
    if not len(qi):
        return torch.zeros(())
    o = ptr[qi, li]
    z = model.aux_ans(h[qi, li])
    nc, ns = len(scenes.COLORS), len(scenes.SHAPES)
    loss = (F.cross_entropy(z[:, :nc], s.obj_color[o]) + F.cross_entropy(z[:, nc:nc + ns], s.obj_shape[o]) +
            F.cross_entropy(z[:, nc + ns:nc + ns + 11], s.obj_digit[o]))
    if not objects_only:
        loss = loss + F.cross_entropy(z[:, nc + ns + 11:], s.obj_region[o])
    return loss


def ordinal_loss(model, h, ptr, items, n_obj):
    """Ordinal supervision of the caption walk: at the input of the pointer layer, each caption token
    names the index of the phrase it writes (the object its pointer must reach) and how many phrases
    follow (0, 1, 2 or more: where the caption says "and" and where it ends); the object tokens name
    their own index (image_loss). The pointer head can then find the next object by its index
    instead of through the previous-object chain, and the caption knows where it ends.
    h: (Q, L, H) at the input of the pointer layer. Returns the loss and the caption positions it is
    the mean over."""
    cap = torch.tensor([it[2] == "caption" for it in items], device=ptr.device)
    m = ptr.ge(0) & cap[:, None]
    n = int(m.sum())
    if not n:
        return torch.zeros(()), 0
    j = ptr[m]
    z = model.aux_ord(h[m])
    return F.cross_entropy(z[:, :MAX_OBJECTS], j) + F.cross_entropy(z[:, MAX_OBJECTS:], (n_obj - 1 - j).clamp(max=2)), n


def previous_object_loss(att, n_obj):
    """Each object token attends, in one head of the first layer (PREV_HEAD), to the object token
    before it (the first to BOS): an object token then also carries which object precedes it, a key
    a caption can follow from the object it has just described to the next one."""
    P = att.shape[0]
    rows = att[P - n_obj:]
    keys = torch.tensor([0] + [P - n_obj + k - 1 for k in range(1, n_obj)], device=att.device)
    return -(rows[torch.arange(n_obj, device=att.device), keys] + 1e-9).log().mean()


def object_attention_loss(att, s, n_img, n_obj, coverage=False):
    """Attention supervision: in the first decoder layer, head 0 (ATTN_HEAD) of each object token
    attends to the image tokens under its box (a uniform target over them; cross-entropy with its
    attention row). The object token then carries what those tokens know -- their place in the
    frame -- and the decoder reads an object's position from its object token instead of searching
    ~600 keys. With coverage, the target weighs each image token by the object's share of it
    (token_cover) instead: the attention's mean position is then the object's centre to a fraction of
    a token, which decides the place of an object near a thirds line."""
    P = att.shape[0]
    i0 = P - n_obj - n_img
    rows = att[P - n_obj:, i0:i0 + n_img]          # (n_obj, n_img)
    losses = []
    for k in range(n_obj):
        if coverage:
            w = s.tok_cover[k].to(rows.device)
            if float(w.sum()) > 0:
                losses.append(-(w * (rows[k] + 1e-9).log()).sum() / w.sum())
            continue
        m = s.tok_obj == k
        if bool(m.any()):
            losses.append(-(rows[k][m] + 1e-9).log().mean())
    return torch.stack(losses).mean() if losses else torch.zeros(())


def sincos_positions(emb, grid):
    """2-D sine-cosine initial values for the CLIP patch positions (the class slot keeps its random
    start): position is readable from the first step instead of being learned from nothing."""
    D = emb.shape[1]
    q = D // 4
    om = 1.0 / (100.0 ** (torch.arange(q, dtype=torch.float32) / q))
    r, c = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                          indexing="ij")
    ar, ac = r.reshape(-1, 1) * om, c.reshape(-1, 1) * om
    pe = torch.cat([ar.sin(), ar.cos(), ac.sin(), ac.cos()], 1)
    with torch.no_grad():
        emb[1:, :4 * q] = pe * 0.5


_LOADER = {}


def _loader_init(tok_json):
    from tokenizers import Tokenizer
    torch.set_num_threads(1)
    _LOADER["renderer"] = scenes.Renderer()
    _LOADER["tok"] = Tokenizer.from_str(tok_json)


def _loader_make(job):
    """One scene in a loader process: its own random stream (frame and box jitter), so the data do
    not depend on which loader made it; tensors go back as arrays."""
    index, seed, canvas = job
    rng = random.Random(seed)
    s = make_sample(_LOADER["renderer"], _LOADER["tok"], rng, index, rng.randrange(600))
    if canvas:
        s.canvas_x768, s.canvas_glyph = glyph_canvas(rng)
    return {k: v.numpy() if torch.is_tensor(v) else v for k, v in vars(s).items()}


class Loaders:
    """Scenes made ahead by a pool of processes (--loaders; for a GPU, where one process cannot make
    them as fast as the device trains). Forked before the device is touched."""
    def __init__(self, n, tok, seed, batch, dev, canvases):
        import multiprocessing
        self.pool = multiprocessing.get_context("fork").Pool(n, _loader_init, (tok.to_str(),))
        self.seed, self.batch, self.dev, self.canvases = seed, batch, dev, canvases
        self.pending, self.next = [], 0
        self.ahead = max(4 * n, 2 * batch)

    def _fill(self):
        while len(self.pending) < self.ahead:
            job = (self.next, self.seed * 1_000_003 + self.next, self.next % self.batch < self.canvases)
            self.pending.append(self.pool.apply_async(_loader_make, (job,)))
            self.next += 1

    def take(self):
        out = []
        for _ in range(self.batch):
            self._fill()
            s = Sample()
            for k, v in self.pending.pop(0).get().items():
                if isinstance(v, np.ndarray):
                    v = torch.from_numpy(v)
                    if k != "boxes768":                 # box_pool reads the boxes on the CPU
                        v = v.to(self.dev, non_blocking=True)
                setattr(s, k, v)
            out.append(s)
        return out

    def close(self):
        self.pool.terminate()


def canvases(batch, rng, k):
    """k glyph canvases (x768 stacked, stage-1 labels joined): those the loaders made beside the
    batch's first scenes, or (batch None) made here from rng."""
    if batch is not None:
        return torch.stack([s.canvas_x768 for s in batch[:k]]), torch.cat([s.canvas_glyph for s in batch[:k]])
    cv = [glyph_canvas(rng) for _ in range(k)]
    return torch.stack([c[0] for c in cv]), torch.cat([c[1] for c in cv])


def canvas_loss(model, cx, cg):
    """The stage-1 digit head (aux_s1's digit slice) on glyph canvases: loss and cell accuracy."""
    nc, ns = len(scenes.COLORS), len(scenes.SHAPES)
    y = model.cnx.stages[1](model.cnx.stages[0](model.cnx.stem(cx)))
    z = model.aux_s1(y.permute(0, 2, 3, 1).reshape(-1, y.shape[1]))[:, nc + ns + 2:]
    m = cg >= 0
    return F.cross_entropy(z[m], cg[m]), float((z[m].argmax(1) == cg[m]).float().mean())


def apply_gradients(model, opt, loss, world):
    """Backward, the mean of the gradients over the processes, clipping and the optimizer step."""
    import torch.distributed as dist
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if world > 1:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world
        o = 0
        for g in grads:
            g.copy_(flat[o:o + g.numel()].view_as(g))
            o += g.numel()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def worker(rank, world, a, port):
    import torch.distributed as dist
    global CNX_DIMS
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)                       # identical initial weights on every rank
    rng = random.Random(a.seed * 1000 + rank)       # different scenes on every rank
    renderer = scenes.Renderer()
    t0 = time.time()
    global JSON_ITEMS, JSON_PLAIN_WEIGHT
    JSON_ITEMS = a.json_count
    JSON_PLAIN_WEIGHT = a.json_plain
    base_step = 0
    if a.init:
        # fine-tuning: the model's own tokenizer and stage widths
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(os.path.join(a.init, "llm", "tokenizer.json"))
        init_sd, base_step = read_exported(a.init)
        CNX_DIMS = cnx_dims_of(init_sd)
    else:
        tok = build_tokenizer(corpus_lines(renderer))
        if a.cnx_dims:
            CNX_DIMS = [int(x) for x in a.cnx_dims.split(",")]
    model = DemoMGLLaVA(tok.get_vocab_size())
    sincos_positions(model.clip.vision_model.embeddings.position_embedding.weight, 24)
    n_sdpa = sdpa_where_no_maps(model)
    dev = torch.device(a.device)
    if a.cnx_init == "torch":                       # PyTorch's default (fan-in) initialisation
        for m in model.cnx.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.reset_parameters()
    if a.cnx_ls is not None:
        for n_, p_ in model.cnx.named_parameters():
            if n_.endswith(".gamma"):
                p_.data.fill_(a.cnx_ls)
    if a.init:
        load_exported(model, init_sd, a.init)
        del init_sd
        # the vision path (towers, fusion, projectors) stays as it is: only the decoder learns
        for name in ("clip", "cnx", "fuse", "projector", "bbox_projector"):
            for p_ in getattr(model, name).parameters():
                p_.requires_grad_(False)
    loaders = Loaders(a.loaders, tok, a.seed * 1000 + rank, a.batch, dev, a.glyph_canvases) \
        if a.loaders > 0 else None
    model.to(dev)
    if rank == 0:
        print(f"vocab {tok.get_vocab_size()}, parameters {sum(p.numel() for p in model.parameters())}, "
              f"box-pool check {check_box_pool(model):.1e}, fused attention in {n_sdpa} layers", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and p.requires_grad]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 and p.requires_grad]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.98))
    budget = a.minutes * 60
    warm = 100
    # a fine-tune appends to the folder's fine-tune log (one done record per run)
    log_name = "finetune-log.jsonl" if a.init else "train-log.jsonl"
    log = open(os.path.join(a.out, log_name), "a" if a.init else "w") if rank == 0 else None
    step, n_scenes, glyph_steps, t_start = 0, 0, 0, time.time()
    cats = list(ITEM_KINDS)
    object_items = a.object_phase_items.split(",")
    agg = torch.zeros(2 * len(cats) + 14, dtype=torch.float64)
    # rank 0's own, for the log; *_marked: the digit heads on the objects that carry a digit
    extra = dict(glyph=0.0, s2_digit=0.0, ordinal=0.0, canvas=0.0, token_digit=0.0,
                 head_marked_ok=0.0, head_marked=0.0, token_marked_ok=0.0, token_marked=0.0)
    nc, ns = len(scenes.COLORS), len(scenes.SHAPES)
    while True:
        # rank 0's clock decides for everyone
        tf = (time.time() - t_start) / budget
        frac = torch.tensor([(max(tf, step / a.max_steps) if a.step_schedule else tf) if rank == 0 else 0.0],
                            dtype=torch.float64)
        dist.broadcast(frac, 0)
        frac = float(frac)
        if frac >= 1.0 or step >= a.max_steps:
            break
        lr = a.lr * min(1.0, (step + 1) / warm) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        if frac < a.glyph_phase:
            # the glyph phase: the high-resolution branch's first stages learn the digits on canvases
            loss, acc = canvas_loss(model, *canvases(loaders.take() if loaders else None, rng, a.glyph_canvases))
            apply_gradients(model, opt, loss, world)
            step += 1
            glyph_steps += 1
            extra["canvas"] += acc
            if step % 25 == 0:
                if rank == 0:
                    rec = dict(step=step, minutes=round((time.time() - t_start) / 60, 2), lr=round(lr, 6),
                               glyph_phase={"loss": round(float(loss), 4), "canvas": round(extra["canvas"] / 25, 3)})
                    print(json.dumps(rec), flush=True)
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                extra = dict.fromkeys(extra, 0.0)
            continue
        if glyph_steps and step == glyph_steps:
            extra = dict.fromkeys(extra, 0.0)       # the first main-phase record holds main-phase steps only
        if loaders:
            batch = loaders.take()
        else:
            batch = []
            for k in range(a.batch):
                # scene indices never repeat across ranks and steps
                batch.append(make_sample(renderer, tok, rng, (step * world + rank) * a.batch + k, rng.randrange(600)))
        x768 = torch.stack([s.x768 for s in batch])
        x336 = torch.stack([s.x336 for s in batch])
        with torch.set_grad_enabled(not a.init):
            vimg, vobj, pooled, fused = model.vision(x768, x336, [s.boxes768 for s in batch])
        tot, ntok = 0.0, 0
        dec = {}
        for b, s in enumerate(batch):
            l, n, pc, ax = image_loss(model, s, vimg[b], vobj[b], objects_only=frac < a.object_phase,
                                      ordinal=a.ordinal > 0, caption_weight=a.caption_weight,
                                      object_items=object_items, token_digit=a.token_digit > 0,
                                      attn_coverage=a.attn_target == "coverage")
            tot = tot + l
            for k, v in ax.items():
                dec[k] = dec.get(k, 0.0) + v / len(batch)
            ntok += n
            for k, (c, m) in pc.items():
                agg[2 * cats.index(k)] += c
                agg[2 * cats.index(k) + 1] += m
        lm = tot / ntok
        cat = lambda k: torch.cat([getattr(s, k) for s in batch])
        ao = model.aux_obj(pooled)
        oc, os_, od, orr = cat("obj_color"), cat("obj_shape"), cat("obj_digit"), cat("obj_region")
        aux_o = (F.cross_entropy(ao[:, :nc], oc) + F.cross_entropy(ao[:, nc:nc + ns], os_) +
                 F.cross_entropy(ao[:, nc + ns:nc + ns + 11], od) + F.cross_entropy(ao[:, nc + ns + 11:], orr))
        at = model.aux_tok(fused.reshape(-1, fused.shape[-1]))
        tc, ts = cat("tok_color"), cat("tok_shape")
        aux_t = (F.cross_entropy(at[:, :nc + 1], tc) + F.cross_entropy(at[:, nc + 1:nc + ns + 2], ts) +
                 F.cross_entropy(at[:, nc + ns + 2:], cat("tok_region"), ignore_index=-100))
        s1, s2 = model.last_stages[1], model.last_stages[2]
        a1 = model.aux_s1(s1.permute(0, 2, 3, 1).reshape(-1, s1.shape[1]))
        a2 = model.aux_s2(s2.permute(0, 2, 3, 1).reshape(-1, s2.shape[1]))
        g1 = cat("s1_glyph")
        aux_glyph = F.cross_entropy(a1[g1 >= 0][:, nc + ns + 2:], g1[g1 >= 0]) if bool((g1 >= 0).any()) else 0.0
        aux_d = (F.cross_entropy(a1[:, :nc + 1], cat("s1_color")) +
                 F.cross_entropy(a1[:, nc + 1:nc + ns + 2], cat("s1_shape")) + a.glyph_weight * aux_glyph +
                 F.cross_entropy(a2[:, :ns + 1], cat("s2_shape")) +
                 F.cross_entropy(a2[:, ns + 1:], cat("s2_digit"), ignore_index=-100))
        aux_p = dec.get("pos", torch.zeros(()))
        aux_a = dec.get("attn", torch.zeros(()))
        if a.glyph_canvases:
            aux_canvas, acc = canvas_loss(model, *canvases(batch if loaders else None, rng, a.glyph_canvases))
            extra["canvas"] += acc
            aux_d = aux_d + a.glyph_weight * aux_canvas
        if a.init:
            # fine-tuning: the heads export dropped start afresh, so the losses through them
            # (objects, tokens, dense maps, regions, answer values, digits) would pull the decoder
            # towards random targets; the language loss and the attention losses, which need no
            # head, keep it where it was
            loss = lm + aux_a + dec["ptr"] + 0.5 * dec["prev"]
        else:
            loss = lm + 0.5 * aux_o + 0.5 * aux_t + 0.5 * aux_d + 0.5 * aux_p + aux_a + dec["ptr"] + 0.5 * dec["prev"] + 0.5 * dec["ans"]
        if a.ordinal > 0:
            loss = loss + a.ordinal * (dec.get("ord", 0.0) + dec["cap"])
        if a.token_digit > 0 and not a.init:
            loss = loss + a.token_digit * dec["digit"]
        apply_gradients(model, opt, loss, world)
        step += 1
        n_scenes += a.batch * world
        with torch.no_grad():
            agg[-9] += float((ao[:, :nc].argmax(1) == oc).float().mean())
            agg[-8] += float((ao[:, nc:nc + ns].argmax(1) == os_).float().mean())
            hit = ao[:, nc + ns:nc + ns + 11].argmax(1) == od
            agg[-7] += float(hit.float().mean())
            extra["head_marked_ok"] += float(hit[od < 10].sum())
            extra["head_marked"] += float((od < 10).sum())
            agg[-10] += float((ao[:, nc + ns + 11:].argmax(1) == orr).float().mean())
            m1 = g1 >= 0
            if bool(m1.any()):
                extra["glyph"] += float((a1[m1][:, nc + ns + 2:].argmax(1) == g1[m1]).float().mean())
            d2 = cat("s2_digit")
            m2 = (d2 >= 0) & (d2 < 10)
            if bool(m2.any()):
                extra["s2_digit"] += float((a2[m2][:, ns + 1:].argmax(1) == d2[m2]).float().mean())
            extra["ordinal"] += float(dec.get("ord", 0.0)) + float(dec.get("cap", 0.0))
            extra["token_digit"] += dec.get("digit_ok", 0.0)
            extra["token_marked_ok"] += dec.get("digit_ok_marked", 0.0)
            extra["token_marked"] += dec.get("digit_marked", 0.0)
        agg[-6] += float(aux_d)
        agg[-5] += float(aux_p)
        agg[-11] += float(aux_a)
        agg[-12] += float(dec["ptr"])
        agg[-13] += float(dec["prev"])
        agg[-14] += float(dec["ans"])
        agg[-4] += float(lm)
        agg[-3] += float(aux_o)
        agg[-2] += float(aux_t)
        agg[-1] += 1
        if step % 25 == 0:
            dist.all_reduce(agg)
            if rank == 0:
                k = float(agg[-1])
                kr = k / world                          # rank 0's own steps, over which extra ran
                rec = dict(step=step, scenes=n_scenes, minutes=round((time.time() - t_start) / 60, 2),
                           lr=round(lr, 6), lm=round(float(agg[-4]) / k, 4), aux_obj=round(float(agg[-3]) / k, 4),
                           aux_tok=round(float(agg[-2]) / k, 4), aux_dense=round(float(agg[-6]) / k, 4),
                           aux_llm_pos=round(float(agg[-5]) / k, 4), aux_attn=round(float(agg[-11]) / k, 4),
                           aux_pointer=round(float(agg[-12]) / k, 4), aux_prev=round(float(agg[-13]) / k, 4),
                           aux_answer=round(float(agg[-14]) / k, 4),
                           object_head={"color": round(float(agg[-9]) / k, 3), "shape": round(float(agg[-8]) / k, 3),
                                        "digit": round(float(agg[-7]) / k, 3),
                                        "region": round(float(agg[-10]) / k, 3)},
                           teacher_forced_exact={c: round(float(agg[2 * i] / max(agg[2 * i + 1], 1)), 3)
                                                 for i, c in enumerate(cats)},
                           dense={"glyph": round(extra["glyph"] / kr, 3), "s2_digit": round(extra["s2_digit"] / kr, 3),
                                  "canvas": round(extra["canvas"] / kr, 3),
                                  "token_digit": round(extra["token_digit"] / kr, 3)},
                           digit_marked={"object_head": round(extra["head_marked_ok"] / max(extra["head_marked"], 1), 3),
                                         "token": round(extra["token_marked_ok"] / max(extra["token_marked"], 1), 3)},
                           aux_ordinal=round(extra["ordinal"] / kr, 4))
                print(json.dumps(rec), flush=True)
                log.write(json.dumps(rec) + "\n")
                log.flush()
            agg.zero_()
            extra = dict.fromkeys(extra, 0.0)
    if rank == 0:
        train_min = (time.time() - t_start) / 60
        print(f"trained {step} steps on {n_scenes} scenes in {train_min:.1f} min", flush=True)
        done = dict(done=True, steps=step, glyph_steps=glyph_steps, scenes=n_scenes, train_minutes=round(train_min, 2),
                    total_minutes=round((time.time() - t0) / 60, 2), processes=world, seed=a.seed)
        if a.init:
            done.update(init=a.init, init_iter=base_step, json_count=a.json_count, json_plain=a.json_plain, lr=a.lr)
        log.write(json.dumps(done) + "\n")
        log.close()
        if not a.no_export:
            export(model.cpu(), tok, a.out, base_step + step, a.seed)
    if loaders:
        loaders.close()
    dist.barrier()
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO, "models", "mgllava-demo"))
    ap.add_argument("--minutes", type=float, default=50.0, help="wall-clock training budget")
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=2, help="scenes per optimizer step and process")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--processes", type=int, default=2, help="data-parallel processes (one core each)")
    ap.add_argument("--object-phase", type=float, default=0.24,
                    help="fraction of the budget trained on object tokens only (see image_loss)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda with --processes 1 and --loaders")
    ap.add_argument("--loaders", type=int, default=0,
                    help="processes that make the scenes ahead (0: the training process makes them)")
    ap.add_argument("--step-schedule", action="store_true",
                    help="the learning rate and the phases follow whichever of --max-steps and --minutes "
                         "runs out first (by default --minutes alone)")
    ap.add_argument("--no-export", action="store_true", help="train and log only")
    ap.add_argument("--cnx-dims", default=",".join(map(str, CNX_DIMS)),
                    help="ConvNeXt stage widths (default %(default)s)")
    ap.add_argument("--glyph-weight", type=float, default=1.0, help="weight of the dense digit-glyph loss")
    ap.add_argument("--token-digit", type=float, default=1.0,
                    help="weight of the object tokens' digit head at the pointer layer's input (aux_llm_digit)")
    ap.add_argument("--glyph-canvases", type=int, default=1,
                    help="digit canvases (glyph_canvas) per step for the high-resolution branch")
    ap.add_argument("--glyph-phase", type=float, default=0.08,
                    help="fraction of the budget, first, trained on glyph canvases alone (needs --glyph-canvases)")
    ap.add_argument("--cnx-init", default="torch", choices=["timm", "torch"],
                    help="ConvNeXt weights: timm's (truncated normal, std 0.02) or PyTorch's fan-in default")
    ap.add_argument("--cnx-ls", type=float, default=1.0, help="ConvNeXt layer-scale start (timm's: 0.1)")
    ap.add_argument("--object-phase-items", default=",".join(OBJECT_PHASE_ITEMS),
                    help="the item kinds asked in the object-only phase (OBJECT_PHASE_ITEMS)")
    ap.add_argument("--caption-weight", type=float, default=15.0,
                    help="weight of a caption against one question (each item's loss is its tokens' mean)")
    ap.add_argument("--attn-target", default="coverage", choices=["centre", "coverage"],
                    help="object tokens' attention target over the image tokens: uniform over those whose "
                         "centre is in the box, or each token's covered share (object_attention_loss)")
    ap.add_argument("--ordinal", type=float, default=0.0, help="weight of the ordinal losses (ordinal_loss)")
    ap.add_argument("--json-count", action="store_true",
                    help="also ask every scene's count for JSON (JSON_COUNT_PROMPT; answer {\"count\": N})")
    ap.add_argument("--json-plain", type=float, default=0.0,
                    help="with --json-count: the plain counting question also answered in JSON, at this weight "
                         "(below 1, so that the free-text answer stays the likelier; JSON_PLAIN_WEIGHT)")
    ap.add_argument("--init", default=None,
                    help="fine-tune an exported model folder: its tokenizer and weights; the vision path is "
                         "frozen, there is no glyph or object-only phase, and the log is finetune-log.jsonl")
    a = ap.parse_args()
    if a.init:
        a.glyph_phase, a.object_phase, a.glyph_canvases = 0.0, 0.0, 0
    if not set(a.object_phase_items.split(",")) <= set(ITEM_KINDS):
        ap.error(f"--object-phase-items {a.object_phase_items!r}: the item kinds are {','.join(ITEM_KINDS)}")
    if a.device != "cpu" and a.loaders < 1:
        ap.error(f"--device {a.device} needs --loaders (the loaders move the scenes to the device)")
    os.makedirs(a.out, exist_ok=True)
    import torch.multiprocessing as mp
    port = 29500 + (os.getpid() % 1000)
    mp.spawn(worker, args=(a.processes, a, port), nprocs=a.processes, join=True)


# ---------------------------------------------------------------------------------------------
# export in the official layouts

def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def export(model, tok, out, step, seed):
    from safetensors.torch import save_file
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    os.makedirs(os.path.join(out, "clip"), exist_ok=True)
    os.makedirs(os.path.join(out, "convnext"), exist_ok=True)
    os.makedirs(os.path.join(out, "llm"), exist_ok=True)
    # HF CLIP folder (CLIPVisionModel)
    clip = {k[5:]: v for k, v in sd.items() if k.startswith("clip.")}
    save_file(clip, os.path.join(out, "clip", "model.safetensors"), metadata={"format": "pt"})
    write_json(os.path.join(out, "clip", "config.json"),
               dict(CLIP_CFG, architectures=["CLIPVisionModel"], model_type="clip_vision_model",
                    torch_dtype="float32"))
    # OpenCLIP ConvNeXt (timm trunk under visual.trunk.)
    cnx = {"visual.trunk." + k[4:]: v for k, v in sd.items()
           if k.startswith("cnx.stem.") or k.startswith("cnx.stages.")}
    torch.save(cnx, os.path.join(out, "convnext", "open_clip_pytorch_model.bin"))
    write_json(os.path.join(out, "convnext", "open_clip_config.json"), {
        "model_cfg": {"embed_dim": CNX_DIMS[3], "vision_cfg": {
            "timm_model_name": "convnext_mgllava_demo", "timm_model_pretrained": False, "timm_pool": "",
            "timm_proj": "mlp", "timm_drop": 0.0, "timm_drop_path": 0.0, "image_size": 768}},
        "preprocess_cfg": {"mean": list(ref.CLIP_MEAN), "std": list(ref.CLIP_STD)}})
    # HF LLM folder (config and tokenizer; the weights live in the MG-LLaVA checkpoint)
    tok.save(os.path.join(out, "llm", "tokenizer.json"))
    write_json(os.path.join(out, "llm", "tokenizer_config.json"),
               dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True, add_eos_token=False,
                    legacy=False, tokenizer_class="LlamaTokenizer"))
    write_json(os.path.join(out, "llm", "config.json"), dict(LLM_CFG, vocab_size=tok.get_vocab_size()))
    # MG-LLaVA checkpoint (xtuner/MMEngine style: state_dict under "state_dict")
    keep = ("llm.", "projector.", "bbox_projector.", "fuse_module.")
    ck = {}
    for k, v in sd.items():
        k2 = "fuse_module." + k[5:] if k.startswith("fuse.") else k
        if k2.startswith(keep):
            ck[k2] = v
    name = f"iter_{step}.pth"
    torch.save({"meta": {"iter": step, "seed": seed}, "state_dict": ck}, os.path.join(out, name))
    write_json(os.path.join(out, "mgllava.json"), {
        "mgllava": 1, "name": "MG-LLaVA demo (synthetic scenes)", "template": "vicuna", "checkpoint": name,
        "clip": "clip", "convnext": "convnext", "llm": "llm", "limit_num": 100, "max_new_tokens": 80,
        # trained on boxes in the caption's reading order: detector boxes are put in that order
        "object_order": "reading"})
    print(f"exported to {out}", flush=True)


if __name__ == "__main__":
    main()
