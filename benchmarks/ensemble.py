"""Does an ensemble of trained detectors beat its best member on data the members never saw?

Scores each member and ``ensemble_of(members)`` (equal weights, mean fake log-odds) on the
hold-out of *train* that ``scripts/train_default.py`` selects on (5 % of dfdc-faces' source
clips, 10 % of ffhq-stylegan, self-blended fakes of up to 150 of those reals per source),
never on val, and writes the table to docs/ensemble.md:

    python benchmarks/ensemble.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan \
        --members runs/default-v2-out runs/default-v3-out

When the members share one architecture (checkpoints of one training lineage), the uniform
average of their weights (a "model soup", Wortsman et al., ICML 2022) is scored too: one
model, so it predicts at a single member's speed.

Rules, fixed before the numbers: the ensemble replaces its best member only if its mean
hold-out AUC is higher by at least one standard error of that mean (about 0.017 here; see
docs/backbones.md), since it predicts more slowly by the number of members; the weight
average only if it is higher by at least 0.010 (the bar the default's training stages meet).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from _common import (  # run as a script: its folder is on sys.path
    DOCS,
    git_rev,
    machine,
    predict_rate,
    source_parser,
    table,
    write_doc,
)

from deepfake_detect import Detector, load_detector
from deepfake_detect.crossdata import default_splits, selection_set
from deepfake_detect.models import ensemble_of

SELECT = ("dfdc", "ffhq", "sbi")
#: One standard error of the mean of the three hold-out AUCs (Hanley-McNeil, docs/backbones.md).
STANDARD_ERROR = 0.017
#: What a weight average must add to its best member's mean hold-out AUC to replace it.
SOUP_BAR = 0.010


def weight_average(members: Sequence[Detector]) -> Detector | None:
    """A copy of the first member holding the uniform average of all members' floating-point
    weights (integer buffers, such as batch-norm counters, are the first member's), or None
    when the members differ in architecture or parameter shapes."""
    first = members[0]
    states = [{k: v.float() for k, v in m.model.state_dict().items()} for m in members]
    if len({m.config.architecture for m in members}) > 1 or any(
        s.keys() != states[0].keys() or any(s[k].shape != states[0][k].shape for k in s) for s in states
    ):
        return None
    soup = copy.deepcopy(first)
    averaged = {
        k: (sum(s[k] for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
        for k, v in first.model.state_dict().items()
    }
    soup.model.load_state_dict(averaged)
    return soup


def main() -> None:
    ap = source_parser(__doc__, celebdf=False)
    ap.add_argument("--members", type=Path, nargs="+", required=True, help="save_pretrained folders")
    ap.add_argument("--seed", type=int, default=0, help="the hold-out split's seed (train_default.py's --seed)")
    ap.add_argument("--out", type=Path, default=DOCS / "ensemble.md")
    args = ap.parse_args()

    _, holdout, _ = default_splits(args.dfdc, args.ffhq, seed=args.seed)
    select = selection_set(holdout, seed=args.seed)
    timing = [holdout["dfdc"].image(i) for i in range(min(256, len(holdout["dfdc"])))]

    members = [load_detector(m) for m in args.members]
    arms = [(str(m), d) for m, d in zip(args.members, members, strict=True)] + [
        ("ensemble of all", ensemble_of(members))
    ]
    soup = weight_average(members) if len(members) > 1 else None
    if soup is not None:
        arms.append(("weight average of all", soup))
    rows, means = [], {}
    for label, det in arms:
        metrics = det.evaluate(select)
        aucs = [metrics[s]["auc"] for s in SELECT]
        means[label] = float(np.mean(aucs))
        rows.append(
            [
                label,
                *aucs,
                means[label],
                *(metrics[s]["tpr_at_fpr_1e-3"] for s in SELECT),
                predict_rate(det, timing, repeats=1),
            ]
        )
    combined = ("ensemble of all", "weight average of all")
    best_label = max((k for k in means if k not in combined), key=lambda k: means[k])
    gain = means["ensemble of all"] - means[best_label]
    verdict = (
        f"adopt the ensemble (+{gain:.3f} over {best_label}, at least {STANDARD_ERROR})"
        if gain >= STANDARD_ERROR
        else f"keep {best_label} (the ensemble's {gain:+.3f} is under one standard error, {STANDARD_ERROR})"
    )
    if soup is not None:
        soup_gain = means["weight average of all"] - means[best_label]
        verdict += f"; the weight average adds {soup_gain:+.3f} over {best_label} " + (
            "(at least the bar: adopt it)" if soup_gain >= SOUP_BAR else f"(under the {SOUP_BAR:.3f} bar: not adopted)"
        )
    headers = [
        "detector",
        "hold-out dfdc AUC",
        "ffhq AUC",
        "sbi AUC",
        "mean AUC",
        "dfdc TPR@1e-3",
        "ffhq TPR@1e-3",
        "sbi TPR@1e-3",
        "predict img/s",
    ]
    doc = f"""# Ensembles of trained detectors

`python benchmarks/ensemble.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan --members {" ".join(map(str, args.members))}`

Each member, `ensemble_of(members)` (equal weights, mean fake log-odds) and, when the members
share an architecture, the uniform average of their weights, scored on the
hold-out of *train* that `scripts/train_default.py` selects on: 5 % of dfdc-faces' source
clips ({len(holdout["dfdc"])} images), 10 % of ffhq-stylegan ({len(holdout["ffhq"])}), and one self-blended
fake of each of up to 150 of those real images per source ({len(select["sbi"])}). Val is not
touched. Predict: {len(timing)} decoded hold-out images, batch 32, `backend="auto"`.

{table(headers, rows)}

Rules, fixed before the run: the ensemble replaces its best member only if its mean hold-out
AUC is higher by at least one standard error ({STANDARD_ERROR}), since it predicts more
slowly; the weight average (one model, a member's speed) only if it is higher by at least
{SOUP_BAR:.3f}. Verdict: **{verdict}**.

Machine: {machine()}. Commit {git_rev()}.
"""
    print(write_doc(args.out, doc))


if __name__ == "__main__":
    main()
