#!/usr/bin/env python3
"""Make the small labelled ImageNet set that ships with the repository, from the 500 shared
photographs (../shared/data/imagenet-sample-500, not part of the repository).

So that a clone with nothing beside it can run its tests, this folder carries at most 60 of
those photographs: every 10th in sorted-synset order, the ones the tests name, and two of
the nine grayscale ones (the decoder must handle single-channel JPEGs). Each is scaled
down, never up, so that its shorter side is the largest bundled model's resize target
(EfficientNet-Lite2: round(260 / 0.875) = 297 pixels) and no smaller: the preprocessing of
every bundled model still only scales down. Lanczos filter, JPEG quality 90, names kept
(`<synset>_<class name>.JPEG`, the label is the synset). Run from the repository root:

    python3 -m venv /tmp/gen && /tmp/gen/bin/pip install pillow==13.0.0
    /tmp/gen/bin/python assets/imagenet-sample/make_sample.py

Output is deterministic for a given Pillow version.
"""

import os
import sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCE = os.path.join(ROOT, "..", "shared", "data", "imagenet-sample-500")
DEST = os.path.dirname(os.path.abspath(__file__))
SHORT_SIDE = round(260 / 0.875)  # EfficientNet-Lite2's resize target, the largest bundled
EVERY = 10
NAMED = [  # photos the tests open by name
    "n01440764_tench.JPEG",
    "n01484850_great_white_shark.JPEG",
    "n01514859_hen.JPEG",
    "n01530575_brambling.JPEG",
    "n01582220_magpie.JPEG",
    "n01614925_bald_eagle.JPEG",
]
GRAYSCALE = 2
LIMIT = 60


def main() -> int:
    if not os.path.isdir(SOURCE):
        print(f"not there: {SOURCE}", file=sys.stderr)
        return 1
    files = sorted(f for f in os.listdir(SOURCE) if f.endswith(".JPEG"))
    chosen = set(files[::EVERY]) | set(NAMED)
    gray = [f for f in files if Image.open(os.path.join(SOURCE, f)).mode == "L"]
    extra = [g for g in gray if g not in chosen][: max(0, GRAYSCALE - len(chosen & set(gray)))]
    chosen |= set(extra)
    assert len(chosen) <= LIMIT, len(chosen)
    for old in os.listdir(DEST):
        if old.endswith(".JPEG"):
            os.remove(os.path.join(DEST, old))
    total = 0
    for name in sorted(chosen):
        im = Image.open(os.path.join(SOURCE, name))
        w, h = im.size
        scale = SHORT_SIDE / min(w, h)
        out = os.path.join(DEST, name)
        if scale < 1:
            im = im.resize((max(SHORT_SIDE, round(w * scale)), max(SHORT_SIDE, round(h * scale))), Image.LANCZOS)
            im.save(out, "JPEG", quality=90)
        else:  # already small enough: the original bytes
            with open(os.path.join(SOURCE, name), "rb") as src, open(out, "wb") as dst:
                dst.write(src.read())
        total += os.path.getsize(out)
        print(f"{name:<45} {w}x{h} -> {im.size[0]}x{im.size[1]} {im.mode}")
    print(f"{len(chosen)} photos, {len(chosen & set(gray))} grayscale, {total:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
