#!/usr/bin/env python3
"""Zero-shot retrieval of a model file on icon styles it never trained on.

Every icon of the held-out sets (openmoji, emojione-v1; scripts/icons.py), large and
central on white, filled and as coloured outlines, is matched against the prompts
"a drawing of a/an <label>" of all concepts; prints one JSON object with top-1 and
top-5 per set, rendering and category.

    python scripts/eval_retrieval.py assets/clipdraw-tiny.pt
"""

import json
import os
import sys

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, SCRIPT_DIR)

import icons  # noqa: E402
import train_everyday as E  # noqa: E402
import train_tiny_clip as T  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: eval_retrieval.py MODEL.pt")
    import torch
    torch.set_num_threads(int(os.environ.get("CLIPDRAW_EVAL_THREADS", "2")))
    model = torch.jit.load(sys.argv[1], map_location="cpu")
    con = E.Concepts(icons.prepare(quiet=True))
    tok = T.Tokens()
    out = {}
    for s in E.HELD_OUT:
        for mode in ("fill", "outline"):
            imgs, truth = E.held_out_images(con, s, mode)
            r = E.retrieval(torch, model.encode_image, model.encode_text, tok, con, imgs, truth)
            out[f"{s}/{mode}"] = {c: {"top1": round(v[0], 4), "top5": round(v[1], 4), "n": v[2]} for c, v in r.items()}
    out["concepts"] = con.n
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
