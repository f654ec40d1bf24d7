"""Shared helpers for the benchmark scripts: the machine description and Markdown tables."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

DOCS = Path(__file__).resolve().parent.parent / "docs"
NOTES_MARKER = "<!-- Written by hand below this line: the benchmark script keeps it when it rewrites the page. -->"


def reference_rate(seconds: float = 6.0) -> float:
    """img/s of a fixed yardstick on this machine: the bare torch forward (BatchNorm folded,
    channels_last, ``inference_mode``) of ``efficientnet-lite0`` with seeded random weights
    on a ready 224x224 batch of 32, best of three runs of ``seconds / 3``. Tables from
    different machines compare through it."""
    from deepfake_detect import load_detector

    torch.manual_seed(0)
    det = load_detector("efficientnet-lite0", backend="torch")
    x = torch.randn(32, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    det.predict_tensor(x)
    best = 0.0
    for _ in range(3):
        done, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds / 3:
            det.predict_tensor(x)
            done += len(x)
        best = max(best, done / (time.perf_counter() - t))
    return best


def machine(reference: bool = False) -> str:
    """One line: CPU model, cores (all and usable), RAM, Python, torch and its threads; with
    ``reference``, also :func:`reference_rate` (measured now, about 6 seconds)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    except (ValueError, OSError):
        mem = float("nan")
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    line = (
        f"{cpu}, {os.cpu_count()} cores ({usable} usable), {mem:.0f} GiB RAM; Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    if reference:
        line += (
            f"; yardstick: bare torch forward of efficientnet-lite0 (random weights, 224x224, batch 32) "
            f"{reference_rate():.1f} img/s"
        )
    return line


def git_rev() -> str:
    """The checked-out commit, ``-dirty`` appended when the tree has uncommitted changes."""
    try:
        return (
            subprocess.run(
                ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=Path(__file__).parent
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"


def table(headers: list[str], rows: list[list[object]]) -> str:
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_doc(path: Path, generated: str) -> str:
    """Write a benchmark page: the generated part, then the hand-written notes kept from the
    page already there (everything from :data:`NOTES_MARKER` on). Returns the page."""
    notes = NOTES_MARKER + "\n"
    if path.is_file():
        old = path.read_text()
        if NOTES_MARKER in old:
            notes = old[old.index(NOTES_MARKER) :]
    page = generated.rstrip("\n") + "\n\n" + notes
    path.write_text(page)
    return page


def predict_rate(det, images: list, repeats: int = 2, backend: str = "auto") -> float:
    """Images per second of ``Detector.predict`` on decoded images (best of ``repeats``)."""
    det.predict(images[:8], progress=False, backend=backend)  # warm-up (and a graph export)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        det.predict(images, batch_size=32, progress=False, backend=backend)
        best = min(best, time.perf_counter() - t)
    return len(images) / best


def stop_after(seconds: float):
    """A ``finetune`` callback that ends training after the epoch in which ``seconds`` of wall
    clock have passed (finetune stops cleanly on KeyboardInterrupt and keeps the best epoch)."""
    start = time.perf_counter()

    def callback(record):
        if time.perf_counter() - start > seconds:
            raise KeyboardInterrupt

    return callback


def source_parser(doc: str | None, *, celebdf: bool = True) -> argparse.ArgumentParser:
    """An argument parser described by the script's docstring, with the data folders every
    cross-source benchmark takes: ``--dfdc``, ``--ffhq`` and (``celebdf``) ``--celebdf``."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dfdc", type=Path, required=True, help="the dfdc-faces folder")
    ap.add_argument("--ffhq", type=Path, required=True, help="the ffhq-stylegan folder")
    if celebdf:
        ap.add_argument("--celebdf", type=Path, required=True, help="the celebdf-faces folder")
    return ap
