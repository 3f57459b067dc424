#!/usr/bin/env python3
"""Export an open_clip model as one clipdraw model file (TorchScript).

The file meets the contract in DESIGN.md section 3:

  encode_image(x: (B, 3, S, S) float32, CLIP-normalised) -> (B, E)
  encode_text(tokens: (B, C) int64 CLIP BPE ids)        -> (B, E)
  metadata() -> str          JSON: architecture, image_size, context_length,
                             embed_dim, vocab_size, mean, std, ...
  bpe_merges_gz() -> Tensor  uint8 bytes of bpe_simple_vocab_16e6.txt.gz

After writing, the file is reloaded and checked against the Python model (max abs
difference of embeddings <= --tolerance on a few images and prompts, at a batch
size other than the traced one) and a backward pass through encode_image must reach
the input. Any failure exits non-zero and removes the file.

Examples:
  python scripts/export_clip.py --random-init -o vit-b-32-random.pt
  python scripts/export_clip.py --arch ViT-B-32 --pretrained openai -o vit-b-32.pt
  python scripts/export_clip.py --arch tiny-test --config-json '{...}' --random-init -o t.pt
"""

import argparse
import gzip
import json
import os
import sys
import tempfile
import time

FORMAT = "clipdraw-model"
FORMAT_VERSION = 1


def fail(msg):
    print(f"export_clip: error: {msg}", file=sys.stderr)
    sys.exit(1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="ViT-B-32",
                   help="open_clip architecture name (ViT-B-32, ViT-B-16, ViT-L-14, RN50, ...)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--pretrained", metavar="TAG",
                   help="open_clip pretrained tag (e.g. openai, laion2b_s34b_b79k); downloads weights")
    g.add_argument("--random-init", action="store_true",
                   help="random weights: same compute as the real model, for tests and benchmarks")
    p.add_argument("--config-json", metavar="JSON",
                   help="register --arch with this open_clip model config (JSON text or a file path)")
    p.add_argument("-o", "--output", required=True, help="model file to write")
    p.add_argument("--seed", type=int, default=0, help="seed for --random-init and the checks")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="max abs difference allowed between Python and reloaded embeddings")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    return p.parse_args(argv)


def gather_text_pool(x, text, pool_type="argmax", eos_token_id=None):
    """open_clip's text_global_pool without torch.arange(device=...).

    Tracing records `x.device` as a constant, which would pin a CPU-exported file to
    the CPU; gather has no device argument, so the file loads on CUDA too.
    """
    import torch

    if pool_type == "argmax":
        idx = text.argmax(dim=-1)
    elif pool_type == "eos":
        idx = (text == eos_token_id).int().argmax(dim=-1)
    elif pool_type == "first":
        return x[:, 0]
    elif pool_type == "last":
        return x[:, -1]
    else:
        return x
    idx = idx.view(-1, 1, 1).expand(-1, 1, x.shape[-1])  # (B, 1, W)
    return torch.gather(x, 1, idx).squeeze(1)  # (B, W)


def build_model(args):
    import open_clip
    import torch

    if args.config_json:
        text = args.config_json
        if os.path.isfile(text):
            with open(text) as f:
                text = f.read()
        try:
            cfg = json.loads(text)
        except json.JSONDecodeError as e:
            fail(f"--config-json is not valid JSON: {e}")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, f"{args.arch}.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            open_clip.add_model_config(path)
    if args.arch not in open_clip.list_models():
        fail(f"unknown open_clip architecture {args.arch!r}; "
             f"known ones include {', '.join(open_clip.list_models()[:12])}, ...")

    torch.manual_seed(args.seed)
    model = open_clip.create_model(
        args.arch,
        pretrained=args.pretrained,
        precision="fp32",
        device="cpu",
        require_pretrained=bool(args.pretrained),
    )
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def model_facts(model):
    import open_clip
    import torch

    pcfg = open_clip.get_model_preprocess_cfg(model)
    size = pcfg.get("size", getattr(model.visual, "image_size", 224))
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            fail(f"non-square image size {size} is not supported")
        size = size[0]
    mean = list(pcfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = list(pcfg.get("std", open_clip.OPENAI_DATASET_STD))
    context = int(getattr(model, "context_length", 77))
    vocab = int(getattr(model, "vocab_size", 49408))
    with torch.no_grad():
        embed = int(model.encode_image(torch.zeros(1, 3, size, size)).shape[-1])
    return int(size), context, embed, vocab, mean, std


def trace_towers(model, size, context, seed=0):
    """Traces encode_image and encode_text into two TorchScript modules."""
    import open_clip
    import torch
    from torch import nn

    # Verified pitfall (DESIGN.md 2): with the MHA fast path on, eval-mode attention
    # is recorded as _native_multi_head_attention, which has no backward.
    torch.backends.mha.set_fastpath_enabled(False)
    open_clip.transformer.text_global_pool = gather_text_pool
    open_clip.model.text_global_pool = gather_text_pool

    class ImageTower(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m.encode_image(x)

    class TextTower(nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, t):
            return self.m.encode_text(t)

    g = torch.Generator().manual_seed(seed)
    ex_img = torch.randn(2, 3, size, size, generator=g)
    ex_txt = torch.zeros(2, context, dtype=torch.long)
    ex_txt[:, 0] = 49406
    ex_txt[:, 1:4] = torch.randint(1, 49406, (2, 3), generator=g)
    ex_txt[:, 4] = 49407
    with torch.no_grad():
        image_ts = torch.jit.trace(ImageTower(model), ex_img, check_trace=False)
        text_ts = torch.jit.trace(TextTower(model), ex_txt, check_trace=False)
    for name, ts in (("encode_image", image_ts), ("encode_text", text_ts)):
        if "_native_multi_head_attention" in str(ts.inlined_graph):
            fail(f"{name} was traced with the MHA fast path; it would have no backward")
    return image_ts, text_ts


def make_meta(args, size, context, embed, vocab, mean, std):
    import open_clip
    import torch

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": args.arch,
        "pretrained": args.pretrained,
        "image_size": size,
        "context_length": context,
        "embed_dim": embed,
        "vocab_size": vocab,
        "mean": mean,
        "std": std,
        "torch_version": torch.__version__,
        "open_clip_version": open_clip.__version__,
    }


def make_bundle(image_ts, text_ts, meta, bpe_gz):
    """Scripts the model-file module: both towers, metadata() and bpe_merges_gz().

    `meta` is a dict (stored as JSON) or a str (stored as is, for broken fixtures).
    """
    import torch
    from torch import nn

    meta_json = meta if isinstance(meta, str) else json.dumps(meta, sort_keys=True)

    class Bundle(nn.Module):
        meta_json: str

        def __init__(self):
            super().__init__()
            self.image_tower = image_ts
            self.text_tower = text_ts
            self.meta_json = meta_json
            self.register_buffer("bpe_gz", torch.frombuffer(bytearray(bpe_gz), dtype=torch.uint8))

        @torch.jit.export
        def encode_image(self, x: torch.Tensor) -> torch.Tensor:
            return self.image_tower(x)

        @torch.jit.export
        def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.text_tower(tokens)

        @torch.jit.export
        def metadata(self) -> str:
            return self.meta_json

        @torch.jit.export
        def bpe_merges_gz(self) -> torch.Tensor:
            return self.bpe_gz

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.encode_image(x)

    return torch.jit.script(Bundle())


def check_reloaded(path, model, args, size, context):
    """Reload the file and compare with the Python model; returns the figures."""
    import open_clip
    import torch

    loaded = torch.jit.load(path, map_location="cpu")
    meta = json.loads(loaded.metadata())
    if meta.get("format") != FORMAT:
        fail("reloaded file has no clipdraw metadata")
    gz = bytes(loaded.bpe_merges_gz().numpy().tobytes())
    gzip.decompress(gz)  # raises if the merges were mangled

    tokenizer = open_clip.get_tokenizer(args.arch)
    prompts = ["a drawing of a cat", "a red star on the left",
               "自転車に乗る犬 🐕", "Three small blue circles."]
    tokens = tokenizer(prompts, context_length=context)
    g = torch.Generator().manual_seed(args.seed + 1)
    images = torch.randn(3, 3, size, size, generator=g)  # batch 3: not the traced 2
    with torch.no_grad():
        want_img = model.encode_image(images)
        want_txt = model.encode_text(tokens)
        got_img = loaded.encode_image(images)
        got_txt = loaded.encode_text(tokens)
    if got_img.shape != want_img.shape or got_txt.shape != want_txt.shape:
        fail(f"reloaded shapes {tuple(got_img.shape)}/{tuple(got_txt.shape)} differ from "
             f"Python's {tuple(want_img.shape)}/{tuple(want_txt.shape)}")
    d_img = (got_img - want_img).abs().max().item()
    d_txt = (got_txt - want_txt).abs().max().item()
    if not (d_img <= args.tolerance and d_txt <= args.tolerance):
        fail(f"reloaded embeddings differ from Python's: image {d_img:.3g}, text {d_txt:.3g} "
             f"(tolerance {args.tolerance:g})")

    x = images[:1].clone().requires_grad_(True)
    loaded.encode_image(x).pow(2).sum().backward()
    if x.grad is None or not torch.isfinite(x.grad).all() or x.grad.abs().max() == 0:
        fail("backward through the reloaded encode_image does not reach the input")
    return d_img, d_txt, float(x.grad.abs().mean())


def main(argv=None):
    args = parse_args(argv)
    if os.path.exists(args.output) and not args.force:
        fail(f"{args.output} exists (use --force to overwrite)")
    out_dir = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(out_dir):
        fail(f"output directory {out_dir} does not exist")

    import open_clip
    import torch

    t0 = time.time()
    model = build_model(args)
    if not isinstance(open_clip.get_tokenizer(args.arch), open_clip.tokenizer.SimpleTokenizer):
        fail(f"{args.arch} does not use CLIP's BPE tokenizer; clipdraw model files need it")
    size, context, embed, vocab, mean, std = model_facts(model)
    with open(open_clip.tokenizer.default_bpe(), "rb") as f:
        bpe_gz = f.read()
    image_ts, text_ts = trace_towers(model, size, context, args.seed)
    meta = make_meta(args, size, context, embed, vocab, mean, std)
    bundle = make_bundle(image_ts, text_ts, meta, bpe_gz)

    tmp = f"{args.output}.tmp-{os.getpid()}"
    try:
        bundle.save(tmp)
        t_export = time.time() - t0
        t1 = time.time()
        d_img, d_txt, grad = check_reloaded(tmp, model, args, size, context)
        t_check = time.time() - t1
        os.replace(tmp, args.output)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    mb = os.path.getsize(args.output) / 1e6
    print(f"wrote {args.output}: {args.arch} "
          f"({'random-init' if args.random_init else args.pretrained}), "
          f"S={size} C={context} E={embed}, {mb:.1f} MB")
    print(f"check: max |Δ| image {d_img:.2e}, text {d_txt:.2e} (tolerance {args.tolerance:g}); "
          f"backward reaches input (mean |grad| {grad:.2e}); "
          f"export {t_export:.1f} s, check {t_check:.1f} s")


if __name__ == "__main__":
    main()
