#!/usr/bin/env python3
"""Draw with a candidate model against itself: the hard negatives of an adversarial
round of scripts/train_everyday.py (`--adversarial DIR`).

Each drawing is clipdraw's default loop for a random concept caption (a framing and
a label of scripts/icons.py's table), at --iters iterations, written as DIR/dNNNN.png
(224 px) with its prompt in DIR/dNNNN.prompt.json. Deterministic for --seed; a rerun
skips the drawings already there, so it can be stopped and resumed.

    python scripts/adversarial_drawings.py MODEL.pt DIR --count 120
"""

import argparse
import json
import os
import random
import subprocess
import sys

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPT_DIR)
import icons  # noqa: E402

FRAMINGS = ["a drawing of ", "a sketch of ", "a painting of ", "a picture of ", "a watercolor of ", ""]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("dir")
    p.add_argument("--count", type=int, default=120)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--binary", default=os.path.join(SCRIPT_DIR, "..", "target", "release", "clipdraw"))
    a = p.parse_args()
    meta, _ = icons.load(icons.prepare(quiet=True))
    labels = [c["label"] for c in meta["concepts"]]
    rng = random.Random(a.seed)
    os.makedirs(a.dir, exist_ok=True)
    for i in range(a.count):
        label = rng.choice(labels)
        prompt = rng.choice(FRAMINGS) + ("an " if label[0] in "aeiou" else "a ") + label
        stem = os.path.join(a.dir, f"d{i:04d}")
        if os.path.exists(stem + ".prompt.json"):
            continue
        subprocess.run([a.binary, prompt, "--model", a.model, "--iters", str(a.iters), "--seed", str(i),
                        "-o", stem, "--png-size", "224", "--force", "-q"], check=True, stdout=subprocess.DEVNULL)
        os.remove(stem + ".json")
        os.remove(stem + ".svg")
        with open(stem + ".prompt.json", "w") as f:
            json.dump({"prompt": prompt, "seed": i}, f)
        print(f"{i + 1}/{a.count} {prompt}", flush=True)


if __name__ == "__main__":
    main()
