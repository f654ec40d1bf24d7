"""A detector's AUC on the hold-out views the default's stages are judged by, for a rule's
baseline: dfdc, ffhq, sbi, their half-side and CRF 37 views, swaps among hold-out reals, and
Celeb-DF's hold-out (its one face-swap video and its reals).

    python training/rules/holdout_views.py [--split val] [DETECTOR ...]   # default: the built-in default

Several detectors are scored as one: the mean of their fake log-odds (``ensemble_of``);
``DEFAULT`` names the built-in default among them. ``--split val`` scores, once and after a
decision, the val views ``scripts/train_default.py`` reports instead (``crossdata.val_set``):
the dfdc and ffhq val splits, self-blends and face swaps of up to 300 val reals of each (seed
12345), and the two splits at half-side crops and H.264 CRF 37. ``--json FILE`` also writes every metric of every
view there (``Detector.evaluate``'s dict).

Run from the repository root with ../shared beside it.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from deepfake_detect import load_detector
from deepfake_detect.crossdata import default_splits, selection_set, val_set
from deepfake_detect.models import ensemble_of

ap = argparse.ArgumentParser()
ap.add_argument("detectors", nargs="*", default=["DEFAULT"])
ap.add_argument("--split", choices=("holdout", "val"), default="holdout")
ap.add_argument("--json", type=Path, help="write evaluate()'s full metrics here")
args = ap.parse_args()

data = "../shared/data"
_, holdout, val = default_splits(f"{data}/dfdc-faces", f"{data}/ffhq-stylegan", celebdf=f"{data}/celebdf-faces")
if args.split == "holdout":
    views = selection_set(
        holdout, seed=0, crop_sides=(0.5,), video_crfs=(37,), scored=("dfdc", "ffhq"), face_swaps=True
    )
    views["celebdf-holdout"] = holdout["celebdf"]
else:
    views = val_set(val, crop_sides=(0.5,), video_crfs=(37,), face_swaps=True)
seven = [k for k in views if k not in ("swap", "celebdf-holdout")]  # the seven views v6 was chosen on
members = [load_detector(None if n == "DEFAULT" else n, backend="torch") for n in args.detectors]
detector = members[0] if len(members) == 1 else ensemble_of(members)
metrics = detector.evaluate(views, progress=False)
if args.json:
    args.json.write_text(json.dumps(metrics, indent=1) + "\n")
auc = {k: m["auc"] for k, m in metrics.items() if isinstance(m, dict)}
auc["seven_view_mean"] = float(np.mean([auc[k] for k in seven]))
print(json.dumps({k: round(v, 4) for k, v in auc.items()}, indent=1))
