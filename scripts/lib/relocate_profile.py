#!/usr/bin/env python3
"""Copies a calibration profile into a bundle, pointing its stages at the bundle's models.

Usage: relocate_profile.py PROFILE.toml DEST.toml MODELS_DIR

A profile stores each stage's model path relative to the profile's folder. In the bundle the
profile sits at the top and the models in MODELS_DIR, so each `model = "..."` becomes
`MODELS_DIR/<file name>`. The model's SHA-256 in the profile is kept: the bundle carries the
same file, and cascade refuses the profile if it is not.
"""
import pathlib
import re
import sys
import tomllib


def main() -> int:
    src, dest, models = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    text = src.read_text()
    stages = tomllib.loads(text).get("stages", [])
    if not stages:
        print(f"bundle: {src} has no [[stages]]: not a cascade profile", file=sys.stderr)
        return 2
    bundle_models = dest.parent / models
    missing = []

    def relocate(match: re.Match) -> str:
        name = pathlib.PurePath(match.group(2)).name
        if not (bundle_models / name).is_file():
            missing.append(name)
        return f'{match.group(1)}"{models}/{name}"'

    text = re.sub(r'(?m)^(model\s*=\s*)"([^"]*)"', relocate, text)
    if missing:
        print(f"bundle: {src} uses models the bundle does not carry: {', '.join(missing)}",
              file=sys.stderr)
        return 2
    dest.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
