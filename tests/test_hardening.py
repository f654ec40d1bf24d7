"""Hardening: every bad input gets a clear error, nothing is lost, nothing untrusted runs.

Odd but valid images predict like their clean RGB twins; bad image files, label files,
weights and configs raise the library's own errors naming the file and the reason;
malicious pickles never execute; training survives kill -9, Ctrl-C, NaN losses and a full
disk with its last good checkpoint loadable and resumable. Every file is generated here.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import face_like
from PIL import Image
from torch import nn

import deepfake_detect as dd
from deepfake_detect import (
    ConfigError,
    DataError,
    DeepfakeDetectError,
    ImageLoadError,
    SkippedImagesWarning,
    TrainingError,
    WeightsError,
    load_detector,
)
from deepfake_detect.data import LabelFile, load_image, read_label_file
from deepfake_detect.training import CHECKPOINT_BEST, CHECKPOINT_LAST
from deepfake_detect.weights import read_state_dict, save_weights

TESTS_DIR = Path(__file__).resolve().parent

# -- a tiny detector of our own -------------------------------------------------------------
HTINY = "hardening-tiny"


class _HardeningNet(nn.Module):
    """Conv-BN-ReLU x2 and a linear head, 32x32 input: trains in milliseconds."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


if HTINY not in dd.list_detectors():
    dd.register_detector(
        HTINY,
        lambda **kw: _HardeningNet(**kw),
        config=dd.DetectorConfig(HTINY, input_size=32),
        head=("head",),
        description="hardening test net",
    )


def _detector(seed: int = 0) -> dd.Detector:
    torch.manual_seed(seed)
    return load_detector(HTINY)


@pytest.fixture(scope="module")
def det() -> dd.Detector:
    return _detector(1)


# -- byte-level helpers -------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, bit_depth: int, color_type: int, raw_rows: bytes) -> bytes:
    """A PNG written by hand (valid CRCs): lets a header claim any size, or hold 16-bit RGB."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw_rows))
        + _png_chunk(b"IEND", b"")
    )


def _random_rgb(seed: int, w: int = 30, h: int = 40) -> Image.Image:
    """Noise: every pixel differs, so any mix-up of channels, rows or orientation shows."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _jpeg_bytes(img: Image.Image, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


# == 1. odd but valid images ===========================================================
def _cmyk(d: Path):
    rgb = _random_rgb(1)
    rgb.convert("CMYK").save(d / "cmyk.tif")  # PIL's CMYK<->RGB is exact, TIFF is lossless
    return d / "cmyk.tif", rgb


def _cmyk_jpeg(d: Path):
    face_like(2, size=48).convert("CMYK").save(d / "cmyk.jpg", quality=95)
    with Image.open(d / "cmyk.jpg") as im:  # twin: the decoded CMYK pixels, converted
        return d / "cmyk.jpg", im.convert("RGB")


def _gray(d: Path):
    gray = _random_rgb(3).convert("L")
    gray.save(d / "gray.png")
    return d / "gray.png", gray.convert("RGB")


def _gray_alpha(d: Path):
    gray = _random_rgb(4).convert("L")
    alpha = Image.fromarray(np.random.default_rng(5).integers(0, 256, (40, 30), dtype=np.uint8))
    Image.merge("LA", [gray, alpha]).save(d / "la.png")
    return d / "la.png", gray.convert("RGB")


def _palette_transparency(d: Path):
    pal = _random_rgb(6).quantize(64)
    pal.save(d / "p.png", transparency=3)
    with Image.open(d / "p.png") as im:
        assert im.mode == "P" and "transparency" in im.info
    return d / "p.png", pal.convert("RGB")


def _rgba(d: Path):
    rgb = _random_rgb(7)
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(np.random.default_rng(8).integers(0, 256, (40, 30), dtype=np.uint8)))
    rgba.save(d / "rgba.png")
    return d / "rgba.png", rgb  # alpha is dropped, the colour kept


def _gray16(d: Path):
    gray = _random_rgb(9).convert("L")
    Image.fromarray(np.asarray(gray).astype(np.uint16) * 257).save(d / "gray16.png")
    with Image.open(d / "gray16.png") as im:
        assert im.mode.startswith("I;16")
    return d / "gray16.png", gray.convert("RGB")


def _rgb16(d: Path):
    a8 = np.asarray(_random_rgb(10))
    rows = b"".join(b"\0" + row.tobytes() for row in a8.astype(">u2") * 257)
    (d / "rgb16.png").write_bytes(_png(a8.shape[1], a8.shape[0], 16, 2, rows))
    return d / "rgb16.png", Image.fromarray(a8)


def _one_pixel(d: Path):
    Image.new("RGB", (1, 1), (10, 200, 30)).save(d / "one.png")
    return d / "one.png", Image.new("RGB", (1, 1), (10, 200, 30))


def _large(d: Path):
    Image.new("RGB", (6000, 6000), (12, 140, 56)).save(d / "large.png", compress_level=1)
    return d / "large.png", Image.new("RGB", (60, 60), (12, 140, 56))  # same after resizing


def _animated_gif(d: Path):
    blocks = np.random.default_rng(11).integers(0, 4, (4, 3)) * 80  # 4 grey levels: GIF keeps them exactly
    first = Image.fromarray(np.kron(blocks, np.ones((10, 10))).astype(np.uint8)).convert("RGB")
    others = [Image.new("RGB", (30, 40), c) for c in ((255, 0, 0), (0, 0, 255))]
    first.save(d / "anim.gif", save_all=True, append_images=others, duration=100, loop=0)
    with Image.open(d / "anim.gif") as im:
        assert im.is_animated and im.n_frames == 3
    return d / "anim.gif", first


def _webp(d: Path):
    rgb = _random_rgb(12)
    rgb.save(d / "x.webp", lossless=True)
    return d / "x.webp", rgb


def _exif_rotated(orientation: int):
    def make(d: Path):
        upright = np.asarray(face_like(13, size=48))[:, :40]  # not square: a wrong rotation changes the size
        # the stored pixels are the upright image turned so that applying the tag gives it back
        turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
        stored = Image.fromarray(upright).transpose(turn)
        exif = Image.Exif()
        exif[0x0112] = orientation
        (d / f"exif{orientation}.jpg").write_bytes(_jpeg_bytes(stored, quality=95, exif=exif.tobytes()))
        decoded = Image.open(io.BytesIO(_jpeg_bytes(stored, quality=95))).convert("RGB")  # same coefficients
        undo = {6: Image.Transpose.ROTATE_270, 8: Image.Transpose.ROTATE_90}[orientation]
        return d / f"exif{orientation}.jpg", decoded.transpose(undo)

    return make


ODD_IMAGES: dict[str, Callable[[Path], tuple[Path, Image.Image]]] = {
    "CMYK TIFF": _cmyk,
    "CMYK JPEG": _cmyk_jpeg,
    "L": _gray,
    "LA": _gray_alpha,
    "P with transparency": _palette_transparency,
    "RGBA": _rgba,
    "I;16": _gray16,
    "16-bit RGB PNG": _rgb16,
    "1x1": _one_pixel,
    "6000x6000": _large,
    "animated GIF": _animated_gif,
    "WebP": _webp,
    "EXIF orientation 6": _exif_rotated(6),
    "EXIF orientation 8": _exif_rotated(8),
}


@pytest.mark.parametrize("kind", list(ODD_IMAGES))
def test_odd_but_valid_images_predict_like_their_rgb_twin(kind, tmp_path, det):
    path, twin = ODD_IMAGES[kind](tmp_path)
    twin = twin.convert("RGB")
    if kind != "6000x6000":  # (decoding it once more would only cost time)
        loaded = load_image(path)
        assert loaded.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(loaded), np.asarray(twin), err_msg=kind)
    prep = det.preprocessor()
    np.testing.assert_array_equal(prep.prepare(path), prep.prepare(twin), err_msg=kind)
    scores = det.predict([path, twin])
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores[0], scores[1], rtol=0, atol=1e-5, err_msg=kind)


def test_exif_orientation_is_applied_not_ignored(tmp_path):
    path, twin = _exif_rotated(6)(tmp_path)
    with Image.open(path) as raw:
        assert raw.size == (twin.size[1], twin.size[0])  # stored sideways
    assert load_image(path).size == twin.size


# == 2. bad image files ==================================================================
def _bad_empty(d: Path):
    (d / "empty.jpg").write_bytes(b"")
    return d / "empty.jpg", "empty"


def _bad_truncated(d: Path):
    data = _jpeg_bytes(face_like(20, size=96), quality=90)
    (d / "half.jpg").write_bytes(data[: len(data) // 2])
    return d / "half.jpg", "truncated"


def _bad_html(d: Path):
    (d / "page.jpg").write_text(
        "<!DOCTYPE html><html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"
    )
    return d / "page.jpg", "not an image file"


def _bad_jpeg_header_then_noise(d: Path):
    rng = np.random.default_rng(0)
    (d / "noise.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + rng.bytes(300))
    return d / "noise.jpg", "damaged or unsupported JPEG"


def _bad_bomb(d: Path):
    (d / "bomb.png").write_bytes(_png(100_000, 100_000, 8, 2, b"\0" * 64))  # 10^10 pixels claimed
    return d / "bomb.png", "over the limit of 64,000,000 pixels (a guard against decompression bombs"


def _bad_over_limit(d: Path):
    (d / "big.png").write_bytes(_png(9_000, 9_000, 8, 2, b"\0" * 64))  # under PIL's limit, over ours
    return d / "big.png", "over the limit of 64,000,000"


def _bad_missing(d: Path):
    return d / "missing.jpg", "does not exist"


def _bad_unreadable(d: Path):
    if os.geteuid() == 0:
        pytest.skip("root can read a chmod 000 file")
    face_like(21).save(d / "locked.png")
    os.chmod(d / "locked.png", 0)
    return d / "locked.png", "permission denied"


def _bad_folder(d: Path):
    (d / "folder.jpg").mkdir()
    return d / "folder.jpg", "is a folder"


def _bad_garbage_png(d: Path):
    buf = io.BytesIO()
    face_like(22).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[60:200] = bytes(140)  # zeroed IDAT bytes: the signature and header stay valid
    (d / "corrupt.png").write_bytes(bytes(data))
    return d / "corrupt.png", "cannot decode"


BAD_IMAGES = {
    "empty file": _bad_empty,
    "truncated JPEG": _bad_truncated,
    "HTML page as .jpg": _bad_html,
    "JPEG header, then noise": _bad_jpeg_header_then_noise,
    "decompression bomb header": _bad_bomb,
    "over max_pixels": _bad_over_limit,
    "missing file": _bad_missing,
    "unreadable file": _bad_unreadable,
    "folder as a file": _bad_folder,
    "corrupt PNG data": _bad_garbage_png,
}


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_bad_image_files_raise_image_load_error_naming_file_and_reason(kind, tmp_path, det):
    path, reason = BAD_IMAGES[kind](tmp_path)
    attempts = [lambda: load_image(path), lambda: det.preprocessor().prepare(path)]
    if kind != "folder as a file":  # predict reads a folder's images: a folder is valid input there
        attempts.append(lambda: det.predict([path], errors="raise"))
    for attempt in attempts:
        with pytest.raises(ImageLoadError) as info:
            attempt()
        assert isinstance(info.value, DeepfakeDetectError)
        assert str(path) in str(info.value) and reason in str(info.value), str(info.value)
        assert info.value.source == str(path)


# files with which PIL raised other exception types than OSError/ValueError (found by fuzz/fuzz_inputs.py)
def _tiff_with_rational_strip_offset() -> bytes:
    entries = [
        (256, 3, 2),
        (257, 3, 2),
        (258, 3, 8),
        (259, 3, 1),
        (262, 3, 1),
        (273, 5, None),
        (277, 3, 1),
        (278, 3, 2),
        (279, 4, 4),
    ]
    data_at = 8 + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, kind, value in entries:
        out += (
            struct.pack("<HHII", tag, kind, 1, data_at)
            if kind == 5
            else struct.pack("<HHIHH", tag, kind, 1, value, 0)
            if kind == 3
            else struct.pack("<HHII", tag, kind, 1, value)
        )
    return out + struct.pack("<I", 0) + struct.pack("<II", data_at + 8, 1) + bytes([10, 20, 30, 40])


def _saved(img: Image.Image, fmt: str) -> bytearray:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return bytearray(buf.getvalue())


def _dds_with_unknown_pixel_format() -> bytes:
    data = _saved(Image.new("RGBA", (4, 4), (1, 2, 3, 4)), "DDS")
    data[80:84] = struct.pack("<I", 0)  # DDS_PIXELFORMAT.dwFlags
    return bytes(data)


def _blp_with_unknown_compression() -> bytes:
    data = _saved(Image.new("RGB", (4, 4), (1, 2, 3)).quantize(4), "BLP")
    data[4:8] = struct.pack("<I", 0x45000001)
    return bytes(data)


def _avif_with_zeroed_data() -> bytes:
    from PIL import features

    if not features.check("avif"):
        pytest.skip("this PIL has no AVIF support")
    data = _saved(Image.new("RGB", (8, 8), (1, 2, 3)), "AVIF")
    at = data.find(b"mdat") + 4
    return bytes(data[:at] + bytes(len(data) - at))


@pytest.mark.parametrize(
    "suffix, make, raised",
    [
        (".tif", _tiff_with_rational_strip_offset, "TypeError"),
        (".dds", _dds_with_unknown_pixel_format, "NotImplementedError"),
        (".blp", _blp_with_unknown_compression, "BLPFormatError"),
        (".avif", _avif_with_zeroed_data, "RuntimeError"),
    ],
)
def test_malformed_files_raising_unusual_pil_errors_give_image_load_error(suffix, make, raised, tmp_path):
    data = make()
    for name in (tmp_path / f"malformed{suffix}", tmp_path / "malformed.jpg"):  # the content decides, not the name
        name.write_bytes(data)
        with pytest.raises(ImageLoadError) as info:
            load_image(name)
        assert str(name) in str(info.value) and raised in str(info.value), str(info.value)


def test_postscript_is_never_handed_to_ghostscript(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    marker = tmp_path / "ghostscript-ran"
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "gs").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (tmp_path / "bin" / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None, raising=False)  # look gs up again
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "EPS")
    for name in ("drawing.eps", "photo.jpg"):
        (tmp_path / name).write_bytes(buf.getvalue())
        with pytest.raises(ImageLoadError, match=rf"{name}: looks like an EPS/PostScript"):
            load_image(tmp_path / name)
    assert not marker.exists()


def test_max_pixels_argument_refuses_a_moderate_image_and_none_lifts_it(tmp_path, det):
    face_like(23, size=64).save(tmp_path / "a.png")
    with pytest.raises(ImageLoadError, match=r"64x64 = 4,096 pixels is over the limit of 4,000"):
        load_image(tmp_path / "a.png", max_pixels=4000)
    with pytest.raises(ImageLoadError, match="a.png"):
        det.predict([tmp_path / "a.png"], max_pixels=4000)
    assert load_image(tmp_path / "a.png", max_pixels=4096).size == (64, 64)
    assert load_image(tmp_path / "a.png", max_pixels=None).size == (64, 64)
    assert dd.data.MAX_IMAGE_PIXELS == 64_000_000


def test_errors_skip_gives_nan_scores_the_rest_exactly_and_warns(tmp_path, det):
    good = []
    for i in range(4):
        face_like(30 + i, size=48).save(tmp_path / f"good{i}.png")
        good.append(tmp_path / f"good{i}.png")
    bad = [
        BAD_IMAGES[k](tmp_path)[0]
        for k in (
            "empty file",
            "truncated JPEG",
            "HTML page as .jpg",
            "decompression bomb header",
            "missing file",
            "corrupt PNG data",
        )
    ]
    mixed = [bad[0], good[0], bad[1], bad[2], good[1], good[2], bad[3], bad[4], good[3], bad[5]]
    clean = det.predict(good)
    with pytest.warns(SkippedImagesWarning) as record:
        scores = det.predict(mixed, errors="skip")
    is_bad = np.array([p in bad for p in mixed])
    assert np.isnan(scores[is_bad]).all()
    np.testing.assert_array_equal(scores[~is_bad], clean)
    warning = [w.message for w in record if isinstance(w.message, SkippedImagesWarning)]
    assert len(warning) == 1
    assert [e.source for e in warning[0].errors] == [str(p) for p in bad]
    assert all(isinstance(e, ImageLoadError) for e in warning[0].errors)
    assert "skipped 6" in str(warning[0]) and str(bad[0]) in str(warning[0])
    # small batches: the good images still score as without the bad ones
    with pytest.warns(SkippedImagesWarning):
        small = det.predict(mixed, errors="skip", batch_size=3)
    np.testing.assert_allclose(small[~is_bad], clean, rtol=0, atol=1e-6)
    assert np.isnan(small[is_bad]).all()


# == 3. label files ======================================================================
LABEL_CASES = {
    # name: (file text, substrings the message must hold)
    "no img_name column": ("name,target\na.png,0\n", ["line 1", "img_name", "'name'"]),
    "no target column": ("img_name,label\na.png,0\n", ["line 1", "target", "'label'"]),
    "target 2": ("img_name,target\na.png,0\nb.png,2\n", ["line 3", "'2'", "b.png"]),
    "target fake": ("img_name,target\na.png,fake\n", ["line 2", "'fake'"]),
    "target 0.5": ("img_name,target\na.png,1\nb.png,0\nc.png,0.5\n", ["line 4", "'0.5'"]),
    "target nan": ("img_name,target\na.png,nan\n", ["line 2", "'nan'"]),
    "empty target": ("img_name,target\na.png,\n", ["line 2", "''"]),
    "duplicate names": ("img_name,target\na.png,0\nb.png,1\na.png,1\n", ["line 4", "'a.png'", "line 2"]),
    "short row": ("img_name,target\na.png,0\nb.png\n", ["line 3", "'b.png'"]),
    "empty name": ("img_name,target\n,1\n", ["line 2", "empty img_name"]),
    "empty file": ("", ["empty"]),
    "blank lines only": ("\n  \n\n", ["empty"]),
    "header only": ("img_name,target\n", ["no rows"]),
    "field over csv's limit": ('img_name,target\n"' + "x" * 140_000 + '",1\n', ["not a readable CSV file"]),
}


@pytest.mark.parametrize("case", list(LABEL_CASES))
def test_bad_label_files_raise_data_error_naming_file_line_and_value(case, tmp_path):
    text, expected = LABEL_CASES[case]
    path = tmp_path / "train_label.txt"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_label_file(path)
    msg = str(info.value)
    assert str(path) in msg and all(s in msg for s in expected), msg
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="train_label.txt"):
        LabelFile(path, tmp_path / "images")


def test_label_file_listing_a_missing_image(tmp_path):
    (tmp_path / "images").mkdir()
    face_like(40).save(tmp_path / "images" / "a.png")
    (tmp_path / "labels.txt").write_text("img_name,target\na.png,0\nghost.png,1\n")
    with pytest.raises(DataError) as info:
        LabelFile(tmp_path / "labels.txt", tmp_path / "images")
    msg = str(info.value)
    assert "labels.txt" in msg and "'ghost.png' (line 3)" in msg and str(tmp_path / "images") in msg
    # the line an editor shows, past blank lines and a quoted name that spans two lines
    (tmp_path / "labels.txt").write_text('img_name,target\n\n"a.png",0\n\n"two\nlines.png",1\nghost.png,1\n')
    with pytest.raises(DataError) as info:
        LabelFile(tmp_path / "labels.txt", tmp_path / "images")
    assert "'two\\nlines.png' (line 6)" in str(info.value) and "'ghost.png' (line 7)" in str(info.value), info.value


def test_label_files_that_cannot_be_read(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="does not exist"):
        read_label_file(tmp_path / "nope.txt")
    (tmp_path / "dir.txt").mkdir()
    with pytest.raises(DataError, match=r"dir.txt is a folder"):
        read_label_file(tmp_path / "dir.txt")
    (tmp_path / "latin1.txt").write_bytes("img_name,target\ncaf\xe9.png,0\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt is not UTF-8"):
        read_label_file(tmp_path / "latin1.txt")
    (tmp_path / "locked.txt").write_text("img_name,target\na.png,0\n")
    real_read_text = Path.read_text

    def denied(self, *a, **kw):
        if self.name == "locked.txt":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read_text(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", denied)
    with pytest.raises(DataError, match=r"locked.txt.*Permission denied"):
        read_label_file(tmp_path / "locked.txt")


def test_well_formed_label_file_variants_are_accepted(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("\ufefftarget, img_name\r\n1.0,a.png\r\n\r\n0,b.png\r\n")  # BOM, CRLF, order, spaces
    assert read_label_file(path) == [("a.png", 1), ("b.png", 0)]


# -- training data is checked before the first step --------------------------------------
@pytest.fixture(scope="module")
def train_folder(tmp_path_factory) -> Path:
    """real/ and fake/ with 8 small PNGs each."""
    root = tmp_path_factory.mktemp("hardening") / "data"
    for label, sub in ((0, "real"), (1, "fake")):
        (root / sub).mkdir(parents=True)
        for i in range(8):
            face_like(500 + 100 * label + i, size=40, fake=bool(label)).save(root / sub / f"{sub}_{i}.png")
    return root


def _pairs(folder: Path) -> list[tuple[Path, int]]:
    return [(p, 0) for p in sorted((folder / "real").iterdir())] + [(p, 1) for p in sorted((folder / "fake").iterdir())]


def test_finetune_checks_its_data_before_training(tmp_path, train_folder):
    (tmp_path / "labels.txt").write_text("img_name,target\nreal_0.png,0\nfake_0.png,1\n")
    with pytest.raises(DataError, match=r"'real_0.png' \(line 2\)"):
        LabelFile(tmp_path / "labels.txt", tmp_path)  # the images live elsewhere
    loss = _Loss()
    pairs = _pairs(train_folder) + [(tmp_path / "gone.png", 1)]
    with pytest.raises(DataError, match=r"item 16: image file .*gone.png does not exist"):
        _detector().finetune(pairs, epochs=1, output_dir=tmp_path / "run", loss=loss, progress=False)
    assert loss.calls == 0 and not (tmp_path / "run").exists()
    with pytest.raises(DataError, match=r"item 3: label 2 is not 0 \(real\) or 1 \(fake\)"):
        _detector().finetune(
            [(p, 2 if i == 3 else y) for i, (p, y) in enumerate(_pairs(train_folder))],
            epochs=1,
            output_dir=tmp_path / "run",
            loss=loss,
            progress=False,
        )
    assert loss.calls == 0 and not (tmp_path / "run").exists()


def test_a_corrupt_training_image_stops_training_naming_it_before_any_checkpoint(tmp_path, train_folder):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    pairs = _pairs(train_folder) + [(tmp_path / "broken.png", 1)]
    with pytest.raises(ImageLoadError, match="broken.png"):
        _detector().finetune(pairs, epochs=2, batch_size=8, output_dir=tmp_path / "run", progress=False, num_workers=0)
    assert not (tmp_path / "run" / CHECKPOINT_LAST).exists()


# == 4. weights and configs ==============================================================
@pytest.fixture
def saved(tmp_path, det) -> Path:
    return det.save_pretrained(tmp_path / "saved")


def test_truncated_and_random_safetensors_raise_weights_error(tmp_path, saved):
    weights = saved / "model.safetensors"
    data = weights.read_bytes()
    for name, content in (
        ("truncated.safetensors", data[: len(data) // 2]),
        ("header-only.safetensors", data[:12]),
        ("random.safetensors", np.random.default_rng(0).bytes(4096)),
        ("empty.safetensors", b""),
    ):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(WeightsError, match=name.replace(".", r"\.")):
            read_state_dict(tmp_path / name)
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"saved/model\.safetensors"):
        load_detector(saved)


def test_unreadable_configs_raise_config_error_naming_the_file(saved):
    config = saved / "config.json"
    original = json.loads(config.read_text())
    cases = {
        "unknown architecture": ({**original, "architecture": "no-such-net"}, ["no-such-net", "not registered"]),
        "future format": ({**original, "format_version": 99}, ["format_version 99", "newer"]),
        "unknown key": ({**original, "colour": "blue"}, ["unknown keys", "colour"]),
        "no architecture": ({k: v for k, v in original.items() if k != "architecture"}, ["'architecture'"]),
        "bad value": ({**original, "resize": "stretch"}, ["resize='stretch'"]),
        "a list": ([1, 2], ["expected a JSON object"]),
    }
    for case, (content, expected) in cases.items():
        config.write_text(json.dumps(content))
        with pytest.raises(ConfigError) as info:
            load_detector(saved)
        assert str(config) in str(info.value) and all(s in str(info.value) for s in expected), (case, info.value)
    for text in ("{not json", "", "\xff\xfe garbage"):
        config.write_bytes(text.encode("latin-1"))
        with pytest.raises(ConfigError, match="not a readable JSON config") as info:
            load_detector(saved)
        assert str(config) in str(info.value)
    config.unlink()
    with pytest.raises(ConfigError, match=r"has no config\.json"):
        load_detector(saved)


def test_key_and_shape_mismatches_raise_weights_error_naming_file_and_keys(tmp_path, saved, det):
    state = {k: v.clone() for k, v in det.model.state_dict().items()}
    state["head.weight"] = torch.zeros(2, 8)
    state.pop("head.bias")
    state["extra.weight"] = torch.zeros(3)
    save_weights(state, saved / "model.safetensors")
    with pytest.raises(WeightsError) as info:
        load_detector(saved)
    msg = str(info.value)
    assert str(saved / "model.safetensors") in msg
    assert "head.bias" in msg and "extra.weight" in msg and "head.weight: file (2, 8) vs model (1, 8)" in msg
    torch.save(state, tmp_path / "sd.pth")
    with pytest.raises(WeightsError, match=r"sd\.pth.*head\.bias"):
        load_detector(HTINY, weights=tmp_path / "sd.pth")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match=r"list\.pt does not hold a state dict"):
        read_state_dict(tmp_path / "list.pt")
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(WeightsError, match="unknown suffix '.h5'"):
        read_state_dict(tmp_path / "w.h5")
    with pytest.raises(WeightsError, match="does not exist"):
        read_state_dict(tmp_path / "absent.safetensors")


class _Evil:
    """Unpickling this would create the marker file (arbitrary code would run the same way)."""

    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(_Evil.marker),))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the raw pickle's protocol 4
@pytest.mark.parametrize(
    "fmt", ["raw pickle .pth", "torch.save zip .pt", "torch.save zip .bin", "torch.save legacy .ckpt"]
)
def test_malicious_pickles_never_execute(fmt, tmp_path, det):
    _Evil.marker = str(tmp_path / "pwned")
    state = {"state_dict": {k: v.clone() for k, v in det.model.state_dict().items()}, "extra": _Evil()}
    suffix = fmt.rsplit(".", 1)[1]
    path = tmp_path / f"evil.{suffix}"
    if fmt.startswith("raw"):
        with open(path, "wb") as f:
            pickle.dump(state, f)
    else:
        torch.save(state, path, _use_new_zipfile_serialization="legacy" not in fmt)
        if "zip" in fmt:
            import zipfile

            assert zipfile.is_zipfile(path)
    assert not Path(_Evil.marker).exists()
    with pytest.raises(WeightsError, match="refused") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)
    hints = ("Re-running", "can still be loaded", "set to `False`")  # torch's advice to load it unsafely
    assert not any(h in str(info.value) for h in hints), str(info.value)
    with pytest.raises(WeightsError, match="refused"):
        load_detector(HTINY, weights=path)
    assert not Path(_Evil.marker).exists()


def test_a_folder_with_only_a_pickle_is_not_unpickled(tmp_path, saved):
    _Evil.marker = str(tmp_path / "pwned")
    (saved / "model.safetensors").unlink()
    torch.save({"x": _Evil()}, saved / "pytorch_model.bin")
    with pytest.raises(WeightsError, match=r"only safetensors weights are read from folders"):
        load_detector(saved)
    assert not Path(_Evil.marker).exists()


# == 5. training faults ==================================================================
class _Loss:
    """BCE-with-logits (the entry's own loss), counting calls; can misbehave at one call."""

    def __init__(self, nan_at: int | None = None, interrupt_at: int | None = None) -> None:
        self.calls, self.nan_at, self.interrupt_at = 0, nan_at, interrupt_at

    def __call__(self, out: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        loss = F.binary_cross_entropy_with_logits(out.float().reshape(len(y), -1)[:, 0], y)
        return loss * float("nan") if self.calls == self.nan_at else loss


EPOCHS = 3  # 16 images, batch 8: two steps per epoch; loss call 3 and 4 are epoch 2
TRAIN_KW = dict(batch_size=8, lr=1e-2, augment="none", num_workers=0, progress=False, seed=0)


def _train(
    folder: Path,
    out: Path | None,
    *,
    loss: _Loss | None = None,
    resume: bool = False,
    detector: dd.Detector | None = None,
    callbacks=(),
) -> tuple[dd.Detector, Any]:
    det = detector if detector is not None else _detector(0)
    result = det.finetune(
        folder,
        folder,
        epochs=EPOCHS,
        output_dir=out,
        resume=resume,
        loss=loss or _Loss(),
        callbacks=callbacks,
        **TRAIN_KW,
    )
    return det, result


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k].contiguous(), b[k].contiguous(), rtol=1e-5, atol=1e-6, msg=k)


@pytest.fixture(scope="module")
def reference(train_folder, tmp_path_factory) -> dict[str, Any]:
    """An uninterrupted run: the weights after each epoch and at the end."""
    per_epoch: dict[int, dict[str, torch.Tensor]] = {}
    det = _detector(0)
    det, result = _train(
        train_folder,
        tmp_path_factory.mktemp("reference") / "run",
        detector=det,
        callbacks=[lambda r: per_epoch.__setitem__(r["epoch"], _state(det.model))],
    )
    out = result.output_dir
    return {
        "epochs": per_epoch,
        "last": read_state_dict(out / CHECKPOINT_LAST / "model.safetensors"),
        "final": _state(det.model),
        "best_epoch": result.best["epoch"],
        "history": [h["epoch"] for h in result.history],
    }


def _assert_checkpoint_is_epoch_1(out: Path, reference: dict[str, Any]) -> None:
    last = load_detector(out / CHECKPOINT_LAST)  # loads, and holds the end of epoch 1
    _assert_same(_state(last.model), reference["epochs"][1])
    folder = out / CHECKPOINT_LAST if (out / CHECKPOINT_LAST).exists() else out / f".{CHECKPOINT_LAST}.old"
    assert Path(last.source) == folder
    assert torch.load(folder / "training_state.pt", weights_only=True)["epoch"] == 1
    load_detector(out)  # the best checkpoint loads too


def _resume_and_compare(folder: Path, out: Path, reference: dict[str, Any]) -> None:
    det, result = _train(folder, out, resume=True)
    assert [h["epoch"] for h in result.history] == reference["history"]
    assert not result.interrupted
    _assert_same(read_state_dict(out / CHECKPOINT_LAST / "model.safetensors"), reference["last"])
    _assert_same(_state(det.model), reference["final"])  # finetune leaves the best weights in the detector
    assert result.best["epoch"] == reference["best_epoch"]
    assert [json.loads(line)["epoch"] for line in (out / "history.jsonl").read_text().splitlines()] == reference[
        "history"
    ]


# (a) kill -9 during a checkpoint write ----------------------------------------------------
def _child_train_and_die(folder: str, out: str, where: str) -> None:
    """Run in a subprocess: train, and SIGKILL ourselves while epoch 2's last/ is written."""
    import safetensors.torch

    done: list[int] = []
    real_save_file, real_replace = safetensors.torch.save_file, os.replace
    last_tmp = Path(out) / f".{CHECKPOINT_LAST}.tmp"

    def save_file(tensors, filename, metadata=None):
        real_save_file(tensors, filename, metadata=metadata)
        if where == "write" and done == [1] and Path(filename).parent == last_tmp:
            with open(filename, "r+b") as f:  # half written when the power goes
                f.truncate(os.path.getsize(filename) // 2)
            os.kill(os.getpid(), signal.SIGKILL)

    def replace(src, dst):
        real_replace(src, dst)
        if where == "swap" and done == [1] and Path(src) == Path(out) / CHECKPOINT_LAST:
            os.kill(os.getpid(), signal.SIGKILL)  # last/ moved aside, the new one not yet in place

    safetensors.torch.save_file = save_file
    os.replace = replace  # the os module itself: every os.replace call, the checkpoint's included
    _train(Path(folder), Path(out), callbacks=[lambda r: done.append(r["epoch"])])
    print("not killed", done)


@pytest.mark.parametrize("where", ["write", "swap"])
def test_kill_9_while_writing_a_checkpoint_keeps_the_previous_one(where, tmp_path, train_folder, reference):
    out = tmp_path / "run"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        import test_hardening
        test_hardening._child_train_and_die({str(train_folder)!r}, {str(out)!r}, {where!r})
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    if where == "write":
        assert (out / f".{CHECKPOINT_LAST}.tmp").is_dir()  # the half-written new checkpoint
    else:
        assert not (out / CHECKPOINT_LAST).exists() and (out / f".{CHECKPOINT_LAST}.old").is_dir()
    _assert_checkpoint_is_epoch_1(out, reference)
    _resume_and_compare(train_folder, out, reference)  # continues from epoch 2
    assert not (out / f".{CHECKPOINT_LAST}.old").exists() and not (out / f".{CHECKPOINT_LAST}.tmp").exists()


def test_a_checkpoint_caught_between_its_two_renames_loads(tmp_path, train_folder, reference):
    """What kill -9 between ``last -> .last.old`` and ``.last.tmp -> last`` leaves, for best/ too."""
    out = tmp_path / "run"
    _train(train_folder, out)
    os.replace(out / CHECKPOINT_BEST, out / f".{CHECKPOINT_BEST}.old")
    os.replace(out / CHECKPOINT_LAST, out / f".{CHECKPOINT_LAST}.old")
    best = load_detector(out)
    assert best.config.metadata["metrics_data"].endswith(f"epoch {reference['best_epoch']}")
    _assert_same(_state(load_detector(out / CHECKPOINT_LAST).model), reference["last"])


# (b) Ctrl-C ------------------------------------------------------------------------------------
def test_ctrl_c_mid_epoch_leaves_a_resumable_run_with_identical_final_weights(tmp_path, train_folder, reference):
    out = tmp_path / "run"
    det, result = _train(train_folder, out, loss=_Loss(interrupt_at=4))  # 2nd step of epoch 2
    assert result.interrupted and [h["epoch"] for h in result.history] == [1]
    _assert_same(_state(det.model), reference["epochs"][1])  # in memory: the end of epoch 1
    _assert_checkpoint_is_epoch_1(out, reference)
    assert sorted(p.name for p in out.iterdir()) == [CHECKPOINT_BEST, "history.jsonl", CHECKPOINT_LAST]
    _resume_and_compare(train_folder, out, reference)


def test_ctrl_c_from_a_callback_after_epoch_2(tmp_path, train_folder, reference):
    def stop(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    _, result = _train(train_folder, out, callbacks=[stop])
    assert result.interrupted and [h["epoch"] for h in result.history] == [1, 2]
    _resume_and_compare(train_folder, out, reference)


# (c) NaN loss ------------------------------------------------------------------------------------
def test_nan_loss_stops_with_training_error_and_keeps_epoch_1(tmp_path, train_folder, reference):
    out = tmp_path / "run"
    det = _detector(0)
    with pytest.raises(TrainingError) as info:
        _train(train_folder, out, loss=_Loss(nan_at=3), detector=det)
    msg = str(info.value)
    assert "nan" in msg and "epoch 2, step 1" in msg and str(out / CHECKPOINT_LAST) in msg
    _assert_same(_state(det.model), reference["epochs"][1])
    _assert_checkpoint_is_epoch_1(out, reference)
    assert sorted(p.name for p in out.iterdir()) == [CHECKPOINT_BEST, "history.jsonl", CHECKPOINT_LAST]
    assert [json.loads(line)["epoch"] for line in (out / "history.jsonl").read_text().splitlines()] == [1]


def test_a_huge_learning_rate_gives_training_error_not_nan_weights(tmp_path, train_folder):
    det = _detector(0)
    before = _state(det.model)
    with pytest.raises(TrainingError, match="Lower lr"):
        det.finetune(
            train_folder,
            epochs=3,
            batch_size=8,
            lr=1e30,
            augment="none",
            num_workers=0,
            progress=False,
            output_dir=tmp_path / "run",
            optimizer="sgd",
            scheduler="constant",
        )
    assert all(torch.isfinite(v).all() for v in det.model.state_dict().values() if v.is_floating_point())
    last = tmp_path / "run" / CHECKPOINT_LAST
    if last.exists():  # epoch 1 may have stayed finite
        assert all(torch.isfinite(v).all() for v in read_state_dict(last / "model.safetensors").values())
    else:
        _assert_same(_state(det.model), before)


# (d) a full disk -------------------------------------------------------------------------------
def _enospc(path: Any = None) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", None if path is None else str(path))


def _install_full_disk(monkeypatch, how: str, epoch_done: list[int]) -> None:
    """From epoch 2's checkpoint on, make one kind of write fail as a full disk does."""
    if how == "save_file OSError":
        import safetensors.torch

        real = safetensors.torch.save_file

        def save_file(tensors, filename, metadata=None):
            if epoch_done:
                raise _enospc(filename)
            return real(tensors, filename, metadata=metadata)

        monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    elif how == "save_file SafetensorError":  # what safetensors really raises on a full disk
        import safetensors.torch
        from safetensors import SafetensorError

        real = safetensors.torch.save_file

        def save_file(tensors, filename, metadata=None):
            if epoch_done:
                with open(filename, "wb") as f:
                    f.write(b"\0" * 100)  # what fitted
                raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
            return real(tensors, filename, metadata=metadata)

        monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    elif how == "os.replace":
        real_replace = os.replace

        def replace(src, dst):
            if epoch_done:
                raise _enospc(dst)
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
    elif how == "training state":
        real_save = torch.save

        def save(obj, f, *a, **kw):  # torch's zip writer raises RuntimeError, not OSError, on a full disk
            if epoch_done and isinstance(f, (str, os.PathLike)) and Path(f).name == "training_state.pt":
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
            return real_save(obj, f, *a, **kw)

        real_write_bytes = Path.write_bytes

        def write_bytes(self, data):
            if epoch_done and "training_state.pt" in self.name:
                raise _enospc(self)
            return real_write_bytes(self, data)

        monkeypatch.setattr(torch, "save", save)
        monkeypatch.setattr(Path, "write_bytes", write_bytes)
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["save_file OSError", "save_file SafetensorError", "os.replace", "training state"])
def test_a_full_disk_gives_training_error_and_keeps_epoch_1(how, tmp_path, train_folder, reference, monkeypatch):
    out = tmp_path / "run"
    epoch_done: list[int] = []
    with monkeypatch.context() as m:
        _install_full_disk(m, how, epoch_done)
        with pytest.raises(TrainingError) as info:
            _train(train_folder, out, callbacks=[epoch_done.append])
    msg = str(info.value)
    assert "No space left on device" in msg and "epoch 2" in msg and str(out) in msg, msg
    assert "resume=True" in msg
    _assert_checkpoint_is_epoch_1(out, reference)
    assert not any(p.name.endswith(".tmp") for p in out.rglob("*")), sorted(out.rglob("*"))
    if how == "save_file OSError":  # space freed: the run resumes and ends as if nothing happened
        _resume_and_compare(train_folder, out, reference)


def test_a_full_disk_while_writing_the_history_keeps_it_whole(tmp_path, train_folder, reference, monkeypatch):
    out = tmp_path / "run"
    epoch_done: list[int] = []
    real_write_text = Path.write_text

    def write_text(self, data, *a, **kw):
        if epoch_done and self.name.startswith(".history.jsonl."):
            real_write_text(self, data[: len(data) // 2], *a, **kw)  # what fitted
            raise _enospc(self)
        return real_write_text(self, data, *a, **kw)

    with monkeypatch.context() as m:
        m.setattr(Path, "write_text", write_text)
        with pytest.raises(TrainingError, match="No space left on device"):
            _train(train_folder, out, callbacks=[epoch_done.append])
    assert [json.loads(line)["epoch"] for line in (out / "history.jsonl").read_text().splitlines()] == [1]
    assert sorted(p.name for p in out.iterdir()) == [CHECKPOINT_BEST, "history.jsonl", CHECKPOINT_LAST]
    _resume_and_compare(train_folder, out, reference)


# (e) a new run over an existing checkpoint -------------------------------------------------------
def test_a_new_run_never_overwrites_an_existing_checkpoint(tmp_path, train_folder):
    out = tmp_path / "run"
    _train(train_folder, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    loss = _Loss()
    with pytest.raises(TrainingError, match="already holds a checkpoint.*resume=True"):
        _detector(0).finetune(train_folder, epochs=1, output_dir=out, loss=loss, **TRAIN_KW)
    assert loss.calls == 0
    # also when the checkpoint was caught mid-swap by a kill -9
    os.replace(out / CHECKPOINT_LAST, out / f".{CHECKPOINT_LAST}.old")
    with pytest.raises(TrainingError, match="already holds a checkpoint"):
        _detector(0).finetune(train_folder, epochs=1, output_dir=out, **TRAIN_KW)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_a_malicious_training_state_is_refused_on_resume(tmp_path, train_folder):
    out = tmp_path / "run"
    _train(train_folder, out)
    _Evil.marker = str(tmp_path / "pwned")
    torch.save({"epoch": 1, "evil": _Evil()}, out / CHECKPOINT_LAST / "training_state.pt")
    with pytest.raises(TrainingError, match=r"training_state\.pt"):
        _train(train_folder, out, resume=True)
    assert not Path(_Evil.marker).exists()


# -- bad arguments get the library's own errors, naming the argument -------------------------
def test_a_device_torch_cannot_use_is_refused_before_the_model_is_built(det, monkeypatch):
    built = []
    entry = dd.get_entry(HTINY)
    monkeypatch.setattr(type(entry), "build", lambda self, **kw: built.append(kw) or _HardeningNet())
    with pytest.raises(DeepfakeDetectError, match=r"device='gpu': not a device.*'cpu', 'cuda'"):
        load_detector(HTINY, device="gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeepfakeDetectError, match=r"device='cuda'.*no CUDA GPU.*device='cpu'"):
        load_detector(HTINY, device="cuda")
    assert built == []
    with pytest.raises(DeepfakeDetectError, match="device='cuda:1'"):
        det.predict([face_like(0, size=32)], device="cuda:1")
    with pytest.raises(DeepfakeDetectError, match="device='gpu'"):
        det.to("gpu")
    assert det.device.type == "cpu"


def test_a_keyword_argument_the_architecture_does_not_take_is_a_config_error():
    with pytest.raises(ConfigError, match=r"hardening-tiny: model keyword arguments \['colour'\]"):
        load_detector(HTINY, colour="red")


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("epochs", "5", "an int"),
        ("batch_size", 2.5, "an int"),
        ("epoch_size", "1000", "an int or None"),
        ("lr", "1e-3", "a number or None"),
        ("synth_fakes", None, "a number"),
        ("epochs", True, "an int"),
    ],
)
def test_train_config_fields_of_the_wrong_type_raise_training_error(field, value, expected):
    with pytest.raises(TrainingError, match=rf"{field}=.*expected {expected}"):
        dd.TrainConfig(**{field: value})


def test_predict_and_predict_tensor_name_what_is_wrong_with_their_input(det):
    with pytest.raises(DeepfakeDetectError, match=r"batch_size='4': expected an int"):
        det.predict([face_like(0, size=32)], batch_size="4")  # type: ignore[arg-type]
    assert det.predict([face_like(0, size=32)], batch_size=np.int64(4)).shape == (1,)
    with pytest.raises(DeepfakeDetectError, match=r"\(N, 3, H, W\).*shape \(3, 32, 32\).*batch\[None\]"):
        det.predict_tensor(torch.zeros(3, 32, 32))
    with pytest.raises(DeepfakeDetectError, match="torch.uint8"):
        det.predict_tensor(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    assert det.predict_tensor(torch.zeros(2, 3, 32, 32)).shape == (2,)


def test_preprocessor_to_array_and_to_tensor_refuse_paths_with_a_library_error(tmp_path, det):
    """They stack *prepared* images; paths (the first thing a user tries) used to give
    "AttributeError: 'str' object has no attribute 'float'"."""
    face_like(0, size=48).save(tmp_path / "a.png")
    prep = det.preprocessor()
    for method in ("to_array", "to_tensor"):
        stack = getattr(prep, method)
        with pytest.raises(DeepfakeDetectError, match=rf"{method}\(items\): items\[0\] has type str .*a\.png.*prepare"):
            stack([str(tmp_path / "a.png")])
        with pytest.raises(DeepfakeDetectError, match=r"items\[1\] has type \w*Path"):
            stack([prep.prepare(tmp_path / "a.png"), tmp_path / "a.png"])
        with pytest.raises(DeepfakeDetectError, match=r"expected a list of prepared images, got type str"):
            stack(str(tmp_path / "a.png"))
        with pytest.raises(DeepfakeDetectError, match="no items"):
            stack([])
    prepared = [prep.prepare(tmp_path / "a.png"), prep.prepare(face_like(1, size=40))]
    np.testing.assert_allclose(prep.to_array(prepared), prep.to_tensor(prepared).numpy(), atol=1e-6)
