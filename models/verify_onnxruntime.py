#!/usr/bin/env python3
"""Reference accuracy of the converted models with onnxruntime (dev tool).

Run from the repository root, in the conversion venv:

    /tmp/convenv/bin/python models/verify_onnxruntime.py            # all three models
    /tmp/convenv/bin/python models/verify_onnxruntime.py --no-torch # skip the torch comparison
    /tmp/convenv/bin/python models/verify_onnxruntime.py --alt-norms # also try wrong normalizations

For every model it reads the manifest (models/<name>.toml), classifies the
labelled sample in ../shared/data/imagenet-sample-500/ (file name
"<synset>_<name>.JPEG"; the label is the synset's index in
../shared/data/imagenet-classes.tsv) and prints top-1 / top-5. It also runs the
original PyTorch model on the same inputs and prints max |torch - onnxruntime|
over all logits, and prints the top-3 for each photo in assets/images/.

Preprocessing (what the Rust side should match):
  1. decode, convert to RGB (grayscale and CMYK too),
  2. resize so the shorter side is round(size / crop_fraction), the longer side
     round(longer * that / shorter), PIL BILINEAR,
  3. center crop size x size with offset floor((dim - size) / 2),
  4. x = (p / 255 - mean[c]) / std[c], NCHW float32.

Note: the sample images may come from the ImageNet training split, so the
absolute accuracies read higher than on the official validation split.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib

import numpy as np
import onnxruntime as ort
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(ROOT, "..", "shared", "data")
MODELS = ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]


def preprocess(path: str, size: int, crop_fraction: float, mean, std, bgr: bool = False) -> np.ndarray:
    im = Image.open(path).convert("RGB")
    w, h = im.size
    short = round(size / crop_fraction)
    if w <= h:
        nw, nh = short, round(h * short / w)
    else:
        nw, nh = round(w * short / h), short
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    im = im.crop((left, top, left + size, top + size))
    p = np.asarray(im, dtype=np.float32) / 255.0  # HWC, RGB, 0..1
    if bgr:
        p = p[..., ::-1]
    x = (p - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


def load_manifest(name: str) -> dict:
    with open(os.path.join(HERE, f"{name}.toml"), "rb") as f:
        return tomllib.load(f)


def load_labels(path: str):
    rows = [line.rstrip("\n").split("\t") for line in open(path, encoding="utf-8")]
    return [r[1] for r in rows], [r[2] for r in rows]


def torch_model(name: str):
    """The original PyTorch model, built exactly as models/convert.py does."""
    sys.path.insert(0, HERE)
    import convert  # noqa: E402  (heavy imports only when torch is wanted)

    return convert.load_model(name)


def evaluate(name: str, files, synsets, use_torch: bool, variants, top1_of=None) -> None:
    man = load_manifest(name)
    size, cf = man["size"], man["crop_fraction"]
    sess = ort.InferenceSession(os.path.join(HERE, f"{name}.onnx"), providers=["CPUExecutionProvider"])
    tmodel = torch_model(name) if use_torch else None
    if tmodel is not None:
        import torch

    for label, mean, std, bgr in variants(man):
        top1 = top5 = 0
        max_diff = 0.0
        agree = 0
        for f in files:
            y = synsets.index(os.path.basename(f).split("_")[0])
            x = preprocess(f, size, cf, mean, std, bgr)
            logits = sess.run(["logits"], {"input": x})[0][0]
            top = np.argsort(-logits)[:5]
            if top1_of is not None and label == "manifest":
                top1_of.append((os.path.basename(f), name, int(top[0]), int(top[1]), float(logits[top[0]] - logits[top[1]])))
            top1 += int(top[0] == y)
            top5 += int(y in top)
            if tmodel is not None and label == "manifest":
                with torch.no_grad():
                    ref = tmodel(torch.from_numpy(x)).numpy()[0]
                max_diff = max(max_diff, float(np.abs(ref - logits).max()))
                agree += int(np.argmax(ref) == top[0])
        n = len(files)
        line = f"{name:<20} {size:>4}  {label:<22} top-1 {100 * top1 / n:5.1f}%  top-5 {100 * top5 / n:5.1f}%  (n={n})"
        if tmodel is not None and label == "manifest":
            line += f"  max|torch-ort| {max_diff:.3g}, top-1 agreement {agree}/{n}"
        print(line, flush=True)


def classify_assets(names) -> None:
    folder = os.path.join(ROOT, "assets", "images")
    if not os.path.isdir(folder):
        return
    _, classnames = load_labels(os.path.join(HERE, "imagenet-classes.tsv"))
    imgs = sorted(f for f in os.listdir(folder) if f.lower().endswith((".png", ".jpg", ".jpeg")))
    for name in names:
        man = load_manifest(name)
        sess = ort.InferenceSession(os.path.join(HERE, f"{name}.onnx"), providers=["CPUExecutionProvider"])
        for img in imgs:
            x = preprocess(os.path.join(folder, img), man["size"], man["crop_fraction"], man["mean"], man["std"])
            z = sess.run(["logits"], {"input": x})[0][0].astype(np.float64)
            prob = np.exp(z - z.max())
            prob /= prob.sum()
            top = np.argsort(-z)[:3]
            desc = ", ".join(f"{classnames[i]} ({i}) {100 * prob[i]:.1f}%" for i in top)
            print(f"{name:<20} assets/images/{img:<14} {desc}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=MODELS)
    ap.add_argument("--data", default=DATA, help="folder with imagenet-sample-500/ and imagenet-classes.tsv")
    ap.add_argument("--folder", help="a folder of <synset>_<name>.JPEG photos to use instead (e.g. assets/imagenet-sample)")
    ap.add_argument("--write-top1", metavar="CSV", help="write each photo's two best classes per model and their logit margin (manifest preprocessing)")
    ap.add_argument("--no-torch", action="store_true", help="skip the torch-vs-onnxruntime comparison")
    ap.add_argument("--alt-norms", action="store_true", help="also evaluate torchvision mean/std and BGR order")
    args = ap.parse_args()

    synsets, _ = load_labels(os.path.join(HERE, "imagenet-classes.tsv"))
    folder = args.folder or os.path.join(args.data, "imagenet-sample-500")
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.upper().endswith((".JPEG", ".JPG")))

    def variants(man):
        yield "manifest", man["mean"], man["std"], False
        if args.alt_norms:
            yield "manifest, BGR order", man["mean"], man["std"], True
            yield "torchvision mean/std", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], False

    top1_of = []
    for name in args.models:
        evaluate(name, files, synsets, not args.no_torch, variants, top1_of)
    if args.write_top1:
        with open(args.write_top1, "w") as out:
            out.write("file,model,top1,top2,logit_margin\n")
            for f, m, t1, t2, margin in sorted(top1_of):
                out.write(f"{f},{m},{t1},{t2},{margin:.4f}\n")
    classify_assets(args.models)
    return 0


if __name__ == "__main__":
    sys.exit(main())
