#!/usr/bin/env python3
"""Captioned drawings of everyday things, for the built-in model and its judge.

Fetches pinned open emoji and icon sets from the npm registry (`npm pack`, cached),
picks the concepts, captions them from emojibase's labels and tags, and renders every
icon of every chosen concept with resvg (examples/render_icons.rs) into raw RGBA
arrays, once filled and once as coloured outlines only. Everything lands in
~/.cache/clipdraw/icons (or $CLIPDRAW_ICONS); a second run reuses it.

    python scripts/icons.py            # fetch and render, print the data directory
    python scripts/icons.py --summary  # and print the concepts per category

Concepts: every emoji of emojibase's groups animals & nature, food & drink, travel &
places, activities and objects, drawn in at least five of the eight shipped emoji
sets (633 concepts). People & body is left out: its emoji are mostly one person in
many near-identical poses and jobs, which a small model spends its capacity on. The game-icons silhouettes whose name is a concept's name join it.
Shipped sets (MIT, Apache-2.0, CC-BY) may train the built-in model; the CC-BY-SA
sets (openmoji, emojione-v1) are for evaluation and the judge only.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile

import numpy as np

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPT_DIR)

# package -> (version, licence as the package states it, use)
PACKAGES = {
    "@iconify-json/fluent-emoji-flat": ("1.2.6", "ship"),
    "@iconify-json/fluent-emoji": ("1.2.7", "ship"),
    "@iconify-json/noto": ("1.2.9", "ship"),
    "@iconify-json/noto-v1": ("1.2.5", "ship"),
    "@iconify-json/fxemoji": ("1.2.2", "ship"),
    "@iconify-json/twemoji": ("1.2.5", "ship"),
    "@iconify-json/emojione": ("1.2.3", "ship"),
    "@iconify-json/streamline-emojis": ("1.2.4", "ship"),
    "@iconify-json/game-icons": ("1.2.4", "ship"),
    "@iconify-json/openmoji": ("1.2.29", "eval"),
    "@iconify-json/emojione-v1": ("1.2.3", "eval"),
}
EMOJIBASE = ("emojibase-data", "17.0.0")
SHIP_LICENCES = {"MIT", "Apache-2.0", "CC-BY-4.0", "CC-BY-3.0"}
EMOJI_SETS = ["fluent-emoji-flat", "fluent-emoji", "noto", "noto-v1", "fxemoji", "twemoji",
              "emojione", "streamline-emojis"]
EVAL_SETS = ["openmoji", "emojione-v1"]
SILHOUETTE_SETS = ["game-icons"]
CATEGORIES = {3: "animals & nature", 4: "food & drink", 5: "travel & places", 6: "activities",
              7: "objects"}
VARIANT_PREFIXES = ("man-", "woman-", "men-", "women-", "family-", "couple-", "kiss-")
MIN_SETS = 5
FORMAT = 2  # bump when the selection or the rendering changes


def cache_dir():
    return os.environ.get("CLIPDRAW_ICONS") or os.path.join(os.path.expanduser("~"), ".cache", "clipdraw", "icons")


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def set_name(pkg):
    return pkg.split("/")[-1]


def fetch(cache):
    """npm pack + extract every pinned package (once); returns {name: package dir}."""
    npm = os.path.join(cache, "npm")
    os.makedirs(npm, exist_ok=True)
    out = {}
    for pkg, ver in [(p, v[0]) for p, v in PACKAGES.items()] + [EMOJIBASE]:
        base = pkg.lstrip("@").replace("/", "-") + f"-{ver}"
        tgz = os.path.join(npm, base + ".tgz")
        dest = os.path.join(cache, "x", base)
        if not os.path.isdir(os.path.join(dest, "package")):
            if not os.path.exists(tgz):
                print(f"icons: npm pack {pkg}@{ver}", file=sys.stderr, flush=True)
                subprocess.run(["npm", "pack", "--silent", f"{pkg}@{ver}"], cwd=npm, check=True,
                               stdout=subprocess.DEVNULL)
            tmp = dest + f".tmp-{os.getpid()}"
            with tarfile.open(tgz) as t:
                t.extractall(tmp, filter="data")
            os.replace(tmp, dest)
        got = json.load(open(os.path.join(dest, "package", "package.json")))["version"]
        if got != ver:
            raise SystemExit(f"icons: {pkg} is version {got}, expected {ver}")
        out[set_name(pkg) if pkg.startswith("@iconify") else pkg] = os.path.join(dest, "package")
    return out


def icon_svg(icons, name):
    """The SVG document of icon `name` of an iconify set (aliases resolved), or None."""
    seen = 0
    while name not in icons["icons"]:
        alias = icons.get("aliases", {}).get(name)
        if alias is None or seen > 8:
            return None
        name, seen = alias["parent"], seen + 1
    ic = icons["icons"][name]
    w = ic.get("width", icons.get("width", 16))
    h = ic.get("height", icons.get("height", 16))
    left, top = ic.get("left", icons.get("left", 0)), ic.get("top", icons.get("top", 0))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{left} {top} {w} {h}" width="{w}" height="{h}" color="#000">{ic["body"]}</svg>')


def clean_label(label):
    label = re.sub(r"\s*\(.*?\)", "", label)
    return label.replace(":", "").replace("’", "'").replace("“", "").replace("”", "").strip().lower()


def select(dirs):
    """Concept table: list of {slug, label, category, tags, sets: [set names]}."""
    data = json.load(open(os.path.join(dirs["emojibase-data"], "en", "data.json")))
    sets = {s: json.load(open(os.path.join(dirs[s], "icons.json"))) for s in EMOJI_SETS + EVAL_SETS + SILHOUETTE_SETS}
    names = {s: set(j["icons"]) | set(j.get("aliases", {})) for s, j in sets.items()}
    concepts = []
    for e in sorted(data, key=lambda e: e.get("order", 1 << 30)):
        if e.get("group") not in CATEGORIES:
            continue
        sl = slug(e["label"])
        if sl.startswith(VARIANT_PREFIXES):
            continue
        have = [s for s in EMOJI_SETS if sl in names[s]]
        if len(have) < MIN_SETS:
            continue
        concepts.append({
            "slug": sl, "label": clean_label(e["label"]), "category": CATEGORIES[e["group"]],
            "tags": sorted({clean_label(t) for t in e.get("tags", [])}),
            "sets": have + [s for s in EVAL_SETS + SILHOUETTE_SETS if sl in names[s]],
        })
    return concepts, sets


def licences(dirs):
    out = []
    for pkg, (ver, use) in PACKAGES.items():
        info = json.load(open(os.path.join(dirs[set_name(pkg)], "info.json")))
        lic = info.get("license", {})
        if use == "ship" and lic.get("spdx") not in SHIP_LICENCES:
            raise SystemExit(f"icons: {pkg} is {lic.get('spdx')}, which may not train the shipped model")
        out.append({"package": pkg, "version": ver, "set": set_name(pkg), "name": info.get("name"),
                    "licence": lic.get("spdx"), "licence_url": lic.get("url"),
                    "author": info.get("author", {}).get("name"), "author_url": info.get("author", {}).get("url"),
                    "use": "built-in model and judge" if use == "ship" else "evaluation and judge only"})
    pkg, ver = EMOJIBASE
    meta = json.load(open(os.path.join(dirs[pkg], "package.json")))
    out.append({"package": pkg, "version": ver, "set": None, "name": "Emojibase data (labels and tags)",
                "licence": meta.get("license"), "licence_url": None,
                "author": (meta.get("author") or {}).get("name") if isinstance(meta.get("author"), dict) else meta.get("author"),
                "author_url": meta.get("homepage"), "use": "captions"})
    return out


def renderer():
    exe = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "examples", "render_icons")
    if not os.path.exists(exe):
        subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "render_icons"], cwd=ROOT, check=True)
    return exe


def prepare(size=96, quiet=False):
    """Fetches, selects and renders (once); returns the data directory."""
    cache = cache_dir()
    dirs = fetch(cache)
    key = hashlib.sha256(json.dumps([FORMAT, size, MIN_SETS, sorted(PACKAGES.items()), EMOJIBASE]).encode()).hexdigest()[:10]
    out = os.path.join(cache, f"data-{size}-{key}")
    if os.path.exists(os.path.join(out, "concepts.json")):
        return out
    tmp = out + f".tmp-{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    concepts, sets = select(dirs)
    exe = renderer()
    rows = {}
    for s in EMOJI_SETS + EVAL_SETS + SILHOUETTE_SETS:
        idx = [k for k, c in enumerate(concepts) if s in c["sets"]]
        docs = [icon_svg(sets[s], concepts[k]["slug"]) for k in idx]
        with open(os.path.join(tmp, f"{s}.jsonl"), "w") as f:
            for d in docs:
                f.write(json.dumps(d) + "\n")
        for mode in ("fill", "outline"):
            r = subprocess.run([exe, os.path.join(tmp, f"{s}.jsonl"), os.path.join(tmp, f"{s}.{mode}.rgba"), str(size), mode],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"icons: rendering {s} failed: {r.stderr.strip()}")
            if not quiet:
                print(f"icons: {s} {mode}: {r.stderr.strip().splitlines()[-1]}", file=sys.stderr, flush=True)
        os.remove(os.path.join(tmp, f"{s}.jsonl"))
        rows[s] = idx
    json.dump({"size": size, "concepts": concepts, "rows": rows, "sources": licences(dirs)},
              open(os.path.join(tmp, "concepts.json"), "w"), indent=1)
    os.replace(tmp, out)
    return out


def load(data_dir):
    """(meta, {set: {mode: uint8 array (N, R, R, 4)}}), arrays memory-mapped."""
    meta = json.load(open(os.path.join(data_dir, "concepts.json")))
    r = meta["size"]
    arrays = {}
    for s, idx in meta["rows"].items():
        arrays[s] = {m: np.memmap(os.path.join(data_dir, f"{s}.{m}.rgba"), dtype=np.uint8, mode="r",
                                  shape=(len(idx), r, r, 4)) for m in ("fill", "outline")}
    return meta, arrays


def attribution(meta):
    """docs/icon-sets.md: every package, version, licence and author."""
    counts = {s: len(r) for s, r in meta["rows"].items()}
    out = ["# Icon and emoji sets behind the built-in model", "",
           "Written by `python scripts/icons.py --attribution docs/icon-sets.md` from the packages' own",
           "`info.json` and `package.json`. All are fetched from the npm registry at these versions by",
           "`scripts/icons.py`. The built-in model (`assets/clipdraw-tiny.pt`) is trained on the sets",
           "marked \"built-in model and judge\"; the CC-BY-SA sets are used only to evaluate it and to",
           "train the independent judge (`scripts/train_judge.py`, `tests/data/judge.pt`), and no part",
           "of them is shipped in the binary. Captions come from Emojibase's labels and tags.", "",
           "| package | version | icons used | licence | author | use |",
           "| --- | --- | --- | --- | --- | --- |"]
    for s in meta["sources"]:
        lic = f"[{s['licence']}]({s['licence_url']})" if s.get("licence_url") else str(s["licence"])
        who = f"[{s['author']}]({s['author_url']})" if s.get("author_url") else str(s["author"])
        n = counts.get(s["set"], "") if s["set"] else f"{len(meta['concepts'])} labels"
        out.append(f"| `{s['package']}` | {s['version']} | {n} | {lic} | {who} | {s['use']} |")
    out += ["", f"{len(meta['concepts'])} concepts, each drawn in at least {MIN_SETS} of the shipped emoji sets."]
    return "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--summary", action="store_true")
    p.add_argument("--attribution", metavar="FILE", help="write the attribution table (Markdown) to FILE")
    a = p.parse_args()
    d = prepare(a.size)
    if a.attribution:
        with open(a.attribution, "w") as f:
            f.write(attribution(load(d)[0]))
    if a.summary:
        meta, _ = load(d)
        from collections import Counter
        print(Counter(c["category"] for c in meta["concepts"]), file=sys.stderr)
        print(f"{len(meta['concepts'])} concepts; icons per set: " +
              ", ".join(f"{s} {len(i)}" for s, i in meta["rows"].items()), file=sys.stderr)
    print(d)


if __name__ == "__main__":
    main()
