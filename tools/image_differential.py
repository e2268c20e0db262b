#!/usr/bin/python3
"""Differential test of the image decoders against Pillow on mutated files.

Takes the files of the image corpus (tests/fixtures/images), mutates them (byte flips, byte
runs, cut ends, header fields set to edge values, chunks duplicated), and for each mutant asks
both Pillow (`Image.open(f).convert('RGB')`, the reference's image path) and the engine's decoder
(`test_image FILE...`, the driver mode of tests/image/test_image.c) for the RGB. A mutant passes when
both refuse it, or both decode it to the same size and bytes. Mutants the engine refuses by design
(over 16384 pixels a side, formats it does not read) are counted apart.

    /usr/bin/python3 tools/image_differential.py BUILD/tests/image/test_image [--n 2000] [--seed 1]
        [--only tga,sgi] [--skip tif] [--keep DIR]

Exit status 1 when any mutant differs; with --keep, the differing files are written there.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import warnings

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "images")


def pil_sum(path):
    """(w, h, sum) as the driver prints it, or None when Pillow refuses. Opened by name, as the
    official code opens it (Pillow maps raw files it opens by name)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                rgb = im.convert("RGB")
    except Exception:
        return None
    w, h = rgb.size
    if w > 16384 or h > 16384:
        return ("big", w, h)
    s = 0
    b = rgb.tobytes()
    # the driver's sum: s = s * 31 + byte (mod 2^32), computed in blocks
    for k in range(0, len(b), 1 << 16):
        for v in b[k:k + (1 << 16)]:
            s = (s * 31 + v) & 0xFFFFFFFF
    return (w, h, s)


def mutate(data, rng):
    d = bytearray(data)
    kind = rng.randrange(7)
    if not d:
        return bytes(d)
    if kind == 0:  # flip a few bytes, mostly in the first 128
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(min(len(d), 128)) if rng.random() < 0.7 else rng.randrange(len(d))
            d[i] = rng.randrange(256)
    elif kind == 1:  # cut the end
        d = d[:rng.randrange(len(d))]
    elif kind == 2:  # a header byte to an edge value
        i = rng.randrange(min(len(d), 64))
        d[i] = rng.choice([0, 1, 2, 0x7f, 0x80, 0xff])
    elif kind == 3:  # a run of one byte value
        i = rng.randrange(len(d))
        k = rng.randint(1, 32)
        d[i:i + k] = bytes([rng.randrange(256)]) * k
    elif kind == 4:  # bits flipped anywhere
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(d))
            d[i] ^= 1 << rng.randrange(8)
    elif kind == 5:  # a slice duplicated or removed
        i = rng.randrange(len(d))
        k = rng.randint(1, 64)
        if rng.random() < 0.5:
            d[i:i] = d[i:i + k]
        else:
            del d[i:i + k]
    else:  # bytes appended
        d += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(d)


MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16", "F"]
# what Pillow can write, with options a user may pass
SAVES = [
    ("PNG", {}), ("PNG", {"optimize": True}), ("PNG", {"bits": 4}), ("PNG", {"transparency": 0}),
    ("JPEG", {}), ("JPEG", {"quality": 95, "subsampling": 0}), ("JPEG", {"progressive": True, "quality": 40}),
    ("JPEG", {"subsampling": 1}), ("JPEG", {"optimize": True, "quality": 10}),
    ("WEBP", {}), ("WEBP", {"lossless": True}), ("WEBP", {"quality": 5, "method": 6}),
    ("GIF", {}), ("GIF", {"interlace": False}), ("GIF", {"transparency": 3}),
    ("BMP", {}), ("DIB", {}), ("ICO", {}), ("ICO", {"bitmap_format": "bmp"}), ("PPM", {}),
    ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"}), ("TIFF", {"compression": "tiff_deflate"}),
    ("TIFF", {"compression": "packbits"}), ("TIFF", {"compression": "jpeg"}), ("TIFF", {"compression": "group4"}),
    ("TIFF", {"compression": "tiff_adobe_deflate", "tiffinfo": {317: 2}}),
    ("TGA", {}), ("TGA", {"compression": "tga_rle"}), ("TGA", {"orientation": 1}),
    ("SGI", {}), ("SGI", {"bpc": 2}), ("PCX", {}),
    ("IM", {}), ("MSP", {}), ("SPIDER", {}), ("XBM", {}), ("JPEG2000", {}), ("JPEG2000", {"irreversible": True}),
    ("BLP", {}), ("DDS", {}), ("ICNS", {}), ("MPO", {}),
]


def gen_image(rng):
    w = rng.choice([1, 2, 3, 7, 16, 33, 64, 100, 257]) if rng.random() < 0.8 else rng.randint(1, 700)
    h = rng.choice([1, 2, 3, 7, 16, 33, 64, 100, 257]) if rng.random() < 0.8 else rng.randint(1, 700)
    mode = rng.choice(MODES)
    base = Image.effect_noise((w, h), rng.choice([10, 60, 128]))
    grad = Image.linear_gradient("L").resize((w, h))
    chans = [Image.blend(base, grad, rng.random()) for _ in range(4)]
    rgba = Image.merge("RGBA", chans)
    if mode == "P":
        im = rgba.convert("RGB").quantize(rng.choice([2, 16, 200, 256]))
    elif mode == "PA":
        im = rgba.convert("RGB").quantize(16).convert("PA")
    elif mode in ("I", "I;16", "F"):
        im = chans[0].convert("I").point(lambda v: v * rng.choice([1, 3, 257]))
        im = im.convert(mode) if mode != "I;16" else im.convert("I;16")
    elif mode == "RGBX":
        im = rgba.convert("RGB").convert("RGBX")
    else:
        im = rgba.convert(mode) if mode != "RGBA" else rgba
    return im


def generated(a, rng):
    """Images of every mode written by Pillow in every format and with the options it offers; the
    ones Pillow cannot write in that mode are skipped."""
    out = []
    tmp = tempfile.mkdtemp(prefix="imggen.")
    while len(out) < a.n:
        im = gen_image(rng)
        fmt, opts = rng.choice(SAVES)
        p = os.path.join(tmp, "%06d_%s_%s_%s.%s" % (len(out), fmt.lower(), im.mode.replace(";", ""),
                                                  "-".join("%s%s" % kv for kv in opts.items()).replace(" ", "")[:40],
                                                  fmt.lower()))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.save(p, fmt, **opts)
        except Exception:
            if os.path.exists(p):
                os.remove(p)
            continue
        with open(p, "rb") as fh:
            out.append((p, fh.read()))
    return tmp, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("driver")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated extensions to take seeds from")
    ap.add_argument("--skip", default="", help="comma-separated extensions not to take seeds from")
    ap.add_argument("--keep", default="")
    ap.add_argument("--generate", action="store_true",
                    help="instead of mutants, images of every mode written by Pillow in every format it writes")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    exts = set(a.only.split(",")) if a.only else None
    skip = set(a.skip.split(",")) if a.skip else set()
    with open(os.path.join(CORPUS, "manifest.json")) as fh:
        by_design = {e["file"] for e in json.load(fh)["refused"] if not e["pil_refuses"]}
    seeds = []
    for f in sorted(os.listdir(CORPUS)):
        if f in by_design:  # the engine refuses these where Pillow reads them: nothing to compare
            continue
        ext = f.rsplit(".", 1)[-1]
        if ext in ("rgb", "json") or (exts and ext not in exts) or ext in skip:
            continue
        with open(os.path.join(CORPUS, f), "rb") as fh:
            seeds.append((f, fh.read()))
    tmp = tempfile.mkdtemp(prefix="imgdiff.")
    batch, diffs, same, design = [], 0, 0, 0
    if a.generate:
        os.rmdir(tmp)
        tmp, batch = generated(a, rng)
    for i in range(0 if a.generate else a.n):
        name, data = seeds[rng.randrange(len(seeds))]
        m = mutate(data, rng)
        if rng.random() < 0.3:
            m = mutate(m, rng)
        p = os.path.join(tmp, "%06d_%s" % (i, name))
        with open(p, "wb") as fh:
            fh.write(m)
        batch.append((p, m))
    out = subprocess.run([a.driver] + [p for p, _ in batch], capture_output=True, text=True, errors="replace")
    lines = out.stdout.split("\n")[:-1]  # messages may hold other line-break characters
    if len(lines) != len(batch):
        print("driver printed %d lines for %d files (exit %d): %s" % (len(lines), len(batch), out.returncode,
                                                                       out.stderr[-2000:]))
        return 1
    for (p, m), line in zip(batch, lines):
        ref = pil_sum(p)
        eng = None
        mt = re.fullmatch(r"(\d+)x(\d+) ([0-9a-f]{8})", line[len(p) + 2:]) if line.startswith(p + ": ") else None
        if mt:
            eng = (int(mt.group(1)), int(mt.group(2)), int(mt.group(3), 16))
        if ref == eng:
            same += 1
            continue
        if eng is None and ref is not None and (ref[0] == "big" or "not read by the engine" in line):
            design += 1
            continue
        diffs += 1
        print("DIFF %s: pillow %s, engine %s" % (os.path.basename(p), ref, line[len(p):] if eng is None else eng))
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            with open(os.path.join(a.keep, os.path.basename(p)), "wb") as fh:
                fh.write(m)
    for p, _ in batch:
        os.remove(p)
    os.rmdir(tmp)
    print("%d %s: %d agree, %d refused by design, %d differ" % (len(batch), "files" if a.generate else "mutants", same,
                                                                 design, diffs))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
