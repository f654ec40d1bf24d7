"""Is the default's loss on tight crops learnable, or is the information gone? (issue 24, item 1)

Continues the shipped default for a short stage in which *every* training image is a tight
crop (0.4-0.6 of the side, centred as ``crossvideo`` centres its crops), the rest of the
``crossvideo`` augmentation unchanged, and selects on the same hold-out views as stage 5b.
If the hold-out ``dfdc@crop0.5`` and ``ffhq@crop0.5`` views of this specialist come close to
the whole-crop views, the gap is a training problem; if they stay near the default's, the
half-side crop has lost what the detector needs.

    python training/experiments/tight_crops.py --runs runs/ceil-crop --out runs/ceil-crop-out

(any further arguments go to ``scripts/train_default.py``).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_detect import augment

ROOT = Path(__file__).resolve().parents[2]


def tight_crop_augment(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A crop of 0.4-0.6 of the side, then ``crossvideo`` without its own crop."""
    side = float(rng.uniform(0.4, 0.6))
    center = (0.5 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.05, 0.1))
    img = augment.center_crop(img, side, center=center)
    return augment._cross_augment(
        img, rng, crop_p=0.0, side_in_area=False, min_side=0.4, down_shift=0.1, jpeg_min=30, h264_p=0.3
    )


def main() -> None:
    augment.PRESETS["tightcrop"] = tight_crop_augment  # this process only: the preset the run names
    data = ROOT.parent / "shared" / "data"
    sys.argv = [
        "train_default.py",
        "--dfdc", str(data / "dfdc-faces"),
        "--ffhq", str(data / "ffhq-stylegan"),
        "--celebdf", str(data / "celebdf-faces"),
        "--init", str(ROOT / "src/deepfake_detect/pretrained/efficientnet-lite0.dfdc_ffhq_sbi"),
        "--epochs", "2", "--epoch-size", "4000", "--input-size", "256", "--lr", "5e-5",
        "--synth-fakes", "0.5", "--swap-fakes", "0.3", "--augment", "tightcrop",
        "--crop-sides", "0.5", "--video-crfs", "37", "--face-swap-view",
        "--dfdc-weight", "0.6", "--celebdf-weight", "0.15", "--version", "tight-crop specialist",
        *sys.argv[1:],
    ]  # fmt: skip
    runpy.run_path(str(ROOT / "scripts" / "train_default.py"), run_name="__main__")


if __name__ == "__main__":
    main()
