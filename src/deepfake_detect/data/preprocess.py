"""The detector's preprocessing: resize to the input size as uint8, normalise at the last moment."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import DetectorConfig
from ..errors import ImageLoadError
from .images import MAX_IMAGE_PIXELS, describe, load_image

__all__ = ["Preprocessor"]

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


class Preprocessor:
    """Turns inputs into the tensor a detector's model expects.

    ``prepare(item)`` gives one image at the input size: an (H, W, 3) uint8 array for
    files, PIL images and numpy arrays, or a (3, H, W) float tensor in [0, 1] for tensor
    inputs (kept in float so no precision is lost). ``to_tensor(items)`` stacks them into
    an (N, 3, H, W) float32 batch normalised with the config's mean/std, in channels_last
    memory format.

    ``draft=True`` lets Pillow decode JPEGs at least twice the input size at a reduced DCT
    scale before the resize: several times faster on large photos, but the pixels (and so
    the scores) differ slightly from a full decode. Off by default.
    """

    def __init__(self, config: DetectorConfig, *, max_pixels: int | None = MAX_IMAGE_PIXELS, draft: bool = False) -> None:
        self.config = config
        self.height, self.width = config.input_size
        self.resample = _RESAMPLE[config.interpolation]
        self.max_pixels = max_pixels
        self.draft = draft
        self._mean = torch.tensor(config.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(config.std, dtype=torch.float32).view(1, 3, 1, 1)

    # -- one image -------------------------------------------------------------------
    def prepare(self, item: Any) -> np.ndarray | torch.Tensor:
        if isinstance(item, torch.Tensor):
            return self._prepare_tensor(item)
        draft = self._draft_size() if self.draft else None
        img = load_image(item, draft_size=draft, max_pixels=self.max_pixels)
        return np.array(self.resize(img), dtype=np.uint8)

    def resize(self, img: Image.Image) -> Image.Image:
        """Resize an RGB image by the config's policy to exactly ``input_size``."""
        h, w = self.height, self.width
        if self.config.resize == "squash":
            return img if img.size == (w, h) else img.resize((w, h), self.resample)
        scale = max(h, w) / self.config.crop_pct / min(img.size)
        new = (max(w, round(img.size[0] * scale)), max(h, round(img.size[1] * scale)))
        if img.size != new:
            img = img.resize(new, self.resample)
        left, top = (new[0] - w) // 2, (new[1] - h) // 2
        return img.crop((left, top, left + w, top + h))

    def _draft_size(self) -> tuple[int, int]:
        if self.config.resize == "squash":
            return (self.width, self.height)
        side = int(max(self.height, self.width) / self.config.crop_pct) + 1
        return (side, side)

    def _prepare_tensor(self, t: torch.Tensor) -> torch.Tensor:
        if t.ndim != 3 or t.shape[0] != 3 or not t.is_floating_point():
            raise ImageLoadError(describe(t), "tensor images must be float (3, H, W) RGB in [0, 1]")
        t = t.detach().to("cpu", torch.float32)
        if not torch.isfinite(t).all():
            raise ImageLoadError(describe(t), "tensor holds NaN or infinite values")
        if tuple(t.shape[1:]) == (self.height, self.width):
            return t
        if self.config.resize == "squash":
            return F.interpolate(t[None], size=(self.height, self.width), mode="bilinear",
                                 antialias=True, align_corners=False)[0]
        h, w = t.shape[1:]
        scale = max(self.height, self.width) / self.config.crop_pct / min(h, w)
        nh, nw = max(self.height, round(h * scale)), max(self.width, round(w * scale))
        t = F.interpolate(t[None], size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)[0]
        top, left = (nh - self.height) // 2, (nw - self.width) // 2
        return t[:, top:top + self.height, left:left + self.width]

    # -- a batch ---------------------------------------------------------------------
    def to_tensor(self, items: list[np.ndarray | torch.Tensor]) -> torch.Tensor:
        """Stack prepared images into a normalised (N, 3, H, W) float32 channels_last batch."""
        if all(isinstance(x, np.ndarray) for x in items):
            batch = torch.from_numpy(np.stack(items)).permute(0, 3, 1, 2).float().div_(255.0)
        else:
            batch = torch.stack([
                torch.from_numpy(x).permute(2, 0, 1).float().div_(255.0) if isinstance(x, np.ndarray) else x
                for x in items
            ])
        return self.normalize(batch)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] -> normalised, channels_last."""
        # sub then div, as torchvision's Normalize does, so scores match the camp loop bit for bit
        batch = batch.contiguous(memory_format=torch.channels_last)
        return batch.sub(self._mean.to(batch.device)).div_(self._std.to(batch.device))
