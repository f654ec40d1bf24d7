"""A measured try of NPR input features (Tan et al., CVPR 2024) for the default's recipe.

NPR ("neighbouring pixel relationships") feeds the network the residual of the image
against its own nearest-neighbour 2x down- and up-sampling, ``x - up(down(x))``: the trace
that up-sampling layers of generators leave in 2x2 pixel blocks. Here EfficientNet-Lite0
from ImageNet sees that residual instead of the image, under the protocol of
``benchmarks/backbones.py`` (the default's recipe, 8,000 training images as 4 epochs of
2,000, judged on the hold-out of *train*, never on val), so the result compares with that
page's Lite0 row:

    python benchmarks/npr.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan \
        --backbone-weights effl0_in1k.safetensors

Prints the hold-out AUCs per epoch as JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import source_parser  # run as a script: its folder is on sys.path
from torch import nn

import deepfake_detect as dd
from deepfake_detect import load_detector
from deepfake_detect.crossdata import default_splits, selection_set
from deepfake_detect.models._backbone import create_timm


class NPRLite0(nn.Module):
    """(N, 3, H, W) normalised RGB, H and W even -> (N, 1) logits of Lite0 on ``x - up(down(x))``."""

    def __init__(self, backbone_weights=None, pretrained_backbone: bool = False) -> None:
        super().__init__()
        self.backbone = create_timm(
            "tf_efficientnet_lite0", pretrained=pretrained_backbone, weights=backbone_weights, num_classes=1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(F.interpolate(x, scale_factor=0.5, mode="nearest"), size=x.shape[-2:], mode="nearest")
        return self.backbone(x - up)


def main() -> None:
    ap = source_parser(__doc__, celebdf=False)
    ap.add_argument("--backbone-weights", type=Path, required=True)
    ap.add_argument("--images", type=int, default=8000)
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    dd.register_detector(
        "npr-lite0",
        NPRLite0,
        config=dd.DetectorConfig("npr-lite0", input_size=224, mean=(0.5,) * 3, std=(0.5,) * 3),
        head=("backbone.classifier",),
        loss="bce",
    )
    train, holdout, _ = default_splits(args.dfdc, args.ffhq)
    select = selection_set(holdout)
    torch.manual_seed(0)
    base = load_detector("efficientnet-lite0").config
    det = load_detector("npr-lite0", backbone_weights=args.backbone_weights)
    det.config = det.config.replace(resize=base.resize, interpolation=base.interpolation)
    t = time.perf_counter()
    res = det.finetune(
        train,
        select,
        epochs=args.epochs,
        epoch_size=args.images // args.epochs,
        batch_size=32,
        lr=1e-3,
        synth_fakes=0.3,
        augment="crossdomain",
        seed=0,
        source_weights={"dfdc": 0.75, "ffhq": 0.25},
        progress=False,
    )
    print(
        json.dumps(
            {
                "minutes": round((time.perf_counter() - t) / 60, 1),
                "per_epoch": [
                    {"mean": h["val"]["auc_mean"], **{s: h["val_sources"][s]["auc"] for s in ("dfdc", "ffhq", "sbi")}}
                    for h in res.history
                ],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
