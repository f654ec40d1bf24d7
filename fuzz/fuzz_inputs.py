"""Fuzz the input parsers: only the library's documented errors may escape.

Two targets, each run for a bounded time:

* ``images``: random bytes and mutated valid PNG / JPEG / GIF / WebP / BMP / TIFF / PPM
  files (byte flips, overwrites, insertions, deletions, truncation, PNG chunks with their
  CRCs recomputed so the mutation reaches the decoder) are written to a temporary file
  and read with ``load_image`` and ``Preprocessor(...).prepare``.
* ``labels``: random and CSV-shaped text (and non-UTF-8 bytes) is written to a temporary
  file and parsed with ``read_label_file``.

Any exception that is not a :class:`deepfake_detect.DeepfakeDetectError` (and, for a
successful call, any broken result) is a failure: it is reported with its input, and the
input is saved under ``--save-dir`` for reproduction. Not part of the pytest suite::

    python fuzz/fuzz_inputs.py                    # 60 s per target
    python fuzz/fuzz_inputs.py --seconds 600 --target images --seed 1

Prints e.g. ``image loading: 12345 cases, 0 unexpected exceptions`` per target and exits
with status 1 if anything unexpected happened.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from PIL import Image

from deepfake_detect import DeepfakeDetectError
from deepfake_detect.config import DetectorConfig
from deepfake_detect.data import Preprocessor, load_image, read_label_file

#: Pixel limit while fuzzing: a mutated header claiming 60M pixels would otherwise make
#: each case decode hundreds of MB. The check is the same code at any threshold.
FUZZ_MAX_PIXELS = 2_000_000


@dataclass
class Report:
    name: str
    cases: int = 0
    refused: Counter = field(default_factory=Counter)  # documented errors, by type
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, input preview, traceback)
    slowest: tuple[float, str] = (0.0, "")

    def line(self) -> str:
        return f"{self.name}: {self.cases} cases, {len(self.failures)} unexpected exceptions"


# -- seeds for the image target -----------------------------------------------------------
def _seed_images() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8), "RGB")
    out: list[tuple[str, bytes]] = []

    def add(suffix: str, img: Image.Image, fmt: str, **kw: Any) -> None:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        out.append((suffix, buf.getvalue()))

    add(".png", rgb, "PNG")
    add(".png", rgb.convert("L"), "PNG")
    add(".png", rgb.convert("RGBA"), "PNG")
    add(".png", rgb.quantize(16), "PNG", transparency=2)
    add(".png", Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257), "PNG")
    add(".jpg", rgb, "JPEG", quality=80)
    add(".jpg", rgb, "JPEG", quality=80, progressive=True)
    add(".jpg", rgb.convert("CMYK"), "JPEG")
    exif = Image.Exif()
    exif[0x0112] = 6
    add(".jpg", rgb, "JPEG", exif=exif.tobytes())
    add(
        ".gif",
        rgb.quantize(8),
        "GIF",
        save_all=True,
        append_images=[Image.new("P", (20, 24), 1), Image.new("P", (20, 24), 3)],
        duration=50,
        loop=0,
    )
    add(".webp", rgb, "WEBP", lossless=True)
    add(".webp", rgb, "WEBP", quality=50)
    add(".bmp", rgb, "BMP")
    add(".bmp", rgb.quantize(16), "BMP")
    add(".tif", rgb, "TIFF")
    add(".tif", rgb.convert("CMYK"), "TIFF", compression="tiff_lzw")
    add(".tif", rgb, "TIFF", save_all=True, append_images=[rgb.convert("L")], compression="packbits")
    add(".ppm", rgb, "PPM")
    add(".pgm", rgb.convert("L"), "PPM")
    add(".png", rgb, "PNG", save_all=True, append_images=[rgb.convert("L").convert("RGB")], duration=40)  # APNG
    add(".webp", rgb, "WEBP", save_all=True, append_images=[rgb.rotate(90)], duration=40)  # animated WebP
    # formats a file of any name may hold: PIL tells them by their content, not the suffix
    for suffix, fmt, img in (
        (".ico", "ICO", rgb),
        (".tga", "TGA", rgb),
        (".pcx", "PCX", rgb),
        (".sgi", "SGI", rgb),
        (".qoi", "QOI", rgb),
        (".dds", "DDS", rgb.convert("RGBA")),
        (".im", "IM", rgb),
        (".spider", "SPIDER", rgb.convert("F")),
        (".xbm", "XBM", rgb.convert("1")),
        (".msp", "MSP", rgb.convert("1")),
        (".jp2", "JPEG2000", rgb),
        (".blp", "BLP", rgb.quantize(8)),
        (".avif", "AVIF", rgb),
    ):
        try:
            add(suffix, img, fmt)
        except Exception:  # a codec this PIL was built without
            pass
    return out


SEEDS = _seed_images()
SUFFIXES = sorted({s for s, _ in SEEDS})


def _fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC of a (mutated) PNG, so the decoder, not the CRC check, sees it."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out, pos = bytearray(data[:8]), 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        end = pos + 8 + length
        if end + 4 > len(data):
            out += data[pos:]
            return bytes(out)
        body = data[pos + 4 : end]
        out += data[pos:end] + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
        pos = end + 4
    out += data[pos:]
    return bytes(out)


def _mutate(data: bytes, ops: list[tuple[int, int, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for op, pos, value, blob in ops:
        n = len(buf)
        at = pos % (n + 1)
        if op == 0 and n:  # flip bits
            buf[at % n] ^= value or 1
        elif op == 1 and n:  # overwrite a byte
            buf[at % n] = value
        elif op == 2:  # insert bytes
            buf[at:at] = blob
        elif op == 3:  # delete a range
            del buf[at : at + 1 + value % 64]
        elif op == 4:  # truncate
            del buf[at:]
        elif op == 5 and n >= 4:  # overwrite a 32-bit big-endian integer (sizes, lengths, offsets)
            at = min(at, n - 4)
            buf[at : at + 4] = struct.pack(">I", [0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, value << 8][value % 6])
        elif op == 6 and n >= 2:  # overwrite a 16-bit little-endian integer (BMP, GIF, TIFF fields)
            at = min(at, n - 2)
            buf[at : at + 2] = struct.pack("<H", [0, 1, 0xFFFF, value * 257][value % 4])
        elif op == 7 and n:  # duplicate a slice
            buf[at:at] = buf[at : at + 1 + value]
    return bytes(buf)


MUTATION = st.tuples(st.integers(0, 7), st.integers(0, 1 << 16), st.integers(0, 255), st.binary(max_size=16))
IMAGE_CASES = st.one_of(
    st.tuples(st.sampled_from(SUFFIXES), st.binary(max_size=4096)),  # random bytes
    st.builds(lambda s, ops: (s[0], _mutate(s[1], ops)), st.sampled_from(SEEDS), st.lists(MUTATION, max_size=6)),
    st.builds(
        lambda s, ops: (s[0], _fix_png_crcs(_mutate(s[1], ops))),
        st.sampled_from([s for s in SEEDS if s[0] == ".png"]),
        st.lists(MUTATION, min_size=1, max_size=4),
    ),
    st.builds(lambda s, head: (s[0], head + s[1][len(head) :]), st.sampled_from(SEEDS), st.binary(max_size=32)),
)


def _check_image(path: Path, preps: list[Preprocessor]) -> None:
    img = load_image(path, max_pixels=FUZZ_MAX_PIXELS)
    if img.mode != "RGB" or img.size[0] < 1 or img.size[1] < 1:
        raise AssertionError(f"load_image returned mode {img.mode} size {img.size}")
    np.asarray(img)  # the pixels are there
    for prep in preps:
        arr = prep.prepare(path)
        if arr.dtype != np.uint8 or arr.shape != (prep.height, prep.width, 3):
            raise AssertionError(f"prepare returned {arr.dtype} {arr.shape}")


# -- the label target ---------------------------------------------------------------------
_TOKENS = [
    "img_name",
    "target",
    "0",
    "1",
    "2",
    "-1",
    "0.5",
    "1.0",
    "1e0",
    "nan",
    "inf",
    "fake",
    "real",
    "",
    " ",
    "a.png",
    "b.jpg",
    "a.png",
    "ÿ",
    "\ufeff",
    '"',
    '""',
    "'",
    "\\",
    "\x00",
    "#",
    "img_name ",
    " target",
]
_FIELD = st.one_of(st.sampled_from(_TOKENS), st.text(max_size=12))
_SEP = st.sampled_from([",", ",", ",", ";", "\t", ", "])
_EOL = st.sampled_from(["\n", "\n", "\r\n", "\r", "\n\n", "\x0c", "\u2028"])


@st.composite
def _csv_text(draw) -> str:
    sep = draw(_SEP)
    header = draw(
        st.one_of(st.just(["img_name", "target"]), st.just(["target", "img_name"]), st.lists(_FIELD, max_size=4))
    )
    rows = draw(st.lists(st.lists(_FIELD, max_size=4), max_size=8))
    text = draw(_EOL).join(sep.join(r) for r in [header, *rows])
    if draw(st.booleans()):
        text += draw(_EOL)
    if draw(st.integers(0, 9)) == 0:  # a quoted field spanning lines, or an unterminated quote
        text += draw(st.sampled_from(['\n"a\nb.png",1', '\n"a.png,1', '\nx.png,"1"', '\n"x""y.png",0']))
    return text


LABEL_CASES = st.one_of(
    st.text(max_size=400).map(lambda t: t.encode("utf-8")),
    _csv_text().map(lambda t: t.encode("utf-8")),
    st.binary(max_size=400),
    st.tuples(_csv_text(), st.binary(min_size=1, max_size=4)).map(lambda t: t[0].encode("utf-8") + t[1]),
    st.tuples(_csv_text(), st.integers(100_000, 140_000), st.booleans()).map(  # csv's field size limit is 131,072
        lambda t: (t[0] + ("\n" + '"' * t[2] + "x" * t[1] + '"' * t[2] + ",1\n")).encode("utf-8")
    ),
)


def _check_labels(path: Path) -> None:
    rows = read_label_file(path)
    if not rows or not all(isinstance(n, str) and n and t in (0, 1) and type(t) is int for n, t in rows):
        raise AssertionError(f"read_label_file returned {rows!r}")
    if len({n for n, _ in rows}) != len(rows):
        raise AssertionError(f"duplicate names returned: {rows!r}")


# -- the driver ---------------------------------------------------------------------------
def _preview(data: bytes, n: int = 80) -> str:
    return repr(data[:n]) + (f"... ({len(data)} bytes)" if len(data) > n else "")


def _run_target(
    report: Report,
    strategy: st.SearchStrategy,
    run_case: Callable[[Any], tuple[bytes, Callable[[], None]]],
    seconds: float,
    rng_seed: int,
    save_dir: Path,
    chunk: int = 200,
) -> None:
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:

        @seed(rng_seed * 1_000_003 + rounds)
        @settings(
            max_examples=chunk,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def fuzz(case: Any) -> None:
            if time.monotonic() >= deadline:
                return
            data, call = run_case(case)
            report.cases += 1
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    call()
            except DeepfakeDetectError as e:
                report.refused[type(e).__name__] += 1
            except BaseException as e:  # noqa: BLE001 - anything else is what we are looking for
                if isinstance(e, KeyboardInterrupt):
                    raise
                kind = f"{type(e).__module__}.{type(e).__qualname__}: {str(e)[:200]}"
                tb = traceback.format_exc(limit=-6)
                report.failures.append((kind, _preview(data), tb))
                save_dir.mkdir(parents=True, exist_ok=True)
                (save_dir / f"{report.name.split()[0]}-{len(report.failures):04d}.bin").write_bytes(data)
            spent = time.perf_counter() - t0
            if spent > report.slowest[0]:
                report.slowest = (spent, _preview(data, 40))

        fuzz()
        rounds += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time per target (default 60)")
    parser.add_argument("--target", choices=("all", "images", "labels"), default="all")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100_000, help="random seed (default: time)")
    parser.add_argument(
        "--save-dir", type=Path, default=None, help="write each failing input here (default: a new temporary folder)"
    )
    args = parser.parse_args(argv)
    print(f"fuzzing with --seed {args.seed}, {args.seconds:g} s per target", flush=True)

    reports: list[Report] = []
    save_dir = args.save_dir or Path(tempfile.gettempdir()) / f"deepfake-detect-fuzz-failures-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="deepfake-detect-fuzz-") as tmp, _quiet_native_stderr():
        if args.target in ("all", "images"):
            preps = [
                Preprocessor(DetectorConfig("fuzz", input_size=32), max_pixels=FUZZ_MAX_PIXELS),
                Preprocessor(
                    DetectorConfig("fuzz", input_size=(40, 24), resize="crop", crop_pct=0.875, interpolation="bicubic"),
                    max_pixels=FUZZ_MAX_PIXELS,
                ),
            ]

            def image_case(case: tuple[str, bytes]) -> tuple[bytes, Callable[[], None]]:
                suffix, data = case
                path = Path(tmp) / f"case{suffix}"
                path.write_bytes(data)
                return data, lambda: _check_image(path, preps)

            reports.append(Report("image loading"))
            _run_target(reports[-1], IMAGE_CASES, image_case, args.seconds, args.seed, save_dir)
            print(reports[-1].line(), flush=True)
        if args.target in ("all", "labels"):

            def label_case(data: bytes) -> tuple[bytes, Callable[[], None]]:
                path = Path(tmp) / "labels.csv"
                path.write_bytes(data)
                return data, lambda: _check_labels(path)

            reports.append(Report("label parsing"))
            _run_target(reports[-1], LABEL_CASES, label_case, args.seconds, args.seed, save_dir)
            print(reports[-1].line(), flush=True)

    failed = False
    print()
    for r in reports:
        refused = ", ".join(f"{k} {v}" for k, v in r.refused.most_common()) or "none"
        print(f"{r.line()} (documented errors: {refused}; slowest case {r.slowest[0] * 1000:.0f} ms)")
        by_kind: dict[str, list[tuple[str, str]]] = {}
        for kind, preview, tb in r.failures:
            by_kind.setdefault(kind, []).append((preview, tb))
        for kind, cases in by_kind.items():
            failed = True
            print(f"\n  UNEXPECTED {kind}  ({len(cases)} case(s))\n    input: {cases[0][0]}")
            print(textwrap_indent(cases[0][1], "    "))
    if failed:
        print(f"\nfailing inputs saved in {save_dir}")
    return 1 if failed else 0


def textwrap_indent(text: str, prefix: str) -> str:
    return "".join(prefix + line for line in text.rstrip().splitlines(True))


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence what C libraries (libtiff, libjpeg) print on file descriptor 2 for broken
    files; the report goes to stdout."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
