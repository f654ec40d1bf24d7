"""Load test of ``deepfake-detect serve`` on loopback: throughput, latency, errors, memory.

    python benchmarks/serve_load.py ../shared/data/ffhq-stylegan/val [--clients 1 8 32] [--seconds 30]

First measures, in this process and on the same images (their bytes, in memory),
``Detector.predict(backend="torch")`` and ``Detector.predict()`` (backend auto) in images per
second: one warm-up pass each, then ``--predict-repeats`` timed passes of each, alternating
(median reported); again after the server has stopped, so that a change in the machine's
other load shows (the ratios use the mean of the two). In between, it starts the server in a
subprocess (the built-in default detector unless ``--model``; ``--backend``, default auto)
and, for each number of clients, runs that many concurrent clients for ``--seconds``, each posting one image per request (multipart,
images taken in turn from the folder) and waiting for the answer before the next. Records
every answer's status and latency, compares every score with ``Detector.predict`` on the same
files in this process (on the runtime the server chose), samples the server's resident memory,
and gives the service's images per second over ``predict(backend="torch")``'s. Writes its
section of docs/benchmarks.md and of docs/serve.md (between the ``serve_load.py`` markers; the
rest of each page is left as it is).
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from _common import DOCS, git_rev, machine, table  # run as a script: its folder is on sys.path

from deepfake_detect import Detector, load_detector
from deepfake_detect.backends import BACKENDS
from deepfake_detect.data import list_images

BEGIN = "<!-- serve_load.py: begin (written by benchmarks/serve_load.py; edits here are replaced) -->"
END = "<!-- serve_load.py: end -->"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "deepfake_detect",
        "serve",
        "--port",
        str(port),
        "--no-access-log",
        "--max-batch",
        str(args.max_batch),
        "--max-wait-ms",
        str(args.max_wait_ms),
        "--backend",
        args.backend,
    ]
    if args.model:
        cmd.insert(4, args.model)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}: {' '.join(cmd)}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start within 180 s")


def load(url: str, files: list[tuple[str, bytes]], clients: int, seconds: float, pid: int) -> dict:
    import httpx

    records: list[tuple[int, int, float, float]] = []  # (file index, status, latency s, p_fake)
    failures: list[str] = []
    samples: list[float] = []
    stop = threading.Event()
    deadline = time.monotonic() + seconds

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=120) as c:
            i = k * 7919
            while time.monotonic() < deadline:
                j = i % len(files)
                name, data = files[j]
                t0 = time.perf_counter()
                try:
                    r = c.post("/v1/predict", files={"file": (name, data, "image/jpeg")})
                except httpx.HTTPError as e:
                    failures.append(f"{type(e).__name__}: {e}")
                    continue
                latency = time.perf_counter() - t0
                score = r.json()["results"][0]["p_fake"] if r.status_code == 200 else float("nan")
                records.append((j, r.status_code, latency, score))
                i += 1

    def sample() -> None:
        while not stop.is_set():
            v = rss_mib(pid)
            if v is not None:
                samples.append(v)
            stop.wait(0.2)

    before = httpx.get(url + "/healthz").json()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    stop.set()
    sampler.join()
    after = httpx.get(url + "/healthz").json()
    third = max(1, len(samples) // 3)
    return {
        "records": records,
        "failures": failures,
        "wall": wall,
        "batches": after["batches"] - before["batches"],
        "images": after["images"] - before["images"],
        "rss_first": max(samples[:third]) if samples else float("nan"),
        "rss_last": max(samples[-third:]) if samples else float("nan"),
    }


def predict_rates(detector: Detector, data: list[bytes], repeats: int) -> dict[str, float]:
    """Median images per second of ``predict(backend="torch")`` and ``predict()`` (auto) on
    ``data``, decoding included: a warm-up pass each, then ``repeats`` timed passes of each,
    alternating so both see the same load on a shared machine."""
    runs: dict[str, list[float]] = {"torch": [], "auto": []}
    for backend in runs:
        detector.predict(data, backend=backend)  # builds the optimised model / the graph session
    for _ in range(repeats):
        for backend in runs:
            t0 = time.perf_counter()
            detector.predict(data, backend=backend)
            runs[backend].append(len(data) / (time.perf_counter() - t0))
    return {backend: float(np.median(rates)) for backend, rates in runs.items()}


def command(args: argparse.Namespace) -> str:
    """The command line of this run (without --note and --no-write), as the docs show it."""
    parts = ["python", "benchmarks/serve_load.py", str(args.images)]
    if args.model:
        parts += ["--model", args.model]
    parts += ["--clients", *map(str, args.clients), "--seconds", f"{args.seconds:g}"]
    defaults = {
        "warmup": 5.0,
        "max_batch": 32,
        "max_wait_ms": 10.0,
        "limit": 200,
        "predict_repeats": 3,
        "backend": "auto",
    }
    for name, default in defaults.items():
        value = getattr(args, name)
        if value != default:
            parts += [f"--{name.replace('_', '-')}", f"{value:g}" if isinstance(value, float) else str(value)]
    return shlex.join(parts)


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between the markers in ``path`` (appended at the end the first time)."""
    text = path.read_text() if path.is_file() else ""
    block = f"{BEGIN}\n{section.strip()}\n{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path, help="folder of images to send (e.g. ../shared/data/ffhq-stylegan/val)")
    ap.add_argument("--model", default=None, help="detector to serve (default: the built-in default)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the measured runs")
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=10.0)
    ap.add_argument("--limit", type=int, default=200, help="use at most this many images")
    ap.add_argument(
        "--predict-repeats", type=int, default=3, help="timed passes of each predict over the images (default: 3)"
    )
    ap.add_argument("--backend", choices=BACKENDS, default="auto", help="the server's --backend (default: auto)")
    ap.add_argument("--note", default="", help="a sentence about the machine's other load, for the docs")
    ap.add_argument("--no-write", action="store_true", help="print the section, leave the docs alone")
    args = ap.parse_args()

    paths = list_images(args.images)[: args.limit]
    if not paths:
        raise SystemExit(f"no images in {args.images}")
    files = [(p.name, p.read_bytes()) for p in paths]
    detector = load_detector(args.model)
    before = predict_rates(detector, [d for _, d in files], args.predict_repeats)
    auto_backend = detector.last_backend  # what predict() (auto) ran on
    print(
        f"predict before the server: torch {before['torch']:.1f} img/s, auto ({auto_backend}) {before['auto']:.1f} img/s",
        file=sys.stderr,
    )
    proc, url = start_server(args)
    rows, worst_diff, total_errors = [], 0.0, 0
    try:
        import httpx

        served = httpx.get(url + "/v1/models").json()["backend"]  # e.g. "openvino (fp32)"
        runtime = served.split(" ", 1)[0]
        expected = detector.predict(paths, backend=runtime)  # the server's scores come from this runtime
        load(url, files, max(args.clients), args.warmup, proc.pid)  # warm-up, not reported
        for clients in args.clients:
            r = load(url, files, clients, args.seconds, proc.pid)
            recs = r["records"]
            lat = np.array([x[2] for x in recs]) * 1000
            ok = [x for x in recs if x[1] == 200]
            diff = float(np.max(np.abs(np.array([x[3] for x in ok]) - expected[[x[0] for x in ok]])) if ok else np.nan)
            errors = len(r["failures"]) + sum(1 for x in recs if x[1] != 200)
            fivexx = sum(1 for x in recs if x[1] >= 500)
            worst_diff = max(worst_diff, diff)
            total_errors += errors
            rows.append(
                [
                    clients,
                    len(recs),
                    round(r["wall"], 1),
                    len(recs) / r["wall"],
                    float(np.percentile(lat, 50)),
                    float(np.percentile(lat, 99)),
                    errors,
                    fivexx,
                    r["images"] / max(1, r["batches"]),
                    f"{diff:.1e}",
                    f"{r['rss_first']:.0f} / {r['rss_last']:.0f}",
                ]
            )
            print(f"clients={clients}: {len(recs)} requests in {r['wall']:.1f} s, errors={errors}", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # predict again once the server is gone: a change in the machine's other load during the
    # run shows as a difference between the two; the ratios use their mean
    after = predict_rates(detector, [d for _, d in files], args.predict_repeats)
    print(
        f"predict after the server: torch {after['torch']:.1f} img/s, auto {after['auto']:.1f} img/s", file=sys.stderr
    )
    rates = {k: (before[k] + after[k]) / 2 for k in before}
    for row in rows:
        row.insert(4, f"{row[3] / rates['torch']:.2f}x")
    headers = [
        "clients",
        "requests",
        "seconds",
        "req/s (= img/s)",
        "vs predict torch",
        "p50 ms",
        "p99 ms",
        "errors",
        "5xx",
        "mean batch",
        "max score diff vs predict",
        "peak RSS MiB, first / last third",
    ]
    model = args.model or "the built-in default detector (v9: two EfficientNet-Lite0 averaged, 256x256)"
    note = f" {args.note}" if args.note else ""
    auto_name = f"{auto_backend.backend} {auto_backend.precision}" if auto_backend is not None else "?"
    per_clients = {row[0]: row[3] for row in rows}
    at8 = (
        f" With 8 clients the service gave {per_clients[8]:.1f} img/s, {per_clients[8] / rates['torch']:.2f}x "
        f'`predict(backend="torch")` and {per_clients[8] / rates["auto"]:.2f}x `predict()`.'
        if 8 in per_clients
        else ""
    )
    section = "\n".join(
        [
            "## Detection service under load (`deepfake-detect serve`)",
            "",
            f"Measured by `{command(args)}` (commit {git_rev()}): the server in a subprocess on loopback serving "
            f"{model} with `--max-batch {args.max_batch} --max-wait-ms {args.max_wait_ms:g} --backend {args.backend}` "
            f"(it scored with {served}); each client posts one {len(files)}-image-folder JPEG per request and waits "
            f"for the answer; {args.warmup:g} s of warm-up first.",
            f"Machine: {machine()}.{note}",
            "",
            f"In the same run, in this process, on the same {len(files)} images (their bytes, in memory; decoding "
            f'included), before the server started and after it stopped: `predict(backend="torch")` '
            f"{before['torch']:.1f} and {after['torch']:.1f} img/s (mean {rates['torch']:.1f}), `predict()` "
            f"(auto: {auto_name}) {before['auto']:.1f} and {after['auto']:.1f} img/s (mean {rates['auto']:.1f}); "
            f"each the median of {args.predict_repeats} passes after a warm-up pass. The ratios use the means.{at8}",
            "",
            table(headers, rows),
            "",
            (
                "Every request was answered with 200; errors in all runs: 0."
                if total_errors == 0
                else f"ERRORS: {total_errors} requests failed or got a status other than 200 (see the table)."
            )
            + f" Largest difference between a score from the server and `Detector.predict(backend={runtime!r})` "
            f"on the same file: {worst_diff:.1e}.",
        ]
    )
    print(section)
    if not args.no_write:
        write_section(DOCS / "benchmarks.md", section)
        write_section(DOCS / "serve.md", section.replace("## Detection service under load", "## Measured throughput"))


if __name__ == "__main__":
    main()
