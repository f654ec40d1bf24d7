"""Face cropping (OpenCV Haar cascade) and video scoring (PyAV, OpenCV fallback)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY
from PIL import Image

import deepfake_detect as dd
from deepfake_detect.errors import ImageLoadError, MissingDependencyError

cv2 = pytest.importorskip("cv2")
from deepfake_detect.face import NoFaceWarning, crop_face, detect_largest_face  # noqa: E402
from deepfake_detect.video import VideoLoadError, predict_video, read_frames  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

# A public-domain US Navy portrait (see examples/images/SOURCES.md): the Haar cascade needs a real face.
FACE = Path(__file__).resolve().parents[1] / "examples" / "images" / "grace_hopper.jpg"


def _noise(w: int, h: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def _frame_with_face(
    size: tuple[int, int] = (320, 240), face: int = 128, at: tuple[int, int] = (150, 60), seed: int = 0
) -> Image.Image:
    img = _noise(*size, seed)
    with Image.open(FACE) as f:
        img.paste(f.convert("RGB").resize((face, face)), at)
    return img


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over the area of ``a``."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return w * h / ((a[2] - a[0]) * (a[3] - a[1]))


def _write_video(path: Path, frames: list[Image.Image], codec: str = "mpeg4") -> Path:
    av = pytest.importorskip("av")
    w, h = frames[0].size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _video_without_frames(path: Path) -> Path:
    """A Matroska file with a video stream that holds no frame (and a little audio)."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*audio.encode(frame), *audio.encode()]:
            container.mux(packet)
    return path


# -- faces -----------------------------------------------------------------------------------
def test_detects_the_pasted_face() -> None:
    box = detect_largest_face(_frame_with_face())
    assert box is not None
    assert _overlap(box, (150, 60, 278, 188)) > 0.8  # the detection lies on the pasted face
    assert detect_largest_face(_noise(160, 120, 1)) is None


def test_crop_face_margin_and_clipping() -> None:
    img = _frame_with_face()
    x0, y0, x1, y1 = detect_largest_face(img)
    crop, found = crop_face(img, margin=0.25)
    assert found and crop.size == (
        round(x1 + (x1 - x0) * 0.25) - round(x0 - (x1 - x0) * 0.25),
        round(y1 + (y1 - y0) * 0.25) - round(y0 - (y1 - y0) * 0.25),
    )
    corner = _frame_with_face(size=(200, 200), at=(0, 0))
    crop, found = crop_face(corner, margin=1.0)  # clipped at the image edges
    assert found and crop.size[0] <= 200 and crop.size[1] <= 200
    whole, found = crop_face(_noise(90, 70, 2))
    assert not found and whole.size == (90, 70)


def test_predict_crop_faces_warns_once_for_faceless_images(tmp_path) -> None:
    d = dd.load_detector(TINY)
    face_path, noise_path = tmp_path / "face.png", tmp_path / "noise.png"
    _frame_with_face().save(face_path)
    _noise(100, 80, 3).save(noise_path)
    with pytest.warns(NoFaceWarning) as caught:
        scores = d.predict([face_path, noise_path, face_path], crop_faces=True, num_workers=2)
    assert len([w for w in caught if issubclass(w.category, NoFaceWarning)]) == 1
    message = str(caught[0].message)
    assert "noise.png" in message and "face.png" not in message and "1 of 3" in message
    crop, _ = crop_face(Image.open(face_path))
    expected = d.predict([crop, Image.open(noise_path), crop])
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    assert abs(float(scores[0]) - float(d.predict(face_path)[0])) > 0  # the crop is what was scored
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d.predict([face_path], crop_faces=True)  # a face everywhere: no warning


def test_face_cropping_without_opencv(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(MissingDependencyError, match=r"deepfake-detect\[face\]"):
        crop_face(_noise(40, 40, 0))
    with pytest.raises(MissingDependencyError):
        dd.load_detector(TINY).predict([_noise(40, 40, 0)], crop_faces=True)


# -- video -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def face_video(tmp_path_factory) -> Path:
    """20 frames, 128x128: the face (64 px) drifting over changing noise."""
    frames = [_frame_with_face(size=(128, 128), face=64, at=(20 + i, 30), seed=i) for i in range(20)]
    return _write_video(tmp_path_factory.mktemp("video") / "face.mp4", frames)


def test_predict_video_scores_a_float(face_video: Path) -> None:
    d = dd.load_detector(TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoFaceWarning)  # the face is found in every frame
        mean = d.predict_video(face_video, num_frames=5)
    assert isinstance(mean, float) and 0.0 <= mean <= 1.0
    frames = read_frames(face_video, num_frames=5)
    assert len(frames) == 5 and frames[0].size == (128, 128)
    per_frame = d.predict([crop_face(f)[0] for f in frames])
    assert mean == pytest.approx(float(per_frame.mean()), abs=1e-6)
    assert d.predict_video(face_video, num_frames=5, aggregate="max") == pytest.approx(float(per_frame.max()), abs=1e-6)
    assert d.predict_video(face_video, num_frames=5, aggregate="median") == pytest.approx(
        float(np.median(per_frame)), abs=1e-6
    )
    whole = predict_video(d, face_video, num_frames=5, crop_faces=False)
    assert whole == pytest.approx(float(d.predict(frames).mean()), abs=1e-6)
    assert len(read_frames(face_video, num_frames=100)) == 20  # a short video gives all its frames


def test_faceless_video_warns_once(tmp_path) -> None:
    path = _write_video(tmp_path / "noise.mp4", [_noise(96, 96, i) for i in range(20)])
    with pytest.warns(NoFaceWarning, match=r"4 of 4 sampled frames of .*noise\.mp4"):
        score = dd.load_detector(TINY).predict_video(path, num_frames=4)
    assert 0.0 <= score <= 1.0


def test_opencv_fallback_and_no_decoder(face_video: Path, monkeypatch) -> None:
    with_av = [np.asarray(f) for f in read_frames(face_video, num_frames=4)]
    monkeypatch.setitem(sys.modules, "av", None)
    with_cv2 = [np.asarray(f) for f in read_frames(face_video, num_frames=4)]
    assert len(with_cv2) == 4
    for a, b in zip(with_av, with_cv2, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 2.0
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(MissingDependencyError, match=r"deepfake-detect\[video\]"):
        read_frames(face_video)


def _rotate_display_matrix(mp4: Path) -> Path:
    """Set the video track's display matrix (``tkhd``) to a 90-degree turn, as a phone writes
    a portrait video: the stored frames are sideways and players turn them upright."""
    data = bytearray(mp4.read_bytes())
    at = data.index(b"tkhd")
    assert data[at + 4] == 0  # version 0: the matrix follows 36 bytes of times, ids, layer and volume
    matrix = at + 4 + 4 + 4 * 5 + 8 + 8
    turn = [0, 0x00010000, 0, 0xFFFF0000, 0, 0, 0, 0, 0x40000000]
    data[matrix : matrix + 36] = b"".join(v.to_bytes(4, "big") for v in turn)
    mp4.write_bytes(bytes(data))
    return mp4


def test_a_rotated_phone_video_is_read_upright_by_both_decoders(tmp_path, monkeypatch) -> None:
    pytest.importorskip("cv2")
    upright = Image.new("RGB", (32, 48), (200, 30, 30))
    upright.paste((30, 30, 200), (0, 0, 32, 12))  # a blue band on top: which way up is visible
    stored = upright.rotate(90, expand=True)  # 48 x 32, sideways
    video = _rotate_display_matrix(_write_video(tmp_path / "portrait.mp4", [stored] * 3))
    with_av = np.asarray(read_frames(video, num_frames=1)[0]).astype(int)
    monkeypatch.setitem(sys.modules, "av", None)
    with_cv2 = np.asarray(read_frames(video, num_frames=1)[0]).astype(int)
    assert with_av.shape == with_cv2.shape
    assert np.abs(with_av - with_cv2).mean() < 3.0  # PyAV turns it as OpenCV does
    top, bottom = with_av[:8].mean(axis=(0, 1)), with_av[-8:].mean(axis=(0, 1))
    assert with_av.shape[:2] == (48, 32) and top[2] > top[0] and bottom[0] > bottom[2]  # upright


def test_unreadable_videos_name_the_file(tmp_path) -> None:
    d = dd.load_detector(TINY)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    cases = ((junk, "not a readable video"), (empty, "empty"), (tmp_path / "missing.mp4", "does not exist"))
    for path, reason in cases:
        with pytest.raises(VideoLoadError, match=reason) as info:
            d.predict_video(path)
        assert str(path) in str(info.value)
        assert isinstance(info.value, ImageLoadError)
    with pytest.raises(VideoLoadError, match="no decodable frames"):
        d.predict_video(_video_without_frames(tmp_path / "silent.mkv"))
    with pytest.raises(dd.DeepfakeDetectError, match="aggregate"):
        d.predict_video(junk, aggregate="mode")
    with pytest.raises(dd.DeepfakeDetectError, match="num_frames"):
        read_frames(junk, num_frames=0)


def test_cli_predict_crop_faces(tmp_path, capsys) -> None:
    from deepfake_detect.cli import main

    _frame_with_face().save(tmp_path / "face.png")
    _noise(80, 60, 4).save(tmp_path / "noise.png")
    assert main(["predict", str(tmp_path), "--model", TINY, "--crop-faces"]) == 0
    out, err = capsys.readouterr()
    assert "face.png" in out and "noise.png" in out
    assert "no face found in 1 of 2" in err and "noise.png" in err


def test_cli_predict_video_table_csv_and_a_video_given_to_predict(face_video: Path, tmp_path, capsys) -> None:
    import torch

    from deepfake_detect.cli import main

    torch.manual_seed(0)  # the test net starts from random weights: the same ones for both
    expected = dd.load_detector(TINY).predict_video(face_video, num_frames=4, aggregate="max")
    torch.manual_seed(0)
    assert main(["predict-video", str(face_video), "--model", TINY, "--frames", "4", "--aggregate", "max"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["video", "y_pred", "verdict"] and out[1].split()[0] == "face.mp4"
    assert float(out[1].split()[1]) == pytest.approx(expected, abs=1e-4)
    csv_path = tmp_path / "videos.csv"
    assert main(["predict-video", str(face_video), "--model", TINY, "--frames", "4", "--out", str(csv_path)]) == 0
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "video,y_pred,verdict" and lines[1].startswith("face.mp4,")
    assert main(["predict", str(face_video), "--model", TINY]) == 1
    assert "predict-video" in capsys.readouterr().err  # a video given to predict says where to take it


def test_opencv_imported_by_many_threads_at_once_is_whole() -> None:
    """Regression: training's worker threads imported cv2 together and some got a half-loaded
    module (``module 'cv2' has no attribute 'data'``), about one training run in three."""
    import subprocess
    import textwrap

    script = textwrap.dedent(
        """
        import threading, time
        from deepfake_detect.face import load_cascade
        errors = []
        def load(delay):
            time.sleep(delay)
            try:
                load_cascade()
            except Exception as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=load, args=(i * 0.002,)) for i in range(40)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(len(errors), errors[:1])
        """
    )
    for _ in range(2):  # a fresh process each time: cv2 not imported yet
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == "0 []", out.stdout + out.stderr
