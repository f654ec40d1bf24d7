"""Predict speed of v7 averaged with a second EfficientNet-Lite0 against v7 alone
(`efficientnet-lite0.dfdc_ffhq_sbi`, the same graph and input size as v4), side by side in one
run (training/rules/lineage2.md: the bar is 0.5x v4's). Written while v7 was the default, to
time v7 + lineage 2 stage 3b (v8); the default is such a pair now, so this is the quick check
and docs/benchmarks.md the full one.

    python training/experiments/pair_speed.py [N_IMAGES [SECOND_MEMBER]]

SECOND_MEMBER: a detector folder or name, by default ``training/checkpoints/lineage2-stage4``
(v9's second member; stage 3b's folder is in git history, e.g. commit 89a76f3).

Run from the repository root with ../shared beside it. ``Detector.predict`` on the first N
ffhq-stylegan val images (default 256), batch 32, no progress bar, after one warm-up call
(graph export and compile), best of 3, for ``backend="auto"`` and ``backend="torch"``.
"""

import sys
import time
from pathlib import Path

from deepfake_detect import load_detector
from deepfake_detect.models import ensemble_of

if {"-h", "--help"} & set(sys.argv[1:]):  # a one-off script without options: say what it does
    sys.exit(print(__doc__))

n = int(sys.argv[1]) if len(sys.argv) > 1 else 256
second = sys.argv[2] if len(sys.argv) > 2 else "training/checkpoints/lineage2-stage4"
images = sorted(Path("../shared/data/ffhq-stylegan/val").glob("*"))[:n]


def best_rate(detector, backend: str) -> float:
    detector.predict(images[:64], backend=backend, batch_size=32, progress=False)  # warm-up
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        detector.predict(images, backend=backend, batch_size=32, progress=False)
        best = min(best, time.perf_counter() - t0)
    return len(images) / best


v7 = load_detector("efficientnet-lite0.dfdc_ffhq_sbi")
pair = ensemble_of([v7, load_detector(second)])
for backend in ("auto", "torch"):
    a, b = best_rate(v7, backend), best_rate(pair, backend)
    print(f"{backend}: v7 {a:.1f} img/s, v7 + {second} {b:.1f} img/s, ratio {b / a:.2f}")
