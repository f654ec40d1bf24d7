"""Shared fixtures: small generated images; nothing from the network or outside the repo."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the suite never needs the network
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# exported graphs go to a throw-away cache, never the user's (whose graphs would also change
# what backend="auto" picks); subprocesses of the CLI tests inherit it
_GRAPH_CACHE = tempfile.mkdtemp(prefix="deepfake-detect-test-cache-")
os.environ["DEEPFAKE_DETECT_CACHE"] = _GRAPH_CACHE
atexit.register(shutil.rmtree, _GRAPH_CACHE, True)


def face_like(seed: int, size: int = 64, fake: bool = False) -> Image.Image:
    """A small synthetic 'face': skin-toned ellipse, eyes, mouth on a random background.

    ``fake=True`` adds a periodic stripe pattern (period 8 px, survives downscaling to 32 px)
    and a blue cast: an easy artefact to learn."""
    rng = np.random.default_rng(seed)
    bg = tuple(int(v) for v in rng.integers(0, 255, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    skin = tuple(int(v) for v in rng.integers([150, 100, 80], [255, 200, 170]))
    m = size // 8
    d.ellipse([m + int(rng.integers(-2, 3)), m, size - m, size - m // 2], fill=skin)
    for ex in (0.38, 0.62):
        d.ellipse(
            [int(size * ex) - 3, int(size * 0.42) - 2, int(size * ex) + 3, int(size * 0.42) + 2], fill=(30, 30, 30)
        )
    d.line([int(size * 0.4), int(size * 0.7), int(size * 0.6), int(size * 0.7)], fill=(120, 30, 30), width=2)
    arr = np.asarray(img).astype(np.int16)
    arr += rng.integers(-8, 9, arr.shape, dtype=np.int16)
    if fake:
        yy, _ = np.mgrid[0:size, 0:size]
        arr += (((yy // 4) % 2) * 30 - 15)[..., None].astype(np.int16)
        arr[..., 2] += 20
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


@pytest.fixture
def one_thread():
    """Tiny tensors on a shared 2-core machine run far faster on one thread than contending for two."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder with real/ and fake/ subfolders of 8 JPEGs each (64x64)."""
    root = tmp_path / "data"
    for label, sub in ((0, "real"), (1, "fake")):
        (root / sub).mkdir(parents=True)
        for i in range(8):
            face_like(100 * label + i, fake=bool(label)).save(root / sub / f"{sub}_{i:02d}.png")
    return root


@pytest.fixture
def jpeg_files(tmp_path: Path) -> list[Path]:
    out = []
    for i in range(5):
        p = tmp_path / f"img_{i}.jpg"
        face_like(i, size=96).save(p, quality=90)
        out.append(p)
    return out


# -- a tiny detector for fast training tests -------------------------------------------
from torch import nn  # noqa: E402

import deepfake_detect as dd  # noqa: E402

TINY = "test-tiny"


class TinyNet(nn.Module):
    """Conv-BN-ReLU x2 and a linear head: a few hundred parameters, 32x32 input."""

    def __init__(self, outputs: int = 1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(8, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


if TINY not in dd.list_detectors():
    dd.register_detector(
        TINY,
        lambda **kw: TinyNet(**kw),
        config=dd.DetectorConfig(TINY, input_size=32),
        head=("head",),
        description="test net",
    )
