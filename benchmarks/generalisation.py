"""Does self-blended training generalise? GAN fakes only vs GAN + self-blended fakes.

    python benchmarks/generalisation.py ../shared/data/ffhq-stylegan \
        --backbone-weights effl0_in1k.safetensors [--epochs 4]

Both arms train ``efficientnet-lite0`` (ImageNet-initialised) with the same recipe and seed
on the same 1,260 train images (the epoch is chosen on the other 140); they differ only in
``synth_fakes``. Both are scored on (a) the shared val split, FFHQ vs StyleGAN, the kind of
fake seen in training, and (b) a self-blended val set: the 150 val real images and one
self-blended fake of each (seed 12345), a manipulation the GAN-only arm never saw. The
built-in default detector is scored on both too. Writes docs/generalisation.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from _common import DOCS, git_rev, machine, table, write_doc  # run as a script: its folder is on sys.path

from deepfake_detect import load_detector
from deepfake_detect.data import LabelFile, stratified_split
from deepfake_detect.synth import self_blended_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--backbone-weights", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--synth-fakes", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=DOCS / "generalisation.md")
    args = ap.parse_args()
    train_all = LabelFile(args.data / "train_label.txt", args.data / "train")
    val = LabelFile(args.data / "val_label.txt", args.data / "val")
    train, select = stratified_split(train_all, 0.1, seed=0)
    sbi_val = self_blended_pairs([p for p, y in zip(val.items, val.labels) if y == 0], seed=12345)

    rows = []
    t0 = time.perf_counter()
    for label, synth in (("GAN fakes only", 0.0), (f"GAN + self-blended (synth_fakes={args.synth_fakes})", args.synth_fakes)):
        torch.manual_seed(0)
        det = load_detector("efficientnet-lite0", backbone_weights=args.backbone_weights)
        t = time.perf_counter()
        res = det.finetune(train, select, epochs=args.epochs, synth_fakes=synth, seed=0, progress=False)
        minutes = (time.perf_counter() - t) / 60
        a, b = det.evaluate(val), det.evaluate(sbi_val)
        rows.append([label, args.epochs, res.best["epoch"], a["auc"], a["tpr_at_fpr_1e-3"], b["auc"], b["tpr_at_fpr_1e-3"], minutes])
        print(rows[-1], file=sys.stderr, flush=True)
    default = load_detector()
    a, b = default.evaluate(val), default.evaluate(sbi_val)
    recipe = default.config.metadata.get("recipe", {})
    rows.append(["built-in default (scripts/train_default.py)", recipe.get("epochs", "?"), recipe.get("best_epoch", "?"),
                 a["auc"], a["tpr_at_fpr_1e-3"], b["auc"], b["tpr_at_fpr_1e-3"], recipe.get("minutes", "?")])
    minutes = (time.perf_counter() - t0) / 60
    doc = f"""# Generalisation: does self-blended training help on unseen manipulations?

`python benchmarks/generalisation.py ../shared/data/ffhq-stylegan --backbone-weights effl0_in1k.safetensors --epochs {args.epochs}`
(commit {git_rev()}, {minutes:.0f} minutes). Machine: {machine()}.

Both trained arms: `efficientnet-lite0` from ImageNet weights, `Detector.finetune` defaults
(AdamW, cosine, "default" augmentation), seed 0, {args.epochs} epochs on 1,260 train images,
epoch chosen on the other 140. They differ only in `synth_fakes`.

- **val (StyleGAN)**: the shared val split, 150 FFHQ real vs 150 StyleGAN fakes: the kind of
  fake in the training data.
- **self-blended val**: the 150 val real images and one self-blended fake of each (seed
  12345): a blending manipulation, the proxy here for face swaps, which the GAN-only arm
  never saw. It is a proxy, not FaceForensics++ or DFDC.

{table(["training", "epochs", "best epoch", "val AUC", "val TPR@FPR=1e-3", "self-blended val AUC", "self-blended TPR@FPR=1e-3", "minutes"], rows)}

With 150 real images, TPR at FPR = 1e-3 is the TPR at zero false positives. The built-in
default's row scores the shipped float16 weights; its model card's figures were taken in
float32 at the end of training.
"""
    print(write_doc(args.out, doc))


if __name__ == "__main__":
    main()
