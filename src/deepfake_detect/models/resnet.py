"""The camp's ResNet-18 detectors."""

from __future__ import annotations

import os
from typing import cast

import torch
from torch import nn

from ._backbone import create_timm


def resnet18_baseline(
    *, pretrained_backbone: bool = False, backbone_weights: str | os.PathLike[str] | None = None
) -> nn.Module:
    """The camp baseline: timm ``resnet18`` with a 2-class head; P(fake) = softmax[:, 1]."""
    return create_timm("resnet18", pretrained=pretrained_backbone, weights=backbone_weights, num_classes=2)


class FineTuning_Resnet18(nn.Module):  # noqa: N801 - the seed's class name, kept for recognisability
    """ResNet-18 features, global max pooling and one logit (the camp's transfer-learning model).

    Parameter names match the camp notebook's class, so its ``state_dict`` loads as is.

    Input: (N, 3, H, W) normalised RGB. Output: (N, 1) logits; P(fake) = sigmoid.
    """

    def __init__(
        self,
        model_name: str = "resnet18",
        *,
        pretrained_backbone: bool = False,
        backbone_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.features_extractor = create_timm(
            model_name, pretrained=pretrained_backbone, weights=backbone_weights, num_classes=0, global_pool=""
        )
        self.maxpool = nn.AdaptiveMaxPool2d((1, 1))
        self.classifier = nn.Linear(cast(int, self.features_extractor.num_features), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features_extractor(x)  # (N, 512, H/32, W/32)
        return self.classifier(torch.flatten(self.maxpool(features), 1))
