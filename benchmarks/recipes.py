"""A stronger model, chosen by measurement: backbone, partial fine-tuning and the fake mix,
each from ImageNet, under one budget, judged on the hold-out of *train*; val scored once.

    python benchmarks/recipes.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan \
        --celebdf ../shared/data/celebdf-faces --weights-dir DIR [--epochs 5 --epoch-size 1500] [--runs runs/recipes]

``DIR`` holds ``effl0_in1k.safetensors`` and ``effl2_in1k.safetensors`` (made by
``scripts/convert_efficientnet_lite.py``). Every arm gets the default's current recipe
(``scripts/train_default.py`` as for v6: all three sources drawn 0.60 / 0.25 / 0.15, the
"crossvideo" augmentation, AdamW with a cosine schedule, batch 32, seed 0) and the same number
of training images, self-blends included; they differ in one thing each from the first arm:

- **Lite0, full**: EfficientNet-Lite0 at 224, every layer trained, the fake mix of today's
  default: the sources' own fakes plus 0.5 self-blended fakes per real image.
- **Lite0, early blocks frozen**: the same with the stem and ``blocks.0``-``blocks.2``
  (down to 1/8 of the input's side) frozen, BatchNorm statistics included (``freeze=``).
- **Lite2, full**: EfficientNet-Lite2 at its native 260.
- **Lite0, self-blends only**: the sources' fakes left out; the fake class is one
  self-blend of each real image (Shiohara and Yamasaki's SBI recipe on these reals).

Epochs are chosen on the seven hold-out views the v6 stage was chosen on (dfdc-faces and
ffhq-stylegan hold-outs whole, at half side and after H.264 at CRF 37, and self-blends of every
source's hold-out reals); an arm's threshold is the highest 99th percentile of its hold-out
reals. Then val is scored once per arm: the dfdc-faces and ffhq-stylegan val splits, self-blends
of their reals, their half-side and CRF 37 views (dfdc-faces: every third image), and the
share of Celeb-DF's 174 val reals at or above the arm's threshold. Training-step and predict
speed are measured at the end, one arm after another on an otherwise idle machine.
Rows are kept in docs/recipes.json as arms finish; ``--runs`` keeps each arm's checkpoints so
that a stopped run resumes its arm.
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
    predict_rate,
    source_parser,
    table,
    write_doc,
)

from deepfake_detect import load_detector
from deepfake_detect.crossdata import (
    default_splits,
    perturbed_views,
    real_score_quantiles,
    real_scores,
    selection_set,
    self_blended_set,
)

SHARES = {"dfdc": 0.60, "ffhq": 0.25, "celebdf": 0.15}
SYNTH_FAKES = 0.5
EARLY_BLOCKS = ("conv_stem", "bn1", "blocks.0", "blocks.1", "blocks.2")
#: label -> (registry name, input size, ImageNet weights file, frozen modules, self-blends only)
ARMS = {
    "Lite0, full": ("efficientnet-lite0", 224, "effl0_in1k.safetensors", (), False),
    "Lite0, early blocks frozen": ("efficientnet-lite0", 224, "effl0_in1k.safetensors", EARLY_BLOCKS, False),
    "Lite0, self-blends only": ("efficientnet-lite0", 224, "effl0_in1k.safetensors", (), True),
    "Lite2, full": ("timm:tf_efficientnet_lite2", 260, "effl2_in1k.safetensors", (), False),
    "Lite2, early blocks frozen": ("timm:tf_efficientnet_lite2", 260, "effl2_in1k.safetensors", EARLY_BLOCKS, False),
}
SELECT = ("dfdc", "ffhq", "sbi", "dfdc@crop0.5", "ffhq@crop0.5", "dfdc@crf37", "ffhq@crf37")


def reals_only(sources: dict) -> dict:
    return {k: v.subset(np.flatnonzero(v.labels == 0).tolist()) for k, v in sources.items()}


def real_share(train: dict) -> float:
    """The expected share of real images among the images an epoch draws with ``SHARES``."""
    return sum(SHARES[k] * float((v.labels == 0).mean()) for k, v in train.items())


def val_sets(val: dict) -> dict:
    two_class = {k: val[k] for k in ("dfdc", "ffhq")}
    thinned = {"dfdc": val["dfdc"].subset(list(range(0, len(val["dfdc"]), 3))), "ffhq": val["ffhq"]}
    return {
        **two_class,
        "sbi": self_blended_set(two_class, per_source=300, seed=12345),
        **perturbed_views(thinned, crop_sides=(0.5,), video_crfs=(37,)),
    }


def val_sizes(val: dict) -> dict:
    """How many images each val set of :func:`val_sets` holds, without building them."""
    reals = {k: int((val[k].labels == 0).sum()) for k in ("dfdc", "ffhq")}
    thinned = len(range(0, len(val["dfdc"]), 3))
    return {
        "dfdc": len(val["dfdc"]),
        "ffhq": len(val["ffhq"]),
        "sbi": 2 * sum(min(300, n) for n in reals.values()),
        "dfdc@crop0.5": thinned,
    }


def train_rate(label: str, images: int = 192) -> float:
    """Training images per second of an arm's model and freezing through ``Detector.finetune``
    on random in-memory images at its input size (no augmentation, no self-blends): the cost of
    a step without data loading, every arm measured one after another in one process."""
    name, size, _, freeze, _ = ARMS[label]
    rng = np.random.default_rng(0)
    data = [(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), i % 2) for i in range(images)]
    det = load_detector(name)
    det.config = det.config.replace(input_size=(size, size))
    res = det.finetune(data, epochs=2, batch_size=32, augment="none", freeze=freeze, progress=False, num_workers=0)
    return float(res.history[-1]["img_per_s"])  # the second epoch: no first-step overheads


def idle_predict_ratios(labels: list[str], timing: list, backend: str) -> dict[str, float]:
    """``Detector.predict(backend=backend)`` img/s of each arm's architecture at its input size
    (untrained weights: the speed does not depend on them) over the shipped default's on the
    same backend, measured one after another in one process; the default is measured before
    and after and averaged."""
    base = load_detector("efficientnet-lite0").config
    rates: dict[tuple[str, int], float] = {}
    reference = [predict_rate(load_detector(), timing, repeats=3, backend=backend)]
    for label in labels:
        name, size, *_ = ARMS[label]
        if (name, size) not in rates:
            det = load_detector(name)
            det.config = det.config.replace(**{**base.preprocessing, "input_size": (size, size)})
            rates[(name, size)] = predict_rate(det, timing, repeats=3, backend=backend)
    reference.append(predict_rate(load_detector(), timing, repeats=3, backend=backend))
    return {label: rates[ARMS[label][:2]] / float(np.mean(reference)) for label in labels}


def train_arm(label: str, train: dict, holdout: dict, select: dict, args: argparse.Namespace):
    name, size, weights, freeze, sbi_only = ARMS[label]
    base = load_detector("efficientnet-lite0").config
    torch.manual_seed(args.seed)
    det = load_detector(name, backbone_weights=args.weights_dir / weights)
    det.config = det.config.replace(**{**base.preprocessing, "input_size": (size, size)})
    epoch_size, synth = args.epoch_size, SYNTH_FAKES
    data = train
    if sbi_only:  # as many images per epoch as the mixed arms: every real image and one self-blend of it
        data, synth = reals_only(train), 1.0
        epoch_size = round(args.epoch_size * (1 + SYNTH_FAKES * real_share(train)) / 2)
    slug = label.lower().replace(", ", "-").replace(" ", "-")
    t = time.perf_counter()
    res = det.finetune(
        data,
        select,
        epochs=args.epochs,
        epoch_size=epoch_size,
        lr=args.lr,
        augment="crossvideo",
        synth_fakes=synth,
        source_weights=SHARES,
        freeze=freeze,
        seed=args.seed,
        output_dir=args.runs / slug if args.runs else None,
        resume=args.runs is not None,
        progress=False,
    )
    minutes = (time.perf_counter() - t) / 60
    scores = real_scores(lambda images: det.predict(images, progress=False), holdout)
    threshold = max(real_score_quantiles(scores, 0.01).values())
    best = next(h for h in res.history if h["epoch"] == res.best["epoch"])
    row = {
        "arm": label,
        "input_size": size,
        "params_m": sum(p.numel() for p in det.model.parameters()) / 1e6,
        "frozen": list(freeze),
        "images_seen": round(sum(h["seconds"] * h["img_per_s"] for h in res.history)),
        "holdout": {k: best["val_sources"][k]["auc"] for k in SELECT},
        "holdout_mean_auc": best["val"]["auc_mean"],
        "per_epoch_mean_auc": [h["val"]["auc_mean"] for h in res.history],
        "best_epoch": best["epoch"],
        "train_minutes": round(minutes, 1),
        "train_img_per_s": float(np.mean([h["img_per_s"] for h in res.history])),
        "threshold": threshold,
        "commit": git_rev(),
    }
    return det, row


def score_val(det, row: dict, test: dict, celebdf_reals: list) -> None:
    metrics = det.evaluate(test, progress=False)
    row["val"] = {k: m["auc"] for k, m in metrics.items()}
    row["celebdf_false_alarms"] = float((det.predict(celebdf_reals, progress=False) >= row["threshold"]).mean())


def main() -> None:
    ap = source_parser(__doc__)
    ap.add_argument("--weights-dir", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--epoch-size", type=int, default=1500, help="images drawn per epoch by the mixed arms")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arm", action="append", choices=list(ARMS), help="train only these arms (default: all)")
    ap.add_argument("--runs", type=Path, help="keep each arm's checkpoints here and resume a stopped arm")
    ap.add_argument("--out", type=Path, default=DOCS / "recipes.md")
    ap.add_argument(
        "--rule", default="training/rules/recipes.md", help="the rule, written before training, that reads this table"
    )
    ap.add_argument("--step-images", type=int, default=192, help="random images per epoch of the step timing")
    ap.add_argument("--limit", type=int, help="smoke test: at most this many images per split and source")
    args = ap.parse_args()
    results_path = args.out.with_suffix(".json")
    done = json.loads(results_path.read_text()) if results_path.is_file() else {}

    train, holdout, val = default_splits(args.dfdc, args.ffhq, seed=args.seed, limit=args.limit, celebdf=args.celebdf)
    timing = [holdout["dfdc"].image(i) for i in range(min(64, len(holdout["dfdc"])))]
    sets: dict = {}
    t0, trained = time.perf_counter(), []
    for label in ARMS:
        if label in done or (args.arm and label not in args.arm):
            continue
        if not sets:  # built once, and only when an arm is trained
            celebdf = val["celebdf"]
            sets = {
                "select": selection_set(
                    holdout, seed=args.seed, crop_sides=(0.5,), video_crfs=(37,), scored=("dfdc", "ffhq")
                ),
                "test": val_sets(val),
                "celebdf_reals": [celebdf.image(int(i)) for i in np.flatnonzero(celebdf.labels == 0)],
            }
        det, row = train_arm(label, train, holdout, sets["select"], args)
        score_val(det, row, sets["test"], sets["celebdf_reals"])
        print(json.dumps(row), file=sys.stderr, flush=True)
        done[label] = row
        trained.append(label)
        results_path.write_text(json.dumps(done, indent=1) + "\n")
    minutes = (time.perf_counter() - t0) / 60
    rates = {label: train_rate(label, args.step_images) for label in done}
    speed = {b: idle_predict_ratios(list(done), timing, b) for b in ("torch", "openvino")}

    rows = [
        [
            label,
            r["input_size"],
            r["params_m"],
            *(r["holdout"][k] for k in SELECT),
            r["holdout_mean_auc"],
            " / ".join(f"{v:.3f}" for v in r["per_epoch_mean_auc"]),
            r["train_minutes"],
            r["images_seen"],
            rates[label],
            speed["torch"][label],
            speed["openvino"][label],
        ]
        for label, r in done.items()
    ]
    val_rows = [
        [
            label,
            *(r["val"][k] for k in SELECT),
            f"{r['celebdf_false_alarms']:.1%}",
            f"{r['threshold']:.4f}",
        ]
        for label, r in done.items()
    ]
    n = val_sizes(val)
    headers = ["arm", "input", "params (M)", *SELECT, "mean (best epoch)", "mean per epoch", "train min", "images seen"]
    headers += ["step img/s", "predict x default (torch)", "predict x default (openvino)"]
    arms = "".join(f' --arm "{a}"' for a in args.arm or ())
    out = "" if args.out == DOCS / "recipes.md" else f" --out docs/{args.out.name} --rule {args.rule}"
    doc = f"""# A stronger model: backbone, partial fine-tuning, the fake mix

`python benchmarks/recipes.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan --celebdf ../shared/data/celebdf-faces --weights-dir DIR --epochs {args.epochs} --epoch-size {args.epoch_size}{arms}{out}`
(commit {git_rev()}; this invocation trained {len(trained)} of the {len(done)} arms, in {minutes:.0f} minutes; the
others were read from {results_path.name}; arms trained at commit {", ".join(sorted({r["commit"] for r in done.values()}))}).
Machine: {machine()}.

Every arm starts from ImageNet weights and gets the same recipe and budget: all three
sources drawn 0.60 / 0.25 / 0.15, "crossvideo" augmentation, AdamW lr {args.lr:g} (cosine),
batch 32, seed 0, {args.epochs} epochs of about {args.epoch_size:,} images plus self-blends
(the "images seen" column). The rule that reads this table was written before the first arm
trained: {args.rule}.

## Hold-out of train (what the arms are judged by), AUC at the best epoch

{table(headers, rows)}

"train min" is the arm's wall time on a machine that was also doing other work at times; "step
img/s" compares the cost of a training step fairly: each arm's model and freezing trained for
two epochs of {args.step_images} random in-memory images (batch 32, no augmentation) through
`Detector.finetune`, one after another in one process at the end of the run (second epoch).
"predict x default" is the same for predicting: `Detector.predict` on 64 hold-out images
(batch 32, best of 3) with the arm's architecture and input size, over the shipped default's on
the same backend (torch, and OpenVINO: what `backend="auto"` picks here for the default),
measured in that pass on an otherwise idle machine.

## Val, scored once per arm after its training

dfdc {n["dfdc"]} images, ffhq {n["ffhq"]}, sbi {n["sbi"]}; the crop and CRF views use every third
dfdc-faces val image ({n["dfdc@crop0.5"]}) and all of ffhq-stylegan's. "celebdf FA": Celeb-DF's
174 val reals at or above the arm's threshold. Predict speed: the "predict x default" columns
above.

{table(["arm", *SELECT, "celebdf FA", "threshold"], val_rows)}
"""
    print(write_doc(args.out, doc))


if __name__ == "__main__":
    main()
