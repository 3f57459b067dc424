#!/usr/bin/env python3
"""Train clipdraw's built-in model on everyday things as well as coloured shapes.

The successor of scripts/train_tiny_clip.py (whose shapes, captions, augmentation,
text tower and export it reuses; the image tower is its own, residual, at 80 px):
every batch mixes that script's procedurally drawn
shape scenes with icons of about 1,000 everyday concepts from open emoji and icon sets
(scripts/icons.py: only the MIT, Apache-2.0 and CC-BY sets; the CC-BY-SA ones are
held out as the unseen style the retrieval figures are measured on).

An icon is drawn on the 224 px white canvas either large and central (as clipdraw
fills the canvas) or small / medium / large in one of the nine cells, filled, as
coloured outlines only (the stroke-like rendering), or, for the monochrome
silhouettes, recoloured; captions come from emojibase's label or a specific tag
with the framings people use ("a drawing of a cat", "a watercolor of a fire engine",
"a red car on the left"). Hard negatives are clipdraw-like random strokes and
captioned icons buried under such strokes, so the model prefers a clean drawing of
the caption to clutter.

Losses: the CLIP loss with soft targets over the batch (a caption is a positive for
every image it truly describes); a concept loss that scores each icon image against
the text embeddings of all concepts' names (so zero-shot retrieval is what is
trained); training-only heads on the image tower (shape, colour, concept, the
attribute multi-label). Stage 1 trains the image tower's heads alone.

Deterministic for a given --seed, --pretrain-steps and --steps; batch k depends only
on (seed, k). Resumable: --ckpt is written every --ckpt-every steps and a rerun with
the same arguments continues from it (so a run cut off by --minutes or a kill
continues where it stopped). Prints held-out figures and writes the model file
atomically.

Example (candidate v2, 51 min on 2 cores; then one adversarial round, 7 min):
  python scripts/train_everyday.py --seed 0 --threads 2 --out v2.pt
  python scripts/adversarial_drawings.py v2.pt adv --count 118
  python scripts/train_everyday.py --seed 0 --threads 2 --finetune-from CKPT --adversarial adv
      --steps 300 --lr 1e-3 --out v2-adv.pt
(CKPT: the first run's checkpoint, ~/.cache/clipdraw/icons/train-everyday-*.ckpt)
"""

import argparse
import glob
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch.utils.data
from PIL import Image

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPT_DIR)

import icons  # noqa: E402
import train_tiny_clip as T  # noqa: E402

ARCH = "clipdraw-tiny-v2"
S = T.S
FRAMINGS = T.FRAMINGS + ["a watercolor of ", "a 3d rendering of ", "an illustration of ",
                         "a photo of ", "an icon of ", "a cartoon of "]
EVAL_FRAMING = "a drawing of "
MAX_TAG_CONCEPTS = 4  # a tag names a concept in captions only when this specific
TRAIN_SETS = icons.EMOJI_SETS + icons.SILHOUETTE_SETS
HELD_OUT = icons.EVAL_SETS
SIZE_PX = {"small": (44, 62), None: (68, 92), "big": (104, 128)}


def article(word):
    return "an" if word[0] in "aeiou" else "a"


# ----------------------------------------------------------------------------------
# the image tower (the text tower is train_tiny_clip's, with a larger vocabulary)


def image_encoder_class():
    from torch import nn
    import torch.nn.functional as F

    class Res(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                   nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(cout))
            self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x):
            return F.relu(self.a(x) + self.skip(x))

    class ImageEncoder(nn.Module):
        """224 px -> area average to SIDE px -> CoordConv stem (stride 2) -> four residual
        stages -> global average + global max + a coarse 16-channel spatial map -> BN ->
        MLP -> E. Differentiable with respect to the input, as clipdraw needs."""

        def __init__(self, embed=256, widths=(32, 64, 128, 256), side=80):
            super().__init__()
            self.side = side
            g = torch.linspace(-1, 1, side)
            yy, xx = torch.meshgrid(g, g, indexing="ij")
            self.register_buffer("coords", torch.stack([xx, yy])[None].clone())
            self.stem = nn.Sequential(nn.Conv2d(5, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                      nn.ReLU(inplace=True))
            blocks, c = [], widths[0]
            for k, w in enumerate(widths):
                blocks.append(Res(c, w, 1 if k == 0 else 2))
                c = w
            self.body = nn.Sequential(*blocks)  # 40 -> 40 -> 20 -> 10 -> 5
            self.width = c
            cells = (side // 16) ** 2
            self.spatial = nn.Conv2d(c, 16, 1)
            self.head = nn.Sequential(nn.BatchNorm1d(2 * c + 16 * cells), nn.Linear(2 * c + 16 * cells, 256),
                                      nn.BatchNorm1d(256), nn.ReLU(inplace=True), nn.Linear(256, embed))

        def forward_pooled(self, x):
            x = F.adaptive_avg_pool2d(x, self.side)
            x = torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], 1)
            h = self.body(self.stem(x))
            pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1)
            return self.head(torch.cat([pooled, self.spatial(h).flatten(1)], 1)), pooled

        def forward(self, x):
            return self.forward_pooled(x)[0]

    return ImageEncoder


# ----------------------------------------------------------------------------------
# concepts and captions


class Concepts:
    def __init__(self, data_dir):
        self.meta, self.arrays = icons.load(data_dir)
        self.items = self.meta["concepts"]
        self.n = len(self.items)
        self.labels = [c["label"] for c in self.items]
        # term -> concept indices: every label, and tags that name few concepts
        terms = {}
        for k, c in enumerate(self.items):
            terms.setdefault(c["label"], set()).add(k)
        tag_of = {}
        for k, c in enumerate(self.items):
            for t in c["tags"]:
                tag_of.setdefault(t, set()).add(k)
        for t, ks in tag_of.items():
            if len(ks) <= MAX_TAG_CONCEPTS and t not in T.known_words():
                terms.setdefault(t, set()).update(ks)
        self.terms = {t: sorted(ks) for t, ks in terms.items()}
        self.tags_of = [[t for t in c["tags"] if t in self.terms] for c in self.items]
        # (set, row) of every training icon per concept
        self.sources = [[] for _ in range(self.n)]
        for s in TRAIN_SETS:
            for row, k in enumerate(self.meta["rows"][s]):
                self.sources[k].append((s, row))
        self.silhouette = set(icons.SILHOUETTE_SETS)

    def words(self):
        out = set()
        for t in self.terms:
            out |= set(t.split())
        for f in FRAMINGS:
            out |= set(f.split())
        return out


def place(rng, rgba, scale_px, cx, cy, canvas):
    """Alpha-composites an (R,R,4) icon scaled to scale_px, centred at (cx, cy)."""
    im = Image.fromarray(np.ascontiguousarray(rgba), "RGBA").resize((scale_px, scale_px), Image.BILINEAR)
    x0, y0 = int(round(cx - scale_px / 2)), int(round(cy - scale_px / 2))
    canvas.alpha_composite(im, (x0, y0))


def icon_image(rng, con, k):
    """Draws concept k: returns (uint8 image, info {concept, size, cell, colour})."""
    s, row = con.sources[k][int(rng.integers(len(con.sources[k])))]
    silhouette = s in con.silhouette
    mode = "outline" if rng.random() < (0.25 if silhouette else 0.4) else "fill"
    rgba = np.array(con.arrays[s][mode][row])
    colour = None
    if silhouette and rng.random() < 0.8:
        colour = T.COLOUR_NAMES[int(rng.integers(8))]
        rgb = T.jitter_colour(rng, colour)
        rgba[..., :3] = np.array(rgb, dtype=np.uint8)
    canvas = Image.new("RGBA", (S, S), (255, 255, 255, 255))
    if rng.random() < 0.55:  # large and central, as clipdraw fills the canvas
        px = int(rng.integers(140, 215))
        c = S / 2 + rng.uniform(-12, 12, 2)
        size, cell = "big", (1, 1)
    else:
        size = rng.choice(["small", None, "big"], p=[0.35, 0.4, 0.25])
        px = int(rng.integers(*SIZE_PX[size]))
        cell = (int(rng.integers(3)), int(rng.integers(3)))
        c = np.array([rng.uniform(*T.CELL_X[cell[0]]), rng.uniform(*T.CELL_X[cell[1]])]) * S
        c = np.clip(c, px / 2 - 4, S - px / 2 + 4)
    place(rng, rgba, px, c[0], c[1], canvas)
    return np.asarray(canvas.convert("RGB")), dict(concept=k, size=size, cell=cell, colour=colour)


def icon_caption(rng, con, info):
    """(text, spec): spec {concepts, size, colour, pos}."""
    k = info["concept"]
    tags = con.tags_of[k]
    term = con.labels[k] if (not tags or rng.random() < 0.7) else tags[int(rng.integers(len(tags)))]
    words = []
    size = info["size"] if (info["size"] and rng.random() < 0.3) else None
    if size:
        ws = T.SIZE_WORDS[size]
        words.append(ws[int(rng.integers(len(ws)))])
    colour = info["colour"] if (info["colour"] and rng.random() < 0.8) else None
    if colour:
        words.append(colour)
    words.append(term)
    pos = None
    if info["size"] != "big" and rng.random() < 0.6:
        tp = T.true_positions(info["cell"])
        pos = tp[int(rng.integers(len(tp)))]
    text = " ".join(words)
    art = rng.random()
    text = (("the " if art < 0.05 else "" if art < 0.12 else article(text) + " ") + text)
    if pos:
        ph = T.POS_PHRASES[pos]
        text += " " + ph[int(rng.integers(len(ph)))]
    text = FRAMINGS[int(rng.integers(len(FRAMINGS)))] + text
    if rng.random() < 0.1:
        text += "."
    return text, dict(concepts=set(con.terms[term]), size=size, colour=colour, pos=pos)


def icon_matches(spec, info):
    return (info is not None and info["concept"] in spec["concepts"]
            and (spec["size"] is None or spec["size"] == info["size"])
            and (spec["colour"] is None or spec["colour"] == info["colour"])
            and (spec["pos"] is None or (info["size"] != "big" and T.cell_satisfies(info["cell"], spec["pos"]))))


def with_clutter(rng, img, n, w):
    im = Image.fromarray(img)
    draw = T.ImageDraw.Draw(im, "RGBA")
    for _ in range(n):
        pts, rgba, width = T.bezier_stroke(rng, w)
        T.polyline(draw, pts, rgba, width)
    return np.asarray(im)


def make_batch(rng, con, a):
    """Images, captions, match matrix (captions x images), attribute labels, shape/colour
    classes, concept index per image (-1: none), number of captioned images."""
    # shapes (train_tiny_clip's batch: pairs, then its clutter negatives)
    s_imgs, s_caps, s_m, s_labels, s_classes = T.make_batch(rng, a.pairs, a.clutter)
    n_pairs_img = 2 * a.pairs
    # icons: distinct concepts
    ks = rng.choice(con.n, size=a.icons, replace=False)
    i_imgs, infos, caps, specs = [], [], [], []
    for k in ks:
        img, info = icon_image(rng, con, int(k))
        i_imgs.append(img)
        infos.append(info)
        t, sp = icon_caption(rng, con, info)
        caps.append(t)
        specs.append(sp)
    neg = []
    for j in range(a.icon_clutter):  # a captioned icon buried under strokes
        src = int(rng.integers(a.icons))
        neg.append(with_clutter(rng, i_imgs[src], int(rng.integers(30, 150)), 3 if j % 2 else 1))
    # columns: shape pairs, icons, shape clutter, icon clutter. rows: shape caps, icon caps
    imgs = np.concatenate([s_imgs[:n_pairs_img], np.stack(i_imgs), s_imgs[n_pairs_img:], np.stack(neg)])
    n_img = len(imgs)
    m = np.zeros((len(s_caps) + len(caps), n_img), dtype=np.float32)
    m[: len(s_caps), :n_pairs_img] = s_m[:, :n_pairs_img]
    for r, sp in enumerate(specs):
        for c, info in enumerate(infos):
            m[len(s_caps) + r, n_pairs_img + c] = icon_matches(sp, info)
    labels = np.zeros((n_img, T.N_LABELS), dtype=np.float32)
    labels[:n_pairs_img] = s_labels[:n_pairs_img]
    labels[n_pairs_img + a.icons: n_pairs_img + a.icons + a.clutter] = s_labels[n_pairs_img:]
    classes = np.full((n_img, 2), -1, dtype=np.int64)
    classes[:n_pairs_img] = s_classes[:n_pairs_img]
    classes[n_pairs_img + a.icons: n_pairs_img + a.icons + a.clutter] = s_classes[n_pairs_img:]
    concept = np.full(n_img, -1, dtype=np.int64)
    concept[n_pairs_img: n_pairs_img + a.icons] = ks
    # attribute labels of icons: occupied cell and size (no shape, colour or count)
    for c, info in enumerate(infos):
        y = labels[n_pairs_img + c]
        if info["size"] != "big" or info["cell"] != (1, 1):
            y[15 + info["cell"][0] + 3 * info["cell"][1]] = 1
        if info["size"] in T.SIZES:
            y[27 + T.SIZES.index(info["size"])] = 1
    return imgs, s_caps + caps, m, labels, classes, concept, n_pairs_img + a.icons


def pretrain_batch(rng, con, a):
    s_imgs, s_labels, s_classes = T.make_pretrain_batch(rng, a.pairs * 2)
    ks = rng.choice(con.n, size=a.icons, replace=False)
    i_imgs = [icon_image(rng, con, int(k))[0] for k in ks]
    n = len(s_imgs)
    imgs = np.concatenate([s_imgs, np.stack(i_imgs)])
    labels = np.concatenate([s_labels, np.zeros((a.icons, T.N_LABELS), dtype=np.float32)])
    classes = np.concatenate([s_classes, np.full((a.icons, 2), -1, dtype=np.int64)])
    concept = np.concatenate([np.full(n, -1), ks]).astype(np.int64)
    return imgs, labels, classes, concept


class Stream(torch.utils.data.IterableDataset):
    """Batches start..steps of a stage; batch k depends only on (seed, stage, k)."""

    def __init__(self, a, data_dir, stage, start, steps):
        super().__init__()
        self.a, self.data_dir, self.stage, self.start, self.steps = a, data_dir, stage, start, steps

    def __iter__(self):
        import torch
        torch.set_num_threads(1)
        con = Concepts(self.data_dir)
        tok = T.Tokens()
        adv = sorted(glob.glob(os.path.join(self.a.adversarial, "*.png"))) if self.a.adversarial else []
        for k in range(self.start, self.steps):
            rng = np.random.default_rng([self.a.seed, 17, self.stage, k])
            if self.stage == 1:
                imgs, labels, classes, concept = pretrain_batch(rng, con, self.a)
                yield (T.augmented_input(torch, rng, imgs), torch.from_numpy(labels),
                       torch.from_numpy(classes), torch.from_numpy(concept))
            else:
                imgs, caps, m, labels, classes, concept, n_cap_img = make_batch(rng, con, self.a)
                if adv:  # the model's own drawings: negatives for every caption
                    pick = [adv[int(j)] for j in rng.choice(len(adv), self.a.adv, replace=False)]
                    extra = np.stack([np.asarray(Image.open(f).convert("RGB").resize((S, S))) for f in pick])
                    imgs = np.concatenate([imgs, extra])
                    m = np.concatenate([m, np.zeros((len(m), len(extra)), np.float32)], 1)
                    labels = np.concatenate([labels, np.zeros((len(extra), T.N_LABELS), np.float32)])
                    classes = np.concatenate([classes, np.full((len(extra), 2), -1, np.int64)])
                    concept = np.concatenate([concept, np.full(len(extra), -1, np.int64)])
                yield (T.augmented_input(torch, rng, imgs), tok(caps), torch.from_numpy(m),
                       torch.from_numpy(labels), torch.from_numpy(classes), torch.from_numpy(concept),
                       n_cap_img)


# ----------------------------------------------------------------------------------
# evaluation


def held_out_images(con, s, mode="fill", px=180):
    """Every icon of held-out set s, large and central on white (uint8 (N,S,S,3)), and
    its concept indices."""
    idx = con.meta["rows"][s]
    out = np.empty((len(idx), S, S, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    for j in range(len(idx)):
        canvas = Image.new("RGBA", (S, S), (255, 255, 255, 255))
        place(rng, con.arrays[s][mode][j], px, S / 2, S / 2, canvas)
        out[j] = np.asarray(canvas.convert("RGB"))
    return out, np.array(idx)


def retrieval(torch, enc_img, enc_txt, tok, con, imgs, truth, framing=EVAL_FRAMING):
    """Top-1 / top-5 zero-shot retrieval among all concepts, overall and per category."""
    mean = torch.tensor(T.MEAN).view(1, 3, 1, 1)
    std = torch.tensor(T.STD).view(1, 3, 1, 1)
    with torch.no_grad():
        prompts = [framing + article(l) + " " + l for l in con.labels]
        ft = torch.cat([enc_txt(tok(prompts[b:b + 256])) for b in range(0, len(prompts), 256)])
        ft = ft / ft.norm(dim=-1, keepdim=True)
        ranks = []
        for b in range(0, len(imgs), 64):
            x = torch.from_numpy(imgs[b:b + 64]).permute(0, 3, 1, 2).float() / 255
            fi = enc_img((x - mean) / std)
            fi = fi / fi.norm(dim=-1, keepdim=True)
            top = (fi @ ft.t()).topk(5, dim=1).indices.numpy()
            for t, row in zip(truth[b:b + 64], top):
                ranks.append(int(np.where(row == t)[0][0]) if t in row else 5)
    ranks = np.array(ranks)
    cats = np.array([con.items[t]["category"] for t in truth])
    out = {"all": (float((ranks < 1).mean()), float((ranks < 5).mean()), len(ranks))}
    for c in sorted(set(cats)):
        r = ranks[cats == c]
        out[c] = (float((r < 1).mean()), float((r < 5).mean()), len(r))
    return out


def fmt_retrieval(res):
    rows = ["| held-out set | category | images | top-1 | top-5 |", "| --- | --- | --- | --- | --- |"]
    for name, r in res.items():
        for c, (t1, t5, n) in r.items():
            rows.append(f"| {name} | {c} | {n} | {t1 * 100:.1f} % | {t5 * 100:.1f} % |")
    return "\n".join(rows)


# ----------------------------------------------------------------------------------
# training


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(SCRIPT_DIR, "..", "assets", "clipdraw-tiny.pt"))
    p.add_argument("--ckpt", default=None, help="checkpoint file (default: next to the cached icon data)")
    p.add_argument("--ckpt-every", type=int, default=100)
    p.add_argument("--pretrain-steps", type=int, default=1500)
    p.add_argument("--steps", type=int, default=1000, help="stage-2 steps (fixes the LR schedule)")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop after this many minutes of this process (a rerun resumes)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--pairs", type=int, default=8, help="shape scene pairs per batch")
    p.add_argument("--clutter", type=int, default=8, help="shape-batch clutter negatives")
    p.add_argument("--icons", type=int, default=64, help="icon images per batch (distinct concepts)")
    p.add_argument("--icon-clutter", type=int, default=6, help="icons under clutter per batch (negatives)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--aux", type=float, default=2.0)
    p.add_argument("--classes", type=float, default=1.0)
    p.add_argument("--concept", type=float, default=1.0, help="weight of the all-concepts loss")
    p.add_argument("--embed", type=int, default=256)
    p.add_argument("--widths", default="32,64,128,256")
    p.add_argument("--side", type=int, default=80, help="the image tower's working resolution")
    p.add_argument("--text-width", type=int, default=192)
    p.add_argument("--eval-n", type=int, default=60)
    p.add_argument("--bn-batches", type=int, default=16)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--finetune-from", default=None,
                   help="start stage 2 from this checkpoint's weights (skips stage 1)")
    p.add_argument("--adversarial", default=None,
                   help="a folder of clipdraw drawings (PNG) made against the model: negatives for every caption")
    p.add_argument("--adv", type=int, default=8, help="adversarial negatives per batch")
    return p.parse_args(argv)


def run_key(a):
    keep = {k: v for k, v in vars(a).items() if k not in ("out", "ckpt", "minutes", "threads", "workers",
                                                          "log-every", "log_every", "eval_every", "ckpt_every")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:12]


def build_lut(tok, words):
    ids = set()
    for w in sorted(words):
        row = tok([w])[0]
        ids |= {int(v) for v in row if int(v) not in (0, 49406, 49407)}
    ids = [49406, 49407] + sorted(ids)
    lut = torch.zeros(49408, dtype=torch.long)
    for k, i in enumerate(ids):
        lut[i] = k + 1
    return lut, len(ids)


def main(argv=None):
    a = parse_args(argv)
    import torch.nn.functional as F
    import export_clip

    torch.set_num_threads(a.threads)
    data_dir = icons.prepare()
    con = Concepts(data_dir)
    tok = T.Tokens()
    words = sorted(set(T.known_words()) | con.words())
    lut, n_known = build_lut(tok, words)
    torch.manual_seed(a.seed)
    _, TextEncoder = T.build_model_classes()
    widths = tuple(int(w) for w in a.widths.split(","))
    img_enc = image_encoder_class()(a.embed, widths, a.side)
    txt_enc = TextEncoder(lut, n_known, a.embed, width=a.text_width, layers=2, heads=4)
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    aux = torch.nn.Linear(a.embed, T.N_LABELS)
    class_head = torch.nn.Linear(2 * img_enc.width, len(T.SHAPES) + len(T.COLOUR_NAMES))
    concept_head = torch.nn.Linear(2 * img_enc.width, con.n)
    params = list(img_enc.parameters()) + list(txt_enc.parameters()) + [logit_scale]
    heads = list(aux.parameters()) + list(class_head.parameters()) + list(concept_head.parameters())
    nparam = sum(p.numel() for p in params)
    print(f"model: {nparam / 1e6:.2f} M parameters, {n_known} known tokens, {con.n} concepts, E={a.embed}",
          flush=True)
    pre_opt = torch.optim.AdamW(list(img_enc.parameters()) + heads, lr=a.lr, weight_decay=0.02)
    opt = torch.optim.AdamW(params + heads, lr=a.lr, weight_decay=0.02)
    modules = dict(img=img_enc, txt=txt_enc, aux=aux, cls=class_head, con=concept_head)

    ckpt = a.ckpt or os.path.join(icons.cache_dir(), f"train-everyday-{run_key(a)}.ckpt")
    stage, done, spent = 1, 0, 0.0
    if os.path.exists(ckpt):
        st = torch.load(ckpt, weights_only=False)
        for k, m in modules.items():
            m.load_state_dict(st[k])
        logit_scale.data.copy_(st["scale"])
        pre_opt.load_state_dict(st["pre_opt"])
        opt.load_state_dict(st["opt"])
        torch.set_rng_state(st["torch_rng"])
        stage, done, spent = st["stage"], st["done"], st["minutes"]
        print(f"resumed from {ckpt}: stage {stage}, {done} steps done, {spent:.1f} min spent", flush=True)

    def save_ckpt(stage, done, minutes):
        st = {k: m.state_dict() for k, m in modules.items()}
        st.update(scale=logit_scale.data.clone(), pre_opt=pre_opt.state_dict(), opt=opt.state_dict(),
                  torch_rng=torch.get_rng_state(), stage=stage, done=done, minutes=minutes)
        tmp = f"{ckpt}.tmp-{os.getpid()}"
        torch.save(st, tmp)
        os.replace(tmp, ckpt)

    if a.finetune_from and not os.path.exists(ckpt):
        st = torch.load(a.finetune_from, weights_only=False)
        for k, m in modules.items():
            m.load_state_dict(st[k])
        logit_scale.data.copy_(st["scale"])
        stage, done, spent = 2, 0, 0.0
        print(f"fine-tuning from {a.finetune_from} ({st['minutes']:.1f} min of training before)", flush=True)

    t_proc = time.time()

    def minutes_now():
        return spent + (time.time() - t_proc) / 60

    def out_of_time():
        return a.minutes is not None and time.time() - t_proc > a.minutes * 60

    def cosine(step, total, warm):
        if step < warm:
            return a.lr * (step + 1) / warm
        return a.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    def concept_loss(fi, concept, ft_all):
        keep = concept >= 0
        if not keep.any():
            return fi.sum() * 0
        return F.cross_entropy(logit_scale.exp().clamp(max=100) * fi[keep] @ ft_all.t(), concept[keep])

    def loader(stage, start, steps):
        return torch.utils.data.DataLoader(Stream(a, data_dir, stage, start, steps), batch_size=None,
                                           num_workers=a.workers, prefetch_factor=4 if a.workers else None)

    held = {s: held_out_images(con, s) for s in HELD_OUT}

    def quick_eval():
        img_enc.eval(); txt_enc.eval()
        r = retrieval(torch, img_enc, txt_enc, tok, con, held["openmoji"][0][::4], held["openmoji"][1][::4])
        img_enc.train(); txt_enc.train()
        return r["all"]

    # stage 1: image tower and heads only
    if stage == 1:
        img_enc.train()
        for step, (x, labels, classes, concept) in enumerate(loader(1, done, a.pretrain_steps), start=done):
            lr = cosine(step, a.pretrain_steps, max(1, a.pretrain_steps // 20))
            for g in pre_opt.param_groups:
                g["lr"] = lr
            fi_raw, pooled = img_enc.forward_pooled(x)
            logits = class_head(pooled)
            l_shape, l_colour = T.class_losses(F, logits, classes)
            keep = labels.sum(1) > 0
            l_aux = F.binary_cross_entropy_with_logits(aux(F.normalize(fi_raw[keep], dim=-1) * 8), labels[keep])
            l_con = F.cross_entropy(concept_head(pooled[concept >= 0]), concept[concept >= 0])
            loss = a.aux * l_aux + l_shape + l_colour + l_con
            pre_opt.zero_grad(set_to_none=True)
            loss.backward()
            pre_opt.step()
            if step > 0 and step % a.eval_every == 0:
                img_enc.eval()
                with torch.no_grad():
                    hx, hy = held["openmoji"]
                    x_ = torch.from_numpy(hx[::3]).permute(0, 3, 1, 2).float() / 255
                    mean = torch.tensor(T.MEAN).view(1, 3, 1, 1)
                    std = torch.tensor(T.STD).view(1, 3, 1, 1)
                    top = concept_head(img_enc.forward_pooled((x_ - mean) / std)[1]).topk(5, 1).indices
                    hit = (top == torch.from_numpy(hy[::3])[:, None]).float()
                img_enc.train()
                print(f"  stage 1 eval (openmoji, {len(x_)} icons, classification head): top-1 "
                      f"{hit[:, 0].mean() * 100:.1f} % top-5 {hit.sum(1).mean() * 100:.1f} %", flush=True)
            if step % a.log_every == 0:
                acc = (concept_head(pooled[concept >= 0]).argmax(1) == concept[concept >= 0]).float().mean()
                print(f"stage 1 step {step:5d}/{a.pretrain_steps} shape {l_shape.item():.3f} colour "
                      f"{l_colour.item():.3f} concept {l_con.item():.3f} (batch acc {acc * 100:.0f} %) "
                      f"lr {lr:.2e} | {minutes_now():.1f} min", flush=True)
            if (step + 1) % a.ckpt_every == 0 or step + 1 == a.pretrain_steps:
                save_ckpt(1 if step + 1 < a.pretrain_steps else 2, step + 1 if step + 1 < a.pretrain_steps else 0,
                          minutes_now())
                if out_of_time():
                    print(f"time cap: stopped in stage 1 after {step + 1} steps; rerun to resume", flush=True)
                    return None
        stage, done = 2, 0

    # stage 2: everything
    warm = max(1, a.steps // 20)
    t_data = t_model = 0.0
    t0 = time.time()
    for step, (x, tokens, m, labels, classes, concept, n_cap) in enumerate(loader(2, done, a.steps), start=done):
        tokens = tokens[:, : int((tokens == 49407).nonzero()[:, 1].max()) + 1]
        t1 = time.time()
        for g in opt.param_groups:
            g["lr"] = cosine(step, a.steps, warm)
        img_enc.train(); txt_enc.train()
        fi_raw, pooled = img_enc.forward_pooled(x)
        fi = F.normalize(fi_raw, dim=-1)
        ft = F.normalize(txt_enc(tokens), dim=-1)
        scale = logit_scale.exp().clamp(max=100)
        logits = scale * ft @ fi.t()
        tgt_t = m / m.sum(1, keepdim=True).clamp(min=1)
        loss_t = -(tgt_t * logits.log_softmax(1)).sum(1).mean()
        mi = m[:, :n_cap].t()
        tgt_i = mi / mi.sum(1, keepdim=True).clamp(min=1)
        has = mi.sum(1) > 0
        loss_i = -(tgt_i[has] * logits[:, :n_cap].t()[has].log_softmax(1)).sum(1).mean()
        # every concept's name under one framing (per step), against the icon images
        rng = np.random.default_rng([a.seed, 23, step])
        fr = FRAMINGS[int(rng.integers(len(FRAMINGS)))]
        all_tok = tok([fr + article(l) + " " + l for l in con.labels])
        all_tok = all_tok[:, : int((all_tok == 49407).nonzero()[:, 1].max()) + 1]
        ft_all = F.normalize(txt_enc(all_tok), dim=-1)
        l_con_txt = concept_loss(fi, concept, ft_all)
        keep = labels.sum(1) > 0
        l_aux = F.binary_cross_entropy_with_logits(aux(fi[keep] * 8), labels[keep])
        l_shape, l_colour = T.class_losses(F, class_head(pooled), classes)
        l_con_head = F.cross_entropy(concept_head(pooled[concept >= 0]), concept[concept >= 0])
        loss = (0.5 * (loss_t + loss_i) + a.aux * l_aux + a.classes * (l_shape + l_colour)
                + a.concept * (l_con_txt + 0.5 * l_con_head))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t2 = time.time()
        t_data += t1 - t0
        t_model += t2 - t1
        t0 = time.time()
        n_here = step - done + 1
        if step % a.log_every == 0:
            print(f"step {step:5d}/{a.steps} loss {loss.item():.3f} clip {0.5 * (loss_t + loss_i).item():.3f} "
                  f"concept {l_con_txt.item():.3f} head {l_con_head.item():.3f} shape {l_shape.item():.3f} "
                  f"colour {l_colour.item():.3f} scale {scale.item():.1f} | data {t_data / n_here:.2f} s "
                  f"model {t_model / n_here:.2f} s per step | {minutes_now():.1f} min", flush=True)
        if step > 0 and step % a.eval_every == 0:
            t1_, t5_, n_ = quick_eval()
            print(f"  quick eval (openmoji, {n_} icons, {con.n} concepts, BN in train stats): "
                  f"top-1 {t1_ * 100:.1f} % top-5 {t5_ * 100:.1f} %", flush=True)
            t0 = time.time()
        if (step + 1) % a.ckpt_every == 0 or step + 1 == a.steps:
            save_ckpt(2, step + 1, minutes_now())
            if out_of_time() and step + 1 < a.steps:
                print(f"time cap: stopped after {step + 1} of {a.steps} steps; rerun to resume", flush=True)
                return None
    train_min = minutes_now()

    # BatchNorm statistics with the final weights, on fresh stage-2 batches
    bns = [mm for mm in img_enc.modules() if isinstance(mm, torch.nn.modules.batchnorm._BatchNorm)]
    for mm in bns:
        mm.reset_running_stats()
        mm.momentum = None
    img_enc.train()
    with torch.no_grad():
        for x, *_ in Stream(a, data_dir, 3, 0, a.bn_batches):
            img_enc(x)
    for mm in bns:
        mm.momentum = 0.1
    img_enc.eval(); txt_enc.eval()
    for p in params:
        p.requires_grad_(False)

    eval_tasks = T.eval_sets(a.seed + 7919, a.eval_n)
    acc_shapes = T.evaluate(torch, img_enc, txt_enc, tok, eval_tasks)
    res = {}
    for s in HELD_OUT:
        res[f"{s} (filled)"] = retrieval(torch, img_enc, txt_enc, tok, con, *held[s])
        res[f"{s} (outlines)"] = retrieval(torch, img_enc, txt_enc, tok, con, *held_out_images(con, s, "outline"))

    ns = argparse.Namespace(arch=ARCH, pretrained=None)
    meta = export_clip.make_meta(ns, S, T.CONTEXT, a.embed, 49408, list(T.MEAN), list(T.STD))
    cats = {}
    for c in con.items:
        cats.setdefault(c["category"], []).append(c["label"])
    meta.update({
        "known_words": words,
        "concepts": cats,
        "shapes": {"shapes": T.SHAPES, "colours": T.COLOUR_NAMES, "positions": list(T.POS), "sizes": T.SIZES,
                   "counts": [1, 2, 3]},
        "training": {"script": "scripts/train_everyday.py", "seed": a.seed, "pretrain_steps": a.pretrain_steps,
                     "steps": a.steps, "minutes": round(train_min, 1), "threads": a.threads,
                     "batch_images": 2 * a.pairs + a.clutter + a.icons + a.icon_clutter},
        "data": [{k: s[k] for k in ("package", "version", "licence", "author", "use")}
                 for s in con.meta["sources"] if s["use"] != "evaluation and judge only"],
        "zero_shot_accuracy": {k: round(v, 4) for k, v in acc_shapes.items()},
        "retrieval_held_out": {name: {c: {"top1": round(v[0], 4), "top5": round(v[1], 4), "n": v[2]}
                                      for c, v in r.items()} for name, r in res.items()},
        "logit_scale": round(float(logit_scale.exp().clamp(max=100)), 3),
    })
    _, acc_re = T.write_bundle(torch, img_enc, txt_enc, tok, meta, a.out, eval_tasks, acc_shapes, a.seed,
                               ["a drawing of a red circle", "a drawing of a cat"])
    out = os.path.abspath(a.out)
    print(f"\nwrote {out}: {ARCH}, {os.path.getsize(out) / 1e6:.2f} MB, {nparam / 1e6:.2f} M parameters, "
          f"{a.pretrain_steps}+{a.steps} steps in {train_min:.1f} min ({a.threads} threads), seed {a.seed}")
    print("\nheld-out zero-shot accuracy, shapes:")
    print(T.fmt_table([("clean", acc_shapes), ("reloaded file", acc_re)]))
    print(f"\nheld-out retrieval among {con.n} concepts (prompt '{EVAL_FRAMING}<a/an> <label>'):")
    print(fmt_retrieval(res))
    return res


if __name__ == "__main__":
    main()
