"""A detector's AUC on the hold-out views the default's stages are judged by, for a rule's
baseline: dfdc, ffhq, sbi, their half-side and CRF 37 views, swaps among hold-out reals, and
Celeb-DF's hold-out (its one face-swap video and its reals).

    python training/rules/holdout_views.py [DETECTOR ...]   # default: the built-in default

Several detectors are scored as one: the mean of their fake log-odds (``ensemble_of``);
``DEFAULT`` names the built-in default among them.

Run from the repository root with ../shared beside it.
"""

import json
import sys

import numpy as np

from deepfake_detect import load_detector
from deepfake_detect.crossdata import default_splits, selection_set
from deepfake_detect.models import ensemble_of

data = "../shared/data"
_, holdout, _ = default_splits(f"{data}/dfdc-faces", f"{data}/ffhq-stylegan", celebdf=f"{data}/celebdf-faces")
views = selection_set(holdout, seed=0, crop_sides=(0.5,), video_crfs=(37,), scored=("dfdc", "ffhq"), face_swaps=True)
seven = [k for k in views if k != "swap"]  # the seven views v6 was chosen on
views["celebdf-holdout"] = holdout["celebdf"]
names = sys.argv[1:] or ["DEFAULT"]
members = [load_detector(None if n == "DEFAULT" else n, backend="torch") for n in names]
detector = members[0] if len(members) == 1 else ensemble_of(members)
auc = {k: m["auc"] for k, m in detector.evaluate(views, progress=False).items() if isinstance(m, dict)}
auc["seven_view_mean"] = float(np.mean([auc[k] for k in seven]))
print(json.dumps({k: round(v, 4) for k, v in auc.items()}, indent=1))
