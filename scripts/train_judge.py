#!/usr/bin/env python3
"""Train the judge: an independent classifier that says which everyday concepts a
picture shows, for clipdraw's tests and experiments (never for optimising).

Independent of the built-in model by construction: another architecture (a plain
convolution stack with GroupNorm on 64 px input, no text tower), another seed,
its own data pipeline and augmentation, none of the built-in model's weights, and it
never sees a clipdraw drawing: it trains on the icons of scripts/icons.py only, filled
and as coloured outlines, from all eleven sets (the evaluation-only CC-BY-SA ones
too: the judge is never shipped, and more styles make it a fairer judge of a new
one). One icon per concept, drawn at random from its sets, is held out to measure the
judge on.

Writes a TorchScript file whose forward takes (B, 3, H, W) RGB in [0, 1] at any size
and returns (B, concepts) logits, and a JSON sidecar with the concept list (same
order as scripts/icons.py's table) and its own figures: top-1 / top-5 on the held-out
icons filled, and on the same icons as ideal line drawings (coloured outlines, no
fill), the judge's ceiling for line drawings.

Deterministic for a given --seed and --steps.

Example:
  python scripts/train_judge.py --out tests/data/judge.pt
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPT_DIR)
import icons  # noqa: E402

R = 64
SETS = icons.EMOJI_SETS + icons.EVAL_SETS + icons.SILHOUETTE_SETS


class Judge(nn.Module):
    """A plain stack of 3x3 convolutions with GroupNorm and GELU (no residuals, no
    coordinates, no BatchNorm: unlike the built-in model's towers), global average
    pool, linear classifier."""

    def __init__(self, n, plan=((48, 2), (96, 2), (96, 1), (192, 2), (192, 1), (384, 2))):
        super().__init__()
        layers, c = [], 3
        for w, stride in plan:
            layers += [nn.Conv2d(c, w, 3, stride, 1, bias=False), nn.GroupNorm(8, w), nn.GELU()]
            c = w
        self.body = nn.Sequential(*layers)  # 64 -> 32 -> 16 -> 16 -> 8 -> 8 -> 4
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(c, n)

    def forward(self, x):
        """x: (B, 3, H, W) RGB in [0, 1], any size -> (B, n) logits."""
        x = F.interpolate(x, size=(R, R), mode="bilinear", antialias=True, align_corners=False)
        h = self.body(x * 2 - 1)
        return self.fc(self.drop(h.mean(dim=(2, 3))))


def composite(rgba, rng, train):
    """(N, r, r, 4) uint8 icons -> (N, 3, R, R) on white: random scale and place when
    training, large and central otherwise."""
    x = torch.from_numpy(np.ascontiguousarray(rgba)).permute(0, 3, 1, 2).float() / 255
    n = x.shape[0]
    if train:
        scale = torch.from_numpy(rng.uniform(0.55, 1.05, n)).float()
        shift = torch.from_numpy(rng.uniform(-1, 1, (n, 2))).float() * (1 - scale[:, None]) * 0.9
        rot = torch.from_numpy(rng.normal(0, 0.12, n)).float()
        shear = torch.from_numpy(rng.normal(0, 0.08, (n, 2))).float()
        flip = torch.from_numpy(np.where(rng.random(n) < 0.5, -1.0, 1.0)).float()
    else:
        scale = torch.full((n,), 0.8)
        shift = torch.zeros(n, 2)
        rot = torch.zeros(n)
        shear = torch.zeros(n, 2)
        flip = torch.ones(n)
    c, s = torch.cos(rot), torch.sin(rot)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = c * flip / scale + shear[:, 0]
    theta[:, 0, 1] = -s / scale
    theta[:, 1, 0] = s * flip / scale
    theta[:, 1, 1] = c / scale + shear[:, 1]
    theta[:, :, 2] = -shift / scale[:, None]
    grid = F.affine_grid(theta, (n, 4, R, R), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    rgb, a = out[:, :3], out[:, 3:]
    img = rgb * a + (1 - a)
    if train:  # colour jitter: saturation, then a lighter or unchanged tone
        sat = torch.from_numpy(rng.uniform(0.6, 1.3, (n, 1, 1, 1))).float()
        grey = img.mean(1, keepdim=True)
        img = (grey + (img - grey) * sat).clamp(0, 1)
        dark = torch.from_numpy(rng.uniform(0.85, 1.0, (n, 1, 1, 1))).float()
        img = img * dark + (1 - dark)
    return img


def split(meta, rng, sets=SETS):
    """Every (set, row) of every concept, and one of them per concept held out."""
    by_concept = {}
    for s in sets:
        for row, k in enumerate(meta["rows"][s]):
            by_concept.setdefault(k, []).append((s, row))
    held = {k: v[int(rng.integers(len(v)))] for k, v in sorted(by_concept.items())}
    train = [(s, row, k) for k, v in sorted(by_concept.items()) for s, row in v if (s, row) != held[k]]
    return train, held


def gather(arrays, items, mode):
    return np.stack([arrays[s][mode][row] for s, row, *_ in items])


def top_k(model, imgs, truth, bs=256):
    model.eval()
    ranks = []
    with torch.no_grad():
        for b in range(0, len(imgs), bs):
            top = model(imgs[b:b + bs]).topk(5, dim=1).indices.numpy()
            for t, row in zip(truth[b:b + bs], top):
                ranks.append(int(np.where(row == t)[0][0]) if t in row else 5)
    r = np.array(ranks)
    return float((r < 1).mean()), float((r < 5).mean())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=os.path.join(SCRIPT_DIR, "..", "tests", "data", "judge.pt"))
    p.add_argument("--unseen", action="append", default=[], metavar="SET",
                   help="a probe, not the judge: leave SET out of training and report the "
                        "classifier's figures on all of SET's icons (a style it never saw)")
    a = p.parse_args(argv)
    unknown = sorted(set(a.unseen) - set(SETS))
    if unknown:
        p.error(f"--unseen {unknown[0]}: not one of the sets ({', '.join(SETS)})")
    sets = [s for s in SETS if s not in a.unseen]
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    meta, arrays = icons.load(icons.prepare())
    concepts = meta["concepts"]
    n = len(concepts)
    train, held = split(meta, np.random.default_rng(a.seed + 1), sets)
    pool_x = np.concatenate([gather(arrays, train, "fill"), gather(arrays, train, "outline")])
    pool_y = np.array([k for *_, k in train] * 2)
    print(f"judge: {n} concepts, {len(pool_x)} training icons (fill + outline) from {len(sets)} sets, "
          f"{len(held)} held out", flush=True)
    model = Judge(n)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.05)
    warm = max(1, a.steps // 20)
    for step in range(a.steps):
        lr = a.lr * min(1, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * step / a.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = rng.integers(0, len(pool_x), a.batch)
        x = composite(pool_x[idx], rng, True)
        y = torch.from_numpy(pool_y[idx]).long()
        model.train()
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0:
            print(f"judge step {step:5d}/{a.steps} loss {loss.item():.3f} lr {lr:.2e} | "
                  f"{(time.time() - t0) / 60:.1f} min", flush=True)
    figures = {}
    held_items = [(s, row, k) for k, (s, row) in sorted(held.items())]
    truth = np.array([k for *_, k in held_items])
    for mode, what in (("fill", "held-out icons, filled"),
                       ("outline", "held-out icons as coloured outlines only: the ceiling")):
        hx = composite(gather(arrays, held_items, mode), None, False)
        t1, t5 = top_k(model, hx, truth)
        figures[mode] = {"top1": round(t1, 4), "top5": round(t5, 4), "n": len(hx), "what": what}
        print(f"judge on {what}: top-1 {t1 * 100:.1f} %, top-5 {t5 * 100:.1f} % ({len(hx)} icons, {n} concepts)")
    for s in a.unseen:
        items = [(s, row, k) for row, k in enumerate(meta["rows"][s])]
        st = np.array([k for *_, k in items])
        for mode in ("fill", "outline"):
            t1, t5 = top_k(model, composite(gather(arrays, items, mode), None, False), st)
            figures[f"unseen {s} {mode}"] = {"top1": round(t1, 4), "top5": round(t5, 4), "n": len(items)}
            print(f"judge on the unseen style {s}, {mode}: top-1 {t1 * 100:.1f} %, top-5 {t5 * 100:.1f} % "
                  f"({len(items)} icons, {n} concepts)")
    held_out = [{"set": s, "concept": concepts[k]["slug"]} for s, row, k in held_items]
    model.eval()
    out = os.path.abspath(a.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with torch.no_grad():
        ts = torch.jit.trace(model, torch.rand(2, 3, 224, 224), check_trace=False)
    tmp = f"{out}.tmp-{os.getpid()}"
    ts.save(tmp)
    side = {"concepts": [{"slug": c["slug"], "label": c["label"], "category": c["category"]} for c in concepts],
            "input": "RGB in [0, 1], (B, 3, H, W), any size (resized to 64 px)", "held_out": held_out,
            "trained_on": sets, "seed": a.seed, "steps": a.steps, "batch": a.batch,
            "minutes": round((time.time() - t0) / 60, 1), "figures": figures,
            "script": "scripts/train_judge.py"}
    with open(tmp + ".json", "w") as f:
        json.dump(side, f, indent=1)
    os.replace(tmp + ".json", os.path.splitext(out)[0] + ".json")
    os.replace(tmp, out)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB) in {(time.time() - t0) / 60:.1f} min")


if __name__ == "__main__":
    main()
