"""Does an ensemble of trained detectors beat its best member on data the members never saw?

Scores each member and ``ensemble_of(members)`` (equal weights, mean fake log-odds) on the
hold-out of *train* that ``scripts/train_default.py`` selects on (5 % of dfdc-faces' source
clips, 10 % of ffhq-stylegan, self-blended fakes of up to 150 of those reals per source),
never on val, and writes the table to docs/ensemble.md:

    python benchmarks/ensemble.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan \
        --members runs/default-v2-out runs/default-v3-out

Rule, fixed before the numbers: the ensemble replaces its best member only if its mean
hold-out AUC is higher by at least one standard error of that mean (about 0.017 here; see
docs/backbones.md), since it predicts more slowly by the number of members.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from _common import DOCS, git_rev, machine, predict_rate, table, write_doc  # run as a script: its folder is on sys.path

from deepfake_detect import load_detector
from deepfake_detect.crossdata import default_splits, selection_set
from deepfake_detect.models import ensemble_of

SELECT = ("dfdc", "ffhq", "sbi")
#: One standard error of the mean of the three hold-out AUCs (Hanley-McNeil, docs/backbones.md).
STANDARD_ERROR = 0.017


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dfdc", type=Path, required=True)
    ap.add_argument("--ffhq", type=Path, required=True)
    ap.add_argument("--members", type=Path, nargs="+", required=True, help="save_pretrained folders")
    ap.add_argument("--seed", type=int, default=0, help="the hold-out split's seed (train_default.py's --seed)")
    ap.add_argument("--out", type=Path, default=DOCS / "ensemble.md")
    args = ap.parse_args()

    _, holdout, _ = default_splits(args.dfdc, args.ffhq, seed=args.seed)
    select = selection_set(holdout, seed=args.seed)
    timing = [holdout["dfdc"].image(i) for i in range(min(256, len(holdout["dfdc"])))]

    members = [load_detector(m) for m in args.members]
    arms = [(str(m), d) for m, d in zip(args.members, members)] + [("ensemble of all", ensemble_of(members))]
    rows, means = [], {}
    for label, det in arms:
        metrics = det.evaluate(select)
        aucs = [metrics[s]["auc"] for s in SELECT]
        means[label] = float(np.mean(aucs))
        rows.append([label, *aucs, means[label], *(metrics[s]["tpr_at_fpr_1e-3"] for s in SELECT),
                     predict_rate(det, timing, repeats=1)])
    best_label = max(means, key=lambda k: means[k] if k != "ensemble of all" else -1)
    gain = means["ensemble of all"] - means[best_label]
    verdict = (f"adopt the ensemble (+{gain:.3f} over {best_label}, at least {STANDARD_ERROR})" if gain >= STANDARD_ERROR
               else f"keep {best_label} (the ensemble's {gain:+.3f} is under one standard error, {STANDARD_ERROR})")
    headers = ["detector", "hold-out dfdc AUC", "ffhq AUC", "sbi AUC", "mean AUC", "dfdc TPR@1e-3",
               "ffhq TPR@1e-3", "sbi TPR@1e-3", "predict img/s"]
    doc = f"""# Ensembles of trained detectors

`python benchmarks/ensemble.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan --members {' '.join(map(str, args.members))}`

Each member and `ensemble_of(members)` (equal weights, mean fake log-odds) scored on the
hold-out of *train* that `scripts/train_default.py` selects on: 5 % of dfdc-faces' source
clips ({len(holdout['dfdc'])} images), 10 % of ffhq-stylegan ({len(holdout['ffhq'])}), and one self-blended
fake of each of up to 150 of those real images per source ({len(select['sbi'])}). Val is not
touched. Predict: {len(timing)} decoded hold-out images, batch 32, `backend="auto"`.

{table(headers, rows)}

Rule, fixed before the run: the ensemble replaces its best member only if its mean hold-out
AUC is higher by at least one standard error ({STANDARD_ERROR}), since it predicts more
slowly. Verdict: **{verdict}**.

Machine: {machine()}. Commit {git_rev()}.
"""
    print(write_doc(args.out, doc))


if __name__ == "__main__":
    main()
