"""Built-in architectures. Importing this module registers them in :mod:`deepfake_detect.registry`
(the package's ``__init__`` does), with the shipped weights and the ``"timm:<name>"`` prefix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from ..config import IMAGENET_MEAN, IMAGENET_STD, DetectorConfig
from ..losses import AELoss
from ..registry import TIMM_PREFIX, register_detector, register_prefix, register_weights
from ._backbone import create_timm, timm_entry
from .ensemble import Ensemble, ensemble_of
from .recce import AEClassifier
from .resnet import FineTuning_Resnet18, resnet18_baseline

__all__ = [
    "AEClassifier",
    "AELoss",
    "Ensemble",
    "FineTuning_Resnet18",
    "ensemble_of",
    "resnet18_baseline",
    "PRETRAINED_DIR",
]

#: Weights shipped inside the package, one save_pretrained folder per ``<architecture>.<tag>``.
PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


@register_detector(
    "resnet18-baseline",
    config=DetectorConfig(
        "resnet18-baseline", input_size=(256, 256), mean=IMAGENET_MEAN, std=IMAGENET_STD, output="softmax"
    ),
    head=("fc",),
    loss="cross_entropy",
    description="camp baseline: timm resnet18, 2-class head, 256x256",
)
def _resnet18_baseline(**kwargs: Any) -> nn.Module:
    return resnet18_baseline(**kwargs)


@register_detector(
    "resnet18-finetune",
    config=DetectorConfig("resnet18-finetune", input_size=(224, 224), output="sigmoid"),
    head=("classifier",),
    freeze_backbone=True,
    loss="bce",
    description="FineTuning_Resnet18: frozen resnet18 features, max pool, Linear(512, 1)",
)
def _resnet18_finetune(**kwargs: Any) -> nn.Module:
    return FineTuning_Resnet18(**kwargs)


@register_detector(
    "ae-classifier",
    config=DetectorConfig("ae-classifier", input_size=(224, 224), output="sigmoid"),
    head=("decoder", "mff", "classfier"),
    loss="ae",
    outputs=("logits", "reconstruction"),
    description="AEClassifier: Swin-tiny reconstruction + classification (after RECCE)",
)
def _ae_classifier(**kwargs: Any) -> nn.Module:
    return AEClassifier(**kwargs)


@register_detector(
    "efficientnet-lite0",
    config=DetectorConfig("efficientnet-lite0", input_size=(256, 256), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    head=("classifier",),
    loss="bce",
    description="timm tf_efficientnet_lite0, one logit, 256x256 (each member of the built-in default)",
)
def _efficientnet_lite0(
    *, pretrained_backbone: bool = False, backbone_weights: str | os.PathLike[str] | None = None, **kwargs: Any
) -> nn.Module:
    kwargs.setdefault("num_classes", 1)
    return create_timm("tf_efficientnet_lite0", pretrained=pretrained_backbone, weights=backbone_weights, **kwargs)


@register_detector(
    "ensemble",
    config=DetectorConfig("ensemble", input_size=(224, 224), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    loss="bce",
    description="the mean fake log-odds of registered architectures that share one preprocessing (ensemble_of)",
)
def _ensemble(**kwargs: Any) -> nn.Module:
    return Ensemble(**kwargs)


register_prefix(TIMM_PREFIX, timm_entry)

register_weights(
    "ensemble",
    "dfdc_ffhq_sbi",
    PRETRAINED_DIR / "ensemble.dfdc_ffhq_sbi",
    license="research-only (DFDC and Celeb-DF terms, FFHQ CC BY-NC-SA 4.0)",
    description="the built-in default (v9): two EfficientNet-Lite0 averaged, trained on dfdc-faces, ffhq-stylegan, "
    "celebdf-faces reals, self-blends and face swaps, crops down to 0.4 of the side, H.264 frames (its config.json)",
    default=True,
)
register_weights(
    "efficientnet-lite0",
    "dfdc_ffhq_sbi",
    PRETRAINED_DIR / "efficientnet-lite0.dfdc_ffhq_sbi",
    license="research-only (DFDC and Celeb-DF terms, FFHQ CC BY-NC-SA 4.0)",
    description="default v7, the first member of the default alone: about 1.7x as fast, lower AUC on every val set "
    "(metrics and recipe in its config.json)",
)
