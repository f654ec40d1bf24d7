"""``AEClassifier``: reconstruction + classification on a Swin-tiny encoder (after RECCE,
Cao et al., CVPR 2022, as adapted in the camp notes).

The encoder's 7x7 map is decoded back to the image; decoder features are fused with the
encoder map, re-weighted by a second Swin-tiny run on the residual ``x - x_hat``, pooled
(max and mean) and classified by one logit. Attribute names (including the seed's
spelling ``classfier``) match the camp notebook so its checkpoints load.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ._backbone import create_timm

SWIN_TINY = "swin_tiny_patch4_window7_224"


class DecoderBlock(nn.Module):
    """2x up-sampling (transposed conv) then Conv3x3-BN-GELU: (N, C_in, H, W) -> (N, C_out, 2H, 2W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.upsample = nn.ConvTranspose2d(in_channels, in_channels, 2, 2)
        self.block = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, 1, 1), nn.BatchNorm2d(out_channels), nn.GELU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.upsample(x))


class Decoder(nn.Module):
    """(N, 768, 7, 7) -> features at 14, 28, 56 px and the (N, 3, 224, 224) reconstruction."""

    def __init__(self) -> None:
        super().__init__()
        self.decoder1 = DecoderBlock(768, 384)
        self.decoder2 = DecoderBlock(384, 192)
        self.decoder3 = DecoderBlock(192, 96)
        self.decoder4 = DecoderBlock(96, 64)
        self.decoder5 = DecoderBlock(64, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x1 = self.decoder1(x)
        x2 = self.decoder2(x1)
        x3 = self.decoder3(x2)
        return x1, x2, x3, self.decoder5(self.decoder4(x3))


class MultiScaleFeatureFusion(nn.Module):
    """Brings decoder features (384@14, 192@28, 96@56) to 7x7, concatenates them to 768
    channels and gates them with the encoder map."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.MaxPool2d(2, 2))
        self.conv2 = nn.Sequential(nn.Conv2d(192, 192, 3, 2, 1), nn.BatchNorm2d(192), nn.GELU(), nn.MaxPool2d(2, 2))
        self.conv3 = nn.Sequential(
            nn.Conv2d(96, 192, 3, 2, 1),
            nn.BatchNorm2d(192),
            nn.GELU(),
            nn.Conv2d(192, 192, 3, 2, 1),
            nn.BatchNorm2d(192),
            nn.GELU(),
            nn.MaxPool2d(2, 2),
        )

    def forward(
        self, encoder_out: torch.Tensor, decoder_1: torch.Tensor, decoder_2: torch.Tensor, decoder_3: torch.Tensor
    ) -> torch.Tensor:
        fused = torch.cat([self.conv1(decoder_1), self.conv2(decoder_2), self.conv3(decoder_3)], dim=1)
        return fused * encoder_out


class AEClassifier(nn.Module):
    """Swin-tiny reconstruction + classification detector, 62,565,630 parameters.

    Input: (N, 3, 224, 224) normalised RGB.
    Output: ``(logits (N, 1), x_hat (N, 3, 224, 224))``; P(fake) = sigmoid(logits).
    """

    def __init__(
        self, *, pretrained_backbone: bool = False, backbone_weights: str | os.PathLike[str] | None = None
    ) -> None:
        super().__init__()
        swin: dict[str, Any] = dict(
            pretrained=pretrained_backbone, weights=backbone_weights, num_classes=0, global_pool=""
        )
        self.encoder = create_timm(SWIN_TINY, **swin)
        self.decoder = Decoder()
        self.mff = MultiScaleFeatureFusion()
        self.reduce_encoder = create_timm(SWIN_TINY, **swin)
        self.maxpool = nn.AdaptiveMaxPool2d((1, 1))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classfier = nn.Linear(768 + 768, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoder_out = self.encoder(x).permute(0, 3, 1, 2)  # Swin gives NHWC: (N, 7, 7, 768)
        decoder_1, decoder_2, decoder_3, x_hat = self.decoder(encoder_out)
        residual = self.reduce_encoder(x - x_hat).permute(0, 3, 1, 2)
        fused = self.mff(encoder_out, decoder_1, decoder_2, decoder_3)
        fused = fused * residual + fused
        pooled = torch.cat([self.maxpool(fused), self.avgpool(fused)], dim=1).flatten(1)
        return self.classfier(pooled), x_hat
