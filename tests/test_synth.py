"""Self-Blended Images: shapes, the mask, reproducibility, "only the masked region changed",
odd inputs, and the on-the-fly dataset. Images are generated; nothing is downloaded."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import face_like
from PIL import Image

from deepfake_detect import synth
from deepfake_detect.data import as_labeled_data
from deepfake_detect.errors import DataError, DeepfakeDetectError, ImageLoadError
from deepfake_detect.synth import BLEND_RATIOS, SelfBlendedDataset, self_blend


def arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img).astype(np.int16)


@pytest.mark.parametrize("size", [(64, 64), (96, 64), (32, 32), (256, 256)])
def test_size_and_mask(size):
    img = face_like(1, size=64).resize(size)
    fake, mask = self_blend(img, rng=np.random.default_rng(0))
    assert isinstance(fake, Image.Image) and fake.mode == "RGB" and fake.size == size
    assert mask.dtype == np.float32 and mask.shape == (size[1], size[0])
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert mask.max() > 0  # something is blended
    assert np.isclose(mask.max(), BLEND_RATIOS, atol=1e-6).any()  # peak = the blend ratio


def test_tiny_images_work():
    for size in [(1, 1), (2, 3), (7, 5)]:
        fake, mask = self_blend(Image.new("RGB", size, (120, 80, 60)), rng=0)
        assert fake.size == size and mask.shape == size[::-1]
        assert np.isfinite(mask).all() and 0 <= mask.min() <= mask.max() <= 1


def test_reproducible_for_same_seed_different_otherwise():
    img = face_like(2, size=64)
    f1, m1 = self_blend(img, rng=np.random.default_rng(7))
    f2, m2 = self_blend(img, rng=np.random.default_rng(7))
    assert np.array_equal(arr(f1), arr(f2)) and np.array_equal(m1, m2)
    f3, m3 = self_blend(img, rng=7)  # an int seed is the same Generator
    assert np.array_equal(arr(f1), arr(f3)) and np.array_equal(m1, m3)
    f4, m4 = self_blend(img, rng=np.random.default_rng(8))
    assert not np.array_equal(m1, m4) or not np.array_equal(arr(f1), arr(f4))
    # the input is not modified
    assert np.array_equal(np.asarray(img), np.asarray(face_like(2, size=64)))


@pytest.mark.parametrize("seed", range(12))
def test_only_the_masked_region_changes(seed):
    """With the altered copy as the source (pasted face), every pixel outside the mask's
    support is exactly the original, and pixels well inside it are changed (the region can
    be a landmark hull of the inner features only, hence the small minimum)."""
    img = face_like(seed, size=64)
    fake, mask = self_blend(img, rng=seed, transformed="source")
    a, b = arr(img), arr(fake)
    outside = mask == 0
    inside = mask >= 0.9 * mask.max()
    assert outside.sum() > 0.05 * mask.size and inside.sum() > 0.02 * mask.size
    assert np.array_equal(a[outside], b[outside])
    changed = (a != b).any(-1)
    assert changed[inside].mean() > 0.8
    assert not changed[outside].any()
    # the mask covers the centre of the face, not the corners
    h, w = mask.shape
    assert mask[int(0.55 * h), w // 2] > 0
    assert mask[0, 0] == 0 and mask[-1, -1] == 0


def test_transformed_target_alters_the_background():
    img = face_like(3, size=64)
    fake, mask = self_blend(img, rng=3, transformed="target")
    a, b = arr(img), arr(fake)
    outside = mask == 0
    assert (a[outside] != b[outside]).any(-1).mean() > 0.5
    # where the mask is full, the pasted face is the untouched original
    full = mask == 1.0
    if full.any():
        assert np.abs(a[full] - b[full]).max() == 0


def test_random_side_picks_both():
    img = face_like(4, size=48)
    sides = set()
    for seed in range(20):
        fake, mask = self_blend(img, rng=seed)
        out = mask == 0
        sides.add(bool(np.array_equal(arr(img)[out], arr(fake)[out])))
    assert sides == {True, False}


def test_face_box_places_the_mask():
    img = face_like(5, size=96)
    box = (8, 10, 40, 50)
    for seed in range(5):
        _, mask = self_blend(img, rng=seed, face_box=box, transformed="source")
        ys, xs = np.nonzero(mask > 0.5 * mask.max())
        assert 8 <= xs.mean() <= 40 and 10 <= ys.mean() <= 50
        assert mask[80:, 60:].max() == 0  # far from the box
    with pytest.raises(DataError, match="four numbers"):
        self_blend(img, rng=0, face_box=(1, 2, 3))
    with pytest.raises(DataError, match="empty"):
        self_blend(img, rng=0, face_box=(40, 10, 8, 50))
    with pytest.raises(DataError, match="outside"):
        self_blend(img, rng=0, face_box=(200, 200, 300, 300))


def test_detected_face_is_used(monkeypatch):
    """When the Haar cascade (optional OpenCV) finds a face, the mask goes there."""
    monkeypatch.setattr(synth, "_detect_face", lambda rgb: (60.0, 60.0, 90.0, 90.0))
    _, mask = self_blend(face_like(6, size=96), rng=0)
    ys, xs = np.nonzero(mask > 0.5 * mask.max())
    assert xs.mean() > 60 and ys.mean() > 60
    assert mask[:30, :30].max() == 0


def test_detect_face_is_safe_on_small_or_faceless_images():
    assert synth._detect_face(np.zeros((32, 32, 3), np.uint8)) is None
    box = synth._detect_face(np.full((64, 64, 3), 128, np.uint8))
    assert box is None  # flat grey: no face, with or without OpenCV


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_non_rgb_input_is_converted(mode):
    img = face_like(7, size=40).convert(mode)
    fake, mask = self_blend(img, rng=0)
    assert fake.mode == "RGB" and fake.size == (40, 40) and mask.shape == (40, 40)


def test_other_inputs():
    a = np.asarray(face_like(8, size=32))
    fake, _ = self_blend(a, rng=0)  # uint8 HWC arrays are accepted
    assert fake.size == (32, 32)
    with pytest.raises(ImageLoadError):
        self_blend(a.astype(np.float32), rng=0)
    with pytest.raises(ImageLoadError):
        self_blend(12345, rng=0)  # type: ignore[arg-type]
    with pytest.raises(DeepfakeDetectError, match="transformed"):
        self_blend(face_like(8, size=32), rng=0, transformed="both")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- dataset


def test_dataset_labels_and_determinism(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"real_{i}.png"
        face_like(20 + i, size=48).save(p)
        paths.append(p)
    images = paths + [face_like(30, size=40)]  # paths and PIL images mixed
    ds = SelfBlendedDataset(images, seed=5)
    assert len(ds) == 4 and ds.targets == [1, 1, 1, 1]
    first = [ds[i] for i in range(len(ds))]
    for (img, label), src in zip(first, [48, 48, 48, 40], strict=True):
        assert label == 1 and isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (src, src)
    again = SelfBlendedDataset(images, seed=5)
    assert all(np.array_equal(arr(a[0]), arr(b[0])) for a, b in zip(first, [again[i] for i in range(4)], strict=True))
    assert np.array_equal(arr(ds[-1][0]), arr(first[3][0]))
    # a new epoch draws new blends; going back reproduces the old ones
    ds.set_epoch(1)
    second = [ds[i][0] for i in range(4)]
    assert any(not np.array_equal(arr(a[0]), arr(b)) for a, b in zip(first, second, strict=True))
    ds.set_epoch(0)
    assert all(np.array_equal(arr(a[0]), arr(ds[i][0])) for i, a in enumerate(first))
    # another seed, other blends
    other = SelfBlendedDataset(images, seed=6)
    assert any(not np.array_equal(arr(first[i][0]), arr(other[i][0])) for i in range(4))
    # items differ from their real images
    assert not np.array_equal(arr(first[0][0]), arr(Image.open(paths[0]).convert("RGB")))
    with pytest.raises(IndexError):
        ds[4]


def test_dataset_works_with_library_data_formats():
    ds = SelfBlendedDataset([face_like(i, size=32) for i in range(3)])
    data = as_labeled_data(ds)
    assert list(data.labels) == [1, 1, 1]
    import torch.utils.data as tud

    assert isinstance(ds, tud.Dataset)
    with pytest.raises(DeepfakeDetectError, match="seed=-1"):
        SelfBlendedDataset([], seed=-1)
    with pytest.raises(DeepfakeDetectError, match="seed='a'"):
        SelfBlendedDataset([], seed="a")  # type: ignore[arg-type]
    with pytest.raises(DeepfakeDetectError, match="epoch"):
        ds.set_epoch(-1)


def test_self_blended_pairs_is_a_fixed_evaluation_set(tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"real_{i}.png")
        face_like(i).save(paths[-1])
    pairs = synth.self_blended_pairs(paths, seed=7)
    assert [label for _, label in pairs] == [0, 1, 0, 1, 0, 1]
    for i, path in enumerate(paths):
        real, fake = pairs[2 * i][0], pairs[2 * i + 1][0]
        assert np.array_equal(np.asarray(real), np.asarray(Image.open(path).convert("RGB")))
        expected, _ = self_blend(Image.open(path), rng=np.random.default_rng([7, i]))
        assert np.array_equal(np.asarray(fake), np.asarray(expected))
    again = synth.self_blended_pairs(paths, seed=7)
    assert all(np.array_equal(np.asarray(a[0]), np.asarray(b[0])) for a, b in zip(pairs, again, strict=True))
    other = synth.self_blended_pairs(paths, seed=8)
    assert not np.array_equal(np.asarray(pairs[1][0]), np.asarray(other[1][0]))
    with pytest.raises(ImageLoadError, match="missing.png"):
        synth.self_blended_pairs([tmp_path / "missing.png"])
