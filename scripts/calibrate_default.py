"""Set a detector's operating points on the hold-out of train, then count its false alarms on val reals.

    python scripts/calibrate_default.py runs/v5-out --dfdc ../shared/data/dfdc-faces \
        --ffhq ../shared/data/ffhq-stylegan --celebdf ../shared/data/celebdf-faces --out DIR

Two operating points, each the largest over hold-out sources (dfdc-faces, ffhq-stylegan,
celebdf-faces: the split of ``crossdata.default_splits``, seed 0) and crop sides (the image as
it is and its central box of each ``--crop-sides``, resized back) of a quantile of the real
images' scores:

- ``threshold`` (verdict "fake"): at most ``--strict`` (1 %) of each source's hold-out reals
  above it, at every crop side;
- ``suspicious_threshold`` (verdict "suspicious"): at most ``--sensitive`` (10 %).

Val is only scored after both are set: the share of each source's val reals (celebdf-faces
val is all real) labelled fake and labelled suspicious-or-fake, as given and at each crop
side, goes into the model card with the rule. The detector is saved to ``--out`` in float16.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from deepfake_detect import load_detector
from deepfake_detect.crossdata import default_splits, real_score_quantiles, real_scores, real_views

CROP_SIDES = (0.85, 0.7, 0.6, 0.5)


def val_false_alarms(detector, val: dict, crop_sides: tuple[float, ...]) -> dict[str, dict[str, float]]:
    """``{source[@cropSIDE]: {"fake": share, "suspicious_or_fake": share}}`` over val reals."""
    out = {}
    for key, images in real_views(val, crop_sides=crop_sides):
        scores = detector.predict(images, progress=False)
        out[key] = {
            "fake": float((scores >= detector.config.threshold).mean()),
            "suspicious_or_fake": float((scores >= detector.config.suspicious_threshold).mean()),
            "n": len(images),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("detector", help="a saved detector folder (or any name load_detector takes)")
    ap.add_argument("--dfdc", type=Path, required=True)
    ap.add_argument("--ffhq", type=Path, required=True)
    ap.add_argument("--celebdf", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="where to save the calibrated detector")
    ap.add_argument("--crop-sides", type=float, nargs="*", default=list(CROP_SIDES))
    ap.add_argument("--strict", type=float, default=0.01, help="false alarms allowed at the 'fake' threshold")
    ap.add_argument("--sensitive", type=float, default=0.10, help="false alarms allowed at 'suspicious'")
    ap.add_argument("--limit", type=int, help="smoke test: about this many images per split and source")
    args = ap.parse_args()

    detector = load_detector(args.detector, backend="torch")
    _, holdout, val = default_splits(args.dfdc, args.ffhq, celebdf=args.celebdf, seed=0, limit=args.limit)
    sides = tuple(args.crop_sides)
    score = lambda images: detector.predict(images, progress=False)  # noqa: E731
    holdout_reals = real_scores(score, holdout, crop_sides=sides)  # scored once for both operating points
    strict = real_score_quantiles(holdout_reals, args.strict)
    sensitive = real_score_quantiles(holdout_reals, args.sensitive)
    threshold, suspicious = round(max(strict.values()), 4), round(max(sensitive.values()), 4)
    detector.config = detector.config.replace(threshold=threshold, suspicious_threshold=min(suspicious, threshold))
    alarms = val_false_alarms(detector, val, sides)

    meta = dict(detector.config.metadata)
    crops = ", ".join(f"{s:g}" for s in sides)
    meta["threshold_rule"] = (
        f"'fake' from {threshold}: the highest over hold-out sources (dfdc-faces, ffhq-stylegan, celebdf-faces) "
        f"and crop sides (1 and {crops}) of the {1 - args.strict:.0%} quantile of hold-out real scores; "
        f"'suspicious' from {detector.config.suspicious_threshold}: the same with the "
        f"{1 - args.sensitive:.0%} quantile. Set before val was scored."
    )
    meta["operating_points"] = {
        "fake": {
            "threshold": threshold,
            "target_false_alarms": args.strict,
            "holdout_quantiles": {k: round(v, 4) for k, v in strict.items()},
        },
        "suspicious": {
            "threshold": detector.config.suspicious_threshold,
            "target_false_alarms": args.sensitive,
            "holdout_quantiles": {k: round(v, 4) for k, v in sensitive.items()},
        },
    }
    meta["false_alarm_rate"] = {f"{k} val reals": round(v["fake"], 4) for k, v in alarms.items()}
    meta["suspicious_rate"] = {f"{k} val reals": round(v["suspicious_or_fake"], 4) for k, v in alarms.items()}
    detector.config = detector.config.replace(metadata=meta)
    detector.save_pretrained(args.out, dtype=torch.float16)
    report = {
        "threshold": threshold,
        "suspicious_threshold": detector.config.suspicious_threshold,
        "strict_quantiles": strict,
        "sensitive_quantiles": sensitive,
        "val_false_alarms": alarms,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
