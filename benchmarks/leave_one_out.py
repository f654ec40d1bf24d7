"""Leave one source out, with Celeb-DF as the third source: train on two, score the one left out.

    python benchmarks/leave_one_out.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan \
        --celebdf ../shared/data/celebdf-faces --backbone-weights effl0_in1k.safetensors [--epochs 6 --epoch-size 2000]

Each arm trains ``efficientnet-lite0`` from the same ImageNet weights with the same recipe
(224x224, AdamW 1e-3, cosine, "crossscale" augmentation, 0.3 self-blended fakes per real
image, seed 0) on the same number of images (``--epochs`` x ``--epoch-size``, so a busy
machine changes the minutes, not the budget), on two of the three sources or on all three:

- **dfdc**: dfdc-faces, real and face-swapped DFDC frames;
- **ffhq**: ffhq-stylegan, FFHQ photos and StyleGAN faces;
- **celebdf**: celebdf-faces train reals (its one face-swap video falls in the hold-out).

Sources are drawn 0.60 / 0.25 / 0.15 per epoch (the default's shares), renormalised over
the arm's sources. The best epoch is chosen on the hold-out of the arm's own sources
(their two-class AUCs and self-blends of their reals), and the arm's threshold is the
highest 99th percentile of its hold-out reals. Every arm is scored once on:

- **dfdc**, **ffhq**: the val splits (1,768 and 300 images);
- **sbi**: up to 300 real images of each of those val splits and a self-blended fake of each;
- **celebdf**: Celeb-DF's 174 val reals (videos unseen in training) and a self-blended fake
  of each: the only AUC Celeb-DF's real-only val split allows;
- **celebdf FA**: the share of those 174 reals at or above the arm's threshold.

``--detector LABEL=SOURCE`` adds a scored row for any detector ``load_detector`` reads (its
own threshold for the false alarms). Rows are kept in the JSON beside the page; ``--reuse``
reads arms already there instead of training them again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _common import (  # run as a script: its folder is on sys.path
    DOCS,
    git_rev,
    machine,
    source_parser,
    table,
    write_doc,
)

from deepfake_detect import load_detector
from deepfake_detect.crossdata import (
    default_splits,
    real_score_quantiles,
    real_scores,
    selection_set,
    self_blended_set,
)

SOURCES = ("dfdc", "ffhq", "celebdf")
SHARES = {"dfdc": 0.60, "ffhq": 0.25, "celebdf": 0.15}
TEST_SETS = ("dfdc", "ffhq", "sbi", "celebdf")
ARMS = {
    "dfdc + ffhq (Celeb-DF left out)": ("dfdc", "ffhq"),
    "dfdc + celebdf (ffhq-stylegan left out)": ("dfdc", "celebdf"),
    "ffhq + celebdf (dfdc-faces left out)": ("ffhq", "celebdf"),
    "all three (none left out)": SOURCES,
}


def left_out(sources: tuple[str, ...]) -> str:
    """The test column of the source an arm did not see ("-" when it saw all)."""
    missing = [s for s in SOURCES if s not in sources]
    return missing[0] if missing else "-"


def test_sets(val: dict) -> dict:
    """The val sets every arm and detector is scored on, built once."""
    two_class = {k: val[k] for k in ("dfdc", "ffhq")}
    return {
        **two_class,
        "sbi": self_blended_set(two_class, per_source=300, seed=12345),
        "celebdf": self_blended_set({"celebdf": val["celebdf"]}, seed=12345),
    }


def celebdf_reals(val: dict) -> list:
    data = val["celebdf"]
    return [data.image(int(i)) for i in np.flatnonzero(data.labels == 0)]


def score_row(label: str, det, threshold: float, test: dict, reals: list, sources: tuple[str, ...], extra: list):
    metrics = det.evaluate(test, progress=False)
    alarms = float((det.predict(reals, progress=False) >= threshold).mean())
    cells: list = [label]
    cells += [metrics[name]["auc"] for name in TEST_SETS]
    held = left_out(sources)
    cells += [metrics[held]["auc"] if held != "-" else "-", f"{alarms:.1%}", f"{threshold:.4f}"]
    return cells + extra


def train_arm(sources: tuple[str, ...], train: dict, holdout: dict, args: argparse.Namespace):
    """The arm's detector, its threshold and ``[epochs, best epoch, minutes]``."""
    torch.manual_seed(args.seed)
    det = load_detector("efficientnet-lite0", backbone_weights=args.backbone_weights)
    det.config = det.config.replace(input_size=(args.input_size, args.input_size))
    own_holdout = {k: holdout[k] for k in sources}
    select = selection_set(own_holdout, seed=args.seed, scored=("dfdc", "ffhq"))
    total = sum(SHARES[k] for k in sources)
    t = time.perf_counter()
    res = det.finetune(
        {k: train[k] for k in sources},
        select,
        epochs=args.epochs,
        epoch_size=args.epoch_size,
        lr=1e-3,
        augment="crossscale",
        synth_fakes=0.3,
        source_weights={k: SHARES[k] / total for k in sources},
        seed=args.seed,
        progress=False,
    )
    minutes = (time.perf_counter() - t) / 60
    scores = real_scores(lambda images: det.predict(images, progress=False), own_holdout)
    threshold = max(real_score_quantiles(scores, 0.01).values())
    return det, threshold, [len(res.history), res.best["epoch"], f"{minutes:.1f}"]


def main() -> None:
    ap = source_parser(__doc__)
    ap.add_argument("--backbone-weights", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--epoch-size", type=int, default=2000)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arm", action="append", choices=list(ARMS), help="train only these arms (default: all)")
    ap.add_argument("--out", type=Path, default=DOCS / "leave_one_out.md")
    ap.add_argument("--reuse", action="store_true", help="keep the rows of arms already in the results JSON")
    ap.add_argument(
        "--detector", action="append", default=[], metavar="LABEL=SOURCE", help="also score this detector (repeatable)"
    )
    ap.add_argument("--limit", type=int, help="smoke test: at most this many images per split and source")
    args = ap.parse_args()
    results_path = args.out.with_suffix(".json")
    done = json.loads(results_path.read_text()) if args.reuse and results_path.is_file() else {}

    train, holdout, val = default_splits(args.dfdc, args.ffhq, seed=args.seed, limit=args.limit, celebdf=args.celebdf)
    test, reals = test_sets(val), celebdf_reals(val)
    rows, reused = [], []
    t0 = time.perf_counter()
    for label, sources in ARMS.items():
        if label in done:
            rows.append(done[label])
            reused.append(label)
            continue
        if args.arm and label not in args.arm:
            continue
        det, threshold, extra = train_arm(sources, train, holdout, args)
        rows.append(score_row(label, det, threshold, test, reals, sources, extra))
        print(rows[-1], file=sys.stderr, flush=True)
        done[label] = rows[-1]
        results_path.write_text(json.dumps(done, indent=1) + "\n")
    for spec in args.detector:
        label, _, source = spec.partition("=")
        det = load_detector(source)
        recipe = det.config.metadata.get("recipe", {})
        stages = list(recipe.get("members", {}).values()) or [recipe]  # an ensemble: each member's last stage
        extra = [" + ".join(str(stage.get(k, "?")) for stage in stages) for k in ("epochs", "best_epoch", "minutes")]
        rows.append(score_row(label, det, det.config.threshold, test, reals, SOURCES, extra))
        print(rows[-1], file=sys.stderr, flush=True)
    minutes = (time.perf_counter() - t0) / 60
    note = f"; the rows of {len(reused)} trained arms were read from {results_path.name}" if reused else ""
    n = {k: len(v) for k, v in test.items()}
    headers = ["trained on", *(f"{name} AUC" for name in TEST_SETS), "left-out AUC", "celebdf FA", "threshold"]
    headers += ["epochs", "best epoch", "minutes"]
    doc = f"""# Leave one source out: dfdc-faces, ffhq-stylegan, celebdf-faces

`python benchmarks/leave_one_out.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan --celebdf ../shared/data/celebdf-faces --backbone-weights effl0_in1k.safetensors --epochs {args.epochs} --epoch-size {args.epoch_size}`
(commit {git_rev()}, {minutes:.0f} minutes{note}). Machine: {machine()}.

Every trained arm: `efficientnet-lite0` from ImageNet weights, {args.input_size}x{args.input_size}, AdamW lr 1e-3
(cosine), "crossscale" augmentation, 0.3 self-blended fakes per real image, seed 0,
{args.epochs} epochs of {args.epoch_size} images; best epoch chosen on the hold-out of its own sources,
threshold at the highest 99th percentile of its own hold-out reals. Test sets, scored once:
dfdc-faces val ({n["dfdc"]} images), ffhq-stylegan val ({n["ffhq"]}), sbi ({n["sbi"]}: val reals of both and a
self-blend of each), celebdf ({n["celebdf"]}: the 174 val reals and a self-blend of each). "left-out AUC"
repeats the column of the source the arm never saw; "celebdf FA" is the share of Celeb-DF's
val reals at or above the row's threshold (a detector row: its shipped threshold).

{table(headers, rows)}
"""
    print(write_doc(args.out, doc))


if __name__ == "__main__":
    main()
