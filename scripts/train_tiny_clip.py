#!/usr/bin/env python3
"""Train clipdraw's built-in tiny CLIP-style model on procedurally drawn shapes.

No downloaded data: every training image is drawn here (one to three simple objects
on white, as clean shapes or as loose stroke-like scribbles of varying width and
opacity) and captioned from templates. The model has CLIP's interface (224 px
CLIP-normalised images, CLIP BPE ids with context 77) and is written as a clipdraw
model file through scripts/export_clip.py's bundle path (DESIGN.md section 3).

  image tower: 2x2 average pool -> CoordConv (RGB + x, y) -> 5 conv layers (BN, ReLU)
               -> global average + global max + coarse 7x7 spatial map -> BN -> MLP -> E
  text tower : fixed lookup BPE id -> compact index of the known tokens (0 = unknown)
               -> small embedding + positions -> 2 causal transformer blocks
               -> pooled at the end token (argmax of ids, as CLIP) -> E

Training has two stages. Stage 1 trains the image tower alone to classify one-shape
scenes (shape and colour cross-entropy on the pooled CNN features, plus multi-label
place / count / size); without it the contrastive loss settles on colour and place and
never learns shape. Stage 2 is contrastive (CLIP loss with soft targets: a caption is a
positive for every image in the batch it truly describes), keeping the stage-1 losses,
with clipdraw's draw-time augmentation
(random perspective 0.5, white fill; random resized crop 0.7-0.9, ratio 3/4-4/3),
attribute-swap partner scenes (same scene with one attribute changed) and hard
negatives (clipdraw-like random scribble clutter, and the caption's own scene buried
under clutter), so the model prefers clean drawings that match the caption.

Deterministic for a given --seed and --steps (the --minutes cap stops early).
Prints held-out zero-shot accuracy for colour, shape, position, corner, count, size,
writes the model file atomically and re-checks the accuracy on the reloaded file.

Example:
  python scripts/train_tiny_clip.py --seed 0 --out assets/clipdraw-tiny.pt --threads 2
"""

import argparse
import itertools
import json
import math
import os
import sys
import time

import numpy as np
import torch.utils.data
from PIL import Image, ImageDraw

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPT_DIR)

ARCH = "clipdraw-tiny-v1"
S = 224
CONTEXT = 77
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)

# ----------------------------------------------------------------------------------
# vocabulary

COLOURS = {  # base RGB; jittered per object
    "red": (220, 25, 30),
    "orange": (255, 140, 0),
    "yellow": (250, 220, 0),
    "green": (30, 165, 45),
    "blue": (30, 70, 225),
    "purple": (128, 40, 180),
    "pink": (255, 110, 190),
    "black": (0, 0, 0),
}
COLOUR_NAMES = list(COLOURS)
SHAPES = ["circle", "square", "triangle", "star", "heart", "cross", "line"]
PLURAL = {"circle": "circles", "square": "squares", "triangle": "triangles",
          "star": "stars", "heart": "hearts", "cross": "crosses", "line": "lines",
          "shape": "shapes"}
SIZES = ["small", "big"]
SIZE_WORDS = {"small": ["small"], "big": ["big", "large"]}
COUNT_WORDS = {1: ["a", "one"], 2: ["two"], 3: ["three"]}
FRAMINGS = ["", "a drawing of ", "a sketch of ", "a painting of ", "a picture of "]

# position predicates over the 3x3 grid of cells (col, row): phrase -> (cols, rows)
POS = {
    "left": ({0}, {0, 1, 2}), "right": ({2}, {0, 1, 2}),
    "top": ({0, 1, 2}, {0}), "bottom": ({0, 1, 2}, {2}),
    "centre": ({1}, {1}),
    "top left": ({0}, {0}), "top right": ({2}, {0}),
    "bottom left": ({0}, {2}), "bottom right": ({2}, {2}),
}
POS_PHRASES = {
    "left": ["on the left", "on the left side", "at the left"],
    "right": ["on the right", "on the right side", "at the right"],
    "top": ["at the top", "on the top"],
    "bottom": ["at the bottom", "on the bottom"],
    "centre": ["in the centre", "in the center", "in the middle"],
    "top left": ["in the top left corner", "at the top left", "in the top left"],
    "top right": ["in the top right corner", "at the top right", "in the top right"],
    "bottom left": ["in the bottom left corner", "at the bottom left", "in the bottom left"],
    "bottom right": ["in the bottom right corner", "at the bottom right", "in the bottom right"],
}
EXTRA_WORDS = ["a", "an", "of", "and", "the", "on", "at", "in", "side", "corner",
               "middle", "shape", "shapes", "drawing", "sketch", "painting", "picture",
               "one", "two", "three", "large", "center", "centre", ".", ","]


def known_words():
    words = set(EXTRA_WORDS) | set(COLOUR_NAMES) | set(SHAPES) | set(PLURAL.values())
    words |= set(SIZES)
    for ph in POS_PHRASES.values():
        for p in ph:
            words |= set(p.split())
    return sorted(words)


# ----------------------------------------------------------------------------------
# scenes and captions

CELL_X = [(0.13, 0.28), (0.42, 0.58), (0.72, 0.87)]
R_RANGE = {"small": (13, 21), None: (25, 34), "big": (42, 58)}


def cell_satisfies(cell, phrase):
    cols, rows = POS[phrase]
    return cell[0] in cols and cell[1] in rows


def true_positions(cell):
    return [p for p in POS if cell_satisfies(cell, p)]


def make_scene(rng, kind=None):
    """A scene: list of objects {shape, colour, size, cell}. kind: 'single', 'same', 'diff'."""
    if kind is None:
        kind = rng.choice(["single", "same", "diff"], p=[0.55, 0.2, 0.25])
    cells = [(c, r) for c in range(3) for r in range(3)]
    if kind == "single":
        size = rng.choice(["small", None, "big"], p=[0.3, 0.4, 0.3])
        cell = cells[rng.integers(9)]
        return [dict(shape=SHAPES[rng.integers(7)], colour=COLOUR_NAMES[rng.integers(8)],
                     size=size, cell=cell)]
    n = int(rng.integers(2, 4))
    order = rng.permutation(9)[:n]
    if kind == "same":
        shape, colour = SHAPES[rng.integers(7)], COLOUR_NAMES[rng.integers(8)]
        size = rng.choice(["small", None], p=[0.5, 0.5])
        return [dict(shape=shape, colour=colour, size=size, cell=cells[i]) for i in order]
    n = 2 if rng.random() < 0.75 else 3
    order = rng.permutation(9)[:n]
    objs = []
    for i in order:
        while True:
            o = dict(shape=SHAPES[rng.integers(7)], colour=COLOUR_NAMES[rng.integers(8)],
                     size=rng.choice(["small", None], p=[0.5, 0.5]), cell=cells[i])
            if all((o["shape"], o["colour"]) != (p["shape"], p["colour"]) for p in objs):
                break
        objs.append(o)
    return objs


def perturb_scene(rng, scene):
    """The same scene with one attribute changed (a hard negative for most captions)."""
    scene = [dict(o) for o in scene]
    what = rng.choice(["colour", "shape", "position", "count", "size"],
                      p=[0.3, 0.3, 0.25, 0.1, 0.05])
    i = int(rng.integers(len(scene)))
    same = len(scene) > 1 and all((o["shape"], o["colour"]) == (scene[0]["shape"], scene[0]["colour"])
                                  for o in scene)
    idx = range(len(scene)) if same else [i]
    if what == "colour":
        c = COLOUR_NAMES[rng.integers(8)]
        while c == scene[i]["colour"]:
            c = COLOUR_NAMES[rng.integers(8)]
        for j in idx:
            scene[j]["colour"] = c
    elif what == "shape":
        s = SHAPES[rng.integers(7)]
        while s == scene[i]["shape"]:
            s = SHAPES[rng.integers(7)]
        for j in idx:
            scene[j]["shape"] = s
    elif what == "position":
        used = {o["cell"] for o in scene}
        free = [(c, r) for c in range(3) for r in range(3) if (c, r) not in used]
        # prefer a move across the canvas (mirror), else any free cell
        c0, r0 = scene[i]["cell"]
        mirror = [(2 - c0, r0), (c0, 2 - r0), (2 - c0, 2 - r0)]
        cand = [m for m in mirror if m in free] or free
        scene[i]["cell"] = cand[int(rng.integers(len(cand)))]
    elif what == "count":
        if len(scene) == 1 or same:
            n = len(scene)
            m = int(rng.choice([k for k in (1, 2, 3) if k != n]))
            base = dict(scene[0])
            if base["size"] == "big":
                base["size"] = None
            cells = [(c, r) for c in range(3) for r in range(3)]
            order = rng.permutation(9)[:m]
            scene = [dict(base, cell=cells[k]) for k in order]
        else:
            scene.pop(i)
    else:
        if len(scene) == 1:
            opts = [s for s in ("small", None, "big") if s != scene[0]["size"]]
            scene[0]["size"] = opts[int(rng.integers(len(opts)))]
        else:
            for j in idx:
                scene[j]["size"] = "small" if scene[j]["size"] is None else None
    return scene


def make_caption(rng, scene):
    """Returns (text, spec). spec: list of groups {count, shape, colour, size, pos}."""
    same = all((o["shape"], o["colour"], o["size"]) == (scene[0]["shape"], scene[0]["colour"],
                                                        scene[0]["size"]) for o in scene)
    if same:
        groups_objs = [scene]
    else:
        groups_objs = [[o] for o in scene]
        groups_objs = [groups_objs[k] for k in rng.permutation(len(groups_objs))]
    spec, parts = [], []
    for objs in groups_objs:
        o, n = objs[0], len(objs)
        keep_c = rng.random() < 0.85
        keep_s = rng.random() < 0.85
        if not (keep_c or keep_s):
            keep_c = keep_s = True
        size = o["size"] if (o["size"] is not None and rng.random() < 0.6) else None
        pos = None
        if n == 1 and rng.random() < 0.6:
            tp = true_positions(o["cell"])
            pos = tp[int(rng.integers(len(tp)))]
        g = dict(count=n, shape=o["shape"] if keep_s else None,
                 colour=o["colour"] if keep_c else None, size=size, pos=pos)
        spec.append(g)
        words = []
        if size:
            ws = SIZE_WORDS[size]
            words.append(ws[int(rng.integers(len(ws)))])
        if keep_c:
            words.append(o["colour"])
        noun = o["shape"] if keep_s else "shape"
        words.append(noun if n == 1 else PLURAL[noun])
        cw = COUNT_WORDS[n]
        art = cw[int(rng.integers(len(cw)))]
        if art == "a" and words[0][0] in "aeiou":
            art = "an"
        if n == 1 and rng.random() < 0.08:
            art = ""
        text = " ".join(([art] if art else []) + words)
        if pos:
            ph = POS_PHRASES[pos]
            text += " " + ph[int(rng.integers(len(ph)))]
        parts.append(text)
    text = " and ".join(parts)
    text = FRAMINGS[int(rng.integers(len(FRAMINGS)))] + text
    if rng.random() < 0.1:
        text += "."
    return text, spec


def group_ok(g, o):
    return ((g["shape"] is None or g["shape"] == o["shape"])
            and (g["colour"] is None or g["colour"] == o["colour"])
            and (g["size"] is None or g["size"] == o["size"])
            and (g["pos"] is None or cell_satisfies(o["cell"], g["pos"])))


def matches(spec, scene):
    """True if the caption spec truly describes every object of the scene."""
    if scene is None or sum(g["count"] for g in spec) != len(scene):
        return False
    for perm in itertools.permutations(scene):
        k, ok = 0, True
        for g in spec:
            for o in perm[k:k + g["count"]]:
                if not group_ok(g, o):
                    ok = False
                    break
            if not ok:
                break
            k += g["count"]
        if ok:
            return True
    return False


# ----------------------------------------------------------------------------------
# drawing


def unit_polygon(shape):
    if shape == "circle":
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], 1)
    if shape == "square":
        return np.array([[-0.82, -0.82], [0.82, -0.82], [0.82, 0.82], [-0.82, 0.82]])
    if shape == "triangle":
        t = np.deg2rad(np.array([-90, 30, 150]))
        p = np.stack([np.cos(t), np.sin(t)], 1)
        p[:, 1] += 0.2
        return p * 1.05
    if shape == "star":
        t = np.deg2rad(-90 + 36 * np.arange(10))
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        p = np.stack([r * np.cos(t), r * np.sin(t)], 1)
        p[:, 1] += 0.1
        return p
    if shape == "heart":
        t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        p = np.stack([x, y], 1) / 16.5
        p[:, 1] += 0.1
        return p
    if shape == "cross":
        a = 0.3
        return np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1],
                         [-a, 1], [-a, a], [-1, a], [-1, -a], [-a, -a]])
    raise ValueError(shape)


def jitter_colour(rng, name):
    base = np.array(COLOURS[name], dtype=np.float64)
    if name == "black":
        c = base + rng.uniform(0, 45)
    else:
        c = base + rng.normal(0, 12, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def object_geometry(rng, o):
    lo, hi = R_RANGE[o["size"]]
    r = rng.uniform(lo, hi)
    col, row = o["cell"]
    cx = rng.uniform(*CELL_X[col]) * S
    cy = rng.uniform(*CELL_X[row]) * S
    m = 0.75 * r
    cx, cy = float(np.clip(cx, m, S - m)), float(np.clip(cy, m, S - m))
    return cx, cy, r


def polyline(draw, pts, fill, width):
    pts = [(float(x), float(y)) for x, y in pts]
    draw.line(pts, fill=fill, width=max(1, int(round(width))), joint="curve")
    if width >= 4:  # round caps
        h = width / 2
        for x, y in (pts[0], pts[-1]):
            draw.ellipse([x - h, y - h, x + h, y + h], fill=fill)


def resample_closed(poly, n):
    p = np.concatenate([poly, poly[:1]], 0)
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    t = np.linspace(0, s[-1], n, endpoint=False)
    return np.stack([np.interp(t, s, p[:, 0]), np.interp(t, s, p[:, 1])], 1)


def draw_object(rng, draw, o, style):
    cx, cy, r = object_geometry(rng, o)
    rgb = jitter_colour(rng, o["colour"])
    shape = o["shape"]
    if shape == "line":
        ang = rng.uniform(0, np.pi)
        d = np.array([np.cos(ang), np.sin(ang)]) * r * 1.05
        a, b = np.array([cx, cy]) - d, np.array([cx, cy]) + d
        w = rng.uniform(max(3, 0.08 * r), max(5, 0.3 * r))
        if style in ("fill", "outline"):
            polyline(draw, [a, b], rgb + (255,), w)
        else:
            passes = int(rng.integers(1, 4))
            for _ in range(passes):
                t = np.linspace(0, 1, 8)[:, None]
                pts = a + (b - a) * t + rng.normal(0, 0.04 * r + 1, (8, 2))
                alpha = int(rng.uniform(0.6, 1.0) * 255)
                polyline(draw, pts, rgb + (alpha,), w * rng.uniform(0.6, 1.2))
        return
    rot = rng.uniform(-0.25, 0.25)
    R = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    sc = r * np.array([rng.uniform(0.9, 1.1), rng.uniform(0.9, 1.1)])
    poly = (unit_polygon(shape) * sc) @ R.T + np.array([cx, cy])
    if style == "fill":
        draw.polygon([tuple(p) for p in poly], fill=rgb + (255,))
        return
    if style == "outline":
        w = rng.uniform(2, max(3, 0.22 * r))
        polyline(draw, np.concatenate([poly, poly[:1]]), rgb + (255,), w)
        return
    # scribbles: hatched fill (zigzag) and/or loose outline, semi-transparent strokes
    do_fill = style == "scribble_fill" or rng.random() < 0.3
    if do_fill:
        mask = Image.new("L", (S, S), 0)
        ImageDraw.Draw(mask).polygon([tuple(p) for p in poly], fill=255)
        ys, xs = np.nonzero(np.asarray(mask))
        if len(xs) > 10:
            th = rng.uniform(0, np.pi)
            u = xs * np.cos(th) + ys * np.sin(th)
            v = -xs * np.sin(th) + ys * np.cos(th)
            w = rng.uniform(max(3, 0.12 * r), max(5, 0.4 * r))
            step = w * rng.uniform(0.6, 1.1)
            vb = np.floor((v - v.min()) / step).astype(int)
            pts = []
            for k in range(vb.max() + 1):
                sel = vb == k
                if not sel.any():
                    continue
                umin, umax = u[sel].min(), u[sel].max()
                vv = v.min() + (k + 0.5) * step
                ends = [umin + w * 0.3, umax - w * 0.3]
                if len(pts) // 2 % 2 == 1:
                    ends = ends[::-1]
                for uu in ends:
                    uu += rng.normal(0, 0.05 * r)
                    pts.append((uu * np.cos(th) - vv * np.sin(th), uu * np.sin(th) + vv * np.cos(th)))
            if len(pts) >= 2:
                alpha = int(rng.uniform(0.7, 1.0) * 255)
                # break the zigzag into a few strokes, like separate Bezier paths
                k = 0
                while k < len(pts) - 1:
                    n = int(rng.integers(3, 9))
                    polyline(draw, pts[k:k + n], rgb + (alpha,), w)
                    k += n - 1
    if style == "scribble_outline" or rng.random() < (0.4 if shape == "circle" else 0.8):
        passes = int(rng.integers(1, 3))
        for _ in range(passes):
            n = 40
            pts = resample_closed(poly, n) + rng.normal(0, 0.03 * r + 0.7, (n, 2))
            pts = np.concatenate([pts, pts[:3]], 0)
            w = rng.uniform(2, max(3, 0.25 * r))
            alpha = int(rng.uniform(0.6, 1.0) * 255)
            k = 0
            while k < len(pts) - 1:
                m = int(rng.integers(6, 16))
                polyline(draw, pts[k:k + m], rgb + (alpha,), w)
                k += m - 1


def bezier_stroke(rng, max_w=1.0):
    """clipdraw's random initial stroke: 1-3 cubic segments, small steps, random RGBA."""
    nseg = int(rng.integers(1, 4))
    p = [rng.uniform(0, S, 2)]
    for _ in range(3 * nseg):
        p.append(p[-1] + 0.1 * S * (rng.uniform(0, 1, 2) - 0.5))
    p = np.array(p)
    t = np.linspace(0, 1, 10)[:, None]
    pts = []
    for s in range(nseg):
        a, b, c, d = p[3 * s:3 * s + 4]
        pts.extend((1 - t) ** 3 * a + 3 * (1 - t) ** 2 * t * b + 3 * (1 - t) * t ** 2 * c + t ** 3 * d)
    rgba = tuple(int(v) for v in rng.uniform(0, 256, 4))
    w = rng.uniform(1, max_w) if max_w > 1 else 1
    return pts, rgba, w


def render(rng, scene, clutter=0, clutter_w=1.0, clutter_rgb=None):
    im = Image.new("RGB", (S, S), (255, 255, 255))
    draw = ImageDraw.Draw(im, "RGBA")
    if scene:
        style = rng.choice(["fill", "outline", "scribble_fill", "scribble_outline"],
                           p=[0.3, 0.15, 0.35, 0.2])
        for o in scene:
            st = style if rng.random() < 0.8 else rng.choice(["fill", "scribble_fill"])
            draw_object(rng, draw, o, st)
    for _ in range(clutter):
        pts, rgba, w = bezier_stroke(rng, clutter_w)
        if clutter_rgb is not None:  # clutter in the scene's own colour, as clipdraw leaves it
            rgba = tuple(int(v) for v in np.clip(np.array(clutter_rgb) + rng.normal(0, 40, 3), 0, 255)) + rgba[3:]
        polyline(draw, pts, rgba, w)
    return np.asarray(im)


# ----------------------------------------------------------------------------------
# augmentation (batched): RandomPerspective(0.5, fill white) then RandomResizedCrop


def perspective_coeffs(start, end):
    """Homography H (3x3) with H @ [end, 1] ~ [start, 1] (output -> input)."""
    A, b = [], []
    for (x, y), (u, v) in zip(end, start):
        A.append([x, y, 1, 0, 0, 0, -u * x, -u * y]); b.append(u)
        A.append([0, 0, 0, x, y, 1, -v * x, -v * y]); b.append(v)
    h = np.linalg.solve(np.array(A, dtype=np.float64), np.array(b, dtype=np.float64))
    return np.append(h, 1.0).reshape(3, 3)


def aug_matrix(rng, d=0.5):
    w = h = S
    hw, hh = w // 2, h // 2
    tl = [rng.integers(0, int(d * hw) + 1), rng.integers(0, int(d * hh) + 1)]
    tr = [rng.integers(w - int(d * hw) - 1, w), rng.integers(0, int(d * hh) + 1)]
    br = [rng.integers(w - int(d * hw) - 1, w), rng.integers(h - int(d * hh) - 1, h)]
    bl = [rng.integers(0, int(d * hw) + 1), rng.integers(h - int(d * hh) - 1, h)]
    start = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
    P = perspective_coeffs(start, [tl, tr, br, bl])
    # RandomResizedCrop(224, scale (0.7, 0.9), ratio (3/4, 4/3))
    area = w * h
    for _ in range(10):
        ta = area * rng.uniform(0.7, 0.9)
        ar = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = int(round(math.sqrt(ta * ar))), int(round(math.sqrt(ta / ar)))
        if 0 < cw <= w and 0 < ch <= h:
            i, j = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            break
    else:
        cw, ch, i, j = w, h, 0, 0
    C = np.array([[cw / S, 0, j], [0, ch / S, i], [0, 0, 1.0]])
    return P @ C  # output pixel -> crop coords -> source pixel


def augment(torch, x, mats):
    """x: (B,3,S,S) in [0,1]; mats: (B,3,3) output pixel centre -> source pixel."""
    import torch.nn.functional as F
    B = x.shape[0]
    ys, xs = torch.meshgrid(torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32),
                            indexing="ij")
    pts = torch.stack([xs + 0.5, ys + 0.5, torch.ones_like(xs)], -1).reshape(-1, 3)  # (N,3)
    M = torch.as_tensor(mats, dtype=torch.float32)
    src = pts @ M.transpose(1, 2)  # (B,N,3)
    src = src[..., :2] / src[..., 2:3]
    grid = (src * (2.0 / S) - 1).reshape(B, S, S, 2)
    out = F.grid_sample(x - 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + 1


# ----------------------------------------------------------------------------------
# model


def build_model_classes():
    import torch
    from torch import nn
    import torch.nn.functional as F

    class ImageEncoder(nn.Module):
        def __init__(self, embed=128, widths=(24, 48, 96, 96, 128)):
            super().__init__()
            g = torch.linspace(-1, 1, S // 2)
            yy, xx = torch.meshgrid(g, g, indexing="ij")
            self.register_buffer("coords", torch.stack([xx, yy])[None].clone())
            layers, c = [], 5
            self.width = widths[-1]
            strides = (2, 2, 2, 1, 2)
            for w, s in zip(widths, strides):
                layers += [nn.Conv2d(c, w, 3, s, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            self.body = nn.Sequential(*layers)  # 112 -> 56 -> 28 -> 14 -> 14 -> 7
            self.spatial = nn.Conv2d(c, 16, 1)
            # BatchNorm on the pooled features removes their large common component, which
            # otherwise dominates the normalised embedding and slows learning a lot
            self.head = nn.Sequential(nn.BatchNorm1d(2 * c + 16 * 49), nn.Linear(2 * c + 16 * 49, 256),
                                      nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Linear(256, embed))

        def forward_pooled(self, x):
            """(embedding, pooled body features); the latter feed the training-only shape head."""
            x = F.avg_pool2d(x, 2)
            x = torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], 1)
            h = self.body(x)
            sp = self.spatial(h).flatten(1)
            pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1)
            return self.head(torch.cat([pooled, sp], 1)), pooled

        def forward(self, x):
            return self.forward_pooled(x)[0]

    class Block(nn.Module):
        def __init__(self, w, heads):
            super().__init__()
            self.heads = heads
            self.ln1 = nn.LayerNorm(w)
            self.qkv = nn.Linear(w, 3 * w)
            self.proj = nn.Linear(w, w)
            self.ln2 = nn.LayerNorm(w)
            self.mlp = nn.Sequential(nn.Linear(w, 2 * w), nn.GELU(), nn.Linear(2 * w, w))

        def forward(self, x):
            B, T, W = x.shape
            q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
            q = q.reshape(B, T, self.heads, W // self.heads).transpose(1, 2)
            k = k.reshape(B, T, self.heads, W // self.heads).transpose(1, 2)
            v = v.reshape(B, T, self.heads, W // self.heads).transpose(1, 2)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(B, T, W))
            return x + self.mlp(self.ln2(x))

    class TextEncoder(nn.Module):
        def __init__(self, lut, n_known, embed=128, width=128, layers=2, heads=4):
            super().__init__()
            self.register_buffer("lut", lut)  # (49408,) BPE id -> compact index, 0 = unknown
            self.tok = nn.Embedding(n_known + 1, width)
            self.pos = nn.Parameter(torch.randn(CONTEXT, width) * 0.02)
            self.blocks = nn.Sequential(*[Block(width, heads) for _ in range(layers)])
            self.ln = nn.LayerNorm(width)
            self.out = nn.Linear(width, embed)

        def forward(self, tokens):
            x = self.tok(self.lut[tokens]) + self.pos[: tokens.shape[1]]
            x = self.ln(self.blocks(x))
            idx = tokens.argmax(dim=-1).view(-1, 1, 1).expand(-1, 1, x.shape[-1])
            return self.out(torch.gather(x, 1, idx).squeeze(1))

    return ImageEncoder, TextEncoder


# ----------------------------------------------------------------------------------
# tokens


class Tokens:
    def __init__(self):
        import open_clip
        self.open_clip = open_clip
        self.cache = {}

    def __call__(self, texts):
        import torch
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            ids = self.open_clip.tokenize(missing, context_length=CONTEXT)
            for t, row in zip(missing, ids):
                self.cache[t] = row
        return torch.stack([self.cache[t] for t in texts])


def build_lut(tok):
    import torch
    words = known_words()
    ids = set()
    for w in words:
        row = tok([w])[0]
        ids |= {int(v) for v in row if int(v) not in (0, 49406, 49407)}
    ids = [49406, 49407] + sorted(ids)
    lut = torch.zeros(49408, dtype=torch.long)
    for k, i in enumerate(ids):
        lut[i] = k + 1
    return lut, len(ids), words


# ----------------------------------------------------------------------------------
# evaluation


def eval_sets(seed, n_per=60):
    """Held-out zero-shot tasks: list of (task, images (N,S,S,3) uint8, prompts per image
    (list of lists), index of the true prompt)."""
    rng = np.random.default_rng(seed)
    tasks = {}

    def add(task, img, prompts, true):
        tasks.setdefault(task, []).append((img, prompts, true))

    styles = 4 * n_per
    for k in range(styles):  # colour and shape
        o = dict(shape=SHAPES[k % 7], colour=COLOUR_NAMES[k % 8],
                 size=rng.choice(["small", None, "big"]), cell=(int(rng.integers(3)), int(rng.integers(3))))
        img = render(rng, [o])
        add("colour", img, [f"a drawing of a {c} {o['shape']}" for c in COLOUR_NAMES],
            COLOUR_NAMES.index(o["colour"]))
        add("shape", img, [f"a drawing of a {o['colour']} {s}" for s in SHAPES], SHAPES.index(o["shape"]))
    side = {"left": (0, 1), "right": (2, 1), "top": (1, 0), "bottom": (1, 2), "centre": (1, 1)}
    names = list(side)
    for k in range(2 * n_per):  # position: 5-way on unambiguous cells
        p = names[k % 5]
        o = dict(shape=SHAPES[int(rng.integers(7))], colour=COLOUR_NAMES[int(rng.integers(8))],
                 size=rng.choice(["small", None]), cell=side[p])
        img = render(rng, [o])
        add("position", img, [f"a drawing of a {o['colour']} {o['shape']} {POS_PHRASES[q][0]}"
                              for q in names], k % 5)
        # left/right half and top/bottom half (what clipdraw's tests check), any row/col
        c = int(rng.integers(3))
        if k % 2 == 0:
            o2 = dict(o, cell=(0 if (k // 2) % 2 == 0 else 2, c))
            img2 = render(rng, [o2])
            add("left/right", img2, [f"a drawing of a {o['colour']} {o['shape']} on the {q}"
                                     for q in ("left", "right")], 0 if o2["cell"][0] == 0 else 1)
        else:
            o2 = dict(o, cell=(c, 0 if (k // 2) % 2 == 0 else 2))
            img2 = render(rng, [o2])
            add("top/bottom", img2, [f"a drawing of a {o['colour']} {o['shape']} at the {q}"
                                     for q in ("top", "bottom")], 0 if o2["cell"][1] == 0 else 1)
    corners = {"top left": (0, 0), "top right": (2, 0), "bottom left": (0, 2), "bottom right": (2, 2)}
    cn = list(corners)
    for k in range(n_per):
        p = cn[k % 4]
        o = dict(shape=SHAPES[int(rng.integers(7))], colour=COLOUR_NAMES[int(rng.integers(8))],
                 size=rng.choice(["small", None]), cell=corners[p])
        img = render(rng, [o])
        add("corner", img, [f"a drawing of a {o['colour']} {o['shape']} in the {q} corner" for q in cn],
            k % 4)
    for k in range(2 * n_per):  # count
        n = k % 3 + 1
        shape, colour = SHAPES[int(rng.integers(7))], COLOUR_NAMES[int(rng.integers(8))]
        cells = [(c, r) for c in range(3) for r in range(3)]
        scene = [dict(shape=shape, colour=colour, size=rng.choice(["small", None]), cell=cells[i])
                 for i in rng.permutation(9)[:n]]
        for o in scene:
            o["size"] = scene[0]["size"]
        img = render(rng, scene)
        prompts = [f"a drawing of a {colour} {shape}"] + [
            f"a drawing of {w} {colour} {PLURAL[shape]}" for w in ("two", "three")]
        add("count", img, prompts, n - 1)
    for k in range(n_per):  # size
        big = k % 2
        o = dict(shape=SHAPES[int(rng.integers(7))], colour=COLOUR_NAMES[int(rng.integers(8))],
                 size="big" if big else "small", cell=(int(rng.integers(3)), int(rng.integers(3))))
        img = render(rng, [o])
        add("size", img, [f"a drawing of a {s} {o['colour']} {o['shape']}" for s in ("small", "big")], big)
    for k in range(n_per):  # clean drawing vs the same drawing under clipdraw-like clutter
        o = dict(shape=SHAPES[int(rng.integers(7))], colour=COLOUR_NAMES[int(rng.integers(8))],
                 size=rng.choice(["small", None, "big"]), cell=(int(rng.integers(3)), int(rng.integers(3))))
        st = np.random.default_rng(seed * 1000 + k)
        clean = render(st, [o])
        st = np.random.default_rng(seed * 1000 + k)
        noisy = render(st, [o], clutter=int(rng.integers(40, 120)), clutter_w=2)
        add("clean>clutter", np.stack([clean, noisy]), [f"a drawing of a {o['colour']} {o['shape']}"], 0)
    return tasks


def evaluate(torch, enc_img, enc_txt, tok, tasks, aug_seed=None):
    """Zero-shot accuracy per task. enc_*: callables on normalised images / token ids."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    rng = np.random.default_rng(aug_seed) if aug_seed is not None else None
    res = {}
    with torch.no_grad():
        for task, items in tasks.items():
            correct = 0
            for b in range(0, len(items), 64):
                chunk = items[b:b + 64]
                if task == "clean>clutter":
                    imgs = np.concatenate([c[0] for c in chunk])
                else:
                    imgs = np.stack([c[0] for c in chunk])
                x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
                if rng is not None:
                    x = augment(torch, x, np.stack([aug_matrix(rng) for _ in range(len(x))]))
                fi = enc_img((x - mean) / std)
                fi = fi / fi.norm(dim=-1, keepdim=True)
                prompts = sorted({p for c in chunk for p in c[1]})
                ft = enc_txt(tok(prompts))
                ft = ft / ft.norm(dim=-1, keepdim=True)
                pidx = {p: i for i, p in enumerate(prompts)}
                for k, (_, ps, true) in enumerate(chunk):
                    t = ft[[pidx[p] for p in ps]]
                    if task == "clean>clutter":
                        s = fi[2 * k:2 * k + 2] @ t[0]
                        correct += int(s[0] > s[1])
                    else:
                        correct += int((t @ fi[k]).argmax()) == true
            res[task] = correct / len(items)
    return res


def fmt_table(rows):
    tasks = list(rows[0][1])
    out = ["| task | " + " | ".join(name for name, _ in rows) + " |",
           "| --- | " + " | ".join("---" for _ in rows) + " |"]
    for t in tasks:
        out.append(f"| {t} | " + " | ".join(f"{r[t] * 100:.1f} %" for _, r in rows) + " |")
    return "\n".join(out)


# ----------------------------------------------------------------------------------
# training


N_LABELS = 8 + 7 + 9 + 3 + 2


def scene_labels(scene):
    """Multi-hot attributes for the auxiliary heads: colours, shapes, occupied cells,
    number of objects, small / big present."""
    y = np.zeros(N_LABELS, dtype=np.float32)
    for o in scene or []:
        y[COLOUR_NAMES.index(o["colour"])] = 1
        y[8 + SHAPES.index(o["shape"])] = 1
        y[15 + o["cell"][0] + 3 * o["cell"][1]] = 1
        if o["size"] in SIZES:
            y[27 + SIZES.index(o["size"])] = 1
    if scene:
        y[24 + len(scene) - 1] = 1
    return y


def scene_classes(scene):
    """[shape index, colour index] of a scene, each -1 unless every object shares it (the
    targets of the classification heads; mixed scenes and pure clutter are left out)."""
    out = []
    for key, names in (("shape", SHAPES), ("colour", COLOUR_NAMES)):
        same = scene and all(o[key] == scene[0][key] for o in scene)
        out.append(names.index(scene[0][key]) if same else -1)
    return out


def class_losses(F, logits, classes):
    """Cross-entropy of the shape and colour heads (logits: 7 shape + 8 colour columns)."""
    out = []
    for lg, y in ((logits[:, :len(SHAPES)], classes[:, 0]), (logits[:, len(SHAPES):], classes[:, 1])):
        keep = y >= 0
        out.append(F.cross_entropy(lg[keep], y[keep]) if keep.any() else lg.sum() * 0)
    return out


def make_batch(rng, n_pairs, n_clutter):
    """Images (uint8), captions, match matrix (captions x images)."""
    scenes, imgs, caps, specs = [], [], [], []
    for _ in range(n_pairs):
        a = make_scene(rng)
        b = perturb_scene(rng, a)
        for sc in (a, b):
            imgs.append(render(rng, sc))  # no stray strokes: a caption means a clean drawing
            scenes.append(sc)
            t, sp = make_caption(rng, sc)
            caps.append(t)
            specs.append(sp)
    # hard negatives: clipdraw-like random init strokes, and a caption's scene under
    # clutter: heavy, moderate, or in the scene's own colour. The last two teach the model
    # that leftover strokes spoil a drawing (a model trained without them tolerated them,
    # and clipdraw left "a black circle" inside a tangle of dark green strokes)
    clutter_truth = []
    for k in range(n_clutter):
        if k % 4 == 0:
            imgs.append(render(rng, None, clutter=int(rng.integers(16, 257)),
                               clutter_w=1 if rng.random() < 0.5 else 4))
            clutter_truth.append(None)
        else:
            sc = scenes[int(rng.integers(2 * n_pairs))]  # a captioned scene
            if k % 4 == 1:
                imgs.append(render(rng, sc, clutter=int(rng.integers(40, 160)), clutter_w=3))
            elif k % 4 == 2:
                imgs.append(render(rng, sc, clutter=int(rng.integers(4, 40)), clutter_w=2))
            else:
                imgs.append(render(rng, sc, clutter=int(rng.integers(12, 120)), clutter_w=3,
                                   clutter_rgb=COLOURS[sc[0]["colour"]]))
            clutter_truth.append(sc)
        scenes.append(None)
    m = np.array([[matches(sp, sc) for sc in scenes] for sp in specs], dtype=np.float32)
    labels = np.stack([scene_labels(sc) for sc in scenes[: 2 * n_pairs]] +
                      [scene_labels(truth) for truth in clutter_truth])
    classes = np.array([scene_classes(sc) for sc in scenes[: 2 * n_pairs]] +
                       [scene_classes(truth) for truth in clutter_truth], dtype=np.int64)
    return np.stack(imgs), caps, m, labels, classes


def augmented_input(torch, rng, imgs):
    """uint8 images (B,S,S,3) -> model input: clipdraw's augmentation on 85 % of them,
    then CLIP normalisation."""
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    mats = np.stack([aug_matrix(rng) if rng.random() < 0.85 else np.eye(3) for _ in range(len(x))])
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (augment(torch, x, mats) - mean) / std


class BatchStream(torch.utils.data.IterableDataset):
    """Iterable of training batches; batch k depends only on (seed, k), so the stream is
    the same whether it is drawn in this process or in a DataLoader worker."""

    def __init__(self, seed, steps, pairs, clutter):
        super().__init__()
        self.seed, self.steps, self.pairs, self.clutter = seed, steps, pairs, clutter
        self.tok = None

    def __iter__(self):
        import torch
        if self.tok is None:
            self.tok = Tokens()
        torch.set_num_threads(1)
        for k in range(self.steps):
            rng = np.random.default_rng([self.seed, k])
            imgs, caps, m, labels, classes = make_batch(rng, self.pairs, self.clutter)
            x = augmented_input(torch, rng, imgs)
            yield x, self.tok(caps), torch.from_numpy(m), torch.from_numpy(labels), torch.from_numpy(classes)


def make_pretrain_batch(rng, n):
    """Stage 1 (no text): one-shape scenes (one object, or two or three identical ones) with
    their attribute labels and [shape, colour] indices, for the image tower's heads."""
    imgs, labels, classes = [], [], []
    for _ in range(n):
        sc = make_scene(rng, "single" if rng.random() < 0.75 else "same")
        light = int(rng.integers(0, 6)) if rng.random() < 0.3 else 0
        imgs.append(render(rng, sc, clutter=light))
        labels.append(scene_labels(sc))
        classes.append(scene_classes(sc))
    return np.stack(imgs), np.stack(labels), np.array(classes, dtype=np.int64)


class PretrainStream(torch.utils.data.IterableDataset):
    """Stage-1 batches; batch k depends only on (seed, k), drawn from a stream separate from
    the contrastive stage's."""

    def __init__(self, seed, steps, n):
        super().__init__()
        self.seed, self.steps, self.n = seed, steps, n

    def __iter__(self):
        import torch
        torch.set_num_threads(1)
        for k in range(self.steps):
            rng = np.random.default_rng([self.seed, 1, k])
            imgs, labels, classes = make_pretrain_batch(rng, self.n)
            x = augmented_input(torch, rng, imgs)
            yield x, torch.from_numpy(labels), torch.from_numpy(classes)


def recalibrate_bn(torch, model, seed, pairs, clutter, n_batches):
    """Re-estimates BatchNorm running statistics with the final weights (cumulative
    average over fresh augmented training batches), so eval mode matches train mode;
    the moving averages taken during training lag behind the weights."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for x, *_ in BatchStream(seed, n_batches, pairs, clutter):
            model(x)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


def write_bundle(torch, img_enc, txt_enc, tok, meta, out, eval_tasks, acc, seed, example_texts):
    """Traces both towers and writes them with `meta` as one model file (export_clip's
    bundle), atomically: the file is reloaded first and must give the held-out accuracy
    `acc` within 2 points and a backward pass that reaches its input. Returns the
    reloaded module and its accuracy."""
    import export_clip
    import open_clip

    torch.backends.mha.set_fastpath_enabled(False)
    g = torch.Generator().manual_seed(seed)
    ex_img = torch.randn(2, 3, S, S, generator=g)
    ex_txt = tok(example_texts)
    with torch.no_grad():
        image_ts = torch.jit.trace(img_enc, ex_img, check_trace=False)
        text_ts = torch.jit.trace(txt_enc, ex_txt, check_trace=False)
    with open(open_clip.tokenizer.default_bpe(), "rb") as f:
        bpe_gz = f.read()
    bundle = export_clip.make_bundle(image_ts, text_ts, meta, bpe_gz)
    out = os.path.abspath(out)
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        bundle.save(tmp)
        loaded = torch.jit.load(tmp, map_location="cpu")
        acc_re = evaluate(torch, loaded.encode_image, loaded.encode_text, tok, eval_tasks)
        x = torch.randn(3, 3, S, S, requires_grad=True)
        loaded.encode_image(x).pow(2).sum().backward()
        if x.grad is None or not torch.isfinite(x.grad).all() or x.grad.abs().max() == 0:
            export_clip.fail("backward through the reloaded encode_image does not reach the input")
        if any(abs(acc_re[k] - acc[k]) > 0.02 for k in acc):
            export_clip.fail(f"reloaded accuracy differs: {acc_re} vs {acc}")
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return loaded, acc_re


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(SCRIPT_DIR, "..", "assets", "clipdraw-tiny.pt"))
    p.add_argument("--pretrain-steps", type=int, default=400,
                   help="stage-1 steps: image tower only, attribute classification")
    p.add_argument("--steps", type=int, default=1000, help="stage-2 (contrastive) steps (fixes the LR schedule)")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop training after this many minutes (then not deterministic)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the model")
    p.add_argument("--workers", type=int, default=1,
                   help="data-drawing worker processes (0: draw in the main process)")
    p.add_argument("--pairs", type=int, default=32, help="scene pairs per batch (2 images each)")
    p.add_argument("--clutter", type=int, default=16, help="hard-negative clutter images per batch")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--aux", type=float, default=2.0, help="weight of the auxiliary attribute loss")
    p.add_argument("--classes", type=float, default=1.0,
                   help="weight of the shape and colour classification losses in stage 2")
    p.add_argument("--embed", type=int, default=128)
    p.add_argument("--eval-n", type=int, default=60)
    p.add_argument("--bn-batches", type=int, default=24,
                   help="batches for re-estimating BatchNorm statistics after training")
    p.add_argument("--log-every", type=int, default=50)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import torch
    import torch.nn.functional as F
    import export_clip

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t_start = time.time()
    tok = Tokens()
    lut, n_known, words = build_lut(tok)
    ImageEncoder, TextEncoder = build_model_classes()
    img_enc = ImageEncoder(args.embed)
    txt_enc = TextEncoder(lut, n_known, args.embed)
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    params = list(img_enc.parameters()) + list(txt_enc.parameters()) + [logit_scale]
    nparam = sum(p.numel() for p in params)
    # auxiliary attribute heads on the image embedding (training only, not exported): they
    # make colour / shape / place / count linearly readable early, which speeds up the
    # contrastive alignment a lot on this small budget
    aux = torch.nn.Linear(args.embed, N_LABELS)
    # and shape and colour classifiers on the pooled CNN features of scenes whose objects
    # share a shape / a colour (see stage 1 below)
    class_head = torch.nn.Linear(2 * img_enc.width, len(SHAPES) + len(COLOUR_NAMES))
    params_opt = params + list(aux.parameters()) + list(class_head.parameters())
    print(f"model: {nparam / 1e6:.2f} M parameters, {n_known} known tokens, E={args.embed}", flush=True)
    opt = torch.optim.AdamW(params_opt, lr=args.lr, weight_decay=0.02)
    warm = max(1, args.steps // 20)

    def lr_at(s):
        if s < warm:
            return args.lr * (s + 1) / warm
        return args.lr * 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, args.steps - warm)))

    eval_tasks = eval_sets(args.seed + 7919, args.eval_n)
    t_train = time.time()

    # stage 1: the image tower alone learns to classify one-shape scenes (shape, colour,
    # place, count, size). Shape is the slow attribute: trained jointly from the start, the
    # contrastive loss settles on colour and place and shape stays near chance.
    pre_opt = torch.optim.AdamW(list(img_enc.parameters()) + list(aux.parameters()) +
                                list(class_head.parameters()), lr=args.lr, weight_decay=0.02)
    pre_warm = max(1, args.pretrain_steps // 20)
    pre = torch.utils.data.DataLoader(PretrainStream(args.seed, args.pretrain_steps, 2 * args.pairs),
                                      batch_size=None, num_workers=args.workers,
                                      prefetch_factor=4 if args.workers else None)
    img_enc.train()
    for step, (x, labels, classes) in enumerate(pre):
        lr = args.lr * min(1.0, (step + 1) / pre_warm) * 0.5 * (1 + math.cos(math.pi * step / args.pretrain_steps))
        for g in pre_opt.param_groups:
            g["lr"] = lr
        fi_raw, pooled = img_enc.forward_pooled(x)
        logits = class_head(pooled)
        loss_shape, loss_colour = class_losses(F, logits, classes)
        loss_aux = F.binary_cross_entropy_with_logits(aux(F.normalize(fi_raw, dim=-1) * 8), labels)
        loss = args.aux * loss_aux + loss_shape + loss_colour
        pre_opt.zero_grad(set_to_none=True)
        loss.backward()
        pre_opt.step()
        if step % args.log_every == 0 or step == args.pretrain_steps - 1:
            acc = (logits[:, :len(SHAPES)].argmax(1) == classes[:, 0]).float().mean().item()
            print(f"stage 1 step {step:5d}/{args.pretrain_steps} shape {loss_shape.item():.3f} "
                  f"colour {loss_colour.item():.3f} "
                  f"(batch accuracy {acc * 100:.0f} %) aux {loss_aux.item():.3f} lr {lr:.2e} | "
                  f"{(time.time() - t_start) / 60:.1f} min", flush=True)

    batches = BatchStream(args.seed, args.steps, args.pairs, args.clutter)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=args.workers,
                                         prefetch_factor=4 if args.workers else None)
    t_data = t_model = 0.0
    step = 0
    t0 = time.time()
    for step, (x, tokens, m, labels, classes) in enumerate(loader):
        if args.minutes is not None and time.time() - t_train > args.minutes * 60:
            print(f"time cap reached after {step} steps", flush=True)
            step -= 1
            break
        tokens = tokens[:, : int((tokens == 49407).nonzero()[:, 1].max()) + 1]  # causal: same result
        t1 = time.time()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        img_enc.train(); txt_enc.train()
        fi_raw, pooled = img_enc.forward_pooled(x)
        fi = F.normalize(fi_raw, dim=-1)
        ft = F.normalize(txt_enc(tokens), dim=-1)
        logits = logit_scale.exp().clamp(max=100) * ft @ fi.t()  # (captions, images)
        # text -> image over all images (incl. hard negatives); image -> text over captions
        tgt_t = m / m.sum(1, keepdim=True)
        loss_t = -(tgt_t * logits.log_softmax(1)).sum(1).mean()
        mi = m[:, : 2 * args.pairs].t()
        tgt_i = mi / mi.sum(1, keepdim=True)
        loss_i = -(tgt_i * logits[:, : 2 * args.pairs].t().log_softmax(1)).sum(1).mean()
        loss_aux = F.binary_cross_entropy_with_logits(aux(fi * 8), labels)
        loss_shape, loss_colour = class_losses(F, class_head(pooled), classes)
        loss = 0.5 * (loss_t + loss_i) + args.aux * loss_aux + args.classes * (loss_shape + loss_colour)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t2 = time.time()
        t_data += t1 - t0
        t_model += t2 - t1
        t0 = time.time()
        if step % args.log_every == 0 or step == args.steps - 1:
            print(f"step {step:5d}/{args.steps} loss {loss.item():.3f} aux {loss_aux.item():.3f} shape {loss_shape.item():.3f} colour {loss_colour.item():.3f} scale {logit_scale.exp().item():.1f} "
                  f"lr {lr_at(step):.2e} | data {t_data / (step + 1):.2f} s model {t_model / (step + 1):.2f} s "
                  f"per step | {(time.time() - t_start) / 60:.1f} min", flush=True)
        if step > 0 and step % (args.log_every * 4) == 0:
            recalibrate_bn(torch, img_enc, args.seed + 104729 + step, args.pairs, args.clutter, 4)
            txt_enc.eval()
            acc = evaluate(torch, img_enc, txt_enc, tok, {k: v[:40] for k, v in eval_tasks.items()})
            print("  quick eval: " + ", ".join(f"{k} {v * 100:.0f}%" for k, v in acc.items()), flush=True)
            t0 = time.time()
    steps_done = step + 1
    train_min = (time.time() - t_train) / 60

    recalibrate_bn(torch, img_enc, args.seed + 104729, args.pairs, args.clutter, args.bn_batches)
    txt_enc.eval()
    for p in params:
        p.requires_grad_(False)
    acc_clean = evaluate(torch, img_enc, txt_enc, tok, eval_tasks)
    acc_aug = evaluate(torch, img_enc, txt_enc, tok, eval_tasks, aug_seed=args.seed + 31)

    ns = argparse.Namespace(arch=ARCH, pretrained=None)
    meta = export_clip.make_meta(ns, S, CONTEXT, args.embed, 49408, list(MEAN), list(STD))
    meta.update({
        "known_words": words,
        "training": {
            "script": "scripts/train_tiny_clip.py", "seed": args.seed, "pretrain_steps": args.pretrain_steps, "steps": steps_done,
            "batch_images": 2 * args.pairs + args.clutter, "minutes": round(train_min, 1),
            "threads": args.threads,
        },
        "zero_shot_accuracy": {k: round(v, 4) for k, v in acc_clean.items()},
        "zero_shot_accuracy_augmented": {k: round(v, 4) for k, v in acc_aug.items()},
        "logit_scale": round(float(logit_scale.exp().clamp(max=100)), 3),
    })
    loaded, acc_re = write_bundle(torch, img_enc, txt_enc, tok, meta, args.out, eval_tasks, acc_clean, args.seed,
                                  ["a drawing of a red circle", "a blue square on the left"])
    out = os.path.abspath(args.out)

    # speed of encode_image forward + backward, batch 8 (what clipdraw does per iteration)
    x = torch.randn(8, 3, S, S, requires_grad=True)
    for _ in range(2):
        loaded.encode_image(x).sum().backward()
    t0 = time.time()
    for _ in range(5):
        loaded.encode_image(x).sum().backward()
    fb = (time.time() - t0) / 5

    print(f"\nwrote {out}: {ARCH}, {os.path.getsize(out) / 1e6:.2f} MB, {nparam / 1e6:.2f} M parameters, "
          f"{steps_done} steps in {train_min:.1f} min ({args.threads} threads), seed {args.seed}")
    print(f"encode_image forward+backward, batch 8, {args.threads} threads: {fb * 1000:.0f} ms")
    print("\nheld-out zero-shot accuracy:")
    print(fmt_table([("clean", acc_clean), ("augmented", acc_aug), ("reloaded file", acc_re)]))
    return acc_clean


if __name__ == "__main__":
    main()
