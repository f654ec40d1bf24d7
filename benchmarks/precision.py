"""int8 vs float32: the AUC change of the built-in default on the shared validation splits,
and the speed of each backend and precision on ready tensors.

    python benchmarks/precision.py --ffhq ../shared/data/ffhq-stylegan --dfdc ../shared/data/dfdc-faces [--calibration 32]

The default (``load_detector()``) scores every image of each ``val`` split in float32
(``backend="onnxruntime"``; equal to torch within 1e-4) and in int8
(``precision="int8"``) on each installed graph runtime, calibrated on ``--calibration``
images drawn from the *train* splits (half from each source, seeded), the way a user
calibrates on a handful of their own images. Then img/s on a ready random batch of 32,
interleaved rounds: the torch forward (optimised), and each runtime's float32 and int8
sessions, for the default and for resnet18-baseline (fresh weights; speed only). Writes
docs/precision.md and docs/precision.json. ``--only quality`` / ``--only speed`` runs one
part and keeps the other from the JSON (the speed part is short enough for a quiet window;
the quality part does not depend on the load).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import DOCS, git_rev, machine, table, write_doc  # run as a script: its folder is on sys.path

from deepfake_detect import load_detector
from deepfake_detect.backends import GRAPH_BACKENDS, runtime_available
from deepfake_detect.data import LabelFile
from deepfake_detect.metrics import compute_metrics

#: The graph runtimes installed here.
RUNTIMES = [b for b in GRAPH_BACKENDS if runtime_available(b)]


def calibration_set(roots: list[Path], n: int, seed: int = 0) -> list[Path]:
    """``n`` training images, as evenly as possible from each root, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[Path] = []
    for k, root in enumerate(roots):
        train = LabelFile(root / "train_label.txt", root / "train")
        take = n // len(roots) + (1 if k < n % len(roots) else 0)
        out += [Path(train.items[i]) for i in rng.choice(len(train), size=take, replace=False)]
    return out


def quality_rows(det, roots: dict[str, Path], calibration: list[Path]) -> tuple[list[list[object]], dict]:
    rows, raw = [], {}
    threshold = det.config.threshold
    for name, root in roots.items():
        val = LabelFile(root / "val_label.txt", root / "val")
        paths = list(val.items)
        fp32 = det.predict(paths, backend="onnxruntime", progress=False)
        m32 = compute_metrics(val.labels, fp32, threshold=threshold)
        raw[name] = dict(n=len(paths), fp32=m32)
        for backend in RUNTIMES:
            int8 = det.predict(paths, backend=backend, precision="int8", calibration=calibration, progress=False)
            assert det.last_backend.precision == "int8" and det.last_backend.backend == backend
            m8 = compute_metrics(val.labels, int8, threshold=threshold)
            diff = np.abs(int8 - fp32)
            flipped = int(np.sum((fp32 >= threshold) != (int8 >= threshold)))
            raw[name][backend] = dict(
                int8=m8, max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()), verdicts_flipped=flipped
            )
            rows.append(
                [
                    name,
                    backend,
                    len(paths),
                    m32["auc"],
                    m8["auc"],
                    f"{m8['auc'] - m32['auc']:+.4f}",
                    m32["tpr_at_fpr_1e-3"],
                    m8["tpr_at_fpr_1e-3"],
                    float(diff.mean()),
                    float(diff.max()),
                    flipped,
                ]
            )
            print(rows[-1], flush=True)
    return rows, raw


def speed_rows(name: str, det, calibration: list[Path], rounds: int, seconds: float) -> tuple[list[object], dict]:
    h, w = det.config.input_size
    x = torch.randn(32, 3, h, w)
    x_cl, x_np = x.contiguous(memory_format=torch.channels_last), x.numpy()
    runs = {"torch": lambda: det.predict_tensor(x_cl)}
    for backend in RUNTIMES:
        for precision in ("fp32", "int8"):
            session = det.engine.select(backend, precision, num_images=1000, calibration=calibration)[1]
            runs[f"{backend} {precision}"] = lambda s=session: s(x_np)
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for run in runs.values():
        run()
    for _ in range(rounds):  # interleaved, so load changes hit every column alike
        for key, run in runs.items():
            done, t = 0, time.perf_counter()
            while time.perf_counter() - t < seconds:
                run()
                done += 32
            rates[key].append(done / (time.perf_counter() - t))
    med = {k: statistics.median(v) for k, v in rates.items()}
    row = [
        name,
        f"{h}x{w}",
        *(med.get(f"{b} {p}", "-") for b in GRAPH_BACKENDS for p in ("fp32", "int8")),
        med["torch"],
    ]
    print(row, flush=True)
    return row, {"median": med, "rounds": rates}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ffhq", type=Path, required=True, help="ffhq-stylegan folder (train/, val/, labels)")
    ap.add_argument("--dfdc", type=Path, required=True, help="dfdc-faces folder (train/, val/, labels)")
    ap.add_argument("--calibration", type=int, default=32, help="calibration images (default 32)")
    ap.add_argument("--rounds", type=int, default=3, help="speed rounds (default 3)")
    ap.add_argument("--seconds", type=float, default=1.5, help="seconds per speed measurement (default 1.5)")
    ap.add_argument(
        "--only",
        choices=("quality", "speed"),
        help="run one part; the other is read from --json (e.g. the speed part on a quiet machine)",
    )
    ap.add_argument("--out", type=Path, default=DOCS / "precision.md")
    ap.add_argument("--json", type=Path, default=DOCS / "precision.json", help="the results of both parts")
    args = ap.parse_args()
    results = json.loads(args.json.read_text()) if args.only and args.json.is_file() else {}
    cmd = (
        f"python benchmarks/precision.py --ffhq ../shared/data/ffhq-stylegan --dfdc ../shared/data/dfdc-faces "
        f"--calibration {args.calibration}"
    )
    os.environ["DEEPFAKE_DETECT_CACHE"] = cache = tempfile.mkdtemp(prefix="precision-cache-")
    try:
        calibration = calibration_set([args.ffhq, args.dfdc], args.calibration)
        det = load_detector()
        if args.only != "speed":
            t0 = time.perf_counter()
            det.predict(calibration[:2], precision="int8", calibration=calibration)
            build_s = time.perf_counter() - t0
            rows, raw = quality_rows(det, {"ffhq-stylegan val": args.ffhq, "dfdc-faces val": args.dfdc}, calibration)
            results["quality"] = dict(
                rows=rows,
                raw=raw,
                int8_build_seconds=build_s,
                threshold=det.config.threshold,
                calibration=[str(p) for p in calibration],
                commit=git_rev(),
                command=cmd + (" --only quality" if args.only else ""),
                machine=machine(),
                minutes=(time.perf_counter() - t0) / 60,
            )
        if args.only != "quality":
            t0 = time.perf_counter()
            rows, raw = [], {}
            for name, d in (("default", det), ("resnet18-baseline", load_detector("resnet18-baseline"))):
                row, raw[name] = speed_rows(name, d, calibration, args.rounds, args.seconds)
                rows.append(row)
            results["speed"] = dict(
                rows=rows,
                raw=raw,
                rounds=args.rounds,
                commit=git_rev(),
                command=cmd + (" --only speed" if args.only else ""),
                machine=machine(),
                minutes=(time.perf_counter() - t0) / 60,
            )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    q, sp = results.get("quality"), results.get("speed")
    quality = (
        "(not measured yet)"
        if q is None
        else f"""Measured by `{q["command"]}` (commit {q["commit"]}, {q["minutes"]:.1f} minutes).
Machine: {q["machine"]}.

The int8 graph was calibrated on {len(q["calibration"])} images drawn from the *train* splits (half
from each source) and built in {q["int8_build_seconds"]:.0f} s (export, calibration and quantisation;
cached afterwards). "flipped": images whose verdict at the default's threshold ({q["threshold"]})
changes.

{table(["split", "int8 run by", "images", "AUC fp32", "AUC int8", "AUC change", "TPR@FPR=1e-3 fp32", "TPR@FPR=1e-3 int8", "mean abs score diff", "max abs score diff", "flipped"], q["rows"])}"""
    )
    speed = (
        "(not measured yet)"
        if sp is None
        else f"""Measured by `{sp["command"]}` (commit {sp["commit"]}, {sp["minutes"]:.1f} minutes).
Machine: {sp["machine"]}. Median img/s of {sp["rounds"]} interleaved rounds; compare within a row.

{table(["detector", "input", "OpenVINO fp32", "OpenVINO int8", "ONNX Runtime fp32", "ONNX Runtime int8", "torch (optimised)"], sp["rows"])}"""
    )
    doc = f"""# int8 vs float32

`predict(precision="int8", calibration=...)` scores with a graph quantised statically by ONNX
Runtime's tool (QDQ: per-channel int8 weights, uint8 activations whose ranges are the
99.999th percentile seen on the calibration images; pooling and head in float32), run by
OpenVINO or ONNX Runtime; see [backends](backends.md#int8). Written by
`benchmarks/precision.py`; raw numbers in [precision.json](precision.json).

## Quality of the built-in default (`load_detector()`), every validation image

{quality}

## Speed on a ready batch of 32 (img/s)

{speed}
"""
    print(write_doc(args.out, doc))


if __name__ == "__main__":
    main()
