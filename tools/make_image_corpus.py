#!/usr/bin/python3
"""Writes the image-decoding corpus: tests/fixtures/images/.

Every PNG, JPEG, JPEG 2000, WebP, BMP, GIF, TIFF, ICO, CUR, PPM/PGM/PBM, TGA, SGI, PCX, DDS, BLP, ICNS, MSP, IM, SPIDER and XBM kind a user may pass, small and with odd sizes, each with the RGB
that Pillow decodes (`Image.open(f).convert('RGB')`, the reference's image path) as its golden:
NAME.rgb holds width*height*3 bytes, rows top to bottom. manifest.json records the Pillow, libjpeg,
zlib and libwebp versions, each image's size and what it exercises, and the files that Pillow refuses
(truncated, corrupt) or that the engine refuses by design (other formats): the engine must refuse
those too, with a one-line message naming the file.

Pillow writes what it can (PNG 8-bit kinds, baseline and progressive JPEG, CMYK JPEG, PPM);
the rest is written here byte by byte: a PNG writer (every bit depth and colour type, tRNS,
Adam7 interlacing, every filter type, gAMA/cHRM/sRGB/iCCP/sBIT chunks, short palettes) and a
baseline JPEG writer (YCCK, CMYK without an Adobe marker, RGB-coded JPEG, restart markers,
4:4:0 and 4:1:1 sampling), and a TIFF writer (any photometric, bit depth, extra samples, sample
format, fill order, byte order, planar layout, strips, colormap, orientation, BigTIFF, several pages)
whose files libtiff's tiffcp (Debian's libtiff-tools) recompresses and tiles.

Run with Debian 12's python3 and python3-pil 9.4 (the Pillow the tools use), with libtiff-tools and
libopenjp2-tools (tiffcp, opj_compress) installed:
    /usr/bin/python3 tools/make_image_corpus.py [OUT_DIR]
The output is deterministic for a given Pillow/libjpeg/zlib.
"""
import io
import json
import math
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import PIL
from PIL import Image, features

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "tests", "fixtures", "images")

RNG = np.random.RandomState(23)


def pattern(w, h, ch, maxv=255, seed=0):
    """Gradients plus noise: every value range and some edges."""
    r = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(ch):
        base = (x * (c + 1) * 37 + y * (3 - c % 3) * 23 + c * 50) % 256
        base = base / 255.0
        noise = r.rand(h, w) * 0.35
        v = (base * 0.65 + noise) % 1.0
        # a few saturated pixels at both ends
        v[0, 0] = 0.0
        v[-1, -1] = 1.0
        if w > 2:
            v[0, 1] = 1.0
        planes.append(np.round(v * maxv).astype(np.int64))
    return np.stack(planes, axis=-1)


# ---- PNG writer -----------------------------------------------------------------------------

def png_chunk(tag, data):
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def pack_row(samples, depth):
    """samples: 1-D sequence of ints (already interleaved channels)."""
    if depth == 8:
        return bytes(int(v) for v in samples)
    if depth == 16:
        return b"".join(struct.pack(">H", int(v)) for v in samples)
    out = bytearray()
    per = 8 // depth
    for i in range(0, len(samples), per):
        b = 0
        for k in range(per):
            v = int(samples[i + k]) if i + k < len(samples) else 0
            b |= v << (8 - depth * (k + 1))
        out.append(b)
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_row(ftype, row, prev, bpp):
    out = bytearray([ftype])
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i] if prev is not None else 0
        c = prev[i - bpp] if (prev is not None and i >= bpp) else 0
        if ftype == 0:
            p = 0
        elif ftype == 1:
            p = a
        elif ftype == 2:
            p = b
        elif ftype == 3:
            p = (a + b) // 2
        else:
            p = paeth(a, b, c)
        out.append((x - p) & 0xFF)
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def write_png(path, pix, depth, ctype, palette=None, trns=None, interlace=False, extra=b"", filters=None):
    """pix: (h, w, ch) ints. filters: list of filter types cycled per row (default 0..4)."""
    h, w, ch = pix.shape
    assert ch == CHANNELS[ctype]
    bpp = max(1, depth * ch // 8)
    filters = filters or [0, 1, 2, 3, 4]
    raw = bytearray()
    k = 0

    def emit(sub):
        nonlocal k
        prev = None
        for r in range(sub.shape[0]):
            row = pack_row(sub[r].reshape(-1), depth)
            raw.extend(filter_row(filters[k % len(filters)], row, prev, bpp))
            k += 1
            prev = row

    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = pix[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                emit(sub)
    else:
        emit(pix)
    data = b"\x89PNG\r\n\x1a\n"
    data += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    data += extra
    if palette is not None:
        data += png_chunk(b"PLTE", bytes(int(v) for v in np.asarray(palette).reshape(-1)))
    if trns is not None:
        data += png_chunk(b"tRNS", trns)
    comp = zlib.compress(bytes(raw), 9)
    # two IDAT chunks: decoders must join them
    cut = len(comp) // 2
    data += png_chunk(b"IDAT", comp[:cut]) + png_chunk(b"IDAT", comp[cut:])
    data += png_chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


# ---- baseline JPEG writer ---------------------------------------------------------------------

STD_DC_LUM = ([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], list(range(12)))
STD_DC_CHR = ([0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0], list(range(12)))
STD_AC_LUM = ([0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d], [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07,
    0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52, 0xd1, 0xf0,
    0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25, 0x26, 0x27, 0x28,
    0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49,
    0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69,
    0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
    0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
    0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5,
    0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2,
    0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa])
STD_AC_CHR = ([0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77], [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71,
    0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33, 0x52, 0xf0,
    0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26,
    0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
    0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
    0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
    0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda,
    0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8,
    0xf9, 0xfa])
# Annex K quantisation tables (natural order), used at quality 75 below
STD_Q_LUM = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
             14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
             49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
STD_Q_CHR = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
             47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32
ZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6,
          7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31,
          39, 46, 53, 60, 61, 54, 47, 55, 62, 63]


def scale_q(q, quality=75):
    s = 5000 // quality if quality < 50 else 200 - quality * 2
    return [min(255, max(4, (v * s + 50) // 100)) for v in q]


def huff_codes(spec):
    bits, vals = spec
    codes = {}
    code = 0
    k = 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


DCT_M = np.array([[(math.sqrt(1 / 8) if u == 0 else math.sqrt(2 / 8)) * math.cos((2 * x + 1) * u * math.pi / 16)
                   for x in range(8)] for u in range(8)])


class BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, code, length):
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((code >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc = 0
                self.n = 0

    def flush(self):
        while self.n:
            self.put(1, 1)


def magnitude(v):
    a = abs(v)
    n = 0
    while a:
        n += 1
        a >>= 1
    bits = v if v >= 0 else v + (1 << n) - 1
    return n, bits


def write_jpeg(path, planes, sampling, comp_ids=None, adobe=None, jfif=True, restart=0, qsel=None):
    """Baseline huffman JPEG. planes: list of (h, w) arrays 0..255, full resolution; sampling:
    [(H, V)] per component; adobe: None or the APP14 transform byte (0 RGB/CMYK, 1 YCbCr, 2 YCCK)."""
    h, w = planes[0].shape
    nc = len(planes)
    comp_ids = comp_ids or list(range(1, nc + 1))
    qsel = qsel or [0] + [1] * (nc - 1)
    if nc == 4 and qsel == [0, 1, 1, 1]:
        qsel = [0, 1, 1, 0]
    hmax = max(s[0] for s in sampling)
    vmax = max(s[1] for s in sampling)
    qt = [scale_q(STD_Q_LUM), scale_q(STD_Q_CHR)]
    dc = [huff_codes(STD_DC_LUM), huff_codes(STD_DC_CHR)]
    ac = [huff_codes(STD_AC_LUM), huff_codes(STD_AC_CHR)]
    interleaved = nc > 1
    if interleaved:
        mcux = -(-w // (8 * hmax))
        mcuy = -(-h // (8 * vmax))
    # component planes, subsampled by averaging, padded by edge replication to whole MCUs/blocks
    comps = []
    for ci, p in enumerate(planes):
        hs, vs = sampling[ci]
        fx, fy = hmax // hs, vmax // vs
        cw, ch = -(-w * hs // hmax), -(-h * vs // vmax)
        pp = np.pad(p.astype(np.float64), ((0, ch * fy - h), (0, cw * fx - w)), mode="edge")
        sub = pp.reshape(ch, fy, cw, fx).mean(axis=(1, 3))
        if interleaved:
            tw, th = mcux * hs * 8, mcuy * vs * 8
        else:
            tw, th = -(-cw // 8) * 8, -(-ch // 8) * 8
        comps.append(np.pad(sub, ((0, th - ch), (0, tw - cw)), mode="edge"))

    def block(ci, by, bx):
        b = comps[ci][by * 8:by * 8 + 8, bx * 8:bx * 8 + 8] - 128.0
        f = DCT_M @ b @ DCT_M.T
        q = np.array(qt[qsel[ci]]).reshape(8, 8)
        return [int(round(v)) for v in (f / q).reshape(-1)]

    bw = BitWriter()
    pred = [0] * nc

    def encode_block(ci, coef):
        t = 0 if ci == 0 or (nc == 4 and ci == 3) else 1
        diff = coef[0] - pred[ci]
        pred[ci] = coef[0]
        n, bits = magnitude(diff)
        bw.put(*dc[t][n])
        if n:
            bw.put(bits, n)
        run = 0
        for k in range(1, 64):
            v = coef[ZIGZAG[k]]
            if v == 0:
                run += 1
                continue
            while run > 15:
                bw.put(*ac[t][0xF0])
                run -= 16
            n, bits = magnitude(v)
            bw.put(*ac[t][(run << 4) | n])
            bw.put(bits, n)
            run = 0
        if run:
            bw.put(*ac[t][0x00])

    units = []
    if interleaved:
        for my in range(mcuy):
            for mx in range(mcux):
                u = []
                for ci in range(nc):
                    hs, vs = sampling[ci]
                    for v in range(vs):
                        for hh in range(hs):
                            u.append((ci, my * vs + v, mx * hs + hh))
                units.append(u)
    else:
        th, tw = comps[0].shape
        for by in range(th // 8):
            for bx in range(tw // 8):
                units.append([(0, by, bx)])
    for i, u in enumerate(units):
        if restart and i and i % restart == 0:
            bw.flush()
            bw.out += bytes([0xFF, 0xD0 + ((i // restart - 1) % 8)])
            pred = [0] * nc
        for ci, by, bx in u:
            encode_block(ci, block(ci, by, bx))
    bw.flush()

    def seg(marker, payload):
        return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    out = b"\xFF\xD8"
    if jfif:
        out += seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    if adobe is not None:
        out += seg(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, adobe))
    for t in sorted(set(qsel)):
        out += seg(0xDB, bytes([t]) + bytes(qt[t][ZIGZAG[k]] for k in range(64)))
    sof = struct.pack(">BHHB", 8, h, w, nc)
    for ci in range(nc):
        sof += bytes([comp_ids[ci], (sampling[ci][0] << 4) | sampling[ci][1], qsel[ci]])
    out += seg(0xC0, sof)
    for cls, tid, spec in [(0, 0, STD_DC_LUM), (1, 0, STD_AC_LUM), (0, 1, STD_DC_CHR), (1, 1, STD_AC_CHR)]:
        out += seg(0xC4, bytes([(cls << 4) | tid]) + bytes(spec[0]) + bytes(spec[1]))
    if restart:
        out += seg(0xDD, struct.pack(">H", restart))
    sos = bytes([nc])
    for ci in range(nc):
        t = 0 if ci == 0 or (nc == 4 and ci == 3) else 1
        sos += bytes([comp_ids[ci], (t << 4) | t])
    sos += b"\x00\x3f\x00"
    out += seg(0xDA, sos) + bytes(bw.out) + b"\xFF\xD9"
    with open(path, "wb") as f:
        f.write(out)


# ---- the corpus ---------------------------------------------------------------------------------

images = []
errors = []


def golden(name, file, what):
    path = os.path.join(OUT, file)
    with Image.open(path) as im:
        src_mode = im.mode
        rgb = im.convert("RGB")
    data = rgb.tobytes()
    w, h = rgb.size
    assert len(data) == w * h * 3
    with open(os.path.join(OUT, name + ".rgb"), "wb") as f:
        f.write(data)
    images.append({"file": file, "golden": name + ".rgb", "width": w, "height": h, "pil_mode": src_mode,
                   "what": what})


def refused(file, what, pil_refuses=True):
    path = os.path.join(OUT, file)
    ok = True
    try:
        with Image.open(path) as im:
            im.convert("RGB")
    except Exception:
        ok = False
    if pil_refuses and ok:
        raise SystemExit(f"{file}: Pillow decodes it, expected a refusal")
    errors.append({"file": file, "what": what, "pil_refuses": not ok})


def png_cases():
    W, H = 17, 13
    # grey, every depth, plain and interlaced
    for depth in (1, 2, 4, 8, 16):
        pix = pattern(W, H, 1, (1 << depth) - 1, seed=depth)
        for il in (False, True):
            n = f"png_gray{depth}{'_adam7' if il else ''}"
            write_png(os.path.join(OUT, n + ".png"), pix, depth, 0, interlace=il)
            golden(n, n + ".png", f"PNG greyscale {depth}-bit{', Adam7' if il else ''}")
    # grey with a tRNS colour key
    for depth in (1, 8, 16):
        pix = pattern(W, H, 1, (1 << depth) - 1, seed=10 + depth)
        key = int(pix[2, 3, 0])
        n = f"png_gray{depth}_trns"
        write_png(os.path.join(OUT, n + ".png"), pix, depth, 0, trns=struct.pack(">H", key))
        golden(n, n + ".png", f"PNG greyscale {depth}-bit with tRNS key")
    # 16-bit grey with small values (below 256: the 8-bit clip is visible)
    pix = pattern(W, H, 1, 600, seed=31)
    write_png(os.path.join(OUT, "png_gray16_low.png"), pix, 16, 0)
    golden("png_gray16_low", "png_gray16_low.png", "PNG greyscale 16-bit, values 0..600")
    # grey + alpha
    for depth in (8, 16):
        pix = pattern(W, H, 2, (1 << depth) - 1, seed=20 + depth)
        for il in (False, True):
            n = f"png_graya{depth}{'_adam7' if il else ''}"
            write_png(os.path.join(OUT, n + ".png"), pix, depth, 4, interlace=il)
            golden(n, n + ".png", f"PNG greyscale+alpha {depth}-bit{', Adam7' if il else ''}")
    # RGB, RGBA
    for ctype, cname in ((2, "rgb"), (6, "rgba")):
        for depth in (8, 16):
            pix = pattern(W, H, CHANNELS[ctype], (1 << depth) - 1, seed=30 + ctype + depth)
            for il in (False, True):
                n = f"png_{cname}{depth}{'_adam7' if il else ''}"
                write_png(os.path.join(OUT, n + ".png"), pix, depth, ctype, interlace=il)
                golden(n, n + ".png", f"PNG {cname.upper()} {depth}-bit{', Adam7' if il else ''}")
    # RGB with a tRNS colour key
    for depth in (8, 16):
        pix = pattern(W, H, 3, (1 << depth) - 1, seed=40 + depth)
        key = pix[1, 1]
        n = f"png_rgb{depth}_trns"
        write_png(os.path.join(OUT, n + ".png"), pix, depth, 2, trns=struct.pack(">HHH", *[int(v) for v in key]))
        golden(n, n + ".png", f"PNG RGB {depth}-bit with tRNS key")
    # RGBA with fully transparent pixels whose colour is not black
    pix = pattern(W, H, 4, 255, seed=47)
    pix[:, :, 3] = 0
    pix[::3, ::2, 3] = 128
    write_png(os.path.join(OUT, "png_rgba8_transparent.png"), pix, 8, 6)
    golden("png_rgba8_transparent", "png_rgba8_transparent.png", "PNG RGBA 8-bit, mostly alpha 0")
    # palette, every depth; with and without tRNS; interlaced
    for depth in (1, 2, 4, 8):
        ncol = 1 << depth
        pal = RNG.randint(0, 256, size=(ncol, 3))
        pix = pattern(W, H, 1, ncol - 1, seed=50 + depth)
        for variant in ("", "_trns", "_trns1", "_adam7"):
            n = f"png_pal{depth}{variant}"
            trns = None
            if variant == "_trns":
                trns = bytes(RNG.randint(0, 256, size=ncol // 2 + 1).tolist())  # shorter than the palette
            elif variant == "_trns1":
                trns = b"\xff" * (ncol // 2) + b"\x00"  # one fully transparent entry
            write_png(os.path.join(OUT, n + ".png"), pix, depth, 3, palette=pal, trns=trns,
                      interlace=variant == "_adam7")
            what = {"": "", "_trns": ", tRNS alphas", "_trns1": ", tRNS with one transparent entry",
                    "_adam7": ", Adam7"}[variant]
            golden(n, n + ".png", f"PNG palette {depth}-bit{what}")
    # palette shorter than the indices used (Pillow: a grey ramp past the PLTE entries)
    pal = RNG.randint(0, 256, size=(5, 3))
    pix = pattern(W, H, 1, 255, seed=60)
    write_png(os.path.join(OUT, "png_pal8_short.png"), pix, 8, 3, palette=pal)
    golden("png_pal8_short", "png_pal8_short.png", "PNG palette 8-bit, 5 PLTE entries, indices to 255")
    # colour-management chunks that Pillow does not apply
    pix = pattern(W, H, 3, 255, seed=61)
    icc = zlib.compress(b"\x00" * 128)
    extra = (png_chunk(b"gAMA", struct.pack(">I", 100000)) +
             png_chunk(b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)) +
             png_chunk(b"sBIT", b"\x05\x06\x05") + png_chunk(b"iCCP", b"fake\x00\x00" + icc) +
             png_chunk(b"tEXt", b"Comment\x00corpus"))
    write_png(os.path.join(OUT, "png_rgb8_gama.png"), pix, 8, 2, extra=extra)
    golden("png_rgb8_gama", "png_rgb8_gama.png", "PNG RGB 8-bit with gAMA 1.0, cHRM, sBIT, iCCP, tEXt")
    pix = pattern(W, H, 3, 65535, seed=62)
    write_png(os.path.join(OUT, "png_rgb16_srgb.png"), pix, 16, 2,
              extra=png_chunk(b"sRGB", b"\x00") + png_chunk(b"gAMA", struct.pack(">I", 45455)))
    golden("png_rgb16_srgb", "png_rgb16_srgb.png", "PNG RGB 16-bit with sRGB and gAMA")
    # sizes: 1x1, one row, one column, wider than a filter byte group
    for (w, h, depth, ctype) in ((1, 1, 8, 2), (1, 1, 1, 0), (31, 1, 4, 3), (1, 9, 2, 0), (9, 2, 16, 6)):
        pix = pattern(w, h, CHANNELS[ctype], (1 << depth) - 1, seed=w * 7 + h)
        pal = RNG.randint(0, 256, size=(1 << depth, 3)) if ctype == 3 else None
        for il in (False, True):
            n = f"png_{w}x{h}_d{depth}c{ctype}{'_adam7' if il else ''}"
            write_png(os.path.join(OUT, n + ".png"), pix, depth, ctype, palette=pal, interlace=il)
            golden(n, n + ".png", f"PNG {w}x{h} depth {depth} colour type {ctype}{', Adam7' if il else ''}")
    # written by Pillow itself (zlib stream as Pillow makes it)
    base = Image.fromarray(pattern(W, H, 3, 255, seed=63).astype(np.uint8), "RGB")
    base.save(os.path.join(OUT, "png_pil_rgb.png"))
    golden("png_pil_rgb", "png_pil_rgb.png", "PNG RGB written by Pillow")
    base.convert("P", palette=Image.Palette.ADAPTIVE, colors=7).save(os.path.join(OUT, "png_pil_p.png"))
    golden("png_pil_p", "png_pil_p.png", "PNG palette written by Pillow (7 colours)")
    la = Image.fromarray(pattern(W, H, 2, 255, seed=64).astype(np.uint8), "LA")
    la.save(os.path.join(OUT, "png_pil_la.png"))
    golden("png_pil_la", "png_pil_la.png", "PNG LA written by Pillow")
    Image.fromarray(pattern(W, H, 1, 255, seed=65)[:, :, 0].astype(np.uint8) > 128).save(
        os.path.join(OUT, "png_pil_1.png"))
    golden("png_pil_1", "png_pil_1.png", "PNG 1-bit written by Pillow")
    # a PLTE in an RGB image (a suggested palette: ignored), empty IDAT chunks, a bad CRC on an IDAT chunk
    # and on a chunk after the image data (Pillow checks neither), bytes after the zlib stream
    pix = pattern(W, H, 3, 255, seed=67)
    raw = b"".join(b"\x01" + pack_row(pix[r].reshape(-1), 8) for r in range(H))
    comp = zlib.compress(raw, 9)
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 2, 0, 0, 0))
    bad_idat = png_chunk(b"IDAT", comp[10:])
    bad_idat = bad_idat[:-4] + bytes([bad_idat[-4] ^ 1]) + bad_idat[-3:]
    data = (b"\x89PNG\r\n\x1a\n" + ihdr + png_chunk(b"PLTE", bytes(range(48))) + png_chunk(b"IDAT", b"") +
            png_chunk(b"IDAT", comp[:10]) + png_chunk(b"IDAT", b"") + bad_idat)
    tail = png_chunk(b"tEXt", b"after\x00data")
    data += tail[:-1] + bytes([tail[-1] ^ 0xFF]) + png_chunk(b"IEND", b"")
    with open(os.path.join(OUT, "png_rgb8_oddchunks.png"), "wb") as f:
        f.write(data)
    golden("png_rgb8_oddchunks", "png_rgb8_oddchunks.png",
           "PNG RGB 8-bit: PLTE, empty IDATs, bad IDAT CRC, bad CRC after the image data")
    pix = pattern(W, H, 1, 255, seed=68)
    raw = b"".join(b"\x00" + pack_row(pix[r].reshape(-1), 8) for r in range(H))
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 0, 0, 0, 0)) +
            png_chunk(b"IDAT", zlib.compress(raw) + b"\x00\x00") + png_chunk(b"IEND", b""))
    with open(os.path.join(OUT, "png_gray8_extra.png"), "wb") as f:
        f.write(data)
    golden("png_gray8_extra", "png_gray8_extra.png", "PNG grey 8-bit with bytes after the zlib stream, no IEND CRC")
    # palette shorter than 2^depth with a tRNS longer than the palette would be invalid: a tRNS as long
    pal = RNG.randint(0, 256, size=(9, 3))
    pix = pattern(W, H, 1, 15, seed=69)
    write_png(os.path.join(OUT, "png_pal4_short_trns.png"), pix, 4, 3, palette=pal, trns=bytes(range(0, 255, 29)))
    golden("png_pal4_short_trns", "png_pal4_short_trns.png", "PNG palette 4-bit, 9 PLTE entries, tRNS")
    # refused: truncated, bad CRC in IDAT, bad zlib data
    src = open(os.path.join(OUT, "png_rgb8.png"), "rb").read()
    with open(os.path.join(OUT, "bad_png_truncated.png"), "wb") as f:
        f.write(src[:len(src) * 2 // 3])
    refused("bad_png_truncated.png", "PNG cut inside IDAT")
    with open(os.path.join(OUT, "bad_png_text_cut.png"), "wb") as f:
        f.write(src[:-12] + png_chunk(b"tEXt", b"Comment\x00" + b"x" * 40)[:30])
    refused("bad_png_text_cut.png", "PNG whose tEXt chunk after the image data is cut short (Pillow's load_end)")
    pix = pattern(W, H, 3, 255, seed=66)
    h_, w_ = pix.shape[:2]
    raw = b"".join(b"\x00" + pack_row(pix[r].reshape(-1), 8) for r in range(h_))
    comp = bytearray(zlib.compress(raw))
    comp[len(comp) // 2] ^= 0x55
    data = (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w_, h_, 8, 2, 0, 0, 0)) +
            png_chunk(b"IDAT", bytes(comp)) + png_chunk(b"IEND", b""))
    with open(os.path.join(OUT, "bad_png_zlib.png"), "wb") as f:
        f.write(data)
    refused("bad_png_zlib.png", "PNG with corrupt zlib data")
    with open(os.path.join(OUT, "bad_png_header.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 17, 13, 3, 2, 0, 0, 0)) +
                png_chunk(b"IEND", b""))
    refused("bad_png_header.png", "PNG with bit depth 3")
    src = bytearray(open(os.path.join(OUT, "png_rgb8_gama.png"), "rb").read())
    k = src.find(b"tEXt")
    src[k + 6] ^= 0x20   # inside the tEXt data: its CRC no longer matches
    with open(os.path.join(OUT, "bad_png_crc_text.png"), "wb") as f:
        f.write(bytes(src))
    refused("bad_png_crc_text.png", "PNG with a bad CRC on a tEXt chunk before the image data")
    pix = np.zeros((1, 16385, 1), dtype=np.int64)
    write_png(os.path.join(OUT, "bad_png_wide.png"), pix, 1, 0)
    refused("bad_png_wide.png", "PNG 16385 pixels wide: over the engine's 16384 a side", pil_refuses=False)


def ycc(rgb):
    r, g, b = [rgb[:, :, i].astype(np.float64) for i in range(3)]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return [np.clip(np.round(v), 0, 255) for v in (y, cb, cr)]


def jpeg_cases():
    W, H = 37, 29   # several MCUs, partial ones at the right and bottom
    rgb = pattern(W, H, 3, 255, seed=70).astype(np.uint8)
    # smooth it a little so the JPEGs are not all noise
    sm = rgb.astype(np.float64)
    sm = (sm + np.roll(sm, 1, 0) + np.roll(sm, 1, 1) + np.roll(sm, (1, 1), (0, 1))) / 4
    rgb = np.round(sm).astype(np.uint8)
    im = Image.fromarray(rgb, "RGB")
    for ss, sname in ((0, "444"), (1, "422"), (2, "420")):
        for prog in (False, True):
            n = f"jpeg_{sname}{'_progressive' if prog else ''}"
            im.save(os.path.join(OUT, n + ".jpg"), quality=85, subsampling=ss, progressive=prog)
            golden(n, n + ".jpg", f"JPEG YCbCr {sname}{' progressive' if prog else ' baseline'} (Pillow)")
    im.save(os.path.join(OUT, "jpeg_420_optimized.jpg"), quality=60, subsampling=2, optimize=True)
    golden("jpeg_420_optimized", "jpeg_420_optimized.jpg", "JPEG 4:2:0 with optimised Huffman tables (Pillow)")
    im.save(os.path.join(OUT, "jpeg_444_q100.jpg"), quality=100, subsampling=0)
    golden("jpeg_444_q100", "jpeg_444_q100.jpg", "JPEG 4:4:4 quality 100 (Pillow)")
    gray = im.convert("L")
    for prog in (False, True):
        n = f"jpeg_gray{'_progressive' if prog else ''}"
        gray.save(os.path.join(OUT, n + ".jpg"), quality=80, progressive=prog)
        golden(n, n + ".jpg", f"JPEG greyscale{' progressive' if prog else ''} (Pillow)")
    cmyk = Image.fromarray(pattern(W, H, 4, 255, seed=71).astype(np.uint8), "CMYK")
    for prog in (False, True):
        n = f"jpeg_cmyk_adobe{'_progressive' if prog else ''}"
        cmyk.save(os.path.join(OUT, n + ".jpg"), quality=90, progressive=prog)
        golden(n, n + ".jpg", f"JPEG CMYK, Adobe marker, inverted (Pillow){' progressive' if prog else ''}")
    # EXIF orientation 6 (rotate 90): Pillow does not apply it
    exif = Image.Exif()
    exif[0x0112] = 6
    im.save(os.path.join(OUT, "jpeg_exif_orient6.jpg"), quality=85, exif=exif.tobytes())
    golden("jpeg_exif_orient6", "jpeg_exif_orient6.jpg", "JPEG with EXIF orientation 6 (not applied)")
    # an ICC profile (not applied either)
    im.save(os.path.join(OUT, "jpeg_icc.jpg"), quality=85, icc_profile=b"\x00" * 200)
    golden("jpeg_icc", "jpeg_icc.jpg", "JPEG with an ICC profile (not applied)")
    # written here: sampling factors Pillow does not write, restart markers, YCCK, CMYK without Adobe
    y, cb, cr = ycc(rgb)
    for samp, sname in (([(1, 2), (1, 1), (1, 1)], "440"), ([(4, 1), (1, 1), (1, 1)], "411"),
                        ([(2, 2), (1, 2), (2, 1)], "mixed")):
        n = f"jpeg_{sname}"
        write_jpeg(os.path.join(OUT, n + ".jpg"), [y, cb, cr], samp)
        golden(n, n + ".jpg", f"JPEG YCbCr sampling {samp} (baseline)")
    write_jpeg(os.path.join(OUT, "jpeg_420_restart.jpg"), [y, cb, cr], [(2, 2), (1, 1), (1, 1)], restart=1)
    golden("jpeg_420_restart", "jpeg_420_restart.jpg", "JPEG 4:2:0 with a restart marker every MCU")
    write_jpeg(os.path.join(OUT, "jpeg_444_restart3.jpg"), [y, cb, cr], [(1, 1), (1, 1), (1, 1)], restart=3)
    golden("jpeg_444_restart3", "jpeg_444_restart3.jpg", "JPEG 4:4:4 with a restart marker every 3 MCUs")
    write_jpeg(os.path.join(OUT, "jpeg_gray_restart.jpg"), [y], [(1, 1)], restart=2)
    golden("jpeg_gray_restart", "jpeg_gray_restart.jpg", "JPEG greyscale with restart markers")
    r, g, b = [rgb[:, :, i] for i in range(3)]
    write_jpeg(os.path.join(OUT, "jpeg_rgb_adobe0.jpg"), [r, g, b], [(1, 1)] * 3, adobe=0, jfif=False)
    golden("jpeg_rgb_adobe0", "jpeg_rgb_adobe0.jpg", "JPEG coded in RGB (Adobe transform 0)")
    write_jpeg(os.path.join(OUT, "jpeg_rgb_ids.jpg"), [r, g, b], [(1, 1)] * 3, comp_ids=[ord("R"), ord("G"),
               ord("B")], jfif=False)
    golden("jpeg_rgb_ids", "jpeg_rgb_ids.jpg", "JPEG coded in RGB (component ids R, G, B, no marker)")
    k = pattern(W, H, 1, 255, seed=72)[:, :, 0]
    write_jpeg(os.path.join(OUT, "jpeg_ycck.jpg"), [y, cb, cr, k], [(2, 2), (1, 1), (1, 1), (2, 2)], adobe=2,
               jfif=False)
    golden("jpeg_ycck", "jpeg_ycck.jpg", "JPEG YCCK (Adobe transform 2), 2x2 Y and K")
    write_jpeg(os.path.join(OUT, "jpeg_ycck_restart.jpg"), [y, cb, cr, k], [(1, 1)] * 4, adobe=2, jfif=False,
               restart=2)
    golden("jpeg_ycck_restart", "jpeg_ycck_restart.jpg", "JPEG YCCK 4:4:4:4 with restart markers")
    c4 = pattern(W, H, 4, 255, seed=73)
    write_jpeg(os.path.join(OUT, "jpeg_cmyk_noadobe.jpg"), [c4[:, :, i] for i in range(4)], [(1, 1)] * 4,
               jfif=False)
    golden("jpeg_cmyk_noadobe", "jpeg_cmyk_noadobe.jpg", "JPEG CMYK with no Adobe marker")
    write_jpeg(os.path.join(OUT, "jpeg_cmyk_adobe0_sub.jpg"), [c4[:, :, i] for i in range(4)],
               [(2, 1), (1, 1), (1, 1), (2, 1)], adobe=0, jfif=False)
    golden("jpeg_cmyk_adobe0_sub", "jpeg_cmyk_adobe0_sub.jpg", "JPEG CMYK (Adobe transform 0), 2x1 C and K")
    # a larger odd size: many MCU rows, 4:2:0 fancy upsampling at the edges
    big = pattern(67, 45, 3, 255, seed=74).astype(np.uint8)
    Image.fromarray(big, "RGB").save(os.path.join(OUT, "jpeg_420_67x45.jpg"), quality=75, subsampling=2)
    golden("jpeg_420_67x45", "jpeg_420_67x45.jpg", "JPEG 4:2:0 67x45")
    Image.fromarray(big[:1, :1], "RGB").save(os.path.join(OUT, "jpeg_1x1.jpg"), quality=75, subsampling=2)
    golden("jpeg_1x1", "jpeg_1x1.jpg", "JPEG 4:2:0 1x1")
    # refused: truncated inside the scan (baseline and progressive), no scan at all
    src = open(os.path.join(OUT, "jpeg_420.jpg"), "rb").read()
    with open(os.path.join(OUT, "bad_jpeg_truncated.jpg"), "wb") as f:
        f.write(src[:len(src) * 3 // 4])
    refused("bad_jpeg_truncated.jpg", "baseline JPEG cut inside the scan")
    src = open(os.path.join(OUT, "jpeg_420_progressive.jpg"), "rb").read()
    with open(os.path.join(OUT, "bad_jpeg_prog_truncated.jpg"), "wb") as f:
        f.write(src[:len(src) * 3 // 4])
    refused("bad_jpeg_prog_truncated.jpg", "progressive JPEG cut between scans")
    sos = src.find(b"\xFF\xDA")
    with open(os.path.join(OUT, "bad_jpeg_noscan.jpg"), "wb") as f:
        f.write(src[:sos])
    refused("bad_jpeg_noscan.jpg", "JPEG with no scan")
    for base in ("jpeg_420", "jpeg_420_progressive"):
        src = open(os.path.join(OUT, base + ".jpg"), "rb").read()
        with open(os.path.join(OUT, "bad_" + base + "_noeoi.jpg"), "wb") as f:
            f.write(src[:-2])
        refused("bad_" + base + "_noeoi.jpg", "JPEG without its EOI marker (Pillow: truncated)")
    src = bytearray(open(os.path.join(OUT, "jpeg_444.jpg"), "rb").read())
    sof = src.find(b"\xFF\xC0")
    src[sof + 4] = 12
    with open(os.path.join(OUT, "bad_jpeg_12bit.jpg"), "wb") as f:
        f.write(bytes(src))
    refused("bad_jpeg_12bit.jpg", "JPEG with 12-bit samples")
    # decoded: bytes after EOI; corrupt entropy data that libjpeg decodes through (warnings)
    src = open(os.path.join(OUT, "jpeg_422.jpg"), "rb").read()
    with open(os.path.join(OUT, "jpeg_422_trailing.jpg"), "wb") as f:
        f.write(src + b"\x00garbage after the image\xFF\xD9")
    golden("jpeg_422_trailing", "jpeg_422_trailing.jpg", "JPEG with bytes after EOI")
    src = bytearray(open(os.path.join(OUT, "jpeg_420.jpg"), "rb").read())
    sos = src.find(b"\xFF\xDA")
    body = sos + 2 + struct.unpack(">H", src[sos + 2:sos + 4])[0]
    for off in (40, 41, 97, 150):
        if src[body + off] != 0xFF and src[body + off - 1] != 0xFF:
            src[body + off] ^= 0x5A
    with open(os.path.join(OUT, "jpeg_420_corrupt.jpg"), "wb") as f:
        f.write(bytes(src))
    golden("jpeg_420_corrupt", "jpeg_420_corrupt.jpg", "JPEG with corrupt entropy-coded data (decoded through)")
    src = bytearray(open(os.path.join(OUT, "jpeg_420_restart.jpg"), "rb").read())
    rst = src.find(b"\xFF\xD3")
    src[rst + 1] = 0xD5   # a restart marker out of sequence: libjpeg resynchronises
    with open(os.path.join(OUT, "jpeg_420_badrestart.jpg"), "wb") as f:
        f.write(bytes(src))
    golden("jpeg_420_badrestart", "jpeg_420_badrestart.jpg", "JPEG with a restart marker out of sequence")


def ppm_cases():
    W, H = 17, 13

    def put(name, header, body, what):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(header + body)
        golden(os.path.splitext(name)[0], name, what)

    rgb = pattern(W, H, 3, 255, seed=80)
    put("ppm_p6.ppm", b"P6\n17 13\n255\n", rgb.astype(np.uint8).tobytes(), "PPM P6 maxval 255")
    put("ppm_p6_comments.ppm", b"P6 # a comment\n# another\n17\t13 255\r", rgb.astype(np.uint8).tobytes(),
        "PPM P6 with comments and odd whitespace")
    g = pattern(W, H, 1, 255, seed=81)
    put("pgm_p5.pgm", b"P5\n17 13\n255\n", g.astype(np.uint8).tobytes(), "PGM P5 maxval 255")
    for mv in (1, 15, 100):
        v = pattern(W, H, 3, mv, seed=82 + mv)
        put(f"ppm_p6_max{mv}.ppm", b"P6\n17 13\n%d\n" % mv, v.astype(np.uint8).tobytes(), f"PPM P6 maxval {mv}")
        v = pattern(W, H, 1, mv, seed=83 + mv)
        put(f"pgm_p5_max{mv}.pgm", b"P5\n17 13\n%d\n" % mv, v.astype(np.uint8).tobytes(), f"PGM P5 maxval {mv}")
    for mv in (1000, 65535):
        v = pattern(W, H, 3, mv, seed=84 + mv)
        put(f"ppm_p6_max{mv}.ppm", b"P6\n17 13\n%d\n" % mv, v.astype(">u2").tobytes(), f"PPM P6 maxval {mv}")
    for mv in (300, 1000, 65535):
        v = pattern(W, H, 1, mv, seed=85 + mv)
        v[0, :5, 0] = [0, 1, 2, 3, 255 * mv // 65535]
        put(f"pgm_p5_max{mv}.pgm", b"P5\n17 13\n%d\n" % mv, v.astype(">u2").tobytes(),
            f"PGM P5 maxval {mv} (Pillow mode I)")
    bits = pattern(W, H, 1, 1, seed=86)[:, :, 0]
    rows = b"".join(pack_row(bits[r], 1) for r in range(H))
    put("pbm_p4.pbm", b"P4\n17 13\n", rows, "PBM P4")
    put("pbm_p1.pbm", b"P1\n# plain\n17 13\n", b"\n".join(b" ".join(b"%d" % v for v in r) for r in bits) + b"\n",
        "PBM P1 (plain)")
    g = pattern(W, H, 1, 200, seed=87)[:, :, 0]
    put("pgm_p2.pgm", b"P2\n17 13\n200\n", b"\n".join(b" ".join(b"%d" % v for v in r) for r in g) + b"\n",
        "PGM P2 (plain) maxval 200")
    g = pattern(W, H, 1, 4000, seed=88)[:, :, 0]
    g[0, :4] = [0, 10, 62, 63]
    put("pgm_p2_max4000.pgm", b"P2\n17 13\n4000\n",
        b"\n".join(b" ".join(b"%d" % v for v in r) for r in g) + b"\n", "PGM P2 (plain) maxval 4000 (mode I)")
    c = pattern(W, H, 3, 255, seed=89).reshape(H, -1)
    put("ppm_p3.ppm", b"P3\n17 13 255\n",
        b"\n".join(b" ".join(b"%d" % v for v in r) + b" # row comment" for r in c) + b"\n", "PPM P3 (plain)")
    c = pattern(W, H, 3, 999, seed=90).reshape(H, -1)
    put("ppm_p3_max999.ppm", b"P3 17 13 999 ", b"  ".join(b" ".join(b"%d" % v for v in r) for r in c),
        "PPM P3 (plain) maxval 999, no final newline")
    # a plain file that ends inside a token: Pillow pads by repeating the held-back token
    put("pgm_p2_short.pgm", b"P2\n2 2\n10\n1 2 3", b"", "PGM P2 (plain) ending inside a token, a sample short")
    put("ppm_p6_hdrcomment.ppm", b"P6\n1#c\n7 13\n255\n", rgb[:, :1].astype(np.uint8).tobytes()[:0] +
        pattern(17, 13, 3, 255, seed=91).astype(np.uint8).tobytes(), "PPM P6 with a comment inside a header token")
    # Pillow writes these
    Image.fromarray(rgb.astype(np.uint8), "RGB").save(os.path.join(OUT, "ppm_pil.ppm"))
    golden("ppm_pil", "ppm_pil.ppm", "PPM written by Pillow")
    # refused
    with open(os.path.join(OUT, "bad_ppm_truncated.ppm"), "wb") as f:
        f.write(b"P6\n17 13\n255\n" + rgb.astype(np.uint8).tobytes()[:500])
    refused("bad_ppm_truncated.ppm", "PPM raster cut short")
    with open(os.path.join(OUT, "bad_ppm_maxval.ppm"), "wb") as f:
        f.write(b"P6\n17 13\n70000\n" + b"\0" * 2000)
    refused("bad_ppm_maxval.ppm", "PPM maxval 70000")
    with open(os.path.join(OUT, "bad_pgm_plain_value.pgm"), "wb") as f:
        f.write(b"P2\n2 2\n10\n1 2 11 3\n")
    refused("bad_pgm_plain_value.pgm", "plain PGM with a sample over maxval")
    with open(os.path.join(OUT, "bad_pam.pam"), "wb") as f:
        f.write(b"P7\nWIDTH 2\nHEIGHT 2\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n" + b"\0" * 12)
    refused("bad_pam.pam", "PAM (P7)")


def apng_cases():
    """Animated PNG as Pillow writes it: the image Image.open gives is the default image (the
    IDAT data), whether or not it is also the first frame of the animation."""
    r = np.random.RandomState(31)
    fr = [Image.fromarray(r.randint(0, 256, (11, 13, 3)).astype(np.uint8), "RGB") for _ in range(3)]
    fr[0].save(os.path.join(OUT, "apng_rgb.png"), save_all=True, append_images=fr[1:], duration=40, loop=0)
    golden("apng_rgb", "apng_rgb.png", "APNG of 3 frames (acTL, fcTL, fdAT): the first")
    fr[0].save(os.path.join(OUT, "apng_default.png"), save_all=True, append_images=fr[1:], duration=40, loop=0,
               default_image=True)
    golden("apng_default", "apng_default.png", "APNG whose default image is not part of the animation")
    fa = [Image.fromarray(r.randint(0, 256, (11, 13, 4)).astype(np.uint8), "RGBA") for _ in range(2)]
    fa[0].save(os.path.join(OUT, "apng_rgba.png"), save_all=True, append_images=fa[1:], duration=40, loop=0,
               disposal=1, blend=1)
    golden("apng_rgba", "apng_rgba.png", "APNG RGBA with disposal and blending: the first frame, alpha dropped")
    # cut inside a later frame: an animated file's load_end stops at the next fcTL, so Pillow never
    # reads that far; a still PNG's later chunk cut short is refused (bad_png_* cases)
    for name in ("apng_rgb", "apng_default"):
        with open(os.path.join(OUT, name + ".png"), "rb") as f:
            data = f.read()
        with open(os.path.join(OUT, name + "_cut.png"), "wb") as f:
            f.write(data[:data.index(b"fdAT") + 20])
        golden(name + "_cut", name + "_cut.png", "APNG cut inside its second frame's data")


def webp_cases():
    """WebP as Pillow writes it (libwebp): lossy and lossless, with and without alpha, grey
    (Pillow saves it as RGB), an animation (its first frame), small and odd sizes."""
    rgb = pattern(67, 45, 3, 255, seed=81).astype(np.uint8)
    im = Image.fromarray(rgb, "RGB")
    im.save(os.path.join(OUT, "webp_lossy_67x45.webp"), quality=80)
    golden("webp_lossy_67x45", "webp_lossy_67x45.webp", "WebP lossy (VP8), quality 80")
    im.save(os.path.join(OUT, "webp_lossy_q100.webp"), quality=100, method=6)
    golden("webp_lossy_q100", "webp_lossy_q100.webp", "WebP lossy, quality 100, method 6")
    rgba = pattern(33, 21, 4, 255, seed=82).astype(np.uint8)
    rgba[:5, :7, 3] = 0  # fully transparent corner: its RGB is whatever the codec keeps
    ima = Image.fromarray(rgba, "RGBA")
    ima.save(os.path.join(OUT, "webp_lossy_alpha.webp"), quality=70)
    golden("webp_lossy_alpha", "webp_lossy_alpha.webp", "WebP lossy with an alpha plane (VP8X + ALPH)")
    im.save(os.path.join(OUT, "webp_lossless.webp"), lossless=True)
    golden("webp_lossless", "webp_lossless.webp", "WebP lossless (VP8L), RGB")
    ima.save(os.path.join(OUT, "webp_lossless_alpha.webp"), lossless=True, exact=True)
    golden("webp_lossless_alpha", "webp_lossless_alpha.webp", "WebP lossless with alpha, RGB kept under alpha 0")
    Image.fromarray(pattern(19, 23, 1, 255, seed=83)[:, :, 0].astype(np.uint8), "L").save(
        os.path.join(OUT, "webp_gray.webp"), quality=90)
    golden("webp_gray", "webp_gray.webp", "WebP from a grey image")
    Image.fromarray(pattern(1, 1, 3, 255, seed=84).astype(np.uint8), "RGB").save(
        os.path.join(OUT, "webp_1x1.webp"), lossless=True)
    golden("webp_1x1", "webp_1x1.webp", "WebP lossless 1x1")
    Image.fromarray(pattern(17, 1, 3, 255, seed=85).astype(np.uint8), "RGB").save(
        os.path.join(OUT, "webp_17x1.webp"), quality=60)
    golden("webp_17x1", "webp_17x1.webp", "WebP lossy 17x1")
    frames = [Image.fromarray(pattern(24, 18, 3, 255, seed=86 + k).astype(np.uint8), "RGB") for k in range(3)]
    frames[0].save(os.path.join(OUT, "webp_anim.webp"), save_all=True, append_images=frames[1:], duration=40,
                   loop=0, quality=75)
    golden("webp_anim", "webp_anim.webp", "animated WebP (VP8X + ANIM/ANMF), 3 frames: the first")
    # refused: cut inside the bitstream, and an unknown first chunk
    data = open(os.path.join(OUT, "webp_lossy_67x45.webp"), "rb").read()
    with open(os.path.join(OUT, "bad_webp_truncated.webp"), "wb") as f:
        f.write(data[: len(data) * 3 // 5])
    refused("bad_webp_truncated.webp", "WebP cut inside the VP8 bitstream")
    with open(os.path.join(OUT, "bad_webp_chunk.webp"), "wb") as f:
        f.write(data[:12] + b"VP8Z" + data[16:])
    refused("bad_webp_chunk.webp", "RIFF/WEBP whose first chunk is not VP8, VP8L or VP8X")


def write_bmp(path, w, h, bits, rows, palette=None, pad=4, hs=40, comp=0, masks=None, topdown=False, colors=None,
              offset=None, data=None):
    """A BMP written byte by byte: `rows` top row first, each row's packed pixel bytes (padded here
    to 4 bytes); `data` replaces the pixel data (RLE). masks go inside a header of 52+ bytes, or
    after a 40-byte one."""
    if data is None:
        stride = ((w * bits + 31) >> 3) & ~3
        order = rows if topdown else rows[::-1]
        data = b"".join(r + b"\0" * (stride - len(r)) for r in order)
    pal = b""
    if palette is not None:
        pal = b"".join(bytes([b, g, r]) + (b"\0" if pad == 4 else b"") for (r, g, b) in palette)
    if hs == 12:
        hdr = struct.pack("<IHHHH", 12, w, h, 1, bits)
    else:
        hh = (2**32 - h) if topdown else h
        hdr = struct.pack("<IiIHHIIiiII", hs, w, hh, 1, bits, comp, len(data), 2835, 2835,
                          len(palette) if (palette is not None and colors is None) else (colors or 0), 0)
        hdr = bytearray(hdr + b"\0" * (hs - 40))
        if masks is not None and hs >= 56:
            hdr[40:40 + 4 * len(masks)] = struct.pack("<" + "I" * len(masks), *masks)
        hdr = bytes(hdr)
    after = b""
    if masks is not None and hs == 40:
        after = struct.pack("<III", *masks[:3])
    off = 14 + len(hdr) + len(after) + len(pal) if offset is None else offset
    body = hdr + after + pal + data
    with open(path, "wb") as f:
        f.write(b"BM" + struct.pack("<IHHI", 14 + len(body), 0, 0, off) + body)


def pack_bits(vals, bits):
    out, acc, n = bytearray(), 0, 0
    for v in vals:
        acc = (acc << bits) | int(v)
        n += bits
        if n == 8:
            out.append(acc)
            acc, n = 0, 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def bmp_cases():
    """BMP as Pillow's BmpImagePlugin reads it: what Pillow writes (1, L, P, RGB, RGBA), and written
    here: 4-bit and coloured 1-bit palettes, short palettes (a grey ramp past them), 16-bit 5-5-5
    and 5-6-5, 32-bit in every bitfield layout Pillow knows, top-down rows, OS/2 and V4/V5 headers,
    no data offset, RLE8 and RLE4 (runs, absolute runs, deltas, ends of line) and Pillow's grey
    palette rule (read raw as L or 1, whatever the depth)."""
    J = lambda n: os.path.join(OUT, n)
    rgb = pattern(13, 7, 3, 255, seed=71).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(J("bmp_rgb24.bmp"))
    golden("bmp_rgb24", "bmp_rgb24.bmp", "BMP 24-bit as Pillow writes it (bottom-up, rows padded)")
    rgba = pattern(9, 5, 4, 255, seed=72).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(J("bmp_rgba32.bmp"))
    golden("bmp_rgba32", "bmp_rgba32.bmp", "BMP 32-bit BGRA as Pillow writes it (read as BGRX)")
    Image.fromarray(pattern(11, 6, 1, 255, seed=73)[:, :, 0].astype(np.uint8), "L").save(J("bmp_l8.bmp"))
    golden("bmp_l8", "bmp_l8.bmp", "BMP 8-bit grey palette (Pillow: mode L)")
    Image.fromarray(pattern(19, 4, 1, 1, seed=74)[:, :, 0].astype(np.uint8) * 255, "L").convert("1").save(
        J("bmp_1bit.bmp"))
    golden("bmp_1bit", "bmp_1bit.bmp", "BMP 1-bit black and white (Pillow: mode 1)")
    Image.fromarray(rgb, "RGB").quantize(37).save(J("bmp_p8.bmp"))
    golden("bmp_p8", "bmp_p8.bmp", "BMP 8-bit palette of 37 colours as Pillow writes it")
    r = np.random.RandomState(75)
    # 4-bit palette, odd width
    pal16 = [tuple(int(v) for v in r.randint(0, 256, 3)) for _ in range(16)]
    idx = r.randint(0, 16, (7, 13))
    write_bmp(J("bmp_p4.bmp"), 13, 7, 4, [pack_bits(row, 4) for row in idx], palette=pal16)
    golden("bmp_p4", "bmp_p4.bmp", "BMP 4-bit palette, 13 wide")
    # 1-bit with two colours that are not black and white
    idx = r.randint(0, 2, (5, 21))
    write_bmp(J("bmp_p1_colour.bmp"), 21, 5, 1, [pack_bits(row, 1) for row in idx],
              palette=[(200, 30, 40), (10, 220, 90)])
    golden("bmp_p1_colour", "bmp_p1_colour.bmp", "BMP 1-bit with a coloured palette")
    # 8-bit with 5 colours and indices up to 255: past the palette, Pillow's grey ramp
    idx = r.randint(0, 256, (6, 10))
    idx[0, :5] = [0, 1, 2, 3, 4]
    write_bmp(J("bmp_p8_short.bmp"), 10, 6, 8, [bytes(int(v) for v in row) for row in idx],
              palette=[tuple(int(v) for v in r.randint(0, 256, 3)) for _ in range(5)])
    golden("bmp_p8_short", "bmp_p8_short.bmp", "BMP 8-bit, 5 palette entries, indices past them")
    # 8-bit data with a black-and-white palette of two: Pillow reads the rows as 1-bit
    idx = r.randint(0, 256, (4, 12))
    write_bmp(J("bmp_p8_bw.bmp"), 12, 4, 8, [bytes(int(v) for v in row) for row in idx],
              palette=[(0, 0, 0), (255, 255, 255)])
    golden("bmp_p8_bw", "bmp_p8_bw.bmp", "BMP 8-bit data, palette black and white: Pillow's mode 1 over the bytes")
    # 16-bit: 5-5-5 plain, 5-6-5 and 5-5-5 bitfields (masks after a 40-byte header, in a V4 header)
    v16 = r.randint(0, 65536, (5, 11))
    rows16 = [b"".join(struct.pack("<H", int(v)) for v in row) for row in v16]
    write_bmp(J("bmp_16.bmp"), 11, 5, 16, rows16)
    golden("bmp_16", "bmp_16.bmp", "BMP 16-bit 5-5-5, top bit set on some pixels")
    write_bmp(J("bmp_16_565.bmp"), 11, 5, 16, rows16, comp=3, masks=(0xF800, 0x7E0, 0x1F))
    golden("bmp_16_565", "bmp_16_565.bmp", "BMP 16-bit 5-6-5 bitfields after a 40-byte header")
    write_bmp(J("bmp_16_555_v4.bmp"), 11, 5, 16, rows16, hs=108, comp=3, masks=(0x7C00, 0x3E0, 0x1F, 0))
    golden("bmp_16_555_v4", "bmp_16_555_v4.bmp", "BMP 16-bit 5-5-5 bitfields in a V4 header")
    # 32-bit: plain BGRX, and each bitfield layout (V5 header)
    v32 = r.randint(0, 256, (4, 7, 4)).astype(np.uint8)
    rows32 = [bytes(row.reshape(-1)) for row in v32]
    write_bmp(J("bmp_32.bmp"), 7, 4, 32, rows32)
    golden("bmp_32", "bmp_32.bmp", "BMP 32-bit BGRX")
    for name, m in [("xbgr", (0xFF000000, 0xFF0000, 0xFF00, 0)), ("abgr", (0xFF000000, 0xFF0000, 0xFF00, 0xFF)),
                    ("rgba", (0xFF, 0xFF00, 0xFF0000, 0xFF000000)), ("bgra", (0xFF0000, 0xFF00, 0xFF, 0xFF000000)),
                    ("zero", (0, 0, 0, 0))]:
        write_bmp(J(f"bmp_32_{name}.bmp"), 7, 4, 32, rows32, hs=124, comp=3, masks=m)
        golden(f"bmp_32_{name}", f"bmp_32_{name}.bmp", f"BMP 32-bit bitfields {name.upper()} (V5 header)")
    write_bmp(J("bmp_24_bf.bmp"), 13, 7, 24, [bytes(row[:, ::-1].reshape(-1)) for row in rgb], comp=3,
              masks=(0xFF0000, 0xFF00, 0xFF))
    golden("bmp_24_bf", "bmp_24_bf.bmp", "BMP 24-bit with BGR bitfields")
    # top-down rows, no data offset, OS/2 1.x header with a BGR palette
    write_bmp(J("bmp_24_topdown.bmp"), 13, 7, 24, [bytes(row[:, ::-1].reshape(-1)) for row in rgb], topdown=True)
    golden("bmp_24_topdown", "bmp_24_topdown.bmp", "BMP 24-bit top-down (negative height)")
    write_bmp(J("bmp_24_nooffset.bmp"), 13, 7, 24, [bytes(row[:, ::-1].reshape(-1)) for row in rgb], offset=0)
    golden("bmp_24_nooffset", "bmp_24_nooffset.bmp", "BMP with a data offset of 0 (the data follow the header)")
    idx = r.randint(0, 256, (5, 9))
    write_bmp(J("bmp_os2.bmp"), 9, 5, 8, [bytes(int(v) for v in row) for row in idx], hs=12, pad=3,
              palette=[tuple(int(v) for v in r.randint(0, 256, 3)) for _ in range(256)])
    golden("bmp_os2", "bmp_os2.bmp", "BMP OS/2 1.x header (16-bit sizes, BGR palette triples)")
    # RLE8: runs (one clipped at the row end), absolute runs of odd length (word alignment), a delta,
    # ends of line and of bitmap
    pal = [tuple(int(v) for v in r.randint(0, 256, 3)) for _ in range(64)]
    def rle(start, ops, rle4=False):
        """An RLE stream from ("run", n, v), ("abs", [values]), ("delta", dx, dy), ("eol",), ("eob",);
        an absolute run is followed by a pad byte where the file position after it is odd."""
        out = bytearray()
        for op in ops:
            if op[0] == "run":
                out += bytes([op[1], op[2]])
            elif op[0] == "abs":
                vals = op[1]
                out += bytes([0, len(vals)])
                # RLE4: Pillow reads count // 2 bytes (an odd count's last pixel is not read)
                out += pack_bits(vals[: len(vals) // 2 * 2], 4) if rle4 else bytes(vals)
                if (start + len(out)) % 2:
                    out += b"\0"
            elif op[0] == "delta":
                out += bytes([0, 2, op[1], op[2]])
            else:
                out += bytes([0, 0 if op[0] == "eol" else 1])
        return bytes(out)

    rle8_ops = [("run", 5, 7), ("run", 3, 9), ("abs", [1, 2, 3, 4, 5]), ("run", 20, 11), ("eol",),
                ("abs", [30, 31, 32]), ("run", 4, 40), ("eol",),
                ("delta", 3, 1), ("run", 6, 12), ("eol",),
                ("run", 17, 50), ("eol",), ("run", 2, 60), ("abs", [1, 2, 3, 4, 5, 6]), ("eol",), ("eob",)]
    rle8 = rle(14 + 40 + 4 * 64, rle8_ops)
    write_bmp(J("bmp_rle8.bmp"), 17, 6, 8, None, palette=pal, comp=1, data=rle8)
    golden("bmp_rle8", "bmp_rle8.bmp", "BMP RLE8: runs, absolute runs, ends of line, then a delta as Pillow reads "
           "it (it skips two bytes and takes right and up from the next two: here zeros to the end)")
    rle8_nd = rle(14 + 40 + 4 * 64, [op for op in rle8_ops if op[0] != "delta"] [:-1] +
                  [("run", 17, 21), ("eol",), ("eob",)])
    write_bmp(J("bmp_rle8_nodelta.bmp"), 17, 6, 8, None, palette=pal, comp=1, data=rle8_nd)
    golden("bmp_rle8_nodelta", "bmp_rle8_nodelta.bmp", "BMP RLE8 without a delta: every row from the stream")
    rle4 = rle(14 + 40 + 4 * 16, [("run", 7, 0x12), ("abs", [3, 4, 5, 6, 7]), ("run", 2, 0xAB), ("eol",),
                                    ("abs", [9, 12, 13]), ("eol",), ("run", 13, 0xF1), ("eol",), ("run", 13, 0x0F),
                                    ("eol",), ("run", 4, 0x88), ("eol",), ("eob",)], rle4=True)
    write_bmp(J("bmp_rle4.bmp"), 13, 5, 4, None, palette=pal[:16], comp=2, data=rle4)
    golden("bmp_rle4", "bmp_rle4.bmp", "BMP RLE4: runs, odd absolute runs (Pillow keeps count//2 bytes), EOL/EOB")
    write_bmp(J("bmp_rle8_topdown.bmp"), 17, 6, 8, None, palette=pal, comp=1, data=rle8, topdown=True)
    golden("bmp_rle8_topdown", "bmp_rle8_topdown.bmp", "BMP RLE8 with a negative height")
    # refused
    data = open(J("bmp_rgb24.bmp"), "rb").read()
    with open(J("bad_bmp_truncated.bmp"), "wb") as f:
        f.write(data[: len(data) - 40])
    refused("bad_bmp_truncated.bmp", "BMP pixel data cut short")
    write_bmp(J("bad_bmp_bitfields.bmp"), 7, 4, 32, rows32, hs=124, comp=3, masks=(0xFF00, 0xFF, 0xFF0000, 0))
    refused("bad_bmp_bitfields.bmp", "BMP 32-bit bitfields in a layout Pillow does not know")
    write_bmp(J("bad_bmp_rle_short.bmp"), 17, 6, 8, None, palette=pal, comp=1, data=rle(14 + 40 + 4 * 64, rle8_ops[:8] + [("eob",)]))
    refused("bad_bmp_rle_short.bmp", "BMP RLE8 ended before the last row")
    write_bmp(J("bad_bmp_rle_delta.bmp"), 17, 6, 8, None, palette=pal, comp=1,
              data=rle(14 + 40 + 4 * 64, rle8_ops[:3]) + bytes([0, 2, 3, 1, 4]))
    refused("bad_bmp_rle_delta.bmp", "BMP RLE8 delta whose second byte pair is cut short (Pillow fails unpacking)")
    idx = r.randint(0, 256, (3, 5))
    write_bmp(J("bad_bmp_colors.bmp"), 5, 3, 8, [bytes(int(v) for v in row) for row in idx],
              palette=[(i % 256, 0, 0) for i in range(300)])
    refused("bad_bmp_colors.bmp", "BMP with 300 palette entries")
    # more colours than the file holds: Pillow's palette read stops at the end of the file (the
    # pixel data included), leaving fewer than 256 entries, and the data come from the file
    # header's offset
    write_bmp(J("bmp_colors_past_end.bmp"), 5, 3, 8, [bytes(int(v) for v in row) for row in idx],
              palette=[tuple(int(v) for v in r.randint(0, 256, 3)) for _ in range(16)], colors=5000)
    golden("bmp_colors_past_end", "bmp_colors_past_end.bmp", "BMP 8-bit whose colour count runs past the end of "
           "the file: the palette is what the file has left")
    write_bmp(J("bmp_grey_300.bmp"), 5, 3, 8, [bytes(int(v) for v in row) for row in idx],
              palette=[(i % 256,) * 3 for i in range(300)])
    golden("bmp_grey_300", "bmp_grey_300.bmp", "BMP 8-bit with 300 entries, each grey (i % 256): Pillow's grey "
           "test passes and the image is L")
    write_bmp(J("bad_bmp_jpeg.bmp"), 13, 7, 24, [bytes(row[:, ::-1].reshape(-1)) for row in rgb], comp=4)
    refused("bad_bmp_jpeg.bmp", "BMP with JPEG compression")
    idx = r.randint(0, 16, (3, 40))
    write_bmp(J("bad_bmp_p4_grey.bmp"), 40, 3, 4, [pack_bits(row, 4) for row in idx],
              palette=[(i, i, i) for i in range(16)])
    refused("bad_bmp_p4_grey.bmp", "BMP 4-bit with a grey ramp palette: Pillow reads its rows as 8-bit grey "
            "(past the row; through a file object its decoder refuses)", pil_refuses=False)


def lzw_gif(indices, min_bits, clear_every=0, end_code=True):
    """GIF LZW data sub-blocks for `indices`: a clear code first, codes growing to 12 bits, no
    clear when the table is full (a deferred clear), optionally a clear every `clear_every` codes."""
    clear, end = 1 << min_bits, (1 << min_bits) + 1
    codes = [clear]
    table = {(i,): i for i in range(clear)}
    nxt, size = end + 1, min_bits + 1
    widths = [size]
    cur = ()
    emitted = 0
    for v in indices:
        cand = cur + (int(v),)
        if cand in table:
            cur = cand
            continue
        codes.append(table[cur])
        widths.append(size)
        emitted += 1
        if nxt < 4096:
            table[cand] = nxt
            nxt += 1
            if nxt > (1 << size) and size < 12:
                size += 1
        cur = (int(v),)
        if clear_every and emitted % clear_every == 0:
            codes.append(table[cur])
            widths.append(size)
            codes.append(clear)
            widths.append(size)
            table = {(i,): i for i in range(clear)}
            nxt, size = end + 1, min_bits + 1
            cur = ()
    if cur:
        codes.append(table[cur])
        widths.append(size)
    if end_code:
        codes.append(end)
        widths.append(size)
    acc, nbits, out = 0, 0, bytearray()
    for c, wdt in zip(codes, widths):
        acc |= c << nbits
        nbits += wdt
        while nbits >= 8:
            out.append(acc & 255)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 255)
    blocks = bytearray()
    for i in range(0, len(out), 255):
        chunk = out[i:i + 255]
        blocks += bytes([len(chunk)]) + chunk
    return bytes([min_bits]) + bytes(blocks) + b"\0"


def write_gif(path, sw, sh, frame, fx=0, fy=0, gpal=None, lpal=None, transparency=None, interlace=False,
              version=b"GIF89a", pre=b"", trailer=True, min_bits=None, clear_every=0, data=None):
    """A GIF of one image written byte by byte: screen sw x sh, the frame (rows of indices) at
    (fx, fy); palettes as lists of (r, g, b) of 2**k entries."""
    fh, fw = frame.shape

    def pal_bits(p):
        return max(1, (len(p) - 1).bit_length()) - 1

    flags = 0
    gp = b""
    if gpal is not None:
        flags = 0x80 | pal_bits(gpal)
        gp = b"".join(bytes(c) for c in gpal)
    out = version + struct.pack("<HHBBB", sw, sh, flags, 0, 0) + gp + pre
    if transparency is not None:
        out += b"!\xf9\x04" + bytes([1]) + struct.pack("<H", 0) + bytes([transparency]) + b"\0"
    lflags = 0x40 if interlace else 0
    lp = b""
    if lpal is not None:
        lflags |= 0x80 | pal_bits(lpal)
        lp = b"".join(bytes(c) for c in lpal)
    out += b"," + struct.pack("<HHHHB", fx, fy, fw, fh, lflags) + lp
    rows = frame
    if interlace:
        order = list(range(0, fh, 8)) + list(range(4, fh, 8)) + list(range(2, fh, 4)) + list(range(1, fh, 2))
        rows = frame[order]
    if data is None:
        bits = min_bits if min_bits is not None else max(2, int(frame.max()).bit_length())
        data = lzw_gif(rows.reshape(-1), bits, clear_every)
    out += data + (b";" if trailer else b"")
    with open(path, "wb") as f:
        f.write(out)


def gif_cases():
    """GIF, the first frame as Pillow's GifImagePlugin reads it: what Pillow writes (palette, grey,
    transparency, interlaced, animated), and written here: a frame smaller than the screen (the rest
    index 0, or the transparent index), a frame past the screen (the screen grows), local palettes
    (a grey ramp one means no palette: grey), no palette at all, extensions and stray bytes before
    the image, GIF87a, no trailer, clear codes in the stream and a full code table, and Pillow's
    rule that a frame from x 0 of width 0 covers the whole image."""
    J = lambda n: os.path.join(OUT, n)
    rgb = pattern(23, 17, 3, 255, seed=61).astype(np.uint8)
    Image.fromarray(rgb, "RGB").quantize(29).save(J("gif_p.gif"))
    golden("gif_p", "gif_p.gif", "GIF of 29 colours as Pillow writes it (interlaced: 17 rows)")
    Image.fromarray(pattern(13, 9, 1, 255, seed=62)[:, :, 0].astype(np.uint8), "L").save(J("gif_l.gif"))
    golden("gif_l", "gif_l.gif", "GIF from a grey image (Pillow writes a grey ramp palette: mode L)")
    q = Image.fromarray(rgb, "RGB").quantize(16)
    q.info["transparency"] = 3
    q.save(J("gif_trns.gif"), transparency=3)
    golden("gif_trns", "gif_trns.gif", "GIF with a transparent index (dropped by convert)")
    frames = [Image.fromarray(pattern(20, 12, 3, 255, seed=63 + k).astype(np.uint8), "RGB").quantize(8)
              for k in range(3)]
    frames[0].save(J("gif_anim.gif"), save_all=True, append_images=frames[1:], duration=50, loop=0)
    golden("gif_anim", "gif_anim.gif", "animated GIF (NETSCAPE2.0 loop, 3 frames): the first")
    Image.fromarray(pattern(1, 1, 3, 255, seed=64).astype(np.uint8), "RGB").quantize(2).save(J("gif_1x1.gif"))
    golden("gif_1x1", "gif_1x1.gif", "GIF 1x1")
    r = np.random.RandomState(65)
    pal16 = [tuple(int(v) for v in r.randint(0, 256, 3)) for _ in range(16)]
    pal4 = [tuple(int(v) for v in r.randint(0, 256, 3)) for _ in range(4)]
    fr = r.randint(0, 16, (5, 7))
    write_gif(J("gif_offset.gif"), 12, 9, fr, fx=3, fy=2, gpal=pal16)
    golden("gif_offset", "gif_offset.gif", "GIF frame 7x5 at (3, 2) of a 12x9 screen: index 0 around it")
    write_gif(J("gif_offset_trns.gif"), 12, 9, fr, fx=3, fy=2, gpal=pal16, transparency=9)
    golden("gif_offset_trns", "gif_offset_trns.gif", "the same with transparent index 9: index 9 around it")
    write_gif(J("gif_grow.gif"), 6, 4, fr, fx=2, fy=1, gpal=pal16)
    golden("gif_grow", "gif_grow.gif", "GIF frame past the 6x4 screen: the image grows to 9x6")
    write_gif(J("gif_local.gif"), 7, 5, r.randint(0, 4, (5, 7)), gpal=pal16, lpal=pal4)
    golden("gif_local", "gif_local.gif", "GIF with a local palette over the global one")
    ramp = [(i, i, i) for i in range(16)]
    write_gif(J("gif_local_ramp.gif"), 7, 5, fr, gpal=pal16, lpal=ramp)
    golden("gif_local_ramp", "gif_local_ramp.gif", "GIF whose local palette is the grey ramp: Pillow's mode L, "
           "but the global palette is put on the image and converts it")
    write_gif(J("gif_local_ramp_only.gif"), 7, 5, fr, lpal=ramp)
    golden("gif_local_ramp_only", "gif_local_ramp_only.gif", "GIF with only a grey-ramp local palette: grey")
    write_gif(J("gif_nopal.gif"), 7, 5, fr * 13)
    golden("gif_nopal", "gif_nopal.gif", "GIF with no palette at all: indices as grey")
    pre = (b"!\xfe\x05hello\x03abc\0" + b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\0" + b"\x07\x99" +
           b"!\x01\x02xy\0")
    write_gif(J("gif_ext.gif"), 7, 5, fr, gpal=pal16, pre=pre)
    golden("gif_ext", "gif_ext.gif", "GIF with comment, NETSCAPE, plain-text extensions and stray bytes first")
    write_gif(J("gif_87a.gif"), 7, 5, fr, gpal=pal16, version=b"GIF87a", trailer=False)
    golden("gif_87a", "gif_87a.gif", "GIF87a without its trailer")
    big = r.randint(0, 256, (60, 130))
    big[:, :40] = (np.arange(40) * 3) % 256
    pal256 = [tuple(int(v) for v in r.randint(0, 256, 3)) for _ in range(256)]
    write_gif(J("gif_table_full.gif"), 130, 60, big, gpal=pal256)
    golden("gif_table_full", "gif_table_full.gif", "GIF 8-bit noise: the code table fills (12-bit codes, no clear)")
    write_gif(J("gif_clears.gif"), 130, 60, big, gpal=pal256, clear_every=700, interlace=True)
    golden("gif_clears", "gif_clears.gif", "GIF interlaced, a clear code every 700 codes")
    write_gif(J("gif_min_bits8.gif"), 7, 5, fr, gpal=pal16, min_bits=8)
    golden("gif_min_bits8", "gif_min_bits8.gif", "GIF with 4-bit indices coded with a minimum code size of 8")
    write_gif(J("gif_x0w0.gif"), 6, 4, np.zeros((3, 0), np.int64), gpal=pal16,
              data=lzw_gif(r.randint(0, 16, 24), 4))
    golden("gif_x0w0", "gif_x0w0.gif", "GIF frame at x 0 of width 0: Pillow decodes it over the whole 6x4 image")
    # refused
    data = open(J("gif_table_full.gif"), "rb").read()
    with open(J("bad_gif_truncated.gif"), "wb") as f:
        f.write(data[: len(data) // 2])
    refused("bad_gif_truncated.gif", "GIF cut inside its image data")
    write_gif(J("bad_gif_early_end.gif"), 7, 5, fr, gpal=pal16, data=lzw_gif(fr.reshape(-1)[:20], 4))
    refused("bad_gif_early_end.gif", "GIF whose end code comes before the frame is full")
    write_gif(J("bad_gif_code.gif"), 7, 5, fr, gpal=pal16, data=bytes([2, 2, 0x04 | (7 << 3), 0xff, 0]))
    refused("bad_gif_code.gif", "GIF with a code past the table")
    write_gif(J("bad_gif_gce.gif"), 7, 5, fr, gpal=pal16, pre=b"!\xf9\x02\x01\x00\0")
    refused("bad_gif_gce.gif", "GIF graphic control extension of 2 bytes")
    write_gif(J("bad_gif_bomb.gif"), 13000, 13800, fr, gpal=pal16)
    refused("bad_gif_bomb.gif", "GIF screen of 13000x13800 around a 7x5 frame: over Pillow's decompression-bomb "
            "limit (twice Image.MAX_IMAGE_PIXELS)")


# ---- TIFF writer ----------------------------------------------------------------------------

def pack_samples(rows, bits, be):
    """rows: h x n (samples of a row, all bands interleaved or one band) -> bytes, each row padded
    to a byte; 16/32-bit in the file's byte order."""
    out = bytearray()
    for row in rows:
        if bits >= 8:
            fmt = {8: "B", 16: "H", 32: "I"}[bits]
            out += struct.pack((">" if be else "<") + fmt * len(row), *[int(v) & ((1 << bits) - 1) for v in row])
        else:
            acc = nb = 0
            line = bytearray()
            for v in row:
                acc = (acc << bits) | int(v)
                nb += bits
                if nb == 8:
                    line.append(acc)
                    acc = nb = 0
            if nb:
                line.append(acc << (8 - nb))
            out += line
    return bytes(out)


def rev_bits(data):
    return bytes(int(f"{b:08b}"[::-1], 2) for b in data)


def write_tiff(path, w, h, pix, bps, photometric=None, extra=(), sample_format=None, be=False, fillorder=None,
               planar=1, rows_per_strip=None, colormap=None, orientation=None, bigtiff=False, spp=None,
               pages=1, strip_data=None, deflate=False, tags_extra=None):
    """An uncompressed TIFF: pix is h x w x bands (ints); one IFD (or `pages` equal ones).
    strip_data: the strips' bytes as given (pix then only gives the band count); deflate: each
    strip zlib-compressed (compression 8); tags_extra: {tag: (type, values)} added."""
    bands = pix.shape[2]
    spp = bands if spp is None else spp
    rps = rows_per_strip or h
    strips = []
    planes = [pix[:, :, b:b + 1] for b in range(bands)] if planar == 2 else [pix]
    for plane in planes:
        for y0 in range(0, h, rps):
            rows = plane[y0:y0 + rps].reshape(min(rps, h - y0), -1)
            data = pack_samples(rows, bps, be)
            if fillorder == 2:
                data = rev_bits(data)
            strips.append(data)
    if strip_data is not None:
        strips = list(strip_data)
    if deflate:
        strips = [zlib.compress(st) for st in strips]
    e = ">" if be else "<"
    hdr = (b"MM" if be else b"II") + (struct.pack(e + "HHHQ", 43, 8, 0, 0) if bigtiff else struct.pack(e + "HI", 42, 0))
    body = bytearray(hdr)
    offsets = []
    for st in strips:
        offsets.append(len(body))
        body += st
        if len(body) % 2:
            body += b"\0"
    tags = {256: (4, [w]), 257: (4, [h]), 258: (3, [bps] * spp), 259: (3, [1]), 273: (16 if bigtiff else 4, offsets),
            277: (3, [spp]), 278: (4, [rps]), 279: (16 if bigtiff else 4, [len(s) for s in strips]),
            284: (3, [planar])}
    if photometric is not None:
        tags[262] = (3, [photometric])
    if extra:
        tags[338] = (3, list(extra))
    if sample_format is not None:
        tags[339] = (3, [sample_format] * spp)
    if fillorder is not None:
        tags[266] = (3, [fillorder])
    if colormap is not None:
        tags[320] = (3, list(colormap))
    if orientation is not None:
        tags[274] = (3, [orientation])
    if deflate:
        tags[259] = (3, [8])
    tags.update(tags_extra or {})
    tsz = {3: 2, 4: 4, 16: 8}
    ifds = []
    for page in range(pages):
        ifd_off = len(body)
        n = len(tags)
        ent = 20 if bigtiff else 12
        cnt = 8 if bigtiff else 2
        nxt = 8 if bigtiff else 4
        data_off = ifd_off + cnt + n * ent + nxt
        entries = bytearray()
        extra_data = bytearray()
        for tag in sorted(tags):
            typ, vals = tags[tag]
            raw = struct.pack(e + {3: "H", 4: "I", 16: "Q"}[typ] * len(vals), *vals)
            inline = 8 if bigtiff else 4
            if len(raw) <= inline:
                val = raw + b"\0" * (inline - len(raw))
            else:
                val = struct.pack(e + ("Q" if bigtiff else "I"), data_off + len(extra_data))
                extra_data += raw
                if len(extra_data) % 2:
                    extra_data += b"\0"
            entries += struct.pack(e + ("HHQ" if bigtiff else "HHI"), tag, typ, len(vals)) + val
        body += struct.pack(e + ("Q" if bigtiff else "H"), n) + entries
        next_pos = len(body)
        body += b"\0" * nxt
        body += extra_data
        ifds.append((ifd_off, next_pos))
    for i, (off, next_pos) in enumerate(ifds):
        if i + 1 < len(ifds):
            body[next_pos:next_pos + (8 if bigtiff else 4)] = struct.pack(e + ("Q" if bigtiff else "I"), ifds[i + 1][0])
    if bigtiff:
        body[8:16] = struct.pack(e + "Q", ifds[0][0])
    else:
        body[4:8] = struct.pack(e + "I", ifds[0][0])
    with open(path, "wb") as f:
        f.write(bytes(body))


def tiffcp(src, dst, *args):
    import subprocess
    subprocess.run(["tiffcp", *args, src, dst], check=True, capture_output=True)


def tiff_cases():
    J = lambda f: os.path.join(OUT, f)
    w, h = 13, 9
    rgb = pattern(w, h, 3, 255, seed=120)
    rgba = pattern(w, h, 4, 255, seed=121)
    grey = pattern(w, h, 1, 255, seed=122)
    # Pillow's own writer, each compression its libtiff has
    im = Image.fromarray(rgb.astype(np.uint8), "RGB")
    for comp in ("raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"):
        im.save(J(f"tif_pil_rgb_{comp}.tif"), compression=comp)
        golden(f"tif_pil_rgb_{comp}", f"tif_pil_rgb_{comp}.tif", f"TIFF RGB written by Pillow, compression {comp}")
    for mode, arr, comps in (("L", grey[:, :, 0], ("raw", "tiff_lzw", "jpeg")),
                             ("RGBA", rgba, ("raw", "tiff_deflate")),
                             ("CMYK", pattern(w, h, 4, 255, seed=123), ("raw", "packbits")),
                             ("LA", pattern(w, h, 2, 255, seed=124), ("raw",))):
        m = Image.fromarray(arr.astype(np.uint8), mode) if mode != "CMYK" else Image.frombytes(
            "CMYK", (w, h), arr.astype(np.uint8).tobytes())
        if mode == "LA":
            m = Image.frombytes("LA", (w, h), arr.astype(np.uint8).tobytes())
        for comp in comps:
            m.save(J(f"tif_pil_{mode.lower()}_{comp}.tif"), compression=comp)
            golden(f"tif_pil_{mode.lower()}_{comp}", f"tif_pil_{mode.lower()}_{comp}.tif",
                   f"TIFF {mode} written by Pillow, compression {comp}")
    bw = Image.fromarray((grey[:, :, 0] > 128).astype(np.uint8) * 255, "L").convert("1")
    for comp in ("raw", "group3", "group4", "tiff_lzw"):
        bw.save(J(f"tif_pil_1_{comp}.tif"), compression=comp)
        golden(f"tif_pil_1_{comp}", f"tif_pil_1_{comp}.tif", f"TIFF bilevel written by Pillow, compression {comp}")
    pim = im.quantize(colors=23)
    pim.save(J("tif_pil_p.tif"))
    golden("tif_pil_p", "tif_pil_p.tif", "TIFF palette (8-bit, 16-bit colormap) written by Pillow")
    i16 = Image.frombytes("I;16", (w, h), (pattern(w, h, 1, 600, seed=125)[:, :, 0]).astype("<u2").tobytes())
    for comp in ("raw", "tiff_lzw"):
        i16.save(J(f"tif_pil_i16_{comp}.tif"), compression=comp)
        golden(f"tif_pil_i16_{comp}", f"tif_pil_i16_{comp}.tif", f"TIFF 16-bit grey written by Pillow ({comp}): "
               "mode I;16, min(v, 255)")

    # hand-written layouts
    def case(name, what, **kw):
        write_tiff(J(name + ".tif"), kw.pop("w", w), kw.pop("h", h), **kw)
        golden(name, name + ".tif", what)

    for bits in (1, 2, 4, 8):
        g = pattern(w, h, 1, (1 << bits) - 1, seed=130 + bits)
        case(f"tif_grey{bits}_black0", f"TIFF grey {bits}-bit, min-is-black", pix=g, bps=bits, photometric=1)
        case(f"tif_grey{bits}_white0", f"TIFF grey {bits}-bit, min-is-white (inverted)", pix=g, bps=bits, photometric=0)
        case(f"tif_grey{bits}_fill2", f"TIFF grey {bits}-bit, fill order 2 (bits reversed in each byte)", pix=g,
             bps=bits, photometric=1, fillorder=2)
    g16 = pattern(w, h, 1, 65535, seed=140)
    g16[:3, :3, 0] = [[0, 1, 254], [255, 256, 300], [1000, 40000, 65535]]
    case("tif_grey16_le", "TIFF grey 16-bit little-endian: I;16, min(v, 255)", pix=g16, bps=16, photometric=1)
    case("tif_grey16_be", "TIFF grey 16-bit big-endian: I;16B", pix=g16, bps=16, photometric=1, be=True)
    case("tif_grey16_white0", "TIFF grey 16-bit min-is-white: Pillow reads it as I;16, not inverted", pix=g16,
         bps=16, photometric=0)
    case("tif_grey16_fill2", "TIFF grey 16-bit, fill order 2 (I;16R)", pix=g16, bps=16, photometric=1, fillorder=2)
    s16 = pattern(w, h, 1, 65535, seed=141) - 32768
    case("tif_grey16_signed", "TIFF grey 16-bit signed: I, clipped to 0..255", pix=s16, bps=16, photometric=1,
         sample_format=2)
    case("tif_grey16_signed_be", "TIFF grey 16-bit signed big-endian", pix=s16, bps=16, photometric=1,
         sample_format=2, be=True)
    s32 = (pattern(w, h, 1, 1000, seed=142) - 300)
    case("tif_grey32_signed", "TIFF grey 32-bit signed: I, clipped", pix=s32, bps=32, photometric=1, sample_format=2)
    case("tif_grey32_unsigned", "TIFF grey 32-bit unsigned: I;32N, clipped", pix=pattern(w, h, 1, 400, seed=143),
         bps=32, photometric=1)
    case("tif_rgb8_be", "TIFF RGB big-endian", pix=rgb, bps=8, photometric=2, be=True)
    case("tif_rgb8_strips", "TIFF RGB in strips of 2 rows", pix=rgb, bps=8, photometric=2, rows_per_strip=2)
    case("tif_rgb8_fill2", "TIFF RGB, fill order 2", pix=rgb, bps=8, photometric=2, fillorder=2)
    case("tif_rgb8_planar", "TIFF RGB, separate planes", pix=rgb, bps=8, photometric=2, planar=2, rows_per_strip=4)
    case("tif_rgba8_planar", "TIFF RGBA (unassociated), separate planes", pix=rgba, bps=8, photometric=2, planar=2,
         extra=(2,))
    case("tif_rgb8_bigtiff", "BigTIFF RGB", pix=rgb, bps=8, photometric=2, bigtiff=True)
    write_tiff(J("tif_rgb8_bigtiff_be.tif"), w, h, pix=rgb, bps=8, photometric=2, bigtiff=True, be=True)
    refused("tif_rgb8_bigtiff_be.tif", "big-endian BigTIFF: Pillow 9.4 tests byte 2 for 43, so it reads the "
            "file as a classic TIFF and fails")
    case("tif_rgb8_pages", "TIFF of three pages: the first", pix=rgb, bps=8, photometric=2, pages=3)
    prem = rgba.copy()
    prem[:, :, :3] = (prem[:, :, :3] * prem[:, :, 3:4]) // 255
    prem[0, :4, 3] = [0, 1, 255, 128]
    case("tif_rgba8_assoc", "TIFF RGBA with associated (premultiplied) alpha: Pillow divides it out", pix=prem, bps=8,
         photometric=2, extra=(1,))
    case("tif_rgba8_unassoc", "TIFF RGBA, unassociated alpha dropped", pix=rgba, bps=8, photometric=2, extra=(2,))
    case("tif_rgba8_noextra", "TIFF 4 samples with no ExtraSamples tag: RGBA", pix=rgba, bps=8, photometric=2)
    case("tif_rgbx8", "TIFF RGB plus an unspecified extra sample", pix=rgba, bps=8, photometric=2, extra=(0,))
    case("tif_rgba8_corel", "TIFF RGBA with ExtraSamples 999 (Corel Draw)", pix=rgba, bps=8, photometric=2,
         extra=(999,))
    six = pattern(w, h, 6, 255, seed=150)
    case("tif_rgbaxx", "TIFF RGBA plus two extra samples", pix=six, bps=8, photometric=2, extra=(2, 0, 0))
    case("tif_rgbaxx_assoc", "TIFF premultiplied RGBA plus two extra samples", pix=six, bps=8, photometric=2,
         extra=(1, 0, 0))
    rgb16 = pattern(w, h, 3, 65535, seed=151)
    case("tif_rgb16_le", "TIFF RGB 16-bit little-endian: high bytes", pix=rgb16, bps=16, photometric=2)
    case("tif_rgb16_be", "TIFF RGB 16-bit big-endian", pix=rgb16, bps=16, photometric=2, be=True)
    rgba16 = pattern(w, h, 4, 65535, seed=152)
    case("tif_rgba16", "TIFF RGBA 16-bit", pix=rgba16, bps=16, photometric=2, extra=(2,))
    prem16 = rgba16.copy()
    prem16[:, :, :3] = (prem16[:, :, :3] * prem16[:, :, 3:4]) // 65535
    prem16[0, :3, 3] = [0, 255, 65535]
    case("tif_rgba16_assoc", "TIFF RGBA 16-bit premultiplied", pix=prem16, bps=16, photometric=2, extra=(1,))
    for bits in (1, 2, 4, 8):
        n = 1 << bits
        cm = [int(v) for v in RNG.randint(0, 65536, size=3 * n)]
        idx = pattern(w, h, 1, n - 1, seed=160 + bits)
        case(f"tif_pal{bits}", f"TIFF palette {bits}-bit: colormap // 256", pix=idx, bps=bits, photometric=3,
             colormap=cm)
        if bits == 4:
            write_tiff(J("tif_pal4_fill2.tif"), w, h, pix=idx, bps=4, photometric=3, colormap=cm, fillorder=2)
            refused("tif_pal4_fill2.tif", "uncompressed TIFF palette 4-bit with fill order 2: Pillow's unpacker "
                    "table has no P;4R")
    short = [int(v) for v in RNG.randint(0, 65536, size=48)]
    case("tif_pal8_short", "TIFF palette 8-bit with a 16-entry colormap: indices past it get the grey ramp",
         pix=(pattern(w, h, 1, 255, seed=169)), bps=8, photometric=3, colormap=short)
    cm8 = [int(v) for v in RNG.randint(0, 65536, size=768)]
    case("tif_pa8", "TIFF palette + alpha (PA)", pix=pattern(w, h, 2, 255, seed=170), bps=8, photometric=3,
         extra=(2,), colormap=cm8)
    case("tif_cmyk8_x", "TIFF CMYK plus an extra sample", pix=pattern(w, h, 5, 255, seed=171), bps=8, photometric=5,
         extra=(0,))
    case("tif_cmyk16", "TIFF CMYK 16-bit little-endian", pix=pattern(w, h, 4, 65535, seed=172), bps=16,
         photometric=5)
    case("tif_la8", "TIFF grey + alpha", pix=pattern(w, h, 2, 255, seed=173), bps=8, photometric=1, extra=(2,))
    case("tif_nophoto_1bit", "TIFF 1-bit without a PhotometricInterpretation tag: Pillow takes 0 (min-is-white)",
         pix=pattern(w, h, 1, 1, seed=174), bps=1)
    ow, oh = 7, 5
    orgb = pattern(ow, oh, 3, 255, seed=180)
    for o in range(1, 9):
        case(f"tif_orient{o}", f"TIFF Orientation {o}: Pillow's TIFF loader turns the image", w=ow, h=oh, pix=orgb,
             bps=8, photometric=2, orientation=o)
    # compressions over hand-made layouts, by libtiff's tiffcp
    for src, args, name, what in (
            ("tif_rgb8_strips", ("-c", "lzw:2"), "tif_rgb8_lzw_pred", "TIFF RGB, LZW with horizontal predictor"),
            ("tif_rgb8_strips", ("-c", "zip:2"), "tif_rgb8_zip_pred", "TIFF RGB, Deflate with predictor"),
            ("tif_rgb8_strips", ("-t", "-w", "16", "-l", "16"), "tif_rgb8_tiled", "TIFF RGB in 16x16 tiles"),
            ("tif_rgb8_strips", ("-t", "-w", "16", "-l", "16", "-c", "lzw"), "tif_rgb8_tiled_lzw",
             "TIFF RGB in LZW tiles"),
            ("tif_rgb8_planar", ("-c", "lzw"), "tif_rgb8_planar_lzw", "TIFF RGB, separate planes, LZW"),
            ("tif_rgb8_planar", ("-t", "-w", "16", "-l", "16"), "tif_rgb8_planar_tiled", "TIFF RGB separate planes, tiled"),
            ("tif_rgb16_le", ("-c", "zip:2"), "tif_rgb16_zip", "TIFF RGB 16-bit, Deflate with predictor"),
            ("tif_grey1_black0", ("-c", "g4"), "tif_grey1_g4_black0", "TIFF bilevel min-is-black, CCITT G4"),
            ("tif_grey4_white0", ("-c", "packbits"), "tif_grey4_packbits", "TIFF grey 4-bit min-is-white, PackBits"),
            ("tif_pal4", ("-c", "lzw", "-f", "lsb2msb"), "tif_pal4_lzw_fill2", "TIFF palette 4-bit, LZW, fill order 2"),
            ("tif_grey8_black0", ("-t", "-w", "16", "-l", "16", "-c", "zip"), "tif_grey8_tiled_zip", "TIFF grey tiled"),
            ("tif_rgb8_strips", ("-c", "jpeg", "-r", "16"), "tif_rgb8_jpeg_ycbcr", "TIFF JPEG (YCbCr, subsampled)"),
            ("tif_rgb8_strips", ("-c", "jpeg:r", "-r", "16"), "tif_rgb8_jpeg_rgb", "TIFF JPEG with RGB photometric"),
            ("tif_orient6", ("-c", "lzw"), "tif_orient6_lzw", "TIFF Orientation 6, LZW"),
            ("tif_cmyk8_x", ("-c", "lzw"), "tif_cmyk8_x_lzw", "TIFF CMYK+X, LZW"),
            ("tif_la8", ("-p", "separate", "-c", "lzw"), "tif_la8_planar_lzw", "TIFF LA, separate planes, LZW"),
            ("tif_pil_cmyk_raw", ("-p", "separate"), "tif_cmyk8_planar", "TIFF CMYK, separate planes"),
            ("tif_pil_cmyk_raw", ("-p", "separate", "-c", "lzw"), "tif_cmyk8_planar_lzw",
             "TIFF CMYK, separate planes, LZW"),
            ("tif_rgba8_unassoc", ("-p", "separate", "-c", "lzw"), "tif_rgba8_planar_lzw",
             "TIFF RGBA, separate planes, LZW")):
        tiffcp(J(src + ".tif"), J(name + ".tif"), *args)
        golden(name, name + ".tif", what)

    fv = (pattern(w, h, 1, 1000, seed=185)[:, :, 0].astype(np.float32) - 300.0) * 0.37
    fv[0, :6] = [np.nan, np.inf, -np.inf, 254.99, 255.0, 0.5]
    fbits = fv.view(np.uint32).astype(np.int64)[:, :, None]
    case("tif_float32", "TIFF 32-bit float grey (mode F): truncated, clipped, NaN 0", pix=fbits, bps=32,
         photometric=1, sample_format=3)
    case("tif_float32_be_white0", "TIFF 32-bit float big-endian, photometric 0 (not inverted)", pix=fbits, bps=32,
         photometric=0, sample_format=3, be=True)
    tiffcp(J("tif_float32.tif"), J("tif_float32_lzw_fpred.tif"), "-c", "lzw:3")
    golden("tif_float32_lzw_fpred", "tif_float32_lzw_fpred.tif", "TIFF float, LZW with the floating-point predictor")

    # refused: by design (Pillow reads them) and because Pillow refuses them
    tiffcp(J("tif_la8.tif"), J("tif_la8_planar_raw.tif"), "-p", "separate")
    refused("tif_la8_planar_raw.tif", "uncompressed TIFF LA in separate planes: Pillow has no L or A unpacker for LA")
    write_tiff(J("tif_ycbcr_raw.tif"), w, h, pix=rgb, bps=8, photometric=6)
    refused("tif_ycbcr_raw.tif", "TIFF uncompressed YCbCr: not read by the engine", pil_refuses=False)
    # compressed YCbCr (not JPEG in one plane): Pillow lets libtiff's RGBA reader convert it
    ycc_src = Image.fromarray(rgb.astype(np.uint8), "RGB").convert("YCbCr")
    for comp in ("tiff_lzw", "packbits", "tiff_deflate"):
        ycc_src.save(J("tif_pil_ycbcr_%s.tif" % comp), compression=comp)
        golden("tif_pil_ycbcr_" + comp, "tif_pil_ycbcr_%s.tif" % comp,
               "TIFF YCbCr written by Pillow (%s, subsampling 1x1): libtiff's YCbCr to RGB" % comp)
    ycc_src.save(J("tif_pil_ycbcr_orient3.tif"), compression="tiff_lzw", tiffinfo={274: 3})
    golden("tif_pil_ycbcr_orient3", "tif_pil_ycbcr_orient3.tif", "TIFF YCbCr LZW with Orientation 3")
    tiffcp(J("tif_pil_ycbcr_tiff_lzw.tif"), J("tif_ycbcr_tiled_zip.tif"), "-t", "-w", "16", "-l", "16", "-c", "zip")
    golden("tif_ycbcr_tiled_zip", "tif_ycbcr_tiled_zip.tif", "TIFF YCbCr in Deflate tiles")

    # CIELab: Pillow converts LAB to RGB through LittleCMS (ImageCms: Lab v2 to sRGB, perceptual)
    lab_src = Image.fromarray(rgb.astype(np.uint8), "RGB").convert("LAB")
    lab_src.info.pop("icc_profile", None)  # the conversion's profile carries a creation time
    for comp in (None, "tiff_lzw", "jpeg"):
        name = "tif_pil_lab_%s" % (comp or "raw")
        lab_src.save(J(name + ".tif"), compression=comp)
        golden(name, name + ".tif", "TIFF CIELab written by Pillow (%s): LittleCMS's Lab to sRGB" % (comp or "uncompressed"))
    allv = pattern(w, h, 3, 255, seed=186)
    allv[0, :3] = [[0, 0, 0], [255, 127, 128], [255, 128, 127]]
    case("tif_lab8_le", "TIFF CIELab 8-bit, every value range (a, b signed)", pix=allv, bps=8, photometric=8)
    case("tif_lab8_be", "TIFF CIELab 8-bit big-endian", pix=allv, bps=8, photometric=8, be=True)

    # subsampled YCbCr: data units of sx*sy Y samples, then Cb and Cr, edge blocks padded
    def ycc_units(ycc, sx, sy, rps):
        hh, ww = ycc.shape[:2]
        strips = []
        for y0 in range(0, hh, rps):
            out = bytearray()
            for by in range(y0, min(y0 + rps, hh), sy):
                for bx in range(0, ww, sx):
                    blk = ycc[by:by + sy, bx:bx + sx]
                    ys = np.zeros((sy, sx), np.int64)
                    ys[:blk.shape[0], :blk.shape[1]] = blk[:, :, 0]
                    out += bytes(int(v) for v in ys.reshape(-1))
                    out += bytes([int(blk[0, 0, 1]), int(blk[0, 0, 2])])
            strips.append(bytes(out))
        return strips

    ycc = np.asarray(ycc_src).astype(np.int64)
    for sx, sy, rps in ((2, 2, 4), (2, 1, 9), (4, 2, 2)):
        name = "tif_ycbcr_sub%d%d_zip" % (sx, sy)
        write_tiff(J(name + ".tif"), w, h, pix=rgb, bps=8, photometric=6, rows_per_strip=rps, deflate=True,
                   strip_data=ycc_units(ycc, sx, sy, rps),
                   tags_extra={530: (3, [sx, sy])})
        golden(name, name + ".tif", "TIFF YCbCr subsampled %dx%d, Deflate, strips of %d rows: libtiff's RGBA reader"
               % (sx, sy, rps))
    write_tiff(J("tif_rgb_nophoto.tif"), w, h, pix=rgb, bps=8)
    refused("tif_rgb_nophoto.tif", "TIFF of 3 samples without a PhotometricInterpretation tag (unknown mode)")
    write_tiff(J("tif_rgb12.tif"), w, h, pix=pattern(w, h, 3, 4095, seed=190), bps=16, photometric=2, spp=3,
               extra=())
    with open(J("tif_rgb8_strips.tif"), "rb") as f:
        data = f.read()
    with open(J("tif_truncated.tif"), "wb") as f:
        f.write(data[:150])
    refused("tif_truncated.tif", "TIFF cut inside its first IFD")
    for src, name, what in (("tif_pil_rgb_raw", "tif_truncated_raw", "uncompressed TIFF whose strip is cut short"),
                            ("tif_pil_rgb_tiff_lzw", "tif_truncated_lzw", "LZW TIFF whose strip is cut short")):
        with open(J(src + ".tif"), "rb") as f:
            data = f.read()
        with open(J(name + ".tif"), "wb") as f:
            f.write(data[: len(data) * 2 // 3])
        refused(name + ".tif", what)
    os.remove(J("tif_rgb12.tif"))


# ---- ICO ------------------------------------------------------------------------------------

def bmp_body(w, h, bits, rows, palette=None):
    """write_bmp's bytes without the 14-byte file header: a DIB."""
    tmp = os.path.join(OUT, "_dib.bmp")
    write_bmp(tmp, w, h, bits, rows, palette=palette)
    with open(tmp, "rb") as f:
        data = f.read()[14:]
    os.remove(tmp)
    return data


def dib(w, h, bits, rows, palette=None):
    """A DIB as an ICO holds it: a BMP without its file header, the height doubled, and a 1-bit AND
    mask (rows padded to 32 bits) after the colour rows."""
    data = bytearray(bmp_body(w, h, bits, rows, palette))
    data[8:12] = struct.pack("<i", 2 * h)
    mstride = ((w + 31) // 32) * 4
    mask = bytes((y * 7 + x) & 0xFF for y in range(h) for x in range(mstride))
    return bytes(data) + mask


def write_ico(path, entries, magic=b"\0\0\1\0"):
    """entries: (w, h, bpp, ncolors, payload); w or h 256 is written as 0."""
    head = magic + struct.pack("<H", len(entries))
    off = 6 + 16 * len(entries)
    dirs, blobs = b"", b""
    for (w, h, bpp, ncol, payload) in entries:
        dirs += struct.pack("<BBBBHHII", w % 256, h % 256, ncol, 0, 1, bpp, len(payload), off + len(blobs))
        blobs += payload
    with open(path, "wb") as f:
        f.write(head + dirs + blobs)


def ico_cases():
    J = lambda f: os.path.join(OUT, f)
    src = Image.fromarray(pattern(40, 40, 4, 255, seed=200).astype(np.uint8), "RGBA")
    src.save(J("ico_pil_png.ico"), sizes=[(16, 16), (24, 24), (32, 32)])
    golden("ico_pil_png", "ico_pil_png.ico", "ICO written by Pillow (PNG frames): the largest")
    src.save(J("ico_pil_bmp.ico"), sizes=[(16, 16), (32, 32)], bitmap_format="bmp")
    golden("ico_pil_bmp", "ico_pil_bmp.ico", "ICO written by Pillow with BMP frames (32-bit DIB)")

    def rows_of(pix, bits):
        return [pack_bits(r, bits) if bits < 8 else bytes(r.astype(np.uint8).reshape(-1)) for r in pix]

    w, h = 13, 9
    idx1 = pattern(w, h, 1, 1, seed=201)[:, :, 0]
    idx4 = pattern(w, h, 1, 15, seed=202)[:, :, 0]
    idx8 = pattern(w, h, 1, 255, seed=203)[:, :, 0]
    pal4 = [tuple(int(v) for v in RNG.randint(0, 256, 3)) for _ in range(16)]
    pal8 = [tuple(int(v) for v in RNG.randint(0, 256, 3)) for _ in range(256)]
    bgr = pattern(w, h, 3, 255, seed=204)[:, :, ::-1]
    bgra = pattern(w, h, 4, 255, seed=205)[:, :, [2, 1, 0, 3]]
    cases = {
        "ico_dib1": ([(w, h, 1, 2, dib(w, h, 1, rows_of(idx1, 1), [(0, 0, 0), (255, 255, 255)]))],
                     "ICO 1-bit DIB, black-and-white palette"),
        "ico_dib4": ([(w, h, 4, 16, dib(w, h, 4, rows_of(idx4, 4), pal4))], "ICO 4-bit DIB"),
        "ico_dib8": ([(w, h, 8, 0, dib(w, h, 8, rows_of(idx8, 8), pal8))], "ICO 8-bit DIB"),
        "ico_dib24": ([(w, h, 24, 0, dib(w, h, 24, rows_of(bgr, 8), None))], "ICO 24-bit DIB"),
        "ico_dib32": ([(w, h, 32, 0, dib(w, h, 32, rows_of(bgra, 8), None))], "ICO 32-bit DIB, alpha dropped"),
        "ico_pick_depth": ([(8, 8, 32, 0, dib(8, 8, 32, rows_of(bgra[:8, :8], 8), None)),
                            (w, h, 4, 16, dib(w, h, 4, rows_of(idx4, 4), pal4)),
                            (w, h, 8, 0, dib(w, h, 8, rows_of(idx8, 8), pal8))],
                           "ICO of three entries: the largest, and of two that size the deeper"),
        "ico_pick_last": ([(w, h, 24, 0, dib(w, h, 24, rows_of(bgr, 8), None)),
                           (w, h, 24, 0, dib(w, h, 24, rows_of(bgr[::-1], 8), None))],
                          "ICO of two equal entries: Pillow takes the one listed last"),
        "ico_w256": ([(256, 2, 24, 0, dib(256, 2, 24, rows_of(pattern(256, 2, 3, 255, seed=206), 8), None))],
                     "ICO entry of width byte 0 (256)"),
        "ico_dims_lie": ([(16, 16, 24, 0, dib(w, h, 24, rows_of(bgr, 8), None))],
                         "ICO entry whose directory size differs from its bitmap: the bitmap's size"),
    }
    for name, (entries, what) in cases.items():
        write_ico(J(name + ".ico"), entries)
        golden(name, name + ".ico", what)
    with open(J("ico_pil_png.ico"), "rb") as f:
        png_frame = f.read()
    # a PNG frame beside a DIB one: the larger is the PNG
    small = (8, 8, 32, 0, dib(8, 8, 32, rows_of(bgra[:8, :8], 8), None))
    buf = io.BytesIO()
    Image.fromarray(pattern(20, 14, 3, 255, seed=207).astype(np.uint8), "RGB").save(buf, "PNG")
    write_ico(J("ico_png_and_dib.ico"), [small, (20, 14, 24, 0, buf.getvalue())])
    golden("ico_png_and_dib", "ico_png_and_dib.ico", "ICO with a DIB entry and a larger PNG entry")
    # a DIB file: Pillow's DibImageFile takes a file starting with a BMP info header size
    for name, bits, rows, pal, what in (("dib_24", 24, rows_of(bgr, 8), None, "DIB file (BMP without file header), 24-bit"),
                                        ("dib_p8", 8, rows_of(idx8, 8), pal8, "DIB file, 8-bit palette")):
        with open(J(name + ".dib"), "wb") as f:
            f.write(bmp_body(w, h, bits, rows, pal))
        golden(name, name + ".dib", what)
    # Pillow reads a DIB entry's AND mask from the entry's offset + size, back by the mask's length
    # (the alpha bytes when the directory says 32 bits) and fails when they are not in the file
    for name, entry, what in (("bad_ico_mask_past_end", cases["ico_dib8"][0][0],
                               "ICO DIB entry whose directory size puts the AND mask past the end of the file"),
                              ("bad_ico_alpha_short", (w, h, 32, 0, cases["ico_dib4"][0][0][4]),
                               "ICO 4-bit DIB entry that the directory calls 32-bit: Pillow reads w*h*4 alpha "
                               "bytes from its pixel data, and the file is shorter")):
        write_ico(J(name + ".ico"), [entry])
        with open(J(name + ".ico"), "r+b") as f:
            if "mask" in name:
                f.seek(6 + 8)
                f.write(struct.pack("<I", len(entry[4]) + 64))
        refused(name + ".ico", what)
    write_ico(J("bad_ico_empty.ico"), [])
    refused("bad_ico_empty.ico", "ICO with no entries")
    with open(J("bad_ico_dir.ico"), "wb") as f:
        f.write(png_frame[:20])
    refused("bad_ico_dir.ico", "ICO cut inside its directory")
    # cursors: Pillow's CurImagePlugin picks the entry larger in both width and height bytes than the
    # best so far (the first to begin with), and reads its DIB's upper half
    write_ico(J("cur_dib24.cur"), cases["ico_dib24"][0], magic=b"\0\0\2\0")
    golden("cur_dib24", "cur_dib24.cur", "CUR (a cursor), 24-bit DIB")
    write_ico(J("cur_pick.cur"), [(w, h, 8, 0, dib(w, h, 8, rows_of(idx8, 8), pal8)),
                                  (8, 8, 32, 0, dib(8, 8, 32, rows_of(bgra[:8, :8], 8), None)),
                                  (w, 4, 4, 16, dib(w, h, 4, rows_of(idx4, 4), pal4)),
                                  (w + 1, h + 1, 1, 2, dib(w, h, 1, rows_of(idx1, 1), [(0, 0, 0), (255, 255, 255)]))],
              magic=b"\0\0\2\0")
    golden("cur_pick", "cur_pick.cur", "CUR of four entries: the last, whose width and height bytes both exceed the "
           "first's (the 8x8 and the one as wide are passed over)")
    write_ico(J("bad_cur_empty.cur"), [], magic=b"\0\0\2\0")
    refused("bad_cur_empty.cur", "CUR with no entries")
    with open(J("bad_cur_truncated.cur"), "wb") as f:
        f.write(open(J("cur_dib24.cur"), "rb").read()[:200])
    refused("bad_cur_truncated.cur", "CUR bitmap cut short")


# ---- Targa, SGI and PCX ---------------------------------------------------------------------------

def rle_packets(px, bpp, plan):
    """px: the pixel bytes of the whole image in file order; plan: (kind, pixels) packets, kind 'r' a
    run of the packet's first pixel, 'l' a literal; the rest of the data goes as literals of <= 128."""
    out = bytearray()
    pos = 0
    total = len(px) // bpp
    for kind, k in plan:
        if kind == "r":
            out += bytes([0x80 | (k - 1)]) + px[pos * bpp:(pos + 1) * bpp]
        else:
            out += bytes([k - 1]) + px[pos * bpp:(pos + k) * bpp]
        pos += k
    while pos < total:
        k = min(128, total - pos)
        out += bytes([k - 1]) + px[pos * bpp:(pos + k) * bpp]
        pos += k
    return bytes(out)


def tga_runs(px, bpp, w, h, cross=False):
    """TGA RLE packets: runs where pixels repeat, literals elsewhere, each within a row; with
    `cross` literals run on across rows (runs never do: Pillow refuses those)."""
    out = bytearray()
    n = len(px) // bpp
    pix = [px[i * bpp:(i + 1) * bpp] for i in range(n)]
    i = 0
    while i < n:
        row_end = (i // w + 1) * w
        lim = n if cross else row_end
        j = i + 1
        while j < row_end and j - i < 128 and pix[j] == pix[i]:
            j += 1
        if j - i >= 2:
            out += bytes([0x80 | (j - i - 1)]) + pix[i]
            i = j
            continue
        j = i + 1
        while j < lim and j - i < 128 and not (j + 1 < lim and pix[j] == pix[j + 1]):
            j += 1
        out += bytes([j - i - 1]) + b"".join(pix[i:j])
        i = j
    return bytes(out)


def write_tga(path, w, h, itype, depth, data, cmap=None, ident=b"", flags=0, cmap_type=None):
    start, entries, mapdepth = cmap if cmap else (0, b"", 0)
    esz = {15: 2, 16: 2, 24: 3, 32: 4}.get(mapdepth, 0)
    count = len(entries) // esz if esz else 0
    hdr = struct.pack("<BBBHHBHHHHBB", len(ident), (1 if cmap else 0) if cmap_type is None else cmap_type, itype,
                      start, count, mapdepth, 0, 0, w, h, depth, flags)
    with open(path, "wb") as f:
        f.write(hdr + ident + entries + data)


def rgb_rgba_grey(w, h, seed):
    """Three 8-bit sources of one size: RGB, RGBA and grey, from seeds seed, seed + 1, seed + 2."""
    return (pattern(w, h, 3, 255, seed=seed).astype(np.uint8), pattern(w, h, 4, 255, seed=seed + 1).astype(np.uint8),
            pattern(w, h, 1, 255, seed=seed + 2).astype(np.uint8)[:, :, 0])


def tga_cases():
    J = lambda f: os.path.join(OUT, f)
    w, h = 13, 7
    rgb, rgba, grey = rgb_rgba_grey(w, h, 300)
    # Pillow's own writer: every mode it saves, raw and RLE, and its orientations
    for mode, src in (("RGB", rgb), ("RGBA", rgba), ("L", grey)):
        im = Image.fromarray(src, mode)
        for comp in (None, "tga_rle"):
            for orient in (-1, 1):
                name = "tga_pil_%s_%s_%s" % (mode.lower(), "rle" if comp else "raw", "bottom" if orient < 0 else "top")
                im.save(J(name + ".tga"), compression=comp, orientation=orient)
                golden(name, name + ".tga", "TGA written by Pillow: %s, %s, %s" % (
                    mode, "RLE" if comp else "uncompressed", "bottom-up" if orient < 0 else "top-down"))
    im = Image.fromarray(pattern(w, h, 1, 15, seed=303).astype(np.uint8)[:, :, 0], "L").convert("P")
    im.putpalette([int(v) for v in RNG.randint(0, 256, 48)])
    im.save(J("tga_pil_p.tga"))
    golden("tga_pil_p", "tga_pil_p.tga", "TGA written by Pillow: palette")
    im.save(J("tga_pil_p_rle.tga"), compression="tga_rle")
    golden("tga_pil_p_rle", "tga_pil_p_rle.tga", "TGA written by Pillow: palette, RLE")
    Image.fromarray(np.stack([grey, grey[::-1]], -1), "LA").save(J("tga_pil_la.tga"))
    golden("tga_pil_la", "tga_pil_la.tga", "TGA written by Pillow: grey and alpha")

    # written here: every orientation and pixel layout, 16-bit, colour maps, runs across rows
    def rows(a):  # bottom-up file order
        return a[::-1]

    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    bgra = np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]])
    for flags, tag in ((0x00, "bl"), (0x10, "br"), (0x20, "tl"), (0x30, "tr")):
        data = (bgr if flags & 0x20 else rows(bgr)).tobytes()
        write_tga(J("tga_rgb24_%s.tga" % tag), w, h, 2, 24, data, flags=flags)
        golden("tga_rgb24_" + tag, "tga_rgb24_%s.tga" % tag, "TGA 24-bit, origin " + tag)
    v15 = pattern(w, h, 3, 31, seed=304)
    p16 = ((v15[:, :, 0] << 10) | (v15[:, :, 1] << 5) | v15[:, :, 2]).astype("<u2")
    p16[0, 0] |= 0x8000  # the attribute bit is ignored
    write_tga(J("tga_rgb16.tga"), w, h, 2, 16, rows(p16).tobytes())
    golden("tga_rgb16", "tga_rgb16.tga", "TGA 16-bit (5/5/5), scaled v*255//31")
    write_tga(J("tga_rgb16_rle.tga"), w, h, 10, 16, tga_runs(rows(p16).tobytes(), 2, w, h))
    golden("tga_rgb16_rle", "tga_rgb16_rle.tga", "TGA 16-bit RLE")
    write_tga(J("tga_rgba32_tl.tga"), w, h, 2, 32, bgra.tobytes(), flags=0x28, ident=b"made by hand")
    golden("tga_rgba32_tl", "tga_rgba32_tl.tga", "TGA 32-bit, top-down, with an id field")
    flat = rgb.copy()
    flat[2:5, :] = flat[2, 3]
    flat[:, 9:] = flat[0, 0]
    fb = np.ascontiguousarray(flat[:, :, ::-1])
    write_tga(J("tga_rle_cross.tga"), w, h, 10, 24, tga_runs(rows(fb).tobytes(), 3, w, h, cross=True))
    golden("tga_rle_cross", "tga_rle_cross.tga", "TGA RLE whose literal packets run across rows")
    write_tga(J("tga_rle_long.tga"), w, h, 10, 24, rle_packets(rows(bgr).tobytes(), 3, [("l", 40), ("l", 2 * w)]))
    golden("tga_rle_long", "tga_rle_long.tga", "TGA RLE literal packets spanning several rows")
    write_tga(J("tga_rle_tail.tga"), w, h, 10, 24, tga_runs(rows(bgr).tobytes(), 3, w, h) + b"\x00" * 9)
    golden("tga_rle_tail", "tga_rle_tail.tga", "TGA RLE with bytes after the last row")
    g8 = rows(grey).tobytes()
    write_tga(J("tga_grey8.tga"), w, h, 3, 8, g8)
    golden("tga_grey8", "tga_grey8.tga", "TGA grey 8-bit")
    write_tga(J("tga_grey8_rle.tga"), w, h, 11, 8, tga_runs(g8, 1, w, h))
    golden("tga_grey8_rle", "tga_grey8_rle.tga", "TGA grey 8-bit RLE")
    bits = pattern(w, h, 1, 1, seed=305)[:, :, 0]
    write_tga(J("tga_grey1.tga"), w, h, 3, 1, b"".join(pack_bits(r, 1) for r in rows(bits)))
    golden("tga_grey1", "tga_grey1.tga", "TGA 1-bit grey")
    idx = pattern(w, h, 1, 255, seed=306).astype(np.uint8)[:, :, 0]
    pal = RNG.randint(0, 256, (256, 3)).astype(np.uint8)
    write_tga(J("tga_pal24.tga"), w, h, 1, 8, rows(idx).tobytes(), cmap=(0, pal[:, ::-1].tobytes(), 24))
    golden("tga_pal24", "tga_pal24.tga", "TGA colour-mapped, 24-bit map of 256")
    idx6 = (idx % 60).astype(np.uint8)
    write_tga(J("tga_pal_start.tga"), w, h, 1, 8, rows(idx6).tobytes(), cmap=(10, pal[:40, ::-1].tobytes(), 24))
    golden("tga_pal_start", "tga_pal_start.tga", "TGA colour map starting at entry 10 (black below), 50 entries "
           "(the grey ramp above)")
    m15 = pattern(16, 1, 3, 31, seed=307)[0]
    pal16 = ((m15[:, 0] << 10) | (m15[:, 1] << 5) | m15[:, 2]).astype("<u2").tobytes()
    idx4 = (idx % 16).astype(np.uint8)
    write_tga(J("tga_pal16_rle.tga"), w, h, 9, 8, tga_runs(rows(idx4).tobytes(), 1, w, h), cmap=(0, pal16, 16))
    golden("tga_pal16_rle", "tga_pal16_rle.tga", "TGA colour-mapped RLE, 16-bit map")
    write_tga(J("tga_pal_none.tga"), w, h, 1, 8, rows(idx).tobytes(), cmap_type=0)
    golden("tga_pal_none", "tga_pal_none.tga", "TGA colour-mapped without a map: the grey ramp")
    write_tga(J("tga_grey_cmap.tga"), w, h, 3, 8, g8, cmap=(0, pal[:, ::-1].tobytes(), 24))
    golden("tga_grey_cmap", "tga_grey_cmap.tga", "TGA grey with a colour map: Pillow applies the map")
    la = np.stack([grey, grey[::-1]], -1).astype(np.uint8)
    write_tga(J("tga_la16_rle.tga"), w, h, 11, 16, tga_runs(rows(la).tobytes(), 2, w, h))
    golden("tga_la16_rle", "tga_la16_rle.tga", "TGA grey+alpha RLE")
    # a 15-bit colour map is not read by Pillow (so its bytes are taken as pixels)
    write_tga(J("tga_map15.tga"), w, h, 1, 8, rows(idx).tobytes(), cmap=(0, pal16, 15))
    golden("tga_map15", "tga_map15.tga", "TGA with a 15-bit colour map, which Pillow skips without reading")
    # refused
    write_tga(J("bad_tga_truncated.tga"), w, h, 2, 24, rows(bgr).tobytes()[:-5])
    refused("bad_tga_truncated.tga", "TGA pixel data cut short")
    write_tga(J("bad_tga_rle_truncated.tga"), w, h, 10, 24, tga_runs(rows(bgr).tobytes(), 3, w, h)[:-4])
    refused("bad_tga_rle_truncated.tga", "TGA RLE data cut short")
    write_tga(J("bad_tga_rle_run_cross.tga"), w, h, 10, 24, rle_packets(rows(fb).tobytes(), 3, [("l", 10), ("r", 6)]))
    refused("bad_tga_rle_run_cross.tga", "TGA RLE run packet across a row")
    write_tga(J("bad_tga_rgb_cmap.tga"), w, h, 2, 24, rows(bgr).tobytes(), cmap=(0, pal[:4, ::-1].tobytes(), 24))
    refused("bad_tga_rgb_cmap.tga", "TGA true-colour image with a colour map")
    write_tga(J("bad_tga_map32.tga"), w, h, 1, 8, rows(idx).tobytes(),
              cmap=(0, np.concatenate([pal[:, ::-1], pal[:, :1]], 1).tobytes(), 32))
    refused("bad_tga_map32.tga", "TGA with a 32-bit colour map")
    write_tga(J("bad_tga_map_big.tga"), w, h, 1, 8, rows(idx).tobytes(), cmap=(20, pal[:, ::-1].tobytes(), 24))
    refused("bad_tga_map_big.tga", "TGA colour map of 276 entries")
    write_tga(J("bad_tga_p16.tga"), w, h, 1, 16, rows(p16).tobytes())
    refused("bad_tga_p16.tga", "TGA colour-mapped with 16-bit indices")
    write_tga(J("bad_tga_rle1.tga"), 8, 2, 11, 1, b"\x81\xff" * 8)
    refused("bad_tga_rle1.tga", "TGA 1-bit RLE")
    write_tga(J("bad_tga_grey24.tga"), w, h, 3, 24, rows(bgr).tobytes())
    refused("bad_tga_grey24.tga", "TGA grey with 24-bit pixels")


def split_runs(v, max_run, max_lit):
    """(is_run, start, end) pieces of v: runs of 3 or more equal values (at most max_run), and
    literals (at most max_lit) that stop before three equal values."""
    i = 0
    while i < len(v):
        j = i + 1
        while j < len(v) and j - i < max_run and v[j] == v[i]:
            j += 1
        if j - i >= 3:
            yield True, i, j
            i = j
            continue
        j = i + 1
        while j < len(v) and j - i < max_lit and not (j + 2 < len(v) and v[j] == v[j + 1] == v[j + 2]):
            j += 1
        yield False, i, j
        i = j


def sgi_rle_rows(planes, bpc, extra=None):
    """planes: [band][row bottom-up] arrays; SGI RLE with a packet per row in the length table
    (Pillow reads the table's "length" as a packet count). extra(band, row, packets) may rewrite a
    row's packets and its count."""
    fmt = ">B" if bpc == 1 else ">H"
    rows = []
    for b, plane in enumerate(planes):
        for r, row in enumerate(plane):
            vals = [int(v) for v in row]
            pk = []
            for run, i, j in split_runs(vals, 127, 127):
                if run:
                    pk.append(struct.pack(fmt, j - i) + struct.pack(fmt, vals[i]))
                else:
                    pk.append(struct.pack(fmt, 0x80 | (j - i)) + b"".join(struct.pack(fmt, v) for v in vals[i:j]))
            pk.append(struct.pack(fmt, 0))
            count = len(pk)
            if extra:
                pk, count = extra(b, r, pk, count)
            rows.append((b"".join(pk), count))
    return rows


def write_sgi(path, w, h, bpc, zsize, dim, body=None, rle_rows=None, nrows=None):
    hdr = struct.pack(">HBBHHHH", 474, 1 if rle_rows is not None else 0, bpc, dim, w, h, zsize)
    hdr += b"\0" * (512 - len(hdr))
    with open(path, "wb") as f:
        if rle_rows is None:
            f.write(hdr + body)
            return
        tab = 8 * len(rle_rows)
        offs, lens, data = [], [], b""
        for blob, count in rle_rows:
            offs.append(512 + tab + len(data))
            lens.append(count)
            data += blob
        f.write(hdr + b"".join(struct.pack(">I", o) for o in offs) + b"".join(struct.pack(">I", c) for c in lens) + data)


def sgi_cases():
    J = lambda f: os.path.join(OUT, f)
    w, h = 11, 6
    for mode, ch in (("L", 1), ("RGB", 3), ("RGBA", 4)):
        src = pattern(w, h, ch, 255, seed=310 + ch).astype(np.uint8)
        im = Image.fromarray(src[:, :, 0] if ch == 1 else src, mode)
        name = "sgi_pil_" + mode.lower()
        im.save(J(name + ".sgi"))
        golden(name, name + ".sgi", "SGI written by Pillow: %s, uncompressed" % mode)
    im16 = Image.fromarray(pattern(w, h, 3, 255, seed=315).astype(np.uint8), "RGB")
    im16.save(J("sgi_pil_rgb_bpc2.sgi"), bpc=2)
    golden("sgi_pil_rgb_bpc2", "sgi_pil_rgb_bpc2.sgi", "SGI written by Pillow: RGB, 2 bytes a sample")
    for ch, dim in ((1, 2), (3, 3), (4, 3)):
        for bpc in (1, 2):
            mx = 255 if bpc == 1 else 65535
            src = pattern(w, h, ch, mx, seed=320 + ch + bpc)
            src[1, 2:9] = src[1, 2]  # runs
            planes = [src[::-1, :, c] for c in range(ch)]
            name = "sgi_rle_z%d_bpc%d" % (ch, bpc)
            write_sgi(J(name + ".sgi"), w, h, bpc, ch, dim, rle_rows=sgi_rle_rows(planes, bpc))
            golden(name, name + ".sgi", "SGI RLE, %d channels, %d byte(s) a sample" % (ch, bpc))
            if bpc == 2:
                body = b"".join(p.astype(">u2").tobytes() for p in planes)
                name = "sgi_raw_z%d_bpc2" % ch
                write_sgi(J(name + ".sgi"), w, h, 2, ch, dim, body=body)
                golden(name, name + ".sgi", "SGI uncompressed, %d channels, 2 bytes a sample" % ch)
    src = pattern(w, h, 3, 255, seed=330)
    planes = [src[::-1, :, c] for c in range(3)]

    def short_row(b, r, pk, count):  # row 2 of the green band ends after 2 packets, the rest of it kept
        return (pk[:2] + [b"\0"], 3) if (b, r) == (1, 2) else (pk, count)
    write_sgi(J("sgi_rle_short_row.sgi"), w, h, 1, 3, 3, rle_rows=sgi_rle_rows(planes, 1, short_row))
    golden("sgi_rle_short_row", "sgi_rle_short_row.sgi", "SGI RLE row that ends early: the row buffer keeps "
           "the row before's values")

    def no_marker(b, r, pk, count):  # the last counted packet of row 3 is not the end marker: decoding stops
        return (pk, count - 1) if (b, r) == (0, 3) else (pk, count)
    write_sgi(J("sgi_rle_no_marker.sgi"), w, h, 1, 3, 3, rle_rows=sgi_rle_rows(planes, 1, no_marker))
    golden("sgi_rle_no_marker", "sgi_rle_no_marker.sgi", "SGI RLE row whose counted packets end without the "
           "marker: Pillow stops there, the rows above stay black")

    def bytes_count(b, r, pk, count):  # a table of byte lengths (other writers): more than the packets
        return (pk, len(b"".join(pk)))
    write_sgi(J("sgi_rle_bytelen.sgi"), w, h, 1, 3, 3, rle_rows=sgi_rle_rows(planes, 1, bytes_count))
    golden("sgi_rle_bytelen", "sgi_rle_bytelen.sgi", "SGI RLE whose length table holds byte counts")
    # refused
    write_sgi(J("bad_sgi_truncated.sgi"), w, h, 1, 3, 3, body=b"".join(p.astype(np.uint8).tobytes() for p in planes)[:-3])
    refused("bad_sgi_truncated.sgi", "SGI uncompressed data cut short")
    rr = sgi_rle_rows(planes, 1)
    write_sgi(J("bad_sgi_rle_truncated.sgi"), w, h, 1, 3, 3, rle_rows=rr)
    with open(J("bad_sgi_rle_truncated.sgi"), "r+b") as f:
        f.truncate(os.path.getsize(J("bad_sgi_rle_truncated.sgi")) - 20)
    refused("bad_sgi_rle_truncated.sgi", "SGI RLE data cut short")

    def overlong(b, r, pk, count):
        return ([struct.pack(">B", 0x80 | 12) + b"\1" * 12, b"\0"], 2) if (b, r) == (0, 0) else (pk, count)
    write_sgi(J("bad_sgi_rle_wide.sgi"), w, h, 1, 3, 3, rle_rows=sgi_rle_rows(planes, 1, overlong))
    refused("bad_sgi_rle_wide.sgi", "SGI RLE row longer than the width")
    write_sgi(J("bad_sgi_z2.sgi"), w, h, 1, 2, 3, body=b"\0" * (2 * w * h))
    refused("bad_sgi_z2.sgi", "SGI of 2 channels")


def write_pcx(path, w, h, version, bits, planes, lines, palette16=b"", stride=None, tail=b"", rle=True, x0=0, y0=0,
              head=b""):
    """PCX with each line run-length coded; `head`: raw coded bytes put before the lines."""
    stride = stride if stride is not None else (w * bits + 7) // 8 + ((w * bits + 7) // 8) % 2
    hdr = struct.pack("<BBBBHHHHHH", 10, version, 1 if rle else 0, bits, x0, y0, x0 + w - 1, y0 + h - 1, 72, 72)
    hdr += palette16.ljust(48, b"\0") + bytes([0, planes]) + struct.pack("<HH", stride, 1)
    hdr = hdr.ljust(128, b"\0")
    body = bytearray(head)
    for line in lines:
        i = 0
        while i < len(line):
            j = i + 1
            while j < len(line) and j - i < 63 and line[j] == line[i]:
                j += 1
            if j - i > 1 or line[i] >= 0xc0:
                body += bytes([0xc0 | (j - i), line[i]])
            else:
                body.append(line[i])
            i = j
    with open(path, "wb") as f:
        f.write(hdr + bytes(body) + tail)


def pcx_cases():
    J = lambda f: os.path.join(OUT, f)
    for w, h in ((12, 5), (13, 5)):
        for mode, src in (("1", pattern(w, h, 1, 1, seed=340)[:, :, 0] * 255),
                          ("L", pattern(w, h, 1, 255, seed=341)[:, :, 0]),
                          ("RGB", pattern(w, h, 3, 255, seed=342))):
            im = Image.fromarray(src.astype(np.uint8), "L" if mode == "1" else mode)
            if mode == "1":
                im = im.convert("1")
            name = "pcx_pil_%s_w%d" % (mode.lower(), w)
            im.save(J(name + ".pcx"))
            golden(name, name + ".pcx", "PCX written by Pillow: %s, width %d" % (mode, w))
        im = Image.fromarray(pattern(w, h, 1, 255, seed=343)[:, :, 0].astype(np.uint8), "L").convert("P")
        im.putpalette([int(v) for v in RNG.randint(0, 256, 768)])
        name = "pcx_pil_p_w%d" % w
        im.save(J(name + ".pcx"))
        golden(name, name + ".pcx", "PCX written by Pillow: palette, width %d" % w)
    w, h = 13, 4
    pal16 = bytes(RNG.randint(0, 256, 48).astype(np.uint8))
    for planes in (2, 4):
        idx = pattern(w, h, 1, (1 << planes) - 1, seed=344 + planes)[:, :, 0]
        stride = (w + 7) // 8
        lines = []
        for row in idx:
            lines.append(b"".join(pack_bits((row >> p) & 1, 1).ljust(stride + stride % 2, b"\0") for p in range(planes)))
        name = "pcx_planes%d" % planes
        write_pcx(J(name + ".pcx"), w, h, 5, 1, planes, lines, palette16=pal16)
        golden(name, name + ".pcx", "PCX 1-bit in %d planes, 16-colour header palette" % planes)
    w = 16
    idx = pattern(w, h, 1, 15, seed=349)[:, :, 0]
    lines = [b"".join(pack_bits((row >> p) & 1, 1) for p in range(4)) for row in idx]
    write_pcx(J("pcx_planes4_w16.pcx"), w, h, 2, 1, 4, lines, palette16=pal16, stride=2)
    golden("pcx_planes4_w16", "pcx_planes4_w16.pcx", "PCX version 2, 1-bit in 4 planes, width 16")
    # 3 planes of a width whose padded line length is a multiple of it (Pillow skips the compaction)
    for w in (3, 5):
        rgb = pattern(w, h, 3, 255, seed=350 + w)
        stride = w + w % 2
        lines = [b"".join(bytes(row[:, c].astype(np.uint8)).ljust(stride, b"\x07") for c in range(3)) for row in rgb]
        name = "pcx_rgb_w%d" % w
        write_pcx(J(name + ".pcx"), w, h, 5, 8, 3, lines, stride=stride)
        golden(name, name + ".pcx", "PCX RGB planes, width %d, lines padded to %d" % (w, stride))
    w = 9
    g = pattern(w, h, 1, 255, seed=355)[:, :, 0].astype(np.uint8)
    lines = [bytes(r) + b"\0" for r in g]
    ramp = b"\x0c" + bytes(i // 3 for i in range(768))
    write_pcx(J("pcx_grey_ramp.pcx"), w, h, 5, 8, 1, lines, tail=ramp)
    golden("pcx_grey_ramp", "pcx_grey_ramp.pcx", "PCX 8-bit whose palette is the grey ramp: read as L")
    write_pcx(J("pcx_no_palette.pcx"), w, h, 5, 8, 1, lines, tail=b"\0" * 800)
    golden("pcx_no_palette", "pcx_no_palette.pcx", "PCX 8-bit without the palette marker: read as L")
    write_pcx(J("bad_pcx_short.pcx"), w, h, 5, 8, 1, lines)
    refused("bad_pcx_short.pcx", "PCX 8-bit file of under 769 bytes (Pillow fails seeking to its palette)")
    write_pcx(J("pcx_offset.pcx"), w, h, 5, 8, 1, lines, x0=100, y0=7, tail=b"\x0c" + bytes(RNG.randint(0, 256, 768).astype(np.uint8)))
    golden("pcx_offset", "pcx_offset.pcx", "PCX whose window starts at (100, 7)")
    # refused
    write_pcx(J("bad_pcx_truncated.pcx"), w, h, 5, 8, 1, lines[:-1])
    refused("bad_pcx_truncated.pcx", "PCX data cut short")
    write_pcx(J("bad_pcx_run.pcx"), w, h, 5, 8, 1, lines[1:], head=b"\x01" * 8 + b"\xc5\x02")
    refused("bad_pcx_run.pcx", "PCX run past the end of a line")
    write_pcx(J("bad_pcx_mode.pcx"), w, h, 5, 4, 1, lines)
    refused("bad_pcx_mode.pcx", "PCX 4-bit in one plane (no Pillow mode)")


# ---- JPEG 2000 -------------------------------------------------------------------------------------

def opj_raw(path, planes, bits, signed, subs, w, h):
    """A codestream (.j2k) or JP2 file (.jp2) by OpenJPEG's opj_compress from raw planes (each
    component's samples at its own subsampled size, big-endian 16-bit above 8 bits)."""
    raw = path + ".raw"
    with open(raw, "wb") as f:
        for pl in planes:
            a = np.asarray(pl, np.int64)
            f.write(a.astype(np.int8 if signed else np.uint8).tobytes() if bits <= 8 else
                    a.astype(">i2" if signed else ">u2").tobytes())
    spec = "%d,%d,%d,%d,%s@%s" % (w, h, len(planes), bits, "s" if signed else "u",
                                  ":".join("%dx%d" % s_ for s_ in subs))
    subprocess.run(["opj_compress", "-i", raw, "-o", path, "-F", spec, "-n", "2"], check=True, stdout=subprocess.DEVNULL)
    os.remove(raw)


def j2k_cases():
    J = lambda f: os.path.join(OUT, f)
    w, h = 13, 9
    rgb, rgba, g = rgb_rgba_grey(w, h, 400)
    ims = {"L": Image.fromarray(g, "L"), "LA": Image.fromarray(np.stack([g, g[::-1]], -1), "LA"),
           "RGB": Image.fromarray(rgb, "RGB"), "RGBA": Image.fromarray(rgba, "RGBA"),
           "I16": Image.fromarray((pattern(w, h, 1, 400, seed=403)[:, :, 0]).astype(np.uint16), "I;16")}
    for mode, im in ims.items():
        name = "j2k_pil_%s" % mode.lower()
        im.save(J(name + ".jp2"))
        golden(name, name + ".jp2", "JPEG 2000 (JP2) written by Pillow: %s, lossless" % mode)
    big = Image.fromarray(pattern(40, 30, 3, 255, seed=404).astype(np.uint8), "RGB")
    for name, opts, what in (
            ("j2k_pil_rgb_codestream", {"no_jp2": True}, "bare codestream"),
            ("j2k_pil_rgb_irrev", {"irreversible": True, "quality_mode": "dB", "quality_layers": [38]},
             "irreversible 9/7 wavelet, lossy"),
            ("j2k_pil_rgb_tiles", {"tile_size": (16, 16)}, "16x16 tiles"),
            ("j2k_pil_rgb_tiles_offset", {"tile_size": (16, 16), "tile_offset": (3, 5), "offset": (5, 7)},
             "tiles with a tile offset and an image offset"),
            ("j2k_pil_rgb_layers", {"quality_layers": [40, 10], "progression": "RPCL", "num_resolutions": 3},
             "two quality layers, RPCL, 3 resolutions"),
            ("j2k_pil_rgb_mct", {"mct": 1, "irreversible": True}, "multi-component transform, irreversible")):
        big.save(J(name + ".jp2"), **opts)
        golden(name, name + ".jp2", "JPEG 2000 written by Pillow, RGB, " + what)
    # OpenJPEG's own encoder: subsampling (a codestream's colour space is guessed from it), other
    # precisions, signed samples
    y = pattern(w, h, 1, 255, seed=405)[:, :, 0]
    cb = pattern((w + 1) // 2, (h + 1) // 2, 1, 255, seed=406)[:, :, 0]
    cr = pattern((w + 1) // 2, (h + 1) // 2, 1, 255, seed=407)[:, :, 0]
    opj_raw(J("j2k_sub420.j2k"), [y, cb, cr], 8, False, [(1, 1), (2, 2), (2, 2)], w, h)
    golden("j2k_sub420", "j2k_sub420.j2k", "JPEG 2000 codestream 4:2:0 (odd size): taken as sYCC, Pillow's YCbCr "
           "tables, its plane indexing by w / dx")
    opj_raw(J("j2k_sub420.jp2"), [y, cb, cr], 8, False, [(1, 1), (2, 2), (2, 2)], w, h)
    golden("j2k_sub420_jp2", "j2k_sub420.jp2", "JPEG 2000 JP2 4:2:0")
    a4 = pattern(w, h, 1, 255, seed=408)[:, :, 0]
    opj_raw(J("j2k_sub_rgba.j2k"), [y, cb, cr, a4], 8, False, [(1, 1), (2, 2), (2, 2), (1, 1)], w, h)
    golden("j2k_sub_rgba", "j2k_sub_rgba.j2k", "JPEG 2000 codestream of 4 components, 2 and 3 subsampled")
    opj_raw(J("j2k_grey12.j2k"), [pattern(w, h, 1, 4095, seed=409)[:, :, 0]], 12, False, [(1, 1)], w, h)
    golden("j2k_grey12", "j2k_grey12.j2k", "JPEG 2000 12-bit grey: Pillow's I;16 (<< 4), then clipped at 255")
    opj_raw(J("j2k_grey10.j2k"), [pattern(w, h, 1, 1023, seed=410)[:, :, 0]], 10, False, [(1, 1)], w, h)
    golden("j2k_grey10", "j2k_grey10.j2k", "JPEG 2000 10-bit grey: I;16 (<< 6), clipped at 255")
    opj_raw(J("j2k_grey4.j2k"), [pattern(w, h, 1, 15, seed=411)[:, :, 0]], 4, False, [(1, 1)], w, h)
    golden("j2k_grey4", "j2k_grey4.j2k", "JPEG 2000 4-bit grey: << 4")
    opj_raw(J("j2k_signed8.j2k"), [pattern(w, h, 1, 255, seed=412)[:, :, 0] - 128], 8, True, [(1, 1)], w, h)
    golden("j2k_signed8", "j2k_signed8.j2k", "JPEG 2000 signed 8-bit grey: + 128")
    opj_raw(J("j2k_rgb16.j2k"), [pattern(w, h, 1, 65535, seed=413 + c)[:, :, 0] for c in range(3)], 16, False,
            [(1, 1)] * 3, w, h)
    golden("j2k_rgb16", "j2k_rgb16.j2k", "JPEG 2000 16-bit RGB: >> 8 with rounding")
    opj_raw(J("j2k_la.j2k"), [g, g[::-1]], 8, False, [(1, 1)] * 2, w, h)
    golden("j2k_la", "j2k_la.j2k", "JPEG 2000 codestream of 2 components: grey and alpha")
    # refused
    with open(J("j2k_pil_rgb.jp2"), "rb") as f:
        data = f.read()
    with open(J("bad_j2k_truncated.jp2"), "wb") as f:
        f.write(data[:len(data) * 2 // 3])
    refused("bad_j2k_truncated.jp2", "JP2 cut inside its codestream")
    with open(J("bad_j2k_noheader.jp2"), "wb") as f:
        f.write(data[:12] + struct.pack(">I4s", 12, b"free") + b"\0" * 4)
    refused("bad_j2k_noheader.jp2", "JP2 signature without a jp2h box")
    opj_raw(J("bad_j2k_5comp.j2k"), [g] * 5, 8, False, [(1, 1)] * 5, w, h)
    refused("bad_j2k_5comp.j2k", "JPEG 2000 of 5 components")


# ---- MSP, XBM, SPIDER ------------------------------------------------------------------------------

def msp_header(magic, w, h):
    hdr = bytearray(magic + struct.pack("<HHHHHHHH", w, h, 1, 1, 1, 1, 0, 0) + b"\0" * 12)
    chk = 0
    for i in range(0, 32, 2):
        chk ^= struct.unpack_from("<H", hdr, i)[0]
    hdr[24:26] = struct.pack("<H", chk)  # the checksum word makes the XOR of all 16 words 0
    return bytes(hdr)


def msp_rle(row):
    """A LinS row: runs of equal bytes as (0, count, value), the rest as literals (count, bytes)."""
    out = bytearray()
    for run, i, j in split_runs(row, 255, 255):
        out += bytes([0, j - i, row[i]]) if run else bytes([j - i]) + bytes(row[i:j])
    return bytes(out)


def other_legacy_cases():
    J = lambda f: os.path.join(OUT, f)
    w, h = 21, 6
    bits = (pattern(w, h, 1, 1, seed=500)[:, :, 0] * 255).astype(np.uint8)
    bits[2, :] = 255
    im1 = Image.fromarray(bits, "L").convert("1")
    im1.save(J("msp_pil.msp"))
    golden("msp_pil", "msp_pil.msp", "MSP (Windows Paint 1.x, DanM) written by Pillow")
    rows = [pack_bits((r > 0).astype(np.int64), 1) for r in bits]
    rmap, body = [], b""
    for k, r in enumerate(rows):
        enc = b"" if k == 2 else msp_rle(r)  # an empty row map entry is a white row
        rmap.append(len(enc))
        body += enc
    with open(J("msp_lins.msp"), "wb") as f:
        f.write(msp_header(b"LinS", w, h) + struct.pack("<%dH" % h, *rmap) + body)
    golden("msp_lins", "msp_lins.msp", "MSP 2.0 (LinS): run-length rows through a row map, an empty entry white")
    # XBM: Pillow's writer, and hand-written ones with a hot spot, odd hex spellings, leading space
    im1.save(J("xbm_pil.xbm"))
    golden("xbm_pil", "xbm_pil.xbm", "XBM written by Pillow")
    im1.save(J("xbm_pil_hot.xbm"), hotspot=(3, 4))
    golden("xbm_pil_hot", "xbm_pil_hot.xbm", "XBM with a hot spot")
    hexes = ["0x%02x" % b for r in rows for b in r]
    hexes[1] = "0xF"  # one hex digit: Pillow takes the character after it as the low digit (0 here)
    hexes[2] = "0XAB"  # upper-case X: skipped to the next lower-case x
    with open(J("xbm_hand.xbm"), "w") as f:
        f.write("\n  #define test_image_width %d\r\n#define test_image_height %d\n/* comment */\n"
                "static unsigned char test_image_bits[] = {\n %s };\n" % (w, h, ", ".join(hexes + ["0x00"])))
    golden("xbm_hand", "xbm_hand.xbm", "XBM by hand: leading space, CRLF, a comment, one-digit and upper-case hex")
    # SPIDER: float samples (convert through L: truncated, clipped)
    fl = (pattern(w, h, 1, 1000, seed=501)[:, :, 0].astype(np.float32) - 200.0) * 0.4
    Image.fromarray(fl, "F").save(J("spider_pil.spider"), format="SPIDER")
    golden("spider_pil", "spider_pil.spider", "SPIDER written by Pillow (little-endian floats)")

    def spider(path, data, be, stack=False):
        e = ">" if be else "<"
        hdr = [0.0] * 27
        lenbyt = w * 4
        labrec = -(-1024 // lenbyt)
        hdr[0], hdr[1], hdr[4], hdr[11], hdr[12] = 1.0, float(h), 1.0, float(w), float(labrec)
        hdr[21], hdr[22] = float(labrec * lenbyt), float(lenbyt)
        if stack:
            hdr[23], hdr[25] = 2.0, 1.0
        head = struct.pack(e + "27f", *hdr).ljust(labrec * lenbyt, b"\0")
        img = data.astype(e + "f4").tobytes()
        with open(path, "wb") as f:
            f.write(head + (head + img if stack else img))
    spider(J("spider_be.spider"), fl, True)
    golden("spider_be", "spider_be.spider", "SPIDER big-endian")
    spider(J("spider_stack.spider"), fl[::-1], False, stack=True)
    golden("spider_stack", "spider_stack.spider", "SPIDER stack: the first image, after the stack header and its own")
    # IM: every mode Pillow writes, and by hand the other plain types, a grey palette, a NUL-ended header
    src = Image.fromarray(pattern(w, h, 4, 255, seed=510).astype(np.uint8), "RGBA")
    g8 = src.convert("L")
    modes = {"1": im1, "L": g8, "LA": src.convert("LA"), "P": src.convert("RGB").quantize(40),
             "PA": src.convert("RGB").quantize(20).convert("PA"), "RGB": src.convert("RGB"), "RGBA": src,
             "RGBX": src.convert("RGBX"), "CMYK": src.convert("CMYK"), "YCbCr": src.convert("YCbCr"),
             "I": Image.fromarray(pattern(w, h, 1, 600, seed=511)[:, :, 0].astype(np.int32) - 100, "I"),
             "I;16": g8.convert("I").point(lambda v: v * 3).convert("I;16"),
             "F": Image.fromarray(fl, "F")}
    for mode, im in modes.items():
        name = "im_pil_%s" % mode.replace(";", "").lower()
        im.save(J(name + ".im"))
        golden(name, name + ".im", "IM written by Pillow: %s" % mode)

    def im_file(path, itype, data, extra=b"", end=b"\x1a", lut=None):
        head = b"Image type: %s image\r\nImage size (x*y): %d*%d\r\n" % (itype, w, h) + extra
        if lut is not None:
            head += b"Lut: 1\r\n"
        head += end
        with open(path, "wb") as f:
            f.write(head.ljust(512, b"\0") + (lut if lut is not None else b"") + data)
    rows = lambda a: np.ascontiguousarray(a[::-1])  # IM rows are bottom up
    idx4 = pattern(w, h, 1, 15, seed=512)[:, :, 0]
    im_file(J("im_b4.im"), b"B4", b"".join(pack_bits(r, 4) for r in rows(idx4)))
    golden("im_b4", "im_b4.im", "IM B4 (4-bit indices, no palette: the grey ramp)")
    im_file(J("im_x24.im"), b"X 24", rows(pattern(w, h, 3, 255, seed=513)).astype(np.uint8).tobytes(),
            extra=b"Comment: pixel interleaved\r\n", end=b"\0\0\0\x1a")
    golden("im_x24", "im_x24.im", "IM X 24 (interleaved RGB), a comment, a header ended by NUL before its 0x1A")
    ramp = bytes(255 - i for i in range(256)) * 3
    im_file(J("im_grey_lut.im"), b"Greyscale", rows(np.asarray(g8)).tobytes(), lut=ramp)
    golden("im_grey_lut", "im_grey_lut.im", "IM greyscale with a grey but inverted palette: Pillow ignores it")
    # refused
    im_file(J("bad_im_rlb.im"), b"RLB", b"\0" * (3 * w * h))
    refused("bad_im_rlb.im", "IM RLB image: not read by the engine", pil_refuses=False)
    im_file(J("bad_im_pa_nolut.im"), b"PA", b"\0" * (2 * w * h))
    refused("bad_im_pa_nolut.im", "IM PA image without a palette (Pillow has no unpacker)")
    # DDS: Pillow's writer (uncompressed), and by hand BC1-BC5 blocks of random bits (every block is
    # valid), odd sizes, a DX10 header
    for mode, im in (("L", g8), ("LA", src.convert("LA")), ("RGB", src.convert("RGB")), ("RGBA", src)):
        name = "dds_pil_%s" % mode.lower()
        im.save(J(name + ".dds"))
        golden(name, name + ".dds", "DDS written by Pillow: %s, uncompressed" % mode)

    def dds(path, ww, hh, fourcc=b"", pfflags=4, masks=(0, 0, 0, 0), bitcount=0, dxgi=None, data=b""):
        hdr = struct.pack("<4sIIIIIII", b"DDS ", 124, 0x1007, hh, ww, 0, 0, 0) + b"\0" * 44
        hdr += struct.pack("<II4sI4I", 32, pfflags, fourcc, bitcount, *masks) + b"\0" * 20
        if dxgi is not None:
            hdr += struct.pack("<IIIII", dxgi, 3, 0, 1, 0)
        with open(path, "wb") as f:
            f.write(hdr + data)
    rb = np.random.RandomState(520)
    for name, fourcc, bsz, what in (("dds_dxt1", b"DXT1", 8, "DXT1 (BC1), with c0 <= c1 blocks"),
                                    ("dds_dxt3", b"DXT3", 16, "DXT3 (BC2)"), ("dds_dxt5", b"DXT5", 16, "DXT5 (BC3)"),
                                    ("dds_ati1", b"ATI1", 8, "ATI1 (BC4, grey)"), ("dds_ati2", b"ATI2", 16, "ATI2 (BC5)"),
                                    ("dds_bc5s", b"BC5S", 16, "BC5 signed")):
        ww, hh = (13, 7) if bsz == 8 else (16, 8)
        data = bytes(rb.randint(0, 256, ((ww + 3) // 4) * ((hh + 3) // 4) * bsz).astype(np.uint8))
        dds(J(name + ".dds"), ww, hh, fourcc=fourcc, data=data)
        golden(name, name + ".dds", "DDS %s, %dx%d" % (what, ww, hh))
    dds(J("dds_dx10_bc5.dds"), 9, 6, fourcc=b"DX10", dxgi=83,
        data=bytes(rb.randint(0, 256, 3 * 2 * 16).astype(np.uint8)))
    golden("dds_dx10_bc5", "dds_dx10_bc5.dds", "DDS with a DX10 header, BC5")
    dds(J("dds_dx10_rgba.dds"), 5, 3, fourcc=b"DX10", dxgi=28, data=bytes(rb.randint(0, 256, 60).astype(np.uint8)))
    golden("dds_dx10_rgba", "dds_dx10_rgba.dds", "DDS with a DX10 header, R8G8B8A8")
    dds(J("dds_argb_masks.dds"), 5, 3, pfflags=0x41, masks=(0xff00, 0xff0000, 0xff000000, 0xff), bitcount=32,
        data=bytes(rb.randint(0, 256, 60).astype(np.uint8)))
    golden("dds_argb_masks", "dds_argb_masks.dds", "DDS RGBA by masks in A, R, G, B byte order")
    dds(J("bad_dds_bc7.dds"), 8, 8, fourcc=b"DX10", dxgi=98, data=b"\0" * 64)
    refused("bad_dds_bc7.dds", "DDS BC7: not read by the engine", pil_refuses=False)
    dds(J("bad_dds_truncated.dds"), 16, 8, fourcc=b"DXT5", data=b"\0" * 100)
    refused("bad_dds_truncated.dds", "DDS block data cut short")
    # ICNS by hand (Pillow's own writer makes a 1024x1024 icon): PNG, JPEG 2000, RLE and raw RGB icons
    def icns(path, blocks):
        body = b"".join(struct.pack(">4sI", t, 8 + len(b)) + b for t, b in blocks)
        with open(path, "wb") as f:
            f.write(struct.pack(">4sI", b"icns", 8 + len(body)) + body)

    def icns_rle(planes):
        out = bytearray()
        for pl in planes:
            v = [int(x) for x in pl.reshape(-1)]
            for run, i, j in split_runs(v, 130, 128):
                out += bytes([0x80 + j - i - 3, v[i]]) if run else bytes([j - i - 1]) + bytes(v[i:j])
        return bytes(out)

    def png_bytes(im, **kw):
        b = io.BytesIO()
        im.save(b, "PNG", **kw)
        return b.getvalue()
    c16 = pattern(16, 16, 3, 255, seed=530).astype(np.uint8)
    c16[4:9, :] = 77
    c32 = pattern(32, 32, 3, 255, seed=531).astype(np.uint8)
    m16 = bytes(pattern(16, 16, 1, 255, seed=532).astype(np.uint8).reshape(-1))
    p16 = Image.fromarray(pattern(16, 16, 4, 255, seed=533).astype(np.uint8), "RGBA")
    j2 = io.BytesIO()
    Image.fromarray(c16, "RGB").save(j2, "JPEG2000")
    for name, blocks, what in (
            ("icns_png", [(b"icp4", png_bytes(p16)), (b"s8mk", m16)], "ICNS with a 16x16 PNG icon"),
            ("icns_rle", [(b"is32", icns_rle([c16[:, :, k] for k in range(3)])), (b"s8mk", m16)],
             "ICNS 16x16 RGB run-length coded by channel, and a mask"),
            ("icns_pick", [(b"is32", icns_rle([c16[:, :, k] for k in range(3)])), (b"il32", c32.tobytes()),
                           (b"icp4", png_bytes(p16))], "ICNS of three icons: the 32x32 raw RGB one, the largest"),
            ("icns_png_over_rgb", [(b"il32", icns_rle([c32[:, :, k] for k in range(3)])),
                                   (b"icp5", png_bytes(Image.fromarray(c32[::-1], "RGB").convert("P")))],
             "ICNS 32x32 with both a PNG and an RLE icon: the PNG wins"),
            ("icns_j2k", [(b"icp4", j2.getvalue())], "ICNS with a JPEG 2000 icon")):
        icns(J(name + ".icns"), blocks)
        golden(name, name + ".icns", what)
    bad = bytearray(icns_rle([c16[:, :, k] for k in range(3)]))
    bad[0] = 0xff  # a run longer than the channel
    icns(J("bad_icns_rle.icns"), [(b"is32", bytes(bad))])
    refused("bad_icns_rle.icns", "ICNS RLE channel that overshoots its size")
    # BLP: Pillow's writer (palette images, BLP2 and BLP1), and by hand BLP2 DXT1/3/5 of random blocks
    pim = src.convert("RGB").quantize(50)
    pim.save(J("blp_pil2.blp"))
    golden("blp_pil2", "blp_pil2.blp", "BLP2 written by Pillow (palette)")
    pim.save(J("blp_pil1.blp"), blp_version="BLP1")
    golden("blp_pil1", "blp_pil1.blp", "BLP1 written by Pillow (palette)")

    def blp2(path, ww, hh, encoding, alpha_depth, alpha_enc, data, pal=b"\0" * 1024):
        hdr = b"BLP2" + struct.pack("<iBBBBII", 1, encoding, alpha_depth, alpha_enc, 0, ww, hh)
        hdr += struct.pack("<16I", 148 + 1024, *([0] * 15)) + struct.pack("<16I", len(data), *([0] * 15))
        with open(path, "wb") as f:
            f.write(hdr + pal + data)
    for name, ww, hh, ad, ae, bsz, what in (("blp_dxt1", 8, 8, 0, 0, 8, "DXT1, no alpha depth (RGB)"),
                                            ("blp_dxt1_alpha", 8, 4, 8, 0, 8, "DXT1 with alpha depth 8 (RGBA)"),
                                            ("blp_dxt3", 8, 8, 8, 1, 16, "DXT3"),
                                            ("blp_dxt5_w6", 6, 5, 8, 7, 16, "DXT5, 6x5: the rows shear as in Pillow")):
        blocks = ((ww + 3) // 4) * ((hh + 3) // 4)
        blp2(J(name + ".blp"), ww, hh, 2, ad, ae, bytes(rb.randint(0, 256, blocks * bsz).astype(np.uint8)))
        golden(name, name + ".blp", "BLP2 " + what)
    blp2(J("bad_blp_truncated.blp"), 8, 8, 2, 8, 7, b"\0" * 40)
    refused("bad_blp_truncated.blp", "BLP2 DXT5 data cut short")
    for src, dst, keep, what in (("im_pil_rgb.im", "bad_im_truncated.im", -10, "IM data cut short"),
                                 ("msp_pil.msp", "bad_msp_truncated.msp", -5, "MSP data cut short"),
                                 ("xbm_pil.xbm", "bad_xbm_truncated.xbm", 80, "XBM with too few bytes"),
                                 ("spider_be.spider", "bad_spider_truncated.spider", -7, "SPIDER data cut short"),
                                 ("icns_rle.icns", "bad_icns_truncated.icns", 300, "ICNS cut inside its RLE icon")):
        with open(J(src), "rb") as f:
            data = f.read()
        with open(J(dst), "wb") as f:
            f.write(data[:keep])
        refused(dst, what)


def other_cases():
    with open(os.path.join(OUT, "other_empty.png"), "wb"):
        pass
    refused("other_empty.png", "an empty file")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f != "README.md":
            os.remove(os.path.join(OUT, f))
    png_cases()
    jpeg_cases()
    ppm_cases()
    apng_cases()
    webp_cases()
    bmp_cases()
    gif_cases()
    tiff_cases()
    ico_cases()
    tga_cases()
    sgi_cases()
    pcx_cases()
    j2k_cases()
    other_legacy_cases()
    other_cases()
    manifest = {
        "generator": "tools/make_image_corpus.py",
        "reference": "PIL.Image.open(file).convert('RGB').tobytes(), rows top to bottom",
        "pillow": PIL.__version__,
        "libjpeg": features.version("jpg"),
        "libjpeg_turbo": bool(features.check("libjpeg_turbo")),
        "zlib": features.version("zlib"),
        "libwebp": features.version("webp"),
        "libtiff": features.version("libtiff"),
        "openjpeg": features.version("jpg_2000"),
        "littlecms2": features.version("littlecms2"),
        "images": images,
        "refused": errors,
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(images)} images, {len(errors)} refusals, {total} bytes in {OUT} (Pillow {PIL.__version__})")
    if not PIL.__version__.startswith("9.4."):
        print("warning: the committed goldens come from Pillow 9.4 (Debian 12's python3-pil)", file=sys.stderr)


if __name__ == "__main__":
    main()
