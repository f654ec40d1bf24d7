"""Are the default's losses on tight crops and on H.264 learnable, or is the information gone?
(issue 24, item 1)

Continues the shipped default for a short stage in which *every* training image carries one
perturbation, and selects on the same hold-out views as stage 5b:

- ``crop``: a crop of 0.4-0.6 of the side (centred as ``crossvideo`` centres its crops), then
  the rest of ``crossvideo`` without its own crop;
- ``video``: ``crossvideo`` (crops included), then an H.264 round trip at CRF 30-42 in place
  of its own 30 % of CRF 18-42.

If the specialist's hold-out ``@crop0.5`` (or ``@crf37``) views come close to the clean views,
the default's gap is a training problem; if they stay near the default's, the perturbation
has removed what the detector needs.

    python training/experiments/specialists.py crop --runs runs/ceil-crop --out runs/ceil-crop-out
    python training/experiments/specialists.py video --runs runs/ceil-video --out runs/ceil-video-out

(any further arguments go to ``scripts/train_default.py``).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from deepfake_detect import augment
from deepfake_detect.video import reencode_h264

ROOT = Path(__file__).resolve().parents[2]


def tight_crop_augment(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A crop of 0.4-0.6 of the side, then ``crossvideo`` without its own crop."""
    side = float(rng.uniform(0.4, 0.6))
    center = (0.5 + rng.uniform(-0.05, 0.05), 0.5 + rng.uniform(-0.05, 0.1))
    img = augment.center_crop(img, side, center=center)
    return augment._cross_augment(img, rng, **{**augment._CROSSVIDEO, "crop_p": 0.0})


def heavy_video_augment(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """``crossvideo`` without its H.264 step, then always an H.264 round trip at CRF 30-42."""
    img = augment._cross_augment(img, rng, **{**augment._CROSSVIDEO, "h264_p": 0.0})
    return reencode_h264(img, int(rng.integers(30, 43)), preset=str(rng.choice(["medium", "veryfast"])))


SPECIALISTS = {"crop": tight_crop_augment, "video": heavy_video_augment}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in SPECIALISTS:
        sys.exit(f"usage: specialists.py {{{','.join(SPECIALISTS)}}} [train_default.py arguments]")
    kind = sys.argv[1]
    augment.PRESETS[kind] = SPECIALISTS[kind]  # this process only: the preset the run names
    data = ROOT.parent / "shared" / "data"
    sys.argv = [
        "train_default.py",
        "--dfdc", str(data / "dfdc-faces"),
        "--ffhq", str(data / "ffhq-stylegan"),
        "--celebdf", str(data / "celebdf-faces"),
        "--init", str(ROOT / "src/deepfake_detect/pretrained/efficientnet-lite0.dfdc_ffhq_sbi"),
        "--epochs", "2", "--epoch-size", "4000", "--input-size", "256", "--lr", "5e-5",
        "--synth-fakes", "0.5", "--swap-fakes", "0.3", "--augment", kind,
        "--crop-sides", "0.5", "--video-crfs", "37", "--face-swap-view",
        "--dfdc-weight", "0.6", "--celebdf-weight", "0.15", "--version", f"{kind} specialist",
        *sys.argv[2:],
    ]  # fmt: skip
    runpy.run_path(str(ROOT / "scripts" / "train_default.py"), run_name="__main__")


if __name__ == "__main__":
    main()
