#!/usr/bin/python3
"""Independent re-derivations of the reference's stages from the spec's formulas.

mgllava_ref.py uses the official libraries; this script recomputes the same stages from the
formulas in ../shared/docs/mgllava-model-spec.md (beside the checkout) with plain tensor/numpy code (the way the C
engine will) and checks that both agree. It catches a library doing something other than what the
spec says (or the spec being misread), which the goldens alone cannot.

    /usr/bin/python3 tools/reference/check_reference.py [--models tests/fixtures/models]
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_goldens as mg  # noqa: E402
import mgllava_ref as ref  # noqa: E402


def check(name, got, want, tol):
    got, want = torch.as_tensor(got).double(), torch.as_tensor(want).double()
    assert got.shape == want.shape, (name, got.shape, want.shape)
    err = float((got - want).abs().max()) / max(float(want.abs().max()), 1e-6) if want.numel() else 0.0
    status = "ok" if err <= tol else "FAIL"
    print(f"  {status:4} {name:40} rel err {err:.2e} (tol {tol:.0e})")
    if err > tol:
        raise SystemExit(f"{name}: {err} > {tol}")


# --- §2.3 ------------------------------------------------------------------------------------
def src_index(n, out):
    """PyTorch's bilinear (align_corners=False) source index and weight, as measured on this
    torch's CPU kernel: scale = float32(n)/float32(out); src = scale*(dst+0.5) - 0.5 evaluated in
    double from that float scale, clamped at 0; i0 = floor(src); lambda1 = float32(src - i0),
    lambda0 = 1 - lambda1. Computing src in float32 instead moves the 768->336 weights by up to
    3e-5 (X336 by up to ~1e-4); computing the scale in double moves them by 3.4e-5."""
    scale = np.float64(np.float32(n) / np.float32(out))
    src = np.maximum(scale * (np.arange(out) + 0.5) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(int), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    w1 = torch.tensor((src - i0).astype(np.float32), dtype=torch.float32)
    return i0, i1, w1


def bilinear(x, out):
    """F.interpolate bilinear, align_corners=False, no antialias (spec §2.3 step 2, §4.4)."""
    i0, i1, w1 = src_index(x.shape[-1], out)
    w0 = 1 - w1
    a = x[:, i0][:, :, i0] * w0[None, None] + x[:, i0][:, :, i1] * w1[None, None]
    b = x[:, i1][:, :, i0] * w0[None, None] + x[:, i1][:, :, i1] * w1[None, None]
    return a * w0[None, :, None] + b * w1[None, :, None]


# --- §2.4 ------------------------------------------------------------------------------------
def boxes_by_spec(rec, w, h, limit_num):
    """Plain-Python box pipeline: no torch, no torchvision."""
    s_ = max(w, h)
    b = [list(map(int, x)) for x in rec["boxes"]]
    d = abs(w - h) // 2
    b = [[x[0], x[1] + d, x[2], x[3] + d] if w > h else [x[0] + d, x[1], x[2] + d, x[3]] if h > w else x for x in b]
    sc = np.array(rec["scores"], dtype=np.float32)
    labels = rec["labels"]
    order = sorted(range(len(b)), key=lambda i: -sc[i])
    keep = []
    for i in order:   # class-aware greedy NMS; IoU in float32 compared with 0.2 as a double
        ok = True
        for j in keep:
            if labels[j] != labels[i]:
                continue
            bi, bj = np.array(b[i], np.float32), np.array(b[j], np.float32)
            iw = max(np.float32(0), min(bi[2], bj[2]) - max(bi[0], bj[0]))
            ih = max(np.float32(0), min(bi[3], bj[3]) - max(bi[1], bj[1]))
            inter = np.float32(iw * ih)
            ai = np.float32((bi[2] - bi[0]) * (bi[3] - bi[1]))
            aj = np.float32((bj[2] - bj[0]) * (bj[3] - bj[1]))
            iou = np.float32(inter / np.float32(aj + ai - inter))
            if float(iou) > 0.2:
                ok = False
                break
        if ok:
            keep.append(i)
    if limit_num and len(keep) > limit_num:
        groups = {}
        for i in keep:
            groups.setdefault(labels[i], []).append(i)
        keep = [i for g in groups.values() for i in g[:20]]
    scale = np.float32(768 / s_)
    side = int(s_ * (768 / s_))
    start = (side - 768) // 2
    out = []
    for i in keep:
        x1, y1, x2, y2 = [int(np.rint(np.float32(v) * scale)) for v in b[i]]   # rint = half to even
        x1, y1, x2, y2 = max(x1 - start, 0), max(y1 - start, 0), min(x2 - start, 768), min(y2 - start, 768)
        if x2 < 0 or y2 < 0 or x1 > 768 or y1 > 768:
            continue
        out.append([x1, y1, x2, y2])
    return torch.tensor(out if out else [[0, 0, 0, 0]], dtype=torch.float32)


# --- §3 --------------------------------------------------------------------------------------
def clip_by_spec(clip, x336):
    sd = {k: v for k, v in clip.state_dict().items()}
    c = clip.config
    D, nh = c.hidden_size, c.num_attention_heads
    hd = D // nh
    p = "vision_model."
    x = F.conv2d(x336[None], sd[p + "embeddings.patch_embedding.weight"], stride=c.patch_size)
    x = x.flatten(2).transpose(1, 2)[0]                       # token t = r*24 + c
    x = torch.cat([sd[p + "embeddings.class_embedding"][None], x]) + sd[p + "embeddings.position_embedding.weight"]
    ln = lambda v, n: F.layer_norm(v, (D,), sd[n + ".weight"], sd[n + ".bias"], c.layer_norm_eps)
    x = ln(x, p + "pre_layrnorm")
    outs = [x]
    for i in range(c.num_hidden_layers):
        q = p + f"encoder.layers.{i}."
        lin = lambda v, n: v @ sd[q + n + ".weight"].T + sd[q + n + ".bias"]
        h = ln(x, q + "layer_norm1")
        Q = lin(h, "self_attn.q_proj").view(-1, nh, hd).transpose(0, 1) * hd ** -0.5
        K = lin(h, "self_attn.k_proj").view(-1, nh, hd).transpose(0, 1)
        V = lin(h, "self_attn.v_proj").view(-1, nh, hd).transpose(0, 1)
        a = torch.softmax(Q @ K.transpose(1, 2), -1) @ V
        x = x + lin(a.transpose(0, 1).reshape(-1, D), "self_attn.out_proj")
        h = lin(ln(x, q + "layer_norm2"), "mlp.fc1")
        x = x + lin(h * torch.sigmoid(1.702 * h), "mlp.fc2")   # quick_gelu
        outs.append(x)
    return outs[-2][1:]     # hidden_states[-2], CLS dropped


# --- §4.2 ------------------------------------------------------------------------------------
def convnext_by_spec(net, x768):
    sd = {**{"stem." + k: v for k, v in net.stem.state_dict().items()},
          **{"stages." + k: v for k, v in net.stages.state_dict().items()}}
    ln2d = lambda v, n: F.layer_norm(v.permute(0, 2, 3, 1), (v.shape[1],), sd[n + ".weight"], sd[n + ".bias"],
                                     1e-6).permute(0, 3, 1, 2)
    x = F.conv2d(x768[None], sd["stem.0.weight"], sd["stem.0.bias"], stride=4)
    x = ln2d(x, "stem.1")
    outs = []
    for s in range(4):
        if s:
            x = ln2d(x, f"stages.{s}.downsample.0")
            x = F.conv2d(x, sd[f"stages.{s}.downsample.1.weight"], sd[f"stages.{s}.downsample.1.bias"], stride=2)
        b = 0
        while f"stages.{s}.blocks.{b}.gamma" in sd:
            q = f"stages.{s}.blocks.{b}."
            C = x.shape[1]
            y = F.conv2d(x, sd[q + "conv_dw.weight"], sd[q + "conv_dw.bias"], padding=3, groups=C)
            y = F.layer_norm(y.permute(0, 2, 3, 1), (C,), sd[q + "norm.weight"], sd[q + "norm.bias"], 1e-6)
            y = F.gelu(y @ sd[q + "mlp.fc1.weight"].T + sd[q + "mlp.fc1.bias"])
            y = (y @ sd[q + "mlp.fc2.weight"].T + sd[q + "mlp.fc2.bias"]).permute(0, 3, 1, 2)
            x = x + y * sd[q + "gamma"][None, :, None, None]
            b += 1
        outs.append(x[0])
    return outs


# --- §6.2 ------------------------------------------------------------------------------------
def roi_pool_by_spec(fm, box, P=56):
    Hf, Wf = fm.shape[1:]
    sig = Hf / 768
    x0, y0 = box[0] * sig, box[1] * sig
    rw, rh = max(box[2] * sig - x0, 1.0), max(box[3] * sig - y0, 1.0)
    bw, bh = rw / P, rh / P
    gw, gh = math.ceil(rw / P), math.ceil(rh / P)
    cnt = max(gw * gh, 1)
    acc = torch.zeros(fm.shape[0], dtype=torch.float64)
    fmd = fm.double()
    for ph in range(P):
        for pw in range(P):
            for iy in range(gh):
                y = y0 + ph * bh + (iy + 0.5) * bh / gh
                for ix in range(gw):
                    x = x0 + pw * bw + (ix + 0.5) * bw / gw
                    if y < -1 or y > Hf or x < -1 or x > Wf:
                        continue
                    y_, x_ = max(y, 0.0), max(x, 0.0)
                    yl, xl = int(y_), int(x_)
                    if yl >= Hf - 1:
                        yl = yh = Hf - 1
                        y_ = float(yl)
                    else:
                        yh = yl + 1
                    if xl >= Wf - 1:
                        xl = xh = Wf - 1
                        x_ = float(xl)
                    else:
                        xh = xl + 1
                    ly, lx = y_ - yl, x_ - xl
                    hy, hx = 1 - ly, 1 - lx
                    acc += (hy * hx * fmd[:, yl, xl] + hy * lx * fmd[:, yl, xh] + ly * hx * fmd[:, yh, xl]
                            + ly * lx * fmd[:, yh, xh]) / cnt
    return acc / (P * P)


# --- §8 --------------------------------------------------------------------------------------
def llm_by_spec(model, embeds):
    """Llama/Phi-3 decoder from the spec's description (§8.1): pre-RMSNorm, rotate-half RoPE, GQA,
    SwiGLU; Phi-3's fused qkv (q,k,v order) and gate_up (gate first)."""
    cfg = model.llm.config
    sd = model.llm.state_dict()
    H, nh = cfg.hidden_size, cfg.num_attention_heads
    nkv = getattr(cfg, "num_key_value_heads", nh) or nh
    hd = H // nh
    L = embeds.shape[0]
    rms = lambda v, w: v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + cfg.rms_norm_eps) * w
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    ang = torch.arange(L).float()[:, None] * inv[None]
    cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()
    rot = lambda v: torch.cat([-v[..., hd // 2:], v[..., :hd // 2]], -1)
    mask = torch.full((L, L), float("-inf")).triu(1)
    x = embeds
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        h = rms(x, sd[p + "input_layernorm.weight"])
        if cfg.model_type == "phi3":
            qkv = h @ sd[p + "self_attn.qkv_proj.weight"].T
            q, k, v = qkv.split([nh * hd, nkv * hd, nkv * hd], -1)
        else:
            q, k, v = (h @ sd[p + f"self_attn.{n}_proj.weight"].T for n in "qkv")
        q = q.view(L, nh, hd).transpose(0, 1)
        k = k.view(L, nkv, hd).transpose(0, 1)
        v = v.view(L, nkv, hd).transpose(0, 1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(nh // nkv, 0), v.repeat_interleave(nh // nkv, 0)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, -1) @ v
        x = x + a.transpose(0, 1).reshape(L, H) @ sd[p + "self_attn.o_proj.weight"].T
        h = rms(x, sd[p + "post_attention_layernorm.weight"])
        if cfg.model_type == "phi3":
            g, u = (h @ sd[p + "mlp.gate_up_proj.weight"].T).chunk(2, -1)
        else:
            g, u = h @ sd[p + "mlp.gate_proj.weight"].T, h @ sd[p + "mlp.up_proj.weight"].T
        x = x + (F.silu(g) * u) @ sd[p + "mlp.down_proj.weight"].T
    return rms(x, sd["model.norm.weight"]) @ sd["lm_head.weight"].T


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="tests/fixtures/models")
    a = ap.parse_args()
    models = {m: ref.MGLLaVA(os.path.join(a.models, f"tiny-{m}")) for m in mg.MODELS}
    for sname, img, rec, _ in mg.scenes():
        print(f"scene {sname}")
        m0 = models["vicuna"]
        r = m0.run(img, rec, mg.Q1, generate=False)
        check("x336 = bilinear(x768)", bilinear(r["x768"], 336), r["x336"], 1e-6)
        check("boxes768 (plain Python pipeline)", boxes_by_spec(rec, *img.size, m0.limit_num), r["boxes768"], 0)
        check("clip_features (hand-written ViT)", clip_by_spec(m0.clip, r["x336"]), r["clip_features"], 1e-5)
        st = convnext_by_spec(m0.convnext, r["x768"])
        for i in range(4):
            check(f"cnx_stage{i} (hand-written ConvNeXt)", st[i], r[f"cnx_stage{i}"], 1e-5)
        fm = torch.cat([r["cnx_stage0"]] + [bilinear(r[f"cnx_stage{i}"], 192) for i in (1, 2, 3)])
        check("fm (hand-written upsample)", fm, r["fm"], 1e-6)
        n = r["boxes768"].shape[0]
        for j in sorted({0, n - 1, n // 2}):
            check(f"obj_pooled[{j}] box {r['boxes768'][j].int().tolist()} (RoIAlign §6.2)",
                  roi_pool_by_spec(r["fm"], r["boxes768"][j].tolist()), r["obj_pooled"][j], 1e-5)
        for m, model in models.items():
            rr = model.run(img, rec, mg.Q1, generate=False)
            check(f"{m}: prompt_logits (hand-written decoder)", llm_by_spec(model, rr["inputs_embeds"]),
                  rr["prompt_logits"], 1e-4)
            pos, e = rr["image_pos"], rr["inputs_embeds"]
            check(f"{m}: inputs_embeds image/object rows", e[pos:pos + 576 + n], torch.cat([rr["vimg"], rr["vobj"]]), 0)
    print("all checks passed")


if __name__ == "__main__":
    main()
