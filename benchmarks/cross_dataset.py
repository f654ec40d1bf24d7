"""Cross-dataset generalisation, DeepfakeBench's protocol: train on one source, score on all.

    python benchmarks/cross_dataset.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan \
        --backbone-weights effl0_in1k.safetensors [--minutes 12] [--epoch-size 1500]

Each arm trains ``efficientnet-lite0`` from the same ImageNet weights with the same recipe
(224x224, AdamW 1e-3, cosine, "crossdomain" augmentation, seed 0) for the same wall-clock
budget, on one training source or on all of them:

- **dfdc-faces**: real and face-swapped DFDC frames;
- **ffhq-stylegan**: FFHQ photos and StyleGAN faces;
- **self-blended only**: the real images of both, and landmark-hull self-blended fakes of
  them (``synth_fakes=1``): no fake from any generator or swap method;
- **all**: both sources (3:1 dfdc:ffhq per epoch) plus 0.3 self-blended fakes per real,
  the built-in default's recipe on this arm's budget.

Epochs are ``--epoch-size`` images; the best epoch of each arm is chosen on the hold-out of
the *training sources it saw* (dfdc-faces: 5 % of source clips; ffhq-stylegan: 10 %; plus
self-blended fakes of those reals when it trains on them). Every arm is then scored once on
every source's val split and on self-blended fakes of val real images (up to 300 per
source, seed 12345), and the shipped default is scored on the same sets. Writes the matrix
to docs/generalisation.md, and each row to docs/generalisation.json: with ``--reuse`` the arms
already there are not trained again (``--detector LABEL=SOURCE`` adds a scored row for any
detector ``load_detector`` reads, e.g. an earlier default's folder).
"""

from __future__ import annotations

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
    stop_after,
    table,
    write_doc,
)

from deepfake_detect import load_detector
from deepfake_detect.crossdata import default_splits, selection_set, self_blended_set

TEST_SETS = ("dfdc", "ffhq", "sbi")


def reals_only(data):
    return data.subset(np.flatnonzero(data.labels == 0).tolist())


def arms(train: dict, holdout: dict, seed: int) -> list[tuple[str, dict, dict, dict]]:
    """``(label, train sources, selection sources, finetune kwargs)`` per arm."""
    sbi_holdout = selection_set(holdout, seed=seed)["sbi"]
    return [
        ("dfdc-faces", {"dfdc": train["dfdc"]}, {"dfdc": holdout["dfdc"]}, {}),
        ("ffhq-stylegan", {"ffhq": train["ffhq"]}, {"ffhq": holdout["ffhq"]}, {}),
        (
            "self-blended only (reals of both)",
            {k: reals_only(v) for k, v in train.items()},
            {"sbi": sbi_holdout},
            {"synth_fakes": 1.0},
        ),
        (
            "all: dfdc + ffhq + self-blended",
            train,
            {**holdout, "sbi": sbi_holdout},
            {"synth_fakes": 0.3, "source_weights": {"dfdc": 0.75, "ffhq": 0.25}},
        ),
    ]


def row(label: str, metrics: dict, extra: list) -> list:
    cells = [label]
    for name in TEST_SETS:
        cells += [metrics[name]["auc"], metrics[name]["tpr_at_fpr_1e-3"]]
    return cells + extra


def main() -> None:
    ap = source_parser(__doc__, celebdf=False)
    ap.add_argument("--backbone-weights", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=12.0, help="training budget per arm (wall clock)")
    ap.add_argument("--epoch-size", type=int, default=1500)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DOCS / "generalisation.md")
    ap.add_argument("--reuse", action="store_true", help="keep the rows of arms already in the results JSON")
    ap.add_argument(
        "--detector", action="append", default=[], metavar="LABEL=SOURCE", help="also score this detector (repeatable)"
    )
    ap.add_argument("--limit", type=int, help="smoke test: at most this many images per split and source")
    args = ap.parse_args()
    results_path = args.out.with_suffix(".json")
    done = json.loads(results_path.read_text()) if args.reuse and results_path.is_file() else {}

    train, holdout, val = default_splits(args.dfdc, args.ffhq, seed=args.seed, limit=args.limit)
    test = {**val, "sbi": self_blended_set(val, per_source=300, seed=12345)}
    rows, reused_rows = [], []
    t0 = time.perf_counter()
    for label, sources, select, kwargs in arms(train, holdout, args.seed):
        if label in done:
            rows.append(done[label])
            reused_rows.append(label)
            continue
        torch.manual_seed(args.seed)
        det = load_detector("efficientnet-lite0", backbone_weights=args.backbone_weights)
        det.config = det.config.replace(input_size=(args.input_size, args.input_size))
        t = time.perf_counter()
        res = det.finetune(
            sources,
            select,
            epochs=1000,
            epoch_size=args.epoch_size,
            lr=1e-3,
            augment="crossdomain",
            seed=args.seed,
            scheduler="constant",
            progress=False,
            callbacks=[stop_after(args.minutes * 60)],
            **kwargs,
        )
        minutes = (time.perf_counter() - t) / 60
        metrics = det.evaluate(test, progress=False)
        rows.append(row(label, metrics, [len(res.history), res.best["epoch"], round(minutes, 1)]))
        print(rows[-1], file=sys.stderr, flush=True)
        done[label] = rows[-1]
        results_path.write_text(json.dumps(done, indent=1) + "\n")
    for spec in args.detector + ["built-in default (shipped weights)=default"]:
        label, _, source = spec.partition("=")
        det = load_detector() if source == "default" else load_detector(source)
        recipe = det.config.metadata.get("recipe", {})
        rows.append(
            row(
                label,
                det.evaluate(test, progress=False),
                [recipe.get("epochs", "?"), recipe.get("best_epoch", "?"), recipe.get("minutes", "?")],
            )
        )
        print(rows[-1], file=sys.stderr, flush=True)
    minutes = (time.perf_counter() - t0) / 60
    reused = f"; the rows of {len(reused_rows)} trained arms were read from {results_path.name}" if reused_rows else ""
    n = {k: len(v) for k, v in test.items()}
    headers = (
        ["trained on"]
        + [f"{name} {m}" for name in TEST_SETS for m in ("AUC", "TPR@1e-3")]
        + ["epochs", "best epoch", "minutes"]
    )
    doc = f"""# Generalisation: train on one source, score on every source

`python benchmarks/cross_dataset.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan --backbone-weights effl0_in1k.safetensors --minutes {args.minutes:g} --epoch-size {args.epoch_size}`
(commit {git_rev()}, {minutes:.0f} minutes{reused}). Machine: {machine()}.

Every trained arm: `efficientnet-lite0` from ImageNet weights, {args.input_size}x{args.input_size}, AdamW lr 1e-3
(constant), "crossdomain" augmentation, seed 0, epochs of {args.epoch_size} images for {args.minutes:g} minutes
of wall clock; best epoch chosen on the hold-out of its own training sources. Test sets, scored once:

- **dfdc**: dfdc-faces val, {n["dfdc"]} images (real and face-swapped DFDC frames, clips unseen in training);
- **ffhq**: ffhq-stylegan val, {n["ffhq"]} images (FFHQ photos and StyleGAN faces);
- **sbi**: up to 300 real images of each val split and one landmark-hull self-blended fake of
  each (seed 12345), {n["sbi"]} images.

{table(headers, rows)}

TPR@1e-3 is the share of fakes caught while at most 0.1 % of reals are flagged; on a few
hundred reals it is the TPR at zero false positives. The default's row scores the shipped
float16 weights; its own training ran longer (see the model card in docs/detectors.md).
"""
    print(write_doc(args.out, doc))


if __name__ == "__main__":
    main()
