"""The C scene renderer (engine/scenes/mgl-scenes.c) from Python, through ctypes.

Training draws scenes from the very renderer that `mgllava scenes`, `mgllava eval-scenes` and the
`mgllavascenesrc` element use: the source is compiled into a private shared library on first use
(gcc, -O2), so there is one renderer and no second implementation to drift.
"""
import ctypes
import hashlib
import json
import os
import subprocess
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SRC = os.path.join(REPO, "engine", "scenes", "mgl-scenes.c")

# the renderer's palette and shapes, in its index order (engine/scenes/mgl-scenes.c)
COLORS = ["red", "orange", "yellow", "green", "cyan", "blue", "purple", "magenta"]
SHAPES = ["circle", "square", "triangle", "star"]
CAPTION_PROMPT = "Describe the image."
WIDTH, HEIGHT = 640, 480
SCENE_BYTES = 4096  # >= sizeof(MglScene); the struct is only passed back to the renderer


class Renderer:
    def __init__(self):
        src = open(SRC, "rb").read()
        tag = hashlib.sha256(src).hexdigest()[:16]
        lib = os.path.join(tempfile.gettempdir(), f"mglscenes-{tag}.so")
        if not os.path.exists(lib):
            tmp = lib + f".{os.getpid()}"
            subprocess.check_call(["gcc", "-O2", "-shared", "-fPIC", "-I", os.path.dirname(SRC), SRC, "-o", tmp,
                                   "-lm"])
            os.replace(tmp, lib)
        L = ctypes.CDLL(lib)
        L.mgl_scene_make.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_uint64, ctypes.c_int,
                                     ctypes.c_int, ctypes.c_int]
        L.mgl_scene_render.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                                       ctypes.c_bool]
        L.mgl_scene_truth_json.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64]
        L.mgl_scene_truth_json.restype = ctypes.c_void_p
        L.mgl_scene_still_frame.argtypes = [ctypes.c_long]
        L.mgl_scene_still_frame.restype = ctypes.c_int
        L.free.argtypes = [ctypes.c_void_p]
        self.L = L
        self.scene = ctypes.create_string_buffer(SCENE_BYTES)

    def still_frame(self, index):
        """The frame of scene `index` that `mgllava scenes` and `mgllava eval-scenes` render."""
        return self.L.mgl_scene_still_frame(index)

    def render(self, seed, index, t, min_objects=1, max_objects=6, width=WIDTH, height=HEIGHT):
        """(H, W, 3) uint8 RGB image and the ground-truth dict of scene `index` at frame `t`."""
        L = self.L
        L.mgl_scene_make(self.scene, width, height, seed, index, min_objects, max_objects)
        px = np.zeros((height, width, 3), dtype=np.uint8)
        L.mgl_scene_render(self.scene, t, px.ctypes.data, width * 3, 3, False)
        p = L.mgl_scene_truth_json(self.scene, t, -1)
        truth = json.loads(ctypes.string_at(p).decode("utf-8"))
        L.free(p)
        return px, truth


def items(truth):
    """(question, answer, category) of a scene: the caption prompt, then every truth question."""
    out = [(CAPTION_PROMPT, truth["caption"], "caption")]
    for qa in truth["qa"]:
        q = qa["q"]
        cat = ("digit" if qa.get("digit") else "count" if q.startswith("How many") else
               "color" if q.startswith("What colour") else "shape" if q.startswith("What shape") else
               "position")
        out.append((q, qa["a"], cat))
    return out


def normalize_answer(s):
    s = s.strip()
    if s.endswith("."):
        s = s[:-1]
    return s.strip().lower()
