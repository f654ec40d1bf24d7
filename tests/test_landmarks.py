"""Face landmarks (MediaPipe Face Mesh via LiteRT) and landmark-hull self-blending masks.

Uses the astronaut photo that ships in examples/images (public domain) for a real face, and
generated images otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import face_like
from PIL import Image, ImageDraw

from deepfake_detect import landmarks, synth
from deepfake_detect.errors import DataError, MissingDependencyError
from deepfake_detect.landmarks import HULL_REGIONS, NUM_LANDMARKS, hull_mask
from deepfake_detect.synth import locate_face, self_blend

pytest.importorskip("ai_edge_litert", reason="the face extra (ai-edge-litert) is not installed")
pytest.importorskip("cv2", reason="the face extra (opencv-python-headless) is not installed")

ASTRONAUT = Path(__file__).resolve().parent.parent / "examples" / "images" / "astronaut.jpg"


@pytest.fixture(scope="module")
def astronaut() -> tuple[Image.Image, tuple[float, float, float, float], np.ndarray]:
    img = Image.open(ASTRONAUT).convert("RGB")
    box, points = locate_face(img)
    assert box is not None and points is not None, "the Haar cascade and Face Mesh find the astronaut's face"
    return img, box, points


def test_landmarks_lie_on_the_face(astronaut):
    img, box, points = astronaut
    assert points.shape == (NUM_LANDMARKS, 2) and points.dtype == np.float32 and np.isfinite(points).all()
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    # every point within the face box grown by a quarter (forehead, jaw)
    assert (points[:, 0] > x0 - 0.25 * w).all() and (points[:, 0] < x1 + 0.25 * w).all()
    assert (points[:, 1] > y0 - 0.25 * h).all() and (points[:, 1] < y1 + 0.25 * h).all()
    # the face spans most of the box, and the eyes are above the mouth
    assert np.ptp(points[:, 0]) > 0.6 * w and np.ptp(points[:, 1]) > 0.6 * h
    assert points[[33, 263], 1].mean() < points[[13, 14], 1].mean()


def test_no_face_found_on_a_flat_image():
    assert landmarks.face_landmarks(Image.new("RGB", (128, 128), (128, 128, 128))) is None


def _inside_polygon(xs: np.ndarray, ys: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Pixel centres inside a convex counter-clockwise polygon (y down)."""
    inside = np.ones(xs.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        inside &= (bx - ax) * (ys - ay) - (by - ay) * (xs - ax) >= -1.0 * np.hypot(bx - ax, by - ay)
    return inside


@pytest.mark.parametrize("region", HULL_REGIONS)
def test_hull_mask_shape_range_and_inside_the_face_hull(astronaut, region):
    img, _, points = astronaut
    mask = hull_mask(points, img.size, region)
    assert mask.shape == (img.size[1], img.size[0]) and mask.dtype == np.float32
    assert set(np.unique(mask).tolist()) <= {0.0, 1.0} and mask.sum() > 500
    full = landmarks._convex_hull(points)
    ys, xs = np.nonzero(mask)
    inside = _inside_polygon(xs + 0.5, ys + 0.5, full)
    if region == "extended":  # only the raised forehead may leave the face's hull
        brow = points[list(landmarks._BROWS), 1].mean()
        assert inside[ys + 0.5 >= brow].all() and not inside.all()
    else:
        assert inside.all()


def test_regions_nest(astronaut):
    img, _, points = astronaut
    full, inner, lower = (hull_mask(points, img.size, r) for r in ("full", "inner", "lower"))
    assert (inner <= full).all() and (lower <= full).all()
    assert inner.sum() < full.sum() and lower.sum() < full.sum()


def test_hull_mask_rejects_bad_landmarks():
    with pytest.raises(DataError, match="468"):
        hull_mask(np.zeros((10, 2)), (32, 32))
    with pytest.raises(DataError, match="finite"):
        hull_mask(np.full((NUM_LANDMARKS, 2), np.nan), (32, 32))
    with pytest.raises(DataError, match="region"):
        hull_mask(np.zeros((NUM_LANDMARKS, 2)), (32, 32), "nose")  # type: ignore[arg-type]


def test_self_blend_mask_follows_the_landmarks(astronaut):
    img, box, points = astronaut
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    w, h = x1 - x0, y1 - y0
    for seed in range(6):
        fake, mask = self_blend(img, rng=seed, face=(box, points), transformed="source")
        ys, xs = np.nonzero(mask > 0)
        # the soft mask stays near the face: blur, elastic moves and the raised forehead
        # reach at most a third of the face size beyond the landmarks
        assert xs.min() >= x0 - w / 3 and xs.max() <= x1 + w / 3
        assert ys.min() >= y0 - h / 2 and ys.max() <= y1 + h / 3
        cy, cx = np.average(np.indices(mask.shape), axis=(1, 2), weights=mask)
        assert x0 <= cx <= x1 and y0 <= cy <= y1
        outside = mask == 0
        assert np.array_equal(np.asarray(img)[outside], np.asarray(fake)[outside])


def test_without_litert_the_ellipse_is_used(monkeypatch):
    def missing():
        raise MissingDependencyError("ai-edge-litert", "face", "face landmarks")

    monkeypatch.setattr(landmarks, "_interpreter_class", missing)
    monkeypatch.setattr(landmarks, "_local", type(landmarks._local)())  # no cached interpreter
    assert not landmarks.landmarks_available()
    with pytest.raises(MissingDependencyError, match=r"deepfake-detect\[face\]"):
        landmarks.face_landmarks(face_like(0, size=64))
    box, points = locate_face(face_like(0, size=64))
    assert points is None
    fake, mask = self_blend(face_like(0, size=64), rng=0)
    assert mask.max() > 0 and fake.size == (64, 64)


def test_synth_and_crops_use_the_same_face_detector(monkeypatch):
    """synth finds faces with deepfake_detect.face's detector (one Haar wrapper)."""
    seen = []

    def fake_detector(image, *, cascade=None, min_size_fraction=0.0):
        seen.append(min_size_fraction)
        return (10, 12, 50, 52)

    monkeypatch.setattr(synth, "detect_largest_face", fake_detector)
    monkeypatch.setattr(synth, "landmarks_available", lambda: False)
    img = Image.new("RGB", (64, 64), (90, 60, 50))
    ImageDraw.Draw(img).ellipse((14, 14, 46, 50), fill=(200, 160, 140))
    box, points = locate_face(img)
    assert box == (10.0, 12.0, 50.0, 52.0) and points is None and seen == [0.3]


GRACE_HOPPER = ASTRONAUT.with_name("grace_hopper.jpg")


def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (50, 2))
    angle, scale, shift = np.deg2rad(12.0), 1.3, np.array([7.0, -4.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + shift
    np.testing.assert_allclose(synth._similarity(src, dst), np.hstack([scale * rot, shift[:, None]]), atol=1e-9)


def test_face_swap_pastes_the_other_face_inside_the_hull_only(astronaut):
    img, _, points = astronaut
    hopper = Image.open(GRACE_HOPPER).convert("RGB")
    fake, mask = synth.face_swap(img, hopper, target_landmarks=points)
    assert fake.size == img.size and mask.shape == (img.size[1], img.size[0]) and mask.max() == pytest.approx(1.0)
    a, b = np.asarray(fake, dtype=np.int16), np.asarray(img, dtype=np.int16)
    outside, core = mask == 0, mask > 0.9
    assert np.array_equal(a[outside], b[outside])  # head, hair and background untouched
    assert np.abs(a[core] - b[core]).mean() > 10  # another face inside
    hull = hull_mask(points, img.size) > 0.5
    assert mask[~hull].max() < 0.15 and mask[hull].mean() > 0.7  # the seam lies (almost) inside the face hull
    again, _ = synth.face_swap(img, hopper, target_landmarks=points)
    assert np.array_equal(np.asarray(again), np.asarray(fake))  # the fixed blend is fixed
    drawn = [np.asarray(synth.face_swap(img, hopper, rng=s, target_landmarks=points)[0]) for s in (1, 2)]
    assert not np.array_equal(drawn[0], drawn[1])


def test_face_swapped_pairs_and_their_errors(astronaut):
    img, _, points = astronaut
    pairs = synth.face_swapped_pairs([ASTRONAUT, GRACE_HOPPER], seed=0)
    assert [y for _, y in pairs] == [0, 1, 0, 1]
    assert np.array_equal(np.asarray(pairs[0][0]), np.asarray(img))
    with pytest.raises(DataError, match="fewer than two groups"):
        synth.face_swapped_pairs([ASTRONAUT, GRACE_HOPPER], groups=["a", "a"])
    with pytest.raises(DataError, match="2 images"):
        synth.face_swapped_pairs([ASTRONAUT, GRACE_HOPPER], groups=["a"])
    with pytest.raises(DataError, match="no face landmarks found in the source"):
        synth.face_swap(img, Image.new("RGB", (128, 128), (90, 120, 60)), target_landmarks=points)
    with pytest.raises(DataError, match="468, 2"):
        synth.face_swap(img, img, target_landmarks=points[:, :1], source_landmarks=points)


def test_training_face_swaps_paste_another_real_face():
    from deepfake_detect.config import DetectorConfig
    from deepfake_detect.data import as_labeled_data
    from deepfake_detect.data.preprocess import Preprocessor
    from deepfake_detect.training.samples import AS_IS, FACE_SWAP, SELF_BLEND, Samples

    blank = Image.new("RGB", (256, 256), (120, 110, 100))  # no face: its swap falls back to a self-blend
    data = as_labeled_data([(ASTRONAUT, 0), (GRACE_HOPPER, 0), (blank, 0), (ASTRONAUT, 1)])
    prep = Preprocessor(DetectorConfig("x", input_size=(224, 224)))
    samples = Samples(data, prep, "none", 0.0, seed=3, cache=True, swap=2.0)
    plan = samples.epoch_plan(1)
    assert sorted(k for _, k in plan).count(FACE_SWAP) == 6 and SELF_BLEND not in {k for _, k in plan}
    base = samples.base(0)
    swapped, label = samples.get(0, FACE_SWAP, epoch=1)
    assert label == 1 and swapped.shape == base.shape and np.abs(swapped.astype(int) - base).mean() > 1
    assert np.array_equal(samples.get(0, FACE_SWAP, epoch=1)[0], swapped)  # reproducible per (seed, epoch, image)
    changed = np.abs(swapped.astype(int) - base).max(axis=2) > 0
    hull = hull_mask(samples.face(0)[1], (224, 224), "extended") > 0.5
    assert changed[~hull].mean() < 0.05 and changed[hull].mean() > 0.5  # only the face was replaced
    fallback, label = samples.get(2, FACE_SWAP, epoch=1)
    assert label == 1 and samples.face(2)[1] is None
    assert samples.get(2, AS_IS, epoch=1)[1] == 0


def test_face_swap_set_and_the_swap_view_of_the_selection_set():
    from deepfake_detect.crossdata import face_swap_set, selection_set

    source = [(ASTRONAUT, 0), (GRACE_HOPPER, 0), (ASTRONAUT, 1), (GRACE_HOPPER, 1)]
    swaps = face_swap_set({"portraits": source})
    assert [y for _, y in swaps] == [0, 1, 0, 1]
    select = selection_set({"portraits": source}, face_swaps=True)
    assert set(select) == {"portraits", "sbi", "swap"} and [y for _, y in select["swap"]] == [0, 1, 0, 1]
    assert "swap" not in selection_set({"portraits": source})
