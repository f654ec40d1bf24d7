"""The challenge workflow in one script: label files in, best checkpoint and submit.csv out.

    python examples/finetune_challenge.py \
        --train-labels train_label.txt --train-dir trainset/ \
        --val-labels val_label.txt --val-dir valset/ \
        --test-dir testset/ --model efficientnet-lite0 --epochs 5 --out runs/challenge

Re-run the same command with --resume after an interruption (before any epoch finished,
it starts again from --model). With no --test-dir the validation images are scored into
submit.csv (useful to check the format). Unlike `deepfake-detect finetune`, it adds 0.5
self-blended fakes per real image by default (--synth-fakes; needs the 'face' extra).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from deepfake_detect import load_detector
from deepfake_detect.data import LabelFile
from deepfake_detect.submission import predict_submission
from deepfake_detect.training import CheckpointDir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-labels", type=Path, required=True)
    ap.add_argument("--train-dir", type=Path, required=True)
    ap.add_argument("--val-labels", type=Path, required=True)
    ap.add_argument("--val-dir", type=Path, required=True)
    ap.add_argument("--test-dir", type=Path, help="images to score for the submission")
    ap.add_argument("--model", default=None, help="registry name to start from (default: the built-in detector)")
    ap.add_argument("--backbone-weights", type=Path, help="local ImageNet weights for a fresh backbone")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--synth-fakes", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=Path("runs/challenge"))
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args()

    train = LabelFile(args.train_labels, args.train_dir)  # every row and file is checked here
    val = LabelFile(args.val_labels, args.val_dir)
    last = CheckpointDir.loadable(CheckpointDir(args.out).last) if args.resume else None
    if last is not None:
        detector = load_detector(last)
    else:  # a new run, or a resume before the first epoch finished
        kwargs = {"backbone_weights": args.backbone_weights} if args.backbone_weights else {}
        detector = load_detector(args.model, **kwargs)
    result = detector.finetune(
        train,
        val,
        epochs=args.epochs,
        batch_size=args.batch_size,
        synth_fakes=args.synth_fakes,
        output_dir=args.out,
        resume=args.resume,
    )
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, one process reports and writes
        return
    if result.interrupted:  # no submission from a run cut short
        again = sys.argv if "--resume" in sys.argv else [*sys.argv, "--resume"]
        sys.exit(f"interrupted; continue with: python {' '.join(again)}")
    print("best epoch:", json.dumps(result.best))
    metrics = detector.evaluate(val, plot=args.out / "roc.png")  # the detector now holds the best weights
    print("validation:", json.dumps(metrics))
    target = args.test_dir if args.test_dir else val
    names, _ = predict_submission(detector, target, args.out / "submit.csv")
    print(f"wrote {len(names)} rows to {args.out / 'submit.csv'}")


if __name__ == "__main__":
    main()
