"""Two val figures docs/detectors.md quotes for v6 and v7 that the stage's own scoring did not give.

1. The share of dfdc-faces and ffhq-stylegan val fakes and reals each detector labels `fake`, and
   `fake` or `suspicious`, at its own operating points (whole crops).
2. AUC on the val swap view that scripts/train_default.py scored v7 on (face swaps among up to 300
   dfdc + 150 ffhq val reals, seed 12345), which v6's training never scored.

Run from the repository root, after the stages (val is read, never trained or selected on):

    python training/compare_v6_v7.py v6=runs/v6-shipped v7=runs/v7b-cal
"""

import sys

import numpy as np

from deepfake_detect import load_detector
from deepfake_detect.crossdata import default_splits, face_swap_set, two_class_sources

if {"-h", "--help"} & set(sys.argv[1:]):  # a one-off script without options: say what it does
    sys.exit(print(__doc__))

DATA = "../shared/data"

_, _, val = default_splits(f"{DATA}/dfdc-faces", f"{DATA}/ffhq-stylegan", celebdf=f"{DATA}/celebdf-faces")
scored = {k: v for k, v in two_class_sources(val).items() if k in ("dfdc", "ffhq")}
swaps = {"swap": face_swap_set(scored, per_source=300, seed=12345)}
for spec in sys.argv[1:]:
    name, _, source = spec.partition("=")
    det = load_detector(source, backend="torch")
    strict, sensitive = det.config.threshold, det.config.suspicious_threshold
    for key, split in scored.items():
        p = det.predict([split.image(i) for i in range(len(split))], progress=False)
        fake, real = p[np.asarray(split.labels) == 1], p[np.asarray(split.labels) == 0]
        print(
            f"{name} {key}: fakes labelled fake {(fake >= strict).mean():.3f}, fake or suspicious "
            f"{(fake >= sensitive).mean():.3f}; reals labelled fake {(real >= strict).mean():.3f}, "
            f"fake or suspicious {(real >= sensitive).mean():.3f}",
            flush=True,
        )
    r = det.evaluate(swaps, progress=False)["swap"]
    print(f"{name} swap view: AUC {r['auc']:.4f}, TPR@1e-3 {r['tpr_at_fpr_1e-3']:.4f}, n {r['n']}", flush=True)
