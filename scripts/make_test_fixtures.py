#!/usr/bin/env python3
"""Make the model files the Rust test suite loads, into one directory.

  tiny.pt                a small random-init CLIP (real open_clip code, reduced config),
                         exported by scripts/export_clip.py
  tiny_expected.json     Python's embeddings of fixed prompts and images, for the
                         Rust loader to match
  broken_*.pt            model files that are wrong in one way each
  no_grad.pt             loads and checks out, but its encode_image cuts the autograd
                         graph, so the first backward of a drawing fails in libtorch

Usage: python scripts/make_test_fixtures.py OUT_DIR
"""

import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_clip  # noqa: E402

TINY_ARCH = "clipdraw-test-tiny"
TINY_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
PROMPTS = [
    "a drawing of a cat",
    "a red star on the left",
    "Three small BLUE circles, top-right!",
    "自転車",
    "",
]


def fixture_image(b, c, i, j):
    """The same formula is in tests/model.rs: a deterministic (B, 3, S, S) input."""
    return math.sin(0.05 * (i + 1) * (c + 1) + 0.07 * (j + 1) * (b + 1))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)

    import open_clip
    import torch

    tiny = os.path.join(out, "tiny.pt")
    export_clip.main(["--arch", TINY_ARCH, "--config-json", json.dumps(TINY_CFG),
                      "--random-init", "--seed", "0", "-o", tiny, "--force"])

    model = torch.jit.load(tiny, map_location="cpu")
    meta = json.loads(model.metadata())
    s, c = meta["image_size"], meta["context_length"]
    tokens = open_clip.tokenize(PROMPTS, context_length=c)
    images = torch.tensor(
        [[[[fixture_image(b, ch, i, j) for j in range(s)] for i in range(s)]
          for ch in range(3)] for b in range(2)], dtype=torch.float64).float()
    with torch.no_grad():
        text = model.encode_text(tokens)
        image = model.encode_image(images)
    with open(os.path.join(out, "tiny_expected.json"), "w") as f:
        json.dump({"prompts": PROMPTS, "tokens": tokens.tolist(),
                   "text_embeddings": text.tolist(), "image_embeddings": image.tolist()}, f)

    # Broken files, each wrong in exactly one way. They reuse the tiny model's towers.
    base = open_clip.create_model(TINY_ARCH, pretrained=None)
    base.eval()
    image_ts, text_ts = export_clip.trace_towers(base, s, c)
    with open(open_clip.tokenizer.default_bpe(), "rb") as f:
        bpe = f.read()

    def bundle(name, meta_value, bpe_bytes=bpe):
        export_clip.make_bundle(image_ts, text_ts, meta_value, bpe_bytes).save(
            os.path.join(out, f"broken_{name}.pt"))

    bundle("image_size", dict(meta, image_size=160))
    bundle("context_length", dict(meta, context_length=64))
    bundle("embed_dim", dict(meta, embed_dim=32))
    bundle("missing_field", {k: v for k, v in meta.items() if k != "embed_dim"})
    bundle("not_json", "this is not JSON")
    bundle("wrong_format", dict(meta, format="something-else"))
    bundle("bad_merges", meta, bpe_bytes=b"not gzip at all")

    from torch import nn

    class NoMetadata(nn.Module):
        def __init__(self):
            super().__init__()
            self.image_tower = image_ts
            self.text_tower = text_ts

        @torch.jit.export
        def encode_image(self, x: torch.Tensor) -> torch.Tensor:
            return self.image_tower(x)

        @torch.jit.export
        def encode_text(self, t: torch.Tensor) -> torch.Tensor:
            return self.text_tower(t)

    torch.jit.script(NoMetadata()).save(os.path.join(out, "broken_no_metadata.pt"))

    meta_json = json.dumps(meta)

    class NoEncodeText(nn.Module):
        meta_json: str

        def __init__(self):
            super().__init__()
            self.image_tower = image_ts
            self.meta_json = meta_json
            self.register_buffer("bpe_gz", torch.frombuffer(bytearray(bpe), dtype=torch.uint8))

        @torch.jit.export
        def encode_image(self, x: torch.Tensor) -> torch.Tensor:
            return self.image_tower(x)

        @torch.jit.export
        def metadata(self) -> str:
            return self.meta_json

        @torch.jit.export
        def bpe_merges_gz(self) -> torch.Tensor:
            return self.bpe_gz

    torch.jit.script(NoEncodeText()).save(os.path.join(out, "broken_no_encode_text.pt"))

    class Detached(nn.Module):
        """The image tower on a detached input: the bundle passes every check at
        load time, and libtorch refuses the first backward of a drawing."""

        def __init__(self):
            super().__init__()
            self.tower = image_ts

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.tower(x.detach())

    export_clip.make_bundle(torch.jit.script(Detached()), text_ts, meta, bpe).save(
        os.path.join(out, "no_grad.pt"))


    with open(tiny, "rb") as f:
        data = f.read()
    with open(os.path.join(out, "broken_truncated.pt"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(os.path.join(out, "broken_not_archive.pt"), "wb") as f:
        f.write(b"this is a text file, not a TorchScript archive\n" * 10)
    print(f"fixtures written to {out}")


if __name__ == "__main__":
    main()
