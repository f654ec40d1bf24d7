"""Plot the hold-out curves of training runs on one chart (PNG, Pillow only).

The x-axis counts epochs from the lineage's first run.

Each run is a ``Detector.finetune(output_dir=...)`` folder holding ``history.jsonl``. A run
that continued another (``train_default.py --init``) is shifted right by the epochs it
started from, so a lineage reads as one curve:

    python scripts/plot_training.py --out docs/images/default_holdout.png \
        "stage 1 (v3)=runs/default-v3" "stage 2 (v4)=runs/default-v4@22" \
        "stage 3=runs/default-v5@34" "stage 3b, 288x288=runs/default-v6@34" \
        --level "adoption bar after v4=0.94147"

``LABEL=RUN_DIR[@START]``: START epochs are added to the run's own epoch numbers. The
y-axis is the mean of the per-source hold-out AUCs (``--metric auc_mean``) or any other key
of the history's ``val`` record (``auc``, ``tpr_at_fpr_1e-3``, ``logloss``, ...).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepfake_detect.errors import DataError
from deepfake_detect.plotting import plot_curves


def read_curve(run: Path, metric: str) -> tuple[list[int], list[float]]:
    """``(epochs, values)`` of ``metric`` in ``run/history.jsonl``'s ``val`` records."""
    path = run / "history.jsonl"
    epochs, values = [], []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if metric not in record.get("val", {}):
            raise DataError(f"{path} line {n}: no val[{metric!r}] (keys: {sorted(record.get('val', {}))})")
        epochs.append(int(record["epoch"]))
        values.append(float(record["val"][metric]))
    return epochs, values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR[@START]")
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    ap.add_argument("--metric", default="auc_mean")
    ap.add_argument("--title", default="hold-out of train, per epoch")
    ap.add_argument(
        "--level",
        action="append",
        default=[],
        metavar="LABEL=Y",
        help="a horizontal line across the chart, e.g. an adoption bar (repeatable)",
    )
    args = ap.parse_args()
    series = {}
    for spec in args.runs:
        label, sep, where = spec.partition("=")
        if not sep:
            ap.error(f"{spec!r}: expected LABEL=RUN_DIR[@START]")
        run, _, start = where.partition("@")
        try:
            epochs, values = read_curve(Path(run), args.metric)
        except DataError as e:
            ap.error(str(e))
        series[label] = ([e + int(start or 0) for e in epochs], values)
    x0 = min(min(xs) for xs, _ in series.values())
    x1 = max(max(xs) for xs, _ in series.values())
    for spec in args.level:
        label, sep, y = spec.partition("=")
        if not sep:
            ap.error(f"--level {spec!r}: expected LABEL=Y")
        series[label] = ([x0, x1], [float(y)] * 2)
    ylabel = "hold-out mean AUC (dfdc, ffhq, sbi)" if args.metric == "auc_mean" else f"hold-out {args.metric}"
    print(plot_curves(series, args.out, xlabel="epoch", ylabel=ylabel, title=args.title, markers=True, size=(640, 420)))


if __name__ == "__main__":
    main()
