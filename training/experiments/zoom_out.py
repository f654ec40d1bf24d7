"""Is the default's loss on half-side crops about scale or about content? (issue 24, item 1)

On the hold-out of train (dfdc-faces and ffhq-stylegan, as the default's stages select on),
the central half-side box of each face (``augment.center_crop``'s box) is shown to the
detector in several ways:

- ``resized``: resized back to the whole image (the ``@crop0.5`` view: the face twice as big);
- ``pad-<fill>``: kept at its own scale, where it was, with the rest of the image replaced by
  ``black``, ``grey`` (128), ``edge`` (the box's border pixels repeated) or ``blur`` (the
  resized view under a Gaussian blur of radius 8): the face at the scale it was trained at,
  without the context outside the box;
- ``whole``: the image as given.

If a padded view scores close to ``whole``, what the detector lacks on tight crops is its
training scale, and a predict-time zoom-out (a face-scale estimate from landmarks) would
recover it; if it scores like ``resized``, the lost border held the evidence.

It also says where a face swap changed the image: over real/fake pairs of dfdc-faces *train*
(``sources.csv``: the fake's source video is the real one; the crops are of the same frame),
the share of the per-pixel difference (mean over channels, above 12 levels) that lies inside
the central half-side box.

    python training/experiments/zoom_out.py [DETECTOR]
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from deepfake_detect import load_detector
from deepfake_detect.augment import _center_box, center_crop
from deepfake_detect.crossdata import default_splits, two_class_sources
from deepfake_detect.data.images import load_image
from deepfake_detect.metrics import roc_auc

if {"-h", "--help"} & set(sys.argv[1:]):  # a one-off script without options: say what it does
    sys.exit(print(__doc__))

SIDE = 0.5
CENTER = (0.5, 0.55)


def padded(img: Image.Image, fill: str) -> Image.Image:
    b = _center_box(img.size, SIDE, CENTER)
    inner = img.crop(b)
    if fill == "blur":
        canvas = center_crop(img, SIDE).filter(ImageFilter.GaussianBlur(8))
    elif fill == "edge":
        a = np.asarray(inner)
        pads = ((b[1], img.height - b[3]), (b[0], img.width - b[2]), (0, 0))
        canvas = Image.fromarray(np.pad(a, pads, mode="edge"))
    else:
        canvas = Image.new("RGB", img.size, (0, 0, 0) if fill == "black" else (128, 128, 128))
    canvas.paste(inner, b[:2])
    return canvas


def difference_inside_box(dfdc: Path, pairs: int = 80, size: int = 256) -> list[float]:
    """For the first ``pairs`` real/fake pairs of dfdc-faces train, the share of the real-fake
    pixel difference inside the central half-side box."""
    with open(dfdc / "sources.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    real = {r["source_video"]: r["img_name"] for r in rows if r["target"] == "0"}
    found = [(real[r["source_video"]], r["img_name"]) for r in rows if r["target"] == "1" and r["source_video"] in real]
    x0, y0, x1, y1 = _center_box((size, size), SIDE, CENTER)
    shares = []
    for a, b in found[:pairs]:
        ims = [np.asarray(load_image(dfdc / "train" / n).convert("RGB").resize((size, size)), float) for n in (a, b)]
        diff = np.abs(ims[0] - ims[1]).mean(-1)
        diff[diff <= 12] = 0
        if diff.sum() > 0:
            shares.append(float(diff[y0:y1, x0:x1].sum() / diff.sum()))
    return shares


def main() -> None:
    root = Path(__file__).resolve().parents[2]
    data = root.parent / "shared" / "data"
    _, holdout, _ = default_splits(data / "dfdc-faces", data / "ffhq-stylegan", seed=0, celebdf=data / "celebdf-faces")
    detector = load_detector(sys.argv[1] if len(sys.argv) > 1 else None, backend="torch")
    views = {
        "whole": lambda im: im,
        "resized": lambda im: center_crop(im, SIDE, center=CENTER),
        **{f"pad-{f}": (lambda im, f=f: padded(im, f)) for f in ("black", "grey", "edge", "blur")},
    }
    out: dict[str, dict[str, float]] = {}
    for name, part in two_class_sources(holdout).items():
        if name not in ("dfdc", "ffhq"):
            continue
        images = [load_image(part.image(i)).convert("RGB") for i in range(len(part))]
        out[name] = {
            view: round(roc_auc(part.labels, detector.predict([f(im) for im in images], progress=False)), 4)
            for view, f in views.items()
        }
        print(name, len(images), out[name], flush=True)
    shares = difference_inside_box(data / "dfdc-faces")
    q25, q50, q75 = np.percentile(shares, [25, 50, 75])
    out["difference_inside_half_box"] = {"pairs": len(shares), "q25": q25, "median": q50, "q75": q75}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
