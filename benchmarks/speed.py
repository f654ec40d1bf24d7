"""Speed and memory, side by side in one run, on the same images and the same weights.

    python benchmarks/speed.py ../shared/data/ffhq-stylegan [--quick]

Measures, for the built-in default and every registry entry at its input size: the camp
notebook's predict loop (Dataset + torchvision Resize/ToTensor/Normalize, DataLoader batch
40 with 2 workers, no_grad, softmax/sigmoid) vs ``Detector.predict`` on the torch backend
and with ``backend="auto"`` vs the bare model forward on a ready tensor (torch,
channels_last, inference_mode) and the graph runtimes' sessions (ONNX Runtime, OpenVINO) on a
ready array (the limits);
fine-tuning img/s of the camp train loop vs
``Detector.finetune``; frozen-backbone epoch times; predict's peak memory over 500 vs 5,000
images; and the first-call latency of ``load_detector()`` + one prediction. Writes
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import DOCS, git_rev, machine, table, write_doc  # run as a script: its folder is on sys.path
from PIL import Image
from torch import nn

from deepfake_detect import load_detector
from deepfake_detect.backends import GRAPH_BACKENDS, runtime_available
from deepfake_detect.data import LabelFile


class CampDataset(torch.utils.data.Dataset):
    """The camp notebook's dataset: open with PIL, convert RGB, apply torchvision transforms."""

    def __init__(self, paths, labels, transform):
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = Image.open(self.paths[i]).convert("RGB")
        return self.transform(img), torch.tensor(self.labels[i])


def camp_transform(det, train: bool):
    from torchvision import transforms

    h, w = det.config.input_size
    steps = [transforms.Resize((h, w))]
    if train:
        steps += [transforms.RandomHorizontalFlip(), transforms.RandomVerticalFlip()]
    steps += [transforms.ToTensor(), transforms.Normalize(det.config.mean, det.config.std)]
    return transforms.Compose(steps)


def camp_predict(det, paths) -> tuple[float, np.ndarray]:
    loader = torch.utils.data.DataLoader(
        CampDataset(paths, [0] * len(paths), camp_transform(det, False)), batch_size=40, shuffle=False, num_workers=2
    )
    model = det.model.eval()
    out = []
    t = time.perf_counter()
    with torch.no_grad():
        for x, _ in loader:
            out.append(det.scores_from_output(model(x)).numpy())
    return len(paths) / (time.perf_counter() - t), np.concatenate(out)


#: The graph runtimes installed here (each gets a "limit" column).
RUNTIMES = [b for b in GRAPH_BACKENDS if runtime_available(b)]


def bare_forward(det, n: int, batch: int) -> dict[str, float]:
    """img/s of the plain and the optimised torch forward, and of each graph runtime's
    session (the limit of ``predict(backend=...)``), on the same ready random batch."""
    fast_model = det.engine.inference_model()  # the same optimised module predict uses
    plain = det.model.eval()
    h, w = det.config.input_size
    x = torch.randn(batch, 3, h, w).contiguous(memory_format=torch.channels_last)
    x_nchw = x.contiguous().numpy()
    runs = {"plain": lambda: plain(x), "optimised": lambda: fast_model(x)}
    for backend in RUNTIMES:  # the sessions predict runs
        session = det.engine.select(backend, "fp32", num_images=n)[1]
        runs[backend] = lambda s=session: s(x_nchw)
    best = {}
    for name, run in runs.items():
        with torch.inference_mode():
            run()
            t = time.perf_counter()
            done = 0
            while done < n:
                run()
                done += batch
        best[name] = done / (time.perf_counter() - t)
    return best


def timed_predict(det, paths: list[Path], backend: str) -> tuple[float, np.ndarray]:
    t = time.perf_counter()
    scores = det.predict(paths, batch_size=32, backend=backend)
    return len(paths) / (time.perf_counter() - t), scores


PREDICT_HEADERS = [
    "detector",
    "input",
    "images",
    "camp loop",
    "predict (torch)",
    "predict (auto)",
    "ran",
    "bare (plain)",
    "bare (optimised)",
    "limit (OpenVINO)",
    "limit (ORT)",
    "torch / camp",
    "auto / torch",
    "auto / limit",
    "export s",
    "max score diff",
    "auto vs torch",
]
#: Rows of the predict table: the built-in default (``load_detector()``), then the registry entries.
PREDICT_ENTRIES = ("default", "efficientnet-lite0", "resnet18-baseline", "resnet18-finetune", "ae-classifier")


def predict_rows(
    paths: list[Path], quick: bool, references: dict[str, str] | None = None
) -> tuple[list[list[object]], dict]:
    """One row per entry of ``PREDICT_ENTRIES``, with ``references`` (``{row name: anything
    load_detector takes}``, e.g. an earlier default saved to a folder) after the default."""
    rows, raw = [], {}
    references = references or {}
    entries = [PREDICT_ENTRIES[0], *references, *PREDICT_ENTRIES[1:]]
    for name in entries:
        n = 48 if name == "ae-classifier" else (120 if quick else 400)
        det = load_detector() if name == "default" else load_detector(references.get(name, name))
        sub = paths[:n]
        camp_rate, camp_scores = camp_predict(det, sub)
        det.predict(sub[:4], batch_size=32, backend="torch")  # warm-up: builds the optimised model once
        torch_rate, torch_scores = timed_predict(det, sub, "torch")
        t = time.perf_counter()
        det.predict(sub[:4], batch_size=32, backend=RUNTIMES[0])  # export + check + session, empty cache
        export_s = time.perf_counter() - t
        auto_rate, auto_scores = timed_predict(det, sub, "auto")
        chosen = det.last_backend.backend
        bare = bare_forward(det, n, 32)
        limit = bare.get(chosen, bare["optimised"])  # the bare forward of what auto ran
        diff = float(np.abs(camp_scores - torch_scores).max())
        auto_diff = float(np.abs(auto_scores - torch_scores).max())
        raw[name] = dict(
            camp=camp_rate,
            library=torch_rate,
            library_auto=auto_rate,
            auto_backend=chosen,
            bare_plain=bare["plain"],
            bare_optimised=bare["optimised"],
            **{f"bare_{b}": bare[b] for b in RUNTIMES},
            export_seconds=export_s,
            n=n,
            max_abs_score_diff_vs_camp=diff,
            max_abs_score_diff_auto_vs_torch=auto_diff,
        )
        h, w = det.config.input_size
        rows.append(
            [
                name,
                f"{h}x{w}",
                n,
                camp_rate,
                torch_rate,
                auto_rate,
                chosen,
                bare["plain"],
                bare["optimised"],
                *(bare.get(b, "-") for b in GRAPH_BACKENDS),
                f"{torch_rate / camp_rate:.2f}x",
                f"{auto_rate / torch_rate:.2f}x",
                f"{auto_rate / limit:.2f}x",
                f"{export_s:.1f}",
                f"{diff:.1e}",
                f"{auto_diff:.1e}",
            ]
        )
        print(rows[-1], file=sys.stderr)
    return rows, raw


def camp_train(det, paths, labels, batch: int, steps: int) -> float:
    loader = torch.utils.data.DataLoader(
        CampDataset(paths, labels, camp_transform(det, True)), batch_size=batch, shuffle=True, num_workers=2
    )
    model = det.model.train()
    opt = torch.optim.Adam(model.parameters(), 5e-3)
    ce = nn.CrossEntropyLoss()
    seen, t = 0, None
    for i, (x, y) in enumerate(loader):
        if i == 1:
            t, seen = time.perf_counter(), 0  # the first step (worker start-up) is not timed
        out = model(x)
        loss = (
            ce(out, y)
            if det.config.output == "softmax"
            else nn.functional.binary_cross_entropy_with_logits(out[:, 0], y.float())
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(y)
        if i >= steps:
            break
    return seen / (time.perf_counter() - t)


def finetune_rows(data: LabelFile, quick: bool) -> tuple[list[list[object]], dict]:
    rows, raw = [], {}
    n = 200 if quick else 400
    idx = list(range(0, len(data), max(1, len(data) // n)))[:n]
    sub = data.subset(idx)
    for name, batch in (("resnet18-baseline", 40), ("efficientnet-lite0", 32)):
        det = load_detector(name)
        camp = camp_train(det, sub.items, sub.labels.tolist(), batch, steps=len(sub) // batch - 1)
        det = load_detector(name)
        res = det.finetune(sub, epochs=2, batch_size=batch, augment="camp", progress=False, num_workers=2)
        lib = res.history[-1]["img_per_s"]
        raw[name] = dict(
            camp=camp, library_epoch2=lib, library_epoch1=res.history[0]["img_per_s"], n=len(sub), batch=batch
        )
        rows.append([name, batch, len(sub), camp, res.history[0]["img_per_s"], lib, f"{lib / camp:.2f}x"])
        print(rows[-1], file=sys.stderr)
    return rows, raw


def frozen_rows(data: LabelFile, quick: bool) -> tuple[list[list[object]], dict]:
    n = 200 if quick else 600
    idx = list(range(0, len(data), max(1, len(data) // n)))[:n]
    sub = data.subset(idx)
    det = load_detector("resnet18-finetune")
    res = det.finetune(sub, epochs=4, batch_size=32, progress=False)
    secs = [h["seconds"] for h in res.history]
    row = [len(sub)] + secs + [f"{secs[0] / max(max(secs[1:]), 1e-3):.0f}x"]  # as the targets table
    return [row], {"n": len(sub), "epoch_seconds": secs}


MEMORY_SCRIPT = r"""
import sys, json
from pathlib import Path
from deepfake_detect import load_detector

def status(key):  # MiB, from /proc: VmHWM is this process's peak (ru_maxrss would include the parent's)
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024

paths = [Path(p) for p in json.loads(sys.argv[1])]
n = int(sys.argv[2])
det = load_detector("resnet18-finetune")
det.predict(paths[:200])  # warm-up: auto's ONNX Runtime session (or the optimised model) and the thread pool exist from here on
base = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak to the current RSS
items = [paths[i % len(paths)] for i in range(n)]
scores = det.predict(items, batch_size=32)
print(json.dumps({"n": n, "rss_before_mib": base, "peak_rss_mib": status("VmHWM")}))
"""


def memory_rows(paths: list[Path], quick: bool) -> tuple[list[list[object]], dict]:
    rows, raw = [], {}
    for n in (500, 2000 if quick else 5000):
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_SCRIPT, json.dumps([str(p) for p in paths]), str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        raw[n] = r
        rows.append([n, r["rss_before_mib"], r["peak_rss_mib"], r["peak_rss_mib"] - r["rss_before_mib"]])
        print(rows[-1], file=sys.stderr)
    return rows, raw


LATENCY_SCRIPT = r"""
import time; t0 = time.perf_counter()
from deepfake_detect import load_detector
t1 = time.perf_counter(); d = load_detector(); t2 = time.perf_counter()
s = d.predict("examples/images/astronaut.jpg"); t3 = time.perf_counter()
import json; print(json.dumps({"import": t1 - t0, "load_detector": t2 - t1, "first_predict": t3 - t2, "total": t3 - t0}))
"""


def latency_rows() -> tuple[list[list[object]], dict]:
    root = Path(__file__).resolve().parent.parent
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", LATENCY_SCRIPT], capture_output=True, text=True, check=True, cwd=root
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["process"] = time.perf_counter() - t
        runs.append(r)
    best = min(runs, key=lambda r: r["total"])
    return [[best["import"], best["load_detector"], best["first_predict"], best["total"], best["process"]]], {
        "runs": runs
    }


def target_rows(raw: dict) -> list[list[str]]:
    """The issue's targets against this run's numbers, one row per target."""

    def check(value: float, limit: float) -> str:
        return "" if value >= limit else " (**not met**)"

    def ratios(entries: dict, numerator: str, denominator: str, limit: float) -> str:
        return ", ".join(
            f"{name} {v[numerator] / v[denominator]:.2f}x{check(v[numerator] / v[denominator], limit)}"
            for name, v in entries.items()
        )

    secs = raw["frozen"]["epoch_seconds"]
    frozen = secs[0] / max(max(secs[1:]), 1e-3)
    growth = sorted((int(n), m["peak_rss_mib"] - m["rss_before_mib"]) for n, m in raw["memory"].items())
    flat = "" if growth[-1][1] <= 1.25 * growth[0][1] + 32 else " (**not met**)"
    default, resnet = raw["predict"]["default"], raw["predict"]["resnet18-baseline"]

    def one(value: float, limit: float) -> str:
        return f"{value:.2f}x{check(value, limit)}"

    against_references = [
        [
            f'`predict()` (default `backend="auto"`) on the default >= 0.5x on {name}',
            one(default["library_auto"] / raw["predict"][name]["library_auto"], 0.5),
        ]
        for name in raw.get("references", {})
    ]
    return against_references + [
        [
            '`predict()` (default `backend="auto"`) >= 1.5x the camp loop',
            ratios(raw["predict"], "library_auto", "camp", 1.5),
        ],
        ['`predict(backend="torch")` >= 1.5x the camp loop', ratios(raw["predict"], "library", "camp", 1.5)],
        [
            '`predict(backend="torch")` >= 0.9x the bare optimised forward',
            ratios(raw["predict"], "library", "bare_optimised", 0.9),
        ],
        [
            '`predict(backend="auto")` on the default >= 2.0x the torch path',
            one(default["library_auto"] / default["library"], 2.0),
        ],
        [
            '`predict(backend="auto")` on the default >= 0.9x the bare ONNX Runtime session',
            one(default["library_auto"] / default["bare_onnxruntime"], 0.9),
        ],
        [
            '`predict(backend="auto")` on resnet18-baseline >= 1.2x the torch path',
            one(resnet["library_auto"] / resnet["library"], 1.2),
        ],
        ["`finetune` >= 1.3x the camp train loop (epoch 2)", ratios(raw["finetune"], "library_epoch2", "camp", 1.3)],
        ["frozen-backbone epochs after the first >= 10x faster", f"{frozen:.0f}x{check(frozen, 10)}"],
        [
            "predict's memory flat in the number of images",
            ", ".join(f"+{g:.0f} MiB for {n:,} images" for n, g in growth) + flat,
        ],
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="ffhq-stylegan folder (train/, val/, labels)")
    ap.add_argument("--quick", action="store_true", help="fewer images (a smoke run)")
    ap.add_argument("--out", type=Path, default=DOCS / "benchmarks.md")
    ap.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="NAME=DETECTOR",
        help="also time this detector (a folder or registry name) as row NAME, after the default, and compare the "
        "default's predict() with it (e.g. the default it replaced, saved with save_pretrained)",
    )
    args = ap.parse_args()
    references = dict(spec.split("=", 1) for spec in args.reference)
    # a fresh graph cache: export times are measured, and the user's cache is left alone
    os.environ["DEEPFAKE_DETECT_CACHE"] = cache = tempfile.mkdtemp(prefix="speed-cache-")
    atexit.register(shutil.rmtree, cache, True)
    train = LabelFile(args.data / "train_label.txt", args.data / "train")
    val = LabelFile(args.data / "val_label.txt", args.data / "val")
    paths = list(val.items) + list(train.items)
    t0 = time.perf_counter()
    pred, pred_raw = predict_rows(paths, args.quick, references)
    ft, ft_raw = finetune_rows(train, args.quick)
    frozen, frozen_raw = frozen_rows(train, args.quick)
    mem, mem_raw = memory_rows(paths, args.quick)
    lat, lat_raw = latency_rows()
    minutes = (time.perf_counter() - t0) / 60
    raw = dict(predict=pred_raw, finetune=ft_raw, frozen=frozen_raw, memory=mem_raw, latency=lat_raw)
    raw["references"] = references
    cmd = "python benchmarks/speed.py ../shared/data/ffhq-stylegan" + (" --quick" if args.quick else "")
    cmd += "".join(f" --reference {name}={where}" for name, where in references.items())
    reference_text = "".join(f", {name} the detector saved in `{where}`" for name, where in references.items())
    doc = f"""# Benchmarks: speed and memory

Measured side by side in one run by `{cmd}` (commit {git_rev()}, {minutes:.1f} minutes).
Machine: {machine(reference=True)}. Images: the ffhq-stylegan 256x256 JPEGs (val then train split).
Numbers are from one run on a shared 2-core machine; expect a few percent of noise.

## Predict throughput (img/s)

"camp loop": the camp notebook's inference (Dataset + torchvision Resize/ToTensor/Normalize,
DataLoader batch 40 with 2 workers, `no_grad`, NCHW float32). "predict (torch)":
`Detector.predict(backend="torch")` (batch 32); "predict (auto)": `Detector.predict()` with the
default `backend="auto"`, after its graph was exported (the "ran" column says what auto chose;
"export s" is the one-off export + check + session time on an empty cache). "bare": the
model's forward on a ready random tensor, batch 32, `inference_mode`, channels_last, as is
(plain) and after the library's inference optimisation (BatchNorm folded into convolutions);
"limit (OpenVINO)", "limit (ORT)": the session `backend="openvino"` / `"onnxruntime"` runs, on a
ready NCHW float32 array ("-": not installed); "auto / limit" divides by the limit of what auto
ran. "default" is the built-in detector (`load_detector()`){reference_text}, the other rows fresh
weights of each registry entry. The last two columns: the largest difference between the camp loop's
scores and `predict`'s (the same preprocessing: the scores must agree), and between auto's and
the torch path's.

{table(PREDICT_HEADERS, pred)}

## Fine-tuning throughput (img/s)

The camp train loop (torchvision Resize + flips in a DataLoader with 2 workers, Adam) vs
`Detector.finetune(augment="camp", num_workers=2)` on the same images and batch size. The
library's first epoch decodes and resizes every image once; later epochs read them from the
uint8 cache.

{table(["detector", "batch", "images", "camp loop", "finetune epoch 1", "finetune epoch 2", "epoch 2 / camp"], ft)}

## Frozen-backbone fine-tuning (`resnet18-finetune`), seconds per epoch

With the backbone frozen and no augmentation the backbone's features are computed once, in
the first epoch; later epochs train only the head on the cached features.

{table(["images", "epoch 1", "epoch 2", "epoch 3", "epoch 4", "epoch 1 / slowest later"], frozen)}

## Peak memory of `predict` (resnet18-finetune, MiB of resident memory)

Scoring streams the inputs: at most two batches are decoded at a time.

{table(["images", "RSS before predict", "peak RSS during predict", "growth"], mem)}

## First-call latency (seconds; what a CLI user waits for)

A fresh process: import, `load_detector()` (the built-in default), one prediction. Best of 3.

{table(["import", "load_detector()", "first predict", "total in Python", "whole process"], lat)}

## Against the targets (this run)

{table(["target", "result"], target_rows(raw))}

<details><summary>Raw numbers</summary>

```json
{json.dumps(raw, indent=1)}
```
</details>
"""
    print(write_doc(args.out, doc))


if __name__ == "__main__":
    main()
