#!/usr/bin/env python3
"""Copy the public-domain / CC0 sample photos shipped in the scikit-image wheel
into assets/images/ (byte-for-byte). Run from the repository root after
`pip install -r models/requirements-convert.txt`:

    /tmp/convenv/bin/python models/copy_sample_images.py

Only files physically present in the wheel are used (scikit-image downloads
most of its other data on demand). Licences are as stated in the docstrings of
skimage.data.<function>; see assets/images/README.md.
"""

import importlib.metadata as md
import os
import shutil
import sys

import skimage

# file in skimage/data -> skimage.data function whose docstring states the licence
FILES = {
    "chelsea.png": "chelsea",  # a tabby cat; CC0 (Stefan van der Walt)
    "coffee.png": "coffee",  # a cup of coffee; CC0 (Rachel Michetti)
    "astronaut.png": "astronaut",  # Eileen Collins, NASA; public domain
    "rocket.jpg": "rocket",  # Falcon 9 / DSCOVR launch, SpaceX; public domain
}

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEST = os.path.join(ROOT, "assets", "images")


def main() -> int:
    src_dir = os.path.join(os.path.dirname(skimage.__file__), "data")
    os.makedirs(DEST, exist_ok=True)
    for name in FILES:
        src = os.path.join(src_dir, name)
        if not os.path.isfile(src):
            print(f"missing in the installed wheel: {src}", file=sys.stderr)
            return 1
        shutil.copyfile(src, os.path.join(DEST, name))
        print(f"copied {name} ({os.path.getsize(src):,} bytes) from scikit-image {md.version('scikit-image')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
